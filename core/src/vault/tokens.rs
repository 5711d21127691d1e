//! The tokens a vault entry shares with every process using it, and the entry's token
//! lock.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};

use super::{LOCKS_DIR, StoredEntry, Vault, VaultError, check_name, io_err, now};
use crate::token::{StoredAccessToken, StoredTokens};

impl Vault {
    /// Stores (or, with `None`, forgets) the refresh token of entry `name`; the stored
    /// access token stays.
    pub fn set_refresh_token(
        &self,
        name: &str,
        token: Option<&SecretString>,
    ) -> Result<(), VaultError> {
        self.update_entry(name, |e| {
            e.refresh_token = token.map(|t| t.expose_secret().to_string());
            e.refresh_used_ms = token.map(|_| to_ms(SystemTime::now()));
        })
    }

    /// The tokens of entry `name` (access and refresh token), shared by every process
    /// that uses the entry.
    pub fn tokens(&self, name: &str) -> Result<StoredTokens, VaultError> {
        let plain = self.load()?;
        let e = plain
            .entries
            .get(name)
            .ok_or_else(|| self.not_found(name))?;
        let access_token = match (&e.access_token, e.access_issued_ms, e.access_expires_ms) {
            (Some(v), Some(issued), Some(expires)) => Some(StoredAccessToken {
                value: SecretString::from(v.as_str()),
                issued: from_ms(issued),
                expires: from_ms(expires),
            }),
            _ => None,
        };
        Ok(StoredTokens {
            refresh_token: e.refresh_token.as_deref().map(SecretString::from),
            refresh_used: e.refresh_used_ms.map(from_ms),
            access_token,
        })
    }

    /// Replaces the tokens of entry `name`.
    pub fn set_tokens(&self, name: &str, tokens: &StoredTokens) -> Result<(), VaultError> {
        self.update_entry(name, |e| {
            e.refresh_token = tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_string());
            e.refresh_used_ms = tokens.refresh_used.map(to_ms);
            let a = tokens.access_token.as_ref();
            e.access_token = a.map(|a| a.value.expose_secret().to_string());
            e.access_issued_ms = a.map(|a| to_ms(a.issued));
            e.access_expires_ms = a.map(|a| to_ms(a.expires));
        })
    }

    /// The lock file that serialises token requests for entry `name` across processes.
    pub fn token_lock_path(&self, name: &str) -> PathBuf {
        self.home.join(LOCKS_DIR).join(format!("{name}.token.lock"))
    }

    /// Takes the token lock of entry `name` if it is free (`Ok(None)` while another
    /// process or manager holds it). It is an OS file lock: the OS releases it when the
    /// holder exits, even when killed; the file itself may stay and means nothing.
    pub fn try_lock_tokens(&self, name: &str) -> Result<Option<TokenLock>, VaultError> {
        check_name(name)?;
        self.ensure_home()?;
        let path = self.token_lock_path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir, "creating the directory"))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "opening the lock file"))?;
        let mut lock = fd_lock::RwLock::new(file);
        let taken = match lock.try_write() {
            Ok(guard) => {
                // The flock belongs to the open file, not to the guard: forgetting the
                // guard keeps the lock until the file is closed, which lets the lock be
                // owned (and moved across awaits) instead of borrowed.
                std::mem::forget(guard);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => return Err(io_err(&path, "locking the lock file")(e)),
        };
        Ok(taken.then(|| TokenLock {
            _file: lock.into_inner(),
        }))
    }

    fn not_found(&self, name: &str) -> VaultError {
        VaultError::NotFound {
            path: self.path.clone(),
            name: name.to_string(),
        }
    }

    fn update_entry(&self, name: &str, f: impl FnOnce(&mut StoredEntry)) -> Result<(), VaultError> {
        self.update(|plain| {
            let e = plain
                .entries
                .get_mut(name)
                .ok_or_else(|| self.not_found(name))?;
            f(e);
            e.updated = now();
            Ok(())
        })
    }
}

/// The held token lock of a vault entry; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct TokenLock {
    _file: File,
}

pub(super) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
