//! The OpenAPI document, from the handlers' `#[utoipa::path]` attributes. Checked in as
//! `schemas/openapi.json` (`cargo xtask schemas`), served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use ionport_plugin_abi::wire::SyncMode;

use super::api::{
    audit, cluster, connections, connectors, runs, states, system, webhooks, workspaces,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ionport HTTP API",
        description = "Connectors, connections, runs and metrics of an ionport server. Every route but /health and /openapi.json needs an API key: `Authorization: Bearer KEY` or `X-API-Key: KEY`. Everything a key sees is its workspace's: another workspace's connection, run, state, webhook or audit entry is answered 404, as if it did not exist. An admin key manages workspaces and keys (/v1/workspaces, /v1/keys), reads the whole audit log, and acts in another workspace with the header `Ionport-Workspace: NAME`. A workspace limit reached is a 429 `limit_exceeded` naming the limit and its value. /metrics speaks OpenMetrics, or the classic Prometheus text format when `Accept` prefers `text/plain; version=0.0.4`.",
        license(name = "Apache-2.0")
    ),
    paths(
        system::health, system::metrics, system::openapi,
        connectors::list, connectors::get, connectors::form, connectors::tasks,
        connections::list, connections::create, connections::get, connections::update,
        connections::patch, connections::delete, connections::test, connections::test_values,
        connections::tasks, states::list, states::reset,
        runs::start, runs::list, runs::get, runs::cancel,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete, webhooks::deliveries,
        audit::list,
        workspaces::list, workspaces::create, workspaces::get, workspaces::update,
        workspaces::delete, workspaces::list_keys, workspaces::create_key, workspaces::delete_key,
        cluster::status,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "system", description = "Health, metrics, this document"),
        (name = "connectors", description = "The loaded connector plugins"),
        (name = "connections", description = "Connections: tested, stored, secrets in the vault"),
        (name = "runs", description = "Runs of a connection's tasks or a pipeline (kept in memory)"),
        (name = "webhooks", description = "Endpoints told of run events, signed (Ionport-Signature: t=…,v1=HMAC-SHA256 of `t.body`)"),
        (name = "audit", description = "Who changed what: the append-only audit log"),
        (name = "workspaces", description = "Workspaces, their limits and their keys (admin keys only)"),
        (name = "cluster", description = "The scale-out cluster of a server started with --coordinator: workers, leases, queued work, quota shares"),
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

/// Where a connection's records go: `#/components/schemas/Destination`, the JSON Schema
/// of a pipeline file's `destination` (core's own, added by [`document_text`]) rather than
/// a copy of it here.
pub fn destination_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("Destination")
}

/// A task's sync mode: `#/components/schemas/SyncMode`, the ABI's wire names (added by
/// [`document_text`]).
pub fn sync_mode_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("SyncMode")
}

/// A list of [`sync_mode_ref`].
pub fn sync_modes_ref() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::Array::new(sync_mode_ref())
}

/// A string with one of `values` (for fields whose Rust type is core's, which has a JSON
/// Schema of its own but no utoipa one).
fn string_enum(values: &[&str], description: &str) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

/// A task's `deletes`: what happens to rows deleted at the source.
pub fn deletes_schema() -> utoipa::openapi::schema::Object {
    string_enum(
        &["ignore", "soft"],
        "What happens to rows deleted at the source: `ignore` (default) keeps them as they \
         were; `soft` marks them in the column `_ionport_deleted_at`.",
    )
}

/// A task's `schema_changes`: what a run does when the stream's schema changed.
pub fn schema_changes_schema() -> utoipa::openapi::schema::Object {
    string_enum(
        &["evolve", "freeze", "fail"],
        "When the stream's schema changed at the source: `evolve` (default) adds columns \
         and widens types, `freeze` keeps the destination's columns, `fail` stops the task.",
    )
}

/// The document as pretty JSON (what `schemas/openapi.json` holds, without the final
/// newline).
pub fn document_text() -> anyhow::Result<String> {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Through a `Value`: keys sorted, the same text `cargo xtask schemas` writes.
    let mut doc = serde_json::to_value(&doc)?;
    add_destination(&mut doc["components"]["schemas"]);
    doc["components"]["schemas"]["SyncMode"] = serde_json::json!({
        "description": "How a task reads: everything, or what changed since its saved state.",
        "type": "string",
        "enum": [SyncMode::FullRefresh.as_str(), SyncMode::Incremental.as_str()],
    });
    null_last(&mut doc);
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// Puts `{"type": "null"}` last in every `oneOf`. utoipa builds an `Option<T>`'s `oneOf`
/// in an order that changes from one compilation to the next, and the document must be
/// the same text for the same code (`schemas/openapi.json` is checked against it).
fn null_last(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(choices)) = map.get_mut("oneOf") {
                let is_null = |c: &serde_json::Value| c == &serde_json::json!({"type": "null"});
                let (mut rest, nulls): (Vec<_>, Vec<_>) = std::mem::take(choices)
                    .into_iter()
                    .partition(|c| !is_null(c));
                rest.extend(nulls);
                *choices = rest;
            }
            map.values_mut().for_each(null_last);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(null_last),
        _ => {}
    }
}

/// `Destination` into `schemas`: core's schema, each kind a named schema of its own
/// (`SqliteDestination`, ...) and `type` the discriminator, so that generated clients get
/// one class per kind instead of numbered anonymous ones.
fn add_destination(schemas: &mut serde_json::Value) {
    let mut destination = ionport_core::destination::json_schema();
    if let Some(o) = destination.as_object_mut() {
        o.remove("$schema");
    }
    let mut mapping = serde_json::Map::new();
    if let Some(kinds) = destination
        .get_mut("oneOf")
        .and_then(serde_json::Value::as_array_mut)
    {
        for kind in kinds {
            let Some(name) = kind["properties"]["type"]["const"].as_str() else {
                continue;
            };
            let mut chars = name.chars();
            let title: String = chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect();
            let reference = format!("#/components/schemas/{title}Destination");
            mapping.insert(name.to_string(), reference.clone().into());
            schemas[format!("{title}Destination")] = kind.take();
            *kind = serde_json::json!({ "$ref": reference });
        }
    }
    destination["discriminator"] = serde_json::json!({"propertyName": "type", "mapping": mapping});
    schemas["Destination"] = destination;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// Every path the router serves is in the document (the isolation test of
    /// `tests/tests/workspaces.rs` takes its route list from the document, so a route
    /// left out here would escape it).
    #[test]
    fn every_routed_path_is_documented() {
        let doc: serde_json::Value =
            serde_json::from_str(&super::document_text().unwrap()).unwrap();
        let routes = include_str!("api/mod.rs");
        let mut routed = Vec::new();
        let mut rest = routes;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            let start = rest.find('"').unwrap() + 1;
            let end = start + rest[start..].find('"').unwrap();
            routed.push(rest[start..end].to_string());
        }
        assert!(routed.len() > 20, "{routed:?}");
        for path in routed {
            assert!(
                doc["paths"].get(&path).is_some(),
                "{path} is routed but not in the OpenAPI document"
            );
        }
    }
}
