//! The read of a keyed listing after a key ([`KeyStart::AfterKey`]): a source whose
//! listing is ordered by a key and can be asked to start after one (`$filter=Key gt 'x'`,
//! `where id > 7`), paged by the next link each answer gives or, where the source gives
//! none, by offset windows over the same order.
//!
//! What [`super::read_keyed`] does for such a stream:
//! - a high-water mark of the cursor asked first ([`KeyListing::high_water`]): a record
//!   changed while the read runs gets a stamp above it, so the next incremental read sees
//!   it even when its key was already passed (the cursor's maximum among the records read
//!   would miss it);
//! - one query from the last key handed over: the next links of its answers followed one
//!   after the other, and — a full page without a link, or [`KeyPaging::Windows`] —
//!   windows of the query by offset, up to the read's pages in flight at once, handed over
//!   in order ([`crate::ordered_pages`]); without a key, windows go one at a time (nothing
//!   promises two requests see the rows in the same places);
//! - a commit per page with its checkpoint ([`AfterKeyState`]: the key of the last record, so
//!   an interrupted read goes on after it and repeats nothing);
//! - the 504 contract: a page that keeps timing out halves the page and starts the query
//!   again from the last key (a link holds the old size), one window at a time.
//!
//! The same stream read from several partitions (accounts, companies) is
//! [`super::read_partitioned`].
//!
//! A full read split into partitions ([`crate::ReadRequest::partition`]) reads windows of
//! one query ordered by key by the stride of offset-paged streams: partition `i` of `N`
//! windows `i`, `i + N`... ending at its first short one, its checkpoint its next window's
//! offset (`offset`). The windows keep one size (a window that keeps timing out fails the
//! partition), and a listing without a key is refused (its windows have no order).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keyed::{KeyListing, KeyPaging, KeyStart, KeyedStream, PageAt, encode, wrong_paging};
use super::read::{Stride, check_partition};
use crate::inflight::pages_in_flight;
use crate::ordered_pages::{Flow, fetch_in_order};
use crate::paging::AdaptivePageSize;
use crate::{
    ConnectorError, Host, ReadPartition, ReadRequest, ReadSummary, RecordWriter, SyncMode,
};

/// What a stream read after a key checkpoints.
///
/// Complete: `{"cursor": …}`, where the next incremental read starts. During a read also
/// `mode` (the read's sync mode), `next_cursor` (the high-water mark the read will leave)
/// and `after` (the key of the last record handed over); a read of the same mode goes on
/// after that key. A partition of a full read keeps `mode` and `offset` (its next window)
/// instead. Other fields are refused: a state of another shape is never read as
/// "no state", which would start over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterKeyState {
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
    /// While a partition of a read runs: the offset of its next window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// The values of `fields` in `record` as a listing after a key gives its rows' keys
/// ([`KeyListing::key`]): a JSON array. A record without one of them is an error.
pub fn record_key(
    record: &Map<String, Value>,
    fields: &[String],
    what: &str,
) -> Result<String, ConnectorError> {
    let values = fields
        .iter()
        .map(|k| {
            record.get(k).cloned().ok_or_else(|| {
                ConnectorError::gateway(format!(
                    "{what}: a record came without its key property '{k}'"
                ))
            })
        })
        .collect::<Result<Vec<Value>, _>>()?;
    encode(&values).map(|v| v.to_string())
}

/// Reads `stream` with `settings` for `request`, resumed from the request's
/// [`AfterKeyState`].
pub(super) fn read<S, K: KeyedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
) -> Result<ReadSummary, ConnectorError> {
    if let Some(part) = request.partition {
        return read_stride(stream, host, settings, request, part);
    }
    let prior: AfterKeyState = super::TypedState::state(request)?.unwrap_or_default();
    let name = stream.spec().name;
    let mut out = writer(stream, host, request, &name);
    let (state, pages) = read_part(
        stream,
        host,
        settings,
        request,
        prior,
        &mut out,
        &Part {
            name: &name,
            label: None,
            checkpoint: &|s| encode(s),
        },
    )?;
    out.commit(&state)?;
    let records = out.written();
    host.info(&format!("{name}: {records} records in {pages} pages"));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(encode(&state)?),
    })
}

/// Reads partition `part` of `stream`'s full listing: its windows of one query ordered by
/// key ([`Stride`]), up to the request's pages in flight, handed over in order, from the
/// state's `offset` or its first window.
fn read_stride<S, K: KeyedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
    part: ReadPartition,
) -> Result<ReadSummary, ConnectorError> {
    let spec = stream.spec();
    let name = spec.name;
    check_partition(&name, true, spec.cursor_field.as_deref(), request, part)?;
    if request.sync_mode == SyncMode::Incremental {
        return Err(ConnectorError::invalid_input(format!(
            "{name} has no last-modified property, so it can only be read in full",
        )));
    }
    let prior: AfterKeyState = super::TypedState::state(request)?.unwrap_or_default();
    let resume = prior
        .offset
        .filter(|_| prior.mode == Some(request.sync_mode));
    let listing = stream.open(host, settings, request, None)?;
    if !listing.ordered() {
        return Err(ConnectorError::invalid_input(format!(
            "{name}: partition {} of {}: the stream has no key, so the windows of its query \
             have no order two requests agree on; read it with one partition (or give its key)",
            part.index, part.count
        )));
    }
    let size = request.page_size.unwrap_or(stream.page_size()).max(1);
    let windows = Stride::new(&name, size, part, resume)?;
    if let Some(at) = resume {
        host.info(&format!(
            "{name} (partition {} of {}): resuming at record {at}",
            part.index, part.count
        ));
    }
    let mut out = writer(stream, host, request, &name);
    let mut pages = 0u64;
    let listing = &listing;
    fetch_in_order(
        host,
        pages_in_flight(request),
        None,
        |k| window(listing, host, &name, None, windows.offset(k), size),
        |k, w| {
            let n = w.rows.len() as u64;
            windows.refuse_overfull(&name, k, n)?;
            let mut extra = 0;
            for row in &w.rows {
                extra += listing.write(host, row, &mut out)?;
            }
            pages += w.requests + extra;
            // ordered_pages reports the window as one page; links inside it are pages too.
            host.report_pages(w.requests.saturating_sub(1));
            if windows.ends(n) {
                return Ok(Flow::End);
            }
            out.commit(&AfterKeyState {
                mode: Some(request.sync_mode),
                offset: Some(windows.offset(k + 1)),
                ..AfterKeyState::default()
            })?;
            Ok(Flow::Next)
        },
    )?;
    // A full read leaves no cursor: partitions read in full only.
    let state = AfterKeyState::default();
    out.commit(&state)?;
    let records = out.written();
    host.info(&format!(
        "{name} (partition {} of {}): {records} records in {pages} pages",
        part.index, part.count
    ));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(encode(&state)?),
    })
}

/// The writer of stream `name`'s records: batches of a page, at least 100 records.
pub(super) fn writer<S, K: KeyedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    request: &ReadRequest,
    name: &str,
) -> RecordWriter {
    let size = request.page_size.unwrap_or(stream.page_size()).max(1);
    RecordWriter::new(host, name, size.max(100) as usize)
}

/// One read of a stream among others: its name, how messages name the part and the
/// task's state around its own.
pub(super) struct Part<'a> {
    pub name: &'a str,
    pub label: Option<String>,
    pub checkpoint: &'a dyn Fn(&AfterKeyState) -> Result<Value, ConnectorError>,
}

/// Reads one stream (of one partition) from `prior` into `out`, a checkpoint after every
/// page; returns the state once complete (not committed) and the pages read.
pub(super) fn read_part<S, K: KeyedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
    prior: AfterKeyState,
    out: &mut RecordWriter,
    part: &Part<'_>,
) -> Result<(AfterKeyState, u64), ConnectorError> {
    let name = part.name;
    if let Some(p) = request.partition {
        // Each partition of the source would read its whole listing: every record N times.
        return Err(ConnectorError::invalid_input(format!(
            "{name}: partition {} of {}: a stream read from several parts of its source \
             (companies) cannot also be split into partitions; read it with one",
            p.index, p.count
        )));
    }
    let incremental = request.sync_mode == SyncMode::Incremental;
    if incremental && stream.spec().cursor_field.is_none() {
        return Err(ConnectorError::invalid_input(format!(
            "{name} has no last-modified property, so it can only be read in full",
        )));
    }
    let resuming = prior.after.is_some() && prior.mode == Some(request.sync_mode);
    let lower = if incremental || resuming {
        prior.cursor.clone()
    } else {
        None
    };
    let listing = stream.open(
        host,
        settings,
        request,
        lower.clone().map(Value::from).as_ref(),
    )?;
    let windows = match listing.paging() {
        KeyPaging::Links => false,
        KeyPaging::Windows => true,
        other => return Err(wrong_paging(name, other, KeyStart::AfterKey)),
    };
    let next_cursor = if resuming {
        prior.next_cursor.clone()
    } else {
        listing.high_water(host)?
    };
    let label = part
        .label
        .as_ref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    if resuming {
        host.info(&format!(
            "{name}{label}: resuming after key {}",
            prior.after.clone().map(Value::from).unwrap_or_default()
        ));
    }
    let after = match prior.after.filter(|_| resuming) {
        Some(values) => Some(encode(&values)?.to_string()),
        None => None,
    };
    let initial = request.page_size.unwrap_or(stream.page_size()).max(1);
    let floor = stream.min_page_size().unwrap_or(10);
    let mut run = Run {
        listing: &listing,
        host,
        name,
        mode: request.sync_mode,
        lower: lower.clone(),
        next_cursor: next_cursor.clone(),
        after,
        pager: AdaptivePageSize::new(initial, initial.min(floor), initial),
        out,
        part,
        pages: 0,
        in_flight: pages_in_flight(request),
    };
    while run.query(windows)? == Query::Again {}
    let pages = run.pages;
    let state = AfterKeyState {
        cursor: next_cursor.or(lower),
        ..AfterKeyState::default()
    };
    Ok((state, pages))
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
struct Run<'a, L: KeyListing> {
    listing: &'a L,
    host: &'a Host,
    name: &'a str,
    mode: SyncMode,
    lower: Option<String>,
    next_cursor: Option<String>,
    /// The key of the last record handed over ([`KeyListing::key`]).
    after: Option<String>,
    pager: AdaptivePageSize,
    out: &'a mut RecordWriter,
    part: &'a Part<'a>,
    /// Requests that brought records or ended the read.
    pages: u64,
    in_flight: usize,
}

/// The rows of one window and the requests it took.
struct Window<R> {
    rows: Vec<R>,
    requests: u64,
}

impl<L: KeyListing> Run<'_, L> {
    /// One query from the last key: links while the source gives them, then windows.
    fn query(&mut self, windows: bool) -> Result<Query, ConnectorError> {
        let mut consumed = 0u64;
        let after = self.after.clone();
        if !windows {
            let mut next: Option<String> = None;
            loop {
                self.host.check_cancelled()?;
                let started = Instant::now();
                let asked = self.pager.get();
                let at = PageAt {
                    size: asked,
                    key: after.as_deref(),
                    next: next.as_deref(),
                    ..PageAt::default()
                };
                let page = match self.listing.page(self.host, &at) {
                    Ok(p) => {
                        self.pager.on_success(started.elapsed());
                        p
                    }
                    Err(e) if e.is_timeout() => {
                        self.shrink(e, asked)?;
                        // A link holds the old size: start again at the new one from the
                        // last key, or without a key by offset from the rows so far
                        // (starting over would hand them over twice).
                        if !self.listing.ordered() {
                            break;
                        }
                        return Ok(Query::Again);
                    }
                    Err(e) => return Err(e),
                };
                let n = page.rows.len() as u64;
                // A link after nothing, or back to the page it came from, would be
                // followed for ever: an answer of the wrong shape, not more data.
                if let Some(link) = &page.next
                    && (n == 0 || next.as_deref() == Some(link.as_str()))
                {
                    let detail = if n == 0 {
                        "an empty page with a next link"
                    } else {
                        "a page whose next link is the link it was asked with"
                    };
                    return Err(ConnectorError::unexpected_body(format!(
                        "unexpected body: {}: {detail}",
                        self.name
                    )));
                }
                self.commit(page.rows, 1)?;
                // A page of this loop's own (ordered_pages reports only windows).
                self.host.report_pages(1);
                consumed += n;
                if page.next.is_some() {
                    next = page.next;
                    continue;
                }
                if n == 0 || n < u64::from(asked) {
                    return Ok(Query::Done);
                }
                // A full page and no link: the source pages silently; go on by windows.
                break;
            }
        }
        self.windows(after, consumed)
    }

    /// Windows of the query from row `from` to the end.
    /// `after` is the key the query started after (the rows since are counted in `from`).
    fn windows(&mut self, after: Option<String>, mut from: u64) -> Result<Query, ConnectorError> {
        loop {
            let size = self.pager.get();
            let ordered = self.listing.ordered();
            let in_flight = if ordered { self.in_flight } else { 1 };
            let (listing, host, name, start) = (self.listing, self.host, self.name, from);
            let run = fetch_in_order(
                host,
                in_flight,
                None,
                |i| {
                    let skip = start.saturating_add(i.saturating_mul(u64::from(size)));
                    window(listing, host, name, after.as_deref(), skip, size)
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
                    if ordered {
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
            self.name
        ));
        self.pager.on_timeout(timeout)?;
        self.in_flight = 1;
        Ok(())
    }

    /// Hands `rows` (read with `requests` requests) over and checkpoints after them.
    fn commit(&mut self, rows: Vec<L::Row>, requests: u64) -> Result<(), ConnectorError> {
        let mut extra = 0;
        for row in &rows {
            extra += self.listing.write(self.host, row, self.out)?;
        }
        if self.listing.ordered()
            && let Some(last) = rows.last()
        {
            self.after = Some(self.listing.key(last).to_string());
        }
        self.pages += requests + extra;
        let after = match &self.after {
            Some(key) => Some(serde_json::from_str::<Vec<Value>>(key).map_err(|e| {
                ConnectorError::connector(format!(
                    "{}: the key {key:?} is not a JSON array of the key's values: {e}",
                    self.name
                ))
            })?),
            None => None,
        };
        let state = AfterKeyState {
            cursor: self.lower.clone(),
            mode: Some(self.mode),
            next_cursor: self.next_cursor.clone(),
            after,
            offset: None,
        };
        let state = (self.part.checkpoint)(&state)?;
        self.out.commit(&state)
    }
}

/// Rows `skip..skip + size` of the query after `after`, following the links the source
/// gives inside the window when its pages are smaller than `size`.
fn window<L: KeyListing>(
    listing: &L,
    host: &Host,
    name: &str,
    after: Option<&str>,
    skip: u64,
    size: u32,
) -> Result<Window<L::Row>, ConnectorError> {
    let mut rows: Vec<L::Row> = Vec::new();
    let mut requests = 0;
    let mut next: Option<String> = None;
    loop {
        let at = PageAt {
            size,
            key: after,
            window: Some(skip),
            next: next.as_deref(),
            ..PageAt::default()
        };
        let page = listing.page(host, &at)?;
        requests += 1;
        let n = page.rows.len();
        rows.extend(page.rows);
        // More than asked would overlap the next window; a link after nothing would
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
                "unexpected body: {name}: the window at offset {skip} answered {detail}"
            )));
        }
        match page.next {
            Some(link) => next = Some(link),
            None => return Ok(Window { rows, requests }),
        }
    }
}
