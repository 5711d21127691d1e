//! Reading one lake table with a Compass job: the SDK's query-job loop
//! ([`read_query_job`]) over the Compass calls of [`crate::compass`]. It checkpoints after
//! every result page, keeps the read's pages in flight, resumes the job of an interrupted
//! read and queries again once when Compass no longer keeps a result (about 20 hours).
//!
//! The state (JSON):
//! - complete: `{"cursor": "2026-…Z"}` — the next incremental read asks for
//!   `infor.lastmodified() >= cursor` (rows stamped at or after the cursor come again; the
//!   destination de-duplicates by primary key);
//! - during a read: also `"job": {"id", "offset", "mode", "bound"}` — a restart fetches the
//!   rest of the same job's result and repeats nothing; when the job is gone, it submits
//!   the query again from `cursor`.
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

use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::stream::{JobPage, JobStatus, QueryJobStream, Submitted, read_query_job};
use serde_json::Value;

use crate::{DlSettings, MAX_PAGE_ROWS, compass, stamp};

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
    if req.sync_mode == SyncMode::Incremental && target.cursor.is_none() {
        return Err(ConnectorError::invalid_input(format!(
            "{} has no change-stamp column in the Data Catalog, so it can only be read in full",
            target.stream
        )));
    }
    let lake = LakeRead {
        settings,
        target,
        what: format!("{} ({})", target.stream, target.table),
        extra: req.options.get("where").and_then(Value::as_str),
        wait: Duration::from_secs(u64::from(settings.query_timeout_secs.max(1))),
    };
    read_query_job(&lake, host, req)
}

/// One read of a lake table: its query and the Compass calls of its job.
pub struct LakeRead<'a> {
    /// The connection's settings.
    pub settings: &'a DlSettings,
    /// What is read.
    pub target: &'a Target,
    /// How messages name it.
    pub what: String,
    /// The read's `where` option.
    pub extra: Option<&'a str>,
    /// How long to wait for a job.
    pub wait: Duration,
}

impl QueryJobStream for LakeRead<'_> {
    fn name(&self) -> &str {
        &self.target.stream
    }
    fn what(&self) -> String {
        self.what.clone()
    }
    fn job_name(&self, id: &str) -> String {
        format!("Compass job {id}")
    }
    fn incremental(&self) -> bool {
        self.target.cursor.is_some()
    }
    fn check_cursor(&self, cursor: &str) -> Result<(), String> {
        stamp::parse_iso(cursor)
            .map(|_| ())
            .ok_or_else(|| "an ISO-8601 time".into())
    }
    fn page_size(&self) -> u32 {
        self.settings.page_rows
    }
    fn max_page_size(&self) -> u32 {
        MAX_PAGE_ROWS
    }
    fn wait_timeout(&self) -> Duration {
        self.wait
    }
    fn submit(&self, host: &Host, since: Option<&str>) -> Result<Submitted, ConnectorError> {
        let q = sql(self.target, since, self.extra);
        host.debug(&format!("{}: {q}", self.what));
        let before = SystemTime::now();
        let base = &self.settings.compass_base;
        let sub = compass::submit_job(host, base, &q, &self.what)?;
        let lag = Duration::from_secs(self.settings.ingestion_lag_secs);
        let bound = self
            .target
            .cursor
            .is_some()
            .then(|| bound_of(before, sub.server_date, lag));
        Ok(Submitted { id: sub.id, bound })
    }
    fn status(&self, host: &Host, id: &str) -> Result<JobStatus, ConnectorError> {
        compass::job_status(host, &self.settings.compass_base, id, &self.what)
    }
    fn page(
        &self,
        host: &Host,
        id: &str,
        offset: u64,
        size: u32,
    ) -> Result<JobPage, ConnectorError> {
        let base = &self.settings.compass_base;
        let columns = self.target.columns.as_deref();
        compass::page(host, base, id, offset, size, &self.what, columns)
    }
    fn cancel(&self, host: &Host, id: &str) {
        compass::cancel(host, &self.settings.compass_base, id);
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
