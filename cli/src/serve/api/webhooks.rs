//! `/v1/webhooks`: register, list, show and delete endpoints for run events, and read an
//! endpoint's delivery log. The signing secret is shown once, in the answer to `POST`.
//! Endpoints are the caller's workspace's: another workspace's id is "no webhook" (404).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::serve::AppState;
use crate::serve::audit;
use crate::serve::error::{ApiError, ApiResult, Body, ErrorBody};
use crate::serve::events::EventKind;
use crate::serve::webhooks::{CreatedWebhook, Delivery, WebhookView};
use crate::serve::workspaces;

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are posted (`http` or `https`).
    pub url: String,
    /// The events to send; all of them when left out.
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    #[serde(default)]
    pub description: Option<String>,
}

fn check_url(url: &str) -> ApiResult<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            if u.password().is_some() || !u.username().is_empty() {
                return Err(ApiError::field(
                    "url",
                    "put no user or password in the URL: deliveries are signed instead",
                ));
            }
            Ok(())
        }
        _ => Err(ApiError::field(
            "url",
            "expected an absolute http:// or https:// URL",
        )),
    }
}

/// Registers an endpoint; the answer holds its signing secret, shown only this once.
#[utoipa::path(post, operation_id = "webhooks_create", path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Registered; `secret` is shown only now", body = CreatedWebhook),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 422, description = "Invalid input (fields named)", body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Body(req): Body<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    check_url(&req.url)?;
    let events = req.events.unwrap_or_else(|| EventKind::ALL.to_vec());
    if events.is_empty() {
        return Err(ApiError::field("events", "name at least one event"));
    }
    let created = st
        .webhooks
        .create(
            &workspaces::current(),
            req.url,
            events,
            req.description.filter(|d| !d.trim().is_empty()),
        )
        .map_err(|e| ApiError::internal(format!("the webhook could not be stored: {e:#}")))?;
    audit::record(
        &st.audit,
        audit::entry(
            "webhook.created",
            &created.webhook.id,
            vec!["url".into(), "events".into(), "secret".into()],
        ),
    );
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every endpoint of the workspace (never their secrets).
#[utoipa::path(get, operation_id = "webhooks_list", path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints", body = [WebhookView]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>) -> Json<Vec<WebhookView>> {
    Json(st.webhooks.list(&workspaces::current()))
}

/// One endpoint.
#[utoipa::path(get, operation_id = "webhooks_get", path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    st.webhooks
        .get(&workspaces::current(), &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("webhook", &id))
}

/// Deletes an endpoint; its deliveries under way stop.
#[utoipa::path(delete, operation_id = "webhooks_delete", path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let removed = st
        .webhooks
        .delete(&workspaces::current(), &id)
        .map_err(|e| ApiError::internal(format!("the webhooks could not be saved: {e:#}")))?;
    if !removed {
        return Err(ApiError::not_found("webhook", &id));
    }
    audit::record(&st.audit, audit::entry("webhook.deleted", &id, Vec::new()));
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's latest deliveries (kept across restarts), newest first, with every
/// attempt.
#[utoipa::path(get, operation_id = "webhooks_deliveries", path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The webhook id")),
    responses(
        (status = 200, description = "The deliveries", body = [Delivery]),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub async fn deliveries(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Delivery>>> {
    st.webhooks
        .deliveries(&workspaces::current(), &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("webhook", &id))
}
