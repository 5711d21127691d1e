//! A connection's host services: credentials resolved (an `.ionapi` file, a vault entry
//! or the connection form) into a [`TokenManager`] and a [`GatewayClient`], and the
//! [`HostCallbacks`] object that plugins get ([`ConnectionHost`]).
//!
//! A plugin names a path; the host resolves it under the connection's API base, adds the
//! bearer token, retries, rate-limits. The plugin never sees a token or a secret.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ionport_plugin_abi::wire::GatewayRequestHead;
use ionport_plugin_abi::{PluginError, RecordBatch, error_kind};
use serde::Serialize;
use serde_json::Value;

use crate::credentials::{Credentials, CredentialsError, IonApiCredentials};
use crate::gateway::{GatewayClient, GatewayError, GatewayRequest, GatewaySettings, http_client};
use crate::host::{HostCallbacks, HostResponse};
use crate::token::{
    AssertionProvider, GrantKind, MemoryRefreshStore, RefreshTokenStore, TokenError, TokenManager,
    TokenSettings, VaultRefreshStore,
};
use crate::vault::{Vault, VaultError};

/// Where a connection's credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// An `.ionapi` file (refresh tokens are kept in memory).
    IonApiFile(PathBuf),
    /// A vault entry: its access token and rotated refresh token are stored in it and
    /// shared, under a file lock, by every process that uses the entry.
    Vault {
        /// The vault.
        vault: Arc<Vault>,
        /// The entry name.
        name: String,
    },
    /// The connection form's credentials block.
    Form(IonApiCredentials),
    /// Credentials already read.
    Credentials(Arc<Credentials>),
    /// The SAML 2.0 bearer grant for a user signed in to Infor Ming.le: the app's
    /// credentials (no service account needed) and the embedder's provider of assertions,
    /// asked whenever a token is needed. Tokens are kept in memory.
    Saml {
        /// The app's credentials.
        credentials: Arc<Credentials>,
        /// Gives the current assertion of the signed-in user.
        assertion: AssertionProvider,
    },
}

/// Settings of a connection's host services.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    /// Token lifecycle.
    pub token: TokenSettings,
    /// Gateway HTTP.
    pub gateway: GatewaySettings,
}

/// Why a connection could not be opened or checked.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The vault.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The gateway (includes token errors).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A check answer that is not a success.
    #[error("{message}")]
    Check {
        /// `token`, `rights`, `settings` or `network`.
        failed_part: String,
        /// What failed and what to do.
        message: String,
    },
}

impl ConnectionError {
    /// The part that failed, for a check report: `token`, `rights`, `settings`,
    /// `network`, `budget` (the tenant's daily budget is spent).
    pub fn failed_part(&self) -> &str {
        match self {
            Self::Vault(_) | Self::Credentials(_) => "settings",
            Self::Gateway(GatewayError::Token(TokenError::Transport { .. })) => "network",
            Self::Gateway(GatewayError::Token(TokenError::AuthBudget(_))) => "budget",
            Self::Gateway(GatewayError::Token(_) | GatewayError::Unauthorized { .. }) => "token",
            Self::Gateway(GatewayError::Refused(_)) => "settings",
            Self::Gateway(GatewayError::Budget(_)) => "budget",
            Self::Gateway(_) => "network",
            Self::Check { failed_part, .. } => failed_part,
        }
    }
}

/// Who the service account is (from `ifsservice/usermgt/v2/users/me`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceAccountInfo {
    /// The tenant the credentials belong to.
    pub tenant: String,
    /// User id.
    pub id: Option<String>,
    /// User name (often an e-mail address).
    pub user_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Status (`Active`, ...).
    pub status: Option<String>,
    /// Security groups / roles.
    pub groups: Vec<String>,
}

impl ServiceAccountInfo {
    /// One line: `ionport service account (ionport.service@x) on tenant T`.
    pub fn describe(&self) -> String {
        let who = match (&self.display_name, &self.user_name) {
            (Some(d), Some(u)) => format!("{d} ({u})"),
            (Some(d), None) => d.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => self.id.clone().unwrap_or_else(|| "an unnamed user".into()),
        };
        format!("{who} on tenant {}", self.tenant)
    }

    fn from_json(tenant: &str, v: &Value) -> Self {
        // `{"response":{"userlist":[{...}]}}`, or the user object itself.
        let user = v
            .pointer("/response/userlist/0")
            .or_else(|| v.pointer("/userlist/0"))
            .or_else(|| v.get("user"))
            .unwrap_or(v);
        let s = |k: &str| user.get(k).and_then(Value::as_str).map(str::to_string);
        let groups = user
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|g| {
                        g.get("display")
                            .or_else(|| g.get("name"))
                            .and_then(Value::as_str)
                            .or_else(|| g.as_str())
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            tenant: s("tenant").unwrap_or_else(|| tenant.to_string()),
            id: s("id"),
            user_name: s("userName").or_else(|| s("username")),
            display_name: s("displayName"),
            email: s("email"),
            status: s("status"),
            groups,
        }
    }
}

/// The cluster's store of `credentials`' tokens, from `provider`: `None` for tokens that
/// belong to one user's session (a SAML assertion's), which are not shared, and when no
/// vault key can seal them (then the machine-local store is kept, with a warning).
fn cluster_store(
    provider: &dyn crate::token::TokenStoreProvider,
    credentials: &Credentials,
    grant: &GrantKind,
    vault: Option<Arc<Vault>>,
) -> Option<Arc<dyn RefreshTokenStore>> {
    use sha2::Digest;
    if matches!(grant, GrantKind::SamlBearer(_)) {
        return None;
    }
    let vault = match vault {
        Some(v) => v,
        None => match Vault::open_default() {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::warn!(error = %e, "no vault key to seal the cluster's shared tokens with; this process keeps its own");
                return None;
            }
        },
    };
    // The credential's identity, hashed: the same on every machine that has it, whatever
    // the file or vault entry is called there. A user's sign-in (no service account) is
    // told apart by its origin (the vault entry).
    let account = match &credentials.service_account {
        Some(a) => format!("sa:{}", a.access_key),
        None => format!("origin:{}", credentials.origin),
    };
    let identity = format!(
        "ionport-tokens/1\n{}\n{}\n{account}",
        credentials.api_base().as_str(),
        credentials.client_id
    );
    let hash = sha2::Sha256::digest(identity.as_bytes());
    let key: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(provider.store(&key, vault))
}

/// The path of the host's own connection check.
pub const USERS_ME: &str = "ifsservice/usermgt/v2/users/me";

/// One connection's host services: credentials, tokens, gateway.
#[derive(Debug)]
pub struct Connection {
    credentials: Arc<Credentials>,
    tokens: TokenManager,
    gateway: GatewayClient,
    keepalive: Option<tokio::task::JoinHandle<()>>,
}

impl Connection {
    /// Resolves `source` and builds the token manager and the gateway client (one pooled
    /// HTTP client for both). When called inside a tokio runtime, the token keep-alive
    /// starts too.
    pub fn open(
        source: CredentialSource,
        settings: ConnectionSettings,
    ) -> Result<Self, ConnectionError> {
        let memory = || -> Arc<dyn RefreshTokenStore> { Arc::new(MemoryRefreshStore::default()) };
        // The vault whose key seals tokens shared through a cluster: the entry's own.
        let mut vault_of: Option<Arc<Vault>> = None;
        let (credentials, store, grant) = match source {
            CredentialSource::IonApiFile(p) => (
                Arc::new(Credentials::from_ionapi_file(p)?),
                memory(),
                GrantKind::Password,
            ),
            CredentialSource::Vault { vault, name } => {
                let entry = vault.get(&name)?;
                vault_of = Some(Arc::clone(&vault));
                (
                    Arc::new(entry.credentials),
                    Arc::new(VaultRefreshStore::new(vault, name)) as Arc<dyn RefreshTokenStore>,
                    entry.grant.kind(),
                )
            }
            CredentialSource::Form(f) => (
                Arc::new(Credentials::from_form(&f)?),
                memory(),
                GrantKind::Password,
            ),
            CredentialSource::Credentials(c) => (c, memory(), GrantKind::Password),
            CredentialSource::Saml {
                credentials,
                assertion,
            } => (credentials, memory(), GrantKind::SamlBearer(assertion)),
        };
        let store = match &settings.token.shared_store {
            Some(provider) => {
                cluster_store(provider.as_ref(), &credentials, &grant, vault_of).unwrap_or(store)
            }
            None => store,
        };
        let http = http_client(&settings.gateway)?;
        let tokens = TokenManager::with_grant(
            Arc::clone(&credentials),
            settings.token,
            store,
            Some(http.clone()),
            grant,
        );
        let gateway = GatewayClient::new(tokens.clone(), settings.gateway, Some(http))?;
        let keepalive = tokio::runtime::Handle::try_current()
            .ok()
            .and_then(|_| tokens.spawn_keepalive());
        Ok(Self {
            credentials,
            tokens,
            gateway,
            keepalive,
        })
    }

    /// The credentials (secrets masked in `Debug`).
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// The gateway client.
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }

    /// The host's own check: `GET ifsservice/usermgt/v2/users/me`, who the service
    /// account is.
    pub async fn whoami(&self) -> Result<ServiceAccountInfo, ConnectionError> {
        let resp = self.gateway.send(GatewayRequest::get(USERS_ME)).await?;
        let base = self
            .gateway
            .base()
            .as_str()
            .trim_end_matches('/')
            .to_string();
        match resp.status {
            200..=299 => {
                let v: Value =
                    serde_json::from_slice(&resp.body).map_err(|e| ConnectionError::Check {
                        failed_part: "network".into(),
                        message: format!("{base}/{USERS_ME} answered with invalid JSON: {e}"),
                    })?;
                Ok(ServiceAccountInfo::from_json(&self.credentials.tenant, &v))
            }
            403 => Err(ConnectionError::Check {
                failed_part: "rights".into(),
                message: format!(
                    "{base}/{USERS_ME} answered 403 Forbidden: the token works, but the service account's user lacks rights; give it an IFS security role (for M3: GRID-Administrator or GRID-RunAsM3User)"
                ),
            }),
            404 => Err(ConnectionError::Check {
                failed_part: "settings".into(),
                message: format!(
                    "{base}/{USERS_ME} answered 404 Not Found: check the ION API URL (`iu`) and tenant (`ti`)"
                ),
            }),
            s => Err(ConnectionError::Check {
                failed_part: "network".into(),
                message: format!(
                    "{base}/{USERS_ME} answered HTTP {s}: {}",
                    String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)])
                ),
            }),
        }
    }

    /// The host-services object for plugin calls on this connection. Plugin calls run on
    /// blocking threads (`spawn_blocking`); `handle` runs the gateway calls.
    pub fn host(&self, handle: tokio::runtime::Handle) -> ConnectionHost {
        ConnectionHost::new(handle, self.gateway.clone())
    }

    /// Stops the keep-alive and revokes the refresh token of an unshared credential (an
    /// `.ionapi` file or form values; a vault entry's tokens stay for the other processes
    /// that share them; see [`TokenManager::shutdown`]). Returns whether a revocation was
    /// sent.
    pub async fn shutdown(&self) -> Result<bool, TokenError> {
        if let Some(k) = &self.keepalive {
            k.abort();
        }
        self.tokens.shutdown().await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(k) = &self.keepalive {
            k.abort();
        }
    }
}

/// A cancellation flag shared by whoever may stop work (Ctrl-C, an API call) and the hosts
/// of the plugin calls it covers: once set, reads stop between pages.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks every call that shares the flag to stop between pages.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The [`HostCallbacks`] of a connection: the gateway through [`GatewayClient`] and
/// cancellation by a [`Cancel`]. It takes no records: a read goes through
/// [`crate::read::read_task`], whose host wraps this one.
pub struct ConnectionHost {
    handle: tokio::runtime::Handle,
    gateway: GatewayClient,
    cancel: Cancel,
}

impl std::fmt::Debug for ConnectionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHost")
            .field("gateway", &self.gateway)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl ConnectionHost {
    /// Host services over `gateway`, running its calls on `handle`.
    pub fn new(handle: tokio::runtime::Handle, gateway: GatewayClient) -> Self {
        Self {
            handle,
            gateway,
            cancel: Cancel::default(),
        }
    }

    /// Stops when `cancel` is set (a run's or a read's flag) instead of its own.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Asks the plugin to stop.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The gateway client.
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }

    /// Converts a plugin's request head and body into a gateway request.
    pub fn request(head: GatewayRequestHead, body: Vec<u8>) -> GatewayRequest {
        GatewayRequest {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
            timeout: head.timeout_secs.map(std::time::Duration::from_secs),
        }
    }
}

fn plugin_error(e: &GatewayError) -> PluginError {
    let kind = match e {
        GatewayError::Refused(_) => error_kind::INVALID_INPUT,
        // The credentials need attention: a check reports this as the token part.
        GatewayError::Token(_) | GatewayError::Unauthorized { .. } => error_kind::AUTH,
        // The contract (`gateway::contract`): a read that kept timing out is the plugin's
        // to answer with a smaller page.
        GatewayError::Timeout { .. } => error_kind::TIMEOUT,
        _ => error_kind::GATEWAY,
    };
    PluginError::new(kind, e.to_string())
}

impl ConnectionHost {
    /// A plugin's gateway call and the HTTP attempts it took (see
    /// [`GatewayClient::send_counted`]): how a read counts its own retries.
    pub fn gateway_counted(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> (Result<HostResponse, PluginError>, u32) {
        // After cancellation reads are refused, but a plugin's clean-up calls (e.g. a
        // Compass job's PUT .../cancel) still go out.
        if self.cancel.is_cancelled() && head.method.eq_ignore_ascii_case("GET") {
            let e = PluginError::new(error_kind::CANCELLED, "the call was cancelled");
            return (Err(e), 0);
        }
        let req = Self::request(head, body);
        let gateway = self.gateway.clone();
        let handle = self.handle.clone();
        // block_on panics when called on a runtime worker thread; never let that unwind
        // into the plugin.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            handle.block_on(gateway.send_counted(req))
        }));
        match run {
            Ok(call) => {
                let result = match call.result {
                    Ok(r) => Ok(HostResponse {
                        status: r.status,
                        headers: r.headers,
                        body: r.body.to_vec(),
                    }),
                    Err(e) => Err(plugin_error(&e)),
                };
                (result, call.attempts)
            }
            Err(_) => (
                Err(PluginError::new(
                    error_kind::HOST,
                    "the host's gateway was called on an async worker thread; plugin calls must run on a blocking thread (spawn_blocking)",
                )),
                0,
            ),
        }
    }
}

impl HostCallbacks for ConnectionHost {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.gateway_counted(head, body).0
    }

    fn emit(&self, _batch: RecordBatch) -> Result<(), PluginError> {
        Err(PluginError::new(
            error_kind::HOST,
            "this call takes no records (only read does)",
        ))
    }

    fn checkpoint(&self, _state: &str) -> Result<(), PluginError> {
        Err(PluginError::new(
            error_kind::HOST,
            "this call takes no checkpoints (only read does)",
        ))
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
