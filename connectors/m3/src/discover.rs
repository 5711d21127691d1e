//! What the tenant's M3 offers: its MI programs and transactions (`MRS001MI`) and the
//! tables `EXPORTMI` can read.

use std::collections::HashSet;

use ionport_infor_mi::{MiCall, MiType};
use ionport_plugin_sdk::{
    ConnectionConfig, ConnectorError, DiscoveredStream, Discovery, Host, SyncMode, TaskSpec,
};
use serde_json::{Value, json};

use crate::export::SEPARATOR;
use crate::settings::M3Settings;
use crate::tasks::{self, Source, TABLE_STREAM};

fn field(row: &[(String, String)], k: &str) -> String {
    row.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The type a column has by M3 naming convention (`EXPORTMI` answers carry no metadata).
pub fn column_type(col: &str) -> (MiType, bool) {
    let suffix = col.get(2..).unwrap_or(col);
    match suffix {
        "CONO" | "LMTS" | "CHNO" | "PONR" | "POSX" | "CUTP" => (MiType::Numeric, true),
        s if s.ends_with("DT") && s.len() == 4 => (MiType::Date, false),
        _ => (MiType::Alpha, false),
    }
}

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
        field(r, "REPL")
            .split(SEPARATOR)
            .map(|c| c.trim().to_string())
            .collect()
    }))
}

/// The spec of a `table:NAME` stream with `columns`.
pub fn table_spec(table: &str, key: &[&str], desc: &str, columns: &[String]) -> TaskSpec {
    let mut props = serde_json::Map::new();
    for c in columns {
        let (ty, int) = column_type(c);
        let base = match ty {
            MiType::Numeric if int => "integer",
            MiType::Numeric => "number",
            _ => "string",
        };
        let ty_json = if key.contains(&c.as_str()) {
            json!(base)
        } else {
            json!([base, "null"])
        };
        props.insert(c.clone(), json!({ "type": ty_json }));
    }
    let cursor = columns.iter().find(|c| c.ends_with("LMTS")).cloned();
    TaskSpec {
        name: format!("{TABLE_STREAM}{table}"),
        description: format!("{desc} ({table}) by EXPORTMI/Select"),
        record_schema: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": table, "type": "object", "properties": props, "required": key,
        }),
        primary_key: key.iter().map(|k| (*k).to_string()).collect(),
        sync_modes: if cursor.is_some() {
            vec![SyncMode::FullRefresh, SyncMode::Incremental]
        } else {
            vec![SyncMode::FullRefresh]
        },
        cursor_field: cursor,
        requests_per_1000_records: Some(crate::tasks::EXPORT_REQUESTS_PER_1000),
    }
}

/// Runs discovery.
pub fn discover(host: &Host, conn: &ConnectionConfig) -> Result<Discovery, ConnectorError> {
    let s = M3Settings::resolve(host, conn)?;
    let programs_call = MiCall::new("MRS001MI", "LstPrograms").maxrecs(0);
    let answer = programs_call.parse(&host.gateway(&programs_call.request(s.shape()))?)?;
    let programs: Vec<(String, String)> = answer
        .rows
        .iter()
        .map(|r| (field(r, "MINM"), field(r, "TX40")))
        .collect();
    let names: HashSet<&str> = programs.iter().map(|(p, _)| p.as_str()).collect();
    let mut transactions = serde_json::Map::new();
    let mut streams = Vec::new();
    for task in tasks::TASKS {
        let needed: Vec<(&str, &str)> = match task.source {
            Source::List(l) => vec![(l.program, l.transaction)],
            Source::OrderLines => vec![("OIS100MI", "LstLine"), ("EXPORTMI", "Select")],
            Source::Export(_) => vec![("EXPORTMI", "Select")],
        };
        let mut missing = Vec::new();
        for (p, t) in &needed {
            if !names.contains(p) {
                missing.push(format!("{p} is not available"));
                continue;
            }
            if !transactions.contains_key(*p) {
                let call = MiCall::new("MRS001MI", "LstTransactions")
                    .input("MINM", *p)
                    .maxrecs(0);
                let a = call.parse(&host.gateway(&call.request(s.shape()))?)?;
                let list: Vec<Value> = a
                    .rows
                    .iter()
                    .map(|r| Value::from(field(r, "TRNM")))
                    .collect();
                transactions.insert((*p).to_string(), Value::Array(list));
            }
            let has = transactions
                .get(*p)
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(t)));
            if !has {
                missing.push(format!("{p}/{t} is not available"));
            }
        }
        streams.push(DiscoveredStream {
            spec: task.spec(),
            predefined: true,
            available: missing.is_empty(),
            note: (!missing.is_empty()).then(|| missing.join("; ")),
        });
    }
    let mut tables = Vec::new();
    if names.contains("EXPORTMI") {
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
    Ok(Discovery {
        streams,
        details: json!({
            "programs": programs.iter().map(|(p, d)| json!({ "program": p, "description": d })).collect::<Vec<_>>(),
            "transactions": transactions,
            "exportmi_tables": tables,
        }),
    })
}
