//! Data Lake (Infor Data Fabric) under `/{tenant}/DATAFABRIC/`: Compass v2 SQL jobs and the
//! Data Catalog.

mod catalog;
mod compass;
mod sql;

use axum::Router;
use axum::routing::{get, post, put};

pub(crate) use compass::JobStore;

use crate::state::Shared;

pub(crate) fn routes() -> Router<Shared> {
    let c = "/{tenant}/DATAFABRIC/compass/v2/jobs";
    let cat = "/{tenant}/DATAFABRIC/datacatalog/v1/object";
    Router::new()
        .route(&format!("{c}/"), post(compass::submit))
        .route(c, post(compass::submit))
        .route(&format!("{c}/{{id}}/status/"), get(compass::status))
        .route(&format!("{c}/{{id}}/status"), get(compass::status))
        .route(&format!("{c}/{{id}}/result/"), get(compass::result))
        .route(&format!("{c}/{{id}}/result"), get(compass::result))
        .route(&format!("{c}/{{id}}/cancel"), put(compass::cancel))
        .route(&format!("{c}/{{id}}/cancel/"), put(compass::cancel))
        .route(&format!("{cat}/list"), get(catalog::list))
        .route(&format!("{cat}/{{name}}"), get(catalog::object))
        .route(&format!("{cat}/{{name}}/schema"), get(catalog::schema))
}
