//! Compass v2 jobs: submit SQL, poll status (RUNNING for `job_run_time`, then FINISHED or
//! FAILED), fetch result pages (`offset`/`limit` ≤ 100,000 rows and ≤ 10 MB; NDJSON, CSV or
//! JSON), cancel. Results are row references into the generator, never copies of rows.
//!
//! The service's lifecycle limits can be played on demand (control endpoints under
//! `/__emulator/jobs/`): a job that runs into the 60-minute query limit ends FAILED with a
//! timeout message, and a result that is no longer kept (about 20 hours) answers 410 (or
//! 404) on status and result, at once or after some more result pages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::sql::{self, SqlQuery};
use crate::data::{COMPANIES, Record, Surface, TableDef, Val};
use crate::query::{Operand, eval};
use crate::state::{AppState, Shared, lock};
use crate::util::random_token;

/// Rows per result page, at most.
pub(crate) const MAX_PAGE_ROWS: u64 = 100_000;
/// Bytes per result page, at most.
pub(crate) const MAX_PAGE_BYTES: usize = 10 * 1024 * 1024;
const RETENTION: Duration = Duration::from_secs(20 * 3600);
/// What a job that ran into the service's query time limit says when FAILED.
pub(crate) const TIME_LIMIT_MESSAGE: &str =
    "Query execution timed out: the query exceeded the maximum execution time of 60 minutes";
const COMPANY_SHIFT: u32 = 40;

/// Which rows a finished job returns.
#[derive(Debug)]
enum RowSet {
    /// Every row of the table, in natural order, per company: `(cono, count)`.
    All(Vec<(u32, u64)>),
    /// Packed `(company index << 40) | row index`.
    List(Vec<u64>),
}

impl RowSet {
    fn len(&self) -> u64 {
        match self {
            RowSet::All(parts) => parts.iter().map(|(_, n)| n).sum(),
            RowSet::List(v) => v.len() as u64,
        }
    }

    fn get(&self, pos: u64) -> Option<(u32, u64)> {
        match self {
            RowSet::All(parts) => {
                let mut p = pos;
                for (cono, n) in parts {
                    if p < *n {
                        return Some((*cono, p));
                    }
                    p -= n;
                }
                None
            }
            RowSet::List(v) => {
                let packed = *v.get(usize::try_from(pos).ok()?)?;
                let ci = usize::try_from(packed >> COMPANY_SHIFT).ok()?;
                Some((COMPANIES.get(ci)?.cono, packed & ((1 << COMPANY_SHIFT) - 1)))
            }
        }
    }
}

#[derive(Debug)]
struct Finished {
    table: &'static TableDef,
    cols: Vec<usize>,
    rows: RowSet,
}

#[derive(Debug)]
enum Outcome {
    Computing,
    Finished(Arc<Finished>),
    Failed(String),
}

#[derive(Debug)]
struct Job {
    created: Instant,
    ready_at: Instant,
    canceled: bool,
    outcome: Outcome,
    /// Set when the job's result is no longer kept: the status every request about the job
    /// gets from then on.
    expired: Option<StatusCode>,
}

impl Job {
    fn status(&self) -> &'static str {
        if self.canceled {
            "CANCELED"
        } else if Instant::now() < self.ready_at {
            "RUNNING"
        } else {
            match self.outcome {
                Outcome::Computing => "RUNNING",
                Outcome::Finished(_) => "FINISHED",
                Outcome::Failed(_) => "FAILED",
            }
        }
    }
}

/// All jobs of the tenant.
#[derive(Debug, Default)]
pub(crate) struct JobStore {
    jobs: HashMap<String, Job>,
    /// How many of the next submitted jobs run into the query time limit.
    time_limited: u64,
    /// Result pages still served before the job asked for next expires, and how it answers.
    expire_after_results: Option<(u64, StatusCode)>,
}

/// `POST /__emulator/jobs/expire`: which results stop being kept, and when.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpireRequest {
    /// Expire these jobs (default: every job known now), unless `after_results` is given.
    #[serde(default)]
    ids: Option<Vec<String>>,
    /// Serve this many more result pages (of any job), then expire the job of the next one.
    #[serde(default)]
    after_results: Option<u64>,
    /// 410 (default) or 404.
    #[serde(default)]
    status: Option<u16>,
}

/// `POST /__emulator/jobs/time-limit`: how many of the next jobs run into the limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeLimitRequest {
    count: u64,
}

impl JobStore {
    /// Applies an expiry request; the number of jobs expired now, or why it is refused.
    pub(crate) fn expire(&mut self, req: ExpireRequest) -> Result<usize, String> {
        let status = match req.status.unwrap_or(410) {
            404 => StatusCode::NOT_FOUND,
            410 => StatusCode::GONE,
            other => return Err(format!("status {other}: expected 404 or 410")),
        };
        if let Some(n) = req.after_results {
            if req.ids.is_some() {
                return Err("give either `ids` or `after_results`, not both".into());
            }
            self.expire_after_results = Some((n, status));
            return Ok(0);
        }
        let mut n = 0;
        for (id, job) in &mut self.jobs {
            if req.ids.as_ref().is_none_or(|ids| ids.contains(id)) {
                job.expired = Some(status);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The next `req.count` submitted jobs fail at the time limit.
    pub(crate) fn time_limit(&mut self, req: &TimeLimitRequest) {
        self.time_limited = req.count;
    }

    /// Counts a result page about to be served for `id`; true when the job expires instead.
    fn expires_now(&mut self, id: &str) -> bool {
        match self.expire_after_results {
            Some((0, status)) => {
                self.expire_after_results = None;
                if let Some(job) = self.jobs.get_mut(id) {
                    job.expired = Some(status);
                }
                true
            }
            Some((n, status)) => {
                self.expire_after_results = Some((n - 1, status));
                false
            }
            None => false,
        }
    }
}

fn expired(status: StatusCode) -> Response {
    error(
        status,
        "Expired",
        "The query result has expired (results are kept for about 20 hours after the query finished)",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn pack(cono: u32, idx: u64) -> u64 {
    let ci = COMPANIES.iter().position(|c| c.cono == cono).unwrap_or(0) as u64;
    (ci << COMPANY_SHIFT) | idx
}

fn cmp_val(a: &Val, b: &Val) -> std::cmp::Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        _ => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn order_value(op: Operand, table: &TableDef, r: &Record) -> Val {
    match op {
        Operand::Col(c) => r.get(table.columns[c].field).clone(),
        Operand::LastModified => Val::Ts(r.last_modified_ms()),
    }
}

/// Runs a query over the generator (blocking; called off the async runtime).
fn run(st: &AppState, q: SqlQuery) -> Finished {
    let ds = &st.data;
    let table = q.table;
    let natural_order = q.order.is_empty()
        || q.order.iter().enumerate().all(|(i, (op, desc))| {
            !desc && table.key.get(i).is_some_and(|k| *op == Operand::Col(*k))
        });
    let changes = st.changes();
    // Compass's default leaves out records whose highest variation is a deletion; only
    // the overlay deletes records (the generator makes none).
    let hide_deleted = !q.include_deleted && changes.any_deleted(table.entity);
    if q.filter.is_none() && natural_order && !hide_deleted {
        let mut parts: Vec<(u32, u64)> = COMPANIES
            .iter()
            .map(|c| (c.cono, ds.count(table.entity, c.cono)))
            .collect();
        if let Some(limit) = q.limit {
            let mut left = limit;
            for p in &mut parts {
                p.1 = p.1.min(left);
                left -= p.1;
            }
        }
        return Finished {
            table,
            cols: q.cols,
            rows: RowSet::All(parts),
        };
    }
    let mut keyed: Vec<(Vec<Val>, u64)> = Vec::new();
    let mut plain: Vec<u64> = Vec::new();
    'outer: for c in &COMPANIES {
        for i in 0..ds.count(table.entity, c.cono) {
            let r = ds.record_with(&changes, table.entity, c.cono, i);
            if hide_deleted && r.deleted() {
                continue;
            }
            if q.filter.as_ref().is_none_or(|f| eval(f, table, &r)) {
                if natural_order {
                    plain.push(pack(c.cono, i));
                    if q.limit.is_some_and(|l| plain.len() as u64 >= l) {
                        break 'outer;
                    }
                } else {
                    keyed.push((
                        q.order
                            .iter()
                            .map(|(op, _)| order_value(*op, table, &r))
                            .collect(),
                        pack(c.cono, i),
                    ));
                }
            }
        }
    }
    if !natural_order {
        keyed.sort_by(|a, b| {
            for (k, (_, desc)) in q.order.iter().enumerate() {
                let o = cmp_val(&a.0[k], &b.0[k]);
                let o = if *desc { o.reverse() } else { o };
                if o.is_ne() {
                    return o;
                }
            }
            a.1.cmp(&b.1)
        });
        plain = keyed.into_iter().map(|(_, p)| p).collect();
        if let Some(l) = q.limit {
            plain.truncate(usize::try_from(l).unwrap_or(usize::MAX));
        }
    }
    Finished {
        table,
        cols: q.cols,
        rows: RowSet::List(plain),
    }
}

fn job_url(st: &AppState, id: &str) -> String {
    format!(
        "{}/{}/DATAFABRIC/compass/v2/jobs/{id}",
        st.base_url, st.config.tenant
    )
}

pub(crate) async fn submit(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("text/plain") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Submit the SQL text with Content-Type: text/plain",
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The SQL text is not UTF-8",
        );
    };
    if text.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The SQL text is empty",
        );
    }
    st.count(|c| c.jobs_submitted += 1);
    let id = random_token()[..32].to_owned();
    let now = Instant::now();
    let mut parsed = sql::parse_in(text, &|name| st.lake_table(name));
    let mut outcome = match &parsed {
        Ok(_) => Outcome::Computing,
        Err(e) => Outcome::Failed(e.clone()),
    };
    {
        let mut jobs = lock(&st.jobs);
        if jobs.time_limited > 0 && parsed.is_ok() {
            // Its run time stands for the 60 minutes; it never computes a result.
            jobs.time_limited -= 1;
            parsed = Err(TIME_LIMIT_MESSAGE.into());
            outcome = Outcome::Failed(TIME_LIMIT_MESSAGE.into());
        }
        jobs.jobs.retain(|_, j| j.created.elapsed() < RETENTION);
        jobs.jobs.insert(
            id.clone(),
            Job {
                created: now,
                ready_at: now + st.config.job_run_time,
                canceled: false,
                outcome,
                expired: None,
            },
        );
    }
    if let Ok(q) = parsed {
        let st2 = st.clone();
        let id2 = id.clone();
        tokio::task::spawn_blocking(move || {
            let finished = Arc::new(run(&st2, q));
            if let Some(job) = lock(&st2.jobs).jobs.get_mut(&id2) {
                job.outcome = Outcome::Finished(finished);
            }
        });
    }
    let status = lock(&st.jobs).jobs.get(&id).map_or("RUNNING", Job::status);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"queryId": id, "status": status, "location": format!("{}/status/", job_url(&st, &id))})),
    )
        .into_response()
}

pub(crate) async fn status(
    State(st): State<Shared>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let jobs = lock(&st.jobs);
    let Some(job) = jobs.jobs.get(&id) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "Unknown query id");
    };
    if let Some(code) = job.expired {
        return expired(code);
    }
    let s = job.status();
    let mut body = json!({"queryId": id, "status": s});
    match (&job.outcome, s) {
        (Outcome::Finished(f), "FINISHED") => {
            body["rowCount"] = f.rows.len().into();
            body["columns"] = f
                .cols
                .iter()
                .map(|c| json!({"name": f.table.columns[*c].name, "type": f.table.columns[*c].kind.json_schema(f.table.columns[*c].len, f.table.surface)["type"]}))
                .collect::<Vec<_>>()
                .into();
            body["location"] = format!("{}/result/", job_url(&st, &id)).into();
        }
        (Outcome::Failed(reason), "FAILED") => body["message"] = reason.clone().into(),
        _ => {}
    }
    axum::Json(body).into_response()
}

pub(crate) async fn cancel(
    State(st): State<Shared>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let mut jobs = lock(&st.jobs);
    let Some(job) = jobs.jobs.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "Unknown query id");
    };
    if let Some(code) = job.expired {
        return expired(code);
    }
    if job.status() == "RUNNING" {
        job.canceled = true;
    }
    axum::Json(json!({"queryId": id, "status": job.status()})).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResultQuery {
    offset: Option<String>,
    limit: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
    Json,
}

fn format_of(headers: &HeaderMap) -> Option<Format> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    for part in accept.split(',') {
        let mt = part.split(';').next().unwrap_or_default().trim();
        match mt {
            "application/x-ndjson" | "*/*" | "application/*" | "" => return Some(Format::Ndjson),
            "text/csv" | "text/*" => return Some(Format::Csv),
            "application/json" => return Some(Format::Json),
            _ => {}
        }
    }
    None
}

fn csv_field(s: &str, out: &mut String) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

pub(crate) async fn result(
    State(st): State<Shared>,
    Path((_t, id)): Path<(String, String)>,
    Query(q): Query<ResultQuery>,
    headers: HeaderMap,
) -> Response {
    let parse = |v: &Option<String>, name: &str, default: u64| -> Result<u64, Response> {
        v.as_deref().map_or(Ok(default), |s| {
            s.trim().parse().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("{name} '{s}' is not a non-negative integer"),
                )
            })
        })
    };
    let (offset, limit) = match (
        parse(&q.offset, "offset", 0),
        parse(&q.limit, "limit", MAX_PAGE_ROWS),
    ) {
        (Ok(o), Ok(l)) => (o, l.min(MAX_PAGE_ROWS)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let Some(fmt) = format_of(&headers) else {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "Accept application/x-ndjson, text/csv or application/json",
        );
    };
    let finished = {
        let mut jobs = lock(&st.jobs);
        let Some(job) = jobs.jobs.get(&id) else {
            return error(StatusCode::NOT_FOUND, "NotFound", "Unknown query id");
        };
        if let Some(code) = job.expired {
            return expired(code);
        }
        match (job.status(), &job.outcome) {
            ("FINISHED", Outcome::Finished(f)) => {
                let f = f.clone();
                if jobs.expires_now(&id) {
                    let code = jobs.jobs.get(&id).and_then(|j| j.expired);
                    return expired(code.unwrap_or(StatusCode::GONE));
                }
                f
            }
            ("FAILED", Outcome::Failed(m)) => {
                return error(StatusCode::BAD_REQUEST, "QueryFailed", m);
            }
            (s, _) => {
                return error(
                    StatusCode::CONFLICT,
                    "NotReady",
                    &format!("The query is {s}; results are available when it is FINISHED"),
                );
            }
        }
    };
    let st2 = st.clone();
    let page =
        tokio::task::spawn_blocking(move || render_page(&st2, &finished, offset, limit, fmt)).await;
    let Ok((body, rows, total)) = page else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "rendering failed",
        );
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    let ct = match fmt {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Json => "application/json",
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert("x-total-rows", HeaderValue::from(total));
    h.insert("x-row-count", HeaderValue::from(rows));
    if offset + rows < total {
        h.insert("x-next-offset", HeaderValue::from(offset + rows));
    }
    resp
}

/// One page: body, rows in it, rows in the whole result.
fn render_page(
    st: &AppState,
    f: &Finished,
    offset: u64,
    limit: u64,
    fmt: Format,
) -> (String, u64, u64) {
    let total = f.rows.len();
    let ds = &st.data;
    let changes = st.changes();
    let table = f.table;
    let surface = if table.surface == Surface::M3 {
        Surface::M3
    } else {
        Surface::LnLake
    };
    let mut body = String::new();
    match fmt {
        Format::Csv => {
            let header: Vec<&str> = f.cols.iter().map(|c| table.columns[*c].name).collect();
            body.push_str(&header.join(","));
            body.push_str("\r\n");
        }
        Format::Json => body.push('['),
        Format::Ndjson => {}
    }
    let mut rows = 0u64;
    let mut line = String::new();
    let mut pos = offset;
    while rows < limit && pos < total {
        let Some((cono, idx)) = f.rows.get(pos) else {
            break;
        };
        let r = ds.record_with(&changes, table.entity, cono, idx);
        line.clear();
        match fmt {
            Format::Csv => {
                for (k, c) in f.cols.iter().enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    let col = &table.columns[*c];
                    csv_field(&r.get(col.field).plain(col.kind, surface), &mut line);
                }
                line.push_str("\r\n");
            }
            Format::Ndjson | Format::Json => {
                if fmt == Format::Json && rows > 0 {
                    line.push(',');
                }
                line.push('{');
                for (k, c) in f.cols.iter().enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    let col = &table.columns[*c];
                    crate::data::value_json_str(col.name, &mut line);
                    line.push(':');
                    r.get(col.field).write_json(col.kind, surface, &mut line);
                }
                line.push('}');
                if fmt == Format::Ndjson {
                    line.push('\n');
                }
            }
        }
        if rows > 0 && body.len() + line.len() + 1 > MAX_PAGE_BYTES {
            break;
        }
        body.push_str(&line);
        rows += 1;
        pos += 1;
    }
    if fmt == Format::Json {
        body.push(']');
    }
    (body, rows, total)
}
