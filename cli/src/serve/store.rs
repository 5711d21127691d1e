//! Connection records: `$IONPORT_HOME/connections.json`, written atomically and durably
//! (`ionport_core::atomic`, mode 0600). A record holds no secret: its values are the form
//! values with every secret masked; the credentials themselves are in the vault entry
//! `serve.<name>` (`ws.<workspace>.<name>` outside `default`).
//!
//! Every record belongs to a workspace; names are unique within one. The file's map is
//! keyed `<name>` for `default` (as before workspaces, so an older file reads as
//! `default`'s) and `<workspace>/<name>` for the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ionport_core::destination::DestinationConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The store file in the ionport home.
pub const STORE_FILE: &str = "connections.json";

/// One predefined task as a connection uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionTask {
    /// The connector's task name.
    pub name: String,
    /// Whether a run of the connection includes it.
    pub enabled: bool,
    /// `incremental` or `full_refresh`.
    pub sync_mode: String,
    /// What happens to rows deleted at the source.
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::deletes_schema)]
    pub deletes: ionport_core::pipeline::config::Deletes,
    /// What a run does when the stream's schema changed at the source.
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::schema_changes_schema)]
    pub schema_changes: ionport_core::pipeline::drift::SchemaPolicy,
}

fn default_workspace() -> String {
    super::workspaces::DEFAULT.into()
}

fn is_default(w: &str) -> bool {
    w == super::workspaces::DEFAULT
}

/// A stored connection (no secret in it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub name: String,
    /// The workspace it belongs to (absent in a file written before workspaces: default).
    #[serde(default = "default_workspace", skip_serializing_if = "is_default")]
    pub workspace: String,
    pub connector: String,
    /// The form values, every secret masked.
    pub values: Value,
    /// The values a connector sees (no credentials, no secret).
    pub settings: Value,
    pub tasks: Vec<ConnectionTask>,
    pub destination: DestinationConfig,
    /// What the connection is for, in the user's words (at most 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub quota: Option<String>,
    /// Tasks a run reads at once (1 to 64; default the pipeline default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Host retries of a failed gateway read (0 to 20; default the gateway's), as a
    /// pipeline file's connection key `retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Where the connector runs (`in-process` when absent), as a pipeline file's
    /// `isolation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<ionport_core::plugin::Isolation>,
    pub created: u64,
    pub updated: u64,
}

impl ConnectionRecord {
    /// The vault entry holding this connection's credentials.
    pub fn vault_entry(&self) -> String {
        vault_entry(&self.workspace, &self.name)
    }
}

pub fn vault_entry(workspace: &str, name: &str) -> String {
    super::workspaces::vault_entry(workspace, name)
}

/// The file's key of a record.
fn key(workspace: &str, name: &str) -> String {
    if is_default(workspace) {
        name.to_string()
    } else {
        format!("{workspace}/{name}")
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    connections: BTreeMap<String, ConnectionRecord>,
}

/// The records, in memory and on disk.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    records: BTreeMap<String, ConnectionRecord>,
}

impl Store {
    pub fn open(home: &Path) -> Result<Self> {
        let path = home.join(STORE_FILE);
        let records = match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str::<StoreFile>(&text)
                    .with_context(|| format!("{} is not a connection store", path.display()))?
                    .connections
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // A record's own workspace decides (the map key is only how it is filed).
        let records = records
            .into_values()
            .map(|r| (key(&r.workspace, &r.name), r))
            .collect();
        Ok(Self { path, records })
    }

    /// Connection `name` of `workspace`.
    pub fn get(&self, workspace: &str, name: &str) -> Option<&ConnectionRecord> {
        self.records.get(&key(workspace, name))
    }

    /// The connections of `workspace`.
    pub fn list<'a>(&'a self, workspace: &'a str) -> impl Iterator<Item = &'a ConnectionRecord> {
        self.records
            .values()
            .filter(move |r| r.workspace == workspace)
    }

    /// How many connections `workspace` has.
    pub fn count(&self, workspace: &str) -> usize {
        self.list(workspace).count()
    }

    /// Inserts or replaces a record and writes the file.
    pub fn put(&mut self, record: ConnectionRecord) -> Result<()> {
        let k = key(&record.workspace, &record.name);
        let old = self.records.insert(k.clone(), record);
        if let Err(e) = self.save() {
            match old {
                Some(o) => self.records.insert(k, o),
                None => self.records.remove(&k),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Removes a record and writes the file.
    pub fn remove(&mut self, workspace: &str, name: &str) -> Result<Option<ConnectionRecord>> {
        let k = key(workspace, name);
        let old = self.records.remove(&k);
        if let Err(e) = self.save() {
            if let Some(o) = old {
                self.records.insert(k, o);
            }
            return Err(e);
        }
        Ok(old)
    }

    fn save(&self) -> Result<()> {
        let file = StoreFile {
            connections: self.records.clone(),
        };
        let text = serde_json::to_string_pretty(&file)? + "\n";
        write_private(&self.path, text.as_bytes())
    }
}

/// Writes `bytes` to `path` atomically and durably, mode 0600 on Unix
/// ([`ionport_core::atomic::AtomicWrite::private`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    ionport_core::atomic::AtomicWrite::private()
        .write(path, bytes)
        .with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before description, concurrency and retries existed still loads,
    /// with them unset.
    #[test]
    fn a_store_without_the_newer_fields_loads() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let old = r#"{"connections": {"m3": {"name": "m3", "connector": "infor-m3",
            "values": {}, "settings": {}, "tasks": [],
            "destination": {"type": "sqlite", "path": "m3.db"},
            "page_size": 50, "quota": "none", "created": 1, "updated": 2}}}"#;
        std::fs::write(dir.path().join(STORE_FILE), old).expect("writing the store");
        let store = Store::open(dir.path()).expect("the old store loads");
        let r = store.get("default", "m3").expect("its record");
        assert_eq!(r.workspace, "default");
        assert_eq!(r.page_size, Some(50));
        assert_eq!(
            (r.description.as_deref(), r.concurrency, r.retries),
            (None, None, None)
        );
    }
}
