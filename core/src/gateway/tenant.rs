//! What the connections to one tenant share: its request quota per window and its daily
//! budget of API executions.
//!
//! The gateway counts a tenant's requests, not a connection's: two connections to one
//! tenant (two pipelines, a pipeline and the API server, two tasks with their own
//! connections) that each kept to the quota would still meet 429s together. So the
//! limiter is not the connection's own. Every [`super::GatewayClient`] of this process
//! that reaches one API base (`iu/ti`) with the same [`RateLimit`] takes its cells from
//! one `governor` limiter, found in a process-wide registry; two connections to one
//! tenant that declare different quotas cannot both be right, and get a warning.
//!
//! The daily budget (Infor publishes 250,000 API executions per tenant per day) is
//! counted per UTC day. Within a process the count is shared like the limiter; across
//! processes it is added up in a usage file, `<usage dir>/<tenant>.json`, when a usage
//! directory is set (the ionport home's `usage/`): each process adds what it sent since
//! its last visit, under a lock, every [`FLUSH_EVERY`] requests, every [`FLUSH_AFTER`]
//! and when its last connection to the tenant closes. So another process's requests are
//! seen late by at most that much; the budget's refusal is meant to come well before the
//! gateway's, not to the request.
//!
//! Nothing here holds a secret: the key is the API base (host and tenant id).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::RateLimit;
use super::day_shares::{self, Block, BudgetBroker};
use super::shares::TenantQuota;

/// A usage file is visited at least every this many requests of a process…
pub const FLUSH_EVERY: u64 = 200;
/// …and at least this often while requests are sent.
pub const FLUSH_AFTER: Duration = Duration::from_secs(5);

/// A tenant's budget of API executions per UTC day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyBudget {
    /// Requests allowed per UTC day (default 250,000, Infor's published limit).
    pub requests: u64,
    /// The share of the budget at which a warning is logged, once a day (default 0.8).
    pub warn_at: f64,
}

impl DailyBudget {
    /// Infor's published limit of API executions per tenant and day.
    pub const INFOR_DEFAULT: u64 = 250_000;

    /// `requests` per day, warned at 80%.
    pub fn new(requests: u64) -> Self {
        Self {
            requests,
            warn_at: 0.8,
        }
    }
}

impl Default for DailyBudget {
    fn default() -> Self {
        Self::new(Self::INFOR_DEFAULT)
    }
}

/// A daily budget is spent: nothing more of it is sent until the next UTC day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the daily budget of {what} of tenant {tenant} is spent: {used} of {limit} on {day} (UTC); \
     nothing more is sent until the budget resets at midnight UTC, in {resets_in_min} min \
     (raise `{setting}` if the tenant allows more)"
)]
pub struct BudgetSpent {
    /// What is counted: `API requests` or `service-account authentications`.
    pub what: &'static str,
    /// The setting that raises it.
    pub setting: &'static str,
    /// The tenant id.
    pub tenant: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Requests counted on that day, across the processes sharing the usage directory.
    pub used: u64,
    /// The budget.
    pub limit: u64,
    /// Minutes until the next UTC day.
    pub resets_in_min: u64,
}

/// What one tenant's budget looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BudgetUse {
    /// The tenant id.
    pub tenant: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Requests counted today (this process's, plus other processes' as last seen).
    pub used: u64,
    /// The budget, when there is one.
    pub limit: Option<u64>,
    /// What is left of it.
    pub left: Option<u64>,
}

/// The usage file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UsageFile {
    tenant: String,
    day: String,
    requests: u64,
}

#[derive(Debug)]
struct DayCount {
    day: String,
    /// Requests counted in the usage file at the last visit (every process's).
    seen: u64,
    /// This process's requests since the last visit.
    unsaved: u64,
    last_visit: Instant,
    warned: bool,
}

impl DayCount {
    fn new(day: String) -> Self {
        Self {
            day,
            seen: 0,
            unsaved: 0,
            last_visit: Instant::now(),
            warned: false,
        }
    }
}

/// What a day count counts, and the setting that bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Counted {
    pub what: &'static str,
    pub setting: &'static str,
}

/// The requests a tenant's API executions budget counts.
pub(crate) const API_REQUESTS: Counted = Counted {
    what: "API requests",
    setting: "daily_budget",
};

/// The grants a service account's authentication budget counts.
pub(crate) const AUTHENTICATIONS: Counted = Counted {
    what: "service-account authentications",
    setting: "auth_budget",
};

/// One tenant's shared day count (of API requests, or of a service account's
/// authentications).
#[derive(Debug)]
pub(crate) struct TenantUsage {
    tenant: String,
    base: String,
    counted: Counted,
    file: Option<PathBuf>,
    count: Mutex<DayCount>,
    /// In a cluster: the block of the day's budget reserved for this process
    /// ([`day_shares`]), and the one reservation under way.
    block: Mutex<Block>,
    reserving: tokio::sync::Mutex<()>,
}

/// Why a request was not counted.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The budget is spent.
    Spent(BudgetSpent),
    /// The cluster's count could not be asked: nothing is sent.
    Unavailable(String),
}

fn today() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect()
}

fn minutes_to_midnight() -> u64 {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (86_400 - secs % 86_400).div_ceil(60)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A file name for `tenant` at `base`: the tenant id's safe characters and a short hash of
/// the base, so that two hosts' tenants of one name do not share a count.
fn file_name(tenant: &str, base: &str) -> String {
    use sha2::Digest;
    let safe: String = tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let hash = sha2::Sha256::digest(base.as_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{safe}-{hex}.json")
}

impl TenantUsage {
    fn new(tenant: &str, base: &str, dir: Option<&Path>, counted: Counted) -> Self {
        let usage = Self {
            tenant: tenant.to_string(),
            base: base.to_string(),
            counted,
            file: dir.map(|d| d.join(file_name(tenant, base))),
            count: Mutex::new(DayCount::new(today())),
            block: Mutex::new(Block::default()),
            reserving: tokio::sync::Mutex::new(()),
        };
        usage.visit(&mut lock(&usage.count));
        usage
    }

    /// Counts one request like [`TenantUsage::take`]; in a cluster (a [`BudgetBroker`]
    /// set, a budget of API requests), first spends one of the requests reserved for this
    /// process from the cluster's count, reserving a block when none is left.
    pub async fn take_shared(&self, budget: Option<&DailyBudget>) -> Result<(), Refused> {
        self.take_through(budget, day_shares::broker()).await
    }

    async fn take_through(
        &self,
        budget: Option<&DailyBudget>,
        broker: Option<Arc<dyn BudgetBroker>>,
    ) -> Result<(), Refused> {
        let shared = budget.filter(|_| self.counted == API_REQUESTS);
        if let (Some(b), Some(broker)) = (shared, broker) {
            self.spend_reserved(b, broker).await?;
        }
        self.take(budget).map_err(Refused::Spent)
    }

    async fn spend_reserved(
        &self,
        budget: &DailyBudget,
        broker: Arc<dyn BudgetBroker>,
    ) -> Result<(), Refused> {
        let day = today();
        if lock(&self.block).spend(&day) {
            return Ok(());
        }
        // One reservation at a time per tenant: the requests waiting meanwhile spend the
        // block it brings.
        let _one = self.reserving.lock().await;
        if lock(&self.block).spend(&day) {
            return Ok(());
        }
        let (base, d, limit) = (self.base.clone(), day.clone(), budget.requests);
        let want = day_shares::block_size(limit);
        let asked = Arc::clone(&broker);
        let reserved = tokio::task::spawn_blocking(move || asked.reserve(&base, &d, limit, want))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|e| {
                Refused::Unavailable(format!(
                    "the daily budget of tenant {} could not be reserved from the cluster's coordinator ({e}); nothing was sent",
                    self.tenant
                ))
            })?;
        let mut block = lock(&self.block);
        if block.day != day {
            // A new UTC day: what is left of the old day's block goes back to it.
            let old = std::mem::take(&mut *block);
            day_shares::give_back_later(broker, self.base.clone(), old);
            block.day = day.clone();
        }
        block.cluster_used = reserved.used;
        block.left += reserved.granted;
        if !block.warned && reserved.used as f64 >= limit as f64 * budget.warn_at {
            block.warned = true;
            tracing::warn!(
                tenant = %self.tenant,
                used = reserved.used,
                limit,
                "{}% of the tenant's daily budget of {} is reserved across the cluster",
                (budget.warn_at * 100.0).round(),
                self.counted.what
            );
        }
        if block.spend(&day) {
            return Ok(());
        }
        Err(Refused::Spent(BudgetSpent {
            what: self.counted.what,
            setting: self.counted.setting,
            tenant: self.tenant.clone(),
            day,
            used: reserved.used,
            limit,
            resets_in_min: minutes_to_midnight(),
        }))
    }

    /// Counts one request, or refuses it when `budget` is spent.
    pub fn take(&self, budget: Option<&DailyBudget>) -> Result<(), BudgetSpent> {
        let mut c = lock(&self.count);
        let day = today();
        if c.day != day {
            // A new UTC day: what this process sent before midnight still goes to the old
            // day's file (the visit adds it there), then the count starts again.
            self.visit(&mut c);
            *c = DayCount::new(day);
            self.visit(&mut c);
        } else if c.unsaved >= FLUSH_EVERY || c.last_visit.elapsed() >= FLUSH_AFTER {
            self.visit(&mut c);
        }
        let used = c.seen + c.unsaved;
        if let Some(b) = budget {
            if used >= b.requests {
                return Err(BudgetSpent {
                    what: self.counted.what,
                    setting: self.counted.setting,
                    tenant: self.tenant.clone(),
                    day: c.day.clone(),
                    used,
                    limit: b.requests,
                    resets_in_min: minutes_to_midnight(),
                });
            }
            if !c.warned && (used + 1) as f64 >= b.requests as f64 * b.warn_at {
                c.warned = true;
                tracing::warn!(
                    tenant = %self.tenant,
                    used = used + 1,
                    limit = b.requests,
                    "{}% of the tenant's daily budget of {} is used",
                    (b.warn_at * 100.0).round(),
                    self.counted.what
                );
            }
        }
        c.unsaved += 1;
        Ok(())
    }

    /// The budget's use now, against `budget`.
    pub fn usage(&self, budget: Option<&DailyBudget>) -> BudgetUse {
        let c = lock(&self.count);
        let mut used = c.seen + c.unsaved;
        let block = lock(&self.block);
        if block.day == c.day {
            // In a cluster: every process's requests, as the last reservation saw them
            // (this process's unsent block not counted).
            used = used.max(block.cluster_used.saturating_sub(block.left));
        }
        BudgetUse {
            tenant: self.tenant.clone(),
            day: c.day.clone(),
            used,
            limit: budget.map(|b| b.requests),
            left: budget.map(|b| b.requests.saturating_sub(used)),
        }
    }

    /// Adds this process's unsaved count to the usage file and learns the total. Without
    /// a file, or when the file cannot be used, the count stays this process's own (and
    /// a warning says why: losing the shared count must not stop a run).
    fn visit(&self, c: &mut DayCount) {
        c.last_visit = Instant::now();
        let Some(file) = &self.file else {
            c.seen += std::mem::take(&mut c.unsaved);
            return;
        };
        match add_to_file(file, &self.tenant, &c.day, c.unsaved) {
            Ok(total) => {
                c.seen = total;
                c.unsaved = 0;
            }
            Err(e) => {
                tracing::warn!(
                    file = %file.display(),
                    "cannot update the tenant's usage file ({e}); counting this process's requests only"
                );
                c.seen += std::mem::take(&mut c.unsaved);
            }
        }
    }
}

impl Drop for TenantUsage {
    fn drop(&mut self) {
        // No connection to the tenant is left: what was reserved and not sent goes back.
        let block = std::mem::take(
            self.block
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if let Some(broker) = day_shares::broker() {
            day_shares::give_back_later(broker, self.base.clone(), block);
        }
        let count = self
            .count
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if count.unsaved > 0 {
            let mut last = std::mem::replace(count, DayCount::new(String::new()));
            self.visit(&mut last);
        }
    }
}

/// Adds `add` requests to `day` in `file` under an exclusive lock; the day's total.
/// A file of another day starts the count again; one that cannot be read is an error
/// (it is left as it is).
fn add_to_file(file: &Path, tenant: &str, day: &str, add: u64) -> std::io::Result<u64> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let lock_path = file.with_extension("lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    let mut lock = fd_lock::RwLock::new(lock_file);
    let _held = lock.write()?;
    let mut usage = match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice::<UsageFile>(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a usage file: {e}"),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => UsageFile::default(),
        Err(e) => return Err(e),
    };
    if usage.day != day {
        usage = UsageFile {
            tenant: tenant.to_string(),
            day: day.to_string(),
            requests: 0,
        };
    }
    usage.requests = usage.requests.saturating_add(add);
    if add > 0 {
        let bytes = serde_json::to_vec_pretty(&usage).map_err(std::io::Error::other)?;
        crate::atomic::write_atomic(file, &bytes)?;
    }
    Ok(usage.requests)
}

/// What a gateway client takes from its tenant: the shared limiter and the shared count.
#[derive(Debug, Clone)]
pub(crate) struct TenantShare {
    pub limiter: Option<Arc<TenantQuota>>,
    /// The client's scope's limiter to this tenant ([`super::ScopedLimit`]).
    pub scoped: Option<Arc<DefaultDirectRateLimiter>>,
    pub usage: Arc<TenantUsage>,
}

/// Scope, API base and limit → the limiter the clients of that scope share.
type ScopedRegistry = HashMap<(String, String, LimitKey), Weak<DefaultDirectRateLimiter>>;

static SCOPED: LazyLock<Mutex<ScopedRegistry>> = LazyLock::new(Mutex::default);

/// The limiter of `scope` to the tenant at `base` under `rl`, shared by every client of
/// this process with the same three.
pub(crate) fn share_scoped(
    scope: &str,
    base: &str,
    rl: &RateLimit,
) -> Option<Arc<DefaultDirectRateLimiter>> {
    let mut reg = lock(&SCOPED);
    let slot = (scope.to_string(), base.to_string(), LimitKey::from(rl));
    if let Some(l) = reg.get(&slot).and_then(Weak::upgrade) {
        return Some(l);
    }
    // A scope's limit is a quota of its own, whole in every process.
    let l = Arc::new(super::shares::limiter_at(rl, f64::from(rl.requests))?);
    reg.insert(slot, Arc::downgrade(&l));
    reg.retain(|_, w| w.strong_count() > 0);
    Some(l)
}

#[derive(Default)]
struct Registry {
    limiters: HashMap<(String, LimitKey), Weak<TenantQuota>>,
    /// The quota each tenant's limiters were made for, to warn about disagreement.
    declared: HashMap<String, LimitKey>,
    usage: HashMap<(String, Option<PathBuf>), Weak<TenantUsage>>,
}

/// A [`RateLimit`] as a map key (its float headroom in millionths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LimitKey {
    requests: u32,
    per_ms: u128,
    headroom_ppm: u64,
    burst: u32,
}

impl From<&RateLimit> for LimitKey {
    fn from(r: &RateLimit) -> Self {
        Self {
            requests: r.requests,
            per_ms: r.per.as_millis(),
            headroom_ppm: (r.headroom.clamp(0.0, 1.0) * 1e6) as u64,
            burst: r.burst,
        }
    }
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// The share of the tenant at `base` (named `tenant`) for a client limited to
/// `rate_limit`, counting into `usage_dir`.
pub(crate) fn share(
    tenant: &str,
    base: &str,
    rate_limit: Option<&RateLimit>,
    usage_dir: Option<&Path>,
) -> TenantShare {
    let mut reg = lock(&REGISTRY);
    let limiter = rate_limit.map(|rl| {
        let key = LimitKey::from(rl);
        match reg.declared.get(base) {
            Some(other) if *other != key => tracing::warn!(
                tenant,
                requests = rl.requests,
                per_s = rl.per.as_secs_f64(),
                "two connections to one tenant declare different quotas; each keeps to its own, so together they may exceed the tenant's"
            ),
            _ => {}
        }
        reg.declared.insert(base.to_string(), key);
        let slot = (base.to_string(), key);
        if let Some(l) = reg.limiters.get(&slot).and_then(Weak::upgrade) {
            return l;
        }
        // In a cluster, the broker leases this process its share of the quota.
        let broker = super::shares::broker();
        let l = Arc::new(TenantQuota::new(tenant, base, *rl, broker.is_none()));
        if let Some(b) = broker {
            b.joined(&l);
        }
        reg.limiters.insert(slot, Arc::downgrade(&l));
        l
    });
    let slot = (base.to_string(), usage_dir.map(Path::to_path_buf));
    let usage = match reg.usage.get(&slot).and_then(Weak::upgrade) {
        Some(u) => u,
        None => {
            let u = Arc::new(TenantUsage::new(tenant, base, usage_dir, API_REQUESTS));
            reg.usage.insert(slot, Arc::downgrade(&u));
            u
        }
    };
    reg.limiters.retain(|_, w| w.strong_count() > 0);
    reg.usage.retain(|_, w| w.strong_count() > 0);
    TenantShare {
        limiter,
        scoped: None,
        usage,
    }
}

/// A service account's authentication budget: at most `per_minute` grants in any minute
/// and `per_day` per UTC day (Infor publishes 20 and 1,000). Refresh grants are not
/// authentications and are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthBudget {
    /// Grants in any 60 s.
    pub per_minute: u32,
    /// Grants per UTC day.
    pub per_day: u64,
}

impl AuthBudget {
    /// Infor's published limits.
    pub const INFOR: Self = Self {
        per_minute: 20,
        per_day: 1_000,
    };

    /// The limiter: a bucket of half the minute's grants, refilled so that no window of
    /// 60 s sees more than `per_minute` (`burst + 60 s / period <= per_minute`).
    fn limiter(&self) -> Option<DefaultDirectRateLimiter> {
        let n = self.per_minute.max(1);
        let burst = (n / 2).max(1);
        let refill = (n - burst).max(1);
        let period = Duration::from_secs(60) / refill;
        let burst = NonZeroU32::new(burst)?;
        Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
    }
}

/// What the token managers of one service account share in this process.
#[derive(Debug, Clone)]
pub(crate) struct AuthShare {
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub usage: Arc<TenantUsage>,
}

#[derive(Default)]
struct AuthRegistry {
    limiters: HashMap<(String, u32), Weak<DefaultDirectRateLimiter>>,
    usage: HashMap<(String, Option<PathBuf>), Weak<TenantUsage>>,
}

static AUTH_REGISTRY: LazyLock<Mutex<AuthRegistry>> = LazyLock::new(Mutex::default);

/// The share of the service account `key` (never written anywhere as it is: file names
/// carry a hash of it) of `tenant`.
pub(crate) fn auth_share(
    tenant: &str,
    key: &str,
    budget: &AuthBudget,
    usage_dir: Option<&Path>,
) -> AuthShare {
    let mut reg = lock(&AUTH_REGISTRY);
    let slot = (key.to_string(), budget.per_minute);
    let limiter = match reg.limiters.get(&slot).and_then(Weak::upgrade) {
        Some(l) => Some(l),
        None => budget.limiter().map(|l| {
            let l = Arc::new(l);
            reg.limiters.insert(slot, Arc::downgrade(&l));
            l
        }),
    };
    let slot = (key.to_string(), usage_dir.map(Path::to_path_buf));
    let usage = match reg.usage.get(&slot).and_then(Weak::upgrade) {
        Some(u) => u,
        None => {
            let name = format!("{tenant}-auth");
            let u = Arc::new(TenantUsage::new(&name, key, usage_dir, AUTHENTICATIONS));
            reg.usage.insert(slot, Arc::downgrade(&u));
            u
        }
    };
    reg.limiters.retain(|_, w| w.strong_count() > 0);
    reg.usage.retain(|_, w| w.strong_count() > 0);
    AuthShare { limiter, usage }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn clients_of_one_tenant_and_quota_share_a_limiter() {
        let rl = RateLimit::new(1000, Duration::from_secs(60));
        let a = share("T", "https://h/T-share/", Some(&rl), None);
        let b = share("T", "https://h/T-share/", Some(&rl), None);
        let other = share("T", "https://other/T-share/", Some(&rl), None);
        assert!(Arc::ptr_eq(
            a.limiter.as_ref().unwrap(),
            b.limiter.as_ref().unwrap()
        ));
        assert!(!Arc::ptr_eq(
            a.limiter.as_ref().unwrap(),
            other.limiter.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(&a.usage, &b.usage));
    }

    #[test]
    fn a_scope_shares_one_limiter_per_tenant_and_others_have_their_own() {
        let rl = RateLimit::new(30, Duration::from_secs(60));
        let a = share_scoped("workspace:a", "https://h/T-scope/", &rl).unwrap();
        let a2 = share_scoped("workspace:a", "https://h/T-scope/", &rl).unwrap();
        let b = share_scoped("workspace:b", "https://h/T-scope/", &rl).unwrap();
        let other_tenant = share_scoped("workspace:a", "https://h/U-scope/", &rl).unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other_tenant));
        // One cell (the burst of 30 per minute is 1): the scope's next request waits,
        // another scope's does not.
        assert!(a.check().is_ok());
        assert!(a2.check().is_err());
        assert!(b.check().is_ok());
    }

    #[test]
    fn a_spent_budget_refuses_and_says_when_it_resets() {
        let u = share("T", "https://h/T-budget/", None, None).usage;
        let b = DailyBudget::new(3);
        for _ in 0..3 {
            u.take(Some(&b)).unwrap();
        }
        let e = u.take(Some(&b)).unwrap_err();
        assert_eq!((e.used, e.limit), (3, 3));
        assert!(
            e.to_string()
                .contains("daily budget of API requests of tenant T is spent"),
            "{e}"
        );
        assert_eq!(u.usage(Some(&b)).left, Some(0));
    }

    /// A cluster's count of one day, as a coordinator keeps it.
    #[derive(Debug, Default)]
    struct FakeCluster {
        used: Mutex<u64>,
        down: std::sync::atomic::AtomicBool,
    }

    impl BudgetBroker for FakeCluster {
        fn reserve(
            &self,
            _: &str,
            _: &str,
            limit: u64,
            want: u64,
        ) -> Result<day_shares::Reserved, String> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err("connection refused".into());
            }
            let mut used = lock(&self.used);
            let granted = want.min(limit.saturating_sub(*used));
            *used += granted;
            Ok(day_shares::Reserved {
                granted,
                used: *used,
            })
        }

        fn give_back(&self, _: &str, _: &str, unused: u64) -> Result<(), String> {
            let mut used = lock(&self.used);
            *used = used.saturating_sub(unused);
            Ok(())
        }
    }

    #[test]
    fn processes_of_a_cluster_send_at_most_the_budget_in_sum_and_nothing_without_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cluster = Arc::new(FakeCluster::default());
        let broker = || Some(Arc::clone(&cluster) as Arc<dyn BudgetBroker>);
        let budget = DailyBudget::new(250);
        // Three processes (three usages of one tenant, no shared file), blocks of 2.
        let machines: Vec<TenantUsage> = (0..3)
            .map(|_| TenantUsage::new("T", "https://h/T-cluster/", None, API_REQUESTS))
            .collect();
        let mut sent = 0;
        let mut refused = None;
        for i in 0..300 {
            match rt.block_on(machines[i % 3].take_through(Some(&budget), broker())) {
                Ok(()) => sent += 1,
                Err(Refused::Spent(e)) => refused = Some(e),
                Err(Refused::Unavailable(e)) => panic!("{e}"),
            }
        }
        assert_eq!(sent, 250, "the budget, in sum");
        let e = refused.unwrap();
        assert_eq!((e.used, e.limit), (250, 250));
        assert!(
            e.to_string()
                .contains("daily budget of API requests of tenant T is spent: 250 of 250"),
            "{e}"
        );
        // A coordinator that cannot be asked: nothing is sent, and the error says why.
        *lock(&cluster.used) = 0;
        cluster
            .down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let fresh = TenantUsage::new("T", "https://h/T-cluster/", None, API_REQUESTS);
        match rt.block_on(fresh.take_through(Some(&budget), broker())) {
            Err(Refused::Unavailable(e)) => assert!(
                e.contains("could not be reserved from the cluster's coordinator (connection refused); nothing was sent"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(fresh.usage(Some(&budget)).used, 0, "nothing counted");
    }

    #[test]
    fn processes_add_up_in_the_usage_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(file_name("T", "https://h/T/"));
        assert_eq!(add_to_file(&file, "T", &today(), 5).unwrap(), 5);
        assert_eq!(add_to_file(&file, "T", &today(), 7).unwrap(), 12);
        // Another day's count does not carry over.
        assert_eq!(add_to_file(&file, "T", "2000-01-01", 1).unwrap(), 1);
        std::fs::write(&file, b"not json").unwrap();
        assert!(add_to_file(&file, "T", &today(), 1).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"not json");
    }

    #[test]
    fn the_auth_limiter_lets_no_minute_see_more_than_its_grants() {
        for n in [1u32, 2, 3, 20, 21, 100] {
            let b = AuthBudget {
                per_minute: n,
                per_day: 1,
            };
            let burst = (n / 2).max(1);
            let refill = (n - burst).max(1);
            assert!(burst + refill <= n.max(2), "{n}: {burst} + {refill}");
            assert!(b.limiter().is_some());
        }
    }

    #[test]
    fn file_names_keep_to_safe_characters() {
        let n = file_name("../A B", "https://h/x/");
        assert!(n.starts_with("___A_B-"), "{n}");
        assert!(!n.contains('/'));
    }
}
