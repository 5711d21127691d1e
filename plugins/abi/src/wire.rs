//! The JSON payloads that cross the boundary as text.
//!
//! These types are part of the ABI: a field may be added in a minor ABI version only when
//! it is optional (`#[serde(default)]`), and unknown fields are always ignored, so that a
//! newer host can talk to an older plugin and the other way round.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Stable identifier, lowercase with dashes, e.g. `infor-m3`.
    pub id: String,
    /// Human name, e.g. `Infor M3`.
    pub name: String,
    /// The connector's own version (semver).
    pub version: String,
    /// The plugin ABI version the connector was built for ([`crate::ABI_VERSION`]).
    pub abi_version: String,
    /// One paragraph: what the connector reaches and how.
    pub description: String,
    /// The form of the names of the streams `discover` offers beyond the predefined
    /// tasks, when the connector reads such streams (so that a host can check a name
    /// before it connects). Added in ABI 1.x as an optional field: an older plugin has
    /// none, and a host then accepts only predefined task names up front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_names: Option<StreamNames>,
    /// Host capabilities ([`crate::capability`]) the plugin cannot work without. Added in
    /// ABI 1.1 as an optional field: a host that lacks one refuses the plugin, naming both
    /// ABI versions and the capability. (A 1.0 host does not read it; a plugin that must
    /// not run there says so by needing a capability 1.1 introduced.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// The names of a connector's discovered streams (beyond its predefined tasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamNames {
    /// A regular expression in JSON Schema's `pattern` dialect, anchored (`^…$`), that
    /// every such name matches, e.g. `^table:[A-Z][A-Z0-9]{2,9}$`. Matching it says the
    /// name is well formed, not that the tenant has the stream: `discover` says that.
    pub pattern: String,
    /// How such a name is written, for people, e.g. `table:NAME, where NAME is an M3
    /// table (table:OCUSMA)`.
    pub form: String,
}

/// How a task reads: everything, or what changed since a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Read everything, every time.
    FullRefresh,
    /// Read what changed since the saved state (cursor).
    Incremental,
}

impl SyncMode {
    /// The wire name (`full_refresh`, `incremental`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::FullRefresh => "full_refresh",
            SyncMode::Incremental => "incremental",
        }
    }
}

/// A predefined replication task (a stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task name, unique within the connector, e.g. `customers`.
    pub name: String,
    /// What the task replicates.
    pub description: String,
    /// JSON Schema of one record.
    pub record_schema: Value,
    /// The fields that identify a record (destinations upsert on them).
    pub primary_key: Vec<String>,
    /// The field incremental reads advance on, when the task supports them.
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// The sync modes the task supports.
    pub sync_modes: Vec<SyncMode>,
    /// About how many gateway requests reading 1,000 records costs, at the connector's
    /// default page size, not counting what a read costs once whatever its size (a
    /// token, metadata, a job submission). It tells a user what a task does to the
    /// tenant's quota before running it. Added in ABI 1.x as an optional field: an older
    /// plugin states none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_1000_records: Option<f64>,
}

/// The key of a record schema that names the boolean field flagging a deleted record
/// (`{"x-ionport-deleted-field": "deleted", "properties": {...}}`), for a source whose
/// reads can show deleted records ([`ReadRequest::include_deleted`]). It lives in the
/// schema rather than in a field of [`TaskSpec`] so that declaring it changes no
/// connector's code but its schema; unknown to JSON Schema, ignored by validators.
pub const DELETED_FIELD_KEY: &str = "x-ionport-deleted-field";

/// The key of a record schema whose `true` says the task's reads can be partitioned
/// ([`ReadRequest::partition`]): partition `i` of `N` reads its own share of the listing,
/// and the N partitions together read every record once. Like [`DELETED_FIELD_KEY`] it
/// lives in the schema rather than in a field of [`TaskSpec`], so that declaring it
/// changes no connector's code (the SDK's offset-paged streams declare it for theirs).
/// Added in ABI 1.x: an older plugin declares nothing, and a host never partitions its
/// tasks (it would ignore the partition and read everything N times).
pub const PARTITIONABLE_KEY: &str = "x-ionport-partitionable";

impl TaskSpec {
    /// The field whose `true` says a record was deleted at the source, when the task
    /// declares one ([`DELETED_FIELD_KEY`]). Added in ABI 1.x: an older plugin declares
    /// none, and a host then finds deletions another way (or not at all).
    pub fn deleted_field(&self) -> Option<&str> {
        self.record_schema
            .get(DELETED_FIELD_KEY)
            .and_then(Value::as_str)
    }

    /// Whether the task's reads can be partitioned ([`PARTITIONABLE_KEY`]).
    pub fn partitionable(&self) -> bool {
        self.record_schema
            .get(PARTITIONABLE_KEY)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// A connection as a plugin sees it: the form's values with every secret field removed
/// by the host. A plugin reaches the gateway through the host, never on its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionConfig {
    /// The non-secret values of the connection form.
    #[serde(default)]
    pub settings: Value,
}

/// The result of a connection test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Whether the connection works.
    pub success: bool,
    /// A sentence for the user: who is connected, or what failed and what to do.
    pub message: String,
    /// On failure, the part that failed: `token`, `rights`, `product`, `company`,
    /// `settings` or `network`.
    #[serde(default)]
    pub failed_part: Option<String>,
    /// Facts found on the way (user, company, division, ...).
    #[serde(default)]
    pub details: Value,
}

/// What the tenant has, as far as one connector can see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    /// The streams that can be read.
    pub streams: Vec<DiscoveredStream>,
    /// Anything else the connector found (programs, services, catalog size, ...).
    #[serde(default)]
    pub details: Value,
}

/// One readable stream found by `discover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredStream {
    /// The task spec of the stream.
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// Whether this is one of the connector's predefined tasks.
    pub predefined: bool,
    /// Whether the tenant allows reading it now.
    pub available: bool,
    /// Why it is not available, or a hint.
    #[serde(default)]
    pub note: Option<String>,
}

/// A request to run one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The connection (secrets removed).
    pub connection: ConnectionConfig,
    /// The task name.
    pub task: String,
    /// Full refresh or incremental.
    pub sync_mode: SyncMode,
    /// The task's last checkpointed state, for incremental reads and resumption.
    #[serde(default)]
    pub state: Option<Value>,
    /// Records per page the connector should ask for, when the user set one.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// How many pages of this task the connector may have in flight at once (requests
    /// sent and not yet handed over), when the user set it; `None`: the connector's
    /// default. The host still bounds requests by the connection's concurrency and quota;
    /// this bounds the task's memory (pages in flight × page size). Added in ABI 1.x as
    /// an optional field: an older plugin ignores it and reads one page at a time.
    #[serde(default)]
    pub pages_in_flight: Option<u32>,
    /// Task-specific options (e.g. the table of an EXPORTMI task).
    #[serde(default)]
    pub options: Value,
    /// The fields to read, when the user chose some (`None`: every field). The host
    /// checks them against the stream's record schema and adds the primary key and the
    /// cursor field; the connector sends the selection to the source (MI `returncols`,
    /// the EXPORTMI field list, OData `$select`, the Compass `SELECT` list) and emits
    /// records with those fields only. Added in ABI 1.x as an optional field: an older
    /// plugin ignores it and reads every field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Read deleted records too, each with the task's deletion flag set (see
    /// [`TaskSpec::deleted_field`]): the host asks for this when the pipeline keeps
    /// deletions (`deletes = "soft"`) and the task declares a flag. A connector whose
    /// source cannot show deleted records ignores it. Added in ABI 1.x as an optional
    /// field: an older plugin ignores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_deleted: bool,
    /// Read only this partition of the task's records (`None`: all of them). Sent only
    /// for a task that declares it can be partitioned ([`TaskSpec::partitionable`]); each
    /// partition has a state of its own. Added in ABI 1.x as an optional field: an older
    /// plugin declares no task partitionable, so it never gets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<ReadPartition>,
}

/// One partition of a read: the `index`-th (from 0) of `count` disjoint shares of a task's
/// records that together hold each record once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadPartition {
    /// Which partition, from 0.
    pub index: u32,
    /// How many partitions the task is read in (at least 1).
    pub count: u32,
}

impl ReadRequest {
    /// A request to read `task` with every optional field at its default (no state, the
    /// connector's page size and pages in flight, no options, every field, no deleted
    /// records, no partition). Set the fields you need on the result: a struct literal stops compiling
    /// whenever the ABI gains an optional field, this does not.
    pub fn new(connection: ConnectionConfig, task: impl Into<String>, sync_mode: SyncMode) -> Self {
        ReadRequest {
            connection,
            task: task.into(),
            sync_mode,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: Value::Null,
            columns: None,
            include_deleted: false,
            partition: None,
        }
    }
}

/// What a read did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadSummary {
    /// Records emitted.
    pub records: u64,
    /// Pages (gateway calls that returned data) read.
    pub pages: u64,
    /// The final state, also checkpointed.
    #[serde(default)]
    pub state: Option<Value>,
}

/// The head of a gateway request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRequestHead {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path relative to the connection's API base (`iu/ti`), e.g.
    /// `M3/m3api-rest/v2/execute/CRS610MI/LstByNumber`. Never an absolute URL.
    pub path: String,
    /// Query parameters, in order.
    #[serde(default)]
    pub query: Vec<(String, String)>,
    /// Extra headers. `Authorization` is the host's and is refused.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Per-request timeout in seconds, when the plugin needs one other than the default.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The head of a gateway response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayResponseHead {
    /// Response headers, in order, names lowercase.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}
