//! The aged balance (account.md §7): each customer's unpaid balance by days
//! past due, as of a date, for finance and for `dunning`.
//!
//! Each open amount ([`super::open_amounts`], the credits settling the
//! oldest debits first) falls in one column by the days since its
//! `overdue_from` (the due date of the invoice that asked for it, or the
//! collection date of the debit that carried it again):
//!
//! - `not_due`: not overdue yet (its due date is after the date), or with
//!   no overdue date yet (a return of insufficient funds waiting for the
//!   next invoice's debit);
//! - `days_0_30`, `days_31_60`, `days_61_90`, `days_over_90`: 0 to 30 days
//!   past due (the due date itself is day 0), 31 to 60, 61 to 90, 91 and
//!   more.
//!
//! `total` is the sum of the columns; `balance` the customer's balance at
//! the date (account.md §7), which is `total` unless the customer is in
//! credit (then no amount is open and `balance` is negative). A customer
//! is listed when something is open or its balance is not zero.
//!
//! The dataset `aged_balance/as_of=YYYY-MM-DD/part-0.parquet` holds one row
//! per customer listed; amounts are `Decimal128(18, 2)`, never floats. It is
//! rewritten whole for its date by each run of `dunning` or `receivables`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Decimal128Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{balances_at, open_amounts, AccountEntry, AccountError};
use crate::core::lake::{datasets, Lake};

/// One customer's line of the aged balance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgedBalance {
    pub customer_id: String,
    pub not_due: Decimal,
    pub days_0_30: Decimal,
    pub days_31_60: Decimal,
    pub days_61_90: Decimal,
    pub days_over_90: Decimal,
    /// The sum of the columns: what is open.
    pub total: Decimal,
    /// The customer's balance at the date.
    pub balance: Decimal,
}

impl AgedBalance {
    /// The column of an amount `days` past due (None: not due).
    fn column(&mut self, days: Option<i64>) -> &mut Decimal {
        match days {
            None => &mut self.not_due,
            Some(0..=30) => &mut self.days_0_30,
            Some(31..=60) => &mut self.days_31_60,
            Some(61..=90) => &mut self.days_61_90,
            Some(_) => &mut self.days_over_90,
        }
    }

    /// Adds another line's columns to this one (the total row).
    fn add(&mut self, other: &AgedBalance) {
        self.not_due += other.not_due;
        self.days_0_30 += other.days_0_30;
        self.days_31_60 += other.days_31_60;
        self.days_61_90 += other.days_61_90;
        self.days_over_90 += other.days_over_90;
        self.total += other.total;
        self.balance += other.balance;
    }
}

/// Days past due of an amount overdue from `overdue_from`, as of `date`:
/// None when it is not overdue yet (or has no overdue date).
pub fn days_past_due(overdue_from: Option<NaiveDate>, date: NaiveDate) -> Option<i64> {
    overdue_from
        .map(|from| (date - from).num_days())
        .filter(|days| *days >= 0)
}

/// Each customer's aged balance as of `date`, by customer id.
/// `presented`: [`super::representations`].
pub fn aged_balance(
    entries: &[AccountEntry],
    presented: &HashMap<String, String>,
    date: NaiveDate,
) -> Vec<AgedBalance> {
    let mut lines: BTreeMap<String, AgedBalance> = BTreeMap::new();
    fn line<'a>(
        lines: &'a mut BTreeMap<String, AgedBalance>,
        customer: &str,
    ) -> &'a mut AgedBalance {
        lines
            .entry(customer.to_string())
            .or_insert_with(|| AgedBalance {
                customer_id: customer.to_string(),
                ..AgedBalance::default()
            })
    }
    for open in open_amounts(entries, presented, date) {
        let aged = line(&mut lines, &open.customer_id);
        *aged.column(days_past_due(open.overdue_from, date)) += open.open;
        aged.total += open.open;
    }
    for (customer, balance) in balances_at(entries, date) {
        if !balance.is_zero() || lines.contains_key(&customer) {
            line(&mut lines, &customer).balance = balance;
        }
    }
    lines.into_values().collect()
}

/// The sum of every line (`customer_id` empty).
pub fn total(lines: &[AgedBalance]) -> AgedBalance {
    let mut total = AgedBalance::default();
    for line in lines {
        total.add(line);
    }
    total
}

/// The dataset's columns (the `as_of` partition is its folder).
pub fn schema() -> SchemaRef {
    let money = |name: &str| Field::new(name, DataType::Decimal128(18, 2), false);
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        money("not_due"),
        money("days_0_30"),
        money("days_31_60"),
        money("days_61_90"),
        money("days_over_90"),
        money("total"),
        money("balance"),
    ]))
}

/// The key of the dataset's file for `date`.
pub fn key(date: NaiveDate) -> String {
    format!("{}/as_of={date}/part-0.parquet", datasets::AGED_BALANCE)
}

/// Writes `aged_balance/as_of=<date>/part-0.parquet` (replacing the one of
/// an earlier run that day): its key.
pub async fn write_dataset(
    lake: &Lake,
    date: NaiveDate,
    lines: &[AgedBalance],
) -> Result<String, AccountError> {
    let money = |f: fn(&AgedBalance) -> Decimal| -> Result<ArrayRef, AccountError> {
        let cents = lines.iter().map(|line| {
            let mut amount = f(line);
            amount.rescale(2);
            amount.mantissa()
        });
        Ok(Arc::new(
            Decimal128Array::from_iter_values(cents).with_precision_and_scale(18, 2)?,
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            lines.iter().map(|l| l.customer_id.as_str()),
        )),
        money(|l| l.not_due)?,
        money(|l| l.days_0_30)?,
        money(|l| l.days_31_60)?,
        money(|l| l.days_61_90)?,
        money(|l| l.days_over_90)?,
        money(|l| l.total)?,
        money(|l| l.balance)?,
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let key = key(date);
    lake.write_parquet(&key, schema(), &[batch]).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::super::kind;
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn invoice(customer: &str, reference: &str, due: &str, amount: &str) -> AccountEntry {
        let due = date(due);
        AccountEntry {
            customer_id: customer.into(),
            entry_date: due - chrono::Days::new(15),
            kind: kind::INVOICE.into(),
            reference: reference.into(),
            amount: amount.parse().unwrap(),
            due_date: Some(due),
            document: None,
            reason: None,
            source: "test".into(),
        }
    }

    fn money(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn each_open_amount_falls_in_the_column_of_its_days_past_due() {
        let mut paid = invoice("C2", "F-9", "2026-10-16", "10.00");
        paid.kind = kind::TRANSFER.into();
        paid.reference = "BANK-1".into();
        paid.amount = money("-25.00");
        paid.entry_date = date("2026-12-01");
        let entries = vec![
            // C1: 120, 61, 31, 30 and 0 days past due, one not due yet.
            invoice("C1", "F-1", "2026-08-01", "1.00"),
            invoice("C1", "F-2", "2026-09-30", "2.00"),
            invoice("C1", "F-3", "2026-10-30", "4.00"),
            invoice("C1", "F-4", "2026-10-31", "8.00"),
            invoice("C1", "F-5", "2026-11-30", "16.00"),
            invoice("C1", "F-6", "2026-12-15", "32.00"),
            // C2: 10.00 of the oldest paid, 5.00 left of the second; C3 in
            // credit.
            invoice("C2", "F-7", "2026-10-16", "20.00"),
            invoice("C2", "F-8", "2026-11-16", "10.00"),
            paid,
        ];
        let mut credit = invoice("C3", "A-1", "2026-11-16", "-7.50");
        credit.kind = kind::CREDIT_NOTE.into();
        let mut entries = entries;
        entries.push(credit);
        let lines = aged_balance(&entries, &HashMap::new(), date("2026-11-30"));
        let c1 = &lines[0];
        assert_eq!(c1.customer_id, "C1");
        assert_eq!(
            (
                c1.not_due,
                c1.days_0_30,
                c1.days_31_60,
                c1.days_61_90,
                c1.days_over_90
            ),
            (
                money("32.00"),
                money("24.00"),
                money("4.00"),
                money("2.00"),
                money("1.00")
            )
        );
        assert_eq!((c1.total, c1.balance), (money("63.00"), money("63.00")));
        // The transfer is dated after the date: not counted yet.
        assert_eq!(lines[1].days_31_60, money("20.00"));
        let later = aged_balance(&entries, &HashMap::new(), date("2026-12-01"));
        assert_eq!(
            (later[1].days_31_60, later[1].days_0_30, later[1].total),
            (Decimal::ZERO, money("5.00"), money("5.00"))
        );
        let c3 = &later[2];
        assert_eq!((c3.total, c3.balance), (Decimal::ZERO, money("-7.50")));
        assert_eq!(
            (total(&later).total, total(&later).balance),
            (money("68.00"), money("60.50"))
        );
    }
}
