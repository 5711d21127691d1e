//! Every stream in pipeline files: `table:NAME` (EXPORTMI) and a Data Lake catalog object
//! are tasks of a pipeline as they are streams of `ionport airbyte read`. The built
//! `ionport` binary runs the file against a real emulator on loopback, through core's one
//! read path (its `read finished` log lines), and the SQLite destination holds every row
//! the emulator's generator made.
//!
//! A name is checked twice: its form when the file loads (the connector declares the form
//! in its manifest; a mistake is located by line, before anything connects), and its
//! existence when the run starts (`discover`; a missing stream fails its task with the
//! file, pipeline, task and close matches named, and the other tasks still run).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{COMPANIES, tables};
use ionport_tests::emulated::Emulated;
use ionport_tests::{finished_reads, output_text, run_pipeline, sqlite};
use serde_json::Value;

const SCALE: u64 = 80;
const CONO: u32 = 100;

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        job_run_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
}

fn run(file: &Path) -> Output {
    run_pipeline(file, Some("ionport::read=debug"))
}

/// An M3 and a Data Lake pipeline, each into a SQLite file of its own.
fn pipeline_file(dir: &Path, ionapi: &Path, m3_tasks: &str, lake_tasks: &str) -> PathBuf {
    let creds = format!("{{ ionapi = '{}' }}", ionapi.display());
    let text = format!(
        r#"
[environments.m3]
destination = {{ type = "sqlite", path = '{m3_db}' }}

[environments.lake]
destination = {{ type = "sqlite", path = '{lake_db}' }}

[connections.m3]
connector = "infor-m3"
credentials = {creds}
settings = {{ company = {CONO} }}
quota = "none"

[connections.lake]
connector = "infor-datalake"
credentials = {creds}
settings = {{ page_rows = 50 }}
quota = "none"

[pipelines.m3]
connection = "m3"
environment = "m3"
page_size = 30
tasks = [{m3_tasks}]

[pipelines.lake]
connection = "lake"
environment = "lake"
tasks = [{lake_tasks}]
"#,
        m3_db = dir.join("m3.db").display(),
        lake_db = dir.join("lake.db").display(),
    );
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The distinct keys of a table's rows (`cols` joined with `|`).
fn keys(rows: &[serde_json::Map<String, Value>], cols: &[&str]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| {
            cols.iter()
                .map(|c| match &r[*c] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn a_pipeline_reads_an_exportmi_table_and_a_data_lake_catalog_object() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline_file(dir.path(), &ionapi, r#""table:OCUSMA""#, r#""CIDMAS""#);
    let out = run(&file);
    let all = output_text(&out);
    assert!(out.status.success(), "{all}");
    let ds = emu.emu.dataset();

    // Both went through core's one read path, as predefined tasks do.
    let reads = finished_reads(&String::from_utf8_lossy(&out.stderr));
    let want_m3 = ds.count(tables::OCUSMA.entity, CONO);
    let want_lake = ds.table_rows(&tables::CIDMAS);
    assert!(
        reads.contains(&("table:OCUSMA".to_string(), want_m3)),
        "{reads:?}\n{all}"
    );
    assert!(
        reads.contains(&("CIDMAS".to_string(), want_lake)),
        "{reads:?}\n{all}"
    );

    // Every customer of the company, by key (the generator's keys, not the connector's).
    let (cols, rows) = sqlite::table(&dir.path().join("m3.db"), "table:OCUSMA");
    assert!(cols.contains(&"OKCUNM".to_string()), "{cols:?}");
    let want: BTreeSet<String> = (0..want_m3)
        .map(|i| format!("{CONO}|{}", ds.key(tables::OCUSMA.entity, i)))
        .collect();
    assert_eq!(rows.len() as u64, want_m3);
    assert_eq!(keys(&rows, &["OKCONO", "OKCUNO"]), want);

    // Every supplier of every company in the lake.
    let (cols, rows) = sqlite::table(&dir.path().join("lake.db"), "CIDMAS");
    assert!(cols.contains(&"IDSUNM".to_string()), "{cols:?}");
    let want: BTreeSet<String> = COMPANIES
        .iter()
        .flat_map(|c| (0..ds.count(tables::CIDMAS.entity, c.cono)).map(move |i| (c.cono, i)))
        .map(|(cono, i)| format!("{cono}|{}", ds.key(tables::CIDMAS.entity, i)))
        .collect();
    assert_eq!(rows.len() as u64, want_lake);
    assert_eq!(keys(&rows, &["IDCONO", "IDSUNO"]), want);
}

#[test]
fn a_name_of_the_wrong_form_is_refused_at_load_with_its_line_and_the_form() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    // `OCUSMA` alone is not an M3 task: the M3 form is `table:NAME`.
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        r#""customers", "OCUSMA""#,
        r#""CIDMAS""#,
    );
    let out = run(&file);
    let all = output_text(&out);
    assert!(!out.status.success(), "{all}");
    let line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .position(|l| l.contains("\"OCUSMA\""))
        .unwrap()
        + 1;
    assert!(all.contains(&format!("pipelines.toml:{line}:")), "{all}");
    assert!(all.contains("no task 'OCUSMA'"), "{all}");
    assert!(all.contains("table:NAME"), "the form is shown: {all}");
    assert!(emu.emu.requests().is_empty(), "nothing connected");
}

#[test]
fn a_stream_the_tenant_lacks_fails_its_task_at_run_start_with_close_matches() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    // Well-formed, but the emulated tenant has no MITBAL, and the lake no CIDMAZ.
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        r#""table:MITBAL", "table:OOHEAD""#,
        r#""CIDMAZ""#,
    );
    let out = run(&file);
    let all = output_text(&out);
    assert!(!out.status.success(), "{all}");
    for (pipeline, task, close) in [
        ("m3", "table:MITBAL", "table:MITMAS"),
        ("lake", "CIDMAZ", "CIDMAS"),
    ] {
        let line = all
            .lines()
            .find(|l| l.contains(&format!("task '{task}'")))
            .unwrap_or_else(|| panic!("no error names task {task}: {all}"));
        assert!(line.contains(&file.display().to_string()), "{line}");
        assert!(line.contains(&format!("pipeline '{pipeline}'")), "{line}");
        assert!(line.contains(&format!("no stream '{task}'")), "{line}");
        assert!(
            line.contains(&format!("(close matches: {close})")),
            "only the close match {close}: {line}"
        );
    }
    // The stream that exists was read in full.
    let (_, rows) = sqlite::table(&dir.path().join("m3.db"), "table:OOHEAD");
    assert_eq!(
        rows.len() as u64,
        emu.emu.dataset().count(tables::OOHEAD.entity, CONO)
    );
}
