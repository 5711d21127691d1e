//! `ionport-emulator`: a local Infor ION API Gateway (see the library docs).

use clap::Parser;

/// A local Infor ION API Gateway: token server, M3, LN and Data Lake APIs over generated
/// data, with fault injection. Prints its base URL on the first line of stdout.
#[derive(Debug, Parser)]
#[command(name = "ionport-emulator", version)]
struct Cli {
    #[command(flatten)]
    args: ionport_emulator::cli::EmulatorArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IONPORT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match ionport_emulator::cli::run(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ionport-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
