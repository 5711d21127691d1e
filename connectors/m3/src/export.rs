//! Reading tables through `EXPORTMI/Select`.
//!
//! Rows come back in key order, one delimited line each in the output field `REPL`. A
//! table is listed by the first key column after the company (the *page column*):
//! `where PAGE >= 'from'`, and with pages in flight in key ranges read side by side
//! (`sdk::key_ranges::read_bounded`): a range's later pages add `and PAGE < 'end'`. An
//! incremental read adds `and xxLMTS >= cursor`. The cursor only advances when the listing
//! is complete (pages come in key order, not time order); meanwhile the state records the
//! watermark key, so a restart resumes where it stopped.
//!
//! A record's key for the ranges is its key columns after the company joined by a tab
//! (numbers right-aligned in 20 places), so that the order of the keys' bytes is the
//! table's key order even where many rows share the page column (order lines). Only the
//! page column goes into the query; rows before the key asked from are dropped here.

use std::collections::HashMap;

use ionport_infor_mi::{MiCall, MiType, write_typed_row};
use ionport_plugin_sdk::key_ranges::{self, KeyPage};
use ionport_plugin_sdk::paging::SharedPageSize;
use ionport_plugin_sdk::{ConnectorError, Host, RecordWriter};
use serde_json::{Value, json};

use crate::settings::M3Settings;

/// The separator asked for: a character M3 text fields do not hold (`;` and `,` occur).
pub const SEPARATOR: &str = "|";

/// One EXPORTMI listing: table, columns, key columns and an optional filter.
#[derive(Debug, Clone)]
pub struct Export {
    /// The table.
    pub table: String,
    /// Columns to select (table names, with prefix).
    pub columns: Vec<String>,
    /// The records' field names, one per column (the column names, or the names an MI
    /// transaction gives the same fields).
    pub names: Vec<String>,
    /// A condition every row must meet besides the company (`OBDIVI = 'AAA'`).
    pub filter: Option<String>,
    /// Key columns (the company column first).
    pub key: Vec<String>,
    /// Column types.
    pub types: HashMap<String, MiType>,
}

pub(crate) fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl Export {
    fn company_col(&self) -> &str {
        self.key.first().map_or("", String::as_str)
    }

    fn page_col(&self) -> &str {
        self.key
            .get(1)
            .or(self.key.first())
            .map_or("", String::as_str)
    }

    /// The key columns a record's range key is made of: those after the company.
    fn range_cols(&self) -> &[String] {
        self.key
            .get(1..)
            .filter(|k| !k.is_empty())
            .unwrap_or(&self.key)
    }

    fn query(
        &self,
        s: &M3Settings,
        from: Option<&str>,
        end: Option<&str>,
        since: Option<&Value>,
    ) -> String {
        let mut q = format!(
            "{} from {} where {} = {}",
            self.columns.join(","),
            self.table,
            self.company_col(),
            s.company
        );
        if let Some(f) = &self.filter {
            q.push_str(&format!(" and {f}"));
        }
        // The page column's part of a range key: the bound the query can state.
        let page = |k: &str| quote(k.split(KEY_JOIN).next().unwrap_or(k));
        if let Some(k) = from {
            q.push_str(&format!(" and {} >= {}", self.page_col(), page(k)));
        }
        if let Some(k) = end {
            q.push_str(&format!(" and {} < {}", self.page_col(), page(k)));
        }
        if let (Some(v), Some(col)) = (since, self.lmts_col()) {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            q.push_str(&format!(" and {col} >= {v}"));
        }
        q
    }

    /// The change-timestamp column (`xxLMTS`), when the table has one.
    pub fn lmts_col(&self) -> Option<&str> {
        self.columns
            .iter()
            .map(String::as_str)
            .find(|c| c.ends_with("LMTS"))
    }

    /// The call for one page: rows from range key `from` (its page column) up to `end`
    /// (excluded).
    pub fn call(
        &self,
        s: &M3Settings,
        from: Option<&str>,
        end: Option<&str>,
        since: Option<&Value>,
        size: u32,
    ) -> MiCall {
        MiCall::new("EXPORTMI", "Select")
            .input("SEPC", SEPARATOR)
            .input("HDRS", "0")
            .input("QERY", self.query(s, from, end, since))
            .maxrecs(size)
    }

    /// A `REPL` line split into one value per column.
    fn split<'r>(&self, call: &MiCall, line: &'r str) -> Result<Vec<&'r str>, ConnectorError> {
        let parts: Vec<&str> = line.split(SEPARATOR).map(str::trim_end).collect();
        if parts.len() != self.columns.len() {
            return Err(ConnectorError::gateway(format!(
                "M3 {} returned a row of {} fields for {} columns of {} (a value holding '{SEPARATOR}'?): {line:?}",
                call.name(),
                parts.len(),
                self.columns.len(),
                self.table
            )));
        }
        Ok(parts)
    }

    /// The typed value of column `col` in `parts` (only the key and stamp columns are
    /// needed as values; the record itself is written straight into the batch).
    fn typed(&self, parts: &[&str], col: &str) -> Value {
        let ty = self.types.get(col).copied().unwrap_or(MiType::Alpha);
        self.columns
            .iter()
            .position(|c| c == col)
            .and_then(|i| parts.get(i))
            .map_or(Value::Null, |raw| ty.value(raw))
    }

    /// A row's range key: its key columns after the company, joined by [`KEY_JOIN`].
    fn key_of(&self, parts: &[&str]) -> String {
        let values: Vec<String> = self
            .range_cols()
            .iter()
            .map(|k| match self.typed(parts, k) {
                Value::String(s) => s,
                Value::Null => String::new(),
                v => format!("{:>20}", v.to_string()),
            })
            .collect();
        values.join(KEY_JOIN)
    }

    /// Ranges need the page column's order to be its text's: a numeric page column is
    /// read one page at a time.
    fn pages_in_flight(&self, asked: usize) -> usize {
        let text = self
            .types
            .get(self.page_col())
            .copied()
            .unwrap_or(MiType::Alpha);
        if text == MiType::Alpha { asked } else { 1 }
    }

    /// One page of rows from range key `from` (included) up to `end` (excluded). Rows
    /// before `from` (sharing its page column) are dropped, and the page asked counted
    /// short by as many, so that a short page still means the end. A full page of rows
    /// at or before `from` (more rows share a page column value than a page holds) is
    /// asked again larger, or it could never advance.
    fn page(
        &self,
        host: &Host,
        s: &M3Settings,
        since: Option<&Value>,
        size: &SharedPageSize,
        from: Option<&str>,
        end: Option<&str>,
    ) -> Result<KeyPage<Row>, ConnectorError> {
        let mut grow = 1u32;
        loop {
            let (resp, n) = size.fetch(host, |n| {
                self.call(s, from, end, since, n.saturating_mul(grow))
                    .request(s.shape())
            })?;
            let asked = n.saturating_mul(grow);
            let call = self.call(s, from, end, since, asked);
            let answer = call.parse(&resp)?;
            let fetched = answer.rows.len();
            let mut rows = Vec::with_capacity(fetched);
            for row in answer.rows {
                let line = row
                    .into_iter()
                    .find(|(k, _)| k == "REPL")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let key = self.key_of(&self.split(&call, &line)?);
                if from.is_none_or(|f| key.as_bytes() >= f.as_bytes()) {
                    rows.push(Row { key, line });
                }
            }
            let advances = from.is_none_or(|f| rows.iter().any(|r| r.key.as_str() != f));
            if fetched < asked as usize || advances {
                let dropped = u32::try_from(fetched - rows.len()).unwrap_or(u32::MAX);
                let asked = asked.saturating_sub(dropped);
                return Ok(KeyPage { rows, asked });
            }
            if grow >= MAX_GROW {
                return Err(ConnectorError::connector(format!(
                    "M3 {}: more than {asked} rows share {} = {:?}; they cannot be paged",
                    self.table,
                    self.page_col(),
                    from.and_then(|f| f.split(KEY_JOIN).next())
                        .unwrap_or_default()
                )));
            }
            grow = grow.saturating_mul(2);
        }
    }

    /// Reads the whole listing (from `state`) with up to `pages_in_flight` pages requested
    /// at once, emitting records and checkpointing each page with its watermark. `since`
    /// is the incremental lower bound. Returns (records, pages, final state).
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        host: &Host,
        s: &M3Settings,
        stream: &str,
        size: &SharedPageSize,
        pages_in_flight: usize,
        state: Option<&Value>,
        incremental: bool,
    ) -> Result<(u64, u64, Value), ConnectorError> {
        // The state: {"cursor": <last complete LMTS>, "run": {"since", "last_key", "max"}}.
        let cursor = state
            .and_then(|st| st.get("cursor"))
            .cloned()
            .filter(|v| !v.is_null());
        let run = state.and_then(|st| st.get("run")).filter(|r| !r.is_null());
        // A resumed run keeps the lower bound it started with (null: it had none).
        let since = if incremental {
            match run.and_then(|r| r.get("since")) {
                Some(v) => Some(v.clone()).filter(|v| !v.is_null()),
                None => cursor.clone(),
            }
        } else {
            None
        };
        let resume = run
            .and_then(|r| r.get("last_key"))
            .and_then(|k| self.resume_key(k));
        let mut max: Option<Value> = run
            .and_then(|r| r.get("max"))
            .cloned()
            .filter(|v| !v.is_null());
        let mut out = RecordWriter::new(host, stream, 1000);
        let none = HashMap::new();
        let record_types: HashMap<String, MiType> = self
            .columns
            .iter()
            .zip(&self.names)
            .filter_map(|(c, n)| Some((n.clone(), *self.types.get(c)?)))
            .collect();
        let lmts = self.lmts_col();
        let select = self.call(s, None, None, None, 0); // names the call in errors
        let pages = key_ranges::read_bounded(
            host,
            self.pages_in_flight(pages_in_flight),
            resume,
            |from, end| self.page(host, s, since.as_ref(), size, from, end),
            |r: &Row| r.key.as_str(),
            |rows, progress| {
                for row in &rows {
                    let parts = self.split(&select, &row.line)?;
                    if let Some(col) = lmts {
                        let v = self.typed(&parts, col);
                        if !v.is_null()
                            && max
                                .as_ref()
                                .is_none_or(|m| ionport_plugin_sdk::paging::compare(&v, m).is_gt())
                        {
                            max = Some(v);
                        }
                    }
                    out.write_row(|w| {
                        let fields = self
                            .names
                            .iter()
                            .map(String::as_str)
                            .zip(parts.iter().copied());
                        write_typed_row(w, fields, &record_types, &none);
                        Ok(())
                    })?;
                }
                out.commit(&json!({
                    "cursor": cursor,
                    "run": { "since": since, "last_key": progress.watermark, "max": max },
                }))
            },
        )?;
        // After a full pass (either mode) the highest stamp seen is where the next
        // incremental read starts; records stamped exactly then are read again and
        // de-duplicated downstream by primary key.
        let new_cursor = max.or(cursor);
        let final_state = json!({ "cursor": new_cursor, "run": null });
        out.commit(&final_state)?;
        Ok((out.written(), pages, final_state))
    }

    /// The range key to resume after: the watermark, or the key list an earlier version
    /// saved (the company first).
    fn resume_key(&self, saved: &Value) -> Option<String> {
        match saved {
            Value::String(k) => Some(k.clone()),
            Value::Array(parts) => {
                let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                let skip = usize::from(self.key.len() > 1);
                Some(parts.get(skip..)?.join(KEY_JOIN))
            }
            _ => None,
        }
    }
}

/// Joins a range key's columns: below every character of a value, so that the bytes'
/// order is the columns' order.
const KEY_JOIN: &str = "\t";

/// How many times a page may be asked larger when it brings no new key.
const MAX_GROW: u32 = 1024;

/// A listed row: its range key and its `REPL` line (split again when written).
#[derive(Debug)]
struct Row {
    key: String,
    line: String,
}
