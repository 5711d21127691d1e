//! A tenant's quota as this process sends to it, and the share of it a cluster leases to
//! this process.
//!
//! Alone, a process keeps to the whole quota ([`TenantQuota`] is then one `governor`
//! limiter at the quota's rate, as before). In a cluster (`ionport worker --coordinator`)
//! a [`QuotaBroker`] is set for the process: every tenant quota the process starts using
//! is handed to it, and sends nothing until the broker grants it a share
//! ([`TenantQuota::set_share`]); the broker leases shares from the coordinator so that the
//! shares of all workers of one tenant add up to at most its quota, and narrows or widens
//! this process's share as workers come and go. A share is lowered here before the lower
//! value is written to the coordinator, and raised only after the higher one was granted
//! there, so the sum stays within the quota at every moment.

use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::RateLimit;

/// One tenant's quota in this process, and this process's share of it.
pub struct TenantQuota {
    tenant: String,
    base: String,
    quota: RateLimit,
    /// The limiter at the current share, and that share (requests per `quota.per`);
    /// `None` while a broker has granted nothing yet.
    current: RwLock<Option<(f64, Arc<DefaultDirectRateLimiter>)>>,
}

impl std::fmt::Debug for TenantQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantQuota")
            .field("tenant", &self.tenant)
            .field("quota", &self.quota)
            .field("share", &self.share())
            .finish()
    }
}

/// How often a request waiting for a first share looks again.
const UNGRANTED_POLL: Duration = Duration::from_millis(25);

/// How long a request waits for a share before it fails: a broker that grants none for
/// this long has lost its coordinator, and a request waiting forever would keep its read
/// from ever ending.
pub const UNGRANTED_LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn limiter_at(quota: &RateLimit, share: f64) -> Option<DefaultDirectRateLimiter> {
    if share.is_nan() || share <= 0.0 {
        return None;
    }
    let effective = share * (1.0 - quota.headroom.clamp(0.0, 0.9));
    let interval = Duration::from_secs_f64(quota.per.as_secs_f64() / effective.max(1e-9));
    // The whole quota keeps the quota's burst; a share too small for it (by the rule of
    // `RateLimit::new`) sends one at a time.
    let whole = share >= f64::from(quota.requests);
    let burst = if whole || share * quota.headroom >= 2.0 {
        quota.burst.max(1)
    } else {
        1
    };
    let burst = NonZeroU32::new(burst)?;
    Quota::with_period(interval.max(Duration::from_nanos(1)))
        .map(|q| RateLimiter::direct(q.allow_burst(burst)))
}

impl TenantQuota {
    /// The quota of `tenant` at `base`; with `granted`, usable at once at the whole quota,
    /// else waiting for [`TenantQuota::set_share`].
    pub(crate) fn new(tenant: &str, base: &str, quota: RateLimit, granted: bool) -> Self {
        let q = Self {
            tenant: tenant.to_string(),
            base: base.to_string(),
            quota,
            current: RwLock::new(None),
        };
        if granted {
            q.set_share(f64::from(quota.requests));
        }
        q
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The API base (`iu/ti/`): what identifies the tenant across machines.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The tenant's whole quota, as the connection declared it.
    pub fn quota(&self) -> RateLimit {
        self.quota
    }

    /// This process's share: requests per [`RateLimit::per`] (`None`: none granted yet).
    pub fn share(&self) -> Option<f64> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(s, _)| *s)
    }

    /// Sets this process's share (requests per [`RateLimit::per`], at most the quota);
    /// 0 stops sending until a share is granted again.
    pub fn set_share(&self, requests: f64) {
        let requests = requests.clamp(0.0, f64::from(self.quota.requests));
        let mut g = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.as_ref()
            .is_some_and(|(s, _)| (*s - requests).abs() < 1e-9)
        {
            return;
        }
        *g = limiter_at(&self.quota, requests).map(|l| (requests, Arc::new(l)));
    }

    /// Waits for a cell of the current share's limiter (and first for a share, at most
    /// [`UNGRANTED_LIMIT`]: then an error saying so).
    pub(crate) async fn until_ready(&self) -> Result<(), String> {
        let since = std::time::Instant::now();
        loop {
            let current = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .map(|(_, l)| Arc::clone(l));
            match current {
                Some(l) => {
                    l.until_ready().await;
                    return Ok(());
                }
                None if since.elapsed() >= UNGRANTED_LIMIT => {
                    return Err(format!(
                        "no share of tenant {}'s quota was granted for {} s (the cluster's coordinator cannot be reached?); nothing was sent",
                        self.tenant,
                        UNGRANTED_LIMIT.as_secs()
                    ));
                }
                None => tokio::time::sleep(UNGRANTED_POLL).await,
            }
        }
    }
}

/// What leases this process its shares of tenants' quotas (`ionport-cluster`'s worker).
pub trait QuotaBroker: Send + Sync + std::fmt::Debug + 'static {
    /// The process started using `quota` (its first connection to the tenant opened): it
    /// sends nothing until a share is set. The broker keeps a `Weak` of it; once that no
    /// longer upgrades, the process stopped using the tenant and its share is free.
    fn joined(&self, quota: &Arc<TenantQuota>);
}

static BROKER: LazyLock<RwLock<Option<Arc<dyn QuotaBroker>>>> = LazyLock::new(RwLock::default);

/// Sets (or, with `None`, removes) the process's quota broker. Connections opened before
/// keep their tenant's quota as it was.
pub fn set_quota_broker(broker: Option<Arc<dyn QuotaBroker>>) {
    *BROKER
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = broker;
}

pub(crate) fn broker() -> Option<Arc<dyn QuotaBroker>> {
    BROKER
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_share_narrows_the_limiter_and_none_stops_it() {
        let q = TenantQuota::new("T", "b", RateLimit::new(100, Duration::from_secs(1)), false);
        assert_eq!(q.share(), None);
        q.set_share(250.0);
        assert_eq!(q.share(), Some(100.0), "at most the quota");
        q.set_share(10.0);
        assert_eq!(q.share(), Some(10.0));
        q.set_share(0.0);
        assert_eq!(q.share(), None);
    }
}
