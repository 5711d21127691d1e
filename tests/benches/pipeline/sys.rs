//! What the bench reads from `/proc`: CPU times and peak RSS.

/// Linux reports CPU times in `/proc` in units of USER_HZ, 100 per second.
const TICKS_PER_SEC: f64 = 100.0;

/// The fields of `/proc/{pid}/stat` after the command name (which may hold spaces).
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // The state letter comes first; the rest are numbers (some may be negative: 0 then).
    Some(
        after
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// User + system CPU seconds of a process (`self` for this one).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let f = stat_fields(pid)?;
    // After the state: ppid(0) … utime(10) stime(11).
    Some((f.get(10)? + f.get(11)?) as f64 / TICKS_PER_SEC)
}

/// User + system CPU seconds of this process's children that have been waited for
/// (`cutime` + `cstime`, what `getrusage(RUSAGE_CHILDREN)` reports): the difference
/// around one child's run is that child's CPU, exactly, however short-lived it was.
pub fn children_cpu_seconds() -> f64 {
    stat_fields("self")
        .and_then(|f| Some((f.get(12)? + f.get(13)?) as f64 / TICKS_PER_SEC))
        .unwrap_or(0.0)
}

/// Peak resident set size (`VmHWM`) of a running process, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The load average, as `/proc/loadavg` says it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}
