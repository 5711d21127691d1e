//! The M3 connector end to end: the built cdylib, loaded through the ABI, reading the
//! emulator's M3 over real HTTP through the host's gateway.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Kind, TableDef, tables};
use ionport_infor_mi::MiType;
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use ionport_tests::recorder::Recorder;
use serde_json::{Map, Value, json};

const CONO: u32 = 100;
const SCALE: u64 = 240;

fn m3() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_m3"))
        .unwrap()
        .clone()
}

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    })
}

fn settings(version: &str) -> ConnectionConfig {
    ConnectionConfig {
        settings: json!({ "company": CONO, "api_version": version }),
    }
}

fn request(
    task: &str,
    version: &str,
    mode: SyncMode,
    page: u32,
    state: Option<Value>,
) -> ReadRequest {
    ReadRequest {
        connection: settings(version),
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: Some(page),
        pages_in_flight: None,
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

/// What the emulator's seed says the task must return: every row of `table` for the
/// company, with MI names (prefix dropped) or table names, typed by the M3 type letter.
fn expected(emu: &Emulated, table: &TableDef, mi_names: bool) -> Vec<Map<String, Value>> {
    let ds = emu.emu.dataset();
    (0..ds.count(table.entity, CONO))
        .map(|i| ds.record(table.entity, CONO, i))
        .filter(|r| !r.deleted())
        .map(|r| {
            table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kind != Kind::Bool)
                .map(|(i, c)| {
                    let name = if mi_names { table.mi_name(i) } else { c.name };
                    let raw = r.get(c.field).mi(c.len, false);
                    (
                        name.to_string(),
                        MiType::from_letter(c.kind.m3_letter()).value(&raw),
                    )
                })
                .collect()
        })
        .collect()
}

fn key(r: &Map<String, Value>, pk: &[&str]) -> String {
    pk.iter()
        .map(|k| {
            format!(
                "{:>12}",
                r.get(*k).map(Value::to_string).unwrap_or_default()
            )
        })
        .collect()
}

/// A checksum over records in key order (canonical JSON: keys sorted).
fn checksum(records: &BTreeMap<String, Map<String, Value>>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, r) in records {
        let sorted: BTreeMap<&String, &Value> = r.iter().collect();
        (k, serde_json::to_string(&sorted).unwrap()).hash(&mut h);
    }
    h.finish()
}

fn by_key(records: Vec<Map<String, Value>>, pk: &[&str]) -> BTreeMap<String, Map<String, Value>> {
    let n = records.len();
    let m: BTreeMap<_, _> = records.into_iter().map(|r| (key(&r, pk), r)).collect();
    assert_eq!(m.len(), n, "no record may come twice");
    m
}

fn read_all(
    plugin: &LoadedPlugin,
    host: &Arc<Recorder>,
    req: &ReadRequest,
) -> Vec<Map<String, Value>> {
    let summary = plugin
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("{} failed: {e}", req.task));
    let rec = host.take();
    let records: Vec<Map<String, Value>> = rec
        .records
        .into_iter()
        .map(|(s, v)| {
            assert_eq!(s, req.task);
            v.as_object().unwrap().clone()
        })
        .collect();
    assert_eq!(summary.records as usize, records.len());
    assert!(!rec.checkpoints.is_empty(), "the task checkpoints");
    records
}

#[test]
fn every_predefined_task_replicates_the_generated_data_completely() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    let cases: [(&str, &TableDef, bool, &[&str]); 5] = [
        ("customers", &tables::OCUSMA, true, &["CONO", "CUNO"]),
        ("items", &tables::MITMAS, true, &["CONO", "ITNO"]),
        ("suppliers", &tables::CIDMAS, true, &["CONO", "SUNO"]),
        (
            "customer_order_lines",
            &tables::OOLINE,
            true,
            &["CONO", "ORNO", "PONR", "POSX"],
        ),
        (
            "customer_table",
            &tables::OCUSMA,
            false,
            &["OKCONO", "OKCUNO"],
        ),
    ];
    for (task, table, mi_names, pk) in cases {
        let want = by_key(expected(&emu, table, mi_names), pk);
        assert!(!want.is_empty());
        // 7 divides none of the row counts; 40 divides the customers and items.
        for (page, version) in [(7, "v2"), (40, "v1")] {
            let got = by_key(
                read_all(
                    &plugin,
                    &host,
                    &request(task, version, SyncMode::FullRefresh, page, None),
                ),
                pk,
            );
            assert_eq!(got.len(), want.len(), "{task} page {page} {version}: count");
            assert_eq!(
                checksum(&got),
                checksum(&want),
                "{task} page {page} {version}: checksum"
            );
            assert_eq!(got, want, "{task} page {page} {version}");
        }
    }
}

#[test]
fn incremental_reads_return_what_changed_since_the_state() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    let first = plugin
        .read(
            host.clone(),
            &request("customer_table", "v2", SyncMode::Incremental, 50, None),
        )
        .unwrap();
    assert_eq!(first.records, SCALE);
    host.take();
    let state = first.state.clone();
    assert!(state.as_ref().unwrap()["cursor"].is_number(), "{state:?}");

    let report = emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OCUSMA", "count": 5, "cono": CONO })),
    );
    let changed: Vec<String> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(changed.len(), 5);

    let second = plugin
        .read(
            host.clone(),
            &request(
                "customer_table",
                "v2",
                SyncMode::Incremental,
                50,
                state.clone(),
            ),
        )
        .unwrap();
    let rec = host.take();
    let keys: Vec<String> = rec
        .records
        .iter()
        .map(|(_, r)| r["OKCUNO"].as_str().unwrap().to_string())
        .collect();
    for k in &changed {
        assert!(
            keys.contains(k),
            "changed customer {k} is read again: {keys:?}"
        );
    }
    // At most the records sharing the old cursor value come back besides the changed ones.
    assert!(
        second.records <= 5 + 1,
        "{} records: {keys:?}",
        second.records
    );
    // A third read from the new state brings back at most those stamped at the cursor.
    let third = plugin
        .read(
            host.clone(),
            &request(
                "customer_table",
                "v2",
                SyncMode::Incremental,
                50,
                second.state.clone(),
            ),
        )
        .unwrap();
    host.take();
    assert!(third.records <= 5, "{}", third.records);
}

#[test]
fn a_wrong_company_ends_the_task_with_the_m3_error_in_both_shapes() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    for version in ["v1", "v2"] {
        let mut req = request("customers", version, SyncMode::FullRefresh, 50, None);
        req.connection.settings["company"] = json!(999);
        let e = plugin.read(host.clone(), &req).unwrap_err().to_string();
        assert!(
            e.contains("CRS610MI/LstByNumber") && e.contains("XAU0008") && e.contains("CONO"),
            "{version}: {e}"
        );
        host.take();
    }
}

#[test]
fn with_faults_at_a_rate_the_data_is_still_complete_and_correct() {
    let emu = emulator();
    // At 0.35 faults per attempt, all six attempts of core's default bound fail for about
    // one request in 550, so a read of some 60 requests would fail about one run in ten:
    // this test is about the data under faults, not the bound (tested on its own), so
    // its connection retries more.
    let mut settings = ionport_tests::recorder::test_settings();
    settings.gateway.max_retries = 10;
    let host = Arc::new(Recorder::open_with(
        emu.rt.handle().clone(),
        &emu.emu.ionapi_json(),
        settings,
    ));
    let plugin = m3();
    emu.control(
        "POST",
        "faults",
        Some(json!([
            // No 504s here: two in a row at the smallest page end the read by the contract
            // (tested on its own below), and with pages in flight which pages draw them
            // depends on the order requests arrive in.
            { "kind": "503", "rate": 0.15, "api": "m3" },
            { "kind": "reset", "rate": 0.1, "api": "m3" },
            { "kind": "truncated", "rate": 0.1, "api": "m3" }
        ])),
    );
    let pk: &[&str] = &["CONO", "CUNO"];
    let want = by_key(expected(&emu, &tables::OCUSMA, true), pk);
    let got = by_key(
        read_all(
            &plugin,
            &host,
            &request("customers", "v2", SyncMode::FullRefresh, 5, None),
        ),
        pk,
    );
    assert_eq!(got, want);
    let counters = emu.control("GET", "counters", None);
    let injected = counters["faults_injected"].as_u64().unwrap_or(0);
    eprintln!("faults injected: {injected}; counters: {counters}");
    assert!(injected >= 10, "faults were injected: {counters}");
}

#[test]
fn check_reports_who_is_connected_and_which_part_failed() {
    let emu = emulator();
    let plugin = m3();
    let ok = plugin.check(emu.host(), &settings("v2")).unwrap();
    assert!(ok.success, "{ok:?}");
    assert!(ok.message.contains("Connected to M3 as"), "{}", ok.message);

    let mut wrong_company = settings("v2");
    wrong_company.settings["company"] = json!(999);
    let r = plugin.check(emu.host(), &wrong_company).unwrap();
    assert_eq!(r.failed_part.as_deref(), Some("company"), "{r:?}");

    let bad_secret = emu.host_with(|v| v["cs"] = json!("not-the-secret"));
    let r = plugin.check(bad_secret, &settings("v2"));
    match r {
        Ok(r) => assert_eq!(r.failed_part.as_deref(), Some("token"), "{r:?}"),
        Err(e) => panic!("a wrong secret is a failed check, not an error: {e}"),
    }
}

#[test]
fn discover_lists_programs_and_offers_exportmi_tables_that_can_be_read() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    let d = plugin.discover(host.clone(), &settings("v2")).unwrap();
    host.take();
    let names: Vec<&str> = d.streams.iter().map(|s| s.spec.name.as_str()).collect();
    for t in [
        "customers",
        "items",
        "suppliers",
        "customer_order_lines",
        "customer_table",
        "table:MITMAS",
        "table:OOHEAD",
    ] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    assert!(
        d.streams
            .iter()
            .filter(|s| s.predefined)
            .all(|s| s.available),
        "{:?}",
        d.streams
    );
    assert!(d.details["programs"].as_array().unwrap().len() >= 5);

    // A discovered table reads like a task.
    let got = read_all(
        &plugin,
        &host,
        &request("table:CIDMAS", "v2", SyncMode::FullRefresh, 10, None),
    );
    assert_eq!(
        got.len() as u64,
        emu.emu.dataset().count(tables::CIDMAS.entity, CONO)
    );
    assert!(got[0].contains_key("IDSUNO"));
    let e = plugin
        .read(
            host.clone(),
            &request("table:NOSUCH", "v2", SyncMode::FullRefresh, 10, None),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("no task named 'table:NOSUCH'"),
        "{e}"
    );
}

#[test]
fn cancellation_is_honoured_between_pages_and_the_state_resumes() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    host.cancel_after_batches(3);
    let e = plugin
        .read(
            host.clone(),
            // One page at a time: the exact count below holds only then (with key ranges,
            // records above the watermark are read again: pages_in_flight_m3.rs).
            &ReadRequest {
                pages_in_flight: Some(1),
                ..request("customers", "v2", SyncMode::FullRefresh, 10, None)
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), "cancelled", "{e}");
    let rec = host.take();
    let state = rec.checkpoints.last().cloned().unwrap();
    // Under way: the SDK's stream state resumes after the watermark key.
    assert!(state["resume"]["key"].is_string(), "{state}");
    let done = *rec.committed.last().unwrap();
    // Resume from the checkpoint: the rest, nothing twice.
    let rest = plugin
        .read(
            host.clone(),
            &ReadRequest {
                pages_in_flight: Some(1),
                ..request("customers", "v2", SyncMode::FullRefresh, 10, Some(state))
            },
        )
        .unwrap();
    host.take();
    assert_eq!(
        done + rest.records,
        SCALE,
        "committed {done} + resumed {}",
        rest.records
    );
}

#[test]
fn every_mi_error_shape_ends_the_task_with_a_clear_error_naming_the_program() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    let cases = [
        ("mi_nok", "v1", "ServerReturnedNOK XIN0001"),
        ("mi_nok", "v2", "ServerReturnedNOK XIN0001"),
        ("mi_partial", "v1", "partial failure"),
        ("mi_partial", "v2", "XIN0001"),
        ("400", "v2", "HTTP 400"),
    ];
    for (kind, version, expect) in cases {
        emu.control("DELETE", "faults", None);
        emu.control(
            "POST",
            "faults",
            Some(json!([{ "kind": kind, "rate": 1.0, "api": "m3", "path_contains": "CRS620MI" }])),
        );
        let e = plugin
            .read(
                host.clone(),
                &request("suppliers", version, SyncMode::FullRefresh, 50, None),
            )
            .unwrap_err()
            .to_string();
        host.take();
        assert!(
            e.contains("CRS620MI/LstSuppliers") && e.contains(expect),
            "{kind} {version}: {e}"
        );
    }
    // The partial failure's records were not silently kept as a success: the task failed.
    emu.control("DELETE", "faults", None);
}

#[test]
fn check_says_when_the_service_account_lacks_rights() {
    let emu = emulator();
    let plugin = m3();
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "403", "rate": 1.0, "api": "m3" }])),
    );
    let r = plugin.check(emu.host(), &settings("v2")).unwrap();
    assert!(!r.success);
    assert_eq!(r.failed_part.as_deref(), Some("rights"), "{r:?}");
    assert!(r.message.contains("GRID-RunAsM3User"), "{}", r.message);
}

#[test]
fn through_the_hosts_own_connection_a_check_works_and_a_wrong_secret_is_the_token_part() {
    use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
    let emu = emulator();
    let plugin = m3();
    let dir = tempfile::tempdir().unwrap();
    let open = |edit: &dyn Fn(&mut Value)| {
        let mut v = emu.emu.ionapi_json();
        edit(&mut v);
        let path = dir.path().join("t.ionapi");
        std::fs::write(&path, v.to_string()).unwrap();
        let _guard = emu.rt.enter();
        Connection::open(
            CredentialSource::IonApiFile(path),
            ConnectionSettings::default(),
        )
        .unwrap()
    };
    let good = open(&|_| {});
    let r = plugin
        .check(
            Arc::new(good.host(emu.rt.handle().clone())),
            &settings("v2"),
        )
        .unwrap();
    assert!(r.success, "{r:?}");
    let bad = open(&|v| v["cs"] = json!("canary-wrong-client-secret"));
    let r = plugin
        .check(Arc::new(bad.host(emu.rt.handle().clone())), &settings("v2"))
        .unwrap();
    assert_eq!(r.failed_part.as_deref(), Some("token"), "{r:?}");
    assert!(
        !r.message.contains("canary-wrong-client-secret"),
        "{}",
        r.message
    );
}

#[test]
fn a_gateway_that_times_out_on_pages_over_60_records_gets_smaller_pages_through_cores_host() {
    let emu = emulator();
    let host = emu.host();
    let plugin = m3();
    let want = by_key(expected(&emu, &tables::OCUSMA, true), &["CONO", "CUNO"]);
    for version in ["v2", "v1"] {
        emu.control(
            "PUT",
            "faults",
            Some(json!({"kind": "504", "api": "m3", "page_above": 60, "path_contains": "LstByNumber"})),
        );
        let before = host.connection().gateway().metrics().retries;
        let got = by_key(
            read_all(
                &plugin,
                &host,
                &request("customers", version, SyncMode::FullRefresh, 200, None),
            ),
            &["CONO", "CUNO"],
        );
        assert_eq!(got, want, "{version}");
        // 200 and 100 time out, each asked once more by core; then pages of 50.
        let injected = emu.control("GET", "faults", None)["rules"][0]["injected"]
            .as_u64()
            .expect("a count");
        assert_eq!(injected, 4, "{version}");
        assert_eq!(
            host.connection().gateway().metrics().retries - before,
            2,
            "{version}"
        );
    }
}
