//! A transaction's (or table's) output columns declared as a table: the record schema
//! is made of it, and it types the fields of answers that carry no metadata.

use std::collections::HashMap;

use ionport_plugin_sdk::schema::{Column, record_schema};
use serde_json::Value;

use crate::MiType;

/// A column: name, M3 type, integral (for `N`), description.
pub type MiColumn = (&'static str, MiType, bool, &'static str);

/// The JSON type of an M3 type (`integral` for a whole `N`) and its format: a date is an
/// ISO date string, as [`MiType::value`] makes it.
pub fn json_type(ty: MiType, integral: bool) -> (&'static str, Option<&'static str>) {
    match ty {
        MiType::Alpha => ("string", None),
        MiType::Numeric if integral => ("integer", None),
        MiType::Numeric => ("number", None),
        MiType::Date => ("string", Some("date")),
    }
}

/// The JSON Schema of records of `cols`; `key` columns are required and never null.
pub fn schema(title: &str, cols: &[MiColumn], key: &[&str]) -> Value {
    let columns = cols.iter().map(|&(name, ty, integral, description)| {
        let (json_type, format) = json_type(ty, integral);
        Column {
            name,
            json_type,
            description: Some(description),
            format,
        }
    });
    record_schema(title, columns, key)
}

/// Column name → type, the fallback when an answer carries no metadata.
pub fn types(cols: &[MiColumn]) -> HashMap<String, MiType> {
    cols.iter().map(|c| (c.0.to_string(), c.1)).collect()
}

/// The names of `cols`.
pub fn names(cols: &[MiColumn]) -> Vec<&'static str> {
    cols.iter().map(|c| c.0).collect()
}
