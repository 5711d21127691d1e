//! A plugin that fails the way an untrusted plugin can take a host down, for the process
//! isolation tests (`tests/tests/isolation.rs`). Never shipped.
//!
//! Tasks (id `ionport-test-faults`):
//! - `numbers`: `options.count` records (default 100) in batches of 10, a checkpoint
//!   `{"offset": n}` after each;
//! - `segfault`: 10 records, a checkpoint, 5 more records, then SIGSEGV;
//! - `hang`: 10 records, a checkpoint, then a loop that never ends and never calls the
//!   host (not even `cancelled`);
//! - `alloc`: allocates 16 MiB blocks, touching every page, without bound.
//!
//! Built with the feature `abort-on-load` (package `ionport-test-plugin-abort-on-load`,
//! id `ionport-test-abort-on-load`) it aborts while its connector is created, that is
//! while the library loads.
//!
//! No unsafe code: the segfault is `kill(getpid(), SIGSEGV)` through rustix's safe
//! wrapper, the abort `std::process::abort()`.

use std::time::Duration;

use ionport_plugin_sdk::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct FaultsConnector;

/// The connection form.
#[derive(JsonSchema, Serialize, Deserialize)]
#[allow(dead_code)]
struct FaultsForm {
    /// Gateway credentials.
    credentials: IonApiCredentials,
}

/// A generated number.
#[derive(JsonSchema, Serialize, Deserialize)]
struct NumberRecord {
    /// The record's key.
    id: u64,
    /// Text.
    label: String,
}

fn make() -> FaultsConnector {
    if cfg!(feature = "abort-on-load") {
        std::process::abort();
    }
    FaultsConnector
}

fn spec(name: &str, description: &str) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        description: description.into(),
        record_schema: form::record_schema::<NumberRecord>(),
        primary_key: vec!["id".into()],
        cursor_field: None,
        sync_modes: vec![SyncMode::FullRefresh],
        requests_per_1000_records: None,
    }
}

impl Connector for FaultsConnector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: if cfg!(feature = "abort-on-load") {
                "ionport-test-abort-on-load".into()
            } else {
                "ionport-test-faults".into()
            },
            name: "ionport faults test plugin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Crashes, hangs and grows without bound on request, for the process isolation tests.".into(),
        }
    }

    fn connection_form(&self) -> Value {
        form::form_schema::<FaultsForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        vec![
            spec(
                "numbers",
                "Generated numbers with a checkpoint per batch of 10.",
            ),
            spec(
                "segfault",
                "Ten records, a checkpoint, five more, then SIGSEGV.",
            ),
            spec(
                "hang",
                "Ten records, a checkpoint, then a loop that never ends.",
            ),
            spec("alloc", "Allocates memory without bound."),
        ]
    }

    fn check(&self, _host: &Host, _conn: &ConnectionConfig) -> Result<CheckReport, ConnectorError> {
        Ok(CheckReport {
            success: true,
            message: "the faults plugin is always connected".into(),
            failed_part: None,
            details: Value::Null,
        })
    }

    fn discover(
        &self,
        _host: &Host,
        _conn: &ConnectionConfig,
    ) -> Result<Discovery, ConnectorError> {
        Ok(Discovery {
            streams: self
                .tasks()
                .into_iter()
                .map(|spec| DiscoveredStream {
                    spec,
                    predefined: true,
                    available: true,
                    note: None,
                })
                .collect(),
            details: Value::Null,
        })
    }

    fn read(&self, host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
        let task = req.task.as_str();
        match task {
            "numbers" => {
                let count = req
                    .options
                    .get("count")
                    .and_then(Value::as_u64)
                    .unwrap_or(100);
                emit(host, task, 0, count, 10)?;
                Ok(ReadSummary {
                    records: count,
                    pages: count.div_ceil(10),
                    state: Some(json!({ "offset": count })),
                })
            }
            "segfault" => {
                emit(host, task, 0, 10, 10)?;
                emit_uncommitted(host, task, 10, 15)?;
                segfault()
            }
            "hang" => {
                emit(host, task, 0, 10, 10)?;
                loop {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            "alloc" => {
                let mut held: Vec<Vec<u8>> = Vec::new();
                loop {
                    // `vec![1; n]` writes every byte, so the pages are really taken.
                    held.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&held);
                }
            }
            other => Err(ConnectorError::invalid_input(format!("no task {other}"))),
        }
    }
}

/// Records `from..to` in batches of `batch`, each batch committed with its checkpoint.
fn emit(host: &Host, stream: &str, from: u64, to: u64, batch: u64) -> Result<(), ConnectorError> {
    let mut writer = RecordWriter::new(host, stream, batch as usize);
    let mut offset = from;
    while offset < to {
        host.check_cancelled()?;
        let end = (offset + batch).min(to);
        for id in offset..end {
            writer.push(&NumberRecord {
                id,
                label: format!("n{id}"),
            })?;
        }
        offset = end;
        writer.commit(&json!({ "offset": offset }))?;
    }
    Ok(())
}

/// Records `from..to` handed over without a checkpoint after them.
fn emit_uncommitted(host: &Host, stream: &str, from: u64, to: u64) -> Result<(), ConnectorError> {
    let records: Vec<NumberRecord> = (from..to)
        .map(|id| NumberRecord {
            id,
            label: format!("n{id}"),
        })
        .collect();
    host.emit(stream, &records)
}

/// Ends the process with SIGSEGV. Raised twice: Rust's runtime installs a SIGSEGV
/// handler (for stack overflows) that, for a fault it does not own, restores the default
/// action and returns, so the first signal only disarms it.
fn segfault() -> ! {
    loop {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::SEGV);
        std::thread::sleep(Duration::from_millis(10));
    }
}

export_connector!(make());
