//! Data Lake on the Data Fabric endpoints and Compass's job lifecycle limits, through the
//! built cdylib and core's own host against the emulator on loopback: the API bases an
//! older tenant configures are the ones asked; a query failed at the service's 60-minute
//! limit is a clear error; a result that is no longer kept (about 20 hours) is queried
//! again from the saved cursor, between runs and in the middle of one, with no row lost;
//! the form refuses pages over Compass's 100,000 rows and bases that are not relative
//! paths.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ionport_core::form_values::FormValues;
use ionport_core::host::HostCallbacks;
use ionport_emulator::EmulatorConfig;
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::emulated::Emulated;
use ionport_tests::live::{self, Live, key_of};
use serde_json::{Value, json};

const KEY: &[&str] = &["OKCONO", "OKCUNO"];

fn config() -> EmulatorConfig {
    EmulatorConfig {
        scale: 300,
        job_run_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    }
}

/// OCUSMA's rows as the emulator counts them (its `/__emulator/info`).
async fn ocusma_rows(live: &Live) -> usize {
    let info = live.control("GET", "info", None).await;
    usize::try_from(info["lakeTables"]["OCUSMA"].as_u64().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_tenants_bases_are_the_ones_every_lake_request_goes_to() {
    let live = Live::start(config()).await;
    let lake = live::plugin(&live::registry(), "infor-datalake");
    let conn = live.connection();
    let tenant = live.control("GET", "info", None).await["tenant"]
        .as_str()
        .unwrap()
        .to_string();
    let settings = json!({
        "compass_base": "IONSERVICES/datalakeapi/v2/compass",
        "catalog_base": "IONSERVICES/datacatalog/v1",
    });
    // A catalog object as a stream: its schema from the catalog, its rows from Compass.
    let got = live::read(
        &lake,
        &conn,
        "OCUSMA",
        settings,
        SyncMode::FullRefresh,
        None,
        100,
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.records.len(), ocusma_rows(&live).await);
    let lake_paths: Vec<String> = live
        .emu
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| !p.contains("/as/"))
        .collect();
    let old = format!("/{tenant}/IONSERVICES/");
    assert!(
        lake_paths
            .iter()
            .any(|p| p.contains("/datacatalog/v1/object/OCUSMA")),
        "{lake_paths:?}"
    );
    assert!(
        lake_paths
            .iter()
            .any(|p| p.starts_with(&format!("{old}datalakeapi/v2/compass/jobs/"))),
        "{lake_paths:?}"
    );
    assert!(
        lake_paths.iter().all(|p| p.starts_with(&old)),
        "every request under the configured bases: {lake_paths:?}"
    );

    // Without the setting, the Data Fabric suite's bases.
    live.control("DELETE", "requests", None).await;
    let got = live::read(
        &lake,
        &conn,
        "OCUSMA",
        json!({}),
        SyncMode::FullRefresh,
        None,
        100,
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let paths: Vec<String> = live.emu.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths
            .iter()
            .filter(|p| !p.contains("/as/"))
            .all(|p| p.starts_with(&format!("/{tenant}/DATAFABRIC/"))),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_failed_at_the_time_limit_names_the_table_the_limit_and_what_to_do() {
    let live = Live::start(config()).await;
    let lake = live::plugin(&live::registry(), "infor-datalake");
    let conn = live.connection();
    live.control("POST", "jobs/time-limit", Some(json!({"count": 1})))
        .await;
    let got = live::read(
        &lake,
        &conn,
        "m3_customers",
        json!({}),
        SyncMode::FullRefresh,
        None,
        100,
    )
    .await;
    let (kind, message) = got.error.expect("the read fails");
    assert_eq!(kind, "gateway", "{message}");
    for part in [
        "OCUSMA",
        "60-minute",
        "incrementally",
        "`where`",
        "timed out",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(got.records.is_empty());
    // The limit was one job's: the same read then works.
    let got = live::read(
        &lake,
        &conn,
        "m3_customers",
        json!({}),
        SyncMode::FullRefresh,
        None,
        100,
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.records.len(), ocusma_rows(&live).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_expires_during_a_read_is_queried_again_and_no_row_is_lost() {
    let live = Live::start(config()).await;
    let lake = live::plugin(&live::registry(), "infor-datalake");
    let conn = live.connection();
    let rows = ocusma_rows(&live).await;
    // Five result pages are served, then the job's result is gone.
    live.control("POST", "jobs/expire", Some(json!({"after_results": 5})))
        .await;
    let got = live::read(
        &lake,
        &conn,
        "m3_customers",
        json!({"page_rows": 10}),
        SyncMode::FullRefresh,
        None,
        10,
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(live.emu.counters().jobs_submitted, 2, "one new query");
    assert!(
        got.logs
            .iter()
            .any(|l| l.contains("is no longer kept (HTTP 410)") && l.contains("querying again")),
        "{:?}",
        got.logs
    );
    // Rows delivered before the expiry come again with the new job's whole result.
    let before = got.records.len() - rows;
    assert!(before <= 50 && before % 10 == 0, "{before} rows before");
    let keys: Vec<String> = got.records.iter().map(|r| key_of(r, KEY)).collect();
    let all: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(all.len(), rows, "every row, once per key");
    let requeried: BTreeSet<&String> = keys[before..].iter().collect();
    assert_eq!(requeried.len(), rows, "the new job's result is whole");
    let state = got.state.expect("a final state");
    assert!(state.get("job").is_none(), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_expires_again_in_the_same_read_is_an_error_keeping_the_checkpoint() {
    let live = Live::start(config()).await;
    let lake = live::plugin(&live::registry(), "infor-datalake");
    let conn = live.connection();
    // The first job's result is gone at its first page: one new query.
    live.control("POST", "jobs/expire", Some(json!({"after_results": 0})))
        .await;
    let settings = json!({"page_rows": 10});
    let expiring = {
        let live = &live;
        async move {
            // Re-armed once the new job is submitted: its result goes after 3 pages.
            for _ in 0..500 {
                if live.emu.counters().jobs_submitted >= 2 {
                    live.control("POST", "jobs/expire", Some(json!({"after_results": 3})))
                        .await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let read = live::read(
        &lake,
        &conn,
        "m3_customers",
        settings,
        SyncMode::FullRefresh,
        None,
        10,
    );
    let (got, ()) = tokio::join!(read, expiring);
    let (_, message) = got.error.expect("a second expiry ends the read");
    assert!(
        message.contains("expired") && message.contains("run the task again"),
        "{message}"
    );
    // What was delivered is covered by the last checkpoint, which names the job to resume.
    let state = got.state.expect("a checkpoint");
    assert_eq!(
        state["job"]["offset"].as_u64(),
        Some(got.records.len() as u64),
        "{state}"
    );
}

fn lake_plugin() -> Arc<ionport_core::plugin::LoadedPlugin> {
    live::plugin(&live::registry(), "infor-datalake")
}

fn request(state: Option<Value>, page: u32) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: json!({"page_rows": page, "ingestion_lag_secs": 0}),
        },
        task: "m3_customers".into(),
        sync_mode: SyncMode::Incremental,
        state,
        page_size: Some(page),
        pages_in_flight: Some(1),
        options: json!({}),
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

#[test]
fn a_result_expired_between_runs_is_queried_again_from_the_saved_cursor() {
    let emu = Emulated::start(config());
    let p = lake_plugin();
    let host = emu.host();
    let first = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &request(None, 100))
        .unwrap();
    host.take();
    let cursor = first.state.unwrap()["cursor"].as_str().unwrap().to_string();

    let changed = emu.control(
        "POST",
        "changes",
        Some(json!({"table": "OCUSMA", "count": 30, "cono": 100})),
    );
    let changed: BTreeSet<String> = changed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(changed.len(), 30);

    // A run stopped after two pages of five rows leaves the job and its offset.
    host.cancel_after_batches(2);
    let stopped = json!({"cursor": cursor});
    let e = p
        .read(
            host.clone() as Arc<dyn HostCallbacks>,
            &request(Some(stopped), 5),
        )
        .expect_err("cancelled");
    assert_eq!(e.kind(), "cancelled");
    let part = host.take();
    let state = part.checkpoints.last().cloned().expect("a checkpoint");
    assert_eq!(state["cursor"], json!(cursor), "{state}");
    let job = state["job"]["id"].as_str().unwrap().to_string();

    // Compass no longer keeps it (its ~20 hours are over): status and result answer 404.
    let n = emu.control(
        "POST",
        "jobs/expire",
        Some(json!({"ids": [job], "status": 404})),
    );
    assert_eq!(n["expired"], 1);
    let submitted = emu.emu.counters().jobs_submitted;
    let rest = p
        .read(
            host.clone() as Arc<dyn HostCallbacks>,
            &request(Some(state), 5),
        )
        .unwrap();
    let rec = host.take();
    assert_eq!(emu.emu.counters().jobs_submitted, submitted + 1);
    assert!(
        rec.logs.iter().any(|l| l.contains(&job)
            && l.contains("no longer kept (HTTP 404")
            && l.contains(&format!("the cursor {cursor}"))),
        "{:?}",
        rec.logs
    );
    // The new query starts at the saved cursor: exactly the changed rows, none lost.
    let sql: Vec<String> = emu
        .emu
        .requests()
        .into_iter()
        .filter_map(|r| r.sql)
        .collect();
    assert!(sql.last().is_some_and(|q| q.contains(&cursor)), "{sql:?}");
    let got: BTreeSet<String> = rec
        .records
        .iter()
        .map(|(_, r)| r["OKCUNO"].as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(got, changed, "the rows changed since the cursor");
    assert_eq!(rest.records, 30);
    assert!(rest.state.unwrap().get("job").is_none());
}

#[test]
fn the_form_refuses_pages_over_100000_rows_and_bases_that_are_not_relative_paths() {
    let p = lake_plugin();
    let form = p.connection_form();
    let errors = |values: Value| -> Vec<(String, String)> {
        match FormValues::parse(form, &values) {
            Ok(_) => Vec::new(),
            Err(es) => es.into_iter().map(|e| (e.field, e.reason)).collect(),
        }
    };
    let base = || json!({"credentials": null});
    let mut v = base();
    v["page_rows"] = json!(100_001);
    let e = errors(v);
    assert!(
        e.iter()
            .any(|(f, r)| f == "page_rows" && r.contains("100000")),
        "{e:?}"
    );
    let mut v = base();
    v["page_rows"] = json!(100_000);
    assert!(!errors(v).iter().any(|(f, _)| f == "page_rows"));
    for bad in [
        "https://elsewhere.example/compass",
        "DATAFABRIC/../M3/m3api-rest",
        "/DATAFABRIC/compass/v2",
    ] {
        for field in ["compass_base", "catalog_base"] {
            let mut v = base();
            v[field] = json!(bad);
            let e = errors(v);
            assert!(e.iter().any(|(f, _)| f == field), "{field}={bad}: {e:?}");
        }
    }

    // Settings that skipped the form meet the same rules in the connector.
    let emu = Emulated::start(config());
    let host = emu.host();
    for (settings, field) in [
        (json!({"page_rows": 200_000}), "page_rows"),
        (json!({"compass_base": "../compass"}), "compass_base"),
    ] {
        let mut req = request(None, 10);
        req.connection.settings = settings;
        req.page_size = None;
        let e = p
            .read(host.clone() as Arc<dyn HostCallbacks>, &req)
            .expect_err("refused");
        assert_eq!(e.kind(), "invalid_input", "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }
    assert_eq!(emu.emu.counters().jobs_submitted, 0);
}
