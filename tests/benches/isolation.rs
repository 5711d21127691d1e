//! Process isolation's cost (issue #17): M3 `customer_table` replicated by `ionport run`
//! (release build) from an in-process emulator into JSONL, once with the connector in
//! the host and once with `isolation = "process"` (`ionport plugin-host`), every record
//! checked in the output. Per mode: records/s, CPU per record of the whole process tree
//! (user+sys of `ionport run` and its plugin host, from the kernel's accounting of
//! waited-for children), the plugin host's share of it (`/proc`, while it runs), peak
//! RSS of the host and of the plugin host (`VmHWM`, polled), and beside them the
//! emulator's ceiling (its requests replayed by a minimal client) and its own CPU.
//!
//! ```sh
//! cargo xtask bench isolation --records 100000   # quick
//! cargo xtask bench isolation                    # 1,000,000 records
//! ```
//!
//! `BENCH_ISOLATION_RECORDS` (default 1,000,000), `BENCH_PAGE` (default 1,000) and
//! `BENCH_PAGES_IN_FLIGHT` (default 4). Nothing about time is asserted; record counts
//! are (a row that fails says `NO` and the bench panics at the end).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "pipeline/ceiling.rs"]
mod ceiling;
#[path = "pipeline/dest.rs"]
mod dest;
#[path = "pipeline/run.rs"]
mod run;
#[path = "pipeline/stages.rs"]
mod stages;
#[path = "pipeline/sys.rs"]
mod sys;
#[path = "pipeline/tasks.rs"]
mod tasks;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, plugin_lib};

use dest::Dest;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |s| {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}='{s}' is not a number"))
    })
}

struct Figures {
    records: u64,
    seconds: f64,
    tree_cpu: f64,
    plugin_host_cpu: f64,
    host_rss_kib: u64,
    plugin_host_rss_kib: u64,
    emulator_cpu: f64,
}

/// The children of `pid` (the plugin hosts of an isolated run), whichever of its threads
/// started them (`/proc/PID/task/TID/children` lists a thread's own).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn run(dir: &Path, ionapi: &Path, page: u32, pif: u32, isolation: &str, out: &Path) -> Figures {
    let file = dir.join(format!("bench-{isolation}.toml"));
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {{ type = "jsonl", path = '{out}' }}

[connections.src]
connector = "infor-m3"
credentials = {{ ionapi = '{ionapi}' }}
settings = {{ company = 100 }}
quota = "none"
isolation = "{isolation}"

[pipelines.bench]
connection = "src"
environment = "out"
tasks = ["customer_table"]
sync_mode = "full_refresh"
page_size = {page}
pages_in_flight = {pif}
"#,
            out = out.display(),
            ionapi = ionapi.display(),
        ),
    )
    .unwrap();
    let emu_cpu0 = sys::cpu_seconds("self").unwrap_or(0.0);
    let children_cpu0 = sys::children_cpu_seconds();
    let started = Instant::now();
    let mut child = Command::new(ionport_bin())
        .args(["run", "--quiet"])
        .arg(&file)
        .env("IONPORT_PLUGIN_PATH", plugin_lib("ionport_connector_m3"))
        .env("IONPORT_HOME", dir.join("home"))
        .env_remove("IONPORT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut so, &mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut se, &mut s).unwrap();
        s
    });
    let mut host_peak = 0;
    // Per plugin-host pid: its peak RSS and its last CPU reading.
    let mut hosts: HashMap<u32, (u64, f64)> = HashMap::new();
    let status = loop {
        if let Some(p) = sys::peak_rss_kib(pid) {
            host_peak = p.max(host_peak);
        }
        for c in children(pid) {
            let e = hosts.entry(c).or_default();
            if let Some(p) = sys::peak_rss_kib(c) {
                e.0 = p.max(e.0);
            }
            if let Some(cpu) = sys::cpu_seconds(&c.to_string()) {
                e.1 = cpu.max(e.1);
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    let tree_cpu = sys::children_cpu_seconds() - children_cpu0;
    let emulator_cpu = sys::cpu_seconds("self").unwrap_or(0.0) - emu_cpu0;
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    assert!(
        status.success(),
        "ionport run ({isolation}) failed:\n{stdout}\n{stderr}"
    );
    let records = stdout
        .lines()
        .find(|l| l.starts_with("bench/customer_table "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary row:\n{stdout}"));
    Figures {
        records,
        seconds,
        tree_cpu,
        plugin_host_cpu: hosts.values().map(|h| h.1).sum(),
        host_rss_kib: host_peak,
        plugin_host_rss_kib: hosts.values().map(|h| h.0).sum(),
        emulator_cpu,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let n = env_num("BENCH_ISOLATION_RECORDS", 1_000_000);
    let page = env_num("BENCH_PAGE", 1_000) as u32;
    let pif = env_num("BENCH_PAGES_IN_FLIGHT", 4) as u32;
    let task = tasks::TASKS
        .iter()
        .find(|t| t.task == "customer_table")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulated::start(EmulatorConfig {
        scale: task.scale_for(n),
        ..EmulatorConfig::default()
    });
    let ionapi = dir.path().join("emulator.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let want = task.expected(&emu.emu.dataset());

    // The server's ceiling: the read once in this process, its requests replayed.
    let mut reg = PluginRegistry::default();
    let plugin: Arc<LoadedPlugin> = reg
        .load(&plugin_lib(task.lib))
        .unwrap_or_else(|e| panic!("{} does not load (built in release?): {e}", task.lib))
        .clone();
    let read = ceiling::record(
        &emu,
        &plugin,
        &ionapi,
        ceiling::read_request(task, page, pif),
        false,
    );
    let (ceiling_secs, bytes) = ceiling::replay(&emu, &read.heads, pif as usize);
    println!(
        "\nm3/customer_table — N = {want}, pages of {page}, {pif} in flight, {} requests ({:.1} MiB); emulator ceiling (minimal client, {pif} in flight): {:.0} records/s",
        read.heads.len(),
        bytes as f64 / 1_048_576.0,
        want as f64 / ceiling_secs,
    );
    println!(
        "{:<11} {:>9} {:>10} {:>7} {:>13} {:>12} {:>12} {:>12} {:>11}  verified",
        "isolation",
        "records",
        "records/s",
        "share",
        "CPU µs/rec",
        "plugin host",
        "host RSS",
        "plugin RSS",
        "emu µs/rec"
    );
    let mut failures = Vec::new();
    for isolation in ["in-process", "process"] {
        let out = dir.path().join(format!("out-{isolation}"));
        let _ = std::fs::remove_dir_all(&out);
        let f = run(dir.path(), &ionapi, page, pif, isolation, &out);
        let dest = Dest::Jsonl(out.clone());
        let key = &plugin.task(task.task).unwrap().primary_key;
        let verified = match dest.held(task.task, key) {
            Ok(h) if f.records == want && h.rows == want && h.distinct_keys == want => "yes",
            Ok(h) => {
                failures.push(format!(
                    "{isolation}: want {want}; run said {}, output holds {} rows, {} keys",
                    f.records, h.rows, h.distinct_keys
                ));
                "NO"
            }
            Err(e) => {
                failures.push(format!("{isolation}: {e}"));
                "NO"
            }
        };
        let per = |cpu: f64| cpu * 1e6 / f.records.max(1) as f64;
        let (host_cpu, host_rss) = if isolation == "process" {
            (
                format!("{:.2}", per(f.plugin_host_cpu)),
                format!("{:.0} MiB", f.plugin_host_rss_kib as f64 / 1024.0),
            )
        } else {
            ("-".to_string(), "-".to_string())
        };
        let rate = f.records as f64 / f.seconds;
        println!(
            "{:<11} {:>9} {:>10.0} {:>6.0}% {:>13.2} {:>12} {:>8.0} MiB {:>12} {:>11.2}  {verified}",
            isolation,
            f.records,
            rate,
            100.0 * rate / (want as f64 / ceiling_secs),
            per(f.tree_cpu),
            host_cpu,
            f.host_rss_kib as f64 / 1024.0,
            host_rss,
            per(f.emulator_cpu),
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    println!(
        "(CPU µs/rec: user+sys of `ionport run` and its plugin host, per record; plugin host: its share; load average {})",
        sys::loadavg()
    );
    assert!(failures.is_empty(), "not verified: {failures:#?}");
}
