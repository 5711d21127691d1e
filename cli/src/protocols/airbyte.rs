//! `ionport airbyte <connector> spec|check|discover|read`: a connector as an Airbyte
//! source, speaking the Airbyte protocol (one `AirbyteMessage` per stdout line).
//!
//! - `spec`: SPEC, the connection form as `connectionSpecification` (secrets marked
//!   `airbyte_secret`).
//! - `check`: CONNECTION_STATUS from the connector's own check (exit 0 either way, as
//!   Airbyte expects; the message says what failed).
//! - `discover`: CATALOG of the streams the tenant has: sync modes, primary keys, cursors
//!   (a failure is a `config_error` when credentials or settings are at fault).
//! - `read`: per configured stream a STREAM_STATUS trace (STARTED, RUNNING, COMPLETE or
//!   INCOMPLETE), RECORDs, per-stream STATE after the records it covers (with the record
//!   count since the previous one), LOG lines of the connector; a failed stream gets an
//!   ERROR trace (`config_error` when credentials, settings or the stream's name are at
//!   fault) and the command exits 1 after the other streams ran; the closing ERROR trace
//!   is a `config_error` when every failed stream's was. A catalog that configures a
//!   stream twice is refused before anything is read. A full-refresh-only stream asked
//!   for `incremental` is read in full with a WARN log, as Airbyte's own sources do.
//!
//! The platform runs a source as `SOURCE spec|check|discover|read ...`, with no room for
//! a connector argument: [`standard_argv`] turns that command line into this one when
//! the executable is named `ionport-airbyte-<connector>` or [`CONNECTOR_ENV`] names it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Result;
use clap::{Args, Subcommand};
use ionport_core::plugin::LoadedPlugin;
use ionport_core::read::{ReadHandler, Records};
use ionport_plugin_abi::LogLevel;
use ionport_plugin_abi::wire::{SyncMode, TaskSpec};
use serde::Deserialize;
use serde_json::{Value, json};

use super::out::Out;
use super::{ConfigError, Session, load_json, now_millis, schema};
use crate::Cli;

/// Run a connector as an Airbyte source.
#[derive(Debug, Clone, Args)]
pub struct AirbyteArgs {
    /// The connector, e.g. `infor-m3` (see `ionport plugins list`).
    #[arg(value_name = "CONNECTOR")]
    connector: String,
    #[command(subcommand)]
    command: AirbyteCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum AirbyteCommand {
    /// Print the connector's specification (its connection form).
    Spec,
    /// Test the connection of a config.
    Check {
        /// The connection form's values (JSON).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// List the streams the tenant has.
    Discover {
        /// The connection form's values (JSON).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Read the streams of a configured catalog.
    Read {
        /// The connection form's values (JSON).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The configured catalog: streams, sync modes (JSON).
        #[arg(long, value_name = "FILE")]
        catalog: PathBuf,
        /// The state of a previous read: a list of per-stream STATE messages (JSON).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
}

/// The environment variable that makes `ionport spec|check|discover|read ...` mean
/// `ionport airbyte <connector> ...` (what an image's entry point sets).
pub const CONNECTOR_ENV: &str = "IONPORT_AIRBYTE_CONNECTOR";

/// Where a platform's user reads how an ionport source is set up.
const DOCUMENTATION_URL: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/blob/main/docs/protocols.md#airbyte"
);

/// The prefix of a multi-call name: `ionport-airbyte-infor-m3` is the `infor-m3` source.
const MULTI_CALL_PREFIX: &str = "ionport-airbyte-";

/// The commands of Airbyte's standard command line.
const STANDARD_COMMANDS: [&str; 4] = ["spec", "check", "discover", "read"];

/// `args` (the process's, program name first) as `ionport`'s own command line: Airbyte's
/// standard one (`spec`, `check --config F`, ...) becomes `ionport airbyte <connector>
/// ...` when the program is named `ionport-airbyte-<connector>[.exe]`, or when
/// `env_connector` (the value of [`CONNECTOR_ENV`]) names one and the first argument is
/// one of Airbyte's commands; anything else is returned as it came, so `ionport plugins
/// list` still works in an image that sets the variable.
pub fn standard_argv(args: Vec<OsString>, env_connector: Option<OsString>) -> Vec<OsString> {
    let program = args.first().map(Path::new).and_then(Path::file_name);
    let from_name = program
        .and_then(OsStr::to_str)
        .map(|n| n.strip_suffix(".exe").unwrap_or(n))
        .and_then(|n| n.strip_prefix(MULTI_CALL_PREFIX))
        .filter(|id| !id.is_empty())
        .map(OsString::from);
    let standard_command = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| STANDARD_COMMANDS.contains(&a));
    let from_env = env_connector.filter(|id| !id.is_empty() && standard_command);
    match from_name.or(from_env) {
        Some(connector) => [OsString::from("ionport"), "airbyte".into(), connector]
            .into_iter()
            .chain(args.into_iter().skip(1))
            .collect(),
        None => args,
    }
}

/// What wraps a connector state that is not a JSON object (Airbyte's stream state must
/// be one).
const WRAPPED_STATE: &str = "ionport_state";

pub fn run(cli: &Cli, args: &AirbyteArgs) -> Result<ExitCode> {
    let out = Arc::new(Out::stdout());
    let code = match (cli.plugin(&args.connector), &args.command) {
        (Err(e), _) => fail(&out, &e.to_string(), "config_error"),
        (Ok(plugin), AirbyteCommand::Spec) => spec(&out, &plugin),
        (Ok(plugin), AirbyteCommand::Check { config }) => check(&out, plugin, config),
        (Ok(plugin), AirbyteCommand::Discover { config }) => discover(&out, plugin, config),
        (
            Ok(plugin),
            AirbyteCommand::Read {
                config,
                catalog,
                state,
            },
        ) => read(&out, plugin, config, catalog, state.as_deref()),
    };
    out.flush().map_err(anyhow::Error::msg)?;
    Ok(code)
}

/// An ERROR trace; exit 1.
fn fail(out: &Out, message: &str, failure_type: &str) -> ExitCode {
    let _ = out.emit(&error_trace(message, failure_type, None));
    ExitCode::FAILURE
}

/// The one message of `spec`, `check` or `discover`; exit 1 when stdout is gone.
fn answer(out: &Out, message: &Value) -> ExitCode {
    match out.emit(message) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn error_trace(message: &str, failure_type: &str, stream: Option<&str>) -> Value {
    let mut error = json!({"message": message, "failure_type": failure_type});
    if let Some(s) = stream {
        error["stream_descriptor"] = json!({"name": s});
    }
    json!({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": now_millis() as f64, "error": error}})
}

fn stream_status(stream: &str, status: &str) -> Value {
    json!({"type": "TRACE", "trace": {
        "type": "STREAM_STATUS",
        "emitted_at": now_millis() as f64,
        "stream_status": {"stream_descriptor": {"name": stream}, "status": status}
    }})
}

fn log(level: &str, message: &str) -> Value {
    json!({"type": "LOG", "log": {"level": level, "message": message}})
}

fn spec(out: &Out, plugin: &LoadedPlugin) -> ExitCode {
    let incremental = plugin
        .tasks()
        .iter()
        .any(|t| t.sync_modes.contains(&SyncMode::Incremental));
    // No destination fields (`supported_destination_sync_modes`): a source's spec with
    // them fails Airbyte's acceptance rules.
    let message = json!({"type": "SPEC", "spec": {
        "documentationUrl": DOCUMENTATION_URL,
        "connectionSpecification": schema::airbyte_spec(plugin.connection_form()),
        "supportsIncremental": incremental,
    }});
    answer(out, &message)
}

fn check(out: &Out, plugin: Arc<LoadedPlugin>, config: &Path) -> ExitCode {
    let status = |ok: bool, message: String| {
        json!({"type": "CONNECTION_STATUS", "connectionStatus": {
            "status": if ok { "SUCCEEDED" } else { "FAILED" },
            "message": message,
        }})
    };
    let message = match Session::open(plugin, config) {
        Err(e) => status(false, e.to_string()),
        Ok(session) => {
            let m = match session.check() {
                Ok(r) => status(r.success, r.message),
                Err(e) => status(false, e.to_string()),
            };
            session.shutdown();
            m
        }
    };
    answer(out, &message)
}

/// A stream as Airbyte's catalog shows it.
fn airbyte_stream(spec: &TaskSpec) -> Value {
    let mut stream = json!({
        "name": spec.name,
        "json_schema": schema::airbyte_record_schema(&spec.record_schema),
        "supported_sync_modes": spec.sync_modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "source_defined_primary_key": spec.primary_key.iter().map(|k| vec![k]).collect::<Vec<_>>(),
        "is_resumable": true,
    });
    if let Some(c) = &spec.cursor_field {
        stream["source_defined_cursor"] = json!(true);
        stream["default_cursor_field"] = json!([c]);
    }
    stream
}

fn discover(out: &Out, plugin: Arc<LoadedPlugin>, config: &Path) -> ExitCode {
    let session = match Session::open(plugin, config) {
        Ok(s) => s,
        Err(e) => return fail(out, &e.to_string(), "config_error"),
    };
    let result = session.discover();
    session.shutdown();
    match result {
        Err(e) => fail(
            out,
            &format!("discovery failed: {e}"),
            if e.is_config_error() {
                "config_error"
            } else {
                "system_error"
            },
        ),
        Ok(streams) => {
            let streams: Vec<Value> = streams
                .iter()
                .filter(|s| s.available)
                .map(|s| airbyte_stream(&s.spec))
                .collect();
            answer(
                out,
                &json!({"type": "CATALOG", "catalog": {"streams": streams}}),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfiguredCatalog {
    streams: Vec<ConfiguredStream>,
}

#[derive(Debug, Deserialize)]
struct ConfiguredStream {
    stream: StreamName,
    sync_mode: SyncMode,
}

#[derive(Debug, Deserialize)]
struct StreamName {
    name: String,
    /// What `discover` said; the sync modes of a stream that is no predefined task.
    #[serde(default)]
    supported_sync_modes: Option<Vec<String>>,
    /// The record schema as configured: a platform that lets its user leave fields out
    /// sends the schema without them.
    #[serde(default)]
    json_schema: Option<Value>,
}

impl StreamName {
    /// The fields the configured schema keeps, when it names any.
    fn selected_fields(&self) -> Option<Vec<String>> {
        let props = self.json_schema.as_ref()?.get("properties")?.as_object()?;
        Some(props.keys().cloned().collect())
    }
}

/// The sync mode a configured stream is read with: the one asked for, or full refresh
/// with a warning for an incremental read of a stream that has no cursor (what
/// Airbyte's own sources do); an error when the stream cannot be read as asked.
fn effective_sync_mode(
    plugin: &LoadedPlugin,
    configured: &ConfiguredStream,
) -> Result<(SyncMode, Option<String>), String> {
    let name = &configured.stream.name;
    let asked = configured.sync_mode;
    let supported: Option<Vec<String>> = match plugin.task(name) {
        Some(spec) => Some(spec.sync_modes.iter().map(|m| m.as_str().into()).collect()),
        None => configured.stream.supported_sync_modes.clone(),
    };
    let Some(supported) = supported else {
        return Ok((asked, None));
    };
    let supports = |m: SyncMode| supported.iter().any(|s| s == m.as_str());
    if supports(asked) {
        Ok((asked, None))
    } else if asked == SyncMode::Incremental && supports(SyncMode::FullRefresh) {
        Ok((
            SyncMode::FullRefresh,
            Some(format!(
                "stream {name} has no cursor and cannot be read incremental: reading it in full (full_refresh); its state is not used"
            )),
        ))
    } else {
        Err(format!(
            "stream {name} cannot be read {}: it supports {}",
            asked.as_str(),
            supported.join(", ")
        ))
    }
}

fn load_catalog(path: &Path) -> Result<ConfiguredCatalog, ConfigError> {
    let v = load_json(path, "catalog")?;
    let catalog: ConfiguredCatalog = serde_json::from_value(v).map_err(|e| ConfigError::Invalid {
        file: path.to_path_buf(),
        problems: vec![format!(
            "expected a configured catalog ({{\"streams\": [{{\"stream\": {{\"name\": ...}}, \"sync_mode\": \"full_refresh\"|\"incremental\", ...}}]}}): {e}"
        )],
    })?;
    // A stream named twice would be read twice: every record emitted twice.
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (i, s) in catalog.streams.iter().enumerate() {
        if let Some(&first) = first_at.get(s.stream.name.as_str()) {
            problems.push(format!(
                "streams[{i}].stream.name: stream {} is configured twice (first as streams[{first}]); configure each stream once",
                s.stream.name
            ));
        } else {
            first_at.insert(&s.stream.name, i);
        }
    }
    if problems.is_empty() {
        Ok(catalog)
    } else {
        Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems,
        })
    }
}

/// The per-stream states of a `--state` file: a list of STATE messages (`type` STREAM),
/// or the legacy object of stream name to state.
fn load_state(path: &Path) -> Result<HashMap<String, Value>, ConfigError> {
    let v = load_json(path, "state")?;
    let invalid = |problem: String| ConfigError::Invalid {
        file: path.to_path_buf(),
        problems: vec![problem],
    };
    let mut states = HashMap::new();
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("STREAM");
                if kind != "STREAM" {
                    return Err(invalid(format!(
                        "[{i}].type: expected STREAM (per-stream state), found {kind}"
                    )));
                }
                let name = item
                    .pointer("/stream/stream_descriptor/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(format!("[{i}].stream.stream_descriptor.name: required"))
                    })?
                    .to_string();
                let state = item
                    .pointer("/stream/stream_state")
                    .cloned()
                    .unwrap_or(Value::Null);
                states.insert(name, unwrap_state(state));
            }
        }
        Value::Object(map) => {
            for (name, state) in map {
                states.insert(name, unwrap_state(state));
            }
        }
        other => {
            return Err(invalid(format!(
                "expected a list of STATE messages, found {}",
                json_type(&other)
            )));
        }
    }
    states.retain(|_, v| !v.is_null());
    Ok(states)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrap_state(state: Value) -> Value {
    match state {
        Value::Object(_) => state,
        other => json!({ WRAPPED_STATE: other }),
    }
}

fn unwrap_state(state: Value) -> Value {
    match state {
        Value::Object(mut m) if m.len() == 1 && m.contains_key(WRAPPED_STATE) => {
            m.remove(WRAPPED_STATE).unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Turns what one stream's read produces into Airbyte messages.
struct StreamWriter {
    out: Arc<Out>,
    name: String,
    running: AtomicBool,
    since_state: AtomicU64,
}

impl ReadHandler for StreamWriter {
    fn records(&self, _stream: &str, records: Records) -> Result<(), String> {
        if !self.running.swap(true, Ordering::Relaxed) {
            self.out.emit(&stream_status(&self.name, "RUNNING"))?;
        }
        // The message around each record's own text, keys in the order serde_json writes
        // a message's (sorted), so that only `data` keeps the connector's field order.
        let before = r#"{"record":{"data":"#;
        let after = format!(
            r#","emitted_at":{},"stream":{}}},"type":"RECORD"}}"#,
            now_millis(),
            Value::String(self.name.clone())
        );
        self.out.emit_records(&records, before, &after)?;
        self.since_state
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn checkpoint(&self, _stream: &str, state: Value) -> Result<(), String> {
        let count = self.since_state.swap(0, Ordering::Relaxed);
        self.out.emit(&json!({"type": "STATE", "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": self.name}, "stream_state": wrap_state(state)},
            "sourceStats": {"recordCount": count as f64},
        }}))?;
        self.out.flush()
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        };
        let _ = self.out.emit(&log(level, message));
    }
}

fn read(
    out: &Arc<Out>,
    plugin: Arc<LoadedPlugin>,
    config: &Path,
    catalog: &Path,
    state: Option<&Path>,
) -> ExitCode {
    let inputs = load_catalog(catalog).and_then(|c| {
        let states = state.map(load_state).transpose()?.unwrap_or_default();
        Ok((c, states))
    });
    let (catalog, mut states) = match inputs {
        Ok(v) => v,
        Err(e) => return fail(out, &e.to_string(), "config_error"),
    };
    let session = match Session::open(plugin.clone(), config) {
        Ok(s) => s,
        Err(e) => return fail(out, &e.to_string(), "config_error"),
    };
    let mut failed = Vec::new();
    // Whether every failed stream failed for the user's configuration.
    let mut config_only = true;
    for configured in &catalog.streams {
        let name = configured.stream.name.as_str();
        let _ = out.emit(&stream_status(name, "STARTED"));
        let sync_mode = match effective_sync_mode(&plugin, configured) {
            Ok((mode, warning)) => {
                if let Some(w) = warning {
                    let _ = out.emit(&log("WARN", &w));
                }
                mode
            }
            Err(message) => {
                let _ = out.emit(&error_trace(&message, "config_error", Some(name)));
                let _ = out.emit(&stream_status(name, "INCOMPLETE"));
                failed.push(name.to_string());
                continue;
            }
        };
        // Full refresh reads everything: a state left by an incremental read of the same
        // stream must not narrow it.
        let state = match sync_mode {
            SyncMode::Incremental => states.remove(name),
            SyncMode::FullRefresh => None,
        };
        let _ = out.emit(&log(
            "INFO",
            &format!(
                "reading {name} ({}{})",
                sync_mode.as_str(),
                if state.is_some() {
                    ", from the saved state"
                } else {
                    ""
                }
            ),
        ));
        let writer = Arc::new(StreamWriter {
            out: out.clone(),
            name: name.to_string(),
            running: AtomicBool::new(false),
            since_state: AtomicU64::new(0),
        });
        let started = std::time::Instant::now();
        let fields = configured.stream.selected_fields();
        match session.read(name, sync_mode, state, fields.as_deref(), writer) {
            Ok(outcome) => {
                let secs = started.elapsed().as_secs_f64();
                let _ = out.emit(&log(
                    "INFO",
                    &format!(
                        "{name}: {} records in {} pages, {:.2} s ({:.0} records/s)",
                        outcome.records,
                        outcome.summary.pages,
                        secs,
                        outcome.records as f64 / secs.max(1e-9)
                    ),
                ));
                let _ = out.emit(&stream_status(name, "COMPLETE"));
            }
            Err(e) => {
                let failure_type = if e.is_config_error() {
                    "config_error"
                } else {
                    config_only = false;
                    "system_error"
                };
                let _ = out.emit(&error_trace(
                    &format!("stream {name} failed: {}", e.message),
                    failure_type,
                    Some(name),
                ));
                let _ = out.emit(&stream_status(name, "INCOMPLETE"));
                failed.push(name.to_string());
            }
        }
        let _ = out.flush();
    }
    session.shutdown();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        let _ = out.emit(&error_trace(
            &format!(
                "{} of {} streams did not sync: {}",
                failed.len(),
                catalog.streams.len(),
                failed.join(", ")
            ),
            if config_only {
                "config_error"
            } else {
                "system_error"
            },
            None,
        ));
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str], env: Option<&str>) -> Vec<String> {
        standard_argv(
            args.iter().map(OsString::from).collect(),
            env.map(OsString::from),
        )
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
    }

    #[test]
    fn a_multi_call_name_chooses_the_connector() {
        assert_eq!(
            argv(
                &[
                    "/opt/x/ionport-airbyte-infor-m3",
                    "check",
                    "--config",
                    "c.json"
                ],
                None
            ),
            [
                "ionport", "airbyte", "infor-m3", "check", "--config", "c.json"
            ]
        );
        assert_eq!(
            argv(&["ionport-airbyte-infor-ln.exe", "spec"], Some("infor-m3")),
            ["ionport", "airbyte", "infor-ln", "spec"],
            "the name wins over the environment"
        );
        // A bare prefix names no connector.
        assert_eq!(
            argv(&["ionport-airbyte-", "spec"], None),
            ["ionport-airbyte-", "spec"]
        );
    }

    #[test]
    fn the_environment_chooses_the_connector_for_airbyte_commands_only() {
        assert_eq!(
            argv(
                &["ionport", "read", "--config", "c", "--catalog", "k"],
                Some("infor-ln")
            ),
            [
                "ionport",
                "airbyte",
                "infor-ln",
                "read",
                "--config",
                "c",
                "--catalog",
                "k"
            ]
        );
        assert_eq!(
            argv(&["ionport", "plugins", "list"], Some("infor-ln")),
            ["ionport", "plugins", "list"]
        );
        assert_eq!(argv(&["ionport", "spec"], Some("")), ["ionport", "spec"]);
        assert_eq!(
            argv(&["ionport", "airbyte", "infor-m3", "spec"], None),
            ["ionport", "airbyte", "infor-m3", "spec"]
        );
    }
}
