#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::gateway::GatewaySettings;
use ionport_core::token::TokenSettings;
use ionport_emulator::{Counters, Emulator, EmulatorConfig, RunningEmulator};

/// An emulator with small data.
pub async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        scale: 50,
        ..config
    })
    .await
    .expect("the emulator starts")
}

/// Writes the emulator's `.ionapi` file into `dir`.
pub fn ionapi(emu: &RunningEmulator, dir: &tempfile::TempDir) -> PathBuf {
    let p = dir.path().join("emu.ionapi");
    emu.write_ionapi(&p).unwrap();
    p
}

/// Fast settings: no client-side rate limit, short backoffs.
pub fn fast_settings() -> ConnectionSettings {
    ConnectionSettings {
        token: TokenSettings::default(),
        gateway: GatewaySettings {
            rate_limit: None,
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            retry_total: Duration::from_secs(20),
            concurrency: 64,
            ..GatewaySettings::default()
        },
    }
}

/// A connection to `emu` from its `.ionapi` file.
pub fn connect(
    emu: &RunningEmulator,
    dir: &tempfile::TempDir,
    settings: ConnectionSettings,
) -> Arc<Connection> {
    Arc::new(Connection::open(CredentialSource::IonApiFile(ionapi(emu, dir)), settings).unwrap())
}

/// The emulator's counters through its control endpoint (over HTTP, like any client).
pub async fn counters(emu: &RunningEmulator) -> Counters {
    reqwest::get(format!("{}/__emulator/counters", emu.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Adds fault rules through the control endpoint.
pub async fn add_faults(emu: &RunningEmulator, rules: serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/__emulator/faults", emu.base_url()))
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
}

pub async fn clear_faults(emu: &RunningEmulator) {
    reqwest::Client::new()
        .delete(format!("{}/__emulator/faults", emu.base_url()))
        .send()
        .await
        .unwrap();
}
