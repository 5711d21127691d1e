//! The host side of loading a plugin library.
//!
//! Each library is opened with `lib_header_from_path(..)` rather than
//! `RootModule::load_from_file`, because the latter caches one module per root-module
//! type: a host with several connectors would get the first one back every time.
//! The ABI version is checked first (so a plugin for another major is refused with both
//! versions named), then the layout of every type reachable from the root module.
//! Libraries are never unloaded.
//!
//! # Which side's layout leads
//!
//! abi_stable's layout check takes the loader's layout as the interface and lets the
//! library's prefix types (vtables, the root module) have *more* fields, never fewer: it
//! lets an older host load a newer plugin. ionport also lets a newer host load an older
//! plugin (ABI 1.1 appended `FfiHost::progress`; a 1.0 plugin's `FfiHost` vtable has one
//! method less). So the layouts are compared with the *older* side as the interface: the
//! plugin's when it declares an older minor, the host's otherwise. Either way every type
//! one side knows must be the other's, field for field, and only appended fields may be
//! missing; a missing method is then answered by its default (`#[sabi_trait]` calls the
//! trait's default body when the vtable lacks the method), which is why every method
//! appended in a minor has one. See docs/plugin-abi.md, "Versions".

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::StableAbi;
use abi_stable::abi_stability::abi_checking::{
    CheckingGlobals, check_layout_compatibility_with_globals,
};
use abi_stable::library::{LibHeader, LibraryError, RootModule, lib_header_from_path};
use abi_stable::sabi_types::VersionNumber;

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
    let found = VersionNumber::new(header.version_strings()).map_err(|e| LoadError::Other {
        path: path.to_path_buf(),
        reason: format!("its ABI version is not a version number: {e}"),
    })?;
    let host = host_version();
    if found.major == host.major && found.minor < host.minor {
        return open_older(path, header);
    }
    header
        .init_root_module::<PluginModRef>()
        .map_err(|e| classify(path, e))
}

/// This host's ABI version, parsed.
pub fn host_version() -> VersionNumber {
    VersionNumber {
        major: version_part(0),
        minor: version_part(1),
        patch: version_part(2),
    }
}

fn version_part(i: usize) -> u32 {
    ABI_VERSION
        .split('.')
        .nth(i)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// A plugin of an older minor of this major: its layout leads (see the module docs).
// The crate's one unsafe block of its own: abi_stable offers the older-side check only as
// a check plus an unchecked load.
#[allow(unsafe_code)]
fn open_older(path: &Path, header: &'static LibHeader) -> Result<PluginModRef, LoadError> {
    let Some(plugin_layout) = header.layout() else {
        return Err(LoadError::Other {
            path: path.to_path_buf(),
            reason: "its root module carries no layout to check".into(),
        });
    };
    // A check of its own, not the process-wide one: abi_stable records every prefix type it
    // checks in process-wide globals and measures later checks against the record. Recorded
    // with the older plugin as the interface, the record would hold the older (shorter)
    // vtables, and every current library loaded afterwards would be refused for having more
    // fields than it.
    let own_check = CheckingGlobals::new();
    check_layout_compatibility_with_globals(
        plugin_layout,
        <PluginModRef as StableAbi>::LAYOUT,
        &own_check,
    )
    .map_err(|e| LoadError::Layout {
        path: path.to_path_buf(),
        report: e.to_string(),
    })?;
    // SAFETY: the layout of every type reachable from the plugin's root module was just
    // checked against this host's, with the plugin's (older) layout as the interface: each
    // type the plugin knows is this host's, field for field, and this host's prefix types
    // only append fields after `last_prefix_field`. The plugin reads only the fields it
    // knows of the host's vtables; the host's accessors for fields the plugin lacks check
    // the vtable's own field count first and fall back to the trait's default method.
    let module = unsafe { header.init_root_module_with_unchecked_layout::<PluginModRef>() };
    module.map_err(|e| classify(path, e))
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
