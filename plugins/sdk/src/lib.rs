//! Write an ionport connector.
//!
//! A connector is a `cdylib` that implements [`Connector`] and calls [`export_connector!`]
//! once. The SDK turns it into a plugin the ionport host loads through the stable ABI of
//! `ionport-plugin-abi`: every entry point runs under a panic guard (a panic becomes an
//! error value, never a crash of the host), payloads are converted to and from JSON, and
//! the host's services arrive as a typed [`Host`].
//!
//! A connector never holds a secret, a token or an HTTP client: it names a path on the
//! connection's gateway and the host does the rest ([`Host::gateway`]).
//!
//! What this crate gives an author:
//! - [`Connector`], the trait to implement, and [`export_connector!`];
//! - [`Host`], [`GatewayRequest`], [`GatewayResponse`], [`RecordWriter`] and [`RowWriter`];
//! - [`form`]: the shared [`form::IonApiCredentials`] block and schema helpers;
//! - [`check`]: check reports; [`schema`]: record schemas declared as tables of columns;
//! - [`decode`]: every success answer must have its page's shape (`unexpected_body` otherwise);
//! - [`paging`]: adaptive page sizes, key paging and cursor tracking;
//! - [`inflight`]: how many pages of a task are requested at once;
//! - [`key_ranges`]: a key-paged listing read as several ranges at once;
//! - [`ordered_pages`]: pages addressed by index fetched by several threads, handed over in order;
//! - [`stream`]: the stream API — declare streams ([`stream::RestStream`]) and the SDK owns
//!   the loop, the state, the check and the manifest ([`stream::StreamConnector`]);
//! - [`conformance`]: the checks every plugin must pass (`ionport plugins verify`).
//!
//! What it is not: a host. Loading plugins, vaulting credentials and talking HTTP live in
//! `ionport-core`.
//!
//! ```ignore
//! use ionport_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Connector for Hello {
//!     fn info(&self) -> ConnectorInfo { /* id, name, version, description */ }
//!     fn connection_form(&self) -> serde_json::Value { form::form_schema::<HelloForm>() }
//!     fn tasks(&self) -> Vec<TaskSpec> { vec![/* ... */] }
//!     // check, discover and read have defaults that say "not supported".
//! }
//!
//! export_connector!(Hello::default());
//! ```

mod connector;
mod error;
mod export;
mod host;
mod writer;

pub mod check;
pub mod columns;
pub mod conformance;
pub mod decode;
pub mod form;
pub mod inflight;
pub mod key_ranges;
pub mod ordered_pages;
pub mod paging;
pub mod retry;
pub mod schema;
pub mod stream;

pub use connector::{Connector, ConnectorInfo};
pub use error::ConnectorError;
pub use host::{GatewayRequest, GatewayResponse, Host};
pub use ionport_plugin_abi::wire::{
    CheckReport, ConnectionConfig, DELETED_FIELD_KEY, DiscoveredStream, Discovery, Manifest,
    PARTITIONABLE_KEY, ReadPartition, ReadRequest, ReadSummary, StreamNames, SyncMode, TaskSpec,
};
pub use ionport_plugin_abi::{ABI_VERSION, LogLevel};
pub use writer::{EncodedKey, Plain, RecordWriter, RowWriter};

/// Everything a connector usually needs, in one import.
pub mod prelude {
    pub use crate::form::{self, IonApiCredentials};
    pub use crate::paging::{AdaptivePageSize, CursorTracker, KeyPager};
    pub use crate::stream::{
        Answer, AnyStream, Page, PageRequest, Paging, RestStream, StreamConnector, Streams,
        TypedState,
    };
    pub use crate::{
        CheckReport, ConnectionConfig, Connector, ConnectorError, ConnectorInfo, DiscoveredStream,
        Discovery, GatewayRequest, GatewayResponse, Host, LogLevel, ReadRequest, ReadSummary,
        RecordWriter, StreamNames, SyncMode, TaskSpec, export_connector,
    };
}

/// Items used by the code [`export_connector!`] generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{new_connector, root_module};
    pub use ionport_plugin_abi::abi_stable::export_root_module;
    pub use ionport_plugin_abi::abi_stable::std_types::RResult;
    pub use ionport_plugin_abi::{FfiConnectorBox, PluginError, PluginModRef};
}
