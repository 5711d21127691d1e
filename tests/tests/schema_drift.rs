//! Schema drift: a column added at the source (the emulator's `POST /__emulator/columns`,
//! seen by M3 EXPORTMI and the Data Lake alike) between two runs of `ionport run`, under
//! each `schema_changes` policy, and a type widened under `evolve`:
//!
//! - `evolve`: every destination (SQLite, Postgres, Parquet, JSONL) has the new column;
//!   the second run's rows hold the source's values, older rows null;
//! - `freeze`: the column is absent and was not even asked of the source (the recorded
//!   EXPORTMI field list and Compass `SELECT`);
//! - `fail`: the task fails before it reads, naming the field and the way out, and
//!   commits nothing;
//! - a column whose type becomes wider (integer → number) is widened in SQLite and
//!   Postgres.
//!
//! Every change is in the `--summary` JSON and in a WARN line of the log.
//! Postgres: `IONPORT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ionport_emulator::EmulatorConfig;
use ionport_tests::destinations::{Dest, DropSchemas, pg_client};
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, output_text, profile_dir};
use serde_json::{Map, Value, json};

const SCALE: u64 = 40;
const NEW: &str = "OKZZCUST";

fn emulator() -> Emulated {
    Emulated::start(EmulatorConfig {
        scale: SCALE,
        job_run_time: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
}

/// A pipeline file with two pipelines into `dest`: `table:OCUSMA` from M3 (incremental)
/// and the Data Lake object `OCUSMA` (full refresh), both under `policy`.
fn pipeline_file(dir: &Path, ionapi: &Path, dest: &Dest, policy: &str) -> PathBuf {
    pipeline_file_with(dir, ionapi, dest, policy, None)
}

/// [`pipeline_file`] with the tasks' own `schema_changes`, when `task_policy` is set.
fn pipeline_file_with(
    dir: &Path,
    ionapi: &Path,
    dest: &Dest,
    policy: &str,
    task_policy: Option<&str>,
) -> PathBuf {
    let creds = format!("{{ ionapi = '{}' }}", ionapi.display());
    let mut out = String::new();
    let entry = |task: &str| match task_policy {
        Some(p) => format!("{{ name = \"{task}\", schema_changes = \"{p}\" }}"),
        None => format!("\"{task}\""),
    };
    for (env, connector, settings, mode, task) in [
        (
            "m3",
            "infor-m3",
            "{ company = 100 }",
            "incremental",
            "table:OCUSMA",
        ),
        (
            "lake",
            "infor-datalake",
            "{ page_rows = 50 }",
            "full_refresh",
            "OCUSMA",
        ),
    ] {
        out.push_str(&format!(
            "[environments.{env}]\ndestination = {}\n\n\
             [connections.{env}]\nconnector = \"{connector}\"\ncredentials = {creds}\n\
             settings = {settings}\nquota = \"none\"\n\n\
             [pipelines.{env}]\nconnection = \"{env}\"\nenvironment = \"{env}\"\n\
             sync_mode = \"{mode}\"\npage_size = 25\nschema_changes = \"{policy}\"\n\
             tasks = [{}]\n\n",
            dest.toml(env),
            entry(task)
        ));
    }
    let file = dir.join(format!("pipelines-{policy}.toml"));
    std::fs::write(&file, out).unwrap();
    file
}

/// `ionport run --summary SUMMARY FILE`, logging at WARN; the output and the summary.
fn run(file: &Path) -> (Output, Value) {
    let summary = file.with_extension("summary.json");
    let out = Command::new(ionport_bin())
        .args(["run", "--quiet", "--summary"])
        .arg(&summary)
        .arg(file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env(
            "IONPORT_HOME",
            file.parent().unwrap_or(Path::new(".")).join("home"),
        )
        .env("IONPORT_LOG", "warn")
        .output()
        .expect("ionport runs");
    let doc = std::fs::read_to_string(&summary)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out, doc)
}

/// The schema changes of task `task` in a summary.
fn changes<'a>(summary: &'a Value, task: &str) -> Vec<&'a Value> {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task"] == task)
        .flat_map(|t| t["schema_changes"].as_array().unwrap().iter())
        .collect()
}

fn add_column(emu: &Emulated) {
    emu.control(
        "POST",
        "/columns",
        Some(json!({"table": "OCUSMA", "name": NEW, "type": "string", "from": "OKCUNO"})),
    );
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        v => v.to_string(),
    }
}

/// A destination of some kind, from a directory and a Postgres schema prefix.
type MakeDest = fn(PathBuf, String) -> Dest;

#[test]
fn evolve_adds_the_column_in_every_destination_with_values_from_then_on() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let prefix = format!("drift_{}", std::process::id());
    let _drop = DropSchemas::new(prefix.clone(), &["m3", "lake"]);
    let kinds: [MakeDest; 4] = [
        |d, _| Dest::Sqlite(d),
        |_, p| Dest::Postgres(p),
        |d, _| Dest::Parquet(d),
        |d, _| Dest::Jsonl(d),
    ];
    let dests: Vec<(Dest, PathBuf)> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let sub = dir.path().join(format!("d{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            let dest = kind(sub.clone(), format!("{prefix}_{i}"));
            let file = pipeline_file(&sub, &ionapi, &dest, "evolve");
            (dest, file)
        })
        .collect();
    let _drops: Vec<DropSchemas> = (0..4)
        .map(|i| DropSchemas::new(format!("{prefix}_{i}"), &["m3", "lake"]))
        .collect();
    for (_, file) in &dests {
        let (out, summary) = run(file);
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(changes(&summary, "table:OCUSMA").is_empty(), "{summary}");
    }
    add_column(&emu);
    // Changed at the source after the column came: the M3 incremental read takes these.
    let changed = emu.control(
        "POST",
        "/changes",
        Some(json!({"table": "OCUSMA", "count": 5})),
    );
    let changed_keys: BTreeSet<String> = changed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(changed_keys.len(), 5, "{changed}");
    let total_m3 = emu
        .emu
        .dataset()
        .count(ionport_emulator::data::Entity::Customer, 100);

    for (dest, file) in &dests {
        let (out, summary) = run(file);
        let all = output_text(&out);
        assert!(out.status.success(), "{all}");
        for task in ["table:OCUSMA", "OCUSMA"] {
            let c = changes(&summary, task);
            assert_eq!(c.len(), 1, "{task}: {summary}");
            assert_eq!(c[0]["column"], NEW);
            assert_eq!(c[0]["change"], "added");
            assert_eq!(c[0]["new_type"], "string");
            assert_eq!(c[0]["action"], "added_column");
        }
        let warns: Vec<&str> = all
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("schema change") && l.contains(NEW))
            .collect();
        assert_eq!(warns.len(), 2, "one WARN line per stream: {all}");
        assert!(
            all.contains("schema change in m3/table:OCUSMA"),
            "the summary table lists the change: {all}"
        );

        // M3, incremental: the new column; the rows read again hold the source's value,
        // the others null.
        let (names, rows) = dest.read("m3", "table:OCUSMA");
        if let Some(names) = names {
            assert!(names.contains(NEW), "{names:?}");
        }
        assert_eq!(rows.len() as u64, total_m3, "every customer once");
        let with: Vec<&Map<String, Value>> = rows
            .iter()
            .filter(|r| r.get(NEW).is_some_and(|v| !v.is_null()))
            .collect();
        for r in &with {
            assert_eq!(text(&r[NEW]), text(&r["OKCUNO"]), "{r:?}");
        }
        let keys: BTreeSet<String> = with.iter().map(|r| text(&r["OKCUNO"])).collect();
        assert!(
            changed_keys.is_subset(&keys),
            "the changed rows hold the value: {changed_keys:?} / {keys:?}"
        );
        assert!(
            with.len() < rows.len() / 2,
            "older rows are null: {} of {}",
            with.len(),
            rows.len()
        );

        // Data Lake, full refresh: every row holds the value.
        let (names, rows) = dest.read("lake", "OCUSMA");
        if let Some(names) = names {
            assert!(names.contains(NEW), "{names:?}");
        }
        assert!(!rows.is_empty());
        for r in &rows {
            assert_eq!(text(&r[NEW]), text(&r["OKCUNO"]), "{r:?}");
        }
    }
}

#[test]
fn freeze_set_on_the_task_keeps_the_columns_and_does_not_ask_the_source_for_the_new_one() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = Dest::Sqlite(dir.path().to_path_buf());
    // The tasks' own policy wins over the pipeline's.
    let file = pipeline_file_with(dir.path(), &ionapi, &dest, "fail", Some("freeze"));
    let (out, _) = run(&file);
    assert!(out.status.success(), "{}", output_text(&out));
    add_column(&emu);
    emu.control(
        "POST",
        "/changes",
        Some(json!({"table": "OCUSMA", "count": 5})),
    );
    emu.control("DELETE", "/requests", None);
    let (out, summary) = run(&file);
    let all = output_text(&out);
    assert!(out.status.success(), "{all}");
    for task in ["table:OCUSMA", "OCUSMA"] {
        let c = changes(&summary, task);
        assert_eq!(c.len(), 1, "{task}: {summary}");
        assert_eq!(
            (&c[0]["column"], &c[0]["action"]),
            (&json!(NEW), &json!("dropped"))
        );
    }
    assert!(
        all.lines()
            .any(|l| l.contains("WARN") && l.contains(NEW) && l.contains("freeze")),
        "{all}"
    );
    for (env, stream) in [("m3", "table:OCUSMA"), ("lake", "OCUSMA")] {
        let (names, _) = dest.read(env, stream);
        assert!(!names.unwrap().contains(NEW), "{env}: the column is absent");
    }
    // Not asked for: the EXPORTMI reads and the Compass query name the other columns only.
    let requests = emu.emu.requests();
    let reads: Vec<String> = requests
        .iter()
        .filter(|r| r.path.ends_with("/EXPORTMI/Select") && r.param("HDRS") == Some("0"))
        .filter_map(|r| r.param("QERY").map(str::to_owned))
        .collect();
    assert!(!reads.is_empty(), "{requests:?}");
    for q in &reads {
        assert!(!q.contains(NEW) && q.contains("OKCUNO"), "{q}");
    }
    let sqls: Vec<&str> = requests.iter().filter_map(|r| r.sql.as_deref()).collect();
    assert!(!sqls.is_empty(), "{requests:?}");
    for s in &sqls {
        assert!(!s.contains(NEW) && s.contains("OKCUNO"), "{s}");
    }
}

#[test]
fn fail_stops_the_task_before_it_reads_naming_the_field() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = Dest::Sqlite(dir.path().to_path_buf());
    let file = pipeline_file(dir.path(), &ionapi, &dest, "fail");
    let (out, _) = run(&file);
    assert!(out.status.success(), "{}", output_text(&out));
    let (_, before) = dest.read("m3", "table:OCUSMA");
    add_column(&emu);
    emu.control(
        "POST",
        "/changes",
        Some(json!({"table": "OCUSMA", "count": 5})),
    );
    emu.control("DELETE", "/requests", None);
    let (out, summary) = run(&file);
    let all = output_text(&out);
    assert!(!out.status.success(), "{all}");
    for task in ["table:OCUSMA", "OCUSMA"] {
        let t = summary["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == task)
            .unwrap();
        let error = t["error"].as_str().unwrap();
        for part in [
            &format!("column `{NEW}` added (string)"),
            task,
            "schema_changes = \"evolve\"",
            "nothing was read",
        ] {
            assert!(error.contains(part), "{part} not in {error}");
        }
        assert_eq!(t["records"], 0);
        let c = changes(&summary, task);
        assert_eq!(
            (&c[0]["column"], &c[0]["action"]),
            (&json!(NEW), &json!("stopped"))
        );
    }
    assert!(
        all.lines().any(|l| l.contains("WARN") && l.contains(NEW)),
        "{all}"
    );
    // Nothing was read, nothing committed.
    let requests = emu.emu.requests();
    assert!(
        !requests
            .iter()
            .any(
                |r| (r.path.ends_with("/EXPORTMI/Select") && r.param("HDRS") == Some("0"))
                    || r.sql.is_some()
            ),
        "no read was made: {requests:?}"
    );
    let (names, after) = dest.read("m3", "table:OCUSMA");
    assert!(!names.unwrap().contains(NEW));
    assert_eq!(after, before, "nothing committed");
}

#[test]
fn a_type_widened_at_the_source_widens_the_column_in_sqlite_and_postgres() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let prefix = format!("drift_widen_{}", std::process::id());
    let _drops: Vec<DropSchemas> = (0..2)
        .map(|i| DropSchemas::new(format!("{prefix}_{i}"), &["m3", "lake"]))
        .collect();
    let kinds: [MakeDest; 2] = [|d, _| Dest::Sqlite(d), |_, p| Dest::Postgres(p)];
    let dests: Vec<(Dest, PathBuf)> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let sub = dir.path().join(format!("d{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            let dest = kind(sub.clone(), format!("{prefix}_{i}"));
            let file = pipeline_file(&sub, &ionapi, &dest, "evolve");
            (dest, file)
        })
        .collect();
    for (_, file) in &dests {
        let (out, _) = run(file);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    // `OKCUTP` (customer type) is an integer in the Data Catalog; now a number.
    emu.control(
        "POST",
        "/columns",
        Some(json!({"table": "OCUSMA", "name": "OKCUTP", "type": "number"})),
    );
    for (dest, file) in &dests {
        let (out, summary) = run(file);
        let all = output_text(&out);
        assert!(out.status.success(), "{all}");
        let c = changes(&summary, "OCUSMA");
        assert_eq!(c.len(), 1, "{summary}");
        assert_eq!(c[0]["column"], "OKCUTP");
        assert_eq!(c[0]["change"], "type_changed");
        assert_eq!(
            (&c[0]["old_type"], &c[0]["new_type"]),
            (&json!("integer"), &json!("number"))
        );
        assert_eq!(c[0]["action"], "widened");
        let declared = match dest {
            Dest::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.join("lake.db")).unwrap();
                conn.query_row(
                    "SELECT type FROM pragma_table_info('ocusma') WHERE name = 'OKCUTP'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .unwrap()
            }
            Dest::Postgres(prefix) => pg_client()
                .query_one(
                    "SELECT data_type::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'ocusma' AND column_name = 'OKCUTP'",
                    &[&format!("{prefix}_lake")],
                )
                .unwrap()
                .get(0),
            other => panic!("no declared types in {other:?}"),
        };
        assert!(
            ["REAL", "double precision"].contains(&declared.as_str()),
            "{declared}"
        );
        let (_, rows) = dest.read("lake", "OCUSMA");
        let ds = emu.emu.dataset();
        assert_eq!(
            rows.len() as u64,
            ds.table_rows(&ionport_emulator::data::tables::OCUSMA)
        );
        for r in &rows {
            assert!(r["OKCUTP"].is_number(), "{r:?}");
        }
    }
}

#[test]
fn the_api_run_record_lists_each_change() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = Dest::Sqlite(dir.path().to_path_buf());
    let file = pipeline_file(dir.path(), &ionapi, &dest, "evolve");
    let srv = ionport_tests::serve_process::ServeProcess::start(
        &dir.path().join("home"),
        &["--pipeline", file.to_str().unwrap()],
        "info",
    );
    let run_lake = || {
        let (s, v) = srv.call(
            "POST",
            "/v1/runs",
            Some(&json!({"pipeline": "lake", "task": "OCUSMA"})),
        );
        assert_eq!(s, 202, "{v}");
        srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(60))
    };
    let first = run_lake();
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(first["tasks"][0].get("schema_changes").is_none(), "{first}");
    add_column(&emu);
    let second = run_lake();
    assert_eq!(second["status"], "succeeded", "{second}");
    let c = &second["tasks"][0]["schema_changes"];
    assert_eq!(c.as_array().map(Vec::len), Some(1), "{second}");
    assert_eq!(c[0]["column"], NEW);
    assert_eq!(c[0]["change"], "added");
    assert_eq!(c[0]["new_type"], "string");
    assert_eq!(c[0]["action"], "added_column");
    assert!(
        c[0]["message"]
            .as_str()
            .unwrap()
            .contains("added to the destination"),
        "{c}"
    );
}

/// A column the rows carry before the Data Catalog lists it: the read's schema (from the
/// catalog) lacks it, so the destination meets it mid-run.
#[test]
fn a_field_arriving_mid_run_is_added_dropped_or_refused_by_the_policy() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let setups: Vec<(&str, Dest, PathBuf)> = ["evolve", "freeze", "fail"]
        .into_iter()
        .map(|policy| {
            let sub = dir.path().join(policy);
            std::fs::create_dir_all(&sub).unwrap();
            let dest = Dest::Sqlite(sub.clone());
            let file = pipeline_file(&sub, &ionapi, &dest, policy);
            (policy, dest, file)
        })
        .collect();
    for (_, _, file) in &setups {
        let (out, _) = run(file);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    emu.control(
        "POST",
        "/columns",
        Some(json!({"table": "OCUSMA", "name": NEW, "from": "OKCUNO", "catalog": false})),
    );
    let rows = emu
        .emu
        .dataset()
        .table_rows(&ionport_emulator::data::tables::OCUSMA);
    for (policy, dest, file) in &setups {
        let (out, summary) = run(file);
        let all = output_text(&out);
        let lake = summary["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == "OCUSMA")
            .unwrap();
        let c = changes(&summary, "OCUSMA");
        assert_eq!(c.len(), 1, "{policy}: {summary}");
        assert_eq!(
            (&c[0]["column"], &c[0]["change"]),
            (&json!(NEW), &json!("added"))
        );
        assert!(
            all.lines()
                .any(|l| l.contains("WARN") && l.contains(NEW) && l.contains("(mid-run)")),
            "{policy}: {all}"
        );
        let (names, got) = dest.read("lake", "OCUSMA");
        let names = names.unwrap();
        match *policy {
            "evolve" => {
                assert!(out.status.success(), "{all}");
                assert_eq!(c[0]["action"], "added_column");
                assert_eq!(c[0]["new_type"], "string");
                assert!(names.contains(NEW), "{names:?}");
                assert_eq!(got.len() as u64, rows);
                for r in &got {
                    assert_eq!(text(&r[NEW]), text(&r["OKCUNO"]), "{r:?}");
                }
            }
            "freeze" => {
                assert!(out.status.success(), "{all}");
                assert_eq!(c[0]["action"], "dropped");
                assert!(!names.contains(NEW), "{names:?}");
                assert_eq!(got.len() as u64, rows);
                assert_eq!(lake["records"].as_u64(), Some(rows), "{lake}");
            }
            _ => {
                assert!(!out.status.success(), "{all}");
                assert_eq!(c[0]["action"], "stopped");
                let error = lake["error"].as_str().unwrap();
                assert!(
                    error.contains(&format!(
                        "field `{NEW}` (string) is not in the stream's record schema"
                    )),
                    "{error}"
                );
                assert!(!names.contains(NEW), "{names:?}");
            }
        }
    }
}

/// `deletes = "soft"` adds ionport's own `_ionport_deleted_at` column: it is no column of
/// the source, so it is never reported as gone, and a real change beside it still is.
#[test]
fn the_deletion_column_is_not_a_schema_change() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("t.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let db = dir.path().join("m3.db");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "[environments.m3]\ndestination = {{ type = \"sqlite\", path = '{}' }}\n\n\
             [connections.m3]\nconnector = \"infor-m3\"\ncredentials = {{ ionapi = '{}' }}\n\
             settings = {{ company = 100 }}\nquota = \"none\"\n\n\
             [pipelines.m3]\nconnection = \"m3\"\nenvironment = \"m3\"\nschema_changes = \"fail\"\n\
             tasks = [{{ name = \"table:OCUSMA\", deletes = \"soft\" }}]\n",
            db.display(),
            ionapi.display()
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let (out, summary) = run(&file);
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(changes(&summary, "table:OCUSMA").is_empty(), "{summary}");
    }
    let (names, _) = ionport_tests::sqlite::table(&db, "table:OCUSMA");
    assert!(
        names.iter().any(|n| n == "_ionport_deleted_at"),
        "{names:?}"
    );
    add_column(&emu);
    let (out, summary) = run(&file);
    assert!(!out.status.success(), "{}", output_text(&out));
    let c = changes(&summary, "table:OCUSMA");
    assert_eq!(c.len(), 1, "{summary}");
    assert_eq!(
        (&c[0]["column"], &c[0]["action"]),
        (&json!(NEW), &json!("stopped"))
    );
}
