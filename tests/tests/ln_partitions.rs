//! LN full reads in partitions (`partitions = 3`): partition `i` of `N` reads the `$skip`
//! windows `i`, `i + N`... of one query ordered by key, each with its own checkpoint (its
//! next window's offset). Through `ionport run` into Postgres and through the built cdylib
//! on core's own host, against a real emulator on loopback. The oracles are the emulator's
//! generator (what it holds) and its own request log, never the connector.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Dataset, tables};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadPartition, ReadRequest, SyncMode};
use ionport_tests::destinations::{DropSchemas, pg_client, pg_url};
use ionport_tests::emulated::Emulated;
use ionport_tests::{finished_reads, output_text, plugin_lib, run_pipeline};
use serde_json::{Value, json};

const SCALE: u64 = 300;
const PAGE: u64 = 40;
const COMPANY: u32 = 100;

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        ..EmulatorConfig::default()
    })
}

/// The business partners the generator holds for the company (deleted ones aside).
fn partner_keys(ds: &Dataset) -> BTreeSet<String> {
    let table = &tables::LN_BUSINESS_PARTNERS;
    (0..ds.count(table.entity, COMPANY))
        .map(|i| ds.record(table.entity, COMPANY, i))
        .filter(|r| !r.deleted())
        .map(|r| {
            let key = &table.columns[table.key[0]];
            r.get(key.field)
                .to_json(key.kind, ionport_emulator::data::Surface::LnOData)
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The `$skip` of every window of business partners the emulator served (its own request
/// log): requests with a `$top` of a page (the high-water mark asks for one record).
fn served_windows(emu: &Emulated) -> Vec<u64> {
    emu.control("GET", "requests", None)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/BusinessPartners"))
        .filter_map(|r| {
            let query: Vec<(String, String)> = serde_json::from_value(r["query"].clone()).unwrap();
            let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            (get("$top")? == PAGE.to_string())
                .then(|| get("$skip").map_or(0, |s| s.parse().unwrap()))
        })
        .collect()
}

fn pipeline_file(dir: &Path, ionapi: &Path, schema: &str) -> PathBuf {
    let text = format!(
        r#"
[environments.dev]
destination = {{ type = "postgres", url = '{url}', schema = "{schema}" }}

[connections.ln]
connector = "infor-ln"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ company = {COMPANY} }}
quota = "none"

[pipelines.ln]
connection = "ln"
environment = "dev"
page_size = {PAGE}
pages_in_flight = 2
sync_mode = "full_refresh"
tasks = [{{ name = "business_partners", partitions = 3 }}]
"#,
        url = pg_url(),
        ionapi = ionapi.display(),
    );
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn ionport_run_reads_every_partner_once_in_three_partitions_into_postgres() {
    let emu = emulator();
    let want = partner_keys(&emu.emu.dataset());
    assert!(want.len() as u64 > 3 * PAGE, "more windows than partitions");
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let prefix = format!("lnp_{}", std::process::id());
    let _drop = DropSchemas::new(prefix.clone(), &["dev"]);
    let schema = format!("{prefix}_dev");
    let file = pipeline_file(dir.path(), &ionapi, &schema);

    let out = run_pipeline(&file, Some("ionport::read=debug"));
    let all = output_text(&out);
    assert!(out.status.success(), "{all}");

    // Three reads, one per partition, whose records add up to the set: none read twice.
    let reads = finished_reads(&all);
    assert_eq!(reads.len(), 3, "a read per partition: {reads:?}");
    let read: u64 = reads.iter().map(|(_, n)| n).sum();
    assert_eq!(read, want.len() as u64, "{reads:?}");

    // Every window of the query once; past the end only each partition's probes.
    let served = served_windows(&emu);
    let distinct: BTreeSet<u64> = served.iter().copied().collect();
    assert_eq!(
        served.len(),
        distinct.len(),
        "a window asked twice: {served:?}"
    );
    let windows: BTreeSet<u64> = (0..want.len() as u64).step_by(PAGE as usize).collect();
    assert!(
        distinct.is_superset(&windows),
        "{} partners: {served:?}",
        want.len()
    );
    // Each partition may have its pages in flight (2) out past its last window.
    assert!(
        distinct.len() <= windows.len() + 3 * 2,
        "{} partners: {served:?}",
        want.len()
    );

    let mut pg = pg_client();
    let got: Vec<String> = pg
        .query(
            &format!("SELECT \"BusinessPartner\" FROM \"{schema}\".business_partners"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
}

fn ln() -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib("ionport_connector_ln"))
        .expect("the LN connector loads")
        .clone()
}

fn request(index: u32, state: Option<Value>) -> ReadRequest {
    let settings = json!({ "company": COMPANY, "language": "en-US" });
    let mut req = ReadRequest::new(
        ConnectionConfig { settings },
        "business_partners",
        SyncMode::FullRefresh,
    );
    req.state = state;
    req.page_size = Some(PAGE as u32);
    req.pages_in_flight = Some(1);
    req.options = json!({});
    req.partition = Some(ReadPartition { index, count: 3 });
    req
}

fn keys(records: &[(String, Value)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, r)| r["BusinessPartner"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_resumed_partition_goes_on_from_its_checkpoint_and_the_partitions_make_the_set() {
    let emu = emulator();
    let want = partner_keys(&emu.emu.dataset());
    let p = ln();
    let host = emu.host();
    let mut union = BTreeSet::new();
    let mut total = 0;
    let mut second = None;
    for index in 0..3 {
        p.read(
            host.clone() as Arc<dyn HostCallbacks>,
            &request(index, None),
        )
        .unwrap();
        let rec = host.take();
        let got = keys(&rec.records);
        total += got.len();
        union.extend(got.iter().cloned());
        if index == 1 {
            second = Some((got, rec.checkpoints));
        }
    }
    assert_eq!(total, want.len(), "no record in two partitions");
    assert_eq!(union, want);

    // Partition 1's first checkpoint is its second window, 3 windows on; resumed there it
    // reads the rest of its windows and nothing before.
    let (full, checkpoints) = second.unwrap();
    let first = checkpoints[0].clone();
    assert_eq!(
        first,
        json!({"mode": "full_refresh", "offset": 4 * PAGE}),
        "{checkpoints:?}"
    );
    emu.control("DELETE", "requests", None);
    p.read(
        host.clone() as Arc<dyn HostCallbacks>,
        &request(1, Some(first)),
    )
    .unwrap();
    let resumed = keys(&host.take().records);
    assert_eq!(resumed, full[PAGE as usize..].to_vec());
    let served = served_windows(&emu);
    assert_eq!(served.first(), Some(&(4 * PAGE)), "{served:?}");

    // Another partition's offset is refused before any window is asked.
    emu.control("DELETE", "requests", None);
    let e = p
        .read(
            host.clone() as Arc<dyn HostCallbacks>,
            &request(1, Some(json!({"mode": "full_refresh", "offset": 0}))),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("does not start one of this partition's pages"),
        "{e}"
    );
    assert!(served_windows(&emu).is_empty());
}

/// With several companies each would read every window of its company: refused before any
/// request.
#[test]
fn partitions_of_a_companies_connection_are_refused() {
    let emu = emulator();
    let p = ln();
    let host = emu.host();
    let mut req = request(0, None);
    req.connection = ConnectionConfig {
        settings: json!({ "companies": [100, 200], "language": "en-US" }),
    };
    let e = p
        .read(host.clone() as Arc<dyn HostCallbacks>, &req)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot also be split into partitions"),
        "{e}"
    );
    assert!(served_windows(&emu).is_empty());
}
