//! The TARGET2 calendar of SEPA collections (account.md §8): a direct debit
//! is collected on a TARGET business day, never on a Saturday, a Sunday,
//! 1 January, Good Friday, Easter Monday, 1 May, 25 or 26 December.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm,
/// Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is a date")
}

/// Whether TARGET2 settles on that day.
pub fn is_target_business_day(day: NaiveDate) -> bool {
    if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        return false;
    }
    let easter = easter_sunday(day.year());
    let closed = [(1, 1), (5, 1), (12, 25), (12, 26)];
    !(closed.contains(&(day.month(), day.day()))
        || day == easter - Duration::days(2)
        || day == easter + Duration::days(1))
}

/// The day itself if TARGET2 settles on it, else the next day it does.
pub fn next_target_business_day(day: NaiveDate) -> NaiveDate {
    let mut day = day;
    while !is_target_business_day(day) {
        day += Duration::days(1);
    }
    day
}

/// account.md §8: the collection date of an invoice's direct debit: the
/// later of its due date and its issue date plus the pre-notification
/// days (the invoice, mailed on issue, is the debtor's pre-notification),
/// moved to the next TARGET business day.
pub fn collection_date(
    issue_date: NaiveDate,
    due_date: NaiveDate,
    prenotification_days: u32,
) -> NaiveDate {
    let notified = issue_date + Duration::days(i64::from(prenotification_days));
    next_target_business_day(due_date.max(notified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn easter_sundays_of_known_years() {
        assert_eq!(easter_sunday(2024), day(2024, 3, 31));
        assert_eq!(easter_sunday(2026), day(2026, 4, 5));
        assert_eq!(easter_sunday(2027), day(2027, 3, 28));
        assert_eq!(easter_sunday(2038), day(2038, 4, 25));
    }

    #[test]
    fn collections_move_to_the_next_target_business_day() {
        // Easter Monday 2027 (29 March): Tuesday 30.
        assert_eq!(next_target_business_day(day(2027, 3, 29)), day(2027, 3, 30));
        // Good Friday 2027 (26 March), then the weekend and Easter Monday.
        assert_eq!(next_target_business_day(day(2027, 3, 26)), day(2027, 3, 30));
        // Christmas 2026 is a Friday: 25, 26 (Saturday), 27 (Sunday) -> Monday 28.
        assert_eq!(
            next_target_business_day(day(2026, 12, 25)),
            day(2026, 12, 28)
        );
        // A Sunday -> Monday; 1 May 2027 is a Saturday -> Monday 3.
        assert_eq!(
            next_target_business_day(day(2026, 11, 15)),
            day(2026, 11, 16)
        );
        assert_eq!(next_target_business_day(day(2027, 5, 1)), day(2027, 5, 3));
        // 1 January 2027 is a Friday -> Monday 4.
        assert_eq!(next_target_business_day(day(2027, 1, 1)), day(2027, 1, 4));
        // A business day stays.
        assert_eq!(
            next_target_business_day(day(2026, 11, 17)),
            day(2026, 11, 17)
        );
    }

    #[test]
    fn the_collection_date_leaves_the_pre_notification_time() {
        // Due 15 days after issue, notified 14: the due date (a Monday).
        assert_eq!(
            collection_date(day(2026, 11, 1), day(2026, 11, 16), 14),
            day(2026, 11, 16)
        );
        // Due after 5 days: 14 days of pre-notification first (Sunday 15 -> 16).
        assert_eq!(
            collection_date(day(2026, 11, 1), day(2026, 11, 6), 14),
            day(2026, 11, 16)
        );
        // Due on Easter Monday 2027 -> Tuesday.
        assert_eq!(
            collection_date(day(2027, 3, 1), day(2027, 3, 29), 14),
            day(2027, 3, 30)
        );
    }
}
