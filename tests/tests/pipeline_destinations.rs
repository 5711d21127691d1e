//! The whole product path for every destination: the built `ionport` binary runs a
//! pipeline file against a real emulator on loopback (M3, LN and Data Lake tasks), and the
//! destination ends up holding exactly the records the emulator's generator made — counts
//! and a checksum over canonical records, per task. Then records change in the emulator, a
//! second (incremental) run applies them: the changed rows are replaced, not duplicated.
//!
//! Also here: a task failing with persistent errors does not stop the others (exit code and
//! summary name it and why), and every pipeline file under `examples/` validates.
//!
//! Postgres: `IONPORT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test writes into schemas of its own, dropped at the end, and fails when the server
//! is not reachable.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ionport_core::destination::table_name;
use ionport_core::plugin::PluginRegistry;
use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{
    Changes, Dataset, Entity, Kind, Selection, Surface, TableDef, tables,
};
use ionport_infor_mi::MiType;
use ionport_tests::destinations::{Dest, DropSchemas, pg_client};
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, plugin_lib, profile_dir};
use serde_json::{Map, Value, json};

const SCALE: u64 = 300;
const CONO: u32 = 100;
/// Customers changed between the two runs.
const CHANGED: u64 = 7;

/// The tasks replicated: (pipeline, task) — every predefined task of the three connectors.
const TASKS: [(&str, &str); 16] = [
    ("m3", "customers"),
    ("m3", "items"),
    ("m3", "suppliers"),
    ("m3", "customer_order_lines"),
    ("m3", "customer_table"),
    ("ln", "business_partners"),
    ("ln", "sales_orders"),
    ("ln", "items"),
    ("lake", "m3_customers"),
    ("lake", "m3_items"),
    ("lake", "m3_suppliers"),
    ("lake", "m3_order_heads"),
    ("lake", "m3_order_lines"),
    ("lake", "ln_business_partners"),
    ("lake", "ln_sales_orders"),
    ("lake", "ln_items"),
];

// ---------------------------------------------------------------- emulator and plugins

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        job_run_time: Duration::from_millis(30),
        ..EmulatorConfig::default()
    })
}

fn registry() -> PluginRegistry {
    let mut reg = PluginRegistry::default();
    for c in [
        "ionport_connector_m3",
        "ionport_connector_ln",
        "ionport_connector_datalake",
    ] {
        reg.load(&plugin_lib(c))
            .unwrap_or_else(|r| panic!("{c} loads: {r}"));
    }
    reg
}

fn connector_of(pipeline: &str) -> &'static str {
    match pipeline {
        "m3" => "infor-m3",
        "ln" => "infor-ln",
        _ => "infor-datalake",
    }
}

/// The record schema and primary key of a task, as the plugin declares them.
fn task_spec(reg: &PluginRegistry, pipeline: &str, task: &str) -> (Value, Vec<String>) {
    let spec = reg
        .get(connector_of(pipeline))
        .and_then(|p| p.task(task))
        .unwrap_or_else(|| panic!("{pipeline} has a task {task}"));
    (spec.record_schema.clone(), spec.primary_key.clone())
}

// ---------------------------------------------------------------- what the generator holds

/// M3 rows of `table` for the company as the MI (`mi_names`) or EXPORTMI returns them:
/// deleted records left out, values typed by the M3 type letter.
fn m3_rows(
    ds: &Dataset,
    ch: &Changes,
    table: &TableDef,
    mi_names: bool,
) -> Vec<Map<String, Value>> {
    (0..ds.count(table.entity, CONO))
        .map(|i| ds.record_with(ch, table.entity, CONO, i))
        .filter(|r| !r.deleted())
        .map(|r| {
            table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kind != Kind::Bool)
                .map(|(i, c)| {
                    let name = if mi_names { table.mi_name(i) } else { c.name };
                    let raw = r.get(c.field).mi(c.len, false);
                    (
                        name.to_string(),
                        MiType::from_letter(c.kind.m3_letter()).value(&raw),
                    )
                })
                .collect()
        })
        .collect()
}

/// LN OData rows of an entity set in the company, deleted records left out.
fn ln_rows(ds: &Dataset, ch: &Changes, table: &TableDef) -> Vec<Map<String, Value>> {
    (0..ds.count(table.entity, CONO))
        .map(|i| ds.record_with(ch, table.entity, CONO, i))
        .filter(|r| !r.deleted())
        .map(|r| {
            table
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        r.get(c.field).to_json(c.kind, Surface::LnOData),
                    )
                })
                .collect()
        })
        .collect()
}

/// Rows of a Data Lake table: every company, deleted rows included (flagged).
fn lake_rows(ds: &Dataset, ch: &Changes, name: &str) -> Vec<Map<String, Value>> {
    let t = tables::lake_table(name).unwrap();
    let surface = if t.surface == Surface::M3 {
        Surface::M3
    } else {
        Surface::LnLake
    };
    let mut out = Vec::new();
    for c in &ionport_emulator::data::COMPANIES {
        for i in 0..ds.count(t.entity, c.cono) {
            let r = ds.record_with(ch, t.entity, c.cono, i);
            out.push(
                t.columns
                    .iter()
                    .map(|col| {
                        (
                            col.name.to_string(),
                            r.get(col.field).to_json(col.kind, surface),
                        )
                    })
                    .collect(),
            );
        }
    }
    out
}

/// What a task must deliver, by the emulator's generator with the changes `ch` applied.
fn expected(pipeline: &str, task: &str, ds: &Dataset, ch: &Changes) -> Vec<Map<String, Value>> {
    match (pipeline, task) {
        ("m3", "customers") => m3_rows(ds, ch, &tables::OCUSMA, true),
        ("m3", "customer_table") => m3_rows(ds, ch, &tables::OCUSMA, false),
        ("m3", "items") => m3_rows(ds, ch, &tables::MITMAS, true),
        ("m3", "suppliers") => m3_rows(ds, ch, &tables::CIDMAS, true),
        ("m3", "customer_order_lines") => m3_rows(ds, ch, &tables::OOLINE, true),
        ("ln", "business_partners") => ln_rows(ds, ch, &tables::LN_BUSINESS_PARTNERS),
        ("ln", "sales_orders") => ln_rows(ds, ch, &tables::LN_ORDERS),
        ("ln", "items") => ln_rows(ds, ch, &tables::LN_ITEMS),
        ("lake", "m3_customers") => lake_rows(ds, ch, "OCUSMA"),
        ("lake", "m3_items") => lake_rows(ds, ch, "MITMAS"),
        ("lake", "m3_suppliers") => lake_rows(ds, ch, "CIDMAS"),
        ("lake", "m3_order_heads") => lake_rows(ds, ch, "OOHEAD"),
        ("lake", "m3_order_lines") => lake_rows(ds, ch, "OOLINE"),
        ("lake", "ln_business_partners") => lake_rows(ds, ch, "tccom100"),
        ("lake", "ln_sales_orders") => lake_rows(ds, ch, "tdsls400"),
        ("lake", "ln_items") => lake_rows(ds, ch, "tcibd001"),
        other => panic!("no expectation for {other:?}"),
    }
}

// ---------------------------------------------------------------- canonical records

/// A value as every destination can give it back: integral floats as integers (an
/// `integer` 100 and a `number` 100.0 are the same), objects with sorted keys.
fn canon(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                json!(f as i64)
            } else {
                v.clone()
            }
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), canon(v)))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
        other => other.clone(),
    }
}

/// Records by primary key (canonical, nulls dropped), and how many keys came twice.
fn by_key(rows: &[Map<String, Value>], pk: &[String]) -> (BTreeMap<String, String>, usize) {
    let mut out = BTreeMap::new();
    let mut dups = 0;
    for r in rows {
        let c = canon(&Value::Object(r.clone()));
        let key = pk
            .iter()
            .map(|k| {
                c.get(k)
                    .map(Value::to_string)
                    .unwrap_or_else(|| panic!("a row without its key {k}: {c}"))
            })
            .collect::<Vec<_>>()
            .join("|");
        // Keys sorted: canonical JSON text.
        let sorted: BTreeMap<&String, &Value> = c.as_object().unwrap().iter().collect();
        if out
            .insert(key, serde_json::to_string(&sorted).unwrap())
            .is_some()
        {
            dups += 1;
        }
    }
    (out, dups)
}

/// FNV-1a over the records in key order.
fn checksum(records: &BTreeMap<String, String>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for (k, r) in records {
        for b in k.bytes().chain([0x1e]).chain(r.bytes()).chain([0x1f]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn assert_same(got: &BTreeMap<String, String>, want: &BTreeMap<String, String>, what: &str) {
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
        "{what}: {} records, {} expected (checksums {:x} / {:x}); missing {missing:?}; unexpected {extra:?}; first difference: {:?}",
        got.len(),
        want.len(),
        checksum(got),
        checksum(want),
        differ.map(|(k, v)| (k, v, got.get(k)))
    );
}

// ---------------------------------------------------------------- destinations

/// Every row of a stream's table, as JSON records (SQLite booleans typed by the schema).
fn read(dest: &Dest, env: &str, stream: &str, schema: &Value) -> Vec<Map<String, Value>> {
    let table = table_name(stream);
    match dest {
        Dest::Sqlite(d) => {
            let booleans: BTreeSet<String> = schema["properties"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, p)| {
                    p["type"] == "boolean"
                        || p["type"]
                            .as_array()
                            .is_some_and(|a| a.contains(&json!("boolean")))
                })
                .map(|(k, _)| k.clone())
                .collect();
            let conn = rusqlite::Connection::open(d.join(format!("{env}.db"))).unwrap();
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
            let mut rows = stmt.query([]).unwrap();
            let mut out = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                let mut m = Map::new();
                for (i, n) in names.iter().enumerate() {
                    use rusqlite::types::ValueRef;
                    let v = match row.get_ref(i).unwrap() {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(x) if booleans.contains(n) => json!(x != 0),
                        ValueRef::Integer(x) => json!(x),
                        ValueRef::Real(x) => json!(x),
                        ValueRef::Text(t) => json!(std::str::from_utf8(t).unwrap()),
                        ValueRef::Blob(_) => panic!("{table}.{n}: a blob"),
                    };
                    m.insert(n.clone(), v);
                }
                out.push(m);
            }
            out
        }
        other => other.rows(env, stream),
    }
}

// ---------------------------------------------------------------- running ionport

struct Ran {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The summary rows: `pipeline/task` → (mode, records, status).
    fn summary(&self) -> BTreeMap<String, (String, u64, String)> {
        self.stdout
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let name = w.next()?;
                if !name.contains('/') {
                    return None;
                }
                let mode = w.next()?.to_string();
                let records = w.next()?.parse().ok()?;
                // PAGES, REQUESTS, RETRIES, SECONDS, then the status.
                let status = w.skip(4).collect::<Vec<_>>().join(" ");
                Some((name.to_string(), (mode, records, status)))
            })
            .collect()
    }
}

fn ionport_run(file: &Path) -> Ran {
    let out = Command::new(ionport_bin())
        .args(["run", "--quiet"])
        .arg(file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", file.parent().unwrap().join("home"))
        .env_remove("IONPORT_LOG")
        .output()
        .unwrap();
    Ran {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The pipeline file of the destination tests: one connection per connector, each with an
/// environment of its own in `dest`.
fn pipeline_file(dest: &Dest, ionapi: &Path) -> String {
    let tasks = |p: &str| {
        TASKS
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, t)| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let creds = format!("{{ ionapi = '{}' }}", ionapi.display());
    format!(
        r#"
[environments.m3]
destination = {m3_dest}

[environments.ln]
destination = {ln_dest}

[environments.lake]
destination = {lake_dest}

[connections.m3]
connector = "infor-m3"
credentials = {creds}
settings = {{ company = {CONO} }}
quota = "none"

[connections.ln]
connector = "infor-ln"
credentials = {creds}
settings = {{ company = {CONO} }}
quota = "none"

[connections.lake]
connector = "infor-datalake"
credentials = {creds}
settings = {{ page_rows = 250 }}
quota = "none"

[pipelines.m3]
connection = "m3"
environment = "m3"
tasks = [{m3_tasks}]
page_size = 70

[pipelines.ln]
connection = "ln"
environment = "ln"
tasks = [{ln_tasks}]
page_size = 70

[pipelines.lake]
connection = "lake"
environment = "lake"
tasks = [{lake_tasks}]
"#,
        m3_dest = dest.toml("m3"),
        ln_dest = dest.toml("ln"),
        lake_dest = dest.toml("lake"),
        m3_tasks = tasks("m3"),
        ln_tasks = tasks("ln"),
        lake_tasks = tasks("lake"),
    )
}

/// Checks that every task's table holds exactly what the generator makes with `changes`.
fn assert_destination_holds(
    dest: &Dest,
    reg: &PluginRegistry,
    ds: &Dataset,
    changes: &Changes,
    what: &str,
) {
    for (pipeline, task) in TASKS {
        let (schema, pk) = task_spec(reg, pipeline, task);
        let rows = read(dest, pipeline, task, &schema);
        let (got, dups) = by_key(&rows, &pk);
        let (want, want_dups) = by_key(&expected(pipeline, task, ds, changes), &pk);
        assert_eq!(want_dups, 0, "{task}: the generator's keys are unique");
        assert!(!want.is_empty(), "{task}: the generator makes records");
        assert_eq!(
            dups, 0,
            "{what} {pipeline}/{task}: a key is in the table twice"
        );
        assert_eq!(
            rows.len(),
            want.len(),
            "{what} {pipeline}/{task}: row count"
        );
        assert_eq!(
            checksum(&got),
            checksum(&want),
            "{what} {pipeline}/{task}: checksum"
        );
        assert_same(&got, &want, &format!("{what} {pipeline}/{task}"));
    }
}

/// The scenario every destination goes through: a first run replicates everything; `CHANGED`
/// customers change in the emulator; a second run applies the changes incrementally.
fn replicate_and_apply_changes(dest: impl FnOnce(&Path) -> Dest) {
    let emu = emulator();
    let reg = registry();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emulator.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = dest(dir.path());
    let file = dir.path().join("pipelines.toml");
    std::fs::write(&file, pipeline_file(&dest, &ionapi)).unwrap();
    let ds = emu.emu.dataset();

    let first = ionport_run(&file);
    assert!(
        first.ok,
        "first run failed ({:?}):\n{}\n{}",
        first.code, first.stdout, first.stderr
    );
    let summary = first.summary();
    assert_eq!(summary.len(), TASKS.len(), "{}", first.stdout);
    assert!(
        summary.values().all(|(_, _, s)| s == "ok"),
        "{}",
        first.stdout
    );
    assert_destination_holds(&dest, &reg, &ds, &Changes::default(), "first run");

    // Change customers: M3 OCUSMA of company 100 is also LN's business partners of company
    // 100 and the lake's OCUSMA and tccom100 rows.
    let report = emu.control(
        "POST",
        "changes",
        Some(json!({ "table": "OCUSMA", "count": CHANGED, "cono": CONO })),
    );
    let indices: Vec<u64> = report["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    let stamp = report["lastModifiedMs"].as_i64().unwrap();
    assert_eq!(indices.len() as u64, CHANGED, "{report}");
    let mut changes = Changes::default();
    changes.change(
        &ds,
        Entity::Customer,
        CONO,
        Selection::Indices(&indices),
        false,
        stamp,
    );

    let second = ionport_run(&file);
    assert!(
        second.ok,
        "second run failed ({:?}):\n{}\n{}",
        second.code, second.stdout, second.stderr
    );
    eprintln!("second run:{}", second.stdout);
    let summary = second.summary();
    // Incremental tasks read what changed, not everything.
    for name in [
        "m3/customer_table",
        "ln/business_partners",
        "lake/m3_customers",
        "lake/ln_business_partners",
    ] {
        let (mode, records, status) = &summary[name];
        assert_eq!(
            (mode.as_str(), status.as_str()),
            ("incremental", "ok"),
            "{name}: {}",
            second.stdout
        );
        assert!(
            (CHANGED..=2 * CHANGED + 2).contains(records),
            "{name} read {records} records incrementally after {CHANGED} changes:\n{}",
            second.stdout
        );
    }
    // Same row counts (replaced, not duplicated), every changed record with its new values.
    assert_destination_holds(&dest, &reg, &ds, &changes, "after the incremental run");
    let (schema, _) = task_spec(&reg, "m3", "customer_table");
    let rows = read(&dest, "m3", "customer_table", &schema);
    let keys: BTreeSet<String> = indices
        .iter()
        .map(|i| ds.key(Entity::Customer, *i))
        .collect();
    let stamped: Vec<&Map<String, Value>> = rows
        .iter()
        .filter(|r| keys.contains(r["OKCUNO"].as_str().unwrap().trim()))
        .collect();
    assert_eq!(stamped.len() as u64, CHANGED);
    assert!(
        stamped.iter().all(|r| r["OKLMTS"] == json!(stamp)),
        "{stamped:?}"
    );
}

// ---------------------------------------------------------------- the tests

#[test]
fn sqlite_receives_every_record_and_applies_changes() {
    replicate_and_apply_changes(|d| Dest::Sqlite(d.to_path_buf()));
}

#[test]
fn postgres_receives_every_record_and_applies_changes() {
    drop(pg_client());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("e2e_{}_{nanos}", std::process::id());
    let _drop = DropSchemas::new(prefix.clone(), &["m3", "ln", "lake"]);
    replicate_and_apply_changes(|_| Dest::Postgres(prefix.clone()));
}

#[test]
fn parquet_receives_every_record_and_applies_changes() {
    replicate_and_apply_changes(|d| Dest::Parquet(d.to_path_buf()));
}

#[test]
fn jsonl_receives_every_record_and_applies_changes() {
    replicate_and_apply_changes(|d| Dest::Jsonl(d.to_path_buf()));
}

#[test]
fn a_failing_task_does_not_stop_the_others_and_the_summary_says_why() {
    let emu = emulator();
    let reg = registry();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emulator.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    // LN answers 503 to everything, for good.
    emu.control(
        "POST",
        "faults",
        Some(json!([{ "kind": "503", "rate": 1.0, "api": "ln" }])),
    );
    let file = dir.path().join("pipelines.toml");
    let db = dir.path().join("m3.db");
    let ln_db = dir.path().join("ln.db");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.m3]
destination = {{ type = "sqlite", path = '{}' }}

[environments.ln]
destination = {{ type = "sqlite", path = '{}' }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ company = {CONO} }}
quota = "none"

[connections.ln]
connector = "infor-ln"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ company = {CONO} }}
quota = "none"
# Fail fast: no host-side retry of the 503s.
retries = 0

[pipelines.ln]
connection = "ln"
environment = "ln"
tasks = ["business_partners", "items"]

[pipelines.m3]
connection = "m3"
environment = "m3"
tasks = ["customers", "customer_table"]
page_size = 100
"#,
            db.display(),
            ln_db.display(),
            ionapi = ionapi.display()
        ),
    )
    .unwrap();
    let ran = ionport_run(&file);
    assert!(!ran.ok, "a failed task makes the run fail:\n{}", ran.stdout);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    let summary = ran.summary();
    for t in ["ln/business_partners", "ln/items"] {
        let (_, records, status) = &summary
            .get(t)
            .unwrap_or_else(|| panic!("{t} in the summary:\n{}", ran.stdout));
        assert_eq!(*records, 0);
        assert!(status.starts_with("FAILED"), "{t}: {status}");
        assert!(status.contains("503"), "{t}: the reason is given: {status}");
    }
    for t in ["m3/customers", "m3/customer_table"] {
        assert_eq!(summary[t].2, "ok", "{t}:\n{}", ran.stdout);
    }
    assert!(ran.stdout.contains("2 FAILED"), "{}", ran.stdout);
    // The M3 tasks landed, complete.
    let dest = Dest::Sqlite(dir.path().to_path_buf());
    let ds = emu.emu.dataset();
    for task in ["customers", "customer_table"] {
        let (schema, pk) = task_spec(&reg, "m3", task);
        let (got, dups) = by_key(&read(&dest, "m3", task, &schema), &pk);
        assert_eq!(dups, 0);
        let (want, _) = by_key(&expected("m3", task, &ds, &Changes::default()), &pk);
        assert_same(&got, &want, task);
    }
}

/// Every `examples/*.toml` validates against the built connectors, with the `.ionapi` file
/// it names present (a copy of the directory, with an emulator's `.ionapi`).
#[test]
fn every_example_pipeline_file_validates() {
    let reg = registry();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.ionapi"), "{}").unwrap();
    let mut seen = BTreeSet::new();
    for e in std::fs::read_dir(&examples).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let copy = dir.path().join(&name);
        std::fs::copy(&path, &copy).unwrap();
        let plan = ionport_core::pipeline::load(&copy, &reg)
            .unwrap_or_else(|d| panic!("{name} does not validate:\n{d}"));
        assert!(!plan.pipelines.is_empty(), "{name}");
        // A destination of the kind the file is named after.
        let kind = name.trim_end_matches(".toml");
        for p in &plan.pipelines {
            let d = serde_json::to_value(&p.destination).unwrap();
            assert_eq!(d["type"], kind, "{name}: pipeline {}", p.name);
        }
        seen.insert(kind.to_string());
    }
    let want: BTreeSet<String> = ["sqlite", "postgres", "parquet", "jsonl"]
        .map(String::from)
        .into();
    assert_eq!(seen, want, "one example per destination");
    assert!(examples.join("README.md").is_file());
}
