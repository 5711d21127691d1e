//! A test-support [`HostCallbacks`] that reaches a real gateway (the emulator) over HTTP:
//! a password-grant token from the `.ionapi` credentials, the bearer on every call, one
//! new token and one retry after a 401, and retries of reads on 429/502/503 and transport
//! failures (resets, cut bodies). A 504 goes back to the plugin (it shrinks its pages).
//! Emitted records, checkpoints and requests are recorded for assertions; cancellation can
//! be triggered after a number of batches. Requests still go out after cancellation, so
//! that a plugin can clean up (cancel a running Compass job); the plugin checks
//! `cancelled()` between pages.
//!
//! Stand-in until core's gateway-backed host services are used by these tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ionport_core::host::{HostCallbacks, HostResponse};
use ionport_plugin_abi::wire::GatewayRequestHead;
use ionport_plugin_abi::{PluginError, RecordBatch, error_kind};
use serde_json::Value;

/// What the host recorded of one plugin call.
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
    /// `(method, path)` of each gateway request the plugin made.
    pub requests: Vec<(String, String)>,
    /// Log lines.
    pub logs: Vec<String>,
}

/// The test host. Build it with [`GatewayHost::new`] from an `.ionapi` JSON object.
#[derive(Debug)]
pub struct GatewayHost {
    rt: tokio::runtime::Handle,
    client: reqwest::Client,
    api_base: String,
    token_url: String,
    ionapi: Value,
    token: Mutex<Option<String>>,
    cancelled: AtomicBool,
    cancel_after_batches: AtomicU64,
    /// Keep records in memory (off for benchmarks).
    keep_records: bool,
    /// Everything recorded.
    pub recorded: Mutex<Recorded>,
    /// Records received (also when not kept).
    pub record_count: AtomicU64,
    /// HTTP requests sent (retries and token requests included).
    pub http_requests: AtomicU64,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl GatewayHost {
    /// A host for the tenant of `ionapi` (keys `iu`, `ti`, `pu`, `ot`, `ci`, `cs`, `saak`,
    /// `sask`), running its HTTP on `rt`.
    pub fn new(rt: tokio::runtime::Handle, ionapi: Value) -> Self {
        let api_base = format!(
            "{}/{}",
            s(&ionapi, "iu").trim_end_matches('/'),
            s(&ionapi, "ti")
        );
        let token_url = format!("{}{}", s(&ionapi, "pu"), s(&ionapi, "ot"));
        Self {
            rt,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
            api_base,
            token_url,
            ionapi,
            token: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            cancel_after_batches: AtomicU64::new(u64::MAX),
            keep_records: true,
            recorded: Mutex::new(Recorded::default()),
            record_count: AtomicU64::new(0),
            http_requests: AtomicU64::new(0),
        }
    }

    /// Counts records without keeping them (benchmarks).
    pub fn discard_records(mut self) -> Self {
        self.keep_records = false;
        self
    }

    /// Asks the plugin to stop once `n` batches arrived.
    pub fn cancel_after_batches(&self, n: u64) {
        self.cancel_after_batches.store(n, Ordering::SeqCst);
    }

    /// Asks the plugin to stop now.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Takes what was recorded so far, leaving an empty record (and clears cancellation and
    /// the record count).
    pub fn take(&self) -> Recorded {
        self.cancelled.store(false, Ordering::SeqCst);
        self.cancel_after_batches.store(u64::MAX, Ordering::SeqCst);
        self.record_count.store(0, Ordering::SeqCst);
        std::mem::take(&mut *self.recorded.lock().expect("recorded lock"))
    }

    fn fetch_token(&self) -> Result<String, PluginError> {
        let i = &self.ionapi;
        let form = [
            ("grant_type", "password".to_string()),
            ("username", s(i, "saak")),
            ("password", s(i, "sask")),
            ("client_id", s(i, "ci")),
            ("client_secret", s(i, "cs")),
        ];
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        let (status, body) = self
            .rt
            .block_on(async {
                let r = self.client.post(&self.token_url).form(&form).send().await?;
                let status = r.status().as_u16();
                let body = r.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .map_err(|e| {
                PluginError::new(
                    error_kind::GATEWAY,
                    format!("token endpoint unreachable: {e}"),
                )
            })?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != 200 {
            return Err(PluginError::new(
                error_kind::AUTH,
                format!(
                    "the token endpoint refused the credentials: HTTP {status} {} {}",
                    s(&v, "error"),
                    s(&v, "error_description")
                ),
            ));
        }
        let t = s(&v, "access_token");
        if t.is_empty() {
            return Err(PluginError::new(
                error_kind::AUTH,
                "no access_token in the token response",
            ));
        }
        Ok(t)
    }

    fn bearer(&self, renew: bool) -> Result<String, PluginError> {
        let mut guard = self.token.lock().expect("token lock");
        if renew || guard.is_none() {
            *guard = Some(self.fetch_token()?);
        }
        Ok(guard.clone().unwrap_or_default())
    }

    fn send_once(
        &self,
        head: &GatewayRequestHead,
        body: &[u8],
        token: &str,
    ) -> Result<HostResponse, String> {
        let url = format!("{}/{}", self.api_base, head.path.trim_start_matches('/'));
        let method =
            reqwest::Method::from_bytes(head.method.as_bytes()).map_err(|e| e.to_string())?;
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        self.rt.block_on(async {
            let mut rb = self
                .client
                .request(method, &url)
                .query(&head.query)
                .bearer_auth(token);
            for (k, v) in &head.headers {
                rb = rb.header(k, v);
            }
            if let Some(t) = head.timeout_secs {
                rb = rb.timeout(Duration::from_secs(t));
            }
            let resp = rb
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("reading the body: {e:?}"))?;
            Ok(HostResponse {
                status,
                headers,
                body: body.to_vec(),
            })
        })
    }
}

impl HostCallbacks for GatewayHost {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        self.recorded
            .lock()
            .expect("recorded lock")
            .requests
            .push((head.method.clone(), head.path.clone()));
        let read = head.method.eq_ignore_ascii_case("GET");
        let mut token = self.bearer(false)?;
        let mut renewed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.send_once(&head, &body, &token) {
                Ok(r) if r.status == 401 && !renewed => {
                    renewed = true;
                    token = self.bearer(true)?;
                }
                Ok(r) if read && matches!(r.status, 429 | 502 | 503) && attempt < 6 => {
                    let wait = r
                        .headers
                        .iter()
                        .find(|(k, _)| k == "retry-after")
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                        .map_or(Duration::from_millis(10 << attempt), Duration::from_secs);
                    std::thread::sleep(wait.min(Duration::from_secs(2)));
                }
                Ok(r) => return Ok(r),
                Err(e) if read && attempt < 6 => {
                    std::thread::sleep(Duration::from_millis(10 << attempt));
                    let _ = e;
                }
                Err(e) => {
                    return Err(PluginError::new(
                        error_kind::GATEWAY,
                        format!("{} {}: {e}", head.method, head.path),
                    ));
                }
            }
        }
    }

    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        let stream = batch.stream.to_string();
        self.record_count.fetch_add(batch.count, Ordering::Relaxed);
        let mut rec = self.recorded.lock().expect("recorded lock");
        rec.batches += 1;
        if self.keep_records {
            for line in batch.ndjson.as_slice().split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_slice(line).map_err(|e| {
                    PluginError::new(error_kind::HOST, format!("a record is not JSON: {e}"))
                })?;
                rec.records.push((stream.clone(), v));
            }
        }
        if rec.batches >= self.cancel_after_batches.load(Ordering::SeqCst) {
            self.cancelled.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        let v: Value = serde_json::from_str(state).map_err(|e| {
            PluginError::new(error_kind::HOST, format!("the state is not JSON: {e}"))
        })?;
        let n = self.record_count.load(Ordering::Relaxed);
        let mut rec = self.recorded.lock().expect("recorded lock");
        rec.checkpoints.push(v);
        rec.committed.push(n);
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn log(&self, _plugin: &str, _level: ionport_plugin_abi::LogLevel, message: &str) {
        if let Ok(mut r) = self.recorded.lock() {
            r.logs.push(message.to_string());
        }
    }
}

/// An emulator running on its own runtime, for tests and benches.
#[derive(Debug)]
pub struct Emulated {
    /// The running emulator (dropped before the runtime).
    pub emu: ionport_emulator::RunningEmulator,
    /// The runtime it runs on; also drives the test hosts' HTTP.
    pub rt: tokio::runtime::Runtime,
}

impl Emulated {
    /// Starts an emulator with `config` on a fresh two-thread runtime.
    pub fn start(config: ionport_emulator::EmulatorConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let emu = rt
            .block_on(ionport_emulator::Emulator::start(config))
            .expect("the emulator starts");
        Self { emu, rt }
    }

    /// A host with the emulator's own credentials.
    pub fn host(&self) -> std::sync::Arc<GatewayHost> {
        std::sync::Arc::new(GatewayHost::new(
            self.rt.handle().clone(),
            self.emu.ionapi_json(),
        ))
    }

    /// A host whose `.ionapi` was changed by `edit` (wrong secrets, …).
    pub fn host_with(&self, edit: impl FnOnce(&mut Value)) -> std::sync::Arc<GatewayHost> {
        let mut v = self.emu.ionapi_json();
        edit(&mut v);
        std::sync::Arc::new(GatewayHost::new(self.rt.handle().clone(), v))
    }

    /// Calls a control endpoint (`/__emulator/{path}`) and returns its JSON answer.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!(
            "{}/__emulator/{}",
            self.emu.base_url(),
            path.trim_start_matches('/')
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        self.rt.block_on(async {
            let client = reqwest::Client::new();
            let mut rb = client.request(method, &url);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let resp = rb.send().await.expect("the control endpoint answers");
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{url}: HTTP {status}: {v}");
            v
        })
    }
}

/// Collects what a read through core's one read path
/// ([`ionport_core::read::read_task`]) produces.
#[derive(Debug, Default)]
pub struct CollectSink {
    /// Records, in emission order.
    pub records: Mutex<Vec<Value>>,
    /// Checkpointed states.
    pub checkpoints: Mutex<Vec<Value>>,
}

impl ionport_core::read::ReadHandler for CollectSink {
    fn records(
        &self,
        _stream: &str,
        records: Vec<serde_json::Map<String, Value>>,
    ) -> Result<(), String> {
        let mut r = self.records.lock().map_err(|e| e.to_string())?;
        r.extend(records.into_iter().map(Value::Object));
        Ok(())
    }

    fn checkpoint(&self, _stream: &str, state: Value) -> Result<(), String> {
        self.checkpoints
            .lock()
            .map_err(|e| e.to_string())?
            .push(state);
        Ok(())
    }
}

/// Core's host services for a connection to an emulator: the connection (kept alive by
/// the caller), its `ConnectionHost` (for check and discover), and the sink that
/// [`CoreHost::read`] fills.
pub struct CoreHost {
    /// The connection (tokens, gateway client).
    pub connection: ionport_core::connection::Connection,
    /// The host object plugins get.
    pub host: std::sync::Arc<ionport_core::connection::ConnectionHost>,
    /// What reads produced.
    pub sink: std::sync::Arc<CollectSink>,
    rt: tokio::runtime::Handle,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for CoreHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreHost").finish_non_exhaustive()
    }
}

impl CoreHost {
    /// Reads `request` with `plugin` through core's one read path into [`Self::sink`].
    pub fn read(
        &self,
        plugin: &std::sync::Arc<ionport_core::plugin::LoadedPlugin>,
        request: &ionport_plugin_abi::wire::ReadRequest,
    ) -> Result<ionport_plugin_abi::wire::ReadSummary, ionport_core::read::ReadError> {
        self.rt
            .block_on(ionport_core::read::read_task(
                plugin,
                &self.connection,
                request.clone(),
                self.sink.clone(),
                ionport_core::connection::Cancel::default(),
            ))
            .map(|o| o.summary)
    }
}

impl Emulated {
    /// Core's gateway-backed host services for this emulator, from an `.ionapi` file that
    /// `edit` may change (wrong secrets, …): no client-side rate limit, short back-offs.
    pub fn core_host(&self, edit: impl FnOnce(&mut Value)) -> CoreHost {
        use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("emulator.ionapi");
        let mut v = self.emu.ionapi_json();
        edit(&mut v);
        std::fs::write(&path, v.to_string()).expect("the .ionapi file is written");
        let mut settings = ConnectionSettings::default();
        settings.gateway.rate_limit = None;
        settings.gateway.retry_min = Duration::from_millis(20);
        settings.gateway.retry_max = Duration::from_millis(200);
        let connection = Connection::open(CredentialSource::IonApiFile(path), settings)
            .expect("the connection opens");
        let sink = std::sync::Arc::new(CollectSink::default());
        let host = std::sync::Arc::new(connection.host(self.rt.handle().clone()));
        CoreHost {
            connection,
            host,
            sink,
            rt: self.rt.handle().clone(),
            _dir: dir,
        }
    }
}
