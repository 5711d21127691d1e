//! The pipeline commands as a user drives them: Ctrl-C during `ionport run`, the
//! `ionport daemon` schedules (an interval and a cron expression), and `ionport state show|reset`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, output_text, profile_dir};

fn setup(extra: &str, scale: u64) -> (Emulated, tempfile::TempDir, PathBuf) {
    let emu = Emulated::start(EmulatorConfig {
        scale,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "sqlite", path = "out.db" }}

[connections.m3]
connector = "infor-m3"
credentials = {{ ionapi = "{}" }}
settings = {{ company = 100 }}
quota = "none"

[pipelines.m3]
connection = "m3"
environment = "out"
tasks = ["customers"]
page_size = 20
{extra}
"#,
            ionapi.display()
        ),
    )
    .unwrap();
    (emu, dir, file)
}

fn ionport(file: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(ionport_bin());
    c.args(args)
        .arg(file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", file.parent().unwrap().join("home"));
    c
}

fn sigint(pid: u32) {
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("select count(*) from customers", [], |r| r.get(0))
        .unwrap()
}

/// Waits (at most a minute) until the run has committed its first page into `db`.
fn wait_for_first_commit(db: &Path) {
    let start = Instant::now();
    while !(db.is_file()
        && rusqlite::Connection::open(db)
            .ok()
            .and_then(|c| {
                c.query_row("select count(*) from customers", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .unwrap_or(0)
            > 0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no page was committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_stops_between_pages_and_a_rerun_completes_exactly_once() {
    let scale = 4000;
    let (emu, dir, file) = setup("", scale);
    // M3 answers take a little while, so that the run is still going when Ctrl-C comes.
    emu.control(
        "POST",
        "faults",
        Some(serde_json::json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 5 }])),
    );
    let child = ionport(&file, &["run", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first committed page, then Ctrl-C.
    let db = dir.path().join("out.db");
    wait_for_first_commit(&db);
    sigint(child.id());
    let out = child.wait_with_output().unwrap();
    let all = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a cancelled run is not a success: {all}"
    );
    assert!(all.contains("cancelling"), "{all}");
    let partial = rows(&db);
    assert!(
        partial > 0 && partial < scale as i64,
        "stopped part-way: {partial}"
    );
    // The rerun resumes from the last checkpoint and completes.
    let out = ionport(&file, &["run", "--quiet"]).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(rows(&db), scale as i64);
}

#[test]
fn the_daemon_runs_scheduled_pipelines_until_interrupted() {
    use std::io::BufRead;
    let (_emu, dir, file) = setup("schedule = \"every 1s\"", 200);
    let mut child = ionport(&file, &["daemon", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for two scheduled runs (their summaries), however long the machine takes.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("task(s),") && tx.send(line).is_err() {
                break;
            }
        }
    });
    for n in 1..=2 {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("scheduled run {n} did not happen"));
        assert!(line.contains("all succeeded"), "{line}");
    }
    sigint(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "the daemon stops cleanly on Ctrl-C");
    assert_eq!(rows(&dir.path().join("out.db")), 200);
    // Without any scheduled pipeline the daemon says so.
    let (_emu2, _dir2, plain) = setup("", 10);
    let out = ionport(&plain, &["daemon"]).output().unwrap();
    assert!(
        !out.status.success() && output_text(&out).contains("no pipeline with a `schedule`"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn the_daemon_runs_a_cron_schedule_at_its_next_match_in_utc() {
    use std::io::BufRead;
    use std::time::SystemTime;
    let (_emu, dir, file) = setup("schedule = \"cron: * * * * *\"", 50);
    let mut child = ionport(&file, &["daemon", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if (line.contains("next run at") || line.contains("task(s),")) && tx.send(line).is_err()
            {
                break;
            }
        }
    });
    let recv = || rx.recv_timeout(Duration::from_secs(180)).unwrap();
    // `m3: next run at 2026-12-07T11:43:00Z (cron: * * * * *)`
    let announced = |line: &str| {
        let at = line
            .strip_prefix("m3: next run at ")
            .and_then(|r| r.strip_suffix(" (cron: * * * * *)"))
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(at.ends_with(":00Z"), "not on a minute: {at}");
        humantime::parse_rfc3339(at).unwrap()
    };
    let first = announced(&recv());
    let ahead = first.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(ahead <= Duration::from_secs(60), "{ahead:?}");
    // Not at start, as an interval would: at the minute.
    let summary = recv();
    assert!(SystemTime::now() >= first, "ran before its time: {summary}");
    assert!(summary.contains("all succeeded"), "{summary}");
    let second = announced(&recv());
    assert_eq!(
        second.duration_since(first).ok(),
        Some(Duration::from_secs(60))
    );
    sigint(child.id());
    assert!(child.wait().unwrap().success(), "stops cleanly on Ctrl-C");
    assert_eq!(rows(&dir.path().join("out.db")), 50);
}

#[test]
fn state_show_and_reset() {
    let (_emu, dir, file) = setup("", 120);
    assert!(
        ionport(&file, &["run", "--quiet"])
            .status()
            .unwrap()
            .success()
    );
    let out = ionport(&file, &["state", "show"]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        // A finished read of a task without a cursor: the stream state `{}` (M3 on the
        // SDK's stream API; it was `{"complete": true}`).
        out.status.success() && shown.contains("customers") && shown.contains("{}"),
        "{shown}"
    );
    let out = ionport(&file, &["state", "reset", "--pipeline", "m3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let out = ionport(&file, &["state", "show"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no saved state"),
        "{}",
        output_text(&out)
    );
    assert_eq!(
        rows(&dir.path().join("out.db")),
        120,
        "a reset keeps the data"
    );
    // An invalid file exits with 2 and runs nothing.
    std::fs::write(&file, "[pipelines.x]\nconnection = 1\n").unwrap();
    let out = ionport(&file, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

#[test]
fn a_task_that_fails_part_way_reports_what_it_committed() {
    let scale = 4000;
    let (emu, dir, file) = setup("", scale);
    emu.control(
        "POST",
        "faults",
        Some(serde_json::json!([{ "kind": "slow", "rate": 1.0, "api": "m3", "delay_ms": 5 }])),
    );
    let child = ionport(&file, &["run", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let db = dir.path().join("out.db");
    wait_for_first_commit(&db);
    // From now on M3 refuses (PUT replaces the slow rule): 403 is never retried, so
    // the task fails part-way.
    emu.control(
        "PUT",
        "faults",
        Some(serde_json::json!([{ "kind": "403", "rate": 1.0, "api": "m3" }])),
    );
    let out = child.wait_with_output().unwrap();
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let committed = rows(&db);
    assert!(
        committed > 0 && committed < scale as i64,
        "{committed}: {all}"
    );
    let row = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("m3/customers"))
        .unwrap_or_else(|| panic!("no summary row: {all}"))
        .to_string();
    let records: i64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(records, committed, "{row}");
    assert!(
        row.contains(&format!("FAILED after committing {committed} records")),
        "{row}"
    );
}
