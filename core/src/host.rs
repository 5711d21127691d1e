//! The host services handed to a plugin call.
//!
//! A plugin receives an [`ionport_plugin_abi::FfiHost`] object; the host builds it from
//! any [`HostCallbacks`] implementation. Callbacks run on the plugin's (blocking) thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
use ionport_plugin_abi::abi_stable::std_types::{RArc, RResult, RStr};
use ionport_plugin_abi::wire::{GatewayRequestHead, GatewayResponseHead};
use ionport_plugin_abi::{
    FfiHost, FfiHost_TO, FfiHostArc, FfiHttpRequest, FfiHttpResponse, LogLevel, PluginError,
    RecordBatch, error_kind,
};

/// A gateway response as the host hands it back to a plugin.
#[derive(Debug, Clone, Default)]
pub struct HostResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What the host does for a plugin during one call.
pub trait HostCallbacks: Send + Sync + 'static {
    /// Sends a request to the connection's gateway.
    fn gateway(&self, head: GatewayRequestHead, body: Vec<u8>)
    -> Result<HostResponse, PluginError>;

    /// Receives a batch of records.
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError>;

    /// Receives the task's state; commits the records emitted before it.
    fn checkpoint(&self, state: &str) -> Result<(), PluginError>;

    /// Whether the work is cancelled.
    fn cancelled(&self) -> bool;

    /// The plugin handed over `pages` more pages (`FfiHost::progress`, ABI 1.1; a 1.0
    /// plugin never calls it). The default ignores it.
    fn progress(&self, pages: u64) {
        let _ = pages;
    }

    /// A log line from the plugin. The default writes it to `tracing`.
    fn log(&self, plugin: &str, level: LogLevel, message: &str) {
        match level {
            LogLevel::Error => tracing::error!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
        }
    }
}

/// Callbacks for calls that have no connection: the gateway is refused, records are
/// dropped. Used for describing plugins and by checks that need no network.
#[derive(Debug, Default)]
pub struct OfflineHost {
    cancelled: AtomicBool,
}

impl OfflineHost {
    /// Asks the plugin to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

impl HostCallbacks for OfflineHost {
    fn gateway(
        &self,
        _head: GatewayRequestHead,
        _body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        Err(PluginError::new(
            error_kind::HOST,
            "this call has no connection, so there is no gateway to reach",
        ))
    }

    fn emit(&self, _batch: RecordBatch) -> Result<(), PluginError> {
        Ok(())
    }

    fn checkpoint(&self, _state: &str) -> Result<(), PluginError> {
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

struct HostAdapter {
    plugin: String,
    callbacks: Arc<dyn HostCallbacks>,
}

impl FfiHost for HostAdapter {
    fn gateway(&self, request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
        let head: GatewayRequestHead = match serde_json::from_str(&request.head) {
            Ok(h) => h,
            Err(e) => {
                return RResult::RErr(PluginError::new(
                    error_kind::INVALID_INPUT,
                    format!("the plugin sent an invalid gateway request head: {e}"),
                ));
            }
        };
        match self.callbacks.gateway(head, request.body.into_vec()) {
            Ok(resp) => {
                let head = serde_json::to_string(&GatewayResponseHead {
                    headers: resp.headers,
                })
                .unwrap_or_default();
                RResult::ROk(FfiHttpResponse {
                    status: resp.status,
                    head: head.into(),
                    body: resp.body.into(),
                })
            }
            Err(e) => RResult::RErr(e),
        }
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.callbacks.log(&self.plugin, level, message.as_str());
    }

    fn emit(&self, batch: RecordBatch) -> RResult<(), PluginError> {
        self.callbacks.emit(batch).into()
    }

    fn checkpoint(&self, state: RStr<'_>) -> RResult<(), PluginError> {
        self.callbacks.checkpoint(state.as_str()).into()
    }

    fn cancelled(&self) -> bool {
        self.callbacks.cancelled()
    }

    fn progress(&self, pages: u64) {
        self.callbacks.progress(pages);
    }
}

/// Wraps `callbacks` into the object that crosses the ABI.
pub(crate) fn ffi_host(plugin: &str, callbacks: Arc<dyn HostCallbacks>) -> FfiHostArc {
    FfiHost_TO::from_ptr(
        RArc::new(HostAdapter {
            plugin: plugin.to_string(),
            callbacks,
        }),
        TD_Opaque,
    )
}
