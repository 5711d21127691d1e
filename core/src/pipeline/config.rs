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

/// A connection's daily budget: a number of requests, or `"none"`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "daily_budget: expected a number of requests per day (e.g. 250000) or \"none\""
)]
pub enum DailyBudgetEntry {
    /// Requests per UTC day.
    Requests(u64),
    /// `"none"`: no budget.
    Off(String),
}

/// A service account's authentication budget: its limits, or `"none"`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "auth_budget: expected { per_minute = N, per_day = N } (either may be left out) or \"none\""
)]
pub enum AuthBudgetEntry {
    /// `{ per_minute = 20, per_day = 1000 }` (either may be left out: Infor's figure).
    Limits(AuthLimits),
    /// `"none"`: no budget.
    Off(String),
}

/// An authentication budget's limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthLimits {
    /// First grants in any 60 s (at least 2; default 20).
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// First grants per UTC day (at least 1; default 1,000).
    #[serde(default)]
    pub per_day: Option<u64>,
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
    /// The tenant's daily budget of API executions (default 250,000, Infor's published
    /// limit): the requests of every connection to the tenant, across ionport processes
    /// sharing a home, are counted per UTC day; at 80% a warning is logged, and once it is
    /// spent calls fail with a clear error instead of being sent. `"none"` turns it off.
    #[serde(default)]
    pub daily_budget: Option<DailyBudgetEntry>,
    /// The service account's authentication budget (default Infor's: 20 a minute, 1,000
    /// a day): first grants, not refreshes, counted per UTC day across ionport processes
    /// sharing a home; past the minute's a grant waits, past the day's it is refused
    /// before it is sent. `{ per_minute = N, per_day = N }` or `"none"`.
    #[serde(default)]
    pub auth_budget: Option<AuthBudgetEntry>,
    /// How long one gateway request may take (default `60s`, the gateway's default target
    /// timeout; at most `300s`, the longest a gateway policy allows), e.g. `"120s"`.
    #[serde(default)]
    pub timeout: Option<String>,
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
    /// Where the connector runs: `"in-process"` (the default) or `"process"`, a child
    /// process of its own (`ionport plugin-host`) whose crash, hang or runaway memory
    /// fails the call it was in — reported with what happened — and never the host; the
    /// next call starts a new process. See docs/plugin-isolation.md.
    #[serde(default)]
    pub isolation: Option<crate::plugin::Isolation>,
    /// With `isolation = "process"`: how long the plugin may work without a word to the
    /// host during a call (default `"120s"`); past it its process is killed.
    #[serde(default)]
    pub isolation_timeout: Option<String>,
    /// With `isolation = "process"`: the process's memory limit in MiB (its address space,
    /// default 4096; `0` for none); an allocation past it fails the call.
    #[serde(default)]
    pub isolation_memory_mib: Option<u64>,
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
    /// The tasks to run (default: every predefined task of the connector), each once: a
    /// predefined task's name, or a stream the connector's `discover` offers (`table:OCUSMA`
    /// on M3, a Data Catalog object on Data Lake, `module.Service/EntitySet` on LN); or a
    /// table `{ name = "…", columns = ["…"], deletes = "soft" }` that reads only some
    /// columns or keeps deletions.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub tasks: Option<Vec<TaskEntry>>,
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
    /// What a task does when its stream's schema changed at the source since the
    /// destination's table was made (a new column, a changed type, a column gone):
    /// `"evolve"` (default) adds new columns and widens changed types (integer → number →
    /// string; boolean → string; anything → json); `"freeze"` keeps the destination's
    /// columns and does not read new fields; `"fail"` stops the task before it reads on a new
    /// column or a wider type. A column is never dropped or narrowed; every change is
    /// reported. A task may set its own.
    #[serde(default)]
    pub schema_changes: Option<crate::pipeline::drift::SchemaPolicy>,
}

/// A task of a pipeline: its name, or its name and the columns to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TaskEntry {
    /// A task or stream name, every column read.
    Name(String),
    /// A task or stream with options.
    Detailed(TaskDetail),
}

/// A task with options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDetail {
    /// The task or stream name.
    pub name: String,
    /// Only these columns (fields) are read and written, with the stream's primary key and
    /// cursor field always added; the connector asks the source for them alone.
    #[serde(default)]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub columns: Option<Vec<String>>,
    /// This task's `schema_changes` (default: the pipeline's).
    #[serde(default)]
    pub schema_changes: Option<crate::pipeline::drift::SchemaPolicy>,
    /// What happens to rows deleted at the source (default `ignore`).
    #[serde(default)]
    pub deletes: Option<Deletes>,
    /// Read the task in this many partitions (default 1: whole), each with a state of its
    /// own: `ionport run` reads them one after the other, a cluster runs each as a unit of
    /// its own, side by side on a Postgres destination. Only for a task whose connector
    /// declares its reads partitionable (offset-paged streams), read in full
    /// (`sync_mode = "full_refresh"`), into SQLite or Postgres, without `deletes = "soft"`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub partitions: Option<u32>,
}

/// What a task does with records deleted at the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Deletes {
    /// Deleted records stay in the destination as they were (live).
    #[default]
    Ignore,
    /// Deleted records stay in the destination with the time the deletion was seen in the
    /// column `_ionport_deleted_at` (null while live): read from the source's deletion
    /// flag where it has one (Data Lake), else found by a keys-only read after each
    /// successful sync (M3, LN).
    Soft,
}

impl TaskEntry {
    /// The task or stream name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(n) => n,
            Self::Detailed(d) => &d.name,
        }
    }

    /// The columns chosen, when some were.
    pub fn columns(&self) -> Option<&[String]> {
        match self {
            Self::Name(_) => None,
            Self::Detailed(d) => d.columns.as_deref(),
        }
    }

    /// The task's own `schema_changes`, when it set one.
    pub fn schema_changes(&self) -> Option<crate::pipeline::drift::SchemaPolicy> {
        match self {
            Self::Name(_) => None,
            Self::Detailed(d) => d.schema_changes,
        }
    }

    /// How many partitions the task is read in, when it set it.
    pub fn partitions(&self) -> Option<u32> {
        match self {
            Self::Name(_) => None,
            Self::Detailed(d) => d.partitions,
        }
    }

    /// What the task does with deletions at the source.
    pub fn deletes(&self) -> Deletes {
        match self {
            Self::Name(_) => Deletes::Ignore,
            Self::Detailed(d) => d.deletes.unwrap_or_default(),
        }
    }
}

// By hand rather than `untagged`, so that a mistake inside a table (an unknown key, a
// column that is not a string) is reported as such, not as "no variant matched".
impl<'de> Deserialize<'de> for TaskEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TaskEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a task name or a table { name = \"…\", columns = [\"…\"], deletes = \"ignore\" | \"soft\", partitions = N }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TaskEntry, E> {
                Ok(TaskEntry::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TaskEntry, A::Error> {
                TaskDetail::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(TaskEntry::Detailed)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The JSON Schema of the pipeline file.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(PipelineFile).to_value()
}
