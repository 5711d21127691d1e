//! Throughput of the M3, LN and Data Lake connectors against the emulator, through the built
//! cdylibs, the ABI and core's one read path (`read_task`): records per second,
//! gateway requests per 100,000 records, and the host's CPU per 100,000 records (the CPU
//! of every thread of this process except the emulator's, which runs on its own named
//! runtime).
//!
//! `cargo bench -p ionport-tests --bench connectors` (after building the connector cdylibs
//! in release: `cargo build --release -p ionport-connector-m3 -p ionport-connector-ln
//! -p ionport-connector-datalake`). `IONPORT_BENCH_SCALE` sets the emulator scale
//! (default 50,000).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ionport_core::connection::{Cancel, Connection, ConnectionSettings, CredentialSource};
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_core::read::{ReadHandler, read_task};
use ionport_emulator::{Emulator, EmulatorConfig};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::plugin_lib;
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct Counting {
    records: AtomicU64,
}

impl ReadHandler for Counting {
    fn records(&self, _stream: &str, records: ionport_core::read::Records) -> Result<(), String> {
        self.records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn checkpoint(&self, _stream: &str, _state: Value) -> Result<(), String> {
        Ok(())
    }
}

/// CPU seconds of this process's threads whose name does not start with `emu`.
fn host_cpu() -> f64 {
    let mut ticks = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if stat[open + 1..close].starts_with("emu") {
                continue;
            }
            let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            // After "pid (comm) ": state is field 0; utime 11, stime 12.
            let u: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
            let s: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
            ticks += u + s;
        }
    }
    ticks as f64 / 100.0
}

fn plugin(name: &str) -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib(name))
        .expect("the plugin loads")
        .clone()
}

/// One measured read: what, which plugin, the request, which emulator counter counts it.
type Run = (
    &'static str,
    Arc<LoadedPlugin>,
    ReadRequest,
    fn(&ionport_emulator::Counters) -> u64,
);

struct Figures {
    records: u64,
    secs: f64,
    requests: u64,
    cpu: f64,
}

fn print(what: &str, f: &Figures) {
    let per = |x: f64| x * 100_000.0 / f.records.max(1) as f64;
    println!(
        "{what:<44} {:>9} records {:>7.2} s {:>10.0} records/s {:>8.1} requests/100k {:>6.2} host CPU s/100k",
        f.records,
        f.secs,
        f.records as f64 / f.secs,
        per(f.requests as f64),
        per(f.cpu)
    );
}

fn main() {
    let scale: u64 = std::env::var("IONPORT_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let emu_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("emu")
        .enable_all()
        .build()
        .expect("a runtime");
    let host_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("host")
        .enable_all()
        .build()
        .expect("a runtime");
    let emu = emu_rt
        .block_on(Emulator::start(EmulatorConfig {
            scale,
            job_run_time: Duration::from_millis(50),
            ..EmulatorConfig::default()
        }))
        .expect("the emulator starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("bench.ionapi");
    emu.write_ionapi(&path).expect("the .ionapi file");
    let mut settings = ConnectionSettings::default();
    settings.gateway.rate_limit = None;
    let connection = {
        let _g = host_rt.enter();
        Connection::open(CredentialSource::IonApiFile(path), settings).expect("a connection")
    };
    println!("emulator scale {scale}; host: core ConnectionHost; release cdylibs");

    let m3 = plugin("ionport_connector_m3");
    let ln = plugin("ionport_connector_ln");
    let lake = plugin("ionport_connector_datalake");
    let m3_read = |task: &str| ReadRequest {
        connection: ConnectionConfig {
            settings: json!({"company": 100}),
        },
        task: task.into(),
        sync_mode: SyncMode::FullRefresh,
        state: None,
        page_size: Some(1000),
        pages_in_flight: None,
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    };
    let runs: Vec<Run> = vec![
        (
            "M3 customers (CRS610MI list paging, 1000/page)",
            m3.clone(),
            m3_read("customers"),
            |c| c.requests.m3,
        ),
        (
            "M3 customer_table (EXPORTMI, 1000/page)",
            m3,
            m3_read("customer_table"),
            |c| c.requests.m3,
        ),
        (
            "LN business_partners (OData, 1000/page)",
            ln.clone(),
            ReadRequest {
                connection: ConnectionConfig {
                    settings: json!({"company": 100}),
                },
                task: "business_partners".into(),
                sync_mode: SyncMode::FullRefresh,
                state: None,
                page_size: Some(1000),
                pages_in_flight: None,
                options: Value::Null,
                columns: None,
                include_deleted: false,
                partition: None,
            },
            |c| c.requests.ln,
        ),
        (
            "LN business_partners (OData, 5000/page)",
            ln,
            ReadRequest {
                connection: ConnectionConfig {
                    settings: json!({"company": 100}),
                },
                task: "business_partners".into(),
                sync_mode: SyncMode::FullRefresh,
                state: None,
                page_size: Some(5000),
                pages_in_flight: None,
                options: Value::Null,
                columns: None,
                include_deleted: false,
                partition: None,
            },
            |c| c.requests.ln,
        ),
        (
            "Data Lake m3_order_lines (Compass, ndjson)",
            lake,
            ReadRequest {
                connection: ConnectionConfig {
                    settings: json!({}),
                },
                task: "m3_order_lines".into(),
                sync_mode: SyncMode::FullRefresh,
                state: None,
                page_size: None,
                pages_in_flight: None,
                options: Value::Null,
                columns: None,
                include_deleted: false,
                partition: None,
            },
            |c| c.requests.datalake,
        ),
    ];
    for (what, p, req, requests_of) in runs {
        let sink = Arc::new(Counting::default());
        let before = requests_of(&emu.counters());
        let cpu0 = host_cpu();
        let t0 = Instant::now();
        host_rt
            .block_on(read_task(
                &p,
                &connection,
                req,
                sink.clone(),
                Cancel::default(),
            ))
            .expect("the read succeeds");
        let secs = t0.elapsed().as_secs_f64();
        let f = Figures {
            records: sink.records.load(Ordering::Relaxed),
            secs,
            requests: requests_of(&emu.counters()) - before,
            cpu: host_cpu() - cpu0,
        };
        print(what, &f);
    }
    drop(emu);
}
