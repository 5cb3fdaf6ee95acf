//! `usage MSISDN [--month YYYY-MM]`, for the support desk: a line's
//! consumption to date, one row per allowance pool (rating.md §4), read from
//! the `consumption` dataset `rate` writes after each delivery
//! (`stages::pools`), on a `file://` or an `s3://` lake alike. Read-only:
//! no lock, no run recorded.
//!
//! - **The line.** Its digits as the MVNE writes them (`33612345678`);
//!   `0612345678`, `+33612345678` and `0033612345678` are the same line,
//!   spaces, dots and dashes aside. Anything else is refused in one line.
//! - **The month.** `--month`, else the latest month whose consumption
//!   holds the line (a line that ended in September is shown for
//!   September). No row for the line: one line saying so, exit 1.
//! - **Each pool.** Its group in French, the plan, the allowance
//!   (`illimité`), consumed, remaining, the whole percentage used rounded
//!   down (`-` without a finite allowance), and the overage amount so far
//!   HT in euros, rounded to the cent; then when the rate ran (Paris time)
//!   and the newest CDR file it had.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::Lake;
use crate::core::month::Month;
use crate::documents::templates::{format_eur, msisdn_fr};
use crate::stages::pools::{self, Pool, PoolsError};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage: '{0}' is not a mobile number: give its digits, as 33612345678, 0612345678 or +33612345678")]
    BadMsisdn(String),
    #[error("usage: no consumption in the lake yet: `mvnobill rate --month YYYY-MM` writes it after each delivery")]
    NoDataset,
    #[error("usage: no consumption for line {msisdn} in {month}")]
    NotInMonth { msisdn: String, month: Month },
    #[error("usage: no consumption for line {0} in any month of the lake")]
    Unknown(String),
    #[error(transparent)]
    Pools(#[from] PoolsError),
}

/// The line's number as the MVNE writes it (`33612345678`), from what the
/// desk typed.
pub fn line_number(text: &str) -> Result<String, UsageError> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .collect();
    let digits = match digits.strip_prefix('+') {
        Some(rest) => rest.to_string(),
        None => digits,
    };
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsageError::BadMsisdn(text.to_string()));
    }
    Ok(match digits.len() {
        10 if digits.starts_with('0') && !digits.starts_with("00") => format!("33{}", &digits[1..]),
        13 if digits.starts_with("0033") => digits[2..].to_string(),
        _ => digits,
    })
}

/// One pool of the line, as `usage` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolUsage {
    pub allowance_group: String,
    /// The group in French (`Données en France`).
    pub label: String,
    pub plan_code: String,
    pub pool_start: NaiveDate,
    pub unlimited: bool,
    /// Billed units: seconds, KB or messages; None when unlimited.
    pub allowance: Option<i64>,
    pub consumed: i64,
    pub remaining: Option<i64>,
    /// Whole percent, rounded down; None without a finite allowance.
    pub percent_used: Option<i64>,
    pub overage_qty: i64,
    /// HT, exact (6 decimals).
    pub overage_amount: Decimal,
    pub events: i64,
    pub last_event_time: Option<DateTime<Utc>>,
}

/// What `usage` reports.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub msisdn: String,
    pub customer_id: String,
    pub month: String,
    pub pools: Vec<PoolUsage>,
    /// When the rate that wrote these figures ran.
    pub as_of: DateTime<Utc>,
    /// The newest CDR file rated then.
    pub last_delivery: Option<String>,
}

/// Where a group comes in the list: the plan's four, then the options'.
fn group_rank(group: &str) -> (usize, &str) {
    let order = ["VOICE_FR", "SMS_FR", "MMS_FR", "DATA_FR"];
    (
        order
            .iter()
            .position(|g| *g == group)
            .unwrap_or(order.len()),
        group,
    )
}

/// The line's pools of `month`, or of the latest month that has any.
pub async fn usage(
    lake: &Lake,
    msisdn: &str,
    month: Option<Month>,
) -> Result<UsageReport, UsageError> {
    let msisdn = line_number(msisdn)?;
    let months = pools::months(lake).await?;
    if months.is_empty() {
        return Err(UsageError::NoDataset);
    }
    let candidates: Vec<Month> = match month {
        Some(month) => vec![month],
        None => months.into_iter().rev().collect(),
    };
    for candidate in candidates {
        let mut rows: Vec<Pool> = pools::pools(&pools::read_month(lake, candidate).await?)?
            .into_iter()
            .filter(|p| p.msisdn == msisdn)
            .collect();
        if rows.is_empty() {
            continue;
        }
        rows.sort_by(|a, b| {
            (a.pool_start, group_rank(&a.allowance_group))
                .cmp(&(b.pool_start, group_rank(&b.allowance_group)))
        });
        let newest = rows
            .iter()
            .max_by_key(|p| p.as_of)
            .expect("rows is not empty");
        return Ok(UsageReport {
            msisdn: msisdn.clone(),
            customer_id: newest.customer_id.clone(),
            month: candidate.to_string(),
            as_of: newest.as_of,
            last_delivery: newest.last_delivery.clone(),
            pools: rows
                .iter()
                .map(|p| PoolUsage {
                    allowance_group: p.allowance_group.clone(),
                    label: pools::group_label(&p.allowance_group),
                    plan_code: p.plan_code.clone(),
                    pool_start: p.pool_start,
                    unlimited: p.unlimited,
                    allowance: p.allowance.filter(|_| !p.unlimited),
                    consumed: p.consumed,
                    remaining: p.remaining.filter(|_| !p.unlimited),
                    percent_used: p.percent_used(),
                    overage_qty: p.overage_qty,
                    overage_amount: p.overage_amount,
                    events: p.events,
                    last_event_time: p.last_event_time,
                })
                .collect(),
        });
    }
    Err(match month {
        Some(month) => UsageError::NotInMonth { msisdn, month },
        None => UsageError::Unknown(msisdn),
    })
}

impl std::fmt::Display for UsageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "usage of line {} ({}), customer {}, {}",
            self.msisdn,
            msisdn_fr(&self.msisdn),
            self.customer_id,
            self.month
        )?;
        let header = [
            "pool",
            "plan",
            "allowance",
            "consumed",
            "remaining",
            "used",
            "overage",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for pool in &self.pools {
            let group = pool.allowance_group.as_str();
            let finite = |value: Option<i64>| match (pool.unlimited, value) {
                (true, _) | (_, None) => "illimité".to_string(),
                (false, Some(quantity)) => pools::quantity_text(quantity, group),
            };
            rows.push(vec![
                pool.label.clone(),
                pool.plan_code.clone(),
                finite(pool.allowance),
                pools::quantity_text(pool.consumed, group),
                finite(pool.remaining),
                pool.percent_used
                    .map_or_else(|| "-".to_string(), |p| format!("{p} %")),
                format_eur(pool.overage_amount, 2),
            ]);
        }
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..header.len()).map(width).collect();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, &width))| {
                    let pad = width - cell.chars().count();
                    match i {
                        0 | 1 => format!("{cell}{}", " ".repeat(pad)),
                        _ => format!("{}{cell}", " ".repeat(pad)),
                    }
                })
                .collect();
            writeln!(f, "{}", cells.join("  ").trim_end())?;
        }
        let as_of = self
            .as_of
            .with_timezone(&chrono_tz::Europe::Paris)
            .format("%Y-%m-%d %H:%M");
        write!(
            f,
            "as of {as_of} Europe/Paris, last delivery {}",
            self.last_delivery.as_deref().unwrap_or("none")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_as_the_desk_types_it() {
        for typed in [
            "33632260020",
            "0632260020",
            "06 32 26 00 20",
            "06.32.26.00.20",
            "+33632260020",
            "+33 6 32 26 00 20",
            "0033632260020",
        ] {
            assert_eq!(line_number(typed).unwrap(), "33632260020", "{typed}");
        }
        // Another country's number stays as it is.
        assert_eq!(line_number("32470123456").unwrap(), "32470123456");
        for wrong in [
            "",
            "+",
            "06 32 2G 00 20",
            "abc",
            "33632260020; DROP",
            "1234567890123456",
        ] {
            let error = line_number(wrong).unwrap_err().to_string();
            assert!(error.contains("is not a mobile number"), "{wrong}: {error}");
        }
    }
}
