//! M3 MI programs over REST for ionport connectors: building calls and reading answers, in
//! both API shapes. Moved out of `ionport-plugin-sdk`, which stays product-neutral.
//!
//! - [`MiCall`] builds a v1 request (`m3api-rest/execute/PRG/TRN;maxrecs=..;returncols=..`,
//!   matrix parameters) or a v2 request (`m3api-rest/v2/execute/PRG/TRN?maxrecs=..`).
//! - [`MiCall::parse`] reads either answer into rows of trimmed text, recognising every
//!   error shape: a whole failure answered with HTTP 200 (`ServerReturnedNOK`,
//!   `TransactionNotFound`, ...), a partial failure (`ErrorMessage` beside the records — the
//!   whole call counts as failed), the v2 result error fields, and bare HTTP errors.
//! - [`MiType`] and [`MiType::value`] type a field from the MI metadata: `A` text (trimmed,
//!   empty → null), `N` number, `D` date `yyyyMMdd` → ISO `yyyy-MM-dd` (0 → null).
//! - [`MiSettings`] and [`MiCompany`]: the connection form's MI fields (company, division,
//!   API shape) and the company a call reads, the service account's default when none is
//!   set ([`MiUser`], `MNS150MI/GetUserData`).
//! - [`check`]: "Test Connection" for an MI connector; [`catalog`]: the programs and
//!   transactions a tenant offers (`MRS001MI`); [`columns`]: a transaction's output
//!   columns declared as a table, and the record schema made of them.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use ionport_plugin_sdk::{EncodedKey, Plain, RowWriter};

pub mod catalog;
pub mod check;
pub mod columns;
mod fast;
mod rows;
mod settings;
use ionport_plugin_sdk::{ConnectorError, GatewayRequest, GatewayResponse};
pub use rows::{MiRow, MiRows, TypedRows};
pub use settings::{CompanySource, MiCompany, MiSettings, MiUser};

/// Which shape of the MI REST API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
// The connection form's name for it since the first release.
#[schemars(rename = "MiApiVersion")]
pub enum MiShape {
    /// `m3api-rest/execute` with matrix parameters (`MIRecord`/`NameValue` answers).
    V1,
    /// `m3api-rest/v2/execute` with query parameters (plain record objects).
    #[default]
    V2,
}

/// The type of an MI field, from `@type` (v1 metadata) or `MRS001MI/LstFields.TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiType {
    /// `A`: text.
    Alpha,
    /// `N`: numeric.
    Numeric,
    /// `D`: date `yyyyMMdd`.
    Date,
}

impl MiType {
    /// From the metadata letter; unknown letters are text.
    pub fn from_letter(s: &str) -> Self {
        match s.trim() {
            "N" => MiType::Numeric,
            "D" => MiType::Date,
            _ => MiType::Alpha,
        }
    }

    /// Types a raw MI value. Numbers that do not parse stay text rather than being lost.
    pub fn value(self, raw: &str) -> Value {
        let t = raw.trim();
        match self {
            MiType::Alpha => {
                if t.is_empty() {
                    Value::Null
                } else {
                    Value::String(t.to_string())
                }
            }
            MiType::Numeric => {
                if t.is_empty() {
                    return Value::Null;
                }
                if let Ok(i) = t.parse::<i64>() {
                    return Value::from(i);
                }
                // M3 may send a decimal comma depending on the user's settings.
                let dotted = t.replace(',', ".");
                match dotted.parse::<f64>() {
                    Ok(f) if f.is_finite() => Value::from(f),
                    _ => Value::String(t.to_string()),
                }
            }
            MiType::Date => {
                if t.is_empty() || t.chars().all(|c| c == '0') {
                    Value::Null
                } else if t.len() == 8 && t.chars().all(|c| c.is_ascii_digit()) {
                    Value::String(format!("{}-{}-{}", &t[..4], &t[4..6], &t[6..]))
                } else {
                    Value::String(t.to_string())
                }
            }
        }
    }
}

/// A raw MI value typed by [`MiType::typed`], before it is written.
enum Typed<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Float(f64),
    /// `yyyy-MM-dd`, from the eight digits of `yyyyMMdd` (the text itself beside it).
    Date([u8; 10], &'a str),
}

impl MiType {
    /// Types a raw MI value exactly as [`MiType::value`] types it, without building a value.
    fn typed(self, raw: &str) -> Typed<'_> {
        let t = trim(raw);
        if t.is_empty() {
            return Typed::Null;
        }
        match self {
            MiType::Alpha => Typed::Text(t),
            MiType::Numeric => {
                if let Ok(i) = t.parse::<i64>() {
                    return Typed::Int(i);
                }
                let parsed = if t.contains(',') {
                    t.replace(',', ".").parse::<f64>()
                } else {
                    t.parse::<f64>()
                };
                match parsed {
                    Ok(f) if f.is_finite() => Typed::Float(f),
                    _ => Typed::Text(t),
                }
            }
            MiType::Date => {
                if t.bytes().all(|b| b == b'0') {
                    Typed::Null
                } else if let (8, Some(y), Some(m), Some(d)) =
                    (t.len(), t.get(..4), t.get(4..6), t.get(6..))
                    && t.bytes().all(|b| b.is_ascii_digit())
                {
                    let mut iso = [b'-'; 10];
                    iso[..4].copy_from_slice(y.as_bytes());
                    iso[5..7].copy_from_slice(m.as_bytes());
                    iso[8..].copy_from_slice(d.as_bytes());
                    Typed::Date(iso, t)
                } else {
                    Typed::Text(t)
                }
            }
        }
    }

    /// Writes a raw MI value as field `key` of `row`, typed exactly as [`MiType::value`]
    /// types it, straight into the batch (no `Value` in between).
    pub fn write(self, row: &mut RowWriter<'_>, key: &str, raw: &str) {
        match self.typed(raw) {
            Typed::Null => row.null(key),
            Typed::Text(t) => row.str(key, t),
            Typed::Int(i) => row.i64(key, i),
            Typed::Float(f) => row.f64(key, f),
            Typed::Date(iso, t) => row.str(key, std::str::from_utf8(&iso).unwrap_or(t)),
        };
    }

    /// [`MiType::write`] with the key written as JSON before, and, when `plain`, a raw
    /// text that needs no escaping (so neither does any part of it).
    pub(crate) fn write_encoded(
        self,
        row: &mut RowWriter<'_>,
        key: &EncodedKey,
        raw: &str,
        plain: bool,
    ) {
        row.encoded_key(key);
        match self.typed(raw) {
            Typed::Null => row.null_after_key(),
            Typed::Text(t) if plain => row.plain_value(Plain::trusted(t)),
            Typed::Text(t) => row.value_after_key(t),
            Typed::Int(i) => row.value_after_key(&i),
            Typed::Float(f) => row.value_after_key(&f),
            Typed::Date(iso, t) => match std::str::from_utf8(&iso) {
                // Digits and dashes.
                Ok(iso) => row.plain_value(Plain::trusted(iso)),
                Err(_) => row.value_after_key(t),
            },
        }
    }
}

/// `str::trim`, answered at once for the common text that begins and ends with a visible
/// ASCII character.
fn trim(raw: &str) -> &str {
    match (raw.as_bytes().first(), raw.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => raw,
        _ => raw.trim(),
    }
}

/// One MI transaction call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiCall {
    /// Program, e.g. `CRS610MI`.
    pub program: String,
    /// Transaction, e.g. `LstByNumber`.
    pub transaction: String,
    /// Input fields, in order.
    pub inputs: Vec<(String, String)>,
    /// Maximum records (0 = no limit).
    pub maxrecs: u32,
    /// Output columns to return (empty = all).
    pub returncols: Vec<String>,
}

/// An MI error, from any of the error shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiError {
    /// `ServerReturnedNOK`, `TransactionNotFound`, `HTTP 400`, ...
    pub kind: String,
    /// The M3 message code, e.g. `XAU0008`.
    pub code: String,
    /// The field the error is about.
    pub field: String,
    /// M3's message.
    pub message: String,
    /// The answer was a success whose body is no MI answer at all (`{}`, an OData page, an
    /// HTML page): the call's result is unknown, not empty.
    pub unexpected_body: bool,
}

impl MiError {
    fn new(kind: impl Into<String>, code: String, field: String, message: String) -> Self {
        Self {
            kind: kind.into(),
            code,
            field,
            message,
            unexpected_body: false,
        }
    }

    fn unexpected(resp: &GatewayResponse, detail: impl Into<String>) -> Self {
        let expected = "an MI answer (v1 `MIRecord` or an error object, v2 `results`)";
        Self {
            kind: "UnexpectedBody".into(),
            code: String::new(),
            field: String::new(),
            message: format!(
                "HTTP {} with a body that is not {expected} ({}); it starts: {:?}",
                resp.status,
                detail.into(),
                ionport_plugin_sdk::decode::body_head(resp)
            ),
            unexpected_body: true,
        }
    }
}

/// A successful MI answer: rows of (field, trimmed text) and the field types when the
/// answer carried metadata (v1 with `metadata=true`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MiAnswer {
    /// The records, each a list of (field name, value with trailing blanks removed).
    pub rows: Vec<Vec<(String, String)>>,
    /// Field types from the answer's metadata (v1 only).
    pub types: HashMap<String, MiType>,
}

/// The value of field `name` in an answer's row, trimmed; empty when the row lacks it.
pub fn field<'r>(row: &'r [(String, String)], name: &str) -> &'r str {
    row.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.trim())
}

impl MiCall {
    /// A call of `program/transaction`.
    pub fn new(program: &str, transaction: &str) -> Self {
        Self {
            program: program.to_string(),
            transaction: transaction.to_string(),
            inputs: Vec::new(),
            maxrecs: 100,
            returncols: Vec::new(),
        }
    }

    /// Adds an input field (skipped when the value is empty).
    pub fn input(mut self, name: &str, value: impl Into<String>) -> Self {
        let v = value.into();
        if !v.is_empty() {
            self.inputs.push((name.to_string(), v));
        }
        self
    }

    /// Sets `maxrecs`.
    pub fn maxrecs(mut self, n: u32) -> Self {
        self.maxrecs = n;
        self
    }

    /// Sets `returncols`.
    pub fn returncols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.returncols = cols.into_iter().map(Into::into).collect();
        self
    }

    /// `PRG/TRN`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.program, self.transaction)
    }

    /// The gateway request for `shape`.
    pub fn request(&self, shape: MiShape) -> GatewayRequest {
        let mut req = match shape {
            MiShape::V1 => {
                let mut path = format!(
                    "M3/m3api-rest/execute/{}/{};maxrecs={}",
                    self.program, self.transaction, self.maxrecs
                );
                if !self.returncols.is_empty() {
                    path.push_str(";returncols=");
                    path.push_str(&self.returncols.join(","));
                }
                path.push_str(";metadata=true;excludempty=false");
                GatewayRequest::get(path)
            }
            MiShape::V2 => {
                let mut r = GatewayRequest::get(format!(
                    "M3/m3api-rest/v2/execute/{}/{}",
                    self.program, self.transaction
                ))
                .query("maxrecs", self.maxrecs.to_string());
                if !self.returncols.is_empty() {
                    r = r.query("returncols", self.returncols.join(","));
                }
                r.query("dateformat", "YMD8")
                    .query("excludeempty", "false")
                    .query("righttrim", "true")
            }
        };
        for (k, v) in &self.inputs {
            req = req.query(k.clone(), v.clone());
        }
        req.header("accept", "application/json")
    }

    /// Reads the answer to this call; every error shape becomes a [`ConnectorError`] that
    /// names the program, transaction, M3 code, field and message.
    pub fn parse(&self, resp: &GatewayResponse) -> Result<MiAnswer, ConnectorError> {
        self.parse_detailed(resp).map_err(|e| self.error(&e))
    }

    /// Like [`MiCall::parse`], keeping the [`MiError`] for callers that act on the code.
    ///
    /// A success answer must be an MI answer: v2 `results` (an array of result objects,
    /// each with a `records` array or error fields), or v1 `MIRecord` records (an array;
    /// absent only in an answer that names its `Program`) or a v1 error object. Anything
    /// else is [`MiError::unexpected_body`], never zero records.
    pub fn parse_detailed(&self, resp: &GatewayResponse) -> Result<MiAnswer, MiError> {
        if !resp.is_success() {
            return Err(http_error(resp));
        }
        if let Some(rows) = fast::rows(&resp.body) {
            return Ok(MiAnswer {
                rows,
                types: HashMap::new(),
            });
        }
        self.parse_general(resp)
    }

    /// Like [`MiCall::parse`], keeping the rows in the body they were read from: a field's
    /// text is a slice of the body, not a `String` of its own (see [`MiRows`]).
    pub fn parse_rows(&self, resp: GatewayResponse) -> Result<MiRows, ConnectorError> {
        self.parse_rows_detailed(resp).map_err(|e| self.error(&e))
    }

    fn parse_rows_detailed(&self, mut resp: GatewayResponse) -> Result<MiRows, MiError> {
        if !resp.is_success() {
            return Err(http_error(&resp));
        }
        match MiRows::borrowing(std::mem::take(&mut resp.body), fast::decode) {
            Ok(rows) => Ok(rows),
            Err(body) => {
                resp.body = body;
                self.parse_general(&resp).map(MiRows::owned)
            }
        }
    }

    /// Every success answer, through a `Value` tree: what [`fast::decode`] leaves over.
    fn parse_general(&self, resp: &GatewayResponse) -> Result<MiAnswer, MiError> {
        let v: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| MiError::unexpected(resp, format!("the answer is not JSON: {e}")))?;
        if !v.is_object() {
            return Err(MiError::unexpected(resp, "not a JSON object"));
        }
        if v.get("results").is_some() {
            parse_v2(resp, v)
        } else {
            self.parse_v1(resp, v)
        }
    }

    /// The task error for an [`MiError`]: `M3 PRG/TRN failed: kind code (field F): message`;
    /// an unexpected body is of kind `unexpected_body` and names the call's inputs.
    pub fn error(&self, e: &MiError) -> ConnectorError {
        if e.unexpected_body {
            let inputs: Vec<String> = self
                .inputs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            return ConnectorError::unexpected_body(format!(
                "unexpected body: M3 {} (maxrecs={}{}{}) answered {}",
                self.name(),
                self.maxrecs,
                if inputs.is_empty() { "" } else { ", " },
                inputs.join(", "),
                e.message
            ));
        }
        let mut s = format!("M3 {} failed: {}", self.name(), e.kind);
        if !e.code.is_empty() {
            s.push_str(&format!(" {}", e.code));
        }
        if !e.field.is_empty() {
            s.push_str(&format!(" (field {})", e.field));
        }
        if !e.message.is_empty() {
            s.push_str(&format!(": {}", e.message.trim()));
        }
        ConnectorError::gateway(s)
    }

    fn parse_v1(&self, resp: &GatewayResponse, v: Value) -> Result<MiAnswer, MiError> {
        if v.get("@type").is_some() && v.get("MIRecord").is_none() {
            return Err(v1_error(&v));
        }
        if let Some(e) = v.get("ErrorMessage").filter(|e| !e.is_null()) {
            let mut err = v1_error(e);
            if err.kind.is_empty() {
                err.kind = "ServerReturnedNOK".into();
            }
            err.message = format!("{} (partial failure after some records)", err.message);
            return Err(err);
        }
        let program = v.get("Program").and_then(Value::as_str);
        if let Some(p) = program
            && !p.trim().eq_ignore_ascii_case(&self.program)
        {
            return Err(MiError::unexpected(
                resp,
                format!("it answers program {p}, not {}", self.program),
            ));
        }
        let records = match v.get("MIRecord") {
            Some(Value::Array(a)) => a.as_slice(),
            None if program.is_some() => &[],
            None => return Err(MiError::unexpected(resp, "no `MIRecord` and no `Program`")),
            Some(_) => return Err(MiError::unexpected(resp, "`MIRecord` is not an array")),
        };
        let mut answer = MiAnswer::default();
        if let Some(fields) = v.pointer("/Metadata/Field").and_then(Value::as_array) {
            for f in fields {
                answer
                    .types
                    .insert(str_of(f, "@name"), MiType::from_letter(&str_of(f, "@type")));
            }
        }
        for r in records {
            let nv: Vec<NameValue> = r
                .get("NameValue")
                .cloned()
                .map(serde_json::from_value)
                .ok_or_else(|| MiError::unexpected(resp, "a record has no `NameValue` list"))?
                .map_err(|e| {
                    MiError::unexpected(
                        resp,
                        format!("a record's NameValue list is malformed: {e}"),
                    )
                })?;
            answer.rows.push(
                nv.into_iter()
                    .map(|p| (p.name, p.value.unwrap_or_default().trim_end().to_string()))
                    .collect(),
            );
        }
        Ok(answer)
    }
}

fn str_of(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn v1_error(v: &Value) -> MiError {
    MiError::new(
        str_of(v, "@type"),
        str_of(v, "@code"),
        str_of(v, "@field"),
        str_of(v, "Message"),
    )
}

/// The error of a v2 result object, when it failed.
fn v2_result_error(res: &Value) -> Option<MiError> {
    let not_processed = match res.get("notProcessed") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let kind = match str_of(res, "errorType") {
        t if t.is_empty() => "ServerReturnedNOK".to_string(),
        t => t,
    };
    let mut err = MiError::new(
        kind,
        str_of(res, "errorCode"),
        str_of(res, "errorField"),
        str_of(res, "errorMessage"),
    );
    if err.message.is_empty() && err.code.is_empty() && !not_processed {
        return None;
    }
    if not_processed && err.message.is_empty() {
        err.message = "the transaction was not processed".into();
    }
    Some(err)
}

/// A non-2xx answer as an MI error: the MI error shapes when the body has one (v1 error
/// object, v2 `results` or flat v2 error fields), else the gateway's error text.
fn http_error(resp: &GatewayResponse) -> MiError {
    let status = format!("HTTP {}", resp.status);
    let v = serde_json::from_slice::<Value>(&resp.body).unwrap_or(Value::Null);
    let from_body = if v.get("@code").is_some() || v.get("@type").is_some() {
        Some(v1_error(&v))
    } else if let Some(results) = v.get("results").and_then(Value::as_array) {
        results.iter().find_map(v2_result_error)
    } else if v.get("errorCode").is_some() || v.get("errorMessage").is_some() {
        v2_result_error(&v)
    } else {
        None
    };
    match from_body {
        Some(mut e) => {
            e.kind = format!("{status} {}", e.kind);
            e
        }
        None => MiError::new(
            status,
            String::new(),
            String::new(),
            ionport_plugin_sdk::decode::error_message(resp),
        ),
    }
}

#[derive(Deserialize)]
struct NameValue {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

fn parse_v2(resp: &GatewayResponse, v: Value) -> Result<MiAnswer, MiError> {
    let mut answer = MiAnswer::default();
    let results = match v.get("results") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(MiError::unexpected(resp, "`results` is empty")),
        _ => return Err(MiError::unexpected(resp, "`results` is not an array")),
    };
    for res in results {
        if !res.is_object() {
            return Err(MiError::unexpected(resp, "a result is not an object"));
        }
        if let Some(err) = v2_result_error(res) {
            return Err(err);
        }
        let records = res
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(|| MiError::unexpected(resp, "a result has no `records` array"))?;
        for r in records {
            let obj = r
                .as_object()
                .ok_or_else(|| MiError::unexpected(resp, "a record is not an object"))?;
            answer.rows.push(
                obj.iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.trim_end().to_string(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        (k.clone(), text)
                    })
                    .collect(),
            );
        }
    }
    Ok(answer)
}

/// Types a row: each field by `types` (falling back to `fallback`, then text).
pub fn typed_row(
    row: &[(String, String)],
    types: &HashMap<String, MiType>,
    fallback: &HashMap<String, MiType>,
) -> Map<String, Value> {
    row.iter()
        .map(|(k, v)| {
            let ty = types
                .get(k)
                .or_else(|| fallback.get(k))
                .copied()
                .unwrap_or(MiType::Alpha);
            (k.clone(), ty.value(v))
        })
        .collect()
}

/// Writes a row into a batch, each field typed as [`typed_row`] types it (by `types`,
/// then `fallback`, then text), without building its map.
pub fn write_typed_row<'a>(
    row: &mut RowWriter<'_>,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    types: &HashMap<String, MiType>,
    fallback: &HashMap<String, MiType>,
) {
    for (k, v) in fields {
        let ty = types
            .get(k)
            .or_else(|| fallback.get(k))
            .copied()
            .unwrap_or(MiType::Alpha);
        ty.write(row, k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> GatewayResponse {
        GatewayResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_common_v2_answer_reads_as_the_general_reader_reads_it() {
        let call = MiCall::new("CRS610MI", "LstByNumber");
        let common = [
            r#"{"results":[{"transaction":"T","records":[{"B":" b ","A":"a  ","N":1.0,"I":-0,"Z":null,"T":true,"O":{"x":[1]}}],"errorMessage":"","errorCode":"","errorField":"","errorType":"","notProcessed":false}],"wasTerminated":false}"#,
            r#"{"results":[{"records":[{"K":"1","K":"2","A":"\u00e9\n"}]},{"records":[]}]}"#,
            r#" {"x":[{"results":1}],"results":[{"records":[{"A":"1"},{"B":"2"}],"errorMessage":null}]} "#,
        ];
        for body in common {
            let r = resp(200, body);
            let fast = fast::rows(&r.body).unwrap_or_else(|| panic!("common: {body}"));
            assert_eq!(fast, call.parse_general(&r).unwrap().rows, "{body}");
        }
        let general = [
            r#"{"results":[{"records":[],"errorMessage":"XRE0103 Record does not exist","errorCode":"XRE0103"}]}"#,
            r#"{"results":[{"records":[],"notProcessed":true}]}"#,
            r#"{"results":[]}"#,
            r#"{"results":[[]]}"#,
            r#"{"results":[{"records":[1]}]}"#,
            r#"{"results":[{"records":{}}]}"#,
            r#"{"results":[{"transaction":"T"}]}"#,
            r#"{"results":[{"records":[]}],"results":[]}"#,
            r#"[{"results":[{"records":[]}]}]"#,
            r#"{"results":[{"records":[]}]} x"#,
            r#"{"MIRecord":[]}"#,
        ];
        for body in general {
            assert_eq!(fast::rows(resp(200, body).body.as_ref()), None, "{body}");
        }
    }

    #[test]
    fn rows_written_into_a_batch_read_back_as_typed_rows() {
        let raws = [
            "",
            "  ",
            "Y30000    ",
            "100",
            "-7",
            "0",
            "00",
            "12.50",
            "12,50",
            "1e3",
            "abc",
            "9223372036854775808",
            "1e999",
            "NaN",
            "inf",
            "20260131",
            "00000000",
            "2026013",
            "2026-01-31",
            "2026013x",
            "é\"\\\n",
            "  lead",
            "\u{a0}12\u{3000}",
            "x\u{2003}",
            "\u{7f}",
        ];
        let letters = ["A", "N", "D"];
        let mut row: Vec<(String, String)> = Vec::new();
        let mut types = HashMap::new();
        for (i, raw) in raws.iter().enumerate() {
            for l in letters {
                let k = format!("{l}{i}");
                types.insert(k.clone(), MiType::from_letter(l));
                row.push((k, raw.to_string()));
            }
        }
        row.push(("UNTYPED".into(), " x ".into()));
        let fallback = HashMap::from([("FB".to_string(), MiType::Numeric)]);
        row.push(("FB".into(), "42".into()));
        let mut buf = Vec::new();
        let mut w = RowWriter::open(&mut buf);
        write_typed_row(
            &mut w,
            row.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &types,
            &fallback,
        );
        w.close().unwrap();
        let written: Map<String, Value> = serde_json::from_slice(&buf).unwrap();
        assert_eq!(written, typed_row(&row, &types, &fallback));
        // Maps compare numbers by kind too: a float written as `5` would differ from `5.0`.
    }

    #[test]
    fn types_values_from_metadata() {
        assert_eq!(MiType::Alpha.value("Y30000    "), Value::from("Y30000"));
        assert_eq!(MiType::Alpha.value("   "), Value::Null);
        assert_eq!(MiType::Numeric.value("100"), Value::from(100));
        assert_eq!(MiType::Numeric.value("12.50"), Value::from(12.5));
        assert_eq!(MiType::Numeric.value("12,50"), Value::from(12.5));
        assert_eq!(MiType::Date.value("20260131"), Value::from("2026-01-31"));
        assert_eq!(MiType::Date.value("0"), Value::Null);
    }

    #[test]
    fn builds_v1_and_v2_requests() {
        let c = MiCall::new("CRS610MI", "LstByNumber")
            .input("CONO", "100")
            .maxrecs(50)
            .returncols(["CUNO", "CUNM"]);
        assert_eq!(
            c.request(MiShape::V1).path(),
            "M3/m3api-rest/execute/CRS610MI/LstByNumber;maxrecs=50;returncols=CUNO,CUNM;metadata=true;excludempty=false"
        );
        assert_eq!(
            c.request(MiShape::V2).path(),
            "M3/m3api-rest/v2/execute/CRS610MI/LstByNumber"
        );
    }

    #[test]
    fn reads_v1_records_with_metadata() {
        let body = r#"{"Program":"CRS610MI","Transaction":"LstByNumber","Metadata":{"Field":[{"@name":"CUNO","@type":"A","@length":10,"@description":"Customer"},{"@name":"CONO","@type":"N","@length":3}]},"MIRecord":[{"RowIndex":0,"NameValue":[{"Name":"CONO","Value":"100"},{"Name":"CUNO","Value":"Y30000    "}]}]}"#;
        let a = MiCall::new("CRS610MI", "LstByNumber")
            .parse(&resp(200, body))
            .unwrap();
        assert_eq!(
            a.rows,
            vec![vec![
                ("CONO".into(), "100".into()),
                ("CUNO".into(), "Y30000".into())
            ]]
        );
        assert_eq!(a.types.get("CONO"), Some(&MiType::Numeric));
    }

    #[test]
    fn every_error_shape_is_an_error_naming_program_code_field_and_message() {
        let c = MiCall::new("CRS610MI", "LstByNumber");
        let whole = r#"{"@type":"ServerReturnedNOK","@code":"XAU0008","@field":"CONO","@cfg":null,"Message":"Company 999 does not exist"}"#;
        let e = c.parse(&resp(200, whole)).unwrap_err().to_string();
        assert!(
            e.contains("CRS610MI/LstByNumber")
                && e.contains("XAU0008")
                && e.contains("CONO")
                && e.contains("does not exist"),
            "{e}"
        );
        let partial = r#"{"MIRecord":[{"NameValue":[{"Name":"CUNO","Value":"A"}]}],"ErrorMessage":{"@type":"ServerReturnedNOK","@code":"WCU0203","@field":"CUNO","Message":"Record locked"}}"#;
        let e = c.parse(&resp(200, partial)).unwrap_err().to_string();
        assert!(e.contains("WCU0203") && e.contains("partial"), "{e}");
        let v2 = r#"{"results":[{"transaction":"LstByNumber","records":[],"errorMessage":"Company 999 does not exist","errorCode":"XAU0008","errorField":"CONO","errorType":"ServerReturnedNOK","notProcessed":false}],"wasTerminated":"false","nrOfSuccessfullTransactions":0,"nrOfFailedTransactions":1}"#;
        let e = c.parse(&resp(200, v2)).unwrap_err().to_string();
        assert!(e.contains("XAU0008") && e.contains("CONO"), "{e}");
        let bare = c
            .parse(&resp(400, "Program FOO123MI not found"))
            .unwrap_err()
            .to_string();
        assert!(
            bare.contains("HTTP 400") && bare.contains("FOO123MI"),
            "{bare}"
        );
        let notjson = c.parse(&resp(200, "{\"MIRec")).unwrap_err().to_string();
        assert!(notjson.contains("not JSON"), "{notjson}");
    }

    #[test]
    fn a_success_that_is_no_mi_answer_is_an_unexpected_body_not_zero_rows() {
        let c = MiCall::new("CRS610MI", "LstByNumber").input("CUNO", "C1");
        for body in [
            "{}",
            r#"{"@odata.context":"$metadata#X","value":[]}"#,
            r#"{"results":[]}"#,
            r#"{"results":[{"transaction":"LstByNumber"}]}"#,
            r#"{"MIRecord":{}}"#,
            r#"{"Program":"MMS200MI","Transaction":"LstByNumber","MIRecord":[]}"#,
            r#"[1,2]"#,
        ] {
            let e = c.parse(&resp(200, body)).unwrap_err();
            assert!(e.is_unexpected_body(), "{body}: {e}");
            assert!(e.message().contains("CRS610MI/LstByNumber"), "{e}");
            assert!(e.message().contains("CUNO=C1"), "{e}");
            assert!(e.message().contains(&format!("{body:?}")), "{e}");
        }
        let empty = r#"{"Program":"CRS610MI","Transaction":"LstByNumber","MIRecord":[]}"#;
        assert!(c.parse(&resp(200, empty)).unwrap().rows.is_empty());
        let named_only = r#"{"Program":"CRS610MI","Transaction":"LstByNumber"}"#;
        assert!(c.parse(&resp(200, named_only)).unwrap().rows.is_empty());
    }

    #[test]
    fn http_errors_read_like_v1_errors_whatever_the_body_shape() {
        let c = MiCall::new("MRS001MI", "LstFields");
        let gw = r#"{"error":{"code":"403","message":"Forbidden: no rights"}}"#;
        let e = c.parse(&resp(403, gw)).unwrap_err().to_string();
        assert!(
            e.contains("HTTP 403") && e.contains("Forbidden: no rights"),
            "{e}"
        );
        assert!(!e.contains("{\""), "no raw JSON: {e}");
        let v2 = r#"{"results":[{"transaction":"LstFields","errorMessage":"Not authorized","errorCode":"XAU0001","errorField":"MINM","errorType":"ServerReturnedNOK"}]}"#;
        let e = c.parse(&resp(500, v2)).unwrap_err().to_string();
        assert!(
            e.contains("MRS001MI/LstFields")
                && e.contains("XAU0001")
                && e.contains("(field MINM)")
                && e.contains("Not authorized")
                && !e.contains("{\""),
            "{e}"
        );
    }
}
