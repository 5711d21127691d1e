//! The destinations a run writes into, and the check that one holds exactly the records
//! it should: rows and distinct primary keys, counted in the destination itself.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use ionport_core::destination::{DestinationConfig, table_name};
use serde_json::Value;

pub fn pg_url() -> String {
    std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[derive(Clone)]
pub enum Dest {
    Jsonl(PathBuf),
    Parquet(PathBuf),
    Sqlite(PathBuf),
    Postgres(String),
}

/// What a destination holds for one stream.
pub struct Held {
    pub rows: u64,
    pub distinct_keys: u64,
}

impl Dest {
    pub fn new(kind: &str, dir: &Path, tag: &str) -> Dest {
        match kind {
            "jsonl" => Dest::Jsonl(dir.join(format!("jsonl-{tag}"))),
            "parquet" => Dest::Parquet(dir.join(format!("parquet-{tag}"))),
            "sqlite" => Dest::Sqlite(dir.join(format!("sqlite-{tag}.db"))),
            "postgres" => Dest::Postgres(format!("bench_{}_{tag}", std::process::id())),
            other => panic!("unknown destination {other} (jsonl, parquet, sqlite, postgres)"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Dest::Jsonl(_) => "jsonl",
            Dest::Parquet(_) => "parquet",
            Dest::Sqlite(_) => "sqlite",
            Dest::Postgres(_) => "postgres",
        }
    }

    pub fn config(&self) -> DestinationConfig {
        match self {
            Dest::Jsonl(p) => DestinationConfig::Jsonl { path: p.clone() },
            Dest::Parquet(p) => DestinationConfig::Parquet { path: p.clone() },
            Dest::Sqlite(p) => DestinationConfig::Sqlite { path: p.clone() },
            Dest::Postgres(schema) => DestinationConfig::Postgres {
                url: pg_url(),
                schema: schema.clone(),
            },
        }
    }

    pub fn toml(&self) -> String {
        match self {
            Dest::Jsonl(p) => format!("{{ type = \"jsonl\", path = '{}' }}", p.display()),
            Dest::Parquet(p) => format!("{{ type = \"parquet\", path = '{}' }}", p.display()),
            Dest::Sqlite(p) => format!("{{ type = \"sqlite\", path = '{}' }}", p.display()),
            Dest::Postgres(schema) => format!(
                "{{ type = \"postgres\", url = '{}', schema = \"{schema}\" }}",
                pg_url()
            ),
        }
    }

    pub fn remove(&self) {
        match self {
            Dest::Jsonl(p) | Dest::Parquet(p) => {
                let _ = std::fs::remove_dir_all(p);
            }
            Dest::Sqlite(p) => {
                for ext in ["db", "db-wal", "db-shm"] {
                    let _ = std::fs::remove_file(p.with_extension(ext));
                }
            }
            Dest::Postgres(schema) => {
                if let Ok(mut c) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
                }
            }
        }
    }

    /// Rows and distinct primary keys of `stream`, read back from the destination.
    pub fn held(&self, stream: &str, key: &[String]) -> Result<Held, String> {
        let table = table_name(stream);
        match self {
            Dest::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).map_err(|e| e.to_string())?;
                let cols = quoted(key);
                let q = |sql: &str| -> Result<u64, String> {
                    c.query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map(|n| n as u64)
                        .map_err(|e| format!("{sql}: {e}"))
                };
                Ok(Held {
                    rows: q(&format!("SELECT COUNT(*) FROM \"{table}\""))?,
                    distinct_keys: q(&format!(
                        "SELECT COUNT(*) FROM (SELECT DISTINCT {cols} FROM \"{table}\")"
                    ))?,
                })
            }
            Dest::Postgres(schema) => {
                let mut c = postgres::Client::connect(&pg_url(), postgres::NoTls)
                    .map_err(|e| e.to_string())?;
                let cols = quoted(key);
                let mut q = |sql: &str| -> Result<u64, String> {
                    c.query_one(sql, &[])
                        .map(|r| r.get::<_, i64>(0) as u64)
                        .map_err(|e| format!("{sql}: {e}"))
                };
                Ok(Held {
                    rows: q(&format!("SELECT COUNT(*) FROM \"{schema}\".\"{table}\""))?,
                    distinct_keys: q(&format!(
                        "SELECT COUNT(*) FROM (SELECT DISTINCT {cols} FROM \"{schema}\".\"{table}\") d"
                    ))?,
                })
            }
            Dest::Jsonl(dir) => jsonl_held(&dir.join(format!("{table}.jsonl")), key),
            Dest::Parquet(dir) => parquet_held(&dir.join(format!("{table}.parquet")), key),
        }
    }
}

fn quoted(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Distinct keys are kept as 64-bit hashes: 10M keys in 80 MB of the bench's memory, with
/// a chance of a collision (which would show as a missing record) of about 3 in a million.
#[derive(Default)]
struct KeySet {
    hashes: HashSet<u64>,
    state: std::hash::RandomState,
}

impl KeySet {
    fn insert(&mut self, parts: impl Hash) {
        self.hashes.insert(self.state.hash_one(parts));
    }
}

fn jsonl_held(path: &Path, key: &[String]) -> Result<Held, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut keys = KeySet::default();
    let mut rows = 0;
    for line in std::io::BufReader::with_capacity(1 << 20, f).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("line {rows}: {e}"))?;
        let parts: Vec<String> = key.iter().map(|k| v[k].to_string()).collect();
        keys.insert(parts);
        rows += 1;
    }
    Ok(Held {
        rows,
        distinct_keys: keys.hashes.len() as u64,
    })
}

/// Reads only the key columns of a Parquet file.
fn parquet_held(path: &Path, key: &[String]) -> Result<Held, String> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string())?;
    let roots: Vec<usize> = key
        .iter()
        .map(|k| {
            b.schema()
                .index_of(k)
                .map_err(|_| format!("{}: no key column {k}", path.display()))
        })
        .collect::<Result<_, _>>()?;
    let mask = ProjectionMask::roots(b.parquet_schema(), roots);
    let reader = b
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()
        .map_err(|e| e.to_string())?;
    let mut keys = KeySet::default();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        for i in 0..batch.num_rows() {
            let parts: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| cell(c.as_ref(), i))
                .collect::<Result<_, _>>()?;
            keys.insert(parts);
        }
        rows += batch.num_rows() as u64;
    }
    Ok(Held {
        rows,
        distinct_keys: keys.hashes.len() as u64,
    })
}

/// A key cell as text; key columns are strings or numbers.
fn cell(a: &dyn Array, i: usize) -> Result<String, String> {
    if a.is_null(i) {
        return Ok("null".into());
    }
    if let Some(s) = a.as_string_opt::<i32>() {
        return Ok(s.value(i).to_string());
    }
    if let Some(s) = a.as_string_opt::<i64>() {
        return Ok(s.value(i).to_string());
    }
    if let Some(n) = a.as_primitive_opt::<Int64Type>() {
        return Ok(n.value(i).to_string());
    }
    if let Some(n) = a.as_primitive_opt::<Int32Type>() {
        return Ok(n.value(i).to_string());
    }
    if let Some(n) = a.as_primitive_opt::<Float64Type>() {
        return Ok(n.value(i).to_string());
    }
    Err(format!("key column of type {} not counted", a.data_type()))
}
