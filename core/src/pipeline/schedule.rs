//! When `ionport daemon` runs a pipeline: `every` and an interval (humantime's syntax), or
//! `cron:` and a five-field cron expression in UTC (croner).
//!
//! Both live in the one `schedule` key, so that a pipeline cannot say two different
//! things about when it runs; the prefix says which kind, and an error names both.

use std::time::{Duration, SystemTime};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The longest interval: a year (and a leap day). Longer intervals are mistakes, and a
/// daemon adding one to the clock must not overflow.
pub const MAX_SCHEDULE: Duration = Duration::from_secs(366 * 86_400);

const EXPECTED: &str = "expected `every N` with a unit (s, m, h, d; parts may add up, as in \
     \"every 1h 30m\"), from 1s to 366d, or `cron:` and five fields in UTC (minute hour \
     day-of-month month day-of-week, as in \"cron: 0 */2 * * *\")";

/// A pipeline's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// At the daemon's start, then this long after each run started.
    Every(Duration),
    /// At each minute the expression matches, in UTC.
    Cron {
        /// The expression as written, its fields one space apart.
        expr: String,
        /// The expression parsed (boxed: it is large beside an interval).
        cron: Box<Cron>,
    },
}

impl Schedule {
    /// Parses `every 15m` or `cron: 0 */2 * * *`. An error quotes the text and says what
    /// was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(expr) = t.strip_prefix("cron:") {
            let cron = Box::new(parse_cron(s, expr)?);
            let expr = expr.split_whitespace().collect::<Vec<_>>().join(" ");
            return Ok(Schedule::Cron { expr, cron });
        }
        parse_schedule(s).map(Schedule::Every)
    }

    /// The first time strictly after `after` at which the pipeline runs: `after` plus the
    /// interval, or the expression's next match.
    pub fn next_after(&self, after: SystemTime) -> Result<SystemTime, String> {
        match self {
            Schedule::Every(d) => after
                .checked_add(*d)
                .ok_or_else(|| format!("{after:?} plus {d:?} is past the clock's range")),
            Schedule::Cron { cron, .. } => next_match(cron, after),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Cron { expr, .. } => write!(f, "cron: {expr}"),
        }
    }
}

/// Parses `every` and an interval in humantime's syntax: `every 15m`, `every 1h 30m`,
/// `every 30s`, `every 1d`. The interval is at least a second and at most
/// [`MAX_SCHEDULE`]; a number too large for any clock is refused, never wrapped.
pub fn parse_schedule(s: &str) -> Result<Duration, String> {
    let interval = s
        .trim()
        .strip_prefix("every")
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .ok_or_else(|| format!("{s:?}: {EXPECTED}"))?
        .trim();
    let d = humantime::parse_duration(interval).map_err(|e| format!("{s:?}: {e}; {EXPECTED}"))?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?}: the interval must be at least one second; {EXPECTED}"
        ));
    }
    if d > MAX_SCHEDULE {
        return Err(format!(
            "{s:?}: the interval must be at most 366 days; {EXPECTED}"
        ));
    }
    Ok(d)
}

/// Five fields, as crontab(5): seconds and years (croner's extensions) are refused so that
/// `0 0 * * * *` is not read as "every hour" by one tool and an error by another.
fn parse_cron(s: &str, expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 && !expr.trim_start().starts_with('@') {
        return Err(format!("{s:?}: {fields} field(s); {EXPECTED}"));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("{s:?}: {e}; {EXPECTED}"))?;
    // An expression that names no real day (`0 0 30 2 *`) parses; it must not load and
    // then never run.
    next_match(&cron, SystemTime::now())
        .map_err(|_| format!("{s:?}: the expression matches no date; {EXPECTED}"))?;
    Ok(cron)
}

fn next_match(cron: &Cron, after: SystemTime) -> Result<SystemTime, String> {
    let ts = Timestamp::try_from(after).map_err(|e| format!("{after:?}: {e}"))?;
    let next = cron
        .find_next_occurrence(&ts.to_zoned(TimeZone::UTC), false)
        .map_err(|e| format!("cron: {}: {e}", cron.as_str()))?;
    Ok(SystemTime::from(next.timestamp()))
}
