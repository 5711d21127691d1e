//! The gateway rules in front of every API: tenant, bearer token, quota, faults, target
//! timeout; and the outermost observer that counts requests, 401s and 429s.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::counters::Api;
use crate::faults;
use crate::state::{Shared, lock};
use crate::tokens::BearerRefusal;
use crate::users::SignedInUser;
use crate::util::gateway_error;

fn unauthorized(description: &str) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "invalid_token", "error_description": description})),
    )
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ION API\", error=\"invalid_token\""),
    );
    resp
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Tenant, bearer token, quota, faults and the target timeout, for the APIs.
pub(crate) async fn guard(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let tenant = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if tenant != st.config.tenant {
        return gateway_error(StatusCode::NOT_FOUND, "unknown tenant");
    }
    let Some(token) = bearer(&req) else {
        return unauthorized("Bearer token required");
    };
    let check = lock(&st.tokens).check(token);
    let subject = match check {
        Ok(subject) => subject,
        Err(why) => {
            return unauthorized(match why {
                BearerRefusal::Unknown => "Invalid access token",
                BearerRefusal::Expired => "Access token expired",
                BearerRefusal::Revoked => "Access token revoked",
            });
        }
    };
    if let Some(q) = st.config.quota {
        let counted = if st.config.quota_per_tenant {
            "the tenant"
        } else {
            token
        };
        let hit = lock(&st.quota).hit(counted, q);
        if let Err(retry) = hit {
            let secs = (retry.as_secs() + u64::from(retry.subsec_nanos() > 0)).max(1);
            let mut resp = gateway_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Quota exceeded: {} requests per {} s",
                    q.requests,
                    q.per.as_secs_f64()
                ),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return resp;
        }
    }
    req.extensions_mut().insert(SignedInUser(subject));
    let req = record(&st, req).await;
    delay(&st).await;
    with_faults_and_timeout(st, Api::of_path(&path), req, next).await
}

/// Keeps the request in the log of [`crate::recorded`]; a Compass job's body (its SQL) is
/// read and put back.
async fn record(st: &Shared, req: Request) -> Request {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (req, sql) = if crate::recorded::is_compass_submit(&method, &path) {
        let (parts, body) = req.into_parts();
        // The handler's extractor still applies its own size limit to what is put back.
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let sql = String::from_utf8_lossy(&bytes).into_owned();
        (Request::from_parts(parts, bytes.into()), Some(sql))
    } else {
        (req, None)
    };
    lock(&st.requests).push(crate::recorded::RecordedRequest {
        method,
        path,
        query,
        sql,
    });
    req
}

/// Waits the configured latency (plus jitter): the round trip of a real gateway, so that
/// clients are measured against the time a page really takes to arrive.
async fn delay(st: &Shared) {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (base, jitter) = (st.config.latency, st.config.latency_jitter);
    if base.is_zero() && jitter.is_zero() {
        return;
    }
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    let extra = crate::rng::mix(st.config.seed, n) % nanos.saturating_add(1);
    tokio::time::sleep(base + std::time::Duration::from_nanos(extra)).await;
}

/// Faults and timeout only, for the authorization server.
pub(crate) async fn auth_guard(State(st): State<Shared>, req: Request, next: Next) -> Response {
    with_faults_and_timeout(st, Api::Auth, req, next).await
}

async fn with_faults_and_timeout(st: Shared, api: Api, req: Request, next: Next) -> Response {
    let fault = faults::pick(&st, api, &req);
    let run = async move {
        match fault {
            Some(rule) => faults::apply(rule, req, next).await,
            None => next.run(req).await,
        }
    };
    match tokio::time::timeout(st.config.gateway_timeout, run).await {
        Ok(resp) => resp,
        Err(_) => gateway_error(
            StatusCode::GATEWAY_TIMEOUT,
            "Gateway timeout: the backend did not answer in time",
        ),
    }
}

/// Counts requests per API and the 401s and 429s served.
pub(crate) async fn observe(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    let api = Api::of_path(&path);
    let method = req.method().clone();
    st.count(|c| c.requests.bump(api));
    let resp = next.run(req).await;
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        st.count(|c| c.unauthorized += 1);
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        st.count(|c| c.rate_limited += 1);
    }
    tracing::debug!(%method, path, status = status.as_u16(), "request");
    resp
}
