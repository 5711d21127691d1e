//! Column selection, pushed down: a pipeline's `columns = [...]` on a task reaches the
//! source — MI `returncols`, the EXPORTMI field list, OData `$select`, the Compass
//! `SELECT` list, as the emulator recorded each request — and the SQLite destination holds
//! exactly those columns plus the stream's key and cursor, with the generator's values.
//! The built `ionport` binary runs the pipeline against a real emulator on loopback.
//!
//! A column the stream does not have is refused with the task and the column named: at
//! load for a predefined task (with its line), at the start of the run for a discovered
//! stream (whose schema only `discover` knows).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{COMPANIES, Dataset, Record, Surface, TableDef, tables};
use ionport_emulator::recorded::RecordedRequest;
use ionport_infor_mi::MiType;
use ionport_tests::emulated::Emulated;
use ionport_tests::{output_text, run_pipeline, sqlite};
use serde_json::Value;

const SCALE: u64 = 60;
const CONO: u32 = 100;

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        job_run_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
}

fn run(file: &Path) -> Output {
    run_pipeline(file, None)
}

/// A pipeline file: one connection and environment per connector, `tasks` per pipeline.
fn pipeline_file(dir: &Path, ionapi: &Path, m3: &str, ln: &str, lake: &str) -> std::path::PathBuf {
    let creds = format!("{{ ionapi = '{}' }}", ionapi.display());
    let db = |env: &str| dir.join(format!("{env}.db")).display().to_string();
    let mut out = String::new();
    for (env, connector, settings, tasks) in [
        ("m3", "infor-m3", "{ company = 100 }", m3),
        ("ln", "infor-ln", "{ company = 100 }", ln),
        ("lake", "infor-datalake", "{ page_rows = 50 }", lake),
    ] {
        if tasks.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "[environments.{env}]\ndestination = {{ type = \"sqlite\", path = '{}' }}\n\n\
             [connections.{env}]\nconnector = \"{connector}\"\ncredentials = {creds}\n\
             settings = {settings}\nquota = \"none\"\n\n\
             [pipelines.{env}]\nconnection = \"{env}\"\nenvironment = \"{env}\"\n\
             sync_mode = \"full_refresh\"\npage_size = 25\ntasks = [\n{tasks}\n]\n\n",
            db(env)
        ));
    }
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, out).unwrap();
    file
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

fn split_set(list: &str) -> BTreeSet<String> {
    list.split(',').map(|c| c.trim().to_string()).collect()
}

/// The field list of an EXPORTMI `QERY` (`F1,F2 from TABLE where …`).
fn exportmi_fields(r: &RecordedRequest) -> Option<BTreeSet<String>> {
    let q = r.param("QERY")?;
    let (fields, _) = q.split_once(" from ")?;
    Some(split_set(fields))
}

/// The column list of a Compass `SELECT "A", "B" FROM …`.
fn compass_fields(sql: &str) -> BTreeSet<String> {
    let rest = sql.strip_prefix("SELECT ").unwrap();
    let (list, _) = rest.split_once(" FROM ").unwrap();
    list.split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect()
}

/// How the source types a value: MI text typed by its M3 type letter (fields named with
/// or without the table's two-letter prefix), or JSON of a surface (OData, the lake).
#[derive(Clone, Copy)]
enum How {
    Mi,
    Json(Surface),
}

/// What the generator holds for `value_col` of `table` in companies `conos`, by
/// `key_cols` joined with `|`.
fn generated(
    ds: &Dataset,
    table: &TableDef,
    conos: &[u32],
    how: How,
    key_cols: &[&str],
    value_col: &str,
) -> BTreeMap<String, Value> {
    let col = |name: &str| {
        (0..table.columns.len())
            .find(|&i| table.columns[i].name == name || table.mi_name(i) == name)
            .unwrap_or_else(|| panic!("{} has a column {name}", table.name))
    };
    let value = |r: &Record, i: usize| {
        let c = &table.columns[i];
        match how {
            How::Mi => {
                MiType::from_letter(c.kind.m3_letter()).value(&r.get(c.field).mi(c.len, false))
            }
            How::Json(s) => r.get(c.field).to_json(c.kind, s),
        }
    };
    let mut out = BTreeMap::new();
    for &cono in conos {
        for i in 0..ds.count(table.entity, cono) {
            let r = ds.record(table.entity, cono, i);
            let key: Vec<String> = key_cols
                .iter()
                .map(|k| match value(&r, col(k)) {
                    Value::String(s) => s,
                    v => v.to_string(),
                })
                .collect();
            out.insert(key.join("|"), value(&r, col(value_col)));
        }
    }
    out
}

/// A stream as it must land: its environment, its table's columns, and where the
/// generator's values of one column are.
struct Landed<'a> {
    env: &'a str,
    stream: &'a str,
    columns: &'a [&'a str],
    table: &'a TableDef,
    conos: &'a [u32],
    how: How,
    key: &'a [&'a str],
    value: &'a str,
}

/// What the destination holds for `value_col`, by `key_cols`.
fn stored(
    rows: &[serde_json::Map<String, Value>],
    key_cols: &[&str],
    value_col: &str,
) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|r| {
            let key: Vec<String> = key_cols
                .iter()
                .map(|k| match &r[*k] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect();
            (key.join("|"), r[value_col].clone())
        })
        .collect()
}

#[test]
fn chosen_columns_reach_the_source_and_only_they_and_the_key_and_cursor_land() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        r#"{ name = "customers", columns = ["TOWN", "CUNM"] },
           { name = "customer_order_lines_by_order", columns = ["ITNO"] },
           { name = "customer_table", columns = ["OKTOWN"] },
           { name = "table:OCUSMA", columns = ["OKCUNM"] }"#,
        r#"{ name = "business_partners", columns = ["Name"] }"#,
        r#"{ name = "m3_suppliers", columns = ["IDSUNM"] },
           { name = "OOHEAD", columns = ["OACUNO"] }"#,
    );
    let out = run(&file);
    assert!(out.status.success(), "{}", output_text(&out));
    let requests = emu.emu.requests();
    let ds = emu.emu.dataset();

    // M3 list transactions: `returncols` names the chosen fields and the key, nothing else.
    for (transaction, want) in [
        (
            "/CRS610MI/LstByNumber",
            &["CONO", "CUNO", "CUNM", "TOWN"][..],
        ),
        (
            "/OIS100MI/LstLine",
            &["CONO", "ORNO", "PONR", "POSX", "ITNO"][..],
        ),
    ] {
        let lists: Vec<&RecordedRequest> = requests
            .iter()
            .filter(|r| r.path.ends_with(transaction))
            .collect();
        assert!(!lists.is_empty(), "no {transaction} request: {requests:?}");
        for r in &lists {
            assert_eq!(
                r.param("returncols").map(split_set),
                Some(set(want)),
                "{r:?}"
            );
        }
    }
    // EXPORTMI: the field lists of the reads of OCUSMA (`customer_table` and
    // `table:OCUSMA`; the header probe of `table:` asks for `*` with HDRS=1).
    let selects: BTreeSet<BTreeSet<String>> = requests
        .iter()
        .filter(|r| r.path.ends_with("/EXPORTMI/Select") && r.param("HDRS") == Some("0"))
        .filter(|r| r.param("QERY").is_some_and(|q| q.contains(" from OCUSMA ")))
        .filter_map(exportmi_fields)
        .collect();
    assert_eq!(
        selects,
        BTreeSet::from([
            set(&["OKCONO", "OKCUNO", "OKCUNM", "OKLMTS"]),
            set(&["OKCONO", "OKCUNO", "OKTOWN", "OKLMTS"]),
        ]),
        "{requests:?}"
    );
    // LN: `$select` on every page request of the entity set.
    let pages: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|r| r.path.ends_with("/BusinessPartners") && r.param("$top") != Some("1"))
        .collect();
    assert!(!pages.is_empty(), "no LN page: {requests:?}");
    for r in &pages {
        assert_eq!(
            r.param("$select").map(split_set),
            Some(set(&["BusinessPartner", "Name", "LastModifiedDateTime"])),
            "{r:?}"
        );
    }
    // Compass: the SELECT list of each job.
    let sqls: Vec<&str> = requests.iter().filter_map(|r| r.sql.as_deref()).collect();
    let sql_of = |table: &str| {
        sqls.iter()
            .find(|s| s.contains(&format!(" FROM {table}")))
            .unwrap_or_else(|| panic!("no Compass job on {table}: {sqls:?}"))
    };
    assert_eq!(
        compass_fields(sql_of("CIDMAS")),
        set(&["IDCONO", "IDSUNO", "IDSUNM", "IDLMTS"])
    );
    assert_eq!(
        compass_fields(sql_of("OOHEAD")),
        set(&["OACONO", "OAORNO", "OACUNO", "OALMTS"])
    );

    // The destinations: exactly those columns, every record, the generator's values.
    // The destinations: exactly those columns, every record, the generator's values.
    let all: Vec<u32> = COMPANIES.iter().map(|c| c.cono).collect();
    let m3 = How::Mi;
    let m3_lake = How::Json(Surface::M3);
    let case = |env, stream, columns, table, conos, how, key, value| Landed {
        env,
        stream,
        columns,
        table,
        conos,
        how,
        key,
        value,
    };
    #[rustfmt::skip]
    let cases = [
        case("m3", "customers", &["CONO", "CUNO", "CUNM", "TOWN"], &tables::OCUSMA, &[CONO], m3, &["CUNO"], "CUNM"),
        case("m3", "customer_order_lines_by_order", &["CONO", "ORNO", "PONR", "POSX", "ITNO"], &tables::OOLINE, &[CONO], m3, &["ORNO", "PONR", "POSX"], "ITNO"),
        case("m3", "customer_table", &["OKCONO", "OKCUNO", "OKTOWN", "OKLMTS"], &tables::OCUSMA, &[CONO], m3, &["OKCUNO"], "OKTOWN"),
        case("m3", "table:OCUSMA", &["OKCONO", "OKCUNO", "OKCUNM", "OKLMTS"], &tables::OCUSMA, &[CONO], m3, &["OKCUNO"], "OKCUNM"),
        case("ln", "business_partners", &["BusinessPartner", "Name", "LastModifiedDateTime"], &tables::LN_BUSINESS_PARTNERS, &[CONO], How::Json(Surface::LnOData), &["BusinessPartner"], "Name"),
        case("lake", "m3_suppliers", &["IDCONO", "IDSUNO", "IDSUNM", "IDLMTS"], &tables::CIDMAS, &all, m3_lake, &["IDCONO", "IDSUNO"], "IDSUNM"),
        case("lake", "OOHEAD", &["OACONO", "OAORNO", "OACUNO", "OALMTS"], &tables::OOHEAD, &all, m3_lake, &["OACONO", "OAORNO"], "OACUNO"),
    ];
    for Landed {
        env,
        stream,
        columns,
        table,
        conos,
        how,
        key,
        value,
    } in cases
    {
        let (names, rows) = sqlite::table(&dir.path().join(format!("{env}.db")), stream);
        assert_eq!(
            names.iter().cloned().collect::<BTreeSet<_>>(),
            set(columns),
            "{env}/{stream}: the table's columns"
        );
        let want = generated(&ds, table, conos, how, key, value);
        let got = stored(&rows, key, value);
        assert_eq!(got.len(), rows.len(), "{env}/{stream}: a key came twice");
        assert!(!want.is_empty(), "{env}/{stream}: the generator has rows");
        assert_eq!(got, want, "{env}/{stream}: {value} by key");
    }
}

#[test]
fn a_column_a_predefined_task_lacks_is_refused_at_load_with_its_place() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        r#""items", { name = "customers", columns = ["CUNM", "OKCUNM"] }"#,
        "",
        "",
    );
    let out = run(&file);
    let all = output_text(&out);
    assert!(!out.status.success(), "{all}");
    let line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .position(|l| l.contains("OKCUNM"))
        .unwrap()
        + 1;
    assert!(
        all.contains(&format!("pipelines.toml:{line}:")),
        "the error names the file and line {line}: {all}"
    );
    assert!(all.contains("tasks[1].columns"), "{all}");
    assert!(
        all.contains("'customers'") && all.contains("'OKCUNM'"),
        "{all}"
    );
    assert!(
        emu.emu.requests().is_empty(),
        "nothing was asked of the gateway: {:?}",
        emu.emu.requests()
    );
}

#[test]
fn a_column_a_discovered_stream_lacks_fails_that_task_when_the_run_starts() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        r#""suppliers", { name = "table:OCUSMA", columns = ["OKCUNM", "OKNOPE"] }"#,
        "",
        "",
    );
    let out = run(&file);
    let all = output_text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&file.display().to_string()),
        "names the file: {all}"
    );
    assert!(all.contains("task 'table:OCUSMA'"), "{all}");
    assert!(
        all.contains("'OKNOPE'") && !all.contains("'OKCUNM'"),
        "{all}"
    );
    // The other task ran; the failing one read nothing.
    let (_, suppliers) = sqlite::table(&dir.path().join("m3.db"), "suppliers");
    let ds = emu.emu.dataset();
    assert_eq!(
        suppliers.len() as u64,
        ds.count(tables::CIDMAS.entity, CONO)
    );
    let reads = emu
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/EXPORTMI/Select") && r.param("HDRS") == Some("0"))
        .count();
    assert_eq!(reads, 0, "no EXPORTMI read of OCUSMA was made");
}
