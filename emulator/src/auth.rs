//! The authorization server: `/{tenant}/as/token.oauth2` (password, refresh-token,
//! authorization-code and SAML bearer grants), `/{tenant}/as/authorization.oauth2` (see
//! `authorize`) and `/{tenant}/as/revoke_token.oauth2`, with RFC 6749 §5.2 error bodies.

mod authorize;
mod saml;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;

use crate::state::{Shared, lock};
use crate::tokens::{Issued, RefreshRefusal};
use crate::util::{gateway_error, parse_form};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/{tenant}/as/token.oauth2", post(token))
        .route(
            "/{tenant}/as/authorization.oauth2",
            get(authorize::authorize),
        )
        .route("/{tenant}/as/revoke_token.oauth2", post(revoke))
}

fn oauth_error(st: &Shared, status: StatusCode, code: &str, description: &str) -> Response {
    st.count(|c| *c.token_errors.entry(code.to_owned()).or_default() += 1);
    let mut resp = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ION API authorization server\""),
        );
    }
    resp
}

/// Client id and secret from HTTP Basic, raw and form-decoded (RFC 6749 §2.3.1 says
/// form-encode, then base64; many clients skip the form-encoding).
fn basic_credentials(headers: &HeaderMap) -> Option<[(String, String); 2]> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| s.to_owned())
    };
    Some([
        (id.to_owned(), secret.to_owned()),
        (decode(id), decode(secret)),
    ])
}

/// Checks the client; `Err` is the `invalid_client` response.
fn authenticate_client(
    st: &Shared,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Result<(), Response> {
    let expected = &st.config.credentials;
    let matches = |(id, secret): &(String, String)| {
        *id == expected.client_id && *secret == expected.client_secret
    };
    let creds = basic_credentials(headers).or_else(|| {
        let pair = (
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        );
        Some([pair.clone(), pair])
    });
    match creds {
        Some(pairs) if pairs.iter().any(matches) => Ok(()),
        Some(_) => Err(oauth_error(
            st,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: unknown client or wrong client secret",
        )),
        None => Err(oauth_error(
            st,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication missing: send client_id and client_secret or HTTP Basic",
        )),
    }
}

fn check_request(st: &Shared, tenant: &str, headers: &HeaderMap) -> Result<(), Response> {
    if tenant != st.config.tenant {
        return Err(gateway_error(StatusCode::NOT_FOUND, "unknown tenant"));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(oauth_error(
            st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(())
}

fn token_response(st: &Shared, issued: Issued) -> Response {
    let ttl = st.config.token_ttl;
    let expires_in = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let mut body = json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    if let Some(rt) = issued.refresh_token {
        body["refresh_token"] = rt.into();
    }
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

async fn token(
    State(st): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_request(&st, &tenant, &headers) {
        return r;
    }
    let form = parse_form(&body);
    let grant = form.get("grant_type").map(String::as_str);
    st.count(|c| match grant {
        Some("password") => c.token_requests.password += 1,
        Some("refresh_token") => c.token_requests.refresh_token += 1,
        _ => c.token_requests.other += 1,
    });
    let Some(grant) = grant else {
        return oauth_error(
            &st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is missing",
        );
    };
    if let Err(r) = authenticate_client(&st, &headers, &form) {
        return r;
    }
    let cfg = &st.config;
    match grant {
        "password" if !st.config.password_grant => oauth_error(
            &st,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The client is not authorized to use the password grant",
        ),
        "password" => {
            let (Some(user), Some(pass)) = (form.get("username"), form.get("password")) else {
                return oauth_error(
                    &st,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username and password are required",
                );
            };
            if *user != cfg.credentials.saak || *pass != cfg.credentials.sask {
                tracing::info!("password grant refused: wrong service-account keys");
                return oauth_error(
                    &st,
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid service account credentials",
                );
            }
            let issued = lock(&st.tokens).issue(cfg.token_ttl, cfg.issue_refresh_tokens);
            tracing::debug!("password grant: token issued");
            token_response(&st, issued)
        }
        "refresh_token" => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(
                    &st,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            };
            let result = lock(&st.tokens).refresh(rt, cfg.token_ttl, cfg.refresh_token_idle);
            match result {
                Ok(issued) => token_response(&st, issued),
                Err(why) => {
                    let desc = match why {
                        RefreshRefusal::Reused => {
                            st.count(|c| c.refresh_token_reuse += 1);
                            tracing::warn!("refresh token reuse refused");
                            "Refresh token has already been used (refresh tokens rotate)"
                        }
                        RefreshRefusal::Revoked => "Refresh token has been revoked",
                        RefreshRefusal::Idle => "Refresh token expired after being idle",
                        RefreshRefusal::Unknown => "Unknown refresh token",
                    };
                    oauth_error(&st, StatusCode::BAD_REQUEST, "invalid_grant", desc)
                }
            }
        }
        "authorization_code" => authorize::redeem(&st, &form),
        saml::GRANT_TYPE => saml::grant(&st, &form),
        other => oauth_error(
            &st,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!(
                "Grant type '{}' is not supported",
                other.chars().take(40).collect::<String>()
            ),
        ),
    }
}

async fn revoke(
    State(st): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_request(&st, &tenant, &headers) {
        return r;
    }
    let form = parse_form(&body);
    if let Err(r) = authenticate_client(&st, &headers, &form) {
        return r;
    }
    let Some(token) = form.get("token") else {
        return oauth_error(
            &st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    // RFC 7009: 200 whether or not the token was known.
    let revoked = lock(&st.tokens).revoke(token);
    tracing::debug!(revoked, "revocation");
    st.count(|c| c.revocations += 1);
    StatusCode::OK.into_response()
}
