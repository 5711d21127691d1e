//! Column selection: the fields a user chose for a stream, checked against the stream's
//! record schema, with its primary key and cursor added, into the request the connector
//! pushes down and the narrowed schema the consumer (a destination, a protocol's catalog)
//! receives. Every consumer that selects columns goes through [`with_columns`], so the
//! rules are the same for a pipeline's `columns`, Airbyte's and Singer's field selection.

use ionport_plugin_abi::wire::{ReadRequest, TaskSpec};
use serde_json::Value;

/// Why a selection cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    /// Columns the stream's record schema does not have.
    #[error("stream '{stream}' has no column {} (its columns: {})", quoted(.unknown), .known.join(", "))]
    Unknown {
        /// The stream.
        stream: String,
        /// The columns asked for that it lacks.
        unknown: Vec<String>,
        /// The columns it has.
        known: Vec<String>,
    },
    /// An empty list: it would read only the key, which is surely not what was meant.
    #[error("the column list of stream '{0}' is empty (leave it out to read every column)")]
    Empty(String),
    /// The stream's schema names no columns, so none can be chosen.
    #[error("stream '{0}' declares no columns in its record schema, so none can be selected")]
    NoSchema(String),
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of a stream's record schema, in the schema's order.
pub fn schema_columns(spec: &TaskSpec) -> Vec<String> {
    spec.record_schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The columns read for `wanted`: those, then the primary key and the cursor when they
/// were left out (a destination upserts on the key, an incremental read advances on the
/// cursor). Every column must be in the stream's record schema.
pub fn selected_columns(spec: &TaskSpec, wanted: &[String]) -> Result<Vec<String>, ColumnError> {
    if wanted.is_empty() {
        return Err(ColumnError::Empty(spec.name.clone()));
    }
    let known = schema_columns(spec);
    if known.is_empty() {
        return Err(ColumnError::NoSchema(spec.name.clone()));
    }
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|c| !known.contains(c))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(ColumnError::Unknown {
            stream: spec.name.clone(),
            unknown,
            known,
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(wanted.len() + spec.primary_key.len() + 1);
    for c in wanted
        .iter()
        .chain(&spec.primary_key)
        .chain(&spec.cursor_field)
    {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// `spec` with its record schema narrowed to `columns` (properties and `required`).
pub fn narrow_spec(spec: &TaskSpec, columns: &[String]) -> TaskSpec {
    let mut narrowed = spec.clone();
    if let Some(props) = narrowed
        .record_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        props.retain(|k, _| columns.contains(k));
    }
    if let Some(req) = narrowed
        .record_schema
        .get_mut("required")
        .and_then(Value::as_array_mut)
    {
        req.retain(|r| r.as_str().is_some_and(|r| columns.iter().any(|c| c == r)));
    }
    narrowed
}

/// `request` reading only `wanted` of the stream `spec` (plus its key and cursor), and the
/// spec narrowed to what will arrive. `None` leaves both as they are (every column).
pub fn with_columns(
    mut request: ReadRequest,
    spec: &TaskSpec,
    wanted: Option<&[String]>,
) -> Result<(ReadRequest, TaskSpec), ColumnError> {
    let Some(wanted) = wanted else {
        return Ok((request, spec.clone()));
    };
    let columns = selected_columns(spec, wanted)?;
    let narrowed = narrow_spec(spec, &columns);
    request.columns = Some(columns);
    Ok((request, narrowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ionport_plugin_abi::wire::SyncMode;
    use serde_json::json;

    fn spec() -> TaskSpec {
        TaskSpec {
            name: "customer_table".into(),
            description: String::new(),
            record_schema: json!({
                "type": "object",
                "properties": {
                    "OKCONO": {"type": "integer"}, "OKCUNO": {"type": "string"},
                    "OKCUNM": {"type": ["string", "null"]}, "OKTOWN": {"type": ["string", "null"]},
                    "OKLMTS": {"type": ["integer", "null"]}
                },
                "required": ["OKCONO", "OKCUNO"]
            }),
            primary_key: vec!["OKCONO".into(), "OKCUNO".into()],
            cursor_field: Some("OKLMTS".into()),
            sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
            requests_per_1000_records: None,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_key_and_the_cursor_are_always_read() {
        let got = selected_columns(&spec(), &names(&["OKCUNM"])).unwrap();
        assert_eq!(got, names(&["OKCUNM", "OKCONO", "OKCUNO", "OKLMTS"]));
        let got = selected_columns(&spec(), &names(&["OKCUNO", "OKCUNM", "OKCUNM"])).unwrap();
        assert_eq!(got, names(&["OKCUNO", "OKCUNM", "OKCONO", "OKLMTS"]));
    }

    #[test]
    fn the_schema_is_narrowed_to_the_columns_read() {
        let (req, narrowed) = with_columns(
            ReadRequest {
                connection: Default::default(),
                task: "customer_table".into(),
                sync_mode: SyncMode::FullRefresh,
                state: None,
                page_size: None,
                pages_in_flight: None,
                options: Value::Null,
                columns: None,
                include_deleted: false,
                partition: None,
            },
            &spec(),
            Some(&names(&["OKTOWN"])),
        )
        .unwrap();
        assert_eq!(
            req.columns.unwrap(),
            names(&["OKTOWN", "OKCONO", "OKCUNO", "OKLMTS"])
        );
        let mut props: Vec<&String> = narrowed.record_schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        props.sort();
        assert_eq!(props, ["OKCONO", "OKCUNO", "OKLMTS", "OKTOWN"]);
        assert_eq!(
            narrowed.record_schema["required"],
            json!(["OKCONO", "OKCUNO"])
        );
    }

    #[test]
    fn an_unknown_or_empty_selection_is_an_error_naming_it() {
        let e = selected_columns(&spec(), &names(&["OKCUNM", "CUNM"])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("'customer_table'") && msg.contains("'CUNM'"),
            "{msg}"
        );
        assert!(
            msg.contains("OKCUNM"),
            "the known columns are listed: {msg}"
        );
        assert!(
            !msg.contains("'OKCUNM'"),
            "only the unknown one is quoted: {msg}"
        );
        let e = selected_columns(&spec(), &[]).unwrap_err();
        assert_eq!(e, ColumnError::Empty("customer_table".into()));
    }
}
