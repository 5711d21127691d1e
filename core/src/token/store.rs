//! Where a token manager keeps the latest refresh token.

use std::fmt;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;

use crate::vault::Vault;

/// Keeps the latest (rotated) refresh token of one credential. `save` is called with the
/// new token before the token manager uses it, and with `None` when it is dead or
/// revoked. Calls block (file I/O): the token manager runs them on a blocking thread.
pub trait RefreshTokenStore: Send + Sync + fmt::Debug + 'static {
    /// The stored refresh token, if any.
    fn load(&self) -> Result<Option<SecretString>, String>;
    /// Stores `token` (or forgets it).
    fn save(&self, token: Option<&SecretString>) -> Result<(), String>;
}

/// Keeps the refresh token in memory only (credentials from an `.ionapi` file).
#[derive(Default)]
pub struct MemoryRefreshStore {
    token: Mutex<Option<SecretString>>,
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryRefreshStore")
    }
}

impl RefreshTokenStore for MemoryRefreshStore {
    fn load(&self) -> Result<Option<SecretString>, String> {
        Ok(self.token.lock().map_err(|e| e.to_string())?.clone())
    }

    fn save(&self, token: Option<&SecretString>) -> Result<(), String> {
        *self.token.lock().map_err(|e| e.to_string())? = token.cloned();
        Ok(())
    }
}

/// Keeps the refresh token in a vault entry, encrypted, written atomically.
#[derive(Debug)]
pub struct VaultRefreshStore {
    vault: Arc<Vault>,
    name: String,
}

impl VaultRefreshStore {
    /// The refresh token of vault entry `name`.
    pub fn new(vault: Arc<Vault>, name: impl Into<String>) -> Self {
        Self {
            vault,
            name: name.into(),
        }
    }
}

impl RefreshTokenStore for VaultRefreshStore {
    fn load(&self) -> Result<Option<SecretString>, String> {
        self.vault
            .get(&self.name)
            .map(|e| e.refresh_token)
            .map_err(|e| e.to_string())
    }

    fn save(&self, token: Option<&SecretString>) -> Result<(), String> {
        self.vault
            .set_refresh_token(&self.name, token)
            .map_err(|e| e.to_string())
    }
}
