//! The trait a connector implements.

use ionport_plugin_abi::wire::{
    CheckReport, ConnectionConfig, Discovery, ReadRequest, ReadSummary, StreamNames, TaskSpec,
};

use crate::{ConnectorError, Host};

/// Who a connector is. The SDK adds the ABI version when it builds the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// Stable identifier, lowercase with dashes, e.g. `infor-m3`.
    pub id: String,
    /// Human name, e.g. `Infor M3`.
    pub name: String,
    /// The connector's version (semver); usually `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// One paragraph: what the connector reaches and how.
    pub description: String,
}

/// A connector: its form and tasks, and the three operations on a connection.
///
/// Implementations must be cheap to construct and thread-safe: the host may call
/// several operations at once from different threads. Every method runs under the SDK's
/// panic guard, but a connector should return [`ConnectorError`]s rather than panic.
pub trait Connector: Send + Sync + 'static {
    /// Who the connector is.
    fn info(&self) -> ConnectorInfo;

    /// The connection form, a JSON Schema; build it with [`crate::form::form_schema`].
    /// Secret fields carry `"x-secret": true` and `"writeOnly": true`; the host strips
    /// them (and the whole `credentials` block) before a connection reaches the connector.
    fn connection_form(&self) -> serde_json::Value;

    /// The predefined replication tasks.
    fn tasks(&self) -> Vec<TaskSpec>;

    /// Whether `name`, which is not a predefined task, is a stream this connector can read
    /// (a stream offered by [`Connector::discover`], e.g. any table of the tenant). The
    /// SDK refuses a read of any other name before [`Connector::read`] is called.
    fn accepts_stream(&self, _name: &str) -> bool {
        false
    }

    /// The form of the names [`Connector::accepts_stream`] takes, declared in the manifest
    /// so that a host can check a pipeline file's task names before it connects (their
    /// existence is `discover`'s to say). `None` (the default): predefined tasks only.
    fn stream_names(&self) -> Option<StreamNames> {
        None
    }

    /// Host capabilities ([`ionport_plugin_abi::capability`]) the connector cannot work
    /// without, declared in its manifest: a host that lacks one refuses the plugin at load,
    /// naming both ABI versions and the capability. The default: none (every 1.x host).
    fn requires(&self) -> Vec<String> {
        Vec::new()
    }

    /// Tests a connection ("Test Connection").
    fn check(
        &self,
        _host: &Host,
        _connection: &ConnectionConfig,
    ) -> Result<CheckReport, ConnectorError> {
        Err(ConnectorError::not_supported(format!(
            "{}: check is not supported yet",
            self.info().id
        )))
    }

    /// Lists what the tenant has.
    fn discover(
        &self,
        _host: &Host,
        _connection: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        Err(ConnectorError::not_supported(format!(
            "{}: discover is not supported yet",
            self.info().id
        )))
    }

    /// Runs one task, emitting batches and checkpoints through `host`.
    fn read(&self, _host: &Host, request: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
        Err(ConnectorError::not_supported(format!(
            "{}: read of task '{}' is not supported yet",
            self.info().id,
            request.task
        )))
    }
}
