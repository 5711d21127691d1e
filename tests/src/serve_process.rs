//! A running `ionport serve` for black-box tests: its address, its output captured, a
//! blocking client that keeps every response body (for canary checks).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The API key the test servers accept.
pub const TEST_KEY: &str = "test-key-serve-process-0123456789";

/// A running `ionport serve` with its home in `home`; killed on drop.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    output: Arc<Mutex<String>>,
    client: reqwest::blocking::Client,
    /// Every response body seen.
    pub bodies: Mutex<Vec<String>>,
}

fn capture(
    r: impl Read + Send + 'static,
    out: Arc<Mutex<String>>,
    first: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut first = first;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = first.take() {
                let _ = tx.send(line.clone());
            }
            if let Ok(mut o) = out.lock() {
                o.push_str(&line);
                o.push('\n');
            }
        }
    });
}

impl ServeProcess {
    /// Starts `ionport serve` with `extra` arguments, logging at `log` (e.g. `trace`).
    pub fn start(home: &Path, extra: &[&str], log: &str) -> Self {
        let mut child = Command::new(crate::ionport_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--api-key", TEST_KEY])
            .args(extra)
            .env("IONPORT_PLUGIN_PATH", crate::profile_dir())
            .env("IONPORT_HOME", home)
            .env("IONPORT_LOG", log)
            .env_remove("IONPORT_API_KEYS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ionport serve starts");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        capture(
            child.stdout.take().expect("stdout is piped"),
            output.clone(),
            Some(tx),
        );
        capture(
            child.stderr.take().expect("stderr is piped"),
            output.clone(),
            None,
        );
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "no listening line; output:\n{}",
                    output.lock().map(|o| o.clone()).unwrap_or_default()
                )
            });
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            base,
            output,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("a client"),
            bodies: Mutex::new(Vec::new()),
        }
    }

    /// A request with the test key; the status and the body (JSON, or a JSON string).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(TEST_KEY, &[], method, path, body)
    }

    /// A request with `key` and extra `headers`; the status and the body.
    pub fn call_as(
        &self,
        key: &str,
        headers: &[(&str, &str)],
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                method.parse().expect("a method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(key);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        if let Ok(mut b) = self.bodies.lock() {
            b.push(text.clone());
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Polls `GET /v1/runs/{id}` until the run has finished.
    pub fn wait_run(&self, id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (s, v) = self.call("GET", &format!("/v1/runs/{id}"), None);
            assert_eq!(s, 200, "{v}");
            if v["finished"].is_u64() {
                return v;
            }
            assert!(start.elapsed() < limit, "run {id} did not finish: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Every response body so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
