//! The attempt layer (one HTTP request: Retry-After, concurrency, rate limit, token, 401,
//! the count of a call's timeouts) and the retry classification of reads and writes, both
//! as [`super::contract`] decides.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use governor::DefaultDirectRateLimiter;
use http::Extensions;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Request, Response};
use reqwest_middleware::{Error, Middleware, Next};
use reqwest_retry::{Retryable, RetryableStrategy, default_on_request_failure};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::GatewaySettings;
use super::contract::{self, TIMEOUT_STATUS, TRANSIENT_STATUSES};
use super::metrics::{Counters, add};
use super::tenant::{BudgetSpent, DailyBudget, Refused, TenantShare, TenantUsage};
use crate::token::{AccessToken, TokenError, TokenManager, error_chain};

/// Marks a 504 answer after which the call's timeout retries are spent: the retry layer
/// hands it back instead of sending again.
#[derive(Debug, Clone, Copy)]
struct TimeoutsSpent;

/// What happened during one call, shared by its attempts (a request extension).
#[derive(Debug)]
pub(crate) struct CallTrace {
    attempts: AtomicU32,
    deadline: Instant,
    not_before: Mutex<Option<Instant>>,
    token_error: Mutex<Option<TokenError>>,
    budget_spent: Mutex<Option<BudgetSpent>>,
    gave_up: Mutex<Option<String>>,
    reauthenticated: AtomicBool,
    timeouts: AtomicU32,
    last_timed_out: AtomicBool,
}

impl CallTrace {
    pub fn new(deadline: Instant) -> Self {
        Self {
            attempts: AtomicU32::new(0),
            deadline,
            not_before: Mutex::new(None),
            token_error: Mutex::new(None),
            budget_spent: Mutex::new(None),
            gave_up: Mutex::new(None),
            reauthenticated: AtomicBool::new(false),
            timeouts: AtomicU32::new(0),
            last_timed_out: AtomicBool::new(false),
        }
    }

    /// HTTP requests sent for this call.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    pub fn token_error(&self) -> Option<TokenError> {
        self.token_error.lock().ok().and_then(|g| g.clone())
    }

    pub fn budget_spent(&self) -> Option<BudgetSpent> {
        self.budget_spent.lock().ok().and_then(|g| g.clone())
    }

    pub fn gave_up(&self) -> Option<String> {
        self.gave_up.lock().ok().and_then(|g| g.clone())
    }

    /// Whether the call's last attempt was a read that timed out (see
    /// [`contract::is_timeout`]).
    pub fn last_timed_out(&self) -> bool {
        self.last_timed_out.load(Ordering::Relaxed)
    }

    fn set<T>(slot: &Mutex<Option<T>>, v: T) {
        if let Ok(mut g) = slot.lock() {
            *g = Some(v);
        }
    }

    fn take_not_before(&self) -> Option<Instant> {
        self.not_before.lock().ok().and_then(|mut g| g.take())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LayerError(String);

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub(crate) fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Reads: retried on the transient statuses, on 504 until the call's timeout retries are
/// spent, on connection failures, resets, timeouts and bodies cut short.
pub(crate) struct ReadStrategy;

impl RetryableStrategy for ReadStrategy {
    fn handle(&self, res: &Result<Response, Error>) -> Option<Retryable> {
        match res {
            Ok(r) if r.extensions().get::<TimeoutsSpent>().is_some() => None,
            Ok(r)
                if TRANSIENT_STATUSES.contains(&r.status().as_u16())
                    || r.status().as_u16() == TIMEOUT_STATUS =>
            {
                Some(Retryable::Transient)
            }
            Ok(_) => None,
            Err(Error::Reqwest(e)) if e.is_body() || e.is_timeout() => Some(Retryable::Transient),
            Err(e) => default_on_request_failure(e),
        }
    }
}

/// Writes: retried only when the request was certainly not processed
/// ([`contract::write_is_retried`]).
pub(crate) struct WriteStrategy;

impl RetryableStrategy for WriteStrategy {
    fn handle(&self, res: &Result<Response, Error>) -> Option<Retryable> {
        match res {
            _ if contract::write_is_retried(res) => Some(Retryable::Transient),
            Ok(_) => None,
            Err(_) => Some(Retryable::Fatal),
        }
    }
}

/// One attempt: Retry-After wait, concurrency permit, the tenant's daily budget and
/// rate-limit cell, bearer token, one re-send after a 401, metrics.
pub(crate) struct AttemptLayer {
    tokens: TokenManager,
    limiter: Option<Arc<super::shares::TenantQuota>>,
    /// The client's scope's own limit to the tenant, besides the tenant's.
    scoped: Option<Arc<DefaultDirectRateLimiter>>,
    usage: Arc<TenantUsage>,
    budget: Option<DailyBudget>,
    permits: Semaphore,
    max_retry_after: Duration,
    timeout_retries: u32,
    metrics: Arc<Counters>,
}

impl AttemptLayer {
    pub fn new(
        tokens: TokenManager,
        settings: &GatewaySettings,
        tenant: TenantShare,
        metrics: Arc<Counters>,
    ) -> Self {
        Self {
            tokens,
            limiter: tenant.limiter,
            scoped: tenant.scoped,
            usage: tenant.usage,
            budget: settings.daily_budget,
            permits: Semaphore::new(settings.concurrency.max(1)),
            max_retry_after: settings.max_retry_after,
            timeout_retries: settings.timeout_retries,
            metrics,
        }
    }

    async fn token(&self, trace: Option<&CallTrace>) -> Result<Arc<AccessToken>, Error> {
        match self.tokens.access_token().await {
            Ok(t) => Ok(t),
            Err(e) => {
                if let Some(t) = trace {
                    CallTrace::set(&t.token_error, e.clone());
                }
                Err(Error::middleware(e))
            }
        }
    }

    /// Sends `req` once with `token`; the body is read here, so that a body cut short
    /// is an error the retry layer sees.
    async fn send_once(
        &self,
        mut req: Request,
        token: &AccessToken,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::middleware(LayerError(e.to_string())))?;
        match self.usage.take_shared(self.budget.as_ref()).await {
            Ok(()) => {}
            Err(Refused::Spent(spent)) => {
                if let Some(t) = ext.get::<Arc<CallTrace>>() {
                    CallTrace::set(&t.budget_spent, spent.clone());
                }
                return Err(Error::middleware(spent));
            }
            Err(Refused::Unavailable(why)) => return Err(Error::middleware(LayerError(why))),
        }
        let waited = Instant::now();
        if let Some(l) = &self.limiter {
            l.until_ready()
                .await
                .map_err(|e| Error::middleware(LayerError(e)))?;
        }
        if let Some(l) = &self.scoped {
            l.until_ready().await;
        }
        if self.limiter.is_some() || self.scoped.is_some() {
            add(
                &self.metrics.rate_wait_us,
                waited.elapsed().as_micros() as u64,
            );
        }
        let bearer = Zeroizing::new(format!("Bearer {}", token.secret().expose_secret()));
        let mut value = HeaderValue::from_str(&bearer).map_err(|_| {
            Error::middleware(LayerError(
                "the access token is not a valid header value".into(),
            ))
        })?;
        value.set_sensitive(true);
        req.headers_mut().insert(AUTHORIZATION, value);
        add(&self.metrics.requests, 1);
        let resp = match next.run(req, ext).await {
            Ok(r) => r,
            Err(e) => {
                add(&self.metrics.transport_errors, 1);
                return Err(e);
            }
        };
        let status = resp.status();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                add(&self.metrics.transport_errors, 1);
                return Err(Error::Reqwest(e));
            }
        };
        match status.as_u16() {
            401 => add(&self.metrics.unauthorized, 1),
            429 => add(&self.metrics.rate_limited, 1),
            s if s >= 500 => add(&self.metrics.server_errors, 1),
            _ => {}
        }
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        Ok(Response::from(rebuilt))
    }
}

impl AttemptLayer {
    /// Counts a read's timeout; once more than `timeout_retries` of them came in one call,
    /// ends the call with the last one (a 504 marked [`TimeoutsSpent`], or an error the
    /// retry layer does not retry).
    fn count_timeout(
        &self,
        trace: &CallTrace,
        result: Result<Response, Error>,
    ) -> Result<Response, Error> {
        let timed_out = contract::is_timeout(&result);
        trace.last_timed_out.store(timed_out, Ordering::Relaxed);
        if !timed_out || trace.timeouts.fetch_add(1, Ordering::Relaxed) < self.timeout_retries {
            return result;
        }
        match result {
            Ok(mut r) => {
                r.extensions_mut().insert(TimeoutsSpent);
                Ok(r)
            }
            Err(e) => Err(Error::middleware(LayerError(error_chain(&e)))),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for AttemptLayer {
    async fn handle(
        &self,
        req: Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let trace = ext.get::<Arc<CallTrace>>().cloned();
        if let Some(t) = &trace {
            if t.attempts.fetch_add(1, Ordering::Relaxed) > 0 {
                add(&self.metrics.retries, 1);
            }
            if let Some(nb) = t.take_not_before() {
                tokio::time::sleep_until(nb.into()).await;
            }
        }
        let read = contract::is_read(req.method());
        let again = req.try_clone();
        let token = self.token(trace.as_deref()).await?;
        let mut result = self.send_once(req, &token, ext, next.clone()).await;
        if let Ok(r) = &result
            && r.status().as_u16() == 401
            && let Some(again) = again
        {
            let first = trace
                .as_ref()
                .is_none_or(|t| !t.reauthenticated.swap(true, Ordering::Relaxed));
            if first {
                tracing::debug!(
                    "401 from the gateway: invalidating the token and sending once more"
                );
                self.tokens.invalidate(&token);
                let token = self.token(trace.as_deref()).await?;
                if let Some(t) = &trace {
                    t.attempts.fetch_add(1, Ordering::Relaxed);
                }
                result = self.send_once(again, &token, ext, next).await;
            }
        }
        if let (true, Some(t)) = (read, &trace) {
            result = self.count_timeout(t, result);
        }
        if let (Ok(r), Some(t)) = (&result, &trace) {
            let status = r.status().as_u16();
            if (status == 429 || status == 503)
                && let Some(wait) = r.headers().get(RETRY_AFTER).and_then(retry_after)
            {
                let at = Instant::now() + wait;
                if wait > self.max_retry_after || at > t.deadline {
                    let why = format!(
                        "HTTP {status} with Retry-After {} s, longer than the retry bound allows",
                        wait.as_secs()
                    );
                    CallTrace::set(&t.gave_up, why.clone());
                    return Err(Error::middleware(LayerError(why)));
                }
                tracing::debug!(
                    status,
                    wait_ms = wait.as_millis() as u64,
                    "honouring Retry-After"
                );
                CallTrace::set(&t.not_before, at);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_retry_after() {
        assert_eq!(
            retry_after(&HeaderValue::from_static("3")),
            Some(Duration::from_secs(3))
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(10));
        assert_eq!(
            retry_after(&HeaderValue::from_str(&past).unwrap()),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
    }
}
