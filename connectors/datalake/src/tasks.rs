//! The predefined Data Lake replication tasks: Compass queries over the tables M3 and LN
//! replicate to the lake. Columns and types are the lake's (as the Data Catalog describes
//! them): M3 tables keep M3's column names with their two-letter prefix, dates as
//! `yyyyMMdd` numbers and the change stamp `..LMTS` in epoch milliseconds; LN tables
//! use LN's short names, ISO dates and an ISO `timestamp`. Every row carries `deleted`.
//! The cursor is the table's change stamp, which is what `infor.lastmodified()` filters.

use ionport_plugin_sdk::schema::{Column, record_schema};
use ionport_plugin_sdk::{DELETED_FIELD_KEY, SyncMode, TaskSpec};
use serde_json::Value;

/// A column type as the lake gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Text.
    S,
    /// Integer.
    I,
    /// Decimal number.
    N,
    /// M3 date, `yyyyMMdd` as a number.
    D8,
    /// ISO date `YYYY-MM-DD`.
    Date,
    /// ISO-8601 UTC timestamp.
    Ts,
    /// Boolean.
    B,
}

/// One predefined lake table.
#[derive(Debug)]
pub struct LakeTable {
    /// Task name.
    pub task: &'static str,
    /// Lake table (catalog object) name.
    pub table: &'static str,
    /// What it holds.
    pub what: &'static str,
    /// Primary key columns.
    pub key: &'static [&'static str],
    /// The change-stamp column (the cursor).
    pub cursor: &'static str,
    /// Columns in order.
    pub columns: &'static [(&'static str, Ty)],
}

use Ty::{B, D8, Date, I, N, S, Ts};

/// The predefined tables.
pub const TABLES: &[LakeTable] = &[
    LakeTable {
        task: "m3_customers",
        table: "OCUSMA",
        what: "M3 customer master",
        key: &["OKCONO", "OKCUNO"],
        cursor: "OKLMTS",
        columns: &[
            ("OKCONO", I),
            ("OKCUNO", S),
            ("OKCUNM", S),
            ("OKCUA1", S),
            ("OKTOWN", S),
            ("OKCSCD", S),
            ("OKPHNO", S),
            ("OKCUCD", S),
            ("OKSTAT", S),
            ("OKCUTP", I),
            ("OKCRLM", N),
            ("OKRGDT", D8),
            ("OKLMDT", D8),
            ("OKLMTS", I),
            ("OKCHNO", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "m3_items",
        table: "MITMAS",
        what: "M3 item master",
        key: &["MMCONO", "MMITNO"],
        cursor: "MMLMTS",
        columns: &[
            ("MMCONO", I),
            ("MMITNO", S),
            ("MMITDS", S),
            ("MMFUDS", S),
            ("MMITTY", S),
            ("MMITGR", S),
            ("MMUNMS", S),
            ("MMSTAT", S),
            ("MMNEWE", N),
            ("MMSAPR", N),
            ("MMRGDT", D8),
            ("MMLMDT", D8),
            ("MMLMTS", I),
            ("MMCHNO", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "m3_suppliers",
        table: "CIDMAS",
        what: "M3 supplier master",
        key: &["IDCONO", "IDSUNO"],
        cursor: "IDLMTS",
        columns: &[
            ("IDCONO", I),
            ("IDSUNO", S),
            ("IDSUNM", S),
            ("IDTOWN", S),
            ("IDCSCD", S),
            ("IDCUCD", S),
            ("IDPHNO", S),
            ("IDSTAT", S),
            ("IDRGDT", D8),
            ("IDLMDT", D8),
            ("IDLMTS", I),
            ("IDCHNO", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "m3_order_heads",
        table: "OOHEAD",
        what: "M3 customer order heads",
        key: &["OACONO", "OAORNO"],
        cursor: "OALMTS",
        columns: &[
            ("OACONO", I),
            ("OADIVI", S),
            ("OAORNO", S),
            ("OACUNO", S),
            ("OAORDT", D8),
            ("OAORTP", S),
            ("OAORST", S),
            ("OACUCD", S),
            ("OALMDT", D8),
            ("OALMTS", I),
            ("OACHNO", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "m3_order_lines",
        table: "OOLINE",
        what: "M3 customer order lines",
        key: &["OBCONO", "OBORNO", "OBPONR", "OBPOSX"],
        cursor: "OBLMTS",
        columns: &[
            ("OBCONO", I),
            ("OBDIVI", S),
            ("OBORNO", S),
            ("OBPONR", I),
            ("OBPOSX", I),
            ("OBITNO", S),
            ("OBCUNO", S),
            ("OBORQT", N),
            ("OBSAPR", N),
            ("OBLNAM", N),
            ("OBORST", S),
            ("OBDWDT", D8),
            ("OBLMDT", D8),
            ("OBLMTS", I),
            ("OBCHNO", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "ln_business_partners",
        table: "tccom100",
        what: "LN business partners",
        key: &["company", "bpid"],
        cursor: "timestamp",
        columns: &[
            ("company", I),
            ("bpid", S),
            ("nama", S),
            ("cadr", S),
            ("city", S),
            ("ccty", S),
            ("telp", S),
            ("ccur", S),
            ("prst", S),
            ("crlm", N),
            ("crdt", Date),
            ("timestamp", Ts),
            ("refcntd", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "ln_sales_orders",
        table: "tdsls400",
        what: "LN sales orders",
        key: &["company", "orno"],
        cursor: "timestamp",
        columns: &[
            ("company", I),
            ("orno", S),
            ("ofbp", S),
            ("odat", Date),
            ("sotp", S),
            ("hdst", S),
            ("ccur", S),
            ("timestamp", Ts),
            ("refcntd", I),
            ("deleted", B),
        ],
    },
    LakeTable {
        task: "ln_items",
        table: "tcibd001",
        what: "LN items",
        key: &["company", "item"],
        cursor: "timestamp",
        columns: &[
            ("company", I),
            ("item", S),
            ("dsca", S),
            ("kitm", S),
            ("citg", S),
            ("cuni", S),
            ("wght", N),
            ("timestamp", Ts),
            ("refcntd", I),
            ("deleted", B),
        ],
    },
];

/// The predefined task named `name`.
pub fn by_task(name: &str) -> Option<&'static LakeTable> {
    TABLES.iter().find(|t| t.task == name)
}

/// The predefined task reading the lake table `table`.
pub fn by_table(table: &str) -> Option<&'static LakeTable> {
    TABLES.iter().find(|t| t.table.eq_ignore_ascii_case(table))
}

/// A column's JSON type and format.
fn json_type(ty: Ty) -> (&'static str, Option<&'static str>) {
    match ty {
        S => ("string", None),
        I => ("integer", None),
        N => ("number", None),
        D8 => ("integer", Some("yyyyMMdd")),
        Date => ("string", Some("date")),
        Ts => ("string", Some("date-time")),
        B => ("boolean", None),
    }
}

/// The record schema: the key and the cursor required and never null.
fn schema(t: &LakeTable) -> Value {
    let columns = t.columns.iter().map(|&(name, ty)| {
        let (json_type, format) = json_type(ty);
        Column {
            name,
            json_type,
            description: None,
            format,
        }
    });
    let required: Vec<&str> = t.key.iter().copied().chain([t.cursor]).collect();
    let mut schema = record_schema(t.table, columns, &required);
    // `deleted` is the lake's deleted indicator: true on a record whose highest variation
    // is a deletion (shown only when a read asks for deleted records).
    schema[DELETED_FIELD_KEY] = "deleted".into();
    schema
}

/// The spec of a predefined task.
pub fn spec(t: &LakeTable) -> TaskSpec {
    TaskSpec {
        name: t.task.into(),
        description: format!(
            "{} ({}) by Compass SQL, incremental on infor.lastmodified() ({}).",
            t.what, t.table, t.cursor
        ),
        record_schema: schema(t),
        primary_key: t.key.iter().map(|k| (*k).to_string()).collect(),
        cursor_field: Some(t.cursor.into()),
        sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
        // Result pages of the default size; the job's submission and status polls are
        // paid once per read.
        requests_per_1000_records: Some(1000.0 / f64::from(crate::form::default_page_rows())),
    }
}

/// The predefined tasks.
pub fn predefined() -> Vec<TaskSpec> {
    TABLES.iter().map(spec).collect()
}
