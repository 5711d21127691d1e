//! One quota per tenant across the cluster: the worker's [`QuotaBroker`]. Every tenant
//! quota the worker's connections start using is handed to it by core (and sends nothing
//! until a share is set); with every heartbeat the worker leases its share of each from
//! the coordinator ([`crate::Coordinator::lease_quota`]): the quota divided among the live
//! workers that use the tenant, never more than what the others leave. A tenant no longer
//! used gives its share back; a worker that stops renewing stops sending (the watchdog
//! sets its shares to zero before its leases can lapse).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ionport_core::gateway::{QuotaBroker, TenantQuota};

use crate::{ClusterError, Coordinator};

/// The tenants this worker uses, and whether one joined since the last renewal.
/// The brokers of a process in the cluster, installed in core's gateway for as long as
/// this lives: its tenants' quotas leased in shares ([`QuotaLeases`]) and their daily
/// budgets reserved in blocks ([`crate::budget::CoordinatorBudget`]). Dropped on every way
/// out (an error included), so a process never keeps spending through a cluster it left.
#[derive(Debug)]
pub(crate) struct Brokers {
    /// The quota leases, renewed by the process's own loop.
    pub(crate) quota: Arc<QuotaLeases>,
}

impl Brokers {
    /// Installs the brokers of the coordinator at `url`, schema `schema`.
    pub(crate) fn install(url: &str, schema: &str) -> Self {
        let quota = Arc::new(QuotaLeases::default());
        ionport_core::gateway::set_quota_broker(Some(quota.clone()));
        ionport_core::gateway::set_budget_broker(Some(Arc::new(
            crate::budget::CoordinatorBudget::new(url, schema),
        )));
        Self { quota }
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        ionport_core::gateway::set_quota_broker(None);
        ionport_core::gateway::set_budget_broker(None);
    }
}

#[derive(Debug, Default)]
pub struct QuotaLeases {
    tenants: Mutex<Vec<Weak<TenantQuota>>>,
    joined: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl QuotaBroker for QuotaLeases {
    fn joined(&self, quota: &Arc<TenantQuota>) {
        lock(&self.tenants).push(Arc::downgrade(quota));
        self.joined.store(true, Ordering::Release);
    }
}

impl QuotaLeases {
    /// Whether a tenant joined since the last renewal (the heartbeat then renews at once:
    /// its requests wait for a share).
    pub fn has_joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    /// Leases this worker's share of every tenant it uses, and gives back those of
    /// tenants it no longer uses.
    pub fn renew(
        &self,
        coord: &mut Coordinator,
        worker: &str,
        lease: Duration,
    ) -> Result<(), ClusterError> {
        self.joined.store(false, Ordering::Release);
        // A tenant quota core dropped had its last connection closed: its row goes
        // with `release_quota_except`.
        let live: Vec<Arc<TenantQuota>> = {
            let mut tenants = lock(&self.tenants);
            tenants.retain(|w| w.strong_count() > 0);
            tenants.iter().filter_map(Weak::upgrade).collect()
        };
        let bases: Vec<String> = live.iter().map(|q| q.base().to_string()).collect();
        coord.release_quota_except(worker, &bases)?;
        for q in live {
            let current = q.share().unwrap_or(0.0);
            let quota = q.quota();
            let granted = coord.lease_quota(
                worker,
                q.base(),
                quota.requests,
                quota.per,
                current,
                lease,
                |lower| q.set_share(lower),
            )?;
            if granted > current {
                q.set_share(granted);
            }
        }
        Ok(())
    }

    /// Stops sending to every tenant (renewals failed: the shares may lapse and go to
    /// other workers).
    pub fn suspend(&self) {
        for q in lock(&self.tenants).iter().filter_map(Weak::upgrade) {
            q.set_share(0.0);
        }
    }
}
