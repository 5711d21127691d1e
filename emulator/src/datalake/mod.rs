//! Data Lake (Infor Data Fabric) under `/{tenant}/DATAFABRIC/`: Compass v2 SQL jobs and the
//! Data Catalog. The same API is served under the ION API suite's older bases
//! (`IONSERVICES/datalakeapi/v2/compass`, `IONSERVICES/datacatalog/v1`), which tenants
//! set up before Infor moved Compass to the Data Fabric suite still list.

mod catalog;
mod compass;
mod sql;

use axum::Router;
use axum::routing::{get, post, put};

pub(crate) use compass::{ExpireRequest, JobStore, TimeLimitRequest};

use crate::state::Shared;

/// Where Compass's jobs live: the Data Fabric suite's base, then the ION API suite's.
const COMPASS_BASES: [&str; 2] = [
    "DATAFABRIC/compass/v2",
    "IONSERVICES/datalakeapi/v2/compass",
];
/// Where the Data Catalog lives, in the same order.
const CATALOG_BASES: [&str; 2] = ["DATAFABRIC/datacatalog/v1", "IONSERVICES/datacatalog/v1"];

pub(crate) fn routes() -> Router<Shared> {
    let mut router = Router::new();
    for base in COMPASS_BASES {
        let c = format!("/{{tenant}}/{base}/jobs");
        router = router
            .route(&format!("{c}/"), post(compass::submit))
            .route(&c, post(compass::submit))
            .route(&format!("{c}/{{id}}/status/"), get(compass::status))
            .route(&format!("{c}/{{id}}/status"), get(compass::status))
            .route(&format!("{c}/{{id}}/result/"), get(compass::result))
            .route(&format!("{c}/{{id}}/result"), get(compass::result))
            .route(&format!("{c}/{{id}}/cancel"), put(compass::cancel))
            .route(&format!("{c}/{{id}}/cancel/"), put(compass::cancel));
    }
    for base in CATALOG_BASES {
        let cat = format!("/{{tenant}}/{base}/object");
        router = router
            .route(&format!("{cat}/list"), get(catalog::list))
            .route(&format!("{cat}/{{name}}"), get(catalog::object))
            .route(&format!("{cat}/{{name}}/schema"), get(catalog::schema));
    }
    router
}
