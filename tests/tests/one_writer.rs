//! One writer per destination across processes: while one `ionport run` writes into a
//! destination, a second one on the same destination gives up after its bounded wait
//! with an error naming the first one's pid, and the destination stays exact. And a
//! damaged commit log: the run names the file and the repair command; `ionport repair`
//! repairs it, and the next run leaves every record exactly once.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Entity, tables};
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, profile_dir};

const SCALE: u64 = 1500;
const CONO: u32 = 100;

fn pipeline(dir: &Path, ionapi: &Path, destination: &str) -> std::path::PathBuf {
    let file = dir.join("pipelines.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {destination}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{}" }}
settings = {{ company = {CONO} }}
quota = "none"

[pipelines.m3]
connection = "m3"
environment = "out"
tasks = ["customers"]
page_size = 25
"#,
            ionapi.display()
        ),
    )
    .unwrap();
    file
}

fn ionport(file: &Path) -> Command {
    let mut c = Command::new(ionport_bin());
    c.env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", file.parent().unwrap().join("home"))
        .env("IONPORT_DESTINATION_WAIT_SECS", "0.5");
    c
}

fn spawn_run(file: &Path) -> Child {
    ionport(file)
        .args(["run", "--quiet"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn run_to_end(file: &Path) -> (bool, String) {
    let out: Output = ionport(file).arg("run").arg(file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// An emulator slow enough that a run lasts seconds.
fn slow_emulator(delay_ms: u64) -> Emulated {
    let emu = Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    });
    emu.control(
        "POST",
        "faults",
        Some(
            serde_json::json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": delay_ms }]),
        ),
    );
    emu
}

fn expected_keys() -> BTreeSet<String> {
    let ds = ionport_emulator::data::Dataset::new(EmulatorConfig::default().seed, SCALE);
    (0..ds.count(Entity::Customer, CONO))
        .map(|i| ds.record(Entity::Customer, CONO, i))
        .filter(|r| !r.deleted())
        .map(|r| r.get(tables::OCUSMA.columns[1].field).mi(10, false))
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lock file names `pid` as its holder.
fn lock_names(lock: &Path, pid: u32) -> bool {
    std::fs::read(lock)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["pid"] == serde_json::json!(pid))
}

fn jsonl_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["CUNO"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn assert_exact(keys: Vec<String>) {
    let set: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), set.len(), "no duplicates");
    assert_eq!(set, expected_keys(), "every record, exactly once");
}

/// Starts a run, waits until it holds the destination, then runs a second one, which
/// must give up naming the first one's pid while the first is still running.
fn second_run_refused(file: &Path, mut holds: impl FnMut(u32) -> bool) {
    let mut first = spawn_run(file);
    let pid = first.id();
    wait_until("the first run holds the destination", || holds(pid));
    let (ok, text) = run_to_end(file);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run was still running when the second gave up (make the emulator slower)"
    );
    assert!(!ok, "the second run fails: {text}");
    assert!(
        text.contains("another writer holds it") && text.contains(&format!("pid {pid}")),
        "the error names the holder's pid {pid}: {text}"
    );
    assert!(first.wait().unwrap().success(), "the first run succeeds");
}

#[test]
fn jsonl_second_run_is_refused_naming_the_holder_and_the_output_stays_exact() {
    let emu = slow_emulator(40);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let out = dir.path().join("out");
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"jsonl\", path = \"{}\" }}", out.display()),
    );
    let lock = out.join("_ionport/writer.lock");
    second_run_refused(&file, |pid| lock_names(&lock, pid));
    assert_exact(jsonl_keys(&out.join("customers.jsonl")));
    // The refused run left nothing behind: a rerun succeeds and changes nothing.
    let (ok, text) = run_to_end(&file);
    assert!(ok, "{text}");
    assert_exact(jsonl_keys(&out.join("customers.jsonl")));
}

#[test]
fn sqlite_second_run_is_refused_naming_the_holder_and_the_table_stays_exact() {
    let emu = slow_emulator(40);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let db = dir.path().join("out.db");
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"sqlite\", path = \"{}\" }}", db.display()),
    );
    let lock = dir.path().join("out.db.writer.lock");
    second_run_refused(&file, |pid| lock_names(&lock, pid));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn.prepare("select CUNO from customers").unwrap();
    let keys: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_exact(keys);
}

#[test]
fn postgres_second_run_is_refused_naming_the_holder() {
    let url = std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "Postgres at IONPORT_TEST_POSTGRES_URL is required ({e}); `cargo xtask test` starts one"
        )
    });
    let schema = format!("one_writer_{}", std::process::id());
    client
        .batch_execute(&format!("drop schema if exists {schema} cascade"))
        .unwrap();
    let emu = slow_emulator(40);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"postgres\", url = \"{url}\", schema = \"{schema}\" }}"),
    );
    second_run_refused(&file, |pid| {
        // The writer session's application name carries the pid of its process.
        client
            .query_opt(
                "select 1 from pg_locks l join pg_stat_activity a on a.pid = l.pid
                 where l.locktype = 'advisory' and l.granted and a.application_name like $1",
                &[&format!("ionport pid {pid}:%")],
            )
            .unwrap()
            .is_some()
    });
    let rows = client
        .query(&format!("select \"CUNO\" from {schema}.customers"), &[])
        .unwrap();
    assert_exact(rows.iter().map(|r| r.get::<_, String>(0)).collect());
    client
        .batch_execute(&format!("drop schema {schema} cascade"))
        .unwrap();
}

#[test]
fn a_damaged_commit_log_is_reported_and_ionport_repair_repairs_it() {
    let emu = slow_emulator(10);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let out = dir.path().join("out");
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"jsonl\", path = \"{}\" }}", out.display()),
    );
    // A run killed part-way leaves committed records in the log ...
    let log = out.join("_ionport/customers/log.jsonl");
    let state = out.join("_ionport/customers/state.json");
    let committed = || {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["log_len"].as_u64())
            .unwrap_or(0)
    };
    let mut run = spawn_run(&file);
    wait_until("records are committed", || committed() > 200);
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(committed() > 200);
    // ... and then something outside ionport garbles its first line.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[3..9].copy_from_slice(b"}{\"xx\"");
    std::fs::write(&log, &bytes).unwrap();

    let (ok, text) = run_to_end(&file);
    assert!(!ok, "a run on a damaged log fails: {text}");
    let command = format!("ionport repair jsonl:{}", out.display());
    assert!(
        text.contains(&log.display().to_string())
            && text.contains("line 1")
            && text.contains(&command),
        "the error names the file, the line and the repair command: {text}"
    );
    let repair = ionport(&file)
        .args(["repair", &format!("jsonl:{}", out.display())])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&repair.stdout);
    assert!(
        repair.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    assert!(said.contains("set aside 1 damaged line"), "{said}");
    let (ok, text) = run_to_end(&file);
    assert!(ok, "the run after the repair succeeds: {text}");
    assert_exact(jsonl_keys(&out.join("customers.jsonl")));
}
