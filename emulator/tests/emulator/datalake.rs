#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ionport_emulator::data::{Entity, tables};
use ionport_emulator::{EmulatorConfig, RunningEmulator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

fn jobs(emu: &RunningEmulator) -> String {
    format!("{}/DATAFABRIC/compass/v2/jobs", emu.api_base())
}

async fn submit(emu: &RunningEmulator, at: &str, sql: &str) -> String {
    let resp = client()
        .post(format!("{}/", jobs(emu)))
        .bearer_auth(at)
        .header("Content-Type", "text/plain")
        .body(sql.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    assert!(v["status"].is_string());
    v["queryId"].as_str().unwrap().to_owned()
}

async fn wait(emu: &RunningEmulator, at: &str, id: &str) -> Value {
    for _ in 0..1000 {
        let (s, v) = get_json(
            emu,
            at,
            &format!("/DATAFABRIC/compass/v2/jobs/{id}/status/"),
        )
        .await;
        assert_eq!(s, 200);
        if v["status"] != "RUNNING" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never finished");
}

async fn page(
    emu: &RunningEmulator,
    at: &str,
    id: &str,
    offset: u64,
    limit: u64,
    accept: &str,
) -> (u16, String, reqwest::header::HeaderMap) {
    let resp = client()
        .get(format!(
            "{}/{id}/result/?offset={offset}&limit={limit}",
            jobs(emu)
        ))
        .bearer_auth(at)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let h = resp.headers().clone();
    (s, resp.text().await.unwrap(), h)
}

async fn query_all(emu: &RunningEmulator, at: &str, sql: &str, limit: u64) -> Vec<Value> {
    let id = submit(emu, at, sql).await;
    let st = wait(emu, at, &id).await;
    assert_eq!(st["status"], "FINISHED", "{st}");
    let total = st["rowCount"].as_u64().unwrap();
    let mut rows = Vec::new();
    let mut offset = 0;
    while offset < total {
        let (s, body, h) = page(emu, at, &id, offset, limit, "application/x-ndjson").await;
        assert_eq!(s, 200);
        assert_eq!(h["content-type"], "application/x-ndjson");
        let got: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            got.len() as u64,
            h["x-row-count"].to_str().unwrap().parse::<u64>().unwrap()
        );
        offset += got.len() as u64;
        rows.extend(got);
    }
    rows
}

#[tokio::test]
async fn compass_job_lifecycle_and_pages() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let rows = query_all(&emu, &at, "SELECT * FROM OCUSMA", 70).await;
    let ds = emu.dataset();
    assert_eq!(rows.len() as u64, ds.table_rows(&tables::OCUSMA));
    assert_eq!(rows[0]["OKCUNO"], "C000000001");
    assert_eq!(rows[0]["OKCONO"], 100);
    assert_eq!(rows[0]["deleted"], false);
    assert!(rows[0]["OKLMTS"].is_i64());
    assert_eq!(rows.last().unwrap()["OKCONO"], 200);
    // CSV and JSON
    let id = submit(
        &emu,
        &at,
        "select OKCUNO, OKCUNM from OCUSMA order by OKCONO, OKCUNO limit 5",
    )
    .await;
    wait(&emu, &at, &id).await;
    let (s, csv, h) = page(&emu, &at, &id, 0, 100, "text/csv").await;
    assert_eq!(s, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "OKCUNO,OKCUNM");
    assert_eq!(lines.len(), 6);
    let (_, js, _) = page(&emu, &at, &id, 2, 2, "application/json").await;
    let arr: Vec<Value> = serde_json::from_str(&js).unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["OKCUNO"], "C000000003");
    // limit above 100,000 is capped; beyond the end is empty
    let (_, body, h) = page(&emu, &at, &id, 10, 200_000, "application/x-ndjson").await;
    assert!(body.is_empty());
    assert_eq!(h["x-total-rows"], "5");
    assert_eq!(emu.counters().jobs_submitted, 2);
}

#[tokio::test]
async fn compass_running_cancel_failed_and_media_type() {
    let emu = start(EmulatorConfig {
        job_run_time: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let at = access_token(&emu).await;
    // text/plain is required
    let resp = client()
        .post(format!("{}/", jobs(&emu)))
        .bearer_auth(&at)
        .json(&json!({"sql": "SELECT * FROM OCUSMA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let id = submit(&emu, &at, "SELECT * FROM MITMAS").await;
    let (_, st) = get_json(
        &emu,
        &at,
        &format!("/DATAFABRIC/compass/v2/jobs/{id}/status/"),
    )
    .await;
    assert_eq!(st["status"], "RUNNING");
    let (s, _, _) = page(&emu, &at, &id, 0, 10, "application/x-ndjson").await;
    assert_eq!(s, 409);
    let resp = client()
        .put(format!("{}/{id}/cancel", jobs(&emu)))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "CANCELED");
    let (_, st) = get_json(
        &emu,
        &at,
        &format!("/DATAFABRIC/compass/v2/jobs/{id}/status/"),
    )
    .await;
    assert_eq!(st["status"], "CANCELED");
    let (s, _) = get_json(&emu, &at, "/DATAFABRIC/compass/v2/jobs/nope/status/").await;
    assert_eq!(s, 404);

    let fast = start_default().await;
    let at = access_token(&fast).await;
    for (sql, want) in [
        ("SELECT * FROM NOSUCH", "not found"),
        ("SELECT FROM", "Syntax"),
        ("SELECT nope FROM OCUSMA", "does not exist"),
        ("UPDATE OCUSMA SET x = 1", "SELECT"),
    ] {
        let id = submit(&fast, &at, sql).await;
        let st = wait(&fast, &at, &id).await;
        assert_eq!(st["status"], "FAILED", "{sql}");
        assert!(
            st["message"].as_str().unwrap().contains(want),
            "{sql}: {st}"
        );
        let (s, _, _) = page(&fast, &at, &id, 0, 10, "application/x-ndjson").await;
        assert_eq!(s, 400);
    }
}

#[tokio::test]
async fn compass_incremental_reads_and_deletes() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let report = control(
        &emu,
        Method::POST,
        "/changes",
        Some(json!({"table": "OCUSMA", "count": 5})),
    )
    .await;
    let since = report["lastModified"].as_str().unwrap();
    let rows = query_all(&emu, &at, &format!("SELECT OKCUNO, OKCHNO, deleted FROM OCUSMA WHERE infor.lastmodified() >= '{since}' ORDER BY OKCUNO"), 100).await;
    let keys: Vec<&str> = rows.iter().map(|r| r["OKCUNO"].as_str().unwrap()).collect();
    let want: Vec<&str> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, want);
    // delete one: it stays in the lake, flagged; as in Compass, a default query leaves
    // out a record whose highest variation is deleted, the include-deleted form shows it
    let del = control(
        &emu,
        Method::POST,
        "/changes",
        Some(json!({"table": "OCUSMA", "indices": [3], "delete": true})),
    )
    .await;
    let deleted_since = del["lastModified"].as_str().unwrap();
    let rows = query_all(
        &emu,
        &at,
        &format!(
            "SELECT OKCUNO, deleted FROM OCUSMA WHERE infor.lastmodified() >= '{deleted_since}'"
        ),
        100,
    )
    .await;
    assert_eq!(rows.len(), 0, "hidden by default: {rows:?}");
    let rows = query_all(&emu, &at, &format!("SELECT OKCUNO, deleted FROM infor.include_deleted(OCUSMA) WHERE infor.lastmodified() >= '{deleted_since}' AND deleted = true"), 100).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["OKCUNO"], "C000000004");
    assert_eq!(rows[0]["deleted"], true);
    // the same changes show in LN's lake table and LN OData (same logical customers)
    let rows = query_all(&emu, &at, &format!("SELECT bpid, timestamp FROM infor.include_deleted(tccom100) WHERE infor.lastmodified() BETWEEN '{since}' AND '2999-01-01T00:00:00Z'"), 100).await;
    assert_eq!(rows.len(), 6);
    // ORDER BY the last modification, descending
    let rows = query_all(
        &emu,
        &at,
        "SELECT OKCUNO, OKLMTS FROM infor.include_deleted(OCUSMA) ORDER BY infor.lastmodified() DESC LIMIT 10",
        100,
    )
    .await;
    let ts: Vec<i64> = rows.iter().map(|r| r["OKLMTS"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(rows[0]["OKCUNO"], "C000000004");
}

#[tokio::test]
async fn compass_ln_tables_and_checksum() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    for t in tables::LAKE_TABLES {
        let rows = query_all(&emu, &at, &format!("SELECT * FROM {}", t.name), 100_000).await;
        assert_eq!(rows.len() as u64, emu.dataset().table_rows(t), "{}", t.name);
    }
    let rows = query_all(
        &emu,
        &at,
        "SELECT bpid, nama FROM tccom100 WHERE company = 100 AND bpid < 'C000000003'",
        100,
    )
    .await;
    assert_eq!(rows.len(), 2);
    let (_, bp) = get_json(
        &emu,
        &at,
        "/LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners?$top=1",
    )
    .await;
    assert_eq!(rows[0]["nama"], bp["value"][0]["Name"]);
    // tests elsewhere can compute the same checksum without HTTP
    let a = emu.dataset().checksum(&tables::OCUSMA);
    assert_eq!(
        a,
        ionport_emulator::data::Dataset::new(emu.config().seed, emu.config().scale)
            .checksum(&tables::OCUSMA)
    );
    assert_eq!(emu.dataset().count(Entity::OrderLine, 100), 600);
}

#[tokio::test]
async fn compass_pages_stop_at_10_mb() {
    let emu = start(EmulatorConfig {
        scale: 15_000,
        job_run_time: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let at = access_token(&emu).await;
    let id = submit(&emu, &at, "SELECT * FROM OOLINE").await;
    let st = wait(&emu, &at, &id).await;
    let total = st["rowCount"].as_u64().unwrap();
    assert!(total > 40_000);
    let (s, body, h) = page(&emu, &at, &id, 0, 100_000, "application/x-ndjson").await;
    assert_eq!(s, 200);
    assert!(body.len() <= 10 * 1024 * 1024);
    let rows = h["x-row-count"].to_str().unwrap().parse::<u64>().unwrap();
    assert!(rows < total, "the page was cut by size");
    assert_eq!(
        h["x-next-offset"].to_str().unwrap().parse::<u64>().unwrap(),
        rows
    );
}

#[tokio::test]
async fn data_catalog() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (s, list) = get_json(&emu, &at, "/DATAFABRIC/datacatalog/v1/object/list").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for want in [
        "OCUSMA", "MITMAS", "CIDMAS", "OOLINE", "tccom100", "tdsls400", "tcibd001",
    ] {
        assert!(names.contains(&want), "{want}");
    }
    let (_, schema) = get_json(&emu, &at, "/DATAFABRIC/datacatalog/v1/object/OCUSMA/schema").await;
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["OKCUNO"]["type"], "string");
    assert_eq!(schema["properties"]["OKCUNO"]["maxLength"], 10);
    assert_eq!(schema["properties"]["deleted"]["type"], "boolean");
    assert_eq!(schema["x-primaryKey"], json!(["OKCONO", "OKCUNO"]));
    let (_, obj) = get_json(&emu, &at, "/DATAFABRIC/datacatalog/v1/object/tccom100").await;
    assert_eq!(
        obj["schema"]["properties"]["timestamp"]["format"],
        "date-time"
    );
    let (s, e) = get_json(&emu, &at, "/DATAFABRIC/datacatalog/v1/object/NOPE/schema").await;
    assert_eq!(s, 404);
    assert!(e["error"]["message"].is_string());
}

/// Every row of every lake table, as Compass returns it, fits the schema the Data Catalog
/// declares for it (a Singer target validates records against that schema).
#[tokio::test]
async fn every_lake_row_fits_its_catalog_schema() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    for t in tables::LAKE_TABLES {
        let (s, schema) = get_json(
            &emu,
            &at,
            &format!("/DATAFABRIC/datacatalog/v1/object/{}/schema", t.name),
        )
        .await;
        assert_eq!(s, 200, "{}", t.name);
        let validator = jsonschema::draft7::new(&schema)
            .unwrap_or_else(|e| panic!("{}: the declared schema is no JSON Schema: {e}", t.name));
        let rows = query_all(&emu, &at, &format!("SELECT * FROM {}", t.name), 100_000).await;
        assert!(!rows.is_empty(), "{}", t.name);
        for row in &rows {
            let errors: Vec<String> = validator
                .iter_errors(row)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{} row {row}: {errors:?}", t.name);
        }
    }
}
