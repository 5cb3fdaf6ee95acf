//! `payments import FILE`: the bank's notifications, statements and status
//! reports put on the customers' accounts (account.md §7 "Payments" and
//! "Returns"), in one ledger transaction per file.
//!
//! - Each transaction of the file (`account::bankfiles`) goes into the
//!   ledger's `bank_entries` once, by the bank's reference: a file imported
//!   again changes nothing ("already imported"). An entry left unmatched by
//!   an earlier import is tried again (a customer's IBAN added to
//!   `customers.csv`, a debit recorded since): that is how it gets settled.
//! - A transfer received is matched to an invoice by an invoice number in
//!   its remittance information (`EXM-2026-000042`, spaces or no dashes
//!   accepted), else to a customer by a `customer_id` there, else by the
//!   debtor's IBAN in `customers.csv` (one customer only: an IBAN two
//!   customers share matches neither). Matched: a TRANSFER entry (−amount,
//!   dated the booking date, `document` the invoice named). The account
//!   settles the oldest open amounts first (`account::open_amounts`), so a
//!   partial payment is just a smaller transfer.
//! - A direct debit returned or rejected names the debit by its
//!   `EndToEndId`: the DIRECT_DEBIT entry `sepa` recorded under it. Matched:
//!   a RETURN entry (+amount, dated the day the bank reported it, `document`
//!   the EndToEndId, `reason` its code), then by reason: `[billing]
//!   return_fee` (when above 0) raised as a charge for the next invoice
//!   (`account_charges`); AM04/MS03 presented again by the next debit
//!   (`sepa`), MS02/MD06 dunned; any other code moves the customer to
//!   transfer (`transfer_customers`) while `customers.csv` holds the
//!   mandate that was returned. A debit returned twice (a rejection and a
//!   return of the same EndToEndId) is taken once: the second stays
//!   unmatched, for the finance team to look at.
//! - Anything else (no match, a debit that is not a return) is kept with
//!   the status UNMATCHED and listed by every import and by `payments
//!   unmatched` until it matches.
//!
//! The report adds up: the file's total = matched transfers + returns +
//! unmatched, to the cent, whether its entries are new or were imported
//! before. No IBAN goes into the ledger, a report or a message: an IBAN a
//! payer wrote in the remittance text is masked too.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::account::bankfiles::{self, BankFile, BankFileError, BankTransaction, Movement};
use crate::account::{kind, moves_to_transfer, AccountEntry, AccountError};
use crate::core::identifiers::iban_is_valid;
use crate::documents::document::mask_iban;
use crate::reference::{Reference, ReferenceError};
use crate::stages::Context;

/// `bank_entries.status`: put on an account.
pub const MATCHED: &str = "MATCHED";
/// `bank_entries.status`: kept, listed until it matches.
pub const UNMATCHED: &str = "UNMATCHED";

/// The label of the return fee's charge line (account.md §7).
pub const RETURN_FEE_LABEL: &str = "Frais de rejet de prélèvement";

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error(transparent)]
    BankFile(#[from] BankFileError),
    #[error("bank file {file}: the reference {reference} is there twice: a bank reference names one transaction")]
    Twice { file: String, reference: String },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("ledger: {0}")]
    Ledger(#[from] rusqlite::Error),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// A count and its sum (euros, 2 decimals).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: u64,
    pub amount: String,
}

impl Tally {
    fn of(items: &[Decimal]) -> Tally {
        Tally {
            count: items.len() as u64,
            amount: money(items.iter().sum()),
        }
    }
}

/// The returns of one reason code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonTally {
    pub reason: String,
    pub count: u64,
    pub amount: String,
}

/// A bank entry that matched nothing, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmatchedEntry {
    pub reference: String,
    pub file: String,
    pub booking_date: String,
    /// TRANSFER, RETURN or OTHER (`bankfiles::Movement`).
    pub kind: String,
    pub amount: String,
    /// The remittance text, IBANs masked.
    pub remittance: String,
    pub debtor_name: Option<String>,
    /// A return's reason code, and the debit it names.
    pub reason: Option<String>,
    pub document: Option<String>,
}

/// What `payments import` did with a file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub file: String,
    /// `camt.054.001.02`, `pain.002.001.03`, …
    pub message: String,
    /// Transactions read (booked entries, rejections).
    pub transactions: u64,
    /// Entries not booked, statuses other than a rejection: not taken.
    pub skipped: u64,
    pub new: u64,
    pub already_imported: u64,
    /// Unmatched by an earlier import, matched by this one.
    pub matched_now: u64,
    /// The sum of the file's transactions: = transfers + returns +
    /// unmatched.
    pub total: String,
    /// Transfers put on an account.
    pub transfers: Tally,
    /// Direct debits returned, put back on an account, by reason code.
    pub returns: Vec<ReasonTally>,
    pub returns_total: Tally,
    /// The file's transactions that matched nothing.
    pub unmatched: Tally,
    /// Return fees raised by this import (HT).
    pub fees: Tally,
    /// Customers moved to transfer by this import.
    pub moved_to_transfer: Vec<String>,
    /// Every unmatched entry the ledger holds, this file's and earlier
    /// ones'.
    pub unmatched_entries: Vec<UnmatchedEntry>,
}

/// `payments unmatched`: what the ledger holds unmatched.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnmatchedReport {
    pub count: u64,
    pub amount: String,
    pub entries: Vec<UnmatchedEntry>,
}

fn money(amount: Decimal) -> String {
    format!("{amount:.2}")
}

/// The customers as the matching needs them.
struct Customers {
    /// customer_id → current mandate RUM (None without one).
    mandates: HashMap<String, Option<String>>,
    /// Upper-case customer_id → customer_id.
    ids: HashMap<String, String>,
    /// Compact IBAN → the customers paying from it.
    by_iban: HashMap<String, Vec<String>>,
}

impl Customers {
    fn load(reference: &Reference) -> Customers {
        let mut customers = Customers {
            mandates: HashMap::new(),
            ids: HashMap::new(),
            by_iban: HashMap::new(),
        };
        let Some(table) = reference.get("customers") else {
            return customers;
        };
        for row in 0..table.len() {
            let Some(id) = table.text(row, "customer_id") else {
                continue;
            };
            customers.ids.insert(id.to_uppercase(), id.to_string());
            customers.mandates.insert(
                id.to_string(),
                table.text(row, "mandate_rum").map(str::to_string),
            );
            if let Some(iban) = table.text(row, "iban") {
                customers
                    .by_iban
                    .entry(crate::core::identifiers::compact_iban(iban))
                    .or_default()
                    .push(id.to_string());
            }
        }
        customers
    }
}

/// The issued invoice numbers, compact (letters and digits only, upper
/// case) → (number, customer): a number written `EXM 2026 000042` or
/// `EXM2026000042` is found too.
struct Invoices {
    by_compact: HashMap<String, (String, String)>,
    /// The compact prefixes (`EXM`): where a number can start.
    prefixes: Vec<String>,
}

impl Invoices {
    fn load(connection: &Connection) -> Result<Invoices, rusqlite::Error> {
        let mut statement =
            connection.prepare("SELECT invoice_number, customer_id FROM invoice_numbers")?;
        let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        let mut invoices = Invoices {
            by_compact: HashMap::new(),
            prefixes: Vec::new(),
        };
        for row in rows {
            let (number, customer): (String, String) = row?;
            let compact = compact_text(&number);
            // PREFIX-YYYY-NNNNNN: the prefix is what stands before 10 digits.
            if let Some(prefix) = compact.get(..compact.len().saturating_sub(10)) {
                if !prefix.is_empty() && !invoices.prefixes.iter().any(|p| p == prefix) {
                    invoices.prefixes.push(prefix.to_string());
                }
            }
            invoices.by_compact.insert(compact, (number, customer));
        }
        Ok(invoices)
    }

    /// The first issued invoice number found in the texts.
    fn find(&self, texts: &[String]) -> Option<&(String, String)> {
        texts.iter().find_map(|text| {
            let compact = compact_text(text);
            self.prefixes.iter().find_map(|prefix| {
                compact.match_indices(prefix.as_str()).find_map(|(at, _)| {
                    compact
                        .get(at..at + prefix.len() + 10)
                        .and_then(|candidate| self.by_compact.get(candidate))
                })
            })
        })
    }
}

/// Letters and digits only, upper case.
fn compact_text(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `text` with every IBAN in it masked (`**** **** … 3356`), written
/// compact or in groups of 4.
pub fn mask_ibans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = i + 4 <= chars.len()
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && chars[i].is_ascii_alphabetic()
            && chars[i + 1].is_ascii_alphabetic()
            && chars[i + 2].is_ascii_digit()
            && chars[i + 3].is_ascii_digit();
        if starts {
            // The longest run of letters, digits and single spaces from
            // here that is a valid IBAN.
            let mut compact = String::new();
            let mut found = None;
            let mut j = i;
            while j < chars.len() && compact.len() < 34 {
                let c = chars[j];
                if c.is_ascii_alphanumeric() {
                    compact.push(c.to_ascii_uppercase());
                } else if !(c == ' ' && j + 1 < chars.len() && chars[j + 1].is_ascii_alphanumeric())
                {
                    break;
                }
                j += 1;
                let ends_here = j == chars.len() || !chars[j].is_ascii_alphanumeric();
                if ends_here && compact.len() >= 15 && iban_is_valid(&compact) {
                    found = Some((j, compact.clone()));
                }
            }
            if let Some((end, iban)) = found {
                out.push_str(&mask_iban(&iban));
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// What became of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Transfer,
    Return(String),
    Unmatched,
}

/// Imports one bank file (account.md §7).
pub async fn import(stage: &Context, path: &Path) -> Result<ImportReport, PaymentsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| BankFileError::Io {
        file: shown.clone(),
        source,
    })?;
    let bank = bankfiles::parse(&shown, &bytes)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = bank
        .transactions
        .iter()
        .find(|t| !seen.insert(&t.reference))
    {
        return Err(PaymentsError::Twice {
            file: shown,
            reference: twice.reference.clone(),
        });
    }
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.clone());
    let sha256 = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let reference = Reference::load(&stage.settings.reference_dir)?;
    let customers = Customers::load(&reference);
    let fee = stage.settings.billing.return_fee;

    let connection = stage.ledger.connection();
    let transaction = connection.unchecked_transaction()?;
    let invoices = Invoices::load(&transaction)?;
    let file = FileInfo {
        name: &source,
        sha256: &sha256,
        bank: &bank,
    };
    let mut report = ImportReport {
        file: shown,
        message: bank.message.clone(),
        transactions: bank.transactions.len() as u64,
        skipped: bank.skipped,
        ..Default::default()
    };
    let (mut transfers, mut unmatched, mut fees) = (Vec::new(), Vec::new(), Vec::new());
    let mut returns: BTreeMap<String, Vec<Decimal>> = BTreeMap::new();
    for entry in &bank.transactions {
        let before: Option<String> = transaction
            .query_row(
                "SELECT status FROM bank_entries WHERE reference = ?1",
                [&entry.reference],
                |r| r.get(0),
            )
            .optional()?;
        let outcome = match before.as_deref() {
            Some(status) if status != UNMATCHED => {
                report.already_imported += 1;
                recorded_outcome(&transaction, &entry.reference)?
            }
            _ => {
                let recorded = record(
                    &transaction,
                    &file,
                    entry,
                    &customers,
                    &invoices,
                    fee,
                    &mut report,
                    &mut fees,
                )?;
                match (before.is_some(), &recorded) {
                    (false, _) => report.new += 1,
                    (true, Outcome::Unmatched) => report.already_imported += 1,
                    (true, _) => report.matched_now += 1,
                }
                recorded
            }
        };
        match outcome {
            Outcome::Transfer => transfers.push(entry.amount),
            Outcome::Return(reason) => returns.entry(reason).or_default().push(entry.amount),
            Outcome::Unmatched => unmatched.push(entry.amount),
        }
    }
    transaction.commit()?;
    crate::account::write_dataset(connection, &stage.lake).await?;

    report.total = money(bank.transactions.iter().map(|t| t.amount).sum());
    report.transfers = Tally::of(&transfers);
    report.unmatched = Tally::of(&unmatched);
    report.fees = Tally::of(&fees);
    let all_returns: Vec<Decimal> = returns.values().flatten().copied().collect();
    report.returns_total = Tally::of(&all_returns);
    report.returns = returns
        .into_iter()
        .map(|(reason, amounts)| {
            let tally = Tally::of(&amounts);
            ReasonTally {
                reason,
                count: tally.count,
                amount: tally.amount,
            }
        })
        .collect();
    report.unmatched_entries = unmatched_entries(connection)?;
    Ok(report)
}

/// The file a transaction comes from, as `bank_entries` records it.
struct FileInfo<'a> {
    name: &'a str,
    sha256: &'a str,
    bank: &'a BankFile,
}

/// What an earlier import made of a transaction.
fn recorded_outcome(connection: &Connection, reference: &str) -> rusqlite::Result<Outcome> {
    let (kind, status, reason): (String, String, Option<String>) = connection.query_row(
        "SELECT kind, status, reason FROM bank_entries WHERE reference = ?1",
        [reference],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(match (status.as_str(), kind.as_str()) {
        (MATCHED, "RETURN") => Outcome::Return(reason.unwrap_or_default()),
        (MATCHED, _) => Outcome::Transfer,
        _ => Outcome::Unmatched,
    })
}

/// Matches one transaction, records its bank entry (new, or an unmatched
/// one updated) and what follows from it on the account.
#[allow(clippy::too_many_arguments)]
fn record(
    connection: &Connection,
    file: &FileInfo<'_>,
    entry: &BankTransaction,
    customers: &Customers,
    invoices: &Invoices,
    fee: Decimal,
    report: &mut ImportReport,
    fees: &mut Vec<Decimal>,
) -> rusqlite::Result<Outcome> {
    let account_entry =
        |customer: &str, kind: &str, amount: Decimal, document: Option<String>| AccountEntry {
            customer_id: customer.to_string(),
            entry_date: entry.booking_date,
            kind: kind.to_string(),
            reference: entry.reference.clone(),
            amount,
            due_date: None,
            document,
            reason: entry.reason.clone(),
            source: file.name.to_string(),
        };
    let (outcome, customer, document) = match entry.movement {
        Movement::Transfer => match match_transfer(entry, customers, invoices) {
            Some((customer, invoice)) => {
                crate::core::ledger::insert_entry(
                    connection,
                    &account_entry(&customer, kind::TRANSFER, -entry.amount, invoice.clone()),
                )?;
                (Outcome::Transfer, Some(customer), invoice)
            }
            None => (Outcome::Unmatched, None, None),
        },
        Movement::Return => {
            let end_to_end = entry.end_to_end_id.clone().unwrap_or_default();
            let debit: Option<String> = connection
                .query_row(
                    "SELECT customer_id FROM account_entries WHERE kind = ?1 AND reference = ?2",
                    params![kind::DIRECT_DEBIT, end_to_end],
                    |r| r.get(0),
                )
                .optional()?;
            let returned_before: bool = connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM account_entries WHERE kind = ?1 AND document = ?2)",
                params![kind::RETURN, end_to_end],
                |r| r.get(0),
            )?;
            match debit {
                Some(customer) if !returned_before => {
                    let reason = entry.reason.clone().unwrap_or_default();
                    crate::core::ledger::insert_entry(
                        connection,
                        &account_entry(
                            &customer,
                            kind::RETURN,
                            entry.amount,
                            Some(end_to_end.clone()),
                        ),
                    )?;
                    if fee > Decimal::ZERO && raise_fee(connection, entry, &customer, fee)? {
                        fees.push(fee);
                    }
                    if moves_to_transfer(&reason)
                        && move_to_transfer(connection, entry, &customer, customers)?
                    {
                        report.moved_to_transfer.push(customer.clone());
                    }
                    (Outcome::Return(reason), Some(customer), Some(end_to_end))
                }
                // Known, but returned already: kept for a look.
                Some(customer) => (Outcome::Unmatched, Some(customer), Some(end_to_end)),
                None => (Outcome::Unmatched, None, entry.end_to_end_id.clone()),
            }
        }
        Movement::Other => (Outcome::Unmatched, None, None),
    };
    let status = match outcome {
        Outcome::Unmatched => UNMATCHED,
        _ => MATCHED,
    };
    let remittance = mask_ibans(&entry.remittance.join(" | "));
    connection.execute(
        "INSERT INTO bank_entries (reference, file, file_sha256, message, kind, booking_date,
             amount, reason, remittance, debtor_name, customer_id, document, status, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (reference) DO UPDATE SET customer_id = excluded.customer_id,
             document = excluded.document, status = excluded.status",
        params![
            entry.reference,
            file.name,
            file.sha256,
            file.bank.message,
            entry.movement.name(),
            entry.booking_date.to_string(),
            money(entry.amount),
            entry.reason,
            remittance,
            entry.debtor_name,
            customer,
            document,
            status,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ],
    )?;
    Ok(outcome)
}

/// The customer a transfer pays, and the invoice it names: by an invoice
/// number in the remittance information, else a customer_id there, else
/// the debtor's IBAN (one customer only).
fn match_transfer(
    entry: &BankTransaction,
    customers: &Customers,
    invoices: &Invoices,
) -> Option<(String, Option<String>)> {
    if let Some((number, customer)) = invoices.find(&entry.remittance) {
        return Some((customer.clone(), Some(number.clone())));
    }
    let named = entry
        .remittance
        .iter()
        .flat_map(|text| text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')))
        .find_map(|word| customers.ids.get(&word.to_uppercase()));
    if let Some(customer) = named {
        return Some((customer.clone(), None));
    }
    let iban = entry.debtor_iban.as_deref()?;
    match customers.by_iban.get(iban).map(Vec::as_slice) {
        Some([customer]) => Some((customer.clone(), None)),
        _ => None,
    }
}

/// `[billing] return_fee` as a charge of the customer's next invoice
/// (account.md §5, §7): once per return. True when new.
fn raise_fee(
    connection: &Connection,
    entry: &BankTransaction,
    customer: &str,
    fee: Decimal,
) -> rusqlite::Result<bool> {
    let safe: String = entry
        .reference
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    let mut amount = fee;
    amount.rescale(fee.scale().max(2));
    let changed = connection.execute(
        "INSERT INTO account_charges (charge_id, customer_id, charge_date, label, amount_ht, reference)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (charge_id) DO NOTHING",
        params![
            format!("RETURN-{safe}"),
            customer,
            entry.booking_date.to_string(),
            RETURN_FEE_LABEL,
            amount.to_string(),
            entry.reference
        ],
    )?;
    Ok(changed == 1)
}

/// Moves the customer to transfer while `customers.csv` holds the mandate
/// that was returned (account.md §7; `sql/billing/invoices.sql`). True
/// when it was not so already for that mandate. A customer without a
/// mandate has no direct debit to stop.
fn move_to_transfer(
    connection: &Connection,
    entry: &BankTransaction,
    customer: &str,
    customers: &Customers,
) -> rusqlite::Result<bool> {
    let Some(Some(rum)) = customers.mandates.get(customer) else {
        return Ok(false);
    };
    let changed = connection.execute(
        "INSERT INTO transfer_customers (customer_id, since, reason, mandate_rum, reference)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (customer_id) DO UPDATE SET since = excluded.since,
             reason = excluded.reason, mandate_rum = excluded.mandate_rum,
             reference = excluded.reference
         WHERE transfer_customers.mandate_rum <> excluded.mandate_rum",
        params![
            customer,
            entry.booking_date.to_string(),
            entry.reason.as_deref().unwrap_or_default(),
            rum,
            entry.reference
        ],
    )?;
    Ok(changed == 1)
}

/// Every unmatched bank entry the ledger holds, oldest first.
pub fn unmatched_entries(connection: &Connection) -> rusqlite::Result<Vec<UnmatchedEntry>> {
    let mut statement = connection.prepare(
        "SELECT reference, file, booking_date, kind, amount, COALESCE(remittance, ''),
             debtor_name, reason, document
         FROM bank_entries WHERE status = ?1 ORDER BY booking_date, reference",
    )?;
    let rows = statement.query_map([UNMATCHED], |r| {
        Ok(UnmatchedEntry {
            reference: r.get(0)?,
            file: r.get(1)?,
            booking_date: r.get(2)?,
            kind: r.get(3)?,
            amount: r.get(4)?,
            remittance: r.get(5)?,
            debtor_name: r.get(6)?,
            reason: r.get(7)?,
            document: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// `payments unmatched`.
pub fn unmatched(connection: &Connection) -> Result<UnmatchedReport, PaymentsError> {
    let entries = unmatched_entries(connection)?;
    let amounts: Vec<Decimal> = entries
        .iter()
        .filter_map(|e| e.amount.parse().ok())
        .collect();
    Ok(UnmatchedReport {
        count: entries.len() as u64,
        amount: money(amounts.iter().sum()),
        entries,
    })
}

fn write_unmatched(
    f: &mut std::fmt::Formatter<'_>,
    entries: &[UnmatchedEntry],
) -> std::fmt::Result {
    for e in entries {
        write!(
            f,
            "\n  {} {} {:>10} € {:<8} {}",
            e.booking_date, e.reference, e.amount, e.kind, e.file
        )?;
        if let Some(reason) = &e.reason {
            write!(f, " reason {reason}")?;
        }
        if let Some(document) = &e.document {
            write!(f, " debit {document}")?;
        }
        if let Some(name) = &e.debtor_name {
            write!(f, " from \"{name}\"")?;
        }
        if !e.remittance.is_empty() {
            write!(f, " \"{}\"", e.remittance)?;
        }
    }
    Ok(())
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "payments import {} ({}): {} transactions, {} €: {} new, {} already imported, {} matched now{}",
            self.file,
            self.message,
            self.transactions,
            self.total,
            self.new,
            self.already_imported,
            self.matched_now,
            match self.skipped {
                0 => String::new(),
                n => format!(" ({n} not booked or not rejections, skipped)"),
            }
        )?;
        writeln!(
            f,
            "transfers matched: {} for {} €",
            self.transfers.count, self.transfers.amount
        )?;
        write!(
            f,
            "direct debits returned: {} for {} €",
            self.returns_total.count, self.returns_total.amount
        )?;
        for r in &self.returns {
            write!(f, "\n  {}: {} for {} €", r.reason, r.count, r.amount)?;
        }
        writeln!(
            f,
            "\nreturn fees raised: {} for {} € HT",
            self.fees.count, self.fees.amount
        )?;
        writeln!(
            f,
            "customers moved to transfer: {}",
            match self.moved_to_transfer.is_empty() {
                true => "none".to_string(),
                false => self.moved_to_transfer.join(", "),
            }
        )?;
        write!(
            f,
            "unmatched in this file: {} for {} €; in the ledger: {}",
            self.unmatched.count,
            self.unmatched.amount,
            self.unmatched_entries.len()
        )?;
        write_unmatched(f, &self.unmatched_entries)
    }
}

impl std::fmt::Display for UnmatchedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "payments unmatched: {} bank entries for {} €",
            self.count, self.amount
        )?;
        write_unmatched(f, &self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_written_in_the_remittance_are_masked() {
        assert_eq!(
            mask_ibans("virement de FR76 3000 4000 0100 0333 3333 356 facture 12"),
            format!(
                "virement de {} facture 12",
                mask_iban("FR7630004000010003333333356")
            )
        );
        assert_eq!(
            mask_ibans("FR7630004000010003333333356"),
            mask_iban("FR7630004000010003333333356")
        );
        // Not an IBAN: left as it is.
        assert_eq!(mask_ibans("FR12 dossier 42"), "FR12 dossier 42");
        assert_eq!(mask_ibans("EXM-2026-000003"), "EXM-2026-000003");
    }

    #[test]
    fn an_invoice_number_is_found_however_the_payer_wrote_it() {
        let invoices = Invoices {
            by_compact: HashMap::from([(
                "EXM2026000042".to_string(),
                ("EXM-2026-000042".to_string(), "C1".to_string()),
            )]),
            prefixes: vec!["EXM".to_string()],
        };
        for text in [
            "Facture EXM-2026-000042",
            "fact exm 2026 000042 merci",
            "EXM2026000042",
            "ref:EXM-2026-000042/",
        ] {
            assert_eq!(
                invoices.find(&[text.to_string()]).map(|f| f.0.as_str()),
                Some("EXM-2026-000042"),
                "{text}"
            );
        }
        assert!(invoices.find(&["EXM-2026-000043".to_string()]).is_none());
    }
}
