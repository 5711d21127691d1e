//! The glue between a [`Connector`] and the ABI: the adapter, the panic guard and
//! [`export_connector!`](crate::export_connector).

use std::panic::{AssertUnwindSafe, catch_unwind};

use ionport_plugin_abi::abi_stable::prefix_type::PrefixTypeTrait;
use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
use ionport_plugin_abi::abi_stable::std_types::{RResult, RStr, RString};
use ionport_plugin_abi::wire::{ConnectionConfig, Manifest, ReadRequest};
use ionport_plugin_abi::{
    ABI_VERSION, FfiConnector, FfiConnector_TO, FfiConnectorBox, FfiHostArc, PluginError,
    PluginMod, PluginModRef, error_kind,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Connector, ConnectorError, Host};

/// Runs `f`, turning a panic into a [`PluginError`] of kind `panic` with its message.
/// A panic must never unwind across the ABI: that would abort the host.
pub(crate) fn guard<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, ConnectorError>,
) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-text payload".to_string());
            RResult::RErr(PluginError::new(
                error_kind::PANIC,
                format!("the connector panicked in {what}: {msg}"),
            ))
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<RString, ConnectorError> {
    serde_json::to_string(v)
        .map(RString::from)
        .map_err(|e| ConnectorError::connector(format!("encoding a result: {e}")))
}

fn from_json<T: DeserializeOwned>(what: &str, s: RStr<'_>) -> Result<T, ConnectorError> {
    serde_json::from_str(s.as_str())
        .map_err(|e| ConnectorError::invalid_input(format!("the host sent an invalid {what}: {e}")))
}

/// Builds the ABI manifest of `c`.
pub(crate) fn manifest_of<C: Connector>(c: &C) -> Manifest {
    let info = c.info();
    Manifest {
        id: info.id,
        name: info.name,
        version: info.version,
        abi_version: ABI_VERSION.to_string(),
        description: info.description,
        stream_names: c.stream_names(),
        requires: c.requires(),
    }
}

struct Adapter<C>(C);

impl<C: Connector> FfiConnector for Adapter<C> {
    fn manifest(&self) -> RResult<RString, PluginError> {
        guard("manifest", || to_json(&manifest_of(&self.0)))
    }

    fn connection_form(&self) -> RResult<RString, PluginError> {
        guard("connection_form", || to_json(&self.0.connection_form()))
    }

    fn tasks(&self) -> RResult<RString, PluginError> {
        guard("tasks", || to_json(&self.0.tasks()))
    }

    fn check(&self, host: FfiHostArc, connection: RStr<'_>) -> RResult<RString, PluginError> {
        guard("check", || {
            let conn: ConnectionConfig = from_json("connection", connection)?;
            to_json(&self.0.check(&Host::new(host), &conn)?)
        })
    }

    fn discover(&self, host: FfiHostArc, connection: RStr<'_>) -> RResult<RString, PluginError> {
        guard("discover", || {
            let conn: ConnectionConfig = from_json("connection", connection)?;
            to_json(&self.0.discover(&Host::new(host), &conn)?)
        })
    }

    fn read(&self, host: FfiHostArc, request: RStr<'_>) -> RResult<RString, PluginError> {
        guard("read", || {
            let req: ReadRequest = from_json("read request", request)?;
            if !self.0.tasks().iter().any(|t| t.name == req.task)
                && !self.0.accepts_stream(&req.task)
            {
                return Err(ConnectorError::invalid_input(format!(
                    "{} has no task named '{}'",
                    self.0.info().id,
                    req.task
                )));
            }
            to_json(&self.0.read(&Host::new(host), &req)?)
        })
    }
}

/// Creates the connector under the panic guard. Called by generated code.
pub fn new_connector<C: Connector>(
    make: impl FnOnce() -> C,
) -> RResult<FfiConnectorBox, PluginError> {
    guard("the connector constructor", || {
        Ok(FfiConnector_TO::from_value(Adapter(make()), TD_Opaque))
    })
}

/// Builds the root module around `new_connector`. Called by generated code.
pub fn root_module(
    new_connector: extern "C" fn() -> RResult<FfiConnectorBox, PluginError>,
) -> PluginModRef {
    PluginMod { new_connector }.leak_into_prefix()
}

/// Exports a connector from a `cdylib` crate: generates the library's root module.
///
/// Call it once, at the crate root, with an expression that creates the connector:
///
/// ```ignore
/// ionport_plugin_sdk::export_connector!(MyConnector::default());
/// ```
///
/// The crate must be a `cdylib` and list `abi_stable` among its dependencies (the code
/// abi_stable generates names it by its absolute path); it never uses it otherwise.
#[macro_export]
macro_rules! export_connector {
    ($make:expr) => {
        #[allow(unsafe_code)]
        extern "C" fn __ionport_new_connector() -> $crate::__private::RResult<
            $crate::__private::FfiConnectorBox,
            $crate::__private::PluginError,
        > {
            $crate::__private::new_connector(|| $make)
        }

        /// The root module of this ionport plugin.
        #[allow(unsafe_code)]
        #[$crate::__private::export_root_module]
        pub fn ionport_plugin_root_module() -> $crate::__private::PluginModRef {
            $crate::__private::root_module(__ionport_new_connector)
        }
    };
}
