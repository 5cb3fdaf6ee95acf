//! `render`: each invoice of an issued month as an HTML page (minijinja,
//! `templates/`) and a PDF (headless Chromium, `chrome.rs`), with Factur-X
//! (`facturx.rs`) for business customers.
//!
//! Output: `<lake>/documents/YYYY-MM/<invoice_number>.html` and `.pdf`,
//! and those of the regularisation credit notes issued with the month
//! (`credit.rs`). A month is rendered only once it is issued (`bill`), so
//! the numbers and amounts are final, and from what the issue recorded
//! (account.md §3, `frozen.rs`): the customers and the integrator as they
//! were, never the current `customers.csv` or `integrator.toml`. A document
//! in the lake is never written again; a missing one is made again from the
//! record (a missing PDF is printed from the page in the lake).
//!
//! `--draft` (account.md §2): the draft's documents in
//! `documents/YYYY-MM/drafts/`, from the current files, marked `BROUILLON`
//! on every page, without Factur-X; replaced at each run.
//!
//! Everything a template shows is gathered first (`document.rs`) by the
//! SQL of `sql/documents/`; the templates only lay it out. Money is
//! formatted from the exact decimals (`1 234,56 €`), never through a float.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::ledger::LedgerError;
use crate::core::month::Month;
use crate::documents::chrome::{self, ChromeError, Printer, PrinterOptions};
use crate::documents::document::{
    self, document_key, ChargedEvent, Customer, InvoiceDocument, InvoiceLine, LineUsage, Payment,
    UsageSummary,
};
use crate::documents::facturx::{self, FacturxError};
use crate::documents::images::ImageError;
use crate::documents::pdfbatch;
use crate::documents::templates::{TemplateError, Templates};
use crate::engine::sqlfiles;
use crate::engine::{self, Rows};
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::settings::Settings;
use crate::stages::frozen;
use crate::stages::Context;
use crate::stages::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("render {0}: the month has no issued invoices yet (run `bill --month {0}` first)")]
    NotIssued(String),
    #[error("render --draft {0}: the month is issued; its invoices are rendered by `render --month {0}`")]
    DraftOfIssued(String),
    #[error("render --draft {0}: no draft of the month (run `bill --month {0} --draft` first)")]
    NoDraft(String),
    #[error("render --draft: the template invoice.html does not print BROUILLON on a draft (its context has `draft`)")]
    DraftNotMarked,
    #[error(transparent)]
    Record(#[from] frozen::RecordError),
    #[error("render: the regularisation credit notes: {0}")]
    CreditNotes(Box<crate::stages::credit::CreditError>),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Integrator(#[from] IntegratorError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("render: reading the invoices failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("render: invoice {invoice}: {message}")]
    Data { invoice: String, message: String },
    #[error(transparent)]
    Chrome(#[from] ChromeError),
    #[error("render: invoice {invoice}: {source}")]
    Facturx {
        invoice: String,
        #[source]
        source: FacturxError,
    },
}

/// What `render` did.
#[derive(Debug, Default, Serialize)]
pub struct RenderReport {
    pub month: String,
    pub invoices: u64,
    pub html_written: u64,
    pub pdf_written: u64,
    /// Invoices whose page and PDF were already in the lake, unchanged.
    pub unchanged: u64,
    /// PDFs carrying Factur-X (business customers).
    pub facturx: u64,
    /// Times Chromium was restarted after a crash.
    pub chrome_restarts: u64,
    /// Invoices of a batch (`[render] batch`) printed one at a time because
    /// the batch could not be split.
    pub printed_alone: u64,
    /// False when only the HTML pages were asked for.
    pub pdf: bool,
    /// The folder of the month's documents.
    pub folder: String,
    /// True for `--draft` (account.md §2).
    pub draft: bool,
    /// The regularisation credit notes issued with the month, and how many
    /// of their documents were written.
    pub credit_notes: u64,
    pub credit_notes_written: u64,
}

impl std::fmt::Display for RenderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "render {}{}: {} invoices, {} HTML and {} PDF written ({} with Factur-X), {} unchanged",
            self.month,
            if self.draft { " (draft)" } else { "" },
            self.invoices,
            self.html_written,
            self.pdf_written,
            self.facturx,
            self.unchanged
        )?;
        if self.printed_alone > 0 {
            write!(
                f,
                ", {} printed alone (their batch did not split)",
                self.printed_alone
            )?;
        }
        if self.chrome_restarts > 0 {
            write!(f, ", Chromium restarted {} times", self.chrome_restarts)?;
        }
        if self.credit_notes > 0 {
            write!(
                f,
                "; {} regularisation credit notes, {} of their documents written",
                self.credit_notes, self.credit_notes_written
            )?;
        }
        if !self.pdf {
            write!(f, " (HTML only)")?;
        }
        write!(f, "\n  documents: {}", self.folder)
    }
}

pub use crate::documents::document::RenderOptions;

// ---- Gathering the documents -----------------------------------------

/// Reads a value the SQL guarantees, naming the invoice when it does not
/// parse.
fn parse<T: FromStr>(invoice: &str, column: &str, text: &str) -> Result<T, RenderError> {
    text.parse().map_err(|_| RenderError::Data {
        invoice: invoice.to_string(),
        message: format!("{column} '{text}' does not parse"),
    })
}

/// An amount column a month billed before it existed lacks: zero.
fn parse_or_zero(invoice: &str, column: &str, text: &str) -> Result<Decimal, RenderError> {
    if text.is_empty() {
        Ok(Decimal::ZERO)
    } else {
        parse(invoice, column, text)
    }
}

fn parse_date(invoice: &str, column: &str, text: &str) -> Result<NaiveDate, RenderError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| RenderError::Data {
        invoice: invoice.to_string(),
        message: format!("{column} '{text}' is not a date"),
    })
}

fn optional_date(
    invoice: &str,
    column: &str,
    text: &str,
) -> Result<Option<NaiveDate>, RenderError> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_date(invoice, column, text).map(Some)
    }
}

/// The annex entry of a customer's line, made empty on first use.
fn line_usage<'a>(
    annex_of: &'a mut BTreeMap<String, BTreeMap<String, LineUsage>>,
    customer: &str,
    msisdn: &str,
) -> &'a mut LineUsage {
    annex_of
        .entry(customer.to_string())
        .or_default()
        .entry(msisdn.to_string())
        .or_insert_with(|| LineUsage {
            msisdn: msisdn.to_string(),
            summary: Vec::new(),
            charged: Vec::new(),
            charged_not_listed: 0,
        })
}

/// Which invoices of a month a document is made of: the issued ones, with
/// the customers the issue recorded, or the draft's (account.md §2), with
/// the customers as `customers.csv` has them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invoices {
    Issued,
    Draft,
}

/// The number a draft prints where an invoice's number goes.
pub fn draft_number(customer_id: &str) -> String {
    format!("DRAFT-{customer_id}")
}

/// Every invoice of the month, gathered for its document.
pub async fn gather(
    settings: &Settings,
    lake: &Lake,
    month: Month,
    integrator: &Integrator,
    which: Invoices,
) -> Result<Vec<InvoiceDocument>, RenderError> {
    let ctx = crate::stages::session(settings, month, None).await?;
    let partition = format!("month={month}");
    let (invoices_path, lines_path) = match which {
        Invoices::Issued => (
            format!("{}/{partition}", datasets::INVOICES),
            format!("{}/{partition}", datasets::INVOICE_LINES),
        ),
        Invoices::Draft => (
            format!("{}/{partition}/draft_invoices", datasets::DRAFTS),
            format!("{}/{partition}/draft_invoice_lines", datasets::DRAFTS),
        ),
    };
    for (table, path) in [
        ("invoices", invoices_path),
        ("invoice_lines", lines_path),
        (
            "rated_cdrs",
            format!("{}/{partition}", datasets::RATED_CDRS),
        ),
    ] {
        engine::register_path(&ctx, lake, table, &path, None).await?;
    }
    // `vat_exemption` came with the VAT categories (rating.md §6).
    engine::with_text_column(&ctx, "invoice_lines", "vat_exemption").await?;
    match which {
        Invoices::Issued => frozen::register_parties(&ctx, settings, lake, month).await?,
        Invoices::Draft => frozen::register_draft_parties(&ctx, month).await?,
    }
    // A month may have no CDR at all (a month of subscriptions and
    // regularisations only).
    engine::register_path_or_empty(
        &ctx,
        lake,
        "cdrs",
        &format!("{}/{partition}", datasets::CDRS),
        crate::mvne::upstream::cdr_schema(false),
    )
    .await?;
    // The commitments the issue (or the draft) recorded: account.md §6.
    let commitments_path = match which {
        Invoices::Issued => format!("{}/{partition}", datasets::INVOICE_COMMITMENTS),
        Invoices::Draft => format!("{}/{partition}/draft_commitments", datasets::DRAFTS),
    };
    let mut commitments_of: BTreeMap<String, BTreeMap<String, Vec<NaiveDate>>> = BTreeMap::new();
    if engine::register_path(&ctx, lake, "commitments", &commitments_path, None).await? {
        let rows = Rows::query(&ctx, &sqlfiles::DOCUMENT_COMMITMENTS).await?;
        for row in &rows.rows {
            let customer = rows.get(row, "customer_id");
            let end = parse_date(customer, "commitment_end", rows.get(row, "commitment_end"))?;
            commitments_of
                .entry(customer.to_string())
                .or_default()
                .entry(rows.get(row, "msisdn").to_string())
                .or_default()
                .push(end);
        }
    }
    let invoices = Rows::query(&ctx, &sqlfiles::DOCUMENT_INVOICES).await?;
    let lines = Rows::query(&ctx, &sqlfiles::DOCUMENT_LINES).await?;
    let summary = Rows::query(&ctx, &sqlfiles::ANNEX_SUMMARY).await?;
    let charged = Rows::query(&ctx, &sqlfiles::ANNEX_CHARGED).await?;

    // By customer: a month has one invoice a customer, and a draft's have
    // no number.
    let mut lines_of: BTreeMap<String, Vec<InvoiceLine>> = BTreeMap::new();
    for row in &lines.rows {
        let number = lines.get(row, "invoice_number");
        let unit_price = lines.get(row, "unit_price");
        lines_of
            .entry(lines.get(row, "customer_id").to_string())
            .or_default()
            .push(InvoiceLine {
                kind: lines.get(row, "kind").to_string(),
                msisdn: lines.get(row, "msisdn").to_string(),
                label: lines.get(row, "label").to_string(),
                code: lines.get(row, "code").to_string(),
                event_type: lines.get(row, "event_type").to_string(),
                zone: lines.get(row, "zone").to_string(),
                quantity: parse(number, "quantity", lines.get(row, "quantity"))?,
                unit_price: if unit_price.is_empty() {
                    None
                } else {
                    Some(parse(number, "unit_price", unit_price)?)
                },
                amount_ht: parse(number, "amount_ht", lines.get(row, "amount_ht"))?,
                period_start: optional_date(
                    number,
                    "period_start",
                    lines.get(row, "period_start"),
                )?,
                period_end: optional_date(number, "period_end", lines.get(row, "period_end"))?,
                period: match lines.get(row, "kind") {
                    "REGULARISATION" => lines.get(row, "period").to_string(),
                    _ => String::new(),
                },
                vat_category: lines.get(row, "vat_category").to_string(),
                vat_rate: parse(number, "vat_rate", lines.get(row, "vat_rate"))?,
                vat_exemption: lines.get(row, "vat_exemption").to_string(),
            });
    }

    // The annex, per customer then line.
    let mut annex_of: BTreeMap<String, BTreeMap<String, LineUsage>> = BTreeMap::new();
    for row in &summary.rows {
        let customer = summary.get(row, "customer_id");
        let entry = line_usage(&mut annex_of, customer, summary.get(row, "msisdn"));
        entry.summary.push(UsageSummary {
            event_type: summary.get(row, "event_type").to_string(),
            zone: summary.get(row, "zone").to_string(),
            events: parse(customer, "events", summary.get(row, "events"))?,
            billed_qty: parse(customer, "billed_qty", summary.get(row, "billed_qty"))?,
            covered_qty: parse(customer, "covered_qty", summary.get(row, "covered_qty"))?,
            amount: parse(customer, "amount", summary.get(row, "amount"))?,
        });
    }
    let paris = chrono_tz::Europe::Paris;
    for row in &charged.rows {
        let customer = charged.get(row, "customer_id");
        // The detailed call list is on request (rating.md §6).
        if !settings.call_detail.includes(customer) {
            continue;
        }
        let entry = line_usage(&mut annex_of, customer, charged.get(row, "msisdn"));
        let total: u64 = parse(
            customer,
            "charged_events",
            charged.get(row, "charged_events"),
        )?;
        let start = charged.get(row, "start_time");
        let local_time = chrono::NaiveDateTime::parse_from_str(
            start.trim_end_matches('Z'),
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .map(|utc| {
            utc.and_utc()
                .with_timezone(&paris)
                .format("%d/%m/%Y %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| start.to_string());
        entry.charged.push(ChargedEvent {
            local_time,
            event_type: charged.get(row, "event_type").to_string(),
            zone: charged.get(row, "zone").to_string(),
            called_number: document::mask_called_number(charged.get(row, "called_number")),
            billed_qty: parse(customer, "billed_qty", charged.get(row, "billed_qty"))?,
            amount: parse(customer, "amount", charged.get(row, "amount"))?,
        });
        entry.charged_not_listed = total.saturating_sub(entry.charged.len() as u64);
    }

    let mut documents = Vec::with_capacity(invoices.rows.len());
    for row in &invoices.rows {
        let get = |column: &str| invoices.get(row, column);
        let customer_id = get("customer_id");
        let number = match which {
            Invoices::Issued => get("invoice_number").to_string(),
            Invoices::Draft => draft_number(customer_id),
        };
        let number = number.as_str();
        let total_ht: Decimal = parse(number, "total_ht", get("total_ht"))?;
        let vat: Decimal = parse(number, "vat", get("vat"))?;
        let lines = lines_of.remove(customer_id).unwrap_or_default();
        // rating.md §6: the VAT per category and rate of the lines is the
        // invoice's VAT, or the invoice is not printed.
        let breakdown =
            document::vat_breakdown(&lines, vat).map_err(|message| RenderError::Data {
                invoice: number.to_string(),
                message,
            })?;
        let due_date = parse_date(number, "due_date", get("due_date"))?;
        let payment = Payment {
            method: get("payment_method").to_string(),
            creditor_id: integrator.sepa_ics.clone().unwrap_or_default(),
            mandate_rum: get("mandate_rum").to_string(),
            mandate_date: optional_date(number, "mandate_date", get("mandate_date"))?,
            iban_masked: get("iban_masked").to_string(),
            debit_date: crate::core::calendar::collection_date(
                parse_date(number, "issue_date", get("issue_date"))?,
                due_date,
                settings.sepa_prenotification_days,
            ),
            bank_iban: integrator.bank_iban.clone().unwrap_or_default(),
            bank_bic: integrator.bank_bic.clone().unwrap_or_default(),
        };
        documents.push(InvoiceDocument {
            invoice_number: number.to_string(),
            month: month.to_string(),
            issue_date: parse_date(number, "issue_date", get("issue_date"))?,
            due_date,
            period_start: parse_date(number, "period_start", get("period_start"))?,
            period_end: parse_date(number, "period_end", get("period_end"))?,
            integrator: integrator.clone(),
            customer: Customer::from_columns(get),
            lines,
            subscription_ht: parse(number, "subscription_ht", get("subscription_ht"))?,
            options_ht: parse(number, "options_ht", get("options_ht"))?,
            usage_ht: parse(number, "usage_ht", get("usage_ht"))?,
            equipment_ht: parse(number, "equipment_ht", get("equipment_ht"))?,
            charges_ht: parse_or_zero(number, "charges_ht", get("charges_ht"))?,
            regularisation_ht: parse_or_zero(
                number,
                "regularisation_ht",
                get("regularisation_ht"),
            )?,
            total_ht,
            vat: breakdown,
            total_vat: vat,
            total_ttc: parse(number, "total_ttc", get("total_ttc"))?,
            balance_brought_forward: parse_or_zero(
                number,
                "balance_brought_forward",
                get("balance_brought_forward"),
            )?,
            amount_due: parse_or_zero(number, "amount_due", get("amount_due"))?,
            payment,
            annex: annex_of
                .remove(customer_id)
                .map(|lines| lines.into_values().collect())
                .unwrap_or_default(),
            commitments: commitments_of.remove(customer_id).unwrap_or_default(),
        });
    }
    Ok(documents)
}

/// The "invoice available" mail of each invoice of an issued month, without
/// its PDF (`publish` reads the PDFs one at a time as it mails).
pub async fn notices(
    settings: &Settings,
    lake: &Lake,
    month: Month,
) -> Result<Vec<crate::documents::mail::Notice>, RenderError> {
    let ctx = crate::stages::session(settings, month, None).await?;
    engine::register_path(
        &ctx,
        lake,
        "invoices",
        &format!("{}/month={month}", datasets::INVOICES),
        None,
    )
    .await?;
    frozen::register_parties(&ctx, settings, lake, month).await?;
    let invoices = Rows::query(&ctx, &sqlfiles::DOCUMENT_INVOICES).await?;
    let mut notices = Vec::with_capacity(invoices.rows.len());
    for row in &invoices.rows {
        let get = |column: &str| invoices.get(row, column);
        let number = get("invoice_number");
        let mut due_date = parse_date(number, "due_date", get("due_date"))?;
        if get("payment_method") == "SEPA_DD" {
            // The day it is collected (account.md §8), as the invoice says.
            due_date = crate::core::calendar::collection_date(
                parse_date(number, "issue_date", get("issue_date"))?,
                due_date,
                settings.sepa_prenotification_days,
            );
        }
        notices.push(crate::documents::mail::Notice {
            invoice_number: number.to_string(),
            customer_id: get("customer_id").to_string(),
            customer_name: get("name").to_string(),
            to: get("email").to_string(),
            amount_ttc: parse(number, "total_ttc", get("total_ttc"))?,
            amount_due: match get("amount_due") {
                "" => parse(number, "total_ttc", get("total_ttc"))?,
                text => parse(number, "amount_due", text)?,
            },
            due_date,
            payment_method: get("payment_method").to_string(),
            pdf: None,
            credited_invoice: None,
        });
    }
    Ok(notices)
}

// ---- The stage -------------------------------------------------------

/// `render --month M`: the documents of M's issued invoices, from the
/// issue's record (account.md §3), and those of the regularisation credit
/// notes issued with M. A document already in the lake is never written
/// again; one that is missing is made again from the record.
pub async fn render(
    stage: &Context,
    month: Month,
    options: RenderOptions,
) -> Result<RenderReport, RenderError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let mut report = RenderReport {
        month: month.to_string(),
        pdf: options.pdf,
        folder: lake.url().join(&format!("documents/{month}/")),
        ..Default::default()
    };
    if !ledger.is_issued(&report.month)? {
        return Err(RenderError::NotIssued(report.month));
    }
    // What a render killed half-way left (a page's staging file).
    lake.remove_staging_leftovers(&format!("documents/{month}"))?;
    // Templates and the record first: a mistake there is reported before
    // any work.
    let templates = Templates::load(settings.templates_dir.as_deref())?;
    let seller = frozen::seller(settings, lake, month).await?;
    let documents = gather(settings, lake, month, &seller.integrator, Invoices::Issued).await?;
    report.invoices = documents.len() as u64;
    write_all(
        settings,
        lake,
        month,
        &templates,
        &seller,
        &documents,
        options,
        Invoices::Issued,
        &mut report,
    )?;
    let notes =
        crate::stages::credit::regularisation_documents(stage, month, &templates, &seller, options)
            .await
            .map_err(|e| RenderError::CreditNotes(Box::new(e)))?;
    report.credit_notes = notes.notes;
    report.credit_notes_written = notes.written;
    Ok(report)
}

/// `render --month M --draft` (account.md §2): the documents of M's draft
/// (`bill --month M --draft`) in `documents/M/drafts/DRAFT-<customer>.html`
/// (and `.pdf`), from the current `customers.csv` and `integrator.toml`,
/// marked `BROUILLON` on every page, without Factur-X (a draft is not an
/// invoice). Replaced at each run: a draft of a customer no longer in the
/// draft is removed.
pub async fn render_draft(
    stage: &Context,
    month: Month,
    options: RenderOptions,
) -> Result<RenderReport, RenderError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let folder = format!("documents/{month}/drafts/");
    let mut report = RenderReport {
        month: month.to_string(),
        pdf: options.pdf,
        draft: true,
        folder: lake.url().join(&folder),
        ..Default::default()
    };
    if ledger.is_issued(&report.month)? {
        return Err(RenderError::DraftOfIssued(report.month));
    }
    let draft = format!("{}/month={month}/draft_invoices", datasets::DRAFTS);
    if !lake
        .list(&draft)
        .await?
        .iter()
        .any(|key| key.ends_with(".parquet"))
    {
        return Err(RenderError::NoDraft(report.month));
    }
    lake.remove_staging_leftovers(&folder)?;
    let templates = Templates::load(settings.templates_dir.as_deref())?;
    let seller = frozen::Seller::current(settings)?;
    let documents = gather(settings, lake, month, &seller.integrator, Invoices::Draft).await?;
    report.invoices = documents.len() as u64;
    write_all(
        settings,
        lake,
        month,
        &templates,
        &seller,
        &documents,
        options,
        Invoices::Draft,
        &mut report,
    )?;
    // The drafts of customers the draft no longer has.
    let wanted: std::collections::HashSet<String> = documents
        .iter()
        .flat_map(|d| {
            ["html", "pdf"].map(|extension| draft_key(month, &d.invoice_number, extension))
        })
        .collect();
    for key in lake.list(&folder).await? {
        let name = key.strip_prefix(&folder).unwrap_or(&key);
        if name.starts_with("DRAFT-") && !wanted.contains(&key) {
            lake.delete(&key).await?;
        }
    }
    Ok(report)
}

/// `documents/2026-10/drafts/DRAFT-C00001.pdf`.
pub fn draft_key(month: Month, number: &str, extension: &str) -> String {
    format!("documents/{month}/drafts/{number}.{extension}")
}

/// What a draft's page must show on each printed page (account.md §2).
pub const DRAFT_MARK: &str = "BROUILLON";

/// Writes the pages and prints the PDFs of `documents`: for issued
/// invoices, only those not in the lake yet (a document once written is
/// never written again; a missing PDF is printed from the page in the
/// lake); for a draft, those that changed.
#[allow(clippy::too_many_arguments)]
fn write_all(
    settings: &Settings,
    lake: &Lake,
    month: Month,
    templates: &Templates,
    seller: &frozen::Seller,
    documents: &[InvoiceDocument],
    options: RenderOptions,
    which: Invoices,
    report: &mut RenderReport,
) -> Result<(), RenderError> {
    let runtime = tokio::runtime::Handle::current();
    let draft = which == Invoices::Draft;
    let key = |invoice: &InvoiceDocument, extension: &str| match which {
        Invoices::Issued => document_key(month, &invoice.invoice_number, extension),
        Invoices::Draft => draft_key(month, &invoice.invoice_number, extension),
    };
    let page = |invoice: &InvoiceDocument| -> Result<String, RenderError> {
        let html = templates.invoice_html(
            invoice,
            seller.logo.as_deref(),
            seller.banner.as_deref(),
            draft,
        )?;
        if draft && !html.contains(DRAFT_MARK) {
            return Err(RenderError::DraftNotMarked);
        }
        Ok(html)
    };
    // The pages first; which PDFs are to print, and which of them print
    // the page already in the lake.
    let mut to_print: Vec<usize> = Vec::new();
    let mut from_lake: Vec<bool> = vec![false; documents.len()];
    tokio::task::block_in_place(|| -> Result<(), RenderError> {
        for (index, invoice) in documents.iter().enumerate() {
            let html_key = key(invoice, "html");
            let pdf_key = key(invoice, "pdf");
            let pdf_there = || runtime.block_on(lake.exists(&pdf_key));
            let (page_there, print) = match which {
                Invoices::Issued => {
                    let there = runtime.block_on(lake.exists(&html_key))?;
                    if !there {
                        runtime.block_on(lake.put(&html_key, page(invoice)?.into_bytes()))?;
                        report.html_written += 1;
                    }
                    from_lake[index] = there;
                    (there, options.pdf && !pdf_there()?)
                }
                Invoices::Draft => {
                    let html = page(invoice)?;
                    let same = runtime.block_on(lake.get_if_exists(&html_key))?.as_deref()
                        == Some(html.as_bytes());
                    if !same {
                        runtime.block_on(lake.put(&html_key, html.into_bytes()))?;
                        report.html_written += 1;
                    }
                    (same, options.pdf && (!same || !pdf_there()?))
                }
            };
            if print {
                to_print.push(index);
            } else if page_there {
                report.unchanged += 1;
            }
        }
        Ok(())
    })?;
    if to_print.is_empty() {
        return Ok(());
    }
    // The page a PDF is printed from: the one in the lake when there is
    // one (the document the customer may have seen), else made again.
    let print_page = |index: usize| -> String {
        let invoice = &documents[index];
        if from_lake[index] {
            runtime
                .block_on(lake.get(&key(invoice, "html")))
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default()
        } else {
            page(invoice).unwrap_or_default()
        }
    };

    // Batches no larger than needed to keep every tab busy: a few invoices
    // print on all tabs at once rather than as one document on one tab.
    let batch = settings
        .render_batch
        .min(to_print.len().div_ceil(settings.render_tabs.max(1)))
        .max(1);
    let mut printer = Printer::launch(&PrinterOptions {
        chromium: settings.chromium.clone(),
        tabs: settings.render_tabs,
        single_process: settings.render_single_process,
        // A tab is replaced after about as many invoices as before, in
        // fewer documents.
        recycle_after: chrome::RECYCLE_AFTER.div_ceil(batch),
    })?;
    let failure: RefCell<Option<RenderError>> = RefCell::default();
    let bar = crate::core::progress::bar("render", to_print.len() as u64, "PDFs");
    let mut facturx_count = 0;
    let mut written = 0;
    // Each invoice's PDF, made Factur-X for a business (never a draft: it
    // is not an invoice), written to the lake.
    let mut keep = |index: usize, pdf: Vec<u8>| -> Result<(), String> {
        let invoice = &documents[index];
        let bytes = if !draft && invoice.customer.is_business() {
            let xml = facturx::cii_xml(invoice);
            match facturx::embed(&pdf, &xml, invoice) {
                Ok(bytes) => {
                    facturx_count += 1;
                    bytes
                }
                Err(source) => {
                    let message = source.to_string();
                    *failure.borrow_mut() = Some(RenderError::Facturx {
                        invoice: invoice.invoice_number.clone(),
                        source,
                    });
                    return Err(message);
                }
            }
        } else {
            pdf
        };
        runtime
            .block_on(lake.put(&key(invoice, "pdf"), bytes))
            .map_err(|e| e.to_string())?;
        written += 1;
        bar.inc(1);
        Ok(())
    };
    // Batches of invoices as one document each (`pdfbatch.rs`), or one
    // invoice a document. A key names the invoices of its document:
    // `3,4,5`. The pages are made again (or read again) as Chromium pulls
    // them, so that a month of invoices is never held in memory.
    let layouts: RefCell<HashMap<String, pdfbatch::Layout>> = RefCell::default();
    let mut alone: Vec<usize> = Vec::new();
    let mut restarts = 0;
    let documents_to_print = to_print.chunks(batch).flat_map(|chunk| {
        let pages: Vec<String> = chunk.iter().map(|&index| print_page(index)).collect();
        let key = |indices: &[usize]| {
            indices
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let composed = (chunk.len() > 1)
            .then(|| pdfbatch::compose(&pages.iter().map(String::as_str).collect::<Vec<_>>()))
            .flatten();
        match composed {
            Some(composed) => {
                let (html, layout) = composed.into_parts();
                let key = key(chunk);
                layouts.borrow_mut().insert(key.clone(), layout);
                vec![(key, html)]
            }
            None => chunk
                .iter()
                .zip(pages)
                .map(|(&index, html)| (key(&[index]), html))
                .collect(),
        }
    });
    let printed = tokio::task::block_in_place(|| {
        printer.print_all(documents_to_print, |key, pdf| {
            let indices = key
                .split(',')
                .map(|index| index.parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("unknown document {key}"))?;
            let layout = layouts.borrow_mut().remove(key);
            let Some(layout) = layout else {
                return keep(indices[0], pdf);
            };
            match pdfbatch::split(&pdf, &layout) {
                Ok(pdfs) => {
                    for (index, pdf) in indices.into_iter().zip(pdfs) {
                        keep(index, pdf)?;
                    }
                    Ok(())
                }
                Err(reason) => {
                    tracing::warn!(
                        "render: a batch of {} invoices is printed again one at a time: {reason}",
                        indices.len()
                    );
                    alone.extend(indices);
                    Ok(())
                }
            }
        })
    });
    if let Some(failure) = failure.borrow_mut().take() {
        return Err(failure);
    }
    restarts += printed?.restarts;
    if !alone.is_empty() {
        report.printed_alone = alone.len() as u64;
        let pages = alone
            .iter()
            .map(|&index| (index.to_string(), print_page(index)));
        let printed = tokio::task::block_in_place(|| {
            printer.print_all(pages, |key, pdf| {
                let index = key.parse().map_err(|_| format!("unknown page {key}"))?;
                keep(index, pdf)
            })
        });
        if let Some(failure) = failure.borrow_mut().take() {
            return Err(failure);
        }
        restarts += printed?.restarts;
    }
    bar.finish_and_clear();
    report.pdf_written = written;
    report.facturx = facturx_count;
    report.chrome_restarts = restarts as u64;
    Ok(())
}

/// Whether Chromium can be found, for `demo` (which writes the HTML pages
/// only when it cannot, and says how to get it).
pub fn chromium_available(settings: &Settings) -> Result<(), ChromeError> {
    chrome::chromium_path(&PrinterOptions {
        chromium: settings.chromium.clone(),
        tabs: settings.render_tabs,
        ..PrinterOptions::default()
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {}
