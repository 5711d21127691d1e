//! The ionport host runtime.
//!
//! `ionport-core` loads connector plugins through the stable ABI and gives them what
//! every connector needs and none should write again. It is organised by concept:
//!
//! - [`plugin`]: finding, loading and validating plugin libraries ([`plugin::PluginRegistry`])
//!   and calling them through typed wrappers ([`plugin::LoadedPlugin`]);
//! - [`host`]: the host-services object handed to every plugin call
//!   ([`host::HostCallbacks`]);
//! - [`credentials`]: the `.ionapi` file and the connection form's credentials block,
//!   validated ([`credentials::Credentials`]);
//! - [`vault`]: credentials and refresh tokens encrypted at rest ([`vault::Vault`]);
//! - [`token`]: the OAuth 2.0 token lifecycle of one credential
//!   ([`token::TokenManager`]);
//! - [`gateway`]: HTTP to one connection's ION API Gateway: retries, rate limit,
//!   concurrency bound, metrics ([`gateway::GatewayClient`]);
//! - [`connection`]: one connection's host services, from its credentials to the object
//!   plugins get ([`connection::Connection`], [`connection::ConnectionHost`]);
//! - [`scrub`]: the one secret scrubber every shown text passes through
//!   ([`scrub::Scrubber`]);
//! - [`form_values`]: a connection form's values checked and split into credentials and
//!   the settings a connector may see ([`form_values::FormValues`]);
//! - [`json_schema`]: the validator of those values (and of a pipeline file's settings):
//!   JSON Schema with integers written as integers;
//! - [`read`]: one task read into your own code ([`read::read_task`],
//!   [`read::ReadHandler`]);
//! - [`destination`]: where records land, committed with their state
//!   ([`destination::Destination`]);
//! - [`pipeline`]: the TOML pipeline file, validated into a plan and run
//!   ([`pipeline::load()`], [`pipeline::run()`]).
//!
//! What it is not: a command line (that is `ionport`, the `cli` crate), and it knows no
//! connector by name — everything connector-specific arrives through the ABI.
//!
//! # Embedding ionport
//!
//! An iPaaS or a data platform embeds ionport through this crate. The usual path: load
//! the plugins, open a connection (credentials from an `.ionapi` file, the vault or a
//! form), then either read one task into your own code ([`read::read_task`]) or run a
//! pipeline into a destination ([`pipeline::run()`]). Plugin calls block; call them from a
//! blocking thread or through the async helpers, inside a tokio runtime.
//! `examples/embed` in the repository is a complete program.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
//! use ionport_core::pipeline::Cancel;
//! use ionport_core::plugin::PluginRegistry;
//! use ionport_core::read::{FnHandler, ReadEvent, read_task};
//! use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
//!
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! // Plugins from a directory (or `PluginRegistry::load_default()`: IONPORT_PLUGIN_PATH).
//! let registry = PluginRegistry::load_from(&["/opt/ionport/plugins".into()]);
//! for refused in registry.refused() {
//!     eprintln!("skipped {}: {refused}", refused.path().display());
//! }
//! let m3 = registry.get("infor-m3").ok_or("the M3 connector is not installed")?.clone();
//!
//! // One connection: tokens, refresh rotation, retries and rate limits are the host's.
//! let connection = Connection::open(
//!     CredentialSource::IonApiFile("ACME_PRD.ionapi".into()),
//!     ConnectionSettings::default(),
//! )?;
//!
//! // Read one task into a callback.
//! let request = ReadRequest {
//!     connection: ConnectionConfig { settings: serde_json::json!({ "company": 100 }) },
//!     task: "customers".into(),
//!     sync_mode: SyncMode::FullRefresh,
//!     state: None,     // or the state of the last checkpoint, to resume
//!     page_size: None, // the connector's default
//!     pages_in_flight: None, // the connector's default (4)
//!     options: serde_json::Value::Null,
//!     columns: None,
//!     include_deleted: false,
//!     partition: None,
//! };
//! let handler = FnHandler::new(|event: ReadEvent| {
//!     if let ReadEvent::Checkpoint { stream, state } = event {
//!         println!("{stream}: committed up to {state}");
//!     }
//!     Ok(())
//! });
//! let outcome = read_task(&m3, &connection, request, Arc::new(handler), Cancel::default()).await?;
//! println!("{} records", outcome.records);
//! connection.shutdown().await?; // revokes the refresh token
//! # Ok(()) }
//! ```
//!
//! Credentials are validated before anything goes out, and never printed:
//!
//! ```
//! use ionport_core::credentials::Credentials;
//!
//! let ionapi = r#"{
//!     "ti": "ACME_PRD", "ci": "ACME_PRD~app", "cs": "client-secret-value",
//!     "iu": "https://mingle-ionapi.example.com", "pu": "https://mingle-sso.example.com/ACME_PRD/as/",
//!     "oa": "authorization.oauth2", "ot": "token.oauth2", "or": "revoke_token.oauth2",
//!     "saak": "ACME_PRD#service", "sask": "service-secret-value"
//! }"#;
//! let credentials = Credentials::from_ionapi_str(ionapi, "ACME_PRD.ionapi")?;
//! assert_eq!(credentials.api_base().as_str(), "https://mingle-ionapi.example.com/ACME_PRD/");
//! assert!(!format!("{credentials:?}").contains("client-secret-value"));
//!
//! // A broken file names itself and the key, not the secret.
//! let err = Credentials::from_ionapi_str(r#"{"ti": "ACME_PRD"}"#, "broken.ionapi").unwrap_err();
//! assert!(err.to_string().contains("broken.ionapi"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Destinations commit records together with the state that covers them:
//!
//! ```
//! use ionport_core::destination::{self, DestinationConfig, StreamSpec};
//! use ionport_core::read::Records;
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir()?;
//! let dest = destination::open(&DestinationConfig::Sqlite { path: dir.path().join("out.db") })?;
//! let stream = StreamSpec {
//!     name: "customers".into(),
//!     record_schema: json!({"type": "object", "properties": {
//!         "CUNO": {"type": "string"}, "CUNM": {"type": ["string", "null"]}}}),
//!     primary_key: vec!["CUNO".into()],
//!     cursor_field: None,
//! };
//! dest.prepare(&stream)?;
//! // Records as a plugin's batch carries them: one JSON object per line, parsed once.
//! let records = Records::parse("customers", br#"{"CUNO": "C1", "CUNM": "Acme"}"#.to_vec())?;
//! dest.commit(&stream, &records, &json!({"page": 1}))?;
//! assert_eq!(dest.load_state("customers")?, Some(json!({"page": 1})));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod atomic;
pub mod connection;
pub mod credentials;
pub mod destination;
pub mod form_values;
pub mod gateway;
pub mod host;
pub mod json_schema;
pub mod pipeline;
pub mod plugin;
pub mod read;
pub mod scrub;
pub mod token;
pub mod vault;
