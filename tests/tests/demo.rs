//! The demo (`cargo xtask demo`) runs end to end from the built binaries: emulator,
//! vault import, a pipeline file with every predefined task of the three connectors,
//! a full run into SQLite, changes in the emulator, an incremental run, and the web
//! console started with the demo's connections (`IONPORT_DEMO_CONSOLE=exit`: it prints
//! its URL and key, then stops instead of waiting for Ctrl-C).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use ionport_tests::profile_dir;

#[test]
fn the_demo_runs_end_to_end() {
    let xtask = profile_dir().join(format!("xtask{}", std::env::consts::EXE_SUFFIX));
    assert!(
        xtask.is_file(),
        "{} is missing: build the workspace first",
        xtask.display()
    );
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(&xtask)
        .args(["demo", "--no-build", "--quiet", "--work-dir"])
        .arg(work.path().join("demo"))
        .arg("--bin-dir")
        .arg(profile_dir())
        .env_remove("IONPORT_PLUGIN_PATH")
        .env("IONPORT_DEMO_CONSOLE", "exit")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    // Two runs, each with a summary line for all 17 tasks, all succeeded.
    let summaries: Vec<&str> = stdout.lines().filter(|l| l.contains("task(s),")).collect();
    assert_eq!(summaries.len(), 2, "{stdout}");
    assert!(
        summaries
            .iter()
            .all(|l| l.starts_with("17 task(s)") && l.ends_with("all succeeded")),
        "{stdout}"
    );
    // The second run was incremental: the M3 customer table read only what changed.
    let second = stdout.split("task(s),").nth(1).unwrap_or("");
    let line = second
        .lines()
        .find(|l| l.starts_with("m3/customer_table"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let records: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        records > 0 && records < 100,
        "incremental second run read {records}: {line}"
    );
    for db in ["m3.db", "ln.db", "datalake.db"] {
        assert!(work.path().join("demo").join(db).is_file(), "{db}");
    }
    // It ends with the console's URL and a key, the connections stored.
    let tail: Vec<&str> = stdout.lines().rev().take(4).collect();
    assert!(
        tail.iter().any(|l| l.starts_with("open http://127.0.0.1:")
            && l.ends_with("/console and sign in with this API key (made for the demo):")),
        "{stdout}"
    );
    assert!(
        tail.iter().any(|l| l.trim_start().starts_with("ionp_")),
        "{stdout}"
    );
    let store = std::fs::read_to_string(work.path().join("demo/home/connections.json")).unwrap();
    for name in ["m3_demo", "ln_demo", "datalake_demo"] {
        assert!(store.contains(&format!("\"{name}\"")), "{store}");
    }
}
