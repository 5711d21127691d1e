//! The Infor LN connector through its built cdylib and the ABI, against a real emulator on
//! loopback: complete replication of every predefined task for page sizes that do and do
//! not divide the row count (server-driven links and `$top`/`$skip`), incremental reads
//! after changes, resumption from a checkpoint, OData error bodies, faults at a rate, and
//! what `check` and `discover` say.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Dataset, Entity, Surface, TableDef, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use ionport_tests::recorder::Recorder;
use serde_json::{Map, Value, json};

const SCALE: u64 = 600;

fn ln() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_ln"))
        .expect("the LN connector loads")
        .clone()
}

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    })
}

fn conn(company: Option<u16>) -> ConnectionConfig {
    ConnectionConfig {
        settings: json!({ "company": company, "language": "en-US" }),
    }
}

fn request(
    task: &str,
    company: Option<u16>,
    mode: SyncMode,
    page: u32,
    options: Value,
    state: Option<Value>,
) -> ReadRequest {
    ReadRequest {
        connection: conn(company),
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: Some(page),
        pages_in_flight: None,
        options,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

fn table_of(task: &str) -> &'static TableDef {
    match task {
        "business_partners" => &tables::LN_BUSINESS_PARTNERS,
        "sales_orders" => &tables::LN_ORDERS,
        _ => &tables::LN_ITEMS,
    }
}

/// What the generator holds for an entity set in a company, as LN OData renders it, by key.
fn expected(ds: &Dataset, table: &TableDef, cono: u32) -> BTreeMap<String, Map<String, Value>> {
    let mut out = BTreeMap::new();
    for i in 0..ds.count(table.entity, cono) {
        let r = ds.record(table.entity, cono, i);
        if r.deleted() {
            continue;
        }
        let mut m = Map::new();
        for c in table.columns {
            m.insert(
                c.name.to_string(),
                r.get(c.field).to_json(c.kind, Surface::LnOData),
            );
        }
        let key = m[table.columns[table.key[0]].name]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.insert(key, m);
    }
    out
}

fn by_key(
    records: &[(String, Value)],
    table: &TableDef,
) -> (BTreeMap<String, Map<String, Value>>, usize) {
    let key = table.columns[table.key[0]].name;
    let mut out = BTreeMap::new();
    let mut dups = 0;
    for (_, v) in records {
        let m = v.as_object().cloned().expect("a record is an object");
        let k = m[key].as_str().expect("a string key").to_string();
        if out.insert(k, m).is_some() {
            dups += 1;
        }
    }
    (out, dups)
}

/// Asserts two record sets are equal, reporting counts and the first difference only.
fn assert_same(
    got: &BTreeMap<String, Map<String, Value>>,
    want: &BTreeMap<String, Map<String, Value>>,
    what: &str,
) {
    if got == want {
        return;
    }
    let missing: Vec<&String> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<&String> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    let differ = want
        .iter()
        .find(|(k, v)| got.get(*k).is_some_and(|g| g != *v));
    panic!(
        "{what}: {} records, {} expected; missing {missing:?}; unexpected {extra:?}; first difference: {:?}",
        got.len(),
        want.len(),
        differ.map(|(k, v)| (k, v, got.get(k)))
    );
}

/// An order-independent checksum over records (FNV-1a over their JSON in key order).
fn checksum(records: &BTreeMap<String, Map<String, Value>>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for (k, r) in records {
        for b in k
            .bytes()
            .chain(Value::Object(r.clone()).to_string().into_bytes())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn read(
    p: &LoadedPlugin,
    host: &Arc<Recorder>,
    req: &ReadRequest,
) -> (
    ionport_plugin_abi::wire::ReadSummary,
    Vec<(String, Value)>,
    Vec<Value>,
) {
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("read {} failed: {e}", req.task));
    let rec = host.take();
    (summary, rec.records, rec.checkpoints)
}

#[test]
fn every_task_replicates_completely_for_page_sizes_that_do_and_do_not_divide_the_rows() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    for task in ["business_partners", "sales_orders", "items"] {
        let table = table_of(task);
        let want = expected(&ds, table, 100);
        assert!(want.len() as u64 >= SCALE / 2);
        for (page, paging) in [
            (100, "auto"),
            (77, "auto"),
            (100, "skip"),
            (64, "skip"),
            (1000, "auto"),
        ] {
            let req = request(
                task,
                Some(100),
                SyncMode::FullRefresh,
                page,
                json!({"paging": paging}),
                None,
            );
            let (summary, records, checkpoints) = read(&p, &host, &req);
            let (got, dups) = by_key(&records, table);
            assert_eq!(dups, 0, "{task} page {page} {paging}: duplicates");
            assert_eq!(got.len(), want.len(), "{task} page {page} {paging}: count");
            assert_eq!(summary.records as usize, want.len());
            assert_eq!(
                checksum(&got),
                checksum(&want),
                "{task} page {page} {paging}: checksum"
            );
            assert_same(&got, &want, &format!("{task} page {page} {paging}"));
            let pages = want.len().div_ceil(page as usize) as u64;
            assert!(
                summary.pages >= pages,
                "{task}: {} pages for {pages}",
                summary.pages
            );
            // A checkpoint after every page, the last one complete.
            assert!(
                checkpoints.len() as u64 > pages,
                "{task}: checkpoints {}",
                checkpoints.len()
            );
            let last = checkpoints.last().expect("a final state");
            assert!(
                last.get("after").is_none() && last["cursor"].is_string(),
                "{last}"
            );
        }
    }
}

#[test]
fn the_company_header_selects_the_data_and_a_service_not_activated_is_a_clear_error() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let req = request(
        "business_partners",
        Some(200),
        SyncMode::FullRefresh,
        25,
        json!({}),
        None,
    );
    let (_, records, _) = read(&p, &host, &req);
    let (got, _) = by_key(&records, &tables::LN_BUSINESS_PARTNERS);
    assert_same(
        &got,
        &expected(&ds, &tables::LN_BUSINESS_PARTNERS, 200),
        "records",
    );
    // No company: the service user's default (100).
    let req = request("items", None, SyncMode::FullRefresh, 500, json!({}), None);
    let (_, records, _) = read(&p, &host, &req);
    assert_eq!(records.len(), expected(&ds, &tables::LN_ITEMS, 100).len());

    let req = request(
        "sales_orders",
        Some(200),
        SyncMode::FullRefresh,
        25,
        json!({}),
        None,
    );
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("not activated");
    let text = e.to_string();
    assert!(text.contains("tdapi.slsSalesOrder/Orders"), "{text}");
    assert!(text.contains("company 200"), "{text}");
    assert!(text.contains("not activated"), "{text}");
    assert_eq!(e.kind(), "gateway");

    let req = request(
        "tcapi.comBusinessPartner/Partners",
        Some(100),
        SyncMode::FullRefresh,
        25,
        json!({}),
        None,
    );
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("no such set");
    assert!(
        e.to_string().contains("tcapi.comBusinessPartner/Partners")
            && e.to_string().contains("404"),
        "{e}"
    );
    // No such set is the configuration's fault: the kind says so.
    assert_eq!(
        e.kind(),
        ionport_plugin_abi::error_kind::INVALID_INPUT,
        "{e}"
    );
    host.take();
}

#[test]
fn incremental_reads_return_what_changed_since_the_state() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let table = &tables::LN_BUSINESS_PARTNERS;
    // First incremental read without a state: everything.
    let req = request(
        "business_partners",
        Some(100),
        SyncMode::Incremental,
        100,
        json!({}),
        None,
    );
    let (s1, records, _) = read(&p, &host, &req);
    assert_eq!(records.len(), expected(&ds, table, 100).len());
    let state = s1.state.expect("a state");
    let cursor = state["cursor"].as_str().expect("a cursor").to_string();
    let max = records
        .iter()
        .filter_map(|(_, r)| r["LastModifiedDateTime"].as_str())
        .max()
        .expect("stamps");
    assert_eq!(cursor, max);

    // Nothing changed: only the records sharing the cursor value come again.
    let req = request(
        "business_partners",
        Some(100),
        SyncMode::Incremental,
        100,
        json!({}),
        Some(state.clone()),
    );
    let (_, again, _) = read(&p, &host, &req);
    assert!(
        !again.is_empty()
            && again
                .iter()
                .all(|(_, r)| r["LastModifiedDateTime"] == cursor.as_str())
    );

    // Change 7 records: those come, plus at most the ones sharing the cursor.
    let report = emu.control(
        "POST",
        "changes",
        Some(json!({"table": "BusinessPartners", "count": 7, "cono": 100})),
    );
    let changed: Vec<String> = report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    assert_eq!(changed.len(), 7);
    let (s2, delta, _) = read(&p, &host, &req);
    let (got, _) = by_key(&delta, table);
    for k in &changed {
        let r = got
            .get(k)
            .unwrap_or_else(|| panic!("changed {k} missing from {:?}", got.keys()));
        assert_eq!(r["LastModifiedDateTime"], report["lastModified"]);
    }
    for (k, r) in &got {
        assert!(
            changed.contains(k) || r["LastModifiedDateTime"] == cursor.as_str(),
            "{k} did not change"
        );
    }
    assert!(got.len() <= 7 + again.len());
    let s2 = s2.state.expect("a state");
    assert_eq!(s2["cursor"], report["lastModified"]);

    // And from that state: only the 7 (they share the new cursor).
    let req = request(
        "business_partners",
        Some(100),
        SyncMode::Incremental,
        100,
        json!({}),
        Some(s2),
    );
    let (_, last, _) = read(&p, &host, &req);
    let (last, _) = by_key(&last, table);
    assert_eq!(last.keys().cloned().collect::<Vec<_>>(), {
        let mut c = changed.clone();
        c.sort();
        c
    });
}

#[test]
fn a_cancelled_read_resumes_from_its_last_checkpoint_without_gaps_or_repeats() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let table = &tables::LN_ORDERS;
    for mode in [SyncMode::FullRefresh, SyncMode::Incremental] {
        host.cancel_after_batches(3);
        let req = request("sales_orders", Some(100), mode, 50, json!({}), None);
        let e = p
            .read(host.clone() as Arc<dyn HostCallbacks>, &req)
            .expect_err("cancelled");
        assert_eq!(e.kind(), "cancelled", "{e}");
        let first = host.take();
        assert!(!first.records.is_empty() && first.records.len() < 600);
        let state = first.checkpoints.last().cloned().expect("a checkpoint");
        assert!(state["after"].is_array(), "{state}");
        assert_eq!(
            *first.committed.last().expect("committed") as usize,
            first.records.len()
        );
        let req = request("sales_orders", Some(100), mode, 50, json!({}), Some(state));
        let (_, rest, _) = read(&p, &host, &req);
        let mut all = first.records.clone();
        all.extend(rest);
        let (got, dups) = by_key(&all, table);
        assert_eq!(dups, 0, "a resumed read repeats nothing");
        assert_same(&got, &expected(&ds, table, 100), "records");
    }
}

#[test]
fn with_faults_at_a_rate_the_data_is_still_complete_and_correct() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    emu.control(
        "PUT",
        "faults",
        Some(json!([
            {"kind": "503", "rate": 0.08, "api": "ln"},
            {"kind": "504", "rate": 0.08, "api": "ln"},
            {"kind": "reset", "rate": 0.05, "api": "ln"},
            {"kind": "truncated", "rate": 0.05, "api": "ln"},
            {"kind": "malformed_json", "rate": 0.03, "api": "ln"},
        ])),
    );
    for task in ["business_partners", "sales_orders", "items"] {
        let table = table_of(task);
        let req = request(task, Some(100), SyncMode::FullRefresh, 40, json!({}), None);
        let (_, records, _) = read(&p, &host, &req);
        let (got, _) = by_key(&records, table);
        assert_same(&got, &expected(&ds, table, 100), task);
    }
    let faults = emu.control("GET", "faults", None);
    let injected: u64 = faults["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum();
    assert!(injected >= 5, "faults were injected: {faults}");
}

#[test]
fn a_single_gateway_timeout_is_retried_by_the_host_and_the_page_keeps_its_size() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    emu.control("PUT", "faults", Some(json!({"kind": "504", "count": 1, "api": "ln", "path_contains": "BusinessPartners", "page_above": 1})));
    let req = request(
        "business_partners",
        Some(100),
        SyncMode::FullRefresh,
        200,
        json!({}),
        None,
    );
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect("read");
    let rec = host.take();
    assert!(
        !rec.logs.iter().any(|l| l.contains("smaller pages")),
        "one 504 is the gateway's bad moment, not a page too big: {:?}",
        rec.logs
    );
    assert_eq!(host.connection().gateway().metrics().retries, 1);
    let want = expected(&ds, &tables::LN_BUSINESS_PARTNERS, 100);
    let (got, dups) = by_key(&rec.records, &tables::LN_BUSINESS_PARTNERS);
    assert_eq!(dups, 0);
    assert_same(&got, &want, "records");
    // Pages of 200 throughout (halved pages would need twice as many).
    assert!(
        summary.pages <= want.len().div_ceil(200) as u64 + 1,
        "{} pages",
        summary.pages
    );
}

#[test]
fn check_distinguishes_wrong_secret_wrong_company_and_success() {
    let emu = emulator();
    let p = ln();
    let ok = p
        .check(emu.host() as Arc<dyn HostCallbacks>, &conn(Some(100)))
        .expect("check");
    assert!(ok.success, "{ok:?}");
    assert!(ok.message.contains("company 100"), "{}", ok.message);

    let wrong_secret = emu.host_with(|v| v["cs"] = json!("not-the-secret"));
    let r = p
        .check(wrong_secret as Arc<dyn HostCallbacks>, &conn(Some(100)))
        .expect("check");
    assert!(!r.success);
    assert_eq!(r.failed_part.as_deref(), Some("token"), "{r:?}");
    assert!(r.message.contains("client id and secret"), "{}", r.message);

    let r = p
        .check(emu.host() as Arc<dyn HostCallbacks>, &conn(Some(4711)))
        .expect("check");
    assert_eq!(r.failed_part.as_deref(), Some("company"), "{r:?}");
    assert!(r.message.contains("4711"), "{}", r.message);

    let r = p
        .check(
            emu.host() as Arc<dyn HostCallbacks>,
            &ConnectionConfig {
                settings: json!({"company": "x"}),
            },
        )
        .expect("check");
    assert_eq!(r.failed_part.as_deref(), Some("settings"), "{r:?}");
}

#[test]
fn discover_lists_the_entity_sets_and_which_tasks_can_run() {
    let emu = emulator();
    let p = ln();
    let d = p
        .discover(emu.host() as Arc<dyn HostCallbacks>, &conn(Some(100)))
        .expect("discover");
    let names: Vec<&str> = d.streams.iter().map(|s| s.spec.name.as_str()).collect();
    for t in ["business_partners", "sales_orders", "items"] {
        let s = d
            .streams
            .iter()
            .find(|s| s.spec.name == t)
            .unwrap_or_else(|| panic!("{t} in {names:?}"));
        assert!(s.predefined && s.available, "{s:?}");
    }
    assert_eq!(
        d.details["services"].as_array().map(Vec::len),
        Some(3),
        "{}",
        d.details
    );

    let d = p
        .discover(emu.host() as Arc<dyn HostCallbacks>, &conn(Some(200)))
        .expect("discover");
    let so = d
        .streams
        .iter()
        .find(|s| s.spec.name == "sales_orders")
        .expect("sales_orders");
    assert!(
        !so.available && so.note.as_deref().unwrap_or("").contains("not activated"),
        "{so:?}"
    );
    let bp = d
        .streams
        .iter()
        .find(|s| s.spec.name == "business_partners")
        .expect("bp");
    assert!(bp.available);

    // A configured service that does not exist is reported, not fatal.
    let c = ConnectionConfig {
        settings: json!({"company": 100, "services": ["tcapi.comBusinessPartner", "tcapi.nope"]}),
    };
    let d = p
        .discover(emu.host() as Arc<dyn HostCallbacks>, &c)
        .expect("discover");
    let svc = d.details["services"].as_array().expect("services");
    assert!(
        svc.iter()
            .any(|s| s["service"] == "tcapi.nope" && s["available"] == false),
        "{svc:?}"
    );
    let items = d
        .streams
        .iter()
        .find(|s| s.spec.name == "items")
        .expect("items");
    assert!(!items.available);
}

#[test]
fn an_entity_set_can_be_read_as_a_stream_by_its_name() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let req = request(
        "tcapi.ibdItem/Items",
        Some(100),
        SyncMode::FullRefresh,
        90,
        json!({}),
        None,
    );
    let (_, records, _) = read(&p, &host, &req);
    let (got, _) = by_key(&records, &tables::LN_ITEMS);
    assert_same(&got, &expected(&ds, &tables::LN_ITEMS, 100), "records");
    let _ = Entity::Item;
}

#[test]
fn check_reports_missing_rights_when_the_gateway_answers_403() {
    let emu = emulator();
    let p = ln();
    emu.control("PUT", "faults", Some(json!({"kind": "403", "api": "ln"})));
    let r = p
        .check(emu.host() as Arc<dyn HostCallbacks>, &conn(Some(100)))
        .expect("check");
    assert!(!r.success);
    assert_eq!(r.failed_part.as_deref(), Some("rights"), "{r:?}");
    assert!(r.message.contains("rights"), "{}", r.message);
}

/// Faults injected so far, summed over the rules.
fn injected(emu: &Emulated) -> u64 {
    emu.control("GET", "faults", None)["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn a_gateway_that_times_out_on_pages_over_60_records_gets_smaller_pages_through_cores_host() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let ds = emu.emu.dataset();
    // The gateway's target timeout serves at most 60 records a page, every time.
    emu.control(
        "PUT",
        "faults",
        Some(json!({"kind": "504", "api": "ln", "page_above": 60})),
    );
    let req = request(
        "business_partners",
        Some(100),
        SyncMode::FullRefresh,
        200,
        json!({}),
        None,
    );
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect("the read completes on smaller pages");
    let rec = host.take();
    let want = expected(&ds, &tables::LN_BUSINESS_PARTNERS, 100);
    let (got, dups) = by_key(&rec.records, &tables::LN_BUSINESS_PARTNERS);
    assert_eq!(dups, 0);
    assert_same(&got, &want, "records");
    // 200 and 100 time out; core asks each once more (its timeout retry), then the
    // connector halves: four 504s, two retries, and pages of 50 from then on.
    assert_eq!(injected(&emu), 4);
    assert_eq!(host.connection().gateway().metrics().retries, 2);
    assert!(
        summary.pages >= want.len().div_ceil(50) as u64,
        "{} pages",
        summary.pages
    );
    assert_eq!(
        rec.logs
            .iter()
            .filter(|l| l.contains("asking for smaller pages"))
            .count(),
        2,
        "{:?}",
        rec.logs
    );

    // Pages that time out even at the smallest size end the read with the timeout kind.
    emu.control(
        "PUT",
        "faults",
        Some(json!({"kind": "504", "api": "ln", "page_above": 5})),
    );
    let req = request(
        "business_partners",
        Some(100),
        SyncMode::FullRefresh,
        20,
        json!({}),
        None,
    );
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("pages of 10 still time out");
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(e.to_string().contains("even pages of 10 records"), "{e}");
    host.take();
}
