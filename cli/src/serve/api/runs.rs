//! `/v1/runs`: start a connection's tasks or a pipeline of the `--pipeline` file, list
//! runs, one run's status, cancel. Runs are kept in memory, each in its connection's
//! workspace; the pipelines of the `--pipeline` file are `default`'s.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ionport_core::pipeline::run::RunOptions;
use ionport_core::pipeline::{CredentialsPlan, PipelinePlan, Plan, TaskPlan};
use ionport_plugin_sdk::SyncMode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::connections::connection_secrets;
use super::connectors::find;
use crate::serve::AppState;
use crate::serve::audit;
use crate::serve::error::{ApiError, ApiResult, Body, ErrorBody};
use crate::serve::runs::{RunRequest, RunView, StartError};
use crate::serve::workspaces;

/// `POST /v1/runs`: either `connection` (with optional `tasks`, `full_refresh`) or
/// `pipeline` (with optional `task`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// A connection: runs its enabled tasks (or `tasks`).
    #[serde(default)]
    pub connection: Option<String>,
    /// Only these of the connection's tasks.
    #[serde(default)]
    pub tasks: Option<Vec<String>>,
    /// Ignore saved states and read everything.
    #[serde(default)]
    pub full_refresh: Option<bool>,
    /// A pipeline of the server's `--pipeline` file.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// Only this task of the pipeline.
    #[serde(default)]
    pub task: Option<String>,
}

fn conflict(e: StartError, workspace: &str, connection: &str) -> ApiError {
    match e {
        StartError::Busy(id) => ApiError::conflict(format!(
            "connection '{connection}' has a run going ({id}); wait for it or cancel it"
        )),
        StartError::Limit(max) => ApiError::limit(
            workspace,
            "max_concurrent_runs",
            max,
            &format!("{max} runs are going; start this one when one has ended"),
        ),
    }
}

/// Starts a run and answers at once (202); poll `GET /v1/runs/{id}`.
#[utoipa::path(post, operation_id = "runs_start", path = "/v1/runs", tag = "runs",
    request_body = StartRun,
    responses(
        (status = 202, description = "Started", body = RunView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such connection or pipeline", body = ErrorBody),
        (status = 409, description = "The connection has a run going", body = ErrorBody),
        (status = 422, description = "Invalid input (fields named)", body = ErrorBody),
        (status = 429, description = "The workspace's `max_concurrent_runs` are going (`limit_exceeded`, the limit in `limit`)", body = ErrorBody)))]
pub async fn start(
    State(st): State<AppState>,
    Body(req): Body<StartRun>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    let full_refresh = req.full_refresh.unwrap_or(false);
    let request = match (&req.connection, &req.pipeline) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::field(
                "connection",
                "give either connection or pipeline (exactly one)",
            ));
        }
        (Some(name), None) => {
            if req.task.is_some() {
                return Err(ApiError::field("task", "use tasks with a connection"));
            }
            connection_run(&st, name, req.tasks.as_deref(), full_refresh).await?
        }
        (None, Some(name)) => {
            if req.tasks.is_some() {
                return Err(ApiError::field("tasks", "use task with a pipeline"));
            }
            pipeline_run(&st, name, req.task.as_deref(), full_refresh)?
        }
    };
    let connection = request.connection.clone();
    let workspace = request.workspace.clone();
    let view = st
        .runs
        .start(request, Arc::clone(&st.metrics))
        .map_err(|e| conflict(e, &workspace, &connection))?;
    // The request's fields that were given.
    let given = [
        ("connection", req.connection.is_some()),
        ("tasks", req.tasks.is_some()),
        ("full_refresh", req.full_refresh.is_some()),
        ("pipeline", req.pipeline.is_some()),
        ("task", req.task.is_some()),
    ];
    let given = given.iter().filter(|(_, g)| *g).map(|(f, _)| f.to_string());
    audit::record(
        &st.audit,
        audit::entry("run.started", &view.id, given.collect()),
    );
    Ok((StatusCode::ACCEPTED, Json(view)))
}

async fn connection_run(
    st: &AppState,
    name: &str,
    only: Option<&[String]>,
    full_refresh: bool,
) -> ApiResult<RunRequest> {
    let ws = workspaces::current();
    let r = st
        .store
        .lock()
        .await
        .get(&ws, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("connection", name))?;
    let plugin = find(st, &r.connector)?;
    let chosen: Vec<_> = match only {
        None => r.tasks.iter().filter(|t| t.enabled).collect(),
        Some(names) => {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                match r.tasks.iter().find(|t| &t.name == n) {
                    Some(t) => out.push(t),
                    None => {
                        return Err(ApiError::field(
                            &format!("tasks[{i}]"),
                            format!("connection '{name}' has no task '{n}'"),
                        ));
                    }
                }
            }
            out
        }
    };
    if chosen.is_empty() {
        return Err(ApiError::field(
            "tasks",
            "no task to run (every task is disabled)",
        ));
    }
    let mut tasks = Vec::new();
    for t in &chosen {
        let sync_mode = if t.sync_mode == "incremental" {
            SyncMode::Incremental
        } else {
            SyncMode::FullRefresh
        };
        // A predefined task, or a stream `discover` offers: the runner resolves the
        // latter (its existence and spec) when the run starts, as for a pipeline file.
        let mut task = match plugin.task(&t.name) {
            Some(spec) => TaskPlan::new(spec.clone(), sync_mode),
            None if ionport_core::read::is_stream_name(&plugin, &t.name) => {
                TaskPlan::discovered(&t.name, sync_mode)
            }
            None => {
                return Err(ApiError::field(
                    "tasks",
                    format!("connector {} no longer has task '{}'", plugin.id(), t.name),
                ));
            }
        };
        task.deletes = t.deletes;
        task.schema_changes = t.schema_changes;
        tasks.push(task);
    }
    let quota = match &r.quota {
        Some(q) => Some(
            ionport_core::pipeline::load::parse_quota(q)
                .map_err(|e| ApiError::field("quota", e))?,
        ),
        None => None,
    };
    let plan = Plan {
        file: std::path::PathBuf::new(),
        pipelines: vec![PipelinePlan {
            name: r.name.clone(),
            connection: r.name.clone(),
            // `isolation = process`: the plugin in processes of its own (a server that
            // isolates it by policy already has it so).
            connector: match r.isolation {
                Some(ionport_core::plugin::Isolation::Process) if !plugin.is_isolated() => {
                    plugin.isolated(ionport_core::plugin::IsolationLimits::default())
                }
                _ => plugin.clone(),
            },
            credentials: CredentialsPlan::Vault(r.vault_entry()),
            settings: r.settings.clone(),
            environment: r.name.clone(),
            destination: super::connections::recheck_destination(st, &r.workspace, &r.destination)?,
            tasks,
            page_size: r.page_size,
            pages_in_flight: None,
            concurrency: r
                .concurrency
                .unwrap_or(ionport_core::pipeline::load::DEFAULT_CONCURRENCY)
                .max(1),
            schedule: None,
            quota,
            daily_budget: None,
            auth_budget: None,
            timeout: None,
            max_in_flight: None,
            retries: r.retries,
        }],
    };
    let mut options = RunOptions {
        full_refresh,
        connection: crate::serve::connection_settings(),
        ..RunOptions::default()
    };
    options.connection.gateway.scoped_limit = scoped_limit(st, &r.workspace);
    Ok(RunRequest {
        options,
        connection: r.name.clone(),
        max_runs: st.limits_of(&r.workspace).max_concurrent_runs,
        workspace: r.workspace.clone(),
        connector: plugin.id().to_string(),
        pipeline: None,
        tasks: chosen
            .iter()
            .map(|t| (t.name.clone(), t.sync_mode.clone()))
            .collect(),
        secrets: crate::serve::Secrets(connection_secrets(st, &r)),
        plan,
    })
}

/// The workspace's requests per minute to a tenant, as the gateway client's scoped limit
/// (kept besides the tenant's quota; the runs of a workspace share it per tenant).
fn scoped_limit(st: &AppState, workspace: &str) -> Option<ionport_core::gateway::ScopedLimit> {
    let n = st.limits_of(workspace).requests_per_minute?;
    Some(ionport_core::gateway::ScopedLimit {
        scope: format!("workspace:{workspace}"),
        limit: ionport_core::gateway::RateLimit::new(n, Duration::from_secs(60)),
    })
}

fn pipeline_run(
    st: &AppState,
    name: &str,
    task: Option<&str>,
    full_refresh: bool,
) -> ApiResult<RunRequest> {
    // The operator's pipeline file is the default workspace's.
    let ws = workspaces::current();
    if ws != workspaces::DEFAULT {
        return Err(ApiError::not_found("pipeline", name));
    }
    let plan = st
        .pipelines
        .as_ref()
        .ok_or_else(|| ApiError::not_found("pipeline (the server has no --pipeline file)", name))?;
    let p = plan
        .pipelines
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found("pipeline", name))?;
    let tasks: Vec<(String, String)> = p
        .tasks
        .iter()
        .filter(|t| task.is_none_or(|n| n == t.spec.name))
        .map(|t| (t.spec.name.clone(), t.sync_mode.as_str().to_string()))
        .collect();
    if tasks.is_empty() {
        return Err(ApiError::field(
            "task",
            format!(
                "pipeline '{name}' has no task '{}'",
                task.unwrap_or_default()
            ),
        ));
    }
    Ok(RunRequest {
        plan: Plan {
            file: plan.file.clone(),
            pipelines: vec![p.clone()],
        },
        options: {
            let mut o = RunOptions {
                pipeline: Some(name.to_string()),
                task: task.map(str::to_string),
                full_refresh,
                connection: crate::serve::connection_settings(),
                ..RunOptions::default()
            };
            o.connection.gateway.scoped_limit = scoped_limit(st, &ws);
            o
        },
        connection: p.connection.clone(),
        max_runs: st.limits_of(&ws).max_concurrent_runs,
        workspace: ws,
        connector: p.connector.id().to_string(),
        pipeline: Some(name.to_string()),
        tasks,
        secrets: crate::serve::Secrets::default(),
    })
}

/// Every run of the workspace this server started since it started, newest first.
#[utoipa::path(get, operation_id = "runs_list", path = "/v1/runs", tag = "runs",
    responses(
        (status = 200, description = "The runs", body = [RunView]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>) -> Json<Vec<RunView>> {
    Json(st.runs.list(&workspaces::current()))
}

/// One run: status, per-task progress and counts.
#[utoipa::path(get, operation_id = "runs_get", path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub async fn get(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RunView>> {
    st.runs
        .get(&workspaces::current(), &id)
        .and_then(|e| e.view())
        .map(Json)
        .ok_or_else(|| ApiError::not_found("run", &id))
}

/// Asks a run to stop between pages; answers at once with its status.
#[utoipa::path(post, operation_id = "runs_cancel", path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 202, description = "Cancellation asked", body = RunView),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has finished", body = ErrorBody)))]
pub async fn cancel(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    let entry = st
        .runs
        .get(&workspaces::current(), &id)
        .ok_or_else(|| ApiError::not_found("run", &id))?;
    if !st.runs.cancel(&entry) {
        return Err(ApiError::conflict(format!("run {id} has finished")));
    }
    audit::record(&st.audit, audit::entry("run.cancelled", &id, Vec::new()));
    // Give the run a moment to notice, so the answer usually shows it stopping.
    tokio::time::sleep(Duration::from_millis(10)).await;
    entry
        .view()
        .map(|v| (StatusCode::ACCEPTED, Json(v)))
        .ok_or_else(|| ApiError::internal("the run's status is unavailable"))
}
