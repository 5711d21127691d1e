//! FFI-safe values and the two traits that cross the boundary.
//!
//! Structured payloads cross as JSON text (see [`crate::wire`]); record data crosses as
//! NDJSON batches. Keeping the surface this small is what keeps the ABI stable.

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RArc, RBox, RResult, RStr, RString, RVec},
};

/// Error kinds that cross the boundary, as stable strings in [`PluginError::kind`].
pub mod error_kind {
    /// The plugin panicked; the SDK caught it.
    pub const PANIC: &str = "panic";
    /// The operation is not implemented by this connector (yet).
    pub const NOT_SUPPORTED: &str = "not_supported";
    /// The request (connection settings, task, state) is invalid.
    pub const INVALID_INPUT: &str = "invalid_input";
    /// The gateway or the remote system failed.
    pub const GATEWAY: &str = "gateway";
    /// A read kept timing out: the gateway answered 504 (or the host's own request
    /// timeout ran out) on every attempt the host makes for a timeout. The page asked
    /// for is too big for the gateway's target timeout; ask for a smaller one. See the
    /// host↔connector contract in [`crate`].
    pub const TIMEOUT: &str = "timeout";
    /// The host could not authenticate the connection (token endpoint refused the
    /// credentials, or a refresh failed): the credentials need attention.
    pub const AUTH: &str = "auth";
    /// The host cancelled the operation.
    pub const CANCELLED: &str = "cancelled";
    /// Any other connector failure.
    pub const CONNECTOR: &str = "connector";
    /// A failure inside the host (a destination, the state store, ...).
    pub const HOST: &str = "host";
    /// The remote system answered with success but the body is not the shape the request
    /// expects (an error body, `{}`, another API's page): never "no more data". Added in
    /// ABI 1.x as a minor change; an older host sees an unknown kind (treat as
    /// [`CONNECTOR`]).
    pub const UNEXPECTED_BODY: &str = "unexpected_body";
}

/// An error value returned across the boundary (never a panic).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// One of [`error_kind`].
    pub kind: RString,
    /// A message a user can act on. Never contains a secret.
    pub message: RString,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into().into(),
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for PluginError {}

/// A gateway request from a plugin: a JSON [`crate::wire::GatewayRequestHead`] and a body.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiHttpRequest {
    /// JSON of [`crate::wire::GatewayRequestHead`].
    pub head: RString,
    /// The request body (empty for none).
    pub body: RVec<u8>,
}

/// The gateway's answer: status, headers as JSON and the body.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiHttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// JSON of [`crate::wire::GatewayResponseHead`].
    pub head: RString,
    /// The response body.
    pub body: RVec<u8>,
}

/// A batch of records of one stream, as newline-delimited JSON objects.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct RecordBatch {
    /// The task (stream) the records belong to.
    pub stream: RString,
    /// How many records `ndjson` holds.
    pub count: u64,
    /// One JSON object per line.
    pub ndjson: RVec<u8>,
}

/// Log levels, from most to least severe.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// An error the user should see.
    Error,
    /// Something unexpected that did not stop the work.
    Warn,
    /// Progress a user may want to see.
    Info,
    /// Detail for developers.
    Debug,
    /// Everything.
    Trace,
}

/// The services the host offers to a plugin during one call.
///
/// A plugin reaches the remote system only through [`FfiHost::gateway`]: the host resolves
/// the connection, adds the bearer token, retries and rate-limits. A plugin never sees a
/// token or a secret.
#[sabi_trait]
pub trait FfiHost: Send + Sync {
    /// Sends a request to the connection's gateway (path relative to the API base).
    fn gateway(&self, request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError>;

    /// Writes a log line on the host's log, attributed to the plugin.
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// Hands a batch of records to the host. The host buffers records until the next
    /// checkpoint and commits them together with it.
    fn emit(&self, batch: RecordBatch) -> RResult<(), PluginError>;

    /// Records the task's state (JSON). Everything emitted before it is committed with it.
    fn checkpoint(&self, state: RStr<'_>) -> RResult<(), PluginError>;

    /// Whether the host asked the plugin to stop. Plugins check it between pages.
    #[sabi(last_prefix_field)]
    fn cancelled(&self) -> bool;

    /// Reports that the plugin handed over `pages` more pages of the read (usually 1), so
    /// that the host can show a task's pages while it runs. Added in ABI 1.1 (capability
    /// [`crate::capability::PROGRESS`]): on a 1.0 host the vtable has no such method and
    /// abi_stable calls this default instead, which does nothing — a plugin may call it on
    /// any 1.x host. Never fails: progress is a figure to show, not a part of the read.
    fn progress(&self, pages: u64) {
        let _ = pages;
    }
}

/// The host services object as it crosses the boundary.
pub type FfiHostArc = FfiHost_TO<'static, RArc<()>>;

/// A connector, as a plugin exposes it.
///
/// Every method runs under the SDK's panic guard: a panic comes back as a
/// [`PluginError`] of kind [`error_kind::PANIC`].
#[sabi_trait]
pub trait FfiConnector: Send + Sync {
    /// JSON of [`crate::wire::Manifest`].
    fn manifest(&self) -> RResult<RString, PluginError>;

    /// The connection form: a JSON Schema.
    fn connection_form(&self) -> RResult<RString, PluginError>;

    /// JSON array of [`crate::wire::TaskSpec`]: the predefined replication tasks.
    fn tasks(&self) -> RResult<RString, PluginError>;

    /// Tests a connection (JSON of [`crate::wire::ConnectionConfig`]); returns JSON of
    /// [`crate::wire::CheckReport`].
    fn check(&self, host: FfiHostArc, connection: RStr<'_>) -> RResult<RString, PluginError>;

    /// Lists what the tenant has; returns JSON of [`crate::wire::Discovery`].
    fn discover(&self, host: FfiHostArc, connection: RStr<'_>) -> RResult<RString, PluginError>;

    /// Runs one task (JSON of [`crate::wire::ReadRequest`]), emitting batches and
    /// checkpoints through `host`; returns JSON of [`crate::wire::ReadSummary`].
    #[sabi(last_prefix_field)]
    fn read(&self, host: FfiHostArc, request: RStr<'_>) -> RResult<RString, PluginError>;
}

/// A connector as it crosses the boundary (owned, boxed).
pub type FfiConnectorBox = FfiConnector_TO<'static, RBox<()>>;
