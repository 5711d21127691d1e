//! The Infor M3 connector.
//!
//! Reads M3 through MI programs over the ION API Gateway (`M3/m3api-rest`, v1 or v2
//! shape): list transactions paged by key for customers, items and suppliers, order
//! lines per order (`customer_order_lines_by_order`), and `EXPORTMI/Select` for whole
//! tables — the order lines' `OOLINE` among them — with incremental reads on the change
//! timestamps. `discover` lists the programs and transactions (`MRS001MI`) and offers
//! every standard table EXPORTMI can read as a stream `table:NAME`.
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

use ionport_plugin_sdk::columns::select;
use ionport_plugin_sdk::inflight;
use ionport_plugin_sdk::paging::{AdaptivePageSize, SharedPageSize};
use ionport_plugin_sdk::prelude::*;

use crate::columns::Col;
use crate::export::Export;
use crate::list::Listing;
use crate::settings::M3Settings;
use crate::tasks::Source;

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
        let s = M3Settings::resolve(host, &req.connection)?;
        // At least 2: a key-paged listing repeats its first row, so a page of one record
        // could never advance.
        let size = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(2, 100_000);
        // Shrinks on gateway timeouts, grows back up to the configured size.
        let mut page = AdaptivePageSize::new(size, (size / 32).max(2), size);
        let in_flight = inflight::pages_in_flight(req);
        let incremental = req.sync_mode == SyncMode::Incremental;
        let state = req.state.as_ref();
        let (records, pages, state) = if let Some(task) = tasks::find(&req.task) {
            // The key, the cursor and a listing's paging key are read whatever is selected.
            let mut keep: Vec<&str> = task.pk.iter().copied().chain(task.cursor).collect();
            if let Source::List { key, .. } = task.source {
                keep.push(key);
            }
            let cols: Vec<Col> = match select(req, &columns::names(task.cols), &keep)? {
                Some(names) => task
                    .cols
                    .iter()
                    .filter(|c| names.iter().any(|n| n == c.0))
                    .copied()
                    .collect(),
                None => task.cols.to_vec(),
            };
            match task.source {
                Source::List {
                    program,
                    transaction,
                    key,
                } => {
                    let listing = Listing {
                        program,
                        transaction,
                        key,
                        inputs: vec![("CONO", s.cono())],
                        cols: &cols,
                    };
                    let size = SharedPageSize::new(page.clone());
                    list::read_list(host, &s, task.name, &listing, &size, in_flight, state)?
                }
                Source::OrderLines => {
                    orders::read_order_lines(host, &s, task.name, &cols, &mut page, state)?
                }
                Source::Export {
                    table,
                    prefix,
                    by_division,
                } => {
                    let in_table = |n: &str| format!("{prefix}{n}");
                    let export = Export {
                        table: table.into(),
                        columns: cols.iter().map(|c| in_table(c.0)).collect(),
                        names: cols.iter().map(|c| c.0.to_string()).collect(),
                        filter: s
                            .divi()
                            .filter(|_| by_division)
                            .map(|d| format!("{} = {}", in_table("DIVI"), export::quote(d))),
                        key: task.pk.iter().map(|k| in_table(k)).collect(),
                        types: cols.iter().map(|c| (in_table(c.0), c.1)).collect(),
                    };
                    let state = orders::unless_per_order_state(host, task.name, state);
                    let size = SharedPageSize::new(page.clone());
                    export.read(host, &s, task.name, &size, in_flight, state, incremental)?
                }
            }
        } else if let Some((table, key, _)) = tasks::table_stream(&req.task) {
            let all = discover::table_columns(host, &s, table, key[0])?.ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "M3 table {table} cannot be read through EXPORTMI on this tenant"
                ))
            })?;
            let offered: Vec<&str> = all.iter().map(String::as_str).collect();
            let keep: Vec<&str> = key
                .iter()
                .copied()
                .chain(offered.iter().copied().filter(|c| c.ends_with("LMTS")))
                .collect();
            let cols = select(req, &offered, &keep)?.unwrap_or_else(|| all.clone());
            let types = cols
                .iter()
                .map(|c| (c.clone(), discover::column_type(c).0))
                .collect();
            let export = Export {
                table: (*table).into(),
                names: cols.clone(),
                filter: None,
                columns: cols,
                key: key.iter().map(|k| (*k).to_string()).collect(),
                types,
            };
            let size = SharedPageSize::new(page);
            export.read(host, &s, &req.task, &size, in_flight, state, incremental)?
        } else {
            return Err(ConnectorError::invalid_input(format!(
                "infor-m3 has no task '{}'",
                req.task
            )));
        };
        Ok(ReadSummary {
            records,
            pages,
            state: Some(state),
        })
    }
}

export_connector!(M3Connector);
