//! Plugins: finding libraries, loading them through the ABI, validating them, and calling
//! them through typed wrappers.
//!
//! One bad library never stops the good ones: every refusal is kept, with the library's
//! path and the reason, beside the plugins that loaded.
//!
//! ```no_run
//! use ionport_core::plugin::PluginRegistry;
//!
//! let registry = PluginRegistry::load_from(&["target/debug".into()]);
//! for plugin in registry.plugins() {
//!     let m = plugin.manifest();
//!     println!("{} {} — {} tasks", m.id, m.version, plugin.tasks().len());
//! }
//! for refused in registry.refused() {
//!     eprintln!("refused {}: {refused}", refused.path().display());
//! }
//! ```

mod error;
pub mod isolate;
mod loaded;
mod registry;

pub use error::{CallError, PROCESS_FAILED, RefusedPlugin};
pub use isolate::{Isolation, IsolationLimits};
pub use loaded::LoadedPlugin;
pub use registry::{
    IsolationPolicy, PLUGIN_PATH_ENV, PluginRegistry, default_search_path, is_library_file,
    looks_like_plugin,
};
