//! The MI part of a connection: the company and division to read and the API shape, and
//! the company a call reads when the connection names none — the service account's
//! default, as M3 itself takes it (`MNS150MI/GetUserData`).

use ionport_plugin_sdk::{ConnectionConfig, ConnectorError, Host};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{MiCall, MiShape, field};

/// The MI fields of a connection form, as configured.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct MiSettings {
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
    pub api_version: MiShape,
}

impl MiSettings {
    /// Reads the settings; a wrong company is an error naming the field.
    pub fn from_connection(c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        let s: Self = serde_json::from_value(c.settings.clone()).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "the M3 connection settings are invalid: {e} (expected an optional \"company\": 1..999, optional \"division\" and \"api_version\": \"v1\"|\"v2\")"
            ))
        })?;
        if let Some(c) = s.company.filter(|c| !(1..=999).contains(c)) {
            return Err(ConnectorError::invalid_input(format!(
                "the M3 connection settings are invalid: company {c} is not in 1..999"
            )));
        }
        Ok(s)
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
pub struct MiUser {
    /// Field name and value, trimmed.
    pub fields: Vec<(String, String)>,
}

impl MiUser {
    /// The call.
    pub fn call() -> MiCall {
        MiCall::new("MNS150MI", "GetUserData").maxrecs(1)
    }

    /// A field's value, empty when absent.
    pub fn field(&self, name: &str) -> &str {
        field(&self.fields, name)
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
pub struct MiCompany {
    /// Company.
    pub company: u16,
    /// Division, when set.
    pub division: Option<String>,
    /// API shape.
    pub api_version: MiShape,
    /// Where the company comes from.
    pub company_source: CompanySource,
}

impl MiCompany {
    /// The settings with the company: the configured one, or else the service account's
    /// default company and division (one `MNS150MI/GetUserData` call).
    pub fn resolve(host: &Host, c: &ConnectionConfig) -> Result<Self, ConnectorError> {
        let configured = MiSettings::from_connection(c)?;
        let user = match configured.company {
            Some(_) => None,
            None => Some(MiUser::get(host, configured.api_version)?),
        };
        Self::with_user(configured, user.as_ref())
    }

    /// The settings from `configured`, taking the company from `user` when none is set.
    pub fn with_user(
        configured: MiSettings,
        user: Option<&MiUser>,
    ) -> Result<Self, ConnectorError> {
        let (company, division, company_source) = match configured.company {
            Some(company) => (company, configured.division, CompanySource::Configured),
            None => {
                let (company, divi) = user.unwrap_or(&MiUser::default()).default_company()?;
                // The user's division too, unless the connection names one.
                let division = configured.division.or(divi);
                (company, division, CompanySource::UserDefault)
            }
        };
        Ok(Self {
            company,
            division,
            api_version: configured.api_version,
            company_source,
        })
    }

    /// The MI shape to call.
    pub fn shape(&self) -> MiShape {
        self.api_version
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
