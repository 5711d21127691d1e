//! Reading MI list transactions, paged by key.
//!
//! MI has no cursor: a `Lst*` transaction lists from a key onwards, including the key. The
//! reader asks again from the last key, drops the repeated first row and stops on a short
//! page; with several pages in flight the listing is cut into key ranges read side by side
//! (`ionport_plugin_sdk::key_ranges`). The state keeps the watermark key, so an
//! interrupted full refresh resumes where it stopped.

use std::collections::HashMap;
use std::sync::Arc;

use ionport_infor_mi::{MiCall, MiShape, MiType, TypedRows};
use ionport_plugin_sdk::key_ranges::{self, KeyPage};
use ionport_plugin_sdk::paging::SharedPageSize;
use ionport_plugin_sdk::{ConnectorError, Host, RecordWriter};
use serde_json::{Value, json};

use crate::columns::{self, Col};
use crate::settings::M3Settings;

/// The output field types of `program/transaction` from `MRS001MI/LstFields` (v2 answers
/// carry no metadata). An empty map means "use the task's declared types": when M3 lists
/// none, and when `MRS001MI` is missing or refused (HTTP 403/404, or an MI error such as a
/// service account without rights for the program) — then with a warning, so that the read
/// goes on. A body of the wrong shape is still an error.
pub fn field_types(
    host: &Host,
    s: &M3Settings,
    program: &str,
    transaction: &str,
) -> Result<HashMap<String, MiType>, ConnectorError> {
    if s.shape() == MiShape::V1 {
        return Ok(HashMap::new()); // v1 answers carry metadata
    }
    let call = MiCall::new("MRS001MI", "LstFields")
        .input("MINM", program)
        .input("TRNM", transaction)
        .input("TRTP", "O")
        .maxrecs(0);
    let resp = host.gateway(&call.request(s.shape()))?;
    let answer = match call.parse_detailed(&resp) {
        Ok(a) => a,
        Err(e) if !e.unexpected_body && (resp.is_success() || matches!(resp.status, 403 | 404)) => {
            host.warn(&format!(
                "{}; reading {program}/{transaction} with the task's declared field types                  (grant the service account MRS001MI to type fields from M3's own metadata)",
                call.error(&e).message()
            ));
            return Ok(HashMap::new());
        }
        Err(e) => return Err(call.error(&e)),
    };
    Ok(answer
        .rows
        .iter()
        .filter_map(|row| {
            let get = |k: &str| {
                row.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.trim().to_string())
            };
            Some((get("FLNM")?, MiType::from_letter(&get("TYPE")?)))
        })
        .collect())
}

/// One list transaction with its inputs.
#[derive(Debug, Clone)]
pub struct Listing<'a> {
    /// Program.
    pub program: &'a str,
    /// Transaction.
    pub transaction: &'a str,
    /// The key field the listing is paged by.
    pub key: &'a str,
    /// Fixed inputs (company, order number, ...).
    pub inputs: Vec<(&'a str, String)>,
    /// Output columns.
    pub cols: &'a [Col],
}

/// A listed row: its page (the answer's body, its rows borrowing from it, their field
/// types resolved once for the page) and its position there. Typed only when written into
/// the batch, so no record is built as a map and no field is copied.
type Keyed = (Arc<TypedRows>, usize);

/// The types a listing's fields are written with.
#[derive(Debug)]
struct Types {
    /// From `MRS001MI` (v2), empty when M3 gave none.
    listed: HashMap<String, MiType>,
    /// The task's declared types.
    fallback: HashMap<String, MiType>,
}

impl Listing<'_> {
    fn call(&self, from: Option<&str>, size: u32) -> MiCall {
        let mut c = MiCall::new(self.program, self.transaction)
            .maxrecs(size)
            .returncols(columns::names(self.cols));
        for (k, v) in &self.inputs {
            c = c.input(k, v.clone());
        }
        if let Some(from) = from {
            c = c.input(self.key, from);
        }
        c
    }

    /// One page from key `from` onwards (that key included, the MI rule).
    fn page(
        &self,
        host: &Host,
        s: &M3Settings,
        types: &Types,
        size: &SharedPageSize,
        from: Option<&str>,
    ) -> Result<KeyPage<Keyed>, ConnectorError> {
        let (resp, asked) = size.fetch(host, |n| self.call(from, n).request(s.shape()))?;
        // v1 answers carry their own metadata; v2 use the types read before the listing.
        let page = Arc::new(
            self.call(from, asked)
                .parse_rows(resp)?
                .typed(&types.listed, &types.fallback),
        );
        let rows = (0..page.rows().len()).map(|i| (page.clone(), i)).collect();
        Ok(KeyPage { rows, asked })
    }

    /// The key of a listed row (trimmed, as MI answers and takes it; empty when missing).
    fn key_of<'r>(&self, (page, i): &'r Keyed) -> &'r str {
        page.rows()
            .row(*i)
            .and_then(|row| row.get(self.key))
            .unwrap_or_default()
    }

    /// Reads the listing after `resume` (the last key of an interrupted run) with up to
    /// `pages_in_flight` pages requested at once ([`key_ranges`]), handing each page's
    /// rows to `page_done` with the watermark: every record at or below that key has
    /// been handed over.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        host: &Host,
        s: &M3Settings,
        types: HashMap<String, MiType>,
        size: &SharedPageSize,
        pages_in_flight: usize,
        resume: Option<String>,
        mut page_done: impl FnMut(Vec<Keyed>, Option<&str>) -> Result<(), ConnectorError>,
    ) -> Result<u64, ConnectorError> {
        let types = Types {
            listed: types,
            fallback: columns::types(self.cols),
        };
        key_ranges::read(
            host,
            pages_in_flight,
            resume,
            |from| self.page(host, s, &types, size, from),
            |row| self.key_of(row),
            |rows, progress| page_done(rows, progress.watermark),
        )
    }
}

/// Reads a list task: every page is emitted and checkpointed with its watermark (the
/// state's `last_key`: a restart resumes after it; records of later key ranges that were
/// already committed are read again and upserted on their key).
pub fn read_list(
    host: &Host,
    s: &M3Settings,
    stream: &str,
    listing: &Listing<'_>,
    size: &SharedPageSize,
    pages_in_flight: usize,
    state: Option<&Value>,
) -> Result<(u64, u64, Value), ConnectorError> {
    let types = field_types(host, s, listing.program, listing.transaction)?;
    // Resume an interrupted run; a finished one starts over (full refresh).
    let start = state
        .filter(|st| st.get("complete") == Some(&Value::Bool(false)))
        .and_then(|st| st.get("last_key"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut out = RecordWriter::new(host, stream, 1000);
    let pages = listing.read(
        host,
        s,
        types,
        size,
        pages_in_flight,
        start,
        |rows, watermark| {
            for (page, i) in &rows {
                out.write_row(|w| page.write(*i, w))?;
            }
            out.commit(&json!({ "complete": false, "last_key": watermark }))
        },
    )?;
    let done = json!({ "complete": true });
    out.commit(&done)?;
    Ok((out.written(), pages, done))
}
