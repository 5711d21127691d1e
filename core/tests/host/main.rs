//! Host services against the emulator over real HTTP on loopback: tokens, gateway,
//! vault, the plugin-facing host object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_budget;
mod common;
mod gateway;
mod host;
mod shared_tokens;
mod tenant_budgets;
mod token_retries;
mod tokens;
mod vault;
