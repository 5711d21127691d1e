//! JSON Schema validation of what users write against a connector's forms, with one rule
//! stricter than the standard: `"type": "integer"` means a number written as an integer.
//!
//! Since draft 6 the standard counts `100.0` (and `1e2`) as an integer, and the
//! `jsonschema` crate follows it. Connectors deserialize such a field into a Rust integer
//! (`u16`, `u32`, ...), which serde refuses for a float. So a pipeline file's
//! `company = 100.0` (a TOML float, a JSON float after conversion) or an Airbyte config's
//! `"company": 100.0` would pass validation and fail at run time, far from the file and
//! the field. Here the `type` keyword is replaced by one that accepts for `integer` only
//! what serde reads as an integer: a number without fraction or exponent.
//!
//! ```
//! use serde_json::json;
//!
//! let form = json!({"type": "object", "properties": {"company": {"type": ["integer", "null"]}}});
//! let validator = ionport_core::json_schema::validator_for(&form).unwrap();
//! assert!(validator.is_valid(&json!({"company": 100})));
//! assert!(validator.is_valid(&json!({"company": null})));
//! assert!(!validator.is_valid(&json!({"company": 100.0})));
//! ```

use jsonschema::paths::Location;
use jsonschema::{Keyword, ValidationError, Validator};
use serde_json::{Map, Value};

/// A validator for `schema` whose `type: integer` refuses numbers written with a fraction
/// or an exponent. Every other keyword behaves as `jsonschema::validator_for`.
pub fn validator_for(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    jsonschema::options()
        .with_keyword("type", strict_type)
        .build(schema)
}

/// What a validation error says to a user. A `not` schema with a `description` says
/// that description (a form's own words for a forbidden combination, e.g. two fields that
/// exclude each other) instead of printing the schema.
pub fn error_text(e: &ValidationError<'_>) -> String {
    if let jsonschema::error::ValidationErrorKind::Not { schema } = e.kind()
        && let Some(description) = schema.get("description").and_then(Value::as_str)
    {
        return description.to_string();
    }
    e.to_string()
}

/// The JSON types a `type` keyword allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    Integer,
    String,
}

impl JsonType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            "number" => Self::Number,
            "integer" => Self::Integer,
            "string" => Self::String,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::String => "string",
        }
    }

    fn admits(self, v: &Value) -> bool {
        match (self, v) {
            (Self::Null, Value::Null)
            | (Self::Boolean, Value::Bool(_))
            | (Self::Object, Value::Object(_))
            | (Self::Array, Value::Array(_))
            | (Self::Number, Value::Number(_))
            | (Self::String, Value::String(_)) => true,
            // What serde can read into an integer type: no fraction, no exponent.
            (Self::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            _ => false,
        }
    }
}

struct StrictType {
    allowed: Vec<JsonType>,
}

fn strict_type<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    let names: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let allowed = names
        .into_iter()
        .map(|n| n.as_str().and_then(JsonType::parse))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            ValidationError::schema(format!(
                "`type` must be a JSON type name or a list of them, found {value}"
            ))
        })?;
    Ok(Box::new(StrictType { allowed }))
}

impl<'i> Keyword<'i> for StrictType {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        let expected: Vec<String> = self
            .allowed
            .iter()
            .map(|t| format!("\"{}\"", t.name()))
            .collect();
        let written_as_float = matches!(instance, Value::Number(n) if !(n.is_i64() || n.is_u64()));
        let hint = if self.allowed.contains(&JsonType::Integer) && written_as_float {
            " (an integer is written without a decimal point or exponent)"
        } else {
            ""
        };
        Err(ValidationError::custom(format!(
            "{instance} is not of type {}{hint}",
            expected.join(" or ")
        )))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.allowed.iter().any(|t| t.admits(instance))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_standard_validator_counts_a_float_as_an_integer() {
        // Why this module exists: if jsonschema ever changes this, the override can go.
        let standard = jsonschema::validator_for(&json!({"type": "integer"})).unwrap();
        assert!(standard.is_valid(&json!(100.0)));
    }

    #[test]
    fn integers_are_written_as_integers() {
        let v = validator_for(&json!({"type": "integer"})).unwrap();
        for ok in [json!(100), json!(-3), json!(u64::MAX)] {
            assert!(v.is_valid(&ok), "{ok}");
        }
        for bad in [
            json!(100.0),
            json!(1e2),
            json!(1.5),
            json!("100"),
            json!(null),
        ] {
            assert!(!v.is_valid(&bad), "{bad}");
            assert_eq!(v.iter_errors(&bad).count(), 1, "{bad}");
        }
        let msg = v.validate(&json!(100.0)).unwrap_err().to_string();
        assert!(
            msg.contains("100.0") && msg.contains("integer") && msg.contains("decimal point"),
            "{msg}"
        );
    }

    #[test]
    fn every_json_type_and_lists_of_them() {
        let v = validator_for(&json!({"type": ["integer", "null"]})).unwrap();
        assert!(v.is_valid(&json!(null)) && v.is_valid(&json!(7)));
        assert!(!v.is_valid(&json!(7.0)));
        let v = validator_for(&json!({"type": "number"})).unwrap();
        assert!(v.is_valid(&json!(7.0)) && v.is_valid(&json!(7)));
        let cases = [
            ("null", json!(null), json!(0)),
            ("boolean", json!(true), json!(1)),
            ("object", json!({}), json!([])),
            ("array", json!([]), json!({})),
            ("string", json!("x"), json!(1)),
        ];
        for (name, ok, bad) in cases {
            let v = validator_for(&json!({"type": name})).unwrap();
            assert!(v.is_valid(&ok), "{name}: {ok}");
            assert!(!v.is_valid(&bad), "{name}: {bad}");
        }
    }

    #[test]
    fn nested_and_referenced_integers_are_strict_and_located() {
        let form = json!({
            "type": "object",
            "properties": {"limits": {"type": "object", "properties": {"rows": {"$ref": "#/$defs/Rows"}}}},
            "$defs": {"Rows": {"type": "integer", "minimum": 1}}
        });
        let v = validator_for(&form).unwrap();
        let values = json!({"limits": {"rows": 10.0}});
        let errors: Vec<_> = v.iter_errors(&values).collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].instance_path().to_string(), "/limits/rows");
        assert!(v.is_valid(&json!({"limits": {"rows": 10}})));
    }

    #[test]
    fn a_bad_type_keyword_is_a_schema_error() {
        assert!(validator_for(&json!({"type": "integr"})).is_err());
        assert!(validator_for(&json!({"type": 3})).is_err());
    }
}
