//! ionport's scale-out: any number of `ionport worker` processes share the pipelines
//! registered with one coordinator, a Postgres database (see `docs/scale-out.md`).
//!
//! - [`Coordinator`]: the coordinator's tables, in a schema of their own (created and
//!   migrated on first use), and every statement workers and `ionport cluster` run on them:
//!   registration ([`Coordinator::submit`]), schedule ticks fired once across the cluster
//!   ([`Coordinator::fire_due`]), claims under a lease ([`Coordinator::claim`]), lease
//!   renewal with the heartbeat ([`Coordinator::heartbeat`]), the end of a unit
//!   ([`Coordinator::finish`], [`Coordinator::hand_back`]) and [`Coordinator::status`];
//! - [`worker`]: the worker's loop — claim, run through core's `pipeline::run`, renew,
//!   hand back on shutdown;
//! - [`tokens`]: one token per credential across the cluster (core's token store kept in
//!   the coordinator, sealed under the vault key, requests under an advisory lock);
//! - [`quota`]: one quota per tenant across the cluster (shares leased to the workers
//!   that use the tenant, rebalanced with every heartbeat);
//! - [`budget`]: one daily budget per tenant across the cluster (blocks of the day's
//!   requests reserved from the coordinator, never past the budget);
//! - [`member`]: the same three for a process that runs work of its own beside the
//!   workers (`ionport serve --coordinator`).
//!
//! A unit of work is one task of one pipeline for one schedule tick — or one partition of
//! it, for a task read in partitions (`partitions = N`). Its checkpoints are
//! the destination's, committed with its records (core's invariant); the coordinator keeps
//! who runs what, leases and the run history — never records or states.
//!
//! What it is not: a second runner or read path (a unit runs through
//! `ionport_core::pipeline::run`), nor a consensus protocol: Postgres is the one source of
//! truth, its row locks and transaction-scoped advisory locks the only mutual exclusion.

pub mod budget;
mod coordinator;
pub mod member;
pub mod quota;
mod schema;
mod ticks;
pub mod tokens;
pub mod worker;

pub use coordinator::{
    Claimed, Coordinator, History, Outcome, PipelineRow, QuotaRow, Status, UnitRow, WorkerRow,
    destination_key, partition_writers,
};

/// What can go wrong talking to the coordinator or registering a pipeline file.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The coordinator's database refused or could not be reached.
    #[error("coordinator: {0}")]
    Db(String),
    /// The pipeline file did not validate (core's own loader's diagnostics).
    #[error("{0}")]
    Invalid(String),
    /// A schedule could not be computed.
    #[error("schedule of pipeline '{pipeline}': {message}")]
    Schedule {
        /// The pipeline.
        pipeline: String,
        /// Why.
        message: String,
    },
}

impl From<postgres::Error> for ClusterError {
    fn from(e: postgres::Error) -> Self {
        // A driver error may quote the URL; passwords are scrubbed by core's scrubber.
        ClusterError::Db(ionport_core::scrub::Scrubber::process().scrub(&e.to_string()))
    }
}

/// Checks a coordinator schema name: letters, digits and `_`, starting with a letter or
/// `_` (it is spliced into SQL as an identifier).
pub fn check_schema_name(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Invalid(format!(
            "coordinator schema {name:?}: expected letters, digits and `_` (at most 63), starting with a letter or `_`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_identifiers() {
        assert!(check_schema_name("ionport_cluster").is_ok());
        assert!(check_schema_name("_c1").is_ok());
        for bad in ["", "1abc", "a-b", "a\"b", "a;drop"] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }
}
