#![allow(clippy::unwrap_used)]
//! `ionport singer` for each connector: the catalog checked by singer-python, the tap's
//! output consumed by a real Singer target from PyPI (`target-jsonl`), every record
//! written; a second run from the target's state reads only what changed.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::protocol_fixture::{
    Fixture, assert_file_name, assert_no_canary, expected_stream_id, plugin,
};
use ionport_tests::python;
use serde_json::{Value, json};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn singer(fx: &Fixture, connector: &str, args: &[&OsStr]) -> Output {
    let mut all: Vec<&OsStr> = vec![os("singer"), os(connector)];
    all.extend_from_slice(args);
    let out = fx.ionport(&all);
    assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_no_canary(&String::from_utf8_lossy(&out.stderr), "stderr");
    out
}

/// Runs `singer_check.py` with `args`, `stdin` piped in.
fn check(args: &[&OsStr], stdin: &Path) -> Value {
    let venv = python::venv(python::SINGER);
    let out = Command::new(python::bin(&venv, "python"))
        .arg(python::script("singer_check.py"))
        .args(args)
        .stdin(std::fs::File::open(stdin).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "singer-python refused the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Feeds `messages` to `target-jsonl` writing into `dest`; returns its last state line.
fn target_jsonl(fx: &Fixture, messages: &Path, dest: &Path) -> Value {
    let venv = python::venv(python::SINGER);
    std::fs::create_dir_all(dest).unwrap();
    let config = fx.write(
        "target-config.json",
        &json!({"destination_path": dest, "do_timestamp_file": false}),
    );
    let out = Command::new(python::bin(&venv, "target-jsonl"))
        .arg("--config")
        .arg(&config)
        .stdin(std::fs::File::open(messages).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "target-jsonl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("null");
    serde_json::from_str(last).unwrap()
}

/// The records `target-jsonl` wrote for `stream`.
fn written(dest: &Path, stream: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dest.join(format!("{stream}.jsonl"))).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn end_to_end(connector: &str) {
    let fx = Fixture::start(40);
    let config = fx.config(connector);
    let p = plugin(connector);

    // Discover: a catalog singer-python reads, the predefined tasks selected by default.
    let out = singer(
        &fx,
        connector,
        &[os("--config"), config.as_os_str(), os("--discover")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let catalog_file = fx.dir.path().join("discovered.json");
    std::fs::write(&catalog_file, &out.stdout).unwrap();
    let summary = check(&[os("catalog"), catalog_file.as_os_str()], &catalog_file);
    let streams = summary["streams"].as_array().unwrap();
    // Every stream the connector has, under a file-safe id.
    let native: Vec<String> = fx
        .native_streams(connector)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut ids: Vec<&str> = streams
        .iter()
        .map(|s| s["tap_stream_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want: Vec<String> = native.iter().map(|n| expected_stream_id(n)).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    ids.iter().for_each(|id| assert_file_name(id));
    let name_of = |id: &str| {
        native
            .iter()
            .find(|n| expected_stream_id(n) == id)
            .unwrap_or_else(|| panic!("{id}: no such stream"))
            .clone()
    };
    for task in p.tasks() {
        let s = streams
            .iter()
            .find(|s| s["tap_stream_id"] == task.name.as_str())
            .unwrap_or_else(|| panic!("{} missing: {summary}", task.name));
        assert_eq!(s["key_properties"], json!(task.primary_key));
        assert_eq!(s["replication_key"], json!(task.cursor_field));
        assert_eq!(s["selected_by_default"], true);
        if !task.sync_modes.contains(&SyncMode::Incremental) {
            assert_eq!(s["forced"], "FULL_TABLE");
        }
    }

    // Select the predefined tasks and one discovered stream; deselect one property of the
    // first task that is neither key nor cursor.
    let mut catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &p.tasks()[0];
    let mut extra = None;
    let mut dropped = None;
    for entry in catalog["streams"].as_array_mut().unwrap() {
        let id = entry["tap_stream_id"].as_str().unwrap().to_string();
        let select = p.task(&id).is_some() || extra.is_none();
        if p.task(&id).is_none() && select {
            extra = Some(id.clone());
        }
        for md in entry["metadata"].as_array_mut().unwrap() {
            let crumb = md["breadcrumb"].clone();
            if crumb == json!([]) {
                md["metadata"]["selected"] = json!(select);
            } else if id == first.name
                && dropped.is_none()
                && md["metadata"]["inclusion"] == "available"
            {
                dropped = Some(crumb[1].as_str().unwrap().to_string());
                md["metadata"]["selected"] = json!(false);
            }
        }
    }
    let dropped = dropped.expect("a property to deselect");
    let mut selected: Vec<(String, String, SyncMode)> = p
        .tasks()
        .iter()
        .map(|t| {
            let mode = if t.sync_modes.contains(&SyncMode::Incremental) {
                SyncMode::Incremental
            } else {
                SyncMode::FullRefresh
            };
            (t.name.clone(), t.name.clone(), mode)
        })
        .collect();
    if let Some(e) = &extra {
        let entry = catalog["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["tap_stream_id"] == e.as_str())
            .unwrap();
        let mode = if entry.get("replication_key").is_some() {
            SyncMode::Incremental
        } else {
            SyncMode::FullRefresh
        };
        selected.push((e.clone(), name_of(e), mode));
    }
    let selected_file = fx.write("selected.json", &catalog);

    // Sync into target-jsonl.
    let out = singer(
        &fx,
        connector,
        &[
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            selected_file.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages = fx.dir.path().join("messages.jsonl");
    std::fs::write(&messages, &out.stdout).unwrap();
    let emitted = check(&[os("messages")], &messages);
    let dest = fx.dir.path().join("out");
    let target_state = target_jsonl(&fx, &messages, &dest);
    assert_eq!(target_state, emitted["last_state"], "{emitted}");

    for (name, native_name, mode) in &selected {
        let native = fx.native_count(connector, native_name, *mode);
        assert!(native > 0, "{name}: the emulator has no data");
        let rows = written(&dest, name);
        assert_eq!(rows.len() as u64, native, "{name}: target-jsonl wrote");
        assert_eq!(emitted["records"][name], native, "{name}");
        if name == &first.name {
            assert!(rows.iter().all(|r| r.get(&dropped).is_none()), "{dropped}");
            let schema = &emitted["schemas"][name]["schema"]["properties"];
            assert!(schema.get(&dropped).is_none());
            for k in &first.primary_key {
                assert!(rows.iter().all(|r| r.get(k).is_some()), "{k}");
            }
        }
        if *mode == SyncMode::Incremental {
            assert!(
                !target_state["bookmarks"][name].is_null(),
                "{name}: no bookmark in {target_state}"
            );
        }
    }

    // Again, from the target's state: incremental streams bring only what changed.
    let state_file = fx.write("state.json", &target_state);
    let out = singer(
        &fx,
        connector,
        &[
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            selected_file.as_os_str(),
            os("--state"),
            state_file.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again_file = fx.dir.path().join("again.jsonl");
    std::fs::write(&again_file, &out.stdout).unwrap();
    let again = check(&[os("messages")], &again_file);
    for (name, _, mode) in &selected {
        let n = again["records"][name].as_u64().unwrap_or(0);
        let before = emitted["records"][name].as_u64().unwrap();
        match mode {
            SyncMode::Incremental => assert!(n < before, "{name}: {n} again"),
            SyncMode::FullRefresh => assert_eq!(n, before, "{name}"),
        }
    }
}

#[test]
fn m3_as_a_singer_tap_into_target_jsonl() {
    end_to_end("infor-m3");
}

#[test]
fn ln_as_a_singer_tap_into_target_jsonl() {
    end_to_end("infor-ln");
}

#[test]
fn datalake_as_a_singer_tap_into_target_jsonl() {
    end_to_end("infor-datalake");
}

#[test]
fn without_a_catalog_every_predefined_task_is_read_and_bad_input_is_named() {
    let fx = Fixture::start(20);
    let config = fx.config("infor-ln");
    let out = singer(&fx, "infor-ln", &[os("--config"), config.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages = fx.dir.path().join("all.jsonl");
    std::fs::write(&messages, &out.stdout).unwrap();
    let emitted = check(&[os("messages")], &messages);
    let ln = plugin("infor-ln");
    let names: Vec<&str> = ln.tasks().iter().map(|t| t.name.as_str()).collect();
    for n in &names {
        assert!(
            emitted["records"][n].as_u64().unwrap() > 0,
            "{n}: {emitted}"
        );
    }

    // A catalog selecting nothing, one with a bad replication method, a bad state.
    let empty = fx.write("none.json", &json!({"streams": []}));
    let out = singer(
        &fx,
        "infor-ln",
        &[
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            empty.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("none.json") && err.contains("no stream is selected"),
        "{err}"
    );

    let bad = fx.write(
        "bad.json",
        &json!({"streams": [{"tap_stream_id": "items", "stream": "items", "schema": {},
            "metadata": [{"breadcrumb": [], "metadata": {"selected": true, "replication-method": "LOG_BASED"}}]}]}),
    );
    let out = singer(
        &fx,
        "infor-ln",
        &[
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            bad.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("replication-method") && err.contains("LOG_BASED"),
        "{err}"
    );

    let state = fx.write("state.json", &json!({"bookmarks": [1, 2]}));
    let out = singer(
        &fx,
        "infor-ln",
        &[
            os("--config"),
            config.as_os_str(),
            os("--state"),
            state.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("state.json") && err.contains("bookmarks"),
        "{err}"
    );

    // A config missing the credentials.
    let config = fx.config_with("infor-ln", |v| {
        v.as_object_mut().unwrap().remove("credentials");
    });
    let out = singer(
        &fx,
        "infor-ln",
        &[os("--config"), config.as_os_str(), os("--discover")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("infor-ln.config.json") && err.contains("credentials"),
        "{err}"
    );
}

/// M3's `table:OCUSMA` is `table__OCUSMA` in the catalog and the messages; a catalog may
/// name it either way (not both), and a state keyed by the connector's name still counts.
#[test]
fn a_table_stream_is_named_either_way_in_a_catalog_and_a_state() {
    let fx = Fixture::start(20);
    let config = fx.config("infor-m3");
    let out = singer(
        &fx,
        "infor-m3",
        &[os("--config"), config.as_os_str(), os("--discover")],
    );
    assert!(out.status.success());
    let catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut entry = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tap_stream_id"] == "table__OCUSMA")
        .unwrap_or_else(|| panic!("no table__OCUSMA in {catalog}"))
        .clone();
    assert!(entry["replication_key"].is_string(), "{entry}");
    entry["metadata"][0]["metadata"]["selected"] = json!(true);
    let native = fx.native_count("infor-m3", "table:OCUSMA", SyncMode::Incremental);
    assert!(native > 0);
    let sync = |catalog: &Path, state: Option<&Path>| {
        let mut args = vec![
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
        ];
        if let Some(s) = state {
            args.extend([os("--state"), s.as_os_str()]);
        }
        singer(&fx, "infor-m3", &args)
    };

    let mut own = entry.clone();
    own["tap_stream_id"] = json!("table:OCUSMA");
    own["stream"] = json!("table:OCUSMA");
    let mut last_state = Value::Null;
    for (file, e) in [("safe.json", &entry), ("own.json", &own)] {
        let cat = fx.write(file, &json!({"streams": [e]}));
        let out = sync(&cat, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let messages = fx.dir.path().join("ocusma.jsonl");
        std::fs::write(&messages, &out.stdout).unwrap();
        let emitted = check(&[os("messages")], &messages);
        assert_eq!(
            emitted["records"],
            json!({"table__OCUSMA": native}),
            "{file}"
        );
        last_state = emitted["last_state"].clone();
    }

    let both = fx.write("both.json", &json!({"streams": [entry, own]}));
    let out = sync(&both, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("both.json") && err.contains("two catalog entries"),
        "{err}"
    );

    // A state written before the ids were file names.
    let bookmark = last_state["bookmarks"]["table__OCUSMA"].clone();
    assert!(!bookmark.is_null(), "{last_state}");
    let old = fx.write(
        "old-state.json",
        &json!({"bookmarks": {"table:OCUSMA": bookmark}}),
    );
    let cat = fx.write("safe.json", &json!({"streams": [entry]}));
    let out = sync(&cat, Some(&old));
    assert!(out.status.success());
    let messages = fx.dir.path().join("again.jsonl");
    std::fs::write(&messages, &out.stdout).unwrap();
    let again = check(&[os("messages")], &messages);
    let n = again["records"]["table__OCUSMA"].as_u64().unwrap_or(0);
    assert!(
        n < native,
        "{n} of {native} again: the old bookmark was not used"
    );
}
