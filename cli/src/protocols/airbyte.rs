//! `ionport airbyte`: a connector as an Airbyte source (placeholder until it lands).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::Cli;

#[derive(Debug, Clone, Args)]
pub struct AirbyteArgs {}

pub fn run(_cli: &Cli, _args: &AirbyteArgs) -> Result<ExitCode> {
    bail!("ionport airbyte is not built yet")
}
