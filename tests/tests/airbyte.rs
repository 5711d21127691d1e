#![allow(clippy::unwrap_used)]
//! `ionport airbyte` for each connector, every message checked by the Airbyte protocol's
//! own published models (`airbyte-protocol-models` from PyPI, made strict): spec, check,
//! discover, read, and a second read from the first one's state. Record counts are
//! compared with a native read of the same stream; no output holds a canary secret.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::protocol_fixture::{CANARY_PASSWORD, Fixture, assert_no_canary, plugin};
use ionport_tests::python;
use serde_json::{Value, json};

/// Runs the validator on `stdout`; the summary it prints.
fn validate(stdout: &[u8]) -> Value {
    let venv = python::venv(python::AIRBYTE);
    let mut child = Command::new(python::bin(&venv, "python"))
        .arg(python::script("airbyte_validate.py"))
        .arg("messages")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = stdout.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the Airbyte models refused the output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validate_configured_catalog(path: &std::path::Path) {
    let venv = python::venv(python::AIRBYTE);
    let out = Command::new(python::bin(&venv, "python"))
        .arg(python::script("airbyte_validate.py"))
        .arg("configured-catalog")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn airbyte(fx: &Fixture, connector: &str, args: &[&OsStr]) -> Output {
    let mut all: Vec<&OsStr> = vec![OsStr::new("airbyte"), OsStr::new(connector)];
    all.extend_from_slice(args);
    let out = fx.ionport(&all);
    assert_no_canary(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_no_canary(&String::from_utf8_lossy(&out.stderr), "stderr");
    out
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The whole protocol for `connector`.
fn end_to_end(connector: &str) {
    let fx = Fixture::start(40);
    let config = fx.config(connector);
    let p = plugin(connector);

    // spec: the connection form, self-contained, secrets marked.
    let out = airbyte(&fx, connector, &[os("spec")]);
    assert!(out.status.success());
    let spec = validate(&out.stdout)["spec"].clone();
    let form = &spec["connectionSpecification"];
    assert!(!form.to_string().contains("$ref"), "{form}");
    let creds = &form["properties"]["credentials"]["properties"];
    for secret in ["password", "client_secret"] {
        assert_eq!(creds[secret]["airbyte_secret"], true, "{secret}: {form}");
    }
    assert_eq!(creds["username"].get("airbyte_secret"), None);
    assert_eq!(spec["supportsIncremental"], true);

    // check.
    let out = airbyte(
        &fx,
        connector,
        &[os("check"), os("--config"), config.as_os_str()],
    );
    assert!(out.status.success());
    let status = validate(&out.stdout)["connection_status"].clone();
    assert_eq!(status["status"], "SUCCEEDED", "{status}");

    // discover: every predefined task, with its keys and cursor.
    let out = airbyte(
        &fx,
        connector,
        &[os("discover"), os("--config"), config.as_os_str()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let catalog = validate(&out.stdout)["catalog"].clone();
    let streams = catalog["streams"].as_array().unwrap();
    for task in p.tasks() {
        let s = streams
            .iter()
            .find(|s| s["name"] == task.name.as_str())
            .unwrap_or_else(|| panic!("{} missing from {catalog}", task.name));
        let pk: Vec<Value> = task.primary_key.iter().map(|k| json!([k])).collect();
        assert_eq!(s["source_defined_primary_key"], json!(pk));
        match &task.cursor_field {
            Some(c) => assert_eq!(s["default_cursor_field"], json!([c])),
            None => assert!(s.get("default_cursor_field").is_none()),
        }
        assert!(!s["json_schema"].to_string().contains("$ref"));
    }

    // read: the predefined tasks and one discovered stream, incremental where possible.
    let mut chosen: Vec<&Value> = streams
        .iter()
        .filter(|s| p.task(s["name"].as_str().unwrap()).is_some())
        .collect();
    if let Some(extra) = streams
        .iter()
        .find(|s| p.task(s["name"].as_str().unwrap()).is_none())
    {
        chosen.push(extra);
    }
    let configured: Vec<Value> = chosen
        .iter()
        .map(|s| {
            let inc = s["supported_sync_modes"]
                .as_array()
                .unwrap()
                .contains(&json!("incremental"));
            let mut c = json!({
                "stream": s,
                "sync_mode": if inc { "incremental" } else { "full_refresh" },
                "destination_sync_mode": if inc { "append_dedup" } else { "overwrite" },
                "primary_key": s["source_defined_primary_key"],
            });
            if inc {
                c["cursor_field"] = s["default_cursor_field"].clone();
            }
            c
        })
        .collect();
    let catalog_file = fx.write("configured.json", &json!({"streams": configured}));
    validate_configured_catalog(&catalog_file);
    let read_args = [
        os("read"),
        os("--config"),
        config.as_os_str(),
        os("--catalog"),
        catalog_file.as_os_str(),
    ];
    let out = airbyte(&fx, connector, &read_args);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let first = validate(&out.stdout);
    assert_eq!(first["errors"], json!([]), "{first}");
    let mut incremental = 0;
    for c in &configured {
        let name = c["stream"]["name"].as_str().unwrap();
        let mode = if c["sync_mode"] == "incremental" {
            incremental += 1;
            SyncMode::Incremental
        } else {
            SyncMode::FullRefresh
        };
        let native = fx.native_count(connector, name, mode);
        assert!(native > 0, "{name}: the emulator has no data");
        assert_eq!(first["records"][name], native, "{name}: {first}");
        // The states' record counts add up to the records: a state follows its records.
        assert_eq!(first["state_records"][name], native as f64, "{name}");
        let statuses = &first["statuses"][name];
        assert_eq!(
            statuses,
            &json!(["STARTED", "RUNNING", "COMPLETE"]),
            "{name}"
        );
    }
    assert!(incremental > 0);

    // A second read from the first one's states: incremental streams read only what
    // changed since (nothing: the emulator's data did not change); full refresh reads all.
    let state: Vec<Value> = first["states"]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect();
    let state_file = fx.write("state.json", &json!(state));
    let mut args = read_args.to_vec();
    args.extend([os("--state"), state_file.as_os_str()]);
    let out = airbyte(&fx, connector, &args);
    assert!(out.status.success());
    let second = validate(&out.stdout);
    for c in &configured {
        let name = c["stream"]["name"].as_str().unwrap();
        let again = second["records"][name].as_u64().unwrap_or(0);
        if c["sync_mode"] == "incremental" {
            assert!(
                again < first["records"][name].as_u64().unwrap(),
                "{name}: {again} records again from the state"
            );
        } else {
            assert_eq!(second["records"][name], first["records"][name], "{name}");
        }
    }
}

#[test]
fn m3_as_an_airbyte_source() {
    end_to_end("infor-m3");
}

#[test]
fn ln_as_an_airbyte_source() {
    end_to_end("infor-ln");
}

#[test]
fn datalake_as_an_airbyte_source() {
    end_to_end("infor-datalake");
}

#[test]
fn bad_input_gets_a_protocol_error_naming_the_file_and_field() {
    let fx = Fixture::start(20);
    let connector = "infor-m3";

    // A wrong password: check FAILED (exit 0, as Airbyte expects), the wrong value masked.
    let wrong = "CANARY-wrong-password-0c1f";
    let config = fx.config_with(connector, |v| v["credentials"]["password"] = json!(wrong));
    let out = airbyte(
        &fx,
        connector,
        &[os("check"), os("--config"), config.as_os_str()],
    );
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(wrong), "{all}");
    let status = validate(&out.stdout)["connection_status"].clone();
    assert_eq!(status["status"], "FAILED", "{status}");

    // A config that does not fit the form: the field is named, check FAILED, discover a
    // config_error trace and exit 1.
    let config = fx.config_with(connector, |v| {
        v.as_object_mut().unwrap().remove("company");
        v["credentials"]["token_url"] = json!(7);
    });
    let out = airbyte(
        &fx,
        connector,
        &[os("check"), os("--config"), config.as_os_str()],
    );
    let status = validate(&out.stdout)["connection_status"].clone();
    let msg = status["message"].as_str().unwrap();
    assert_eq!(status["status"], "FAILED");
    assert!(
        msg.contains("company") && msg.contains("credentials.token_url"),
        "{msg}"
    );
    assert!(msg.contains("infor-m3.config.json"), "{msg}");
    let out = airbyte(
        &fx,
        connector,
        &[os("discover"), os("--config"), config.as_os_str()],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    assert_eq!(v["errors"][0]["failure_type"], "config_error", "{v}");

    // Not JSON at all: the file and the position, never its text.
    let broken = fx.dir.path().join("broken.json");
    std::fs::write(&broken, format!("{{\"password\": \"{CANARY_PASSWORD}\"")).unwrap();
    let out = airbyte(
        &fx,
        connector,
        &[os("discover"), os("--config"), broken.as_os_str()],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("broken.json") && msg.contains("not JSON"),
        "{msg}"
    );

    // A catalog asking for an incremental read of a full-refresh-only stream: that stream
    // fails as a config error, the other one is read, exit 1.
    let config = fx.config(connector);
    let stream = |name: &str| json!({"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]});
    let catalog = fx.write(
        "bad-catalog.json",
        &json!({"streams": [
            {"stream": stream("customers"), "sync_mode": "incremental", "destination_sync_mode": "append"},
            {"stream": stream("suppliers"), "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"},
        ]}),
    );
    let out = airbyte(
        &fx,
        connector,
        &[
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    assert_eq!(v["errors"][0]["failure_type"], "config_error", "{v}");
    assert_eq!(
        v["errors"][0]["stream_descriptor"]["name"], "customers",
        "{v}"
    );
    assert_eq!(v["statuses"]["customers"], json!(["STARTED", "INCOMPLETE"]));
    assert_eq!(
        v["statuses"]["suppliers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "COMPLETE"
    );
    assert!(v["records"]["suppliers"].as_u64().unwrap() > 0);

    // A state file that is no list of states.
    let state = fx.write("bad-state.json", &json!("yesterday"));
    let out = airbyte(
        &fx,
        connector,
        &[
            os("read"),
            os("--config"),
            config.as_os_str(),
            os("--catalog"),
            catalog.as_os_str(),
            os("--state"),
            state.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("bad-state.json") && msg.contains("list of STATE"),
        "{msg}"
    );

    // An unknown connector.
    let out = airbyte(&fx, "infor-nope", &[os("spec")]);
    assert!(!out.status.success());
    let v = validate(&out.stdout);
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("infor-nope") && msg.contains("infor-m3"),
        "{msg}"
    );
}
