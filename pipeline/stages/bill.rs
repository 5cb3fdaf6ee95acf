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

use std::str::FromStr;

use chrono::NaiveDate;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::ledger::{
    BilledCharge, IssuedNumber, Ledger, LedgerError, MonthIssue, NoteVat, RegularisationNote,
};
use crate::core::month::Month;
use crate::engine;
use crate::engine::sqlfiles;
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::settings::{BillingSettings, Settings};
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
    #[error("cannot bill {month}: bill {first} first (months are issued in order)")]
    OutOfOrder { month: String, first: String },
    #[error("cannot bill {month}: [billing] first_month is {first}")]
    BeforeFirst { month: String, first: String },
    #[error("cannot bill {month}: {last} is issued already, and months are issued in order")]
    BehindIssued { month: String, last: String },
    #[error("month {0} is issued: a draft is for a month not issued yet")]
    DraftOfIssued(String),
    #[error("billing {month} again for its regularisation: {message}")]
    Rerate { month: String, message: String },
    #[error("reference tables: {0}")]
    Reference(String),
    #[error("regularisation credit notes: {0}")]
    CreditNotes(String),
    #[error("customer account: {0}")]
    Account(String),
    #[error("ledger: {0}")]
    Corrupt(String),
    #[error("draft comparison: {0}")]
    Comparison(String),
    #[error(transparent)]
    Record(#[from] crate::stages::frozen::RecordError),
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
    /// Earlier issued months billed again (their inputs changed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regularised_months: Vec<String>,
    /// The REGULARISATION lines' total HT.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub regularisation_ht: String,
    /// The credit notes issued for negative differences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credit_notes: Vec<String>,
    /// A draft: where it is, and how it compares with the month before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<DraftReport>,
}

impl std::fmt::Display for BillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(draft) = &self.draft {
            write!(
                f,
                "bill {} (draft, nothing issued): {} invoices, {} lines, total HT {} €, VAT {} €, total TTC {} €",
                self.month, self.invoices, self.lines, self.total_ht, self.vat, self.total_ttc
            )?;
            self.fmt_regularisation(f)?;
            return write!(f, "\n{draft}");
        }
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
        )?;
        self.fmt_regularisation(f)
    }
}

impl BillReport {
    fn fmt_regularisation(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.regularised_months.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "\n  billed again: {}; regularisation lines {} € HT",
            self.regularised_months.join(", "),
            self.regularisation_ht
        )?;
        if !self.credit_notes.is_empty() {
            write!(f, "; credit notes {}", self.credit_notes.join(", "))?;
        }
        Ok(())
    }
}

/// A draft (account.md §2): where its datasets are, and each customer's
/// total TTC against the month before's.
#[derive(Debug, Default, Serialize)]
pub struct DraftReport {
    /// The folder of `draft_invoices` and `draft_invoice_lines`.
    pub datasets: String,
    pub previous_month: String,
    pub previous_total_ttc: String,
    pub alert_percent: String,
    /// Every customer of either month, in customer order.
    pub customers: Vec<DraftCustomer>,
}

#[derive(Debug, Serialize)]
pub struct DraftCustomer {
    pub customer_id: String,
    /// Total TTC invoiced the month before ("" when none).
    pub previous_ttc: String,
    /// Total TTC of the draft ("" when none).
    pub draft_ttc: String,
    pub variation: String,
    /// The variation in percent of the month before's total ("" when new).
    pub percent: String,
    /// NEW (no invoice the month before), GONE (none now), ALERT (moved by
    /// more than the alert percentage), or "".
    pub status: String,
}

impl std::fmt::Display for DraftReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |status: &str| self.customers.iter().filter(|c| c.status == status).count();
        write!(
            f,
            "  datasets: {}\n  against {} (total TTC {} €): {} customers, {} new, {} gone, {} moved by more than {} %",
            self.datasets,
            self.previous_month,
            self.previous_total_ttc,
            self.customers.len(),
            count("NEW"),
            count("GONE"),
            count("ALERT"),
            self.alert_percent
        )?;
        let outliers: Vec<&DraftCustomer> = self
            .customers
            .iter()
            .filter(|c| !c.status.is_empty())
            .collect();
        if outliers.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "\n  {:<12} {:>12} {:>12} {:>12} {:>9}  ",
            "customer", "before €", "draft €", "variation €", "%"
        )?;
        for c in outliers {
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            write!(
                f,
                "\n  {:<12} {:>12} {:>12} {:>12} {:>9}  {}",
                c.customer_id,
                dash(&c.previous_ttc),
                dash(&c.draft_ttc),
                c.variation,
                dash(&c.percent),
                c.status
            )?;
        }
        Ok(())
    }
}

pub async fn bill(stage: &mut Context, month: Month, draft: bool) -> Result<BillReport, BillError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    let partition = format!("month={month}");
    if ledger.is_issued(&month_text)? {
        if draft {
            return Err(BillError::DraftOfIssued(month_text));
        }
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
    let issued = ledger.issued_months()?;
    check_order(&issued, &settings.billing, month)?;
    let mut laps = crate::core::progress::Laps::new(format!("bill {month}"));

    let integrator = Integrator::load(&settings.integrator_path)?;
    let issue_date = month.next_first_day();
    let due_date = issue_date + chrono::Duration::days(integrator.payment_terms_days as i64);
    // account.md §5: a charge is billed once, ever.
    let billed = billed_charges_batch(&ledger.billed_charges()?);
    let raised = raised_charges_batch(ledger)?;
    let ctx = month_lines(
        settings,
        lake,
        month,
        Some((issue_date, due_date)),
        Rating::Lake,
        &billed,
        Some(&raised),
    )
    .await?;
    laps.lap("month's lines");
    let regularised = regularise(settings, lake, ledger, &ctx, &issued, &billed).await?;
    laps.lap("regularisation");
    engine::run_layer(&ctx, sqlfiles::BILLING_DRAFT).await?;
    check_prices(&ctx, &month_text).await?;
    laps.lap("draft");

    let customers = engine::rows_strings(
        &ctx,
        "SELECT customer_id FROM draft_invoices ORDER BY customer_id",
    )
    .await?;
    // Numbering (rating.md §7): continuous within the issue date's year;
    // the first month billed may continue an earlier system's numbering. A
    // draft numbers nothing.
    let year = chrono::Datelike::year(&issue_date);
    let mut seq = ledger.last_sequence(year)?;
    if issued.is_empty() {
        seq = seq.max(settings.billing.first_sequence - 1);
    }
    let numbers: Vec<(i64, IssuedNumber)> = customers
        .into_iter()
        .map(|row| {
            let invoice_number = if draft {
                String::new()
            } else {
                seq += 1;
                format!("{}-{year}-{seq:06}", integrator.invoice_prefix)
            };
            let number = IssuedNumber {
                invoice_number,
                customer_id: row[0].clone(),
            };
            (seq, number)
        })
        .collect();
    engine::register_batch(&ctx, "invoice_numbers", numbers_batch(&numbers))?;
    // account.md §4 and §7: the regularisation's credit notes are issued
    // with the month, before its invoices: their credit is deducted from
    // the invoice's amount due, with the balance of the account before it.
    let notes = credit_notes(ledger, &ctx, &integrator.invoice_prefix, month, issue_date).await?;
    let entries = crate::account::entries(ledger.connection())
        .map_err(|e| BillError::Account(e.to_string()))?;
    let mut balances = crate::account::balances_at(&entries, issue_date);
    for note in &notes {
        let ttc = Decimal::from_str(&note.total_ttc)
            .map_err(|_| BillError::CreditNotes(format!("note total '{}'", note.total_ttc)))?;
        *balances
            .entry(note.customer_id.clone())
            .or_insert(Decimal::ZERO) -= ttc;
    }
    engine::register_batch(&ctx, "balances", balances_batch(&balances))?;
    engine::register_batch(
        &ctx,
        "transfer_customers",
        transfer_customers_batch(ledger)?,
    )?;
    laps.lap("numbers, credit notes, balances");
    engine::run_layer(&ctx, sqlfiles::BILLING_OUTPUT).await?;
    laps.lap("output");
    // The issue's datasets, or the draft's (account.md §2: replaced at each
    // draft, the columns of the issue's).
    let drafts = format!("{}/{partition}", datasets::DRAFTS);
    let outputs = if draft {
        [
            format!("{drafts}/draft_invoices/part-0.parquet"),
            format!("{drafts}/draft_invoice_lines/part-0.parquet"),
            format!("{drafts}/draft_commitments/part-0.parquet"),
        ]
    } else {
        [
            datasets::INVOICES,
            datasets::INVOICE_LINES,
            datasets::INVOICE_COMMITMENTS,
        ]
        .map(|dataset| format!("{dataset}/{partition}/part-0.parquet"))
    };
    for (query, key) in [
        "SELECT * FROM invoices",
        "SELECT * FROM invoice_lines",
        INVOICE_COMMITMENTS,
    ]
    .iter()
    .zip(&outputs)
    {
        let stream = ctx.sql(query).await?.execute_stream().await?;
        lake.write_stream(key, stream).await?;
        laps.lap(key);
    }
    let mut report = BillReport {
        month: month_text.clone(),
        ..Default::default()
    };
    summarise(&ctx, &mut report).await?;
    report.lines = engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM invoice_lines").await?;
    report.regularised_months = regularised.iter().map(|(m, _)| m.clone()).collect();
    report.regularisation_ht = engine::row_strings(
        &ctx,
        "SELECT CAST(COALESCE(SUM(amount_ht), 0) AS DECIMAL(18, 2)) FROM regularisation_lines",
    )
    .await?[0]
        .clone();
    if draft {
        report.draft = Some(compare(settings, lake, &ctx, month, lake.url().join(&drafts)).await?);
        return Ok(report);
    }

    engine::register_batch(&ctx, "note_numbers", note_numbers(&notes))?;
    let note_lines = ctx.sql(CREDIT_NOTE_LINES).await?;
    lake.write_stream(
        &format!("{}/{partition}/part-0.parquet", datasets::CREDIT_NOTE_LINES),
        note_lines.execute_stream().await?,
    )
    .await?;

    report.credit_notes = notes.iter().map(|n| n.number.clone()).collect();
    laps.lap("summary, credit note lines");
    let charges = month_charges(settings, ledger, &ctx, &month_text).await?;
    let entries = account_entries(&ctx, &notes).await?;
    laps.lap("charges, account entries");
    // account.md §3: what the documents print, recorded with the invoices.
    crate::stages::frozen::record_issue(settings, lake, month).await?;
    laps.lap("frozen documents");
    ledger.issue_month(
        &month_text,
        year,
        &numbers,
        &report.total_ttc,
        &MonthIssue {
            notes,
            fingerprints: regularised,
            charges,
            entries,
        },
    )?;
    laps.lap("ledger");
    crate::account::write_dataset(ledger.connection(), lake)
        .await
        .map_err(|e| BillError::Account(e.to_string()))?;
    crate::stages::credit::rewrite_dataset(ledger.connection(), lake, Month::of(issue_date))
        .await
        .map_err(|e| BillError::CreditNotes(e.to_string()))?;
    laps.lap("account and credit note datasets");
    Ok(report)
}

/// account.md §2: each customer's total TTC in the draft (`invoices` of
/// `ctx`) against its invoice of the month before.
async fn compare(
    settings: &Settings,
    lake: &Lake,
    ctx: &SessionContext,
    month: Month,
    datasets_url: String,
) -> Result<DraftReport, BillError> {
    let previous = month
        .previous()
        .ok_or_else(|| BillError::Comparison("no month before".into()))?;
    if !engine::register_path(
        ctx,
        lake,
        "previous_invoices",
        &format!("{}/month={previous}", datasets::INVOICES),
        None,
    )
    .await?
    {
        ctx.sql("CREATE VIEW previous_invoices AS SELECT * FROM invoices WHERE false")
            .await?;
    }
    let rows = engine::rows_strings(
        ctx,
        "SELECT COALESCE(p.customer_id, d.customer_id), COALESCE(CAST(p.total_ttc AS VARCHAR), ''),
                COALESCE(CAST(d.total_ttc AS VARCHAR), '')
         FROM previous_invoices p
         FULL OUTER JOIN invoices d ON d.customer_id = p.customer_id
         ORDER BY 1",
    )
    .await?;
    let alert = settings.billing.draft_alert_percent;
    let parse = |text: &str| -> Result<Decimal, BillError> {
        if text.is_empty() {
            return Ok(Decimal::ZERO);
        }
        Decimal::from_str(text)
            .map_err(|_| BillError::Comparison(format!("'{text}' is not an amount")))
    };
    let mut draft = DraftReport {
        datasets: datasets_url,
        previous_month: previous.to_string(),
        alert_percent: alert.to_string(),
        ..Default::default()
    };
    let mut previous_total = Decimal::ZERO;
    for row in rows {
        let (before, now) = (parse(&row[1])?, parse(&row[2])?);
        previous_total += before;
        let variation = now - before;
        let percent = (!row[1].is_empty() && !before.is_zero()).then(|| {
            (variation * Decimal::from(100) / before.abs())
                .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
        });
        let status = if row[1].is_empty() {
            "NEW"
        } else if row[2].is_empty() {
            "GONE"
        } else if percent.is_some_and(|p| p.abs() > alert)
            || (before.is_zero() && !variation.is_zero())
        {
            "ALERT"
        } else {
            ""
        };
        draft.customers.push(DraftCustomer {
            customer_id: row[0].clone(),
            previous_ttc: row[1].clone(),
            draft_ttc: row[2].clone(),
            variation: format!("{variation:.2}"),
            percent: percent.map(|p| format!("{p:.1}")).unwrap_or_default(),
            status: status.to_string(),
        });
    }
    draft.previous_total_ttc = format!("{previous_total:.2}");
    Ok(draft)
}

/// account.md §1: months are issued in order, from `[billing] first_month`
/// (or the first month ever billed) on.
fn check_order(
    issued: &[String],
    billing: &BillingSettings,
    month: Month,
) -> Result<(), BillError> {
    let expected = match issued.last() {
        Some(last) => {
            let last: Month = last
                .parse()
                .map_err(|_| BillError::Corrupt(format!("issued month '{last}'")))?;
            Month::of(last.next_first_day())
        }
        None => match billing.first_month {
            Some(first) => first,
            None => return Ok(()),
        },
    };
    if month == expected {
        return Ok(());
    }
    if month < expected && issued.is_empty() {
        return Err(BillError::BeforeFirst {
            month: month.to_string(),
            first: expected.to_string(),
        });
    }
    if month < expected {
        return Err(BillError::BehindIssued {
            month: month.to_string(),
            last: issued.last().cloned().unwrap_or_default(),
        });
    }
    Err(BillError::OutOfOrder {
        month: month.to_string(),
        first: expected.to_string(),
    })
}

/// Where a month's rated events come from: the `rated_cdrs` that `rate`
/// wrote (the month billed), or a rating in memory of every CDR landed so
/// far (an issued month billed again, account.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rating {
    Lake,
    Memory,
}

/// A session holding `month_lines`: every line the month brings to its
/// invoices (rating.md §6), from the reference tables in force now.
async fn month_lines(
    settings: &Settings,
    lake: &Lake,
    month: Month,
    dates: Option<(NaiveDate, NaiveDate)>,
    rating: Rating,
    billed_charges: &RecordBatch,
    raised_charges: Option<&RecordBatch>,
) -> Result<SessionContext, BillError> {
    let ctx = crate::stages::session(settings, month, dates).await?;
    engine::register_batch(&ctx, "billed_charges", billed_charges.clone())?;
    if let Some(raised) = raised_charges.filter(|b| b.num_rows() > 0) {
        add_raised_charges(&ctx, raised).await?;
    }
    crate::stages::register_account_status(&ctx, lake).await?;
    engine::run_layer(&ctx, sqlfiles::REFERENCE).await?;
    match rating {
        Rating::Lake => {
            if !engine::register_path(
                &ctx,
                lake,
                "rated_cdrs",
                &format!("{}/month={month}", datasets::RATED_CDRS),
                None,
            )
            .await?
            {
                return Err(BillError::NotRated(month.to_string()));
            }
        }
        Rating::Memory => crate::stages::rate::rate_in_memory(&ctx, lake, month)
            .await
            .map_err(|e| BillError::Rerate {
                month: month.to_string(),
                message: e.to_string(),
            })?,
    }
    engine::run_layer(&ctx, sqlfiles::BILLING_LINES).await?;
    Ok(ctx)
}

/// The digest of what every month's lines are computed from besides its
/// own CDR files: the names of every conflicting-copy file (the billed copy
/// of an id is that of the file sorting first, whatever its month: rating.md
/// §1) and status snapshot, and the bytes of the reference tables. Read once
/// per `bill`, whatever the number of months it looks at.
async fn common_inputs(settings: &Settings, lake: &Lake) -> Result<String, BillError> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for folder in [datasets::CDR_CONFLICTS, datasets::ACCOUNT_STATUS] {
        let mut names = lake.list(folder).await?;
        names.sort();
        digest.update(format!("{folder}\n{}\n", names.join("\n")));
    }
    let mut files: Vec<_> = std::fs::read_dir(&settings.reference_dir)
        .map_err(|e| BillError::Reference(format!("{}: {e}", settings.reference_dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path)
            .map_err(|e| BillError::Reference(format!("{}: {e}", path.display())))?;
        digest.update(format!("{}\n{}\n", path.display(), bytes.len()));
        digest.update(&bytes);
    }
    Ok(format!("{:x}", digest.finalize()))
}

/// A digest of what a month's lines are computed from: the names of its
/// CDR files and the [`common_inputs`]. Unchanged: billing the month again
/// would give what it gave, so it is not billed again.
async fn fingerprint(common: &str, lake: &Lake, month: Month) -> Result<String, BillError> {
    use sha2::{Digest, Sha256};
    let folder = format!("{}/month={month}", datasets::CDRS);
    let mut names = lake.list(&folder).await?;
    names.sort();
    let mut digest = Sha256::new();
    digest.update(format!("{common}\n{folder}\n{}\n", names.join("\n")));
    Ok(format!("{:x}", digest.finalize()))
}

/// account.md §4: bills again, in memory, every issued month of the last
/// `regularisation_months` whose inputs changed since it was last billed,
/// and registers in `ctx` the differences per customer and line key
/// (`regularisation_deltas`), the positive ones as REGULARISATION lines
/// (`regularisation_lines`). Returns the months billed again with the
/// digest of their inputs.
async fn regularise(
    settings: &Settings,
    lake: &Lake,
    ledger: &Ledger,
    ctx: &SessionContext,
    issued: &[String],
    billed_charges: &RecordBatch,
) -> Result<Vec<(String, String)>, BillError> {
    let reach = settings.billing.regularisation_months as usize;
    let window = &issued[issued.len().saturating_sub(reach)..];
    let common = if window.is_empty() {
        String::new()
    } else {
        common_inputs(settings, lake).await?
    };
    let mut recomputed: Vec<RecordBatch> = Vec::new();
    let mut schema = None;
    let mut months = Vec::new();
    for earlier in window {
        let earlier_month: Month = earlier
            .parse()
            .map_err(|_| BillError::Corrupt(format!("issued month '{earlier}'")))?;
        let digest = fingerprint(&common, lake, earlier_month).await?;
        if ledger.month_fingerprint(earlier)?.as_deref() == Some(digest.as_str()) {
            continue;
        }
        let kctx = month_lines(
            settings,
            lake,
            earlier_month,
            None,
            Rating::Memory,
            billed_charges,
            None,
        )
        .await?;
        let frame = kctx
            .sql("SELECT * FROM month_lines WHERE kind <> 'CHARGE'")
            .await?;
        schema.get_or_insert_with(|| std::sync::Arc::new(frame.schema().as_arrow().clone()));
        recomputed.extend(frame.collect().await?);
        months.push((earlier.clone(), digest));
    }
    let empty_lines = "SELECT * FROM month_lines WHERE false";
    match (schema, months.is_empty()) {
        (Some(schema), false) => {
            let table = datafusion::datasource::MemTable::try_new(schema, vec![recomputed])?;
            ctx.register_table("recomputed_lines", std::sync::Arc::new(table))?;
        }
        _ => {
            ctx.sql(&format!("CREATE VIEW recomputed_lines AS {empty_lines}"))
                .await?;
        }
    }
    engine::register_batch(
        ctx,
        "regularised_months",
        months_batch(months.iter().map(|(m, _)| m.as_str())),
    )?;
    if !engine::register_path(
        ctx,
        lake,
        "invoiced_lines",
        datasets::INVOICE_LINES,
        Some("month"),
    )
    .await?
    {
        ctx.sql(&format!(
            "CREATE VIEW invoiced_lines AS
             SELECT '' AS invoice_number, l.*, l.period AS month FROM ({empty_lines}) l"
        ))
        .await?;
    }
    if !engine::register_path(
        ctx,
        lake,
        "credited_lines",
        datasets::CREDIT_NOTE_LINES,
        Some("month"),
    )
    .await?
    {
        ctx.sql(&format!(
            "CREATE VIEW credited_lines AS
             SELECT '' AS credit_note_number, l.*, l.period AS month FROM ({empty_lines}) l"
        ))
        .await?;
    }
    engine::run_layer(ctx, sqlfiles::REGULARISATION).await?;
    Ok(months)
}

/// The `billed_charges` table (`charge_id`) of the charges the ledger
/// records as billed: `charge_lines.sql` leaves them out.
fn billed_charges_batch(billed: &[BilledCharge]) -> RecordBatch {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(vec![Field::new("charge_id", DataType::Utf8, false)]);
    RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![std::sync::Arc::new(StringArray::from_iter_values(
            billed.iter().map(|c| c.charge_id.as_str()),
        ))],
    )
    .expect("one column")
}

/// The charges the month's invoices carry (`CHARGE` lines, whose code is
/// the charge_id), with the hash of their row as billed, for the ledger:
/// a row of charges.csv, or a charge the pipeline raised (a return fee).
async fn month_charges(
    settings: &Settings,
    ledger: &Ledger,
    ctx: &SessionContext,
    month: &str,
) -> Result<Vec<BilledCharge>, BillError> {
    let ids = engine::rows_strings(
        ctx,
        "SELECT code FROM month_lines WHERE kind = 'CHARGE' ORDER BY code",
    )
    .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut hashes = crate::reference::Reference::load(&settings.reference_dir)
        .map_err(|e| BillError::Reference(e.to_string()))?
        .charge_hashes();
    for charge in raised_charges(ledger)? {
        hashes.insert(charge[0].clone(), sha256_hex(&charge.join(";")));
    }
    ids.into_iter()
        .map(|row| {
            let charge_id = row[0].clone();
            let content_hash = hashes.get(&charge_id).cloned().ok_or_else(|| {
                BillError::Reference(format!("charge {charge_id} is no longer in charges.csv"))
            })?;
            Ok(BilledCharge {
                charge_id,
                month: month.to_string(),
                content_hash,
            })
        })
        .collect()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The charges the pipeline raised itself (`account_charges`: the return
/// fee of account.md §7), as text: charge_id, customer_id, charge_date,
/// label, amount_ht.
fn raised_charges(ledger: &Ledger) -> Result<Vec<Vec<String>>, BillError> {
    let mut statement = ledger
        .connection()
        .prepare(
            "SELECT charge_id, customer_id, charge_date, label, amount_ht
             FROM account_charges ORDER BY charge_id",
        )
        .map_err(|e| BillError::Account(e.to_string()))?;
    let rows = statement
        .query_map([], |r| (0..5).map(|i| r.get::<_, String>(i)).collect())
        .map_err(|e| BillError::Account(e.to_string()))?;
    rows.collect::<Result<Vec<Vec<String>>, _>>()
        .map_err(|e| BillError::Account(e.to_string()))
}

fn strings_batch(names: &[&str], rows: &[Vec<String>]) -> RecordBatch {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    );
    let columns = (0..names.len())
        .map(|i| {
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r[i])))
                as ArrayRef
        })
        .collect();
    RecordBatch::try_new(std::sync::Arc::new(schema), columns).expect("text columns")
}

fn raised_charges_batch(ledger: &Ledger) -> Result<RecordBatch, BillError> {
    Ok(strings_batch(
        &[
            "charge_id",
            "customer_id",
            "charge_date",
            "label",
            "amount_ht",
        ],
        &raised_charges(ledger)?,
    ))
}

/// Adds the charges the pipeline raised to the `charges` table of
/// charges.csv, typed as it is, so that charge_lines.sql bills both alike.
async fn add_raised_charges(ctx: &SessionContext, raised: &RecordBatch) -> Result<(), BillError> {
    engine::register_batch(ctx, "raised_charges", raised.clone())?;
    let table = ctx.table("charges").await?;
    let schema = table.schema().as_arrow().clone();
    let money = match schema
        .field_with_name("amount_ht")
        .map(|f| f.data_type().clone())
    {
        Ok(datafusion::arrow::datatypes::DataType::Decimal128(p, s)) => {
            format!("DECIMAL({p}, {s})")
        }
        _ => "DECIMAL(18, 6)".to_string(),
    };
    let union = ctx
        .sql(&format!(
            "SELECT charge_id, customer_id, msisdn, charge_date, label, amount_ht, vat_code,
                    vat_exemption
             FROM charges
             UNION ALL
             SELECT charge_id, customer_id, CAST(NULL AS VARCHAR), CAST(charge_date AS DATE),
                    label, CAST(amount_ht AS {money}), CAST(NULL AS VARCHAR),
                    CAST(NULL AS VARCHAR)
             FROM raised_charges"
        ))
        .await?;
    // Every column nullable (msisdn is NULL on a raised charge, where the
    // charges.csv table says it is never null) and of the union's types:
    // each side of the union gives batches of its own schema (Utf8View on
    // one side, Utf8 on the other).
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(
        union
            .schema()
            .as_arrow()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let union = union
        .collect()
        .await?
        .into_iter()
        .map(|batch| {
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| datafusion::arrow::compute::cast(column, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(datafusion::error::DataFusionError::from)?;
    ctx.deregister_table("charges")?;
    let table = datafusion::datasource::MemTable::try_new(schema, vec![union])?;
    ctx.register_table("charges", std::sync::Arc::new(table))?;
    Ok(())
}

/// Each customer's balance brought forward (account.md §7).
fn balances_batch(balances: &std::collections::BTreeMap<String, Decimal>) -> RecordBatch {
    let rows: Vec<Vec<String>> = balances
        .iter()
        .map(|(customer, balance)| vec![customer.clone(), format!("{balance:.2}")])
        .collect();
    strings_batch(&["customer_id", "balance"], &rows)
}

/// The customers a returned debit moved to transfer (account.md §7), with
/// the mandate that was returned and since when: `invoices.sql` bills them
/// by transfer while customers.csv still holds that mandate.
fn transfer_customers_batch(ledger: &Ledger) -> Result<RecordBatch, BillError> {
    let mut statement = ledger
        .connection()
        .prepare(
            "SELECT customer_id, since, mandate_rum FROM transfer_customers ORDER BY customer_id",
        )
        .map_err(|e| BillError::Account(e.to_string()))?;
    let rows = statement
        .query_map([], |r| (0..3).map(|i| r.get::<_, String>(i)).collect())
        .map_err(|e| BillError::Account(e.to_string()))?
        .collect::<Result<Vec<Vec<String>>, _>>()
        .map_err(|e| BillError::Account(e.to_string()))?;
    Ok(strings_batch(
        &["customer_id", "since", "mandate_rum"],
        &rows,
    ))
}

/// The account entries of the issue: an INVOICE per invoice (its TTC, due
/// on its due date), a CREDIT_NOTE per regularisation note, dated the issue.
async fn account_entries(
    ctx: &SessionContext,
    notes: &[RegularisationNote],
) -> Result<Vec<crate::core::ledger::AccountEntry>, BillError> {
    let rows = engine::rows_strings(
        ctx,
        "SELECT invoice_number, customer_id, CAST(issue_date AS VARCHAR), CAST(due_date AS VARCHAR),
                CAST(total_ttc AS VARCHAR)
         FROM invoices ORDER BY invoice_number",
    )
    .await?;
    let date = |text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| BillError::Corrupt(format!("invoice date '{text}'")))
    };
    let amount = |text: &str| {
        Decimal::from_str(text).map_err(|_| BillError::Corrupt(format!("amount '{text}'")))
    };
    let mut entries = Vec::new();
    for note in notes {
        entries.push(crate::core::ledger::AccountEntry {
            customer_id: note.customer_id.clone(),
            entry_date: date(&note.issue_date)?,
            kind: crate::account::kind::CREDIT_NOTE.to_string(),
            reference: note.number.clone(),
            amount: -amount(&note.total_ttc)?,
            due_date: None,
            document: Some(note.invoice_number.clone()),
            reason: None,
            source: "bill".to_string(),
        });
    }
    for row in rows {
        entries.push(crate::core::ledger::AccountEntry {
            customer_id: row[1].clone(),
            entry_date: date(&row[2])?,
            kind: crate::account::kind::INVOICE.to_string(),
            reference: row[0].clone(),
            amount: amount(&row[4])?,
            due_date: Some(date(&row[3])?),
            document: None,
            reason: None,
            source: "bill".to_string(),
        });
    }
    Ok(entries)
}

fn months_batch<'a>(months: impl Iterator<Item = &'a str>) -> RecordBatch {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(vec![Field::new("period", DataType::Utf8, false)]);
    RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![std::sync::Arc::new(StringArray::from_iter_values(months))],
    )
    .expect("one column")
}

/// The credit notes of the negative differences (account.md §4): one per
/// customer and corrected month, numbered in the credit notes' sequence of
/// the issue date's year, citing the corrected month's invoice (or, for a
/// customer without one, the latest invoice that regularised the month).
async fn credit_notes(
    ledger: &Ledger,
    ctx: &SessionContext,
    prefix: &str,
    month: Month,
    issue_date: NaiveDate,
) -> Result<Vec<RegularisationNote>, BillError> {
    let rows = engine::Rows::query(ctx, &sqlfiles::REGULARISATION_CREDITS).await?;
    let parts = engine::Rows::query_sql(
        ctx,
        "SELECT * FROM regularisation_credit_vat ORDER BY customer_id, period, vat_category, vat_rate",
    )
    .await?;
    let year = chrono::Datelike::year(&issue_date);
    let mut seq = ledger.last_credit_sequence(year)?;
    let mut notes = Vec::new();
    for row in &rows.rows {
        let get = |column| rows.get(row, column).to_string();
        let total_ht = Decimal::from_str(&get("total_ht")).map_err(|_| {
            BillError::CreditNotes(format!(
                "credit total '{}' is not an amount",
                get("total_ht")
            ))
        })?;
        let vat = Decimal::from_str(&get("vat")).map_err(|_| {
            BillError::CreditNotes(format!("credit VAT '{}' is not an amount", get("vat")))
        })?;
        let vat_breakdown = parts
            .rows
            .iter()
            .filter(|part| {
                parts.get(part, "customer_id") == get("customer_id")
                    && parts.get(part, "period") == get("period")
            })
            .map(|part| {
                let text = |column| parts.get(part, column).to_string();
                NoteVat {
                    vat_category: text("vat_category"),
                    vat_rate: text("vat_rate"),
                    vat_exemption: Some(text("vat_exemption")).filter(|t| !t.is_empty()),
                    base_ht: text("base_ht"),
                    vat: text("vat"),
                    equipment_ht: text("equipment_ht"),
                }
            })
            .collect();
        seq += 1;
        let invoice_number = get("invoice_number");
        if invoice_number.is_empty() {
            return Err(BillError::CreditNotes(format!(
                "customer {} has a credit for {} but no invoice to cite",
                get("customer_id"),
                get("period")
            )));
        }
        notes.push(RegularisationNote {
            number: format!("{prefix}-AV-{year}-{seq:06}"),
            year,
            seq,
            invoice_number,
            invoice_month: get("invoice_month"),
            period: get("period"),
            customer_id: get("customer_id"),
            customer_kind: get("customer_kind"),
            issue_date: issue_date.to_string(),
            reason: format!(
                "Régularisation de la période {} (facturation de {month})",
                get("period")
            ),
            vat_rate: get("vat_rate"),
            total_ht: format!("{:.2}", total_ht),
            vat: format!("{vat:.2}"),
            total_ttc: format!("{:.2}", total_ht + vat),
            vat_breakdown,
        });
    }
    Ok(notes)
}

/// The number of each note, by customer and corrected month.
fn note_numbers(notes: &[RegularisationNote]) -> RecordBatch {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("period", DataType::Utf8, false),
        Field::new("number", DataType::Utf8, false),
    ]);
    let column = |f: fn(&RegularisationNote) -> &str| {
        std::sync::Arc::new(StringArray::from_iter_values(notes.iter().map(f)))
            as datafusion::arrow::array::ArrayRef
    };
    RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            column(|n| &n.customer_id),
            column(|n| &n.period),
            column(|n| &n.number),
        ],
    )
    .expect("three columns")
}

/// The `invoice_commitments` dataset (and a draft's `draft_commitments`):
/// each commitment running on a line during the month, with the invoice
/// that prints it "Engagement jusqu'au …" (account.md §6), recorded at
/// issue so that the documents never change.
const INVOICE_COMMITMENTS: &str = "
    SELECT n.invoice_number, c.customer_id, c.msisdn, c.commitment_start, c.commitment_end
    FROM line_commitments c
    JOIN invoice_numbers n ON n.customer_id = c.customer_id
    ORDER BY n.invoice_number, c.msisdn, c.commitment_start";

/// The `credit_note_lines` dataset: each negative difference with the
/// number of the note that credits it, amounts positive.
const CREDIT_NOTE_LINES: &str = "
    SELECT
        n.number AS credit_note_number,
        d.customer_id,
        d.kind,
        d.msisdn,
        d.label,
        d.code,
        d.event_type,
        d.zone,
        -d.quantity AS quantity,
        d.unit_price,
        CAST(-d.amount_ht AS DECIMAL(18, 2)) AS amount_ht,
        d.period_start,
        d.period_end,
        d.line_key,
        d.period,
        d.vat_category,
        d.vat_rate,
        d.vat_exemption
    FROM regularisation_deltas d
    JOIN note_numbers n ON n.customer_id = d.customer_id AND n.period = d.period
    WHERE d.amount_ht < 0
    ORDER BY n.number, d.line_key";

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
            "TERMINATION_FEE" => "plan_fees.csv has no fee (for the termination fee) for plan",
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
