//! The tasks the bench replicates: one per connector shape (M3 key-paged list, M3
//! EXPORTMI, LN OData, Data Lake Compass), each with what the emulator says it must yield.

use ionport_emulator::data::{Dataset, tables};
use serde_json::{Value, json};

/// The M3 company (and LN company) the tasks read.
pub const CONO: u32 = 100;

/// How a task pages, which decides what `pages_in_flight` can do for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// M3 MI lists and EXPORTMI tables: key ranges side by side.
    KeyRanges,
    /// LN with the connection's default paging: `@odata.nextLink`, a link known only from
    /// the answer before it. (`paging = "skip"` puts `$skip` windows in flight, but a
    /// window costs the server a scan of every row it skips — the emulator's as most
    /// OData servers' — so a 1M row would take most of an hour.)
    NextLink,
    /// Data Lake: a finished job's result pages by offset.
    Offsets,
}

pub struct BenchTask {
    /// `connector/task` as the tables show it.
    pub label: &'static str,
    pub task: &'static str,
    /// The connector's plugin id (pipeline files) and library name (in-process reads).
    pub connector: &'static str,
    pub lib: &'static str,
    /// Connection settings, as TOML inline table and as JSON.
    pub settings_toml: &'static str,
    /// Records per page: the connector's default for M3 and LN (1,000, as in the issue's
    /// figures); 10,000 for Data Lake (its default, 100,000, is 10% of a 1M row).
    pub page: u32,
    pub paging: Paging,
}

impl BenchTask {
    pub fn settings_json(&self) -> Value {
        match self.connector {
            "infor-m3" => json!({ "company": CONO }),
            "infor-ln" => json!({ "company": CONO }),
            _ => json!({}),
        }
    }

    /// Records the task must replicate from this dataset (the emulator's own count).
    pub fn expected(&self, ds: &Dataset) -> u64 {
        match self.connector {
            // MI lists and EXPORTMI leave out customers M3 marks deleted.
            "infor-m3" => {
                let e = tables::OCUSMA.entity;
                (0..ds.count(e, CONO))
                    .filter(|i| !ds.record(e, CONO, *i).deleted())
                    .count() as u64
            }
            "infor-ln" => ds.count(tables::LN_BUSINESS_PARTNERS.entity, CONO),
            // The lake holds every company's lines, deleted ones as rows with `deleted`.
            _ => ds.table_rows(&tables::OOLINE),
        }
    }

    /// The emulator scale (customers of company 100) that gives about `n` records.
    pub fn scale_for(&self, n: u64) -> u64 {
        match self.connector {
            "infor-datalake" => {
                // Order lines grow linearly with the scale: measure the slope once.
                let per = Dataset::new(0, 1000).table_rows(&tables::OOLINE) as f64 / 1000.0;
                ((n as f64 / per).round() as u64).max(1)
            }
            _ => n,
        }
    }

    /// What `pages_in_flight` does for this task, for the tables.
    pub fn in_flight_note(&self, pif: u32) -> String {
        match self.paging {
            Paging::KeyRanges | Paging::Offsets => pif.to_string(),
            // The setting is passed but the task reads one page at a time.
            Paging::NextLink => format!("{pif}→1"),
        }
    }

    /// Pages the task can really have in flight at `pif`.
    pub fn effective_in_flight(&self, pif: u32) -> u32 {
        match self.paging {
            Paging::KeyRanges | Paging::Offsets => pif,
            Paging::NextLink => 1,
        }
    }
}

pub const TASKS: &[BenchTask] = &[
    BenchTask {
        label: "m3/customers",
        task: "customers",
        connector: "infor-m3",
        lib: "ionport_connector_m3",
        settings_toml: "{ company = 100 }",
        page: 1_000,
        paging: Paging::KeyRanges,
    },
    BenchTask {
        label: "m3/customer_table",
        task: "customer_table",
        connector: "infor-m3",
        lib: "ionport_connector_m3",
        settings_toml: "{ company = 100 }",
        page: 1_000,
        paging: Paging::KeyRanges,
    },
    BenchTask {
        label: "ln/business_partners",
        task: "business_partners",
        connector: "infor-ln",
        lib: "ionport_connector_ln",
        settings_toml: "{ company = 100 }",
        page: 1_000,
        paging: Paging::NextLink,
    },
    BenchTask {
        label: "datalake/m3_order_lines",
        task: "m3_order_lines",
        connector: "infor-datalake",
        lib: "ionport_connector_datalake",
        settings_toml: "{}",
        page: 10_000,
        paging: Paging::Offsets,
    },
];

/// The tasks named in `BENCH_TASKS` (task names or labels), all by default.
pub fn selected(names: &[String]) -> Vec<&'static BenchTask> {
    if names.is_empty() {
        return TASKS.iter().collect();
    }
    names
        .iter()
        .map(|n| {
            TASKS
                .iter()
                .find(|t| t.task == n || t.label == n)
                .unwrap_or_else(|| {
                    panic!(
                        "BENCH_TASKS: no task '{n}' (one of: {})",
                        TASKS.iter().map(|t| t.task).collect::<Vec<_>>().join(", ")
                    )
                })
        })
        .collect()
}
