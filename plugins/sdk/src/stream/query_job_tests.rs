//! The query-job loop against a scripted job service: the wait, pages and their commits,
//! pages in flight, resumption, expiry, cancellation and answers of the wrong shape.
//! Expected values are written out by hand from the test's own data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
use ionport_plugin_abi::abi_stable::std_types::{RArc, RResult, RStr};
use ionport_plugin_abi::{
    FfiHost, FfiHost_TO, FfiHttpRequest, FfiHttpResponse, LogLevel, PluginError, RecordBatch,
};
use serde_json::{Value, json};

use super::tests::Event;
use super::*;
use crate::{ConnectionConfig, Host, ReadRequest, SyncMode};

/// A host that records what the connector hands over and its logs, and says "cancelled"
/// once `cancel` is set.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    logs: Mutex<Vec<String>>,
    cancel: Arc<AtomicBool>,
}

impl FfiHost for Recorder {
    fn gateway(&self, _request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
        RResult::RErr(PluginError::new("host", "no gateway in these tests"))
    }
    fn log(&self, _level: LogLevel, message: RStr<'_>) {
        self.logs.lock().unwrap().push(message.to_string());
    }
    fn emit(&self, batch: RecordBatch) -> RResult<(), PluginError> {
        let text = String::from_utf8(batch.ndjson.into_vec()).unwrap();
        let records = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        self.events.lock().unwrap().push(Event::Records(records));
        RResult::ROk(())
    }
    fn checkpoint(&self, state: RStr<'_>) -> RResult<(), PluginError> {
        let v = serde_json::from_str(state.as_str()).unwrap();
        self.events.lock().unwrap().push(Event::Checkpoint(v));
        RResult::ROk(())
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

fn recorder() -> (Host, RArc<Recorder>) {
    let inner = RArc::new(Recorder::default());
    (
        Host::new(FfiHost_TO::from_ptr(inner.clone(), TD_Opaque)),
        inner,
    )
}

/// A job of the scripted service.
#[derive(Debug, Clone)]
struct Job {
    since: Option<String>,
    /// Status polls answered "running" before "finished".
    polls_left: usize,
    /// Result pages served before the result is gone; `None`: kept.
    pages_left: Option<usize>,
}

/// A job service over rows `{"id": i, "at": "2026-01-{i:02}"}`, `1..=count`; jobs are
/// `job-1`, `job-2`, … in order of submission.
struct Service {
    count: u64,
    jobs: Mutex<BTreeMap<String, Job>>,
    /// `pages_left` of the jobs to come, in order of submission.
    expiries: Mutex<Vec<Option<usize>>>,
    polls: usize,
    size: u32,
    /// Answers status requests with this instead.
    status: Option<JobStatus>,
    /// Serves pages of this many rows whatever the size asked.
    rows_per_page: Option<u64>,
    /// Pages bigger than this time out (the host's `timeout` kind).
    timeout_above: Option<u32>,
    /// Makes later pages answer sooner (so that they arrive out of order).
    scramble: bool,
    /// Sets the host's cancel flag at this status poll.
    cancel_at_poll: Option<(usize, Arc<AtomicBool>)>,
    status_polls: AtomicUsize,
    in_page: AtomicUsize,
    most_in_page: AtomicUsize,
    cancelled: Mutex<Vec<String>>,
    asked: Mutex<Vec<(String, u64)>>,
}

fn service(count: u64, size: u32) -> Service {
    Service {
        count,
        jobs: Mutex::new(BTreeMap::new()),
        expiries: Mutex::new(Vec::new()),
        polls: 2,
        size,
        status: None,
        rows_per_page: None,
        timeout_above: None,
        scramble: false,
        cancel_at_poll: None,
        status_polls: AtomicUsize::new(0),
        in_page: AtomicUsize::new(0),
        most_in_page: AtomicUsize::new(0),
        cancelled: Mutex::new(Vec::new()),
        asked: Mutex::new(Vec::new()),
    }
}

fn row(i: u64) -> Value {
    json!({"id": i, "at": format!("2026-01-{i:02}")})
}

impl QueryJobStream for Service {
    fn name(&self) -> &str {
        "items"
    }
    fn incremental(&self) -> bool {
        true
    }
    fn check_cursor(&self, cursor: &str) -> Result<(), String> {
        if cursor.starts_with("2026-") {
            Ok(())
        } else {
            Err("a 2026 date".into())
        }
    }
    fn page_size(&self) -> u32 {
        self.size
    }
    fn min_page_size(&self) -> u32 {
        1
    }
    fn wait_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
    fn submit(&self, _host: &Host, since: Option<&str>) -> Result<Submitted, ConnectorError> {
        let mut jobs = self.jobs.lock().unwrap();
        let id = format!("job-{}", jobs.len() + 1);
        let mut expiries = self.expiries.lock().unwrap();
        let pages_left = if expiries.is_empty() {
            None
        } else {
            expiries.remove(0)
        };
        jobs.insert(
            id.clone(),
            Job {
                since: since.map(str::to_owned),
                polls_left: self.polls,
                pages_left,
            },
        );
        Ok(Submitted {
            id,
            bound: Some("2026-02-01".into()),
        })
    }
    fn status(&self, _host: &Host, id: &str) -> Result<JobStatus, ConnectorError> {
        let n = self.status_polls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((at, flag)) = &self.cancel_at_poll
            && n >= *at
        {
            flag.store(true, Ordering::SeqCst);
        }
        if let Some(s) = &self.status {
            return Ok(s.clone());
        }
        let mut jobs = self.jobs.lock().unwrap();
        let Some(job) = jobs.get_mut(id) else {
            return Ok(JobStatus::Gone {
                reason: "HTTP 404".into(),
            });
        };
        if job.pages_left == Some(0) {
            return Ok(JobStatus::Gone {
                reason: "HTTP 410".into(),
            });
        }
        if job.polls_left > 0 {
            job.polls_left -= 1;
            return Ok(JobStatus::Running);
        }
        Ok(JobStatus::Finished {
            total: Some(self.rows(job).len() as u64),
        })
    }
    fn page(
        &self,
        _host: &Host,
        id: &str,
        offset: u64,
        size: u32,
    ) -> Result<JobPage, ConnectorError> {
        self.asked.lock().unwrap().push((id.to_string(), offset));
        if self.timeout_above.is_some_and(|most| size > most) {
            return Err(ConnectorError::timeout(
                "GET result: HTTP 504 on 2 attempts",
            ));
        }
        let now = self.in_page.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_page.fetch_max(now, Ordering::SeqCst);
        if self.scramble {
            std::thread::sleep(Duration::from_millis(40u64.saturating_sub(offset * 2)));
        }
        self.in_page.fetch_sub(1, Ordering::SeqCst);
        let rows = {
            let mut jobs = self.jobs.lock().unwrap();
            let job = jobs.get_mut(id).expect("a submitted job");
            match &mut job.pages_left {
                Some(0) => {
                    return Ok(JobPage::Gone {
                        reason: "HTTP 410".into(),
                    });
                }
                Some(n) => *n -= 1,
                None => {}
            }
            self.rows(job)
        };
        let take = self.rows_per_page.unwrap_or(u64::from(size));
        let lines: Vec<String> = rows
            .into_iter()
            .skip(offset as usize)
            .take(take as usize)
            .map(|r| r.to_string())
            .collect();
        // As a source answers: one body, a line per row.
        let body = lines.join("\n").into_bytes();
        let mut at = 0;
        let ranges = lines
            .iter()
            .map(|l| {
                let r = at..at + l.len();
                at += l.len() + 1;
                r
            })
            .collect();
        Ok(JobPage::Rows(ResultRows::lines(body, ranges)))
    }
    fn cancel(&self, _host: &Host, id: &str) {
        self.cancelled.lock().unwrap().push(id.to_string());
    }
}

impl Service {
    fn rows(&self, job: &Job) -> Vec<Value> {
        (1..=self.count)
            .map(row)
            .filter(|r| {
                job.since
                    .as_deref()
                    .is_none_or(|s| r["at"].as_str().unwrap() >= s)
            })
            .collect()
    }
}

fn request(mode: SyncMode, state: Option<Value>, in_flight: u32) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({}),
        },
        task: "items".into(),
        sync_mode: mode,
        state,
        page_size: None,
        pages_in_flight: Some(in_flight),
        options: json!({}),
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

fn ids(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Records(r) => Some(r.iter().map(|v| v["id"].as_u64().unwrap())),
            Event::Checkpoint(_) => None,
        })
        .flatten()
        .collect()
}

fn checkpoints(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Checkpoint(v) => Some(v.clone()),
            Event::Records(_) => None,
        })
        .collect()
}

#[test]
fn a_job_is_waited_for_then_read_page_by_page_with_a_commit_each() {
    let (host, rec) = recorder();
    let s = service(25, 10);
    let summary = read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1)).unwrap();
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(ids(&events), (1..=25).collect::<Vec<_>>());
    let job = |offset: u64| json!({"job": {"id": "job-1", "offset": offset, "mode": "full_refresh", "bound": "2026-02-01"}});
    assert_eq!(
        checkpoints(&events),
        vec![job(10), job(20), job(25), json!({"cursor": "2026-02-01"})]
    );
    assert_eq!(
        s.status_polls.load(Ordering::SeqCst),
        3,
        "two running, one finished"
    );
    assert_eq!((summary.records, summary.pages), (25, 3));
}

#[test]
fn pages_in_flight_answered_out_of_order_are_handed_over_in_order() {
    let (host, rec) = recorder();
    let mut s = service(20, 3);
    s.scramble = true;
    read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 4)).unwrap();
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(ids(&events), (1..=20).collect::<Vec<_>>());
    let offsets: Vec<u64> = checkpoints(&events)
        .iter()
        .filter_map(|c| c["job"]["offset"].as_u64())
        .collect();
    assert_eq!(offsets, vec![3, 6, 9, 12, 15, 18, 20]);
    let most = s.most_in_page.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} pages in flight at once");
}

#[test]
fn a_state_of_the_persisted_shape_resumes_its_job_at_its_offset() {
    let (host, rec) = recorder();
    let s = service(12, 5);
    // The job of an earlier read of rows since 2026-01-03 (ten rows, 3..=12).
    s.submit(&host, Some("2026-01-03")).unwrap();
    s.jobs.lock().unwrap().get_mut("job-1").unwrap().polls_left = 0;
    // As connectors saved it before this module existed: no `bound`.
    let state =
        json!({"cursor": "2026-01-03", "job": {"id": "job-1", "offset": 6, "mode": "incremental"}});
    let summary =
        read_query_job(&s, &host, &request(SyncMode::Incremental, Some(state), 1)).unwrap();
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(ids(&events), vec![9, 10, 11, 12]);
    assert_eq!(s.jobs.lock().unwrap().len(), 1, "no new job");
    assert_eq!(
        s.asked.lock().unwrap().first(),
        Some(&("job-1".to_string(), 6))
    );
    // Without a bound the read leaves the cursor it started from.
    assert_eq!(
        checkpoints(&events).last(),
        Some(&json!({"cursor": "2026-01-03"}))
    );
    assert_eq!(summary.state, Some(json!({"cursor": "2026-01-03"})));
}

#[test]
fn a_job_of_another_sync_mode_is_not_resumed() {
    let (host, rec) = recorder();
    let s = service(4, 10);
    s.submit(&host, None).unwrap();
    let state =
        json!({"cursor": "2026-01-03", "job": {"id": "job-1", "offset": 2, "mode": "incremental"}});
    read_query_job(&s, &host, &request(SyncMode::FullRefresh, Some(state), 1)).unwrap();
    assert_eq!(ids(&rec.events.lock().unwrap()), vec![1, 2, 3, 4]);
    let jobs = s.jobs.lock().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs["job-2"].since, None,
        "a full refresh reads from the start"
    );
}

#[test]
fn a_resumed_job_the_service_forgot_is_queried_again_from_the_saved_cursor() {
    let (host, rec) = recorder();
    let s = service(6, 10);
    let state = json!({"cursor": "2026-01-04", "job": {"id": "job-0", "offset": 1, "mode": "incremental", "bound": "2026-01-09"}});
    read_query_job(&s, &host, &request(SyncMode::Incremental, Some(state), 1)).unwrap();
    assert_eq!(ids(&rec.events.lock().unwrap()), vec![4, 5, 6]);
    assert_eq!(
        s.jobs.lock().unwrap()["job-1"].since.as_deref(),
        Some("2026-01-04")
    );
    let logs = rec.logs.lock().unwrap().clone();
    assert!(
        logs.iter().any(|l| l.contains("job job-0")
            && l.contains("no longer kept (HTTP 404)")
            && l.contains("the cursor 2026-01-04")),
        "{logs:?}"
    );
}

#[test]
fn a_result_that_expires_during_the_read_is_queried_again_once() {
    let (host, rec) = recorder();
    let s = service(9, 2);
    // The first job's result goes after two pages; the second is kept.
    *s.expiries.lock().unwrap() = vec![Some(2), None];
    let summary = read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1)).unwrap();
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(ids(&events), vec![1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(s.jobs.lock().unwrap().len(), 2);
    let last_of_first = checkpoints(&events)
        .into_iter()
        .rfind(|c| c["job"]["id"] == "job-1");
    assert_eq!(last_of_first.unwrap()["job"]["offset"], 4);
    assert_eq!(summary.state, Some(json!({"cursor": "2026-02-01"})));
    let logs = rec.logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l.contains("no longer kept (HTTP 410) at row 4") && l.contains("the start")),
        "{logs:?}"
    );
}

#[test]
fn a_second_expiry_in_one_read_is_an_error_that_keeps_the_checkpoint() {
    let (host, rec) = recorder();
    let s = service(9, 2);
    *s.expiries.lock().unwrap() = vec![Some(1), Some(3)];
    let e = read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1))
        .expect_err("a second expiry");
    assert!(
        e.message().contains("expired (HTTP 410)") && e.message().contains("run the task again"),
        "{e}"
    );
    assert_eq!(s.jobs.lock().unwrap().len(), 2, "one new query, no more");
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(ids(&events), vec![1, 2, 1, 2, 3, 4, 5, 6]);
    assert_eq!(
        checkpoints(&events).last(),
        Some(
            &json!({"job": {"id": "job-2", "offset": 6, "mode": "full_refresh", "bound": "2026-02-01"}})
        )
    );
}

#[test]
fn a_cancel_while_the_job_runs_cancels_the_job_on_the_service() {
    let (host, rec) = recorder();
    let mut s = service(5, 10);
    s.polls = 1000;
    s.cancel_at_poll = Some((3, rec.cancel.clone()));
    let e =
        read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1)).expect_err("cancelled");
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(
        s.status_polls.load(Ordering::SeqCst),
        3,
        "no poll after the cancel"
    );
    assert_eq!(*s.cancelled.lock().unwrap(), vec!["job-1".to_string()]);
    assert!(rec.events.lock().unwrap().is_empty());
}

#[test]
fn a_failed_job_ends_the_read_with_its_error() {
    let (host, rec) = recorder();
    let mut s = service(5, 10);
    s.status = Some(JobStatus::Failed(ConnectorError::gateway(
        "job job-1 FAILED: no such column",
    )));
    let e =
        read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1)).expect_err("failed");
    assert_eq!(e.message(), "job job-1 FAILED: no such column");
    assert!(rec.events.lock().unwrap().is_empty());
}

#[test]
fn a_page_of_more_rows_than_asked_is_an_unexpected_body() {
    let (host, rec) = recorder();
    let mut s = service(30, 10);
    s.rows_per_page = Some(11);
    let e = read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1))
        .expect_err("too many rows");
    assert!(e.is_unexpected_body(), "{e}");
    assert!(e.message().contains("11 rows at row 0"), "{e}");
    assert!(ids(&rec.events.lock().unwrap()).is_empty());
}

#[test]
fn an_empty_page_before_the_announced_total_is_an_unexpected_body_not_the_end() {
    let (host, rec) = recorder();
    let mut s = service(30, 10);
    s.rows_per_page = Some(0);
    let e = read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 1))
        .expect_err("an empty page");
    assert!(e.is_unexpected_body(), "{e}");
    assert!(
        e.message().contains("empty result page at row 0 of 30"),
        "{e}"
    );
    assert!(checkpoints(&rec.events.lock().unwrap()).is_empty());
}

#[test]
fn a_status_that_does_not_decode_is_an_error_not_a_running_job() {
    struct Garbled(Service);
    impl QueryJobStream for Garbled {
        fn name(&self) -> &str {
            "items"
        }
        fn incremental(&self) -> bool {
            true
        }
        fn page_size(&self) -> u32 {
            10
        }
        fn wait_timeout(&self) -> Duration {
            Duration::from_secs(30)
        }
        fn submit(&self, host: &Host, since: Option<&str>) -> Result<Submitted, ConnectorError> {
            self.0.submit(host, since)
        }
        fn status(&self, _host: &Host, _id: &str) -> Result<JobStatus, ConnectorError> {
            self.0.status_polls.fetch_add(1, Ordering::SeqCst);
            Err(ConnectorError::unexpected_body(
                "unexpected body: a job status without `status`",
            ))
        }
        fn page(&self, h: &Host, id: &str, o: u64, n: u32) -> Result<JobPage, ConnectorError> {
            self.0.page(h, id, o, n)
        }
    }
    let (host, _rec) = recorder();
    let g = Garbled(service(5, 10));
    let e = read_query_job(&g, &host, &request(SyncMode::FullRefresh, None, 1))
        .expect_err("garbled status");
    assert!(e.is_unexpected_body(), "{e}");
    assert_eq!(g.0.status_polls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_saved_job_whose_status_times_out_is_queried_again_not_a_failed_read() {
    /// The service, but the status of `job-0` (the saved job) times out.
    struct Slow(Service);
    impl QueryJobStream for Slow {
        fn name(&self) -> &str {
            "items"
        }
        fn incremental(&self) -> bool {
            true
        }
        fn page_size(&self) -> u32 {
            10
        }
        fn wait_timeout(&self) -> Duration {
            Duration::from_secs(30)
        }
        fn submit(&self, host: &Host, since: Option<&str>) -> Result<Submitted, ConnectorError> {
            self.0.submit(host, since)
        }
        fn status(&self, host: &Host, id: &str) -> Result<JobStatus, ConnectorError> {
            if id == "job-0" {
                return Err(ConnectorError::timeout("the status of job-0 timed out"));
            }
            self.0.status(host, id)
        }
        fn page(&self, h: &Host, id: &str, o: u64, n: u32) -> Result<JobPage, ConnectorError> {
            self.0.page(h, id, o, n)
        }
    }
    let (host, rec) = recorder();
    let s = Slow(service(6, 10));
    let state = json!({"cursor": "2026-01-04", "job": {"id": "job-0", "offset": 1, "mode": "incremental", "bound": "2026-01-09"}});
    read_query_job(&s, &host, &request(SyncMode::Incremental, Some(state), 1)).unwrap();
    assert_eq!(ids(&rec.events.lock().unwrap()), vec![4, 5, 6]);
    assert_eq!(
        s.0.jobs.lock().unwrap()["job-1"].since.as_deref(),
        Some("2026-01-04"),
        "the new job starts at the saved cursor"
    );
    let logs = rec.logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l.contains("cannot be resumed (the status of job-0 timed out)")),
        "{logs:?}"
    );
}

#[test]
fn states_of_another_shape_and_cursors_the_stream_refuses_are_errors_before_any_job() {
    let (host, _rec) = recorder();
    let s = service(5, 10);
    for (state, says) in [
        (
            json!({"cursor": "2026-01-01", "after": ["x"]}),
            "unknown field `after`",
        ),
        (json!({"job": {"id": "job-1"}}), "missing field `offset`"),
        (
            json!({"cursor": "yesterday"}),
            "cursor \"yesterday\" is not a 2026 date",
        ),
    ] {
        let e = read_query_job(&s, &host, &request(SyncMode::Incremental, Some(state), 1))
            .expect_err("refused");
        assert_eq!(e.kind(), "invalid_input", "{e}");
        assert!(e.message().contains(says), "{e}");
    }
    assert!(s.jobs.lock().unwrap().is_empty());
}

#[test]
fn a_page_that_keeps_timing_out_is_asked_again_halved_from_the_last_commit_one_at_a_time() {
    let (host, rec) = recorder();
    let mut s = service(20, 8);
    s.timeout_above = Some(5);
    read_query_job(&s, &host, &request(SyncMode::FullRefresh, None, 4)).unwrap();
    let events = rec.events.lock().unwrap().clone();
    assert_eq!(ids(&events), (1..=20).collect::<Vec<_>>());
    let offsets: Vec<u64> = checkpoints(&events)
        .iter()
        .filter_map(|c| c["job"]["offset"].as_u64())
        .collect();
    assert_eq!(
        offsets,
        vec![4, 8, 12, 16, 20],
        "pages of 4 after one of 8 timed out"
    );
    let asked: Vec<u64> = s.asked.lock().unwrap().iter().map(|(_, o)| *o).collect();
    assert_eq!(
        asked,
        vec![0, 0, 4, 8, 12, 16],
        "the first page goes alone, then one at a time"
    );
    let logs = rec.logs.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.contains("smaller pages")), "{logs:?}");
}

#[test]
fn a_partition_of_a_query_job_is_refused_before_any_job() {
    let (host, _rec) = recorder();
    let s = service(5, 10);
    let mut req = request(SyncMode::FullRefresh, None, 1);
    req.partition = Some(crate::ReadPartition { index: 1, count: 2 });
    let e = read_query_job(&s, &host, &req).expect_err("refused");
    assert_eq!(e.kind(), "invalid_input", "{e}");
    assert!(e.message().contains("partition 1 of 2 was asked"), "{e}");
    assert!(s.jobs.lock().unwrap().is_empty(), "no job submitted");
}
