//! Change stamps as epoch milliseconds and the ISO-8601 UTC text `infor.lastmodified()`
//! compares with. The calendar is jiff's: a date that does not exist (`2025-02-31`) is
//! refused, never rolled over into the next month.

use jiff::Timestamp;
use jiff::fmt::temporal::Pieces;
use jiff::tz::Offset;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds (clamped to years -9999 to 9999).
pub fn iso(ms: i64) -> String {
    let ms = ms.clamp(
        Timestamp::MIN.as_millisecond(),
        Timestamp::MAX.as_millisecond(),
    );
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    // Always three digits: the query compares the text, and a shorter fraction sorts wrong.
    format!("{:.3}", ts)
}

/// Parses an ISO-8601 time — `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]` — into epoch
/// milliseconds, UTC without an offset. `None` for anything else, an impossible date
/// included.
pub fn parse_iso(s: &str) -> Option<i64> {
    // Pieces rather than `DateTime`'s parser, which would read past an offset it cannot
    // use (`+25:00`) and take the clock time as UTC.
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

    #[test]
    fn round_trips() {
        let ms = parse_iso("2025-03-01T10:20:30.456Z").unwrap_or_default();
        assert_eq!(iso(ms), "2025-03-01T10:20:30.456Z");
        assert_eq!(iso(1_740_824_400_000), "2025-03-01T10:20:00.000Z");
        assert_eq!(
            parse_iso("2025-03-01T12:00:00+02:00"),
            parse_iso("2025-03-01T10:00:00Z")
        );
        // 2025-03-01T00:00:00Z, counted by hand: 55 years of 365 days, 14 leap days (1972 to 2024), 59 days.
        let midnight = ((55 * 365 + 14 + 59) * 86_400) * 1000;
        assert_eq!(parse_iso("2025-03-01"), Some(midnight));
        assert_eq!(parse_iso("2025-03-01T00:00"), Some(midnight));
        assert_eq!(parse_iso(" 2025-03-01 00:00:00 "), Some(midnight));
    }

    #[test]
    fn impossible_dates_and_times_are_refused() {
        for bad in [
            "2025-02-31",
            "2025-02-29T00:00:00Z",
            "2025-04-31T10:00:00Z",
            "2025-13-01",
            "2025-00-10",
            "2025-03-01T24:00:00Z",
            "2025-03-01T10:60Z",
            "2025-3-1",
            "2025-03-01T10:00:00Z[Europe/Paris]",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert!(parse_iso("2024-02-29T00:00:00Z").is_some());
    }
}
