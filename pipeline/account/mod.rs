//! The customer account (account.md §7): what each customer owes and paid.
//!
//! The ledger's `account_entries` table is the book of record: append-only,
//! each entry once by its kind and reference (`core::ledger::AccountEntry`).
//! This layer reads it: the balance at a date, the open amounts left once
//! every credit has settled the oldest debits first, and since when each is
//! overdue; and it rewrites the `account_entries` dataset of the lake from
//! it after each change, for analysts.
//!
//! - `bill` records an INVOICE (+TTC, due on its due date) per invoice and a
//!   CREDIT_NOTE (−TTC) per regularisation note; `credit` one per note.
//! - `sepa` records a DIRECT_DEBIT (−amount, dated its collection date) per
//!   debit it writes and a REFUND (+amount) per credit it pays back.
//! - `payments import` records TRANSFER (−amount) and RETURN (+amount,
//!   with its reason code) entries from the bank's files.
//!
//! `aged` sorts the open amounts by days past due (the aged balance).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Date32Array, Decimal128Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rusqlite::Connection;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
pub use crate::core::ledger::AccountEntry;

pub mod aged;
pub mod bankfiles;

/// The kinds of account entries.
pub mod kind {
    pub const INVOICE: &str = "INVOICE";
    pub const CREDIT_NOTE: &str = "CREDIT_NOTE";
    pub const DIRECT_DEBIT: &str = "DIRECT_DEBIT";
    pub const TRANSFER: &str = "TRANSFER";
    pub const RETURN: &str = "RETURN";
    pub const REFUND: &str = "REFUND";
}

/// Reason codes of a debit returned for insufficient funds (`MS03` is the
/// code banks use to hide it): presented again once (account.md §7).
pub const PRESENTED_AGAIN: &[&str] = &["AM04", "MS03"];

/// Reason codes of a refusal or a refund claim by the debtor: dunned, not
/// presented again, the customer stays on direct debit.
pub const DUNNED_ONLY: &[&str] = &["MS02", "MD06"];

/// Whether a return's reason means the account or the mandate is gone
/// (closed, blocked, wrong, no mandate, …): the customer moves to transfer
/// until a new mandate is recorded. Every code that is neither presented
/// again nor a refusal counts as such: a debit that cannot be collected for
/// an unknown reason must not be sent again blindly.
pub fn moves_to_transfer(reason: &str) -> bool {
    !PRESENTED_AGAIN.contains(&reason) && !DUNNED_ONLY.contains(&reason)
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("ledger: {0}")]
    Ledger(#[from] rusqlite::Error),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("account_entries dataset: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

/// Every entry of the account, in the order they count (date, then as
/// recorded).
pub fn entries(connection: &Connection) -> Result<Vec<AccountEntry>, AccountError> {
    Ok(crate::core::ledger::account_entries(connection)?)
}

/// Each customer's balance at `date`: the sum of its entries dated on or
/// before it (positive: the customer owes).
pub fn balances_at(entries: &[AccountEntry], date: NaiveDate) -> BTreeMap<String, Decimal> {
    let mut balances = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.entry_date <= date) {
        *balances
            .entry(entry.customer_id.clone())
            .or_insert(Decimal::ZERO) += entry.amount;
    }
    balances
}

/// An amount still owed: the open part of a debit entry (an invoice, a
/// returned debit) once the credits have settled the oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenAmount {
    pub customer_id: String,
    /// The entry that asked for it (invoice number, return reference).
    pub reference: String,
    pub kind: String,
    pub entry_date: NaiveDate,
    /// What is left of it (positive).
    pub open: Decimal,
    /// The day it is overdue from (account.md §7): the due date of the
    /// invoice that asked for it; for a return presented again, the
    /// collection date of the debit that carries it; None while a return
    /// waits for that debit.
    pub overdue_from: Option<NaiveDate>,
    /// A return of insufficient funds not yet presented again: the next
    /// invoice's debit carries it.
    pub presentable: bool,
    /// The return's reason code.
    pub reason: Option<String>,
}

/// The presentations again recorded by `sepa`: return reference → the
/// EndToEndId of the debit that carries it.
pub fn representations(connection: &Connection) -> Result<HashMap<String, String>, AccountError> {
    let mut statement =
        connection.prepare("SELECT return_reference, debit_reference FROM representations")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
}

/// The open amounts of every customer as of `date` (entries dated after it
/// are left out): each debit entry in date order, settled by the credits
/// oldest first (account.md §7: a payment settles the customer's oldest
/// open amounts first). `presented`: `representations`.
pub fn open_amounts(
    entries: &[AccountEntry],
    presented: &HashMap<String, String>,
    date: NaiveDate,
) -> Vec<OpenAmount> {
    let entries: Vec<&AccountEntry> = entries.iter().filter(|e| e.entry_date <= date).collect();
    let by_reference: HashMap<(&str, &str), &AccountEntry> = entries
        .iter()
        .map(|e| ((e.kind.as_str(), e.reference.as_str()), *e))
        .collect();
    // Debits that were themselves a presentation again: their return is
    // not presented a third time.
    let carrying: HashSet<&str> = presented.values().map(String::as_str).collect();
    let mut by_customer: BTreeMap<&str, Vec<&AccountEntry>> = BTreeMap::new();
    for entry in &entries {
        by_customer
            .entry(&entry.customer_id)
            .or_default()
            .push(entry);
    }
    let mut open = Vec::new();
    for (customer, entries) in by_customer {
        let mut credit: Decimal = entries
            .iter()
            .filter(|e| e.amount < Decimal::ZERO)
            .map(|e| -e.amount)
            .sum();
        for entry in entries.iter().filter(|e| e.amount > Decimal::ZERO) {
            let settled = credit.min(entry.amount);
            credit -= settled;
            let left = entry.amount - settled;
            if left == Decimal::ZERO {
                continue;
            }
            let reason = entry.reason.clone();
            let presentable = entry.kind == kind::RETURN
                && reason
                    .as_deref()
                    .is_some_and(|r| PRESENTED_AGAIN.contains(&r))
                && !entry
                    .document
                    .as_deref()
                    .is_some_and(|debit| carrying.contains(debit));
            let invoice_due = |debit: &str| {
                by_reference
                    .get(&(kind::DIRECT_DEBIT, debit))
                    .and_then(|d| d.document.as_deref())
                    .and_then(|invoice| by_reference.get(&(kind::INVOICE, invoice)))
                    .and_then(|invoice| invoice.due_date)
            };
            let overdue_from = match entry.kind.as_str() {
                kind::INVOICE => entry.due_date.or(Some(entry.entry_date)),
                kind::RETURN if presentable => presented
                    .get(&entry.reference)
                    .and_then(|debit| by_reference.get(&(kind::DIRECT_DEBIT, debit.as_str())))
                    .map(|debit| debit.entry_date),
                kind::RETURN => entry
                    .document
                    .as_deref()
                    .and_then(invoice_due)
                    .or(Some(entry.entry_date)),
                _ => None,
            };
            open.push(OpenAmount {
                customer_id: customer.to_string(),
                reference: entry.reference.clone(),
                kind: entry.kind.clone(),
                entry_date: entry.entry_date,
                open: left,
                overdue_from,
                presentable: presentable && !presented.contains_key(&entry.reference),
                reason,
            });
        }
    }
    open
}

/// The lettering of the customer account (411): per customer, in the order
/// the entries count, each run of entries that brings the balance back to
/// zero shares a code (`A`, `B`, …, `Z`, `AA`, …), as an accountant letters
/// an invoice with the payments that settle it. Entries of a run not yet
/// closed have none: they are the open items. Same order as `entries`.
pub fn lettering(entries: &[AccountEntry]) -> Vec<Option<String>> {
    fn code(mut n: usize) -> String {
        let mut letters = Vec::new();
        loop {
            letters.push(b'A' + (n % 26) as u8);
            if n < 26 {
                break;
            }
            n = n / 26 - 1;
        }
        letters.reverse();
        String::from_utf8(letters).expect("ASCII letters")
    }
    let mut codes = vec![None; entries.len()];
    let mut runs: HashMap<&str, (Decimal, Vec<usize>, usize)> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let (balance, run, next) =
            runs.entry(entry.customer_id.as_str())
                .or_insert((Decimal::ZERO, Vec::new(), 0));
        *balance += entry.amount;
        run.push(i);
        if balance.is_zero() {
            let letter = code(*next);
            *next += 1;
            for j in run.drain(..) {
                codes[j] = Some(letter.clone());
            }
        }
    }
    codes
}

/// The `account_entries` dataset's columns (interface.md): amounts signed,
/// scale 2; `lettering` the code shared by the entries that settle each
/// other (`lettering`).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("entry_date", DataType::Date32, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("reference", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(18, 2), false),
        Field::new("due_date", DataType::Date32, true),
        Field::new("document", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("lettering", DataType::Utf8, true),
    ]))
}

/// Rewrites the `account_entries` dataset whole from the ledger: what
/// every command that records entries does last.
pub async fn write_dataset(connection: &Connection, lake: &Lake) -> Result<u64, AccountError> {
    let entries = entries(connection)?;
    let text = |f: fn(&AccountEntry) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(entries.iter().map(f)))
    };
    let optional = |f: fn(&AccountEntry) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(entries.iter().map(f)))
    };
    let days = crate::core::month::epoch_days;
    let cents = entries.iter().map(|e| {
        let mut amount = e.amount;
        amount.rescale(2);
        amount.mantissa()
    });
    let columns: Vec<ArrayRef> = vec![
        text(|e| &e.customer_id),
        Arc::new(Date32Array::from_iter_values(
            entries.iter().map(|e| days(e.entry_date)),
        )),
        text(|e| &e.kind),
        text(|e| &e.reference),
        Arc::new(Decimal128Array::from_iter_values(cents).with_precision_and_scale(18, 2)?),
        Arc::new(Date32Array::from_iter(
            entries.iter().map(|e| e.due_date.map(days)),
        )),
        optional(|e| e.document.as_deref()),
        optional(|e| e.reason.as_deref()),
        text(|e| &e.source),
        Arc::new(StringArray::from(lettering(&entries))),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let key = format!("{}/part-0.parquet", datasets::ACCOUNT_ENTRIES);
    lake.write_parquet(&key, schema(), &[batch]).await?;
    Ok(entries.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn entry(kind: &str, reference: &str, day: &str, amount: &str) -> AccountEntry {
        AccountEntry {
            customer_id: "C1".into(),
            entry_date: date(day),
            kind: kind.into(),
            reference: reference.into(),
            amount: amount.parse().unwrap(),
            due_date: None,
            document: None,
            reason: None,
            source: "test".into(),
        }
    }

    #[test]
    fn a_payment_settles_the_oldest_amount_first() {
        let mut october = entry(kind::INVOICE, "F-1", "2026-11-01", "30.00");
        october.due_date = Some(date("2026-11-16"));
        let mut november = entry(kind::INVOICE, "F-2", "2026-12-01", "20.00");
        november.due_date = Some(date("2026-12-16"));
        let paid = entry(kind::TRANSFER, "BANK-1", "2026-12-03", "-35.00");
        let all = vec![october, november, paid];
        let open = open_amounts(&all, &HashMap::new(), date("2026-12-31"));
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].reference, "F-2");
        assert_eq!(open[0].open, "15.00".parse::<Decimal>().unwrap());
        assert_eq!(open[0].overdue_from, Some(date("2026-12-16")));
        assert_eq!(
            balances_at(&all, date("2026-12-02"))["C1"],
            "50.00".parse::<Decimal>().unwrap()
        );
    }

    #[test]
    fn a_return_of_insufficient_funds_waits_for_the_next_debit_then_is_not_presented_again() {
        let mut invoice = entry(kind::INVOICE, "F-1", "2026-11-01", "30.00");
        invoice.due_date = Some(date("2026-11-16"));
        let mut debit = entry(kind::DIRECT_DEBIT, "F-1", "2026-11-16", "-30.00");
        debit.document = Some("F-1".into());
        let mut returned = entry(kind::RETURN, "RET-1", "2026-11-20", "30.00");
        returned.document = Some("F-1".into());
        returned.reason = Some("AM04".into());
        let all = vec![invoice.clone(), debit.clone(), returned.clone()];
        let open = open_amounts(&all, &HashMap::new(), date("2026-11-30"));
        assert_eq!(open.len(), 1);
        assert!(open[0].presentable);
        assert_eq!(open[0].overdue_from, None);

        // Carried by December's debit: overdue from its collection date.
        let mut december = entry(kind::INVOICE, "F-2", "2026-12-01", "20.00");
        december.due_date = Some(date("2026-12-16"));
        let mut second = entry(kind::DIRECT_DEBIT, "F-2", "2026-12-16", "-50.00");
        second.document = Some("F-2".into());
        let mut again = entry(kind::RETURN, "RET-2", "2026-12-18", "50.00");
        again.document = Some("F-2".into());
        again.reason = Some("AM04".into());
        let presented = HashMap::from([("RET-1".to_string(), "F-2".to_string())]);
        let all = vec![invoice, debit, returned, december, second, again];
        let open = open_amounts(&all, &presented, date("2026-12-31"));
        let second_return = open.iter().find(|o| o.reference == "RET-2").unwrap();
        // The debit that came back was itself a presentation again.
        assert!(!second_return.presentable);
        assert_eq!(second_return.overdue_from, Some(date("2026-12-16")));
    }

    #[test]
    fn entries_that_settle_each_other_share_a_lettering_code() {
        let mut other = entry(kind::INVOICE, "F-9", "2026-11-01", "5.00");
        other.customer_id = "C2".into();
        let all = vec![
            entry(kind::INVOICE, "F-1", "2026-11-01", "30.00"),
            other,
            entry(kind::DIRECT_DEBIT, "F-1", "2026-11-16", "-30.00"),
            entry(kind::INVOICE, "F-2", "2026-12-01", "20.00"),
            entry(kind::TRANSFER, "BANK-1", "2026-12-03", "-15.00"),
        ];
        assert_eq!(
            lettering(&all),
            vec![
                Some("A".to_string()),
                None,
                Some("A".to_string()),
                None,
                None
            ]
        );
        let many: Vec<AccountEntry> = (0..28)
            .flat_map(|n| {
                [
                    entry(kind::INVOICE, &format!("F-{n}"), "2026-11-01", "1.00"),
                    entry(kind::TRANSFER, &format!("B-{n}"), "2026-11-02", "-1.00"),
                ]
            })
            .collect();
        let codes = lettering(&many);
        assert_eq!(codes[51], Some("Z".to_string()));
        assert_eq!(codes[52], Some("AA".to_string()));
        assert_eq!(codes[55], Some("AB".to_string()));
    }

    #[test]
    fn reason_codes_sort_into_presented_dunned_and_transfer() {
        assert!(!moves_to_transfer("AM04"));
        assert!(!moves_to_transfer("MS02"));
        assert!(moves_to_transfer("AC04"));
        assert!(moves_to_transfer("MD07"));
    }
}
