//! States the M3 connector saved before it moved onto the SDK's stream API still resume
//! where they stopped: a list's `{"complete": false, "last_key": K}`, EXPORTMI's
//! `{"cursor": C, "run": {"since", "last_key", "max"}}` (its key as text, and as the key
//! list a still earlier version saved), the per-order path's `last_order`, and finished
//! states. A state of no shape the connector ever saved is refused, naming the task —
//! never read as "no state", which would silently start over.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{TableDef, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use ionport_tests::recorder::Recorder;
use serde_json::{Value, json};

const CONO: u32 = 100;
const MARK: &str = "C000000100";

fn m3() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_m3"))
        .unwrap()
        .clone()
}

fn request(task: &str, mode: SyncMode, state: Value) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({ "company": CONO }),
        },
        task: task.into(),
        sync_mode: mode,
        state: Some(state),
        page_size: Some(20),
        pages_in_flight: Some(1),
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

/// The customer numbers of the company in the emulator's seed (not deleted), from the
/// seed itself.
fn customers(emu: &Emulated, table: &TableDef) -> BTreeSet<String> {
    let ds = emu.emu.dataset();
    let cuno = table.columns.iter().find(|c| c.name == "OKCUNO").unwrap();
    (0..ds.count(table.entity, CONO))
        .map(|i| ds.record(table.entity, CONO, i))
        .filter(|r| !r.deleted())
        .map(|r| r.get(cuno.field).mi(cuno.len, false).trim().to_string())
        .collect()
}

fn read(
    plugin: &LoadedPlugin,
    host: &Arc<Recorder>,
    req: &ReadRequest,
    field: &str,
) -> (Vec<String>, Value) {
    let summary = plugin.read(host.clone(), req).unwrap();
    let rec = host.take();
    let keys = rec
        .records
        .iter()
        .map(|(_, r)| r[field].as_str().unwrap().to_string())
        .collect();
    (keys, summary.state.unwrap())
}

#[test]
fn a_list_and_an_exportmi_state_of_the_old_shape_resume_after_their_key() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 240,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();
    let all = customers(&emu, &tables::OCUSMA);
    let above: Vec<String> = all.iter().filter(|k| k.as_str() > MARK).cloned().collect();
    assert!(!above.is_empty() && above.len() < all.len());

    let old_list = json!({ "complete": false, "last_key": MARK });
    let (keys, state) = read(
        &plugin,
        &host,
        &request("customers", SyncMode::FullRefresh, old_list),
        "CUNO",
    );
    assert_eq!(keys, above, "customers resumed after {MARK}");
    assert_eq!(
        state,
        json!({}),
        "a finished read, in the stream state's shape"
    );

    let (keys, _) = read(
        &plugin,
        &host,
        &request(
            "customers",
            SyncMode::FullRefresh,
            json!({ "complete": true }),
        ),
        "CUNO",
    );
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), all);

    for last_key in [json!(MARK), json!([CONO.to_string(), MARK])] {
        let old_export = json!({
            "cursor": null,
            "run": { "since": null, "last_key": last_key, "max": 5 },
        });
        let (keys, state) = read(
            &plugin,
            &host,
            &request("customer_table", SyncMode::Incremental, old_export),
            "OKCUNO",
        );
        assert_eq!(keys, above, "customer_table resumed after {last_key}");
        // The pass is complete: its highest stamp (above the 5 the run had seen) is the
        // cursor, and nothing is under way.
        assert!(state["cursor"].as_f64().unwrap() > 5.0, "{state}");
        assert_eq!(state.get("resume"), None, "{state}");
    }
}

#[test]
fn a_finished_exportmi_state_reads_incrementally_from_its_cursor() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 240,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();
    let full = plugin
        .read(
            host.clone(),
            &request("customer_table", SyncMode::FullRefresh, Value::Null),
        )
        .unwrap();
    let rec = host.take();
    let mut stamps: Vec<f64> = rec
        .records
        .iter()
        .map(|(_, r)| r["OKLMTS"].as_f64().unwrap())
        .collect();
    stamps.sort_by(f64::total_cmp);
    let median = stamps[stamps.len() / 2];
    let newer = stamps.iter().filter(|s| **s >= median).count();
    assert!(newer < stamps.len() && full.records as usize == stamps.len());

    let old = json!({ "cursor": median, "run": null });
    let summary = plugin
        .read(
            host.clone(),
            &request("customer_table", SyncMode::Incremental, old),
        )
        .unwrap();
    let rec = host.take();
    assert_eq!(
        summary.records as usize, newer,
        "the records from the cursor on"
    );
    assert!(
        rec.records
            .iter()
            .all(|(_, r)| r["OKLMTS"].as_f64().unwrap() >= median)
    );
}

#[test]
fn the_per_order_paths_old_state_resumes_after_its_order() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();
    let old = json!({ "complete": false, "last_order": "O000000030" });
    let (orders, state) = read(
        &plugin,
        &host,
        &request("customer_order_lines_by_order", SyncMode::FullRefresh, old),
        "ORNO",
    );
    assert!(!orders.is_empty());
    assert!(
        orders.iter().all(|o| o.as_str() > "O000000030"),
        "{orders:?}"
    );
    assert_eq!(orders[0], "O000000031", "the next order's lines first");
    assert_eq!(state, json!({}));
}

#[test]
fn a_state_of_no_shape_the_connector_saved_is_refused_naming_the_task() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 20,
        ..EmulatorConfig::default()
    });
    let host = emu.host();
    let plugin = m3();
    for (task, state) in [
        ("customers", json!({ "offset": 40 })),
        ("customer_table", json!({ "cursor": 1, "next": "page-2" })),
        ("customers", json!({ "resume": { "offset": 40 } })),
    ] {
        let e = plugin
            .read(
                host.clone(),
                &request(task, SyncMode::FullRefresh, state.clone()),
            )
            .unwrap_err();
        assert_eq!(e.kind(), "invalid_input", "{task} {state}: {e}");
        assert!(e.to_string().contains(task), "{task} {state}: {e}");
        let rec = host.take();
        assert!(rec.records.is_empty(), "{task} {state}: nothing read");
    }
}
