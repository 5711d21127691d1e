//! Running a [`Plan`]: every selected task of every selected pipeline, concurrently within
//! each pipeline's bound, records and checkpoints committed together to the destination.
//!
//! Each task is read through the one read path ([`read_task`]) into the destination's
//! handler ([`super::commit::CommitStage`]): records are buffered from one checkpoint to
//! the next and committed with it ([`Destination::commit`]) on a stage of their own, so a
//! crash at any point loses nothing and a rerun repeats at most the uncommitted pages —
//! which the destination's upsert absorbs. A failing task does not stop the others; the
//! summary says which failed, why, and what it had committed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ionport_plugin_abi::LogLevel;
use ionport_plugin_abi::wire::{ConnectionConfig, ReadPartition, ReadRequest, SyncMode, TaskSpec};
use serde_json::Value;

use super::commit::{CommitStage, TaskHandler};
use super::config::Deletes;
use super::deletes;
use super::load::{CredentialsPlan, PipelinePlan, Plan, TaskPlan};
use super::partition::{self, PartitionState};
use crate::connection::{Connection, ConnectionSettings, CredentialSource};
use crate::destination::{self, Destination, StreamSpec};
use crate::read::{self, read_task};
use crate::vault::Vault;

/// What to run, and how.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Only this task.
    pub task: Option<String>,
    /// Ignore saved states and read everything.
    pub full_refresh: bool,
    /// Only this partition of the selected task (a cluster's unit of work), its writer
    /// beside the other partitions' where the destination allows it
    /// ([`crate::destination::open_partition_writer`]). `None`: every partition of a
    /// partitioned task, one after the other.
    pub partition: Option<ReadPartition>,
    /// Settings of the connections (tokens, gateway).
    pub connection: ConnectionSettings,
}

pub use crate::connection::Cancel;

/// The outcome of one task.
#[derive(Debug, Clone, Default)]
pub struct TaskOutcome {
    /// Pipeline name.
    pub pipeline: String,
    /// Task name.
    pub task: String,
    /// `full_refresh` or `incremental`.
    pub sync_mode: String,
    /// Records committed (also when the task failed: what its checkpoints committed).
    pub records: u64,
    /// Checkpoints committed, each with the records before it.
    pub commits: u64,
    /// Pages read (as the connector counts them; 0 when the task failed).
    pub pages: u64,
    /// Gateway calls the task made.
    pub requests: u64,
    /// The host's retries of the task's gateway calls (attempts after the first of
    /// each), also when the task failed.
    pub retries: u64,
    /// Rows marked deleted, for a task with `deletes = "soft"` (`None` otherwise): by the
    /// keys-only pass after the sync, or records the source flagged deleted.
    pub deleted: Option<u64>,
    /// Seconds it took.
    pub seconds: f64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How the stream's schema changed since the destination's table was made, and what
    /// was done (`schema_changes`).
    pub schema_changes: Vec<super::drift::SchemaChange>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Every task, in the order they finished.
    pub tasks: Vec<TaskOutcome>,
    /// Gateway retries over all connections.
    pub retries: u64,
    /// Gateway HTTP requests over all connections (attempts, token calls excluded).
    pub http_requests: u64,
    /// 401 answers from the gateway over all connections.
    pub unauthorized: u64,
    /// 429 answers from the gateway over all connections.
    pub rate_limited: u64,
    /// Milliseconds requests waited for the client-side rate limits, over all connections.
    pub rate_limit_wait_ms: f64,
    /// Pipelines that could not start (connection or destination), with the reason.
    pub failed_pipelines: Vec<(String, String)>,
    /// The daily budget of each tenant the run reached, as it stood at the end.
    pub budgets: Vec<crate::gateway::BudgetUse>,
}

impl RunSummary {
    /// Whether every task and pipeline succeeded.
    pub fn ok(&self) -> bool {
        self.failed_pipelines.is_empty() && self.tasks.iter().all(|t| t.error.is_none())
    }
}

/// Progress of a run, for a terminal or a log.
pub trait RunObserver: Send + Sync {
    /// A task started.
    fn task_started(&self, _pipeline: &str, _task: &str, _mode: SyncMode) {}
    /// A task committed a checkpoint; `records` is its running total.
    fn task_progress(&self, _pipeline: &str, _task: &str, _records: u64, _commits: u64) {}
    /// The gateway counters of a task's connection while the task reads: every
    /// [`PROGRESS_TICK`], as they happen (retries included, with or without a commit).
    /// The tasks of a pipeline share one connection, so these are the connection's, not
    /// the task's alone; the task's own request count comes in its [`TaskOutcome`].
    fn gateway_progress(
        &self,
        _pipeline: &str,
        _task: &str,
        _gateway: &crate::gateway::GatewayMetrics,
    ) {
    }
    /// A task's own figures so far (its requests, their retries and the pages its
    /// connector handed over; unlike [`RunObserver::gateway_progress`], the task's alone):
    /// every [`PROGRESS_TICK`] while it reads, and once at its end.
    fn task_counts(&self, _pipeline: &str, _task: &str, _counts: TaskCounts) {}
    /// A task ended.
    fn task_finished(&self, _outcome: &TaskOutcome) {}
    /// A log line from a plugin.
    fn plugin_log(&self, _pipeline: &str, _task: &str, _level: LogLevel, _message: &str) {}
}

/// A task's own figures while it reads ([`RunObserver::task_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Gateway calls the plugin made.
    pub requests: u64,
    /// The host's retries of those calls (from each call's attempt count).
    pub retries: u64,
    /// Pages the connector reported handed over (`FfiHost::progress`; 0 from a plugin
    /// built for ABI 1.0, which cannot report them).
    pub pages: u64,
}

/// The counters behind [`TaskCounts`], written by the task's read handler.
#[derive(Debug, Default)]
pub(super) struct LiveCounts {
    pub(super) requests: std::sync::atomic::AtomicU64,
    pub(super) retries: std::sync::atomic::AtomicU64,
    pub(super) pages: std::sync::atomic::AtomicU64,
}

impl LiveCounts {
    fn snapshot(&self) -> TaskCounts {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        TaskCounts {
            requests: get(&self.requests),
            retries: get(&self.retries),
            pages: get(&self.pages),
        }
    }
}

/// How often a reading task reports its connection's gateway counters
/// ([`RunObserver::gateway_progress`]).
pub const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// An observer that reports nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl RunObserver for Quiet {}

fn stream_spec(spec: &TaskSpec) -> StreamSpec {
    StreamSpec {
        name: spec.name.clone(),
        record_schema: spec.record_schema.clone(),
        primary_key: spec.primary_key.clone(),
        cursor_field: spec.cursor_field.clone(),
    }
}

fn credential_source(p: &PipelinePlan) -> Result<CredentialSource, String> {
    Ok(match &p.credentials {
        CredentialsPlan::IonApi(path) => CredentialSource::IonApiFile(path.clone()),
        CredentialsPlan::Vault(name) => CredentialSource::Vault {
            vault: Arc::new(Vault::open_default().map_err(|e| e.to_string())?),
            name: name.clone(),
        },
    })
}

/// Opens the destination of a pipeline.
pub fn open_destination(p: &PipelinePlan) -> Result<Arc<dyn Destination>, String> {
    destination::open(&p.destination)
        .map(Arc::from)
        .map_err(|e| e.to_string())
}

/// Runs `plan` (as selected by `opts`) and returns the summary. Call it inside a tokio
/// runtime; plugin calls run on blocking threads.
pub async fn run(
    plan: &Plan,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: Cancel,
) -> RunSummary {
    let mut summary = RunSummary::default();
    for p in &plan.pipelines {
        if opts.pipeline.as_ref().is_some_and(|n| n != &p.name) {
            continue;
        }
        let tasks: Vec<TaskPlan> = p
            .tasks
            .iter()
            .filter(|t| opts.task.as_ref().is_none_or(|n| n == &t.spec.name))
            .cloned()
            .collect();
        if tasks.is_empty() {
            continue;
        }
        match run_pipeline(&plan.file, p, tasks, opts, observer.clone(), cancel.clone()).await {
            Ok((outcomes, m, budget)) => {
                summary.tasks.extend(outcomes);
                // One line per tenant: pipelines to one tenant share its count, the last
                // one to end saw the most of it.
                summary.budgets.retain(|b| b.tenant != budget.tenant);
                summary.budgets.push(budget);
                summary.http_requests += m.requests;
                summary.retries += m.retries;
                summary.unauthorized += m.unauthorized;
                summary.rate_limited += m.rate_limited;
                summary.rate_limit_wait_ms += m.rate_limit_wait_ms;
            }
            Err(e) => summary.failed_pipelines.push((p.name.clone(), e)),
        }
    }
    summary
}

async fn run_pipeline(
    file: &Path,
    p: &PipelinePlan,
    tasks: Vec<TaskPlan>,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: Cancel,
) -> Result<
    (
        Vec<TaskOutcome>,
        crate::gateway::GatewayMetrics,
        crate::gateway::BudgetUse,
    ),
    String,
> {
    // One partition's writer may share the destination with its other partitions'.
    let writer = match (&opts.task, opts.partition) {
        (Some(task), Some(part)) => Some(partition::state_key(task, part)),
        // A partition index means something only for one task: applied to every task of
        // the pipeline it would fail the unpartitioned ones with a misleading error.
        (None, Some(part)) => {
            return Err(format!(
                "pipeline '{}': partition {} of {} was asked without naming its task",
                p.name, part.index, part.count
            ));
        }
        (_, None) => None,
    };
    let dest = {
        let p = p.clone();
        tokio::task::spawn_blocking(move || match writer {
            Some(w) => destination::open_partition_writer(&p.destination, &w)
                .map(Arc::from)
                .map_err(|e| e.to_string()),
            None => open_destination(&p),
        })
        .await
        .map_err(|e| e.to_string())??
    };
    let mut settings = opts.connection.clone();
    if let Some(q) = p.quota {
        settings.gateway.rate_limit = q.map(|(n, per)| crate::gateway::RateLimit::new(n, per));
    }
    if let Some(b) = p.daily_budget {
        settings.gateway.daily_budget = b.map(crate::gateway::DailyBudget::new);
    }
    if let Some(t) = p.timeout {
        settings.gateway.timeout = t;
    }
    if settings.gateway.usage_dir.is_none() {
        // The tenants' daily counts live beside the vault, in the home every run of this
        // user shares.
        settings.gateway.usage_dir = crate::vault::default_home().ok().map(|h| h.join("usage"));
    }
    // The service account's authentications count too (Infor's published limits unless
    // the embedder set its own).
    match p.auth_budget {
        Some(b) => settings.token.auth_budget = b,
        None if settings.token.auth_budget.is_none() => {
            settings.token.auth_budget = Some(crate::token::AuthBudget::INFOR);
        }
        None => {}
    }
    if settings.token.usage_dir.is_none() {
        settings.token.usage_dir = settings.gateway.usage_dir.clone();
    }
    if let Some(n) = p.max_in_flight {
        settings.gateway.concurrency = n;
    }
    if let Some(n) = p.retries {
        settings.gateway.max_retries = n;
    }
    let connection = match credential_source(p).and_then(|source| {
        Connection::open(source, settings)
            .map_err(|e| format!("connection '{}': {e}", p.connection))
    }) {
        Ok(c) => c,
        Err(e) => {
            release(dest).await;
            return Err(e);
        }
    };
    let (tasks, mut outcomes) = resolve(file, p, tasks, &connection, cancel.clone()).await;
    for o in &outcomes {
        observer.task_finished(o);
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(p.concurrency));
    let connection = Arc::new(connection);
    let mut handles = Vec::new();
    for t in tasks {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let dest = dest.clone();
        let observer = observer.clone();
        let cancel = cancel.clone();
        let connection = connection.clone();
        let p = p.clone();
        let full_refresh = opts.full_refresh;
        let only = opts.partition;
        handles.push(tokio::spawn(async move {
            let outcome = match partitions_to_run(&p, &t, only) {
                Err(why) => TaskOutcome {
                    pipeline: p.name.clone(),
                    task: t.spec.name.clone(),
                    sync_mode: t.sync_mode.as_str().into(),
                    error: Some(why),
                    ..TaskOutcome::default()
                },
                Ok(None) => {
                    run_task(
                        &p,
                        &t,
                        dest,
                        &connection,
                        observer.clone(),
                        cancel,
                        full_refresh,
                        None,
                    )
                    .await
                }
                Ok(Some(parts)) => {
                    let mut total: Option<TaskOutcome> = None;
                    for part in parts {
                        let dest = Arc::new(PartitionState {
                            key: partition::state_key(&t.spec.name, part),
                            inner: dest.clone(),
                        });
                        let o = run_task(
                            &p,
                            &t,
                            dest,
                            &connection,
                            observer.clone(),
                            cancel.clone(),
                            full_refresh,
                            Some(part),
                        )
                        .await;
                        let failed = o.error.is_some();
                        total = Some(match total {
                            None => o,
                            Some(t) => add_partition(t, o),
                        });
                        if failed {
                            break;
                        }
                    }
                    total.unwrap_or_default()
                }
            };
            observer.task_finished(&outcome);
            drop(permit);
            outcome
        }));
    }
    for h in handles {
        match h.await {
            Ok(o) => outcomes.push(o),
            Err(e) => outcomes.push(TaskOutcome {
                pipeline: p.name.clone(),
                error: Some(format!("the task's thread failed: {e}")),
                ..TaskOutcome::default()
            }),
        }
    }
    release(dest).await;
    let metrics = connection.gateway().metrics();
    let budget = connection.gateway().budget();
    if let Err(e) = connection.shutdown().await {
        tracing::warn!(connection = %p.connection, "revoking the refresh token failed: {e}");
    }
    Ok((outcomes, metrics, budget))
}

/// The partitions of `t` to run, one after the other (`None`: the task whole), or why a
/// partition `only` the task no longer has cannot run (the file changed since the cluster
/// queued it).
fn partitions_to_run(
    p: &PipelinePlan,
    t: &TaskPlan,
    only: Option<ReadPartition>,
) -> Result<Option<Vec<ReadPartition>>, String> {
    match only {
        None if t.partitions <= 1 => Ok(None),
        None => Ok(Some(partition::all(t.partitions).collect())),
        Some(part) if part.count == t.partitions && part.index < part.count => Ok(Some(vec![part])),
        Some(part) => Err(format!(
            "pipeline '{}', task '{}': partition {} of {} was asked, but the task is read in {} \
             now (the file changed since); its next run reads it as the file says",
            p.name, t.spec.name, part.index, part.count, t.partitions
        )),
    }
}

/// One task's outcome from those of its partitions, read one after the other.
fn add_partition(mut total: TaskOutcome, o: TaskOutcome) -> TaskOutcome {
    total.records += o.records;
    total.commits += o.commits;
    total.pages += o.pages;
    total.requests += o.requests;
    total.retries += o.retries;
    total.seconds += o.seconds;
    total.error = total.error.or(o.error);
    total.schema_changes.extend(o.schema_changes);
    total
}

/// The tasks that can be read, and an outcome for each that cannot. Discovered streams (and
/// predefined tasks, when the settings reshape them: [`read::reshapes_streams`]) are
/// looked up in one `discover` and take its spec (a stream that does not exist, or is not
/// available, fails with close matches); every column selection is checked against the
/// stream's schema — before any task starts, so a mistake costs no reading.
async fn resolve(
    file: &Path,
    p: &PipelinePlan,
    tasks: Vec<TaskPlan>,
    connection: &Connection,
    cancel: Cancel,
) -> (Vec<TaskPlan>, Vec<TaskOutcome>) {
    let failed = |t: &TaskPlan, why: String| TaskOutcome {
        pipeline: p.name.clone(),
        task: t.spec.name.clone(),
        sync_mode: t.sync_mode.as_str().into(),
        error: Some(format!(
            "{}: pipeline '{}', task '{}': {why}",
            file.display(),
            p.name,
            t.spec.name
        )),
        ..TaskOutcome::default()
    };
    // Settings that reshape the predefined tasks (a form field marked so) make their specs
    // `discover`'s too.
    let reshaped = read::reshapes_streams(&p.connector, &p.settings);
    let discovery = if reshaped || tasks.iter().any(|t| t.discovered) {
        Some(
            read::discover(&p.connector, connection, p.settings.clone(), cancel)
                .await
                .map_err(|e| format!("discover failed, so the stream cannot be looked up: {e}")),
        )
    } else {
        None
    };
    let mut ready = Vec::new();
    let mut outcomes = Vec::new();
    for mut t in tasks {
        if t.discovered {
            let found = match &discovery {
                Some(Ok(d)) => read::find_stream(p.connector.id(), &d.streams, &t.spec.name)
                    .map(|s| s.spec.clone())
                    .map_err(|e| e.to_string()),
                Some(Err(e)) => Err(e.clone()),
                None => Err("no discovery ran".to_string()),
            };
            match found {
                Ok(spec) => {
                    if !spec.sync_modes.contains(&t.sync_mode) {
                        t.sync_mode = SyncMode::FullRefresh;
                    }
                    t.spec = spec;
                }
                Err(why) => {
                    outcomes.push(failed(&t, why));
                    continue;
                }
            }
        } else if reshaped {
            // Available or not, the read says why it fails; only the shape is needed here.
            let found = match &discovery {
                Some(Ok(d)) => Ok(d
                    .streams
                    .iter()
                    .find(|s| s.predefined && s.spec.name == t.spec.name)),
                Some(Err(e)) => Err(e.clone()),
                None => Err("no discovery ran".to_string()),
            };
            match found {
                Ok(Some(s)) => t.spec = s.spec.clone(),
                Ok(None) => {}
                Err(why) => {
                    outcomes.push(failed(&t, why));
                    continue;
                }
            }
        }
        if t.partitions > 1
            && let Err(e) = super::load::check_partitionable(&t.spec, t.sync_mode)
        {
            outcomes.push(failed(&t, format!("partitions: {e}")));
            continue;
        }
        if let Some(Err(e)) = t
            .columns
            .as_ref()
            .map(|cols| read::selected_columns(&t.spec, cols))
        {
            outcomes.push(failed(&t, format!("columns: {e}")));
            continue;
        }
        ready.push(t);
    }
    (ready, outcomes)
}

/// Drops a destination on a blocking thread: a Postgres client closes by blocking on its own
/// runtime, which panics on a tokio worker.
async fn release(dest: Arc<dyn Destination>) {
    let _ = tokio::task::spawn_blocking(move || drop(dest)).await;
}

/// Runs a blocking destination call off the async threads (a Postgres client blocks on a
/// runtime of its own).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the destination's thread failed: {e}"))?
}

#[allow(clippy::too_many_arguments)]
async fn run_task(
    p: &PipelinePlan,
    t: &TaskPlan,
    dest: Arc<dyn Destination>,
    connection: &Connection,
    observer: Arc<dyn RunObserver>,
    cancel: Cancel,
    full_refresh: bool,
    partition: Option<ReadPartition>,
) -> TaskOutcome {
    let started = Instant::now();
    let request = ReadRequest {
        connection: ConnectionConfig {
            settings: p.settings.clone(),
        },
        task: t.spec.name.clone(),
        sync_mode: t.sync_mode,
        state: None,
        page_size: p.page_size,
        pages_in_flight: p.pages_in_flight,
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition,
    };
    // `deletes = "soft"`: a source that flags deleted records is asked for them (and its
    // flag is always read); any other gets the keys-only pass after the sync.
    let soft = t.deletes == Deletes::Soft;
    let flag = t.spec.deleted_field().filter(|_| soft).map(str::to_string);
    let request = ReadRequest {
        include_deleted: flag.is_some(),
        ..request
    };
    let columns = match &flag {
        Some(f) => deletes::columns_with_flag(t.columns.as_deref(), Some(f)),
        None => t.columns.clone(),
    };
    // The destination receives the schema of what will arrive: the chosen columns only.
    let (request, narrowed) = match read::with_columns(request, &t.spec, columns.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            return TaskOutcome {
                pipeline: p.name.clone(),
                task: t.spec.name.clone(),
                error: Some(format!("columns: {e}")),
                ..TaskOutcome::default()
            };
        }
    };
    // The schema compared with the destination's, under the task's `schema_changes`.
    let applied = {
        let (dest, policy, pipeline, source) = (
            dest.clone(),
            t.schema_changes,
            p.name.clone(),
            t.spec.clone(),
        );
        tokio::task::spawn_blocking(move || {
            super::drift::apply(policy, &pipeline, &source, request, narrowed, dest.as_ref())
        })
        .await
    };
    let (request, narrowed, schema_changes) = match applied {
        Ok(Ok(a)) => (a.request, a.spec, a.changes),
        Ok(Err(stopped)) => {
            return TaskOutcome {
                pipeline: p.name.clone(),
                task: t.spec.name.clone(),
                sync_mode: t.sync_mode.as_str().into(),
                error: Some(stopped.message),
                schema_changes: stopped.changes,
                seconds: started.elapsed().as_secs_f64(),
                ..TaskOutcome::default()
            };
        }
        Err(e) => {
            return TaskOutcome {
                pipeline: p.name.clone(),
                task: t.spec.name.clone(),
                error: Some(format!("the destination's thread failed: {e}")),
                ..TaskOutcome::default()
            };
        }
    };
    let spec = if soft {
        deletes::with_deleted_at(stream_spec(&narrowed))
    } else {
        stream_spec(&narrowed)
    };
    let mode = if full_refresh {
        SyncMode::FullRefresh
    } else {
        t.sync_mode
    };
    let mut outcome = TaskOutcome {
        pipeline: p.name.clone(),
        task: t.spec.name.clone(),
        sync_mode: mode.as_str().into(),
        schema_changes,
        ..TaskOutcome::default()
    };
    observer.task_started(&p.name, &t.spec.name, mode);
    let prepared = {
        let (dest, spec) = (dest.clone(), spec.clone());
        blocking(move || {
            dest.prepare(&spec).map_err(|e| e.to_string())?;
            if full_refresh {
                Ok(None)
            } else {
                dest.load_state(&spec.name).map_err(|e| e.to_string())
            }
        })
        .await
    };
    let state = match prepared {
        Ok(s) => s,
        Err(e) => {
            outcome.error = Some(e);
            outcome.seconds = started.elapsed().as_secs_f64();
            return outcome;
        }
    };
    let progress = {
        let (observer, pipeline, task) = (observer.clone(), p.name.clone(), spec.name.clone());
        Box::new(move |records, commits| observer.task_progress(&pipeline, &task, records, commits))
    };
    // A field the schema lacks arriving mid-run is met under the task's `schema_changes`.
    let mid_run = Arc::new(super::drift::MidRun::new(
        dest.clone(),
        t.schema_changes,
        &p.name,
        spec.clone(),
    ));
    let stage = match CommitStage::start(spec.clone(), mid_run.clone(), state.clone(), progress) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    let counts = Arc::new(LiveCounts::default());
    let mut handler: Arc<dyn read::ReadHandler> = Arc::new(TaskHandler {
        stage: stage.clone(),
        pipeline: p.name.clone(),
        observer: observer.clone(),
        counts: counts.clone(),
    });
    let flagged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(flag) = &flag {
        handler = Arc::new(deletes::MarkFlagged {
            inner: handler,
            flag: flag.clone(),
            marked: flagged.clone(),
        });
    }
    let request = ReadRequest {
        sync_mode: mode,
        state,
        ..request
    };
    let keys_request = request.clone();
    // The connection's counters and the task's own requests while the read goes, then
    // once more at its end.
    let report_gateway = {
        let (observer, pipeline, task, gateway, counts) = (
            observer.clone(),
            p.name.clone(),
            spec.name.clone(),
            connection.gateway().clone(),
            counts.clone(),
        );
        move || {
            observer.gateway_progress(&pipeline, &task, &gateway.metrics());
            observer.task_counts(&pipeline, &task, counts.snapshot());
        }
    };
    let ticker = {
        let report = report_gateway.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROGRESS_TICK);
            loop {
                every.tick().await;
                report();
            }
        })
    };
    let read = read_task(&p.connector, connection, request, handler, cancel.clone()).await;
    ticker.abort();
    report_gateway();
    // Records after the last checkpoint are committed with the final state only when the
    // read succeeded; after a failure they have no checkpoint to go with.
    let final_state = read.as_ref().ok().and_then(|o| o.summary.state.clone());
    let finished = {
        let (stage, ok) = (stage.clone(), read.is_ok());
        blocking(move || stage.finish(ok, final_state)).await
    };
    let totals = stage.totals();
    outcome.records = totals.records;
    outcome.commits = totals.commits;
    outcome.retries = counts.snapshot().retries;
    outcome.error = match (read, finished) {
        // A failed commit is the cause; the plugin only saw its echo.
        (_, Err(e)) => Some(e),
        (Err(e), Ok(_)) => Some(e.to_string()),
        (Ok(o), Ok(_)) => {
            outcome.requests = o.requests;
            outcome.pages = o.summary.pages;
            // Through `mid_run`: the spec as evolved during the read (a file destination
            // writes its output with the columns added mid-run).
            let (dest, spec) = (mid_run.clone(), spec.clone());
            blocking(move || dest.finish(&spec).map_err(|e| e.to_string()))
                .await
                .err()
        }
    };
    outcome.schema_changes.extend(mid_run.changes());
    // What the commits marked: records the source flagged deleted (before any failure).
    if soft {
        outcome.deleted = Some(flagged.load(std::sync::atomic::Ordering::SeqCst));
    }
    if soft && flag.is_none() && outcome.error.is_none() {
        let pass = deletes::reconcile(
            &p.connector,
            connection,
            &keys_request,
            &t.spec,
            &mid_run.spec(),
            dest.clone(),
            cancel,
        )
        .await;
        match pass {
            Ok(n) => outcome.deleted = Some(n),
            Err(e) => outcome.error = Some(e),
        }
    }
    if let (Some(n), None) = (outcome.deleted, &outcome.error) {
        tracing::info!(pipeline = %p.name, task = %t.spec.name, deleted = n, "marked {n} rows deleted");
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

/// The states of every stream of an environment's destination.
pub fn states(p: &PipelinePlan) -> Result<BTreeMap<String, Value>, String> {
    let d = open_destination(p)?;
    Ok(d.states().map_err(|e| e.to_string())?.into_iter().collect())
}
