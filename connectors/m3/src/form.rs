//! The M3 connection form.

use ionport_plugin_sdk::form::IonApiCredentials;
pub use ionport_plugin_sdk::form::form_schema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which shape of the MI REST API to call.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MiApiVersion {
    /// `m3api-rest/execute` with matrix parameters (`MIRecord`/`NameValue` answers).
    V1,
    /// `m3api-rest/v2/execute` with query parameters (plain record objects).
    #[default]
    V2,
}

/// How to reach M3 and which data set to read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Infor M3 connection")]
#[serde(deny_unknown_fields)]
pub struct M3ConnectionForm {
    /// ION API Gateway credentials (from the tenant's `.ionapi` file).
    pub credentials: IonApiCredentials,
    /// The M3 company (`CONO`), 1 to 999.
    #[schemars(title = "Company (CONO)", range(min = 1, max = 999))]
    pub company: u16,
    /// The M3 division (`DIVI`); empty for company-wide data.
    #[serde(default)]
    #[schemars(title = "Division (DIVI)", length(max = 3))]
    pub division: Option<String>,
    /// The MI REST API shape to use.
    #[serde(default)]
    #[schemars(title = "MI API version")]
    pub api_version: MiApiVersion,
}
