//! Units smaller than a task: a task read in partitions (`partitions = 3`) is three units
//! of work, each claimed, leased, checkpointed and taken over on its own. Real `ionport
//! worker` processes on the machine's Postgres as coordinator (a schema per test), the
//! `infor-ionapi` connector reading the emulator's offset-paged widgets into Postgres.
//!
//! The oracle is the emulator: its documented widget formula (`W{i:06}` for `i` in
//! `1..=scale`) for the records, its own request log for the pages it served.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ionport_emulator::EmulatorConfig;
use ionport_tests::cluster::{Cluster, widget_offsets, widgets_pipeline};
use ionport_tests::destinations::{Dest, DropSchemas, pg_client};
use ionport_tests::emulated::Emulated;
use serde_json::Value;

/// Records per page of the tests' pipelines.
const PAGE: u64 = 25;

/// `key=value` of a log line.
fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Every widget of the emulator's formula in the destination. (The table's key keeps one
/// row per widget whatever was read: that nothing was read twice is shown by the pages
/// the emulator served and the records the reads handed over.)
fn assert_every_widget_once(dest: &Dest, scale: u64) {
    let rows = dest.rows("env_widgets", "widgets");
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = (1..=scale).map(|i| format!("W{i:06}")).collect();
    assert_eq!(ids, want, "every widget of the emulator");
}

/// The pages of `scale` widgets (each offset a page starts at) and the empty page after
/// them that ends the listing.
fn pages(scale: u64) -> BTreeSet<u64> {
    (0..=scale / PAGE).map(|p| p * PAGE).collect()
}

/// The units of the widgets task: partition → (state, attempts, unit id).
fn partition_units(st: &Value) -> BTreeMap<i64, (String, i64, i64)> {
    st["open"]
        .as_array()
        .unwrap()
        .iter()
        .chain(st["recent"].as_array().unwrap())
        .filter(|u| u["task"] == "widgets")
        .map(|u| {
            assert_eq!(u["partitions"], 3, "{u}");
            (
                u["partition"].as_i64().unwrap(),
                (
                    u["state"].as_str().unwrap().to_string(),
                    u["attempts"].as_i64().unwrap(),
                    u["id"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

struct Setup {
    emu: Emulated,
    dir: tempfile::TempDir,
    dest: Dest,
    file: std::path::PathBuf,
    _drop: DropSchemas,
}

fn setup(name: &str, scale: u64) -> Setup {
    let emu = Emulated::start(EmulatorConfig {
        scale,
        latency: Duration::from_millis(40),
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let prefix = format!("{name}_{}", std::process::id());
    let _drop = DropSchemas::new(&prefix, &["env_widgets"]);
    let dest = Dest::Postgres(prefix);
    let file = widgets_pipeline(
        dir.path(),
        &ionapi,
        &dest.toml("env_widgets"),
        3,
        PAGE as u32,
    );
    Setup {
        emu,
        dir,
        dest,
        file,
        _drop,
    }
}

#[test]
fn a_task_in_three_partitions_is_three_units_run_side_by_side_each_once() {
    let scale = 1500;
    let Setup {
        emu,
        dir,
        dest,
        file,
        _drop,
    } = setup("clp_three", scale);
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("clp_three_{}", std::process::id()),
        "10s",
    );
    for _ in 0..3 {
        cluster.start_worker();
    }
    cluster.submit(&file, true);
    // While they run: at some moment, more than one partition of the task is running (one
    // writer per partition on Postgres, not one per destination).
    let most_at_once = std::cell::Cell::new(0);
    let st = cluster.wait_for(Duration::from_secs(120), "every partition done", |st| {
        let running = st["open"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["state"] == "running")
            .count();
        most_at_once.set(most_at_once.get().max(running));
        let units = partition_units(st);
        units.len() == 3 && units.values().all(|u| u.0 == "done")
    });
    cluster.stop_all();
    let units = partition_units(&st);
    assert_eq!(
        units.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2],
        "{st:#}"
    );
    assert!(
        units.values().all(|(_, attempts, _)| *attempts == 1),
        "each partition ran once: {st:#}"
    );
    assert!(
        most_at_once.get() >= 2,
        "partitions ran side by side: {st:#}"
    );
    // The workers' logs: each unit claimed once, one read of core's read path per unit.
    let logs = cluster.logs();
    let mut claimed: BTreeMap<String, usize> = BTreeMap::new();
    let mut reads = 0;
    let mut handed_over = 0;
    for line in logs.lines() {
        if line.contains("unit claimed") {
            *claimed.entry(field(line, "unit").unwrap()).or_default() += 1;
        } else if line.contains("ionport::read") && line.contains("read finished") {
            reads += 1;
            handed_over += field(line, "records")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("a read's records: {line}"));
        }
    }
    assert_eq!(claimed.len(), 3, "{logs}");
    assert!(claimed.values().all(|&n| n == 1), "{claimed:?}");
    assert_eq!(reads, 3, "{logs}");
    assert_eq!(
        handed_over, scale,
        "the partitions' reads handed over each widget once"
    );
    // The emulator served every page once: no partition read another's.
    let served = widget_offsets(&emu);
    let distinct: BTreeSet<u64> = served.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        served.len(),
        "a page served twice: {served:?}"
    );
    assert!(
        distinct.is_superset(&pages(scale).into_iter().filter(|o| *o < scale).collect()),
        "every page: {served:?}"
    );
    assert_every_widget_once(&dest, scale);
    // A state per partition, committed with its records.
    let states: BTreeSet<String> = pg_client()
        .query(
            &format!(
                "SELECT stream FROM \"clp_three_{}_env_widgets\"._ionport_state",
                std::process::id()
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: BTreeSet<String> = (0..3).map(|i| format!("widgets#{i}/3")).collect();
    assert_eq!(states, want);
    // `cluster status` names each unit's partition.
    let out = cluster
        .ionport()
        .args(["cluster", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..3 {
        assert!(
            text.contains(&format!("p_widgets/widgets [{i}/3]")),
            "{text}"
        );
    }
}

#[test]
fn a_worker_killed_holding_a_partition_loses_it_to_the_others_and_nothing_is_lost_or_doubled() {
    let scale = 4000;
    let Setup {
        emu,
        dir,
        dest,
        file,
        _drop,
    } = setup("clp_kill", scale);
    let mut cluster = Cluster::new(
        dir.path(),
        &format!("clp_kill_{}", std::process::id()),
        "2s",
    );
    for _ in 0..3 {
        cluster.start_worker();
    }
    cluster.submit(&file, true);
    // A worker well into a partition (it commits every page).
    let st = cluster.wait_for(Duration::from_secs(60), "a partition under way", |st| {
        st["open"].as_array().unwrap().iter().any(|u| {
            u["task"] == "widgets" && u["lease_age_secs"].as_f64().is_some_and(|a| a > 1.0)
        })
    });
    let unit = st["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["lease_age_secs"].as_f64().is_some_and(|a| a > 1.0))
        .unwrap()
        .clone();
    let victim = unit["worker"].as_str().unwrap().to_string();
    let mut child = cluster.workers.remove(&victim).unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Instant::now();
    let st = cluster.wait_for(Duration::from_secs(120), "every partition done", |st| {
        let units = partition_units(st);
        units.len() == 3 && units.values().all(|u| u.0 == "done")
    });
    cluster.stop_all();
    // The killed unit's attempt is a lost lease, taken over and finished by another.
    let history: Vec<&Value> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["unit"] == unit["id"])
        .collect();
    assert_eq!(history.len(), 2, "{st:#}");
    assert_eq!(history[0]["outcome"], "lease_lost");
    assert_eq!(history[0]["worker"], victim.as_str());
    assert_eq!(history[1]["outcome"], "done");
    assert_ne!(history[1]["worker"], victim.as_str());
    eprintln!(
        "partition {} of worker {victim} taken over and done {:.1}s after the kill",
        unit["partition"],
        killed_at.elapsed().as_secs_f64()
    );
    // Taken over from the partition's last committed checkpoint: the emulator served every
    // page, and again only the few the dead worker had in flight or uncommitted.
    let served = widget_offsets(&emu);
    let distinct: BTreeSet<u64> = served.iter().copied().collect();
    let again = served.len() - distinct.len();
    eprintln!("{} pages served, {again} of them again", served.len());
    assert!(again <= 4, "{again} pages served again: {served:?}");
    assert_every_widget_once(&dest, scale);
}

/// `cluster submit` validates with core's loader: each misuse of `partitions` is refused
/// at its place, naming the task and what to do, and nothing is stored.
#[test]
fn partitions_are_refused_where_they_cannot_be_exact() {
    let emu = Emulated::start(EmulatorConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let cluster = Cluster::new(
        dir.path(),
        &format!("clp_refuse_{}", std::process::id()),
        "10s",
    );
    let sqlite = format!(
        "{{ type = \"sqlite\", path = '{}' }}",
        dir.path().join("w.db").display()
    );
    let base = widgets_pipeline(dir.path(), &ionapi, &sqlite, 3, 25);
    let base = std::fs::read_to_string(base).unwrap();
    let jsonl = format!(
        "{{ type = \"jsonl\", path = '{}' }}",
        dir.path().join("j").display()
    );
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace(&sqlite, &jsonl),
            "a partitioned task needs a SQLite or Postgres destination",
        ),
        (
            base.replace("partitions = 3", "partitions = 0"),
            "tasks[0].partitions: expected 1 to 64, not 0",
        ),
        (
            base.replace("partitions = 3 }", "partitions = 3, deletes = \"soft\" }"),
            "a partitioned task cannot keep deletions",
        ),
        (
            // The built-in stream is paged by nothing: not partitionable.
            base.replace("name = \"widgets\"", "name = \"service_account\""),
            "task 'service_account' cannot be partitioned: its connector does not declare",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = cluster
            .ionport()
            .args(["cluster", "submit"])
            .arg(&file)
            .output()
            .unwrap();
        let text = ionport_tests::output_text(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {text}");
        assert!(text.contains(expected), "case {i}: {text}");
        // Located: the file and the line of the task's table.
        assert!(
            text.contains(&format!("{}:", file.display())),
            "case {i}: {text}"
        );
        assert!(text.contains("nothing was submitted"), "case {i}: {text}");
    }
    let st = cluster.status();
    assert!(st["pipelines"].as_array().unwrap().is_empty(), "{st:#}");
    // A stream the connector discovers (a manifest's) has its spec only when the run
    // starts: an incremental one is refused then, before anything is read.
    let file = dir.path().join("incremental.toml");
    std::fs::write(&file, base.replace("sync_mode = \"full_refresh\"\n", "")).unwrap();
    let out = cluster.ionport().arg("run").arg(&file).output().unwrap();
    let text = ionport_tests::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("task 'widgets' reads incrementally, and a partitioned task reads in full"),
        "{text}"
    );
    assert!(widget_offsets(&emu).is_empty(), "nothing was read");
}

/// Without a cluster, `ionport run` reads the partitions one after the other, each with
/// its state in the destination: every widget once, run after run.
#[test]
fn ionport_run_reads_the_partitions_one_after_the_other_into_sqlite() {
    let scale = 260;
    let emu = Emulated::start(EmulatorConfig {
        scale,
        ..EmulatorConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let dest = Dest::Sqlite(dir.path().to_path_buf());
    let file = widgets_pipeline(
        dir.path(),
        &ionapi,
        &dest.toml("env_widgets"),
        3,
        PAGE as u32,
    );
    let cluster = Cluster::new(
        dir.path(),
        &format!("clp_run_{}", std::process::id()),
        "10s",
    );
    for run in 1..=2 {
        let out = cluster.ionport().arg("run").arg(&file).output().unwrap();
        let text = ionport_tests::output_text(&out);
        assert!(out.status.success(), "run {run}: {text}");
        assert_every_widget_once(&dest, scale);
    }
    // Each page of the listing once per run (the three partitions' end probes aside).
    let served = widget_offsets(&emu);
    let distinct: BTreeSet<u64> = served.iter().copied().collect();
    assert!(distinct.is_superset(&pages(scale)), "{served:?}");
    assert!(served.len() <= 2 * (distinct.len() + 2), "{served:?}");
    let out = cluster
        .ionport()
        .args(["state", "show"])
        .arg(&file)
        .args(["--json"])
        .output()
        .unwrap();
    let text = ionport_tests::output_text(&out);
    for i in 0..3 {
        assert!(text.contains(&format!("widgets#{i}/3")), "{text}");
    }
    // Resetting the task resets its partitions.
    let out = cluster
        .ionport()
        .args(["state", "reset"])
        .arg(&file)
        .args(["--pipeline", "p_widgets", "--task", "widgets"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", ionport_tests::output_text(&out));
    let out = cluster
        .ionport()
        .args(["state", "show"])
        .arg(&file)
        .args(["--json"])
        .output()
        .unwrap();
    let text = ionport_tests::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("widgets#"), "{text}");
}
