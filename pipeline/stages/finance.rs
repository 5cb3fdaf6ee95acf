//! `finance`: what the finance team takes from a billed month, written
//! beside the invoices (docs/ACCOUNTING.md):
//!
//! - `margin/month=YYYY-MM/`: retail HT by kind against the MVNE's wholesale
//!   cost, per customer, line and plan (`sql/finance/margin.sql`), refused
//!   when it does not add up to its sources (`margin_check.sql`);
//! - `sales_journal/month=YYYY-MM/`: one row per document and VAT rate with
//!   its accounts (`sql/finance/sales_journal.sql`), and the same entries in
//!   double entry as a CSV for the accountant's software,
//!   `documents/YYYY-MM/journal-YYYY-MM.csv` (rows as `journal_entries.sql`
//!   orders them, French convention, formula injection neutralised, see
//!   [`journal_csv`]);
//! - `e_reporting/month=YYYY-MM/`: B2C totals per VAT rate and period
//!   (`sql/finance/e_reporting.sql`).
//!
//! Everything is derived from the month's issued datasets (`invoices`,
//! `invoice_lines`, `rated_cdrs`, `rating_exceptions`), the reference
//! tables (customer names, subscription rows) and `[accounting]`, so a
//! re-run writes the same bytes: each output is sorted, made one batch and
//! written whole. The month must be issued (`bill`) first.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::{datasets, LakeError};
use crate::core::ledger::LedgerError;
use crate::core::month::Month;
use crate::engine;
use crate::engine::sqlfiles;
use crate::settings::AccountingSettings;
use crate::stages::Context;
use crate::stages::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum FinanceError {
    #[error(transparent)]
    Prepare(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("finance outputs failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("finance outputs failed: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("month {0} is not billed yet: run `mvnobill bill --month {0}` first")]
    NotIssued(String),
    #[error("month {month} is issued but its {dataset} partition is missing from the lake")]
    Missing {
        month: String,
        dataset: &'static str,
    },
    #[error("margin {month}: {what} adds up to {margin} €, its source to {source_total} €: a charge or a CDR matched no subscription row, or two")]
    Unbalanced {
        month: String,
        what: &'static str,
        margin: String,
        source_total: String,
    },
    #[error("sales journal {month}: {message}")]
    Journal { month: String, message: String },
}

/// The one-row `accounting` table the SQL reads the accounts from.
trait AccountingBatch {
    fn batch(&self) -> RecordBatch;
}

impl AccountingBatch for AccountingSettings {
    fn batch(&self) -> RecordBatch {
        let columns: [(&str, &str); 7] = [
            ("journal_code", &self.journal_code),
            ("journal_label", &self.journal_label),
            ("customer_account", &self.customer_account),
            ("services_account", &self.services_account),
            ("equipment_account", &self.equipment_account),
            ("vat_account", &self.vat_account),
            ("e_reporting_period", self.e_reporting_period.as_str()),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, _)| Field::new(*name, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns
                .iter()
                .map(|(_, value)| {
                    Arc::new(StringArray::from(vec![*value])) as datafusion::arrow::array::ArrayRef
                })
                .collect(),
        )
        .expect("accounting columns")
    }
}

/// The `vat_accounts` table (`vat_rate` DECIMAL(5, 2), `account`): the
/// rates with an account of their own (docs/ACCOUNTING.md).
fn vat_accounts_batch(accounting: &AccountingSettings) -> RecordBatch {
    use datafusion::arrow::array::Decimal128Array;
    let rates = Decimal128Array::from_iter_values(accounting.vat_accounts.keys().map(|rate| {
        let mut rate = *rate;
        rate.rescale(2);
        rate.mantissa()
    }))
    .with_precision_and_scale(5, 2)
    .expect("a rate below 100 %");
    let accounts = StringArray::from_iter_values(accounting.vat_accounts.values());
    let schema = Schema::new(vec![
        Field::new("vat_rate", DataType::Decimal128(5, 2), false),
        Field::new("account", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(rates), Arc::new(accounts)])
        .expect("vat_accounts columns")
}

#[derive(Debug, Default, Serialize)]
pub struct FinanceReport {
    pub month: String,
    /// Rows of `margin` (customer, line, plan).
    pub margin_rows: u64,
    pub retail_ht: String,
    pub wholesale: String,
    pub margin: String,
    /// Rows of `sales_journal` (document and VAT rate).
    pub journal_rows: u64,
    pub journal_total_ht: String,
    pub journal_vat: String,
    pub journal_total_ttc: String,
    /// The CSV journal in the lake.
    pub journal_csv: String,
    /// Rows of `e_reporting` (period and VAT rate).
    pub e_reporting_rows: u64,
    pub b2c_total_ht: String,
    pub b2c_vat: String,
}

impl std::fmt::Display for FinanceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "finance {}: margin {} rows (retail {} € HT, wholesale {} €, margin {} €); \
             sales journal {} rows (HT {} €, VAT {} €, TTC {} €) and {}; \
             B2C e-reporting {} rows (HT {} €, VAT {} €)",
            self.month,
            self.margin_rows,
            self.retail_ht,
            self.wholesale,
            self.margin,
            self.journal_rows,
            self.journal_total_ht,
            self.journal_vat,
            self.journal_total_ttc,
            self.journal_csv,
            self.e_reporting_rows,
            self.b2c_total_ht,
            self.b2c_vat
        )
    }
}

/// The CSV journal of a month, below the lake.
pub fn journal_key(month: Month) -> String {
    format!("documents/{month}/journal-{month}.csv")
}

pub async fn finance(stage: &Context, month: Month) -> Result<FinanceReport, FinanceError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    if !ledger.is_issued(&month_text)? {
        return Err(FinanceError::NotIssued(month_text));
    }
    let partition = format!("month={month}");
    let ctx = crate::stages::session(settings, month, None).await?;
    for dataset in [
        datasets::INVOICES,
        datasets::INVOICE_LINES,
        datasets::RATED_CDRS,
        datasets::RATING_EXCEPTIONS,
    ] {
        if !engine::register_path(&ctx, lake, dataset, &format!("{dataset}/{partition}"), None)
            .await?
        {
            return Err(FinanceError::Missing {
                month: month_text,
                dataset,
            });
        }
    }
    // The credit notes dated in the month the invoices are issued in
    // (docs/ACCOUNTING.md): the journal of a billing month is that of the
    // next calendar month. The invoices of every month, for what a note
    // corrects.
    let issue_month = Month::of(month.next_first_day());
    engine::register_path_or_empty(
        &ctx,
        lake,
        "credit_notes",
        &format!("{}/month={issue_month}", datasets::CREDIT_NOTES),
        crate::stages::credit::schema(),
    )
    .await?;
    engine::register_path(
        &ctx,
        lake,
        "all_invoices",
        datasets::INVOICES,
        Some("month"),
    )
    .await?;
    engine::register_path_or_empty(
        &ctx,
        lake,
        "credit_note_vat",
        &format!("{}/month={issue_month}", datasets::CREDIT_NOTE_VAT),
        crate::stages::credit::vat_schema(),
    )
    .await?;
    engine::register_batch(&ctx, "accounting", settings.accounting.batch())?;
    engine::register_batch(
        &ctx,
        "vat_accounts",
        vat_accounts_batch(&settings.accounting),
    )?;
    engine::run_layer(&ctx, sqlfiles::FINANCE).await?;
    check_margin(&ctx, &month_text).await?;

    for dataset in [
        datasets::MARGIN,
        datasets::SALES_JOURNAL,
        datasets::E_REPORTING,
    ] {
        let frame = ctx.table(dataset).await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        // One batch: the same rows give the same file, byte for byte.
        let batch = concat_batches(&schema, &frame.collect().await?)?;
        lake.write_parquet(
            &format!("{dataset}/{partition}/part-0.parquet"),
            schema,
            &[batch],
        )
        .await?;
    }
    let csv = journal_csv(&ctx, &settings.accounting)
        .await
        .map_err(|message| FinanceError::Journal {
            month: month_text.clone(),
            message,
        })?;
    let key = journal_key(month);
    lake.put(&key, csv).await?;

    let mut report = FinanceReport {
        month: month_text,
        journal_csv: lake.url().join(&key),
        ..Default::default()
    };
    summarise(&ctx, &mut report).await?;
    Ok(report)
}

/// The margin shares the month out, it neither loses nor counts twice: its
/// retail adds up to the invoices' total HT, its wholesale to that of the
/// rated CDRs and the exceptions but the conflicting duplicates
/// (`sql/finance/margin_check.sql`).
async fn check_margin(ctx: &SessionContext, month: &str) -> Result<(), FinanceError> {
    let sums = engine::Rows::query(ctx, &sqlfiles::MARGIN_CHECK).await?;
    let row = sums.rows.first().ok_or_else(|| {
        datafusion::error::DataFusionError::Execution(
            "no row from sql file margin_check".to_string(),
        )
    })?;
    let value = |text: &str| text.parse::<Decimal>().ok();
    for (what, margin, source_total) in [
        ("retail HT", "margin_retail_ht", "invoices_total_ht"),
        ("wholesale", "margin_wholesale", "cdrs_wholesale"),
    ] {
        let (margin, source_total) = (sums.get(row, margin), sums.get(row, source_total));
        if value(margin).is_none() || value(margin) != value(source_total) {
            return Err(FinanceError::Unbalanced {
                month: month.to_string(),
                what,
                margin: margin.to_string(),
                source_total: source_total.to_string(),
            });
        }
    }
    Ok(())
}

async fn summarise(ctx: &SessionContext, report: &mut FinanceReport) -> Result<(), FinanceError> {
    let margin = engine::row_strings(
        ctx,
        "SELECT COUNT(*), COALESCE(SUM(retail_ht), 0), COALESCE(SUM(wholesale), 0), COALESCE(SUM(margin), 0) FROM margin",
    )
    .await?;
    report.margin_rows = margin[0].parse().unwrap_or_default();
    report.retail_ht = margin[1].clone();
    report.wholesale = margin[2].clone();
    report.margin = margin[3].clone();
    let journal = engine::row_strings(
        ctx,
        "SELECT COUNT(*), COALESCE(SUM(total_ht), 0), COALESCE(SUM(vat), 0), COALESCE(SUM(total_ttc), 0) FROM sales_journal",
    )
    .await?;
    report.journal_rows = journal[0].parse().unwrap_or_default();
    report.journal_total_ht = journal[1].clone();
    report.journal_vat = journal[2].clone();
    report.journal_total_ttc = journal[3].clone();
    let b2c = engine::row_strings(
        ctx,
        "SELECT COUNT(*), COALESCE(SUM(total_ht), 0), COALESCE(SUM(vat), 0) FROM e_reporting",
    )
    .await?;
    report.e_reporting_rows = b2c[0].parse().unwrap_or_default();
    report.b2c_total_ht = b2c[1].clone();
    report.b2c_vat = b2c[2].clone();
    Ok(())
}

/// The columns of the CSV journal: those of the FEC (fichier des écritures
/// comptables, article A47 A-1 of the Livre des procédures fiscales), which
/// French accounting software maps on import.
pub const JOURNAL_COLUMNS: [&str; 18] = [
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
];

/// One row of the `sales_journal` dataset, as the CSV needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    pub document_type: String,
    pub document_number: String,
    pub journal_code: String,
    pub journal_label: String,
    /// `YYYY-MM-DD`.
    pub entry_date: String,
    pub customer_id: String,
    pub customer_name: String,
    pub customer_account: String,
    pub services_account: String,
    pub equipment_account: String,
    pub vat_account: String,
    pub vat_rate: Decimal,
    pub services_ht: Decimal,
    pub equipment_ht: Decimal,
    pub vat: Decimal,
    pub total_ttc: Decimal,
}

/// Reads the `sales_journal` table (`sql/finance/journal_entries.sql`) and
/// writes it as CSV.
async fn journal_csv(
    ctx: &SessionContext,
    accounting: &AccountingSettings,
) -> Result<Vec<u8>, String> {
    let table = engine::Rows::query(ctx, &sqlfiles::JOURNAL_ENTRIES)
        .await
        .map_err(|e| e.to_string())?;
    let decimal = |column: &str, row: &[String]| -> Result<Decimal, String> {
        let text = table.get(row, column);
        text.parse::<Decimal>()
            .map_err(|e| format!("amount '{text}': {e}"))
    };
    let text = |column: &str, row: &[String]| table.get(row, column).to_string();
    let mut journal = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        journal.push(JournalRow {
            document_type: text("document_type", row),
            document_number: text("document_number", row),
            journal_code: text("journal_code", row),
            journal_label: accounting.journal_label.clone(),
            entry_date: text("entry_date", row),
            customer_id: text("customer_id", row),
            customer_name: text("customer_name", row),
            customer_account: text("customer_account", row),
            services_account: text("services_account", row),
            equipment_account: text("equipment_account", row),
            vat_account: text("vat_account", row),
            vat_rate: decimal("vat_rate", row)?,
            services_ht: decimal("services_ht", row)?,
            equipment_ht: decimal("equipment_ht", row)?,
            vat: decimal("vat", row)?,
            total_ttc: decimal("total_ttc", row)?,
        });
    }
    write_journal_csv(&journal)
}

/// The journal in double entry, as a French accountant imports it:
///
/// - the FEC's 18 columns ([`JOURNAL_COLUMNS`]), one line per entry: the
///   customer account debited with the TTC (with the customer as auxiliary
///   account), the services and equipment accounts credited with their HT,
///   the VAT account credited with the VAT; an HT of zero gives no line;
/// - `;` between fields, decimal comma, no thousands separator, dates
///   `dd/mm/yyyy`, UTF-8 with a byte order mark (so that Excel reads the
///   accents), CRLF line ends, fields quoted only when they hold `;`, `"` or
///   a line break;
/// - an amount is never negative: a negative amount (a credit note) goes on
///   the other side, so an invoice debits 411 and a credit note credits it;
/// - a text field that a spreadsheet would take for a formula (first
///   character `=`, `+`, `-`, `@`, tab, CR or LF) is prefixed with `'`
///   ([`neutralise`]). Amounts and dates are written by this function from
///   numbers, never from text, and are never prefixed.
pub fn write_journal_csv(rows: &[JournalRow]) -> Result<Vec<u8>, String> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(b';')
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        writer
            .write_record(JOURNAL_COLUMNS)
            .map_err(|e| e.to_string())?;
        for row in rows {
            let date = french_date(&row.entry_date)?;
            let what = match row.document_type.as_str() {
                "CREDIT_NOTE" => "Avoir",
                _ => "Facture",
            };
            let label = format!("{what} {} {}", row.document_number, row.customer_name);
            let vat_label = format!("TVA collectée {} %", french_amount(row.vat_rate));
            // (account, account label, auxiliary, amount on its natural side, debit side?)
            let entries = [
                (&row.customer_account, "Clients", true, row.total_ttc, true),
                (
                    &row.services_account,
                    "Prestations de services",
                    false,
                    row.services_ht,
                    false,
                ),
                (
                    &row.equipment_account,
                    "Ventes de marchandises",
                    false,
                    row.equipment_ht,
                    false,
                ),
                (&row.vat_account, vat_label.as_str(), false, row.vat, false),
            ];
            for (account, account_label, auxiliary, amount, debit_side) in entries {
                if amount.is_zero() && !auxiliary {
                    continue;
                }
                let on_debit = debit_side == amount.is_sign_positive();
                let value = french_amount(amount.abs());
                let zero = french_amount(Decimal::ZERO);
                let (debit, credit) = if on_debit {
                    (value, zero)
                } else {
                    (zero, value)
                };
                let (aux_number, aux_name) = if auxiliary {
                    (row.customer_id.as_str(), row.customer_name.as_str())
                } else {
                    ("", "")
                };
                let text = |s: &str| neutralise(s).into_owned();
                writer
                    .write_record([
                        text(&row.journal_code),
                        text(&row.journal_label),
                        text(&row.document_number),
                        date.clone(),
                        text(account),
                        text(account_label),
                        text(aux_number),
                        text(aux_name),
                        text(&row.document_number),
                        date.clone(),
                        text(&label),
                        debit,
                        credit,
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ])
                    .map_err(|e| e.to_string())?;
            }
        }
        writer.flush().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A text cell a spreadsheet could run as a formula, made plain text: a
/// leading `=`, `+`, `-`, `@`, tab, CR or LF gets a `'` before it (OWASP,
/// "CSV injection"). Other text is unchanged.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// An amount with a decimal comma and two decimals: `-1234,50`.
pub fn french_amount(amount: Decimal) -> String {
    let rounded =
        amount.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    format!("{rounded:.2}").replace('.', ",")
}

/// `2026-11-01` as `01/11/2026`.
fn french_date(iso: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(iso, "%Y-%m-%d")
        .map(|d| d.format("%d/%m/%Y").to_string())
        .map_err(|e| format!("date '{iso}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(document_type: &str, sign: i64) -> JournalRow {
        let amount = |cents: i64| Decimal::new(sign * cents, 2);
        JournalRow {
            document_type: document_type.into(),
            document_number: "EXM-2026-000001".into(),
            journal_code: "VE".into(),
            journal_label: "Ventes".into(),
            entry_date: "2026-11-01".into(),
            customer_id: "C00001".into(),
            customer_name: "=HYPERLINK(\"http://x\")".into(),
            customer_account: "411000".into(),
            services_account: "706000".into(),
            equipment_account: "707000".into(),
            vat_account: "445710".into(),
            vat_rate: Decimal::new(2000, 2),
            services_ht: amount(5250),
            equipment_ht: amount(0),
            vat: amount(1050),
            total_ttc: amount(6300),
        }
    }

    fn lines(csv: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(csv).unwrap();
        let text = text.strip_prefix('\u{feff}').expect("a BOM");
        text.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn an_invoice_debits_the_customer_and_credits_sales_and_vat() {
        let csv = write_journal_csv(&[row("INVOICE", 1)]).unwrap();
        let lines = lines(&csv);
        assert_eq!(lines[0], JOURNAL_COLUMNS.join(";"));
        assert_eq!(lines.len(), 4, "{lines:?}: no line for zero equipment");
        assert_eq!(
            lines[1],
            "VE;Ventes;EXM-2026-000001;01/11/2026;411000;Clients;C00001;\"'=HYPERLINK(\"\"http://x\"\")\";EXM-2026-000001;01/11/2026;\"Facture EXM-2026-000001 =HYPERLINK(\"\"http://x\"\")\";63,00;0,00;;;;;"
        );
        assert!(lines[2].contains(";706000;Prestations de services;;;"));
        assert!(lines[2].ends_with(";0,00;52,50;;;;;"));
        assert!(lines[3].contains(";445710;TVA collectée 20,00 %;"));
        assert!(lines[3].ends_with(";0,00;10,50;;;;;"));
    }

    #[test]
    fn a_credit_note_swaps_sides_and_keeps_amounts_positive() {
        let csv = write_journal_csv(&[row("CREDIT_NOTE", -1)]).unwrap();
        let lines = lines(&csv);
        assert!(
            lines[1].contains("\"Avoir EXM-2026-000001 "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(";0,00;63,00;;;;;"), "{}", lines[1]);
        assert!(lines[2].ends_with(";52,50;0,00;;;;;"), "{}", lines[2]);
        assert!(lines[3].ends_with(";10,50;0,00;;;;;"), "{}", lines[3]);
        assert!(!lines.iter().any(|l| l.contains(";-")));
    }

    #[test]
    fn formula_starts_are_neutralised_and_other_text_is_not() {
        for (text, want) in [
            ("=1+1", "'=1+1"),
            ("+33 6 12 34 56 78", "'+33 6 12 34 56 78"),
            ("-2", "'-2"),
            ("@SUM(1)", "'@SUM(1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("Élodie Müller", "Élodie Müller"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(text), want);
        }
    }

    #[test]
    fn amounts_have_a_decimal_comma() {
        assert_eq!(french_amount(Decimal::new(123456, 2)), "1234,56");
        assert_eq!(french_amount(Decimal::new(-5, 1)), "-0,50");
        assert_eq!(french_amount(Decimal::ZERO), "0,00");
        assert_eq!(french_date("2026-11-01").unwrap(), "01/11/2026");
    }
}
