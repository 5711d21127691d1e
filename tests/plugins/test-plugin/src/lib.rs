//! A plugin that exercises the whole ionport ABI, for the host's tests. Never shipped.
//!
//! Its behaviour is driven by the connection settings and the read options:
//! - settings `panic_in` = `"check" | "discover" | "read"`: panics there;
//! - settings `fail_in` = the same: returns a connector error there;
//! - task `numbers`: emits `options.count` records (default 1000) in batches of
//!   `options.batch` (default 100), checkpoints `{"offset": n}` after each batch and
//!   reports it as a page (`Host::report_pages`, ABI 1.1), resumes
//!   from the state's offset, and stops with a cancelled error when the host cancels;
//!   with `options.stall_after` it waits for cancellation after that many records;
//! - task `gateway_echo`: sends `GET options.path` through the host's gateway and emits
//!   one record with the status and body;
//! - task `blob`: emits `options.batches` batches of `options.bytes` bytes of NDJSON;
//! - task `host_calls`: calls `host.cancelled()` `options.calls` times and reports the
//!   nanoseconds it took in the summary state (for the ABI bench).
//!
//! Features: `incompatible-abi` exports the root module of a future ABI 2.0.0;
//! `broken-descriptor` declares a manifest, form and tasks that break the rules.

#[cfg(not(feature = "incompatible-abi"))]
mod plugin;

#[cfg(feature = "incompatible-abi")]
mod future_abi;
