//! The LN connection form.

use ionport_plugin_sdk::form::IonApiCredentials;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_language() -> String {
    "en-US".into()
}

/// How to reach LN and which company (or companies) to read.
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
    /// Several LN companies, each read for every task into the same stream, every record
    /// with the `company` it came from in its primary key. Excludes `company`.
    #[serde(default)]
    #[schemars(
        title = "Companies",
        length(min = 1),
        inner(range(min = 0, max = 9999)),
        extend("uniqueItems" = true, "x-reshapes-streams" = true)
    )]
    pub companies: Option<Vec<u16>>,
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

/// The connection form's schema: the form's fields, and `company` and `companies`
/// exclusive. JSON Schema cannot word its own errors, so the refusal is a schema whose
/// text says what to do, at the `companies` field (core shows a `not` schema's description).
pub fn schema() -> serde_json::Value {
    let mut form = ionport_plugin_sdk::form::form_schema::<LnConnectionForm>();
    if let Some(obj) = form.as_object_mut() {
        obj.insert(
            "if".into(),
            serde_json::json!({
                "properties": {"company": {"type": "integer"}},
                "required": ["company"],
            }),
        );
        obj.insert(
            "then".into(),
            serde_json::json!({
                "properties": {"companies": {"not": {
                    "type": "array",
                    "description": "company and companies exclude each other: set company for one LN company, or companies for several, not both",
                }}},
            }),
        );
    }
    form
}
