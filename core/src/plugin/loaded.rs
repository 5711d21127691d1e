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
use super::isolate::{IsolationLimits, ProcessCallError, ProcessConnector};
use crate::host::{HostCallbacks, OfflineHost, ffi_host};

/// Where a plugin's calls run.
enum Backend {
    /// In this process, through the library's trait object.
    InProcess(FfiConnectorBox),
    /// In child processes (`ionport plugin-host`), see [`super::isolate`].
    Process(ProcessConnector),
}

/// A plugin that loaded and passed validation: its descriptor, read once at load, and
/// its connector.
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: Manifest,
    form: Value,
    tasks: Vec<TaskSpec>,
    connector: Backend,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("path", &self.path)
            .field("isolated", &self.is_isolated())
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(
    plugin: &str,
    operation: &'static str,
    r: Result<String, CallError>,
) -> Result<T, CallError> {
    let s = r?;
    serde_json::from_str(&s).map_err(|e| CallError::BadAnswer {
        plugin: plugin.to_string(),
        operation,
        message: e.to_string(),
    })
}

fn in_process(
    plugin: &str,
    operation: &'static str,
    r: RResult<RString, PluginError>,
) -> Result<String, CallError> {
    match r {
        RResult::ROk(s) => Ok(s.into_string()),
        RResult::RErr(e) => Err(CallError::from_plugin(plugin, operation, e)),
    }
}

impl LoadedPlugin {
    /// Reads the descriptor of a freshly created connector. Unknown plugin id while the
    /// manifest is unread: the path stands in for it in errors.
    pub(crate) fn describe(path: &Path, connector: FfiConnectorBox) -> Result<Self, Vec<String>> {
        Self::describe_backend(path, Backend::InProcess(connector)).map_err(|e| vec![e.to_string()])
    }

    /// Reads the descriptor through a plugin's own process: the library is never opened
    /// in this one.
    pub(crate) fn describe_isolated(
        path: &Path,
        limits: IsolationLimits,
    ) -> Result<Self, CallError> {
        Self::describe_backend(path, Backend::Process(ProcessConnector::new(path, limits)))
    }

    fn describe_backend(path: &Path, connector: Backend) -> Result<Self, CallError> {
        let mut plugin = Self {
            path: path.to_path_buf(),
            manifest: Manifest {
                id: path.display().to_string(),
                name: String::new(),
                version: String::new(),
                abi_version: String::new(),
                description: String::new(),
                stream_names: None,
                requires: Vec::new(),
            },
            form: Value::Null,
            tasks: Vec::new(),
            connector,
        };
        plugin.manifest = decode(plugin.id(), "manifest", plugin.raw("manifest", "", None))?;
        plugin.form = decode(
            plugin.id(),
            "connection_form",
            plugin.raw("connection_form", "", None),
        )?;
        plugin.tasks = decode(plugin.id(), "tasks", plugin.raw("tasks", "", None))?;
        Ok(plugin)
    }

    /// The same plugin run in child processes of its own (`isolation = "process"`):
    /// same descriptor, calls through [`super::isolate`] with `limits`. Processes start
    /// at the first call.
    pub fn isolated(&self, limits: IsolationLimits) -> Arc<LoadedPlugin> {
        Arc::new(Self {
            path: self.path.clone(),
            manifest: self.manifest.clone(),
            form: self.form.clone(),
            tasks: self.tasks.clone(),
            connector: Backend::Process(ProcessConnector::new(&self.path, limits)),
        })
    }

    /// Whether the plugin runs in processes of its own.
    pub fn is_isolated(&self) -> bool {
        matches!(self.connector, Backend::Process(_))
    }

    /// The bounds of its processes, when the plugin is isolated.
    pub fn isolation_limits(&self) -> Option<&IsolationLimits> {
        match &self.connector {
            Backend::Process(p) => Some(p.limits()),
            Backend::InProcess(_) => None,
        }
    }

    /// One connector method with its JSON input, on whichever backend; the answer's JSON.
    fn raw(
        &self,
        operation: &'static str,
        input: &str,
        host: Option<Arc<dyn HostCallbacks>>,
    ) -> Result<String, CallError> {
        let id = self.id();
        match &self.connector {
            Backend::InProcess(c) => {
                let host = || {
                    ffi_host(
                        id,
                        host.clone()
                            .unwrap_or_else(|| Arc::new(OfflineHost::default())),
                    )
                };
                let input = RStr::from_str(input);
                let r = match operation {
                    "manifest" => c.manifest(),
                    "connection_form" => c.connection_form(),
                    "tasks" => c.tasks(),
                    "check" => c.check(host(), input),
                    "discover" => c.discover(host(), input),
                    _ => c.read(host(), input),
                };
                in_process(id, operation, r)
            }
            Backend::Process(p) => {
                let host = host.unwrap_or_else(|| Arc::new(OfflineHost::default()));
                p.call(id, operation, input, &host).map_err(|e| match e {
                    ProcessCallError::Plugin(e) => CallError::from_plugin(id, operation, e),
                    ProcessCallError::Failure(failure) => CallError::Process {
                        plugin: id.to_string(),
                        operation,
                        failure: Box::new(failure),
                    },
                    ProcessCallError::Load(failure) => CallError::Process {
                        plugin: id.to_string(),
                        operation: "load",
                        failure: Box::new(failure),
                    },
                })
            }
        }
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
        decode(self.id(), "check", self.raw("check", &json, Some(host)))
    }

    /// Lists what the tenant has. Blocks.
    pub fn discover(
        &self,
        host: Arc<dyn HostCallbacks>,
        connection: &ConnectionConfig,
    ) -> Result<Discovery, CallError> {
        let json = self.encode(connection);
        decode(
            self.id(),
            "discover",
            self.raw("discover", &json, Some(host)),
        )
    }

    /// Runs one task; records and checkpoints arrive through `host`. Blocks.
    pub fn read(
        &self,
        host: Arc<dyn HostCallbacks>,
        request: &ReadRequest,
    ) -> Result<ReadSummary, CallError> {
        let json = self.encode(request);
        decode(self.id(), "read", self.raw("read", &json, Some(host)))
    }

    /// The manifest as the plugin serialises it now (for benchmarks and conformance).
    pub fn call_manifest(&self) -> Result<Manifest, CallError> {
        decode(self.id(), "manifest", self.raw("manifest", "", None))
    }

    fn encode<T: serde::Serialize>(&self, v: &T) -> String {
        // Serialising our own wire types cannot fail: they hold only strings, numbers
        // and JSON values.
        serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
    }
}
