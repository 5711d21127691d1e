//! The API's one error shape, `{ "error": CODE, "message": TEXT, "fields": [{field, reason}] }`,
//! and the JSON body extractor that refuses malformed (400), mistyped (422) and oversized
//! (413) bodies with it.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ionport_core::form_values::FieldError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// One problem with one input field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The field, dotted (`credentials.token_url`, `tasks[0].name`); empty for the body.
    pub field: String,
    /// What was expected.
    pub reason: String,
}

impl From<FieldError> for FieldProblem {
    fn from(e: FieldError) -> Self {
        Self {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// Every error answer of the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `not_found`, `no_route`, `method_not_allowed`,
    /// `malformed_json`, `invalid_input`, `payload_too_large`, `conflict`, `test_failed`,
    /// `forbidden` (an admin route asked with a workspace key), `limit_exceeded` (429: a
    /// workspace limit, named in `limit`), `timeout`, `internal`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// The fields at fault, for `invalid_input`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
    /// The connection test's report, for `test_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<crate::serve::tester::TestReport>,
    /// The workspace limit reached, for `limit_exceeded` (429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitReached>,
}

/// A workspace limit a request would exceed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitReached {
    /// The limit's name: `max_concurrent_runs` or `max_connections`.
    pub name: String,
    /// Its value for the workspace.
    pub value: u32,
    /// The workspace.
    pub workspace: String,
}

/// An error answer: status and body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: an error travels through every `Result` of the handlers.
    pub body: Box<ErrorBody>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                error: code.into(),
                message: message.into(),
                fields: Vec::new(),
                test: None,
                limit: None,
            }),
        }
    }

    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} '{name}'"),
        )
    }

    /// 422: the connection test failed; nothing was stored or changed.
    pub fn test_failed(report: crate::serve::tester::TestReport) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "test_failed",
            format!("the connection test failed: {}", report.message),
        );
        e.body.test = Some(report);
        e
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 403: a route for admin keys only, asked with a workspace key (the same answer for
    /// every id, so it tells nothing about what exists).
    pub fn admin_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route needs an admin key (workspaces and keys are managed by admins)",
        )
    }

    /// 429: the workspace's limit `name` (of `value`) would be exceeded; `what` says how.
    pub fn limit(workspace: &str, name: &str, value: u32, what: &str) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "limit_exceeded",
            format!("workspace '{workspace}' is at its limit {name} = {value}: {what}"),
        );
        e.body.limit = Some(LimitReached {
            name: name.into(),
            value,
            workspace: workspace.into(),
        });
        e
    }

    /// 422 naming the fields.
    pub fn invalid(fields: Vec<FieldProblem>) -> Self {
        let message = fields
            .iter()
            .map(|f| {
                if f.field.is_empty() {
                    f.reason.clone()
                } else {
                    format!("{}: {}", f.field, f.reason)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message);
        e.body.fields = fields;
        e
    }

    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        Self::invalid(vec![FieldProblem {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    /// 500 with a message that names what failed (never a secret: callers pass messages
    /// of errors whose `Display` holds none).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The standard answer for a bare status (a layer's 408/413/404/405/500).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("no_route", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method_not_allowed", "this route does not take that method")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload_too_large", "the request body is over the limit")
            }
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as application/json",
            ),
            s if s.is_server_error() => ("internal", "the server failed on this request"),
            _ => ("error", "the request was refused"),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Gives every error answer without a JSON body (a layer's 413/408, axum's 404/405, the
/// panic backstop's 500) the one error shape.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let mut out = ApiError::for_status(status).into_response();
        if let Some(v) = resp.headers().get(header::WWW_AUTHENTICATE) {
            out.headers_mut()
                .insert(header::WWW_AUTHENTICATE, v.clone());
        }
        return out;
    }
    resp
}

/// A JSON request body. Malformed JSON is 400, a body that does not fit the type is 422
/// naming the field, a body over the limit is 413.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the request body could not be read: {}", e.body_text()),
                ));
            }
        };
        parse(&bytes).map(Body)
    }
}

/// Parses a JSON body into `T` with the API's errors.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let malformed = |e: &serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    };
    // Syntax first (400), then the shape (422): a type error early in a body that is
    // also cut short is still malformed JSON.
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    let value = match serde_path_to_error::deserialize::<_, T>(json) {
        Ok(v) => v,
        Err(e) => {
            let inner = e.inner();
            if inner.classify() != Category::Data {
                return Err(malformed(inner));
            }
            // (from a `Value`, every error is about the shape)
            let path = e.path().to_string();
            let mut field = if path == "." { String::new() } else { path };
            let msg = inner.to_string();
            let reason = strip_position(&msg);
            // `missing field `x``: name the missing field itself.
            if let Some(rest) = reason.strip_prefix("missing field `")
                && let Some(name) = rest.split('`').next()
            {
                field = if field.is_empty() {
                    name.to_string()
                } else {
                    format!("{field}.{name}")
                };
            }
            return Err(ApiError::invalid(vec![FieldProblem {
                field,
                reason: reason.to_string(),
            }]));
        }
    };
    Ok(value)
}

fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    fn err(body: &str) -> ApiError {
        parse::<T>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn syntax_is_400_and_shape_is_422_naming_the_field() {
        assert_eq!(err("{\"name\": ").status, StatusCode::BAD_REQUEST);
        assert_eq!(err("[1, ").status, StatusCode::BAD_REQUEST);
        assert_eq!(err("{} x").status, StatusCode::BAD_REQUEST);
        let e = err(r#"{"name": "a", "items": [{"n": "x"}]}"#);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.fields[0].field, "items[0].n");
        let e = err(r#"{"items": []}"#);
        assert_eq!(e.body.fields[0].field, "name");
        let e = err(r#"{"name": "a", "items": [], "extra": 1}"#);
        assert_eq!(e.body.fields[0].field, "extra");
        assert!(!e.body.fields[0].reason.contains("line"), "{:?}", e.body);
    }
}
