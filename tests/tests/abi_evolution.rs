//! ABI evolution, shown (docs/plugin-abi.md, "Versions"): a plugin built against the
//! frozen ABI 1.0 crate (`tests/plugins/abi-1.0`, no SDK) loads and reads in this host
//! after the minor change 1.1 added `FfiHost::progress`; a current plugin reports its
//! pages through it; a plugin that needs a capability this host lacks is refused, naming
//! both ABI versions and the capability. (A current plugin in a 1.0 host:
//! `abi_old_host.rs`.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ionport_core::host::{HostCallbacks, HostResponse};
use ionport_core::plugin::{PluginRegistry, RefusedPlugin};
use ionport_plugin_abi::wire::{ConnectionConfig, GatewayRequestHead, ReadRequest, SyncMode};
use ionport_plugin_abi::{ABI_VERSION, PluginError, RecordBatch, error_kind};
use ionport_tests::{connector_libs, ionport, plugin_lib};
use serde_json::{Value, json};

/// Counts what a plugin hands over, its page reports included.
#[derive(Default)]
struct Counting {
    records: AtomicU64,
    checkpoints: AtomicU64,
    page_reports: AtomicU64,
    pages: AtomicU64,
}

impl HostCallbacks for Counting {
    fn gateway(
        &self,
        _head: GatewayRequestHead,
        _body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        Err(PluginError::new(
            error_kind::HOST,
            "no gateway in this test",
        ))
    }
    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        let lines = batch
            .ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        self.records.fetch_add(lines as u64, Ordering::SeqCst);
        Ok(())
    }
    fn checkpoint(&self, _state: &str) -> Result<(), PluginError> {
        self.checkpoints.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn cancelled(&self) -> bool {
        false
    }
    fn progress(&self, pages: u64) {
        self.page_reports.fetch_add(1, Ordering::SeqCst);
        self.pages.fetch_add(pages, Ordering::SeqCst);
    }
}

fn numbers(options: Value) -> ReadRequest {
    ReadRequest {
        options,
        ..ReadRequest::new(
            ConnectionConfig {
                settings: json!({}),
            },
            "numbers",
            SyncMode::FullRefresh,
        )
    }
}

#[test]
fn this_host_speaks_abi_1_1() {
    // The versions the tests below name; a bump must revisit them.
    assert_eq!(ABI_VERSION, "1.1.0");
    assert_eq!(ionport_plugin_abi_1_0::ABI_VERSION, "1.0.0");
}

#[test]
fn a_plugin_built_for_abi_1_0_loads_and_reads_its_pages_unreported() {
    let lib = plugin_lib("ionport_test_plugin_abi_1_0");
    let mut reg = PluginRegistry::default();
    let plugin = match reg.load(&lib) {
        Ok(p) => p.clone(),
        Err(e) => panic!("the ABI 1.0 plugin was refused: {e}\n{:?}", e.report()),
    };
    assert_eq!(plugin.id(), "abi-one-zero");
    assert_eq!(plugin.manifest().abi_version, "1.0.0");
    assert!(plugin.manifest().requires.is_empty());

    let host = Arc::new(Counting::default());
    let summary = plugin
        .read(host.clone(), &numbers(json!({ "count": 230, "page": 50 })))
        .unwrap();
    // Records and checkpoints arrive as from any plugin: 230 records in pages of 50.
    assert_eq!(host.records.load(Ordering::SeqCst), 230);
    assert_eq!(host.checkpoints.load(Ordering::SeqCst), 5);
    assert_eq!(summary.records, 230);
    assert_eq!(summary.pages, 5, "the plugin's own count, at the end");
    // ABI 1.0 had no way to report a page while reading.
    assert_eq!(host.page_reports.load(Ordering::SeqCst), 0);

    // Beside the current connectors, in one registry.
    let mut entries = vec![lib];
    entries.extend(connector_libs());
    let reg = PluginRegistry::load_from(&entries);
    assert!(reg.refused().is_empty(), "{:?}", reg.refused());
    assert_eq!(reg.plugins().len(), 4);
}

#[test]
fn a_current_plugin_reports_each_page_as_it_hands_it_over() {
    let mut reg = PluginRegistry::default();
    let plugin = reg
        .load(&plugin_lib("ionport_test_plugin"))
        .expect("the test plugin loads")
        .clone();
    assert_eq!(plugin.manifest().abi_version, ABI_VERSION);
    let host = Arc::new(Counting::default());
    let summary = plugin
        .read(
            host.clone(),
            &numbers(json!({ "count": 1050, "batch": 100 })),
        )
        .unwrap();
    // 1050 records in batches of 100: 11 pages, each reported once, one page a report.
    assert_eq!(host.records.load(Ordering::SeqCst), 1050);
    assert_eq!(host.page_reports.load(Ordering::SeqCst), 11);
    assert_eq!(host.pages.load(Ordering::SeqCst), 11);
    assert_eq!(summary.pages, 11);
}

#[test]
fn a_plugin_that_needs_a_capability_this_host_lacks_is_refused_naming_both_versions_and_it() {
    let lib = plugin_lib("ionport_test_plugin_needs_capability");
    let mut entries = vec![lib.clone()];
    entries.extend(connector_libs());
    let reg = PluginRegistry::load_from(&entries);
    assert_eq!(reg.plugins().len(), 3, "the other plugins still load");
    assert_eq!(reg.refused().len(), 1);
    let refusal = &reg.refused()[0];
    match refusal {
        RefusedPlugin::MissingCapability {
            plugin_abi,
            host_abi,
            missing,
            ..
        } => {
            assert_eq!(plugin_abi, "1.2.0");
            assert_eq!(host_abi, "1.1.0");
            assert_eq!(missing, &["bulk_emit".to_string()]);
        }
        other => panic!("refused for another reason: {other}"),
    }
    let msg = refusal.to_string();
    assert!(msg.contains(&lib.display().to_string()), "{msg}");
    assert!(
        msg.contains("ABI 1.2.0") && msg.contains("ABI 1.1.0") && msg.contains("'bulk_emit'"),
        "{msg}"
    );
}

#[test]
fn a_process_whose_first_library_is_an_abi_1_0_plugin_loads_the_current_ones_after_it() {
    // A fresh process (the real CLI), so nothing was loaded before the 1.0 plugin: the
    // older plugin's layout check must not leave its shorter vtables behind as the measure
    // for the current libraries that follow it.
    let mut entries = vec![plugin_lib("ionport_test_plugin_abi_1_0")];
    entries.extend(connector_libs());
    let out = ionport(&entries, &["plugins", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<&str> = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["abi-one-zero", "infor-datalake", "infor-ln", "infor-m3"],
        "{stderr}"
    );
}
