#![allow(clippy::unwrap_used)]
//! Workspaces of `ionport serve`, through the HTTP API of a real server: two workspaces A
//! and B, each with its own key. Every route of the OpenAPI document is tried with A's
//! key on B's ids (the route list is the document's, and a route the table below does
//! not cover fails the test), answers 404 exactly as for an id that never existed, and
//! changes nothing of B's (checked afterwards with B's key); lists never show B's items;
//! the admin key does what workspace keys cannot; limits are 429s naming the limit; the
//! single-user setup (no workspace anywhere) is `default`'s; and the webhook delivery log
//! survives a restart.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::receiver::{Behaviour, Receiver};
use ionport_tests::serve_process::{ServeProcess, TEST_KEY};
use ionport_tests::{form_credentials, ionport_bin};
use serde_json::{Value, json};

const WS: &str = "ionport-workspace";

fn emulator(latency_ms: u64) -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: 60,
        quota: None,
        latency: Duration::from_millis(latency_ms),
        ..EmulatorConfig::default()
    })
}

/// A client acting with one key.
struct As<'a> {
    srv: &'a ServeProcess,
    key: String,
    headers: Vec<(&'static str, String)>,
}

impl As<'_> {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let h: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.srv.call_as(&self.key, &h, method, path, body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }
}

fn admin(srv: &ServeProcess) -> As<'_> {
    As {
        srv,
        key: TEST_KEY.into(),
        headers: Vec::new(),
    }
}

/// The admin key acting in `ws`.
fn admin_in<'a>(srv: &'a ServeProcess, ws: &str) -> As<'a> {
    As {
        srv,
        key: TEST_KEY.into(),
        headers: vec![(WS, ws.to_string())],
    }
}

/// Creates workspace `name` with `limits` and a workspace key for it.
fn workspace<'a>(srv: &'a ServeProcess, name: &str, limits: Value) -> As<'a> {
    let a = admin(srv);
    let w = a.ok(
        "POST",
        "/v1/workspaces",
        Some(&json!({"name": name, "limits": limits})),
    );
    assert_eq!(w["name"], name, "{w}");
    let k = a.ok(
        "POST",
        "/v1/keys",
        Some(&json!({"name": format!("{name}-key"), "workspace": name})),
    );
    assert_eq!(k["role"], "workspace", "{k}");
    assert_eq!(k["workspace"], name, "{k}");
    As {
        srv,
        key: k["key"].as_str().unwrap().to_string(),
        headers: Vec::new(),
    }
}

fn connection_body(emu: &Emulated, name: &str, page_size: u32) -> Value {
    json!({
        "name": name,
        "connector": "infor-m3",
        "values": {"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())},
        "tasks": [{"name": "customers"}],
        "page_size": page_size,
    })
}

fn wait_run(c: &As<'_>, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = c.ok("GET", &format!("/v1/runs/{id}"), None);
        if v["finished"].is_u64() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "run {id} did not end: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The web console's connection list, signed in with `key` (a session cookie and the
/// sign-in form's CSRF token, as a browser would send them).
fn console_connections(srv: &ServeProcess, key: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_of = |r: &reqwest::blocking::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ionport_console="))
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    let login = client
        .get(format!("{}/console/login", srv.base))
        .send()
        .unwrap();
    let cookie = cookie_of(&login).expect("a session cookie");
    let page = login.text().unwrap();
    let at = page.find("name=\"_csrf\" value=\"").unwrap() + 20;
    let csrf = &page[at..at + page[at..].find('"').unwrap()];
    let signed = client
        .post(format!("{}/console/login", srv.base))
        .header("cookie", &cookie)
        .form(&[("key", key), ("_csrf", csrf)])
        .send()
        .unwrap();
    assert_eq!(signed.status().as_u16(), 303, "signed in");
    let cookie = cookie_of(&signed).unwrap_or(cookie);
    let list = client
        .get(format!("{}/console/connections", srv.base))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);
    list.text().unwrap()
}

/// What B holds, as B's key sees it (times and all).
fn snapshot(b: &As<'_>, conn: &str, run: &str, hook: &str) -> Vec<Value> {
    vec![
        b.ok("GET", "/v1/connections", None),
        b.ok("GET", &format!("/v1/connections/{conn}"), None),
        b.ok("GET", &format!("/v1/connections/{conn}/states"), None),
        b.ok("GET", "/v1/runs", None),
        b.ok("GET", &format!("/v1/runs/{run}"), None),
        b.ok("GET", "/v1/webhooks", None),
        b.ok("GET", &format!("/v1/webhooks/{hook}/deliveries"), None),
        b.ok("GET", "/v1/audit", None),
    ]
}

/// What A's key must get on a route, tried with B's ids.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 404, exactly as for an id that never existed.
    Unknown,
    /// 403 `forbidden`: an admin route (the same for every id).
    AdminOnly,
    /// Not workspace data (the loaded connectors, liveness, the document): answered.
    Shared,
    /// No id in the path: a list or a create, checked on its own below.
    NoId,
}

/// Every route of the document and what A's key gets on it with B's ids. A route missing
/// here fails the test.
const TABLE: &[(&str, &str, Expect)] = &[
    ("get", "/health", Expect::Shared),
    ("get", "/openapi.json", Expect::Shared),
    ("get", "/metrics", Expect::AdminOnly),
    ("get", "/v1/cluster", Expect::AdminOnly),
    ("get", "/v1/connectors", Expect::Shared),
    ("get", "/v1/connectors/{id}", Expect::Shared),
    ("get", "/v1/connectors/{id}/form", Expect::Shared),
    ("get", "/v1/connectors/{id}/tasks", Expect::Shared),
    ("get", "/v1/connections", Expect::NoId),
    ("post", "/v1/connections", Expect::NoId),
    ("post", "/v1/connections/test", Expect::NoId),
    ("get", "/v1/connections/{name}", Expect::Unknown),
    ("put", "/v1/connections/{name}", Expect::Unknown),
    ("patch", "/v1/connections/{name}", Expect::Unknown),
    ("delete", "/v1/connections/{name}", Expect::Unknown),
    ("post", "/v1/connections/{name}/test", Expect::Unknown),
    ("get", "/v1/connections/{name}/tasks", Expect::Unknown),
    ("get", "/v1/connections/{name}/states", Expect::Unknown),
    ("delete", "/v1/connections/{name}/states", Expect::Unknown),
    ("get", "/v1/runs", Expect::NoId),
    ("post", "/v1/runs", Expect::NoId),
    ("get", "/v1/runs/{id}", Expect::Unknown),
    ("post", "/v1/runs/{id}/cancel", Expect::Unknown),
    ("get", "/v1/webhooks", Expect::NoId),
    ("post", "/v1/webhooks", Expect::NoId),
    ("get", "/v1/webhooks/{id}", Expect::Unknown),
    ("delete", "/v1/webhooks/{id}", Expect::Unknown),
    ("get", "/v1/webhooks/{id}/deliveries", Expect::Unknown),
    ("get", "/v1/audit", Expect::NoId),
    ("get", "/v1/workspaces", Expect::AdminOnly),
    ("post", "/v1/workspaces", Expect::AdminOnly),
    ("get", "/v1/workspaces/{workspace}", Expect::AdminOnly),
    ("patch", "/v1/workspaces/{workspace}", Expect::AdminOnly),
    ("delete", "/v1/workspaces/{workspace}", Expect::AdminOnly),
    ("get", "/v1/keys", Expect::AdminOnly),
    ("post", "/v1/keys", Expect::AdminOnly),
    ("delete", "/v1/keys/{name}", Expect::AdminOnly),
];

/// The document's routes: (method, path).
fn documented(srv: &ServeProcess) -> BTreeSet<(String, String)> {
    let (s, doc) = srv.call_as("none", &[], "GET", "/openapi.json", None);
    assert_eq!(s, 200);
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

/// `path` with B's ids in it (or `unknown` ids, for the never-existed comparison).
fn fill(path: &str, conn: &str, run: &str, hook: &str, ws: &str, key: &str) -> String {
    let p = path.replace("{workspace}", ws);
    if p.starts_with("/v1/connections/") {
        p.replace("{name}", conn)
    } else if p.starts_with("/v1/runs/") {
        p.replace("{id}", run)
    } else if p.starts_with("/v1/webhooks/") {
        p.replace("{id}", hook)
    } else if p.starts_with("/v1/keys/") {
        p.replace("{name}", key)
    } else {
        p.replace("{id}", "infor-m3")
    }
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("put" | "patch", p) if p.starts_with("/v1/connections/") => {
            Some(json!({"description": "changed by A"}))
        }
        ("patch", p) if p.starts_with("/v1/workspaces/") => {
            Some(json!({"limits": {"max_connections": 1}}))
        }
        ("post", "/v1/workspaces") => Some(json!({"name": "from-a"})),
        ("post", "/v1/keys") => Some(json!({"name": "from-a", "workspace": "b", "role": "admin"})),
        _ => None,
    }
}

#[test]
fn a_workspace_key_cannot_read_change_run_or_detect_another_workspaces_things() {
    let emu = emulator(0);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let receiver = Receiver::start(Behaviour::Accept);
    let a = workspace(&srv, "a", json!({}));
    let b = workspace(&srv, "b", json!({}));

    // B: a connection, a run (a state, audit entries), a webhook with a delivery.
    let hook = b.ok(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": receiver.url, "events": ["run.finished"]})),
    );
    let hook_id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["workspace"], "b", "{hook}");
    let created = b.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "b-conn", 20)),
    );
    assert_eq!(created["connection"]["workspace"], "b", "{created}");
    let run = b.ok("POST", "/v1/runs", Some(&json!({"connection": "b-conn"})));
    let run_id = run["id"].as_str().unwrap().to_string();
    let done = wait_run(&b, &run_id);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["workspace"], "b", "{done}");
    receiver.wait_for(Duration::from_secs(60), "B's delivery", |r| {
        r.iter().any(|x| x.answered == Some(200))
    });
    let delivered = Instant::now();
    loop {
        let d = b.ok("GET", &format!("/v1/webhooks/{hook_id}/deliveries"), None);
        if d[0]["status"] == "delivered" {
            break;
        }
        assert!(delivered.elapsed() < Duration::from_secs(30), "{d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let states = b.ok("GET", "/v1/connections/b-conn/states", None);
    assert!(
        states["states"]["customers"].is_object(),
        "B's run saved a state: {states}"
    );
    // A: a connection of its own.
    a.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "a-conn", 20)),
    );
    let before = snapshot(&b, "b-conn", &run_id, &hook_id);

    // Every documented route is in the table, and every table row is documented.
    let routes = documented(&srv);
    let table: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes the isolation test does not cover: {missing:?}"
    );
    let stale: Vec<_> = table.difference(&routes).collect();
    assert!(stale.is_empty(), "rows for routes that are gone: {stale:?}");

    for (method, path, expect) in TABLE {
        let with_b = fill(path, "b-conn", &run_id, &hook_id, "b", "b-key");
        let body = body_for(method, path);
        let (s, v) = a.call(&method.to_uppercase(), &with_b, body.as_ref());
        match expect {
            Expect::Unknown => {
                assert_eq!(s, 404, "{method} {with_b} with A's key: {v}");
                // The same answer as for ids that never existed, but for the id itself.
                let never = fill(
                    path,
                    "never-conn",
                    "run_0000000000000000",
                    "wh_0000000000000000",
                    "b",
                    "b-key",
                );
                let (s2, v2) = a.call(&method.to_uppercase(), &never, body.as_ref());
                assert_eq!(s2, 404, "{method} {never}: {v2}");
                let same = v2
                    .to_string()
                    .replace("never-conn", "b-conn")
                    .replace("run_0000000000000000", &run_id)
                    .replace("wh_0000000000000000", &hook_id);
                assert_eq!(v.to_string(), same, "{method} {path}: B's id is told apart");
            }
            Expect::AdminOnly => {
                assert_eq!(s, 403, "{method} {with_b} with A's key: {v}");
                assert_eq!(v["error"], "forbidden", "{v}");
                // And the admin key may.
                let (s, v) = admin(&srv).call("GET", "/v1/workspaces", None);
                assert_eq!(s, 200, "{v}");
            }
            Expect::Shared => assert_eq!(s, 200, "{method} {with_b}: {v}"),
            Expect::NoId => {}
        }
    }

    // Ids carried in bodies, queries and the workspace header are unknown too.
    let (s, v) = a.call("POST", "/v1/runs", Some(&json!({"connection": "b-conn"})));
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")), "{v}");
    let (s, v) = a.call("GET", "/v1/audit?workspace=b", None);
    assert_eq!(s, 404, "{v}");
    let (s2, v2) = a.call("GET", "/v1/audit?workspace=zz-none", None);
    assert_eq!(s2, 404, "{v2}");
    assert_eq!(v.to_string().replace("'b'", "'zz-none'"), v2.to_string());
    for ws in ["b", "zz-none"] {
        let h = [(WS, ws)];
        let (s, v) = srv.call_as(&a.key, &h, "GET", "/v1/connections", None);
        assert_eq!(s, 404, "A naming workspace {ws}: {v}");
    }
    let v = a.ok("GET", "/v1/audit?target=b-conn", None);
    assert_eq!(v["entries"], json!([]), "{v}");

    // Lists never show B's items.
    let conns = a.ok("GET", "/v1/connections", None);
    let names: Vec<&str> = conns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-conn"], "{conns}");
    assert_eq!(a.ok("GET", "/v1/runs", None), json!([]));
    assert_eq!(a.ok("GET", "/v1/webhooks", None), json!([]));
    let audit = a.ok("GET", "/v1/audit", None);
    let entries = audit["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{audit}");
    for e in entries {
        assert_eq!(e["workspace"], "a", "A reads only A's audit: {e}");
    }

    // Nothing of B's changed.
    assert_eq!(
        snapshot(&b, "b-conn", &run_id, &hook_id),
        before,
        "A's tries changed B"
    );

    // The web console shows a workspace key its own workspace only (names as cell text:
    // `data-connection` holds "a-conn" too).
    let page = console_connections(&srv, &a.key);
    assert!(
        page.contains(">a-conn<") && !page.contains(">b-conn<"),
        "{page}"
    );
    let page = console_connections(&srv, &b.key);
    assert!(
        page.contains(">b-conn<") && !page.contains(">a-conn<"),
        "{page}"
    );
    let (s, _) = b.call("GET", "/v1/connections/b-conn", None);
    assert_eq!(s, 200);

    // B's own key resets its state (what A's could not): the next run reads from the start.
    let (s, v) = b.call(
        "DELETE",
        "/v1/connections/b-conn/states?task=customers",
        None,
    );
    assert_eq!(s, 204, "{v}");
    let states = b.ok("GET", "/v1/connections/b-conn/states", None);
    assert_eq!(states["states"], json!({}), "{states}");
    let resets = b.ok("GET", "/v1/audit?action=state.reset", None);
    assert_eq!(resets["entries"].as_array().unwrap().len(), 1, "{resets}");
    assert_eq!(resets["entries"][0]["key"], "b-key", "{resets}");
    assert_eq!(
        resets["entries"][0]["changed"],
        json!(["state.customers"]),
        "{resets}"
    );

    // A connection name is a workspace's own: A may use B's.
    let (s, v) = a.call(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "b-conn", 20)),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["connection"]["workspace"], "a", "{v}");
    let (s, v) = b.call("GET", "/v1/connections/b-conn", None);
    assert_eq!((s, &v["workspace"]), (200, &json!("b")), "{v}");
    let mine = a.ok("GET", "/v1/connections/b-conn", None);
    assert_ne!(
        mine["destination"], v["destination"],
        "two workspaces, two destinations"
    );

    // The admin key: every workspace's audit, and acting in B through the header.
    let all = admin(&srv).ok("GET", "/v1/audit?limit=1000", None);
    let spaces: BTreeSet<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["workspace"].as_str().unwrap())
        .collect();
    assert!(spaces.contains("a") && spaces.contains("b"), "{all}");
    let only_b = admin(&srv).ok("GET", "/v1/audit?workspace=b", None);
    for e in only_b["entries"].as_array().unwrap() {
        assert_eq!(e["workspace"], "b", "{e}");
    }
    let in_b = admin_in(&srv, "b");
    let v = in_b.ok("GET", "/v1/connections/b-conn", None);
    assert_eq!(v["workspace"], "b");
    let v = in_b.ok("GET", &format!("/v1/runs/{run_id}"), None);
    assert_eq!(v["id"], run_id.as_str());
    let (s, _) = admin(&srv).call("GET", &format!("/v1/runs/{run_id}"), None);
    assert_eq!(
        s, 404,
        "without the header the admin key acts in its own workspace"
    );
    let (s, v) = admin_in(&srv, "zz-none").call("GET", "/v1/connections", None);
    assert_eq!(s, 404, "{v}");

    // Workspaces: listed with what they hold; not deleted while they hold something.
    let list = admin(&srv).ok("GET", "/v1/workspaces", None);
    let b_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "b")
        .unwrap();
    assert_eq!(
        (b_row["connections"].as_u64(), b_row["webhooks"].as_u64()),
        (Some(1), Some(1)),
        "{list}"
    );
    let (s, v) = admin(&srv).call("DELETE", "/v1/workspaces/b", None);
    assert_eq!(s, 409, "{v}");
    let (s, v) = admin(&srv).call("DELETE", "/v1/workspaces/default", None);
    assert_eq!(s, 409, "{v}");
    // An emptied workspace is deleted, and its key stops working at once.
    in_b.ok("DELETE", "/v1/connections/b-conn", None);
    in_b.ok("DELETE", &format!("/v1/webhooks/{hook_id}"), None);
    admin(&srv).ok("DELETE", "/v1/workspaces/b", None);
    let (s, v) = b.call("GET", "/v1/connections", None);
    assert_eq!(s, 401, "B's key after B was deleted: {v}");
}

#[test]
fn limits_are_enforced_with_a_429_naming_the_limit_and_its_value() {
    // Slow pages, so that a run is still going when the next is asked for.
    let emu = emulator(150);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let c = workspace(
        &srv,
        "c",
        json!({"max_connections": 1, "max_concurrent_runs": 1}),
    );

    c.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "one", 5)),
    );
    let (s, v) = c.call(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "two", 5)),
    );
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"], "limit_exceeded", "{v}");
    assert_eq!(
        v["limit"],
        json!({"name": "max_connections", "value": 1, "workspace": "c"}),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("max_connections = 1"),
        "{v}"
    );
    assert_eq!(
        c.ok("GET", "/v1/connections", None)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The admin raises the connection limit; the run limit stays 1.
    admin(&srv).ok(
        "PATCH",
        "/v1/workspaces/c",
        Some(&json!({"limits": {"max_connections": 2, "max_concurrent_runs": 1}})),
    );
    c.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "two", 5)),
    );
    let first = c.ok("POST", "/v1/runs", Some(&json!({"connection": "one"})));
    let first_id = first["id"].as_str().unwrap().to_string();
    let (s, v) = c.call("POST", "/v1/runs", Some(&json!({"connection": "two"})));
    let going = c.ok("GET", &format!("/v1/runs/{first_id}"), None);
    if going["finished"].is_u64() {
        panic!(
            "the first run ended before the second was asked for; the test proves nothing: {going}"
        );
    }
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"], "limit_exceeded", "{v}");
    assert_eq!(
        v["limit"],
        json!({"name": "max_concurrent_runs", "value": 1, "workspace": "c"}),
        "{v}"
    );
    // Another workspace is not held by c's limit.
    let d = workspace(&srv, "d", json!({}));
    d.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "one", 50)),
    );
    let other = d.ok("POST", "/v1/runs", Some(&json!({"connection": "one"})));
    assert_eq!(
        wait_run(&d, other["id"].as_str().unwrap())["status"],
        "succeeded"
    );
    // When the first has ended (cancelled, or finished meanwhile), the second may start.
    let _ = c.call("POST", &format!("/v1/runs/{first_id}/cancel"), None);
    wait_run(&c, &first_id);
    let second = c.ok("POST", "/v1/runs", Some(&json!({"connection": "two"})));
    assert_eq!(second["workspace"], "c", "{second}");
    let second_id = second["id"].as_str().unwrap();
    let _ = c.call("POST", &format!("/v1/runs/{second_id}/cancel"), None);
    wait_run(&c, second_id);
}

fn ionport(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(ionport_bin())
        .args(args)
        .env("IONPORT_HOME", home)
        .env_remove("IONPORT_API_KEYS")
        .output()
        .unwrap()
}

#[test]
fn a_single_user_setup_is_the_default_workspace_and_the_cli_manages_workspaces() {
    let emu = emulator(0);
    let home = tempfile::tempdir().unwrap();
    // A key file written before workspaces: no role, no workspace.
    let old = "old-key-before-workspaces-0123456789";
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(old.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    std::fs::write(
        home.path().join("apikeys.json"),
        json!({"keys": [{"name": "old", "sha256": sha, "created": 1}]}).to_string(),
    )
    .unwrap();
    // The CLI: a workspace and a key of it.
    let out = ionport(
        home.path(),
        &["workspace", "create", "acme", "--max-connections", "3"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ionport(
        home.path(),
        &[
            "apikey",
            "create",
            "--name",
            "acme-ci",
            "--workspace",
            "acme",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let acme_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = ionport(
        home.path(),
        &["apikey", "create", "--name", "x", "--workspace", "nowhere"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such workspace"),
        "{out:?}"
    );
    let out = ionport(home.path(), &["workspace", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[1]["name"], "acme");
    assert_eq!(list[1]["limits"]["max_connections"], 3);
    let out = ionport(home.path(), &["apikey", "list", "--json"]);
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        keys[0]["role"], "admin",
        "an old key is an admin key: {keys}"
    );
    assert_eq!(keys[0]["workspace"], "default");
    assert_eq!(keys[1]["role"], "workspace");

    let srv = ServeProcess::start(home.path(), &[], "info");
    let old_admin = As {
        srv: &srv,
        key: old.into(),
        headers: Vec::new(),
    };
    // Today's single-user commands, with no workspace named anywhere.
    let v = old_admin.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "m3", 50)),
    );
    assert_eq!(v["connection"]["workspace"], "default");
    let run = old_admin.ok("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
    assert_eq!(run["workspace"], "default");
    assert_eq!(
        wait_run(&old_admin, run["id"].as_str().unwrap())["status"],
        "succeeded"
    );
    // The file keeps default's records as before: keyed by name, no workspace field;
    // the vault entry is `serve.<name>`.
    let store: Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("connections.json")).unwrap(),
    )
    .unwrap();
    assert!(store["connections"]["m3"].is_object(), "{store}");
    assert!(
        store["connections"]["m3"].get("workspace").is_none(),
        "{store}"
    );
    let vault = ionport(home.path(), &["vault", "list"]);
    assert!(
        String::from_utf8_lossy(&vault.stdout).contains("serve.m3"),
        "{vault:?}"
    );
    // The old key is an admin: it lists workspaces; the CLI's key sees acme only.
    let w = old_admin.ok("GET", "/v1/workspaces", None);
    assert_eq!(w.as_array().unwrap().len(), 2, "{w}");
    let acme = As {
        srv: &srv,
        key: acme_key,
        headers: Vec::new(),
    };
    assert_eq!(acme.ok("GET", "/v1/connections", None), json!([]));
    assert_eq!(acme.call("GET", "/v1/connections/m3", None).0, 404);
    assert_eq!(acme.call("GET", "/v1/workspaces", None).0, 403);
    acme.ok(
        "POST",
        "/v1/connections",
        Some(&connection_body(&emu, "m3", 50)),
    );
    let store: Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("connections.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        store["connections"]["acme/m3"]["workspace"], "acme",
        "{store}"
    );
    let vault = ionport(home.path(), &["vault", "list"]);
    assert!(
        String::from_utf8_lossy(&vault.stdout).contains("ws.acme.m3"),
        "{vault:?}"
    );

    // `workspace delete` refuses a workspace that holds a connection; emptied, it goes
    // and its keys with it.
    let out = ionport(home.path(), &["workspace", "delete", "acme"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still has 1 connection"),
        "{out:?}"
    );
    acme.ok("DELETE", "/v1/connections/m3", None);
    let out = ionport(home.path(), &["workspace", "delete", "acme"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(acme.call("GET", "/v1/connections", None).0, 401);
    let audit = old_admin.ok("GET", "/v1/audit?action=workspace.", None);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["workspace.created", "workspace.deleted"],
        "{audit}"
    );
}

#[test]
fn the_webhook_delivery_log_survives_a_restart_and_stays_in_its_workspace() {
    let emu = emulator(0);
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Behaviour::FailFirst(1));
    let (hook_id, before, other_key) = {
        let srv = ServeProcess::start(home.path(), &[], "info");
        let e = workspace(&srv, "e", json!({}));
        let other = workspace(&srv, "f", json!({}));
        let hook = e.ok(
            "POST",
            "/v1/webhooks",
            Some(&json!({"url": receiver.url, "events": ["run.finished", "run.started"]})),
        );
        let id = hook["id"].as_str().unwrap().to_string();
        e.ok(
            "POST",
            "/v1/connections",
            Some(&connection_body(&emu, "m3", 50)),
        );
        let run = e.ok("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
        wait_run(&e, run["id"].as_str().unwrap());
        let start = Instant::now();
        let log = loop {
            let d = e.ok("GET", &format!("/v1/webhooks/{id}/deliveries"), None);
            let arr = d.as_array().unwrap().clone();
            if arr.len() == 2 && arr.iter().all(|x| x["status"] == "delivered") {
                break d;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{d}");
            std::thread::sleep(Duration::from_millis(100));
        };
        // The event bodies name the workspace.
        for r in receiver.received() {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["workspace"], "e", "{body}");
        }
        (id, log, other.key.clone())
        // The server is killed here.
    };
    let srv = ServeProcess::start(home.path(), &[], "info");
    let e_again = admin_in(&srv, "e");
    let after = e_again.ok("GET", &format!("/v1/webhooks/{hook_id}/deliveries"), None);
    assert_eq!(after, before, "the delivery log after a restart");
    let attempts: usize = after
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_array().unwrap().len())
        .sum();
    assert_eq!(attempts, 3, "one failed attempt, then two taken: {after}");
    // Another workspace's key, and the admin key in its own workspace, find nothing.
    let f = As {
        srv: &srv,
        key: other_key,
        headers: Vec::new(),
    };
    assert_eq!(
        f.call("GET", &format!("/v1/webhooks/{hook_id}/deliveries"), None)
            .0,
        404
    );
    assert_eq!(
        admin(&srv)
            .call("GET", &format!("/v1/webhooks/{hook_id}/deliveries"), None)
            .0,
        404
    );
}

#[test]
fn a_workspaces_requests_per_minute_hold_its_runs_besides_the_tenants_quota() {
    let emu = emulator(0);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let limited = workspace(&srv, "g", json!({"requests_per_minute": 30}));
    let free = workspace(&srv, "h", json!({}));
    let (s, v) = admin(&srv).call(
        "POST",
        "/v1/workspaces",
        Some(&json!({"name": "zero", "limits": {"requests_per_minute": 0}})),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "limits.requests_per_minute", "{v}");
    let mut runs = Vec::new();
    for c in [&limited, &free] {
        // The tenant's own limiter is off (`quota: none`): any wait is the workspace's.
        let mut body = connection_body(&emu, "m3", 20);
        body["quota"] = json!("none");
        c.ok("POST", "/v1/connections", Some(&body));
        let run = c.ok("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
        let done = wait_run(c, run["id"].as_str().unwrap());
        assert_eq!(done["status"], "succeeded", "{done}");
        runs.push(done);
    }
    // 30 a minute is one request every two seconds, one at a time: a run of several
    // requests waited for its turns; the same run without the limit never waited.
    let g = &runs[0]["gateway"];
    assert!(g["requests"].as_u64().unwrap() >= 2, "{g}");
    assert!(g["rate_limit_wait_ms"].as_f64().unwrap() > 0.0, "{g}");
    let h = &runs[1]["gateway"];
    assert_eq!(h["requests"], g["requests"], "the same reads: {h} {g}");
    assert_eq!(h["rate_limit_wait_ms"].as_f64(), Some(0.0), "{h}");
}
