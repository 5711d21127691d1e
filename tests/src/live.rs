//! Reading tasks through core's own host (`ionport_core::read::read_task` over a real
//! `Connection`) against a real emulator: what the fault-matrix and Data Lake incremental
//! tests share.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::gateway::GatewaySettings;
use ionport_core::pipeline::Cancel;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_core::read::{FnHandler, ReadEvent, read_task};
use ionport_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use serde_json::{Map, Value};

use crate::plugin_lib;

/// The three shipped connectors, loaded.
pub fn registry() -> PluginRegistry {
    let libs: Vec<PathBuf> = [
        "ionport_connector_m3",
        "ionport_connector_ln",
        "ionport_connector_datalake",
    ]
    .iter()
    .map(|c| plugin_lib(c))
    .collect();
    PluginRegistry::load_from(&libs)
}

/// A plugin by id.
pub fn plugin(reg: &PluginRegistry, id: &str) -> Arc<LoadedPlugin> {
    reg.get(id)
        .unwrap_or_else(|| panic!("plugin {id} is loaded"))
        .clone()
}

/// A running emulator with its `.ionapi` file in a temporary directory.
#[allow(missing_debug_implementations)]
pub struct Live {
    /// The server.
    pub emu: RunningEmulator,
    /// Holds the `.ionapi` file.
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Live {
    /// Starts an emulator with `config`.
    pub async fn start(config: EmulatorConfig) -> Self {
        let emu = Emulator::start(config).await.expect("the emulator starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        emu.write_ionapi(dir.path().join("emu.ionapi"))
            .expect("the .ionapi file is written");
        Self {
            emu,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// A connection from the `.ionapi` file, with quick host retries (the tests wait for
    /// nothing but the faults they inject).
    pub fn connection(&self) -> Connection {
        let settings = ConnectionSettings {
            gateway: GatewaySettings {
                max_retries: 2,
                retry_min: Duration::from_millis(5),
                retry_max: Duration::from_millis(20),
                retry_total: Duration::from_secs(5),
                timeout: Duration::from_secs(20),
                rate_limit: None,
                ..GatewaySettings::default()
            },
            ..ConnectionSettings::default()
        };
        Connection::open(
            CredentialSource::IonApiFile(self.dir.path().join("emu.ionapi")),
            settings,
        )
        .expect("the connection opens")
    }

    /// A control request (`/__emulator/{what}`); the answer's JSON.
    pub async fn control(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let url = format!("{}/__emulator/{what}", self.emu.base_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the control endpoint answers");
        assert!(
            resp.status().is_success(),
            "control {what}: {}",
            resp.status()
        );
        resp.json().await.unwrap_or(Value::Null)
    }
}

/// What one read produced.
#[derive(Debug, Default)]
pub struct Got {
    /// Every record handed over, in order.
    pub records: Vec<Map<String, Value>>,
    /// The last checkpoint.
    pub state: Option<Value>,
    /// The plugin's log lines.
    pub logs: Vec<String>,
    /// The error, when the read failed: (kind, message).
    pub error: Option<(String, String)>,
}

/// Reads `task` of `plugin` once.
pub async fn read(
    plugin: &Arc<LoadedPlugin>,
    connection: &Connection,
    task: &str,
    settings: Value,
    mode: SyncMode,
    state: Option<Value>,
    page_size: u32,
) -> Got {
    let got = Arc::new(Mutex::new(Got::default()));
    let sink = got.clone();
    let handler = FnHandler::new(move |event: ReadEvent<'_>| {
        let mut g = sink.lock().map_err(|e| e.to_string())?;
        match event {
            ReadEvent::Records { records, .. } => g
                .records
                .extend(records.to_maps().map_err(|e| e.to_string())?),
            ReadEvent::Checkpoint { state, .. } => g.state = Some(state),
            ReadEvent::Log { message, .. } => g.logs.push(message.to_string()),
        }
        Ok(())
    });
    let request = ReadRequest {
        connection: ConnectionConfig { settings },
        task: task.into(),
        sync_mode: mode,
        state,
        page_size: Some(page_size),
        pages_in_flight: None,
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    };
    let result = read_task(
        plugin,
        connection,
        request,
        Arc::new(handler),
        Cancel::default(),
    )
    .await;
    let mut g = std::mem::take(&mut *got.lock().expect("not poisoned"));
    if let Err(e) = result {
        g.error = Some((e.kind().to_string(), e.to_string()));
    }
    g
}

/// The text of a record's fields `keys`, joined: its identity.
pub fn key_of(r: &Map<String, Value>, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| match r.get(*k) {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(v) => v.to_string(),
            None => "<missing>".into(),
        })
        .collect::<Vec<_>>()
        .join("|")
}
