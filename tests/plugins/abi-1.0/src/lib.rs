//! The stable ABI between the ionport host and its connector plugins.
//!
//! This crate is the one API boundary between `ionport-core` (the host) and a connector
//! library (a `cdylib`). It holds:
//!
//! - [`ABI_VERSION`], the ABI's own semantic version, independent of every crate version;
//! - [`PluginMod`], the root module every plugin exports (an `abi_stable` prefix type);
//! - the FFI traits [`FfiConnector`] (implemented by a plugin) and [`FfiHost`]
//!   (implemented by the host and handed into every call), and the FFI-safe values that
//!   cross the boundary ([`PluginError`], [`FfiHttpRequest`], [`FfiHttpResponse`],
//!   [`RecordBatch`], [`LogLevel`]);
//! - [`wire`], the serde types of the JSON payloads that cross as text;
//! - [`load`], the host-side loader that opens a library and checks its ABI.
//!
//! What this crate is not: it does no HTTP, holds no secret and knows no connector.
//! Connector authors use `ionport-plugin-sdk`, which wraps everything here in safe,
//! typed Rust; the host uses it through `ionport-core`.
//!
//! # Compatibility rules
//!
//! A plugin built for ABI `X.Y.Z` loads into a host speaking ABI `X.W.V` when the majors
//! match and the host's minor is not newer than the plugin's (abi_stable's rule for the
//! root module version). Fields may only be appended after `last_prefix_field`; the JSON
//! payloads may gain optional fields in a minor version and nothing else.

//! # The host↔connector contract for gateway calls
//!
//! Who handles which failure of a call through [`FfiHost::gateway`], decided once:
//!
//! - **The host** retries, with back-off and within its bounds: transport failures
//!   (connection refused or reset, a body cut short, a request timeout) and the transient
//!   statuses 429 (honouring `Retry-After`), 502 and 503 — for reads (GET, HEAD,
//!   OPTIONS); a write only on 429 and when the connection could not be made, so it is
//!   never sent twice. After a 401 it fetches a new token and sends once more. When the
//!   bounds are spent the plugin gets an error of kind [`error_kind::GATEWAY`] (never the
//!   transient status as an answer), [`error_kind::AUTH`] for refused credentials.
//! - **A read that times out** (504 from the gateway, or the host's request timeout) is
//!   retried fewer times — a second timeout in a row says the page is too big, not that
//!   the gateway had a bad moment — and then reaches the plugin as an error of kind
//!   [`error_kind::TIMEOUT`].
//! - **The connector** reacts to [`error_kind::TIMEOUT`] by asking for a smaller page
//!   (the SDK's `AdaptivePageSize`), re-asks for a `2xx` body it cannot decode, and
//!   handles every other status itself (4xx, 500, a write's 502/503/504). It never
//!   retries what the host already retried.
//!
//! Error kinds are an open set of strings: a plugin treats a kind it does not know as a
//! connector failure, so adding one is a compatible change.

// abi_stable's derive and trait macros generate impls that trip this lint on recent
// compilers; it is allowed here only, so that clippy `-D warnings` still guards the rest.
#![allow(non_local_definitions)]

// The unsafe in `ffi` and `root` is abi_stable's generated code (trait-object vtables,
// prefix types); this crate writes no unsafe block of its own.
mod elf;
#[allow(unsafe_code)]
mod ffi;
pub mod load;
#[allow(unsafe_code)]
mod root;
pub mod wire;

pub use abi_stable;
pub use ffi::*;
pub use root::*;

/// The version of the plugin ABI this crate defines (semver, independent of crate
/// versions). Bump the major for any incompatible change to a type below or to the
/// meaning of a JSON payload; bump the minor for appended fields and optional payload keys.
pub const ABI_VERSION: &str = "1.0.0";
