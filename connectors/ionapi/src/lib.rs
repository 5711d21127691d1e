//! The declarative ION API connector (`infor-ionapi`): the streams of any ION API, declared
//! in a TOML manifest (docs/ionapi-manifest.md) and read on the SDK's stream API.
//!
//! The connection names its manifest by path; every call reads and checks it, so a broken
//! manifest is refused at `check`, `discover` and `read` with its `file:line:column`. The
//! connector's own tasks are the built-in streams (`builtin.toml`); a connection's
//! streams are offered by `discover` and read by name.

pub mod declared;
pub mod manifest;

use ionport_plugin_sdk::check::{failed, passed};
use ionport_plugin_sdk::prelude::*;
use ionport_plugin_sdk::stream::USERS_ME;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::declared::Declared;

/// The connection's settings; the form adds the ION API credentials block.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The streams manifest: the path of a TOML file (relative paths from the host's
    /// working directory).
    #[schemars(title = "Streams manifest", example = "manifests/csi-items.toml")]
    pub manifest: String,
}

/// The connection form: the credentials block and the settings beside it.
#[derive(JsonSchema)]
#[allow(dead_code)] // a schema only: never built
struct Form {
    credentials: IonApiCredentials,
    #[serde(flatten)]
    settings: Settings,
}

const BUILTIN: &str = include_str!("builtin.toml");

/// The built-in streams.
fn builtin() -> Vec<Declared> {
    // The built-in manifest is checked by this crate's tests; were it broken, the
    // connector would offer no built-in stream rather than panic across the ABI.
    manifest::parse("builtin.toml", BUILTIN)
        .map(|m| {
            m.streams
                .into_iter()
                .map(|s| Declared(s.into_inner()))
                .collect()
        })
        .unwrap_or_default()
}

/// The declarative ION API connector.
#[derive(Debug, Default)]
pub struct IonApi;

impl IonApi {
    fn settings(connection: &ConnectionConfig) -> Result<Settings, ConnectorError> {
        Settings::deserialize(&connection.settings).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "infor-ionapi: the connection's settings are not valid: {e} (expected \
                 `manifest`, the path of a streams manifest)"
            ))
        })
    }

    /// The connection's streams: the built-in ones, then its manifest's.
    fn streams(connection: &ConnectionConfig) -> Result<Vec<Declared>, ConnectorError> {
        let settings = Self::settings(connection)?;
        let declared = manifest::load(&settings.manifest)?;
        let mut streams = builtin();
        for s in declared.streams {
            let s = s.into_inner();
            if streams.iter().any(|b| b.0.name == s.name) {
                return Err(ConnectorError::invalid_input(format!(
                    "{}: stream '{}' is a built-in stream of infor-ionapi; choose another name",
                    settings.manifest, s.name
                )));
            }
            streams.push(Declared(s));
        }
        Ok(streams)
    }
}

fn spec(stream: &Declared) -> TaskSpec {
    AnyStream::<()>::spec(stream)
}

impl Connector for IonApi {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "infor-ionapi".into(),
            name: "Infor ION API (declarative)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Any ION API through the Infor ION API Gateway: streams declared in \
                          a TOML manifest (path, query, records pointer, paging by page, \
                          offset, next link or key, primary key, cursor)."
                .into(),
        }
    }

    fn connection_form(&self) -> Value {
        let mut schema = form::form_schema::<Form>();
        if let Value::Object(root) = &mut schema {
            root.insert("title".into(), "Infor ION API connection".into());
            root.insert("additionalProperties".into(), false.into());
        }
        schema
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        builtin().iter().map(spec).collect()
    }

    fn accepts_stream(&self, name: &str) -> bool {
        is_stream_name(name)
    }

    fn stream_names(&self) -> Option<StreamNames> {
        Some(StreamNames {
            pattern: "^[a-z][a-z0-9_]*$".into(),
            form: "the name of a stream of the connection's manifest (e.g. items)".into(),
        })
    }

    fn check(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<CheckReport, ConnectorError> {
        if let Err(e) = Self::streams(connection) {
            return Ok(failed("settings", e.message()));
        }
        let request = GatewayRequest::get(USERS_ME);
        match host.gateway(&request) {
            Err(e) if e.is_cancelled() => Err(e),
            Err(e) => Ok(failed("connection", e.message())),
            Ok(resp) if resp.is_success() => Ok(passed(
                format!("connected: {USERS_ME} answered HTTP {}", resp.status),
                Value::Null,
            )),
            Ok(resp) => Ok(failed(
                "rights",
                format!("{USERS_ME} answered HTTP {}", resp.status),
            )),
        }
    }

    fn discover(
        &self,
        _host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        let streams = Self::streams(connection)?
            .iter()
            .map(|s| DiscoveredStream {
                spec: spec(s),
                predefined: builtin().iter().any(|b| b.0.name == s.0.name),
                available: true,
                note: None,
            })
            .collect();
        Ok(Discovery {
            streams,
            details: Value::Null,
        })
    }

    fn read(&self, host: &Host, request: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
        let streams = Self::streams(&request.connection)?;
        let stream = streams
            .iter()
            .find(|s| s.0.name == request.task)
            .ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "infor-ionapi: the manifest declares no stream named '{}' (it declares {})",
                    request.task,
                    streams
                        .iter()
                        .map(|s| s.0.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        ionport_plugin_sdk::stream::read(stream, host, &(), request)
    }
}

fn is_stream_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

export_connector!(IonApi);

#[cfg(test)]
mod tests;
