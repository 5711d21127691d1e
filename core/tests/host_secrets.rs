//! Canary secrets (client secret, service-account secret, refresh tokens) never appear in
//! a log line at trace level, an error message, a `Debug` output or the vault file.
//!
//! Its own test binary: it installs a global trace-level subscriber (tracing and `log`
//! records of every crate, the emulator's included) that writes into a buffer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::credentials::Credentials;
use ionport_core::gateway::GatewaySettings;
use ionport_core::token::{MemoryRefreshStore, TokenManager, TokenSettings};
use ionport_core::vault::{KeySource, Vault};
use ionport_emulator::{Emulator, EmulatorConfig, EmulatorCredentials};
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("CANARY-{label}-{}-{nanos:x}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_leak() {
    let logs = Buffer::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();
    tracing::trace!("trace logging is on");

    let client_secret = unique("client-secret");
    let sask = unique("sask");
    let planted_rt = unique("refresh-token");
    let emu = Emulator::start(EmulatorConfig {
        scale: 50,
        token_ttl: Duration::from_secs(2),
        credentials: EmulatorCredentials {
            client_id: "IONPORT_DEMO~canary-client".into(),
            client_secret: client_secret.clone(),
            saak: "IONPORT_DEMO#canary-account".into(),
            sask: sask.clone(),
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canary.ionapi");
    emu.write_ionapi(&file).unwrap();
    let vault = Arc::new(Vault::open(dir.path().join("home"), KeySource::KeyFile));
    vault.import_ionapi(&file, "canary", false).unwrap();
    // A dead refresh token: refused, then the password grant.
    vault
        .set_refresh_token("canary", Some(&SecretString::from(planted_rt.as_str())))
        .unwrap();

    let settings = ConnectionSettings {
        token: TokenSettings::default(),
        gateway: GatewaySettings {
            rate_limit: None,
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(50),
            ..GatewaySettings::default()
        },
    };
    let conn = Connection::open(
        CredentialSource::Vault {
            vault: Arc::clone(&vault),
            name: "canary".into(),
        },
        settings.clone(),
    )
    .unwrap();
    let mut outputs: Vec<String> = Vec::new();
    let mut issued_rts: Vec<String> = Vec::new();

    // Calls across several token lifetimes (rotation), with injected faults (retries).
    reqwest::Client::new()
        .post(format!("{}/__emulator/faults", emu.base_url()))
        .json(&serde_json::json!({"kind": "503", "rate": 0.2, "api": "users"}))
        .send()
        .await
        .unwrap();
    let stop = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < stop {
        let me = conn.whoami().await.unwrap();
        outputs.push(format!("{me:?}"));
        if let Some(rt) = vault.get("canary").unwrap().refresh_token {
            let rt = rt.expose_secret().to_string();
            if !issued_rts.contains(&rt) {
                issued_rts.push(rt);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        issued_rts.len() >= 2,
        "rotation happened: {}",
        issued_rts.len()
    );
    let c = emu.counters();
    assert_eq!(c.token_errors.get("invalid_grant"), Some(&1), "{c:?}");

    // Debug output of everything that holds a secret.
    let entry = vault.get("canary").unwrap();
    let token = conn.tokens().access_token().await.unwrap();
    outputs.push(format!("{entry:?}"));
    outputs.push(format!("{:?}", entry.credentials));
    outputs.push(format!("{:#?}", entry.credentials));
    outputs.push(format!("{conn:?}"));
    outputs.push(format!("{:?}", conn.tokens()));
    outputs.push(format!("{token:?}"));
    outputs.push(format!("{:?}", conn.gateway()));
    outputs.push(format!(
        "{:?}",
        conn.host(tokio::runtime::Handle::current())
    ));
    outputs.push(format!("{:?}", vault.list().unwrap()));
    outputs.push(format!(
        "{:?}",
        KeySource::Text(SecretString::from(client_secret.as_str()))
    ));
    outputs.push(format!("{:?}", SecretString::from(sask.as_str())));

    // Errors: a wrong client secret and a wrong service-account secret, both canaries.
    let wrong_cs = unique("wrong-client-secret");
    let wrong_sask = unique("wrong-sask");
    for (key, value) in [("cs", &wrong_cs), ("sask", &wrong_sask)] {
        let mut v = emu.ionapi_json();
        v[key] = value.as_str().into();
        let creds = Credentials::from_ionapi_str(&v.to_string(), "wrong.ionapi").unwrap();
        outputs.push(format!("{creds:?}"));
        let tm = TokenManager::new(
            Arc::new(creds),
            TokenSettings::default(),
            Arc::new(MemoryRefreshStore::default()),
            None,
        );
        let e = tm.access_token().await.unwrap_err();
        outputs.push(e.to_string());
        outputs.push(format!("{e:?}"));
        let c2 = Connection::open(
            CredentialSource::Credentials(Arc::new(
                Credentials::from_ionapi_str(&v.to_string(), "wrong.ionapi").unwrap(),
            )),
            settings.clone(),
        )
        .unwrap();
        let e = c2.whoami().await.unwrap_err();
        outputs.push(e.to_string());
        outputs.push(format!("{e:?}"));
    }
    // Invalid files: the secret's value never appears in the error.
    let mut v = emu.ionapi_json();
    v["cs"] = serde_json::json!([client_secret]);
    let e = Credentials::from_ionapi_str(&v.to_string(), "bad.ionapi").unwrap_err();
    outputs.push(e.to_string());
    let mut v = emu.ionapi_json();
    v["pu"] = 5.into();
    outputs.push(
        Credentials::from_ionapi_str(&v.to_string(), "bad.ionapi")
            .unwrap_err()
            .to_string(),
    );
    let text = format!("{{\"cs\": \"{client_secret}\", \"ti\": ");
    outputs.push(
        Credentials::from_ionapi_str(&text, "cut.ionapi")
            .unwrap_err()
            .to_string(),
    );

    // Shutdown: the vault's tokens are shared, so they stay; an .ionapi file's are revoked.
    assert!(!conn.shutdown().await.unwrap());
    let e = conn.whoami().await.unwrap_err();
    outputs.push(e.to_string());
    let from_file =
        Connection::open(CredentialSource::IonApiFile(file.clone()), settings.clone()).unwrap();
    from_file.whoami().await.unwrap();
    let file_token = from_file.tokens().access_token().await.unwrap();
    assert!(from_file.shutdown().await.unwrap());
    emu.shutdown().await;

    let mut canaries = vec![
        client_secret.clone(),
        sask.clone(),
        planted_rt.clone(),
        wrong_cs,
        wrong_sask,
    ];
    canaries.extend(issued_rts.iter().cloned());
    // The access tokens: the vault's is stored there (encrypted), the file's was revoked.
    canaries.push(token.secret().expose_secret().to_string());
    canaries.push(file_token.secret().expose_secret().to_string());
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("TRACE"), "trace-level lines were captured");
    assert!(
        logs.lines().count() > 100,
        "{} log lines",
        logs.lines().count()
    );
    let vault_file = std::fs::read(vault.path()).unwrap();
    let vault_text = String::from_utf8_lossy(&vault_file);
    for c in &canaries {
        assert!(!logs.contains(c.as_str()), "a canary secret is in the logs");
        assert!(
            !vault_text.contains(c.as_str()),
            "a canary secret is in the vault file"
        );
        for o in &outputs {
            assert!(
                !o.contains(c.as_str()),
                "a canary secret is in an output: {o}"
            );
        }
    }
    for target in ["ionport_core", "reqwest", "hyper", "ionport_emulator"] {
        eprintln!(
            "{target}: {} lines",
            logs.lines().filter(|l| l.contains(target)).count()
        );
    }
    eprintln!(
        "searched {} canaries in {} log lines, {} outputs and the vault file",
        canaries.len(),
        logs.lines().count(),
        outputs.len()
    );
}
