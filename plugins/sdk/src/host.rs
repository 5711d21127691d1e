//! The host's services, as a connector sees them.

use std::sync::Arc;

use ionport_plugin_abi::abi_stable::std_types::{RResult, RStr};
use ionport_plugin_abi::wire::{GatewayRequestHead, GatewayResponseHead};
use ionport_plugin_abi::{FfiHostArc, FfiHttpRequest, LogLevel, RecordBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ConnectorError;

/// The host services handed to one connector call.
///
/// Clone it freely (it is a reference-counted handle) to use it from several threads.
#[derive(Clone)]
pub struct Host {
    inner: Arc<FfiHostArc>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl Host {
    pub(crate) fn new(inner: FfiHostArc) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Sends `request` to the connection's gateway. The host adds the bearer token,
    /// retries reads on transient failures and keeps to the tenant's rate limit.
    ///
    /// An answer comes back as a [`GatewayResponse`]; an error means the host got no
    /// usable answer within its retries (network, token, transient statuses, cancelled),
    /// or, of kind `timeout` ([`ConnectorError::is_timeout`]), that a read kept timing
    /// out: ask for a smaller page. The rules are the host↔connector contract in
    /// `ionport_plugin_abi`'s crate docs.
    pub fn gateway(&self, request: &GatewayRequest) -> Result<GatewayResponse, ConnectorError> {
        let head = serde_json::to_string(&request.head)
            .map_err(|e| ConnectorError::connector(format!("encoding a gateway request: {e}")))?;
        let ffi = FfiHttpRequest {
            head: head.into(),
            body: request.body.clone().into(),
        };
        match self.inner.gateway(ffi) {
            RResult::ROk(resp) => {
                let head: GatewayResponseHead = if resp.head.is_empty() {
                    GatewayResponseHead::default()
                } else {
                    serde_json::from_str(&resp.head).map_err(|e| {
                        ConnectorError::connector(format!("decoding the host's response head: {e}"))
                    })?
                };
                Ok(GatewayResponse {
                    status: resp.status,
                    headers: head.headers,
                    body: resp.body.into_vec(),
                })
            }
            RResult::RErr(e) => Err(e.into()),
        }
    }

    /// Writes `message` to the host's log at `level`.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, RStr::from_str(message));
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at debug level.
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    /// Hands a batch of records (already NDJSON, `count` lines) to the host.
    pub fn emit_ndjson(
        &self,
        stream: &str,
        count: u64,
        ndjson: Vec<u8>,
    ) -> Result<(), ConnectorError> {
        let batch = RecordBatch {
            stream: stream.into(),
            count,
            ndjson: ndjson.into(),
        };
        self.inner.emit(batch).into_result().map_err(Into::into)
    }

    /// Serialises `records` as one NDJSON batch and hands it to the host.
    pub fn emit<T: Serialize>(&self, stream: &str, records: &[T]) -> Result<(), ConnectorError> {
        let mut buf = Vec::with_capacity(records.len() * 128);
        for r in records {
            serde_json::to_writer(&mut buf, r)
                .map_err(|e| ConnectorError::connector(format!("encoding a record: {e}")))?;
            buf.push(b'\n');
        }
        self.emit_ndjson(stream, records.len() as u64, buf)
    }

    /// Records the task's state; the host commits every record emitted before it together
    /// with it.
    pub fn checkpoint<T: Serialize>(&self, state: &T) -> Result<(), ConnectorError> {
        let json = serde_json::to_string(state)
            .map_err(|e| ConnectorError::connector(format!("encoding the state: {e}")))?;
        self.inner
            .checkpoint(RStr::from_str(&json))
            .into_result()
            .map_err(Into::into)
    }

    /// Whether the host asked the connector to stop. Check it between pages.
    pub fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }

    /// Tells the host that `pages` more pages of the read were handed over (usually 1), so
    /// that it can show a task's pages while it runs. The SDK's paging helpers
    /// (`ordered_pages`, `key_ranges`, the stream API) call it; a connector calls it only
    /// for pages it hands over by itself (a commit is not always a page, so
    /// [`crate::RecordWriter`] does not). Safe on every 1.x host: one without the `progress`
    /// capability (ABI 1.0) ignores it.
    pub fn report_pages(&self, pages: u64) {
        if pages > 0 {
            self.inner.progress(pages);
        }
    }

    /// Returns [`ConnectorError::cancelled`] when the host asked to stop.
    pub fn check_cancelled(&self) -> Result<(), ConnectorError> {
        if self.cancelled() {
            Err(ConnectorError::cancelled())
        } else {
            Ok(())
        }
    }
}

/// A request to the connection's gateway, relative to its API base (`iu/ti`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequest {
    head: GatewayRequestHead,
    body: Vec<u8>,
}

impl GatewayRequest {
    /// A request with `method` to `path` (relative, e.g. `M3/m3api-rest/v2/execute/...`).
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Self {
            head: GatewayRequestHead {
                method: method.to_ascii_uppercase(),
                path: path.into(),
                query: Vec::new(),
                headers: Vec::new(),
                timeout_secs: None,
            },
            body: Vec::new(),
        }
    }

    /// A GET request.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// A POST request.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new("POST", path)
    }

    /// Appends a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.head.query.push((name.into(), value.into()));
        self
    }

    /// Appends a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.head.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.head
            .headers
            .push(("content-type".into(), content_type.into()));
        self.body = body.into();
        self
    }

    /// Sets a per-request timeout.
    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.head.timeout_secs = Some(secs);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The relative path.
    pub fn path(&self) -> &str {
        &self.head.path
    }

    /// The query parameters, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.head.query
    }
}

/// The gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl GatewayResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Decodes the body as JSON; the error names `what` and shows the start of the body.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let text = self.text();
            let head: String = text.chars().take(200).collect();
            ConnectorError::unexpected_body(format!(
                "{what}: unexpected body: the gateway answered HTTP {} with a body that is not the expected JSON ({e}); it starts: {head:?}",
                self.status
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
    use ionport_plugin_abi::abi_stable::std_types::{RArc, RResult, RStr};
    use ionport_plugin_abi::{FfiHost, FfiHost_TO, FfiHttpResponse, PluginError, error_kind};

    use super::*;

    /// A host that keeps every page report. (A host without the method — ABI 1.0 — is
    /// tests/tests/abi_old_host.rs, on the frozen 1.0 crate.)
    struct Fake {
        reports: Mutex<Vec<u64>>,
    }

    impl FfiHost for Fake {
        fn gateway(&self, _r: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
            RResult::RErr(PluginError::new(error_kind::HOST, "none"))
        }
        fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
        fn emit(&self, _batch: RecordBatch) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
        fn checkpoint(&self, _state: RStr<'_>) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
        fn cancelled(&self) -> bool {
            false
        }
        fn progress(&self, pages: u64) {
            self.reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(pages);
        }
    }

    fn host(fake: Fake) -> (Host, RArc<Fake>) {
        let fake = RArc::new(fake);
        (
            Host::new(FfiHost_TO::from_ptr(fake.clone(), TD_Opaque)),
            fake,
        )
    }

    #[test]
    fn report_pages_crosses_as_one_progress_call_and_zero_is_not_sent() {
        let (h, fake) = host(Fake {
            reports: Mutex::new(Vec::new()),
        });
        h.report_pages(1);
        h.report_pages(0);
        h.report_pages(3);
        h.clone().report_pages(1);
        let seen = fake.reports.lock().unwrap().clone();
        assert_eq!(seen, vec![1, 3, 1]);
    }
}
