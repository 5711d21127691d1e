//! The loop of one stream: pages requested, parsed, emitted and committed with their
//! checkpoint, until the listing ends, the host cancels or a page fails.

use serde::Serialize;
use serde_json::Value;

use super::{Answer, Page, PageRequest, Paging, RestStream, Resume, StreamState, TypedState};
use crate::decode::{body_head, describe};
use crate::inflight::pages_in_flight;
use crate::ordered_pages::{Flow, fetch_in_order};
use crate::paging::{AdaptivePageSize, CursorTracker};
use crate::retry::{Fetched, fetch_decoded};
use crate::{ConnectorError, Host, ReadRequest, ReadSummary, RecordWriter, SyncMode};

// A partition of an offset-paged read: its own file, a child of this one for the loop's
// internals.
#[path = "stride.rs"]
mod stride;
pub(crate) use stride::declare as declare_partitionable;
// The after-key windows of a keyed listing are partitioned by the same stride.
pub(super) use stride::{Stride, check as check_partition};

/// Reads `stream` for `request` with the connection's `settings`: every page committed
/// with its checkpoint (a [`StreamState`]), resumed from the request's state.
pub fn read<S: Sync, R: RestStream<S>>(
    stream: &R,
    host: &Host,
    settings: &S,
    request: &ReadRequest,
) -> Result<ReadSummary, ConnectorError> {
    if let Some(part) = request.partition {
        let offset_paged = stream.paging() == Paging::Offset;
        stride::check(stream.name(), offset_paged, stream.cursor(), request, part)?;
    }
    let state: StreamState<R::Token> = request.state()?.unwrap_or_default();
    let incremental = request.sync_mode == SyncMode::Incremental && stream.cursor().is_some();
    let since = incremental.then(|| state.cursor.clone()).flatten();
    // A resume point belongs to the query it was taken in: the one filtered from `cursor`.
    let resume = if since == state.cursor {
        state.resume
    } else {
        None
    };
    let start = match &resume {
        Some(_) => state.seen.or_else(|| since.clone()),
        None => since.clone(),
    };
    let size = request.page_size.unwrap_or(stream.page_size()).max(1);
    let mut sink = Sink {
        out: RecordWriter::new(host, &request.task, size as usize),
        cursor_field: stream.cursor(),
        columns: request.columns.as_deref(),
        since_text: since.as_ref().map(text),
        since,
        tracker: CursorTracker::new(start),
        pages: 0,
    };
    let pager = AdaptivePageSize::new(size, (size / 32).max(1), size);
    let read = Read {
        stream,
        host,
        settings,
        request,
    };
    match stream.paging() {
        Paging::Offset => {
            let from = match resume {
                Some(Resume::Offset(n)) => Some(n),
                _ => None,
            };
            match request.partition {
                Some(part) => read.by_stride(&mut sink, size, part, from)?,
                None => read.by_offset(&mut sink, pager, from.unwrap_or(0))?,
            }
        }
        Paging::Token => {
            let token = match resume {
                Some(Resume::Token(t)) => Some(t),
                _ => None,
            };
            read.by_token(&mut sink, pager, token)?;
        }
    }
    Ok(ReadSummary {
        records: sink.out.written(),
        pages: sink.pages,
        state: Some(to_value(&sink.state::<R::Token>(None))?),
    })
}

struct Read<'a, S, R> {
    stream: &'a R,
    host: &'a Host,
    settings: &'a S,
    request: &'a ReadRequest,
}

impl<S: Sync, R: RestStream<S>> Read<'_, S, R> {
    /// Pages by offset, up to the request's pages in flight, from record `from` on. A page
    /// that keeps timing out halves the page and goes on one page at a time from the last
    /// page committed: the pages in flight were all asked at the size that proved too big.
    fn by_offset(
        &self,
        sink: &mut Sink<'_>,
        mut pager: AdaptivePageSize,
        mut from: u64,
    ) -> Result<(), ConnectorError> {
        let mut in_flight = pages_in_flight(self.request);
        loop {
            let size = pager.get();
            let start = from;
            let since = sink.since_text.clone();
            let run = fetch_in_order(
                self.host,
                in_flight,
                None,
                |i| {
                    let offset = start.saturating_add(i.saturating_mul(u64::from(size)));
                    self.fetch(&self.page(size, offset, None, since.as_deref()))
                },
                |_, page| {
                    let n = sink.write(page.records)?;
                    from += n;
                    if n < u64::from(size) {
                        sink.commit::<R::Token>(None)?;
                        Ok(Flow::End)
                    } else {
                        sink.commit(Some(Resume::<R::Token>::Offset(from)))?;
                        Ok(Flow::Next)
                    }
                },
            );
            match run {
                Ok(_) => return Ok(()),
                Err(e) if e.is_timeout() => {
                    self.host.warn(&format!(
                        "{}: the gateway timed out on a page of {size} records; asking for \
                         smaller pages",
                        self.stream.name()
                    ));
                    pager.on_timeout(e)?;
                    in_flight = 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Pages by token, one after the other; a page that keeps timing out is asked again
    /// with half as many records.
    fn by_token(
        &self,
        sink: &mut Sink<'_>,
        mut pager: AdaptivePageSize,
        mut token: Option<R::Token>,
    ) -> Result<(), ConnectorError> {
        let mut offset = 0u64;
        loop {
            let since = sink.since_text.clone();
            let (page, _) = pager.run(self.host, |size| {
                self.fetch(&self.page(size, offset, token.as_ref(), since.as_deref()))
            })?;
            self.host.check_cancelled()?;
            offset += sink.write(page.records)?;
            self.host.report_pages(1);
            match page.next {
                Some(next) if same_token(token.as_ref(), &next)? => {
                    return Err(ConnectorError::unexpected_body(format!(
                        "{}: the answer's next token is the one it was asked with; reading on \
                         would loop",
                        self.stream.name()
                    )));
                }
                Some(next) => {
                    sink.commit(Some(Resume::Token(next.clone())))?;
                    token = Some(next);
                }
                None => return sink.commit::<R::Token>(None),
            }
        }
    }

    fn page<'t>(
        &'t self,
        size: u32,
        offset: u64,
        token: Option<&'t R::Token>,
        since: Option<&'t str>,
    ) -> PageRequest<'t, R::Token> {
        PageRequest {
            size,
            offset,
            token,
            since,
            columns: self.request.columns.as_deref(),
        }
    }

    /// One page: the request sent, a refused answer asked again, a non-`2xx` an error
    /// naming the request and its answer.
    fn fetch(
        &self,
        page: &PageRequest<'_, R::Token>,
    ) -> Result<Page<R::Record, R::Token>, ConnectorError> {
        let request = self.stream.request(self.settings, page);
        let what = format!("{}: {}", self.stream.name(), describe(&request));
        let policy = self.stream.retry_policy();
        let fetched = fetch_decoded(self.host, &request, &what, &policy, |response| {
            self.stream.parse(&Answer {
                request: &request,
                response,
            })
        })?;
        match fetched {
            Fetched::Decoded(page) => Ok(page),
            Fetched::Status(resp) => Err(ConnectorError::gateway(format!(
                "{what} answered HTTP {}: {}",
                resp.status,
                body_head(&resp)
            ))),
        }
    }
}

/// Where a stream's records go: the writer, the cursor's high-water mark, the columns.
struct Sink<'a> {
    out: RecordWriter,
    cursor_field: Option<&'a str>,
    columns: Option<&'a [String]>,
    since: Option<Value>,
    since_text: Option<String>,
    tracker: CursorTracker,
    pages: u64,
}

impl Sink<'_> {
    /// Emits one page's records (the columns of the read only); returns how many.
    fn write<T: Serialize>(&mut self, records: Vec<T>) -> Result<u64, ConnectorError> {
        let n = records.len() as u64;
        for record in records {
            if self.cursor_field.is_none() && self.columns.is_none() {
                self.out.push(&record)?;
                continue;
            }
            let mut value = to_value(&record)?;
            if let (Some(field), Value::Object(fields)) = (self.cursor_field, &value)
                && let Some(v) = fields.get(field)
            {
                self.tracker.observe(v);
            }
            if let (Some(keep), Value::Object(fields)) = (self.columns, &mut value) {
                fields.retain(|k, _| keep.iter().any(|c| c == k));
            }
            self.out.push(&value)?;
        }
        self.pages += 1;
        Ok(n)
    }

    /// The state now: going on at `resume`, or (`None`) the read's end.
    fn state<T: Clone>(&self, resume: Option<Resume<T>>) -> StreamState<T> {
        match resume {
            Some(r) => StreamState {
                cursor: self.since.clone(),
                seen: self.tracker.value().cloned(),
                resume: Some(r),
            },
            None => StreamState {
                cursor: self.tracker.value().cloned(),
                seen: None,
                resume: None,
            },
        }
    }

    /// Hands the page's records over with the checkpoint that covers them.
    fn commit<T: Serialize + Clone>(
        &mut self,
        resume: Option<Resume<T>>,
    ) -> Result<(), ConnectorError> {
        let state = self.state(resume);
        self.out.commit(&state)
    }
}

/// Whether `next` is the token the page was asked with (compared as JSON).
fn same_token<T: Serialize>(asked: Option<&T>, next: &T) -> Result<bool, ConnectorError> {
    match asked {
        Some(asked) => Ok(to_value(asked)? == to_value(next)?),
        None => Ok(false),
    }
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, ConnectorError> {
    serde_json::to_value(v)
        .map_err(|e| ConnectorError::connector(format!("encoding a record: {e}")))
}

/// A cursor value as the text a request filters on: a string as it is, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
