//! Streams read through an asynchronous query job: the SDK's loop for a source that runs a
//! query on its side (submit, poll its status, then fetch its result by offset), as SQL
//! services over a data lake do.
//!
//! The author writes a [`QueryJobStream`]: submit the query from a cursor, answer a job's
//! status, fetch one result page by offset (as raw JSON lines or as records). What
//! [`read_query_job`] does with it:
//! - waits for the job with a growing pause between polls (100 ms to 3 s), checking for
//!   cancellation; a status request that times out counts as "still running"; a cancel or
//!   the stream's [`QueryJobStream::wait_timeout`] cancels the job on the service;
//! - fetches the finished result by offset, the read's pages in flight at once and handed
//!   over in order ([`crate::ordered_pages`]), with a commit after every page: the state
//!   (`{cursor, job: {id, offset, mode, bound}}`) names the job and the rows of its result
//!   handed over, so an interrupted read goes on in the same job and repeats nothing;
//! - the 504 contract: a page that keeps timing out (the host's `timeout` kind) is asked
//!   again from the last page committed with half the rows, one page at a time from then on;
//! - an answer of the wrong shape is an error of kind `unexpected_body`: a page of more rows
//!   than asked, an empty page before the total the job announced, a total that changes;
//! - a job whose result the service no longer keeps is submitted again once from the read's
//!   cursor (rows handed over before come again, the destination keeps one per key); a second
//!   expiry in the same read is an error that keeps the last checkpoint;
//! - complete, the state is `{cursor}` with the bound [`QueryJobStream::submit`] gave: where
//!   the next incremental read starts.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::TypedState;
use crate::inflight::pages_in_flight;
use crate::ordered_pages::{Flow, fetch_in_order};
use crate::paging::AdaptivePageSize;
use crate::retry::sleep_cancellable;
use crate::{ConnectorError, Host, ReadRequest, ReadSummary, RecordWriter, SyncMode};

/// A job the service accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The service's id of the job.
    pub id: String,
    /// The cursor a read of this job leaves when complete (a time at or before the
    /// submission, for instance); `None`: the read leaves the cursor it started from.
    pub bound: Option<String>,
}

/// What the service says of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// Still running (or queued).
    Running,
    /// Finished: its result can be fetched; `total` rows, when the service says.
    Finished {
        /// Rows of the result.
        total: Option<u64>,
    },
    /// Ended without a result (failed, cancelled on the service, refused): while the read
    /// waits for the job this error ends the read; a job to resume is submitted again.
    Failed(ConnectorError),
    /// The service no longer keeps the job or its result; `reason` says how it answered
    /// (`HTTP 404`).
    Gone {
        /// The answer, for the logs.
        reason: String,
    },
}

/// One answer to a result page request.
#[derive(Debug, Clone)]
pub enum JobPage {
    /// The rows asked for.
    Rows(ResultRows),
    /// The service no longer keeps the result; `reason` says how it answered.
    Gone {
        /// The answer, for the logs.
        reason: String,
    },
}

/// The rows of one result page.
#[derive(Debug, Clone)]
pub struct ResultRows {
    rows: Rows,
    /// Rows of the whole result, when the page says.
    pub total: Option<u64>,
    /// Whether the page may have been cut by a size limit of the service rather than by the
    /// end of the result: then a short page is not the end (asked on from where it stops).
    pub may_be_cut: bool,
}

#[derive(Debug, Clone)]
enum Rows {
    Lines {
        body: Vec<u8>,
        lines: Vec<Range<usize>>,
    },
    Records(Vec<Map<String, Value>>),
}

impl ResultRows {
    /// Rows that are lines of `body`, each one JSON object already checked by the stream:
    /// handed over as they came, no value built ([`RecordWriter::push_line`]).
    pub fn lines(body: Vec<u8>, lines: Vec<Range<usize>>) -> Self {
        Self {
            rows: Rows::Lines { body, lines },
            total: None,
            may_be_cut: false,
        }
    }

    /// Rows as records.
    pub fn records(records: Vec<Map<String, Value>>) -> Self {
        Self {
            rows: Rows::Records(records),
            total: None,
            may_be_cut: false,
        }
    }

    /// Rows in the page.
    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Lines { lines, .. } => lines.len(),
            Rows::Records(r) => r.len(),
        }
    }

    /// Whether the page holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self, out: &mut RecordWriter) -> Result<(), ConnectorError> {
        match &self.rows {
            Rows::Lines { body, lines } => {
                for line in lines {
                    let row = body.get(line.clone()).ok_or_else(|| {
                        ConnectorError::connector(format!(
                            "a result row at bytes {line:?} lies outside the page's {} bytes",
                            body.len()
                        ))
                    })?;
                    out.push_line(row)?;
                }
            }
            Rows::Records(records) => {
                for r in records {
                    out.push(r)?;
                }
            }
        }
        Ok(())
    }
}

/// A stream read through a query job. One value per read: it knows what it reads (the
/// query, the columns, the connection's settings).
pub trait QueryJobStream: Send + Sync {
    /// The stream's (task's) name: the records are emitted under it.
    fn name(&self) -> &str;
    /// How messages name what is read.
    fn what(&self) -> String {
        self.name().to_string()
    }
    /// How messages name a job (`job 42`).
    fn job_name(&self, id: &str) -> String {
        format!("job {id}")
    }
    /// Whether the stream can be read incrementally (it has a cursor the query filters on).
    fn incremental(&self) -> bool;
    /// A saved cursor is one the query can filter on; `Err` says what was expected
    /// (`an ISO-8601 time`).
    fn check_cursor(&self, _cursor: &str) -> Result<(), String> {
        Ok(())
    }
    /// Rows per result page when the read does not say.
    fn page_size(&self) -> u32;
    /// The most rows the service serves in one page.
    fn max_page_size(&self) -> u32 {
        u32::MAX
    }
    /// The smallest page timeouts shrink to (less if the page starts smaller).
    fn min_page_size(&self) -> u32 {
        100
    }
    /// How long to wait for a job before cancelling it.
    fn wait_timeout(&self) -> Duration;
    /// Submits the query: rows whose cursor is at or after `since` (all rows when `None`).
    fn submit(&self, host: &Host, since: Option<&str>) -> Result<Submitted, ConnectorError>;
    /// One status request of job `id`. A non-`2xx` answer is [`JobStatus::Gone`] or
    /// [`JobStatus::Failed`]; `Err` is what the host reported (a timeout, a cancel).
    fn status(&self, host: &Host, id: &str) -> Result<JobStatus, ConnectorError>;
    /// Rows `offset..offset + size` of job `id`'s result. Refuse a body that is not a page
    /// (after asking again, [`crate::retry::fetch_decoded`]).
    fn page(
        &self,
        host: &Host,
        id: &str,
        offset: u64,
        size: u32,
    ) -> Result<JobPage, ConnectorError>;
    /// Asks the service to cancel job `id`, best effort (a cancel or the wait timeout).
    fn cancel(&self, _host: &Host, _id: &str) {}
}

/// A job being read: what the state keeps between pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// The service's id of the job.
    pub id: String,
    /// Rows of its result already handed over.
    pub offset: u64,
    /// The read's sync mode: only a read of the same mode goes on in the job.
    pub mode: SyncMode,
    /// The cursor the read leaves when it completes ([`Submitted::bound`]). Absent in
    /// states of connectors that kept none (then the read leaves the cursor it started from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
}

/// What a query-job stream checkpoints: `{cursor}` when complete, `{cursor, job}` during a
/// read. Other fields are refused: a state of another shape is never read as "no state".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryJobState {
    /// Where this read's query starts and, complete, the next incremental read's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The job of a read that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobState>,
}

/// New jobs one read submits when the result it reads expires; one more expiry (a result
/// kept much less than the service promises) is an error rather than a loop.
const MAX_RESUBMITS: u32 = 1;

/// Reads `stream` for `request`, resumed from the request's [`QueryJobState`].
pub fn read_query_job<Q: QueryJobStream + ?Sized>(
    stream: &Q,
    host: &Host,
    request: &ReadRequest,
) -> Result<ReadSummary, ConnectorError> {
    super::refuse_partition(stream.name(), request)?;
    let incremental = request.sync_mode == SyncMode::Incremental;
    if incremental && !stream.incremental() {
        return Err(ConnectorError::invalid_input(format!(
            "{} has no cursor field, so it can only be read in full",
            stream.name()
        )));
    }
    let prior: QueryJobState = request.state()?.unwrap_or_default();
    if let Some(c) = prior.cursor.as_deref()
        && let Err(expected) = stream.check_cursor(c)
    {
        return Err(ConnectorError::invalid_input(format!(
            "the state of {}: cursor {c:?} is not {expected}",
            stream.name()
        )));
    }
    let resumable = prior.job.filter(|j| j.mode == request.sync_mode);
    let lower = if incremental || resumable.is_some() {
        prior.cursor
    } else {
        None
    };
    let initial = request
        .page_size
        .unwrap_or(stream.page_size())
        .clamp(1, stream.max_page_size().max(1));
    let mut run = Run {
        stream,
        host,
        what: stream.what(),
        mode: request.sync_mode,
        lower,
        initial,
        in_flight: pages_in_flight(request),
        out: RecordWriter::new(host, stream.name(), initial.clamp(100, 10_000) as usize),
        pages: 0,
    };
    let (mut job, mut total) = match resumable {
        Some(j) => match run.resume(j)? {
            Some(found) => found,
            None => run.submit()?,
        },
        None => run.submit()?,
    };
    let mut resubmits = 0;
    while let Some(reason) = run.result(&mut job, total)? {
        resubmits += 1;
        let name = stream.job_name(&job.id);
        if resubmits > MAX_RESUBMITS {
            return Err(ConnectorError::gateway(format!(
                "{}: the result of {name} expired ({reason}) while it was read, after \
                 {MAX_RESUBMITS} new query already; the state keeps the rows read so far, \
                 run the task again",
                run.what
            )));
        }
        host.warn(&format!(
            "{}: the result of {name} is no longer kept ({reason}) at row {}; querying again \
             from {} (rows already delivered come again, the destination keeps one per key)",
            run.what,
            job.offset,
            run.from()
        ));
        (job, total) = run.submit()?;
    }
    let state = QueryJobState {
        cursor: job.bound.clone().or(run.lower.clone()),
        job: None,
    };
    run.out.commit(&state)?;
    let records = run.out.written();
    host.info(&format!(
        "{}: {records} rows in {} pages from {}",
        run.what,
        run.pages,
        stream.job_name(&job.id)
    ));
    Ok(ReadSummary {
        records,
        pages: run.pages,
        state: Some(
            serde_json::to_value(&state)
                .map_err(|e| ConnectorError::connector(format!("encoding the state: {e}")))?,
        ),
    })
}

/// Polls job `id` of `stream` until it is no longer running, the pause growing from 100 ms
/// to 3 s; returns its total. On a cancel or after [`QueryJobStream::wait_timeout`] the job
/// is cancelled on the service. A status request that times out counts as "still running".
pub fn wait_for_job<Q: QueryJobStream + ?Sized>(
    stream: &Q,
    host: &Host,
    id: &str,
) -> Result<Option<u64>, ConnectorError> {
    let started = Instant::now();
    let timeout = stream.wait_timeout();
    let mut pause = Duration::from_millis(100);
    loop {
        match stream.status(host, id) {
            Ok(JobStatus::Finished { total }) => return Ok(total),
            Ok(JobStatus::Running) => {}
            // The status request timed out (after the host's retries): the service is
            // busy; ask again within the job's own timeout.
            Err(e) if e.is_timeout() => {}
            Ok(JobStatus::Failed(e)) => return Err(e),
            Ok(JobStatus::Gone { reason }) => {
                return Err(ConnectorError::gateway(format!(
                    "{}: the service no longer knows {} ({reason})",
                    stream.what(),
                    stream.job_name(id)
                )));
            }
            Err(e) => {
                if e.is_cancelled() {
                    stream.cancel(host, id);
                }
                return Err(e);
            }
        }
        if started.elapsed() > timeout {
            stream.cancel(host, id);
            return Err(ConnectorError::gateway(format!(
                "{}: {} still running after {} s; cancelled it (raise the query timeout of \
                 the connection)",
                stream.what(),
                stream.job_name(id),
                timeout.as_secs()
            )));
        }
        if let Err(e) = sleep_cancellable(host, pause) {
            stream.cancel(host, id);
            return Err(e);
        }
        pause = (pause * 3 / 2).min(Duration::from_secs(3));
    }
}

/// A read under way.
struct Run<'a, Q: ?Sized> {
    stream: &'a Q,
    host: &'a Host,
    what: String,
    mode: SyncMode,
    /// The cursor the read's query starts from.
    lower: Option<String>,
    initial: u32,
    in_flight: usize,
    out: RecordWriter,
    /// Result pages taken (an answer that the result is gone counts: the host saw it).
    pages: u64,
}

/// How far a page leaves the result: at its end, short of where the pages in flight were
/// asked, or on.
enum Taken {
    End,
    Short,
    Full,
}

impl<Q: QueryJobStream + ?Sized> Run<'_, Q> {
    /// Where a new query starts, for the logs.
    fn from(&self) -> String {
        self.lower
            .as_deref()
            .map_or_else(|| "the start".into(), |c| format!("the cursor {c}"))
    }

    /// The saved job and its total if its result can still be read; `None` when a new job
    /// must be submitted (it was said why).
    fn resume(&self, job: JobState) -> Result<Option<(JobState, Option<u64>)>, ConnectorError> {
        let (what, name, from) = (&self.what, self.stream.job_name(&job.id), self.from());
        let status = match self.stream.status(self.host, &job.id) {
            // The wait counts a status that timed out as still running; here a job whose
            // state cannot be learnt is one that cannot be resumed: querying again
            // delivers what the job would have (the destination keeps one row per key).
            Err(e) if e.is_timeout() => JobStatus::Failed(e),
            other => other?,
        };
        match status {
            JobStatus::Finished { total } => {
                self.host
                    .info(&format!("{what}: resuming {name} at row {}", job.offset));
                return Ok(Some((job, total)));
            }
            JobStatus::Running => self.host.warn(&format!(
                "{what}: {name} cannot be resumed (it is running again); querying again from \
                 {from}"
            )),
            JobStatus::Failed(e) => self.host.warn(&format!(
                "{what}: {name} cannot be resumed ({}); querying again from {from}",
                e.message()
            )),
            JobStatus::Gone { reason } => self.host.warn(&format!(
                "{what}: the result of {name} is no longer kept ({reason}); querying again \
                 from {from} (rows already delivered come again, the destination keeps one \
                 per key)"
            )),
        }
        Ok(None)
    }

    /// Submits the query from the read's cursor and waits for the job: the job at row 0
    /// and its total.
    fn submit(&self) -> Result<(JobState, Option<u64>), ConnectorError> {
        let job = self.stream.submit(self.host, self.lower.as_deref())?;
        let total = wait_for_job(self.stream, self.host, &job.id)?;
        Ok((
            JobState {
                id: job.id,
                offset: 0,
                mode: self.mode,
                bound: job.bound,
            },
            total,
        ))
    }

    /// Reads job's result from `job.offset` to the end, a commit after every page. Returns
    /// `Some(reason)` when the service no longer keeps the result (the rows before
    /// `job.offset` were handed over; pages in flight after it are dropped).
    ///
    /// A page that times out is asked again from the same offset with half the rows, and
    /// from then on one page at a time: the pages in flight were all asked at the size that
    /// just proved too big, and each costs the gateway's whole target timeout twice.
    fn result(
        &mut self,
        job: &mut JobState,
        mut total: Option<u64>,
    ) -> Result<Option<String>, ConnectorError> {
        let mut pager = AdaptivePageSize::new(
            self.initial,
            self.initial.min(self.stream.min_page_size()),
            self.initial,
        );
        let mut in_flight = self.in_flight;
        loop {
            if total.is_some_and(|t| job.offset >= t) {
                return Ok(None);
            }
            let size = pager.get();
            let start = job.offset;
            let id = job.id.clone();
            let mut done = false;
            let mut gone = None;
            let (stream, host) = (self.stream, self.host);
            let run = fetch_in_order(
                host,
                in_flight,
                total.map(|t| (t - start).div_ceil(u64::from(size))),
                |i| {
                    let offset = start.saturating_add(i.saturating_mul(u64::from(size)));
                    stream.page(host, &id, offset, size)
                },
                |_, page| {
                    // fetch_in_order reports every answer taken as a page, this one too.
                    self.pages += 1;
                    let rows = match page {
                        JobPage::Rows(rows) => rows,
                        JobPage::Gone { reason } => {
                            gone = Some(reason);
                            return Ok(Flow::End);
                        }
                    };
                    match self.take(job, &mut total, size, &rows)? {
                        Taken::End => {
                            done = true;
                            Ok(Flow::End)
                        }
                        Taken::Short => Ok(Flow::End),
                        Taken::Full => Ok(Flow::Next),
                    }
                },
            );
            match run {
                Ok(_) if gone.is_some() => return Ok(gone),
                Ok(_) if done => return Ok(None),
                // The pages in flight assumed full pages before them, or the pages the
                // total announced were all read: go on from where the result stands.
                Ok(_) => {}
                Err(e) if e.is_timeout() => {
                    host.warn(&format!(
                        "{}: the gateway timed out on a page of {size} records; asking for \
                         smaller pages, one at a time",
                        self.what
                    ));
                    pager.on_timeout(e)?;
                    in_flight = 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the page at `job.offset`: checks it against what was asked and announced,
    /// hands its rows over and commits.
    fn take(
        &mut self,
        job: &mut JobState,
        total: &mut Option<u64>,
        size: u32,
        rows: &ResultRows,
    ) -> Result<Taken, ConnectorError> {
        let (what, name) = (&self.what, self.stream.job_name(&job.id));
        if total.is_none() {
            *total = rows.total;
        }
        if let (Some(job_total), Some(page_total)) = (*total, rows.total)
            && job_total != page_total
        {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {what}: a result page of {name} says the result has \
                 {page_total} rows, the job said {job_total}"
            )));
        }
        let n = rows.len() as u64;
        // More rows than asked would overlap the next page, asked from offset + size.
        if n > u64::from(size) {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {what}: {name} gave {n} rows at row {} for a limit of {size}",
                job.offset
            )));
        }
        // An empty page before the end the job announced is not the end.
        if n == 0
            && let Some(t) = total.filter(|t| job.offset < *t)
        {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {what}: {name} gave an empty result page at row {} of {t}",
                job.offset
            )));
        }
        rows.write(&mut self.out)?;
        job.offset += n;
        self.out.commit(&QueryJobState {
            cursor: self.lower.clone(),
            job: Some(job.clone()),
        })?;
        let short = n < u64::from(size);
        let end = match *total {
            Some(t) => job.offset >= t,
            None => n == 0 || (short && !rows.may_be_cut),
        };
        Ok(if end {
            Taken::End
        } else if short {
            Taken::Short
        } else {
            Taken::Full
        })
    }
}
