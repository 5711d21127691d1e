//! The Infor LN connector.
//!
//! Reads LN through its OData v4 services over the ION API Gateway
//! (`LN/lnapi/odata/{module}.{Service}/{EntitySet}`): business partners, sales orders and
//! items, paged by `@odata.nextLink` (or `$top`/`$skip` over a stable `$orderby`), for the
//! company in `X-Infor-LnCompany`, incremental by `$filter` on the last-modified time.
//! Any other entity set of a configured service can be read as a stream named
//! `{module}.{Service}/{EntitySet}` (see `docs/connectors.md`).
//!
//! What it is not: an HTTP client. Every call goes through the host's gateway; this crate
//! never sees a secret.

mod check;
mod form;
mod stream;
mod tasks;

use ionport_plugin_sdk::columns;
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::stream::{Partition, read_keyed, read_partitioned};
use serde::Deserialize;
use serde_json::Value;

pub use stream::{Paging, Target};

fn default_language() -> String {
    "en-US".into()
}

/// The connection's settings as the connector receives them (the form minus credentials).
#[derive(Debug, Clone, Deserialize)]
pub struct LnSettings {
    /// `X-Infor-LnCompany`; `None` for the service user's default company.
    #[serde(default)]
    pub company: Option<u16>,
    /// Several companies, each read for every task (`X-Infor-LnCompany` per request), every
    /// record with its `company`; excludes `company`.
    #[serde(default)]
    pub companies: Option<Vec<u16>>,
    /// `Content-Language`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Services that `discover` lists.
    #[serde(default)]
    pub services: Vec<String>,
    /// How pages are asked for, unless the read's `paging` option says.
    #[serde(default)]
    pub paging: Paging,
}

impl LnSettings {
    /// Parses the settings of a connection.
    pub fn from_connection(c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        let v = if c.settings.is_null() {
            Value::Object(Default::default())
        } else {
            c.settings.clone()
        };
        let s: Self = serde_json::from_value(v).map_err(|e| {
            ConnectorError::invalid_input(format!("the LN connection settings are invalid: {e}"))
        })?;
        s.check_companies()?;
        Ok(s)
    }

    /// The form says the same for a connection that went through it; a request built by
    /// hand did not.
    fn check_companies(&self) -> Result<(), ConnectorError> {
        let bad = |why: String| {
            Err(ConnectorError::invalid_input(format!(
                "the LN connection settings are invalid: {why}"
            )))
        };
        let Some(list) = &self.companies else {
            return Ok(());
        };
        if self.company.is_some() {
            return bad(
                "company and companies exclude each other: set company for one LN company, \
                 or companies for several, not both"
                    .into(),
            );
        }
        if list.is_empty() {
            return bad(
                "companies is empty: list at least one LN company (0-9999), or leave \
                        it out for the service user's default company"
                    .into(),
            );
        }
        for (i, c) in list.iter().enumerate() {
            if *c > 9999 {
                return bad(format!("companies[{i}] is {c}: an LN company is 0-9999"));
            }
            if list[..i].contains(c) {
                return bad(format!("companies lists company {c} twice"));
            }
        }
        Ok(())
    }

    /// The companies of a fan-out read, when the connection lists several.
    pub fn fan_out(&self) -> Option<&[u16]> {
        self.companies.as_deref()
    }

    /// These settings for one company of the list.
    pub fn for_company(&self, company: u16) -> Self {
        Self {
            company: Some(company),
            companies: None,
            ..self.clone()
        }
    }

    /// One settings per company to ask: each listed company, or the one configured (or the
    /// service user's default).
    pub fn each_company(&self) -> Vec<Self> {
        match self.fan_out() {
            Some(list) => list.iter().map(|c| self.for_company(*c)).collect(),
            None => vec![self.clone()],
        }
    }

    /// The services to discover: the configured ones, else those of the predefined tasks.
    pub fn services(&self) -> Vec<String> {
        if self.services.is_empty() {
            let mut v: Vec<String> = tasks::LN_TASKS
                .iter()
                .map(|t| t.service.to_string())
                .collect();
            v.dedup();
            v
        } else {
            self.services.clone()
        }
    }
}

/// Whether `name` has the shape of a non-predefined stream: `module.Service/EntitySet`.
fn parse_stream(name: &str) -> Option<(&str, &str)> {
    let (service, set) = name.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    (ok(service) && service.contains('.') && ok(set) && !set.contains('.'))
        .then_some((service, set))
}

/// Where `req` reads. With several companies the stream's `company` field is the
/// connector's own, not an OData property: it is never asked for (`$select`) nor ordered by.
fn target_of(req: &ReadRequest, fan_out: bool) -> Result<Target, ConnectorError> {
    let mut target = target_of_task(req, fan_out)?;
    if fan_out {
        let own = |c: &String| c != tasks::COMPANY_FIELD;
        target.keys.retain(own);
        if let Some(cols) = &mut target.select {
            cols.retain(own);
        }
    }
    Ok(target)
}

fn target_of_task(req: &ReadRequest, fan_out: bool) -> Result<Target, ConnectorError> {
    if let Some(t) = tasks::task(&req.task) {
        let schema = tasks::spec(t).record_schema;
        // `company` (several companies) is in the host's selection as part of the key.
        let offered: Vec<&str> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(fan_out.then_some(tasks::COMPANY_FIELD))
            .collect();
        let keep: Vec<&str> = t.key.iter().copied().chain([t.cursor]).collect();
        return Ok(Target {
            stream: t.name.into(),
            service: t.service.into(),
            entity_set: t.entity_set.into(),
            keys: t.key.iter().map(|k| (*k).to_string()).collect(),
            cursor: Some(t.cursor.into()),
            select: columns::select(req, &offered, &keep)?,
            fan_out,
        });
    }
    let Some((service, set)) = parse_stream(&req.task) else {
        return Err(ConnectorError::invalid_input(format!(
            "infor-ln has no task '{}': use a predefined task or a stream named module.Service/EntitySet",
            req.task
        )));
    };
    let strings = |name: &str| -> Option<Vec<String>> {
        match req.options.get(name)? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        }
    };
    let predefined = tasks::task_for(service, set);
    let keys: Vec<String> = strings("key")
        .or_else(|| predefined.map(|t| t.key.iter().map(|k| (*k).to_string()).collect()))
        .unwrap_or_default();
    let cursor = strings("cursor_field")
        .and_then(|v| v.into_iter().next())
        .or_else(|| predefined.map(|t| t.cursor.to_string()));
    // The host checked the selection against the discovered schema; the keys order the
    // pages and the cursor bounds them, so both are asked for whatever is selected.
    let keep: Vec<&str> = keys.iter().chain(&cursor).map(String::as_str).collect();
    let select = columns::requested(req, &keep);
    Ok(Target {
        stream: req.task.clone(),
        service: service.into(),
        entity_set: set.into(),
        keys,
        cursor,
        select,
        fan_out,
    })
}

/// The LN connector.
#[derive(Debug, Default)]
pub struct LnConnector;

impl Connector for LnConnector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "infor-ln".into(),
            name: "Infor LN".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Infor LN through its OData v4 services on the ION API Gateway: business \
                          partners, sales orders and items of one LN company (or several, each \
                          record with its company), incremental on the \
                          last-modified time."
                .into(),
        }
    }

    fn connection_form(&self) -> serde_json::Value {
        form::schema()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        tasks::predefined()
    }

    fn accepts_stream(&self, name: &str) -> bool {
        parse_stream(name).is_some()
    }

    fn stream_names(&self) -> Option<StreamNames> {
        Some(StreamNames {
            pattern: r"^[A-Za-z0-9_.]*\.[A-Za-z0-9_.]*/[A-Za-z0-9_]+$".into(),
            form: "module.Service/EntitySet, an LN OData entity set (e.g. \
                   tcapi.comBusinessPartner/BusinessPartners)"
                .into(),
        })
    }

    fn check(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<CheckReport, ConnectorError> {
        check::check(host, connection)
    }

    fn discover(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        check::discover(host, connection)
    }

    fn read(&self, host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
        let settings = LnSettings::from_connection(&req.connection)?;
        let target = target_of(req, settings.fan_out().is_some())?;
        match settings.fan_out() {
            // Each company read on its own (its header, high-water mark, key paging),
            // into one stream whose records carry their company; a state per company.
            Some(list) => {
                let parts: Vec<Partition<u16, LnSettings>> = list
                    .iter()
                    .map(|&c| {
                        let settings = settings.for_company(c);
                        let label = stream::company_text(&settings);
                        Partition {
                            id: c,
                            settings,
                            label,
                        }
                    })
                    .collect();
                read_partitioned(&target, host, req, "companies", &parts)
            }
            None => read_keyed(&target, host, &settings, req),
        }
    }
}

export_connector!(LnConnector);
