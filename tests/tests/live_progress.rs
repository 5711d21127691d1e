//! A task's own pages and retries, live: while an API run reads M3 customers from an
//! emulator that answers some list pages 503 (retried by the host), the run record shows
//! the task's pages and retries rising; at the end they equal what the emulator saw —
//! the list requests it recorded and the 503s it injected (the oracle is the emulator,
//! never ionport's own counters).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ionport_emulator::{EmulatorConfig, EmulatorCredentials};
use ionport_tests::emulated::Emulated;
use ionport_tests::form_credentials;
use ionport_tests::serve_process::ServeProcess;
use serde_json::json;

/// The path of the customers task's pages (MI `CRS610MI/LstByNumber`).
const LIST: &str = "CRS610MI/LstByNumber";

/// What the test saw of the task while it was running.
#[derive(Debug, Default)]
struct Seen {
    /// (pages, retries, requests) of each look with the task running.
    running: Vec<(u64, u64, u64)>,
}

#[test]
fn a_runs_task_shows_its_pages_and_retries_live_and_ends_at_the_emulators_counts() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 3000,
        quota: None,
        latency: Duration::from_millis(25),
        credentials: EmulatorCredentials::default(),
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    let srv = ServeProcess::start(home.path(), &[], "info");
    let body = json!({
        "name": "live",
        "connector": "infor-m3",
        "values": {"company": 100, "credentials": form_credentials(&emu.emu.ionapi_json())},
        "tasks": [{"name": "customers"}],
        "page_size": 25,
        "quota": "none",
        "retries": 5,
    });
    let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
    assert_eq!(s, 201, "{v}");

    // From here on, the emulator's log is the run's alone; some list pages answer 503.
    emu.control("DELETE", "requests", None);
    let fault =
        json!([{ "kind": "503", "rate": 0.15, "count": 8, "api": "m3", "path_contains": LIST }]);
    emu.control("PUT", "faults", Some(fault));

    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": "live"})));
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let mut seen = Seen::default();
    let run = loop {
        let (s, v) = srv.call("GET", &format!("/v1/runs/{id}"), None);
        assert_eq!(s, 200, "{v}");
        let t = &v["tasks"][0];
        if v["finished"].is_u64() {
            break v;
        }
        if t["status"] == "running" {
            let n = |k: &str| t[k].as_u64().unwrap();
            seen.running.push((n("pages"), n("retries"), n("requests")));
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not finish: {v}"
        );
        std::thread::sleep(Duration::from_millis(40));
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    let task = &run["tasks"][0];
    let (pages, retries, requests) = (
        task["pages"].as_u64().unwrap(),
        task["retries"].as_u64().unwrap(),
        task["requests"].as_u64().unwrap(),
    );

    // The emulator's side: every API request it served, and the 503s it injected.
    let log = emu.control("GET", "requests", None);
    let paths: Vec<String> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    let list_requests = paths.iter().filter(|p| p.contains(LIST)).count() as u64;
    let rules = emu.control("GET", "faults", None);
    let injected = rules["rules"][0]["injected"].as_u64().unwrap();
    assert!(injected > 0, "no fault was injected: {rules}");

    eprintln!(
        "final: {pages} pages, {retries} retries, {requests} requests; emulator: {list_requests} list requests, {} in all, {injected} injected; live looks (pages, retries, requests): {:?}",
        paths.len(),
        seen.running
    );
    // Final values: what the emulator counted.
    assert_eq!(retries, injected, "each 503 retried once: {run}");
    assert_eq!(
        pages,
        list_requests - injected,
        "pages = list requests that were answered: {run}"
    );
    assert_eq!(
        requests + retries,
        paths.len() as u64,
        "every request the emulator served is one of the task's calls or a retry: {run}"
    );

    // Live: while the task was running its pages and retries were there, below the end.
    let live_pages: Vec<u64> = seen.running.iter().map(|s| s.0).collect();
    assert!(
        live_pages.iter().any(|&p| p > 0 && p < pages),
        "no pages while running: {:?} (final {pages})",
        seen.running
    );
    assert!(
        seen.running.iter().any(|s| s.1 > 0),
        "no retries while running: {:?} (final {retries})",
        seen.running
    );
    assert!(
        live_pages.windows(2).all(|w| w[0] <= w[1]),
        "pages never go back: {live_pages:?}"
    );
    assert!(
        seen.running.iter().all(|s| s.1 <= retries && s.0 <= pages),
        "a live figure above the final one: {:?}",
        seen.running
    );
}

/// A task run alone through the API: its live pages while it ran, and its end.
struct Ended {
    /// The task's `pages` at each look while it was running.
    live: Vec<u64>,
    /// The run record's task at the end: its `pages` is the connector's own summary.
    task: serde_json::Value,
    /// The pages the plugin reported as it read (`ionport::read`'s "read finished").
    reported: u64,
}

/// Runs `connection` (one task) and watches its task's pages until the run ends.
fn run_watched(srv: &ServeProcess, connection: &str, task: &str) -> Ended {
    let (s, v) = srv.call("POST", "/v1/runs", Some(&json!({"connection": connection})));
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let mut live = Vec::new();
    let run = loop {
        let (s, v) = srv.call("GET", &format!("/v1/runs/{id}"), None);
        assert_eq!(s, 200, "{v}");
        if v["finished"].is_u64() {
            break v;
        }
        let t = &v["tasks"][0];
        if t["status"] == "running" {
            live.push(t["pages"].as_u64().unwrap());
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{connection}: the run did not finish: {v}"
        );
        std::thread::sleep(Duration::from_millis(30));
    };
    assert_eq!(run["status"], "succeeded", "{connection}: {run}");
    let task_view = run["tasks"][0].clone();
    assert_eq!(task_view["name"], task, "{run}");
    Ended {
        live,
        task: task_view,
        reported: reported_pages(&srv.output(), task),
    }
}

/// The `pages` of the host's "read finished" debug line for `task` (one read per task here).
fn reported_pages(output: &str, task: &str) -> u64 {
    let field = format!(" task={task} ");
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("read finished") && l.contains(&field))
        .collect();
    assert_eq!(lines.len(), 1, "one read of {task} in the log:\n{output}");
    lines[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pages="))
        .unwrap_or_else(|| panic!("no pages= in {:?}", lines[0]))
        .parse()
        .unwrap()
}

/// Connectors paging by themselves (M3 per-order lines, LN by links and by windows, Data
/// Lake's Compass result pages) report each page as they read it: the task shows pages
/// while it runs, and what they reported in all equals their own summary's `pages`.
#[test]
fn connectors_own_paging_loops_report_their_pages_live_and_the_total_is_their_summarys() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 60,
        quota: None,
        latency: Duration::from_millis(25),
        credentials: EmulatorCredentials::default(),
        ..EmulatorConfig::default()
    });
    let home = tempfile::tempdir().unwrap();
    // The host's per-read debug line carries the pages the plugin reported.
    let srv = ServeProcess::start(home.path(), &[], "info,ionport::read=debug");
    let creds = form_credentials(&emu.emu.ionapi_json());
    // Windows and Compass result pages go several at a time: each is slowed down so that
    // the read outlasts a few progress ticks.
    let slow_ln = json!([{ "kind": "slow", "rate": 1.0, "delay_ms": 120, "api": "ln" }]);
    let slow_result = json!([{ "kind": "slow", "rate": 1.0, "delay_ms": 120, "api": "datalake", "path_contains": "/result" }]);
    let cases = [
        (
            "m3_by_order",
            "infor-m3",
            json!({"company": 100}),
            "customer_order_lines_by_order",
            5,
            None,
        ),
        (
            "ln_links",
            "infor-ln",
            json!({"company": 100, "paging": "auto"}),
            "business_partners",
            3,
            None,
        ),
        (
            "ln_windows",
            "infor-ln",
            json!({"company": 100, "paging": "skip"}),
            "sales_orders",
            3,
            Some(slow_ln),
        ),
        (
            "lake",
            "infor-datalake",
            json!({"page_rows": 10}),
            "m3_customers",
            3,
            Some(slow_result),
        ),
    ];
    for (name, connector, mut values, task, page_size, faults) in cases {
        values["credentials"] = creds.clone();
        match faults {
            Some(f) => emu.control("PUT", "faults", Some(f)),
            None => emu.control("DELETE", "faults", None),
        };
        let body = json!({
            "name": name,
            "connector": connector,
            "values": values,
            "tasks": [{"name": task}],
            "page_size": page_size,
            "quota": "none",
        });
        let (s, v) = srv.call("POST", "/v1/connections", Some(&body));
        assert_eq!(s, 201, "{name}: {v}");
        let end = run_watched(&srv, name, task);
        let summary = end.task["pages"].as_u64().unwrap();
        eprintln!(
            "{name}: summary {summary} pages, reported {}, live looks {:?}",
            end.reported, end.live
        );
        assert!(summary > 1, "{name}: a read of several pages: {}", end.task);
        assert_eq!(
            end.reported, summary,
            "{name}: every page the connector counted was reported live, once"
        );
        assert!(
            end.live.iter().any(|&p| p > 0),
            "{name}: no pages while the task ran: {:?}",
            end.live
        );
    }
}
