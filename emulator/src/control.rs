//! Control and inspection endpoints under `/__emulator/` (no token; the server listens on
//! loopback only):
//!
//! - `GET  /__emulator/counters`: [`crate::Counters`].
//! - `GET  /__emulator/info`: tenant, base URL, seed, scale, companies, row counts.
//! - `GET  /__emulator/ionapi`: the `.ionapi` JSON for this tenant.
//! - `POST /__emulator/reset`: forget tokens, counters, faults, changes, jobs.
//! - `POST /__emulator/changes` `{"table":"OCUSMA","count":10,"cono":100,"delete":false}`:
//!   change records (new `LMTS`/`LMDT`, `CHNO`+1, optionally deleted).
//! - `POST /__emulator/columns` `{"table":"OCUSMA","name":"OKZZCUST","type":"string","from":"OKCUNO"}`:
//!   a column added at the source (or, for a name the table has, its type changed), seen
//!   by EXPORTMI, the Data Catalog and Compass ([`crate::data::schema`]).
//! - `GET|POST|PUT|DELETE /__emulator/faults`: list, add, replace, clear fault rules.
//! - `GET|DELETE /__emulator/requests`: the API requests served ([`crate::recorded`]), or
//!   forget them.
//! - `POST /__emulator/jobs/expire` `{"ids":[…],"status":410}` or `{"after_results":N}`:
//!   Compass results no longer kept (about 20 hours on the service), now or after N more
//!   result pages.
//! - `POST /__emulator/jobs/time-limit` `{"count":N}`: the next N Compass jobs run into the
//!   service's 60-minute query limit and end FAILED.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::data::{COMPANIES, DEFAULT_COMPANY, Entity, tables};
use crate::datalake::{ExpireRequest, TimeLimitRequest};
use crate::faults::FaultRule;
use crate::state::{Shared, lock};
use crate::util::json;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/counters", get(counters))
        .route("/info", get(info))
        .route("/ionapi", get(ionapi))
        .route("/reset", post(reset))
        .route("/changes", post(change))
        .route("/columns", post(columns))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/jobs/expire", post(expire_jobs))
        .route("/jobs/time-limit", post(time_limit_jobs))
        .route(
            "/faults",
            get(list_faults)
                .post(add_faults)
                .put(set_faults)
                .delete(clear_faults),
        )
}

fn bad_request(msg: &str) -> Response {
    json(StatusCode::BAD_REQUEST, &json!({"error": msg}))
}

async fn counters(State(st): State<Shared>) -> Response {
    let mut v = serde_json::to_value(st.counters()).unwrap_or_default();
    v["active_access_tokens"] = lock(&st.tokens).active_access_tokens().into();
    v["changed_records"] = st.changes().len().into();
    axum::Json(v).into_response()
}

async fn info(State(st): State<Shared>) -> Response {
    let ds = st.data;
    let counts: serde_json::Map<String, serde_json::Value> = COMPANIES
        .iter()
        .map(|c| {
            let per: serde_json::Map<String, serde_json::Value> = Entity::ALL
                .iter()
                .map(|e| {
                    let name = serde_json::to_value(e)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    (name, ds.count(*e, c.cono).into())
                })
                .collect();
            (c.cono.to_string(), per.into())
        })
        .collect();
    let lake: serde_json::Map<String, serde_json::Value> = tables::LAKE_TABLES
        .iter()
        .map(|t| (t.name.to_owned(), ds.table_rows(t).into()))
        .collect();
    axum::Json(json!({
        "tenant": st.config.tenant,
        "baseUrl": st.base_url,
        "seed": ds.seed(),
        "scale": ds.scale(),
        "companies": COMPANIES,
        "defaultCompany": DEFAULT_COMPANY,
        "counts": counts,
        "lakeTables": lake,
    }))
    .into_response()
}

async fn requests(State(st): State<Shared>) -> Response {
    axum::Json(json!({ "requests": lock(&st.requests).snapshot() })).into_response()
}

async fn clear_requests(State(st): State<Shared>) -> Response {
    lock(&st.requests).clear();
    axum::Json(json!({ "cleared": true })).into_response()
}

async fn ionapi(State(st): State<Shared>) -> Response {
    axum::Json(crate::server::ionapi_json(&st)).into_response()
}

async fn reset(State(st): State<Shared>) -> Response {
    st.reset();
    tracing::info!("emulator reset");
    axum::Json(json!({"reset": true})).into_response()
}

#[derive(Debug, Deserialize)]
struct ChangeRequest {
    table: String,
    #[serde(default = "one")]
    count: u64,
    #[serde(default)]
    cono: Option<u32>,
    #[serde(default)]
    delete: bool,
    #[serde(default)]
    indices: Option<Vec<u64>>,
}

fn one() -> u64 {
    1
}

async fn change(State(st): State<Shared>, body: Bytes) -> Response {
    let req: ChangeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("invalid change request: {e}")),
    };
    let Some(entity) = tables::entity_of(&req.table) else {
        return bad_request(&format!("unknown table '{}'", req.table));
    };
    let cono = req.cono.unwrap_or(DEFAULT_COMPANY);
    if crate::data::Dataset::company(cono).is_none() {
        return bad_request(&format!("unknown company {cono}"));
    }
    let report = st.changes_mut().change(
        &st.data,
        entity,
        cono,
        match req.indices.as_deref() {
            Some(ix) => crate::data::Selection::Indices(ix),
            None => crate::data::Selection::Count(req.count),
        },
        req.delete,
        crate::time::now_ms(),
    );
    st.count(|c| c.records_changed += report.changed);
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    v["entity"] = serde_json::to_value(entity).unwrap_or_default();
    v["cono"] = cono.into();
    axum::Json(v).into_response()
}

async fn columns(State(st): State<Shared>, body: Bytes) -> Response {
    let req: crate::data::ColumnRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("invalid column request: {e}")),
    };
    let applied = lock(&st.schema).apply(&req);
    match applied {
        Ok(t) => {
            tracing::info!(table = t.name, column = %req.name, "schema edited at the source");
            axum::Json(json!({
                "table": t.name,
                "columns": t.columns.iter().map(|c| c.name).collect::<Vec<_>>(),
                "schema": t.json_schema(),
            }))
            .into_response()
        }
        Err(e) => bad_request(&e),
    }
}

async fn expire_jobs(State(st): State<Shared>, body: Bytes) -> Response {
    let req: ExpireRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("invalid expiry request: {e}")),
    };
    match lock(&st.jobs).expire(req) {
        Ok(n) => axum::Json(json!({"expired": n})).into_response(),
        Err(e) => bad_request(&format!("invalid expiry request: {e}")),
    }
}

async fn time_limit_jobs(State(st): State<Shared>, body: Bytes) -> Response {
    let req: TimeLimitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("invalid time-limit request: {e}")),
    };
    lock(&st.jobs).time_limit(&req);
    axum::Json(json!({"time_limited": true})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FaultBody {
    One(FaultRule),
    Many(Vec<FaultRule>),
    Wrapped { rules: Vec<FaultRule> },
}

fn parse_rules(body: &[u8]) -> Result<Vec<FaultRule>, Response> {
    match serde_json::from_slice::<FaultBody>(body) {
        Ok(FaultBody::One(r)) => Ok(vec![r]),
        Ok(FaultBody::Many(v) | FaultBody::Wrapped { rules: v }) => Ok(v),
        Err(e) => Err(bad_request(&format!(
            "invalid fault rule(s): {e}; expected {{\"kind\":\"500|502|503|504|reset|slow|truncated|malformed_json\",\"rate\":1.0,\"count\":N,\"api\":\"m3\",\"delay_ms\":N}}"
        ))),
    }
}

async fn list_faults(State(st): State<Shared>) -> Response {
    axum::Json(json!({"rules": lock(&st.faults).rules()})).into_response()
}

async fn add_faults(State(st): State<Shared>, body: Bytes) -> Response {
    match parse_rules(&body) {
        Ok(rules) => {
            let mut f = lock(&st.faults);
            f.add(rules);
            axum::Json(json!({"rules": f.rules()})).into_response()
        }
        Err(r) => r,
    }
}

async fn set_faults(State(st): State<Shared>, body: Bytes) -> Response {
    match parse_rules(&body) {
        Ok(rules) => {
            let mut f = lock(&st.faults);
            f.set(rules);
            axum::Json(json!({"rules": f.rules()})).into_response()
        }
        Err(r) => r,
    }
}

async fn clear_faults(State(st): State<Shared>) -> Response {
    lock(&st.faults).set(Vec::new());
    axum::Json(json!({"rules": []})).into_response()
}
