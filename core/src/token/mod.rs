//! The OAuth 2.0 token lifecycle of one credential ([`TokenManager`]).
//!
//! - The first token comes from the credential's [`GrantKind`]: the password grant against
//!   `pu + ot` (service-account keys as username and password), the authorization code of
//!   an interactive sign-in ([`TokenManager::exchange_code`] with a [`PkceLogin`]; later
//!   only its refresh token), or a SAML bearer assertion from the embedder's
//!   [`AssertionProvider`].
//! - The access token is used until a safety margin before `expires_in` runs out
//!   (`expiry_margin`, at most a quarter of the lifetime).
//! - Tokens live in a [`RefreshTokenStore`]. A vault entry is a shared store: every
//!   process using the entry reads the access token and the rotated refresh token from it
//!   (encrypted), so a cron run, the daemon and `serve` on one credential authenticate
//!   once between them, not once each.
//! - Single-flight: concurrent callers cause one token request; the others wait for it
//!   and share its result. Within a process an async mutex does it; across processes
//!   sharing a store, the store's OS file lock, taken only when the stored token is not
//!   usable, and the stored tokens are read again under it before anything is sent.
//! - Refresh-token grant when a refresh token was issued. Refresh tokens rotate: the new
//!   one is persisted before the lock is released, and a refresh token is never sent
//!   again once it may have been used: not after `invalid_grant` (dead), nor after a
//!   refresh grant that got no complete answer. Both fall back to the first grant: the
//!   password grant, a new assertion, or (after a sign-in) [`TokenError::LoginRequired`].
//! - [`TokenManager::invalidate`] after a 401 from the gateway drops that token (only that
//!   one: a newer token fetched meanwhile stays) and never adopts it again from the store.
//! - [`TokenManager::shutdown`] stops handing out tokens. With a private store it revokes
//!   the refresh token (or the access token when there is none) at `pu + or`; shared
//!   tokens are left for the next process (another one may be using them).
//! - A keep-alive task refreshes a refresh token idle for longer than `keepalive_after`.
//! - Token requests are retried, bounded, with backoff (see `request.rs`).
//! - Token-endpoint errors are mapped to what the user must fix: the client id/secret,
//!   the service-account keys, or a grant disabled for the app.

mod error;
mod grant;
mod request;
mod store;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

pub use error::TokenError;
pub use grant::{AssertionProvider, GrantKind, PkceLogin, RandomError, s256_challenge};
pub(crate) use request::error_chain;
pub use store::{
    MemoryRefreshStore, RefreshTokenStore, StoreError, StoreLock, StoredAccessToken, StoredTokens,
    TokenStoreProvider, VaultRefreshStore,
};

use crate::credentials::{Credentials, MASK};
pub use crate::gateway::tenant::AuthBudget;
use crate::gateway::tenant::{AuthShare, auth_share};
use request::{AuthClient, Fetched, Grant};

/// Settings of a token manager.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// A token is renewed this long before it expires (at most a quarter of its
    /// lifetime). Default 60 s.
    pub expiry_margin: Duration,
    /// Timeout of one token-endpoint request. Default 30 s.
    pub request_timeout: Duration,
    /// Retries of a token request on 429/502/503/504, failed connections, resets, cut
    /// answers and timeouts (a refresh grant only when it certainly was not processed).
    /// Default 3.
    pub max_retries: u32,
    /// Backoff bounds of those retries (exponential, with jitter). Default 200 ms / 5 s.
    pub retry_min: Duration,
    /// See `retry_min`.
    pub retry_max: Duration,
    /// How long to wait for another process's token request on a shared store before
    /// giving up. Default 5 min (longer than two requests with all their retries).
    pub lock_wait: Duration,
    /// Refresh a refresh token that has been idle this long (the gateway kills refresh
    /// tokens idle for about 30 days). Default 7 days; `None` turns the keep-alive off.
    pub keepalive_after: Option<Duration>,
    /// How often the keep-alive task looks. Default: a quarter of `keepalive_after`, at
    /// most an hour.
    pub keepalive_check: Option<Duration>,
    /// The optional `scope` of the password grant.
    pub scope: Option<String>,
    /// Revoke the refresh token on [`TokenManager::shutdown`] (private stores only).
    /// Default true.
    pub revoke_on_shutdown: bool,
    /// The service account's authentication budget (first grants: password, a user's
    /// code, a SAML assertion; refresh grants are not authentications). `None` (the
    /// library's default) counts nothing; pipelines use Infor's 20 per minute and 1,000
    /// per day ([`AuthBudget::INFOR`]).
    pub auth_budget: Option<AuthBudget>,
    /// Where the daily authentication counts are added up across processes (the home's
    /// `usage/`); `None` counts this process's grants only.
    pub usage_dir: Option<std::path::PathBuf>,
    /// Where a cluster's processes share their tokens (`ionport worker --coordinator`):
    /// `Connection::open` takes a credential's store from it instead of the machine-local
    /// one. `None` (the default) keeps tokens in memory or in the vault entry.
    pub shared_store: Option<Arc<dyn TokenStoreProvider>>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            expiry_margin: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            lock_wait: Duration::from_secs(300),
            keepalive_after: Some(Duration::from_secs(7 * 24 * 3600)),
            keepalive_check: None,
            scope: None,
            revoke_on_shutdown: true,
            auth_budget: None,
            usage_dir: None,
            shared_store: None,
        }
    }
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

    /// Which token of this manager it is (1, 2, ...).
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
    /// Authorization codes exchanged.
    pub code_grants: u64,
    /// SAML bearer grants sent.
    pub saml_grants: u64,
    /// Refresh tokens given up (refused with `invalid_grant`, or a refresh without a
    /// complete answer), followed by a password grant.
    pub fallbacks: u64,
    /// Access tokens taken from the store that another process (or manager) fetched.
    pub adopted: u64,
    /// Token requests re-sent after a transient failure.
    pub retries: u64,
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
    code_grants: AtomicU64,
    saml_grants: AtomicU64,
    fallbacks: AtomicU64,
    adopted: AtomicU64,
    invalidations: AtomicU64,
    revocations: AtomicU64,
    failures: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Inner {
    creds: Arc<Credentials>,
    kind: GrantKind,
    settings: TokenSettings,
    auth: AuthClient,
    store: Arc<dyn RefreshTokenStore>,
    cache: RwLock<Option<Arc<AccessToken>>>,
    /// The last token refused by the gateway: never adopted again from the store.
    rejected: Mutex<Option<SecretString>>,
    /// Held by the one fetch in flight; counts the tokens handed out.
    flight: tokio::sync::Mutex<u64>,
    closed: AtomicBool,
    counters: Counters,
    /// The service account's authentication budget, shared with every manager of it.
    auth_budget: Option<AuthShare>,
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
            .field("token_url", &self.inner.auth.token_url().as_str())
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Whether a stored refresh token is due for a keep-alive refresh.
fn idle_for(tokens: &StoredTokens, after: Duration) -> bool {
    tokens.refresh_token.is_some()
        && tokens.refresh_used.is_none_or(|used| {
            SystemTime::now()
                .duration_since(used)
                .is_ok_and(|idle| idle >= after)
        })
}

impl TokenManager {
    /// A manager for `creds` with the password grant, keeping tokens in `store`, sending
    /// with `http` (a plain client is made when `None`). Call [`Self::spawn_keepalive`]
    /// from inside a tokio runtime to start the keep-alive.
    pub fn new(
        creds: Arc<Credentials>,
        settings: TokenSettings,
        store: Arc<dyn RefreshTokenStore>,
        http: Option<reqwest::Client>,
    ) -> Self {
        Self::with_grant(creds, settings, store, http, GrantKind::Password)
    }

    /// A manager whose first token comes from `kind`.
    pub fn with_grant(
        creds: Arc<Credentials>,
        settings: TokenSettings,
        store: Arc<dyn RefreshTokenStore>,
        http: Option<reqwest::Client>,
        kind: GrantKind,
    ) -> Self {
        let auth = AuthClient::new(Arc::clone(&creds), &settings, http.unwrap_or_default());
        let auth_budget = settings.auth_budget.map(|b| {
            // One budget per service account (or per app, for grants without one); the
            // key is only hashed into a file name, never written as it is.
            let account = creds
                .service_account
                .as_ref()
                .map_or("", |a| a.access_key.as_str());
            let key = format!(
                "{}|{}|{account}",
                creds.api_base().as_str(),
                creds.client_id
            );
            auth_share(&creds.tenant, &key, &b, settings.usage_dir.as_deref())
        });
        Self {
            inner: Arc::new(Inner {
                creds,
                kind,
                settings,
                auth,
                store,
                cache: RwLock::new(None),
                rejected: Mutex::new(None),
                flight: tokio::sync::Mutex::new(0),
                closed: AtomicBool::new(false),
                counters: Counters::default(),
                auth_budget,
            }),
        }
    }

    /// The credentials.
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.inner.creds
    }

    /// The scrubber of this credential: its secrets and every token it has seen, kept
    /// after the tokens themselves are dropped or revoked.
    pub fn scrubber(&self) -> &crate::scrub::Scrubber {
        self.inner.auth.scrubber()
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

    /// A usable access token: the cached one, the stored one, or one fetched now
    /// (single-flight within the process and across processes sharing the store).
    pub async fn access_token(&self) -> Result<Arc<AccessToken>, TokenError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let mut handed_out = self.inner.flight.lock().await;
        if self.is_closed() {
            return Err(self.closed_error());
        }
        // Whoever held the lock before us may have fetched one.
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let r = self.obtain(&mut handed_out).await;
        if r.is_err() {
            bump(&self.inner.counters.failures);
        }
        r
    }

    /// Drops `token` after the gateway refused it (401), unless a newer one replaced it.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Ok(mut r) = self.inner.rejected.lock() {
            *r = Some(token.value.clone());
        }
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
            code_grants: l(&c.code_grants),
            saml_grants: l(&c.saml_grants),
            fallbacks: l(&c.fallbacks),
            adopted: l(&c.adopted),
            retries: self.inner.auth.retries(),
            invalidations: l(&c.invalidations),
            revocations: l(&c.revocations),
            failures: l(&c.failures),
        }
    }

    /// Whether [`Self::shutdown`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Whether the tokens are shared with other processes (a vault entry).
    pub fn is_shared(&self) -> bool {
        self.inner.store.lock_path().is_some()
    }

    async fn load(&self) -> Result<StoredTokens, TokenError> {
        let store = Arc::clone(&self.inner.store);
        let r = tokio::task::spawn_blocking(move || store.load().map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let stored = r.map_err(|message| TokenError::Store {
            origin: self.inner.creds.origin.clone(),
            message,
        })?;
        // Tokens another process stored are masked from now on, as our own are.
        if let Some(t) = &stored.refresh_token {
            self.inner.auth.learn(t.expose_secret());
        }
        if let Some(t) = &stored.access_token {
            self.inner.auth.learn(t.value.expose_secret());
        }
        Ok(stored)
    }

    /// Saves `tokens`; a failure is logged: the tokens in hand still work, only other
    /// processes will not see them.
    async fn save(&self, tokens: StoredTokens, what: &str) {
        let store = Arc::clone(&self.inner.store);
        let r = tokio::task::spawn_blocking(move || store.save(&tokens).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        if let Err(e) = r {
            tracing::error!(error = %e, "could not store {what}; it is kept in memory only");
        }
    }

    /// Waits for the store's cross-process lock (polling: waiting on a blocking thread
    /// could not be given up), at most `lock_wait`.
    async fn lock(&self) -> Result<StoreLock, TokenError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let store = Arc::clone(&self.inner.store);
            let r =
                tokio::task::spawn_blocking(move || store.try_lock().map_err(|e| e.to_string()))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
            match r {
                Ok(Some(lock)) => return Ok(lock),
                Ok(None) => {}
                Err(message) => {
                    return Err(TokenError::Store {
                        origin: self.inner.creds.origin.clone(),
                        message,
                    });
                }
            }
            if started.elapsed() >= self.inner.settings.lock_wait {
                return Err(TokenError::LockTimeout {
                    origin: self.inner.creds.origin.clone(),
                    path: self
                        .inner
                        .store
                        .lock_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The stored access token, if it is usable and not the one the gateway refused.
    fn adopt(&self, handed_out: &mut u64, tokens: &StoredTokens) -> Option<Arc<AccessToken>> {
        let a = tokens.access_token.as_ref()?;
        let rejected = self.inner.rejected.lock().ok()?;
        if rejected
            .as_ref()
            .is_some_and(|r| r.expose_secret() == a.value.expose_secret())
        {
            return None;
        }
        drop(rejected);
        let now = SystemTime::now();
        let left = a.expires.duration_since(now).ok()?;
        let lifetime = a.expires.duration_since(a.issued).unwrap_or(left);
        if left <= self.margin(lifetime) {
            return None;
        }
        Some(self.install(handed_out, a.value.clone(), left, lifetime))
    }

    fn margin(&self, lifetime: Duration) -> Duration {
        self.inner.settings.expiry_margin.min(lifetime / 4)
    }

    /// Caches `value`, good for `left` of its `lifetime`.
    fn install(
        &self,
        handed_out: &mut u64,
        value: SecretString,
        left: Duration,
        lifetime: Duration,
    ) -> Arc<AccessToken> {
        *handed_out += 1;
        let now = Instant::now();
        let token = Arc::new(AccessToken {
            value,
            generation: *handed_out,
            expires_at: now + left,
            renew_at: now + left.saturating_sub(self.margin(lifetime)),
        });
        if let Ok(mut g) = self.inner.cache.write() {
            *g = Some(Arc::clone(&token));
        }
        tracing::debug!(
            generation = token.generation,
            left_secs = left.as_secs_f64(),
            "access token cached"
        );
        token
    }

    async fn obtain(&self, handed_out: &mut u64) -> Result<Arc<AccessToken>, TokenError> {
        // Reading needs no lock: writes replace the vault file atomically.
        if let Some(t) = self.adopt(handed_out, &self.load().await?) {
            bump(&self.inner.counters.adopted);
            return Ok(t);
        }
        let _lock = self.lock().await?;
        // The holder before us may have renewed it.
        let stored = self.load().await?;
        if let Some(t) = self.adopt(handed_out, &stored) {
            bump(&self.inner.counters.adopted);
            return Ok(t);
        }
        let mut stored = stored;
        let mut why_no_refresh = "no refresh token is stored".to_string();
        if let Some(rt) = stored.refresh_token.clone() {
            match self.grant(Grant::Refresh(&rt)).await {
                Ok(f) => return Ok(self.accept(handed_out, stored, f).await),
                Err(
                    e
                    @ (TokenError::RefreshRejected { .. } | TokenError::RefreshUnconfirmed { .. }),
                ) => {
                    bump(&self.inner.counters.fallbacks);
                    tracing::info!(
                        reason = %e,
                        "the refresh token is given up; falling back to the first grant"
                    );
                    why_no_refresh = e.to_string();
                    stored = StoredTokens::default();
                    self.save(stored.clone(), "that the refresh token is dead")
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        let f = self.first_grant(why_no_refresh).await?;
        Ok(self.accept(handed_out, stored, f).await)
    }

    /// A token without a refresh token: the credential's [`GrantKind`].
    async fn first_grant(&self, why_no_refresh: String) -> Result<Fetched, TokenError> {
        let origin = || self.inner.creds.origin.clone();
        match &self.inner.kind {
            GrantKind::Password => self.grant(Grant::Password).await,
            GrantKind::AuthorizationCode => Err(TokenError::LoginRequired {
                origin: origin(),
                reason: why_no_refresh,
            }),
            GrantKind::SamlBearer(provider) => {
                let provider = provider.clone();
                let assertion = tokio::task::spawn_blocking(move || provider.assertion())
                    .await
                    .map_err(|e| format!("it panicked or was cancelled ({e})"))
                    .and_then(|r| r)
                    .map_err(|m| TokenError::AssertionProvider {
                        origin: origin(),
                        message: self.scrubber().scrub(&m),
                    })?;
                self.inner.auth.learn(assertion.expose_secret());
                self.grant(Grant::Saml(&assertion)).await
            }
        }
    }

    async fn grant(&self, grant: Grant<'_>) -> Result<Fetched, TokenError> {
        if !matches!(grant, Grant::Refresh(_)) {
            self.take_authentication().await?;
        }
        bump(match grant {
            Grant::Password => &self.inner.counters.password_grants,
            Grant::Refresh(_) => &self.inner.counters.refresh_grants,
            Grant::Code { .. } => &self.inner.counters.code_grants,
            Grant::Saml(_) => &self.inner.counters.saml_grants,
        });
        self.inner.auth.grant(grant).await
    }

    /// Waits for the authentication budget's minute to allow one more grant, and counts
    /// it against the day; a spent day is an error, nothing is sent.
    async fn take_authentication(&self) -> Result<(), TokenError> {
        let (Some(share), Some(budget)) =
            (&self.inner.auth_budget, self.inner.settings.auth_budget)
        else {
            return Ok(());
        };
        if let Some(limiter) = &share.limiter
            && limiter.check().is_err()
        {
            tracing::info!(
                per_minute = budget.per_minute,
                "waiting for the service account's authentication budget of the minute"
            );
            limiter.until_ready().await;
        }
        share
            .usage
            .take(Some(&crate::gateway::DailyBudget::new(budget.per_day)))
            .map_err(TokenError::AuthBudget)
    }

    /// Finishes an interactive sign-in: exchanges the authorization `code` that came back
    /// to `login`'s redirect URI (with its PKCE verifier) and stores the tokens, as a
    /// refresh would.
    pub async fn exchange_code(
        &self,
        login: &PkceLogin,
        code: &SecretString,
    ) -> Result<(), TokenError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let mut handed_out = self.inner.flight.lock().await;
        let _lock = self.lock().await?;
        let grant = Grant::Code {
            code,
            redirect_uri: login.redirect_uri(),
            verifier: login.verifier(),
        };
        let r = self.grant(grant).await;
        let f = r.inspect_err(|_| bump(&self.inner.counters.failures))?;
        self.accept(&mut handed_out, StoredTokens::default(), f)
            .await;
        Ok(())
    }

    /// Takes a fetched pair: stores it (the rotated refresh token with it) before anyone
    /// can use it, then caches the access token.
    async fn accept(
        &self,
        handed_out: &mut u64,
        mut tokens: StoredTokens,
        f: Fetched,
    ) -> Arc<AccessToken> {
        let now = SystemTime::now();
        if let Some(rt) = f.refresh {
            tokens.refresh_token = Some(rt);
        }
        if tokens.refresh_token.is_some() {
            tokens.refresh_used = Some(now);
        }
        tokens.access_token = Some(StoredAccessToken {
            value: f.access.clone(),
            issued: now,
            expires: now + f.lifetime,
        });
        self.save(tokens, "the new tokens").await;
        self.install(handed_out, f.access, f.lifetime, f.lifetime)
    }

    /// Refreshes now if the stored refresh token has been idle longer than
    /// `keepalive_after` (another process's refresh counts). Returns whether a refresh
    /// was made.
    pub async fn keep_alive(&self) -> Result<bool, TokenError> {
        let Some(after) = self.inner.settings.keepalive_after else {
            return Ok(false);
        };
        if self.is_closed() {
            return Ok(false);
        }
        let mut handed_out = self.inner.flight.lock().await;
        if self.is_closed() || !idle_for(&self.load().await?, after) {
            return Ok(false);
        }
        let _lock = self.lock().await?;
        let stored = self.load().await?;
        let Some(rt) = stored
            .refresh_token
            .clone()
            .filter(|_| idle_for(&stored, after))
        else {
            return Ok(false);
        };
        tracing::info!("keep-alive: refreshing an idle refresh token");
        match self.grant(Grant::Refresh(&rt)).await {
            Ok(f) => {
                self.accept(&mut handed_out, stored, f).await;
                Ok(true)
            }
            Err(
                e @ (TokenError::RefreshRejected { .. } | TokenError::RefreshUnconfirmed { .. }),
            ) => {
                bump(&self.inner.counters.fallbacks);
                tracing::info!(reason = %e, "keep-alive: the refresh token is given up; the first grant follows on next use");
                self.save(StoredTokens::default(), "that the refresh token is dead")
                    .await;
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

    /// Stops handing out tokens. With a private store, revokes the refresh token (or,
    /// when none was issued, the access token) and forgets it; shared tokens stay in the
    /// store for the next process. Returns whether a revocation was sent.
    pub async fn shutdown(&self) -> Result<bool, TokenError> {
        self.inner.closed.store(true, Ordering::Release);
        let _handed_out = self.inner.flight.lock().await;
        if let Ok(mut g) = self.inner.cache.write() {
            *g = None;
        }
        if self.is_shared() {
            tracing::debug!("the tokens are shared through the vault: left there, not revoked");
            return Ok(false);
        }
        let stored = self.load().await?;
        let (token, hint) = match (stored.refresh_token, stored.access_token) {
            (Some(rt), _) => (rt, "refresh_token"),
            (None, Some(at)) => (at.value, "access_token"),
            (None, None) => return Ok(false),
        };
        self.save(StoredTokens::default(), "that the tokens are gone")
            .await;
        if !self.inner.settings.revoke_on_shutdown {
            return Ok(false);
        }
        bump(&self.inner.counters.revocations);
        self.inner.auth.revoke(&token, hint).await?;
        tracing::debug!(hint, "token revoked");
        Ok(true)
    }
}
