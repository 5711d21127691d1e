//! `ionport check`: test a connection through the host's own services.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use ionport_core::connection::{Connection, ConnectionSettings, CredentialSource};
use ionport_core::vault::Vault;
use ionport_plugin_sdk::ConnectionConfig;
use serde_json::{Value, json};

use crate::Cli;

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["ionapi", "vault"])))]
pub struct CheckArgs {
    /// Credentials from an .ionapi file.
    #[arg(long, value_name = "FILE")]
    ionapi: Option<PathBuf>,
    /// Credentials from the vault entry NAME.
    #[arg(long, value_name = "NAME")]
    vault: Option<String>,
    /// Run this connector's check through the host (e.g. infor-m3); without it, the host
    /// asks the gateway who the service account is.
    #[arg(long, value_name = "ID")]
    connector: Option<String>,
    /// Non-secret connection settings for the connector, as JSON.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    settings: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &CheckArgs) -> Result<ExitCode> {
    let source = match (&args.ionapi, &args.vault) {
        (Some(f), _) => CredentialSource::IonApiFile(f.clone()),
        (None, Some(name)) => CredentialSource::Vault {
            vault: Arc::new(Vault::open_default()?),
            name: name.clone(),
        },
        (None, None) => bail!("give --ionapi FILE or --vault NAME"),
    };
    let settings: Value = serde_json::from_str(&args.settings).context("--settings is not JSON")?;
    let plugin = args
        .connector
        .as_deref()
        .map(|id| cli.plugin(id))
        .transpose()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let conn = Connection::open(source, ConnectionSettings::default())?;
        // Every message below may quote a server (which may echo the request): all of
        // it passes the connection's scrubber (its secrets and every token it saw).
        let scrubber = conn.gateway().tokens().scrubber().clone();
        let scrub = |text: &str| scrubber.scrub(text);
        let outcome = match plugin {
            None => match conn.whoami().await {
                Ok(me) => {
                    if args.json {
                        println!("{}", serde_json::to_string_pretty(&json!({"success": true, "service_account": me}))?);
                    } else {
                        println!("OK: connected as {}", me.describe());
                        if !me.groups.is_empty() {
                            println!("  roles: {}", me.groups.join(", "));
                        }
                    }
                    Ok(true)
                }
                Err(e) => {
                    if args.json {
                        println!("{}", serde_json::to_string_pretty(&json!({"success": false, "failed_part": e.failed_part(), "message": scrub(&e.to_string())}))?);
                    } else {
                        println!("FAILED ({}): {}", e.failed_part(), scrub(&e.to_string()));
                    }
                    Ok(false)
                }
            },
            Some(p) => {
                let host = Arc::new(conn.host(tokio::runtime::Handle::current()));
                let config = ConnectionConfig { settings };
                let report = tokio::task::spawn_blocking(move || p.check(host, &config)).await?;
                match report {
                    Ok(mut r) => {
                        r.message = scrub(&r.message);
                        if args.json {
                            println!("{}", serde_json::to_string_pretty(&r)?);
                        } else if r.success {
                            println!("OK: {}", r.message);
                        } else {
                            println!("FAILED ({}): {}", r.failed_part.as_deref().unwrap_or("unknown"), r.message);
                        }
                        Ok(r.success)
                    }
                    Err(e) => {
                        if args.json {
                            println!("{}", serde_json::to_string_pretty(&json!({"success": false, "message": scrub(&e.to_string())}))?);
                        } else {
                            println!("FAILED: {}", scrub(&e.to_string()));
                        }
                        Ok(false)
                    }
                }
            }
        };
        if let Err(e) = conn.shutdown().await {
            tracing::warn!(error = %scrub(&e.to_string()), "revoking the token failed");
        }
        let m = conn.gateway().metrics();
        tracing::info!(calls = m.calls, retries = m.retries, "gateway metrics");
        outcome.map(|ok: bool| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}
