//! One connection's page: its tasks (record schema, sync mode, cursor, saved state with
//! reset), the streams the connector discovers on the tenant (on request: it connects),
//! Run now (all tasks or some, incremental or full) through the API's run manager, and
//! the run history with errors in full.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ionport_core::connection::{Cancel, Connection, CredentialSource};
use ionport_core::destination::DestinationConfig;
use ionport_core::plugin::LoadedPlugin;
use ionport_plugin_sdk::DiscoveredStream;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use tower_sessions::Session;

use super::page::{self, Frame, csrf_field, status_badge, when};
use super::see_other;
use crate::serve::AppState;
use crate::serve::api::connections::{connection_secrets, recheck_destination};
use crate::serve::api::runs as api_runs;
use crate::serve::audit;
use crate::serve::error::Body;
use crate::serve::store::ConnectionRecord;

/// How long a state read waits for the destination's writer lock.
const STATE_WAIT: Duration = Duration::from_millis(500);

/// The saved states, or why they cannot be shown now.
async fn states(st: &AppState, r: &ConnectionRecord) -> Result<BTreeMap<String, Value>, String> {
    if st.runs.busy(&r.workspace, &r.name) {
        return Err("a run is going: the states show when it ends".into());
    }
    let d = recheck_destination(st, &r.workspace, &r.destination).map_err(|e| e.body.message)?;
    // A file destination that was never written has no state (and is not created here).
    if let DestinationConfig::Sqlite { path }
    | DestinationConfig::Parquet { path }
    | DestinationConfig::Jsonl { path } = &d
        && !path.exists()
    {
        return Ok(BTreeMap::new());
    }
    tokio::task::spawn_blocking(move || {
        let dest =
            ionport_core::destination::open_waiting(&d, STATE_WAIT).map_err(|e| e.to_string())?;
        dest.states()
            .map(|s| s.into_iter().collect())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("reading the states failed: {e}"))?
}

/// The streams `plugin` discovers over the connection's stored credentials (its token
/// revoked afterwards); errors scrubbed of the connection's secrets and tokens.
async fn discovered(
    st: &AppState,
    r: &ConnectionRecord,
    plugin: &std::sync::Arc<LoadedPlugin>,
) -> Result<Vec<DiscoveredStream>, String> {
    let secrets = connection_secrets(st, r);
    let source = CredentialSource::Vault {
        vault: st.vault.clone(),
        name: r.vault_entry(),
    };
    let conn = Connection::open(source, crate::serve::connection_settings())
        .map_err(|e| ionport_core::form_values::mask_secrets(&e.to_string(), &secrets))?;
    let result =
        ionport_core::read::discover(plugin, &conn, r.settings.clone(), Cancel::default()).await;
    let scrubber = conn.gateway().tokens().scrubber().clone();
    if let Err(e) = conn.shutdown().await {
        tracing::warn!(error = %scrubber.scrub(&e.to_string()), "revoking the discovery's token failed");
    }
    result.map(|d| d.streams).map_err(|e| {
        scrubber.scrub(&ionport_core::form_values::mask_secrets(
            &e.to_string(),
            &secrets,
        ))
    })
}

fn discovered_section(
    found: &Result<Vec<DiscoveredStream>, String>,
    base: &str,
    csrf: &str,
    tasks: &[String],
) -> Markup {
    html! {
        section aria-labelledby="discovered-h" id="discovered" {
            h2 id="discovered-h" { "Discovered streams" }
            @match found {
                Err(e) => { p.error role="alert" { "Discovery failed: " (e) } }
                Ok(streams) => {
                    p.hint { "What the connector finds on the tenant now. Add a stream to the connection's tasks to run it with them." }
                    div.scroll {
                    table.list {
                        thead { tr { th scope="col" { "Stream" } th scope="col" { "Kind" } th scope="col" { "Available" }
                            th scope="col" { "Sync modes" } th scope="col" { "Cursor" } th scope="col" { "Task" } } }
                        tbody {
                            @for d in streams {
                                tr data-stream=(d.spec.name) {
                                    th scope="row" {
                                        (d.spec.name)
                                        p.hint { (d.spec.description) }
                                        details { summary { "Record schema" }
                                            pre { (serde_json::to_string_pretty(&d.spec.record_schema).unwrap_or_default()) } }
                                    }
                                    td { (if d.predefined { "predefined task" } else { "discovered" }) }
                                    td { (if d.available { "yes" } else { "no" }) @if let Some(n) = &d.note { p.hint { (n) } } }
                                    td { (d.spec.sync_modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")) }
                                    td { (d.spec.cursor_field.clone().unwrap_or_else(|| "—".into())) }
                                    td {
                                        @if tasks.contains(&d.spec.name) {
                                            "a task"
                                        } @else if d.available && !d.predefined {
                                            form.inline method="post" action={ (base) "/streams" } {
                                                (csrf_field(csrf))
                                                input type="hidden" name="stream" value=(d.spec.name);
                                                button type="submit" aria-label={ "Add " (d.spec.name) " to the tasks" } { "Add to tasks" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    }
                }
            }
        }
    }
}

/// `?discover=1` also lists the streams the connector discovers.
#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    discover: Option<String>,
}

/// `GET /console/connections/{name}`.
pub async fn show(
    State(st): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let Some(r) = st
        .store
        .lock()
        .await
        .get(&crate::serve::workspaces::current(), &name)
        .cloned()
    else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connection.");
    };
    let plugin = st.registry.get(&r.connector).cloned();
    let saved = states(&st, &r).await;
    let found = match (&plugin, q.discover.is_some()) {
        (Some(p), true) => Some(discovered(&st, &r, p).await),
        (None, true) => Some(Err("the connector is not loaded".to_string())),
        _ => None,
    };
    let runs: Vec<_> = st
        .runs
        .list(&r.workspace)
        .into_iter()
        .filter(|v| v.connection == name)
        .collect();
    let frame = Frame::signed_in(name.clone(), &session).await;
    let csrf = frame.csrf.clone().unwrap_or_default();
    let base = format!("/console/connections/{name}");
    let body = html! {
        p.meta {
            "Connector: " strong { (plugin.as_ref().map_or(r.connector.clone(), |p| p.manifest().name.clone())) }
            " · destination: " (format!("{} {}", r.destination.kind(), match &r.destination {
                DestinationConfig::Postgres { url, schema } => format!("{url} ({schema})"),
                DestinationConfig::Sqlite { path } | DestinationConfig::Parquet { path } | DestinationConfig::Jsonl { path } => path.display().to_string(),
            }))
            " · " a href={ (base) "/edit" } { "Edit" }
            " · " a href={ (base) "?discover=1#discovered" } { "Discover streams" }
        }
        @if let Some(d) = &r.description { p.description data-description { (d) } }
        dl.options aria-label="Run options" {
            dt { "Page size" } dd data-option="page_size" { (r.page_size.map_or("connector default".to_string(), |n| n.to_string())) }
            dt { "Quota" } dd data-option="quota" { (r.quota.clone().unwrap_or_else(|| "1000/60 (default)".into())) }
            dt { "Concurrency" } dd data-option="concurrency" { (r.concurrency.map_or(format!("{} (default)", ionport_core::pipeline::load::DEFAULT_CONCURRENCY), |n| n.to_string())) }
            dt { "Retries" } dd data-option="retries" { (r.retries.map_or("default".to_string(), |n| n.to_string())) }
        }
        section aria-labelledby="run-h" {
            h2 id="run-h" { "Run now" }
            form.run method="post" action={ (base) "/run" } {
                (csrf_field(&csrf))
                fieldset {
                    legend { "Tasks" }
                    @for t in &r.tasks {
                        label.check { input type="checkbox" name="task" value=(t.name) checked[t.enabled]; " " (t.name) }
                    }
                }
                fieldset {
                    legend { "Mode" }
                    label.check { input type="radio" name="mode" value="incremental" checked; " incremental (from the saved state)" }
                    label.check { input type="radio" name="mode" value="full"; " full refresh (ignore the saved state)" }
                }
                button.primary type="submit" { "Run now" }
            }
        }
        section aria-labelledby="tasks-h" {
            h2 id="tasks-h" { "Tasks" }
            @if let Err(e) = &saved { p.note role="status" { "Saved states: " (e) } }
            div.scroll {
            table.list {
                thead { tr { th scope="col" { "Task" } th scope="col" { "Sync mode" } th scope="col" { "Cursor" }
                    th scope="col" { "Key" } th scope="col" { "Saved state" } } }
                tbody {
                    @for t in &r.tasks {
                        @let spec = plugin.as_ref().and_then(|p| p.task(&t.name));
                        @let state = saved.as_ref().ok().and_then(|s| s.get(&t.name));
                        tr data-task=(t.name) {
                            th scope="row" {
                                (t.name)
                                @if let Some(s) = spec {
                                    p.hint { (s.description) }
                                    details { summary { "Record schema" }
                                        pre { (serde_json::to_string_pretty(&s.record_schema).unwrap_or_default()) } }
                                }
                            }
                            td { (t.sync_mode.replace('_', " ")) @if !t.enabled { " (disabled)" } }
                            td { (spec.and_then(|s| s.cursor_field.clone()).unwrap_or_else(|| "—".into())) }
                            td { (spec.map(|s| s.primary_key.join(", ")).unwrap_or_default()) }
                            td data-state=(t.name) {
                                @match state {
                                    Some(v) => {
                                        code { (v.to_string()) }
                                        form.inline method="post" action={ (base) "/state/reset" }
                                            data-confirm={ "Reset the saved state of " (t.name) "? Its next run reads everything." } {
                                            (csrf_field(&csrf))
                                            input type="hidden" name="task" value=(t.name);
                                            button.danger type="submit" aria-label={ "Reset the state of " (t.name) } { "Reset" }
                                        }
                                    }
                                    None => { "none" }
                                }
                            }
                        }
                    }
                }
            }
            }
        }
        @if let Some(found) = &found {
            (discovered_section(found, &base, &csrf, &r.tasks.iter().map(|t| t.name.clone()).collect::<Vec<_>>()))
        }
        section aria-labelledby="history-h" {
            h2 id="history-h" { "Run history" }
            @if runs.is_empty() { p { "No run since the server started (runs are kept in memory)." } }
            @else {
                div.scroll {
                table.list {
                    thead { tr { th scope="col" { "Run" } th scope="col" { "Status" } th scope="col" { "Started" }
                        th scope="col" { "Records" } th scope="col" { "Seconds" } th scope="col" { "Error" } } }
                    tbody {
                        @for v in &runs {
                            tr {
                                td { a href={ "/console/runs/" (v.id) } { (v.id) } }
                                td { (status_badge(v.status.as_str())) }
                                td { (when(v.created)) }
                                td.num { (v.records) }
                                td.num { (format!("{:.1}", v.seconds)) }
                                td { @if let Some(e) = &v.error { pre.error { (e) } } }
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

fn pairs(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `POST /console/connections/{name}/run`: `task` (repeated), `mode` = `incremental` or
/// `full`.
pub async fn run_now(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let fields = pairs(&body);
    let tasks: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "task")
        .map(|(_, v)| v.clone())
        .collect();
    if tasks.is_empty() {
        return page::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Nothing to run",
            "Choose at least one task.",
        );
    }
    let full = fields.iter().any(|(k, v)| k == "mode" && v == "full");
    let start = api_runs::StartRun {
        connection: Some(name),
        tasks: Some(tasks),
        full_refresh: Some(full),
        pipeline: None,
        task: None,
    };
    match api_runs::start(State(st), Body(start)).await {
        Ok((_, axum::Json(view))) => see_other(&format!("/runs/{}", view.id)),
        Err(e) => page::message(e.status, "Not started", &e.body.message),
    }
}

/// `POST /console/connections/{name}/streams`: `stream`, a stream the connector discovers,
/// added to the connection's tasks (incremental; a cursorless stream is read in full).
pub async fn add_stream(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(stream) = pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "stream")
        .map(|(_, v)| v)
    else {
        return page::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not added",
            "No stream named.",
        );
    };
    let mut store = st.store.lock().await;
    let Some(mut r) = store
        .get(&crate::serve::workspaces::current(), &name)
        .cloned()
    else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connection.");
    };
    let Some(plugin) = st.registry.get(&r.connector).cloned() else {
        return page::message(
            StatusCode::CONFLICT,
            "Not added",
            "The connector is not loaded.",
        );
    };
    if plugin.task(&stream).is_some() || !ionport_core::read::is_stream_name(&plugin, &stream) {
        return page::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not added",
            &format!("'{stream}' is not a stream this connector discovers."),
        );
    }
    if !r.tasks.iter().any(|t| t.name == stream) {
        r.tasks.push(crate::serve::store::ConnectionTask {
            name: stream.clone(),
            enabled: true,
            sync_mode: "incremental".into(),
            deletes: Default::default(),
            schema_changes: Default::default(),
        });
        r.updated = crate::serve::auth::now();
        if let Err(e) = store.put(r) {
            return page::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not added",
                &format!("{e:#}"),
            );
        }
        tracing::info!(connection = %name, %stream, "console: stream added to the tasks");
    }
    see_other(&format!("/connections/{name}"))
}

/// `POST /console/connections/{name}/state/reset`: `task`, or every task when absent.
pub async fn reset_state(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let task = pairs(&body)
        .into_iter()
        .find(|(k, _)| k == "task")
        .map(|(_, v)| v);
    let Some(r) = st
        .store
        .lock()
        .await
        .get(&crate::serve::workspaces::current(), &name)
        .cloned()
    else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connection.");
    };
    if st.runs.busy(&r.workspace, &name) {
        return page::message(
            StatusCode::CONFLICT,
            "Not reset",
            "A run of this connection is going: reset its state when it has ended.",
        );
    }
    let d = match recheck_destination(&st, &r.workspace, &r.destination) {
        Ok(d) => d,
        Err(e) => return page::message(e.status, "Not reset", &e.body.message),
    };
    let t = task.clone();
    let done = tokio::task::spawn_blocking(move || {
        let dest =
            ionport_core::destination::open_waiting(&d, STATE_WAIT).map_err(|e| e.to_string())?;
        ionport_core::pipeline::partition::reset_task_states(dest.as_ref(), t.as_deref())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match done {
        Ok(()) => {
            tracing::info!(connection = %name, task = ?task, "console: state reset");
            let changed = vec![format!("state.{}", task.as_deref().unwrap_or("*"))];
            audit::record(&st.audit, audit::entry("state.reset", &name, changed));
            see_other(&format!("/connections/{name}"))
        }
        Err(e) => page::message(StatusCode::INTERNAL_SERVER_ERROR, "Not reset", &e),
    }
}
