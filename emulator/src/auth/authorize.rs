//! The authorization-code grant with PKCE: `GET /{tenant}/as/authorization.oauth2` and the
//! token endpoint's `grant_type=authorization_code`.
//!
//! There is no login page: the emulated user named by `login_hint` (one of
//! [`EMULATED_USERS`]) is signed in at once and consents, unless the request says
//! `consent=deny`. Errors follow RFC 6749 §4.1.2.1: a bad client or redirect URI is a 400
//! here (never a redirect to an unchecked URI); anything else is a 302 back to the client
//! with `error` and `state`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::{oauth_error, token_response};
use crate::state::{Shared, lock};
use crate::tokens::{CodeGrant, CodeRefusal};
use crate::users::EMULATED_USERS;
use crate::util::{gateway_error, parse_form};

/// How long a code can be redeemed (RFC 6749 §4.1.2 recommends at most 10 minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// Whether `uri` is a native app's loopback redirect (RFC 8252 §7.3): `http`, a loopback
/// host, any port.
fn loopback_redirect(uri: &str) -> bool {
    let Ok(u) = uri.parse::<Uri>() else {
        return false;
    };
    u.scheme_str() == Some("http") && matches!(u.host(), Some("127.0.0.1" | "localhost" | "[::1]"))
}

fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{sep}{query}");
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub(super) async fn authorize(
    State(st): State<Shared>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if tenant != st.config.tenant {
        return gateway_error(StatusCode::NOT_FOUND, "unknown tenant");
    }
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    // Not redirected: the redirect URI is only trusted for a known client.
    if get("client_id") != st.config.credentials.client_id {
        return oauth_error(
            &st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Unknown or missing client_id",
        );
    }
    let redirect_uri = get("redirect_uri");
    if !loopback_redirect(redirect_uri) {
        return oauth_error(
            &st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri must be a loopback http URI (http://127.0.0.1:PORT/..., RFC 8252 §7.3)",
        );
    }
    let state = get("state");
    let refuse = |code: &str, description: &str| {
        st.count(|c| *c.token_errors.entry(code.to_owned()).or_default() += 1);
        redirect(
            redirect_uri,
            &[
                ("error", code),
                ("error_description", description),
                ("state", state),
            ],
        )
    };
    if get("response_type") != "code" {
        return refuse(
            "unsupported_response_type",
            "Only response_type=code is supported",
        );
    }
    let challenge = get("code_challenge");
    if challenge.is_empty() {
        return refuse("invalid_request", "code_challenge is required (PKCE)");
    }
    if get("code_challenge_method") != "S256" {
        return refuse(
            "invalid_request",
            "code_challenge_method must be S256 (plain is refused)",
        );
    }
    if challenge.len() != 43 {
        return refuse(
            "invalid_request",
            "code_challenge must be BASE64URL(SHA256(code_verifier)), 43 characters",
        );
    }
    if get("consent") == "deny" {
        return refuse("access_denied", "The user denied the request");
    }
    let user = get("login_hint");
    if !EMULATED_USERS.contains(&user) {
        return refuse(
            "access_denied",
            "No emulated user signed in: add login_hint=alice (or bob) to the authorization URL",
        );
    }
    let code = lock(&st.tokens).new_code(
        CodeGrant {
            client_id: get("client_id").to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.to_owned(),
            subject: user.to_owned(),
        },
        CODE_LIFETIME,
    );
    tracing::debug!(user, "authorization code issued");
    redirect(redirect_uri, &[("code", &code), ("state", state)])
}

/// `BASE64URL(SHA256(verifier))`, RFC 7636 §4.2.
fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `v` is a well-formed verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn well_formed_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `grant_type=authorization_code` (the client is already authenticated).
pub(super) fn redeem(st: &Shared, form: &HashMap<String, String>) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let (code, redirect_uri, verifier) = (get("code"), get("redirect_uri"), get("code_verifier"));
    if code.is_empty() || redirect_uri.is_empty() {
        return oauth_error(
            st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code and redirect_uri are required",
        );
    }
    if !well_formed_verifier(verifier) {
        return oauth_error(
            st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_verifier is missing or not 43-128 unreserved characters",
        );
    }
    // The client authenticated; a code is redeemed only by the client it was issued to.
    let client_id = &st.config.credentials.client_id;
    let cfg = &st.config;
    let result = lock(&st.tokens).redeem(
        code,
        client_id,
        redirect_uri,
        |challenge| s256(verifier) == challenge,
        cfg.token_ttl,
        cfg.issue_refresh_tokens,
    );
    match result {
        Ok(issued) => token_response(st, issued),
        Err(why) => {
            let desc = match why {
                CodeRefusal::Unknown => "Unknown authorization code",
                CodeRefusal::Expired => "Authorization code expired",
                CodeRefusal::Reused => {
                    "Authorization code already used; the tokens issued from it are revoked"
                }
                CodeRefusal::OtherClient => "Authorization code was issued to another client",
                CodeRefusal::OtherRedirect => {
                    "redirect_uri differs from the authorization request's"
                }
                CodeRefusal::WrongVerifier => {
                    "PKCE verification failed: S256(code_verifier) is not the code_challenge"
                }
            };
            tracing::info!(desc, "authorization code refused");
            oauth_error(st, StatusCode::BAD_REQUEST, "invalid_grant", desc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_loopback_http_redirects() {
        assert!(loopback_redirect("http://127.0.0.1:5000/callback"));
        assert!(loopback_redirect("http://localhost:1/"));
        assert!(!loopback_redirect("https://127.0.0.1/cb"));
        assert!(!loopback_redirect("http://evil.example/cb"));
        assert!(!loopback_redirect(""));
    }
}
