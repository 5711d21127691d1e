//! What the workers of a cluster share through the coordinator (the machine's Postgres,
//! a coordinator schema per test), with real `ionport worker` processes and the emulator:
//!
//! - one token per credential: 20 workers, each with its own copy of the home (its own
//!   vault file and lock directory, as on 20 machines), start on a cold credential and
//!   make one password grant between them, refresh the token as it runs out, and never
//!   send a rotated refresh token again (the emulator counts grants and reuse);
//! - one quota per tenant: three workers running units against a tenant whose quota the
//!   emulator enforces for the whole tenant get no 429, while the coordinator shows their
//!   shares adding up to at most the quota;
//! - one daily budget per tenant: three workers on three machines' homes send at most the
//!   budget in sum (three machines without a coordinator send more), and the units past it
//!   fail with the budget's error;
//! - `ionport serve --coordinator`: a run of the server beside a worker's unit on a cold
//!   credential makes no second password grant, and the server's requests take a share of
//!   the quota and are reserved from the day's budget with the worker's.

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

/// The emulator started with `config`, a temporary directory and the emulator's
/// `.ionapi` file written in it.
fn emulator_with_ionapi(config: EmulatorConfig) -> (Emulated, tempfile::TempDir, PathBuf) {
    let emu = Emulated::start(config);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    (emu, dir, ionapi)
}

/// A pipeline file's `credentials` naming the `.ionapi` file at `ionapi`.
fn ionapi_credential(ionapi: &Path) -> String {
    format!("{{ ionapi = \"{}\" }}", ionapi.display())
}

/// `n` pipelines of the customers task, each into its own JSONL file (one writer each, so
/// that their units can run at once), on one connection with `credentials` and `quota`.
fn pipelines(dir: &Path, n: usize, credentials: &str, quota: &str, page_size: u32) -> PathBuf {
    pipelines_named(
        dir,
        "pipelines.toml",
        "p",
        n,
        credentials,
        &format!("quota = \"{quota}\""),
        page_size,
    )
}

/// `n` pipelines `{prefix}0…` in `dir/name`, their connection with `credentials` and
/// `limits` (TOML lines).
fn pipelines_named(
    dir: &Path,
    name: &str,
    prefix: &str,
    n: usize,
    credentials: &str,
    limits: &str,
    page_size: u32,
) -> PathBuf {
    let mut text = format!(
        r#"
[connections.c]
connector = "infor-m3"
credentials = {credentials}
settings = {{ company = 100 }}
{limits}
"#
    );
    for i in 0..n {
        text.push_str(&format!(
            r#"
[environments.e{i}]
destination = {{ type = "jsonl", path = "{out}" }}

[pipelines.{prefix}{i}]
connection = "c"
environment = "e{i}"
tasks = ["customers"]
page_size = {page_size}
pages_in_flight = 1
"#,
            out = dir.join(format!("out-{prefix}{i}")).display()
        ));
    }
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// A home holding the emulator's credential as vault entry `emu`, copied `n` times
/// (`machine1`…): the same vault key, as an operator gives every machine, and nothing
/// else in common (vault file, lock directory, usage counts).
fn machine_homes(dir: &Path, ionapi: &Path, n: usize) -> Vec<PathBuf> {
    let home = dir.join("home");
    let out = Command::new(ionport_bin())
        .args(["vault", "import"])
        .arg(ionapi)
        .args(["--name", "emu"])
        .env("IONPORT_HOME", &home)
        .env_remove("IONPORT_VAULT_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", ionport_tests::output_text(&out));
    (1..=n)
        .map(|i| {
            let h = dir.join(format!("machine{i}"));
            let status = Command::new("cp")
                .arg("-r")
                .arg(&home)
                .arg(&h)
                .status()
                .unwrap();
            assert!(status.success());
            h
        })
        .collect()
}

/// API requests the emulator answered (token requests are not API executions).
fn api_requests(emu: &Emulated) -> u64 {
    let c = emu.control("GET", "counters", None);
    ["m3", "ln", "datalake", "users", "other"]
        .iter()
        .map(|k| c["requests"][k].as_u64().unwrap_or(0))
        .sum()
}

/// The emulator's own token counters after a cold credential was shared by `who`: one
/// password grant, at least one refresh (the runs outlast the first token), no refresh
/// token used twice and none refused.
fn one_password_grant_refreshed_never_reused(emu: &Emulated, who: &str) {
    let c = emu.control("GET", "counters", None);
    eprintln!(
        "{who}: {} password grant(s), {} refresh grant(s), {} refresh-token reuse(s)",
        c["token_requests"]["password"],
        c["token_requests"]["refresh_token"],
        c["refresh_token_reuse"]
    );
    assert_eq!(c["token_requests"]["password"], 1, "one grant: {c:#}");
    assert!(
        c["token_requests"]["refresh_token"].as_u64().unwrap() >= 1,
        "the shared token was refreshed while they ran: {c:#}"
    );
    assert_eq!(c["refresh_token_reuse"], 0, "{c:#}");
    assert!(
        c["token_errors"].get("invalid_grant").is_none(),
        "no refresh token refused: {c:#}"
    );
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
    let (emu, dir, ionapi) = emulator_with_ionapi(EmulatorConfig {
        scale: 1000,
        latency: Duration::from_millis(40),
        token_ttl: Duration::from_secs(8),
        ..EmulatorConfig::default()
    });
    let homes = machine_homes(dir.path(), &ionapi, WORKERS);
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

    one_password_grant_refreshed_never_reused(&emu, &format!("{WORKERS} workers"));
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
    let (emu, dir, ionapi) = emulator_with_ionapi(EmulatorConfig {
        scale: 300,
        quota: Some(Quota {
            requests: 100,
            per: Duration::from_secs(5),
        }),
        quota_per_tenant: true,
        ..EmulatorConfig::default()
    });
    let file = pipelines(dir.path(), 3, &ionapi_credential(&ionapi), "100/5", 5);
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
    let (_emu, dir, ionapi) = emulator_with_ionapi(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let file = pipelines(dir.path(), 1, &ionapi_credential(&ionapi), "none", 25);
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
    let (emu, dir, ionapi) = emulator_with_ionapi(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let file = pipelines(dir.path(), 1, &ionapi_credential(&ionapi), "none", 25);
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

/// Every unit's error in the status's finished units.
fn errors(st: &Value) -> Vec<String> {
    st["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["error"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_daily_budget_shared_by_three_workers_on_three_machines_is_not_exceeded() {
    // 100 customers in pages of 5: a unit sends 20-odd requests. The budget of 40 is more
    // than one unit needs and less than three do.
    const BUDGET: u64 = 40;
    let (emu, dir, ionapi) = emulator_with_ionapi(EmulatorConfig {
        scale: 100,
        latency: Duration::from_millis(20),
        ..EmulatorConfig::default()
    });
    let homes = machine_homes(dir.path(), &ionapi, 3);
    let limits = format!("quota = \"none\"\ndaily_budget = {BUDGET}");
    let file = pipelines_named(
        dir.path(),
        "pipelines.toml",
        "p",
        3,
        "{ vault = \"emu\" }",
        &limits,
        5,
    );

    // Without the cluster: each machine keeps to the whole budget in its own `usage/`, so
    // three runs on three machines send more than it in sum — what the cluster prevents.
    let solo = pipelines_named(
        dir.path(),
        "solo.toml",
        "solo",
        1,
        "{ vault = \"emu\" }",
        &limits,
        5,
    );
    for h in &homes {
        let out = Command::new(ionport_bin())
            .args(["run", "--full-refresh"])
            .arg(&solo)
            .env("IONPORT_PLUGIN_PATH", ionport_tests::profile_dir())
            .env("IONPORT_HOME", h)
            .env_remove("IONPORT_VAULT_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", ionport_tests::output_text(&out));
    }
    let alone = api_requests(&emu);
    eprintln!("three machines without a coordinator: {alone} requests for a budget of {BUDGET}");
    assert!(
        alone > BUDGET,
        "per machine, the budget is kept by each machine, not in sum: {alone}"
    );
    emu.control("POST", "reset", None);
    assert_eq!(api_requests(&emu), 0, "the emulator's counters were reset");

    // With the coordinator: the three machines' workers share the one budget.
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_budget_{}", std::process::id()),
        "10s",
    );
    for h in &homes {
        cluster.start_worker_in(h);
    }
    cluster.wait_for(Duration::from_secs(60), "every worker up", |st| {
        st["workers"].as_array().unwrap().len() == 3
    });
    cluster.submit(&file, true);
    let st = cluster.wait_for(Duration::from_secs(120), "every unit ended", |st| {
        st["open"].as_array().unwrap().is_empty() && st["recent"].as_array().unwrap().len() == 3
    });
    cluster.stop_all();
    let sent = api_requests(&emu);
    let errors = errors(&st);
    eprintln!(
        "three machines with a coordinator: {sent} requests for a budget of {BUDGET}; {} unit(s) stopped by it",
        errors.len()
    );
    assert!(sent <= BUDGET, "the tenant's budget was exceeded: {sent}");
    assert!(
        !errors.is_empty(),
        "three units need more than the budget: some fail: {st:#}"
    );
    let tenant = emu.emu.config().tenant.clone();
    for e in &errors {
        assert!(
            e.contains(&format!(
                "the daily budget of API requests of tenant {tenant} is spent: {BUDGET} of {BUDGET}"
            )) && e.contains("daily_budget"),
            "{e}"
        );
    }
    // The coordinator's count of the day: every request sent was reserved there.
    let rows = pg_client()
        .query(
            &format!(
                "SELECT used, budget FROM \"{}\".daily_budgets",
                cluster.schema
            ),
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1, "one tenant, one day");
    let (used, budget): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(budget, BUDGET as i64);
    assert!(
        used as u64 >= sent && used as u64 <= BUDGET,
        "reserved {used}, sent {sent}"
    );
}

#[test]
fn a_serve_run_beside_a_worker_shares_its_token_quota_and_budget() {
    use ionport_tests::serve_process::ServeProcess;
    // Runs of 100 pages of 80 ms outlast the 6 s token: the shared token is refreshed
    // while both run.
    let (emu, dir, ionapi) = emulator_with_ionapi(EmulatorConfig {
        scale: 500,
        latency: Duration::from_millis(80),
        token_ttl: Duration::from_secs(6),
        ..EmulatorConfig::default()
    });
    let homes = machine_homes(dir.path(), &ionapi, 2);
    // A budget whose blocks (10 requests) are small next to what each side sends.
    let limits = "quota = \"100/2\"\ndaily_budget = 1000";
    let credential = "{ vault = \"emu\" }";
    let served = pipelines_named(dir.path(), "serve.toml", "s", 1, credential, limits, 5);
    let clustered = pipelines_named(dir.path(), "cluster.toml", "p", 1, credential, limits, 5);
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_serve_run_{}", std::process::id()),
        "6s",
    );
    let url = ionport_tests::destinations::pg_url();
    let schema = cluster.schema.clone();
    let serve = ServeProcess::start(
        &homes[0],
        &[
            "--pipeline",
            served.to_str().unwrap(),
            "--coordinator",
            &url,
            "--coordinator-schema",
            &schema,
        ],
        "info",
    );
    cluster.start_worker_in(&homes[1]);
    cluster.wait_for(Duration::from_secs(60), "the worker up", |st| {
        st["workers"].as_array().unwrap().len() == 1
    });

    // On a cold credential, at once: the server's run and the worker's unit.
    let (s, v) = serve.call(
        "POST",
        "/v1/runs",
        Some(&serde_json::json!({"pipeline": "s0"})),
    );
    assert_eq!(s, 202, "{v}");
    let run_id = v["id"].as_str().unwrap().to_string();
    cluster.submit(&clustered, true);

    // While they run, the server holds a share of the tenant's quota beside the worker's.
    let started = std::time::Instant::now();
    let shares = loop {
        let (s, st) = serve.call("GET", "/v1/cluster", None);
        assert_eq!(s, 200, "{st}");
        let shares = st["quota_shares"].as_array().unwrap().clone();
        let serve_share = shares
            .iter()
            .any(|q| q["worker"].as_str().unwrap().starts_with("serve@"));
        if serve_share && shares.len() == 2 {
            break shares;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no share of the server's beside the worker's: {st:#}\n{}",
            serve.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let sum: f64 = shares.iter().map(|q| q["share"].as_f64().unwrap()).sum();
    assert!(sum <= 100.0 + 1e-6, "shares {shares:?} exceed the quota");

    let run = serve.wait_run(&run_id, Duration::from_secs(120));
    assert_eq!(run["status"], "succeeded", "{run}\n{}", serve.output());
    let st = cluster.wait_for(Duration::from_secs(120), "the unit done", |st| {
        st["open"].as_array().unwrap().is_empty() && !st["recent"].as_array().unwrap().is_empty()
    });
    assert_eq!(done_units(&st).len(), 1, "{st:#}");
    cluster.stop_all();

    one_password_grant_refreshed_never_reused(&emu, "serve + worker");
    // The server kept no token of its own in its vault.
    let t = Vault::open(&homes[0], KeySource::KeyFile)
        .tokens("emu")
        .unwrap();
    assert!(
        t.access_token.is_none() && t.refresh_token.is_none(),
        "the server kept its own tokens"
    );
    // The server's requests were reserved from the tenant's budget with the worker's: the
    // day's count covers every request sent (the worker's alone would fall short by the
    // server's ~100).
    let sent = api_requests(&emu);
    let used: i64 = pg_client()
        .query_one(&format!("SELECT used FROM \"{schema}\".daily_budgets"), &[])
        .unwrap()
        .get(0);
    eprintln!("serve + worker: {sent} requests sent, {used} reserved from the day's budget");
    assert!(
        used as u64 >= sent && used <= 1000,
        "reserved {used}, sent {sent}"
    );
}
