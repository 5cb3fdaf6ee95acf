//! `credit`: a credit note (avoir) on an issued invoice. An issued month is
//! closed (rating.md §7): a correction is a credit note with its own number,
//! never an edit; the invoice's data and documents are not touched.
//!
//! A note credits the invoice in whole (by default, what remains creditable
//! on it) or in part (`--amount-ht`), never more than remains after the
//! earlier notes. Its VAT is computed per VAT category and rate as rating.md
//! §6 computes an invoice's (`round(base × rate, 2)`, half away from zero,
//! how DataFusion's `CAST(… AS DECIMAL(18, 2))` rounds in `bill`): the HT
//! credited is split over the categories and rates of the invoice's lines
//! in proportion to what remains creditable in each, rounded to the cent,
//! the remainder going to the largest ([`split`]); a note for all that
//! remains takes each category's remainder exactly. The parts are kept in
//! the ledger's `credit_note_vat` table; the note's `vat_rate` is that of
//! its largest part. `total_ttc = total_ht + vat`. Amounts are positive: a
//! note is a credit by its type, not by its sign (docs/CREDIT_NOTES.md).
//!
//! Numbers are `<prefix>-AV-<YYYY>-<seq>`, `seq` on 6 digits, continuous
//! within the calendar year of the note's issue date, apart from the
//! invoices' series, and in date order (a back-dated note before the last
//! one of its year is refused).
//!
//! Order of writes: the ledger first (table `credit_notes`: the number and
//! the whole note in one `IMMEDIATE` transaction, which also keeps two
//! commands from crediting the same remainder at once); then the
//! `credit_notes/month=YYYY-MM/` partition, rewritten whole from the ledger;
//! then the documents. The same command run again (same invoice, reason and
//! amount asked) finds its note instead of issuing another, and writes its
//! dataset and documents again where they are missing: that is how a crash
//! after the commit is repaired. `--again` issues a second identical note.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Date32Array, Decimal128Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::ledger::NoteVat;
use crate::core::month::Month;
use crate::documents::chrome::{ChromeError, Printer, PrinterOptions};
use crate::documents::document::RenderOptions;
use crate::documents::document::{
    default_exemption, document_key, CreditNoteDocument, CreditedInvoiceSummary, Customer,
    InvoiceDocument, InvoiceLine, Payment, VatAmount, VAT_CATEGORIES,
};
use crate::documents::facturx::{self, CreditedInvoice, FacturxError};
use crate::documents::images::ImageError;
use crate::documents::templates::{TemplateError, Templates};
use crate::engine;
use crate::engine::sqlfiles;
use crate::reference::integrator::IntegratorError;
use crate::settings::Settings;
use crate::stages::frozen::{self, Seller};
use crate::stages::Context;
use crate::stages::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    #[error("credit: invoice '{0}' was never issued (no such number in the ledger)")]
    UnknownInvoice(String),
    #[error("credit: --reason is empty: say why invoice {0} is credited")]
    NoReason(String),
    #[error(
        "credit: {amount} € HT is more than the {remaining} € HT that remain creditable on \
         invoice {invoice} (total HT {total} €, credited already {credited} €)"
    )]
    OverCredit {
        invoice: String,
        amount: Decimal,
        remaining: Decimal,
        total: Decimal,
        credited: Decimal,
    },
    #[error("credit: invoice {invoice} is credited in full already ({notes})")]
    FullyCredited { invoice: String, notes: String },
    #[error("credit: invoice {invoice} has nothing to credit (total HT {total} €)")]
    NothingToCredit { invoice: String, total: Decimal },
    #[error("credit: date {date} is before {invoice}'s issue date {invoice_date}")]
    BeforeInvoice {
        date: NaiveDate,
        invoice: String,
        invoice_date: NaiveDate,
    },
    #[error(
        "credit: date {date} is before credit note {last} of {last_date}: numbers follow \
         dates within a year"
    )]
    BeforeLastNote {
        date: NaiveDate,
        last: String,
        last_date: NaiveDate,
    },
    #[error(
        "credit: invoice {invoice} is issued ({month}) but not in the lake's invoices, or its \
         customer {customer} is not in the record of the month's issue (invoice_parties)"
    )]
    MissingInvoice {
        invoice: String,
        month: String,
        customer: String,
    },
    #[error("credit: {number}: {message}")]
    Data { number: String, message: String },
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Integrator(#[from] IntegratorError),
    #[error(transparent)]
    Record(#[from] crate::stages::frozen::RecordError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("customer account: {0}")]
    Account(String),
    #[error("credit: reading the invoice failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("credit: cannot build the credit_notes dataset: {0}")]
    Dataset(#[from] ArrowError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Chrome(#[from] ChromeError),
    #[error("credit: {number}: {source}")]
    Facturx {
        number: String,
        #[source]
        source: FacturxError,
    },
}

/// What to credit.
#[derive(Debug, Clone)]
pub struct CreditRequest {
    pub invoice_number: String,
    pub reason: String,
    /// `None`: what remains creditable on the invoice (its total HT when
    /// nothing was credited yet).
    pub amount_ht: Option<Decimal>,
    /// `None`: today in Europe/Paris.
    pub date: Option<NaiveDate>,
    /// Issue a note even when the same one (invoice, reason, amount asked)
    /// exists.
    pub again: bool,
}

/// What `credit` did.
#[derive(Debug, Default, Serialize)]
pub struct CreditReport {
    pub credit_note_number: String,
    pub invoice_number: String,
    pub customer_id: String,
    pub issue_date: String,
    pub reason: String,
    pub total_ht: String,
    pub vat: String,
    pub total_ttc: String,
    /// True when the same note was issued before: no new number.
    pub already_issued: bool,
    /// What remains creditable (HT) on the invoice after this note.
    pub remaining_ht: String,
    /// The note's page, and its PDF unless `--html-only`.
    pub html: String,
    pub pdf: Option<String>,
    /// Whether the PDF carries Factur-X (business customers).
    pub facturx: bool,
    /// True when the documents were already in the lake, the same.
    pub documents_unchanged: bool,
    /// The sales journal rewritten with the note's row: that of the billing
    /// month whose invoices were issued in the note's month, if it is billed
    /// (docs/ACCOUNTING.md).
    pub journal: Option<String>,
}

impl std::fmt::Display for CreditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.already_issued {
            write!(
                f,
                "credit {}: already issued on {} for this invoice, reason and amount; \
                 no new note (--again issues another)",
                self.credit_note_number, self.issue_date
            )?;
        } else {
            write!(
                f,
                "credit {}: issued on {}",
                self.credit_note_number, self.issue_date
            )?;
        }
        write!(
            f,
            "\n  on invoice {} (customer {}): total HT {} €, VAT {} €, total TTC {} €; \
             {} € HT remain creditable",
            self.invoice_number,
            self.customer_id,
            self.total_ht,
            self.vat,
            self.total_ttc,
            self.remaining_ht
        )?;
        write!(f, "\n  documents: {}", self.html)?;
        if let Some(pdf) = &self.pdf {
            write!(f, ", {pdf}")?;
            if self.facturx {
                write!(f, " (Factur-X)")?;
            }
        }
        if let Some(journal) = &self.journal {
            write!(f, "\n  sales journal: {journal}")?;
        }
        Ok(())
    }
}

/// `--amount-ht`: euros with at most 2 decimals, more than zero.
pub fn parse_amount_ht(text: &str) -> Result<Decimal, String> {
    let amount = Decimal::from_str(text.trim())
        .map_err(|_| format!("'{text}' is not an amount in euros: write it like 12.50"))?;
    if amount <= Decimal::ZERO {
        return Err(format!("'{text}': a credit note credits more than 0 €"));
    }
    if amount.normalize().scale() > 2 {
        return Err(format!("'{text}' has more than 2 decimals (cents)"));
    }
    Ok(with_cents(amount))
}

/// One note as the ledger keeps it.
#[derive(Debug, Clone)]
struct StoredNote {
    number: String,
    invoice_number: String,
    invoice_month: String,
    customer_id: String,
    customer_kind: String,
    issue_date: NaiveDate,
    reason: String,
    vat_rate: Decimal,
    total_ht: Decimal,
    vat: Decimal,
    total_ttc: Decimal,
}

const NOTE_COLUMNS: &str = "credit_note_number, invoice_number, invoice_month, customer_id, \
     customer_kind, issue_date, reason, vat_rate, total_ht, vat, total_ttc";

/// The invoice a request names, as the lake and the customer table have it.
struct Invoice {
    summary: CreditedInvoiceSummary,
    customer: Customer,
    payment: Payment,
    /// Its lines' HT per VAT category and rate (rating.md §6).
    vat_groups: Vec<VatGroup>,
}

/// The lines of an invoice (or what remains creditable of them) of one VAT
/// category and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct VatGroup {
    pub vat_category: String,
    /// Percent, 2 decimals.
    pub vat_rate: Decimal,
    pub vat_exemption: Option<String>,
    pub base_ht: Decimal,
    /// The part of `base_ht` that is handsets (EQUIPMENT lines).
    pub equipment_ht: Decimal,
}

impl VatGroup {
    fn same_key(&self, category: &str, rate: Decimal) -> bool {
        self.vat_category == category && self.vat_rate == rate
    }
}

/// rating.md §6: `amount` HT split over the groups in proportion to their
/// bases, each share rounded to the cent (half away from zero), the
/// remainder to the largest base (the first of them on a tie); each part's
/// VAT is `round(share × rate, 2)`. A group with nothing left gets nothing.
/// When `amount` is the sum of the bases each group gets its base exactly.
/// The handsets credited: a group's own when it is credited whole, the
/// share when the group is all handsets, none otherwise (a partial credit
/// corrects services, docs/ACCOUNTING.md).
pub fn split(groups: &[VatGroup], amount: Decimal) -> Vec<NoteVat> {
    let live: Vec<&VatGroup> = groups.iter().filter(|g| !g.base_ht.is_zero()).collect();
    let total: Decimal = live.iter().map(|g| g.base_ht).sum();
    let Some(largest) = live
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.base_ht.cmp(&b.base_ht).then(j.cmp(i)))
        .map(|(i, _)| i)
    else {
        return Vec::new();
    };
    let round = |d: Decimal| d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let mut shares: Vec<Decimal> = live
        .iter()
        .map(|g| {
            if total.is_zero() {
                Decimal::ZERO
            } else {
                round(amount * g.base_ht / total)
            }
        })
        .collect();
    let others: Decimal = shares
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != largest)
        .map(|(_, s)| *s)
        .sum();
    shares[largest] = amount - others;
    live.iter()
        .zip(shares)
        .filter(|(_, share)| !share.is_zero())
        .map(|(g, share)| {
            let equipment = if share == g.base_ht {
                g.equipment_ht
            } else if g.equipment_ht == g.base_ht {
                share
            } else {
                Decimal::ZERO
            };
            NoteVat {
                vat_category: g.vat_category.clone(),
                vat_rate: with_cents(g.vat_rate).to_string(),
                vat_exemption: g.vat_exemption.clone(),
                base_ht: with_cents(share).to_string(),
                vat: with_cents(round(share * g.vat_rate / Decimal::ONE_HUNDRED)).to_string(),
                equipment_ht: with_cents(equipment).to_string(),
            }
        })
        .collect()
}

pub async fn credit(
    stage: &Context,
    request: &CreditRequest,
    options: RenderOptions,
) -> Result<CreditReport, CreditError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let number = request.invoice_number.trim();
    let reason = crate::core::text::one_line(&request.reason);
    if reason.is_empty() {
        return Err(CreditError::NoReason(number.to_string()));
    }
    let connection = ledger.connection();
    let sqlite = |source| sqlite_error(connection, source);
    let (invoice_month, customer_id): (String, String) = connection
        .query_row(
            "SELECT month, customer_id FROM invoice_numbers WHERE invoice_number = ?1",
            params![number],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sqlite)?
        .ok_or_else(|| CreditError::UnknownInvoice(number.to_string()))?;
    let month: Month = invoice_month.parse().map_err(|_| CreditError::Data {
        number: number.to_string(),
        message: format!("ledger month '{invoice_month}' is not a month"),
    })?;
    // Templates and the record of the invoice's issue first (account.md
    // §3: the integrator and the customer as the invoice printed them): a
    // mistake there is reported before a number is taken.
    let templates = Templates::load(settings.templates_dir.as_deref())?;
    let Seller {
        integrator,
        logo,
        banner,
    } = frozen::seller(settings, lake, month).await?;
    let invoice = read_invoice(settings, lake, month, number, &customer_id).await?;

    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    let (note, already_issued) = issue(
        connection,
        &integrator.invoice_prefix,
        &invoice,
        &reason,
        request,
        today,
    )?;
    let remaining_ht = invoice.summary.total_ht - credited_ht(connection, number)?;

    let issue_month = month_of(note.issue_date);
    write_dataset(connection, lake, issue_month).await?;
    crate::account::write_dataset(connection, lake)
        .await
        .map_err(|e| CreditError::Account(e.to_string()))?;

    let document = CreditNoteDocument {
        credit_note_number: note.number.clone(),
        issue_date: note.issue_date,
        reason: note.reason.clone(),
        whole: note.total_ht == invoice.summary.total_ht,
        invoice: invoice.summary.clone(),
        integrator,
        customer: invoice.customer.clone(),
        payment: invoice.payment.clone(),
        total_ht: note.total_ht,
        vat: note_vat_amounts(connection, &note)?,
        total_vat: note.vat,
        total_ttc: note.total_ttc,
    };
    let html = templates.credit_note_html(&document, logo.as_deref(), banner.as_deref())?;
    let mut printer = None;
    let written = write_documents(
        settings,
        lake,
        issue_month,
        &document,
        &html,
        options,
        &mut printer,
    )
    .await?;

    let url = |key: &str| lake.url().join(key);
    Ok(CreditReport {
        credit_note_number: note.number.clone(),
        invoice_number: note.invoice_number.clone(),
        customer_id: note.customer_id.clone(),
        issue_date: note.issue_date.to_string(),
        reason: note.reason.clone(),
        total_ht: note.total_ht.to_string(),
        vat: note.vat.to_string(),
        total_ttc: note.total_ttc.to_string(),
        already_issued,
        remaining_ht: with_cents(remaining_ht).to_string(),
        html: url(&document_key(issue_month, &note.number, "html")),
        pdf: options
            .pdf
            .then(|| url(&document_key(issue_month, &note.number, "pdf"))),
        facturx: options.pdf && document.customer.is_business(),
        documents_unchanged: !written,
        journal: None,
    })
}

/// Finds the same note issued before, or takes the next number and records
/// a new one, in one transaction. Returns the note and whether it existed.
fn issue(
    connection: &Connection,
    prefix: &str,
    invoice: &Invoice,
    reason: &str,
    request: &CreditRequest,
    today: NaiveDate,
) -> Result<(StoredNote, bool), CreditError> {
    let sqlite = |source| sqlite_error(connection, source);
    let number = invoice.summary.invoice_number.as_str();
    let requested = request.amount_ht.map(|a| with_cents(a).to_string());
    let tx = rusqlite::Transaction::new_unchecked(connection, TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    if !request.again {
        let same = tx
            .query_row(
                &format!(
                    "SELECT {NOTE_COLUMNS} FROM credit_notes
                     WHERE invoice_number = ?1 AND reason = ?2 AND requested_ht IS ?3
                     ORDER BY seq LIMIT 1"
                ),
                params![number, reason, requested],
                row_to_note,
            )
            .optional()
            .map_err(sqlite)?;
        if let Some(note) = same {
            return Ok((note.parse()?, true));
        }
    }

    let earlier = notes_where(&tx, "invoice_number = ?1", number)?;
    let credited: Decimal = earlier.iter().map(|note| note.total_ht).sum();
    let total = invoice.summary.total_ht;
    let remaining = total - credited;
    if total <= Decimal::ZERO {
        return Err(CreditError::NothingToCredit {
            invoice: number.to_string(),
            total: with_cents(total),
        });
    }
    if remaining <= Decimal::ZERO {
        return Err(CreditError::FullyCredited {
            invoice: number.to_string(),
            notes: earlier
                .iter()
                .map(|note| note.number.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let total_ht = with_cents(request.amount_ht.unwrap_or(remaining));
    if total_ht > remaining {
        return Err(CreditError::OverCredit {
            invoice: number.to_string(),
            amount: total_ht,
            remaining: with_cents(remaining),
            total: with_cents(total),
            credited: with_cents(credited),
        });
    }

    let issue_date = request.date.unwrap_or(today);
    if issue_date < invoice.summary.issue_date {
        return Err(CreditError::BeforeInvoice {
            date: issue_date,
            invoice: number.to_string(),
            invoice_date: invoice.summary.issue_date,
        });
    }
    let year = issue_date.year();
    if !(1000..=9999).contains(&year) {
        return Err(CreditError::Data {
            number: number.to_string(),
            message: format!("date {issue_date} is out of range (years 1000 to 9999)"),
        });
    }
    let last: Option<(i64, String, String)> = tx
        .query_row(
            "SELECT seq, credit_note_number, issue_date FROM credit_notes
             WHERE year = ?1 ORDER BY seq DESC LIMIT 1",
            params![year],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(sqlite)?;
    let mut seq = 1;
    if let Some((last_seq, last, last_date)) = last {
        let last_date = parse_date(&last, "issue_date", &last_date)?;
        if issue_date < last_date {
            return Err(CreditError::BeforeLastNote {
                date: issue_date,
                last,
                last_date,
            });
        }
        seq = last_seq + 1;
    }

    let parts = split(&creditable(&tx, invoice)?, total_ht);
    let decimal = |text: &str| Decimal::from_str(text).unwrap_or_default();
    let vat: Decimal = parts.iter().map(|part| decimal(&part.vat)).sum();
    let vat_rate = parts
        .iter()
        .max_by(|a, b| {
            decimal(&a.base_ht)
                .cmp(&decimal(&b.base_ht))
                .then(decimal(&a.vat_rate).cmp(&decimal(&b.vat_rate)))
        })
        .map(|part| decimal(&part.vat_rate))
        .unwrap_or_default();
    let note = StoredNote {
        number: format!("{prefix}-AV-{year}-{seq:06}"),
        invoice_number: number.to_string(),
        invoice_month: invoice.summary.month.clone(),
        customer_id: invoice.customer.customer_id.clone(),
        customer_kind: invoice.customer.kind.clone(),
        issue_date,
        reason: reason.to_string(),
        vat_rate: with_cents(vat_rate),
        total_ht,
        vat: with_cents(vat),
        total_ttc: with_cents(total_ht + vat),
    };
    tx.execute(
        "INSERT INTO credit_notes (credit_note_number, year, seq, invoice_number, invoice_month,
             customer_id, customer_kind, issue_date, reason, requested_ht, vat_rate, total_ht,
             vat, total_ttc, issued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            note.number,
            year,
            seq,
            note.invoice_number,
            note.invoice_month,
            note.customer_id,
            note.customer_kind,
            note.issue_date.to_string(),
            note.reason,
            requested,
            note.vat_rate.to_string(),
            note.total_ht.to_string(),
            note.vat.to_string(),
            note.total_ttc.to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ],
    )
    .map_err(sqlite)?;
    for part in &parts {
        crate::core::ledger::insert_note_vat(&tx, &note.number, part).map_err(sqlite)?;
    }
    // account.md §7: the note credits the customer's account, dated its
    // issue; the next invoice deducts it.
    crate::core::ledger::insert_entry(
        &tx,
        &crate::core::ledger::AccountEntry {
            customer_id: note.customer_id.clone(),
            entry_date: note.issue_date,
            kind: "CREDIT_NOTE".to_string(),
            reference: note.number.clone(),
            amount: -note.total_ttc,
            due_date: None,
            document: Some(note.invoice_number.clone()),
            reason: None,
            source: "credit".to_string(),
        },
    )
    .map_err(sqlite)?;
    tx.commit().map_err(sqlite)?;
    Ok((note, false))
}

/// What remains creditable of the invoice's lines per VAT category and
/// rate: its groups less the parts of its earlier notes (a note recorded
/// before `credit_note_vat` counts against the largest group of its rate).
fn creditable(connection: &Connection, invoice: &Invoice) -> Result<Vec<VatGroup>, CreditError> {
    let sqlite = |source| sqlite_error(connection, source);
    let number = invoice.summary.invoice_number.as_str();
    let mut groups = invoice.vat_groups.clone();
    if groups.is_empty() {
        return Err(CreditError::Data {
            number: number.to_string(),
            message: "the invoice has no lines in the lake's invoice_lines to credit".to_string(),
        });
    }
    let decimal = |column: &str, text: String| {
        Decimal::from_str(&text).map_err(|_| CreditError::Data {
            number: number.to_string(),
            message: format!("ledger {column} '{text}' is not an amount"),
        })
    };
    let mut statement = connection
        .prepare(
            "SELECT v.vat_category, v.vat_rate, v.base_ht, v.equipment_ht
             FROM credit_note_vat v
             JOIN credit_notes n ON n.credit_note_number = v.credit_note_number
             WHERE n.invoice_number = ?1
             UNION ALL
             SELECT '', n.vat_rate, n.total_ht, '0'
             FROM credit_notes n
             WHERE n.invoice_number = ?1
               AND NOT EXISTS (SELECT 1 FROM credit_note_vat v
                               WHERE v.credit_note_number = n.credit_note_number)",
        )
        .map_err(sqlite)?;
    let credited = statement
        .query_map(params![number], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(sqlite)?
        .collect::<Result<Vec<(String, String, String, String)>, _>>()
        .map_err(sqlite)?;
    for (category, rate, base, equipment) in credited {
        let rate = decimal("vat_rate", rate)?;
        let base = decimal("base_ht", base)?;
        let equipment = decimal("equipment_ht", equipment)?;
        let group = match groups.iter().position(|g| g.same_key(&category, rate)) {
            Some(i) => Some(i),
            None => groups
                .iter()
                .enumerate()
                .filter(|(_, g)| category.is_empty() && g.vat_rate == rate)
                .max_by(|(_, a), (_, b)| a.base_ht.cmp(&b.base_ht))
                .map(|(i, _)| i),
        };
        if let Some(i) = group {
            groups[i].base_ht -= base;
            groups[i].equipment_ht -= equipment;
        }
    }
    Ok(groups)
}

/// HT credited so far on an invoice.
fn credited_ht(connection: &Connection, invoice_number: &str) -> Result<Decimal, CreditError> {
    Ok(
        notes_where(connection, "invoice_number = ?1", invoice_number)?
            .iter()
            .map(|note| note.total_ht)
            .sum(),
    )
}

/// The notes matching a condition on one parameter, in number order.
fn notes_where(
    connection: &Connection,
    condition: &str,
    value: &str,
) -> Result<Vec<StoredNote>, CreditError> {
    let sqlite = |source| sqlite_error(connection, source);
    let mut statement = connection
        .prepare(&format!(
            "SELECT {NOTE_COLUMNS} FROM credit_notes WHERE {condition} ORDER BY year, seq"
        ))
        .map_err(sqlite)?;
    let rows = statement
        .query_map(params![value], row_to_note)
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    rows.into_iter().map(NoteRow::parse).collect()
}

/// A ledger row as text, before its dates and amounts are parsed.
struct NoteRow([String; 11]);

fn row_to_note(r: &rusqlite::Row<'_>) -> rusqlite::Result<NoteRow> {
    let mut values: [String; 11] = Default::default();
    for (i, value) in values.iter_mut().enumerate() {
        *value = r.get(i)?;
    }
    Ok(NoteRow(values))
}

impl NoteRow {
    fn parse(self) -> Result<StoredNote, CreditError> {
        let [number, invoice_number, invoice_month, customer_id, customer_kind, issue_date, reason, vat_rate, total_ht, vat, total_ttc] =
            self.0;
        let amount = |column: &str, text: &str| {
            Decimal::from_str(text).map_err(|_| CreditError::Data {
                number: number.clone(),
                message: format!("ledger {column} '{text}' is not an amount"),
            })
        };
        Ok(StoredNote {
            issue_date: parse_date(&number, "issue_date", &issue_date)?,
            vat_rate: amount("vat_rate", &vat_rate)?,
            total_ht: amount("total_ht", &total_ht)?,
            vat: amount("vat", &vat)?,
            total_ttc: amount("total_ttc", &total_ttc)?,
            number,
            invoice_number,
            invoice_month,
            customer_id,
            customer_kind,
            reason,
        })
    }
}

/// The invoice and its customer, from the month's `invoices` partition
/// and the customer as its issue recorded it (the SQL `render` shows an
/// invoice with).
async fn read_invoice(
    settings: &Settings,
    lake: &Lake,
    month: Month,
    number: &str,
    customer_id: &str,
) -> Result<Invoice, CreditError> {
    let missing = || CreditError::MissingInvoice {
        invoice: number.to_string(),
        month: month.to_string(),
        customer: customer_id.to_string(),
    };
    let ctx = crate::stages::session(settings, month, None).await?;
    let partition = format!("{}/month={month}", datasets::INVOICES);
    if !engine::register_path(&ctx, lake, "invoices", &partition, None).await? {
        return Err(missing());
    }
    frozen::register_parties(&ctx, settings, lake, month).await?;
    let table = engine::Rows::query(&ctx, &sqlfiles::DOCUMENT_INVOICES).await?;
    let values = table
        .rows
        .iter()
        .find(|row| table.get(row, "invoice_number") == number)
        .ok_or_else(missing)?;
    let get = |column: &str| table.get(values, column);
    let amount = |column: &str| -> Result<Decimal, CreditError> {
        Decimal::from_str(get(column)).map_err(|_| CreditError::Data {
            number: number.to_string(),
            message: format!("{column} '{}' is not an amount", get(column)),
        })
    };
    let date = |column: &str| parse_date(number, column, get(column));
    let due_date = date("due_date")?;
    let mandate_date = match get("mandate_date") {
        "" => None,
        text => Some(parse_date(number, "mandate_date", text)?),
    };
    let total_ht = amount("total_ht")?;
    let vat_groups = invoice_vat_groups(&ctx, lake, month, number).await?;
    Ok(Invoice {
        summary: CreditedInvoiceSummary {
            invoice_number: number.to_string(),
            month: month.to_string(),
            issue_date: date("issue_date")?,
            period_start: date("period_start")?,
            period_end: date("period_end")?,
            total_ht,
            total_vat: amount("vat")?,
            total_ttc: amount("total_ttc")?,
        },
        customer: Customer::from_columns(get),
        payment: Payment {
            method: get("payment_method").to_string(),
            creditor_id: String::new(),
            mandate_rum: get("mandate_rum").to_string(),
            mandate_date,
            iban_masked: get("iban_masked").to_string(),
            debit_date: due_date,
            bank_iban: String::new(),
            bank_bic: String::new(),
        },
        vat_groups,
    })
}

/// The HT of an invoice's lines per VAT category and rate, from the
/// month's `invoice_lines` partition (rating.md §6).
async fn invoice_vat_groups(
    ctx: &datafusion::prelude::SessionContext,
    lake: &Lake,
    month: Month,
    number: &str,
) -> Result<Vec<VatGroup>, CreditError> {
    let partition = format!("{}/month={month}", datasets::INVOICE_LINES);
    if !engine::register_path(ctx, lake, "credited_invoice_lines", &partition, None).await? {
        return Ok(Vec::new());
    }
    // A partition written before the exemption text has no such column.
    let exemption = if ctx
        .table("credited_invoice_lines")
        .await?
        .schema()
        .has_column_with_unqualified_name("vat_exemption")
    {
        "MAX(vat_exemption)"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let rows = engine::Rows::query_sql(
        ctx,
        &format!(
            "SELECT invoice_number, vat_category, vat_rate, {exemption} AS vat_exemption,
                    SUM(amount_ht) AS base_ht,
                    SUM(CASE WHEN kind = 'EQUIPMENT' THEN amount_ht ELSE 0 END) AS equipment_ht
             FROM credited_invoice_lines
             GROUP BY invoice_number, vat_category, vat_rate
             ORDER BY invoice_number, vat_category, vat_rate"
        ),
    )
    .await?;
    let amount = |row: &[String], column: &str| -> Result<Decimal, CreditError> {
        let text = rows.get(row, column);
        Decimal::from_str(text).map_err(|_| CreditError::Data {
            number: number.to_string(),
            message: format!("invoice line {column} '{text}' is not an amount"),
        })
    };
    rows.rows
        .iter()
        .filter(|row| rows.get(row, "invoice_number") == number)
        .map(|row| {
            Ok(VatGroup {
                vat_category: rows.get(row, "vat_category").to_string(),
                vat_rate: with_cents(amount(row, "vat_rate")?),
                vat_exemption: Some(rows.get(row, "vat_exemption").to_string())
                    .filter(|t| !t.is_empty()),
                base_ht: with_cents(amount(row, "base_ht")?),
                equipment_ht: with_cents(amount(row, "equipment_ht")?),
            })
        })
        .collect()
}

/// A note's VAT per rate for its documents: its parts in the ledger, or,
/// for a note recorded before them, its one rate.
fn note_vat_amounts(
    connection: &Connection,
    note: &StoredNote,
) -> Result<Vec<VatAmount>, CreditError> {
    let parts = note_parts(connection, &note.number)?;
    let mut amounts = parts
        .iter()
        .map(|part| {
            let amount = |column: &str, text: &str| {
                Decimal::from_str(text).map_err(|_| CreditError::Data {
                    number: note.number.clone(),
                    message: format!("ledger {column} '{text}' is not an amount"),
                })
            };
            let category = part.vat_category.trim().to_string();
            let exemption = match part.vat_exemption.as_deref().map(str::trim) {
                _ if category == "S" => String::new(),
                Some(text) if !text.is_empty() => text.to_string(),
                _ => default_exemption(&category).to_string(),
            };
            Ok(VatAmount {
                rate: amount("vat_rate", &part.vat_rate)?.normalize(),
                base_ht: amount("base_ht", &part.base_ht)?,
                amount: amount("vat", &part.vat)?,
                category,
                exemption,
            })
        })
        .collect::<Result<Vec<_>, CreditError>>()?;
    // The order of a breakdown: by category (S, E, AE, K, G, O), then rate.
    let rank = |category: &str| VAT_CATEGORIES.iter().position(|c| *c == category);
    amounts.sort_by(|a, b| {
        rank(&a.category)
            .cmp(&rank(&b.category))
            .then(a.rate.cmp(&b.rate))
    });
    note_vat(note, amounts)
}

/// The parts of a note (table `credit_note_vat`), by category and rate.
fn note_parts(connection: &Connection, number: &str) -> Result<Vec<NoteVat>, CreditError> {
    let sqlite = |source| sqlite_error(connection, source);
    let mut statement = connection
        .prepare(
            "SELECT vat_category, vat_rate, vat_exemption, base_ht, vat, equipment_ht
             FROM credit_note_vat WHERE credit_note_number = ?1
             ORDER BY vat_category, vat_rate",
        )
        .map_err(sqlite)?;
    let parts = statement
        .query_map(params![number], |r| {
            Ok(NoteVat {
                vat_category: r.get(0)?,
                vat_rate: r.get(1)?,
                vat_exemption: r.get(2)?,
                base_ht: r.get(3)?,
                vat: r.get(4)?,
                equipment_ht: r.get(5)?,
            })
        })
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    Ok(parts)
}

/// The `credit_notes` dataset's columns. Amounts are positive
/// (docs/CREDIT_NOTES.md, sign convention); `vat_rate` in percent.
pub fn schema() -> SchemaRef {
    let money = || DataType::Decimal128(18, 2);
    Arc::new(Schema::new(vec![
        Field::new("credit_note_number", DataType::Utf8, false),
        Field::new("invoice_number", DataType::Utf8, false),
        Field::new("invoice_month", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("customer_kind", DataType::Utf8, false),
        Field::new("issue_date", DataType::Date32, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("vat_rate", DataType::Decimal128(5, 2), false),
        Field::new("total_ht", money(), false),
        Field::new("vat", money(), false),
        Field::new("total_ttc", money(), false),
    ]))
}

/// Rewrites the `credit_notes` partition of a month of issue whole from the
/// ledger (`bill` after issuing a regularisation's notes).
pub async fn rewrite_dataset(
    connection: &Connection,
    lake: &Lake,
    month: Month,
) -> Result<(), CreditError> {
    write_dataset(connection, lake, month).await
}

/// Rewrites the month's partition whole from the ledger.
async fn write_dataset(
    connection: &Connection,
    lake: &Lake,
    month: Month,
) -> Result<(), CreditError> {
    let notes = notes_where(
        connection,
        "substr(issue_date, 1, 7) = ?1",
        &month.to_string(),
    )?;
    let text = |f: fn(&StoredNote) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(notes.iter().map(f)))
    };
    let decimals = |f: fn(&StoredNote) -> Decimal, precision: u8| -> Result<ArrayRef, ArrowError> {
        let cents = notes.iter().map(|note| with_cents(f(note)).mantissa());
        Ok(Arc::new(
            Decimal128Array::from_iter_values(cents).with_precision_and_scale(precision, 2)?,
        ))
    };
    let columns = vec![
        text(|n| &n.number),
        text(|n| &n.invoice_number),
        text(|n| &n.invoice_month),
        text(|n| &n.customer_id),
        text(|n| &n.customer_kind),
        Arc::new(Date32Array::from_iter_values(
            notes
                .iter()
                .map(|n| crate::core::month::epoch_days(n.issue_date)),
        )),
        text(|n| &n.reason),
        decimals(|n| n.vat_rate, 5)?,
        decimals(|n| n.total_ht, 18)?,
        decimals(|n| n.vat, 18)?,
        decimals(|n| n.total_ttc, 18)?,
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let key = format!("{}/month={month}/part-0.parquet", datasets::CREDIT_NOTES);
    lake.write_parquet(&key, schema(), &[batch]).await?;

    // The notes' VAT per category and rate; a note recorded before the
    // parts were kept is its one rate's.
    let mut parts: Vec<(String, NoteVat)> = Vec::new();
    for note in &notes {
        let mut own = note_parts(connection, &note.number)?;
        if own.is_empty() {
            own.push(NoteVat {
                vat_category: "S".to_string(),
                vat_rate: with_cents(note.vat_rate).to_string(),
                vat_exemption: None,
                base_ht: note.total_ht.to_string(),
                vat: note.vat.to_string(),
                equipment_ht: "0.00".to_string(),
            });
        }
        parts.extend(own.into_iter().map(|part| (note.number.clone(), part)));
    }
    let text = |f: fn(&NoteVat) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            parts.iter().map(|(_, p)| f(p)),
        ))
    };
    let decimals = |f: fn(&NoteVat) -> &str, precision: u8| -> Result<ArrayRef, CreditError> {
        let cents = parts
            .iter()
            .map(|(number, part)| {
                Decimal::from_str(f(part))
                    .map(|d| with_cents(d).mantissa())
                    .map_err(|_| CreditError::Data {
                        number: number.clone(),
                        message: format!("ledger VAT part '{}' is not an amount", f(part)),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(
            Decimal128Array::from_iter_values(cents).with_precision_and_scale(precision, 2)?,
        ))
    };
    let columns = vec![
        Arc::new(StringArray::from_iter_values(
            parts.iter().map(|(number, _)| number.as_str()),
        )) as ArrayRef,
        text(|p| &p.vat_category),
        decimals(|p| &p.vat_rate, 5)?,
        Arc::new(StringArray::from_iter(
            parts.iter().map(|(_, p)| p.vat_exemption.as_deref()),
        )),
        decimals(|p| &p.base_ht, 18)?,
        decimals(|p| &p.vat, 18)?,
        decimals(|p| &p.equipment_ht, 18)?,
    ];
    let batch = RecordBatch::try_new(vat_schema(), columns)?;
    let key = format!("{}/month={month}/part-0.parquet", datasets::CREDIT_NOTE_VAT);
    lake.write_parquet(&key, vat_schema(), &[batch]).await?;
    Ok(())
}

/// The `credit_note_vat` dataset's columns: each note's base (HT,
/// positive) and VAT per category and rate, the part of the base that
/// credits handsets, and the category's exemption text (rating.md §6).
pub fn vat_schema() -> SchemaRef {
    let money = || DataType::Decimal128(18, 2);
    Arc::new(Schema::new(vec![
        Field::new("credit_note_number", DataType::Utf8, false),
        Field::new("vat_category", DataType::Utf8, false),
        Field::new("vat_rate", DataType::Decimal128(5, 2), false),
        Field::new("vat_exemption", DataType::Utf8, true),
        Field::new("base_ht", money(), false),
        Field::new("vat", money(), false),
        Field::new("equipment_ht", money(), false),
    ]))
}

/// Writes the note's page, and its PDF (Factur-X for a business), in
/// `documents/<folder>/`, where they are not yet: a document once written
/// is never written again (account.md §3); a missing PDF is printed from
/// the page in the lake. Returns whether it wrote. `printer` is launched
/// on first use and kept for the next note.
async fn write_documents(
    settings: &Settings,
    lake: &Lake,
    folder: Month,
    note: &CreditNoteDocument,
    html: &str,
    options: RenderOptions,
    printer: &mut Option<Printer>,
) -> Result<bool, CreditError> {
    let html_key = document_key(folder, &note.credit_note_number, "html");
    let pdf_key = document_key(folder, &note.credit_note_number, "pdf");
    let stored = lake.get_if_exists(&html_key).await?;
    let print = options.pdf && !lake.exists(&pdf_key).await?;
    if stored.is_some() && !print {
        return Ok(false);
    }
    let page = match stored {
        Some(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| html.to_string()),
        None => {
            lake.put(&html_key, html.as_bytes().to_vec()).await?;
            html.to_string()
        }
    };
    if !print {
        return Ok(true);
    }
    let pdf = tokio::task::block_in_place(|| -> Result<Vec<u8>, ChromeError> {
        if printer.is_none() {
            *printer = Some(Printer::launch(&PrinterOptions {
                chromium: settings.chromium.clone(),
                tabs: 1,
                single_process: settings.render_single_process,
                ..PrinterOptions::default()
            })?);
        }
        printer.as_mut().expect("launched").print(&page)
    })?;
    let bytes = if note.customer.is_business() {
        let document = as_invoice_document(note);
        let credited = CreditedInvoice {
            number: &note.invoice.invoice_number,
            issue_date: note.invoice.issue_date,
        };
        let xml = facturx::credit_note_xml(&document, credited);
        facturx::embed(&pdf, &xml, &document).map_err(|source| CreditError::Facturx {
            number: note.credit_note_number.clone(),
            source,
        })?
    } else {
        pdf
    };
    lake.put(&pdf_key, bytes).await?;
    Ok(true)
}

/// What [`regularisation_documents`] did.
#[derive(Debug, Default)]
pub struct NoteDocuments {
    /// The regularisation credit notes issued with the month.
    pub notes: u64,
    /// Those whose page or PDF was written.
    pub written: u64,
}

/// The documents of the regularisation credit notes issued with `month`
/// (account.md §4, `render --month M`), in `documents/M/` beside the
/// invoices they were issued with: the note of the ledger, the invoice it
/// cites, the customer as M's issue recorded it and the integrator of
/// `seller` (M's record). Written where they are not yet, never again.
pub async fn regularisation_documents(
    stage: &Context,
    month: Month,
    templates: &Templates,
    seller: &Seller,
    options: RenderOptions,
) -> Result<NoteDocuments, CreditError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let notes = notes_where(
        ledger.connection(),
        "credit_note_number IN
             (SELECT credit_note_number FROM regularisation_notes WHERE issue_month = ?1)",
        &month.to_string(),
    )?;
    let mut report = NoteDocuments {
        notes: notes.len() as u64,
        written: 0,
    };
    if notes.is_empty() {
        return Ok(report);
    }
    let parties = frozen::parties(settings, lake, month).await?;
    let mut printer = None;
    for note in &notes {
        let invoice_month: Month = note.invoice_month.parse().map_err(|_| CreditError::Data {
            number: note.number.clone(),
            message: format!("ledger month '{}' is not a month", note.invoice_month),
        })?;
        let mut invoice = read_invoice(
            settings,
            lake,
            invoice_month,
            &note.invoice_number,
            &note.customer_id,
        )
        .await?;
        // The customer as the note's issue (with M) recorded it.
        if let Some(party) = parties.get(&note.customer_id) {
            invoice.customer = party.customer.clone();
            invoice.customer.kind = note.customer_kind.clone();
            invoice.payment.method = party.payment_method.clone();
            invoice.payment.iban_masked = party.iban_masked.clone();
            invoice.payment.mandate_rum = party.mandate_rum.clone();
            invoice.payment.mandate_date = party.mandate_date;
        }
        let document = CreditNoteDocument {
            credit_note_number: note.number.clone(),
            issue_date: note.issue_date,
            reason: note.reason.clone(),
            whole: note.total_ht == invoice.summary.total_ht,
            invoice: invoice.summary.clone(),
            integrator: seller.integrator.clone(),
            customer: invoice.customer.clone(),
            payment: invoice.payment.clone(),
            total_ht: note.total_ht,
            vat: note_vat_amounts(ledger.connection(), note)?,
            total_vat: note.vat,
            total_ttc: note.total_ttc,
        };
        let html = templates.credit_note_html(
            &document,
            seller.logo.as_deref(),
            seller.banner.as_deref(),
        )?;
        if write_documents(
            settings,
            lake,
            month,
            &document,
            &html,
            options,
            &mut printer,
        )
        .await?
        {
            report.written += 1;
        }
    }
    Ok(report)
}

/// The note as the document Factur-X describes: its number and date, the
/// invoice's period, one line per VAT category and rate of its HT (one line
/// when the invoice had one rate), its VAT and totals.
fn as_invoice_document(note: &CreditNoteDocument) -> InvoiceDocument {
    let invoice = &note.invoice;
    let label = format!(
        "Avoir sur la facture {} : {}",
        invoice.invoice_number, note.reason
    );
    InvoiceDocument {
        invoice_number: note.credit_note_number.clone(),
        month: invoice.month.clone(),
        issue_date: note.issue_date,
        due_date: note.issue_date,
        period_start: invoice.period_start,
        period_end: invoice.period_end,
        integrator: note.integrator.clone(),
        customer: note.customer.clone(),
        lines: note
            .vat
            .iter()
            .map(|vat| InvoiceLine {
                period_start: Some(invoice.period_start),
                period_end: Some(invoice.period_end),
                ..InvoiceLine::of_vat(&label, vat.base_ht, &vat.category, vat.rate, &vat.exemption)
            })
            .collect(),
        subscription_ht: Decimal::ZERO,
        options_ht: Decimal::ZERO,
        usage_ht: Decimal::ZERO,
        equipment_ht: Decimal::ZERO,
        charges_ht: Decimal::ZERO,
        regularisation_ht: Decimal::ZERO,
        total_ht: note.total_ht,
        vat: note.vat.clone(),
        total_vat: note.total_vat,
        total_ttc: note.total_ttc,
        balance_brought_forward: Decimal::ZERO,
        amount_due: note.total_ttc,
        payment: note.payment.clone(),
        annex: Vec::new(),
        commitments: Default::default(),
    }
}

/// A note's VAT breakdown: `parts` (its split over the invoice's
/// categories, `credit_note_vat`), which must add up to what the ledger
/// holds of the note; a note without parts (recorded before them) is one
/// standard entry at its rate.
fn note_vat(note: &StoredNote, parts: Vec<VatAmount>) -> Result<Vec<VatAmount>, CreditError> {
    if parts.is_empty() {
        return Ok(vec![VatAmount::standard(
            note.vat_rate,
            note.total_ht,
            note.vat,
        )]);
    }
    let base: Decimal = parts.iter().map(|part| part.base_ht).sum();
    let vat: Decimal = parts.iter().map(|part| part.amount).sum();
    if base != note.total_ht || vat != note.vat {
        return Err(CreditError::Data {
            number: note.number.clone(),
            message: format!(
                "its VAT per category and rate is {vat} on {base}, the ledger has {} on {}",
                note.vat, note.total_ht
            ),
        });
    }
    Ok(parts)
}

/// The "credit note available" mail of each note whose documents are in
/// `documents/M/` (`publish --month M`, docs/MAIL.md): the regularisation
/// notes issued with M and the notes of `credit` dated in M, to the
/// customer as M's record has them (else as the credited invoice's month
/// recorded them), without their PDF (`publish` reads them as it mails).
pub async fn notices(
    settings: &Settings,
    lake: &Lake,
    ledger: &crate::core::ledger::Ledger,
    month: Month,
) -> Result<Vec<crate::documents::mail::Notice>, CreditError> {
    let notes = notes_where(
        ledger.connection(),
        "credit_note_number IN
             (SELECT credit_note_number FROM regularisation_notes WHERE issue_month = ?1)
         OR (credit_note_number NOT IN (SELECT credit_note_number FROM regularisation_notes)
             AND substr(issue_date, 1, 7) = ?1)",
        &month.to_string(),
    )?;
    let mut parties_of: std::collections::HashMap<String, _> = Default::default();
    let mut notices = Vec::with_capacity(notes.len());
    for note in notes {
        let mut party = None;
        for recorded in [month.to_string(), note.invoice_month.clone()] {
            if !parties_of.contains_key(&recorded) {
                let parsed: Month = recorded.parse().map_err(|_| CreditError::Data {
                    number: note.number.clone(),
                    message: format!("ledger month '{recorded}' is not a month"),
                })?;
                parties_of.insert(
                    recorded.clone(),
                    frozen::parties(settings, lake, parsed).await?,
                );
            }
            party = parties_of[&recorded].get(&note.customer_id).cloned();
            if party.is_some() {
                break;
            }
        }
        let Some(party) = party else {
            return Err(CreditError::Data {
                number: note.number.clone(),
                message: format!("customer {} is in no record of the issue", note.customer_id),
            });
        };
        notices.push(crate::documents::mail::Notice {
            invoice_number: note.number.clone(),
            customer_id: note.customer_id.clone(),
            customer_name: party.customer.name.clone(),
            to: party.customer.email.clone(),
            amount_ttc: note.total_ttc,
            amount_due: note.total_ttc,
            due_date: note.issue_date,
            payment_method: party.payment_method.clone(),
            pdf: None,
            credited_invoice: Some(note.invoice_number.clone()),
        });
    }
    Ok(notices)
}

/// The month of a day (documents and dataset partitions of a note).
fn month_of(date: NaiveDate) -> Month {
    date.format("%Y-%m")
        .to_string()
        .parse()
        .expect("a date's month is a month")
}

/// An amount with exactly 2 decimals.
fn with_cents(mut amount: Decimal) -> Decimal {
    amount.rescale(2);
    amount
}

fn parse_date(number: &str, column: &str, text: &str) -> Result<NaiveDate, CreditError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| CreditError::Data {
        number: number.to_string(),
        message: format!("{column} '{text}' is not a date"),
    })
}

fn sqlite_error(connection: &Connection, source: rusqlite::Error) -> CreditError {
    CreditError::Sqlite {
        path: connection.path().unwrap_or("ledger").to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_is_positive_euros_and_cents() {
        assert_eq!(parse_amount_ht("12.5").unwrap().to_string(), "12.50");
        assert_eq!(parse_amount_ht(" 1234.56 ").unwrap().to_string(), "1234.56");
        assert_eq!(parse_amount_ht("3.100").unwrap().to_string(), "3.10");
        assert!(parse_amount_ht("12,50").unwrap_err().contains("12.50"));
        assert!(parse_amount_ht("0").is_err());
        assert!(parse_amount_ht("-3").is_err());
        assert!(parse_amount_ht("1.005").unwrap_err().contains("cents"));
    }

    #[test]
    fn a_partial_credit_is_split_over_the_categories_the_remainder_to_the_largest() {
        let group = |category: &str, rate: i64, base: i64, equipment: i64| VatGroup {
            vat_category: category.to_string(),
            vat_rate: Decimal::new(rate, 2),
            vat_exemption: None,
            base_ht: Decimal::new(base, 2),
            equipment_ht: Decimal::new(equipment, 2),
        };
        let groups = [group("S", 2000, 16000, 15000), group("E", 0, 300, 0)];
        let parts = split(&groups, Decimal::new(5000, 2));
        let view: Vec<(&str, &str, &str, &str)> = parts
            .iter()
            .map(|p| {
                (
                    p.vat_category.as_str(),
                    p.base_ht.as_str(),
                    p.vat.as_str(),
                    p.equipment_ht.as_str(),
                )
            })
            .collect();
        // 50.00 x 3 / 163 = 0.92; S the remainder 49.08, VAT 9.816 -> 9.82;
        // a partial share of a group not all handsets corrects services.
        assert_eq!(
            view,
            [
                ("S", "49.08", "9.82", "0.00"),
                ("E", "0.92", "0.00", "0.00")
            ]
        );
        // All that remains: each group's base, its handsets with it.
        let whole = split(&groups, Decimal::new(16300, 2));
        assert_eq!(whole[0].base_ht, "160.00");
        assert_eq!(whole[0].vat, "32.00");
        assert_eq!(whole[0].equipment_ht, "150.00");
        assert_eq!(whole[1].base_ht, "3.00");
        // A group all handsets (K) credits equipment.
        let parts = split(
            &[group("AE", 0, 1500, 0), group("K", 0, 15000, 15000)],
            Decimal::new(1000, 2),
        );
        assert_eq!(parts[1].base_ht, "9.09");
        assert_eq!(parts[1].equipment_ht, "9.09");
        assert_eq!(parts[0].base_ht, "0.91");
    }

    #[test]
    fn a_month_of_a_day() {
        let day = NaiveDate::from_ymd_opt(2027, 1, 5).unwrap();
        assert_eq!(month_of(day).to_string(), "2027-01");
    }
}
