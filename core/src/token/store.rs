//! Where a token manager keeps a credential's tokens, and whether other processes share
//! them.
//!
//! A private store ([`MemoryRefreshStore`]) lives and dies with its manager. A shared store
//! ([`VaultRefreshStore`]) is read by every process that uses the same vault entry: the
//! access token and the rotated refresh token are written there, and a lock taken through
//! the store makes token requests single-flight across those processes.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use secrecy::SecretString;

use crate::credentials::MASK;
use crate::vault::{Vault, VaultError};

/// A credential's tokens as a store keeps them. Times are wall-clock, so that another
/// process can tell how long a token stays good.
#[derive(Clone, Default)]
pub struct StoredTokens {
    /// The latest (rotated) refresh token.
    pub refresh_token: Option<SecretString>,
    /// When that refresh token was issued or last used (the keep-alive measures idleness
    /// from here).
    pub refresh_used: Option<SystemTime>,
    /// The latest access token.
    pub access_token: Option<StoredAccessToken>,
}

/// An access token and its lifetime, wall-clock.
#[derive(Clone)]
pub struct StoredAccessToken {
    /// The bearer token. Never log it.
    pub value: SecretString,
    /// When it was issued.
    pub issued: SystemTime,
    /// When the server said it expires.
    pub expires: SystemTime,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| MASK))
            .field("refresh_used", &self.refresh_used)
            .field("access_token", &self.access_token)
            .finish()
    }
}

impl fmt::Debug for StoredAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredAccessToken")
            .field("value", &MASK)
            .field("issued", &self.issued)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Why a store could not be read or written. No message contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The vault.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A cluster's shared store (the coordinator) could not be read or written.
    #[error("the cluster's shared token store: {0}")]
    Shared(String),
    /// A thread panicked while it held the in-memory store.
    #[error("the in-memory token store is unusable: a thread panicked while holding it")]
    Poisoned,
}

/// A held cross-process lock; dropping it releases the lock.
pub type StoreLock = Box<dyn Send>;

/// Keeps a credential's tokens. Calls block (file I/O): the token manager runs them on a
/// blocking thread.
pub trait RefreshTokenStore: Send + Sync + fmt::Debug + 'static {
    /// The stored tokens (empty when there are none).
    fn load(&self) -> Result<StoredTokens, StoreError>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError>;
    /// Where the lock that makes token requests single-flight across processes is (a lock
    /// file; for a cluster's store, the coordinator's table, shown as a path in messages);
    /// `None` for a store no other process sees. When it is `Some`, the tokens are shared:
    /// the manager never revokes them at shutdown (another process may be using them).
    fn lock_path(&self) -> Option<PathBuf> {
        None
    }
    /// Takes the cross-process lock if it is free; `Ok(None)` while another holder has
    /// it. The OS releases it when the holder exits, however it exits.
    fn try_lock(&self) -> Result<Option<StoreLock>, StoreError> {
        Ok(Some(Box::new(())))
    }
}

/// Keeps the tokens in memory only (credentials from an `.ionapi` file or a form).
#[derive(Default)]
pub struct MemoryRefreshStore {
    tokens: Mutex<StoredTokens>,
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryRefreshStore")
    }
}

impl RefreshTokenStore for MemoryRefreshStore {
    fn load(&self) -> Result<StoredTokens, StoreError> {
        Ok(self
            .tokens
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .clone())
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        *self.tokens.lock().map_err(|_| StoreError::Poisoned)? = tokens.clone();
        Ok(())
    }
}

/// Keeps the tokens in a vault entry, encrypted, shared by every process using the entry.
#[derive(Debug)]
pub struct VaultRefreshStore {
    vault: Arc<Vault>,
    name: String,
}

impl VaultRefreshStore {
    /// The tokens of vault entry `name`.
    pub fn new(vault: Arc<Vault>, name: impl Into<String>) -> Self {
        Self {
            vault,
            name: name.into(),
        }
    }
}

impl RefreshTokenStore for VaultRefreshStore {
    fn load(&self) -> Result<StoredTokens, StoreError> {
        Ok(self.vault.tokens(&self.name)?)
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        Ok(self.vault.set_tokens(&self.name, tokens)?)
    }

    fn lock_path(&self) -> Option<PathBuf> {
        Some(self.vault.token_lock_path(&self.name))
    }

    fn try_lock(&self) -> Result<Option<StoreLock>, StoreError> {
        Ok(self
            .vault
            .try_lock_tokens(&self.name)?
            .map(|l| Box::new(l) as StoreLock))
    }
}

/// Gives the stores of a cluster's shared tokens: `Connection::open` asks it, when it is
/// set in [`super::TokenSettings::shared_store`], for the store of a credential instead of
/// the machine-local one (memory, or a vault entry), so that every process of the cluster,
/// on any machine, keeps one token per credential. `ionport-cluster`'s coordinator is one.
/// The token lifecycle stays the [`super::TokenManager`]'s; only where the tokens and the
/// lock live changes.
pub trait TokenStoreProvider: Send + Sync + fmt::Debug + 'static {
    /// The store of the credential `key` (a hash of the credential's identity: API base,
    /// client id, service account; never a secret), its tokens sealed under `vault`'s key.
    fn store(&self, key: &str, vault: Arc<Vault>) -> Arc<dyn RefreshTokenStore>;
}
