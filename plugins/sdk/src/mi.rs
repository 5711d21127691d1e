//! M3 MI programs over REST: building calls and reading answers, in both API shapes.
//!
//! - [`MiCall`] builds a v1 request (`m3api-rest/execute/PRG/TRN;maxrecs=..;returncols=..`,
//!   matrix parameters) or a v2 request (`m3api-rest/v2/execute/PRG/TRN?maxrecs=..`).
//! - [`MiCall::parse`] reads either answer into rows of trimmed text, recognising every
//!   error shape: a whole failure answered with HTTP 200 (`ServerReturnedNOK`,
//!   `TransactionNotFound`, ...), a partial failure (`ErrorMessage` beside the records — the
//!   whole call counts as failed), the v2 result error fields, and bare HTTP errors.
//! - [`MiType`] and [`MiType::value`] type a field from the MI metadata: `A` text (trimmed,
//!   empty → null), `N` number, `D` date `yyyyMMdd` → ISO `yyyy-MM-dd` (0 → null).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{ConnectorError, GatewayRequest, GatewayResponse};

/// Which shape of the MI REST API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MiShape {
    /// `m3api-rest/execute` with matrix parameters; `MIRecord`/`NameValue` answers.
    V1,
    /// `m3api-rest/v2/execute` with query parameters; plain record objects.
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
    pub fn parse_detailed(&self, resp: &GatewayResponse) -> Result<MiAnswer, MiError> {
        if !resp.is_success() {
            let text = resp.text();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("Message")
                        .or_else(|| v.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(MiError {
                kind: format!("HTTP {}", resp.status),
                code: String::new(),
                field: String::new(),
                message,
            });
        }
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| MiError {
            kind: "InvalidResponse".into(),
            code: String::new(),
            field: String::new(),
            message: format!("the answer is not JSON ({e})"),
        })?;
        if v.get("results").is_some() {
            parse_v2(v)
        } else {
            parse_v1(v)
        }
    }

    /// The task error for an [`MiError`].
    pub fn error(&self, e: &MiError) -> ConnectorError {
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
}

fn str_of(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn v1_error(v: &Value) -> MiError {
    MiError {
        kind: str_of(v, "@type"),
        code: str_of(v, "@code"),
        field: str_of(v, "@field"),
        message: str_of(v, "Message"),
    }
}

#[derive(Deserialize)]
struct NameValue {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

fn parse_v1(v: Value) -> Result<MiAnswer, MiError> {
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
    let mut answer = MiAnswer::default();
    if let Some(fields) = v.pointer("/Metadata/Field").and_then(Value::as_array) {
        for f in fields {
            answer
                .types
                .insert(str_of(f, "@name"), MiType::from_letter(&str_of(f, "@type")));
        }
    }
    if let Some(records) = v.get("MIRecord").and_then(Value::as_array) {
        for r in records {
            let nv: Vec<NameValue> = r
                .get("NameValue")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| MiError {
                    kind: "InvalidResponse".into(),
                    code: String::new(),
                    field: String::new(),
                    message: format!("a record's NameValue list is malformed ({e})"),
                })?
                .unwrap_or_default();
            answer.rows.push(
                nv.into_iter()
                    .map(|p| (p.name, p.value.unwrap_or_default().trim_end().to_string()))
                    .collect(),
            );
        }
    }
    Ok(answer)
}

fn parse_v2(v: Value) -> Result<MiAnswer, MiError> {
    let mut answer = MiAnswer::default();
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for res in &results {
        let not_processed = match res.get("notProcessed") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let err = MiError {
            kind: {
                let t = str_of(res, "errorType");
                if t.is_empty() {
                    "ServerReturnedNOK".into()
                } else {
                    t
                }
            },
            code: str_of(res, "errorCode"),
            field: str_of(res, "errorField"),
            message: str_of(res, "errorMessage"),
        };
        if !err.message.is_empty() || !err.code.is_empty() || not_processed {
            let mut err = err;
            if not_processed && err.message.is_empty() {
                err.message = "the transaction was not processed".into();
            }
            return Err(err);
        }
        for r in res
            .get("records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(obj) = r.as_object() else { continue };
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
}
