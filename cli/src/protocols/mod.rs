//! The connector protocols of the field: a connector run as an Airbyte source
//! ([`airbyte`]) or as a Singer tap ([`singer`]).
//!
//! Both take the same `--config` file: the connector's connection form values as JSON
//! (what `ionport serve` takes in `POST /v1/connections`), checked by
//! [`FormValues::parse`]. The shared part lives here: loading the config, opening the
//! connection, listing the streams, and reading one stream through
//! [`ionport_core::read::read_task`]. Each protocol only shapes the messages.
//!
//! Stream ids: a connector's stream names as file names on every platform
//! ([`names::file_safe`], [`names::StreamIds`]), since targets name files after them.
//!
//! Secrets: the config's secret values are masked out of every message this module
//! builds ([`Session::scrub`]); records and states never hold them (connectors never see
//! a secret).

pub mod airbyte;
mod config;
pub mod names;
mod out;
pub mod schema;
pub mod singer;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::pipeline::Cancel;
use ionport_core::plugin::LoadedPlugin;
use ionport_core::read::{ReadHandler, ReadOutcome, read_task};
use ionport_core::scrub::Scrubber;
use ionport_plugin_abi::wire::{
    CheckReport, ConnectionConfig, DiscoveredStream, ReadRequest, SyncMode,
};
use serde_json::Value;

pub use config::{ConfigError, load_json};

/// A connector with a checked config: the connection is opened on demand (a `spec` needs
/// none), its token revoked when the session is shut down.
pub struct Session {
    /// The connector.
    pub plugin: Arc<LoadedPlugin>,
    /// The values a connector may see.
    settings: Value,
    /// The config's secrets, the credentials' and every token the connection saw, masked
    /// out of messages.
    scrubber: Scrubber,
    rt: tokio::runtime::Runtime,
    connection: Connection,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("plugin", &self.plugin.id())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Loads `config` (the connection form's values) for `plugin` and opens the
    /// connection. A config that does not fit the form is a [`ConfigError`].
    pub fn open(plugin: Arc<LoadedPlugin>, config: &Path) -> Result<Self, ConfigError> {
        let values = load_json(config, "config")?;
        let parsed = config::parse_values(&plugin, config, &values)?;
        let secrets = ionport_core::form_values::secret_values(plugin.connection_form(), &values);
        let connection = Connection::open(
            CredentialSource::Form(parsed.credentials),
            ConnectionSettings::default(),
        )
        .map_err(|e| ConfigError::Invalid {
            file: config.to_path_buf(),
            problems: vec![ionport_core::form_values::mask_secrets(
                &e.to_string(),
                &secrets,
            )],
        })?;
        let rt = tokio::runtime::Runtime::new().map_err(|e| ConfigError::Io {
            file: config.to_path_buf(),
            what: "the async runtime",
            error: e.to_string(),
        })?;
        let scrubber = connection.gateway().tokens().scrubber().clone();
        for s in &secrets {
            scrubber.add(s);
        }
        Ok(Self {
            plugin,
            settings: parsed.settings,
            scrubber,
            rt,
            connection,
        })
    }

    /// `text` with every secret of the config (in any encoding), every token of the
    /// connection and every secret-shaped value masked.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    fn config(&self) -> ConnectionConfig {
        ConnectionConfig {
            settings: self.settings.clone(),
        }
    }

    /// The connector's own connection test.
    pub fn check(&self) -> Result<CheckReport> {
        let host = Arc::new(self.connection.host(self.rt.handle().clone()));
        let config = self.config();
        let plugin = self.plugin.clone();
        let report = self
            .rt
            .block_on(self.rt.spawn_blocking(move || plugin.check(host, &config)))
            .map_err(|e| anyhow!("the check's thread failed: {e}"))?
            .map_err(|e| anyhow!("{}", self.scrub(&e.to_string())))?;
        Ok(CheckReport {
            message: self.scrub(&report.message),
            ..report
        })
    }

    /// The streams the tenant has, as the connector discovers them. A failure keeps its
    /// kind, so that bad credentials or settings are told from a failing system.
    pub fn discover(&self) -> Result<Vec<DiscoveredStream>, ReadFailure> {
        let host = Arc::new(self.connection.host(self.rt.handle().clone()));
        let config = self.config();
        let plugin = self.plugin.clone();
        let discovery = self
            .rt
            .block_on(
                self.rt
                    .spawn_blocking(move || plugin.discover(host, &config)),
            )
            .map_err(|e| ReadFailure {
                kind: ionport_plugin_abi::error_kind::HOST.to_string(),
                message: format!("discovery's thread failed: {e}"),
            })?
            .map_err(|e| ReadFailure {
                kind: e.kind().to_string(),
                message: self.scrub(&e.to_string()),
            })?;
        Ok(discovery.streams)
    }

    /// Reads `stream` into `handler`.
    pub fn read(
        &self,
        stream: &str,
        sync_mode: SyncMode,
        state: Option<Value>,
        columns: Option<&[String]>,
        handler: Arc<dyn ReadHandler>,
    ) -> Result<ReadOutcome, ReadFailure> {
        let request = ReadRequest {
            connection: self.config(),
            task: stream.to_string(),
            sync_mode,
            state,
            page_size: None,
            pages_in_flight: None,
            options: Value::Null,
            columns: None,
            include_deleted: false,
            partition: None,
        };
        let request = match columns {
            Some(wanted) => self.select(request, wanted)?,
            None => request,
        };
        self.rt
            .block_on(read_task(
                &self.plugin,
                &self.connection,
                request,
                handler,
                Cancel::default(),
            ))
            .map_err(|e| ReadFailure {
                kind: e.kind().to_string(),
                message: self.scrub(&e.to_string()),
            })
    }

    /// `request` asking the source for `wanted` only (the field selection of a catalog),
    /// through the host's one rule ([`ionport_core::read::with_columns`]: checked against
    /// the stream's schema, its key and cursor kept). A selection of every field asks for
    /// nothing special.
    fn select(&self, request: ReadRequest, wanted: &[String]) -> Result<ReadRequest, ReadFailure> {
        // Settings that reshape the predefined tasks (LN's `companies`) make `discover`'s
        // spec the one the catalog was built from.
        let reshaped = ionport_core::read::reshapes_streams(&self.plugin, &self.settings);
        let spec = match self.plugin.task(&request.task) {
            Some(spec) if !reshaped => spec.clone(),
            _ => self
                .discover()?
                .into_iter()
                .find(|d| d.spec.name == request.task)
                .map(|d| d.spec)
                .ok_or_else(|| ReadFailure {
                    kind: ionport_plugin_abi::error_kind::INVALID_INPUT.into(),
                    message: format!("the connector has no stream {}", request.task),
                })?,
        };
        let all = spec
            .record_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().all(|k| wanted.contains(k)))
            .unwrap_or(true);
        if all {
            return Ok(request);
        }
        ionport_core::read::with_columns(request, &spec, Some(wanted))
            .map(|(request, _)| request)
            .map_err(|e| ReadFailure {
                kind: ionport_plugin_abi::error_kind::INVALID_INPUT.into(),
                message: e.to_string(),
            })
    }

    /// Revokes the session's token.
    pub fn shutdown(&self) {
        if let Err(e) = self.rt.block_on(self.connection.shutdown()) {
            tracing::warn!(error = %self.scrub(&e.to_string()), "revoking the token failed");
        }
    }
}

/// A stream's read (or a discovery) that failed: the error kind (`auth`, `gateway`,
/// `settings`, ...) and the message, secrets masked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReadFailure {
    /// `ionport_plugin_abi::error_kind` of the failure.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl ReadFailure {
    /// Whether the user's configuration is at fault (credentials, settings, a stream the
    /// connector does not have), as opposed to the system (gateway, network, connector).
    pub fn is_config_error(&self) -> bool {
        use ionport_plugin_abi::error_kind::{AUTH, INVALID_INPUT, NOT_SUPPORTED};
        [AUTH, INVALID_INPUT, NOT_SUPPORTED].contains(&self.kind.as_str())
    }
}

/// Milliseconds since the epoch.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
