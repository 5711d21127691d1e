//! `GET /health` (open), `GET /metrics`, `GET /openapi.json`, and the per-request metrics.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::AppState;
use crate::serve::error::{ApiError, ApiResult, ErrorBody};
use crate::serve::metrics::{CONTENT_TYPE, HttpLabels};

/// The server is up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The ionport version.
    pub version: String,
}

/// Liveness; the one route open without an API key.
#[utoipa::path(get, path = "/health", tag = "system", security(()),
    responses((status = 200, description = "The server is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Counters in the Prometheus (OpenMetrics) text format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn metrics(State(st): State<AppState>) -> ApiResult<Response> {
    let text = st
        .metrics
        .encode()
        .map_err(|e| ApiError::internal(format!("encoding the metrics failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
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
