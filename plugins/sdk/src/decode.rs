//! The one rule for reading a success answer: it must have the shape the request expects.
//!
//! A `2xx` whose body is an error document, `{}`, another API's page or an HTML login page
//! is not "no more data": taking it for an empty page ends a read early and, for
//! incremental reads, moves the cursor past records that are never read again. Every
//! decoder therefore demands its page's shape and turns anything else into a
//! [`ConnectorError`] of kind `unexpected_body` that names the request and shows the start
//! of the body.
//!
//! - [`decode_page`]: a JSON body into a serde type that has no defaults for the fields that
//!   make the page a page (OData `value`, M3 `results`, ...).
//! - [`unexpected_body`]: the error, for decoders that check the shape by hand.
//! - [`describe`]: how a request is named in those errors.
//! - [`error_message`]: the readable text of an error body (OData's, RFC 6749's, or its start).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ConnectorError, GatewayRequest, GatewayResponse};

/// How much of a body an error shows.
const BODY_HEAD_CHARS: usize = 200;

/// `GET path?name=value&…`, how errors name a request. Connectors never hold a secret, so
/// the relative path and query are safe to show.
pub fn describe(request: &GatewayRequest) -> String {
    let mut s = format!("{} {}", request.method(), request.path());
    for (i, (k, v)) in request.query_pairs().iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

/// The start of a body, for error messages.
pub fn body_head(resp: &GatewayResponse) -> String {
    let text = resp.text();
    let trimmed = text.trim();
    let head: String = trimmed.chars().take(BODY_HEAD_CHARS).collect();
    if head.len() < trimmed.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// The error for a success answer that is not `expected`: names the request, the status,
/// what was expected, why it is not that (`detail`) and the start of the body.
pub fn unexpected_body(
    request: &GatewayRequest,
    resp: &GatewayResponse,
    expected: &str,
    detail: &str,
) -> ConnectorError {
    let content_type = resp
        .header("content-type")
        .map_or(String::new(), |c| format!(", {c}"));
    ConnectorError::unexpected_body(format!(
        "unexpected body: {} answered HTTP {}{content_type} with a body that is not {expected} \
         ({detail}); it starts: {:?}",
        describe(request),
        resp.status,
        body_head(resp)
    ))
}

/// Decodes a success answer into `T`, `expected` naming its shape ("an OData page with a
/// `value` array"). `T` must not default the fields that make the answer what it is.
pub fn decode_page<T: DeserializeOwned>(
    request: &GatewayRequest,
    resp: &GatewayResponse,
    expected: &str,
) -> Result<T, ConnectorError> {
    serde_json::from_slice(&resp.body)
        .map_err(|e| unexpected_body(request, resp, expected, &e.to_string()))
}

/// The readable text of an error body: OData's `{"error":{"code","message","details"}}`,
/// RFC 6749's `{"error":"…","error_description":"…"}`, or the start of the body.
pub fn error_message(resp: &GatewayResponse) -> String {
    let text = resp.text();
    if let Ok(v) = serde_json::from_slice::<Value>(&resp.body) {
        if let Some(e) = v.get("error") {
            if let Some(obj) = e.as_object() {
                let code = obj.get("code").and_then(value_text).unwrap_or_default();
                let msg = obj.get("message").and_then(value_text).unwrap_or_default();
                let mut out = match (code.is_empty(), msg.is_empty()) {
                    (false, false) => format!("{code}: {msg}"),
                    (true, false) => msg,
                    (false, true) => code,
                    (true, true) => String::new(),
                };
                if let Some(details) = obj.get("details").and_then(Value::as_array) {
                    for d in details {
                        if let Some(m) = d.get("message").and_then(value_text)
                            && !out.contains(&m)
                        {
                            out.push_str(&format!("; {m}"));
                        }
                    }
                }
                if !out.is_empty() {
                    return out;
                }
            } else if let Some(code) = value_text(e) {
                let desc = v
                    .get("error_description")
                    .and_then(value_text)
                    .unwrap_or_default();
                return if desc.is_empty() {
                    code
                } else {
                    format!("{code}: {desc}")
                };
            }
        }
        for k in ["message", "Message", "errorMessage", "detail", "reason"] {
            if let Some(m) = v.get(k).and_then(value_text)
                && !m.is_empty()
            {
                return m;
            }
        }
    }
    let head: String = text.trim().chars().take(300).collect();
    if head.is_empty() {
        "no error details in the response".into()
    } else {
        head
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
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Page {
        #[allow(dead_code)]
        value: Vec<serde_json::Value>,
    }

    fn resp(body: &str) -> GatewayResponse {
        GatewayResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_body_without_the_page_field_is_an_unexpected_body_naming_the_request() {
        let req = GatewayRequest::get("LN/lnapi/odata/x/Y").query("$top", "5");
        for body in [
            "{}",
            r#"{"@type":"ServerReturnedNOK","Message":"no"}"#,
            r#"{"value":null}"#,
            "<html>login</html>",
        ] {
            let e = decode_page::<Page>(&req, &resp(body), "an OData page").unwrap_err();
            assert!(e.is_unexpected_body(), "{body}: {e}");
            let m = e.message();
            assert!(m.contains("GET LN/lnapi/odata/x/Y?$top=5"), "{m}");
            assert!(m.contains("an OData page"), "{m}");
            assert!(m.contains(&format!("{:?}", body)), "{m}");
        }
        assert!(decode_page::<Page>(&req, &resp(r#"{"value":[]}"#), "an OData page").is_ok());
    }
}
