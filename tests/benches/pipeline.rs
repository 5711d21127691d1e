//! The whole path, emulator → connector → host → destination (issue #11): `ionport run`
//! (release build) replicates one task at a time from an in-process emulator into each
//! destination, and every row is checked: the destination must hold exactly the N records
//! the emulator serves, N distinct primary keys (counted in SQLite/Postgres; rows and keys
//! read back from the JSONL/Parquet output). A row that fails says `NO` and the bench
//! panics at the end, after printing everything.
//!
//! ```sh
//! cargo build --release -p ionport -p ionport-connector-m3 -p ionport-connector-ln -p ionport-connector-datalake
//! cargo bench -p ionport-tests --bench pipeline
//! ```
//!
//! **Loopback** (no latency, no quota), per task and N: first the server's ceiling in this
//! run — the task read once in process through core's `read_task` (recording its gateway
//! requests), then those requests replayed by a minimal client, one at a time and with the
//! task's pages in flight, bodies dropped. Then per destination: records/s, the ceiling at
//! the concurrency the task really has (sequential tasks: 1) and the share of it, the
//! `ionport run` child's CPU per record (user+sys ÷ records), peak RSS, verified.
//!
//! **Latency** (`BENCH_LATENCY_MS`, default 150) with the per-token quota at each of
//! `BENCH_LATENCY_QUOTAS` requests per 60 s, the pipeline file's `quota` (the host's
//! client-side limit) set to the same: records/s, the bound (quota × records per request,
//! or pages in flight ÷ latency × records per request, whichever is lower), requests/min
//! against the emulator and their share of the quota (over the whole run, and steady:
//! between 10% and 90% of its requests), 429s the emulator served; for the
//! M3 tasks read in key ranges (MI lists, EXPORTMI) also `pages_in_flight = 1`, and the
//! ratio.
//!
//! Nothing about time is asserted; record counts are.
//!
//! Environment (lists are comma-separated):
//! - `BENCH_TASKS`: `customers,customer_table,business_partners,m3_order_lines` (default all)
//! - `BENCH_SCALES`: records per loopback row (default `100000,1000000`); `0` skips loopback
//! - `BENCH_DESTINATIONS`: `jsonl,parquet,sqlite,postgres` (default all)
//! - `BENCH_PAGE`: page size for every task (default per task: M3 and Data Lake 10,000, LN
//!   5,000); `BENCH_PAGES_IN_FLIGHT` (default 4)
//! - `BENCH_LATENCY_MS` (default 150; `0` skips the latency rows), `BENCH_LATENCY_JITTER_MS`
//!   (default 0), `BENCH_LATENCY_RECORDS` (default 20000), `BENCH_LATENCY_PAGE` (default
//!   100), `BENCH_LATENCY_QUOTAS` (default `1000,3000`), `BENCH_LATENCY_DESTINATIONS`
//!   (default `jsonl`)
//! - `BENCH_STAGES=1`: where the time goes, for M3 `customer_table`
//! - `IONPORT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//!
//! See `docs/performance.md` for the full matrix and what the figures say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ionport_core::plugin::{LoadedPlugin, PluginRegistry};
use ionport_emulator::EmulatorConfig;
use ionport_emulator::config::Quota;
use ionport_tests::emulated::Emulated;
use ionport_tests::{ionport_bin, plugin_lib};

use dest::{Dest, pg_url};
use run::{RunFigures, RunSetup, full_run};
use tasks::{BenchTask, Paging};

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |s| {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}='{s}' is not a number"))
    })
}

fn load(lib: &str) -> Arc<LoadedPlugin> {
    let mut reg = PluginRegistry::default();
    reg.load(&plugin_lib(lib))
        .unwrap_or_else(|e| panic!("{lib} does not load (built in release?): {e}"))
        .clone()
}

/// The emulator's API requests served and 429s, from its counters.
fn served(emu: &Emulated) -> (u64, u64) {
    let c = emu.control("GET", "counters", None);
    let r = &c["requests"];
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    (
        n("m3") + n("ln") + n("datalake") + n("users") + n("other"),
        c["rate_limited"].as_u64().unwrap_or(0),
    )
}

/// Checks what `dest` holds against `want`; `Err` names what is wrong.
fn verify(
    dest: &Dest,
    plugin: &LoadedPlugin,
    task: &BenchTask,
    f: &RunFigures,
    want: u64,
) -> Result<(), String> {
    let key = &plugin.task(task.task).unwrap().primary_key;
    let held = dest.held(task.task, key)?;
    if f.records != want || held.rows != want || held.distinct_keys != want {
        return Err(format!(
            "want {want} records; the run reported {}, the destination holds {} rows with {} distinct keys",
            f.records, held.rows, held.distinct_keys
        ));
    }
    Ok(())
}

/// Rows that failed verification, printed again and panicked on at the end.
type Failures = Vec<String>;

fn verified_cell(
    label: &str,
    kind: &str,
    r: Result<(), String>,
    failures: &mut Failures,
) -> String {
    match r {
        Ok(()) => "yes".into(),
        Err(e) => {
            let line = format!("{label} into {kind}: NOT VERIFIED: {e}");
            println!("!!! {line}");
            failures.push(line);
            "NO".into()
        }
    }
}

const HEADER: &str = "task                     dest      N         pif  records/s  ceiling/s  share  µs/rec  RSS MiB  verified";

#[allow(clippy::too_many_arguments)]
fn loopback(
    task: &BenchTask,
    plugin: &Arc<LoadedPlugin>,
    n: u64,
    kinds: &[String],
    page: u32,
    pif: u32,
    dir: &Path,
    stages: bool,
    failures: &mut Failures,
) {
    let emu = Emulated::start(EmulatorConfig {
        scale: task.scale_for(n),
        ..EmulatorConfig::default()
    });
    let ionapi = dir.join("emulator.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let ds = emu.emu.dataset();
    let want = task.expected(&ds);
    let read = ceiling::record(
        &emu,
        plugin,
        &ionapi,
        ceiling::read_request(task, page, pif),
        stages && task.task == "customer_table",
    );
    if read.records != want || read.distinct_keys != want {
        let line = format!(
            "{}: the in-process read gave {} records, {} distinct keys; the emulator serves {want}",
            task.label, read.records, read.distinct_keys
        );
        println!("!!! {line}");
        failures.push(line);
    }
    let eff = task.effective_in_flight(pif);
    let seq = ceiling::replay(&emu, &read.heads, 1);
    let conc = if pif > 1 {
        ceiling::replay(&emu, &read.heads, pif as usize)
    } else {
        seq
    };
    let rate = |s: f64| want as f64 / s;
    let ceiling_same = if eff > 1 { rate(conc.0) } else { rate(seq.0) };
    println!(
        "\n{} — N = {want} (scale {}), pages of {page}, {} requests ({:.1} MiB): minimal client {:.0} records/s one at a time, {:.0} at {pif} in flight; in-process read {:.0} records/s",
        task.label,
        task.scale_for(n),
        read.heads.len(),
        seq.1 as f64 / 1_048_576.0,
        rate(seq.0),
        rate(conc.0),
        rate(read.seconds),
    );
    println!("{HEADER}  emu µs/rec");
    let mut results: Vec<(Dest, RunFigures)> = Vec::new();
    for kind in kinds {
        let dest = Dest::new(kind, dir, &format!("{}-{n}", task.task));
        dest.remove();
        let setup = RunSetup {
            page,
            pages_in_flight: pif,
            quota: "none".into(),
        };
        let f = full_run(dir, &ionapi, task, &dest, &setup);
        let ok = verified_cell(
            task.label,
            kind,
            verify(&dest, plugin, task, &f, want),
            failures,
        );
        println!(
            "{:<24} {:<9} {:<9} {:<4} {:>9.0}  {:>9.0}  {:>4.0}%  {:>6.2}  {:>7.1}  {ok:<8}  {:>6.2}",
            task.label,
            kind,
            want,
            task.in_flight_note(pif),
            f.rate(),
            ceiling_same,
            100.0 * f.rate() / ceiling_same,
            f.cpu_us_per_record(),
            f.rss_mib(),
            f.emulator_us_per_record(),
        );
        dest.remove();
        results.push((dest, f));
    }
    if stages && task.task == "customer_table" {
        if let Some((slowest, full)) = results
            .iter()
            .min_by(|a, b| a.1.rate().total_cmp(&b.1.rate()))
        {
            stages::breakdown(&ds, plugin, dir, page, &read, seq, slowest, full, want);
        }
    }
}

struct LatencyRow {
    rate: f64,
}

#[allow(clippy::too_many_arguments)]
fn latency_row(
    emu: &Emulated,
    ionapi: &Path,
    task: &BenchTask,
    plugin: &LoadedPlugin,
    kind: &str,
    quota: u32,
    page: u32,
    pif: u32,
    latency: Duration,
    dir: &Path,
    failures: &mut Failures,
) -> LatencyRow {
    let want = task.expected(&emu.emu.dataset());
    let dest = Dest::new(kind, dir, &format!("{}-lat-{quota}-{pif}", task.task));
    dest.remove();
    let (req0, limited0) = served(emu);
    let stop = AtomicBool::new(false);
    let (f, samples) = std::thread::scope(|s| {
        // The emulator's count every 250 ms, for the rate while the task is under way.
        let sampler = s.spawn(|| {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push((started.elapsed().as_secs_f64(), served(emu).0 - req0));
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        });
        let f = full_run(
            dir,
            ionapi,
            task,
            &dest,
            &RunSetup {
                page,
                pages_in_flight: pif,
                quota: format!("{quota}/60"),
            },
        );
        stop.store(true, Ordering::Relaxed);
        (f, sampler.join().unwrap_or_default())
    });
    let (req1, limited1) = served(emu);
    let ok = verified_cell(
        task.label,
        kind,
        verify(&dest, plugin, task, &f, want),
        failures,
    );
    dest.remove();
    let requests = req1 - req0;
    let per_min = requests as f64 / f.seconds * 60.0;
    let steady = steady_per_min(&samples, requests);
    // The most the task could do: the quota, or its pages in flight per round trip.
    let per_request = want as f64 / requests.max(1) as f64;
    let by_quota = f64::from(quota) / 60.0;
    let by_latency = f64::from(task.effective_in_flight(pif)) / latency.as_secs_f64().max(1e-3);
    let bound = by_quota.min(by_latency) * per_request;
    println!(
        "{:<24} {:<9} {:<9} {:<4} {:>9.0}  {:>9.0}  {:>4.0}%  {:>6.2}  {:>7.1}  {ok:<8} {:>5}  {:>7.0}  {:>5.0}%  {:>7.0}  {:>5.1}%  {:>4}  {:>5.1}",
        task.label,
        kind,
        want,
        task.in_flight_note(pif),
        f.rate(),
        bound,
        100.0 * f.rate() / bound,
        f.cpu_us_per_record(),
        f.rss_mib(),
        quota,
        per_min,
        100.0 * per_min / f64::from(quota),
        steady,
        100.0 * steady / f64::from(quota),
        limited1 - limited0,
        f.seconds,
    );
    LatencyRow { rate: f.rate() }
}

/// Requests per minute while the task is under way: the slope of the emulator's count
/// between the samples at 10% and at 90% of the run's requests, so the process start,
/// the token, the first page (which goes alone) and the last pages are left out.
fn steady_per_min(samples: &[(f64, u64)], total: u64) -> f64 {
    let from = samples.iter().find(|(_, n)| *n * 10 >= total);
    let to = samples.iter().rev().find(|(_, n)| *n * 10 <= total * 9);
    match (from, to) {
        (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 && n1 > n0 => {
            (n1 - n0) as f64 / (t1 - t0) * 60.0
        }
        _ => f64::NAN,
    }
}

fn main() {
    let tasks = tasks::selected(&env_list("BENCH_TASKS", ""));
    let scales: Vec<u64> = env_list("BENCH_SCALES", "100000,1000000")
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("BENCH_SCALES: '{s}' is not a number"))
        })
        .filter(|n| *n > 0)
        .collect();
    let pg_ok = postgres::Client::connect(&pg_url(), postgres::NoTls).is_ok();
    let dests = |var: &str, default: &str| -> Vec<String> {
        env_list(var, default)
            .into_iter()
            .filter(|k| {
                let skip = k == "postgres" && !pg_ok;
                if skip {
                    println!("!!! postgres SKIPPED: unreachable at {}", pg_url());
                }
                !skip
            })
            .collect()
    };
    let kinds = dests("BENCH_DESTINATIONS", "jsonl,parquet,sqlite,postgres");
    let page_override = std::env::var("BENCH_PAGE")
        .ok()
        .map(|_| env_num("BENCH_PAGE", 0) as u32);
    let pif = env_num("BENCH_PAGES_IN_FLIGHT", 4) as u32;
    let latency = Duration::from_millis(env_num("BENCH_LATENCY_MS", 150));
    let jitter = Duration::from_millis(env_num("BENCH_LATENCY_JITTER_MS", 0));
    let lat_n = env_num("BENCH_LATENCY_RECORDS", 20_000);
    let lat_page = env_num("BENCH_LATENCY_PAGE", 100) as u32;
    let quotas: Vec<u32> = env_list("BENCH_LATENCY_QUOTAS", "1000,3000")
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("BENCH_LATENCY_QUOTAS: '{s}'"))
        })
        .collect();
    let lat_kinds = dests("BENCH_LATENCY_DESTINATIONS", "jsonl");
    let stages = std::env::var("BENCH_STAGES").is_ok_and(|v| v == "1");

    println!("ionport pipeline bench (issue #11)");
    println!("load average before: {}", sys::loadavg());
    println!(
        "ionport {} ({} cores); pif = pages in flight (n→1: the task reads one page at a time)",
        ionport_bin().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Failures::new();
    let plugins: Vec<Arc<LoadedPlugin>> = tasks.iter().map(|t| load(t.lib)).collect();

    if !scales.is_empty() {
        println!(
            "\n== loopback, no quota: ceiling = the minimal client at the pages in flight the task really has"
        );
        for (task, plugin) in tasks.iter().zip(&plugins) {
            let page = page_override.unwrap_or(task.page);
            for &n in &scales {
                loopback(
                    task,
                    plugin,
                    n,
                    &kinds,
                    page,
                    pif,
                    dir.path(),
                    stages,
                    &mut failures,
                );
            }
        }
    }

    if !latency.is_zero() && !quotas.is_empty() {
        println!(
            "\n== latency {} ms (+ up to {} ms jitter), per-token quota = the host's quota; {lat_n} records, pages of {lat_page}",
            latency.as_millis(),
            jitter.as_millis()
        );
        println!(
            "   bound = min(quota, pif ÷ latency) × records per request; req/min counted by the emulator over the run, steady = between 10% and 90% of its requests; s = wall seconds"
        );
        println!("{HEADER} quota  req/min  share   steady  share   429s  s");
        for &quota in &quotas {
            for (task, plugin) in tasks.iter().zip(&plugins) {
                let emu = Emulated::start(EmulatorConfig {
                    scale: task.scale_for(lat_n),
                    latency,
                    latency_jitter: jitter,
                    quota: Some(Quota {
                        requests: quota,
                        per: Duration::from_secs(60),
                    }),
                    ..EmulatorConfig::default()
                });
                let ionapi = dir.path().join("emulator-latency.ionapi");
                emu.emu.write_ionapi(&ionapi).unwrap();
                for kind in &lat_kinds {
                    let row = |p: u32, failures: &mut Failures| {
                        latency_row(
                            &emu,
                            &ionapi,
                            task,
                            plugin,
                            kind,
                            quota,
                            lat_page,
                            p,
                            latency,
                            dir.path(),
                            failures,
                        )
                    };
                    let default = row(pif, &mut failures);
                    if task.paging == Paging::KeyRanges && pif > 1 {
                        let one = row(1, &mut failures);
                        println!(
                            "   {} at quota {quota}/60: {pif} pages in flight read {:.2}× as fast as one at a time",
                            task.label,
                            default.rate / one.rate
                        );
                    }
                }
            }
        }
    }

    println!("\nload average after: {}", sys::loadavg());
    assert!(
        failures.is_empty(),
        "{} row(s) NOT VERIFIED:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
