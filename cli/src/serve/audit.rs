//! The audit log: one JSON line per change, appended to `$IONPORT_HOME/audit.jsonl`
//! under an exclusive file lock (the server and `ionport apikey` both append) and synced
//! to disk before the change is answered. It holds who (the API key's *name*), where (the
//! workspace), what (action and target) and which fields changed — names only, never a
//! value, so no secret can reach it.
//!
//! Handlers make one call each ([`record`]) after their change succeeded: only the
//! handler knows which fields it changed and whether it changed anything, which a layer
//! seeing bytes could not tell. The key's name and workspace come from the auth check
//! through a task-local ([`super::workspaces::CALLER`]), so handlers (also called by the
//! console) keep their signatures.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The log file in the ionport home.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Who a change is recorded under when no API key is at hand. Requests of the API and
/// of a signed-in console session both run with a caller set to their key, so this is a
/// fallback only (a handler called outside either check).
pub const CONSOLE: &str = "console";
/// Who `ionport apikey` changes are recorded under: whoever runs the command on the home.
pub const COMMAND_LINE: &str = "command-line";

/// One change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its place in the log (0 is the first line); set when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When (seconds since the Unix epoch).
    pub time: u64,
    /// The name of the API key that made it (a web console change: its session's key;
    /// `command-line` for `ionport apikey`).
    pub key: String,
    /// The workspace the change was made in (`key.*` and `workspace.*` changes: the
    /// workspace of the key or the workspace changed).
    pub workspace: String,
    /// `connection.created`, `connection.updated`, `connection.deleted`,
    /// `connection.tested`, `key.created`, `key.revoked`, `run.started`, `run.cancelled`,
    /// `webhook.created`, `webhook.deleted`, `state.reset` (from the console; `changed`
    /// names the task, `state.*` for all).
    pub action: String,
    /// What was changed: a connection, key, run or webhook id.
    pub target: String,
    /// The fields that changed (dotted names; never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// How it ended, when that is part of the action (a test: `passed` or `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// The log of one home.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(home: &Path) -> Self {
        Self {
            path: home.join(AUDIT_FILE),
        }
    }

    /// Appends `entry` and syncs it to disk.
    pub fn append(&self, entry: &AuditEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let file = opts
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let mut lock = fd_lock::RwLock::new(file);
        let mut f = lock
            .write()
            .with_context(|| format!("locking {}", self.path.display()))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))
    }

    /// The entries matching `filter`, oldest first, from line `from` on, at most `limit`,
    /// and the line to go on from when there are more.
    pub fn read(&self, filter: &AuditFilter, from: u64, limit: usize) -> Result<AuditPage> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AuditPage {
                    entries: Vec::new(),
                    next: None,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let mut entries = Vec::new();
        let mut next = None;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let seq = i as u64;
            let line = line.with_context(|| format!("reading {}", self.path.display()))?;
            if seq < from || line.trim().is_empty() {
                continue;
            }
            let mut e: AuditEntry = serde_json::from_str(&line).with_context(|| {
                format!("{} line {}: not an audit entry", self.path.display(), i + 1)
            })?;
            if !filter.matches(&e) {
                continue;
            }
            if entries.len() == limit {
                next = Some(seq);
                break;
            }
            e.seq = Some(seq);
            entries.push(e);
        }
        Ok(AuditPage { entries, next })
    }
}

/// Which entries to read.
#[derive(Debug, Default)]
pub struct AuditFilter {
    /// Only this workspace's entries (a workspace key's reads always set it).
    pub workspace: Option<String>,
    /// An action (`connection.updated`), or a family ending in `.` (`connection.`).
    pub action: Option<String>,
    /// A target, exactly.
    pub target: Option<String>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEntry) -> bool {
        let action = self.action.as_deref().is_none_or(|a| {
            if a.ends_with('.') {
                e.action.starts_with(a)
            } else {
                e.action == a
            }
        });
        action
            && self.target.as_deref().is_none_or(|t| e.target == t)
            && self.workspace.as_deref().is_none_or(|w| e.workspace == w)
    }
}

/// A page of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Give this as `from` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// The entry for a change made now by the caller of the request being handled.
pub fn entry(action: &str, target: &str, changed: Vec<String>) -> AuditEntry {
    let caller = super::workspaces::caller();
    AuditEntry {
        seq: None,
        time: super::auth::now(),
        key: caller.key,
        workspace: caller.workspace,
        action: action.into(),
        target: target.into(),
        changed,
        outcome: None,
    }
}

/// Records a change made by the current request. A change that was made but could not
/// be recorded is logged loudly and not undone (the answer would lie about the state).
pub fn record(log: &AuditLog, entry: AuditEntry) {
    if let Err(e) = log.append(&entry) {
        tracing::error!(action = %entry.action, target = %entry.target, "the audit log could not be written: {e:#}");
    }
}

/// The dotted names of the leaves that differ between `a` and `b` (objects are walked,
/// anything else compared whole), under `prefix`. Only names come out, never values.
pub fn changed_fields(prefix: &str, a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(prefix, a, b, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    &sub,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_fields_are_names_only() {
        let a = json!({"page_size": 50, "values": {"credentials": {"password": "old"}}});
        let b = json!({"page_size": 60, "values": {"credentials": {"password": "new"}}, "quota": "1/s"});
        assert_eq!(
            changed_fields("", &a, &b),
            ["page_size", "quota", "values.credentials.password"]
        );
    }

    #[test]
    fn entries_are_appended_read_in_pages_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        for (i, action) in ["connection.created", "run.started", "connection.deleted"]
            .iter()
            .enumerate()
        {
            let mut e = entry(action, &format!("t{i}"), vec![]);
            e.key = "ci".into();
            log.append(&e).unwrap();
        }
        let all = log.read(&AuditFilter::default(), 0, 2).unwrap();
        assert_eq!(all.entries.len(), 2);
        assert_eq!(all.next, Some(2));
        let rest = log.read(&AuditFilter::default(), 2, 2).unwrap();
        assert_eq!(rest.entries[0].target, "t2");
        assert_eq!(rest.next, None);
        let f = AuditFilter {
            action: Some("connection.".into()),
            ..AuditFilter::default()
        };
        let conn = log.read(&f, 0, 10).unwrap();
        let targets: Vec<_> = conn.entries.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, ["t0", "t2"]);
    }
}
