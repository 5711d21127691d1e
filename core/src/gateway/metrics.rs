//! Per-connection gateway metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

const BUCKETS: usize = 32;

/// A snapshot of one connection's gateway counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GatewayMetrics {
    /// Calls made (logical requests, each possibly several attempts).
    pub calls: u64,
    /// Calls that ended in an error.
    pub failed_calls: u64,
    /// HTTP requests sent (attempts, including retries and re-sends after a 401).
    pub requests: u64,
    /// Retries (attempts after the first, not counting re-sends after a 401).
    pub retries: u64,
    /// 401 answers received.
    pub unauthorized: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// 5xx answers received.
    pub server_errors: u64,
    /// Attempts that failed without an answer (connection, reset, timeout, cut body).
    pub transport_errors: u64,
    /// Request body bytes sent (per call).
    pub bytes_sent: u64,
    /// Response body bytes received (per call).
    pub bytes_received: u64,
    /// Mean call latency, milliseconds.
    pub latency_mean_ms: f64,
    /// Approximate median call latency (upper bound of its power-of-two bucket), ms.
    pub latency_p50_ms: f64,
    /// Approximate 99th percentile call latency, ms.
    pub latency_p99_ms: f64,
    /// Longest call, ms.
    pub latency_max_ms: f64,
    /// Time spent waiting for the rate limiter, total, ms.
    pub rate_limit_wait_ms: f64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub calls: AtomicU64,
    pub failed_calls: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub unauthorized: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    pub transport_errors: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub latency_us_total: AtomicU64,
    pub latency_us_max: AtomicU64,
    pub rate_wait_us: AtomicU64,
    histogram: [AtomicU64; BUCKETS],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            latency_us_total: AtomicU64::new(0),
            latency_us_max: AtomicU64::new(0),
            rate_wait_us: AtomicU64::new(0),
            histogram: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn call(&self, latency: Duration, sent: u64, received: u64, ok: bool) {
        add(&self.calls, 1);
        if !ok {
            add(&self.failed_calls, 1);
        }
        add(&self.bytes_sent, sent);
        add(&self.bytes_received, received);
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        add(&self.latency_us_total, us);
        self.latency_us_max.fetch_max(us, Ordering::Relaxed);
        let bucket = (64 - us.leading_zeros() as usize).min(BUCKETS - 1);
        add(&self.histogram[bucket], 1);
    }

    fn percentile(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .histogram
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let target = (total as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                // Bucket i holds latencies below 2^i µs.
                return (1u64 << i) as f64 / 1000.0;
            }
        }
        0.0
    }

    pub fn snapshot(&self) -> GatewayMetrics {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let calls = l(&self.calls);
        GatewayMetrics {
            calls,
            failed_calls: l(&self.failed_calls),
            requests: l(&self.requests),
            retries: l(&self.retries),
            unauthorized: l(&self.unauthorized),
            rate_limited: l(&self.rate_limited),
            server_errors: l(&self.server_errors),
            transport_errors: l(&self.transport_errors),
            bytes_sent: l(&self.bytes_sent),
            bytes_received: l(&self.bytes_received),
            latency_mean_ms: if calls == 0 {
                0.0
            } else {
                l(&self.latency_us_total) as f64 / calls as f64 / 1000.0
            },
            latency_p50_ms: self.percentile(0.5),
            latency_p99_ms: self.percentile(0.99),
            latency_max_ms: l(&self.latency_us_max) as f64 / 1000.0,
            rate_limit_wait_ms: l(&self.rate_wait_us) as f64 / 1000.0,
        }
    }
}
