//! The Data Catalog: the lake's objects and their JSON Schemas.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::data::{Surface, TableDef, tables};
use crate::state::{AppState, Shared};

fn summary(st: &AppState, t: &TableDef) -> serde_json::Value {
    json!({
        "name": t.name,
        "type": "JSON",
        "description": t.desc,
        "source": if t.surface == Surface::M3 { "M3" } else { "LN" },
        "primaryKey": t.key.iter().map(|k| t.columns[*k].name).collect::<Vec<_>>(),
        "schemaUrl": format!("{}/{}/DATAFABRIC/datacatalog/v1/object/{}/schema", st.base_url, st.config.tenant, t.name),
    })
}

pub(crate) async fn list(State(st): State<Shared>) -> Response {
    let objects: Vec<_> = tables::LAKE_TABLES
        .iter()
        .map(|t| summary(&st, t))
        .collect();
    axum::Json(json!({"objects": objects, "count": objects.len()})).into_response()
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"error": {"code": "NotFound", "message": format!("Object '{name}' not found")}}),
        ),
    )
        .into_response()
}

pub(crate) async fn object(
    State(st): State<Shared>,
    Path((_t, name)): Path<(String, String)>,
) -> Response {
    let Some(t) = st.lake_table(&name) else {
        return not_found(&name);
    };
    let mut v = summary(&st, t);
    v["schema"] = st.catalog_schema(t);
    axum::Json(v).into_response()
}

pub(crate) async fn schema(
    State(st): State<Shared>,
    Path((_t, name)): Path<(String, String)>,
) -> Response {
    match st.lake_table(&name) {
        Some(t) => axum::Json(st.catalog_schema(t)).into_response(),
        None => not_found(&name),
    }
}
