//! The v1 (`MIRecord`/`NameValue`) and v2 (`results`) JSON shapes.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

use super::exec::{MiError, MiOutput};

/// v1 rendering options (matrix parameters).
#[derive(Debug)]
pub(crate) struct V1Options {
    pub metadata: bool,
    pub exclude_empty: bool,
    pub returncols: Option<Vec<String>>,
}

/// v2 rendering options (query parameters).
#[derive(Debug)]
pub(crate) struct V2Options {
    pub exclude_empty: bool,
    pub right_trim: bool,
    pub returncols: Option<Vec<String>>,
}

/// M3 message fields are 132 characters, right-padded.
fn pad_message(m: &str) -> String {
    format!("{m:<132}")
}

fn selected(out: &MiOutput, cols: Option<&Vec<String>>) -> Vec<usize> {
    match cols {
        Some(cols) if !cols.is_empty() => out
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| cols.iter().any(|c| c.eq_ignore_ascii_case(f.name)))
            .map(|(i, _)| i)
            .collect(),
        _ => (0..out.fields.len()).collect(),
    }
}

#[derive(Serialize)]
struct V1Error<'a> {
    #[serde(rename = "@type")]
    kind: &'a str,
    #[serde(rename = "@code")]
    code: Option<&'a str>,
    #[serde(rename = "@field")]
    field: Option<&'a str>,
    #[serde(rename = "@cfg")]
    cfg: Option<&'a str>,
    #[serde(rename = "Message")]
    message: String,
}

impl<'a> V1Error<'a> {
    fn of(e: &'a MiError) -> Self {
        Self {
            kind: e.kind,
            code: e.code.as_deref(),
            field: e.field.as_deref(),
            cfg: e.cfg.as_deref(),
            message: pad_message(&e.message),
        }
    }
}

#[derive(Serialize)]
struct V1Field<'a> {
    #[serde(rename = "@name")]
    name: &'a str,
    #[serde(rename = "@type")]
    ty: &'a str,
    #[serde(rename = "@length")]
    length: u16,
    #[serde(rename = "@description")]
    description: &'a str,
}

#[derive(Serialize)]
struct V1Metadata<'a> {
    #[serde(rename = "Field")]
    field: Vec<V1Field<'a>>,
}

struct NameValues<'a> {
    out: &'a MiOutput,
    row: &'a [String],
    cols: &'a [usize],
    exclude_empty: bool,
}

impl Serialize for NameValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Nv<'a> {
            #[serde(rename = "Name")]
            name: &'a str,
            #[serde(rename = "Value")]
            value: &'a str,
        }
        let mut seq = s.serialize_seq(None)?;
        for &c in self.cols {
            let v = self.row[c].as_str();
            if self.exclude_empty && v.trim().is_empty() {
                continue;
            }
            seq.serialize_element(&Nv {
                name: self.out.fields[c].name,
                value: v,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct V1Record<'a> {
    #[serde(rename = "RowIndex")]
    row_index: usize,
    #[serde(rename = "NameValue")]
    name_value: NameValues<'a>,
}

#[derive(Serialize)]
struct V1Response<'a> {
    #[serde(rename = "Program")]
    program: &'a str,
    #[serde(rename = "Transaction")]
    transaction: &'a str,
    #[serde(rename = "Metadata", skip_serializing_if = "Option::is_none")]
    metadata: Option<V1Metadata<'a>>,
    #[serde(rename = "MIRecord")]
    records: Vec<V1Record<'a>>,
    #[serde(rename = "ErrorMessage", skip_serializing_if = "Option::is_none")]
    error: Option<V1Error<'a>>,
}

/// The v1 body: a whole failure is the bare error object; otherwise the records, with
/// `ErrorMessage` beside them for a partial failure.
pub(crate) fn v1(out: &MiOutput, opts: &V1Options) -> Vec<u8> {
    if let (Some(e), false) = (&out.error, out.partial) {
        return serde_json::to_vec(&V1Error::of(e)).unwrap_or_default();
    }
    let cols = selected(out, opts.returncols.as_ref());
    let metadata = opts.metadata.then(|| V1Metadata {
        field: cols
            .iter()
            .map(|&c| {
                let f = &out.fields[c];
                V1Field {
                    name: f.name,
                    ty: f.ty,
                    length: f.len,
                    description: f.desc,
                }
            })
            .collect(),
    });
    let records = out
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| V1Record {
            row_index: i,
            name_value: NameValues {
                out,
                row,
                cols: &cols,
                exclude_empty: opts.exclude_empty,
            },
        })
        .collect();
    let resp = V1Response {
        program: out.program,
        transaction: &out.transaction,
        metadata,
        records,
        error: out.error.as_ref().map(V1Error::of),
    };
    serde_json::to_vec(&resp).unwrap_or_default()
}

struct V2Record<'a> {
    out: &'a MiOutput,
    row: &'a [String],
    cols: &'a [usize],
    opts: &'a V2Options,
}

impl Serialize for V2Record<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for &c in self.cols {
            let raw = self.row[c].as_str();
            let v = if self.opts.right_trim {
                raw.trim_end()
            } else {
                raw
            };
            if self.opts.exclude_empty && v.trim().is_empty() {
                continue;
            }
            map.serialize_entry(self.out.fields[c].name, v)?;
        }
        map.end()
    }
}

struct V2Records<'a> {
    out: &'a MiOutput,
    cols: Vec<usize>,
    opts: &'a V2Options,
}

impl Serialize for V2Records<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.out.rows.len()))?;
        for row in &self.out.rows {
            seq.serialize_element(&V2Record {
                out: self.out,
                row,
                cols: &self.cols,
                opts: self.opts,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Result<'a> {
    transaction: &'a str,
    records: V2Records<'a>,
    error_message: String,
    error_code: &'a str,
    error_field: &'a str,
    error_type: &'a str,
    not_processed: bool,
}

#[derive(Serialize)]
struct V2Response<'a> {
    results: Vec<V2Result<'a>>,
    #[serde(rename = "wasTerminated")]
    was_terminated: bool,
    #[serde(rename = "nrOfSuccessfullTransactions")]
    ok: usize,
    #[serde(rename = "nrOfFailedTransactions")]
    failed: usize,
}

/// The v2 body for one or more transactions (each with its selected columns).
pub(crate) fn v2(outs: &[(MiOutput, Option<Vec<String>>)], opts: &V2Options) -> Vec<u8> {
    let results: Vec<V2Result<'_>> = outs
        .iter()
        .map(|(out, cols)| {
            let e = out.error.as_ref();
            V2Result {
                transaction: &out.transaction,
                records: V2Records {
                    out,
                    cols: selected(out, cols.as_ref()),
                    opts,
                },
                error_message: e
                    .map(|e| e.message.trim_end().to_owned())
                    .unwrap_or_default(),
                error_code: e.and_then(|e| e.code.as_deref()).unwrap_or_default(),
                error_field: e
                    .and_then(|e| e.field.as_deref())
                    .map(str::trim_end)
                    .unwrap_or_default(),
                error_type: e.map(|e| e.kind).unwrap_or_default(),
                not_processed: false,
            }
        })
        .collect();
    let failed = outs.iter().filter(|(o, _)| o.error.is_some()).count();
    let resp = V2Response {
        results,
        was_terminated: false,
        ok: outs.len() - failed,
        failed,
    };
    serde_json::to_vec(&resp).unwrap_or_default()
}
