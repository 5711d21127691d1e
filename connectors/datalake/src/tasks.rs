//! The predefined Data Lake replication tasks: Compass queries over the tables M3 and LN
//! replicate to the lake. Columns are the lake's; every row carries the lake's
//! `infor.lastmodified()` time as `lastmodified` and its `deleted` flag.

use ionport_plugin_sdk::{SyncMode, TaskSpec};
use serde_json::{Value, json};

struct LakeTable {
    task: &'static str,
    table: &'static str,
    what: &'static str,
    key: &'static [&'static str],
    columns: &'static [(&'static str, &'static str)],
}

const TABLES: &[LakeTable] = &[
    LakeTable {
        task: "m3_customers",
        table: "OCUSMA",
        what: "M3 customer master",
        key: &["OKCONO", "OKCUNO"],
        columns: &[
            ("OKCONO", "integer"),
            ("OKCUNO", "string"),
            ("OKCUNM", "string"),
            ("OKTOWN", "string"),
            ("OKCSCD", "string"),
            ("OKSTAT", "string"),
            ("OKLMDT", "string"),
        ],
    },
    LakeTable {
        task: "m3_items",
        table: "MITMAS",
        what: "M3 item master",
        key: &["MMCONO", "MMITNO"],
        columns: &[
            ("MMCONO", "integer"),
            ("MMITNO", "string"),
            ("MMITDS", "string"),
            ("MMITTY", "string"),
            ("MMUNMS", "string"),
            ("MMSTAT", "string"),
            ("MMLMDT", "string"),
        ],
    },
    LakeTable {
        task: "m3_suppliers",
        table: "CIDMAS",
        what: "M3 supplier master",
        key: &["IDCONO", "IDSUNO"],
        columns: &[
            ("IDCONO", "integer"),
            ("IDSUNO", "string"),
            ("IDSUNM", "string"),
            ("IDCSCD", "string"),
            ("IDSTAT", "string"),
            ("IDLMDT", "string"),
        ],
    },
    LakeTable {
        task: "m3_order_lines",
        table: "OOLINE",
        what: "M3 customer order lines",
        key: &["OBCONO", "OBORNO", "OBPONR", "OBPOSX"],
        columns: &[
            ("OBCONO", "integer"),
            ("OBORNO", "string"),
            ("OBPONR", "integer"),
            ("OBPOSX", "integer"),
            ("OBITNO", "string"),
            ("OBORQT", "number"),
            ("OBNEPR", "number"),
            ("OBLMDT", "string"),
        ],
    },
    LakeTable {
        task: "ln_business_partners",
        table: "tccom100",
        what: "LN business partners",
        key: &["bpid"],
        columns: &[
            ("bpid", "string"),
            ("nama", "string"),
            ("bpst", "string"),
            ("ccty", "string"),
            ("ccur", "string"),
        ],
    },
    LakeTable {
        task: "ln_sales_orders",
        table: "tdsls400",
        what: "LN sales orders",
        key: &["orno"],
        columns: &[
            ("orno", "string"),
            ("ofbp", "string"),
            ("odat", "string"),
            ("ccur", "string"),
            ("oamt", "number"),
        ],
    },
    LakeTable {
        task: "ln_items",
        table: "tcibd001",
        what: "LN items",
        key: &["item"],
        columns: &[
            ("item", "string"),
            ("dsca", "string"),
            ("kitm", "string"),
            ("cuni", "string"),
            ("citg", "string"),
        ],
    },
];

fn schema(t: &LakeTable) -> Value {
    let mut props = serde_json::Map::new();
    for (name, ty) in t.columns {
        let nullable = !t.key.contains(name);
        let ty = if nullable {
            json!([ty, "null"])
        } else {
            json!(ty)
        };
        props.insert((*name).to_string(), json!({ "type": ty }));
    }
    props.insert(
        "lastmodified".into(),
        json!({ "type": "string", "format": "date-time", "description": "infor.lastmodified() of the row" }),
    );
    props.insert(
        "deleted".into(),
        json!({ "type": "boolean", "description": "Whether the row was deleted in the source" }),
    );
    let mut required: Vec<&str> = t.key.to_vec();
    required.push("lastmodified");
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": t.table,
        "type": "object",
        "properties": props,
        "required": required,
    })
}

/// The predefined tasks.
pub fn predefined() -> Vec<TaskSpec> {
    TABLES
        .iter()
        .map(|t| TaskSpec {
            name: t.task.into(),
            description: format!("{} ({}) by Compass SQL.", t.what, t.table),
            record_schema: schema(t),
            primary_key: t.key.iter().map(|k| (*k).to_string()).collect(),
            cursor_field: Some("lastmodified".into()),
            sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
        })
        .collect()
}
