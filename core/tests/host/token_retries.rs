//! Token requests under transport faults injected by the emulator: a reset or a cut
//! answer is retried (bounded, with backoff); a refresh grant that may have reached the
//! server is never sent again (that would be a refresh-token reuse).

use std::sync::Arc;
use std::time::Duration;

use ionport_core::credentials::Credentials;
use ionport_core::token::{MemoryRefreshStore, TokenError, TokenManager, TokenSettings};
use ionport_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::json;

use crate::common::{add_faults, counters, emulator};

fn settings() -> TokenSettings {
    TokenSettings {
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        ..TokenSettings::default()
    }
}

fn manager(emu: &RunningEmulator) -> TokenManager {
    let creds = Credentials::from_ionapi_str(&emu.ionapi_json().to_string(), "emu.ionapi").unwrap();
    TokenManager::new(
        Arc::new(creds),
        settings(),
        Arc::new(MemoryRefreshStore::default()),
        None,
    )
}

fn auth_fault(kind: &str, count: u64) -> serde_json::Value {
    json!({"kind": kind, "count": count, "api": "auth", "path_contains": "token.oauth2"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_on_the_password_grant_is_retried() {
    let emu = emulator(EmulatorConfig::default()).await;
    add_faults(&emu, auth_fault("reset", 1)).await;
    let tm = manager(&emu);
    tm.access_token().await.unwrap();
    let c = counters(&emu).await;
    assert_eq!(c.faults_injected, 1, "{c:?}");
    // The reset came before the handler; the retry is the one grant it saw.
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert_eq!(tm.metrics().retries, 1);
    assert_eq!(tm.metrics().password_grants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_answer_to_the_password_grant_is_retried() {
    let emu = emulator(EmulatorConfig::default()).await;
    add_faults(&emu, auth_fault("truncated", 1)).await;
    let tm = manager(&emu);
    let token = tm.access_token().await.unwrap();
    let c = counters(&emu).await;
    assert_eq!(c.faults_injected, 1, "{c:?}");
    assert_eq!(
        c.token_requests.password, 2,
        "the cut one and the retry: {c:?}"
    );
    assert_eq!(tm.metrics().retries, 1);
    // The token handed out is the complete second answer's, and the gateway takes it.
    let resp = reqwest::Client::new()
        .get(format!("{}/ifsservice/usermgt/v2/users/me", emu.api_base()))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(token.secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_the_last_answer_is_named() {
    let emu = emulator(EmulatorConfig::default()).await;
    add_faults(&emu, auth_fault("503", 100)).await;
    let tm = manager(&emu);
    let e = tm.access_token().await.unwrap_err();
    assert!(matches!(e, TokenError::Endpoint { status: 503, .. }), "{e}");
    let c = counters(&emu).await;
    assert_eq!(c.faults_injected, 4, "one try and 3 retries: {c:?}");
    assert_eq!(tm.metrics().retries, 3);

    // Resets that never end are a transport error after the same bound.
    let emu = emulator(EmulatorConfig::default()).await;
    add_faults(&emu, auth_fault("reset", 100)).await;
    let tm = manager(&emu);
    let e = tm.access_token().await.unwrap_err();
    assert!(matches!(e, TokenError::Transport { .. }), "{e}");
    assert_eq!(counters(&emu).await.faults_injected, 4);
}

/// A refresh grant whose answer was cut: the server rotated the refresh token, so the
/// old one is dead. Sending it again would be a reuse; the manager falls back to the
/// password grant instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_grant_without_a_complete_answer_is_not_sent_again() {
    for kind in ["truncated", "reset"] {
        let emu = emulator(EmulatorConfig::default()).await;
        let tm = manager(&emu);
        let first = tm.access_token().await.unwrap();
        tm.invalidate(&first);
        add_faults(&emu, auth_fault(kind, 1)).await;
        let second = tm.access_token().await.unwrap();
        assert_ne!(second.generation(), first.generation());
        let c = counters(&emu).await;
        assert_eq!(c.faults_injected, 1, "{kind}: {c:?}");
        assert_eq!(c.refresh_token_reuse, 0, "{kind}: {c:?}");
        assert_eq!(c.token_errors.get("invalid_grant"), None, "{kind}: {c:?}");
        assert_eq!(c.token_requests.password, 2, "{kind}: the fallback: {c:?}");
        let m = tm.metrics();
        assert_eq!(
            (m.refresh_grants, m.fallbacks, m.retries),
            (1, 1, 0),
            "{kind}"
        );
        // The new family's refresh token works: the next renewal is a refresh.
        tm.invalidate(&second);
        tm.access_token().await.unwrap();
        let c = counters(&emu).await;
        assert_eq!(
            c.token_requests.refresh_token,
            u64::from(kind == "truncated") + 1
        );
        assert_eq!(c.refresh_token_reuse, 0, "{kind}: {c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_on_a_refresh_grant_is_retried_with_the_same_refresh_token() {
    let emu = emulator(EmulatorConfig::default()).await;
    let tm = manager(&emu);
    let first = tm.access_token().await.unwrap();
    tm.invalidate(&first);
    add_faults(&emu, auth_fault("503", 2)).await;
    tm.access_token().await.unwrap();
    let c = counters(&emu).await;
    assert_eq!(c.faults_injected, 2, "{c:?}");
    assert_eq!(c.token_requests.refresh_token, 1, "{c:?}");
    assert_eq!(c.token_requests.password, 1, "no fallback: {c:?}");
    assert_eq!(tm.metrics().retries, 2);
    assert_eq!(tm.metrics().fallbacks, 0);
}
