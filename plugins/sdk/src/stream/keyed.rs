//! Streams listed by key: a source with no offset and no token, only "the records from
//! this key on" (M3's MI `Lst*` transactions and EXPORTMI, any API with a `from=` key).
//!
//! An author declares a [`KeyedStream`] (what it is, and [`KeyedStream::open`]: the set-up
//! calls of one read — field metadata, the columns the read selects — into a
//! [`KeyListing`]) and the listing (one page from a key, a row's key, how a row is
//! written). The SDK does the rest, as for a [`super::RestStream`]:
//! - pages in flight as key ranges read side by side ([`crate::key_ranges`]; with
//!   [`KeyListing::bounded`], a range's later pages end at its end), handed over on the
//!   reading thread with a watermark, and a cancel check before every page;
//! - a commit per page with its checkpoint, a [`StreamState`] whose resume point is the
//!   watermark ([`Resume::Key`]): an interrupted read goes on after it, records of later
//!   ranges already handed over are read again and land on their key;
//! - the 504 contract: a page that keeps timing out halves the page size shared by the
//!   read's threads ([`crate::paging::SharedPageSize::run`]);
//! - incremental reads: the listing is opened with the lower bound (`since`), the highest
//!   cursor value of the rows handed over is kept in the state (`seen`) and becomes the
//!   next read's lower bound only when the listing is complete (rows come in key order,
//!   not in cursor order);
//! - sub-requests per parent row: a row may stand for records asked for by requests of
//!   their own (an order and its lines, [`KeyListing::write`]); they are counted as pages;
//! - older state shapes: [`KeyedStream::migrate_state`] turns a state an earlier version of
//!   the connector saved into a [`StreamState`]; anything else of another shape is refused.

use serde_json::Value;

use super::{Resume, StreamState, TypedState};
use crate::key_ranges::{self, KeyPage, Progress};
use crate::paging::{AdaptivePageSize, CursorTracker, SharedPageSize};
use crate::{
    ConnectorError, Host, ReadRequest, ReadSummary, RecordWriter, SyncMode, TaskSpec, inflight,
};

/// The most records a key-paged page asks for.
const MAX_PAGE: u32 = 100_000;

/// Records per batch handed to the host.
const BATCH: usize = 1000;

/// One stream listed by key, with the connection's settings `S`. A list of them is a
/// `Vec<Box<dyn AnyKeyed<S>>>`.
pub trait KeyedStream<S>: Send + Sync + 'static {
    /// What one read lists.
    type Listing: KeyListing;

    /// The stream's task spec (name, description, record schema, key, cursor).
    fn spec(&self) -> TaskSpec;

    /// Records per page when the read does not say (at least 2: a listing from a key
    /// includes that key's row, so a page of one could never advance).
    fn page_size(&self) -> u32 {
        1000
    }

    /// Opens one read: `since` is the incremental lower bound (the cursor's value the
    /// listing must start from, `None`: every row), the request says which columns.
    fn open(
        &self,
        host: &Host,
        settings: &S,
        request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Self::Listing, ConnectorError>;

    /// A state of a shape an earlier version of the connector saved, as the
    /// [`StreamState`] it means; `None` (the default, and for a state of the current
    /// shape): the state is read as a [`StreamState`]. Warn through `host` when the
    /// conversion loses the position (the read then starts over).
    fn migrate_state(
        &self,
        _host: &Host,
        _state: &Value,
    ) -> Result<Option<StreamState<()>>, ConnectorError> {
        Ok(None)
    }
}

/// What one read of a [`KeyedStream`] lists. Its methods are called from several threads
/// (`page`) and on the reading thread (`write`).
pub trait KeyListing: Sync {
    /// One listed row, as the page holds it (written into the batch by [`Self::write`]).
    type Row: Send;

    /// One page of up to `size` rows from key `from` on (`from` included when the source
    /// lists it so; `None`: the start), up to `end` (excluded; only given to a
    /// [`Self::bounded`] listing). `asked` in the answer is the size a shorter page is
    /// measured against: a shorter page ends the listing (or, bounded, the range). A
    /// timeout error makes the SDK ask again with a smaller `size`.
    fn page(
        &self,
        host: &Host,
        size: u32,
        from: Option<&str>,
        end: Option<&str>,
    ) -> Result<KeyPage<Self::Row>, ConnectorError>;

    /// The row's key: the listing's order is its bytes' order.
    fn key<'r>(&self, row: &'r Self::Row) -> &'r str;

    /// The row's cursor value, for a stream with a cursor (`None`: no value).
    fn cursor<'r>(&self, _row: &'r Self::Row) -> Option<&'r Value> {
        None
    }

    /// Writes the records of `row` into `out` and returns the requests that took: 0 for a
    /// row that is its record, more for a parent row whose records are asked for by
    /// requests of their own (sub-requests per parent row, each counted as a page).
    fn write(
        &self,
        host: &Host,
        row: &Self::Row,
        out: &mut RecordWriter,
    ) -> Result<u64, ConnectorError>;

    /// Whether [`Self::page`] honours `end` ([`key_ranges::read_bounded`]).
    fn bounded(&self) -> bool {
        false
    }

    /// Pages in flight for this listing when the read asks for `asked`: 1 for a listing
    /// whose keys' byte order is not its order (a numeric key), or whose rows make
    /// requests of their own.
    fn pages_in_flight(&self, asked: usize) -> usize {
        asked
    }
}

/// A [`KeyedStream`] with its types erased, so that streams of different listings live in
/// one list (as [`super::AnyStream`] does for [`super::RestStream`]s).
pub trait AnyKeyed<S>: Send + Sync {
    /// The stream's task spec.
    fn spec(&self) -> TaskSpec;
    /// Reads the stream ([`read_keyed`]).
    fn read_stream(
        &self,
        host: &Host,
        settings: &S,
        request: &ReadRequest,
    ) -> Result<ReadSummary, ConnectorError>;
}

impl<S, K: KeyedStream<S>> AnyKeyed<S> for K {
    fn spec(&self) -> TaskSpec {
        KeyedStream::spec(self)
    }

    fn read_stream(
        &self,
        host: &Host,
        settings: &S,
        request: &ReadRequest,
    ) -> Result<ReadSummary, ConnectorError> {
        read_keyed(self, host, settings, request)
    }
}

/// Reads `stream` for `request`: every page committed with its checkpoint, resumed after
/// the state's watermark.
pub fn read_keyed<S, K: KeyedStream<S>>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
) -> Result<ReadSummary, ConnectorError> {
    let spec = stream.spec();
    let state = state(stream, host, request)?;
    let resume = match state.resume {
        None => None,
        Some(Resume::Key(k)) => Some(k),
        Some(other) => {
            return Err(ConnectorError::invalid_input(format!(
                "the state of task '{}' resumes at {other:?}, which is not a key: it was not \
                 saved by this stream",
                request.task
            )));
        }
    };
    let incremental = request.sync_mode == SyncMode::Incremental && spec.cursor_field.is_some();
    // While a read is under way the state's cursor is the bound it started from; a
    // resumed read keeps it.
    let since = state.cursor.clone().filter(|_| incremental);
    let listing = stream.open(host, settings, request, since.as_ref())?;
    let size = request
        .page_size
        .unwrap_or(stream.page_size())
        .clamp(2, MAX_PAGE);
    let shared = SharedPageSize::new(AdaptivePageSize::new(size, (size / 32).max(2), size));
    let in_flight = listing.pages_in_flight(inflight::pages_in_flight(request));
    let mut out = RecordWriter::new(host, &request.task, BATCH);
    let mut seen = CursorTracker::new(resume.as_ref().and(state.seen));
    let tracks = spec.cursor_field.is_some();
    let mut requests = 0u64;
    let on_page = |rows: Vec<<K::Listing as KeyListing>::Row>, progress: Progress<'_>| {
        for row in &rows {
            if tracks && let Some(v) = listing.cursor(row) {
                seen.observe(v);
            }
            let n = listing.write(host, row, &mut out)?;
            if n > 0 {
                requests += n;
                host.report_pages(n);
                host.check_cancelled()?;
            }
        }
        let at = progress.watermark.map(str::to_string).or(resume.clone());
        out.commit(&StreamState::<()> {
            cursor: since.clone(),
            seen: seen.value().cloned(),
            resume: at.map(Resume::Key),
        })
    };
    let fetch = |from: Option<&str>, end: Option<&str>| {
        shared
            .run(host, |n| listing.page(host, n, from, end))
            .map(|(page, _)| page)
    };
    let pages = if listing.bounded() {
        key_ranges::read_bounded(
            host,
            in_flight,
            resume.clone(),
            fetch,
            key_of(&listing),
            on_page,
        )?
    } else {
        let fetch = |from: Option<&str>| fetch(from, None);
        key_ranges::read(
            host,
            in_flight,
            resume.clone(),
            fetch,
            key_of(&listing),
            on_page,
        )?
    };
    // After a whole pass, the highest stamp seen is where the next incremental read starts
    // (records stamped exactly then are read again and land on their key).
    let done = StreamState::<()> {
        cursor: seen.value().cloned().or(state.cursor),
        seen: None,
        resume: None,
    };
    out.commit(&done)?;
    Ok(ReadSummary {
        records: out.written(),
        pages: pages + requests,
        state: Some(
            serde_json::to_value(&done)
                .map_err(|e| ConnectorError::connector(format!("encoding the state: {e}")))?,
        ),
    })
}

/// A listing's row key as `key_ranges` takes it.
fn key_of<L: KeyListing>(listing: &L) -> impl Fn(&L::Row) -> &str + Sync + '_ {
    move |row| listing.key(row)
}

/// The request's state, an older shape migrated first.
fn state<S, K: KeyedStream<S>>(
    stream: &K,
    host: &Host,
    request: &ReadRequest,
) -> Result<StreamState<()>, ConnectorError> {
    if let Some(old) = &request.state
        && let Some(migrated) = stream.migrate_state(host, old)?
    {
        return Ok(migrated);
    }
    Ok(request.state()?.unwrap_or_default())
}
