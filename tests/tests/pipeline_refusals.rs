//! Pipeline files that used to pass validation and surprise later, refused by `ionport
//! run` before anything runs: exit status 2, the file, line and column of the value at
//! fault, what was expected — and no destination written.
//!
//! - `company = 100.0`: a float where the connector's form says `"type": "integer"` (the
//!   JSON Schema standard would accept it; the connector's `u16` would not, at run time).
//! - a task listed twice in one pipeline;
//! - a schedule whose interval overflows (it used to wrap around in release builds);
//! - a cron schedule that is not five fields, or names no real time.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use ionport_core::pipeline::schedule::{MAX_SCHEDULE, Schedule, parse_schedule};
use ionport_tests::{ionport_bin, profile_dir};

const VALID: &str = r#"[environments.out]
destination = { type = "sqlite", path = "out.db" }

[connections.m3]
connector = "infor-m3"
credentials = { vault = "prod" }
settings = { company = 100, division = "AAA" }

[pipelines.m3]
connection = "m3"
environment = "out"
tasks = ["customers", "items"]
schedule = "every 1h"
"#;

/// `ionport run` on `VALID` with `from` replaced by `to`: (exit code, stderr, the file's
/// text, whether the destination exists afterwards).
fn run_broken(from: &str, to: &str) -> (Option<i32>, String, String, bool) {
    assert!(VALID.contains(from), "{from}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines.toml");
    let text = VALID.replacen(from, to, 1);
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(ionport_bin())
        .arg("run")
        .arg(&file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", dir.path().join("home"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ran = dir.path().join("out.db").exists();
    (out.status.code(), stderr, text, ran)
}

/// The `file:line:col` of the first occurrence of `needle` in `text`.
fn place(file: &str, text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap();
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{file}:{line}:{col}:")
}

fn assert_refused(from: &str, to: &str, at: &str, says: &[&str]) {
    let (code, stderr, text, ran) = run_broken(from, to);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        !ran,
        "the destination was written although the file is invalid"
    );
    let want = place("pipelines.toml", &text, at);
    let line = stderr
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no diagnostic at {want}:\n{stderr}"));
    for s in says {
        assert!(line.contains(s), "{line:?} does not say {s:?}");
    }
}

#[test]
fn a_float_where_the_form_wants_an_integer_is_refused_at_the_value() {
    assert_refused(
        "company = 100,",
        "company = 100.0,",
        "100.0",
        &["settings.company", "100.0", "integer", "infor-m3"],
    );
    // An exponent is a float in TOML too.
    assert_refused(
        "company = 100,",
        "company = 1e2,",
        "1e2",
        &["settings.company", "integer"],
    );
}

#[test]
fn a_task_listed_twice_is_refused_at_the_second() {
    assert_refused(
        r#"tasks = ["customers", "items"]"#,
        r#"tasks = ["customers", "items", "customers"]"#,
        r#""customers"]"#,
        &["customers", "twice", "tasks[0]"],
    );
}

#[test]
fn a_schedule_that_overflows_is_refused() {
    // 213503982334602 days is just over u64::MAX seconds: it used to wrap to ~17 hours.
    assert_refused(
        r#"schedule = "every 1h""#,
        r#"schedule = "every 213503982334602d""#,
        r#""every 213503982334602d""#,
        &["schedule", "213503982334602d"],
    );
    // Past a year (and one that still fits in u64 seconds but not on a clock).
    assert_refused(
        r#"schedule = "every 1h""#,
        r#"schedule = "every 400d""#,
        r#""every 400d""#,
        &["366 days"],
    );
    assert_refused(
        r#"schedule = "every 1h""#,
        r#"schedule = "every 0s""#,
        r#""every 0s""#,
        &["at least one second"],
    );
}

#[test]
fn schedules_parse_with_humantime_within_bounds() {
    let secs = |s: &str| parse_schedule(s).map(|d| d.as_secs());
    assert_eq!(secs("every 15m"), Ok(900));
    assert_eq!(secs("every 1h 30m"), Ok(5400));
    assert_eq!(secs(" every 2d "), Ok(172_800));
    assert_eq!(secs("every 366d"), Ok(MAX_SCHEDULE.as_secs()));
    for bad in [
        "every 213503982334602d",
        "every 18446744073709551616s",
        "every 367d",
        "every 500ms",
        "every",
        "every15m",
        "each 15m",
        "every 15 parsecs",
    ] {
        let e = parse_schedule(bad).unwrap_err();
        assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
    }
}

#[test]
fn a_cron_schedule_that_is_not_five_valid_fields_is_refused_at_the_value() {
    for (bad, says) in [
        ("cron: 0 25 * * *", "25"),
        ("cron: 0 */2 * *", "4 field(s)"),
        ("cron: 0 0 30 2 *", "matches no date"),
    ] {
        assert_refused(
            r#"schedule = "every 1h""#,
            &format!("schedule = \"{bad}\""),
            &format!("\"{bad}\""),
            &["schedule", bad, says, "`cron:` and five fields in UTC"],
        );
    }
}

/// `2025-03-01T10:20:00Z` as a clock time, read by humantime rather than by the code
/// under test.
fn utc(s: &str) -> std::time::SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

#[test]
fn cron_schedules_fire_at_their_next_match_in_utc() {
    let next = |expr: &str, after: &str| {
        Schedule::parse(expr)
            .unwrap()
            .next_after(utc(after))
            .unwrap()
    };
    // Every two hours, on the hour; a time that matches is not its own next match.
    assert_eq!(
        next("cron: 0 */2 * * *", "2025-03-01T10:20:00Z"),
        utc("2025-03-01T12:00:00Z")
    );
    assert_eq!(
        next("cron: 0 */2 * * *", "2025-03-01T12:00:00Z"),
        utc("2025-03-01T14:00:00Z")
    );
    // Across a year; to the next leap day; by weekday name (2025-03-01 is a Saturday).
    assert_eq!(
        next("cron: 30 4 1 * *", "2024-12-31T23:00:00Z"),
        utc("2025-01-01T04:30:00Z")
    );
    assert_eq!(
        next("cron: 0 0 29 2 *", "2025-03-01T00:00:00Z"),
        utc("2028-02-29T00:00:00Z")
    );
    assert_eq!(
        next("cron: 0 9 * * mon", "2025-03-01T00:00:00Z"),
        utc("2025-03-03T09:00:00Z")
    );
    // Day of month and day of week both set: either matches, as in crontab(5).
    assert_eq!(
        next("cron: 0 0 13 * fri", "2025-03-01T00:00:00Z"),
        utc("2025-03-07T00:00:00Z")
    );
    assert_eq!(
        next("cron:@daily", "2025-03-01T00:00:01Z"),
        utc("2025-03-02T00:00:00Z")
    );
    // An interval counts from the time given.
    assert_eq!(
        next("every 15m", "2025-03-01T10:20:00Z"),
        utc("2025-03-01T10:35:00Z")
    );
    assert_eq!(
        Schedule::parse(" cron:  0 */2 * * * ").unwrap().to_string(),
        "cron: 0 */2 * * *"
    );
    for bad in [
        "cron:",
        "cron: 0 */2 * *",
        "cron: 0 0 * * * *",
        "cron: 0 0 * * * 2030",
        "cron: 60 * * * *",
        "cron: * * 32 * *",
        "cron: 0 0 31 4 *",
        "cron: a b c d e",
        "0 */2 * * *",
        "hourly",
    ] {
        let e = Schedule::parse(bad).unwrap_err();
        assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        assert!(e.contains("`cron:` and five fields"), "{bad}: {e}");
    }
}

#[test]
fn the_valid_file_is_accepted_by_the_same_checks() {
    // The cases above differ from this file by one value; it must pass validation (the
    // run itself then fails on the missing vault entry, not with a diagnostic).
    let (code, stderr, _, _) = run_broken("every 1h", "every 1h");
    assert_ne!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("pipelines.toml:"), "{stderr}");
}
