//! Tables through `EXPORTMI/Select` as keyed streams (the stream API's [`KeyedStream`],
//! bounded: a page can end at a key).
//!
//! Rows come back in key order, one delimited line each in the output field `REPL`. A
//! table is listed by the first key column after the company (the *page column*):
//! `where PAGE >= 'from'`, and with pages in flight in key ranges read side by side: a
//! range's later pages add `and PAGE < 'end'`. An incremental read adds `and xxLMTS >=
//! cursor`; the SDK advances the cursor only when the listing is complete and meanwhile
//! keeps the watermark key, so a restart resumes where it stopped.
//!
//! A record's key for the ranges is its key columns after the company joined by a tab
//! (numbers right-aligned in 20 places), so that the order of the keys' bytes is the
//! table's key order even where many rows share the page column (order lines). Only the
//! page column goes into the query; rows before the key asked from are dropped here.

use std::collections::HashMap;

use ionport_infor_mi::{MiCall, MiShape, MiType, write_typed_row};
use ionport_plugin_sdk::columns::select;
use ionport_plugin_sdk::key_ranges::KeyPage;
use ionport_plugin_sdk::stream::{KeyListing, KeyPaging, KeyedStream, PageAt, Resume, StreamState};
use ionport_plugin_sdk::{ConnectorError, Host, ReadRequest, RecordWriter, TaskSpec};
use serde_json::Value;

use crate::discover;
use crate::settings::M3Settings;
use crate::tasks::M3Task;

/// A table a predefined task reads.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table.
    pub table: &'static str,
    /// The table's column prefix the records' field names go without (`OB` for
    /// `OOLINE`, whose records have `OIS100MI/LstLine`'s names), or `""`.
    pub prefix: &'static str,
    /// Whether the connection's division narrows the rows (`{prefix}DIVI`).
    pub by_division: bool,
}

/// A predefined task read from its table.
#[derive(Debug, Clone, Copy)]
pub struct ExportTask(pub &'static M3Task, pub Table);

impl KeyedStream<M3Settings> for ExportTask {
    type Listing = Export;

    fn spec(&self) -> TaskSpec {
        self.0.spec()
    }

    fn open(
        &self,
        _host: &Host,
        s: &M3Settings,
        request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Export, ConnectorError> {
        let Table {
            table,
            prefix,
            by_division,
        } = self.1;
        let cols = self.0.columns(request, None)?;
        let in_table = |n: &str| format!("{prefix}{n}");
        Ok(Export::new(
            s,
            table,
            cols.iter().map(|c| (in_table(c.0), c.0.to_string(), c.1)),
            s.divi()
                .filter(|_| by_division)
                .map(|d| format!("{} = {}", in_table("DIVI"), quote(d))),
            self.0.pk.iter().map(|k| in_table(k)).collect(),
            since,
        ))
    }

    fn migrate_state(
        &self,
        host: &Host,
        state: &Value,
    ) -> Result<Option<StreamState<()>>, ConnectorError> {
        Ok(legacy(state).or_else(|| crate::orders::per_order_state(host, self.0.name, state)))
    }
}

/// A `table:NAME` stream: a standard table with the columns the tenant's table has.
#[derive(Debug, Clone, Copy)]
pub struct TableStream(pub &'static (&'static str, &'static [&'static str], &'static str));

impl KeyedStream<M3Settings> for TableStream {
    type Listing = Export;

    /// The spec with the key and the change stamp (M3 names it by the key's prefix,
    /// `OKLMTS`) only: `discover` gives the one with the tenant's columns.
    fn spec(&self) -> TaskSpec {
        let (table, key, desc) = self.0;
        let prefix = key.first().and_then(|k| k.get(..2)).unwrap_or_default();
        let mut columns: Vec<String> = key.iter().map(|k| (*k).to_string()).collect();
        columns.push(format!("{prefix}LMTS"));
        discover::table_spec(table, key, desc, &columns)
    }

    fn open(
        &self,
        host: &Host,
        s: &M3Settings,
        request: &ReadRequest,
        since: Option<&Value>,
    ) -> Result<Export, ConnectorError> {
        let (table, key, _) = self.0;
        let all = discover::table_columns(host, s, table, key[0])?.ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "M3 table {table} cannot be read through EXPORTMI on this tenant"
            ))
        })?;
        let offered: Vec<&str> = all.iter().map(String::as_str).collect();
        let keep: Vec<&str> = key
            .iter()
            .copied()
            .chain(offered.iter().copied().filter(|c| c.ends_with("LMTS")))
            .collect();
        let cols = select(request, &offered, &keep)?.unwrap_or_else(|| all.clone());
        Ok(Export::new(
            s,
            table,
            cols.iter()
                .map(|c| (c.clone(), c.clone(), discover::column_type(c).0)),
            None,
            key.iter().map(|k| (*k).to_string()).collect(),
            since,
        ))
    }

    fn migrate_state(
        &self,
        _host: &Host,
        state: &Value,
    ) -> Result<Option<StreamState<()>>, ConnectorError> {
        Ok(legacy(state))
    }
}

/// The state an earlier version saved, `{"cursor": C, "run": {"since", "last_key", "max"}}`
/// (`run` null once a read was complete), as a stream state: a read under way keeps its
/// bound (`since`), the highest stamp it saw and its watermark (text, or a list of key
/// values with the company first, as a still earlier version saved it).
fn legacy(state: &Value) -> Option<StreamState<()>> {
    let run = state.get("run")?;
    let value = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    if run.is_null() {
        return Some(StreamState {
            cursor: value(state.get("cursor")),
            ..StreamState::default()
        });
    }
    let resume = match run.get("last_key") {
        Some(Value::String(k)) => Some(k.clone()),
        Some(Value::Array(parts)) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            parts
                .get(usize::from(parts.len() > 1)..)
                .map(|p| p.join(KEY_JOIN))
        }
        _ => None,
    };
    Some(StreamState {
        cursor: value(run.get("since")),
        seen: value(run.get("max")),
        resume: resume.map(Resume::Key),
    })
}

/// The separator asked for: a character M3 text fields do not hold (`;` and `,` occur).
pub const SEPARATOR: &str = "|";

/// One EXPORTMI listing of a table's columns for the company.
#[derive(Debug)]
pub struct Export {
    table: String,
    /// Columns to select (table names, with prefix).
    columns: Vec<String>,
    /// The records' field names, one per column (the column names, or the names an MI
    /// transaction gives the same fields).
    names: Vec<String>,
    /// Each column's type, by position.
    types: Vec<MiType>,
    /// The records' field types by name.
    record_types: HashMap<String, MiType>,
    /// A condition every row must meet besides the company (`OBDIVI = 'AAA'`).
    filter: Option<String>,
    /// The company column, and the page column: the first key column after it.
    company_col: String,
    page_col: String,
    /// The positions of the key columns a record's range key is made of (those after the
    /// company).
    range: Vec<Option<usize>>,
    /// The position of the change stamp (`xxLMTS`), when the table has one.
    lmts: Option<usize>,
    company: u16,
    shape: MiShape,
    /// The incremental lower bound on the change stamp.
    since: Option<Value>,
}

pub(crate) fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl Export {
    /// The listing of `columns` (each its name in the table, the record's field name and
    /// its type) of `table` for the company, rows meeting `filter`, `key` the key columns
    /// (the company's first), from stamp `since` on.
    pub fn new(
        s: &M3Settings,
        table: &str,
        columns: impl Iterator<Item = (String, String, MiType)>,
        filter: Option<String>,
        key: Vec<String>,
        since: Option<&Value>,
    ) -> Self {
        let (mut cols, mut names, mut types) = (Vec::new(), Vec::new(), Vec::new());
        for (col, name, ty) in columns {
            cols.push(col);
            names.push(name);
            types.push(ty);
        }
        let range_cols = key.get(1..).filter(|k| !k.is_empty()).unwrap_or(&key);
        Self {
            table: table.into(),
            record_types: names.iter().cloned().zip(types.iter().copied()).collect(),
            range: range_cols
                .iter()
                .map(|k| cols.iter().position(|c| c == k))
                .collect(),
            lmts: cols.iter().position(|c| c.ends_with("LMTS")),
            company_col: key.first().cloned().unwrap_or_default(),
            page_col: key.get(1).or(key.first()).cloned().unwrap_or_default(),
            columns: cols,
            names,
            types,
            filter,
            company: s.company,
            shape: s.shape(),
            since: since.cloned(),
        }
    }

    fn query(&self, from: Option<&str>, end: Option<&str>) -> String {
        let mut q = format!(
            "{} from {} where {} = {}",
            self.columns.join(","),
            self.table,
            self.company_col,
            self.company
        );
        if let Some(f) = &self.filter {
            q.push_str(&format!(" and {f}"));
        }
        // The page column's part of a range key: the bound the query can state.
        let page = |k: &str| quote(k.split(KEY_JOIN).next().unwrap_or(k));
        if let Some(k) = from {
            q.push_str(&format!(" and {} >= {}", self.page_col, page(k)));
        }
        if let Some(k) = end {
            q.push_str(&format!(" and {} < {}", self.page_col, page(k)));
        }
        if let (Some(v), Some(i)) = (&self.since, self.lmts) {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            q.push_str(&format!(" and {} >= {v}", self.columns[i]));
        }
        q
    }

    /// The call for one page: rows from range key `from` (its page column) up to `end`
    /// (excluded).
    pub fn call(&self, from: Option<&str>, end: Option<&str>, size: u32) -> MiCall {
        MiCall::new("EXPORTMI", "Select")
            .input("SEPC", SEPARATOR)
            .input("HDRS", "0")
            .input("QERY", self.query(from, end))
            .maxrecs(size)
    }

    /// A `REPL` line split into one value per column.
    fn split<'r>(&self, line: &'r str) -> Result<Vec<&'r str>, ConnectorError> {
        let parts: Vec<&str> = line.split(SEPARATOR).map(str::trim_end).collect();
        if parts.len() != self.columns.len() {
            return Err(ConnectorError::gateway(format!(
                "M3 EXPORTMI/Select returned a row of {} fields for {} columns of {} (a value holding '{SEPARATOR}'?): {line:?}",
                parts.len(),
                self.columns.len(),
                self.table
            )));
        }
        Ok(parts)
    }

    /// The typed value of the column at `i` (only the key and stamp columns are needed as
    /// values; the record itself is written straight into the batch).
    fn typed(&self, parts: &[&str], i: Option<usize>) -> Value {
        i.and_then(|i| Some(self.types.get(i)?.value(parts.get(i)?)))
            .unwrap_or(Value::Null)
    }

    /// A row's range key: its key columns after the company, joined by [`KEY_JOIN`].
    fn key_of(&self, parts: &[&str]) -> String {
        let values: Vec<String> = self
            .range
            .iter()
            .map(|i| match self.typed(parts, *i) {
                Value::String(s) => s,
                Value::Null => String::new(),
                v => format!("{:>20}", v.to_string()),
            })
            .collect();
        values.join(KEY_JOIN)
    }
}

impl KeyListing for Export {
    type Row = Row;

    /// A page can end at a key: `and PAGE < 'end'`.
    fn paging(&self) -> KeyPaging {
        KeyPaging::BoundedRanges
    }

    /// One page of rows from range key `from` (included) up to `end` (excluded). Rows
    /// before `from` (sharing its page column) are dropped, and the page asked counted
    /// short by as many, so that a short page still means the end. A full page of rows
    /// at or before `from` (more rows share a page column value than a page holds) is
    /// asked again larger, or it could never advance.
    fn page(&self, host: &Host, at: &PageAt<'_>) -> Result<KeyPage<Row>, ConnectorError> {
        let (size, from, end) = (at.size, at.key, at.end);
        let mut asked = size;
        loop {
            let call = self.call(from, end, asked);
            let answer = call.parse(&host.gateway(&call.request(self.shape))?)?;
            let fetched = answer.rows.len();
            let mut rows = Vec::with_capacity(fetched);
            for row in answer.rows {
                let line = row
                    .into_iter()
                    .find(|(k, _)| k == "REPL")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let parts = self.split(&line)?;
                let key = self.key_of(&parts);
                let stamp = self.lmts.map(|i| self.typed(&parts, Some(i)));
                if from.is_none_or(|f| key.as_bytes() >= f.as_bytes()) {
                    rows.push(Row { key, line, stamp });
                }
            }
            let advances = from.is_none_or(|f| rows.iter().any(|r| r.key.as_str() != f));
            if fetched < asked as usize || advances {
                let dropped = u32::try_from(fetched - rows.len()).unwrap_or(u32::MAX);
                let asked = asked.saturating_sub(dropped);
                return Ok(KeyPage::new(rows, asked));
            }
            if asked >= size.saturating_mul(MAX_GROW) {
                return Err(ConnectorError::connector(format!(
                    "M3 {}: more than {asked} rows share {} = {:?}; they cannot be paged",
                    self.table,
                    self.page_col,
                    from.and_then(|f| f.split(KEY_JOIN).next())
                        .unwrap_or_default()
                )));
            }
            asked = asked.saturating_mul(2);
        }
    }

    fn key<'r>(&self, row: &'r Row) -> &'r str {
        &row.key
    }

    fn cursor<'r>(&self, row: &'r Row) -> Option<&'r Value> {
        row.stamp.as_ref().filter(|v| !v.is_null())
    }

    fn write(
        &self,
        _host: &Host,
        row: &Row,
        out: &mut RecordWriter,
    ) -> Result<u64, ConnectorError> {
        let parts = self.split(&row.line)?;
        out.write_row(|w| {
            let fields = self
                .names
                .iter()
                .map(String::as_str)
                .zip(parts.iter().copied());
            write_typed_row(w, fields, &self.record_types, &HashMap::new());
            Ok(())
        })?;
        Ok(0)
    }

    /// Ranges need the page column's order to be its text's: a numeric page column is
    /// read one page at a time.
    fn pages_in_flight(&self, asked: usize) -> usize {
        let page = self.columns.iter().position(|c| *c == self.page_col);
        match page.map(|i| self.types[i]) {
            Some(MiType::Alpha) | None => asked,
            Some(_) => 1,
        }
    }
}

/// Joins a range key's columns: below every character of a value, so that the bytes'
/// order is the columns' order.
const KEY_JOIN: &str = "\t";

/// How many times a page may be asked larger when it brings no new key.
const MAX_GROW: u32 = 1024;

/// A listed row: its range key, its `REPL` line (split again when written) and its change
/// stamp.
#[derive(Debug)]
pub struct Row {
    key: String,
    line: String,
    stamp: Option<Value>,
}
