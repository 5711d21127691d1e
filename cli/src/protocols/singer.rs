//! `ionport singer <connector> --config FILE [--discover] [--catalog FILE] [--state FILE]`:
//! a connector as a Singer tap.
//!
//! - `--discover`: the catalog (one JSON document): per stream its schema, key
//!   properties, replication key and the standard metadata (`inclusion`,
//!   `selected-by-default`, `table-key-properties`, `valid-replication-keys`,
//!   `forced-replication-method`).
//! - sync: per selected stream a SCHEMA, its RECORDs, and after every checkpoint a STATE
//!   whose value is `{"bookmarks": {stream: state}}` for all streams so far. Without a
//!   catalog every predefined task is read; with one, the streams whose metadata (or the
//!   stream itself) says `selected: true`, without the properties deselected there. A
//!   catalog with two entries for one stream is refused.
//!   `replication-method` INCREMENTAL (the default where a stream supports it) starts
//!   from the stream's bookmark of `--state`.
//!
//! Stream ids are file names on every platform ([`names`]): `table:MITMAS` is
//! `table__MITMAS` in the catalog and the messages; a catalog may name a stream either
//! way, and a `--state` keyed by the connector's own names is read too.
//!
//! Logs go to stderr; a failed stream stops the tap with exit 1 after the last good STATE
//! (what a Singer runner resumes from).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use clap::Args;
use ionport_core::read::{ReadHandler, Records};
use ionport_plugin_abi::LogLevel;
use ionport_plugin_abi::wire::{DiscoveredStream, SyncMode, TaskSpec};
use serde_json::{Map, Value, json};

use super::names::{self, StreamIds};
use super::out::Out;
use super::{ConfigError, Session, load_json, schema};
use crate::Cli;

/// Run a connector as a Singer tap.
#[derive(Debug, Clone, Args)]
pub struct SingerArgs {
    /// The connector, e.g. `infor-m3` (see `ionport plugins list`).
    #[arg(value_name = "CONNECTOR")]
    connector: String,
    /// The connection form's values (JSON).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Print the catalog of the streams the tenant has, and exit.
    #[arg(long)]
    discover: bool,
    /// The catalog with the streams to read selected (`--properties` is the old name).
    #[arg(long, alias = "properties", value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// The last STATE message's value of a previous run (`{"bookmarks": {...}}`).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

pub fn run(cli: &Cli, args: &SingerArgs) -> Result<ExitCode> {
    let plugin = cli.plugin(&args.connector)?;
    let session = Session::open(plugin, &args.config)?;
    let result = if args.discover {
        discover(&session)
    } else {
        sync(&session, args)
    };
    session.shutdown();
    result
}

fn discover(session: &Session) -> Result<ExitCode> {
    let streams = session.discover()?;
    let available: Vec<&DiscoveredStream> = streams.iter().filter(|s| s.available).collect();
    let ids = StreamIds::new(available.iter().map(|s| s.spec.name.as_str()));
    let catalog = json!({
        "streams": available.iter().map(|s| catalog_entry(s, &ids.id(&s.spec.name))).collect::<Vec<_>>()
    });
    let out = Out::stdout();
    out.emit(&catalog).map_err(anyhow::Error::msg)?;
    out.flush().map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

fn replication_method(spec: &TaskSpec, incremental: bool) -> &'static str {
    if incremental && spec.sync_modes.contains(&SyncMode::Incremental) {
        "INCREMENTAL"
    } else {
        "FULL_TABLE"
    }
}

fn catalog_entry(d: &DiscoveredStream, id: &str) -> Value {
    let spec = &d.spec;
    let schema = schema::self_contained(&spec.record_schema);
    let mut stream_md = json!({
        "inclusion": "available",
        "selected-by-default": d.predefined,
        "table-key-properties": spec.primary_key,
        "valid-replication-keys": spec.cursor_field.iter().collect::<Vec<_>>(),
    });
    if !spec.sync_modes.contains(&SyncMode::Incremental) {
        stream_md["forced-replication-method"] = json!("FULL_TABLE");
    }
    let mut metadata = vec![json!({"breadcrumb": [], "metadata": stream_md})];
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for name in props.keys() {
            let automatic =
                spec.primary_key.contains(name) || spec.cursor_field.as_ref() == Some(name);
            metadata.push(json!({
                "breadcrumb": ["properties", name],
                "metadata": {"inclusion": if automatic { "automatic" } else { "available" }},
            }));
        }
    }
    let mut entry = json!({
        "tap_stream_id": id,
        "stream": id,
        "schema": schema,
        "key_properties": spec.primary_key,
        "replication_method": replication_method(spec, true),
        "metadata": metadata,
    });
    if let Some(c) = &spec.cursor_field {
        entry["replication_key"] = json!(c);
    }
    entry
}

/// A stream to read: its id in the messages, its spec (with the connector's name), how,
/// and the properties left out.
struct Selected {
    id: String,
    spec: TaskSpec,
    incremental: bool,
    excluded: HashSet<String>,
}

/// Stream ids read back into the connector's names; the connector's discovery is asked
/// (once) only for an id that may be a mapped name and is no predefined task's.
struct NameResolver<'a> {
    session: &'a Session,
    discovered: Option<StreamIds>,
}

impl NameResolver<'_> {
    fn name(&mut self, id: &str) -> Result<String> {
        let tasks = self.session.plugin.tasks();
        if let Some(t) = tasks.iter().find(|t| names::file_safe(&t.name) == id) {
            return Ok(t.name.clone());
        }
        // Not a file name: the connector's own form, as a user writes `table:MITMAS`;
        // without a `_`, no mapping changed it.
        if names::file_safe(id) != id || !names::may_be_mapped(id) {
            return Ok(id.to_owned());
        }
        if self.discovered.is_none() {
            let streams = self
                .session
                .discover()
                .map_err(|e| anyhow::anyhow!("discovering the streams of {id}: {e}"))?;
            // The streams `--discover` lists, so that the ids agree with its catalog's.
            let available = streams.iter().filter(|s| s.available);
            self.discovered = Some(StreamIds::new(available.map(|s| s.spec.name.as_str())));
        }
        let ids = self.discovered.as_ref().map(|d| d.name(id));
        Ok(ids.flatten().unwrap_or(id).to_owned())
    }

    fn id(&self, name: &str) -> String {
        match &self.discovered {
            Some(ids) => ids.id(name).into_owned(),
            None => names::file_safe(name).into_owned(),
        }
    }
}

/// The streams a catalog selects, in its order.
fn selected_streams(session: &Session, path: &Path) -> Result<Vec<Selected>> {
    let catalog = load_json(path, "catalog")?;
    let invalid = |problem: String| {
        anyhow::Error::from(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: vec![problem],
        })
    };
    let Some(entries) = catalog.get("streams").and_then(Value::as_array) else {
        return Err(invalid(
            "streams: required, a list of catalog entries".into(),
        ));
    };
    let mut selected = Vec::new();
    let mut first_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut resolver = NameResolver {
        session,
        discovered: None,
    };
    for (i, entry) in entries.iter().enumerate() {
        let Some(id) = entry
            .get("tap_stream_id")
            .or_else(|| entry.get("stream"))
            .and_then(Value::as_str)
        else {
            return Err(invalid(format!("streams[{i}].tap_stream_id: required")));
        };
        let stream_name = resolver.name(id)?;
        // Two entries for one stream (also as `table:X` and `table__X`): which metadata
        // holds is a guess, and selecting both would read it twice.
        if let Some(first) = first_at.insert(stream_name.clone(), i) {
            return Err(invalid(format!(
                "streams[{i}].tap_stream_id: stream {id} has two catalog entries (first as streams[{first}]); keep one"
            )));
        }
        let metadata = entry
            .get("metadata")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let at = |crumb: &[&str]| {
            metadata.iter().find_map(|m| {
                let b: Vec<&str> = m
                    .get("breadcrumb")?
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                (b == crumb).then(|| m.get("metadata").cloned().unwrap_or(Value::Null))
            })
        };
        let top = at(&[]).unwrap_or(Value::Null);
        let is_selected = top
            .get("selected")
            .or_else(|| entry.get("selected"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !is_selected {
            continue;
        }
        // A discovered stream that is no predefined task: its spec travels in the catalog.
        let spec = session
            .plugin
            .task(&stream_name)
            .cloned()
            .unwrap_or_else(|| TaskSpec {
                name: stream_name.clone(),
                description: String::new(),
                record_schema: entry.get("schema").cloned().unwrap_or(Value::Null),
                primary_key: entry
                    .get("key_properties")
                    .and_then(Value::as_array)
                    .map(|k| {
                        k.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                cursor_field: entry
                    .get("replication_key")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                sync_modes: if entry.get("replication_key").is_some() {
                    vec![SyncMode::FullRefresh, SyncMode::Incremental]
                } else {
                    vec![SyncMode::FullRefresh]
                },
                requests_per_1000_records: None,
            });
        let method = top
            .get("replication-method")
            .or_else(|| entry.get("replication_method"))
            .and_then(Value::as_str);
        let incremental = match method {
            None | Some("INCREMENTAL") => spec.sync_modes.contains(&SyncMode::Incremental),
            Some("FULL_TABLE") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "streams[{i}] ({id}): replication-method: expected INCREMENTAL or FULL_TABLE, found {other}"
                )));
            }
        };
        if method == Some("INCREMENTAL") && !incremental {
            return Err(invalid(format!(
                "streams[{i}] ({id}): replication-method INCREMENTAL, but the stream has no replication key"
            )));
        }
        let mut excluded = HashSet::new();
        if let Some(props) = entry
            .pointer("/schema/properties")
            .and_then(Value::as_object)
        {
            for name in props.keys() {
                let md = at(&["properties", name]).unwrap_or(Value::Null);
                let automatic = md.get("inclusion").and_then(Value::as_str) == Some("automatic")
                    || spec.primary_key.contains(name)
                    || spec.cursor_field.as_ref() == Some(name);
                if !automatic && md.get("selected").and_then(Value::as_bool) == Some(false) {
                    excluded.insert(name.clone());
                }
            }
        }
        selected.push(Selected {
            id: resolver.id(&stream_name),
            spec,
            incremental,
            excluded,
        });
    }
    if selected.is_empty() {
        return Err(invalid(
            "no stream is selected: set \"selected\": true in the metadata of the streams to read (breadcrumb [])".into(),
        ));
    }
    Ok(selected)
}

/// The bookmarks of a `--state` file: `{"bookmarks": {...}}`, or a whole STATE message.
fn load_bookmarks(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let v = load_json(path, "state")?;
    let v = match v {
        Value::Object(mut m) if m.get("type").and_then(Value::as_str) == Some("STATE") => {
            m.remove("value").unwrap_or(Value::Null)
        }
        other => other,
    };
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(mut m) => match m.remove("bookmarks") {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(b)) => Ok(b),
            Some(_) => Err(ConfigError::Invalid {
                file: path.to_path_buf(),
                problems: vec!["bookmarks: expected an object of stream name to state".into()],
            }),
        },
        _ => Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: vec!["expected {\"bookmarks\": {...}}".into()],
        }),
    }
}

/// Turns one stream's read into Singer messages; the bookmarks are shared by all streams.
struct StreamWriter {
    out: Arc<Out>,
    name: String,
    excluded: HashSet<String>,
    bookmarks: Arc<Mutex<Map<String, Value>>>,
    records: AtomicU64,
}

impl ReadHandler for StreamWriter {
    fn records(&self, _stream: &str, records: Records) -> Result<(), String> {
        let extracted = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let n = records.len() as u64;
        if self.excluded.is_empty() {
            // Each record's own text inside the message, keys in the order serde_json
            // writes a message's (sorted).
            let after = format!(
                r#","stream":{},"time_extracted":"{extracted}","type":"RECORD"}}"#,
                Value::String(self.name.clone())
            );
            self.out.emit_records(&records, r#"{"record":"#, &after)?;
        } else {
            for record in records.iter() {
                let mut record = record.to_map().map_err(|e| e.to_string())?;
                record.retain(|k, _| !self.excluded.contains(k));
                self.out.emit(&json!({
                    "type": "RECORD", "stream": self.name, "record": record, "time_extracted": extracted
                }))?;
            }
        }
        self.records.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn checkpoint(&self, _stream: &str, state: Value) -> Result<(), String> {
        let value = {
            let mut b = self
                .bookmarks
                .lock()
                .map_err(|_| "the bookmarks' lock is poisoned".to_string())?;
            b.insert(self.name.clone(), state);
            json!({"bookmarks": Value::Object(b.clone())})
        };
        self.out.emit(&json!({"type": "STATE", "value": value}))?;
        self.out.flush()
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARNING",
            LogLevel::Info => "INFO",
            LogLevel::Debug | LogLevel::Trace => return,
        };
        eprintln!("{level} {message}");
    }
}

fn sync(session: &Session, args: &SingerArgs) -> Result<ExitCode> {
    let streams = match &args.catalog {
        Some(path) => selected_streams(session, path)?,
        None => session
            .plugin
            .tasks()
            .iter()
            .map(|spec| Selected {
                id: names::file_safe(&spec.name).into_owned(),
                spec: spec.clone(),
                incremental: spec.sync_modes.contains(&SyncMode::Incremental),
                excluded: HashSet::new(),
            })
            .collect(),
    };
    let bookmarks = match &args.state {
        Some(p) => load_bookmarks(p)?,
        None => Map::new(),
    };
    let bookmarks = Arc::new(Mutex::new(bookmarks));
    let out = Arc::new(Out::stdout());
    let mut totals = BTreeMap::new();
    for s in &streams {
        let name = s.id.clone();
        let mut schema = schema::self_contained(&s.spec.record_schema);
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.retain(|k, _| !s.excluded.contains(k));
        }
        let mut message = json!({
            "type": "SCHEMA", "stream": name, "schema": schema, "key_properties": s.spec.primary_key,
        });
        if s.incremental
            && let Some(c) = &s.spec.cursor_field
        {
            message["bookmark_properties"] = json!([c]);
        }
        out.emit(&message).map_err(anyhow::Error::msg)?;
        let (mode, state) = if s.incremental {
            let state = bookmarks
                .lock()
                .ok()
                .and_then(|b| b.get(&name).or_else(|| b.get(&s.spec.name)).cloned())
                .filter(|v| !v.is_null());
            (SyncMode::Incremental, state)
        } else {
            (SyncMode::FullRefresh, None)
        };
        eprintln!(
            "INFO reading {name} ({}{})",
            if s.incremental {
                "incremental"
            } else {
                "full table"
            },
            if state.is_some() {
                ", from its bookmark"
            } else {
                ""
            }
        );
        let writer = Arc::new(StreamWriter {
            out: out.clone(),
            name: name.clone(),
            excluded: s.excluded.clone(),
            bookmarks: bookmarks.clone(),
            records: AtomicU64::new(0),
        });
        let started = std::time::Instant::now();
        // The properties deselected in the catalog are not asked of the source either.
        let columns: Option<Vec<String>> = (!s.excluded.is_empty()).then(|| {
            s.spec
                .record_schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.keys()
                        .filter(|k| !s.excluded.contains(*k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        let result = session.read(&s.spec.name, mode, state, columns.as_deref(), writer);
        out.flush().map_err(anyhow::Error::msg)?;
        let outcome = match result {
            Ok(o) => o,
            Err(e) => bail!("stream {name} failed ({}): {}", e.kind, e.message),
        };
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "INFO {name}: {} records in {} pages, {secs:.2} s ({:.0} records/s)",
            outcome.records,
            outcome.summary.pages,
            outcome.records as f64 / secs.max(1e-9)
        );
        totals.insert(name, outcome.records);
    }
    let total: u64 = totals.values().sum();
    eprintln!("INFO done: {total} records in {} streams", totals.len());
    out.flush()
        .map_err(anyhow::Error::msg)
        .context("flushing stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// What a program named `ionport-singer-<connector>` is: Singer runners (Meltano) start
/// one executable per tap, with the tap's arguments only.
const MULTI_CALL_PREFIX: &str = "ionport-singer-";

/// `args` with a first argument `…/ionport-singer-<connector>[.exe]` read as
/// `ionport singer <connector>`; any other command line unchanged.
pub fn multi_call(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let connector = args
        .first()
        .and_then(|a| Path::new(a).file_stem())
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix(MULTI_CALL_PREFIX))
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if let Some(connector) = connector {
        args.splice(1..1, ["singer".into(), connector.into()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::multi_call;

    #[test]
    fn a_multi_call_name_is_the_singer_command_of_its_connector() {
        let args = |a: &[&str]| a.iter().map(Into::into).collect::<Vec<_>>();
        assert_eq!(
            multi_call(args(&["/usr/bin/ionport-singer-infor-m3", "--discover"])),
            args(&[
                "/usr/bin/ionport-singer-infor-m3",
                "singer",
                "infor-m3",
                "--discover"
            ])
        );
        assert_eq!(
            multi_call(args(&["ionport-singer-infor-ln.exe"])),
            args(&["ionport-singer-infor-ln.exe", "singer", "infor-ln"])
        );
        for same in [&["ionport", "singer"][..], &["ionport-singer-"], &[]] {
            assert_eq!(multi_call(args(same)), args(same));
        }
    }
}
