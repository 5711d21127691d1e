#![allow(clippy::unwrap_used)]
//! The audit log of `ionport serve`: an entry per change (connections, runs, webhooks,
//! and keys made by `ionport apikey`), each naming the key by its name, and no secret in
//! it anywhere: canary secrets are planted in the emulator's credentials and searched
//! for in the log file and every answer of `/v1/audit`.

use std::process::Command;
use std::time::{Duration, Instant};

use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_tests::emulated::Emulated;
use ionport_tests::serve_process::{ServeProcess, TEST_KEY};
use ionport_tests::{form_credentials, ionport_bin};
use serde_json::{Value, json};

const CANARY_CS: &str = "CANARY-audit-client-secret-7d21c4";
const CANARY_PW: &str = "CANARY-audit-password-b9e0f3";

fn apikey(home: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(ionport_bin())
        .arg("apikey")
        .args(args)
        .env("IONPORT_HOME", home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A call with `key`, its answer kept for the canary search.
fn call(
    srv: &ServeProcess,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), format!("{}{path}", srv.base))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    srv.bodies.lock().unwrap().push(text.clone());
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn entries(srv: &ServeProcess, query: &str) -> Vec<Value> {
    let (s, v) = srv.call("GET", &format!("/v1/audit{query}"), None);
    assert_eq!(s, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn every_change_is_audited_by_key_name_and_no_secret_reaches_the_log() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 20_000,
        credentials: EmulatorCredentials {
            client_secret: CANARY_CS.into(),
            sask: CANARY_PW.into(),
            ..EmulatorCredentials::default()
        },
        quota: None,
        ..EmulatorConfig::default()
    });
    // Slow pages, so the second run is still going when it is cancelled.
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 5 }])),
    );
    let home = tempfile::tempdir().unwrap();
    let ops = apikey(home.path(), &["create", "--name", "ops"]);
    let srv = ServeProcess::start(home.path(), &[], "debug");

    // Created with the `ops` key (canary secrets in its values).
    let values = json!({"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())});
    assert!(values.to_string().contains(CANARY_CS) && values.to_string().contains(CANARY_PW));
    let body = json!({"name": "m3", "connector": "infor-m3", "values": values,
        "tasks": [{"name": "customers"}], "page_size": 10});
    let (s, v) = call(&srv, &ops, "POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    // Updated (options only, then the same values sent again: no value changed).
    let (s, v) = srv.call(
        "PATCH",
        "/v1/connections/m3",
        Some(&json!({"page_size": 20, "description": "customers of 100"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = srv.call(
        "PUT",
        "/v1/connections/m3",
        Some(&json!({"values": values})),
    );
    assert_eq!(s, 200, "{v}");
    // Tested.
    let (s, v) = srv.call("POST", "/v1/connections/m3/test", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    // A run started, then cancelled.
    let (s, run) = call(
        &srv,
        &ops,
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "m3"})),
    );
    assert_eq!(s, 202, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while srv.call("GET", &format!("/v1/runs/{run_id}"), None).1["records"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, v) = srv.call("POST", &format!("/v1/runs/{run_id}/cancel"), None);
    assert_eq!(s, 202, "{v}");
    srv.wait_run(&run_id, Duration::from_secs(60));
    // A webhook created and deleted.
    let (s, hook) = srv.call(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": "http://127.0.0.1:9/x"})),
    );
    assert_eq!(s, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let hook_secret = hook["secret"].as_str().unwrap().to_string();
    assert_eq!(
        srv.call("DELETE", &format!("/v1/webhooks/{hook_id}"), None)
            .0,
        204
    );
    // Deleted.
    let (s, v) = call(&srv, &ops, "DELETE", "/v1/connections/m3", None);
    assert_eq!(s, 204, "{v}");
    // A refused change is no change: nothing recorded.
    assert_eq!(srv.call("DELETE", "/v1/connections/m3", None).0, 404);
    // A key made and one revoked on the command line.
    let _ci = apikey(home.path(), &["create", "--name", "ci"]);
    apikey(home.path(), &["revoke", "ops"]);

    let all = entries(&srv, "?limit=1000");
    let seen: Vec<(String, String, String)> = all
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
                e["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("key.created", "ops", "command-line"),
        ("connection.created", "m3", "ops"),
        ("connection.updated", "m3", "api-key-1"),
        ("connection.updated", "m3", "api-key-1"),
        ("connection.tested", "m3", "api-key-1"),
        ("run.started", run_id.as_str(), "ops"),
        ("run.cancelled", run_id.as_str(), "api-key-1"),
        ("webhook.created", hook_id.as_str(), "api-key-1"),
        ("webhook.deleted", hook_id.as_str(), "api-key-1"),
        ("connection.deleted", "m3", "ops"),
        ("key.created", "ci", "command-line"),
        ("key.revoked", "ops", "command-line"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, t, k)| (a.to_string(), t.to_string(), k.to_string()))
        .collect();
    assert_eq!(seen, want, "{all:#?}");
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["workspace"], "default", "{e}");
        assert_eq!(e["seq"], i as u64, "{e}");
        assert!(e["time"].as_u64().unwrap() > 1_600_000_000, "{e}");
    }
    // What changed, by name.
    let created = strs(&all[1]["changed"]);
    for f in ["connector", "values", "tasks", "destination", "page_size"] {
        assert!(created.contains(&f.to_string()), "{created:?}");
    }
    assert_eq!(
        strs(&all[2]["changed"]),
        ["description", "page_size"],
        "{}",
        all[2]
    );
    assert_eq!(strs(&all[3]["changed"]), Vec::<String>::new(), "{}", all[3]);
    assert_eq!(all[4]["outcome"], "passed", "{}", all[4]);

    // Filters and pages.
    let conn = entries(&srv, "?action=connection.");
    assert_eq!(conn.len(), 5, "{conn:#?}");
    assert!(
        conn.iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("connection."))
    );
    let updated = entries(&srv, "?action=connection.updated&target=m3");
    assert_eq!(updated.len(), 2, "{updated:#?}");
    let (s, page) = srv.call("GET", "/v1/audit?limit=5", None);
    assert_eq!(s, 200);
    assert_eq!(page["entries"].as_array().unwrap().len(), 5);
    assert_eq!(page["next"], 5, "{page}");
    let (_, page2) = srv.call("GET", "/v1/audit?limit=5&from=5", None);
    assert_eq!(page2["entries"][0]["seq"], 5, "{page2}");
    let (_, last) = srv.call("GET", "/v1/audit?from=10", None);
    assert_eq!(last["entries"].as_array().unwrap().len(), 2, "{last}");
    assert!(last.get("next").is_none(), "{last}");
    let (s, v) = srv.call("GET", "/v1/audit?limit=0", None);
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "limit", "{v}");
    assert_eq!(srv.call("GET", "/v1/audit?limit=many", None).0, 400);

    // No secret anywhere: not the canaries, not a key, not the webhook's secret.
    let file = std::fs::read_to_string(home.path().join("audit.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 12, "{file}");
    let answers = srv.bodies().join("\n");
    let audit_answers: String = srv
        .bodies()
        .iter()
        .filter(|b| b.contains("\"entries\""))
        .cloned()
        .collect();
    assert!(!audit_answers.is_empty());
    for secret in [
        CANARY_CS,
        CANARY_PW,
        TEST_KEY,
        ops.as_str(),
        hook_secret.as_str(),
    ] {
        assert!(!file.contains(secret), "a secret is in the audit log");
        assert!(!audit_answers.contains(secret), "a secret is in /v1/audit");
    }
    for canary in [CANARY_CS, CANARY_PW] {
        assert!(!answers.contains(canary), "a canary is in an answer");
        assert!(
            !srv.output().contains(canary),
            "a canary is in the server's output"
        );
    }
}
