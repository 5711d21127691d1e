//! The pipeline file's typed form (TOML). Its JSON Schema is generated into
//! `schemas/pipeline.schema.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::destination::DestinationConfig;

/// A pipeline file: replication environments, connections and pipelines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ionport pipeline file")]
pub struct PipelineFile {
    /// Replication environments: a destination and its state store. An environment is
    /// dedicated to one connection.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// Connections: a connector, its credentials and its settings.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionEntry>,
    /// Pipelines: which tasks of a connection replicate into which environment.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

/// A replication environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Where records and states go.
    pub destination: DestinationConfig,
}

/// Where a connection's credentials come from. Secrets are never written in the file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged, deny_unknown_fields)]
pub enum CredentialsRef {
    /// An entry of the vault (`ionport vault import FILE --name NAME`).
    Vault {
        /// The vault entry's name.
        vault: String,
    },
    /// An `.ionapi` file (relative paths are relative to the pipeline file).
    IonApi {
        /// The file; `${VAR}` references are expanded.
        ionapi: PathBuf,
    },
}

/// A connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionEntry {
    /// The connector plugin's id, e.g. `infor-m3`.
    pub connector: String,
    /// The credentials: `{ vault = "NAME" }` or `{ ionapi = "FILE" }`.
    pub credentials: CredentialsRef,
    /// The connector's settings (its connection form without the credentials block),
    /// e.g. `{ company = 100 }` for M3. String values may reference the environment as
    /// `${VAR}`.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The tenant's API quota for this app, as `N/SECONDS` (default `1000/60`, the
    /// gateway's default): the client stays under it so the gateway never answers 429.
    /// `none` turns the client-side limit off.
    #[serde(default)]
    pub quota: Option<String>,
    /// At most this many gateway requests in flight (default 16).
    #[serde(default)]
    #[schemars(range(min = 1, max = 256))]
    pub max_in_flight: Option<usize>,
    /// How many times the host retries a failed gateway read (429, 502, 503, 504, a cut
    /// connection) after its first attempt before the connector sees the failure (default
    /// 5). `0` hands the first failure over at once.
    #[serde(default)]
    #[schemars(range(max = 20))]
    pub retries: Option<u32>,
}

/// How a pipeline's tasks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncModeChoice {
    /// Read everything every run.
    FullRefresh,
    /// Read what changed since the last run, where the task supports it (full refresh
    /// otherwise).
    Incremental,
}

/// A pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The connection to read.
    pub connection: String,
    /// The environment to write into.
    pub environment: String,
    /// The tasks to run (default: every predefined task of the connector), each once.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub tasks: Option<Vec<String>>,
    /// Sync mode (default: incremental where a task supports it).
    #[serde(default)]
    pub sync_mode: Option<SyncModeChoice>,
    /// Records per page asked of the source (default: the connector's).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100000))]
    pub page_size: Option<u32>,
    /// How many pages of one task may be in flight at once, where the source lets pages
    /// be fetched side by side (M3 key ranges, LN `$skip` windows, Data Lake result
    /// offsets); default: the connector's (4). `1` reads one page at a time. Requests
    /// still keep to the connection's `max_in_flight` and quota.
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub pages_in_flight: Option<u32>,
    /// How many tasks run at once (default 4).
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: Option<usize>,
    /// For `ionport daemon`: when to run. `every` and an interval, e.g. `every 15m`,
    /// `every 1h 30m`, `every 30s` (1s to 366d), or `cron:` and a five-field cron
    /// expression in UTC, e.g. `cron: 0 */2 * * *`.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// The JSON Schema of the pipeline file.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(PipelineFile).to_value()
}
