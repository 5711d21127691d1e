//! `GET /v1/cluster`: the scale-out cluster this server belongs to (`ionport serve
//! --coordinator URL`), as `ionport cluster status --json` shows it: workers with their
//! heartbeats and the units each runs, lease ages, queued work, per-tenant quota shares.
//!
//! With a coordinator, the server registers the pipelines of its `--pipeline` file with it
//! when it starts (as `ionport cluster submit FILE` does), so that their schedules run on
//! the cluster's workers, once across the cluster; and its own runs (`POST /v1/runs`),
//! connection tests and discoveries share the cluster's tokens, tenant quotas and daily
//! budgets as a worker's units do ([`ClusterMember`]).

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use ionport_cluster::member::{ClusterMember, MEMBER_LEASE};
use ionport_cluster::{Coordinator, Status};
use ionport_core::pipeline::Plan;
use ionport_core::token::TokenStoreProvider;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::serve::AppState;
use crate::serve::error::{ApiError, ApiResult, ErrorBody};

/// `ionport serve`'s coordinator options.
#[derive(Debug, Clone, clap::Args)]
pub struct CoordinatorArgs {
    /// A scale-out coordinator (Postgres URL): the `--pipeline` file's pipelines are
    /// registered with it, their schedules run on its workers, and `GET /v1/cluster`
    /// shows it. A password is better given in PGPASSWORD or ~/.pgpass.
    #[arg(
        long,
        value_name = "URL",
        env = "IONPORT_COORDINATOR",
        hide_env_values = true
    )]
    pub coordinator: Option<String>,
    /// The coordinator's schema.
    #[arg(
        long,
        value_name = "NAME",
        env = "IONPORT_COORDINATOR_SCHEMA",
        default_value = "ionport_cluster"
    )]
    pub coordinator_schema: String,
}

/// The coordinator of this server, when it has one.
static COORDINATOR: OnceLock<(String, String)> = OnceLock::new();

/// The cluster's token store, for this server's connections, when it has a coordinator.
static SHARED_TOKENS: OnceLock<Arc<dyn TokenStoreProvider>> = OnceLock::new();

/// The token store this server's connections use: the cluster's, with a coordinator;
/// `None` (the vault's, on this machine) without.
pub fn shared_tokens() -> Option<Arc<dyn TokenStoreProvider>> {
    SHARED_TOKENS.get().cloned()
}

/// At start-up: checks the coordinator can be reached (creating its tables), registers
/// `pipelines`' pipelines with it and joins the cluster (its tokens, quotas and budgets)
/// for as long as the membership is kept. Without `--coordinator`, nothing.
pub fn start(
    args: &CoordinatorArgs,
    pipelines: Option<&Plan>,
) -> anyhow::Result<Option<ClusterMember>> {
    let Some(url) = &args.coordinator else {
        return Ok(None);
    };
    let mut coord = Coordinator::connect(url, &args.coordinator_schema)?;
    if let Some(plan) = pipelines {
        let source = std::fs::read_to_string(&plan.file).map_err(|e| {
            anyhow::anyhow!("cannot read the pipeline file {}: {e}", plan.file.display())
        })?;
        coord.submit(plan, &source, false)?;
        tracing::info!(
            pipelines = plan.pipelines.len(),
            schema = %args.coordinator_schema,
            "pipelines registered with the coordinator"
        );
    }
    let id = format!(
        "serve@{}:{}",
        ionport_cluster::worker::host_name(),
        std::process::id()
    );
    let member = ClusterMember::join(url, &args.coordinator_schema, &id, MEMBER_LEASE)?;
    tracing::info!(member = %id, "this server's runs share the cluster's tokens, quotas and daily budgets");
    let _ = SHARED_TOKENS.set(member.tokens());
    let _ = COORDINATOR.set((url.clone(), args.coordinator_schema.clone()));
    Ok(Some(member))
}

/// How many finished units to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClusterQuery {
    /// Finished units to show (default 20, at most 1000).
    pub recent: Option<u32>,
}

/// The cluster: registered pipelines, workers (heartbeat age, units held), queued and
/// running units with their lease ages, recently finished units with their attempts, and
/// each worker's share of each tenant's quota. Admin keys only.
#[utoipa::path(get, operation_id = "cluster_status", path = "/v1/cluster", tag = "cluster",
    params(ClusterQuery),
    responses(
        (status = 200, description = "The cluster's state", body = Status),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key (the cluster runs every workspace's pipelines)", body = ErrorBody),
        (status = 404, description = "The server was started without --coordinator", body = ErrorBody),
        (status = 503, description = "The coordinator cannot be reached", body = ErrorBody)))]
pub async fn status(
    State(_st): State<AppState>,
    Query(q): Query<ClusterQuery>,
) -> ApiResult<Json<Status>> {
    // The cluster's units and quota shares are every workspace's.
    if !crate::serve::workspaces::caller().admin {
        return Err(ApiError::admin_only());
    }
    let Some((url, schema)) = COORDINATOR.get().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_coordinator",
            "this server has no coordinator: start it with --coordinator URL",
        ));
    };
    let recent = i64::from(q.recent.unwrap_or(20).min(1000));
    // The coordinator's client blocks: off the async threads.
    let st = tokio::task::spawn_blocking(move || {
        Coordinator::connect(&url, &schema).and_then(|mut c| c.status(recent))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "coordinator",
            e.to_string(),
        )
    })?;
    Ok(Json(st))
}
