//! The web console at `/console` (`/` redirects there): server-rendered HTML (maud) over
//! the same services as the JSON API, for people without a terminal. See
//! `docs/console.md`.
//!
//! - `session.rs`: sign-in with an API key → a server-side session behind an `HttpOnly`,
//!   `SameSite=Strict` cookie (`tower-sessions`); the session check; the CSRF check
//!   (a synchronizer token kept in the session); `store.rs`: the sessions, in memory and
//!   bounded;
//! - `page.rs`: the page frame, headers and small shared pieces;
//! - `schema_form.rs`: one generic renderer of a connector's JSON-Schema connection form,
//!   and the reader that turns the posted fields back into form values;
//! - `ionapi.rs`: an uploaded `.ionapi` file → the form's credentials block;
//! - `connections.rs`: the list, the connector choice, delete; `connection_form.rs` and
//!   `form_page.rs`: add (basics → connect → test → create) and edit; `connection.rs`:
//!   one connection's tasks, discovered streams, runs, states; `runs.rs`: a run's page
//!   and its server-sent events;
//! - `assets/`: the stylesheet and the one small script, embedded in the binary.
//!
//! The JSON API's handlers are the services: the console calls them (create, update,
//! delete, test, start a run) so both surfaces check and store the same way.

mod connection;
mod connection_form;
mod connections;
mod form_page;
mod ionapi;
mod page;
mod runs;
mod schema_form;
mod session;
mod store;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::{Expiry, SessionManagerLayer};

use super::AppState;

/// The console's path prefix.
pub const BASE: &str = "/console";

/// The session cookie's name.
pub const COOKIE: &str = "ionport_console";

/// No script or style but the console's own files, no frames, forms only to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the console is served.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOptions {
    /// Mark the session cookie `Secure` (the console is reached over TLS, e.g. through a
    /// proxy that terminates it).
    pub secure_cookie: bool,
    /// Idle time after which a session ends.
    pub idle: Duration,
    pub max_body: usize,
    pub timeout: Duration,
}

/// `/` → the console.
pub async fn to_console() -> Redirect {
    Redirect::to("/console/connections")
}

/// The console as a service mounted at [`BASE`]: routes, then (inside out) the CSRF
/// check, the session check, sessions, the security headers, timeout, trace, panics.
pub fn router(state: AppState, opts: ConsoleOptions) -> Router {
    let sessions = SessionManagerLayer::new(store::BoundedStore::default())
        .with_name(COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(opts.secure_cookie)
        .with_path(BASE)
        .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(
            i64::try_from(opts.idle.as_secs()).unwrap_or(i64::MAX),
        )));
    let secured = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .route("/", get(to_console))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{file}", get(page::asset))
        .route("/connections", get(connections::list))
        .route("/connections/new", get(connections::choose))
        .route(
            "/connections/new/{connector}",
            get(connection_form::new_form).post(connection_form::new_submit),
        )
        .route("/connections/{name}", get(connection::show))
        .route(
            "/connections/{name}/edit",
            get(connection_form::edit_form).post(connection_form::edit_submit),
        )
        .route("/connections/{name}/delete", post(connections::delete))
        .route("/connections/{name}/run", post(connection::run_now))
        .route("/connections/{name}/streams", post(connection::add_stream))
        .route(
            "/connections/{name}/state/reset",
            post(connection::reset_state),
        )
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/events", get(runs::events))
        .fallback(not_found)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            opts.max_body,
            session::csrf,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ))
        .layer(sessions)
        .layer(DefaultBodyLimit::max(opts.max_body))
        .layer(secured("content-security-policy", CSP))
        .layer(secured("x-content-type-options", "nosniff"))
        .layer(secured("x-frame-options", "DENY"))
        .layer(secured("referrer-policy", "no-referrer"))
        .layer(secured("cache-control", "no-store"))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            opts.timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
}

async fn not_found() -> Response {
    page::message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the console.",
    )
}

/// A 303 to a console path (`/connections` → `/console/connections`).
pub fn see_other(path: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{BASE}{path}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
