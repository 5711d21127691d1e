//! Every statement run on the coordinator's tables. Times are the database's (`now()`),
//! so that the workers' clocks never decide a lease or a tick.
//!
//! Claims and ticks are serialized by one transaction-scoped advisory lock per coordinator
//! schema: a claim reads which destinations are busy and must not race another claim, and
//! a tick must be computed from the last one. Both are rare next to the units they start
//! (seconds to hours each), so one lock costs nothing measurable.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ionport_core::destination::DestinationConfig;
use ionport_core::pipeline::partition::ReadPartition;
use ionport_core::pipeline::{Plan, Schedule};
use postgres::{Client, NoTls};
use serde::Serialize;

use crate::{ClusterError, schema, ticks};

/// A connection to the coordinator: one Postgres session on one schema.
pub struct Coordinator {
    client: Client,
    /// The schema, quoted for SQL.
    s: String,
    /// The schema as named.
    schema: String,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A unit a worker claimed: what to run, and the file to run it from.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The unit's id.
    pub id: i64,
    /// The pipeline.
    pub pipeline: String,
    /// The task.
    pub task: String,
    /// The partition of the task, when it is read in partitions.
    pub partition: Option<ReadPartition>,
    /// The tick it belongs to.
    pub fire_at: SystemTime,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    /// The pipeline file's path as submitted.
    pub file: String,
    /// The pipeline file's text.
    pub source: String,
}

/// How an attempt at a unit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task succeeded with this many records committed.
    Done(u64),
    /// The task failed (records committed before the failure, why).
    Failed(u64, String),
}

/// A registered pipeline, as `cluster status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelineRow {
    /// Its name.
    pub name: String,
    /// The file it was submitted from.
    pub file: String,
    /// Its tasks.
    pub tasks: Vec<String>,
    /// Its schedule, when it has one.
    pub schedule: Option<String>,
    /// Its last tick (RFC 3339), if any.
    pub last_tick: Option<String>,
    /// Ticks fired so far.
    pub ticks: i64,
}

/// A worker, as `cluster status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerRow {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// Units it runs at once.
    pub slots: i32,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_secs: f64,
    /// Whether it stopped (gracefully).
    pub stopped: bool,
    /// The units it holds leases on.
    pub running: Vec<i64>,
}

/// A unit, as `cluster status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnitRow {
    /// Its id.
    pub id: i64,
    /// Its pipeline.
    pub pipeline: String,
    /// Its task.
    pub task: String,
    /// Its partition of the task (from 0), when the task is read in partitions.
    pub partition: Option<i32>,
    /// How many partitions the task is read in (1: the unit is the task whole).
    pub partitions: i32,
    /// Its tick (RFC 3339).
    pub tick: String,
    /// queued, running, done or failed.
    pub state: String,
    /// The worker holding (or that last held) it.
    pub worker: Option<String>,
    /// Attempts so far.
    pub attempts: i32,
    /// Seconds since the running attempt claimed it.
    pub lease_age_secs: Option<f64>,
    /// Seconds left on its lease (negative: lapsed, free for another worker).
    pub lease_left_secs: Option<f64>,
    /// Records committed (finished units).
    pub records: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One attempt at a unit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct History {
    /// The unit.
    pub unit: i64,
    /// The attempt.
    pub attempt: i32,
    /// The worker that made it.
    pub worker: String,
    /// done, failed, handed_back or lease_lost.
    pub outcome: String,
    /// Records committed, when known.
    pub records: Option<i64>,
}

/// A worker's share of a tenant's quota, as `cluster status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuotaRow {
    /// The tenant's API base (`iu/ti/`).
    pub tenant: String,
    /// The worker.
    pub worker: String,
    /// The tenant's quota: requests per `per_secs`.
    pub quota: i32,
    /// The quota's window.
    pub per_secs: f64,
    /// This worker's share: requests per `per_secs`.
    pub share: f64,
    /// Seconds left on the share's lease.
    pub lease_left_secs: f64,
}

/// What `cluster status` shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// The coordinator's schema.
    pub schema: String,
    /// Registered pipelines.
    pub pipelines: Vec<PipelineRow>,
    /// Workers (stopped ones too, most recent first).
    pub workers: Vec<WorkerRow>,
    /// Queued and running units.
    pub open: Vec<UnitRow>,
    /// The most recently finished units.
    pub recent: Vec<UnitRow>,
    /// The attempts of the units in `open` and `recent`.
    pub history: Vec<History>,
    /// The live shares of tenants' quotas, per tenant and worker.
    pub quota_shares: Vec<QuotaRow>,
}

/// What makes two pipelines' units share a writer: the destination they write to (a file
/// path, or a Postgres server, database and schema; no credentials).
pub fn destination_key(d: &DestinationConfig) -> String {
    match d {
        DestinationConfig::Sqlite { path }
        | DestinationConfig::Parquet { path }
        | DestinationConfig::Jsonl { path } => format!("{}:{}", d.kind(), path.display()),
        DestinationConfig::Postgres { url, schema } => {
            // The part after any `user:password@`.
            let rest = url.rsplit_once('@').map_or(url.as_str(), |(_, r)| r);
            let rest = rest.rsplit_once("://").map_or(rest, |(_, r)| r);
            let rest = rest.split('?').next().unwrap_or(rest);
            format!("postgres:{rest}#{schema}")
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

const UNIT_COLUMNS: &str = "id, pipeline, task, fire_at, state, worker, attempts, \
     CASE WHEN state = 'running' THEN EXTRACT(EPOCH FROM now() - claimed_at)::float8 END, \
     CASE WHEN state = 'running' THEN EXTRACT(EPOCH FROM lease_until - now())::float8 END, \
     records, error, part, parts";

fn unit_row(r: &postgres::Row) -> UnitRow {
    UnitRow {
        id: r.get(0),
        pipeline: r.get(1),
        task: r.get(2),
        tick: rfc3339(r.get(3)),
        state: r.get(4),
        worker: r.get(5),
        attempts: r.get(6),
        lease_age_secs: r.get(7),
        lease_left_secs: r.get(8),
        records: r.get(9),
        error: r.get(10),
        partition: (r.get::<_, i32>(12) > 1).then(|| r.get(11)),
        partitions: r.get(12),
    }
}

/// Whether the partitions of a stream may write to `d` side by side: Postgres, where their
/// upserts touch disjoint rows and each commits its own state row
/// ([`ionport_core::destination::open_partition_writer`]). SQLite keeps one writer.
pub fn partition_writers(d: &DestinationConfig) -> bool {
    matches!(d, DestinationConfig::Postgres { .. })
}

impl Coordinator {
    /// Connects to the coordinator at `url` and makes sure `schema`'s tables exist.
    pub fn connect(url: &str, schema: &str) -> Result<Self, ClusterError> {
        Self::connect_bounded(url, schema, None)
    }

    /// [`Coordinator::connect`], with connecting and every unanswered send bounded by
    /// `timeout` (TCP user timeout, where the OS has one): a worker's sessions must fail,
    /// not hang, when the network to the coordinator is lost.
    pub fn connect_bounded(
        url: &str,
        schema: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, ClusterError> {
        crate::check_schema_name(schema)?;
        let mut config: postgres::Config = url.parse()?;
        if let Some(t) = timeout {
            config.connect_timeout(t).tcp_user_timeout(t);
        }
        let mut client = config.connect(NoTls)?;
        schema::migrate(&mut client, schema)
            .map_err(|e| ClusterError::Db(ionport_core::scrub::Scrubber::process().scrub(&e)))?;
        Ok(Self {
            client,
            s: format!("\"{schema}\""),
            schema: schema.to_string(),
        })
    }

    fn lock(tx: &mut postgres::Transaction<'_>, schema: &str) -> Result<(), ClusterError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ionport-cluster'), hashtext($1))",
            &[&schema],
        )?;
        Ok(())
    }

    /// Registers (or replaces) every pipeline of `plan`, read from `source`. With `now`,
    /// each also fires once at once (unless it has a unit queued or running). Returns the
    /// pipelines fired.
    pub fn submit(
        &mut self,
        plan: &Plan,
        source: &str,
        now: bool,
    ) -> Result<Vec<String>, ClusterError> {
        let s = self.s.clone();
        let mut tx = self.client.transaction()?;
        Self::lock(&mut tx, &self.schema)?;
        let mut fired = Vec::new();
        for p in &plan.pipelines {
            let tasks: Vec<String> = p.tasks.iter().map(|t| t.spec.name.clone()).collect();
            let partitions: Vec<i32> = p
                .tasks
                .iter()
                .map(|t| i32::try_from(t.partitions).unwrap_or(1))
                .collect();
            let schedule = p.schedule.as_ref().map(Schedule::to_string);
            tx.execute(
                &format!(
                    "INSERT INTO {s}.pipelines (name, file, source, tasks, schedule, destination_key,
                       partitions, partition_writers)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (name) DO UPDATE SET file = $2, source = $3, tasks = $4,
                       schedule = $5, destination_key = $6, partitions = $7,
                       partition_writers = $8, submitted_at = now()"
                ),
                &[
                    &p.name,
                    &plan.file.display().to_string(),
                    &source,
                    &tasks,
                    &schedule,
                    &destination_key(&p.destination),
                    &partitions,
                    &partition_writers(&p.destination),
                ],
            )?;
            if now && !Self::has_open(&mut tx, &s, &p.name)? {
                let at: SystemTime = tx.query_one("SELECT now()", &[])?.get(0);
                Self::fire(&mut tx, &s, &p.name, at, "submit")?;
                fired.push(p.name.clone());
            }
        }
        tx.commit()?;
        Ok(fired)
    }

    fn has_open(
        tx: &mut postgres::Transaction<'_>,
        s: &str,
        pipeline: &str,
    ) -> Result<bool, ClusterError> {
        Ok(tx
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {s}.units WHERE pipeline = $1 AND state IN ('queued', 'running'))"
                ),
                &[&pipeline],
            )?
            .get(0))
    }

    /// Inserts a tick and a queued unit per task — per partition of a task read in
    /// partitions; `false` when the tick existed.
    fn fire(
        tx: &mut postgres::Transaction<'_>,
        s: &str,
        pipeline: &str,
        at: SystemTime,
        by: &str,
    ) -> Result<bool, ClusterError> {
        let n = tx.execute(
            &format!(
                "INSERT INTO {s}.ticks (pipeline, fire_at, created_by) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING"
            ),
            &[&pipeline, &at, &by],
        )?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            &format!(
                "INSERT INTO {s}.units (pipeline, task, part, parts, fire_at, destination_key, writer)
                 SELECT p.name, t.task, g.part, coalesce(t.parts, 1), $2, p.destination_key,
                        CASE WHEN coalesce(t.parts, 1) > 1 AND p.partition_writers
                             THEN t.task || '#' || g.part || '/' || t.parts END
                 FROM {s}.pipelines p,
                      unnest(p.tasks, p.partitions) AS t(task, parts),
                      generate_series(0, coalesce(t.parts, 1) - 1) AS g(part)
                 WHERE p.name = $1"
            ),
            &[&pipeline, &at],
        )?;
        Ok(true)
    }

    /// Fires every scheduled pipeline's due tick, once across the cluster: under the
    /// schema's lock, from the last tick in the table; a pipeline with a unit still queued
    /// or running fires no new tick (the daemon's rule: a run is never queued behind
    /// itself). Returns the ticks fired.
    pub fn fire_due(&mut self, worker: &str) -> Result<Vec<(String, SystemTime)>, ClusterError> {
        let s = self.s.clone();
        let mut tx = self.client.transaction()?;
        Self::lock(&mut tx, &self.schema)?;
        let rows = tx.query(
            &format!(
                "SELECT p.name, p.schedule, p.submitted_at, now(),
                        (SELECT max(fire_at) FROM {s}.ticks t WHERE t.pipeline = p.name),
                        EXISTS (SELECT 1 FROM {s}.units u WHERE u.pipeline = p.name AND u.state IN ('queued', 'running'))
                 FROM {s}.pipelines p WHERE p.schedule IS NOT NULL"
            ),
            &[],
        )?;
        let mut fired = Vec::new();
        for r in rows {
            let (name, text): (String, String) = (r.get(0), r.get(1));
            if r.get::<_, bool>(5) {
                continue;
            }
            // One pipeline's schedule that cannot be computed (validated when submitted,
            // so only a clock at its range's end) must not stop the others' ticks.
            let due = Schedule::parse(&text)
                .and_then(|schedule| ticks::due(&schedule, r.get(4), r.get(2), r.get(3)));
            let due = match due {
                Ok(d) => d,
                Err(message) => {
                    let e = ClusterError::Schedule {
                        pipeline: name.clone(),
                        message,
                    };
                    tracing::warn!(target: "ionport::cluster", "{e}");
                    continue;
                }
            };
            if let Some(at) = due
                && Self::fire(&mut tx, &s, &name, at, worker)?
            {
                fired.push((name, at));
            }
        }
        tx.commit()?;
        Ok(fired)
    }

    /// Registers a worker (or says it is back).
    pub fn register_worker(
        &mut self,
        id: &str,
        host: &str,
        pid: u32,
        slots: usize,
    ) -> Result<(), ClusterError> {
        let s = &self.s;
        self.client.execute(
            &format!(
                "INSERT INTO {s}.workers (id, host, pid, slots) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, slots = $4,
                   started_at = now(), heartbeat_at = now(), stopped_at = NULL"
            ),
            &[&id, &host, &(pid as i32), &(slots as i32)],
        )?;
        Ok(())
    }

    /// Claims the oldest unit that is queued or whose lease lapsed, of a destination no
    /// live lease writes to — unless both are writers of different partitions of a stream
    /// where the destination lets them in side by side —, under a lease of `lease`. A
    /// lapsed attempt is recorded as `lease_lost` in the history.
    pub fn claim(
        &mut self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, ClusterError> {
        let s = self.s.clone();
        let mut tx = self.client.transaction()?;
        Self::lock(&mut tx, &self.schema)?;
        let Some(row) = tx.query_opt(
            &format!(
                "SELECT u.id, u.state, u.worker, u.claimed_at, u.attempts FROM {s}.units u
                 WHERE (u.state = 'queued' OR (u.state = 'running' AND u.lease_until < now()))
                   AND NOT EXISTS (SELECT 1 FROM {s}.units o
                       WHERE o.destination_key = u.destination_key AND o.id <> u.id
                         AND o.state = 'running' AND o.lease_until >= now()
                         AND (o.writer IS NULL OR u.writer IS NULL OR o.writer = u.writer))
                 ORDER BY u.fire_at, u.id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ),
            &[],
        )?
        else {
            return Ok(None);
        };
        let id: i64 = row.get(0);
        if row.get::<_, String>(1) == "running" {
            let (old, since, attempt): (Option<String>, Option<SystemTime>, i32) =
                (row.get(2), row.get(3), row.get(4));
            tx.execute(
                &format!(
                    "INSERT INTO {s}.history (unit_id, attempt, worker, started_at, outcome)
                     VALUES ($1, $2, $3, coalesce($4, now()), 'lease_lost') ON CONFLICT DO NOTHING"
                ),
                &[&id, &attempt, &old.unwrap_or_default(), &since],
            )?;
        }
        let r = tx.query_one(
            &format!(
                "UPDATE {s}.units u SET state = 'running', worker = $2, claimed_at = now(),
                   lease_until = now() + make_interval(secs => $3), attempts = attempts + 1
                 FROM {s}.pipelines p WHERE u.id = $1 AND p.name = u.pipeline
                 RETURNING u.pipeline, u.task, u.fire_at, u.attempts, p.file, p.source, u.part, u.parts"
            ),
            &[&id, &worker, &lease.as_secs_f64()],
        )?;
        tx.commit()?;
        let (part, parts): (i32, i32) = (r.get(6), r.get(7));
        Ok(Some(Claimed {
            id,
            pipeline: r.get(0),
            task: r.get(1),
            partition: (parts > 1).then(|| ReadPartition {
                index: u32::try_from(part).unwrap_or(0),
                count: u32::try_from(parts).unwrap_or(1),
            }),
            fire_at: r.get(2),
            attempt: r.get(3),
            file: r.get(4),
            source: r.get(5),
        }))
    }

    /// The heartbeat: the worker's row, and every lease it still holds renewed for
    /// `lease`. Returns the units it holds; a unit it runs that is not among them lost its
    /// lease (it lapsed: another worker may have it).
    pub fn heartbeat(&mut self, worker: &str, lease: Duration) -> Result<Vec<i64>, ClusterError> {
        let s = &self.s;
        let mut tx = self.client.transaction()?;
        tx.execute(
            &format!("UPDATE {s}.workers SET heartbeat_at = now() WHERE id = $1"),
            &[&worker],
        )?;
        let held = tx
            .query(
                &format!(
                    "UPDATE {s}.units SET lease_until = now() + make_interval(secs => $2)
                     WHERE worker = $1 AND state = 'running' AND lease_until >= now() RETURNING id"
                ),
                &[&worker, &lease.as_secs_f64()],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit()?;
        Ok(held)
    }

    /// Records the end of an attempt. `false` when the worker no longer held the unit
    /// (another took it over; its attempt is then in the history as `lease_lost`).
    pub fn finish(
        &mut self,
        unit: &Claimed,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<bool, ClusterError> {
        let (state, records, error) = match outcome {
            Outcome::Done(n) => ("done", *n as i64, None),
            Outcome::Failed(n, e) => ("failed", *n as i64, Some(e.as_str())),
        };
        self.end(unit, worker, state, state, Some(records), error)
    }

    /// Hands a unit back to the queue (a worker's graceful shutdown): another worker
    /// resumes it from the destination's last committed checkpoint.
    pub fn hand_back(&mut self, unit: &Claimed, worker: &str) -> Result<bool, ClusterError> {
        self.end(unit, worker, "queued", "handed_back", None, None)
    }

    fn end(
        &mut self,
        unit: &Claimed,
        worker: &str,
        state: &str,
        outcome: &str,
        records: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool, ClusterError> {
        let s = &self.s;
        let mut tx = self.client.transaction()?;
        let row = tx.query_opt(
            &format!(
                "UPDATE {s}.units SET state = $3, records = $4, error = $5, lease_until = NULL,
                   finished_at = CASE WHEN $3 = 'queued' THEN NULL ELSE now() END,
                   worker = CASE WHEN $3 = 'queued' THEN NULL ELSE worker END
                 WHERE id = $1 AND worker = $2 AND state = 'running' AND attempts = $6
                 RETURNING claimed_at"
            ),
            &[&unit.id, &worker, &state, &records, &error, &unit.attempt],
        )?;
        let Some(row) = row else {
            return Ok(false);
        };
        let since: SystemTime = row.get(0);
        tx.execute(
            &format!(
                "INSERT INTO {s}.history (unit_id, attempt, worker, started_at, outcome, records, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
            ),
            &[&unit.id, &unit.attempt, &worker, &since, &outcome, &records, &error],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Marks a worker stopped (after it handed its units back) and frees its quota shares.
    pub fn stop_worker(&mut self, worker: &str) -> Result<(), ClusterError> {
        let s = &self.s;
        self.client.execute(
            &format!("UPDATE {s}.workers SET stopped_at = now() WHERE id = $1"),
            &[&worker],
        )?;
        self.release_quota_except(worker, &[])
    }

    /// Leases `worker` its share of the quota of `tenant` (an API base): `quota` requests
    /// per `per` divided among the live workers that use the tenant, and never more than
    /// what the others' live shares leave. Under a transaction-scoped advisory lock per
    /// tenant. A share lower than `current` is passed to `lower` before it is committed
    /// (the caller narrows its limiter first); a higher one is returned after the commit,
    /// for the caller to widen then — so the sum of what workers send stays within the
    /// quota. Others above the fair share lower theirs at their next heartbeat.
    #[allow(clippy::too_many_arguments)]
    pub fn lease_quota(
        &mut self,
        worker: &str,
        tenant: &str,
        quota: u32,
        per: Duration,
        current: f64,
        lease: Duration,
        lower: impl FnOnce(f64),
    ) -> Result<f64, ClusterError> {
        let s = self.s.clone();
        let mut tx = self.client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ionport-quota'), hashtext($1))",
            &[&format!("{}/{tenant}", self.schema)],
        )?;
        tx.execute(
            &format!("DELETE FROM {s}.quota_shares WHERE tenant = $1 AND lease_until < now()"),
            &[&tenant],
        )?;
        let others = tx.query(
            &format!("SELECT share FROM {s}.quota_shares WHERE tenant = $1 AND worker <> $2"),
            &[&tenant, &worker],
        )?;
        let taken: f64 = others.iter().map(|r| r.get::<_, f64>(0)).sum();
        let quota_f = f64::from(quota);
        let fair = quota_f / (others.len() + 1) as f64;
        let share = fair.min((quota_f - taken).max(0.0));
        if share < current {
            lower(share);
        }
        let per_ms = i64::try_from(per.as_millis()).unwrap_or(i64::MAX);
        tx.execute(
            &format!(
                "INSERT INTO {s}.quota_shares (tenant, worker, quota, per_ms, share, lease_until)
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
                 ON CONFLICT (tenant, worker) DO UPDATE SET quota = $3, per_ms = $4, share = $5,
                   lease_until = now() + make_interval(secs => $6)"
            ),
            &[
                &tenant,
                &worker,
                &i32::try_from(quota).unwrap_or(i32::MAX),
                &per_ms,
                &share,
                &lease.as_secs_f64(),
            ],
        )?;
        tx.commit()?;
        Ok(share)
    }

    /// Gives back `worker`'s shares of every tenant but `keep`.
    pub fn release_quota_except(
        &mut self,
        worker: &str,
        keep: &[String],
    ) -> Result<(), ClusterError> {
        let s = &self.s;
        self.client.execute(
            &format!("DELETE FROM {s}.quota_shares WHERE worker = $1 AND NOT (tenant = ANY($2))"),
            &[&worker, &keep],
        )?;
        Ok(())
    }

    /// Pipelines, workers, open units and the `recent` last finished units.
    pub fn status(&mut self, recent: i64) -> Result<Status, ClusterError> {
        let s = &self.s;
        let pipelines = self
            .client
            .query(
                &format!(
                    "SELECT p.name, p.file, p.tasks, p.schedule,
                            (SELECT max(fire_at) FROM {s}.ticks t WHERE t.pipeline = p.name),
                            (SELECT count(*) FROM {s}.ticks t WHERE t.pipeline = p.name)
                     FROM {s}.pipelines p ORDER BY p.name"
                ),
                &[],
            )?
            .iter()
            .map(|r| PipelineRow {
                name: r.get(0),
                file: r.get(1),
                tasks: r.get(2),
                schedule: r.get(3),
                last_tick: r.get::<_, Option<SystemTime>>(4).map(rfc3339),
                ticks: r.get(5),
            })
            .collect();
        let workers = self
            .client
            .query(
                &format!(
                    "SELECT w.id, w.host, w.pid, w.slots,
                            EXTRACT(EPOCH FROM now() - w.heartbeat_at)::float8,
                            w.stopped_at IS NOT NULL,
                            coalesce((SELECT array_agg(u.id ORDER BY u.id) FROM {s}.units u
                                      WHERE u.worker = w.id AND u.state = 'running'), '{{}}')
                     FROM {s}.workers w ORDER BY w.started_at DESC"
                ),
                &[],
            )?
            .iter()
            .map(|r| WorkerRow {
                id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                slots: r.get(3),
                heartbeat_age_secs: r.get(4),
                stopped: r.get(5),
                running: r.get(6),
            })
            .collect();
        let open: Vec<UnitRow> = self
            .client
            .query(
                &format!(
                    "SELECT {UNIT_COLUMNS} FROM {s}.units WHERE state IN ('queued', 'running') ORDER BY fire_at, id"
                ),
                &[],
            )?
            .iter()
            .map(unit_row)
            .collect();
        let recent: Vec<UnitRow> = self
            .client
            .query(
                &format!(
                    "SELECT {UNIT_COLUMNS} FROM {s}.units WHERE state IN ('done', 'failed')
                     ORDER BY finished_at DESC, id DESC LIMIT $1"
                ),
                &[&recent],
            )?
            .iter()
            .map(unit_row)
            .collect();
        let ids: Vec<i64> = open.iter().chain(&recent).map(|u| u.id).collect();
        let history = self
            .client
            .query(
                &format!(
                    "SELECT unit_id, attempt, worker, outcome, records FROM {s}.history
                     WHERE unit_id = ANY($1) ORDER BY unit_id, attempt"
                ),
                &[&ids],
            )?
            .iter()
            .map(|r| History {
                unit: r.get(0),
                attempt: r.get(1),
                worker: r.get(2),
                outcome: r.get(3),
                records: r.get(4),
            })
            .collect();
        let quota_shares = self
            .client
            .query(
                &format!(
                    "SELECT tenant, worker, quota, per_ms, share,
                            EXTRACT(EPOCH FROM lease_until - now())::float8
                     FROM {s}.quota_shares WHERE lease_until >= now() ORDER BY tenant, worker"
                ),
                &[],
            )?
            .iter()
            .map(|r| QuotaRow {
                tenant: r.get(0),
                worker: r.get(1),
                quota: r.get(2),
                per_secs: r.get::<_, i64>(3) as f64 / 1000.0,
                share: r.get(4),
                lease_left_secs: r.get(5),
            })
            .collect();
        Ok(Status {
            schema: self.schema.clone(),
            pipelines,
            workers,
            open,
            recent,
            history,
            quota_shares,
        })
    }
}

/// The plan of a claimed unit's pipeline file, validated again by core's loader on this
/// worker (its plugins, its environment variables).
pub(crate) fn load_plan(
    unit: &Claimed,
    registry: &ionport_core::plugin::PluginRegistry,
) -> Result<Plan, ClusterError> {
    ionport_core::pipeline::load_str(Path::new(&unit.file), &unit.source, registry)
        .map_err(|d| ClusterError::Invalid(d.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_destination_key_has_no_credentials() {
        let k = destination_key(&DestinationConfig::Postgres {
            url: "postgres://u:secret@db.example:5432/x?sslmode=require".into(),
            schema: "s".into(),
        });
        assert_eq!(k, "postgres:db.example:5432/x#s");
    }
}
