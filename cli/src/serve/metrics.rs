//! `GET /metrics`: the server's counters in the OpenMetrics text format through
//! `prometheus-client`, or in the classic Prometheus text format (0.0.4) for scrapers that
//! ask for it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
pub struct TenantLabels {
    pub tenant: String,
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
    /// Requests counted today against each tenant's daily budget, as the last run saw it.
    pub budget_used: Family<TenantLabels, Gauge>,
    /// What is left of each tenant's daily budget, as the last run saw it.
    pub budget_left: Family<TenantLabels, Gauge>,
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
            budget_used: Family::default(),
            budget_left: Family::default(),
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
        registry.register(
            "tenant_budget_used",
            "Requests counted today (UTC) against each tenant's daily budget, as the last run saw it",
            m.budget_used.clone(),
        );
        registry.register(
            "tenant_budget_left",
            "What is left of each tenant's daily budget today (UTC), as the last run saw it",
            m.budget_left.clone(),
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

    /// Sets a tenant's daily budget gauges.
    pub fn budget(&self, b: &ionport_core::gateway::BudgetUse) {
        let l = TenantLabels {
            tenant: b.tenant.clone(),
        };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.budget_used.get_or_create(&l).set(gauge(b.used));
        if let Some(left) = b.left {
            self.budget_left.get_or_create(&l).set(gauge(left));
        }
    }

    /// The text exposition in `format`.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => out,
            Format::Classic => openmetrics_to_classic(&out),
        })
    }
}

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`), what `prometheus-client` writes.
    OpenMetrics,
    /// The classic Prometheus text format (`text/plain; version=0.0.4`).
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format the `Accept` header values prefer (q-values honoured): classic only
    /// when `text/plain` is preferred strictly; OpenMetrics on a tie, without a header,
    /// and when neither is acceptable (a scraper that accepts nothing we speak still gets
    /// an answer rather than a 406 it would not understand).
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut open, mut classic) = (None::<f32>, None::<f32>);
        let (mut any_app, mut any_text) = (None::<f32>, None::<f32>);
        let max = |slot: &mut Option<f32>, q: f32| *slot = Some(slot.map_or(q, |s| s.max(q)));
        for range in accept.into_iter().flat_map(|v| v.split(',')) {
            let Ok(m) = range.trim().parse::<mime::Mime>() else {
                continue;
            };
            let q = m
                .get_param("q")
                .and_then(|q| q.as_str().parse::<f32>().ok())
                .unwrap_or(1.0);
            match (m.type_().as_str(), m.subtype().as_str()) {
                ("application", "openmetrics-text") => max(&mut open, q),
                // Only the classic version: a `text/plain` of another version is not ours.
                ("text", "plain")
                    if m.get_param("version").is_none_or(|v| v.as_str() == "0.0.4") =>
                {
                    max(&mut classic, q);
                }
                ("*", "*") => {
                    max(&mut any_app, q);
                    max(&mut any_text, q);
                }
                ("application", "*") => max(&mut any_app, q),
                ("text", "*") => max(&mut any_text, q),
                _ => {}
            }
        }
        let open = open.or(any_app).unwrap_or(0.0);
        let classic = classic.or(any_text).unwrap_or(0.0);
        if classic > 0.0 && classic > open {
            Self::Classic
        } else {
            Self::OpenMetrics
        }
    }
}

/// The classic text format of an OpenMetrics exposition written by `prometheus-client`.
///
/// `prometheus-client` writes OpenMetrics only. The two formats share the sample lines;
/// they differ in the metadata: a classic counter is described under its sample name
/// (`x_total`), there are no `# UNIT` lines and no `# EOF`, and the types OpenMetrics added
/// have classic stand-ins (`info` → a gauge named `x_info`, the rest untyped).
fn openmetrics_to_classic(text: &str) -> String {
    let mut renamed: std::collections::HashMap<&str, (String, &str)> =
        std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            let classic = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                _ => (name.to_string(), "untyped"),
            };
            renamed.insert(name, classic);
        }
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta.and_then(|(p, rest)| {
            let (name, tail) = rest.split_once(' ')?;
            let (classic, kind) = renamed.get(name)?;
            Some(if p == "# TYPE " {
                format!("{p}{classic} {kind}")
            } else {
                format!("{p}{classic} {tail}")
            })
        }) {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        let f = |a: &str| Format::negotiate([a]);
        assert_eq!(Format::negotiate([]), Format::OpenMetrics);
        assert_eq!(f("*/*"), Format::OpenMetrics);
        assert_eq!(f("text/plain"), Format::Classic);
        assert_eq!(f("text/plain; version=0.0.4"), Format::Classic);
        assert_eq!(f("text/plain;version=1.0.0"), Format::OpenMetrics);
        assert_eq!(f("application/openmetrics-text"), Format::OpenMetrics);
        // What Prometheus sends by default, and with `scrape_protocols: [PrometheusText0.0.4]`.
        assert_eq!(
            f(
                "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            f("text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
            Format::Classic
        );
        assert_eq!(
            f("application/openmetrics-text;q=0.1, text/plain;q=0.9"),
            Format::Classic
        );
        assert_eq!(f("text/plain;q=0"), Format::OpenMetrics);
        assert_eq!(f("garbage, text/*"), Format::Classic);
    }

    #[test]
    fn the_classic_format_describes_counters_by_their_sample_names() {
        let m = Metrics::default();
        m.runs
            .get_or_create(&OutcomeLabels {
                outcome: "succeeded".into(),
            })
            .inc();
        m.run_duration
            .get_or_create(&OutcomeLabels {
                outcome: "succeeded".into(),
            })
            .observe(0.2);
        let open = m.encode(Format::OpenMetrics).unwrap_or_default();
        assert!(open.contains("# TYPE ionport_runs counter\n"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        let classic = m.encode(Format::Classic).unwrap_or_default();
        assert!(
            classic.contains("# HELP ionport_runs_total Runs finished"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE ionport_runs_total counter\n"),
            "{classic}"
        );
        assert!(classic.contains("ionport_runs_total{outcome=\"succeeded\"} 1\n"));
        assert!(classic.contains("# TYPE ionport_run_duration_seconds histogram\n"));
        assert!(
            !classic.contains("# EOF") && !classic.contains("# UNIT"),
            "{classic}"
        );
        // Every sample line is kept as it was.
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&open), samples(&classic));
    }
}
