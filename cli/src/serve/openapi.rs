//! The OpenAPI document, from the handlers' `#[utoipa::path]` attributes. Checked in as
//! `schemas/openapi.json` (`cargo xtask schemas`), served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api::{connections, connectors, runs, system};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ionport HTTP API",
        description = "Connectors, connections, runs and metrics of an ionport server. Every route but /health and /openapi.json needs an API key: `Authorization: Bearer KEY` or `X-API-Key: KEY`. /metrics speaks OpenMetrics, or the classic Prometheus text format when `Accept` prefers `text/plain; version=0.0.4`.",
        license(name = "Apache-2.0")
    ),
    paths(
        system::health, system::metrics, system::openapi,
        connectors::list, connectors::get, connectors::form, connectors::tasks,
        connections::list, connections::create, connections::get, connections::update,
        connections::patch, connections::delete, connections::test, connections::test_values,
        connections::tasks,
        runs::start, runs::list, runs::get, runs::cancel,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "system", description = "Health, metrics, this document"),
        (name = "connectors", description = "The loaded connector plugins"),
        (name = "connections", description = "Connections: tested, stored, secrets in the vault"),
        (name = "runs", description = "Runs of a connection's tasks or a pipeline (kept in memory)"),
    )
)]
struct Doc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
            c.add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
            );
        }
    }
}

/// The document as pretty JSON (what `schemas/openapi.json` holds, without the final
/// newline).
pub fn document_text() -> anyhow::Result<String> {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Through a `Value`: keys sorted, the same text `cargo xtask schemas` writes.
    Ok(serde_json::to_string_pretty(&serde_json::to_value(&doc)?)?)
}
