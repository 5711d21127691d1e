//! A stream declared in the manifest, on the SDK's stream API: its request for a page and
//! the parse of an answer follow the declaration, the SDK owns the loop.

use ionport_plugin_sdk::prelude::*;
use serde_json::{Map, Value, json};

use crate::manifest::{PagingStyle, StreamDecl};

/// One record: the answer's object as it is.
pub type Record = Map<String, Value>;

/// A declared stream.
#[derive(Debug)]
pub struct Declared(pub StreamDecl);

impl Declared {
    fn size_param(&self) -> &str {
        let default = match self.0.paging.style {
            PagingStyle::Page => "pageSize",
            _ => "limit",
        };
        self.0.paging.size_param.as_deref().unwrap_or(default)
    }

    fn key_field(&self) -> &str {
        self.0
            .paging
            .key_field
            .as_deref()
            .or(self.0.primary_key.first().map(String::as_str))
            .unwrap_or_default()
    }

    /// The first request: the path, the fixed parameters, the cursor's filter.
    fn first(&self, since: Option<&str>) -> GatewayRequest {
        let mut request = GatewayRequest::get(self.0.path.clone());
        for (k, v) in &self.0.query {
            request = request.query(k.clone(), v.clone());
        }
        match (&self.0.cursor, since) {
            (Some(c), Some(since)) => request.query(c.param.clone(), since),
            _ => request,
        }
    }
}

/// A next link as a request: a path relative to the API base as it is; an absolute URL
/// without its scheme, host and first segment (the tenant), which the host puts back.
fn follow(link: &str) -> GatewayRequest {
    let relative = match link.split_once("://") {
        Some((_, rest)) => rest.splitn(3, '/').nth(2).unwrap_or_default(),
        None => link.trim_start_matches('/'),
    };
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    url::form_urlencoded::parse(query.as_bytes()).fold(GatewayRequest::get(path), |r, (k, v)| {
        r.query(k.into_owned(), v.into_owned())
    })
}

impl<S: Sync> RestStream<S> for Declared {
    type Record = Record;
    type Token = String;
    // Placeholders: a declared stream answers the methods below from its declaration.
    const NAME: &'static str = "declared";
    const DESCRIPTION: &'static str = "A stream declared in a manifest.";
    const PRIMARY_KEY: &'static [&'static str] = &[];

    fn name(&self) -> &str {
        &self.0.name
    }
    fn description(&self) -> &str {
        &self.0.description
    }
    fn primary_key(&self) -> Vec<String> {
        self.0.primary_key.clone()
    }
    fn cursor(&self) -> Option<&str> {
        self.0.cursor.as_ref().map(|c| c.field.as_str())
    }
    fn paging(&self) -> Paging {
        match self.0.paging.style {
            PagingStyle::Page | PagingStyle::Offset => Paging::Offset,
            PagingStyle::None | PagingStyle::NextLink | PagingStyle::Key => Paging::Token,
        }
    }
    fn page_size(&self) -> u32 {
        self.0.page_size.unwrap_or(500)
    }
    fn record_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .0
            .schema
            .iter()
            .map(|(name, t)| (name.clone(), json!({"type": [t.json_type(), "null"]})))
            .collect();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.0.name,
            "type": "object",
            "properties": properties,
            "required": self.0.primary_key,
        })
    }

    fn request(&self, _settings: &S, page: &PageRequest<'_, String>) -> GatewayRequest {
        let p = &self.0.paging;
        let size = page.size.to_string();
        match p.style {
            PagingStyle::None => self.first(page.since),
            // A resume point between pages (state of a read with another page size) asks page
            // 0, which a source refuses: an error, never records handed over twice.
            PagingStyle::Page => self
                .first(page.since)
                .query(
                    p.page_param.as_deref().unwrap_or("page"),
                    page.page_number().unwrap_or(0).to_string(),
                )
                .query(self.size_param(), size),
            PagingStyle::Offset => self
                .first(page.since)
                .query(
                    p.offset_param.as_deref().unwrap_or("offset"),
                    page.offset.to_string(),
                )
                .query(self.size_param(), size),
            PagingStyle::NextLink => match page.token {
                Some(link) => follow(link),
                None => self.first(page.since).query(self.size_param(), size),
            },
            PagingStyle::Key => {
                let request = self.first(page.since).query(self.size_param(), size);
                match page.token {
                    Some(key) => {
                        request.query(p.key_param.as_deref().unwrap_or("after"), key.clone())
                    }
                    None => request,
                }
            }
        }
    }

    fn parse(&self, answer: &Answer<'_>) -> Result<Page<Record, String>, ConnectorError> {
        let body: Value = answer.json("a JSON answer")?;
        let records = match body.pointer(&self.0.records) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Object(fields) => Ok(fields.clone()),
                    other => Err(wrong_shape(
                        &self.0.name,
                        &format!("an item at {} is not an object: {other}", self.0.records),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(wrong_shape(
                    &self.0.name,
                    &format!(
                        "the records at {:?} are not an array but {}",
                        self.0.records,
                        kind(other)
                    ),
                ));
            }
            None => {
                return Err(wrong_shape(
                    &self.0.name,
                    &format!(
                        "the answer has nothing at the records pointer {:?}",
                        self.0.records
                    ),
                ));
            }
        };
        let next = match self.0.paging.style {
            PagingStyle::None | PagingStyle::Page | PagingStyle::Offset => None,
            PagingStyle::NextLink => {
                let at = self.0.paging.next.as_deref().unwrap_or("/next");
                match body.pointer(at) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(link)) if link.is_empty() => None,
                    Some(Value::String(link)) => Some(link.clone()),
                    Some(other) => {
                        return Err(wrong_shape(
                            &self.0.name,
                            &format!("the next link at {at:?} is {}, not text", kind(other)),
                        ));
                    }
                }
            }
            PagingStyle::Key => {
                let asked: usize = query_value(answer.request, self.size_param())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(usize::MAX);
                match records.last() {
                    Some(last) if records.len() >= asked => {
                        let field = self.key_field();
                        match last.get(field) {
                            Some(Value::String(s)) => Some(s.clone()),
                            Some(v @ Value::Number(_)) => Some(v.to_string()),
                            _ => {
                                return Err(wrong_shape(
                                    &self.0.name,
                                    &format!("the last record has no key field '{field}'"),
                                ));
                            }
                        }
                    }
                    _ => None,
                }
            }
        };
        Ok(Page { records, next })
    }
}

/// The request's value of query parameter `name`.
fn query_value<'r>(request: &'r GatewayRequest, name: &str) -> Option<&'r str> {
    request
        .query_pairs()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn wrong_shape(stream: &str, what: &str) -> ConnectorError {
    ConnectorError::unexpected_body(format!("{stream}: {what}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
