//! The host side of loading a plugin library.
//!
//! Each library is opened with `lib_header_from_path(..).init_root_module()` rather than
//! `RootModule::load_from_file`, because the latter caches one module per root-module
//! type: a host with several connectors would get the first one back every time.
//! abi_stable checks the ABI version first (so a plugin for another major is refused with
//! both versions named), then the layout of every type reachable from the root module.
//! Libraries are never unloaded.

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, RootModule, lib_header_from_path};

use crate::{ABI_VERSION, PluginModRef};

/// Why a library could not be loaded as a plugin.
#[derive(Debug)]
pub enum LoadError {
    /// There is no file at the path.
    NotFound {
        /// The library path.
        path: PathBuf,
    },
    /// The dynamic loader refused the file (not a shared library, truncated, wrong
    /// architecture, missing dependency).
    Open {
        /// The library path.
        path: PathBuf,
        /// The loader's reason.
        reason: String,
    },
    /// The library loads but exports no ionport root module.
    NotAPlugin {
        /// The library path.
        path: PathBuf,
    },
    /// The library was built for an ABI version this host cannot speak.
    IncompatibleAbi {
        /// The library path.
        path: PathBuf,
        /// The ABI version this host speaks.
        expected: String,
        /// The ABI version the library declares.
        found: String,
    },
    /// The version matched but the layout of the types differs (built against a
    /// modified ABI crate).
    Layout {
        /// The library path.
        path: PathBuf,
        /// abi_stable's full report (long; show with `--verbose`).
        report: String,
    },
    /// Anything else abi_stable refused.
    Other {
        /// The library path.
        path: PathBuf,
        /// The reason.
        reason: String,
    },
}

impl LoadError {
    /// The library the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotFound { path }
            | LoadError::Open { path, .. }
            | LoadError::NotAPlugin { path }
            | LoadError::IncompatibleAbi { path, .. }
            | LoadError::Layout { path, .. }
            | LoadError::Other { path, .. } => path,
        }
    }

    /// The long report behind a summary, when there is one (`--verbose`).
    pub fn report(&self) -> Option<&str> {
        match self {
            LoadError::Layout { report, .. } => Some(report),
            _ => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotFound { path } => write!(f, "{}: no such file", path.display()),
            LoadError::Open { path, reason } => write!(
                f,
                "{}: not a loadable shared library ({reason})",
                path.display()
            ),
            LoadError::NotAPlugin { path } => write!(
                f,
                "{}: not an ionport plugin (the library exports no ionport root module)",
                path.display()
            ),
            LoadError::IncompatibleAbi {
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: built for ionport plugin ABI {found}, but this host speaks ABI {expected}; \
                 rebuild the plugin against ionport-plugin-sdk for ABI {expected}",
                path.display()
            ),
            LoadError::Layout { path, .. } => write!(
                f,
                "{}: declares ABI {ABI_VERSION} but the layout of its types differs from this \
                 host's (built against a modified ABI crate?); run with --verbose for the full report",
                path.display()
            ),
            LoadError::Other { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// Opens the library at `path` and returns its root module, after abi_stable has checked
/// the ABI version and the layout of every type reachable from the root module.
pub fn open(path: &Path) -> Result<PluginModRef, LoadError> {
    if !path.is_file() {
        return Err(LoadError::NotFound {
            path: path.to_path_buf(),
        });
    }
    crate::elf::check_complete(path).map_err(|reason| LoadError::Open {
        path: path.to_path_buf(),
        reason,
    })?;
    let header = lib_header_from_path(path).map_err(|e| classify(path, e))?;
    header
        .init_root_module::<PluginModRef>()
        .map_err(|e| classify(path, e))
}

fn classify(path: &Path, err: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match err {
        LibraryError::OpenError { err, .. } => LoadError::Open {
            path,
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::IncompatibleAbi {
            path,
            expected: expected_version.to_string(),
            found: actual_version.to_string(),
        },
        LibraryError::AbiInstability(report) => LoadError::Layout {
            path,
            report: report.to_string(),
        },
        LibraryError::InvalidAbiHeader(_) => LoadError::Other {
            path,
            reason: "built with an incompatible version of abi_stable".into(),
        },
        other => LoadError::Other {
            path,
            reason: other.to_string(),
        },
    }
}

/// The root module type name, for messages.
pub fn root_module_name() -> &'static str {
    <PluginModRef as RootModule>::NAME
}
