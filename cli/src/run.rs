//! `ionport run FILE`, `ionport daemon FILE` and `ionport state show|reset FILE`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ionport_core::pipeline::run::{open_destination, states};
use ionport_core::pipeline::{
    Cancel, Plan, RunObserver, RunOptions, RunSummary, Schedule, TaskCounts, TaskOutcome, load, run,
};
use ionport_plugin_sdk::{LogLevel, SyncMode};
use serde_json::json;

use crate::Cli;

/// How progress is shown when stderr is not a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain `key=value` lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `ionport run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// Only this pipeline.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Ignore saved states: read everything again.
    #[arg(long)]
    pub full_refresh: bool,
    /// Progress lines when stderr is not a terminal.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Print only the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Also write the summary as JSON to FILE (tasks with their counts and errors,
    /// pipelines that could not start, totals, `ok`), for schedulers and scripts.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}

/// `ionport daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The pipeline file (TOML); pipelines with a `schedule` run on it.
    pub file: PathBuf,
    /// Progress lines format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// `ionport state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Show the saved state of every stream of a pipeline's environment.
    Show {
        /// The pipeline file.
        file: PathBuf,
        /// The pipeline whose environment to show (default: every pipeline).
        #[arg(long)]
        pipeline: Option<String>,
        /// Print JSON: one object per environment (environment, pipeline, states: stream →
        /// state).
        #[arg(long)]
        json: bool,
    },
    /// Forget saved states: the next run reads everything again.
    Reset {
        /// The pipeline file.
        file: PathBuf,
        /// The pipeline whose environment to reset.
        #[arg(long)]
        pipeline: String,
        /// Only this task's state.
        #[arg(long)]
        task: Option<String>,
    },
}

fn load_plan(cli: &Cli, file: &Path) -> Result<Option<Plan>> {
    let reg = cli.registry();
    for r in reg.refused() {
        eprintln!("warning: {r}");
    }
    match load(file, &reg) {
        Ok(p) => Ok(Some(p)),
        Err(d) => {
            eprintln!("{d}");
            eprintln!(
                "{} problem(s) in {}; nothing was run.",
                d.0.len(),
                file.display()
            );
            Ok(None)
        }
    }
}

/// Progress: bars on a terminal, log lines otherwise.
struct Progress {
    bars: Option<(MultiProgress, Mutex<BTreeMap<String, ProgressBar>>)>,
    format: LogFormat,
    quiet: bool,
    last_line: Mutex<BTreeMap<String, Instant>>,
    /// Each task's own pages, requests and retries as last reported, for its bar.
    counts: Mutex<BTreeMap<String, TaskCounts>>,
}

impl Progress {
    fn new(format: LogFormat, quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| (MultiProgress::new(), Mutex::new(BTreeMap::new())));
        Self {
            bars,
            format,
            quiet,
            last_line: Mutex::new(BTreeMap::new()),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, event: &str, fields: serde_json::Value) {
        if self.quiet || self.bars.is_some() {
            return;
        }
        match self.format {
            LogFormat::Json => {
                let mut v = fields;
                v["event"] = json!(event);
                v["ts"] = json!(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0)
                );
                eprintln!("{v}");
            }
            LogFormat::Text => {
                let mut s = format!("event={event}");
                if let Some(m) = fields.as_object() {
                    for (k, v) in m {
                        match v {
                            serde_json::Value::String(t) if t.contains(' ') => {
                                s.push_str(&format!(" {k}={t:?}"))
                            }
                            serde_json::Value::String(t) => s.push_str(&format!(" {k}={t}")),
                            other => s.push_str(&format!(" {k}={other}")),
                        }
                    }
                }
                eprintln!("{s}");
            }
        }
    }
}

impl RunObserver for Progress {
    fn task_started(&self, pipeline: &str, task: &str, mode: SyncMode) {
        if let Some((mp, bars)) = &self.bars {
            let pb = mp.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<34} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.set_prefix(format!("{pipeline}/{task}"));
            pb.set_message(format!("{} — starting", mode.as_str()));
            pb.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut b) = bars.lock() {
                b.insert(format!("{pipeline}/{task}"), pb);
            }
        }
        self.line(
            "task_started",
            json!({ "pipeline": pipeline, "task": task, "mode": mode.as_str() }),
        );
    }

    fn task_progress(&self, pipeline: &str, task: &str, records: u64, commits: u64) {
        let key = format!("{pipeline}/{task}");
        if let Some((_, bars)) = &self.bars {
            if let Ok(b) = bars.lock()
                && let Some(pb) = b.get(&key)
            {
                let secs = pb.elapsed().as_secs_f64().max(0.001);
                let c = self
                    .counts
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&key).copied())
                    .unwrap_or_default();
                pb.set_message(format!(
                    "{records} records, {commits} commits, {} pages, {} requests, {} retries, {:.0} rec/s",
                    c.pages,
                    c.requests,
                    c.retries,
                    records as f64 / secs
                ));
            }
            return;
        }
        // At most one line every two seconds per task.
        let due = self.last_line.lock().map(|mut m| {
            let now = Instant::now();
            let due = m
                .get(&key)
                .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(2));
            if due {
                m.insert(key.clone(), now);
            }
            due
        });
        if due.unwrap_or(true) {
            let c = self
                .counts
                .lock()
                .ok()
                .and_then(|m| m.get(&key).copied())
                .unwrap_or_default();
            self.line("task_progress", json!({ "pipeline": pipeline, "task": task, "records": records, "commits": commits,
                                               "pages": c.pages, "requests": c.requests, "retries": c.retries }));
        }
    }

    fn task_counts(&self, pipeline: &str, task: &str, counts: TaskCounts) {
        if let Ok(mut m) = self.counts.lock() {
            m.insert(format!("{pipeline}/{task}"), counts);
        }
    }

    fn task_finished(&self, o: &TaskOutcome) {
        if let Some((_, bars)) = &self.bars
            && let Ok(b) = bars.lock()
            && let Some(pb) = b.get(&format!("{}/{}", o.pipeline, o.task))
        {
            match &o.error {
                None => pb.finish_with_message(format!(
                    "done: {} records, {} pages in {:.1}s{}",
                    o.records,
                    o.pages,
                    o.seconds,
                    o.deleted
                        .map(|n| format!(", {n} marked deleted"))
                        .unwrap_or_default()
                )),
                Some(e) => pb.finish_with_message(format!("FAILED: {}", scrub(e))),
            }
        }
        self.line(
            "task_finished",
            json!({ "pipeline": o.pipeline, "task": o.task, "records": o.records, "commits": o.commits, "pages": o.pages,
                    "requests": o.requests, "retries": o.retries, "seconds": (o.seconds * 100.0).round() / 100.0, "deleted": o.deleted, "error": o.error.as_deref().map(scrub) }),
        );
    }

    fn plugin_log(&self, pipeline: &str, task: &str, level: LogLevel, message: &str) {
        if level <= LogLevel::Warn {
            let message = &scrub(message);
            if let Some((mp, _)) = &self.bars {
                let _ = mp.println(format!("{pipeline}/{task}: {message}"));
            }
            self.line("plugin_log", json!({ "pipeline": pipeline, "task": task, "level": format!("{level:?}").to_lowercase(), "message": message }));
        }
    }
}

/// A run's texts may quote a gateway that echoed a request: every one passes the
/// process-wide scrubber (the credentials and tokens of every connection of the run).
fn scrub(text: &str) -> String {
    ionport_core::scrub::Scrubber::process().scrub(text)
}

/// The width the summary table fits: the terminal's, else `COLUMNS`; none (no wrapping)
/// when stdout is a file or a pipe, so that each task stays one line for scripts.
fn summary_width() -> Option<u16> {
    let term = console::Term::stdout();
    if term.is_term()
        && let Some((_, cols)) = term.size_checked()
    {
        return Some(cols);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|&c| c > 0)
}

fn print_summary(s: &RunSummary, seconds: f64) {
    use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(vec![
        "TASK", "MODE", "RECORDS", "PAGES", "REQUESTS", "RETRIES", "SECONDS", "STATUS",
    ]);
    for t in &s.tasks {
        let status = match &t.error {
            None => "ok".to_string(),
            Some(e) if t.records > 0 => format!(
                "FAILED after committing {} records in {} checkpoints (a rerun resumes there): {}",
                t.records,
                t.commits,
                scrub(e)
            ),
            Some(e) => format!("FAILED: {}", scrub(e)),
        };
        table.add_row(vec![
            format!("{}/{}", t.pipeline, t.task),
            t.sync_mode.to_string(),
            t.records.to_string(),
            t.pages.to_string(),
            t.requests.to_string(),
            t.retries.to_string(),
            format!("{:.1}", t.seconds),
            status,
        ]);
    }
    for (p, e) in &s.failed_pipelines {
        table.add_row(vec![
            p.clone(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            format!("FAILED before its tasks started: {}", scrub(e)),
        ]);
    }
    // Only the status wraps: a task's name and numbers stay whole on its first line.
    for (i, col) in table.column_iter_mut().enumerate() {
        col.set_padding(if i == 0 { (0, 1) } else { (1, 1) });
        if (2..=6).contains(&i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
        if i < 7 {
            col.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    match summary_width() {
        Some(w) => {
            table
                .set_width(w)
                .set_content_arrangement(ContentArrangement::Dynamic);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    println!();
    println!("{}", table.trim_fmt());
    print_schema_changes(s);
    // Tasks that keep deletions (`deletes = "soft"`): rows marked deleted in this run.
    for t in s.tasks.iter().filter(|t| t.error.is_none()) {
        if let Some(n) = t.deleted {
            println!("deleted: {n} rows marked in {}/{}", t.pipeline, t.task);
        }
    }
    // The tenants' daily budgets, then the totals (the last line).
    for b in &s.budgets {
        if let (Some(limit), Some(left)) = (b.limit, b.left) {
            println!(
                "daily budget of {}: {} of {limit} used, {left} left ({} UTC)",
                b.tenant, b.used, b.day
            );
        }
    }
    let records: u64 = s.tasks.iter().map(|t| t.records).sum();
    let failed = s.tasks.iter().filter(|t| t.error.is_some()).count() + s.failed_pipelines.len();
    println!(
        "{} task(s), {records} records, {} HTTP requests, {} retries, {seconds:.1}s; {}",
        s.tasks.len(),
        s.http_requests,
        s.retries,
        if failed == 0 {
            "all succeeded".to_string()
        } else {
            format!("{failed} FAILED")
        }
    );
}

/// One line per schema change of a task's stream (`schema_changes`), under the table.
fn print_schema_changes(s: &RunSummary) {
    for t in &s.tasks {
        for c in &t.schema_changes {
            println!("schema change in {}/{}: {c}", t.pipeline, t.task);
        }
    }
}

/// The summary as JSON (`run --summary FILE`): what the table shows, errors scrubbed alike.
fn summary_json(s: &RunSummary, seconds: f64, cancelled: bool) -> serde_json::Value {
    let tasks: Vec<serde_json::Value> = s
        .tasks
        .iter()
        .map(|t| {
            json!({
                "pipeline": t.pipeline, "task": t.task, "sync_mode": t.sync_mode,
                "records": t.records, "commits": t.commits, "pages": t.pages,
                "requests": t.requests, "retries": t.retries, "seconds": t.seconds, "deleted": t.deleted,
                "ok": t.error.is_none(), "error": t.error.as_deref().map(scrub),
                "schema_changes": t.schema_changes,
            })
        })
        .collect();
    let failed_pipelines: Vec<serde_json::Value> = s
        .failed_pipelines
        .iter()
        .map(|(p, e)| json!({"pipeline": p, "error": scrub(e)}))
        .collect();
    json!({
        "ok": s.ok() && !cancelled,
        "cancelled": cancelled,
        "seconds": seconds,
        "records": s.tasks.iter().map(|t| t.records).sum::<u64>(),
        "http_requests": s.http_requests,
        "retries": s.retries,
        "unauthorized": s.unauthorized,
        "rate_limited": s.rate_limited,
        "tasks": tasks,
        "failed_pipelines": failed_pipelines,
        "budgets": s.budgets,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn ctrl_c(cancel: Cancel) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ncancelling: tasks stop after their current page (Ctrl-C again to quit at once)"
            );
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

/// `ionport run`.
pub fn run_cmd(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let Some(plan) = load_plan(cli, &args.file)? else {
        return Ok(ExitCode::from(2));
    };
    if let Some(p) = &args.pipeline
        && !plan.pipelines.iter().any(|x| &x.name == p)
    {
        bail!("{} has no pipeline '{p}'", args.file.display());
    }
    let rt = runtime()?;
    let progress = Arc::new(Progress::new(args.log_format, args.quiet));
    let opts = RunOptions {
        pipeline: args.pipeline.clone(),
        task: args.task.clone(),
        full_refresh: args.full_refresh,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let cancel = Cancel::default();
    let summary = rt.block_on(async {
        ctrl_c(cancel.clone());
        run(&plan, &opts, progress.clone(), cancel.clone()).await
    });
    if let Some((mp, _)) = &progress.bars {
        let _ = mp.clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    print_summary(&summary, seconds);
    if let Some(file) = &args.summary {
        let doc = summary_json(&summary, seconds, cancel.is_cancelled());
        std::fs::write(file, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing the summary to {}", file.display()))?;
    }
    Ok(if summary.ok() && !cancel.is_cancelled() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// When a scheduled pipeline runs next. Intervals count on the monotonic clock (setting
/// the clock does not move them); cron times are wall-clock times in UTC, which is what
/// they name, so they are compared with the wall clock at every wake-up.
#[derive(Debug, Clone, Copy)]
enum Due {
    Elapsed(Instant),
    Wall(SystemTime),
}

impl Due {
    /// The first run: an interval runs at once, a cron expression at its next match.
    fn first(schedule: &Schedule) -> Result<Self> {
        Ok(match schedule {
            Schedule::Every(_) => Due::Elapsed(Instant::now()),
            Schedule::Cron { .. } => Due::Wall(
                schedule
                    .next_after(SystemTime::now())
                    .map_err(anyhow::Error::msg)?,
            ),
        })
    }

    /// The run after one that started at `started`: an interval later, or the first match
    /// after the run ended (a match missed while the run lasted is skipped, not queued).
    fn after(schedule: &Schedule, started: Instant) -> Result<Self> {
        Ok(match schedule {
            Schedule::Every(every) => Due::Elapsed(started + *every),
            Schedule::Cron { .. } => Due::Wall(
                schedule
                    .next_after(SystemTime::now())
                    .map_err(anyhow::Error::msg)?,
            ),
        })
    }

    fn wait(self) -> Duration {
        match self {
            Due::Elapsed(at) => at.saturating_duration_since(Instant::now()),
            Due::Wall(at) => at.duration_since(SystemTime::now()).unwrap_or_default(),
        }
    }

    fn wall(self) -> SystemTime {
        match self {
            Due::Elapsed(_) => SystemTime::now() + self.wait(),
            Due::Wall(at) => at,
        }
    }
}

/// `ionport daemon`: runs each scheduled pipeline on its schedule until Ctrl-C.
pub fn daemon_cmd(cli: &Cli, args: &DaemonArgs) -> Result<ExitCode> {
    let Some(plan) = load_plan(cli, &args.file)? else {
        return Ok(ExitCode::from(2));
    };
    let scheduled: Vec<(String, Schedule)> = plan
        .pipelines
        .iter()
        .filter_map(|p| p.schedule.clone().map(|s| (p.name.clone(), s)))
        .collect();
    if scheduled.is_empty() {
        bail!(
            "{} has no pipeline with a `schedule`; nothing for the daemon to do",
            args.file.display()
        );
    }
    let rt = runtime()?;
    let progress = Arc::new(Progress::new(args.log_format, false));
    let cancel = Cancel::default();
    rt.block_on(async {
        ctrl_c(cancel.clone());
        let mut next: BTreeMap<&str, Due> = BTreeMap::new();
        for (name, schedule) in &scheduled {
            let due = Due::first(schedule)?;
            announce(name, schedule, due);
            next.insert(name, due);
        }
        while !cancel.is_cancelled() {
            for (name, schedule) in &scheduled {
                if next.get(name.as_str()).is_some_and(|d| d.wait().is_zero()) {
                    let opts = RunOptions {
                        pipeline: Some(name.clone()),
                        ..RunOptions::default()
                    };
                    let started = Instant::now();
                    let summary = run(&plan, &opts, progress.clone(), cancel.clone()).await;
                    print_summary(&summary, started.elapsed().as_secs_f64());
                    let due = Due::after(schedule, started)?;
                    announce(name, schedule, due);
                    next.insert(name, due);
                }
            }
            let wait = next
                .values()
                .map(|d| d.wait())
                .min()
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(1));
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn announce(name: &str, schedule: &Schedule, due: Due) {
    println!(
        "{name}: next run at {} ({schedule})",
        humantime::format_rfc3339_seconds(due.wall())
    );
}

/// `ionport state`.
pub fn state_cmd(cli: &Cli, cmd: &StateCommand) -> Result<ExitCode> {
    match cmd {
        StateCommand::Show {
            file,
            pipeline,
            json,
        } => {
            let Some(plan) = load_plan(cli, file)? else {
                return Ok(ExitCode::from(2));
            };
            let mut seen = std::collections::BTreeSet::new();
            let mut shown = Vec::new();
            for p in &plan.pipelines {
                if pipeline.as_ref().is_some_and(|n| n != &p.name)
                    || !seen.insert(p.environment.clone())
                {
                    continue;
                }
                let st = states(p).map_err(anyhow::Error::msg)?;
                if *json {
                    shown.push(json!({
                        "environment": p.environment,
                        "pipeline": p.name,
                        "states": st,
                    }));
                    continue;
                }
                println!("environment {} (pipeline {}):", p.environment, p.name);
                if st.is_empty() {
                    println!("  (no saved state)");
                }
                for (stream, v) in st {
                    println!("  {stream:<28} {v}");
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Reset {
            file,
            pipeline,
            task,
        } => {
            let Some(plan) = load_plan(cli, file)? else {
                return Ok(ExitCode::from(2));
            };
            let Some(p) = plan.pipelines.iter().find(|p| &p.name == pipeline) else {
                bail!("{} has no pipeline '{pipeline}'", file.display());
            };
            let d = open_destination(p).map_err(anyhow::Error::msg)?;
            ionport_core::pipeline::partition::reset_task_states(d.as_ref(), task.as_deref())?;
            println!(
                "reset the state of {} in environment {}",
                task.as_deref()
                    .map_or("every stream".to_string(), |t| format!("stream {t}")),
                p.environment
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
