//! The predefined LN replication tasks and their record types.
//!
//! Property names and types are those of the LN OData services (OData v4 JSON): text as
//! strings, amounts as numbers, `Edm.Date` as `YYYY-MM-DD`, `Edm.DateTimeOffset` as
//! ISO-8601 UTC. Every entity carries `LastModifiedDateTime` (the incremental cursor) and
//! `ChangeCounter`.

use ionport_plugin_sdk::form::record_schema;
use ionport_plugin_sdk::{PARTITIONABLE_KEY, SyncMode, TaskSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A business partner (`tcapi.comBusinessPartner/BusinessPartners`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct BusinessPartner {
    /// Business partner code.
    pub BusinessPartner: String,
    /// Name.
    pub Name: Option<String>,
    /// Address.
    pub Address: Option<String>,
    /// City.
    pub City: Option<String>,
    /// Country.
    pub Country: Option<String>,
    /// Telephone.
    pub Telephone: Option<String>,
    /// Currency.
    pub Currency: Option<String>,
    /// Status.
    pub Status: Option<String>,
    /// Credit limit.
    pub CreditLimit: Option<f64>,
    /// Creation date (`YYYY-MM-DD`).
    #[schemars(extend("format" = "date"))]
    pub CreationDate: Option<String>,
    /// Last modified (UTC, ISO-8601).
    #[schemars(extend("format" = "date-time"))]
    pub LastModifiedDateTime: String,
    /// Change counter.
    pub ChangeCounter: Option<i64>,
}

/// A sales order header (`tdapi.slsSalesOrder/Orders`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct SalesOrder {
    /// Sales order number.
    pub SalesOrder: String,
    /// Sold-to business partner.
    pub SoldToBusinessPartner: Option<String>,
    /// Order date (`YYYY-MM-DD`).
    #[schemars(extend("format" = "date"))]
    pub OrderDate: Option<String>,
    /// Sales order type.
    pub SalesOrderType: Option<String>,
    /// Status.
    pub Status: Option<String>,
    /// Currency.
    pub Currency: Option<String>,
    /// Last modified (UTC, ISO-8601).
    #[schemars(extend("format" = "date-time"))]
    pub LastModifiedDateTime: String,
    /// Change counter.
    pub ChangeCounter: Option<i64>,
}

/// An item (`tcapi.ibdItem/Items`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct Item {
    /// Item code.
    pub Item: String,
    /// Description.
    pub Description: Option<String>,
    /// Item type.
    pub ItemType: Option<String>,
    /// Item group.
    pub ItemGroup: Option<String>,
    /// Inventory unit.
    pub Unit: Option<String>,
    /// Weight.
    pub Weight: Option<f64>,
    /// Last modified (UTC, ISO-8601).
    #[schemars(extend("format" = "date-time"))]
    pub LastModifiedDateTime: String,
    /// Change counter.
    pub ChangeCounter: Option<i64>,
}

/// Where a predefined task reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LnTask {
    /// Task name.
    pub name: &'static str,
    /// OData service (`module.Service`).
    pub service: &'static str,
    /// Entity set.
    pub entity_set: &'static str,
    /// Key properties (the stable `$orderby`).
    pub key: &'static [&'static str],
    /// The last-modified property.
    pub cursor: &'static str,
    /// What it holds.
    pub what: &'static str,
}

/// The predefined tasks, where they read.
pub const LN_TASKS: [LnTask; 3] = [
    LnTask {
        name: "business_partners",
        service: "tcapi.comBusinessPartner",
        entity_set: "BusinessPartners",
        key: &["BusinessPartner"],
        cursor: "LastModifiedDateTime",
        what: "Business partners",
    },
    LnTask {
        name: "sales_orders",
        service: "tdapi.slsSalesOrder",
        entity_set: "Orders",
        key: &["SalesOrder"],
        cursor: "LastModifiedDateTime",
        what: "Sales order headers",
    },
    LnTask {
        name: "items",
        service: "tcapi.ibdItem",
        entity_set: "Items",
        key: &["Item"],
        cursor: "LastModifiedDateTime",
        what: "Items",
    },
];

/// The predefined task named `name`.
pub fn task(name: &str) -> Option<&'static LnTask> {
    LN_TASKS.iter().find(|t| t.name == name)
}

/// The predefined task reading `service/entity_set`.
pub fn task_for(service: &str, entity_set: &str) -> Option<&'static LnTask> {
    LN_TASKS.iter().find(|t| {
        t.service.eq_ignore_ascii_case(service) && t.entity_set.eq_ignore_ascii_case(entity_set)
    })
}

fn both() -> Vec<SyncMode> {
    vec![SyncMode::FullRefresh, SyncMode::Incremental]
}

/// The spec of a predefined task.
pub fn spec(t: &LnTask) -> TaskSpec {
    let mut schema = match t.name {
        "business_partners" => record_schema::<BusinessPartner>(),
        "sales_orders" => record_schema::<SalesOrder>(),
        _ => record_schema::<Item>(),
    };
    // A full read splits into partitions of `$skip` windows (the SDK's after-key stride).
    if let Some(root) = schema.as_object_mut() {
        root.insert(PARTITIONABLE_KEY.into(), true.into());
    }
    TaskSpec {
        name: t.name.into(),
        description: format!(
            "{} ({}/{}) by OData, incremental on {}.",
            t.what, t.service, t.entity_set, t.cursor
        ),
        record_schema: schema,
        primary_key: t.key.iter().map(|k| (*k).to_string()).collect(),
        cursor_field: Some(t.cursor.into()),
        sync_modes: both(),
        // One OData page per request, of the default page size.
        requests_per_1000_records: Some(1000.0 / f64::from(crate::stream::DEFAULT_PAGE_SIZE)),
    }
}

/// The predefined tasks.
pub fn predefined() -> Vec<TaskSpec> {
    LN_TASKS.iter().map(spec).collect()
}

/// The field that says which company a record was read from, when a connection lists
/// several (`companies`). Lower case, so no LN OData property (PascalCase) has its name.
pub const COMPANY_FIELD: &str = "company";

/// `spec` as read from several companies: a `company` field (an integer, always there)
/// first in its primary key, so equal LN keys in two companies are two records.
pub fn with_company(mut spec: TaskSpec) -> TaskSpec {
    if let Some(obj) = spec.record_schema.as_object_mut() {
        if let Some(props) = obj
            .entry("properties")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
        {
            props.insert(
                COMPANY_FIELD.into(),
                serde_json::json!({
                    "type": "integer",
                    "description": "The LN company the record was read from (X-Infor-LnCompany).",
                    "minimum": 0,
                    "maximum": 9999,
                }),
            );
        }
        if let Some(required) = obj
            .entry("required")
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
        {
            required.push(COMPANY_FIELD.into());
        }
    }
    spec.primary_key.insert(0, COMPANY_FIELD.into());
    spec.description = format!(
        "{} Read from each company of the connection.",
        spec.description
    );
    spec
}
