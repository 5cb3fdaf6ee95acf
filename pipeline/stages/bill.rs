//! `bill`: build the month's invoice lines and invoices from the rated CDRs
//! and the reference tables (rating.md §6), number them (§7) and close the
//! month.
//!
//! Numbers are `<prefix>-<YYYY>-<seq>`, `seq` on 6 digits, continuous within
//! the calendar year of the issue date, assigned in ascending `customer_id`
//! order. The issue date is the first day after the period (so a re-run gives
//! the same documents), the due date that plus the payment terms.
//!
//! Order of writes: the two datasets first, then the ledger closes the month
//! and records the numbers in one transaction. A crash before the ledger
//! commit leaves the month open and the next run writes the same numbers
//! again; after it, the month is closed and `bill` changes nothing.

use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::core::lake::{datasets, LakeError};
use crate::core::ledger::{IssuedNumber, LedgerError};
use crate::core::month::Month;
use crate::engine;
use crate::engine::sqlfiles;
use crate::mvne::upstream;
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::stages::Context;
use crate::stages::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error(transparent)]
    Integrator(#[from] IntegratorError),
    #[error(transparent)]
    Prepare(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("billing failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("month {0} is not rated yet: run `mvnobill rate --month {0}` first")]
    NotRated(String),
    #[error("cannot bill {month}: {message}")]
    MissingPrice { month: String, message: String },
}

#[derive(Debug, Default, Serialize)]
pub struct BillReport {
    pub month: String,
    /// True when the month was already issued: nothing changed.
    pub closed: bool,
    pub invoices: u64,
    pub first_number: Option<String>,
    pub last_number: Option<String>,
    pub lines: u64,
    pub total_ht: String,
    pub vat: String,
    pub total_ttc: String,
}

impl std::fmt::Display for BillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.closed {
            "already issued, unchanged"
        } else {
            "issued"
        };
        write!(
            f,
            "bill {}: {} invoices {} ({} to {}), total HT {} €, VAT {} €, total TTC {} €",
            self.month,
            self.invoices,
            state,
            self.first_number.as_deref().unwrap_or("-"),
            self.last_number.as_deref().unwrap_or("-"),
            self.total_ht,
            self.vat,
            self.total_ttc
        )
    }
}

pub async fn bill(stage: &mut Context, month: Month) -> Result<BillReport, BillError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    let partition = format!("month={month}");
    if ledger.is_issued(&month_text)? {
        let ctx = engine::session();
        let mut report = BillReport {
            month: month_text.clone(),
            closed: true,
            ..Default::default()
        };
        if engine::register_path(
            &ctx,
            lake,
            "invoices",
            &format!("{}/{partition}", datasets::INVOICES),
            None,
        )
        .await?
        {
            summarise(&ctx, &mut report).await?;
        }
        return Ok(report);
    }

    let integrator = Integrator::load(&settings.integrator_path)?;
    let issue_date = month.next_first_day();
    let due_date = issue_date + chrono::Duration::days(integrator.payment_terms_days as i64);
    let ctx = crate::stages::session(settings, month, Some((issue_date, due_date))).await?;
    if !engine::register_path(
        &ctx,
        lake,
        "rated_cdrs",
        &format!("{}/{partition}", datasets::RATED_CDRS),
        None,
    )
    .await?
    {
        return Err(BillError::NotRated(month_text));
    }
    if !engine::register_dataset(&ctx, lake, datasets::ACCOUNT_STATUS, Some("month")).await? {
        engine::register_batch(
            &ctx,
            "account_status",
            engine::empty(upstream::status_schema()),
        )?;
    }
    engine::run_layer(&ctx, sqlfiles::REFERENCE).await?;
    engine::run_layer(&ctx, sqlfiles::BILLING_DRAFT).await?;
    check_prices(&ctx, &month_text).await?;

    // Numbering (rating.md §7): continuous within the issue date's year.
    let year = chrono::Datelike::year(&issue_date);
    let customers = engine::rows_strings(
        &ctx,
        "SELECT customer_id FROM draft_invoices ORDER BY customer_id",
    )
    .await?;
    let mut seq = ledger.last_sequence(year)?;
    let numbers: Vec<(i64, IssuedNumber)> = customers
        .into_iter()
        .map(|row| {
            seq += 1;
            let number = IssuedNumber {
                invoice_number: format!("{}-{year}-{seq:06}", integrator.invoice_prefix),
                customer_id: row[0].clone(),
            };
            (seq, number)
        })
        .collect();
    engine::register_batch(&ctx, "invoice_numbers", numbers_batch(&numbers))?;
    engine::run_layer(&ctx, sqlfiles::BILLING_OUTPUT).await?;
    for dataset in [datasets::INVOICES, datasets::INVOICE_LINES] {
        let stream = ctx.table(dataset).await?.execute_stream().await?;
        lake.write_stream(&format!("{dataset}/{partition}/part-0.parquet"), stream)
            .await?;
    }

    let mut report = BillReport {
        month: month_text.clone(),
        ..Default::default()
    };
    summarise(&ctx, &mut report).await?;
    report.lines = engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM invoice_lines").await?;
    ledger.issue_month(&month_text, year, &numbers, &report.total_ttc)?;
    Ok(report)
}

async fn summarise(ctx: &SessionContext, report: &mut BillReport) -> Result<(), BillError> {
    let row = engine::row_strings(
        ctx,
        "SELECT COUNT(*), MIN(invoice_number), MAX(invoice_number),
                COALESCE(SUM(total_ht), 0), COALESCE(SUM(vat), 0), COALESCE(SUM(total_ttc), 0)
         FROM invoices",
    )
    .await?;
    report.invoices = row[0].parse().unwrap_or_default();
    report.first_number = Some(row[1].clone()).filter(|s| !s.is_empty());
    report.last_number = Some(row[2].clone()).filter(|s| !s.is_empty());
    report.total_ht = row[3].clone();
    report.vat = row[4].clone();
    report.total_ttc = row[5].clone();
    Ok(())
}

/// A subscription, option or handset without a price in force must not be
/// billed at zero: the month is refused with the first such line named
/// (`sql/billing/unpriced_lines.sql`).
async fn check_prices(ctx: &SessionContext, month: &str) -> Result<(), BillError> {
    let missing = engine::Rows::query(ctx, &sqlfiles::UNPRICED_LINES).await?;
    if let Some(row) = missing.rows.first() {
        let get = |column| missing.get(row, column);
        let table = match get("kind") {
            "SUBSCRIPTION" => "plan_fees.csv has no fee for plan",
            "OPTION" => "options.csv has no version of option",
            _ => "handsets.csv has no price (nor bare price) for sale",
        };
        return Err(BillError::MissingPrice {
            month: month.to_string(),
            message: format!(
                "{table} '{}' in force on {} (customer {}, line {})",
                get("code"),
                get("period_start"),
                get("customer_id"),
                get("msisdn")
            ),
        });
    }
    Ok(())
}

fn numbers_batch(numbers: &[(i64, IssuedNumber)]) -> datafusion::arrow::record_batch::RecordBatch {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("invoice_number", DataType::Utf8, false),
    ]);
    datafusion::arrow::record_batch::RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                numbers.iter().map(|(_, n)| n.customer_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                numbers.iter().map(|(_, n)| n.invoice_number.as_str()),
            )),
        ],
    )
    .expect("number columns")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first unpriced draft line, in customer, line and kind order,
    /// refuses the month; priced lines are not named.
    #[tokio::test]
    async fn a_line_without_a_price_in_force_is_refused_and_named() {
        let ctx = engine::session();
        let draft = |rows: &str| {
            format!(
                "CREATE OR REPLACE VIEW draft_lines AS
                 SELECT column1 AS kind, column2 AS customer_id, column3 AS msisdn,
                        column4 AS code, CAST(column5 AS DATE) AS period_start,
                        CAST(column6 AS DECIMAL(12, 2)) AS amount_ht
                 FROM (VALUES {rows})"
            )
        };
        ctx.sql(&draft(
            "('SUBSCRIPTION', 'C00002', '33600000002', 'ILL20', '2026-10-01', '19.99'),
             ('OPTION', 'C00002', '33600000002', 'EU10', '2026-10-05', NULL),
             ('SUBSCRIPTION', 'C00002', '33600000001', 'ILL20', '2026-10-01', NULL),
             ('EQUIPMENT', 'C00001', '33600000009', 'PHONE1', '2026-10-12', '1.00')",
        ))
        .await
        .unwrap();
        let error = check_prices(&ctx, "2026-10").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot bill 2026-10: plan_fees.csv has no fee for plan 'ILL20' in force on 2026-10-01 (customer C00002, line 33600000001)"
        );

        ctx.sql(&draft(
            "('EQUIPMENT', 'C00001', '33600000009', 'PHONE1', '2026-10-12', NULL)",
        ))
        .await
        .unwrap();
        let error = check_prices(&ctx, "2026-10").await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("handsets.csv has no price (nor bare price) for sale 'PHONE1' in force on 2026-10-12"),
            "{error}"
        );

        ctx.sql(&draft(
            "('OPTION', 'C00001', '33600000009', 'EU10', '2026-10-01', '3.00')",
        ))
        .await
        .unwrap();
        check_prices(&ctx, "2026-10")
            .await
            .expect("every line priced");
    }
}
