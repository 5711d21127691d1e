//! Pages in flight for LN (`$top`/`$skip` windows) and Data Lake (Compass result pages),
//! through the built cdylibs and core's own host (`Recorder` over `ConnectionHost`)
//! against a real emulator: reads with several pages in flight give exactly the records
//! of a read one page at a time, full and incremental, at page sizes that do and do not
//! divide the counts; a read that fails half-way resumes from its last checkpoint with
//! every record exactly once; several requests really are outstanding at once, and never
//! more than asked.
//!
//! The one addition to core's host here is `Counting` (`ionport_tests::counting`): it
//! passes every call on to the `Recorder` unchanged, counting the gateway calls
//! outstanding at once, and can install an emulator fault once a number of checkpoints was
//! taken (a failure half-way).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{COMPANIES, TableDef, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, ReadSummary, SyncMode};
use ionport_tests::counting::Counting;
use ionport_tests::emulated::Emulated;
use ionport_tests::plugin_lib;
use serde_json::{Value, json};

const IN_FLIGHT: [u32; 3] = [2, 4, 8];
const PAGES: [u32; 3] = [7, 100, 1000];

fn plugin(lib: &str) -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib(lib))
        .expect("the connector loads")
        .clone()
}

fn emulator(latency: Duration) -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: 300,
        job_run_time: Duration::from_millis(20),
        latency,
        ..EmulatorConfig::default()
    })
}

struct Read {
    summary: ReadSummary,
    records: Vec<Value>,
    checkpoints: Vec<Value>,
    most: u64,
}

fn read(p: &LoadedPlugin, host: &Arc<Counting>, req: &ReadRequest) -> Read {
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .unwrap_or_else(|e| panic!("read {} failed: {e}", req.task));
    let (rec, most) = host.take();
    Read {
        summary,
        records: rec.records.into_iter().map(|(_, v)| v).collect(),
        checkpoints: rec.checkpoints,
        most,
    }
}

/// The key of a record: the values of `key` columns, joined.
fn key(t: &TableDef, r: &Value) -> String {
    t.key
        .iter()
        .map(|k| r[t.columns[*k].name].to_string())
        .collect::<Vec<_>>()
        .join("|")
}

fn assert_no_duplicates(t: &TableDef, records: &[Value], what: &str) {
    let keys: BTreeSet<String> = records.iter().map(|r| key(t, r)).collect();
    assert_eq!(keys.len(), records.len(), "{what}: duplicates");
}

/// Reads `req` one page at a time, then with each of [`IN_FLIGHT`]: the same records in
/// the same order, a checkpoint per page, the same final state.
fn same_as_one_at_a_time(p: &LoadedPlugin, host: &Arc<Counting>, t: &TableDef, req: ReadRequest) {
    let what = |n: u32| {
        format!(
            "{} {:?} pages of {:?}, {n} in flight",
            req.task, req.sync_mode, req.page_size
        )
    };
    let one = read(
        p,
        host,
        &ReadRequest {
            pages_in_flight: Some(1),
            ..req.clone()
        },
    );
    assert!(!one.records.is_empty(), "{}: no records", what(1));
    assert_eq!(one.most, 1, "{}: one request at a time", what(1));
    assert_no_duplicates(t, &one.records, &what(1));
    for n in IN_FLIGHT {
        let many = read(
            p,
            host,
            &ReadRequest {
                pages_in_flight: Some(n),
                ..req.clone()
            },
        );
        assert_eq!(many.records.len(), one.records.len(), "{}: count", what(n));
        assert!(many.records == one.records, "{}: other records", what(n));
        assert_eq!(many.summary.records, one.summary.records, "{}", what(n));
        assert_eq!(
            many.checkpoints.len(),
            one.checkpoints.len(),
            "{}: a checkpoint per page",
            what(n)
        );
        assert!(
            many.most <= u64::from(n),
            "{}: {} at once",
            what(n),
            many.most
        );
        // The final state is the same, except for Data Lake's bound (each read is a job).
        let last = |r: &Read| r.checkpoints.last().cloned().unwrap_or_default();
        assert!(last(&many).get("job").is_none() && last(&many).get("after").is_none());
    }
}

// ---- LN ----------------------------------------------------------------------------

const LN_TASKS: [(&str, &TableDef); 3] = [
    ("business_partners", &tables::LN_BUSINESS_PARTNERS),
    ("sales_orders", &tables::LN_ORDERS),
    ("items", &tables::LN_ITEMS),
];

fn ln_request(task: &str, mode: SyncMode, page: u32, state: Option<Value>) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({"company": 100, "language": "en-US"}),
        },
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: Some(page),
        pages_in_flight: None,
        options: json!({"paging": "skip"}),
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

/// The records an entity set holds in company 100 (not deleted).
fn ln_count(emu: &Emulated, t: &TableDef) -> usize {
    let ds = emu.emu.dataset();
    (0..ds.count(t.entity, 100))
        .filter(|i| !ds.record(t.entity, 100, *i).deleted())
        .count()
}

#[test]
fn ln_skip_windows_in_flight_give_exactly_the_records_of_one_at_a_time() {
    let emu = emulator(Duration::ZERO);
    let p = plugin("ionport_connector_ln");
    let host = Counting::new(emu.host());
    for (task, t) in LN_TASKS {
        for page in PAGES {
            let req = ln_request(task, SyncMode::FullRefresh, page, None);
            let full = read(&p, &host, &req);
            assert_eq!(
                full.records.len(),
                ln_count(&emu, t),
                "{task}: every record"
            );
            same_as_one_at_a_time(&p, &host, t, req);
        }
        // Incremental from a cursor half-way through the stamps: the `$filter` and the
        // windows together.
        let full = read(
            &p,
            &host,
            &ln_request(task, SyncMode::FullRefresh, 100, None),
        );
        let mut stamps: Vec<&str> = full
            .records
            .iter()
            .filter_map(|r| r["LastModifiedDateTime"].as_str())
            .collect();
        stamps.sort_unstable();
        let cursor = stamps[stamps.len() / 2].to_string();
        for page in PAGES {
            let req = ln_request(
                task,
                SyncMode::Incremental,
                page,
                Some(json!({ "cursor": cursor })),
            );
            let delta = read(&p, &host, &req);
            assert!(
                !delta.records.is_empty() && delta.records.len() < full.records.len(),
                "{task}: {} of {} records from {cursor}",
                delta.records.len(),
                full.records.len()
            );
            assert!(
                delta
                    .records
                    .iter()
                    .all(|r| r["LastModifiedDateTime"].as_str() >= Some(cursor.as_str()))
            );
            same_as_one_at_a_time(&p, &host, t, req);
        }
    }
}

/// Reads `req`, which fails after the fault `arm` installs; resumes from the last
/// checkpoint; returns what landed (records up to the last checkpoint of the failed read,
/// then the resumed read's) and the failed read's error kind.
fn fail_and_resume(
    p: &LoadedPlugin,
    host: &Arc<Counting>,
    req: &ReadRequest,
    after: u64,
    fault: impl FnOnce() + Send + 'static,
) -> (Vec<Value>, String) {
    host.arm(after, fault);
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, req)
        .expect_err("the read fails half-way");
    let (first, _) = host.take();
    let committed = *first
        .committed
        .last()
        .expect("checkpoints before the failure") as usize;
    assert!(committed > 0, "records were committed before the failure");
    let state = first.checkpoints.last().cloned();
    let mut landed: Vec<Value> = first.records[..committed]
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    let rest = read(
        p,
        host,
        &ReadRequest {
            state,
            ..req.clone()
        },
    );
    landed.extend(rest.records);
    (landed, e.kind().to_string())
}

/// What a failed and resumed read landed is exactly what one read gives: no duplicate,
/// none missing, in the same order.
fn assert_landed_once(t: &TableDef, landed: &[Value], want: &[Value], what: &str) {
    assert_no_duplicates(t, landed, what);
    assert_eq!(landed.len(), want.len(), "{what}");
    assert!(landed == want, "{what}: the same records in the same order");
}

#[test]
fn ln_a_read_with_windows_in_flight_that_fails_half_way_resumes_with_every_record_once() {
    let emu = Arc::new(emulator(Duration::ZERO));
    let p = plugin("ionport_connector_ln");
    let host = Counting::new(emu.host());
    let t = &tables::LN_ORDERS;
    for (mode, page) in [(SyncMode::FullRefresh, 7), (SyncMode::Incremental, 50)] {
        let req = ReadRequest {
            pages_in_flight: Some(4),
            ..ln_request("sales_orders", mode, page, None)
        };
        let want = read(&p, &host, &req).records;
        let e2 = emu.clone();
        // Armed after the first batch: at most the next `pages_in_flight` pages were asked
        // for by then, and the incremental read has only about 7 pages (after the third
        // batch every page could already have been answered, and the fault hit nothing).
        let (landed, kind) = fail_and_resume(&p, &host, &req, 1, move || {
            // A 500 is the answer (the host does not retry it): the read fails.
            e2.control(
                "PUT",
                "faults",
                Some(json!({"kind": "500", "api": "ln", "count": 1})),
            );
        });
        assert_eq!(kind, "gateway");
        assert_landed_once(t, &landed, &want, &format!("{mode:?} pages of {page}"));
    }
}

#[test]
fn ln_windows_are_in_flight_at_once_but_never_more_than_asked() {
    let emu = emulator(Duration::from_millis(15));
    let p = plugin("ionport_connector_ln");
    let host = Counting::new(emu.host());
    for n in [1u32, 4] {
        let req = ReadRequest {
            pages_in_flight: Some(n),
            ..ln_request("business_partners", SyncMode::FullRefresh, 20, None)
        };
        let r = read(&p, &host, &req);
        assert_eq!(
            r.records.len(),
            ln_count(&emu, &tables::LN_BUSINESS_PARTNERS)
        );
        if n == 1 {
            assert_eq!(r.most, 1);
        } else {
            assert!((2..=u64::from(n)).contains(&r.most), "{} at once", r.most);
        }
    }
}

#[test]
fn ln_the_connections_paging_setting_puts_windows_in_flight_and_links_stay_one_at_a_time() {
    // What a pipeline file can say: `settings = { paging = "skip" }`, no read option.
    let emu = emulator(Duration::from_millis(15));
    let p = plugin("ionport_connector_ln");
    let host = Counting::new(emu.host());
    let with = |paging: &str| ReadRequest {
        connection: ConnectionConfig {
            settings: json!({"company": 100, "paging": paging}),
        },
        options: Value::Null,
        pages_in_flight: Some(4),
        ..ln_request("business_partners", SyncMode::FullRefresh, 20, None)
    };
    let skip = read(&p, &host, &with("skip"));
    assert!((2..=4).contains(&skip.most), "skip: {} at once", skip.most);
    let auto = read(&p, &host, &with("auto"));
    assert_eq!(auto.most, 1, "links are followed one at a time");
    assert_eq!(
        skip.records.len(),
        ln_count(&emu, &tables::LN_BUSINESS_PARTNERS)
    );
    assert!(skip.records == auto.records, "the same records either way");
}

#[test]
fn ln_a_window_size_that_times_out_costs_two_504s_and_the_rest_goes_one_at_a_time() {
    let emu = emulator(Duration::ZERO);
    let p = plugin("ionport_connector_ln");
    let recorder = emu.host();
    let host = Counting::new(recorder.clone());
    emu.control(
        "PUT",
        "faults",
        Some(json!({"kind": "504", "api": "ln", "page_above": 60})),
    );
    let req = ReadRequest {
        pages_in_flight: Some(8),
        ..ln_request("business_partners", SyncMode::FullRefresh, 200, None)
    };
    let summary = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .expect("the read completes on smaller pages");
    let (rec, most) = host.take();
    let records: Vec<Value> = rec.records.into_iter().map(|(_, v)| v).collect();
    assert_no_duplicates(&tables::LN_BUSINESS_PARTNERS, &records, "records");
    assert_eq!(records.len(), ln_count(&emu, &tables::LN_BUSINESS_PARTNERS));
    // The first window of 200 goes alone and times out; so does the one of 100 after it
    // (one at a time from then on): two 504s each, core's retry of each.
    let injected = emu.control("GET", "faults", None)["rules"][0]["injected"]
        .as_u64()
        .expect("a count");
    assert_eq!(injected, 4);
    assert_eq!(recorder.connection().gateway().metrics().retries, 2);
    assert_eq!(most, 1, "after a timeout, one window at a time");
    assert!(summary.pages >= records.len().div_ceil(50) as u64);
}

// ---- Data Lake -----------------------------------------------------------------------

const DL_TASKS: [(&str, &str); 3] = [
    ("m3_customers", "OCUSMA"),
    ("m3_order_lines", "OOLINE"),
    ("ln_items", "tcibd001"),
];

fn dl_request(task: &str, mode: SyncMode, page: u32, state: Option<Value>) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({"page_rows": 100000, "query_timeout_secs": 60, "ingestion_lag_secs": 0}),
        },
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: Some(page),
        pages_in_flight: None,
        options: json!({}),
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

/// A change stamp half-way through a lake table's rows (ISO-8601).
fn middle_stamp(emu: &Emulated, t: &TableDef) -> String {
    let ds = emu.emu.dataset();
    let mut ms: Vec<i64> = COMPANIES
        .iter()
        .flat_map(|c| (0..ds.count(t.entity, c.cono)).map(move |i| (c.cono, i)))
        .map(|(cono, i)| ds.record(t.entity, cono, i).last_modified_ms())
        .collect();
    ms.sort_unstable();
    ionport_emulator::time::ms_to_iso(ms[ms.len() / 2])
}

#[test]
fn datalake_result_pages_in_flight_give_exactly_the_records_of_one_at_a_time() {
    let emu = emulator(Duration::ZERO);
    let p = plugin("ionport_connector_datalake");
    let host = Counting::new(emu.host());
    let ds = emu.emu.dataset();
    for (task, table) in DL_TASKS {
        let t = tables::lake_table(table).expect("a lake table");
        for page in PAGES {
            let req = dl_request(task, SyncMode::FullRefresh, page, None);
            let full = read(&p, &host, &req);
            assert_eq!(full.records.len() as u64, ds.table_rows(t), "{task}");
            same_as_one_at_a_time(&p, &host, t, req);
        }
        // Incremental from a cursor half-way through the change stamps.
        let cursor = middle_stamp(&emu, t);
        for page in PAGES {
            let req = dl_request(
                task,
                SyncMode::Incremental,
                page,
                Some(json!({ "cursor": cursor })),
            );
            let delta = read(&p, &host, &req);
            assert!(
                !delta.records.is_empty() && (delta.records.len() as u64) < ds.table_rows(t),
                "{task}: {} of {} rows from {cursor}",
                delta.records.len(),
                ds.table_rows(t)
            );
            same_as_one_at_a_time(&p, &host, t, req);
        }
    }
}

#[test]
fn datalake_a_read_with_pages_in_flight_that_fails_half_way_resumes_the_job_with_every_row_once() {
    let emu = Arc::new(emulator(Duration::ZERO));
    let p = plugin("ionport_connector_datalake");
    let host = Counting::new(emu.host());
    let t = tables::lake_table("OOLINE").expect("a lake table");
    for (mode, page) in [(SyncMode::FullRefresh, 7), (SyncMode::Incremental, 100)] {
        let req = ReadRequest {
            pages_in_flight: Some(4),
            ..dl_request("m3_order_lines", mode, page, None)
        };
        let want = read(&p, &host, &req).records;
        let e2 = emu.clone();
        let submitted = emu.emu.counters().jobs_submitted;
        let (landed, kind) = fail_and_resume(&p, &host, &req, 3, move || {
            e2.control(
                "PUT",
                "faults",
                Some(json!({"kind": "500", "api": "datalake", "path_contains": "/result", "count": 1})),
            );
        });
        assert_eq!(kind, "gateway");
        assert_eq!(
            emu.emu.counters().jobs_submitted,
            submitted + 1,
            "the resumed read reads on the same job"
        );
        assert_landed_once(t, &landed, &want, &format!("{mode:?} pages of {page}"));
    }
}

#[test]
fn datalake_result_pages_are_in_flight_at_once_but_never_more_than_asked() {
    let emu = emulator(Duration::from_millis(15));
    let p = plugin("ionport_connector_datalake");
    let host = Counting::new(emu.host());
    let t = tables::lake_table("OCUSMA").expect("a lake table");
    for n in [1u32, 3] {
        let req = ReadRequest {
            pages_in_flight: Some(n),
            ..dl_request("m3_customers", SyncMode::FullRefresh, 25, None)
        };
        let r = read(&p, &host, &req);
        assert_eq!(r.records.len() as u64, emu.emu.dataset().table_rows(t));
        if n == 1 {
            assert_eq!(r.most, 1);
        } else {
            assert!((2..=u64::from(n)).contains(&r.most), "{} at once", r.most);
        }
    }
}

#[test]
fn with_retried_faults_at_a_rate_pages_in_flight_still_give_every_record_once() {
    let emu = emulator(Duration::ZERO);
    let host = Counting::new(emu.host());
    emu.control(
        "PUT",
        "faults",
        Some(json!([
            {"kind": "503", "rate": 0.1},
            {"kind": "reset", "rate": 0.05},
            {"kind": "truncated", "rate": 0.05},
            {"kind": "malformed_json", "rate": 0.03},
        ])),
    );
    let ln = plugin("ionport_connector_ln");
    let req = ReadRequest {
        pages_in_flight: Some(4),
        ..ln_request("items", SyncMode::FullRefresh, 30, None)
    };
    let r = read(&ln, &host, &req);
    assert_no_duplicates(&tables::LN_ITEMS, &r.records, "LN");
    assert_eq!(r.records.len(), ln_count(&emu, &tables::LN_ITEMS));

    let lake = plugin("ionport_connector_datalake");
    let t = tables::lake_table("OOLINE").expect("a lake table");
    let req = ReadRequest {
        pages_in_flight: Some(4),
        ..dl_request("m3_order_lines", SyncMode::FullRefresh, 50, None)
    };
    let r = read(&lake, &host, &req);
    assert_no_duplicates(t, &r.records, "Data Lake");
    assert_eq!(r.records.len() as u64, emu.emu.dataset().table_rows(t));
    let injected: u64 = emu.control("GET", "faults", None)["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum();
    assert!(injected >= 5, "faults were injected");
}
