//! Scale-out throughput (`cargo xtask bench`): one big task split into partitions — the
//! `infor-ionapi` connector's offset-paged widgets, `BENCH_CLUSTER_SCALE` records (default
//! 18 000) in `BENCH_CLUSTER_PARTITIONS` partitions (default 6), each a unit of work of its
//! own, into one Postgres schema whose partition writers go side by side — done by 1, 2
//! and 3 `ionport worker` processes on the machine's Postgres as coordinator, against the
//! emulator at 150 ms per call and no quota. Per row: records/s (from `cluster submit
//! --now` to the last unit done), the speed-up over one worker, the workers' CPU per
//! record (user+sys of the worker processes, start-up included, from `/proc/self/stat`'s
//! children times), their peak RSS (the largest `VmHWM`), and the emulator's ceiling: the
//! same page requests replayed by a minimal client, one stream per worker. Then the
//! coordinator's cost per unit of work, from the workers' own logs: a claim, an end, and a
//! lease renewal (median, p90).

#![allow(clippy::unwrap_used)]

#[path = "pipeline/sys.rs"]
#[allow(dead_code)]
mod sys;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_tests::cluster::{Cluster, widgets_pipeline};
use ionport_tests::destinations::{pg_client, pg_url};
use ionport_tests::emulated::Emulated;
use serde_json::Value;

const LATENCY: Duration = Duration::from_millis(150);
const PAGE: u32 = 100;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The pipeline file of one run, into a Postgres schema of its own (dropped by the caller).
fn pipeline(dir: &Path, ionapi: &Path, schema: &str, partitions: u32) -> std::path::PathBuf {
    let destination = format!(
        "{{ type = \"postgres\", url = '{}', schema = \"{schema}\" }}",
        pg_url()
    );
    widgets_pipeline(dir, ionapi, &destination, partitions, PAGE)
}

struct Row {
    workers: usize,
    records: i64,
    seconds: f64,
    cpu_us_per_record: f64,
    peak_rss_mib: f64,
    claim_ms: Vec<f64>,
    end_ms: Vec<f64>,
    renew_ms: Vec<f64>,
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

fn run(ionapi: &Path, units: usize, workers: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("bench_cluster_{}_{workers}", std::process::id());
    let out = format!("{schema}_out");
    let file = pipeline(dir.path(), ionapi, &out, units as u32);
    let mut cluster = Cluster::new(dir.path(), &schema, "30s");
    cluster.log_filter = "ionport::cluster=debug";
    for _ in 0..workers {
        cluster.start_worker();
    }
    let mut db = pg_client();
    let count = |db: &mut postgres::Client, sql: &str| -> i64 {
        db.query_one(&format!("SELECT {sql}"), &[])
            .map(|r| r.get::<_, Option<i64>>(0).unwrap_or(0))
            .unwrap_or(0)
    };
    while count(&mut db, &format!("count(*) FROM \"{schema}\".workers")) < workers as i64 {
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.submit(&file, true);
    // Only the workers are waited for from here on: their CPU is what the children's
    // times add when they exit.
    let cpu0 = sys::children_cpu_seconds();
    let started = Instant::now();
    let done_sql = format!("count(*) FROM \"{schema}\".units WHERE state = 'done'");
    let mut peak_kib = 0u64;
    while count(&mut db, &done_sql) < units as i64 {
        for c in cluster.workers.values() {
            peak_kib = peak_kib.max(sys::peak_rss_kib(c.id()).unwrap_or(0));
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the units did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    for c in cluster.workers.values() {
        peak_kib = peak_kib.max(sys::peak_rss_kib(c.id()).unwrap_or(0));
    }
    let records = count(
        &mut db,
        &format!("sum(records)::bigint FROM \"{schema}\".units"),
    );
    let failed = count(
        &mut db,
        &format!("count(*) FROM \"{schema}\".units WHERE state <> 'done'"),
    );
    assert_eq!(failed, 0, "every unit done");
    cluster.stop_all();
    db.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{out}\" CASCADE"))
        .unwrap();
    let cpu = sys::children_cpu_seconds() - cpu0;
    let logs = cluster.logs();
    let take = |what: &str, key: &str| -> Vec<f64> {
        logs.lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| field(l, key))
            .collect()
    };
    Row {
        workers,
        records,
        seconds,
        cpu_us_per_record: cpu * 1e6 / records.max(1) as f64,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        claim_ms: take("unit claimed", "claim_ms"),
        end_ms: take("unit done", "end_ms"),
        renew_ms: take("leases renewed", "renew_ms"),
    }
}

/// The widget page requests the emulator served, replayed with `streams` at a time
/// by a minimal client (bodies read and dropped): pages per second.
fn ceiling(emu: &Emulated, streams: usize, pages: usize) -> f64 {
    let recorded = emu.control("GET", "requests", None)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .contains("GENERIC/v1/widgets/offset")
        })
        .take(pages)
        .cloned()
        .collect::<Vec<Value>>();
    let base = emu.emu.api_base();
    let root = base.rsplit_once('/').unwrap().0.to_string();
    let recorded = Arc::new(recorded);
    emu.rt.block_on(async {
        let client = reqwest::Client::new();
        let bearer = emu.bearer(&client).await;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..streams)
            .map(|_| {
                let (client, bearer, next, recorded, root) = (
                    client.clone(),
                    bearer.clone(),
                    next.clone(),
                    recorded.clone(),
                    root.clone(),
                );
                tokio::spawn(async move {
                    while let Some(r) = recorded.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let query: Vec<(String, String)> =
                            serde_json::from_value(r["query"].clone()).unwrap();
                        let resp = client
                            .get(format!("{root}{}", r["path"].as_str().unwrap()))
                            .query(&query)
                            .bearer_auth(&*bearer)
                            .send()
                            .await
                            .unwrap();
                        assert!(resp.status().is_success(), "{}", resp.status());
                        let _ = resp.bytes().await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        recorded.len() as f64 / started.elapsed().as_secs_f64()
    })
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let units = env_or("BENCH_CLUSTER_PARTITIONS", 6) as usize;
    let scale = env_or("BENCH_CLUSTER_SCALE", 18_000);
    let emu = Emulated::start(EmulatorConfig {
        scale,
        latency: LATENCY,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    println!(
        "\n== scale-out: one task of {scale} records in {units} partitions (infor-ionapi widgets by offset, page {PAGE}, 1 page in flight, into Postgres) at {} ms per call, no quota; load {}",
        LATENCY.as_millis(),
        sys::loadavg()
    );
    println!(
        "workers  records  seconds  records/s  speed-up  ceiling/s  share  µs CPU/rec  peak RSS MiB"
    );
    let mut rows = Vec::new();
    for workers in [1usize, 2, 3] {
        let row = run(&ionapi, units, workers);
        let rate = row.records as f64 / row.seconds;
        let base = rows
            .first()
            .map_or(rate, |r: &Row| r.records as f64 / r.seconds);
        // The server's ceiling for as many page streams as units run at once.
        let pages_per_s = ceiling(&emu, workers.min(units), 10 * workers);
        let ceiling_rec = pages_per_s * f64::from(PAGE);
        println!(
            "{:>7}  {:>7}  {:>7.1}  {:>9.0}  {:>7.2}x  {:>9.0}  {:>4.0}%  {:>10.1}  {:>12.1}",
            row.workers,
            row.records,
            row.seconds,
            rate,
            rate / base,
            ceiling_rec,
            100.0 * rate / ceiling_rec,
            row.cpu_us_per_record,
            row.peak_rss_mib
        );
        rows.push(row);
    }
    let all = |f: fn(&Row) -> &Vec<f64>| -> Vec<f64> { rows.iter().flat_map(f).copied().collect() };
    let (claim, end, renew) = (
        all(|r| &r.claim_ms),
        all(|r| &r.end_ms),
        all(|r| &r.renew_ms),
    );
    println!("\ncoordinator cost per unit of work (ms; debug logs of every worker above)");
    println!("step     count  median    p90");
    for (name, v) in [("claim", &claim), ("end", &end), ("renew", &renew)] {
        println!(
            "{name:<7} {:>6}  {:>6.1} {:>6.1}",
            v.len(),
            quantile(v, 0.5),
            quantile(v, 0.9)
        );
    }
}
