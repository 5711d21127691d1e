//! `GET /metrics`: the server's counters in the Prometheus (OpenMetrics) text format,
//! through `prometheus-client`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TestLabels {
    pub connector: String,
    pub outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_buckets() -> Histogram {
    // 0.05 s .. ~27 min
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

fn latency_buckets() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<HttpLabels>,
    pub unauthorized_requests: Counter,
    pub gateway_requests: Family<ConnectorLabels, Counter>,
    pub gateway_retries: Family<ConnectorLabels, Counter>,
    pub gateway_unauthorized: Family<ConnectorLabels, Counter>,
    pub gateway_rate_limited: Family<ConnectorLabels, Counter>,
    pub records: Family<ConnectorLabels, Counter>,
    pub runs: Family<OutcomeLabels, Counter>,
    pub run_duration: HistogramFamily<OutcomeLabels>,
    pub connection_tests: Family<TestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ionport");
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_buckets),
            unauthorized_requests: Counter::default(),
            gateway_requests: Family::default(),
            gateway_retries: Family::default(),
            gateway_unauthorized: Family::default(),
            gateway_rate_limited: Family::default(),
            records: Family::default(),
            runs: Family::default(),
            run_duration: Family::new_with_constructor(duration_buckets),
            connection_tests: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests served, by method, route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            m.http_duration.clone(),
        );
        registry.register(
            "http_unauthorized",
            "HTTP requests refused with 401 (missing or wrong API key)",
            m.unauthorized_requests.clone(),
        );
        registry.register(
            "gateway_requests",
            "HTTP requests sent to the ION API Gateway (runs and tests)",
            m.gateway_requests.clone(),
        );
        registry.register(
            "gateway_retries",
            "Gateway requests retried",
            m.gateway_retries.clone(),
        );
        registry.register(
            "gateway_unauthorized",
            "401 answers from the gateway",
            m.gateway_unauthorized.clone(),
        );
        registry.register(
            "gateway_rate_limited",
            "429 answers from the gateway",
            m.gateway_rate_limited.clone(),
        );
        registry.register(
            "records",
            "Records committed to destinations",
            m.records.clone(),
        );
        registry.register("runs", "Runs finished, by outcome", m.runs.clone());
        registry.register(
            "run_duration_seconds",
            "How long runs took, by outcome",
            m.run_duration.clone(),
        );
        registry.register(
            "connection_tests",
            "Connection tests, by connector and outcome",
            m.connection_tests.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Adds a connection's gateway counters.
    pub fn gateway(&self, connector: &str, requests: u64, retries: u64, e401: u64, e429: u64) {
        let l = ConnectorLabels {
            connector: connector.to_string(),
        };
        self.gateway_requests.get_or_create(&l).inc_by(requests);
        self.gateway_retries.get_or_create(&l).inc_by(retries);
        self.gateway_unauthorized.get_or_create(&l).inc_by(e401);
        self.gateway_rate_limited.get_or_create(&l).inc_by(e429);
    }

    /// The text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
