#![allow(clippy::unwrap_used)]
//! A target built on the Meltano Singer SDK (`meltanolabs-target-csv`, which validates
//! every record against its stream's schema) consuming every stream of every connector:
//! discover, select all, sync; each CSV holds as many rows as a native read.

use std::ffi::OsStr;
use std::process::Command;

use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::protocol_fixture::{
    Fixture, assert_file_name, assert_no_canary, expected_stream_id,
};
use ionport_tests::python;
use serde_json::{Value, json};

/// The Singer SDK's CSV target and the SDK it was released with.
const SDK_TARGET: (&str, &[&str]) = (
    "singer-sdk-target",
    &["meltanolabs-target-csv==0.5.0", "singer-sdk==0.54.9"],
);

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn ionport_ok(fx: &Fixture, args: &[&OsStr]) -> Vec<u8> {
    let out = fx.ionport(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_no_canary(&stderr, "stderr");
    assert!(out.status.success(), "ionport {args:?}: {stderr}");
    out.stdout
}

fn every_stream_into_target_csv(connector: &str) {
    let fx = Fixture::start(30);
    let config = fx.config(connector);
    let catalog = ionport_ok(
        &fx,
        &[
            os("singer"),
            os(connector),
            os("--config"),
            config.as_os_str(),
            os("--discover"),
        ],
    );
    let mut catalog: Value = serde_json::from_slice(&catalog).unwrap();
    let native: Vec<String> = fx
        .native_streams(connector)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut streams = Vec::new();
    for entry in catalog["streams"].as_array_mut().unwrap() {
        let id = entry["tap_stream_id"].as_str().unwrap().to_string();
        assert_file_name(&id);
        let name = native
            .iter()
            .find(|n| expected_stream_id(n) == id)
            .unwrap_or_else(|| panic!("{id}: not a stream the connector has"))
            .clone();
        let mode = if entry.get("replication_key").is_some() {
            SyncMode::Incremental
        } else {
            SyncMode::FullRefresh
        };
        for md in entry["metadata"].as_array_mut().unwrap() {
            if md["breadcrumb"] == json!([]) {
                md["metadata"]["selected"] = json!(true);
            }
        }
        streams.push((id, name, mode));
    }
    assert_eq!(
        streams.len(),
        native.len(),
        "every stream is in the catalog"
    );
    let selected = fx.write("all.json", &catalog);
    let messages = ionport_ok(
        &fx,
        &[
            os("singer"),
            os(connector),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            selected.as_os_str(),
        ],
    );
    let messages_file = fx.dir.path().join("messages.jsonl");
    std::fs::write(&messages_file, &messages).unwrap();

    let venv = python::venv(SDK_TARGET);
    let out_dir = fx.dir.path().join("csv");
    std::fs::create_dir_all(&out_dir).unwrap();
    let target_config = fx.write(
        "target-csv.json",
        &json!({"output_path": out_dir, "file_naming_scheme": "{stream_name}.csv"}),
    );
    let started = std::time::Instant::now();
    let out = Command::new(python::bin(&venv, "target-csv"))
        .arg("--config")
        .arg(&target_config)
        .stdin(std::fs::File::open(&messages_file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "target-csv refused the tap's output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target_secs = started.elapsed().as_secs_f64();
    let counted = Command::new(python::bin(&venv, "python"))
        .arg(python::script("csv_rows.py"))
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(counted.status.success(), "{counted:?}");
    let rows: Value = serde_json::from_slice(&counted.stdout).unwrap();

    let mut total = 0;
    for (id, name, mode) in &streams {
        let native = fx.native_count(connector, name, *mode);
        assert!(native > 0, "{name}: the emulator has no data");
        assert_eq!(rows[format!("{id}.csv")], native, "{id} ({name}): {rows}");
        total += native;
    }
    eprintln!(
        "{connector}: {} streams, {total} rows through target-csv in {target_secs:.1} s",
        streams.len()
    );
}

#[test]
fn every_m3_stream_into_a_singer_sdk_target() {
    every_stream_into_target_csv("infor-m3");
}

#[test]
fn every_ln_stream_into_a_singer_sdk_target() {
    every_stream_into_target_csv("infor-ln");
}

#[test]
fn every_datalake_stream_into_a_singer_sdk_target() {
    every_stream_into_target_csv("infor-datalake");
}
