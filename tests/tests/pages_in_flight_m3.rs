//! M3 list transactions read in key ranges (`pages_in_flight` > 1), through the built
//! cdylib and core's own host (`Recorder` over `ConnectionHost`, with `Counting` around
//! it) against a real emulator:
//!
//! - every list task gives exactly the records of a read one page at a time, in both MI
//!   shapes, at page sizes that do and do not divide the counts;
//! - every checkpoint's resume key (`resume.key`) is a true watermark: each record at or below it was
//!   handed over before the checkpoint (the rule a restart relies on);
//! - a read that fails half-way resumes from its last checkpoint and no record is lost;
//!   a record read twice lies above the watermark (destinations upsert it on its key);
//! - several requests really are outstanding at once, never more than asked.

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
/// List tasks and their key field.
const TASKS: [(&str, &str, &TableDef); 3] = [
    ("customers", "CUNO", &tables::OCUSMA),
    ("items", "ITNO", &tables::MITMAS),
    ("suppliers", "SUNO", &tables::CIDMAS),
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
    shape: &str,
    page: u32,
    in_flight: u32,
    state: Option<Value>,
) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({ "company": CONO, "api_version": shape }),
        },
        task: task.into(),
        sync_mode: SyncMode::FullRefresh,
        state,
        page_size: Some(page),
        pages_in_flight: Some(in_flight),
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

struct Read {
    /// Keys in emission order.
    keys: Vec<String>,
    /// Records by key.
    records: BTreeMap<String, Value>,
    checkpoints: Vec<Value>,
    /// Records emitted before each checkpoint.
    committed: Vec<u64>,
    requests: usize,
    most: u64,
}

fn read(p: &LoadedPlugin, host: &Arc<Counting>, req: &ReadRequest, key: &str) -> Read {
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("read {} failed: {e}", req.task));
    let (rec, most) = host.take();
    let keys: Vec<String> = rec
        .records
        .iter()
        .map(|(_, v)| v[key].as_str().unwrap().to_string())
        .collect();
    assert_eq!(summary.records as usize, keys.len());
    let records = rec
        .records
        .into_iter()
        .map(|(_, v)| (v[key].as_str().unwrap().to_string(), v))
        .collect();
    Read {
        keys,
        records,
        checkpoints: rec.checkpoints,
        committed: rec.committed,
        requests: rec.requests.len(),
        most,
    }
}

/// Every checkpoint's resume key is a watermark: each key at or below it (of `all`) was
/// emitted before that checkpoint.
fn assert_watermarks(read: &Read, all: &BTreeSet<String>, what: &str) {
    for (state, &before) in read.checkpoints.iter().zip(&read.committed) {
        let Some(mark) = state["resume"]["key"].as_str() else {
            continue;
        };
        let seen: BTreeSet<&String> = read.keys[..before as usize].iter().collect();
        let missing: Vec<&String> = all
            .iter()
            .filter(|k| k.as_str() <= mark && !seen.contains(k))
            .take(3)
            .collect();
        assert!(
            missing.is_empty(),
            "{what}: watermark {mark} passed {missing:?}"
        );
    }
}

#[test]
fn key_ranges_give_exactly_the_records_of_one_page_at_a_time() {
    let emu = emulator(Duration::ZERO);
    let p = m3();
    let host = Counting::new(emu.host());
    for shape in ["v1", "v2"] {
        for (task, key, table) in TASKS {
            let ds = emu.emu.dataset();
            let count = (0..ds.count(table.entity, CONO))
                .filter(|i| !ds.record(table.entity, CONO, *i).deleted())
                .count();
            for page in [7, 100, 1000] {
                let what = |n: u32| format!("{task} {shape}, pages of {page}, {n} in flight");
                let one = read(&p, &host, &request(task, shape, page, 1, None), key);
                assert_eq!(one.keys.len(), count, "{}", what(1));
                assert_eq!(one.records.len(), one.keys.len(), "{}: duplicates", what(1));
                assert_eq!(one.most, 1, "{}", what(1));
                let all: BTreeSet<String> = one.records.keys().cloned().collect();
                for n in [2, 4, 8] {
                    let many = read(&p, &host, &request(task, shape, page, n, None), key);
                    assert_eq!(many.keys.len(), one.keys.len(), "{}: count", what(n));
                    assert!(many.records == one.records, "{}: other records", what(n));
                    assert!(
                        many.most <= u64::from(n),
                        "{}: {} at once",
                        what(n),
                        many.most
                    );
                    assert_watermarks(&many, &all, &what(n));
                    assert_eq!(many.checkpoints.last(), Some(&json!({})));
                    // The cost of ranges: each one's last page reaches past its end, and
                    // ranges found empty cost a request each.
                    let bound = one.requests + one.requests / 4 + 2 * n as usize;
                    assert!(
                        many.requests <= bound,
                        "{}: {} requests, one at a time {}",
                        what(n),
                        many.requests,
                        one.requests
                    );
                }
            }
        }
    }
}

#[test]
fn a_key_range_read_that_fails_half_way_resumes_and_loses_nothing() {
    let emu = Arc::new(emulator(Duration::ZERO));
    let p = m3();
    let host = Counting::new(emu.host());
    let all: BTreeSet<String> = read(&p, &host, &request("customers", "v2", 50, 1, None), "CUNO")
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
    let req = request("customers", "v2", 50, 4, None);
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("the read fails half-way");
    assert_eq!(e.kind(), "gateway", "{e}");
    let (failed, _) = host.take();
    let committed = *failed.committed.last().unwrap() as usize;
    let state = failed.checkpoints.last().cloned().unwrap();
    let mark = state["resume"]["key"].as_str().unwrap().to_string();
    let landed: Vec<String> = failed.records[..committed]
        .iter()
        .map(|(_, v)| v["CUNO"].as_str().unwrap().to_string())
        .collect();
    let rest = read(
        &p,
        &host,
        &request("customers", "v2", 50, 4, Some(state)),
        "CUNO",
    );
    // The resumed read starts after the watermark: exactly the keys above it.
    let above: BTreeSet<String> = all.iter().filter(|k| **k > mark).cloned().collect();
    assert!(
        rest.records.keys().cloned().collect::<BTreeSet<_>>() == above,
        "resumed after {mark}"
    );
    let mut union: BTreeSet<String> = landed.iter().cloned().collect();
    union.extend(rest.keys.iter().cloned());
    assert!(
        union == all,
        "records lost: {} of {}",
        union.len(),
        all.len()
    );
    // Read twice only above the watermark, where the destination's upsert replaces them.
    let again: Vec<&String> = landed
        .iter()
        .filter(|k| rest.records.contains_key(*k))
        .collect();
    assert!(
        again.iter().all(|k| **k > mark),
        "a record at or below {mark} was read twice"
    );
}

#[test]
fn key_ranges_are_in_flight_at_once_but_never_more_than_asked() {
    let emu = emulator(Duration::from_millis(15));
    let p = m3();
    let host = Counting::new(emu.host());
    let one = read(&p, &host, &request("customers", "v2", 50, 1, None), "CUNO");
    assert_eq!(one.most, 1);
    let four = read(&p, &host, &request("customers", "v2", 50, 4, None), "CUNO");
    assert!((2..=4).contains(&four.most), "{} at once", four.most);
    assert!(four.records == one.records);
}
