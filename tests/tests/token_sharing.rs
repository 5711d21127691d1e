//! Tokens shared across real processes through the vault: `ionport check --vault NAME`
//! processes against an emulator process, grants counted by the emulator.
//!
//! Needs the `ionport` binary built into the same target directory: `cargo build -p
//! ionport` first (`cargo xtask test` builds the workspace).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ionport_tests::output_text;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ionport_core::vault::{KeySource, Vault};
use ionport_emulator::Counters;
use ionport_tests::ionport_bin;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// An `ionport emulator` process; killed when dropped.
struct EmulatorProcess {
    child: Child,
    base_url: String,
    ionapi: PathBuf,
}

impl EmulatorProcess {
    fn start(dir: &Path, token_ttl: &str) -> Self {
        let ionapi = dir.join("emu.ionapi");
        let mut child = Command::new(ionport_bin())
            .args(["emulator", "--scale", "10", "--token-ttl", token_ttl])
            .arg("--write-ionapi")
            .arg(&ionapi)
            .env_remove("IONPORT_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base_url = lines.next().unwrap().unwrap();
        // The .ionapi file is written after the URL line.
        let wrote = lines.next().unwrap().unwrap();
        assert!(wrote.starts_with("wrote "), "{wrote}");
        // Keep reading: a closed pipe would make its next print fail.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            base_url,
            ionapi,
        }
    }

    fn counters(&self) -> Counters {
        reqwest::blocking::get(format!("{}/__emulator/counters", self.base_url))
            .unwrap()
            .json()
            .unwrap()
    }

    fn faults(&self, method: &str, rules: Option<Value>) -> Value {
        let c = reqwest::blocking::Client::new();
        let url = format!("{}/__emulator/faults", self.base_url);
        let req = match method {
            "POST" => c.post(url).json(&rules.unwrap_or(Value::Null)),
            "DELETE" => c.delete(url),
            _ => c.get(url),
        };
        let resp = req.send().unwrap();
        assert!(resp.status().is_success());
        resp.json().unwrap_or(Value::Null)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ionport` with `home` as IONPORT_HOME and no plugins.
fn ionport(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ionport_bin());
    cmd.args(args)
        .env("IONPORT_HOME", home)
        .env("IONPORT_PLUGIN_PATH", home.join("no-plugins"))
        .env("IONPORT_LOG", "debug")
        .env_remove("IONPORT_VAULT_KEY");
    cmd
}

/// A home with the emulator's credentials imported as vault entry `emu`.
fn home_with_entry(emu: &EmulatorProcess, dir: &Path) -> PathBuf {
    let home = dir.join("home");
    let ionapi = emu.ionapi.to_str().unwrap();
    let out = ionport(&home, &["vault", "import", ionapi, "--name", "emu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    home
}

/// Starts `n` `ionport check --vault emu` at once and waits for all; returns their output.
fn checks_at_once(home: &Path, n: usize) -> Vec<String> {
    let children: Vec<Child> = (0..n)
        .map(|_| {
            ionport(home, &["check", "--vault", "emu"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let t = output_text(&out);
            assert!(out.status.success(), "{t}");
            assert!(t.contains("OK: connected as"), "{t}");
            t
        })
        .collect()
}

#[test]
fn twenty_processes_on_a_cold_vault_authenticate_once_and_refresh_once() {
    let dir = tempfile::tempdir().unwrap();
    // Renewed at 9 s (a quarter of the lifetime before it expires).
    let emu = EmulatorProcess::start(dir.path(), "12s");
    let home = home_with_entry(&emu, dir.path());

    let mut outputs = checks_at_once(&home, 20);
    let first_done = Instant::now();
    let c = emu.counters();
    assert_eq!(
        c.token_requests.password, 1,
        "one grant for 20 processes: {c:?}"
    );
    assert_eq!(c.token_requests.refresh_token, 0, "{c:?}");
    assert_eq!(c.requests.users, 20, "{c:?}");
    assert_eq!(c.revocations, 0, "shared tokens are not revoked: {c:?}");

    // Later processes take the stored token: no token request at all.
    for _ in 0..3 {
        outputs.extend(checks_at_once(&home, 1));
    }
    let c = emu.counters();
    assert_eq!(
        (c.token_requests.password, c.token_requests.refresh_token),
        (1, 0),
        "{c:?}"
    );
    let vault = Vault::open(&home, KeySource::KeyFile);
    let stored = vault.tokens("emu").unwrap();
    let first_access = stored.access_token.unwrap().value;

    // Past the renewal point of that token (issued before `first_done`), 20 processes
    // at once renew it with one refresh grant, and nobody reuses a refresh token.
    std::thread::sleep(
        (first_done + Duration::from_millis(9500)).saturating_duration_since(Instant::now()),
    );
    outputs.extend(checks_at_once(&home, 20));
    let c = emu.counters();
    assert_eq!(c.token_requests.password, 1, "{c:?}");
    assert_eq!(c.token_requests.refresh_token, 1, "{c:?}");
    assert_eq!(c.refresh_token_reuse, 0, "{c:?}");
    assert_eq!(c.token_errors.get("invalid_grant"), None, "{c:?}");
    assert_eq!(c.requests.users, 43, "{c:?}");
    let stored = vault.tokens("emu").unwrap();
    let second_access = stored.access_token.unwrap().value;
    assert_ne!(second_access.expose_secret(), first_access.expose_secret());

    // The shared tokens are secrets: no process printed one, even at debug level.
    let refresh = stored.refresh_token.unwrap();
    let all = outputs.concat();
    assert!(all.contains("DEBUG"), "debug logs were on");
    for secret in [&first_access, &second_access, &refresh] {
        assert!(!all.contains(secret.expose_secret()), "a token was printed");
    }
    let file = std::fs::read_to_string(home.join("vault.json")).unwrap();
    assert!(!file.contains(second_access.expose_secret()));
}

#[test]
fn a_killed_lock_holder_leaves_no_lock_behind() {
    let dir = tempfile::tempdir().unwrap();
    let emu = EmulatorProcess::start(dir.path(), "7200");
    let home = home_with_entry(&emu, dir.path());
    let vault = Vault::open(&home, KeySource::KeyFile);

    // The first process's token request hangs at the authorization server.
    emu.faults(
        "POST",
        Some(
            json!({"kind": "slow", "delay_ms": 60_000, "count": 1, "api": "auth",
                     "path_contains": "token.oauth2"}),
        ),
    );
    let mut holder = ionport(&home, &["check", "--vault", "emu"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its request is sent only under the lock: once the fault fired, it holds it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while emu.counters().faults_injected == 0 {
        assert!(
            Instant::now() < deadline,
            "the first process sent no token request"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        vault.try_lock_tokens("emu").unwrap().is_none(),
        "the first process holds the token lock"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    // The OS released its lock; the lock file stays and means nothing.
    assert!(vault.token_lock_path("emu").is_file());
    drop(
        vault
            .try_lock_tokens("emu")
            .unwrap()
            .expect("the lock was released with the process"),
    );
    emu.faults("DELETE", None);
    let outputs = checks_at_once(&home, 3);
    assert_eq!(outputs.len(), 3);
    let c = emu.counters();
    assert_eq!(c.refresh_token_reuse, 0, "{c:?}");
    assert!(vault.tokens("emu").unwrap().access_token.is_some());
}
