//! The Infor M3 connector.
//!
//! Reads M3 through MI programs over the ION API Gateway (`M3/m3api-rest`): list
//! transactions paged by key for customers, items, suppliers and order lines, and
//! `EXPORTMI/Select` for whole tables with incremental reads on the change stamps.
//!
//! What it is not: an HTTP client. Every call goes through the host's gateway, which holds
//! the credentials and the token; this crate never sees a secret.

mod form;
mod tasks;

use ionport_plugin_sdk::prelude::*;

/// The M3 connector.
#[derive(Debug, Default)]
pub struct M3Connector;

impl Connector for M3Connector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "infor-m3".into(),
            name: "Infor M3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Infor M3 (CloudSuite Industrial Enterprise) through MI programs on the \
                          ION API Gateway: customers, items, suppliers and customer order lines \
                          by list transactions, and whole tables by EXPORTMI with incremental reads \
                          on the change stamps."
                .into(),
        }
    }

    fn connection_form(&self) -> serde_json::Value {
        form::form_schema::<form::M3ConnectionForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        tasks::predefined()
    }
}

export_connector!(M3Connector);
