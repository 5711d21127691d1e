//! `ionport singer`: a connector as a Singer tap (placeholder until it lands).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::Cli;

#[derive(Debug, Clone, Args)]
pub struct SingerArgs {}

pub fn run(_cli: &Cli, _args: &SingerArgs) -> Result<ExitCode> {
    bail!("ionport singer is not built yet")
}
