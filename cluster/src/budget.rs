//! One daily budget per tenant across the cluster: the [`BudgetBroker`] of workers and of
//! `ionport serve --coordinator`. A process reserves blocks of a tenant's requests of the
//! UTC day from the coordinator's `daily_budgets` row, under the row's lock, never taking
//! its count past the budget; it sends only what it reserved (core spends the block) and
//! gives back what it did not send when it stops using the tenant.
//!
//! A reservation that cannot reach the coordinator is an error: core then sends nothing
//! (fail closed — without the cluster's count a request could pass the budget).

use std::sync::Mutex;
use std::time::Duration;

use ionport_core::gateway::{BudgetBroker, Reserved};
use postgres::{Client, NoTls};

/// The coordinator's `daily_budgets` table as this process's budget broker.
pub struct CoordinatorBudget {
    url: String,
    schema: String,
    /// One session, opened on first use and again after a failure.
    session: Mutex<Option<Client>>,
}

impl std::fmt::Debug for CoordinatorBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("CoordinatorBudget")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Bounds connecting and an unanswered statement: a request waits at most this long for
/// its reservation before it fails.
const TIMEOUT: Duration = Duration::from_secs(10);

impl CoordinatorBudget {
    /// The budgets of the coordinator at `url`, schema `schema` (created by
    /// [`crate::Coordinator::connect`]).
    pub fn new(url: &str, schema: &str) -> Self {
        Self {
            url: url.to_string(),
            schema: schema.to_string(),
            session: Mutex::new(None),
        }
    }

    /// Runs `f` on the session; a failure closes it (the next call connects again).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        let scrub = |e: &dyn std::fmt::Display| {
            // A driver's message may quote the URL (and its password).
            ionport_core::scrub::Scrubber::process().scrub(&e.to_string())
        };
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if session.is_none() {
            let mut config: postgres::Config = self.url.parse().map_err(|e| scrub(&e))?;
            // A statement waiting on the budget row's lock (held by a process stopped
            // mid-transaction) must fail like an unreachable coordinator, not hang every
            // request to the tenant: the server bounds both the lock wait and the statement.
            let ms = TIMEOUT.as_millis();
            config
                .connect_timeout(TIMEOUT)
                .tcp_user_timeout(TIMEOUT)
                .options(&format!("-c lock_timeout={ms} -c statement_timeout={ms}"));
            *session = Some(config.connect(NoTls).map_err(|e| scrub(&e))?);
        }
        let quoted = format!("\"{}\"", self.schema);
        let r = match session.as_mut() {
            Some(c) => f(c, &quoted).map_err(|e| scrub(&e)),
            None => Err("no session".to_string()),
        };
        if r.is_err() {
            *session = None;
        }
        r
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl BudgetBroker for CoordinatorBudget {
    fn reserve(&self, base: &str, day: &str, limit: u64, want: u64) -> Result<Reserved, String> {
        let (limit, want) = (signed(limit), signed(want));
        self.with(|c, s| {
            let mut tx = c.transaction()?;
            tx.execute(
                &format!(
                    "INSERT INTO {s}.daily_budgets (tenant, day, budget, used) VALUES ($1, $2, $3, 0)
                     ON CONFLICT (tenant, day) DO NOTHING"
                ),
                &[&base, &day, &limit],
            )?;
            // The row's lock orders the reservations of every process of the cluster.
            let used: i64 = tx
                .query_one(
                    &format!(
                        "SELECT used FROM {s}.daily_budgets WHERE tenant = $1 AND day = $2 FOR UPDATE"
                    ),
                    &[&base, &day],
                )?
                .get(0);
            let granted = want.min((limit - used).max(0));
            let used: i64 = tx
                .query_one(
                    &format!(
                        "UPDATE {s}.daily_budgets SET used = used + $3, budget = $4, updated_at = now()
                         WHERE tenant = $1 AND day = $2 RETURNING used"
                    ),
                    &[&base, &day, &granted, &limit],
                )?
                .get(0);
            tx.commit()?;
            Ok(Reserved {
                granted: u64::try_from(granted).unwrap_or(0),
                used: u64::try_from(used).unwrap_or(0),
            })
        })
    }

    fn give_back(&self, base: &str, day: &str, unused: u64) -> Result<(), String> {
        let unused = signed(unused);
        self.with(|c, s| {
            c.execute(
                &format!(
                    "UPDATE {s}.daily_budgets SET used = GREATEST(used - $3, 0), updated_at = now()
                     WHERE tenant = $1 AND day = $2"
                ),
                &[&base, &day, &unused],
            )
            .map(drop)
        })
    }
}
