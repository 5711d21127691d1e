//! `ionport vault ...`: the credential vault.

mod login;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;
use ionport_core::credentials::MASK;
use ionport_core::vault::{EntryGrant, HOME_ENV, Vault, VaultSummary, default_home};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Store the credentials of an .ionapi file (encrypted) under a name.
    Import {
        /// The .ionapi file.
        file: PathBuf,
        /// The name to store it under.
        #[arg(long)]
        name: String,
        /// Replace an entry of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// Sign in as a user (authorization code with PKCE) and store the credential with its
    /// refresh token: prints the URL to open, waits for the redirect on 127.0.0.1.
    Login {
        /// The name to store it under (an entry of that name is replaced).
        name: String,
        /// The .ionapi file of the authorized app.
        #[arg(long)]
        ionapi: PathBuf,
        /// The loopback port of the redirect (the app's registered redirect URI may fix
        /// one); default: a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// How long to wait for the redirect, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// The scope to ask for.
        #[arg(long)]
        scope: Option<String>,
        /// Only print the URL; do not start a browser on it.
        #[arg(long)]
        no_browser: bool,
    },
    /// List the stored connections (no secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one stored connection; secrets are masked.
    Show {
        /// The entry name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a stored connection.
    Rm {
        /// The entry name.
        name: String,
    },
}

fn when(secs: u64) -> String {
    if secs == 0 {
        "-".into()
    } else {
        format!("{secs} (unix time)")
    }
}

fn print_summary(s: &VaultSummary) {
    println!("{}", s.name);
    println!("  tenant           {}", s.tenant);
    if let Some(app) = &s.app_name {
        println!("  app              {app}");
    }
    println!("  service URL      {}", s.service_url);
    println!("  client id        {}", s.client_id);
    println!(
        "  service account  {}",
        s.service_account
            .as_deref()
            .unwrap_or("(none: no password grant)")
    );
    println!(
        "  refresh token    {}",
        if s.has_refresh_token { MASK } else { "(none)" }
    );
    if s.grant == EntryGrant::AuthorizationCode {
        println!("  signed in        as a user (vault login): refresh tokens only");
    }
    println!("  updated          {}", when(s.updated));
}

/// ionport's home (`IONPORT_HOME`, or the default) is usable: a directory, or nothing yet
/// (it is created on first write). Anything else — a regular file, a path through one — is
/// refused here, before a command would read "nothing stored" from it or fail half-way.
pub fn check_home() -> Result<()> {
    let home = default_home()?;
    let origin = match std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        Some(_) => format!("{HOME_ENV}={}", home.display()),
        None => format!("ionport's home {}", home.display()),
    };
    match std::fs::metadata(&home) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{origin} is not a directory: point {HOME_ENV} at a directory (it is created when missing)"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!(
            "{origin} cannot be used as ionport's home ({e}): point {HOME_ENV} at a directory (it is created when missing)"
        ),
    }
}

pub fn run(cmd: &VaultCommand) -> Result<ExitCode> {
    let vault = Vault::open_default()?;
    match cmd {
        VaultCommand::Import {
            file,
            name,
            replace,
        } => {
            let s = vault.import_ionapi(file, name, *replace)?;
            println!(
                "stored '{}' ({} on {}) in {}",
                s.name,
                s.client_id,
                s.service_url,
                vault.path().display()
            );
        }
        VaultCommand::Login {
            name,
            ionapi,
            port,
            timeout,
            scope,
            no_browser,
        } => login::run(
            &vault,
            &login::LoginArgs {
                name,
                ionapi,
                port: *port,
                timeout: Duration::from_secs(*timeout),
                scope: scope.as_deref(),
                no_browser: *no_browser,
            },
        )?,
        VaultCommand::List { json } => {
            let list = vault.list()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("the vault {} holds no connection", vault.path().display());
            } else {
                println!("{:<20} {:<20} SERVICE URL", "NAME", "TENANT");
                for s in list {
                    println!("{:<20} {:<20} {}", s.name, s.tenant, s.service_url);
                }
            }
        }
        VaultCommand::Show { name, json } => {
            let e = vault.get(name)?;
            let s = e.summary();
            let c = &e.credentials;
            if *json {
                let v = json!({
                    "name": s.name,
                    "tenant": s.tenant,
                    "app_name": s.app_name,
                    "service_url": s.service_url,
                    "token_url": c.token_url().as_str(),
                    "revoke_url": c.revoke_url().as_str(),
                    "client_id": s.client_id,
                    "client_secret": MASK,
                    "service_account": s.service_account,
                    "service_account_secret": c.service_account.as_ref().map(|_| MASK),
                    "refresh_token": e.refresh_token.as_ref().map(|_| MASK),
                    "grant": e.grant,
                    "client_auth": c.client_auth,
                    "created": s.created,
                    "updated": s.updated,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_summary(&s);
                println!("  token URL        {}", c.token_url());
                println!("  revoke URL       {}", c.revoke_url());
                println!("  client secret    {MASK}");
                if c.service_account.is_some() {
                    println!("  account secret   {MASK}");
                }
            }
        }
        VaultCommand::Rm { name } => {
            if !vault.remove(name)? {
                bail!(
                    "no vault entry named '{name}' in {}",
                    vault.path().display()
                );
            }
            println!("removed '{name}'");
        }
    }
    Ok(ExitCode::SUCCESS)
}
