//! Tokens shared through a vault entry by several connections, each with its own `Vault`
//! handle and lock file descriptor, as separate processes have (the token lock is an OS
//! lock per open file, so it serialises them exactly as it does processes). The test
//! with real processes is `tests/tests/token_sharing.rs`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ionport_core::connection::{Connection, CredentialSource};
use ionport_core::token::{TokenError, TokenSettings};
use ionport_core::vault::{KeySource, Vault};
use ionport_emulator::EmulatorConfig;
use secrecy::ExposeSecret;

use crate::common::{counters, emulator, fast_settings, ionapi};

const ME: &str = "ifsservice/usermgt/v2/users/me";

/// A connection to vault entry `emu` in `home` through a vault handle of its own.
fn open(home: &Path, token: TokenSettings) -> Connection {
    let mut settings = fast_settings();
    settings.token = token;
    Connection::open(
        CredentialSource::Vault {
            vault: Arc::new(Vault::open(home, KeySource::KeyFile)),
            name: "emu".into(),
        },
        settings,
    )
    .unwrap()
}

fn vault_with_entry(emu: &ionport_emulator::RunningEmulator, dir: &tempfile::TempDir) -> Vault {
    let vault = Vault::open(dir.path().join("home"), KeySource::KeyFile);
    vault.import_ionapi(ionapi(emu, dir), "emu", false).unwrap();
    vault
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_one_vault_entry_fetch_one_token_between_them() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let home = vault_with_entry(&emu, &dir)
        .path()
        .parent()
        .unwrap()
        .to_path_buf();
    let conns: Vec<Connection> = (0..10)
        .map(|_| open(&home, TokenSettings::default()))
        .collect();
    let mut tasks = Vec::new();
    for c in &conns {
        let tm = c.tokens().clone();
        tasks.push(tokio::spawn(async move {
            tm.access_token()
                .await
                .map(|t| t.secret().expose_secret().to_string())
        }));
    }
    let mut values = HashSet::new();
    for t in tasks {
        values.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(values.len(), 1, "every connection holds the same token");
    let c = counters(&emu).await;
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert_eq!(c.token_requests.refresh_token, 0, "{c:?}");
    let adopted: u64 = conns.iter().map(|c| c.tokens().metrics().adopted).sum();
    let grants: u64 = conns
        .iter()
        .map(|c| c.tokens().metrics().password_grants)
        .sum();
    assert_eq!((adopted, grants), (9, 1));
    for c in &conns {
        assert_eq!(c.gateway().get_ok(ME).await.unwrap().status, 200);
    }
    // Nothing in the vault file is readable without the key.
    let file = std::fs::read_to_string(home.join("vault.json")).unwrap();
    assert!(!file.contains(values.iter().next().unwrap().as_str()));
}

/// The case: three users of one credential and 2-second tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_sharing_short_lived_tokens_rotate_without_reuse() {
    let emu = emulator(EmulatorConfig {
        token_ttl: Duration::from_secs(2),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let home = vault_with_entry(&emu, &dir)
        .path()
        .parent()
        .unwrap()
        .to_path_buf();
    let conns: Vec<Arc<Connection>> = (0..3)
        .map(|_| Arc::new(open(&home, TokenSettings::default())))
        .collect();
    let stop = Instant::now() + Duration::from_millis(5500);
    let mut tasks = Vec::new();
    for conn in &conns {
        for _ in 0..2 {
            let gw = conn.gateway().clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u32;
                while Instant::now() < stop {
                    assert_eq!(gw.get_ok(ME).await.unwrap().status, 200);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n
            }));
        }
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await.unwrap();
    }
    assert!(calls > 30, "{calls}");
    let c = counters(&emu).await;
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert_eq!(c.refresh_token_reuse, 0, "{c:?}");
    assert_eq!(c.token_errors.get("invalid_grant"), None, "{c:?}");
    assert!(c.token_requests.refresh_token >= 2, "{c:?}");
    let refreshes: u64 = conns
        .iter()
        .map(|c| c.tokens().metrics().refresh_grants)
        .sum();
    assert_eq!(refreshes, c.token_requests.refresh_token);
    assert!(conns.iter().all(|c| c.tokens().metrics().fallbacks == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_shared_tokens_for_the_next_process() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_entry(&emu, &dir);
    let home = vault.path().parent().unwrap().to_path_buf();
    let first = open(&home, TokenSettings::default());
    assert_eq!(first.gateway().get_ok(ME).await.unwrap().status, 200);
    assert!(!first.shutdown().await.unwrap(), "no revocation");
    drop(first);
    let before = counters(&emu).await;
    assert_eq!(before.revocations, 0, "{before:?}");

    let next = open(&home, TokenSettings::default());
    assert_eq!(next.gateway().get_ok(ME).await.unwrap().status, 200);
    let after = counters(&emu).await;
    assert_eq!(after.token_requests, before.token_requests, "{after:?}");
    assert_eq!(next.tokens().metrics().adopted, 1);
    assert!(vault.tokens("emu").unwrap().refresh_token.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_gateway_refused_is_not_taken_from_the_vault_again() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_entry(&emu, &dir);
    let home = vault.path().parent().unwrap().to_path_buf();
    let a = open(&home, TokenSettings::default());
    assert_eq!(a.gateway().get_ok(ME).await.unwrap().status, 200);
    let revoked = a.tokens().cached().unwrap();
    let creds = &emu.config().credentials;
    let resp = reqwest::Client::new()
        .post(format!("{}/as/revoke_token.oauth2", emu.api_base()))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[
            ("token", revoked.secret().expose_secret()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    // B takes the stored (revoked) token, meets a 401, and renews rather than take it again.
    let b = open(&home, TokenSettings::default());
    assert_eq!(b.gateway().get_ok(ME).await.unwrap().status, 200);
    let renewed = b.tokens().cached().unwrap();
    assert_ne!(
        renewed.secret().expose_secret(),
        revoked.secret().expose_secret()
    );
    // A meets its 401 and takes B's new token from the vault: no request of its own.
    assert_eq!(a.gateway().get_ok(ME).await.unwrap().status, 200);
    assert_eq!(
        a.tokens().cached().unwrap().secret().expose_secret(),
        renewed.secret().expose_secret()
    );
    let c = counters(&emu).await;
    assert_eq!(c.unauthorized, 2, "{c:?}");
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert_eq!(c.token_requests.refresh_token, 1, "{c:?}");
    assert_eq!(c.refresh_token_reuse, 0, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_token_lock_is_waited_for_within_a_bound() {
    let emu = emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_entry(&emu, &dir);
    let home = vault.path().parent().unwrap().to_path_buf();
    let held = vault
        .try_lock_tokens("emu")
        .unwrap()
        .expect("the lock is free");
    assert!(
        vault.try_lock_tokens("emu").unwrap().is_none(),
        "a second holder is refused"
    );
    let waiter = open(
        &home,
        TokenSettings {
            lock_wait: Duration::from_millis(300),
            ..TokenSettings::default()
        },
    );
    let e = waiter.tokens().access_token().await.unwrap_err();
    assert!(matches!(e, TokenError::LockTimeout { .. }), "{e}");
    let m = e.to_string();
    let lock_path = vault.token_lock_path("emu");
    assert!(m.contains(&lock_path.display().to_string()), "{m}");
    assert!(m.contains("another process"), "{m}");
    assert_eq!(counters(&emu).await.token_requests.password, 0);

    drop(held);
    waiter.tokens().access_token().await.unwrap();
    assert_eq!(counters(&emu).await.token_requests.password, 1);
}
