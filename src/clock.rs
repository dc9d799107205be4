//! Time as the whole application keeps it: integer milliseconds since the Unix epoch (UTC),
//! and the one textual form every layer shares (RFC 3339). The web's other forms of a time
//! are in `web/format.rs`.

use std::borrow::Borrow;

use time::OffsetDateTime;
use time::macros::format_description;

/// A day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The instant `ms` milliseconds after the epoch (the epoch itself when out of range).
pub fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 in UTC, e.g. `2026-11-26T14:02:00Z` (for `<time datetime>`, exports and messages).
pub fn iso(ms: impl Borrow<i64>) -> String {
    at(*ms.borrow()).format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap_or_default()
}

/// The first millisecond of a UTC day written `YYYY-MM-DD`, or `None` if it is not a date.
pub fn day_start_ms(raw: &str) -> Option<i64> {
    let mut parts = raw.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}
