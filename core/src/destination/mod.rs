//! Destinations: where replicated records land, together with each stream's state.
//!
//! A [`Destination`] receives commit units from the pipeline runner: the records a
//! connector emitted since its last checkpoint, and the state of that checkpoint. It
//! upserts the records on the stream's primary key and stores the state so that, after a
//! crash at any point (even `kill -9`), either both are visible or neither — a rerun
//! resumes from the last committed state and the destination holds every record exactly
//! once. SQLite and Postgres commit both in one transaction; file destinations make the
//! data durable before the state that points past it.
//!
//! What it is not: a pipeline. Which streams run, when, and with which state is the
//! runner's business ([`crate::pipeline`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod common;
mod files;
pub mod jsonl;
pub mod parquet;
pub mod postgres;
pub mod sqlite;

pub use common::table_name;

/// Whether a Postgres URL or key-value connection string holds a password in any form
/// (`user:pw@`, `?password=`, `password=`): an API that stores connection strings
/// refuses those.
pub fn postgres_url_has_password(url: &str) -> bool {
    common::has_password(url)
}

/// Opens (creating when missing) the destination `config` describes, with its state store.
/// A Postgres destination connects here, so an unreachable server fails now.
pub fn open(config: &DestinationConfig) -> Result<Box<dyn Destination>, DestinationError> {
    Ok(match config {
        DestinationConfig::Sqlite { path } => Box::new(sqlite::SqliteDestination::open(path)?),
        DestinationConfig::Postgres { url, schema } => {
            Box::new(postgres::PostgresDestination::open(url, schema)?)
        }
        DestinationConfig::Parquet { path } => Box::new(parquet::ParquetDestination::open(path)?),
        DestinationConfig::Jsonl { path } => Box::new(jsonl::JsonlDestination::open(path)?),
    })
}

/// What a destination knows of a stream: its name, record schema and keys.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    /// The stream (task) name, e.g. `customers` or `table:MITMAS`.
    pub name: String,
    /// JSON Schema of one record (properties with `type`, possibly `["string","null"]`).
    pub record_schema: Value,
    /// The fields records are upserted on.
    pub primary_key: Vec<String>,
    /// The cursor field, when the stream is incremental.
    pub cursor_field: Option<String>,
}

/// Where an environment's records and states go.
///
/// Its `Debug` output shows a Postgres URL without its password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DestinationConfig {
    /// A SQLite database file (created when missing). The embedded default.
    Sqlite {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// A Postgres database.
    Postgres {
        /// A connection URL, e.g. `postgres://user@127.0.0.1:5432/db`; `${VAR}` references
        /// are expanded from the environment.
        url: String,
        /// The schema to write into (created when missing).
        #[serde(default = "default_pg_schema")]
        schema: String,
    },
    /// One Parquet dataset per stream under a directory.
    Parquet {
        /// The directory.
        path: std::path::PathBuf,
    },
    /// One JSONL file per stream under a directory.
    Jsonl {
        /// The directory.
        path: std::path::PathBuf,
    },
}

impl std::fmt::Debug for DestinationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestinationConfig::Sqlite { path } => {
                f.debug_struct("Sqlite").field("path", path).finish()
            }
            DestinationConfig::Postgres { url, schema } => f
                .debug_struct("Postgres")
                .field("url", &common::redact_url(url))
                .field("schema", schema)
                .finish(),
            DestinationConfig::Parquet { path } => {
                f.debug_struct("Parquet").field("path", path).finish()
            }
            DestinationConfig::Jsonl { path } => {
                f.debug_struct("Jsonl").field("path", path).finish()
            }
        }
    }
}

fn default_pg_schema() -> String {
    "public".into()
}

/// A destination's failure. Messages name the destination, the stream and the cause; they
/// never contain a secret (a Postgres URL is shown without its password).
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// Opening or connecting failed.
    #[error("{destination}: cannot open: {message}")]
    Open {
        /// Which destination (kind and location).
        destination: String,
        /// Why.
        message: String,
    },
    /// Creating or evolving a stream's table failed.
    #[error("{destination}: stream {stream}: cannot prepare its table: {message}")]
    Schema {
        /// Which destination.
        destination: String,
        /// The stream.
        stream: String,
        /// Why.
        message: String,
    },
    /// A record does not fit (missing primary key, wrong type, ...).
    #[error("{destination}: stream {stream}: bad record: {message}")]
    Record {
        /// Which destination.
        destination: String,
        /// The stream.
        stream: String,
        /// Why.
        message: String,
    },
    /// Writing or committing failed.
    #[error("{destination}: {message}")]
    Write {
        /// Which destination.
        destination: String,
        /// Why.
        message: String,
    },
}

/// A destination with its state store. Implementations are used from blocking threads
/// (plugin callbacks), one stream per thread at a time, several streams concurrently.
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// A short description for messages, e.g. `sqlite:/data/ionport.db`.
    fn describe(&self) -> String;

    /// Creates the stream's table (or dataset) from its record schema, or evolves it:
    /// new properties become new columns; nothing is dropped.
    fn prepare(&self, stream: &StreamSpec) -> Result<(), DestinationError>;

    /// Commits one unit: `records` upserted on the primary key (a later record replaces an
    /// earlier one with the same key) and `state` as the stream's state — together.
    fn commit(
        &self,
        stream: &StreamSpec,
        records: &[Map<String, Value>],
        state: &Value,
    ) -> Result<(), DestinationError>;

    /// The last committed state of `stream`.
    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError>;

    /// Every stream's state, by stream name.
    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError>;

    /// Forgets the state of `stream`, or of every stream.
    fn reset_state(&self, stream: Option<&str>) -> Result<(), DestinationError>;

    /// A run of `stream` ended (successfully): file destinations compact and finalise
    /// here. Must be safe to call again after a crash.
    fn finish(&self, stream: &StreamSpec) -> Result<(), DestinationError>;
}
