//! What every destination shares: the column model derived from a stream's record schema,
//! table naming, record validation, de-duplication by primary key, secret redaction and
//! the small file-system helpers the file destinations need for atomic, durable writes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::{DestinationError, StreamSpec};

/// The column types every destination maps to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// JSON Schema `string`.
    Text,
    /// JSON Schema `integer` (64-bit signed).
    Integer,
    /// JSON Schema `number` (64-bit float).
    Number,
    /// JSON Schema `boolean`.
    Boolean,
    /// `object`, `array`, or anything without one definite type: the value as JSON.
    Json,
}

impl ColumnType {
    /// The JSON Schema name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ColumnType::Text => "string",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
        }
    }
}

impl ColumnType {
    /// The narrowest type that holds every value of both `self` and `other`: the one
    /// widening rule of schema changes. Integer → number → string → json; boolean →
    /// string → json; a type and itself is itself. A destination column of the wider type
    /// takes the narrower one's values as they are (a number's or a boolean's JSON text in
    /// a string column), so a narrowing is never applied.
    pub fn wider(self, other: ColumnType) -> ColumnType {
        use ColumnType::{Integer, Json, Number, Text};
        match (self, other) {
            (a, b) if a == b => a,
            (Json, _) | (_, Json) => Json,
            (Integer, Number) | (Number, Integer) => Number,
            _ => Text,
        }
    }

    /// Whether a column of type `self` can become `to` by widening.
    pub fn widens_to(self, to: ColumnType) -> bool {
        self != to && self.wider(to) == to
    }

    /// The JSON Schema name (`string`, `integer`, `number`, `boolean`, `json`).
    pub fn schema_name(self) -> &'static str {
        self.name()
    }
}

/// One column: the property name (used verbatim, quoted) and its type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// The property name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
}

/// A stream's table as every destination sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The stream name.
    pub stream: String,
    /// The sanitised table (or file) name.
    pub table: String,
    /// Primary-key columns first (in key order), then the others by name.
    pub columns: Vec<Column>,
    /// How many leading `columns` form the primary key (0: append only).
    pub key_len: usize,
    index: HashMap<String, usize>,
}

impl TableSpec {
    /// Builds the table of `stream` from its record schema.
    pub(crate) fn new(destination: &str, stream: &StreamSpec) -> Result<Self, DestinationError> {
        let schema_err = |message: String| DestinationError::Schema {
            destination: destination.to_string(),
            stream: stream.name.clone(),
            message,
        };
        let root = &stream.record_schema;
        let props = resolve(root, root)
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| schema_err("the record schema has no `properties`".into()))?;
        if props.is_empty() {
            return Err(schema_err("the record schema has no properties".into()));
        }
        let mut columns = Vec::with_capacity(props.len());
        for key in &stream.primary_key {
            let prop = props.get(key).ok_or_else(|| {
                schema_err(format!(
                    "primary key field `{key}` is not a property of the record schema"
                ))
            })?;
            if columns.iter().any(|c: &Column| &c.name == key) {
                return Err(schema_err(format!(
                    "primary key field `{key}` is listed twice"
                )));
            }
            columns.push(Column {
                name: key.clone(),
                ty: column_type(root, prop, 0),
            });
        }
        for (name, prop) in props {
            if stream.primary_key.contains(name) {
                continue;
            }
            columns.push(Column {
                name: name.clone(),
                ty: column_type(root, prop, 0),
            });
        }
        for c in &columns {
            if c.name.is_empty() || c.name.contains('\0') {
                return Err(schema_err(format!("unusable column name {:?}", c.name)));
            }
        }
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Ok(TableSpec {
            stream: stream.name.clone(),
            table: table_name(&stream.name),
            key_len: stream.primary_key.len(),
            columns,
            index,
        })
    }

    /// A table that knows only its primary key (enough to sort and de-duplicate records
    /// by key, as repairing a file destination does).
    pub(crate) fn key_only(stream: &str, key: Vec<Column>) -> Self {
        TableSpec {
            stream: stream.to_string(),
            table: table_name(stream),
            key_len: key.len(),
            index: key
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect(),
            columns: key,
        }
    }

    /// The primary-key columns.
    pub(crate) fn key(&self) -> &[Column] {
        &self.columns[..self.key_len]
    }

    /// The column named `name`.
    pub(crate) fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.index.get(name).map(|&i| (i, &self.columns[i]))
    }

    /// The record's primary key as a canonical string (values normalised to the column
    /// types, so a key read back from a typed store compares equal). The map form of
    /// `row::key_string`, kept as the reference that one is tested against.
    #[cfg(test)]
    pub(crate) fn key_string(&self, record: &serde_json::Map<String, Value>) -> String {
        let parts: Vec<Value> = self
            .key()
            .iter()
            .map(|c| normalise_key(c.ty, record.get(&c.name).unwrap_or(&Value::Null)))
            .collect();
        Value::Array(parts).to_string()
    }
}

/// A key value normalised to its column type (numbers as floats for `number` columns,
/// JSON values as their text for `json` columns).
pub(crate) fn normalise_key(ty: ColumnType, v: &Value) -> Value {
    match (ty, v) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Number, Value::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        (ColumnType::Json, v) => Value::String(v.to_string()),
        (_, v) => v.clone(),
    }
}

/// The columns a stream's record schema makes, with their types (key columns first):
/// what a destination would hold for it.
pub fn stream_columns(stream: &StreamSpec) -> Result<Vec<Column>, DestinationError> {
    TableSpec::new("", stream).map(|t| t.columns)
}

/// Follows a local `$ref` (`#/$defs/X` or `#/definitions/X`).
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let Some(pointer) = r.strip_prefix('#') else {
        return schema;
    };
    root.pointer(pointer).unwrap_or(schema)
}

fn column_type(root: &Value, prop: &Value, depth: u8) -> ColumnType {
    if depth > 8 {
        return ColumnType::Json;
    }
    let prop = resolve(root, prop);
    let types: Vec<&str> = match prop.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => {
            // anyOf / oneOf with one non-null branch (schemars' `Option<Struct>`).
            for k in ["anyOf", "oneOf"] {
                if let Some(branches) = prop.get(k).and_then(Value::as_array) {
                    let non_null: Vec<&Value> = branches
                        .iter()
                        .filter(|b| {
                            resolve(root, b).get("type").and_then(Value::as_str) != Some("null")
                        })
                        .collect();
                    if let [one] = non_null.as_slice() {
                        return column_type(root, one, depth + 1);
                    }
                    return ColumnType::Json;
                }
            }
            if let Some(values) = prop.get("enum").and_then(Value::as_array)
                && !values.is_empty()
                && values.iter().all(|v| v.is_string() || v.is_null())
            {
                return ColumnType::Text;
            }
            return ColumnType::Json;
        }
    };
    let non_null: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    match non_null.as_slice() {
        ["string"] => ColumnType::Text,
        ["integer"] => ColumnType::Integer,
        ["number"] | ["integer", "number"] | ["number", "integer"] => ColumnType::Number,
        ["boolean"] => ColumnType::Boolean,
        _ => ColumnType::Json,
    }
}

/// The table (or file) name of a stream.
///
/// The rule: ASCII letters are lower-cased, digits and `_` are kept, every other
/// character becomes `_` (`table:MITMAS` → `table_mitmas`, `Sales Orders` →
/// `sales_orders`). A name that is empty or starts with a digit gets a `t_` prefix; one
/// starting with `_ionport` (reserved for the state table) gets a `t` prefix. A name
/// longer than 63 bytes (the Postgres identifier limit) keeps its first 54 bytes plus `_`
/// and 8 hex digits of a hash of the stream name.
pub fn table_name(stream: &str) -> String {
    let mut out: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "t_");
    }
    if out.starts_with("_ionport") {
        out.insert(0, 't');
    }
    if out.len() > 63 {
        out.truncate(54);
        out.push_str(&format!("_{:08x}", fnv1a(stream.as_bytes())));
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Which stream owns which table, so two streams that sanitise to the same name are an
/// error instead of one silently overwriting the other.
#[derive(Debug, Default)]
pub(crate) struct TableNames(Mutex<HashMap<String, String>>);

impl TableNames {
    pub(crate) fn claim(
        &self,
        destination: &str,
        stream: &str,
        table: &str,
    ) -> Result<(), DestinationError> {
        let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match names.get(table) {
            Some(owner) if owner != stream => Err(DestinationError::Schema {
                destination: destination.to_string(),
                stream: stream.to_string(),
                message: format!("its table name `{table}` is already used by stream `{owner}`"),
            }),
            _ => {
                names.insert(table.to_string(), stream.to_string());
                Ok(())
            }
        }
    }
}

/// `url` with its password (if any) replaced by `***`. Handles URLs
/// (`postgres://user:pw@host/db`, `?password=pw`) and key-value connection strings
/// (`host=h password=pw`).
pub(crate) fn redact_url(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url)
        && u.has_host()
    {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case("password") {
                    (k.into_owned(), "***".to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        if !pairs.is_empty() {
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return u.to_string();
    }
    // Key-value form: hide the value after `password=` (quoted or not).
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(pos) = find_ci(rest, "password") {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        out.push_str(&after[..8]);
        let after = &after[8..];
        let trimmed = after.trim_start();
        if let Some(value) = trimmed.strip_prefix('=') {
            out.push_str("=***");
            let value = value.trim_start();
            rest = if let Some(q) = value.strip_prefix('\'') {
                q.find('\'').map_or("", |e| &q[e + 1..])
            } else {
                value.find(char::is_whitespace).map_or("", |e| &value[e..])
            };
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(needle)
}

/// The password contained in a URL or key-value connection string, to scrub it from any
/// message a library produces.
pub(crate) fn url_password(url: &str) -> Option<String> {
    if let Ok(u) = url::Url::parse(url)
        && u.has_host()
    {
        if let Some(p) = u.password() {
            return Some(percent_decode(p).unwrap_or_else(|| p.to_string()));
        }
        return u
            .query_pairs()
            .find(|(k, _)| k.eq_ignore_ascii_case("password"))
            .map(|(_, v)| v.into_owned());
    }
    // Key-value form: the first `password` that is a key (at the start or after a space,
    // followed by `=`), not a part of another value (`user=password_admin`).
    let lower = url.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password") {
        let pos = from + found;
        from = pos + 8;
        let at_key = url[..pos]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let Some(value) = url[pos + 8..].trim_start().strip_prefix('=') else {
            continue;
        };
        if !at_key {
            continue;
        }
        let value = value.trim_start();
        let v = if let Some(q) = value.strip_prefix('\'') {
            q.split('\'').next().unwrap_or("")
        } else {
            value.split_whitespace().next().unwrap_or("")
        };
        return Some(v.to_string());
    }
    None
}

/// Whether a Postgres URL or key-value connection string holds a password (userinfo,
/// `?password=`, `password=`).
pub(crate) fn has_password(url: &str) -> bool {
    url_password(url).is_some()
}

/// The password as the Postgres driver sees it: `%XX` escapes decoded, a `%` without two hex
/// digits kept as written (what `tokio-postgres` does, with the same crate), `None` when the
/// result is not UTF-8 (the driver refuses such a URL; the caller then scrubs the raw text).
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// `message` with `secret` masked in every encoding, and secret-shaped values too
/// ([`crate::scrub`]).
#[cfg(any(test, feature = "postgres"))]
pub(crate) fn scrub(message: &str, secret: Option<&str>) -> String {
    crate::scrub::Scrubber::with_secrets(secret).scrub(message)
}

/// Expands `${VAR}` references from the environment.
#[cfg(feature = "postgres")]
pub(crate) fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unterminated `${` reference".to_string())?;
        let name = &after[..end];
        let value = std::env::var(name)
            .map_err(|_| format!("the environment variable `{name}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z` (always three
/// digits, so that the texts sort as the times do).
pub(crate) fn now_rfc3339() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

pub(crate) use crate::atomic::{sync_dir, write_atomic};

/// A quoted SQL identifier (`"name"`, inner quotes doubled), for SQLite and Postgres.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_names() {
        assert_eq!(table_name("table:MITMAS"), "table_mitmas");
        assert_eq!(table_name("customers"), "customers");
        assert_eq!(table_name("Sales Orders"), "sales_orders");
        assert_eq!(table_name("1st"), "t_1st");
        assert_eq!(table_name(""), "t_");
        assert_eq!(table_name("_ionport_state"), "t_ionport_state");
        let long = "x".repeat(100);
        assert_eq!(table_name(&long).len(), 63);
        assert_ne!(table_name(&long), table_name(&"x".repeat(101)));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert!(!redact_url("postgres://u@h/db?password=s3cret").contains("s3cret"));
        assert_eq!(
            redact_url("host=h password=s3cret user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            redact_url("host=h password = 'a b' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            url_password("postgres://u:p%40ss@h/db").as_deref(),
            Some("p@ss")
        );
        assert_eq!(url_password("host=h password=pw").as_deref(), Some("pw"));
        // Not UTF-8 once decoded: the driver refuses the URL; the raw text is scrubbed.
        assert_eq!(
            url_password("postgres://u:p%ff@h/db").as_deref(),
            Some("p%ff")
        );
        // An invalid escape stays as written, and the valid ones beside it are still
        // decoded, as the driver does; the hand-written decoder gave up on the whole
        // password and returned `a%41%zz`, which is not the secret the driver sends.
        assert_eq!(
            url_password("postgres://u:a%41%zz@h/db").as_deref(),
            Some("aA%zz")
        );
        assert_eq!(
            url_password("postgres://u:p%4@h/db").as_deref(),
            Some("p%4")
        );
        assert_eq!(
            scrub("x p@ss y p%40ss", Some("p@ss")),
            format!("x {m} y {m}", m = crate::credentials::MASK)
        );
    }

    #[test]
    fn column_types() {
        let schema = json!({
            "$defs": {"A": {"type": "object"}},
            "properties": {
                "s": {"type": "string"}, "sn": {"type": ["string", "null"]},
                "i": {"type": "integer", "format": "int64"}, "n": {"type": ["number", "null"]},
                "b": {"type": "boolean"}, "o": {"type": "object"}, "a": {"type": "array"},
                "r": {"$ref": "#/$defs/A"}, "any": {},
                "opt": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "e": {"enum": ["x", "y"]}
            }
        });
        let spec = StreamSpec {
            name: "t".into(),
            record_schema: schema,
            primary_key: vec!["i".into()],
            cursor_field: None,
        };
        let t = TableSpec::new("d", &spec).unwrap();
        let ty = |n: &str| t.column(n).unwrap().1.ty;
        assert_eq!(t.columns[0].name, "i");
        assert_eq!(ty("s"), ColumnType::Text);
        assert_eq!(ty("sn"), ColumnType::Text);
        assert_eq!(ty("i"), ColumnType::Integer);
        assert_eq!(ty("n"), ColumnType::Number);
        assert_eq!(ty("b"), ColumnType::Boolean);
        assert_eq!(ty("o"), ColumnType::Json);
        assert_eq!(ty("a"), ColumnType::Json);
        assert_eq!(ty("r"), ColumnType::Json);
        assert_eq!(ty("any"), ColumnType::Json);
        assert_eq!(ty("opt"), ColumnType::Integer);
        assert_eq!(ty("e"), ColumnType::Text);
    }

    #[test]
    fn rfc3339() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
        let back = humantime::parse_rfc3339(&s).unwrap_or(std::time::UNIX_EPOCH);
        let off = std::time::SystemTime::now()
            .duration_since(back)
            .unwrap_or_default();
        assert!(
            off < std::time::Duration::from_secs(60),
            "{s} is {off:?} off"
        );
    }
}
