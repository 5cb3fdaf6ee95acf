//! `assure`: revenue assurance for a rated month (rating.md §8), with the
//! SQL of `sql/assurance`.
//!
//! Compares what the MVNE billed us (its monthly BilledCDRs statement) with
//! the CDRs we landed, the lines it reports active or terminated with the
//! integrator's subscriptions, and totals the wholesale cost of the events
//! we could not bill. Every rule is in the SQL; this module registers the
//! tables, writes the two datasets and reads the summary back for the
//! report:
//!
//! - `assurance/month=YYYY-MM/part-0.parquet`: one row per finding;
//! - `assurance_summary/month=YYYY-MM/part-0.parquet`: per kind (and per
//!   reason for rating exceptions) the count and the euro totals.
//!
//! Both are replaced whole on re-run; nothing else changes, so `assure` can
//! run on a closed month, as often as wanted. The month must be rated. The
//! MVNE's statement for the month is the BilledCDRs file named for it
//! (`BilledCDRs_YYYYMM…`); until it has landed the CDR comparisons
//! are not checked (and the report says so), the other findings are.
//! docs/ASSURANCE.md defines each finding and what to do about it.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::ledger::LedgerError;
use crate::core::month::Month;
use crate::documents::templates::format_eur;
use crate::engine;
use crate::engine::sqlfiles;
use crate::mvne::upstream;
use crate::stages::Context;
use crate::stages::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum AssureError {
    #[error(transparent)]
    Prepare(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("revenue assurance failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("month {0} is not rated yet: run `mvnobill rate --month {0}` first")]
    NotRated(String),
    #[error("revenue assurance: '{0}' in the summary is not an amount")]
    Amount(String),
    #[error("revenue assurance: the summary has no column {0}")]
    Column(String),
}

/// The kinds of finding, as the datasets name them.
pub mod kinds {
    pub const BILLED_NOT_LANDED: &str = "BILLED_NOT_LANDED";
    pub const LANDED_NOT_BILLED: &str = "LANDED_NOT_BILLED";
    pub const AMOUNT_MISMATCH: &str = "AMOUNT_MISMATCH";
    pub const BILLED_TWICE: &str = "BILLED_TWICE";
    pub const UNBILLED_ACTIVE_LINE: &str = "UNBILLED_ACTIVE_LINE";
    pub const TERMINATED_LINE_SUBSCRIPTION: &str = "TERMINATED_LINE_SUBSCRIPTION";
    pub const RATING_EXCEPTION: &str = "RATING_EXCEPTION";
    pub const LATE_CDR: &str = "LATE_CDR";
}

/// One row of `assurance_summary`: a kind of finding (and the reason, for
/// rating exceptions) with its count and exact euro totals.
#[derive(Debug, Clone, Serialize)]
pub struct FindingTotal {
    pub kind: String,
    pub reason: Option<String>,
    pub findings: u64,
    /// Sum of our landed wholesale_eur.
    pub landed_wholesale: String,
    /// Sum of the MVNE's billed wholesale_eur.
    pub billed_wholesale: String,
    /// Sum of the findings' amounts (docs/ASSURANCE.md says which per kind).
    pub amount: String,
    /// UNBILLED_ACTIVE_LINE: the lines' CDRs of the month.
    pub cdrs: u64,
    /// TERMINATED_LINE_SUBSCRIPTION: subscription days after termination.
    pub days: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct AssureReport {
    pub month: String,
    /// True when the month's invoices were issued.
    pub issued: bool,
    /// The MVNE's BilledCDRs files for the month found in the lake. Empty:
    /// the comparisons with it were not checked (their counts are null).
    pub billed_statement: Vec<String>,
    /// The month's unique landed CDRs, and the MVNE's billed ones.
    pub landed_cdrs: u64,
    pub billed_cdrs: Option<u64>,
    /// Findings per kind (the names of expected.json's revenue_assurance).
    pub billed_not_landed: Option<u64>,
    pub landed_not_billed: Option<u64>,
    pub amount_mismatch: Option<u64>,
    pub billed_twice: Option<u64>,
    pub unbilled_active_lines: u64,
    pub terminated_line_subscriptions: u64,
    pub rating_exceptions: u64,
    pub late_cdrs: u64,
    /// Of the late CDRs of an issued month: those a regularisation carried
    /// to a later invoice, those the next issue will, and those too old
    /// for it (never invoiced).
    pub late_regularised: u64,
    pub late_to_regularise: u64,
    pub late_lost: u64,
    /// Charges billed on this month's invoices whose row in charges.csv
    /// changed or went since (account.md §5): never billed again.
    pub changed_charges: Vec<ChangedCharge>,
    /// Wholesale cost of the rating exceptions that are not conflicting
    /// copies: what we paid the MVNE and could not bill.
    pub leakage_wholesale: String,
    /// The `assurance_summary` rows.
    pub totals: Vec<FindingTotal>,
    /// Where the findings are.
    pub findings: String,
}

impl AssureReport {
    fn total(&self, kind: &str) -> Option<&FindingTotal> {
        self.totals.iter().find(|t| t.kind == kind)
    }

    fn count(&self, kind: &str) -> Option<u64> {
        let rows: Vec<&FindingTotal> = self.totals.iter().filter(|t| t.kind == kind).collect();
        (!rows.is_empty()).then(|| rows.iter().map(|t| t.findings).sum())
    }
}

/// A billed charge whose row changed or was removed afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedCharge {
    pub charge_id: String,
    /// CHANGED or REMOVED.
    pub change: String,
}

/// An exact amount in French notation, with all its decimals (at least 2).
fn euros(text: &str) -> String {
    match Decimal::from_str(text) {
        Ok(amount) => {
            let amount = amount.normalize();
            format_eur(amount, amount.scale().max(2))
        }
        Err(_) => format!("{text} €"),
    }
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {many}")
    }
}

impl std::fmt::Display for AssureReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.issued {
            "month issued"
        } else {
            "month not issued yet"
        };
        write!(f, "assure {} ({state}): ", self.month)?;
        if self.billed_statement.is_empty() {
            write!(
                f,
                "{} landed CDRs; no BilledCDRs file for {} in the lake: the MVNE's billing is not checked yet",
                self.landed_cdrs, self.month
            )?;
        } else {
            write!(
                f,
                "{} landed CDRs, {} billed by the MVNE ({})",
                self.landed_cdrs,
                self.billed_cdrs.unwrap_or_default(),
                self.billed_statement.join(", ")
            )?;
        }
        let line = |f: &mut std::fmt::Formatter<'_>, label: &str, count: String, text: String| {
            write!(f, "\n  {label:<40} {count:<10} {text}")
        };
        use kinds::*;
        if let Some(t) = self.total(BILLED_NOT_LANDED) {
            line(
                f,
                "billed by the MVNE, never landed",
                plural(t.findings, "CDR", "CDRs"),
                format!(
                    "{} billed wholesale, paid and not billable",
                    euros(&t.amount)
                ),
            )?;
        }
        if let Some(t) = self.total(LANDED_NOT_BILLED) {
            line(
                f,
                "landed, not billed by the MVNE",
                plural(t.findings, "CDR", "CDRs"),
                format!("{} landed wholesale, not charged", euros(&t.amount)),
            )?;
        }
        if let Some(t) = self.total(AMOUNT_MISMATCH) {
            line(
                f,
                "billed at another wholesale amount",
                plural(t.findings, "CDR", "CDRs"),
                format!(
                    "{} billed minus landed (billed {}, landed {})",
                    euros(&t.amount),
                    euros(&t.billed_wholesale),
                    euros(&t.landed_wholesale)
                ),
            )?;
        }
        if let Some(t) = self.total(BILLED_TWICE) {
            line(
                f,
                "billed more than once by the MVNE",
                plural(t.findings, "CDR", "CDRs"),
                format!("{} billed wholesale of the extra copies", euros(&t.amount)),
            )?;
        }
        if let Some(t) = self.total(UNBILLED_ACTIVE_LINE) {
            line(
                f,
                "lines active without a subscription",
                plural(t.findings, "line", "lines"),
                format!(
                    "{} wholesale of their {}",
                    euros(&t.amount),
                    plural(t.cdrs, "CDR", "CDRs")
                ),
            )?;
        }
        if let Some(t) = self.total(TERMINATED_LINE_SUBSCRIPTION) {
            line(
                f,
                "subscriptions on terminated lines",
                plural(t.findings, "row", "rows"),
                format!(
                    "{} HT of plan fee for {} after termination, not invoiced",
                    euros(&t.amount),
                    plural(t.days, "day", "days")
                ),
            )?;
        }
        let exceptions: Vec<&FindingTotal> = self
            .totals
            .iter()
            .filter(|t| t.kind == RATING_EXCEPTION && t.reason.is_some())
            .collect();
        line(
            f,
            "rating exceptions",
            plural(self.rating_exceptions, "CDR", "CDRs"),
            format!(
                "{} wholesale not billed (leakage, conflicting copies aside)",
                euros(&self.leakage_wholesale)
            ),
        )?;
        for t in exceptions {
            let reason = t.reason.as_deref().unwrap_or_default();
            let note = if reason == "CONFLICTING_DUPLICATE" {
                " (other copies: the one from the file sorting first is billed, not leakage)"
            } else {
                ""
            };
            line(
                f,
                &format!("  {reason}"),
                t.findings.to_string(),
                format!("{} wholesale{note}", euros(&t.amount)),
            )?;
        }
        for t in self.totals.iter().filter(|t| t.kind == LATE_CDR) {
            let (label, what) = match t.reason.as_deref() {
                // The summary's row when there is none.
                None if self.issued => ("late CDRs, landed after the issue", "none"),
                None if t.findings == 0 => ("CDRs landed since the last rating", "none"),
                None => (
                    "CDRs landed since the last rating",
                    "run rate and bill again",
                ),
                Some("REGULARISED") => (
                    "late CDRs, regularised",
                    "invoiced on a later month as regularisation",
                ),
                Some("TO_REGULARISE") => (
                    "late CDRs, landed after the issue",
                    "to be regularised by the next issue",
                ),
                _ => ("late CDRs, too late to regularise", "never invoiced"),
            };
            line(
                f,
                label,
                plural(t.findings, "CDR", "CDRs"),
                format!("{} wholesale, {what}", euros(&t.amount)),
            )?;
        }
        if !self.changed_charges.is_empty() {
            let ids: Vec<String> = self
                .changed_charges
                .iter()
                .map(|c| format!("{} ({})", c.charge_id, c.change.to_lowercase()))
                .collect();
            line(
                f,
                "charges changed after billing",
                plural(self.changed_charges.len() as u64, "charge", "charges"),
                format!("not billed again: {}", ids.join(", ")),
            )?;
        }
        write!(f, "\n  findings: {}", self.findings)
    }
}

/// What became of the CDRs of an issued month that landed after its
/// rating, by the file they came in (account.md §4, sql/assurance/
/// late_cdrs.sql): REGULARISED when the month was billed again after the
/// file landed, else TO_REGULARISE while the month is within
/// `regularisation_months` of the next month to issue, else TOO_LATE.
/// Empty for a month not issued.
fn late_carry(
    ledger: &crate::core::ledger::Ledger,
    billing: &crate::settings::BillingSettings,
    month: Month,
) -> Result<RecordBatch, AssureError> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut rows: Vec<(String, &str)> = Vec::new();
    let month_text = month.to_string();
    if ledger.is_issued(&month_text)? {
        let regularised_at = ledger.month_regularised_at(&month_text)?;
        let last = ledger.issued_months()?.last().cloned().unwrap_or_default();
        let next = last
            .parse::<Month>()
            .map(|m| Month::of(m.next_first_day()))
            .unwrap_or(month);
        // The next issue bills again the `regularisation_months` before it.
        let reachable = (0..billing.regularisation_months)
            .try_fold(next, |m, _| m.previous())
            .is_none_or(|oldest| month >= oldest);
        for (name, landed_at) in ledger.landed_at(crate::mvne::raw::CDR_FOLDER)? {
            let state = match &regularised_at {
                Some(at) if landed_at <= *at => "REGULARISED",
                _ if reachable => "TO_REGULARISE",
                _ => "TOO_LATE",
            };
            rows.push((name, state));
        }
    }
    let schema = Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            std::sync::Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .map_err(|e| AssureError::Query(e.into()))
}

/// Registers a month partition of a lake dataset, or an empty table of
/// `schema` when it has none.
async fn register_month(
    ctx: &SessionContext,
    lake: &Lake,
    table: &str,
    dataset: &str,
    month: Month,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<(), LakeError> {
    engine::register_path_or_empty(
        ctx,
        lake,
        table,
        &format!("{dataset}/month={month}"),
        schema,
    )
    .await
}

/// The MVNE's BilledCDRs files for the month, by the names their rows
/// landed under (`billed_cdrs/month=…/BilledCDRs_202610.parquet`, in any
/// month partition: an event's month is its own local date).
async fn billed_statement(lake: &Lake, month: Month) -> Result<Vec<String>, LakeError> {
    let prefix = format!("BilledCDRs_{}", month.first_day().format("%Y%m"));
    let mut files: Vec<String> = lake
        .list(datasets::BILLED_CDRS)
        .await?
        .iter()
        .filter_map(|key| key.rsplit('/').next())
        .filter_map(|name| name.strip_suffix(".parquet"))
        .filter(|stem| {
            // BilledCDRs_202610 and its versions (.v2), not BilledCDRs_2026101…
            stem.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|stem| format!("{stem}.csv"))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn statement_batch(files: &[String]) -> RecordBatch {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("file", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from_iter_values(files))],
    )
    .expect("statement column")
}

pub async fn assure(stage: &Context, month: Month) -> Result<AssureReport, AssureError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    let partition = format!("month={month}");
    let ctx = crate::stages::session(settings, month, None).await?;
    for (table, dataset) in [
        ("rated_cdrs", datasets::RATED_CDRS),
        ("rating_exceptions", datasets::RATING_EXCEPTIONS),
    ] {
        if !engine::register_path(&ctx, lake, table, &format!("{dataset}/{partition}"), None)
            .await?
        {
            return Err(AssureError::NotRated(month_text));
        }
    }
    register_month(
        &ctx,
        lake,
        "cdrs",
        datasets::CDRS,
        month,
        upstream::cdr_schema(false),
    )
    .await?;
    register_month(
        &ctx,
        lake,
        "billed_cdrs",
        datasets::BILLED_CDRS,
        month,
        upstream::cdr_schema(false),
    )
    .await?;
    // Every snapshot: a line terminated before the month is still dead.
    crate::stages::register_account_status(&ctx, lake).await?;
    let statement = billed_statement(lake, month).await?;
    engine::register_batch(&ctx, "billed_statement", statement_batch(&statement))?;
    engine::register_batch(
        &ctx,
        "late_carry",
        late_carry(ledger, &settings.billing, month)?,
    )?;
    engine::run_layer(&ctx, sqlfiles::REFERENCE).await?;
    engine::run_layer(&ctx, sqlfiles::ASSURANCE).await?;

    let findings_path = format!("{}/{partition}", datasets::ASSURANCE);
    let stream = engine::stream_file(&ctx, &sqlfiles::ASSURANCE_FINDINGS).await?;
    lake.write_stream(&format!("{findings_path}/part-0.parquet"), stream)
        .await?;

    let mut report = AssureReport {
        month: month_text.clone(),
        issued: ledger.is_issued(&month_text)?,
        landed_cdrs: engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM cdrs").await?,
        findings: lake.url().join(&format!("{findings_path}/")),
        ..Default::default()
    };
    if !statement.is_empty() {
        report.billed_cdrs =
            Some(engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM billed_cdrs").await?);
    }
    report.billed_statement = statement;

    // The summary, from the findings just written.
    let summary_ctx = engine::session();
    engine::register_path(&summary_ctx, lake, "findings", &findings_path, None).await?;
    engine::register_batch(
        &summary_ctx,
        "billed_statement",
        statement_batch(&report.billed_statement),
    )?;
    let stream = engine::stream_file(&summary_ctx, &sqlfiles::ASSURANCE_SUMMARY).await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    lake.write_parquet(
        &format!("{}/{partition}/part-0.parquet", datasets::ASSURANCE_SUMMARY),
        schema,
        &batches,
    )
    .await?;
    report.totals = totals(&batches)?;

    use kinds::*;
    report.billed_not_landed = report.count(BILLED_NOT_LANDED);
    report.landed_not_billed = report.count(LANDED_NOT_BILLED);
    report.amount_mismatch = report.count(AMOUNT_MISMATCH);
    report.billed_twice = report.count(BILLED_TWICE);
    report.unbilled_active_lines = report.count(UNBILLED_ACTIVE_LINE).unwrap_or_default();
    report.terminated_line_subscriptions = report
        .count(TERMINATED_LINE_SUBSCRIPTION)
        .unwrap_or_default();
    report.rating_exceptions = report.count(RATING_EXCEPTION).unwrap_or_default();
    report.late_cdrs = report.count(LATE_CDR).unwrap_or_default();
    let late = |state: &str| {
        report
            .totals
            .iter()
            .filter(|t| t.kind == LATE_CDR && t.reason.as_deref() == Some(state))
            .map(|t| t.findings)
            .sum::<u64>()
    };
    report.late_regularised = late("REGULARISED");
    report.late_to_regularise = late("TO_REGULARISE");
    report.late_lost = late("TOO_LATE");
    // account.md §5: a charge billed with this month whose row changed since.
    let hashes = crate::reference::Reference::load(&settings.reference_dir)
        .map_err(SessionError::from)?
        .charge_hashes();
    for charge in ledger.billed_charges()? {
        if charge.month != month_text {
            continue;
        }
        let change = match hashes.get(&charge.charge_id) {
            None => "REMOVED",
            Some(hash) if *hash != charge.content_hash => "CHANGED",
            Some(_) => continue,
        };
        report.changed_charges.push(ChangedCharge {
            charge_id: charge.charge_id,
            change: change.to_string(),
        });
    }
    let mut leakage = Decimal::ZERO;
    for t in &report.totals {
        if t.kind == RATING_EXCEPTION && t.reason.as_deref() != Some("CONFLICTING_DUPLICATE") {
            leakage +=
                Decimal::from_str(&t.amount).map_err(|_| AssureError::Amount(t.amount.clone()))?;
        }
    }
    report.leakage_wholesale = leakage.to_string();
    Ok(report)
}

/// The summary rows, every value as exact text.
fn totals(batches: &[RecordBatch]) -> Result<Vec<FindingTotal>, AssureError> {
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str, row: usize| -> Result<String, AssureError> {
            let values = batch
                .column_by_name(name)
                .ok_or_else(|| AssureError::Column(name.to_string()))?;
            Ok(engine::value_string(values, row)?)
        };
        for row in 0..batch.num_rows() {
            let reason = column("reason", row)?;
            out.push(FindingTotal {
                kind: column("kind", row)?,
                reason: (!reason.is_empty()).then_some(reason),
                findings: column("findings", row)?.parse().unwrap_or_default(),
                landed_wholesale: column("landed_wholesale", row)?,
                billed_wholesale: column("billed_wholesale", row)?,
                amount: column("amount", row)?,
                cdrs: column("cdrs", row)?.parse().unwrap_or_default(),
                days: column("days", row)?.parse().unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_their_decimals_in_french_notation() {
        assert_eq!(euros("0.266500"), "0,2665\u{a0}€");
        assert_eq!(euros("61.960000"), "61,96\u{a0}€");
        assert_eq!(euros("0.000000"), "0,00\u{a0}€");
        assert_eq!(euros("-1234.5"), "-1\u{202f}234,50\u{a0}€");
    }
}
