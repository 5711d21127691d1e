//! The Infor Data Lake connector.
//!
//! Reads tables replicated to Infor Data Lake through Compass SQL jobs (submit, poll,
//! page through NDJSON results) and discovers objects and their schemas in the Data
//! Catalog; incremental by `infor.lastmodified()`.
//!
//! What it is not: an HTTP client. Every call goes through the host's gateway; this crate
//! never sees a secret.

mod form;
mod tasks;

use ionport_plugin_sdk::prelude::*;

/// The Data Lake connector.
#[derive(Debug, Default)]
pub struct DataLakeConnector;

impl Connector for DataLakeConnector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "infor-datalake".into(),
            name: "Infor Data Lake".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Infor Data Lake (Infor Data Fabric) through Compass SQL jobs and the Data \
                          Catalog on the ION API Gateway: the M3 and LN tables replicated to the \
                          lake, and any catalog object, incremental on infor.lastmodified()."
                    .into(),
        }
    }

    fn connection_form(&self) -> serde_json::Value {
        ionport_plugin_sdk::form::form_schema::<form::DataLakeConnectionForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        tasks::predefined()
    }
}

export_connector!(DataLakeConnector);
