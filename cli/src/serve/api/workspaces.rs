//! `/v1/workspaces` and `/v1/keys`: what only an admin key may do — create, show, limit
//! and delete workspaces, issue and revoke keys. A workspace key is refused (403) on
//! every one of these routes, whatever the id: the answer tells nothing about what
//! exists.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::AppState;
use crate::serve::audit;
use crate::serve::auth::{self, Role};
use crate::serve::error::{ApiError, ApiResult, Body, ErrorBody};
use crate::serve::workspaces::{self, EditError, WorkspaceLimits};

/// The caller, when it holds an admin key.
fn admin() -> ApiResult<workspaces::Caller> {
    let c = workspaces::caller();
    if c.admin {
        Ok(c)
    } else {
        Err(ApiError::admin_only())
    }
}

fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::Exists(m) => ApiError::conflict(m),
        EditError::Missing(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        EditError::Refused(m) => ApiError::conflict(m),
        EditError::Io(e) => ApiError::internal(format!("the workspaces could not be saved: {e:#}")),
    }
}

/// A workspace, its limits and what it holds now.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    pub name: String,
    /// Seconds since the Unix epoch (0 for `default`).
    pub created: u64,
    pub limits: WorkspaceLimits,
    /// Connections stored.
    pub connections: usize,
    /// Runs going.
    pub runs_going: usize,
    /// Webhook endpoints registered.
    pub webhooks: usize,
}

async fn view(st: &AppState, w: workspaces::Workspace) -> WorkspaceView {
    let connections = st.store.lock().await.count(&w.name);
    WorkspaceView {
        runs_going: st.runs.going(&w.name),
        webhooks: st.webhooks.list(&w.name).len(),
        connections,
        name: w.name,
        created: w.created,
        limits: w.limits,
    }
}

/// `POST /v1/workspaces`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// 1 to 32 of `a-z 0-9 -`, not starting with `-`.
    pub name: String,
    /// Its limits (none when left out).
    #[serde(default)]
    pub limits: Option<WorkspaceLimits>,
}

/// `PATCH /v1/workspaces/{workspace}`: the new limits (a limit left out is removed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    pub limits: WorkspaceLimits,
}

fn check_limits(l: &WorkspaceLimits) -> ApiResult<()> {
    l.check().map_err(|(f, r)| ApiError::field(&f, r))
}

/// Every workspace, `default` first (admin keys only).
#[utoipa::path(get, operation_id = "workspaces_list", path = "/v1/workspaces", tag = "workspaces",
    responses(
        (status = 200, description = "The workspaces", body = [WorkspaceView]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<WorkspaceView>>> {
    admin()?;
    let mut out = Vec::new();
    for w in st.workspaces.list() {
        out.push(view(&st, w).await);
    }
    Ok(Json(out))
}

/// Creates a workspace (admin keys only).
#[utoipa::path(post, operation_id = "workspaces_create", path = "/v1/workspaces", tag = "workspaces",
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "Created", body = WorkspaceView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "A workspace of that name exists", body = ErrorBody),
        (status = 422, description = "Invalid input (fields named)", body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Body(req): Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    admin()?;
    workspaces::check_name(&req.name).map_err(|r| ApiError::field("name", r))?;
    let limits = req.limits.unwrap_or_default();
    check_limits(&limits)?;
    let w = workspaces::create(&st.workspaces, &req.name, limits).map_err(edit_error)?;
    let mut e = audit::entry("workspace.created", &w.name, vec!["limits".into()]);
    e.workspace = w.name.clone();
    audit::record(&st.audit, e);
    Ok((StatusCode::CREATED, Json(view(&st, w).await)))
}

/// One workspace (admin keys only).
#[utoipa::path(get, operation_id = "workspaces_get", path = "/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "The workspace name")),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    admin()?;
    let w = st
        .workspaces
        .get(&name)
        .ok_or_else(|| ApiError::not_found("workspace", &name))?;
    Ok(Json(view(&st, w).await))
}

/// Sets a workspace's limits (admin keys only); runs going are not stopped.
#[utoipa::path(patch, operation_id = "workspaces_update", path = "/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "The workspace name")),
    request_body = UpdateWorkspace,
    responses(
        (status = 200, description = "Updated", body = WorkspaceView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody),
        (status = 422, description = "Invalid input (fields named)", body = ErrorBody)))]
pub async fn update(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<UpdateWorkspace>,
) -> ApiResult<Json<WorkspaceView>> {
    admin()?;
    check_limits(&req.limits)?;
    let limits = req.limits.clone();
    let w = st
        .workspaces
        .edit(|list| {
            let w = list
                .iter_mut()
                .find(|w| w.name == name)
                .ok_or_else(|| EditError::Missing(format!("no workspace '{name}'")))?;
            w.limits = limits;
            Ok(w.clone())
        })
        .map_err(edit_error)?;
    let mut e = audit::entry("workspace.updated", &w.name, vec!["limits".into()]);
    e.workspace = w.name.clone();
    audit::record(&st.audit, e);
    Ok(Json(view(&st, w).await))
}

/// Deletes an empty workspace (no connections, no webhooks) and revokes its keys (admin
/// keys only); `default` stays.
#[utoipa::path(delete, operation_id = "workspaces_delete", path = "/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "The workspace name")),
    responses(
        (status = 204, description = "Deleted; its keys revoked"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody),
        (status = 409, description = "It still holds connections or webhooks, or it is `default`", body = ErrorBody)))]
pub async fn delete(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    admin()?;
    if st.workspaces.get(&name).is_none() {
        return Err(ApiError::not_found("workspace", &name));
    }
    // Held while deleting, so no connection is stored in it meanwhile.
    let store = st.store.lock().await;
    workspaces::delete(
        &st.workspaces,
        &name,
        store.count(&name),
        st.webhooks.list(&name).len(),
    )
    .map_err(edit_error)?;
    drop(store);
    auth::revoke_workspace(&st.home, &name).map_err(|e| {
        ApiError::internal(format!("the workspace's keys could not be revoked: {e:#}"))
    })?;
    let mut e = audit::entry("workspace.deleted", &name, Vec::new());
    e.workspace = name.clone();
    audit::record(&st.audit, e);
    Ok(StatusCode::NO_CONTENT)
}

/// A stored key as shown (never the key, never its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub name: String,
    pub role: Role,
    pub workspace: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// A new key: the only time the key is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyView,
    /// The key (`ionp_…`): shown once, store it now.
    pub key: String,
}

/// `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`, unique on the server.
    pub name: String,
    /// The workspace it acts in.
    pub workspace: String,
    /// `workspace` (default: sees only its workspace) or `admin`.
    #[serde(default)]
    pub role: Option<Role>,
}

/// The keys of the key file (admin keys only; `--api-key` keys are not stored, so not
/// listed).
#[utoipa::path(get, operation_id = "keys_list", path = "/v1/keys", tag = "workspaces",
    responses(
        (status = 200, description = "The stored keys", body = [KeyView]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn list_keys(State(st): State<AppState>) -> ApiResult<Json<Vec<KeyView>>> {
    admin()?;
    let file = auth::load_file(&auth::key_file(&st.home))
        .map_err(|e| ApiError::internal(format!("the key file could not be read: {e:#}")))?;
    Ok(Json(
        file.keys
            .into_iter()
            .map(|k| KeyView {
                name: k.name,
                role: k.role,
                workspace: k.workspace,
                created: k.created,
            })
            .collect(),
    ))
}

/// Issues a key for a workspace (admin keys only); the answer holds the key, shown only
/// this once (only its SHA-256 is stored).
#[utoipa::path(post, operation_id = "keys_create", path = "/v1/keys", tag = "workspaces",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "A key of that name exists", body = ErrorBody),
        (status = 422, description = "Invalid input (fields named)", body = ErrorBody)))]
pub async fn create_key(
    State(st): State<AppState>,
    Body(req): Body<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    admin()?;
    auth::check_key_name(&req.name).map_err(|r| ApiError::field("name", r))?;
    if st.workspaces.get(&req.workspace).is_none() {
        return Err(ApiError::field(
            "workspace",
            format!("no workspace '{}'", req.workspace),
        ));
    }
    let role = req.role.unwrap_or(Role::Workspace);
    let path = auth::key_file(&st.home);
    let exists = auth::load_file(&path)
        .map_err(|e| ApiError::internal(format!("the key file could not be read: {e:#}")))?
        .keys
        .iter()
        .any(|k| k.name == req.name);
    if exists {
        return Err(ApiError::conflict(format!(
            "a key named '{}' exists",
            req.name
        )));
    }
    let key = auth::create_in(&st.home, &req.name, role, &req.workspace)
        .map_err(|e| ApiError::internal(format!("the key could not be stored: {e:#}")))?;
    let mut e = audit::entry("key.created", &req.name, vec!["role".into()]);
    e.workspace = req.workspace.clone();
    audit::record(&st.audit, e);
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            info: KeyView {
                name: req.name,
                role,
                workspace: req.workspace,
                created: auth::now(),
            },
            key,
        }),
    ))
}

/// Revokes a stored key (admin keys only): the server stops accepting it at once.
#[utoipa::path(delete, operation_id = "keys_delete", path = "/v1/keys/{name}", tag = "workspaces",
    params(("name" = String, Path, description = "The key's name")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody)))]
pub async fn delete_key(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    admin()?;
    let workspace = auth::load_file(&auth::key_file(&st.home))
        .map_err(|e| ApiError::internal(format!("the key file could not be read: {e:#}")))?
        .keys
        .into_iter()
        .find(|k| k.name == name)
        .map(|k| k.workspace)
        .ok_or_else(|| ApiError::not_found("key", &name))?;
    auth::revoke(&st.home, &name)
        .map_err(|e| ApiError::internal(format!("the key could not be revoked: {e:#}")))?;
    let mut e = audit::entry("key.revoked", &name, Vec::new());
    e.workspace = workspace;
    audit::record(&st.audit, e);
    Ok(StatusCode::NO_CONTENT)
}
