//! The page frame (header, navigation, sign-out), the embedded assets, and small pieces
//! every page uses. Markup is maud: every interpolated value is HTML-escaped.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use tower_sessions::Session;

use super::session::{self, CSRF_FIELD};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// What the frame of a page needs.
pub struct Frame {
    pub title: String,
    /// The session's CSRF token when signed in (the sign-out form carries it).
    pub csrf: Option<String>,
}

impl Frame {
    pub fn signed_out(title: &str) -> Self {
        Self {
            title: title.into(),
            csrf: None,
        }
    }

    pub async fn signed_in(title: impl Into<String>, session: &Session) -> Self {
        Self {
            title: title.into(),
            csrf: Some(session::token(session).await),
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// A whole page.
pub fn render(status: StatusCode, frame: &Frame, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · ionport" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/connections" { "ionport" }
                    @if let Some(csrf) = &frame.csrf {
                        nav aria-label="Main" {
                            a href="/console/connections" { "Connections" }
                            a href="/console/connections/new" { "Add connection" }
                        }
                        form.signout method="post" action="/console/logout" {
                            (csrf_field(csrf))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (frame.title) }
                    (body)
                }
            }
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

/// A page with one message (errors, refusals).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let role = if status.is_success() {
        None
    } else {
        Some("alert")
    };
    render(
        status,
        &Frame::signed_out(title),
        html! {
            p role=[role] { (text) }
            p { a href="/console/connections" { "Back to the connections" } }
        },
    )
}

/// The embedded stylesheet and script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, ct) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response();
    // Revalidated each time: a new binary's assets are seen at once.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn when(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replace('T', " ").replace('Z', " UTC")
}

/// A run's or task's status as a badge.
pub fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status.replace('_', " ")) } }
}
