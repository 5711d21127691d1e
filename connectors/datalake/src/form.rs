//! The Data Lake connection form.

use ionport_plugin_sdk::form::IonApiCredentials;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 10,000 rows (a few MB of typical ERP rows): with several pages in flight each one is
/// held as its body and as its records, so the service's maximum (100,000 rows, 10 MB)
/// would hold hundreds of MB at once; the cost is more result requests (100 per million
/// rows, far under a tenant's quota).
pub fn default_page_rows() -> u32 {
    10_000
}

fn default_max_wait() -> u32 {
    600
}

/// Two of the lake's ingestion micro-batches (5 MB or 5 minutes each): a row is stamped
/// when it is indexed and may be queryable only a batch later.
pub fn default_ingestion_lag() -> u64 {
    600
}

/// How to reach the Data Lake.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Infor Data Lake connection")]
#[serde(deny_unknown_fields)]
pub struct DataLakeConnectionForm {
    /// ION API Gateway credentials (from the tenant's `.ionapi` file).
    pub credentials: IonApiCredentials,
    /// Rows per Compass result page (the service allows at most 100,000 and 10 MB).
    #[serde(default = "default_page_rows")]
    #[schemars(title = "Rows per result page", range(min = 1, max = 100000))]
    pub page_rows: u32,
    /// How long to wait for a Compass query before cancelling it, in seconds.
    #[serde(default = "default_max_wait")]
    #[schemars(title = "Query timeout (s)", range(min = 1, max = 72000))]
    pub query_timeout_secs: u32,
    /// How long the lake may take to make a changed row queryable, in seconds. An
    /// incremental read's next query starts this long before the previous one was
    /// submitted and reads that overlap again, so no row stamped during ingestion is lost.
    #[serde(default = "default_ingestion_lag")]
    #[schemars(title = "Ingestion lag (s)", range(min = 0, max = 86400))]
    pub ingestion_lag_secs: u64,
}
