//! A billing month (`YYYY-MM`): the calendar month of Europe/Paris local
//! dates (rating.md §1).

use chrono::{Datelike, NaiveDate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    first: NaiveDate,
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a month: use YYYY-MM, e.g. 2026-10")]
pub struct BadMonth(pub String);

impl std::str::FromStr for Month {
    type Err = BadMonth;
    fn from_str(text: &str) -> Result<Month, BadMonth> {
        let bad = || BadMonth(text.to_string());
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: u32 = month.parse().map_err(|_| bad())?;
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Ok(Month { first })
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first.format("%Y-%m"))
    }
}

impl Month {
    pub fn first_day(&self) -> NaiveDate {
        self.first
    }
    /// The first day of the next month.
    pub fn next_first_day(&self) -> NaiveDate {
        self.first
            .checked_add_months(chrono::Months::new(1))
            .expect("a month after year 9999 is not a billing month")
    }
    pub fn last_day(&self) -> NaiveDate {
        self.next_first_day().pred_opt().expect("a day before")
    }
    pub fn days(&self) -> i64 {
        self.last_day().day() as i64
    }
    pub fn year(&self) -> i32 {
        self.first.year()
    }
    /// The month of a day.
    pub fn of(day: NaiveDate) -> Month {
        Month {
            first: day.with_day(1).expect("every month has a 1st"),
        }
    }
    /// The month before (a credit note of November corrects a billing month
    /// whose invoices were issued in November: October's).
    pub fn previous(&self) -> Option<Month> {
        self.first
            .checked_sub_months(chrono::Months::new(1))
            .map(|first| Month { first })
    }
}

/// Days since 1970-01-01, as Arrow's `Date32` counts them.
pub fn epoch_days(date: chrono::NaiveDate) -> i32 {
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_days() {
        let m: Month = "2026-02".parse().unwrap();
        assert_eq!(m.days(), 28);
        assert_eq!(m.last_day().to_string(), "2026-02-28");
        assert_eq!(m.to_string(), "2026-02");
        assert!("2026-13".parse::<Month>().is_err());
        assert!("2026-1".parse::<Month>().is_err());
        assert_eq!(
            "2026-12"
                .parse::<Month>()
                .unwrap()
                .next_first_day()
                .to_string(),
            "2027-01-01"
        );
    }
}
