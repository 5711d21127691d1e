//! Sign-in, sign-out, the session check and the CSRF check.
//!
//! A session is server-side (`tower-sessions`' memory store): the browser holds only a
//! random id in an `HttpOnly`, `SameSite=Strict` cookie, `Secure` with
//! `--console-secure-cookie`. Signing in takes an API key the server accepts and turns it
//! into a session with a new id (no fixation); the key itself is not kept.
//!
//! CSRF: the synchronizer-token pattern (OWASP). Each session holds a random token; every
//! page's forms carry it in a hidden `_csrf` field (scripts send `X-CSRF-Token`), and every
//! request that is not GET/HEAD/OPTIONS must present it — checked here, in one layer, before
//! any handler runs, for url-encoded and multipart bodies alike. Written by hand (about 60
//! lines) because the CSRF crates for axum either keep the token in a second cookie
//! (double submit, weaker than a server-side session we already have) or bring their own
//! session and key handling; here the token lives in the session that `tower-sessions`
//! already keeps. `SameSite=Strict` is the second line: a cross-site form post carries no
//! session at all.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, extract};
use base64::Engine;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::page::{self, Frame};
use crate::serve::AppState;
use crate::serve::auth::now;

/// Session keys.
const SIGNED_IN: &str = "signed_in";
/// The hex SHA-256 of the key the session signed in with (never the key itself).
const KEY_HASH: &str = "key_sha256";
const CSRF: &str = "csrf";
/// The form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

fn new_token() -> String {
    let mut b = [0u8; 32];
    if getrandom::fill(&mut b).is_err() {
        // Never a guessable token: an empty one matches nothing (see `csrf`).
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The session's CSRF token (made on first use).
pub async fn token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>(CSRF).await
        && !t.is_empty()
    {
        return t;
    }
    let t = new_token();
    if let Err(e) = session.insert(CSRF, &t).await {
        tracing::warn!("console session unavailable: {e}");
    }
    t
}

pub async fn signed_in(session: &Session) -> bool {
    matches!(session.get::<u64>(SIGNED_IN).await, Ok(Some(_)))
}

/// Who the key the session signed in with is, when the server still accepts it; a
/// session whose key was revoked is ended here.
async fn signed_in_key(st: &AppState, session: &Session) -> Option<crate::serve::auth::Identity> {
    if !signed_in(session).await {
        return None;
    }
    let name = match session.get::<String>(KEY_HASH).await {
        Ok(Some(hex)) => crate::serve::auth::unhex(&hex).and_then(|h| st.keys.identify(&h)),
        _ => None,
    };
    if name.is_none() {
        tracing::info!("console: a session's key is no longer accepted; signed out");
        if let Err(e) = session.flush().await {
            tracing::warn!("console session unavailable: {e}");
        }
    }
    name
}

/// Every console path but the sign-in page and the assets needs a signed-in session whose
/// key is still accepted: pages redirect to the sign-in page, other requests get 401. A
/// signed-in request runs as that key ([`crate::serve::workspaces::CALLER`] holds its
/// name and workspace), so it sees the key's workspace (an admin key: its own) and the
/// changes it makes are audited under the key, as the API's are.
pub async fn require_session(
    State(st): State<AppState>,
    session: Session,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(req).await;
    }
    if let Some(who) = signed_in_key(&st, &session).await
        && let Ok(caller) = crate::serve::auth::caller_of(&st, who, None)
    {
        return crate::serve::workspaces::CALLER
            .scope(caller, next.run(req))
            .await;
    }
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return super::see_other("/login");
    }
    page::message(
        StatusCode::UNAUTHORIZED,
        "Signed out",
        "Your session has ended: sign in again.",
    )
}

/// Refuses (403) a state-changing request whose CSRF token is missing or wrong.
pub async fn csrf(
    State(limit): State<usize>,
    session: Session,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let expected = session.get::<String>(CSRF).await.ok().flatten();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, limit).await else {
        return page::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            "The request is over the server's size limit.",
        );
    };
    let presented = match parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) => Some(t.to_string()),
        None => body_token(&parts.headers, &bytes).await,
    };
    let ok = match (expected, presented) {
        (Some(e), Some(p)) => !e.is_empty() && bool::from(e.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    };
    if !ok {
        tracing::info!(path = %parts.uri.path(), "console request refused: CSRF token missing or wrong");
        return page::message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request did not carry the page's security token. Reload the page and try again.",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `_csrf` of a url-encoded or multipart body.
async fn body_token(headers: &axum::http::HeaderMap, bytes: &axum::body::Bytes) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    if ct.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded::parse(bytes)
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.into_owned());
    }
    let boundary = multer::parse_boundary(ct).ok()?;
    let stream = futures::stream::once({
        let b = bytes.clone();
        async move { Ok::<_, std::convert::Infallible>(b) }
    });
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = parts.next_field().await {
        if field.name() == Some(CSRF_FIELD) {
            return field.text().await.ok();
        }
    }
    None
}

pub async fn login_page(session: Session) -> Response {
    if signed_in(&session).await {
        return super::see_other("/connections");
    }
    login_form(&session, StatusCode::OK, None).await
}

async fn login_form(session: &Session, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = token(session).await;
    let body = html! {
        p { "Sign in with an API key of this server (" code { "ionport apikey create" } ", or a key given with "
            code { "--api-key" } ")." }
        @if let Some(e) = error {
            p.error role="alert" id="login-error" { (e) }
        }
        form.stack method="post" action="/console/login" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            label for="key" { "API key" }
            input id="key" name="key" type="password" required autocomplete="current-password"
                autofocus aria-describedby=[error.map(|_| "login-error")];
            button type="submit" { "Sign in" }
        }
    };
    page::render(status, &Frame::signed_out("Sign in"), body)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm { key: (hidden) }")
    }
}

pub async fn login(
    extract::State(st): extract::State<AppState>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Response {
    let key = form.key.trim();
    if !key.is_empty() && st.keys.accepts(key) {
        // A new id and a new token: nothing set before sign-in carries over.
        if let Err(e) = session.cycle_id().await {
            tracing::warn!("console session unavailable: {e}");
        }
        let _ = session.insert(CSRF, new_token()).await;
        let key_hash = crate::serve::auth::hex(&crate::serve::auth::hash(key));
        let _ = session.insert(KEY_HASH, key_hash).await;
        if let Err(e) = session.insert(SIGNED_IN, now()).await {
            tracing::warn!("console session unavailable: {e}");
        }
        tracing::info!("console: signed in");
        return super::see_other("/connections");
    }
    st.metrics.unauthorized_requests.inc();
    tracing::info!("console: sign-in refused (wrong key)");
    login_form(
        &session,
        StatusCode::UNAUTHORIZED,
        Some("This key is not accepted by the server."),
    )
    .await
}

pub async fn logout(session: Session) -> Response {
    if let Err(e) = session.flush().await {
        tracing::warn!("console session unavailable: {e}");
    }
    let mut r = super::see_other("/login");
    // Also tell the browser to drop whatever it kept of the pages.
    r.headers_mut().insert(
        "clear-site-data",
        axum::http::HeaderValue::from_static("\"cache\""),
    );
    r.into_response()
}
