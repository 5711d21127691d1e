//! Reading one lake table with a Compass job, checkpointed after every result page.
//!
//! The state (JSON):
//! - complete: `{"cursor": "2026-…Z"}` — the next incremental read asks for
//!   `infor.lastmodified() >= cursor` (rows stamped exactly at the cursor come again; the
//!   destination de-duplicates by primary key);
//! - during a read: also `"job": {"id", "offset", "mode", "max"}` — a restart fetches the
//!   rest of the same job's result (Compass keeps results for about 20 hours) and repeats
//!   nothing; when the job is gone, it submits the query again from `cursor`.

use std::time::Duration;

use ionport_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compass;
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
}

/// A job being read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState {
    /// Compass query id.
    pub id: String,
    /// Rows of its result already emitted.
    pub offset: u64,
    /// The read's sync mode.
    pub mode: SyncMode,
    /// The highest change stamp emitted so far (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
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
    let mut q = format!("SELECT {cols} FROM {}", target.table);
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
    let resumable = prior.job.clone().filter(|j| j.mode == req.sync_mode);
    let lower = if incremental || resumable.is_some() {
        prior.cursor.clone()
    } else {
        None
    };
    let extra = req.options.get("where").and_then(Value::as_str);
    let what = format!("{} ({})", target.stream, target.table);
    let timeout = Duration::from_secs(u64::from(settings.query_timeout_secs.max(1)));

    // The job: the one being read when the state was saved, if its result is still there.
    let mut job = None;
    if let Some(j) = resumable {
        match compass::status(host, &j.id, &what)? {
            Ok(s) if s.status.eq_ignore_ascii_case("FINISHED") => {
                host.info(&format!(
                    "{what}: resuming Compass job {} at row {}",
                    j.id, j.offset
                ));
                job = Some((j, s.row_count));
            }
            other => host.warn(&format!(
                "{what}: Compass job {} cannot be resumed ({}); querying again",
                j.id,
                match other {
                    Ok(s) => s.status,
                    Err(r) => format!("HTTP {}", r.status),
                }
            )),
        }
    }
    let (mut state, mut total) = match job {
        Some((j, total)) => (j, total),
        None => {
            let q = sql(target, lower.as_deref(), extra);
            host.debug(&format!("{what}: {q}"));
            let id = compass::submit(host, &q, &what)?;
            let s = compass::wait(host, &id, &what, timeout)?;
            (
                JobState {
                    id,
                    offset: 0,
                    mode: req.sync_mode,
                    max: None,
                },
                s.row_count,
            )
        }
    };

    let initial = req
        .page_size
        .unwrap_or(settings.page_rows)
        .clamp(1, 100_000);
    let mut pager = AdaptivePageSize::new(initial, initial.min(100), initial);
    let mut out = RecordWriter::new(host, &target.stream, initial.clamp(100, 10_000) as usize);
    let mut max_ms = state.max.as_deref().and_then(stamp::parse_iso);
    let mut pages = 0u64;
    loop {
        if total.is_some_and(|t| state.offset >= t) {
            break;
        }
        // A page that times out is asked again from the same offset with fewer rows.
        let (page, limit) = pager.run(host, |limit| {
            compass::page(host, &state.id, state.offset, limit, &what)
        })?;
        if total.is_none() {
            total = page.total;
        }
        let n = page.rows.len() as u64;
        for row in &page.rows {
            if let Some(ms) = target
                .cursor
                .as_ref()
                .and_then(|c| row.get(c))
                .and_then(stamp::to_ms)
            {
                max_ms = Some(max_ms.map_or(ms, |m| m.max(ms)));
            }
            out.push(row)?;
        }
        state.offset += n;
        state.max = max_ms.map(stamp::iso);
        pages += 1;
        out.commit(&DlState {
            cursor: lower.clone(),
            job: Some(state.clone()),
        })?;
        let short = n < u64::from(limit) && page.bytes < 9 * 1024 * 1024;
        if n == 0 || (total.is_none() && short) {
            break;
        }
    }
    let lower_ms = lower.as_deref().and_then(stamp::parse_iso);
    let cursor = match (max_ms, lower_ms) {
        (Some(a), Some(b)) => Some(stamp::iso(a.max(b))),
        (Some(a), None) | (None, Some(a)) => Some(stamp::iso(a)),
        (None, None) => None,
    };
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
