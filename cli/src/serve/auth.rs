//! API keys: random 32-byte keys, held only as SHA-256 hashes and compared in constant
//! time. Keys come from `--api-key` / `IONPORT_API_KEYS` and from
//! `$IONPORT_HOME/apikeys.json` (written by `ionport apikey create`, mode 0600; re-read
//! when it changes, so a revoked key stops working without a restart).
//!
//! Each stored key has a role and a workspace: an **admin** key (every key made before
//! workspaces, every `--api-key`, `ionport apikey create` without `--workspace`) manages
//! workspaces and keys and may act in any workspace; a **workspace** key sees only its
//! own workspace.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The key file in the ionport home.
pub const KEY_FILE: &str = "apikeys.json";

/// What a key may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages workspaces and keys, reads the whole audit log, acts in any workspace.
    /// Keys stored before workspaces came are admin keys of `default`.
    #[default]
    Admin,
    /// Sees and changes its own workspace only.
    Workspace,
}

fn default_workspace() -> String {
    super::workspaces::DEFAULT.into()
}

/// One stored key: its name, hash, role, workspace and creation time. The key itself is
/// never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    #[serde(default)]
    pub role: Role,
    /// The workspace it acts in (an admin key: unless `Ionport-Workspace` names another).
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

/// Who a key is: its name, role and workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub admin: bool,
    pub workspace: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KeyFile {
    pub keys: Vec<StoredKey>,
}

pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random key: `ionp_` + 32 random bytes, base64url.
pub fn new_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!(
        "ionp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn key_file(home: &Path) -> PathBuf {
    home.join(KEY_FILE)
}

pub fn load_file(path: &Path) -> Result<KeyFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a key file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save_file(path: &Path, file: &KeyFile) -> Result<()> {
    let text = serde_json::to_string_pretty(file)? + "\n";
    super::store::write_private(path, text.as_bytes())
}

/// Whether `name` may name a key; the reason when not.
pub fn check_key_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("expected 1 to 64 of A-Z a-z 0-9 . _ -".into())
    }
}

/// Adds a key named `name` (an admin key of `default`) and returns the key (shown once).
#[cfg(test)]
pub fn create(home: &Path, name: &str) -> Result<String> {
    create_in(home, name, Role::Admin, super::workspaces::DEFAULT)
}

/// Adds a key named `name` with `role` in `workspace` and returns the key (shown once).
/// The caller checks that the workspace exists.
pub fn create_in(home: &Path, name: &str, role: Role, workspace: &str) -> Result<String> {
    let path = key_file(home);
    let mut file = load_file(&path)?;
    if file.keys.iter().any(|k| k.name == name) {
        anyhow::bail!("a key named '{name}' exists (revoke it first, or pick another --name)");
    }
    let key = new_key()?;
    file.keys.push(StoredKey {
        name: name.to_string(),
        sha256: hex(&hash(&key)),
        created: now(),
        role,
        workspace: workspace.to_string(),
    });
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    save_file(&path, &file)?;
    Ok(key)
}

/// Removes the key named `name`; false when there was none.
pub fn revoke(home: &Path, name: &str) -> Result<bool> {
    let path = key_file(home);
    let mut file = load_file(&path)?;
    let before = file.keys.len();
    file.keys.retain(|k| k.name != name);
    if file.keys.len() == before {
        return Ok(false);
    }
    save_file(&path, &file)?;
    Ok(true)
}

/// Revokes every key of `workspace`; how many there were.
pub fn revoke_workspace(home: &Path, workspace: &str) -> Result<usize> {
    let path = key_file(home);
    let mut file = load_file(&path)?;
    let before = file.keys.len();
    file.keys.retain(|k| k.workspace != workspace);
    let gone = before - file.keys.len();
    if gone > 0 {
        save_file(&path, &file)?;
    }
    Ok(gone)
}

/// A key of the key file: its hash and who it is.
type FileKey = ([u8; 32], Identity);

/// The hashes a server accepts.
#[derive(Debug)]
pub struct Keys {
    given: Vec<[u8; 32]>,
    file: PathBuf,
    /// The key file's hashes and names, as of its modification time.
    cached: Mutex<(Option<SystemTime>, Vec<FileKey>)>,
}

impl Keys {
    /// Keys given on the command line plus the key file; fails with none at all.
    pub fn new(given: &[String], file: PathBuf) -> Result<Arc<Self>> {
        let given: Vec<[u8; 32]> = given
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .map(hash)
            .collect();
        let keys = Self {
            given,
            file,
            cached: Mutex::new((None, Vec::new())),
        };
        let stored = load_file(&keys.file)?;
        if keys.given.is_empty() && stored.keys.is_empty() {
            anyhow::bail!(
                "no API key: give --api-key KEY (or IONPORT_API_KEYS), or create one with `ionport apikey create`"
            );
        }
        Ok(Arc::new(keys))
    }

    /// The name of the accepted key whose hash is `h`: its name in the key file, or
    /// `api-key-N` for the Nth `--api-key` (constant-time per comparison).
    #[cfg(test)]
    pub fn name_of(&self, h: &[u8; 32]) -> Option<String> {
        self.identify(h).map(|i| i.name)
    }

    /// Who the accepted key whose hash is `h` is: a key file's name, role and workspace;
    /// the Nth `--api-key` is `api-key-N`, an admin key of `default` (constant-time per
    /// comparison).
    pub fn identify(&self, h: &[u8; 32]) -> Option<Identity> {
        let mut found = None;
        for (i, k) in self.given.iter().enumerate() {
            if bool::from(k.ct_eq(h)) {
                found = Some(Identity {
                    name: format!("api-key-{}", i + 1),
                    admin: true,
                    workspace: super::workspaces::DEFAULT.into(),
                });
            }
        }
        for (k, who) in self.file_keys() {
            if bool::from(k.ct_eq(h)) {
                found = Some(who);
            }
        }
        found
    }

    fn file_keys(&self) -> Vec<FileKey> {
        let mtime = std::fs::metadata(&self.file)
            .and_then(|m| m.modified())
            .ok();
        let Ok(mut cache) = self.cached.lock() else {
            return Vec::new();
        };
        if cache.0 != mtime || mtime.is_none() {
            let hashes = load_file(&self.file)
                .map(|f| {
                    f.keys
                        .iter()
                        .filter_map(|k| {
                            Some((
                                unhex(&k.sha256)?,
                                Identity {
                                    name: k.name.clone(),
                                    admin: k.role == Role::Admin,
                                    workspace: k.workspace.clone(),
                                },
                            ))
                        })
                        .collect()
                })
                .unwrap_or_else(|e| {
                    tracing::warn!("API key file unreadable, its keys are refused: {e:#}");
                    Vec::new()
                });
            *cache = (mtime, hashes);
        }
        cache.1.clone()
    }

    /// Whether `key` is one of the accepted keys (constant-time per comparison).
    pub fn accepts(&self, key: &str) -> bool {
        self.accepts_hash(&hash(key))
    }

    /// Whether the key whose hash is `h` is still accepted: a console session keeps the
    /// hash of the key it signed in with (never the key) and asks on every request, so
    /// revoking a key (`ionport apikey revoke`) ends its sessions at once.
    pub fn accepts_hash(&self, h: &[u8; 32]) -> bool {
        let mut ok = subtle::Choice::from(0u8);
        let file: Vec<[u8; 32]> = self.file_keys().into_iter().map(|(k, _)| k).collect();
        for k in self.given.iter().chain(file.iter()) {
            ok |= k.ct_eq(h);
        }
        bool::from(ok)
    }
}

/// The key of a request: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
fn presented(req: &Request) -> Option<&str> {
    let h = req.headers();
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    h.get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Paths open without a key: liveness, and the API's description (it holds no data, and
/// clients are generated from it before anyone has a key).
pub const OPEN: &[&str] = &["/health", "/openapi.json"];

/// The caller a key's identity makes, in the workspace `asked` (`Ionport-Workspace`)
/// when given: an admin key may name any existing workspace; any other name, and any
/// name but its own for a workspace key, is answered as unknown (404), the same whether
/// the workspace exists or not.
pub fn caller_of(
    st: &AppState,
    who: Identity,
    asked: Option<&str>,
) -> Result<super::workspaces::Caller, ApiError> {
    let overall = who.admin && asked.is_none();
    let workspace = match asked {
        None => who.workspace.clone(),
        Some(w) if w == who.workspace => w.to_string(),
        Some(w) if who.admin && st.workspaces.get(w).is_some() => w.to_string(),
        Some(w) => return Err(ApiError::not_found("workspace", w)),
    };
    Ok(super::workspaces::Caller {
        key: who.name,
        workspace,
        admin: who.admin,
        overall,
    })
}

/// The auth check, in front of routing: every path but those in [`OPEN`] needs a key;
/// unknown paths too. The 401 says nothing about what exists. An accepted key's request
/// runs as its [`super::workspaces::Caller`]: the audit log records changes under its
/// name, and handlers scope everything to its workspace.
pub async fn require_key(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if OPEN.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let who = presented(&req)
        .filter(|k| !k.is_empty())
        .and_then(|k| st.keys.identify(&hash(k)));
    if let Some(who) = who {
        let asked = req
            .headers()
            .get(super::workspaces::HEADER)
            .map(|v| v.to_str().unwrap_or("").trim().to_string());
        return match caller_of(&st, who, asked.as_deref()) {
            Ok(c) => super::workspaces::CALLER.scope(c, next.run(req)).await,
            Err(e) => e.into_response(),
        };
    }
    st.metrics.unauthorized_requests.inc();
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)",
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hashes_round_trip_and_keys_are_checked() {
        let dir = tempfile_dir();
        let key = create(&dir, "ci").unwrap();
        assert!(key.starts_with("ionp_") && key.len() > 40);
        let text = std::fs::read_to_string(key_file(&dir)).unwrap();
        assert!(!text.contains(&key));
        let keys = Keys::new(&["given-key".into()], key_file(&dir)).unwrap();
        assert!(keys.accepts(&key));
        assert!(keys.accepts("given-key"));
        assert!(!keys.accepts("wrong"));
        assert_eq!(keys.name_of(&hash(&key)).as_deref(), Some("ci"));
        assert_eq!(
            keys.name_of(&hash("given-key")).as_deref(),
            Some("api-key-1")
        );
        assert_eq!(keys.name_of(&hash("wrong")), None);
        assert!(revoke(&dir, "ci").unwrap());
        assert!(!revoke(&dir, "ci").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("ionport-auth-{}-{}", std::process::id(), now()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
