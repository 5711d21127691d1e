//! Reading back what a pipeline wrote into a SQLite destination: a stream's table, its
//! column names and its rows as JSON, straight from the file with `rusqlite` (not through
//! ionport's destination code, which is what is checked).

use std::path::Path;

use serde_json::{Map, Value, json};

/// The column names and rows of `stream`'s table in the SQLite file `db`.
pub fn table(db: &Path, stream: &str) -> (Vec<String>, Vec<Map<String, Value>>) {
    let table = ionport_core::destination::table_name(stream);
    let conn =
        rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{} opens: {e}", db.display()));
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM \"{table}\""))
        .unwrap_or_else(|e| panic!("{}: no table {table} ({e})", db.display()));
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut rows = stmt.query([]).expect("the table can be read");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("a row") {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let v = match row.get_ref(i).expect("a value") {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(x) => json!(x),
                ValueRef::Real(x) => json!(x),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(_) => panic!("{table}.{n}: a blob"),
            };
            m.insert(n.clone(), v);
        }
        out.push(m);
    }
    (names, out)
}
