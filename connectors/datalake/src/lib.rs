//! The Infor Data Lake connector.
//!
//! Reads tables replicated to Infor Data Lake through Compass SQL jobs (submit, poll,
//! page through NDJSON results) and discovers objects and their schemas in the Data
//! Catalog; incremental by `infor.lastmodified()`. Any catalog object can be read as a
//! stream named like the object (e.g. `OCUSMA`); `options.where` adds a SQL condition.
//!
//! What it is not: an HTTP client. Every call goes through the host's gateway; this crate
//! never sees a secret.

mod compass;
mod form;
mod read;
mod stamp;
mod tasks;

use std::time::Duration;

use ionport_plugin_sdk::DELETED_FIELD_KEY;
use ionport_plugin_sdk::check::{failed, failed_with, passed, unanswered_with};
use ionport_plugin_sdk::columns;
use ionport_plugin_sdk::decode::error_message;
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::retry::{Fetched, RetryPolicy, fetch_decoded};
use ionport_plugin_sdk::schema::sync_modes;
use ionport_plugin_sdk::stream::wait_for_job;
use serde::Deserialize;
use serde_json::{Value, json};

pub use read::Target;

/// The connection's settings as the connector receives them.
#[derive(Debug, Clone, Deserialize)]
pub struct DlSettings {
    /// Rows per result page.
    #[serde(default = "form::default_page_rows")]
    pub page_rows: u32,
    /// How long to wait for a query, in seconds.
    #[serde(default = "form::default_max_wait")]
    pub query_timeout_secs: u32,
    /// How far before a job's submission its incremental cursor is set, in seconds.
    #[serde(default = "form::default_ingestion_lag")]
    pub ingestion_lag_secs: u64,
    /// Compass's base, relative to the API base.
    #[serde(default = "form::default_compass_base")]
    pub compass_base: String,
    /// The Data Catalog's base, relative to the API base.
    #[serde(default = "form::default_catalog_base")]
    pub catalog_base: String,
}

/// Compass's largest result page, in rows.
const MAX_PAGE_ROWS: u32 = 100_000;

impl DlSettings {
    /// Parses the settings of a connection.
    pub fn from_connection(c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        let v = if c.settings.is_null() {
            json!({})
        } else {
            c.settings.clone()
        };
        let s: Self = serde_json::from_value(v).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "the Data Lake connection settings are invalid: {e}"
            ))
        })?;
        // The form says the same; settings can also come from a caller that skipped it.
        if !(1..=MAX_PAGE_ROWS).contains(&s.page_rows) {
            return Err(ConnectorError::invalid_input(format!(
                "the Data Lake connection settings are invalid: page_rows is {}; Compass \
                 serves 1 to {MAX_PAGE_ROWS} rows per result page",
                s.page_rows
            )));
        }
        for (field, value) in [
            ("compass_base", &s.compass_base),
            ("catalog_base", &s.catalog_base),
        ] {
            if !form::is_relative_api_path(value) {
                return Err(ConnectorError::invalid_input(format!(
                    "the Data Lake connection settings are invalid: {field} {value:?} is not \
                     a path relative to the gateway's API base (segments of letters, digits, \
                     `_`, `-`, `.`; no scheme, no leading slash, no `..`), e.g. {:?}",
                    if field == "compass_base" {
                        form::DEFAULT_COMPASS_BASE
                    } else {
                        form::DEFAULT_CATALOG_BASE
                    }
                )));
            }
        }
        Ok(s)
    }

    /// Where the Data Catalog's objects are.
    fn catalog(&self) -> String {
        format!("{}/object", self.catalog_base)
    }
}

/// Catalog object names start with a letter (`OCUSMA`, `tccom100`, `M3_ITEMS.v2`).
fn is_object_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A catalog object's description.
#[derive(Debug, Clone)]
struct CatalogObject {
    name: String,
    schema: Value,
    key: Vec<String>,
    cursor: Option<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn catalog_object(
    host: &Host,
    settings: &DlSettings,
    name: &str,
) -> Result<Result<CatalogObject, GatewayResponse>, ConnectorError> {
    let what = format!("Data Catalog object {name}");
    let req = GatewayRequest::get(format!("{}/{name}", settings.catalog()))
        .header("Accept", "application/json");
    match fetch_decoded(host, &req, &what, &RetryPolicy::default(), |r| {
        r.json::<Value>(&what)
    })? {
        Fetched::Decoded(v) => {
            let schema = v
                .get("schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            let mut key = strings(v.get("primaryKey"));
            if key.is_empty() {
                key = strings(schema.get("x-primaryKey"));
            }
            let cursor = schema
                .get("x-lastModified")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(Ok(CatalogObject {
                name: v
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(name)
                    .to_string(),
                schema,
                key,
                cursor,
            }))
        }
        Fetched::Status(r) => Ok(Err(r)),
    }
}

fn stream_spec(o: &CatalogObject) -> TaskSpec {
    // The catalog names the object's deleted indicator (`x-deleted`): declared to the
    // host as the field that flags deleted records.
    let mut schema = o.schema.clone();
    if let Some(flag) = o.schema.get("x-deleted").and_then(Value::as_str)
        && let Some(s) = schema.as_object_mut()
    {
        s.insert(DELETED_FIELD_KEY.into(), flag.into());
    }
    TaskSpec {
        name: o.name.clone(),
        description: format!("Data Lake object {} by Compass SQL.", o.name),
        record_schema: schema,
        primary_key: o.key.clone(),
        cursor_field: o.cursor.clone(),
        sync_modes: sync_modes(o.cursor.as_deref()),
        requests_per_1000_records: None,
    }
}

fn target_of(
    host: &Host,
    settings: &DlSettings,
    req: &ReadRequest,
) -> Result<Target, ConnectorError> {
    if let Some(t) = tasks::by_task(&req.task) {
        let offered: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        let keep: Vec<&str> = t.key.iter().copied().chain([t.cursor]).collect();
        let columns = columns::select(req, &offered, &keep)?
            .unwrap_or_else(|| offered.iter().map(|c| (*c).to_string()).collect());
        return Ok(Target {
            stream: t.task.into(),
            table: t.table.into(),
            columns: Some(columns),
            cursor: Some(t.cursor.into()),
            include_deleted: req.include_deleted,
        });
    }
    if !is_object_name(&req.task) {
        return Err(ConnectorError::invalid_input(format!(
            "infor-datalake has no task '{}': use a predefined task or a Data Catalog object name",
            req.task
        )));
    }
    match catalog_object(host, settings, &req.task)? {
        Ok(o) => {
            // The key and the cursor are read whatever is selected (the destination
            // upserts on the key; the cursor is the incremental bound).
            let keep: Vec<&str> = o.key.iter().chain(&o.cursor).map(String::as_str).collect();
            let columns = match o.schema.get("properties").and_then(Value::as_object) {
                Some(props) => {
                    let offered: Vec<&str> = props.keys().map(String::as_str).collect();
                    columns::select(req, &offered, &keep)?
                }
                None => columns::requested(req, &keep),
            };
            Ok(Target {
                stream: req.task.clone(),
                table: o.name,
                columns,
                cursor: o.cursor,
                include_deleted: req.include_deleted,
            })
        }
        Err(r) if r.status == 404 => Err(ConnectorError::invalid_input(format!(
            "the Data Catalog has no object '{}' ({})",
            req.task,
            error_message(&r)
        ))),
        Err(r) => Err(ConnectorError::gateway(format!(
            "Data Catalog object {}: HTTP {}: {}",
            req.task,
            r.status,
            error_message(&r)
        ))),
    }
}

fn classify(resp: &GatewayResponse, what: &str) -> (&'static str, String) {
    let msg = error_message(resp);
    match resp.status {
        401 => (
            "token",
            format!(
                "The ION API Gateway refused the access token ({msg}). Check the client id and \
                 secret and the service-account keys of the connection (.ionapi file)."
            ),
        ),
        403 => (
            "rights",
            format!(
                "The service account may not use {what} ({msg}). Give its user a Data Fabric \
                 role (e.g. DATAFABRIC-User) or use another account."
            ),
        ),
        404 => (
            "product",
            format!(
                "{what} was not found on this tenant ({msg}). Check that Infor Data Fabric is \
                 part of the tenant."
            ),
        ),
        s => (
            "product",
            format!(
                "{what} answered HTTP {s}: {msg}. Data Fabric may be unavailable; try again later."
            ),
        ),
    }
}

fn list_catalog(
    host: &Host,
    settings: &DlSettings,
) -> Result<Result<Vec<Value>, GatewayResponse>, ConnectorError> {
    let what = "the Data Catalog";
    let req = GatewayRequest::get(format!("{}/list", settings.catalog()))
        .header("Accept", "application/json");
    match fetch_decoded(host, &req, what, &RetryPolicy::default(), |r| {
        r.json::<Value>(what)
    })? {
        Fetched::Decoded(v) => {
            let list = v
                .get("objects")
                .or_else(|| v.get("value"))
                .or_else(|| v.get("items"))
                .and_then(Value::as_array)
                .cloned()
                .or_else(|| v.as_array().cloned())
                .unwrap_or_default();
            Ok(Ok(list))
        }
        Fetched::Status(r) => Ok(Err(r)),
    }
}

fn object_name(o: &Value) -> Option<String> {
    o.get("name")
        .or_else(|| o.get("objectName"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The Data Lake connector.
#[derive(Debug, Default)]
pub struct DataLakeConnector;

impl Connector for DataLakeConnector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "infor-datalake".into(),
            name: "Infor Data Lake".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Infor Data Lake (Infor Data Fabric) through Compass SQL jobs and the Data \
                          Catalog on the ION API Gateway: the M3 and LN tables replicated to the \
                          lake, and any catalog object, incremental on infor.lastmodified()."
                    .into(),
        }
    }

    fn connection_form(&self) -> serde_json::Value {
        ionport_plugin_sdk::form::form_schema::<form::DataLakeConnectionForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        tasks::predefined()
    }

    fn accepts_stream(&self, name: &str) -> bool {
        is_object_name(name)
    }

    fn stream_names(&self) -> Option<StreamNames> {
        Some(StreamNames {
            pattern: "^[A-Za-z][A-Za-z0-9_.]{0,127}$".into(),
            form: "the name of a Data Catalog object (e.g. OCUSMA)".into(),
        })
    }

    fn check(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<CheckReport, ConnectorError> {
        let settings = match DlSettings::from_connection(connection) {
            Ok(s) => s,
            Err(e) => return Ok(failed("settings", e.message())),
        };
        let mut details = json!({});
        let objects = match list_catalog(host, &settings) {
            Err(e) => return unanswered_with(e, details),
            Ok(Err(r)) => {
                let (p, m) = classify(&r, "the Data Catalog");
                return Ok(failed_with(p, m, details));
            }
            Ok(Ok(list)) => list,
        };
        details["catalog_objects"] = objects.len().into();
        let Some(table) = objects.iter().find_map(object_name) else {
            return Ok(failed_with(
                "product",
                "The Data Catalog lists no objects: nothing has been replicated to the Data Lake yet.",
                details,
            ));
        };
        let sql = format!("SELECT * FROM {table} LIMIT 1");
        details["query"] = sql.clone().into();
        let what = "the connection test";
        let target = Target {
            stream: what.into(),
            table: table.clone(),
            columns: None,
            cursor: None,
            include_deleted: false,
        };
        let test = read::LakeRead {
            settings: &settings,
            target: &target,
            what: what.into(),
            extra: None,
            wait: Duration::from_secs(u64::from(settings.query_timeout_secs.clamp(1, 120))),
        };
        let outcome = compass::submit_job(host, &settings.compass_base, &sql, what)
            .and_then(|sub| wait_for_job(&test, host, &sub.id).map(|_| sub.id));
        match outcome {
            Ok(id) => {
                details["query_id"] = id.into();
                Ok(passed(
                    format!(
                        "Connected to Infor Data Lake: the Data Catalog lists {} objects and a Compass query on {table} finished.",
                        objects.len()
                    ),
                    details,
                ))
            }
            Err(e) if e.is_cancelled() || ionport_plugin_sdk::retry::is_auth_failure(&e) => {
                unanswered_with(e, details)
            }
            Err(e) => {
                let part = if e.message().contains("HTTP 403") {
                    "rights"
                } else {
                    "product"
                };
                Ok(failed_with(
                    part,
                    format!(
                        "The Data Catalog answers, but Compass did not run a trivial query: {}",
                        e.message()
                    ),
                    details,
                ))
            }
        }
    }

    fn discover(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        let settings = DlSettings::from_connection(connection)?;
        let objects = match list_catalog(host, &settings)? {
            Ok(list) => list,
            Err(r) => {
                return Err(ConnectorError::gateway(format!(
                    "the Data Catalog: HTTP {}: {}",
                    r.status,
                    error_message(&r)
                )));
            }
        };
        let mut streams = Vec::new();
        let mut names = Vec::new();
        for o in &objects {
            let Some(name) = object_name(o) else { continue };
            host.check_cancelled()?;
            names.push(name.clone());
            if let Some(t) = tasks::by_table(&name) {
                streams.push(DiscoveredStream {
                    spec: tasks::spec(t),
                    predefined: true,
                    available: true,
                    note: Some(format!("also readable as the stream {name}")),
                });
            }
            match catalog_object(host, &settings, &name)? {
                Ok(obj) => streams.push(DiscoveredStream {
                    spec: stream_spec(&obj),
                    predefined: false,
                    available: true,
                    note: None,
                }),
                Err(r) => streams.push(DiscoveredStream {
                    spec: TaskSpec {
                        name: name.clone(),
                        description: format!("Data Lake object {name}."),
                        record_schema: json!({"type": "object"}),
                        primary_key: Vec::new(),
                        cursor_field: None,
                        sync_modes: vec![SyncMode::FullRefresh],
                        requests_per_1000_records: None,
                    },
                    predefined: false,
                    available: false,
                    note: Some(format!(
                        "its schema could not be read: HTTP {}: {}",
                        r.status,
                        error_message(&r)
                    )),
                }),
            }
        }
        for t in tasks::TABLES {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(t.table)) {
                streams.push(DiscoveredStream {
                    spec: tasks::spec(t),
                    predefined: true,
                    available: false,
                    note: Some(format!("the Data Catalog has no object {}", t.table)),
                });
            }
        }
        Ok(Discovery {
            streams,
            details: json!({"catalog_objects": names}),
        })
    }

    fn read(&self, host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
        let settings = DlSettings::from_connection(&req.connection)?;
        let target = target_of(host, &settings, req)?;
        read::read(host, req, &settings, &target)
    }
}

export_connector!(DataLakeConnector);
