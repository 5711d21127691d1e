//! LN OData v4 under `/{tenant}/LN/lnapi/odata/{module}.{Service}/{EntitySet}`:
//! `tcapi.comBusinessPartner/BusinessPartners`, `tdapi.slsSalesOrder/Orders`,
//! `tcapi.ibdItem/Items`. `$filter` (`eq ne gt ge lt le`, `and or not`, parentheses; strings,
//! numbers, dates, timestamps), `$select`, `$orderby`, `$top`, `$skip`, `$count`;
//! server-driven paging with `@odata.nextLink` (`$skiptoken`) sized by
//! `Prefer: odata.maxpagesize`; the company from `X-Infor-LnCompany`; OData error bodies.
//! `tdapi.slsSalesOrder` is not activated in company 200 (an error, as on a real tenant).

use std::cmp::Ordering;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::data::tables::LN_SERVICES;
use crate::data::{Dataset, Record, Surface, TableDef, Val};
use crate::query::{Cursor, Dialect, Expr, Operand, eval, parse_condition, tokenize};
use crate::state::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/{tenant}/LN/lnapi/odata/{service}/{entity_set}",
            get(entity_set),
        )
        .route("/{tenant}/LN/lnapi/odata/{service}", get(service_document))
        .route("/{tenant}/LN/lnapi/odata/{service}/", get(service_document))
}

fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": {"code": code, "message": message, "details": [{"code": code, "message": message}]}
        })),
    )
        .into_response()
}

fn find_service(service: &str) -> Option<&'static TableDef> {
    LN_SERVICES
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(service))
        .map(|(_, t)| *t)
}

fn company(headers: &HeaderMap) -> Result<u32, Response> {
    let Some(v) = headers.get("x-infor-lncompany") else {
        return Ok(crate::data::DEFAULT_COMPANY);
    };
    let text = v.to_str().unwrap_or_default().trim();
    let cono: u32 = text.parse().ok().filter(|c| *c <= 9999).ok_or_else(|| {
        odata_error(
            StatusCode::BAD_REQUEST,
            "InvalidCompany",
            &format!("X-Infor-LnCompany '{text}' is not a company number (0-9999)"),
        )
    })?;
    if Dataset::company(cono).is_none() {
        return Err(odata_error(
            StatusCode::BAD_REQUEST,
            "InvalidCompany",
            &format!("Company {cono} does not exist"),
        ));
    }
    Ok(cono)
}

async fn service_document(
    State(st): State<Shared>,
    Path((tenant, service)): Path<(String, String)>,
) -> Response {
    let Some(table) = find_service(&service) else {
        return odata_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Service '{service}' does not exist"),
        );
    };
    axum::Json(json!({
        "@odata.context": format!("{}/{tenant}/LN/lnapi/odata/{service}/$metadata", st.base_url),
        "value": [{"name": table.name, "kind": "EntitySet", "url": table.name}]
    }))
    .into_response()
}

#[derive(Debug, Default)]
struct Options {
    filter: Option<Expr>,
    select: Option<Vec<usize>>,
    orderby: Vec<(usize, bool)>,
    top: Option<u64>,
    skip: u64,
    count: bool,
    /// (rows delivered so far, resume position)
    token: Option<(u64, u64)>,
    raw: Vec<(String, String)>,
}

fn bad(msg: &str) -> Response {
    odata_error(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

fn parse_options(table: &TableDef, query: Option<&str>) -> Result<Options, Response> {
    let mut o = Options::default();
    let pairs: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let resolve = |n: &str| table.column(n).map(Operand::Col);
    for (k, v) in &pairs {
        match k.as_str() {
            "$filter" => {
                let toks = tokenize(v).map_err(|e| bad(&format!("$filter: {e}")))?;
                let mut cur = Cursor::new(toks);
                let e = parse_condition(&mut cur, Dialect::OData, &resolve)
                    .map_err(|e| bad(&format!("$filter: {e}")))?;
                if !cur.at_end() {
                    return Err(bad(&format!("$filter: unexpected {:?}", cur.peek())));
                }
                o.filter = Some(e);
            }
            "$select" => {
                let cols = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|n| {
                        table
                            .column(n)
                            .ok_or_else(|| bad(&format!("$select: unknown property '{n}'")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                o.select = Some(cols);
            }
            "$orderby" => {
                for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let mut words = part.split_whitespace();
                    let name = words.next().unwrap_or_default();
                    let col = table
                        .column(name)
                        .ok_or_else(|| bad(&format!("$orderby: unknown property '{name}'")))?;
                    let desc = match words.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(bad(&format!("$orderby: '{other}' is not asc or desc")));
                        }
                    };
                    o.orderby.push((col, desc));
                }
            }
            "$top" => {
                o.top = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| bad(&format!("$top '{v}' is not a non-negative integer")))?,
                )
            }
            "$skip" => {
                o.skip = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(&format!("$skip '{v}' is not a non-negative integer")))?
            }
            "$count" => {
                o.count = match v.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("$count must be true or false")),
                }
            }
            "$skiptoken" => {
                let t = v
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                o.token = Some(t.ok_or_else(|| bad("invalid $skiptoken"))?);
            }
            "$format" | "$expand" => {}
            k if k.starts_with('$') => {
                return Err(bad(&format!("query option '{k}' is not supported")));
            }
            _ => {}
        }
    }
    o.raw = pairs;
    Ok(o)
}

fn max_page_size(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k.trim() == "odata.maxpagesize")
                .then(|| v.trim().parse().ok())
                .flatten()
                .filter(|n| *n > 0)
        })
}

fn cmp_val(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        _ => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
    }
}

fn write_entity(table: &TableDef, rec: &Record, cols: &[usize], out: &mut String) {
    let chno = table
        .columns
        .iter()
        .find(|c| c.name == "ChangeCounter")
        .map(|c| rec.get(c.field).mi(0, false))
        .unwrap_or_default();
    out.push_str("{\"@odata.etag\":");
    crate::data::value_json_str(&format!("W/\"{chno}\""), out);
    for &c in cols {
        let col = &table.columns[c];
        out.push(',');
        crate::data::value_json_str(col.name, out);
        out.push(':');
        rec.get(col.field)
            .write_json(col.kind, Surface::LnOData, out);
    }
    out.push('}');
}

async fn entity_set(
    State(st): State<Shared>,
    Path((tenant, service, set)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(table) = find_service(&service).filter(|t| t.name == set) else {
        return odata_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Resource '{service}/{set}' does not exist"),
        );
    };
    let cono = match company(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if table.name == "Orders" && cono != crate::data::DEFAULT_COMPANY {
        return odata_error(
            StatusCode::BAD_REQUEST,
            "ServiceNotActivated",
            &format!("Service {service} is not activated for company {cono}"),
        );
    }
    let o = match parse_options(table, query.as_deref()) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let requested_page = max_page_size(&headers);
    let page_size = requested_page
        .unwrap_or(st.config.ln_default_page_size as u64)
        .max(1);
    let (delivered, resume) = o.token.unwrap_or((0, 0));
    let remaining_top = o.top.map_or(u64::MAX, |t| t.saturating_sub(delivered));
    let want = page_size.min(remaining_top);

    let ds = &st.data;
    let changes = st.changes();
    let entity = table.entity;
    let n = ds.count(entity, cono);
    let live = |i: u64| !changes.is_deleted(entity, cono, i);
    let matches = |r: &Record| o.filter.as_ref().is_none_or(|f| eval(f, table, r));
    let natural = o.orderby.is_empty() || o.orderby == [(table.key[0], false)];

    let mut rows: Vec<Record> = Vec::new();
    let mut next: Option<u64> = None;
    let mut total: Option<u64> = None;
    if natural {
        let mut i = resume;
        let mut to_skip = if o.token.is_some() { 0 } else { o.skip };
        while i < n {
            if live(i) {
                let r = ds.record_with(&changes, entity, cono, i);
                if matches(&r) {
                    if to_skip > 0 {
                        to_skip -= 1;
                    } else if (rows.len() as u64) < want {
                        rows.push(r);
                    } else {
                        next = Some(i);
                        break;
                    }
                }
            }
            i += 1;
        }
        if o.count {
            total = Some(
                (0..n)
                    .filter(|i| live(*i) && matches(&ds.record_with(&changes, entity, cono, *i)))
                    .count() as u64,
            );
        }
    } else {
        let mut keyed: Vec<(Vec<Val>, u64)> = Vec::new();
        for i in (0..n).filter(|i| live(*i)) {
            let r = ds.record_with(&changes, entity, cono, i);
            if matches(&r) {
                keyed.push((
                    o.orderby
                        .iter()
                        .map(|(c, _)| r.get(table.columns[*c].field).clone())
                        .collect(),
                    i,
                ));
            }
        }
        keyed.sort_by(|a, b| {
            for (k, (_, desc)) in o.orderby.iter().enumerate() {
                let ord = cmp_val(&a.0[k], &b.0[k]);
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            a.1.cmp(&b.1)
        });
        total = o.count.then_some(keyed.len() as u64);
        let start = if o.token.is_some() { resume } else { o.skip };
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(keyed.len());
        let end = start
            .saturating_add(usize::try_from(want).unwrap_or(usize::MAX))
            .min(keyed.len());
        rows = keyed[start..end]
            .iter()
            .map(|(_, i)| ds.record_with(&changes, entity, cono, *i))
            .collect();
        if end < keyed.len() {
            next = Some(end as u64);
        }
    }
    drop(changes);
    let delivered_now = delivered + rows.len() as u64;
    if delivered_now >= o.top.unwrap_or(u64::MAX) {
        next = None;
    }

    let cols: Vec<usize> = o
        .select
        .clone()
        .unwrap_or_else(|| (0..table.columns.len()).collect());
    let path = format!("/{tenant}/LN/lnapi/odata/{service}/{set}");
    let mut body = String::with_capacity(rows.len() * 256 + 256);
    body.push_str("{\"@odata.context\":");
    crate::data::value_json_str(
        &format!(
            "{}/{tenant}/LN/lnapi/odata/{service}/$metadata#{set}",
            st.base_url
        ),
        &mut body,
    );
    if let Some(t) = total {
        body.push_str(&format!(",\"@odata.count\":{t}"));
    }
    body.push_str(",\"value\":[");
    for (k, r) in rows.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        write_entity(table, r, &cols, &mut body);
    }
    body.push(']');
    if let Some(pos) = next {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in o
            .raw
            .iter()
            .filter(|(k, _)| k != "$skiptoken" && k != "$skip")
        {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &format!("{delivered_now}-{pos}"));
        let link = format!("{}{path}?{}", st.base_url, ser.finish());
        body.push_str(",\"@odata.nextLink\":");
        crate::data::value_json_str(&link, &mut body);
    }
    body.push('}');
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; odata.metadata=minimal; charset=utf-8"),
    );
    h.insert("odata-version", HeaderValue::from_static("4.0"));
    if let Some(p) = requested_page {
        if let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={p}")) {
            h.insert("preference-applied", v);
        }
    }
    resp
}
