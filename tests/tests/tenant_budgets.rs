#![allow(clippy::unwrap_used)]
//! The tenant's daily budget through `ionport run`, across processes: two runs share one
//! home, the second stops where the budget ends, and the emulator confirms nothing more
//! was sent. The run summary (table and `--summary` JSON) shows what was used and what is
//! left.

use std::path::Path;
use std::process::{Command, Output};

use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, profile_dir};
use serde_json::Value;

fn pipeline(dir: &Path, ionapi: &Path, budget: u64) -> std::path::PathBuf {
    pipeline_with(dir, ionapi, &format!("daily_budget = {budget}"))
}

/// The pipeline file with `limits` (TOML lines) on its connection.
fn pipeline_with(dir: &Path, ionapi: &Path, limits: &str) -> std::path::PathBuf {
    let file = dir.join("pipelines.toml");
    let db = dir.join("out.db");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "sqlite", path = "{}" }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{}" }}
settings = {{ company = 100 }}
quota = "none"
{limits}

[pipelines.m3]
connection = "m3"
environment = "out"
tasks = ["customers"]
page_size = 20
pages_in_flight = 1
"#,
            db.display(),
            ionapi.display()
        ),
    )
    .unwrap();
    file
}

fn run(dir: &Path, file: &Path) -> (Output, Value) {
    let summary = dir.join("summary.json");
    let out = Command::new(ionport_bin())
        .args(["run", "--full-refresh", "--summary"])
        .arg(&summary)
        .arg(file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", dir.join("home"))
        .output()
        .unwrap();
    let json = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    (out, json)
}

/// API requests the emulator answered (token calls are not API executions).
fn api_requests(emu: &Emulated) -> u64 {
    let c = emu.control("GET", "counters", None);
    ["m3", "ln", "datalake", "users", "other"]
        .iter()
        .map(|k| c["requests"][k].as_u64().unwrap())
        .sum()
}

#[test]
fn a_second_process_stops_where_the_daily_budget_ends() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 200,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();

    let file = pipeline(dir.path(), &ionapi, 1_000);
    let (out, first) = run(dir.path(), &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let used = api_requests(&emu);
    assert!(used > 3, "the first run reads several pages: {used}");
    let budget = &first["budgets"][0];
    assert_eq!(
        budget["tenant"],
        emu.emu.config().tenant.as_str(),
        "{first}"
    );
    assert_eq!(budget["used"].as_u64(), Some(used), "{first}");
    assert_eq!(budget["left"].as_u64(), Some(1_000 - used), "{first}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(": {used} of 1000 used, {} left", 1000 - used)),
        "{stdout}"
    );

    // The second run may send two more requests today, then stops with the reason.
    let file = pipeline(dir.path(), &ionapi, used + 2);
    let (out, second) = run(dir.path(), &file);
    assert!(!out.status.success(), "the second run fails: {second}");
    assert_eq!(
        api_requests(&emu),
        used + 2,
        "nothing past the budget was sent"
    );
    let error = second["tasks"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("daily budget of API requests of tenant") && error.contains("is spent"),
        "{second}"
    );
    assert_eq!(second["budgets"][0]["left"].as_u64(), Some(0), "{second}");
}

#[test]
fn a_second_process_is_refused_its_authentication_once_the_days_are_spent() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 50,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    // Each `ionport run` of an `.ionapi` file authenticates once (its token is its own).
    let file = pipeline_with(dir.path(), &ionapi, "auth_budget = { per_day = 1 }");
    let (out, _) = run(dir.path(), &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwords = || {
        emu.control("GET", "counters", None)["token_requests"]["password"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(passwords(), 1);
    let (out, second) = run(dir.path(), &file);
    assert!(!out.status.success(), "the second run fails: {second}");
    assert_eq!(passwords(), 1, "the second authentication was not sent");
    let error = second["tasks"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("daily budget of service-account authentications")
            && error.contains("auth_budget"),
        "{second}"
    );
}
