//! `sepa`: the SEPA direct-debit file of an issued month, ISO 20022
//! `pain.008.001.02` (CustomerDirectDebitInitiationV02, SEPA Core), written
//! to `<lake>/documents/YYYY-MM/sepa-YYYY-MM.xml` (interface.md) for the
//! integrator to send to its bank. `publish` writes it too. On request the
//! same content as `pain.008.001.08` goes beside it (`Format`).
//!
//! - What is collected: each invoice of the month whose payment method is
//!   `SEPA_DD`, for its TTC total, on its due date (issue date + the
//!   integrator's `payment_terms_days`), under its customer's mandate (RUM,
//!   signature date, IBAN, BIC) as `customers.csv` holds it. An invoice whose
//!   total is zero or negative is not collected: a direct debit cannot pay
//!   money back, and the report names it.
//! - Groups: one `PmtInf` per requested collection date and sequence type.
//! - Sequence type: a mandate's first collection is `FRST`, the later ones
//!   `RCUR`. The ledger's `sepa_mandates` table keeps, per creditor
//!   identifier (ICS) and RUM, the first month a file collected it; a file
//!   of that month (or an earlier one) says `FRST`, a later month `RCUR`, so
//!   a re-run of a month writes the same file.
//! - Deterministic: the message id comes from the invoice prefix and the
//!   month, the creation time from the invoices' issue date, the order from
//!   the invoice numbers; a re-run gives the same bytes, and an unchanged
//!   file is not written again.
//! - Text: the SEPA Latin character set only (`a-z A-Z 0-9 / - ? : ( ) . ,
//!   ' +` and space): accents are taken off (é → e, œ → oe), other signs
//!   replaced (`&` → `+`, `"` → `'`), names cut to the EPC's 70 characters.
//!   Amounts are the exact decimals with 2 digits, never floats.
//!
//! The identifier rules the reference tables are checked against on load
//! (IBAN, BIC, RUM, ICS) live here too, with the EPC's wording.
//!
//! The IBANs go into the file (that is its purpose), never into a log, an
//! error message or a report.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use chrono::NaiveDate;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use rusqlite::params;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::identifiers::{compact_iban, is_identifier_char, sepa_text};
use crate::core::lake::{datasets, LakeError};
use crate::core::ledger::{Ledger, LedgerError};
use crate::core::month::Month;
use crate::engine;
use crate::engine::sqlfiles;
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::reference::{Reference, ReferenceError};
use crate::stages::refunds;
use crate::stages::Context;

// ---- text -------------------------------------------------------------------

/// The EPC's limit for a name (the schema allows 140).
const NAME_MAX: usize = 70;
/// Unstructured remittance information.
const REMITTANCE_MAX: usize = 140;

// ---- the file ---------------------------------------------------------------

/// The schema version of the file. Both say the same; only the namespace
/// and the name of the BIC element (`BIC`, `BICFI`) differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `pain.008.001.02`: the version every French bank takes, and the
    /// contract's `sepa-YYYY-MM.xml`.
    #[default]
    Pain00800102,
    /// `pain.008.001.08` (ISO 20022 of 2019), the version of the EPC's
    /// newer implementation guidelines, for a bank that asks for it.
    Pain00800108,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pain00800102 => "pain.008.001.02",
            Format::Pain00800108 => "pain.008.001.08",
        }
    }
    fn namespace(self) -> String {
        format!("urn:iso:std:iso:20022:tech:xsd:{}", self.name())
    }
    fn bic_element(self) -> &'static str {
        match self {
            Format::Pain00800102 => "BIC",
            Format::Pain00800108 => "BICFI",
        }
    }
}

/// FRST for a mandate's first collection, RCUR for the later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum SequenceType {
    #[serde(rename = "FRST")]
    First,
    #[serde(rename = "RCUR")]
    Recurrent,
}

impl SequenceType {
    pub fn code(self) -> &'static str {
        match self {
            SequenceType::First => "FRST",
            SequenceType::Recurrent => "RCUR",
        }
    }
}

/// The integrator, as creditor.
#[derive(Debug, Clone)]
pub struct Creditor {
    pub name: String,
    pub iban: String,
    pub bic: Option<String>,
    /// The SEPA creditor identifier (ICS).
    pub ics: String,
}

/// One invoice to collect.
#[derive(Debug, Clone)]
pub struct Debit {
    pub invoice_number: String,
    pub customer_id: String,
    pub issue_date: NaiveDate,
    /// The requested collection date.
    pub due_date: NaiveDate,
    /// TTC, exact, positive, at most 2 decimals.
    pub amount: Decimal,
    pub debtor_name: String,
    pub iban: String,
    pub bic: Option<String>,
    pub rum: String,
    pub mandate_date: NaiveDate,
    pub sequence: SequenceType,
    /// The mandate's account changed since its last collection (account.md
    /// §8): sent once with the amendment indicator.
    pub amendment: Option<Amendment>,
}

/// What changed under a mandate since its last collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amendment {
    /// Another account at the same bank: the original IBAN.
    OriginalIban(String),
    /// Another bank: `SMNDA` as the original debtor agent.
    NewBank,
}

impl Amendment {
    /// As the ledger keeps it.
    pub fn stored(&self) -> String {
        match self {
            Amendment::OriginalIban(iban) => iban.clone(),
            Amendment::NewBank => "SMNDA".to_string(),
        }
    }
    pub fn from_stored(text: &str) -> Amendment {
        match text {
            "SMNDA" => Amendment::NewBank,
            iban => Amendment::OriginalIban(iban.to_string()),
        }
    }
}

/// Everything one file says.
#[derive(Debug, Clone)]
pub struct DebitFile {
    pub format: Format,
    /// `<prefix>-SDD-<YYYYMM>`.
    pub message_id: String,
    pub created: NaiveDate,
    pub creditor: Creditor,
    /// In invoice number order.
    pub debits: Vec<Debit>,
}

/// The message id of a month's file: the invoice prefix and the month.
pub fn message_id(prefix: &str, month: Month) -> String {
    format!("{prefix}-SDD-{}", month.to_string().replace('-', ""))
}

/// An amount as the file writes it: exactly 2 decimals.
fn amount_text(amount: Decimal) -> String {
    format!("{:.2}", amount)
}

/// Writes elements one event at a time.
struct Xml {
    writer: quick_xml::Writer<Vec<u8>>,
    format: Format,
}

impl Xml {
    fn start(&mut self, name: &str) -> std::io::Result<()> {
        self.writer.write_event(Event::Start(BytesStart::new(name)))
    }
    fn end(&mut self, name: &str) -> std::io::Result<()> {
        self.writer.write_event(Event::End(BytesEnd::new(name)))
    }
    /// `<name>text</name>`, the text escaped.
    fn leaf(&mut self, name: &str, text: &str) -> std::io::Result<()> {
        self.leaf_with(BytesStart::new(name), text)
    }
    fn leaf_with(&mut self, start: BytesStart<'_>, text: &str) -> std::io::Result<()> {
        let end = BytesEnd::new(String::from_utf8_lossy(start.name().as_ref()).into_owned());
        self.writer.write_event(Event::Start(start))?;
        self.writer
            .write_event(Event::Text(BytesText::from_escaped(partial_escape(text))))?;
        self.writer.write_event(Event::End(end))
    }
    /// `<outer><inner>…</inner></outer>` for a chain of single children.
    fn path(&mut self, names: &[&str], text: &str) -> std::io::Result<()> {
        let (last, outer) = names.split_last().expect("a path of at least one element");
        for name in outer {
            self.start(name)?;
        }
        self.leaf(last, text)?;
        for name in outer.iter().rev() {
            self.end(name)?;
        }
        Ok(())
    }
    /// A financial institution by BIC, or `NOTPROVIDED` when the BIC is
    /// unknown (EPC: the BIC is optional within the EEA).
    fn agent(&mut self, element: &str, bic: Option<&str>) -> std::io::Result<()> {
        self.start(element)?;
        match bic {
            Some(bic) => self.path(&["FinInstnId", self.format.bic_element()], bic)?,
            None => self.path(&["FinInstnId", "Othr", "Id"], "NOTPROVIDED")?,
        }
        self.end(element)
    }
}

/// The file's bytes: UTF-8 XML, indented by 2 spaces, ending with a newline.
pub fn write_xml(file: &DebitFile) -> std::io::Result<Vec<u8>> {
    let mut x = Xml {
        writer: quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2),
        format: file.format,
    };
    x.writer
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let namespace = file.format.namespace();
    x.writer.write_event(Event::Start(
        BytesStart::new("Document").with_attributes([("xmlns", namespace.as_str())]),
    ))?;
    x.start("CstmrDrctDbtInitn")?;

    let total: Decimal = file.debits.iter().map(|d| d.amount).sum();
    let creditor_name = sepa_text(&file.creditor.name, NAME_MAX);
    x.start("GrpHdr")?;
    x.leaf("MsgId", &file.message_id)?;
    x.leaf("CreDtTm", &format!("{}T00:00:00", file.created))?;
    x.leaf("NbOfTxs", &file.debits.len().to_string())?;
    x.leaf("CtrlSum", &amount_text(total))?;
    x.path(&["InitgPty", "Nm"], &creditor_name)?;
    x.end("GrpHdr")?;

    let mut groups: BTreeMap<(NaiveDate, SequenceType), Vec<&Debit>> = BTreeMap::new();
    for debit in &file.debits {
        groups
            .entry((debit.due_date, debit.sequence))
            .or_default()
            .push(debit);
    }
    for ((date, sequence), debits) in &groups {
        x.start("PmtInf")?;
        x.leaf(
            "PmtInfId",
            &format!(
                "{}-{}-{}",
                file.message_id,
                sequence.code(),
                date.format("%Y%m%d")
            ),
        )?;
        x.leaf("PmtMtd", "DD")?;
        x.leaf("NbOfTxs", &debits.len().to_string())?;
        x.leaf(
            "CtrlSum",
            &amount_text(debits.iter().map(|d| d.amount).sum()),
        )?;
        x.start("PmtTpInf")?;
        x.path(&["SvcLvl", "Cd"], "SEPA")?;
        x.path(&["LclInstrm", "Cd"], "CORE")?;
        x.leaf("SeqTp", sequence.code())?;
        x.end("PmtTpInf")?;
        x.leaf("ReqdColltnDt", &date.to_string())?;
        x.path(&["Cdtr", "Nm"], &creditor_name)?;
        x.path(&["CdtrAcct", "Id", "IBAN"], &file.creditor.iban)?;
        x.agent("CdtrAgt", file.creditor.bic.as_deref())?;
        x.leaf("ChrgBr", "SLEV")?;
        x.start("CdtrSchmeId")?;
        x.start("Id")?;
        x.start("PrvtId")?;
        x.start("Othr")?;
        x.leaf("Id", &file.creditor.ics)?;
        x.path(&["SchmeNm", "Prtry"], "SEPA")?;
        x.end("Othr")?;
        x.end("PrvtId")?;
        x.end("Id")?;
        x.end("CdtrSchmeId")?;
        for debit in debits {
            x.start("DrctDbtTxInf")?;
            x.path(&["PmtId", "EndToEndId"], &debit.invoice_number)?;
            x.leaf_with(
                BytesStart::new("InstdAmt").with_attributes([("Ccy", "EUR")]),
                &amount_text(debit.amount),
            )?;
            x.start("DrctDbtTx")?;
            x.start("MndtRltdInf")?;
            x.leaf("MndtId", &debit.rum)?;
            x.leaf("DtOfSgntr", &debit.mandate_date.to_string())?;
            if let Some(amendment) = &debit.amendment {
                x.leaf("AmdmntInd", "true")?;
                x.start("AmdmntInfDtls")?;
                match amendment {
                    Amendment::OriginalIban(iban) => {
                        x.path(&["OrgnlDbtrAcct", "Id", "IBAN"], iban)?
                    }
                    Amendment::NewBank => {
                        x.path(&["OrgnlDbtrAgt", "FinInstnId", "Othr", "Id"], "SMNDA")?
                    }
                }
                x.end("AmdmntInfDtls")?;
            }
            x.end("MndtRltdInf")?;
            x.end("DrctDbtTx")?;
            x.agent("DbtrAgt", debit.bic.as_deref())?;
            let name = match sepa_text(&debit.debtor_name, NAME_MAX) {
                name if name.is_empty() => debit.customer_id.clone(),
                name => name,
            };
            x.path(&["Dbtr", "Nm"], &name)?;
            x.path(&["DbtrAcct", "Id", "IBAN"], &debit.iban)?;
            x.path(
                &["RmtInf", "Ustrd"],
                &sepa_text(
                    &format!(
                        "Facture {} du {}",
                        debit.invoice_number,
                        debit.issue_date.format("%d/%m/%Y")
                    ),
                    REMITTANCE_MAX,
                ),
            )?;
            x.end("DrctDbtTxInf")?;
        }
        x.end("PmtInf")?;
    }
    x.end("CstmrDrctDbtInitn")?;
    x.end("Document")?;
    let mut bytes = x.writer.into_inner();
    bytes.write_all(b"\n")?;
    Ok(bytes)
}

// ---- FRST or RCUR: the ledger -------------------------------------------------

fn ledger_error(e: rusqlite::Error) -> SepaError {
    SepaError::Ledger(e.to_string())
}

/// The first month a file collected each mandate (RUM) of a creditor
/// identifier, as the ledger records it.
pub fn first_collections(ledger: &Ledger, ics: &str) -> Result<HashMap<String, String>, SepaError> {
    let connection = ledger.connection();
    let mut statement = connection
        .prepare("SELECT rum, first_month FROM sepa_mandates WHERE ics = ?1")
        .map_err(ledger_error)?;
    let rows = statement
        .query_map(params![ics], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(ledger_error)?;
    rows.collect::<Result<HashMap<_, _>, _>>()
        .map_err(ledger_error)
}

/// The sequence type of a collection under mandate `rum` in `month`: FRST
/// unless a file of an earlier month collected it (`first_collections`).
pub fn sequence_type(first: &HashMap<String, String>, rum: &str, month: Month) -> SequenceType {
    match first.get(rum) {
        Some(first) if *first < month.to_string() => SequenceType::Recurrent,
        _ => SequenceType::First,
    }
}

/// Records that the month's file collects these mandates: a mandate seen
/// for the first time, or in a month before the one recorded, gets this
/// month as its first.
pub fn record_collected(
    ledger: &Ledger,
    ics: &str,
    month: Month,
    debits: &[Debit],
) -> Result<(), SepaError> {
    let connection = ledger.connection();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let month = month.to_string();
    let tx = connection.unchecked_transaction().map_err(ledger_error)?;
    for debit in debits {
        tx.execute(
            "INSERT INTO sepa_mandates (ics, rum, first_month, first_invoice, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (ics, rum) DO UPDATE SET
                 first_month = excluded.first_month,
                 first_invoice = excluded.first_invoice,
                 recorded_at = excluded.recorded_at
             WHERE excluded.first_month < sepa_mandates.first_month",
            params![ics, debit.rum, month, debit.invoice_number, now],
        )
        .map_err(ledger_error)?;
    }
    tx.commit().map_err(ledger_error)
}

// ---- the stage ----------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum SepaError {
    #[error("month {month} is not billed: run `mvnobill bill --month {month}` (or `mvnobill run --month {month}`) first")]
    NotIssued { month: String },
    #[error("{path}: no {key}, needed for the SEPA direct-debit file")]
    Integrator { path: String, key: &'static str },
    #[error("invoice {invoice} (customer {customer}) is paid by SEPA_DD but {message}")]
    Debit {
        invoice: String,
        customer: String,
        message: String,
    },
    #[error(transparent)]
    IntegratorFile(#[from] IntegratorError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    LedgerFile(#[from] LedgerError),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("sepa: reading the invoices failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("sepa: cannot write the XML: {0}")]
    Xml(#[from] std::io::Error),
    #[error("month {month}'s SEPA file was never written and {later} is issued: its invoices are carried into {later}'s amount to pay and collected by the file of {later}")]
    Carried { month: String, later: String },
}

/// What `sepa` did.
#[derive(Debug, Default, Serialize)]
pub struct SepaReport {
    pub month: String,
    pub format: String,
    /// The file's URL; None when no invoice is to be collected (a file
    /// without a transaction is not valid).
    pub file: Option<String>,
    pub message_id: String,
    pub transactions: u64,
    /// The sum of the amounts, exact.
    pub control_sum: Decimal,
    /// Transactions by sequence type.
    pub first: u64,
    pub recurrent: u64,
    /// The requested collection dates.
    pub collection_dates: Vec<String>,
    /// Invoices paid by SEPA_DD with nothing to collect (amount to pay of
    /// zero or less, paid since, or held by a dunned return).
    pub not_collected: Vec<String>,
    /// Invoices of customers a returned debit moved to transfer.
    pub on_transfer: Vec<String>,
    /// Invoices whose mandate has lapsed (unused for 36 months).
    pub lapsed: Vec<String>,
    /// Debits sent with the amendment indicator.
    pub amendments: u64,
    /// The refunds file (pain.001), when a credit is refunded.
    pub refunds_file: Option<String>,
    pub refunds: u64,
    pub refunds_sum: Decimal,
    /// Customers with a credit above the threshold but no IBAN: carried.
    pub refunds_without_iban: Vec<String>,
    /// False when the file was there already with the same bytes.
    pub written: bool,
}

impl std::fmt::Display for SepaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            None => write!(
                f,
                "sepa {}: no invoice to collect by direct debit, no file",
                self.month
            )?,
            Some(file) => {
                write!(
                    f,
                    "sepa {}: {} direct debits ({} FRST, {} RCUR), control sum {} EUR, collected on {}, in {} ({}, {})",
                    self.month,
                    self.transactions,
                    self.first,
                    self.recurrent,
                    self.control_sum,
                    self.collection_dates.join(", "),
                    file,
                    self.format,
                    if self.written { "written" } else { "unchanged" }
                )?;
            }
        }
        if !self.not_collected.is_empty() {
            write!(
                f,
                "; not collected (nothing to pay): {}",
                self.not_collected.join(", ")
            )?;
        }
        if !self.on_transfer.is_empty() {
            write!(f, "; on transfer: {}", self.on_transfer.join(", "))?;
        }
        if !self.lapsed.is_empty() {
            write!(
                f,
                "; mandate lapsed (unused 36 months), not collected: {}",
                self.lapsed.join(", ")
            )?;
        }
        if self.amendments > 0 {
            write!(f, "; {} with a mandate amendment", self.amendments)?;
        }
        if let Some(file) = &self.refunds_file {
            write!(
                f,
                "; {} refunds, {} EUR, in {file}",
                self.refunds, self.refunds_sum
            )?;
        }
        if !self.refunds_without_iban.is_empty() {
            write!(
                f,
                "; credit carried, no IBAN to refund: {}",
                self.refunds_without_iban.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The key of a month's SEPA file in the lake: the contract's
/// `sepa-YYYY-MM.xml` for pain.008.001.02, and beside it
/// `sepa-YYYY-MM.pain.008.001.08.xml` for the other version.
pub fn file_key(month: Month, format: Format) -> String {
    match format {
        Format::Pain00800102 => format!("documents/{month}/sepa-{month}.xml"),
        other => format!("documents/{month}/sepa-{month}.{}.xml", other.name()),
    }
}

/// One row of `sql/finance/sepa_debits.sql`, as text.
struct Row<'a> {
    columns: &'a std::collections::BTreeMap<String, usize>,
    values: Vec<String>,
}

impl Row<'_> {
    fn get(&self, column: &str) -> &str {
        self.columns
            .get(column)
            .map(|&i| self.values[i].as_str())
            .unwrap_or("")
    }
    fn optional(&self, column: &str) -> Option<String> {
        Some(self.get(column).trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }
}

/// The debit of one invoice row of `sepa_debits.sql` (its sequence type
/// still to decide: FRST), or None when its total is zero or less: such an
/// invoice is not collected.
fn read_debit(row: &Row<'_>) -> Result<Option<Debit>, SepaError> {
    let invoice = row.get("invoice_number");
    let customer = row.get("customer_id");
    let fail = |message: String| SepaError::Debit {
        invoice: invoice.to_string(),
        customer: customer.to_string(),
        message,
    };
    let date = |column: &str| {
        NaiveDate::parse_from_str(row.get(column), "%Y-%m-%d")
            .map_err(|_| fail(format!("its {column} '{}' is not a date", row.get(column))))
    };
    let amount: Decimal = row.get("amount_due").parse().map_err(|_| {
        fail(format!(
            "its amount_due '{}' is not a number",
            row.get("amount_due")
        ))
    })?;
    if amount <= Decimal::ZERO {
        return Ok(None);
    }
    if amount.round_dp(2) != amount || amount > Decimal::new(99_999_999_999, 2) {
        return Err(fail(format!(
            "its total {amount} is not an amount a direct debit can collect (2 decimals, at most 999999999.99)"
        )));
    }
    let mandate = |column: &str| {
        row.optional(column).ok_or_else(|| {
            fail(format!(
                "customers.csv has no {column} for the customer (its mandate)"
            ))
        })
    };
    let iban = compact_iban(&mandate("iban")?);
    let rum = mandate("mandate_rum")?;
    mandate("mandate_date")?;
    Ok(Some(Debit {
        invoice_number: invoice.to_string(),
        customer_id: customer.to_string(),
        issue_date: date("issue_date")?,
        due_date: date("due_date")?,
        amount,
        debtor_name: row.get("name").to_string(),
        iban,
        bic: row.optional("bic"),
        rum,
        mandate_date: date("mandate_date")?,
        sequence: SequenceType::First,
        amendment: None,
    }))
}

/// account.md §8: a mandate unused for 36 months has lapsed. `last_use`:
/// its last collection, or its signature when never collected.
pub fn lapsed(last_use: NaiveDate, on: NaiveDate) -> bool {
    last_use
        .checked_add_months(chrono::Months::new(36))
        .is_some_and(|lapse| on >= lapse)
}

/// The bank of an IBAN as far as the amendment rule needs it: the country
/// and the national bank code (France and Monaco: the 5-digit code banque;
/// the other SEPA countries by the length of their bank identifier).
pub fn bank_of(iban: &str) -> Option<String> {
    let iban = compact_iban(iban);
    let country = iban.get(0..2)?;
    let length = match country {
        "FR" | "MC" => 5,
        "DE" => 8,
        "BE" => 3,
        "ES" | "NL" | "PT" | "CH" => 4,
        "LU" => 3,
        "AT" => 5,
        "IT" | "SM" => 11, // CIN, ABI
        "GB" | "IE" => 10, // bank code and sort code
        _ => return None,
    };
    iban.get(4..4 + length)
        .map(|code| format!("{country}{code}"))
}

/// What a debit under a mandate last collected on `previous` (IBAN, BIC)
/// must say now that the account is `iban` (account.md §8): nothing when
/// it is the same account; the original IBAN when the bank is the same;
/// SMNDA when it changed (or cannot be told the same).
pub fn amendment(
    previous: (&str, Option<&str>),
    iban: &str,
    bic: Option<&str>,
) -> Option<Amendment> {
    let (old_iban, old_bic) = previous;
    if compact_iban(old_iban) == compact_iban(iban) {
        return None;
    }
    let same_bank = match (old_bic, bic) {
        (Some(a), Some(b)) if a.len() >= 8 && b.len() >= 8 => a[..8] == b[..8],
        _ => bank_of(old_iban).is_some() && bank_of(old_iban) == bank_of(iban),
    };
    Some(if same_bank {
        Amendment::OriginalIban(compact_iban(old_iban))
    } else {
        Amendment::NewBank
    })
}

/// A payment as `sepa_payments` keeps it.
struct Stored {
    end_to_end_id: String,
    kind: String,
    customer_id: String,
    issue_date: Option<String>,
    amount: String,
    payment_date: String,
    name: String,
    iban: String,
    bic: Option<String>,
    rum: Option<String>,
    mandate_date: Option<String>,
    amendment: Option<String>,
}

fn stored_payments(ledger: &Ledger, month: &str) -> Result<Vec<Stored>, SepaError> {
    let mut statement = ledger
        .connection()
        .prepare(
            "SELECT end_to_end_id, kind, customer_id, issue_date, amount,
                    payment_date, name, iban, bic, rum, mandate_date, amendment
             FROM sepa_payments WHERE month = ?1 ORDER BY end_to_end_id",
        )
        .map_err(ledger_error)?;
    let rows = statement
        .query_map(params![month], |r| {
            Ok(Stored {
                end_to_end_id: r.get(0)?,
                kind: r.get(1)?,
                customer_id: r.get(2)?,
                issue_date: r.get(3)?,
                amount: r.get(4)?,
                payment_date: r.get(5)?,
                name: r.get(6)?,
                iban: r.get(7)?,
                bic: r.get(8)?,
                rum: r.get(9)?,
                mandate_date: r.get(10)?,
                amendment: r.get(11)?,
            })
        })
        .map_err(ledger_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(ledger_error)
}

fn parse_date(text: &str) -> Result<NaiveDate, SepaError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| SepaError::Ledger(format!("date '{text}' in sepa_payments")))
}

fn parse_amount(text: &str) -> Result<Decimal, SepaError> {
    text.parse()
        .map_err(|_| SepaError::Ledger(format!("amount '{text}' in sepa_payments")))
}

impl Stored {
    fn debit(&self) -> Result<Debit, SepaError> {
        let missing = |what: &str| {
            SepaError::Ledger(format!(
                "sepa_payments {} has no {what}",
                self.end_to_end_id
            ))
        };
        Ok(Debit {
            invoice_number: self.end_to_end_id.clone(),
            customer_id: self.customer_id.clone(),
            issue_date: parse_date(
                self.issue_date
                    .as_deref()
                    .ok_or_else(|| missing("issue date"))?,
            )?,
            due_date: parse_date(&self.payment_date)?,
            amount: parse_amount(&self.amount)?,
            debtor_name: self.name.clone(),
            iban: self.iban.clone(),
            bic: self.bic.clone(),
            rum: self.rum.clone().ok_or_else(|| missing("mandate"))?,
            mandate_date: parse_date(
                self.mandate_date
                    .as_deref()
                    .ok_or_else(|| missing("mandate date"))?,
            )?,
            sequence: SequenceType::First,
            amendment: self.amendment.as_deref().map(Amendment::from_stored),
        })
    }
    fn refund(&self) -> Result<refunds::Refund, SepaError> {
        Ok(refunds::Refund {
            end_to_end_id: self.end_to_end_id.clone(),
            customer_id: self.customer_id.clone(),
            amount: parse_amount(&self.amount)?,
            execution_date: parse_date(&self.payment_date)?,
            creditor_name: self.name.clone(),
            iban: self.iban.clone(),
            bic: self.bic.clone(),
        })
    }
}

/// The refund's EndToEndId: the invoice prefix, RMB, the month and the
/// customer, at most the 35 characters of the field.
fn refund_id(prefix: &str, month: Month, customer: &str) -> String {
    let id = format!(
        "{prefix}-RMB-{}-{customer}",
        month.to_string().replace('-', "")
    );
    id.chars()
        .filter(|c| is_identifier_char(*c))
        .take(35)
        .collect()
}

/// Works out the month's payments the first time a file is asked for
/// (account.md §7-8) and records them with their account entries, in one
/// transaction: each invoice's debit of its amount to pay, and each credit
/// above `[billing] refund_threshold` refunded.
async fn work_out(
    stage: &Context,
    month: Month,
    integrator: &Integrator,
    reference: &Reference,
    report: &mut SepaReport,
) -> Result<(), SepaError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    let ctx = engine::session_with_pool(settings.memory_pool_bytes);
    reference.register(&ctx)?;
    let registered = engine::register_path(
        &ctx,
        lake,
        "invoices",
        &format!("{}/month={month}", datasets::INVOICES),
        None,
    )
    .await?;
    let rows = if registered {
        let table = engine::Rows::query(&ctx, &sqlfiles::SEPA_DEBITS).await?;
        table
            .rows
            .iter()
            .map(|values| Row {
                columns: table.columns(),
                values: values.clone(),
            })
            .map(|row| read_debit(&row).map(|d| (row.get("invoice_number").to_string(), d)))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };

    let connection = ledger.connection();
    let entries =
        crate::account::entries(connection).map_err(|e| SepaError::Ledger(e.to_string()))?;
    let presented = crate::account::representations(connection)
        .map_err(|e| SepaError::Ledger(e.to_string()))?;
    let open = crate::account::open_amounts(&entries, &presented, NaiveDate::MAX);
    // Every entry counts, a debit on its way (dated later) too.
    let balance = crate::account::balances_at(&entries, NaiveDate::MAX);
    // The customers a returned debit moved to transfer, while customers.csv
    // holds the mandate that came back.
    let on_transfer: HashMap<String, (String, String)> = {
        let mut statement = connection
            .prepare("SELECT customer_id, mandate_rum, since FROM transfer_customers")
            .map_err(ledger_error)?;
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .map_err(ledger_error)?;
        rows.collect::<Result<_, _>>().map_err(ledger_error)?
    };
    let ics = integrator.sepa_ics.clone().unwrap_or_default();
    let accounts: HashMap<String, (String, Option<String>, String)> = {
        let mut statement = connection
            .prepare("SELECT rum, iban, bic, last_collection FROM mandate_accounts WHERE ics = ?1")
            .map_err(ledger_error)?;
        let rows = statement
            .query_map(params![ics], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })
            .map_err(ledger_error)?;
        rows.collect::<Result<_, _>>().map_err(ledger_error)?
    };

    let mut debits = Vec::new();
    let mut issue_dates = HashMap::new();
    let mut presenting: Vec<(String, String, Decimal)> = Vec::new();
    for (invoice, debit) in rows {
        let Some(mut debit) = debit else {
            report.not_collected.push(invoice);
            continue;
        };
        // account.md §8: after the pre-notification, on a TARGET business day.
        debit.due_date = crate::core::calendar::collection_date(
            debit.issue_date,
            debit.due_date,
            settings.sepa_prenotification_days,
        );
        issue_dates.insert(debit.customer_id.clone(), debit.issue_date);
        if let Some((rum, since)) = on_transfer.get(&debit.customer_id) {
            if *rum == debit.rum && debit.mandate_date.to_string() <= *since {
                report.on_transfer.push(invoice);
                continue;
            }
        }
        let previous = accounts.get(&debit.rum);
        let last_use = previous
            .and_then(|(_, _, last)| NaiveDate::parse_from_str(last, "%Y-%m-%d").ok())
            .map_or(debit.mandate_date, |last| last.max(debit.mandate_date));
        if lapsed(last_use, debit.due_date) {
            report.lapsed.push(invoice);
            continue;
        }
        // account.md §7: the amount to pay, less what the customer paid
        // since (or what a debit already on its way collects), less the
        // returns that are dunned rather than presented again; a return of
        // insufficient funds not presented yet is carried by this debit.
        let customer_open: Vec<&crate::account::OpenAmount> = open
            .iter()
            .filter(|o| o.customer_id == debit.customer_id)
            .collect();
        let held: Decimal = customer_open
            .iter()
            .filter(|o| o.kind == crate::account::kind::RETURN && !o.presentable)
            .map(|o| o.open)
            .sum();
        let owed = balance
            .get(&debit.customer_id)
            .copied()
            .unwrap_or(debit.amount);
        let amount = debit.amount.min(owed) - held;
        if amount <= Decimal::ZERO {
            report.not_collected.push(invoice);
            continue;
        }
        debit.amount = amount;
        for o in customer_open.iter().filter(|o| o.presentable) {
            presenting.push((o.reference.clone(), debit.invoice_number.clone(), o.open));
        }
        debit.amendment = previous.and_then(|(iban, bic, _)| {
            amendment((iban, bic.as_deref()), &debit.iban, debit.bic.as_deref())
        });
        debits.push(debit);
    }
    // A mandate signed after the invoice it would collect is a mistake in
    // the customers table: say which row.
    reference.check_mandates_signed(&issue_dates)?;

    // Credits above the threshold, refunded on the day the debits are
    // collected (the month's first collection date).
    let mut refunds = Vec::new();
    if let Some(threshold) = settings.billing.refund_threshold {
        let issue_date = month.next_first_day();
        let due = issue_date + chrono::Duration::days(integrator.payment_terms_days as i64);
        let execution = crate::core::calendar::collection_date(
            issue_date,
            due,
            settings.sepa_prenotification_days,
        );
        let listed = reference.customer_accounts();
        let customers: HashMap<&str, &crate::reference::CustomerAccount> =
            listed.iter().map(|c| (c.customer_id.as_str(), c)).collect();
        // In customer order (the balances are).
        for (customer, credit) in balance.iter().filter(|(_, b)| -**b > threshold) {
            match customers
                .get(customer.as_str())
                .and_then(|c| c.iban.as_ref().map(|i| (c, i)))
            {
                Some((account, iban)) => refunds.push(refunds::Refund {
                    end_to_end_id: refund_id(&integrator.invoice_prefix, month, customer),
                    customer_id: customer.clone(),
                    amount: -*credit,
                    execution_date: execution,
                    creditor_name: account.name.clone(),
                    iban: compact_iban(iban),
                    bic: account.bic.clone(),
                }),
                None => report.refunds_without_iban.push(customer.clone()),
            }
        }
    }

    // One transaction: the payments as written, their account entries,
    // the returns they present again, the mandates' accounts.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let tx = connection.unchecked_transaction().map_err(ledger_error)?;
    for debit in &debits {
        tx.execute(
            "INSERT INTO sepa_payments (end_to_end_id, kind, month, customer_id, invoice_number,
                 issue_date, amount, payment_date, name, iban, bic, rum, mandate_date, amendment,
                 recorded_at)
             VALUES (?1, 'DEBIT', ?2, ?3, ?1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                debit.invoice_number,
                month_text,
                debit.customer_id,
                debit.issue_date.to_string(),
                format!("{:.2}", debit.amount),
                debit.due_date.to_string(),
                debit.debtor_name,
                debit.iban,
                debit.bic,
                debit.rum,
                debit.mandate_date.to_string(),
                debit.amendment.as_ref().map(Amendment::stored),
                now
            ],
        )
        .map_err(ledger_error)?;
        crate::core::ledger::insert_entry(
            &tx,
            &crate::core::ledger::AccountEntry {
                customer_id: debit.customer_id.clone(),
                entry_date: debit.due_date,
                kind: crate::account::kind::DIRECT_DEBIT.to_string(),
                reference: debit.invoice_number.clone(),
                amount: -debit.amount,
                due_date: Some(debit.due_date),
                document: Some(debit.invoice_number.clone()),
                reason: None,
                source: format!("sepa {month_text}"),
            },
        )
        .map_err(ledger_error)?;
        tx.execute(
            "INSERT INTO mandate_accounts (ics, rum, iban, bic, last_collection) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (ics, rum) DO UPDATE SET iban = excluded.iban, bic = excluded.bic,
                 last_collection = excluded.last_collection
             WHERE excluded.last_collection >= mandate_accounts.last_collection",
            params![ics, debit.rum, debit.iban, debit.bic, debit.due_date.to_string()],
        )
        .map_err(ledger_error)?;
    }
    for (returned, debit, amount) in &presenting {
        tx.execute(
            "INSERT INTO representations (return_reference, debit_reference, amount) VALUES (?1, ?2, ?3)
             ON CONFLICT (return_reference) DO NOTHING",
            params![returned, debit, format!("{amount:.2}")],
        )
        .map_err(ledger_error)?;
    }
    for refund in &refunds {
        tx.execute(
            "INSERT INTO sepa_payments (end_to_end_id, kind, month, customer_id, amount, payment_date,
                 name, iban, bic, recorded_at)
             VALUES (?1, 'REFUND', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                refund.end_to_end_id,
                month_text,
                refund.customer_id,
                format!("{:.2}", refund.amount),
                refund.execution_date.to_string(),
                refund.creditor_name,
                refund.iban,
                refund.bic,
                now
            ],
        )
        .map_err(ledger_error)?;
        crate::core::ledger::insert_entry(
            &tx,
            &crate::core::ledger::AccountEntry {
                customer_id: refund.customer_id.clone(),
                entry_date: refund.execution_date,
                kind: crate::account::kind::REFUND.to_string(),
                reference: refund.end_to_end_id.clone(),
                amount: refund.amount,
                due_date: None,
                document: None,
                reason: None,
                source: format!("sepa {month_text}"),
            },
        )
        .map_err(ledger_error)?;
    }
    tx.execute(
        "INSERT INTO sepa_months (month, recorded_at) VALUES (?1, ?2)",
        params![month_text, now],
    )
    .map_err(ledger_error)?;
    tx.commit().map_err(ledger_error)?;
    crate::account::write_dataset(connection, lake)
        .await
        .map_err(|e| SepaError::Ledger(e.to_string()))?;
    Ok(())
}

/// Writes the month's SEPA direct-debit file in the lake (unless the same
/// bytes are there) and its refunds file, and records its mandates' first
/// collections. The payments are worked out the first time and recorded
/// (`work_out`); a later run writes the same files from the record.
pub async fn sepa(stage: &Context, month: Month, format: Format) -> Result<SepaReport, SepaError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    if !ledger.is_issued(&month_text)? {
        return Err(SepaError::NotIssued { month: month_text });
    }
    let integrator = Integrator::load(&settings.integrator_path)?;
    let reference = Reference::load(&settings.reference_dir)?;
    let mut report = SepaReport {
        month: month_text.clone(),
        format: format.name().to_string(),
        message_id: message_id(&integrator.invoice_prefix, month),
        control_sum: Decimal::new(0, 2),
        ..Default::default()
    };
    let worked_out: bool = ledger
        .connection()
        .query_row(
            "SELECT COUNT(*) > 0 FROM sepa_months WHERE month = ?1",
            params![month_text],
            |r| r.get(0),
        )
        .map_err(ledger_error)?;
    if !worked_out {
        // account.md §7: an invoice of a month whose file was never written
        // is carried into the next issued month's amount to pay, and
        // collected by that month's file: never twice.
        if let Some(later) = ledger
            .issued_months()?
            .into_iter()
            .find(|m| *m > month_text)
        {
            return Err(SepaError::Carried {
                month: month_text,
                later,
            });
        }
        work_out(stage, month, &integrator, &reference, &mut report).await?;
    }
    let stored = stored_payments(ledger, &month_text)?;
    let mut debits = Vec::new();
    let mut refunds = Vec::new();
    for payment in &stored {
        match payment.kind.as_str() {
            "DEBIT" => debits.push(payment.debit()?),
            _ => refunds.push(payment.refund()?),
        }
    }

    let path = settings.integrator_path.display().to_string();
    let missing = |key| SepaError::Integrator {
        path: path.clone(),
        key,
    };
    if !refunds.is_empty() {
        let file = refunds::TransferFile {
            message_id: refunds::message_id(&integrator.invoice_prefix, month),
            created: month.next_first_day(),
            debtor_name: integrator.name.clone(),
            debtor_iban: compact_iban(
                integrator
                    .bank_iban
                    .as_deref()
                    .ok_or_else(|| missing("bank_iban"))?,
            ),
            debtor_bic: integrator.bank_bic.clone(),
            refunds,
        };
        let bytes = refunds::write_xml(&file)?;
        let key = refunds::file_key(month);
        if lake.get_if_exists(&key).await?.as_deref() != Some(bytes.as_slice()) {
            lake.put(&key, bytes).await?;
        }
        report.refunds_file = Some(lake.url().join(&key));
        report.refunds = file.refunds.len() as u64;
        report.refunds_sum = file.refunds.iter().map(|r| r.amount).sum();
    }
    if debits.is_empty() {
        return Ok(report);
    }

    let ics = integrator
        .sepa_ics
        .clone()
        .ok_or_else(|| missing("sepa_ics"))?;
    let creditor = Creditor {
        name: integrator.name.clone(),
        iban: compact_iban(
            integrator
                .bank_iban
                .as_deref()
                .ok_or_else(|| missing("bank_iban"))?,
        ),
        bic: integrator.bank_bic.clone(),
        ics: ics.clone(),
    };
    let first = first_collections(ledger, &ics)?;
    for debit in &mut debits {
        debit.sequence = sequence_type(&first, &debit.rum, month);
    }

    let file = DebitFile {
        format,
        message_id: report.message_id.clone(),
        created: debits
            .iter()
            .map(|d| d.issue_date)
            .max()
            .unwrap_or(month.next_first_day()),
        creditor,
        debits,
    };
    let bytes = write_xml(&file)?;
    let key = file_key(month, format);
    if lake.get_if_exists(&key).await?.as_deref() != Some(bytes.as_slice()) {
        lake.put(&key, bytes).await?;
        report.written = true;
    }
    record_collected(ledger, &ics, month, &file.debits)?;

    report.file = Some(lake.url().join(&key));
    report.transactions = file.debits.len() as u64;
    report.control_sum = file.debits.iter().map(|d| d.amount).sum();
    report.amendments = file.debits.iter().filter(|d| d.amendment.is_some()).count() as u64;
    report.first = file
        .debits
        .iter()
        .filter(|d| d.sequence == SequenceType::First)
        .count() as u64;
    report.recurrent = report.transactions - report.first;
    let mut dates: Vec<NaiveDate> = file.debits.iter().map(|d| d.due_date).collect();
    dates.sort();
    dates.dedup();
    report.collection_dates = dates.iter().map(NaiveDate::to_string).collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn debit(number: &str, rum: &str, amount: &str, sequence: SequenceType) -> Debit {
        Debit {
            invoice_number: number.to_string(),
            customer_id: "C1".to_string(),
            issue_date: date("2026-11-01"),
            due_date: date("2026-11-16"),
            amount: amount.parse().unwrap(),
            debtor_name: "Zoë O'Brien & Fils <SARL>".to_string(),
            iban: "FR7630006000011234567890189".to_string(),
            bic: None,
            rum: rum.to_string(),
            mandate_date: date("2025-06-01"),
            sequence,
            amendment: None,
        }
    }

    #[test]
    fn text_is_folded_to_the_sepa_latin_set() {
        assert_eq!(sepa_text("Élodie Müller", 70), "Elodie Muller");
        assert_eq!(sepa_text("Zoë O'Brien", 70), "Zoe O'Brien");
        assert_eq!(sepa_text("SARL Dupont & Fils", 70), "SARL Dupont + Fils");
        assert_eq!(
            sepa_text("EURL Café \"Le Port\"", 70),
            "EURL Cafe 'Le Port'"
        );
        assert_eq!(
            sepa_text("SAS Bâtiments <Ouest>", 70),
            "SAS Batiments (Ouest)"
        );
        assert_eq!(
            sepa_text("Œuvre  Cœur;  Straße", 70),
            "OEuvre Coeur, Strasse"
        );
        assert_eq!(sepa_text("東京 Ltd", 70), "Ltd");
        assert_eq!(sepa_text(&"é".repeat(80), 70), "e".repeat(70));
        assert_eq!(sepa_text("ab cd", 3), "ab");
    }

    fn file(debits: Vec<Debit>) -> DebitFile {
        DebitFile {
            format: Format::Pain00800102,
            message_id: message_id("EXM", "2026-10".parse().unwrap()),
            created: date("2026-11-01"),
            creditor: Creditor {
                name: "Telco Exemple SAS".to_string(),
                iban: "FR7630006000011234567890189".to_string(),
                bic: Some("AGRIFRPPXXX".to_string()),
                ics: "FR72ZZZ123456".to_string(),
            },
            debits,
        }
    }

    #[test]
    fn one_payment_block_per_date_and_sequence_type() {
        let mut later = debit("EXM-2026-000003", "RUM-3", "0.10", SequenceType::First);
        later.due_date = date("2026-11-20");
        let xml = write_xml(&file(vec![
            debit("EXM-2026-000001", "RUM-1", "83.86", SequenceType::First),
            debit("EXM-2026-000002", "RUM-2", "12.5", SequenceType::Recurrent),
            later,
        ]))
        .unwrap();
        let xml = String::from_utf8(xml).unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.008.001.02\">"), "{xml}");
        assert!(xml.contains("<MsgId>EXM-SDD-202610</MsgId>"), "{xml}");
        assert!(
            xml.contains("<CreDtTm>2026-11-01T00:00:00</CreDtTm>"),
            "{xml}"
        );
        assert!(xml.contains("<CtrlSum>96.46</CtrlSum>"), "{xml}");
        assert!(
            xml.contains("<InstdAmt Ccy=\"EUR\">12.50</InstdAmt>"),
            "{xml}"
        );
        assert!(xml.contains("<Nm>Zoe O'Brien + Fils (SARL)</Nm>"), "{xml}");
        assert!(
            xml.contains("<Ustrd>Facture EXM-2026-000001 du 01/11/2026</Ustrd>"),
            "{xml}"
        );
        assert!(xml.contains("<Id>NOTPROVIDED</Id>"), "{xml}");
        let blocks: Vec<&str> = xml
            .match_indices("<PmtInfId>")
            .map(|(i, _)| &xml[i + 10..i + 10 + 34])
            .collect();
        assert_eq!(
            blocks,
            [
                "EXM-SDD-202610-FRST-20261116</PmtI",
                "EXM-SDD-202610-RCUR-20261116</PmtI",
                "EXM-SDD-202610-FRST-20261120</PmtI"
            ]
        );
        assert!(xml.ends_with("</Document>\n"));
    }

    #[test]
    fn a_mandate_lapses_after_36_months_unused() {
        assert!(!lapsed(date("2023-11-16"), date("2026-11-15")));
        assert!(lapsed(date("2023-11-16"), date("2026-11-16")));
        assert!(lapsed(date("2023-10-01"), date("2026-12-16")));
        assert!(!lapsed(date("2026-10-01"), date("2026-12-16")));
    }

    #[test]
    fn an_account_changed_under_a_mandate_says_the_original_iban_or_smnda() {
        let old = "FR7630004000010001111111177";
        // Same account: nothing.
        assert_eq!(
            amendment((old, None), "FR76 3000 4000 0100 0111 1111 177", None),
            None
        );
        // Same bank by its code (30004), no BIC.
        assert_eq!(
            amendment((old, None), "FR7630004000010002222222245", None),
            Some(Amendment::OriginalIban(old.to_string()))
        );
        // Another bank by its BIC8, whatever the IBAN says.
        assert_eq!(
            amendment(
                (old, Some("BNPAFRPPXXX")),
                "FR7630004000010002222222245",
                Some("AGRIFRPPXXX")
            ),
            Some(Amendment::NewBank)
        );
        // Another bank code, or a country whose code we do not read.
        assert_eq!(
            amendment((old, None), "FR7630006000011234567890189", None),
            Some(Amendment::NewBank)
        );
        assert_eq!(
            bank_of("DE89370400440532013000").as_deref(),
            Some("DE37040044")
        );
        assert_eq!(bank_of("XX0012345"), None);
    }

    #[test]
    fn amounts_to_pay_of_zero_or_less_are_not_collected() {
        let names = [
            "invoice_number",
            "customer_id",
            "issue_date",
            "due_date",
            "amount_due",
            "name",
            "iban",
            "bic",
            "mandate_rum",
            "mandate_date",
        ];
        let columns: std::collections::BTreeMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect();
        let row = |total: &str, iban: &str| Row {
            columns: &columns,
            values: [
                "EXM-2026-000007",
                "C7",
                "2026-11-01",
                "2026-11-16",
                total,
                "Jean Dupont",
                iban,
                "",
                "RUM-7",
                "2025-06-01",
            ]
            .map(str::to_string)
            .to_vec(),
        };
        let iban = "FR76 3000 6000 0112 3456 7890 189";
        assert!(read_debit(&row("0.00", iban)).unwrap().is_none());
        assert!(read_debit(&row("-12.40", iban)).unwrap().is_none());
        let debit = read_debit(&row("0.01", iban)).unwrap().unwrap();
        assert_eq!(debit.amount, Decimal::new(1, 2));
        assert_eq!(debit.iban, "FR7630006000011234567890189");
        assert_eq!(debit.bic, None);
        assert_eq!(debit.due_date, date("2026-11-16"));
        assert_eq!(
            read_debit(&row("10.00", "")).unwrap_err().to_string(),
            "invoice EXM-2026-000007 (customer C7) is paid by SEPA_DD but customers.csv has no iban for the customer (its mandate)"
        );
        assert!(read_debit(&row("1.005", iban)).is_err());
    }

    #[test]
    fn version_08_differs_by_its_namespace_and_bicfi() {
        let debits = vec![debit(
            "EXM-2026-000001",
            "RUM-1",
            "83.86",
            SequenceType::First,
        )];
        let mut eight = file(debits.clone());
        eight.format = Format::Pain00800108;
        let two = String::from_utf8(write_xml(&file(debits)).unwrap()).unwrap();
        let eight = String::from_utf8(write_xml(&eight).unwrap()).unwrap();
        assert_eq!(
            two.replace("pain.008.001.02", "pain.008.001.08")
                .replace("<BIC>AGRIFRPPXXX</BIC>", "<BICFI>AGRIFRPPXXX</BICFI>"),
            eight
        );
        assert_eq!(
            file_key("2026-10".parse().unwrap(), Format::Pain00800108),
            "documents/2026-10/sepa-2026-10.pain.008.001.08.xml"
        );
    }

    #[test]
    fn a_mandate_is_first_in_its_first_month_then_recurrent() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let october: Month = "2026-10".parse().unwrap();
        let november: Month = "2026-11".parse().unwrap();
        let september: Month = "2026-09".parse().unwrap();
        let ics = "FR72ZZZ123456";
        let first =
            |month| sequence_type(&first_collections(&ledger, ics).unwrap(), "RUM-1", month);
        assert_eq!(first(october), SequenceType::First);
        record_collected(
            &ledger,
            ics,
            october,
            &[debit("EXM-2026-000001", "RUM-1", "1", SequenceType::First)],
        )
        .unwrap();
        // A re-run of October says FRST again; November is RCUR.
        assert_eq!(first(october), SequenceType::First);
        assert_eq!(first(november), SequenceType::Recurrent);
        // Another creditor identifier, another mandate.
        let other = first_collections(&ledger, "DE98ZZZ09999999999").unwrap();
        assert_eq!(
            sequence_type(&other, "RUM-1", november),
            SequenceType::First
        );
        // November's file recorded after October's changes nothing.
        record_collected(
            &ledger,
            ics,
            november,
            &[debit(
                "EXM-2026-000040",
                "RUM-1",
                "1",
                SequenceType::Recurrent,
            )],
        )
        .unwrap();
        assert_eq!(first(october), SequenceType::First);
        assert_eq!(first(november), SequenceType::Recurrent);
        // A file of an earlier month makes that month the first.
        record_collected(
            &ledger,
            ics,
            september,
            &[debit("EXM-2026-000001", "RUM-1", "1", SequenceType::First)],
        )
        .unwrap();
        assert_eq!(first(september), SequenceType::First);
        assert_eq!(first(october), SequenceType::Recurrent);
    }
}
