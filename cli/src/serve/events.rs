//! Run events for whoever listens outside the server: the run manager publishes a run's
//! start and end here (one call each, from `runs.rs`), and each sink (webhooks,
//! OpenLineage) turns them into its own messages. Publishing never waits: a sink only
//! queues (a bounded queue of its own) and sends from its own task, so a slow or failing
//! receiver cannot slow a run.

use std::sync::{Arc, Mutex};

use ionport_core::pipeline::Plan;
use serde::Serialize;
use utoipa::ToSchema;

use super::runs::{RunBudget, RunStatus, RunView};

/// A budget is reported (`run.budget_warning`) when at most this share of it is left.
pub const BUDGET_WARNING_SHARE: f64 = 0.1;

/// The kinds of run events a webhook can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub enum EventKind {
    /// The run began.
    #[serde(rename = "run.started")]
    Started,
    /// The run ended without failing (succeeded, or cancelled: see `run.status`).
    #[serde(rename = "run.finished")]
    Finished,
    /// The run failed (`run.error` says why).
    #[serde(rename = "run.failed")]
    Failed,
    /// A task's stream schema changed (`run.tasks[].schema_changes`).
    #[serde(rename = "run.schema_changed")]
    SchemaChanged,
    /// A tenant's daily budget is at most 10% from its end (`run.gateway.budgets`).
    #[serde(rename = "run.budget_warning")]
    BudgetWarning,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        Self::Started,
        Self::Finished,
        Self::Failed,
        Self::SchemaChanged,
        Self::BudgetWarning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "run.started",
            Self::Finished => "run.finished",
            Self::Failed => "run.failed",
            Self::SchemaChanged => "run.schema_changed",
            Self::BudgetWarning => "run.budget_warning",
        }
    }
}

/// What a sink hears. Implementations must return at once (queue, never send inline).
pub trait RunSink: Send + Sync + std::fmt::Debug {
    /// A run began; `plan` is what it runs (connections, tasks, destination).
    fn run_started(&self, view: &RunView, plan: &Plan);
    /// A run ended; `view` is its final record.
    fn run_ended(&self, view: &RunView);
}

/// The sinks of a server (none when neither webhooks nor lineage are set up).
#[derive(Debug, Default)]
pub struct RunEvents(Mutex<Vec<Arc<dyn RunSink>>>);

impl RunEvents {
    pub fn subscribe(&self, sink: Arc<dyn RunSink>) {
        if let Ok(mut s) = self.0.lock() {
            s.push(sink);
        }
    }

    fn sinks(&self) -> Vec<Arc<dyn RunSink>> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn started(&self, view: &RunView, plan: &Plan) {
        for s in self.sinks() {
            s.run_started(view, plan);
        }
    }

    pub fn ended(&self, view: &RunView) {
        for s in self.sinks() {
            s.run_ended(view);
        }
    }
}

/// The events a run's end gives: `run.finished` or `run.failed`, then
/// `run.schema_changed` when a task's schema changed and `run.budget_warning` when a
/// tenant's budget is nearly spent.
pub fn end_kinds(view: &RunView) -> Vec<EventKind> {
    kinds_of(
        view.status,
        view.tasks.iter().any(|t| !t.schema_changes.is_empty()),
        &view.gateway.budgets,
    )
}

fn kinds_of(status: RunStatus, schema_changed: bool, budgets: &[RunBudget]) -> Vec<EventKind> {
    let mut kinds = vec![if status == RunStatus::Failed {
        EventKind::Failed
    } else {
        EventKind::Finished
    }];
    if schema_changed {
        kinds.push(EventKind::SchemaChanged);
    }
    let low = |b: &RunBudget| match (b.limit, b.left) {
        (Some(limit), Some(left)) if limit > 0 => {
            (left as f64) <= (limit as f64) * BUDGET_WARNING_SHARE
        }
        _ => false,
    };
    if budgets.iter().any(low) {
        kinds.push(EventKind::BudgetWarning);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: Option<u64>, left: Option<u64>) -> RunBudget {
        RunBudget {
            tenant: "T".into(),
            day: "2026-12-07".into(),
            used: 0,
            limit,
            left,
        }
    }

    #[test]
    fn a_runs_end_gives_its_outcome_then_schema_changes_and_low_budgets() {
        use EventKind::*;
        assert_eq!(kinds_of(RunStatus::Succeeded, false, &[]), [Finished]);
        assert_eq!(kinds_of(RunStatus::Cancelled, false, &[]), [Finished]);
        assert_eq!(kinds_of(RunStatus::Failed, false, &[]), [Failed]);
        assert_eq!(
            kinds_of(RunStatus::Succeeded, true, &[]),
            [Finished, SchemaChanged]
        );
        // 10 of 100 left: a warning; 11 left, or no limit: none.
        let mut budgets = vec![budget(Some(100), Some(11)), budget(None, None)];
        assert_eq!(kinds_of(RunStatus::Failed, false, &budgets), [Failed]);
        budgets.push(budget(Some(100), Some(10)));
        assert_eq!(
            kinds_of(RunStatus::Failed, true, &budgets),
            [Failed, SchemaChanged, BudgetWarning]
        );
    }
}
