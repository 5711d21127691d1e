//! What the workers of a cluster share through the coordinator (the machine's Postgres,
//! a coordinator schema per test), with real `ionport worker` processes and the emulator:
//!
//! - one token per credential: 20 workers, each with its own copy of the home (its own
//!   vault file and lock directory, as on 20 machines), start on a cold credential and
//!   make one password grant between them, refresh the token as it runs out, and never
//!   send a rotated refresh token again (the emulator counts grants and reuse);
//! - one quota per tenant: three workers running units against a tenant whose quota the
//!   emulator enforces for the whole tenant get no 429, while the coordinator shows their
//!   shares adding up to at most the quota.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ionport_core::vault::{KeySource, Vault};
use ionport_emulator::{EmulatorConfig, Quota};
use ionport_tests::cluster::Cluster;
use ionport_tests::destinations::pg_client;
use ionport_tests::emulated::Emulated;
use ionport_tests::ionport_bin;
use serde_json::Value;

/// `n` pipelines of the customers task, each into its own JSONL file (one writer each, so
/// that their units can run at once), on one connection with `credentials` and `quota`.
fn pipelines(dir: &Path, n: usize, credentials: &str, quota: &str, page_size: u32) -> PathBuf {
    let mut text = format!(
        r#"
[connections.c]
connector = "infor-m3"
credentials = {credentials}
settings = {{ company = 100 }}
quota = "{quota}"
"#
    );
    for i in 0..n {
        text.push_str(&format!(
            r#"
[environments.e{i}]
destination = {{ type = "jsonl", path = "{out}" }}

[pipelines.p{i}]
connection = "c"
environment = "e{i}"
tasks = ["customers"]
page_size = {page_size}
pages_in_flight = 1
"#,
            out = dir.join(format!("out{i}")).display()
        ));
    }
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn done_units(st: &Value) -> Vec<&Value> {
    st["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["state"] == "done")
        .collect()
}

#[test]
fn twenty_workers_on_a_cold_credential_make_one_password_grant_and_never_reuse_a_refresh_token() {
    const WORKERS: usize = 20;
    // Tokens live 8 s (renewed 2 s before): the units, 100 pages of 40 ms each, outlast
    // the first one, so the shared token is also refreshed while they run.
    let emu = Emulated::start(EmulatorConfig {
        scale: 1000,
        latency: Duration::from_millis(40),
        token_ttl: Duration::from_secs(8),
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    // One home with the credential in its vault, copied for each worker: the same vault
    // key (as an operator gives every machine), but nothing else in common.
    let home = dir.path().join("home");
    let out = Command::new(ionport_bin())
        .args(["vault", "import"])
        .arg(&ionapi)
        .args(["--name", "emu"])
        .env("IONPORT_HOME", &home)
        .env_remove("IONPORT_VAULT_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", ionport_tests::output_text(&out));
    let homes: Vec<PathBuf> = (1..=WORKERS)
        .map(|i| {
            let h = dir.path().join(format!("machine{i}"));
            let status = Command::new("cp")
                .arg("-r")
                .arg(&home)
                .arg(&h)
                .status()
                .unwrap();
            assert!(status.success());
            h
        })
        .collect();
    let file = pipelines(dir.path(), WORKERS, "{ vault = \"emu\" }", "none", 10);

    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_tokens_{}", std::process::id()),
        "10s",
    );
    for h in &homes {
        cluster.start_worker_in(h);
    }
    cluster.wait_for(Duration::from_secs(60), "every worker up", |st| {
        st["workers"].as_array().unwrap().len() == WORKERS
    });
    cluster.submit(&file, true);
    let st = cluster.wait_for(Duration::from_secs(180), "every unit done", |st| {
        st["open"].as_array().unwrap().is_empty() && !st["recent"].as_array().unwrap().is_empty()
    });
    cluster.stop_all();
    let done = done_units(&st);
    assert_eq!(done.len(), WORKERS, "every unit done: {st:#}");
    let by: BTreeSet<&str> = done.iter().map(|u| u["worker"].as_str().unwrap()).collect();
    assert_eq!(by.len(), WORKERS, "each worker ran a unit: {st:#}");

    let c = emu.control("GET", "counters", None);
    eprintln!(
        "{WORKERS} workers: {} password grant(s), {} refresh grant(s), {} refresh-token reuse(s)",
        c["token_requests"]["password"],
        c["token_requests"]["refresh_token"],
        c["refresh_token_reuse"]
    );
    assert_eq!(c["token_requests"]["password"], 1, "one grant: {c:#}");
    assert!(
        c["token_requests"]["refresh_token"].as_u64().unwrap() >= 1,
        "the shared token was refreshed while the units ran: {c:#}"
    );
    assert_eq!(c["refresh_token_reuse"], 0, "{c:#}");
    assert!(
        c["token_errors"].get("invalid_grant").is_none(),
        "no refresh token refused: {c:#}"
    );
    // Not through the machines' vaults: no worker's vault entry holds a token.
    for h in &homes {
        let t = Vault::open(h, KeySource::KeyFile).tokens("emu").unwrap();
        assert!(
            t.access_token.is_none() && t.refresh_token.is_none(),
            "tokens were kept in {}",
            h.display()
        );
    }
    // In the coordinator, sealed: one row for the one credential.
    let rows = pg_client()
        .query(
            &format!("SELECT sealed FROM \"{}\".tokens", cluster.schema),
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let sealed: String = rows[0].get(0);
    assert!(sealed.starts_with("sealed1:"), "{sealed}");
    // The tokens are secrets: no worker's log shows one (they are in the sealed row only).
    let logs = cluster.logs();
    assert!(!logs.contains("Bearer "), "a bearer token in the logs");
}

#[test]
fn a_tenant_quota_shared_by_three_workers_sees_no_429() {
    // 100 requests per 5 s for the whole tenant, enforced by the emulator. Each worker on
    // its own would keep to the whole quota; three at once would send three times it.
    let emu = Emulated::start(EmulatorConfig {
        scale: 300,
        quota: Some(Quota {
            requests: 100,
            per: Duration::from_secs(5),
        }),
        quota_per_tenant: true,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipelines(
        dir.path(),
        3,
        &format!("{{ ionapi = \"{}\" }}", ionapi.display()),
        "100/5",
        5,
    );
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_quota_{}", std::process::id()),
        "3s",
    );
    for _ in 0..3 {
        cluster.start_worker();
    }
    cluster.wait_for(Duration::from_secs(60), "every worker up", |st| {
        st["workers"].as_array().unwrap().len() == 3
    });
    cluster.submit(&file, true);
    // While they run: the quota rebalanced into three shares, adding up to at most it.
    let during = cluster.wait_for(Duration::from_secs(60), "three shares", |st| {
        let shares = st["quota_shares"].as_array().unwrap();
        shares.len() == 3 && shares.iter().all(|q| q["share"].as_f64().unwrap() > 0.0)
    });
    let shares: Vec<f64> = during["quota_shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["share"].as_f64().unwrap())
        .collect();
    assert!(
        shares.iter().sum::<f64>() <= 100.0 + 1e-6,
        "shares {shares:?} exceed the quota"
    );
    let st = cluster.wait_for(Duration::from_secs(180), "every unit done", |st| {
        st["open"].as_array().unwrap().is_empty()
    });
    cluster.stop_all();
    assert_eq!(done_units(&st).len(), 3, "{st:#}");
    let c = emu.control("GET", "counters", None);
    let sent: u64 = ["m3", "users", "other"]
        .iter()
        .map(|k| c["requests"][k].as_u64().unwrap_or(0))
        .sum();
    eprintln!(
        "three workers, one quota of 100/5 s: shares {shares:?}, {sent} requests, {} 429s",
        c["rate_limited"]
    );
    assert!(sent >= 3 * 60, "the three units read every page: {c:#}");
    assert_eq!(c["rate_limited"], 0, "no 429 for the tenant: {c:#}");
    // The workers gave their shares back when their units ended.
    let after = cluster.status();
    assert_eq!(after["quota_shares"], serde_json::json!([]), "{after:#}");
}

#[test]
fn serve_with_a_coordinator_registers_its_pipelines_and_shows_the_cluster() {
    use ionport_tests::serve_process::ServeProcess;
    let emu = Emulated::start(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipelines(
        dir.path(),
        1,
        &format!("{{ ionapi = \"{}\" }}", ionapi.display()),
        "none",
        25,
    );
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "pages_in_flight = 1",
            "pages_in_flight = 1\nschedule = \"every 2s\"",
        ),
    )
    .unwrap();
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_serve_{}", std::process::id()),
        "3s",
    );
    let home = dir.path().join("serve-home");
    let url = ionport_tests::destinations::pg_url();
    let file_arg = file.to_str().unwrap();
    let serve = ServeProcess::start(
        &home,
        &[
            "--pipeline",
            file_arg,
            "--coordinator",
            &url,
            "--coordinator-schema",
            &cluster.schema.clone(),
        ],
        "info",
    );
    // Registered at start: the workers run its schedule.
    let (status, st) = serve.call("GET", "/v1/cluster", None);
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["pipelines"][0]["name"], "p0", "{st:#}");
    assert_eq!(st["pipelines"][0]["schedule"], "every 2s", "{st:#}");
    let worker = cluster.start_worker();
    cluster.wait_for(Duration::from_secs(60), "two ticks done", |st| {
        done_units(st).len() >= 2
    });
    let (status, st) = serve.call("GET", "/v1/cluster?recent=5", None);
    assert_eq!(status, 200, "{st}");
    let w = &st["workers"][0];
    assert_eq!(w["id"], worker.as_str(), "{st:#}");
    assert!(w["heartbeat_age_secs"].as_f64().unwrap() < 10.0, "{st:#}");
    assert!(done_units(&st).len() >= 2, "{st:#}");
    assert!(st["quota_shares"].is_array(), "{st:#}");
    cluster.stop_all();

    // A server without a coordinator says so.
    let other = ServeProcess::start(&dir.path().join("other-home"), &[], "info");
    let (status, body) = other.call("GET", "/v1/cluster", None);
    assert_eq!(status, 404, "{body}");
    assert!(body.to_string().contains("--coordinator"), "{body}");
}

#[test]
fn a_worker_with_another_vault_key_fails_its_unit_naming_the_key() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipelines(
        dir.path(),
        1,
        &format!("{{ ionapi = \"{}\" }}", ionapi.display()),
        "none",
        25,
    );
    let mut cluster = Cluster::new(dir.path(), &format!("cl_keys_{}", std::process::id()), "3s");
    // The first worker stores the credential's tokens, sealed under its home's key.
    cluster.submit(&file, true);
    cluster.start_worker();
    cluster.wait_for(Duration::from_secs(60), "the first unit done", |st| {
        done_units(st).len() == 1
    });
    cluster.stop_all();
    // A worker on a machine with another key cannot open them: its unit fails, saying so.
    let other = dir.path().join("other-machine");
    cluster.start_worker_in(&other);
    cluster.submit(&file, true);
    let st = cluster.wait_for(Duration::from_secs(60), "the second unit ended", |st| {
        st["open"].as_array().unwrap().is_empty() && st["recent"].as_array().unwrap().len() == 2
    });
    cluster.stop_all();
    let failed: Vec<&Value> = st["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{st:#}");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("same vault key") && error.contains("coordinator"),
        "{error}"
    );
    let c = emu.control("GET", "counters", None);
    assert_eq!(
        c["token_requests"]["password"], 1,
        "no second grant behind the cluster's back: {c:#}"
    );
}
