//! Finding and loading plugin libraries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ionport_plugin_abi::abi_stable::std_types::RResult;
use ionport_plugin_abi::load;
use ionport_plugin_sdk::conformance::{check_form, check_manifest, check_tasks};

use super::isolate::IsolationLimits;
use super::{LoadedPlugin, RefusedPlugin};

/// Which plugins a registry loads in child processes of their own: every one whose id is
/// not in `except` (`ionport serve --isolate-plugins-except`). Each library is then
/// described through a process first — a library that crashes while loading costs that
/// process, not the host — and only the plugins in `except` are loaded in the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationPolicy {
    /// The plugin ids allowed in the host process.
    pub except: Vec<String>,
    /// The bounds of the isolated plugins' processes.
    pub limits: IsolationLimits,
}

/// The environment variable listing plugin directories (or library files), separated
/// like `PATH`.
pub const PLUGIN_PATH_ENV: &str = "IONPORT_PLUGIN_PATH";

/// Where plugins are looked for: the entries of `IONPORT_PLUGIN_PATH` when it is set;
/// otherwise beside the executable (and its `plugins/` folder), then the user's data
/// directory (`~/.local/share/ionport/plugins` on Linux).
pub fn default_search_path() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os(PLUGIN_PATH_ENV)
        && !v.is_empty()
    {
        return std::env::split_paths(&v).collect();
    }
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_path_buf());
        dirs.push(dir.join("plugins"));
    }
    if let Some(data) = dirs::data_dir() {
        dirs.push(data.join("ionport").join("plugins"));
    }
    dirs
}

/// Whether `path` is named like a shared library of this platform.
pub fn is_library_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    matches!(ext, "so" | "dylib" | "dll")
}

/// The plugins that loaded, and the libraries that were refused.
#[derive(Debug, Default)]
pub struct PluginRegistry {
    plugins: Vec<Arc<LoadedPlugin>>,
    refused: Vec<RefusedPlugin>,
    isolation: Option<IsolationPolicy>,
}

impl PluginRegistry {
    /// Loads every plugin library found in `entries` (directories are scanned, files are
    /// loaded as given). A library that is refused is recorded and the rest still load.
    pub fn load_from(entries: &[PathBuf]) -> Self {
        Self::load_with(entries, None)
    }

    /// [`Self::load_from`] under an isolation policy: with one, every plugin outside its
    /// allow-list runs in processes of its own ([`IsolationPolicy`]).
    pub fn load_with(entries: &[PathBuf], isolation: Option<IsolationPolicy>) -> Self {
        let mut reg = Self {
            isolation,
            ..Self::default()
        };
        for entry in entries {
            if entry.is_dir() {
                let Ok(read) = std::fs::read_dir(entry) else {
                    continue;
                };
                let mut libs: Vec<PathBuf> = read
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && is_library_file(p) && looks_like_plugin(p))
                    .collect();
                libs.sort();
                for lib in libs {
                    // A refusal is recorded in `refused`; the scan goes on.
                    let _ = reg.load(&lib);
                }
            } else if entry.exists() {
                let _ = reg.load(entry);
            }
        }
        reg
    }

    /// Loads from [`default_search_path`].
    pub fn load_default() -> Self {
        Self::load_from(&default_search_path())
    }

    /// Loads one library; on refusal the reason is recorded and returned.
    pub fn load(&mut self, path: &Path) -> Result<Arc<LoadedPlugin>, &RefusedPlugin> {
        match self.try_load(path) {
            Ok(p) => {
                tracing::debug!(plugin = p.id(), path = %path.display(), "plugin loaded");
                self.plugins.push(p.clone());
                Ok(p)
            }
            Err(e) => {
                // The caller decides how to report refusals (`refused()`).
                tracing::debug!("{e}");
                self.refused.push(e);
                Err(self.refused.last().expect("just pushed"))
            }
        }
    }

    fn try_load(&self, path: &Path) -> Result<Arc<LoadedPlugin>, RefusedPlugin> {
        // The same file reached twice (e.g. by a directory and an explicit entry).
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(p) = self
            .plugins
            .iter()
            .find(|p| p.path().canonicalize().ok().as_deref() == Some(canonical.as_path()))
        {
            return Ok(p.clone());
        }
        let plugin = match &self.isolation {
            Some(policy) => {
                let isolated = LoadedPlugin::describe_isolated(path, policy.limits.clone())
                    .map_err(|error| RefusedPlugin::Isolated {
                        path: path.to_path_buf(),
                        error: Box::new(error),
                    })?;
                if policy.except.iter().any(|id| id == isolated.id()) {
                    // Allowed in the host: its process ends here.
                    drop(isolated);
                    self.open_in_process(path)?
                } else {
                    isolated
                }
            }
            None => self.open_in_process(path)?,
        };
        self.validate(path, plugin)
    }

    fn open_in_process(&self, path: &Path) -> Result<LoadedPlugin, RefusedPlugin> {
        let module = load::open(path)?;
        let connector = match (module.new_connector())() {
            RResult::ROk(c) => c,
            RResult::RErr(e) => {
                return Err(RefusedPlugin::Invalid {
                    path: path.to_path_buf(),
                    problems: vec![format!("creating the connector failed: {e}")],
                });
            }
        };
        LoadedPlugin::describe(path, connector).map_err(|problems| RefusedPlugin::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    fn validate(
        &self,
        path: &Path,
        plugin: LoadedPlugin,
    ) -> Result<Arc<LoadedPlugin>, RefusedPlugin> {
        let missing = ionport_plugin_abi::capability::missing(&plugin.manifest().requires);
        if !missing.is_empty() {
            return Err(RefusedPlugin::MissingCapability {
                path: path.to_path_buf(),
                plugin_abi: plugin.manifest().abi_version.clone(),
                host_abi: ionport_plugin_abi::ABI_VERSION.to_string(),
                missing: missing.into_iter().map(str::to_string).collect(),
            });
        }
        let mut problems = check_manifest(plugin.manifest());
        problems.extend(check_form(plugin.connection_form()));
        problems.extend(check_tasks(plugin.tasks()));
        if !problems.is_empty() {
            return Err(RefusedPlugin::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        if let Some(first) = self.get(plugin.id()) {
            return Err(RefusedPlugin::DuplicateId {
                path: path.to_path_buf(),
                id: plugin.id().to_string(),
                first: first.path().to_path_buf(),
            });
        }
        Ok(Arc::new(plugin))
    }

    /// The isolation policy it was loaded under, if any.
    pub fn isolation(&self) -> Option<&IsolationPolicy> {
        self.isolation.as_ref()
    }

    /// The plugins that loaded, in load order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// The libraries that were refused, with the reasons.
    pub fn refused(&self) -> &[RefusedPlugin] {
        &self.refused
    }

    /// The plugin with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.id() == id)
    }

    /// Plugin ids and their libraries, for messages.
    pub fn ids(&self) -> HashMap<String, PathBuf> {
        self.plugins
            .iter()
            .map(|p| (p.id().to_string(), p.path().to_path_buf()))
            .collect()
    }
}

/// When scanning a directory, only libraries whose file name contains `connector` are
/// opened (`libionport_connector_m3.so`, `libacme_connector.so`): a directory beside the
/// executable holds other libraries too, and opening a library runs its initialisers.
/// Files named explicitly (in `IONPORT_PLUGIN_PATH` or on the command line) are always
/// opened.
pub fn looks_like_plugin(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.contains("connector")
}
