//! The M3 connection form and the settings a connector call reads from it.

use ionport_plugin_sdk::form::IonApiCredentials;
use ionport_plugin_sdk::mi::MiShape;
use ionport_plugin_sdk::{ConnectionConfig, ConnectorError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which shape of the MI REST API to call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// The settings of one call (the form without its credentials).
#[derive(Debug, Clone, Deserialize)]
pub struct M3Settings {
    /// Company.
    pub company: u16,
    /// Division, when set.
    #[serde(default)]
    pub division: Option<String>,
    /// API shape.
    #[serde(default)]
    pub api_version: MiApiVersion,
}

impl M3Settings {
    /// Reads the settings; a missing or wrong company is an error naming the field.
    pub fn from_connection(c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        serde_json::from_value(c.settings.clone()).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "the M3 connection settings are invalid: {e} (expected \"company\": 1..999, optional \"division\" and \"api_version\": \"v1\"|\"v2\")"
            ))
        })
    }

    /// The MI shape to call.
    pub fn shape(&self) -> MiShape {
        match self.api_version {
            MiApiVersion::V1 => MiShape::V1,
            MiApiVersion::V2 => MiShape::V2,
        }
    }

    /// `CONO` as text.
    pub fn cono(&self) -> String {
        self.company.to_string()
    }

    /// The division, when not empty.
    pub fn divi(&self) -> Option<&str> {
        self.division
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
    }
}
