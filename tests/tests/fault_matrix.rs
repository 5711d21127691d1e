//! The fault matrix: every fault kind of the emulator × each API (M3, LN, Data Lake) × rate
//! 0.3 and 1.0, each read through core's own host (`read_task` over a real `Connection`)
//! against a real emulator. Every cell must be "complete" (exactly the generator's records,
//! each once) or "failed clearly" (an error that names what went wrong) — never "ok with
//! fewer records" — and no cell may show a canary secret in any encoding.
//!
//! The expected records come from the emulator's generator (`Dataset`), never from the
//! connectors. The table of outcomes is printed (`--nocapture`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use ionport_emulator::data::{COMPANIES, Dataset, Entity};
use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_plugin_abi::wire::SyncMode;
use ionport_tests::live::{self, Got, Live, key_of};
use serde_json::{Value, json};

const SCALE: u64 = 40;
const PAGE: u32 = 15;
const TENANT: &str = "FAULTS_TST";
const CLIENT_SECRET: &str = "canary-cs-7Qx/+=&%z";
const SASK: &str = "canary-sk-Zp9#+/=?";

/// Every fault kind the emulator injects.
const KINDS: [&str; 15] = [
    "500",
    "502",
    "503",
    "504",
    "403",
    "404",
    "400",
    "reset",
    "slow",
    "truncated",
    "malformed_json",
    "empty_object",
    "wrong_shape",
    "mi_nok",
    "mi_partial",
];

struct Api {
    /// The emulator's API name (fault rules).
    name: &'static str,
    connector: &'static str,
    task: &'static str,
    settings: Value,
    key: &'static [&'static str],
    /// The identities of every record the task must return.
    expected: BTreeSet<String>,
}

fn apis(ds: &Dataset) -> Vec<Api> {
    let customers = |cono: u32| -> Vec<String> {
        (0..ds.count(Entity::Customer, cono))
            .map(|i| ds.key(Entity::Customer, i))
            .collect()
    };
    vec![
        Api {
            name: "m3",
            connector: "infor-m3",
            task: "customers",
            settings: json!({"company": 100}),
            key: &["CUNO"],
            expected: customers(100).into_iter().collect(),
        },
        Api {
            name: "ln",
            connector: "infor-ln",
            task: "business_partners",
            settings: json!({"company": 100}),
            key: &["BusinessPartner"],
            expected: customers(100).into_iter().collect(),
        },
        Api {
            name: "datalake",
            connector: "infor-datalake",
            task: "m3_customers",
            settings: json!({"page_rows": PAGE, "query_timeout_secs": 20}),
            key: &["OKCONO", "OKCUNO"],
            expected: COMPANIES
                .iter()
                .flat_map(|c| {
                    customers(c.cono)
                        .into_iter()
                        .map(|k| format!("{}|{k}", c.cono))
                })
                .collect(),
        },
    ]
}

/// The canary secrets in every encoding they could leak in.
fn leak_forms() -> Vec<String> {
    let mut out = Vec::new();
    for s in [CLIENT_SECRET, SASK] {
        out.push(s.to_string());
        out.push(form_urlencoded::byte_serialize(s.as_bytes()).collect());
        out.push(base64::engine::general_purpose::STANDARD.encode(s));
        out.push(
            serde_json::to_string(s)
                .unwrap()
                .trim_matches('"')
                .to_string(),
        );
    }
    let basic = format!("{TENANT}~faults-client:{CLIENT_SECRET}");
    out.push(base64::engine::general_purpose::STANDARD.encode(basic));
    out
}

/// What an error must mention for a fault kind to count as named.
fn clear_markers(kind: &str, api: &str) -> Vec<&'static str> {
    match kind {
        "500" => vec!["500"],
        "502" => vec!["502"],
        "503" => vec!["503"],
        "504" => vec!["504", "timed out"],
        "403" => vec!["403"],
        "404" => vec!["404"],
        "400" => vec!["400"],
        "reset" | "truncated" => vec![
            "connection",
            "reset",
            "closed",
            "body",
            "transport",
            "network",
            "no answer",
        ],
        "slow" => vec!["504", "timed out"],
        "mi_nok" | "mi_partial" if api == "m3" => vec!["XIN0001"],
        _ => vec!["unexpected body"],
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    cases: u32,
    complete: u32,
    failed: u32,
    lost: u32,
    duplicated: u32,
    leaked: u32,
    unclear: u32,
}

fn judge(api: &Api, kind: &str, got: &Got, leaks: &[String], t: &mut Tally) -> String {
    t.cases += 1;
    let keys: Vec<String> = got.records.iter().map(|r| key_of(r, api.key)).collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    let mut text = got.logs.join("\n");
    if let Some((_, m)) = &got.error {
        text.push_str(m);
    }
    for r in &got.records {
        text.push_str(&Value::Object(r.clone()).to_string());
    }
    let mut verdict = Vec::new();
    if leaks.iter().any(|l| text.contains(l.as_str())) {
        t.leaked += 1;
        verdict.push("LEAKED".to_string());
    }
    match &got.error {
        None => {
            let lost = api.expected.iter().filter(|k| !unique.contains(k)).count();
            let foreign = unique
                .iter()
                .filter(|k| !api.expected.contains(**k))
                .count();
            if lost > 0 || foreign > 0 {
                t.lost += 1;
                verdict.push(format!("LOST {lost} (+{foreign} foreign)"));
            }
            if unique.len() != keys.len() {
                t.duplicated += 1;
                verdict.push(format!("DUPLICATED {}", keys.len() - unique.len()));
            }
            if verdict.is_empty() {
                t.complete += 1;
                verdict.push(format!("complete ({})", keys.len()));
            }
        }
        Some((ekind, msg)) => {
            let markers = clear_markers(kind, api.name);
            let lower = msg.to_ascii_lowercase();
            if markers
                .iter()
                .any(|m| lower.contains(&m.to_ascii_lowercase()))
            {
                t.failed += 1;
                verdict.push(format!("failed clearly [{ekind}]"));
            } else {
                t.unclear += 1;
                verdict.push(format!("UNCLEAR [{ekind}]: {msg}"));
            }
        }
    }
    verdict.join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_on_every_api_completes_or_fails_clearly() {
    let live = Live::start(EmulatorConfig {
        tenant: TENANT.into(),
        scale: SCALE,
        credentials: EmulatorCredentials {
            client_id: format!("{TENANT}~faults-client"),
            client_secret: CLIENT_SECRET.into(),
            saak: format!("{TENANT}#faults-saak"),
            sask: SASK.into(),
        },
        job_run_time: Duration::from_millis(20),
        gateway_timeout: Duration::from_secs(2),
        ..EmulatorConfig::default()
    })
    .await;
    let ds = live.emu.dataset();
    let reg = live::registry();
    let conn = live.connection();
    let leaks = leak_forms();
    let mut total = Tally::default();
    let mut rows = Vec::new();
    for api in apis(&ds) {
        let plugin = live::plugin(&reg, api.connector);
        for kind in KINDS {
            for rate in [0.3, 1.0] {
                live.control(
                    "PUT",
                    "faults",
                    Some(json!([{"kind": kind, "rate": rate, "api": api.name, "delay_ms": 30}])),
                )
                .await;
                let got = live::read(
                    &plugin,
                    &conn,
                    api.task,
                    api.settings.clone(),
                    SyncMode::FullRefresh,
                    None,
                    PAGE,
                )
                .await;
                let verdict = judge(&api, kind, &got, &leaks, &mut total);
                rows.push(format!("| {} | {kind} | {rate} | {verdict} |", api.name));
            }
        }
    }
    live.control("DELETE", "faults", None).await;
    println!("| api | fault | rate | outcome |\n|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    println!(
        "\ncases {} · complete {} · failed clearly {} · lost {} · duplicated {} · leaked {} · unclear {}",
        total.cases,
        total.complete,
        total.failed,
        total.lost,
        total.duplicated,
        total.leaked,
        total.unclear
    );
    let bad: Vec<&String> = rows
        .iter()
        .filter(|r| {
            r.contains("LOST")
                || r.contains("DUPLICATED")
                || r.contains("LEAKED")
                || r.contains("UNCLEAR")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "cells that lose, repeat, leak or mumble:\n{bad:#?}"
    );
    assert_eq!(total.cases, 90);
    // The matrix is only worth something if the faults bite: most cells at rate 1.0 fail.
    assert!(total.failed >= 30, "{total:?}");
}
