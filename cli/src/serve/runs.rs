//! The run manager: runs started through the API go through `pipeline::run` on the
//! server's runtime; their status lives in memory (a restart forgets them; the
//! destination's states and records stay). One run per connection at a time; a run
//! belongs to its connection's workspace and is found only from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ionport_core::pipeline::run::{Cancel, RunObserver, RunOptions, TaskCounts, TaskOutcome};
use ionport_core::pipeline::{self, Plan};
use ionport_plugin_sdk::SyncMode;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::now;
use super::metrics::{ConnectorLabels, Metrics, OutcomeLabels};

/// Finished runs kept in memory; older ones are forgotten first.
const KEEP_FINISHED: usize = 500;

/// Where a run or one of its tasks is: the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// As serialized: the `outcome` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One task of a run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskRunView {
    pub name: String,
    pub status: RunStatus,
    #[schema(schema_with = crate::serve::openapi::sync_mode_ref)]
    pub sync_mode: String,
    /// Records committed so far.
    pub records: u64,
    /// Checkpoints committed so far.
    pub commits: u64,
    /// Pages read: live as the connector hands them over (a plugin built for ABI 1.0
    /// reports none until the end), then the connector's own count.
    pub pages: u64,
    /// Gateway calls the task made (live while it reads).
    pub requests: u64,
    /// The host's retries of those calls (live while it reads): attempts after the first.
    pub retries: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the stream's schema changed since the destination's table was made, and what
    /// was done (the pipeline's `schema_changes`); left out when nothing changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<RunSchemaChange>,
    /// Rows marked deleted, for a task with `deletes = "soft"` (left out otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

/// A change of a task's stream schema and what was done about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunSchemaChange {
    /// The column (field).
    pub column: String,
    /// `added`, `type_changed` or `removed`.
    pub change: String,
    /// The destination's type before the run (absent for a new column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_type: Option<String>,
    /// The source's type now (absent for a column gone at the source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_type: Option<String>,
    /// `added_column`, `widened`, `kept`, `dropped` or `stopped`.
    pub action: String,
    /// The change and what was done, in words.
    pub message: String,
}

impl RunSchemaChange {
    fn of(c: &pipeline::SchemaChange) -> Self {
        RunSchemaChange {
            column: c.column.clone(),
            change: c.change.as_str().into(),
            old_type: c.old_type.clone(),
            new_type: c.new_type.clone(),
            action: c.action.as_str().into(),
            message: c.to_string(),
        }
    }
}

/// Gateway counters of a run: live while it goes (the connection's counters, reported
/// every quarter second by the reading tasks), final at its end.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RunGateway {
    pub requests: u64,
    pub retries: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Milliseconds the run's requests waited for their turn: the tenant's quota and the
    /// workspace's `requests_per_minute`.
    pub rate_limit_wait_ms: f64,
    /// The daily budget of the tenant(s) the run reached, as it stood at the end.
    pub budgets: Vec<RunBudget>,
}

/// A tenant's daily budget at the end of a run.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RunBudget {
    /// The tenant id.
    pub tenant: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Requests counted that day (every process sharing the home).
    pub used: u64,
    /// The budget, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// What is left of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<u64>,
}

/// A run's status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// The workspace it runs in.
    pub workspace: String,
    /// The connection it reads.
    pub connection: String,
    /// The pipeline, when it was started from the pipeline file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    pub status: RunStatus,
    pub full_refresh: bool,
    /// When it was asked for (seconds since the Unix epoch).
    pub created: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    /// Seconds it has run (so far).
    pub seconds: f64,
    /// Records committed over every task.
    pub records: u64,
    /// Checkpoints committed over every task.
    pub commits: u64,
    pub tasks: Vec<TaskRunView>,
    pub gateway: RunGateway,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct RunEntry {
    cancel: Cancel,
    began: Mutex<Option<Instant>>,
    view: Mutex<RunView>,
    /// Strings never to show (the connection's secrets), replaced in errors.
    secrets: super::Secrets,
}

impl RunEntry {
    pub fn view(&self) -> Option<RunView> {
        let mut v = self.view.lock().ok()?.clone();
        if v.finished.is_none()
            && let Some(b) = self.began.lock().ok().and_then(|b| *b)
        {
            v.seconds = b.elapsed().as_secs_f64();
        }
        Some(v)
    }

    /// The workspace it runs in.
    pub fn workspace(&self) -> String {
        self.view
            .lock()
            .map(|v| v.workspace.clone())
            .unwrap_or_default()
    }

    fn edit(&self, f: impl FnOnce(&mut RunView)) {
        if let Ok(mut v) = self.view.lock() {
            f(&mut v);
        }
    }

    /// The connection's secrets, and every token and credential of the process (the run's
    /// connection is opened inside `pipeline::run`, out of reach here).
    fn scrub(&self, s: &str) -> String {
        let own = ionport_core::form_values::mask_secrets(s, &self.secrets.0);
        ionport_core::scrub::Scrubber::process().scrub(&own)
    }
}

/// The run's entry, and the latest gateway counters of each pipeline's connection (a run
/// of a connection has one; summed into the run's `gateway` while it goes).
struct Observer(
    Arc<RunEntry>,
    Mutex<HashMap<String, ionport_core::gateway::GatewayMetrics>>,
);

impl RunObserver for Observer {
    fn task_started(&self, _pipeline: &str, task: &str, mode: SyncMode) {
        self.0.edit(|v| {
            v.status = RunStatus::Running;
            if let Some(t) = v.tasks.iter_mut().find(|t| t.name == task) {
                t.status = RunStatus::Running;
                t.sync_mode = mode.as_str().into();
            }
        });
    }

    fn task_progress(&self, _pipeline: &str, task: &str, records: u64, commits: u64) {
        self.0.edit(|v| {
            if let Some(t) = v.tasks.iter_mut().find(|t| t.name == task) {
                t.records = records;
                t.commits = commits;
            }
            v.records = v.tasks.iter().map(|t| t.records).sum();
            v.commits = v.tasks.iter().map(|t| t.commits).sum();
        });
    }

    fn gateway_progress(
        &self,
        pipeline: &str,
        _task: &str,
        gateway: &ionport_core::gateway::GatewayMetrics,
    ) {
        let Ok(mut by_pipeline) = self.1.lock() else {
            return;
        };
        by_pipeline.insert(pipeline.to_string(), gateway.clone());
        let sum = |f: fn(&ionport_core::gateway::GatewayMetrics) -> u64| {
            by_pipeline.values().map(f).sum::<u64>()
        };
        let (requests, retries, unauthorized, rate_limited) = (
            sum(|m| m.requests),
            sum(|m| m.retries),
            sum(|m| m.unauthorized),
            sum(|m| m.rate_limited),
        );
        let waited: f64 = by_pipeline.values().map(|m| m.rate_limit_wait_ms).sum();
        self.0.edit(|v| {
            // The run's end sets the final counters; a late report leaves them.
            if v.finished.is_none() {
                v.gateway.requests = requests;
                v.gateway.retries = retries;
                v.gateway.unauthorized = unauthorized;
                v.gateway.rate_limited = rate_limited;
                v.gateway.rate_limit_wait_ms = waited;
            }
        });
    }

    fn task_counts(&self, _pipeline: &str, task: &str, counts: TaskCounts) {
        self.0.edit(|v| {
            if let Some(t) = v.tasks.iter_mut().find(|t| t.name == task)
                && t.status == RunStatus::Running
            {
                t.requests = counts.requests;
                t.retries = counts.retries;
                t.pages = counts.pages;
            }
        });
    }

    fn task_finished(&self, o: &TaskOutcome) {
        let cancelled = self.0.cancel.is_cancelled();
        let error = o.error.as_deref().map(|e| self.0.scrub(e));
        self.0.edit(|v| {
            if let Some(t) = v.tasks.iter_mut().find(|t| t.name == o.task) {
                t.status = match (&error, cancelled) {
                    (None, _) => RunStatus::Succeeded,
                    (Some(_), true) => RunStatus::Cancelled,
                    (Some(_), false) => RunStatus::Failed,
                };
                t.records = o.records;
                // A finished read's own counts; a failed one keeps what was seen live.
                if o.error.is_none() {
                    t.pages = o.pages;
                    t.requests = o.requests;
                }
                t.retries = o.retries;
                t.seconds = o.seconds;
                t.error = error;
                t.schema_changes = o.schema_changes.iter().map(RunSchemaChange::of).collect();
                t.deleted = o.deleted;
            }
            v.records = v.tasks.iter().map(|t| t.records).sum();
            v.commits = v.tasks.iter().map(|t| t.commits).sum();
        });
    }
}

/// Why a run could not start.
#[derive(Debug)]
pub enum StartError {
    /// The connection already has a run going (its id).
    Busy(String),
    /// The workspace has its `max_concurrent_runs` (this many) going.
    Limit(u32),
}

/// Every run of this server.
#[derive(Debug, Default)]
pub struct RunManager {
    runs: Mutex<Vec<(String, Arc<RunEntry>)>>,
    /// (Workspace, connection name) → id of its run going.
    active: Mutex<HashMap<(String, String), String>>,
    /// Who hears of runs starting and ending (webhooks, OpenLineage).
    pub events: super::events::RunEvents,
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = (now() ^ u64::from(std::process::id())).to_le_bytes();
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("run_{hex}")
}

/// What a run is asked to do.
#[derive(Debug)]
pub struct RunRequest {
    pub plan: Plan,
    pub options: RunOptions,
    pub connection: String,
    /// The workspace of the connection (or `default`, for a pipeline of the file).
    pub workspace: String,
    /// The workspace's `max_concurrent_runs`, checked with the runs going.
    pub max_runs: Option<u32>,
    pub connector: String,
    pub pipeline: Option<String>,
    pub tasks: Vec<(String, String)>,
    pub secrets: super::Secrets,
}

impl RunManager {
    /// Starts a run on the current runtime and returns its first view (`queued`).
    pub fn start(
        self: &Arc<Self>,
        req: RunRequest,
        metrics: Arc<Metrics>,
    ) -> Result<RunView, StartError> {
        let id = new_id();
        {
            let Ok(mut active) = self.active.lock() else {
                return Err(StartError::Busy(String::new()));
            };
            let slot = (req.workspace.clone(), req.connection.clone());
            if let Some(other) = active.get(&slot) {
                return Err(StartError::Busy(other.clone()));
            }
            if let Some(max) = req.max_runs {
                let going = active.keys().filter(|(w, _)| *w == req.workspace).count();
                if going >= max as usize {
                    return Err(StartError::Limit(max));
                }
            }
            active.insert(slot, id.clone());
        }
        let view = RunView {
            id: id.clone(),
            workspace: req.workspace.clone(),
            connection: req.connection.clone(),
            pipeline: req.pipeline.clone(),
            status: RunStatus::Queued,
            full_refresh: req.options.full_refresh,
            created: now(),
            started: None,
            finished: None,
            seconds: 0.0,
            records: 0,
            commits: 0,
            tasks: req
                .tasks
                .iter()
                .map(|(name, mode)| TaskRunView {
                    name: name.clone(),
                    status: RunStatus::Queued,
                    sync_mode: if req.options.full_refresh {
                        "full_refresh".into()
                    } else {
                        mode.clone()
                    },
                    records: 0,
                    commits: 0,
                    pages: 0,
                    requests: 0,
                    retries: 0,
                    seconds: 0.0,
                    error: None,
                    schema_changes: Vec::new(),
                    deleted: None,
                })
                .collect(),
            gateway: RunGateway::default(),
            error: None,
        };
        let entry = Arc::new(RunEntry {
            cancel: Cancel::default(),
            began: Mutex::new(None),
            view: Mutex::new(view.clone()),
            secrets: req.secrets,
        });
        if let Ok(mut runs) = self.runs.lock() {
            runs.push((id.clone(), entry.clone()));
            let finished = runs
                .iter()
                .filter(|(_, e)| e.view().is_some_and(|v| v.finished.is_some()))
                .count();
            if finished > KEEP_FINISHED
                && let Some(pos) = runs
                    .iter()
                    .position(|(_, e)| e.view().is_some_and(|v| v.finished.is_some()))
            {
                runs.remove(pos);
            }
        }
        let manager = Arc::clone(self);
        let (plan, options, connection, connector) =
            (req.plan, req.options, req.connection, req.connector);
        let workspace = req.workspace;
        tokio::spawn(async move {
            if let Ok(mut b) = entry.began.lock() {
                *b = Some(Instant::now());
            }
            entry.edit(|v| v.started = Some(now()));
            if let Some(v) = entry.view() {
                manager.events.started(&v, &plan);
            }
            let began = Instant::now();
            let observer: Arc<dyn RunObserver> =
                Arc::new(Observer(entry.clone(), Mutex::default()));
            tracing::info!(run = %id, connection = %connection, "run started");
            let summary = pipeline::run(&plan, &options, observer, entry.cancel.clone()).await;
            let seconds = began.elapsed().as_secs_f64();
            let cancelled = entry.cancel.is_cancelled();
            let outcome = if cancelled {
                RunStatus::Cancelled
            } else if summary.ok() {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            };
            let mut problems: Vec<String> = summary
                .failed_pipelines
                .iter()
                .map(|(_, e)| entry.scrub(e))
                .collect();
            problems.extend(summary.tasks.iter().filter_map(|t| {
                t.error
                    .as_ref()
                    .map(|e| format!("{}: {}", t.task, entry.scrub(e)))
            }));
            let records: u64 = summary.tasks.iter().map(|t| t.records).sum();
            entry.edit(|v| {
                v.status = outcome;
                v.finished = Some(now());
                v.seconds = seconds;
                v.records = records;
                v.gateway = RunGateway {
                    requests: summary.http_requests,
                    retries: summary.retries,
                    unauthorized: summary.unauthorized,
                    rate_limited: summary.rate_limited,
                    rate_limit_wait_ms: summary.rate_limit_wait_ms,
                    budgets: summary
                        .budgets
                        .iter()
                        .map(|b| RunBudget {
                            tenant: b.tenant.clone(),
                            day: b.day.clone(),
                            used: b.used,
                            limit: b.limit,
                            left: b.left,
                        })
                        .collect(),
                };
                if !problems.is_empty() {
                    v.error = Some(problems.join("; "));
                }
                // Tasks that never started (a pipeline that could not open).
                for t in &mut v.tasks {
                    if matches!(t.status, RunStatus::Queued | RunStatus::Running) {
                        t.status = if cancelled {
                            RunStatus::Cancelled
                        } else {
                            RunStatus::Failed
                        };
                    }
                }
            });
            let l = ConnectorLabels {
                connector: connector.clone(),
            };
            metrics.records.get_or_create(&l).inc_by(records);
            metrics.gateway(
                &connector,
                summary.http_requests,
                summary.retries,
                summary.unauthorized,
                summary.rate_limited,
            );
            let o = OutcomeLabels {
                outcome: outcome.as_str().into(),
            };
            metrics.runs.get_or_create(&o).inc();
            for b in &summary.budgets {
                metrics.budget(b);
            }
            metrics.run_duration.get_or_create(&o).observe(seconds);
            tracing::info!(run = %id, outcome = outcome.as_str(), records, seconds, "run finished");
            if let Ok(mut active) = manager.active.lock() {
                active.remove(&(workspace, connection));
            }
            if let Some(v) = entry.view() {
                manager.events.ended(&v);
            }
        });
        Ok(view)
    }

    /// Run `id` of `workspace` (another workspace's run is none).
    pub fn get(&self, workspace: &str, id: &str) -> Option<Arc<RunEntry>> {
        self.runs
            .lock()
            .ok()?
            .iter()
            .find(|(i, e)| i == id && e.workspace() == workspace)
            .map(|(_, e)| e.clone())
    }

    /// Every run of `workspace`, newest first.
    pub fn list(&self, workspace: &str) -> Vec<RunView> {
        let Ok(runs) = self.runs.lock() else {
            return Vec::new();
        };
        runs.iter()
            .rev()
            .filter(|(_, e)| e.workspace() == workspace)
            .filter_map(|(_, e)| e.view())
            .collect()
    }

    /// Whether `connection` of `workspace` has a run going.
    pub fn busy(&self, workspace: &str, connection: &str) -> bool {
        self.active
            .lock()
            .map(|a| a.contains_key(&(workspace.to_string(), connection.to_string())))
            .unwrap_or(true)
    }

    /// How many runs of `workspace` are going.
    pub fn going(&self, workspace: &str) -> usize {
        self.active
            .lock()
            .map(|a| a.keys().filter(|(w, _)| w == workspace).count())
            .unwrap_or(0)
    }

    /// Asks a run to stop; false when it had already finished.
    pub fn cancel(&self, entry: &RunEntry) -> bool {
        let finished = entry.view().is_none_or(|v| v.finished.is_some());
        if !finished {
            entry.cancel.cancel();
        }
        !finished
    }

    /// Asks every run to stop.
    pub fn cancel_all(&self) {
        if let Ok(runs) = self.runs.lock() {
            for (_, e) in runs.iter() {
                e.cancel.cancel();
            }
        }
    }

    /// Waits until no run is going (or `limit` passed).
    pub async fn wait_idle(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit && self.active.lock().map(|a| !a.is_empty()).unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
