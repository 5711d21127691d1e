//! The command line of the emulator: [`EmulatorArgs`] (a `clap::Args` block that the
//! `ionport emulator` subcommand and the `ionport-emulator` binary share) and [`run`].

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{self, EmulatorConfig, EmulatorCredentials, Quota};
use crate::error::EmulatorError;
use crate::server::Emulator;

/// Options of `ionport emulator` / `ionport-emulator`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// TCP port on 127.0.0.1; 0 picks a free one (printed on the first line of stdout).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Tenant id.
    #[arg(long, default_value = config::DEFAULT_TENANT)]
    pub tenant: String,
    /// Seed of the generated data.
    #[arg(long, default_value_t = config::DEFAULT_SEED)]
    pub seed: u64,
    /// Number of M3 customers of company 100 (other tables are sized from it).
    #[arg(long, default_value_t = config::DEFAULT_SCALE)]
    pub scale: u64,
    /// Access-token lifetime: seconds, or with a unit (500ms, 30s, 2m, 1h).
    #[arg(long, default_value = "7200", value_parser = config::parse_duration)]
    pub token_ttl: Duration,
    /// Do not issue refresh tokens ("Issue Refresh Token" off).
    #[arg(long)]
    pub no_refresh_tokens: bool,
    /// Refuse the password grant (an app whose grant was disabled).
    #[arg(long)]
    pub no_password_grant: bool,
    /// Per-token quota as N/SECONDS, e.g. 1000/60 (the real default). No quota when absent.
    #[arg(long, value_parser = clap::value_parser!(Quota))]
    pub quota: Option<Quota>,
    /// Count the quota for the whole tenant, not per access token.
    #[arg(long)]
    pub quota_per_tenant: bool,
    /// Write an .ionapi file for this tenant (iu/pu pointing at the emulator).
    #[arg(long, value_name = "FILE")]
    pub write_ionapi: Option<PathBuf>,
    /// How long Compass jobs stay RUNNING: seconds or with a unit.
    #[arg(long, default_value = "500ms", value_parser = config::parse_duration)]
    pub job_run_time: Duration,
    /// Gateway target timeout (answered with 504): seconds or with a unit.
    #[arg(long, default_value = "60", value_parser = config::parse_duration)]
    pub gateway_timeout: Duration,
    /// Time every API call takes, like a real gateway's round trip (e.g. 150ms).
    #[arg(long, default_value = "0", value_parser = config::parse_duration)]
    pub latency: Duration,
    /// Up to this much more latency per call, drawn uniformly (e.g. 50ms).
    #[arg(long, default_value = "0", value_parser = config::parse_duration)]
    pub latency_jitter: Duration,
    /// OAuth client id to accept (default: the demo value for the tenant).
    #[arg(long, env = "IONPORT_EMULATOR_CLIENT_ID")]
    pub client_id: Option<String>,
    /// OAuth client secret to accept (default: the demo value).
    #[arg(long, env = "IONPORT_EMULATOR_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Service-account access key to accept (default: the demo value for the tenant).
    #[arg(long, env = "IONPORT_EMULATOR_SAAK")]
    pub saak: Option<String>,
    /// Service-account secret key to accept (default: the demo value).
    #[arg(long, env = "IONPORT_EMULATOR_SASK", hide_env_values = true)]
    pub sask: Option<String>,
}

impl Default for EmulatorArgs {
    fn default() -> Self {
        Self {
            port: 0,
            tenant: config::DEFAULT_TENANT.into(),
            seed: config::DEFAULT_SEED,
            scale: config::DEFAULT_SCALE,
            token_ttl: Duration::from_secs(7200),
            no_refresh_tokens: false,
            no_password_grant: false,
            quota: None,
            quota_per_tenant: false,
            write_ionapi: None,
            job_run_time: Duration::from_millis(500),
            gateway_timeout: Duration::from_secs(60),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            client_id: None,
            client_secret: None,
            saak: None,
            sask: None,
        }
    }
}

impl EmulatorArgs {
    /// The configuration these options describe.
    #[must_use]
    pub fn to_config(&self) -> EmulatorConfig {
        let demo = EmulatorCredentials::demo(&self.tenant);
        EmulatorConfig {
            tenant: self.tenant.clone(),
            port: self.port,
            seed: self.seed,
            scale: self.scale,
            token_ttl: self.token_ttl,
            issue_refresh_tokens: !self.no_refresh_tokens,
            password_grant: !self.no_password_grant,
            quota: self.quota,
            quota_per_tenant: self.quota_per_tenant,
            credentials: EmulatorCredentials {
                client_id: self.client_id.clone().unwrap_or(demo.client_id),
                client_secret: self.client_secret.clone().unwrap_or(demo.client_secret),
                saak: self.saak.clone().unwrap_or(demo.saak),
                sask: self.sask.clone().unwrap_or(demo.sask),
            },
            job_run_time: self.job_run_time,
            gateway_timeout: self.gateway_timeout,
            latency: self.latency,
            latency_jitter: self.latency_jitter,
            ..EmulatorConfig::default()
        }
    }
}

/// Starts the emulator, prints its base URL as the first line of stdout (then the tenant
/// and the `.ionapi` path when written), and serves until Ctrl-C.
pub async fn run(args: EmulatorArgs) -> Result<(), EmulatorError> {
    let emu = Emulator::start(args.to_config()).await?;
    println!("{}", emu.base_url());
    if let Some(path) = &args.write_ionapi {
        emu.write_ionapi(path)?;
        println!("wrote {}", path.display());
    }
    println!(
        "tenant {} on port {} (Ctrl-C to stop)",
        emu.tenant(),
        emu.port()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn latency_and_jitter_reach_the_config() {
        let cli = Cli::try_parse_from(["emu", "--latency", "150ms", "--latency-jitter", "50ms"])
            .expect("the options parse");
        let c = cli.args.to_config();
        assert_eq!(c.latency, Duration::from_millis(150));
        assert_eq!(c.latency_jitter, Duration::from_millis(50));
        let c = Cli::try_parse_from(["emu"])
            .expect("no options")
            .args
            .to_config();
        assert_eq!(
            (c.latency, c.latency_jitter),
            (Duration::ZERO, Duration::ZERO)
        );
    }
}
