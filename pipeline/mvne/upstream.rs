//! Typed rows of the MVNE's files (formats.md, "Upstream deliveries") and
//! their Arrow schemas in the lake.
//!
//! Parsing a row either gives a typed value or a quarantine reason of the
//! form `CODE: column: detail`, where CODE is one of `MISSING_VALUE`,
//! `BAD_NUMBER`, `BAD_TIMESTAMP`, `BAD_DATE`, `UNKNOWN_VALUE`,
//! `OUT_OF_RANGE`, `FIELD_COUNT`, `BAD_ENCODING`.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rust_decimal::Decimal;

use crate::core::csvfile::{self, BadValue, DecimalMark};

/// Scale of event amounts and wholesale prices in the lake.
pub const MONEY_SCALE: i8 = 6;
pub const MONEY_PRECISION: u8 = 18;

pub const EVENT_TYPES: &[&str] = &["VOICE", "VOICE_IN", "SMS", "SMS_IN", "MMS", "DATA"];

/// The columns of RatedCDRs and BilledCDRs: (name, required in the header).
/// Every column must be present in the header; values are checked per row.
pub const CDR_COLUMNS: &[(&str, bool)] = &[
    ("cdr_id", true),
    ("msisdn", true),
    ("imsi", false),
    ("event_type", true),
    ("start_time", true),
    ("called_number", true),
    ("duration_s", true),
    ("volume_kb", true),
    ("units", true),
    ("visited_mccmnc", true),
    ("wholesale_eur", true),
];

/// A parsed CDR, borrowing its text from the record it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdr<'a> {
    pub cdr_id: &'a str,
    pub msisdn: &'a str,
    pub imsi: Option<&'a str>,
    pub event_type: &'static str,
    /// Microseconds since the epoch, UTC.
    pub start_time: i64,
    pub local_date: NaiveDate,
    pub called_number: Option<&'a str>,
    pub duration_s: Option<i64>,
    pub volume_kb: Option<i64>,
    pub units: Option<i64>,
    pub visited_mccmnc: &'a str,
    /// Wholesale amount in millionths of a euro.
    pub wholesale_micros: i128,
}

impl Cdr<'_> {
    /// A hash of the parsed values (xxh3, stable across versions and
    /// machines): two copies with the same hash have the same content. Line
    /// endings, quoting, a BOM, the column order or `0,10` vs `0,1` do not
    /// change it (rating.md §1).
    pub fn content_hash(&self) -> i64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let text = |h: &mut xxhash_rust::xxh3::Xxh3, v: Option<&str>| {
            h.update(v.unwrap_or_default().as_bytes());
            h.update(&[0x1f, v.is_some() as u8]);
        };
        let number = |h: &mut xxhash_rust::xxh3::Xxh3, v: Option<i64>| {
            h.update(&v.unwrap_or(-1).to_le_bytes());
        };
        text(&mut hasher, Some(self.msisdn));
        text(&mut hasher, self.imsi);
        text(&mut hasher, Some(self.event_type));
        hasher.update(&self.start_time.to_le_bytes());
        text(&mut hasher, self.called_number);
        number(&mut hasher, self.duration_s);
        number(&mut hasher, self.volume_kb);
        number(&mut hasher, self.units);
        text(&mut hasher, Some(self.visited_mccmnc));
        hasher.update(&self.wholesale_micros.to_le_bytes());
        hasher.digest() as i64
    }

    /// The 128-bit hash that identifies a `cdr_id` in the landing index.
    pub fn id_hash(&self) -> u128 {
        id_hash(self.cdr_id)
    }
}

/// xxh3-128 of a `cdr_id`: two ids colliding among a billion has a
/// probability below 10^-20.
pub fn id_hash(cdr_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(cdr_id.as_bytes())
}

fn reason(column: &str, bad: BadValue) -> String {
    format!("{}: {}: {}", bad.code, column, bad.detail)
}

fn required<'a>(value: Option<&'a str>, column: &str) -> Result<&'a str, String> {
    value.ok_or_else(|| format!("MISSING_VALUE: {column}: a value is required"))
}

/// Parses one CDR record; `index` maps CDR_COLUMNS to the file's columns.
pub fn parse_cdr<'a, F: csvfile::Fields + ?Sized>(
    record: &'a F,
    index: &[Option<usize>],
    header_len: usize,
    clock: &mut csvfile::ParisClock,
) -> Result<Cdr<'a>, String> {
    if record.count() != header_len {
        return Err(format!(
            "FIELD_COUNT: the row has {} fields, the header {}",
            record.count(),
            header_len
        ));
    }
    let field =
        |i: usize| csvfile::text_field(record, index[i]).map_err(|b| reason(CDR_COLUMNS[i].0, b));
    let cdr_id = required(field(0)?, "cdr_id")?;
    let msisdn = required(field(1)?, "msisdn")?;
    csvfile::check_digits(msisdn, 8, 15).map_err(|b| reason("msisdn", b))?;
    let imsi = field(2)?;
    if let Some(imsi) = imsi {
        csvfile::check_digits(imsi, 15, 15).map_err(|b| reason("imsi", b))?;
    }
    let event_text = required(field(3)?, "event_type")?;
    let event_type = EVENT_TYPES
        .iter()
        .find(|e| **e == event_text)
        .copied()
        .ok_or_else(|| {
            format!(
                "UNKNOWN_VALUE: event_type: '{event_text}' is not one of {}",
                EVENT_TYPES.join(", ")
            )
        })?;
    let (start_time, local_date) = clock
        .parse(required(field(4)?, "start_time")?)
        .map_err(|b| reason("start_time", b))?;
    let called_number = field(5)?;
    if let Some(number) = called_number {
        csvfile::check_digits(number, 1, 20).map_err(|b| reason("called_number", b))?;
    }
    if called_number.is_none() && matches!(event_type, "VOICE" | "SMS" | "MMS") {
        return Err(format!(
            "MISSING_VALUE: called_number: required for {event_type}"
        ));
    }
    let count = |i: usize| -> Result<Option<i64>, String> {
        field(i)?
            .map(|t| csvfile::parse_count(t).map_err(|b| reason(CDR_COLUMNS[i].0, b)))
            .transpose()
    };
    let duration_s = count(6)?;
    let volume_kb = count(7)?;
    let units = count(8)?;
    let (quantity_column, quantity) = match event_type {
        "VOICE" | "VOICE_IN" => ("duration_s", duration_s),
        "DATA" => ("volume_kb", volume_kb),
        _ => ("units", units),
    };
    match quantity {
        None => {
            return Err(format!(
                "MISSING_VALUE: {quantity_column}: required for {event_type}"
            ))
        }
        Some(0) if quantity_column == "units" => {
            return Err("OUT_OF_RANGE: units: must be at least 1".to_string());
        }
        Some(_) => {}
    }
    let visited = required(field(9)?, "visited_mccmnc")?;
    csvfile::check_digits(visited, 5, 6).map_err(|b| reason("visited_mccmnc", b))?;
    let wholesale_text = required(field(10)?, "wholesale_eur")?;
    let wholesale_micros = csvfile::parse_micros(wholesale_text, DecimalMark::Comma)
        .map_err(|b| reason("wholesale_eur", b))?;
    if wholesale_micros < 0 {
        return Err(format!(
            "OUT_OF_RANGE: wholesale_eur: '{wholesale_text}' is negative"
        ));
    }
    Ok(Cdr {
        cdr_id,
        msisdn,
        imsi,
        event_type,
        start_time,
        local_date,
        called_number,
        duration_s,
        volume_kb,
        units,
        visited_mccmnc: visited,
        wholesale_micros,
    })
}

/// An exact decimal with at most 6 decimals, as millionths.
pub fn to_micros(value: Decimal) -> i128 {
    let mut v = value;
    v.rescale(MONEY_SCALE as u32);
    v.mantissa()
}

fn money_type() -> DataType {
    DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE)
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Schema of the `cdrs` and `billed_cdrs` datasets; `cdr_conflicts` adds
/// `first_source_file`.
pub fn cdr_schema(with_first_source: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("cdr_id", DataType::Utf8, false),
        Field::new("msisdn", DataType::Utf8, false),
        Field::new("imsi", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("start_time", utc_micros(), false),
        Field::new("local_date", DataType::Date32, false),
        Field::new("called_number", DataType::Utf8, true),
        Field::new("duration_s", DataType::Int64, true),
        Field::new("volume_kb", DataType::Int64, true),
        Field::new("units", DataType::Int64, true),
        Field::new("visited_mccmnc", DataType::Utf8, false),
        Field::new("wholesale_eur", money_type(), false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_line", DataType::Int64, false),
        Field::new("content_hash", DataType::Int64, false),
    ];
    if with_first_source {
        fields.push(Field::new("first_source_file", DataType::Utf8, false));
    }
    Arc::new(Schema::new(fields))
}

/// The month of a day counted from 1970-01-01, as a number: 202610.
pub fn month_number(epoch_days: i32) -> u32 {
    use chrono::Datelike;
    let date = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
        + chrono::Duration::days(epoch_days as i64);
    date.year() as u32 * 100 + date.month()
}

pub use crate::core::month::epoch_days;

/// Column builders for CDR rows.
pub struct CdrBuilder {
    cdr_id: StringBuilder,
    msisdn: StringBuilder,
    imsi: StringBuilder,
    event_type: StringBuilder,
    start_time: TimestampMicrosecondBuilder,
    local_date: Date32Builder,
    called_number: StringBuilder,
    duration_s: Int64Builder,
    volume_kb: Int64Builder,
    units: Int64Builder,
    visited: StringBuilder,
    wholesale: Decimal128Builder,
    source_file: StringBuilder,
    source_line: Int64Builder,
    content_hash: Int64Builder,
    rows: usize,
}

impl Default for CdrBuilder {
    fn default() -> Self {
        CdrBuilder {
            cdr_id: StringBuilder::new(),
            msisdn: StringBuilder::new(),
            imsi: StringBuilder::new(),
            event_type: StringBuilder::new(),
            start_time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            local_date: Date32Builder::new(),
            called_number: StringBuilder::new(),
            duration_s: Int64Builder::new(),
            volume_kb: Int64Builder::new(),
            units: Int64Builder::new(),
            visited: StringBuilder::new(),
            wholesale: Decimal128Builder::new()
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                .expect("valid decimal type"),
            source_file: StringBuilder::new(),
            source_line: Int64Builder::new(),
            content_hash: Int64Builder::new(),
            rows: 0,
        }
    }
}

impl CdrBuilder {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, cdr: &Cdr<'_>, source_file: &str, line: u64, hash: i64) {
        self.cdr_id.append_value(cdr.cdr_id);
        self.msisdn.append_value(cdr.msisdn);
        self.imsi.append_option(cdr.imsi);
        self.event_type.append_value(cdr.event_type);
        self.start_time.append_value(cdr.start_time);
        self.local_date.append_value(epoch_days(cdr.local_date));
        self.called_number.append_option(cdr.called_number);
        self.duration_s.append_option(cdr.duration_s);
        self.volume_kb.append_option(cdr.volume_kb);
        self.units.append_option(cdr.units);
        self.visited.append_value(cdr.visited_mccmnc);
        self.wholesale.append_value(cdr.wholesale_micros);
        self.source_file.append_value(source_file);
        self.source_line.append_value(line as i64);
        self.content_hash.append_value(hash);
        self.rows += 1;
    }

    pub fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.cdr_id.finish()),
            Arc::new(self.msisdn.finish()),
            Arc::new(self.imsi.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.local_date.finish()),
            Arc::new(self.called_number.finish()),
            Arc::new(self.duration_s.finish()),
            Arc::new(self.volume_kb.finish()),
            Arc::new(self.units.finish()),
            Arc::new(self.visited.finish()),
            Arc::new(self.wholesale.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_line.finish()),
            Arc::new(self.content_hash.finish()),
        ];
        RecordBatch::try_new(cdr_schema(false), columns).expect("columns match the CDR schema")
    }
}

/// Schema of the `quarantine` dataset.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// Column builders for quarantined rows.
#[derive(Default)]
pub struct QuarantineBuilder {
    source_file: StringBuilder,
    line: Int64Builder,
    raw: StringBuilder,
    reason: StringBuilder,
    rows: usize,
}

impl QuarantineBuilder {
    pub fn push(&mut self, source_file: &str, line: u64, raw: &[u8], reason: &str) {
        self.source_file.append_value(source_file);
        self.line.append_value(line as i64);
        self.raw.append_value(String::from_utf8_lossy(raw));
        // The raw row is kept whole; its reason, which may quote a value of
        // megabytes, is cut.
        self.reason
            .append_value(crate::core::text::cut(reason.to_string(), 1000));
        self.rows += 1;
    }
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    pub fn finish(mut self) -> RecordBatch {
        RecordBatch::try_new(
            quarantine_schema(),
            vec![
                Arc::new(self.source_file.finish()),
                Arc::new(self.line.finish()),
                Arc::new(self.raw.finish()),
                Arc::new(self.reason.finish()),
            ],
        )
        .expect("columns match the quarantine schema")
    }
}

/// AccountStatus columns: (name, required in the header).
pub const STATUS_COLUMNS: &[(&str, bool)] = &[
    ("msisdn", true),
    ("iccid", false),
    ("imsi", false),
    ("status", true),
    ("status_since", true),
    ("activation_date", false),
];

pub const STATUSES: &[&str] = &["ACTIVE", "SUSPENDED", "TERMINATED"];

/// Schema of the `account_status` dataset: one row per line and snapshot.
pub fn status_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("snapshot_time", utc_micros(), false),
        Field::new("snapshot_date", DataType::Date32, false),
        Field::new("msisdn", DataType::Utf8, false),
        Field::new("iccid", DataType::Utf8, true),
        Field::new("imsi", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("status_since", utc_micros(), true),
        Field::new("status_since_date", DataType::Date32, true),
        Field::new("activation_date", DataType::Date32, true),
        Field::new("source_file", DataType::Utf8, false),
    ]))
}

/// SIM order columns. `puk1`/`puk2` are secrets: they go to the private
/// store only.
pub const SIM_COLUMNS: &[(&str, bool)] = &[
    ("order_id", true),
    ("iccid", true),
    ("imsi", true),
    ("msisdn", true),
    ("puk1", true),
    ("puk2", true),
    ("delivered_on", true),
];

/// Schema of the `sim_cards` dataset (no PUK codes).
pub fn sim_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("iccid", DataType::Utf8, false),
        Field::new("imsi", DataType::Utf8, true),
        Field::new("msisdn", DataType::Utf8, true),
        Field::new("delivered_on", DataType::Date32, true),
        Field::new("source_file", DataType::Utf8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> csv::ByteRecord {
        csv::ByteRecord::from(text.split(';').collect::<Vec<_>>())
    }

    fn all_columns() -> Vec<Option<usize>> {
        (0..CDR_COLUMNS.len()).map(Some).collect()
    }

    fn parse(record: &csv::ByteRecord) -> Result<Cdr<'_>, String> {
        parse_cdr(
            record,
            &all_columns(),
            11,
            &mut csvfile::ParisClock::default(),
        )
    }

    #[test]
    fn a_valid_voice_row() {
        let cdr_record = record("R1;33612345678;208010612345678;VOICE;25/10/2026 02:30:00;33698765432;61;;;20801;0,0125");
        let cdr = parse(&cdr_record).unwrap();
        assert_eq!(cdr.wholesale_micros, 12_500);
        assert_eq!(cdr.local_date.to_string(), "2026-10-25");
        assert_eq!(cdr.start_time, 1_792_888_200_000_000);
    }

    #[test]
    fn quarantine_reasons() {
        let cases = [
            (
                "R1;336;;VOICE;01/10/2026 10:00:00;336;1;;;20801;0",
                "BAD_NUMBER: msisdn",
            ),
            (
                "R1;33612345678;;FAX;01/10/2026 10:00:00;336;1;;;20801;0",
                "UNKNOWN_VALUE: event_type",
            ),
            (
                "R1;33612345678;;VOICE;32/10/2026 10:00:00;336;1;;;20801;0",
                "BAD_TIMESTAMP: start_time",
            ),
            (
                "R1;33612345678;;VOICE;01/10/2026 10:00:00;336;-1;;;20801;0",
                "OUT_OF_RANGE: duration_s",
            ),
            (
                "R1;33612345678;;DATA;01/10/2026 10:00:00;;;12a;;20801;0",
                "BAD_NUMBER: volume_kb",
            ),
            (
                "R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;;20801;0",
                "MISSING_VALUE: units",
            ),
            (
                "R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;0;20801;0",
                "OUT_OF_RANGE: units",
            ),
            (
                "R1;33612345678;;SMS;01/10/2026 10:00:00;;;;1;20801;0",
                "MISSING_VALUE: called_number",
            ),
            (
                "R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;1;20801;0.5",
                "BAD_NUMBER: wholesale_eur",
            ),
            (
                "R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;1;20801",
                "FIELD_COUNT",
            ),
        ];
        for (row, expected) in cases {
            let rec = record(row);
            let err = parse(&rec).unwrap_err();
            assert!(err.starts_with(expected), "{row} gave {err}");
        }
    }

    #[test]
    fn same_content_same_hash() {
        let a_record = record("R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;1;20801;0,10");
        let a = parse(&a_record).unwrap();
        let b_record = record("R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;1;20801;0,1");
        let b = parse(&b_record).unwrap();
        let c_record = record("R1;33612345678;;SMS;01/10/2026 10:00:00;336;;;2;20801;0,1");
        let c = parse(&c_record).unwrap();
        assert_eq!(a.content_hash(), b.content_hash());
        assert_ne!(a.content_hash(), c.content_hash());
    }
}
