//! A process that runs work of its own beside the workers — `ionport serve --coordinator`,
//! whose `POST /v1/runs` runs in the server — and shares with the cluster what its
//! workers share: the credentials' tokens ([`crate::tokens`]), the tenants' quotas
//! ([`crate::quota`]) and their daily budgets ([`crate::budget`]).
//!
//! [`ClusterMember::join`] sets this process's quota and budget brokers and starts a
//! renewal thread that leases the process's quota shares as a worker's heartbeat does (it
//! holds no units: the `workers` table does not list it; its shares appear under its id in
//! `quota_shares`). When no renewal succeeded for two thirds of a lease, its shares are set
//! to zero before they can lapse in the coordinator, as a worker's watchdog does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ionport_core::token::TokenStoreProvider;

use crate::quota::{Brokers, QuotaLeases};
use crate::tokens::CoordinatorTokens;
use crate::{ClusterError, Coordinator};

/// This process's membership; leaving (drop) gives its quota shares back.
#[derive(Debug)]
pub struct ClusterMember {
    id: String,
    tokens: Arc<CoordinatorTokens>,
    stop: Arc<AtomicBool>,
    renewals: Option<JoinHandle<()>>,
    /// The quota and budget brokers, removed from the gateway when the member leaves.
    _brokers: Brokers,
}

/// How long a share is leased without renewal (renewed every third of it).
pub const MEMBER_LEASE: Duration = Duration::from_secs(30);

impl ClusterMember {
    /// Joins the cluster of the coordinator at `url`, schema `schema`, as `id` (unique in
    /// the cluster: its quota shares are kept under it). Fails when the coordinator
    /// cannot be reached.
    pub fn join(url: &str, schema: &str, id: &str, lease: Duration) -> Result<Self, ClusterError> {
        // Checks the coordinator and creates or migrates its tables.
        let coord = Coordinator::connect_bounded(url, schema, Some(lease / 3))?;
        let brokers = Brokers::install(url, schema);
        let quota = brokers.quota.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let renewals = {
            let (url, schema, id, stop) = (
                url.to_string(),
                schema.to_string(),
                id.to_string(),
                stop.clone(),
            );
            std::thread::Builder::new()
                .name("ionport-cluster-member".into())
                .spawn(move || {
                    renew_loop(Some(coord), &url, &schema, &id, lease, &quota, &stop);
                })
                .map_err(|e| ClusterError::Db(format!("cannot start the renewal thread: {e}")))?
        };
        Ok(Self {
            id: id.to_string(),
            tokens: Arc::new(CoordinatorTokens::new(url, schema)),
            stop,
            renewals: Some(renewals),
            _brokers: brokers,
        })
    }

    /// The cluster's token store, for this process's connections
    /// (`TokenSettings::shared_store`).
    pub fn tokens(&self) -> Arc<dyn TokenStoreProvider> {
        self.tokens.clone()
    }

    /// This process's id in `quota_shares`.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for ClusterMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.renewals.take() {
            let _ = t.join();
        }
        // `_brokers` is dropped after this, once the renewals have stopped.
    }
}

/// Leases this process's shares every third of `lease` (at once when a tenant joins);
/// suspends them when no renewal succeeded for two thirds of it; gives them back on stop.
fn renew_loop(
    mut coord: Option<Coordinator>,
    url: &str,
    schema: &str,
    id: &str,
    lease: Duration,
    quota: &QuotaLeases,
    stop: &AtomicBool,
) {
    let every = (lease / 3).max(Duration::from_millis(50));
    let mut renewed = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if coord.is_none() {
            coord = Coordinator::connect_bounded(url, schema, Some(lease / 3)).ok();
        }
        let asked = Instant::now();
        if let Some(c) = coord.as_mut() {
            match quota.renew(c, id, lease) {
                Ok(()) => renewed = asked,
                Err(e) => {
                    tracing::warn!(target: "ionport::cluster", "quota shares not renewed: {e}");
                    coord = None;
                }
            }
        }
        let next = asked + every;
        loop {
            if renewed.elapsed() >= lease - lease / 3 {
                // The shares may lapse and go to others: nothing more is sent meanwhile.
                quota.suspend();
            }
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() || quota.has_joined() || stop.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
    if let Some(c) = coord.as_mut()
        && let Err(e) = c.release_quota_except(id, &[])
    {
        tracing::warn!(target: "ionport::cluster", "quota shares not given back (they lapse with their lease): {e}");
    }
}
