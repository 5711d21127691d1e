//! Crash safety: `ionport run` killed with SIGKILL at random points, then rerun, leaves
//! every destination with every record exactly once — with several pages in flight (M3
//! `customers` in key ranges: records above the watermark are read again after a kill and
//! must replace themselves).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Entity, tables};
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, profile_dir};

const SCALE: u64 = 1500;
const CONO: u32 = 100;
/// Runs killed part-way per destination (4 destinations: 40 kill points in all).
const KILLS: usize = 10;

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
tasks = ["customers", "customer_table"]
page_size = 25
# customers is read in key ranges, several pages in flight (the default, said here).
pages_in_flight = 4
"#,
            ionapi.display()
        ),
    )
    .unwrap();
    file
}

fn run(file: &Path) -> std::process::Child {
    Command::new(ionport_bin())
        .args(["run", "--quiet"])
        .arg(file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", file.parent().unwrap().join("home"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A small deterministic generator for the kill points.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Runs and kills at a random point until `kills` runs were killed mid-way (a run that
/// finished before its kill does not count), then runs to completion. Returns the kills.
fn kill_and_rerun(file: &Path, kills: usize, seed: u64) -> usize {
    let mut dice = Dice(seed);
    let mut killed = 0;
    let mut attempts = 0;
    while killed < kills && attempts < kills * 4 {
        attempts += 1;
        let mut child = run(file);
        std::thread::sleep(Duration::from_millis(30 + dice.below(900)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    let status = run(file).wait().unwrap();
    assert!(status.success(), "the final run succeeds");
    killed
}

/// An emulator whose M3 answers take a little while, so that runs last long enough to be
/// killed part-way on any machine.
fn slow_emulator() -> Emulated {
    let emu = Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    });
    emu.control(
        "POST",
        "faults",
        Some(serde_json::json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 10 }])),
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

#[test]
fn sqlite_survives_sigkill_at_random_points() {
    let emu = slow_emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let db = dir.path().join("out.db");
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"sqlite\", path = \"{}\" }}", db.display()),
    );
    let killed = kill_and_rerun(&file, KILLS, 7);
    assert_eq!(killed, KILLS, "runs killed part-way");

    let want = expected_keys();
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (table, key) in [("customers", "CUNO"), ("customer_table", "OKCUNO")] {
        let total: i64 = conn
            .query_row(&format!("select count(*) from {table}"), [], |r| r.get(0))
            .unwrap();
        let mut stmt = conn.prepare(&format!("select {key} from {table}")).unwrap();
        let got: BTreeSet<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(total as usize, got.len(), "{table}: no duplicates");
        assert_eq!(got, want, "{table}: every record, exactly once");
    }
}

#[test]
fn jsonl_survives_sigkill_at_random_points() {
    let emu = slow_emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let out = dir.path().join("out");
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"jsonl\", path = \"{}\" }}", out.display()),
    );
    let killed = kill_and_rerun(&file, KILLS, 11);
    assert_eq!(killed, KILLS, "runs killed part-way");

    let want = expected_keys();
    for (table, key) in [("customers", "CUNO"), ("customer_table", "OKCUNO")] {
        let text = std::fs::read_to_string(out.join(format!("{table}.jsonl"))).unwrap();
        let keys: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()[key]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let set: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(keys.len(), set.len(), "{table}: no duplicates");
        assert_eq!(set, want, "{table}: every record, exactly once");
    }
}

fn keys_of(
    rows: &[serde_json::Map<String, serde_json::Value>],
    key: &str,
) -> (usize, BTreeSet<String>) {
    let set = rows
        .iter()
        .map(|r| r[key].as_str().unwrap().to_string())
        .collect();
    (rows.len(), set)
}

#[test]
fn parquet_survives_sigkill_at_random_points() {
    let emu = slow_emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let out = dir.path().join("out");
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"parquet\", path = \"{}\" }}", out.display()),
    );
    let killed = kill_and_rerun(&file, KILLS, 13);
    assert_eq!(killed, KILLS, "runs killed part-way");
    let want = expected_keys();
    for (table, key) in [("customers", "CUNO"), ("customer_table", "OKCUNO")] {
        let rows =
            ionport_core::destination::parquet::read_dataset(&out.join(format!("{table}.parquet")))
                .unwrap();
        let (n, set) = keys_of(&rows, key);
        assert_eq!(n, set.len(), "{table}: no duplicates");
        assert_eq!(set, want, "{table}: every record, exactly once");
    }
}

#[test]
fn postgres_survives_sigkill_at_random_points() {
    let url = std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "Postgres at IONPORT_TEST_POSTGRES_URL is required ({e}); `cargo xtask test` starts one"
        )
    });
    let schema = format!("crash_{}", std::process::id());
    client
        .batch_execute(&format!("drop schema if exists {schema} cascade"))
        .unwrap();

    let emu = slow_emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline(
        dir.path(),
        &ionapi,
        &format!("{{ type = \"postgres\", url = \"{url}\", schema = \"{schema}\" }}"),
    );
    let killed = kill_and_rerun(&file, KILLS, 17);
    assert_eq!(killed, KILLS, "runs killed part-way");
    let want = expected_keys();
    for (table, key) in [("customers", "CUNO"), ("customer_table", "OKCUNO")] {
        let rows = client
            .query(&format!("select \"{key}\" from {schema}.{table}"), &[])
            .unwrap();
        let keys: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        let set: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(keys.len(), set.len(), "{table}: no duplicates");
        assert_eq!(set, want, "{table}: every record, exactly once");
    }
    client
        .batch_execute(&format!("drop schema {schema} cascade"))
        .unwrap();
}
