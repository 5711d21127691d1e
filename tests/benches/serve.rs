//! Latency of the HTTP API (`ionport serve`) against the emulator over loopback:
//!
//! - `POST /v1/connections/{name}/test`: the connector's check through the host (token,
//!   gateway calls, token revoked), N times;
//! - `POST /v1/runs`: time to the 202, and to completion of a small task (M3 `customers`,
//!   `BENCH_SCALE` records, full refresh into SQLite), polled every 2 ms, N times;
//! - `GET /health` as the floor (HTTP + auth-free routing).
//!
//! ```sh
//! cargo build --release -p ionport -p ionport-connector-m3
//! cargo bench -p ionport-tests --bench serve
//! ```
//!
//! Printed: median, p95, mean, min, max in milliseconds. Nothing about time is asserted;
//! every test must pass and every run must succeed with the expected record count.
//! Environment: `BENCH_N` (default 50), `BENCH_SCALE` (default 200).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::{form_credentials, ionport_bin, profile_dir};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const KEY: &str = "bench-key-0123456789";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let at = |q: f64| ms[((n as f64 - 1.0) * q).round() as usize];
    let mean = ms.iter().sum::<f64>() / n as f64;
    println!(
        "{name:<44} n={n:<3} median {:>8.2} ms  p95 {:>8.2} ms  mean {:>8.2} ms  min {:>8.2}  max {:>8.2}",
        at(0.5),
        at(0.95),
        mean,
        ms[0],
        ms[n - 1]
    );
}

fn main() {
    let n = env_num("BENCH_N", 50) as usize;
    let scale = env_num("BENCH_SCALE", 200);
    let emu = Emulated::start(EmulatorConfig {
        scale,
        quota: None,
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(ionport_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--api-key", KEY])
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", home.path())
        .env("IONPORT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let call = |method: &str, path: &str, body: Option<Value>| -> (u16, Value, f64) {
        let mut req = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let t = Instant::now();
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap_or(Value::Null);
        (status, v, t.elapsed().as_secs_f64() * 1000.0)
    };

    println!(
        "ionport serve bench: {} ({} cores), emulator M3 at {scale} customers, N={n}",
        ionport_bin().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "load average before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    let values = json!({"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())});
    let (st, v, create_ms) = call(
        "POST",
        "/v1/connections",
        Some(
            json!({"name": "bench", "connector": "infor-m3", "values": values,
                    "tasks": [{"name": "customers"}], "page_size": 100, "quota": "none"}),
        ),
    );
    assert_eq!(st, 201, "{v}");
    println!("POST /v1/connections (check included): {create_ms:.2} ms");

    let health: Vec<f64> = (0..n * 4)
        .map(|_| {
            let t = Instant::now();
            let r = client.get(format!("{base}/health")).send().unwrap();
            assert!(r.status().is_success());
            let _ = r.bytes();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    stats("GET /health", health);

    for _ in 0..3 {
        call("POST", "/v1/connections/bench/test", None);
    }
    let tests: Vec<f64> = (0..n)
        .map(|_| {
            let (st, v, ms) = call("POST", "/v1/connections/bench/test", None);
            assert!(st == 200 && v["success"] == true, "{v}");
            ms
        })
        .collect();
    stats("POST /v1/connections/bench/test", tests);

    let mut accepted = Vec::new();
    let mut completed = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (st, v, ms) = call(
            "POST",
            "/v1/runs",
            Some(json!({"connection": "bench", "full_refresh": true})),
        );
        assert_eq!(st, 202, "{v}");
        accepted.push(ms);
        let id = v["id"].as_str().unwrap().to_string();
        loop {
            let (_, r, _) = call("GET", &format!("/v1/runs/{id}"), None);
            if r["finished"].is_u64() {
                assert_eq!(r["status"], "succeeded", "{r}");
                assert_eq!(r["records"].as_u64(), Some(scale), "{r}");
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        completed.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    stats("POST /v1/runs → 202", accepted);
    stats(
        &format!("POST /v1/runs → succeeded ({scale} records)"),
        completed,
    );

    let _ = child.kill();
    let _ = child.wait();
}
