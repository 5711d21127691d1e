//! What the tenant's M3 offers: its MI programs and transactions (`MRS001MI`, read by
//! `ionport_infor_mi::catalog`) and the tables `EXPORTMI` can read.

use ionport_infor_mi::catalog::MiCatalog;
use ionport_infor_mi::columns::json_type;
pub use ionport_infor_mi::columns::type_by_name as column_type;
use ionport_infor_mi::{MiCall, field};
use ionport_plugin_sdk::schema::{Column, record_schema, sync_modes};
use ionport_plugin_sdk::{
    ConnectionConfig, ConnectorError, DiscoveredStream, Discovery, Host, TaskSpec,
};
use serde_json::Value;

use crate::export::SEPARATOR;
use crate::settings::M3Settings;
use crate::tasks::{self, PAGED_REQUESTS_PER_1000, TABLE_STREAM};

/// The columns of `table` (from a header row), or `None` when the tenant lacks it.
pub fn table_columns(
    host: &Host,
    s: &M3Settings,
    table: &str,
    company_col: &str,
) -> Result<Option<Vec<String>>, ConnectorError> {
    let call = MiCall::new("EXPORTMI", "Select")
        .input("SEPC", SEPARATOR)
        .input("HDRS", "1")
        .input(
            "QERY",
            format!("* from {table} where {company_col} = {}", s.company),
        )
        .maxrecs(1);
    let resp = host.gateway(&call.request(s.shape()))?;
    let Ok(answer) = call.parse_detailed(&resp) else {
        return Ok(None);
    };
    Ok(answer.rows.first().map(|r| {
        (field(r, "REPL").split(SEPARATOR))
            .map(|c| c.trim().to_string())
            .collect()
    }))
}

/// The spec of a `table:NAME` stream with `columns`, typed by their names.
pub fn table_spec(table: &str, key: &[&str], desc: &str, columns: &[String]) -> TaskSpec {
    let typed = columns.iter().map(|c| {
        let (ty, integral) = column_type(c);
        Column {
            name: c,
            json_type: json_type(ty, integral).0,
            description: None,
            format: None,
        }
    });
    let cursor = columns.iter().find(|c| c.ends_with("LMTS")).cloned();
    TaskSpec {
        name: format!("{TABLE_STREAM}{table}"),
        description: format!("{desc} ({table}) by EXPORTMI/Select"),
        record_schema: record_schema(table, typed, key),
        primary_key: key.iter().map(|k| (*k).to_string()).collect(),
        sync_modes: sync_modes(cursor.as_deref()),
        cursor_field: cursor,
        requests_per_1000_records: Some(PAGED_REQUESTS_PER_1000),
    }
}

/// Runs discovery.
pub fn discover(host: &Host, conn: &ConnectionConfig) -> Result<Discovery, ConnectorError> {
    let s = M3Settings::resolve(host, conn)?;
    let mut catalog = MiCatalog::read(host, s.shape())?;
    let mut streams = Vec::new();
    for task in tasks::TASKS {
        let missing = catalog.missing(host, &task.needs())?;
        streams.push(DiscoveredStream {
            spec: task.spec(),
            predefined: true,
            available: missing.is_empty(),
            note: (!missing.is_empty()).then(|| missing.join("; ")),
        });
    }
    let mut tables = Vec::new();
    if catalog.has_program("EXPORTMI") {
        for (table, key, desc) in tasks::STANDARD_TABLES {
            host.check_cancelled()?;
            if let Some(cols) = table_columns(host, &s, table, key[0])? {
                tables.push(Value::from(*table));
                streams.push(DiscoveredStream {
                    spec: table_spec(table, key, desc, &cols),
                    predefined: false,
                    available: true,
                    note: None,
                });
            }
        }
    }
    let mut details = catalog.details();
    details["exportmi_tables"] = Value::Array(tables);
    Ok(Discovery { streams, details })
}
