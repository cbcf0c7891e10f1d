//! Due dates between local days and instants, in Europe/Rome.
//!
//! Tributi files give a due *day*; IO wants an instant. A local due day means the end of
//! that day in Rome, 23:59:59, sent in UTC (FACTS §4): 31 July 2025 is
//! `2025-07-31T21:59:59Z` (summer time), 2 December 2025 is `2025-12-02T22:59:59Z`. The
//! other way, an instant (a GPD `dueDate` with an offset) is read as the day it falls on in
//! Rome.
//!
//! Rome's rules are a POSIX TZ string, not the system's time zone database: a plain value,
//! so converting never reads a file and gives the same answer on every machine.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Europe/Rome (EU summer time: last Sunday of March 02:00 to last Sunday of October
/// 03:00) as a POSIX TZ string, exact for every year since 1996.
const ROME: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

/// The last second of a due day.
const END_OF_DAY: Time = Time::constant(23, 59, 59, 0);

/// Why a due day or instant could not be converted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DueDateError {
    /// Cannot happen with the constant rules above; kept as an error rather than a panic.
    #[error("the Europe/Rome time zone rules could not be built: {source}")]
    TimeZone {
        #[source]
        source: jiff::Error,
    },
    #[error("{date} at 23:59:59 in Europe/Rome is outside the range of supported instants: {source}")]
    OutOfRange {
        date: Date,
        #[source]
        source: jiff::Error,
    },
}

/// The instant a local due day ends: `date` at 23:59:59 Europe/Rome.
///
/// 23:59:59 is never skipped or repeated in Rome (clocks change at 02:00 and 03:00), so the
/// answer is unique.
pub fn due_date_end_of_day(date: Date) -> Result<Timestamp, DueDateError> {
    rome()?.to_timestamp(date.to_datetime(END_OF_DAY)).map_err(|source| DueDateError::OutOfRange { date, source })
}

/// The day `instant` falls on in Rome: the local due day of a due date given as an instant.
pub fn local_due_day(instant: Timestamp) -> Result<Date, DueDateError> {
    Ok(rome()?.to_datetime(instant).date())
}

/// The rules, parsed once: every record of an import asks for them, twice.
fn rome() -> Result<TimeZone, DueDateError> {
    static RULES: std::sync::OnceLock<Result<TimeZone, jiff::Error>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| TimeZone::posix(ROME)).clone().map_err(|source| DueDateError::TimeZone { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn check(day: Date, expected: &str) {
        let end = due_date_end_of_day(day).expect("a day in range");
        assert_eq!(end.to_string(), expected, "{day}");
        assert_eq!(local_due_day(end).expect("in range"), day, "{day} back from {end}");
    }

    #[test]
    fn facts_vectors() {
        check(date(2025, 7, 31), "2025-07-31T21:59:59Z");
        check(date(2025, 12, 2), "2025-12-02T22:59:59Z");
    }

    #[test]
    fn days_of_the_clock_changes() {
        // 2025: summer time from Sunday 30 March, winter time from Sunday 26 October.
        check(date(2025, 3, 29), "2025-03-29T22:59:59Z");
        check(date(2025, 3, 30), "2025-03-30T21:59:59Z");
        check(date(2025, 10, 25), "2025-10-25T21:59:59Z");
        check(date(2025, 10, 26), "2025-10-26T22:59:59Z");
        // A leap day and the turn of the year.
        check(date(2028, 2, 29), "2028-02-29T22:59:59Z");
        check(date(2025, 12, 31), "2025-12-31T22:59:59Z");
    }

    #[test]
    fn agrees_with_the_time_zone_database_where_there_is_one() {
        let Ok(database) = TimeZone::get("Europe/Rome") else {
            return; // No system tzdb here: the fixed vectors above still hold.
        };
        let mut day = date(1996, 1, 1);
        while day < date(2040, 1, 1) {
            let expected = day.to_datetime(END_OF_DAY).to_zoned(database.clone()).expect("in range").timestamp();
            assert_eq!(due_date_end_of_day(day).expect("in range"), expected, "{day}");
            day = day.tomorrow().expect("in range");
        }
    }

    #[test]
    fn instants_are_read_as_the_day_in_rome() {
        let day = |text: &str| local_due_day(text.parse().expect("an instant")).expect("in range");
        assert_eq!(day("2025-07-31T21:59:59Z"), date(2025, 7, 31));
        assert_eq!(day("2025-07-31T22:00:00Z"), date(2025, 8, 1));
        assert_eq!(day("2025-12-02T23:00:00Z"), date(2025, 12, 3));
    }

    #[test]
    fn the_far_end_of_the_calendar_is_an_error() {
        assert!(matches!(due_date_end_of_day(Date::MAX), Err(DueDateError::OutOfRange { .. })));
    }
}
