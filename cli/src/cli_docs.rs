//! What the command line says about itself: the environment variables in `--help`, shell
//! completions (`clap_complete`), man pages (`clap_mangen`), the `--log` filter check and
//! whether stderr gets colours.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::Cli;

/// Every variable ionport reads. Options that have a variable show it in their own line
/// (`[env: …]`); these are read by the host runtime, not by an option, so they are listed.
pub const ENVIRONMENT: &str = "\
Environment:
  IONPORT_HOME          ionport's home: vault, API keys, connections of `serve`
                        (default: the user's data directory + ionport)
  IONPORT_VAULT_KEY     the vault key (base64 or hex of 32 bytes) instead of the key file
                        in IONPORT_HOME
  IONPORT_PLUGIN_PATH   plugin directories or library files (--plugin-path)
  IONPORT_LOG           log filter (--log)
  IONPORT_API_KEYS      API keys `serve` accepts, comma-separated (--api-key)
  IONPORT_DESTINATION_WAIT_SECS
                        how long a destination held by another writer is waited for
  IONPORT_AIRBYTE_CONNECTOR
                        the connector `ionport spec|check|discover|read` runs as an
                        Airbyte source (as does the name ionport-airbyte-<connector>)
  NO_COLOR              no colours in logs and progress (also none when not a terminal)";

/// For the commands that use the home and the vault.
pub const HOME_AND_VAULT: &str = "\
Environment:
  IONPORT_HOME        ionport's home, which holds the vault (default: the user's data
                      directory + ionport)
  IONPORT_VAULT_KEY   the vault key (base64 or hex of 32 bytes) instead of the key file";

/// For the commands that run pipelines (the vault's connections, destinations).
pub const PIPELINES: &str = "\
Environment:
  IONPORT_HOME        ionport's home, which holds the vault (default: the user's data
                      directory + ionport)
  IONPORT_VAULT_KEY   the vault key (base64 or hex of 32 bytes) instead of the key file
  IONPORT_DESTINATION_WAIT_SECS
                      how long a destination held by another writer is waited for";

/// For `apikey`.
pub const HOME: &str = "\
Environment:
  IONPORT_HOME        ionport's home, which holds apikeys.json (default: the user's data
                      directory + ionport)";

/// `--log`: a filter `tracing` would not understand is a usage error (exit 2), not a
/// silent fallback to another level.
pub fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{e} (e.g. `info`, `warn,ionport_core=debug`)"))
}

/// Whether log lines on stderr get ANSI colours: what clap decides for its own output
/// (`anstream`: a terminal, `NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`, `TERM=dumb`).
pub fn stderr_colour() -> bool {
    !matches!(
        anstream::AutoStream::choice(&std::io::stderr()),
        anstream::ColorChoice::Never
    )
}

/// `ionport completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut cmd = Cli::command();
    // Into a buffer: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ionport", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the completion script")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `ionport man-pages DIR`: `ionport.1` and one page per subcommand (`ionport-vault-import.1`).
pub fn man_pages(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command();
    // Global options reach the subcommands only when the command is built.
    // Building also names each subcommand `ionport-vault-import`, the page's title.
    cmd.build();
    let mut written = 0;
    write_pages(&cmd, dir, &mut written)?;
    println!("wrote {written} man pages to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut usize) -> anyhow::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut text)?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
