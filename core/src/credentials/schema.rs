//! The JSON Schema of the `.ionapi` file (`schemas/ionapi.schema.json`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An `.ionapi` credentials file, as downloaded from Infor OS > API Gateway > Authorized
/// Apps > Download Credentials. One flat JSON object of strings; unknown keys are
/// tolerated. This type exists to describe the file; [`super::Credentials`] reads it.
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "ION API credentials file (.ionapi)",
    description = "Credentials of an Infor ION API Gateway authorized app. saak/sask are present only when the app has a service account. Unknown keys are tolerated.",
    extend("additionalProperties" = true)
)]
#[allow(missing_debug_implementations)]
pub struct IonApiFile {
    /// Tenant id, e.g. `ACME_PRD`.
    pub ti: String,
    /// The authorized app's name.
    #[serde(default)]
    pub cn: Option<String>,
    /// OAuth client id, `TENANT~random`.
    pub ci: String,
    /// OAuth client secret.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub cs: String,
    /// ION API base URL, e.g. `https://mingle-ionapi.inforcloudsuite.com` (https; http only on loopback hosts).
    #[schemars(extend("format" = "uri", "pattern" = "^https?://"))]
    pub iu: String,
    /// Authorization server base, ending with `/as/`.
    #[schemars(extend("format" = "uri", "pattern" = "^https?://"))]
    pub pu: String,
    /// Authorize path, `authorization.oauth2`.
    #[serde(default)]
    pub oa: Option<String>,
    /// Token path, `token.oauth2` (token URL = `pu + ot`).
    pub ot: String,
    /// Revoke path, `revoke_token.oauth2` (revoke URL = `pu + or`).
    #[serde(default)]
    pub or: Option<String>,
    /// Service-account access key, `TENANT#...` (the password grant's username).
    #[serde(default)]
    pub saak: Option<String>,
    /// Service-account secret key (the password grant's password).
    #[serde(default)]
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub sask: Option<String>,
    /// Format version.
    #[serde(default)]
    pub v: Option<String>,
    /// Opaque value.
    #[serde(default)]
    pub dt: Option<String>,
    /// Opaque value.
    #[serde(default)]
    pub ev: Option<String>,
}

/// The JSON Schema of the `.ionapi` file. `saak` and `sask` come together.
pub fn ionapi_schema() -> Value {
    let mut schema = schemars::schema_for!(IonApiFile).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "dependentRequired".into(),
            serde_json::json!({"saak": ["sask"], "sask": ["saak"]}),
        );
        for key in ["cn", "oa", "or", "saak", "sask", "v", "dt", "ev"] {
            if let Some(p) = obj
                .get_mut("properties")
                .and_then(|p| p.get_mut(key))
                .and_then(Value::as_object_mut)
            {
                // Optional keys are strings when present (null is tolerated by the reader,
                // but the files Infor writes never contain it).
                p.insert("type".into(), "string".into());
                p.remove("default");
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn schema_marks_secrets_and_requires_keys() {
        let s = super::ionapi_schema();
        assert_eq!(s["properties"]["cs"]["x-secret"], true);
        assert_eq!(s["properties"]["sask"]["writeOnly"], true);
        let req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for k in ["ti", "ci", "cs", "iu", "pu", "ot"] {
            assert!(req.contains(&k), "{k}");
        }
        assert_eq!(s["properties"]["saak"]["type"], "string");
    }
}
