//! The columns of the data each task returns: names, M3 types and descriptions. The
//! record schemas are generated from them, and they are the fallback types when an
//! answer carries no metadata.

use std::collections::HashMap;

use ionport_infor_mi::MiType;
use serde_json::{Map, Value, json};

/// A column: name, M3 type, integral (for `N`), description.
pub type Col = (&'static str, MiType, bool, &'static str);

use MiType::{Alpha as A, Date as D, Numeric as N};

/// `CRS610MI/LstByNumber` outputs.
pub const CUSTOMER: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("CUNO", A, false, "Customer"),
    ("CUNM", A, false, "Customer name"),
    ("CUA1", A, false, "Customer address 1"),
    ("TOWN", A, false, "City"),
    ("CSCD", A, false, "Country"),
    ("PHNO", A, false, "Telephone number 1"),
    ("CUCD", A, false, "Currency"),
    ("STAT", A, false, "Status"),
    ("CUTP", N, true, "Customer type"),
    ("CRLM", N, false, "Credit limit 1"),
    ("RGDT", D, false, "Entry date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// `MMS200MI/LstByNumber` outputs.
pub const ITEM: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("ITNO", A, false, "Item number"),
    ("ITDS", A, false, "Name"),
    ("FUDS", A, false, "Description 2"),
    ("ITTY", A, false, "Item type"),
    ("ITGR", A, false, "Item group"),
    ("UNMS", A, false, "Basic unit of measure"),
    ("STAT", A, false, "Status"),
    ("NEWE", N, false, "Net weight"),
    ("SAPR", N, false, "Sales price"),
    ("RGDT", D, false, "Entry date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// `CRS620MI/LstSuppliers` outputs.
pub const SUPPLIER: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("SUNO", A, false, "Supplier"),
    ("SUNM", A, false, "Supplier name"),
    ("TOWN", A, false, "City"),
    ("CSCD", A, false, "Country"),
    ("CUCD", A, false, "Currency"),
    ("PHNO", A, false, "Telephone number 1"),
    ("STAT", A, false, "Status"),
    ("RGDT", D, false, "Entry date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// `OIS100MI/LstLine` outputs.
pub const ORDER_LINE: &[Col] = &[
    ("CONO", N, true, "Company"),
    ("DIVI", A, false, "Division"),
    ("ORNO", A, false, "Customer order number"),
    ("PONR", N, true, "Order line number"),
    ("POSX", N, true, "Line suffix"),
    ("ITNO", A, false, "Item number"),
    ("CUNO", A, false, "Customer"),
    ("ORQT", N, false, "Ordered quantity"),
    ("SAPR", N, false, "Sales price"),
    ("LNAM", N, false, "Line amount"),
    ("ORST", A, false, "Status"),
    ("DWDT", D, false, "Requested delivery date"),
    ("LMDT", D, false, "Change date"),
    ("LMTS", N, true, "Timestamp"),
    ("CHNO", N, true, "Change number"),
];

/// The customer master table `OCUSMA`, as `EXPORTMI/Select` returns it.
pub const OCUSMA: &[Col] = &[
    ("OKCONO", N, true, "Company"),
    ("OKCUNO", A, false, "Customer"),
    ("OKCUNM", A, false, "Customer name"),
    ("OKCUA1", A, false, "Customer address 1"),
    ("OKTOWN", A, false, "City"),
    ("OKCSCD", A, false, "Country"),
    ("OKPHNO", A, false, "Telephone number 1"),
    ("OKCUCD", A, false, "Currency"),
    ("OKSTAT", A, false, "Status"),
    ("OKCUTP", N, true, "Customer type"),
    ("OKCRLM", N, false, "Credit limit 1"),
    ("OKRGDT", D, false, "Entry date"),
    ("OKLMDT", D, false, "Change date"),
    ("OKLMTS", N, true, "Timestamp"),
    ("OKCHNO", N, true, "Change number"),
];

/// The JSON Schema of records with `cols`; `key` columns are required and never null.
pub fn schema(title: &str, cols: &[Col], key: &[&str]) -> Value {
    let mut props = Map::new();
    for (name, ty, int, desc) in cols {
        let base = match ty {
            MiType::Alpha => "string",
            MiType::Numeric if *int => "integer",
            MiType::Numeric => "number",
            MiType::Date => "string",
        };
        let ty_json = if key.contains(name) {
            json!(base)
        } else {
            json!([base, "null"])
        };
        let mut p = json!({ "type": ty_json, "description": desc });
        if *ty == MiType::Date {
            p["format"] = json!("date");
        }
        props.insert((*name).to_string(), p);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": props,
        "required": key,
    })
}

/// Column name → type, the fallback when an answer carries no metadata.
pub fn types(cols: &[Col]) -> HashMap<String, MiType> {
    cols.iter()
        .map(|(n, t, _, _)| ((*n).to_string(), *t))
        .collect()
}

/// The names of `cols`.
pub fn names(cols: &[Col]) -> Vec<&'static str> {
    cols.iter().map(|c| c.0).collect()
}
