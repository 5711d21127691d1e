//! A destination as a [`ReadHandler`]: the records a task's read hands over are buffered
//! until the checkpoint that covers them, then the pair goes to a commit stage — its own
//! thread behind a bounded queue — that commits it with [`Destination::commit`].
//!
//! Why a stage of its own: a commit ends in an fsync (SQLite, files) or a round trip
//! (Postgres); on the plugin's thread it would hold up the next request. With the stage,
//! the plugin fetches and decodes the next pages while the previous ones are committed.
//!
//! What holds:
//! - commits happen in the order of the checkpoints, each with exactly the records emitted
//!   since the previous one, so a checkpoint is committed only after every record before
//!   it (exactly once after a crash, as before);
//! - memory is bounded: at most [`QUEUE_DEPTH`] commit units wait, plus the one being
//!   committed and the one being buffered — when the queue is full the plugin's
//!   `checkpoint` call waits (back-pressure);
//! - the first failed commit stops the stage; the plugin's next call gets the error, and
//!   [`CommitStage::finish`] reports it rather than whatever the plugin made of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::run::RunObserver;
use crate::destination::{Destination, StreamSpec};
use crate::read::{ReadHandler, Records};

/// Commit units that may wait for the stage while the plugin reads on.
pub const QUEUE_DEPTH: usize = 2;

struct Unit {
    records: Records,
    state: Value,
}

/// What the stage has committed, shared by the stage thread and the handler.
#[derive(Debug, Default)]
struct Committed {
    records: AtomicU64,
    commits: AtomicU64,
    error: Mutex<Option<String>>,
    state: Mutex<Option<Value>>,
}

impl Committed {
    fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// The handler half (on the plugin's thread) of a task's commit stage.
pub struct CommitStage {
    spec: StreamSpec,
    sender: Mutex<Option<SyncSender<Unit>>>,
    buffer: Mutex<Records>,
    committed: Arc<Committed>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for CommitStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitStage")
            .field("stream", &self.spec.name)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

/// What a task's stage committed in all.
#[derive(Debug, Clone, Default)]
pub struct StageTotals {
    /// Records committed.
    pub records: u64,
    /// Commit units (checkpoints) committed.
    pub commits: u64,
    /// The last committed state (or the one the task started from).
    pub state: Option<Value>,
}

impl CommitStage {
    /// Starts the stage thread for `spec` on `destination`; `initial` is the state the read
    /// starts from. `progress(records, commits)` is called after each commit.
    pub fn start(
        spec: StreamSpec,
        destination: Arc<dyn Destination>,
        initial: Option<Value>,
        progress: Box<dyn Fn(u64, u64) + Send>,
    ) -> Result<Self, String> {
        let (sender, receiver) = sync_channel::<Unit>(QUEUE_DEPTH);
        let committed = Arc::new(Committed {
            state: Mutex::new(initial),
            ..Committed::default()
        });
        let thread = {
            let committed = committed.clone();
            let spec = spec.clone();
            std::thread::Builder::new()
                .name(format!("commit {}", spec.name))
                .spawn(move || {
                    commit_loop(
                        &spec,
                        destination.as_ref(),
                        &receiver,
                        &committed,
                        &*progress,
                    )
                })
                .map_err(|e| format!("cannot start the commit stage: {e}"))?
        };
        Ok(Self {
            spec,
            sender: Mutex::new(Some(sender)),
            buffer: Mutex::new(Records::default()),
            committed,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn send(&self, state: Value) -> Result<(), String> {
        let records = std::mem::take(&mut *self.buffer.lock().map_err(|_| poisoned())?);
        let sender = self.sender.lock().map_err(|_| poisoned())?.clone();
        let Some(sender) = sender else {
            return Err("the commit stage has ended".into());
        };
        sender.send(Unit { records, state }).map_err(|_| {
            self.committed
                .error()
                .unwrap_or_else(|| "the commit stage has ended".into())
        })
    }

    /// Records handed over after the last checkpoint, still buffered.
    pub fn pending(&self) -> usize {
        self.buffer.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Ends the read: commits the buffered records with `final_state` (the plugin's
    /// final state, else the last one) when `commit_pending`, waits for the stage to
    /// drain, and returns what it committed — or the first commit error.
    pub fn finish(
        &self,
        commit_pending: bool,
        final_state: Option<Value>,
    ) -> Result<StageTotals, String> {
        let mut result = Ok(());
        if commit_pending && self.pending() > 0 {
            let state = final_state
                .or_else(|| self.totals().state)
                .unwrap_or(Value::Null);
            result = self.send(state);
        }
        // Closing the queue ends the stage once it has committed what waits.
        drop(self.sender.lock().map_err(|_| poisoned())?.take());
        if let Some(t) = self.thread.lock().map_err(|_| poisoned())?.take()
            && t.join().is_err()
        {
            return Err("the commit stage's thread panicked".into());
        }
        if let Some(e) = self.committed.error() {
            return Err(e);
        }
        result.map(|()| self.totals())
    }

    /// What has been committed so far.
    pub fn totals(&self) -> StageTotals {
        StageTotals {
            records: self.committed.records.load(Ordering::SeqCst),
            commits: self.committed.commits.load(Ordering::SeqCst),
            state: self.committed.state.lock().ok().and_then(|s| s.clone()),
        }
    }
}

impl Drop for CommitStage {
    fn drop(&mut self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

fn poisoned() -> String {
    "the commit stage's lock is poisoned".into()
}

fn commit_loop(
    spec: &StreamSpec,
    destination: &dyn Destination,
    receiver: &Receiver<Unit>,
    committed: &Committed,
    progress: &dyn Fn(u64, u64),
) {
    while let Ok(unit) = receiver.recv() {
        if let Err(e) = destination.commit(spec, &unit.records, &unit.state) {
            if let Ok(mut slot) = committed.error.lock() {
                *slot = Some(e.to_string());
            }
            // Dropping the receiver (by returning) makes the plugin's next send fail.
            return;
        }
        let n = unit.records.len() as u64;
        let records = committed.records.fetch_add(n, Ordering::SeqCst) + n;
        let commits = committed.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut s) = committed.state.lock() {
            *s = Some(unit.state);
        }
        progress(records, commits);
    }
}

impl ReadHandler for CommitStage {
    fn records(&self, stream: &str, records: Records) -> Result<(), String> {
        if stream != self.spec.name {
            return Err(format!(
                "records of stream '{stream}' emitted while reading '{}'",
                self.spec.name
            ));
        }
        if let Some(e) = self.committed.error() {
            return Err(e);
        }
        // The batch's text moves into the unit as it is: no copy, no per-record map.
        self.buffer.lock().map_err(|_| poisoned())?.append(records);
        Ok(())
    }

    fn checkpoint(&self, _stream: &str, state: Value) -> Result<(), String> {
        self.send(state)
    }
}

/// A [`ReadHandler`] that forwards to a shared [`CommitStage`] and passes plugin log lines
/// to the run's observer.
pub(super) struct TaskHandler {
    pub(super) stage: Arc<CommitStage>,
    pub(super) pipeline: String,
    pub(super) observer: Arc<dyn RunObserver>,
    /// The task's requests, their retries and its pages so far, read by the runner's
    /// progress tick.
    pub(super) counts: Arc<super::run::LiveCounts>,
}

impl ReadHandler for TaskHandler {
    fn records(&self, stream: &str, records: Records) -> Result<(), String> {
        self.stage.records(stream, records)
    }
    fn checkpoint(&self, stream: &str, state: Value) -> Result<(), String> {
        self.stage.checkpoint(stream, state)
    }
    fn log(&self, level: ionport_plugin_abi::LogLevel, message: &str) {
        self.observer
            .plugin_log(&self.pipeline, &self.stage.spec.name, level, message);
    }
    fn request(&self, _head: &ionport_plugin_abi::wire::GatewayRequestHead) {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
    }
    fn retries(&self, retries: u32) {
        (self.counts.retries).fetch_add(u64::from(retries), Ordering::Relaxed);
    }
    fn pages(&self, pages: u64) {
        self.counts.pages.fetch_add(pages, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationError;
    use serde_json::json;

    /// Keeps commits in memory; the commit numbered `fail_at` (1-based) fails.
    #[derive(Debug, Default)]
    struct Memory {
        commits: Mutex<Vec<(Vec<i64>, Value)>>,
        fail_at: Option<usize>,
    }

    impl Destination for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn prepare(&self, _: &StreamSpec) -> Result<(), DestinationError> {
            Ok(())
        }
        fn commit(
            &self,
            _: &StreamSpec,
            records: &Records,
            state: &Value,
        ) -> Result<(), DestinationError> {
            let mut c = self.commits.lock().unwrap();
            if self.fail_at == Some(c.len() + 1) {
                return Err(DestinationError::Write {
                    destination: "memory".into(),
                    message: "disk full".into(),
                });
            }
            let ids = records
                .iter()
                .map(|r| r.get("id").unwrap().as_i64().unwrap())
                .collect();
            c.push((ids, state.clone()));
            Ok(())
        }
        fn load_state(&self, _: &str) -> Result<Option<Value>, DestinationError> {
            Ok(None)
        }
        fn states(&self) -> Result<Vec<(String, Value)>, DestinationError> {
            Ok(Vec::new())
        }
        fn reset_state(&self, _: Option<&str>) -> Result<(), DestinationError> {
            Ok(())
        }
        fn finish(&self, _: &StreamSpec) -> Result<(), DestinationError> {
            Ok(())
        }
    }

    fn spec() -> StreamSpec {
        StreamSpec {
            name: "s".into(),
            record_schema: json!({}),
            primary_key: vec!["id".into()],
            cursor_field: None,
        }
    }

    fn records(ids: std::ops::Range<i64>) -> Records {
        let maps: Vec<_> = ids
            .map(|i| json!({ "id": i }).as_object().unwrap().clone())
            .collect();
        Records::from_maps(&maps).unwrap()
    }

    fn stage(dest: &Arc<Memory>) -> CommitStage {
        CommitStage::start(spec(), dest.clone(), None, Box::new(|_, _| {})).unwrap()
    }

    #[test]
    fn commits_arrive_in_checkpoint_order_each_with_exactly_its_records() {
        let dest = Arc::new(Memory::default());
        let s = stage(&dest);
        for page in 0..20 {
            s.records("s", records(page * 10..page * 10 + 10)).unwrap();
            s.checkpoint("s", json!({ "page": page })).unwrap();
        }
        s.records("s", records(200..205)).unwrap();
        let totals = s.finish(true, Some(json!({"page": "last"}))).unwrap();
        assert_eq!((totals.records, totals.commits), (205, 21));
        let commits = dest.commits.lock().unwrap();
        let mut next = 0;
        for (i, (ids, state)) in commits.iter().enumerate() {
            let want: Vec<i64> = (next..next + ids.len() as i64).collect();
            assert_eq!(ids, &want, "commit {i}");
            next += ids.len() as i64;
            if i < 20 {
                assert_eq!(state, &json!({ "page": i }));
            }
        }
        assert_eq!(commits.last().unwrap().1, json!({"page": "last"}));
    }

    #[test]
    fn records_after_the_last_checkpoint_of_a_failed_read_are_not_committed() {
        let dest = Arc::new(Memory::default());
        let s = stage(&dest);
        s.records("s", records(0..10)).unwrap();
        s.checkpoint("s", json!(1)).unwrap();
        s.records("s", records(10..20)).unwrap();
        let totals = s.finish(false, None).unwrap();
        assert_eq!((totals.records, totals.commits), (10, 1));
        assert_eq!(totals.state, Some(json!(1)));
        assert_eq!(dest.commits.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_first_failed_commit_stops_the_read_and_is_the_reported_error() {
        let dest = Arc::new(Memory {
            fail_at: Some(3),
            ..Memory::default()
        });
        let s = stage(&dest);
        let mut refused = None;
        for page in 0..50 {
            let r = s
                .records("s", records(page * 10..page * 10 + 10))
                .and_then(|()| s.checkpoint("s", json!(page)));
            if let Err(e) = r {
                refused = Some((page, e));
                break;
            }
        }
        let (page, e) = refused.expect("the stage refuses once a commit failed");
        assert!(page >= 3, "refused at page {page}");
        assert!(e.contains("disk full"), "{e}");
        let err = s.finish(true, None).unwrap_err();
        assert!(err.contains("disk full"), "{err}");
        let t = s.totals();
        assert_eq!((t.records, t.commits), (20, 2));
    }

    #[test]
    fn records_of_another_stream_are_refused() {
        let dest = Arc::new(Memory::default());
        let s = stage(&dest);
        assert!(s.records("other", records(0..1)).is_err());
    }
}
