//! The `consumption` dataset read back: one [`Pool`] per row, an allowance
//! pool of rating.md §4 (line, month, plan, group) as `rate` last left it:
//! its allowance, what its rated events consumed, what remains, the
//! overage so far, and as of when. `alerts` compares two states of it,
//! `usage` prints it for the support desk.
//!
//! - **The file.** `consumption/month=YYYY-MM/part-0.parquet`, written by
//!   `rate` after each run of a month ([`schema`]). Read here through
//!   [`Lake`]'s object store, so the same on a `file://` and an `s3://`
//!   lake.
//! - **Its columns** are read by name and cast to their type: a reader that
//!   hands over `Utf8View` text (DataFusion) or another integer width
//!   reads the same. A column of the schema that is missing, or a value
//!   that is null where it may not be, is an error naming the column.
//! - **Units.** Quantities are billed units (rating.md §3–4): seconds for
//!   a `VOICE*` group, KB for `DATA*`, messages otherwise. [`quantity_text`]
//!   says them as people do (`1 h 36 min`, `819,2 Mo`, `100 Go`, `80 SMS`),
//!   [`group_label`] names a group in French.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType,
};
use object_store::ObjectStoreExt;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::{Lake, LakeError};
use crate::core::month::{epoch_days, Month};

/// The dataset's folder in the lake.
pub const DATASET: &str = "consumption";

#[derive(Debug, thiserror::Error)]
pub enum PoolsError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("consumption {file}: {message}")]
    File { file: String, message: String },
    #[error("consumption: column {column}: {message}")]
    Column {
        column: &'static str,
        message: String,
    },
}

/// The consumption dataset's columns, as `rate` writes them.
pub fn schema() -> SchemaRef {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("msisdn", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("plan_code", DataType::Utf8, false),
        Field::new("pool_start", DataType::Date32, false),
        Field::new("allowance_group", DataType::Utf8, false),
        Field::new("unlimited", DataType::Boolean, false),
        Field::new("allowance", DataType::Int64, true),
        Field::new("consumed", DataType::Int64, false),
        Field::new("remaining", DataType::Int64, true),
        Field::new("overage_qty", DataType::Int64, false),
        Field::new("overage_amount", DataType::Decimal128(18, 6), false),
        Field::new("events", DataType::Int64, false),
        Field::new("last_event_time", utc(), true),
        Field::new("last_cdr_id", DataType::Utf8, true),
        Field::new("as_of", utc(), false),
        Field::new("last_delivery", DataType::Utf8, true),
    ]))
}

/// What names a pool in a month: its line, the start of its plan's first
/// subscription row in the month, its group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKey {
    pub msisdn: String,
    pub pool_start: NaiveDate,
    pub allowance_group: String,
}

/// One row of the consumption dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub msisdn: String,
    pub customer_id: String,
    pub plan_code: String,
    pub pool_start: NaiveDate,
    pub allowance_group: String,
    pub unlimited: bool,
    /// Billed units; None when unlimited.
    pub allowance: Option<i64>,
    pub consumed: i64,
    pub remaining: Option<i64>,
    pub overage_qty: i64,
    /// HT, exact.
    pub overage_amount: Decimal,
    pub events: i64,
    pub last_event_time: Option<DateTime<Utc>>,
    pub last_cdr_id: Option<String>,
    pub as_of: DateTime<Utc>,
    pub last_delivery: Option<String>,
}

impl Pool {
    pub fn key(&self) -> PoolKey {
        PoolKey {
            msisdn: self.msisdn.clone(),
            pool_start: self.pool_start,
            allowance_group: self.allowance_group.clone(),
        }
    }

    /// The allowance when the pool has one to measure against: not
    /// unlimited and above zero.
    pub fn finite_allowance(&self) -> Option<i64> {
        match (self.unlimited, self.allowance) {
            (false, Some(allowance)) if allowance > 0 => Some(allowance),
            _ => None,
        }
    }

    /// The whole percentage of the allowance consumed, rounded down (99 %
    /// until the allowance is used up); None without a finite allowance.
    pub fn percent_used(&self) -> Option<i64> {
        let allowance = self.finite_allowance()?;
        let percent = i128::from(self.consumed.max(0)) * 100 / i128::from(allowance);
        Some(i64::try_from(percent).unwrap_or(i64::MAX))
    }
}

/// A column of `batch` cast to `data_type`; None when the batch has no such
/// column.
fn column(
    batch: &RecordBatch,
    name: &'static str,
    data_type: &DataType,
) -> Result<Option<ArrayRef>, PoolsError> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(None);
    };
    datafusion::arrow::compute::cast(array, data_type)
        .map(Some)
        .map_err(|e| PoolsError::Column {
            column: name,
            message: format!("not readable as {data_type}: {e}"),
        })
}

fn required(
    batch: &RecordBatch,
    name: &'static str,
    data_type: &DataType,
) -> Result<ArrayRef, PoolsError> {
    column(batch, name, data_type)?.ok_or_else(|| PoolsError::Column {
        column: name,
        message: "missing".to_string(),
    })
}

fn null(column: &'static str, row: usize) -> PoolsError {
    PoolsError::Column {
        column,
        message: format!("null in row {row}"),
    }
}

/// Only the rows with a finite allowance above zero: the pools a
/// percentage is measured on (`alerts`), the others never read whole.
pub fn with_allowance(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, PoolsError> {
    batches
        .iter()
        .map(|batch| {
            let unlimited = required(batch, "unlimited", &DataType::Boolean)?;
            let allowance = required(batch, "allowance", &DataType::Int64)?;
            let keep: BooleanArray = unlimited
                .as_boolean()
                .iter()
                .zip(allowance.as_primitive::<Int64Type>().iter())
                .map(|(unlimited, allowance)| {
                    Some(unlimited == Some(false) && allowance.is_some_and(|a| a > 0))
                })
                .collect();
            datafusion::arrow::compute::filter_record_batch(batch, &keep).map_err(|e| {
                PoolsError::Column {
                    column: "allowance",
                    message: e.to_string(),
                }
            })
        })
        .collect()
}

/// What each pool consumed, by key.
pub fn consumed(batches: &[RecordBatch]) -> Result<HashMap<PoolKey, i64>, PoolsError> {
    let mut out = HashMap::new();
    for batch in batches {
        let msisdn = required(batch, "msisdn", &DataType::Utf8)?;
        let group = required(batch, "allowance_group", &DataType::Utf8)?;
        let start = required(batch, "pool_start", &DataType::Date32)?;
        let consumed = required(batch, "consumed", &DataType::Int64)?;
        let (msisdn, group) = (msisdn.as_string::<i32>(), group.as_string::<i32>());
        let start = start.as_primitive::<Date32Type>();
        let consumed = consumed.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let pool_start = start
                .value_as_date(row)
                .filter(|_| !start.is_null(row))
                .ok_or_else(|| null("pool_start", row))?;
            if msisdn.is_null(row) || group.is_null(row) || consumed.is_null(row) {
                return Err(null("msisdn, allowance_group or consumed", row));
            }
            out.insert(
                PoolKey {
                    msisdn: msisdn.value(row).to_string(),
                    pool_start,
                    allowance_group: group.value(row).to_string(),
                },
                consumed.value(row),
            );
        }
    }
    Ok(out)
}

/// The pools of record batches in the dataset's schema, in their order.
pub fn pools(batches: &[RecordBatch]) -> Result<Vec<Pool>, PoolsError> {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let money = DataType::Decimal128(18, 6);
    let mut out = Vec::new();
    for batch in batches {
        let text = |name| required(batch, name, &DataType::Utf8);
        let int = |name| required(batch, name, &DataType::Int64);
        let msisdn = text("msisdn")?;
        let customer = text("customer_id")?;
        let plan = text("plan_code")?;
        let group = text("allowance_group")?;
        let start = required(batch, "pool_start", &DataType::Date32)?;
        let unlimited = required(batch, "unlimited", &DataType::Boolean)?;
        let allowance = int("allowance")?;
        let consumed = int("consumed")?;
        let remaining = int("remaining")?;
        let overage_qty = int("overage_qty")?;
        let overage_amount = required(batch, "overage_amount", &money)?;
        let events = int("events")?;
        let last_event = required(batch, "last_event_time", &utc)?;
        let last_cdr = text("last_cdr_id")?;
        let as_of = required(batch, "as_of", &utc)?;
        let delivery = column(batch, "last_delivery", &DataType::Utf8)?;

        let (msisdn, customer, plan, group, last_cdr) = (
            msisdn.as_string::<i32>(),
            customer.as_string::<i32>(),
            plan.as_string::<i32>(),
            group.as_string::<i32>(),
            last_cdr.as_string::<i32>(),
        );
        let delivery = delivery.as_ref().map(|d| d.as_string::<i32>());
        let start = start.as_primitive::<Date32Type>();
        let unlimited = unlimited.as_boolean();
        let (allowance, consumed, remaining, overage_qty, events) = (
            allowance.as_primitive::<Int64Type>(),
            consumed.as_primitive::<Int64Type>(),
            remaining.as_primitive::<Int64Type>(),
            overage_qty.as_primitive::<Int64Type>(),
            events.as_primitive::<Int64Type>(),
        );
        let overage_amount = overage_amount.as_primitive::<Decimal128Type>();
        let last_event = last_event.as_primitive::<TimestampMicrosecondType>();
        let as_of = as_of.as_primitive::<TimestampMicrosecondType>();

        for row in 0..batch.num_rows() {
            let text = |array: &StringArray, name: &'static str| {
                (!array.is_null(row))
                    .then(|| array.value(row).to_string())
                    .ok_or_else(|| null(name, row))
            };
            let optional_text =
                |array: &StringArray| (!array.is_null(row)).then(|| array.value(row).to_string());
            let int = |array: &Int64Array, name: &'static str| {
                (!array.is_null(row))
                    .then(|| array.value(row))
                    .ok_or_else(|| null(name, row))
            };
            let optional_int = |array: &Int64Array| (!array.is_null(row)).then(|| array.value(row));
            let instant = |array: &TimestampMicrosecondArray, name: &'static str| {
                if array.is_null(row) {
                    return Ok(None);
                }
                DateTime::<Utc>::from_timestamp_micros(array.value(row))
                    .map(Some)
                    .ok_or_else(|| PoolsError::Column {
                        column: name,
                        message: format!("row {row}: not a time"),
                    })
            };
            let pool_start = if start.is_null(row) {
                return Err(null("pool_start", row));
            } else {
                start.value_as_date(row).ok_or_else(|| PoolsError::Column {
                    column: "pool_start",
                    message: format!("row {row}: not a date"),
                })?
            };
            if unlimited.is_null(row) {
                return Err(null("unlimited", row));
            }
            if overage_amount.is_null(row) {
                return Err(null("overage_amount", row));
            }
            let amount =
                Decimal::try_from_i128_with_scale(overage_amount.value(row), 6).map_err(|e| {
                    PoolsError::Column {
                        column: "overage_amount",
                        message: format!("row {row}: {e}"),
                    }
                })?;
            out.push(Pool {
                msisdn: text(msisdn, "msisdn")?,
                customer_id: text(customer, "customer_id")?,
                plan_code: text(plan, "plan_code")?,
                pool_start,
                allowance_group: text(group, "allowance_group")?,
                unlimited: unlimited.value(row),
                allowance: optional_int(allowance),
                consumed: int(consumed, "consumed")?,
                remaining: optional_int(remaining),
                overage_qty: int(overage_qty, "overage_qty")?,
                overage_amount: amount,
                events: int(events, "events")?,
                last_event_time: instant(last_event, "last_event_time")?,
                last_cdr_id: optional_text(last_cdr),
                as_of: instant(as_of, "as_of")?.ok_or_else(|| null("as_of", row))?,
                last_delivery: delivery.and_then(optional_text),
            });
        }
    }
    Ok(out)
}

/// Pools as one record batch in the dataset's [`schema`].
pub fn to_batch(pools: &[Pool]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let text = |f: fn(&Pool) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(pools.iter().map(f)))
    };
    let optional_text = |f: fn(&Pool) -> Option<&str>| -> ArrayRef {
        Arc::new(pools.iter().map(f).collect::<StringArray>())
    };
    let int = |f: fn(&Pool) -> Option<i64>| -> ArrayRef {
        Arc::new(pools.iter().map(f).collect::<Int64Array>())
    };
    let instant = |f: fn(&Pool) -> Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            pools
                .iter()
                .map(|p| f(p).map(|t| t.timestamp_micros()))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let amounts = pools.iter().map(|p| {
        let mut amount = p.overage_amount;
        amount.rescale(6);
        amount.mantissa()
    });
    let columns: Vec<ArrayRef> = vec![
        text(|p| &p.msisdn),
        text(|p| &p.customer_id),
        text(|p| &p.plan_code),
        Arc::new(Date32Array::from_iter_values(
            pools.iter().map(|p| epoch_days(p.pool_start)),
        )),
        text(|p| &p.allowance_group),
        Arc::new(BooleanArray::from_iter(
            pools.iter().map(|p| Some(p.unlimited)),
        )),
        int(|p| p.allowance),
        int(|p| Some(p.consumed)),
        int(|p| p.remaining),
        int(|p| Some(p.overage_qty)),
        Arc::new(Decimal128Array::from_iter_values(amounts).with_precision_and_scale(18, 6)?),
        int(|p| Some(p.events)),
        instant(|p| p.last_event_time),
        optional_text(|p| p.last_cdr_id.as_deref()),
        instant(|p| Some(p.as_of)),
        optional_text(|p| p.last_delivery.as_deref()),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// The folder of a month's partition.
pub fn month_prefix(month: Month) -> String {
    format!("{DATASET}/month={month}")
}

/// The months the dataset holds a file for, oldest first.
pub async fn months(lake: &Lake) -> Result<Vec<Month>, PoolsError> {
    let mut months: Vec<Month> = lake
        .list(DATASET)
        .await?
        .iter()
        .filter(|key| key.ends_with(".parquet"))
        .filter_map(|key| {
            key.strip_prefix(&format!("{DATASET}/month="))?
                .split('/')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    months.dedup();
    Ok(months)
}

/// Every record batch of a month's partition (none when it has no file),
/// read from the lake's object store.
pub async fn read_month(lake: &Lake, month: Month) -> Result<Vec<RecordBatch>, PoolsError> {
    let prefix = month_prefix(month);
    let mut batches = Vec::new();
    for key in lake.list(&prefix).await? {
        if !key.ends_with(".parquet") {
            continue;
        }
        let file = lake.url().join(&key);
        let failed = |message: String| PoolsError::File {
            file: file.clone(),
            message,
        };
        let store_err = |source| LakeError::Store {
            url: file.clone(),
            source,
        };
        let bytes = lake
            .store()
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .map_err(store_err)?
            .bytes()
            .await
            .map_err(store_err)?;
        let read = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|builder| builder.build())
            .map_err(|e| failed(e.to_string()))?
            .collect::<Result<Vec<RecordBatch>, _>>()
            .map_err(|e| failed(e.to_string()))?;
        batches.extend(read);
    }
    Ok(batches)
}

// ---- saying it --------------------------------------------------------------

/// What a group's quantities count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Kilobytes,
    Messages,
}

/// The unit of a group's billed quantities (rating.md §4).
pub fn unit(group: &str) -> Unit {
    if group.starts_with("VOICE") {
        Unit::Seconds
    } else if group.starts_with("DATA") {
        Unit::Kilobytes
    } else {
        Unit::Messages
    }
}

/// A group in French, for a customer or the support desk; a group only an
/// option knows is said by its code.
pub fn group_label(group: &str) -> String {
    match group {
        "VOICE_FR" => "Appels en France".into(),
        "SMS_FR" => "SMS en France".into(),
        "MMS_FR" => "MMS en France".into(),
        "DATA_FR" => "Données en France".into(),
        "VOICE_EU" => "Appels vers l'Union européenne".into(),
        "SMS_EU" => "SMS vers l'Union européenne".into(),
        "VOICE_DOM" => "Appels vers l'Outre-mer".into(),
        other => other.to_string(),
    }
}

/// A quantity of `group`'s billed units as people say it: `2 h`, `1 h 36
/// min`, `24 min 30 s`, `45 s`; `100 Go`, `819,2 Mo` (1 Go = 1024 Mo,
/// 1 Mo = 1024 KB, as the plans count them, at most 2 decimals, rounded
/// half away from zero); `80 SMS`, `3 MMS`, `12 messages`.
pub fn quantity_text(quantity: i64, group: &str) -> String {
    match unit(group) {
        Unit::Seconds => {
            let sign = if quantity < 0 { "-" } else { "" };
            let seconds = quantity.unsigned_abs();
            let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
            let parts: Vec<String> = [(h, "h"), (m, "min"), (s, "s")]
                .iter()
                .filter(|(value, _)| *value > 0)
                .map(|(value, unit)| format!("{value} {unit}"))
                .collect();
            if parts.is_empty() {
                "0 min".to_string()
            } else {
                format!("{sign}{}", parts.join(" "))
            }
        }
        Unit::Kilobytes => {
            let megabytes = Decimal::from(quantity) / Decimal::from(1024);
            let (value, unit) = if megabytes.abs() >= Decimal::from(1024) {
                (megabytes / Decimal::from(1024), "Go")
            } else {
                (megabytes, "Mo")
            };
            let value = value
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .normalize();
            format!(
                "{} {unit}",
                crate::documents::templates::format_decimal_fr(value, value.scale())
            )
        }
        Unit::Messages => {
            let noun = if group.starts_with("SMS") {
                "SMS"
            } else if group.starts_with("MMS") {
                "MMS"
            } else if quantity.abs() > 1 {
                "messages"
            } else {
                "message"
            };
            format!("{quantity} {noun}")
        }
    }
}

/// An instant as a Paris wall clock: `16/10/2026 à 14:08`.
pub fn paris_text(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Paris)
        .format("%d/%m/%Y à %H:%M")
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    pub(crate) fn pool(group: &str, allowance: Option<i64>, consumed: i64) -> Pool {
        Pool {
            msisdn: "33632260020".into(),
            customer_id: "C00001".into(),
            plan_code: "BLOC1H".into(),
            pool_start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            allowance_group: group.into(),
            unlimited: allowance.is_none(),
            allowance,
            consumed,
            remaining: allowance.map(|a| (a - consumed).max(0)),
            overage_qty: allowance.map_or(0, |a| (consumed - a).max(0)),
            overage_amount: "1.234567".parse().unwrap(),
            events: 3,
            last_event_time: Some(at("2026-10-16T09:02:00Z")),
            last_cdr_id: Some("R1".into()),
            as_of: at("2026-10-16T12:08:00Z"),
            last_delivery: Some("RatedCDRs_20261016_105000.csv".into()),
        }
    }

    #[test]
    fn quantities_are_said_in_their_units() {
        assert_eq!(quantity_text(7200, "VOICE_FR"), "2 h");
        assert_eq!(quantity_text(5760, "VOICE_FR"), "1 h 36 min");
        assert_eq!(quantity_text(1440, "VOICE_EU"), "24 min");
        assert_eq!(quantity_text(1470, "VOICE_FR"), "24 min 30 s");
        assert_eq!(quantity_text(45, "VOICE_FR"), "45 s");
        assert_eq!(quantity_text(0, "VOICE_FR"), "0 min");
        assert_eq!(quantity_text(104_857_600, "DATA_FR"), "100 Go");
        assert_eq!(quantity_text(1_048_576, "DATA_FR"), "1 Go");
        assert_eq!(quantity_text(838_861, "DATA_FR"), "819,2 Mo");
        assert_eq!(quantity_text(6_921_000, "DATA_FR"), "6,6 Go");
        assert_eq!(quantity_text(362, "DATA_FR"), "0,35 Mo");
        assert_eq!(quantity_text(0, "DATA_FR"), "0 Mo");
        assert_eq!(quantity_text(80, "SMS_FR"), "80 SMS");
        assert_eq!(quantity_text(3, "MMS_FR"), "3 MMS");
        assert_eq!(quantity_text(12, "CHAT"), "12 messages");
        assert_eq!(group_label("DATA_FR"), "Données en France");
        assert_eq!(group_label("CHAT"), "CHAT");
        assert_eq!(paris_text(at("2026-10-16T12:08:00Z")), "16/10/2026 à 14:08");
        assert_eq!(paris_text(at("2026-11-02T07:15:00Z")), "02/11/2026 à 08:15");
    }

    #[test]
    fn percentages_round_down_and_need_a_finite_allowance() {
        assert_eq!(pool("VOICE_FR", Some(7200), 5760).percent_used(), Some(80));
        assert_eq!(pool("VOICE_FR", Some(7200), 7199).percent_used(), Some(99));
        assert_eq!(pool("VOICE_FR", Some(3600), 4620).percent_used(), Some(128));
        assert_eq!(pool("VOICE_FR", None, 4620).percent_used(), None);
        assert_eq!(pool("MMS_FR", Some(0), 5).percent_used(), None);
    }

    #[test]
    fn rows_go_into_a_batch_and_come_back_the_same() {
        let mut unlimited = pool("SMS_FR", None, 12);
        unlimited.last_event_time = None;
        unlimited.last_cdr_id = None;
        unlimited.last_delivery = None;
        let rows = vec![pool("DATA_FR", Some(1_048_576), 968_700), unlimited];
        let batch = to_batch(&rows).unwrap();
        assert_eq!(batch.schema(), schema());
        assert_eq!(pools(&[batch]).unwrap(), rows);
    }

    #[test]
    fn the_pools_with_an_allowance_and_what_each_consumed() {
        let rows = vec![
            pool("DATA_FR", Some(1_048_576), 968_700),
            pool("SMS_FR", None, 12),
            pool("MMS_FR", Some(0), 5),
            pool("VOICE_FR", Some(3600), 600),
        ];
        let batch = to_batch(&rows).unwrap();
        let kept = pools(&with_allowance(std::slice::from_ref(&batch)).unwrap()).unwrap();
        let groups: Vec<&str> = kept.iter().map(|p| p.allowance_group.as_str()).collect();
        assert_eq!(groups, ["DATA_FR", "VOICE_FR"]);
        let consumed = consumed(&[batch]).unwrap();
        assert_eq!(consumed.len(), 4);
        assert_eq!(consumed[&rows[2].key()], 5);
    }

    #[test]
    fn a_missing_column_or_a_null_is_named() {
        let batch = to_batch(&[pool("DATA_FR", Some(10), 1)]).unwrap();
        let without = batch.project(&[0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15]);
        let error = pools(&[without.unwrap()]).unwrap_err().to_string();
        assert_eq!(error, "consumption: column consumed: missing");
        // The last delivery may be absent: a dataset written without it.
        let short = batch.project(&(0..15).collect::<Vec<_>>()).unwrap();
        assert_eq!(pools(&[short]).unwrap()[0].last_delivery, None);
    }
}
