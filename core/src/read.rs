//! The one read path: every consumer reads a task through [`read_task`] — `ionport
//! run`/`daemon` and `serve` runs (the pipeline runner's destination handler), the Airbyte
//! and Singer commands, and embedding programs.
//!
//! [`read_task`] runs a plugin's `read` on a blocking thread with the connection's host
//! services ([`ConnectionHost`]: gateway, tokens, retries, cancellation), parses each
//! NDJSON batch the plugin emits and hands the records, the checkpoints and the plugin's
//! log lines to a [`ReadHandler`] — in the order the plugin produced them, so a checkpoint
//! always follows the records it covers. A destination is one such handler
//! (`pipeline::commit`); nothing else wires a plugin's read to a sink.
//!
//! Every read logs `read started` and `read finished` under the `ionport::read` target
//! (`--log ionport::read=debug`), which the tests use to see that a consumer took this
//! path.
//!
//! What it is not: a runner (no destination, no saved state; that is [`crate::pipeline`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
//! use ionport_core::plugin::PluginRegistry;
//! use ionport_core::read::{ReadHandler, read_task};
//! use ionport_core::pipeline::Cancel;
//! use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
//! use ionport_core::read::Records;
//! use serde_json::{Value, json};
//!
//! struct Print;
//! impl ReadHandler for Print {
//!     fn records(&self, stream: &str, records: Records) -> Result<(), String> {
//!         println!("{stream}: {} records", records.len());
//!         Ok(())
//!     }
//!     fn checkpoint(&self, stream: &str, state: Value) -> Result<(), String> {
//!         println!("{stream}: state {state}");
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = PluginRegistry::load_default();
//! let m3 = registry.get("infor-m3").ok_or("no M3 connector")?.clone();
//! let connection = Connection::open(
//!     CredentialSource::IonApiFile("tenant.ionapi".into()),
//!     ConnectionSettings::default(),
//! )?;
//! let request = ReadRequest {
//!     connection: ConnectionConfig { settings: json!({}) },
//!     task: "customers".into(),
//!     sync_mode: SyncMode::FullRefresh,
//!     state: None,
//!     page_size: None,
//!     pages_in_flight: None,
//!     options: Value::Null,
//!     columns: None,
//!     include_deleted: false,
//!     partition: None,
//! };
//! let outcome = read_task(&m3, &connection, request, Arc::new(Print), Cancel::default()).await?;
//! println!("{} records in {} pages", outcome.summary.records, outcome.summary.pages);
//! connection.shutdown().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ionport_plugin_abi::wire::{GatewayRequestHead, ReadRequest, ReadSummary};
use ionport_plugin_abi::{LogLevel, PluginError, RecordBatch, error_kind};
use serde_json::Value;

use crate::connection::Cancel;
use crate::connection::{Connection, ConnectionHost};
use crate::host::{HostCallbacks, HostResponse};
use crate::plugin::{CallError, LoadedPlugin};

mod columns;
mod records;
mod streams;
pub use columns::{ColumnError, narrow_spec, schema_columns, selected_columns, with_columns};
pub use records::{JsonRef, Record, Records, RecordsError};
pub use streams::{
    RESHAPES_STREAMS, StreamError, close_matches, discover, find_stream, is_stream_name,
    reshapes_streams, stream_names,
};

/// Receives what a task's read produces. Called on the plugin's blocking thread; an
/// `Err` stops the read (the plugin gets a `host` error and ends its call).
pub trait ReadHandler: Send + Sync + 'static {
    /// A batch of records of `stream`, parsed once ([`Records`]: no map per record).
    fn records(&self, stream: &str, records: Records) -> Result<(), String>;
    /// A checkpoint of `stream`: the state that covers every record handed over before.
    fn checkpoint(&self, stream: &str, state: Value) -> Result<(), String>;
    /// A log line of the plugin (it also goes to `tracing`). The default ignores it.
    fn log(&self, level: LogLevel, message: &str) {
        let _ = (level, message);
    }
    /// A gateway request the plugin is about to make (for recorders and progress). The
    /// default ignores it.
    fn request(&self, head: &GatewayRequestHead) {
        let _ = head;
    }
    /// A gateway call of the plugin's ended after `retries` retries by the host (only
    /// called when there were any): the attempts of the call after the first, counted
    /// by the gateway's attempt layer. The default ignores it.
    fn retries(&self, retries: u32) {
        let _ = retries;
    }
    /// The plugin reported `pages` more pages handed over (`FfiHost::progress`, ABI
    /// 1.1; a 1.0 plugin reports none). The default ignores it.
    fn pages(&self, pages: u64) {
        let _ = pages;
    }
}

/// One thing a read produced, for [`FnHandler`].
#[derive(Debug)]
pub enum ReadEvent<'a> {
    /// A batch of records.
    Records {
        /// The stream.
        stream: &'a str,
        /// The records, parsed ([`Records::to_maps`] gives maps).
        records: Records,
    },
    /// A checkpoint: the state covering every record handed over before it.
    Checkpoint {
        /// The stream.
        stream: &'a str,
        /// The state.
        state: Value,
    },
    /// A log line of the plugin.
    Log {
        /// Its level.
        level: LogLevel,
        /// The message.
        message: &'a str,
    },
}

/// A [`ReadHandler`] from one closure over [`ReadEvent`]s (an `Err` from a log event is
/// ignored).
pub struct FnHandler<F>(F);

impl<F> FnHandler<F>
where
    F: Fn(ReadEvent<'_>) -> Result<(), String> + Send + Sync + 'static,
{
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F> std::fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnHandler")
    }
}

impl<F> ReadHandler for FnHandler<F>
where
    F: Fn(ReadEvent<'_>) -> Result<(), String> + Send + Sync + 'static,
{
    fn records(&self, stream: &str, records: Records) -> Result<(), String> {
        (self.0)(ReadEvent::Records { stream, records })
    }
    fn checkpoint(&self, stream: &str, state: Value) -> Result<(), String> {
        (self.0)(ReadEvent::Checkpoint { stream, state })
    }
    fn log(&self, level: LogLevel, message: &str) {
        let _ = (self.0)(ReadEvent::Log { level, message });
    }
}

/// How a [`read_task`] ended.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    /// What the plugin reported.
    pub summary: ReadSummary,
    /// Records handed to the handler.
    pub records: u64,
    /// Checkpoints handed to the handler.
    pub checkpoints: u64,
    /// Gateway calls the plugin made.
    pub requests: u64,
    /// The host's retries of those calls (attempts after the first of each).
    pub retries: u64,
    /// Pages the plugin reported as it handed them over (0 from a 1.0 plugin, which
    /// cannot report; the plugin's own total is `summary.pages`).
    pub pages_reported: u64,
}

/// Why a [`read_task`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The plugin's call failed (the message says which part: gateway, auth, ...).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The blocking thread of the call did not finish.
    #[error("the read's thread failed: {0}")]
    Thread(String),
    /// A partition was asked of a task whose connector does not declare its reads
    /// partitionable: such a connector ignores the partition and would read the whole
    /// task once per partition.
    #[error(
        "task '{task}': partition {index} of {count} was asked, but the connector does not declare this task's reads partitionable; read it whole"
    )]
    NotPartitionable {
        /// The task.
        task: String,
        /// The partition asked for.
        index: u32,
        /// Of how many.
        count: u32,
    },
}

impl ReadError {
    /// The error's kind (`error_kind` strings: `auth`, `gateway`, `cancelled`, ...).
    pub fn kind(&self) -> &str {
        match self {
            Self::Call(e) => e.kind(),
            Self::Thread(_) => error_kind::HOST,
            Self::NotPartitionable { .. } => error_kind::INVALID_INPUT,
        }
    }
}

/// Runs `request` on `plugin` over `connection`, handing records, checkpoints and log
/// lines to `handler`. Stops between pages once `cancel` is set. Call it inside a tokio
/// runtime: the plugin runs on a blocking thread.
pub async fn read_task(
    plugin: &Arc<LoadedPlugin>,
    connection: &Connection,
    request: ReadRequest,
    handler: Arc<dyn ReadHandler>,
    cancel: Cancel,
) -> Result<ReadOutcome, ReadError> {
    // Checked here, not only where pipeline files are loaded, so that every consumer
    // (embedding, serve, the cluster) is kept from doubling records. A stream the
    // manifest does not list (a discovered one) is left to its connector's own check.
    if let Some(part) = request.partition
        && let Some(spec) = plugin.tasks().iter().find(|t| t.name == request.task)
        && !spec.partitionable()
    {
        return Err(ReadError::NotPartitionable {
            task: request.task.clone(),
            index: part.index,
            count: part.count,
        });
    }
    let host = Arc::new(ReadHost {
        inner: ConnectionHost::new(
            tokio::runtime::Handle::current(),
            connection.gateway().clone(),
        )
        .with_cancel(cancel),
        handler,
        requests: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        pages: AtomicU64::new(0),
        records: AtomicU64::new(0),
        checkpoints: AtomicU64::new(0),
        stream: request.task.clone(),
    });
    let connector = plugin.id().to_string();
    let task = request.task.clone();
    tracing::debug!(target: "ionport::read", %connector, %task, mode = request.sync_mode.as_str(), "read started");
    let plugin = plugin.clone();
    let h = host.clone();
    let result = tokio::task::spawn_blocking(move || plugin.read(h, &request))
        .await
        .map_err(|e| ReadError::Thread(e.to_string()))
        .and_then(|r| r.map_err(ReadError::from));
    let records = host.records.load(Ordering::SeqCst);
    let checkpoints = host.checkpoints.load(Ordering::SeqCst);
    let requests = host.requests.load(Ordering::SeqCst);
    let retries = host.retries.load(Ordering::SeqCst);
    let pages_reported = host.pages.load(Ordering::SeqCst);
    match &result {
        Ok(_) => {
            tracing::debug!(target: "ionport::read", %connector, %task, records, checkpoints, requests, retries, pages = pages_reported, "read finished")
        }
        Err(e) => {
            tracing::debug!(target: "ionport::read", %connector, %task, records, checkpoints, requests, retries, pages = pages_reported, kind = e.kind(), "read failed")
        }
    }
    Ok(ReadOutcome {
        summary: result?,
        records,
        checkpoints,
        requests,
        retries,
        pages_reported,
    })
}

/// Parses a batch's NDJSON into [`Records`]. Every line must be a JSON object. The
/// plugin's `count` is not used: it is only a hint, and never sizes an allocation.
pub fn parse_batch(batch: RecordBatch) -> Result<Records, PluginError> {
    let stream = batch.stream.as_str().to_string();
    Records::parse(&stream, batch.ndjson.into_vec())
        .map_err(|e| PluginError::new(error_kind::INVALID_INPUT, e.to_string()))
}

/// The host of a read: the connection's [`ConnectionHost`] for the gateway and
/// cancellation, the handler for what the plugin emits.
struct ReadHost {
    inner: ConnectionHost,
    handler: Arc<dyn ReadHandler>,
    requests: AtomicU64,
    /// The host's retries of the plugin's calls, from each call's attempt count.
    retries: AtomicU64,
    /// Pages the plugin reported handed over.
    pages: AtomicU64,
    records: AtomicU64,
    checkpoints: AtomicU64,
    stream: String,
}

impl HostCallbacks for ReadHost {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.handler.request(&head);
        let (result, attempts) = self.inner.gateway_counted(head, body);
        let retries = attempts.saturating_sub(1);
        if retries > 0 {
            self.retries
                .fetch_add(u64::from(retries), Ordering::Relaxed);
            self.handler.retries(retries);
        }
        result
    }

    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        if batch.stream.as_str() != self.stream {
            return Err(PluginError::new(
                error_kind::INVALID_INPUT,
                format!(
                    "records of stream '{}' emitted while reading '{}'",
                    batch.stream, self.stream
                ),
            ));
        }
        let records = parse_batch(batch)?;
        let n = records.len() as u64;
        self.handler
            .records(&self.stream, records)
            .map_err(|e| PluginError::new(error_kind::HOST, e))?;
        self.records.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        let state: Value = serde_json::from_str(state).map_err(|e| {
            PluginError::new(
                error_kind::INVALID_INPUT,
                format!("the checkpoint is not JSON: {e}"),
            )
        })?;
        self.handler
            .checkpoint(&self.stream, state)
            .map_err(|e| PluginError::new(error_kind::HOST, e))?;
        self.checkpoints.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }

    fn progress(&self, pages: u64) {
        self.pages.fetch_add(pages, Ordering::Relaxed);
        self.handler.pages(pages);
    }

    fn log(&self, plugin: &str, level: LogLevel, message: &str) {
        self.inner.log(plugin, level, message);
        self.handler.log(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(count: u64, ndjson: &str) -> RecordBatch {
        RecordBatch {
            stream: "s".into(),
            count,
            ndjson: ndjson.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn a_plugins_count_never_sizes_an_allocation() {
        // A count of u64::MAX would abort the host if it sized anything.
        let b = batch(u64::MAX, "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(parse_batch(b).unwrap().len(), 2);
        assert_eq!(parse_batch(batch(1, "{}\n{}\n{}\n")).unwrap().len(), 3);
    }

    #[test]
    fn a_line_that_is_not_an_object_is_an_error_naming_the_record() {
        let e = parse_batch(batch(2, "{\"a\":1}\n[1]\n")).unwrap_err();
        assert!(e.message.as_str().contains("record 1"), "{e:?}");
        assert_eq!(e.kind.as_str(), error_kind::INVALID_INPUT);
        let e = parse_batch(batch(1, "{\"a\":")).unwrap_err();
        assert!(e.message.as_str().contains("not JSON"), "{e:?}");
    }
}
