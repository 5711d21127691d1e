//! Records per second of one task through each way ionport can be driven, in one run
//! against one emulator: the M3 `customer_table` task (EXPORTMI/Select, the connector's
//! default pages of 1,000), full refresh.
//!
//! - **native (library)**: `ionport_core::read::read_task` in this process into a handler
//!   that counts — the plugin, the host's gateway client, the NDJSON parsed to maps;
//! - **`ionport run`**: a pipeline file into a JSONL destination (process start, plugin
//!   loading, destination writes included);
//! - **`ionport airbyte read`**: the Airbyte protocol on stdout, read and counted here;
//! - **`ionport singer`**: the Singer protocol on stdout, read and counted here;
//! - **`ionport singer | target-jsonl`**: the same output consumed by a real Singer target
//!   from PyPI (Python; its venv is made on first use), rows written counted.
//!
//! ```sh
//! cargo build --release -p ionport -p ionport-connector-m3
//! cargo bench -p ionport-tests --bench protocols
//! ```
//!
//! Printed per path: records, seconds, records/s and the ratio to the native path.
//! Nothing about time is asserted; every path must deliver every record.
//! Environment: `BENCH_SCALE` (customers, default 100000), `BENCH_TARGET=0` skips the
//! target-jsonl row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::pipeline::Cancel;
use ionport_core::read::{FnHandler, ReadEvent, read_task};
use ionport_emulator::EmulatorConfig;
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::emulated::Emulated;
use ionport_tests::protocol_fixture::plugin;
use ionport_tests::{form_credentials, ionport_bin, profile_dir, python};
use serde_json::{Value, json};

const TASK: &str = "customer_table";

struct Row {
    path: &'static str,
    records: u64,
    seconds: f64,
}

fn main() {
    let scale: u64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let with_target = std::env::var("BENCH_TARGET").map_or(true, |v| v != "0");
    let emu = Emulated::start(EmulatorConfig {
        scale,
        quota: None,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let config = dir.path().join("config.json");
    let values = json!({"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())});
    std::fs::write(&config, values.to_string()).unwrap();
    let venv = with_target.then(|| python::venv(python::SINGER));

    println!(
        "M3 {TASK}, {scale} customers, full refresh, default pages; {} build",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let mut rows = vec![native(&emu, &ionapi)];
    rows.push(ionport_run(dir.path(), &ionapi));
    rows.push(protocol(
        "ionport airbyte read",
        &airbyte_args(dir.path(), &config),
    ));
    let singer = singer_args(dir.path(), &config);
    rows.push(protocol("ionport singer", &singer));
    if let Some(venv) = venv {
        rows.push(singer_into_target(dir.path(), &singer, &venv));
    }

    let expected = rows[0].records;
    let base = expected as f64 / rows[0].seconds;
    println!(
        "{:<34} {:>9} {:>9} {:>11} {:>9}",
        "path", "records", "seconds", "records/s", "vs native"
    );
    for r in &rows {
        let rate = r.records as f64 / r.seconds;
        println!(
            "{:<34} {:>9} {:>9.2} {:>11.0} {:>8.2}x",
            r.path,
            r.records,
            r.seconds,
            rate,
            rate / base
        );
    }
    for r in &rows {
        assert_eq!(r.records, expected, "{} lost or added records", r.path);
    }
}

fn native(emu: &Emulated, ionapi: &Path) -> Row {
    let m3 = plugin("infor-m3");
    let records = Arc::new(AtomicU64::new(0));
    let counted = records.clone();
    let handler = Arc::new(FnHandler::new(move |e: ReadEvent<'_>| {
        if let ReadEvent::Records { records, .. } = e {
            counted.fetch_add(records.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }));
    let started = Instant::now();
    emu.rt.block_on(async {
        let connection = Connection::open(
            CredentialSource::IonApiFile(ionapi.to_path_buf()),
            ConnectionSettings::default(),
        )
        .unwrap();
        let request = ReadRequest {
            connection: ConnectionConfig {
                settings: json!({"company": 100}),
            },
            task: TASK.into(),
            sync_mode: SyncMode::FullRefresh,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: Value::Null,
            columns: None,
            include_deleted: false,
            partition: None,
        };
        read_task(&m3, &connection, request, handler, Cancel::default())
            .await
            .unwrap();
        connection.shutdown().await.unwrap();
    });
    Row {
        path: "native (read_task, in process)",
        records: records.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn ionport_run(dir: &Path, ionapi: &Path) -> Row {
    let out_dir = dir.join("jsonl");
    let file = dir.join("bench.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "jsonl", path = '{out}' }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ company = 100 }}

[pipelines.bench]
connection = "m3"
environment = "out"
tasks = ["{TASK}"]
sync_mode = "full_refresh"
"#,
            out = out_dir.display(),
            ionapi = ionapi.display(),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(ionport_bin())
        .args(["run", "--quiet"])
        .arg(&file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", dir.join("home"))
        .env_remove("IONPORT_LOG")
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Row {
        path: "ionport run (into JSONL)",
        records: count_lines(&out_dir),
        seconds,
    }
}

/// Lines of every `.jsonl` file under `dir`.
fn count_lines(dir: &Path) -> u64 {
    let mut n = 0;
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "jsonl") {
            let f = std::fs::File::open(&entry).unwrap();
            n += BufReader::new(f).lines().count() as u64;
        }
    }
    n
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn airbyte_args(dir: &Path, config: &Path) -> Vec<String> {
    let catalog = dir.join("airbyte-catalog.json");
    std::fs::write(
        &catalog,
        json!({"streams": [{
            "stream": {"name": TASK, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"
        }]})
        .to_string(),
    )
    .unwrap();
    vec![
        "airbyte".into(),
        "infor-m3".into(),
        "read".into(),
        "--config".into(),
        config.display().to_string(),
        "--catalog".into(),
        catalog.display().to_string(),
    ]
}

fn singer_args(dir: &Path, config: &Path) -> Vec<String> {
    let catalog = dir.join("singer-catalog.json");
    std::fs::write(
        &catalog,
        json!({"streams": [{
            "tap_stream_id": TASK, "stream": TASK, "schema": {"type": "object"},
            "metadata": [{"breadcrumb": [], "metadata": {"selected": true, "replication-method": "FULL_TABLE"}}]
        }]})
        .to_string(),
    )
    .unwrap();
    vec![
        "singer".into(),
        "infor-m3".into(),
        "--config".into(),
        config.display().to_string(),
        "--catalog".into(),
        catalog.display().to_string(),
    ]
}

/// Runs `ionport args`, counting the RECORD lines of its stdout as they come.
fn protocol(path: &'static str, args: &[String]) -> Row {
    let started = Instant::now();
    let mut child = Command::new(ionport_bin())
        .args(args)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env_remove("IONPORT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut records = 0;
    for line in BufReader::with_capacity(1 << 20, stdout).split(b'\n') {
        let line = line.unwrap();
        // serde_json writes object keys sorted: `type` comes last in both protocols.
        if line.ends_with(br#""type":"RECORD"}"#) {
            records += 1;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Row {
        path,
        records,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn singer_into_target(dir: &Path, args: &[String], venv: &Path) -> Row {
    let dest = dir.join("target-jsonl");
    std::fs::create_dir_all(&dest).unwrap();
    let config = dir.join("target.json");
    std::fs::write(
        &config,
        json!({"destination_path": dest, "do_timestamp_file": false}).to_string(),
    )
    .unwrap();
    let started = Instant::now();
    let mut tap = Command::new(ionport_bin())
        .args(args)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env_remove("IONPORT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let target = Command::new(python::bin(venv, "target-jsonl"))
        .arg("--config")
        .arg(&config)
        .stdin(tap.stdout.take().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let tap_status = tap.wait().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(tap_status.success());
    if !target.status.success() {
        std::io::stderr().write_all(&target.stderr).unwrap();
        panic!("target-jsonl failed");
    }
    Row {
        path: "ionport singer | target-jsonl",
        records: count_lines(&dest),
        seconds,
    }
}
