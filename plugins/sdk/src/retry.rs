//! Retrying a read through the gateway when the answer is transient or unusable.
//!
//! The host already retries transient statuses and network errors of reads; this layer is
//! the connector's own for what the host cannot judge: a `2xx` whose body does not decode
//! (cut or malformed) and a transient status that outlived the host's retries. A host
//! error (no answer at all, authentication, cancellation) is final: the host has retried
//! already. It leaves `504` to the caller (shrink the page instead).
//!
//! ```ignore
//! let policy = RetryPolicy::default();
//! match fetch_decoded(host, &request, "orders page", &policy, |r| r.json::<Page>("orders page"))? {
//!     Fetched::Decoded(page) => { /* use it */ }
//!     Fetched::Status(resp) if resp.status == 504 => { /* shrink the page */ }
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
    /// A non-`2xx` answer the caller handles (`504`, `4xx`, or a `5xx` that outlived the
    /// retries).
    Status(GatewayResponse),
}

/// Whether a status is worth asking again for.
pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503)
}

/// Whether a host error means the credentials were refused: the `auth` kind, or (for hosts
/// that report token failures as gateway errors) a message about the token endpoint.
pub fn is_auth_failure(e: &ConnectorError) -> bool {
    if e.is_auth() {
        return true;
    }
    let m = e.message().to_ascii_lowercase();
    [
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "token endpoint",
        "token request",
        "authorization server",
        "client secret",
        "401 unauthorized",
    ]
    .iter()
    .any(|w| m.contains(w))
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

/// Sends `request`, retrying transient statuses and `2xx` bodies that `decode` refuses.
/// A host error is final: the host has already retried within its bounds.
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
            // The host already retried what it could (network, transient statuses)
            // within its own bounds: asking it again would multiply those bounds.
            Err(e) => {
                return Err(if e.is_cancelled() || is_auth_failure(&e) {
                    e
                } else {
                    ConnectorError::gateway(format!(
                        "{what}: no answer from the gateway: {}",
                        e.message()
                    ))
                });
            }
            Ok(resp) if resp.is_success() => match decode(&resp) {
                Ok(v) => return Ok(Fetched::Decoded(v)),
                Err(e) if last => return Err(e),
                Err(e) => host.warn(&format!(
                    "{what}: {} (attempt {attempt} of {attempts}; trying again)",
                    e.message()
                )),
            },
            Ok(resp) if is_transient(resp.status) && !last => {
                host.warn(&format!(
                    "{what}: HTTP {} (attempt {attempt} of {attempts}; trying again)",
                    resp.status
                ));
            }
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
        assert!(is_transient(503) && !is_transient(504) && !is_transient(400));
    }
}
