//! The streams manifest: its types (from which its JSON Schema is generated), its loading
//! with `file:line:column` errors, and the checks serde cannot make.
//!
//! The manifest is parsed straight into these types by the `toml` crate, which knows the
//! span of every value: an unknown key, a value of the wrong type or a missing field is
//! refused with the line and column where it is. The JSON Schema written to `schemas/`
//! (`cargo xtask schemas`) is generated from the same types, so editors and the parser
//! agree on what a manifest is.

use std::collections::BTreeMap;
use std::path::Path;

use ionport_plugin_sdk::ConnectorError;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A streams manifest: the streams one ION API offers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The streams, each a `[[streams]]` table.
    #[schemars(with = "Vec<StreamDecl>")]
    pub streams: Vec<Spanned<StreamDecl>>,
}

/// One stream: where its records are and how to page through them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamDecl {
    /// The stream's (task's) name: lowercase letters, digits and underscores.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub name: String,
    /// What the stream holds, one sentence.
    pub description: String,
    /// The resource, relative to the tenant's API base (e.g. `CSI/IDORequestService/...`).
    pub path: String,
    /// Query parameters sent with every request.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Where the records are in the answer: a JSON pointer (`/value`, `/data/items`;
    /// `""` for an answer that is the array itself).
    pub records: String,
    /// How the pages are addressed.
    pub paging: PagingDecl,
    /// Records per page when the read does not say.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// The fields that identify a record.
    pub primary_key: Vec<String>,
    /// The field incremental reads advance on, and how a request filters on it.
    #[serde(default)]
    pub cursor: Option<CursorDecl>,
    /// The record's fields and their types.
    pub schema: BTreeMap<String, FieldType>,
}

/// How a stream's pages are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PagingStyle {
    /// One request: the answer holds every record.
    None,
    /// A page number (from 1) and a page size: `page_param`, `size_param`.
    Page,
    /// An offset (from 0) and a limit: `offset_param`, `size_param`.
    Offset,
    /// The answer gives the next page's URL or path at the JSON pointer `next`; none ends.
    NextLink,
    /// The last record's `key_field` is the next request's `key_param`; a short page ends.
    Key,
}

/// The paging of a stream; the parameters not of its style must be left out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagingDecl {
    /// The paging style.
    pub style: PagingStyle,
    /// `page`: the page number's parameter (default `page`).
    #[serde(default)]
    pub page_param: Option<String>,
    /// `offset`: the offset's parameter (default `offset`).
    #[serde(default)]
    pub offset_param: Option<String>,
    /// `page`, `offset`, `key`, `next_link`: the page size's parameter (default `limit`;
    /// `pageSize` for `page`). A `next_link` stream sends it on the first request only.
    #[serde(default)]
    pub size_param: Option<String>,
    /// `next_link`: the JSON pointer of the next page's link in the answer (default `/next`).
    #[serde(default)]
    pub next: Option<String>,
    /// `key`: the parameter the last key is sent in (default `after`).
    #[serde(default)]
    pub key_param: Option<String>,
    /// `key`: the record field whose last value is sent (default: the primary key's only field).
    #[serde(default)]
    pub key_field: Option<String>,
}

/// The incremental cursor: a field and the query parameter that filters on it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorDecl {
    /// The record field incremental reads advance on (an ISO timestamp or a number).
    pub field: String,
    /// The query parameter that asks for records whose field is at or after a value
    /// (`>=`: records of the last value are read again, the key deduplicates them).
    pub param: String,
}

/// A record field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl FieldType {
    /// The JSON Schema type name.
    pub fn json_type(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }
}

/// The manifest's JSON Schema.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or_default()
}

/// Reads and checks the manifest at `path`: every error names `path:line:column`.
pub fn load(path: &str) -> Result<Manifest, ConnectorError> {
    let text = std::fs::read_to_string(Path::new(path)).map_err(|e| {
        ConnectorError::invalid_input(format!(
            "the streams manifest {path} cannot be read: {e} (expected the path of a TOML \
             manifest, see docs/ionapi-manifest.md)"
        ))
    })?;
    parse(path, &text)
}

/// Parses and checks manifest `text`, naming it `origin` in errors.
pub fn parse(origin: &str, text: &str) -> Result<Manifest, ConnectorError> {
    let manifest: Manifest = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| position(text, s.start)).unwrap_or((1, 1));
        // The line itself, so the message names the key even when serde's does not
        // ("invalid type: integer `7`, expected a string").
        let line = text.lines().nth(at.0 - 1).unwrap_or_default().trim();
        invalid(origin, at, &format!("{} (in `{line}`)", e.message().trim()))
    })?;
    let mut names = Vec::new();
    for stream in &manifest.streams {
        let at = position(text, stream.span().start);
        let decl = stream.get_ref();
        check_stream(decl)
            .map_err(|m| invalid(origin, at, &format!("stream '{}': {m}", decl.name)))?;
        if names.contains(&decl.name) {
            return Err(invalid(
                origin,
                at,
                &format!("stream '{}' is declared twice", decl.name),
            ));
        }
        names.push(decl.name.clone());
    }
    if manifest.streams.is_empty() {
        return Err(invalid(
            origin,
            (1, 1),
            "the manifest declares no `[[streams]]`",
        ));
    }
    Ok(manifest)
}

fn invalid(origin: &str, (line, col): (usize, usize), message: &str) -> ConnectorError {
    ConnectorError::invalid_input(format!("{origin}:{line}:{col}: {message}"))
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, col)
}

/// What serde cannot say: names, pointers, fields the key and cursor name, the
/// parameters of the paging style.
fn check_stream(s: &StreamDecl) -> Result<(), String> {
    let is_name = s.name.starts_with(|c: char| c.is_ascii_lowercase())
        && s.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !is_name {
        return Err(
            "the name must be lowercase letters, digits and underscores, starting \
                    with a letter"
                .into(),
        );
    }
    if !(s.records.is_empty() || s.records.starts_with('/')) {
        return Err(format!(
            "records '{}' is not a JSON pointer (expected e.g. \"/value\" or \"\")",
            s.records
        ));
    }
    if s.path.starts_with('/') || s.path.contains("://") {
        return Err(format!(
            "path '{}' must be relative to the API base (no leading '/', no host)",
            s.path
        ));
    }
    if s.primary_key.is_empty() {
        return Err("primary_key is empty".into());
    }
    for k in &s.primary_key {
        if !s.schema.contains_key(k) {
            return Err(format!("primary key field '{k}' is not in the schema"));
        }
    }
    if let Some(c) = &s.cursor
        && !s.schema.contains_key(&c.field)
    {
        return Err(format!("cursor field '{}' is not in the schema", c.field));
    }
    if s.page_size == Some(0) {
        return Err("page_size must be at least 1".into());
    }
    check_paging(s)
}

fn check_paging(s: &StreamDecl) -> Result<(), String> {
    let p = &s.paging;
    let given = [
        ("page_param", p.page_param.is_some(), PagingStyle::Page),
        (
            "offset_param",
            p.offset_param.is_some(),
            PagingStyle::Offset,
        ),
        ("next", p.next.is_some(), PagingStyle::NextLink),
        ("key_param", p.key_param.is_some(), PagingStyle::Key),
        ("key_field", p.key_field.is_some(), PagingStyle::Key),
    ];
    for (field, set, style) in given {
        if set && p.style != style {
            return Err(format!(
                "paging.{field} belongs to paging style {}, not {}",
                style_name(style),
                style_name(p.style)
            ));
        }
    }
    if p.size_param.is_some() && p.style == PagingStyle::None {
        return Err("paging.size_param has no meaning with paging style none".into());
    }
    if let Some(next) = &p.next
        && !next.starts_with('/')
    {
        return Err(format!("paging.next '{next}' is not a JSON pointer"));
    }
    if p.style == PagingStyle::Key {
        match &p.key_field {
            Some(f) if !s.schema.contains_key(f) => {
                return Err(format!("paging.key_field '{f}' is not in the schema"));
            }
            None if s.primary_key.len() != 1 => {
                return Err(
                    "paging style key needs paging.key_field when the primary key \
                            has several fields"
                        .into(),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn style_name(style: PagingStyle) -> &'static str {
    match style {
        PagingStyle::None => "none",
        PagingStyle::Page => "page",
        PagingStyle::Offset => "offset",
        PagingStyle::NextLink => "next_link",
        PagingStyle::Key => "key",
    }
}
