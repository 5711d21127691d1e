//! Scale-out: real `ionport worker` processes on the machine's Postgres as coordinator
//! (each test in a coordinator schema of its own), the emulator on loopback.
//!
//! - three workers, three scheduled pipelines: every task runs exactly once per tick (the
//!   workers' logs: core's `read finished` lines, one per unit done, no unit claimed
//!   twice) and every record lands exactly once (the emulator's own counts);
//! - workers killed with SIGKILL at random points while they hold leases, at least 10
//!   times: the others take their units over from the last committed checkpoint, and the
//!   SQLite, Postgres and JSONL destinations end with every record exactly once.
//! - a worker stopped with SIGTERM hands its unit back; one cut off from the coordinator
//!   (a TCP proxy the test cuts) stops its unit by itself before its lease lapses, and
//!   another takes it over;
//! - `cluster submit` refuses an invalid file with its place; an unreachable coordinator
//!   is an error without the URL's password.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_tests::cluster::Cluster;
use ionport_tests::destinations::{Dest, DropSchemas, pg_url};
use ionport_tests::emulated::Emulated;
use serde_json::Value;

/// `key=value` of a log line.
fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// The three pipelines: customers into SQLite, items into Postgres, suppliers into JSONL,
/// each task of its own connection to company 100.
const PIPELINES: [(&str, &str, &str); 3] = [
    ("p_customers", "customers", "CUNO"),
    ("p_items", "items", "ITNO"),
    ("p_suppliers", "suppliers", "SUNO"),
];

fn dests(dir: &Path, prefix: &str) -> [Dest; 3] {
    [
        Dest::Sqlite(dir.to_path_buf()),
        Dest::Postgres(prefix.to_string()),
        Dest::Jsonl(dir.to_path_buf()),
    ]
}

/// What the three-pipeline tests share: the emulator, a directory with its `.ionapi` file,
/// and the three destinations (SQLite, Postgres schemas under the test's prefix, JSONL), whose
/// Postgres schemas are dropped when `_drop` goes.
struct Setup {
    emu: Emulated,
    dir: tempfile::TempDir,
    ionapi: PathBuf,
    envs: Vec<String>,
    dests: [Dest; 3],
    _drop: DropSchemas,
}

fn setup(config: EmulatorConfig, name: &str) -> Setup {
    let emu = Emulated::start(config);
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let prefix = format!("{name}_{}", std::process::id());
    let envs: Vec<String> = PIPELINES.iter().map(|p| format!("env_{}", p.0)).collect();
    let env_refs: Vec<&str> = envs.iter().map(String::as_str).collect();
    let _drop = DropSchemas::new(&prefix, &env_refs);
    let dests = dests(dir.path(), &prefix);
    Setup {
        emu,
        dir,
        ionapi,
        envs,
        dests,
        _drop,
    }
}

fn pipeline_file(
    dir: &Path,
    ionapi: &Path,
    dests: &[Dest; 3],
    tasks: impl Fn(usize) -> Vec<&'static str>,
    extra: &str,
) -> PathBuf {
    let mut text = String::new();
    for (i, (name, _, _)) in PIPELINES.iter().enumerate() {
        let tasks: Vec<String> = tasks(i).iter().map(|t| format!("\"{t}\"")).collect();
        text.push_str(&format!(
            r#"
[environments.env_{name}]
destination = {dest}

[connections.c_{name}]
connector = "infor-m3"
credentials = {{ ionapi = "{ionapi}" }}
settings = {{ company = 100 }}
quota = "none"

[pipelines.{name}]
connection = "c_{name}"
environment = "env_{name}"
tasks = [{tasks}]
page_size = 25
pages_in_flight = 1
{extra}
"#,
            dest = dests[i].toml(&format!("env_{name}")),
            ionapi = ionapi.display(),
            tasks = tasks.join(", "),
        ));
    }
    let file = dir.join("pipelines.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The emulator's own count of an M3 entity in company 100.
fn emulator_count(emu: &Emulated, entity: &str) -> usize {
    let info = emu.control("GET", "info", None);
    info["counts"]["100"][entity].as_u64().unwrap() as usize
}

/// Every record exactly once: as many rows as the emulator has, each key once.
fn assert_exactly_once(emu: &Emulated, dest: &Dest, env: &str, task: &str, key: &str) {
    let entity = match task {
        "customers" => "customer",
        "items" => "item",
        _ => "supplier",
    };
    let want = emulator_count(emu, entity);
    let rows = dest.rows(env, task);
    let keys: BTreeSet<String> = rows
        .iter()
        .map(|r| r[key].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rows.len(), keys.len(), "{env}/{task}: no record twice");
    assert_eq!(
        keys.len(),
        want,
        "{env}/{task}: every record of the emulator"
    );
}

#[test]
fn three_workers_run_each_task_once_per_schedule_tick() {
    let Setup {
        emu,
        dir,
        ionapi,
        envs,
        dests,
        _drop,
    } = setup(
        EmulatorConfig {
            scale: 400,
            ..EmulatorConfig::default()
        },
        "cl_ticks",
    );
    // Each pipeline reads its own stream.
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        &dests,
        |i| vec![PIPELINES[i].1],
        "schedule = \"every 3s\"",
    );

    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_ticks_{}", std::process::id()),
        "3s",
    );
    cluster.submit(&file, false);
    for _ in 0..3 {
        cluster.start_worker();
    }
    // At least two ticks of every pipeline done.
    cluster.wait_for(Duration::from_secs(60), "two ticks done", |st| {
        PIPELINES.iter().all(|(p, _, _)| {
            let done: BTreeSet<&str> = st["recent"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| u["pipeline"] == *p && u["state"] == "done")
                .map(|u| u["tick"].as_str().unwrap())
                .collect();
            done.len() >= 2
        })
    });
    cluster.stop_all();
    let logs = cluster.logs();
    // The status for people: each pipeline with its schedule, each worker stopped.
    let out = cluster
        .ionport()
        .args(["cluster", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", ionport_tests::output_text(&out));
    for (p, _, _) in PIPELINES {
        assert!(
            text.lines()
                .any(|l| l.contains(p) && l.contains("every 3s")),
            "{text}"
        );
    }
    for w in ["w1", "w2", "w3"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(w) && l.contains("stopped")),
            "{text}"
        );
    }

    // Per task: the ticks of its units done, each once; core's read path finished one
    // read per unit done; no unit was claimed twice.
    let mut done: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut claimed: BTreeMap<String, usize> = BTreeMap::new();
    let mut reads: BTreeMap<String, usize> = BTreeMap::new();
    for line in logs.lines() {
        let task = field(line, "task").unwrap_or_default();
        if line.contains("unit done") {
            done.entry(task)
                .or_default()
                .push(field(line, "tick").unwrap());
        } else if line.contains("unit claimed") {
            *claimed.entry(field(line, "unit").unwrap()).or_default() += 1;
        } else if line.contains("ionport::read") && line.contains("read finished") {
            *reads.entry(task).or_default() += 1;
        }
    }
    assert!(
        claimed.values().all(|&n| n == 1),
        "a unit claimed twice: {claimed:?}"
    );
    for (i, (_, task, key)) in PIPELINES.iter().enumerate() {
        let ticks = done.get(*task).cloned().unwrap_or_default();
        let distinct: BTreeSet<&String> = ticks.iter().collect();
        assert!(ticks.len() >= 2, "{task}: {ticks:?}\n{logs}");
        assert_eq!(
            distinct.len(),
            ticks.len(),
            "{task}: a tick ran twice: {ticks:?}"
        );
        assert_eq!(
            reads.get(*task).copied().unwrap_or(0),
            ticks.len(),
            "{task}: one read per tick\n{logs}"
        );
        // Ticks on the schedule's grid: whole multiples of 3 s apart.
        let times: Vec<std::time::SystemTime> = distinct
            .iter()
            .map(|t| humantime::parse_rfc3339(t).unwrap())
            .collect();
        for w in times.windows(2) {
            let gap = w[1].duration_since(w[0]).unwrap().as_millis();
            assert!(gap > 0 && gap % 3000 == 0, "{task}: ticks {times:?}");
        }
        assert_exactly_once(&emu, &dests[i], &envs[i], task, key);
    }
}

/// A small deterministic generator for the kill points.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Killed (SIGKILL) workers lose their leases; the others take their units over.
const KILLS: usize = 10;

#[test]
fn workers_killed_at_random_points_lose_their_units_to_the_others_and_nothing_is_lost_or_doubled() {
    // Pages take a while, so that a unit lasts long enough to be killed part-way.
    let Setup {
        emu,
        dir,
        ionapi,
        envs,
        dests,
        _drop,
    } = setup(
        EmulatorConfig {
            scale: 2000,
            latency: Duration::from_millis(40),
            ..EmulatorConfig::default()
        },
        "cl_kill",
    );
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        &dests,
        |_| vec!["customers", "items", "suppliers"],
        "",
    );

    let mut cluster = Cluster::new(dir.path(), &format!("cl_kill_{}", std::process::id()), "2s");
    cluster.submit(&file, true);
    for _ in 0..3 {
        cluster.start_worker();
    }
    let mut dice = Dice(20261207);
    let mut killed: Vec<String> = Vec::new();
    let start = Instant::now();
    while killed.len() < KILLS {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "only {} kills before the work ran out",
            killed.len()
        );
        std::thread::sleep(Duration::from_millis(300 + dice.below(1200)));
        let st = cluster.status();
        let busy: Vec<String> = st["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| {
                !w["running"].as_array().unwrap().is_empty()
                    && cluster.workers.contains_key(w["id"].as_str().unwrap())
            })
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect();
        if busy.is_empty() {
            assert!(
                !st["open"].as_array().unwrap().is_empty(),
                "the work ran out after {} kills",
                killed.len()
            );
            continue;
        }
        let victim = busy[dice.below(busy.len() as u64) as usize].clone();
        let mut child = cluster.workers.remove(&victim).unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed.push(victim);
        cluster.start_worker();
    }
    let st = cluster.wait_for(Duration::from_secs(120), "every unit done", |st| {
        st["open"].as_array().unwrap().is_empty()
    });
    cluster.stop_all();

    let units = st["recent"].as_array().unwrap();
    assert_eq!(units.len(), 9, "nine units: {st:#}");
    assert!(
        units.iter().all(|u| u["state"] == "done"),
        "every unit done: {st:#}"
    );
    // The killed workers' attempts ended as lost leases, taken over by others.
    let lost: Vec<&Value> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["outcome"] == "lease_lost")
        .collect();
    // Each kill hit a worker the status showed holding a unit; that unit may have ended in
    // the moment between the status and the kill (then nothing was lost): two of ten may.
    assert!(
        lost.len() + 2 >= killed.len(),
        "lost leases {} after {} kills: {st:#}",
        lost.len(),
        killed.len()
    );
    let attempts: i64 = units.iter().map(|u| u["attempts"].as_i64().unwrap()).sum();
    eprintln!(
        "{} kills, {} leases lost and taken over, {attempts} attempts for 9 units, {:.1}s",
        killed.len(),
        lost.len(),
        start.elapsed().as_secs_f64()
    );
    for h in &lost {
        assert!(
            killed.iter().any(|k| h["worker"] == k.as_str()),
            "only killed workers lose leases: {h}"
        );
    }
    // Taken over from the last committed checkpoint, not from the start: the customers
    // pages the emulator served over all attempts stay within one read of each
    // destination's (its page count from the emulator's own row count) and a few pages
    // per kill (those in flight or behind the commit queue when it was killed).
    let served = emu.control("GET", "requests", None)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().contains("CRS610MI/LstByNumber"))
        .count();
    let pages = emulator_count(&emu, "customer").div_ceil(25) + 1;
    eprintln!("customers: {served} pages served for 3 x {pages} pages to read");
    assert!(
        served <= 3 * pages + 4 * killed.len(),
        "customers pages served {served}: more than 3 x {pages} + 4 per kill"
    );
    for (i, (_, _, _)) in PIPELINES.iter().enumerate() {
        for (task, key) in [
            ("customers", "CUNO"),
            ("items", "ITNO"),
            ("suppliers", "SUNO"),
        ] {
            assert_exactly_once(&emu, &dests[i], &envs[i], task, key);
        }
    }
}

#[test]
fn a_worker_stopped_with_sigterm_hands_its_unit_back_and_another_finishes_it() {
    let Setup {
        emu,
        dir,
        ionapi,
        envs,
        dests,
        _drop,
    } = setup(
        EmulatorConfig {
            scale: 1000,
            latency: Duration::from_millis(40),
            ..EmulatorConfig::default()
        },
        "cl_term",
    );
    let file = pipeline_file(dir.path(), &ionapi, &dests, |i| vec![PIPELINES[i].1], "");

    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_term_{}", std::process::id()),
        "30s",
    );
    cluster.submit(&file, true);
    let first = cluster.start_worker();
    // The first worker is well into the customers unit (it commits every page).
    cluster.wait_for(Duration::from_secs(60), "customers under way", |st| {
        st["open"].as_array().unwrap().iter().any(|u| {
            u["task"] == "customers" && u["lease_age_secs"].as_f64().is_some_and(|a| a > 1.0)
        })
    });
    cluster.stop(&first);
    let st = cluster.status();
    let handed: Vec<&Value> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["outcome"] == "handed_back" && h["worker"] == first.as_str())
        .collect();
    assert!(
        !handed.is_empty(),
        "the stopped worker handed its unit back: {st:#}"
    );
    assert!(
        st["open"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["state"] == "queued"),
        "nothing is left running (a lease of 30s would otherwise hold it): {st:#}"
    );
    assert!(
        st["workers"][0]["stopped"].as_bool().unwrap(),
        "the worker is shown stopped: {st:#}"
    );
    // Another worker resumes at once (no lease to wait for) and finishes everything.
    cluster.start_worker();
    cluster.wait_for(Duration::from_secs(90), "every unit done", |st| {
        st["open"].as_array().unwrap().is_empty()
    });
    cluster.stop_all();
    for (i, (_, task, key)) in PIPELINES.iter().enumerate() {
        assert_exactly_once(&emu, &dests[i], &envs[i], task, key);
    }
}

#[test]
fn submit_refuses_an_invalid_file_and_an_unreachable_coordinator_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::new(
        dir.path(),
        &format!("cl_refuse_{}", std::process::id()),
        "30s",
    );
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[environments.e]\ndestination = { type = \"jsonl\", path = \"out\" }\n\n[connections.c]\nconnector = \"no-such-connector\"\ncredentials = { vault = \"x\" }\n\n[pipelines.p]\nconnection = \"c\"\nenvironment = \"e\"\n",
    )
    .unwrap();
    let out = cluster
        .ionport()
        .args(["cluster", "submit"])
        .arg(&file)
        .output()
        .unwrap();
    let text = ionport_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("bad.toml:5:") && text.contains("no-such-connector"),
        "names the file, line and connector: {text}"
    );
    assert!(text.contains("nothing was submitted"), "{text}");
    // The coordinator exists (created by the status call) and holds no pipeline.
    assert_eq!(cluster.status()["pipelines"], serde_json::json!([]));

    // A coordinator that does not answer: an error, never the URL's password.
    let canary = "CANARY-coordinator-pw-7f3a";
    let out = cluster
        .ionport()
        .args(["cluster", "status", "--coordinator"])
        .arg(format!("postgres://postgres:{canary}@127.0.0.1:1/test"))
        .output()
        .unwrap();
    let text = ionport_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("coordinator"), "{text}");
    assert!(!text.contains(canary), "the password leaked: {text}");
}

/// A TCP forwarder to the test's Postgres that can be cut: the network between one worker
/// and the coordinator.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn start(target: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, s, target) = (cut.clone(), streams.clone(), target.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused after the cut
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut all = s.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                all.push(client);
                all.push(server);
            }
        });
        Proxy { port, cut, streams }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_worker_cut_off_from_the_coordinator_stops_its_unit_and_another_takes_it_over() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 2000,
        latency: Duration::from_millis(40),
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dests = dests(dir.path(), "unused");
    // The SQLite pipeline only.
    let file = pipeline_file(dir.path(), &ionapi, &dests, |_| vec!["customers"], "");
    let text = std::fs::read_to_string(&file).unwrap();
    let end = text.find("[environments.env_p_items]").unwrap();
    // No daily budget: a budget's reservation made through the cut connection fails the
    // read at once (closed, as it must), which would race the watchdog this test is about.
    let text = text[..end].replace(
        "quota = \"none\"",
        "quota = \"none\"\ndaily_budget = \"none\"",
    );
    assert!(text.contains("daily_budget = \"none\""), "{text}");
    std::fs::write(&file, text).unwrap();

    let mut cluster = Cluster::new(dir.path(), &format!("cl_cut_{}", std::process::id()), "3s");
    cluster.submit(&file, true);
    // The first worker reaches the coordinator through the proxy only.
    let proxy = Proxy::start(&pg_addr());
    let url = url_through(&pg_url(), proxy.port);
    let first = {
        let id = "w1".to_string();
        cluster.started = 1;
        let log = std::fs::File::create(dir.path().join("w1.log")).unwrap();
        let child = cluster
            .ionport()
            .args([
                "worker", "--id", &id, "--slots", "1", "--poll", "200ms", "--lease", "3s",
            ])
            .env("IONPORT_COORDINATOR", &url)
            .env("IONPORT_LOG", "ionport::cluster=info,ionport::read=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        cluster.workers.insert(id.clone(), child);
        id
    };
    cluster.wait_for(Duration::from_secs(60), "customers under way", |st| {
        st["open"].as_array().unwrap().iter().any(|u| {
            u["worker"] == first.as_str() && u["lease_age_secs"].as_f64().is_some_and(|a| a > 0.5)
        })
    });
    proxy.cut();
    let second = cluster.start_worker();
    let st = cluster.wait_for(Duration::from_secs(90), "the unit done", |st| {
        st["open"].as_array().unwrap().is_empty()
    });
    cluster.stop_all();
    let logs = cluster.logs();
    let unit = &st["recent"][0];
    assert_eq!(unit["state"], "done", "{st:#}");
    assert_eq!(unit["worker"], second.as_str(), "{st:#}");
    let outcomes: Vec<(String, String)> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["worker"].as_str().unwrap().to_string(),
                h["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (first.clone(), "lease_lost".to_string()),
            (second.clone(), "done".to_string())
        ],
        "{st:#}"
    );
    // The cut-off worker stopped its unit by itself (no renewal for two thirds of a lease).
    assert!(
        logs.lines()
            .any(|l| l.contains("no lease renewal for") && l.contains("stopping the unit")),
        "{logs}"
    );
    assert_exactly_once(&emu, &dests[0], "env_p_customers", "customers", "CUNO");
}

/// The host and port of the tests' Postgres.
fn pg_addr() -> String {
    let url = pg_url();
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    }
}

/// `url` with its host and port replaced by the proxy's.
fn url_through(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!(
        "{scheme}://{}127.0.0.1:{port}/{path}",
        userinfo.unwrap_or_default()
    )
}

#[test]
fn a_unit_whose_task_left_the_file_fails_naming_it() {
    let emu = Emulated::start(EmulatorConfig {
        scale: 100,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dests = dests(dir.path(), "unused");
    let sqlite_only = |file: &Path| {
        let text = std::fs::read_to_string(file).unwrap();
        let end = text.find("[environments.env_p_items]").unwrap();
        std::fs::write(file, &text[..end]).unwrap();
    };
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("cl_gone_{}", std::process::id()),
        "30s",
    );
    let file = pipeline_file(
        dir.path(),
        &ionapi,
        &dests,
        |_| vec!["customers", "items"],
        "",
    );
    sqlite_only(&file);
    cluster.submit(&file, true);
    // Submitted again without `items` before any worker ran its unit.
    let file = pipeline_file(dir.path(), &ionapi, &dests, |_| vec!["customers"], "");
    sqlite_only(&file);
    cluster.submit(&file, false);
    cluster.start_worker();
    let st = cluster.wait_for(Duration::from_secs(60), "both units ended", |st| {
        st["open"].as_array().unwrap().is_empty()
    });
    cluster.stop_all();
    let by_task = |t: &str| {
        st["recent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["task"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_task("customers")["state"], "done", "{st:#}");
    let items = by_task("items");
    assert_eq!(items["state"], "failed", "{st:#}");
    let error = items["error"].as_str().unwrap();
    assert!(
        error.contains("p_customers") && error.contains("no task 'items'"),
        "{error}"
    );
}
