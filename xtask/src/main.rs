//! `cargo xtask`: the project's tasks, in Rust so they run wherever cargo does.
//!
//! - `cargo xtask test`: format check, build of every crate (the plugin cdylibs too),
//!   clippy with `-D warnings`, docs of the library crates (`-D warnings`), the `schemas/`
//!   freshness check, then every test (doctests included).
//! - `cargo xtask demo`: builds, then runs the main job against the embedded emulator.
//! - `cargo xtask schemas [--check]`: writes (or verifies) the generated JSON Schemas.
//! - `cargo xtask man [--out DIR]`: the man pages of `ionport` (`clap_mangen`, through
//!   the built binary), default `target/man`.
//! - `cargo xtask bench`: builds release plugins and runs the benchmarks (`BENCH_*`
//!   variables narrow or widen the pipeline bench: see `docs/performance.md`);
//!   `cargo xtask bench isolation [--records N]`: in-process vs process isolation only
//!   (docs/plugin-isolation.md).

mod demo;
mod postgres;
mod schemas;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Format check, build, clippy -D warnings, schemas check, all tests.
    Test {
        /// Skip fmt and clippy (for a quick local loop).
        #[arg(long)]
        quick: bool,
    },
    /// Build, then run the demo against the embedded emulator.
    Demo {
        /// Print only the run summaries.
        #[arg(long)]
        quiet: bool,
        /// Use the binaries already built (for the test suite).
        #[arg(long)]
        no_build: bool,
        /// Where the demo writes (default target/demo; recreated).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// The directory of the built `ionport` and plugins (default target/debug).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
    /// Write the generated JSON Schemas into schemas/ (or verify them with --check).
    Schemas {
        /// Fail when schemas/ is not current instead of writing it.
        #[arg(long)]
        check: bool,
    },
    /// Build release plugins and run the benchmarks; prints figures.
    Bench {
        /// Only this benchmark: `isolation` (M3 `customer_table` in process vs in a
        /// plugin host process). Default: every benchmark.
        which: Option<BenchName>,
        /// Records for the isolation benchmark (default 1,000,000), e.g. 100000 for a
        /// quick run.
        #[arg(long)]
        records: Option<u64>,
    },
    /// Build `ionport` and write its man pages (ionport.1, ionport-run.1, ...).
    Man {
        /// Where to write them (default target/man).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A benchmark that can be run alone.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchName {
    /// In-process vs process isolation (tests/benches/isolation.rs).
    Isolation,
}

/// The plugin libraries the workspace builds (package names).
pub const PLUGIN_PACKAGES: &[&str] = &[
    "ionport-connector-m3",
    "ionport-connector-ln",
    "ionport-connector-datalake",
    "ionport-connector-ionapi",
    "ionport-test-plugin",
    "ionport-test-plugin-incompatible",
    "ionport-test-plugin-broken",
    "ionport-test-plugin-abi-1-0",
    "ionport-test-plugin-needs-capability",
    "ionport-test-plugin-faults",
    "ionport-test-plugin-abort-on-load",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn build_plugins(release: bool) -> Result<()> {
    let mut args = vec!["build", "--quiet"];
    if release {
        args.push("--release");
    }
    args.extend(["-p", "ionport"]);
    for p in PLUGIN_PACKAGES {
        args.extend(["-p", p]);
    }
    cargo(&args)
}

fn test(quick: bool) -> Result<()> {
    postgres::ensure_postgres()?;
    if !quick {
        cargo(&["fmt", "--all", "--check"])?;
    }
    cargo(&["build", "--workspace", "--all-targets"])?;
    reduced_builds(quick)?;
    if !quick {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])?;
        // The library crates' docs: every intra-doc link resolves (their examples run
        // as doctests in `cargo test`).
        cargo_env(
            &[
                "doc",
                "--no-deps",
                "-p",
                "ionport-core",
                "-p",
                "ionport-plugin-sdk",
                "-p",
                "ionport-infor-mi",
                "-p",
                "ionport-infor-odata",
                "-p",
                "ionport-plugin-abi",
                "-p",
                "ionport-cluster",
            ],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )?;
    }
    schemas::run(&root(), &target_dir().join("debug"), true)?;
    cargo(&["test", "--workspace", "--no-fail-fast"])?;
    // core's unit tests once more with every destination left out: the only build in
    // which "this build has no … destination" can happen.
    cargo(&[
        "test",
        "-p",
        "ionport-core",
        "--no-default-features",
        "--lib",
    ])?;
    eprintln!("xtask test: all steps passed");
    Ok(())
}

/// The destinations are cargo features of `ionport-core`, forwarded by `ionport`: the
/// workspace build turns them all on, so these builds are the only ones that see a
/// feature off. Checked, not built (cheap); with clippy's `-D warnings` outside `--quick`,
/// so code only one destination uses is gated with it.
const REDUCED_BUILDS: &[&[&str]] = &[
    &["-p", "ionport-core", "--no-default-features"],
    &[
        "-p",
        "ionport",
        "--no-default-features",
        "--features",
        "sqlite",
    ],
];

fn reduced_builds(quick: bool) -> Result<()> {
    for features in REDUCED_BUILDS {
        let mut args = vec![if quick { "check" } else { "clippy" }];
        args.extend_from_slice(features);
        if !quick {
            args.extend(["--", "-D", "warnings"]);
        }
        cargo(&args)?;
    }
    Ok(())
}

fn demo(
    quiet: bool,
    no_build: bool,
    work_dir: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
) -> Result<()> {
    if !no_build {
        build_plugins(false)?;
    }
    let bin_dir = bin_dir.unwrap_or_else(|| target_dir().join("debug"));
    let work = work_dir.unwrap_or_else(|| demo::work_dir(&target_dir()));
    demo::run(&bin_dir, &work, quiet)
}

fn bench(which: Option<BenchName>, records: Option<u64>) -> Result<()> {
    if let Some(BenchName::Isolation) = which {
        build_plugins(true)?;
        return isolation_bench(records);
    }
    // The Postgres destination rows need a server; the bench skips them (loudly) without.
    postgres::ensure_postgres()?;
    build_plugins(true)?;
    cargo(&["bench", "-p", "ionport-tests", "--bench", "abi"])?;
    // Scale-out (issue #16): 1 to 3 workers on the machine's Postgres, 150 ms per call.
    cargo(&["bench", "-p", "ionport-tests", "--bench", "cluster"])?;
    // The data path (issue #11): every task into every destination, verified, beside the
    // server's ceiling, on loopback and at 150 ms with the quota. Its BENCH_* variables
    // pass through (see tests/benches/pipeline.rs and docs/performance.md); the defaults
    // take about 15 minutes on two cores.
    cargo(&["bench", "-p", "ionport-tests", "--bench", "pipeline"])?;
    isolation_bench(records)
}

/// Process isolation's cost: M3 `customer_table` in process vs in a plugin host
/// (`BENCH_ISOLATION_RECORDS`, set by `--records`).
fn isolation_bench(records: Option<u64>) -> Result<()> {
    let n = records.map(|n| n.to_string());
    let env: Vec<(&str, &str)> = n
        .as_deref()
        .map(|n| ("BENCH_ISOLATION_RECORDS", n))
        .into_iter()
        .collect();
    cargo_env(
        &["bench", "-p", "ionport-tests", "--bench", "isolation"],
        &env,
    )
}

/// The pages come from the binary's own clap definition (a hidden `man-pages`
/// subcommand), as `schemas` takes the OpenAPI document from `serve --print-openapi`.
fn man(out: Option<PathBuf>) -> Result<()> {
    cargo(&["build", "--quiet", "-p", "ionport"])?;
    let out = out.unwrap_or_else(|| target_dir().join("man"));
    let bin = target_dir()
        .join("debug")
        .join(format!("ionport{}", std::env::consts::EXE_SUFFIX));
    let status = Command::new(&bin)
        .arg("man-pages")
        .arg(&out)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    if !status.success() {
        bail!("{} man-pages failed ({status})", bin.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.task {
        Task::Test { quick } => test(quick),
        Task::Demo {
            quiet,
            no_build,
            work_dir,
            bin_dir,
        } => demo(quiet, no_build, work_dir, bin_dir),
        Task::Schemas { check } => {
            build_plugins(false)?;
            schemas::run(&root(), &target_dir().join("debug"), check)
        }
        Task::Bench { which, records } => bench(which, records),
        Task::Man { out } => man(out),
    }
}
