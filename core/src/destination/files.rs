//! What the file destinations (JSONL, Parquet) share: a per-stream commit log and state
//! file, crash recovery, and the atomic compaction into the final output.
//!
//! Layout under the destination directory:
//!
//! ```text
//! <table>.<ext>                   the final output: each key once (replaced atomically)
//! _ionport/<table>/log.jsonl      records committed since the last compaction
//! _ionport/<table>/state.json     {stream, state, log_len, updated_at}
//! ```
//!
//! A commit appends the records to the log at `log_len`, fsyncs it, then writes the state
//! file atomically (temporary file, fsync, rename, fsync of the directory) with the new
//! `log_len`. The state file is the commit point: on open, log bytes past `log_len`
//! (a commit cut short) are truncated away. `finish` merges the final output with the log
//! (the log's last record of each key wins), writes the result to a temporary file, fsyncs
//! and renames it over the output, then sets `log_len` to 0 and empties the log. A crash
//! anywhere in between is repaired by running `finish` again: merging the same log into an
//! output that already contains it gives the same output.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{TableNames, TableSpec, now_rfc3339, sync_dir, table_name, write_atomic};
use super::{Destination, DestinationError, StreamSpec};

/// The log size at which a commit compacts it into the output (and at which `finish`
/// would otherwise hold the most keys in memory). 32 MiB is about 150,000 typical ERP
/// records: the compaction window bounds memory; larger runs rewrite the output once per
/// window.
const COMPACT_WINDOW_BYTES: u64 = 32 << 20;

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

    /// Writes into `out` the rows of `base` (the current output, when there is one) whose
    /// key is not in `replaced`, then every row of `new_rows`.
    fn merge(
        table: &TableSpec,
        base: Option<&Path>,
        replaced: &HashSet<String>,
        new_rows: &mut dyn Iterator<Item = Result<Map<String, Value>, String>>,
        out: &mut File,
    ) -> Result<(), String>;
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    stream: String,
    state: Option<Value>,
    log_len: u64,
    updated_at: String,
}

#[derive(Debug)]
struct StreamFiles {
    stream: String,
    table: String,
    dir: PathBuf,
    log: File,
    log_len: u64,
    state: Option<Value>,
    spec: Option<(StreamSpec, TableSpec)>,
}

impl StreamFiles {
    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }

    fn write_state(&self, state: Option<&Value>, log_len: u64) -> std::io::Result<()> {
        let file = StateFile {
            stream: self.stream.clone(),
            state: state.cloned(),
            log_len,
            updated_at: now_rfc3339(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        write_atomic(&self.state_path(), &bytes)
    }
}

/// A directory of per-stream outputs with their logs and states.
pub struct FileDestination<F: Format> {
    root: PathBuf,
    describe: String,
    streams: Mutex<HashMap<String, Arc<Mutex<StreamFiles>>>>,
    names: TableNames,
    compact_window: u64,
    format: PhantomData<fn() -> F>,
}

impl<F: Format> std::fmt::Debug for FileDestination<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDestination")
            .field("kind", &F::KIND)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<F: Format> FileDestination<F> {
    /// Opens (creating when missing) the directory `root`.
    pub fn open(root: &Path) -> Result<Self, DestinationError> {
        let describe = format!("{}:{}", F::KIND, root.display());
        std::fs::create_dir_all(root.join("_ionport")).map_err(|e| DestinationError::Open {
            destination: describe.clone(),
            message: format!("cannot create {}: {e}", root.display()),
        })?;
        Ok(FileDestination {
            root: root.to_path_buf(),
            describe,
            streams: Mutex::new(HashMap::new()),
            names: TableNames::default(),
            compact_window: COMPACT_WINDOW_BYTES,
            format: PhantomData,
        })
    }

    /// Compacts the log into the output whenever it grows past `bytes` (default 32 MiB).
    /// Smaller windows hold fewer keys in memory and rewrite the output more often.
    pub fn with_compact_window(mut self, bytes: u64) -> Self {
        self.compact_window = bytes.max(1);
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
        let log_len = saved.as_ref().map_or(0, |s| s.log_len);
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
        // Leftovers of a compaction cut short.
        let mut tmp = self.output(&table).into_os_string();
        tmp.push(".tmp");
        let _ = std::fs::remove_file(PathBuf::from(tmp));
        let _ = std::fs::remove_file(dir.join("state.json.tmp"));
        let files = StreamFiles {
            stream: stream.to_string(),
            table,
            dir,
            log,
            log_len,
            state: saved.and_then(|s| s.state),
            spec: None,
        };
        if !state_path.exists() {
            files
                .write_state(None, 0)
                .map_err(|e| io("cannot write its state", e))?;
        }
        let files = Arc::new(Mutex::new(files));
        streams.insert(stream.to_string(), files.clone());
        Ok(files)
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
            files.spec = Some((stream.clone(), table));
        }
        match &files.spec {
            Some((_, t)) => Ok(t),
            None => Err(self.io_err(&stream.name, "internal", "no table")),
        }
    }

    /// The committed log records, in order, with their line numbers.
    fn read_log(
        files: &StreamFiles,
    ) -> std::io::Result<impl Iterator<Item = Result<Map<String, Value>, String>> + use<F>> {
        let mut f = File::open(files.log_path())?;
        f.seek(SeekFrom::Start(0))?;
        let reader = BufReader::with_capacity(1 << 16, f.take(files.log_len));
        Ok(reader.lines().map(|line| {
            let line = line.map_err(|e| format!("cannot read the log: {e}"))?;
            serde_json::from_str::<Map<String, Value>>(&line)
                .map_err(|e| format!("a log line is not a JSON object: {e}"))
        }))
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
        records: &[Map<String, Value>],
        state: &Value,
    ) -> Result<(), DestinationError> {
        let files = self.stream(&stream.name)?;
        let mut files = lock(&files);
        let table = self.table(&mut files, stream)?;
        for r in records {
            table.check(&self.describe, r)?;
        }
        let mut buf = Vec::with_capacity(records.len() * 128);
        for r in table.last_by_key(records) {
            serde_json::to_writer(&mut buf, r)
                .map_err(|e| self.io_err(&stream.name, "cannot serialise a record", e))?;
            buf.push(b'\n');
        }
        let io = |what: &str, e: std::io::Error| self.io_err(&stream.name, what, e);
        let start = files.log_len;
        // Data first, durably ...
        {
            let log = &mut files.log;
            log.set_len(start)
                .map_err(|e| io("cannot write its log", e))?;
            log.seek(SeekFrom::Start(start))
                .map_err(|e| io("cannot write its log", e))?;
            log.write_all(&buf)
                .map_err(|e| io("cannot write its log", e))?;
            log.sync_data().map_err(|e| io("cannot sync its log", e))?;
        }
        // ... then the state that points past it.
        let new_len = start + buf.len() as u64;
        files
            .write_state(Some(state), new_len)
            .map_err(|e| io("cannot write its state", e))?;
        files.log_len = new_len;
        files.state = Some(state.clone());
        // Compact as the log grows, so that compaction never holds more than one window
        // of keys: memory stays flat however many records a run brings.
        if files.log_len > self.compact_window {
            self.compact(&mut files, stream)?;
        }
        Ok(())
    }

    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError> {
        if !self.known(stream) {
            return Ok(None);
        }
        let files = self.stream(stream)?;
        let files = lock(&files);
        Ok(files.state.clone())
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
            files
                .write_state(None, files.log_len)
                .map_err(|e| self.io_err(&name, "cannot write its state", e))?;
            files.state = None;
        }
        Ok(())
    }

    fn finish(&self, stream: &StreamSpec) -> Result<(), DestinationError> {
        let files = self.stream(&stream.name)?;
        let mut files = lock(&files);
        self.compact(&mut files, stream)
    }
}

impl<F: Format> FileDestination<F> {
    /// Merges the log into the output (each key once, the latest winning), then empties
    /// the log. Crash-safe: the output is replaced atomically before the log is emptied,
    /// and merging the same log again gives the same output.
    fn compact(
        &self,
        files: &mut StreamFiles,
        stream: &StreamSpec,
    ) -> Result<(), DestinationError> {
        let table = self.table(files, stream)?.clone();
        let output = self.output(&files.table);
        if files.log_len == 0 && output.exists() {
            return Ok(());
        }
        let name = &stream.name;
        let io = |what: &str, e: std::io::Error| self.io_err(name, what, e);
        let fail = |e: String| self.io_err(name, "cannot compact", e);

        // Pass 1: the last log line of each key.
        let mut winners: HashMap<String, usize> = HashMap::new();
        if table.key_len > 0 {
            for (i, r) in Self::read_log(files)
                .map_err(|e| io("cannot read its log", e))?
                .enumerate()
            {
                winners.insert(table.key_string(&r.map_err(fail)?), i);
            }
        }
        let replaced: HashSet<String> = winners.keys().cloned().collect();
        // Pass 2: the output without the replaced keys, then the winners.
        let mut new_rows = Self::read_log(files)
            .map_err(|e| io("cannot read its log", e))?
            .enumerate()
            .filter_map(|(i, r)| match r {
                Err(e) => Some(Err(e)),
                Ok(r) if table.key_len == 0 || winners.get(&table.key_string(&r)) == Some(&i) => {
                    Some(Ok(r))
                }
                Ok(_) => None,
            });
        let mut tmp = output.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut out = File::create(&tmp).map_err(|e| io("cannot create its output", e))?;
        let base = output.exists().then_some(output.as_path());
        F::merge(&table, base, &replaced, &mut new_rows, &mut out).map_err(fail)?;
        out.flush()
            .and_then(|()| out.sync_all())
            .map_err(|e| io("cannot sync its output", e))?;
        drop(out);
        std::fs::rename(&tmp, &output)
            .and_then(|()| sync_dir(&self.root))
            .map_err(|e| io("cannot replace its output", e))?;
        // The output holds the log now: empty it (state first, so a crash in between
        // leaves a log longer than its state, which the next open truncates).
        let state = files.state.clone();
        files
            .write_state(state.as_ref(), 0)
            .map_err(|e| io("cannot write its state", e))?;
        files.log_len = 0;
        files
            .log
            .set_len(0)
            .and_then(|()| files.log.sync_all())
            .map_err(|e| io("cannot empty its log", e))?;
        tracing::debug!(destination = %self.describe, stream = %name, output = %output.display(), "compacted");
        Ok(())
    }
}
