//! The OAuth 2.0 token lifecycle of one credential ([`TokenManager`]).
//!
//! - Password grant against `pu + ot` (service-account keys as username and password).
//! - The access token is cached until a safety margin before `expires_in` runs out
//!   (`expiry_margin`, at most a quarter of the lifetime).
//! - Single-flight: any number of concurrent callers cause one token request; the others
//!   wait for it and share its result.
//! - Refresh-token grant when a refresh token was issued. Refresh tokens rotate: the new
//!   one is persisted ([`RefreshTokenStore`], e.g. the vault) before it is used, and the
//!   old one is never sent again. `invalid_grant` on a refresh falls back to the password
//!   grant.
//! - [`TokenManager::invalidate`] after a 401 from the gateway drops that token (only that
//!   one: a newer token fetched meanwhile stays).
//! - [`TokenManager::shutdown`] revokes the refresh token (or the access token when there
//!   is none) at `pu + or`; afterwards no token is handed out.
//! - A keep-alive task refreshes a refresh token idle for longer than `keepalive_after`.
//! - Token-endpoint errors are mapped to what the user must fix: the client id/secret,
//!   the service-account keys, or a grant disabled for the app.

mod store;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{Jitter, RetryTransientMiddleware, Retryable, RetryableStrategy};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use store::{MemoryRefreshStore, RefreshTokenStore, VaultRefreshStore};

use crate::credentials::{ClientAuth, Credentials, MASK};
use crate::scrub::Scrubber;

/// Settings of a token manager.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// A token is renewed this long before it expires (at most a quarter of its
    /// lifetime). Default 60 s.
    pub expiry_margin: Duration,
    /// Timeout of one token-endpoint request. Default 30 s.
    pub request_timeout: Duration,
    /// Retries of a token request on 429/502/503/504 and connection errors. Default 3.
    pub max_retries: u32,
    /// Refresh a refresh token that has been idle this long (the gateway kills refresh
    /// tokens idle for about 30 days). Default 7 days; `None` turns the keep-alive off.
    pub keepalive_after: Option<Duration>,
    /// How often the keep-alive task looks. Default: a quarter of `keepalive_after`, at
    /// most an hour.
    pub keepalive_check: Option<Duration>,
    /// The optional `scope` of the password grant.
    pub scope: Option<String>,
    /// Revoke the refresh token on [`TokenManager::shutdown`]. Default true.
    pub revoke_on_shutdown: bool,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            expiry_margin: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            keepalive_after: Some(Duration::from_secs(7 * 24 * 3600)),
            keepalive_check: None,
            scope: None,
            revoke_on_shutdown: true,
        }
    }
}

/// Why no token could be had. No message contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Wrong client id or client secret.
    #[error(
        "the authorization server {url} refused the client id or client secret (`ci`/`cs` of {origin}): {description}. Check the Client ID and Client Secret, or download the .ionapi file of the authorized app again"
    )]
    InvalidClient {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// The server's description.
        description: String,
    },
    /// Wrong service-account keys.
    #[error(
        "the authorization server {url} refused the service-account keys (`saak`/`sask` of {origin}): {description}. The client id and secret were accepted; the service account may have been deleted or its keys regenerated: download the credentials again with 'Create Service Account' ticked"
    )]
    InvalidServiceAccount {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// The server's description.
        description: String,
    },
    /// The grant type is not enabled for the app.
    #[error(
        "the authorization server {url} does not allow the {grant} grant for this app ({origin}): {description}. Use the credentials of a backend-service app{hint}"
    )]
    GrantDisabled {
        /// The token endpoint.
        url: String,
        /// Where the credentials came from.
        origin: String,
        /// `password` or `refresh_token`.
        grant: String,
        /// The server's description.
        description: String,
        /// What to do.
        hint: String,
    },
    /// The refresh token is dead (rotated, revoked, idle). Handled inside the manager by
    /// falling back to the password grant.
    #[error("the refresh token was refused: {description}")]
    RefreshRejected {
        /// The server's description.
        description: String,
    },
    /// No service account: the password grant is impossible.
    #[error(
        "{origin} has no service account (`saak`/`sask`): ionport needs the credentials of a backend-service app downloaded with 'Create Service Account' ticked"
    )]
    NoServiceAccount {
        /// Where the credentials came from.
        origin: String,
    },
    /// Any other answer of the token endpoint.
    #[error("the authorization server {url} answered {status}{code}: {description}")]
    Endpoint {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// ` (error_code)` or empty.
        code: String,
        /// Description or body excerpt.
        description: String,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach the authorization server {url}: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// A 200 answer without a usable token.
    #[error("the authorization server {url} sent an unusable token response: {message}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The manager was shut down (its tokens were revoked).
    #[error("the token manager of {origin} was shut down and its tokens revoked")]
    Closed {
        /// Where the credentials came from.
        origin: String,
    },
}

/// An access token and when to stop using it. `Debug` masks the token.
pub struct AccessToken {
    value: SecretString,
    generation: u64,
    expires_at: Instant,
    renew_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &MASK)
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessToken {
    /// The bearer token. Never log it.
    pub fn secret(&self) -> &SecretString {
        &self.value
    }

    /// Which fetch produced it (1, 2, ...).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the server said it expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Whether it can still be handed out at `now`.
    pub fn usable_at(&self, now: Instant) -> bool {
        now < self.renew_at
    }
}

/// Counters of one token manager.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenMetrics {
    /// Password grants sent.
    pub password_grants: u64,
    /// Refresh grants sent.
    pub refresh_grants: u64,
    /// Refresh grants refused with `invalid_grant`, followed by a password grant.
    pub fallbacks: u64,
    /// Tokens invalidated after a 401.
    pub invalidations: u64,
    /// Revocations sent.
    pub revocations: u64,
    /// Token requests that failed.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    password_grants: AtomicU64,
    refresh_grants: AtomicU64,
    fallbacks: AtomicU64,
    invalidations: AtomicU64,
    revocations: AtomicU64,
    failures: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// State owned by the one fetch in flight.
#[derive(Default)]
struct FlightState {
    loaded: bool,
    refresh_token: Option<SecretString>,
    refresh_used: Option<Instant>,
    last_access: Option<SecretString>,
    generation: u64,
}

struct Inner {
    creds: Arc<Credentials>,
    settings: TokenSettings,
    http: ClientWithMiddleware,
    token_url: Url,
    revoke_url: Url,
    store: Arc<dyn RefreshTokenStore>,
    cache: RwLock<Option<Arc<AccessToken>>>,
    flight: tokio::sync::Mutex<FlightState>,
    closed: AtomicBool,
    counters: Counters,
    /// The credentials' secrets and every token received or used: masked out of every
    /// error text (a server may echo them).
    scrubber: Scrubber,
}

/// The token lifecycle of one credential. Cheap to clone (shared).
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("origin", &self.inner.creds.origin)
            .field("token_url", &self.inner.token_url.as_str())
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Retries token requests on 429/502/503/504 and on connection errors.
struct TokenRetryStrategy;

impl RetryableStrategy for TokenRetryStrategy {
    fn handle(
        &self,
        res: &Result<reqwest::Response, reqwest_middleware::Error>,
    ) -> Option<Retryable> {
        match res {
            Ok(r) => match r.status().as_u16() {
                429 | 502 | 503 | 504 => Some(Retryable::Transient),
                _ => None,
            },
            Err(e) if e.is_connect() => Some(Retryable::Transient),
            Err(_) => Some(Retryable::Fatal),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<Zeroizing<String>>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<Zeroizing<String>>,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    Password,
    Refresh,
}

impl Grant {
    fn name(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Refresh => "refresh_token",
        }
    }
}

/// A fetched token pair.
struct Fetched {
    access: SecretString,
    refresh: Option<SecretString>,
    lifetime: Duration,
}

impl TokenManager {
    /// A manager for `creds`, keeping refresh tokens in `store`, sending with `http` (a
    /// plain client is made when `None`). Call [`Self::spawn_keepalive`] from inside a
    /// tokio runtime to start the keep-alive.
    pub fn new(
        creds: Arc<Credentials>,
        settings: TokenSettings,
        store: Arc<dyn RefreshTokenStore>,
        http: Option<reqwest::Client>,
    ) -> Self {
        let client = http.unwrap_or_default();
        let policy = ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(200), Duration::from_secs(5))
            .jitter(Jitter::Bounded)
            .build_with_max_retries(settings.max_retries);
        let http = ClientBuilder::new(client)
            .with(RetryTransientMiddleware::new_with_policy_and_strategy(
                policy,
                TokenRetryStrategy,
            ))
            .build();
        let scrubber = creds.scrubber();
        Scrubber::process().extend_from(&scrubber);
        Self {
            inner: Arc::new(Inner {
                token_url: creds.token_url(),
                revoke_url: creds.revoke_url(),
                scrubber,
                creds,
                settings,
                http,
                store,
                cache: RwLock::new(None),
                flight: tokio::sync::Mutex::new(FlightState::default()),
                closed: AtomicBool::new(false),
                counters: Counters::default(),
            }),
        }
    }

    /// The credentials.
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.inner.creds
    }

    /// The scrubber of this credential: its secrets and every token it has seen, kept
    /// after the tokens themselves are dropped or revoked.
    pub fn scrubber(&self) -> &Scrubber {
        &self.inner.scrubber
    }

    /// The cached token, if it is still usable: the fast path, no await, no I/O.
    pub fn cached(&self) -> Option<Arc<AccessToken>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return None;
        }
        let guard = self.inner.cache.read().ok()?;
        let t = guard.as_ref()?;
        t.usable_at(Instant::now()).then(|| Arc::clone(t))
    }

    fn closed_error(&self) -> TokenError {
        TokenError::Closed {
            origin: self.inner.creds.origin.clone(),
        }
    }

    /// A usable access token: the cached one, or one fetched now (single-flight).
    pub async fn access_token(&self) -> Result<Arc<AccessToken>, TokenError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        let mut st = self.inner.flight.lock().await;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        // Whoever held the lock before us may have fetched one.
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let r = self.fetch(&mut st).await;
        if r.is_err() {
            bump(&self.inner.counters.failures);
        }
        r
    }

    /// Drops `token` after the gateway refused it (401), unless a newer one replaced it.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Ok(mut g) = self.inner.cache.write()
            && g.as_ref().is_some_and(|t| t.generation == token.generation)
        {
            *g = None;
            bump(&self.inner.counters.invalidations);
            tracing::debug!(
                generation = token.generation,
                "access token invalidated after a 401"
            );
        }
    }

    /// Counters so far.
    pub fn metrics(&self) -> TokenMetrics {
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TokenMetrics {
            password_grants: l(&c.password_grants),
            refresh_grants: l(&c.refresh_grants),
            fallbacks: l(&c.fallbacks),
            invalidations: l(&c.invalidations),
            revocations: l(&c.revocations),
            failures: l(&c.failures),
        }
    }

    /// Whether [`Self::shutdown`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    async fn store_load(&self) -> Result<Option<SecretString>, String> {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| e.to_string())?
    }

    async fn store_save(&self, token: Option<SecretString>) -> Result<(), String> {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || store.save(token.as_ref()))
            .await
            .map_err(|e| e.to_string())?
    }

    async fn fetch(&self, st: &mut FlightState) -> Result<Arc<AccessToken>, TokenError> {
        if !st.loaded {
            match self.store_load().await {
                Ok(rt) => {
                    if let Some(t) = &rt {
                        self.learn(t.expose_secret());
                    }
                    st.refresh_token = rt;
                    st.refresh_used = st.refresh_token.as_ref().map(|_| Instant::now());
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not read the stored refresh token; using the password grant"
                ),
            }
            st.loaded = true;
        }
        if let Some(rt) = st.refresh_token.clone() {
            match self.grant(Grant::Refresh, Some(&rt)).await {
                Ok(f) => return self.accept(st, f).await,
                Err(TokenError::RefreshRejected { description }) => {
                    bump(&self.inner.counters.fallbacks);
                    tracing::info!(
                        reason = %description,
                        "the refresh token was refused; falling back to the password grant"
                    );
                    st.refresh_token = None;
                    st.refresh_used = None;
                    if let Err(e) = self.store_save(None).await {
                        tracing::warn!(error = %e, "could not forget the dead refresh token");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let f = self.grant(Grant::Password, None).await?;
        self.accept(st, f).await
    }

    /// Takes a fetched pair: persists a new refresh token first, then caches the access
    /// token.
    async fn accept(
        &self,
        st: &mut FlightState,
        f: Fetched,
    ) -> Result<Arc<AccessToken>, TokenError> {
        if let Some(rt) = f.refresh {
            // Persist before use: a crash after this point leaves the live token stored.
            if let Err(e) = self.store_save(Some(rt.clone())).await {
                tracing::error!(
                    error = %e,
                    "could not persist the rotated refresh token; it is kept in memory only"
                );
            }
            st.refresh_token = Some(rt);
            st.refresh_used = Some(Instant::now());
        }
        st.generation += 1;
        let now = Instant::now();
        let margin = self.inner.settings.expiry_margin.min(f.lifetime / 4);
        let token = Arc::new(AccessToken {
            value: f.access.clone(),
            generation: st.generation,
            expires_at: now + f.lifetime,
            renew_at: now + f.lifetime.saturating_sub(margin),
        });
        st.last_access = Some(f.access);
        if let Ok(mut g) = self.inner.cache.write() {
            *g = Some(Arc::clone(&token));
        }
        tracing::debug!(
            generation = token.generation,
            lifetime_secs = f.lifetime.as_secs_f64(),
            "access token cached"
        );
        Ok(token)
    }

    /// `text` scrubbed of every secret and token, `extra` (a token just sent) included.
    fn scrub(&self, text: &str, extra: Option<&SecretString>) -> String {
        if let Some(e) = extra {
            self.learn(e.expose_secret());
        }
        self.inner.scrubber.scrub(text)
    }

    /// Masks `token` from now on, here and in the process-wide scrubber.
    fn learn(&self, token: &str) {
        self.inner.scrubber.add(token);
        Scrubber::process().add(token);
    }

    fn client_request(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> reqwest_middleware::RequestBuilder {
        let c = &self.inner.creds;
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let rb = self
            .inner
            .http
            .post(url.clone())
            .timeout(self.inner.settings.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        let rb = match c.client_auth {
            ClientAuth::Basic => rb.basic_auth(&c.client_id, Some(c.client_secret.expose_secret())),
            ClientAuth::Form => {
                fields.push(("client_id", &c.client_id));
                fields.push(("client_secret", c.client_secret.expose_secret()));
                rb
            }
        };
        rb.form(&fields)
    }

    async fn grant(
        &self,
        grant: Grant,
        refresh: Option<&SecretString>,
    ) -> Result<Fetched, TokenError> {
        let creds = &self.inner.creds;
        let url = &self.inner.token_url;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", grant.name())];
        match (grant, refresh) {
            (Grant::Refresh, Some(rt)) => {
                bump(&self.inner.counters.refresh_grants);
                form.push(("refresh_token", rt.expose_secret()));
            }
            _ => {
                let Some(sa) = &creds.service_account else {
                    return Err(TokenError::NoServiceAccount {
                        origin: creds.origin.clone(),
                    });
                };
                bump(&self.inner.counters.password_grants);
                form.push(("username", &sa.access_key));
                form.push(("password", sa.secret_key.expose_secret()));
                if let Some(scope) = &self.inner.settings.scope {
                    form.push(("scope", scope));
                }
            }
        }
        tracing::debug!(grant = grant.name(), url = %url, "token request");
        let resp =
            self.client_request(url, &form)
                .send()
                .await
                .map_err(|e| TokenError::Transport {
                    url: url.to_string(),
                    message: self.scrub(&error_chain(&e), refresh),
                })?;
        let status = resp.status();
        let body = Zeroizing::new(
            resp.bytes()
                .await
                .map_err(|e| TokenError::Transport {
                    url: url.to_string(),
                    message: self.scrub(&error_chain(&e), refresh),
                })?
                .to_vec(),
        );
        if status.is_success() {
            return self.parse_token(&body);
        }
        Err(self.map_error(grant, status, &body, refresh))
    }

    fn parse_token(&self, body: &[u8]) -> Result<Fetched, TokenError> {
        let url = self.inner.token_url.to_string();
        let parsed: TokenResponse =
            serde_json::from_slice(body).map_err(|e| TokenError::BadResponse {
                url: url.clone(),
                message: format!("not JSON (line {} column {})", e.line(), e.column()),
            })?;
        let Some(access) = parsed.access_token.filter(|a| !a.is_empty()) else {
            return Err(TokenError::BadResponse {
                url,
                message: "no access_token".into(),
            });
        };
        if let Some(tt) = &parsed.token_type
            && !tt.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenError::BadResponse {
                url,
                message: format!("token_type is '{}', expected Bearer", self.scrub(tt, None)),
            });
        }
        let secs = match &parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3600.0);
        self.learn(&access);
        if let Some(r) = &parsed.refresh_token {
            self.learn(r);
        }
        Ok(Fetched {
            access: SecretString::from(access.as_str()),
            refresh: parsed
                .refresh_token
                .filter(|r| !r.is_empty())
                .map(|r| SecretString::from(r.as_str())),
            lifetime: Duration::from_secs_f64(secs.min(366.0 * 24.0 * 3600.0)),
        })
    }

    fn map_error(
        &self,
        grant: Grant,
        status: StatusCode,
        body: &[u8],
        refresh: Option<&SecretString>,
    ) -> TokenError {
        let creds = &self.inner.creds;
        let url = self.inner.token_url.to_string();
        let parsed: ErrorResponse = serde_json::from_slice(body).unwrap_or_default();
        // Scrubbed whole, then cut: a cut through a secret would leave a part unmatched.
        let description = match &parsed.error_description {
            Some(d) => self.scrub(d, refresh).chars().take(300).collect::<String>(),
            None => self
                .scrub(&String::from_utf8_lossy(body), refresh)
                .chars()
                .take(200)
                .collect(),
        };
        let code = parsed.error.as_deref().unwrap_or("");
        match (code, grant) {
            ("invalid_client", _) => TokenError::InvalidClient {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("", _) if status == StatusCode::UNAUTHORIZED => TokenError::InvalidClient {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("invalid_grant", Grant::Refresh) => TokenError::RefreshRejected { description },
            ("invalid_grant", Grant::Password) => TokenError::InvalidServiceAccount {
                url,
                origin: creds.origin.clone(),
                description,
            },
            ("unsupported_grant_type" | "unauthorized_client", _) => TokenError::GrantDisabled {
                url,
                origin: creds.origin.clone(),
                grant: grant.name().to_string(),
                description,
                hint: match grant {
                    Grant::Password => {
                        " with a service account (the password grant must be allowed)".into()
                    }
                    Grant::Refresh => "; or turn 'Issue Refresh Token' off".into(),
                },
            },
            _ => TokenError::Endpoint {
                url,
                status: status.as_u16(),
                code: if code.is_empty() {
                    String::new()
                } else {
                    format!(" ({code})")
                },
                description,
            },
        }
    }

    /// Refreshes now if the refresh token has been idle longer than `keepalive_after`.
    /// Returns whether a refresh was made.
    pub async fn keep_alive(&self) -> Result<bool, TokenError> {
        let Some(after) = self.inner.settings.keepalive_after else {
            return Ok(false);
        };
        if self.is_closed() {
            return Ok(false);
        }
        let mut st = self.inner.flight.lock().await;
        if self.is_closed() {
            return Ok(false);
        }
        let (Some(rt), Some(used)) = (st.refresh_token.clone(), st.refresh_used) else {
            return Ok(false);
        };
        if used.elapsed() < after {
            return Ok(false);
        }
        tracing::info!("keep-alive: refreshing an idle refresh token");
        match self.grant(Grant::Refresh, Some(&rt)).await {
            Ok(f) => self.accept(&mut st, f).await.map(|_| true),
            Err(TokenError::RefreshRejected { description }) => {
                bump(&self.inner.counters.fallbacks);
                tracing::info!(reason = %description, "keep-alive: the refresh token was refused; a password grant follows on next use");
                st.refresh_token = None;
                st.refresh_used = None;
                if let Err(e) = self.store_save(None).await {
                    tracing::warn!(error = %e, "could not forget the dead refresh token");
                }
                if let Ok(mut g) = self.inner.cache.write() {
                    *g = None;
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the keep-alive task (when `keepalive_after` is set). It ends when the
    /// manager is dropped or shut down. Must be called inside a tokio runtime.
    pub fn spawn_keepalive(&self) -> Option<tokio::task::JoinHandle<()>> {
        let after = self.inner.settings.keepalive_after?;
        let every = self
            .inner
            .settings
            .keepalive_check
            .unwrap_or_else(|| (after / 4).min(Duration::from_secs(3600)))
            .max(Duration::from_millis(10));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { break };
                let tm = TokenManager { inner };
                if tm.is_closed() {
                    break;
                }
                if let Err(e) = tm.keep_alive().await {
                    tracing::warn!(error = %e, "keep-alive refresh failed");
                }
            }
        }))
    }

    /// Revokes the refresh token (or, when none was issued, the access token) and stops
    /// handing out tokens. Returns whether a revocation was sent.
    pub async fn shutdown(&self) -> Result<bool, TokenError> {
        self.inner.closed.store(true, Ordering::Release);
        let mut st = self.inner.flight.lock().await;
        if let Ok(mut g) = self.inner.cache.write() {
            *g = None;
        }
        let (token, hint) = match (st.refresh_token.take(), st.last_access.take()) {
            (Some(rt), _) => (rt, "refresh_token"),
            (None, Some(at)) => (at, "access_token"),
            (None, None) => return Ok(false),
        };
        st.refresh_used = None;
        if !self.inner.settings.revoke_on_shutdown {
            return Ok(false);
        }
        let url = &self.inner.revoke_url;
        bump(&self.inner.counters.revocations);
        let form = [("token", token.expose_secret()), ("token_type_hint", hint)];
        let resp =
            self.client_request(url, &form)
                .send()
                .await
                .map_err(|e| TokenError::Transport {
                    url: url.to_string(),
                    message: self.scrub(&error_chain(&e), Some(&token)),
                })?;
        let status = resp.status();
        if hint == "refresh_token"
            && let Err(e) = self.store_save(None).await
        {
            tracing::warn!(error = %e, "could not forget the revoked refresh token");
        }
        if status.is_success() {
            tracing::debug!(hint, "token revoked");
            Ok(true)
        } else {
            let body = resp.bytes().await.unwrap_or_default();
            let e = self.map_error(Grant::Password, status, &body, Some(&token));
            Err(match e {
                TokenError::InvalidServiceAccount {
                    url, description, ..
                } => TokenError::Endpoint {
                    url,
                    status: status.as_u16(),
                    code: " (revocation)".into(),
                    description,
                },
                other => other,
            })
        }
    }
}

/// The message of an error and its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
