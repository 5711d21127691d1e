//! The test connector.

use std::time::{Duration, Instant};

use ionport_plugin_sdk::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct TestConnector;

/// The test plugin's connection form.
#[derive(JsonSchema, Serialize, Deserialize)]
#[allow(dead_code)]
struct TestForm {
    /// Gateway credentials.
    credentials: IonApiCredentials,
    /// Where to panic: check, discover or read.
    #[serde(default)]
    panic_in: Option<String>,
    /// Where to fail: check, discover or read.
    #[serde(default)]
    fail_in: Option<String>,
    #[cfg(feature = "broken-descriptor")]
    /// A secret that is not marked as one.
    api_token: String,
}

/// A generated number.
#[derive(JsonSchema, Serialize, Deserialize)]
struct NumberRecord {
    /// The record's key.
    id: u64,
    /// The square of the key.
    square: u64,
    /// Text.
    label: String,
}

/// The answer of the gateway.
#[derive(JsonSchema, Serialize, Deserialize)]
struct EchoRecord {
    /// Request path.
    path: String,
    /// HTTP status.
    status: u16,
    /// The body as text.
    body: String,
}

fn setting<'a>(conn: &'a ConnectionConfig, key: &str) -> Option<&'a str> {
    conn.settings.get(key).and_then(Value::as_str)
}

fn misbehave(conn: &ConnectionConfig, op: &str) -> Result<(), ConnectorError> {
    if setting(conn, "panic_in") == Some(op) {
        panic!("test plugin: asked to panic in {op}");
    }
    if setting(conn, "fail_in") == Some(op) {
        return Err(ConnectorError::connector(format!(
            "test plugin: asked to fail in {op}"
        )));
    }
    Ok(())
}

fn opt_u64(req: &ReadRequest, key: &str, default: u64) -> u64 {
    req.options
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

impl Connector for TestConnector {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            #[cfg(not(feature = "broken-descriptor"))]
            id: "ionport-test".into(),
            #[cfg(feature = "broken-descriptor")]
            id: "Broken Test".into(),
            name: "ionport test plugin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Exercises the ionport plugin ABI for the host's tests.".into(),
        }
    }

    fn connection_form(&self) -> Value {
        form::form_schema::<TestForm>()
    }

    fn tasks(&self) -> Vec<TaskSpec> {
        let both = vec![SyncMode::FullRefresh, SyncMode::Incremental];
        vec![
            TaskSpec {
                name: "numbers".into(),
                description: "Generated numbers, in batches, with checkpoints.".into(),
                record_schema: form::record_schema::<NumberRecord>(),
                #[cfg(not(feature = "broken-descriptor"))]
                primary_key: vec!["id".into()],
                #[cfg(feature = "broken-descriptor")]
                primary_key: vec!["no_such_field".into()],
                cursor_field: Some("id".into()),
                sync_modes: both,
                requests_per_1000_records: None,
            },
            TaskSpec {
                name: "gateway_echo".into(),
                description: "One call through the host's gateway.".into(),
                record_schema: form::record_schema::<EchoRecord>(),
                primary_key: vec!["path".into()],
                cursor_field: None,
                sync_modes: vec![SyncMode::FullRefresh],
                requests_per_1000_records: None,
            },
            TaskSpec {
                name: "blob".into(),
                description: "Large NDJSON batches, for throughput tests.".into(),
                record_schema: form::record_schema::<NumberRecord>(),
                primary_key: vec!["id".into()],
                cursor_field: None,
                sync_modes: vec![SyncMode::FullRefresh],
                requests_per_1000_records: None,
            },
            TaskSpec {
                name: "host_calls".into(),
                description: "Calls back into the host, for the ABI bench.".into(),
                record_schema: form::record_schema::<NumberRecord>(),
                primary_key: vec!["id".into()],
                cursor_field: None,
                sync_modes: vec![SyncMode::FullRefresh],
                requests_per_1000_records: None,
            },
        ]
    }

    fn check(&self, host: &Host, conn: &ConnectionConfig) -> Result<CheckReport, ConnectorError> {
        misbehave(conn, "check")?;
        host.info("test plugin: check");
        Ok(CheckReport {
            success: true,
            message: "the test plugin is always connected".into(),
            failed_part: None,
            details: json!({ "settings_seen": conn.settings }),
        })
    }

    fn discover(&self, _host: &Host, conn: &ConnectionConfig) -> Result<Discovery, ConnectorError> {
        misbehave(conn, "discover")?;
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
        misbehave(&req.connection, "read")?;
        match req.task.as_str() {
            "numbers" => read_numbers(host, req),
            "gateway_echo" => read_echo(host, req),
            "blob" => read_blob(host, req),
            "host_calls" => host_calls(host, req),
            other => Err(ConnectorError::invalid_input(format!("no task {other}"))),
        }
    }
}

fn read_numbers(host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
    let count = opt_u64(req, "count", 1000);
    let batch = opt_u64(req, "batch", 100).max(1);
    let stall_after = req.options.get("stall_after").and_then(Value::as_u64);
    let mut offset = req
        .state
        .as_ref()
        .and_then(|s| s.get("offset"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut writer = RecordWriter::new(host, "numbers", batch as usize);
    let mut pages = 0;
    while offset < count {
        host.check_cancelled()?;
        if stall_after.is_some_and(|n| offset >= n) {
            while !host.cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Err(ConnectorError::cancelled());
        }
        let end = (offset + batch).min(count);
        for id in offset..end {
            writer.push(&NumberRecord {
                id,
                square: id.wrapping_mul(id),
                label: format!("n{id}"),
            })?;
        }
        offset = end;
        pages += 1;
        writer.commit(&json!({ "offset": offset }))?;
        // A page handed over by the plugin's own loop (the SDK's paging helpers report theirs).
        host.report_pages(1);
    }
    Ok(ReadSummary {
        records: writer.written(),
        pages,
        state: Some(json!({ "offset": offset })),
    })
}

fn read_echo(host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
    let path = req
        .options
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("ifsservice/usermgt/v2/users/me")
        .to_string();
    let resp = host.gateway(&GatewayRequest::get(path.clone()))?;
    host.emit(
        "gateway_echo",
        &[EchoRecord {
            path,
            status: resp.status,
            body: resp.text(),
        }],
    )?;
    host.checkpoint(&json!({ "done": true }))?;
    Ok(ReadSummary {
        records: 1,
        pages: 1,
        state: None,
    })
}

fn read_blob(host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
    let bytes = opt_u64(req, "bytes", 1 << 20) as usize;
    let batches = opt_u64(req, "batches", 1);
    // One line of 100 bytes, repeated: a realistic NDJSON batch of `bytes` bytes.
    let line = format!(
        "{{\"id\":0,\"square\":0,\"label\":\"{}\"}}\n",
        "x".repeat(62)
    );
    let lines = (bytes / line.len()).max(1);
    let template = line.repeat(lines).into_bytes();
    for _ in 0..batches {
        host.emit_ndjson("blob", lines as u64, template.clone())?;
    }
    Ok(ReadSummary {
        records: lines as u64 * batches,
        pages: batches,
        state: None,
    })
}

fn host_calls(host: &Host, req: &ReadRequest) -> Result<ReadSummary, ConnectorError> {
    let calls = opt_u64(req, "calls", 1_000_000);
    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..calls {
        n += u64::from(std::hint::black_box(host.cancelled()));
    }
    let ns = start.elapsed().as_nanos() as u64;
    Ok(ReadSummary {
        records: 0,
        pages: 0,
        state: Some(json!({ "calls": calls, "nanos": ns, "cancelled_seen": n })),
    })
}

export_connector!(TestConnector);
