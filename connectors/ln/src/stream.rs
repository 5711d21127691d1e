//! An LN entity set as a sorted stream of the SDK ([`SortedStream`]): key-ordered OData
//! queries, incremental by `$filter` on the last-modified property, resumed with `key gt
//! after`. The SDK owns the loop (high-water mark first, `@odata.nextLink` followed,
//! `$top`/`$skip` windows in flight, a checkpoint after every page, smaller pages on
//! timeouts); this file says what LN's requests and answers look like.
//!
//! The state is the SDK's [`ionport_plugin_sdk::stream::SortedState`], the shape this
//! connector always checkpointed (`cursor`, and during a read `mode`, `next_cursor`,
//! `after`); with several companies, the SDK's partitioned state under `companies`.

use ionport_infor_odata::{self as odata, Page};
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::stream::{Answer, SortedPage, SortedQuery, SortedStream};
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

impl SortedStream<LnSettings> for Target {
    fn name(&self) -> &str {
        &self.stream
    }

    fn what(&self) -> String {
        format!("LN {}/{}", self.service, self.entity_set)
    }

    fn key(&self) -> &[String] {
        &self.keys
    }

    fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    fn page_size(&self) -> u32 {
        DEFAULT_PAGE_SIZE
    }

    fn request(
        &self,
        settings: &LnSettings,
        q: &SortedQuery<'_>,
    ) -> Result<GatewayRequest, ConnectorError> {
        let mut req = GatewayRequest::get(self.path());
        if let Some(f) = self.filter(q.since, q.after) {
            req = req.query("$filter", f);
        }
        if !self.keys.is_empty() {
            req = req.query("$orderby", self.keys.join(","));
        }
        if let Some(cols) = &self.select {
            req = req.query("$select", cols.join(","));
        }
        let mut req = with_headers(req, settings);
        if let Some(skip) = q.window {
            req = req.query("$top", q.size.to_string());
            if skip > 0 {
                req = req.query("$skip", skip.to_string());
            }
        }
        Ok(prefer(req, q.size))
    }

    fn follow(
        &self,
        settings: &LnSettings,
        next: &str,
        size: u32,
    ) -> Result<GatewayRequest, ConnectorError> {
        let req = odata::next_link_request(next, &self.path())?;
        Ok(prefer(with_headers(req, settings), size))
    }

    fn high_water(&self, settings: &LnSettings, since: Option<&str>) -> Option<GatewayRequest> {
        let c = self.cursor.as_ref()?;
        let mut req = GatewayRequest::get(self.path());
        if let Some(f) = self.filter(since, None) {
            req = req.query("$filter", f);
        }
        let req = req
            .query("$orderby", format!("{c} desc"))
            .query("$top", "1")
            .query("$select", c.clone());
        Some(with_headers(req, settings))
    }

    fn parse(&self, answer: &Answer<'_>) -> Result<SortedPage, ConnectorError> {
        let page = Page::decode(answer.request, answer.response)?;
        Ok(SortedPage {
            records: page.value,
            next: page.next_link,
        })
    }

    fn status_error(&self, settings: &LnSettings, resp: &GatewayResponse) -> ConnectorError {
        status_error(
            &format!("{}/{}", self.service, self.entity_set),
            settings,
            resp,
        )
    }

    fn prepare(&self, settings: &LnSettings, record: &mut Map<String, Value>) {
        odata::strip_annotations(record);
        if let (true, Some(c)) = (self.fan_out, settings.company) {
            record.insert(COMPANY_FIELD.into(), c.into());
        }
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
