//! [`Recorder`]: core's own host services for one connection (`Connection::open` from an
//! `.ionapi` file, its `ConnectionHost`), with what a plugin call did recorded for
//! assertions. Every gateway call, retry rule and cancellation rule is core's: the recorder
//! only writes down the requests and log lines passing through, and keeps the records and
//! checkpoints a read emits (where a run would hand them to `read_task`'s handler).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ionport_core::connection::{
    Cancel, Connection, ConnectionHost, ConnectionSettings, CredentialSource,
};
use ionport_core::host::{HostCallbacks, HostResponse};
use ionport_plugin_abi::wire::GatewayRequestHead;
use ionport_plugin_abi::{LogLevel, PluginError, RecordBatch, error_kind};
use serde_json::Value;

/// What the host recorded of plugin calls since the last [`Recorder::take`].
#[derive(Debug, Default)]
pub struct Recorded {
    /// Records by stream, in emission order.
    pub records: Vec<(String, Value)>,
    /// Batches received.
    pub batches: u64,
    /// Checkpointed states, in order.
    pub checkpoints: Vec<Value>,
    /// Records emitted before each checkpoint (running total at that checkpoint).
    pub committed: Vec<u64>,
    /// `(method, path)` of each gateway request the plugin made (before core's retries).
    pub requests: Vec<(String, String)>,
    /// Log lines.
    pub logs: Vec<String>,
}

/// The sink core's host hands records and checkpoints to.
#[derive(Debug, Default)]
struct Sink {
    recorded: Mutex<Recorded>,
    records: AtomicU64,
    cancel_after_batches: AtomicU64,
    cancel: Mutex<Cancel>,
}

impl Sink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sink {
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        let stream = batch.stream.to_string();
        self.records.fetch_add(batch.count, Ordering::SeqCst);
        let mut rec = self.lock();
        rec.batches += 1;
        for line in batch.ndjson.as_slice().split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_slice(line).map_err(|e| {
                PluginError::new(error_kind::HOST, format!("a record is not JSON: {e}"))
            })?;
            rec.records.push((stream.clone(), v));
        }
        if rec.batches >= self.cancel_after_batches.load(Ordering::SeqCst)
            && let Ok(c) = self.cancel.lock()
        {
            c.cancel();
        }
        Ok(())
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        let v: Value = serde_json::from_str(state).map_err(|e| {
            PluginError::new(error_kind::HOST, format!("the state is not JSON: {e}"))
        })?;
        let n = self.records.load(Ordering::SeqCst);
        let mut rec = self.lock();
        rec.checkpoints.push(v);
        rec.committed.push(n);
        Ok(())
    }
}

/// Core's [`ConnectionHost`] with a recording sink. Build it with [`Recorder::open`] or
/// `Emulated::host`.
pub struct Recorder {
    connection: Connection,
    handle: tokio::runtime::Handle,
    sink: Arc<Sink>,
    host: Mutex<Arc<ConnectionHost>>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

/// Test settings: no client-side rate limit and short back-offs; the retry rules
/// (counts, which statuses, timeouts) are core's defaults.
pub fn test_settings() -> ConnectionSettings {
    let mut settings = ConnectionSettings::default();
    settings.gateway.rate_limit = None;
    settings.gateway.retry_min = Duration::from_millis(20);
    settings.gateway.retry_max = Duration::from_millis(200);
    settings
}

impl Recorder {
    /// Opens a connection from `ionapi` (written to an `.ionapi` file) with
    /// [`test_settings`], running its gateway calls on `handle`.
    pub fn open(handle: tokio::runtime::Handle, ionapi: &Value) -> Self {
        Self::open_with(handle, ionapi, test_settings())
    }

    /// The same with `settings`.
    pub fn open_with(
        handle: tokio::runtime::Handle,
        ionapi: &Value,
        settings: ConnectionSettings,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("emulator.ionapi");
        std::fs::write(&path, ionapi.to_string()).expect("the .ionapi file is written");
        // Connection::open starts the token keep-alive when inside a runtime.
        let connection = {
            let _entered = handle.enter();
            Connection::open(CredentialSource::IonApiFile(path), settings)
                .expect("the connection opens")
        };
        let sink = Arc::new(Sink {
            cancel_after_batches: AtomicU64::new(u64::MAX),
            ..Sink::default()
        });
        let recorder = Self {
            host: Mutex::new(Arc::new(connection.host(handle.clone()))),
            connection,
            handle,
            sink,
            _dir: dir,
        };
        recorder.renew();
        recorder
    }

    /// A fresh `ConnectionHost` with a fresh cancellation flag.
    fn renew(&self) {
        let cancel = Cancel::default();
        if let Ok(mut c) = self.sink.cancel.lock() {
            *c = cancel.clone();
        }
        let host = self
            .connection
            .host(self.handle.clone())
            .with_cancel(cancel);
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(host);
    }

    fn current(&self) -> Arc<ConnectionHost> {
        self.host.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The connection (its gateway client's metrics, its tokens).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Asks the plugin to stop once `n` batches arrived (core's cancellation: reads are
    /// refused from then on).
    pub fn cancel_after_batches(&self, n: u64) {
        self.sink.cancel_after_batches.store(n, Ordering::SeqCst);
    }

    /// Asks the plugin to stop now.
    pub fn cancel(&self) {
        self.current().cancel();
    }

    /// Takes what was recorded so far and starts afresh (a new host, not cancelled).
    pub fn take(&self) -> Recorded {
        self.sink
            .cancel_after_batches
            .store(u64::MAX, Ordering::SeqCst);
        self.sink.records.store(0, Ordering::SeqCst);
        let rec = std::mem::take(&mut *self.sink.lock());
        self.renew();
        rec
    }
}

impl HostCallbacks for Recorder {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.sink
            .lock()
            .requests
            .push((head.method.clone(), head.path.clone()));
        HostCallbacks::gateway(&*self.current(), head, body)
    }

    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        self.sink.emit(batch)
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        self.sink.checkpoint(state)
    }

    fn cancelled(&self) -> bool {
        HostCallbacks::cancelled(&*self.current())
    }

    fn log(&self, plugin: &str, level: LogLevel, message: &str) {
        self.sink.lock().logs.push(message.to_string());
        HostCallbacks::log(&*self.current(), plugin, level, message);
    }
}
