//! The predefined M3 replication tasks and their record types.
//!
//! Field names are M3's own (`CUNO`, `CUNM`, ...): they are what M3 users know. Text
//! values are trimmed, `N` fields are numbers and `D` fields ISO dates (`yyyy-MM-dd`).

use ionport_plugin_sdk::form::record_schema;
use ionport_plugin_sdk::{SyncMode, TaskSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A customer, from `CRS610MI/LstByNumber`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct Customer {
    /// Company.
    pub CONO: i64,
    /// Customer number.
    pub CUNO: String,
    /// Customer name.
    pub CUNM: Option<String>,
    /// Address line 1.
    pub CUA1: Option<String>,
    /// Town.
    pub TOWN: Option<String>,
    /// Country.
    pub CSCD: Option<String>,
    /// Phone.
    pub PHNO: Option<String>,
    /// Status (20 = definite).
    pub STAT: Option<String>,
    /// Last changed (date).
    pub LMDT: Option<String>,
}

/// An item, from `MMS200MI/LstByNumber`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct Item {
    /// Company.
    pub CONO: i64,
    /// Item number.
    pub ITNO: String,
    /// Name.
    pub ITDS: Option<String>,
    /// Description.
    pub FUDS: Option<String>,
    /// Item type.
    pub ITTY: Option<String>,
    /// Basic unit of measure.
    pub UNMS: Option<String>,
    /// Status.
    pub STAT: Option<String>,
    /// Last changed (date).
    pub LMDT: Option<String>,
}

/// A supplier, from `CRS620MI/LstSuppliers`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct Supplier {
    /// Company.
    pub CONO: i64,
    /// Supplier number.
    pub SUNO: String,
    /// Supplier name.
    pub SUNM: Option<String>,
    /// Country.
    pub CSCD: Option<String>,
    /// Currency.
    pub CUCD: Option<String>,
    /// Status.
    pub STAT: Option<String>,
    /// Last changed (date).
    pub LMDT: Option<String>,
}

/// A customer order line, from `OIS100MI/LstLine`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct OrderLine {
    /// Company.
    pub CONO: i64,
    /// Customer order number.
    pub ORNO: String,
    /// Line number.
    pub PONR: i64,
    /// Line suffix.
    pub POSX: i64,
    /// Item number.
    pub ITNO: Option<String>,
    /// Ordered quantity (basic unit).
    pub ORQT: Option<f64>,
    /// Net price.
    pub NEPR: Option<f64>,
    /// Line amount (order currency).
    pub LNAM: Option<f64>,
    /// Line status.
    pub ORST: Option<String>,
    /// Last changed (date).
    pub LMDT: Option<String>,
}

/// A row of the customer master table `OCUSMA`, from `EXPORTMI/Select`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct CustomerTableRow {
    /// Company.
    pub OKCONO: i64,
    /// Customer number.
    pub OKCUNO: String,
    /// Customer name.
    pub OKCUNM: Option<String>,
    /// Town.
    pub OKTOWN: Option<String>,
    /// Country.
    pub OKCSCD: Option<String>,
    /// Status.
    pub OKSTAT: Option<String>,
    /// Last changed (date).
    pub OKLMDT: Option<String>,
    /// Last changed (timestamp, milliseconds).
    pub OKLMTS: Option<i64>,
    /// Change number.
    pub OKCHNO: Option<i64>,
}

fn full() -> Vec<SyncMode> {
    vec![SyncMode::FullRefresh]
}

/// The predefined tasks.
pub fn predefined() -> Vec<TaskSpec> {
    vec![
        TaskSpec {
            name: "customers".into(),
            description:
                "Customers of the company (CRS610MI/LstByNumber), paged by customer number.".into(),
            record_schema: record_schema::<Customer>(),
            primary_key: vec!["CONO".into(), "CUNO".into()],
            cursor_field: None,
            sync_modes: full(),
        },
        TaskSpec {
            name: "items".into(),
            description: "Items of the company (MMS200MI/LstByNumber), paged by item number."
                .into(),
            record_schema: record_schema::<Item>(),
            primary_key: vec!["CONO".into(), "ITNO".into()],
            cursor_field: None,
            sync_modes: full(),
        },
        TaskSpec {
            name: "suppliers".into(),
            description:
                "Suppliers of the company (CRS620MI/LstSuppliers), paged by supplier number.".into(),
            record_schema: record_schema::<Supplier>(),
            primary_key: vec!["CONO".into(), "SUNO".into()],
            cursor_field: None,
            sync_modes: full(),
        },
        TaskSpec {
            name: "customer_order_lines".into(),
            description: "Customer order lines (OIS100MI/LstLine), order by order.".into(),
            record_schema: record_schema::<OrderLine>(),
            primary_key: vec!["CONO".into(), "ORNO".into(), "PONR".into(), "POSX".into()],
            cursor_field: None,
            sync_modes: full(),
        },
        TaskSpec {
            name: "customer_table".into(),
            description: "The customer master table OCUSMA by EXPORTMI/Select, paged by key; \
                          incremental on the change timestamp OKLMTS."
                .into(),
            record_schema: record_schema::<CustomerTableRow>(),
            primary_key: vec!["OKCONO".into(), "OKCUNO".into()],
            cursor_field: Some("OKLMTS".into()),
            sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
        },
    ]
}
