//! One writer per destination (a second `open` waits a bounded time, then names the
//! holder), damaged commit logs (reported with the file; `repair` repairs), and the
//! segment merge of the file destinations (each key once however many windows a run
//! seals, crash points of the merge, outputs of earlier versions).
//!
//! The Postgres test needs a server at `IONPORT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and fails when there is none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ionport_core::destination::jsonl::JsonlDestination;
use ionport_core::destination::{
    self, Destination, DestinationConfig, DestinationError, StreamSpec,
};
use ionport_core::read::Records;
use serde_json::{Map, Value, json};

fn spec(name: &str, keyed: bool) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        record_schema: json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "v": {"type": "string"}
        }}),
        primary_key: if keyed { vec!["id".into()] } else { vec![] },
        cursor_field: None,
    }
}

fn rec(id: i64, v: &str) -> Map<String, Value> {
    match json!({"id": id, "v": v}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn jsonl_rows(path: &Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `rows` by id, failing on a duplicate.
fn by_id(rows: Vec<Map<String, Value>>) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for r in rows {
        let id = r["id"].as_i64().unwrap();
        let v = r["v"].as_str().unwrap().to_string();
        assert!(out.insert(id, v).is_none(), "duplicate id {id}");
    }
    out
}

fn assert_busy_names_this_process(e: DestinationError, lock_hint: &str) {
    let text = e.to_string();
    assert!(
        matches!(e, DestinationError::Busy { .. }),
        "a typed Busy error: {text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "names the holder's pid: {text}"
    );
    assert!(text.contains(lock_hint), "names the lock: {text}");
}

#[test]
fn a_second_writer_waits_a_bounded_time_then_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        (
            DestinationConfig::Jsonl {
                path: dir.path().join("jsonl"),
            },
            "writer.lock",
        ),
        (
            DestinationConfig::Parquet {
                path: dir.path().join("parquet"),
            },
            "writer.lock",
        ),
        (
            DestinationConfig::Sqlite {
                path: dir.path().join("db/out.db"),
            },
            "out.db.writer.lock",
        ),
    ];
    for (config, hint) in configs {
        let first = destination::open_waiting(&config, Duration::ZERO).unwrap();
        let e = destination::open_waiting(&config, Duration::from_millis(300)).unwrap_err();
        assert_busy_names_this_process(e, hint);
        // The holder is unharmed by the attempt, and once it lets go the next one gets in.
        let s = spec("s", true);
        first
            .commit(&s, &Records::from_maps(&[rec(1, "a")]).unwrap(), &json!(1))
            .unwrap();
        first.finish(&s).unwrap();
        drop(first);
        let second = destination::open_waiting(&config, Duration::ZERO).unwrap();
        assert_eq!(second.load_state("s").unwrap(), Some(json!(1)));
    }
}

#[test]
fn postgres_has_one_writer_per_schema() {
    let url = std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("ionport_test_writers_{}", std::process::id());
    let config = DestinationConfig::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let first = destination::open_waiting(&config, Duration::ZERO).unwrap();
    let e = destination::open_waiting(&config, Duration::from_millis(300)).unwrap_err();
    assert_busy_names_this_process(e, "advisory lock");
    // Another schema of the same database is another destination.
    let other = DestinationConfig::Postgres {
        url: url.clone(),
        schema: format!("{schema}_other"),
    };
    drop(destination::open_waiting(&other, Duration::ZERO).unwrap());
    drop(first);
    drop(destination::open_waiting(&config, Duration::ZERO).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP SCHEMA \"{schema}\" CASCADE; DROP SCHEMA \"{schema}_other\" CASCADE"
    ))
    .unwrap();
}

#[test]
fn postgres_lets_the_partitions_of_a_stream_write_side_by_side_each_with_its_state() {
    let url = std::env::var("IONPORT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("ionport_test_partitions_{}", std::process::id());
    let config = DestinationConfig::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let wait = Duration::from_millis(300);
    let open_part = |p: &str, wait| destination::open_partition_writer_waiting(&config, p, wait);
    let p0 = open_part("t#0/2", Duration::ZERO).unwrap();
    let p1 = open_part("t#1/2", Duration::ZERO).unwrap();
    // The same partition twice would be two writers of one partition, and a writer of
    // the whole schema would write beside them: both are refused.
    assert_busy_names_this_process(open_part("t#0/2", wait).unwrap_err(), "t#0/2");
    assert_busy_names_this_process(
        destination::open_waiting(&config, wait).unwrap_err(),
        "advisory lock",
    );
    let s = spec("t", true);
    p0.prepare(&s).unwrap();
    p1.prepare(&s).unwrap();
    p0.commit_as(
        &s,
        &Records::from_maps(&[rec(1, "a"), rec(2, "b")]).unwrap(),
        &json!({"resume": 4}),
        "t#0/2",
    )
    .unwrap();
    p1.commit_as(
        &s,
        &Records::from_maps(&[rec(3, "c")]).unwrap(),
        &json!({"resume": 6}),
        "t#1/2",
    )
    .unwrap();
    drop((p0, p1));
    // Once they are gone, the whole schema's writer gets in, and keeps partitions out.
    let whole = destination::open_waiting(&config, Duration::ZERO).unwrap();
    assert_busy_names_this_process(open_part("t#1/2", wait).unwrap_err(), "advisory lock");
    assert_eq!(
        whole.load_state("t#0/2").unwrap(),
        Some(json!({"resume": 4}))
    );
    assert_eq!(
        whole.load_state("t#1/2").unwrap(),
        Some(json!({"resume": 6}))
    );
    assert_eq!(whole.load_state("t").unwrap(), None);
    drop(whole);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: Vec<(i64, String)> = c
        .query(
            &format!("SELECT id, v FROM \"{schema}\".t ORDER BY id"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}

/// Overwrites part of line `line` (1-based) of `file` with bytes of the same length, as
/// two writers interleaving in one log leave it.
fn damage_line(file: &Path, line: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    let start: usize = bytes
        .split(|b| *b == b'\n')
        .take(line - 1)
        .map(|l| l.len() + 1)
        .sum();
    bytes[start + 3..start + 9].copy_from_slice(b"}{\"id\"");
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_damaged_log_is_reported_with_its_file_and_repair_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let config = DestinationConfig::Jsonl { path: root.clone() };
    let s = spec("items", true);
    let all: Vec<_> = (0..10).map(|i| rec(i, "v1")).collect();
    let d = destination::open(&config).unwrap();
    d.commit(
        &s,
        &Records::from_maps(&all[..5]).unwrap(),
        &json!({"page": 1}),
    )
    .unwrap();
    d.commit(
        &s,
        &Records::from_maps(&all[5..]).unwrap(),
        &json!({"page": 2}),
    )
    .unwrap();
    drop(d);
    let log = root.join("_ionport/items/log.jsonl");
    damage_line(&log, 3);

    // Every later run of the stream fails, naming the file, the line and the command.
    for _ in 0..2 {
        let d = destination::open(&config).unwrap();
        let e = d.finish(&s).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(&e, DestinationError::Damaged { line: 3, .. }),
            "{text}"
        );
        assert!(text.contains(&log.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("ionport repair jsonl:{}", root.display())),
            "{text}"
        );
    }

    let report = destination::repair(&config).unwrap();
    assert_eq!(report.streams.len(), 1, "{report:?}");
    let r = &report.streams[0];
    assert_eq!((r.stream.as_str(), r.damaged, r.kept), ("items", 1, 9));
    // Nothing is lost: the damaged line is kept aside, byte for byte.
    let aside = std::fs::read_to_string(&r.set_aside).unwrap();
    assert_eq!(aside.lines().count(), 1);
    assert!(aside.contains("}{\"id\""), "{aside}");

    // The state was reset: the rerun reads everything again and the output is exact.
    let d = destination::open(&config).unwrap();
    assert_eq!(d.load_state("items").unwrap(), None);
    d.commit(&s, &Records::from_maps(&all).unwrap(), &json!({"page": 2}))
        .unwrap();
    d.finish(&s).unwrap();
    let want: BTreeMap<i64, String> = (0..10).map(|i| (i, "v1".to_string())).collect();
    assert_eq!(by_id(jsonl_rows(&root.join("items.jsonl"))), want);
    drop(d);
    assert!(destination::repair(&config).unwrap().streams.is_empty());
}

#[test]
fn many_sealed_windows_merge_to_each_key_once_with_the_latest_version() {
    for keyed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let d = JsonlDestination::open(dir.path())
            .unwrap()
            .with_compact_window(2 << 10);
        let s = spec("s", keyed);
        // The oracle: what each key was last set to, kept by hand; and every record sent.
        let mut latest = BTreeMap::new();
        let mut sent = 0;
        for batch in 0..60i64 {
            let rows: Vec<_> = (0..20)
                .map(|i| rec((batch * 37 + i * 11) % 300, &format!("b{batch}i{i}")))
                .collect();
            for r in &rows {
                latest.insert(
                    r["id"].as_i64().unwrap(),
                    r["v"].as_str().unwrap().to_string(),
                );
            }
            sent += rows.len();
            d.commit(&s, &Records::from_maps(&rows).unwrap(), &json!(batch))
                .unwrap();
            if batch == 29 {
                // A finish in the middle: later windows merge into an existing output.
                d.finish(&s).unwrap();
            }
        }
        d.finish(&s).unwrap();
        let rows = jsonl_rows(&dir.path().join("s.jsonl"));
        if keyed {
            assert_eq!(by_id(rows), latest);
        } else {
            assert_eq!(rows.len(), sent, "append-only: every record once");
        }
    }
}

#[test]
fn a_merge_cut_short_after_its_rename_is_completed_without_duplicates() {
    // Keyless, so that merging the same segments twice would show as duplicates.
    let dir = tempfile::tempdir().unwrap();
    let s = spec("s", false);
    let d = JsonlDestination::open(dir.path())
        .unwrap()
        .with_compact_window(64);
    for b in 0..4 {
        d.commit(&s, &Records::from_maps(&[rec(b, "x")]).unwrap(), &json!(b))
            .unwrap();
    }
    let state = dir.path().join("_ionport/s/state.json");
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let segments: Vec<(std::path::PathBuf, Vec<u8>)> =
        std::fs::read_dir(dir.path().join("_ionport/s"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
    assert!(!segments.is_empty(), "the log was sealed");
    assert_eq!(saved["log_len"], json!(0));
    d.finish(&s).unwrap();
    drop(d);
    // Put back the state as it was after the output was marked complete and renamed,
    // with the segments it still lists.
    saved["merging"] = json!(true);
    std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();
    for (p, b) in &segments {
        std::fs::write(p, b).unwrap();
    }
    let d = JsonlDestination::open(dir.path()).unwrap();
    d.commit(&s, &Records::from_maps(&[rec(9, "y")]).unwrap(), &json!(9))
        .unwrap();
    d.finish(&s).unwrap();
    assert_eq!(jsonl_rows(&dir.path().join("s.jsonl")).len(), 5);
}

#[test]
fn an_output_of_an_earlier_version_in_arrival_order_is_merged_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // What an earlier version left: an output in arrival order, a state without segments.
    std::fs::create_dir_all(dir.path().join("_ionport/s")).unwrap();
    let old: Vec<String> = [5, 1, 3, 2]
        .iter()
        .map(|i| serde_json::to_string(&rec(*i, "old")).unwrap())
        .collect();
    std::fs::write(dir.path().join("s.jsonl"), old.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("_ionport/s/state.json"),
        r#"{"stream": "s", "state": {"p": 1}, "log_len": 0, "updated_at": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("_ionport/s/log.jsonl"), b"").unwrap();
    let d = JsonlDestination::open(dir.path()).unwrap();
    let s = spec("s", true);
    assert_eq!(d.load_state("s").unwrap(), Some(json!({"p": 1})));
    d.commit(
        &s,
        &Records::from_maps(&[rec(3, "new"), rec(4, "new")]).unwrap(),
        &json!({"p": 2}),
    )
    .unwrap();
    d.finish(&s).unwrap();
    let want: BTreeMap<i64, String> = [(1, "old"), (2, "old"), (3, "new"), (4, "new"), (5, "old")]
        .into_iter()
        .map(|(i, v)| (i, v.to_string()))
        .collect();
    assert_eq!(by_id(jsonl_rows(&dir.path().join("s.jsonl"))), want);
}
