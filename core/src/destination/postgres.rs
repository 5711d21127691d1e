//! The Postgres destination: one table per stream in the configured schema, upserted on
//! the primary key, and `<schema>._ionport_state` — records and state in one transaction.
//!
//! It uses the synchronous `postgres` client: the trait is called from blocking threads
//! (plugin callbacks run there, never on a tokio worker), and the client drives its own
//! small runtime per connection. Connections are pooled (one per concurrently committing
//! stream). A batch is sent as one JSON parameter and expanded server-side by
//! `jsonb_to_recordset`, so a commit is one `INSERT ... ON CONFLICT DO UPDATE` statement
//! plus the state upsert. Connections are made without TLS.
//!
//! The URL's password never appears in messages: `describe()` shows the URL redacted and
//! every error message is scrubbed of the password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use serde_json::Value;

use super::common::{
    ColumnType, TableNames, TableSpec, expand_env, quote_ident as quote, redact_url, scrub,
    url_password,
};
use super::lock::{Holder, POLL, lock_wait};
use super::row::{Columns, last_by_key};
use super::{Destination, DestinationError, StreamSpec};
use crate::read::Records;

/// A Postgres schema with its state table.
pub struct PostgresDestination {
    url: String,
    password: Option<String>,
    schema: String,
    describe: String,
    pool: Mutex<Vec<Client>>,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    names: TableNames,
    /// The session that holds the writer lock (an advisory lock dies with its session).
    _writer: Mutex<Client>,
}

impl std::fmt::Debug for PostgresDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDestination")
            .field("destination", &self.describe)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Prepared {
    stream: StreamSpec,
    upsert: String,
    table: TableSpec,
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Integer => "bigint",
        ColumnType::Number => "double precision",
        ColumnType::Boolean => "boolean",
        ColumnType::Json => "jsonb",
    }
}

/// The column type of a Postgres type as `information_schema` names it.
fn pg_column_type(data_type: &str) -> Option<ColumnType> {
    Some(match data_type {
        "text" | "character varying" => ColumnType::Text,
        "bigint" | "integer" | "smallint" => ColumnType::Integer,
        "double precision" | "real" | "numeric" => ColumnType::Number,
        "boolean" => ColumnType::Boolean,
        "jsonb" | "json" => ColumnType::Json,
        _ => return None,
    })
}

/// A driver error as text: the server's message with its detail, or the client's.
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; {d}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

/// Checks that a Postgres server accepts a connection at `url` (`SELECT 1`). The error
/// shows the URL without its password.
pub fn ping(url: &str) -> Result<(), DestinationError> {
    let password = url_password(url);
    let err = |e: postgres::Error| DestinationError::Open {
        destination: redact_url(url),
        message: scrub(&pg_message(&e), password.as_deref()),
    };
    let mut c = Client::connect(url, NoTls).map_err(err)?;
    c.simple_query("SELECT 1").map_err(err)?;
    Ok(())
}

/// The advisory lock that makes a session the only writer of a schema: `(hashtext(WRITER_LOCK),
/// hashtext(schema))`, held by a session of its own for as long as the destination is open.
const WRITER_LOCK: &str = "ionport-writer";

/// The advisory lock of one partition writer: `(hashtext(PARTITION_LOCK),
/// hashtext(schema#partition))`, taken with the schema's writer lock shared.
const PARTITION_LOCK: &str = "ionport-writer-partition";

/// Tries once to take the writer lock of `schema` — exclusive, or for a `partition` shared
/// with the other partitions' writers and with that partition's own lock exclusive.
/// Returns the lock that was busy, as `(name, key)`.
fn try_writer_lock(
    c: &mut Client,
    schema: &str,
    partition: Option<&str>,
) -> Result<Option<(&'static str, String)>, postgres::Error> {
    let try_lock =
        |c: &mut Client, f: &str, name: &str, key: &str| -> Result<bool, postgres::Error> {
            Ok(c.query_one(
                &format!("SELECT {f}(hashtext($1), hashtext($2))"),
                &[&name, &key],
            )?
            .get(0))
        };
    let Some(part) = partition else {
        let got = try_lock(c, "pg_try_advisory_lock", WRITER_LOCK, schema)?;
        return Ok((!got).then(|| (WRITER_LOCK, schema.to_string())));
    };
    if !try_lock(c, "pg_try_advisory_lock_shared", WRITER_LOCK, schema)? {
        return Ok(Some((WRITER_LOCK, schema.to_string())));
    }
    let key = format!("{schema}#{part}");
    if try_lock(c, "pg_try_advisory_lock", PARTITION_LOCK, &key)? {
        return Ok(None);
    }
    try_lock(c, "pg_advisory_unlock_shared", WRITER_LOCK, schema)?;
    Ok(Some((PARTITION_LOCK, key)))
}

/// Takes the writer lock of `schema` (of one of its partitions' writers, with
/// `partition`) on `c`, trying again until `wait` has passed; on failure, says who holds
/// it and which lock it is.
fn take_writer_lock(
    c: &mut Client,
    schema: &str,
    partition: Option<&str>,
    wait: Duration,
    msg: &dyn Fn(&postgres::Error) -> String,
) -> Result<(), Result<(String, String), String>> {
    let deadline = Instant::now() + wait;
    let (name, key) = loop {
        match try_writer_lock(c, schema, partition).map_err(|e| Err(msg(&e)))? {
            None => return Ok(()),
            Some(busy) if Instant::now() >= deadline => break busy,
            Some(_) => std::thread::sleep(POLL),
        }
    };
    let holder = c
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'),
                    a.backend_start::text
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = (hashtext($1)::bigint & 4294967295)::oid
               AND l.objid = (hashtext($2)::bigint & 4294967295)::oid
             LIMIT 1",
            &[&name, &key],
        )
        .map_err(|e| Err(msg(&e)))?;
    let lock = format!("Postgres advisory lock (hashtext('{name}'), hashtext('{key}'))");
    Err(Ok((
        lock,
        match holder {
            Some(r) => format!(
                "{} (Postgres backend pid {}, client {}, connected {})",
                r.get::<_, String>(1),
                r.get::<_, i32>(0),
                r.get::<_, String>(2),
                r.get::<_, String>(3)
            ),
            None => "a session that has just let go".into(),
        },
    )))
}

/// The `application_name` of the writer session: who this process is (Postgres keeps 63
/// bytes of it).
fn application_name() -> String {
    let me = Holder::this_process();
    let mut name = format!("ionport pid {}: {}", me.pid, me.command);
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

impl PostgresDestination {
    /// Connects to `url` (`${VAR}` references expanded) and creates `schema` and its state
    /// table when missing, as the schema's only ionport writer: it waits up to
    /// `IONPORT_DESTINATION_WAIT_SECS` (default 10 s) for another one to let go.
    pub fn open(url: &str, schema: &str) -> Result<Self, DestinationError> {
        let wait = lock_wait().map_err(|message| DestinationError::Open {
            destination: redact_url(url),
            message,
        })?;
        Self::open_waiting(url, schema, wait)
    }

    /// [`PostgresDestination::open`], waiting at most `wait` for the writer lock.
    pub fn open_waiting(url: &str, schema: &str, wait: Duration) -> Result<Self, DestinationError> {
        Self::open_as(url, schema, wait, None)
    }

    /// [`PostgresDestination::open_waiting`] as the writer of one partition of a stream
    /// (`partition`, e.g. `customers#1/3`): side by side with the writers of its other
    /// partitions, never with a writer of the whole schema
    /// ([`super::open_partition_writer`]).
    pub fn open_partition(
        url: &str,
        schema: &str,
        wait: Duration,
        partition: &str,
    ) -> Result<Self, DestinationError> {
        Self::open_as(url, schema, wait, Some(partition))
    }

    fn open_as(
        url: &str,
        schema: &str,
        wait: Duration,
        partition: Option<&str>,
    ) -> Result<Self, DestinationError> {
        let shown = redact_url(url);
        let describe = format!("{shown} (schema {schema})");
        let url = expand_env(url).map_err(|message| DestinationError::Open {
            destination: describe.clone(),
            message,
        })?;
        let password = url_password(&url);
        let msg = |e: &postgres::Error| scrub(&pg_message(e), password.as_deref());
        let open_err = |message: String| DestinationError::Open {
            destination: describe.clone(),
            message,
        };
        let mut writer = url
            .parse::<postgres::Config>()
            .map_err(|e| open_err(format!("cannot connect: {}", msg(&e))))?
            .application_name(&application_name())
            .connect(NoTls)
            .map_err(|e| open_err(format!("cannot connect: {}", msg(&e))))?;
        match take_writer_lock(&mut writer, schema, partition, wait, &msg) {
            Ok(()) => {}
            Err(Ok((lock, holder))) => {
                return Err(DestinationError::Busy {
                    destination: describe.clone(),
                    holder,
                    waited: wait,
                    lock,
                });
            }
            Err(Err(message)) => return Err(open_err(message)),
        }
        let d = PostgresDestination {
            _writer: Mutex::new(writer),
            password,
            url,
            schema: schema.to_string(),
            describe,
            pool: Mutex::new(Vec::new()),
            prepared: Mutex::new(HashMap::new()),
            names: TableNames::default(),
        };
        let open_err = |message: String| DestinationError::Open {
            destination: d.describe.clone(),
            message,
        };
        let mut c = d.connect().map_err(open_err)?;
        let s = quote(schema);
        let mut tx = c.transaction().map_err(|e| open_err(d.msg(&e)))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ionport-ddl'), hashtext($1))",
            &[&d.schema],
        )
        .map_err(|e| open_err(d.msg(&e)))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}._ionport_state (
                stream text PRIMARY KEY,
                state jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
             )"
        ))
        .map_err(|e| open_err(d.msg(&e)))?;
        tx.commit().map_err(|e| open_err(d.msg(&e)))?;
        d.put(c);
        Ok(d)
    }

    /// A message without the password.
    fn msg(&self, e: &postgres::Error) -> String {
        scrub(&pg_message(e), self.password.as_deref())
    }

    fn connect(&self) -> Result<Client, String> {
        Client::connect(&self.url, NoTls).map_err(|e| format!("cannot connect: {}", self.msg(&e)))
    }

    /// A pooled connection, or a new one.
    fn get(&self) -> Result<Client, DestinationError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self.connect().map_err(|message| DestinationError::Write {
                destination: self.describe.clone(),
                message,
            }),
        }
    }

    /// Returns a healthy connection to the pool.
    fn put(&self, c: Client) {
        if !c.is_closed() {
            self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
    }

    fn write_err(&self, what: &str, e: &postgres::Error) -> DestinationError {
        DestinationError::Write {
            destination: self.describe.clone(),
            message: format!("{what}: {}", self.msg(e)),
        }
    }

    fn state_table(&self) -> String {
        format!("{}._ionport_state", quote(&self.schema))
    }

    fn prepared(&self, stream: &StreamSpec) -> Result<Arc<Prepared>, DestinationError> {
        if let Some(p) = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stream.name)
            && p.stream == *stream
        {
            return Ok(p.clone());
        }
        self.prepare_table(stream)
    }

    fn prepare_table(&self, stream: &StreamSpec) -> Result<Arc<Prepared>, DestinationError> {
        let table = TableSpec::new(&self.describe, stream)?;
        self.names
            .claim(&self.describe, &stream.name, &table.table)?;
        let schema_err = |message: String| DestinationError::Schema {
            destination: self.describe.clone(),
            stream: stream.name.clone(),
            message,
        };
        for c in &table.columns {
            if c.name.len() > 63 {
                return Err(schema_err(format!(
                    "column name `{}` is longer than Postgres' 63-byte identifier limit",
                    c.name
                )));
            }
        }
        let qt = format!("{}.{}", quote(&self.schema), quote(&table.table));
        let mut c = self.get()?;
        let result = (|| -> Result<(), DestinationError> {
            let mut tx = c.transaction().map_err(|e| schema_err(self.msg(&e)))?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('ionport-ddl'), hashtext($1))",
                &[&self.schema],
            )
            .map_err(|e| schema_err(self.msg(&e)))?;
            let rows = tx
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_schema = $1 AND table_name = $2",
                    &[&self.schema, &table.table],
                )
                .map_err(|e| schema_err(self.msg(&e)))?;
            let existing: HashMap<String, String> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            if existing.is_empty() {
                let mut cols: Vec<String> = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let not_null = if i < table.key_len { " NOT NULL" } else { "" };
                        format!("{} {}{not_null}", quote(&c.name), sql_type(c.ty))
                    })
                    .collect();
                if table.key_len > 0 {
                    let key: Vec<String> = table.key().iter().map(|c| quote(&c.name)).collect();
                    cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
                }
                tx.batch_execute(&format!("CREATE TABLE {qt} ({})", cols.join(", ")))
                    .map_err(|e| schema_err(self.msg(&e)))?;
                tracing::info!(destination = %self.describe, stream = %stream.name, table = %table.table, "created table");
            } else {
                let key_rows = tx
                    .query(
                        "SELECT a.attname::text FROM pg_index i
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                         WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                        &[&qt],
                    )
                    .map_err(|e| schema_err(self.msg(&e)))?;
                let mut old_key: Vec<String> = key_rows.iter().map(|r| r.get(0)).collect();
                let mut new_key: Vec<String> = table.key().iter().map(|c| c.name.clone()).collect();
                old_key.sort();
                new_key.sort();
                if old_key != new_key {
                    return Err(schema_err(format!(
                        "table `{}` has primary key ({}) but the stream's is ({}); nothing is altered: drop the table to change it",
                        table.table,
                        old_key.join(", "),
                        new_key.join(", ")
                    )));
                }
                for c in &table.columns {
                    match existing.get(&c.name) {
                        Some(ty)
                            if ty != sql_type(c.ty)
                                && pg_column_type(ty).is_some_and(|t| t.widens_to(c.ty)) =>
                        {
                            self.widen_column(&mut tx, &qt, stream, c, ty)?;
                        }
                        Some(ty) if ty != sql_type(c.ty) => {
                            return Err(schema_err(format!(
                                "column `{}` of table `{}` is {ty} but the record schema now says {} ({}); nothing is altered: drop the table to change a type",
                                c.name,
                                table.table,
                                c.ty.name(),
                                sql_type(c.ty)
                            )));
                        }
                        Some(_) => {}
                        None => {
                            tx.batch_execute(&format!(
                                "ALTER TABLE {qt} ADD COLUMN IF NOT EXISTS {} {}",
                                quote(&c.name),
                                sql_type(c.ty)
                            ))
                            .map_err(|e| schema_err(self.msg(&e)))?;
                            tracing::info!(destination = %self.describe, stream = %stream.name, column = %c.name, "added column");
                        }
                    }
                }
            }
            tx.commit().map_err(|e| schema_err(self.msg(&e)))
        })();
        self.put(c);
        result?;

        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let defs: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_type(c.ty)))
            .collect();
        let mut upsert = format!(
            "INSERT INTO {qt} ({cols}) SELECT {cols} FROM jsonb_to_recordset($1::text::jsonb) AS r({defs})",
            cols = cols.join(", "),
            defs = defs.join(", ")
        );
        if table.key_len > 0 {
            let key = &cols[..table.key_len];
            let rest = &cols[table.key_len..];
            // Rows locked in key order: partition writers commit side by side into one
            // table, and two commits that meet on some keys (a source whose pages moved
            // while it was read) would deadlock if each took them in its own order.
            upsert.push_str(&format!(" ORDER BY {}", key.join(", ")));
            if rest.is_empty() {
                upsert.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")));
            } else {
                let set: Vec<String> = rest.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                upsert.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    set.join(", ")
                ));
            }
        }
        let p = Arc::new(Prepared {
            stream: stream.clone(),
            upsert,
            table,
        });
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream.name.clone(), p.clone());
        Ok(p)
    }

    /// Widens column `c` of table `qt` from the Postgres type `from` to its (wider) type
    /// in the stream's schema (`schema_changes = "evolve"`), each value converted by a
    /// `USING` cast: `1` → `1.0`, `true` → `'true'`, any value → its JSON in a `jsonb`
    /// column.
    fn widen_column(
        &self,
        tx: &mut postgres::Transaction<'_>,
        qt: &str,
        stream: &StreamSpec,
        c: &super::common::Column,
        from: &str,
    ) -> Result<(), DestinationError> {
        let qc = quote(&c.name);
        let using = match c.ty {
            ColumnType::Json => format!("to_jsonb({qc})"),
            ty => format!("{qc}::{}", sql_type(ty)),
        };
        tx.batch_execute(&format!(
            "ALTER TABLE {qt} ALTER COLUMN {qc} TYPE {} USING {using}",
            sql_type(c.ty)
        ))
        .map_err(|e| DestinationError::Schema {
            destination: self.describe.clone(),
            stream: stream.name.clone(),
            message: self.msg(&e),
        })?;
        tracing::info!(destination = %self.describe, stream = %stream.name, column = %c.name, from, to = sql_type(c.ty), "widened column");
        Ok(())
    }

    /// The columns of `stream`'s table, or `None` when it has none.
    fn table_columns(
        &self,
        stream: &StreamSpec,
    ) -> Result<Option<Vec<super::common::Column>>, DestinationError> {
        let table = super::common::table_name(&stream.name);
        let rows = self.with_client(|c| {
            c.query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&self.schema, &table],
            )
            .map_err(|e| DestinationError::Schema {
                destination: self.describe.clone(),
                stream: stream.name.clone(),
                message: self.msg(&e),
            })
        })?;
        let out: Vec<super::common::Column> = rows
            .iter()
            .map(|r| {
                let ty: String = r.get(1);
                super::common::Column {
                    name: r.get(0),
                    // A type ionport does not make holds any value as far as it can tell.
                    ty: pg_column_type(&ty).unwrap_or(ColumnType::Json),
                }
            })
            .collect();
        Ok((!out.is_empty()).then_some(out))
    }

    /// Runs `f` on a pooled connection, returning it to the pool afterwards.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, DestinationError>,
    ) -> Result<T, DestinationError> {
        let mut c = self.get()?;
        let r = f(&mut c);
        self.put(c);
        r
    }
}

impl Destination for PostgresDestination {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn prepare(&self, stream: &StreamSpec) -> Result<(), DestinationError> {
        self.prepare_table(stream).map(|_| ())
    }

    fn commit(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
    ) -> Result<(), DestinationError> {
        self.commit_as(stream, records, state, &stream.name)
    }

    fn commit_as(
        &self,
        stream: &StreamSpec,
        records: &Records,
        state: &Value,
        state_key: &str,
    ) -> Result<(), DestinationError> {
        let p = self.prepared(stream)?;
        let mut columns = Columns::new(&self.describe, &p.table);
        let mut values = Vec::with_capacity(p.table.columns.len());
        for r in records.iter() {
            columns.values(&r, &mut values)?;
        }
        // One statement cannot upsert a key twice: only each key's last record goes.
        let keep = last_by_key(&self.describe, &p.table, records)?;
        let mut batch = String::with_capacity(records.len() * 128 + 2);
        batch.push('[');
        let mut keep_at = keep.iter().peekable();
        for (i, r) in records.iter().enumerate() {
            if keep_at.next_if(|k| **k == i).is_none() {
                continue;
            }
            if batch.len() > 1 {
                batch.push(',');
            }
            batch.push_str(r.line());
        }
        batch.push(']');
        let rows = keep;
        let state_text = state.to_string();
        let state_sql = format!(
            "INSERT INTO {} (stream, state, updated_at) VALUES ($1, $2::text::jsonb, now())
             ON CONFLICT (stream) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
            self.state_table()
        );
        let what = format!("stream {}", stream.name);
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(|e| self.write_err(&what, &e))?;
            if !rows.is_empty() {
                tx.execute(&p.upsert, &[&batch])
                    .map_err(|e| self.write_err(&format!("{what}: upsert"), &e))?;
            }
            tx.execute(&state_sql, &[&state_key, &state_text])
                .map_err(|e| self.write_err(&format!("{what}: state"), &e))?;
            tx.commit()
                .map_err(|e| self.write_err(&format!("{what}: commit"), &e))
        })
    }

    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError> {
        let sql = format!(
            "SELECT state::text FROM {} WHERE stream = $1",
            self.state_table()
        );
        let text: Option<String> = self.with_client(|c| {
            c.query_opt(&sql, &[&stream])
                .map(|row| row.map(|r| r.get(0)))
                .map_err(|e| self.write_err("cannot read the state", &e))
        })?;
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| DestinationError::Write {
                destination: self.describe.clone(),
                message: format!("stream {stream}: the stored state is not JSON: {e}"),
            })
    }

    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError> {
        let sql = format!(
            "SELECT stream, state::text FROM {} ORDER BY stream",
            self.state_table()
        );
        let rows: Vec<(String, String)> = self.with_client(|c| {
            c.query(&sql, &[])
                .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                .map_err(|e| self.write_err("cannot read the states", &e))
        })?;
        rows.into_iter()
            .map(|(s, t)| {
                serde_json::from_str(&t)
                    .map(|v| (s.clone(), v))
                    .map_err(|e| DestinationError::Write {
                        destination: self.describe.clone(),
                        message: format!("stream {s}: the stored state is not JSON: {e}"),
                    })
            })
            .collect()
    }

    fn reset_state(&self, stream: Option<&str>) -> Result<(), DestinationError> {
        let table = self.state_table();
        self.with_client(|c| {
            match stream {
                Some(s) => c.execute(&format!("DELETE FROM {table} WHERE stream = $1"), &[&s]),
                None => c.execute(&format!("DELETE FROM {table}"), &[]),
            }
            .map(|_| ())
            .map_err(|e| self.write_err("cannot reset the state", &e))
        })
    }

    fn finish(&self, _stream: &StreamSpec) -> Result<(), DestinationError> {
        Ok(())
    }

    fn columns(
        &self,
        stream: &StreamSpec,
    ) -> Result<Option<Vec<super::common::Column>>, DestinationError> {
        self.table_columns(stream)
    }

    fn mark_deleted(
        &self,
        stream: &StreamSpec,
        live_keys: &std::collections::HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        self.mark_missing(stream, live_keys, at)
    }
}

/// Keys marked per `UPDATE` statement (one JSON parameter each), all in one transaction.
const MARK_BATCH: usize = 10_000;

/// `deletes = "soft"`: marking the rows the source no longer has.
impl PostgresDestination {
    /// [`Destination::mark_deleted`]: the unmarked rows' keys are read back (as JSON
    /// arrays) and compared with `live` in memory; the missing ones are marked in batches
    /// of key tuples joined from `jsonb_to_recordset`, all in one transaction.
    fn mark_missing(
        &self,
        stream: &StreamSpec,
        live: &std::collections::HashSet<String>,
        at: &str,
    ) -> Result<u64, DestinationError> {
        let p = self.prepared(stream)?;
        let table = &p.table;
        if let Some(e) = super::unmarkable(&self.describe, table) {
            return Err(e);
        }
        let what = format!("stream {}: marking deleted rows", stream.name);
        let qt = format!("{}.{}", quote(&self.schema), quote(&table.table));
        let deleted_at = quote(super::DELETED_AT_COLUMN);
        let key: Vec<String> = table.key().iter().map(|c| quote(&c.name)).collect();
        let select = format!(
            "SELECT json_build_array({})::text FROM {qt} WHERE {deleted_at} IS NULL",
            key.join(", ")
        );
        let defs: Vec<String> = table
            .key()
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_type(c.ty)))
            .collect();
        let matches: Vec<String> = key.iter().map(|c| format!("t.{c} = k.{c}")).collect();
        let update = format!(
            "UPDATE {qt} AS t SET {deleted_at} = $2 FROM jsonb_to_recordset($1::text::jsonb) AS k({}) WHERE t.{deleted_at} IS NULL AND {}",
            defs.join(", "),
            matches.join(" AND ")
        );
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(|e| self.write_err(&what, &e))?;
            let rows = tx
                .query(&select, &[])
                .map_err(|e| self.write_err(&what, &e))?;
            let mut missing = Vec::new();
            for row in &rows {
                let text: String = row.get(0);
                let values: Vec<Value> =
                    serde_json::from_str(&text).map_err(|e| DestinationError::Write {
                        destination: self.describe.clone(),
                        message: format!("{what}: a key read back is not JSON: {e}"),
                    })?;
                if !live.contains(&super::row::stored_key(table, &values)) {
                    let tuple: serde_json::Map<String, Value> = table
                        .key()
                        .iter()
                        .map(|c| c.name.clone())
                        .zip(values)
                        .collect();
                    missing.push(Value::Object(tuple));
                }
            }
            let mut marked = 0u64;
            for batch in missing.chunks(MARK_BATCH) {
                let keys = Value::Array(batch.to_vec()).to_string();
                marked += tx
                    .execute(&update, &[&keys, &at])
                    .map_err(|e| self.write_err(&what, &e))?;
            }
            tx.commit().map_err(|e| self.write_err(&what, &e))?;
            Ok(marked)
        })
    }
}
