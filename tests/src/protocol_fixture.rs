//! What the Airbyte and Singer tests share: an emulator whose secrets are canaries, a
//! config file per connector, the `ionport` binary to run, and the native read of a
//! stream (in process, through core) that the protocol paths are measured against.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ionport_core::host::HostCallbacks;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode, TaskSpec};
use serde_json::{Value, json};

use crate::emulated::Emulated;

/// The client secret the emulator accepts; must never appear in any output.
pub const CANARY_CLIENT_SECRET: &str = "CANARY-protocol-client-secret-71d2";
/// The service account's password; must never appear in any output.
pub const CANARY_PASSWORD: &str = "CANARY-protocol-password-a94e";

/// The shipped connectors: id, plugin crate, the settings of their form besides the
/// credentials.
pub const CONNECTORS: [(&str, &str, &str); 3] = [
    ("infor-m3", "ionport_connector_m3", r#"{"company": 100}"#),
    ("infor-ln", "ionport_connector_ln", r#"{"company": 100}"#),
    (
        "infor-datalake",
        "ionport_connector_datalake",
        r#"{"query_timeout_secs": 60}"#,
    ),
];

/// An emulator (small, quick Compass jobs, canary secrets) and a scratch directory.
#[derive(Debug)]
pub struct Fixture {
    /// The emulator.
    pub emu: Emulated,
    /// Config, catalog, state and output files.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts the emulator with `scale` M3 customers.
    pub fn start(scale: u64) -> Self {
        let emu = Emulated::start(EmulatorConfig {
            scale,
            job_run_time: Duration::from_millis(50),
            credentials: EmulatorCredentials {
                client_secret: CANARY_CLIENT_SECRET.into(),
                sask: CANARY_PASSWORD.into(),
                ..EmulatorCredentials::default()
            },
            ..EmulatorConfig::default()
        });
        Self {
            emu,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The connection form's credentials block for the emulator.
    pub fn credentials(&self) -> Value {
        crate::form_credentials(&self.emu.emu.ionapi_json())
    }

    /// The settings (no credentials) of `connector`'s config.
    pub fn settings(connector: &str) -> Value {
        CONNECTORS
            .iter()
            .find(|c| c.0 == connector)
            .and_then(|c| serde_json::from_str(c.2).ok())
            .unwrap_or_else(|| json!({}))
    }

    /// Writes `connector`'s config file (form values with the credentials) and returns
    /// its path; `edit` may change the values first.
    pub fn config_with(&self, connector: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut values = Self::settings(connector);
        values["credentials"] = self.credentials();
        edit(&mut values);
        let path = self.dir.path().join(format!("{connector}.config.json"));
        std::fs::write(&path, values.to_string()).expect("the config is written");
        path
    }

    /// [`Self::config_with`] unchanged.
    pub fn config(&self, connector: &str) -> PathBuf {
        self.config_with(connector, |_| {})
    }

    /// Writes `value` as JSON to `name` in the scratch directory.
    pub fn write(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, value.to_string()).expect("the file is written");
        path
    }

    /// Runs `ionport` with `args` (plugins from the build, a private home).
    pub fn ionport(&self, args: &[&std::ffi::OsStr]) -> Output {
        Command::new(crate::ionport_bin())
            .args(args)
            .env("IONPORT_PLUGIN_PATH", crate::profile_dir())
            .env("IONPORT_HOME", self.dir.path().join("home"))
            .env_remove("IONPORT_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("ionport runs")
    }

    /// The number of records a native read of `stream` (core's host services, no
    /// protocol) produces.
    pub fn native_count(&self, connector: &str, stream: &str, mode: SyncMode) -> u64 {
        let plugin = plugin(connector);
        let host = self.emu.host();
        let req = ReadRequest {
            connection: ConnectionConfig {
                settings: Self::settings(connector),
            },
            task: stream.to_string(),
            sync_mode: mode,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: Value::Null,
            columns: None,
            include_deleted: false,
            partition: None,
        };
        plugin
            .read(host.clone() as Arc<dyn HostCallbacks>, &req)
            .unwrap_or_else(|e| panic!("native read of {connector}/{stream}: {e}"));
        host.take().records.len() as u64
    }
}

impl Fixture {
    /// The streams a native discovery (core's host, no protocol) finds available, under
    /// the connector's own names.
    pub fn native_streams(&self, connector: &str) -> Vec<TaskSpec> {
        let config = ConnectionConfig {
            settings: Self::settings(connector),
        };
        let discovery = plugin(connector)
            .discover(self.emu.host() as Arc<dyn HostCallbacks>, &config)
            .unwrap_or_else(|e| panic!("native discovery of {connector}: {e}"));
        discovery
            .streams
            .into_iter()
            .filter(|s| s.available)
            .map(|s| s.spec)
            .collect()
    }
}

/// The stream id the protocols give a connector's stream `name`: the separators of the
/// shipped connectors' names (`table:NAME`, `SERVICE/SET`) as `__`, so that a target can
/// name a file after it on every platform.
pub fn expected_stream_id(name: &str) -> String {
    name.replace([':', '/'], "__")
}

/// Panics unless `id` is a file name on Windows, macOS and Linux.
pub fn assert_file_name(id: &str) {
    assert!(
        !id.is_empty() && !id.contains(['<', '>', ':', '"', '/', '\\', '|', '?', '*']),
        "stream id {id:?} is no file name on Windows"
    );
}

/// The loaded plugin `connector`.
pub fn plugin(connector: &str) -> Arc<LoadedPlugin> {
    let krate = CONNECTORS
        .iter()
        .find(|c| c.0 == connector)
        .map(|c| c.1)
        .unwrap_or_else(|| panic!("no connector {connector}"));
    let mut reg = PluginRegistry::default();
    reg.load(&crate::plugin_lib(krate))
        .unwrap_or_else(|e| panic!("{connector} loads: {e}"))
        .clone()
}

/// Panics when `text` (named `what`) holds a canary secret.
pub fn assert_no_canary(text: &str, what: &str) {
    for canary in [CANARY_CLIENT_SECRET, CANARY_PASSWORD] {
        assert!(
            !text.contains(canary),
            "{what} contains the canary secret {canary}"
        );
    }
}
