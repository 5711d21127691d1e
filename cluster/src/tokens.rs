//! One token per credential across the cluster: the access token and the rotated refresh
//! token of each credential kept in the coordinator's `tokens` table, sealed under the
//! vault key (`Vault::seal`: every worker needs the same key — the same `vault.key`, or
//! `IONPORT_VAULT_KEY`), and token requests made single-flight across every machine by a
//! session-level advisory lock on the coordinator.
//!
//! This is only a [`RefreshTokenStore`]: core's `TokenManager` keeps the whole lifecycle
//! (adopt a stored token, lock, read again under the lock, refresh or first grant, store
//! the rotated refresh token before the lock is released). `Connection::open` picks this
//! store when [`TokenSettings::shared_store`](ionport_core::token::TokenSettings) is set.
//!
//! Sessions are short: one is opened for a read or a write and closed after it, unless it
//! holds the lock; the lock's session is closed when the lock is released. A process that
//! dies holding the lock loses its session, and Postgres releases the lock with it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ionport_core::token::{
    RefreshTokenStore, StoreError, StoreLock, StoredAccessToken, StoredTokens, TokenStoreProvider,
};
use ionport_core::vault::{Vault, VaultError};
use postgres::{Client, NoTls};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The coordinator as the cluster's token store provider.
#[derive(Clone)]
pub struct CoordinatorTokens {
    url: String,
    schema: String,
}

impl std::fmt::Debug for CoordinatorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("CoordinatorTokens")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl CoordinatorTokens {
    /// The tokens table of the coordinator at `url`, schema `schema` (created by
    /// [`crate::Coordinator::connect`]).
    pub fn new(url: &str, schema: &str) -> Self {
        Self {
            url: url.to_string(),
            schema: schema.to_string(),
        }
    }
}

impl TokenStoreProvider for CoordinatorTokens {
    fn store(&self, key: &str, vault: Arc<Vault>) -> Arc<dyn RefreshTokenStore> {
        Arc::new(CoordinatorTokenStore {
            url: self.url.clone(),
            schema: self.schema.clone(),
            key: key.to_string(),
            vault,
            session: Arc::new(Mutex::new(Session::default())),
        })
    }
}

#[derive(Default)]
struct Session {
    client: Option<Client>,
    locked: bool,
}

/// The tokens of one credential in the coordinator.
struct CoordinatorTokenStore {
    url: String,
    schema: String,
    key: String,
    vault: Arc<Vault>,
    session: Arc<Mutex<Session>>,
}

impl std::fmt::Debug for CoordinatorTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorTokenStore")
            .field("schema", &self.schema)
            .field("credential", &self.key)
            .finish_non_exhaustive()
    }
}

/// The sealed JSON: wall-clock times in ms, as the vault keeps them.
#[derive(Serialize, Deserialize, Default)]
struct Sealed {
    refresh_token: Option<String>,
    refresh_used_ms: Option<u64>,
    access_token: Option<String>,
    access_issued_ms: Option<u64>,
    access_expires_ms: Option<u64>,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn db_err(what: &str, e: &dyn std::fmt::Display) -> StoreError {
    // A coordinator's message may quote the URL (and its password): scrubbed.
    StoreError::Shared(format!(
        "{what}: {}",
        ionport_core::scrub::Scrubber::process().scrub(&e.to_string())
    ))
}

fn guard(m: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CoordinatorTokenStore {
    fn purpose(&self) -> String {
        format!("cluster-tokens:{}", self.key)
    }

    /// The advisory lock's key: the schema and the credential.
    fn lock_key(&self) -> String {
        format!("{}/{}", self.schema, self.key)
    }

    /// Runs `f` on the session (opened when there is none); closes it afterwards unless
    /// it holds the lock. A failed statement closes it too: the next use reconnects.
    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Client, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut s = guard(&self.session);
        if s.client.is_none() {
            let mut config: postgres::Config = self
                .url
                .parse()
                .map_err(|e| db_err("coordinator URL", &e))?;
            config
                .connect_timeout(Duration::from_secs(10))
                .tcp_user_timeout(Duration::from_secs(10));
            s.client = Some(
                config
                    .connect(NoTls)
                    .map_err(|e| db_err("connecting", &e))?,
            );
        }
        let quoted = format!("\"{}\"", self.schema);
        let r = match s.client.as_mut() {
            Some(c) => f(c, &quoted).map_err(|e| db_err(what, &e)),
            None => Err(db_err(what, &"no session")),
        };
        if r.is_err() {
            // A lost session has lost its lock too.
            s.client = None;
            s.locked = false;
        } else if !s.locked {
            s.client = None;
        }
        r
    }
}

impl RefreshTokenStore for CoordinatorTokenStore {
    fn load(&self) -> Result<StoredTokens, StoreError> {
        let key = self.key.clone();
        let sealed: Option<String> = self.with("reading the shared tokens", |c, s| {
            Ok(c.query_opt(
                &format!("SELECT sealed FROM {s}.tokens WHERE credential = $1"),
                &[&key],
            )?
            .map(|r| r.get(0)))
        })?;
        let Some(sealed) = sealed else {
            return Ok(StoredTokens::default());
        };
        let plain = self.vault.unseal(&self.purpose(), &sealed).map_err(|e| match e {
            VaultError::Corrupt { .. } | VaultError::KeyMissing { .. } => StoreError::Shared(format!(
                "the tokens of credential {} in the coordinator's schema {} do not open with this machine's vault key ({}): every worker needs the same vault key (the same vault.key, or IONPORT_VAULT_KEY)",
                self.key,
                self.schema,
                self.vault.key_file().display()
            )),
            other => StoreError::Vault(other),
        })?;
        let v: Sealed = serde_json::from_slice(&plain).map_err(|e| {
            StoreError::Shared(format!(
                "the tokens of credential {} in the coordinator are not readable: {e}",
                self.key
            ))
        })?;
        let access_token = match (v.access_token, v.access_issued_ms, v.access_expires_ms) {
            (Some(t), Some(i), Some(e)) => Some(StoredAccessToken {
                value: SecretString::from(t),
                issued: at(i),
                expires: at(e),
            }),
            _ => None,
        };
        Ok(StoredTokens {
            refresh_token: v.refresh_token.map(SecretString::from),
            refresh_used: v.refresh_used_ms.map(at),
            access_token,
        })
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let a = tokens.access_token.as_ref();
        let plain = Zeroizing::new(
            serde_json::to_vec(&Sealed {
                refresh_token: tokens
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_string()),
                refresh_used_ms: tokens.refresh_used.map(ms),
                access_token: a.map(|a| a.value.expose_secret().to_string()),
                access_issued_ms: a.map(|a| ms(a.issued)),
                access_expires_ms: a.map(|a| ms(a.expires)),
            })
            .map_err(|e| db_err("encoding the tokens", &e))?,
        );
        let sealed = self.vault.seal(&self.purpose(), &plain)?;
        let key = self.key.clone();
        self.with("storing the shared tokens", |c, s| {
            c.execute(
                &format!(
                    "INSERT INTO {s}.tokens (credential, sealed) VALUES ($1, $2)
                     ON CONFLICT (credential) DO UPDATE SET sealed = $2, updated_at = now()"
                ),
                &[&key, &sealed],
            )
            .map(drop)
        })
    }

    fn lock_path(&self) -> Option<PathBuf> {
        Some(PathBuf::from(format!(
            "coordinator {}.tokens, credential {}",
            self.schema, self.key
        )))
    }

    fn try_lock(&self) -> Result<Option<StoreLock>, StoreError> {
        self.try_lock_held()
    }
}

impl CoordinatorTokenStore {
    /// Takes the lock on a session kept open while it is held.
    fn try_lock_held(&self) -> Result<Option<StoreLock>, StoreError> {
        let key = self.lock_key();
        {
            // Mark first, so that `with` keeps the session open after the statement.
            guard(&self.session).locked = true;
        }
        let taken = self.with("taking the token lock", |c, _| {
            Ok(c.query_one(
                "SELECT pg_try_advisory_lock(hashtext('ionport-tokens'), hashtext($1))",
                &[&key],
            )?
            .get::<_, bool>(0))
        });
        let mut s = guard(&self.session);
        match taken {
            Ok(true) => Ok(Some(Box::new(Held {
                session: Arc::clone(&self.session),
                key,
            }))),
            Ok(false) => {
                s.locked = false;
                s.client = None;
                Ok(None)
            }
            Err(e) => {
                s.locked = false;
                s.client = None;
                Err(e)
            }
        }
    }
}

/// The held token lock; dropping it unlocks and closes the session.
struct Held {
    session: Arc<Mutex<Session>>,
    key: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut s = guard(&self.session);
        s.locked = false;
        if let Some(mut c) = s.client.take() {
            // The guard is dropped on an async task, where the blocking client must not
            // run (nor be dropped): unlock and close on a thread of its own. Closing the
            // session would release the lock as well; unlocking first says so at once.
            let key = std::mem::take(&mut self.key);
            std::thread::spawn(move || {
                let _ = c.execute(
                    "SELECT pg_advisory_unlock(hashtext('ionport-tokens'), hashtext($1))",
                    &[&key],
                );
            });
        }
    }
}
