//! `/v1/connections/{name}/states`: a connection's saved states (one per task, as its
//! destination keeps them) and their reset, which makes the next run of a task read
//! from the start. Found in the caller's workspace only, like the connection.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ionport_core::destination::DestinationConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::connections::recheck_destination;
use crate::serve::AppState;
use crate::serve::audit;
use crate::serve::error::{ApiError, ApiResult, ErrorBody};
use crate::serve::store::ConnectionRecord;
use crate::serve::workspaces;

/// How long a state read or reset waits for the destination's writer lock.
const WAIT: Duration = Duration::from_millis(500);

/// A connection's saved states.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionStates {
    /// Task (stream) name → its saved state, as the connector wrote it.
    #[schema(value_type = Object)]
    pub states: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResetQuery {
    /// Only this task's state (every task's when left out).
    pub task: Option<String>,
}

async fn record(st: &AppState, name: &str) -> ApiResult<ConnectionRecord> {
    st.store
        .lock()
        .await
        .get(&workspaces::current(), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("connection", name))
}

fn busy(st: &AppState, r: &ConnectionRecord) -> ApiResult<()> {
    if st.runs.busy(&r.workspace, &r.name) {
        return Err(ApiError::conflict(format!(
            "connection '{}' has a run going; its states change until it ends",
            r.name
        )));
    }
    Ok(())
}

/// The saved states of a connection's tasks.
#[utoipa::path(get, operation_id = "states_list", path = "/v1/connections/{name}/states", tag = "connections",
    params(("name" = String, Path, description = "The connection name")),
    responses(
        (status = 200, description = "The states", body = ConnectionStates),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "A run of the connection is going", body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionStates>> {
    let r = record(&st, &name).await?;
    busy(&st, &r)?;
    let d = recheck_destination(&st, &r.workspace, &r.destination)?;
    // A file destination never written has no state (and is not created here).
    if let DestinationConfig::Sqlite { path }
    | DestinationConfig::Parquet { path }
    | DestinationConfig::Jsonl { path } = &d
        && !path.exists()
    {
        return Ok(Json(ConnectionStates {
            states: BTreeMap::new(),
        }));
    }
    let states = tokio::task::spawn_blocking(move || {
        let dest = ionport_core::destination::open_waiting(&d, WAIT).map_err(|e| e.to_string())?;
        dest.states()
            .map(|s| s.into_iter().collect::<BTreeMap<_, _>>())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| ApiError::internal(format!("the states could not be read: {e}")))?;
    Ok(Json(ConnectionStates { states }))
}

/// Resets a connection's saved states (one task's with `task`): the next run reads
/// those tasks from the start.
#[utoipa::path(delete, operation_id = "states_reset", path = "/v1/connections/{name}/states", tag = "connections",
    params(("name" = String, Path, description = "The connection name"), ResetQuery),
    responses(
        (status = 204, description = "Reset"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "A run of the connection is going", body = ErrorBody)))]
pub async fn reset(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ResetQuery>,
) -> ApiResult<StatusCode> {
    let r = record(&st, &name).await?;
    busy(&st, &r)?;
    let d = recheck_destination(&st, &r.workspace, &r.destination)?;
    let task = q.task.clone();
    tokio::task::spawn_blocking(move || {
        let dest = ionport_core::destination::open_waiting(&d, WAIT).map_err(|e| e.to_string())?;
        ionport_core::pipeline::partition::reset_task_states(dest.as_ref(), task.as_deref())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| ApiError::internal(format!("the states could not be reset: {e}")))?;
    let changed = vec![format!("state.{}", q.task.as_deref().unwrap_or("*"))];
    audit::record(&st.audit, audit::entry("state.reset", &name, changed));
    Ok(StatusCode::NO_CONTENT)
}
