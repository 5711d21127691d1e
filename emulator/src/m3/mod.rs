//! M3 MI REST under `/{tenant}/M3/m3api-rest/`:
//!
//! - v1 `GET execute/{PROGRAM}/{TRANSACTION};maxrecs=;returncols=;excludempty=;metadata=?INPUT=…`
//!   with the `MIRecord`/`NameValue` shape and its HTTP-200 error shapes;
//! - v2 `GET v2/execute/{PROGRAM}/{TRANSACTION}?maxrecs=&returncols=&excludeempty=&righttrim=&…`
//!   and bulk `POST v2/execute` with the `results` shape.
//!
//! An unknown program is a bare HTTP 400.

mod exec;
mod export;
mod programs;
mod shapes;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use exec::{CallOptions, execute};

use crate::state::Shared;
use crate::util::json_bytes;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/{tenant}/M3/m3api-rest/execute/{program}/{transaction}",
            get(v1),
        )
        .route(
            "/{tenant}/M3/m3api-rest/v2/execute/{program}/{transaction}",
            get(v2_get),
        )
        .route("/{tenant}/M3/m3api-rest/v2/execute", post(v2_bulk))
        .route(
            "/{tenant}/M3/m3api-rest/v2/execute/{program}",
            post(v2_bulk_program),
        )
}

fn bare_400(msg: &str) -> Response {
    let mut resp = (StatusCode::BAD_REQUEST, msg.to_owned()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

fn parse_maxrecs(v: &str) -> Result<u64, Response> {
    v.trim()
        .parse()
        .map_err(|_| bare_400(&format!("maxrecs '{v}' is not a number")))
}

fn split_cols(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// v1: matrix parameters after the transaction, inputs as query parameters.
async fn v1(
    State(st): State<Shared>,
    Path((_tenant, program, trans)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut parts = trans.split(';');
    let transaction = parts.next().unwrap_or_default().to_owned();
    let mut opts = CallOptions::default();
    let mut render = shapes::V1Options {
        metadata: true,
        exclude_empty: false,
        returncols: None,
    };
    for p in parts.filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.to_ascii_lowercase().as_str() {
            "maxrecs" => match parse_maxrecs(v) {
                Ok(n) => opts.maxrecs = Some(n),
                Err(r) => return r,
            },
            "returncols" => render.returncols = Some(split_cols(v)),
            "excludempty" => render.exclude_empty = truthy(v),
            "metadata" => render.metadata = truthy(v),
            "cono" => opts.cono = Some(v.to_owned()),
            "divi" => opts.divi = Some(v.to_owned()),
            _ => {}
        }
    }
    let inputs: HashMap<String, String> = parse_query(query.as_deref()).into_iter().collect();
    match execute(&st, &program, &transaction, &inputs, &opts) {
        Ok(out) => json_bytes(StatusCode::OK, shapes::v1(&out, &render)),
        Err(msg) => bare_400(&msg),
    }
}

fn v2_options(
    q: &[(String, String)],
) -> Result<(CallOptions, shapes::V2Options, HashMap<String, String>), Response> {
    let mut opts = CallOptions::default();
    let mut render = shapes::V2Options {
        exclude_empty: false,
        right_trim: false,
        returncols: None,
    };
    let mut inputs = HashMap::new();
    for (k, v) in q {
        match k.as_str() {
            "maxrecs" => opts.maxrecs = Some(parse_maxrecs(v)?),
            "returncols" => render.returncols = Some(split_cols(v)),
            "excludeempty" => render.exclude_empty = truthy(v),
            "righttrim" => render.right_trim = truthy(v),
            "dateformat" | "_rid" | "extendedresult" | "format" => {}
            "cono" => opts.cono = Some(v.clone()),
            "divi" => opts.divi = Some(v.clone()),
            _ => {
                inputs.insert(k.clone(), v.clone());
            }
        }
    }
    Ok((opts, render, inputs))
}

async fn v2_get(
    State(st): State<Shared>,
    Path((_tenant, program, transaction)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_query(query.as_deref());
    let (opts, render, inputs) = match v2_options(&q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match execute(&st, &program, &transaction, &inputs, &opts) {
        Ok(out) => json_bytes(
            StatusCode::OK,
            shapes::v2(&[(out, render.returncols.clone())], &render),
        ),
        Err(msg) => bare_400(&msg),
    }
}

#[derive(Debug, serde::Deserialize)]
struct BulkRequest {
    #[serde(default)]
    program: Option<String>,
    #[serde(default)]
    transactions: Vec<BulkTransaction>,
}

#[derive(Debug, serde::Deserialize)]
struct BulkTransaction {
    transaction: String,
    #[serde(default)]
    record: serde_json::Map<String, serde_json::Value>,
    #[serde(default, rename = "selectedColumns")]
    selected_columns: Option<Vec<String>>,
}

async fn v2_bulk(st: State<Shared>, q: RawQuery, body: Bytes) -> Response {
    bulk(st, None, q, body)
}

async fn v2_bulk_program(
    st: State<Shared>,
    Path((_tenant, program)): Path<(String, String)>,
    q: RawQuery,
    body: Bytes,
) -> Response {
    bulk(st, Some(program), q, body)
}

fn bulk(
    State(st): State<Shared>,
    program: Option<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let req: BulkRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bare_400(&format!("invalid bulk request: {e}")),
    };
    let Some(program) = program.or(req.program) else {
        return bare_400("program is missing");
    };
    let q = parse_query(query.as_deref());
    let (opts, render, _) = match v2_options(&q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut outs = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let inputs: HashMap<String, String> = t
            .record
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect();
        match execute(&st, &program, &t.transaction, &inputs, &opts) {
            Ok(out) => outs.push((
                out,
                t.selected_columns.clone().or(render.returncols.clone()),
            )),
            Err(msg) => return bare_400(&msg),
        }
    }
    json_bytes(StatusCode::OK, shapes::v2(&outs, &render))
}
