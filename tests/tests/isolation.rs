//! Process isolation (`isolation = "process"`, `--isolate-plugins-except`): a plugin that
//! segfaults in `read`, loops forever, allocates without bound or aborts while loading
//! fails with an error saying which plugin and what happened, while another connection's
//! run completes in the same `ionport` process; the next call on the failed connection
//! starts a new process and works; only what the plugin checkpointed before the crash is
//! committed. And an isolated read gives exactly what the same read gives in process.
//!
//! The failing plugins are real cdylibs (`tests/plugins/test-plugin-faults`, and the same
//! source built with `abort-on-load`); M3 reads the emulator over loopback.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::{Dataset, Entity};
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, output_text, plugin_lib};
use serde_json::{Value, json};

const SCALE: u64 = 600;
const CONO: u32 = 100;

/// The M3 connector and the faults plugin, by file (a directory scan opens only
/// `*connector*` libraries, and the faults plugins must never be opened by one).
fn plugin_path(extra: &[&str]) -> String {
    let mut libs = vec![
        plugin_lib("ionport_connector_m3"),
        plugin_lib("ionport_test_plugin_faults"),
    ];
    libs.extend(extra.iter().map(|l| plugin_lib(l)));
    std::env::join_paths(libs).unwrap().into_string().unwrap()
}

struct Setup {
    _emu: Emulated,
    dir: tempfile::TempDir,
    ionapi: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let emu = Emulated::start(EmulatorConfig {
            scale: SCALE,
            ..EmulatorConfig::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let ionapi = dir.path().join("emu.ionapi");
        emu.emu.write_ionapi(&ionapi).unwrap();
        Self {
            _emu: emu,
            dir,
            ionapi,
        }
    }

    fn db(&self, env: &str) -> PathBuf {
        self.dir.path().join(format!("{env}.db"))
    }

    /// A pipeline file: `a_faults` (the faults plugin, isolated with `faults_extra`)
    /// reads `faults_tasks` one at a time, then `b_m3` reads M3 customers in process.
    fn faults_file(&self, faults_tasks: &[&str], faults_extra: &str) -> PathBuf {
        let tasks: Vec<String> = faults_tasks.iter().map(|t| format!("{t:?}")).collect();
        self.write(&format!(
            r#"
[environments.faults]
destination = {{ type = "sqlite", path = "{faults_db}" }}

[environments.m3]
destination = {{ type = "sqlite", path = "{m3_db}" }}

[connections.faults]
connector = "ionport-test-faults"
credentials = {{ ionapi = "{ionapi}" }}
{faults_extra}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{ionapi}" }}
settings = {{ company = {CONO} }}
quota = "none"

[pipelines.a_faults]
connection = "faults"
environment = "faults"
tasks = [{tasks}]
concurrency = 1

[pipelines.b_m3]
connection = "m3"
environment = "m3"
tasks = ["customers"]
page_size = 100
"#,
            faults_db = self.db("faults").display(),
            m3_db = self.db("m3").display(),
            ionapi = self.ionapi.display(),
            tasks = tasks.join(", "),
        ))
    }

    fn write(&self, text: &str) -> PathBuf {
        let file = self.dir.path().join("pipelines.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn ionport(&self, plugins: &str, args: &[&str]) -> Command {
        let mut c = Command::new(ionport_bin());
        c.args(args)
            .env("IONPORT_PLUGIN_PATH", plugins)
            .env("IONPORT_HOME", self.dir.path().join("home"))
            .env("IONPORT_LOG", "warn,ionport::read=debug")
            .env_remove("IONPORT_ISOLATE_PLUGINS_EXCEPT");
        c
    }

    fn run(&self, file: &Path, plugins: &str, extra: &[&str]) -> Output {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        self.ionport(plugins, &args).output().unwrap()
    }

    fn states(&self, file: &Path) -> Value {
        let out = self
            .ionport(
                &plugin_path(&[]),
                &["state", "show", "--json", file.to_str().unwrap()],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The `id`s of a faults stream's rows, sorted.
fn ids(db: &Path, stream: &str) -> Vec<u64> {
    let (_, rows) = ionport_tests::sqlite::table(db, stream);
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

/// The rows of `stream`'s table while a run may still be writing (`None`: no table yet).
fn rows_so_far(db: &Path, stream: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(&format!("SELECT count(*) FROM \"{stream}\""), [], |r| {
        r.get(0)
    })
    .ok()
}

/// The state of `stream` in `pipeline`'s environment.
fn state(states: &Value, pipeline: &str, stream: &str) -> Value {
    states
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pipeline"] == pipeline)
        .map(|e| e["states"][stream].clone())
        .unwrap_or(Value::Null)
}

fn customers_expected() -> usize {
    let ds = Dataset::new(EmulatorConfig::default().seed, SCALE);
    (0..ds.count(Entity::Customer, CONO))
        .filter(|i| !ds.record(Entity::Customer, CONO, *i).deleted())
        .count()
}

/// What every failure test checks beside its own error: the failed task committed
/// exactly its checkpointed records (ids 0..10, state offset 10), the next task on the
/// same connection ran in a new process and read everything, and M3 read every customer
/// after the failure, in the same `ionport` process.
fn assert_contained(setup: &Setup, file: &Path, out: &Output, failed: &str, committed: u64) {
    let text = output_text(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the run reports failed tasks: {text}"
    );
    assert_eq!(
        ids(&setup.db("faults"), failed),
        (0..committed).collect::<Vec<_>>(),
        "only the checkpointed records of {failed} were committed: {text}"
    );
    assert_eq!(
        ids(&setup.db("faults"), "numbers"),
        (0..100).collect::<Vec<_>>(),
        "{text}"
    );
    let (_, customers) = ionport_tests::sqlite::table(&setup.db("m3"), "customers");
    assert_eq!(
        customers.len(),
        customers_expected(),
        "M3 read everything: {text}"
    );
    let states = setup.states(file);
    assert_eq!(
        state(&states, "a_faults", "numbers"),
        json!({ "offset": 100 })
    );
    let expected = if committed > 0 {
        json!({ "offset": committed })
    } else {
        Value::Null
    };
    assert_eq!(state(&states, "a_faults", failed), expected);
    assert_eq!(
        state(&states, "b_m3", "customers"),
        json!({}),
        "a finished full read of a stream leaves an empty state"
    );
}

#[test]
fn a_segfault_in_read_fails_its_call_only_and_the_next_call_gets_a_new_process() {
    let setup = Setup::new();
    let file = setup.faults_file(&["segfault", "numbers"], r#"isolation = "process""#);
    let out = setup.run(&file, &plugin_path(&[]), &[]);
    let text = output_text(&out);
    assert!(
        text.contains("ionport-test-faults: read failed: its process (pid ")
            && text.contains("was killed by signal SIGSEGV (segmentation fault)"),
        "the error names the plugin and the signal: {text}"
    );
    // Five records were emitted after the last checkpoint: none of them landed.
    assert_contained(&setup, &file, &out, "segfault", 10);
}

#[test]
fn a_plugin_that_loops_forever_times_out_and_the_next_call_works() {
    let setup = Setup::new();
    let file = setup.faults_file(
        &["hang", "numbers"],
        "isolation = \"process\"\nisolation_timeout = \"2s\"",
    );
    let out = setup.run(&file, &plugin_path(&[]), &[]);
    let text = output_text(&out);
    assert!(
        text.contains(
            "ionport-test-faults: read failed: timed out after 2s without a word to the host"
        ),
        "the error says it timed out and after how long: {text}"
    );
    assert_contained(&setup, &file, &out, "hang", 10);
}

#[test]
fn a_plugin_that_allocates_without_bound_hits_its_memory_limit_and_the_next_call_works() {
    let setup = Setup::new();
    let file = setup.faults_file(
        &["alloc", "numbers"],
        "isolation = \"process\"\nisolation_memory_mib = 512",
    );
    let out = setup.run(&file, &plugin_path(&[]), &[]);
    let text = output_text(&out);
    assert!(
        text.contains("ionport-test-faults: read failed: it exceeded the memory limit of 512 MiB"),
        "the error names the limit: {text}"
    );
    assert_contained(&setup, &file, &out, "alloc", 0);
}

#[test]
fn a_plugin_that_aborts_while_loading_is_refused_and_the_others_run() {
    let setup = Setup::new();
    let plugins = plugin_path(&["ionport_test_plugin_abort_on_load"]);
    // In the host, the library takes the host down: what isolation is for.
    let out = setup
        .ionport(&plugins, &["plugins", "list"])
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(6),
        "loaded in process, the plugin aborts the host: {}",
        output_text(&out)
    );
    // Isolated, it is refused with what happened; the others load.
    let out = setup
        .ionport(
            &plugins,
            &["plugins", "list", "--isolate-plugins-except", "infor-m3"],
        )
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let refusal = text
        .lines()
        .find(|l| l.contains("libionport_test_plugin_abort_on_load") && l.contains("refused"))
        .unwrap_or_else(|| panic!("the library is listed as refused: {text}"));
    assert!(
        refusal.contains("load failed in its own process")
            && refusal.contains("killed by signal SIGABRT (aborted)"),
        "the refusal says it aborted while loading: {refusal}"
    );
    assert!(
        text.contains("infor-m3") && text.contains("ionport-test-faults"),
        "{text}"
    );
    // A run under the same policy: the faults plugin isolated by the policy alone (no
    // `isolation` key), M3 in process; both complete.
    let file = setup.faults_file(&["numbers"], "");
    let out = setup.run(&file, &plugins, &["--isolate-plugins-except", "infor-m3"]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        ids(&setup.db("faults"), "numbers"),
        (0..100).collect::<Vec<_>>()
    );
    let (_, customers) = ionport_tests::sqlite::table(&setup.db("m3"), "customers");
    assert_eq!(customers.len(), customers_expected(), "{text}");
}

#[test]
fn a_hung_plugin_is_stopped_by_cancellation_before_its_timeout() {
    let setup = Setup::new();
    let file = setup.faults_file(
        &["hang"],
        "isolation = \"process\"\nisolation_timeout = \"10m\"",
    );
    let mut child = setup
        .ionport(&plugin_path(&[]), &["run", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The task committed its first ten records: the plugin is now in its endless loop.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows_so_far(&setup.db("faults"), "hang") != Some(10) {
        assert!(
            Instant::now() < deadline,
            "the hang task never committed its records"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Within the cancellation grace (5 s) the process is killed and the run ends; the
    // bound here is only for a broken build, far below the 10 minutes of the timeout.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the run did not end after its cancellation"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert!(
        text.contains("did not stop within 5s of the cancellation, so its process (pid "),
        "the error says the plugin was stopped by the cancellation: {text}"
    );
    assert!(!text.contains("timed out after"), "{text}");
}

#[test]
fn an_isolated_read_gives_the_same_records_and_state_as_in_process() {
    let setup = Setup::new();
    let section = |env: &str, extra: &str| {
        format!(
            r#"
[environments.{env}]
destination = {{ type = "sqlite", path = "{db}" }}

[connections.{env}]
connector = "infor-m3"
credentials = {{ ionapi = "{ionapi}" }}
settings = {{ company = {CONO} }}
quota = "none"
{extra}

[pipelines.{env}]
connection = "{env}"
environment = "{env}"
tasks = ["customers", "customer_table"]
page_size = 70
"#,
            db = setup.db(env).display(),
            ionapi = setup.ionapi.display(),
        )
    };
    let file = setup.write(&format!(
        "{}{}",
        section("inproc", ""),
        section("isolated", r#"isolation = "process""#)
    ));
    let out = setup.run(&file, &plugin_path(&[]), &[]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let reads = ionport_tests::finished_reads(&text);
    assert_eq!(
        reads.len(),
        4,
        "four reads through the one read path: {text}"
    );
    let states = setup.states(&file);
    for stream in ["customers", "customer_table"] {
        let (cols_a, mut a) = ionport_tests::sqlite::table(&setup.db("inproc"), stream);
        let (cols_b, mut b) = ionport_tests::sqlite::table(&setup.db("isolated"), stream);
        assert!(!a.is_empty(), "{stream} has records");
        assert_eq!(cols_a, cols_b, "{stream}: same columns");
        let key = |r: &serde_json::Map<String, Value>| serde_json::to_string(r).unwrap();
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b, "{stream}: the same records");
        let (sa, sb) = (
            state(&states, "inproc", stream),
            state(&states, "isolated", stream),
        );
        assert!(!sa.is_null(), "{stream} has a state");
        assert_eq!(sa, sb, "{stream}: the same state");
    }
}

/// `ionport serve --isolate-plugins-except ""`: every connector is described through its
/// own process and runs in one; a connection created with `"isolation": "process"` keeps
/// it, and its run reads every customer through the one read path.
#[test]
fn serve_runs_an_isolated_connection_under_its_isolation_option() {
    let emu = Emulated::start(EmulatorConfig {
        scale: SCALE,
        quota: None,
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    let srv = ionport_tests::serve_process::ServeProcess::start(
        home.path(),
        &["--isolate-plugins-except", ""],
        "warn,ionport::read=debug",
    );
    let (s, v) = srv.call("GET", "/v1/connectors", None);
    assert_eq!(s, 200, "{v}");
    assert!(
        v.to_string().contains("infor-m3"),
        "M3 is described through its process: {v}"
    );
    let body = json!({
        "name": "m3",
        "connector": "infor-m3",
        "values": {"company": CONO, "credentials": ionport_tests::form_credentials(&emu.emu.ionapi_json())},
        "tasks": [{"name": "customers"}],
        "page_size": 100,
        "isolation": "process",
    });
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["connection"]["isolation"], "process", "{v}");
    let (s, v) = srv.call("GET", "/v1/connections/m3", None);
    assert_eq!((s, &v["isolation"]), (200, &json!("process")), "{v}");
    let bad = json!({"isolation": "sandbox"});
    let (s, v) = srv.call("PATCH", "/v1/connections/m3", Some(&bad));
    assert!(
        s == 400 || s == 422,
        "an unknown isolation is refused: {s} {v}"
    );
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "m3"})));
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run(v["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["records"].as_u64(),
        Some(customers_expected() as u64),
        "{run}"
    );
    let reads = ionport_tests::finished_reads(&srv.output());
    assert_eq!(
        reads,
        vec![("customers".to_string(), customers_expected() as u64)]
    );
}
