//! The routes, one file per resource. Every handler carries its OpenAPI description
//! (`#[utoipa::path]`), collected in `openapi.rs`.

pub mod audit;
pub mod cluster;
pub mod connections;
pub mod connectors;
pub mod runs;
pub mod states;
pub mod system;
pub mod webhooks;
pub mod workspaces;

use axum::Router;
use axum::routing::{delete, get, post};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .route("/v1/connectors", get(connectors::list))
        .route("/v1/connectors/{id}", get(connectors::get))
        .route("/v1/connectors/{id}/form", get(connectors::form))
        .route("/v1/connectors/{id}/tasks", get(connectors::tasks))
        .route(
            "/v1/connections",
            get(connections::list).post(connections::create),
        )
        .route("/v1/connections/test", post(connections::test_values))
        .route(
            "/v1/connections/{name}",
            get(connections::get)
                .put(connections::update)
                .patch(connections::patch)
                .delete(connections::delete),
        )
        .route("/v1/connections/{name}/test", post(connections::test))
        .route("/v1/connections/{name}/tasks", get(connections::tasks))
        .route(
            "/v1/connections/{name}/states",
            get(states::list).delete(states::reset),
        )
        .route("/v1/runs", get(runs::list).post(runs::start))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/audit", get(audit::list))
        .route(
            "/v1/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            "/v1/workspaces/{workspace}",
            get(workspaces::get)
                .patch(workspaces::update)
                .delete(workspaces::delete),
        )
        .route(
            "/v1/keys",
            get(workspaces::list_keys).post(workspaces::create_key),
        )
        .route("/v1/keys/{name}", delete(workspaces::delete_key))
        .route("/v1/cluster", get(cluster::status))
}
