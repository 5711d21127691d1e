//! The four destination kinds as the pipeline tests write them into pipeline files and
//! read them back — straight from the files and the database with `rusqlite`, `postgres`
//! and the `parquet` crate, never through ionport's destination code, which is what the
//! tests check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ionport_core::destination::table_name;
use serde_json::{Map, Value, json};

/// The Postgres server of the tests (`cargo xtask test` makes sure one answers).
pub fn pg_url() -> String {
    std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A client of [`pg_url`]; panics with what to do when none answers.
pub fn pg_client() -> postgres::Client {
    postgres::Client::connect(&pg_url(), postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "Postgres is not reachable at {} ({e}); start one or set IONPORT_TEST_POSTGRES_URL (`cargo xtask test` starts a private server)",
            pg_url()
        )
    })
}

/// Drops the Postgres schemas `<prefix>_<env>` of a test, also when the test fails.
#[derive(Debug)]
pub struct DropSchemas {
    prefix: String,
    envs: Vec<String>,
}

impl DropSchemas {
    /// The schemas of `envs` under `prefix`, dropped when this is.
    pub fn new(prefix: impl Into<String>, envs: &[&str]) -> Self {
        DropSchemas {
            prefix: prefix.into(),
            envs: envs.iter().map(|e| e.to_string()).collect(),
        }
    }
}

impl Drop for DropSchemas {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
            for env in &self.envs {
                let _ = c.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}_{env}\" CASCADE",
                    self.prefix
                ));
            }
        }
    }
}

/// A destination kind and where a test's environments of it live.
#[derive(Debug, Clone)]
pub enum Dest {
    /// `<dir>/<env>.db`.
    Sqlite(PathBuf),
    /// Schemas `<prefix>_<env>` on [`pg_url`].
    Postgres(String),
    /// `<dir>/<env>/<table>.parquet`.
    Parquet(PathBuf),
    /// `<dir>/<env>/<table>.jsonl`.
    Jsonl(PathBuf),
}

impl Dest {
    /// The inline TOML table of environment `env`'s destination.
    pub fn toml(&self, env: &str) -> String {
        match self {
            Dest::Sqlite(d) => format!(
                "{{ type = \"sqlite\", path = '{}' }}",
                d.join(format!("{env}.db")).display()
            ),
            Dest::Postgres(prefix) => format!(
                "{{ type = \"postgres\", url = '{}', schema = \"{prefix}_{env}\" }}",
                pg_url()
            ),
            Dest::Parquet(d) => format!(
                "{{ type = \"parquet\", path = '{}' }}",
                d.join(env).display()
            ),
            Dest::Jsonl(d) => format!("{{ type = \"jsonl\", path = '{}' }}", d.join(env).display()),
        }
    }

    /// Whether every row lists every column (a table), rather than the fields it was
    /// written with (JSONL lines as the connector wrote them).
    pub fn tabular(&self) -> bool {
        !matches!(self, Dest::Jsonl(_))
    }

    /// Every row of a stream, as JSON objects (SQLite booleans read as integers).
    pub fn rows(&self, env: &str, stream: &str) -> Vec<Map<String, Value>> {
        self.read(env, stream).1
    }

    /// The column names of a stream's table (`None` for JSONL, which has none) and its
    /// rows.
    pub fn read(
        &self,
        env: &str,
        stream: &str,
    ) -> (Option<BTreeSet<String>>, Vec<Map<String, Value>>) {
        let table = table_name(stream);
        match self {
            Dest::Sqlite(d) => {
                let (names, rows) = crate::sqlite::table(&d.join(format!("{env}.db")), stream);
                (Some(names.into_iter().collect()), rows)
            }
            Dest::Postgres(prefix) => {
                let mut c = pg_client();
                let schema = format!("{prefix}_{env}");
                let names = c
                    .query(
                        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                        &[&schema, &table],
                    )
                    .unwrap_or_else(|e| panic!("{schema}.{table}: {e}"))
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect();
                let rows = c
                    .query(
                        &format!("SELECT row_to_json(t)::text FROM \"{schema}\".\"{table}\" t"),
                        &[],
                    )
                    .unwrap_or_else(|e| panic!("{schema}.{table}: {e}"))
                    .iter()
                    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("row_to_json"))
                    .collect();
                (Some(names), rows)
            }
            Dest::Parquet(d) => read_parquet(&d.join(env).join(format!("{table}.parquet"))),
            Dest::Jsonl(d) => {
                let path = d.join(env).join(format!("{table}.jsonl"));
                let rows = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).expect("a JSON line"))
                    .collect();
                (None, rows)
            }
        }
    }
}

/// The columns and rows of a Parquet file, with the `parquet` crate's own row reader.
fn read_parquet(path: &Path) -> (Option<BTreeSet<String>>, Vec<Map<String, Value>>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader =
        SerializedFileReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let names = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|row| {
            row.expect("a row")
                .get_column_iter()
                .map(|(name, field)| {
                    let v = match field {
                        Field::Null => Value::Null,
                        Field::Bool(b) => json!(b),
                        Field::Byte(n) => json!(n),
                        Field::Short(n) => json!(n),
                        Field::Int(n) => json!(n),
                        Field::Long(n) => json!(n),
                        Field::Float(n) => json!(n),
                        Field::Double(n) => json!(n),
                        Field::Str(s) => json!(s),
                        other => panic!("{}: column {name}: unexpected {other:?}", path.display()),
                    };
                    (name.clone(), v)
                })
                .collect()
        })
        .collect();
    (Some(names), rows)
}
