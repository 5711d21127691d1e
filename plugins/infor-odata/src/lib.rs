//! OData v4 helpers for ionport connectors that read OData services (Infor LN, ...) through
//! the gateway. Moved out of `ionport-plugin-sdk`, which stays product-neutral.
//!
//! - [`next_link_request`]: turns an `@odata.nextLink` (absolute URL, absolute path or
//!   relative reference) into a [`GatewayRequest`] relative to the connection's API base.
//! - [`literal`], [`keyset_after`]: `$filter` literals and the "rows after this key"
//!   condition used to resume a key-ordered read.
//! - [`error_message`]: the readable text of an OData (or gateway) error body
//!   `{"error":{"code":…,"message":…,"details":[…]}}`.
//! - [`Page`]: one page of an entity-set response; [`Page::decode`] refuses any other shape.
//!
//! What it is not: an OData client. Paging policy (server-driven links, `$top`/`$skip`,
//! page sizes, retries) belongs to the connector.

use serde::Deserialize;
use serde_json::{Map, Value};

pub use ionport_plugin_sdk::decode::error_message;
use ionport_plugin_sdk::{ConnectorError, GatewayRequest, GatewayResponse};

/// One page of an entity-set response: the entities and the link to the next page.
///
/// `value` is required: a success answer without a `value` array (an error document, `{}`,
/// another API's answer) is not an empty page but an unexpected body ([`Page::decode`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Page {
    /// The entities, annotations included.
    pub value: Vec<Map<String, Value>>,
    /// `@odata.nextLink`, when the server has more.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    /// `@odata.count`, when `$count=true` was asked.
    #[serde(rename = "@odata.count", default)]
    pub count: Option<u64>,
}

/// What an entity-set answer must be, for error messages.
pub const PAGE_SHAPE: &str = "an OData page (a JSON object with a `value` array of entities)";

impl Page {
    /// Decodes the success answer to `request`; anything but an OData page is an
    /// `unexpected_body` error naming the request and showing the body.
    pub fn decode(
        request: &GatewayRequest,
        resp: &GatewayResponse,
    ) -> Result<Self, ConnectorError> {
        ionport_plugin_sdk::decode::decode_page(request, resp, PAGE_SHAPE)
    }
}

/// Removes the instance annotations (`@odata.etag`, `@odata.id`, …) of an entity.
pub fn strip_annotations(entity: &mut Map<String, Value>) {
    entity.retain(|k, _| !k.starts_with('@') && !k.contains("@odata."));
}

/// Decodes one query-string component: `%XX` escapes and `+` (a space in query strings).
///
/// Lenient, as browsers and servers are: a `%` not followed by two hex digits stays as it
/// is, and bytes that are not UTF-8 become U+FFFD. A thin wrapper over the `url` project's
/// `form_urlencoded`, kept because connectors outside this repository call it.
pub fn percent_decode(s: &str) -> String {
    // `+` must become a space before `%2B` is decoded to a literal `+`, so it is replaced
    // first; `form_urlencoded` has no single-component decoder to do both.
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits a query string into decoded `(name, value)` pairs (`application/x-www-form-urlencoded`
/// rules: empty pairs skipped, a pair without `=` has an empty value).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Builds the GET request for an `@odata.nextLink`, relative to the API base.
///
/// `current_path` is the relative path of the request the link came from (e.g.
/// `LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners`). An absolute link is
/// anchored at the first segment of `current_path` (`/TENANT/LN/…` → `LN/…`); a relative
/// link is resolved against `current_path`. A link that leaves the API is refused.
pub fn next_link_request(link: &str, current_path: &str) -> Result<GatewayRequest, ConnectorError> {
    let link = link.trim();
    let (path_part, query) = match link.split_once('?') {
        Some((p, q)) => (p, q),
        None => (link, ""),
    };
    let current = current_path.trim_start_matches('/');
    let relative = if let Some(idx) = path_part.find("://") {
        // scheme://host[:port]/path
        let after = &path_part[idx + 3..];
        let path = after.find('/').map_or("", |i| &after[i..]);
        anchor(path, current).ok_or_else(|| foreign(link))?
    } else if path_part.starts_with('/') {
        anchor(path_part, current).ok_or_else(|| foreign(link))?
    } else if path_part.is_empty() {
        current.to_string()
    } else {
        // Relative reference: replace the last segment of the current path.
        let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
        if dir.is_empty() {
            path_part.to_string()
        } else {
            format!("{dir}/{path_part}")
        }
    };
    let mut req = GatewayRequest::get(relative);
    for (k, v) in parse_query(query) {
        req = req.query(k, v);
    }
    Ok(req)
}

fn foreign(link: &str) -> ConnectorError {
    ConnectorError::gateway(format!(
        "the server's @odata.nextLink '{link}' does not point into the API this connector reads"
    ))
}

/// The part of an absolute `path` from the segment where `current` starts.
fn anchor(path: &str, current: &str) -> Option<String> {
    let first = current.split('/').next().filter(|s| !s.is_empty())?;
    let needle = format!("/{first}/");
    let i = path.find(&needle)?;
    Some(percent_decode_path(&path[i + 1..]))
}

fn percent_decode_path(p: &str) -> String {
    // '+' is literal in a path (RFC 3986); only %XX escapes are decoded.
    percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned()
}

/// A `$filter` literal for a JSON value: strings quoted (`'` doubled), numbers and
/// booleans as they are, timestamps (ISO-8601 strings, when `as_timestamp`) unquoted.
pub fn literal(v: &Value, as_timestamp: bool) -> String {
    match v {
        Value::String(s) if as_timestamp => s.clone(),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// The condition "rows after `values` in the order of `keys`" (lexicographic over several
/// columns): `k1 gt v1 or (k1 eq v1 and k2 gt v2) …`. `values` holds `$filter` literals.
pub fn keyset_after(keys: &[String], values: &[String]) -> Option<String> {
    let n = keys.len().min(values.len());
    if n == 0 {
        return None;
    }
    fn build(keys: &[String], values: &[String], i: usize, n: usize) -> String {
        let gt = format!("{} gt {}", keys[i], values[i]);
        if i + 1 == n {
            gt
        } else {
            format!(
                "{gt} or ({} eq {} and ({}))",
                keys[i],
                values[i],
                build(keys, values, i + 1, n)
            )
        }
    }
    Some(build(keys, values, 0, n))
}

/// An OData error code (`error.code`), when the body has one.
pub fn error_code(resp: &GatewayResponse) -> Option<String> {
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    match v.get("error")? {
        Value::Object(o) => o.get("code").and_then(value_text),
        other => value_text(other),
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_links_become_relative_requests() {
        let cur = "LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners";
        let r = next_link_request(
            "http://127.0.0.1:4000/T1/LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners?%24orderby=BusinessPartner&%24skiptoken=10-10&%24filter=Name+eq+%27a+b%27",
            cur,
        )
        .expect("link");
        assert_eq!(r.path(), cur);
        let r2 = next_link_request("BusinessPartners?$skiptoken=5", cur).expect("relative");
        assert_eq!(r2.path(), cur);
        let r3 = next_link_request("/T1/LN/lnapi/odata/x/Y?a=1", cur).expect("absolute path");
        assert_eq!(r3.path(), "LN/lnapi/odata/x/Y");
        assert!(next_link_request("https://evil.example/other/path", cur).is_err());
        assert_eq!(
            parse_query("%24filter=Name+eq+%27a+b%27&x"),
            vec![
                ("$filter".to_string(), "Name eq 'a b'".to_string()),
                ("x".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn decoding_is_lenient_on_bad_input() {
        // The behaviour of the hand-written decoder this replaced, kept for callers.
        for (raw, decoded) in [
            ("%41", "A"),
            ("a+b%2B", "a b+"),
            ("%C3%A9", "\u{e9}"),
            // an invalid or cut-off escape stays as written
            ("%zz", "%zz"),
            ("%4", "%4"),
            ("%", "%"),
            ("a%2", "a%2"),
            ("%%41", "%A"),
            // bytes that are not UTF-8 become U+FFFD
            ("%ff", "\u{fffd}"),
            ("x%C3", "x\u{fffd}"),
        ] {
            assert_eq!(percent_decode(raw), decoded, "{raw}");
        }
        assert_eq!(
            parse_query("a=%zz&&b=%ff&c=1=2"),
            vec![
                ("a".to_string(), "%zz".to_string()),
                ("b".to_string(), "\u{fffd}".to_string()),
                ("c".to_string(), "1=2".to_string()),
            ]
        );
        // In a path `+` is literal.
        assert_eq!(percent_decode_path("a+b%20c/%zz"), "a+b c/%zz");
        let r = next_link_request("/T1/LN/x+y%20z/E?$top=5", "LN/a").expect("link");
        assert_eq!(r.path(), "LN/x+y z/E");
    }

    #[test]
    fn literals_and_keysets() {
        assert_eq!(literal(&json!("O'Brien"), false), "'O''Brien'");
        assert_eq!(literal(&json!(5), false), "5");
        assert_eq!(
            literal(&json!("2025-01-01T00:00:00.000Z"), true),
            "2025-01-01T00:00:00.000Z"
        );
        let k = vec!["A".to_string(), "B".to_string()];
        assert_eq!(
            keyset_after(&k, &["'x'".into(), "3".into()]).as_deref(),
            Some("A gt 'x' or (A eq 'x' and (B gt 3))")
        );
        assert_eq!(
            keyset_after(&k[..1], &["'x'".into()]).as_deref(),
            Some("A gt 'x'")
        );
    }

    #[test]
    fn error_bodies_read_well() {
        let resp = |body: Value| GatewayResponse {
            status: 400,
            headers: vec![],
            body: body.to_string().into_bytes(),
        };
        assert_eq!(
            error_message(&resp(
                json!({"error":{"code":"X","message":"bad","details":[{"message":"more"}]}})
            )),
            "X: bad; more"
        );
        assert_eq!(
            error_message(&resp(
                json!({"error":"invalid_client","error_description":"nope"})
            )),
            "invalid_client: nope"
        );
        assert_eq!(
            error_code(&resp(json!({"error":{"code":"C"}}))).as_deref(),
            Some("C")
        );
    }
}
