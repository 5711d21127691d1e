//! Calendar arithmetic without a date library: epoch milliseconds, `yyyyMMdd` dates and
//! ISO-8601 timestamps in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
#[must_use]
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number since 1970-01-01.
#[must_use]
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `yyyyMMdd` as a number, of the UTC day of `ms`.
#[must_use]
pub fn ms_to_yyyymmdd(ms: i64) -> u32 {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    (y as u32) * 10_000 + m * 100 + d
}

/// Epoch milliseconds of midnight UTC of a `yyyyMMdd` date.
#[must_use]
pub fn yyyymmdd_to_ms(date: u32) -> i64 {
    days_from_civil(i64::from(date / 10_000), (date / 100) % 100, date % 100) * 86_400_000
}

/// `YYYY-MM-DD` of a `yyyyMMdd` date.
#[must_use]
pub fn yyyymmdd_to_iso(date: u32) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date / 10_000,
        (date / 100) % 100,
        date % 100
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds.
#[must_use]
pub fn ms_to_iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        (rem / 60_000) % 60,
        (rem / 1000) % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DD`, `YYYYMMDD` or `YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM]` (UTC when no
/// offset is given) into epoch milliseconds.
#[must_use]
pub fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() == 8 {
        let n = digits(s)?;
        return valid_date(n / 10_000, (n / 100 % 100) as u32, (n % 100) as u32)
            .map(|days| days * 86_400_000);
    }
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = digits(parts.next()?)?;
    let m = digits(parts.next()?)? as u32;
    let d = digits(parts.next()?)? as u32;
    if parts.next().is_some() {
        return None;
    }
    let days = valid_date(y, m, d)?;
    let mut ms = days * 86_400_000;
    let Some(rest) = rest else { return Some(ms) };
    let (clock, offset_ms) = split_offset(rest)?;
    let mut fields = clock.split(':');
    let h = digits(fields.next()?)?;
    let mi = digits(fields.next()?)?;
    let (sec, frac) = match fields.next() {
        Some(sf) => match sf.split_once('.') {
            Some((a, b)) => (digits(a)?, b),
            None => (digits(sf)?, ""),
        },
        None => (0, ""),
    };
    if fields.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let milli = if frac.is_empty() {
        0
    } else {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        digits(&f)?
    };
    ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + milli;
    Some(ms - offset_ms)
}

fn valid_date(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        return Some((c, 0));
    }
    if let Some(i) = rest.rfind(['+', '-']) {
        let (clock, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        return Some((
            clock,
            sign * (digits(oh)? * 3_600_000 + digits(om)? * 60_000),
        ));
    }
    Some((rest, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ms = parse_iso("2025-03-01T10:20:30.456Z").unwrap_or_default();
        assert_eq!(ms_to_iso(ms), "2025-03-01T10:20:30.456Z");
        assert_eq!(ms_to_yyyymmdd(ms), 20250301);
        assert_eq!(parse_iso("20250301"), parse_iso("2025-03-01"));
        assert_eq!(
            parse_iso("2025-03-01T12:00:00+02:00"),
            parse_iso("2025-03-01T10:00:00Z")
        );
        assert_eq!(parse_iso("2025-02-30"), None);
        assert_eq!(yyyymmdd_to_ms(19700102), 86_400_000);
    }
}
