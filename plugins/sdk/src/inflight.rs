//! Pages in flight: how many pages of one task a connector keeps requested at once.
//!
//! The host bounds every request by the connection's concurrency and the tenant's quota
//! (and waits rather than exceed it); this bound is the task's own — it caps the task's
//! memory at pages in flight × page size, and it is what lets one task use a gateway that
//! answers in 150 ms at more than a few pages per second.

use crate::ReadRequest;

/// Pages in flight when the read request does not say (`ReadRequest::pages_in_flight`).
pub const DEFAULT_PAGES_IN_FLIGHT: u32 = 4;

/// The most pages in flight a connector keeps for one task, whatever the request asks.
pub const MAX_PAGES_IN_FLIGHT: u32 = 64;

/// The pages in flight for `request`: its own value or [`DEFAULT_PAGES_IN_FLIGHT`], in
/// `1..=MAX_PAGES_IN_FLIGHT`.
pub fn pages_in_flight(request: &ReadRequest) -> usize {
    request
        .pages_in_flight
        .unwrap_or(DEFAULT_PAGES_IN_FLIGHT)
        .clamp(1, MAX_PAGES_IN_FLIGHT) as usize
}
