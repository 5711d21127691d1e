//! The predefined M3 replication tasks, and the EXPORTMI tables offered as further
//! streams (`table:NAME`).

use ionport_plugin_sdk::schema::sync_modes;
use ionport_plugin_sdk::stream::AnyKeyed;
use ionport_plugin_sdk::{ConnectorError, ReadRequest, TaskSpec};

use crate::columns::{self, Col};
use crate::export::{ExportTask, Table, TableStream};
use crate::list::{ListStream, MiList};
use crate::orders::OrderLinesStream;
use crate::settings::M3Settings;

/// How a task reads.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// An MI list transaction paged by one key field.
    List(MiList),
    /// Order lines, order by order (`OIS100MI/LstLine` for each order of `OOHEAD`).
    OrderLines,
    /// A table through `EXPORTMI/Select`.
    Export(Table),
}

/// Requests per 1,000 records of a key-paged listing at the default page size: the
/// list tasks, the EXPORTMI tasks and the `table:NAME` streams.
pub const PAGED_REQUESTS_PER_1000: f64 = 1000.0 / crate::DEFAULT_PAGE_SIZE as f64;

/// The per-order path: one `OIS100MI/LstLine` per order, plus the `OOHEAD` pages
/// listing the orders, rounded up, for 3 lines per order (the demo data's; a tenant
/// with more lines per order pays proportionally less).
const PER_ORDER_REQUESTS_PER_1000: f64 = 334.0;

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
        source: Source::List(MiList {
            program: "CRS610MI",
            transaction: "LstByNumber",
            key: "CUNO",
        }),
        cols: columns::CUSTOMER,
        pk: &["CONO", "CUNO"],
        cursor: None,
    },
    M3Task {
        name: "items",
        description: "Items of the company (MMS200MI/LstByNumber), paged by item number.",
        source: Source::List(MiList {
            program: "MMS200MI",
            transaction: "LstByNumber",
            key: "ITNO",
        }),
        cols: columns::ITEM,
        pk: &["CONO", "ITNO"],
        cursor: None,
    },
    M3Task {
        name: "suppliers",
        description: "Suppliers of the company (CRS620MI/LstSuppliers), paged by supplier number.",
        source: Source::List(MiList {
            program: "CRS620MI",
            transaction: "LstSuppliers",
            key: "SUNO",
        }),
        cols: columns::SUPPLIER,
        pk: &["CONO", "SUNO"],
        cursor: None,
    },
    M3Task {
        name: "customer_order_lines",
        description: "Customer order lines of the company: the order-line table OOLINE by EXPORTMI/Select, paged by key, with OIS100MI/LstLine's field names; incremental on the change timestamp LMTS (OBLMTS).",
        source: Source::Export(Table {
            table: "OOLINE",
            prefix: "OB",
            by_division: true,
        }),
        cols: columns::ORDER_LINE,
        pk: &["CONO", "ORNO", "PONR", "POSX"],
        cursor: Some("LMTS"),
    },
    M3Task {
        name: "customer_order_lines_by_order",
        description: "Customer order lines through OIS100MI/LstLine, one request per order of the company (orders from OOHEAD by EXPORTMI): the same records as customer_order_lines at a request per order; for tenants that do not grant EXPORTMI on OOLINE.",
        source: Source::OrderLines,
        cols: columns::ORDER_LINE,
        pk: &["CONO", "ORNO", "PONR", "POSX"],
        cursor: None,
    },
    M3Task {
        name: "customer_table",
        description: "The customer master table OCUSMA by EXPORTMI/Select, paged by key; incremental on the change timestamp OKLMTS.",
        source: Source::Export(Table {
            table: "OCUSMA",
            prefix: "",
            by_division: false,
        }),
        cols: columns::OCUSMA,
        pk: &["OKCONO", "OKCUNO"],
        cursor: Some("OKLMTS"),
    },
];

/// The stream a predefined task or a `table:NAME` names.
pub fn stream(name: &str) -> Option<Box<dyn AnyKeyed<M3Settings>>> {
    let Some(task) = TASKS.iter().find(|t| t.name == name) else {
        return table_stream(name).map(|t| Box::new(TableStream(t)) as _);
    };
    Some(match task.source {
        Source::List(list) => Box::new(ListStream(task, list)),
        Source::OrderLines => Box::new(OrderLinesStream(task)),
        Source::Export(table) => Box::new(ExportTask(task, table)),
    })
}

impl M3Task {
    /// The columns a read asks for: its selection, with the key, the cursor and `paging`
    /// (a listing's paging key) read whatever is selected.
    pub fn columns(
        &self,
        req: &ReadRequest,
        paging: Option<&'static str>,
    ) -> Result<Vec<Col>, ConnectorError> {
        let keep: Vec<&str> = self
            .pk
            .iter()
            .copied()
            .chain(self.cursor)
            .chain(paging)
            .collect();
        columns::selected(req, self.cols, &keep)
    }

    /// The ABI task spec.
    pub fn spec(&self) -> TaskSpec {
        let requests_per_1000 = match self.source {
            Source::OrderLines => PER_ORDER_REQUESTS_PER_1000,
            Source::List(_) | Source::Export(_) => PAGED_REQUESTS_PER_1000,
        };
        TaskSpec {
            name: self.name.into(),
            description: self.description.into(),
            record_schema: columns::schema(self.name, self.cols, self.pk),
            primary_key: self.pk.iter().map(|k| (*k).to_string()).collect(),
            cursor_field: self.cursor.map(Into::into),
            sync_modes: sync_modes(self.cursor),
            requests_per_1000_records: Some(requests_per_1000),
        }
    }

    /// The MI transactions it reads, for `discover` to say which the tenant lacks.
    pub fn needs(&self) -> Vec<(&'static str, &'static str)> {
        match self.source {
            Source::List(l) => vec![(l.program, l.transaction)],
            Source::OrderLines => vec![("OIS100MI", "LstLine"), ("EXPORTMI", "Select")],
            Source::Export(_) => vec![("EXPORTMI", "Select")],
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
