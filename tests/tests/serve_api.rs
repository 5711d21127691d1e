#![allow(clippy::unwrap_used)]
//! `ionport serve` end to end over real HTTP: the `ionport` binary serving, the emulator
//! as the ION API Gateway, reqwest as the client. Canary secrets are planted in the
//! emulator's credentials and searched for in every response, the server's output, the
//! connection store and the key file.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_tests::emulated::Emulated;
use ionport_tests::{form_credentials, ionport_bin, profile_dir, python};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const CANARY_CS: &str = "CANARY-client-secret-5e1f0a";
const CANARY_PW: &str = "CANARY-password-93c7b2";
const KEY: &str = "test-key-0123456789abcdef";

fn emulator(scale: u64) -> Emulated {
    let credentials = EmulatorCredentials {
        client_secret: CANARY_CS.into(),
        sask: CANARY_PW.into(),
        ..EmulatorCredentials::default()
    };
    Emulated::start(EmulatorConfig {
        scale,
        credentials,
        quota: None,
        ..EmulatorConfig::default()
    })
}

/// The connection form's values for the emulator.
fn values(emu: &Emulated) -> Value {
    json!({"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())})
}

/// A running `ionport serve`, its output captured.
struct Server {
    child: Child,
    base: String,
    home: tempfile::TempDir,
    output: Arc<Mutex<String>>,
    client: Client,
    /// Every response body seen, for the canary check.
    bodies: Mutex<Vec<String>>,
}

fn capture(
    r: impl Read + Send + 'static,
    out: Arc<Mutex<String>>,
    first: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut first = first;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = first.take() {
                let _ = tx.send(line.clone());
            }
            let mut o = out.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    });
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let home = tempfile::tempdir().unwrap();
        Self::start_in(home, extra, true)
    }

    fn start_in(home: tempfile::TempDir, extra: &[&str], with_key: bool) -> Self {
        let mut cmd = Command::new(ionport_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if with_key {
            cmd.args(["--api-key", KEY]);
        }
        let mut child = cmd
            .args(extra)
            .env("IONPORT_PLUGIN_PATH", profile_dir())
            .env("IONPORT_HOME", home.path())
            .env("IONPORT_LOG", "debug")
            .env_remove("IONPORT_API_KEYS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        capture(child.stdout.take().unwrap(), output.clone(), Some(tx));
        capture(child.stderr.take().unwrap(), output.clone(), None);
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no listening line; output:\n{}", output.lock().unwrap()));
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            base,
            home,
            output,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            bodies: Mutex::new(Vec::new()),
        }
    }

    /// A request with `key` (None: without one); returns status and JSON (or text).
    fn call_with(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_with(Some(KEY), method, path, body)
    }

    fn raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Writes `request` on a fresh connection and reads the response's status and body
    /// (JSON or text) until the server closes or the body is complete.
    fn raw_tcp(&self, request: &[u8]) -> (u16, Value) {
        use std::io::Write;
        let addr = self.base.trim_start_matches("http://");
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        tcp.write_all(request).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_string)
                    })
                    .and_then(|n| n.trim().parse::<usize>().ok());
                if len.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&got).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        self.bodies.lock().unwrap().push(body.clone());
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn wait_run(&self, id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (s, v) = self.call("GET", &format!("/v1/runs/{id}"), None);
            assert_eq!(s, 200, "{v}");
            if v["finished"].is_u64() {
                return v;
            }
            assert!(start.elapsed() < limit, "run {id} did not finish: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// No canary in any response, the server's output or the files of its home.
    fn assert_no_canary(&self) {
        let mut places: Vec<(String, String)> = self
            .bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| ("a response".to_string(), b.clone()))
            .collect();
        places.push(("the server's output".into(), self.output()));
        for f in ["connections.json", "apikeys.json"] {
            if let Ok(t) = std::fs::read_to_string(self.home.path().join(f)) {
                places.push((f.into(), t));
            }
        }
        for (what, text) in places {
            for canary in [CANARY_CS, CANARY_PW] {
                assert!(
                    !text.contains(canary),
                    "{what} holds a canary secret:\n{text}"
                );
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn create_body(emu: &Emulated, name: &str, extra: Value) -> Value {
    let mut b = json!({"name": name, "connector": "infor-m3", "values": values(emu)});
    if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    b
}

fn rows(db: &Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(&format!("select count(*) from {table}"), [], |r| r.get(0))
        .unwrap()
}

fn vault_names(home: &Path) -> String {
    let out = Command::new(ionport_bin())
        .args(["vault", "list", "--json"])
        .env("IONPORT_HOME", home)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn create_test_run_update_delete_end_to_end() {
    let emu = emulator(120);
    let srv = Server::start(&[]);

    // A failing test: 422 with the report, nothing stored.
    let mut bad = create_body(&emu, "m3", json!({"tasks": [{"name": "customers"}]}));
    bad["values"]["credentials"]["password"] = json!("wrong-password");
    let (s, v) = srv.call("POST", "/v1/connections", Some(&bad));
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "test_failed", "{v}");
    assert_eq!(v["test"]["success"], false, "{v}");
    assert_eq!(srv.call("GET", "/v1/connections/m3", None).0, 404);
    assert_eq!(srv.call("GET", "/v1/connections", None).1, json!([]));
    assert!(!vault_names(srv.home.path()).contains("serve.m3"));

    // Invalid values: 422 naming the field.
    let mut wrong = create_body(&emu, "m3", json!({}));
    wrong["values"]["company"] = json!("one hundred");
    let (s, v) = srv.call("POST", "/v1/connections", Some(&wrong));
    assert_eq!(s, 422, "{v}");
    assert!(
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "values.company"),
        "{v}"
    );
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&create_body(
            &emu,
            "m3",
            json!({"tasks": [{"name": "nope"}]}),
        )),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "tasks[0].name", "{v}");

    // Created after its test passed; secrets masked; the tasks it got.
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&create_body(&emu, "m3", json!({"tasks": [{"name": "customers"}, {"name": "items", "enabled": false}], "page_size": 50}))),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["test"]["success"], true, "{v}");
    let conn = &v["connection"];
    assert_eq!(conn["values"]["credentials"]["password"], "********");
    assert_eq!(conn["values"]["credentials"]["client_secret"], "********");
    assert_eq!(conn["tasks"][0]["name"], "customers");
    assert_eq!(conn["tasks"][1]["enabled"], false);
    let db = PathBuf::from(conn["destination"]["path"].as_str().unwrap());
    assert_eq!(db, srv.home.path().join("data").join("m3.db"));
    assert!(vault_names(srv.home.path()).contains("serve.m3"));
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&create_body(&emu, "m3", json!({}))),
    );
    assert_eq!(s, 409, "{v}");
    let (s, v) = srv.call("GET", "/v1/connections/m3/tasks", None);
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);

    // Test, run, status, records in the destination.
    let (s, v) = srv.call("POST", "/v1/connections/m3/test", None);
    assert_eq!((s, &v["success"]), (200, &json!(true)), "{v}");
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let run = srv.wait_run(&id, Duration::from_secs(30));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["tasks"].as_array().unwrap().len(),
        1,
        "only the enabled task: {run}"
    );
    let task = &run["tasks"][0];
    assert_eq!(task["status"], "succeeded", "{run}");
    let records = run["records"].as_i64().unwrap();
    assert!(
        records > 0 && task["records"].as_i64() == Some(records),
        "{run}"
    );
    assert!(task["commits"].as_u64().unwrap() >= 2, "pages of 50: {run}");
    assert_eq!(rows(&db, "customers"), records);
    let (_, list) = srv.call("GET", "/v1/runs", None);
    assert_eq!(list[0]["id"], id.as_str());

    // Update: the masked secrets keep their stored values (the re-test passes).
    let mut shown = srv.call("GET", "/v1/connections/m3", None).1["values"].clone();
    shown["api_version"] = json!("v2");
    let (s, v) = srv.call(
        "PATCH",
        "/v1/connections/m3",
        Some(&json!({"values": shown})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["test"]["success"], true,
        "re-tested with the stored secrets: {v}"
    );
    assert_eq!(v["connection"]["values"]["api_version"], "v2");
    // A wrong secret is refused and changes nothing.
    let mut wrong = shown.clone();
    wrong["credentials"]["client_secret"] = json!("not-the-secret");
    let (s, v) = srv.call("PUT", "/v1/connections/m3", Some(&json!({"values": wrong})));
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "test_failed");
    let (s, v) = srv.call("POST", "/v1/connections/m3/test", None);
    assert_eq!((s, &v["success"]), (200, &json!(true)), "{v}");

    // Metrics after a run.
    let (s, m) = srv.call("GET", "/metrics", None);
    assert_eq!(s, 200);
    let m = m.as_str().unwrap();
    for family in [
        "ionport_http_requests_total{",
        "ionport_gateway_requests_total{connector=\"infor-m3\"}",
        "ionport_gateway_retries_total{",
        "ionport_gateway_unauthorized_total{",
        "ionport_gateway_rate_limited_total{",
        "ionport_records_total{connector=\"infor-m3\"}",
        "ionport_runs_total{outcome=\"succeeded\"} 1",
        "ionport_run_duration_seconds_bucket{",
        "ionport_connection_tests_total{",
    ] {
        assert!(m.contains(family), "no {family} in\n{m}");
    }

    // Delete: the record and the vault entry go.
    assert_eq!(srv.call("DELETE", "/v1/connections/m3", None).0, 204);
    assert_eq!(srv.call("GET", "/v1/connections/m3", None).0, 404);
    assert!(!vault_names(srv.home.path()).contains("serve.m3"));
    assert!(
        srv.output().contains("connection created"),
        "debug logs are captured"
    );
    srv.assert_no_canary();
}

/// A connection's task may keep deletions (`deletes = "soft"`) and choose its schema
/// policy through the API; the run record says how many rows were marked.
#[test]
fn deletes_and_schema_changes_are_set_per_task_and_reported_in_the_run_record() {
    let emu = emulator(120);
    let srv = Server::start(&[]);
    let body = create_body(
        &emu,
        "m3",
        json!({"tasks": [{"name": "customers", "deletes": "soft", "schema_changes": "freeze"}]}),
    );
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["connection"]["tasks"][0]["deletes"], "soft", "{v}");
    assert_eq!(
        v["connection"]["tasks"][0]["schema_changes"], "freeze",
        "{v}"
    );
    let bad = create_body(
        &emu,
        "m3b",
        json!({"tasks": [{"name": "customers", "deletes": "hard"}]}),
    );
    let (s, v) = srv.call("POST", "/v1/connections", Some(&bad));
    assert_eq!(s, 422, "{v}");
    assert!(
        v.to_string().contains("soft"),
        "the error names what is expected: {v}"
    );

    let run = |srv: &Server| {
        let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
        assert_eq!(s, 202, "{v}");
        let run = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(30));
        assert_eq!(run["status"], "succeeded", "{run}");
        run
    };
    let first = run(&srv);
    assert_eq!(first["tasks"][0]["deleted"], 0, "{first}");
    let report = emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OCUSMA", "count": 3, "cono": 100, "delete": true })),
    );
    let gone: Vec<String> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(gone.len(), 3, "{report}");
    let second = run(&srv);
    assert_eq!(second["tasks"][0]["deleted"], 3, "{second}");
    let db = srv.home.path().join("data").join("m3.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let mut marked: Vec<String> = c
        .prepare("select CUNO from customers where _ionport_deleted_at is not null")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|k| k.unwrap().trim().to_string())
        .collect();
    marked.sort();
    let mut gone = gone;
    gone.sort();
    assert_eq!(marked, gone);
}

/// A stream `discover` offers (beyond the predefined tasks) is a connection task like
/// any other: accepted by its name's form, resolved when the run starts, read into the
/// destination; a name of no form is refused naming what is expected.
#[test]
fn a_discovered_stream_is_a_connection_task() {
    let emu = emulator(40);
    let srv = Server::start(&[]);
    let bad = create_body(&emu, "m3x", json!({"tasks": [{"name": "tables:OCUSMA"}]}));
    let (s, v) = srv.call("POST", "/v1/connections", Some(&bad));
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("or a stream named"), "{v}");
    let body = create_body(&emu, "m3", json!({"tasks": [{"name": "table:OCUSMA"}]}));
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["connection"]["tasks"][0]["sync_mode"], "incremental",
        "{v}"
    );
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "succeeded", "{run}");
    let records = run["tasks"][0]["records"].as_i64().unwrap();
    // The emulator's own count of company 100's customers (OCUSMA).
    let info = emu.control("GET", "info", None);
    let expected = info["counts"]["100"]["customer"]
        .as_i64()
        .unwrap_or_else(|| panic!("no customer count: {info}"));
    assert_eq!(records, expected, "{run}");
    let db = srv.home.path().join("data").join("m3.db");
    let table = ionport_core::destination::table_name("table:OCUSMA");
    assert_eq!(rows(&db, &format!("\"{table}\"")), records);
}

#[test]
fn a_long_run_is_cancelled_and_a_second_run_is_refused() {
    let emu = emulator(20_000);
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 5 }])),
    );
    let srv = Server::start(&[]);
    let body = create_body(
        &emu,
        "big",
        json!({"tasks": [{"name": "customers"}], "page_size": 10, "quota": "none"}),
    );
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "big"})));
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "big"})));
    assert_eq!(s, 409, "{v}");
    assert_eq!(srv.call("DELETE", "/v1/connections/big", None).0, 409);
    // Wait for progress, then cancel.
    let start = Instant::now();
    loop {
        let (_, v) = srv.call("GET", &format!("/v1/runs/{id}"), None);
        if v["records"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no progress: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, v) = srv.call("POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(&id, Duration::from_secs(20));
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["tasks"][0]["status"], "cancelled", "{run}");
    assert!(run["records"].as_u64().unwrap() < 20_000, "{run}");
    assert_eq!(
        srv.call("POST", &format!("/v1/runs/{id}/cancel"), None).0,
        409
    );
    assert_eq!(srv.call("GET", "/v1/runs/run_unknown", None).0, 404);
    srv.assert_no_canary();
}

/// The field a 422 names first.
fn refused_field(v: &Value) -> String {
    v["fields"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Description, concurrency and retries: stored, shown, refused out of range (naming the
/// field), and used by a run: `retries = 0` makes one 503 fail the task at once, a retry
/// budget rides it out.
#[test]
fn description_concurrency_and_retries_are_stored_checked_and_used_by_runs() {
    let emu = emulator(120);
    let srv = Server::start(&[]);
    let tasks = json!([{"name": "customers"}, {"name": "items"}]);
    for (extra, field) in [
        (json!({"concurrency": 0}), "concurrency"),
        (json!({"concurrency": 65}), "concurrency"),
        (json!({"retries": 21}), "retries"),
        (json!({"description": "x".repeat(501)}), "description"),
    ] {
        let (s, v) = srv.call(
            "POST",
            "/v1/connections",
            Some(&create_body(&emu, "m3", extra)),
        );
        assert_eq!(s, 422, "{v}");
        assert_eq!(refused_field(&v), field, "{v}");
    }
    assert_eq!(srv.call("GET", "/v1/connections/m3", None).0, 404);

    let body = create_body(
        &emu,
        "m3",
        json!({"tasks": tasks, "description": "Finance M3, nightly", "concurrency": 1, "retries": 0, "quota": "none"}),
    );
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    let (_, shown) = srv.call("GET", "/v1/connections/m3", None);
    for c in [&v["connection"], &shown] {
        assert_eq!(c["description"], "Finance M3, nightly", "{c}");
        assert_eq!(c["concurrency"], 1, "{c}");
        assert_eq!(c["retries"], 0, "{c}");
    }
    let stored = std::fs::read_to_string(srv.home.path().join("connections.json")).unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["connections"]["m3"]["retries"], 0, "{stored}");
    assert_eq!(stored["connections"]["m3"]["concurrency"], 1, "{stored}");

    for (patch, field) in [
        (json!({"retries": 21}), "retries"),
        (json!({"concurrency": 0}), "concurrency"),
    ] {
        let (s, v) = srv.call("PATCH", "/v1/connections/m3", Some(&patch));
        assert_eq!(s, 422, "{v}");
        assert_eq!(refused_field(&v), field, "{v}");
    }

    // retries = 0: the first 503 of a read ends the task, no retry made.
    let fault = json!([{ "kind": "503", "rate": 1.0, "api": "m3", "count": 1 }]);
    emu.control("POST", "faults", Some(fault.clone()));
    let (s, v) = srv.call(
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "m3", "tasks": ["customers"]})),
    );
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["gateway"]["retries"], 0, "{run}");
    assert!(
        run["tasks"][0]["error"].as_str().unwrap().contains("503"),
        "{run}"
    );

    // Retries allowed: the same fault is ridden out.
    let (s, v) = srv.call(
        "PATCH",
        "/v1/connections/m3",
        Some(&json!({"retries": 2, "concurrency": 2, "description": ""})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["connection"]["retries"], 2, "{v}");
    assert_eq!(v["connection"]["concurrency"], 2, "{v}");
    assert!(v["connection"].get("description").is_none(), "{v}");
    emu.control("POST", "faults", Some(fault));
    let (s, v) = srv.call(
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "m3", "tasks": ["customers"]})),
    );
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["gateway"]["retries"].as_u64().unwrap() >= 1, "{run}");
    srv.assert_no_canary();
}

/// While a run goes, its record shows the connection's gateway requests rising before
/// the end; with `concurrency = 1` the second task waits for the first.
#[test]
fn a_run_record_shows_live_requests_and_the_connections_concurrency() {
    let emu = emulator(20_000);
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 5 }])),
    );
    let srv = Server::start(&[]);
    let body = create_body(
        &emu,
        "big",
        json!({"tasks": [{"name": "customers"}, {"name": "items"}], "page_size": 10, "quota": "none", "concurrency": 1}),
    );
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "big"})));
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let mut seen: Vec<u64> = Vec::new();
    let mut task_requests = 0;
    while seen.len() < 2 || seen[0] == seen[seen.len() - 1] {
        let (_, v) = srv.call("GET", &format!("/v1/runs/{id}"), None);
        task_requests = v["tasks"][0]["requests"].as_u64().unwrap_or(0);
        assert!(
            v["finished"].is_null(),
            "the run ended before the test saw it go: {v}"
        );
        let requests = v["gateway"]["requests"].as_u64().unwrap();
        if v["tasks"][0]["status"] == "running" && requests > 0 {
            // One task at a time: the second has not started.
            assert_eq!(v["tasks"][1]["status"], "queued", "{v}");
            seen.push(requests);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no live requests: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two ticks have passed: the running task's own requests are counted too.
    assert!(task_requests > 0, "the task's requests while it runs");
    let (s, v) = srv.call("POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(&id, Duration::from_secs(20));
    assert_eq!(run["status"], "cancelled", "{run}");
    assert!(
        run["gateway"]["requests"].as_u64().unwrap() >= *seen.last().unwrap(),
        "{run}"
    );
    srv.assert_no_canary();
}

/// Pinned Python tools for the HTTP API's conventions: the OpenAPI validator clients and
/// CI use, and the Prometheus client's own parsers of both metrics text formats.
const API_TOOLS: (&str, &[&str]) = (
    "serve-api",
    &["openapi-spec-validator==0.7.2", "prometheus-client==0.21.1"],
);

/// Every path and method of the served OpenAPI document: the document matches
/// `schemas/openapi.json`, is valid OpenAPI 3 (`openapi-spec-validator`) with one stable
/// operation id per operation, every operation exists (no 404-for-route, no 405), and every
/// one but /health and /openapi.json is 401 without a key or with a wrong one.
#[test]
fn openapi_is_current_and_every_operation_needs_a_key() {
    let srv = Server::start(&[]);
    // Readable without a key: clients are generated from it before anyone holds one.
    let (s, doc) = srv.call_with(None, "GET", "/openapi.json", None);
    assert_eq!(s, 200, "{doc}");
    assert_eq!(srv.call("GET", "/openapi.json", None).1, doc);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut ids = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            // `resource_action`: what generated clients name their functions after.
            let (resource, action) = id.split_once('_').unwrap_or(("", ""));
            assert!(
                !resource.is_empty()
                    && !action.is_empty()
                    && id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{method} {path}: operationId {id:?} is not resource_action"
            );
            ids.push(id.to_string());
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "repeated operation ids in {ids:?}");
    // Stable: the ids clients are generated with; renaming one breaks them.
    for id in [
        "connections_list",
        "connections_create",
        "connections_get",
        "connections_update",
        "connections_patch",
        "connections_delete",
        "connections_test",
        "connections_test_values",
        "connections_tasks",
        "connectors_list",
        "connectors_get",
        "connectors_form",
        "connectors_tasks",
        "runs_start",
        "runs_list",
        "runs_get",
        "runs_cancel",
        "system_health",
        "system_metrics",
        "system_openapi",
    ] {
        assert!(ids.iter().any(|i| i == id), "no operation {id} in {ids:?}");
    }
    let served = srv.home.path().join("served-openapi.json");
    std::fs::write(&served, doc.to_string()).unwrap();
    let venv = python::venv(API_TOOLS);
    let out = Command::new(python::bin(&venv, "openapi-spec-validator"))
        .arg(&served)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the served document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/openapi.json");
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        doc, checked_in,
        "schemas/openapi.json is stale: run `cargo xtask schemas`"
    );
    let mut n = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "dummy").replace("{name}", "dummy");
        for method in ops.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let body = matches!(m.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
            let (s, v) = srv.call(&m, &concrete, body.as_ref());
            assert!(s != 405 && v["error"] != "no_route", "{m} {path}: {s} {v}");
            if path == "/health" || path == "/openapi.json" {
                assert_eq!(srv.call_with(None, &m, &concrete, None).0, 200);
                assert_eq!(srv.call_with(Some("wrong-key"), &m, &concrete, None).0, 200);
                continue;
            }
            for key in [None, Some("wrong-key")] {
                let (s, v) = srv.call_with(key, &m, &concrete, body.as_ref());
                assert_eq!(s, 401, "{m} {path} with {key:?}: {v}");
                assert_eq!(v["error"], "unauthorized");
                assert!(!v.to_string().contains("dummy"), "{v}");
            }
            n += 1;
        }
    }
    assert!(n >= 18, "{n} operations");
    // Unknown paths and methods are 401 without a key too (auth before routing).
    assert_eq!(srv.call_with(None, "GET", "/v1/nothing", None).0, 401);
    assert_eq!(srv.call_with(None, "DELETE", "/v1/runs", None).0, 401);
    assert_eq!(srv.call("GET", "/v1/nothing", None).0, 404);
    // X-API-Key works as well as Bearer.
    let r = srv
        .client
        .get(format!("{}/v1/connectors", srv.base))
        .header("X-API-Key", KEY)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ids: Vec<Value> = r
        .json::<Vec<Value>>()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert!(ids.contains(&json!("infor-m3")), "{ids:?}");
    let (s, form) = srv.call("GET", "/v1/connectors/infor-m3/form", None);
    assert_eq!(s, 200);
    assert_eq!(form["title"], "Infor M3 connection");
    assert_eq!(
        srv.call("GET", "/v1/connectors/infor-m3/tasks", None).1[0]["name"],
        "customers"
    );
    assert_eq!(srv.call("GET", "/v1/connectors/nope", None).0, 404);
}

#[test]
fn malformed_wrongly_typed_and_oversized_input_is_refused() {
    let srv = Server::start(&["--max-body", "65536"]);
    let (s, v) = srv.raw("/v1/connections", b"{\"name\": \"x\",".to_vec());
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("malformed_json")),
        "{v}"
    );
    let (s, v) = srv.raw("/v1/runs", b"[1, 2".to_vec());
    assert_eq!(s, 400, "{v}");
    let (s, v) = srv.raw("/v1/connections", b"{} trailing".to_vec());
    assert_eq!(s, 400, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&json!({"name": "x", "connector": "infor-m3", "values": {}, "tasks": [{"name": "customers", "enabled": "yes"}]})),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "tasks[0].enabled", "{v}");
    let (s, v) = srv.call("POST", "/v1/connections", Some(&json!({"name": 7})));
    assert_eq!(
        (s, v["fields"][0]["field"].as_str()),
        (422, Some("name")),
        "{v}"
    );
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&json!({"connector": "infor-m3", "values": {}})),
    );
    assert_eq!(
        (s, v["fields"][0]["field"].as_str()),
        (422, Some("name")),
        "{v}"
    );
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&json!({"name": "../x", "connector": "infor-m3", "values": {}})),
    );
    assert_eq!(
        (s, v["fields"][0]["field"].as_str()),
        (422, Some("name")),
        "{v}"
    );
    let (s, v) = srv.call(
        "POST",
        "/v1/connections",
        Some(&json!({"name": "x", "connector": "nope", "values": {}})),
    );
    assert_eq!(
        (s, v["fields"][0]["field"].as_str()),
        (422, Some("connector")),
        "{v}"
    );
    let (s, v) = srv.call(
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "x", "pipeline": "y"})),
    );
    assert_eq!(s, 422, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "x", "surprise": 1})),
    );
    assert_eq!(
        (s, v["fields"][0]["field"].as_str()),
        (422, Some("surprise")),
        "{v}"
    );
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "nope"})));
    assert_eq!(s, 404, "{v}");
    // Over the limit: announced by Content-Length, and streamed chunked without one.
    // Raw TCP, because a client that keeps writing after the server answered 413 and
    // closed can see a reset before it reads the answer (that race failed CI once).
    let head = format!(
        "POST /v1/connections HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 200000\r\n\r\n{{\"name\": \""
    );
    let (s, v) = srv.raw_tcp(head.as_bytes());
    assert_eq!(
        (s, v["error"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    let mut chunked = format!(
        "POST /v1/connections HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let body = format!("{{\"name\": \"{}\"}}", "a".repeat(70_000));
    for c in body.as_bytes().chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (s, v) = srv.raw_tcp(&chunked);
    assert_eq!(
        (s, v["error"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    // Still serving.
    assert_eq!(srv.call_with(None, "GET", "/health", None).0, 200);
    assert_eq!(srv.call("GET", "/v1/connections", None).0, 200);
    assert!(srv.child_alive());
}

impl Server {
    fn child_alive(&self) -> bool {
        // `try_wait` needs &mut; ask the OS instead.
        Path::new(&format!("/proc/{}", self.child.id())).exists()
    }
}

#[test]
fn api_keys_are_created_listed_revoked_and_required() {
    let home = tempfile::tempdir().unwrap();
    let ionport = |args: &[&str]| {
        Command::new(ionport_bin())
            .args(args)
            .env("IONPORT_HOME", home.path())
            .env_remove("IONPORT_API_KEYS")
            .output()
            .unwrap()
    };
    // No key at all: the server refuses to start.
    let out = Command::new(ionport_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("IONPORT_HOME", home.path())
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env_remove("IONPORT_API_KEYS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API key"));

    let out = ionport(&["apikey", "create", "--name", "ci"]);
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("ionp_"), "{key}");
    assert!(
        !ionport(&["apikey", "create", "--name", "ci"])
            .status
            .success()
    );
    let list = String::from_utf8(ionport(&["apikey", "list"]).stdout).unwrap();
    assert!(list.contains("ci") && !list.contains(&key), "{list}");
    let file = home.path().join("apikeys.json");
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&key));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let home_path = home.path().to_path_buf();
    let srv = Server::start_in(home, &[], false);
    assert_eq!(
        srv.call_with(Some(&key), "GET", "/v1/connectors", None).0,
        200
    );
    assert_eq!(
        srv.call_with(Some(KEY), "GET", "/v1/connectors", None).0,
        401
    );
    let out = Command::new(ionport_bin())
        .args(["apikey", "revoke", "ci"])
        .env("IONPORT_HOME", &home_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        srv.call_with(Some(&key), "GET", "/v1/connectors", None).0,
        401,
        "revoked at once"
    );
    assert!(!srv.output().contains(&key), "the key is never logged");
}

/// The session cookie of a response (`name=value`), when it sets one.
fn session_cookie(r: &reqwest::blocking::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ionport_console="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// A console session lives only as long as the key it signed in with: revoking the key
/// ends the session at its next request (no browser needed for this: plain HTTP).
#[test]
fn a_console_session_ends_when_its_key_is_revoked() {
    let home = tempfile::tempdir().unwrap();
    let ionport = |args: &[&str]| {
        Command::new(ionport_bin())
            .args(args)
            .env("IONPORT_HOME", home.path())
            .env_remove("IONPORT_API_KEYS")
            .output()
            .unwrap()
    };
    let out = ionport(&["apikey", "create", "--name", "console"]);
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let home_path = home.path().to_path_buf();
    let srv = Server::start_in(home, &[], true);
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .get(format!("{}/console/login", srv.base))
        .send()
        .unwrap();
    let cookie = session_cookie(&login).expect("the sign-in page starts a session");
    let page = login.text().unwrap();
    let csrf = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-in form carries its CSRF token")
        .to_string();
    let signed = http
        .post(format!("{}/console/login", srv.base))
        .header("cookie", &cookie)
        .form(&[("key", key.as_str()), ("_csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()["location"], "/console/connections");
    let cookie = session_cookie(&signed).unwrap_or(cookie);
    let page = |cookie: &str| {
        http.get(format!("{}/console/connections", srv.base))
            .header("cookie", cookie)
            .send()
            .unwrap()
    };
    assert_eq!(page(&cookie).status(), 200, "signed in");
    let out = Command::new(ionport_bin())
        .args(["apikey", "revoke", "console"])
        .env("IONPORT_HOME", &home_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = page(&cookie);
    assert_eq!(after.status(), 303, "the revoked key's session is over");
    assert_eq!(after.headers()["location"], "/console/login");
    assert!(!srv.output().contains(&key), "the key is never logged");
}

#[test]
fn sigterm_cancels_runs_and_keeps_their_shared_tokens() {
    let emu = emulator(20_000);
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 5 }])),
    );
    let mut srv = Server::start(&[]);
    let body = create_body(
        &emu,
        "long",
        json!({"tasks": [{"name": "customers"}], "page_size": 10, "quota": "none"}),
    );
    assert_eq!(srv.call("POST", "/v1/connections", Some(&body)).0, 201);
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "long"})));
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while srv.call("GET", &format!("/v1/runs/{id}"), None).1["records"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let revoked_before = emu.emu.counters().revocations;
    let ok = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", srv.output());
    assert_eq!(
        emu.emu.counters().revocations,
        revoked_before,
        "the run's tokens are shared through the vault: left there, not revoked"
    );
    let db = srv.home.path().join("data").join("long.db");
    let n = rows(&db, "customers");
    assert!(n > 0 && n < 20_000, "{n} rows committed before the stop");
    srv.assert_no_canary();
}

#[test]
fn a_pipeline_of_the_pipeline_file_runs_through_the_api() {
    let emu = emulator(80);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "sqlite", path = "out.db" }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{}" }}
settings = {{ company = 100 }}
quota = "none"

[pipelines.daily]
connection = "m3"
environment = "out"
tasks = ["customers", "items"]
"#,
            ionapi.display()
        ),
    )
    .unwrap();
    let srv = Server::start(&["--pipeline", file.to_str().unwrap()]);
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"pipeline": "nope"})));
    assert_eq!(s, 404, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/v1/runs",
        Some(&json!({"pipeline": "daily", "task": "nope"})),
    );
    assert_eq!(s, 422, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/v1/runs",
        Some(&json!({"pipeline": "daily", "task": "customers"})),
    );
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["pipeline"], "daily");
    assert_eq!(run["tasks"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(
        rows(&dir.path().join("out.db"), "customers"),
        run["records"].as_i64().unwrap()
    );
    // The run went through core's one read path (see one_read_path.rs for the others).
    let log = srv.output.lock().unwrap().clone();
    assert_eq!(
        ionport_tests::finished_reads(&log),
        vec![("customers".to_string(), run["records"].as_u64().unwrap())],
        "{log}"
    );
    srv.assert_no_canary();
}

/// `/metrics` by `Accept`: OpenMetrics by default and when Prometheus asks as it does by
/// default; the classic text format (0.0.4) when the scraper prefers it. Each answer is
/// read by the Prometheus Python client's parser of its format.
#[test]
fn metrics_speak_openmetrics_or_the_classic_format_as_accept_asks() {
    let srv = Server::start(&[]);
    // Some traffic, so counter and histogram families have samples.
    assert_eq!(srv.call("GET", "/v1/connectors", None).0, 200);
    assert_eq!(srv.call_with(None, "GET", "/v1/connectors", None).0, 401);
    assert_eq!(srv.call_with(None, "GET", "/metrics", None).0, 401);
    let scrape = |accept: Option<&str>| {
        let mut req = srv
            .client
            .get(format!("{}/metrics", srv.base))
            .bearer_auth(KEY);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        (ct, resp.text().unwrap())
    };
    let venv = python::venv(API_TOOLS);
    let parse = |format: &str, text: &str| -> Vec<Value> {
        use std::io::Write;
        let mut child = Command::new(python::bin(&venv, "python"))
            .arg(python::script("metrics_parse.py"))
            .arg(format)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the {format} parser refuses:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let expect_families = |families: &[Value], what: &str| {
        for (name, kind) in [
            ("ionport_http_requests", "counter"),
            ("ionport_http_unauthorized", "counter"),
            ("ionport_http_request_duration_seconds", "histogram"),
        ] {
            let f = families
                .iter()
                .find(|f| f["name"] == name)
                .unwrap_or_else(|| panic!("{what}: no family {name} in {families:?}"));
            assert_eq!(f["type"], kind, "{what}: {f}");
            assert!(!f["samples"].as_array().unwrap().is_empty(), "{what}: {f}");
        }
        // A sample the parser could not put in its family makes an untyped one.
        for f in families {
            assert_ne!(f["type"], "unknown", "{what}: an untyped family {f}");
        }
    };

    let prometheus_default = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    for accept in [None, Some("*/*"), Some(prometheus_default)] {
        let (ct, text) = scrape(accept);
        assert!(
            ct.starts_with("application/openmetrics-text; version=1.0.0"),
            "{accept:?}: {ct}"
        );
        assert!(text.ends_with("# EOF\n"), "{accept:?}:\n{text}");
        assert!(text.contains("# TYPE ionport_http_requests counter\n"));
        expect_families(&parse("openmetrics", &text), "OpenMetrics");
    }

    for accept in [
        "text/plain; version=0.0.4",
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        "application/openmetrics-text;q=0.1, text/plain;q=0.9",
    ] {
        let (ct, text) = scrape(Some(accept));
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8", "{accept}");
        assert!(!text.contains("# EOF"), "{accept}:\n{text}");
        assert!(!text.contains("# UNIT"), "{accept}:\n{text}");
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        for line in [
            "# TYPE ionport_http_requests_total counter",
            "# TYPE ionport_http_unauthorized_total counter",
            "# TYPE ionport_http_request_duration_seconds histogram",
        ] {
            assert!(types.contains(&line), "{accept}: no {line:?} in {types:?}");
        }
        expect_families(&parse("classic", &text), "classic");
    }
}
