//! Tables: how each system names and types an entity's canonical fields.
//!
//! - [`Surface::M3`]: M3 tables (`OCUSMA`, `MITMAS`, `CIDMAS`, `OOHEAD`, `OOLINE`), columns
//!   with the table's two-letter prefix; MI transactions use the names without the prefix.
//!   As Data Lake tables they carry a `deleted` column too.
//! - [`Surface::LnLake`]: LN tables as the Data Lake names them (`tccom100`, `tdsls400`,
//!   `tcibd001`).
//! - [`Surface::LnOData`]: LN OData entity sets (`BusinessPartners`, `Orders`, `Items`).

use super::Entity;
use super::fields as f;

/// A column type. M3 letters: `A` text, `N` numeric (with decimals), `D` date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    A,
    /// Number with this many decimals.
    N(u8),
    /// Date.
    D,
    /// Timestamp (ISO-8601 on LN and in the lake for LN tables).
    Ts,
    /// Boolean.
    Bool,
}

impl Kind {
    /// The M3 type letter.
    #[must_use]
    pub fn m3_letter(self) -> &'static str {
        match self {
            Kind::A | Kind::Bool | Kind::Ts => "A",
            Kind::N(_) => "N",
            Kind::D => "D",
        }
    }

    /// A JSON Schema fragment for this type.
    #[must_use]
    pub fn json_schema(self, len: u16, surface: Surface) -> serde_json::Value {
        use serde_json::json;
        match self {
            Kind::A => json!({"type": "string", "maxLength": len}),
            Kind::N(0) => json!({"type": "integer"}),
            Kind::N(d) => json!({"type": "number", "multipleOf": 10f64.powi(-i32::from(d))}),
            Kind::D if surface == Surface::M3 => json!({"type": "integer", "format": "yyyyMMdd"}),
            Kind::D => json!({"type": "string", "format": "date"}),
            Kind::Ts => json!({"type": "string", "format": "date-time"}),
            Kind::Bool => json!({"type": "boolean"}),
        }
    }
}

/// Which system's naming a table follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// M3 tables and MI.
    M3,
    /// LN tables in the Data Lake.
    LnLake,
    /// LN OData entity sets.
    LnOData,
}

/// One column.
#[derive(Debug)]
pub struct ColDef {
    /// Column name.
    pub name: &'static str,
    /// Index of the canonical field (see [`Entity::fields`]).
    pub field: usize,
    /// Type.
    pub kind: Kind,
    /// Length (M3 field length; informative elsewhere).
    pub len: u16,
    /// Description.
    pub desc: &'static str,
}

/// A table or entity set.
#[derive(Debug)]
pub struct TableDef {
    /// Name.
    pub name: &'static str,
    /// Description.
    pub desc: &'static str,
    /// Naming system.
    pub surface: Surface,
    /// The entity behind it.
    pub entity: Entity,
    /// Columns.
    pub columns: &'static [ColDef],
    /// Primary key columns (indices into `columns`).
    pub key: &'static [usize],
    /// The column that carries the last-modified stamp (index into `columns`).
    pub last_modified: usize,
}

impl TableDef {
    /// A column by name (exact, then case-insensitive).
    #[must_use]
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            })
    }

    /// The MI field name of a column (M3 column name without its two-letter prefix).
    #[must_use]
    pub fn mi_name(&self, col: usize) -> &'static str {
        let n = self.columns[col].name;
        if self.surface == Surface::M3 && n.len() > 2 && n.is_char_boundary(2) {
            &n[2..]
        } else {
            n
        }
    }

    /// The JSON Schema of a row, as the Data Catalog gives it.
    #[must_use]
    pub fn json_schema(&self) -> serde_json::Value {
        let mut props = serde_json::Map::new();
        for (i, c) in self.columns.iter().enumerate() {
            let mut p = c.kind.json_schema(c.len, self.surface);
            if let Some(o) = p.as_object_mut() {
                o.insert("description".into(), c.desc.into());
                o.insert("x-position".into(), (i + 1).into());
            }
            props.insert(c.name.to_owned(), p);
        }
        serde_json::json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": self.name,
            "description": self.desc,
            "type": "object",
            "properties": props,
            "x-primaryKey": self.key.iter().map(|k| self.columns[*k].name).collect::<Vec<_>>(),
            "x-lastModified": self.columns[self.last_modified].name,
            "x-deleted": if self.surface == Surface::LnOData { serde_json::Value::Null } else { "deleted".into() },
        })
    }
}

const fn c(name: &'static str, field: usize, kind: Kind, len: u16, desc: &'static str) -> ColDef {
    ColDef {
        name,
        field,
        kind,
        len,
        desc,
    }
}

use Kind::{A, Bool, D, N, Ts};

// Canonical field indices.
const CU: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const _: () = assert!(f::CUSTOMER.len() == 16 && f::ITEM.len() == 15 && f::SUPPLIER.len() == 13);

/// `OCUSMA`: M3 customers.
pub static OCUSMA: TableDef = TableDef {
    name: "OCUSMA",
    desc: "Customer master (M3)",
    surface: Surface::M3,
    entity: Entity::Customer,
    columns: &[
        c("OKCONO", CU[0], N(0), 3, "Company"),
        c("OKCUNO", CU[1], A, 10, "Customer"),
        c("OKCUNM", CU[2], A, 36, "Customer name"),
        c("OKCUA1", CU[3], A, 36, "Customer address 1"),
        c("OKTOWN", CU[4], A, 20, "City"),
        c("OKCSCD", CU[5], A, 3, "Country"),
        c("OKPHNO", CU[6], A, 16, "Telephone number 1"),
        c("OKCUCD", CU[7], A, 3, "Currency"),
        c("OKSTAT", CU[8], A, 2, "Status"),
        c("OKCUTP", CU[9], N(0), 1, "Customer type"),
        c("OKCRLM", CU[10], N(2), 15, "Credit limit 1"),
        c("OKRGDT", CU[11], D, 8, "Entry date"),
        c("OKLMDT", CU[12], D, 8, "Change date"),
        c("OKLMTS", CU[13], N(0), 18, "Timestamp"),
        c("OKCHNO", CU[14], N(0), 3, "Change number"),
        c("deleted", CU[15], Bool, 1, "Deleted in M3"),
    ],
    key: &[0, 1],
    last_modified: 13,
};

/// `MITMAS`: M3 items.
pub static MITMAS: TableDef = TableDef {
    name: "MITMAS",
    desc: "Item master (M3)",
    surface: Surface::M3,
    entity: Entity::Item,
    columns: &[
        c("MMCONO", 0, N(0), 3, "Company"),
        c("MMITNO", 1, A, 15, "Item number"),
        c("MMITDS", 2, A, 30, "Name"),
        c("MMFUDS", 3, A, 60, "Description 2"),
        c("MMITTY", 4, A, 3, "Item type"),
        c("MMITGR", 5, A, 5, "Item group"),
        c("MMUNMS", 6, A, 3, "Basic unit of measure"),
        c("MMSTAT", 7, A, 2, "Status"),
        c("MMNEWE", 8, N(3), 11, "Net weight"),
        c("MMSAPR", 9, N(2), 17, "Sales price"),
        c("MMRGDT", 10, D, 8, "Entry date"),
        c("MMLMDT", 11, D, 8, "Change date"),
        c("MMLMTS", 12, N(0), 18, "Timestamp"),
        c("MMCHNO", 13, N(0), 3, "Change number"),
        c("deleted", 14, Bool, 1, "Deleted in M3"),
    ],
    key: &[0, 1],
    last_modified: 12,
};

/// `CIDMAS`: M3 suppliers.
pub static CIDMAS: TableDef = TableDef {
    name: "CIDMAS",
    desc: "Supplier master (M3)",
    surface: Surface::M3,
    entity: Entity::Supplier,
    columns: &[
        c("IDCONO", 0, N(0), 3, "Company"),
        c("IDSUNO", 1, A, 10, "Supplier"),
        c("IDSUNM", 2, A, 36, "Supplier name"),
        c("IDTOWN", 3, A, 20, "City"),
        c("IDCSCD", 4, A, 3, "Country"),
        c("IDCUCD", 5, A, 3, "Currency"),
        c("IDPHNO", 6, A, 16, "Telephone number 1"),
        c("IDSTAT", 7, A, 2, "Status"),
        c("IDRGDT", 8, D, 8, "Entry date"),
        c("IDLMDT", 9, D, 8, "Change date"),
        c("IDLMTS", 10, N(0), 18, "Timestamp"),
        c("IDCHNO", 11, N(0), 3, "Change number"),
        c("deleted", 12, Bool, 1, "Deleted in M3"),
    ],
    key: &[0, 1],
    last_modified: 10,
};

/// `OOHEAD`: M3 customer order heads.
pub static OOHEAD: TableDef = TableDef {
    name: "OOHEAD",
    desc: "Customer order head (M3)",
    surface: Surface::M3,
    entity: Entity::OrderHead,
    columns: &[
        c("OACONO", 0, N(0), 3, "Company"),
        c("OADIVI", 1, A, 3, "Division"),
        c("OAORNO", 2, A, 10, "Customer order number"),
        c("OACUNO", 3, A, 10, "Customer"),
        c("OAORDT", 4, D, 8, "Order date"),
        c("OAORTP", 5, A, 3, "Customer order type"),
        c("OAORST", 6, A, 2, "Highest status"),
        c("OACUCD", 7, A, 3, "Currency"),
        c("OALMDT", 8, D, 8, "Change date"),
        c("OALMTS", 9, N(0), 18, "Timestamp"),
        c("OACHNO", 10, N(0), 3, "Change number"),
        c("deleted", 11, Bool, 1, "Deleted in M3"),
    ],
    key: &[0, 2],
    last_modified: 9,
};

/// `OOLINE`: M3 customer order lines.
pub static OOLINE: TableDef = TableDef {
    name: "OOLINE",
    desc: "Customer order line (M3)",
    surface: Surface::M3,
    entity: Entity::OrderLine,
    columns: &[
        c("OBCONO", 0, N(0), 3, "Company"),
        c("OBDIVI", 1, A, 3, "Division"),
        c("OBORNO", 2, A, 10, "Customer order number"),
        c("OBPONR", 3, N(0), 5, "Order line number"),
        c("OBPOSX", 4, N(0), 2, "Line suffix"),
        c("OBITNO", 5, A, 15, "Item number"),
        c("OBCUNO", 6, A, 10, "Customer"),
        c("OBORQT", 7, N(2), 15, "Ordered quantity"),
        c("OBSAPR", 8, N(2), 17, "Sales price"),
        c("OBLNAM", 9, N(2), 17, "Line amount"),
        c("OBORST", 10, A, 2, "Status"),
        c("OBDWDT", 11, D, 8, "Requested delivery date"),
        c("OBLMDT", 12, D, 8, "Change date"),
        c("OBLMTS", 13, N(0), 18, "Timestamp"),
        c("OBCHNO", 14, N(0), 3, "Change number"),
        c("deleted", 15, Bool, 1, "Deleted in M3"),
    ],
    key: &[0, 2, 3, 4],
    last_modified: 13,
};

/// `tccom100`: LN business partners in the Data Lake.
pub static TCCOM100: TableDef = TableDef {
    name: "tccom100",
    desc: "Business partners (LN)",
    surface: Surface::LnLake,
    entity: Entity::Customer,
    columns: &[
        c("company", 0, N(0), 4, "Company"),
        c("bpid", 1, A, 10, "Business partner"),
        c("nama", 2, A, 35, "Name"),
        c("cadr", 3, A, 36, "Address"),
        c("city", 4, A, 20, "City"),
        c("ccty", 5, A, 3, "Country"),
        c("telp", 6, A, 16, "Telephone"),
        c("ccur", 7, A, 3, "Currency"),
        c("prst", 8, A, 2, "Status"),
        c("crlm", 10, N(2), 15, "Credit limit"),
        c("crdt", 11, D, 8, "Creation date"),
        c("timestamp", 13, Ts, 24, "Last modified"),
        c("refcntd", 14, N(0), 9, "Change counter"),
        c("deleted", 15, Bool, 1, "Deleted in LN"),
    ],
    key: &[0, 1],
    last_modified: 11,
};

/// `tdsls400`: LN sales orders in the Data Lake.
pub static TDSLS400: TableDef = TableDef {
    name: "tdsls400",
    desc: "Sales orders (LN)",
    surface: Surface::LnLake,
    entity: Entity::OrderHead,
    columns: &[
        c("company", 0, N(0), 4, "Company"),
        c("orno", 2, A, 10, "Sales order"),
        c("ofbp", 3, A, 10, "Sold-to business partner"),
        c("odat", 4, D, 8, "Order date"),
        c("sotp", 5, A, 3, "Sales order type"),
        c("hdst", 6, A, 2, "Status"),
        c("ccur", 7, A, 3, "Currency"),
        c("timestamp", 9, Ts, 24, "Last modified"),
        c("refcntd", 10, N(0), 9, "Change counter"),
        c("deleted", 11, Bool, 1, "Deleted in LN"),
    ],
    key: &[0, 1],
    last_modified: 7,
};

/// `tcibd001`: LN items in the Data Lake.
pub static TCIBD001: TableDef = TableDef {
    name: "tcibd001",
    desc: "Items (LN)",
    surface: Surface::LnLake,
    entity: Entity::Item,
    columns: &[
        c("company", 0, N(0), 4, "Company"),
        c("item", 1, A, 15, "Item"),
        c("dsca", 2, A, 30, "Description"),
        c("kitm", 4, A, 3, "Item type"),
        c("citg", 5, A, 5, "Item group"),
        c("cuni", 6, A, 3, "Inventory unit"),
        c("wght", 8, N(3), 11, "Weight"),
        c("timestamp", 12, Ts, 24, "Last modified"),
        c("refcntd", 13, N(0), 9, "Change counter"),
        c("deleted", 14, Bool, 1, "Deleted in LN"),
    ],
    key: &[0, 1],
    last_modified: 7,
};

/// LN OData `tcapi.comBusinessPartner/BusinessPartners`.
pub static LN_BUSINESS_PARTNERS: TableDef = TableDef {
    name: "BusinessPartners",
    desc: "Business partners (LN OData)",
    surface: Surface::LnOData,
    entity: Entity::Customer,
    columns: &[
        c("BusinessPartner", 1, A, 10, "Business partner"),
        c("Name", 2, A, 35, "Name"),
        c("Address", 3, A, 36, "Address"),
        c("City", 4, A, 20, "City"),
        c("Country", 5, A, 3, "Country"),
        c("Telephone", 6, A, 16, "Telephone"),
        c("Currency", 7, A, 3, "Currency"),
        c("Status", 8, A, 2, "Status"),
        c("CreditLimit", 10, N(2), 15, "Credit limit"),
        c("CreationDate", 11, D, 8, "Creation date"),
        c("LastModifiedDateTime", 13, Ts, 24, "Last modified"),
        c("ChangeCounter", 14, N(0), 9, "Change counter"),
    ],
    key: &[0],
    last_modified: 10,
};

/// LN OData `tdapi.slsSalesOrder/Orders`.
pub static LN_ORDERS: TableDef = TableDef {
    name: "Orders",
    desc: "Sales orders (LN OData)",
    surface: Surface::LnOData,
    entity: Entity::OrderHead,
    columns: &[
        c("SalesOrder", 2, A, 10, "Sales order"),
        c(
            "SoldToBusinessPartner",
            3,
            A,
            10,
            "Sold-to business partner",
        ),
        c("OrderDate", 4, D, 8, "Order date"),
        c("SalesOrderType", 5, A, 3, "Sales order type"),
        c("Status", 6, A, 2, "Status"),
        c("Currency", 7, A, 3, "Currency"),
        c("LastModifiedDateTime", 9, Ts, 24, "Last modified"),
        c("ChangeCounter", 10, N(0), 9, "Change counter"),
    ],
    key: &[0],
    last_modified: 6,
};

/// LN OData `tcapi.ibdItem/Items`.
pub static LN_ITEMS: TableDef = TableDef {
    name: "Items",
    desc: "Items (LN OData)",
    surface: Surface::LnOData,
    entity: Entity::Item,
    columns: &[
        c("Item", 1, A, 15, "Item"),
        c("Description", 2, A, 30, "Description"),
        c("ItemType", 4, A, 3, "Item type"),
        c("ItemGroup", 5, A, 5, "Item group"),
        c("Unit", 6, A, 3, "Inventory unit"),
        c("Weight", 8, N(3), 11, "Weight"),
        c("LastModifiedDateTime", 12, Ts, 24, "Last modified"),
        c("ChangeCounter", 13, N(0), 9, "Change counter"),
    ],
    key: &[0],
    last_modified: 6,
};

/// The Data Lake tables: M3's and LN's.
pub static LAKE_TABLES: [&TableDef; 8] = [
    &OCUSMA, &MITMAS, &CIDMAS, &OOHEAD, &OOLINE, &TCCOM100, &TDSLS400, &TCIBD001,
];

/// The LN OData services: `(service, entity set table)`.
pub static LN_SERVICES: [(&str, &TableDef); 3] = [
    ("tcapi.comBusinessPartner", &LN_BUSINESS_PARTNERS),
    ("tdapi.slsSalesOrder", &LN_ORDERS),
    ("tcapi.ibdItem", &LN_ITEMS),
];

/// A Data Lake table by name (case-insensitive).
#[must_use]
pub fn lake_table(name: &str) -> Option<&'static TableDef> {
    LAKE_TABLES
        .iter()
        .copied()
        .find(|t| t.name.eq_ignore_ascii_case(name))
}

/// The entity a table name (lake table, LN entity set or entity name) stands for.
#[must_use]
pub fn entity_of(name: &str) -> Option<Entity> {
    if let Some(t) = lake_table(name) {
        return Some(t.entity);
    }
    if let Some((_, t)) = LN_SERVICES
        .iter()
        .find(|(_, t)| t.name.eq_ignore_ascii_case(name))
    {
        return Some(t.entity);
    }
    match name.to_ascii_lowercase().as_str() {
        "customer" | "customers" => Some(Entity::Customer),
        "item" | "items" => Some(Entity::Item),
        "supplier" | "suppliers" => Some(Entity::Supplier),
        "order_head" | "orderhead" | "orders" => Some(Entity::OrderHead),
        "order_line" | "orderline" | "order_lines" => Some(Entity::OrderLine),
        _ => None,
    }
}
