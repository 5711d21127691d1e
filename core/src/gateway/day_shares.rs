//! A tenant's daily budget shared by the processes of a cluster.
//!
//! Alone, a process counts its requests against the budget in the home's usage file
//! ([`super::tenant`]): the processes of one machine add up, those of N machines each keep
//! to the whole budget. In a cluster (`ionport worker` or `ionport serve` with
//! `--coordinator`) a [`BudgetBroker`] is set for the process: before a request is sent,
//! the process spends one of a block of requests the broker reserved for it from the
//! cluster's count of the tenant's UTC day; an empty block is refilled by a reservation
//! that never takes the cluster's count past the budget. So the requests the processes of
//! the cluster send to a tenant in a day add up to at most its budget: a process sends only
//! what it reserved, and the reservations add up to at most the budget. What a process
//! reserved and did not send is given back when it stops using the tenant.
//!
//! A broker that cannot be reached fails the request (nothing is sent): without the
//! cluster's count, sending could take the tenant past its budget.

use std::sync::{Arc, LazyLock, RwLock};

/// What a reservation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Requests granted to this process (0: the day's budget is spent).
    pub granted: u64,
    /// The cluster's reservations of the day after this one (what is used or promised).
    pub used: u64,
}

/// What reserves this process its blocks of tenants' daily budgets (`ionport-cluster`).
/// Its calls block (a database round trip): core makes them off the async threads.
pub trait BudgetBroker: Send + Sync + std::fmt::Debug + 'static {
    /// Reserves up to `want` requests of the tenant at `base` on the UTC `day`
    /// (`YYYY-MM-DD`) under a budget of `limit`: never more than leaves the cluster's
    /// count at most `limit`. An error: the broker cannot tell (nothing is to be sent).
    fn reserve(&self, base: &str, day: &str, limit: u64, want: u64) -> Result<Reserved, String>;

    /// Gives back `unused` requests reserved on `day` and never sent.
    fn give_back(&self, base: &str, day: &str, unused: u64) -> Result<(), String>;
}

static BROKER: LazyLock<RwLock<Option<Arc<dyn BudgetBroker>>>> = LazyLock::new(RwLock::default);

/// Sets (or, with `None`, removes) the process's budget broker. Tenants already in use
/// keep counting as they did.
pub fn set_budget_broker(broker: Option<Arc<dyn BudgetBroker>>) {
    *BROKER
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = broker;
}

pub(crate) fn broker() -> Option<Arc<dyn BudgetBroker>> {
    BROKER
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// How many requests one reservation asks for: a hundredth of the budget, between 1 and
/// 200 — one round trip to the coordinator per 200 requests at Infor's 250,000, and little
/// held back in other processes' blocks when the budget nears its end.
pub fn block_size(limit: u64) -> u64 {
    (limit / 100).clamp(1, 200)
}

/// This process's block of one tenant's day.
#[derive(Debug, Default)]
pub(crate) struct Block {
    pub day: String,
    /// Reserved and not yet sent.
    pub left: u64,
    /// The cluster's reservations as the last one saw them.
    pub cluster_used: u64,
    pub warned: bool,
}

impl Block {
    /// Spends one request of the block of `day`.
    pub fn spend(&mut self, day: &str) -> bool {
        if self.day == day && self.left > 0 {
            self.left -= 1;
            true
        } else {
            false
        }
    }
}

/// Gives a block's unsent requests back, on a thread of its own (the broker blocks, and
/// this runs where a connection is dropped, possibly on an async thread). A give-back
/// that fails leaves the requests counted: the budget is under-used, never exceeded.
pub(crate) fn give_back_later(broker: Arc<dyn BudgetBroker>, base: String, block: Block) {
    if block.left == 0 || block.day.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ionport-budget-give-back".into())
        .spawn(move || {
            if let Err(e) = broker.give_back(&base, &block.day, block.left) {
                tracing::debug!(error = %e, unused = block.left, "the unused reservation of the daily budget was not given back");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "the unused reservation of the daily budget was not given back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_spent_on_its_day_only() {
        let mut b = Block {
            day: "2026-01-01".into(),
            left: 2,
            ..Block::default()
        };
        assert!(!b.spend("2026-01-02"));
        assert!(b.spend("2026-01-01"));
        assert!(b.spend("2026-01-01"));
        assert!(!b.spend("2026-01-01"));
    }

    #[test]
    fn blocks_are_a_hundredth_of_the_budget_within_bounds() {
        assert_eq!(block_size(0), 1);
        assert_eq!(block_size(60), 1);
        assert_eq!(block_size(5_000), 50);
        assert_eq!(block_size(250_000), 200);
    }
}
