//! Compass v2 SQL jobs through the gateway: submit, status, one page of the NDJSON result,
//! cancel. The SDK's query-job loop waits, pages and resumes ([`crate::read`]).

use std::time::SystemTime;

use ionport_plugin_sdk::decode::error_message;
use ionport_plugin_sdk::decode::{decode_page, unexpected_body};
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::retry::{Fetched, RetryPolicy, fetch_decoded, sleep_cancellable};
use ionport_plugin_sdk::stream::{JobPage, JobStatus, ResultRows};
use serde::Deserialize;
use serde_json::Value;

/// Where the jobs of Compass at `base` (the connection's `compass_base`) live.
fn jobs(base: &str) -> String {
    format!("{base}/jobs")
}

/// How long Compass lets a query run before it fails it.
pub const QUERY_TIME_LIMIT_MINUTES: u32 = 60;

/// Whether a FAILED job's reason says it ran into the query time limit. The service's
/// wording is not documented, so any mention of a timeout counts.
fn ran_out_of_time(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "timed out",
        "timeout",
        "time out",
        "time limit",
        "execution time",
    ]
    .iter()
    .any(|w| r.contains(w))
}

/// The error of a job FAILED at the query time limit: what ran out and what to read
/// instead. Smaller pages do not help: the limit is on the query, before any page.
fn time_limit_error(what: &str, id: &str, reason: &str) -> ConnectorError {
    ConnectorError::gateway(format!(
        "{what}: Compass job {id} FAILED at the service's {QUERY_TIME_LIMIT_MINUTES}-minute \
         query limit ({reason}). Ask less of one query: read the stream incrementally (each \
         query then reads only the rows changed since the last), narrow it with a `where` \
         option (e.g. one company or a key range per task), or select fewer columns; \
         page_rows does not shorten the query"
    ))
}

/// A job's status answer. `status` is required: an answer without it is an unexpected
/// body, never a job that is still running.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    /// `RUNNING`, `FINISHED`, `FAILED`, `CANCELED`.
    pub status: String,
    /// Rows of the result, when the service says.
    #[serde(default, rename = "rowCount")]
    pub row_count: Option<u64>,
    /// Why a job failed.
    #[serde(default)]
    pub message: Option<String>,
    /// Other names for the reason.
    #[serde(default, rename = "errorMessage")]
    pub error_message: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

impl Status {
    /// The server's reason for a failure.
    pub fn reason(&self) -> String {
        self.message
            .clone()
            .or_else(|| self.error_message.clone())
            .or_else(|| {
                self.error.as_ref().map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => other
                        .get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| other.to_string(), str::to_owned),
                })
            })
            .unwrap_or_else(|| "the service gave no reason".into())
    }
}

const SUBMITTED_SHAPE: &str = "a Compass submit answer (a JSON object with `queryId`)";
const STATUS_SHAPE: &str = "a Compass job status (a JSON object with a `status` text)";
const RESULT_SHAPE: &str = "a Compass NDJSON result page (one JSON object per line)";

#[derive(Debug, Deserialize)]
struct Submitted {
    #[serde(rename = "queryId")]
    query_id: String,
}

fn status_error(what: &str, resp: &GatewayResponse) -> ConnectorError {
    let hint = match resp.status {
        401 => " (the gateway refused the token: check the connection's credentials)",
        403 => " (the service account lacks Data Fabric rights)",
        _ => "",
    };
    ConnectorError::gateway(format!(
        "{what}: HTTP {}: {}{hint}",
        resp.status,
        error_message(resp)
    ))
}

/// What a submit answered: the job and the gateway's clock when it answered.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Compass query id.
    pub id: String,
    /// The answer's `Date` header (second precision), when it had one.
    pub server_date: Option<SystemTime>,
}

/// Submits `sql`. A submit is not idempotent, so the host does not retry it; a transient
/// failure is retried here (a duplicate job at worst, which expires unread).
pub fn submit_job(
    host: &Host,
    base: &str,
    sql: &str,
    what: &str,
) -> Result<Submission, ConnectorError> {
    let req = GatewayRequest::post(format!("{}/", jobs(base)))
        .body("text/plain", sql.as_bytes().to_vec())
        .header("Accept", "application/json");
    let policy = RetryPolicy::default();
    let mut backoff = policy.backoff();
    let mut attempt = 0;
    loop {
        attempt += 1;
        host.check_cancelled()?;
        let last = attempt >= policy.attempts;
        match host.gateway(&req) {
            // Cancelled, refused credentials, or a host without a gateway: asking again
            // cannot help.
            Err(e)
                if e.is_cancelled()
                    || e.kind() == ionport_plugin_sdk::ConnectorError::host_kind()
                    || ionport_plugin_sdk::retry::is_auth_failure(&e) =>
            {
                return Err(e);
            }
            Err(e) if last => {
                return Err(ConnectorError::gateway(format!(
                    "{what}: submitting the Compass query failed: {}",
                    e.message()
                )));
            }
            Err(e) => host.warn(&format!(
                "{what}: submitting: {} (trying again)",
                e.message()
            )),
            Ok(r) if r.is_success() => match decode_page::<Submitted>(&req, &r, SUBMITTED_SHAPE) {
                Ok(s) => {
                    let server_date = r
                        .header("date")
                        .and_then(|d| httpdate::parse_http_date(d).ok());
                    return Ok(Submission {
                        id: s.query_id,
                        server_date,
                    });
                }
                Err(e) if last => return Err(e),
                Err(e) => host.warn(&format!("{what}: {} (trying again)", e.message())),
            },
            Ok(r) if matches!(r.status, 502..=504) && !last => {
                host.warn(&format!(
                    "{what}: submitting: HTTP {} (trying again)",
                    r.status
                ));
            }
            Ok(r) => {
                return Err(status_error(
                    &format!("{what}: submitting the Compass query"),
                    &r,
                ));
            }
        }
        sleep_cancellable(host, backoff.next().unwrap_or(policy.max_delay))?;
    }
}

/// Asks the service to cancel a job (best effort).
pub fn cancel(host: &Host, base: &str, id: &str) {
    let req = GatewayRequest::new("PUT", format!("{}/{id}/cancel", jobs(base)));
    match host.gateway(&req) {
        Ok(r) if r.is_success() => host.info(&format!("Compass job {id} cancelled")),
        Ok(r) => host.warn(&format!("cancelling Compass job {id}: HTTP {}", r.status)),
        Err(e) => host.warn(&format!("cancelling Compass job {id}: {}", e.message())),
    }
}

/// One status request of job `id`, as the SDK's query-job loop reads it: `FINISHED` with
/// its row count, `FAILED` (at the query time limit or not) and `CANCELED` as the error
/// they end a read with, 404 and 410 as a job the service no longer keeps.
pub fn job_status(
    host: &Host,
    base: &str,
    id: &str,
    what: &str,
) -> Result<JobStatus, ConnectorError> {
    let req = GatewayRequest::get(format!("{}/{id}/status/", jobs(base)))
        .header("Accept", "application/json");
    let s = match fetch_decoded(host, &req, what, &RetryPolicy::default(), |r| {
        decode_page::<Status>(&req, r, STATUS_SHAPE)
    })? {
        Fetched::Decoded(s) => s,
        Fetched::Status(r) if is_expired(r.status) => {
            return Ok(JobStatus::Gone {
                reason: format!("HTTP {}; Compass keeps a result about 20 hours", r.status),
            });
        }
        Fetched::Status(r) => {
            return Ok(JobStatus::Failed(status_error(
                &format!("{what}: Compass job {id} status"),
                &r,
            )));
        }
    };
    status_of(what, id, &s)
}

/// What one decoded status answer says of job `id`.
fn status_of(what: &str, id: &str, s: &Status) -> Result<JobStatus, ConnectorError> {
    Ok(match s.status.to_ascii_uppercase().as_str() {
        "FINISHED" | "COMPLETED" | "SUCCEEDED" => JobStatus::Finished { total: s.row_count },
        "FAILED" | "ERROR" if ran_out_of_time(&s.reason()) => {
            JobStatus::Failed(time_limit_error(what, id, &s.reason()))
        }
        "FAILED" | "ERROR" => JobStatus::Failed(ConnectorError::gateway(format!(
            "{what}: Compass job {id} FAILED: {}",
            s.reason()
        ))),
        "CANCELED" | "CANCELLED" => JobStatus::Failed(ConnectorError::gateway(format!(
            "{what}: Compass job {id} was cancelled on the service"
        ))),
        // Compass documents RUNNING; the others are the queue states job services use.
        "RUNNING" | "QUEUED" | "SUBMITTED" | "PENDING" | "STARTED" => JobStatus::Running,
        // Anything else is an answer of the wrong shape, not a job to wait on for ever.
        other => {
            return Err(ConnectorError::unexpected_body(format!(
                "{what}: Compass job {id} answered the status {other:?}; expected RUNNING, \
                 FINISHED, FAILED or CANCELED"
            )));
        }
    })
}

/// Result pages at most this big may have been cut by the service's byte limit (10 MB)
/// rather than by the end of the result.
const CUT_BELOW_BYTES: usize = 9 * 1024 * 1024;

/// A JSON object's keys (borrowed where they hold no escape), its values skipped.
struct ObjectKeys<'a>(Vec<std::borrow::Cow<'a, str>>);

impl<'de> serde::Deserialize<'de> for ObjectKeys<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = ObjectKeys<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key_seed(Key)? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(ObjectKeys(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// A key, borrowed from the body unless it holds an escape.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
}

/// Content types that are another format than the NDJSON asked for: an answer in one of
/// them is an error document or a page of another API, not result rows.
const NOT_NDJSON: &[&str] = &[
    "application/json",
    "text/html",
    "application/xml",
    "text/xml",
    "text/csv",
    "application/problem+json",
];

/// Decodes a result page: its rows are lines of the body, passed on as they came (each
/// checked to be a non-empty object of selected columns), never built as maps. It must be NDJSON rows: every line a non-empty JSON object whose
/// columns are among `columns` (when the query named them), in a content type that is not
/// another format, holding as many rows as `x-row-count` says.
fn parse_ndjson(
    req: &GatewayRequest,
    resp: &GatewayResponse,
    columns: Option<&[String]>,
) -> Result<ResultRows, ConnectorError> {
    let bad = |detail: String| unexpected_body(req, resp, RESULT_SHAPE, &detail);
    if let Some(ct) = resp.header("content-type") {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if NOT_NDJSON.contains(&essence.as_str()) {
            return Err(bad(format!("the content type is {essence}")));
        }
    }
    let mut lines = Vec::new();
    let mut at = 0;
    for (i, raw) in resp.body.split(|b| *b == b'\n').enumerate() {
        let start = at;
        at += raw.len() + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // One borrowed parse: the keys, no value built.
        let keys: ObjectKeys<'_> = serde_json::from_slice(line)
            .map_err(|e| bad(format!("line {} is not a JSON object: {e}", i + 1)))?;
        if keys.0.is_empty() {
            return Err(bad(format!("line {} is an empty object", i + 1)));
        }
        if let Some(cols) = columns
            && let Some(k) = keys
                .0
                .iter()
                .find(|k| !cols.iter().any(|c| c == k.as_ref()))
        {
            return Err(bad(format!(
                "line {} has a column {k:?} the query did not select",
                i + 1
            )));
        }
        lines.push(start..start + line.len());
    }
    let total = resp
        .header("x-total-rows")
        .and_then(|v| v.trim().parse().ok());
    if let Some(t) = resp
        .header("x-row-count")
        .and_then(|v| v.trim().parse::<usize>().ok())
        && t != lines.len()
    {
        return Err(bad(format!(
            "the page announced {t} rows but held {}",
            lines.len()
        )));
    }
    let mut rows = ResultRows::lines(resp.body.clone(), lines);
    rows.total = total;
    rows.may_be_cut = resp.body.len() >= CUT_BELOW_BYTES;
    Ok(rows)
}

/// Whether a status answered about a job means the service no longer keeps it.
pub fn is_expired(status: u16) -> bool {
    matches!(status, 404 | 410)
}

/// Fetches rows `offset..offset+limit` of a finished job as NDJSON; 404 and 410 (Compass
/// keeps a result about 20 hours) are a result no longer kept. A page that keeps timing out
/// is an error of the timeout kind (the host's), for the SDK's smaller pages.
/// `columns` are the columns the query selected (`None` for `*`).
pub fn page(
    host: &Host,
    base: &str,
    id: &str,
    offset: u64,
    limit: u32,
    what: &str,
    columns: Option<&[String]>,
) -> Result<JobPage, ConnectorError> {
    let req = GatewayRequest::get(format!("{}/{id}/result/", jobs(base)))
        .query("offset", offset.to_string())
        .query("limit", limit.to_string())
        .header("Accept", "application/x-ndjson");
    match fetch_decoded(host, &req, what, &RetryPolicy::default(), |r| {
        parse_ndjson(&req, r, columns)
    })? {
        Fetched::Decoded(p) => Ok(JobPage::Rows(p)),
        Fetched::Status(r) if is_expired(r.status) => {
            host.debug(&format!(
                "{what}: Compass job {id} result: HTTP {}: {}",
                r.status,
                error_message(&r)
            ));
            Ok(JobPage::Gone {
                reason: format!("HTTP {}", r.status),
            })
        }
        Fetched::Status(r) => Err(status_error(
            &format!("{what}: Compass job {id} result"),
            &r,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> Result<JobStatus, ConnectorError> {
        let s: Status = serde_json::from_str(json).unwrap();
        status_of("read", "q1", &s)
    }

    #[test]
    fn a_status_compass_does_not_name_is_an_error_not_a_job_to_wait_on() {
        assert!(matches!(
            status(r#"{"status":"RUNNING"}"#),
            Ok(JobStatus::Running)
        ));
        assert!(matches!(
            status(r#"{"status":"FINISHED","rowCount":3}"#),
            Ok(JobStatus::Finished { total: Some(3) })
        ));
        for bad in [r#"{"status":""}"#, r#"{"status":"garbage"}"#] {
            let e = status(bad).unwrap_err();
            assert!(e.is_unexpected_body(), "{e}");
            assert!(e.message().contains("expected RUNNING, FINISHED"), "{e}");
        }
    }
}
