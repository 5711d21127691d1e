//! `deletes = "soft"`: rows deleted at the source end as marked rows in the destination
//! (their [`DELETED_AT_COLUMN`] set to the time the deletion was seen), never removed and
//! never kept as live.
//!
//! Two ways to see a deletion, chosen by what the task declares:
//! - a source whose reads can show deleted records (Data Lake: the highest variation of
//!   each record *including* deleted ones) declares the field that flags them
//!   ([`TaskSpec::deleted_field`]); the host asks for them ([`ReadRequest::include_deleted`])
//!   and [`MarkFlagged`] — the one place a flagged record becomes a marked row — sets the
//!   column on each as it arrives;
//! - a source that cannot show them (M3 MI lists and EXPORTMI, LN OData) gets a keys-only
//!   pass after each successful sync ([`reconcile`]): the same stream read in full with
//!   only its key (and cursor) columns, through the one read path, every key text kept in
//!   memory; then the destination marks every unmarked row whose key was not read
//!   ([`Destination::mark_deleted`]). A failed or cancelled pass marks nothing: a partial
//!   key set would mark live rows.
//!
//! Memory of the pass: the key set is held in memory, one `String` per live row in a
//! `HashSet` — 86 bytes per key for an M3 customer key (`[100,"C000000001"]`: the text,
//! the allocator's rounding and the table's slots; measured as resident memory over a
//! million keys by `key_set_memory_per_key` below), so a million rows hold about 90 MB
//! while the pass runs. Longer keys cost their extra length.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ionport_plugin_abi::wire::{ReadRequest, SyncMode, TaskSpec};
use serde_json::{Map, Value};

use crate::connection::{Cancel, Connection};
use crate::destination::{DELETED_AT_COLUMN, Destination, StreamKeys, StreamSpec};
use crate::plugin::LoadedPlugin;
use crate::read::{self, ReadHandler, Records, read_task};

/// `spec`'s record schema with the nullable [`DELETED_AT_COLUMN`] added (what every
/// destination creates its column from).
pub(super) fn with_deleted_at(mut spec: StreamSpec) -> StreamSpec {
    if let Some(props) = spec
        .record_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        props.insert(
            DELETED_AT_COLUMN.into(),
            serde_json::json!({
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When ionport saw the record deleted at the source (UTC); null while it exists"
            }),
        );
    }
    spec
}

/// Now, as the text the column holds (RFC 3339 UTC, milliseconds).
pub(super) fn now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// The columns a read of a `soft` task asks for: the user's choice with the deletion flag
/// added (without it, no record could be told deleted).
pub(super) fn columns_with_flag(
    columns: Option<&[String]>,
    flag: Option<&str>,
) -> Option<Vec<String>> {
    let mut columns = columns?.to_vec();
    if let Some(f) = flag
        && !columns.iter().any(|c| c == f)
    {
        columns.push(f.to_string());
    }
    Some(columns)
}

/// A [`ReadHandler`] in front of the commit stage of a task whose source flags deleted
/// records: each record whose `flag` is `true` is handed on with [`DELETED_AT_COLUMN`]
/// set; a batch without one passes as it is (no copy).
pub(super) struct MarkFlagged {
    pub(super) inner: Arc<dyn ReadHandler>,
    pub(super) flag: String,
    pub(super) marked: Arc<std::sync::atomic::AtomicU64>,
}

impl ReadHandler for MarkFlagged {
    fn records(&self, stream: &str, records: Records) -> Result<(), String> {
        let flagged =
            |r: &read::Record<'_>| r.get(&self.flag).and_then(|v| v.as_bool()) == Some(true);
        if !records.iter().any(|r| flagged(&r)) {
            return self.inner.records(stream, records);
        }
        let at = now();
        let mut text = Vec::with_capacity(records.iter().map(|r| r.line().len() + 40).sum());
        let mut n = 0;
        for r in records.iter() {
            if flagged(&r) {
                text.extend_from_slice(mark_line(r.line(), &at)?.as_bytes());
                n += 1;
            } else {
                text.extend_from_slice(r.line().as_bytes());
            }
            text.push(b'\n');
        }
        let marked = Records::parse(stream, text).map_err(|e| e.to_string())?;
        self.marked
            .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        self.inner.records(stream, marked)
    }
    fn checkpoint(&self, stream: &str, state: Value) -> Result<(), String> {
        self.inner.checkpoint(stream, state)
    }
    fn log(&self, level: ionport_plugin_abi::LogLevel, message: &str) {
        self.inner.log(level, message);
    }
    fn request(&self, head: &ionport_plugin_abi::wire::GatewayRequestHead) {
        self.inner.request(head);
    }
    fn retries(&self, retries: u32) {
        self.inner.retries(retries);
    }
    fn pages(&self, pages: u64) {
        self.inner.pages(pages);
    }
}

/// A record's JSON text with [`DELETED_AT_COLUMN`] set to `at`.
fn mark_line(line: &str, at: &str) -> Result<String, String> {
    let mut map: Map<String, Value> = serde_json::from_str(line)
        .map_err(|e| format!("a flagged record is not a JSON object: {e}"))?;
    map.insert(DELETED_AT_COLUMN.into(), Value::String(at.into()));
    serde_json::to_string(&map).map_err(|e| e.to_string())
}

/// Collects the key text of every record of a keys-only read.
struct KeyCollector {
    stream: String,
    keys: StreamKeys,
    live: Mutex<HashSet<String>>,
}

impl ReadHandler for KeyCollector {
    fn records(&self, stream: &str, records: Records) -> Result<(), String> {
        if stream != self.stream {
            return Err(format!(
                "records of stream '{stream}' emitted while reading the keys of '{}'",
                self.stream
            ));
        }
        let mut live = self
            .live
            .lock()
            .map_err(|_| "the key set's lock is poisoned")?;
        for r in records.iter() {
            live.insert(self.keys.key(&r)?);
        }
        Ok(())
    }
    fn checkpoint(&self, _stream: &str, _state: Value) -> Result<(), String> {
        // No state is saved: the pass reads everything every time.
        Ok(())
    }
}

/// The keys-only pass of `task` after its successful sync into `dest` (`spec`: the stream
/// as the destination knows it, with its [`DELETED_AT_COLUMN`]): reads every key at the
/// source, then marks the destination's rows whose key was not read. Returns how many rows
/// it marked. Any failure of the read marks nothing.
pub(super) async fn reconcile(
    plugin: &Arc<LoadedPlugin>,
    connection: &Connection,
    base: &ReadRequest,
    task: &TaskSpec,
    spec: &StreamSpec,
    dest: Arc<dyn Destination>,
    cancel: Cancel,
) -> Result<u64, String> {
    let fail = |why: String| {
        format!("deletes: the keys-only read failed, so no row was marked deleted: {why}")
    };
    let key: Vec<String> = task.primary_key.clone();
    let request = ReadRequest {
        sync_mode: SyncMode::FullRefresh,
        state: None,
        columns: None,
        include_deleted: false,
        ..base.clone()
    };
    let (request, narrowed) =
        read::with_columns(request, task, Some(&key)).map_err(|e| fail(e.to_string()))?;
    let keys = StreamKeys::new(&StreamSpec {
        name: narrowed.name.clone(),
        record_schema: narrowed.record_schema.clone(),
        primary_key: narrowed.primary_key.clone(),
        cursor_field: narrowed.cursor_field.clone(),
    })
    .map_err(|e| fail(e.to_string()))?;
    let collector = Arc::new(KeyCollector {
        stream: task.name.clone(),
        keys,
        live: Mutex::new(HashSet::new()),
    });
    read_task(
        plugin,
        connection,
        request,
        collector.clone(),
        cancel.clone(),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    if cancel.is_cancelled() {
        return Err(fail("the run was cancelled".into()));
    }
    let live = std::mem::take(
        &mut *collector
            .live
            .lock()
            .map_err(|_| fail("the key set's lock is poisoned".into()))?,
    );
    tracing::debug!(stream = %spec.name, live = live.len(), "deletes: keys read");
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        dest.mark_deleted(&spec, &live, &now())
            .map_err(|e| format!("deletes: {e}"))
    })
    .await
    .map_err(|e| format!("deletes: the destination's thread failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flagged_line_gets_the_column_and_keeps_its_values() {
        let line = mark_line(
            r#"{"k":"A","v":1,"deleted":true}"#,
            "2026-01-01T00:00:00.000Z",
        )
        .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["k"], "A");
        assert_eq!(v["v"], 1);
        assert_eq!(v[DELETED_AT_COLUMN], "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_flag_is_added_to_a_column_selection() {
        let cols = vec!["A".to_string()];
        assert_eq!(
            columns_with_flag(Some(&cols), Some("deleted")),
            Some(vec!["A".to_string(), "deleted".to_string()])
        );
        assert_eq!(columns_with_flag(None, Some("deleted")), None);
    }

    /// The figure in the module docs: the resident memory a key set of one million M3
    /// customer keys adds, per key (text, allocator rounding and the table's slots).
    /// Measured on Linux from `/proc/self/statm`; other tests of this binary run beside it,
    /// so the bound is loose.
    #[cfg(target_os = "linux")]
    #[test]
    fn key_set_memory_per_key() {
        fn resident() -> u64 {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages: u64 = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pages * 4096
        }
        let n = 1_000_000u64;
        let before = resident();
        let mut set = HashSet::new();
        for i in 0..n {
            set.insert(format!("[100,\"C{:09}\"]", i + 1));
        }
        let per_key = resident().saturating_sub(before) / n;
        eprintln!("key set: {per_key} bytes per key ({} keys)", set.len());
        assert!((30..=200).contains(&per_key), "{per_key} bytes per key");
    }
}
