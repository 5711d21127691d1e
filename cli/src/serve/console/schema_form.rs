//! One generic renderer of a connector's connection form (JSON Schema) into HTML inputs,
//! and the reader that turns the posted fields back into form values — so a third-party
//! plugin's form works with no console change.
//!
//! What it understands: `type` (`string`, `integer`, `number`, `boolean`, `object`, a
//! type list with `null`), `enum` and `oneOf` of `const`s (a select), `required`,
//! `title`, `description`, `default`, `examples` (a placeholder), `minimum`/`maximum`,
//! `maxLength`, local `$ref`s, nested objects (a fieldset, e.g. the credentials block),
//! `x-secret` (a password input never filled in; left empty it keeps the value the
//! server holds), and lists of strings or numbers (written comma-separated). Anything
//! else (other arrays, free objects) is a JSON text area.
//!
//! Inputs are named `v.` + the dotted path (`v.credentials.client_id`). Browser-side
//! validation is off (`novalidate`): the server's check (`FormValues::parse`, the one
//! validator) names each wrong field, shown beside it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ionport_plugin_sdk::form::{is_secret, resolve};
use maud::{Markup, html};
use serde_json::{Map, Value};

/// The prefix of every form-value input's name.
pub const PREFIX: &str = "v.";

/// How deep nested objects are followed.
const MAX_DEPTH: usize = 8;

/// What a property is, as far as the form goes.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    /// A select of these values.
    Choice(Vec<(Value, String)>),
    Object,
    /// A list of strings or numbers, written comma-separated.
    List(ItemKind),
    /// JSON typed into a text area.
    Json,
}

struct Prop<'a> {
    path: String,
    name: &'a str,
    /// The property's schema with a `$ref` followed and the property's own keywords
    /// (title, description, default) taking precedence.
    schema: Value,
    required: bool,
}

impl Prop<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        self.schema.get(key).and_then(Value::as_str)
    }

    fn title(&self) -> String {
        self.text("title").unwrap_or(self.name).to_string()
    }

    fn secret(&self) -> bool {
        is_secret(&self.schema)
    }

    fn types(&self) -> Vec<&str> {
        match self.schema.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn nullable(&self) -> bool {
        self.types().contains(&"null")
    }

    fn kind(&self) -> Kind {
        if let Some(values) = self.schema.get("enum").and_then(Value::as_array) {
            return Kind::Choice(
                values
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| (v.clone(), label_of(v)))
                    .collect(),
            );
        }
        if let Some(options) = self
            .schema
            .get("oneOf")
            .or_else(|| self.schema.get("anyOf"))
            .and_then(Value::as_array)
            && !options.is_empty()
            && options.iter().all(|o| o.get("const").is_some())
        {
            return Kind::Choice(
                options
                    .iter()
                    .filter_map(|o| {
                        let v = o.get("const")?.clone();
                        let label = match o.get("description").and_then(Value::as_str) {
                            Some(d) => format!("{} — {d}", label_of(&v)),
                            None => label_of(&v),
                        };
                        Some((v, label))
                    })
                    .collect(),
            );
        }
        let main = self.types().into_iter().find(|t| *t != "null");
        match main {
            Some("string") => Kind::Text,
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") => {
                let items = self.schema.get("items").unwrap_or(&Value::Null);
                let item = items.get("type").and_then(Value::as_str);
                match (item, items.get("enum")) {
                    (Some("string"), None) => Kind::List(ItemKind::Text),
                    (Some("integer"), None) => Kind::List(ItemKind::Integer),
                    (Some("number"), None) => Kind::List(ItemKind::Number),
                    _ => Kind::Json,
                }
            }
            Some("object") if self.schema.get("properties").is_some() => Kind::Object,
            None if self.schema.get("properties").is_some() => Kind::Object,
            _ => Kind::Json,
        }
    }
}

/// The type of a list's items.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ItemKind {
    Text,
    Integer,
    Number,
}

/// A scalar typed as text, read as `kind`.
fn scalar(kind: ItemKind, raw: &str) -> Result<Value, String> {
    match kind {
        ItemKind::Text => Ok(Value::String(raw.to_string())),
        ItemKind::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{raw}' is not a whole number")),
        ItemKind::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("'{raw}' is not a number")),
    }
}

fn label_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The property with its `$ref` followed, its own keywords kept over the target's.
fn merged(root: &Value, prop: &Value) -> Value {
    let mut out = resolve(root, prop).clone();
    // `allOf: [{$ref}]`, as some generators write a reference with siblings.
    if let Some([only]) = prop
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        out = resolve(root, only).clone();
    }
    if let (Some(o), Some(own)) = (out.as_object_mut(), prop.as_object()) {
        for (k, v) in own {
            if k != "$ref" && k != "allOf" {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// The properties of an object schema: scalars first (required ones first), then
/// nested objects, each group in the schema's order.
fn props<'a>(root: &Value, schema: &'a Value, prefix: &str) -> Vec<Prop<'a>> {
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(map) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<Prop<'a>> = map
        .iter()
        .map(|(name, p)| Prop {
            path: if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            },
            name: name.as_str(),
            schema: merged(root, p),
            required: required.contains(name.as_str()),
        })
        .collect();
    out.sort_by_key(|p| (p.kind() == Kind::Object, !p.required));
    out
}

fn input_name(path: &str) -> String {
    format!("{PREFIX}{path}")
}

fn input_id(path: &str) -> String {
    format!("f-{}", path.replace('.', "-"))
}

/// What the renderer shows beside the values.
#[derive(Debug)]
pub struct Shown<'a> {
    /// Field errors by dotted path (`credentials.client_id`); `""` for the whole form.
    pub errors: &'a BTreeMap<String, String>,
    /// Secret paths the server holds a value for (an import, an earlier entry, the
    /// stored connection): their empty input keeps it.
    pub kept: &'a BTreeSet<String>,
}

/// The form's inputs for `values` (defaults where a value is absent).
pub fn render(form: &Value, values: &Value, shown: &Shown<'_>) -> Markup {
    object(form, form, values, "", shown, 0)
}

fn object(
    root: &Value,
    schema: &Value,
    values: &Value,
    prefix: &str,
    shown: &Shown<'_>,
    depth: usize,
) -> Markup {
    html! {
        @for p in props(root, schema, prefix) {
            @if p.kind() == Kind::Object && depth < MAX_DEPTH {
                fieldset id=(input_id(&p.path)) {
                    legend { (p.title()) }
                    @if let Some(d) = p.text("description") { p.hint { (d) } }
                    (object(root, &p.schema, values.get(p.name).unwrap_or(&Value::Null), &p.path, shown, depth + 1))
                }
            } @else {
                (field(&p, values.get(p.name), shown))
            }
        }
    }
}

fn field(p: &Prop<'_>, value: Option<&Value>, shown: &Shown<'_>) -> Markup {
    let id = input_id(&p.path);
    let name = input_name(&p.path);
    let error = shown.errors.get(&p.path);
    let desc_id = format!("{id}-desc");
    let err_id = format!("{id}-err");
    let described: String = [
        p.text("description").map(|_| desc_id.clone()),
        error.map(|_| err_id.clone()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let described = (!described.is_empty()).then_some(described);
    let value = value
        .filter(|v| !v.is_null())
        .or_else(|| p.schema.get("default").filter(|v| !v.is_null()));
    let text = value.map(label_of).unwrap_or_default();
    let placeholder = p
        .schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .map(label_of);
    let kind = p.kind();
    let invalid = error.map(|_| "true");
    let required = p.required.then_some("true");
    html! {
        div.field {
            @if kind == Kind::Boolean {
                label.check for=(id) {
                    input type="checkbox" id=(id) name=(name) value="true"
                        checked[value == Some(&Value::Bool(true))]
                        aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                    " " (p.title())
                }
            } @else {
                label for=(id) {
                    (p.title())
                    @if p.required { span.req aria-hidden="true" { " *" } }
                }
                @match &kind {
                    Kind::Choice(options) => {
                        select id=(id) name=(name) aria-describedby=[described.as_deref()]
                            aria-invalid=[invalid] aria-required=[required] {
                            @if !p.required || p.nullable() || value.is_none() {
                                option value="" { "—" }
                            }
                            @for (v, label) in options {
                                option value=(label_of(v)) selected[value == Some(v)] { (label) }
                            }
                        }
                    }
                    Kind::List(_) => {
                        input type="text" id=(id) name=(name)
                            value=(value.and_then(Value::as_array).map(|a| a.iter().map(label_of).collect::<Vec<_>>().join(", ")).unwrap_or_default())
                            placeholder="comma-separated" autocomplete="off" spellcheck="false"
                            aria-describedby=[described.as_deref()] aria-invalid=[invalid]
                            aria-required=[required];
                    }
                    Kind::Json => {
                        textarea id=(id) name=(name) rows="3" aria-describedby=[described.as_deref()]
                            aria-invalid=[invalid] aria-required=[required] {
                            (value.map(|v| serde_json::to_string_pretty(v).unwrap_or_default()).unwrap_or_default())
                        }
                    }
                    _ if p.secret() => {
                        input type="password" id=(id) name=(name) autocomplete="new-password"
                            placeholder=[shown.kept.contains(&p.path).then_some("kept — leave empty to keep it")]
                            aria-describedby=[described.as_deref()] aria-invalid=[invalid]
                            aria-required=[required] data-secret="";
                    }
                    Kind::Integer | Kind::Number => {
                        input type="number" id=(id) name=(name) value=(text)
                            step=(if kind == Kind::Integer { "1" } else { "any" })
                            min=[p.schema.get("minimum").map(label_of)]
                            max=[p.schema.get("maximum").map(label_of)]
                            aria-describedby=[described.as_deref()] aria-invalid=[invalid]
                            aria-required=[required];
                    }
                    _ => {
                        input type="text" id=(id) name=(name) value=(text)
                            placeholder=[placeholder]
                            maxlength=[p.schema.get("maxLength").map(label_of)]
                            autocomplete="off" spellcheck="false"
                            aria-describedby=[described.as_deref()] aria-invalid=[invalid]
                            aria-required=[required];
                    }
                }
            }
            @if let Some(d) = p.text("description") { small.hint id=(desc_id) { (d) } }
            @if let Some(e) = error { small.error id=(err_id) { (e) } }
        }
    }
}

/// The form values posted in `fields` (`v.`-named inputs). A secret left empty takes
/// `kept(path)` (the value the server holds), or is left out. Returns the values and
/// the fields that could not be read (by dotted path).
pub fn read(
    form: &Value,
    fields: &HashMap<String, String>,
    kept: &dyn Fn(&str) -> Option<String>,
) -> (Value, BTreeMap<String, String>) {
    let mut errors = BTreeMap::new();
    let v = read_object(form, form, fields, "", kept, &mut errors, 0);
    (Value::Object(v), errors)
}

fn read_object(
    root: &Value,
    schema: &Value,
    fields: &HashMap<String, String>,
    prefix: &str,
    kept: &dyn Fn(&str) -> Option<String>,
    errors: &mut BTreeMap<String, String>,
    depth: usize,
) -> Map<String, Value> {
    let mut out = Map::new();
    for p in props(root, schema, prefix) {
        let kind = p.kind();
        if kind == Kind::Object {
            if depth < MAX_DEPTH {
                let inner = read_object(root, &p.schema, fields, &p.path, kept, errors, depth + 1);
                if !inner.is_empty() || p.required {
                    out.insert(p.name.to_string(), Value::Object(inner));
                }
            }
            continue;
        }
        let raw = fields
            .get(&input_name(&p.path))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if kind == Kind::Boolean {
            out.insert(
                p.name.to_string(),
                Value::Bool(raw == "true" || raw == "on"),
            );
            continue;
        }
        let raw = if raw.is_empty() && p.secret() {
            kept(&p.path).unwrap_or_default()
        } else {
            raw
        };
        if raw.is_empty() {
            // Left empty: null where allowed, else absent (the default applies, or the
            // check says it is required).
            if p.nullable() {
                out.insert(p.name.to_string(), Value::Null);
            }
            continue;
        }
        let value = match &kind {
            Kind::Text => scalar(ItemKind::Text, &raw),
            Kind::Integer => scalar(ItemKind::Integer, &raw),
            Kind::Number => scalar(ItemKind::Number, &raw),
            Kind::List(item) => raw
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| scalar(*item, x))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Kind::Choice(options) => options
                .iter()
                .find(|(v, _)| label_of(v) == raw)
                .map(|(v, _)| v.clone())
                .ok_or_else(|| "not one of the choices".to_string()),
            Kind::Json => serde_json::from_str(&raw)
                .map_err(|e| format!("not valid JSON (line {} column {})", e.line(), e.column())),
            Kind::Boolean | Kind::Object => continue,
        };
        match value {
            Ok(v) => {
                out.insert(p.name.to_string(), v);
            }
            Err(e) => {
                // Never quote a secret back.
                let e = if p.secret() {
                    "not a valid value".into()
                } else {
                    e
                };
                errors.insert(p.path.clone(), e);
            }
        }
    }
    out
}

/// The dotted paths of the form's secret fields.
pub fn secret_paths(form: &Value) -> Vec<String> {
    ionport_plugin_sdk::form::secret_fields(form)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn form() -> Value {
        json!({
            "type": "object",
            "required": ["credentials", "name"],
            "$defs": {
                "Mode": {"oneOf": [{"const": "a", "description": "first"}, {"const": "b"}]},
                "Creds": {"type": "object", "required": ["secret"], "properties": {
                    "secret": {"type": "string", "x-secret": true, "title": "Secret"},
                    "user": {"type": "string"}
                }}
            },
            "properties": {
                "name": {"type": "string", "description": "a name"},
                "count": {"type": ["integer", "null"], "default": null, "minimum": 1},
                "mode": {"$ref": "#/$defs/Mode", "default": "a"},
                "on": {"type": "boolean", "default": true},
                "ids": {"type": ["array", "null"], "items": {"type": "integer"}},
                "credentials": {"$ref": "#/$defs/Creds", "description": "who"}
            }
        })
    }

    #[test]
    fn renders_types_and_never_a_secret_value() {
        let values =
            json!({"name": "n<1>", "count": 5, "credentials": {"secret": "S3CRET", "user": "u"}});
        let errors = BTreeMap::from([("credentials.user".to_string(), "bad".to_string())]);
        let kept = BTreeSet::from(["credentials.secret".to_string()]);
        let html = render(
            &form(),
            &values,
            &Shown {
                errors: &errors,
                kept: &kept,
            },
        )
        .into_string();
        assert!(!html.contains("S3CRET"), "{html}");
        assert!(html.contains(r#"type="password""#));
        assert!(html.contains("n&lt;1&gt;"));
        assert!(html.contains(r#"name="v.credentials.user""#));
        assert!(html.contains(r#"<select id="f-mode""#));
        assert!(html.contains("a — first"));
        assert!(html.contains(r#"type="checkbox""#) && html.contains("checked"));
        assert!(html.contains(r#"min="1""#));
        assert!(html.contains(r#"placeholder="comma-separated""#));
        assert!(html.contains("<legend>credentials</legend>"));
        assert!(html.contains("kept — leave empty"));
        assert!(html.contains(r#"aria-invalid="true""#));
    }

    #[test]
    fn reads_back_typed_values_and_keeps_secrets() {
        let fields: HashMap<String, String> = [
            ("v.name", "x"),
            ("v.count", "7"),
            ("v.mode", "b"),
            ("v.ids", "3, 4,"),
            ("v.credentials.user", "u"),
            ("v.credentials.secret", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept = |p: &str| (p == "credentials.secret").then(|| "held".to_string());
        let (v, errors) = read(&form(), &fields, &kept);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            v,
            json!({"name": "x", "count": 7, "mode": "b", "on": false, "ids": [3, 4],
                   "credentials": {"secret": "held", "user": "u"}})
        );
        let mut bad = fields.clone();
        bad.insert("v.count".into(), "seven".into());
        let (_, errors) = read(&form(), &bad, &|_| None);
        assert!(errors["count"].contains("whole number"));
        bad.insert("v.ids".into(), "3, x".into());
        let (_, errors) = read(&form(), &bad, &|_| None);
        assert!(errors["ids"].contains("'x'"), "{errors:?}");
    }
}
