//! The SQLite destination (the embedded default): one table per stream, upserted on the
//! primary key, and the `_ionport_state` table — records and state in one transaction.
//!
//! The database runs in WAL mode with `synchronous = FULL`, so a committed transaction
//! survives a crash of the process or of the machine. Writers share one connection
//! (SQLite has one writer at a time anyway); each commit is one transaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde_json::Value;

use super::common::{ColumnType, TableNames, TableSpec, now_rfc3339, quote_ident as quote};
use super::lock::{FileLock, lock_wait};
use super::row::Columns;
use super::{Destination, DestinationError, StreamSpec};
use crate::read::{JsonRef, Records};

/// A SQLite database file with its state table.
pub struct SqliteDestination {
    path: PathBuf,
    describe: String,
    conn: Mutex<Connection>,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    names: TableNames,
    _lock: FileLock,
}

impl std::fmt::Debug for SqliteDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDestination")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A stream whose table is ready: its spec and its upsert statement.
#[derive(Debug)]
struct Prepared {
    stream: StreamSpec,
    table: TableSpec,
    upsert: String,
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Json => "TEXT",
        ColumnType::Integer => "INTEGER",
        ColumnType::Number => "REAL",
        ColumnType::Boolean => "BOOLEAN",
    }
}

/// The SQLite type affinity of a declared type (the rules of SQLite's §3.1).
fn affinity(declared: &str) -> &'static str {
    let d = declared.to_ascii_uppercase();
    if d.contains("INT") {
        "INTEGER"
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        "TEXT"
    } else if d.contains("BLOB") || d.is_empty() {
        "BLOB"
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

impl SqliteDestination {
    /// Opens (creating when missing, with its parent directories) the database at `path`
    /// as its only ionport writer, waiting up to `IONPORT_DESTINATION_WAIT_SECS` (default
    /// 10 s) for another one to let go.
    pub fn open(path: &Path) -> Result<Self, DestinationError> {
        let wait = lock_wait().map_err(|message| DestinationError::Open {
            destination: format!("sqlite:{}", path.display()),
            message,
        })?;
        Self::open_waiting(path, wait)
    }

    /// [`SqliteDestination::open`], waiting at most `wait` for the writer lock: the file
    /// `<path>.writer.lock` next to the database. (SQLite's own lock is per transaction;
    /// holding it for a whole run would also shut out readers.)
    pub fn open_waiting(path: &Path, wait: Duration) -> Result<Self, DestinationError> {
        let describe = format!("sqlite:{}", path.display());
        let err = |message: String| DestinationError::Open {
            destination: describe.clone(),
            message,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| err(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".writer.lock");
        let lock = FileLock::acquire(&describe, Path::new(&lock_path), wait)?;
        let conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| err(e.to_string()))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS _ionport_state (
                stream TEXT PRIMARY KEY NOT NULL,
                state TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )",
        )
        .map_err(|e| err(e.to_string()))?;
        Ok(SqliteDestination {
            path: path.to_path_buf(),
            describe,
            conn: Mutex::new(conn),
            prepared: Mutex::new(HashMap::new()),
            names: TableNames::default(),
            _lock: lock,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_err(&self, what: &str, e: impl std::fmt::Display) -> DestinationError {
        DestinationError::Write {
            destination: self.describe.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn schema_err(&self, stream: &str, message: String) -> DestinationError {
        DestinationError::Schema {
            destination: self.describe.clone(),
            stream: stream.to_string(),
            message,
        }
    }

    /// The prepared stream, preparing it when it is new or its spec changed.
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
        let sql_err = |e: rusqlite::Error| self.schema_err(&stream.name, e.to_string());
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql_err)?;
        // name -> (declared type, position in the primary key: 0 when not in it)
        let mut existing: HashMap<String, (String, i64)> = HashMap::new();
        {
            let mut stmt = tx
                .prepare(&format!("PRAGMA table_info({})", quote(&table.table)))
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(sql_err)?;
            for row in rows {
                let (name, ty, pk) = row.map_err(sql_err)?;
                existing.insert(name, (ty, pk));
            }
        }
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
            tx.execute_batch(&format!(
                "CREATE TABLE {} ({})",
                quote(&table.table),
                cols.join(", ")
            ))
            .map_err(sql_err)?;
            tracing::info!(destination = %self.describe, stream = %stream.name, table = %table.table, "created table");
        } else {
            let mut old_key: Vec<(i64, &str)> = existing
                .iter()
                .filter(|(_, (_, pk))| *pk > 0)
                .map(|(n, (_, pk))| (*pk, n.as_str()))
                .collect();
            old_key.sort_unstable();
            let old_key: Vec<&str> = old_key.into_iter().map(|(_, n)| n).collect();
            let new_key: Vec<&str> = table.key().iter().map(|c| c.name.as_str()).collect();
            if old_key != new_key {
                return Err(self.schema_err(
                    &stream.name,
                    format!(
                        "table `{}` has primary key ({}) but the stream's is ({}); nothing is altered: drop the table to change it",
                        table.table,
                        old_key.join(", "),
                        new_key.join(", ")
                    ),
                ));
            }
            for c in &table.columns {
                match existing.get(&c.name) {
                    Some((declared, pk)) => {
                        if affinity(declared) != affinity(sql_type(c.ty))
                            && *pk == 0
                            && declared_type(declared, c.ty).widens_to(c.ty)
                        {
                            self.widen_column(&tx, &table, c, declared)?;
                        } else if affinity(declared) != affinity(sql_type(c.ty)) {
                            return Err(self.schema_err(
                                &stream.name,
                                format!(
                                    "column `{}` of table `{}` is {declared} but the record schema now says {}; nothing is altered: drop the table to change a type",
                                    c.name,
                                    table.table,
                                    c.ty.name()
                                ),
                            ));
                        }
                    }
                    None => {
                        tx.execute_batch(&format!(
                            "ALTER TABLE {} ADD COLUMN {} {}",
                            quote(&table.table),
                            quote(&c.name),
                            sql_type(c.ty)
                        ))
                        .map_err(sql_err)?;
                        tracing::info!(destination = %self.describe, stream = %stream.name, column = %c.name, "added column");
                    }
                }
            }
        }
        tx.commit().map_err(sql_err)?;
        drop(conn);

        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let mut upsert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(&table.table),
            cols.join(", "),
            marks.join(", ")
        );
        if table.key_len > 0 {
            let key = &cols[..table.key_len];
            let rest = &cols[table.key_len..];
            if rest.is_empty() {
                upsert.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")));
            } else {
                let set: Vec<String> = rest.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                upsert.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    set.join(", ")
                ));
            }
        }
        let p = Arc::new(Prepared {
            stream: stream.clone(),
            table,
            upsert,
        });
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream.name.clone(), p.clone());
        Ok(p)
    }
}

/// The column type a declared SQLite type stands for (`hint`: the stream's type, which
/// tells a JSON column from a text one — both are declared `TEXT`).
fn declared_type(declared: &str, hint: ColumnType) -> ColumnType {
    match affinity(declared) {
        "INTEGER" => ColumnType::Integer,
        "REAL" => ColumnType::Number,
        "TEXT" if hint == ColumnType::Json => ColumnType::Json,
        "TEXT" => ColumnType::Text,
        "NUMERIC" if declared.to_ascii_uppercase().contains("BOOL") => ColumnType::Boolean,
        "NUMERIC" => ColumnType::Number,
        _ => ColumnType::Json,
    }
}

impl SqliteDestination {
    /// Widens column `c` of an existing table to its (wider) type in the stream's schema
    /// (`schema_changes = "evolve"`). SQLite has no `ALTER COLUMN … TYPE`: the column is
    /// renamed aside, added again with the new declared type, filled from the old one with
    /// each value converted as the new type holds it (`1` → `1.0`, `true` → `'true'`, text
    /// → a JSON string), and the old one dropped. Key columns are never widened here (the
    /// caller refuses them).
    fn widen_column(
        &self,
        tx: &rusqlite::Transaction<'_>,
        table: &TableSpec,
        c: &super::common::Column,
        declared: &str,
    ) -> Result<(), DestinationError> {
        let sql_err = |e: rusqlite::Error| self.schema_err(&table.stream, e.to_string());
        let from = declared_type(declared, c.ty);
        let aside = format!("{}__ionport_widening", c.name);
        let (qt, qc, qa) = (quote(&table.table), quote(&c.name), quote(&aside));
        let value = match (from, c.ty) {
            (ColumnType::Boolean, _) => {
                format!(
                    "CASE {qa} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE CAST({qa} AS TEXT) END"
                )
            }
            (ColumnType::Text, ColumnType::Json) => format!("json_quote({qa})"),
            (_, ColumnType::Number) => format!("CAST({qa} AS REAL)"),
            _ => format!("CAST({qa} AS TEXT)"),
        };
        tx.execute_batch(&format!(
            "ALTER TABLE {qt} RENAME COLUMN {qc} TO {qa};
             ALTER TABLE {qt} ADD COLUMN {qc} {ty};
             UPDATE {qt} SET {qc} = {value} WHERE {qa} IS NOT NULL;
             ALTER TABLE {qt} DROP COLUMN {qa};",
            ty = sql_type(c.ty)
        ))
        .map_err(sql_err)?;
        tracing::info!(destination = %self.describe, stream = %table.stream, column = %c.name, from = from.name(), to = c.ty.name(), "widened column");
        Ok(())
    }

    /// The columns of `stream`'s table as declared, or `None` when it has none.
    fn table_columns(
        &self,
        stream: &StreamSpec,
    ) -> Result<Option<Vec<super::common::Column>>, DestinationError> {
        let hints: HashMap<String, ColumnType> = super::common::stream_columns(stream)
            .map(|cs| cs.into_iter().map(|c| (c.name, c.ty)).collect())
            .unwrap_or_default();
        let table = super::common::table_name(&stream.name);
        let sql_err = |e: rusqlite::Error| self.schema_err(&stream.name, e.to_string());
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({})", quote(&table)))
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(sql_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, declared) = row.map_err(sql_err)?;
            let hint = hints.get(&name).copied().unwrap_or(ColumnType::Text);
            out.push(super::common::Column {
                ty: declared_type(&declared, hint),
                name,
            });
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// The SQL value of a checked JSON value: text is bound borrowed from the batch unless it
/// held escapes.
fn sql_value(ty: ColumnType, v: Option<JsonRef<'_>>) -> Result<ToSqlOutput<'_>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(ToSqlOutput::Borrowed(ValueRef::Null));
    };
    let owned = |v: SqlValue| Ok(ToSqlOutput::Owned(v));
    match ty {
        ColumnType::Text => match v.as_str() {
            Some(std::borrow::Cow::Borrowed(s)) => {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())))
            }
            Some(std::borrow::Cow::Owned(s)) => owned(SqlValue::Text(s)),
            // A text column kept wider than the source's type (schema drift) holds
            // numbers and booleans as their JSON text.
            None if v.is_number() || v.as_bool().is_some() => {
                owned(SqlValue::Text(v.text().to_string()))
            }
            None => Err(format!("a {} value in a string column", v.type_name())),
        },
        ColumnType::Integer => match v.as_i64() {
            Some(n) => owned(SqlValue::Integer(n)),
            None => Err(format!("a {} value in an integer column", v.type_name())),
        },
        ColumnType::Number => match v.as_f64() {
            Some(n) => owned(SqlValue::Real(n)),
            None => Err(format!("a {} value in a number column", v.type_name())),
        },
        ColumnType::Boolean => match v.as_bool() {
            Some(b) => owned(SqlValue::Integer(i64::from(b))),
            None => Err(format!("a {} value in a boolean column", v.type_name())),
        },
        // The value as serde_json writes it, as before: one canonical text per value.
        ColumnType::Json => match v.to_value() {
            Ok(value) => owned(SqlValue::Text(value.to_string())),
            Err(e) => Err(e.to_string()),
        },
    }
}

impl Destination for SqliteDestination {
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
        let state_text = state.to_string();
        let what = format!("stream {}", stream.name);
        let mut conn = self.conn();
        // A record that does not fit fails the unit: the transaction is rolled back when
        // dropped, so nothing of it is written.
        let tx = conn
            .transaction()
            .map_err(|e| self.write_err("cannot begin a transaction", e))?;
        {
            let mut stmt = tx
                .prepare_cached(&p.upsert)
                .map_err(|e| self.write_err(&what, e))?;
            let mut columns = Columns::new(&self.describe, &p.table);
            let mut values = Vec::with_capacity(p.table.columns.len());
            let mut params = Vec::with_capacity(p.table.columns.len());
            // In order, one upsert each: a later record of a key replaces an earlier one.
            for r in records.iter() {
                columns.values(&r, &mut values)?;
                params.clear();
                for (c, v) in p.table.columns.iter().zip(&values) {
                    params.push(
                        sql_value(c.ty, *v).map_err(|e| {
                            self.write_err(&format!("{what}: column {}", c.name), e)
                        })?,
                    );
                }
                stmt.execute(params_from_iter(params.iter()))
                    .map_err(|e| self.write_err(&format!("{what}: upsert"), e))?;
            }
            tx.execute(
                "INSERT INTO _ionport_state (stream, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (state_key, &state_text, now_rfc3339()),
            )
            .map_err(|e| self.write_err(&format!("stream {}: state", stream.name), e))?;
        }
        tx.commit()
            .map_err(|e| self.write_err(&format!("stream {}: commit", stream.name), e))
    }

    fn load_state(&self, stream: &str) -> Result<Option<Value>, DestinationError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT state FROM _ionport_state WHERE stream = ?1",
                [stream],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.write_err("cannot read the state", e))?;
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| {
                self.write_err(&format!("stream {stream}: the stored state is not JSON"), e)
            })
    }

    fn states(&self) -> Result<Vec<(String, Value)>, DestinationError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT stream, state FROM _ionport_state ORDER BY stream")
            .map_err(|e| self.write_err("cannot read the states", e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.write_err("cannot read the states", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (stream, text) = row.map_err(|e| self.write_err("cannot read the states", e))?;
            let v = serde_json::from_str(&text).map_err(|e| {
                self.write_err(&format!("stream {stream}: the stored state is not JSON"), e)
            })?;
            out.push((stream, v));
        }
        Ok(out)
    }

    fn reset_state(&self, stream: Option<&str>) -> Result<(), DestinationError> {
        let conn = self.conn();
        match stream {
            Some(s) => conn.execute("DELETE FROM _ionport_state WHERE stream = ?1", [s]),
            None => conn.execute("DELETE FROM _ionport_state", []),
        }
        .map(|_| ())
        .map_err(|e| self.write_err("cannot reset the state", e))
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

/// `deletes = "soft"`: marking the rows the source no longer has.
impl SqliteDestination {
    /// [`Destination::mark_deleted`]: the unmarked rows' keys are read back and compared
    /// with `live` in memory; the missing ones are marked by key, all in one transaction.
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
        let fail = |e: rusqlite::Error| self.write_err(&what, e);
        let deleted_at = quote(super::DELETED_AT_COLUMN);
        let key: Vec<String> = table.key().iter().map(|c| quote(&c.name)).collect();
        let select = format!(
            "SELECT {} FROM {} WHERE {deleted_at} IS NULL",
            key.join(", "),
            quote(&table.table)
        );
        let matches: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 2))
            .collect();
        let update = format!(
            "UPDATE {} SET {deleted_at} = ?1 WHERE {deleted_at} IS NULL AND {}",
            quote(&table.table),
            matches.join(" AND ")
        );
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(fail)?;
        let mut missing: Vec<Vec<SqlValue>> = Vec::new();
        {
            let mut stmt = tx.prepare(&select).map_err(fail)?;
            let mut rows = stmt.query([]).map_err(fail)?;
            while let Some(row) = rows.next().map_err(fail)? {
                let mut stored = Vec::with_capacity(table.key_len);
                let mut json = Vec::with_capacity(table.key_len);
                for (i, c) in table.key().iter().enumerate() {
                    let v: SqlValue = row.get(i).map_err(fail)?;
                    json.push(stored_json(c.ty, &v));
                    stored.push(v);
                }
                if !live.contains(&super::row::stored_key(table, &json)) {
                    missing.push(stored);
                }
            }
        }
        let mut marked = 0u64;
        {
            let mut stmt = tx.prepare(&update).map_err(fail)?;
            for key in &missing {
                let params =
                    std::iter::once(SqlValue::Text(at.to_string())).chain(key.iter().cloned());
                marked += stmt.execute(params_from_iter(params)).map_err(fail)? as u64;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(marked)
    }
}

/// A stored key value as the JSON value of its column type.
fn stored_json(ty: ColumnType, v: &SqlValue) -> Value {
    match (ty, v) {
        (_, SqlValue::Null) => Value::Null,
        (ColumnType::Boolean, SqlValue::Integer(n)) => Value::Bool(*n != 0),
        (_, SqlValue::Integer(n)) => Value::from(*n),
        (_, SqlValue::Real(f)) => Value::from(*f),
        (ColumnType::Json, SqlValue::Text(t)) => {
            serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.clone()))
        }
        (_, SqlValue::Text(t)) => Value::String(t.clone()),
        (_, SqlValue::Blob(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}
