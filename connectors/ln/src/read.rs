//! Reading one LN entity set: key-ordered OData queries paged by `@odata.nextLink` (or
//! `$top`/`$skip` when the service gives no link), incremental by `$filter` on the
//! last-modified property, checkpointed after every page. How the pages of a query are
//! fetched (links one by one, `$skip` windows several at once) is `pages.rs`.
//!
//! The state (JSON):
//! - complete: `{"cursor": "2026-…Z"}` — the next incremental read asks for
//!   `LastModifiedDateTime ge cursor` (records equal to the cursor come again; the
//!   destination de-duplicates by primary key);
//! - during a read: also `"mode"`, `"next_cursor"` (the high-water mark taken when the read
//!   started) and `"after"` (the key of the last record emitted): a restart resumes with
//!   `key gt after` and repeats nothing.
//!
//! Why key order and a high-water mark taken first: key order is what the service pages
//! cheaply and stably, and a record changed while the read runs gets a stamp above the
//! mark, so the next incremental read sees it even when its key was already passed.

use ionport_infor_odata::{self as odata, Page};
use ionport_plugin_sdk::inflight;
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::retry::{Fetched, RetryPolicy, fetch_decoded};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::LnSettings;
use crate::companies::Fan;
use crate::pages::{Query, Run};

/// Default records per page.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

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
}

impl Target {
    /// The relative path of the entity set.
    pub fn path(&self) -> String {
        format!("LN/lnapi/odata/{}/{}", self.service, self.entity_set)
    }
}

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

/// The task state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LnState {
    /// Lower bound (`ge`) of the last-modified property for this read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// While a read runs: its sync mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SyncMode>,
    /// While a read runs: the cursor it will leave when complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// While a read runs: the key of the last record emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Value>>,
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

/// One page. A read that keeps timing out is an error of the timeout kind (the host's),
/// for the caller's [`AdaptivePageSize`].
pub(crate) fn fetch(
    host: &Host,
    req: &GatewayRequest,
    target: &Target,
    settings: &LnSettings,
) -> Result<Page, ConnectorError> {
    let what = format!("LN {}/{}", target.service, target.entity_set);
    match fetch_decoded(host, req, &what, &RetryPolicy::default(), |r| {
        Page::decode(req, r)
    })? {
        Fetched::Decoded(p) => Ok(p),
        Fetched::Status(r) => Err(status_error(
            &format!("{}/{}", target.service, target.entity_set),
            settings,
            &r,
        )),
    }
}

/// The query of a read (filter, key order, headers); the page size goes on each request
/// ([`prefer`]), since it changes when a page times out.
pub(crate) fn base_query(
    target: &Target,
    settings: &LnSettings,
    filter: Option<&str>,
) -> GatewayRequest {
    let mut req = GatewayRequest::get(target.path());
    if let Some(f) = filter {
        req = req.query("$filter", f);
    }
    if !target.keys.is_empty() {
        req = req.query("$orderby", target.keys.join(","));
    }
    if let Some(cols) = &target.select {
        req = req.query("$select", cols.join(","));
    }
    with_headers(req, settings)
}

pub(crate) fn prefer(req: GatewayRequest, size: u32) -> GatewayRequest {
    req.header("Prefer", format!("odata.maxpagesize={size}"))
}

/// The `$filter` of a query from `lower` (cursor `ge`) and after the key `after`.
pub(crate) fn filter_of(
    target: &Target,
    lower: Option<&str>,
    after: Option<&[Value]>,
) -> Option<String> {
    let mut parts = Vec::new();
    if let (Some(c), Some(l)) = (&target.cursor, lower) {
        parts.push(format!("{c} ge {l}"));
    }
    if let Some(a) = after {
        let lits: Vec<String> = a.iter().map(|v| odata::literal(v, false)).collect();
        if let Some(k) = odata::keyset_after(&target.keys, &lits) {
            parts.push(if parts.is_empty() {
                k
            } else {
                format!("({k})")
            });
        }
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// The highest last-modified value at or above `lower` now (the high-water mark).
fn high_water(
    host: &Host,
    target: &Target,
    settings: &LnSettings,
    lower: Option<&str>,
) -> Result<Option<String>, ConnectorError> {
    let Some(c) = &target.cursor else {
        return Ok(None);
    };
    let mut req = GatewayRequest::get(target.path());
    if let Some(f) = filter_of(target, lower, None) {
        req = req.query("$filter", f);
    }
    let req = with_headers(
        req.query("$orderby", format!("{c} desc"))
            .query("$top", "1")
            .query("$select", c.clone()),
        settings,
    );
    // One record: nothing to shrink, so a timeout (after the host's retries) is final.
    let p = fetch(host, &req, target, settings)?;
    Ok(p.value
        .first()
        .and_then(|e| e.get(c))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Reads `target` and emits its records.
pub fn read(
    host: &Host,
    req: &ReadRequest,
    settings: &LnSettings,
    target: &Target,
    paging: Paging,
) -> Result<ReadSummary, ConnectorError> {
    let prior: LnState = parse_state(req, target)?;
    let initial = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
    let mut out = RecordWriter::new(host, &target.stream, initial.max(100) as usize);
    let (final_state, pages) =
        read_company(host, req, settings, target, paging, prior, &mut out, None)?;
    out.commit(&final_state)?;
    let records = out.written();
    host.info(&format!(
        "{}: {records} records in {pages} pages",
        target.stream
    ));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(serde_json::to_value(&final_state).unwrap_or(Value::Null)),
    })
}

/// The state a read starts from (none: from the start).
pub(crate) fn parse_state<S: serde::de::DeserializeOwned + Default>(
    req: &ReadRequest,
    target: &Target,
) -> Result<S, ConnectorError> {
    match &req.state {
        Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "the state of {} is not an LN state ({e}): {v}",
                target.stream
            ))
        }),
        _ => Ok(S::default()),
    }
}

/// Reads `target` in the company of `settings` from `prior`, emitting into `out` with a
/// checkpoint after every page (the task's state: this company's, or all companies' with
/// this one's in it when `fan` says so). Returns the company's state once complete (not
/// yet committed) and the pages read.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_company(
    host: &Host,
    req: &ReadRequest,
    settings: &LnSettings,
    target: &Target,
    paging: Paging,
    prior: LnState,
    out: &mut RecordWriter,
    fan: Option<&Fan<'_>>,
) -> Result<(LnState, u64), ConnectorError> {
    let incremental = req.sync_mode == SyncMode::Incremental;
    if incremental && target.cursor.is_none() {
        return Err(ConnectorError::invalid_input(format!(
            "{} has no last-modified property, so it can only be read in full",
            target.stream
        )));
    }
    // Resume a read that stopped half-way, when it was the same kind of read.
    let resuming = prior.after.is_some() && prior.mode == Some(req.sync_mode);
    let lower = if incremental || resuming {
        prior.cursor.clone()
    } else {
        None
    };
    let after = if resuming { prior.after.clone() } else { None };
    let next_cursor = if resuming {
        prior.next_cursor.clone()
    } else {
        high_water(host, target, settings, lower.as_deref())?
    };
    if resuming {
        host.info(&format!(
            "{}{}: resuming after key {}",
            target.stream,
            fan.map(|_| format!(" ({})", company_text(settings)))
                .unwrap_or_default(),
            after
                .as_ref()
                .map(|a| Value::from(a.clone()))
                .unwrap_or_default()
        ));
    }

    let initial = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
    let mut run = Run {
        host,
        settings,
        target,
        mode: req.sync_mode,
        lower: lower.clone(),
        next_cursor: next_cursor.clone(),
        after,
        pager: AdaptivePageSize::new(initial, initial.min(10), initial),
        out,
        fan,
        pages: 0,
        in_flight: inflight::pages_in_flight(req),
    };
    while run.query(paging)? == Query::Again {}
    let pages = run.pages;
    Ok((
        LnState {
            cursor: next_cursor.or(lower),
            ..LnState::default()
        },
        pages,
    ))
}

pub(crate) fn key_of(
    e: &Map<String, Value>,
    keys: &[String],
    stream: &str,
) -> Result<Vec<Value>, ConnectorError> {
    keys.iter()
        .map(|k| {
            e.get(k).cloned().ok_or_else(|| {
                ConnectorError::gateway(format!(
                    "{stream}: a record came without its key property '{k}'"
                ))
            })
        })
        .collect()
}
