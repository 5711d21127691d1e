//! Embedding ionport in a Rust program — the whole path in one file:
//!
//! 1. load the connector plugins from a directory (`PluginRegistry`);
//! 2. open a connection from an `.ionapi` file (`Connection`: tokens, retries, rate limit);
//! 3. test it with the connector's own check;
//! 4. read one task into a callback (`read_task` + `FnHandler`), printing progress at
//!    every checkpoint;
//! 5. shut the connection down (the refresh token is revoked).
//!
//! Run it against the emulator:
//!
//! ```sh
//! cargo build --workspace
//! target/debug/ionport emulator --write-ionapi /tmp/emu.ionapi &
//! target/debug/ionport-embed-example --plugins target/debug --ionapi /tmp/emu.ionapi \
//!     --connector infor-m3 --task customers --settings '{"company": 100}'
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::pipeline::Cancel;
use ionport_core::plugin::PluginRegistry;
use ionport_core::read::{FnHandler, ReadEvent, read_task};
use ionport_plugin_abi::wire::{ConnectionConfig, ReadRequest, SyncMode};
use serde_json::Value;

/// Reads one task of a connector into this program.
#[derive(Debug, Parser)]
struct Args {
    /// Directory (or library file) of the connector plugins.
    #[arg(long)]
    plugins: PathBuf,
    /// The tenant's `.ionapi` file.
    #[arg(long)]
    ionapi: PathBuf,
    /// Connector id.
    #[arg(long, default_value = "infor-m3")]
    connector: String,
    /// Task to read.
    #[arg(long, default_value = "customers")]
    task: String,
    /// The connector's settings (its connection form without credentials), as JSON.
    #[arg(long, default_value = r#"{"company": 100}"#)]
    settings: String,
    /// Records per page.
    #[arg(long)]
    page_size: Option<u32>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // ionport logs through `tracing`; an embedder picks where it goes (here: stderr,
    // filtered by IONPORT_LOG, e.g. `ionport::read=debug` for every read's start and end).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IONPORT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        // Colours only on a terminal: logs written to files or pipes stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let settings: Value = serde_json::from_str(&args.settings).context("--settings is not JSON")?;

    // 1. Plugins. A refused library (wrong ABI, broken file) is reported, never fatal.
    let registry = PluginRegistry::load_from(std::slice::from_ref(&args.plugins));
    for refused in registry.refused() {
        eprintln!("skipped {}: {refused}", refused.path().display());
    }
    let Some(plugin) = registry.get(&args.connector).cloned() else {
        let known: Vec<&str> = registry.plugins().iter().map(|p| p.id()).collect();
        bail!(
            "no connector '{}' (found: {})",
            args.connector,
            known.join(", ")
        );
    };
    let Some(task) = plugin.task(&args.task).cloned() else {
        let known: Vec<&str> = plugin.tasks().iter().map(|t| t.name.as_str()).collect();
        bail!(
            "{} has no task '{}' (tasks: {})",
            plugin.id(),
            args.task,
            known.join(", ")
        );
    };
    println!(
        "loaded {} plugins; using {} {}",
        registry.plugins().len(),
        plugin.id(),
        plugin.manifest().version
    );

    // 2. The connection: credentials validated now, tokens fetched on first use.
    let connection = Connection::open(
        CredentialSource::IonApiFile(args.ionapi.clone()),
        ConnectionSettings::default(),
    )?;

    // 3. The connector's own check, through the host (plugin calls block: off the runtime).
    let host = Arc::new(connection.host(tokio::runtime::Handle::current()));
    let config = ConnectionConfig {
        settings: settings.clone(),
    };
    let checker = plugin.clone();
    let report = tokio::task::spawn_blocking(move || checker.check(host, &config)).await??;
    if !report.success {
        bail!(
            "check failed ({}): {}",
            report.failed_part.unwrap_or_default(),
            report.message
        );
    }
    println!("check: {}", report.message);

    // 4. One task into a callback. Records arrive in batches; a checkpoint follows the
    //    records it covers — the moment to commit them wherever this program keeps data.
    let records = Arc::new(AtomicU64::new(0));
    let seen = records.clone();
    let started = Instant::now();
    let handler = FnHandler::new(move |event: ReadEvent<'_>| {
        match event {
            ReadEvent::Records { records, .. } => {
                seen.fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            ReadEvent::Checkpoint { stream, .. } => {
                let n = seen.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
                println!("progress: {stream}: {n} records ({rate:.0}/s)");
            }
            ReadEvent::Log { level, message } => eprintln!("[{level:?}] {message}"),
        }
        Ok(())
    });
    let request = ReadRequest {
        connection: ConnectionConfig { settings },
        task: task.name.clone(),
        sync_mode: SyncMode::FullRefresh,
        state: None,
        page_size: args.page_size,
        pages_in_flight: None,
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    };
    let outcome = read_task(
        &plugin,
        &connection,
        request,
        Arc::new(handler),
        Cancel::default(),
    )
    .await;

    // 5. Always shut down: the refresh token is revoked.
    let shutdown = connection.shutdown().await;
    let outcome = outcome?;
    if let Err(e) = shutdown {
        eprintln!("revoking the token failed: {e}");
    }
    println!(
        "done: {} records of {} in {} pages, {} checkpoints, {} gateway calls, {:.2} s",
        outcome.records,
        task.name,
        outcome.summary.pages,
        outcome.checkpoints,
        outcome.requests,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
