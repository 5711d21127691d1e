//! Record schemas and sync modes declared as data: for sources whose records are rows of
//! named fields (MI transactions, database tables), a table of columns says what a
//! record is, where a connector over typed entities derives it from a Rust type instead
//! ([`crate::form::record_schema`]).

use serde_json::{Map, Value, json};

use crate::SyncMode;

/// One column of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column<'a> {
    /// The record's field name.
    pub name: &'a str,
    /// Its JSON type: `string`, `integer`, `number` or `boolean`.
    pub json_type: &'a str,
    /// What it holds, when known.
    pub description: Option<&'a str>,
    /// Its JSON Schema `format` (`date`), when it has one.
    pub format: Option<&'a str>,
}

/// The JSON Schema (draft 2020-12) of records of `columns`, titled `title`: the `key`
/// columns are required and never null, every other column may be null.
pub fn record_schema<'a>(
    title: &str,
    columns: impl IntoIterator<Item = Column<'a>>,
    key: &[&str],
) -> Value {
    let mut properties = Map::new();
    for c in columns {
        let ty = if key.contains(&c.name) {
            json!(c.json_type)
        } else {
            json!([c.json_type, "null"])
        };
        let mut p = json!({ "type": ty });
        if let Some(d) = c.description {
            p["description"] = json!(d);
        }
        if let Some(f) = c.format {
            p["format"] = json!(f);
        }
        properties.insert(c.name.to_string(), p);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": key,
    })
}

/// The sync modes of a task: full refresh, and incremental when it has a cursor field.
pub fn sync_modes(cursor: Option<&str>) -> Vec<SyncMode> {
    let mut modes = vec![SyncMode::FullRefresh];
    if cursor.is_some() {
        modes.push(SyncMode::Incremental);
    }
    modes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_columns_are_required_and_never_null_and_others_may_be_null() {
        let col = |name, json_type, format| Column {
            name,
            json_type,
            description: Some("d"),
            format,
        };
        let s = record_schema(
            "t",
            [
                col("ID", "integer", None),
                col("AT", "string", Some("date")),
            ],
            &["ID"],
        );
        assert_eq!(
            s["properties"]["ID"],
            json!({"type": "integer", "description": "d"})
        );
        assert_eq!(
            s["properties"]["AT"],
            json!({"type": ["string", "null"], "description": "d", "format": "date"})
        );
        assert_eq!(s["required"], json!(["ID"]));
        assert_eq!(s["title"], "t");
    }

    #[test]
    fn only_a_task_with_a_cursor_is_incremental() {
        assert_eq!(sync_modes(None), [SyncMode::FullRefresh]);
        assert_eq!(
            sync_modes(Some("LMTS")),
            [SyncMode::FullRefresh, SyncMode::Incremental]
        );
    }
}
