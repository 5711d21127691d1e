//! The Rust embedding example (`examples/embed`) runs against the emulator and reads
//! every record of the task it is pointed at.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use ionport_emulator::EmulatorConfig;
use ionport_emulator::data::tables;
use ionport_tests::emulated::Emulated;
use ionport_tests::profile_dir;

const CONO: u32 = 100;

#[test]
fn the_embedding_example_reads_a_whole_task_into_its_callback() {
    let emu = Emulated::start(EmulatorConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("emu.ionapi");
    emu.emu.write_ionapi(&ionapi).unwrap();
    let ds = emu.emu.dataset();
    let expected = (0..ds.count(tables::OCUSMA.entity, CONO))
        .filter(|&i| !ds.record(tables::OCUSMA.entity, CONO, i).deleted())
        .count();
    assert!(expected > 0);

    let bin = profile_dir().join(format!(
        "ionport-embed-example{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first",
        bin.display()
    );
    let out = Command::new(&bin)
        .args(["--plugins"])
        .arg(profile_dir())
        .arg("--ionapi")
        .arg(&ionapi)
        .args(["--connector", "infor-m3", "--task", "customers"])
        .args(["--settings", &format!(r#"{{"company": {CONO}}}"#)])
        .args(["--page-size", "25"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    assert!(stdout.contains("using infor-m3"), "{stdout}");
    assert!(stdout.contains("check: "), "{stdout}");
    // Progress at every checkpoint: pages of 25, so several lines, counts rising to the end.
    let progress: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("progress: customers: "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(progress.len() >= 2, "{stdout}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{stdout}");
    assert_eq!(*progress.last().unwrap(), expected as u64, "{stdout}");
    assert!(
        stdout.contains(&format!("done: {expected} records of customers")),
        "{stdout}"
    );

    // The emulator saw the token revoked at shutdown.
    let counters = emu.control("GET", "counters", None);
    assert!(
        counters["revocations"].as_u64().unwrap_or(0) >= 1,
        "{counters}"
    );
}

#[test]
fn the_embedding_example_names_an_unknown_connector() {
    let dir = tempfile::tempdir().unwrap();
    let ionapi = dir.path().join("none.ionapi");
    let bin = profile_dir().join(format!(
        "ionport-embed-example{}",
        std::env::consts::EXE_SUFFIX
    ));
    let out = Command::new(&bin)
        .arg("--plugins")
        .arg(profile_dir())
        .arg("--ionapi")
        .arg(&ionapi)
        .args(["--connector", "infor-nothing"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no connector 'infor-nothing'"), "{stderr}");
    assert!(stderr.contains("infor-m3"), "{stderr}");
}
