//! Schema changes at the source: columns added to a table, or a column's type changed,
//! through `POST /__emulator/columns` — what an M3 custom or XtendM3 field, or a Data Lake
//! object whose schema changed, looks like to a client.
//!
//! An edited table is a new [`TableDef`] that every lookup of this emulator finds in place
//! of the built-in one ([`SchemaEdits::table`]): EXPORTMI (header row, `*`, rows), the
//! Data Catalog (object and schema) and Compass queries. Its values stay deterministic: an
//! added column holds the value of another column of the same row (`from`). Edited tables
//! are leaked (`&'static`, as the built-in ones): a handful per emulator, made by tests.

use std::collections::HashMap;

use serde::Deserialize;

use super::tables::{self, ColDef, Kind, TableDef};

/// A column to add, or a column whose type changes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRequest {
    /// The table (`OCUSMA`, `tccom100`, …).
    pub table: String,
    /// The column. A name the table already has changes that column's type.
    pub name: String,
    /// `string`, `integer`, `number` (two decimals) or `boolean` (default `string` for a
    /// new column).
    #[serde(rename = "type", default)]
    pub ty: Option<String>,
    /// The column whose value a new column holds (default: the table's last key column
    /// for a string, its change stamp for a number).
    #[serde(default)]
    pub from: Option<String>,
    /// Whether the Data Catalog's schema lists the new column (default `true`); `false`
    /// makes a column that rows carry before the catalog knows it (a schema published
    /// late): clients that read the schema first meet it mid-read.
    #[serde(default = "listed")]
    pub catalog: bool,
}

fn listed() -> bool {
    true
}

/// The tables edited so far, by built-in name.
#[derive(Debug, Default)]
pub struct SchemaEdits {
    tables: HashMap<&'static str, &'static TableDef>,
    /// Columns the Data Catalog's schema leaves out, by table.
    unlisted: HashMap<&'static str, Vec<String>>,
}

fn kind_of(ty: &str) -> Result<Kind, String> {
    Ok(match ty {
        "string" => Kind::A,
        "integer" => Kind::N(0),
        "number" => Kind::N(2),
        "boolean" => Kind::Bool,
        other => {
            return Err(format!(
                "unknown column type '{other}' (expected string, integer, number or boolean)"
            ));
        }
    })
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn copy(c: &ColDef) -> ColDef {
    ColDef {
        name: c.name,
        field: c.field,
        kind: c.kind,
        len: c.len,
        desc: c.desc,
    }
}

impl SchemaEdits {
    /// The table `name` as it is now (case-insensitive), edited or built in.
    #[must_use]
    pub fn table(&self, name: &str) -> Option<&'static TableDef> {
        let base = tables::lake_table(name)?;
        Some(self.tables.get(base.name).copied().unwrap_or(base))
    }

    /// The JSON Schema the Data Catalog gives for `table`: its columns but those added with
    /// `"catalog": false`.
    #[must_use]
    pub fn catalog_schema(&self, table: &TableDef) -> serde_json::Value {
        let mut schema = table.json_schema();
        if let (Some(names), Some(props)) = (
            self.unlisted.get(table.name),
            schema
                .get_mut("properties")
                .and_then(serde_json::Value::as_object_mut),
        ) {
            props.retain(|k, _| !names.contains(k));
        }
        schema
    }

    /// Adds the column, or changes its type; returns the table as it now is.
    pub fn apply(&mut self, req: &ColumnRequest) -> Result<&'static TableDef, String> {
        let table = self
            .table(&req.table)
            .ok_or_else(|| format!("unknown table '{}'", req.table))?;
        let mut columns: Vec<ColDef> = table.columns.iter().map(copy).collect();
        if let Some(i) = table.columns.iter().position(|c| c.name == req.name) {
            let ty = req.ty.as_deref().ok_or_else(|| {
                format!(
                    "table {} already has column {}: give a \"type\" to change it",
                    table.name, req.name
                )
            })?;
            if table.key.contains(&i) {
                return Err(format!("column {} is a key column", req.name));
            }
            columns[i].kind = kind_of(ty)?;
        } else {
            if req.name.is_empty() || !req.name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "column name '{}' is not letters and digits",
                    req.name
                ));
            }
            let kind = kind_of(req.ty.as_deref().unwrap_or("string"))?;
            let from = match &req.from {
                Some(f) => table
                    .column(f)
                    .ok_or_else(|| format!("table {} has no column {f}", table.name))?,
                None if kind == Kind::A => table.key.last().copied().unwrap_or(0),
                None => table.last_modified,
            };
            if !req.catalog {
                self.unlisted
                    .entry(table.name)
                    .or_default()
                    .push(req.name.clone());
            }
            columns.push(ColDef {
                name: leak(&req.name),
                field: table.columns[from].field,
                kind,
                len: 20,
                desc: "Added at the source (emulator)",
            });
        }
        let edited: &'static TableDef = Box::leak(Box::new(TableDef {
            name: table.name,
            desc: table.desc,
            surface: table.surface,
            entity: table.entity,
            columns: Box::leak(columns.into_boxed_slice()),
            key: table.key,
            last_modified: table.last_modified,
        }));
        self.tables.insert(table.name, edited);
        Ok(edited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(table: &str, name: &str, ty: Option<&str>) -> ColumnRequest {
        ColumnRequest {
            table: table.into(),
            name: name.into(),
            ty: ty.map(str::to_owned),
            from: None,
            catalog: true,
        }
    }

    #[test]
    fn a_column_is_added_and_a_type_changed() {
        let mut e = SchemaEdits::default();
        let n = tables::OCUSMA.columns.len();
        let t = e.apply(&req("ocusma", "OKZZCUST", None)).expect("added");
        assert_eq!(t.columns.len(), n + 1);
        assert_eq!(t.columns[n].field, tables::OCUSMA.columns[1].field);
        assert_eq!(e.table("OCUSMA").map(|t| t.columns.len()), Some(n + 1));
        let t = e
            .apply(&req("OCUSMA", "OKCUTP", Some("number")))
            .expect("retyped");
        assert_eq!(t.columns.len(), n + 1, "edits accumulate");
        assert_eq!(t.columns[9].kind, Kind::N(2));
        assert!(e.apply(&req("OCUSMA", "OKCUNO", Some("number"))).is_err());
        assert!(e.apply(&req("NOPE", "X", None)).is_err());
        assert!(e.apply(&req("OCUSMA", "OKX", Some("date"))).is_err());
        // A column the catalog does not list yet.
        let mut hidden = req("OCUSMA", "OKLATE", None);
        hidden.catalog = false;
        let t = e.apply(&hidden).expect("added");
        let schema = e.catalog_schema(t);
        assert!(schema["properties"].get("OKLATE").is_none(), "{schema}");
        assert!(schema["properties"].get("OKZZCUST").is_some(), "{schema}");
        assert_eq!(t.columns.last().map(|c| c.name), Some("OKLATE"));
        // Another emulator's tables are its own.
        assert_eq!(
            SchemaEdits::default()
                .table("OCUSMA")
                .map(|t| t.columns.len()),
            Some(n)
        );
    }
}
