//! Adding a connection in Infor Data Hub's order (after the connector is chosen: Basics →
//! Connect, with Import .ionapi and Test Connection → Create) and editing one with the
//! same form (`form_page.rs`). Storing and testing are the JSON API's handlers, called as
//! services.
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
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use super::form_page::{FormPage, form_page};
use super::page::{self, Frame};
use super::{ionapi, schema_form, see_other};
use crate::serve::AppState;
use crate::serve::api::connections as api;
use crate::serve::error::{ApiError, Body};
use crate::serve::store::ConnectionRecord;

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

/// Secrets typed now replace those kept; an imported `.ionapi` file (`action` =
/// `import`) fills the credentials block: its secrets into the draft, the rest into the
/// posted fields, as if typed. Import problems are shown, key by key.
fn absorb(
    form: &Value,
    fields: &mut HashMap<String, String>,
    file: Option<&str>,
    action: &str,
    d: &mut Draft,
    f: &mut FormPage,
) {
    let secret_paths = schema_form::secret_paths(form);
    for p in &secret_paths {
        let typed = field(fields, &format!("{}{p}", schema_form::PREFIX));
        if !typed.is_empty() {
            d.secrets.insert(p.clone(), typed);
        }
    }
    if action != "import" {
        return;
    }
    match file.map(ionapi::import) {
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

/// The secret inputs whose empty value keeps a value the server holds: on edit every
/// secret (the stored one), when adding those typed or imported.
fn kept_paths(plugin: &LoadedPlugin, d: &Draft) -> BTreeSet<String> {
    if d.form.starts_with("edit:") {
        schema_form::secret_paths(plugin.connection_form())
            .into_iter()
            .collect()
    } else {
        d.secrets.keys().cloned().collect()
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
    let body = form_page(
        &plugin,
        &kept_paths(&plugin, &d),
        frame.csrf.as_deref().unwrap_or_default(),
        &f,
    );
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
        description: field(&fields, "description"),
        page_size: field(&fields, "page_size"),
        quota: field(&fields, "quota"),
        concurrency: field(&fields, "concurrency"),
        retries: field(&fields, "retries"),
        ..FormPage::default()
    };
    let mut fields = fields;
    absorb(form, &mut fields, file.as_deref(), &action, &mut d, &mut f);
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
    let body = form_page(
        &plugin,
        &kept_paths(&plugin, &d),
        frame.csrf.as_deref().unwrap_or_default(),
        &f,
    );
    page::render(status, &frame, body)
}

/// The Basics' description and the Advanced options as posted (an empty input: unset).
struct Posted {
    description: String,
    page_size: Option<u32>,
    quota: Option<String>,
    concurrency: Option<usize>,
    retries: Option<u32>,
}

fn number<T: std::str::FromStr>(
    fields: &HashMap<String, String>,
    k: &str,
) -> Result<Option<T>, ApiError> {
    let v = field(fields, k);
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<T>()
        .map(Some)
        .map_err(|_| ApiError::field(k, format!("'{v}' is not a whole number")))
}

fn options_of(fields: &HashMap<String, String>) -> Result<Posted, ApiError> {
    let q = field(fields, "quota");
    Ok(Posted {
        description: field(fields, "description"),
        page_size: number(fields, "page_size")?,
        quota: (!q.is_empty()).then_some(q),
        concurrency: number(fields, "concurrency")?,
        retries: number(fields, "retries")?,
    })
}

async fn create(
    st: &AppState,
    connector: &str,
    values: &Value,
    fields: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let destination = destination_of(fields).map_err(|e| ApiError::field("destination", e))?;
    let o = options_of(fields)?;
    let name = field(fields, "name");
    let _created = api::create(
        State(st.clone()),
        Body(api::CreateConnection {
            name: name.clone(),
            connector: connector.to_string(),
            values: values.clone(),
            tasks: None,
            destination,
            description: (!o.description.is_empty()).then_some(o.description),
            page_size: o.page_size,
            quota: o.quota,
            concurrency: o.concurrency,
            retries: o.retries,
            // The console does not offer it: in process unless the server isolates.
            isolation: None,
        }),
    )
    .await?;
    Ok(name)
}

/// A stored connection and its loaded connector, or the 404 page that says which is
/// missing.
async fn record_and_plugin(
    st: &AppState,
    name: &str,
) -> Result<(ConnectionRecord, std::sync::Arc<LoadedPlugin>), Response> {
    let Some(r) = st
        .store
        .lock()
        .await
        .get(&crate::serve::workspaces::current(), name)
        .cloned()
    else {
        return Err(page::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such connection.",
        ));
    };
    let Some(plugin) = find_plugin(st, &r.connector) else {
        return Err(page::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Its connector is not loaded.",
        ));
    };
    Ok((r, plugin))
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
    let (r, plugin) = match record_and_plugin(&st, &name).await {
        Ok(found) => found,
        Err(page) => return page,
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
        description: r.description.clone().unwrap_or_default(),
        page_size: r.page_size.map(|p| p.to_string()).unwrap_or_default(),
        quota: r.quota.clone().unwrap_or_default(),
        concurrency: r.concurrency.map(|n| n.to_string()).unwrap_or_default(),
        retries: r.retries.map(|n| n.to_string()).unwrap_or_default(),
        values: r.values.clone(),
        ..FormPage::default()
    };
    let frame = Frame::signed_in(format!("Edit {name}"), &session).await;
    let body = form_page(
        &plugin,
        &kept_paths(&plugin, &d),
        frame.csrf.as_deref().unwrap_or_default(),
        &f,
    );
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
    let (r, plugin) = match record_and_plugin(&st, &name).await {
        Ok(found) => found,
        Err(page) => return page,
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
        description: field(&fields, "description"),
        page_size: field(&fields, "page_size"),
        quota: field(&fields, "quota"),
        concurrency: field(&fields, "concurrency"),
        retries: field(&fields, "retries"),
        ..FormPage::default()
    };
    absorb(form, &mut fields, file.as_deref(), &action, &mut d, &mut f);
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
                    (Ok(destination), Ok(o)) => {
                        api::update(
                            State(st.clone()),
                            Path(name.clone()),
                            Body(api::UpdateConnection {
                                values: Some(values.clone()),
                                tasks: None,
                                destination,
                                // Empty: the description is removed.
                                description: Some(o.description),
                                page_size: o.page_size,
                                quota: o.quota,
                                concurrency: o.concurrency,
                                retries: o.retries,
                                // Kept as it is (the console does not offer it).
                                isolation: None,
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
    let body = form_page(
        &plugin,
        &kept_paths(&plugin, &d),
        frame.csrf.as_deref().unwrap_or_default(),
        &f,
    );
    page::render(status, &frame, body)
}
