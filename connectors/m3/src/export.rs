//! Reading tables through `EXPORTMI/Select`.
//!
//! Rows come back in key order, one delimited line each in the output field `REPL`. A
//! table is paged by its main key column (`where KEY >= 'last'`, dropping rows already
//! seen); an incremental read adds `and xxLMTS >= cursor`. The cursor only advances when
//! the listing is complete (pages come in key order, not time order); meanwhile the state
//! records the last key, so a restart resumes where it stopped.

use std::collections::HashMap;

use ionport_plugin_sdk::mi::{MiCall, MiType, write_typed_row};
use ionport_plugin_sdk::paging::AdaptivePageSize;
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
    /// Key columns (the company column first).
    pub key: Vec<String>,
    /// Column types.
    pub types: HashMap<String, MiType>,
}

fn quote(v: &str) -> String {
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

    fn query(&self, s: &M3Settings, from: Option<&str>, since: Option<&Value>) -> String {
        let mut q = format!(
            "{} from {} where {} = {}",
            self.columns.join(","),
            self.table,
            self.company_col(),
            s.company
        );
        if let Some(k) = from {
            q.push_str(&format!(" and {} >= {}", self.page_col(), quote(k)));
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

    /// The call for one page.
    pub fn call(
        &self,
        s: &M3Settings,
        from: Option<&str>,
        since: Option<&Value>,
        size: u32,
    ) -> MiCall {
        MiCall::new("EXPORTMI", "Select")
            .input("SEPC", SEPARATOR)
            .input("HDRS", "0")
            .input("QERY", self.query(s, from, since))
            .maxrecs(size)
    }

    /// The `REPL` line of an answer row, split into one value per column.
    fn split<'r>(
        &self,
        call: &MiCall,
        row: &'r [(String, String)],
    ) -> Result<Vec<&'r str>, ConnectorError> {
        let line = row
            .iter()
            .find(|(k, _)| k == "REPL")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
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

    fn key_of(&self, parts: &[&str]) -> Vec<String> {
        self.key
            .iter()
            .map(|k| match self.typed(parts, k) {
                Value::String(s) => s,
                Value::Null => String::new(),
                v => format!("{:>20}", v.to_string()),
            })
            .collect()
    }

    /// Reads the whole listing (from `state`), emitting records and checkpointing each
    /// page. `since` is the incremental lower bound. Returns (records, pages, final state).
    pub fn read(
        &self,
        host: &Host,
        s: &M3Settings,
        stream: &str,
        page: &mut AdaptivePageSize,
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
        let mut last_key: Option<Vec<String>> = run
            .and_then(|r| r.get("last_key"))
            .and_then(|k| serde_json::from_value(k.clone()).ok());
        let mut max: Option<Value> = run
            .and_then(|r| r.get("max"))
            .cloned()
            .filter(|v| !v.is_null());
        let mut out = RecordWriter::new(host, stream, 1000);
        let none = HashMap::new();
        let mut pages = 0u64;
        let mut grow = 1u32;
        loop {
            host.check_cancelled()?;
            let from = last_key
                .as_ref()
                .and_then(|k| k.get(1).or(k.first()))
                .cloned();
            let (resp, size) = page.fetch(host, |n| {
                self.call(s, from.as_deref(), since.as_ref(), n.saturating_mul(grow))
                    .request(s.shape())
            })?;
            let call = self.call(
                s,
                from.as_deref(),
                since.as_ref(),
                size.saturating_mul(grow),
            );
            let answer = call.parse(&resp)?;
            pages += 1;
            let fetched = answer.rows.len();
            let mut fresh = 0usize;
            for row in &answer.rows {
                let parts = self.split(&call, row)?;
                let k = self.key_of(&parts);
                if last_key.as_ref().is_some_and(|last| &k <= last) {
                    continue;
                }
                if let Some(col) = self.lmts_col() {
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
                        .columns
                        .iter()
                        .map(String::as_str)
                        .zip(parts.iter().copied());
                    write_typed_row(w, fields, &self.types, &none);
                    Ok(())
                })?;
                last_key = Some(k);
                fresh += 1;
            }
            let asked = size.saturating_mul(grow) as usize;
            if fetched < asked {
                break;
            }
            // A full page of rows already seen (many rows share the page column): ask for
            // more at once rather than loop.
            grow = if fresh == 0 {
                grow.saturating_mul(2)
            } else {
                1
            };
            out.commit(&json!({
                "cursor": cursor,
                "run": { "since": since, "last_key": last_key, "max": max },
            }))?;
        }
        // After a full pass (either mode) the highest stamp seen is where the next
        // incremental read starts; records stamped exactly then are read again and
        // de-duplicated downstream by primary key.
        let new_cursor = max.or(cursor);
        let final_state = json!({ "cursor": new_cursor, "run": null });
        out.commit(&final_state)?;
        Ok((out.written(), pages, final_state))
    }
}
