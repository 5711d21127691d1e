#![allow(clippy::unwrap_used)]
//! Each connector through PyAirbyte (PyPI `airbyte`, pinned with every dependency in
//! `tests/python/pyairbyte-constraints.txt`) with no wrapper: `get_source(name,
//! local_executable=<multi-call link ionport-airbyte-<connector>>)`, `check()`, every
//! stream selected, the default `read()` twice into PyAirbyte's default cache (DuckDB).
//! The first read's counts equal a native read; the second starts from the states the
//! cache kept, so incremental streams read fewer records; the cache holds each record
//! once after both.

use std::path::PathBuf;
use std::process::Command;

use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::protocol_fixture::{Fixture, assert_no_canary, plugin};
use ionport_tests::python;
use serde_json::Value;

/// PyAirbyte's version; the rest of its dependencies are pinned by the constraints file.
const PYAIRBYTE: &str = "airbyte==0.71.3";

fn pyairbyte_venv() -> PathBuf {
    let constraints = python::script("pyairbyte-constraints.txt");
    let constraints = constraints.to_str().unwrap();
    python::venv(("pyairbyte", &[PYAIRBYTE, "--constraint", constraints]))
}

fn through_pyairbyte(connector: &str) {
    let venv = pyairbyte_venv();
    let fx = Fixture::start(40);
    let config = fx.config(connector);
    let bin = fx.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let program = bin.join(format!("ionport-airbyte-{connector}"));
    std::os::unix::fs::symlink(ionport_tests::ionport_bin(), &program).unwrap();

    let out = Command::new(python::bin(&venv, "python"))
        .arg(python::script("pyairbyte_run.py"))
        .arg(format!("source-{connector}"))
        .arg(&program)
        .arg(&config)
        // The default cache lands in `./.cache`.
        .current_dir(fx.dir.path())
        // No connector registry and no telemetry: this machine is offline.
        .env("AIRBYTE_OFFLINE_MODE", "1")
        .env("DO_NOT_TRACK", "1")
        .env_remove("AIRBYTE_CACHE_ROOT")
        .env_remove("IONPORT_PLUGIN_PATH")
        .env_remove("IONPORT_AIRBYTE_CONNECTOR")
        .env("IONPORT_HOME", fx.dir.path().join("home"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "PyAirbyte failed:\n{stdout}\n{stderr}"
    );
    assert_no_canary(&stdout, "PyAirbyte's stdout");
    assert_no_canary(&stderr, "PyAirbyte's stderr");
    let summary: Value = serde_json::from_str(stdout.trim_end().lines().last().unwrap()).unwrap();
    eprintln!("{connector}: {summary}");

    let p = plugin(connector);
    let streams: Vec<&str> = summary["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for task in p.tasks() {
        assert!(
            streams.contains(&task.name.as_str()),
            "{}: {summary}",
            task.name
        );
    }
    let incremental = |s: &str| {
        summary["incremental"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == s)
    };
    let (first, second) = (&summary["reads"][0], &summary["reads"][1]);
    let mut fewer = 0;
    for &s in &streams {
        let native = fx.native_count(connector, s, SyncMode::FullRefresh);
        assert!(native > 0, "{s}: the emulator has no data");
        assert_eq!(first["read"][s], native, "{s}: first read: {summary}");
        assert_eq!(first["cached"][s], native, "{s}: cache after one read");
        assert_eq!(second["cached"][s], native, "{s}: cache after two reads");
        let again = second["read"][s].as_u64().unwrap_or(0);
        if incremental(s) {
            assert!(again < native, "{s}: {again} of {native} records again");
            fewer += 1;
        } else {
            // A stream without a cursor is read in full, also when asked incremental.
            assert_eq!(again, native, "{s}: second read");
        }
    }
    assert!(fewer > 0, "no incremental stream: {summary}");
}

#[test]
fn m3_through_pyairbyte() {
    through_pyairbyte("infor-m3");
}

#[test]
fn ln_through_pyairbyte() {
    through_pyairbyte("infor-ln");
}

#[test]
fn datalake_through_pyairbyte() {
    through_pyairbyte("infor-datalake");
}
