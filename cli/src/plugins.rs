//! `ionport plugins ...`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_plugin_sdk::conformance::verify_library;
use ionport_plugin_sdk::form::{is_secret, resolve};
use serde_json::{Value, json};

use crate::{Cli, PluginOpts};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins found, and the libraries refused.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        plugins: PluginOpts,
        /// Show full reports (abi_stable's layout report for a refused plugin).
        #[arg(short, long)]
        verbose: bool,
    },
    /// Show one plugin's manifest, connection form and predefined tasks.
    Show {
        /// The plugin id, e.g. infor-m3.
        id: String,
        /// Print JSON (manifest, connection_form, tasks).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        plugins: PluginOpts,
        /// Show full reports (abi_stable's layout report for a refused plugin).
        #[arg(short, long)]
        verbose: bool,
    },
    /// Create a new connector crate (builds and passes the conformance kit as generated).
    New {
        /// The connector id, e.g. acme-erp (the crate is NAME-connector).
        name: String,
        /// Where to create the crate.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The ionport-plugin-sdk to depend on (default: this source tree's, else the
        /// published version).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Run the conformance kit on a plugin library; exits non-zero when a check fails.
    Verify {
        /// The library file (e.g. target/debug/libionport_connector_m3.so).
        path: PathBuf,
        /// Print JSON (library, connector, passed, checks: name, passed, detail); the exit
        /// status is the same.
        #[arg(long)]
        json: bool,
    },
}

impl PluginsCommand {
    pub fn plugin_opts(&self) -> Option<&PluginOpts> {
        match self {
            Self::List { plugins, .. } | Self::Show { plugins, .. } => Some(plugins),
            Self::New { .. } | Self::Verify { .. } => None,
        }
    }
}

pub fn run(cli: &Cli, cmd: &PluginsCommand) -> Result<ExitCode> {
    match cmd {
        PluginsCommand::List { json, verbose, .. } => list(cli, *json, *verbose),
        PluginsCommand::Show {
            id, json, verbose, ..
        } => show(cli, id, *json, *verbose),
        PluginsCommand::Verify { path, json } => verify(path, *json),
        PluginsCommand::New {
            name,
            dir,
            sdk_path,
        } => {
            let root = crate::scaffold::new_connector(name, dir, sdk_path.as_deref())?;
            println!("created {}", root.display());
            println!(
                "next: cd {} && cargo test   (builds the plugin and runs the conformance kit)",
                root.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(cli: &Cli, as_json: bool, verbose: bool) -> Result<ExitCode> {
    let reg = cli.registry();
    if as_json {
        let plugins: Vec<Value> = reg
            .plugins()
            .iter()
            .map(|p| {
                json!({
                    "id": p.id(),
                    "name": p.manifest().name,
                    "version": p.manifest().version,
                    "abi_version": p.manifest().abi_version,
                    "description": p.manifest().description,
                    "path": p.path(),
                    "tasks": p.tasks().iter().map(|t| &t.name).collect::<Vec<_>>(),
                })
            })
            .collect();
        let refused: Vec<Value> = reg
            .refused()
            .iter()
            .map(|r| json!({ "path": r.path(), "reason": r.to_string() }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "plugins": plugins, "refused": refused }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if reg.plugins().is_empty() {
        println!("No plugins found. Searched: {}", search_list(cli));
    } else {
        println!(
            "{:<18} {:<9} {:<6} {:<6} NAME",
            "ID", "VERSION", "ABI", "TASKS"
        );
        for p in reg.plugins() {
            let m = p.manifest();
            println!(
                "{:<18} {:<9} {:<6} {:<6} {}",
                m.id,
                m.version,
                m.abi_version,
                p.tasks().len(),
                m.name
            );
        }
    }
    print_refused(&reg, verbose);
    Ok(ExitCode::SUCCESS)
}

fn search_list(cli: &Cli) -> String {
    cli.plugin_entries()
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_refused(reg: &PluginRegistry, verbose: bool) {
    if reg.refused().is_empty() {
        return;
    }
    eprintln!("\nRefused libraries:");
    for r in reg.refused() {
        eprintln!("  {r}");
        if verbose && let Some(report) = r.report() {
            eprintln!("{report}");
        }
    }
}

fn find<'a>(
    cli: &Cli,
    reg: &'a PluginRegistry,
    id: &str,
    verbose: bool,
) -> Result<&'a LoadedPlugin> {
    match reg.get(id) {
        Some(p) => Ok(p),
        None => {
            print_refused(reg, verbose);
            let known: Vec<&str> = reg.plugins().iter().map(|p| p.id()).collect();
            bail!(
                "no plugin with id '{id}' (found: {}; searched: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
                search_list(cli)
            )
        }
    }
}

fn show(cli: &Cli, id: &str, as_json: bool, verbose: bool) -> Result<ExitCode> {
    let reg = cli.registry();
    let p = find(cli, &reg, id, verbose)?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "manifest": p.manifest(),
                "connection_form": p.connection_form(),
                "tasks": p.tasks(),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let m = p.manifest();
    println!("{} {} — {}", m.id, m.version, m.name);
    println!("  ABI {}   library {}", m.abi_version, p.path().display());
    println!("  {}", m.description);
    println!("\nConnection form:");
    print_form(p.connection_form(), p.connection_form(), "", 0);
    println!("\nPredefined tasks:");
    for t in p.tasks() {
        let modes: Vec<&str> = t.sync_modes.iter().map(|m| m.as_str()).collect();
        println!("  {:<30} {}", t.name, t.description);
        println!(
            "  {:<30} key: {}; cursor: {}; modes: {}",
            "",
            t.primary_key.join(", "),
            t.cursor_field.as_deref().unwrap_or("-"),
            modes.join(", ")
        );
        println!("  {:<30} {}", "", cost(t.requests_per_1000_records));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a task costs the tenant's quota, as `plugins show` states it.
fn cost(per_1000: Option<f64>) -> String {
    match per_1000 {
        // Whole numbers without a fraction; fractions (Data Lake's big pages) to 0.1.
        Some(n) if n >= 1.0 || n == 0.0 => format!(
            "requests per 1,000 records: {} (default page size)",
            n.ceil()
        ),
        Some(n) => format!("requests per 1,000 records: {n:.1} (default page size)"),
        None => "requests per 1,000 records: not stated by the connector".into(),
    }
}

fn print_form(root: &Value, schema: &Value, prefix: &str, depth: usize) {
    let schema = resolve(root, schema);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let resolved = resolve(root, prop);
        let title = prop
            .get("title")
            .or_else(|| resolved.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let ty = resolved
            .get("type")
            .map(|t| match t {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .or_else(|| resolved.get("enum").map(|e| format!("one of {e}")))
            .or_else(|| resolved.get("oneOf").map(|_| "choice".to_string()))
            .unwrap_or_default();
        let mut flags = Vec::new();
        if required.contains(&name.as_str()) {
            flags.push("required");
        }
        if is_secret(prop) || is_secret(resolved) {
            flags.push("secret");
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        println!(
            "  {:indent$}{:<28} {:<10} {:<20} {}",
            "",
            path,
            ty,
            title,
            flags.join(", "),
            indent = depth * 2
        );
        if resolved.get("properties").is_some() {
            print_form(root, resolved, &path, depth + 1);
        }
    }
}

fn verify(path: &std::path::Path, json: bool) -> Result<ExitCode> {
    let report = verify_library(path);
    let code = if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if json {
        let checks: Vec<serde_json::Value> = report
            .checks
            .iter()
            .map(|c| serde_json::json!({"name": c.name, "passed": c.passed, "detail": c.detail}))
            .collect();
        let doc = serde_json::json!({
            "library": path.display().to_string(),
            "connector": report.connector_id,
            "passed": report.passed(),
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(code);
    }
    println!(
        "Conformance of {}{}",
        path.display(),
        report
            .connector_id
            .as_deref()
            .map(|id| format!(" ({id})"))
            .unwrap_or_default()
    );
    for c in &report.checks {
        let mark = if c.passed { "ok  " } else { "FAIL" };
        let mut lines = c.detail.lines();
        println!("  {mark} {:<24} {}", c.name, lines.next().unwrap_or(""));
        for l in lines {
            println!("       {:<24} {l}", "");
        }
    }
    if report.passed() {
        println!("passed: {} checks", report.checks.len());
    } else {
        let failed = report.failures().count();
        println!("failed: {failed} of {} checks", report.checks.len());
    }
    Ok(code)
}
