//! Support for ionport's black-box tests: where the built artifacts are.
//!
//! The tests use what `cargo build --workspace` produced (`cargo xtask test` builds it
//! first): the plugin cdylibs and the `ionport` binary, from the same target directory
//! as the test binary itself.

pub mod browser;
pub mod cluster;
pub mod counting;
pub mod destinations;
pub mod emulated;
pub mod live;
pub mod protocol_fixture;
pub mod python;
pub mod receiver;
pub mod recorder;
pub mod serve_process;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The profile directory (`target/debug` or `target/release`) of the running test or
/// bench binary.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The library file of the plugin package `crate_name` (underscored), e.g.
/// `ionport_connector_m3`. Panics with instructions when it was not built.
pub fn plugin_lib(crate_name: &str) -> PathBuf {
    let path = profile_dir().join(format!(
        "{}{crate_name}.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ));
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which `cargo xtask test` runs)",
        path.display()
    );
    path
}

/// The three shipped connectors.
pub fn connector_libs() -> Vec<PathBuf> {
    [
        "ionport_connector_m3",
        "ionport_connector_ln",
        "ionport_connector_datalake",
    ]
    .iter()
    .map(|c| plugin_lib(c))
    .collect()
}

/// The `ionport` binary.
pub fn ionport_bin() -> PathBuf {
    let path = profile_dir().join(format!("ionport{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first",
        path.display()
    );
    path
}

/// Runs `ionport` with `args`, plugins from `plugin_path` only.
pub fn ionport(plugin_path: &[PathBuf], args: &[&str]) -> Output {
    let joined = std::env::join_paths(plugin_path).expect("plugin paths join");
    Command::new(ionport_bin())
        .args(args)
        .env("IONPORT_PLUGIN_PATH", joined)
        .env_remove("IONPORT_LOG")
        .output()
        .expect("ionport runs")
}

/// A shared library that is not an ionport plugin: one of the proc-macro libraries
/// cargo built for the workspace.
pub fn non_plugin_library() -> PathBuf {
    let deps = profile_dir().join("deps");
    std::fs::read_dir(&deps)
        .expect("target/<profile>/deps exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("libserde_derive-") && name.ends_with(std::env::consts::DLL_EXTENSION)
        })
        .expect("serde_derive's proc-macro library is in target/<profile>/deps")
}

/// The connection form's credentials block for an `.ionapi` file's JSON: Service URL
/// `iu/ti`, Token URL `pu + ot`, Username `saak`, Password `sask`, Client ID/Secret.
pub fn form_credentials(ionapi: &serde_json::Value) -> serde_json::Value {
    let s = |k: &str| ionapi[k].as_str().unwrap_or_default().to_string();
    serde_json::json!({
        "service_url": format!("{}/{}", s("iu"), s("ti")),
        "token_url": format!("{}{}", s("pu"), s("ot")),
        "username": s("saak"),
        "password": s("sask"),
        "client_id": s("ci"),
        "client_secret": s("cs"),
    })
}

/// The reads a log shows ended with success: `(task, records)` of every `read finished`
/// line that core's one read path logs under the `ionport::read` target (a process run
/// with `IONPORT_LOG=ionport::read=debug`, or any filter that includes it).
pub fn finished_reads(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter(|l| l.contains("ionport::read") && l.contains("read finished"))
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
            };
            Some((field("task")?, field("records")?.parse().ok()?))
        })
        .collect()
}

/// A finished process's exit status, stdout and stderr, labelled: for assertion messages
/// and for searching everything a command said.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `ionport run --quiet FILE` with the built plugins and a home beside the file; `log` is
/// the `IONPORT_LOG` filter (`None` leaves logging at its default).
pub fn run_pipeline(file: &Path, log: Option<&str>) -> Output {
    let mut cmd = Command::new(ionport_bin());
    cmd.args(["run", "--quiet"])
        .arg(file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env(
            "IONPORT_HOME",
            file.parent().unwrap_or(Path::new(".")).join("home"),
        );
    match log {
        Some(filter) => cmd.env("IONPORT_LOG", filter),
        None => cmd.env_remove("IONPORT_LOG"),
    };
    cmd.output().expect("ionport runs")
}
