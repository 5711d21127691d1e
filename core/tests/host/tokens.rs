//! Token lifecycle against the emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::credentials::Credentials;
use ionport_core::gateway::GatewayError;
use ionport_core::token::{MemoryRefreshStore, TokenError, TokenManager, TokenSettings};
use ionport_core::vault::{KeySource, Vault};
use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use secrecy::ExposeSecret;

use crate::common::{connect, counters, emulator, fast_settings, ionapi};

const ME: &str = "ifsservice/usermgt/v2/users/me";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_of_1000_concurrent_calls_makes_one_token_request() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let gw = conn.gateway().clone();
        tasks.push(tokio::spawn(async move { gw.get_ok(ME).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, 200);
    }
    let c = counters(&emu).await;
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert_eq!(c.token_requests.refresh_token, 0);
    assert_eq!(c.requests.users, 1000);
    assert_eq!(conn.gateway().metrics().calls, 1000);

    // The token manager alone: 1000 concurrent callers after an invalidation, one request.
    let tm = conn.tokens().clone();
    let current = tm.cached().unwrap();
    tm.invalidate(&current);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let tm = tm.clone();
        tasks.push(tokio::spawn(async move {
            tm.access_token().await.map(|t| t.generation())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), current.generation() + 1);
    }
    let c2 = counters(&emu).await;
    assert_eq!(
        c2.token_requests.password + c2.token_requests.refresh_token,
        2,
        "one more token request for 1000 callers: {c2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_rotate_refresh_tokens_without_reuse() {
    let emu = emulator(EmulatorConfig {
        token_ttl: Duration::from_secs(2),
        issue_refresh_tokens: true,
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Rotated refresh tokens go to the vault.
    let vault = Arc::new(Vault::open(dir.path().join("home"), KeySource::KeyFile));
    vault
        .import_ionapi(ionapi(&emu, &dir), "emu", false)
        .unwrap();
    let conn = Connection::open(
        CredentialSource::Vault {
            vault: Arc::clone(&vault),
            name: "emu".into(),
        },
        fast_settings(),
    )
    .unwrap();
    // Calls from 4 tasks for 5.5 s: the token expires every 2 s (renewed 0.5 s before).
    let stop = Instant::now() + Duration::from_millis(5500);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let gw = conn.gateway().clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while Instant::now() < stop {
                assert_eq!(gw.get_ok(ME).await.unwrap().status, 200);
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n
        }));
    }
    let mut calls = 0;
    let mut seen = std::collections::HashSet::new();
    while Instant::now() < stop {
        if let Some(rt) = vault.get("emu").unwrap().refresh_token {
            seen.insert(rt.expose_secret().to_string());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in tasks {
        calls += t.await.unwrap();
    }
    let c = counters(&emu).await;
    assert!(calls > 20, "{calls}");
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert!(c.token_requests.refresh_token >= 2, "{c:?}");
    assert_eq!(c.refresh_token_reuse, 0, "{c:?}");
    assert_eq!(c.token_errors.get("invalid_grant"), None, "{c:?}");
    assert!(
        seen.len() >= 2,
        "the vault followed the rotation: {} tokens seen",
        seen.len()
    );
    assert_eq!(conn.tokens().metrics().fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_revokes_and_the_revoked_token_is_not_used_again() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    assert!(conn.shutdown().await.unwrap());
    let before = counters(&emu).await;
    assert_eq!(before.revocations, 1, "{before:?}");
    let err = conn.gateway().get_ok(ME).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Token(TokenError::Closed { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("shut down"), "{err}");
    let after = counters(&emu).await;
    assert_eq!(
        after.requests.users, before.requests.users,
        "no request with a revoked token"
    );
    assert_eq!(after.unauthorized, 0);
    assert_eq!(after.token_requests, before.token_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_invalidates_the_token_and_retries_once() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = connect(&emu, &dir, fast_settings());
    assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    // Revoke the current access token behind the manager's back.
    let token = conn.tokens().cached().unwrap();
    let creds = &emu.config().credentials;
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/{}/as/revoke_token.oauth2",
            emu.base_url(),
            emu.tenant()
        ))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[
            ("token", token.secret().expose_secret()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    let c = counters(&emu).await;
    assert_eq!(c.unauthorized, 1, "{c:?}");
    assert_eq!(conn.tokens().metrics().invalidations, 1);
    assert_eq!(conn.gateway().metrics().unauthorized, 1);
    assert_ne!(
        conn.tokens().cached().unwrap().generation(),
        token.generation()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_refreshes_an_idle_refresh_token() {
    let emu = emulator(EmulatorConfig {
        refresh_token_idle: Duration::from_millis(1500),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = fast_settings();
    settings.token = TokenSettings {
        keepalive_after: Some(Duration::from_millis(400)),
        keepalive_check: Some(Duration::from_millis(100)),
        ..TokenSettings::default()
    };
    let conn = connect(&emu, &dir, settings);
    assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    // Idle for longer than the emulator keeps an unused refresh token alive.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Force the next call to use the refresh token.
    let t = conn.tokens().cached().unwrap();
    conn.tokens().invalidate(&t);
    assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    let c = counters(&emu).await;
    assert_eq!(c.token_requests.password, 1, "no fallback: {c:?}");
    assert!(
        c.token_requests.refresh_token >= 3,
        "keep-alive refreshes: {c:?}"
    );
    assert_eq!(c.refresh_token_reuse, 0);
    assert_eq!(conn.tokens().metrics().fallbacks, 0);
}

fn manager(
    emu: &ionport_emulator::RunningEmulator,
    edit: impl FnOnce(&mut serde_json::Value),
) -> TokenManager {
    let mut v = emu.ionapi_json();
    edit(&mut v);
    let creds = Credentials::from_ionapi_str(&v.to_string(), "test.ionapi").unwrap();
    TokenManager::new(
        Arc::new(creds),
        TokenSettings::default(),
        Arc::new(MemoryRefreshStore::default()),
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_say_what_to_fix() {
    let emu = emulator(EmulatorConfig {
        credentials: EmulatorCredentials::demo("IONPORT_DEMO"),
        ..EmulatorConfig::default()
    })
    .await;
    let e = manager(&emu, |v| v["cs"] = "wrong-secret".into())
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::InvalidClient { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("client id or client secret") && m.contains("test.ionapi"),
        "{m}"
    );

    let e = manager(&emu, |v| v["ci"] = "IONPORT_DEMO~nobody".into())
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::InvalidClient { .. }), "{e}");

    let e = manager(&emu, |v| v["sask"] = "wrong-sask".into())
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::InvalidServiceAccount { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("service-account keys") && m.contains("client id and secret were accepted"),
        "{m}"
    );

    let e = manager(&emu, |v| {
        let o = v.as_object_mut().unwrap();
        o.remove("saak");
        o.remove("sask");
    })
    .access_token()
    .await
    .unwrap_err();
    assert!(matches!(e, TokenError::NoServiceAccount { .. }), "{e}");

    // A grant disabled for the app says so, and what to do.
    let no_password = emulator(EmulatorConfig {
        credentials: EmulatorCredentials::demo("IONPORT_DEMO"),
        password_grant: false,
        ..EmulatorConfig::default()
    })
    .await;
    let e = manager(&no_password, |_| {})
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::GrantDisabled { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("password") || m.contains("grant"), "{m}");

    // Basic client authentication works too.
    let tm = manager(&emu, |v| v["client_auth"] = "basic".into());
    assert!(tm.access_token().await.is_ok());

    // Nothing listens there.
    let e = manager(&emu, |v| {
        v["pu"] = "http://127.0.0.1:9/IONPORT_DEMO/as/".into()
    })
    .access_token()
    .await
    .unwrap_err();
    assert!(matches!(e, TokenError::Transport { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_falls_back_to_the_password_grant() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open(dir.path().join("home"), KeySource::KeyFile));
    vault
        .import_ionapi(ionapi(&emu, &dir), "emu", false)
        .unwrap();
    vault
        .set_refresh_token(
            "emu",
            Some(&"a-refresh-token-the-server-never-issued".into()),
        )
        .unwrap();
    let conn = Connection::open(
        CredentialSource::Vault {
            vault: Arc::clone(&vault),
            name: "emu".into(),
        },
        ConnectionSettings { ..fast_settings() },
    )
    .unwrap();
    assert_eq!(conn.gateway().get_ok(ME).await.unwrap().status, 200);
    let c = counters(&emu).await;
    assert_eq!(c.token_requests.refresh_token, 1);
    assert_eq!(c.token_requests.password, 1);
    assert_eq!(c.token_errors.get("invalid_grant"), Some(&1));
    assert_eq!(conn.tokens().metrics().fallbacks, 1);
    let stored = vault.get("emu").unwrap().refresh_token.unwrap();
    assert_ne!(
        stored.expose_secret(),
        "a-refresh-token-the-server-never-issued"
    );
    // The vault's tokens are shared with other processes: shutdown leaves them there.
    assert!(!conn.shutdown().await.unwrap());
    assert_eq!(counters(&emu).await.revocations, 0);
    let kept = vault.get("emu").unwrap().refresh_token.unwrap();
    assert_eq!(kept.expose_secret(), stored.expose_secret());
}
