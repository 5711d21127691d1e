//! M3 EXPORTMI tables read in key ranges (`pages_in_flight` > 1, `where KEY >= start and
//! KEY < end`), through the built cdylib and core's own host (`Recorder` over
//! `ConnectionHost`, with `Counting` around it) against a real emulator:
//!
//! - `customer_table` and `table:*` streams (one key column after the company, and order
//!   lines with three, whose first is shared by several rows) give exactly the records of
//!   a read one page at a time, and the emulator's count, at page sizes that do and do not
//!   divide the counts, including pages smaller than the rows sharing an order number;
//! - every checkpoint's resume key (`resume.key`) is a true watermark;
//! - a read that fails half-way resumes from its last checkpoint and lands each record;
//! - incremental reads with pages in flight still read what changed, and only that.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{TableDef, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::counting::Counting;
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use serde_json::{Value, json};

const CONO: u32 = 100;
const SCALE: u64 = 1_000;
/// EXPORTMI tasks, their key columns after the company, and their table.
const TASKS: [(&str, &[&str], &TableDef); 3] = [
    ("customer_table", &["OKCUNO"], &tables::OCUSMA),
    ("table:MITMAS", &["MMITNO"], &tables::MITMAS),
    (
        "table:OOLINE",
        &["OBORNO", "OBPONR", "OBPOSX"],
        &tables::OOLINE,
    ),
];

fn m3() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_m3"))
        .unwrap()
        .clone()
}

fn emulator(latency: Duration) -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        latency,
        ..EmulatorConfig::default()
    })
}

fn request(
    task: &str,
    mode: SyncMode,
    page: u32,
    in_flight: u32,
    state: Option<Value>,
) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({ "company": CONO, "api_version": "v2" }),
        },
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: Some(page),
        pages_in_flight: Some(in_flight),
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

fn full(task: &str, page: u32, in_flight: u32, state: Option<Value>) -> ReadRequest {
    request(task, SyncMode::FullRefresh, page, in_flight, state)
}

/// A record's key as the test sees it: the key columns' JSON values, joined.
fn key_of(r: &Value, cols: &[&str]) -> String {
    cols.iter()
        .map(|c| r[*c].to_string())
        .collect::<Vec<_>>()
        .join("/")
}

struct Read {
    /// Keys in emission order.
    keys: Vec<String>,
    records: BTreeMap<String, Value>,
    checkpoints: Vec<Value>,
    committed: Vec<u64>,
    requests: Vec<String>,
    /// Each request's `QERY`.
    queries: Vec<String>,
    most: u64,
    state: Value,
}

fn read(p: &LoadedPlugin, host: &Arc<Counting>, req: &ReadRequest, cols: &[&str]) -> Read {
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("read {} failed: {e}", req.task));
    let (rec, most) = host.take();
    let queries = host
        .take_queries()
        .into_iter()
        .filter_map(|q| q.into_iter().find(|(k, _)| k == "QERY").map(|(_, v)| v))
        .collect();
    let keys: Vec<String> = rec.records.iter().map(|(_, v)| key_of(v, cols)).collect();
    assert_eq!(summary.records as usize, keys.len());
    let records = rec
        .records
        .into_iter()
        .map(|(_, v)| (key_of(&v, cols), v))
        .collect();
    Read {
        keys,
        records,
        checkpoints: rec.checkpoints,
        committed: rec.committed,
        requests: rec.requests.into_iter().map(|(_, p)| p).collect(),
        queries,
        most,
        state: summary.state.unwrap(),
    }
}

/// The emulator's own count of the company's rows of `table` (deleted ones excluded).
fn count(emu: &Emulated, table: &TableDef) -> usize {
    let ds = emu.emu.dataset();
    (0..ds.count(table.entity, CONO))
        .filter(|i| !ds.record(table.entity, CONO, *i).deleted())
        .count()
}

/// `customer_table`'s watermark is its customer number: each customer at or below it
/// was emitted before the checkpoint that carries it.
fn assert_watermarks(read: &Read, all: &BTreeSet<String>, what: &str) {
    for (state, &before) in read.checkpoints.iter().zip(&read.committed) {
        let Some(mark) = state["resume"]["key"].as_str() else {
            continue;
        };
        let mark = Value::from(mark).to_string();
        let seen: BTreeSet<&String> = read.keys[..before as usize].iter().collect();
        let missing: Vec<&String> = all
            .iter()
            .filter(|k| **k <= mark && !seen.contains(k))
            .take(3)
            .collect();
        assert!(
            missing.is_empty(),
            "{what}: watermark {mark} passed {missing:?}"
        );
    }
}

/// A query that states a range's end (`PAGE < 'end'`).
fn bounded(qery: &str) -> bool {
    qery.contains(" < '")
}

#[test]
fn key_ranges_give_exactly_the_records_of_one_page_at_a_time() {
    let emu = emulator(Duration::ZERO);
    let p = m3();
    let host = Counting::new(emu.host());
    for (task, cols, table) in TASKS {
        let count = count(&emu, table);
        let pages: &[u32] = if task == "table:OOLINE" {
            &[2, 7, 100] // pages of 2: three lines share an order number
        } else {
            &[7, 100, 1000]
        };
        for &page in pages {
            let what = |n: u32| format!("{task}, pages of {page}, {n} in flight");
            let one = read(&p, &host, &full(task, page, 1, None), cols);
            assert_eq!(one.keys.len(), count, "{}", what(1));
            assert_eq!(one.records.len(), count, "{}: duplicates", what(1));
            assert_eq!(one.most, 1, "{}", what(1));
            assert!(!one.queries.iter().any(|q| bounded(q)), "{}", what(1));
            let all: BTreeSet<String> = one.records.keys().cloned().collect();
            for n in [2, 4] {
                let many = read(&p, &host, &full(task, page, n, None), cols);
                assert_eq!(many.keys.len(), count, "{}: count", what(n));
                assert!(many.records == one.records, "{}: other records", what(n));
                assert!(
                    many.most <= u64::from(n),
                    "{}: {} at once",
                    what(n),
                    many.most
                );
                if task == "customer_table" {
                    assert_watermarks(&many, &all, &what(n));
                }
                assert_eq!(many.state.get("resume"), None, "{}", what(n));
                // (A first page of 2 order lines of one order gives no key density: that
                // read goes one page at a time.)
                if page > 2 && count > 2 * page as usize {
                    assert!(
                        many.queries.iter().any(|q| bounded(q)),
                        "{}: no request stated a range's end",
                        what(n)
                    );
                }
                let bound = one.requests.len() + one.requests.len() / 4 + 2 * n as usize;
                assert!(
                    many.requests.len() <= bound,
                    "{}: {} requests, one at a time {}",
                    what(n),
                    many.requests.len(),
                    one.requests.len()
                );
            }
        }
    }
}

#[test]
fn a_key_range_read_that_fails_half_way_resumes_and_lands_every_record() {
    let emu = Arc::new(emulator(Duration::ZERO));
    let p = m3();
    let host = Counting::new(emu.host());
    for (task, cols, _) in TASKS {
        let all: BTreeSet<String> = read(&p, &host, &full(task, 50, 1, None), cols)
            .records
            .into_keys()
            .collect();
        let e2 = emu.clone();
        host.arm(6, move || {
            // A 500 is the answer (the host does not retry it): the read fails.
            e2.control(
                "PUT",
                "faults",
                Some(json!({"kind": "500", "api": "m3", "count": 1})),
            );
        });
        let e = p
            .read(
                host.clone() as Arc<dyn HostCallbacks>,
                &full(task, 50, 4, None),
            )
            .expect_err("the read fails half-way");
        assert_eq!(e.kind(), "gateway", "{task}: {e}");
        let (failed, _) = host.take();
        let committed = *failed.committed.last().unwrap() as usize;
        let state = failed.checkpoints.last().cloned().unwrap();
        assert!(state["resume"]["key"].is_string(), "{task}: {state}");
        let landed: Vec<String> = failed.records[..committed]
            .iter()
            .map(|(_, v)| key_of(v, cols))
            .collect();
        assert!(
            landed.len() < all.len(),
            "{task}: the read stopped half-way"
        );
        let rest = read(&p, &host, &full(task, 50, 4, Some(state.clone())), cols);
        let mut union: BTreeSet<String> = landed.iter().cloned().collect();
        union.extend(rest.keys.iter().cloned());
        assert!(
            union == all,
            "{task}: {} of {} records",
            union.len(),
            all.len()
        );
        assert_eq!(
            rest.records.len(),
            rest.keys.len(),
            "{task}: twice in one read"
        );
        if task == "customer_table" {
            // Resumed after the watermark: exactly the customers above it, and a record
            // read twice lies above it (the destination's upsert replaces it).
            let mark = Value::from(state["resume"]["key"].as_str().unwrap()).to_string();
            let above: BTreeSet<String> = all.iter().filter(|k| **k > mark).cloned().collect();
            let resumed: BTreeSet<String> = rest.records.keys().cloned().collect();
            assert!(resumed == above, "{task}: resumed after {mark}");
            assert!(
                landed
                    .iter()
                    .filter(|k| rest.records.contains_key(*k))
                    .all(|k| *k > mark),
                "{task}: a record at or below {mark} was read twice"
            );
        }
    }
}

#[test]
fn incremental_reads_in_key_ranges_read_what_changed() {
    let emu = emulator(Duration::ZERO);
    let p = m3();
    let host = Counting::new(emu.host());
    let cols = &["OKCUNO"][..];
    let inc = |state| request("customer_table", SyncMode::Incremental, 20, 4, state);
    let first = read(&p, &host, &inc(None), cols);
    assert_eq!(first.keys.len(), count(&emu, &tables::OCUSMA));
    assert!(first.state["cursor"].is_number(), "{}", first.state);
    let report = emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OCUSMA", "count": 60, "cono": CONO })),
    );
    let changed: BTreeSet<String> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Value::from(k.as_str().unwrap().trim()).to_string())
        .collect();
    assert_eq!(changed.len(), 60);
    // 60 changes in pages of 20: the changed rows are themselves read in ranges.
    let second = read(&p, &host, &inc(Some(first.state.clone())), cols);
    let got: BTreeSet<String> = second.records.keys().cloned().collect();
    assert!(
        changed.is_subset(&got),
        "missing {:?}",
        changed.difference(&got)
    );
    // Besides the changed ones, at most the records stamped at the old cursor.
    assert!(second.keys.len() <= 60 + 1, "{} records", second.keys.len());
    assert_eq!(second.records.len(), second.keys.len(), "twice in one read");
    let third = read(&p, &host, &inc(Some(second.state.clone())), cols);
    assert!(third.keys.len() <= 60, "{} records", third.keys.len());
}

#[test]
fn key_ranges_are_in_flight_at_once_but_never_more_than_asked() {
    let emu = emulator(Duration::from_millis(15));
    let p = m3();
    let host = Counting::new(emu.host());
    let cols = &["OKCUNO"][..];
    let one = read(&p, &host, &full("customer_table", 50, 1, None), cols);
    assert_eq!(one.most, 1);
    let four = read(&p, &host, &full("customer_table", 50, 4, None), cols);
    assert!((2..=4).contains(&four.most), "{} at once", four.most);
    assert!(four.records == one.records);
}
