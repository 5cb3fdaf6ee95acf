//! The duration calculator ("calculette temporelle"): converts and sums
//! call durations, and shows what one call of the sum's length is billed
//! under the voice increments of each price grid (rating.md §3).
//!
//! Durations are written `1h02m05s` (also `2m`, `45s`, `1h`, `2min`, and
//! `1h30` or `2m30`, where a last number without a unit is in the next
//! smaller unit), `90` (seconds), `hh:mm:ss` or `mm:ss`; after the first
//! field or unit, minutes and seconds are below 60 (`90m` and `90:00` are
//! fine, `1h90m` and `1:90:00` are refused as likely typos). They are whole seconds, counted exactly
//! in integers; a total beyond [`MAX_SECONDS`] is refused.
//!
//! The grids are the `rate_grids.csv` rows of the configuration's
//! `[reference] dir` with voice increments (`VOICE`, and `VOICE_IN` for
//! incoming calls while roaming), each the version in force on the day asked
//! (latest `valid_from` on or before it). A grid whose zones have different
//! increments shows one line per set of increments, with its zones. Without
//! a configuration file the report converts and sums only, and says so.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use crate::reference::{IncrementRow, Reference, ReferenceError};
use crate::settings::{Settings, SettingsError};

/// The longest duration accepted, alone or summed: 10¹² s (about 31,700
/// years), far beyond any call, and small enough that no billing overflows.
pub const MAX_SECONDS: u64 = 1_000_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("duration '{argument}' (argument {position}): {message}")]
    Argument {
        argument: String,
        position: usize,
        message: String,
    },
    #[error("the durations add up to more than {MAX_SECONDS} s")]
    TooLong,
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// Parses one duration into seconds, or says why it is not one.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the duration is empty".into());
    }
    let seconds = if text.bytes().all(|b| b.is_ascii_digit()) {
        whole(text)?
    } else if text.contains(':') {
        parse_clock(text)?
    } else {
        parse_units(text)?
    };
    if seconds > MAX_SECONDS {
        return Err(format!("longer than {MAX_SECONDS} s"));
    }
    Ok(seconds)
}

fn whole(digits: &str) -> Result<u64, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{digits}' is not a whole number"));
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= MAX_SECONDS)
        .ok_or_else(|| format!("longer than {MAX_SECONDS} s"))
}

/// `hh:mm:ss` or `mm:ss`.
fn parse_clock(text: &str) -> Result<u64, String> {
    let fields: Vec<&str> = text.split(':').collect();
    let shape = || format!("'{text}' is not hh:mm:ss or mm:ss");
    if !(2..=3).contains(&fields.len())
        || fields
            .iter()
            .any(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(shape());
    }
    let values = fields
        .iter()
        .map(|f| whole(f))
        .collect::<Result<Vec<_>, _>>()?;
    let names = if values.len() == 3 {
        ["hours", "minutes", "seconds"].as_slice()
    } else {
        ["minutes", "seconds"].as_slice()
    };
    for (i, (value, name)) in values.iter().zip(names).enumerate() {
        if i > 0 && (*value >= 60 || fields[i].len() > 2) {
            return Err(format!("the {name} ({}) must be below 60", fields[i]));
        }
    }
    let (hours, minutes, seconds) = match values.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [m, s] => (0, *m, *s),
        _ => return Err(shape()),
    };
    Ok(hours
        .saturating_mul(3600)
        .saturating_add(minutes.saturating_mul(60))
        .saturating_add(seconds))
}

/// `1h02m05s`, `2m`, `45s`, `2min`, `1h30`, `2m30`.
fn parse_units(text: &str) -> Result<u64, String> {
    let lower = text.to_ascii_lowercase();
    let shape = || format!("'{text}' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)");
    if lower.contains(['.', ',']) {
        return Err(format!("'{text}': whole seconds only, no decimals"));
    }
    // Units from the largest: each at most once, in this order.
    const UNITS: [(&str, u64); 3] = [("h", 3600), ("m", 60), ("s", 1)];
    let mut rest = lower.as_str();
    let mut total: u64 = 0;
    let mut next_unit = 0; // index in UNITS of the smallest unit still allowed
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(shape());
        }
        let value = whole(&rest[..digits_end])?;
        rest = &rest[digits_end..];
        let unit = if rest.is_empty() {
            // A last number without unit: the unit after the last one given.
            if next_unit == 0 || next_unit >= UNITS.len() {
                return Err(shape());
            }
            next_unit
        } else {
            let (index, length) = if rest.starts_with("min") {
                (1, 3)
            } else {
                match UNITS.iter().position(|(u, _)| rest.starts_with(u)) {
                    Some(index) => (index, 1),
                    None => return Err(shape()),
                }
            };
            rest = &rest[length..];
            index
        };
        if unit < next_unit {
            return Err(format!(
                "'{text}': units go from hours to seconds, each once"
            ));
        }
        if next_unit > 0 && value >= 60 {
            let name = ["hours", "minutes", "seconds"][unit];
            return Err(format!("'{text}': the {name} ({value}) must be below 60"));
        }
        total = total.saturating_add(value.saturating_mul(UNITS[unit].1));
        next_unit = unit + 1;
    }
    Ok(total)
}

/// `1 h 2 min 5 s`, `1 min 30 s`, `45 s`.
pub fn hms(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if h > 0 {
        format!("{h} h {m} min {s} s")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// The billed quantity of rating.md §3: 0 if `d` is 0; `first` if `d` is at
/// most `first`; else `first + ceil((d − first) / next) × next`.
pub fn billed(d: u64, first: u64, next: u64) -> u64 {
    if d == 0 {
        return 0;
    }
    if d <= first {
        return first;
    }
    let next = next.max(1);
    let steps = (d - first).div_ceil(next);
    first.saturating_add(steps.saturating_mul(next))
}

/// One argument and what it is worth.
#[derive(Debug, Serialize)]
pub struct ParsedDuration {
    pub argument: String,
    pub seconds: u64,
    pub text: String,
}

/// A call of the total's length under one set of increments of a grid.
#[derive(Debug, Serialize)]
pub struct GridBilling {
    pub grid: i64,
    pub first_increment: u64,
    pub next_increment: u64,
    pub billed_seconds: u64,
    pub billed: String,
    /// The zones priced with these increments (`ROAM_Z1 (incoming)` for a
    /// `VOICE_IN` row).
    pub zones: Vec<String>,
    /// True when these are the increments of every voice zone of the grid.
    pub every_zone: bool,
}

#[derive(Debug, Serialize)]
pub struct DurationReport {
    pub durations: Vec<ParsedDuration>,
    pub total_seconds: u64,
    pub total: String,
    /// The configuration whose grids were read; None: conversion only.
    pub config: Option<String>,
    /// The day whose grid versions are shown.
    pub date: Option<String>,
    pub grids: Vec<GridBilling>,
    /// Why no grid is shown, when none is.
    pub note: Option<String>,
}

/// Parses every argument and adds them up.
pub fn sum(arguments: &[String]) -> Result<(Vec<ParsedDuration>, u64), DurationError> {
    let mut parsed = Vec::with_capacity(arguments.len());
    let mut total: u64 = 0;
    for (i, argument) in arguments.iter().enumerate() {
        let seconds = parse(argument).map_err(|message| DurationError::Argument {
            argument: argument.clone(),
            position: i + 1,
            message,
        })?;
        total = total.saturating_add(seconds);
        if total > MAX_SECONDS {
            return Err(DurationError::TooLong);
        }
        parsed.push(ParsedDuration {
            argument: argument.clone(),
            seconds,
            text: hms(seconds),
        });
    }
    Ok((parsed, total))
}

/// What a call of `seconds` is billed under each grid's voice increments in
/// force on `day`, by grid then increments.
pub fn bill_by_grid(rows: &[IncrementRow], seconds: u64, day: NaiveDate) -> Vec<GridBilling> {
    // The version in force of each (grid, zone, event type).
    let mut in_force: BTreeMap<(i64, &str, &str), &IncrementRow> = BTreeMap::new();
    for row in rows {
        if !matches!(row.event_type.as_str(), "VOICE" | "VOICE_IN") || row.valid_from > day {
            continue;
        }
        let key = (row.grid, row.zone.as_str(), row.event_type.as_str());
        match in_force.get(&key) {
            Some(kept) if kept.valid_from >= row.valid_from => {}
            _ => {
                in_force.insert(key, row);
            }
        }
    }
    let mut groups: BTreeMap<(i64, u64, u64), Vec<String>> = BTreeMap::new();
    for ((grid, zone, event_type), row) in &in_force {
        let zone = if *event_type == "VOICE_IN" {
            format!("{zone} (incoming)")
        } else {
            zone.to_string()
        };
        groups
            .entry((*grid, row.first_increment, row.next_increment))
            .or_default()
            .push(zone);
    }
    let mut sets_per_grid: BTreeMap<i64, usize> = BTreeMap::new();
    for (grid, _, _) in groups.keys() {
        *sets_per_grid.entry(*grid).or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((grid, first, next), zones)| {
            let billed_seconds = billed(seconds, first, next);
            GridBilling {
                grid,
                first_increment: first,
                next_increment: next,
                billed_seconds,
                billed: hms(billed_seconds),
                zones,
                every_zone: sets_per_grid.get(&grid) == Some(&1),
            }
        })
        .collect()
}

/// `mvnobill duration`: the sum of `arguments`, and the billing of a call of
/// that length under the grids of the configuration at `config`, if there
/// is one.
pub fn duration(
    config: &Path,
    arguments: &[String],
    day: NaiveDate,
) -> Result<DurationReport, DurationError> {
    let (durations, total_seconds) = sum(arguments)?;
    let mut report = DurationReport {
        durations,
        total_seconds,
        total: hms(total_seconds),
        config: None,
        date: None,
        grids: Vec::new(),
        note: None,
    };
    if !config.exists() {
        report.note = Some(format!(
            "no configuration file {}: conversion and sum only (--config FILE for the billing per grid)",
            config.display()
        ));
        return Ok(report);
    }
    let settings = Settings::load(config)?;
    let reference = Reference::load(&settings.reference_dir)?;
    report.grids = bill_by_grid(&reference.increments(), total_seconds, day);
    report.config = Some(config.display().to_string());
    report.date = Some(day.to_string());
    if report.grids.is_empty() {
        report.note = Some(format!(
            "no voice price of {} is in force on {day}",
            settings.reference_dir.join("rate_grids.csv").display()
        ));
    }
    Ok(report)
}

impl std::fmt::Display for DurationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .durations
            .iter()
            .map(|d| d.argument.chars().count())
            .chain(["total".len()])
            .max()
            .unwrap_or(0);
        let digits = self.total_seconds.to_string().len();
        for d in &self.durations {
            writeln!(
                f,
                "{:<width$}  {:>digits$} s  {}",
                d.argument, d.seconds, d.text
            )?;
        }
        write!(
            f,
            "{:<width$}  {:>digits$} s  {}",
            "total", self.total_seconds, self.total
        )?;
        if let (Some(config), Some(date)) = (&self.config, &self.date) {
            if !self.grids.is_empty() {
                write!(
                    f,
                    "\none call of {} s, billed under the voice increments in force on {date} ({config}):",
                    self.total_seconds
                )?;
            }
            let billed_digits = self
                .grids
                .iter()
                .map(|g| g.billed_seconds.to_string().len())
                .max()
                .unwrap_or(0);
            for g in &self.grids {
                let increments = format!("{} s then {} s", g.first_increment, g.next_increment);
                let zones = if g.every_zone {
                    "every voice zone".to_string()
                } else {
                    g.zones.join(", ")
                };
                write!(
                    f,
                    "\n  grid {}  {:<20}  {:>billed_digits$} s  {:<18}  {zones}",
                    g.grid, increments, g.billed_seconds, g.billed
                )?;
            }
        }
        if let Some(note) = &self.note {
            write!(f, "\n{note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_form() {
        for (text, seconds) in [
            ("90", 90),
            ("0", 0),
            ("1h02m05s", 3725),
            ("1H02M05S", 3725),
            ("2m", 120),
            ("2min", 120),
            ("45s", 45),
            ("1h", 3600),
            ("1h30", 5400),
            ("2m30", 150),
            ("1h5s", 3605),
            ("90m", 5400),
            ("00:01:30", 90),
            ("1:02:05", 3725),
            ("01:30", 90),
            ("90:00", 5400),
            (" 45s ", 45),
        ] {
            assert_eq!(parse(text), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_duration() {
        for (text, message) in [
            ("", "the duration is empty"),
            (
                "1x",
                "'1x' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)",
            ),
            (
                "h",
                "'h' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)",
            ),
            (
                "5s3",
                "'5s3' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)",
            ),
            ("2m1h", "'2m1h': units go from hours to seconds, each once"),
            ("1h1h", "'1h1h': units go from hours to seconds, each once"),
            ("1h61", "'1h61': the minutes (61) must be below 60"),
            ("1h02m60s", "'1h02m60s': the seconds (60) must be below 60"),
            ("1.5h", "'1.5h': whole seconds only, no decimals"),
            ("00:61", "the seconds (61) must be below 60"),
            ("1:60:00", "the minutes (60) must be below 60"),
            ("1:2:3:4", "'1:2:3:4' is not hh:mm:ss or mm:ss"),
            ("1::3", "'1::3' is not hh:mm:ss or mm:ss"),
            (
                "-5",
                "'-5' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)",
            ),
            ("99999999999999999999999", "longer than 1000000000000 s"),
            ("1000000000001", "longer than 1000000000000 s"),
            ("300000000h", "longer than 1000000000000 s"),
        ] {
            assert_eq!(parse(text), Err(message.to_string()), "{text}");
        }
    }

    #[test]
    fn a_bad_argument_is_named() {
        let args: Vec<String> = ["90", "2x"].iter().map(|s| s.to_string()).collect();
        let err = sum(&args).err().unwrap();
        assert_eq!(
            err.to_string(),
            "duration '2x' (argument 2): '2x' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)"
        );
        let args: Vec<String> = ["1000000000000", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(matches!(sum(&args), Err(DurationError::TooLong)));
    }

    #[test]
    fn hours_minutes_seconds() {
        assert_eq!(hms(0), "0 s");
        assert_eq!(hms(45), "45 s");
        assert_eq!(hms(90), "1 min 30 s");
        assert_eq!(hms(3725), "1 h 2 min 5 s");
        assert_eq!(hms(3600), "1 h 0 min 0 s");
    }

    #[test]
    fn billed_seconds_by_increments() {
        // rating.md §3 on the sample grids' increments.
        assert_eq!(billed(0, 60, 60), 0);
        assert_eq!(billed(1, 60, 60), 60);
        assert_eq!(billed(60, 60, 60), 60);
        assert_eq!(billed(61, 60, 60), 120);
        assert_eq!(billed(61, 60, 1), 61);
        assert_eq!(billed(61, 60, 30), 90);
        assert_eq!(billed(91, 60, 30), 120);
        assert_eq!(billed(61, 30, 30), 90);
        assert_eq!(billed(61, 1, 1), 61);
        assert_eq!(
            billed(MAX_SECONDS, u64::MAX / 2, u64::MAX / 2),
            u64::MAX / 2
        );
        assert_eq!(billed(MAX_SECONDS, 1, u64::MAX / 2), 1 + u64::MAX / 2);
    }

    fn row(grid: i64, zone: &str, event: &str, f: u64, n: u64, from: &str) -> IncrementRow {
        IncrementRow {
            grid,
            zone: zone.into(),
            event_type: event.into(),
            first_increment: f,
            next_increment: n,
            valid_from: from.parse().unwrap(),
        }
    }

    #[test]
    fn grids_in_force_grouped_by_increments() {
        let rows = vec![
            row(1, "FR_MOBILE", "VOICE", 60, 60, "2026-01-01"),
            row(1, "ROAM_Z1", "VOICE_IN", 60, 60, "2026-01-01"),
            row(1, "HOME", "DATA", 1, 1, "2026-01-01"),
            row(2, "FR_MOBILE", "VOICE", 60, 1, "2026-01-01"),
            row(2, "EU", "VOICE", 30, 30, "2026-01-01"),
            // A new version from November: not in force in October.
            row(2, "FR_MOBILE", "VOICE", 1, 1, "2026-11-01"),
        ];
        let day: NaiveDate = "2026-10-20".parse().unwrap();
        let billing = bill_by_grid(&rows, 61, day);
        let seen: Vec<(i64, u64, u64, u64, bool)> = billing
            .iter()
            .map(|g| {
                (
                    g.grid,
                    g.first_increment,
                    g.next_increment,
                    g.billed_seconds,
                    g.every_zone,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, 60, 60, 120, true),
                (2, 30, 30, 90, false),
                (2, 60, 1, 61, false)
            ]
        );
        assert_eq!(billing[0].zones, ["FR_MOBILE", "ROAM_Z1 (incoming)"]);
        let november = bill_by_grid(&rows, 61, "2026-11-01".parse().unwrap());
        assert_eq!(november[1].first_increment, 1);
        assert!(bill_by_grid(&rows, 61, "2025-12-31".parse().unwrap()).is_empty());
    }
}
