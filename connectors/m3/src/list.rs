//! Reading MI list transactions, paged by key.
//!
//! MI has no cursor: a `Lst*` transaction lists from a key onwards, including the key. The
//! reader asks again from the last key, drops the repeated first row ([`KeyPager`]) and
//! stops on a short page. The state keeps the last key, so an interrupted full refresh
//! resumes where it stopped.

use std::collections::HashMap;

use ionport_plugin_sdk::mi::{MiCall, MiShape, MiType, typed_row};
use ionport_plugin_sdk::paging::{AdaptivePageSize, KeyPager};
use ionport_plugin_sdk::{ConnectorError, Host, RecordWriter};
use serde_json::{Map, Value, json};

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
    /// The key field the listing is paged by (`None`: one call returns everything).
    pub key: Option<&'a str>,
    /// Fixed inputs (company, order number, ...).
    pub inputs: Vec<(&'a str, String)>,
    /// Output columns.
    pub cols: &'a [Col],
}

impl Listing<'_> {
    fn call(&self, from: Option<&str>, size: u32) -> MiCall {
        let mut c = MiCall::new(self.program, self.transaction)
            .maxrecs(size)
            .returncols(columns::names(self.cols));
        for (k, v) in &self.inputs {
            c = c.input(k, v.clone());
        }
        if let (Some(key), Some(from)) = (self.key, from) {
            c = c.input(key, from);
        }
        c
    }

    /// Reads the listing from `start` (a last key), handing each page's typed records
    /// to `page_done` with the pager, so that the caller decides when to checkpoint.
    pub fn read(
        &self,
        host: &Host,
        s: &M3Settings,
        types: &HashMap<String, MiType>,
        page: &mut AdaptivePageSize,
        start: Option<String>,
        mut page_done: impl FnMut(Vec<Map<String, Value>>, &KeyPager) -> Result<(), ConnectorError>,
    ) -> Result<u64, ConnectorError> {
        let fallback = columns::types(self.cols);
        let mut pager = KeyPager::new(start.map(|k| vec![k]));
        let mut pages = 0u64;
        while !pager.is_done() {
            host.check_cancelled()?;
            let from = pager.from_key().and_then(|k| k.first()).cloned();
            let (resp, size) =
                page.fetch(host, |n| self.call(from.as_deref(), n).request(s.shape()))?;
            let call = self.call(from.as_deref(), size);
            let answer = call.parse(&resp)?;
            pages += 1;
            let key = self.key.unwrap_or("");
            let rows = pager.take(answer.rows, size, |row| {
                vec![
                    row.iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                ]
            });
            let types = if answer.types.is_empty() {
                types
            } else {
                &answer.types
            };
            let records = rows
                .iter()
                .map(|r| typed_row(r, types, &fallback))
                .collect();
            page_done(records, &pager)?;
            if self.key.is_none() {
                break;
            }
        }
        Ok(pages)
    }
}

/// Reads a list task: every page is emitted and checkpointed with its last key.
pub fn read_list(
    host: &Host,
    s: &M3Settings,
    stream: &str,
    listing: &Listing<'_>,
    page: &mut AdaptivePageSize,
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
    let pages = listing.read(host, s, &types, page, start, |records, pager| {
        for r in &records {
            out.push(r)?;
        }
        if !pager.is_done() {
            out.commit(&json!({
                "complete": false,
                "last_key": pager.last_key().and_then(|k| k.first()),
            }))?;
        }
        Ok(())
    })?;
    let done = json!({ "complete": true });
    out.commit(&done)?;
    Ok((out.written(), pages, done))
}
