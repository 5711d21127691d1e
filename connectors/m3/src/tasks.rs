//! The predefined M3 replication tasks, and the EXPORTMI tables offered as further
//! streams (`table:NAME`).

use ionport_plugin_sdk::{SyncMode, TaskSpec};

use crate::columns::{self, Col};

/// How a task reads.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// An MI list transaction paged by one key field.
    List {
        /// Program.
        program: &'static str,
        /// Transaction.
        transaction: &'static str,
        /// The key input/output field the listing is paged by.
        key: &'static str,
    },
    /// Order lines, order by order (`OIS100MI/LstLine` for each order of `OOHEAD`).
    OrderLines,
    /// A table through `EXPORTMI/Select`.
    Export {
        /// The table.
        table: &'static str,
    },
}

/// A predefined task.
#[derive(Debug, Clone, Copy)]
pub struct M3Task {
    /// Task name.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// How it reads.
    pub source: Source,
    /// Output columns.
    pub cols: &'static [Col],
    /// Primary key.
    pub pk: &'static [&'static str],
    /// Cursor field (incremental tasks).
    pub cursor: Option<&'static str>,
}

/// The predefined tasks.
pub const TASKS: &[M3Task] = &[
    M3Task {
        name: "customers",
        description: "Customers of the company (CRS610MI/LstByNumber), paged by customer number.",
        source: Source::List {
            program: "CRS610MI",
            transaction: "LstByNumber",
            key: "CUNO",
        },
        cols: columns::CUSTOMER,
        pk: &["CONO", "CUNO"],
        cursor: None,
    },
    M3Task {
        name: "items",
        description: "Items of the company (MMS200MI/LstByNumber), paged by item number.",
        source: Source::List {
            program: "MMS200MI",
            transaction: "LstByNumber",
            key: "ITNO",
        },
        cols: columns::ITEM,
        pk: &["CONO", "ITNO"],
        cursor: None,
    },
    M3Task {
        name: "suppliers",
        description: "Suppliers of the company (CRS620MI/LstSuppliers), paged by supplier number.",
        source: Source::List {
            program: "CRS620MI",
            transaction: "LstSuppliers",
            key: "SUNO",
        },
        cols: columns::SUPPLIER,
        pk: &["CONO", "SUNO"],
        cursor: None,
    },
    M3Task {
        name: "customer_order_lines",
        description: "Customer order lines (OIS100MI/LstLine) of every order of the company (orders from OOHEAD by EXPORTMI).",
        source: Source::OrderLines,
        cols: columns::ORDER_LINE,
        pk: &["CONO", "ORNO", "PONR", "POSX"],
        cursor: None,
    },
    M3Task {
        name: "customer_table",
        description: "The customer master table OCUSMA by EXPORTMI/Select, paged by key; incremental on the change timestamp OKLMTS.",
        source: Source::Export { table: "OCUSMA" },
        cols: columns::OCUSMA,
        pk: &["OKCONO", "OKCUNO"],
        cursor: Some("OKLMTS"),
    },
];

/// The task named `name`.
pub fn find(name: &str) -> Option<&'static M3Task> {
    TASKS.iter().find(|t| t.name == name)
}

impl M3Task {
    /// The ABI task spec.
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            name: self.name.into(),
            description: self.description.into(),
            record_schema: columns::schema(self.name, self.cols, self.pk),
            primary_key: self.pk.iter().map(|k| (*k).to_string()).collect(),
            cursor_field: self.cursor.map(Into::into),
            sync_modes: if self.cursor.is_some() {
                vec![SyncMode::FullRefresh, SyncMode::Incremental]
            } else {
                vec![SyncMode::FullRefresh]
            },
        }
    }
}

/// Standard M3 tables offered through EXPORTMI when the tenant has them: name, key
/// columns, description. (M3 has no MI transaction that lists tables.)
pub const STANDARD_TABLES: &[(&str, &[&str], &str)] = &[
    ("OCUSMA", &["OKCONO", "OKCUNO"], "Customer master"),
    ("MITMAS", &["MMCONO", "MMITNO"], "Item master"),
    ("CIDMAS", &["IDCONO", "IDSUNO"], "Supplier master"),
    ("OOHEAD", &["OACONO", "OAORNO"], "Customer order head"),
    (
        "OOLINE",
        &["OBCONO", "OBORNO", "OBPONR", "OBPOSX"],
        "Customer order line",
    ),
    (
        "MITBAL",
        &["MBCONO", "MBWHLO", "MBITNO"],
        "Item warehouse balance",
    ),
    (
        "FGLEDG",
        &["EGCONO", "EGDIVI", "EGYEA4", "EGJRNO", "EGJSNO"],
        "General ledger",
    ),
];

/// The prefix of a dynamic table stream.
pub const TABLE_STREAM: &str = "table:";

/// The standard table a `table:NAME` stream names.
pub fn table_stream(
    name: &str,
) -> Option<&'static (&'static str, &'static [&'static str], &'static str)> {
    let t = name.strip_prefix(TABLE_STREAM)?;
    STANDARD_TABLES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(t))
}
