//! Which tick of a pipeline's schedule is due: a pure function of the schedule, the last
//! tick fired (or when the pipeline was submitted) and the coordinator's clock, so that
//! every worker computes the same tick and the `ticks` table's key lets one of them fire it.

use std::time::{Duration, SystemTime};

use ionport_core::pipeline::Schedule;

/// The tick due at `now`, if any: the latest time of the schedule at or before `now` that
/// comes after `last` (ticks missed while the cluster was down or a run lasted are
/// skipped, as `ionport daemon` skips them). Without a `last`, an interval's first tick is
/// the submission itself (the daemon runs at its start), a cron's the first match after it.
pub(crate) fn due(
    schedule: &Schedule,
    last: Option<SystemTime>,
    submitted: SystemTime,
    now: SystemTime,
) -> Result<Option<SystemTime>, String> {
    let mut at = match (last, schedule) {
        (None, Schedule::Every(_)) => submitted,
        (None, Schedule::Cron { .. }) => schedule.next_after(submitted)?,
        (Some(l), _) => schedule.next_after(l)?,
    };
    if at > now {
        return Ok(None);
    }
    match schedule {
        Schedule::Every(every) => {
            // Whole intervals from `at` to `now`, without stepping through them.
            let behind = now.duration_since(at).unwrap_or_default();
            let steps = behind.as_nanos() / every.as_nanos().max(1);
            let skip = every
                .checked_mul(u32::try_from(steps).map_err(|_| "too many intervals behind")?)
                .ok_or("too many intervals behind")?;
            at += skip;
        }
        Schedule::Cron { .. } => {
            // At most a year of minutes behind (the cluster down that long).
            for _ in 0..600_000 {
                let next = schedule.next_after(at)?;
                if next > now {
                    break;
                }
                at = next;
            }
        }
    }
    Ok(Some(truncate_to_micros(at)))
}

/// Postgres keeps microseconds: a tick computed with nanoseconds would not compare equal
/// to itself read back.
fn truncate_to_micros(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_micros(d.as_micros() as u64),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn an_interval_fires_at_submission_then_on_its_grid_skipping_missed_ticks() {
        let every = Schedule::parse("every 10s").unwrap();
        let sub = at(1_000);
        assert_eq!(due(&every, None, sub, at(1_000)).unwrap(), Some(at(1_000)));
        assert_eq!(due(&every, Some(at(1_000)), sub, at(1_009)).unwrap(), None);
        assert_eq!(
            due(&every, Some(at(1_000)), sub, at(1_010)).unwrap(),
            Some(at(1_010))
        );
        // Down for a while: the latest grid point only.
        assert_eq!(
            due(&every, Some(at(1_000)), sub, at(1_075)).unwrap(),
            Some(at(1_070))
        );
    }

    #[test]
    fn a_cron_fires_at_its_latest_match() {
        let cron = Schedule::parse("cron: */5 * * * *").unwrap();
        let sub = at(0);
        assert_eq!(due(&cron, None, sub, at(299)).unwrap(), None);
        assert_eq!(due(&cron, None, sub, at(300)).unwrap(), Some(at(300)));
        assert_eq!(
            due(&cron, Some(at(300)), sub, at(1_250)).unwrap(),
            Some(at(1_200))
        );
    }
}
