//! `GET /health` and `GET /openapi.json` (both open), `GET /metrics`, and the per-request
//! metrics.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::AppState;
use crate::serve::error::{ApiError, ApiResult, ErrorBody};
use crate::serve::metrics::{Format, HttpLabels};

/// The server is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The ionport version.
    pub version: String,
}

/// Liveness; open without an API key.
#[utoipa::path(get, operation_id = "system_health", path = "/health", tag = "system", security(()),
    responses((status = 200, description = "The server is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Counters and histograms of the whole server (admin keys only): the OpenMetrics text
/// format, or the classic Prometheus text
/// format (`text/plain; version=0.0.4`) when the `Accept` header prefers it.
///
/// The `Accept` header's q-values are honoured; OpenMetrics on a tie and without one.
// Not a declared parameter: OpenAPI ignores header parameters named `Accept`.
#[utoipa::path(get, operation_id = "system_metrics", path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "The metrics", content(
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            (String = "text/plain; version=0.0.4; charset=utf-8"))),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key (the counters are the whole server's)", body = ErrorBody)))]
pub async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    // Server-wide counters would tell one workspace of another's runs.
    if !crate::serve::workspaces::caller().admin {
        return Err(ApiError::admin_only());
    }
    let format = Format::negotiate(
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let text = st
        .metrics
        .encode(format)
        .map_err(|e| ApiError::internal(format!("encoding the metrics failed: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        text,
    )
        .into_response())
}

/// This API's OpenAPI document; open without an API key, so that clients and validators
/// can read it before they hold one.
#[utoipa::path(get, operation_id = "system_openapi", path = "/openapi.json", tag = "system", security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::serve::openapi::document_text().unwrap_or_default(),
    )
        .into_response()
}

/// Counts every request by method, route (the route's pattern, never a name from the
/// path) and status.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    st.metrics.http_requests.get_or_create(&labels).inc();
    st.metrics
        .http_duration
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}
