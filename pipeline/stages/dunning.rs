//! `dunning` (account.md §7), run daily: reminds each customer of its
//! overdue amounts, level by level, lists at the last level the lines to
//! suspend, and writes the day's aged balance.
//!
//! - **What is dunned.** The open amounts of the account as of the date
//!   (`account::open_amounts`: the credits settle the oldest debits first)
//!   that are overdue: an amount is overdue from the due date of the
//!   invoice that asked for it, or, when a later direct debit carried it,
//!   from that debit's collection date. A customer whose balance at the
//!   date is zero or less is not dunned (a paid balance stops the dunning);
//!   a settled amount is not open.
//! - **Levels.** `[dunning] levels` (default `[7, 15, 30]`) are the days
//!   overdue at which reminders 1, 2, 3… go; the last one is the formal
//!   notice (mise en demeure). Each level goes once per amount: the ledger's
//!   `dunning_notices` holds one row per (amount, level). A run sends, for
//!   each amount, the highest level its days overdue reach, when neither it
//!   nor a higher one is recorded; the levels below it that were never sent
//!   (a run missed, a catch-up after days) are recorded as skipped, in the
//!   same transaction, with no recipient and no Message-ID. A level lower
//!   than one recorded is never sent (an amount whose overdue date moved
//!   later does not start again).
//! - **Mails.** One per customer and run, grouping its amounts at their
//!   levels, worded by `templates/dunning_subject.txt`, `dunning.txt` and
//!   `dunning.html` (the integrator's own in `[templates] dir`), sent
//!   through `[mail]` from the billing address to the customer's `email` of
//!   `customers.csv`. A customer's notices are recorded once the relay
//!   accepted its mail; a refused mail records nothing and is tried again
//!   the next run. A customer without an address, or a run without `[mail]`,
//!   records its notices unsent (listed in the report: `no_address`, `mail:
//!   null`) so that a level is still reached once.
//! - **Suspensions.** The amounts whose last level is recorded on the date
//!   list their customer's lines active that day (`subscriptions.csv`) in
//!   `<lake>/documents/suspensions-YYYY-MM-DD.csv`, rewritten whole from
//!   the ledger by each run of the day: an amount is listed on one day
//!   only, once.
//! - **Aged balance.** `aged_balance/as_of=<date>/` (`account::aged`).
//!
//! No customer IBAN is read: the mail gives the integrator's own account.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::account::aged::{self, AgedBalance};
use crate::account::{self, kind, AccountError, OpenAmount};
use crate::core::lake::{Lake, LakeError};
use crate::documents::mail::{self, Letter, MailError, Outbox, Posted};
use crate::documents::mail::{contacts, Contact, CustomerInfo};
use crate::documents::templates::{format_eur, MailTemplates, TemplateError};
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::reference::{Reference, ReferenceError};
use crate::stages::Context;

#[derive(Debug, thiserror::Error)]
pub enum DunningError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("dunning: ledger table dunning_notices: {0}")]
    Ledger(#[from] rusqlite::Error),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Integrator(#[from] IntegratorError),
    #[error("dunning: {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Lake(#[from] LakeError),
}

// ---- what is due ----------------------------------------------------------

/// An overdue amount whose reminder goes this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueAmount {
    pub customer_id: String,
    /// The account entry that asked for it (invoice number, return
    /// reference).
    pub reference: String,
    pub kind: String,
    /// What is open of it.
    pub amount: Decimal,
    pub overdue_from: NaiveDate,
    pub days_overdue: i64,
    /// The level reached (1 = the first of `[dunning] levels`).
    pub level: u32,
    /// The levels below it never sent, recorded as skipped.
    pub skipped: Vec<u32>,
}

/// A customer's reminder of this run: its amounts due at their levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDue {
    pub customer_id: String,
    /// The customer's balance at the date.
    pub balance: Decimal,
    pub amounts: Vec<DueAmount>,
}

impl CustomerDue {
    /// The mail's level: the highest of its amounts'.
    pub fn level(&self) -> u32 {
        self.amounts.iter().map(|a| a.level).max().unwrap_or(0)
    }

    pub fn total(&self) -> Decimal {
        self.amounts.iter().map(|a| a.amount).sum()
    }
}

/// The level reached `days` overdue (1-based), if any.
fn level_reached(levels: &[u32], days: i64) -> Option<u32> {
    levels
        .iter()
        .rposition(|&threshold| days >= i64::from(threshold))
        .map(|index| index as u32 + 1)
}

/// The reminders due as of `date`, by customer: each open amount overdue
/// far enough for a level above the highest `recorded` for it (reference →
/// level), of a customer whose balance is above zero. `already`: the
/// overdue amounts whose level reached is recorded.
pub fn due(
    open: &[OpenAmount],
    balances: &BTreeMap<String, Decimal>,
    levels: &[u32],
    date: NaiveDate,
    recorded: &HashMap<String, u32>,
    already: &mut u64,
) -> Vec<CustomerDue> {
    let mut customers: BTreeMap<&str, CustomerDue> = BTreeMap::new();
    for amount in open {
        let balance = balances
            .get(&amount.customer_id)
            .copied()
            .unwrap_or_default();
        let Some(from) = amount.overdue_from else {
            continue;
        };
        let days = (date - from).num_days();
        let Some(level) = level_reached(levels, days) else {
            continue;
        };
        if balance <= Decimal::ZERO || amount.open <= Decimal::ZERO {
            continue;
        }
        let highest = recorded.get(&amount.reference).copied().unwrap_or(0);
        if highest >= level {
            *already += 1;
            continue;
        }
        customers
            .entry(&amount.customer_id)
            .or_insert_with(|| CustomerDue {
                customer_id: amount.customer_id.clone(),
                balance,
                amounts: Vec::new(),
            })
            .amounts
            .push(DueAmount {
                customer_id: amount.customer_id.clone(),
                reference: amount.reference.clone(),
                kind: amount.kind.clone(),
                amount: amount.open,
                overdue_from: from,
                days_overdue: days,
                level,
                skipped: (highest + 1..level).collect(),
            });
    }
    customers.into_values().collect()
}

// ---- the ledger -------------------------------------------------------------

/// The highest level recorded for each amount.
pub fn recorded_levels(connection: &Connection) -> rusqlite::Result<HashMap<String, u32>> {
    let mut statement = connection
        .prepare("SELECT reference, MAX(level) FROM dunning_notices GROUP BY reference")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Records a customer's notices of `date` in one transaction: the level
/// reached of each amount with the mail's recipient and Message-ID (None:
/// not mailed), the levels skipped with neither.
pub fn record(
    connection: &Connection,
    customer: &CustomerDue,
    date: NaiveDate,
    recipient: Option<&str>,
    message_id: Option<&str>,
) -> rusqlite::Result<()> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let transaction = connection.unchecked_transaction()?;
    {
        let mut insert = transaction.prepare(
            "INSERT OR IGNORE INTO dunning_notices (reference, level, customer_id, days_overdue,
                 amount, notice_date, recipient, message_id, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for amount in &customer.amounts {
            let text = format!("{:.2}", amount.amount);
            let day = date.to_string();
            for level in &amount.skipped {
                insert.execute(params![
                    amount.reference,
                    level,
                    customer.customer_id,
                    amount.days_overdue,
                    text,
                    day,
                    None::<&str>,
                    None::<&str>,
                    now
                ])?;
            }
            insert.execute(params![
                amount.reference,
                amount.level,
                customer.customer_id,
                amount.days_overdue,
                text,
                day,
                recipient,
                message_id,
                now
            ])?;
        }
    }
    transaction.commit()
}

/// The amounts whose `level` is recorded on `date`: (customer, reference,
/// amount, days overdue), by customer and reference.
fn noticed_on(
    connection: &Connection,
    level: u32,
    date: NaiveDate,
) -> rusqlite::Result<Vec<(String, String, String, i64)>> {
    let mut statement = connection.prepare(
        "SELECT customer_id, reference, amount, days_overdue FROM dunning_notices
         WHERE level = ?1 AND notice_date = ?2 ORDER BY customer_id, reference",
    )?;
    let rows = statement.query_map(params![level, date.to_string()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.collect()
}

// ---- the report -------------------------------------------------------------

/// The reminders of one level sent (or recorded) this run.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    pub level: u32,
    /// Its days overdue (`[dunning] levels`).
    pub days: u32,
    /// Amounts reminded at this level.
    pub notices: u64,
    pub amount: Decimal,
}

/// A customer's reminder the relay refused: tried again next run.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedReminder {
    pub customer_id: String,
    pub recipient: String,
    pub reason: String,
}

/// What the mails did; None in the report when there is no `[mail]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailSummary {
    pub relay: String,
    pub sent: u64,
    pub refused: Vec<RefusedReminder>,
    pub connections: u64,
}

/// The suspension list of the day.
#[derive(Debug, Clone, Serialize)]
pub struct SuspensionReport {
    pub file: String,
    /// Rows (one per line and amount).
    pub lines: u64,
    pub customers: u64,
}

/// What `dunning` did.
#[derive(Debug, Serialize)]
pub struct DunningReport {
    pub date: NaiveDate,
    /// `[dunning] levels`: the days overdue of each level.
    pub levels: Vec<u32>,
    /// This run's reminders by level (recorded, mailed or not).
    pub reminders: Vec<LevelReport>,
    /// Customers reminded this run, and the sum of their amounts reminded.
    pub customers: u64,
    pub amount: Decimal,
    /// Lower levels recorded as skipped (a catch-up after a missed run).
    pub skipped_levels: u64,
    /// Overdue amounts whose level reached was recorded before.
    pub already_reminded: u64,
    pub mail: Option<MailSummary>,
    /// Customers reminded with no e-mail address in customers.csv: their
    /// notices are recorded, not mailed.
    pub no_address: Vec<String>,
    /// The day's suspension list, when an amount reached the last level.
    pub suspensions: Option<SuspensionReport>,
    /// The aged balance written: its file and the sum of its lines.
    pub aged_balance: String,
    pub aged_total: AgedBalance,
}

impl std::fmt::Display for DunningReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let notices: u64 = self.reminders.iter().map(|l| l.notices).sum();
        write!(
            f,
            "dunning {}: {notices} reminders to {} customers, {} €",
            self.date, self.customers, self.amount
        )?;
        let levels: Vec<String> = self
            .reminders
            .iter()
            .map(|l| {
                format!(
                    "level {} ({} days): {}, {} €",
                    l.level, l.days, l.notices, l.amount
                )
            })
            .collect();
        writeln!(
            f,
            " ({}); {} levels skipped, {} amounts already reminded",
            levels.join("; "),
            self.skipped_levels,
            self.already_reminded
        )?;
        match &self.mail {
            Some(mail) => {
                write!(
                    f,
                    "mail: {} sent, {} refused",
                    mail.sent,
                    mail.refused.len()
                )?;
                for (i, refused) in mail.refused.iter().enumerate() {
                    let lead = if i == 0 { " (" } else { "; " };
                    write!(
                        f,
                        "{lead}{} <{}>: {}",
                        refused.customer_id, refused.recipient, refused.reason
                    )?;
                }
                if !mail.refused.is_empty() {
                    write!(f, ")")?;
                }
                writeln!(f, " via {}", mail.relay)?;
            }
            None => writeln!(f, "mail: no [mail] section: notices recorded, none sent")?,
        }
        if !self.no_address.is_empty() {
            writeln!(f, "no address: {}", self.no_address.join(", "))?;
        }
        match &self.suspensions {
            Some(s) => writeln!(
                f,
                "suspensions: {} ({} lines of {} customers)",
                s.file, s.lines, s.customers
            )?,
            None => writeln!(f, "suspensions: none")?,
        }
        write!(
            f,
            "aged balance: {} ({} € open, {} € past due)",
            self.aged_balance,
            self.aged_total.total,
            self.aged_total.total - self.aged_total.not_due
        )
    }
}

// ---- the mail ---------------------------------------------------------------

/// What the dunning templates receive (docs/RECEIVABLES.md "Dunning").
#[derive(Serialize)]
struct ReminderContext<'a> {
    reminder: ReminderInfo,
    amounts: Vec<AmountInfo<'a>>,
    customer: CustomerInfo<'a>,
    integrator: &'a Integrator,
    brand: &'a str,
}

#[derive(Serialize)]
struct ReminderInfo {
    /// The mail's level (1-based) and how many levels there are.
    level: u32,
    levels: u32,
    /// The last level: the formal notice (mise en demeure).
    last: bool,
    date: NaiveDate,
    /// The most days overdue of its amounts.
    days_overdue: i64,
    /// The sum of its amounts.
    total: Decimal,
    /// The customer's balance at the date.
    balance: Decimal,
    balance_differs: bool,
    /// What the transfer's remittance information should say: the invoice
    /// number when one invoice is reminded, else the customer id.
    payment_reference: String,
}

#[derive(Serialize)]
struct AmountInfo<'a> {
    reference: &'a str,
    kind: &'a str,
    /// `Facture`, `Prélèvement rejeté`, `Montant`.
    label: &'static str,
    amount: Decimal,
    overdue_from: NaiveDate,
    days_overdue: i64,
    level: u32,
}

/// Each customer's lines (msisdn) with a subscription running on `date`.
fn active_lines(reference: &Reference, date: NaiveDate) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    if let Some(table) = reference.get("subscriptions") {
        for row in 0..table.len() {
            let started = table.date(row, "start_date").is_some_and(|d| d <= date);
            let running = table.date(row, "end_date").is_none_or(|d| d >= date);
            if let (true, true, Some(customer), Some(msisdn)) = (
                started,
                running,
                table.text(row, "customer_id"),
                table.text(row, "msisdn"),
            ) {
                out.entry(customer.to_string())
                    .or_default()
                    .insert(msisdn.to_string());
            }
        }
    }
    out
}

fn label(kind: &str) -> &'static str {
    match kind {
        kind::INVOICE => "Facture",
        kind::RETURN => "Prélèvement rejeté",
        _ => "Montant",
    }
}

/// The reminder's subject, text and HTML.
fn letter(
    templates: &MailTemplates,
    integrator: &Integrator,
    levels: &[u32],
    date: NaiveDate,
    customer: &CustomerDue,
    contact: &Contact,
) -> Result<Letter, TemplateError> {
    let level = customer.level();
    let total = customer.total();
    let invoices: Vec<&DueAmount> = customer
        .amounts
        .iter()
        .filter(|a| a.kind == kind::INVOICE)
        .collect();
    let payment_reference = match (invoices.as_slice(), customer.amounts.len()) {
        ([only], 1) => only.reference.clone(),
        _ => customer.customer_id.clone(),
    };
    let context = ReminderContext {
        reminder: ReminderInfo {
            level,
            levels: levels.len() as u32,
            last: level as usize == levels.len(),
            date,
            days_overdue: customer
                .amounts
                .iter()
                .map(|a| a.days_overdue)
                .max()
                .unwrap_or(0),
            total,
            balance: customer.balance,
            balance_differs: customer.balance != total,
            payment_reference,
        },
        amounts: customer
            .amounts
            .iter()
            .map(|a| AmountInfo {
                reference: &a.reference,
                kind: &a.kind,
                label: label(&a.kind),
                amount: a.amount,
                overdue_from: a.overdue_from,
                days_overdue: a.days_overdue,
                level: a.level,
            })
            .collect(),
        customer: CustomerInfo {
            customer_id: &customer.customer_id,
            name: &contact.name,
        },
        integrator,
        brand: mail::brand(integrator),
    };
    Ok(Letter {
        key: format!("{}-{date}", customer.customer_id),
        customer_name: contact.name.clone(),
        to: contact.email.clone().unwrap_or_default(),
        subject: templates.render(MailTemplates::DUNNING_SUBJECT, &context)?,
        text: templates.render(MailTemplates::DUNNING_TEXT, &context)?,
        html: templates.render(MailTemplates::DUNNING_HTML, &context)?,
    })
}

// ---- the stage ----------------------------------------------------------------

/// The key of the suspension list of `date`.
pub fn suspensions_key(date: NaiveDate) -> String {
    format!("documents/suspensions-{date}.csv")
}

/// Rewrites the suspension list of `date` from the ledger: one row per
/// active line of each customer with an amount at the last level that
/// day. None when there is none.
async fn write_suspensions(
    lake: &Lake,
    connection: &Connection,
    reference: &Reference,
    last: u32,
    date: NaiveDate,
) -> Result<Option<SuspensionReport>, DunningError> {
    let noticed = noticed_on(connection, last, date)?;
    if noticed.is_empty() {
        return Ok(None);
    }
    let lines = active_lines(reference, date);
    let mut csv = String::from("customer_id;msisdn;reference;amount;days_overdue\n");
    let mut rows = 0;
    let mut customers = BTreeSet::new();
    for (customer, reference, amount, days) in &noticed {
        customers.insert(customer.as_str());
        for msisdn in lines.get(customer).into_iter().flatten() {
            csv.push_str(&format!(
                "{customer};{msisdn};{reference};{amount};{days}\n"
            ));
            rows += 1;
        }
    }
    let key = suspensions_key(date);
    lake.put(&key, csv.into_bytes()).await?;
    Ok(Some(SuspensionReport {
        file: lake.url().join(&key),
        lines: rows,
        customers: customers.len() as u64,
    }))
}

/// Runs the dunning of `date` (docs/RECEIVABLES.md "Dunning").
pub async fn dunning(ctx: &Context, date: NaiveDate) -> Result<DunningReport, DunningError> {
    let settings = &ctx.settings;
    let connection = ctx.ledger.connection();
    let levels = &settings.dunning_levels;
    let entries = account::entries(connection)?;
    let presented = account::representations(connection)?;
    let open = account::open_amounts(&entries, &presented, date);
    let balances = account::balances_at(&entries, date);
    let mut already = 0;
    let due = due(
        &open,
        &balances,
        levels,
        date,
        &recorded_levels(connection)?,
        &mut already,
    );

    let reference = Reference::load(&settings.reference_dir)?;
    let contacts = contacts(&reference);
    let mut report = DunningReport {
        date,
        levels: levels.clone(),
        reminders: levels
            .iter()
            .enumerate()
            .map(|(i, &days)| LevelReport {
                level: i as u32 + 1,
                days,
                notices: 0,
                amount: Decimal::new(0, 2),
            })
            .collect(),
        customers: 0,
        amount: Decimal::new(0, 2),
        skipped_levels: 0,
        already_reminded: already,
        mail: None,
        no_address: Vec::new(),
        suspensions: None,
        aged_balance: String::new(),
        aged_total: AgedBalance::default(),
    };
    if !due.is_empty() {
        let integrator = Integrator::load(&settings.integrator_path)?;
        let templates = MailTemplates::dunning(settings.templates_dir.as_deref())?;
        let mut outbox = match &settings.mail {
            Some(mail) => Some((Outbox::new(mail, &integrator)?, mail.relay())),
            None => None,
        };
        let mut refused = Vec::new();
        let result = (|| -> Result<(), DunningError> {
            for customer in &due {
                let contact = contacts
                    .get(&customer.customer_id)
                    .cloned()
                    .unwrap_or_default();
                let letter = letter(&templates, &integrator, levels, date, customer, &contact)?;
                let (recipient, message_id) = match (&mut outbox, &contact.email) {
                    (_, None) => {
                        report.no_address.push(customer.customer_id.clone());
                        (None, None)
                    }
                    (None, Some(email)) => (Some(email.clone()), None),
                    (Some((outbox, _)), Some(_)) => match outbox.post(&letter)? {
                        Posted::Sent {
                            recipient,
                            message_id,
                        } => (Some(recipient), Some(message_id)),
                        Posted::Refused { recipient, reason } => {
                            tracing::warn!(
                                "dunning: the reminder of {} to {recipient} was refused: {reason}",
                                customer.customer_id
                            );
                            refused.push(RefusedReminder {
                                customer_id: customer.customer_id.clone(),
                                recipient,
                                reason,
                            });
                            continue;
                        }
                    },
                };
                record(
                    connection,
                    customer,
                    date,
                    recipient.as_deref(),
                    message_id.as_deref(),
                )?;
                report.customers += 1;
                for amount in &customer.amounts {
                    let level = &mut report.reminders[amount.level as usize - 1];
                    level.notices += 1;
                    level.amount += amount.amount;
                    report.amount += amount.amount;
                    report.skipped_levels += amount.skipped.len() as u64;
                }
            }
            Ok(())
        })();
        if let Some((outbox, relay)) = outbox {
            let sent = outbox.sent;
            report.mail = Some(MailSummary {
                relay,
                sent,
                refused,
                connections: outbox.close(),
            });
        }
        result?;
    } else if let Some(mail) = &settings.mail {
        report.mail = Some(MailSummary {
            relay: mail.relay(),
            ..MailSummary::default()
        });
    }

    let last = levels.len() as u32;
    report.suspensions = write_suspensions(&ctx.lake, connection, &reference, last, date).await?;
    let lines = aged::aged_balance(&entries, &presented, date);
    report.aged_total = aged::total(&lines);
    let key = aged::write_dataset(&ctx.lake, date, &lines).await?;
    report.aged_balance = ctx.lake.url().join(&key);
    let total = format_eur(report.amount, 2);
    tracing::info!(
        date = %date,
        customers = report.customers,
        amount = %total,
        "dunning: reminders recorded"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ledger::{insert_entry, AccountEntry, Ledger};

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn entry(customer: &str, kind: &str, reference: &str, on: &str, amount: &str) -> AccountEntry {
        AccountEntry {
            customer_id: customer.into(),
            entry_date: day(on),
            kind: kind.into(),
            reference: reference.into(),
            amount: amount.parse().unwrap(),
            due_date: None,
            document: None,
            reason: None,
            source: "test".into(),
        }
    }

    fn invoice(customer: &str, reference: &str, amount: &str) -> AccountEntry {
        let mut invoice = entry(customer, kind::INVOICE, reference, "2026-11-01", amount);
        invoice.due_date = Some(day("2026-11-16"));
        invoice
    }

    /// One day's run without mail: the reminders recorded, by customer
    /// (customer, level, levels skipped).
    fn run_day(connection: &Connection, date: NaiveDate) -> Vec<(String, u32, Vec<u32>)> {
        let entries = account::entries(connection).unwrap();
        let open = account::open_amounts(&entries, &HashMap::new(), date);
        let balances = account::balances_at(&entries, date);
        let recorded = recorded_levels(connection).unwrap();
        let mut already = 0;
        let due = due(
            &open,
            &balances,
            &[7, 15, 30],
            date,
            &recorded,
            &mut already,
        );
        for customer in &due {
            record(connection, customer, date, Some("x@example.org"), None).unwrap();
        }
        due.iter()
            .map(|c| {
                (
                    c.customer_id.clone(),
                    c.level(),
                    c.amounts.iter().flat_map(|a| a.skipped.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn each_level_goes_once_and_a_payment_stops_the_dunning() {
        let state = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(state.path()).unwrap();
        let connection = ledger.connection();
        // C2 pays 12.00 ten days overdue, the rest twenty days overdue.
        for entry in [
            invoice("C1", "F-1", "30.00"),
            invoice("C2", "F-2", "20.00"),
            entry("C2", kind::TRANSFER, "BANK-1", "2026-11-26", "-12.00"),
            entry("C2", kind::TRANSFER, "BANK-2", "2026-12-06", "-8.00"),
        ] {
            insert_entry(connection, &entry).unwrap();
        }
        let mut sent: Vec<(String, String, u32)> = Vec::new();
        let mut date = day("2026-11-01");
        while date <= day("2026-12-31") {
            for (customer, level, skipped) in run_day(connection, date) {
                assert!(skipped.is_empty(), "{customer} on {date}: {skipped:?}");
                sent.push((customer, date.to_string(), level));
            }
            date = date.succ_opt().unwrap();
        }
        let expected: Vec<(String, String, u32)> = [
            ("C1", "2026-11-23", 1),
            ("C2", "2026-11-23", 1),
            ("C1", "2026-12-01", 2),
            ("C2", "2026-12-01", 2),
            ("C1", "2026-12-16", 3),
        ]
        .iter()
        .map(|(c, d, l)| (c.to_string(), d.to_string(), *l))
        .collect();
        assert_eq!(sent, expected);
        // C2's second reminder asked for what was left.
        assert_eq!(
            noticed_on(connection, 2, day("2026-12-01")).unwrap(),
            vec![
                ("C1".into(), "F-1".into(), "30.00".into(), 15),
                ("C2".into(), "F-2".into(), "8.00".into(), 15),
            ]
        );
    }

    #[test]
    fn a_catch_up_sends_the_highest_level_reached_and_records_the_others_skipped() {
        let state = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(state.path()).unwrap();
        let connection = ledger.connection();
        insert_entry(connection, &invoice("C1", "F-1", "30.00")).unwrap();
        // The first run after the due date is 31 days late.
        assert_eq!(
            run_day(connection, day("2026-12-17")),
            vec![("C1".to_string(), 3, vec![1, 2])]
        );
        assert!(run_day(connection, day("2026-12-18")).is_empty());
        let rows: Vec<(u32, Option<String>)> = connection
            .prepare("SELECT level, recipient FROM dunning_notices ORDER BY level")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![(1, None), (2, None), (3, Some("x@example.org".to_string()))]
        );
        // A customer whose credit note clears its invoice is not dunned.
        insert_entry(connection, &invoice("C2", "F-2", "5.00")).unwrap();
        insert_entry(
            connection,
            &entry("C2", kind::CREDIT_NOTE, "A-1", "2026-11-20", "-5.00"),
        )
        .unwrap();
        assert!(run_day(connection, day("2026-12-31")).is_empty());
    }

    #[test]
    fn levels_are_reached_at_their_days() {
        assert_eq!(level_reached(&[7, 15, 30], 6), None);
        assert_eq!(level_reached(&[7, 15, 30], 7), Some(1));
        assert_eq!(level_reached(&[7, 15, 30], 29), Some(2));
        assert_eq!(level_reached(&[7, 15, 30], 300), Some(3));
    }
}
