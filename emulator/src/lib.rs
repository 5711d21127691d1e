//! `ionport-emulator`: a local Infor ION API Gateway for ionport's demo and tests.
//!
//! # What it is
//!
//! A real HTTP server on loopback (axum on tokio, HTTP/1.1) that behaves like one tenant of
//! the Infor ION API Gateway as described in `ION-API.md`:
//!
//! - the authorization server (`/{tenant}/as/token.oauth2`, `authorization.oauth2`,
//!   `revoke_token.oauth2`) with the password, refresh-token, authorization-code (PKCE S256,
//!   emulated users signed in by `login_hint`) and SAML bearer grants, rotating refresh
//!   tokens and RFC 6749 error bodies;
//! - the gateway rules: bearer tokens that expire and can be revoked, a per-token quota
//!   answered with `429` and `Retry-After`, a target timeout answered with `504`;
//! - `ifsservice/usermgt/v2/users/me`;
//! - M3 MI REST (v1 and v2 shapes, `MRS001MI` metadata, key-paged list transactions,
//!   `EXPORTMI/Select`), LN OData v4 entity sets, Data Lake Compass v2 jobs and the Data
//!   Catalog;
//! - control and inspection endpoints under `/__emulator/` (counters, record changes,
//!   fault injection, reset) that no real client would call.
//!
//! All business data comes from [`data::Dataset`], a deterministic generator keyed by a seed
//! and a scale. Rows are computed on demand from their index, so a million customers cost
//! no memory; record changes made through the control endpoint live in a small overlay.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ionport_emulator::EmulatorError> {
//! use ionport_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig { scale: 500, ..Default::default() }).await?;
//! emu.write_ionapi("demo.ionapi")?;
//! println!("{} serves tenant {}", emu.base_url(), emu.tenant());
//! let counters = emu.counters();
//! assert_eq!(counters.token_requests.password, 0);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it is not
//!
//! Not a mock inside the process under test: clients talk to it over TCP like to the real
//! gateway. Not a complete M3, LN or Data Lake: it implements the subset ionport uses
//! (read paths, the documented shapes and error behaviour). No TLS, no login page (the
//! authorization endpoint signs in the user `login_hint` names), no writes to business data, loopback only. Demo credentials are fixed values and
//! are not secrets.

// Handlers return `Result<_, Response>` to answer errors early; a boxed response buys nothing.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod config;
pub mod counters;
pub mod data;
pub mod echo;
pub mod error;
pub mod recorded;
pub mod rng;
pub mod time;

mod auth;
mod control;
mod datalake;
mod faults;
mod gateway;
mod generic;
mod ln;
mod m3;
mod query;
mod quota;
mod server;
mod state;
mod tokens;
mod users;
mod util;

pub use config::{EmulatorConfig, EmulatorCredentials, Quota};
pub use counters::Counters;
pub use error::EmulatorError;
pub use server::{Emulator, RunningEmulator};
