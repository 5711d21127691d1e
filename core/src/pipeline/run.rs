//! Running a [`Plan`]: every selected task of every selected pipeline, concurrently within
//! each pipeline's bound, records and checkpoints committed together to the destination.
//!
//! A task's records are buffered from one checkpoint to the next and committed with it
//! ([`Destination::commit`]), so a crash at any point loses nothing and a rerun repeats at
//! most the uncommitted page — which the destination's upsert absorbs. A failing task
//! does not stop the others; the summary says which failed and why.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ionport_plugin_abi::wire::{
    ConnectionConfig, GatewayRequestHead, ReadRequest, ReadSummary, SyncMode,
};
use ionport_plugin_abi::{LogLevel, PluginError, RecordBatch, error_kind};
use serde_json::{Map, Value};

use super::load::{CredentialsPlan, PipelinePlan, Plan, TaskPlan};
use crate::connection::{
    Connection, ConnectionHost, ConnectionSettings, CredentialSource, RecordSink,
};
use crate::destination::{self, Destination, StreamSpec};
use crate::host::{HostCallbacks, HostResponse};
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
    /// Records committed.
    pub records: u64,
    /// Pages read (as the connector counts them).
    pub pages: u64,
    /// Gateway calls the task made.
    pub requests: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// Why it failed, when it did.
    pub error: Option<String>,
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
    /// Pipelines that could not start (connection or destination), with the reason.
    pub failed_pipelines: Vec<(String, String)>,
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
    /// A task ended.
    fn task_finished(&self, _outcome: &TaskOutcome) {}
    /// A log line from a plugin.
    fn plugin_log(&self, _pipeline: &str, _task: &str, _level: LogLevel, _message: &str) {}
}

/// An observer that reports nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl RunObserver for Quiet {}

/// Buffers a task's records between checkpoints and commits them with each checkpoint.
struct TaskSink {
    pipeline: String,
    spec: StreamSpec,
    destination: Arc<dyn Destination>,
    buffer: Mutex<Vec<Map<String, Value>>>,
    records: AtomicU64,
    commits: AtomicU64,
    last_state: Mutex<Option<Value>>,
    observer: Arc<dyn RunObserver>,
}

impl TaskSink {
    fn commit(&self, state: Value) -> Result<(), PluginError> {
        let mut buf = self
            .buffer
            .lock()
            .map_err(|_| PluginError::new(error_kind::HOST, "record buffer poisoned"))?;
        self.destination
            .commit(&self.spec, &buf, &state)
            .map_err(|e| PluginError::new(error_kind::HOST, e.to_string()))?;
        let n = self.records.fetch_add(buf.len() as u64, Ordering::SeqCst) + buf.len() as u64;
        buf.clear();
        let c = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut s) = self.last_state.lock() {
            *s = Some(state);
        }
        self.observer
            .task_progress(&self.pipeline, &self.spec.name, n, c);
        Ok(())
    }
}

impl RecordSink for TaskSink {
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        if batch.stream.as_str() != self.spec.name {
            return Err(PluginError::new(
                error_kind::INVALID_INPUT,
                format!(
                    "records of stream '{}' emitted while reading '{}'",
                    batch.stream, self.spec.name
                ),
            ));
        }
        let parsed = crate::read::parse_batch(&batch)?;
        self.buffer
            .lock()
            .map_err(|_| PluginError::new(error_kind::HOST, "record buffer poisoned"))?
            .extend(parsed);
        Ok(())
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        let state: Value = serde_json::from_str(state).map_err(|e| {
            PluginError::new(
                error_kind::INVALID_INPUT,
                format!("the checkpoint is not JSON: {e}"),
            )
        })?;
        self.commit(state)
    }
}

/// The host a task's plugin call gets: the connection's gateway, this task's sink, the
/// run's cancellation, and a request count.
struct TaskHost {
    pipeline: String,
    task: String,
    /// Stops at the run's [`Cancel`] (given to it with `with_cancel`).
    inner: ConnectionHost,
    requests: AtomicU64,
    observer: Arc<dyn RunObserver>,
}

impl HostCallbacks for TaskHost {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        HostCallbacks::gateway(&self.inner, head, body)
    }
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        self.inner.emit(batch)
    }
    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        self.inner.checkpoint(state)
    }
    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
    fn log(&self, plugin: &str, level: LogLevel, message: &str) {
        self.inner.log(plugin, level, message);
        self.observer
            .plugin_log(&self.pipeline, &self.task, level, message);
    }
}

fn stream_spec(t: &TaskPlan) -> StreamSpec {
    StreamSpec {
        name: t.spec.name.clone(),
        record_schema: t.spec.record_schema.clone(),
        primary_key: t.spec.primary_key.clone(),
        cursor_field: t.spec.cursor_field.clone(),
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
        match run_pipeline(p, tasks, opts, observer.clone(), cancel.clone()).await {
            Ok((outcomes, m)) => {
                summary.tasks.extend(outcomes);
                summary.http_requests += m.requests;
                summary.retries += m.retries;
                summary.unauthorized += m.unauthorized;
                summary.rate_limited += m.rate_limited;
            }
            Err(e) => summary.failed_pipelines.push((p.name.clone(), e)),
        }
    }
    summary
}

async fn run_pipeline(
    p: &PipelinePlan,
    tasks: Vec<TaskPlan>,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: Cancel,
) -> Result<(Vec<TaskOutcome>, crate::gateway::GatewayMetrics), String> {
    let dest = {
        let p = p.clone();
        tokio::task::spawn_blocking(move || open_destination(&p))
            .await
            .map_err(|e| e.to_string())??
    };
    let mut settings = opts.connection.clone();
    if let Some(q) = p.quota {
        settings.gateway.rate_limit = q.map(|(n, per)| crate::gateway::RateLimit::new(n, per));
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
    let semaphore = Arc::new(tokio::sync::Semaphore::new(p.concurrency));
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
        let host = ConnectionHost::new(
            tokio::runtime::Handle::current(),
            connection.gateway().clone(),
        );
        let p = p.clone();
        let full_refresh = opts.full_refresh;
        handles.push(tokio::task::spawn_blocking(move || {
            let outcome = run_task(&p, &t, dest, host, observer.clone(), cancel, full_refresh);
            observer.task_finished(&outcome);
            drop(permit);
            outcome
        }));
    }
    let mut outcomes = Vec::new();
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
    if let Err(e) = connection.shutdown().await {
        tracing::warn!(connection = %p.connection, "revoking the refresh token failed: {e}");
    }
    Ok((outcomes, metrics))
}

/// Drops a destination on a blocking thread: a Postgres client closes by blocking on its own
/// runtime, which panics on a tokio worker.
async fn release(dest: Arc<dyn Destination>) {
    let _ = tokio::task::spawn_blocking(move || drop(dest)).await;
}

fn run_task(
    p: &PipelinePlan,
    t: &TaskPlan,
    dest: Arc<dyn Destination>,
    host: ConnectionHost,
    observer: Arc<dyn RunObserver>,
    cancel: Cancel,
    full_refresh: bool,
) -> TaskOutcome {
    let started = Instant::now();
    let spec = stream_spec(t);
    let mode = if full_refresh {
        SyncMode::FullRefresh
    } else {
        t.sync_mode
    };
    let mut outcome = TaskOutcome {
        pipeline: p.name.clone(),
        task: t.spec.name.clone(),
        sync_mode: mode.as_str().into(),
        ..TaskOutcome::default()
    };
    observer.task_started(&p.name, &t.spec.name, mode);
    let result = (|| -> Result<ReadSummary, String> {
        dest.prepare(&spec).map_err(|e| e.to_string())?;
        let state = if full_refresh {
            None
        } else {
            dest.load_state(&spec.name).map_err(|e| e.to_string())?
        };
        let sink = Arc::new(TaskSink {
            pipeline: p.name.clone(),
            spec: spec.clone(),
            destination: dest.clone(),
            buffer: Mutex::new(Vec::new()),
            records: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            last_state: Mutex::new(state.clone()),
            observer: observer.clone(),
        });
        let task_host = Arc::new(TaskHost {
            pipeline: p.name.clone(),
            task: t.spec.name.clone(),
            inner: host.with_sink(sink.clone()).with_cancel(cancel),
            requests: AtomicU64::new(0),
            observer: observer.clone(),
        });
        let req = ReadRequest {
            connection: ConnectionConfig {
                settings: p.settings.clone(),
            },
            task: t.spec.name.clone(),
            sync_mode: mode,
            state,
            page_size: p.page_size,
            options: Value::Null,
        };
        let read = p.connector.read(task_host.clone(), &req);
        outcome.requests = task_host.requests.load(Ordering::Relaxed);
        let summary = read.map_err(|e| e.to_string())?;
        // Records after the last checkpoint: commit them with the final state.
        let pending = sink.buffer.lock().map(|b| !b.is_empty()).unwrap_or(false);
        if pending {
            let state = summary
                .state
                .clone()
                .or_else(|| sink.last_state.lock().ok().and_then(|s| s.clone()))
                .unwrap_or(Value::Null);
            sink.commit(state).map_err(|e| e.message.to_string())?;
        }
        dest.finish(&spec).map_err(|e| e.to_string())?;
        outcome.records = sink.records.load(Ordering::SeqCst);
        Ok(summary)
    })();
    match result {
        Ok(s) => outcome.pages = s.pages,
        Err(e) => outcome.error = Some(e),
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

/// The states of every stream of an environment's destination.
pub fn states(p: &PipelinePlan) -> Result<BTreeMap<String, Value>, String> {
    let d = open_destination(p)?;
    Ok(d.states().map_err(|e| e.to_string())?.into_iter().collect())
}
