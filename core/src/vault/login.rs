//! Entries of interactive sign-ins: stored with the tokens the sign-in got, in one write.

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use super::tokens::to_ms;
use super::{StoredEntry, Vault, VaultError, check_name, now};
use crate::credentials::Credentials;
use crate::token::{GrantKind, StoredTokens};

/// How a vault entry's credential gets its first token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryGrant {
    /// The service account's password grant (`vault import`).
    #[default]
    Password,
    /// A user's interactive sign-in (`vault login`): refresh tokens only afterwards.
    AuthorizationCode,
}

impl EntryGrant {
    pub(super) fn is_password(&self) -> bool {
        *self == Self::Password
    }

    /// The token manager's grant for an entry of this kind.
    pub fn kind(self) -> GrantKind {
        match self {
            Self::Password => GrantKind::Password,
            Self::AuthorizationCode => GrantKind::AuthorizationCode,
        }
    }
}

impl Vault {
    /// Stores the credentials of a sign-in under `name` with the `tokens` it got,
    /// replacing an entry of that name (signing in again is how a dead sign-in is
    /// renewed). The service account is left out: the entry acts as the user who signed
    /// in, never as someone else.
    pub fn put_login(
        &self,
        name: &str,
        credentials: &Credentials,
        tokens: &StoredTokens,
    ) -> Result<(), VaultError> {
        check_name(name)?;
        let mut user_only = credentials.clone();
        user_only.service_account = None;
        let ionapi = user_only.to_ionapi_json();
        let access = tokens.access_token.as_ref();
        self.update(|plain| {
            let t = now();
            let created = plain.entries.get(name).map_or(t, |old| old.created);
            plain.entries.insert(
                name.to_string(),
                StoredEntry {
                    ionapi: ionapi.to_string(),
                    refresh_token: tokens
                        .refresh_token
                        .as_ref()
                        .map(|r| r.expose_secret().to_string()),
                    refresh_used_ms: tokens.refresh_used.map(to_ms),
                    access_token: access.map(|a| a.value.expose_secret().to_string()),
                    access_issued_ms: access.map(|a| to_ms(a.issued)),
                    access_expires_ms: access.map(|a| to_ms(a.expires)),
                    created,
                    updated: t,
                    grant: EntryGrant::AuthorizationCode,
                },
            );
            Ok(())
        })
    }
}
