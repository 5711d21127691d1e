//! Gateway HTTP for one connection ([`GatewayClient`]).
//!
//! One pooled `reqwest` client (rustls) per connection; every path is relative to the
//! API base `iu + "/" + ti`. The stack, outermost first:
//!
//! 1. `reqwest-retry`'s [`RetryTransientMiddleware`]: exponential backoff with jitter,
//!    bounded in count (`max_retries`) and total time (`retry_total`). Reads
//!    (GET/HEAD/OPTIONS) are retried on 429/502/503, connection errors, resets, timeouts
//!    and cut bodies, and on 504 at most `timeout_retries` times; other methods only on
//!    429 and on connection failures (the request never left), so a write is never sent
//!    twice. What is retried and how a call ends is decided in [`contract`].
//! 2. The attempt layer (`layer`): waits out a `Retry-After` from the previous
//!    attempt, takes a permit of the concurrency bound (`tokio::sync::Semaphore`) and a
//!    cell of the client-side rate limiter (`governor`, set to the tenant's quota), adds
//!    the bearer token from the [`TokenManager`], and after a 401 invalidates that token
//!    and sends once more with a new one. It counts the metrics and a call's timeouts.
//!
//! A read that still times out ends in [`GatewayError::Timeout`] (plugins get it as the
//! error kind `timeout` and shrink their page); one that still meets a transient status
//! or transport failure ends in [`GatewayError::Exhausted`].
//!
//! Plugins never name a host: absolute URLs, paths that leave the API base and an
//! `Authorization` header are refused ([`GatewayError::Refused`]).

pub mod contract;
pub mod day_shares;
mod layer;
mod metrics;
pub mod shares;
pub mod tenant;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{Jitter, RetryDecision, RetryPolicy, RetryTransientMiddleware};

pub use day_shares::{BudgetBroker, Reserved, set_budget_broker};
pub use metrics::GatewayMetrics;
pub use shares::{QuotaBroker, TenantQuota, set_quota_broker};
pub use tenant::{BudgetSpent, BudgetUse, DailyBudget};

use crate::token::{TokenError, TokenManager, error_chain};
use layer::{AttemptLayer, CallTrace, ReadStrategy, WriteStrategy};

/// The client-side rate limit: at most `requests` per `per`, minus `headroom`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests allowed per window (the tenant's quota).
    pub requests: u32,
    /// The window.
    pub per: Duration,
    /// The fraction of the quota kept free for latency jitter between the client's
    /// limiter and the gateway's counting window (default 0.04: the client sends at 96%
    /// of the quota; at 1,000 per minute that leaves 40 requests, over two seconds of
    /// requests bunched by latency jitter, before a window could see too many).
    pub headroom: f64,
    /// Requests that may go back to back (the limiter's bucket). 1 spaces requests
    /// evenly but loses every slot a waiter wakes up late for; 2 lets the limiter catch
    /// up one late slot, so the client really sends at its rate. The default is 2 when
    /// the headroom leaves room for it and one more request of jitter per window
    /// (`requests * headroom >= 2`), else 1: no window of the gateway sees more than
    /// `requests` unless a request is delayed by more than about the headroom.
    pub burst: u32,
}

impl RateLimit {
    /// The default headroom.
    pub const HEADROOM: f64 = 0.04;

    /// `requests` per `per`, with the default headroom and burst.
    pub fn new(requests: u32, per: Duration) -> Self {
        Self {
            requests,
            per,
            headroom: Self::HEADROOM,
            burst: if f64::from(requests) * Self::HEADROOM >= 2.0 {
                2
            } else {
                1
            },
        }
    }

    /// The interval between two requests the limiter lets through.
    pub fn interval(&self) -> Duration {
        let effective = f64::from(self.requests.max(1)) * (1.0 - self.headroom.clamp(0.0, 0.9));
        Duration::from_secs_f64(self.per.as_secs_f64() / effective.max(1e-9))
    }
}

impl Default for RateLimit {
    /// The gateway's default quota: 1000 requests per 60 s.
    fn default() -> Self {
        Self::new(1000, Duration::from_secs(60))
    }
}

/// A limit the clients of one scope keep to, per tenant, on top of the tenant's quota:
/// an embedder's customer (an `ionport serve` workspace) sharing a tenant with others.
/// Every client of this process with the same `scope` to the same tenant takes its cells
/// from one limiter ([`tenant`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedLimit {
    /// Whose limit it is (e.g. `workspace:acme`).
    pub scope: String,
    /// The limit.
    pub limit: RateLimit,
}

/// Settings of a gateway client.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Timeout of one request (default 60 s: the gateway's default target timeout, after
    /// which it answers 504 itself; a gateway policy can allow up to 5 minutes).
    pub timeout: Duration,
    /// The longest timeout a plugin may ask for (default 5 minutes).
    pub max_timeout: Duration,
    /// TCP/TLS connect timeout (default 30 s).
    pub connect_timeout: Duration,
    /// Retries after the first attempt (default 5).
    pub max_retries: u32,
    /// Of those, at most this many after a read timed out (504 or the request timeout;
    /// default 1): see [`contract::TIMEOUT_STATUS`].
    pub timeout_retries: u32,
    /// First backoff (default 250 ms); doubles, with jitter, up to `retry_max`.
    pub retry_min: Duration,
    /// Longest backoff (default 30 s).
    pub retry_max: Duration,
    /// No retry starts later than this after the call began (default 2 minutes).
    pub retry_total: Duration,
    /// The longest `Retry-After` honoured; a longer one ends the call (default 2 minutes).
    pub max_retry_after: Duration,
    /// The client-side rate limit (default 1000 per 60 s); `None` for none. Shared by
    /// every client of this process to the same tenant with the same limit
    /// ([`tenant`]).
    pub rate_limit: Option<RateLimit>,
    /// A scope's own limit to the tenant, kept besides `rate_limit` (default none).
    pub scoped_limit: Option<ScopedLimit>,
    /// The tenant's daily budget of requests (default 250,000); `None` for none. Counted
    /// per tenant, across the processes that share `usage_dir`.
    pub daily_budget: Option<DailyBudget>,
    /// Where the tenants' daily counts are kept (the ionport home's `usage/`); `None`
    /// counts this process's requests only.
    pub usage_dir: Option<std::path::PathBuf>,
    /// At most this many requests in flight (default 16).
    pub concurrency: usize,
    /// The `User-Agent`.
    pub user_agent: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(30),
            max_retries: 5,
            timeout_retries: 1,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            retry_total: Duration::from_secs(120),
            max_retry_after: Duration::from_secs(120),
            rate_limit: Some(RateLimit::default()),
            scoped_limit: None,
            daily_budget: Some(DailyBudget::default()),
            usage_dir: None,
            concurrency: 16,
            user_agent: format!("ionport/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Why a gateway call failed. No message contains a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The request was refused before sending (a path outside the API base, an absolute
    /// URL, an `Authorization` header, an invalid method or header).
    #[error("gateway request refused: {0}")]
    Refused(String),
    /// No token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The tenant's daily budget is spent; nothing was sent.
    #[error(transparent)]
    Budget(#[from] BudgetSpent),
    /// The gateway refused a fresh token too.
    #[error(
        "{method} {path}: the gateway answered 401 Unauthorized twice, the second time with a newly fetched token: {body}"
    )]
    Unauthorized {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// The body excerpt.
        body: String,
    },
    /// Still failing after the retry bound.
    #[error("{method} {path}: gave up after {attempts} attempt(s) in {elapsed_ms} ms: {last}")]
    Exhausted {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed_ms: u64,
        /// The last answer or error.
        last: String,
    },
    /// A read that kept timing out (504, or the request timeout) on every attempt the
    /// timeout bound allows: what was asked is too big for the gateway's target timeout.
    #[error(
        "{method} {path}: timed out on {attempts} attempt(s) in {elapsed_ms} ms ({last}); ask for less at once"
    )]
    Timeout {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed_ms: u64,
        /// The last answer or error.
        last: String,
    },
    /// A transport failure that is not retried (or a write).
    #[error("{method} {path}: {message} (after {attempts} attempt(s))")]
    Transport {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// What failed.
        message: String,
    },
    /// The client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A request relative to the API base.
#[derive(Debug, Clone, Default)]
pub struct GatewayRequest {
    /// HTTP method (`GET` when empty).
    pub method: String,
    /// Path relative to `iu/ti`, e.g. `ifsservice/usermgt/v2/users/me`.
    pub path: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Extra headers (never `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Body (empty for none).
    pub body: Vec<u8>,
    /// A timeout other than the default.
    pub timeout: Option<Duration>,
}

impl GatewayRequest {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            ..Self::default()
        }
    }
}

/// A gateway answer (any status other than the ones that end in an error).
#[derive(Debug, Clone)]
pub struct GatewayResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: bytes::Bytes,
}

/// One call's outcome and the HTTP attempts it took ([`GatewayClient::send_counted`]):
/// the count comes from the attempt layer's trace of the call, so a retry is counted
/// where it is made, never read back from an error's text.
#[derive(Debug)]
pub struct GatewayCall {
    /// The answer, or why there is none.
    pub result: Result<GatewayResponse, GatewayError>,
    /// HTTP requests sent for the call (0 when none could be: a refused request, no
    /// token); 1 plus the retries, counting the one resend after a 401.
    pub attempts: u32,
}

impl GatewayCall {
    /// The retries of the call: its attempts after the first.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

/// Exponential backoff bounded both in count and in total time.
#[derive(Debug, Clone, Copy)]
struct BoundedBackoff {
    backoff: ExponentialBackoff,
    total: Duration,
}

impl RetryPolicy for BoundedBackoff {
    fn should_retry(
        &self,
        request_start_time: std::time::SystemTime,
        n_past_retries: u32,
    ) -> RetryDecision {
        match self
            .backoff
            .should_retry(request_start_time, n_past_retries)
        {
            RetryDecision::Retry { execute_after }
                if execute_after <= request_start_time + self.total =>
            {
                RetryDecision::Retry { execute_after }
            }
            _ => RetryDecision::DoNotRetry,
        }
    }
}

/// The HTTP client of one connection's gateway. Cheap to clone (shared).
#[derive(Clone)]
pub struct GatewayClient {
    base: Url,
    reads: ClientWithMiddleware,
    writes: ClientWithMiddleware,
    tokens: TokenManager,
    settings: Arc<GatewaySettings>,
    metrics: Arc<metrics::Counters>,
    usage: Arc<tenant::TenantUsage>,
}

impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient")
            .field("base", &self.base.as_str())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A pooled HTTP client with ionport's defaults (rustls, connect timeout, user agent).
pub fn http_client(settings: &GatewaySettings) -> Result<reqwest::Client, GatewayError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(settings.user_agent.clone())
        .build()
        .map_err(|e| GatewayError::Client(error_chain(&e)))
}

impl GatewayClient {
    /// A client for the API base of `tokens`' credentials, sending with `http` (made with
    /// [`http_client`] when `None`).
    pub fn new(
        tokens: TokenManager,
        settings: GatewaySettings,
        http: Option<reqwest::Client>,
    ) -> Result<Self, GatewayError> {
        let http = match http {
            Some(h) => h,
            None => http_client(&settings)?,
        };
        let base = tokens.credentials().api_base();
        let metrics = Arc::new(metrics::Counters::default());
        let mut tenant = tenant::share(
            &tokens.credentials().tenant,
            base.as_str(),
            settings.rate_limit.as_ref(),
            settings.usage_dir.as_deref(),
        );
        tenant.scoped = settings
            .scoped_limit
            .as_ref()
            .and_then(|s| tenant::share_scoped(&s.scope, base.as_str(), &s.limit));
        let usage = Arc::clone(&tenant.usage);
        let layer = Arc::new(AttemptLayer::new(
            tokens.clone(),
            &settings,
            tenant,
            Arc::clone(&metrics),
        ));
        let policy = BoundedBackoff {
            backoff: ExponentialBackoff::builder()
                .retry_bounds(
                    settings.retry_min,
                    settings.retry_max.max(settings.retry_min),
                )
                .jitter(Jitter::Bounded)
                .base(2)
                .build_with_max_retries(settings.max_retries),
            total: settings.retry_total,
        };
        let reads = ClientBuilder::new(http.clone())
            .with(RetryTransientMiddleware::new_with_policy_and_strategy(
                policy,
                ReadStrategy,
            ))
            .with_arc(layer.clone())
            .build();
        let writes = ClientBuilder::new(http)
            .with(RetryTransientMiddleware::new_with_policy_and_strategy(
                policy,
                WriteStrategy,
            ))
            .with_arc(layer)
            .build();
        Ok(Self {
            base,
            reads,
            writes,
            tokens,
            settings: Arc::new(settings),
            metrics,
            usage,
        })
    }

    /// The tenant's daily budget: used today (by every connection to it that this process
    /// knows of) and left.
    pub fn budget(&self) -> BudgetUse {
        self.usage.usage(self.settings.daily_budget.as_ref())
    }

    /// The API base (`iu/ti/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// The settings.
    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }

    /// Counters so far.
    pub fn metrics(&self) -> GatewayMetrics {
        self.metrics.snapshot()
    }

    /// The URL of `path` under the API base, with `query`; refuses absolute URLs and paths
    /// that leave the base.
    pub fn resolve(&self, path: &str, query: &[(String, String)]) -> Result<Url, GatewayError> {
        let refuse = |why: &str| {
            Err(GatewayError::Refused(format!(
                "path '{}' {why}; paths are relative to the connection's API base {}",
                path.chars().take(200).collect::<String>(),
                self.base
            )))
        };
        if path.contains("://") || path.starts_with("//") {
            return refuse("is an absolute URL");
        }
        if path.chars().any(|c| c.is_control() || c == '\\') {
            return refuse("contains a control character or a backslash");
        }
        if path.contains(['?', '#']) {
            return refuse("contains '?' or '#' (put query parameters in `query`)");
        }
        let rel = path.strip_prefix('/').unwrap_or(path);
        for seg in rel.split('/') {
            let lower = seg.to_ascii_lowercase().replace("%2e", ".");
            let name = lower.split(';').next().unwrap_or("");
            if name == "." || name == ".." {
                return refuse("contains a '.' or '..' segment");
            }
        }
        if let Some(first) = rel.split('/').next()
            && let Some((scheme, _)) = first.split_once(':')
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
        {
            return refuse("starts like a URL scheme");
        }
        let mut url = match self.base.join(rel) {
            Ok(u) => u,
            Err(e) => return refuse(&format!("is not a valid path ({e})")),
        };
        if url.origin() != self.base.origin() || !url.path().starts_with(self.base.path()) {
            return refuse("leaves the API base");
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        Ok(url)
    }

    fn headers(&self, headers: &[(String, String)]) -> Result<HeaderMap, GatewayError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let lower = name.trim().to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "authorization" | "proxy-authorization" | "host" | "cookie"
            ) {
                return Err(GatewayError::Refused(format!(
                    "the header '{name}' is set by the host, not by a plugin"
                )));
            }
            let n = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| GatewayError::Refused(format!("'{name}' is not a header name")))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                GatewayError::Refused(format!("the value of header '{name}' is not valid"))
            })?;
            map.append(n, v);
        }
        Ok(map)
    }

    /// Sends a request; retries, rate limit, concurrency bound and token as described in
    /// the module documentation.
    pub async fn send(&self, req: GatewayRequest) -> Result<GatewayResponse, GatewayError> {
        self.send_counted(req).await.result
    }

    /// [`GatewayClient::send`], with the HTTP attempts the call took (its retries are
    /// `attempts - 1`), answer or error: what a read counts as its own retries.
    pub async fn send_counted(&self, req: GatewayRequest) -> GatewayCall {
        let mut attempts = 0;
        let result = self.send_traced(req, &mut attempts).await;
        GatewayCall { result, attempts }
    }

    async fn send_traced(
        &self,
        req: GatewayRequest,
        attempts_out: &mut u32,
    ) -> Result<GatewayResponse, GatewayError> {
        let method_text = if req.method.trim().is_empty() {
            "GET".to_string()
        } else {
            req.method.trim().to_ascii_uppercase()
        };
        let method = match method_text.as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "OPTIONS" => Method::OPTIONS,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            other => {
                return Err(GatewayError::Refused(format!(
                    "the method '{}' is not supported",
                    other.chars().take(20).collect::<String>()
                )));
            }
        };
        let url = self.resolve(&req.path, &req.query)?;
        let headers = self.headers(&req.headers)?;
        let read = contract::is_read(&method);
        let client = if read { &self.reads } else { &self.writes };
        let timeout = req
            .timeout
            .unwrap_or(self.settings.timeout)
            .min(self.settings.max_timeout)
            .max(Duration::from_millis(1));
        let started = Instant::now();
        let trace = Arc::new(CallTrace::new(started + self.settings.retry_total));
        let bytes_out = req.body.len() as u64;
        let mut rb = client
            .request(method.clone(), url)
            .timeout(timeout)
            .headers(headers)
            .with_extension(Arc::clone(&trace));
        if !req.body.is_empty() {
            rb = rb.body(req.body);
        }
        let result = rb.send().await;
        let path = req.path;
        let attempts = trace.attempts();
        *attempts_out = attempts;
        let scrub = self.tokens.scrubber();
        let outcome = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers: Vec<(String, String)> = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let body = resp.bytes().await.unwrap_or_default();
                // An excerpt may echo the request (its Authorization header, a token): it
                // is scrubbed like every text an error carries.
                let excerpt = || {
                    let window = &body[..body.len().min(64 * 1024)];
                    let clean = scrub.scrub(&String::from_utf8_lossy(window));
                    clean
                        .chars()
                        .take(300)
                        .collect::<String>()
                        .replace(['\n', '\r'], " ")
                };
                if status == 401 {
                    Err(GatewayError::Unauthorized {
                        method: method_text.clone(),
                        path: path.clone(),
                        body: excerpt(),
                    })
                } else if read && status == contract::TIMEOUT_STATUS {
                    Err(GatewayError::Timeout {
                        method: method_text.clone(),
                        path: path.clone(),
                        attempts,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                        last: format!("HTTP {status}: {}", excerpt()),
                    })
                } else if (read && contract::TRANSIENT_STATUSES.contains(&status))
                    || (!read && status == 429 && attempts > 1)
                {
                    Err(GatewayError::Exhausted {
                        method: method_text.clone(),
                        path: path.clone(),
                        attempts,
                        elapsed_ms: started.elapsed().as_millis() as u64,
                        last: format!("HTTP {status}: {}", excerpt()),
                    })
                } else {
                    Ok(GatewayResponse {
                        status,
                        headers,
                        body,
                    })
                }
            }
            Err(e) => Err(if let Some(te) = trace.token_error() {
                GatewayError::Token(te)
            } else if let Some(spent) = trace.budget_spent() {
                GatewayError::Budget(spent)
            } else if read && trace.last_timed_out() {
                GatewayError::Timeout {
                    method: method_text.clone(),
                    path: path.clone(),
                    attempts,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    last: error_chain(&e),
                }
            } else if let Some(why) = trace.gave_up() {
                GatewayError::Exhausted {
                    method: method_text.clone(),
                    path: path.clone(),
                    attempts,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    last: scrub.scrub(&why),
                }
            } else if attempts > 1 {
                GatewayError::Exhausted {
                    method: method_text.clone(),
                    path: path.clone(),
                    attempts,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    last: scrub.scrub(&error_chain(&e)),
                }
            } else {
                GatewayError::Transport {
                    method: method_text.clone(),
                    path: path.clone(),
                    attempts,
                    message: scrub.scrub(&error_chain(&e)),
                }
            }),
        };
        self.metrics.call(
            started.elapsed(),
            bytes_out,
            outcome.as_ref().map(|r| r.body.len() as u64).unwrap_or(0),
            outcome.is_ok(),
        );
        if let Err(e) = &outcome {
            tracing::debug!(error = %e, "gateway call failed");
        }
        outcome
    }

    /// GET `path` and return the body when the status is 2xx.
    pub async fn get_ok(&self, path: &str) -> Result<GatewayResponse, GatewayError> {
        self.send(GatewayRequest::get(path)).await
    }
}
