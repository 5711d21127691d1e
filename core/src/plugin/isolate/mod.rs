//! Process isolation: a plugin run in a child process (`ionport plugin-host LIB`) instead
//! of inside the host, so that a plugin that aborts, segfaults, hangs or grows without
//! bound costs one call, not the host. See docs/plugin-isolation.md.
//!
//! The child loads the library with the ABI's own loader and calls its connector; the
//! host side ([`ProcessConnector`]) is the backend of a [`super::LoadedPlugin`], so every
//! consumer reads through the one read path (`read::read_task`) whichever backend a
//! plugin has. The channel carries the ABI's JSON payloads unchanged in [`frame`]s; the
//! host's services (gateway, emit, checkpoint, progress, logs, cancellation) are served
//! back over it by the [`crate::host::HostCallbacks`] of the call.
//!
//! A failed process is reported as a [`ProcessFailure`] and dropped; the next call
//! starts a new one. Idle processes are kept for the next call (one per concurrent call).

mod child;
pub mod frame;
mod parent;

use std::path::PathBuf;
use std::time::Duration;

pub use child::serve_plugin_host;
pub use parent::{ProcessCallError, ProcessConnector};

/// The environment variable naming the program that runs `plugin-host` (default: the
/// running executable, which is `ionport`; an embedding program sets it to an `ionport`
/// binary).
pub const PLUGIN_HOST_ENV: &str = "IONPORT_PLUGIN_HOST";

/// The default [`IsolationLimits::call_timeout`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The default [`IsolationLimits::memory_limit_mib`].
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 4096;
/// After a cancellation, how long a plugin may stay silent before its process is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Where a connection's plugin runs.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Inside the host process (the default; the first-party connectors run so).
    #[default]
    InProcess,
    /// In a child process of its own (`ionport plugin-host`), restarted after a crash.
    Process,
}

/// The bounds of an isolated plugin's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationLimits {
    /// How long the plugin may work without a word to the host during a call (no host
    /// request, no batch, no answer); time the host spends serving one of its requests
    /// does not count. Past it the process is killed and the call fails.
    pub call_timeout: Duration,
    /// The process's address-space limit (`RLIMIT_AS`), MiB; `0` for none. An
    /// allocation past it fails and the process aborts, which is reported as the limit.
    pub memory_limit_mib: u64,
    /// The program run as `PROGRAM plugin-host LIB` (`None`: [`PLUGIN_HOST_ENV`], else
    /// the running executable).
    pub program: Option<PathBuf>,
}

impl Default for IsolationLimits {
    fn default() -> Self {
        Self {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            memory_limit_mib: DEFAULT_MEMORY_LIMIT_MIB,
            program: None,
        }
    }
}

impl IsolationLimits {
    pub(crate) fn program(&self) -> std::io::Result<PathBuf> {
        if let Some(p) = &self.program {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os(PLUGIN_HOST_ENV).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        std::env::current_exe()
    }
}

/// What happened to an isolated plugin's process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessFailure {
    /// Killed by a signal (a segfault, an abort, ...).
    #[error("its process (pid {pid}) was killed by signal {name} ({description}){}", stderr_note(.stderr))]
    Signal {
        /// The process id.
        pid: u32,
        /// `SIGSEGV`, `SIGABRT`, ...
        name: String,
        /// What the signal means.
        description: String,
        /// The last lines the process wrote on stderr.
        stderr: String,
    },
    /// Exited without being asked to.
    #[error("its process (pid {pid}) exited with code {code}{}", stderr_note(.stderr))]
    Exit {
        /// The process id.
        pid: u32,
        /// The exit code.
        code: i32,
        /// The last lines it wrote on stderr.
        stderr: String,
    },
    /// An allocation failed at the memory limit and the process aborted.
    #[error(
        "it exceeded the memory limit of {limit_mib} MiB (its process, pid {pid}, aborted: {detail})"
    )]
    MemoryLimit {
        /// The process id.
        pid: u32,
        /// The limit.
        limit_mib: u64,
        /// The allocator's line.
        detail: String,
    },
    /// Silent past the call timeout; the process was killed.
    #[error("timed out after {} without a word to the host (the isolation call timeout); its process (pid {pid}) was killed", humantime::format_duration(*.after))]
    TimedOut {
        /// The process id.
        pid: u32,
        /// The timeout.
        after: Duration,
    },
    /// The process could not be started.
    #[error("its process could not be started ({program}): {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// The loader refused the library inside the process.
    #[error("{0}")]
    LoadRefused(String),
    /// The process broke the channel's protocol.
    #[error("its process (pid {pid}) broke the protocol: {message}")]
    Protocol {
        /// The process id.
        pid: u32,
        /// What was wrong.
        message: String,
    },
}

fn stderr_note(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; its last words: {}", stderr.trim())
    }
}

/// The name and meaning of a signal number.
pub(crate) fn signal_name(n: i32) -> (String, &'static str) {
    let (name, what) = match n {
        1 => ("SIGHUP", "hang-up"),
        2 => ("SIGINT", "interrupted"),
        3 => ("SIGQUIT", "quit"),
        4 => ("SIGILL", "illegal instruction"),
        5 => ("SIGTRAP", "trap"),
        6 => ("SIGABRT", "aborted"),
        7 => ("SIGBUS", "bus error"),
        8 => ("SIGFPE", "arithmetic error"),
        9 => ("SIGKILL", "killed"),
        11 => ("SIGSEGV", "segmentation fault"),
        13 => ("SIGPIPE", "broken pipe"),
        15 => ("SIGTERM", "terminated"),
        24 => ("SIGXCPU", "CPU time limit exceeded"),
        25 => ("SIGXFSZ", "file size limit exceeded"),
        _ => return (format!("signal {n}"), "unknown signal"),
    };
    (name.to_string(), what)
}
