//! The ABI benchmark: the cost of crossing the plugin boundary, beside the same work
//! through a plain Rust trait object, in one run. Prints figures; asserts nothing.
//!
//! Run with `cargo xtask bench` (it builds the release plugins first).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ionport_core::host::{HostCallbacks, HostResponse};
use ionport_core::plugin::PluginRegistry;
use ionport_plugin_abi::wire::{
    ConnectionConfig, GatewayRequestHead, Manifest, ReadRequest, SyncMode,
};
use ionport_plugin_abi::{PluginError, RecordBatch};
use ionport_tests::{connector_libs, plugin_lib};
use serde_json::{Value, json};

#[derive(Default)]
struct CountingHost {
    bytes: AtomicU64,
}

impl HostCallbacks for CountingHost {
    fn gateway(&self, _h: GatewayRequestHead, _b: Vec<u8>) -> Result<HostResponse, PluginError> {
        Ok(HostResponse::default())
    }
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        self.bytes
            .fetch_add(black_box(batch.ndjson.len()) as u64, Ordering::Relaxed);
        Ok(())
    }
    fn checkpoint(&self, _s: &str) -> Result<(), PluginError> {
        Ok(())
    }
    fn cancelled(&self) -> bool {
        false
    }
}

/// The in-process comparison: the same work behind a plain `dyn` trait.
trait Plain {
    fn manifest(&self) -> String;
    fn emit(&self, batch: Vec<u8>);
    fn cancelled(&self) -> bool;
}

struct PlainImpl {
    bytes: AtomicU64,
}

impl Plain for PlainImpl {
    fn manifest(&self) -> String {
        serde_json::to_string(&Manifest {
            id: "ionport-test".into(),
            name: "ionport test plugin".into(),
            version: "0.1.0".into(),
            abi_version: "1.0.0".into(),
            description: "Exercises the ionport plugin ABI for the host's tests.".into(),
            stream_names: None,
            requires: Vec::new(),
        })
        .unwrap_or_default()
    }
    fn emit(&self, batch: Vec<u8>) {
        self.bytes
            .fetch_add(black_box(batch.len()) as u64, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        false
    }
}

fn per_call_ns(iters: u64, f: impl Fn()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn read(task: &str, options: Value) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({}),
        },
        task: task.into(),
        sync_mode: SyncMode::FullRefresh,
        state: None,
        page_size: None,
        pages_in_flight: None,
        options,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

fn main() {
    // Plugin load time: first load in this process (dlopen, ABI and layout checks,
    // descriptor read and validation).
    let start = Instant::now();
    let reg = PluginRegistry::load_from(&connector_libs());
    let load = start.elapsed();
    assert_eq!(reg.plugins().len(), 3, "refused: {:?}", reg.refused());
    println!(
        "plugin load (3 connectors, incl. validation): {:.1} ms total, {:.1} ms each",
        load.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3 / 3.0
    );

    let mut reg = PluginRegistry::default();
    let plugin = reg
        .load(&plugin_lib("ionport_test_plugin"))
        .expect("test plugin loads")
        .clone();
    let plain: Box<dyn Plain> = Box::new(PlainImpl {
        bytes: AtomicU64::new(0),
    });

    // Host -> plugin, a small payload (the manifest, ~200 bytes of JSON each way).
    let abi = per_call_ns(200_000, || {
        black_box(plugin.call_manifest().ok());
    });
    let dyn_ = per_call_ns(200_000, || {
        let s = plain.manifest();
        black_box(serde_json::from_str::<Manifest>(&s).ok());
    });
    println!(
        "host->plugin manifest() call:  ABI {abi:>8.1} ns   plain dyn {dyn_:>8.1} ns   ratio {:.2}",
        abi / dyn_
    );

    // Plugin -> host, trivial (cancelled() -> bool), timed inside the plugin.
    let calls = 10_000_000u64;
    let host: Arc<dyn HostCallbacks> = Arc::new(CountingHost::default());
    let summary = plugin
        .read(host.clone(), &read("host_calls", json!({ "calls": calls })))
        .expect("host_calls runs");
    let nanos = summary
        .state
        .as_ref()
        .and_then(|s| s["nanos"].as_u64())
        .unwrap_or(0);
    let abi = nanos as f64 / calls as f64;
    let dyn_ = per_call_ns(calls, || {
        black_box(black_box(&plain).cancelled());
    });
    println!("plugin->host cancelled() call: ABI {abi:>8.2} ns   plain dyn {dyn_:>8.2} ns");

    // A 1 MiB NDJSON batch across the boundary (the plugin builds each batch by copying
    // a 1 MiB template; the plain path does the same copy).
    let batches = 2000u64;
    let counting = Arc::new(CountingHost::default());
    let start = Instant::now();
    plugin
        .read(
            counting.clone(),
            &read("blob", json!({ "bytes": 1 << 20, "batches": batches })),
        )
        .expect("blob runs");
    let abi_secs = start.elapsed().as_secs_f64();
    let moved = counting.bytes.load(Ordering::Relaxed) as f64;
    let template = vec![b'x'; moved as usize / batches as usize];
    let start = Instant::now();
    for _ in 0..batches {
        plain.emit(template.clone());
    }
    let dyn_secs = start.elapsed().as_secs_f64();
    let gib = moved / (1u64 << 30) as f64;
    println!(
        "1 MiB record batches:          ABI {:>8.2} GiB/s ({:.1} us/batch)   plain dyn {:>8.2} GiB/s ({:.1} us/batch)",
        gib / abi_secs,
        abi_secs * 1e6 / batches as f64,
        gib / dyn_secs,
        dyn_secs * 1e6 / batches as f64
    );
}
