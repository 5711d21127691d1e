#![allow(clippy::unwrap_used)]
//! `ionport serve` keeps a connection's destination where the operator allows it, and
//! never stores or returns a destination password: through the real HTTP API, the
//! emulator as the gateway.

use std::path::Path;

use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::form_credentials;
use ionport_tests::serve_process::ServeProcess;
use serde_json::{Value, json};

const PG_CANARY: &str = "CANARY-pg-password-4b1d";

fn body(emu: &Emulated, name: &str, destination: Value) -> Value {
    json!({
        "name": name, "connector": "infor-m3",
        "values": {"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())},
        "tasks": [{"name": "customers"}],
        "destination": destination,
    })
}

fn field_of(v: &Value) -> String {
    v["fields"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn files_hold(dir: &Path, needle: &str) -> Option<String> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = files_hold(&p, needle) {
                return Some(f);
            }
        } else if String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).contains(needle) {
            return Some(p.display().to_string());
        }
    }
    None
}

#[test]
fn destination_paths_are_confined_to_the_data_directory() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 20,
        quota: None,
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let escape = outside.path().join("x.db");
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path(), home.path().join("data").join("link")).unwrap();
    let mut refused = vec![
        json!({"type": "sqlite", "path": "../../../x.db"}),
        json!({"type": "sqlite", "path": "a/../../x.db"}),
        json!({"type": "sqlite", "path": escape}),
        json!({"type": "sqlite", "path": "/etc/passwd"}),
        json!({"type": "jsonl", "path": "/tmp"}),
        json!({"type": "parquet", "path": ".."}),
    ];
    if cfg!(unix) {
        refused.push(json!({"type": "sqlite", "path": "link/x.db"}));
    }
    for (i, d) in refused.iter().enumerate() {
        let (s, v) = srv.call(
            "POST",
            "/v1/connections",
            Some(&body(&emu, &format!("c{i}"), d.clone())),
        );
        assert_eq!(s, 422, "{d}: {v}");
        assert_eq!(field_of(&v), "destination.path", "{d}: {v}");
    }
    assert!(!escape.exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // A relative path lands under the data directory, and a run writes there.
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&body(
            &emu,
            "ok",
            json!({"type": "sqlite", "path": "sub/ok.db"}),
        )),
    );
    assert_eq!(s, 201, "{v}");
    let path = v["connection"]["destination"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let data = home.path().join("data").canonicalize().unwrap();
    assert_eq!(Path::new(&path), data.join("sub/ok.db"));
    // What the server shows is accepted back.
    let shown = json!({"destination": v["connection"]["destination"].clone()});
    let (s, v) = srv.call("PATCH", "/v1/connections/ok", Some(&shown));
    assert_eq!(s, 200, "{v}");
    let (s, v) = srv.call(
        "PATCH",
        "/v1/connections/ok",
        Some(&json!({"destination": {"type": "sqlite", "path": escape}})),
    );
    assert_eq!(
        (s, field_of(&v)),
        (422, "destination.path".to_string()),
        "{v}"
    );
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "ok"})));
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(
        v["id"].as_str().unwrap(),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(data.join("sub/ok.db").is_file());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn absolute_paths_only_under_a_root_the_operator_allowed() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 20,
        quota: None,
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(
        home.path(),
        &["--destination-root", root.path().to_str().unwrap()],
        "info",
    );
    let inside = root.path().join("allowed.db");
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&body(
            &emu,
            "abs",
            json!({"type": "sqlite", "path": inside}),
        )),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&body(
            &emu,
            "etc",
            json!({"type": "sqlite", "path": "/etc/x.db"}),
        )),
    );
    assert_eq!(
        (s, field_of(&v)),
        (422, "destination.path".to_string()),
        "{v}"
    );
    let traversal = format!("{}/../x.db", root.path().display());
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&body(
            &emu,
            "up",
            json!({"type": "sqlite", "path": traversal}),
        )),
    );
    assert_eq!(
        (s, field_of(&v)),
        (422, "destination.path".to_string()),
        "{v}"
    );
}

#[test]
fn a_postgres_password_in_any_form_is_refused_and_never_stored() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 20,
        quota: None,
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "debug");
    let urls = [
        format!("postgres://postgres:{PG_CANARY}@127.0.0.1:5432/postgres"),
        format!("postgres://postgres@127.0.0.1:5432/postgres?password={PG_CANARY}"),
        format!("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&PASSWORD={PG_CANARY}"),
        format!("host=127.0.0.1 user=postgres password={PG_CANARY} dbname=postgres"),
        format!("host=127.0.0.1 user=password_admin password = '{PG_CANARY}'"),
        "postgres://postgres@127.0.0.1:5432/postgres?application_name=${HOME}".to_string(),
    ];
    for (i, url) in urls.iter().enumerate() {
        let d = json!({"type": "postgres", "url": url});
        let (s, v) = srv.call(
            "POST",
            "/v1/connections",
            Some(&body(&emu, &format!("pg{i}"), d)),
        );
        assert_eq!(
            (s, field_of(&v)),
            (422, "destination.url".to_string()),
            "{url}: {v}"
        );
    }
    // Updating a stored connection to a password-holding URL is refused the same way.
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&body(&emu, "fine", json!(null))),
    );
    assert_eq!(s, 201, "{v}");
    let d = json!({"destination": {"type": "postgres", "url": urls[3]}});
    let (s, v) = srv.call("PATCH", "/v1/connections/fine", Some(&d));
    assert_eq!(
        (s, field_of(&v)),
        (422, "destination.url".to_string()),
        "{v}"
    );
    let (_, list) = srv.call("GET", "/v1/connections", None);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    for b in srv.bodies() {
        assert!(!b.contains(PG_CANARY), "a response holds the password: {b}");
    }
    assert!(!srv.output().contains(PG_CANARY), "{}", srv.output());
    drop(srv);
    assert_eq!(files_hold(home.path(), PG_CANARY), None);
}
