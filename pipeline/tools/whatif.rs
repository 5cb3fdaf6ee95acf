//! `whatif`: what the month's usage would have earned under other tariffs
//! (docs/WHATIF.md). The month's landed CDRs are rated again, and the
//! month's subscription rows billed again, once per alternative:
//!
//! - `ACTUAL`: each line on its own grid, plan and options (what `rate` and
//!   `bill` do; it re-rates to the invoices' services HT, a cross-check);
//! - `GRID_1` … `GRID_5`: every line on that grid of `rate_grids.csv`,
//!   keeping its plan and options;
//! - `OFFER_<code>`: every line on a competitor's offer of the optional
//!   `benchmark.csv` (reference folder): its monthly fee instead of the
//!   plan's and options' fees, its allowances instead of theirs, its prices
//!   for the usage those allowances cover; the rest (calls abroad, roaming)
//!   at the line's own grid.
//!
//! The rules stay in one place: an alternative is a set of reference tables
//! seen differently (`sql/whatif/subscriptions.sql`, `plans.sql`,
//! `plan_fees.sql`, `subscription_options.sql`, `rate_grids.sql`, driven by
//! the one-row `scenario` table), registered under the names the rating,
//! billing and margin SQL read; those files then run unchanged.
//!
//! Outputs: the `whatif/month=YYYY-MM/` dataset (per alternative, customer
//! kind and plan: revenue HT, the actual revenue, the difference, wholesale
//! and margin) and `documents/YYYY-MM/whatif-YYYY-MM.svg`, a bar chart of
//! the revenue per alternative drawn here as plain SVG. Read-only on the
//! ledger and on every other dataset: nothing is numbered or issued.
//!
//! Caveat: each alternative's rated events are held in memory while its
//! lines are drafted (a month of a few million CDRs needs a few hundred MB
//! per alternative, one alternative at a time).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Decimal128Builder, Int64Builder, StringBuilder};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::core::csvfile::{self, CsvFile, DecimalMark};
use crate::core::lake::datasets::{self, WHATIF as DATASET};
use crate::core::lake::{Lake, LakeError};
use crate::core::month::Month;
use crate::documents::document::{markup_start, markup_text};
use crate::engine;
use crate::engine::sqlfiles;
use crate::mvne::upstream::{self, MONEY_PRECISION, MONEY_SCALE};
use crate::reference::ReferenceError;
use crate::settings::Settings;
use crate::stages::SessionError;

/// The competitor offers, in the reference folder; optional.
pub const BENCHMARK_FILE: &str = "benchmark.csv";

#[derive(Debug, thiserror::Error)]
pub enum WhatifError {
    #[error(transparent)]
    Prepare(#[from] SessionError),
    #[error(transparent)]
    Rate(#[from] crate::stages::rate::RateError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("whatif failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("whatif failed: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// benchmark.csv is read as the reference tables are, with their errors.
    #[error(transparent)]
    Benchmark(#[from] ReferenceError),
    #[error("{file} line 1: unknown column '{column}' (the columns are {known})")]
    UnknownColumn {
        file: String,
        column: String,
        known: String,
    },
    #[error("whatif {month}: no CDR landed for the month: run `mvnobill land` first")]
    NothingLanded { month: String },
}

/// One competitor offer of `benchmark.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// Letters, digits, `_` and `-`: the alternative is `OFFER_<offer>`.
    pub offer: String,
    pub label: String,
    pub monthly_fee: Decimal,
    /// Allowances in the units of plans.csv; `None` is unlimited.
    pub voice_fr_min: Option<i64>,
    pub sms_fr: Option<i64>,
    pub mms_fr: Option<i64>,
    pub data_fr_mb: Option<i64>,
    /// Per minute, per message, per MB, HT.
    pub voice_price: Decimal,
    pub voice_connect_fee: Option<Decimal>,
    pub voice_first_increment: i64,
    pub voice_next_increment: i64,
    pub sms_price: Decimal,
    pub mms_price: Decimal,
    pub data_price_mb: Decimal,
    pub data_first_increment: i64,
    pub data_next_increment: i64,
}

/// The columns of `benchmark.csv`: (name, required in the header).
const BENCHMARK_COLUMNS: &[(&str, bool)] = &[
    ("offer", true),
    ("label", true),
    ("monthly_fee", true),
    ("voice_fr_min", true),
    ("sms_fr", true),
    ("mms_fr", true),
    ("data_fr_mb", true),
    ("voice_price", true),
    ("sms_price", true),
    ("mms_price", true),
    ("data_price_mb", true),
    ("voice_connect_fee", false),
    ("voice_first_increment", false),
    ("voice_next_increment", false),
    ("data_first_increment", false),
    ("data_next_increment", false),
];

/// Reads `benchmark.csv` (formats of the integrator's tables: `;`, decimal
/// point, prices HT); no file is no offer. The first problem is the error,
/// naming the file, line and column.
pub fn load_benchmark(dir: &Path) -> Result<Vec<Offer>, WhatifError> {
    let path = dir.join(BENCHMARK_FILE);
    let file = path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ReferenceError::Read { path: file, source }.into()),
    };
    parse_benchmark(&file, &bytes)
}

fn parse_benchmark(file: &str, bytes: &[u8]) -> Result<Vec<Offer>, WhatifError> {
    let csv = CsvFile::parse(file, bytes).map_err(ReferenceError::from)?;
    if let Some(column) = csv.unknown_columns(BENCHMARK_COLUMNS).into_iter().next() {
        return Err(WhatifError::UnknownColumn {
            file: file.to_string(),
            column,
            known: BENCHMARK_COLUMNS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(";"),
        });
    }
    let index = csv
        .columns(BENCHMARK_COLUMNS)
        .map_err(ReferenceError::from)?;
    let mut offers = Vec::new();
    let mut seen = HashSet::new();
    for record in &csv.records {
        let err = |column: &str, message: String| {
            WhatifError::from(ReferenceError::Value {
                file: file.to_string(),
                line: record.line,
                column: column.to_string(),
                message,
            })
        };
        let text = |column: &str| -> Result<Option<&str>, WhatifError> {
            let i = BENCHMARK_COLUMNS
                .iter()
                .position(|(name, _)| *name == column)
                .expect("a benchmark column");
            csvfile::text_field(&record.fields, index[i]).map_err(|b| err(column, b.detail))
        };
        let required = |column: &str| -> Result<&str, WhatifError> {
            text(column)?.ok_or_else(|| err(column, "a value is required".into()))
        };
        let money = |column: &str, value: &str| -> Result<Decimal, WhatifError> {
            let d = csvfile::parse_decimal(value, DecimalMark::Point)
                .map_err(|b| err(column, b.detail))?;
            if d.is_sign_negative() && !d.is_zero() {
                return Err(err(column, format!("'{value}' is negative")));
            }
            Ok(d)
        };
        let allowance = |column: &str| -> Result<Option<i64>, WhatifError> {
            text(column)?
                .map(|t| csvfile::parse_count(t).map_err(|b| err(column, b.detail)))
                .transpose()
        };
        let increment = |column: &str| -> Result<i64, WhatifError> {
            match text(column)? {
                None => Ok(1),
                Some(t) => match csvfile::parse_count(t) {
                    Ok(v) if v >= 1 => Ok(v),
                    _ => Err(err(
                        column,
                        format!("'{t}': a whole number ≥ 1 is required"),
                    )),
                },
            }
        };
        let offer = required("offer")?.to_string();
        if offer.chars().count() > 20
            || !offer
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(
                "offer",
                format!("'{offer}': give 1 to 20 letters, digits, '_' or '-'"),
            ));
        }
        if !seen.insert(offer.clone()) {
            return Err(err("offer", format!("offer '{offer}' appears twice")));
        }
        offers.push(Offer {
            label: required("label")?.to_string(),
            monthly_fee: money("monthly_fee", required("monthly_fee")?)?,
            voice_fr_min: allowance("voice_fr_min")?,
            sms_fr: allowance("sms_fr")?,
            mms_fr: allowance("mms_fr")?,
            data_fr_mb: allowance("data_fr_mb")?,
            voice_price: money("voice_price", required("voice_price")?)?,
            voice_connect_fee: text("voice_connect_fee")?
                .map(|t| money("voice_connect_fee", t))
                .transpose()?,
            voice_first_increment: increment("voice_first_increment")?,
            voice_next_increment: increment("voice_next_increment")?,
            sms_price: money("sms_price", required("sms_price")?)?,
            mms_price: money("mms_price", required("mms_price")?)?,
            data_price_mb: money("data_price_mb", required("data_price_mb")?)?,
            data_first_increment: increment("data_first_increment")?,
            data_next_increment: increment("data_next_increment")?,
            offer,
        });
    }
    Ok(offers)
}

/// The `benchmark` table the SQL reads, money as Decimal128(18, 6) like the
/// reference tables.
fn benchmark_batch(offers: &[Offer]) -> RecordBatch {
    let money = || {
        Decimal128Builder::new()
            .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
            .expect("valid decimal type")
    };
    let mut text: [StringBuilder; 2] = [StringBuilder::new(), StringBuilder::new()];
    let mut amounts: [Decimal128Builder; 6] = std::array::from_fn(|_| money());
    let mut counts: [Int64Builder; 8] = std::array::from_fn(|_| Int64Builder::new());
    for o in offers {
        text[0].append_value(&o.offer);
        text[1].append_value(&o.label);
        for (builder, value) in amounts.iter_mut().zip([
            Some(o.monthly_fee),
            Some(o.voice_price),
            o.voice_connect_fee,
            Some(o.sms_price),
            Some(o.mms_price),
            Some(o.data_price_mb),
        ]) {
            builder.append_option(value.map(upstream::to_micros));
        }
        for (builder, value) in counts.iter_mut().zip([
            o.voice_fr_min,
            o.sms_fr,
            o.mms_fr,
            o.data_fr_mb,
            Some(o.voice_first_increment),
            Some(o.voice_next_increment),
            Some(o.data_first_increment),
            Some(o.data_next_increment),
        ]) {
            builder.append_option(value);
        }
    }
    let money_type = DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE);
    let mut fields = vec![
        Field::new("offer", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
    ];
    let mut arrays: Vec<ArrayRef> = text.iter_mut().map(|b| Arc::new(b.finish()) as _).collect();
    for (name, builder) in [
        "monthly_fee",
        "voice_price",
        "voice_connect_fee",
        "sms_price",
        "mms_price",
        "data_price_mb",
    ]
    .into_iter()
    .zip(amounts.iter_mut())
    {
        fields.push(Field::new(name, money_type.clone(), true));
        arrays.push(Arc::new(builder.finish()));
    }
    for (name, builder) in [
        "voice_fr_min",
        "sms_fr",
        "mms_fr",
        "data_fr_mb",
        "voice_first_increment",
        "voice_next_increment",
        "data_first_increment",
        "data_next_increment",
    ]
    .into_iter()
    .zip(counts.iter_mut())
    {
        fields.push(Field::new(name, DataType::Int64, true));
        arrays.push(Arc::new(builder.finish()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("benchmark columns")
}

/// One tariff the month is re-rated under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Alternative {
    /// `ACTUAL`, `GRID_<n>` or `OFFER_<code>`.
    name: String,
    kind: &'static str,
    grid: Option<i64>,
    offer: Option<String>,
    label: String,
}

/// The actual tariffs, each grid of rate_grids.csv, then each offer in the
/// order of benchmark.csv.
fn alternatives(grids: &[i64], offers: &[Offer]) -> Vec<Alternative> {
    let mut list = vec![Alternative {
        name: "ACTUAL".into(),
        kind: "ACTUAL",
        grid: None,
        offer: None,
        label: "Actual tariffs".into(),
    }];
    list.extend(grids.iter().map(|&grid| Alternative {
        name: format!("GRID_{grid}"),
        kind: "GRID",
        grid: Some(grid),
        offer: None,
        label: format!("Grid {grid}"),
    }));
    list.extend(offers.iter().map(|o| Alternative {
        name: format!("OFFER_{}", o.offer),
        kind: "OFFER",
        grid: None,
        offer: Some(o.offer.clone()),
        label: o.label.clone(),
    }));
    list
}

/// The `alternatives` table: each alternative with its position.
fn alternatives_batch(list: &[Alternative]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("position", DataType::Int64, false),
        Field::new("alternative", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("grid", DataType::Int64, true),
        Field::new("offer", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, false),
    ]);
    let mut position = Int64Builder::new();
    let mut name = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut grid = Int64Builder::new();
    let mut offer = StringBuilder::new();
    let mut label = StringBuilder::new();
    for (i, a) in list.iter().enumerate() {
        position.append_value(i as i64);
        name.append_value(&a.name);
        kind.append_value(a.kind);
        grid.append_option(a.grid);
        offer.append_option(a.offer.as_deref());
        label.append_value(&a.label);
    }
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(position.finish()),
            Arc::new(name.finish()),
            Arc::new(kind.finish()),
            Arc::new(grid.finish()),
            Arc::new(offer.finish()),
            Arc::new(label.finish()),
        ],
    )
    .expect("alternatives columns")
}

/// What one alternative earns over the month, all segments together.
#[derive(Debug, Clone, Serialize)]
pub struct AlternativeFigures {
    pub alternative: String,
    pub kind: String,
    pub label: String,
    pub revenue_ht: Decimal,
    pub difference_ht: Decimal,
    pub wholesale: Decimal,
    pub margin: Decimal,
    /// Events the alternative could not price (no price row for the zone,
    /// no destination): their revenue is missing from `revenue_ht`.
    pub unpriced_cdrs: u64,
}

/// What one alternative earns in one segment (a customer kind or a plan).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentFigures {
    pub segment: String,
    pub alternative: String,
    pub revenue_ht: Decimal,
    pub actual_revenue_ht: Decimal,
    pub difference_ht: Decimal,
    pub margin: Decimal,
}

#[derive(Debug, Default, Serialize)]
pub struct WhatifReport {
    pub month: String,
    pub customers: u64,
    pub lines: u64,
    /// The month's invoices' subscription, option and usage HT, when the
    /// month is billed: the ACTUAL alternative re-rates to it unless the
    /// reference tables changed since.
    pub invoiced_services_ht: Option<Decimal>,
    pub alternatives: Vec<AlternativeFigures>,
    pub by_customer_kind: Vec<SegmentFigures>,
    pub by_plan: Vec<SegmentFigures>,
    pub dataset: String,
    pub chart: String,
}

/// An amount to the cent, for the text report.
fn cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

impl std::fmt::Display for WhatifReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "whatif {}: {} customers, {} lines re-rated under {} alternatives (services HT, €); wholesale {}",
            self.month,
            self.customers,
            self.lines,
            self.alternatives.len(),
            cents(self.alternatives.first().map(|a| a.wholesale).unwrap_or_default())
        )?;
        if let Some(invoiced) = self.invoiced_services_ht {
            write!(f, "; invoiced {invoiced}")?;
        }
        write!(
            f,
            "\n  {:<14} {:>12} {:>12} {:>12} {:>9}  label",
            "alternative", "revenue", "vs actual", "margin", "unpriced"
        )?;
        for a in &self.alternatives {
            write!(
                f,
                "\n  {:<14} {:>12} {:>12} {:>12} {:>9}  {}",
                a.alternative,
                a.revenue_ht,
                format!("{:+}", a.difference_ht),
                cents(a.margin),
                a.unpriced_cdrs,
                a.label
            )?;
        }
        for (title, rows) in [
            ("per customer kind", &self.by_customer_kind),
            ("per plan", &self.by_plan),
        ] {
            write!(f, "\n  {title}:")?;
            let mut segment = "";
            for s in rows {
                if s.segment != segment {
                    segment = &s.segment;
                    write!(f, "\n    {segment} (actual {}):", s.actual_revenue_ht)?;
                }
                write!(
                    f,
                    "\n      {:<14} {:>12} {:>12} margin {}",
                    s.alternative,
                    s.revenue_ht,
                    format!("{:+}", s.difference_ht),
                    cents(s.margin)
                )?;
            }
        }
        write!(
            f,
            "\n  dataset: {}\n  chart:   {}",
            self.dataset, self.chart
        )
    }
}

/// The chart of a month, below the lake.
pub fn chart_key(month: Month) -> String {
    format!("documents/{month}/whatif-{month}.svg")
}

/// The reference tables an alternative sees differently: sql/whatif/ reads
/// each as loaded under `reference_<name>` and registers its own view under
/// `<name>`.
const OVERRIDDEN: [&str; 5] = [
    "subscriptions",
    "plans",
    "plan_fees",
    "subscription_options",
    "rate_grids",
];

pub async fn whatif(
    settings: &Settings,
    lake: &Lake,
    month: Month,
) -> Result<WhatifReport, WhatifError> {
    let month_text = month.to_string();
    let partition = format!("month={month}");
    let offers = load_benchmark(&settings.reference_dir)?;
    let ctx = crate::stages::session(settings, month, None).await?;
    if !engine::register_path(
        &ctx,
        lake,
        "month_cdrs",
        &format!("{}/{partition}", datasets::CDRS),
        None,
    )
    .await?
    {
        return Err(WhatifError::NothingLanded { month: month_text });
    }
    // The events `rate` rates: one billed copy per cdr_id (rating.md §1).
    crate::stages::rate::register_copies(&ctx, lake, month).await?;
    let events = ctx.table("month_events").await?.into_view();
    ctx.register_table("cdrs", events)?;
    crate::stages::register_account_status(&ctx, lake).await?;
    for name in OVERRIDDEN {
        let table = ctx.table_provider(name).await?;
        ctx.register_table(format!("reference_{name}"), table)?;
    }
    engine::register_batch(&ctx, "benchmark", benchmark_batch(&offers))?;
    let grids: Vec<i64> = engine::rows_strings(
        &ctx,
        "SELECT DISTINCT grid FROM reference_rate_grids ORDER BY grid",
    )
    .await?
    .iter()
    .filter_map(|row| row[0].parse().ok())
    .collect();
    let list = alternatives(&grids, &offers);
    let all = alternatives_batch(&list);
    engine::register_batch(&ctx, "alternatives", all.clone())?;

    // One alternative at a time: its row of `alternatives` as `scenario`,
    // its tables, then the rating, billing and margin SQL as `rate`, `bill`
    // and `finance` run them.
    let scenario = all.project(
        &["alternative", "grid", "offer"]
            .map(|column| all.schema().index_of(column))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let mut margins = Vec::new();
    for (i, alternative) in list.iter().enumerate() {
        tracing::info!("whatif {month}: {}", alternative.name);
        engine::register_batch(&ctx, "scenario", scenario.slice(i, 1))?;
        engine::run_layer(&ctx, sqlfiles::WHATIF_REFERENCE).await?;
        engine::run_layer(&ctx, sqlfiles::REFERENCE).await?;
        crate::stages::rate::register_no_carried_pools(&ctx)?;
        engine::run_layer(&ctx, sqlfiles::RATING).await?;
        engine::run_layer(&ctx, sqlfiles::WHATIF_ALTERNATIVE).await?;
        margins.extend(
            ctx.sql(sqlfiles::WHATIF_MARGIN.sql)
                .await?
                .collect()
                .await?,
        );
    }
    let schema: SchemaRef = match margins.first() {
        Some(batch) => batch.schema(),
        None => Arc::new(
            ctx.sql(sqlfiles::WHATIF_MARGIN.sql)
                .await?
                .schema()
                .as_arrow()
                .clone(),
        ),
    };
    engine::register_batch(
        &ctx,
        "alternative_margins",
        concat_batches(&schema, &margins)?,
    )?;

    let frame = ctx.sql(sqlfiles::WHATIF.sql).await?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    // One batch: the same rows give the same file, byte for byte.
    let batch = concat_batches(&schema, &frame.collect().await?)?;
    let key = format!("{DATASET}/{partition}/part-0.parquet");
    lake.write_parquet(&key, schema, std::slice::from_ref(&batch))
        .await?;
    engine::register_batch(&ctx, DATASET, batch)?;

    let mut report = WhatifReport {
        month: month_text,
        dataset: lake.url().join(&format!("{DATASET}/{partition}/")),
        ..Default::default()
    };
    summarise(&ctx, &mut report).await?;
    if engine::register_path(
        &ctx,
        lake,
        "issued_invoices",
        &format!("{}/{partition}", datasets::INVOICES),
        None,
    )
    .await?
    {
        let invoiced = engine::row_strings(
            &ctx,
            "SELECT COALESCE(SUM(subscription_ht + options_ht + usage_ht), 0) FROM issued_invoices",
        )
        .await?;
        report.invoiced_services_ht = invoiced[0].parse().ok();
    }
    let chart = chart_key(month);
    lake.put(&chart, chart_svg(&report).into_bytes()).await?;
    report.chart = lake.url().join(&chart);
    Ok(report)
}

/// The report's figures, from the dataset just built.
async fn summarise(ctx: &SessionContext, report: &mut WhatifReport) -> Result<(), WhatifError> {
    let counts = engine::row_strings(
        ctx,
        "SELECT COUNT(DISTINCT customer_id), COUNT(DISTINCT msisdn)
         FROM alternative_margins WHERE alternative = 'ACTUAL'",
    )
    .await?;
    report.customers = counts[0].parse().unwrap_or_default();
    report.lines = counts[1].parse().unwrap_or_default();
    let rows = engine::rows_strings(
        ctx,
        "SELECT alternative, alternative_kind, label, customer_kind, COALESCE(plan_code, ''),
                revenue_ht, actual_revenue_ht, difference_ht, wholesale, margin, unpriced_cdrs
         FROM whatif ORDER BY position, customer_kind, plan_code",
    )
    .await?;
    let decimal = |text: &str| text.parse::<Decimal>().unwrap_or_default();
    let mut totals: Vec<AlternativeFigures> = Vec::new();
    let mut kinds: BTreeMap<(String, usize), SegmentFigures> = BTreeMap::new();
    let mut plans: BTreeMap<(String, usize), SegmentFigures> = BTreeMap::new();
    for row in &rows {
        let (revenue, actual, difference, margin) = (
            decimal(&row[5]),
            decimal(&row[6]),
            decimal(&row[7]),
            decimal(&row[9]),
        );
        if totals.last().is_none_or(|t| t.alternative != row[0]) {
            totals.push(AlternativeFigures {
                alternative: row[0].clone(),
                kind: row[1].clone(),
                label: row[2].clone(),
                revenue_ht: Decimal::ZERO,
                difference_ht: Decimal::ZERO,
                wholesale: Decimal::ZERO,
                margin: Decimal::ZERO,
                unpriced_cdrs: 0,
            });
        }
        let position = totals.len() - 1;
        let total = &mut totals[position];
        total.revenue_ht += revenue;
        total.difference_ht += difference;
        total.wholesale += decimal(&row[8]);
        total.margin += margin;
        total.unpriced_cdrs += row[10].parse::<u64>().unwrap_or_default();
        for (segments, segment) in [(&mut kinds, &row[3]), (&mut plans, &row[4])] {
            let entry = segments
                .entry((segment.clone(), position))
                .or_insert_with(|| SegmentFigures {
                    segment: segment.clone(),
                    alternative: row[0].clone(),
                    revenue_ht: Decimal::ZERO,
                    actual_revenue_ht: Decimal::ZERO,
                    difference_ht: Decimal::ZERO,
                    margin: Decimal::ZERO,
                });
            entry.revenue_ht += revenue;
            entry.actual_revenue_ht += actual;
            entry.difference_ht += difference;
            entry.margin += margin;
        }
    }
    report.alternatives = totals;
    report.by_customer_kind = kinds.into_values().collect();
    report.by_plan = plans.into_values().collect();
    Ok(())
}

/// A bar chart of the revenue HT per alternative: one `<rect
/// class="bar">` per alternative (the actual one also of class `actual`),
/// its exact amount above it (on a white halo, over the dashed line) and
/// its name below, a dashed line at the
/// actual revenue. Heights are computed in decimals; no font or script is
/// loaded, so any browser or image viewer shows it the same.
pub fn chart_svg(report: &WhatifReport) -> String {
    const PLOT_HEIGHT: i64 = 300;
    const TOP: i64 = 60;
    const LEFT: i64 = 40;
    const BAR: i64 = 64;
    const STEP: i64 = 96;
    let count = report.alternatives.len() as i64;
    // Wide enough for the title with a single bar.
    let width = (LEFT * 2 + STEP * count).max(480);
    let height = TOP + PLOT_HEIGHT + 56;
    let base = TOP + PLOT_HEIGHT;
    let max = report
        .alternatives
        .iter()
        .map(|a| a.revenue_ht)
        .max()
        .unwrap_or_default();
    // Pixels for an amount, to a tenth, from 0 at the axis to PLOT_HEIGHT at the largest.
    let scale = |amount: Decimal| -> Decimal {
        if max <= Decimal::ZERO || amount <= Decimal::ZERO {
            return Decimal::ZERO;
        }
        (amount * Decimal::from(PLOT_HEIGHT) / max)
            .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
    };
    let px = |value: Decimal| format!("{value:.1}");
    let (width_text, height_text) = (width.to_string(), height.to_string());
    let (left, base_text, right) = (
        LEFT.to_string(),
        base.to_string(),
        (width - LEFT).to_string(),
    );
    let mut svg = Svg::default();
    svg.write(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    svg.line();
    svg.write(Event::Start(markup_start(
        "svg",
        &[
            ("xmlns", "http://www.w3.org/2000/svg"),
            ("width", &width_text),
            ("height", &height_text),
            ("viewBox", &format!("0 0 {width} {height}")),
            ("font-family", "sans-serif"),
            ("font-size", "12"),
        ],
    )));
    svg.line();
    svg.leaf(
        "title",
        &[],
        &format!("Revenue HT per alternative, {}", report.month),
    );
    svg.empty(
        "rect",
        &[
            ("x", "0"),
            ("y", "0"),
            ("width", &width_text),
            ("height", &height_text),
            ("fill", "#ffffff"),
        ],
    );
    svg.leaf(
        "text",
        &[
            ("x", &left),
            ("y", "28"),
            ("font-size", "16"),
            ("font-weight", "bold"),
        ],
        &format!("Revenue HT per alternative, {} (services, €)", report.month),
    );
    svg.empty(
        "line",
        &[
            ("x1", &left),
            ("y1", &base_text),
            ("x2", &right),
            ("y2", &base_text),
            ("stroke", "#333333"),
        ],
    );
    // The actual level first, so the bars and their figures are drawn over it.
    if let Some(actual) = report.alternatives.iter().find(|a| a.kind == "ACTUAL") {
        let y = px(Decimal::from(base) - scale(actual.revenue_ht));
        svg.empty(
            "line",
            &[
                ("class", "actual-level"),
                ("x1", &left),
                ("y1", &y),
                ("x2", &right),
                ("y2", &y),
                ("stroke", "#1f4e79"),
                ("stroke-dasharray", "4 4"),
            ],
        );
    }
    for (i, a) in report.alternatives.iter().enumerate() {
        let x = LEFT + STEP * i as i64 + (STEP - BAR) / 2;
        let bar = scale(a.revenue_ht);
        let y = Decimal::from(base) - bar;
        let (bar, value_y, y) = (px(bar), px(y - Decimal::from(6)), px(y));
        let (class, fill) = match a.kind.as_str() {
            "ACTUAL" => ("bar actual", "#1f4e79"),
            "GRID" => ("bar", "#6f9fd8"),
            _ => ("bar", "#e3893c"),
        };
        let centre = (x + BAR / 2).to_string();
        let rect = markup_start(
            "rect",
            &[
                ("class", class),
                ("data-alternative", &a.alternative),
                ("x", &x.to_string()),
                ("y", &y),
                ("width", &BAR.to_string()),
                ("height", &bar),
                ("fill", fill),
            ],
        );
        svg.write(Event::Start(rect));
        svg.write(Event::Start(BytesStart::new("title")));
        svg.write(Event::Text(markup_text(&format!(
            "{}: {} € HT",
            a.label, a.revenue_ht
        ))));
        svg.write(Event::End(BytesEnd::new("title")));
        svg.write(Event::End(BytesEnd::new("rect")));
        svg.line();
        svg.leaf(
            "text",
            &[
                ("x", &centre),
                ("y", &value_y),
                ("text-anchor", "middle"),
                ("stroke", "#ffffff"),
                ("stroke-width", "3"),
                ("paint-order", "stroke"),
            ],
            &a.revenue_ht.to_string(),
        );
        svg.leaf(
            "text",
            &[
                ("x", &centre),
                ("y", &(base + 18).to_string()),
                ("text-anchor", "middle"),
            ],
            &a.alternative,
        );
        svg.leaf(
            "text",
            &[
                ("x", &centre),
                ("y", &(base + 34).to_string()),
                ("text-anchor", "middle"),
                ("font-size", "10"),
                ("fill", "#555555"),
            ],
            &shorten(&a.label, 16),
        );
    }
    svg.write(Event::End(BytesEnd::new("svg")));
    svg.line();
    String::from_utf8(svg.writer.into_inner()).expect("the writer was given UTF-8 only")
}

/// The chart through quick-xml's writer, one element a line (no
/// indentation); texts and attribute values escaped by
/// [`escape_markup`](crate::documents::document::escape_markup).
struct Svg {
    writer: quick_xml::Writer<Vec<u8>>,
}

impl Default for Svg {
    fn default() -> Svg {
        Svg {
            writer: quick_xml::Writer::new(Vec::new()),
        }
    }
}

impl Svg {
    fn write(&mut self, event: Event<'_>) {
        self.writer
            .write_event(event)
            .expect("writing to memory cannot fail");
    }

    /// The end of a line.
    fn line(&mut self) {
        self.write(Event::Text(BytesText::from_escaped("\n")));
    }

    /// `<name …/>` on its own line.
    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.write(Event::Empty(markup_start(name, attributes)));
        self.line();
    }

    /// `<name …>text</name>` on its own line.
    fn leaf(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.write(Event::Start(markup_start(name, attributes)));
        self.write(Event::Text(markup_text(text)));
        self.write(Event::End(BytesEnd::new(name)));
        self.line();
    }
}

/// At most `max` characters, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "offer;label;monthly_fee;voice_fr_min;sms_fr;mms_fr;data_fr_mb;voice_price;sms_price;mms_price;data_price_mb";

    #[test]
    fn a_benchmark_row_with_defaults() {
        let text = format!(
            "{HEADER};voice_connect_fee\nRED-20;Rouge 20 Go;12.99;;;0;20480;0.20;0.10;0.30;0.01;\n"
        );
        let offers = parse_benchmark("benchmark.csv", text.as_bytes()).unwrap();
        assert_eq!(offers.len(), 1);
        let o = &offers[0];
        assert_eq!(o.offer, "RED-20");
        assert_eq!(o.monthly_fee, Decimal::new(1299, 2));
        assert_eq!(
            (o.voice_fr_min, o.mms_fr, o.data_fr_mb),
            (None, Some(0), Some(20480))
        );
        assert_eq!(o.voice_connect_fee, None);
        assert_eq!((o.voice_first_increment, o.data_next_increment), (1, 1));
        let batch = benchmark_batch(&offers);
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch
                .schema()
                .field_with_name("voice_price")
                .unwrap()
                .data_type(),
            &DataType::Decimal128(18, 6)
        );
    }

    #[test]
    fn benchmark_mistakes_name_line_and_column() {
        let cases = [
            (format!("{HEADER}\nA;a;1,50;;;;;0.1;0.1;0.1;0.1\n"), "benchmark.csv line 2, column monthly_fee: '1,50' is not a decimal number (the decimal separator here is '.')"),
            (format!("{HEADER}\nA;a;1;;;;;0.1;0.1;0.1;0.1\nA;b;1;;;;;0.1;0.1;0.1;0.1\n"), "benchmark.csv line 3, column offer: offer 'A' appears twice"),
            (format!("{HEADER}\nA B;a;1;;;;;0.1;0.1;0.1;0.1\n"), "benchmark.csv line 2, column offer: 'A B': give 1 to 20 letters, digits, '_' or '-'"),
            (format!("{HEADER}\nA;a;1;;;;;-0.1;0.1;0.1;0.1\n"), "benchmark.csv line 2, column voice_price: '-0.1' is negative"),
            (format!("{HEADER};voice_next_increment\nA;a;1;;;;;0.1;0.1;0.1;0.1;0\n"), "benchmark.csv line 2, column voice_next_increment: '0': a whole number ≥ 1 is required"),
            (format!("{HEADER}\nA;a;1;;;;;0.1;;0.1;0.1\n"), "benchmark.csv line 2, column sms_price: a value is required"),
        ];
        for (text, want) in cases {
            let got = parse_benchmark("benchmark.csv", text.as_bytes())
                .unwrap_err()
                .to_string();
            assert_eq!(got, want);
        }
        let typo = format!("{HEADER};voice_conect_fee\n");
        let got = parse_benchmark("benchmark.csv", typo.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            got.starts_with("benchmark.csv line 1: unknown column 'voice_conect_fee'"),
            "{got}"
        );
        let missing = "offer;label\n";
        let got = parse_benchmark("benchmark.csv", missing.as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(
            got,
            "benchmark.csv line 1: required column 'monthly_fee' is missing from the header"
        );
    }

    #[test]
    fn no_benchmark_file_is_no_offer() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_benchmark(dir.path()).unwrap().is_empty());
    }

    fn figures(alternative: &str, kind: &str, label: &str, revenue: Decimal) -> AlternativeFigures {
        AlternativeFigures {
            alternative: alternative.into(),
            kind: kind.into(),
            label: label.into(),
            revenue_ht: revenue,
            difference_ht: Decimal::ZERO,
            wholesale: Decimal::ZERO,
            margin: Decimal::ZERO,
            unpriced_cdrs: 0,
        }
    }

    #[test]
    fn the_chart_scales_bars_and_escapes_text() {
        let report = WhatifReport {
            month: "2026-10".into(),
            alternatives: vec![
                figures("ACTUAL", "ACTUAL", "Actual tariffs", Decimal::new(20000, 2)),
                figures("GRID_2", "GRID", "Grid 2", Decimal::new(10000, 2)),
                figures("OFFER_X", "OFFER", "<b>\"Rouge\" & 'Co'</b>", Decimal::ZERO),
            ],
            ..Default::default()
        };
        let svg = chart_svg(&report);
        assert!(
            svg.contains(
                "data-alternative=\"ACTUAL\" x=\"56\" y=\"60.0\" width=\"64\" height=\"300.0\""
            ),
            "{svg}"
        );
        assert!(
            svg.contains(
                "data-alternative=\"GRID_2\" x=\"152\" y=\"210.0\" width=\"64\" height=\"150.0\""
            ),
            "{svg}"
        );
        assert!(
            svg.contains(
                "data-alternative=\"OFFER_X\" x=\"248\" y=\"360.0\" width=\"64\" height=\"0.0\""
            ),
            "{svg}"
        );
        assert!(
            svg.contains("&lt;b&gt;&quot;Rouge&quot; &amp; &#39;Co&#39;&lt;/b&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<b>"));
        assert_eq!(svg.matches("<rect class=\"bar").count(), 3);
    }
}
