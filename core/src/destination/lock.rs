//! One writer per destination, across processes.
//!
//! File destinations and SQLite hold an exclusive `flock` on a lock file for as long as
//! the destination is open; the file also says who holds it (pid, host, command, since),
//! so that a second writer that gives up can name the holder. The OS drops the lock when
//! the holder exits, even under `kill -9`, so a crash never leaves a stale lock behind.
//! Postgres uses a session advisory lock instead (see `postgres`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::DestinationError;
use super::common::{now_rfc3339, redact_url};

/// How long an `open` waits for another writer to let go, unless
/// `IONPORT_DESTINATION_WAIT_SECS` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting `open` tries again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// The bounded wait for the writer lock: `IONPORT_DESTINATION_WAIT_SECS` (seconds, `0`
/// refuses at once) or [`DEFAULT_WAIT`].
pub fn lock_wait() -> Result<Duration, String> {
    match std::env::var("IONPORT_DESTINATION_WAIT_SECS") {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!("IONPORT_DESTINATION_WAIT_SECS is `{v}`; expected a number of seconds")
            }),
        Err(_) => Ok(DEFAULT_WAIT),
    }
}

/// Who holds (or last held) a destination's writer lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// The holder's host name (from `/etc/hostname` or `HOSTNAME`), when known.
    #[serde(default)]
    pub host: String,
    /// What the holder runs: its command line, URLs shown without their passwords.
    pub command: String,
    /// When it took the lock (RFC 3339).
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.host.is_empty() {
            write!(f, " on {}", self.host)?;
        }
        write!(f, " ({}), since {}", self.command, self.since)
    }
}

static COMMAND: OnceLock<String> = OnceLock::new();

/// Sets what this process says it runs in the lock files it holds (once; later calls are
/// ignored). By default: its command line.
pub fn set_holder_command(command: impl Into<String>) {
    let _ = COMMAND.set(command.into());
}

impl Holder {
    /// This process.
    pub fn this_process() -> Holder {
        let command = COMMAND.get_or_init(|| {
            let args: Vec<String> = std::env::args()
                .enumerate()
                .map(|(i, a)| {
                    let a = if i == 0 {
                        Path::new(&a)
                            .file_name()
                            .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
                    } else {
                        a
                    };
                    if a.contains("://") { redact_url(&a) } else { a }
                })
                .collect();
            let mut line = args.join(" ");
            if line.len() > 300 {
                let mut end = 300;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
                line.push('…');
            }
            line
        });
        Holder {
            pid: std::process::id(),
            host: host_name(),
            command: command.clone(),
            since: now_rfc3339(),
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// An exclusive lock on a lock file, held until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    path: PathBuf,
    // Holding the file open holds the lock: the guard was forgotten on purpose, and the
    // OS releases a `flock` when its file is closed.
    _file: fd_lock::RwLock<File>,
}

impl FileLock {
    /// Takes the lock at `path` (creating the file), waiting up to `wait` for another
    /// holder; `destination` is for messages.
    pub(crate) fn acquire(
        destination: &str,
        path: &Path,
        wait: Duration,
    ) -> Result<FileLock, DestinationError> {
        let open_err = |e: std::io::Error| DestinationError::Open {
            destination: destination.to_string(),
            message: format!("cannot open the lock file {}: {e}", path.display()),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(open_err)?;
        let mut lock = fd_lock::RwLock::new(file);
        let deadline = Instant::now() + wait;
        loop {
            let taken = match lock.try_write() {
                Ok(mut guard) => {
                    let me = Holder::this_process();
                    let written = serde_json::to_vec_pretty(&me)
                        .map_err(std::io::Error::other)
                        .and_then(|t| {
                            guard.set_len(0)?;
                            guard.seek(SeekFrom::Start(0))?;
                            guard.write_all(&t)?;
                            guard.sync_data()
                        });
                    std::mem::forget(guard);
                    written.map(|()| true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e),
            };
            if taken.map_err(open_err)? {
                tracing::debug!(destination, lock = %path.display(), "took the writer lock");
                return Ok(FileLock {
                    path: path.to_path_buf(),
                    _file: lock,
                });
            }
            if Instant::now() >= deadline {
                return Err(DestinationError::Busy {
                    destination: destination.to_string(),
                    holder: read_holder(path),
                    waited: wait,
                    lock: path.display().to_string(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Who the lock file at `path` says holds it (a holder that took the lock a moment ago
/// may not have written itself yet).
pub(crate) fn read_holder(path: &Path) -> String {
    let mut text = String::new();
    for _ in 0..5 {
        text.clear();
        if File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .is_ok()
            && let Ok(h) = serde_json::from_str::<Holder>(&text)
        {
            return h.to_string();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    "an unknown process (it has not written itself into the lock file)".into()
}
