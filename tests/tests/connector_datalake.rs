//! The Infor Data Lake connector through its built cdylib and the ABI, against a real
//! emulator on loopback: every predefined task replicates the lake tables completely (the
//! emulator's own checksum over the rows), catalog objects as streams, incremental reads
//! after changes, resumption of a job from a checkpoint, cancellation of a running job,
//! FAILED jobs with the server's reason, faults at a rate, 504s, check and discover.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{COMPANIES, Dataset, Kind, Surface, TableDef, tables};
use ionport_plugin_abi::wire::{
    ConnectionConfig, GatewayRequestHead, ReadRequest, ReadSummary, SyncMode,
};
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use ionport_tests::recorder::Recorder;
use serde_json::{Map, Value, json};

const SCALE: u64 = 300;

const TASKS: [(&str, &str); 8] = [
    ("m3_customers", "OCUSMA"),
    ("m3_items", "MITMAS"),
    ("m3_suppliers", "CIDMAS"),
    ("m3_order_heads", "OOHEAD"),
    ("m3_order_lines", "OOLINE"),
    ("ln_business_partners", "tccom100"),
    ("ln_sales_orders", "tdsls400"),
    ("ln_items", "tcibd001"),
];

fn lake() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_datalake"))
        .expect("the Data Lake connector loads")
        .clone()
}

fn emulator_with(job_run_time: Duration) -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        job_run_time,
        ..EmulatorConfig::default()
    })
}

fn emulator() -> Emulated {
    emulator_with(Duration::from_millis(30))
}

fn conn() -> ConnectionConfig {
    ConnectionConfig {
        settings: json!({"page_rows": 100000, "query_timeout_secs": 60}),
    }
}

fn request(
    task: &str,
    mode: SyncMode,
    page: Option<u32>,
    options: Value,
    state: Option<Value>,
) -> ReadRequest {
    ReadRequest {
        connection: conn(),
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: page,
        pages_in_flight: None,
        options,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

fn surface(t: &TableDef) -> Surface {
    if t.surface == Surface::M3 {
        Surface::M3
    } else {
        Surface::LnLake
    }
}

fn key_of(t: &TableDef, r: &Map<String, Value>) -> String {
    t.key
        .iter()
        .map(|k| r[t.columns[*k].name].to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// The rows of a lake table as the generator makes them, by primary key.
fn expected(ds: &Dataset, t: &TableDef) -> BTreeMap<String, Map<String, Value>> {
    let mut out = BTreeMap::new();
    for c in &COMPANIES {
        for i in 0..ds.count(t.entity, c.cono) {
            let r = ds.record(t.entity, c.cono, i);
            let m: Map<String, Value> = t
                .columns
                .iter()
                .map(|col| {
                    (
                        col.name.to_string(),
                        r.get(col.field).to_json(col.kind, surface(t)),
                    )
                })
                .collect();
            out.insert(key_of(t, &m), m);
        }
    }
    out
}

/// A value as plain text the way the emulator's checksum renders it.
fn plain(v: &Value, kind: Kind) -> String {
    match (v, kind) {
        (Value::String(s), _) => s.trim_end().to_string(),
        (Value::Bool(b), _) => b.to_string(),
        (Value::Number(n), Kind::N(d)) if d > 0 => {
            format!("{:.*}", usize::from(d), n.as_f64().unwrap_or(0.0))
        }
        (other, _) => other.to_string(),
    }
}

/// The emulator's checksum ([`Dataset::checksum`]) over rows in the order they came.
fn checksum(t: &TableDef, rows: &[Map<String, Value>]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for r in rows {
        for col in t.columns {
            for b in plain(&r[col.name], col.kind).bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            h = (h ^ 0x1f).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn rows(records: Vec<(String, Value)>) -> Vec<Map<String, Value>> {
    records
        .into_iter()
        .map(|(_, v)| v.as_object().cloned().expect("an object"))
        .collect()
}

fn by_key(
    t: &TableDef,
    rows: &[Map<String, Value>],
) -> (BTreeMap<String, Map<String, Value>>, usize) {
    let mut out = BTreeMap::new();
    let mut dups = 0;
    for r in rows {
        if out.insert(key_of(t, r), r.clone()).is_some() {
            dups += 1;
        }
    }
    (out, dups)
}

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
        "{what}: {} rows, {} expected; missing {missing:?}; unexpected {extra:?}; first difference: {:?}",
        got.len(),
        want.len(),
        differ.map(|(k, v)| (k, v, got.get(k)))
    );
}

fn read(
    p: &LoadedPlugin,
    host: &Arc<Recorder>,
    req: &ReadRequest,
) -> (ReadSummary, Vec<Map<String, Value>>, Vec<Value>) {
    let s = p
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("read {} failed: {e}", req.task));
    let rec = host.take();
    (s, rows(rec.records), rec.checkpoints)
}

#[test]
fn every_task_replicates_its_lake_table_completely_for_several_page_sizes() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    for (task, table) in TASKS {
        let t = tables::lake_table(table).expect("a lake table");
        let want = expected(&ds, t);
        for page in [None, Some(100), Some(77)] {
            let (summary, got_rows, checkpoints) = read(
                &p,
                &host,
                &request(task, SyncMode::FullRefresh, page, json!({}), None),
            );
            assert_eq!(
                got_rows.len() as u64,
                ds.table_rows(t),
                "{task} {page:?}: count"
            );
            assert_eq!(summary.records as usize, got_rows.len());
            assert_eq!(
                checksum(t, &got_rows),
                ds.checksum(t),
                "{task} {page:?}: the emulator's checksum"
            );
            let (got, dups) = by_key(t, &got_rows);
            assert_eq!(dups, 0);
            assert_same(&got, &want, &format!("{task} {page:?}"));
            // Every record carries exactly the table's columns.
            assert!(got_rows.iter().all(|r| r.len() == t.columns.len()));
            let pages = got_rows.len().div_ceil(page.unwrap_or(100_000) as usize) as u64;
            assert_eq!(summary.pages, pages, "{task} {page:?}: pages");
            assert_eq!(
                checkpoints.len() as u64,
                pages + 1,
                "a checkpoint per page and a final one"
            );
            let last = checkpoints.last().expect("a final state");
            assert!(
                last.get("job").is_none() && last["cursor"].is_string(),
                "{last}"
            );
        }
    }
}

#[test]
fn a_catalog_object_reads_as_a_stream_and_options_where_filters() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let t = &tables::OCUSMA;
    let (_, got, _) = read(
        &p,
        &host,
        &request("OCUSMA", SyncMode::FullRefresh, Some(120), json!({}), None),
    );
    assert_eq!(checksum(t, &got), ds.checksum(t));
    let (_, got, _) = read(
        &p,
        &host,
        &request(
            "OCUSMA",
            SyncMode::FullRefresh,
            None,
            json!({"where": "OKCONO = 200"}),
            None,
        ),
    );
    assert_eq!(got.len() as u64, ds.count(t.entity, 200));
    assert!(got.iter().all(|r| r["OKCONO"] == 200));

    let e = p
        .read(
            host.clone() as Arc<dyn HostCallbacks>,
            &request("NOSUCHTABLE", SyncMode::FullRefresh, None, json!({}), None),
        )
        .expect_err("no such object");
    assert!(e.to_string().contains("NOSUCHTABLE"), "{e}");
    host.take();
}

#[test]
fn a_failed_job_reports_the_servers_reason_naming_the_job() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let req = request(
        "m3_customers",
        SyncMode::FullRefresh,
        None,
        json!({"where": "NOSUCH = 1"}),
        None,
    );
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("the job fails");
    let text = e.to_string();
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("Compass job"), "{text}");
    assert!(text.contains("m3_customers (OCUSMA)"), "{text}");
    assert!(
        text.contains("unknown column 'NOSUCH'"),
        "the server's reason: {text}"
    );
    host.take();
}

#[test]
fn a_state_whose_cursor_is_no_real_date_is_refused_before_any_job() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    for cursor in [
        "2025-02-31T00:00:00.000Z",
        "2025-04-31",
        "2025-03-01T24:00:00Z",
    ] {
        let req = request(
            "m3_customers",
            SyncMode::Incremental,
            None,
            json!({}),
            Some(json!({ "cursor": cursor })),
        );
        let e = p
            .read(host.clone() as Arc<dyn HostCallbacks>, &req)
            .expect_err("an impossible cursor is refused");
        let text = e.to_string();
        assert!(text.contains(cursor), "{text}");
        assert!(text.contains("not an ISO-8601 time"), "{text}");
        let rec = host.take();
        assert!(rec.records.is_empty() && rec.checkpoints.is_empty());
        assert!(
            rec.requests.is_empty(),
            "no job submitted: {:?}",
            rec.requests
        );
    }
}

#[test]
fn incremental_reads_return_what_changed_since_the_state() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    for (task, table, cursor) in [
        ("m3_customers", "OCUSMA", "OKLMTS"),
        ("ln_sales_orders", "tdsls400", "timestamp"),
    ] {
        let t = tables::lake_table(table).expect("table");
        let (s1, all, _) = read(
            &p,
            &host,
            &request(task, SyncMode::Incremental, Some(200), json!({}), None),
        );
        assert_eq!(all.len() as u64, emu.emu.dataset().table_rows(t));
        let state = s1.state.expect("a state");
        let report = emu.control(
            "POST",
            "changes",
            Some(json!({"table": table, "count": 6, "cono": 100})),
        );
        let changed: Vec<String> = report["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let (s2, delta, _) = read(
            &p,
            &host,
            &request(
                task,
                SyncMode::Incremental,
                Some(200),
                json!({}),
                Some(state.clone()),
            ),
        );
        let key_col = t.columns[t.key[1]].name;
        let got: Vec<String> = delta
            .iter()
            .map(|r| r[key_col].as_str().unwrap_or_default().to_string())
            .collect();
        for k in &changed {
            assert!(got.contains(k), "{task}: changed {k} missing from {got:?}");
        }
        // Anything else shares the old cursor value.
        let old = state["cursor"].as_str().expect("cursor");
        for r in &delta {
            let k = r[key_col].as_str().unwrap_or_default().to_string();
            let stamp = match &r[cursor] {
                Value::Number(n) => iso(n.as_i64().unwrap_or(0)),
                v => v.as_str().unwrap_or_default().to_string(),
            };
            assert!(
                changed.contains(&k) || stamp == old,
                "{task}: {k} at {stamp} did not change"
            );
        }
        assert!(
            delta.len() <= changed.len() + 2,
            "{task}: {} rows",
            delta.len()
        );
        let s2 = s2.state.expect("a state");
        // The cursor is the query's own bound (its submission minus the ingestion lag),
        // not the highest stamp read: before the changes, so the next read overlaps them.
        let (cursor, changed_at) = (
            s2["cursor"].as_str().expect("a cursor"),
            report["lastModified"].as_str().expect("a change stamp"),
        );
        assert!(
            cursor < changed_at,
            "{task}: cursor {cursor} vs {changed_at}"
        );
    }
}

fn iso(ms: i64) -> String {
    ionport_emulator::time::ms_to_iso(ms)
}

#[test]
fn a_cancelled_read_resumes_the_same_job_without_gaps_or_repeats() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let t = &tables::OOLINE;
    host.cancel_after_batches(3);
    let req = request(
        "m3_order_lines",
        SyncMode::FullRefresh,
        Some(100),
        json!({}),
        None,
    );
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("cancelled");
    assert_eq!(e.kind(), "cancelled");
    let first = host.take();
    let state = first.checkpoints.last().cloned().expect("a checkpoint");
    assert_eq!(
        state["job"]["offset"].as_u64(),
        Some(first.records.len() as u64),
        "{state}"
    );
    let submitted = emu.emu.counters().jobs_submitted;
    let req = request(
        "m3_order_lines",
        SyncMode::FullRefresh,
        Some(100),
        json!({}),
        Some(state),
    );
    let (_, rest, _) = read(&p, &host, &req);
    assert_eq!(
        emu.emu.counters().jobs_submitted,
        submitted,
        "the same job is read on"
    );
    let mut all = rows(first.records);
    all.extend(rest);
    assert_eq!(
        checksum(t, &all),
        ds.checksum(t),
        "no gaps, no repeats, same order"
    );
}

#[test]
fn cancelling_while_the_job_runs_cancels_the_job() {
    let emu = emulator_with(Duration::from_secs(30));
    let p = lake();
    let host = emu.host();
    let h2 = host.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        h2.cancel();
    });
    let req = request("m3_items", SyncMode::FullRefresh, None, json!({}), None);
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect_err("cancelled");
    stopper.join().expect("the stopper");
    assert_eq!(e.kind(), "cancelled", "{e}");
    let rec = host.take();
    let cancel = rec
        .requests
        .iter()
        .find(|(m, path)| m == "PUT" && path.ends_with("/cancel"))
        .cloned();
    let (_, path) = cancel.unwrap_or_else(|| panic!("no cancel request in {:?}", rec.requests));
    let status_path = path.replace("/cancel", "/status/");
    let head = GatewayRequestHead {
        method: "GET".into(),
        path: status_path,
        query: vec![],
        headers: vec![],
        timeout_secs: None,
    };
    let resp = host.gateway(head, Vec::new()).expect("status");
    let v: Value = serde_json::from_slice(&resp.body).expect("json");
    assert_eq!(v["status"], "CANCELED", "{v}");
}

#[test]
fn with_faults_at_a_rate_the_data_is_still_complete_and_correct() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    emu.control(
        "PUT",
        "faults",
        Some(json!([
            {"kind": "503", "rate": 0.1, "api": "datalake"},
            {"kind": "504", "rate": 0.1, "api": "datalake"},
            {"kind": "reset", "rate": 0.07, "api": "datalake"},
            {"kind": "truncated", "rate": 0.07, "api": "datalake"},
            {"kind": "malformed_json", "rate": 0.03, "api": "datalake"},
        ])),
    );
    for (task, table) in TASKS {
        let t = tables::lake_table(table).expect("table");
        // One page at a time: the emulator draws its dice in the order requests arrive, so
        // only a sequential read meets the same faults every run. (Pages of 60 cannot
        // shrink, so a page that draws two 504s ends the read: with this seed none does.
        // Pages in flight under faults: `pages_in_flight_ln_datalake.rs`.)
        let mut req = request(task, SyncMode::FullRefresh, Some(60), json!({}), None);
        req.pages_in_flight = Some(1);
        let (_, got, _) = read(&p, &host, &req);
        let (by, dups) = by_key(t, &got);
        assert_eq!(dups, 0, "{task}");
        assert_same(&by, &expected(&ds, t), task);
    }
    let faults = emu.control("GET", "faults", None);
    let injected: u64 = faults["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum();
    assert!(injected >= 10, "faults were injected: {faults}");
}

#[test]
fn a_gateway_timeout_on_a_result_page_shrinks_the_page() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    emu.control(
        "PUT",
        "faults",
        Some(json!({"kind": "504", "count": 2, "api": "datalake", "path_contains": "/result"})),
    );
    let (s, got, _) = {
        let s = p
            .read(
                host.clone() as Arc<dyn HostCallbacks>,
                &request(
                    "m3_order_lines",
                    SyncMode::FullRefresh,
                    Some(400),
                    json!({}),
                    None,
                ),
            )
            .expect("read");
        let rec = host.take();
        assert!(
            rec.logs.iter().any(|l| l.contains("smaller pages")),
            "{:?}",
            rec.logs
        );
        (s, rows(rec.records), ())
    };
    assert_eq!(
        checksum(&tables::OOLINE, &got),
        ds.checksum(&tables::OOLINE)
    );
    assert!(s.pages > ds.table_rows(&tables::OOLINE).div_ceil(400));
}

#[test]
fn check_reports_success_and_a_wrong_secret_as_a_token_problem() {
    let emu = emulator();
    let p = lake();
    let r = p
        .check(emu.host() as Arc<dyn HostCallbacks>, &conn())
        .expect("check");
    assert!(r.success, "{r:?}");
    assert!(r.details["query_id"].is_string(), "{r:?}");
    let bad = emu.host_with(|v| v["cs"] = json!("wrong"));
    let r = p
        .check(bad as Arc<dyn HostCallbacks>, &conn())
        .expect("check");
    assert_eq!(r.failed_part.as_deref(), Some("token"), "{r:?}");
    let r = p
        .check(
            emu.host() as Arc<dyn HostCallbacks>,
            &ConnectionConfig {
                settings: json!({"page_rows": "many"}),
            },
        )
        .expect("check");
    assert_eq!(r.failed_part.as_deref(), Some("settings"), "{r:?}");
}

#[test]
fn discover_lists_catalog_objects_with_schemas_and_the_predefined_tasks() {
    let emu = emulator();
    let p = lake();
    let d = p
        .discover(emu.host() as Arc<dyn HostCallbacks>, &conn())
        .expect("discover");
    for (task, table) in TASKS {
        let s = d
            .streams
            .iter()
            .find(|s| s.spec.name == task)
            .unwrap_or_else(|| panic!("{task}"));
        assert!(s.predefined && s.available);
        let o = d
            .streams
            .iter()
            .find(|s| s.spec.name == table)
            .unwrap_or_else(|| panic!("{table}"));
        assert!(!o.predefined && o.available);
        let t = tables::lake_table(table).expect("table");
        assert_eq!(
            o.spec.cursor_field.as_deref(),
            Some(t.columns[t.last_modified].name)
        );
        assert_eq!(
            o.spec.primary_key,
            t.key
                .iter()
                .map(|k| t.columns[*k].name.to_string())
                .collect::<Vec<_>>()
        );
        // The predefined task's columns are the catalog's.
        let props = |v: &Value| {
            v["properties"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let mut a = props(&s.spec.record_schema);
        let mut b = props(&o.spec.record_schema);
        a.sort();
        b.sort();
        assert_eq!(a, b, "{task}");
    }
}

#[test]
fn check_reports_missing_rights_when_the_gateway_answers_403() {
    let emu = emulator();
    let p = lake();
    emu.control(
        "PUT",
        "faults",
        Some(json!({"kind": "403", "api": "datalake"})),
    );
    let r = p
        .check(emu.host() as Arc<dyn HostCallbacks>, &conn())
        .expect("check");
    assert_eq!(r.failed_part.as_deref(), Some("rights"), "{r:?}");
}

#[test]
fn a_gateway_that_times_out_on_result_pages_over_150_rows_gets_smaller_pages_through_cores_host() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    // Submits and status requests name no page size; result pages over 150 rows time out.
    emu.control(
        "PUT",
        "faults",
        Some(json!({"kind": "504", "api": "datalake", "page_above": 150})),
    );
    let req = request(
        "m3_order_lines",
        SyncMode::FullRefresh,
        Some(400),
        json!({}),
        None,
    );
    let (s, got, _) = read(&p, &host, &req);
    assert_eq!(
        checksum(&tables::OOLINE, &got),
        ds.checksum(&tables::OOLINE)
    );
    assert_eq!(got.len() as u64, ds.table_rows(&tables::OOLINE));
    // 400 and 200 time out, each asked once more by core; then pages of 100.
    let injected: u64 = emu.control("GET", "faults", None)["rules"][0]["injected"]
        .as_u64()
        .expect("a count");
    assert_eq!(injected, 4);
    assert_eq!(host.connection().gateway().metrics().retries, 2);
    assert!(s.pages >= ds.table_rows(&tables::OOLINE).div_ceil(100));
}

/// One gateway call of the test itself (not the connector's), answered `2xx`.
fn call(host: &Recorder, method: &str, path: &str, query: &[(&str, &str)], body: &str) -> Vec<u8> {
    let head = GatewayRequestHead {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        timeout_secs: None,
    };
    let resp = host
        .gateway(head, body.as_bytes().to_vec())
        .expect("an answer");
    assert!(
        (200..300).contains(&resp.status),
        "{path}: HTTP {}",
        resp.status
    );
    resp.body
}

#[test]
fn a_state_saved_before_the_sdk_query_job_stream_resumes_its_job() {
    let emu = emulator();
    let p = lake();
    let host = emu.host();
    let ds = emu.emu.dataset();
    let t = &tables::OCUSMA;
    // A job of m3_customers' columns, as an earlier version of the connector submitted it.
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let sql = format!("SELECT {} FROM OCUSMA", cols.join(", "));
    let jobs = "DATAFABRIC/compass/v2/jobs";
    let submitted: Value =
        serde_json::from_slice(&call(&host, "POST", &format!("{jobs}/"), &[], &sql)).unwrap();
    let id = submitted["queryId"].as_str().unwrap().to_string();
    let mut finished = false;
    for _ in 0..500 {
        let s: Value = serde_json::from_slice(&call(
            &host,
            "GET",
            &format!("{jobs}/{id}/status/"),
            &[],
            "",
        ))
        .unwrap();
        if s["status"] == "FINISHED" {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(finished, "the job finished");
    // The seven rows that earlier read handed over.
    let first: Vec<Map<String, Value>> = String::from_utf8(call(
        &host,
        "GET",
        &format!("{jobs}/{id}/result/"),
        &[("offset", "0"), ("limit", "7")],
        "",
    ))
    .unwrap()
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(first.len(), 7);
    host.take();
    let submitted = emu.emu.counters().jobs_submitted;

    // Its state as that version saved it: no `bound` in the job.
    let cursor = "2020-01-01T00:00:00.000Z";
    let saved = json!({"cursor": cursor, "job": {"id": id, "offset": 7, "mode": "full_refresh"}});
    let req = request(
        "m3_customers",
        SyncMode::FullRefresh,
        Some(50),
        json!({}),
        Some(saved),
    );
    let (summary, rest, checkpoints) = read(&p, &host, &req);
    assert_eq!(
        emu.emu.counters().jobs_submitted,
        submitted,
        "the same job is read on"
    );
    let mut all = first;
    all.extend(rest);
    let (got, dups) = by_key(t, &all);
    assert_eq!(dups, 0, "no row twice");
    assert_same(&got, &expected(&ds, t), "OCUSMA resumed at row 7");
    assert_eq!(checksum(t, &all), ds.checksum(t), "no gaps, same order");
    // The checkpoints keep the shape; without a bound the read leaves its cursor.
    assert_eq!(
        checkpoints.first(),
        Some(&json!({"cursor": cursor, "job": {"id": id, "offset": 57, "mode": "full_refresh"}}))
    );
    assert_eq!(checkpoints.last(), Some(&json!({"cursor": cursor})));
    assert_eq!(summary.state, Some(json!({"cursor": cursor})));
}
