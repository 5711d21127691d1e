//! The values a user fills into a connector's connection form, checked and split in two:
//! the credentials (for the vault and the token manager) and the settings a connector may
//! see.
//!
//! Every embedding surface takes a whole form: the HTTP API's `POST /connections`, the
//! Airbyte and Singer `--config` files, a Rust program. They all come through
//! [`FormValues::parse`], so "valid" means one thing everywhere, and no error message ever
//! repeats a secret (a schema error on a secret field names the field, never the value).
//!
//! What it is not: the pipeline file's settings (those never hold secrets; see
//! `pipeline::load`).
//!
//! ```
//! use ionport_core::form_values::{FormValues, MASK, masked};
//! use serde_json::json;
//!
//! let form = json!({
//!     "type": "object",
//!     "required": ["company"],
//!     "properties": {
//!         "company": {"type": "integer"},
//!         "api_key": {"type": "string", "x-secret": true, "writeOnly": true}
//!     }
//! });
//! let values = json!({"company": 100, "api_key": "s3cr3t-value"});
//! let parsed = FormValues::parse(&form, &values).map_err(|e| format!("{e:?}"))?;
//! assert_eq!(parsed.settings, json!({"company": 100})); // what the connector sees
//! assert_eq!(masked(&form, &values)["api_key"], MASK);  // what a user is shown
//!
//! let errors = FormValues::parse(&form, &json!({"company": "x", "api_key": 7})).unwrap_err();
//! let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
//! fields.sort();
//! assert_eq!(fields, ["api_key", "company"]);
//! # Ok::<(), String>(())
//! ```

use ionport_plugin_sdk::form::{CREDENTIALS_PROPERTY, IonApiCredentials, secret_fields};
use serde::Serialize;
use serde_json::Value;

/// What replaces a secret wherever one would be shown.
pub const MASK: &str = "********";

/// One problem in form values: which field (dotted, e.g. `credentials.token_url`; empty
/// for the whole object) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, dotted.
    pub field: String,
    /// What was expected.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// Form values that satisfied the form, split.
#[derive(Debug, Clone)]
pub struct FormValues {
    /// The credentials block, when the values had one (secrets masked in `Debug`).
    pub credentials: Option<IonApiCredentials>,
    /// Everything a connector may see: the values without the credentials block and
    /// without any field marked secret.
    pub settings: Value,
}

impl FormValues {
    /// Checks `values` against `form` (a connector's connection form) and splits them.
    /// Every problem is returned, each naming its field; no message contains a secret.
    pub fn parse(form: &Value, values: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(obj) = values.as_object() else {
            return Err(vec![FieldError {
                field: String::new(),
                reason: format!(
                    "expected a JSON object of form values, got {}",
                    kind(values)
                ),
            }]);
        };
        let secrets = secret_values(form, values);
        let mut errors = Vec::new();
        match crate::json_schema::validator_for(form) {
            Ok(validator) => {
                for e in validator.iter_errors(values) {
                    let field = e
                        .instance_path()
                        .to_string()
                        .trim_start_matches('/')
                        .replace('/', ".");
                    let reason = mask_secrets(&crate::json_schema::error_text(&e), &secrets);
                    errors.push(FieldError { field, reason });
                }
            }
            Err(e) => errors.push(FieldError {
                field: String::new(),
                reason: format!("the connector's form is not a valid JSON Schema: {e}"),
            }),
        }
        let credentials = match obj.get(CREDENTIALS_PROPERTY) {
            None | Some(Value::Null) => None,
            Some(block) => match serde_json::from_value::<IonApiCredentials>(block.clone()) {
                Ok(c) => Some(c),
                Err(e) => {
                    // The schema check above already named the field; add serde's view
                    // only when it found nothing.
                    if errors.is_empty() {
                        errors.push(FieldError {
                            field: CREDENTIALS_PROPERTY.into(),
                            reason: mask_secrets(&e.to_string(), &secrets),
                        });
                    }
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            credentials,
            settings: ionport_plugin_sdk::form::strip_secrets(form, values),
        })
    }
}

/// `values` with every secret field of `form` (and the credentials block's secrets)
/// replaced by [`MASK`], for showing a connection back to its user.
pub fn masked(form: &Value, values: &Value) -> Value {
    let mut out = values.clone();
    for path in secret_fields(form) {
        if let Some(v) = pointer_mut(&mut out, &path)
            && !v.is_null()
        {
            *v = Value::String(MASK.into());
        }
    }
    out
}

/// Fills every secret field of `incoming` that holds [`MASK`] from `stored`: what an
/// update sends back after showing a masked connection keeps its stored secret.
pub fn unmask(form: &Value, incoming: &mut Value, stored: &Value) {
    for path in secret_fields(form) {
        let kept = dotted(stored, &path).cloned();
        if let Some(v) = pointer_mut(incoming, &path)
            && v.as_str() == Some(MASK)
            && let Some(kept) = kept
        {
            *v = kept;
        }
    }
}

/// The secret strings in `values` (at the form's secret fields), to mask in messages.
pub fn secret_values(form: &Value, values: &Value) -> Vec<String> {
    secret_fields(form)
        .iter()
        .filter_map(|p| dotted(values, p))
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `text` with every (non-empty) string of `secrets` replaced by [`MASK`]: for messages
/// that may quote a value, e.g. a server's error echoing a password.
/// Every encoding of each secret is masked, and secret-shaped values too ([`crate::scrub`]).
pub fn mask_secrets(text: &str, secrets: &[String]) -> String {
    crate::scrub::Scrubber::with_secrets(secrets).scrub(text)
}

fn dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

fn pointer_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(v, |cur, key| cur.as_object_mut()?.get_mut(key))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn form() -> Value {
        json!({
            "type": "object",
            "required": ["credentials", "company"],
            "properties": {
                "company": {"type": "integer"},
                "credentials": {
                    "type": "object",
                    "required": ["password"],
                    "properties": {
                        "username": {"type": "string"},
                        "password": {"type": "integer", "x-secret": true, "writeOnly": true}
                    }
                }
            }
        })
    }

    #[test]
    fn errors_name_the_field_and_never_the_secret() {
        let values = json!({"company": "x", "credentials": {"username": "u", "password": "CANARY-SECRET-42"}});
        let errs = FormValues::parse(&form(), &values).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"company"), "{errs:?}");
        assert!(fields.contains(&"credentials.password"), "{errs:?}");
        for e in &errs {
            assert!(!e.to_string().contains("CANARY-SECRET-42"), "{e}");
        }
    }

    #[test]
    fn mask_and_unmask_round_trip() {
        let stored = json!({"company": 1, "credentials": {"username": "u", "password": 7}});
        let shown = masked(&form(), &stored);
        assert_eq!(shown["credentials"]["password"], MASK);
        assert_eq!(shown["credentials"]["username"], "u");
        let mut update = shown.clone();
        update["company"] = json!(2);
        unmask(&form(), &mut update, &stored);
        assert_eq!(update["credentials"]["password"], 7);
        assert_eq!(update["company"], 2);
    }

    #[test]
    fn not_an_object_is_refused() {
        let errs = FormValues::parse(&form(), &json!([1])).unwrap_err();
        assert!(errs[0].reason.contains("an array"), "{errs:?}");
    }
}
