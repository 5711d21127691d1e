//! The coordinator's tables, created (and later migrated) on first use under a
//! transaction-scoped advisory lock, so that workers starting together create them once.

/// The schema version this build writes; a newer one in the database is refused.
pub(crate) const VERSION: i32 = 4;

/// The DDL of version 1, `{s}` the quoted schema name.
const V1: &str = r#"
CREATE TABLE {s}.meta (version integer NOT NULL);
INSERT INTO {s}.meta VALUES (1);
-- A registered pipeline: the pipeline file's text (validated by core's loader when it was
-- submitted, and again by every worker that runs it) and the path it was read from, so
-- that relative paths resolve the same way.
CREATE TABLE {s}.pipelines (
    name text PRIMARY KEY,
    file text NOT NULL,
    source text NOT NULL,
    tasks text[] NOT NULL,
    schedule text,
    destination_key text NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now()
);
-- One row per firing of a pipeline: the primary key makes a tick fire once.
CREATE TABLE {s}.ticks (
    pipeline text NOT NULL REFERENCES {s}.pipelines ON DELETE CASCADE,
    fire_at timestamptz NOT NULL,
    created_by text NOT NULL,
    PRIMARY KEY (pipeline, fire_at)
);
-- A unit of work: one task of one tick. `state`: queued, running (under `worker`'s lease
-- until `lease_until`), done or failed.
CREATE TABLE {s}.units (
    id bigserial PRIMARY KEY,
    pipeline text NOT NULL,
    task text NOT NULL,
    fire_at timestamptz NOT NULL,
    destination_key text NOT NULL,
    state text NOT NULL DEFAULT 'queued',
    worker text,
    lease_until timestamptz,
    claimed_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    records bigint,
    error text,
    finished_at timestamptz,
    UNIQUE (pipeline, task, fire_at),
    FOREIGN KEY (pipeline, fire_at) REFERENCES {s}.ticks ON DELETE CASCADE
);
CREATE INDEX units_open ON {s}.units (state) WHERE state IN ('queued', 'running');
CREATE TABLE {s}.workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    slots integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
-- Every attempt at a unit, and how it ended: done, failed, handed_back (a worker's
-- graceful shutdown), lease_lost (its lease ran out: another worker may have taken over).
CREATE TABLE {s}.history (
    unit_id bigint NOT NULL REFERENCES {s}.units ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL,
    records bigint,
    error text,
    PRIMARY KEY (unit_id, attempt)
);
"#;

/// Version 2: the cluster's shared tokens and its tenants' quota shares.
const V2: &str = r#"
-- One credential's tokens (access and rotated refresh token), sealed under the vault key;
-- `credential` is a hash of the credential's identity, never a secret.
CREATE TABLE {s}.tokens (
    credential text PRIMARY KEY,
    sealed text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The share of a tenant's quota each worker may send (`share` requests per `per_ms`),
-- under a lease renewed with the heartbeat: the sum of live shares of a tenant stays
-- within its quota.
CREATE TABLE {s}.quota_shares (
    tenant text NOT NULL,
    worker text NOT NULL,
    quota integer NOT NULL,
    per_ms bigint NOT NULL,
    share double precision NOT NULL,
    lease_until timestamptz NOT NULL,
    PRIMARY KEY (tenant, worker)
);
INSERT INTO {s}.meta VALUES (2);
"#;

/// Version 3: the tenants' daily budgets, counted for the whole cluster.
const V3: &str = r#"
-- Requests reserved by the cluster's processes from a tenant's (an API base's) budget of
-- one UTC day: each process sends only what it reserved, and `used` never passes `budget`.
CREATE TABLE {s}.daily_budgets (
    tenant text NOT NULL,
    day text NOT NULL,
    budget bigint NOT NULL,
    used bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, day)
);
INSERT INTO {s}.meta VALUES (3);
"#;

/// Version 4: units smaller than a task — one per partition of a task read in partitions.
const V4: &str = r#"
-- Per task of `tasks`, in the same order, how many partitions it is read in (NULL: 1 each);
-- whether the destination lets the partitions of a stream write side by side (Postgres).
ALTER TABLE {s}.pipelines ADD COLUMN partitions integer[],
    ADD COLUMN partition_writers boolean NOT NULL DEFAULT false;
-- A unit is partition `part` of `parts` (0 of 1: the task whole). `writer`: the partition
-- writer it is (NULL: the destination's one writer); units of one destination run side by
-- side only when both are partition writers, of different partitions.
ALTER TABLE {s}.units ADD COLUMN part integer NOT NULL DEFAULT 0,
    ADD COLUMN parts integer NOT NULL DEFAULT 1,
    ADD COLUMN writer text,
    DROP CONSTRAINT units_pipeline_task_fire_at_key,
    ADD CONSTRAINT units_pipeline_task_part_fire_at_key UNIQUE (pipeline, task, part, fire_at);
INSERT INTO {s}.meta VALUES (4);
"#;

/// Creates the schema's tables when missing; refuses a schema of a newer version.
pub(crate) fn migrate(client: &mut postgres::Client, schema: &str) -> Result<(), String> {
    let s = format!("\"{schema}\"");
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ionport-cluster-migrate'), hashtext($1))",
        &[&schema],
    )
    .map_err(|e| e.to_string())?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
        .map_err(|e| e.to_string())?;
    let has_meta: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{s}.meta")],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    let version: i32 = if has_meta {
        tx.query_one(&format!("SELECT max(version) FROM {s}.meta"), &[])
            .map_err(|e| e.to_string())?
            .get::<_, Option<i32>>(0)
            .unwrap_or(0)
    } else {
        0
    };
    if version > VERSION {
        return Err(format!(
            "the coordinator schema {schema} is at version {version}; this ionport knows up to {VERSION} (upgrade the workers)"
        ));
    }
    if version < 1 {
        tx.batch_execute(&V1.replace("{s}", &s))
            .map_err(|e| e.to_string())?;
    }
    if version < 2 {
        tx.batch_execute(&V2.replace("{s}", &s))
            .map_err(|e| e.to_string())?;
    }
    if version < 3 {
        tx.batch_execute(&V3.replace("{s}", &s))
            .map_err(|e| e.to_string())?;
    }
    if version < 4 {
        tx.batch_execute(&V4.replace("{s}", &s))
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}
