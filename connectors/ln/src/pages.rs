//! The pages of one LN query: `@odata.nextLink` one after the other (a link is only known
//! from the answer before it), `$top`/`$skip` windows several at once.
//!
//! Windows are addressed by their `$skip`, so with a key `$orderby` (the same rows in the
//! same places for every request of the query) the task's pages in flight are requested
//! at once and taken in order ([`ordered_pages`]): the checkpoint after a window (the key
//! of its last record) covers every record before it, as in a sequential read. Without a
//! key nothing promises that two requests see the rows in the same places, so windows go
//! one at a time.

use std::time::Instant;

use ionport_infor_odata as odata;
use ionport_plugin_sdk::ordered_pages::{self, Flow};
use ionport_plugin_sdk::prelude::*;
use serde_json::{Map, Value};

use crate::LnSettings;
use crate::companies::Fan;
use crate::read::{
    LnState, Paging, Target, base_query, fetch, filter_of, key_of, prefer, with_headers,
};
use crate::tasks::COMPANY_FIELD;

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Query {
    /// Every record was read.
    Done,
    /// A page timed out: query again from the last key with the smaller page.
    Again,
}

/// A read in progress: where it stands and what it committed.
pub(crate) struct Run<'a> {
    pub host: &'a Host,
    pub settings: &'a LnSettings,
    pub target: &'a Target,
    pub mode: SyncMode,
    pub lower: Option<String>,
    pub next_cursor: Option<String>,
    /// The key of the last record emitted.
    pub after: Option<Vec<Value>>,
    pub pager: AdaptivePageSize,
    pub out: &'a mut RecordWriter,
    /// One company of several: its records carry it, its checkpoints hold every company's state.
    pub fan: Option<&'a Fan<'a>>,
    /// Pages read (requests that brought records or ended the read).
    pub pages: u64,
    pub in_flight: usize,
}

/// The records of one `$top`/`$skip` window and the requests it took.
struct Window {
    rows: Vec<Map<String, Value>>,
    requests: u64,
}

impl Run<'_> {
    /// One query from the last key: links while the service gives them, then windows.
    pub fn query(&mut self, paging: Paging) -> Result<Query, ConnectorError> {
        let filter = filter_of(self.target, self.lower.as_deref(), self.after.as_deref());
        let base = base_query(self.target, self.settings, filter.as_deref());
        let mut consumed = 0u64;
        if paging == Paging::Auto {
            let path = self.target.path();
            let mut request = base.clone();
            loop {
                self.host.check_cancelled()?;
                let started = Instant::now();
                let asked = self.pager.get();
                let page = match fetch(
                    self.host,
                    &prefer(request.clone(), asked),
                    self.target,
                    self.settings,
                ) {
                    Ok(p) => {
                        self.pager.on_success(started.elapsed());
                        p
                    }
                    Err(e) if e.is_timeout() => {
                        self.shrink(e, asked)?;
                        // A link holds the old size: start again at the new one from the
                        // last key, or without keys by `$skip` from the rows so far
                        // (starting over would emit them twice).
                        if self.target.keys.is_empty() {
                            break;
                        }
                        return Ok(Query::Again);
                    }
                    Err(e) => return Err(e),
                };
                let n = page.value.len() as u64;
                self.commit(page.value, 1)?;
                // A page of this loop's own (ordered_pages reports only windows).
                self.host.report_pages(1);
                consumed += n;
                if let Some(link) = page.next_link {
                    request = with_headers(odata::next_link_request(&link, &path)?, self.settings);
                    continue;
                }
                if n == 0 || n < u64::from(asked) {
                    return Ok(Query::Done);
                }
                // A full page and no link: the service pages silently; go on by $skip.
                break;
            }
        }
        self.windows(&base, consumed)
    }

    /// `$top`/`$skip` windows of the query from row `from` to the end.
    fn windows(&mut self, base: &GatewayRequest, mut from: u64) -> Result<Query, ConnectorError> {
        loop {
            let size = self.pager.get();
            let in_flight = if self.target.keys.is_empty() {
                1
            } else {
                self.in_flight
            };
            let (host, target, settings, start) = (self.host, self.target, self.settings, from);
            let run = ordered_pages::fetch_in_order(
                host,
                in_flight,
                None,
                |i| {
                    let skip = start.saturating_add(i.saturating_mul(u64::from(size)));
                    window(host, target, settings, base, skip, size)
                },
                |_, w| {
                    let n = w.rows.len() as u64;
                    self.commit(w.rows, w.requests)?;
                    // ordered_pages reports the window as one page as this returns; the
                    // links followed inside it are pages the summary counts too.
                    host.report_pages(w.requests.saturating_sub(1));
                    from += n;
                    Ok(if n < u64::from(size) {
                        Flow::End
                    } else {
                        Flow::Next
                    })
                },
            );
            match run {
                // Windows end only at a short one (no count of them is given).
                Ok(_) => return Ok(Query::Done),
                Err(e) if e.is_timeout() => {
                    self.shrink(e, size)?;
                    if !self.target.keys.is_empty() {
                        return Ok(Query::Again);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A page of `asked` records timed out: halve the page (or end the read at the
    /// smallest), and go on one page at a time — the pages in flight were all asked at the
    /// size that proved too big, and each costs the gateway's whole target timeout twice.
    fn shrink(&mut self, timeout: ConnectorError, asked: u32) -> Result<(), ConnectorError> {
        self.host.warn(&format!(
            "{}: the gateway timed out on a page of {asked} records; asking for smaller pages",
            self.target.stream
        ));
        self.pager.on_timeout(timeout)?;
        self.in_flight = 1;
        Ok(())
    }

    /// Emits `rows` (read with `requests` requests) and checkpoints after them.
    fn commit(
        &mut self,
        rows: Vec<Map<String, Value>>,
        requests: u64,
    ) -> Result<(), ConnectorError> {
        for mut e in rows {
            odata::strip_annotations(&mut e);
            if !self.target.keys.is_empty() {
                self.after = Some(key_of(&e, &self.target.keys, &self.target.stream)?);
            }
            if let Some(f) = self.fan {
                e.insert(COMPANY_FIELD.into(), f.company.into());
            }
            self.out.push(&e)?;
        }
        self.pages += requests;
        let state = LnState {
            cursor: self.lower.clone(),
            mode: Some(self.mode),
            next_cursor: self.next_cursor.clone(),
            after: self.after.clone(),
        };
        match self.fan {
            None => self.out.commit(&state),
            Some(f) => self.out.commit(&f.with(state)),
        }
    }
}

/// Rows `skip..skip + size` of the query: `$top`/`$skip`, following the links the service
/// gives inside the window when its pages are smaller than `size`.
fn window(
    host: &Host,
    target: &Target,
    settings: &LnSettings,
    base: &GatewayRequest,
    skip: u64,
    size: u32,
) -> Result<Window, ConnectorError> {
    let path = target.path();
    let mut request = base.clone().query("$top", size.to_string());
    if skip > 0 {
        request = request.query("$skip", skip.to_string());
    }
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut requests = 0;
    loop {
        let page = fetch(host, &prefer(request, size), target, settings)?;
        requests += 1;
        let n = page.value.len();
        rows.extend(page.value);
        // More than `$top` would overlap the next window; a link after nothing would
        // never end.
        let wrong = if rows.len() as u64 > u64::from(size) {
            Some(format!("{} records in a window of $top={size}", rows.len()))
        } else if n == 0 && page.next_link.is_some() {
            Some("an empty page with an @odata.nextLink".to_string())
        } else {
            None
        };
        if let Some(detail) = wrong {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: LN {}/{}: the window at $skip={skip} answered {detail}",
                target.service, target.entity_set
            )));
        }
        match page.next_link {
            Some(link) => {
                request = with_headers(odata::next_link_request(&link, &path)?, settings);
            }
            None => return Ok(Window { rows, requests }),
        }
    }
}
