//! `ionport worker`: fire due ticks, claim units under a lease, run each through core's
//! `pipeline::run` (the one path every run takes), renew the leases with the heartbeat,
//! and on shutdown stop the runs between pages and hand their units back.
//!
//! Threads: the caller's thread runs the loop (claims, ticks, ends of units) on one
//! coordinator session; a heartbeat thread renews the leases on a session of its own, so
//! that a slow claim never delays a renewal; a watchdog that never touches the network
//! stops every unit when renewals stop succeeding; the units run on the caller's tokio
//! runtime.
//! A unit whose lease is lost — not renewed, or not renewable for two thirds of a lease
//! because the coordinator cannot be reached — is cancelled at once: another worker may take it
//! over, and the destination's writer lock keeps the two from writing at the same time.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ionport_core::pipeline::run::Quiet;
use ionport_core::pipeline::{Cancel, RunOptions, RunSummary, run};
use ionport_core::plugin::PluginRegistry;

use crate::coordinator::load_plan;
use crate::quota::{Brokers, QuotaLeases};
use crate::tokens::CoordinatorTokens;
use crate::{Claimed, ClusterError, Coordinator, Outcome};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator's URL.
    pub url: String,
    /// The coordinator's schema.
    pub schema: String,
    /// This worker's id (unique in the cluster).
    pub id: String,
    /// Units run at once.
    pub slots: usize,
    /// How long a lease lasts without a renewal: the bound on a dead worker's units
    /// waiting for another. Renewed every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work and due ticks.
    pub poll: Duration,
}

/// A unit being run, as the loop and the heartbeat share it.
#[derive(Debug)]
struct Running {
    cancel: Cancel,
    lost: bool,
    /// When it was claimed: a heartbeat that asked before then cannot know of it.
    claimed: Instant,
}

type RunningUnits = Arc<Mutex<HashMap<i64, Running>>>;

fn units(r: &RunningUnits) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
    // A poisoned map still holds the truth about what runs.
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a worker until `stop` is cancelled, then hands its units back and returns.
pub fn run_worker(
    config: &WorkerConfig,
    registry: Arc<PluginRegistry>,
    rt: &tokio::runtime::Handle,
    stop: Cancel,
) -> Result<(), ClusterError> {
    let mut coord = connect(config)?;
    coord.register_worker(&config.id, &host_name(), std::process::id(), config.slots)?;
    tracing::info!(target: "ionport::cluster", worker = %config.id, slots = config.slots, lease = ?config.lease, "worker started");
    let running: RunningUnits = Arc::default();
    let renewed = Arc::new(Mutex::new(Instant::now()));
    // Every tenant quota this process's connections use is leased from the coordinator,
    // and every tenant's daily budget is counted for the whole cluster.
    let brokers = Brokers::install(&config.url, &config.schema);
    let quota = brokers.quota.clone();
    let heartbeat = {
        let (config, running, stop, renewed, quota) = (
            config.clone(),
            running.clone(),
            stop.clone(),
            renewed.clone(),
            quota.clone(),
        );
        std::thread::spawn(move || heartbeat_loop(&config, &running, &stop, &renewed, &quota))
    };
    let watchdog = {
        let (config, running, stop, quota) =
            (config.clone(), running.clone(), stop.clone(), quota.clone());
        std::thread::spawn(move || watchdog_loop(&config, &running, &stop, &renewed, &quota))
    };
    let (done_tx, done_rx) = mpsc::channel::<(Claimed, RunSummary)>();
    // Ends of units not yet recorded (the coordinator was unreachable).
    let mut unrecorded: Vec<(Claimed, RunSummary, bool)> = Vec::new();
    let mut healthy = true;
    loop {
        if !healthy {
            match connect(config) {
                Ok(c) => {
                    coord = c;
                    healthy = true;
                }
                Err(e) => {
                    tracing::warn!(target: "ionport::cluster", "coordinator unreachable: {e}")
                }
            }
        }
        if healthy && !stop.is_cancelled() {
            if let Err(e) = step(config, &mut coord, &registry, rt, &running, &done_tx) {
                tracing::warn!(target: "ionport::cluster", "{e}");
                healthy = false;
            }
        }
        if stop.is_cancelled() {
            // Runs stop between pages; what they committed stays, the rest is handed back.
            for r in units(&running).values() {
                r.cancel.cancel();
            }
        }
        // Wait for a unit to end (or the next poll), then record every end.
        if let Ok(d) = done_rx.recv_timeout(config.poll) {
            let lost = units(&running).remove(&d.0.id).is_none_or(|r| r.lost);
            unrecorded.push((d.0, d.1, lost));
        }
        while let Ok(d) = done_rx.try_recv() {
            let lost = units(&running).remove(&d.0.id).is_none_or(|r| r.lost);
            unrecorded.push((d.0, d.1, lost));
        }
        if healthy {
            while let Some((unit, summary, lost)) = unrecorded.pop() {
                if let Err(e) = record_end(config, &mut coord, &unit, &summary, lost, &stop) {
                    tracing::warn!(target: "ionport::cluster", "{e}");
                    unrecorded.push((unit, summary, lost));
                    healthy = false;
                    break;
                }
            }
        }
        if stop.is_cancelled() && units(&running).is_empty() && unrecorded.is_empty() {
            break;
        }
        if stop.is_cancelled() && !healthy && units(&running).is_empty() {
            // Nothing more can be recorded; the leases lapse and others take over.
            break;
        }
    }
    if healthy {
        coord.stop_worker(&config.id)?;
    }
    let _ = heartbeat.join();
    let _ = watchdog.join();
    drop(brokers);
    tracing::info!(target: "ionport::cluster", worker = %config.id, "worker stopped");
    Ok(())
}

/// One turn of the loop: due ticks, then claims while a slot is free.
fn step(
    config: &WorkerConfig,
    coord: &mut Coordinator,
    registry: &Arc<PluginRegistry>,
    rt: &tokio::runtime::Handle,
    running: &RunningUnits,
    done: &mpsc::Sender<(Claimed, RunSummary)>,
) -> Result<(), ClusterError> {
    for (pipeline, at) in coord.fire_due(&config.id)? {
        tracing::info!(target: "ionport::cluster", %pipeline, tick = %humantime::format_rfc3339_millis(at), "tick fired");
    }
    while units(running).len() < config.slots {
        let asked = Instant::now();
        let Some(unit) = coord.claim(&config.id, config.lease)? else {
            break;
        };
        // The coordinator's cost of a unit: this claim and its end (`end_ms`).
        let claim_ms = asked.elapsed().as_secs_f64() * 1000.0;
        let tick = humantime::format_rfc3339_millis(unit.fire_at).to_string();
        let partition = unit
            .partition
            .map(|p| format!("{}/{}", p.index, p.count))
            .unwrap_or_default();
        tracing::info!(target: "ionport::cluster", unit = unit.id, pipeline = %unit.pipeline, task = %unit.task, %partition, %tick, attempt = unit.attempt, claim_ms, "unit claimed");
        let plan = match load_plan(&unit, registry) {
            Ok(p) => p,
            Err(e) => {
                coord.finish(&unit, &config.id, &Outcome::Failed(0, e.to_string()))?;
                continue;
            }
        };
        let cancel = Cancel::default();
        units(running).insert(
            unit.id,
            Running {
                cancel: cancel.clone(),
                lost: false,
                claimed: Instant::now(),
            },
        );
        let done = done.clone();
        let tokens = Arc::new(CoordinatorTokens::new(&config.url, &config.schema))
            as Arc<dyn ionport_core::token::TokenStoreProvider>;
        rt.spawn(async move {
            let mut opts = RunOptions {
                pipeline: Some(unit.pipeline.clone()),
                task: Some(unit.task.clone()),
                partition: unit.partition,
                ..RunOptions::default()
            };
            // One token per credential across the cluster, kept in the coordinator.
            opts.connection.token.shared_store = Some(tokens);
            let summary = run(&plan, &opts, Arc::new(Quiet), cancel).await;
            let _ = done.send((unit, summary));
        });
    }
    Ok(())
}

/// Records how a unit ended: handed back when this worker is stopping and the run was
/// cut short, nothing when its lease was lost (the worker that took it over records it),
/// else done or failed.
fn record_end(
    config: &WorkerConfig,
    coord: &mut Coordinator,
    unit: &Claimed,
    summary: &RunSummary,
    lost: bool,
    stop: &Cancel,
) -> Result<(), ClusterError> {
    let records: u64 = summary.tasks.iter().map(|t| t.records).sum();
    let fields = (unit.id, &unit.pipeline, &unit.task);
    if lost {
        tracing::warn!(target: "ionport::cluster", unit = fields.0, pipeline = %fields.1, task = %fields.2, "lease lost: the unit was stopped");
        return Ok(());
    }
    if stop.is_cancelled() && !summary.ok() {
        coord.hand_back(unit, &config.id)?;
        tracing::info!(target: "ionport::cluster", unit = fields.0, pipeline = %fields.1, task = %fields.2, records, "unit handed back");
        return Ok(());
    }
    // A task no longer in the pipeline file (submitted again without it) ran nothing:
    // that is no success.
    let ran = !summary.tasks.is_empty();
    let outcome = if summary.ok() && ran {
        Outcome::Done(records)
    } else {
        let why: Vec<String> = summary
            .tasks
            .iter()
            .filter_map(|t| t.error.clone())
            .chain(
                summary
                    .failed_pipelines
                    .iter()
                    .map(|(p, e)| format!("{p}: {e}")),
            )
            .collect();
        let why = if why.is_empty() {
            format!(
                "pipeline '{}' has no task '{}' any more (the file was submitted again without it)",
                unit.pipeline, unit.task
            )
        } else {
            why.join("; ")
        };
        Outcome::Failed(
            records,
            ionport_core::scrub::Scrubber::process().scrub(&why),
        )
    };
    let asked = Instant::now();
    let held = coord.finish(unit, &config.id, &outcome)?;
    let end_ms = asked.elapsed().as_secs_f64() * 1000.0;
    let tick = humantime::format_rfc3339_millis(unit.fire_at).to_string();
    match (&outcome, held) {
        (_, false) => {
            tracing::warn!(target: "ionport::cluster", unit = fields.0, pipeline = %fields.1, task = %fields.2, "the unit ended after another worker took it over")
        }
        (Outcome::Done(n), true) => {
            tracing::info!(target: "ionport::cluster", unit = fields.0, pipeline = %fields.1, task = %fields.2, %tick, records = n, end_ms, "unit done")
        }
        (Outcome::Failed(n, e), true) => {
            tracing::warn!(target: "ionport::cluster", unit = fields.0, pipeline = %fields.1, task = %fields.2, %tick, records = n, error = %e, "unit failed")
        }
    }
    Ok(())
}

/// A worker's session: connecting and unanswered sends bounded by a third of a lease.
fn connect(config: &WorkerConfig) -> Result<Coordinator, ClusterError> {
    Coordinator::connect_bounded(&config.url, &config.schema, Some(config.lease / 3))
}

/// Renews the leases every third of a lease until the worker stops, and cancels a unit
/// whose lease was not renewed (it lapsed: another worker may have it). `renewed` is when
/// the last renewal that succeeded was asked.
fn heartbeat_loop(
    config: &WorkerConfig,
    running: &RunningUnits,
    stop: &Cancel,
    renewed: &Mutex<Instant>,
    quota: &QuotaLeases,
) {
    let every = config.lease / 3;
    let mut coord: Option<Coordinator> = None;
    loop {
        // Renew even while stopping: the units being handed back still run.
        if stop.is_cancelled() && units(running).is_empty() {
            return;
        }
        if coord.is_none() {
            coord = connect(config).ok();
        }
        let asked = Instant::now();
        match coord
            .as_mut()
            .map(|c| c.heartbeat(&config.id, config.lease))
        {
            Some(Ok(held)) => {
                let renew_ms = asked.elapsed().as_secs_f64() * 1000.0;
                tracing::debug!(target: "ionport::cluster", renew_ms, units = held.len(), "leases renewed");
                // From before the renewal was asked: the database's new lease ends later.
                *renewed.lock().unwrap_or_else(|p| p.into_inner()) = asked;
                for (id, r) in units(running).iter_mut() {
                    if !held.contains(id) && !r.lost && r.claimed < asked {
                        r.lost = true;
                        r.cancel.cancel();
                    }
                }
                if let Some(c) = coord.as_mut()
                    && let Err(e) = quota.renew(c, &config.id, config.lease)
                {
                    tracing::warn!(target: "ionport::cluster", "quota shares not renewed: {e}");
                    coord = None;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(target: "ionport::cluster", "heartbeat failed: {e}");
                coord = None;
            }
            None => {}
        }
        // In short naps: a stopping worker must not wait a third of a lease to exit, and
        // a tenant newly used waits for its share.
        let next = asked + every.max(Duration::from_millis(50));
        while !(quota.has_joined() || stop.is_cancelled() && units(running).is_empty()) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Cancels every unit once no renewal succeeded for two thirds of a lease: before the
/// lease can lapse in the database, so that a worker taking a unit over finds this one
/// stopped (its last page may still be committing; the destination's writer lock covers
/// that). A thread of its own that never waits on the network, so that a renewal hanging
/// on a lost connection cannot delay it.
fn watchdog_loop(
    config: &WorkerConfig,
    running: &RunningUnits,
    stop: &Cancel,
    renewed: &Mutex<Instant>,
    quota: &QuotaLeases,
) {
    let deadline = config.lease - config.lease / 3;
    loop {
        if stop.is_cancelled() && units(running).is_empty() {
            return;
        }
        let since = renewed.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if since >= deadline {
            // The quota shares lapse with the leases: nothing more is sent.
            quota.suspend();
            for r in units(running).values_mut() {
                if !r.lost {
                    tracing::warn!(target: "ionport::cluster", "no lease renewal for {since:?}: stopping the unit");
                    r.lost = true;
                    r.cancel.cancel();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The machine's name, for `cluster status`.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
