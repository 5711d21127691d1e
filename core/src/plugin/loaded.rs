//! A loaded plugin and the typed calls into it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ionport_plugin_abi::abi_stable::std_types::{RResult, RStr, RString};
use ionport_plugin_abi::wire::{
    CheckReport, ConnectionConfig, Discovery, Manifest, ReadRequest, ReadSummary, TaskSpec,
};
use ionport_plugin_abi::{FfiConnectorBox, PluginError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::CallError;
use crate::host::{HostCallbacks, ffi_host};

/// A plugin that loaded and passed validation: its descriptor, read once at load, and
/// its connector.
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: Manifest,
    form: Value,
    tasks: Vec<TaskSpec>,
    connector: FfiConnectorBox,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(
    plugin: &str,
    operation: &'static str,
    r: RResult<RString, PluginError>,
) -> Result<T, CallError> {
    match r {
        RResult::ROk(s) => serde_json::from_str(&s).map_err(|e| CallError::BadAnswer {
            plugin: plugin.to_string(),
            operation,
            message: e.to_string(),
        }),
        RResult::RErr(e) => Err(CallError::from_plugin(plugin, operation, e)),
    }
}

impl LoadedPlugin {
    /// Reads the descriptor of a freshly created connector. Unknown plugin id while the
    /// manifest is unread: the path stands in for it in errors.
    pub(crate) fn describe(path: &Path, connector: FfiConnectorBox) -> Result<Self, Vec<String>> {
        let who = path.display().to_string();
        let manifest: Manifest =
            decode(&who, "manifest", connector.manifest()).map_err(|e| vec![e.to_string()])?;
        let form: Value = decode(&manifest.id, "connection_form", connector.connection_form())
            .map_err(|e| vec![e.to_string()])?;
        let tasks: Vec<TaskSpec> =
            decode(&manifest.id, "tasks", connector.tasks()).map_err(|e| vec![e.to_string()])?;
        Ok(Self {
            path: path.to_path_buf(),
            manifest,
            form,
            tasks,
            connector,
        })
    }

    /// The library the plugin came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The plugin id, e.g. `infor-m3`.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The connection form (JSON Schema).
    pub fn connection_form(&self) -> &Value {
        &self.form
    }

    /// The predefined replication tasks.
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    /// The task named `name`.
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Tests a connection. Blocks: call it from a blocking thread in async code.
    pub fn check(
        &self,
        host: Arc<dyn HostCallbacks>,
        connection: &ConnectionConfig,
    ) -> Result<CheckReport, CallError> {
        let json = self.encode(connection);
        let host = ffi_host(self.id(), host);
        decode(
            self.id(),
            "check",
            self.connector.check(host, RStr::from_str(&json)),
        )
    }

    /// Lists what the tenant has. Blocks.
    pub fn discover(
        &self,
        host: Arc<dyn HostCallbacks>,
        connection: &ConnectionConfig,
    ) -> Result<Discovery, CallError> {
        let json = self.encode(connection);
        let host = ffi_host(self.id(), host);
        decode(
            self.id(),
            "discover",
            self.connector.discover(host, RStr::from_str(&json)),
        )
    }

    /// Runs one task; records and checkpoints arrive through `host`. Blocks.
    pub fn read(
        &self,
        host: Arc<dyn HostCallbacks>,
        request: &ReadRequest,
    ) -> Result<ReadSummary, CallError> {
        let json = self.encode(request);
        let host = ffi_host(self.id(), host);
        decode(
            self.id(),
            "read",
            self.connector.read(host, RStr::from_str(&json)),
        )
    }

    /// The manifest as the plugin serialises it now (for benchmarks and conformance).
    pub fn call_manifest(&self) -> Result<Manifest, CallError> {
        decode(self.id(), "manifest", self.connector.manifest())
    }

    fn encode<T: serde::Serialize>(&self, v: &T) -> String {
        // Serialising our own wire types cannot fail: they hold only strings, numbers
        // and JSON values.
        serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
    }
}
