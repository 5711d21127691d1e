//! A record's values by column, read straight from its JSON text ([`Record`]): the one
//! type check every destination applies before it writes, and the canonical key text.
//!
//! Why by column and not by name: destinations bind or write columns in table order, and
//! a name lookup per field per record is most of what a map would have cost. Records of
//! one stream almost always list their fields in the same order, so the column of each
//! field position is remembered and only confirmed by comparing the name.

use std::fmt::Write as _;

use super::DestinationError;
use super::common::{ColumnType, TableSpec, normalise_key};
use crate::read::{JsonRef, Record};

/// Reads records into column order for one table (one per commit: it learns the field
/// order as it goes).
#[derive(Debug)]
pub(crate) struct Columns<'t> {
    table: &'t TableSpec,
    destination: &'t str,
    /// The column of each field position, as last seen.
    hints: Vec<usize>,
}

impl<'t> Columns<'t> {
    pub(crate) fn new(destination: &'t str, table: &'t TableSpec) -> Self {
        Columns {
            table,
            destination,
            hints: Vec::new(),
        }
    }

    fn bad(&self, message: String) -> DestinationError {
        DestinationError::Record {
            destination: self.destination.to_string(),
            stream: self.table.stream.clone(),
            message,
        }
    }

    /// `record`'s values in column order (`None`: not in the record), checked: every
    /// field is a column, every value fits its column's type, the key is present and not
    /// null. A field written twice counts with its last value.
    pub(crate) fn values<'a>(
        &mut self,
        record: &Record<'a>,
        out: &mut Vec<Option<JsonRef<'a>>>,
    ) -> Result<(), DestinationError> {
        let columns = &self.table.columns;
        out.clear();
        out.resize(columns.len(), None);
        for (i, (name, value)) in record.fields().enumerate() {
            let hinted = self
                .hints
                .get(i)
                .copied()
                .filter(|&c| columns.get(c).is_some_and(|col| col.name == name));
            let c = match hinted {
                Some(c) => c,
                None => {
                    let Some((c, _)) = self.table.column(name) else {
                        return Err(DestinationError::UnknownField {
                            destination: self.destination.to_string(),
                            stream: self.table.stream.clone(),
                            field: name.to_string(),
                            value_type: value.type_name(),
                        });
                    };
                    match self.hints.get_mut(i) {
                        Some(h) => *h = c,
                        None => self.hints.push(c),
                    }
                    c
                }
            };
            if let Some(slot) = out.get_mut(c) {
                *slot = Some(value);
            }
        }
        for (i, (col, value)) in columns.iter().zip(out.iter()).enumerate() {
            let is_key = i < self.table.key_len;
            let Some(v) = value.filter(|v| !v.is_null()) else {
                if is_key {
                    let what = if value.is_some() { "null" } else { "missing" };
                    return Err(self.bad(format!("primary key field `{}` is {what}", col.name)));
                }
                continue;
            };
            let fits = match col.ty {
                // Numbers and booleans too, as their JSON text: a text column the
                // destination kept wider than the source's type (schema drift) holds them.
                ColumnType::Text => v.is_string() || v.is_number() || v.as_bool().is_some(),
                ColumnType::Integer => v.as_i64().is_some(),
                ColumnType::Number => v.is_number(),
                ColumnType::Boolean => v.as_bool().is_some(),
                ColumnType::Json => true,
            };
            if !fits {
                return Err(self.bad(format!(
                    "field `{}`: a {} value does not fit its {} column",
                    col.name,
                    v.type_name(),
                    col.ty.name()
                )));
            }
        }
        Ok(())
    }
}

/// The key text of the values of `table`'s key columns, in key order: equal to
/// [`TableSpec::key_string`] of the same record as a map (segments sealed from text are
/// merged by key with rows read back as maps).
pub(crate) fn key_string<'a>(
    table: &TableSpec,
    key_values: impl Iterator<Item = Option<JsonRef<'a>>>,
) -> Result<String, String> {
    let mut s = String::with_capacity(32);
    s.push('[');
    for (i, (col, v)) in table.key().iter().zip(key_values).enumerate() {
        if i > 0 {
            s.push(',');
        }
        match v.filter(|v| !v.is_null()) {
            None => s.push_str("null"),
            // A string without escapes is already the canonical text serde_json writes.
            Some(v) if col.ty == ColumnType::Text && v.is_string() && !v.text().contains('\\') => {
                s.push_str(v.text())
            }
            Some(v) => match (col.ty, v.as_i64()) {
                (ColumnType::Integer | ColumnType::Text, Some(n)) => {
                    let _ = write!(s, "{n}");
                }
                _ => {
                    let value = v.to_value().map_err(|e| e.to_string())?;
                    let _ = write!(s, "{}", normalise_key(col.ty, &value));
                }
            },
        }
    }
    s.push(']');
    Ok(s)
}

/// The key text of `record` (its key fields found by name).
pub(crate) fn record_key(table: &TableSpec, record: &Record<'_>) -> Result<String, String> {
    key_string(table, table.key().iter().map(|c| record.get(&c.name)))
}

/// The canonical key text of one stream's records, for the host outside the destinations
/// (the keys-only pass of `deletes = "soft"`): the text [`super::Destination::mark_deleted`]
/// compares its rows' keys with.
#[derive(Debug)]
pub(crate) struct StreamKeys(TableSpec);

impl StreamKeys {
    /// The keys of `stream` (its schema needs only the key's properties).
    pub(crate) fn new(stream: &super::StreamSpec) -> Result<Self, DestinationError> {
        let table = TableSpec::new("keys", stream)?;
        if table.key_len == 0 {
            return Err(DestinationError::Schema {
                destination: "keys".into(),
                stream: stream.name.clone(),
                message: "it has no primary key, so deleted rows cannot be told from live ones"
                    .into(),
            });
        }
        Ok(StreamKeys(table))
    }

    /// The key text of `record`; an error when a key field is missing or null.
    pub(crate) fn key(&self, record: &Record<'_>) -> Result<String, String> {
        for c in self.0.key() {
            if record.get(&c.name).is_none_or(|v| v.is_null()) {
                return Err(format!("primary key field `{}` is missing or null", c.name));
            }
        }
        record_key(&self.0, record)
    }
}

/// The key text of a row read back from a typed store (its key values in key order, as
/// JSON values of the columns' types): equal to [`key_string`] of the record it came from.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn stored_key(table: &TableSpec, values: &[serde_json::Value]) -> String {
    let parts: Vec<serde_json::Value> = table
        .key()
        .iter()
        .zip(values)
        .map(|(c, v)| normalise_key(c.ty, v))
        .collect();
    serde_json::Value::Array(parts).to_string()
}

/// The positions of the records to write: only the last record of each key, in the order
/// of those last occurrences (every record without a key). For writers that cannot
/// upsert one key twice in one statement.
#[cfg(any(test, feature = "postgres"))]
pub(crate) fn last_by_key(
    destination: &str,
    table: &TableSpec,
    records: &crate::read::Records,
) -> Result<Vec<usize>, DestinationError> {
    if table.key_len == 0 {
        return Ok((0..records.len()).collect());
    }
    let mut last = std::collections::HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let key = record_key(table, &r).map_err(|message| DestinationError::Record {
            destination: destination.to_string(),
            stream: table.stream.clone(),
            message,
        })?;
        last.insert(key, i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    Ok(keep)
}

#[cfg(test)]
#[path = "row_tests.rs"]
mod tests;
