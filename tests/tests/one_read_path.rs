//! Every consumer reads through core's one read path (`ionport_core::read::read_task`):
//! `ionport run`, `ionport airbyte read`, `ionport singer`, and the embedding example each
//! read M3 `customers` from the emulator, and each process's log must show exactly one
//! `read finished` of that task with every record (the line only `read_task` writes).
//! `ionport serve` is checked the same way in `serve_api.rs` (its server machinery lives
//! there). A consumer that wired a plugin's read to its sink by itself would log nothing
//! and fail here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use ionport_emulator::data::tables;
use ionport_tests::protocol_fixture::Fixture;
use ionport_tests::{finished_reads, ionport_bin, profile_dir};
use serde_json::{Value, json};

const CONO: u32 = 100;

fn ionport(fx: &Fixture, args: &[&str]) -> Output {
    Command::new(ionport_bin())
        .args(args)
        .current_dir(fx.dir.path())
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", fx.dir.path().join("home"))
        .env("IONPORT_LOG", "ionport::read=debug")
        .output()
        .expect("ionport runs")
}

fn ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn assert_one_read(log: &str, expected: u64, what: &str) {
    assert_eq!(
        finished_reads(log),
        vec![("customers".to_string(), expected)],
        "{what} did not read through read_task exactly once:\n{log}"
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn run_airbyte_singer_and_embedding_all_read_through_read_task() {
    let fx = Fixture::start(120);
    let ds = fx.emu.emu.dataset();
    // The oracle: the emulator's own data set, not a read.
    let expected = (0..ds.count(tables::OCUSMA.entity, CONO))
        .filter(|&i| !ds.record(tables::OCUSMA.entity, CONO, i).deleted())
        .count() as u64;
    assert!(expected > 0);
    let ionapi = fx.dir.path().join("emu.ionapi");
    fx.emu.emu.write_ionapi(&ionapi).unwrap();

    // ionport run
    let file = fx.dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "jsonl", path = "out" }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{}" }}
settings = {{ company = {CONO} }}
quota = "none"

[pipelines.p]
connection = "m3"
environment = "out"
tasks = ["customers"]
"#,
            ionapi.display()
        ),
    )
    .unwrap();
    let log = ok(&ionport(&fx, &["run", path(&file), "--quiet"]), "run");
    assert_one_read(&log, expected, "ionport run");

    // ionport airbyte read
    let config = fx.config("infor-m3");
    let out = ionport(
        &fx,
        &["airbyte", "infor-m3", "discover", "--config", path(&config)],
    );
    ok(&out, "airbyte discover");
    let catalog: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["type"] == "CATALOG")
        .expect("a CATALOG message")["catalog"]
        .clone();
    let stream = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "customers")
        .unwrap()
        .clone();
    let configured = fx.write(
        "configured.json",
        &json!({"streams": [{"stream": stream, "sync_mode": "full_refresh",
                             "destination_sync_mode": "overwrite"}]}),
    );
    let log = ok(
        &ionport(
            &fx,
            &[
                "airbyte",
                "infor-m3",
                "read",
                "--config",
                path(&config),
                "--catalog",
                path(&configured),
            ],
        ),
        "airbyte read",
    );
    assert_one_read(&log, expected, "ionport airbyte read");

    // ionport singer (catalog from --discover, customers selected)
    let out = ionport(
        &fx,
        &[
            "singer",
            "infor-m3",
            "--config",
            path(&config),
            "--discover",
        ],
    );
    ok(&out, "singer discover");
    let mut catalog: Value = serde_json::from_slice(&out.stdout).expect("a Singer catalog");
    for s in catalog["streams"].as_array_mut().unwrap() {
        let selected = s["tap_stream_id"] == "customers";
        for m in s["metadata"].as_array_mut().unwrap() {
            if m["breadcrumb"] == json!([]) {
                m["metadata"]["selected"] = json!(selected);
            }
        }
    }
    let selected = fx.write("selected.json", &catalog);
    let log = ok(
        &ionport(
            &fx,
            &[
                "singer",
                "infor-m3",
                "--config",
                path(&config),
                "--catalog",
                path(&selected),
            ],
        ),
        "singer sync",
    );
    assert_one_read(&log, expected, "ionport singer");

    // The embedding example
    let bin = profile_dir().join(format!(
        "ionport-embed-example{}",
        std::env::consts::EXE_SUFFIX
    ));
    let out = Command::new(&bin)
        .args(["--plugins", path(&profile_dir()), "--ionapi", path(&ionapi)])
        .args(["--connector", "infor-m3", "--task", "customers"])
        .args(["--settings", &format!(r#"{{"company": {CONO}}}"#)])
        .env("IONPORT_LOG", "ionport::read=debug")
        .output()
        .unwrap();
    let log = ok(&out, "embedding example");
    assert_one_read(&log, expected, "the embedding example");
}
