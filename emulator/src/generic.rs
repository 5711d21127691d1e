//! A generic ION API under `/{tenant}/GENERIC/v1/widgets/{style}`: the same generated
//! widgets served with each paging style the `infor-ionapi` connector declares —
//! `page` (page number + size), `offset` (offset + limit), `linked` (a next link in the
//! answer) and `keyed` (the last key as the next request's parameter). `since` filters
//! `updated >= since` on every style.
//!
//! The widgets are a fixed function of the scale, so a test's oracle is the formula
//! (emulator/README.md, "Generic ION API"): widget `i` (1..=scale) has id `W{i:06}`, name
//! `Widget {i}`, amount `i * 1.5` and `updated` = 2026-01-01T00:00:00Z plus `i / 2`
//! minutes — two widgets share each stamp, so a `>=` filter meets ties.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/{tenant}/GENERIC/v1/widgets/{style}", get(widgets))
}

/// The query parameters of every style (each uses its own).
#[derive(Debug, Deserialize)]
struct Params {
    page: Option<u64>,
    #[serde(rename = "pageSize")]
    page_size: Option<u64>,
    offset: Option<u64>,
    limit: Option<u64>,
    /// `linked`: where the next page starts (an index from 0), as the link gives it.
    from: Option<u64>,
    /// `keyed`: the last id of the previous page.
    after: Option<String>,
    since: Option<String>,
}

/// Widget `i`'s `updated` stamp: two widgets a minute (valid up to 80 000 widgets).
fn stamp(i: u64) -> String {
    let m = i / 2;
    format!(
        "2026-01-{:02}T{:02}:{:02}:00Z",
        1 + m / 1440,
        (m / 60) % 24,
        m % 60
    )
}

fn widget(i: u64) -> Value {
    json!({
        "id": format!("W{i:06}"),
        "name": format!("Widget {i}"),
        "amount": i as f64 * 1.5,
        "updated": stamp(i),
    })
}

fn bad(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"code": "BadRequest", "message": message}})),
    )
        .into_response()
}

fn size(v: Option<u64>, name: &str) -> Result<u64, Response> {
    match v {
        Some(n) if (1..=10_000).contains(&n) => Ok(n),
        Some(n) => Err(bad(&format!("{name} {n} is not between 1 and 10000"))),
        None => Err(bad(&format!("{name} is required"))),
    }
}

async fn widgets(
    State(st): State<Shared>,
    Path((tenant, style)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Response {
    // The widgets the filter keeps, in id order (the stamps grow with the id).
    let since = p.since.clone();
    let rows: Vec<u64> = (1..=st.config.scale)
        .filter(|i| since.as_deref().is_none_or(|s| stamp(*i).as_str() >= s))
        .collect();
    let slice = |start: u64, n: u64| -> Vec<Value> {
        rows.iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .map(|i| widget(*i))
            .collect()
    };
    match style.as_str() {
        "page" => {
            let n = match size(p.page_size, "pageSize") {
                Ok(n) => n,
                Err(r) => return r,
            };
            let page = match p.page {
                Some(page) if page >= 1 => page,
                _ => return bad("page is required and counts from 1"),
            };
            axum::Json(json!({"page": page, "data": {"items": slice((page - 1) * n, n)}}))
                .into_response()
        }
        "offset" => {
            let n = match size(p.limit, "limit") {
                Ok(n) => n,
                Err(r) => return r,
            };
            axum::Json(json!({"value": slice(p.offset.unwrap_or(0), n)})).into_response()
        }
        "linked" => {
            let n = match size(p.limit, "limit") {
                Ok(n) => n,
                Err(r) => return r,
            };
            let from = p.from.unwrap_or(0);
            let items = slice(from, n);
            let mut links = json!({});
            if from + n < rows.len() as u64 {
                // An absolute URL, as real ION APIs give: the gateway's base and tenant.
                let mut next = format!(
                    "{}/{tenant}/GENERIC/v1/widgets/linked?from={}&limit={n}",
                    st.base_url,
                    from + n
                );
                if let Some(s) = &since {
                    let s: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
                    next.push_str(&format!("&since={s}"));
                }
                links = json!({"next": next});
            }
            axum::Json(json!({"items": items, "links": links})).into_response()
        }
        "keyed" => {
            let n = match size(p.limit, "limit") {
                Ok(n) => n,
                Err(r) => return r,
            };
            let start = match &p.after {
                Some(key) => rows
                    .iter()
                    .take_while(|i| format!("W{i:06}").as_str() <= key.as_str())
                    .count() as u64,
                None => 0,
            };
            // The answer is the array itself.
            axum::Json(Value::Array(slice(start, n))).into_response()
        }
        other => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "NotFound", "message":
                format!("no paging style '{other}': page, offset, linked or keyed")}})),
        )
            .into_response(),
    }
}
