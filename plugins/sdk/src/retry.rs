//! Re-asking for a read whose answer the connector cannot use.
//!
//! Under the host↔connector contract (`ionport_plugin_abi`'s crate docs) the host retries
//! transient statuses and transport failures of reads, and turns a read that keeps timing
//! out into an error of the `timeout` kind. What is left to a connector is what the host
//! cannot judge: a `2xx` whose body does not decode (cut or malformed). A host error is
//! final here (it keeps its kind: a `timeout` is for the caller's
//! [`crate::paging::AdaptivePageSize`]); any other status goes back to the caller.
//!
//! ```ignore
//! let policy = RetryPolicy::default();
//! match fetch_decoded(host, &request, "orders page", &policy, |r| r.json::<Page>("orders page"))? {
//!     Fetched::Decoded(page) => { /* use it */ }
//!     Fetched::Status(resp) => return Err(/* a clear error from resp */),
//! }
//! ```

use std::time::Duration;

use crate::{ConnectorError, GatewayRequest, GatewayResponse, Host};

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First back-off; doubled after each failure.
    pub base_delay: Duration,
    /// Longest back-off.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The back-off before attempt `n` (1-based retries).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What [`fetch_decoded`] got.
#[derive(Debug)]
pub enum Fetched<T> {
    /// A `2xx` answer, decoded.
    Decoded(T),
    /// A non-`2xx` answer the caller handles (`4xx`, `500`, ...).
    Status(GatewayResponse),
}

/// Whether a host error means the credentials were refused (the host's `auth` kind).
pub fn is_auth_failure(e: &ConnectorError) -> bool {
    e.is_auth()
}

/// What a connection check reports when the host got no answer at all: the `token` part
/// for refused credentials, the `network` part otherwise, each with what to do.
pub fn host_failure(e: &ConnectorError) -> (&'static str, String) {
    if is_auth_failure(e) {
        (
            "token",
            format!(
                "No access token: {}. Check the client id and secret and the service-account \
                 keys of the connection (.ionapi file).",
                e.message()
            ),
        )
    } else {
        (
            "network",
            format!(
                "The ION API Gateway could not be reached: {}. Check the gateway URL and the \
                 network.",
                e.message()
            ),
        )
    }
}

/// Sleeps `d` in small slices, returning early with [`ConnectorError::cancelled`] when the
/// host cancels.
pub fn sleep_cancellable(host: &Host, d: Duration) -> Result<(), ConnectorError> {
    let slice = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        host.check_cancelled()?;
        let step = left.min(slice);
        std::thread::sleep(step);
        left = left.saturating_sub(step);
    }
    host.check_cancelled()
}

/// Sends `request`, asking again for `2xx` bodies that `decode` refuses. A host error is
/// final (the host has already retried within its bounds) and keeps its kind, with `what`
/// in front of its message.
pub fn fetch_decoded<T>(
    host: &Host,
    request: &GatewayRequest,
    what: &str,
    policy: &RetryPolicy,
    decode: impl Fn(&GatewayResponse) -> Result<T, ConnectorError>,
) -> Result<Fetched<T>, ConnectorError> {
    let attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        host.check_cancelled()?;
        let last = attempt >= attempts;
        match host.gateway(request) {
            // The host already retried what it could (network, transient statuses,
            // timeouts) within its own bounds: asking it again would multiply those bounds.
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => return Err(e.context(what)),
            Ok(resp) if resp.is_success() => match decode(&resp) {
                Ok(v) => return Ok(Fetched::Decoded(v)),
                Err(e) if last => return Err(e),
                Err(e) => host.warn(&format!(
                    "{what}: {} (attempt {attempt} of {attempts}; trying again)",
                    e.message()
                )),
            },
            Ok(resp) => return Ok(Fetched::Status(resp)),
        }
        sleep_cancellable(host, policy.delay(attempt))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(350));
    }
}
