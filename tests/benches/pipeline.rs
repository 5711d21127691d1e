//! The whole path, emulator → connector → host → destination, for every destination:
//! `ionport run` (release build) replicates the M3 `customer_table` task (EXPORTMI/Select,
//! pages of 10,000) from an in-process emulator at 100,000 and at 1,000,000 customers.
//!
//! ```sh
//! cargo build --release -p ionport -p ionport-connector-m3 -p ionport-connector-ln -p ionport-connector-datalake
//! cargo bench -p ionport-tests --bench pipeline
//! ```
//!
//! First, per scale, the server's ceiling in this run: the connector's exact requests
//! replayed by a minimal client (one at a time, bodies dropped). Then per destination:
//! records, wall seconds, records/s and its share of the ceiling, the `ionport run`
//! child's CPU per record (user+sys ÷ records) and peak RSS (`VmHWM`, polled from `/proc`), its CPU seconds and the emulator's (this
//! process) CPU seconds over the run. Then, for the slowest destination at each scale, where
//! the time goes, each stage measured on its own:
//!
//! - **emulator**: the connector's exact requests (recorded during the next stage) replayed
//!   over HTTP, bodies read and dropped — the emulator's serving rate plus loopback HTTP;
//! - **gateway + plugin**: the connector reading through core's gateway client (tokens, no
//!   rate limit) into a sink that only counts, minus the emulator stage;
//! - **host runner**: what the read path does to every batch, NDJSON parsed once into
//!   `Records` (timed on sample batches, scaled to the record count);
//! - **destination**: the same records (generated) committed straight into a fresh
//!   destination in the same batches, then `finish`;
//! - **process start + plugin loading**: `ionport plugins list`;
//! - what is left of the full run (negative when stages overlapped, e.g. a Postgres server
//!   working on the other core).
//!
//! Nothing about time is asserted; the record count of every run is.
//!
//! Environment: `BENCH_SCALES` (default `100000,1000000`), `BENCH_DESTINATIONS` (default
//! `jsonl,parquet,sqlite,postgres`), `BENCH_PAGE` (default 10000),
//! `IONPORT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ionport_core::connection::{Cancel, Connection, ConnectionSettings, CredentialSource};
use ionport_core::destination::{DestinationConfig, StreamSpec};
use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_core::read::{ReadHandler, Records, read_task};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Dataset, Kind, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, GatewayRequestHead, ReadRequest, SyncMode};
use ionport_plugin_sdk::mi::MiType;
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, plugin_lib, profile_dir};
use serde_json::{Map, Value, json};

const CONO: u32 = 100;
/// The task: `BENCH_TASK`, default `customer_table` (EXPORTMI); `customers` is M3 v2
/// CRS610MI/LstByNumber.
fn task() -> String {
    std::env::var("BENCH_TASK").unwrap_or_else(|_| "customer_table".into())
}
/// Linux reports CPU times in `/proc` in units of USER_HZ, 100 per second.
const TICKS_PER_SEC: f64 = 100.0;

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn page() -> u32 {
    std::env::var("BENCH_PAGE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn pg_url() -> String {
    std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

// ---------------------------------------------------------------- /proc

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// User + system CPU seconds of a process (`self` for this one).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state(3) ... utime(14) stime(15).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_SEC)
}

// ---------------------------------------------------------------- destinations

#[derive(Clone)]
enum Dest {
    Jsonl(PathBuf),
    Parquet(PathBuf),
    Sqlite(PathBuf),
    Postgres(String),
}

impl Dest {
    fn new(kind: &str, dir: &Path, tag: &str) -> Dest {
        match kind {
            "jsonl" => Dest::Jsonl(dir.join(format!("jsonl-{tag}"))),
            "parquet" => Dest::Parquet(dir.join(format!("parquet-{tag}"))),
            "sqlite" => Dest::Sqlite(dir.join(format!("sqlite-{tag}.db"))),
            "postgres" => Dest::Postgres(format!("bench_{}_{tag}", std::process::id())),
            other => panic!("unknown destination {other} (jsonl, parquet, sqlite, postgres)"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Dest::Jsonl(_) => "jsonl",
            Dest::Parquet(_) => "parquet",
            Dest::Sqlite(_) => "sqlite",
            Dest::Postgres(_) => "postgres",
        }
    }

    fn config(&self) -> DestinationConfig {
        match self {
            Dest::Jsonl(p) => DestinationConfig::Jsonl { path: p.clone() },
            Dest::Parquet(p) => DestinationConfig::Parquet { path: p.clone() },
            Dest::Sqlite(p) => DestinationConfig::Sqlite { path: p.clone() },
            Dest::Postgres(schema) => DestinationConfig::Postgres {
                url: pg_url(),
                schema: schema.clone(),
            },
        }
    }

    fn toml(&self) -> String {
        match self {
            Dest::Jsonl(p) => format!("{{ type = \"jsonl\", path = '{}' }}", p.display()),
            Dest::Parquet(p) => format!("{{ type = \"parquet\", path = '{}' }}", p.display()),
            Dest::Sqlite(p) => format!("{{ type = \"sqlite\", path = '{}' }}", p.display()),
            Dest::Postgres(schema) => format!(
                "{{ type = \"postgres\", url = '{}', schema = \"{schema}\" }}",
                pg_url()
            ),
        }
    }

    /// Bytes on disk (file destinations).
    fn size(&self) -> Option<u64> {
        fn walk(p: &Path) -> u64 {
            match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => std::fs::read_dir(p)
                    .map(|d| d.filter_map(Result::ok).map(|e| walk(&e.path())).sum())
                    .unwrap_or(0),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        }
        match self {
            Dest::Jsonl(p) | Dest::Parquet(p) => Some(walk(p)),
            Dest::Sqlite(p) => Some(walk(p) + walk(&p.with_extension("db-wal"))),
            Dest::Postgres(_) => None,
        }
    }

    fn remove(&self) {
        match self {
            Dest::Jsonl(p) | Dest::Parquet(p) => {
                let _ = std::fs::remove_dir_all(p);
            }
            Dest::Sqlite(p) => {
                for ext in ["db", "db-wal", "db-shm"] {
                    let _ = std::fs::remove_file(p.with_extension(ext));
                }
            }
            Dest::Postgres(schema) => {
                if let Ok(mut c) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- one full run

struct RunFigures {
    records: u64,
    seconds: f64,
    peak_rss_kib: u64,
    child_cpu: f64,
    emulator_cpu: f64,
}

fn full_run(dir: &Path, ionapi: &Path, dest: &Dest) -> RunFigures {
    let file = dir.join(format!("bench-{}.toml", dest.kind()));
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {dest}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ company = {CONO} }}
quota = "none"

[pipelines.bench]
connection = "m3"
environment = "out"
tasks = ["{task}"]
sync_mode = "full_refresh"
page_size = {page}
"#,
            dest = dest.toml(),
            ionapi = ionapi.display(),
            page = page(),
            task = task(),
        ),
    )
    .unwrap();
    let emu_cpu0 = cpu_seconds("self").unwrap_or(0.0);
    let started = Instant::now();
    let mut child = Command::new(ionport_bin())
        .args(["run", "--quiet"])
        .arg(&file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", dir.join("home"))
        .env_remove("IONPORT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Drain the pipes on threads so the child never blocks on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let (mut peak, mut cpu) = (0, 0.0);
    let status = loop {
        // VmHWM is a high-water mark: the last reading before the exit is the peak.
        if let Some(p) = peak_rss_kib(pid) {
            peak = peak.max(p);
        }
        if let Some(c) = cpu_seconds(&pid.to_string()) {
            cpu = f64::max(cpu, c);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    let emulator_cpu = cpu_seconds("self").unwrap_or(0.0) - emu_cpu0;
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    assert!(
        status.success(),
        "ionport run into {} failed:\n{stdout}\n{stderr}",
        dest.kind()
    );
    let records = stdout
        .lines()
        .find(|l| l.starts_with(&format!("bench/{}", task())))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary row for the task:\n{stdout}"));
    RunFigures {
        records,
        seconds,
        peak_rss_kib: peak,
        child_cpu: cpu,
        emulator_cpu,
    }
}

// ---------------------------------------------------------------- stages on their own

fn m3() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_m3"))
        .unwrap()
        .clone()
}

fn read_request() -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({ "company": CONO }),
        },
        task: task(),
        sync_mode: SyncMode::FullRefresh,
        state: None,
        page_size: Some(page()),
        pages_in_flight: None,
        options: Value::Null,
    }
}

/// Counts what a read hands over, records the head of every gateway request and keeps
/// a few batches as NDJSON (to time the runner's parsing on).
#[derive(Default)]
struct CountSink {
    records: AtomicU64,
    heads: Mutex<Vec<GatewayRequestHead>>,
    sample: Mutex<Vec<Vec<u8>>>,
}

impl ReadHandler for CountSink {
    fn records(&self, _stream: &str, records: Records) -> Result<(), String> {
        self.records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let mut s = self.sample.lock().unwrap();
        if s.len() < 10 {
            let mut ndjson = Vec::new();
            for r in records.iter() {
                ndjson.extend_from_slice(r.line().as_bytes());
                ndjson.push(b'\n');
            }
            s.push(ndjson);
        }
        Ok(())
    }
    fn checkpoint(&self, _stream: &str, _state: Value) -> Result<(), String> {
        Ok(())
    }
    fn request(&self, head: &GatewayRequestHead) {
        self.heads.lock().unwrap().push(head.clone());
    }
}

/// The connector through core's gateway into a counting sink: seconds, records, the
/// requests it made, and sample NDJSON batches.
fn read_only(emu: &Emulated, plugin: &Arc<LoadedPlugin>, ionapi: &Path) -> ReadFigures {
    let mut settings = ConnectionSettings::default();
    settings.gateway.rate_limit = None;
    let connection =
        Connection::open(CredentialSource::IonApiFile(ionapi.to_path_buf()), settings).unwrap();
    let sink = Arc::new(CountSink::default());
    let started = Instant::now();
    emu.rt
        .block_on(read_task(
            plugin,
            &connection,
            read_request(),
            sink.clone(),
            Cancel::default(),
        ))
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let heads = std::mem::take(&mut *sink.heads.lock().unwrap());
    let sample = std::mem::take(&mut *sink.sample.lock().unwrap());
    // The same requests through core's gateway alone, no plugin.
    let host = connection.host(emu.rt.handle().clone());
    let started = Instant::now();
    for h in &heads {
        let r = HostCallbacks::gateway(&host, h.clone(), Vec::new()).unwrap();
        assert!((200..300).contains(&r.status), "{}: {}", h.path, r.status);
    }
    let gateway_secs = started.elapsed().as_secs_f64();
    ReadFigures {
        seconds: secs,
        gateway_seconds: gateway_secs,
        records: sink.records.load(Ordering::Relaxed),
        heads,
        sample,
    }
}

struct ReadFigures {
    /// The plugin's read, through core's gateway.
    seconds: f64,
    /// The same requests through core's gateway, without the plugin.
    gateway_seconds: f64,
    records: u64,
    heads: Vec<GatewayRequestHead>,
    sample: Vec<Vec<u8>>,
}

/// Replays requests against the emulator, reading and dropping the bodies; returns seconds
/// and bytes.
fn replay(emu: &Emulated, requests: &[GatewayRequestHead]) -> (f64, u64) {
    let ionapi = emu.emu.ionapi_json();
    let s = |k: &str| ionapi[k].as_str().unwrap_or_default().to_string();
    let base = emu.emu.api_base();
    emu.rt.block_on(async {
        let client = reqwest::Client::new();
        let token: Value = client
            .post(format!("{}{}", s("pu"), s("ot")))
            .form(&[
                ("grant_type", "password".to_string()),
                ("username", s("saak")),
                ("password", s("sask")),
                ("client_id", s("ci")),
                ("client_secret", s("cs")),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let bearer = token["access_token"].as_str().unwrap().to_string();
        let started = Instant::now();
        let mut bytes = 0u64;
        for h in requests {
            let m = reqwest::Method::from_bytes(h.method.as_bytes()).unwrap();
            let mut rb = client
                .request(m, format!("{base}/{}", h.path.trim_start_matches('/')))
                .query(&h.query)
                .bearer_auth(&bearer);
            for (k, v) in &h.headers {
                rb = rb.header(k, v);
            }
            let resp = rb.send().await.unwrap();
            assert!(resp.status().is_success(), "{}: {}", h.path, resp.status());
            bytes += resp.bytes().await.unwrap().len() as u64;
        }
        (started.elapsed().as_secs_f64(), bytes)
    })
}

/// Seconds per record the runner spends parsing NDJSON batches into `Records` (what the
/// read path does with every batch), timed on sample batches.
fn parse_cost(sample: &[Vec<u8>]) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    for _ in 0..3 {
        for b in sample {
            let r = Records::parse("sample", b.clone()).unwrap();
            n += r.len() as u64;
            std::hint::black_box(r);
        }
    }
    started.elapsed().as_secs_f64() / n.max(1) as f64
}

/// Seconds `ionport plugins list` takes: process start and loading the plugins.
fn startup() -> f64 {
    let started = Instant::now();
    let out = Command::new(ionport_bin())
        .args(["plugins", "list"])
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    started.elapsed().as_secs_f64()
}

/// The task's records as the connector emits them (EXPORTMI names and types).
fn records(ds: &Dataset, from: u64, to: u64) -> Vec<Map<String, Value>> {
    let t = &tables::OCUSMA;
    (from..to)
        .map(|i| ds.record(t.entity, CONO, i))
        .filter(|r| !r.deleted())
        .map(|r| {
            t.columns
                .iter()
                .filter(|c| c.kind != Kind::Bool)
                .map(|c| {
                    let raw = r.get(c.field).mi(c.len, false);
                    (
                        c.name.to_string(),
                        MiType::from_letter(c.kind.m3_letter()).value(&raw),
                    )
                })
                .collect()
        })
        .collect()
}

/// Commits the task's records straight into `dest` in page-sized batches (generation not
/// timed), then `finish`: seconds and records.
fn destination_only(ds: &Dataset, plugin: &LoadedPlugin, dest: &Dest) -> (f64, u64) {
    let spec = plugin.task(&task()).unwrap();
    let spec = StreamSpec {
        name: spec.name.clone(),
        record_schema: spec.record_schema.clone(),
        primary_key: spec.primary_key.clone(),
        cursor_field: spec.cursor_field.clone(),
    };
    let d = ionport_core::destination::open(&dest.config()).unwrap();
    d.prepare(&spec).unwrap();
    let total = ds.count(tables::OCUSMA.entity, CONO);
    let mut timed = Duration::ZERO;
    let mut n = 0u64;
    let mut from = 0;
    while from < total {
        let to = (from + u64::from(page())).min(total);
        let batch = Records::from_maps(&records(ds, from, to)).unwrap();
        n += batch.len() as u64;
        let started = Instant::now();
        d.commit(&spec, &batch, &json!({ "run": { "last_key": to } }))
            .unwrap();
        timed += started.elapsed();
        from = to;
    }
    let started = Instant::now();
    d.finish(&spec).unwrap();
    timed += started.elapsed();
    (timed.as_secs_f64(), n)
}

// ---------------------------------------------------------------- main

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters destinations.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let scales: Vec<u64> = env_list("BENCH_SCALES", "100000,1000000")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let kinds: Vec<String> = env_list("BENCH_DESTINATIONS", "jsonl,parquet,sqlite,postgres")
        .into_iter()
        .filter(|k| filter.is_empty() || filter.iter().any(|f| k.contains(f.as_str())))
        .collect();
    let pg_ok = postgres::Client::connect(&pg_url(), postgres::NoTls).is_ok();
    let plugin = m3();
    println!(
        "ionport pipeline bench: emulator → M3 {} (pages of {}) → destination",
        task(),
        page()
    );
    println!(
        "load average before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "ionport {} ({} cores)",
        ionport_bin().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    for scale in scales {
        let emu = Emulated::start(EmulatorConfig {
            scale,
            ..EmulatorConfig::default()
        });
        let ionapi = dir.path().join("emulator.ionapi");
        emu.emu.write_ionapi(&ionapi).unwrap();
        let ds = emu.emu.dataset();
        let t = &tables::OCUSMA;
        let want = (0..ds.count(t.entity, CONO))
            .filter(|i| !ds.record(t.entity, CONO, *i).deleted())
            .count() as u64;
        println!("\n== {scale} customers: {want} records to replicate");
        // The server's ceiling in this run: the connector's exact requests replayed by a
        // minimal client, one at a time, bodies read and dropped.
        let read = read_only(&emu, &plugin, &ionapi);
        assert_eq!(read.records, want);
        let (ceiling_s, ceiling_bytes) = replay(&emu, &read.heads);
        let ceiling = want as f64 / ceiling_s;
        println!(
            "{:<10} {:>9} {:>8} {:>10} {:>8} {:>13} {:>10} {:>10} {:>12} {:>10}",
            "dest",
            "records",
            "seconds",
            "records/s",
            "ceiling",
            "peak RSS MiB",
            "child CPU",
            "µs/record",
            "emulator CPU",
            "size MiB"
        );
        println!(
            "{:<10} {:>9} {:>8.2} {:>10.0} {:>7.0}% {:>13} {:>10} {:>10} {:>12} {:>10.1}",
            "ceiling",
            want,
            ceiling_s,
            ceiling,
            100.0,
            "-",
            "-",
            "-",
            "-",
            ceiling_bytes as f64 / 1_048_576.0
        );
        let mut results: Vec<(Dest, RunFigures)> = Vec::new();
        for kind in &kinds {
            if kind == "postgres" && !pg_ok {
                println!("{kind:<10} SKIPPED: Postgres unreachable at {}", pg_url());
                continue;
            }
            let dest = Dest::new(kind, dir.path(), &scale.to_string());
            dest.remove();
            let f = full_run(dir.path(), &ionapi, &dest);
            assert_eq!(f.records, want, "{kind}: records replicated");
            println!(
                "{:<10} {:>9} {:>8.2} {:>10.0} {:>7.0}% {:>13.1} {:>9.2}s {:>10.2} {:>11.2}s {:>10}",
                kind,
                f.records,
                f.seconds,
                f.records as f64 / f.seconds,
                100.0 * f.records as f64 / f.seconds / ceiling,
                f.peak_rss_kib as f64 / 1024.0,
                f.child_cpu,
                f.child_cpu * 1e6 / f.records.max(1) as f64,
                f.emulator_cpu,
                dest.size()
                    .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1_048_576.0)),
            );
            dest.remove();
            results.push((dest, f));
        }
        // Where the time goes, for the slowest destination.
        let Some((slowest, full)) = results.iter().min_by(|a, b| {
            (a.1.records as f64 / a.1.seconds).total_cmp(&(b.1.records as f64 / b.1.seconds))
        }) else {
            continue;
        };
        let (read_s, gw_s, requests, sample) =
            (read.seconds, read.gateway_seconds, read.heads, read.sample);
        let (emu_s, bytes) = (ceiling_s, ceiling_bytes);
        let parse_s = parse_cost(&sample) * want as f64;
        let start_s = startup();
        let dest = Dest::new(slowest.kind(), dir.path(), &format!("{scale}-direct"));
        dest.remove();
        // The direct commit generates `customer_table` records: other tasks' schemas would
        // refuse them, so that stage is measured for that task only.
        let direct = task() == "customer_table";
        let (dest_s, dest_n) = if direct {
            destination_only(&ds, &plugin, &dest)
        } else {
            (0.0, want)
        };
        dest.remove();
        assert_eq!(dest_n, want);
        let rate = |s: f64| want as f64 / s;
        let pct = |s: f64| 100.0 * s / full.seconds;
        let row = |what: &str, s: f64| {
            let r = if s > 0.02 {
                format!("{:.0}", rate(s))
            } else {
                "-".into()
            };
            println!("  {what:<58} {s:>7.2}s {r:>10} records/s {:>6.1}%", pct(s));
        };
        println!(
            "where the time goes for the slowest, {} ({:.2}s for {want} records; stages measured one by one):",
            slowest.kind(),
            full.seconds,
        );
        row(
            &format!(
                "emulator: the {} requests replayed ({:.1} MiB)",
                requests.len(),
                bytes as f64 / 1_048_576.0
            ),
            emu_s,
        );
        row(
            "core gateway: tokens, pooled HTTP, retry layer (beyond it)",
            gw_s - emu_s,
        );
        row(
            "M3 plugin: MI JSON decoded, NDJSON batches, across the ABI",
            read_s - gw_s,
        );
        row("host runner: NDJSON batches parsed into Records", parse_s);
        if direct {
            row(
                &format!("{} destination: commits + finish", slowest.kind()),
                dest_s,
            );
        }
        row(
            "process start + plugin loading (`ionport plugins list`)",
            start_s,
        );
        let rest = full.seconds - read_s - parse_s - dest_s - start_s;
        let what = if direct {
            "unaccounted (overlap when negative)"
        } else {
            "destination and unaccounted (not measured apart)"
        };
        println!("  {what:<58} {rest:>7.2}s {:>28.1}%", pct(rest));
        if let Some((_, j)) = results.iter().find(|(d, _)| d.kind() == "jsonl")
            && slowest.kind() != "jsonl"
        {
            println!(
                "  compare: the same run into jsonl took {:.2}s; {} adds {:.2}s",
                j.seconds,
                slowest.kind(),
                full.seconds - j.seconds
            );
        }
        drop(emu);
    }
}
