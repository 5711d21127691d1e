//! `GET /v1/connectors[/{id}[/form|/tasks]]`: the loaded connector plugins.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use ionport_core::plugin::LoadedPlugin;
use ionport_plugin_abi::wire::Manifest;
use ionport_plugin_sdk::TaskSpec;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::serve::AppState;
use crate::serve::error::{ApiError, ApiResult, ErrorBody};

/// A connector, in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorSummary {
    /// The id connections name, e.g. `infor-m3`.
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    /// Its predefined task names.
    pub tasks: Vec<String>,
}

/// A connector's manifest: what the plugin says about itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorManifest {
    /// The id connections name, e.g. `infor-m3`.
    pub id: String,
    /// e.g. `Infor M3`.
    pub name: String,
    /// The connector's own version (semver).
    pub version: String,
    /// The plugin ABI version it was built for.
    pub abi_version: String,
    pub description: String,
    /// The form of the names of the streams `discover` offers beyond the predefined
    /// tasks, when the connector reads such streams (e.g. M3's `table:NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_names: Option<StreamNameForm>,
    /// Host capabilities the plugin cannot work without (e.g. `progress`; ABI 1.1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// How the names of a connector's discovered streams are written.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamNameForm {
    /// An anchored regular expression every such name matches.
    pub pattern: String,
    /// How such a name is written, for people.
    pub form: String,
}

impl From<&Manifest> for ConnectorManifest {
    fn from(m: &Manifest) -> Self {
        // Field by field: a field the ABI adds is an API change made here, on purpose.
        let Manifest {
            id,
            name,
            version,
            abi_version,
            description,
            stream_names,
            requires,
        } = m.clone();
        Self {
            id,
            name,
            version,
            abi_version,
            description,
            stream_names: stream_names.map(|s| StreamNameForm {
                pattern: s.pattern,
                form: s.form,
            }),
            requires,
        }
    }
}

/// A predefined replication task.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInfo {
    pub name: String,
    pub description: String,
    /// JSON Schema of one record.
    #[schema(value_type = Object)]
    pub record_schema: Value,
    pub primary_key: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    #[schema(schema_with = crate::serve::openapi::sync_modes_ref)]
    pub sync_modes: Vec<String>,
    /// Gateway requests per 1,000 records at the default page size, as the connector
    /// states it (one-off costs per read left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_1000_records: Option<f64>,
}

impl From<&TaskSpec> for TaskInfo {
    fn from(t: &TaskSpec) -> Self {
        Self {
            name: t.name.clone(),
            description: t.description.clone(),
            record_schema: t.record_schema.clone(),
            primary_key: t.primary_key.clone(),
            cursor_field: t.cursor_field.clone(),
            requests_per_1000_records: t.requests_per_1000_records,
            sync_modes: t
                .sync_modes
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
        }
    }
}

pub fn find(st: &AppState, id: &str) -> ApiResult<Arc<LoadedPlugin>> {
    st.registry
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("connector", id))
}

/// Every loaded connector.
#[utoipa::path(get, operation_id = "connectors_list", path = "/v1/connectors", tag = "connectors",
    responses(
        (status = 200, description = "The connectors", body = [ConnectorSummary]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>) -> Json<Vec<ConnectorSummary>> {
    Json(
        st.registry
            .plugins()
            .iter()
            .map(|p| {
                let m = p.manifest();
                ConnectorSummary {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    version: m.version.clone(),
                    description: m.description.clone(),
                    tasks: p.tasks().iter().map(|t| t.name.clone()).collect(),
                }
            })
            .collect(),
    )
}

/// One connector's manifest.
#[utoipa::path(get, operation_id = "connectors_get", path = "/v1/connectors/{id}", tag = "connectors",
    params(("id" = String, Path, description = "The connector id, e.g. infor-m3")),
    responses(
        (status = 200, description = "The manifest", body = ConnectorManifest),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectorManifest>> {
    Ok(Json(find(&st, &id)?.manifest().into()))
}

/// One connector's connection form (a JSON Schema; secret fields carry `x-secret`).
#[utoipa::path(get, operation_id = "connectors_form", path = "/v1/connectors/{id}/form", tag = "connectors",
    params(("id" = String, Path, description = "The connector id")),
    responses(
        (status = 200, description = "The connection form (JSON Schema)", body = Object),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody)))]
pub async fn form(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(find(&st, &id)?.connection_form().clone()))
}

/// One connector's predefined tasks.
#[utoipa::path(get, operation_id = "connectors_tasks", path = "/v1/connectors/{id}/tasks", tag = "connectors",
    params(("id" = String, Path, description = "The connector id")),
    responses(
        (status = 200, description = "The tasks", body = [TaskInfo]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody)))]
pub async fn tasks(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TaskInfo>>> {
    Ok(Json(
        find(&st, &id)?.tasks().iter().map(TaskInfo::from).collect(),
    ))
}
