//! The LN connection form.

use ionport_plugin_sdk::form::IonApiCredentials;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_language() -> String {
    "en-US".into()
}

/// How to reach LN and which company to read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Infor LN connection")]
#[serde(deny_unknown_fields)]
pub struct LnConnectionForm {
    /// ION API Gateway credentials (from the tenant's `.ionapi` file).
    pub credentials: IonApiCredentials,
    /// The LN company, sent as `X-Infor-LnCompany`; empty for the service user's default.
    #[serde(default)]
    #[schemars(title = "Company", range(min = 0, max = 9999))]
    pub company: Option<u16>,
    /// The language of descriptions, sent as `Content-Language`.
    #[serde(default = "default_language")]
    #[schemars(title = "Language", example = "en-US")]
    pub language: String,
    /// OData services (`module.Service`) that `discover` lists; empty for the services of
    /// the predefined tasks.
    #[serde(default)]
    #[schemars(title = "OData services")]
    pub services: Vec<String>,
    /// How pages are asked for: `auto` follows the service's `@odata.nextLink`, one page
    /// at a time (falling back to `$top`/`$skip` when a full page has no link); `skip`
    /// pages by `$top`/`$skip` over the key from the start, so that a task's
    /// `pages_in_flight` windows are requested at once.
    #[serde(default)]
    #[schemars(title = "Paging")]
    pub paging: crate::Paging,
}
