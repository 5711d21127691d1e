//! Errors of the emulator's library API.

use std::io;

/// What can go wrong when starting or driving an emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The loopback listener could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The requested port (0 = any).
        port: u16,
        /// The underlying error.
        source: io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Other I/O failure (serving, signals).
    #[error("emulator I/O error: {0}")]
    Io(#[from] io::Error),
}
