//! The destinations, each through the same scenario: create, commit batches with upserts
//! across and within batches, evolve the schema, state round trip, a crash (drop without
//! finish; garbage after the last state for files) and a rerun, bad records, reset.
//!
//! Postgres tests need a server at `IONPORT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); they fail, never skip, when it is not
//! there (`cargo xtask test` starts one when needed). Each uses its own schema and drops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use ionport_core::destination::{self, Destination, DestinationConfig, StreamSpec, table_name};
use ionport_core::read::Records;
use serde_json::{Map, Value, json};

fn spec(name: &str, with_note: bool) -> StreamSpec {
    let mut props = json!({
        "id": {"type": "integer", "format": "int64"},
        "name": {"type": ["string", "null"]},
        "price": {"type": ["number", "null"], "format": "double"},
        "active": {"type": "boolean"},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "extra": {"type": "object"}
    });
    if with_note {
        props["note"] = json!({"type": ["string", "null"]});
    }
    StreamSpec {
        name: name.into(),
        record_schema: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": props
        }),
        primary_key: vec!["id".into()],
        cursor_field: None,
    }
}

fn rec(id: i64, name: &str) -> Map<String, Value> {
    let v = json!({
        "id": id,
        "name": name,
        "price": id as f64 + 0.5,
        "active": id % 2 == 0,
        "tags": ["a", name],
        "extra": {"k": id, "nested": {"x": [1, 2]}}
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn with_note(mut r: Map<String, Value>, note: &str) -> Map<String, Value> {
    r.insert("note".into(), json!(note));
    r
}

/// Records keyed by id, nulls removed (stores differ in how they show a missing value).
fn canon(rows: Vec<Map<String, Value>>) -> BTreeMap<i64, Map<String, Value>> {
    let mut out = BTreeMap::new();
    for r in rows {
        let id = r["id"].as_i64().expect("id");
        let r: Map<String, Value> = r.into_iter().filter(|(_, v)| !v.is_null()).collect();
        assert!(out.insert(id, r).is_none(), "duplicate id {id}");
    }
    out
}

/// How a test reaches one destination.
trait Harness {
    fn config(&self) -> DestinationConfig;
    /// Every row of the stream's final output (after `finish` for files), typed.
    fn rows(&self, stream: &StreamSpec) -> Vec<Map<String, Value>>;
    /// What a crash in the middle of a commit leaves behind (files: garbage after the
    /// last committed state).
    fn crash_debris(&self, _stream: &StreamSpec) {}
    fn open(&self) -> Box<dyn Destination> {
        destination::open(&self.config()).expect("open")
    }
}

fn assert_rows(h: &dyn Harness, s: &StreamSpec, expected: &[Map<String, Value>]) {
    let got = canon(h.rows(s));
    let want = canon(expected.to_vec());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "ids"
    );
    for (id, w) in &want {
        assert_eq!(&got[id], w, "row {id}");
    }
}

/// The scenario every destination goes through.
fn scenario(h: &dyn Harness) {
    let s1 = spec("table:MITMAS", false);
    let d = h.open();
    assert!(!d.describe().is_empty());
    d.prepare(&s1).unwrap();
    assert_eq!(d.load_state(&s1.name).unwrap(), None);
    assert!(d.states().unwrap().is_empty());

    // Upserts within a batch (id 2 twice) and across batches (id 3).
    d.commit(
        &s1,
        &Records::from_maps(&[rec(1, "a"), rec(2, "b"), rec(3, "c"), rec(2, "b2")]).unwrap(),
        &json!({"cursor": 1}),
    )
    .unwrap();
    d.commit(
        &s1,
        &Records::from_maps(&[rec(3, "c2"), rec(4, "d")]).unwrap(),
        &json!({"cursor": 2}),
    )
    .unwrap();
    assert_eq!(d.load_state(&s1.name).unwrap(), Some(json!({"cursor": 2})));
    assert_eq!(
        d.states().unwrap(),
        vec![(s1.name.clone(), json!({"cursor": 2}))]
    );
    d.finish(&s1).unwrap();
    let mut expected = vec![rec(1, "a"), rec(2, "b2"), rec(3, "c2"), rec(4, "d")];
    assert_rows(h, &s1, &expected);
    // finish again changes nothing.
    d.finish(&s1).unwrap();
    assert_rows(h, &s1, &expected);

    // A bad record is an error naming the stream, field and type; nothing is committed.
    let mut bad = rec(9, "bad");
    bad.insert("price".into(), json!("cheap"));
    let e = d
        .commit(
            &s1,
            &Records::from_maps(&[rec(8, "ok"), bad]).unwrap(),
            &json!({"cursor": 99}),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table:MITMAS") && e.contains("price") && e.contains("string"),
        "{e}"
    );
    let mut unknown = rec(9, "x");
    unknown.insert("surprise".into(), json!(1));
    let e = d
        .commit(
            &s1,
            &Records::from_maps(&[unknown]).unwrap(),
            &json!({"cursor": 99}),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("surprise"), "{e}");
    let mut no_key = rec(9, "x");
    no_key.remove("id");
    let e = d
        .commit(
            &s1,
            &Records::from_maps(&[no_key]).unwrap(),
            &json!({"cursor": 99}),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("id") && e.contains("missing"), "{e}");
    let mut not_int = rec(9, "x");
    not_int.insert("id".into(), json!(9.5));
    let e = d
        .commit(
            &s1,
            &Records::from_maps(&[not_int]).unwrap(),
            &json!({"cursor": 99}),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`id`") && e.contains("number") && e.contains("integer"),
        "{e}"
    );
    assert_eq!(d.load_state(&s1.name).unwrap(), Some(json!({"cursor": 2})));

    // Schema evolution: a new column.
    let s2 = spec("table:MITMAS", true);
    d.prepare(&s2).unwrap();
    d.commit(
        &s2,
        &Records::from_maps(&[
            with_note(rec(5, "e"), "new"),
            with_note(rec(1, "a2"), "changed"),
        ])
        .unwrap(),
        &json!({"cursor": 3}),
    )
    .unwrap();
    d.finish(&s2).unwrap();
    expected[0] = with_note(rec(1, "a2"), "changed");
    expected.push(with_note(rec(5, "e"), "new"));
    assert_rows(h, &s2, &expected);

    // A crash: committed, then dropped without finish, debris after the last state.
    d.commit(
        &s2,
        &Records::from_maps(&[rec(6, "f"), rec(4, "d2")]).unwrap(),
        &json!({"cursor": 4}),
    )
    .unwrap();
    drop(d);
    h.crash_debris(&s2);
    let d = h.open();
    assert_eq!(d.load_state(&s2.name).unwrap(), Some(json!({"cursor": 4})));
    // The rerun resumes after cursor 4 and sends one more record, and re-sends one.
    d.prepare(&s2).unwrap();
    d.commit(
        &s2,
        &Records::from_maps(&[rec(7, "g"), rec(6, "f")]).unwrap(),
        &json!({"cursor": 5}),
    )
    .unwrap();
    d.finish(&s2).unwrap();
    expected[3] = rec(4, "d2");
    expected.push(rec(6, "f"));
    expected.push(rec(7, "g"));
    assert_rows(h, &s2, &expected);

    // A second stream, then resets.
    let other = spec("Other Stream", false);
    d.prepare(&other).unwrap();
    d.commit(
        &other,
        &Records::from_maps(&[rec(1, "x")]).unwrap(),
        &json!({"page": "p1"}),
    )
    .unwrap();
    d.finish(&other).unwrap();
    assert_rows(h, &other, &[rec(1, "x")]);
    assert_eq!(
        d.states().unwrap(),
        vec![
            ("Other Stream".to_string(), json!({"page": "p1"})),
            (s2.name.clone(), json!({"cursor": 5})),
        ]
    );
    d.reset_state(Some(&s2.name)).unwrap();
    assert_eq!(d.load_state(&s2.name).unwrap(), None);
    assert_eq!(
        d.load_state("Other Stream").unwrap(),
        Some(json!({"page": "p1"}))
    );
    d.reset_state(None).unwrap();
    assert!(d.states().unwrap().is_empty());
    drop(d);
    // The data stays after a state reset, and survives a reopen.
    let d = h.open();
    assert!(d.states().unwrap().is_empty());
    assert_rows(h, &s2, &expected);
}

/// A crash before anything was committed, then a rerun from scratch.
fn crash_before_first_commit(h: &dyn Harness) {
    let s = spec("fresh", false);
    let d = h.open();
    d.prepare(&s).unwrap();
    drop(d);
    h.crash_debris(&s);
    let d = h.open();
    assert_eq!(d.load_state("fresh").unwrap(), None);
    d.commit(&s, &Records::from_maps(&[rec(1, "a")]).unwrap(), &json!(1))
        .unwrap();
    d.finish(&s).unwrap();
    assert_rows(h, &s, &[rec(1, "a")]);
}

/// Several streams committing at once from different threads.
fn concurrent_streams(h: &dyn Harness) {
    let d = h.open();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let d = &d;
            scope.spawn(move || {
                let s = spec(&format!("conc{t}"), false);
                d.prepare(&s).unwrap();
                for b in 0..5 {
                    let recs: Vec<_> = (0..20).map(|i| rec(b * 10 + i, "n")).collect();
                    d.commit(
                        &s,
                        &Records::from_maps(&recs).unwrap(),
                        &json!({"batch": b}),
                    )
                    .unwrap();
                }
                d.finish(&s).unwrap();
            });
        }
    });
    for t in 0..3 {
        let s = spec(&format!("conc{t}"), false);
        assert_eq!(h.rows(&s).len(), 60);
        assert_eq!(d.load_state(&s.name).unwrap(), Some(json!({"batch": 4})));
    }
}

fn run_all(h: &dyn Harness) {
    scenario(h);
    crash_before_first_commit(h);
    concurrent_streams(h);
}

/// Converts a row read from a typed store back into the record's JSON types.
fn retype(s: &StreamSpec, mut row: Map<String, Value>) -> Map<String, Value> {
    let props = &s.record_schema["properties"];
    for (k, v) in row.iter_mut() {
        let ty = &props[k]["type"];
        let is = |t: &str| ty == t || ty.as_array().is_some_and(|a| a.contains(&json!(t)));
        if v.is_null() {
            continue;
        }
        if is("boolean") {
            if let Some(i) = v.as_i64() {
                *v = json!(i != 0);
            }
        } else if (is("array") || is("object"))
            && let Some(text) = v.as_str()
        {
            *v = serde_json::from_str(text).expect("json column");
        }
    }
    row
}

// ---------------------------------------------------------------- SQLite

struct SqliteHarness {
    path: PathBuf,
}

impl Harness for SqliteHarness {
    fn config(&self) -> DestinationConfig {
        DestinationConfig::Sqlite {
            path: self.path.clone(),
        }
    }

    fn rows(&self, s: &StreamSpec) -> Vec<Map<String, Value>> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{}\"", table_name(&s.name)))
            .unwrap();
        let names: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let rows = stmt
            .query_map([], |r| {
                let mut m = Map::new();
                for (i, n) in names.iter().enumerate() {
                    let v = match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(x) => json!(x),
                        rusqlite::types::ValueRef::Real(x) => json!(x),
                        rusqlite::types::ValueRef::Text(t) => {
                            json!(String::from_utf8_lossy(t))
                        }
                        rusqlite::types::ValueRef::Blob(_) => panic!("blob"),
                    };
                    m.insert(n.clone(), v);
                }
                Ok(m)
            })
            .unwrap();
        rows.map(|r| retype(s, r.unwrap())).collect()
    }
}

#[test]
fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let h = SqliteHarness {
        path: dir.path().join("sub/dir/ionport.db"),
    };
    run_all(&h);
    // The table name rule.
    let conn = rusqlite::Connection::open(&h.path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('table_mitmas', 'other_stream', '_ionport_state')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn sqlite_type_change_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let h = SqliteHarness {
        path: dir.path().join("t.db"),
    };
    let d = h.open();
    d.prepare(&spec("s", false)).unwrap();
    let mut changed = spec("s", false);
    changed.record_schema["properties"]["name"] = json!({"type": "integer"});
    let e = d.prepare(&changed).unwrap_err().to_string();
    assert!(e.contains("name") && e.contains("integer"), "{e}");
    let mut rekeyed = spec("s", false);
    rekeyed.primary_key = vec!["name".into()];
    let e = d.prepare(&rekeyed).unwrap_err().to_string();
    assert!(e.contains("primary key"), "{e}");
}

#[test]
fn streams_with_the_same_table_name_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let h = SqliteHarness {
        path: dir.path().join("t.db"),
    };
    let d = h.open();
    d.prepare(&spec("a:b", false)).unwrap();
    let e = d.prepare(&spec("a-b", false)).unwrap_err().to_string();
    assert!(e.contains("a_b") && e.contains("a:b"), "{e}");
}

// ---------------------------------------------------------------- JSONL and Parquet

/// Garbage after the last committed state, as a crash in the middle of a commit or of a
/// compaction leaves it.
fn file_debris(dir: &std::path::Path, s: &StreamSpec, ext: &str) {
    use std::io::Write;
    let table = table_name(&s.name);
    let log = dir.join("_ionport").join(&table).join("log.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"{\"id\": 999, \"name\": \"uncommitted\"}\n{\"id\": 1000, \"na")
        .unwrap();
    std::fs::write(dir.join(format!("{table}.{ext}.tmp")), b"half a file").unwrap();
    // A state write cut before its rename (`ionport_core::atomic`).
    let state_tmp = dir
        .join("_ionport")
        .join(&table)
        .join(".state.json.x1y2z3.tmp");
    std::fs::write(state_tmp, b"{\"half").unwrap();
}

struct JsonlHarness {
    dir: PathBuf,
}

impl Harness for JsonlHarness {
    fn config(&self) -> DestinationConfig {
        DestinationConfig::Jsonl {
            path: self.dir.clone(),
        }
    }

    fn rows(&self, s: &StreamSpec) -> Vec<Map<String, Value>> {
        let path = self.dir.join(format!("{}.jsonl", table_name(&s.name)));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn crash_debris(&self, s: &StreamSpec) {
        file_debris(&self.dir, s, "jsonl");
    }
}

#[test]
fn jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let h = JsonlHarness {
        dir: dir.path().join("out"),
    };
    run_all(&h);
    assert!(h.dir.join("table_mitmas.jsonl").exists());
    assert!(!h.dir.join("table_mitmas.jsonl.tmp").exists());
    assert!(
        !h.dir
            .join("_ionport/table_mitmas/.state.json.x1y2z3.tmp")
            .exists()
    );
}

struct ParquetHarness {
    dir: PathBuf,
}

impl Harness for ParquetHarness {
    fn config(&self) -> DestinationConfig {
        DestinationConfig::Parquet {
            path: self.dir.clone(),
        }
    }

    fn rows(&self, s: &StreamSpec) -> Vec<Map<String, Value>> {
        let path = self.dir.join(format!("{}.parquet", table_name(&s.name)));
        destination::parquet::read_dataset(&path).unwrap()
    }

    fn crash_debris(&self, s: &StreamSpec) {
        file_debris(&self.dir, s, "parquet");
    }
}

#[test]
fn parquet() {
    let dir = tempfile::tempdir().unwrap();
    let h = ParquetHarness {
        dir: dir.path().join("out"),
    };
    run_all(&h);
    assert!(h.dir.join("table_mitmas.parquet").exists());
}

#[test]
fn parquet_narrows_no_type_widens_one_and_many_rows_stream() {
    let dir = tempfile::tempdir().unwrap();
    let h = ParquetHarness {
        dir: dir.path().to_path_buf(),
    };
    let d = h.open();
    let s = spec("big", false);
    // More than one read batch and one row group's worth of upserts.
    for b in 0..3 {
        let recs: Vec<_> = (0..10_000).map(|i| rec(i, &format!("v{b}"))).collect();
        d.commit(&s, &Records::from_maps(&recs).unwrap(), &json!(b))
            .unwrap();
        d.finish(&s).unwrap();
    }
    let rows = h.rows(&s);
    assert_eq!(rows.len(), 10_000);
    assert!(rows.iter().all(|r| r["name"] == "v2"));
    // A narrower type is refused (a string column cannot become a number) ...
    let mut narrowed = spec("big", false);
    narrowed.record_schema["properties"]["name"] = json!({"type": "integer"});
    let e = d.prepare(&narrowed).unwrap_err().to_string();
    assert!(e.contains("name") && e.contains("integer"), "{e}");
    // ... a wider one is taken (schema drift's `evolve`): the rows written before read
    // back with their numbers as text.
    let mut widened = spec("big", false);
    widened.record_schema["properties"]["price"] = json!({"type": ["string", "null"]});
    d.prepare(&widened).unwrap();
    let recs = vec![
        json!({"id": 1, "name": "w", "price": "1.75", "active": true, "tags": [], "extra": {}})
            .as_object()
            .unwrap()
            .clone(),
    ];
    d.commit(&widened, &Records::from_maps(&recs).unwrap(), &json!(3))
        .unwrap();
    d.finish(&widened).unwrap();
    let rows = h.rows(&widened);
    assert_eq!(rows.len(), 10_000);
    let price = |id: i64| rows.iter().find(|r| r["id"] == id).unwrap()["price"].clone();
    assert_eq!(price(1), json!("1.75"));
    assert_eq!(price(2), json!("2.5"));
}

#[test]
fn a_compaction_cut_short_is_finished_by_the_next_run() {
    // The output was replaced but the log not yet emptied: finishing again must not
    // duplicate anything.
    let dir = tempfile::tempdir().unwrap();
    let h = JsonlHarness {
        dir: dir.path().to_path_buf(),
    };
    let d = h.open();
    let s = spec("s", false);
    d.commit(
        &s,
        &Records::from_maps(&[rec(1, "a"), rec(2, "b")]).unwrap(),
        &json!(1),
    )
    .unwrap();
    let state_path = h.dir.join("_ionport/s/state.json");
    let before = std::fs::read(&state_path).unwrap();
    let log_before = std::fs::read(h.dir.join("_ionport/s/log.jsonl")).unwrap();
    d.finish(&s).unwrap();
    drop(d);
    // Put back the state and log as they were just before the log was emptied.
    std::fs::write(&state_path, before).unwrap();
    std::fs::write(h.dir.join("_ionport/s/log.jsonl"), log_before).unwrap();
    let d = h.open();
    d.commit(
        &s,
        &Records::from_maps(&[rec(2, "b2"), rec(3, "c")]).unwrap(),
        &json!(2),
    )
    .unwrap();
    d.finish(&s).unwrap();
    assert_rows(&h, &s, &[rec(1, "a"), rec(2, "b2"), rec(3, "c")]);
}

// ---------------------------------------------------------------- Postgres

fn pg_url() -> String {
    std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn pg_client() -> postgres::Client {
    match postgres::Client::connect(&pg_url(), postgres::NoTls) {
        Ok(c) => c,
        Err(e) => panic!(
            "Postgres is not reachable at IONPORT_TEST_POSTGRES_URL ({:?}): {e}; `cargo xtask test` starts one",
            DestinationConfig::Postgres {
                url: pg_url(),
                schema: String::new()
            }
        ),
    }
}

/// A Postgres schema of its own, dropped at the end (even when the test fails).
struct PgHarness {
    schema: String,
}

impl PgHarness {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("ionport_test_{tag}_{}_{nanos}", std::process::id());
        let mut c = pg_client();
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .unwrap();
        PgHarness { schema }
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ));
        }
    }
}

impl Harness for PgHarness {
    fn config(&self) -> DestinationConfig {
        DestinationConfig::Postgres {
            url: pg_url(),
            schema: self.schema.clone(),
        }
    }

    fn rows(&self, s: &StreamSpec) -> Vec<Map<String, Value>> {
        let mut c = pg_client();
        let rows = c
            .query(
                &format!(
                    "SELECT row_to_json(t)::text FROM \"{}\".\"{}\" t",
                    self.schema,
                    table_name(&s.name)
                ),
                &[],
            )
            .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
            .collect()
    }
}

#[test]
fn postgres() {
    let h = PgHarness::new("all");
    run_all(&h);
    let mut c = pg_client();
    let types: Vec<(String, String)> = c
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'table_mitmas' ORDER BY column_name",
            &[&h.schema],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let types: BTreeMap<_, _> = types.into_iter().collect();
    assert_eq!(types["id"], "bigint");
    assert_eq!(types["name"], "text");
    assert_eq!(types["price"], "double precision");
    assert_eq!(types["active"], "boolean");
    assert_eq!(types["tags"], "jsonb");
    assert_eq!(types["extra"], "jsonb");
}

#[test]
fn postgres_type_change_is_an_error() {
    let h = PgHarness::new("types");
    let d = h.open();
    d.prepare(&spec("s", false)).unwrap();
    let mut changed = spec("s", false);
    changed.record_schema["properties"]["name"] = json!({"type": "integer"});
    let e = d.prepare(&changed).unwrap_err().to_string();
    assert!(e.contains("name") && e.contains("bigint"), "{e}");
}

#[test]
fn postgres_from_a_blocking_thread_of_a_runtime() {
    let h = PgHarness::new("rt");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = h.config();
    rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let d = destination::open(&config).unwrap();
            let s = spec("s", false);
            d.commit(&s, &Records::from_maps(&[rec(1, "a")]).unwrap(), &json!(1))
                .unwrap();
            assert_eq!(d.load_state("s").unwrap(), Some(json!(1)));
        })
        .await
        .unwrap();
    });
}

#[test]
fn postgres_password_never_shown() {
    const SECRET: &str = "hunter2-s3cret";
    // Unreachable server.
    let url = format!("postgres://postgres:{SECRET}@127.0.0.1:1/test");
    let config = DestinationConfig::Postgres {
        url: url.clone(),
        schema: "public".into(),
    };
    assert!(!format!("{config:?}").contains(SECRET));
    let e = destination::open(&config).unwrap_err();
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(
            text.contains("postgres://postgres:***@127.0.0.1:1/test"),
            "{text}"
        );
    }
    // A reachable server, the password added to the URL (accepted or refused, depending
    // on its authentication): describe, Debug and every error hide it.
    let h = PgHarness::new("secret");
    let mut u = url::Url::parse(&pg_url()).unwrap();
    u.set_password(Some(SECRET)).unwrap();
    let config = DestinationConfig::Postgres {
        url: u.to_string(),
        schema: h.schema.clone(),
    };
    match destination::open(&config) {
        Ok(d) => {
            assert!(!d.describe().contains(SECRET));
            assert!(!format!("{d:?}").contains(SECRET));
            let s = spec("s", false);
            // A value the server refuses (NUL in text) gives a server error.
            let e = d
                .commit(
                    &s,
                    &Records::from_maps(&[rec(1, "nul\u{0}here")]).unwrap(),
                    &json!(1),
                )
                .unwrap_err()
                .to_string();
            assert!(!e.contains(SECRET), "{e}");
            let e = d.commit(
                &s,
                &Records::from_maps(&[rec(1, "a"), rec(2, "b")]).unwrap(),
                &json!(1),
            );
            assert!(e.is_ok(), "{e:?}");
        }
        Err(e) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(SECRET), "{text}");
        }
    }
}

#[test]
fn reading_the_state_of_an_unknown_stream_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = JsonlHarness {
        dir: dir.path().to_path_buf(),
    };
    let d = h.open();
    assert_eq!(d.load_state("nope").unwrap(), None);
    d.reset_state(Some("nope")).unwrap();
    assert!(!dir.path().join("_ionport/nope").exists());
    assert!(d.states().unwrap().is_empty());
}

#[test]
fn file_destinations_compact_as_the_log_grows_so_memory_stays_bounded() {
    use ionport_core::destination::jsonl::JsonlDestination;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A window of 4 KiB: every few commits fold the log into the output.
    let d = JsonlDestination::open(&out)
        .unwrap()
        .with_compact_window(4 << 10);
    let s = spec("items", false);
    d.prepare(&s).unwrap();
    for batch in 0..40i64 {
        // Each batch brings 25 new keys and replaces 5 earlier ones.
        let mut rows: Vec<_> = (0..25).map(|i| rec(batch * 25 + i, "new")).collect();
        rows.extend((0..5).map(|i| rec(i * 7, &format!("v{batch}"))));
        d.commit(
            &s,
            &Records::from_maps(&rows).unwrap(),
            &json!({ "batch": batch }),
        )
        .unwrap();
        let log = std::fs::metadata(out.join("_ionport/items/log.jsonl"))
            .unwrap()
            .len();
        assert!(
            log <= (4 << 10) + 16 * 1024,
            "the log is compacted as it grows: {log} bytes"
        );
    }
    d.finish(&s).unwrap();
    let text = std::fs::read_to_string(out.join("items.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: std::collections::BTreeSet<i64> =
        rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(rows.len(), 1000, "each key once");
    assert_eq!(ids.len(), 1000);
    let latest = rows.iter().find(|r| r["id"] == json!(7)).unwrap();
    assert_eq!(
        latest["name"],
        json!("v39"),
        "the latest version wins across compactions"
    );
    assert_eq!(d.load_state("items").unwrap(), Some(json!({ "batch": 39 })));
}
