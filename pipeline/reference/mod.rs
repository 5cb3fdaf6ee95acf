//! The integrator's reference tables (formats.md, "The integrator's
//! reference data"), loaded and validated, as Arrow tables for the SQL.
//!
//! Each table is described once (`TABLES`: column names and types); a
//! generic reader checks the header and every value, then table-specific
//! rules check the meaning (enumerations, a direct-debit customer's IBAN,
//! BIC and mandate reference by the SEPA rules of `sepa.rs`, overlapping
//! subscriptions, unknown codes). Any problem stops the stage with one line
//! naming the file, the line and the column: a wrong price list must never
//! produce invoices.
//!
//! `subscriptions.options` (codes separated by `,`) is also exploded into a
//! `subscription_options` table, one row per line, period and option.

pub mod integrator;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::core::csvfile::{self, CsvFile, DecimalMark};
use crate::core::identifiers;
use crate::mvne::upstream::{self, MONEY_PRECISION, MONEY_SCALE};

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] csvfile::CsvFileError),
    #[error("{file} line {line}, column {column}: {message}")]
    Value {
        file: String,
        line: u64,
        column: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Bool,
    Money,
    /// Money that may be negative (a charge that is a commercial gesture).
    SignedMoney,
    Date,
}

#[derive(Clone, Copy)]
struct Column {
    name: &'static str,
    kind: Kind,
    required: bool,
    /// The header may leave the column out (a column added after files
    /// were written: `vat_code`, `vat_exemption`): every value is then
    /// empty.
    may_be_absent: bool,
}

const fn col(name: &'static str, kind: Kind, required: bool) -> Column {
    Column {
        name,
        kind,
        required,
        may_be_absent: false,
    }
}

/// An optional column that older files do not have in their header.
const fn added_col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        required: false,
        may_be_absent: true,
    }
}

/// rating.md §6, "VAT by product and place": the VAT code of a product row
/// (plan fee, option, handset, charge), `S` (standard) when empty, and the
/// exemption text an `E` row must carry.
const VAT_COLUMNS: [Column; 2] = [
    added_col("vat_code", Text),
    added_col("vat_exemption", Text),
];

/// The VAT codes a product row may carry (rating.md §6): `S` standard,
/// `E` exempt.
pub const VAT_CODES: &[&str] = &["S", "E"];

struct TableSpec {
    name: &'static str,
    columns: &'static [Column],
    /// An absent file is an empty table (`charges.csv`), not an error.
    optional: bool,
}

use Kind::*;

const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "plans",
        columns: &[
            col("plan_code", Text, true),
            col("label", Text, true),
            col("voice_fr_min", Int, false),
            col("sms_fr", Int, false),
            col("mms_fr", Int, false),
            col("data_fr_mb", Int, false),
        ],
        optional: false,
    },
    TableSpec {
        name: "plan_fees",
        columns: &[
            col("plan_code", Text, true),
            col("commitment_months", Int, true),
            col("with_handset", Bool, true),
            // Empty: the combination is not sold from valid_from (FORMATS.md).
            col("monthly_fee", Money, false),
            col("valid_from", Date, true),
            VAT_COLUMNS[0],
            VAT_COLUMNS[1],
        ],
        optional: false,
    },
    TableSpec {
        name: "options",
        columns: &[
            col("option_code", Text, true),
            col("label", Text, true),
            col("monthly_fee", Money, true),
            col("monthly_fee_with_handset", Money, false),
            col("allowance_group", Text, false),
            col("allowance_qty", Int, false),
            col("valid_from", Date, true),
            VAT_COLUMNS[0],
            VAT_COLUMNS[1],
        ],
        optional: false,
    },
    TableSpec {
        name: "rate_grids",
        columns: &[
            col("grid", Int, true),
            col("zone", Text, true),
            col("event_type", Text, true),
            col("price", Money, true),
            col("connect_fee", Money, false),
            col("first_increment", Int, false),
            col("next_increment", Int, false),
            col("valid_from", Date, true),
        ],
        optional: false,
    },
    TableSpec {
        name: "destinations",
        columns: &[
            col("prefix", Text, true),
            col("zone", Text, true),
            col("label", Text, false),
        ],
        optional: false,
    },
    TableSpec {
        name: "roaming_zones",
        columns: &[
            col("mcc", Text, true),
            col("country", Text, false),
            col("roaming_zone", Text, true),
        ],
        optional: false,
    },
    TableSpec {
        name: "handsets",
        columns: &[
            col("model", Text, true),
            col("plan_code", Text, false),
            col("commitment_months", Int, false),
            col("price", Money, true),
            col("valid_from", Date, true),
            VAT_COLUMNS[0],
            VAT_COLUMNS[1],
        ],
        optional: false,
    },
    TableSpec {
        name: "customers",
        columns: &[
            col("customer_id", Text, true),
            col("kind", Text, true),
            col("name", Text, true),
            col("address1", Text, false),
            col("address2", Text, false),
            col("postcode", Text, false),
            col("city", Text, false),
            col("country", Text, false),
            col("email", Text, false),
            col("vat_number", Text, false),
            col("siret", Text, false),
            col("payment_method", Text, true),
            col("iban", Text, false),
            col("bic", Text, false),
            col("mandate_rum", Text, false),
            col("mandate_date", Date, false),
        ],
        optional: false,
    },
    TableSpec {
        name: "subscriptions",
        columns: &[
            col("msisdn", Text, true),
            col("customer_id", Text, true),
            col("plan_code", Text, true),
            col("commitment_months", Int, true),
            col("with_handset", Bool, true),
            col("rate_grid", Int, true),
            col("options", Text, false),
            col("start_date", Date, true),
            col("end_date", Date, false),
        ],
        optional: false,
    },
    TableSpec {
        name: "handset_sales",
        columns: &[
            col("sale_id", Text, true),
            col("customer_id", Text, true),
            col("msisdn", Text, true),
            col("model", Text, true),
            col("sale_date", Date, true),
        ],
        optional: false,
    },
    // account.md §5: one-off charges, optional (absent: no charge).
    TableSpec {
        name: "charges",
        columns: &[
            col("charge_id", Text, true),
            col("customer_id", Text, true),
            col("msisdn", Text, false),
            col("charge_date", Date, true),
            col("label", Text, true),
            col("amount_ht", SignedMoney, true),
            VAT_COLUMNS[0],
            VAT_COLUMNS[1],
        ],
        optional: true,
    },
];

/// A customer's payment data as customers.csv holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAccount {
    pub customer_id: String,
    pub name: String,
    pub email: Option<String>,
    pub payment_method: String,
    pub iban: Option<String>,
    pub bic: Option<String>,
    pub mandate_rum: Option<String>,
    pub mandate_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Money(i128),
    Date(NaiveDate),
}

/// One loaded table: its rows, with line numbers for messages. Read-only
/// outside this module (`check` reads the rows as typed values).
pub struct Table {
    file: String,
    spec: &'static TableSpec,
    lines: Vec<u64>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    /// A file that could not be read: no rows.
    fn unreadable(file: String, spec: &'static TableSpec) -> Table {
        Table {
            file,
            spec,
            lines: Vec::new(),
            rows: Vec::new(),
        }
    }
    /// The file it was read from, as messages name it.
    pub fn file(&self) -> &str {
        &self.file
    }
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// The line of the file a row was read from.
    pub fn line(&self, row: usize) -> u64 {
        self.lines[row]
    }
    /// The columns of formats.md, in order.
    pub fn columns(&self) -> impl Iterator<Item = &'static str> {
        self.spec.columns.iter().map(|c| c.name)
    }
    /// A value as text: money with its cents and no more zeros, dates ISO, empty for
    /// null (for comparing two copies of a table and for messages).
    pub fn cell(&self, row: usize, column: &str) -> String {
        match &self.rows[row][self.index(column)] {
            Value::Null => String::new(),
            Value::Text(t) => t.clone(),
            Value::Int(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::Money(v) => {
                // At least the cents: 299.00, 0.0125.
                let d =
                    rust_decimal::Decimal::from_i128_with_scale(*v, MONEY_SCALE as u32).normalize();
                let cents = d.round_dp(2);
                if cents == d {
                    format!("{cents:.2}")
                } else {
                    d.to_string()
                }
            }
            Value::Date(d) => d.to_string(),
        }
    }
    /// Money as an exact decimal.
    pub fn decimal(&self, row: usize, column: &str) -> Option<rust_decimal::Decimal> {
        self.money(row, column)
            .map(|m| rust_decimal::Decimal::from_i128_with_scale(m, MONEY_SCALE as u32))
    }
    fn index(&self, column: &str) -> usize {
        self.spec
            .columns
            .iter()
            .position(|c| c.name == column)
            .expect("column of the spec")
    }
    pub fn text(&self, row: usize, column: &str) -> Option<&str> {
        match &self.rows[row][self.index(column)] {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
    pub fn int(&self, row: usize, column: &str) -> Option<i64> {
        match self.rows[row][self.index(column)] {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }
    pub fn bool(&self, row: usize, column: &str) -> Option<bool> {
        match self.rows[row][self.index(column)] {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn money(&self, row: usize, column: &str) -> Option<i128> {
        match self.rows[row][self.index(column)] {
            Value::Money(v) => Some(v),
            _ => None,
        }
    }
    pub fn date(&self, row: usize, column: &str) -> Option<NaiveDate> {
        match self.rows[row][self.index(column)] {
            Value::Date(v) => Some(v),
            _ => None,
        }
    }
    /// A problem with a value, named by file, line and column.
    pub fn error(&self, row: usize, column: &str, message: impl Into<String>) -> ReferenceError {
        ReferenceError::Value {
            file: self.file.clone(),
            line: self.lines[row],
            column: column.to_string(),
            message: message.into(),
        }
    }

    fn to_batch(&self) -> RecordBatch {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (i, column) in self.spec.columns.iter().enumerate() {
            let values = self.rows.iter().map(|r| &r[i]);
            let (data_type, array): (DataType, ArrayRef) = match column.kind {
                Text => {
                    let mut b = StringBuilder::new();
                    values.for_each(|v| {
                        b.append_option(if let Value::Text(t) = v {
                            Some(t)
                        } else {
                            None
                        })
                    });
                    (DataType::Utf8, Arc::new(b.finish()))
                }
                Int => {
                    let mut b = Int64Builder::new();
                    values.for_each(|v| {
                        b.append_option(if let Value::Int(t) = v {
                            Some(*t)
                        } else {
                            None
                        })
                    });
                    (DataType::Int64, Arc::new(b.finish()))
                }
                Bool => {
                    let mut b = BooleanBuilder::new();
                    values.for_each(|v| {
                        b.append_option(if let Value::Bool(t) = v {
                            Some(*t)
                        } else {
                            None
                        })
                    });
                    (DataType::Boolean, Arc::new(b.finish()))
                }
                Money | SignedMoney => {
                    let mut b = Decimal128Builder::new()
                        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                        .expect("valid decimal type");
                    values.for_each(|v| {
                        b.append_option(if let Value::Money(t) = v {
                            Some(*t)
                        } else {
                            None
                        })
                    });
                    (
                        DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
                        Arc::new(b.finish()),
                    )
                }
                Date => {
                    let mut b = Date32Builder::new();
                    values.for_each(|v| {
                        b.append_option(if let Value::Date(t) = v {
                            Some(upstream::epoch_days(*t))
                        } else {
                            None
                        })
                    });
                    (DataType::Date32, Arc::new(b.finish()))
                }
            };
            fields.push(Field::new(column.name, data_type, !column.required));
            arrays.push(array);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns match the spec")
    }
}

/// One field of a column, by its kind; the reason when it is not one.
fn parse_value(column: &Column, text: Option<&str>) -> Result<Value, String> {
    Ok(match (text, column.kind) {
        (None, _) if column.required => return Err("a value is required".into()),
        (None, _) => Value::Null,
        (Some(t), Text) => Value::Text(t.to_string()),
        (Some(t), Int) => Value::Int(csvfile::parse_count(t).map_err(|b| b.detail)?),
        (Some(t), Bool) => match t {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("'{t}' is not true or false")),
        },
        (Some(t), Money) => {
            let d = csvfile::parse_decimal(t, DecimalMark::Point).map_err(|b| b.detail)?;
            if d.is_sign_negative() && !d.is_zero() {
                return Err(format!("'{t}' is negative"));
            }
            Value::Money(upstream::to_micros(d))
        }
        (Some(t), SignedMoney) => Value::Money(upstream::to_micros(
            csvfile::parse_decimal(t, DecimalMark::Point).map_err(|b| b.detail)?,
        )),
        (Some(t), Date) => Value::Date(csvfile::parse_iso_date(t).map_err(|b| b.detail)?),
    })
}

/// Reads one table's bytes (`file` names it in messages). A problem with
/// the whole file is the error; a bad value is pushed to `problems` and its
/// row left out, so that a check can report every one.
/// The file names of the reference tables, in loading order
/// (`plans.csv`, `plan_fees.csv`, …).
pub fn table_files() -> impl Iterator<Item = String> {
    TABLES.iter().map(|spec| format!("{}.csv", spec.name))
}

/// The header line of a table's file (`charges.csv`): its columns, in
/// order, `;`-separated.
pub fn table_header(file: &str) -> Option<String> {
    let spec = TABLES
        .iter()
        .find(|spec| format!("{}.csv", spec.name) == file)?;
    Some(
        spec.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(";"),
    )
}

/// A table's file in `dir`: its name for messages and its bytes.
fn read_file(dir: &Path, name: &str) -> Result<(String, Vec<u8>), ReferenceError> {
    let path: PathBuf = dir.join(name);
    let file = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| ReferenceError::Read {
        path: file.clone(),
        source,
    })?;
    Ok((file, bytes))
}

fn read_table(
    file: &str,
    bytes: &[u8],
    spec: &'static TableSpec,
    problems: &mut Vec<ReferenceError>,
) -> Result<Table, ReferenceError> {
    let file = file.to_string();
    let csv = CsvFile::parse(&file, bytes)?;
    let wanted: Vec<(&str, bool)> = spec
        .columns
        .iter()
        .map(|c| (c.name, !c.may_be_absent))
        .collect();
    let index = csv.columns(&wanted)?;
    let mut table = Table {
        file: file.clone(),
        spec,
        lines: Vec::new(),
        rows: Vec::new(),
    };
    'records: for record in &csv.records {
        let err = |column: &str, message: String| ReferenceError::Value {
            file: file.clone(),
            line: record.line,
            column: column.to_string(),
            message,
        };
        // A value over several lines whose lines hold the separator is a
        // quote closed too late, which took the rows between into it: they
        // would be lost in one value. (A line break alone, in a name, is
        // text: each output makes it harmless.)
        let swallowed = record
            .fields
            .iter()
            .position(|f| csvfile::line_breaks(f) > 0 && f.contains(&b';'));
        if let Some(position) = swallowed {
            let column = spec
                .columns
                .iter()
                .zip(&index)
                .find(|(_, i)| **i == Some(position))
                .map(|(c, _)| c.name)
                .or_else(|| csv.header.get(position).map(String::as_str))
                .unwrap_or(spec.columns[0].name);
            problems.push(err(
                column,
                format!(
                    "a value holds a line break: the row runs from line {} to line {} (a quote is not closed where it should be)",
                    record.line,
                    record.line + csvfile::line_breaks(record.raw)
                ),
            ));
            continue;
        }
        if record.fields.len() != csv.header.len() {
            problems.push(err(
                spec.columns[0].name,
                format!(
                    "the row has {} fields, the header {}",
                    record.fields.len(),
                    csv.header.len()
                ),
            ));
            continue;
        }
        let mut row = Vec::with_capacity(spec.columns.len());
        for (column, i) in spec.columns.iter().zip(&index) {
            let value = csvfile::text_field(&record.fields, *i)
                .map_err(|b| b.detail)
                .and_then(|text| parse_value(column, text))
                .map_err(|message| err(column.name, message));
            match value {
                Ok(value) => row.push(value),
                Err(problem) => {
                    problems.push(problem);
                    continue 'records;
                }
            }
        }
        table.lines.push(record.line);
        table.rows.push(row);
    }
    Ok(table)
}

/// All reference tables, validated.
pub struct Reference {
    tables: Vec<Table>,
    subscription_options: RecordBatch,
}

pub const ALLOWANCE_GROUPS: &[&str] = &[
    "VOICE_FR",
    "VOICE_DOM",
    "VOICE_EU",
    "SMS_FR",
    "SMS_EU",
    "MMS_FR",
    "DATA_FR",
];
pub const ROAMING_ZONES: &[&str] = &["HOME", "EU", "ROAM_Z1", "ROAM_Z2", "ROAM_Z3"];

impl Reference {
    /// The tables of `dir`, validated: the first problem is the error.
    pub fn load(dir: &Path) -> Result<Reference, ReferenceError> {
        Reference::from_files(|name| read_file(dir, name))
    }

    /// Loads and validates the tables that `read` gives for each name of
    /// [`table_files`]: the file name to use in messages and its bytes. No
    /// other I/O (the fuzz target feeds it bytes).
    pub fn from_files(
        read: impl FnMut(&str) -> Result<(String, Vec<u8>), ReferenceError>,
    ) -> Result<Reference, ReferenceError> {
        let (mut reference, problems) = Reference::read_files(read);
        if let Some(problem) = problems.into_iter().next() {
            return Err(problem);
        }
        // A "not sold" row stops new subscriptions (validate); the lines
        // subscribed before keep the fee in force before it.
        let fees = reference.table_mut("plan_fees");
        let fee = fees.index("monthly_fee");
        let (lines, rows) = std::mem::take(&mut fees.lines)
            .into_iter()
            .zip(std::mem::take(&mut fees.rows))
            .filter(|(_, row)| row[fee] != Value::Null)
            .unzip();
        (fees.lines, fees.rows) = (lines, rows);
        reference.subscription_options = reference.explode_options()?;
        Ok(reference)
    }

    /// Every table of `dir` as far as it reads, and every problem found, in
    /// the order `load` meets them (`check` reports them all). A file that
    /// cannot be read at all is an empty table and a problem.
    pub fn read(dir: &Path) -> (Reference, Vec<ReferenceError>) {
        Reference::read_files(|name| read_file(dir, name))
    }

    /// [`Reference::read`] from the bytes `read` gives for each name of
    /// [`table_files`].
    fn read_files(
        mut read: impl FnMut(&str) -> Result<(String, Vec<u8>), ReferenceError>,
    ) -> (Reference, Vec<ReferenceError>) {
        let mut problems = Vec::new();
        let mut tables = Vec::new();
        for spec in TABLES {
            let name = format!("{}.csv", spec.name);
            let table = match read(&name) {
                // An optional table's file may be absent: no rows.
                Err(ReferenceError::Read { path, source })
                    if spec.optional && source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(Table::unreadable(path, spec))
                }
                read => {
                    read.and_then(|(file, bytes)| read_table(&file, &bytes, spec, &mut problems))
                }
            };
            tables.push(table.unwrap_or_else(|problem| {
                problems.push(problem);
                Table::unreadable(name.clone(), spec)
            }));
        }
        let reference = Reference {
            tables,
            subscription_options: RecordBatch::new_empty(Arc::new(Schema::empty())),
        };
        reference.validate(&mut problems);
        (reference, problems)
    }

    /// One table (`plans`, `rate_grids`, …) from another source's bytes,
    /// checked value by value only (the MVNE's copy, for `check`).
    pub fn read_one(
        name: &str,
        file: &str,
        bytes: &[u8],
        problems: &mut Vec<ReferenceError>,
    ) -> Option<Result<Table, ReferenceError>> {
        let spec = TABLES.iter().find(|t| t.name == name)?;
        Some(read_table(file, bytes, spec, problems))
    }

    fn table(&self, name: &str) -> &Table {
        self.tables
            .iter()
            .find(|t| t.spec.name == name)
            .expect("table of the spec")
    }

    fn table_mut(&mut self, name: &str) -> &mut Table {
        self.tables
            .iter_mut()
            .find(|t| t.spec.name == name)
            .expect("table of the spec")
    }

    /// One table by its name in formats.md (`plan_fees`), read-only.
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.spec.name == name)
    }

    fn codes(&self, table: &str, column: &str) -> HashSet<String> {
        let t = self.table(table);
        (0..t.rows.len())
            .filter_map(|r| t.text(r, column).map(str::to_string))
            .collect()
    }

    /// The meaning rules, every problem pushed (one per row at most).
    fn validate(&self, problems: &mut Vec<ReferenceError>) {
        let plans = self.codes("plans", "plan_code");
        let option_codes = self.codes("options", "option_code");
        let customers = self.codes("customers", "customer_id");
        let models = self.codes("handsets", "model");
        let commitment = |t: &Table, r: usize| -> Result<(), ReferenceError> {
            match t.int(r, "commitment_months") {
                None | Some(0) | Some(12) | Some(24) => Ok(()),
                Some(v) => Err(t.error(r, "commitment_months", format!("{v} is not 0, 12 or 24"))),
            }
        };
        let known = |t: &Table,
                     r: usize,
                     column: &str,
                     set: &HashSet<String>,
                     what: &str|
         -> Result<(), ReferenceError> {
            match t.text(r, column) {
                Some(code) if !set.contains(code) => {
                    Err(t.error(r, column, format!("unknown {what} '{code}'")))
                }
                _ => Ok(()),
            }
        };
        let one_of =
            |t: &Table, r: usize, column: &str, allowed: &[&str]| -> Result<(), ReferenceError> {
                match t.text(r, column) {
                    Some(v) if !allowed.contains(&v) => Err(t.error(
                        r,
                        column,
                        format!("'{v}' is not one of {}", allowed.join(", ")),
                    )),
                    _ => Ok(()),
                }
            };
        let grid = |t: &Table, r: usize, column: &str| -> Result<(), ReferenceError> {
            match t.int(r, column) {
                Some(1..=5) => Ok(()),
                v => Err(t.error(
                    r,
                    column,
                    format!("{} is not a grid from 1 to 5", v.unwrap_or_default()),
                )),
            }
        };
        // rating.md §6: a product row's VAT code, S or E, and E with the
        // text that says why it is exempt.
        let vat = |t: &Table, r: usize| -> Result<(), ReferenceError> {
            one_of(t, r, "vat_code", VAT_CODES)?;
            if t.text(r, "vat_code") == Some("E") && t.text(r, "vat_exemption").is_none() {
                return Err(t.error(
                    r,
                    "vat_exemption",
                    "required when vat_code is E: the exemption's reason printed on the invoice \
                     (e.g. Exonération de TVA, article 261 C du CGI)",
                ));
            }
            Ok(())
        };
        // Versioned tables: one row per key and valid_from.
        let unique = |t: &Table, key: &[&str], problems: &mut Vec<ReferenceError>| {
            let mut seen = HashMap::new();
            for r in 0..t.rows.len() {
                let k: Vec<&Value> = key.iter().map(|c| &t.rows[r][t.index(c)]).collect();
                if let Some(first) = seen.insert(format!("{k:?}"), r) {
                    problems.push(t.error(
                        r,
                        key[0],
                        format!(
                            "duplicate row for ({}): line {} has the same",
                            key.join(", "),
                            t.lines[first]
                        ),
                    ));
                }
            }
        };
        // Each row's rules, the first problem of a row pushed.
        let each = |t: &Table,
                    problems: &mut Vec<ReferenceError>,
                    rule: &dyn Fn(usize) -> Result<(), ReferenceError>| {
            problems.extend((0..t.rows.len()).filter_map(|r| rule(r).err()));
        };

        let t = self.table("plans");
        unique(t, &["plan_code"], problems);
        let t = self.table("plan_fees");
        unique(
            t,
            &[
                "plan_code",
                "commitment_months",
                "with_handset",
                "valid_from",
            ],
            problems,
        );
        each(t, problems, &|r| {
            known(t, r, "plan_code", &plans, "plan")?;
            commitment(t, r)?;
            vat(t, r)
        });
        let t = self.table("options");
        unique(t, &["option_code", "valid_from"], problems);
        each(t, problems, &|r| {
            one_of(t, r, "allowance_group", ALLOWANCE_GROUPS)?;
            vat(t, r)
        });
        let t = self.table("rate_grids");
        unique(t, &["grid", "zone", "event_type", "valid_from"], problems);
        each(t, problems, &|r| {
            grid(t, r, "grid")?;
            one_of(t, r, "event_type", upstream::EVENT_TYPES)?;
            let event = t.text(r, "event_type").unwrap_or_default();
            if matches!(event, "VOICE" | "VOICE_IN" | "DATA") {
                for column in ["first_increment", "next_increment"] {
                    match t.int(r, column) {
                        Some(v) if v >= 1 => {}
                        _ => {
                            return Err(t.error(
                                r,
                                column,
                                format!("a whole number ≥ 1 is required for {event}"),
                            ))
                        }
                    }
                }
            }
            Ok(())
        });
        let t = self.table("destinations");
        unique(t, &["prefix"], problems);
        each(t, problems, &|r| {
            let prefix = t.text(r, "prefix").unwrap_or_default();
            if !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 15 {
                return Err(t.error(r, "prefix", format!("'{prefix}' is not a prefix of digits")));
            }
            Ok(())
        });
        let t = self.table("roaming_zones");
        unique(t, &["mcc"], problems);
        each(t, problems, &|r| {
            let mcc = t.text(r, "mcc").unwrap_or_default();
            if mcc.len() != 3 || !mcc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(t.error(r, "mcc", format!("'{mcc}' is not 3 digits")));
            }
            one_of(t, r, "roaming_zone", ROAMING_ZONES)
        });
        let t = self.table("handsets");
        unique(
            t,
            &["model", "plan_code", "commitment_months", "valid_from"],
            problems,
        );
        each(t, problems, &|r| {
            known(t, r, "plan_code", &plans, "plan")?;
            commitment(t, r)?;
            if t.text(r, "plan_code").is_some() != t.int(r, "commitment_months").is_some() {
                return Err(t.error(
                    r,
                    "commitment_months",
                    "plan_code and commitment_months are both set, or both empty for the bare price",
                ));
            }
            vat(t, r)
        });
        let t = self.table("customers");
        unique(t, &["customer_id"], problems);
        each(t, problems, &|r| {
            one_of(t, r, "kind", &["B2C", "B2B"])?;
            one_of(t, r, "payment_method", &["SEPA_DD", "TRANSFER"])?;
            if t.text(r, "payment_method") == Some("SEPA_DD") {
                // The mandate the SEPA file collects under (sepa.rs).
                let iban = t
                    .text(r, "iban")
                    .ok_or_else(|| t.error(r, "iban", "required for SEPA_DD"))?;
                if let Some(problem) = identifiers::iban_problem(iban) {
                    return Err(t.error(r, "iban", problem));
                }
                if let Some(problem) = t.text(r, "bic").and_then(identifiers::bic_problem) {
                    return Err(t.error(r, "bic", problem));
                }
                let rum = t
                    .text(r, "mandate_rum")
                    .ok_or_else(|| t.error(r, "mandate_rum", "required for SEPA_DD"))?;
                if let Some(problem) = identifiers::rum_problem(rum) {
                    return Err(t.error(r, "mandate_rum", problem));
                }
                t.date(r, "mandate_date")
                    .ok_or_else(|| t.error(r, "mandate_date", "required for SEPA_DD"))?;
            }
            Ok(())
        });
        let t = self.table("subscriptions");
        let fees = self.table("plan_fees");
        let mut periods: HashMap<&str, Vec<Period>> = HashMap::new();
        each(t, problems, &|r| {
            known(t, r, "customer_id", &customers, "customer")?;
            known(t, r, "plan_code", &plans, "plan")?;
            commitment(t, r)?;
            grid(t, r, "rate_grid")?;
            for code in split_options(t.text(r, "options")) {
                if !option_codes.contains(code) {
                    return Err(t.error(r, "options", format!("unknown option '{code}'")));
                }
            }
            let start = t.date(r, "start_date").expect("required");
            if t.date(r, "end_date").is_some_and(|e| e < start) {
                return Err(t.error(r, "end_date", "ends before it starts"));
            }
            let msisdn = t.text(r, "msisdn").expect("required");
            csvfile::check_digits(msisdn, 8, 15).map_err(|b| t.error(r, "msisdn", b.detail))?;
            // A combination stated "not sold" takes no new subscription.
            let plan = t.text(r, "plan_code");
            let months = t.int(r, "commitment_months");
            let handset = t.bool(r, "with_handset");
            let in_force = (0..fees.rows.len())
                .filter(|&f| {
                    fees.text(f, "plan_code") == plan
                        && fees.int(f, "commitment_months") == months
                        && fees.bool(f, "with_handset") == handset
                        && fees.date(f, "valid_from").is_some_and(|d| d <= start)
                })
                .max_by_key(|&f| fees.date(f, "valid_from"));
            if let Some(f) = in_force.filter(|&f| fees.money(f, "monthly_fee").is_none()) {
                return Err(t.error(
                    r,
                    "plan_code",
                    format!(
                        "{} is not sold with {} months and {} on {start} ({} line {} says so)",
                        plan.unwrap_or_default(),
                        months.unwrap_or_default(),
                        if handset == Some(true) {
                            "a handset"
                        } else {
                            "no handset"
                        },
                        fees.file,
                        fees.lines[f]
                    ),
                ));
            }
            Ok(())
        });
        for r in 0..t.rows.len() {
            if let (Some(msisdn), Some(start)) = (t.text(r, "msisdn"), t.date(r, "start_date")) {
                periods
                    .entry(msisdn)
                    .or_default()
                    .push((start, t.date(r, "end_date"), r));
            }
        }
        let mut overlaps: Vec<usize> = Vec::new();
        for rows in periods.values_mut() {
            rows.sort();
            for pair in rows.windows(2) {
                let (_, end, _) = pair[0];
                let (start, _, r) = pair[1];
                if end.is_none_or(|e| e >= start) {
                    overlaps.push(r);
                }
            }
        }
        overlaps.sort();
        problems.extend(overlaps.into_iter().map(|r| {
            t.error(
                r,
                "start_date",
                "overlaps the line's previous subscription row",
            )
        }));
        let t = self.table("handset_sales");
        unique(t, &["sale_id"], problems);
        each(t, problems, &|r| {
            known(t, r, "customer_id", &customers, "customer")?;
            known(t, r, "model", &models, "handset model")
        });
        // account.md §5: a charge names a known customer, and a line of
        // that customer when it names one; its amount is in cents.
        let subscriptions = self.table("subscriptions");
        let lines: HashSet<(&str, &str)> = (0..subscriptions.rows.len())
            .filter_map(|r| {
                Some((
                    subscriptions.text(r, "msisdn")?,
                    subscriptions.text(r, "customer_id")?,
                ))
            })
            .collect();
        let t = self.table("charges");
        unique(t, &["charge_id"], problems);
        each(t, problems, &|r| {
            known(t, r, "customer_id", &customers, "customer")?;
            if let (Some(msisdn), Some(customer)) = (t.text(r, "msisdn"), t.text(r, "customer_id"))
            {
                csvfile::check_digits(msisdn, 8, 15).map_err(|b| t.error(r, "msisdn", b.detail))?;
                if !lines.contains(&(msisdn, customer)) {
                    return Err(t.error(
                        r,
                        "msisdn",
                        format!("line {msisdn} is not a line of customer {customer} in subscriptions.csv"),
                    ));
                }
            }
            if let Some(amount) = t.decimal(r, "amount_ht") {
                if amount.round_dp(2) != amount {
                    return Err(t.error(
                        r,
                        "amount_ht",
                        format!(
                            "'{}' has more than 2 decimals: a charge is invoiced in cents",
                            t.cell(r, "amount_ht")
                        ),
                    ));
                }
            }
            vat(t, r)
        });
    }

    /// account.md §5: each charge's content hash, by `charge_id`: what the
    /// ledger records when the charge is billed, so that a row changed
    /// afterwards is seen (`check`).
    pub fn charge_hashes(&self) -> HashMap<String, String> {
        let t = self.table("charges");
        (0..t.rows.len())
            .filter_map(|r| Some((t.text(r, "charge_id")?.to_string(), charge_hash(t, r))))
            .collect()
    }

    fn explode_options(&self) -> Result<RecordBatch, ReferenceError> {
        let t = self.table("subscriptions");
        let mut msisdn = StringBuilder::new();
        let mut start = Date32Builder::new();
        let mut code = StringBuilder::new();
        for r in 0..t.rows.len() {
            for option in split_options(t.text(r, "options")) {
                msisdn.append_option(t.text(r, "msisdn"));
                start.append_option(t.date(r, "start_date").map(upstream::epoch_days));
                code.append_value(option);
            }
        }
        let schema = Schema::new(vec![
            Field::new("msisdn", DataType::Utf8, false),
            Field::new("start_date", DataType::Date32, false),
            Field::new("option_code", DataType::Utf8, false),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(msisdn.finish()),
                Arc::new(start.finish()),
                Arc::new(code.finish()),
            ],
        )
        .expect("columns match"))
    }

    /// Registers every table (and `subscription_options`) in a session.
    pub fn register(&self, ctx: &SessionContext) -> Result<(), datafusion::error::DataFusionError> {
        for table in &self.tables {
            crate::engine::register_batch(ctx, table.spec.name, table.to_batch())?;
        }
        ctx.register_udf(self.prefix_zones().udf());
        crate::engine::register_batch(
            ctx,
            "subscription_options",
            self.subscription_options.clone(),
        )
    }

    /// The longest-prefix zone function built from `destinations.csv`.
    pub fn prefix_zones(&self) -> crate::engine::zones::PrefixZones {
        let t = self.table("destinations");
        let entries = (0..t.rows.len())
            .filter_map(|r| {
                Some((
                    t.text(r, "prefix")?.to_string(),
                    t.text(r, "zone")?.to_string(),
                ))
            })
            .collect();
        crate::engine::zones::PrefixZones::new(entries)
    }

    /// Checks that each customer's mandate was signed by the issue date of
    /// the invoice it collects (customer id → issue date); the first row
    /// that is not is the error.
    pub fn check_mandates_signed(
        &self,
        issue_dates: &HashMap<String, NaiveDate>,
    ) -> Result<(), ReferenceError> {
        let t = self.table("customers");
        for r in 0..t.rows.len() {
            let issued = t.text(r, "customer_id").and_then(|c| issue_dates.get(c));
            if let (Some(signed), Some(issued)) = (t.date(r, "mandate_date"), issued) {
                if signed > *issued {
                    return Err(t.error(
                        r,
                        "mandate_date",
                        format!("the mandate is signed on {signed}, after {issued}, the issue date of the invoice it would collect"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The payment data of every customer (customers.csv), for the SEPA
    /// files and the customer account (account.md §7-8).
    pub fn customer_accounts(&self) -> Vec<CustomerAccount> {
        let t = self.table("customers");
        let text = |r, c| {
            t.text(r, c)
                .map(str::to_string)
                .filter(|v: &String| !v.trim().is_empty())
        };
        (0..t.rows.len())
            .filter_map(|r| {
                Some(CustomerAccount {
                    customer_id: t.text(r, "customer_id")?.to_string(),
                    name: t.text(r, "name").unwrap_or_default().to_string(),
                    email: text(r, "email"),
                    payment_method: t.text(r, "payment_method").unwrap_or_default().to_string(),
                    iban: text(r, "iban"),
                    bic: text(r, "bic"),
                    mandate_rum: text(r, "mandate_rum"),
                    mandate_date: t.date(r, "mandate_date"),
                })
            })
            .collect()
    }

    /// Every `rate_grids.csv` row that has increments (voice and data), for
    /// the duration calculator.
    pub fn increments(&self) -> Vec<IncrementRow> {
        let t = self.table("rate_grids");
        (0..t.rows.len())
            .filter_map(|r| {
                Some(IncrementRow {
                    grid: t.int(r, "grid")?,
                    zone: t.text(r, "zone")?.to_string(),
                    event_type: t.text(r, "event_type")?.to_string(),
                    first_increment: u64::try_from(t.int(r, "first_increment")?).ok()?,
                    next_increment: u64::try_from(t.int(r, "next_increment")?).ok()?,
                    valid_from: t.date(r, "valid_from")?,
                })
            })
            .collect()
    }

    /// Money value of a column as a decimal string, for reports and tests.
    pub fn money_text(&self, table: &str, row: usize, column: &str) -> Option<String> {
        self.table(table).money(row, column).map(|m| {
            rust_decimal::Decimal::from_i128_with_scale(m, MONEY_SCALE as u32)
                .normalize()
                .to_string()
        })
    }
}

/// The increments of one `rate_grids.csv` row (rating.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementRow {
    pub grid: i64,
    pub zone: String,
    pub event_type: String,
    pub first_increment: u64,
    pub next_increment: u64,
    pub valid_from: NaiveDate,
}

/// A subscription row's period and its row index, for the overlap check.
type Period = (NaiveDate, Option<NaiveDate>, usize);

/// The columns of a charge that make its content (account.md §5), in
/// this order: a change to any of them is a change of the charge.
const CHARGE_CONTENT: &[&str] = &[
    "charge_id",
    "customer_id",
    "msisdn",
    "charge_date",
    "label",
    "amount_ht",
];

/// SHA-256 of a charge's content: its values as text (money with its cents
/// and no more zeros, dates ISO), separated by a unit separator.
fn charge_hash(t: &Table, row: usize) -> String {
    use sha2::{Digest, Sha256};
    let text: Vec<String> = CHARGE_CONTENT.iter().map(|c| t.cell(row, c)).collect();
    format!("{:x}", Sha256::digest(text.join("\u{1f}").as_bytes()))
}

fn split_options(field: Option<&str>) -> impl Iterator<Item = &str> {
    field
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_tables_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/reference");
        let reference = Reference::load(&dir).unwrap();
        assert_eq!(reference.table("customers").rows.len(), 25);
        assert_eq!(
            reference
                .money_text("plan_fees", 0, "monthly_fee")
                .as_deref(),
            Some("4.99")
        );
    }

    /// The samples' reference tables in a scratch folder, to break one.
    fn samples_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let samples =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/reference");
        for entry in std::fs::read_dir(&samples).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        dir
    }

    #[test]
    fn a_bad_value_names_file_line_and_column() {
        let dir = samples_copy();
        let fees = dir.path().join("plan_fees.csv");
        let text = std::fs::read_to_string(&fees)
            .unwrap()
            .replacen("4.99", "4,99", 1);
        std::fs::write(&fees, text).unwrap();
        let message = Reference::load(dir.path()).err().unwrap().to_string();
        assert!(message.ends_with("plan_fees.csv line 2, column monthly_fee: '4,99' is not a decimal number (the decimal separator here is '.')"), "{message}");

        // `read` goes on: the row left out, the next problems found too.
        let subscriptions = dir.path().join("subscriptions.csv");
        let text = std::fs::read_to_string(&subscriptions)
            .unwrap()
            .replacen(";4;EU2H;", ";9;EU2H;", 1);
        std::fs::write(&subscriptions, text).unwrap();
        let (reference, problems) = Reference::read(dir.path());
        let messages: Vec<String> = problems
            .iter()
            .map(|p| p.to_string().rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(
            messages,
            [
                "plan_fees.csv line 2, column monthly_fee: '4,99' is not a decimal number (the decimal separator here is '.')",
                "subscriptions.csv line 2, column rate_grid: 9 is not a grid from 1 to 5",
            ]
        );
        assert_eq!(reference.table("plan_fees").len(), 25);
    }

    #[test]
    fn a_combination_not_sold_is_left_out_of_the_fees() {
        let dir = samples_copy();
        let fees = dir.path().join("plan_fees.csv");
        let mut text = std::fs::read_to_string(&fees).unwrap();
        text.push_str("ILL20;24;true;;2026-11-01\n");
        std::fs::write(&fees, text).unwrap();
        let reference = Reference::load(dir.path()).unwrap();
        assert_eq!(reference.table("plan_fees").len(), 26);
    }

    #[test]
    fn a_vat_code_is_s_or_e_and_e_says_why() {
        let dir = samples_copy();
        // The samples have no VAT column: every row is S.
        assert!(Reference::read(dir.path()).1.is_empty());
        let options = dir.path().join("options.csv");
        let text = std::fs::read_to_string(&options).unwrap();
        let mut lines = text.lines();
        let mut out = format!("{};vat_code;vat_exemption\n", lines.next().unwrap());
        for (i, line) in lines.enumerate() {
            let vat = match i {
                0 => ";X;",
                1 => ";E;",
                2 => ";E;Exonération de TVA, article 261 C du CGI",
                _ => ";;",
            };
            out.push_str(&format!("{line}{vat}\n"));
        }
        std::fs::write(&options, out).unwrap();
        let (reference, problems) = Reference::read(dir.path());
        let messages: Vec<String> = problems
            .iter()
            .map(|p| p.to_string().rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(
            messages,
            [
                "options.csv line 2, column vat_code: 'X' is not one of S, E",
                "options.csv line 3, column vat_exemption: required when vat_code is E: the exemption's reason printed on the invoice (e.g. Exonération de TVA, article 261 C du CGI)",
            ]
        );
        let t = reference.table("options");
        assert_eq!(t.text(2, "vat_code"), Some("E"));
    }
}
