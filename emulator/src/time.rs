//! Epoch milliseconds, `yyyyMMdd` dates and ISO-8601 timestamps in UTC, over jiff's
//! calendar: a date that does not exist (`2025-02-31`) is refused, never rolled over.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::fmt::temporal::Pieces;
use jiff::tz::Offset;

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The UTC civil time of `ms` (clamped to years -9999 to 9999, jiff's range).
fn civil(ms: i64) -> DateTime {
    let ms = ms.clamp(
        Timestamp::MIN.as_millisecond(),
        Timestamp::MAX.as_millisecond(),
    );
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    Offset::UTC.to_datetime(ts)
}

/// The civil date of a `yyyyMMdd` number, if it is a real date.
fn date_of(yyyymmdd: u32) -> Option<Date> {
    let year = i16::try_from(yyyymmdd / 10_000).ok()?;
    let month = i8::try_from(yyyymmdd / 100 % 100).ok()?;
    let day = i8::try_from(yyyymmdd % 100).ok()?;
    Date::new(year, month, day).ok()
}

/// `yyyyMMdd` as a number, of the UTC day of `ms`.
#[must_use]
pub fn ms_to_yyyymmdd(ms: i64) -> u32 {
    let d = civil(ms).date();
    // Generated data lies in years 1 to 9999, where the number has its eight digits.
    u32::try_from(i32::from(d.year()) * 10_000 + i32::from(d.month()) * 100 + i32::from(d.day()))
        .unwrap_or(0)
}

/// Epoch milliseconds of midnight UTC of a `yyyyMMdd` date; `None` for a date that does
/// not exist (`20250231`).
#[must_use]
pub fn yyyymmdd_to_ms(date: u32) -> Option<i64> {
    let ts = Offset::UTC.to_timestamp(date_of(date)?.to_datetime(jiff::civil::Time::midnight()));
    Some(ts.ok()?.as_millisecond())
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
    let t = civil(ms);
    // By hand from jiff's fields rather than its formatter: this runs for every
    // timestamp of every generated page.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses `YYYY-MM-DD`, `YYYYMMDD` or `YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM]` (UTC when no
/// offset is given) into epoch milliseconds; `None` for anything else, an impossible date
/// included.
#[must_use]
pub fn parse_iso(s: &str) -> Option<i64> {
    // Pieces rather than `DateTime`'s parser, which would read past an offset it cannot
    // use and take the clock time as UTC.
    let p = Pieces::parse(s.trim()).ok()?;
    if p.time_zone_annotation().is_some() {
        return None;
    }
    let at = p.date().to_datetime(p.time().unwrap_or_default());
    let offset = p.to_numeric_offset().unwrap_or(Offset::UTC);
    Some(offset.to_timestamp(at).ok()?.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

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
        assert_eq!(yyyymmdd_to_ms(19700102), Some(DAY_MS));
        // 2025-03-01 is day 20148 since 1970 (`date -u -d 2025-03-01 +%s` / 86400).
        assert_eq!(yyyymmdd_to_ms(20250301), Some(20_148 * DAY_MS));
        assert_eq!(ms_to_iso(20_148 * DAY_MS - 1), "2025-02-28T23:59:59.999Z");
        assert_eq!(ms_to_yyyymmdd(-1), 19691231);
    }

    #[test]
    fn impossible_dates_are_refused() {
        for bad in [
            "2025-02-31",
            "20250231",
            "2025-02-29",
            "2025-04-31T00:00:00Z",
            "2025-13-01",
            "2025-03-01T24:00:00Z",
            "2025-03-01T10:60Z",
            "2025-3-1",
            "2025-03-01T10:00:00Z[Europe/Paris]",
            "",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert_eq!(yyyymmdd_to_ms(20250231), None);
        assert_eq!(yyyymmdd_to_ms(20251301), None);
        assert!(parse_iso("2024-02-29").is_some());
    }

    #[test]
    fn a_filter_on_an_impossible_date_compares_with_nothing() {
        use crate::data::{Kind, Val};
        use crate::query::{Lit, compare};
        let march_first = Val::Date(20250301);
        for lit in ["2025-02-31", "2025-02-31T00:00:00Z"] {
            assert_eq!(
                compare(&march_first, Kind::D, &Lit::Str(lit.into())),
                None,
                "{lit}"
            );
        }
        assert_eq!(
            compare(&march_first, Kind::D, &Lit::Str("2025-02-28".into())),
            Some(std::cmp::Ordering::Greater)
        );
    }
}
