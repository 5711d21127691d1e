//! A transaction's (or table's) output columns declared as a table: the record schema
//! is made of it, and it types the fields of answers that carry no metadata.

use std::collections::HashMap;

use ionport_plugin_sdk::columns::select;
use ionport_plugin_sdk::schema::{Column, record_schema};
use ionport_plugin_sdk::{ConnectorError, ReadRequest};
use serde_json::Value;

use crate::MiType;

/// A column: name, M3 type, integral (for `N`), description.
pub type MiColumn = (&'static str, MiType, bool, &'static str);

/// The type a table column has by M3's naming convention (a two-letter prefix, then the
/// field: `OKCONO`), for answers that carry no metadata (`EXPORTMI`): the company, change
/// stamp and number, line numbers and customer type are whole numbers, a `xxDT` a date.
pub fn type_by_name(col: &str) -> (MiType, bool) {
    let suffix = col.get(2..).unwrap_or(col);
    match suffix {
        "CONO" | "LMTS" | "CHNO" | "PONR" | "POSX" | "CUTP" => (MiType::Numeric, true),
        s if s.ends_with("DT") && s.len() == 4 => (MiType::Date, false),
        _ => (MiType::Alpha, false),
    }
}

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

/// The columns of `cols` a read asks for, in their order: its selection and `keep` (the
/// key, the cursor, a paging field), or every column when it selects none; a selected
/// column `cols` lacks is an error naming it.
pub fn selected(
    req: &ReadRequest,
    cols: &[MiColumn],
    keep: &[&str],
) -> Result<Vec<MiColumn>, ConnectorError> {
    Ok(match select(req, &names(cols), keep)? {
        Some(chosen) => (cols.iter())
            .filter(|c| chosen.iter().any(|n| n == c.0))
            .copied()
            .collect(),
        None => cols.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ionport_plugin_sdk::{ConnectionConfig, SyncMode};

    #[test]
    fn a_tables_columns_are_typed_by_their_names() {
        assert_eq!(type_by_name("OKCONO"), (MiType::Numeric, true));
        assert_eq!(type_by_name("OBPONR"), (MiType::Numeric, true));
        assert_eq!(type_by_name("OKRGDT"), (MiType::Date, false));
        assert_eq!(type_by_name("OKCUNO"), (MiType::Alpha, false));
        assert_eq!(type_by_name("OKCRDT2"), (MiType::Alpha, false));
    }

    #[test]
    fn a_selection_keeps_the_declared_order_and_the_kept_columns() {
        const COLS: &[MiColumn] = &[
            ("CONO", MiType::Numeric, true, "Company"),
            ("CUNO", MiType::Alpha, false, "Customer"),
            ("TOWN", MiType::Alpha, false, "City"),
        ];
        let mut req = ReadRequest {
            connection: ConnectionConfig::default(),
            task: "customers".into(),
            sync_mode: SyncMode::FullRefresh,
            state: None,
            page_size: None,
            pages_in_flight: None,
            options: Value::Null,
            columns: None,
            include_deleted: false,
            partition: None,
        };
        assert_eq!(selected(&req, COLS, &["CUNO"]).unwrap(), COLS);
        req.columns = Some(vec!["TOWN".into()]);
        let got = selected(&req, COLS, &["CUNO"]).unwrap();
        assert_eq!(names(&got), ["CUNO", "TOWN"]);
        req.columns = Some(vec!["NOPE".into()]);
        assert!(selected(&req, COLS, &[]).is_err());
    }
}
