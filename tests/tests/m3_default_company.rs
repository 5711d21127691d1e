//! M3 with no company on the connection: the service account's default company and
//! division (`MNS150MI/GetUserData`) are read, as M3 itself does, and `check` says so.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{DEFAULT_COMPANY, Dataset, Entity};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest};
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use serde_json::{Value, json};

fn m3() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_m3"))
        .unwrap()
        .clone()
}

/// A full read of `task` with `settings` (built from JSON, as a pipeline or a protocol
/// hands it over).
fn request(task: &str, settings: Value) -> ReadRequest {
    serde_json::from_value(json!({
        "connection": { "settings": settings },
        "task": task,
        "sync_mode": "full_refresh",
        "page_size": 50,
        "options": null,
    }))
    .unwrap()
}

#[test]
fn no_company_reads_the_service_accounts_default_and_check_says_so() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 120,
        ..EmulatorConfig::default()
    });
    let plugin = m3();
    // The emulated service account's default company, and its division, from the data
    // set (not from the connector).
    let default = Dataset::company(DEFAULT_COMPANY).unwrap();

    let report = plugin
        .check(
            emu.host(),
            &ConnectionConfig {
                settings: json!({}),
            },
        )
        .unwrap();
    assert!(report.success, "{report:?}");
    assert!(
        report
            .message
            .contains(&format!("company {}", default.cono))
            && report.message.contains("the service account's default"),
        "{}",
        report.message
    );
    assert_eq!(report.details["company"], json!(default.cono));
    assert_eq!(report.details["division"], json!(default.divi));
    assert_eq!(report.details["company_source"], "user_default");

    // A named company is said to be configured.
    let named = plugin
        .check(
            emu.host(),
            &ConnectionConfig {
                settings: json!({ "company": 200 }),
            },
        )
        .unwrap();
    assert!(named.success, "{named:?}");
    assert_eq!(named.details["company_source"], "configured");
    assert!(!named.message.contains("default"), "{}", named.message);

    // A read with no company returns the default company's customers: as many as the
    // data set holds for it.
    let host = emu.host();
    let summary = plugin
        .read(
            host.clone() as Arc<dyn HostCallbacks>,
            &request("customers", json!({})),
        )
        .unwrap();
    let rec = host.take();
    let ds = emu.emu.dataset();
    let live = (0..ds.count(Entity::Customer, DEFAULT_COMPANY))
        .filter(|i| !ds.record(Entity::Customer, DEFAULT_COMPANY, *i).deleted())
        .count();
    assert_eq!(summary.records as usize, live);
    assert_eq!(rec.records.len(), live);
    assert!(
        rec.requests
            .iter()
            .any(|(_, p)| p.contains("MNS150MI/GetUserData")),
        "the default comes from GetUserData: {:?}",
        rec.requests
    );
}
