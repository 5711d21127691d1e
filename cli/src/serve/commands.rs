//! `ionport apikey` and `ionport workspace`: keys and workspaces of the serve home,
//! changed in its files directly (a running server re-reads them), each change audited
//! under `command-line`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::{audit, auth, store, webhooks, workspaces};
use crate::Cli;

#[derive(Debug, Clone, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key: it is printed once; only its SHA-256 hash is stored. Without
    /// `--workspace` it is an admin key of `default` (a single user's key); with it, a
    /// key that sees only that workspace (`--admin`: an admin key acting there).
    Create {
        /// A name to list and revoke it by.
        #[arg(long, default_value = "default")]
        name: String,
        /// The workspace the key acts in (made with `ionport workspace create`).
        #[arg(long, value_name = "WORKSPACE")]
        workspace: Option<String>,
        /// An admin key: manages workspaces and keys, may act in any workspace.
        #[arg(long)]
        admin: bool,
    },
    /// List the stored keys (names and dates; never the keys).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by name (a running server stops accepting it at once).
    Revoke {
        /// The key's name.
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace (a running server sees it at once).
    Create {
        /// 1 to 32 of a-z 0-9 - (not starting with -).
        name: String,
        /// Runs going at once in the workspace (default: no limit).
        #[arg(long, value_name = "N")]
        max_concurrent_runs: Option<u32>,
        /// Connections the workspace may store (default: no limit).
        #[arg(long, value_name = "N")]
        max_connections: Option<u32>,
        /// Requests per minute the workspace's runs send to one tenant, on top of the
        /// tenant's quota (default: no limit).
        #[arg(long, value_name = "N")]
        requests_per_minute: Option<u32>,
    },
    /// List the workspaces and their limits.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an empty workspace (no connections, no webhooks) and revoke its keys.
    Delete {
        /// The workspace's name.
        name: String,
    },
}

pub fn apikey_cmd(_cli: &Cli, cmd: &ApikeyCommand) -> Result<ExitCode> {
    let home = ionport_core::vault::default_home()?;
    match cmd {
        ApikeyCommand::Create {
            name,
            workspace,
            admin,
        } => {
            if let Err(r) = auth::check_key_name(name) {
                anyhow::bail!("--name '{name}': {r}");
            }
            let (role, ws) = match workspace {
                None => (auth::Role::Admin, workspaces::DEFAULT.to_string()),
                Some(w) => {
                    if workspaces::Workspaces::open(&home)?.get(w).is_none() {
                        anyhow::bail!(
                            "--workspace '{w}': no such workspace (create it with `ionport workspace create {w}`)"
                        );
                    }
                    let role = if *admin {
                        auth::Role::Admin
                    } else {
                        auth::Role::Workspace
                    };
                    (role, w.clone())
                }
            };
            let key = auth::create_in(&home, name, role, &ws)?;
            audit_cli(&home, "key.created", name, &ws);
            let kind = match role {
                auth::Role::Admin => "admin",
                auth::Role::Workspace => "workspace",
            };
            eprintln!(
                "created {kind} API key '{name}' of workspace '{ws}'; it is shown once, store it now:"
            );
            println!("{key}");
        }
        ApikeyCommand::List { json } => {
            let file = auth::load_file(&auth::key_file(&home))?;
            if *json {
                let list: Vec<serde_json::Value> = file
                    .keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({"name": k.name, "created": k.created,
                            "role": k.role, "workspace": k.workspace})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if file.keys.is_empty() {
                println!("no API keys (create one with `ionport apikey create`)");
            } else {
                for k in &file.keys {
                    let role = match k.role {
                        auth::Role::Admin => "admin",
                        auth::Role::Workspace => "workspace",
                    };
                    println!(
                        "{}\tcreated {}\t{role} key of workspace {}",
                        k.name, k.created, k.workspace
                    );
                }
            }
        }
        ApikeyCommand::Revoke { name } => {
            let ws = auth::load_file(&auth::key_file(&home))?
                .keys
                .into_iter()
                .find(|k| &k.name == name)
                .map_or_else(|| workspaces::DEFAULT.to_string(), |k| k.workspace);
            if auth::revoke(&home, name)? {
                audit_cli(&home, "key.revoked", name, &ws);
                println!("revoked API key '{name}'");
            } else {
                anyhow::bail!("no API key named '{name}'");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn workspace_cmd(_cli: &Cli, cmd: &WorkspaceCommand) -> Result<ExitCode> {
    let home = ionport_core::vault::default_home()?;
    let all = workspaces::Workspaces::open(&home)?;
    match cmd {
        WorkspaceCommand::Create {
            name,
            max_concurrent_runs,
            max_connections,
            requests_per_minute,
        } => {
            let limits = workspaces::WorkspaceLimits {
                max_concurrent_runs: *max_concurrent_runs,
                max_connections: *max_connections,
                requests_per_minute: *requests_per_minute,
            };
            if let Err((field, reason)) = limits.check() {
                anyhow::bail!(
                    "--{}: {reason}",
                    field.trim_start_matches("limits.").replace('_', "-")
                );
            }
            workspaces::create(&all, name, limits)?;
            audit_cli(&home, "workspace.created", name, name);
            println!("created workspace '{name}'");
        }
        WorkspaceCommand::List { json } => {
            let list = all.list();
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for w in &list {
                    let mut limits = Vec::new();
                    if let Some(n) = w.limits.max_concurrent_runs {
                        limits.push(format!("max_concurrent_runs={n}"));
                    }
                    if let Some(n) = w.limits.max_connections {
                        limits.push(format!("max_connections={n}"));
                    }
                    if let Some(n) = w.limits.requests_per_minute {
                        limits.push(format!("requests_per_minute={n}"));
                    }
                    let limits = if limits.is_empty() {
                        "no limits".to_string()
                    } else {
                        limits.join(" ")
                    };
                    println!("{}\t{limits}", w.name);
                }
            }
        }
        WorkspaceCommand::Delete { name } => {
            let store = store::Store::open(&home)?;
            let hooks = webhooks::count_in(&home, name)?;
            workspaces::delete(&all, name, store.count(name), hooks)?;
            let revoked = auth::revoke_workspace(&home, name)?;
            audit_cli(&home, "workspace.deleted", name, name);
            println!("deleted workspace '{name}' ({revoked} keys revoked)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a change made by `ionport apikey` or `ionport workspace` in the serve home's
/// audit log.
fn audit_cli(home: &std::path::Path, action: &str, name: &str, workspace: &str) {
    let mut e = audit::entry(action, name, Vec::new());
    e.key = audit::COMMAND_LINE.into();
    e.workspace = workspace.into();
    if let Err(e) = audit::AuditLog::new(home).append(&e) {
        eprintln!("warning: the audit log could not be written: {e:#}");
    }
}
