//! One `ionport run` of one task into one destination, measured from outside: wall
//! seconds, the child's CPU (user+sys, from the kernel's accounting of waited-for
//! children) and peak RSS (`VmHWM`, polled), and the summary row it prints.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ionport_tests::{ionport_bin, profile_dir};

use crate::dest::Dest;
use crate::sys;
use crate::tasks::BenchTask;

/// How the run is set up beyond its task and destination.
pub struct RunSetup {
    pub page: u32,
    pub pages_in_flight: u32,
    /// The pipeline file's `quota` (`"none"`, `"1000/60"`): the host's client-side limit.
    pub quota: String,
}

pub struct RunFigures {
    /// Records, as the run's own summary row says.
    pub records: u64,
    pub seconds: f64,
    pub peak_rss_kib: u64,
    pub child_cpu: f64,
    /// CPU this process (the emulator) spent meanwhile.
    pub emulator_cpu: f64,
}

impl RunFigures {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
    pub fn cpu_us_per_record(&self) -> f64 {
        self.child_cpu * 1e6 / self.records.max(1) as f64
    }
    pub fn emulator_us_per_record(&self) -> f64 {
        self.emulator_cpu * 1e6 / self.records.max(1) as f64
    }
    pub fn rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

pub fn full_run(
    dir: &Path,
    ionapi: &Path,
    task: &BenchTask,
    dest: &Dest,
    setup: &RunSetup,
) -> RunFigures {
    let file = dir.join(format!("bench-{}-{}.toml", task.task, dest.kind()));
    std::fs::write(
        &file,
        format!(
            r#"
[environments.out]
destination = {dest}

[connections.src]
connector = "{connector}"
credentials = {{ ionapi = '{ionapi}' }}
settings = {settings}
quota = "{quota}"

[pipelines.bench]
connection = "src"
environment = "out"
tasks = ["{task}"]
sync_mode = "full_refresh"
page_size = {page}
pages_in_flight = {pif}
"#,
            dest = dest.toml(),
            connector = task.connector,
            ionapi = ionapi.display(),
            settings = task.settings_toml,
            quota = setup.quota,
            task = task.task,
            page = setup.page,
            pif = setup.pages_in_flight,
        ),
    )
    .unwrap();
    let emu_cpu0 = sys::cpu_seconds("self").unwrap_or(0.0);
    let children_cpu0 = sys::children_cpu_seconds();
    let started = Instant::now();
    let mut child = Command::new(ionport_bin())
        .args(["run", "--quiet"])
        .arg(&file)
        .env("IONPORT_PLUGIN_PATH", profile_dir())
        .env("IONPORT_HOME", dir.join("home"))
        .env_remove("IONPORT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", ionport_bin().display()));
    let pid = child.id();
    // Drain the pipes on threads so the child never blocks on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let mut peak = 0;
    let status = loop {
        // VmHWM is a high-water mark: the last reading before the exit is the peak.
        if let Some(p) = sys::peak_rss_kib(pid) {
            peak = p.max(peak);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    // `try_wait` reaped the child: its CPU is now in this process's children's times.
    let child_cpu = sys::children_cpu_seconds() - children_cpu0;
    let emulator_cpu = sys::cpu_seconds("self").unwrap_or(0.0) - emu_cpu0;
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    assert!(
        status.success(),
        "ionport run of {} into {} failed:\n{stdout}\n{stderr}",
        task.label,
        dest.kind()
    );
    // TASK MODE RECORDS PAGES REQUESTS SECONDS STATUS
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with(&format!("bench/{} ", task.task)))
        .unwrap_or_else(|| panic!("no summary row for {}:\n{stdout}", task.task))
        .split_whitespace()
        .collect();
    let field = |i: usize| -> u64 {
        row.get(i)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("summary row without field {i}: {row:?}"))
    };
    RunFigures {
        records: field(2),
        seconds,
        peak_rss_kib: peak,
        child_cpu,
        emulator_cpu,
    }
}
