//! M3 v2 reads when `MRS001MI/LstFields` (the field metadata v2 answers lack) is missing or
//! refused: the read goes on with the task's declared types and says so in a warning. And
//! M3 v2 errors read like v1 errors (transaction, code, field, message), not raw JSON.
//! Through core's own host against a real emulator.

#![allow(clippy::unwrap_used)]

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::Entity;
use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::live::{self, Live};
use serde_json::json;

const SCALE: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_missing_lstfields_falls_back_to_the_declared_types_with_a_warning() {
    let live = Live::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    })
    .await;
    let ds = live.emu.dataset();
    let reg = live::registry();
    let m3 = live::plugin(&reg, "infor-m3");
    let conn = live.connection();
    let settings = json!({"company": 100, "api_version": "v2"});
    for status in ["403", "404"] {
        live.control(
            "PUT",
            "faults",
            Some(json!({"kind": status, "api": "m3", "path_contains": "MRS001MI"})),
        )
        .await;
        let got = live::read(
            &m3,
            &conn,
            "customers",
            settings.clone(),
            SyncMode::FullRefresh,
            None,
            10,
        )
        .await;
        assert!(got.error.is_none(), "HTTP {status}: {:?}", got.error);
        assert_eq!(
            got.records.len() as u64,
            ds.count(Entity::Customer, 100),
            "HTTP {status}"
        );
        // Typed by the declared types (CONO is numeric), not left as text.
        assert!(
            got.records.iter().all(|r| r["CONO"] == 100),
            "HTTP {status}: {:?}",
            got.records.first()
        );
        let warning = got
            .logs
            .iter()
            .find(|l| l.contains("MRS001MI/LstFields") && l.contains("declared field types"))
            .unwrap_or_else(|| panic!("HTTP {status}: no fallback warning in {:?}", got.logs));
        assert!(warning.contains(&format!("HTTP {status}")), "{warning}");
        assert!(!warning.contains("{\""), "no raw JSON: {warning}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m3_v2_errors_name_transaction_code_field_and_message() {
    let live = Live::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    })
    .await;
    let reg = live::registry();
    let m3 = live::plugin(&reg, "infor-m3");
    let conn = live.connection();
    // A company that does not exist: M3 answers XAU0008 on field CONO.
    let got = live::read(
        &m3,
        &conn,
        "customers",
        json!({"company": 999, "api_version": "v2"}),
        SyncMode::FullRefresh,
        None,
        10,
    )
    .await;
    let (_, msg) = got.error.expect("the read fails");
    assert!(
        msg.contains("CRS610MI/LstByNumber")
            && msg.contains("XAU0008")
            && msg.contains("(field CONO)")
            && msg.contains("999"),
        "{msg}"
    );
    assert!(!msg.contains("{\""), "no raw JSON: {msg}");
    // A gateway refusal of the list itself reads as a status and the gateway's message.
    live.control(
        "PUT",
        "faults",
        Some(json!({"kind": "403", "api": "m3", "path_contains": "CRS610MI"})),
    )
    .await;
    let got = live::read(
        &m3,
        &conn,
        "customers",
        json!({"company": 100, "api_version": "v2"}),
        SyncMode::FullRefresh,
        None,
        10,
    )
    .await;
    let (_, msg) = got.error.expect("the read fails");
    assert!(
        msg.contains("CRS610MI/LstByNumber")
            && msg.contains("HTTP 403")
            && msg.contains("Forbidden"),
        "{msg}"
    );
    assert!(!msg.contains("{\""), "no raw JSON: {msg}");
}
