#![allow(clippy::unwrap_used)]
//! OpenLineage events of `ionport serve --openlineage-url`: a successful and a failed run
//! each post START then COMPLETE or FAIL to a local receiver; the events are validated
//! with the OpenLineage Python client's models (PyPI `openlineage-python`, pinned in
//! `tests/src/python.rs`), and their datasets and counts are checked against the
//! emulator's credentials and the destination's own table.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_tests::emulated::Emulated;
use ionport_tests::receiver::{Behaviour, Receiver};
use ionport_tests::serve_process::ServeProcess;
use ionport_tests::{form_credentials, python};
use serde_json::{Value, json};

const CANARY_CS: &str = "CANARY-lineage-client-secret-41a9e2";

/// Validates `events` with the client's models; the event types it read.
fn validate(events: &[Value]) -> Vec<String> {
    let venv = python::venv(python::OPENLINEAGE);
    let mut child = Command::new(python::bin(&venv, "python"))
        .arg(python::script("openlineage_validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = events.iter().map(|e| format!("{e}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the OpenLineage models refuse an event:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("ok ").unwrap().to_string())
        .collect()
}

fn rows(db: &std::path::Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(&format!("select count(*) from {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_successful_and_a_failed_run_emit_events_the_openlineage_models_accept() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 80,
        credentials: EmulatorCredentials {
            client_secret: CANARY_CS.into(),
            ..EmulatorCredentials::default()
        },
        quota: None,
        ..EmulatorConfig::default()
    });
    let ionapi = emu.emu.ionapi_json();
    let tenant = ionapi["ti"].as_str().unwrap().to_string();
    let host = reqwest::Url::parse(ionapi["iu"].as_str().unwrap())
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let receiver = Receiver::start(Behaviour::Accept);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(
        home.path(),
        &[
            "--openlineage-url",
            &receiver.url,
            "--openlineage-namespace",
            "acme",
        ],
        "info",
    );
    let body = json!({
        "name": "m3",
        "connector": "infor-m3",
        "values": {"company": 100, "credentials": form_credentials(&ionapi)},
        "tasks": [{"name": "customers"}],
        "retries": 0,
    });
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");

    // A run that succeeds.
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
    assert_eq!(s, 202, "{v}");
    let ok = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(120));
    assert_eq!(ok["status"], "succeeded", "{ok}");
    receiver.wait_for(Duration::from_secs(30), "START and COMPLETE", |r| {
        r.len() >= 2
    });

    // A run that fails: every m3 call answers 503 and the connection allows no retry.
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "503", "rate": 1.0, "api": "m3", "count": 1000 }])),
    );
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
    assert_eq!(s, 202, "{v}");
    let failed = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(120));
    assert_eq!(failed["status"], "failed", "{failed}");
    let got = receiver.wait_for(Duration::from_secs(30), "four events", |r| r.len() >= 4);
    assert_eq!(got.len(), 4, "{got:#?}");
    let events: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();

    // The client's models accept every event, as sent.
    assert_eq!(validate(&events), ["START", "COMPLETE", "START", "FAIL"]);

    // One run id per run, a fresh one for the second.
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    assert_eq!(events[2]["run"]["runId"], events[3]["run"]["runId"]);
    assert_ne!(events[0]["run"]["runId"], events[2]["run"]["runId"]);
    for e in &events {
        assert_eq!(
            e["job"],
            json!({"namespace": "acme", "name": "m3", "facets": {}}),
            "{e}"
        );
        // Input: the tenant at the gateway, the connector's stream.
        assert_eq!(
            e["inputs"],
            json!([{"namespace": format!("ionapi://{host}/{tenant}"), "name": "infor-m3/customers",
                "facets": {}, "inputFacets": {}}]),
            "{e}"
        );
        // Output: the connection's SQLite file, the stream's table.
        let db = home.path().join("data").join("m3.db");
        assert_eq!(
            e["outputs"][0]["namespace"],
            format!("sqlite://{}", db.display()),
            "{e}"
        );
        assert_eq!(e["outputs"][0]["name"], "customers", "{e}");
    }
    // Counts: the rows the table got, read from the table itself.
    let db = home.path().join("data").join("m3.db");
    let table_rows = rows(&db, "customers");
    assert!(table_rows > 0);
    assert_eq!(
        events[1]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"], table_rows,
        "{}",
        events[1]
    );
    assert!(
        events[0]["outputs"][0]["outputFacets"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        events[3]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"], 0,
        "{}",
        events[3]
    );
    // The failure's message, as the run record has it; none on the others.
    let message = events[3]["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("503"), "{message}");
    assert_eq!(Some(message), failed["error"].as_str());
    assert_eq!(
        events[3]["run"]["facets"]["errorMessage"]["programmingLanguage"],
        "Rust"
    );
    for e in &events[..3] {
        assert!(e["run"]["facets"].as_object().unwrap().is_empty(), "{e}");
    }
    // No secret in any event.
    for r in &got {
        assert!(
            !r.body.contains(CANARY_CS),
            "a secret is in an OpenLineage event"
        );
    }
}

#[test]
fn a_lineage_url_that_is_not_a_url_stops_the_server_at_start() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(ionport_tests::ionport_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "k-0123456789",
        ])
        .args(["--openlineage-url", "lineage-server"])
        .env("IONPORT_HOME", home.path())
        .env("IONPORT_PLUGIN_PATH", ionport_tests::profile_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--openlineage-url") && said.contains("lineage-server"),
        "{said}"
    );
}
