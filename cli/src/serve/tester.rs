//! Connection tests: the connector's own check, run through the host with the given
//! credentials (form values or a vault entry), the token revoked afterwards.

use std::sync::Arc;
use std::time::Instant;

use ionport_core::connection::{Connection, CredentialSource};
use ionport_core::plugin::LoadedPlugin;
use ionport_core::scrub::Scrubber;
use ionport_plugin_sdk::ConnectionConfig;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::metrics::{Metrics, TestLabels};

/// A connection test's result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestReport {
    /// Whether the connection works.
    pub success: bool,
    /// Who is connected, or what failed and what to do.
    pub message: String,
    /// On failure: `token`, `rights`, `product`, `company`, `settings`, `network` or
    /// `connector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_part: Option<String>,
    /// Facts found on the way (user, company, ...).
    #[schema(value_type = Object)]
    pub details: Value,
    /// How long the test took.
    pub seconds: f64,
}

impl TestReport {
    fn failed(part: &str, message: String) -> Self {
        Self {
            success: false,
            message,
            failed_part: Some(part.into()),
            details: Value::Null,
            seconds: 0.0,
        }
    }

    /// The report with every string of `secrets` masked (in any encoding).
    pub fn scrubbed(self, secrets: &[String]) -> Self {
        self.scrubbed_by(&Scrubber::with_secrets(secrets))
    }

    /// The report passed through `scrubber`.
    fn scrubbed_by(mut self, scrubber: &Scrubber) -> Self {
        self.message = scrubber.scrub(&self.message);
        if let Some(part) = &self.failed_part {
            self.failed_part = Some(scrubber.scrub(part));
        }
        if let Ok(text) = serde_json::to_string(&self.details) {
            let clean = scrubber.scrub(&text);
            if clean != text {
                self.details = serde_json::from_str(&clean).unwrap_or(Value::Null);
            }
        }
        self
    }
}

/// Runs `plugin`'s check with `source` and `settings`.
pub async fn test(
    plugin: Arc<LoadedPlugin>,
    source: CredentialSource,
    settings: Value,
    metrics: &Metrics,
) -> TestReport {
    let started = Instant::now();
    let mut report = match Connection::open(source, crate::serve::connection_settings()) {
        Err(e) => TestReport::failed(e.failed_part(), e.to_string()),
        Ok(conn) => {
            let host = Arc::new(conn.host(tokio::runtime::Handle::current()));
            let config = ConnectionConfig { settings };
            let p = plugin.clone();
            let result = tokio::task::spawn_blocking(move || p.check(host, &config)).await;
            let report = match result {
                Ok(Ok(r)) => TestReport {
                    success: r.success,
                    message: r.message,
                    failed_part: r.failed_part,
                    details: r.details,
                    seconds: 0.0,
                },
                Ok(Err(e)) => {
                    TestReport::failed("connector", format!("the connector's check failed: {e}"))
                }
                Err(e) => {
                    TestReport::failed("connector", format!("the check's thread failed: {e}"))
                }
            };
            // The connector's message may quote the gateway, which may echo a token.
            let scrubber = conn.gateway().tokens().scrubber().clone();
            let report = report.scrubbed_by(&scrubber);
            if let Err(e) = conn.shutdown().await {
                tracing::warn!(error = %scrubber.scrub(&e.to_string()), "revoking the test's token failed");
            }
            let m = conn.gateway().metrics();
            metrics.gateway(
                plugin.id(),
                m.requests,
                m.retries,
                m.unauthorized,
                m.rate_limited,
            );
            report
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    metrics
        .connection_tests
        .get_or_create(&TestLabels {
            connector: plugin.id().to_string(),
            outcome: if report.success { "passed" } else { "failed" }.into(),
        })
        .inc();
    report
}
