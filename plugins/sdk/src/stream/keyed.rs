//! Keyed streams: a source listed in the order of a key, resumed at a key. One concept for
//! the SDK's key-based sources, whatever their paging:
//! - listed "from this key on", the key's row included (M3's MI `Lst*` transactions,
//!   EXPORTMI, any API with a `from=` key): [`KeyStart::FromKey`], pages in flight as key
//!   ranges read side by side ([`crate::key_ranges`]; [`KeyPaging::BoundedRanges`]: a
//!   range's later pages end at its end);
//! - queried "after this key" (`$filter=Key gt 'x'`, `where id > 7`): [`KeyStart::AfterKey`],
//!   the answers' next links followed ([`KeyPaging::Links`]) and, where a full page gives
//!   none or the listing asks for them ([`KeyPaging::Windows`]), windows by offset in flight
//!   (`after_key.rs`).
//!
//! An author declares a [`KeyedStream`] (what it is, and [`KeyedStream::open`]: the set-up
//! calls of one read — field metadata, the columns the read selects, the paging asked —
//! into a [`KeyListing`]) and the listing (one page at a key, a row's key, how a row is
//! written). [`read_keyed`] does the rest, as [`super::read`] does for a
//! [`super::RestStream`]: the loop with a cancel check before every page, a commit per
//! page with its checkpoint, the 504 contract (a page that keeps timing out is asked again
//! smaller), incremental reads from the state's cursor, and the state:
//! - from a key: a [`StreamState`] whose resume point is the watermark ([`Resume::Key`]);
//!   an interrupted read goes on after it, records of later ranges already handed over are
//!   read again and land on their key. The highest cursor value handed over (`seen`)
//!   becomes the next read's lower bound only when the listing is complete (rows come in
//!   key order, not in cursor order). Rows may stand for records asked for by requests of
//!   their own (an order and its lines, [`KeyListing::write`]): they count as pages. A
//!   state an earlier version of the connector saved is turned into a [`StreamState`] by
//!   [`KeyedStream::migrate_state`];
//! - after a key: a [`super::AfterKeyState`] (`after`, the last key handed over), the
//!   cursor's high-water mark asked first ([`KeyListing::high_water`]) so a record changed
//!   while the read runs is seen by the next one. The same stream read from several
//!   partitions (companies) is [`super::read_partitioned`].
//!
//! Anything of another shape in the state is refused, never read as "no state".

use serde_json::Value;

use super::{Resume, StreamState, TypedState};
use crate::key_ranges::{self, KeyPage, Progress};
use crate::paging::{AdaptivePageSize, CursorTracker, SharedPageSize};
use crate::{
    ConnectorError, Host, ReadRequest, ReadSummary, RecordWriter, SyncMode, TaskSpec, inflight,
};

/// The most records a key-paged page asks for.
const MAX_PAGE: u32 = 100_000;

/// Records per batch handed to the host by a listing from a key.
const BATCH: usize = 1000;

/// Where a listing asked at a key starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStart {
    /// At the key, its row included (the MI rule): the SDK drops the repeated row.
    FromKey,
    /// After the key: nothing is repeated.
    AfterKey,
}

/// How a listing's pages are asked for, and kept in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPaging {
    /// [`KeyStart::FromKey`]: from the last key, key ranges read side by side.
    Ranges,
    /// [`KeyStart::FromKey`]: as [`Self::Ranges`], a range's later pages ending at the
    /// range's end ([`PageAt::end`]).
    BoundedRanges,
    /// [`KeyStart::AfterKey`]: the answers' next links followed one after the other; a
    /// full page without one goes on by windows.
    Links,
    /// [`KeyStart::AfterKey`]: windows by offset from the start (links inside a window
    /// still followed), so that the read's pages in flight are asked at once.
    Windows,
}

impl KeyPaging {
    /// Where a listing of this paging starts at a key.
    pub fn start(self) -> KeyStart {
        match self {
            Self::Ranges | Self::BoundedRanges => KeyStart::FromKey,
            Self::Links | Self::Windows => KeyStart::AfterKey,
        }
    }
}

/// Where one page is asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageAt<'a> {
    /// Records to ask for.
    pub size: u32,
    /// The key the page starts at (included or not, as [`KeyListing::START`] says);
    /// `None`: the start of the listing.
    pub key: Option<&'a str>,
    /// [`KeyPaging::BoundedRanges`]: the key the page ends before.
    pub end: Option<&'a str>,
    /// [`KeyPaging::Links`], [`KeyPaging::Windows`]: a window of `size` records from this
    /// offset of the query that starts after `key`; `None`: the query's first page.
    pub window: Option<u64>,
    /// The next link an earlier answer gave: ask the page it points to (of `size`
    /// records); the other fields are then what the query was asked with.
    pub next: Option<&'a str>,
}

/// One stream listed by key, with the connection's settings `S`. A list of them is a
/// `Vec<Box<dyn AnyKeyed<S>>>`.
pub trait KeyedStream<S>: Send + Sync {
    /// What one read lists.
    type Listing: KeyListing;

    /// The stream's task spec (name, description, record schema, key, cursor): the read
    /// takes its name and cursor from it.
    fn spec(&self) -> TaskSpec;

    /// Records per page when the read does not say (from a key at least 2: a listing from
    /// a key includes that key's row, so a page of one could never advance).
    fn page_size(&self) -> u32 {
        1000
    }

    /// The smallest page timeouts shrink to; `None`: from a key a 32nd of the page (at
    /// least 2), after a key 10.
    fn min_page_size(&self) -> Option<u32> {
        None
    }

    /// Opens one read: `since` is the incremental lower bound (the cursor's value the
    /// listing must start from, `None`: every row), the request says which columns (and
    /// any option of the paging).
    fn open(
        &self,
        host: &Host,
        settings: &S,
        request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Self::Listing, ConnectorError>;

    /// A listing from a key: a state of a shape an earlier version of the connector saved,
    /// as the [`StreamState`] it means; `None` (the default, and for a state of the
    /// current shape): the state is read as a [`StreamState`]. Warn through `host` when
    /// the conversion loses the position (the read then starts over).
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

    /// Where a page asked at a key starts: what every [`Self::paging`] of this listing
    /// has in common, and what its state keeps.
    const START: KeyStart = KeyStart::FromKey;

    /// How this read's pages are asked for; its [`KeyPaging::start`] must be
    /// [`Self::START`]. By default open key ranges from a key, next links after one.
    fn paging(&self) -> KeyPaging {
        match Self::START {
            KeyStart::FromKey => KeyPaging::Ranges,
            KeyStart::AfterKey => KeyPaging::Links,
        }
    }

    /// One page: up to `at.size` rows from (or after) `at.key`, or the page of a next
    /// link. `asked` in the answer is the size a shorter page is measured against: a
    /// shorter page without a next link ends the listing (or, bounded, the range). A
    /// timeout error makes the SDK ask again with a smaller size; an answer of another
    /// shape is an error, never an empty page.
    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Self::Row>, ConnectorError>;

    /// The row's key: from a key the listing's order is its bytes' order; after a key it
    /// is the key's values as a JSON array ([`super::record_key`]), kept in the state.
    fn key<'r>(&self, row: &'r Self::Row) -> &'r str;

    /// Whether the rows have a key the listing is ordered by. A listing after a key
    /// without one (an OData set whose key is unknown) is never asked again after a key:
    /// after a timeout it goes on by windows, one at a time.
    fn ordered(&self) -> bool {
        true
    }

    /// The row's cursor value, for a stream with a cursor (`None`: no value).
    fn cursor<'r>(&self, _row: &'r Self::Row) -> Option<&'r Value> {
        None
    }

    /// After a key: the cursor's highest value at or above the read's lower bound now
    /// (one record), asked before the first page; `None`: the stream has no cursor.
    fn high_water(&self, _host: &Host) -> Result<Option<String>, ConnectorError> {
        Ok(None)
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

impl<S: Sync, K: KeyedStream<S>> AnyKeyed<S> for K {
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

/// Reads `stream` for `request`: every page committed with its checkpoint, resumed at the
/// state's key. A listing from a key ([`KeyStart::FromKey`]) is read in key ranges and
/// keeps a [`StreamState`] (the watermark as [`Resume::Key`], the highest cursor value
/// handed over in `seen`, made the next read's `cursor` once the listing is complete); one
/// after a key ([`KeyStart::AfterKey`]) asks the high-water mark first, follows next links
/// or windows and keeps an [`super::AfterKeyState`]. A state of another shape is refused.
pub fn read_keyed<S: Sync, K: KeyedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
) -> Result<ReadSummary, ConnectorError> {
    match K::Listing::START {
        KeyStart::FromKey => from_key(stream, host, settings, request),
        KeyStart::AfterKey => super::after_key::read(stream, host, settings, request),
    }
}

/// A listing whose paging does not start as its type says: a connector's mistake.
pub(super) fn wrong_paging(name: &str, paging: KeyPaging, start: KeyStart) -> ConnectorError {
    ConnectorError::connector(format!(
        "{name}: a listing whose START is KeyStart::{start:?} cannot be paged by \
         KeyPaging::{paging:?}"
    ))
}

/// The state as JSON.
pub(super) fn encode<T: serde::Serialize>(state: &T) -> Result<Value, ConnectorError> {
    serde_json::to_value(state)
        .map_err(|e| ConnectorError::connector(format!("encoding the state: {e}")))
}

/// [`read_keyed`] of a listing from a key: key ranges in flight, the watermark resumed.
fn from_key<S, K: KeyedStream<S> + ?Sized>(
    stream: &K,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
) -> Result<ReadSummary, ConnectorError> {
    let spec = stream.spec();
    super::refuse_partition(&spec.name, request)?;
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
    let bounded = match listing.paging() {
        KeyPaging::Ranges => false,
        KeyPaging::BoundedRanges => true,
        other => return Err(wrong_paging(&spec.name, other, KeyStart::FromKey)),
    };
    let size = request
        .page_size
        .unwrap_or(stream.page_size())
        .clamp(2, MAX_PAGE);
    let floor = stream.min_page_size().unwrap_or((size / 32).max(2));
    let shared = SharedPageSize::new(AdaptivePageSize::new(size, floor.min(size), size));
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
    let fetch = |key: Option<&str>, end: Option<&str>| {
        shared
            .run(host, |size| {
                listing.page(
                    host,
                    &PageAt {
                        size,
                        key,
                        end,
                        ..PageAt::default()
                    },
                )
            })
            .map(|(page, _)| page)
    };
    let key_of = key_of(&listing);
    let pages = if bounded {
        key_ranges::read_bounded(host, in_flight, resume.clone(), fetch, key_of, on_page)?
    } else {
        let fetch = |key: Option<&str>| fetch(key, None);
        key_ranges::read(host, in_flight, resume.clone(), fetch, key_of, on_page)?
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
        state: Some(encode(&done)?),
    })
}

/// A listing's row key as `key_ranges` takes it.
fn key_of<L: KeyListing>(listing: &L) -> impl Fn(&L::Row) -> &str + Sync + '_ {
    move |row| listing.key(row)
}

/// The request's state, an older shape migrated first.
fn state<S, K: KeyedStream<S> + ?Sized>(
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
