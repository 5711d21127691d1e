//! `GET /v1/audit`: the audit log, oldest first, in pages, filtered by action and target.
//! A workspace key reads its workspace's entries; an admin key reads them all (or one
//! workspace's: `workspace`, or the `Ionport-Workspace` header).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::serve::AppState;
use crate::serve::audit::{AuditFilter, AuditPage};
use crate::serve::error::{ApiError, ApiResult, ErrorBody};

/// The most entries one page holds.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action (`connection.updated`), or a family ending in `.` (`connection.`).
    pub action: Option<String>,
    /// Only changes of this target (a connection name, run id, key name or webhook id).
    pub target: Option<String>,
    /// Start at this entry (`next` of the previous page); 0 when left out.
    pub from: Option<u64>,
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only this workspace's entries: an admin key's choice (a workspace key reads its
    /// own workspace's only; naming another is answered 404).
    pub workspace: Option<String>,
}

/// The audit log: who (key name) changed what, when, in which workspace. A workspace
/// key reads its own workspace's entries; an admin key reads every workspace's.
#[utoipa::path(get, operation_id = "audit_list", path = "/v1/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries; `next` gives the following page", body = AuditPage),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody),
        (status = 422, description = "A limit out of range", body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::field(
            "limit",
            format!("expected 1 to {MAX_LIMIT}"),
        ));
    }
    let caller = crate::serve::workspaces::caller();
    let workspace = match q.workspace {
        Some(w) if caller.admin && caller.overall => {
            if st.workspaces.get(&w).is_none() {
                return Err(ApiError::not_found("workspace", &w));
            }
            Some(w)
        }
        Some(w) if w != caller.workspace => return Err(ApiError::not_found("workspace", &w)),
        _ if caller.overall => None,
        _ => Some(caller.workspace),
    };
    let filter = AuditFilter {
        action: q.action,
        target: q.target,
        workspace,
    };
    st.audit
        .read(&filter, q.from.unwrap_or(0), limit)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("the audit log could not be read: {e:#}")))
}
