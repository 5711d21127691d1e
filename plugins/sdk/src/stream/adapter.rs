//! A [`StreamConnector`] as a [`Connector`]: tasks, form, check, discover and read from
//! the declared streams.

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{RestStream, read};
use crate::check::{failed, passed, unanswered};
use crate::decode::{body_head, describe};
use crate::form::{self, IonApiCredentials};
use crate::{
    CheckReport, ConnectionConfig, Connector, ConnectorError, ConnectorInfo, DiscoveredStream,
    Discovery, GatewayRequest, Host, ReadRequest, ReadSummary, SyncMode, TaskSpec,
};

/// The ION API Gateway's own "who am I": the default check request, answered for any
/// service account that may call the gateway.
pub const USERS_ME: &str = "ifsservice/usermgt/v2/users/me";

/// A connector made of declared streams. Export it with
/// `export_connector!(Streams(MyConnector))`.
pub trait StreamConnector: Send + Sync + 'static {
    /// The connection's settings: the form is the ION API credentials block plus these
    /// fields; every call gets them parsed, or fails naming what is wrong.
    type Settings: DeserializeOwned + JsonSchema + Send + Sync;

    /// Who the connector is.
    fn info(&self) -> ConnectorInfo;

    /// The streams, each boxed: `vec![Box::new(Customers), Box::new(Orders)]`.
    fn streams(&self) -> Vec<Box<dyn AnyStream<Self::Settings>>>;

    /// The request that tests a connection: a `2xx` answer means it works. The default
    /// asks the gateway who the service account is ([`USERS_ME`]); ask something of the
    /// product instead to test the rights to it too.
    fn check_request(&self, _settings: &Self::Settings) -> GatewayRequest {
        GatewayRequest::get(USERS_ME)
    }
}

/// A [`RestStream`] with its types erased, so that streams of different record types
/// live in one list.
pub trait AnyStream<S>: Send + Sync {
    /// The stream's task spec.
    fn spec(&self) -> TaskSpec;
    /// Reads the stream ([`read`]).
    fn read_stream(
        &self,
        host: &Host,
        settings: &S,
        request: &ReadRequest,
    ) -> Result<ReadSummary, ConnectorError>;
}

impl<S: Sync, R: RestStream<S>> AnyStream<S> for R {
    fn spec(&self) -> TaskSpec {
        let mut sync_modes = vec![SyncMode::FullRefresh];
        if self.cursor().is_some() {
            sync_modes.push(SyncMode::Incremental);
        }
        TaskSpec {
            name: self.name().into(),
            description: self.description().into(),
            record_schema: super::read::declare_partitionable(
                self.record_schema(),
                self.paging() == super::Paging::Offset,
            ),
            primary_key: self.primary_key(),
            cursor_field: self.cursor().map(str::to_string),
            sync_modes,
            requests_per_1000_records: Some(1000.0 / f64::from(self.page_size().max(1))),
        }
    }

    fn read_stream(
        &self,
        host: &Host,
        settings: &S,
        request: &ReadRequest,
    ) -> Result<ReadSummary, ConnectorError> {
        read(self, host, settings, request)
    }
}

/// The [`Connector`] of a [`StreamConnector`].
#[derive(Debug, Default)]
pub struct Streams<C>(pub C);

/// The connection form: the credentials block and the settings' fields beside it.
#[derive(JsonSchema)]
#[allow(dead_code)] // a schema only: never built
struct Form<S> {
    credentials: IonApiCredentials,
    #[serde(flatten)]
    settings: S,
}

impl<C: StreamConnector> Streams<C> {
    fn settings(&self, connection: &ConnectionConfig) -> Result<C::Settings, ConnectorError> {
        C::Settings::deserialize(&connection.settings).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "{}: the connection's settings are not valid: {e} (expected the fields of the \
                 connection form)",
                self.0.info().id
            ))
        })
    }
}

impl<C: StreamConnector> Connector for Streams<C> {
    fn info(&self) -> ConnectorInfo {
        self.0.info()
    }

    fn connection_form(&self) -> Value {
        let mut schema = form::form_schema::<Form<C::Settings>>();
        if let Value::Object(root) = &mut schema {
            root.insert(
                "title".into(),
                format!("{} connection", self.0.info().name).into(),
            );
            // As `deny_unknown_fields` would say, which serde cannot with a flattened part.
            root.insert("additionalProperties".into(), false.into());
        }
        schema
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        self.0.streams().iter().map(|s| s.spec()).collect()
    }

    fn check(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<CheckReport, ConnectorError> {
        let settings = match self.settings(connection) {
            Ok(s) => s,
            Err(e) => return Ok(failed("settings", e.message())),
        };
        let request = self.0.check_request(&settings);
        match host.gateway(&request) {
            Err(e) => unanswered(e),
            Ok(resp) if resp.is_success() => Ok(passed(
                format!(
                    "connected: {} answered HTTP {}",
                    describe(&request),
                    resp.status
                ),
                Value::Null,
            )),
            Ok(resp) => Ok(failed(
                "rights",
                format!(
                    "{} answered HTTP {}: {}",
                    describe(&request),
                    resp.status,
                    body_head(&resp)
                ),
            )),
        }
    }

    fn discover(
        &self,
        _host: &Host,
        _connection: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        let streams = self
            .tasks()
            .into_iter()
            .map(|spec| DiscoveredStream {
                spec,
                predefined: true,
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
        let settings = self.settings(&request.connection)?;
        let streams = self.0.streams();
        let stream = streams
            .iter()
            .find(|s| s.spec().name == request.task)
            .ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "{} has no stream named '{}'",
                    self.0.info().id,
                    request.task
                ))
            })?;
        stream.read_stream(host, &settings, request)
    }
}
