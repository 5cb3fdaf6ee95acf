//! `receivables`: the aged balance of a date (account.md §7, computed by
//! `account::aged`), as a table per customer with its total row, and the
//! `aged_balance/as_of=<date>/` dataset written for finance (what `dunning`
//! writes each day too). Reads the ledger's account; sends nothing.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::account::aged::{self, AgedBalance};
use crate::account::{self, AccountError};
use crate::core::lake::Lake;
use crate::core::ledger::Ledger;

/// What `receivables` reports.
#[derive(Debug, Serialize)]
pub struct ReceivablesReport {
    pub date: NaiveDate,
    /// The dataset file written.
    pub dataset: String,
    pub customers: Vec<AgedBalance>,
    /// The sum of every customer's line.
    pub total: AgedBalance,
}

/// The aged balance as of `date`, written to the lake.
pub async fn receivables(
    lake: &Lake,
    ledger: &Ledger,
    date: NaiveDate,
) -> Result<ReceivablesReport, AccountError> {
    let connection = ledger.connection();
    let entries = account::entries(connection)?;
    let presented = account::representations(connection)?;
    let customers = aged::aged_balance(&entries, &presented, date);
    let key = aged::write_dataset(lake, date, &customers).await?;
    Ok(ReceivablesReport {
        date,
        dataset: lake.url().join(&key),
        total: aged::total(&customers),
        customers,
    })
}

impl std::fmt::Display for ReceivablesReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = [
            "customer", "not due", "0-30", "31-60", "61-90", "over 90", "total", "balance",
        ];
        let cells = |name: &str, line: &AgedBalance| -> Vec<String> {
            let money = |amount: Decimal| format!("{amount:.2}");
            vec![
                name.to_string(),
                money(line.not_due),
                money(line.days_0_30),
                money(line.days_31_60),
                money(line.days_61_90),
                money(line.days_over_90),
                money(line.total),
                money(line.balance),
            ]
        };
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        rows.extend(self.customers.iter().map(|c| cells(&c.customer_id, c)));
        rows.push(cells("total", &self.total));
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        writeln!(
            f,
            "aged balance at {} (days past due; {} customers)",
            self.date,
            self.customers.len()
        )?;
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| match i {
                    0 => format!("{cell:<width$}"),
                    _ => format!("{cell:>width$}"),
                })
                .collect();
            writeln!(f, "{}", line.join("  "))?;
        }
        write!(f, "dataset: {}", self.dataset)
    }
}
