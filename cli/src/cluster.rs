//! `ionport worker` and `ionport cluster submit|status`: many workers on one coordinator
//! (Postgres). The mechanism is `ionport-cluster`'s; see docs/scale-out.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ionport_cluster::Coordinator;
use ionport_cluster::worker::{WorkerConfig, host_name, run_worker};
use ionport_core::pipeline::{Cancel, load};

use crate::Cli;

/// Where the coordinator is.
#[derive(Debug, Clone, Args)]
pub struct CoordinatorOpts {
    /// The coordinator: a Postgres URL (`postgres://user@host:5432/db`); a password is
    /// better given in PGPASSWORD or ~/.pgpass than in the URL.
    #[arg(long, env = "IONPORT_COORDINATOR", value_name = "URL")]
    pub coordinator: String,
    /// The coordinator's schema in that database (created on first use): one per cluster.
    #[arg(
        long,
        env = "IONPORT_COORDINATOR_SCHEMA",
        default_value = "ionport_cluster",
        value_name = "NAME"
    )]
    pub coordinator_schema: String,
}

impl CoordinatorOpts {
    fn connect(&self) -> Result<Coordinator> {
        Coordinator::connect(&self.coordinator, &self.coordinator_schema).map_err(Into::into)
    }
}

/// `ionport worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorOpts,
    /// This worker's id in the cluster (default: HOST-PID).
    #[arg(long)]
    pub id: Option<String>,
    /// Units of work (tasks) run at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub slots: u16,
    /// How long a lease lasts without renewal (renewed every third of it): how long a
    /// dead worker's units wait before another worker takes them over.
    #[arg(long, default_value = "30s", value_parser = lease)]
    pub lease: Duration,
    /// How often an idle worker looks for work and due schedule ticks.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
}

fn lease(s: &str) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?}: a lease is at least 1s"));
    }
    Ok(d)
}

/// `ionport cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Register the pipelines of a pipeline file with the coordinator (validated first);
    /// scheduled ones then run on their schedule, once across the cluster.
    Submit {
        /// The pipeline file (TOML). Workers read the text stored now; relative paths
        /// resolve from the file's directory, on each worker's machine.
        file: PathBuf,
        #[command(flatten)]
        coordinator: CoordinatorOpts,
        /// Also run every pipeline of the file once now (scheduled or not).
        #[arg(long)]
        now: bool,
    },
    /// Workers with their heartbeats, what each runs, lease ages, queued work, quota shares.
    Status {
        #[command(flatten)]
        coordinator: CoordinatorOpts,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// How many finished units to show.
        #[arg(long, default_value_t = 20)]
        recent: u32,
    },
}

/// `ionport worker`: runs until SIGTERM or Ctrl-C, then hands its units back.
pub fn worker_cmd(cli: &Cli, args: &WorkerArgs) -> Result<ExitCode> {
    let registry = Arc::new(cli.registry());
    for r in registry.refused() {
        eprintln!("warning: {r}");
    }
    let config = WorkerConfig {
        url: args.coordinator.coordinator.clone(),
        schema: args.coordinator.coordinator_schema.clone(),
        id: args
            .id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id())),
        slots: usize::from(args.slots),
        lease: args.lease,
        poll: args.poll,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stop = Cancel::default();
    rt.spawn(shutdown_signal(stop.clone()));
    run_worker(&config, registry, rt.handle(), stop)?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `stop` on SIGTERM or Ctrl-C: the worker stops its runs between pages and hands
/// their units back.
async fn shutdown_signal(stop: Cancel) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping: runs stop after their current page and are handed back");
    stop.cancel();
}

/// `ionport cluster ...`.
pub fn cluster_cmd(cli: &Cli, cmd: &ClusterCommand) -> Result<ExitCode> {
    match cmd {
        ClusterCommand::Submit {
            file,
            coordinator,
            now,
        } => {
            let file = std::fs::canonicalize(file)
                .with_context(|| format!("cannot read the pipeline file {}", file.display()))?;
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the pipeline file {}", file.display()))?;
            let registry = cli.registry();
            let plan = match load(&file, &registry) {
                Ok(p) => p,
                Err(d) => {
                    eprintln!("{d}");
                    eprintln!(
                        "{} problem(s) in {}; nothing was submitted.",
                        d.0.len(),
                        file.display()
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            if plan.pipelines.is_empty() {
                bail!("{} has no pipeline to submit", file.display());
            }
            let fired = coordinator.connect()?.submit(&plan, &source, *now)?;
            for p in &plan.pipelines {
                let when = match (&p.schedule, fired.contains(&p.name)) {
                    (Some(s), true) => format!("{s}; queued now"),
                    (Some(s), false) => s.to_string(),
                    (None, true) => "queued now".into(),
                    (None, false) if *now => {
                        "not queued: a run of it is still queued or running".into()
                    }
                    (None, false) => "no schedule: runs with `cluster submit --now`".into(),
                };
                println!("submitted {} ({} task(s); {when})", p.name, p.tasks.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Status {
            coordinator,
            json,
            recent,
        } => {
            let st = coordinator.connect()?.status(i64::from(*recent))?;
            let text = if *json {
                serde_json::to_string_pretty(&st)? + "\n"
            } else {
                status_text(&st)
            };
            // A reader that stops early (`| head`) is not an error.
            match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// A unit's partition as `cluster status` shows it after the task: ` [1/3]` (from 0).
fn part_text(u: &ionport_cluster::UnitRow) -> String {
    u.partition
        .map(|p| format!(" [{p}/{}]", u.partitions))
        .unwrap_or_default()
}

fn status_text(st: &ionport_cluster::Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "coordinator schema {}", st.schema);
    let _ = writeln!(out, "\npipelines:");
    for p in &st.pipelines {
        let _ = writeln!(
            out,
            "  {:<24} {:<20} {} tick(s), last {}",
            p.name,
            p.schedule.as_deref().unwrap_or("(no schedule)"),
            p.ticks,
            p.last_tick.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "\nworkers:");
    for w in &st.workers {
        let state = if w.stopped { "stopped" } else { "up" };
        let _ = writeln!(
            out,
            "  {:<28} {state:<8} heartbeat {:.1}s ago, {} slot(s), runs {:?} ({} pid {})",
            w.id, w.heartbeat_age_secs, w.slots, w.running, w.host, w.pid
        );
    }
    let _ = writeln!(out, "\nqueued and running:");
    if st.open.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for u in &st.open {
        let lease = match (u.lease_age_secs, u.lease_left_secs) {
            (Some(age), Some(left)) => format!("lease held {age:.1}s, {left:.1}s left"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  #{:<6} {}/{}{} tick {} {} {} attempt {} {lease}",
            u.id,
            u.pipeline,
            u.task,
            part_text(u),
            u.tick,
            u.state,
            u.worker.as_deref().unwrap_or("-"),
            u.attempts
        );
    }
    if !st.quota_shares.is_empty() {
        let _ = writeln!(out, "\nquota shares (per tenant, live):");
        for q in &st.quota_shares {
            let _ = writeln!(
                out,
                "  {:<40} {:<20} {:.1} of {} per {}s (lease {:.1}s left)",
                q.tenant, q.worker, q.share, q.quota, q.per_secs, q.lease_left_secs
            );
        }
    }
    let _ = writeln!(out, "\nrecently finished:");
    for u in &st.recent {
        let _ = writeln!(
            out,
            "  #{:<6} {}/{}{} tick {} {} by {} after {} attempt(s), {} records{}",
            u.id,
            u.pipeline,
            u.task,
            part_text(u),
            u.tick,
            u.state,
            u.worker.as_deref().unwrap_or("-"),
            u.attempts,
            u.records.unwrap_or(0),
            u.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    out
}
