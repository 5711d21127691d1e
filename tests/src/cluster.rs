#![allow(clippy::unwrap_used)]
//! Real `ionport worker` processes on the machine's Postgres as coordinator, for the
//! cluster tests: each test's coordinator schema of its own, dropped at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::destinations::{pg_client, pg_url};
use crate::{ionport_bin, profile_dir};

/// One test's cluster: its coordinator schema, its workers, their logs.
#[derive(Debug)]
pub struct Cluster {
    /// The test's directory: worker logs `w<N>.log`, the default home `home`.
    pub dir: PathBuf,
    /// The coordinator schema.
    pub schema: String,
    /// Workers' `--lease`.
    pub lease: &'static str,
    /// Running workers by id.
    pub workers: BTreeMap<String, Child>,
    /// Workers started so far (`w1`, `w2`, ...).
    pub started: usize,
    /// The workers' IONPORT_LOG.
    pub log_filter: &'static str,
}

impl Cluster {
    pub fn new(dir: &Path, schema: &str, lease: &'static str) -> Self {
        pg_client()
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .unwrap();
        Cluster {
            dir: dir.to_path_buf(),
            schema: schema.into(),
            lease,
            workers: BTreeMap::new(),
            started: 0,
            log_filter: "ionport::cluster=info,ionport::read=debug",
        }
    }

    pub fn ionport(&self) -> Command {
        let mut cmd = Command::new(ionport_bin());
        cmd.env("IONPORT_PLUGIN_PATH", profile_dir())
            .env("IONPORT_HOME", self.dir.join("home"))
            .env("IONPORT_COORDINATOR", pg_url())
            .env("IONPORT_COORDINATOR_SCHEMA", &self.schema)
            .env_remove("IONPORT_LOG");
        cmd
    }

    pub fn submit(&self, file: &Path, now: bool) {
        let mut cmd = self.ionport();
        cmd.args(["cluster", "submit"]).arg(file);
        if now {
            cmd.arg("--now");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", crate::output_text(&out));
    }

    /// Starts worker `w<N>`, its log in the test's directory.
    pub fn start_worker(&mut self) -> String {
        let home = self.dir.join("home");
        self.start_worker_in(&home)
    }

    /// Starts worker `w<N>` with `home` as its IONPORT_HOME (its machine's vault and usage).
    pub fn start_worker_in(&mut self, home: &Path) -> String {
        self.started += 1;
        let id = format!("w{}", self.started);
        let log = std::fs::File::create(self.dir.join(format!("{id}.log"))).unwrap();
        let child = self
            .ionport()
            .env("IONPORT_HOME", home)
            .args(["worker", "--id", &id, "--slots", "1", "--poll", "200ms"])
            .args(["--lease", self.lease])
            .env("IONPORT_LOG", self.log_filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.insert(id.clone(), child);
        id
    }

    pub fn status(&self) -> Value {
        let out = self
            .ionport()
            .args(["cluster", "status", "--json", "--recent", "1000"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::output_text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// SIGTERM to every worker, then waits for each to exit (they hand their units back).
    pub fn stop_all(&mut self) {
        for child in self.workers.values() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        for (id, mut child) in std::mem::take(&mut self.workers) {
            let status = child.wait().unwrap();
            assert!(status.success(), "worker {id} stops cleanly: {status}");
        }
    }

    /// SIGTERM to one worker; waits for it to exit.
    pub fn stop(&mut self, id: &str) {
        let mut child = self.workers.remove(id).unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "worker {id} stops cleanly: {status}");
    }

    /// Every worker's log, joined.
    pub fn logs(&self) -> String {
        (1..=self.started)
            .map(|n| std::fs::read_to_string(self.dir.join(format!("w{n}.log"))).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `done` holds for the status, or panics after `within`.
    pub fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let st = self.status();
            if done(&st) {
                return st;
            }
            assert!(
                start.elapsed() < within,
                "{what}: not reached; status: {st:#}\nlogs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.workers.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(mut c) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ));
        }
    }
}

/// The `infor-ionapi` streams manifest of one stream, `widgets`: the emulator's generic
/// ION API paged by offset (`GENERIC/v1/widgets/offset`), which the SDK reads in
/// partitions. Its records are the emulator's documented widget formula: `W{i:06}` for `i`
/// in `1..=scale`.
pub const WIDGETS_MANIFEST: &str = r#"
[[streams]]
name = "widgets"
description = "Widgets, by offset."
path = "GENERIC/v1/widgets/offset"
records = "/value"
paging = { style = "offset", offset_param = "offset", size_param = "limit" }
primary_key = ["id"]
cursor = { field = "updated", param = "since" }
schema = { id = "string", name = "string", amount = "number", updated = "string" }
"#;

/// A pipeline file `p_widgets` reading [`WIDGETS_MANIFEST`] in full, in `partitions`, pages
/// of `page`, one page in flight, into `destination` (an inline TOML table), through
/// connection `c` to the emulator of `ionapi`. Writes the manifest beside it.
pub fn widgets_pipeline(
    dir: &Path,
    ionapi: &Path,
    destination: &str,
    partitions: u32,
    page: u32,
) -> PathBuf {
    let manifest = dir.join("widgets.toml");
    std::fs::write(&manifest, WIDGETS_MANIFEST).unwrap();
    let text = format!(
        r#"
[environments.env_widgets]
destination = {destination}

[connections.c]
connector = "infor-ionapi"
credentials = {{ ionapi = "{ionapi}" }}
settings = {{ manifest = "{manifest}" }}
quota = "none"

[pipelines.p_widgets]
connection = "c"
environment = "env_widgets"
tasks = [{{ name = "widgets", partitions = {partitions} }}]
sync_mode = "full_refresh"
page_size = {page}
pages_in_flight = 1
"#,
        ionapi = ionapi.display(),
        manifest = manifest.display(),
    );
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The offsets of the widget pages the emulator served (its own request log), in order.
pub fn widget_offsets(emu: &crate::emulated::Emulated) -> Vec<u64> {
    emu.control("GET", "requests", None)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .contains("GENERIC/v1/widgets/offset")
        })
        .map(|r| {
            let query: Vec<(String, String)> = serde_json::from_value(r["query"].clone()).unwrap();
            query
                .iter()
                .find(|(k, _)| k == "offset")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0)
        })
        .collect()
}
