//! `Destination::mark_deleted` in each destination that needs no server: exactly the
//! unmarked rows whose key is not live are marked, their values kept; a second pass with
//! the same live keys marks nothing more (the first time stays); a row upserted again is
//! live again.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{DELETED_AT_COLUMN, Destination, StreamSpec};
use crate::read::Records;

fn spec() -> StreamSpec {
    StreamSpec {
        name: "customers".into(),
        record_schema: json!({"type": "object", "properties": {
            "cono": {"type": "integer"}, "id": {"type": "string"}, "v": {"type": ["number", "null"]},
            DELETED_AT_COLUMN: {"type": ["string", "null"]}
        }}),
        primary_key: vec!["cono".into(), "id".into()],
        cursor_field: None,
    }
}

fn commit(d: &dyn Destination, s: &StreamSpec, ids: &[&str], state: i64) {
    let text: String = ids
        .iter()
        .map(|id| format!("{{\"cono\":100,\"id\":\"{id}\",\"v\":1.5}}\n"))
        .collect();
    let records = Records::parse(&s.name, text.into_bytes()).unwrap();
    d.commit(s, &records, &json!(state)).unwrap();
    d.finish(s).unwrap();
}

/// The live key texts, as the keys-only pass builds them.
fn live(s: &StreamSpec, ids: &[&str]) -> HashSet<String> {
    let keys = super::StreamKeys::new(s).unwrap();
    let text: String = ids
        .iter()
        .map(|id| format!("{{\"cono\":100,\"id\":\"{id}\"}}\n"))
        .collect();
    let records = Records::parse(&s.name, text.into_bytes()).unwrap();
    records.iter().map(|r| keys.key(&r).unwrap()).collect()
}

/// Checks one destination; `rows` reads its rows back.
fn marks(d: &dyn Destination, rows: &dyn Fn() -> Vec<Map<String, Value>>) {
    let s = spec();
    d.prepare(&s).unwrap();
    commit(d, &s, &["A", "B", "C", "D"], 1);
    let marked = |rows: &[Map<String, Value>]| -> Vec<(String, String)> {
        let mut m: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.get(DELETED_AT_COLUMN).is_some_and(|v| !v.is_null()))
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r[DELETED_AT_COLUMN].as_str().unwrap().to_string(),
                )
            })
            .collect();
        m.sort();
        m
    };
    let n = d
        .mark_deleted(&s, &live(&s, &["A", "C"]), "2026-01-01T00:00:00.000Z")
        .unwrap();
    assert_eq!(n, 2, "{}", d.describe());
    let after = rows();
    assert_eq!(after.len(), 4, "nothing removed");
    assert_eq!(
        marked(&after),
        vec![
            ("B".to_string(), "2026-01-01T00:00:00.000Z".to_string()),
            ("D".to_string(), "2026-01-01T00:00:00.000Z".to_string())
        ]
    );
    assert!(
        after.iter().all(|r| r["v"] == json!(1.5)),
        "values kept: {after:?}"
    );
    assert_eq!(
        d.load_state(&s.name).unwrap(),
        Some(json!(1)),
        "the state is kept"
    );
    // Already marked rows keep the time their deletion was first seen.
    let n = d
        .mark_deleted(&s, &live(&s, &["A", "C"]), "2026-02-02T00:00:00.000Z")
        .unwrap();
    assert_eq!(n, 0);
    // B comes back at the source: live again.
    commit(d, &s, &["B"], 2);
    assert_eq!(
        marked(&rows()),
        vec![("D".to_string(), "2026-01-01T00:00:00.000Z".to_string())]
    );
    // A stream without the column refuses, naming it.
    let mut plain = spec();
    plain.name = "plain".into();
    plain.record_schema["properties"]
        .as_object_mut()
        .unwrap()
        .remove(DELETED_AT_COLUMN);
    d.prepare(&plain).unwrap();
    let e = d
        .mark_deleted(&plain, &HashSet::new(), "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains(DELETED_AT_COLUMN), "{e}");
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_marks_missing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let d = super::sqlite::SqliteDestination::open(&path).unwrap();
    let read = || {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = c
            .prepare(&format!("SELECT id, v, {DELETED_AT_COLUMN} FROM customers"))
            .unwrap();
        stmt.query_map([], |r| {
            let mut m = Map::new();
            m.insert("id".into(), json!(r.get::<_, String>(0)?));
            m.insert("v".into(), json!(r.get::<_, f64>(1)?));
            m.insert(
                DELETED_AT_COLUMN.into(),
                json!(r.get::<_, Option<String>>(2)?),
            );
            Ok(m)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    marks(&d, &read);
}

#[test]
fn jsonl_marks_missing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = super::jsonl::JsonlDestination::open(dir.path()).unwrap();
    let read = || {
        std::fs::read_to_string(dir.path().join("customers.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    marks(&d, &read);
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_marks_missing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = super::parquet::ParquetDestination::open(dir.path()).unwrap();
    let read = || super::parquet::read_dataset(&dir.path().join("customers.parquet")).unwrap();
    marks(&d, &read);
}
