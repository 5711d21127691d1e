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

/// Ten minutes: a query of a large table runs a few minutes.
pub fn default_max_wait() -> u32 {
    600
}

/// Two of the lake's ingestion micro-batches (5 MB or 5 minutes each): a row is stamped
/// when it is indexed and may be queryable only a batch later.
pub fn default_ingestion_lag() -> u64 {
    600
}

/// Compass in the Data Fabric suite, where Infor moved it from the ION API suite.
pub const DEFAULT_COMPASS_BASE: &str = "DATAFABRIC/compass/v2";
/// The Data Catalog in the Data Fabric suite.
pub const DEFAULT_CATALOG_BASE: &str = "DATAFABRIC/datacatalog/v1";

/// [`DEFAULT_COMPASS_BASE`], for serde.
pub fn default_compass_base() -> String {
    DEFAULT_COMPASS_BASE.into()
}

/// [`DEFAULT_CATALOG_BASE`], for serde.
pub fn default_catalog_base() -> String {
    DEFAULT_CATALOG_BASE.into()
}

/// A path relative to the gateway's API base: segments of letters, digits, `_`, `-` and
/// `.`, none starting with a dot (so no `.` or `..`), no scheme, no leading or trailing
/// slash, no query. The connector checks the same ([`is_relative_api_path`]).
pub const RELATIVE_API_PATH: &str =
    r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$";

/// Whether `path` is a [`RELATIVE_API_PATH`] (checked without a regex engine).
pub fn is_relative_api_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|seg| {
            seg.chars().next().is_some_and(|c| c != '.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
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
    /// How long to wait for a Compass query before cancelling it, in seconds. Compass itself
    /// fails a query that runs 60 minutes, so waiting longer cannot help.
    #[serde(default = "default_max_wait")]
    #[schemars(title = "Query timeout (s)", range(min = 1, max = 3600))]
    pub query_timeout_secs: u32,
    /// How long the lake may take to make a changed row queryable, in seconds. An
    /// incremental read's next query starts this long before the previous one was
    /// submitted and reads that overlap again, so no row stamped during ingestion is lost.
    #[serde(default = "default_ingestion_lag")]
    #[schemars(title = "Ingestion lag (s)", range(min = 0, max = 86400))]
    pub ingestion_lag_secs: u64,
    /// Where Compass is, relative to the gateway's base URL (without `/jobs`). The Data
    /// Fabric suite's `DATAFABRIC/compass/v2` by default; a tenant whose ION API catalog
    /// still lists Compass under the ION API suite (deprecated by Infor) uses that base,
    /// e.g. `IONSERVICES/datalakeapi/v2/compass`.
    #[serde(default = "default_compass_base")]
    #[schemars(
        title = "Compass API base",
        regex(pattern = RELATIVE_API_PATH)
    )]
    pub compass_base: String,
    /// Where the Data Catalog is, relative to the gateway's base URL (without `/object`).
    /// `DATAFABRIC/datacatalog/v1` by default; the ION API suite's is
    /// `IONSERVICES/datacatalog/v1`.
    #[serde(default = "default_catalog_base")]
    #[schemars(
        title = "Data Catalog API base",
        regex(pattern = RELATIVE_API_PATH)
    )]
    pub catalog_base: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_bases_are_relative_paths_without_dot_segments_or_schemes() {
        for good in [
            DEFAULT_COMPASS_BASE,
            DEFAULT_CATALOG_BASE,
            "IONSERVICES/datalakeapi/v2/compass",
            "a.b/c-d_e",
        ] {
            assert!(is_relative_api_path(good), "{good}");
        }
        for bad in [
            "",
            "/DATAFABRIC/compass/v2",
            "DATAFABRIC/compass/v2/",
            "https://evil.example/compass",
            "DATAFABRIC/../M3",
            "./compass",
            "compass?x=1",
            "a//b",
        ] {
            assert!(!is_relative_api_path(bad), "{bad}");
        }
    }
}
