//! The Infor LN connector.
//!
//! Reads LN through its OData v4 services over the ION API Gateway
//! (`LN/lnapi/odata/{module}.{Service}/{EntitySet}`): business partners, sales orders and
//! items, paged by `@odata.nextLink` (or `$top`/`$skip` over a stable `$orderby`), for the
//! company in `X-Infor-LnCompany`, incremental by `$filter` on the last-modified time.
//!
//! What it is not: an HTTP client. Every call goes through the host's gateway; this crate
//! never sees a secret.

mod form;
mod tasks;

use ionport_plugin_sdk::prelude::*;

/// The LN connector.
#[derive(Debug, Default)]
pub struct LnConnector;

impl Connector for LnConnector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "infor-ln".into(),
            name: "Infor LN".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Infor LN through its OData v4 services on the ION API Gateway: business \
                          partners, sales orders and items of one LN company, incremental on the \
                          last-modified time."
                .into(),
        }
    }

    fn connection_form(&self) -> serde_json::Value {
        ionport_plugin_sdk::form::form_schema::<form::LnConnectionForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        tasks::predefined()
    }
}

export_connector!(LnConnector);
