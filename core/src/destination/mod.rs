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
use serde_json::Value;

use crate::read::Records;

mod common;
mod files;
pub mod jsonl;
pub mod lock;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "postgres")]
pub mod postgres;
mod row;
mod segments;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use common::table_name;
pub use common::{Column, ColumnType, stream_columns};
pub(crate) use row::StreamKeys;

/// The column that marks a row deleted at the source (`deletes = "soft"`): the UTC time
/// (RFC 3339 text) the deletion was seen, null while the row is live. The host adds it to
/// a task's record schema, so every destination creates it as any other nullable column.
pub const DELETED_AT_COLUMN: &str = "_ionport_deleted_at";
pub use files::{RepairReport, StreamRepair};

/// Whether a Postgres URL or key-value connection string holds a password in any form
/// (`user:pw@`, `?password=`, `password=`): an API that stores connection strings
/// refuses those.
pub fn postgres_url_has_password(url: &str) -> bool {
    common::has_password(url)
}

/// Opens (creating when missing) the destination `config` describes, with its state store,
/// as its only writer: while it is open, another `open` of the same destination — in this
/// process or another — waits up to `IONPORT_DESTINATION_WAIT_SECS` (default 10 s), then
/// fails with [`DestinationError::Busy`] naming the holder. A Postgres destination
/// connects here, so an unreachable server fails now.
pub fn open(config: &DestinationConfig) -> Result<Box<dyn Destination>, DestinationError> {
    let wait = lock::lock_wait().map_err(|message| DestinationError::Open {
        destination: format!("{config:?}"),
        message,
    })?;
    open_waiting(config, wait)
}

/// [`open`], waiting at most `wait` for another writer to let go.
pub fn open_waiting(
    config: &DestinationConfig,
    wait: std::time::Duration,
) -> Result<Box<dyn Destination>, DestinationError> {
    config.built()?;
    Ok(match config {
        #[cfg(feature = "sqlite")]
        DestinationConfig::Sqlite { path } => {
            Box::new(sqlite::SqliteDestination::open_waiting(path, wait)?)
        }
        #[cfg(feature = "postgres")]
        DestinationConfig::Postgres { url, schema } => Box::new(
            postgres::PostgresDestination::open_waiting(url, schema, wait)?,
        ),
        #[cfg(feature = "parquet")]
        DestinationConfig::Parquet { path } => {
            Box::new(parquet::ParquetDestination::open_waiting(path, wait)?)
        }
        DestinationConfig::Jsonl { path } => {
            Box::new(jsonl::JsonlDestination::open_waiting(path, wait)?)
        }
        #[allow(unreachable_patterns)]
        other => return Err(not_built(other)),
    })
}

/// [`open`] as the writer of one partition of a stream, `partition` naming it (e.g.
/// `customers#1/3`): a Postgres destination lets the writers of a stream's partitions in
/// side by side — their upserts touch disjoint rows and each commits its own state — and
/// keeps out a writer of the whole destination while any of them is in (and the other way
/// round). Every other kind takes its one writer lock, so partitions there write one after
/// the other.
pub fn open_partition_writer(
    config: &DestinationConfig,
    partition: &str,
) -> Result<Box<dyn Destination>, DestinationError> {
    let wait = lock::lock_wait().map_err(|message| DestinationError::Open {
        destination: format!("{config:?}"),
        message,
    })?;
    open_partition_writer_waiting(config, partition, wait)
}

/// [`open_partition_writer`], waiting at most `wait` for a writer that keeps it out.
pub fn open_partition_writer_waiting(
    config: &DestinationConfig,
    partition: &str,
    wait: std::time::Duration,
) -> Result<Box<dyn Destination>, DestinationError> {
    #[cfg(feature = "postgres")]
    if let DestinationConfig::Postgres { url, schema } = config {
        return Ok(Box::new(postgres::PostgresDestination::open_partition(
            url, schema, wait, partition,
        )?));
    }
    let _ = partition;
    open_waiting(config, wait)
}

/// The cargo feature that builds a kind of destination (`None`: always built).
fn feature_of(config: &DestinationConfig) -> Option<(&'static str, bool)> {
    match config {
        DestinationConfig::Sqlite { .. } => Some(("sqlite", cfg!(feature = "sqlite"))),
        DestinationConfig::Postgres { .. } => Some(("postgres", cfg!(feature = "postgres"))),
        DestinationConfig::Parquet { .. } => Some(("parquet", cfg!(feature = "parquet"))),
        DestinationConfig::Jsonl { .. } => None,
    }
}

fn not_built(config: &DestinationConfig) -> DestinationError {
    DestinationError::NotBuilt {
        kind: config.kind(),
        feature: feature_of(config).map_or("", |(f, _)| f),
    }
}

/// Repairs a damaged file destination (`ionport repair`): in every stream's commit log,
/// the lines that are not records are moved aside into `_ionport/<table>/damaged-*.jsonl`,
/// the rest is kept, and the stream's state is reset so that its next run reads it again
/// (the upsert makes that exact). Takes the writer lock like any writer. SQLite and
/// Postgres commit in transactions and have nothing of the kind: their report is empty.
pub fn repair(config: &DestinationConfig) -> Result<RepairReport, DestinationError> {
    config.built()?;
    match config {
        DestinationConfig::Jsonl { path } => jsonl::JsonlDestination::open(path)?.repair(),
        #[cfg(feature = "parquet")]
        DestinationConfig::Parquet { path } => parquet::ParquetDestination::open(path)?.repair(),
        DestinationConfig::Sqlite { .. } | DestinationConfig::Postgres { .. } => {
            Ok(RepairReport::default())
        }
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The JSON Schema of a [`DestinationConfig`] (a pipeline file's `destination`, the HTTP
/// API's connection destinations): one object per kind, told apart by `type`. Every kind is
/// in it in every build; [`DestinationConfig::built`] says which this build has.
pub fn json_schema() -> Value {
    schemars::schema_for!(DestinationConfig).to_value()
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

impl DestinationConfig {
    /// The kind as a pipeline file's `type` names it: `sqlite`, `postgres`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            DestinationConfig::Sqlite { .. } => "sqlite",
            DestinationConfig::Postgres { .. } => "postgres",
            DestinationConfig::Parquet { .. } => "parquet",
            DestinationConfig::Jsonl { .. } => "jsonl",
        }
    }

    /// Whether this build of ionport has this kind of destination: every kind parses in
    /// every build (a pipeline file means the same everywhere), but the ones behind a cargo
    /// feature that was off fail here, naming the feature.
    pub fn built(&self) -> Result<(), DestinationError> {
        match feature_of(self) {
            Some((_, false)) => Err(not_built(self)),
            _ => Ok(()),
        }
    }
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
    /// A record has a field the stream's record schema does not declare: its own variant,
    /// so that the runner can evolve the schema mid-run (`schema_changes`) without reading
    /// a message.
    #[error(
        "{destination}: stream {stream}: bad record: field `{field}` ({value_type}) is not in the stream's record schema"
    )]
    UnknownField {
        /// Which destination.
        destination: String,
        /// The stream.
        stream: String,
        /// The field.
        field: String,
        /// The JSON type of its value (never the value).
        value_type: &'static str,
    },
    /// Writing or committing failed.
    #[error("{destination}: {message}")]
    Write {
        /// Which destination.
        destination: String,
        /// Why.
        message: String,
    },
    /// Another writer holds the destination (one writer per destination).
    #[error(
        "{destination}: another writer holds it: {holder}; gave up after waiting {waited:?} (lock: {lock}). One writer per destination: let it finish, or stop it"
    )]
    Busy {
        /// Which destination.
        destination: String,
        /// Who holds it: pid, host, what it runs, since when.
        holder: String,
        /// How long this open waited.
        waited: std::time::Duration,
        /// The lock: a file, or a Postgres advisory lock.
        lock: String,
    },
    /// The kind of destination was left out of this build (a cargo feature of
    /// `ionport-core` that was off).
    #[error(
        "this build of ionport has no {kind} destination; it was built without the `{feature}` feature"
    )]
    NotBuilt {
        /// `sqlite`, `postgres` or `parquet`.
        kind: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// A file of the destination is not what ionport wrote (a writer outside ionport, a
    /// disk fault): nothing more is written to the stream until it is repaired.
    #[error(
        "{destination}: stream {stream}: {file} is damaged at line {line}: {message}; run `ionport repair {destination}` to set the damaged lines aside and reset the stream's state"
    )]
    Damaged {
        /// Which destination (as `ionport repair` takes it).
        destination: String,
        /// The stream.
        stream: String,
        /// The damaged file.
        file: String,
        /// The first damaged line (1-based).
        line: u64,
        /// What is wrong with it.
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
    /// earlier one with the same key) and `state` as the stream's state — together. A
    /// record that does not fit the stream's schema fails the whole unit.
    fn commit(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
    ) -> Result<(), DestinationError>;

    /// [`Destination::commit`], with `state` stored under `state_key` instead of the
    /// stream's name: the state of one partition of a stream read in partitions, whose
    /// records share the stream's table. The default refuses: a file destination's state is
    /// the commit point of the stream's one log, so it keeps one state per stream.
    fn commit_as(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
        state_key: &str,
    ) -> Result<(), DestinationError> {
        let _ = (records, state);
        Err(DestinationError::Write {
            destination: self.describe(),
            message: format!(
                "stream {}: this destination keeps one state per stream, not {state_key}'s",
                stream.name
            ),
        })
    }

    /// The last committed state of `stream`.
    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError>;

    /// Every stream's state, by stream name.
    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError>;

    /// Forgets the state of `stream`, or of every stream.
    fn reset_state(&self, stream: Option<&str>) -> Result<(), DestinationError>;

    /// A run of `stream` ended (successfully): file destinations compact and finalise
    /// here. Must be safe to call again after a crash.
    fn finish(&self, stream: &StreamSpec) -> Result<(), DestinationError>;

    /// The columns the destination holds for `stream`, with their types, or `None` when
    /// it holds no table for it yet: what the runner compares a stream's schema with when
    /// a task starts (`pipeline::drift`). A destination that cannot tell (the default)
    /// answers `None`, and its streams' schema changes are then neither reported nor
    /// refused.
    fn columns(&self, _stream: &StreamSpec) -> Result<Option<Vec<Column>>, DestinationError> {
        Ok(None)
    }

    /// Marks deleted every row of `stream` whose key text (the canonical text of its
    /// primary key: its values in key order as a JSON array, normalised to the column
    /// types, as the keys-only pass builds it) is not in `live_keys` and that is
    /// not marked yet: its [`DELETED_AT_COLUMN`] becomes `at`, its other values stay.
    /// Returns how many rows it marked. All or nothing: SQL destinations mark in one
    /// transaction, file destinations in one commit. The stream must have the column and
    /// a primary key. The default refuses (a destination that cannot mark rows).
    fn mark_deleted(
        &self,
        stream: &StreamSpec,
        live_keys: &std::collections::HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        let _ = (live_keys, at);
        Err(DestinationError::Write {
            destination: self.describe(),
            message: format!(
                "stream {}: this destination cannot mark deleted rows",
                stream.name
            ),
        })
    }
}

/// Why `mark_deleted` cannot run on `table`, if it cannot: no deletion column (the task
/// does not keep deletions) or no primary key (rows cannot be told apart).
pub(crate) fn unmarkable(destination: &str, table: &common::TableSpec) -> Option<DestinationError> {
    let message = if table.column(DELETED_AT_COLUMN).is_none() {
        format!("it has no `{DELETED_AT_COLUMN}` column (the task has no `deletes = \"soft\"`)")
    } else if table.key_len == 0 {
        "it has no primary key, so deleted rows cannot be told from live ones".to_string()
    } else {
        return None;
    };
    Some(DestinationError::Schema {
        destination: destination.to_string(),
        stream: table.stream.clone(),
        message: format!("cannot mark deleted rows: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in a reduced build (`cargo test -p ionport-core --no-default-features --lib`):
    /// in the default build every kind is there and the error cannot happen.
    #[test]
    fn a_destination_left_out_of_the_build_is_named_with_its_feature() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let configs = [
            (
                DestinationConfig::Sqlite {
                    path: dir.path().join("x.db"),
                },
                cfg!(feature = "sqlite"),
                "no sqlite destination; it was built without the `sqlite` feature",
            ),
            (
                DestinationConfig::Postgres {
                    url: "postgres://u@127.0.0.1:1/db".into(),
                    schema: "public".into(),
                },
                cfg!(feature = "postgres"),
                "no postgres destination; it was built without the `postgres` feature",
            ),
            (
                DestinationConfig::Parquet {
                    path: dir.path().join("pq"),
                },
                cfg!(feature = "parquet"),
                "no parquet destination; it was built without the `parquet` feature",
            ),
        ];
        for (config, built, message) in configs {
            if built {
                assert!(config.built().is_ok(), "{config:?}");
                continue;
            }
            for err in [
                open_waiting(&config, std::time::Duration::ZERO).map(|_| ()),
                repair(&config).map(|_| ()),
            ] {
                let text = err.expect_err("a kind left out fails").to_string();
                assert_eq!(text, format!("this build of ionport has {message}"));
            }
        }
        // JSONL is in every build.
        let jsonl = DestinationConfig::Jsonl {
            path: dir.path().join("j"),
        };
        assert!(jsonl.built().is_ok());
        assert!(open_waiting(&jsonl, std::time::Duration::ZERO).is_ok());
    }
}

#[cfg(test)]
#[path = "deletes_tests.rs"]
mod deletes_tests;
