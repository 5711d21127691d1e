//! M3 order lines in bulk: `customer_order_lines` reads the order-line table `OOLINE` by
//! EXPORTMI, a request per page, where `customer_order_lines_by_order` pays a request per
//! order. Both read through core's own host against the emulator; the lines must be the
//! same, the request counts are taken from the emulator's record of what it served, and
//! an incremental read after changes brings back the changed lines only.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Entity, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, ReadSummary, SyncMode};
use ionport_tests::emulated::Emulated;
use ionport_tests::recorder::{Recorded, Recorder};
use ionport_tests::{connector_libs, ionport, plugin_lib};
use serde_json::{Map, Value, json};

const CONO: u32 = 100;
/// Order heads; the emulator gives each three lines: 3,000 lines, as in the demo.
const SCALE: u64 = 1000;
const BULK: &str = "customer_order_lines";
const BY_ORDER: &str = "customer_order_lines_by_order";

/// A line's identity: order, line, suffix.
type LineKey = (String, i64, i64);

fn m3() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_m3"))
        .unwrap()
        .clone()
}

fn request(task: &str, mode: SyncMode, state: Option<Value>) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({ "company": CONO, "api_version": "v2" }),
        },
        task: task.into(),
        sync_mode: mode,
        state,
        // The connector's default page size: the one `plugins show` states costs for.
        page_size: None,
        pages_in_flight: None,
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

/// Reads `req` and returns its summary, what was recorded, and how many M3 API requests
/// the emulator served for it (its own record, not the connector's count).
fn read(
    emu: &Emulated,
    plugin: &LoadedPlugin,
    host: &Arc<Recorder>,
    req: &ReadRequest,
) -> (ReadSummary, Recorded, usize) {
    emu.control("DELETE", "requests", None);
    let summary = plugin
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("{} failed: {e}", req.task));
    let served = emu
        .emu
        .requests()
        .iter()
        .filter(|r| r.path.contains("/M3/m3api-rest/"))
        .count();
    let rec = host.take();
    assert_eq!(summary.records as usize, rec.records.len());
    (summary, rec, served)
}

fn line_key(r: &Map<String, Value>) -> LineKey {
    (
        r["ORNO"].as_str().unwrap().trim().to_string(),
        r["PONR"].as_i64().unwrap(),
        r["POSX"].as_i64().unwrap(),
    )
}

fn by_key(rec: &Recorded) -> BTreeMap<LineKey, Map<String, Value>> {
    let m: BTreeMap<_, _> = rec
        .records
        .iter()
        .map(|(_, v)| {
            let r = v.as_object().unwrap().clone();
            (line_key(&r), r)
        })
        .collect();
    assert_eq!(m.len(), rec.records.len(), "no line may come twice");
    m
}

/// The key of line `index` as the emulator's seed has it (its own text, parsed here).
fn seeded_key(emu: &Emulated, index: u64) -> LineKey {
    let r = emu.emu.dataset().record(Entity::OrderLine, CONO, index);
    let text = |name: &str| {
        let c = tables::OOLINE
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        r.get(c.field).mi(c.len, false).trim().to_string()
    };
    (
        text("OBORNO"),
        text("OBPONR").parse().unwrap(),
        text("OBPOSX").parse().unwrap(),
    )
}

#[test]
fn the_bulk_task_reads_the_same_lines_as_the_per_order_path_at_a_fraction_of_the_requests() {
    let emu = Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();

    let (_, bulk, bulk_requests) = read(
        &emu,
        &plugin,
        &host,
        &request(BULK, SyncMode::FullRefresh, None),
    );
    let (_, by_order, by_order_requests) = read(
        &emu,
        &plugin,
        &host,
        &request(BY_ORDER, SyncMode::FullRefresh, None),
    );
    let lines = by_key(&bulk);
    println!(
        "{} order lines: {BULK} {bulk_requests} M3 requests, {BY_ORDER} {by_order_requests}",
        lines.len()
    );

    let seeded: BTreeSet<LineKey> = (0..3 * SCALE).map(|i| seeded_key(&emu, i)).collect();
    assert_eq!(
        lines.keys().cloned().collect::<BTreeSet<_>>(),
        seeded,
        "the bulk task reads every seeded line"
    );
    assert_eq!(
        lines,
        by_key(&by_order),
        "both paths give the same lines, field for field"
    );
    // 3,000 lines at 1,000 a page: 3 full pages and the short one that ends the listing
    // (and at most a few more where pages in flight split the key range).
    assert!(
        (4..=8).contains(&bulk_requests),
        "{BULK}: {bulk_requests} requests"
    );
    // One LstLine per order, the OOHEAD pages and the metadata call.
    assert!(
        by_order_requests > SCALE as usize,
        "{BY_ORDER}: {by_order_requests} requests"
    );
}

#[test]
fn an_incremental_bulk_read_after_changes_returns_only_the_changed_lines() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 200,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();
    let (first, rec, _) = read(
        &emu,
        &plugin,
        &host,
        &request(BULK, SyncMode::Incremental, None),
    );
    assert_eq!(rec.records.len(), 600);
    let cursor = first.state.as_ref().unwrap()["cursor"].clone();
    assert!(cursor.is_number(), "{:?}", first.state);

    let indices = [5u64, 6, 299, 300, 599];
    let report = emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OOLINE", "indices": indices, "cono": CONO })),
    );
    assert_eq!(report["changed"], json!(indices.len()), "{report}");
    let changed: BTreeSet<LineKey> = indices.iter().map(|i| seeded_key(&emu, *i)).collect();

    let (second, rec, requests) = read(
        &emu,
        &plugin,
        &host,
        &request(BULK, SyncMode::Incremental, first.state.clone()),
    );
    let got = by_key(&rec);
    println!("incremental: {} lines in {requests} M3 requests", got.len());
    for k in &changed {
        assert!(got.contains_key(k), "changed line {k:?} is read again");
    }
    // Besides the changed lines, only those stamped exactly at the old cursor come back
    // (the cursor is inclusive; destinations upsert them by key).
    for (k, r) in &got {
        assert!(
            changed.contains(k) || r["LMTS"] == cursor,
            "unchanged line {k:?} read again: {r:?}"
        );
    }
    assert!(got.len() < 600 / 10, "{} lines", got.len());
    assert_ne!(
        second.state.unwrap()["cursor"],
        cursor,
        "the cursor advances"
    );
}

#[test]
fn a_state_the_per_order_path_saved_under_the_old_name_starts_a_full_pass_and_says_so() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();
    for old in [
        json!({ "complete": true }),
        json!({ "complete": false, "last_order": "O000000030" }),
    ] {
        let (summary, rec, _) = read(
            &emu,
            &plugin,
            &host,
            &request(BULK, SyncMode::Incremental, Some(old.clone())),
        );
        assert_eq!(summary.records, 150, "from {old}: every line");
        assert!(
            rec.logs
                .iter()
                .any(|l| l.contains("per-order path") && l.contains(BY_ORDER)),
            "from {old}: the read says why it is a full pass: {:?}",
            rec.logs
        );
        let state = summary.state.unwrap();
        assert!(state["cursor"].is_number(), "{state}");
    }
}

#[test]
fn plugins_show_states_each_tasks_requests_per_1000_records_in_text_and_json() {
    let out = ionport(
        &connector_libs(),
        &["plugins", "show", "infor-m3", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cost = |task: &str| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == task)
            .unwrap_or_else(|| panic!("no task {task}: {v}"))["requests_per_1000_records"]
            .as_f64()
    };
    assert_eq!(cost(BULK), Some(1.0));
    assert_eq!(cost(BY_ORDER), Some(334.0));
    for id in ["infor-ln", "infor-datalake"] {
        let out = ionport(&connector_libs(), &["plugins", "show", id, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for t in v["tasks"].as_array().unwrap() {
            assert!(t["requests_per_1000_records"].is_number(), "{id}: {t}");
        }
    }

    let out = ionport(&connector_libs(), &["plugins", "show", "infor-m3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line_after = |task: &str| {
        let mut lines = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(&format!("{task} ")));
        lines.nth(2).unwrap_or_default().trim().to_string()
    };
    assert_eq!(
        line_after(BULK),
        "requests per 1,000 records: 1 (default page size)",
        "{text}"
    );
    assert_eq!(
        line_after(BY_ORDER),
        "requests per 1,000 records: 334 (default page size)",
        "{text}"
    );
}
