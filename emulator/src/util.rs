//! Small helpers shared by the handlers: random opaque tokens, form parsing, JSON responses.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// An unguessable-enough opaque token (192 bits from per-process random hash keys).
pub(crate) fn random_token() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (0..3u64)
        .map(|i| format!("{:016x}", RandomState::new().hash_one((n, nanos, i))))
        .collect()
}

/// Parses an `application/x-www-form-urlencoded` body; the last value of a key wins.
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A JSON response with a status.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

/// A JSON response from pre-serialized bytes.
pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The gateway's generic error body.
pub(crate) fn gateway_error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({
            "error": {"code": status.as_u16().to_string(), "message": message}
        }),
    )
}
