//! The conformance kit: the checks every ionport plugin must pass.
//!
//! [`verify_library`] loads a built plugin through the ABI, exactly as the host does, and
//! checks its manifest, connection form, tasks and behaviour at the boundary. Run it from
//! an author's own tests, or with `ionport plugins verify PATH`.
//!
//! The descriptor checks ([`check_manifest`], [`check_form`], [`check_tasks`]) are the
//! same ones the host runs when it loads a plugin, so "passes the kit" and "loads" agree.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
use ionport_plugin_abi::abi_stable::std_types::{RArc, RResult, RStr, RString};
use ionport_plugin_abi::wire::{Manifest, StreamNames, TaskSpec};
use ionport_plugin_abi::{
    ABI_VERSION, FfiConnectorBox, FfiHost, FfiHost_TO, FfiHostArc, FfiHttpRequest, FfiHttpResponse,
    LogLevel, PluginError, RecordBatch, error_kind, load,
};
use serde_json::{Value, json};

use crate::form::{SECRET_KEYWORD, walk_properties};

/// The outcome of one named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Short name, e.g. `manifest`.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found (on failure: every problem, one per line).
    pub detail: String,
}

/// The result of [`verify_library`].
#[derive(Debug, Clone)]
pub struct ConformanceReport {
    /// The library checked.
    pub path: PathBuf,
    /// The connector id, when the manifest could be read.
    pub connector_id: Option<String>,
    /// Every check, in order.
    pub checks: Vec<CheckOutcome>,
}

impl ConformanceReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.checks.iter().filter(|c| !c.passed)
    }

    fn push(&mut self, name: &'static str, problems: Vec<String>, ok_detail: impl Into<String>) {
        let passed = problems.is_empty();
        self.checks.push(CheckOutcome {
            name,
            passed,
            detail: if passed {
                ok_detail.into()
            } else {
                problems.join("\n")
            },
        });
    }
}

/// Panics with the report when `path` does not pass: for an author's `#[test]`.
pub fn assert_conformant(path: &Path) {
    let report = verify_library(path);
    if !report.passed() {
        let lines: Vec<String> = report
            .failures()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        panic!(
            "{} does not pass the ionport conformance kit:\n{}",
            path.display(),
            lines.join("\n")
        );
    }
}

/// Loads the plugin at `path` through the ABI and runs every check.
pub fn verify_library(path: &Path) -> ConformanceReport {
    let mut report = ConformanceReport {
        path: path.to_path_buf(),
        connector_id: None,
        checks: Vec::new(),
    };
    let module = match load::open(path) {
        Ok(m) => m,
        Err(e) => {
            report.push("load", vec![e.to_string()], "");
            return report;
        }
    };
    report.push("load", vec![], format!("loaded; ABI {ABI_VERSION}"));

    let connector: FfiConnectorBox = match (module.new_connector())() {
        RResult::ROk(c) => c,
        RResult::RErr(e) => {
            report.push(
                "construct",
                vec![format!("creating the connector failed: {e}")],
                "",
            );
            return report;
        }
    };
    report.push("construct", vec![], "connector created");

    // Descriptor.
    let manifest = decode::<Manifest>("manifest", connector.manifest());
    match &manifest {
        Ok(m) => {
            report.connector_id = Some(m.id.clone());
            report.push(
                "manifest",
                check_manifest(m),
                format!("{} {} ({})", m.id, m.version, m.name),
            );
        }
        Err(e) => report.push("manifest", vec![e.clone()], ""),
    }
    match decode::<Value>("connection form", connector.connection_form()) {
        Ok(form) => {
            let n = form
                .get("properties")
                .and_then(Value::as_object)
                .map_or(0, |p| p.len());
            report.push(
                "connection_form",
                check_form(&form),
                format!("{n} top-level fields"),
            );
        }
        Err(e) => report.push("connection_form", vec![e], ""),
    }
    let tasks = decode::<Vec<TaskSpec>>("tasks", connector.tasks());
    match &tasks {
        Ok(t) => {
            let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
            report.push(
                "tasks",
                check_tasks(t),
                format!("{} tasks: {}", t.len(), names.join(", ")),
            );
        }
        Err(e) => report.push("tasks", vec![e.clone()], ""),
    }

    // Behaviour at the boundary, with a host that has no gateway.
    let empty = json!({ "settings": {} }).to_string();
    let outcome = connector.check(OfflineHost::arc(), RStr::from_str(&empty));
    report.push(
        "check_without_gateway",
        no_panic("check", &outcome),
        describe(&outcome),
    );
    let unknown = json!({
        "connection": { "settings": {} },
        "task": "__no_such_task__",
        "sync_mode": "full_refresh"
    })
    .to_string();
    let outcome = connector.read(OfflineHost::arc(), RStr::from_str(&unknown));
    let mut problems = no_panic("read", &outcome);
    match &outcome {
        RResult::RErr(e) if e.kind == error_kind::INVALID_INPUT => {}
        RResult::RErr(e) if e.kind == error_kind::PANIC => {}
        other => problems.push(format!(
            "read of an unknown task must fail with an invalid_input error, got: {}",
            describe(other)
        )),
    }
    report.push("read_unknown_task", problems, "refused with invalid_input");
    if let Ok(tasks) = &tasks {
        let mut problems = Vec::new();
        for t in tasks {
            let req = json!({
                "connection": { "settings": {} },
                "task": t.name,
                "sync_mode": "full_refresh"
            })
            .to_string();
            let outcome = connector.read(OfflineHost::arc(), RStr::from_str(&req));
            problems.extend(no_panic(&format!("read of task '{}'", t.name), &outcome));
        }
        report.push(
            "read_without_gateway",
            problems,
            "every task returns without a panic",
        );
    }
    report
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    r: RResult<RString, PluginError>,
) -> Result<T, String> {
    match r {
        RResult::ROk(s) => {
            serde_json::from_str(&s).map_err(|e| format!("the {what} is not valid: {e}"))
        }
        RResult::RErr(e) => Err(format!("the plugin failed to give its {what}: {e}")),
    }
}

fn no_panic(what: &str, r: &RResult<RString, PluginError>) -> Vec<String> {
    match r {
        RResult::RErr(e) if e.kind == error_kind::PANIC => {
            vec![format!(
                "{what} panicked (caught by the SDK guard): {}",
                e.message
            )]
        }
        _ => vec![],
    }
}

fn describe(r: &RResult<RString, PluginError>) -> String {
    match r {
        RResult::ROk(s) => format!("ok: {}", s.chars().take(120).collect::<String>()),
        RResult::RErr(e) => format!("error ({}): {}", e.kind, e.message),
    }
}

fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn is_task_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Problems with a manifest (empty when it is well-formed).
pub fn check_manifest(m: &Manifest) -> Vec<String> {
    let mut p = Vec::new();
    if !is_id(&m.id) {
        p.push(format!(
            "manifest.id {:?} must be lowercase letters, digits and single dashes, starting with a letter (e.g. infor-m3)",
            m.id
        ));
    }
    if m.name.trim().is_empty() {
        p.push("manifest.name is empty".into());
    }
    if m.description.trim().is_empty() {
        p.push("manifest.description is empty".into());
    }
    if semver::Version::parse(&m.version).is_err() {
        p.push(format!(
            "manifest.version {:?} is not a semantic version",
            m.version
        ));
    }
    match (
        semver::Version::parse(&m.abi_version),
        semver::Version::parse(ABI_VERSION),
    ) {
        (Ok(found), Ok(host)) if found.major == host.major => {}
        (Ok(found), _) => p.push(format!(
            "manifest.abi_version {found} is not compatible with this host's ABI {ABI_VERSION}"
        )),
        (Err(_), _) => p.push(format!(
            "manifest.abi_version {:?} is not a semantic version",
            m.abi_version
        )),
    }
    if let Some(names) = &m.stream_names {
        if let Err(e) = stream_name_schema(names) {
            p.push(format!("manifest.stream_names.pattern: {e}"));
        }
        if names.form.trim().is_empty() {
            p.push("manifest.stream_names.form is empty".into());
        }
    }
    p
}

/// The JSON Schema a discovered stream's name satisfies, from the connector's
/// [`StreamNames`]; an error when the pattern is not anchored or not a regular expression.
fn stream_name_schema(names: &StreamNames) -> Result<jsonschema::Validator, String> {
    let p = &names.pattern;
    if !(p.starts_with('^') && p.ends_with('$')) {
        return Err(format!(
            "{p:?} must be anchored (start with ^ and end with $): a name matches it whole"
        ));
    }
    jsonschema::validator_for(&json!({ "type": "string", "pattern": p }))
        .map_err(|e| format!("{p:?} is not a regular expression: {e}"))
}

/// Whether `name` has the form of a connector's discovered streams (`false` also when the
/// pattern is unusable, which [`check_manifest`] refuses at load).
pub fn is_stream_name(names: &StreamNames, name: &str) -> bool {
    stream_name_schema(names).is_ok_and(|v| v.is_valid(&Value::String(name.to_string())))
}

/// Problems with a connection form (empty when it is a usable JSON Schema).
pub fn check_form(form: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if let Err(e) = jsonschema::validator_for(form) {
        p.push(format!(
            "the connection form is not a valid JSON Schema: {e}"
        ));
        return p;
    }
    if form.get("type").and_then(Value::as_str) != Some("object") {
        p.push("the connection form must have \"type\": \"object\"".into());
    }
    if form.get("properties").and_then(Value::as_object).is_none() {
        p.push("the connection form has no properties".into());
    }
    check_secret_marks(form, &mut p);
    p
}

/// Whether a field name reads like a secret: its last word is password, secret, token,
/// passphrase or key (`client_secret`, `api_token`, `private_key`), not merely
/// mentions one (`token_url`).
fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let last = lower.rsplit(['_', '-']).next().unwrap_or("");
    matches!(
        last,
        "password" | "passwd" | "secret" | "token" | "passphrase" | "apikey"
    ) || (last == "key" && lower.len() > 3)
}

fn check_secret_marks(form: &Value, p: &mut Vec<String>) {
    walk_properties(form, |prop| {
        let marked = prop.flag(SECRET_KEYWORD);
        if !marked && looks_secret(prop.name) {
            p.push(format!(
                "form field '{}' looks like a secret but is not marked \"{SECRET_KEYWORD}\": true",
                prop.path
            ));
        }
        if marked && !prop.flag("writeOnly") {
            p.push(format!(
                "secret form field '{}' must also be \"writeOnly\": true",
                prop.path
            ));
        }
    });
}

/// Problems with a task list (empty when every task is well-formed).
pub fn check_tasks(tasks: &[TaskSpec]) -> Vec<String> {
    let mut p = Vec::new();
    if tasks.is_empty() {
        p.push("the plugin declares no tasks".into());
    }
    let mut seen = HashSet::new();
    for t in tasks {
        let at = format!("task '{}'", t.name);
        if !seen.insert(t.name.as_str()) {
            p.push(format!("{at} is declared twice"));
        }
        if !is_task_name(&t.name) {
            p.push(format!(
                "{at}: names are lowercase letters, digits and underscores, starting with a letter"
            ));
        }
        if t.description.trim().is_empty() {
            p.push(format!("{at}: the description is empty"));
        }
        if let Err(e) = jsonschema::validator_for(&t.record_schema) {
            p.push(format!(
                "{at}: the record schema is not a valid JSON Schema: {e}"
            ));
            continue;
        }
        let props = t.record_schema.get("properties").and_then(Value::as_object);
        if props.is_none() {
            p.push(format!("{at}: the record schema has no properties"));
        }
        if t.primary_key.is_empty() {
            p.push(format!("{at}: the primary key is empty"));
        }
        for k in &t.primary_key {
            if props.is_some_and(|props| !props.contains_key(k)) {
                p.push(format!(
                    "{at}: primary key field '{k}' is not in the record schema"
                ));
            }
        }
        if let Some(c) = &t.cursor_field
            && props.is_some_and(|props| !props.contains_key(c))
        {
            p.push(format!(
                "{at}: cursor field '{c}' is not in the record schema"
            ));
        }
        if t.sync_modes.is_empty() {
            p.push(format!("{at}: no sync modes"));
        }
        if t.sync_modes
            .contains(&ionport_plugin_abi::wire::SyncMode::Incremental)
            && t.cursor_field.is_none()
        {
            p.push(format!("{at}: incremental sync needs a cursor field"));
        }
    }
    p
}

/// A host with no gateway: what a plugin meets during conformance checks.
struct OfflineHost {
    emitted: Mutex<u64>,
}

/// A [`crate::Host`] without a gateway, for the SDK's own unit tests.
#[cfg(test)]
pub(crate) fn offline_host() -> crate::Host {
    crate::Host::new(OfflineHost::arc())
}

impl OfflineHost {
    fn arc() -> FfiHostArc {
        FfiHost_TO::from_ptr(
            RArc::new(OfflineHost {
                emitted: Mutex::new(0),
            }),
            TD_Opaque,
        )
    }
}

impl FfiHost for OfflineHost {
    fn gateway(&self, _request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
        RResult::RErr(PluginError::new(
            error_kind::HOST,
            "no gateway: the conformance kit runs without a connection",
        ))
    }

    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}

    fn emit(&self, batch: RecordBatch) -> RResult<(), PluginError> {
        if let Ok(mut n) = self.emitted.lock() {
            *n += batch.count;
        }
        RResult::ROk(())
    }

    fn checkpoint(&self, _state: RStr<'_>) -> RResult<(), PluginError> {
        RResult::ROk(())
    }

    fn cancelled(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(pattern: &str) -> Manifest {
        Manifest {
            id: "infor-m3".into(),
            name: "Infor M3".into(),
            version: "0.1.0".into(),
            abi_version: ABI_VERSION.into(),
            description: "M3".into(),
            stream_names: Some(StreamNames {
                pattern: pattern.into(),
                form: "table:NAME".into(),
            }),
            requires: Vec::new(),
        }
    }

    #[test]
    fn a_stream_name_pattern_must_be_anchored_and_compile() {
        assert!(check_manifest(&manifest("^table:[A-Z]{3,10}$")).is_empty());
        let p = check_manifest(&manifest("table:[A-Z]+"));
        assert!(p.iter().any(|m| m.contains("anchored")), "{p:?}");
        let p = check_manifest(&manifest("^table:[A-Z$"));
        assert!(
            p.iter().any(|m| m.contains("not a regular expression")),
            "{p:?}"
        );
    }

    #[test]
    fn a_name_matches_the_whole_pattern() {
        let names = manifest("^table:[A-Z][A-Z0-9]{2,9}$").stream_names.unwrap();
        assert!(is_stream_name(&names, "table:OCUSMA"));
        assert!(!is_stream_name(&names, "OCUSMA"));
        assert!(!is_stream_name(&names, "table:OCUSMA x"));
    }
}
