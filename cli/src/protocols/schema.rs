//! JSON Schemas reshaped for the protocols' consumers.
//!
//! ionport's schemas come from `schemars` (draft 2020-12, shared parts under `$defs`).
//! Airbyte's UI and Singer targets (many still on draft 4 validators) resolve `$ref`s
//! unevenly, so the schemas they get are self-contained: every local `$ref` inlined, no
//! `$defs`, no `$schema`. Secret fields (`x-secret`) also get Airbyte's own mark,
//! `airbyte_secret`, so a platform hides and encrypts them.

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
    if let Some(obj) = spec.as_object_mut() {
        obj.insert(
            "$schema".into(),
            Value::String("http://json-schema.org/draft-07/schema#".into()),
        );
    }
    spec
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
        assert_eq!(spec["properties"]["mode"]["oneOf"][1]["const"], "b");
        assert!(!spec.to_string().contains("$ref"));
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
