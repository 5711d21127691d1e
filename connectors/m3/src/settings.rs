//! The M3 connection form and the settings a connector call reads from it.

use ionport_infor_mi::{MiCall, MiShape};
use ionport_plugin_sdk::form::IonApiCredentials;
use ionport_plugin_sdk::{ConnectionConfig, ConnectorError, Host};
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

impl MiApiVersion {
    /// The MI shape to call.
    pub fn shape(self) -> MiShape {
        match self {
            Self::V1 => MiShape::V1,
            Self::V2 => MiShape::V2,
        }
    }
}

/// How to reach M3 and which data set to read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Infor M3 connection")]
#[serde(deny_unknown_fields)]
pub struct M3ConnectionForm {
    /// ION API Gateway credentials (from the tenant's `.ionapi` file).
    pub credentials: IonApiCredentials,
    /// The M3 company (`CONO`), 1 to 999. When left out, the service account's default
    /// company and division are used (from `MNS150MI/GetUserData`), as M3 itself does.
    #[serde(default)]
    #[schemars(title = "Company (CONO)", range(min = 1, max = 999))]
    pub company: Option<u16>,
    /// The M3 division (`DIVI`); empty for company-wide data.
    #[serde(default)]
    #[schemars(title = "Division (DIVI)", length(max = 3))]
    pub division: Option<String>,
    /// The MI REST API shape to use.
    #[serde(default)]
    #[schemars(title = "MI API version")]
    pub api_version: MiApiVersion,
}

/// The settings as configured (the form without its credentials).
#[derive(Debug, Clone, Deserialize)]
pub struct ConfiguredSettings {
    /// Company, when set.
    #[serde(default)]
    pub company: Option<u16>,
    /// Division, when set.
    #[serde(default)]
    pub division: Option<String>,
    /// API shape.
    #[serde(default)]
    pub api_version: MiApiVersion,
}

impl ConfiguredSettings {
    /// Reads the settings; a wrong company is an error naming the field.
    pub fn from_connection(c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        let s: Self = serde_json::from_value(c.settings.clone()).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "the M3 connection settings are invalid: {e} (expected an optional \"company\": 1..999, optional \"division\" and \"api_version\": \"v1\"|\"v2\")"
            ))
        })?;
        if s.company.is_some_and(|c| !(1..=999).contains(&c)) {
            return Err(ConnectorError::invalid_input(format!(
                "the M3 connection settings are invalid: company {} is not in 1..999",
                s.company.unwrap_or_default()
            )));
        }
        Ok(s)
    }

    /// The MI shape to call.
    pub fn shape(&self) -> MiShape {
        self.api_version.shape()
    }
}

/// Where the company read comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompanySource {
    /// The connection names it.
    Configured,
    /// The service account's default company (and division), from `MNS150MI/GetUserData`.
    UserDefault,
}

/// The service account as M3 sees it: one `MNS150MI/GetUserData` row.
#[derive(Debug, Clone, Default)]
pub struct UserData {
    /// Field name and value, trimmed.
    pub fields: Vec<(String, String)>,
}

impl UserData {
    /// The call.
    pub fn call() -> MiCall {
        MiCall::new("MNS150MI", "GetUserData").maxrecs(1)
    }

    /// A field's value, empty when absent.
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Asks M3.
    pub fn get(host: &Host, shape: MiShape) -> Result<Self, ConnectorError> {
        let call = Self::call();
        let answer = call.parse(&host.gateway(&call.request(shape))?)?;
        Ok(Self {
            fields: answer.rows.into_iter().next().unwrap_or_default(),
        })
    }

    /// The default company and division, or an error saying what M3 answered.
    pub fn default_company(&self) -> Result<(u16, Option<String>), ConnectorError> {
        let cono = self.field("CONO");
        let company = cono
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=999).contains(c))
            .ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "no company is set on the connection and M3 gave no default company for \
                     the service account (MNS150MI/GetUserData CONO = {cono:?}); set \
                     \"company\" on the connection"
                ))
            })?;
        let divi = self.field("DIVI");
        Ok((company, (!divi.is_empty()).then(|| divi.to_string())))
    }
}

/// The settings of one call: the company resolved.
#[derive(Debug, Clone)]
pub struct M3Settings {
    /// Company.
    pub company: u16,
    /// Division, when set.
    pub division: Option<String>,
    /// API shape.
    pub api_version: MiApiVersion,
    /// Where the company comes from.
    pub company_source: CompanySource,
}

impl M3Settings {
    /// The settings with the company: the configured one, or else the service account's
    /// default company and division (one `MNS150MI/GetUserData` call).
    pub fn resolve(host: &Host, c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        let configured = ConfiguredSettings::from_connection(c)?;
        match configured.company {
            Some(_) => Ok(Self::with_user(configured, None)?),
            None => {
                let user = UserData::get(host, configured.shape())?;
                Self::with_user(configured, Some(&user))
            }
        }
    }

    /// The settings from `configured`, taking the company from `user` when none is set.
    pub fn with_user(
        configured: ConfiguredSettings,
        user: Option<&UserData>,
    ) -> Result<Self, ConnectorError> {
        if let Some(company) = configured.company {
            return Ok(Self {
                company,
                division: configured.division,
                api_version: configured.api_version,
                company_source: CompanySource::Configured,
            });
        }
        let (company, divi) = user.unwrap_or(&UserData::default()).default_company()?;
        Ok(Self {
            company,
            // The user's division too, unless the connection names one.
            division: configured.division.or(divi),
            api_version: configured.api_version,
            company_source: CompanySource::UserDefault,
        })
    }

    /// The MI shape to call.
    pub fn shape(&self) -> MiShape {
        self.api_version.shape()
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
