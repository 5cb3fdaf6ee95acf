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

use crate::core::identifiers::{compact_iban, is_identifier_char};
use crate::core::lake::{datasets, LakeError};
use crate::core::ledger::{Ledger, LedgerError};
use crate::core::month::Month;
use crate::engine;
use crate::engine::sqlfiles;
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::reference::{Reference, ReferenceError};
use crate::stages::Context;

// ---- text -------------------------------------------------------------------

/// Letters with their accent taken off (Latin-1 and Latin Extended-A).
const FOLDS: &[(&str, &str)] = &[
    ("àáâãäåāăą", "a"),
    ("ÀÁÂÃÄÅĀĂĄ", "A"),
    ("æ", "ae"),
    ("Æ", "AE"),
    ("çćĉċč", "c"),
    ("ÇĆĈĊČ", "C"),
    ("ďđð", "d"),
    ("ĎĐÐ", "D"),
    ("èéêëēĕėęě", "e"),
    ("ÈÉÊËĒĔĖĘĚ", "E"),
    ("ĝğġģ", "g"),
    ("ĜĞĠĢ", "G"),
    ("ĥħ", "h"),
    ("ĤĦ", "H"),
    ("ìíîïĩīĭįı", "i"),
    ("ÌÍÎÏĨĪĬĮİ", "I"),
    ("ĵ", "j"),
    ("Ĵ", "J"),
    ("ķ", "k"),
    ("Ķ", "K"),
    ("ĺļľŀł", "l"),
    ("ĹĻĽĿŁ", "L"),
    ("ñńņňŉ", "n"),
    ("ÑŃŅŇ", "N"),
    ("òóôõöøōŏő", "o"),
    ("ÒÓÔÕÖØŌŎŐ", "O"),
    ("œ", "oe"),
    ("Œ", "OE"),
    ("ŕŗř", "r"),
    ("ŔŖŘ", "R"),
    ("śŝşš", "s"),
    ("ŚŜŞŠ", "S"),
    ("ß", "ss"),
    ("ţťŧ", "t"),
    ("ŢŤŦ", "T"),
    ("þ", "th"),
    ("Þ", "TH"),
    ("ùúûüũūŭůűų", "u"),
    ("ÙÚÛÜŨŪŬŮŰŲ", "U"),
    ("ŵ", "w"),
    ("Ŵ", "W"),
    ("ýÿŷ", "y"),
    ("ÝŸŶ", "Y"),
    ("źżž", "z"),
    ("ŹŻŽ", "Z"),
    // Signs outside the set, replaced by the nearest one inside it.
    ("&", "+"),
    ("\"«»“”‘’`´", "'"),
    ("<[{", "("),
    (">]}", ")"),
    (";", ","),
    ("_–—", "-"),
    ("!", "."),
];

/// `text` in the SEPA Latin character set, spaces collapsed, cut to `max`
/// characters. A character with no counterpart becomes a space.
pub fn sepa_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_identifier_char(c) {
            out.push(c);
        } else if let Some((_, to)) = FOLDS.iter().find(|(from, _)| from.contains(c)) {
            out.push_str(to);
        } else {
            out.push(' ');
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

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
    /// Invoices paid by SEPA_DD with a total of zero or less: not collected.
    pub not_collected: Vec<String>,
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
                "; not collected (total ≤ 0): {}",
                self.not_collected.join(", ")
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
    let amount: Decimal = row.get("total_ttc").parse().map_err(|_| {
        fail(format!(
            "its total_ttc '{}' is not a number",
            row.get("total_ttc")
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
    }))
}

/// Writes the month's SEPA direct-debit file in the lake (unless the same
/// bytes are there) and records its mandates' first collections.
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
    if !registered {
        return Ok(report);
    }
    let table = engine::Rows::query(&ctx, &sqlfiles::SEPA_DEBITS).await?;
    let rows: Vec<Row> = table
        .rows
        .iter()
        .map(|values| Row {
            columns: table.columns(),
            values: values.clone(),
        })
        .collect();
    if rows.is_empty() {
        return Ok(report);
    }

    let mut debits = Vec::with_capacity(rows.len());
    let mut issue_dates = HashMap::new();
    for row in &rows {
        match read_debit(row)? {
            None => report
                .not_collected
                .push(row.get("invoice_number").to_string()),
            Some(mut debit) => {
                // account.md §8: after the pre-notification, on a TARGET
                // business day.
                debit.due_date = crate::core::calendar::collection_date(
                    debit.issue_date,
                    debit.due_date,
                    settings.sepa_prenotification_days,
                );
                issue_dates.insert(debit.customer_id.clone(), debit.issue_date);
                debits.push(debit);
            }
        }
    }
    // A mandate signed after the invoice it would collect is a mistake in
    // the customers table: say which row.
    reference.check_mandates_signed(&issue_dates)?;
    if debits.is_empty() {
        return Ok(report);
    }

    let path = settings.integrator_path.display().to_string();
    let missing = |key| SepaError::Integrator {
        path: path.clone(),
        key,
    };
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
    fn invoices_of_zero_or_less_are_not_collected() {
        let names = [
            "invoice_number",
            "customer_id",
            "issue_date",
            "due_date",
            "total_ttc",
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
