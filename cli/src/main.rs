//! `ionport`: the command line of the ionport host.
//!
//! Only this crate parses command lines; everything it does is a call into
//! `ionport-core` (or the emulator), printed for people (`--json` for scripts).

mod check;
mod cli_docs;
mod cluster;
mod plugins;
mod protocols;
mod repair;
mod run;
mod scaffold;
mod serve;
mod vault;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// ionport: replicate Infor M3, LN and Data Lake data through connector plugins.
#[derive(Debug, Parser)]
#[command(name = "ionport", version, about, long_about = None, after_help = cli_docs::ENVIRONMENT)]
struct Cli {
    /// Log filter (e.g. `info`, `ionport_core=debug`); logs go to stderr, coloured only on
    /// a terminal and never with NO_COLOR set.
    // Global: every command runs under the same log subscriber.
    #[arg(
        long,
        global = true,
        env = "IONPORT_LOG",
        default_value = "warn",
        value_parser = cli_docs::log_filter
    )]
    log: String,

    #[command(subcommand)]
    command: Command,
}

/// Where connector plugins are looked for: flattened into the commands that load plugins
/// only, so that a command which loads none refuses `--plugin-path` as a usage error.
#[derive(Debug, Clone, Args)]
pub struct PluginOpts {
    /// Plugin directories or library files, separated like PATH
    /// (default: beside the executable, then the user's data directory).
    // Global within the command it is flattened into: `state show F --plugin-path P`.
    #[arg(long, global = true, env = "IONPORT_PLUGIN_PATH", value_name = "PATHS")]
    plugin_path: Option<std::ffi::OsString>,
    /// Process isolation required: every plugin whose id is not in this comma-separated
    /// list runs in a child process of its own (`""` isolates them all), so that its
    /// crash, hang or runaway memory fails a call, never this process. Libraries are
    /// described through such a process first. See docs/plugin-isolation.md.
    #[arg(
        long,
        global = true,
        env = "IONPORT_ISOLATE_PLUGINS_EXCEPT",
        value_name = "IDS"
    )]
    isolate_plugins_except: Option<String>,
}

impl PluginOpts {
    /// The isolation policy asked for, if any.
    fn isolation(&self) -> Option<ionport_core::plugin::IsolationPolicy> {
        self.isolate_plugins_except
            .as_ref()
            .map(|ids| ionport_core::plugin::IsolationPolicy {
                except: ids
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                limits: Default::default(),
            })
    }

    fn entries(&self) -> Vec<PathBuf> {
        match &self.plugin_path {
            Some(p) if !p.is_empty() => std::env::split_paths(p).collect(),
            _ => ionport_core::plugin::default_search_path(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, show and verify connector plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run a local ION API Gateway (token server, M3, LN, Data Lake) for demos and tests.
    Emulator(ionport_emulator::cli::EmulatorArgs),
    /// Store, list, show and remove connection credentials (encrypted at rest).
    #[command(subcommand, after_help = cli_docs::HOME_AND_VAULT)]
    Vault(vault::VaultCommand),
    /// Test a connection: who the service account is, or a connector's own check.
    #[command(after_help = cli_docs::HOME_AND_VAULT)]
    Check {
        #[command(flatten)]
        args: check::CheckArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Run the pipelines of a pipeline file (TOML) once.
    #[command(after_help = cli_docs::PIPELINES)]
    Run {
        #[command(flatten)]
        args: run::RunArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Run the scheduled pipelines of a pipeline file until stopped.
    #[command(after_help = cli_docs::PIPELINES)]
    Daemon {
        #[command(flatten)]
        args: run::DaemonArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Show or reset the saved states of an environment.
    #[command(after_help = cli_docs::PIPELINES)]
    State {
        #[command(subcommand)]
        command: run::StateCommand,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Run units of work (tasks) of the pipelines registered with a coordinator
    /// (Postgres), beside any number of other workers; see docs/scale-out.md.
    #[command(after_help = cli_docs::PIPELINES)]
    Worker {
        #[command(flatten)]
        args: cluster::WorkerArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Register pipelines with a coordinator and show what its workers run.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Serve the HTTP API (connectors, connections, runs, metrics; OpenAPI at /openapi.json).
    #[command(after_help = cli_docs::PIPELINES)]
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Create, list and revoke the API keys of `ionport serve`.
    #[command(subcommand, after_help = cli_docs::HOME)]
    Apikey(serve::ApikeyCommand),
    /// Create, list and delete the workspaces of `ionport serve` (see docs/http-api.md).
    #[command(subcommand, after_help = cli_docs::HOME)]
    Workspace(serve::WorkspaceCommand),
    /// Run a connector as an Airbyte source: spec, check, discover, read.
    Airbyte {
        #[command(flatten)]
        args: protocols::airbyte::AirbyteArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Run a connector as a Singer tap.
    Singer {
        #[command(flatten)]
        args: protocols::singer::SingerArgs,
        #[command(flatten)]
        plugins: PluginOpts,
    },
    /// Repair a damaged file destination (damaged lines set aside, states reset).
    Repair(repair::RepairArgs),
    /// Print a shell completion script (e.g. `ionport completions bash > /etc/bash_completion.d/ionport`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (ionport.1, ionport-run.1, ...) into a directory; `cargo xtask man`.
    #[command(hide = true)]
    ManPages {
        /// The directory (created when missing).
        dir: PathBuf,
    },
    /// Run one plugin library for a host that isolates it, speaking frames over
    /// stdin/stdout (started by the host; see docs/plugin-isolation.md).
    #[command(hide = true)]
    PluginHost {
        /// The plugin library.
        lib: PathBuf,
        /// The process's address-space limit, MiB (0: none).
        #[arg(long, default_value_t = 0)]
        memory_limit_mib: u64,
    },
}

impl Command {
    /// Whether the command reads or writes ionport's home (vault, API keys, connections).
    fn uses_home(&self) -> bool {
        matches!(
            self,
            Self::Vault(_)
                | Self::Check { .. }
                | Self::Run { .. }
                | Self::Daemon { .. }
                | Self::Worker { .. }
                | Self::Serve { .. }
                | Self::Apikey(_)
                | Self::Workspace(_)
        )
    }

    /// The plugin options of a command that loads plugins.
    fn plugin_opts(&self) -> Option<&PluginOpts> {
        match self {
            Self::Plugins(cmd) => cmd.plugin_opts(),
            Self::Check { plugins, .. }
            | Self::Run { plugins, .. }
            | Self::Daemon { plugins, .. }
            | Self::State { plugins, .. }
            | Self::Worker { plugins, .. }
            | Self::Cluster { plugins, .. }
            | Self::Serve { plugins, .. }
            | Self::Airbyte { plugins, .. }
            | Self::Singer { plugins, .. } => Some(plugins),
            Self::Emulator(_)
            | Self::Vault(_)
            | Self::Apikey(_)
            | Self::Workspace(_)
            | Self::Repair(_)
            | Self::Completions { .. }
            | Self::ManPages { .. }
            | Self::PluginHost { .. } => None,
        }
    }
}

impl Cli {
    /// The plugin search path of the command being run (the default search path for a
    /// command without plugin options, which never asks).
    fn plugin_entries(&self) -> Vec<PathBuf> {
        self.command.plugin_opts().map_or_else(
            ionport_core::plugin::default_search_path,
            PluginOpts::entries,
        )
    }

    /// The plugins of the plugin path, under the command's isolation policy
    /// (`--isolate-plugins-except`).
    fn registry(&self) -> ionport_core::plugin::PluginRegistry {
        ionport_core::plugin::PluginRegistry::load_with(
            &self.plugin_entries(),
            self.command.plugin_opts().and_then(PluginOpts::isolation),
        )
    }

    /// The connector `id` from the plugin path, or an error naming the ones found.
    fn plugin(
        &self,
        id: &str,
    ) -> anyhow::Result<std::sync::Arc<ionport_core::plugin::LoadedPlugin>> {
        let reg = self.registry();
        if let Some(p) = reg.get(id) {
            return Ok(p.clone());
        }
        let mut known: Vec<&str> = reg.plugins().iter().map(|p| p.id()).collect();
        known.sort_unstable();
        anyhow::bail!(
            "no connector '{id}' on the plugin path (found: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    }
}

fn run_emulator(args: ionport_emulator::cli::EmulatorArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ionport_emulator::cli::run(args))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // A connector run under a multi-call name: `ionport-singer-<connector>` is
    // `ionport singer <connector>`; Airbyte runs a source as `SOURCE spec|check|discover|
    // read ...` under `ionport-airbyte-<connector>` or with the environment naming it (see
    // `protocols::airbyte::standard_argv`).
    let args = protocols::singer::multi_call(std::env::args_os().collect());
    let cli = Cli::parse_from(protocols::airbyte::standard_argv(
        args,
        std::env::var_os(protocols::airbyte::CONNECTOR_ENV),
    ));
    // Parsed once already by `cli_docs::log_filter`, which refuses an invalid filter.
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Logs written to files or pipes (Airbyte's and Meltano's logs) stay plain text.
        .with_ansi(cli_docs::stderr_colour())
        .with_writer(std::io::stderr)
        .init();
    // A home that cannot be one is a configuration error, like an invalid pipeline file.
    if cli.command.uses_home()
        && let Err(e) = vault::check_home()
    {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match &cli.command {
        Command::Plugins(cmd) => plugins::run(&cli, cmd),
        Command::Emulator(args) => run_emulator(args.clone()),
        Command::Vault(cmd) => vault::run(cmd),
        Command::Check { args, .. } => check::run(&cli, args),
        Command::Run { args, .. } => run::run_cmd(&cli, args),
        Command::Daemon { args, .. } => run::daemon_cmd(&cli, args),
        Command::State { command, .. } => run::state_cmd(&cli, command),
        Command::Worker { args, .. } => cluster::worker_cmd(&cli, args),
        Command::Cluster { command, .. } => cluster::cluster_cmd(&cli, command),
        Command::Serve { args, .. } => serve::serve_cmd(&cli, args),
        Command::Apikey(cmd) => serve::apikey_cmd(&cli, cmd),
        Command::Workspace(cmd) => serve::workspace_cmd(&cli, cmd),
        Command::Airbyte { args, .. } => protocols::airbyte::run(&cli, args),
        Command::Singer { args, .. } => protocols::singer::run(&cli, args),
        Command::Repair(args) => repair::run(args),
        Command::Completions { shell } => cli_docs::completions(*shell),
        Command::ManPages { dir } => cli_docs::man_pages(dir),
        Command::PluginHost {
            lib,
            memory_limit_mib,
        } => match ionport_core::plugin::isolate::serve_plugin_host(lib, *memory_limit_mib) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
