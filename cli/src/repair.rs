//! `ionport repair DESTINATION`: repairs a damaged file destination, as the error that
//! reports the damage says (see `docs/destinations.md`, "Damage and repair").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use ionport_core::destination::{self, DestinationConfig};

/// Arguments of `ionport repair`.
#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    /// The destination as errors name it: `jsonl:<dir>`, `parquet:<dir>` or `sqlite:<file>`.
    #[arg(value_name = "KIND:PATH")]
    pub destination: String,
}

fn parse(destination: &str) -> Result<DestinationConfig> {
    let Some((kind, path)) = destination.split_once(':') else {
        bail!("`{destination}`: expected KIND:PATH, e.g. jsonl:data/jsonl");
    };
    let path = PathBuf::from(path);
    Ok(match kind {
        "jsonl" => DestinationConfig::Jsonl { path },
        "parquet" => DestinationConfig::Parquet { path },
        "sqlite" => DestinationConfig::Sqlite { path },
        other => bail!(
            "`{destination}`: unknown kind `{other}`; expected jsonl, parquet or sqlite (Postgres commits in transactions and has nothing to repair)"
        ),
    })
}

/// Runs `ionport repair`.
pub fn run(args: &RepairArgs) -> Result<ExitCode> {
    let config = parse(&args.destination)?;
    if let DestinationConfig::Jsonl { path } | DestinationConfig::Parquet { path } = &config
        && !path.join("_ionport").is_dir()
    {
        bail!(
            "{}: not a destination directory (no _ionport/ in it)",
            path.display()
        );
    }
    let report = destination::repair(&config)?;
    if report.streams.is_empty() {
        println!("{}: nothing damaged", args.destination);
    }
    for s in &report.streams {
        println!(
            "stream {}: set aside {} damaged line(s) of {} into {}, kept {}; its state was reset, so its next run reads it again in full",
            s.stream,
            s.damaged,
            s.file.display(),
            s.set_aside.display(),
            s.kept
        );
    }
    Ok(ExitCode::SUCCESS)
}
