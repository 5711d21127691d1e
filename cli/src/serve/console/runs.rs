//! A run's page (per task: status, records, commits, pages, requests, retries, rate —
//! pages, requests and retries the task's own, live while it reads; the
//! connection's gateway requests, retries, 401s and 429s; then the summary) and its live
//! progress as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use maud::html;
use tower_sessions::Session;

use super::page::{self, Frame, status_badge, when};
use crate::serve::AppState;
use crate::serve::runs::RunView;

/// How often the event stream looks at a run.
const TICK: Duration = Duration::from_millis(250);

fn rate(records: u64, seconds: f64) -> String {
    if seconds > 0.0 {
        format!("{:.0}/s", records as f64 / seconds)
    } else {
        "—".into()
    }
}

/// `GET /console/runs/{id}`.
pub async fn show(
    State(st): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let Some(v) = st
        .runs
        .get(&crate::serve::workspaces::current(), &id)
        .and_then(|e| e.view())
    else {
        return page::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such run (runs are kept in memory).",
        );
    };
    let frame = Frame::signed_in(format!("Run of {}", v.connection), &session).await;
    let live = v.finished.is_none();
    let body = html! {
        p.meta {
            "Connection: " a href={ "/console/connections/" (v.connection) } { (v.connection) }
            " · " code { (v.id) } " · " (if v.full_refresh { "full refresh" } else { "incremental" })
            " · asked for " (when(v.created))
        }
        div id="run" data-run-events=[live.then(|| format!("/console/runs/{id}/events"))] {
            p { "Status: " span data-run-status=(v.status.as_str()) aria-live="polite" { (status_badge(v.status.as_str())) } }
            // While it goes (the summary has the final counts).
            @if live {
                p.meta data-run-gateway="" {
                    "Gateway (the connection, all tasks): "
                    span data-g="requests" { (v.gateway.requests) } " requests · "
                    span data-g="retries" { (v.gateway.retries) } " retries · "
                    span data-g="unauthorized" { (v.gateway.unauthorized) } " 401 · "
                    span data-g="rate_limited" { (v.gateway.rate_limited) } " 429"
                }
            }
            div.scroll {
            table.list {
                caption.sr { "Tasks of the run" }
                thead { tr { th scope="col" { "Task" } th scope="col" { "Status" } th scope="col" { "Records" }
                    th scope="col" { "Commits" } th scope="col" { "Pages" } th scope="col" { "Requests" }
                    th scope="col" { "Retries" } th scope="col" { "Rate" } th scope="col" { "Seconds" } } }
                tbody {
                    @for t in &v.tasks {
                        tr data-task=(t.name) {
                            th scope="row" { (t.name) }
                            td data-k="status" { (status_badge(t.status.as_str())) }
                            td.num data-k="records" { (t.records) }
                            td.num data-k="commits" { (t.commits) }
                            td.num data-k="pages" { (t.pages) }
                            td.num data-k="requests" { (t.requests) }
                            td.num data-k="retries" { (t.retries) }
                            td.num data-k="rate" { (rate(t.records, t.seconds)) }
                            td.num data-k="seconds" { (format!("{:.1}", t.seconds)) }
                        }
                        @if let Some(e) = &t.error {
                            tr.error-row { td colspan="9" { pre.error role="alert" { (t.name) ": " (e) } } }
                        }
                    }
                }
            }
            }
            @if live {
                noscript { p { "This page does not update by itself without scripts: " a href={ "/console/runs/" (id) } { "reload" } "." } }
            } @else {
                section.summary aria-labelledby="summary-h" data-summary="" {
                    h2 id="summary-h" { "Summary" }
                    dl {
                        dt { "Outcome" } dd { (status_badge(v.status.as_str())) }
                        dt { "Records" } dd data-summary-records=(v.records) { (v.records) }
                        dt { "Commits" } dd { (v.commits) }
                        dt { "Seconds" } dd { (format!("{:.2}", v.seconds)) }
                        dt { "Rate" } dd { (rate(v.records, v.seconds)) }
                        dt { "Gateway requests" } dd { (v.gateway.requests) }
                        dt { "Retries" } dd { (v.gateway.retries) }
                        dt { "401 answers" } dd { (v.gateway.unauthorized) }
                        dt { "429 answers" } dd { (v.gateway.rate_limited) }
                    }
                    @if let Some(e) = &v.error { h3 { "Error" } pre.error role="alert" { (e) } }
                }
            }
        }
    };
    page::render(StatusCode::OK, &frame, body)
}

/// `GET /console/runs/{id}/events`: the run's view as a `run` event every quarter of a
/// second while it changes, and once more when it has finished; then the stream ends.
pub async fn events(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(entry) = st.runs.get(&crate::serve::workspaces::current(), &id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let stream = futures::stream::unfold(
        (entry, None::<String>, false),
        |(entry, last, done)| async move {
            if done {
                return None;
            }
            loop {
                let v: RunView = entry.view()?;
                let finished = v.finished.is_some();
                let text = serde_json::to_string(&v).unwrap_or_default();
                if last.as_deref() != Some(text.as_str()) || finished {
                    let ev: Result<Event, Infallible> =
                        Ok(Event::default().event("run").data(text.clone()));
                    return Some((ev, (entry, Some(text), finished)));
                }
                tokio::time::sleep(TICK).await;
            }
        },
    );
    sse(stream)
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
