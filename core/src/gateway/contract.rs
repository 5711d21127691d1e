//! The host's half of the host↔connector contract (the whole of it is in the crate docs
//! of `ionport_plugin_abi`): what the gateway client retries and how a read that keeps
//! timing out ends. Everything in `layer` and in [`super::GatewayClient::send`] that
//! decides "again or give up" asks this module.

use reqwest::Method;

/// Statuses a read is retried on (within `max_retries` and `retry_total`): too many
/// requests, bad gateway, unavailable. When the bounds are spent the call ends in
/// `GatewayError::Exhausted`, never in the status as an answer.
pub const TRANSIENT_STATUSES: [u16; 3] = [429, 502, 503];

/// The gateway's target timeout ran out. A read is retried on it at most
/// `timeout_retries` times (a second timeout in a row says the page is too big for the
/// target timeout, not that the gateway had a bad moment); then the call ends in
/// `GatewayError::Timeout`, which a plugin gets as `error_kind::TIMEOUT` and answers with
/// a smaller page.
pub const TIMEOUT_STATUS: u16 = 504;

/// Whether `method` reads (and so may be sent again without changing anything).
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a read's answer is a timeout: a 504, or the host's own request timeout (not a
/// connect timeout, which says nothing about the size of what was asked).
pub fn is_timeout(result: &Result<reqwest::Response, reqwest_middleware::Error>) -> bool {
    match result {
        Ok(r) => r.status().as_u16() == TIMEOUT_STATUS,
        Err(reqwest_middleware::Error::Reqwest(e)) => e.is_timeout() && !e.is_connect(),
        Err(_) => false,
    }
}

/// Whether a write is retried on this answer: only when it was certainly not processed
/// (429, or the connection could not be made), so that a write is never sent twice.
pub fn write_is_retried(result: &Result<reqwest::Response, reqwest_middleware::Error>) -> bool {
    match result {
        Ok(r) => r.status().as_u16() == 429,
        Err(e) => e.is_connect(),
    }
}
