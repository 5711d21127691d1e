//! Where the time of one run goes (`BENCH_STAGES=1`; M3 `customer_table` only, whose
//! records the bench can generate), each stage measured on its own:
//!
//! - **emulator**: the connector's exact requests replayed over HTTP, one at a time,
//!   bodies read and dropped — the emulator's serving rate plus loopback HTTP;
//! - **core gateway**: the same requests through core's gateway client (tokens, no rate
//!   limit), beyond the emulator stage;
//! - **plugin**: the connector reading through core's gateway into a sink that only
//!   counts, beyond the gateway stage;
//! - **host runner**: what the runner's sink does to every batch, NDJSON parsed into JSON
//!   maps (timed on sample batches, scaled to the record count);
//! - **destination**: the same records (generated) committed straight into a fresh
//!   destination in page-sized batches, then `finish`;
//! - **process start + plugin loading**: `ionport plugins list`;
//! - what is left of the full run (negative when stages overlapped).

use std::process::Command;
use std::time::{Duration, Instant};

use ionport_core::destination::StreamSpec;
use ionport_core::plugin::LoadedPlugin;
use ionport_core::read::Records;
use ionport_emulator::data::{Dataset, Kind, tables};
use ionport_infor_mi::MiType;
use ionport_tests::{ionport_bin, profile_dir};
use serde_json::{Map, Value, json};

use crate::ceiling::Recorded;
use crate::dest::Dest;
use crate::run::RunFigures;
use crate::tasks::CONO;

/// Seconds per record the read path spends parsing NDJSON batches into `Records` (what
/// it does with every batch), timed on sample batches.
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
    assert!(out.status.success(), "ionport plugins list failed");
    started.elapsed().as_secs_f64()
}

/// The `customer_table` records as the connector emits them (EXPORTMI names and types).
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
fn destination_only(ds: &Dataset, plugin: &LoadedPlugin, dest: &Dest, page: u32) -> (f64, u64) {
    let spec = plugin.task("customer_table").unwrap();
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
        let to = (from + u64::from(page)).min(total);
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

/// Prints where the time of `full` (a run into `slowest`) goes.
#[allow(clippy::too_many_arguments)]
pub fn breakdown(
    ds: &Dataset,
    plugin: &LoadedPlugin,
    dir: &std::path::Path,
    page: u32,
    read: &Recorded,
    replay_seq: (f64, u64),
    slowest: &Dest,
    full: &RunFigures,
    want: u64,
) {
    let (emu_s, bytes) = replay_seq;
    let parse_s = parse_cost(&read.sample) * want as f64;
    let start_s = startup();
    let dest = Dest::new(slowest.kind(), dir, "direct");
    dest.remove();
    let (dest_s, dest_n) = destination_only(ds, plugin, &dest, page);
    dest.remove();
    assert_eq!(
        dest_n, want,
        "records committed straight into the destination"
    );
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
            read.heads.len(),
            bytes as f64 / 1_048_576.0
        ),
        emu_s,
    );
    row(
        "core gateway: tokens, pooled HTTP, retry layer (beyond it)",
        read.gateway_seconds - emu_s,
    );
    row(
        "M3 plugin: MI JSON decoded, NDJSON batches, across the ABI",
        read.seconds - read.gateway_seconds,
    );
    row("host runner: NDJSON batches parsed into JSON maps", parse_s);
    row(
        &format!("{} destination: commits + finish", slowest.kind()),
        dest_s,
    );
    row(
        "process start + plugin loading (`ionport plugins list`)",
        start_s,
    );
    let rest = full.seconds - read.seconds - parse_s - dest_s - start_s;
    println!(
        "  {:<58} {rest:>7.2}s {:>28.1}%",
        "unaccounted (overlap when negative)",
        pct(rest)
    );
}
