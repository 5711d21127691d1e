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
//!   plugins get ([`connection::Connection`], [`connection::ConnectionHost`]).
//!
//! What it is not: a command line (that is `ionport`, the `cli` crate), and it knows no
//! connector by name — everything connector-specific arrives through the ABI.

pub mod connection;
pub mod credentials;
pub mod destination;
pub mod gateway;
pub mod host;
pub mod pipeline;
pub mod plugin;
pub mod token;
pub mod vault;
