//! The error a connector returns.

use ionport_plugin_abi::{PluginError, error_kind};

/// An error from a connector operation. It crosses the ABI as a [`PluginError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    kind: &'static str,
    message: String,
}

impl ConnectorError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The operation is not implemented.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(error_kind::NOT_SUPPORTED, message)
    }

    /// The request (settings, task, state) is invalid.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(error_kind::INVALID_INPUT, message)
    }

    /// The gateway or the remote system failed.
    pub fn gateway(message: impl Into<String>) -> Self {
        Self::new(error_kind::GATEWAY, message)
    }

    /// A read kept timing out (the host's [`error_kind::TIMEOUT`]): ask for a smaller
    /// page.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(error_kind::TIMEOUT, message)
    }

    /// A success answer whose body is not the shape the request expects. Prefer
    /// [`crate::decode::unexpected_body`], which names the request and shows the body.
    pub fn unexpected_body(message: impl Into<String>) -> Self {
        Self::new(error_kind::UNEXPECTED_BODY, message)
    }

    /// Whether the answer had the wrong shape (see [`ConnectorError::unexpected_body`]).
    pub fn is_unexpected_body(&self) -> bool {
        self.kind == error_kind::UNEXPECTED_BODY
    }

    /// The host asked the connector to stop.
    pub fn cancelled() -> Self {
        Self::new(error_kind::CANCELLED, "cancelled")
    }

    /// Any other failure of the connector.
    pub fn connector(message: impl Into<String>) -> Self {
        Self::new(error_kind::CONNECTOR, message)
    }

    /// The kind of errors the host itself raises (no gateway for this call, a destination
    /// failure): never worth retrying from a connector.
    pub fn host_kind() -> &'static str {
        error_kind::HOST
    }

    /// One of [`ionport_plugin_abi::error_kind`].
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the host could not authenticate the connection (wrong credentials, token
    /// endpoint refusal): what a connection check reports as a token problem.
    pub fn is_auth(&self) -> bool {
        self.kind == error_kind::AUTH
    }

    /// Whether a read kept timing out after the host's retries: what
    /// [`crate::paging::AdaptivePageSize`] answers with a smaller page.
    pub fn is_timeout(&self) -> bool {
        self.kind == error_kind::TIMEOUT
    }

    /// The same error with `what` in front of its message (the kind is kept).
    pub fn context(self, what: &str) -> Self {
        Self::new(self.kind, format!("{what}: {}", self.message))
    }

    /// Whether this error means the host cancelled the work.
    pub fn is_cancelled(&self) -> bool {
        self.kind == error_kind::CANCELLED
    }
}

impl From<ConnectorError> for PluginError {
    fn from(e: ConnectorError) -> Self {
        PluginError::new(e.kind, e.message)
    }
}

impl From<PluginError> for ConnectorError {
    fn from(e: PluginError) -> Self {
        let kind = match e.kind.as_str() {
            error_kind::PANIC => error_kind::PANIC,
            error_kind::NOT_SUPPORTED => error_kind::NOT_SUPPORTED,
            error_kind::INVALID_INPUT => error_kind::INVALID_INPUT,
            error_kind::GATEWAY => error_kind::GATEWAY,
            error_kind::TIMEOUT => error_kind::TIMEOUT,
            error_kind::AUTH => error_kind::AUTH,
            error_kind::CANCELLED => error_kind::CANCELLED,
            error_kind::HOST => error_kind::HOST,
            error_kind::UNEXPECTED_BODY => error_kind::UNEXPECTED_BODY,
            _ => error_kind::CONNECTOR,
        };
        Self::new(kind, e.message.into_string())
    }
}
