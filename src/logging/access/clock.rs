//! Access log timestamps, in UTC, formatted at most once a second per
//! shard: at 200k requests a second, formatting a date per line would
//! show.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The second last formatted, in both formats.
#[derive(Default)]
pub struct Clock {
    second: Option<u64>,
    /// `[10/Oct/2000:13:55:36 +0000]`
    clf: String,
    /// `2000-10-10T13:55:36`: RFC 3339 up to the seconds.
    rfc3339: String,
}

/// One entry's time.
pub struct Stamp<'a> {
    pub clf: &'a str,
    pub rfc3339_seconds: &'a str,
    pub millis: u32,
}

impl Clock {
    /// The stamp of `time`; a time before 1970 is logged as 1970.
    pub fn stamp(&mut self, time: SystemTime) -> Stamp<'_> {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            self.format(second);
            self.second = Some(second);
        }
        Stamp {
            clf: &self.clf,
            rfc3339_seconds: &self.rfc3339,
            millis: since_epoch.subsec_millis(),
        }
    }

    fn format(&mut self, unix_second: u64) {
        let (year, month, day) = civil_from_days(unix_second / 86_400);
        let in_day = unix_second % 86_400;
        let (hour, minute, second) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
        let month_name = MONTHS[(month - 1) as usize];
        self.clf.clear();
        self.rfc3339.clear();
        // Writing to a String cannot fail.
        let _ = write!(
            self.clf,
            "[{day:02}/{month_name}/{year:04}:{hour:02}:{minute:02}:{second:02} +0000]"
        );
        let _ = write!(
            self.rfc3339,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        );
    }
}

/// (year, month 1–12, day 1–31) of a day counted from 1970-01-01: Howard
/// Hinnant's `civil_from_days`, for days after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that the leap day ends a year.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(unix_millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(unix_millis)
    }

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-02-29, a leap day of a century year; 2100-03-01 follows
        // 2100-02-28 (no leap day).
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn the_cached_second_changes_at_the_boundary() {
        let mut clock = Clock::default();
        let stamp = clock.stamp(at(971_186_136_999));
        assert_eq!(
            (stamp.clf, stamp.rfc3339_seconds, stamp.millis),
            ("[10/Oct/2000:13:55:36 +0000]", "2000-10-10T13:55:36", 999)
        );
        let stamp = clock.stamp(at(971_186_137_000));
        assert_eq!(
            (stamp.clf, stamp.rfc3339_seconds, stamp.millis),
            ("[10/Oct/2000:13:55:37 +0000]", "2000-10-10T13:55:37", 0)
        );
        // A request that started earlier and ended later is stamped with
        // its own second, not the cached one.
        let stamp = clock.stamp(at(971_186_136_500));
        assert_eq!((stamp.clf, stamp.millis), ("[10/Oct/2000:13:55:36 +0000]", 500));
        // Midnight of a new year.
        let stamp = clock.stamp(at(978_307_200_000));
        assert_eq!(stamp.clf, "[01/Jan/2001:00:00:00 +0000]");
    }
}
