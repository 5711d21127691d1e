//! `/v1/connections`: create (tested first, as in Infor Data Hub), read, update, delete,
//! test, and the predefined tasks a connection runs. Credentials go to the vault entry
//! `serve.<name>` (`ws.<workspace>.<name>` outside `default`); the record keeps the form
//! values with secrets masked. Every lookup is in the caller's workspace: another
//! workspace's connection is "no connection" (404).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ionport_core::connection::CredentialSource;
use ionport_core::credentials::Credentials;
use ionport_core::destination::DestinationConfig;
use ionport_core::form_values::{self, FormValues};
use ionport_core::plugin::LoadedPlugin;
use ionport_plugin_sdk::SyncMode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::connectors::find;
use crate::serve::AppState;
use crate::serve::audit;
use crate::serve::auth::now;
use crate::serve::error::{ApiError, ApiResult, Body, ErrorBody, FieldProblem};
use crate::serve::store::{ConnectionRecord, ConnectionTask, vault_entry};
use crate::serve::tester::{self, TestReport};
use crate::serve::workspaces;
use ionport_core::pipeline::config::Deletes;
use ionport_core::pipeline::drift::SchemaPolicy;

/// A task choice in a create or update.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChoice {
    /// One of the connector's task names, or a stream its `discover` offers (e.g.
    /// `table:OCUSMA`), checked when a run starts.
    pub name: String,
    /// Whether runs include it (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `incremental` (default when the task supports it) or `full_refresh`.
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::sync_mode_ref)]
    pub sync_mode: Option<String>,
    /// What happens to rows deleted at the source (default `ignore`).
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::deletes_schema)]
    pub deletes: Option<Deletes>,
    /// What a run does when the stream's schema changed at the source (default `evolve`).
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::schema_changes_schema)]
    pub schema_changes: Option<SchemaPolicy>,
}

/// `POST /v1/connections`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// 1 to 48 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
    pub name: String,
    /// The connector id, e.g. `infor-m3`.
    pub connector: String,
    /// The connection form's values, the `credentials` block included.
    #[schema(value_type = Object)]
    pub values: Value,
    /// The tasks and how they run (default: every predefined task, incremental where
    /// supported).
    #[serde(default)]
    pub tasks: Option<Vec<TaskChoice>>,
    /// Where records go, as in a pipeline file's `destination` (default: SQLite at
    /// `$IONPORT_HOME/data/<name>.db`). Relative paths are under `$IONPORT_HOME/data`.
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::destination_ref)]
    pub destination: Option<DestinationConfig>,
    /// What the connection is for (at most 500 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Records per page the connector asks for.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// The tenant's quota for this app: `N/SECONDS` or `none` (default 1000/60).
    #[serde(default)]
    pub quota: Option<String>,
    /// Tasks a run reads at once, 1 to 64 (default 4).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64)]
    pub concurrency: Option<usize>,
    /// How many times the host retries a failed gateway read (429, 502, 503, 504, a cut
    /// connection), 0 to 20 (default the gateway's, 5); as a pipeline file's `retries`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 20)]
    pub retries: Option<u32>,
    /// Where the connector runs: `in-process` (default) or `process`, a child process of
    /// its own whose crash, hang or runaway memory fails the call, never the server (see
    /// docs/plugin-isolation.md); as a pipeline file's `isolation`. A server started with
    /// `--isolate-plugins-except` isolates the plugins outside its list whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(in-process|process)$", example = "process")]
    pub isolation: Option<ionport_core::plugin::Isolation>,
}

/// `PUT`/`PATCH /v1/connections/{name}`: fields left out keep their value; a secret sent
/// back masked (`********`) keeps its stored value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConnection {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub values: Option<Value>,
    #[serde(default)]
    pub tasks: Option<Vec<TaskChoice>>,
    #[serde(default)]
    #[schema(schema_with = crate::serve::openapi::destination_ref)]
    pub destination: Option<DestinationConfig>,
    /// An empty string removes the description.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub quota: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 20)]
    pub retries: Option<u32>,
    /// Where the connector runs: `in-process` (default) or `process`, a child process of
    /// its own whose crash, hang or runaway memory fails the call, never the server (see
    /// docs/plugin-isolation.md); as a pipeline file's `isolation`. A server started with
    /// `--isolate-plugins-except` isolates the plugins outside its list whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(in-process|process)$", example = "process")]
    pub isolation: Option<ionport_core::plugin::Isolation>,
}

/// `POST /v1/connections/test`: values to test without saving.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestValues {
    pub connector: String,
    #[schema(value_type = Object)]
    pub values: Value,
}

// The bodies hold secrets: their `Debug` leaves the values out.
impl std::fmt::Debug for CreateConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateConnection")
            .field("name", &self.name)
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UpdateConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateConnection")
            .field("values", &self.values.as_ref().map(|_| "(hidden)"))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TestValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestValues")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

/// A connection's task.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionTaskView {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    #[schema(schema_with = crate::serve::openapi::sync_mode_ref)]
    pub sync_mode: String,
    #[schema(schema_with = crate::serve::openapi::deletes_schema)]
    pub deletes: Deletes,
    #[schema(schema_with = crate::serve::openapi::schema_changes_schema)]
    pub schema_changes: SchemaPolicy,
}

/// A connection as shown: secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    /// The workspace it belongs to.
    pub workspace: String,
    pub connector: String,
    /// The form values, every secret shown as `********`.
    #[schema(value_type = Object)]
    pub values: Value,
    pub tasks: Vec<ConnectionTaskView>,
    #[schema(schema_with = crate::serve::openapi::destination_ref)]
    pub destination: DestinationConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// Tasks a run reads at once (absent: the default, 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Host retries of a failed gateway read (absent: the gateway's default, 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Where the connector runs: `in-process` (default) or `process`, a child process of
    /// its own whose crash, hang or runaway memory fails the call, never the server (see
    /// docs/plugin-isolation.md); as a pipeline file's `isolation`. A server started with
    /// `--isolate-plugins-except` isolates the plugins outside its list whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(in-process|process)$", example = "process")]
    pub isolation: Option<ionport_core::plugin::Isolation>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub updated: u64,
}

/// A connection and the test it passed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionWithTest {
    pub connection: ConnectionView,
    /// The test run for this change (absent when an update changed no value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestReport>,
}

fn view(plugin: Option<&LoadedPlugin>, r: &ConnectionRecord) -> ConnectionView {
    ConnectionView {
        name: r.name.clone(),
        workspace: r.workspace.clone(),
        connector: r.connector.clone(),
        values: r.values.clone(),
        tasks: r
            .tasks
            .iter()
            .map(|t| ConnectionTaskView {
                name: t.name.clone(),
                description: plugin
                    .and_then(|p| p.task(&t.name))
                    .map(|s| s.description.clone())
                    .unwrap_or_default(),
                enabled: t.enabled,
                sync_mode: t.sync_mode.clone(),
                deletes: t.deletes,
                schema_changes: t.schema_changes,
            })
            .collect(),
        destination: r.destination.clone(),
        description: r.description.clone(),
        page_size: r.page_size,
        quota: r.quota.clone(),
        concurrency: r.concurrency,
        retries: r.retries,
        isolation: r.isolation,
        created: r.created,
        updated: r.updated,
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "name",
            "expected 1 to 48 of A-Z a-z 0-9 . _ - (not starting with a dot)",
        ))
    }
}

fn connector(st: &AppState, id: &str) -> ApiResult<Arc<LoadedPlugin>> {
    st.registry.get(id).cloned().ok_or_else(|| {
        let known: Vec<&str> = st.registry.plugins().iter().map(|p| p.id()).collect();
        ApiError::field(
            "connector",
            format!(
                "unknown connector '{id}' (expected one of: {})",
                known.join(", ")
            ),
        )
    })
}

/// Checks form values: the form's schema, then the credentials block.
fn parse_values(plugin: &LoadedPlugin, values: &Value) -> ApiResult<(FormValues, Credentials)> {
    let form = plugin.connection_form();
    let parsed = FormValues::parse(form, values).map_err(|errs| {
        ApiError::invalid(
            errs.into_iter()
                .map(|e| FieldProblem {
                    field: if e.field.is_empty() {
                        "values".into()
                    } else {
                        format!("values.{}", e.field)
                    },
                    reason: e.reason,
                })
                .collect(),
        )
    })?;
    let Some(block) = &parsed.credentials else {
        return Err(ApiError::field(
            "values.credentials",
            "required: the ION API credentials block",
        ));
    };
    let secrets = form_values::secret_values(form, values);
    let creds = Credentials::from_form(block).map_err(|e| {
        ApiError::field(
            "values.credentials",
            ionport_core::form_values::mask_secrets(&e.to_string(), &secrets),
        )
    })?;
    Ok((parsed, creds))
}

fn resolve_tasks(
    plugin: &LoadedPlugin,
    choices: Option<&[TaskChoice]>,
) -> ApiResult<Vec<ConnectionTask>> {
    let default_mode = |name: &str| {
        if plugin
            .task(name)
            .is_some_and(|t| t.sync_modes.contains(&SyncMode::Incremental))
        {
            "incremental"
        } else {
            "full_refresh"
        }
    };
    let Some(choices) = choices else {
        return Ok(plugin
            .tasks()
            .iter()
            .map(|t| ConnectionTask {
                name: t.name.clone(),
                enabled: true,
                sync_mode: default_mode(&t.name).into(),
                deletes: Deletes::default(),
                schema_changes: SchemaPolicy::default(),
            })
            .collect());
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        // A stream `discover` offers (e.g. `table:OCUSMA`): its existence is checked when
        // a run starts, as in a pipeline file; both sync modes are accepted (a cursorless
        // stream is read in full).
        let discovered =
            plugin.task(&c.name).is_none() && ionport_core::read::is_stream_name(plugin, &c.name);
        let spec = plugin.task(&c.name);
        if spec.is_none() && !discovered {
            let known: Vec<&str> = plugin.tasks().iter().map(|t| t.name.as_str()).collect();
            let streams = ionport_core::read::stream_names(plugin)
                .map(|n| format!(", or a stream named {}", n.form))
                .unwrap_or_default();
            problems.push(FieldProblem {
                field: format!("tasks[{i}].name"),
                reason: format!(
                    "connector {} has no task '{}' (expected one of: {}{streams})",
                    plugin.id(),
                    c.name,
                    known.join(", ")
                ),
            });
            continue;
        }
        let incremental =
            discovered || spec.is_some_and(|s| s.sync_modes.contains(&SyncMode::Incremental));
        if out.iter().any(|t: &ConnectionTask| t.name == c.name) {
            problems.push(FieldProblem {
                field: format!("tasks[{i}].name"),
                reason: format!("task '{}' is listed twice", c.name),
            });
            continue;
        }
        let mode = match c.sync_mode.as_deref() {
            None if discovered => "incremental".to_string(),
            None => default_mode(&c.name).to_string(),
            Some(m @ "full_refresh") => m.to_string(),
            Some(m @ "incremental") if incremental => m.to_string(),
            Some("incremental") => {
                problems.push(FieldProblem {
                    field: format!("tasks[{i}].sync_mode"),
                    reason: format!("task '{}' supports only full_refresh", c.name),
                });
                continue;
            }
            Some(other) => {
                problems.push(FieldProblem {
                    field: format!("tasks[{i}].sync_mode"),
                    reason: format!("'{other}': expected incremental or full_refresh"),
                });
                continue;
            }
        };
        out.push(ConnectionTask {
            name: c.name.clone(),
            enabled: c.enabled.unwrap_or(true),
            sync_mode: mode,
            deletes: c.deletes.unwrap_or_default(),
            schema_changes: c.schema_changes.unwrap_or_default(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// A stored destination checked again before a run: a record written by an older server
/// (or by hand) may point anywhere.
pub(crate) fn recheck_destination(
    st: &AppState,
    workspace: &str,
    d: &DestinationConfig,
) -> ApiResult<DestinationConfig> {
    resolve_destination(st, workspace, "", Some(d.clone()))
}

/// The destination as the server will use it: paths confined to the data directory (or
/// an allowed root), Postgres URLs without a password or environment references.
fn resolve_destination(
    st: &AppState,
    workspace: &str,
    name: &str,
    d: Option<DestinationConfig>,
) -> ApiResult<DestinationConfig> {
    let roots = &st
        .destinations_of(workspace)
        .map_err(|e| internal("the workspace's data directory is unavailable", e))?;
    let under = |p: PathBuf| {
        roots
            .confine(&p)
            .map_err(|reason| ApiError::field("destination.path", reason))
    };
    let resolved = match d {
        None => DestinationConfig::Sqlite {
            path: under(PathBuf::from(format!("{name}.db")))?,
        },
        Some(DestinationConfig::Sqlite { path }) => {
            DestinationConfig::Sqlite { path: under(path)? }
        }
        Some(DestinationConfig::Parquet { path }) => {
            DestinationConfig::Parquet { path: under(path)? }
        }
        Some(DestinationConfig::Jsonl { path }) => DestinationConfig::Jsonl { path: under(path)? },
        Some(DestinationConfig::Postgres { url, schema }) => {
            if let Some(reason) = crate::serve::confine::refuse_postgres_url(&url) {
                return Err(ApiError::field("destination.url", reason));
            }
            DestinationConfig::Postgres { url, schema }
        }
    };
    // Refused when the connection is stored, not at its first run.
    resolved
        .built()
        .map_err(|e| ApiError::field("destination.type", e.to_string()))?;
    Ok(resolved)
}

/// The most tasks a connection runs at once.
pub const MAX_CONCURRENCY: usize = 64;
/// The most host retries of a failed gateway read (as the pipeline file allows).
pub const MAX_RETRIES: u32 = 20;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 500;

/// The options besides values, tasks and destination, as asked for.
pub struct Options<'a> {
    pub description: Option<&'a str>,
    pub page_size: Option<u32>,
    pub quota: Option<&'a str>,
    pub concurrency: Option<usize>,
    pub retries: Option<u32>,
}

fn check_options(o: &Options<'_>) -> ApiResult<()> {
    let mut problems = Vec::new();
    let (page_size, quota) = (o.page_size, o.quota);
    if let Some(d) = o.description
        && d.chars().count() > MAX_DESCRIPTION
    {
        problems.push(FieldProblem {
            field: "description".into(),
            reason: format!(
                "at most {MAX_DESCRIPTION} characters (got {})",
                d.chars().count()
            ),
        });
    }
    if let Some(n) = o.concurrency
        && !(1..=MAX_CONCURRENCY).contains(&n)
    {
        problems.push(FieldProblem {
            field: "concurrency".into(),
            reason: format!("expected 1 to {MAX_CONCURRENCY} tasks at once (got {n})"),
        });
    }
    if let Some(n) = o.retries
        && n > MAX_RETRIES
    {
        problems.push(FieldProblem {
            field: "retries".into(),
            reason: format!("expected 0 to {MAX_RETRIES} retries (got {n})"),
        });
    }
    if page_size == Some(0) {
        problems.push(FieldProblem {
            field: "page_size".into(),
            reason: "must be at least 1".into(),
        });
    }
    if let Some(q) = quota
        && let Err(e) = ionport_core::pipeline::load::parse_quota(q)
    {
        problems.push(FieldProblem {
            field: "quota".into(),
            reason: e,
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(problems))
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!("{what}: {e}");
    ApiError::internal(format!("{what}: {e}"))
}

/// Every connection.
#[utoipa::path(get, operation_id = "connections_list", path = "/v1/connections", tag = "connections",
    responses(
        (status = 200, description = "The connections (secrets masked)", body = [ConnectionView]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>) -> Json<Vec<ConnectionView>> {
    let ws = workspaces::current();
    let store = st.store.lock().await;
    Json(
        store
            .list(&ws)
            .map(|r| view(st.registry.get(&r.connector).map(|p| &**p), r))
            .collect(),
    )
}

/// Creates a connection: the values are checked against the connector's form, then the
/// connector's check runs with them; only when it passes are the credentials stored in
/// the vault and the connection saved.
#[utoipa::path(post, operation_id = "connections_create", path = "/v1/connections", tag = "connections",
    request_body = CreateConnection,
    responses(
        (status = 201, description = "Created after its test passed", body = ConnectionWithTest),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "A connection of that name exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "The workspace's `max_connections` is reached (`limit_exceeded`, the limit in `limit`)", body = ErrorBody),
        (status = 422, description = "Invalid input (`invalid_input`, fields named) or the test failed (`test_failed`, report in `test`); nothing stored", body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Body(req): Body<CreateConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionWithTest>)> {
    check_name(&req.name)?;
    let ws = workspaces::current();
    let plugin = connector(&st, &req.connector)?;
    let (parsed, creds) = parse_values(&plugin, &req.values)?;
    let tasks = resolve_tasks(&plugin, req.tasks.as_deref())?;
    let destination = resolve_destination(&st, &ws, &req.name, req.destination)?;
    check_options(&Options {
        description: req.description.as_deref(),
        page_size: req.page_size,
        quota: req.quota.as_deref(),
        concurrency: req.concurrency,
        retries: req.retries,
    })?;
    {
        let store = st.store.lock().await;
        if store.get(&ws, &req.name).is_some() {
            return Err(ApiError::conflict(format!(
                "a connection named '{}' exists",
                req.name
            )));
        }
        st.connection_room(&ws, store.count(&ws))?;
    }
    let form = plugin.connection_form();
    let secrets = form_values::secret_values(form, &req.values);
    let block = parsed.credentials.clone().ok_or_else(|| {
        ApiError::field(
            "values.credentials",
            "required: the ION API credentials block",
        )
    })?;
    let report = tester::test(
        plugin.clone(),
        CredentialSource::Form(block),
        parsed.settings.clone(),
        &st.metrics,
    )
    .await
    .scrubbed(&secrets);
    if !report.success {
        tracing::info!(connection = %req.name, "connection test failed; nothing stored");
        return Err(ApiError::test_failed(report));
    }
    let mut store = st.store.lock().await;
    if store.get(&ws, &req.name).is_some() {
        return Err(ApiError::conflict(format!(
            "a connection named '{}' exists",
            req.name
        )));
    }
    st.connection_room(&ws, store.count(&ws))?;
    st.vault
        .put(&vault_entry(&ws, &req.name), &creds, true)
        .map_err(|e| internal("storing the credentials failed", e))?;
    let t = now();
    let record = ConnectionRecord {
        name: req.name.clone(),
        workspace: ws.clone(),
        connector: plugin.id().to_string(),
        values: form_values::masked(form, &req.values),
        settings: parsed.settings,
        tasks,
        destination,
        description: req.description.filter(|d| !d.trim().is_empty()),
        page_size: req.page_size,
        quota: req.quota,
        concurrency: req.concurrency,
        retries: req.retries,
        isolation: req.isolation,
        created: t,
        updated: t,
    };
    if let Err(e) = store.put(record.clone()) {
        let _ = st.vault.remove(&vault_entry(&ws, &req.name));
        return Err(internal("saving the connection failed", e));
    }
    tracing::info!(connection = %req.name, connector = %plugin.id(), "connection created");
    audit::record(
        &st.audit,
        audit::entry("connection.created", &record.name, record_fields(&record)),
    );
    Ok((
        StatusCode::CREATED,
        Json(ConnectionWithTest {
            connection: view(Some(&plugin), &record),
            test: Some(report),
        }),
    ))
}

/// Connection `name` of the caller's workspace.
async fn record(st: &AppState, name: &str) -> ApiResult<ConnectionRecord> {
    st.store
        .lock()
        .await
        .get(&workspaces::current(), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("connection", name))
}

/// One connection.
#[utoipa::path(get, operation_id = "connections_get", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    responses(
        (status = 200, description = "The connection (secrets masked)", body = ConnectionView),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    let r = record(&st, &name).await?;
    Ok(Json(view(st.registry.get(&r.connector).map(|p| &**p), &r)))
}

/// The stored values with the vault's secrets in place (for `unmask`).
fn stored_values(st: &AppState, r: &ConnectionRecord) -> ApiResult<Value> {
    let entry = st
        .vault
        .get(&r.vault_entry())
        .map_err(|e| internal("reading the credentials failed", e))?;
    let mut v = r.values.clone();
    if let Some(c) = v.get_mut("credentials").and_then(Value::as_object_mut) {
        c.insert(
            "client_secret".into(),
            entry.credentials.client_secret.expose_secret().into(),
        );
        if let Some(sa) = &entry.credentials.service_account {
            c.insert("password".into(), sa.secret_key.expose_secret().into());
        }
    }
    Ok(v)
}

/// Updates a connection. Fields left out keep their value; a secret sent back masked
/// keeps its stored value. When the values change, the connection is tested again and
/// the update is refused (422, nothing changed) if the test fails.
#[utoipa::path(put, operation_id = "connections_update", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    request_body = UpdateConnection,
    responses(
        (status = 200, description = "Updated", body = ConnectionWithTest),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid input, or the new values failed their test", body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<UpdateConnection>,
) -> ApiResult<Json<ConnectionWithTest>> {
    let mut r = record(&st, &name).await?;
    let before = r.clone();
    let mut changed_values = Vec::new();
    let plugin = find(&st, &r.connector)?;
    let form = plugin.connection_form();
    check_options(&Options {
        description: req.description.as_deref(),
        page_size: req.page_size,
        quota: req.quota.as_deref(),
        concurrency: req.concurrency,
        retries: req.retries,
    })?;
    let tasks = match &req.tasks {
        Some(t) => Some(resolve_tasks(&plugin, Some(t))?),
        None => None,
    };
    let destination = match req.destination {
        Some(d) => Some(resolve_destination(&st, &r.workspace, &name, Some(d))?),
        None => None,
    };
    let mut test = None;
    let mut new_creds = None;
    if let Some(mut values) = req.values {
        let stored = stored_values(&st, &r)?;
        form_values::unmask(form, &mut values, &stored);
        let (parsed, creds) = parse_values(&plugin, &values)?;
        if values != stored {
            changed_values = audit::changed_fields("values", &stored, &values);
            let mut secrets = form_values::secret_values(form, &values);
            secrets.extend(form_values::secret_values(form, &stored));
            let block = parsed.credentials.clone().ok_or_else(|| {
                ApiError::field(
                    "values.credentials",
                    "required: the ION API credentials block",
                )
            })?;
            let report = tester::test(
                plugin.clone(),
                CredentialSource::Form(block),
                parsed.settings.clone(),
                &st.metrics,
            )
            .await
            .scrubbed(&secrets);
            if !report.success {
                return Err(ApiError::test_failed(report));
            }
            test = Some(report);
            new_creds = Some(creds);
            r.values = form_values::masked(form, &values);
            r.settings = parsed.settings;
        }
    }
    if let Some(t) = tasks {
        r.tasks = t;
    }
    if let Some(d) = destination {
        r.destination = d;
    }
    if req.page_size.is_some() {
        r.page_size = req.page_size;
    }
    if let Some(q) = req.quota {
        r.quota = Some(q);
    }
    if let Some(d) = req.description {
        r.description = (!d.trim().is_empty()).then_some(d);
    }
    if req.concurrency.is_some() {
        r.concurrency = req.concurrency;
    }
    if req.retries.is_some() {
        r.retries = req.retries;
    }
    if req.isolation.is_some() {
        r.isolation = req.isolation;
    }
    r.updated = now();
    let mut store = st.store.lock().await;
    if store.get(&r.workspace, &name).is_none() {
        return Err(ApiError::not_found("connection", &name));
    }
    if let Some(c) = &new_creds {
        st.vault
            .put(&r.vault_entry(), c, true)
            .map_err(|e| internal("storing the credentials failed", e))?;
    }
    store
        .put(r.clone())
        .map_err(|e| internal("saving the connection failed", e))?;
    tracing::info!(connection = %name, retested = test.is_some(), "connection updated");
    audit::record(
        &st.audit,
        audit::entry("connection.updated", &name, {
            let mut changed = record_changes(&before, &r);
            changed.extend(changed_values);
            changed
        }),
    );
    Ok(Json(ConnectionWithTest {
        connection: view(Some(&plugin), &r),
        test,
    }))
}

/// Deletes a connection and its vault entry (the destination's data stays).
#[utoipa::path(delete, operation_id = "connections_delete", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "A run of the connection is going", body = ErrorBody)))]
pub async fn delete(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let ws = workspaces::current();
    let mut store = st.store.lock().await;
    if store.get(&ws, &name).is_none() {
        return Err(ApiError::not_found("connection", &name));
    }
    if st.runs.busy(&ws, &name) {
        return Err(ApiError::conflict(format!(
            "connection '{name}' has a run going; cancel it first"
        )));
    }
    store
        .remove(&ws, &name)
        .map_err(|e| internal("saving the connections failed", e))?;
    st.vault
        .remove(&vault_entry(&ws, &name))
        .map_err(|e| internal("removing the credentials failed", e))?;
    tracing::info!(connection = %name, "connection deleted");
    audit::record(
        &st.audit,
        audit::entry("connection.deleted", &name, Vec::new()),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Tests a stored connection (its vault credentials and settings).
#[utoipa::path(post, operation_id = "connections_test", path = "/v1/connections/{name}/test", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    responses(
        (status = 200, description = "The test report (`success` says whether it passed)", body = TestReport),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody)))]
pub async fn test(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<TestReport>> {
    let r = record(&st, &name).await?;
    let plugin = find(&st, &r.connector)?;
    let secrets = connection_secrets(&st, &r);
    let report = tester::test(
        plugin,
        CredentialSource::Vault {
            vault: st.vault.clone(),
            name: r.vault_entry(),
        },
        r.settings.clone(),
        &st.metrics,
    )
    .await
    .scrubbed(&secrets);
    let mut e = audit::entry("connection.tested", &name, Vec::new());
    e.outcome = Some(if report.success { "passed" } else { "failed" }.into());
    audit::record(&st.audit, e);
    Ok(Json(report))
}

/// The fields a new connection was given (names only).
fn record_fields(r: &ConnectionRecord) -> Vec<String> {
    match serde_json::to_value(r) {
        Ok(Value::Object(m)) => m
            .into_iter()
            .filter(|(k, v)| !v.is_null() && !matches!(k.as_str(), "created" | "updated" | "name"))
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

/// The fields of a connection an update changed, but its values (compared unmasked by
/// the caller, so a changed secret is named too).
fn record_changes(before: &ConnectionRecord, after: &ConnectionRecord) -> Vec<String> {
    let (Ok(mut a), Ok(mut b)) = (serde_json::to_value(before), serde_json::to_value(after)) else {
        return Vec::new();
    };
    for v in [&mut a, &mut b] {
        if let Some(o) = v.as_object_mut() {
            o.remove("values");
            o.remove("updated");
        }
    }
    audit::changed_fields("", &a, &b)
}

/// The secrets of a stored connection, to scrub from messages.
pub fn connection_secrets(st: &AppState, r: &ConnectionRecord) -> Vec<String> {
    match st.vault.get(&r.vault_entry()) {
        Ok(e) => {
            let mut s = vec![e.credentials.client_secret.expose_secret().to_string()];
            if let Some(sa) = &e.credentials.service_account {
                s.push(sa.secret_key.expose_secret().to_string());
            }
            s
        }
        Err(_) => Vec::new(),
    }
}

/// Tests form values without saving anything.
#[utoipa::path(post, operation_id = "connections_test_values", path = "/v1/connections/test", tag = "connections",
    request_body = TestValues,
    responses(
        (status = 200, description = "The test report", body = TestReport),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 422, description = "Invalid values (fields named)", body = ErrorBody)))]
pub async fn test_values(
    State(st): State<AppState>,
    Body(req): Body<TestValues>,
) -> ApiResult<Json<TestReport>> {
    let plugin = connector(&st, &req.connector)?;
    let (parsed, _creds) = parse_values(&plugin, &req.values)?;
    let secrets = form_values::secret_values(plugin.connection_form(), &req.values);
    let block = parsed.credentials.ok_or_else(|| {
        ApiError::field(
            "values.credentials",
            "required: the ION API credentials block",
        )
    })?;
    let report = tester::test(
        plugin,
        CredentialSource::Form(block),
        parsed.settings,
        &st.metrics,
    )
    .await
    .scrubbed(&secrets);
    Ok(Json(report))
}

/// The predefined tasks a connection has, and how each runs.
#[utoipa::path(get, operation_id = "connections_tasks", path = "/v1/connections/{name}/tasks", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    responses(
        (status = 200, description = "The connection's tasks", body = [ConnectionTaskView]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody)))]
pub async fn tasks(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ConnectionTaskView>>> {
    let r = record(&st, &name).await?;
    Ok(Json(
        view(st.registry.get(&r.connector).map(|p| &**p), &r).tasks,
    ))
}

/// The same as `PUT`: fields left out keep their value.
#[utoipa::path(patch, operation_id = "connections_patch", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    request_body = UpdateConnection,
    responses(
        (status = 200, description = "Updated", body = ConnectionWithTest),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 422, description = "Invalid input, or the new values failed their test", body = ErrorBody)))]
pub async fn patch(
    st: State<AppState>,
    name: Path<String>,
    body: Body<UpdateConnection>,
) -> ApiResult<Json<ConnectionWithTest>> {
    update(st, name, body).await
}
