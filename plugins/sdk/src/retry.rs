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
//!
//! The back-offs are backon's exponential ones with jitter ([`RetryPolicy::backoff`]), so
//! that the readers of one connection that failed together do not ask again together.
//! The loop is ours, not backon's `retry`: its blocking sleeper cannot fail, so a cancel
//! during a back-off would only be seen at the next attempt, and an answer here has more
//! outcomes than its `Result` (decoded, a status for the caller, final, try again).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::{ConnectorError, GatewayRequest, GatewayResponse, Host};

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First back-off; doubled after each failure.
    pub base_delay: Duration,
    /// Longest back-off before jitter.
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
    /// The back-offs between attempts, `attempts - 1` of them: `base_delay` doubled after
    /// each, up to `max_delay`, each plus a random share of itself (up to as much again:
    /// backon's jitter).
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(usize::try_from(self.attempts.saturating_sub(1)).unwrap_or(usize::MAX))
            .with_jitter()
            .build()
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
    let mut backoff = policy.backoff();
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
        sleep_cancellable(host, backoff.next().unwrap_or(policy.max_delay))?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use ionport_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
    use ionport_plugin_abi::abi_stable::std_types::{RArc, RResult, RStr};
    use ionport_plugin_abi::{
        FfiHost, FfiHost_TO, FfiHttpRequest, FfiHttpResponse, LogLevel, PluginError, RecordBatch,
    };

    use super::*;

    /// Answers every request `200` with a body no decoder takes; cancelled once it has
    /// answered `cancel_after` requests.
    struct GarbledHost {
        calls: Mutex<Vec<Instant>>,
        cancel_after: usize,
    }

    impl FfiHost for GarbledHost {
        fn gateway(&self, _request: FfiHttpRequest) -> RResult<FfiHttpResponse, PluginError> {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(Instant::now());
            }
            RResult::ROk(FfiHttpResponse {
                status: 200,
                head: "".into(),
                body: b"{not json".to_vec().into(),
            })
        }
        fn log(&self, _level: LogLevel, _message: RStr<'_>) {}
        fn emit(&self, _batch: RecordBatch) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
        fn checkpoint(&self, _state: RStr<'_>) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
        fn cancelled(&self) -> bool {
            self.calls
                .lock()
                .map_or(true, |c| c.len() >= self.cancel_after)
        }
    }

    fn garbled(cancel_after: usize) -> (Host, RArc<GarbledHost>) {
        let inner = RArc::new(GarbledHost {
            calls: Mutex::new(Vec::new()),
            cancel_after,
        });
        let host = Host::new(FfiHost_TO::from_ptr(inner.clone(), TD_Opaque));
        (host, inner)
    }

    fn fetch(host: &Host, policy: &RetryPolicy) -> Result<Fetched<()>, ConnectorError> {
        fetch_decoded(host, &GatewayRequest::get("x"), "page", policy, |r| {
            r.json::<serde_json::Value>("page").map(|_| ())
        })
    }

    #[test]
    fn back_offs_double_up_to_the_cap_each_with_jitter() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        let floors = [100, 200, 350, 350].map(Duration::from_millis);
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let delays: Vec<Duration> = p.backoff().collect();
            assert_eq!(delays.len(), floors.len(), "{delays:?}");
            for (d, floor) in delays.iter().zip(floors) {
                assert!(*d >= floor && *d < floor * 2, "{d:?} against {floor:?}");
            }
            firsts.insert(delays[0]);
        }
        assert!(firsts.len() > 10, "no jitter: {firsts:?}");
    }

    #[test]
    fn undecodable_answers_are_asked_again_after_each_back_off() {
        let (host, inner) = garbled(usize::MAX);
        let p = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(80),
        };
        let e = fetch(&host, &p).expect_err("never decodes");
        assert!(!e.is_cancelled(), "{e}");
        let calls = inner.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls.len(), 3);
        assert!(calls[1] - calls[0] >= Duration::from_millis(40));
        assert!(calls[2] - calls[1] >= Duration::from_millis(80));
    }

    #[test]
    fn a_cancel_ends_a_back_off_early() {
        let (host, inner) = garbled(1);
        let p = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_secs(20),
            max_delay: Duration::from_secs(20),
        };
        let started = Instant::now();
        let e = fetch(&host, &p).expect_err("cancelled");
        assert!(e.is_cancelled(), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(inner.calls.lock().map(|c| c.len()).unwrap_or(0), 1);
    }
}
