//! An LN entity set as a keyed stream of the SDK ([`KeyedStream`], listed after a key):
//! key-ordered OData queries, incremental by `$filter` on the last-modified property,
//! resumed with `key gt after`. The SDK owns the loop (high-water mark first,
//! `@odata.nextLink` followed, `$top`/`$skip` windows in flight, a checkpoint after every
//! page, smaller pages on timeouts, a partition of a full read as every Nth `$skip`
//! window); this file says what LN's requests and answers look like.
//!
//! The state is the SDK's [`ionport_plugin_sdk::stream::AfterKeyState`], the shape this
//! connector always checkpointed (`cursor`, and during a read `mode`, `next_cursor`,
//! `after`); with several companies, the SDK's partitioned state under `companies`.

use ionport_infor_odata::{self as odata, Page};
use ionport_plugin_sdk::key_ranges::KeyPage;
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::retry::{Fetched, RetryPolicy, fetch_decoded};
use ionport_plugin_sdk::stream::{
    KeyListing, KeyPaging, KeyStart, KeyedStream, PageAt, record_key,
};
use serde_json::{Map, Value};

use crate::LnSettings;
use crate::tasks::COMPANY_FIELD;

/// Default records per page.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// How to page: by the service's links, or by `$top`/`$skip` windows (which can be in
/// flight several at once).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Paging {
    /// Follow `@odata.nextLink`; fall back to `$top`/`$skip` when a full page has no link.
    #[default]
    Auto,
    /// `$top`/`$skip` from the start (still following links inside a `$top` window).
    Skip,
}

/// What to read: one entity set of one service.
#[derive(Debug, Clone)]
pub struct Target {
    /// Task (stream) name.
    pub stream: String,
    /// `module.Service`.
    pub service: String,
    /// Entity set.
    pub entity_set: String,
    /// Key properties (stable order); empty when unknown.
    pub keys: Vec<String>,
    /// Last-modified property, when the set has one.
    pub cursor: Option<String>,
    /// The properties to read (`$select`), keys and cursor included; `None`: all.
    pub select: Option<Vec<String>>,
    /// Read from several companies: every record gets its `company`.
    pub fan_out: bool,
}

impl Target {
    /// The relative path of the entity set.
    pub fn path(&self) -> String {
        format!("LN/lnapi/odata/{}/{}", self.service, self.entity_set)
    }
}

/// Common request headers for the configured company and language.
pub fn with_headers(mut req: GatewayRequest, settings: &LnSettings) -> GatewayRequest {
    if let Some(c) = settings.company {
        req = req.header("X-Infor-LnCompany", c.to_string());
    }
    req.header("Content-Language", settings.language.clone())
        .header("Accept", "application/json")
}

/// Describes the company for messages.
pub fn company_text(settings: &LnSettings) -> String {
    settings
        .company
        .map_or("the service user's default company".into(), |c| {
            format!("company {c}")
        })
}

fn prefer(req: GatewayRequest, size: u32) -> GatewayRequest {
    req.header("Prefer", format!("odata.maxpagesize={size}"))
}

impl KeyedStream<LnSettings> for Target {
    type Listing = Query;

    /// What a read needs of the spec: its name, key and cursor (the manifest's specs are
    /// `tasks.rs`'s and `discover`'s, with the record schemas).
    fn spec(&self) -> TaskSpec {
        let mut sync_modes = vec![SyncMode::FullRefresh];
        if self.cursor.is_some() {
            sync_modes.push(SyncMode::Incremental);
        }
        TaskSpec {
            name: self.stream.clone(),
            description: format!("LN {}/{}", self.service, self.entity_set),
            record_schema: serde_json::json!({"type": "object"}),
            primary_key: self.keys.clone(),
            cursor_field: self.cursor.clone(),
            sync_modes,
            requests_per_1000_records: Some(1000.0 / f64::from(DEFAULT_PAGE_SIZE)),
        }
    }

    fn page_size(&self) -> u32 {
        DEFAULT_PAGE_SIZE
    }

    /// The paging is the read's option `paging` (`auto`, `skip`), else the connection's.
    fn open(
        &self,
        _host: &Host,
        settings: &LnSettings,
        request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Query, ConnectorError> {
        let paging = match request.options.get("paging").and_then(Value::as_str) {
            None => settings.paging,
            Some("auto") => Paging::Auto,
            Some("skip") => Paging::Skip,
            Some(other) => {
                return Err(ConnectorError::invalid_input(format!(
                    "option paging '{other}' is neither 'auto' nor 'skip'"
                )));
            }
        };
        Ok(Query {
            target: self.clone(),
            settings: settings.clone(),
            since: since.and_then(Value::as_str).map(str::to_string),
            paging: match paging {
                Paging::Auto => KeyPaging::Links,
                Paging::Skip => KeyPaging::Windows,
            },
        })
    }
}

/// One read of an entity set: for one company, from one lower bound, paged one way.
#[derive(Debug)]
pub struct Query {
    target: Target,
    settings: LnSettings,
    /// The cursor's lower bound (`ge`).
    since: Option<String>,
    paging: KeyPaging,
}

/// A record (annotations dropped, its company added) and its key's values as JSON.
pub type Row = (Map<String, Value>, String);

impl Query {
    /// `request`'s answer as a page; a non-`2xx` answer is LN's error.
    fn fetch(&self, host: &Host, request: &GatewayRequest) -> Result<Page, ConnectorError> {
        let t = &self.target;
        let what = format!("LN {}/{}", t.service, t.entity_set);
        let fetched = fetch_decoded(host, request, &what, &RetryPolicy::default(), |resp| {
            Page::decode(request, resp)
        })?;
        match fetched {
            Fetched::Decoded(page) => Ok(page),
            Fetched::Status(resp) => Err(status_error(
                &format!("{}/{}", t.service, t.entity_set),
                &self.settings,
                &resp,
            )),
        }
    }

    /// The query's request for `at` (after its key, a window of it).
    fn request(&self, at: &PageAt<'_>) -> Result<GatewayRequest, ConnectorError> {
        let t = &self.target;
        let after: Option<Vec<Value>> = match at.key {
            Some(k) => Some(serde_json::from_str(k).map_err(|e| {
                ConnectorError::connector(format!("{}: the key {k:?} is not a key: {e}", t.stream))
            })?),
            None => None,
        };
        let mut req = GatewayRequest::get(t.path());
        if let Some(f) = t.filter(self.since.as_deref(), after.as_deref()) {
            req = req.query("$filter", f);
        }
        if !t.keys.is_empty() {
            req = req.query("$orderby", t.keys.join(","));
        }
        if let Some(cols) = &t.select {
            req = req.query("$select", cols.join(","));
        }
        let mut req = with_headers(req, &self.settings);
        if let Some(skip) = at.window {
            req = req.query("$top", at.size.to_string());
            if skip > 0 {
                req = req.query("$skip", skip.to_string());
            }
        }
        Ok(prefer(req, at.size))
    }
}

impl KeyListing for Query {
    type Row = Row;
    const START: KeyStart = KeyStart::AfterKey;

    fn paging(&self) -> KeyPaging {
        self.paging
    }

    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Row>, ConnectorError> {
        let t = &self.target;
        let request = match at.next {
            Some(next) => {
                let req = odata::next_link_request(next, &t.path())?;
                prefer(with_headers(req, &self.settings), at.size)
            }
            None => self.request(at)?,
        };
        let page = self.fetch(host, &request)?;
        let mut rows = Vec::with_capacity(page.value.len());
        for mut record in page.value {
            let key = if t.keys.is_empty() {
                String::new()
            } else {
                record_key(&record, &t.keys, &t.stream)?
            };
            odata::strip_annotations(&mut record);
            if let (true, Some(c)) = (t.fan_out, self.settings.company) {
                record.insert(COMPANY_FIELD.into(), c.into());
            }
            rows.push((record, key));
        }
        Ok(KeyPage {
            rows,
            asked: at.size,
            next: page.next_link,
        })
    }

    fn key<'r>(&self, row: &'r Row) -> &'r str {
        &row.1
    }

    fn ordered(&self) -> bool {
        !self.target.keys.is_empty()
    }

    fn high_water(&self, host: &Host) -> Result<Option<String>, ConnectorError> {
        let t = &self.target;
        let Some(c) = &t.cursor else {
            return Ok(None);
        };
        let mut req = GatewayRequest::get(t.path());
        if let Some(f) = t.filter(self.since.as_deref(), None) {
            req = req.query("$filter", f);
        }
        let req = req
            .query("$orderby", format!("{c} desc"))
            .query("$top", "1")
            .query("$select", c.clone());
        let page = self.fetch(host, &with_headers(req, &self.settings))?;
        Ok(page
            .value
            .first()
            .and_then(|r| r.get(c))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    fn write(
        &self,
        _host: &Host,
        row: &Row,
        out: &mut RecordWriter,
    ) -> Result<u64, ConnectorError> {
        out.push(&row.0)?;
        Ok(0)
    }
}

impl Target {
    /// The `$filter` of a query from `lower` (cursor `ge`) and after the key `after`.
    fn filter(&self, lower: Option<&str>, after: Option<&[Value]>) -> Option<String> {
        let mut parts = Vec::new();
        if let (Some(c), Some(l)) = (&self.cursor, lower) {
            parts.push(format!("{c} ge {l}"));
        }
        if let Some(a) = after {
            let lits: Vec<String> = a.iter().map(|v| odata::literal(v, false)).collect();
            if let Some(k) = odata::keyset_after(&self.keys, &lits) {
                parts.push(if parts.is_empty() {
                    k
                } else {
                    format!("({k})")
                });
            }
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }
}

/// An error for a non-2xx answer about `target`.
pub fn status_error(target: &str, settings: &LnSettings, resp: &GatewayResponse) -> ConnectorError {
    let msg = odata::error_message(resp);
    let hint = match resp.status {
        401 => " (the gateway refused the token: check the connection's credentials)",
        403 => " (the service account lacks the rights for this LN service)",
        404 => " (no such service or entity set on this tenant)",
        _ => "",
    };
    let message = format!(
        "LN {target} ({}): HTTP {}: {msg}{hint}",
        company_text(settings),
        resp.status
    );
    // A stream whose service or entity set the tenant does not have is the user's
    // configuration, not a gateway failure (Airbyte: config_error).
    if resp.status == 404 {
        ConnectorError::invalid_input(message)
    } else {
        ConnectorError::gateway(message)
    }
}
