//! Fault injection: error statuses, connection resets, slow, truncated and malformed
//! responses, success answers of the wrong shape, at a rate, for some or all APIs. Set through `/__emulator/faults`.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::counters::Api;
use crate::rng::SplitMix64;
use crate::server::ConnControl;
use crate::state::Shared;
use crate::util::gateway_error;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// HTTP 500 with an error body.
    #[serde(rename = "500")]
    Status500,
    /// HTTP 502.
    #[serde(rename = "502")]
    Status502,
    /// HTTP 503.
    #[serde(rename = "503")]
    Status503,
    /// HTTP 504.
    #[serde(rename = "504")]
    Status504,
    /// The TCP connection is reset (RST) before any response byte.
    #[serde(rename = "reset")]
    Reset,
    /// The response is delayed by `delay_ms` (504 when that exceeds the gateway timeout).
    #[serde(rename = "slow")]
    Slow,
    /// Headers announce the full length, half the body is sent, the connection is cut.
    #[serde(rename = "truncated")]
    Truncated,
    /// A complete HTTP response whose JSON body is cut in half (invalid JSON).
    #[serde(rename = "malformed_json")]
    MalformedJson,
    /// HTTP 403: the app or its user lacks the rights for the API.
    #[serde(rename = "403")]
    Status403,
    /// A bare HTTP 400 (what M3 may answer for a program it does not know).
    #[serde(rename = "400")]
    Status400,
    /// M3 only: a whole MI failure answered with HTTP 200 (`ServerReturnedNOK` in v1,
    /// the result error fields in v2).
    #[serde(rename = "mi_nok")]
    MiNok,
    /// M3 only: the real answer plus an error after its records (v1 `ErrorMessage`,
    /// v2 result error fields): a partial failure.
    #[serde(rename = "mi_partial")]
    MiPartial,
    /// HTTP 404 from the gateway (no such endpoint, e.g. a program not published).
    #[serde(rename = "404")]
    Status404,
    /// HTTP 200 with the JSON body `{}`.
    #[serde(rename = "empty_object")]
    EmptyObject,
    /// HTTP 200 with a well-formed JSON body of another shape: an M3 v1 `ServerReturnedNOK`
    /// object for LN and Data Lake requests, an empty OData page for M3 requests.
    #[serde(rename = "wrong_shape")]
    WrongShape,
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRule {
    /// What to do.
    pub kind: FaultKind,
    /// Probability per matching request (1.0 = always).
    #[serde(default = "one")]
    pub rate: f64,
    /// At most this many injections (then the rule is spent).
    #[serde(default)]
    pub count: Option<u64>,
    /// Only requests of this API (`auth`, `users`, `m3`, `ln`, `datalake`); by default every
    /// API except the authorization server.
    #[serde(default)]
    pub api: Option<Api>,
    /// Only requests whose path contains this text.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only requests that ask for a page of more than this many records (see
    /// [`requested_page`]); requests that name no page size never match.
    #[serde(default)]
    pub page_above: Option<u64>,
    /// Delay of `slow` faults, milliseconds (default 2000).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Injections so far (output only).
    #[serde(default)]
    pub injected: u64,
}

fn one() -> f64 {
    1.0
}

/// The active rules and the deterministic dice.
#[derive(Debug)]
pub(crate) struct FaultState {
    rules: Vec<FaultRule>,
    rng: SplitMix64,
}

impl FaultState {
    pub fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            rng: SplitMix64::new(seed ^ 0xFA_017),
        }
    }

    pub fn set(&mut self, rules: Vec<FaultRule>) {
        self.rules = rules;
    }

    pub fn add(&mut self, rules: Vec<FaultRule>) {
        self.rules.extend(rules);
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    /// The fault to inject into a request of `api` to `path` asking for `page` records
    /// (see [`requested_page`]), if any.
    pub fn pick(&mut self, api: Api, path: &str, page: Option<u64>) -> Option<FaultRule> {
        for rule in &mut self.rules {
            let api_ok = match rule.api {
                Some(a) => a == api,
                None => api != Api::Auth,
            };
            let path_ok = rule
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p));
            let left = rule.count.is_none_or(|c| rule.injected < c);
            let page_ok = rule.page_above.is_none_or(|n| page.is_some_and(|p| p > n));
            if !(api_ok && path_ok && left && page_ok) {
                continue;
            }
            if rule.rate >= 1.0 || self.rng.unit() < rule.rate {
                rule.injected += 1;
                return Some(rule.clone());
            }
        }
        None
    }
}

/// Picks a fault for a request (and counts it).
pub(crate) fn pick(st: &Shared, api: Api, req: &Request) -> Option<FaultRule> {
    let path = req.uri().path();
    let rule = crate::state::lock(&st.faults).pick(api, path, requested_page(req));
    if let Some(r) = &rule {
        tracing::debug!(kind = ?r.kind, path, "injecting fault");
        st.count(|c| c.faults_injected += 1);
    }
    rule
}

const MI_CODE: &str = "XIN0001";
const MI_MESSAGE: &str = "Injected MI failure (emulator fault)";

fn json_response(v: &serde_json::Value) -> Response {
    let mut resp = Response::new(Body::from(v.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn v2_error(results: &mut serde_json::Value) {
    if let Some(r) = results.get_mut(0) {
        r["errorMessage"] = MI_MESSAGE.into();
        r["errorCode"] = MI_CODE.into();
        r["errorField"] = "".into();
        r["errorType"] = "ServerReturnedNOK".into();
    }
}

/// Runs a request with a fault applied.
pub(crate) async fn apply(rule: FaultRule, req: Request, next: Next) -> Response {
    let v2 = req.uri().path().contains("/v2/");
    match rule.kind {
        FaultKind::Status403 => gateway_error(
            StatusCode::FORBIDDEN,
            "Forbidden: the user lacks the rights for this API (injected fault)",
        ),
        FaultKind::Status404 => gateway_error(
            StatusCode::NOT_FOUND,
            "Not found: no API is published at this path (injected fault)",
        ),
        FaultKind::EmptyObject => json_response(&serde_json::json!({})),
        FaultKind::WrongShape if req.uri().path().contains("/M3/") => {
            json_response(&serde_json::json!({
                "@odata.context": "$metadata#Injected",
                "value": []
            }))
        }
        FaultKind::WrongShape => json_response(&serde_json::json!({
            "@type": "ServerReturnedNOK",
            "@code": MI_CODE,
            "@field": "",
            "@cfg": null,
            "Message": MI_MESSAGE
        })),
        FaultKind::Status400 => {
            let mut resp = Response::new(Body::from("Bad Request"));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
        FaultKind::MiNok if v2 => {
            let mut results =
                serde_json::json!([{ "transaction": "", "records": [], "notProcessed": false }]);
            v2_error(&mut results);
            json_response(&serde_json::json!({
                "results": results,
                "wasTerminated": false,
                "nrOfSuccessfullTransactions": 0,
                "nrOfFailedTransactions": 1
            }))
        }
        FaultKind::MiNok => json_response(&serde_json::json!({
            "@type": "ServerReturnedNOK",
            "@code": MI_CODE,
            "@field": "",
            "@cfg": null,
            "Message": MI_MESSAGE
        })),
        FaultKind::MiPartial => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return Response::from_parts(parts, Body::from(bytes));
            };
            if let Some(results) = v.get_mut("results") {
                v2_error(results);
            } else if v.get("MIRecord").is_some() {
                v["ErrorMessage"] = serde_json::json!({
                    "@type": "ServerReturnedNOK", "@code": MI_CODE, "@field": "", "@cfg": null,
                    "Message": MI_MESSAGE
                });
            }
            let mut out = json_response(&v);
            *out.status_mut() = parts.status;
            out
        }
        FaultKind::Status500 => gateway_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error (injected fault)",
        ),
        FaultKind::Status502 => {
            gateway_error(StatusCode::BAD_GATEWAY, "Bad gateway (injected fault)")
        }
        FaultKind::Status503 => gateway_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable (injected fault)",
        ),
        FaultKind::Status504 => gateway_error(
            StatusCode::GATEWAY_TIMEOUT,
            "Gateway timeout (injected fault)",
        ),
        FaultKind::Reset => {
            if let Some(conn) = req.extensions().get::<ConnControl>() {
                conn.reset();
                std::future::pending::<()>().await;
            }
            gateway_error(StatusCode::BAD_GATEWAY, "connection reset (injected fault)")
        }
        FaultKind::Slow => {
            tokio::time::sleep(Duration::from_millis(rule.delay_ms.unwrap_or(2000))).await;
            next.run(req).await
        }
        FaultKind::Truncated => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let full = bytes.len().max(2);
            let half = bytes.slice(..bytes.len() / 2);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "truncated (injected fault)",
                )),
            ];
            Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks)))
        }
        FaultKind::MalformedJson => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let cut = if bytes.len() < 2 {
                bytes::Bytes::from_static(b"{\"")
            } else {
                bytes.slice(..bytes.len() / 2)
            };
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Response::from_parts(parts, Body::from(cut))
        }
    }
}

/// How many records a request asks for at most: the smallest of LN's `$top` and first
/// `Prefer: odata.maxpagesize`, Data Lake's `limit` and M3's `maxrecs` (query or matrix
/// parameter; `0` means no limit). `None` when it names none of them.
pub fn requested_page(req: &Request) -> Option<u64> {
    let mut sizes: Vec<u64> = Vec::new();
    let query = req.uri().query().unwrap_or_default();
    let matrix = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.into(), v.into()));
    for (k, v) in form_urlencoded::parse(query.as_bytes()).chain(matrix) {
        let n = v.trim().parse::<u64>().ok();
        match (k.as_ref(), n) {
            ("$top" | "limit", Some(n)) => sizes.push(n),
            ("maxrecs", Some(0)) => sizes.push(u64::MAX),
            ("maxrecs", Some(n)) => sizes.push(n),
            _ => {}
        }
    }
    let prefer = req
        .headers()
        .get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k.trim() == "odata.maxpagesize").then(|| v.trim().parse::<u64>().ok())?
        });
    sizes.extend(prefer);
    sizes.into_iter().min()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(uri: &str, prefer: Option<&str>) -> Request {
        let mut b = Request::builder().uri(uri);
        if let Some(p) = prefer {
            b = b.header("prefer", p);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_requested_page_is_the_smallest_bound_a_request_names() {
        let ln = "/T/LN/lnapi/odata/tcapi.x/Set";
        assert_eq!(requested_page(&req(ln, None)), None);
        assert_eq!(
            requested_page(&req(ln, Some("odata.maxpagesize=200"))),
            Some(200)
        );
        assert_eq!(
            requested_page(&req(
                &format!("{ln}?%24top=50&%24skip=100"),
                Some("odata.maxpagesize=200")
            )),
            Some(50)
        );
        assert_eq!(
            requested_page(&req(
                "/T/DATAFABRIC/compass/v2/jobs/1/result/?offset=0&limit=400",
                None
            )),
            Some(400)
        );
        let v1 = "/T/M3/m3api-rest/execute/CRS610MI/LstByNumber;maxrecs=70;returncols=CUNO";
        assert_eq!(requested_page(&req(v1, None)), Some(70));
        let v2 = "/T/M3/m3api-rest/v2/execute/MRS001MI/LstFields?maxrecs=0";
        assert_eq!(
            requested_page(&req(v2, None)),
            Some(u64::MAX),
            "0 is no limit"
        );
    }
}
