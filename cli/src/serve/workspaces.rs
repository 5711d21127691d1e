//! Workspaces: the walls between the customers one server holds. Every connection (and
//! its vault entry), run, state, webhook, delivery and audit entry belongs to one; a
//! workspace key sees only its own, an admin key manages workspaces and keys and may act
//! in any (the `Ionport-Workspace` header).
//!
//! The list lives in `$IONPORT_HOME/workspaces.json` (written atomically; re-read when it
//! changes, so `ionport workspace` works beside a running server). `default` always
//! exists: a home without the file, and every record written before workspaces came,
//! is in it.
//!
//! Who the request is: the auth check (and the console's session check) set
//! [`CALLER`] for the request's task; handlers ask [`caller`] and scope every lookup to
//! its workspace, answering another workspace's id as unknown (404).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The workspace of a single-user setup, of `--api-key` keys and of everything stored
/// before workspaces came.
pub const DEFAULT: &str = "default";

/// The workspace file in the ionport home.
pub const WORKSPACE_FILE: &str = "workspaces.json";

/// The header an admin key names the workspace it acts in with.
pub const HEADER: &str = "ionport-workspace";

/// What a workspace may use; absent means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceLimits {
    /// Runs going at once in the workspace; one more is refused with 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_concurrent_runs: Option<u32>,
    /// Connections stored in the workspace; one more is refused with 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_connections: Option<u32>,
    /// Requests per minute the workspace's runs send to one tenant, on top of the
    /// tenant's own quota (the connection's `quota`): the runs wait for their turn, as
    /// for the tenant's quota (the time shows in a run's `gateway.rate_limit_wait_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub requests_per_minute: Option<u32>,
}

impl WorkspaceLimits {
    /// Each limit set must be at least 1: the field at fault and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (field, v) in [
            ("limits.max_concurrent_runs", self.max_concurrent_runs),
            ("limits.max_connections", self.max_connections),
            ("limits.requests_per_minute", self.requests_per_minute),
        ] {
            if v == Some(0) {
                return Err((
                    field.into(),
                    "expected at least 1 (leave it out for no limit)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// One workspace as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    /// 1 to 32 of `a-z 0-9 -`, starting with a letter or digit.
    pub name: String,
    /// Seconds since the Unix epoch (0 for `default`, which always existed).
    pub created: u64,
    #[serde(default)]
    pub limits: WorkspaceLimits,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct WorkspaceFile {
    workspaces: Vec<Workspace>,
}

/// Whether `name` may name a workspace; the reason when not. No `.` or `_`, so that a
/// workspace's vault entries (`ws.<workspace>.<connection>`) cannot be confused.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err("expected 1 to 32 of a-z 0-9 - (not starting with -)".into())
    }
}

/// The workspaces of one home.
#[derive(Debug)]
pub struct Workspaces {
    path: PathBuf,
    /// The file as of its modification time.
    cached: Mutex<(Option<SystemTime>, Vec<Workspace>)>,
}

fn default_workspace() -> Workspace {
    Workspace {
        name: DEFAULT.into(),
        created: 0,
        limits: WorkspaceLimits::default(),
    }
}

fn read_file(path: &Path) -> Result<Vec<Workspace>> {
    let mut list = match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str::<WorkspaceFile>(&text)
                .with_context(|| format!("{} is not a workspace file", path.display()))?
                .workspaces
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !list.iter().any(|w| w.name == DEFAULT) {
        list.insert(0, default_workspace());
    }
    Ok(list)
}

impl Workspaces {
    /// The workspaces of `home`; a file that is there but unreadable is an error.
    pub fn open(home: &Path) -> Result<Self> {
        let path = home.join(WORKSPACE_FILE);
        let list = read_file(&path)?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(Self {
            path,
            cached: Mutex::new((mtime, list)),
        })
    }

    /// Every workspace, `default` first, as the file says now.
    pub fn list(&self) -> Vec<Workspace> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let Ok(mut cache) = self.cached.lock() else {
            return vec![default_workspace()];
        };
        if cache.0 != mtime {
            match read_file(&self.path) {
                Ok(list) => *cache = (mtime, list),
                Err(e) => tracing::warn!(
                    "the workspace file is unreadable; kept the last one read: {e:#}"
                ),
            }
        }
        cache.1.clone()
    }

    pub fn get(&self, name: &str) -> Option<Workspace> {
        self.list().into_iter().find(|w| w.name == name)
    }

    /// Changes the list under `f` and writes it; `f`'s error leaves the file as it was.
    pub fn edit<T>(
        &self,
        f: impl FnOnce(&mut Vec<Workspace>) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        let mut cache = self
            .cached
            .lock()
            .map_err(|_| EditError::Io(anyhow::anyhow!("the workspace list is unavailable")))?;
        let mut list = read_file(&self.path).map_err(EditError::Io)?;
        let out = f(&mut list)?;
        let text = serde_json::to_string_pretty(&WorkspaceFile {
            workspaces: list.clone(),
        })
        .map_err(|e| EditError::Io(e.into()))?
            + "\n";
        super::store::write_private(&self.path, text.as_bytes()).map_err(EditError::Io)?;
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        *cache = (mtime, list);
        Ok(out)
    }
}

/// Why a change of the workspace list was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0:#}")]
    Io(anyhow::Error),
}

/// Adds workspace `name`.
pub fn create(
    ws: &Workspaces,
    name: &str,
    limits: WorkspaceLimits,
) -> Result<Workspace, EditError> {
    check_name(name).map_err(|r| EditError::Refused(format!("workspace name '{name}': {r}")))?;
    ws.edit(|list| {
        if list.iter().any(|w| w.name == name) {
            return Err(EditError::Exists(format!(
                "a workspace named '{name}' exists"
            )));
        }
        let w = Workspace {
            name: name.into(),
            created: super::auth::now(),
            limits,
        };
        list.push(w.clone());
        Ok(w)
    })
}

/// Deletes workspace `name`, which must hold no connection and no webhook (nothing of
/// a customer's is lost by a delete); `default` stays.
pub fn delete(
    ws: &Workspaces,
    name: &str,
    connections: usize,
    webhooks: usize,
) -> Result<(), EditError> {
    if name == DEFAULT {
        return Err(EditError::Refused(
            "the default workspace cannot be deleted".into(),
        ));
    }
    if connections > 0 || webhooks > 0 {
        return Err(EditError::Refused(format!(
            "workspace '{name}' still has {connections} connection(s) and {webhooks} webhook(s): delete them first"
        )));
    }
    ws.edit(|list| {
        let before = list.len();
        list.retain(|w| w.name != name);
        if list.len() == before {
            return Err(EditError::Missing(format!("no workspace '{name}'")));
        }
        Ok(())
    })
}

/// Who is making the request being handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name (never the key): what the audit log records.
    pub key: String,
    /// The workspace the request acts in.
    pub workspace: String,
    /// An admin key: manages workspaces and keys, reads the whole audit log, may act in
    /// any workspace.
    pub admin: bool,
    /// An admin request without `Ionport-Workspace`: the audit log is read overall.
    pub overall: bool,
}

tokio::task_local! {
    /// The caller of the request being handled (set by the auth and session checks).
    pub static CALLER: Caller;
}

/// The caller of the request being handled. Outside a request (never in the server's
/// own routes, which all run under a check), a workspace key's rights in `default`.
pub fn caller() -> Caller {
    CALLER.try_with(Clone::clone).unwrap_or_else(|_| Caller {
        key: super::audit::CONSOLE.into(),
        workspace: DEFAULT.into(),
        admin: false,
        overall: false,
    })
}

/// The workspace of the request being handled.
pub fn current() -> String {
    caller().workspace
}

/// The vault entry of connection `name` of `workspace`: `serve.<name>` in `default` (as
/// before workspaces), `ws.<workspace>.<name>` elsewhere (workspace names hold no `.`).
pub fn vault_entry(workspace: &str, name: &str) -> String {
    if workspace == DEFAULT {
        format!("serve.{name}")
    } else {
        format!("ws.{workspace}.{name}")
    }
}

/// The data directory of a workspace's API destinations: `data/` for `default` (as
/// before), `data/workspaces/<name>/` for the others, so that two workspaces' relative
/// paths never meet.
pub fn data_dir(home_data: &Path, workspace: &str) -> PathBuf {
    if workspace == DEFAULT {
        home_data.to_path_buf()
    } else {
        home_data.join("workspaces").join(workspace)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_and_vault_entries_cannot_collide() {
        for ok in ["a", "acme", "cust-42", "0x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a.b", "a_b", "-a", &"x".repeat(33), "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(vault_entry(DEFAULT, "m3"), "serve.m3");
        assert_eq!(vault_entry("acme", "m3"), "ws.acme.m3");
        // A default connection whose name looks like another workspace's entry.
        assert_ne!(
            vault_entry(DEFAULT, "ws.acme.m3"),
            vault_entry("acme", "m3")
        );
    }

    #[test]
    fn default_always_exists_and_the_file_is_reread() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::open(dir.path()).unwrap();
        assert_eq!(ws.list().len(), 1);
        create(&ws, "acme", WorkspaceLimits::default()).unwrap();
        assert!(matches!(
            create(&ws, "acme", WorkspaceLimits::default()),
            Err(EditError::Exists(_))
        ));
        // Another process's view (the CLI) sees it.
        let other = Workspaces::open(dir.path()).unwrap();
        let names: Vec<String> = other.list().into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["default", "acme"]);
    }
}
