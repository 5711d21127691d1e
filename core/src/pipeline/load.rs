//! Reading and validating a pipeline file into a [`Plan`], before anything runs.
//!
//! Every problem is collected (not just the first) and located: file, line, column, and
//! what was expected. Syntax and type errors come from the TOML parser and serde; the
//! checks here are the ones only ionport knows: references between sections, an
//! environment dedicated to one connection, connectors and tasks that exist, settings
//! that satisfy the connector's form, and no secret written inline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ionport_plugin_abi::wire::{SyncMode, TaskSpec};
use ionport_plugin_sdk::form::CREDENTIALS_PROPERTY;
use jsonschema::paths::LocationSegment;
use serde_json::Value;

use super::config::{
    AuthBudgetEntry, AuthLimits, CredentialsRef, DailyBudgetEntry, Deletes, PipelineFile,
    SyncModeChoice, TaskEntry,
};
use super::diagnostic::{Diagnostic, Diagnostics};
use super::locate::{Located, Seg};
use super::schedule::Schedule;
use crate::destination::DestinationConfig;
use crate::plugin::{LoadedPlugin, PluginRegistry};

/// Tasks running at once in a pipeline unless it says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// A validated pipeline file, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it came from.
    pub file: PathBuf,
    /// Its pipelines, in name order.
    pub pipelines: Vec<PipelinePlan>,
}

/// Where a connection's credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsPlan {
    /// A vault entry.
    Vault(String),
    /// An `.ionapi` file (absolute).
    IonApi(PathBuf),
}

/// One task of a pipeline.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// The task's spec. For a discovered stream, only its name until the run starts and
    /// `discover` gives the rest ([`TaskPlan::discovered`]).
    pub spec: TaskSpec,
    /// How it reads in this pipeline (for a discovered stream: the pipeline's choice, made
    /// `full_refresh` at the start of the run when the stream has no cursor).
    pub sync_mode: SyncMode,
    /// The columns chosen, when some were (the key and cursor are added when it runs).
    pub columns: Option<Vec<String>>,
    /// A stream `discover` offers rather than a predefined task: its existence and spec
    /// are resolved when the run starts.
    pub discovered: bool,
    /// What the task does when its stream's schema changed (`schema_changes`).
    pub schema_changes: crate::pipeline::drift::SchemaPolicy,
    /// What happens to rows deleted at the source.
    pub deletes: Deletes,
    /// How many partitions the task is read in (1: whole).
    pub partitions: u32,
}

impl TaskPlan {
    /// A predefined task, every column.
    pub fn new(spec: TaskSpec, sync_mode: SyncMode) -> Self {
        Self {
            spec,
            sync_mode,
            columns: None,
            discovered: false,
            schema_changes: Default::default(),
            deletes: Deletes::Ignore,
            partitions: 1,
        }
    }

    /// A stream `discover` offers, resolved when the run starts.
    pub fn discovered(name: &str, sync_mode: SyncMode) -> Self {
        Self {
            spec: TaskSpec {
                name: name.to_string(),
                description: String::new(),
                record_schema: Value::Null,
                primary_key: Vec::new(),
                cursor_field: None,
                sync_modes: vec![sync_mode],
                requests_per_1000_records: None,
            },
            sync_mode,
            columns: None,
            discovered: true,
            schema_changes: Default::default(),
            deletes: Deletes::Ignore,
            partitions: 1,
        }
    }
}

/// One validated pipeline.
#[derive(Debug, Clone)]
pub struct PipelinePlan {
    /// The pipeline's name.
    pub name: String,
    /// The connection's name.
    pub connection: String,
    /// The connector.
    pub connector: Arc<LoadedPlugin>,
    /// The credentials.
    pub credentials: CredentialsPlan,
    /// The connector settings (form values without credentials; `${VAR}` expanded).
    pub settings: Value,
    /// The environment's name.
    pub environment: String,
    /// The destination (paths absolute, `${VAR}` expanded).
    pub destination: DestinationConfig,
    /// The tasks.
    pub tasks: Vec<TaskPlan>,
    /// Page size, when set.
    pub page_size: Option<u32>,
    /// Pages of one task in flight, when set.
    pub pages_in_flight: Option<u32>,
    /// Tasks at once.
    pub concurrency: usize,
    /// For the daemon: when to run.
    pub schedule: Option<Schedule>,
    /// The connection's quota override: `Some(None)` turns the limit off.
    pub quota: Option<Option<(u32, Duration)>>,
    /// The connection's daily budget override: `Some(None)` turns it off.
    pub daily_budget: Option<Option<u64>>,
    /// The connection's authentication budget override: `Some(None)` turns it off.
    pub auth_budget: Option<Option<crate::token::AuthBudget>>,
    /// The connection's request timeout, when set.
    pub timeout: Option<Duration>,
    /// The connection's in-flight bound, when set.
    pub max_in_flight: Option<usize>,
    /// The connection's retry bound, when set.
    pub retries: Option<u32>,
}

/// Parses a quota: `N/SECONDS` (e.g. `1000/60`) or `none`.
pub fn parse_quota(s: &str) -> Result<Option<(u32, Duration)>, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let expected = format!("{s:?}: expected N/SECONDS (e.g. \"1000/60\") or \"none\"");
    let (n, secs) = s.split_once('/').ok_or_else(|| expected.clone())?;
    let n: u32 = n.trim().parse().map_err(|_| expected.clone())?;
    let secs: u64 = secs.trim().parse().map_err(|_| expected.clone())?;
    if n == 0 || secs == 0 {
        return Err(format!("{s:?}: both numbers must be above zero"));
    }
    Ok(Some((n, Duration::from_secs(secs))))
}

/// The longest request timeout a gateway policy allows.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Parses a request timeout: a duration such as `90s` or `2m`, from 1 s to 300 s.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?}: expected a duration such as \"60s\" or \"2m\" ({e})"))?;
    if d < Duration::from_secs(1) || d > MAX_TIMEOUT {
        return Err(format!(
            "{s:?}: the timeout must be between 1s and 300s (the longest a gateway policy allows)"
        ));
    }
    Ok(d)
}

/// Expands `${VAR}` references from the environment.
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "unclosed variable reference in {s:?} (expected ${{NAME}})"
            ));
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(v) => out.push_str(&v),
            Err(_) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    doc: &'a Located<'a>,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        let span = self.doc.span(path);
        self.problems
            .push(Diagnostic::at(self.file, self.text, span, message));
    }
}

fn base_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Reads and validates `file` against the plugins of `registry`.
pub fn load(file: &Path, registry: &PluginRegistry) -> Result<Plan, Diagnostics> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Diagnostics(vec![Diagnostic::at(
            file,
            "",
            None,
            format!("cannot read the pipeline file: {e}"),
        )])
    })?;
    load_str(file, &text, registry)
}

/// Validates pipeline `text` (as if read from `file`).
pub fn load_str(file: &Path, text: &str, registry: &PluginRegistry) -> Result<Plan, Diagnostics> {
    let doc = Located::parse(text).map_err(|e| {
        Diagnostics(vec![Diagnostic::at(
            file,
            text,
            e.span(),
            format!("invalid TOML: {}", e.message().trim()),
        )])
    })?;
    let parsed: PipelineFile = toml::from_str(text).map_err(|e| {
        Diagnostics(vec![Diagnostic::at(
            file,
            text,
            e.span(),
            e.message().trim().to_string(),
        )])
    })?;
    let mut c = Checker {
        file,
        text,
        doc: &doc,
        problems: Vec::new(),
    };
    let base = base_dir(file);

    if parsed.pipelines.is_empty() {
        c.err(
            &[],
            "the file defines no pipelines (expected at least one [pipelines.NAME] table)",
        );
    }

    // Connections: connector, credentials, settings.
    let mut connectors: BTreeMap<&str, Arc<LoadedPlugin>> = BTreeMap::new();
    let mut settings: BTreeMap<&str, Value> = BTreeMap::new();
    let mut quotas: BTreeMap<&str, Option<(u32, Duration)>> = BTreeMap::new();
    let mut budgets: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    let mut auth_budgets: BTreeMap<&str, Option<crate::token::AuthBudget>> = BTreeMap::new();
    let mut timeouts: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut credentials: BTreeMap<&str, CredentialsPlan> = BTreeMap::new();
    for (name, conn) in &parsed.connections {
        let at = |k: &'static str| [Seg::Key("connections"), Seg::Key(name), Seg::Key(k)];
        let Some(plugin) = registry.get(&conn.connector) else {
            let known: Vec<&str> = registry.plugins().iter().map(|p| p.id()).collect();
            c.err(
                &at("connector"),
                format!(
                    "unknown connector '{}' (expected one of: {})",
                    conn.connector,
                    if known.is_empty() {
                        "none loaded".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            continue;
        };
        connectors.insert(name, isolation_for(&mut c, name, conn, plugin));
        if let Some(q) = &conn.quota {
            match parse_quota(q) {
                Ok(v) => {
                    quotas.insert(name, v);
                }
                Err(e) => c.err(&at("quota"), e),
            }
        }
        match &conn.daily_budget {
            None => {}
            Some(DailyBudgetEntry::Requests(0)) => c.err(
                &at("daily_budget"),
                "daily_budget must be at least 1 (or \"none\" for no budget)",
            ),
            Some(DailyBudgetEntry::Requests(n)) => {
                budgets.insert(name, Some(*n));
            }
            Some(DailyBudgetEntry::Off(s)) if s.trim().eq_ignore_ascii_case("none") => {
                budgets.insert(name, None);
            }
            Some(DailyBudgetEntry::Off(s)) => c.err(
                &at("daily_budget"),
                format!("{s:?}: expected a number of requests per day (e.g. 250000) or \"none\""),
            ),
        }
        match &conn.auth_budget {
            None => {}
            Some(AuthBudgetEntry::Limits(AuthLimits {
                per_minute,
                per_day,
            })) => {
                let infor = crate::token::AuthBudget::INFOR;
                let b = crate::token::AuthBudget {
                    per_minute: per_minute.unwrap_or(infor.per_minute),
                    per_day: per_day.unwrap_or(infor.per_day),
                };
                if b.per_minute < 2 {
                    c.err(
                        &at("auth_budget"),
                        "auth_budget.per_minute must be at least 2 (or auth_budget = \"none\")",
                    );
                } else if b.per_day == 0 {
                    c.err(
                        &at("auth_budget"),
                        "auth_budget.per_day must be at least 1 (or auth_budget = \"none\")",
                    );
                } else {
                    auth_budgets.insert(name, Some(b));
                }
            }
            Some(AuthBudgetEntry::Off(s)) if s.trim().eq_ignore_ascii_case("none") => {
                auth_budgets.insert(name, None);
            }
            Some(AuthBudgetEntry::Off(s)) => c.err(
                &at("auth_budget"),
                format!("{s:?}: expected {{ per_minute = 20, per_day = 1000 }} or \"none\""),
            ),
        }
        if let Some(t) = &conn.timeout {
            match parse_timeout(t) {
                Ok(d) => {
                    timeouts.insert(name, d);
                }
                Err(e) => c.err(&at("timeout"), e),
            }
        }
        if conn.max_in_flight == Some(0) {
            c.err(&at("max_in_flight"), "max_in_flight must be at least 1");
        }
        if conn.retries.is_some_and(|n| n > 20) {
            c.err(&at("retries"), "retries must be at most 20");
        }
        match &conn.credentials {
            CredentialsRef::Vault { vault } if vault.trim().is_empty() => {
                c.err(&at("credentials"), "the vault entry name is empty");
            }
            CredentialsRef::Vault { vault } => {
                credentials.insert(name, CredentialsPlan::Vault(vault.clone()));
            }
            CredentialsRef::IonApi { ionapi } => match expand_env(&ionapi.to_string_lossy()) {
                Err(e) => c.err(&at("credentials"), e),
                Ok(p) => {
                    let p = absolute(&base, Path::new(&p));
                    if p.is_file() {
                        credentials.insert(name, CredentialsPlan::IonApi(p));
                    } else {
                        c.err(
                            &at("credentials"),
                            format!("the .ionapi file {} does not exist", p.display()),
                        );
                    }
                }
            },
        }
        // Settings: no secret inline, variables expanded, the form satisfied.
        let form = plugin.connection_form();
        let secrets = ionport_plugin_sdk::form::secret_fields(form);
        let mut values = serde_json::Map::new();
        for (key, v) in &conn.settings {
            let path = [
                Seg::Key("connections"),
                Seg::Key(name),
                Seg::Key("settings"),
                Seg::Key(key),
            ];
            // The key is a secret, or holds one (a nested object with a secret field).
            let holds_secret = secrets
                .iter()
                .any(|s| s == key || s.starts_with(&format!("{key}.")));
            if key == CREDENTIALS_PROPERTY || holds_secret {
                c.err(&path, format!(
                    "secrets may not be written in a pipeline file: remove `{key}` and use credentials = {{ vault = \"NAME\" }} or {{ ionapi = \"FILE\" }}"
                ));
                continue;
            }
            let json = match v.clone() {
                Value::String(s) => match expand_env(&s) {
                    Ok(s) => Value::String(s),
                    Err(e) => {
                        c.err(&path, e);
                        continue;
                    }
                },
                other => other,
            };
            values.insert(key.clone(), json);
        }
        let values = Value::Object(values);
        let mut settings_schema = form.clone();
        if let Some(props) = settings_schema
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        {
            props.remove(CREDENTIALS_PROPERTY);
        }
        if let Some(req) = settings_schema
            .get_mut("required")
            .and_then(Value::as_array_mut)
        {
            req.retain(|r| r.as_str() != Some(CREDENTIALS_PROPERTY));
        }
        match crate::json_schema::validator_for(&settings_schema) {
            Ok(validator) => {
                for e in validator.iter_errors(&values) {
                    let inner: Vec<LocationSegment<'_>> = e.instance_path().segments().collect();
                    let mut path = vec![
                        Seg::Key("connections"),
                        Seg::Key(name),
                        Seg::Key("settings"),
                    ];
                    path.extend(inner.iter().map(|seg| match seg {
                        LocationSegment::Property(p) => Seg::Key(p),
                        LocationSegment::Index(i) => Seg::Index(*i),
                    }));
                    let what = std::iter::once("settings".to_string())
                        .chain(inner.iter().map(ToString::to_string))
                        .collect::<Vec<_>>()
                        .join(".");
                    let msg = format!(
                        "{}: {} (the {} connection form)",
                        what,
                        crate::json_schema::error_text(&e),
                        plugin.id()
                    );
                    c.err(&path, msg);
                }
            }
            Err(e) => c.err(
                &at("connector"),
                format!("the connector's form is not a usable schema: {e}"),
            ),
        }
        settings.insert(name, values);
    }

    // Environments: destinations with variables expanded and paths made absolute.
    let mut destinations: BTreeMap<&str, DestinationConfig> = BTreeMap::new();
    for (name, env) in &parsed.environments {
        let at = [
            Seg::Key("environments"),
            Seg::Key(name),
            Seg::Key("destination"),
        ];
        let resolved = match &env.destination {
            DestinationConfig::Sqlite { path } => {
                expand_env(&path.to_string_lossy()).map(|p| DestinationConfig::Sqlite {
                    path: absolute(&base, Path::new(&p)),
                })
            }
            DestinationConfig::Parquet { path } => {
                expand_env(&path.to_string_lossy()).map(|p| DestinationConfig::Parquet {
                    path: absolute(&base, Path::new(&p)),
                })
            }
            DestinationConfig::Jsonl { path } => {
                expand_env(&path.to_string_lossy()).map(|p| DestinationConfig::Jsonl {
                    path: absolute(&base, Path::new(&p)),
                })
            }
            DestinationConfig::Postgres { url, schema } => {
                if url.contains(':')
                    && url.contains('@')
                    && !url.contains("${")
                    && url_has_password(url)
                {
                    c.err(&at, "secrets may not be written in a pipeline file: put the Postgres password in an environment variable and write url = \"postgres://user:${PGPASSWORD}@host/db\"");
                }
                expand_env(url).map(|u| DestinationConfig::Postgres {
                    url: u,
                    schema: schema.clone(),
                })
            }
        };
        match resolved {
            // A kind this build left out is named now, not when a run opens it.
            Ok(d) => match d.built() {
                Ok(()) => {
                    destinations.insert(name, d);
                }
                Err(e) => c.err(&at, e.to_string()),
            },
            Err(e) => c.err(&at, e),
        }
    }

    // Pipelines.
    let mut dedicated: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut plans = Vec::new();
    // In file order: the first pipeline that names an environment claims it.
    let mut ordered: Vec<_> = parsed.pipelines.iter().collect();
    ordered.sort_by_key(|(name, _)| {
        doc.span(&[Seg::Key("pipelines"), Seg::Key(name)])
            .map_or(0, |s| s.start)
    });
    for (name, p) in ordered {
        let at = |k: &'static str| [Seg::Key("pipelines"), Seg::Key(name), Seg::Key(k)];
        if !parsed.connections.contains_key(&p.connection) {
            let known: Vec<&String> = parsed.connections.keys().collect();
            c.err(
                &at("connection"),
                format!(
                    "unknown connection '{}' (expected one of the [connections.NAME] tables: {})",
                    p.connection,
                    if known.is_empty() {
                        "none defined".into()
                    } else {
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            );
        }
        if !parsed.environments.contains_key(&p.environment) {
            let known: Vec<&str> = parsed.environments.keys().map(String::as_str).collect();
            c.err(
                &at("environment"),
                format!(
                    "unknown environment '{}' (expected one of the [environments.NAME] tables: {})",
                    p.environment,
                    if known.is_empty() {
                        "none defined".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        } else {
            match dedicated.get(p.environment.as_str()) {
                Some((conn, first)) if *conn != p.connection => c.err(&at("environment"), format!(
                    "environment '{}' is dedicated to connection '{conn}' (pipeline '{first}'); a replication environment serves one connection — give pipeline '{name}' an environment of its own",
                    p.environment
                )),
                Some(_) => {}
                None => {
                    dedicated.insert(&p.environment, (&p.connection, name));
                }
            }
        }
        if p.page_size == Some(0) {
            c.err(&at("page_size"), "page_size must be at least 1");
        }
        if p.pages_in_flight == Some(0) {
            c.err(&at("pages_in_flight"), "pages_in_flight must be at least 1");
        }
        if p.concurrency == Some(0) {
            c.err(&at("concurrency"), "concurrency must be at least 1");
        }
        let schedule = match &p.schedule {
            Some(s) => match Schedule::parse(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    c.err(&at("schedule"), format!("schedule {e}"));
                    None
                }
            },
            None => None,
        };
        let Some(plugin) = connectors.get(p.connection.as_str()) else {
            continue;
        };
        let choice = p.sync_mode.unwrap_or(SyncModeChoice::Incremental);
        let mut tasks = Vec::new();
        match &p.tasks {
            Some(entries) if entries.is_empty() => c.err(
                &at("tasks"),
                "the task list is empty (leave `tasks` out to run every predefined task)",
            ),
            Some(entries) => {
                let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
                for (i, entry) in entries.iter().enumerate() {
                    let t = entry.name();
                    let here = [
                        Seg::Key("pipelines"),
                        Seg::Key(name),
                        Seg::Key("tasks"),
                        Seg::Index(i),
                    ];
                    if let Some(&first) = first_at.get(t) {
                        c.err(
                            &here,
                            format!(
                                "task '{t}' is listed twice (first as tasks[{first}]): each task runs once per pipeline, remove one"
                            ),
                        );
                        continue;
                    }
                    first_at.insert(t, i);
                    if let Some(mut task) = task_plan(&mut c, plugin, name, i, entry, choice) {
                        task.schema_changes = entry
                            .schema_changes()
                            .or(p.schema_changes)
                            .unwrap_or_default();
                        let dest = destinations.get(p.environment.as_str());
                        if let Some(n) = entry.partitions()
                            && let Err(e) = partitions_of(&task, n, dest)
                        {
                            let at = [
                                Seg::Key("pipelines"),
                                Seg::Key(name),
                                Seg::Key("tasks"),
                                Seg::Index(i),
                                Seg::Key("partitions"),
                            ];
                            c.err(&at, format!("tasks[{i}].partitions: {e}"));
                            continue;
                        }
                        task.partitions = entry.partitions().unwrap_or(1);
                        tasks.push(task);
                    }
                }
            }
            None => {
                tasks = plugin
                    .tasks()
                    .iter()
                    .map(|spec| TaskPlan {
                        schema_changes: p.schema_changes.unwrap_or_default(),
                        ..TaskPlan::new(spec.clone(), mode_of(choice, spec))
                    })
                    .collect();
            }
        }
        let (Some(creds), Some(dest)) = (
            credentials.get(p.connection.as_str()),
            destinations.get(p.environment.as_str()),
        ) else {
            continue;
        };
        plans.push(PipelinePlan {
            name: name.clone(),
            connection: p.connection.clone(),
            connector: plugin.clone(),
            credentials: creds.clone(),
            settings: settings
                .get(p.connection.as_str())
                .cloned()
                .unwrap_or(Value::Null),
            environment: p.environment.clone(),
            destination: dest.clone(),
            tasks,
            page_size: p.page_size,
            pages_in_flight: p.pages_in_flight,
            concurrency: p.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            schedule,
            quota: quotas.get(p.connection.as_str()).copied(),
            daily_budget: budgets.get(p.connection.as_str()).copied(),
            auth_budget: auth_budgets.get(p.connection.as_str()).copied(),
            timeout: timeouts.get(p.connection.as_str()).copied(),
            max_in_flight: parsed
                .connections
                .get(&p.connection)
                .and_then(|c| c.max_in_flight),
            retries: parsed
                .connections
                .get(&p.connection)
                .and_then(|c| c.retries),
        });
    }
    if c.problems.is_empty() {
        Ok(Plan {
            file: file.to_path_buf(),
            pipelines: plans,
        })
    } else {
        c.problems.sort_by_key(|d| (d.line, d.column));
        Err(Diagnostics(c.problems))
    }
}

/// Why `task` cannot be read in `n` partitions into `dest`, if it cannot. A discovered
/// stream's spec is known only when the run starts: [`check_partitionable`] then.
fn partitions_of(task: &TaskPlan, n: u32, dest: Option<&DestinationConfig>) -> Result<(), String> {
    if !(1..=MAX_PARTITIONS).contains(&n) {
        return Err(format!("expected 1 to {MAX_PARTITIONS}, not {n}"));
    }
    if n == 1 {
        return Ok(());
    }
    if task.deletes == Deletes::Soft {
        return Err(
            "a partitioned task cannot keep deletions (the keys-only pass reads the whole task); \
             leave out deletes = \"soft\" or partitions"
                .into(),
        );
    }
    if let Some(d @ (DestinationConfig::Jsonl { .. } | DestinationConfig::Parquet { .. })) = dest {
        return Err(format!(
            "a partitioned task needs a SQLite or Postgres destination, where each partition's \
             state commits with its records; a {} destination keeps one state per stream",
            d.kind()
        ));
    }
    if task.discovered {
        return Ok(());
    }
    check_partitionable(&task.spec, task.sync_mode)
}

/// The most partitions a task is read in.
pub const MAX_PARTITIONS: u32 = 64;

/// Why a task of `spec` read in `mode` cannot be partitioned, if it cannot: its connector
/// must declare it partitionable, and it must read in full.
pub fn check_partitionable(spec: &TaskSpec, mode: SyncMode) -> Result<(), String> {
    if !spec.partitionable() {
        return Err(format!(
            "task '{}' cannot be partitioned: its connector does not declare its reads \
             partitionable (offset-paged streams are)",
            spec.name
        ));
    }
    if mode == SyncMode::Incremental {
        return Err(format!(
            "task '{}' reads incrementally, and a partitioned task reads in full (each \
             partition would page a listing filtered from its own high-water mark): set \
             sync_mode = \"full_refresh\" on the pipeline",
            spec.name
        ));
    }
    Ok(())
}

/// The sync mode of `spec` under the pipeline's `choice`: incremental where it can be.
fn mode_of(choice: SyncModeChoice, spec: &TaskSpec) -> SyncMode {
    if choice == SyncModeChoice::Incremental && spec.sync_modes.contains(&SyncMode::Incremental) {
        SyncMode::Incremental
    } else {
        SyncMode::FullRefresh
    }
}

/// The plan of one `tasks` entry: a predefined task (its columns checked against its
/// schema now), or a name of the form of the connector's discovered streams (checked
/// against `discover` when the run starts); anything else is a located error.
fn task_plan(
    c: &mut Checker<'_>,
    plugin: &LoadedPlugin,
    pipeline: &str,
    i: usize,
    entry: &TaskEntry,
    choice: SyncModeChoice,
) -> Option<TaskPlan> {
    let t = entry.name();
    let here = [
        Seg::Key("pipelines"),
        Seg::Key(pipeline),
        Seg::Key("tasks"),
        Seg::Index(i),
    ];
    let columns_at = [
        Seg::Key("pipelines"),
        Seg::Key(pipeline),
        Seg::Key("tasks"),
        Seg::Index(i),
        Seg::Key("columns"),
    ];
    let columns = entry.columns().map(<[String]>::to_vec);
    if let Some(spec) = plugin.task(t) {
        if let Some(Err(e)) = columns
            .as_ref()
            .map(|cols| crate::read::selected_columns(spec, cols))
        {
            c.err(&columns_at, format!("tasks[{i}].columns: {e}"));
            return None;
        }
        let mut plan = TaskPlan::new(spec.clone(), mode_of(choice, spec));
        plan.columns = columns;
        plan.deletes = entry.deletes();
        return Some(plan);
    }
    if crate::read::is_stream_name(plugin, t) {
        if columns.as_ref().is_some_and(Vec::is_empty) {
            c.err(
                &columns_at,
                format!("tasks[{i}].columns is empty (leave it out to read every column)"),
            );
            return None;
        }
        let mode = match choice {
            SyncModeChoice::Incremental => SyncMode::Incremental,
            SyncModeChoice::FullRefresh => SyncMode::FullRefresh,
        };
        let mut plan = TaskPlan::discovered(t, mode);
        plan.columns = columns;
        plan.deletes = entry.deletes();
        return Some(plan);
    }
    let known: Vec<&str> = plugin.tasks().iter().map(|t| t.name.as_str()).collect();
    let streams = match crate::read::stream_names(plugin) {
        Some(n) => format!(", or a stream named {}", n.form),
        None => String::new(),
    };
    let close = crate::read::close_matches(known.iter().copied(), t);
    let close = if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(" or "))
    };
    c.err(
        &here,
        format!(
            "connector {} has no task '{t}' (expected one of: {}{streams}){close}",
            plugin.id(),
            known.join(", ")
        ),
    );
    None
}

fn url_has_password(url: &str) -> bool {
    let after_scheme = url.split("://").nth(1).unwrap_or(url);
    let userinfo = after_scheme.split('@').next().unwrap_or("");
    after_scheme.contains('@') && userinfo.contains(':')
}

/// The plugin a connection runs: the registry's, or — with `isolation = "process"`, or
/// when the registry already isolates it and the connection sets its own limits — the
/// same plugin in processes of its own with the connection's limits.
fn isolation_for(
    c: &mut Checker<'_>,
    name: &str,
    conn: &crate::pipeline::config::ConnectionEntry,
    plugin: &Arc<LoadedPlugin>,
) -> Arc<LoadedPlugin> {
    use crate::plugin::Isolation;
    let at = |k: &'static str| [Seg::Key("connections"), Seg::Key(name), Seg::Key(k)];
    let mut limits = plugin.isolation_limits().cloned().unwrap_or_default();
    let mut set = false;
    if let Some(t) = &conn.isolation_timeout {
        match humantime::parse_duration(t.trim()) {
            Ok(d) if !d.is_zero() => {
                limits.call_timeout = d;
                set = true;
            }
            Ok(_) => c.err(
                &at("isolation_timeout"),
                format!("{t:?}: must be above zero"),
            ),
            Err(e) => c.err(
                &at("isolation_timeout"),
                format!("{t:?}: expected a duration such as \"120s\" or \"5m\" ({e})"),
            ),
        }
    }
    if let Some(m) = conn.isolation_memory_mib {
        limits.memory_limit_mib = m;
        set = true;
    }
    let isolate = conn.isolation == Some(Isolation::Process) || plugin.is_isolated();
    if set && !isolate {
        c.err(
            &at("isolation"),
            "isolation_timeout and isolation_memory_mib apply to isolation = \"process\" only; set it too",
        );
    }
    if isolate && (set || !plugin.is_isolated()) {
        plugin.isolated(limits)
    } else {
        plugin.clone()
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
