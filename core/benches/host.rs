//! Figures of the host services, against the emulator over loopback (in this process):
//!
//! 1. the cost of a cached-token lookup;
//! 2. gateway calls per second the host sustains with no quota, beside the emulator's
//!    own ceiling (plain reqwest with a fixed bearer token, same concurrency, same run);
//! 3. the fraction of a configured quota achieved with zero 429s.
//!
//! `cargo bench -p ionport-core --bench host` (release). Environment: `HOST_BENCH_SECS`
//! (seconds per throughput run, default 3), `HOST_BENCH_QUOTA` (requests per second,
//! default 100), `HOST_BENCH_QUOTA_SECS` (default 10).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::gateway::{GatewaySettings, RateLimit};
use ionport_emulator::{Emulator, EmulatorConfig, Quota};
use secrecy::ExposeSecret;

const ME: &str = "ifsservice/usermgt/v2/users/me";
const CONCURRENCY: usize = 32;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings(rate_limit: Option<RateLimit>) -> ConnectionSettings {
    ConnectionSettings {
        gateway: GatewaySettings {
            rate_limit,
            concurrency: CONCURRENCY,
            ..GatewaySettings::default()
        },
        ..ConnectionSettings::default()
    }
}

async fn run_for<F, Fut>(secs: f64, tasks: usize, make: F) -> (u64, f64)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let make = Arc::new(make);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let ok = Arc::clone(&ok);
        let make = Arc::clone(&make);
        handles.push(async move {
            while Instant::now() < stop {
                if make().await && Instant::now() <= stop {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    futures_join(handles).await;
    let n = ok.load(Ordering::Relaxed);
    (n, n as f64 / start.elapsed().as_secs_f64().max(secs))
}

async fn futures_join(fs: Vec<impl std::future::Future<Output = ()> + Send + 'static>) {
    let hs: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    for h in hs {
        h.await.unwrap();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let secs = env_u64("HOST_BENCH_SECS", 3) as f64;
        let dir = tempfile::tempdir().unwrap();

        // 1. Cached-token lookup.
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let file = dir.path().join("emu.ionapi");
        emu.write_ionapi(&file).unwrap();
        let conn = Connection::open(CredentialSource::IonApiFile(file.clone()), settings(None)).unwrap();
        let tm = conn.tokens().clone();
        tm.access_token().await.unwrap();
        let n = 5_000_000u32;
        let t = Instant::now();
        for _ in 0..n {
            black_box(tm.cached());
        }
        let sync_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        let t = Instant::now();
        for _ in 0..n {
            black_box(tm.access_token().await.unwrap());
        }
        let async_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!("cached-token lookup: {sync_ns:.1} ns (TokenManager::cached), {async_ns:.1} ns (access_token().await, cache hit)");

        // 2. Throughput: the host's gateway client vs the emulator's own ceiling.
        let gw = conn.gateway().clone();
        let warm = gw.clone();
        let (_, _) = run_for(0.5, CONCURRENCY, move || {
            let gw = warm.clone();
            async move { gw.get_ok(ME).await.is_ok() }
        })
        .await; // warm-up: connections open
        let (host_n, host_rate) = run_for(secs, CONCURRENCY, move || {
            let gw = gw.clone();
            async move { gw.get_ok(ME).await.map(|r| r.status == 200).unwrap_or(false) }
        })
        .await;
        let token = tm.cached().unwrap().secret().expose_secret().to_string();
        let raw = reqwest::Client::new();
        let url = format!("{}{ME}", conn.gateway().base());
        let (raw_n, raw_rate) = run_for(secs, CONCURRENCY, move || {
            let raw = raw.clone();
            let url = url.clone();
            let token = token.clone();
            async move {
                match raw.get(&url).bearer_auth(&token).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        let m = conn.gateway().metrics();
        println!(
            "gateway, no quota, {CONCURRENCY} concurrent, {secs:.0} s each: host {host_rate:.0} calls/s ({host_n} calls, p50 {:.2} ms, p99 {:.2} ms), emulator ceiling (plain reqwest, fixed token) {raw_rate:.0} calls/s ({raw_n} calls): host at {:.0}% of the ceiling",
            m.latency_p50_ms,
            m.latency_p99_ms,
            100.0 * host_rate / raw_rate.max(1.0)
        );
        conn.shutdown().await.unwrap();
        emu.shutdown().await;

        // 3. A configured quota: fraction achieved, 429s.
        let q = env_u64("HOST_BENCH_QUOTA", 100) as u32;
        let qsecs = env_u64("HOST_BENCH_QUOTA_SECS", 10) as f64;
        let emu = Emulator::start(EmulatorConfig {
            quota: Some(Quota {
                requests: q,
                per: Duration::from_secs(1),
            }),
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        emu.write_ionapi(&file).unwrap();
        let limit = RateLimit::new(q, Duration::from_secs(1));
        let conn = Connection::open(CredentialSource::IonApiFile(file), settings(Some(limit))).unwrap();
        conn.tokens().access_token().await.unwrap();
        let gw = conn.gateway().clone();
        let (n, rate) = run_for(qsecs, 16, move || {
            let gw = gw.clone();
            async move { gw.get_ok(ME).await.is_ok() }
        })
        .await;
        let c = emu.counters();
        println!(
            "quota {q}/s for {qsecs:.0} s (client limiter: headroom {:.0}%, burst {}): {n} calls completed in the window ({rate:.1}/s over the run) = {:.1}% of the quota, {} x 429 served, {} retries",
            limit.headroom * 100.0,
            limit.burst,
            100.0 * n as f64 / (f64::from(q) * qsecs),
            c.rate_limited,
            conn.gateway().metrics().retries
        );
        conn.shutdown().await.unwrap();
        emu.shutdown().await;
    });
}
