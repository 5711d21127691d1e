//! The predefined LN replication tasks and their record types.
//!
//! Property names are those of the LN OData services.

use ionport_plugin_sdk::form::record_schema;
use ionport_plugin_sdk::{SyncMode, TaskSpec};
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
    /// Status.
    pub BusinessPartnerStatus: Option<String>,
    /// Country.
    pub Country: Option<String>,
    /// City.
    pub City: Option<String>,
    /// Currency.
    pub Currency: Option<String>,
    /// Last modified (UTC, ISO-8601).
    pub LastModifiedDateTime: String,
}

/// A sales order header (`tdapi.slsSalesOrder/Orders`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[allow(non_snake_case)]
pub struct SalesOrder {
    /// Sales order number.
    pub SalesOrder: String,
    /// Sold-to business partner.
    pub SoldToBusinessPartner: Option<String>,
    /// Order date (UTC, ISO-8601).
    pub OrderDate: Option<String>,
    /// Currency.
    pub Currency: Option<String>,
    /// Order amount.
    pub OrderAmount: Option<f64>,
    /// Status.
    pub Status: Option<String>,
    /// Last modified (UTC, ISO-8601).
    pub LastModifiedDateTime: String,
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
    /// Inventory unit.
    pub InventoryUnit: Option<String>,
    /// Item group.
    pub ItemGroup: Option<String>,
    /// Last modified (UTC, ISO-8601).
    pub LastModifiedDateTime: String,
}

fn both() -> Vec<SyncMode> {
    vec![SyncMode::FullRefresh, SyncMode::Incremental]
}

/// The predefined tasks.
pub fn predefined() -> Vec<TaskSpec> {
    vec![
        TaskSpec {
            name: "business_partners".into(),
            description: "Business partners (tcapi.comBusinessPartner/BusinessPartners).".into(),
            record_schema: record_schema::<BusinessPartner>(),
            primary_key: vec!["BusinessPartner".into()],
            cursor_field: Some("LastModifiedDateTime".into()),
            sync_modes: both(),
        },
        TaskSpec {
            name: "sales_orders".into(),
            description: "Sales order headers (tdapi.slsSalesOrder/Orders).".into(),
            record_schema: record_schema::<SalesOrder>(),
            primary_key: vec!["SalesOrder".into()],
            cursor_field: Some("LastModifiedDateTime".into()),
            sync_modes: both(),
        },
        TaskSpec {
            name: "items".into(),
            description: "Items (tcapi.ibdItem/Items).".into(),
            record_schema: record_schema::<Item>(),
            primary_key: vec!["Item".into()],
            cursor_field: Some("LastModifiedDateTime".into()),
            sync_modes: both(),
        },
    ]
}
