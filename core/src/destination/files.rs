//! What the file destinations (JSONL, Parquet) share: a per-stream commit log, sorted
//! segments, the state file, crash recovery, and the merge into the final output.
//!
//! Layout under the destination directory:
//!
//! ```text
//! <table>.<ext>                   the final output: each key once, in key order
//! _ionport/writer.lock            the writer lock (one writer per destination; see `lock`)
//! _ionport/<table>/log.jsonl      records committed since the last seal
//! _ionport/<table>/seg-NNNNNN.jsonl  sealed windows of the log: sorted by key, each key once
//! _ionport/<table>/state.json     {stream, state, log_len, segments, ...}
//! ```
//!
//! A commit appends the records to the log at `log_len`, fsyncs it, then writes the state
//! file atomically (temporary file, fsync, rename, fsync of the directory) with the new
//! `log_len`. The state file is the commit point: on open, log bytes past `log_len` (a
//! commit cut short) are truncated away.
//!
//! Work stays linear in the number of records: when the log outgrows a window it is
//! *sealed* — sorted by key into a new segment (only keys and offsets in memory), the
//! segment listed in the state, the log emptied — and nothing already written is read
//! again. `finish` seals the rest, merges runs of segments into one each while there are
//! more than a merge reads at once (`MAX_FAN_IN`), then merges the output and the
//! segments in one streaming k-way merge (the newest version of a key wins) into a
//! temporary file, fsyncs it, marks
//! the state `merging`, renames it over the output, then forgets the segments. Segments
//! not listed in the state, and a temporary output without `merging`, are leftovers of a
//! step cut short and are removed on open; with `merging`, the open completes the rename.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    Column, TableNames, TableSpec, now_rfc3339, sync_dir, table_name, write_atomic,
};
use super::lock::{FileLock, lock_wait};
use super::row::Columns;
use super::segments::{self, Damage, Merge};
use super::{Destination, DestinationError, StreamSpec};
use crate::read::Records;

/// The log size at which a commit seals it into a sorted segment. 16 MiB is about 70,000
/// typical ERP records; sealing holds their keys and offsets in memory (about 3 MiB), in
/// the commit thread while the read goes on.
const SEAL_WINDOW_BYTES: u64 = 16 << 20;

/// The most segments one merge reads at once (each holds a 64 KiB read buffer and a
/// line). More are first merged in groups of this many into one segment each, so that
/// the final merge's memory does not grow with the number of records.
const MAX_FAN_IN: usize = 32;

/// Rows read back from an output or a segment, as JSON text.
pub type Rows = Box<dyn Iterator<Item = Result<segments::Line, String>>>;

/// A final output format.
pub trait Format: Send + Sync + 'static {
    /// The destination kind, e.g. `jsonl`.
    const KIND: &'static str;
    /// The output file's extension.
    const EXT: &'static str;

    /// Checks an existing output against the stream's table (column types).
    fn check_existing(_output: &Path, _table: &TableSpec) -> Result<(), String> {
        Ok(())
    }

    /// The columns of an existing output, where its format records them (Parquet).
    fn output_columns(_output: &Path) -> Result<Option<Vec<Column>>, String> {
        Ok(None)
    }

    /// The rows of an output this destination wrote, in file order.
    fn read_output(output: &Path) -> Result<Rows, String>;

    /// Writes `rows` (records' JSON text, checked) into `out` as a whole new output.
    /// `base` is the output it replaces, when there is one (for columns it has that the
    /// table no longer lists).
    fn write(
        table: &TableSpec,
        base: Option<&Path>,
        rows: &mut dyn Iterator<Item = Result<String, String>>,
        out: &mut File,
    ) -> Result<(), String>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    stream: String,
    state: Option<Value>,
    log_len: u64,
    /// Sealed segments, oldest first.
    #[serde(default)]
    segments: Vec<u64>,
    /// The output is in key order (outputs of earlier versions are in arrival order).
    #[serde(default)]
    sorted: bool,
    /// Every row of the output is also in the segments: the merge must not read it.
    #[serde(default)]
    output_in_segments: bool,
    /// `<output>.tmp` is complete and synced: only its rename may be missing.
    #[serde(default)]
    merging: bool,
    /// The stream's primary key as last prepared (what a repair sorts segments by).
    #[serde(default)]
    key: Option<Vec<Column>>,
    /// Every column the stream's output holds, as last prepared (what schema changes are
    /// compared with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<Column>>,
    updated_at: String,
}

#[derive(Debug)]
pub(crate) struct StreamFiles {
    pub(crate) stream: String,
    pub(crate) table: String,
    pub(crate) dir: PathBuf,
    log: File,
    saved: StateFile,
    spec: Option<(StreamSpec, TableSpec)>,
}

impl StreamFiles {
    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }

    pub(crate) fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("seg-{n:06}.jsonl"))
    }

    /// Makes `next` the committed state (atomically), then the in-memory one.
    fn store(&mut self, mut next: StateFile) -> std::io::Result<()> {
        next.updated_at = now_rfc3339();
        let bytes = serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?;
        write_atomic(&self.state_path(), &bytes)?;
        self.saved = next;
        Ok(())
    }

    fn next_segment(&self) -> u64 {
        self.saved.segments.iter().max().map_or(1, |n| n + 1)
    }

    /// Empties the log after its records moved into a segment (the state already says so).
    fn empty_log(&mut self) -> std::io::Result<()> {
        self.log.set_len(0)?;
        self.log.sync_all()
    }

    /// The last step of a merge: the output holds the segments now.
    fn end_merge(&mut self) -> std::io::Result<()> {
        let old = std::mem::take(&mut self.saved.segments);
        let mut next = self.saved.clone();
        next.segments = Vec::new();
        next.merging = false;
        next.output_in_segments = false;
        next.sorted = true;
        if let Err(e) = self.store(next) {
            self.saved.segments = old;
            return Err(e);
        }
        for n in old {
            let _ = std::fs::remove_file(self.segment_path(n));
        }
        Ok(())
    }
}

/// A directory of per-stream outputs with their logs and states.
pub struct FileDestination<F: Format> {
    root: PathBuf,
    describe: String,
    streams: Mutex<HashMap<String, Arc<Mutex<StreamFiles>>>>,
    names: TableNames,
    window: u64,
    lock: FileLock,
    format: PhantomData<fn() -> F>,
}

impl<F: Format> std::fmt::Debug for FileDestination<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDestination")
            .field("kind", &F::KIND)
            .field("root", &self.root)
            .field("lock", &self.lock.path())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `ionport repair` did to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRepair {
    /// The stream.
    pub stream: String,
    /// The damaged file.
    pub file: PathBuf,
    /// Lines kept (moved into a sealed segment).
    pub kept: u64,
    /// Lines set aside.
    pub damaged: u64,
    /// Where the damaged lines were set aside (nothing is deleted).
    pub set_aside: PathBuf,
}

/// What `ionport repair` did: one entry per repaired stream; empty when nothing was damaged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The repaired streams. Each one's state was reset, so that its next run reads it
    /// again from the start (the upsert replaces what is already there).
    pub streams: Vec<StreamRepair>,
}

impl<F: Format> FileDestination<F> {
    /// Opens (creating when missing) the directory `root` as its only writer, waiting up to
    /// `IONPORT_DESTINATION_WAIT_SECS` (default 10 s) for another writer to let go.
    pub fn open(root: &Path) -> Result<Self, DestinationError> {
        let wait = lock_wait().map_err(|message| DestinationError::Open {
            destination: format!("{}:{}", F::KIND, root.display()),
            message,
        })?;
        Self::open_waiting(root, wait)
    }

    /// [`FileDestination::open`], waiting at most `wait` for the writer lock.
    pub fn open_waiting(root: &Path, wait: Duration) -> Result<Self, DestinationError> {
        let describe = format!("{}:{}", F::KIND, root.display());
        std::fs::create_dir_all(root.join("_ionport")).map_err(|e| DestinationError::Open {
            destination: describe.clone(),
            message: format!("cannot create {}: {e}", root.display()),
        })?;
        let lock = FileLock::acquire(&describe, &root.join("_ionport").join("writer.lock"), wait)?;
        Ok(FileDestination {
            root: root.to_path_buf(),
            describe,
            streams: Mutex::new(HashMap::new()),
            names: TableNames::default(),
            window: SEAL_WINDOW_BYTES,
            lock,
            format: PhantomData,
        })
    }

    /// Seals the log into a sorted segment whenever it grows past `bytes` (default 32 MiB).
    /// Smaller windows hold fewer keys in memory and make more segments to merge.
    pub fn with_compact_window(mut self, bytes: u64) -> Self {
        self.window = bytes.max(1);
        self
    }

    fn io_err(&self, stream: &str, what: &str, e: impl std::fmt::Display) -> DestinationError {
        DestinationError::Write {
            destination: self.describe.clone(),
            message: format!("stream {stream}: {what}: {e}"),
        }
    }

    fn output(&self, table: &str) -> PathBuf {
        self.root.join(format!("{table}.{}", F::EXT))
    }

    fn tmp_output(&self, table: &str) -> PathBuf {
        self.root.join(format!("{table}.{}.tmp", F::EXT))
    }

    /// The stream's files, opened (and recovered) on first use in this process.
    fn stream(&self, stream: &str) -> Result<Arc<Mutex<StreamFiles>>, DestinationError> {
        let mut streams = lock(&self.streams);
        if let Some(s) = streams.get(stream) {
            return Ok(s.clone());
        }
        let table = table_name(stream);
        self.names.claim(&self.describe, stream, &table)?;
        let dir = self.root.join("_ionport").join(&table);
        let io = |what: &str, e: std::io::Error| self.io_err(stream, what, e);
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create its directory", e))?;
        let state_path = dir.join("state.json");
        let saved: Option<StateFile> = match std::fs::read(&state_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                self.io_err(
                    stream,
                    &format!("{} is not a state file", state_path.display()),
                    e,
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("cannot read its state", e)),
        };
        if let Some(s) = &saved
            && s.stream != stream
        {
            return Err(DestinationError::Schema {
                destination: self.describe.clone(),
                stream: stream.to_string(),
                message: format!(
                    "its table name `{table}` is already used by stream `{}`",
                    s.stream
                ),
            });
        }
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("log.jsonl"))
            .map_err(|e| io("cannot open its log", e))?;
        let is_new = saved.is_none();
        let saved = saved.unwrap_or_else(|| StateFile {
            stream: stream.to_string(),
            state: None,
            log_len: 0,
            segments: Vec::new(),
            // A stream new to this version whose output an earlier one wrote is not in
            // key order.
            sorted: !self.output(&table).exists(),
            output_in_segments: false,
            merging: false,
            key: None,
            columns: None,
            updated_at: now_rfc3339(),
        });
        let log_len = saved.log_len;
        let len = log
            .metadata()
            .map_err(|e| io("cannot read its log", e))?
            .len();
        if len > log_len {
            // A commit cut short: its records are not covered by the state. Discard them.
            log.set_len(log_len)
                .and_then(|()| log.sync_all())
                .map_err(|e| io("cannot truncate its log", e))?;
            tracing::warn!(destination = %self.describe, stream, discarded_bytes = len - log_len, "discarded records written after the last committed state");
        } else if len < log_len {
            return Err(self.io_err(
                stream,
                "its log is shorter than its state says",
                format!("{len} < {log_len} bytes: the directory was changed outside ionport"),
            ));
        }
        let mut files = StreamFiles {
            stream: stream.to_string(),
            table,
            dir,
            log,
            saved,
            spec: None,
        };
        self.recover(&mut files)
            .map_err(|e| io("cannot recover from an interrupted step", e))?;
        if is_new {
            let next = files.saved.clone();
            files
                .store(next)
                .map_err(|e| io("cannot write its state", e))?;
        }
        let files = Arc::new(Mutex::new(files));
        streams.insert(stream.to_string(), files.clone());
        Ok(files)
    }

    /// Finishes or undoes what a crash interrupted: a merge whose output is complete is
    /// renamed into place; half-written outputs and unlisted segments are removed.
    fn recover(&self, files: &mut StreamFiles) -> std::io::Result<()> {
        let tmp = self.tmp_output(&files.table);
        if files.saved.merging {
            if tmp.exists() {
                std::fs::rename(&tmp, self.output(&files.table))?;
                sync_dir(&self.root)?;
            }
            files.end_merge()?;
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
        // The temporary name of earlier versions' state writes.
        let _ = std::fs::remove_file(files.dir.join("state.json.tmp"));
        for entry in std::fs::read_dir(&files.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if crate::atomic::is_leftover(&name, "state.json") {
                let _ = std::fs::remove_file(files.dir.join(name.as_ref()));
                continue;
            }
            if let Some(n) = name
                .strip_prefix("seg-")
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok())
                && !files.saved.segments.contains(&n)
            {
                let _ = std::fs::remove_file(files.dir.join(name.as_ref()));
            }
        }
        Ok(())
    }

    fn table<'a>(
        &self,
        files: &'a mut StreamFiles,
        stream: &StreamSpec,
    ) -> Result<&'a TableSpec, DestinationError> {
        let stale = !matches!(&files.spec, Some((s, _)) if s == stream);
        if stale {
            let table = TableSpec::new(&self.describe, stream)?;
            let output = self.output(&files.table);
            if output.exists() {
                F::check_existing(&output, &table).map_err(|message| DestinationError::Schema {
                    destination: self.describe.clone(),
                    stream: stream.name.clone(),
                    message,
                })?;
            }
            files.saved.key = Some(table.key().to_vec());
            files.saved.columns = Some(held_columns(files.saved.columns.take(), &table));
            files.spec = Some((stream.clone(), table));
        }
        match &files.spec {
            Some((_, t)) => Ok(t),
            None => Err(self.io_err(&stream.name, "internal", "no table")),
        }
    }

    /// Whether `stream` is open or has files (reading a state creates nothing).
    fn known(&self, stream: &str) -> bool {
        lock(&self.streams).contains_key(stream)
            || self
                .root
                .join("_ionport")
                .join(table_name(stream))
                .join("state.json")
                .exists()
    }

    /// Every stream that has a state file, by name.
    fn known_streams(&self) -> Result<Vec<String>, DestinationError> {
        let dir = self.root.join("_ionport");
        let err = |e: std::io::Error| DestinationError::Write {
            destination: self.describe.clone(),
            message: format!("cannot list {}: {e}", dir.display()),
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(err)? {
            let path = entry.map_err(err)?.path().join("state.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let s: StateFile =
                serde_json::from_slice(&bytes).map_err(|e| DestinationError::Write {
                    destination: self.describe.clone(),
                    message: format!("{} is not a state file: {e}", path.display()),
                })?;
            out.push(s.stream);
        }
        out.sort();
        Ok(out)
    }

    fn damaged(&self, files: &StreamFiles, d: Damage) -> DestinationError {
        DestinationError::Damaged {
            destination: self.describe.clone(),
            stream: files.stream.clone(),
            file: d.file.display().to_string(),
            line: d.line,
            message: d.message,
        }
    }

    /// Moves the log's records into a new sorted segment and empties the log. With
    /// `set_aside`, damaged lines go there instead of failing the seal.
    fn seal_log(
        &self,
        files: &mut StreamFiles,
        table: &TableSpec,
        set_aside: Option<&mut segments::SetAside>,
    ) -> Result<(), DestinationError> {
        let name = files.stream.clone();
        let io = |what: &str, e: std::io::Error| self.io_err(&name, what, e);
        let first = files.next_segment();
        let sealed = segments::seal(
            &files.log_path(),
            files.saved.log_len,
            table,
            u64::MAX,
            &mut |i| files.segment_path(first + i),
            set_aside,
        )
        .map_err(|e| match e {
            segments::SealError::Damaged(d) => self.damaged(files, d),
            segments::SealError::Io(e) => io("cannot seal its log", e),
        })?;
        sync_dir(&files.dir).map_err(|e| io("cannot seal its log", e))?;
        let mut next = files.saved.clone();
        next.segments.extend((0..sealed).map(|i| first + i));
        next.log_len = 0;
        files
            .store(next)
            .map_err(|e| io("cannot write its state", e))?;
        files
            .empty_log()
            .map_err(|e| io("cannot empty its log", e))?;
        tracing::debug!(destination = %self.describe, stream = %name, segments = files.saved.segments.len(), "sealed the log");
        Ok(())
    }

    /// An output of an earlier version (in arrival order) becomes sorted segments, the
    /// oldest ones, so that the merge can stream it.
    fn sort_old_output(
        &self,
        files: &mut StreamFiles,
        table: &TableSpec,
    ) -> Result<(), DestinationError> {
        let name = files.stream.clone();
        let output = self.output(&files.table);
        let fail =
            |e: String| self.io_err(&name, "cannot sort the output of an earlier version", e);
        let io = |e: std::io::Error| fail(e.to_string());
        let staged = files.dir.join("old-output.jsonl");
        let mut len = 0u64;
        {
            let mut w = std::io::BufWriter::new(File::create(&staged).map_err(io)?);
            for r in F::read_output(&output).map_err(fail)? {
                let line = r.map_err(fail)?.text;
                w.write_all(line.as_bytes())
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(io)?;
                len += line.len() as u64 + 1;
            }
            w.into_inner()
                .map_err(|e| io(e.into_error()))?
                .sync_all()
                .map_err(io)?;
        }
        // Numbered below the segments it goes before: renumber those after it.
        let first = files.next_segment();
        let sealed = segments::seal(
            &staged,
            len,
            table,
            self.window,
            &mut |i| files.segment_path(first + i),
            None,
        )
        .map_err(|e| match e {
            segments::SealError::Damaged(d) => self.damaged(files, d),
            segments::SealError::Io(e) => io(e),
        })?;
        let _ = std::fs::remove_file(&staged);
        sync_dir(&files.dir).map_err(io)?;
        let mut next = files.saved.clone();
        let mut order: Vec<u64> = (0..sealed).map(|i| first + i).collect();
        order.extend(&files.saved.segments);
        next.segments = order;
        next.output_in_segments = true;
        files.store(next).map_err(io)
    }

    /// Merges runs of up to `fan_in` consecutive segments into one each, in passes, until
    /// at most `fan_in` are left. Each new segment is durable before the state lists it
    /// in place of its run; a crash leaves either the run or the new segment unlisted,
    /// and the open removes that.
    pub(crate) fn merge_segments(
        &self,
        files: &mut StreamFiles,
        table: &TableSpec,
        fan_in: usize,
    ) -> Result<(), DestinationError> {
        let fan_in = fan_in.max(2);
        let name = files.stream.clone();
        let fail = |e: String| self.io_err(&name, "cannot merge its segments", e);
        while files.saved.segments.len() > fan_in {
            let mut at = 0;
            while at < files.saved.segments.len() {
                let end = (at + fan_in).min(files.saved.segments.len());
                let run: Vec<u64> = files.saved.segments[at..end].to_vec();
                at += 1;
                if run.len() < 2 {
                    continue;
                }
                let n = files.next_segment();
                let paths: Vec<PathBuf> = run.iter().map(|n| files.segment_path(*n)).collect();
                segments::merge_into(table, &paths, &files.segment_path(n)).map_err(fail)?;
                sync_dir(&files.dir).map_err(|e| fail(e.to_string()))?;
                let mut next = files.saved.clone();
                next.segments.splice(at - 1..end, [n]);
                files.store(next).map_err(|e| fail(e.to_string()))?;
                for p in paths {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        Ok(())
    }

    /// Seals the rest of the log and merges the output with every segment.
    fn merge(&self, files: &mut StreamFiles, stream: &StreamSpec) -> Result<(), DestinationError> {
        let table = self.table(files, stream)?.clone();
        if files.saved.log_len > 0 {
            self.seal_log(files, &table, None)?;
        }
        let output = self.output(&files.table);
        if files.saved.segments.is_empty() && output.exists() {
            return Ok(());
        }
        if output.exists()
            && table.key_len > 0
            && !files.saved.sorted
            && !files.saved.output_in_segments
        {
            self.sort_old_output(files, &table)?;
        }
        self.merge_segments(files, &table, MAX_FAN_IN)?;
        let name = &stream.name;
        let io = |what: &str, e: std::io::Error| self.io_err(name, what, e);
        let fail = |e: String| self.io_err(name, "cannot merge", e);
        let base = output.exists().then_some(output.as_path());
        let mut sources: Vec<(String, Rows)> = Vec::new();
        if let Some(b) = base
            && !files.saved.output_in_segments
        {
            sources.push((b.display().to_string(), F::read_output(b).map_err(fail)?));
        }
        for n in &files.saved.segments {
            let p = files.segment_path(*n);
            sources.push((
                p.display().to_string(),
                segments::read_jsonl(&p).map_err(fail)?,
            ));
        }
        let tmp = self.tmp_output(&files.table);
        let mut out = File::create(&tmp).map_err(|e| io("cannot create its output", e))?;
        let mut rows = Merge::new(&table, sources);
        F::write(&table, base, &mut rows, &mut out).map_err(fail)?;
        out.flush()
            .and_then(|()| out.sync_all())
            .and_then(|()| sync_dir(&self.root))
            .map_err(|e| io("cannot sync its output", e))?;
        drop(out);
        let mut next = files.saved.clone();
        next.merging = true;
        files
            .store(next)
            .map_err(|e| io("cannot write its state", e))?;
        std::fs::rename(&tmp, &output)
            .and_then(|()| sync_dir(&self.root))
            .map_err(|e| io("cannot replace its output", e))?;
        files
            .end_merge()
            .map_err(|e| io("cannot write its state", e))?;
        tracing::debug!(destination = %self.describe, stream = %name, output = %output.display(), "merged");
        Ok(())
    }

    /// Sets aside the damaged lines of every stream's log (into
    /// `_ionport/<table>/damaged-<time>.jsonl`), seals the rest, and resets the state of
    /// each stream that had any, so that its next run reads it again in full.
    pub fn repair(&self) -> Result<RepairReport, DestinationError> {
        let mut report = RepairReport::default();
        for name in self.known_streams()? {
            let files = self.stream(&name)?;
            let mut files = lock(&files);
            let io = |what: &str, e: std::io::Error| self.io_err(&name, what, e);
            let first_damage = segments::scan(&files.log_path(), files.saved.log_len)
                .map_err(|e| io("cannot read its log", e))?;
            if first_damage.is_none() {
                continue;
            }
            let stamp = now_rfc3339().replace([':', '.'], "-");
            let aside_path = files.dir.join(format!("damaged-{stamp}.jsonl"));
            let mut aside = segments::SetAside::new(aside_path.clone());
            // Sealing needs no schema beyond the key, which every commit records.
            let Some(key) = files.saved.key.clone() else {
                return Err(self.io_err(
                    &name,
                    "cannot repair",
                    "its state file does not record its primary key (written by an earlier version); remove its directory under _ionport and run it again with --full-refresh",
                ));
            };
            let table = TableSpec::key_only(&name, key);
            self.seal_log(&mut files, &table, Some(&mut aside))?;
            let (kept, damaged) = aside.counts();
            let mut next = files.saved.clone();
            next.state = None;
            files
                .store(next)
                .map_err(|e| io("cannot write its state", e))?;
            tracing::warn!(destination = %self.describe, stream = %name, damaged, set_aside = %aside_path.display(), "repaired: damaged lines set aside, state reset");
            report.streams.push(StreamRepair {
                stream: name.clone(),
                file: files.log_path(),
                kept,
                damaged,
                set_aside: aside_path,
            });
        }
        Ok(report)
    }
}

/// The columns an output holds once `table` is written into it: those it had (a column
/// gone from the schema is kept), each with the table's type where it has one, then the
/// table's new ones.
fn held_columns(before: Option<Vec<Column>>, table: &TableSpec) -> Vec<Column> {
    let mut out = before.unwrap_or_default();
    for c in &mut out {
        if let Some((_, t)) = table.column(&c.name) {
            c.ty = t.ty;
        }
    }
    for c in &table.columns {
        if !out.iter().any(|o| o.name == c.name) {
            out.push(c.clone());
        }
    }
    out
}

impl<F: Format> FileDestination<F> {
    /// The columns `stream`'s output holds: as recorded when it was last prepared, else
    /// (an output written before they were recorded) as the output's format records them.
    fn held(&self, stream: &StreamSpec) -> Result<Option<Vec<Column>>, DestinationError> {
        let output = self.output(&table_name(&stream.name));
        if !self.known(&stream.name) && !output.exists() {
            return Ok(None);
        }
        let files = self.stream(&stream.name)?;
        let files = lock(&files);
        if let Some(c) = &files.saved.columns {
            return Ok(Some(c.clone()));
        }
        if output.exists() {
            return F::output_columns(&output).map_err(|message| DestinationError::Schema {
                destination: self.describe.clone(),
                stream: stream.name.clone(),
                message,
            });
        }
        Ok(None)
    }
}

impl<F: Format> Destination for FileDestination<F> {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn prepare(&self, stream: &StreamSpec) -> Result<(), DestinationError> {
        let files = self.stream(&stream.name)?;
        let mut files = lock(&files);
        self.table(&mut files, stream).map(|_| ())
    }

    fn commit(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
    ) -> Result<(), DestinationError> {
        let files = self.stream(&stream.name)?;
        let mut files = lock(&files);
        let table = self.table(&mut files, stream)?.clone();
        // Each record checked, then written as the connector wrote it. Records of one key
        // may follow each other in the log: sealing keeps the last of each.
        let mut columns = Columns::new(&self.describe, &table);
        let mut values = Vec::with_capacity(table.columns.len());
        let mut buf = Vec::with_capacity(records.len() * 128);
        for r in records.iter() {
            columns.values(&r, &mut values)?;
            buf.extend_from_slice(r.line().as_bytes());
            buf.push(b'\n');
        }
        let io = |what: &str, e: std::io::Error| self.io_err(&stream.name, what, e);
        let start = files.saved.log_len;
        // Data first, durably ...
        {
            let log = &mut files.log;
            log.set_len(start)
                .and_then(|()| log.seek(SeekFrom::Start(start)).map(|_| ()))
                .and_then(|()| log.write_all(&buf))
                .map_err(|e| io("cannot write its log", e))?;
            log.sync_data().map_err(|e| io("cannot sync its log", e))?;
        }
        // ... then the state that points past it.
        let mut next = files.saved.clone();
        next.log_len = start + buf.len() as u64;
        next.state = Some(state.clone());
        files
            .store(next)
            .map_err(|e| io("cannot write its state", e))?;
        // Seal as the log grows: sealing holds one window of keys, and nothing written
        // before is read again until the merge in `finish`.
        if files.saved.log_len > self.window {
            self.seal_log(&mut files, &table, None)?;
        }
        Ok(())
    }

    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError> {
        if !self.known(stream) {
            return Ok(None);
        }
        let files = self.stream(stream)?;
        let files = lock(&files);
        Ok(files.saved.state.clone())
    }

    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError> {
        let mut out = Vec::new();
        for name in self.known_streams()? {
            if let Some(state) = self.load_state(&name)? {
                out.push((name, state));
            }
        }
        Ok(out)
    }

    fn reset_state(&self, stream: Option<&str>) -> Result<(), DestinationError> {
        let names = match stream {
            Some(s) => vec![s.to_string()],
            None => self.known_streams()?,
        };
        for name in names {
            if !self.known(&name) {
                continue;
            }
            let files = self.stream(&name)?;
            let mut files = lock(&files);
            let mut next = files.saved.clone();
            next.state = None;
            files
                .store(next)
                .map_err(|e| self.io_err(&name, "cannot write its state", e))?;
        }
        Ok(())
    }

    fn columns(&self, stream: &StreamSpec) -> Result<Option<Vec<Column>>, DestinationError> {
        self.held(stream)
    }

    fn finish(&self, stream: &StreamSpec) -> Result<(), DestinationError> {
        let files = self.stream(&stream.name)?;
        let mut files = lock(&files);
        self.merge(&mut files, stream)
    }

    fn mark_deleted(
        &self,
        stream: &StreamSpec,
        live_keys: &std::collections::HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        self.mark_missing(stream, live_keys, at)
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;

/// `deletes = "soft"`: marking the rows the source no longer has.
impl<F: Format> FileDestination<F> {
    /// [`Destination::mark_deleted`]: the finished output is read once; each unmarked row
    /// whose key is not in `live` is appended to the commit log with its last values and
    /// [`super::DELETED_AT_COLUMN`] set — one commit, under the stream's current state —
    /// and the stream is finished again. The commit and the merge keep their crash rules:
    /// a crash before the commit's state write loses the marks (the next pass makes them
    /// again), after it the next `finish` merges them.
    fn mark_missing(
        &self,
        stream: &StreamSpec,
        live: &std::collections::HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        // The output holds everything committed once the stream is finished.
        self.finish(stream)?;
        let (table, output, state) = {
            let files = self.stream(&stream.name)?;
            let mut files = lock(&files);
            let table = self.table(&mut files, stream)?.clone();
            (table, self.output(&files.table), files.saved.state.clone())
        };
        if let Some(e) = super::unmarkable(&self.describe, &table) {
            return Err(e);
        }
        if !output.exists() {
            return Ok(0);
        }
        let fail = |e: String| self.io_err(&stream.name, "cannot mark deleted rows", e);
        let mut marked = Vec::new();
        let mut n = 0u64;
        for row in F::read_output(&output).map_err(fail)? {
            let row = row.map_err(fail)?;
            let at_line = row.at;
            let records = Records::parse(&stream.name, row.text.into_bytes())
                .map_err(|e| fail(format!("{}: row {at_line}: {e}", output.display())))?;
            for r in records.iter() {
                if r.get(super::DELETED_AT_COLUMN)
                    .is_some_and(|v| !v.is_null())
                {
                    continue;
                }
                let key = super::row::record_key(&table, &r).map_err(fail)?;
                if live.contains(&key) {
                    continue;
                }
                let mut map = r.to_map().map_err(|e| fail(e.to_string()))?;
                map.insert(super::DELETED_AT_COLUMN.into(), Value::String(at.into()));
                serde_json::to_writer(&mut marked, &map).map_err(|e| fail(e.to_string()))?;
                marked.push(b'\n');
                n += 1;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let records = Records::parse(&stream.name, marked).map_err(|e| fail(e.to_string()))?;
        self.commit(stream, &records, &state.unwrap_or(Value::Null))?;
        self.finish(stream)?;
        Ok(n)
    }
}
