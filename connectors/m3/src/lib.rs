//! The Infor M3 connector.
//!
//! Reads M3 through MI programs over the ION API Gateway (`M3/m3api-rest`, v1 or v2
//! shape): list transactions paged by key for customers, items and suppliers, order
//! lines per order (`customer_order_lines_by_order`), and `EXPORTMI/Select` for whole
//! tables — the order lines' `OOLINE` among them — with incremental reads on the change
//! timestamps. `discover` lists the programs and transactions (`MRS001MI`) and offers
//! every standard table EXPORTMI can read as a stream `table:NAME`.
//!
//! Every stream is declared on the SDK's stream API as a keyed stream
//! (`ionport_plugin_sdk::stream::KeyedStream`): the SDK owns the loop, the pages in
//! flight, the state and its checkpoints; this crate says how to ask M3 for a page from a
//! key and how a row is written.
//!
//! What it is not: an HTTP client. Every call goes through the host's gateway, which holds
//! the credentials and the token; this crate never sees a secret.

mod check;
mod columns;
mod discover;
mod export;
mod list;
mod orders;
mod settings;
mod tasks;

use ionport_plugin_sdk::prelude::*;

use crate::settings::M3Settings;

/// Records per page unless the pipeline sets a page size.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

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
                          ION API Gateway: customers, items and suppliers by list transactions, \
                          and whole tables by EXPORTMI (customer order lines among them; per order \
                          by OIS100MI as an option) with incremental reads on the change stamps."
                .into(),
        }
    }

    fn connection_form(&self) -> serde_json::Value {
        form::form_schema::<settings::M3ConnectionForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        tasks::TASKS.iter().map(tasks::M3Task::spec).collect()
    }

    fn accepts_stream(&self, name: &str) -> bool {
        tasks::table_stream(name).is_some()
    }

    fn stream_names(&self) -> Option<StreamNames> {
        Some(StreamNames {
            pattern: "^table:[A-Za-z][A-Za-z0-9]{2,9}$".into(),
            form: "table:NAME, where NAME is an M3 table EXPORTMI reads (e.g. table:OCUSMA)".into(),
        })
    }

    fn check(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<CheckReport, ConnectorError> {
        check::check(host, connection)
    }

    fn discover(
        &self,
        host: &Host,
        connection: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        discover::discover(host, connection)
    }

    fn read(&self, host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
        let settings = M3Settings::resolve(host, &req.connection)?;
        let stream = tasks::stream(&req.task).ok_or_else(|| {
            ConnectorError::invalid_input(format!("infor-m3 has no task '{}'", req.task))
        })?;
        stream.read_stream(host, &settings, req)
    }
}

export_connector!(M3Connector);
