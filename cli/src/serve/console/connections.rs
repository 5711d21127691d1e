//! The connections list, adding a connection in Infor Data Hub's order (choose the
//! connector → Basics → Connect, with Import .ionapi and Test Connection → Create),
//! editing with the same form, and deleting. Storing, testing and deleting are the JSON
//! API's handlers, called as services.
//!
//! The form's secrets never go back to the browser: what the user typed or imported is
//! kept in the server-side session (the draft) and an empty secret input keeps it.
//! Create is offered only after a passing test of the values as shown, and the server
//! holds the test to it: the draft keeps the SHA-256 of the tested values, and Create
//! with any other values is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use ionport_core::destination::DestinationConfig;
use ionport_core::plugin::LoadedPlugin;
use maud::{Markup, html};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use super::page::{self, Frame, csrf_field, status_badge, when};
use super::{ionapi, schema_form, see_other};
use crate::serve::AppState;
use crate::serve::api::connections as api;
use crate::serve::error::{ApiError, Body};
use crate::serve::store::ConnectionRecord;
use crate::serve::tester::TestReport;

const DRAFT: &str = "draft";

/// What the session keeps of a form being filled in.
#[derive(Default, Serialize, Deserialize)]
struct Draft {
    /// `new:CONNECTOR` or `edit:NAME`: a draft belongs to one form.
    form: String,
    /// Secret values typed or imported, by dotted path.
    secrets: BTreeMap<String, String>,
    /// The SHA-256 (hex) of the values of the last passing test.
    tested: Option<String>,
}

async fn draft(session: &Session, form: &str) -> Draft {
    match session.get::<Draft>(DRAFT).await {
        Ok(Some(d)) if d.form == form => d,
        _ => Draft {
            form: form.to_string(),
            ..Draft::default()
        },
    }
}

async fn save_draft(session: &Session, d: &Draft) {
    if let Err(e) = session.insert(DRAFT, d).await {
        tracing::warn!("console session unavailable: {e}");
    }
}

fn values_hash(connector: &str, values: &Value) -> String {
    let mut h = Sha256::new();
    h.update(connector.as_bytes());
    h.update([0]);
    h.update(values.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

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
    let records: Vec<ConnectionRecord> = st.store.lock().await.list().cloned().collect();
    let runs = st.runs.list();
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
                            th scope="row" { a href={ "/console/connections/" (r.name) } { (r.name) } }
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

/// What the connection form page shows.
#[derive(Default)]
struct FormPage {
    /// `None` when adding.
    editing: Option<String>,
    name: String,
    dest_type: String,
    dest_path: String,
    page_size: String,
    quota: String,
    values: Value,
    errors: BTreeMap<String, String>,
    /// Problems not tied to one field (import, create).
    problems: Vec<String>,
    imported: bool,
    test: Option<TestReport>,
    /// Whether the values shown passed their last test.
    tested: bool,
}

fn form_page(plugin: &LoadedPlugin, draft: &Draft, csrf: &str, f: &FormPage) -> Markup {
    let m = plugin.manifest();
    let action = match &f.editing {
        Some(n) => format!("/console/connections/{n}/edit"),
        None => format!("/console/connections/new/{}", m.id),
    };
    let kept: BTreeSet<String> = if f.editing.is_some() {
        schema_form::secret_paths(plugin.connection_form())
            .into_iter()
            .collect()
    } else {
        draft.secrets.keys().cloned().collect()
    };
    let err = |k: &str| f.errors.get(k);
    let adding = f.editing.is_none();
    html! {
        @if adding {
            ol.steps aria-label="Steps" { li { a href="/console/connections/new" { "Connector" } } li aria-current="step" { "Basics" } li { "Connect" } li { "Test and create" } }
        }
        p.meta { "Connector: " strong { (m.name) } " (" code { (m.id) } ")" }
        @if !f.problems.is_empty() || !f.errors.is_empty() {
            div.errors role="alert" id="form-errors" tabindex="-1" {
                p { "Please fix the following:" }
                ul {
                    @for p in &f.problems { li { (p) } }
                    @for (k, v) in &f.errors { li { @if !k.is_empty() { a href={ "#f-" (k.replace('.', "-")) } { (k) } ": " } (v) } }
                }
            }
        }
        form.connection method="post" action=(action) enctype="multipart/form-data" novalidate
            data-tested-form=(if f.tested { "passed" } else { "" }) {
            (csrf_field(csrf))
            section aria-labelledby="basics-h" {
                h2 id="basics-h" { "Basics" }
                div.field {
                    label for="name" { "Connection name" span.req aria-hidden="true" { " *" } }
                    @if let Some(n) = &f.editing {
                        input id="name" type="text" value=(n) readonly aria-describedby="name-desc";
                    } @else {
                        input id="name" name="name" type="text" value=(f.name) autocomplete="off"
                            aria-required="true" aria-describedby="name-desc" aria-invalid=[err("name").map(|_| "true")];
                    }
                    small.hint id="name-desc" { "1 to 48 of A-Z a-z 0-9 . _ - (not starting with a dot)." }
                    @if let Some(e) = err("name") { small.error { (e) } }
                }
                fieldset {
                    legend { "Replication environment (destination)" }
                    div.field {
                        label for="dest_type" { "Kind" }
                        select id="dest_type" name="dest_type" {
                            @for k in ["sqlite", "jsonl", "parquet", "postgres"] {
                                option value=(k) selected[f.dest_type == k] { (k) }
                            }
                        }
                    }
                    div.field {
                        label for="dest_path" { "Path or URL" }
                        input id="dest_path" name="dest_path" type="text" value=(f.dest_path) autocomplete="off"
                            aria-describedby="dest-desc" aria-invalid=[err("destination").map(|_| "true")];
                        small.hint id="dest-desc" { "A path under the server's data directory (default: the connection name + .db), or a Postgres URL without a password." }
                        @if let Some(e) = err("destination") { small.error { (e) } }
                    }
                }
            }
            section aria-labelledby="connect-h" {
                h2 id="connect-h" { "Connect" }
                div.import {
                    label for="ionapi" { "Import .ionapi" }
                    input id="ionapi" name="ionapi" type="file" accept=".ionapi,application/json";
                    button type="submit" name="action" value="import" { "Import" }
                    @if f.imported { p role="status" { "Imported: the credentials below were filled in (secrets are kept on the server)." } }
                }
                (schema_form::render(plugin.connection_form(), &f.values, &schema_form::Shown { errors: &f.errors, kept: &kept }))
            }
            details.advanced open[err("page_size").is_some() || err("quota").is_some()] {
                summary { "Advanced" }
                div.field {
                    label for="page_size" { "Page size (records per request)" }
                    input id="page_size" name="page_size" type="number" min="1" step="1" value=(f.page_size)
                        aria-invalid=[err("page_size").map(|_| "true")];
                    @if let Some(e) = err("page_size") { small.error { (e) } }
                }
                div.field {
                    label for="quota" { "Quota" }
                    input id="quota" name="quota" type="text" value=(f.quota) placeholder="1000/60" aria-describedby="quota-desc"
                        aria-invalid=[err("quota").map(|_| "true")];
                    small.hint id="quota-desc" { "The tenant's quota for this app: N/SECONDS, or none." }
                    @if let Some(e) = err("quota") { small.error { (e) } }
                }
            }
            div id="test-result" aria-live="polite" {
                @if let Some(t) = &f.test {
                    @if t.success {
                        div.result.ok role="status" data-test="passed" {
                            strong { "Connection test passed. " } (t.message)
                        }
                    } @else {
                        div.result.fail role="alert" data-test="failed" data-failed-part=[t.failed_part.as_deref()] {
                            strong { "Connection test failed"
                                @if let Some(p) = &t.failed_part { " at the " span.part { (p) } " step" } ". " }
                            (t.message)
                        }
                    }
                }
            }
            div.actions {
                button type="submit" name="action" value="test" { "Test Connection" }
                @if adding {
                    button.primary type="submit" name="action" value="create" disabled[!f.tested]
                        aria-describedby="create-desc" { "Create" }
                    small.hint id="create-desc" { "Create is enabled once a test of the values shown has passed." }
                } @else {
                    button.primary type="submit" name="action" value="save" { "Save" }
                    small.hint { "Secrets left empty keep their stored value; changed values are tested again before they are saved." }
                }
            }
        }
    }
}

fn find_plugin(st: &AppState, id: &str) -> Option<std::sync::Arc<LoadedPlugin>> {
    st.registry.get(id).cloned()
}

/// `GET /console/connections/new/{connector}`.
pub async fn new_form(
    State(st): State<AppState>,
    session: Session,
    Path(connector): Path<String>,
) -> Response {
    let Some(plugin) = find_plugin(&st, &connector) else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connector.");
    };
    // A fresh form: nothing typed before is kept.
    let d = Draft {
        form: format!("new:{connector}"),
        ..Draft::default()
    };
    save_draft(&session, &d).await;
    let frame = Frame::signed_in("Add connection", &session).await;
    let f = FormPage {
        dest_type: "sqlite".into(),
        values: json!({}),
        ..FormPage::default()
    };
    let body = form_page(&plugin, &d, frame.csrf.as_deref().unwrap_or_default(), &f);
    page::render(StatusCode::OK, &frame, body)
}

/// The posted fields (url-encoded or multipart) and the uploaded `.ionapi` text.
async fn posted(headers: &HeaderMap, body: Bytes) -> (HashMap<String, String>, Option<String>) {
    let mut fields = HashMap::new();
    let mut file = None;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Ok(boundary) = multer::parse_boundary(ct) {
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        let mut parts = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = parts.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let Ok(text) = field.text().await else {
                continue;
            };
            if name == "ionapi" && is_file {
                if !text.is_empty() {
                    file = Some(text);
                }
            } else {
                fields.insert(name, text);
            }
        }
    } else {
        fields = form_urlencoded::parse(&body).into_owned().collect();
    }
    (fields, file)
}

fn field(fields: &HashMap<String, String>, k: &str) -> String {
    fields
        .get(k)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn destination_of(fields: &HashMap<String, String>) -> Result<Option<DestinationConfig>, String> {
    let kind = field(fields, "dest_type");
    let target = field(fields, "dest_path");
    if target.is_empty() && (kind.is_empty() || kind == "sqlite") {
        return Ok(None);
    }
    let v = if kind == "postgres" {
        json!({"type": kind, "url": target})
    } else {
        json!({"type": kind, "path": target})
    };
    serde_json::from_value(v).map_err(|e| format!("not a destination: {e}"))
}

/// The API's field errors as the form's (`values.credentials.x` → `credentials.x`).
fn api_errors(e: &ApiError, f: &mut FormPage) {
    if e.body.fields.is_empty() {
        f.problems.push(e.body.message.clone());
    }
    for p in &e.body.fields {
        let k = p.field.strip_prefix("values.").unwrap_or(&p.field);
        let k = if k == "values" { "" } else { k };
        let k = k
            .split('.')
            .next()
            .filter(|h| *h == "destination")
            .unwrap_or(k);
        f.errors.insert(k.to_string(), p.reason.clone());
    }
}

/// `POST /console/connections/new/{connector}`: `action` = `import`, `test` or `create`.
pub async fn new_submit(
    State(st): State<AppState>,
    session: Session,
    Path(connector): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(plugin) = find_plugin(&st, &connector) else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connector.");
    };
    let form = plugin.connection_form();
    let (fields, file) = posted(&headers, body).await;
    let mut d = draft(&session, &format!("new:{connector}")).await;
    let action = field(&fields, "action");
    let mut f = FormPage {
        name: field(&fields, "name"),
        dest_type: field(&fields, "dest_type"),
        dest_path: field(&fields, "dest_path"),
        page_size: field(&fields, "page_size"),
        quota: field(&fields, "quota"),
        ..FormPage::default()
    };
    let secret_paths = schema_form::secret_paths(form);
    // Secrets typed now replace those kept.
    for p in &secret_paths {
        let typed = field(&fields, &format!("{}{p}", schema_form::PREFIX));
        if !typed.is_empty() {
            d.secrets.insert(p.clone(), typed);
        }
    }
    let mut fields = fields;
    if action == "import" {
        match file.as_deref().map(ionapi::import) {
            None => f
                .problems
                .push("Choose an .ionapi file to import first.".into()),
            Some(i) if i.block.is_none() => f.problems.extend(i.problems),
            Some(i) => {
                f.imported = true;
                for (k, v) in i.block.into_iter().flatten() {
                    let path = format!("credentials.{k}");
                    let text = v.as_str().unwrap_or_default().to_string();
                    if secret_paths.contains(&path) {
                        d.secrets.insert(path, text);
                    } else {
                        fields.insert(format!("{}{path}", schema_form::PREFIX), text);
                    }
                }
            }
        }
    }
    let kept = |p: &str| d.secrets.get(p).cloned();
    let (values, read_errors) = schema_form::read(form, &fields, &kept);
    f.errors = read_errors;
    let hash = values_hash(&connector, &values);
    match action.as_str() {
        "test" if f.errors.is_empty() => {
            let r = api::test_values(
                State(st.clone()),
                Body(api::TestValues {
                    connector: connector.clone(),
                    values: values.clone(),
                }),
            )
            .await;
            match r {
                Ok(axum::Json(report)) => {
                    d.tested = report.success.then(|| hash.clone());
                    f.test = Some(report);
                }
                Err(e) => {
                    d.tested = None;
                    api_errors(&e, &mut f);
                }
            }
        }
        "create" if f.errors.is_empty() => {
            if d.tested.as_deref() != Some(hash.as_str()) {
                f.problems.push(
                    "Test the connection with these values first: Create needs a passing test of the values shown."
                        .into(),
                );
            } else {
                match create(&st, &connector, &values, &fields).await {
                    Ok(name) => {
                        let _ = session.remove::<Draft>(DRAFT).await;
                        return see_other(&format!("/connections/{name}"));
                    }
                    Err(e) => api_errors(&e, &mut f),
                }
            }
        }
        _ => {}
    }
    f.tested = d.tested.as_deref() == Some(hash.as_str());
    save_draft(&session, &d).await;
    // Shown without secrets: the renderer never fills a password input anyway.
    f.values = ionport_core::form_values::masked(form, &values);
    let status = if f.problems.is_empty() && f.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let frame = Frame::signed_in("Add connection", &session).await;
    let body = form_page(&plugin, &d, frame.csrf.as_deref().unwrap_or_default(), &f);
    page::render(status, &frame, body)
}

fn options_of(fields: &HashMap<String, String>) -> Result<(Option<u32>, Option<String>), ApiError> {
    let ps = field(fields, "page_size");
    let page_size =
        if ps.is_empty() {
            None
        } else {
            Some(ps.parse::<u32>().map_err(|_| {
                ApiError::field("page_size", format!("'{ps}' is not a whole number"))
            })?)
        };
    let q = field(fields, "quota");
    Ok((page_size, (!q.is_empty()).then_some(q)))
}

async fn create(
    st: &AppState,
    connector: &str,
    values: &Value,
    fields: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let destination = destination_of(fields).map_err(|e| ApiError::field("destination", e))?;
    let (page_size, quota) = options_of(fields)?;
    let name = field(fields, "name");
    let _created = api::create(
        State(st.clone()),
        Body(api::CreateConnection {
            name: name.clone(),
            connector: connector.to_string(),
            values: values.clone(),
            tasks: None,
            destination,
            page_size,
            quota,
        }),
    )
    .await?;
    Ok(name)
}

async fn record(st: &AppState, name: &str) -> Option<ConnectionRecord> {
    st.store.lock().await.get(name).cloned()
}

fn destination_fields(d: &DestinationConfig) -> (String, String) {
    match d {
        DestinationConfig::Sqlite { path }
        | DestinationConfig::Parquet { path }
        | DestinationConfig::Jsonl { path } => (d.kind().into(), path.display().to_string()),
        DestinationConfig::Postgres { url, .. } => ("postgres".into(), url.clone()),
    }
}

/// `GET /console/connections/{name}/edit`.
pub async fn edit_form(
    State(st): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Response {
    let Some(r) = record(&st, &name).await else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connection.");
    };
    let Some(plugin) = find_plugin(&st, &r.connector) else {
        return page::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Its connector is not loaded.",
        );
    };
    let d = Draft {
        form: format!("edit:{name}"),
        ..Draft::default()
    };
    save_draft(&session, &d).await;
    let (dest_type, dest_path) = destination_fields(&r.destination);
    let f = FormPage {
        editing: Some(name.clone()),
        name: name.clone(),
        dest_type,
        dest_path,
        page_size: r.page_size.map(|p| p.to_string()).unwrap_or_default(),
        quota: r.quota.clone().unwrap_or_default(),
        values: r.values.clone(),
        ..FormPage::default()
    };
    let frame = Frame::signed_in(format!("Edit {name}"), &session).await;
    let body = form_page(&plugin, &d, frame.csrf.as_deref().unwrap_or_default(), &f);
    page::render(StatusCode::OK, &frame, body)
}

/// The stored secrets of a connection by form path (the vault entry's).
fn stored_secrets(st: &AppState, r: &ConnectionRecord) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(e) = st.vault.get(&r.vault_entry()) {
        out.insert(
            "credentials.client_secret".into(),
            e.credentials.client_secret.expose_secret().to_string(),
        );
        if let Some(sa) = &e.credentials.service_account {
            out.insert(
                "credentials.password".into(),
                sa.secret_key.expose_secret().to_string(),
            );
        }
    }
    out
}

/// `POST /console/connections/{name}/edit`: `action` = `import`, `test` or `save`.
pub async fn edit_submit(
    State(st): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(r) = record(&st, &name).await else {
        return page::message(StatusCode::NOT_FOUND, "Not found", "No such connection.");
    };
    let Some(plugin) = find_plugin(&st, &r.connector) else {
        return page::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Its connector is not loaded.",
        );
    };
    let form = plugin.connection_form();
    let (mut fields, file) = posted(&headers, body).await;
    let mut d = draft(&session, &format!("edit:{name}")).await;
    let action = field(&fields, "action");
    let (dest_type, dest_path) = (field(&fields, "dest_type"), field(&fields, "dest_path"));
    let mut f = FormPage {
        editing: Some(name.clone()),
        name: name.clone(),
        dest_type,
        dest_path,
        page_size: field(&fields, "page_size"),
        quota: field(&fields, "quota"),
        ..FormPage::default()
    };
    let secret_paths = schema_form::secret_paths(form);
    for p in &secret_paths {
        let typed = field(&fields, &format!("{}{p}", schema_form::PREFIX));
        if !typed.is_empty() {
            d.secrets.insert(p.clone(), typed);
        }
    }
    if action == "import" {
        match file.as_deref().map(ionapi::import) {
            None => f
                .problems
                .push("Choose an .ionapi file to import first.".into()),
            Some(i) if i.block.is_none() => f.problems.extend(i.problems),
            Some(i) => {
                f.imported = true;
                for (k, v) in i.block.into_iter().flatten() {
                    let path = format!("credentials.{k}");
                    let text = v.as_str().unwrap_or_default().to_string();
                    if secret_paths.contains(&path) {
                        d.secrets.insert(path, text);
                    } else {
                        fields.insert(format!("{}{path}", schema_form::PREFIX), text);
                    }
                }
            }
        }
    }
    // An empty secret keeps what was typed or imported, else the stored value.
    let stored = stored_secrets(&st, &r);
    let kept = |p: &str| d.secrets.get(p).or_else(|| stored.get(p)).cloned();
    let (values, read_errors) = schema_form::read(form, &fields, &kept);
    f.errors = read_errors;
    if f.errors.is_empty() {
        match action.as_str() {
            "test" => {
                match api::test_values(
                    State(st.clone()),
                    Body(api::TestValues {
                        connector: r.connector.clone(),
                        values: values.clone(),
                    }),
                )
                .await
                {
                    Ok(axum::Json(report)) => f.test = Some(report),
                    Err(e) => api_errors(&e, &mut f),
                }
            }
            "save" => {
                let update = match (destination_of(&fields), options_of(&fields)) {
                    (Err(e), _) => Err(ApiError::field("destination", e)),
                    (_, Err(e)) => Err(e),
                    (Ok(destination), Ok((page_size, quota))) => {
                        api::update(
                            State(st.clone()),
                            Path(name.clone()),
                            Body(api::UpdateConnection {
                                values: Some(values.clone()),
                                tasks: None,
                                destination,
                                page_size,
                                quota,
                            }),
                        )
                        .await
                    }
                };
                match update {
                    Ok(_) => {
                        let _ = session.remove::<Draft>(DRAFT).await;
                        return see_other(&format!("/connections/{name}"));
                    }
                    Err(e) => {
                        if let Some(t) = e.body.test.clone() {
                            f.test = Some(t);
                        } else {
                            api_errors(&e, &mut f);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    save_draft(&session, &d).await;
    f.values = ionport_core::form_values::masked(form, &values);
    let status = if f.problems.is_empty() && f.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let frame = Frame::signed_in(format!("Edit {name}"), &session).await;
    let body = form_page(&plugin, &d, frame.csrf.as_deref().unwrap_or_default(), &f);
    page::render(status, &frame, body)
}

/// `POST /console/connections/{name}/delete`.
pub async fn delete(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    match api::delete(State(st), Path(name)).await {
        Ok(_) => see_other("/connections"),
        Err(e) => page::message(e.status, "Not deleted", &e.body.message),
    }
}
