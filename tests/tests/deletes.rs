//! Deletes at the source (`deletes = "soft"` on a task): after the next sync, exactly the
//! rows the emulator deleted carry `_ionport_deleted_at` in every destination (SQLite,
//! Postgres, JSONL, Parquet), with their last values kept, and every other row has it
//! null; with `deletes = "ignore"` (the default) no row is marked and no such column
//! exists. M3 (an MI list and EXPORTMI) and LN find deletions by the keys-only pass after
//! the sync; Data Lake reads them flagged (`deleted = true`) through Compass's
//! include-deleted form, incrementally.
//!
//! The oracle is the emulator: the keys its change endpoint reports deleted. The built
//! `ionport` binary runs the pipelines; destinations are read back with `rusqlite`,
//! `postgres`, `parquet` and plain JSON, not through ionport's destination code.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use ionport_tests::destinations::{Dest, DropSchemas};
use ionport_tests::emulated::Emulated;
use ionport_tests::{output_text, run_pipeline};
use serde_json::{Map, Value, json};

const SCALE: u64 = 60;
const CONO: u32 = 100;
const DELETED: u64 = 4;
const COLUMN: &str = "_ionport_deleted_at";

/// Pipelines (each its own environment) and their tasks, all on company 100's customers
/// (M3 OCUSMA is also LN's business partners and the lake's OCUSMA rows). The `_ignore`
/// ones leave `deletes` out.
const PIPELINES: [(&str, &str, &[&str]); 6] = [
    ("m3", "m3", &["customers", "table:OCUSMA"]),
    ("ln", "ln", &["business_partners"]),
    ("lake", "lake", &["m3_customers"]),
    ("m3_ignore", "m3", &["customers", "table:OCUSMA"]),
    ("ln_ignore", "ln", &["business_partners"]),
    ("lake_ignore", "lake", &["m3_customers"]),
];

fn soft(pipeline: &str) -> bool {
    !pipeline.ends_with("_ignore")
}

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        job_run_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
}

fn pipeline_file(dir: &Path, ionapi: &Path, dest: &Dest, m3_settings: &str) -> PathBuf {
    let creds = format!("{{ ionapi = '{}' }}", ionapi.display());
    let mut out = format!(
        "[connections.m3]\nconnector = \"infor-m3\"\ncredentials = {creds}\nsettings = {m3_settings}\nquota = \"none\"\n\n\
         [connections.ln]\nconnector = \"infor-ln\"\ncredentials = {creds}\nsettings = {{ company = {CONO} }}\nquota = \"none\"\n\n\
         [connections.lake]\nconnector = \"infor-datalake\"\ncredentials = {creds}\nsettings = {{ page_rows = 50 }}\nquota = \"none\"\n\n"
    );
    for (p, connection, tasks) in PIPELINES {
        let tasks: Vec<String> = tasks
            .iter()
            .map(|t| {
                if soft(p) {
                    format!("{{ name = \"{t}\", deletes = \"soft\" }}")
                } else {
                    format!("\"{t}\"")
                }
            })
            .collect();
        out.push_str(&format!(
            "[environments.{p}]\ndestination = {}\n\n\
             [pipelines.{p}]\nconnection = \"{connection}\"\nenvironment = \"{p}\"\n\
             page_size = 25\ntasks = [{}]\n\n",
            dest.toml(p),
            tasks.join(", ")
        ));
    }
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, out).unwrap();
    file
}

/// The customer number of a row of company 100, when it is one (M3 `CUNO`/`OKCUNO`, LN
/// `BusinessPartner`); `None` for another company's row (the lake holds every company).
fn customer_of(row: &Map<String, Value>) -> Option<String> {
    for company in ["CONO", "OKCONO"] {
        if let Some(c) = row.get(company)
            && c.as_i64() != Some(i64::from(CONO))
        {
            return None;
        }
    }
    ["CUNO", "OKCUNO", "BusinessPartner"]
        .iter()
        .find_map(|k| row.get(*k).and_then(Value::as_str))
        .map(|s| s.trim().to_string())
}

/// A row's identity: its customer number, or its whole text for another company's row.
fn identity(row: &Map<String, Value>) -> String {
    match customer_of(row) {
        Some(c) => c,
        None => Value::Object(row.clone()).to_string(),
    }
}

/// `row` without the deletion column, for comparing values.
fn values(row: &Map<String, Value>) -> Map<String, Value> {
    let mut r = row.clone();
    r.remove(COLUMN);
    r
}

fn marked(row: &Map<String, Value>) -> bool {
    row.get(COLUMN).is_some_and(|v| !v.is_null())
}

/// The summary's `deleted: N rows marked in P/T` lines.
fn deleted_lines(out: &Output) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("deleted: ")?;
            let (n, task) = rest.split_once(" rows marked in ")?;
            Some((task.trim().to_string(), n.parse().ok()?))
        })
        .collect()
}

/// The scenario every destination goes through.
fn deletes_end_as_marked_rows(dest: impl FnOnce(&Path) -> Dest) {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emulator.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = dest(dir.path());
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        &dest,
        &format!("{{ company = {CONO} }}"),
    );

    let first = run_pipeline(&file, Some("info"));
    assert!(first.status.success(), "first run: {}", output_text(&first));
    let mut before: BTreeMap<(String, String), Vec<Map<String, Value>>> = BTreeMap::new();
    for (p, _, tasks) in PIPELINES {
        for t in tasks {
            let rows = dest.rows(p, t);
            assert!(!rows.is_empty(), "{p}/{t} holds rows");
            assert!(!rows.iter().any(marked), "{p}/{t}: nothing is deleted yet");
            if soft(p) && dest.tabular() {
                assert!(
                    rows.iter().all(|r| r.contains_key(COLUMN)),
                    "{p}/{t} has the column {COLUMN}"
                );
            }
            before.insert((p.to_string(), t.to_string()), rows);
        }
    }
    assert_eq!(
        deleted_lines(&first).values().sum::<u64>(),
        0,
        "{}",
        output_text(&first)
    );

    // The emulator deletes customers of company 100: M3 and LN stop listing them, the lake
    // has a deleted variation of each.
    let report = emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OCUSMA", "count": DELETED, "cono": CONO, "delete": true })),
    );
    let gone: BTreeSet<String> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(gone.len() as u64, DELETED, "{report}");
    emu.control("DELETE", "requests", None);

    let second = run_pipeline(&file, Some("info"));
    assert!(
        second.status.success(),
        "second run: {}",
        output_text(&second)
    );
    let text = output_text(&second);
    let summary = deleted_lines(&second);
    for (p, _, tasks) in PIPELINES {
        for t in tasks {
            let name = format!("{p}/{t}");
            let rows = dest.rows(p, t);
            let old = &before[&(p.to_string(), t.to_string())];
            assert_eq!(rows.len(), old.len(), "{name}: no row removed, none added");
            if !soft(p) {
                assert!(
                    rows.iter().all(|r| !r.contains_key(COLUMN)),
                    "{name}: deletes = \"ignore\" has no {COLUMN} column"
                );
                assert!(!summary.contains_key(&name), "{name}: {text}");
                continue;
            }
            let got: BTreeSet<String> = rows
                .iter()
                .filter(|r| marked(r))
                .map(|r| customer_of(r).unwrap_or_else(|| panic!("{name}: marked {r:?}")))
                .collect();
            assert_eq!(got, gone, "{name}: exactly the deleted keys are marked");
            assert_eq!(summary.get(&name), Some(&DELETED), "{name}: {text}");
            assert!(
                text.contains(&format!("marked {DELETED} rows deleted")),
                "the log says so: {text}"
            );
            let old_by_id: BTreeMap<String, &Map<String, Value>> =
                old.iter().map(|r| (identity(r), r)).collect();
            for r in &rows {
                let id = identity(r);
                if marked(r) {
                    let at = r[COLUMN].as_str().unwrap();
                    assert!(
                        humantime::parse_rfc3339(at).is_ok() && at.ends_with('Z'),
                        "{name}: {at} is a UTC time"
                    );
                    if p == "lake" {
                        // The lake's last values are the deleted variation's (SQLite
                        // keeps a boolean as 1).
                        assert!(
                            r["deleted"] == json!(true) || r["deleted"] == json!(1),
                            "{name}: {r:?}"
                        );
                    } else {
                        assert_eq!(
                            values(r),
                            values(old_by_id[&id]),
                            "{name}: the values of {id} are kept"
                        );
                    }
                } else if p != "lake" {
                    assert_eq!(values(r), values(old_by_id[&id]), "{name}: {id} unchanged");
                }
            }
        }
    }
    // The lake: the soft pipeline asked Compass for deleted records, the other did not.
    let sqls: Vec<String> = emu
        .emu
        .requests()
        .into_iter()
        .filter_map(|r| r.sql)
        .collect();
    assert!(
        sqls.iter()
            .any(|q| q.contains("infor.include_deleted(OCUSMA)")),
        "{sqls:?}"
    );
    assert!(sqls.iter().any(|q| q.contains("FROM OCUSMA")), "{sqls:?}");
}

#[test]
fn sqlite_marks_deleted_rows() {
    deletes_end_as_marked_rows(|d| Dest::Sqlite(d.to_path_buf()));
}

#[test]
fn postgres_marks_deleted_rows() {
    let prefix = format!("deletes_{}", std::process::id());
    let envs: Vec<&str> = PIPELINES.iter().map(|(p, _, _)| *p).collect();
    let _drop = DropSchemas::new(prefix.clone(), &envs);
    deletes_end_as_marked_rows(|_| Dest::Postgres(prefix.clone()));
}

#[test]
fn parquet_marks_deleted_rows() {
    deletes_end_as_marked_rows(|d| Dest::Parquet(d.join("pq")));
}

#[test]
fn jsonl_marks_deleted_rows() {
    deletes_end_as_marked_rows(|d| Dest::Jsonl(d.join("jsonl")));
}

/// A keys-only pass that fails (the emulator answers its requests with 500) marks nothing
/// — a partial key set would mark live rows — and the task fails saying why.
#[test]
fn a_failing_keys_only_pass_marks_nothing_and_fails_the_task() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emulator.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = Dest::Sqlite(dir.path().to_path_buf());
    // MI v1 puts `returncols` in the path, where a fault rule can tell the keys-only
    // requests (the fewest columns) from the sync's.
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        &dest,
        &format!("{{ company = {CONO}, api_version = \"v1\" }}"),
    );
    let first = run_pipeline(&file, None);
    assert!(first.status.success(), "{}", output_text(&first));
    let keys_only = emu
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("CRS610MI/LstByNumber"))
        .filter_map(|r| {
            let cols = r
                .path
                .split(";returncols=")
                .nth(1)?
                .split(';')
                .next()?
                .to_string();
            Some(cols)
        })
        .min_by_key(|c| c.split(',').count())
        .expect("the keys-only pass listed customers with returncols");
    emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OCUSMA", "count": DELETED, "cono": CONO, "delete": true })),
    );
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "500", "api": "m3", "path_contains": format!(";returncols={keys_only};") }])),
    );
    let second = run_pipeline(&file, None);
    let text = output_text(&second);
    assert!(!second.status.success(), "{text}");
    assert!(
        text.contains("keys-only read failed, so no row was marked deleted"),
        "{text}"
    );
    let rows = dest.rows("m3", "customers");
    assert!(!rows.is_empty());
    assert!(!rows.iter().any(marked), "nothing is marked");
}

/// `deletes` is checked at load: a value other than `ignore` or `soft` is refused at its
/// line and column, saying what was expected; the plan carries the choice per task.
#[test]
fn deletes_is_checked_when_the_file_loads() {
    use ionport_core::pipeline::config::Deletes;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.ionapi"), "{}").unwrap();
    let file = dir.path().join("pipelines.toml");
    let reg = ionport_core::plugin::PluginRegistry::load_from(&ionport_tests::connector_libs());
    let text = |deletes: &str| {
        format!(
            "[environments.w]\ndestination = {{ type = \"sqlite\", path = \"out.db\" }}\n\n\
             [connections.m3]\nconnector = \"infor-m3\"\ncredentials = {{ ionapi = \"demo.ionapi\" }}\n\
             settings = {{ company = 100 }}\n\n\
             [pipelines.p]\nconnection = \"m3\"\nenvironment = \"w\"\n\
             tasks = [\"items\", {{ name = \"customers\", deletes = {deletes} }}]\n"
        )
    };
    std::fs::write(&file, text("\"soft\"")).unwrap();
    let plan = ionport_core::pipeline::load(&file, &reg).unwrap_or_else(|e| panic!("{e}"));
    let deletes: Vec<(String, Deletes)> = plan.pipelines[0]
        .tasks
        .iter()
        .map(|t| (t.spec.name.clone(), t.deletes))
        .collect();
    assert_eq!(
        deletes,
        [
            ("items".to_string(), Deletes::Ignore),
            ("customers".to_string(), Deletes::Soft)
        ]
    );
    let bad = text("\"hard\"");
    std::fs::write(&file, &bad).unwrap();
    let errs = ionport_core::pipeline::load(&file, &reg)
        .expect_err("refused")
        .0;
    let d = errs
        .iter()
        .find(|d| {
            d.message
                .contains("unknown variant `hard`, expected `ignore` or `soft`")
        })
        .unwrap_or_else(|| panic!("{errs:#?}"));
    let line = bad[..bad.find("\"hard\"").unwrap()].matches('\n').count() + 1;
    assert_eq!(d.line, line, "{d}");
}
