//! Data Lake incremental reads while records change: a run of incremental reads, each
//! applied to a copy keyed by primary key while the emulator changes customers between and
//! during the reads, must end up identical to a fresh full read — no row left stale because
//! it changed while a Compass result was being read.
//!
//! Reads go through core's own host (`read_task` over a real `Connection`). The ingestion
//! lag is 0 here: the emulator makes a change queryable at once.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::live::{self, Live, key_of};
use serde_json::{Map, Value, json};

const KEY: &[&str] = &["OKCONO", "OKCUNO"];

fn apply(copy: &mut BTreeMap<String, Map<String, Value>>, records: Vec<Map<String, Value>>) {
    for r in records {
        copy.insert(key_of(&r, KEY), r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reads_during_changes_end_identical_to_a_full_read() {
    let live = Live::start(EmulatorConfig {
        scale: 300,
        job_run_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
    .await;
    let reg = live::registry();
    let lake = live::plugin(&reg, "infor-datalake");
    let conn = live.connection();
    let settings = json!({"page_rows": 10, "ingestion_lag_secs": 0});

    // Changes go on in the background, during the reads and between them.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let changer = {
        let (stop, made) = (stop.clone(), made.clone());
        let url = format!("{}/__emulator/changes", live.emu.base_url());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let resp = http
                    .post(&url)
                    .json(&json!({"table": "OCUSMA", "count": 3, "cono": 100}))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success());
                made.fetch_add(3, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };

    let mut copy = BTreeMap::new();
    let mut state = None;
    let mut sizes = Vec::new();
    for _ in 0..5 {
        let got = live::read(
            &lake,
            &conn,
            "m3_customers",
            settings.clone(),
            SyncMode::Incremental,
            state.clone(),
            10,
        )
        .await;
        assert!(got.error.is_none(), "{:?}", got.error);
        sizes.push(got.records.len());
        apply(&mut copy, got.records);
        state = got.state;
    }
    stop.store(true, Ordering::Relaxed);
    changer.await.unwrap();
    let changes_during_reads = made.load(Ordering::Relaxed);
    // One more incremental read once the changes have stopped brings the copy up to date.
    let last = live::read(
        &lake,
        &conn,
        "m3_customers",
        settings.clone(),
        SyncMode::Incremental,
        state.clone(),
        10,
    )
    .await;
    assert!(last.error.is_none(), "{:?}", last.error);
    apply(&mut copy, last.records);

    let full = live::read(
        &lake,
        &conn,
        "m3_customers",
        settings,
        SyncMode::FullRefresh,
        None,
        100,
    )
    .await;
    assert!(full.error.is_none(), "{:?}", full.error);
    let mut fresh = BTreeMap::new();
    apply(&mut fresh, full.records);

    assert!(changes_during_reads > 0, "the changer made no change");
    assert!(
        sizes.iter().skip(1).all(|n| *n < fresh.len()),
        "later reads are incremental, not full: {sizes:?} of {}",
        fresh.len()
    );
    assert_eq!(copy.len(), fresh.len(), "rows in the copy and in the lake");
    let stale: Vec<&String> = fresh
        .iter()
        .filter(|(k, r)| copy.get(*k) != Some(*r))
        .map(|(k, _)| k)
        .collect();
    assert!(
        stale.is_empty(),
        "{} of {} rows stale after incremental reads ({changes_during_reads} changes): {stale:?}",
        stale.len(),
        fresh.len()
    );
}
