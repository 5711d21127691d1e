#![allow(clippy::unwrap_used)]
//! Webhooks of `ionport serve` against a local receiver: endpoints registered through the
//! API, deliveries signed as docs/http-api.md says (checked here with the `hmac` crate,
//! independently of the server's code), retried until the receiver takes them, logged,
//! and never in the way of a run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::form_credentials;
use ionport_tests::receiver::{Behaviour, Received, Receiver};
use ionport_tests::serve_process::ServeProcess;
use serde_json::{Value, json};

fn emulator(scale: u64) -> Emulated {
    Emulated::start(EmulatorConfig {
        scale,
        quota: None,
        ..EmulatorConfig::default()
    })
}

/// Creates connection `name` reading the customers of company 100.
fn connection(srv: &ServeProcess, emu: &Emulated, name: &str) {
    let body = json!({
        "name": name,
        "connector": "infor-m3",
        "values": {"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())},
        "tasks": [{"name": "customers"}],
    });
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
}

fn run(srv: &ServeProcess, connection: &str) -> Value {
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": connection})));
    assert_eq!(s, 202, "{v}");
    srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(120))
}

/// The documented check: `Ionport-Signature: t=T,v1=HEX` where HEX is HMAC-SHA256 with
/// the secret of `T + "." + body`. Returns `T` when the signature holds.
fn verify(secret: &str, r: &Received) -> Option<u64> {
    let header = r.headers.get("ionport-signature")?;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (want == v1).then_some(t)
}

/// The replay check a receiver makes: a timestamp more than `tolerance` seconds from its
/// own clock `now` is refused.
fn fresh(t: u64, now: u64, tolerance: u64) -> bool {
    t.abs_diff(now) <= tolerance
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_delivery_is_signed_retried_until_taken_and_logged_once() {
    let emu = emulator(60);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let receiver = Receiver::start(Behaviour::FailFirst(3));
    let began = epoch_now();

    let (s, hook) = srv.call(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": receiver.url, "events": ["run.finished"], "description": "ops"})),
    );
    assert_eq!(s, 201, "{hook}");
    let id = hook["id"].as_str().unwrap().to_string();
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{hook}");
    assert_eq!(hook["workspace"], "default", "{hook}");
    assert_eq!(hook["events"], json!(["run.finished"]), "{hook}");

    // The secret is shown once: never listed, never stored in plain text.
    let (s, list) = srv.call("GET", "/v1/webhooks", None);
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    let (s, one) = srv.call("GET", &format!("/v1/webhooks/{id}"), None);
    assert_eq!(s, 200, "{one}");
    assert!(!list.to_string().contains(&secret) && !one.to_string().contains(&secret));
    for entry in std::fs::read_dir(home.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&secret),
                "the webhook secret is in {}",
                path.display()
            );
        }
    }

    connection(&srv, &emu, "m3");
    let finished = run(&srv, "m3");
    assert_eq!(finished["status"], "succeeded", "{finished}");

    // Three 500s, then a 200: four attempts of one delivery, the event taken once.
    let got = receiver.wait_for(Duration::from_secs(60), "an accepted delivery", |r| {
        r.iter().any(|x| x.answered == Some(200))
    });
    let statuses: Vec<Option<u16>> = got.iter().map(|r| r.answered).collect();
    assert_eq!(
        statuses,
        [Some(500), Some(500), Some(500), Some(200)],
        "{got:#?}"
    );
    let bodies: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    for b in &bodies {
        assert_eq!(b, &bodies[0], "every attempt carries the same event");
    }
    let event = &bodies[0];
    assert_eq!(event["type"], "run.finished", "{event}");
    assert_eq!(event["workspace"], "default", "{event}");
    assert_eq!(event["data"]["run"]["id"], finished["id"], "{event}");
    assert_eq!(event["data"]["run"]["status"], "succeeded", "{event}");
    assert_eq!(
        event["data"]["run"]["records"], finished["records"],
        "{event}"
    );
    let delivery = got[0].headers["ionport-delivery"].clone();
    for r in &got {
        assert_eq!(r.headers["ionport-event"], "run.finished");
        assert_eq!(r.headers["ionport-delivery"], delivery);
        assert_eq!(r.headers["content-type"], "application/json");
        let t = verify(&secret, r).unwrap_or_else(|| panic!("the signature fails: {r:#?}"));
        // Signed when sent: after the test began, within a replay window of the
        // receiver's clock.
        assert!(t >= began, "t={t} began={began}");
        assert!(fresh(t, r.at, 300), "t={t} at={}", r.at);
    }
    // Replays are detectable: the signature binds the timestamp (another `t` fails), and
    // the same request sent again later is outside the window.
    let last = got.last().unwrap();
    let t = verify(&secret, last).unwrap();
    let header =
        last.headers["ionport-signature"].replace(&format!("t={t}"), &format!("t={}", t + 1));
    let mut moved = last.clone();
    moved.headers.insert("ionport-signature".into(), header);
    assert_eq!(verify(&secret, &moved), None, "a changed t must fail");
    assert!(!fresh(t, last.at + 301, 300));
    assert_eq!(verify("whsec_wrong", last), None);

    // Only `run.finished` was asked for: no other event arrived.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 4);

    // The log: one delivery, delivered, with its four attempts.
    let (s, log) = srv.call("GET", &format!("/v1/webhooks/{id}/deliveries"), None);
    assert_eq!(s, 200, "{log}");
    let log = log.as_array().unwrap().clone();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "delivered", "{log:?}");
    assert_eq!(log[0]["id"], delivery.as_str());
    assert_eq!(log[0]["event_id"], event["id"]);
    assert_eq!(log[0]["event"], "run.finished");
    let attempts: Vec<u64> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [500, 500, 500, 200], "{log:?}");

    // Deleted: gone from the list, its log with it.
    assert_eq!(
        srv.call("DELETE", &format!("/v1/webhooks/{id}"), None).0,
        204
    );
    assert_eq!(
        srv.call("DELETE", &format!("/v1/webhooks/{id}"), None).0,
        404
    );
    assert_eq!(
        srv.call("GET", &format!("/v1/webhooks/{id}/deliveries"), None)
            .0,
        404
    );
    assert_eq!(srv.call("GET", "/v1/webhooks", None).1, json!([]));
    assert!(
        !srv.output().contains(&secret),
        "the secret is in the server's output"
    );
}

#[test]
fn a_hanging_receiver_does_not_hold_up_runs() {
    let emu = emulator(60);
    let home = tempfile::tempdir().unwrap();
    // An attempt may take ten minutes: only the sender's own task waits for it.
    let srv = ServeProcess::start(home.path(), &["--webhook-timeout", "600"], "info");
    let receiver = Receiver::start(Behaviour::Hang);
    let (s, hook) = srv.call("POST", "/v1/webhooks", Some(&json!({"url": receiver.url})));
    assert_eq!(s, 201, "{hook}");
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["events"].as_array().unwrap().len(), 5, "{hook}");

    connection(&srv, &emu, "m3");
    let first = run(&srv, "m3");
    assert_eq!(first["status"], "succeeded", "{first}");
    // The run is over while the receiver still holds its `run.started` delivery open.
    receiver.wait_for(Duration::from_secs(30), "the run.started delivery", |r| {
        r.iter()
            .any(|x| x.headers.get("ionport-event").map(String::as_str) == Some("run.started"))
    });
    assert!(receiver.held() >= 1);
    assert!(receiver.received().iter().all(|r| r.answered.is_none()));
    // And another run starts and ends the same way.
    let second = run(&srv, "m3");
    assert_eq!(second["status"], "succeeded", "{second}");
    // started + finished of two runs (the last is queued just after the run's end),
    // none delivered, all still being tried.
    let start = std::time::Instant::now();
    let log = loop {
        let (s, log) = srv.call("GET", &format!("/v1/webhooks/{id}/deliveries"), None);
        assert_eq!(s, 200, "{log}");
        let log = log.as_array().unwrap().clone();
        if log.len() >= 4 || start.elapsed() > Duration::from_secs(10) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let events: Vec<&str> = log.iter().map(|d| d["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["run.finished", "run.started", "run.finished", "run.started"],
        "{log:?}"
    );
    assert!(log.iter().all(|d| d["status"] == "pending"), "{log:?}");
}

#[test]
fn webhook_input_is_checked() {
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    for (body, field) in [
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "http://user:pw@127.0.0.1/x"}), "url"),
        (json!({"url": "http://127.0.0.1/x", "events": []}), "events"),
    ] {
        let (s, v) = srv.call("POST", "/v1/webhooks", Some(&body));
        assert_eq!(s, 422, "{body}: {v}");
        assert_eq!(v["fields"][0]["field"], field, "{v}");
    }
    let (s, v) = srv.call(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": "http://127.0.0.1/x", "events": ["run.exploded"]})),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "events[0]", "{v}");
    assert_eq!(srv.call("GET", "/v1/webhooks/wh_nope", None).0, 404);
    assert_eq!(srv.call("GET", "/v1/webhooks", None).1, json!([]));
}

#[test]
fn a_schema_change_is_told_to_the_endpoints_that_asked_for_it() {
    const NEW: &str = "OKZZCUST";
    let emu = emulator(40);
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let receiver = Receiver::start(Behaviour::Accept);
    let (s, hook) = srv.call(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": receiver.url, "events": ["run.schema_changed"]})),
    );
    assert_eq!(s, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    let body = json!({
        "name": "m3",
        "connector": "infor-m3",
        "values": {"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())},
        "tasks": [{"name": "table:OCUSMA"}],
    });
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    // The first run makes the table: no change, no delivery.
    assert_eq!(run(&srv, "m3")["status"], "succeeded");
    // A column comes at the source; the next run adds it and says so.
    emu.control(
        "POST",
        "/columns",
        Some(json!({"table": "OCUSMA", "name": NEW, "type": "string", "from": "OKCUNO"})),
    );
    let second = run(&srv, "m3");
    assert_eq!(second["status"], "succeeded", "{second}");
    let got = receiver.wait_for(Duration::from_secs(30), "run.schema_changed", |r| {
        !r.is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let got_now = receiver.received();
    assert_eq!(got_now.len(), 1, "{got_now:#?}");
    assert!(verify(&secret, &got[0]).is_some());
    let event: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(event["type"], "run.schema_changed", "{event}");
    assert_eq!(event["data"]["run"]["id"], second["id"], "{event}");
    let changes = &event["data"]["run"]["tasks"][0]["schema_changes"];
    assert_eq!(changes[0]["column"], NEW, "{event}");
    assert_eq!(changes[0]["change"], "added", "{event}");
}

#[test]
fn endpoints_and_their_secrets_outlive_a_restart() {
    let emu = emulator(40);
    let home = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Behaviour::Accept);
    let (id, secret) = {
        let srv = ServeProcess::start(home.path(), &[], "info");
        let (s, hook) = srv.call(
            "POST",
            "/v1/webhooks",
            Some(&json!({"url": receiver.url, "events": ["run.started"]})),
        );
        assert_eq!(s, 201, "{hook}");
        (
            hook["id"].as_str().unwrap().to_string(),
            hook["secret"].as_str().unwrap().to_string(),
        )
    };
    // Stored sealed: the file names the endpoint but not its secret.
    let stored = std::fs::read_to_string(home.path().join("webhooks.json")).unwrap();
    assert!(
        stored.contains(&id) && !stored.contains(&secret),
        "{stored}"
    );

    let srv = ServeProcess::start(home.path(), &[], "info");
    let (s, list) = srv.call("GET", "/v1/webhooks", None);
    assert_eq!(s, 200);
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    connection(&srv, &emu, "m3");
    run(&srv, "m3");
    let got = receiver.wait_for(Duration::from_secs(30), "run.started", |r| !r.is_empty());
    assert_eq!(got[0].headers["ionport-event"], "run.started");
    assert!(
        verify(&secret, &got[0]).is_some(),
        "signed with the secret given before the restart"
    );
}
