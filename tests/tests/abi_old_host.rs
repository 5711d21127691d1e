//! A current plugin (ABI 1.1) in a host of ABI 1.0: the frozen 1.0 crate's own loader
//! opens the test plugin and reads it with a 1.0 `FfiHost`, whose vtable has no
//! `progress`. The plugin reports its pages all the same (`Host::report_pages`); abi_stable
//! answers the missing method with the trait's default body, so the read goes on as
//! before. Its own test binary: the 1.0 loader's layout checks never meet the current
//! host's in one process.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use ionport_plugin_abi_1_0 as v1_0;
use ionport_tests::plugin_lib;
use serde_json::{Value, json};
use v1_0::abi_stable::sabi_trait::TD_Opaque;
use v1_0::abi_stable::std_types::{RArc, RResult, RStr};
use v1_0::{FfiHost, FfiHost_TO, FfiHttpRequest, FfiHttpResponse, LogLevel, PluginError};

/// A host of ABI 1.0: the five methods of 1.0's `FfiHost`, nothing else.
#[derive(Default)]
struct OldHost {
    lines: AtomicU64,
    checkpoints: AtomicU64,
}

impl FfiHost for OldHost {
    fn gateway(&self, _request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
        RResult::RErr(PluginError::new("host", "no gateway in this test"))
    }
    fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
    fn emit(&self, batch: v1_0::RecordBatch) -> RResult<(), PluginError> {
        let lines = batch
            .ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        self.lines.fetch_add(lines as u64, Ordering::SeqCst);
        RResult::ROk(())
    }
    fn checkpoint(&self, _state: RStr<'_>) -> RResult<(), PluginError> {
        self.checkpoints.fetch_add(1, Ordering::SeqCst);
        RResult::ROk(())
    }
    fn cancelled(&self) -> bool {
        false
    }
}

#[test]
fn a_current_plugin_loads_in_an_abi_1_0_host_and_its_page_reports_fall_to_the_default() {
    let module = match v1_0::load::open(&plugin_lib("ionport_test_plugin")) {
        Ok(m) => m,
        Err(e) => panic!(
            "a 1.0 host refused the current plugin: {e}\n{:?}",
            e.report()
        ),
    };
    let connector = match (module.new_connector())() {
        RResult::ROk(c) => c,
        RResult::RErr(e) => panic!("{e}"),
    };
    let manifest: Value = serde_json::from_str(connector.manifest().unwrap().as_str()).unwrap();
    assert_eq!(manifest["abi_version"], "1.1.0", "{manifest}");

    let host = RArc::new(OldHost::default());
    let ffi = FfiHost_TO::from_ptr(host.clone(), TD_Opaque);
    let request = json!({
        "connection": { "settings": {} },
        "task": "numbers",
        "sync_mode": "full_refresh",
        "options": { "count": 450, "batch": 100 },
    })
    .to_string();
    // The plugin calls `progress` after each of its 5 pages: on this vtable there is none.
    let summary = match connector.read(ffi, RStr::from_str(&request)) {
        RResult::ROk(s) => s,
        RResult::RErr(e) => panic!("the read failed in a 1.0 host: {e}"),
    };
    let summary: Value = serde_json::from_str(summary.as_str()).unwrap();
    assert_eq!(summary["records"], 450, "{summary}");
    assert_eq!(summary["pages"], 5, "{summary}");
    assert_eq!(host.lines.load(Ordering::SeqCst), 450);
    assert_eq!(host.checkpoints.load(Ordering::SeqCst), 5);
}
