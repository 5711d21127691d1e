//! Gateway HTTP against the emulator: quota, faults, retries, refusals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ionport_core::gateway::{GatewayError, GatewayRequest, GatewaySettings, RateLimit};
use ionport_emulator::{EmulatorConfig, Quota};
use serde_json::json;

use crate::common::{add_faults, clear_faults, connect, counters, emulator, fast_settings};

const ME: &str = "ifsservice/usermgt/v2/users/me";

/// The quota test's window. The issue asks for 10 s; 4 s keeps the suite short and still
/// spans four quota windows.
const WINDOW: Duration = Duration::from_secs(10);
const N: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_speed_under_a_quota_gets_no_429_and_at_least_90_percent() {
    let emu = emulator(EmulatorConfig {
        quota: Some(Quota {
            requests: N,
            per: Duration::from_secs(1),
        }),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.gateway.rate_limit = Some(RateLimit::new(N, Duration::from_secs(1)));
    let conn = connect(&emu, &dir, settings);
    // Get the token first, so that the window measures calls only.
    conn.tokens().access_token().await.unwrap();
    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + WINDOW;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let gw = conn.gateway().clone();
        let ok = Arc::clone(&ok);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let r = gw.get_ok(ME).await.unwrap();
                assert_eq!(r.status, 200);
                if Instant::now() <= stop {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = counters(&emu).await;
    assert_eq!(c.rate_limited, 0, "no 429: {c:?}");
    assert_eq!(conn.gateway().metrics().retries, 0);
    let achieved = ok.load(Ordering::Relaxed) as f64 / (f64::from(N) * WINDOW.as_secs_f64());
    eprintln!(
        "quota {N}/s over {WINDOW:?}: {} calls, {:.1}% of the quota, 0 x 429",
        ok.load(Ordering::Relaxed),
        achieved * 100.0
    );
    assert!(achieved >= 0.90, "achieved {:.3} of the quota", achieved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_retried_and_the_calls_succeed() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    // A 504 is retried once (`timeout_retries`), the others within `max_retries`.
    for (kind, count) in [
        ("503", 2),
        ("504", 1),
        ("502", 2),
        ("reset", 2),
        ("truncated", 2),
    ] {
        add_faults(&emu, json!({"kind": kind, "count": count, "api": "users"})).await;
        let before = conn.gateway().metrics();
        let r = conn.gateway().get_ok(ME).await;
        let r = r.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(r.status, 200, "{kind}");
        let after = conn.gateway().metrics();
        assert_eq!(after.retries - before.retries, count, "{kind}: retries");
        clear_faults(&emu).await;
    }
    assert_eq!(counters(&emu).await.faults_injected, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_honoured() {
    // The emulator answers 429 with Retry-After when its quota is spent; the client's own
    // limiter is off here, so it meets the 429s.
    let emu = emulator(EmulatorConfig {
        quota: Some(Quota {
            requests: 3,
            per: Duration::from_secs(1),
        }),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    for _ in 0..8 {
        assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    }
    let c = counters(&emu).await;
    let m = conn.gateway().metrics();
    assert!(c.rate_limited >= 1, "{c:?}");
    assert_eq!(m.rate_limited, c.rate_limited);
    // Retry-After (1 s) is honoured: one 429 per spent window, not a burst of them that
    // exhausts the retry budget.
    assert!(m.rate_limited <= 3, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failures_end_in_a_clear_error_after_the_bound() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.gateway = GatewaySettings {
        max_retries: 3,
        ..settings.gateway
    };
    let conn = connect(&emu, &dir, settings.clone());
    add_faults(&emu, json!({"kind": "503", "api": "users"})).await;
    let e = conn.gateway().get_ok(ME).await.unwrap_err();
    match &e {
        GatewayError::Exhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 4);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("gave up after 4 attempt(s)"), "{e}");
    clear_faults(&emu).await;

    // Resets all the time: the same, with the transport error named.
    add_faults(&emu, json!({"kind": "reset", "api": "users"})).await;
    let e = conn.gateway().get_ok(ME).await.unwrap_err();
    assert!(
        matches!(e, GatewayError::Exhausted { attempts: 4, .. }),
        "{e}"
    );
    clear_faults(&emu).await;

    // A total-time bound ends a slow failure too: 4 attempts would need more than 150 ms.
    let mut bounded = settings.clone();
    bounded.gateway.retry_total = Duration::from_millis(150);
    bounded.gateway.retry_min = Duration::from_millis(100);
    bounded.gateway.max_retries = 10;
    let conn2 = connect(&emu, &dir, bounded);
    add_faults(&emu, json!({"kind": "502", "api": "users"})).await;
    let e = conn2.gateway().get_ok(ME).await.unwrap_err();
    match &e {
        GatewayError::Exhausted { attempts, .. } => assert!(*attempts < 5, "{e}"),
        other => panic!("{other}"),
    }
    clear_faults(&emu).await;

    // A per-request timeout is a timeout like a 504: a slow backend, 300 ms timeout, one
    // retry (`timeout_retries`), though `max_retries` would allow two.
    let mut timed = settings;
    timed.gateway.max_retries = 2;
    let conn3 = connect(&emu, &dir, timed);
    add_faults(
        &emu,
        json!({"kind": "slow", "api": "users", "delay_ms": 5000}),
    )
    .await;
    let e = conn3
        .gateway()
        .send(GatewayRequest {
            timeout: Some(Duration::from_millis(300)),
            ..GatewayRequest::get(ME)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, GatewayError::Timeout { attempts: 2, .. }),
        "{e}"
    );
    clear_faults(&emu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_keeps_timing_out_ends_in_timeout_after_the_timeout_bound() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    add_faults(&emu, json!({"kind": "504", "api": "users"})).await;
    let e = conn.gateway().get_ok(ME).await.unwrap_err();
    match &e {
        GatewayError::Timeout { attempts, last, .. } => {
            assert_eq!(*attempts, 2, "the first and one retry: {e}");
            assert!(last.contains("504"), "{last}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(counters(&emu).await.faults_injected, 2);

    // Transient statuses in between do not reset the count of timeouts, nor are they
    // limited by it: 504, 503, 503, 504 is a timeout after four attempts.
    clear_faults(&emu).await;
    add_faults(
        &emu,
        json!([
            {"kind": "504", "count": 1, "api": "users"},
            {"kind": "503", "count": 2, "api": "users"},
            {"kind": "504", "api": "users"},
        ]),
    )
    .await;
    let e = conn.gateway().get_ok(ME).await.unwrap_err();
    assert!(
        matches!(e, GatewayError::Timeout { attempts: 4, .. }),
        "{e}"
    );

    // No timeout retries: the first 504 ends the call.
    clear_faults(&emu).await;
    let mut none = fast_settings();
    none.gateway.timeout_retries = 0;
    let conn0 = connect(&emu, &dir, none);
    add_faults(&emu, json!({"kind": "504", "api": "users"})).await;
    let e = conn0.gateway().get_ok(ME).await.unwrap_err();
    assert!(
        matches!(e, GatewayError::Timeout { attempts: 1, .. }),
        "{e}"
    );

    // A write's 504 is its answer: not retried, not a timeout error.
    let r = conn
        .gateway()
        .send(GatewayRequest {
            method: "POST".into(),
            body: b"{}".to_vec(),
            ..GatewayRequest::get(ME)
        })
        .await
        .unwrap();
    assert_eq!(r.status, 504);
    clear_faults(&emu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_not_retried() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    add_faults(&emu, json!({"kind": "503", "count": 5, "api": "users"})).await;
    let r = conn
        .gateway()
        .send(GatewayRequest {
            method: "POST".into(),
            body: b"{}".to_vec(),
            ..GatewayRequest::get(ME)
        })
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(counters(&emu).await.faults_injected, 1);
    assert_eq!(conn.gateway().metrics().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_api_base_and_authorization_headers_are_refused() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    let gw = conn.gateway();
    let bad_paths = [
        "https://evil.example/steal",
        "http://127.0.0.1:1/x",
        "//evil.example/x",
        "../OTHER_TENANT/ifsservice/usermgt/v2/users/me",
        "M3/../../x",
        "%2e%2e/x",
        "M3/%2E%2E/%2e%2e/x",
        "javascript:alert(1)",
        "users/me?x=1",
        "a\\..\\b",
    ];
    for p in bad_paths {
        let e = gw.get_ok(p).await.unwrap_err();
        assert!(matches!(e, GatewayError::Refused(_)), "{p}: {e}");
    }
    for h in ["Authorization", "authorization", "Proxy-Authorization"] {
        let e = gw
            .send(GatewayRequest {
                headers: vec![(h.into(), "Bearer stolen".into())],
                ..GatewayRequest::get(ME)
            })
            .await
            .unwrap_err();
        assert!(matches!(e, GatewayError::Refused(_)), "{h}: {e}");
    }
    let c = counters(&emu).await;
    assert_eq!(c.token_requests.password, 0, "nothing was sent: {c:?}");
    assert_eq!(c.requests.users + c.requests.other, 0);
    // A leading slash is relative to the API base; matrix parameters pass.
    assert_eq!(gw.get_ok(&format!("/{ME}")).await.unwrap().status, 200);
    let url = gw
        .resolve(
            "M3/m3api-rest/execute/CRS610MI/LstByNumber;maxrecs=5",
            &[("CONO".into(), "100".into())],
        )
        .unwrap();
    assert!(url.as_str().starts_with(gw.base().as_str()), "{url}");
    assert!(
        url.as_str().ends_with("LstByNumber;maxrecs=5?CONO=100"),
        "{url}"
    );
}
