//! Host services end to end: the `ionport vault` and `ionport check` commands against the
//! emulator, and a plugin's gateway calls through the host. Canary secrets are searched
//! in everything the CLI prints at trace level and in the vault file.
//!
//! Needs the `ionport` binary and the test plugin built into the same target directory:
//! `cargo build -p ionport -p ionport-test-plugin` first (`cargo xtask test` does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ionport_core::connection::{Cancel, Connection, ConnectionSettings, CredentialSource};
use ionport_core::gateway::GatewaySettings;
use ionport_core::plugin::PluginRegistry;
use ionport_core::read::{ReadHandler, read_task};
use ionport_emulator::{Emulator, EmulatorConfig, EmulatorCredentials};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use ionport_tests::{ionport_bin, plugin_lib};
use serde_json::{Value, json};

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("CANARY-{label}-{}-{nanos:x}", std::process::id())
}

/// Runs `ionport args` with `home` as IONPORT_HOME, trace logs, on a blocking thread
/// (the emulator serves on this process's runtime meanwhile). Returns (success, stdout +
/// stderr).
async fn ionport(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(ionport_bin());
    cmd.args(args)
        .env("IONPORT_HOME", home)
        .env("IONPORT_LOG", "trace")
        .env("IONPORT_PLUGIN_PATH", plugin_lib("ionport_test_plugin"))
        .env_remove("IONPORT_VAULT_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "$ ionport {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_and_check_commands_never_print_a_secret() {
    let client_secret = unique("cs");
    let sask = unique("sask");
    let emu = Emulator::start(EmulatorConfig {
        scale: 50,
        credentials: EmulatorCredentials {
            client_id: "IONPORT_DEMO~cli-client".into(),
            client_secret: client_secret.clone(),
            saak: "IONPORT_DEMO#cli-account".into(),
            sask: sask.clone(),
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("emu.ionapi");
    emu.write_ionapi(&file).unwrap();
    let file_s = file.to_str().unwrap();
    let wrong_cs = unique("wrong-cs");
    let wrong_file = dir.path().join("wrong.ionapi");
    let mut v = emu.ionapi_json();
    v["cs"] = wrong_cs.as_str().into();
    std::fs::write(&wrong_file, v.to_string()).unwrap();

    let mut all = String::new();
    let mut run = async |env: &[(&str, &str)], args: &[&str], expect_ok: bool| -> String {
        let (ok, text) = ionport(&home, env, args).await;
        assert_eq!(ok, expect_ok, "{text}");
        all.push_str(&text);
        text
    };

    let t = run(&[], &["vault", "import", file_s, "--name", "emu"], true).await;
    assert!(t.contains("stored 'emu'"), "{t}");
    let t = run(&[], &["vault", "import", file_s, "--name", "emu"], false).await;
    assert!(t.contains("exists already"), "{t}");
    let t = run(&[], &["vault", "list"], true).await;
    assert!(t.contains("emu") && t.contains("IONPORT_DEMO"), "{t}");
    run(&[], &["vault", "list", "--json"], true).await;
    let t = run(&[], &["vault", "show", "emu"], true).await;
    assert!(t.contains("client secret    ********"), "{t}");
    let t = run(&[], &["vault", "show", "emu", "--json"], true).await;
    assert!(t.contains("\"client_secret\": \"********\""), "{t}");

    let t = run(&[], &["check", "--vault", "emu"], true).await;
    assert!(
        t.contains("OK: connected as ionport service account (ionport.service@ionport_demo.invalid) on tenant IONPORT_DEMO"),
        "{t}"
    );
    let t = run(&[], &["check", "--ionapi", file_s, "--json"], true).await;
    assert!(t.contains("\"success\": true"), "{t}");
    let t = run(
        &[],
        &["check", "--ionapi", file_s, "--connector", "ionport-test"],
        true,
    )
    .await;
    assert!(t.contains("OK: the test plugin is always connected"), "{t}");
    let t = run(
        &[],
        &["check", "--ionapi", wrong_file.to_str().unwrap()],
        false,
    )
    .await;
    assert!(
        t.contains("FAILED (token)") && t.contains("client id or client secret"),
        "{t}"
    );
    let t = run(
        &[],
        &["check", "--ionapi", file_s, "--connector", "nope"],
        false,
    )
    .await;
    assert!(t.contains("no connector 'nope'"), "{t}");

    // The key file was made 0600 on first use; a wrong key is a clear error.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.join("vault.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let other_key = "A".repeat(43) + "=";
    let t = run(
        &[("IONPORT_VAULT_KEY", &other_key)],
        &["vault", "show", "emu"],
        false,
    )
    .await;
    assert!(
        t.contains("is not the key this vault was written with"),
        "{t}"
    );

    let vault_file = std::fs::read(home.join("vault.json")).unwrap();
    let t = run(&[], &["vault", "rm", "emu"], true).await;
    assert!(t.contains("removed 'emu'"), "{t}");
    run(&[], &["vault", "rm", "emu"], false).await;

    let c = emu.counters();
    // The two successful host checks fetched a token each (the test plugin's check makes
    // no gateway call, so it fetched none); the `--ionapi` one revoked its token at the
    // end, the `--vault` one left it in the vault for the next process.
    assert_eq!(c.token_requests.password, 3, "{c:?}");
    assert_eq!(
        c.revocations, 1,
        "only the .ionapi check revoked its token: {c:?}"
    );
    assert!(all.contains("TRACE"), "trace logs were on");
    let vault_text = String::from_utf8_lossy(&vault_file);
    for canary in [&client_secret, &sask, &wrong_cs] {
        assert!(
            !all.contains(canary.as_str()),
            "a canary secret is in the CLI output"
        );
        assert!(
            !vault_text.contains(canary.as_str()),
            "a canary secret is in the vault file"
        );
    }
    emu.shutdown().await;
}

#[derive(Default)]
struct Collect {
    records: Mutex<Vec<Value>>,
    checkpoints: Mutex<Vec<String>>,
}

impl ReadHandler for Collect {
    fn records(&self, _stream: &str, records: ionport_core::read::Records) -> Result<(), String> {
        let mut r = self.records.lock().unwrap();
        r.extend(records.to_maps().unwrap().into_iter().map(Value::Object));
        Ok(())
    }

    fn checkpoint(&self, _stream: &str, state: Value) -> Result<(), String> {
        self.checkpoints.lock().unwrap().push(state.to_string());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reaches_the_gateway_only_through_the_host() {
    let emu = Emulator::start(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emu.ionapi");
    emu.write_ionapi(&file).unwrap();
    let conn = Connection::open(
        CredentialSource::IonApiFile(file),
        ConnectionSettings {
            gateway: GatewaySettings {
                retry_min: Duration::from_millis(10),
                ..GatewaySettings::default()
            },
            ..ConnectionSettings::default()
        },
    )
    .unwrap();
    let reg = Arc::new(PluginRegistry::load_from(&[plugin_lib(
        "ionport_test_plugin",
    )]));
    assert_eq!(reg.plugins().len(), 1, "{:?}", reg.refused());

    let read = |path: &str| {
        let sink = Arc::new(Collect::default());
        let plugin = reg.plugins()[0].clone();
        let req = ReadRequest {
            connection: ConnectionConfig {
                settings: json!({}),
            },
            task: "gateway_echo".into(),
            sync_mode: SyncMode::FullRefresh,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: json!({ "path": path }),
            columns: None,
            include_deleted: false,
            partition: None,
        };
        let conn = &conn;
        async move {
            let r = read_task(&plugin, conn, req, sink.clone(), Cancel::default())
                .await
                .map(|o| o.summary);
            (r, sink)
        }
    };

    // Faults on the way are the host's business: the plugin sees a 200.
    reqwest::Client::new()
        .post(format!("{}/__emulator/faults", emu.base_url()))
        .json(&json!({"kind": "503", "count": 2, "api": "users"}))
        .send()
        .await
        .unwrap();
    let (r, sink) = read("ifsservice/usermgt/v2/users/me").await;
    assert_eq!(r.unwrap().records, 1);
    let rec = sink.records.lock().unwrap()[0].clone();
    assert_eq!(rec["status"], 200, "{rec}");
    assert!(
        rec["body"]
            .as_str()
            .unwrap()
            .contains("ionport service account"),
        "{rec}"
    );
    assert_eq!(sink.checkpoints.lock().unwrap().len(), 1);
    assert_eq!(conn.gateway().metrics().retries, 2);

    for bad in ["https://elsewhere.example/steal", "../OTHER/x", "%2e%2e/x"] {
        let (r, _) = read(bad).await;
        let e = r.unwrap_err().to_string();
        assert!(e.contains("refused"), "{bad}: {e}");
    }
    let c = emu.counters();
    assert_eq!(c.token_requests.password, 1);
    assert_eq!(c.requests.other, 0, "{c:?}");
    conn.shutdown().await.unwrap();
    assert_eq!(emu.counters().revocations, 1);
}
