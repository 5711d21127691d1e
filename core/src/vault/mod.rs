//! The credential vault: connections' credentials (secrets included) and rotated refresh
//! tokens, encrypted at rest.
//!
//! - Location: `$IONPORT_HOME/vault.json` (default `IONPORT_HOME`: the user's data
//!   directory + `ionport`, e.g. `~/.local/share/ionport`).
//! - Key: 32 bytes from `IONPORT_VAULT_KEY` (base64 or hex), else the key file
//!   `$IONPORT_HOME/vault.key`, created with mode 0600 on first use.
//! - Cipher: XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`), a fresh random nonce per
//!   write, the header authenticated as associated data.
//! - Writes: under an exclusive lock on `vault.lock` (`fd-lock`), read-modify-write, then a
//!   temporary file in the same directory, fsync, rename, fsync of the directory. Two
//!   processes writing at once lose nothing.
//! - A wrong key, a tampered or a truncated file is an error naming the file; the store
//!   is then never written.
//! - Tokens: each entry also holds its latest access token (with its wall-clock expiry)
//!   and rotated refresh token, encrypted like the rest, so that every process using the
//!   entry shares them ([`Vault::tokens`], [`Vault::set_tokens`]). Token requests for an
//!   entry are serialised across processes by an OS file lock on
//!   `$IONPORT_HOME/locks/NAME.token.lock` ([`Vault::try_lock_tokens`]), released by the
//!   OS when its holder exits, however it exits.
//! - Sign-ins: an entry stored by `ionport vault login` ([`Vault::put_login`]) holds the
//!   app's credentials without a service account, the tokens of the user who signed in
//!   and [`EntryGrant::AuthorizationCode`]: its token manager lives on refresh tokens.
//!
//! Secrets are decrypted only in memory, held in zeroising types, and masked in every
//! `Debug` output.
//!
//! ```
//! use ionport_core::credentials::Credentials;
//! use ionport_core::vault::{KeySource, Vault};
//!
//! let home = tempfile::tempdir()?;
//! // A fixed key for the example; by default the key file is created on first use.
//! let key = KeySource::Text("0000000000000000000000000000000000000000000000000000000000000000".to_string().into());
//! let vault = Vault::open(home.path(), key);
//! let ionapi = r#"{"ti": "ACME_PRD", "ci": "ACME_PRD~app", "cs": "client-secret-value",
//!   "iu": "https://ionapi.example.com", "pu": "https://sso.example.com/ACME_PRD/as/",
//!   "oa": "authorization.oauth2", "ot": "token.oauth2", "or": "revoke_token.oauth2",
//!   "saak": "ACME_PRD#svc", "sask": "service-secret-value"}"#;
//! vault.put("acme-prd", &Credentials::from_ionapi_str(ionapi, "example")?, false)?;
//!
//! let entry = vault.get("acme-prd")?;
//! assert_eq!(entry.credentials.api_base().as_str(), "https://ionapi.example.com/ACME_PRD/");
//! // Nothing on disk holds a secret in the clear.
//! assert!(!std::fs::read_to_string(vault.path())?.contains("client-secret-value"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::credentials::{Credentials, CredentialsError, MASK};

mod login;
mod sealed;
mod tokens;

pub use login::EntryGrant;
pub use tokens::TokenLock;

/// The environment variable naming ionport's home directory.
pub const HOME_ENV: &str = "IONPORT_HOME";
/// The environment variable holding the vault key (32 bytes, base64 or hex).
pub const KEY_ENV: &str = "IONPORT_VAULT_KEY";
/// The vault file name inside the home directory.
pub const VAULT_FILE: &str = "vault.json";
/// The key file name inside the home directory.
pub const KEY_FILE: &str = "vault.key";
/// The lock file name inside the home directory.
pub const LOCK_FILE: &str = "vault.lock";
/// The directory of the per-entry token locks inside the home directory.
pub const LOCKS_DIR: &str = "locks";

const FORMAT: &str = "ionport-vault";
const VERSION: u32 = 1;
const CIPHER: &str = "XChaCha20-Poly1305";

/// Why the vault could not be used. Every message names the file involved; none contains
/// a secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No home directory could be determined.
    #[error("no ionport home directory: set {HOME_ENV}")]
    NoHome,
    /// File I/O failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The key is not usable.
    #[error("{origin}: {problem}")]
    BadKey {
        /// `IONPORT_VAULT_KEY` or the key file.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// The vault exists but its key file does not.
    #[error(
        "{vault} exists but its key file {key} is missing: set {KEY_ENV} to the key it was written with, or restore the key file (the vault was not changed)"
    )]
    KeyMissing {
        /// The vault file.
        vault: PathBuf,
        /// The expected key file.
        key: PathBuf,
    },
    /// The file is not a complete vault (truncated, empty, or another file).
    #[error(
        "{path}: not a readable ionport vault ({problem}); the file may be truncated or damaged; it was not changed"
    )]
    Corrupt {
        /// The vault file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key is not the one the vault was written with.
    #[error(
        "{path}: the vault key from {key_origin} is not the key this vault was written with; the vault was not changed"
    )]
    WrongKey {
        /// The vault file.
        path: PathBuf,
        /// Where the key came from.
        key_origin: String,
    },
    /// Decryption failed with the right key: the file was altered.
    #[error(
        "{path}: the vault failed its integrity check: the file was altered or damaged after it was written; it was not changed"
    )]
    Tampered {
        /// The vault file.
        path: PathBuf,
    },
    /// No such entry.
    #[error("{path}: no vault entry named '{name}'")]
    NotFound {
        /// The vault file.
        path: PathBuf,
        /// The entry name.
        name: String,
    },
    /// The entry exists already.
    #[error("{path}: a vault entry named '{name}' exists already (remove it first, or replace it)")]
    Exists {
        /// The vault file.
        path: PathBuf,
        /// The entry name.
        name: String,
    },
    /// An invalid entry name.
    #[error(
        "'{name}' is not a valid vault entry name: use letters, digits, '.', '_' or '-' (at most 128)"
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// An entry's credentials are invalid.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> VaultError {
    let path = path.to_path_buf();
    move |source| VaultError::Io {
        path,
        action,
        source,
    }
}

/// The default home: `IONPORT_HOME`, else the user's data directory + `ionport`.
pub fn default_home() -> Result<PathBuf, VaultError> {
    if let Some(h) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    dirs::data_dir()
        .map(|d| d.join("ionport"))
        .ok_or(VaultError::NoHome)
}

/// Where the vault key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// `IONPORT_VAULT_KEY` if set, else the key file in the home directory.
    Default,
    /// The key file in the home directory (created on first use).
    KeyFile,
    /// A key given as text (base64 or hex of 32 bytes).
    Text(SecretString),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("Default"),
            Self::KeyFile => f.write_str("KeyFile"),
            Self::Text(_) => write!(f, "Text({MASK})"),
        }
    }
}

/// A 32-byte vault key, zeroised on drop.
struct VaultKey {
    bytes: Zeroizing<[u8; 32]>,
    origin: String,
}

impl VaultKey {
    fn parse(text: &str, origin: &str) -> Result<Self, VaultError> {
        let t = text.trim();
        let decoded: Option<Zeroizing<Vec<u8>>> =
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                let mut v = Zeroizing::new(Vec::with_capacity(32));
                for i in (0..64).step_by(2) {
                    v.push(u8::from_str_radix(&t[i..i + 2], 16).unwrap_or(0));
                }
                Some(v)
            } else {
                STANDARD
                    .decode(t)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
                    .ok()
                    .map(Zeroizing::new)
            };
        match decoded {
            Some(v) if v.len() == 32 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                bytes.copy_from_slice(&v);
                Ok(Self {
                    bytes,
                    origin: origin.to_string(),
                })
            }
            _ => Err(VaultError::BadKey {
                origin: origin.to_string(),
                problem: "the vault key must be 32 bytes written as base64 (44 characters) or hex (64 characters); generate one with `openssl rand -base64 32`".into(),
            }),
        }
    }

    fn generate(origin: &str) -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        Self {
            bytes,
            origin: origin.to_string(),
        }
    }

    /// A public fingerprint of the key, so that a wrong key and a tampered file can be told
    /// apart.
    fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"ionport-vault-key-id\0");
        h.update(&self.bytes[..]);
        let d = h.finalize();
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.bytes).into())
    }
}

/// The file on disk: a header in clear (authenticated) and the encrypted entries.
#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    cipher: String,
    key_id: String,
    nonce: String,
    ciphertext: String,
}

impl Envelope {
    fn aad(&self) -> Vec<u8> {
        format!(
            "{}/{}/{}/{}",
            self.format, self.version, self.cipher, self.key_id
        )
        .into_bytes()
    }
}

/// One entry as stored (inside the encryption).
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct StoredEntry {
    /// The `.ionapi` keys, secrets included.
    ionapi: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// When the refresh token was issued or last used (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_used_ms: Option<u64>,
    /// The latest access token, shared by the processes using this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_issued_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_expires_ms: Option<u64>,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    updated: u64,
    /// How the entry gets its first token (absent in entries written before sign-ins).
    #[serde(default, skip_serializing_if = "EntryGrant::is_password")]
    #[zeroize(skip)]
    grant: EntryGrant,
}

#[derive(Serialize, Deserialize, Default)]
struct Plain {
    entries: BTreeMap<String, StoredEntry>,
}

/// One vault entry: a connection's credentials and its current refresh token.
#[derive(Clone)]
pub struct VaultEntry {
    /// The entry name.
    pub name: String,
    /// The credentials.
    pub credentials: Credentials,
    /// The latest refresh token, when one was issued and not revoked.
    pub refresh_token: Option<SecretString>,
    /// How the entry gets its first token.
    pub grant: EntryGrant,
    /// When the entry was created (seconds since the Unix epoch).
    pub created: u64,
    /// When it was last written.
    pub updated: u64,
}

impl fmt::Debug for VaultEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultEntry")
            .field("name", &self.name)
            .field("credentials", &self.credentials)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| MASK))
            .field("grant", &self.grant)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

/// What `list` shows of an entry: no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultSummary {
    /// The entry name.
    pub name: String,
    /// Tenant id.
    pub tenant: String,
    /// The app name, when known.
    pub app_name: Option<String>,
    /// Client id.
    pub client_id: String,
    /// The API base (`iu/ti`).
    pub service_url: String,
    /// The service-account access key, when there is a service account.
    pub service_account: Option<String>,
    /// Whether a refresh token is stored.
    pub has_refresh_token: bool,
    /// How the entry gets its first token.
    pub grant: EntryGrant,
    /// Created (seconds since the Unix epoch).
    pub created: u64,
    /// Last written.
    pub updated: u64,
}

impl VaultEntry {
    /// The entry without secrets.
    pub fn summary(&self) -> VaultSummary {
        let c = &self.credentials;
        VaultSummary {
            name: self.name.clone(),
            tenant: c.tenant.clone(),
            app_name: c.app_name.clone(),
            client_id: c.client_id.clone(),
            service_url: c.api_base().as_str().trim_end_matches('/').to_string(),
            service_account: c.service_account.as_ref().map(|s| s.access_key.clone()),
            has_refresh_token: self.refresh_token.is_some(),
            grant: self.grant,
            created: self.created,
            updated: self.updated,
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadName {
            name: name.to_string(),
        })
    }
}

/// The vault of one ionport home directory.
pub struct Vault {
    home: PathBuf,
    path: PathBuf,
    key_source: KeySource,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("key_source", &self.key_source)
            .finish()
    }
}

impl Vault {
    /// The vault in the default home with the default key source.
    pub fn open_default() -> Result<Self, VaultError> {
        Ok(Self::open(default_home()?, KeySource::Default))
    }

    /// The vault in `home`. Nothing is read or created until it is used.
    pub fn open(home: impl Into<PathBuf>, key_source: KeySource) -> Self {
        let home = home.into();
        Self {
            path: home.join(VAULT_FILE),
            home,
            key_source,
        }
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key file (used when `IONPORT_VAULT_KEY` is not set).
    pub fn key_file(&self) -> PathBuf {
        self.home.join(KEY_FILE)
    }

    fn ensure_home(&self) -> Result<(), VaultError> {
        if !self.home.is_dir() {
            std::fs::create_dir_all(&self.home)
                .map_err(io_err(&self.home, "creating the directory"))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let _ =
                    std::fs::set_permissions(&self.home, std::fs::Permissions::from_mode(0o700));
            }
        }
        Ok(())
    }

    /// The key; `create` allows creating the key file when neither the vault nor the key
    /// exists yet.
    fn key(&self, create: bool) -> Result<Option<VaultKey>, VaultError> {
        let text = match &self.key_source {
            KeySource::Text(t) => Some((
                Zeroizing::new(t.expose_secret().to_string()),
                "the given vault key".to_string(),
            )),
            KeySource::Default => std::env::var(KEY_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (Zeroizing::new(v), KEY_ENV.to_string())),
            KeySource::KeyFile => None,
        };
        if let Some((t, origin)) = text {
            return VaultKey::parse(&t, &origin).map(Some);
        }
        let key_path = self.key_file();
        match std::fs::read_to_string(&key_path) {
            Ok(t) => {
                let t = Zeroizing::new(t);
                #[cfg(unix)]
                if let Ok(meta) = std::fs::metadata(&key_path) {
                    use std::os::unix::fs::PermissionsExt as _;
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(
                            path = %key_path.display(),
                            "the vault key file is readable by other users; run chmod 600 on it"
                        );
                    }
                }
                VaultKey::parse(&t, &key_path.display().to_string()).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.path.exists() {
                    return Err(VaultError::KeyMissing {
                        vault: self.path.clone(),
                        key: key_path,
                    });
                }
                if !create {
                    return Ok(None);
                }
                self.ensure_home()?;
                let key = VaultKey::generate(&key_path.display().to_string());
                let text = Zeroizing::new(STANDARD.encode(&key.bytes[..]) + "\n");
                let mut opts = OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    opts.mode(0o600);
                }
                match opts.open(&key_path) {
                    Ok(mut f) => {
                        f.write_all(text.as_bytes())
                            .and_then(|()| f.sync_all())
                            .map_err(io_err(&key_path, "writing the new key file"))?;
                        tracing::info!(path = %key_path.display(), "created a new vault key file");
                        Ok(Some(key))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let t = Zeroizing::new(
                            std::fs::read_to_string(&key_path)
                                .map_err(io_err(&key_path, "reading the key file"))?,
                        );
                        VaultKey::parse(&t, &key_path.display().to_string()).map(Some)
                    }
                    Err(e) => Err(io_err(&key_path, "creating the key file")(e)),
                }
            }
            Err(e) => Err(io_err(&key_path, "reading the key file")(e)),
        }
    }

    fn read_plain(&self, key: Option<&VaultKey>) -> Result<Plain, VaultError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Plain::default()),
            Err(e) => return Err(io_err(&self.path, "reading the vault")(e)),
        };
        let corrupt = |problem: &str| VaultError::Corrupt {
            path: self.path.clone(),
            problem: problem.to_string(),
        };
        let env: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            corrupt(&format!(
                "invalid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        if env.format != FORMAT || env.version != VERSION || env.cipher != CIPHER {
            return Err(corrupt(&format!(
                "format '{}' version {} cipher '{}', expected '{FORMAT}' version {VERSION} '{CIPHER}'",
                env.format, env.version, env.cipher
            )));
        }
        let Some(key) = key else {
            return Err(VaultError::KeyMissing {
                vault: self.path.clone(),
                key: self.key_file(),
            });
        };
        if env.key_id != key.id() {
            return Err(VaultError::WrongKey {
                path: self.path.clone(),
                key_origin: key.origin.clone(),
            });
        }
        let nonce = STANDARD
            .decode(&env.nonce)
            .map_err(|_| corrupt("the nonce is not base64"))?;
        if nonce.len() != 24 {
            return Err(corrupt("the nonce has the wrong length"));
        }
        let ct = STANDARD
            .decode(&env.ciphertext)
            .map_err(|_| corrupt("the ciphertext is not base64"))?;
        let aad = env.aad();
        let plain = key
            .cipher()
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Tampered {
                path: self.path.clone(),
            })?;
        let plain = Zeroizing::new(plain);
        serde_json::from_slice(&plain)
            .map_err(|_| corrupt("the decrypted contents are not a vault"))
    }

    fn write_plain(&self, key: &VaultKey, plain: &Plain) -> Result<(), VaultError> {
        let text = Zeroizing::new(serde_json::to_vec(plain).map_err(|e| VaultError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut env = Envelope {
            format: FORMAT.into(),
            version: VERSION,
            cipher: CIPHER.into(),
            key_id: key.id(),
            nonce: STANDARD.encode(nonce),
            ciphertext: String::new(),
        };
        let aad = env.aad();
        let ct = key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: &text,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Corrupt {
                path: self.path.clone(),
                problem: "encryption failed".into(),
            })?;
        env.ciphertext = STANDARD.encode(ct);
        let out = serde_json::to_vec_pretty(&env).map_err(|e| VaultError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        crate::atomic::AtomicWrite::private()
            .write(&self.path, &out)
            .map_err(io_err(&self.path, "replacing the vault"))?;
        Ok(())
    }

    fn lock_file(&self) -> Result<fd_lock::RwLock<File>, VaultError> {
        let path = self.home.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "opening the lock file"))?;
        Ok(fd_lock::RwLock::new(f))
    }

    /// Reads the whole vault.
    fn load(&self) -> Result<Plain, VaultError> {
        if !self.path.exists() {
            return Ok(Plain::default());
        }
        let key = self.key(false)?;
        let lock = self.lock_file()?;
        let _guard = lock
            .read()
            .map_err(io_err(&self.home, "locking the vault"))?;
        self.read_plain(key.as_ref())
    }

    /// Read-modify-write under the exclusive lock. Nothing is written when reading fails
    /// or `f` fails.
    fn update<R>(
        &self,
        f: impl FnOnce(&mut Plain) -> Result<R, VaultError>,
    ) -> Result<R, VaultError> {
        self.ensure_home()?;
        let mut lock = self.lock_file()?;
        let _guard = lock
            .write()
            .map_err(io_err(&self.home, "locking the vault"))?;
        let key = self.key(true)?.ok_or_else(|| VaultError::KeyMissing {
            vault: self.path.clone(),
            key: self.key_file(),
        })?;
        let mut plain = self.read_plain(Some(&key))?;
        let r = f(&mut plain)?;
        self.write_plain(&key, &plain)?;
        Ok(r)
    }

    fn entry(&self, name: &str, stored: &StoredEntry) -> Result<VaultEntry, VaultError> {
        let credentials = Credentials::from_ionapi_str(
            &stored.ionapi,
            &format!("vault entry '{name}' in {}", self.path.display()),
        )?;
        Ok(VaultEntry {
            name: name.to_string(),
            credentials,
            refresh_token: stored.refresh_token.as_deref().map(SecretString::from),
            grant: stored.grant,
            created: stored.created,
            updated: stored.updated,
        })
    }

    /// Every entry, without secrets, by name.
    pub fn list(&self) -> Result<Vec<VaultSummary>, VaultError> {
        let plain = self.load()?;
        plain
            .entries
            .iter()
            .map(|(n, e)| self.entry(n, e).map(|e| e.summary()))
            .collect()
    }

    /// One entry, secrets included (masked in `Debug`).
    pub fn get(&self, name: &str) -> Result<VaultEntry, VaultError> {
        let plain = self.load()?;
        let stored = plain
            .entries
            .get(name)
            .ok_or_else(|| VaultError::NotFound {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        self.entry(name, stored)
    }

    /// Stores credentials under `name`; with `replace`, an existing entry is replaced
    /// (and its refresh token dropped).
    pub fn put(
        &self,
        name: &str,
        credentials: &Credentials,
        replace: bool,
    ) -> Result<(), VaultError> {
        check_name(name)?;
        let ionapi = credentials.to_ionapi_json();
        self.update(|plain| {
            let t = now();
            let created = match plain.entries.get(name) {
                Some(_) if !replace => {
                    return Err(VaultError::Exists {
                        path: self.path.clone(),
                        name: name.to_string(),
                    });
                }
                Some(old) => old.created,
                None => t,
            };
            plain.entries.insert(
                name.to_string(),
                StoredEntry {
                    ionapi: ionapi.to_string(),
                    refresh_token: None,
                    refresh_used_ms: None,
                    access_token: None,
                    access_issued_ms: None,
                    access_expires_ms: None,
                    created,
                    updated: t,
                    grant: EntryGrant::Password,
                },
            );
            Ok(())
        })
    }

    /// Reads an `.ionapi` file and stores it under `name`.
    pub fn import_ionapi(
        &self,
        file: impl AsRef<Path>,
        name: &str,
        replace: bool,
    ) -> Result<VaultSummary, VaultError> {
        check_name(name)?;
        let creds = Credentials::from_ionapi_file(file)?;
        self.put(name, &creds, replace)?;
        self.get(name).map(|e| e.summary())
    }

    /// Removes an entry; `Ok(false)` when there was none.
    pub fn remove(&self, name: &str) -> Result<bool, VaultError> {
        if !self.path.exists() {
            return Ok(false);
        }
        self.update(|plain| Ok(plain.entries.remove(name).is_some()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_parse_as_base64_or_hex() {
        let hex = "00".repeat(32);
        assert!(VaultKey::parse(&hex, "t").is_ok());
        let b64 = STANDARD.encode([7u8; 32]);
        assert!(VaultKey::parse(&b64, "t").is_ok());
        let e = VaultKey::parse("short", "IONPORT_VAULT_KEY")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("IONPORT_VAULT_KEY") && e.contains("32 bytes"),
            "{e}"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("prod-1.eu_x").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("").is_err());
    }
}
