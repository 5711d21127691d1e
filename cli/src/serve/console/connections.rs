//! The connections list, the connector choice that starts adding one, and deleting
//! (through the JSON API's handler). The add and edit form: `connection_form.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use ionport_core::destination::DestinationConfig;
use maud::html;
use tower_sessions::Session;

use super::page::{self, Frame, csrf_field, status_badge, when};
use super::see_other;
use crate::serve::AppState;
use crate::serve::api::connections as api;
use crate::serve::store::ConnectionRecord;

fn destination_text(d: &DestinationConfig) -> String {
    match d {
        DestinationConfig::Sqlite { path }
        | DestinationConfig::Parquet { path }
        | DestinationConfig::Jsonl { path } => format!("{} · {}", d.kind(), path.display()),
        DestinationConfig::Postgres { url, schema } => format!("postgres · {url} ({schema})"),
    }
}

fn connector_name(st: &AppState, id: &str) -> String {
    st.registry
        .get(id)
        .map_or_else(|| id.to_string(), |p| p.manifest().name.clone())
}

/// `GET /console/connections`.
pub async fn list(State(st): State<AppState>, session: Session) -> Response {
    let ws = crate::serve::workspaces::current();
    let records: Vec<ConnectionRecord> = st.store.lock().await.list(&ws).cloned().collect();
    let runs = st.runs.list(&ws);
    let frame = Frame::signed_in("Connections", &session).await;
    let csrf = frame.csrf.clone().unwrap_or_default();
    let body = html! {
        p { a.button href="/console/connections/new" { "Add connection" } }
        @if records.is_empty() {
            p { "No connection yet." }
        } @else {
            div.scroll {
            table.list {
                caption.sr { "Connections" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Connector" }
                    th scope="col" { "Destination" } th scope="col" { "Last run" } th scope="col" { span.sr { "Actions" } } } }
                tbody {
                    @for r in &records {
                        @let last = runs.iter().find(|v| v.connection == r.name);
                        tr data-connection=(r.name) {
                            th scope="row" {
                                a href={ "/console/connections/" (r.name) } { (r.name) }
                                @if let Some(d) = &r.description { p.hint.description { (d) } }
                            }
                            td { (connector_name(&st, &r.connector)) }
                            td { (destination_text(&r.destination)) }
                            td {
                                @match last {
                                    Some(v) => { (status_badge(v.status.as_str())) " " a href={ "/console/runs/" (v.id) } { (when(v.created)) } }
                                    None => { "never" }
                                }
                            }
                            td.actions {
                                a href={ "/console/connections/" (r.name) "/edit" } { "Edit" }
                                form.inline method="post" action={ "/console/connections/" (r.name) "/delete" }
                                    data-confirm={ "Delete the connection " (r.name) "? Its destination's data stays." } {
                                    (csrf_field(&csrf))
                                    button.danger type="submit" aria-label={ "Delete " (r.name) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
            }
        }
    };
    page::render(StatusCode::OK, &frame, body)
}

/// `GET /console/connections/new`: choose the connector.
pub async fn choose(State(st): State<AppState>, session: Session) -> Response {
    let frame = Frame::signed_in("Add connection", &session).await;
    let body = html! {
        ol.steps aria-label="Steps" { li aria-current="step" { "Connector" } li { "Basics" } li { "Connect" } li { "Test and create" } }
        h2 { "Choose the connector" }
        ul.cards {
            @for p in st.registry.plugins() {
                @let m = p.manifest();
                li.card {
                    h3 { a href={ "/console/connections/new/" (m.id) } data-connector=(m.id) { (m.name) } }
                    p.meta { code { (m.id) } " · version " (m.version) }
                    p { (m.description) }
                }
            }
        }
        @if st.registry.plugins().is_empty() {
            p role="alert" { "No connector is loaded: see " code { "ionport plugins list" } "." }
        }
    };
    page::render(StatusCode::OK, &frame, body)
}

/// `POST /console/connections/{name}/delete`.
pub async fn delete(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    match api::delete(State(st), Path(name)).await {
        Ok(_) => see_other("/connections"),
        Err(e) => page::message(e.status, "Not deleted", &e.body.message),
    }
}
