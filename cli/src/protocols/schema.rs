//! JSON Schemas reshaped for the protocols' consumers.
//!
//! ionport's schemas come from `schemars` (draft 2020-12, shared parts under `$defs`).
//! Airbyte's UI and Singer targets (many still on draft 4 validators) resolve `$ref`s
//! unevenly, so the schemas they get are self-contained: every local `$ref` inlined, no
//! `$defs`, no `$schema`. Secret fields (`x-secret`) also get Airbyte's own mark,
//! `airbyte_secret`, so a platform hides and encrypts them.
//!
//! What Airbyte gets (spec and catalog) also passes its acceptance rules, which schemars'
//! output does not: a choice of strings is an `enum` (Airbyte reads `oneOf` as a choice of
//! objects), `additionalProperties: false` is dropped (ionport still refuses unknown
//! fields when it checks a config against the form), formats outside JSON Schema's own
//! list (`uint16`, `int64`, `double`, ...) are dropped (integer ones become
//! `minimum`/`maximum`), and so is a fractional `multipleOf`, which float-based
//! validators refuse valid decimals for (`0.07` is no multiple of `0.01` in binary).

use serde_json::{Map, Value};

/// How deep `$ref`s are followed; a recursive schema is cut there (left as `{}`).
const MAX_DEPTH: usize = 32;

/// `schema` with every local `$ref` (`#/$defs/...`, `#/definitions/...`) replaced by what
/// it points at, and `$defs`, `definitions` and `$schema` removed.
pub fn self_contained(schema: &Value) -> Value {
    let mut out = inline(schema, schema, 0);
    if let Some(obj) = out.as_object_mut() {
        obj.remove("$defs");
        obj.remove("definitions");
        obj.remove("$schema");
    }
    out
}

fn inline(node: &Value, root: &Value, depth: usize) -> Value {
    match node {
        Value::Object(obj) => {
            if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
                let resolved = target
                    .strip_prefix('#')
                    .and_then(|pointer| root.pointer(pointer));
                if let Some(resolved) = resolved
                    && depth < MAX_DEPTH
                {
                    // Keywords beside the `$ref` (description, default, title) win over
                    // the target's: they describe this use of it.
                    let mut merged = match inline(resolved, root, depth + 1) {
                        Value::Object(m) => m,
                        other => return other,
                    };
                    for (k, v) in obj {
                        if k != "$ref" {
                            merged.insert(k.clone(), inline(v, root, depth + 1));
                        }
                    }
                    return Value::Object(merged);
                }
                if depth >= MAX_DEPTH {
                    return Value::Object(Map::new());
                }
            }
            Value::Object(
                obj.iter()
                    .filter(|(k, _)| depth == 0 || (*k != "$defs" && *k != "definitions"))
                    .map(|(k, v)| (k.clone(), inline(v, root, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, root, depth)).collect()),
        other => other.clone(),
    }
}

/// A connection form as Airbyte's `connectionSpecification`: self-contained, draft 7,
/// every `x-secret` field also marked `airbyte_secret`.
pub fn airbyte_spec(form: &Value) -> Value {
    let mut spec = self_contained(form);
    mark_secrets(&mut spec);
    for_airbyte(&mut spec);
    if let Some(obj) = spec.as_object_mut() {
        obj.insert(
            "$schema".into(),
            Value::String("http://json-schema.org/draft-07/schema#".into()),
        );
    }
    spec
}

/// A stream's record schema as Airbyte's catalog shows it: self-contained, within
/// Airbyte's rules.
pub fn airbyte_record_schema(schema: &Value) -> Value {
    let mut out = self_contained(schema);
    for_airbyte(&mut out);
    out
}

/// The formats JSON Schema (draft 7) defines; validators and Airbyte know no others.
const STANDARD_FORMATS: [&str; 17] = [
    "date-time",
    "date",
    "time",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// The keywords whose value is a schema, a list of schemas, or a map of them.
const SUBSCHEMA_KEYWORDS: [&str; 14] = [
    "properties",
    "patternProperties",
    "additionalProperties",
    "items",
    "additionalItems",
    "prefixItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "oneOf",
    "anyOf",
    "allOf",
];

/// Applies Airbyte's rules to `node` and every schema inside it (never to a property
/// that happens to be named like a keyword).
fn for_airbyte(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        obj.remove("additionalProperties");
    }
    if obj
        .get("multipleOf")
        .and_then(Value::as_f64)
        .is_some_and(|m| m.fract() != 0.0)
    {
        obj.remove("multipleOf");
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && !STANDARD_FORMATS.contains(&format)
    {
        if let Some((min, max)) = integer_bounds(format) {
            obj.entry("minimum").or_insert(min.into());
            if let Some(max) = max {
                obj.entry("maximum").or_insert(max.into());
            }
        }
        obj.remove("format");
    }
    string_choice_as_enum(obj);
    for keyword in SUBSCHEMA_KEYWORDS {
        match obj.get_mut(keyword) {
            Some(Value::Array(items)) => items.iter_mut().for_each(for_airbyte),
            Some(Value::Object(map))
                if keyword.ends_with("roperties") && keyword != "additionalProperties" =>
            {
                map.values_mut().for_each(for_airbyte);
            }
            Some(other) => for_airbyte(other),
            None => {}
        }
    }
}

/// The range of schemars' integer formats; the maximum only where a float-based
/// validator holds it exactly (up to 32 bits).
fn integer_bounds(format: &str) -> Option<(i64, Option<i64>)> {
    let bounds = match format {
        "uint8" => (0, Some(i64::from(u8::MAX))),
        "uint16" => (0, Some(i64::from(u16::MAX))),
        "uint32" => (0, Some(i64::from(u32::MAX))),
        "uint64" | "uint" => (0, None),
        "int8" => (i64::from(i8::MIN), Some(i64::from(i8::MAX))),
        "int16" => (i64::from(i16::MIN), Some(i64::from(i16::MAX))),
        "int32" => (i64::from(i32::MIN), Some(i64::from(i32::MAX))),
        _ => return None,
    };
    Some(bounds)
}

/// `oneOf` of string constants (schemars' output for an enum with documented variants)
/// as an `enum`, the variants' descriptions kept in the field's description.
fn string_choice_as_enum(obj: &mut Map<String, Value>) {
    let Some(Value::Array(branches)) = obj.get("oneOf") else {
        return;
    };
    let mut values = Vec::with_capacity(branches.len());
    let mut explained = Vec::new();
    for branch in branches {
        let Some(Value::String(value)) = branch.get("const") else {
            return;
        };
        if branch.get("type").is_some_and(|t| t != "string") {
            return;
        }
        if let Some(d) = branch.get("description").and_then(Value::as_str) {
            explained.push(format!("`{value}`: {d}"));
        }
        values.push(Value::String(value.clone()));
    }
    obj.remove("oneOf");
    obj.insert("type".into(), Value::String("string".into()));
    obj.insert("enum".into(), Value::Array(values));
    if !explained.is_empty() {
        let intro = obj.get("description").and_then(Value::as_str).unwrap_or("");
        let text = format!("{intro} {}", explained.join(" "))
            .trim()
            .to_string();
        obj.insert("description".into(), Value::String(text));
    }
}

fn mark_secrets(node: &mut Value) {
    match node {
        Value::Object(obj) => {
            if obj.get("x-secret").and_then(Value::as_bool) == Some(true) {
                obj.insert("airbyte_secret".into(), Value::Bool(true));
            }
            obj.values_mut().for_each(mark_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(mark_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_are_inlined_and_secrets_marked() {
        let form = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "credentials": {"$ref": "#/$defs/Creds", "description": "here"},
                "mode": {"$ref": "#/$defs/Mode", "default": "a"}
            },
            "$defs": {
                "Creds": {
                    "type": "object",
                    "description": "there",
                    "properties": {"pw": {"type": "string", "x-secret": true}}
                },
                "Mode": {"oneOf": [{"const": "a"}, {"const": "b"}]}
            }
        });
        let spec = airbyte_spec(&form);
        assert_eq!(spec["$schema"], "http://json-schema.org/draft-07/schema#");
        assert!(spec.get("$defs").is_none());
        assert_eq!(spec["properties"]["credentials"]["description"], "here");
        assert_eq!(
            spec["properties"]["credentials"]["properties"]["pw"]["airbyte_secret"],
            true
        );
        assert_eq!(spec["properties"]["mode"]["default"], "a");
        assert_eq!(spec["properties"]["mode"]["enum"], json!(["a", "b"]));
        assert!(!spec.to_string().contains("$ref"));
    }

    #[test]
    fn airbyte_rules_are_applied_to_schemas_not_to_property_names() {
        let form = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "port": {"type": "integer", "format": "uint16", "minimum": 1},
                "rows": {"type": "integer", "format": "uint64"},
                "price": {"type": "number", "multipleOf": 0.01},
                "count": {"type": "integer", "multipleOf": 5},
                "day": {"type": "integer", "format": "yyyyMMdd"},
                "at": {"type": "string", "format": "date-time"},
                "auth": {"description": "How.", "oneOf": [
                    {"const": "form", "type": "string", "description": "As fields."},
                    {"const": "basic", "type": "string", "description": "As Basic."}
                ]},
                "shape": {"oneOf": [{"type": "object"}, {"type": "string"}]},
                "format": {"type": "string"},
                "multipleOf": {"type": "number"},
                "nested": {"type": "object", "additionalProperties": false,
                           "properties": {"n": {"type": "integer", "format": "int32"}}}
            }
        });
        let spec = airbyte_spec(&form);
        let p = &spec["properties"];
        assert!(spec.get("additionalProperties").is_none());
        assert!(p["nested"].get("additionalProperties").is_none());
        assert_eq!(p["port"]["minimum"], 1, "a bound of the form wins");
        assert_eq!(p["port"]["maximum"], 65535);
        assert!(p["port"].get("format").is_none());
        assert_eq!(p["rows"]["minimum"], 0);
        assert!(p["rows"].get("maximum").is_none());
        assert!(p["price"].get("multipleOf").is_none());
        assert_eq!(p["count"]["multipleOf"], 5);
        assert!(p["day"].get("format").is_none());
        assert_eq!(p["at"]["format"], "date-time");
        assert_eq!(p["auth"]["enum"], json!(["form", "basic"]));
        assert_eq!(p["auth"]["type"], "string");
        assert!(p["auth"].get("oneOf").is_none());
        assert_eq!(
            p["auth"]["description"],
            "How. `form`: As fields. `basic`: As Basic."
        );
        assert!(p["shape"]["oneOf"].is_array(), "a choice of objects stays");
        assert_eq!(p["format"], json!({"type": "string"}));
        assert_eq!(p["multipleOf"], json!({"type": "number"}));
        assert_eq!(p["nested"]["properties"]["n"]["minimum"], i32::MIN);
    }

    #[test]
    fn a_recursive_schema_is_cut_not_looped() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
        });
        let out = self_contained(&schema);
        assert!(out.to_string().len() < 100_000);
        assert_eq!(out["type"], "object");
    }
}
