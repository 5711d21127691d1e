//! Errors of loading and calling plugins.

use std::path::PathBuf;

use ionport_plugin_abi::{PluginError, error_kind, load::LoadError};

/// A library that was not accepted as a plugin, and why.
#[derive(Debug, thiserror::Error)]
pub enum RefusedPlugin {
    /// The ABI loader refused the library.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The library loaded but its descriptor breaks the rules.
    #[error("{}: refused: {}", path.display(), problems.join("; "))]
    Invalid {
        /// The library.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The plugin needs host capabilities this host does not offer (a plugin built for a
    /// newer minor of the ABI that cannot work without what that minor added).
    #[error(
        "{}: refused: built for ionport plugin ABI {plugin_abi}, it needs the host capability {}, which this host (ABI {host_abi}) does not offer; load it in a host that offers it",
        path.display(),
        missing.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")
    )]
    MissingCapability {
        /// The library.
        path: PathBuf,
        /// The ABI version the plugin's manifest declares.
        plugin_abi: String,
        /// This host's ABI version.
        host_abi: String,
        /// The capabilities it requires that this host lacks.
        missing: Vec<String>,
    },
    /// The library could not be described in a process of its own (isolation): it
    /// crashed, hung or was refused while loading there.
    #[error("{}: refused: {}", path.display(), isolated_reason(error))]
    Isolated {
        /// The library.
        path: PathBuf,
        /// What happened.
        error: Box<CallError>,
    },
    /// Another plugin already has this id.
    #[error("{}: refused: plugin id '{id}' is already taken by {}", path.display(), first.display())]
    DuplicateId {
        /// The library refused.
        path: PathBuf,
        /// The id.
        id: String,
        /// The library that has it.
        first: PathBuf,
    },
}

/// A failure while describing a library in its own process, without the placeholder
/// plugin name (the library's path, which the refusal already starts with).
fn isolated_reason(error: &CallError) -> String {
    match error {
        CallError::Process {
            operation, failure, ..
        } => format!("{operation} failed in its own process: {failure}"),
        other => other.to_string(),
    }
}

impl RefusedPlugin {
    /// The library refused.
    pub fn path(&self) -> &std::path::Path {
        match self {
            RefusedPlugin::Load(e) => e.path(),
            RefusedPlugin::Invalid { path, .. }
            | RefusedPlugin::MissingCapability { path, .. }
            | RefusedPlugin::Isolated { path, .. }
            | RefusedPlugin::DuplicateId { path, .. } => path,
        }
    }

    /// A long report behind the one-line message, when there is one (`--verbose`).
    pub fn report(&self) -> Option<&str> {
        match self {
            RefusedPlugin::Load(e) => e.report(),
            _ => None,
        }
    }
}

/// The kind of a [`CallError::Process`]: an isolated plugin's process failed.
pub const PROCESS_FAILED: &str = "plugin_process";

/// A plugin call that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an error value (a caught panic included).
    #[error("{plugin}: {operation} failed: {message}")]
    Plugin {
        /// The plugin id.
        plugin: String,
        /// check, discover, read, ...
        operation: &'static str,
        /// One of [`ionport_plugin_abi::error_kind`].
        kind: String,
        /// The plugin's message.
        message: String,
    },
    /// An isolated plugin's process failed (crashed, timed out, ran out of memory); the
    /// next call starts a new one.
    #[error("{plugin}: {operation} failed: {failure}; the next call starts a new process")]
    Process {
        /// The plugin id.
        plugin: String,
        /// The operation.
        operation: &'static str,
        /// What happened to the process.
        failure: Box<super::isolate::ProcessFailure>,
    },
    /// The plugin answered with JSON the host cannot read.
    #[error("{plugin}: {operation} returned an invalid answer: {message}")]
    BadAnswer {
        /// The plugin id.
        plugin: String,
        /// The operation.
        operation: &'static str,
        /// The decoding error.
        message: String,
    },
}

impl CallError {
    pub(crate) fn from_plugin(plugin: &str, operation: &'static str, e: PluginError) -> Self {
        CallError::Plugin {
            plugin: plugin.to_string(),
            operation,
            kind: e.kind.into_string(),
            message: e.message.into_string(),
        }
    }

    /// The error kind ([`ionport_plugin_abi::error_kind`]), for plugin errors.
    pub fn kind(&self) -> &str {
        match self {
            CallError::Plugin { kind, .. } => kind,
            CallError::BadAnswer { .. } => error_kind::CONNECTOR,
            CallError::Process { .. } => PROCESS_FAILED,
        }
    }

    /// Whether the plugin panicked (and the SDK guard caught it).
    pub fn is_panic(&self) -> bool {
        self.kind() == error_kind::PANIC
    }
}
