//! Throughput and memory of the emulator: `cargo bench -p ionport-emulator`.
//!
//! Starts the `ionport-emulator` binary at `--scale 1000000` (a million M3 customers) as a
//! child process, drives it over loopback with reqwest, and prints:
//! - requests/s for an M3 v2 list page of 1,000 records (`CRS610MI/LstByNumber`);
//! - requests/s for a Compass result page of 100,000 rows (NDJSON);
//! - the child's peak RSS (`VmHWM`) after those workloads, and after a sorted job over all
//!   million rows.
//!
//! Environment: `BENCH_SECONDS` (default 5) per workload, `BENCH_CONCURRENCY` (default 4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorCredentials;
use serde_json::Value;

const SCALE: u64 = 1_000_000;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn token(client: &reqwest::Client, base: &str) -> String {
    let c = EmulatorCredentials::demo("IONPORT_DEMO");
    let v: Value = client
        .post(format!("{base}/IONPORT_DEMO/as/token.oauth2"))
        .form(&[
            ("grant_type", "password"),
            ("username", c.saak.as_str()),
            ("password", c.sask.as_str()),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// Runs `make(i)` requests from `conc` tasks for `secs`; returns (requests, bytes, elapsed).
async fn drive<F>(conc: usize, secs: f64, make: F) -> (u64, u64, f64)
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let n = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for t in 0..conc {
        let (make, n, bytes) = (make.clone(), n.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t as u64 * 7919;
            while Instant::now() < deadline {
                let resp = make(i).send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let body = resp.bytes().await.unwrap();
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                n.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (
        n.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

async fn wait_job(client: &reqwest::Client, jobs: &str, at: &str, id: &str) -> Value {
    loop {
        let st: Value = client
            .get(format!("{jobs}/{id}/status/"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["status"] != "RUNNING" {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn submit(client: &reqwest::Client, jobs: &str, at: &str, sql: &str) -> String {
    let v: Value = client
        .post(format!("{jobs}/"))
        .bearer_auth(at)
        .header("Content-Type", "text/plain")
        .body(sql.to_owned())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["queryId"].as_str().unwrap().to_owned()
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let conc: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ionport-emulator"))
        .args([
            "--scale",
            &SCALE.to_string(),
            "--job-run-time",
            "0",
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ionport-emulator");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // Keep draining the child's stdout.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let base = first.trim().to_owned();
    println!(
        "emulator at {base}, scale {SCALE} customers, pid {pid}; {conc} concurrent clients, {secs} s per workload"
    );
    println!(
        "peak RSS after start: {:.1} MiB",
        peak_rss_kib(pid) as f64 / 1024.0
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc * 2)
        .build()
        .unwrap();
    let at = token(&client, &base).await;
    let api = format!("{base}/IONPORT_DEMO");

    // M3 v2 list page of 1,000 records, from a different key each time.
    let (c2, at2, api2) = (client.clone(), at.clone(), api.clone());
    let (n, bytes, el) = drive(conc, secs, move |i| {
        let from = format!("C{:09}", (i * 1009) % (SCALE - 1000) + 1);
        c2.get(format!("{api2}/M3/m3api-rest/v2/execute/CRS610MI/LstByNumber?maxrecs=1000&righttrim=true&CUNO={from}"))
            .bearer_auth(&at2)
    })
    .await;
    println!(
        "M3 v2 CRS610MI/LstByNumber, 1,000 records/page: {:.1} requests/s ({:.0} records/s, {:.1} MiB/s, {} KiB/page)",
        n as f64 / el,
        n as f64 * 1000.0 / el,
        bytes as f64 / el / 1048576.0,
        bytes / n.max(1) / 1024
    );

    // Compass result page of 100,000 rows.
    let jobs = format!("{api}/DATAFABRIC/compass/v2/jobs");
    let id = submit(
        &client,
        &jobs,
        &at,
        "SELECT OKCONO, OKCUNO, OKCUNM, OKCSCD, OKLMTS FROM OCUSMA",
    )
    .await;
    let st = wait_job(&client, &jobs, &at, &id).await;
    let total = st["rowCount"].as_u64().unwrap();
    let pages = total / 100_000;
    let (c3, at3, jobs3) = (client.clone(), at.clone(), jobs.clone());
    let (n, bytes, el) = drive(conc.min(2), secs, move |i| {
        let offset = (i % pages) * 100_000;
        c3.get(format!("{jobs3}/{id}/result/?offset={offset}&limit=100000"))
            .bearer_auth(&at3)
            .header("Accept", "application/x-ndjson")
    })
    .await;
    println!(
        "Compass result page, 100,000 rows (NDJSON, {} KiB/page): {:.2} requests/s ({:.0} rows/s, {:.1} MiB/s)",
        bytes / n.max(1) / 1024,
        n as f64 / el,
        n as f64 * 100_000.0 / el,
        bytes as f64 / el / 1048576.0
    );
    println!(
        "peak RSS after the M3 and Compass workloads: {:.1} MiB",
        peak_rss_kib(pid) as f64 / 1024.0
    );

    // Worst case for memory: a filtered, sorted job over every customer.
    let t = Instant::now();
    let id = submit(
        &client,
        &jobs,
        &at,
        "SELECT OKCUNO, OKLMTS FROM OCUSMA WHERE infor.lastmodified() >= '2024-06-01T00:00:00Z' ORDER BY infor.lastmodified() DESC",
    )
    .await;
    let st = wait_job(&client, &jobs, &at, &id).await;
    println!(
        "sorted job over {} customers: {} rows in {:.1} s; peak RSS now {:.1} MiB",
        total,
        st["rowCount"],
        t.elapsed().as_secs_f64(),
        peak_rss_kib(pid) as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
