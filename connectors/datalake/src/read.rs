//! Reading one lake table with a Compass job, checkpointed after every result page.
//!
//! A finished job's result pages are addressed by offset, so the read keeps the task's
//! pages in flight ([`inflight`]) requested at once and takes them in order
//! ([`ordered_pages`]): the checkpoint after a page covers every row before it, as in a
//! sequential read.
//!
//! The state (JSON):
//! - complete: `{"cursor": "2026-…Z"}` — the next incremental read asks for
//!   `infor.lastmodified() >= cursor` (rows stamped at or after the cursor come again; the
//!   destination de-duplicates by primary key);
//! - during a read: also `"job": {"id", "offset", "mode", "bound"}` — a restart fetches the
//!   rest of the same job's result (Compass keeps results for about 20 hours) and repeats
//!   nothing; when the job is gone, it submits the query again from `cursor`.
//!
//! Why the cursor is the query's own bound, not the highest stamp read: a Compass result is
//! the table as of the job, and `infor.lastmodified()` (for data objects the
//! `dl_document_indexed_date`, since Infor OS 2023.02) is set by ingestion, which is
//! micro-batched (5 MB or 5 minutes). A row stamped before the highest stamp read may become
//! visible only after the job, and a row changed while its result is read arrives with its
//! old content; a cursor at the highest stamp read skips both for good. The bound is
//! instead a time at or before the submission (the earlier of this machine's clock before
//! the submit and the gateway's `Date` answer less a second) minus the connection's
//! ingestion lag, and the next query starts there: it reads the overlap again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ionport_plugin_sdk::inflight;
use ionport_plugin_sdk::ordered_pages::{self, Flow};
use ionport_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compass::{self, ResultPage};
use crate::{DlSettings, stamp};

/// What to read.
#[derive(Debug, Clone)]
pub struct Target {
    /// Stream (task) name.
    pub stream: String,
    /// Lake table.
    pub table: String,
    /// Columns to select; `None` for `*`.
    pub columns: Option<Vec<String>>,
    /// The change-stamp column, when known.
    pub cursor: Option<String>,
    /// Read the highest variation of each record *including* deleted ones (their
    /// `deleted` is true), not Compass's default that leaves them out.
    pub include_deleted: bool,
}

/// How a query's `FROM` asks Compass for the highest variation of each record including
/// deleted ones; `{table}` stands for the table. Infor documents a table function and a
/// query hint for this ("Select the maximum variation including deleted records", Data
/// Fabric user guide); this form is the one the emulator implements and has not been
/// checked against a tenant: see docs/real-tenant.md, "Deletes".
pub const INCLUDE_DELETED_FROM: &str = "infor.include_deleted({table})";

/// A job being read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState {
    /// Compass query id.
    pub id: String,
    /// Rows of its result already emitted.
    pub offset: u64,
    /// The read's sync mode.
    pub mode: SyncMode,
    /// The cursor this read leaves when it completes: the job's submission less the
    /// ingestion lag (ISO-8601). Absent in states of older versions (then the read leaves
    /// the cursor it started from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
}

/// The cursor a job submitted between `before` (this machine's clock just before the
/// submit) and an answer dated `server_date` leaves, `lag` earlier: at or before the
/// submission on both clocks. The `Date` header has whole seconds and is taken when the
/// answer is written, so a second is taken off it.
pub fn bound_of(before: SystemTime, server_date: Option<SystemTime>, lag: Duration) -> String {
    let server = server_date.map(|d| d.checked_sub(Duration::from_secs(1)).unwrap_or(d));
    let at = server.map_or(before, |s| s.min(before));
    let at = at.checked_sub(lag).unwrap_or(UNIX_EPOCH);
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    stamp::iso(ms)
}

/// The task state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DlState {
    /// Lower bound of `infor.lastmodified()` for this read (ISO-8601 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The job of a read that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobState>,
}

/// The Compass SQL of a read.
pub fn sql(target: &Target, lower: Option<&str>, extra: Option<&str>) -> String {
    let cols = target.columns.as_ref().map_or_else(
        || "*".to_string(),
        |c| {
            c.iter()
                .map(|n| format!("\"{}\"", n.replace('"', "")))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let mut conds = Vec::new();
    if let Some(l) = lower {
        conds.push(format!("infor.lastmodified() >= '{}'", l.replace('\'', "")));
    }
    if let Some(x) = extra.filter(|x| !x.trim().is_empty()) {
        conds.push(format!("({x})"));
    }
    let from = if target.include_deleted {
        INCLUDE_DELETED_FROM.replace("{table}", &target.table)
    } else {
        target.table.clone()
    };
    let mut q = format!("SELECT {cols} FROM {from}");
    if !conds.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conds.join(" AND "));
    }
    q
}

/// Reads `target`.
pub fn read(
    host: &Host,
    req: &ReadRequest,
    settings: &DlSettings,
    target: &Target,
) -> Result<ReadSummary, ConnectorError> {
    let incremental = req.sync_mode == SyncMode::Incremental;
    if incremental && target.cursor.is_none() {
        return Err(ConnectorError::invalid_input(format!(
            "{} has no change-stamp column in the Data Catalog, so it can only be read in full",
            target.stream
        )));
    }
    let prior: DlState = match &req.state {
        Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "the state of {} is not a Data Lake state ({e}): {v}",
                target.stream
            ))
        })?,
        _ => DlState::default(),
    };
    if let Some(c) = prior.cursor.as_deref()
        && stamp::parse_iso(c).is_none()
    {
        return Err(ConnectorError::invalid_input(format!(
            "the state of {}: cursor {c:?} is not an ISO-8601 time",
            target.stream
        )));
    }
    let resumable = prior.job.clone().filter(|j| j.mode == req.sync_mode);
    let lower = if incremental || resumable.is_some() {
        prior.cursor.clone()
    } else {
        None
    };
    let extra = req.options.get("where").and_then(Value::as_str);
    let what = format!("{} ({})", target.stream, target.table);

    let base = settings.compass_base.as_str();
    let query = Query {
        host,
        settings,
        target,
        lower: lower.as_deref(),
        extra,
        mode: req.sync_mode,
        what: &what,
    };

    // The job: the one being read when the state was saved, if its result is still there.
    let mut job = None;
    if let Some(j) = resumable {
        match compass::status(host, base, &j.id, &what)? {
            Ok(s) if s.status.eq_ignore_ascii_case("FINISHED") => {
                host.info(&format!(
                    "{what}: resuming Compass job {} at row {}",
                    j.id, j.offset
                ));
                job = Some((j, s.row_count));
            }
            Ok(s) => host.warn(&format!(
                "{what}: Compass job {} cannot be resumed ({}); querying again from {}",
                j.id,
                s.status,
                query.from()
            )),
            Err(r) if compass::is_expired(r.status) => host.warn(&format!(
                "{what}: the result of Compass job {} is no longer kept (HTTP {}; Compass \
                 keeps a result about 20 hours); querying again from {} (rows already \
                 delivered come again, the destination keeps one per key)",
                j.id,
                r.status,
                query.from()
            )),
            Err(r) => host.warn(&format!(
                "{what}: Compass job {} cannot be resumed (HTTP {}); querying again from {}",
                j.id,
                r.status,
                query.from()
            )),
        }
    }
    let (mut state, mut total) = match job {
        Some(found) => found,
        None => query.run()?,
    };

    let initial = req
        .page_size
        .unwrap_or(settings.page_rows)
        .clamp(1, 100_000);
    let mut out = RecordWriter::new(host, &target.stream, initial.clamp(100, 10_000) as usize);
    let result = ResultRead {
        host,
        base,
        target,
        what: &what,
        lower: lower.as_deref(),
        in_flight: inflight::pages_in_flight(req),
    };
    let mut pages = 0;
    let mut requeried = 0;
    loop {
        match result.read(&mut state, total, initial, &mut out)? {
            Ended::Done(n) => {
                pages += n;
                break;
            }
            Ended::Expired { pages: n, status } => {
                pages += n;
                requeried += 1;
                if requeried > MAX_REQUERIES {
                    return Err(ConnectorError::gateway(format!(
                        "{what}: the result of Compass job {} expired (HTTP {status}) while it \
                         was read, after {MAX_REQUERIES} new query already; the state keeps \
                         the rows read so far, run the task again",
                        state.id
                    )));
                }
                host.warn(&format!(
                    "{what}: the result of Compass job {} is no longer kept (HTTP {status}) \
                     at row {}; querying again from {} (rows already delivered come again, \
                     the destination keeps one per key)",
                    state.id,
                    state.offset,
                    query.from()
                ));
                (state, total) = query.run()?;
            }
        }
    }
    let cursor = state.bound.clone().or(lower);
    let final_state = DlState { cursor, job: None };
    out.commit(&final_state)?;
    let records = out.written();
    host.info(&format!(
        "{what}: {records} rows in {pages} pages from Compass job {}",
        state.id
    ));
    Ok(ReadSummary {
        records,
        pages,
        state: Some(serde_json::to_value(&final_state).unwrap_or(Value::Null)),
    })
}

/// New queries one read makes when the result it reads expires; one more expiry (a result
/// kept much less than its 20 hours) is an error rather than a loop.
const MAX_REQUERIES: u32 = 1;

/// The query of a read, submitted when no job's result can be read on.
struct Query<'a> {
    host: &'a Host,
    settings: &'a DlSettings,
    target: &'a Target,
    lower: Option<&'a str>,
    extra: Option<&'a str>,
    mode: SyncMode,
    what: &'a str,
}

impl Query<'_> {
    /// Where a new query starts, for the logs.
    fn from(&self) -> String {
        self.lower
            .map_or_else(|| "the start".into(), |c| format!("the cursor {c}"))
    }

    /// Submits the query and waits for it: the job at offset 0 and its row count.
    fn run(&self) -> Result<(JobState, Option<u64>), ConnectorError> {
        let (host, what) = (self.host, self.what);
        let q = sql(self.target, self.lower, self.extra);
        host.debug(&format!("{what}: {q}"));
        let base = self.settings.compass_base.as_str();
        let before = SystemTime::now();
        let sub = compass::submit_job(host, base, &q, what)?;
        let lag = Duration::from_secs(self.settings.ingestion_lag_secs);
        let bound = self
            .target
            .cursor
            .is_some()
            .then(|| bound_of(before, sub.server_date, lag));
        let timeout = Duration::from_secs(u64::from(self.settings.query_timeout_secs.max(1)));
        let s = compass::wait(host, base, &sub.id, what, timeout)?;
        Ok((
            JobState {
                id: sub.id,
                offset: 0,
                mode: self.mode,
                bound,
            },
            s.row_count,
        ))
    }
}

/// How reading a job's result ended.
enum Ended {
    /// Every row was read, in this many pages.
    Done(u64),
    /// The service no longer keeps the result: the rows before `job.offset` were
    /// delivered, in `pages` pages.
    Expired { pages: u64, status: u16 },
}

/// Result pages at most this big may have been cut by the service's byte limit (10 MB)
/// rather than by the end of the result.
const CUT_BELOW_BYTES: usize = 9 * 1024 * 1024;

/// Reading a finished job's result from its offset: pages of `limit` rows at offsets
/// `offset + i × limit`, `in_flight` of them requested at once ([`ordered_pages`]), taken
/// in order so that the checkpoint after a page (the job's offset) covers every row before.
struct ResultRead<'a> {
    host: &'a Host,
    base: &'a str,
    target: &'a Target,
    what: &'a str,
    lower: Option<&'a str>,
    in_flight: usize,
}

impl ResultRead<'_> {
    /// Reads from `job.offset` to the end, emitting and checkpointing every page. `total`
    /// is the job's row count, when the status said. A page answered 404 or 410 ends the
    /// read at that page's offset ([`Ended::Expired`]); pages in flight after it are dropped.
    ///
    /// A page that times out (the host's `timeout` kind) is asked again from the same
    /// offset with half the rows, and from then on this read asks one page at a time:
    /// pages in flight were all asked at the size that just proved too big, and each of
    /// them costs the gateway's whole target timeout twice. Those after the timed-out one
    /// are dropped unread (the rows before it are already committed).
    fn read(
        &self,
        job: &mut JobState,
        mut total: Option<u64>,
        initial: u32,
        out: &mut RecordWriter,
    ) -> Result<Ended, ConnectorError> {
        let mut pager = AdaptivePageSize::new(initial, initial.min(100), initial);
        let mut in_flight = self.in_flight;
        let mut pages = 0u64;
        loop {
            if total.is_some_and(|t| job.offset >= t) {
                return Ok(Ended::Done(pages));
            }
            let limit = pager.get();
            let start = job.offset;
            let id = job.id.clone();
            let columns = self.target.columns.as_deref();
            let mut done = false;
            let mut expired = None;
            let run = ordered_pages::fetch_in_order(
                self.host,
                in_flight,
                total.map(|t| (t - start).div_ceil(u64::from(limit))),
                |i| {
                    let offset = start.saturating_add(i.saturating_mul(u64::from(limit)));
                    compass::page(self.host, self.base, &id, offset, limit, self.what, columns)
                },
                |_, page| {
                    let page = match page {
                        compass::Page::Rows(p) => p,
                        compass::Page::Expired { status, message } => {
                            self.host.debug(&format!(
                                "{}: Compass job {id} result: HTTP {status}: {message}",
                                self.what
                            ));
                            expired = Some(status);
                            // ordered_pages reports this answer as a page as this
                            // returns: the summary counts it too, so that both agree.
                            pages += 1;
                            return Ok(Flow::End);
                        }
                    };
                    let flow = self.take(job, &mut total, limit, page, out)?;
                    pages += 1;
                    done = flow.is_none();
                    Ok(flow.unwrap_or(Flow::End))
                },
            );
            if let (Ok(_), Some(status)) = (&run, expired) {
                return Ok(Ended::Expired { pages, status });
            }
            match run {
                Ok(_) if done => return Ok(Ended::Done(pages)),
                // The pages in flight assumed full pages before them, or the pages the
                // total announced were all read: go on from where the result stands.
                Ok(_) => {}
                Err(e) if e.is_timeout() => {
                    self.host.warn(&format!(
                        "{}: the gateway timed out on a page of {limit} records; asking for \
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

    /// Takes the page at `job.offset`: checks it, emits its rows, checkpoints. Returns
    /// `None` at the end of the result, `Some(Flow::End)` when the next page is not where
    /// the pages in flight were asked (a page cut short before the end), else
    /// `Some(Flow::Next)`.
    fn take(
        &self,
        job: &mut JobState,
        total: &mut Option<u64>,
        limit: u32,
        page: ResultPage,
        out: &mut RecordWriter,
    ) -> Result<Option<Flow>, ConnectorError> {
        let what = self.what;
        if total.is_none() {
            *total = page.total;
        }
        if let (Some(job_total), Some(page_total)) = (*total, page.total)
            && job_total != page_total
        {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {what}: a result page of Compass job {} says the result has \
                 {page_total} rows, the job said {job_total}",
                job.id
            )));
        }
        let n = page.len() as u64;
        // More rows than asked would overlap the next page, asked from offset + limit.
        if n > u64::from(limit) {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {what}: Compass job {} gave {n} rows at row {} for a limit of \
                 {limit}",
                job.id, job.offset
            )));
        }
        // An empty page before the end the job announced is not the end.
        if n == 0
            && let Some(t) = total.filter(|t| job.offset < *t)
        {
            return Err(ConnectorError::unexpected_body(format!(
                "unexpected body: {what}: Compass job {} gave an empty result page at row {} \
                 of {t}",
                job.id, job.offset
            )));
        }
        for row in page.rows() {
            out.push_line(row)?;
        }
        job.offset += n;
        out.commit(&DlState {
            cursor: self.lower.map(str::to_owned),
            job: Some(job.clone()),
        })?;
        let short = n < u64::from(limit);
        let end = match *total {
            Some(t) => job.offset >= t,
            None => n == 0 || (short && page.bytes < CUT_BELOW_BYTES),
        };
        Ok(if end {
            None
        } else if short {
            Some(Flow::End)
        } else {
            Some(Flow::Next)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_at_or_before_the_submission_on_both_clocks_less_the_lag() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let before = at(1_700_000_000_500);
        let lag = Duration::from_secs(600);
        // A server clock behind ours: its Date less a second is the earlier.
        assert_eq!(
            bound_of(before, Some(at(1_699_999_990_000)), lag),
            stamp::iso(1_699_999_989_000 - 600_000)
        );
        // A server clock ahead, or no Date: our clock before the submit.
        assert_eq!(
            bound_of(before, Some(at(1_700_000_009_000)), lag),
            stamp::iso(1_700_000_000_500 - 600_000)
        );
        assert_eq!(
            bound_of(before, None, Duration::ZERO),
            stamp::iso(1_700_000_000_500)
        );
    }
}
