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
