//! What connections to one tenant share: the per-minute quota (one limiter per tenant and
//! quota in a process) and the daily budget (counted per tenant and UTC day, across
//! processes through the usage directory).

use std::time::{Duration, Instant};

use ionport_core::gateway::{DailyBudget, GatewayError, RateLimit};
use ionport_emulator::{EmulatorConfig, Quota};

use crate::common::{connect, counters, emulator, fast_settings};

const ME: &str = "ifsservice/usermgt/v2/users/me";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_to_one_tenant_share_its_quota_without_a_429() {
    const N: u32 = 40;
    // The emulator counts the whole tenant, as a global gateway policy does: two
    // connections each keeping to N per second on their own would send about 2N.
    let emu = emulator(EmulatorConfig {
        quota: Some(Quota {
            requests: N,
            per: Duration::from_secs(1),
        }),
        quota_per_tenant: true,
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.gateway.rate_limit = Some(RateLimit::new(N, Duration::from_secs(1)));
    let a = connect(&emu, &dir, settings.clone());
    let b = connect(&emu, &dir, settings);
    a.tokens().access_token().await.unwrap();
    b.tokens().access_token().await.unwrap();
    let stop = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for conn in [&a, &b] {
        for _ in 0..8 {
            let gw = conn.gateway().clone();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < stop {
                    let r = gw.get_ok(ME).await.unwrap();
                    assert_eq!(r.status, 200);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = counters(&emu).await;
    assert_eq!(c.rate_limited, 0, "no 429 for the tenant: {c:?}");
    let (ma, mb) = (a.gateway().metrics(), b.gateway().metrics());
    assert!(
        ma.requests > 0 && mb.requests > 0,
        "both sent: {ma:?} {mb:?}"
    );
    assert_eq!((ma.retries, mb.retries), (0, 0));
    eprintln!(
        "two connections, one tenant quota of {N}/s: {} + {} requests in 4 s",
        ma.requests, mb.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_budget_refuses_before_sending() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.gateway.daily_budget = Some(DailyBudget::new(5));
    let conn = connect(&emu, &dir, settings);
    for _ in 0..5 {
        conn.gateway().get_ok(ME).await.unwrap();
    }
    let sent = counters(&emu).await.requests.users;
    let e = conn.gateway().get_ok(ME).await.unwrap_err();
    let GatewayError::Budget(spent) = &e else {
        panic!("expected the budget error, got {e:?}");
    };
    assert_eq!((spent.used, spent.limit), (5, 5));
    assert!(
        e.to_string()
            .contains("daily budget of API requests of tenant")
            && e.to_string().contains("until the budget resets"),
        "{e}"
    );
    assert_eq!(
        counters(&emu).await.requests.users,
        sent,
        "nothing was sent"
    );
    let use_now = conn.gateway().budget();
    assert_eq!((use_now.used, use_now.left), (5, Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_count_is_added_up_across_processes_in_the_usage_directory() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage");
    let mut settings = fast_settings();
    settings.gateway.usage_dir = Some(usage.clone());
    settings.gateway.daily_budget = Some(DailyBudget::new(5));
    // A first "process": three requests, written to the usage file when it closes.
    {
        let first = connect(&emu, &dir, settings.clone());
        for _ in 0..3 {
            first.gateway().get_ok(ME).await.unwrap();
        }
        first.shutdown().await.unwrap();
    }
    let files: Vec<_> = std::fs::read_dir(&usage)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(usage.join(&files[0])).unwrap()).unwrap();
    assert_eq!(saved["requests"], 3, "{saved}");
    // A second one starts from that count: two more, then the budget is spent.
    let second = connect(&emu, &dir, settings);
    assert_eq!(second.gateway().budget().used, 3);
    for _ in 0..2 {
        second.gateway().get_ok(ME).await.unwrap();
    }
    let e = second.gateway().get_ok(ME).await.unwrap_err();
    assert!(matches!(e, GatewayError::Budget(_)), "{e:?}");
}
