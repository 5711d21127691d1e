//! Streams read in the order of their key: the SDK's loop for a source whose listing is
//! ordered by a key and can be asked to start after one (`$filter=Key gt 'x'`,
//! `where id > 7`), paged by the next link each answer gives or, where the source gives
//! none, by offset windows over the same order.
//!
//! What [`read_sorted`] does for such a stream:
//! - a high-water mark of the cursor asked first ([`SortedStream::high_water`]): a record
//!   changed while the read runs gets a stamp above it, so the next incremental read sees
//!   it even when its key was already passed (the cursor's maximum among the records read
//!   would miss it);
//! - one query from the last key handed over: the next tokens of its answers followed one
//!   after the other, and — a full page without a token, or [`SortedPaging::Windows`] —
//!   windows of the query by offset, up to the read's pages in flight at once, handed over
//!   in order ([`crate::ordered_pages`]); without a key, windows go one at a time (nothing
//!   promises two requests see the rows in the same places);
//! - a commit per page with its checkpoint ([`SortedState`]: the key of the last record, so
//!   an interrupted read goes on after it and repeats nothing);
//! - the 504 contract: a page that keeps timing out halves the page and starts the query
//!   again from the last key (a token holds the old size), one window at a time;
//! - a non-`2xx` answer made an error by the stream ([`SortedStream::status_error`]), an
//!   answer the stream refuses asked again, then an `unexpected_body` error.
//!
//! The same stream read from several partitions (accounts, companies) is
//! [`super::read_partitioned`].

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Answer;
use crate::inflight::pages_in_flight;
use crate::ordered_pages::{Flow, fetch_in_order};
use crate::paging::AdaptivePageSize;
use crate::retry::{Fetched, RetryPolicy, fetch_decoded};
use crate::{
    ConnectorError, GatewayRequest, GatewayResponse, Host, ReadRequest, ReadSummary, RecordWriter,
    SyncMode,
};

/// How a sorted stream's pages are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortedPaging {
    /// Follow the answers' next tokens; a full page without one goes on by windows.
    #[default]
    Tokens,
    /// Windows by offset from the start (tokens inside a window still followed), so that
    /// the read's pages in flight are asked at once.
    Windows,
}

/// What one request of a sorted query is built from.
#[derive(Debug, Clone, Copy)]
pub struct SortedQuery<'a> {
    /// The cursor's lower bound (records with the cursor at or above it); `None`: all.
    pub since: Option<&'a str>,
    /// The key of the last record handed over: the query starts after it.
    pub after: Option<&'a [Value]>,
    /// Records to ask for.
    pub size: u32,
    /// A window of `size` records from this offset of the query; `None`: the query's first
    /// page, whose next token the SDK follows.
    pub window: Option<u64>,
}

/// One parsed answer of a sorted stream.
#[derive(Debug, Clone, Default)]
pub struct SortedPage {
    /// The records, in key order.
    pub records: Vec<Map<String, Value>>,
    /// The next page's token (a next link), if the answer gives one.
    pub next: Option<String>,
}

/// What a sorted stream checkpoints.
///
/// Complete: `{"cursor": …}`, where the next incremental read starts. During a read also
/// `mode` (the read's sync mode), `next_cursor` (the high-water mark the read will leave)
/// and `after` (the key of the last record handed over); a read of the same mode goes on
/// after that key. Other fields are refused: a state of another shape is never read as
/// "no state", which would start over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortedState {
    /// The cursor's lower bound of this read (and, complete, of the next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// While a read runs: its sync mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SyncMode>,
    /// While a read runs: the cursor it leaves when complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// While a read runs: the key of the last record handed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Value>>,
}

/// A stream read in key order, whose settings are `S`.
pub trait SortedStream<S>: Send + Sync {
    /// The stream's (task's) name.
    fn name(&self) -> &str;
    /// How messages name what is read (a service and a set, an endpoint).
    fn what(&self) -> String {
        self.name().to_string()
    }
    /// The fields the listing is ordered by, resumed after; empty: an unordered listing.
    fn key(&self) -> &[String];
    /// The field incremental reads advance on.
    fn cursor(&self) -> Option<&str>;
    /// Records per page when the read does not say.
    fn page_size(&self) -> u32 {
        500
    }
    /// The smallest page timeouts shrink to.
    fn min_page_size(&self) -> u32 {
        10
    }
    /// The request for one page of a query.
    fn request(
        &self,
        settings: &S,
        query: &SortedQuery<'_>,
    ) -> Result<GatewayRequest, ConnectorError>;
    /// The request for the page an answer's `next` token points to, of `size` records.
    fn follow(&self, settings: &S, next: &str, size: u32)
    -> Result<GatewayRequest, ConnectorError>;
    /// The request for the highest record by cursor at or above `since` (one record, its
    /// cursor in it); `None` when the stream has no cursor.
    fn high_water(&self, settings: &S, since: Option<&str>) -> Option<GatewayRequest>;
    /// A success answer into records and the next token; refuse a body that is not a page.
    fn parse(&self, answer: &Answer<'_>) -> Result<SortedPage, ConnectorError>;
    /// The error of a non-`2xx` answer.
    fn status_error(&self, _settings: &S, response: &GatewayResponse) -> ConnectorError {
        ConnectorError::gateway(format!(
            "{} answered HTTP {}: {}",
            self.what(),
            response.status,
            crate::decode::body_head(response)
        ))
    }
    /// A record as it is handed over (annotations dropped, fields added).
    fn prepare(&self, _settings: &S, _record: &mut Map<String, Value>) {}
}

/// Reads `stream` with `settings` for `request`, paged as `paging` says, resumed from the
/// request's [`SortedState`].
pub fn read_sorted<S, K: SortedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
    paging: SortedPaging,
) -> Result<ReadSummary, ConnectorError>
where
    S: Sync,
{
    let prior: SortedState = super::TypedState::state(request)?.unwrap_or_default();
    let mut out = writer(stream, host, request);
    let (state, pages) = read_part(
        stream,
        host,
        settings,
        request,
        prior,
        &mut out,
        &Part {
            paging,
            label: None,
            checkpoint: &|s| Ok(serde_json::to_value(s).unwrap_or(Value::Null)),
        },
    )?;
    out.commit(&state)?;
    let records = out.written();
    host.info(&format!(
        "{}: {records} records in {pages} pages",
        stream.name()
    ));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(serde_json::to_value(&state).unwrap_or(Value::Null)),
    })
}

pub(super) fn writer<S, K: SortedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    request: &ReadRequest,
) -> RecordWriter {
    let size = request.page_size.unwrap_or(stream.page_size()).max(1);
    RecordWriter::new(host, stream.name(), size.max(100) as usize)
}

/// One read of a sorted stream among others: how it pages, how messages name it and the
/// task's state around its own.
pub(super) struct Part<'a> {
    pub paging: SortedPaging,
    pub label: Option<String>,
    pub checkpoint: &'a dyn Fn(&SortedState) -> Result<Value, ConnectorError>,
}

/// Reads one stream (of one partition) from `prior` into `out`, a checkpoint after every
/// page; returns the state once complete (not committed) and the pages read.
pub(super) fn read_part<S: Sync, K: SortedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
    prior: SortedState,
    out: &mut RecordWriter,
    part: &Part<'_>,
) -> Result<(SortedState, u64), ConnectorError> {
    let incremental = request.sync_mode == SyncMode::Incremental;
    if incremental && stream.cursor().is_none() {
        return Err(ConnectorError::invalid_input(format!(
            "{} has no last-modified property, so it can only be read in full",
            stream.name()
        )));
    }
    let resuming = prior.after.is_some() && prior.mode == Some(request.sync_mode);
    let lower = if incremental || resuming {
        prior.cursor.clone()
    } else {
        None
    };
    let next_cursor = if resuming {
        prior.next_cursor.clone()
    } else {
        high_water(stream, host, settings, lower.as_deref())?
    };
    let label = part
        .label
        .as_ref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    if resuming {
        host.info(&format!(
            "{}{label}: resuming after key {}",
            stream.name(),
            prior.after.clone().map(Value::from).unwrap_or_default()
        ));
    }
    let initial = request.page_size.unwrap_or(stream.page_size()).max(1);
    let mut run = Run {
        stream,
        host,
        settings,
        mode: request.sync_mode,
        lower: lower.clone(),
        next_cursor: next_cursor.clone(),
        after: if resuming { prior.after } else { None },
        pager: AdaptivePageSize::new(initial, initial.min(stream.min_page_size()), initial),
        out,
        part,
        pages: 0,
        in_flight: pages_in_flight(request),
    };
    while run.query(part.paging)? == Query::Again {}
    let pages = run.pages;
    let state = SortedState {
        cursor: next_cursor.or(lower),
        ..SortedState::default()
    };
    Ok((state, pages))
}

/// One page: a refused answer asked again, a non-`2xx` the stream's error.
fn fetch<S, K: SortedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &GatewayRequest,
) -> Result<SortedPage, ConnectorError> {
    let what = stream.what();
    let fetched = fetch_decoded(host, request, &what, &RetryPolicy::default(), |response| {
        stream.parse(&Answer { request, response })
    })?;
    match fetched {
        Fetched::Decoded(page) => Ok(page),
        Fetched::Status(response) => Err(stream.status_error(settings, &response)),
    }
}

/// The cursor's highest value at or above `since` now. One record: nothing to shrink, so a
/// timeout (after the host's retries) is final.
fn high_water<S, K: SortedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    since: Option<&str>,
) -> Result<Option<String>, ConnectorError> {
    let (Some(field), Some(request)) = (stream.cursor(), stream.high_water(settings, since)) else {
        return Ok(None);
    };
    let page = fetch(stream, host, settings, &request)?;
    Ok(page
        .records
        .first()
        .and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    /// Every record was read.
    Done,
    /// A page timed out: query again from the last key with the smaller page.
    Again,
}

/// A read under way: where it stands and what it committed.
struct Run<'a, S, K: ?Sized> {
    stream: &'a K,
    host: &'a Host,
    settings: &'a S,
    mode: SyncMode,
    lower: Option<String>,
    next_cursor: Option<String>,
    after: Option<Vec<Value>>,
    pager: AdaptivePageSize,
    out: &'a mut RecordWriter,
    part: &'a Part<'a>,
    /// Requests that brought records or ended the read.
    pages: u64,
    in_flight: usize,
}

/// The records of one window and the requests it took.
struct Window {
    rows: Vec<Map<String, Value>>,
    requests: u64,
}

impl<S: Sync, K: SortedStream<S> + ?Sized> Run<'_, S, K> {
    fn query_of(&self, size: u32, window: Option<u64>) -> Result<GatewayRequest, ConnectorError> {
        self.stream.request(
            self.settings,
            &SortedQuery {
                since: self.lower.as_deref(),
                after: self.after.as_deref(),
                size,
                window,
            },
        )
    }

    /// One query from the last key: tokens while the source gives them, then windows.
    fn query(&mut self, paging: SortedPaging) -> Result<Query, ConnectorError> {
        let mut consumed = 0u64;
        let after = self.after.clone();
        if paging == SortedPaging::Tokens {
            let mut request = self.query_of(self.pager.get(), None)?;
            loop {
                self.host.check_cancelled()?;
                let started = Instant::now();
                let asked = self.pager.get();
                let page = match fetch(self.stream, self.host, self.settings, &request) {
                    Ok(p) => {
                        self.pager.on_success(started.elapsed());
                        p
                    }
                    Err(e) if e.is_timeout() => {
                        self.shrink(e, asked)?;
                        // A token holds the old size: start again at the new one from the
                        // last key, or without a key by offset from the rows so far
                        // (starting over would hand them over twice).
                        if self.stream.key().is_empty() {
                            break;
                        }
                        return Ok(Query::Again);
                    }
                    Err(e) => return Err(e),
                };
                let n = page.records.len() as u64;
                self.commit(page.records, 1)?;
                // A page of this loop's own (ordered_pages reports only windows).
                self.host.report_pages(1);
                consumed += n;
                if let Some(next) = page.next {
                    request = self.stream.follow(self.settings, &next, self.pager.get())?;
                    continue;
                }
                if n == 0 || n < u64::from(asked) {
                    return Ok(Query::Done);
                }
                // A full page and no token: the source pages silently; go on by windows.
                break;
            }
        }
        self.windows(after, consumed)
    }

    /// Windows of the query from row `from` to the end.
    /// `after` is the key the query started after (the rows since are counted in `from`).
    fn windows(
        &mut self,
        after: Option<Vec<Value>>,
        mut from: u64,
    ) -> Result<Query, ConnectorError> {
        loop {
            let size = self.pager.get();
            let keyed = !self.stream.key().is_empty();
            let in_flight = if keyed { self.in_flight } else { 1 };
            let (stream, host, settings, start) = (self.stream, self.host, self.settings, from);
            let lower = self.lower.clone();
            let run = fetch_in_order(
                host,
                in_flight,
                None,
                |i| {
                    let skip = start.saturating_add(i.saturating_mul(u64::from(size)));
                    let first = stream.request(
                        settings,
                        &SortedQuery {
                            since: lower.as_deref(),
                            after: after.as_deref(),
                            size,
                            window: Some(skip),
                        },
                    )?;
                    window(stream, host, settings, first, skip, size)
                },
                |_, w| {
                    let n = w.rows.len() as u64;
                    self.commit(w.rows, w.requests)?;
                    // ordered_pages reports the window as one page as this returns; the
                    // tokens followed inside it are pages the summary counts too.
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
                    if keyed {
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
            self.stream.name()
        ));
        self.pager.on_timeout(timeout)?;
        self.in_flight = 1;
        Ok(())
    }

    /// Hands `rows` (read with `requests` requests) over and checkpoints after them.
    fn commit(
        &mut self,
        rows: Vec<Map<String, Value>>,
        requests: u64,
    ) -> Result<(), ConnectorError> {
        let key = self.stream.key();
        for mut record in rows {
            if !key.is_empty() {
                self.after = Some(key_of(&record, key, self.stream.name())?);
            }
            self.stream.prepare(self.settings, &mut record);
            self.out.push(&record)?;
        }
        self.pages += requests;
        let state = SortedState {
            cursor: self.lower.clone(),
            mode: Some(self.mode),
            next_cursor: self.next_cursor.clone(),
            after: self.after.clone(),
        };
        let state = (self.part.checkpoint)(&state)?;
        self.out.commit(&state)
    }
}

/// Rows `skip..skip + size` of the query, starting with `request`, following the tokens
/// the source gives inside the window when its pages are smaller than `size`.
fn window<S, K: SortedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    mut request: GatewayRequest,
    skip: u64,
    size: u32,
) -> Result<Window, ConnectorError> {
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut requests = 0;
    loop {
        let page = fetch(stream, host, settings, &request)?;
        requests += 1;
        let n = page.records.len();
        rows.extend(page.records);
        // More than asked would overlap the next window; a token after nothing would
        // never end.
        let wrong = if rows.len() as u64 > u64::from(size) {
            Some(format!("{} records in a window of {size}", rows.len()))
        } else if n == 0 && page.next.is_some() {
            Some("an empty page with a next link".to_string())
        } else {
            None
        };
        if let Some(detail) = wrong {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {}: the window at offset {skip} answered {detail}",
                stream.what()
            )));
        }
        match page.next {
            Some(next) => request = stream.follow(settings, &next, size)?,
            None => return Ok(Window { rows, requests }),
        }
    }
}

/// The values of `key` in `record`; a record without one is an error.
fn key_of(
    record: &Map<String, Value>,
    key: &[String],
    stream: &str,
) -> Result<Vec<Value>, ConnectorError> {
    key.iter()
        .map(|k| {
            record.get(k).cloned().ok_or_else(|| {
                ConnectorError::gateway(format!(
                    "{stream}: a record came without its key property '{k}'"
                ))
            })
        })
        .collect()
}
