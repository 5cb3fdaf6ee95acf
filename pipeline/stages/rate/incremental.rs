//! Rating as the deliveries arrive (docs/RULES.md, "Rating as the
//! deliveries arrive"; issue: the month closes in seconds).
//!
//! A run of `rate` for a month rates what landed since its last run:
//!
//! 1. **The lines rated again whole** (changed_lines.sql): a line whose
//!    subscription rows changed (line_signatures.sql against the last
//!    run's), and every line of a copy of a cdr_id that a new conflicting
//!    copy came with (its billed copy may have changed, rating.md §1).
//! 2. **The new events of the other lines** (the CDR files landed since),
//!    each pool continuing from what it used (`carried_pools`,
//!    pool_usage.sql): one pass of rated_events.sql over the delivery.
//! 3. **The pools a late event reached** (late_pools.sql: an event before
//!    the pool's last one) are rated again from the month's start, with the
//!    lines of 1: a second pass over the month's events of those lines only
//!    (rerated_events.sql).
//!
//! Its rated rows are written to one new file per dataset
//! (`part-<seq>.parquet`), but the rows that equal what an earlier file
//! holds; an earlier file holding a row this run replaced is rewritten
//! without it. What each pool used, the lines' subscription texts, the
//! files rated and the month's totals are saved under
//! `_rating/month=M/` (the manifest last: until it is written, a crashed
//! run is simply run again), then the `consumption` dataset.
//!
//! A change of plans, options, grids, destinations or roaming zones (what
//! prices every event), a month never rated by this version, or
//! `rate --full` rates the whole month ([`super::rate_full`]).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{rate_full, RateError, RateReport};
use crate::core::lake::{datasets, Lake};
use crate::core::month::Month;
use crate::core::progress::Laps;
use crate::engine;
use crate::engine::sqlfiles;
use crate::mvne::upstream;
use crate::settings::Settings;
use crate::stages::Context;

/// A whole rate of a month: its run number, the last run's (whose state it
/// replaces), the price tables' digest it rates with, and why.
pub(crate) struct FullRun {
    pub(crate) seq: u64,
    previous_seq: Option<u64>,
    prices: String,
    subscriptions: String,
    pub(crate) because: &'static str,
}

/// Where a month's rating state is kept, below the lake.
const STATE_DIR: &str = "_rating";

/// The reference tables that price events whatever the line: a change of
/// one rates the month again whole. `subscriptions.csv` is compared line by
/// line (line_signatures.sql).
const PRICE_TABLES: &[&str] = &[
    "plans.csv",
    "options.csv",
    "rate_grids.csv",
    "destinations.csv",
    "roaming_zones.csv",
];

/// What the lines' texts (line_signatures.sql) are computed from.
const SUBSCRIPTION_TABLES: &[&str] = &["subscriptions.csv"];

/// What a month's last run rated, and what the next one continues from.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// The last run's number: its files are `part-<seq>.parquet`, its state
    /// `pools-<seq>.parquet` and `lines-<seq>.parquet`.
    seq: u64,
    /// Digest of the price tables rated with.
    prices: String,
    /// Digest of the subscriptions the lines' texts were computed from:
    /// unchanged, no line's text changed (empty in a manifest from before
    /// it was kept: the texts are computed).
    #[serde(default)]
    subscriptions: String,
    /// The month's `cdrs` files rated (keys in the lake).
    cdr_files: BTreeSet<String>,
    /// Every `cdr_conflicts` file seen (all months: a copy may carry another
    /// date).
    conflict_files: BTreeSet<String>,
    totals: Totals,
    last_delivery: Option<String>,
}

/// The month's figures, kept with the state so that a run adds what it
/// wrote and takes off what it replaced instead of reading the month.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Totals {
    rated: u64,
    amount: Decimal,
    wholesale: Decimal,
    margin: Decimal,
    exceptions: BTreeMap<String, u64>,
    exceptions_wholesale: Decimal,
}

impl Totals {
    /// The figures of the month's files as they are.
    pub(crate) async fn read(lake: &Lake, month: Month) -> Result<Totals, RateError> {
        let ctx = engine::session();
        let mut totals = Totals::default();
        for (table, dataset) in [
            ("rated", datasets::RATED_CDRS),
            ("exceptions", datasets::RATING_EXCEPTIONS),
        ] {
            let path = format!("{dataset}/month={month}");
            if !engine::register_path(&ctx, lake, table, &path, None).await? {
                continue;
            }
            match table {
                "rated" => totals.add_rated(&ctx, table, 1).await?,
                _ => totals.add_exceptions(&ctx, table, 1).await?,
            }
        }
        Ok(totals)
    }

    /// Adds (`sign` 1) or takes off (-1) the rated rows of `table`.
    async fn add_rated(
        &mut self,
        ctx: &SessionContext,
        table: &str,
        sign: i64,
    ) -> Result<(), RateError> {
        let row = engine::row_strings(
            ctx,
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(amount), 0), COALESCE(SUM(wholesale), 0), COALESCE(SUM(margin), 0) FROM {table}"
            ),
        )
        .await?;
        let count: u64 = row[0].parse().unwrap_or_default();
        let sign_d = Decimal::from(sign);
        self.rated = if sign > 0 {
            self.rated + count
        } else {
            self.rated.saturating_sub(count)
        };
        self.amount += sign_d * decimal(&row[1])?;
        self.wholesale += sign_d * decimal(&row[2])?;
        self.margin += sign_d * decimal(&row[3])?;
        Ok(())
    }

    /// Adds (`sign` 1) or takes off (-1) the exception rows of `table`.
    async fn add_exceptions(
        &mut self,
        ctx: &SessionContext,
        table: &str,
        sign: i64,
    ) -> Result<(), RateError> {
        for row in engine::rows_strings(
            ctx,
            &format!(
                "SELECT reason, COUNT(*), COALESCE(SUM(wholesale), 0) FROM {table} GROUP BY reason"
            ),
        )
        .await?
        {
            let count: u64 = row[1].parse().unwrap_or_default();
            let entry = self.exceptions.entry(row[0].clone()).or_default();
            *entry = if sign > 0 {
                *entry + count
            } else {
                entry.saturating_sub(count)
            };
            self.exceptions_wholesale += Decimal::from(sign) * decimal(&row[2])?;
        }
        self.exceptions.retain(|_, count| *count > 0);
        Ok(())
    }

    /// The month's events these figures account for.
    fn events(&self) -> u64 {
        super::accounted(self.rated, &self.exceptions)
    }

    pub(crate) fn fill(&self, report: &mut RateReport) {
        report.rated = self.rated;
        report.amount = self.amount.normalize().to_string();
        report.wholesale = self.wholesale.normalize().to_string();
        report.margin = self.margin.normalize().to_string();
        report.exceptions = self.exceptions.clone();
        report.exceptions_wholesale = self.exceptions_wholesale.normalize().to_string();
    }
}

fn decimal(text: &str) -> Result<Decimal, RateError> {
    Decimal::from_str(text).map_err(|e| RateError::State(format!("the total '{text}': {e}")))
}

/// The file of run `seq` in a partition.
pub(crate) fn part_name(seq: u64) -> String {
    format!("part-{seq:06}.parquet")
}

/// The run number of a partition's file (`part-000012.parquet`: 12; the
/// `part-0.parquet` of earlier versions: 0).
fn seq_of(key: &str) -> Option<u64> {
    key.rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

fn manifest_key(month: Month) -> String {
    format!("{STATE_DIR}/month={month}/manifest.json")
}

fn state_key(month: Month, what: &str, seq: u64) -> String {
    format!("{STATE_DIR}/month={month}/{what}-{seq:06}.parquet")
}

/// Forgets what the month's last run left: the next run rates it whole.
pub(crate) async fn forget(lake: &Lake, month: Month) -> Result<(), RateError> {
    lake.delete(&manifest_key(month)).await?;
    Ok(())
}

async fn load_manifest(lake: &Lake, month: Month) -> Result<Option<Manifest>, RateError> {
    let Some(bytes) = lake.get_if_exists(&manifest_key(month)).await? else {
        return Ok(None);
    };
    // A manifest this version cannot read: rate the month whole.
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Digest of reference tables' bytes (`PRICE_TABLES`: a change rates the
/// month whole; `SUBSCRIPTION_TABLES`: unchanged, no line's text changed).
fn digest(settings: &Settings, tables: &[&str]) -> Result<String, RateError> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for name in tables {
        let path = settings.reference_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                digest.update(format!("{name}\n{}\n", bytes.len()));
                digest.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                digest.update(format!("{name}\nabsent\n"));
            }
            Err(e) => return Err(RateError::State(format!("{}: {e}", path.display()))),
        }
    }
    Ok(format!("{:x}", digest.finalize()))
}

async fn parquet_keys(lake: &Lake, prefix: &str) -> Result<Vec<String>, RateError> {
    Ok(lake
        .list(prefix)
        .await?
        .into_iter()
        .filter(|key| key.ends_with(".parquet"))
        .collect())
}

/// `carried_pools`: what a continued pool starts from.
pub(crate) fn carried_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("msisdn", DataType::Utf8, true),
        Field::new("pool_start", DataType::Date32, true),
        Field::new("allowance_group", DataType::Utf8, true),
        Field::new("consumed", DataType::Int64, true),
    ]))
}

/// What pool_usage.sql writes: each pool's use so far.
fn usage_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("msisdn", DataType::Utf8, true),
        Field::new("pool_start", DataType::Date32, true),
        Field::new("allowance_group", DataType::Utf8, true),
        Field::new("consumed", DataType::Int64, true),
        Field::new("overage_qty", DataType::Int64, true),
        Field::new("overage_amount", DataType::Decimal128(18, 6), true),
        Field::new("events", DataType::Int64, true),
        Field::new(
            "last_event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("last_cdr_id", DataType::Utf8, true),
    ]))
}

fn text_schema(columns: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

fn pool_key_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("msisdn", DataType::Utf8, true),
        Field::new("pool_start", DataType::Date32, true),
        Field::new("allowance_group", DataType::Utf8, true),
    ]))
}

/// Runs a query and registers its whole result in memory as `name`.
async fn keep(ctx: &SessionContext, name: &str, sql: &str) -> Result<u64, RateError> {
    let in_query = |e: datafusion::error::DataFusionError| e.context(format!("computing {name}"));
    let frame = ctx.sql(sql).await.map_err(in_query)?;
    let (schema, batches) = collect(frame).await.map_err(|e| match e {
        RateError::Query(e) => RateError::Query(in_query(e)),
        other => other,
    })?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    engine::register_batches(ctx, name, schema, batches)?;
    Ok(rows)
}

/// A query's batches and their schema (the plan's when there is none: the
/// batches may differ from it in nullability).
async fn collect(
    frame: datafusion::dataframe::DataFrame,
) -> Result<(SchemaRef, Vec<RecordBatch>), RateError> {
    let planned: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    let schema = batches.first().map_or(planned, RecordBatch::schema);
    Ok((schema, batches))
}

/// Runs a SQL file of the `Keep::Memory` kind and counts its rows.
async fn run_counted(ctx: &SessionContext, file: &engine::SqlFile) -> Result<u64, RateError> {
    engine::run_layer(ctx, std::slice::from_ref(file)).await?;
    Ok(engine::scalar_u64(ctx, &format!("SELECT COUNT(*) FROM {}", file.name)).await?)
}

/// Rates the month from its last run (or whole: see the module's doc).
pub(super) async fn rate(
    stage: &Context,
    month: Month,
    full: bool,
) -> Result<RateReport, RateError> {
    let Context { settings, lake, .. } = stage;
    let partition = format!("month={month}");
    let rated_dir = format!("{}/{partition}", datasets::RATED_CDRS);
    let exceptions_dir = format!("{}/{partition}", datasets::RATING_EXCEPTIONS);
    let manifest = load_manifest(lake, month).await?;
    let mut laps = Laps::new(format!("rate {month}"));
    let prices = digest(settings, PRICE_TABLES)?;
    let subscriptions = digest(settings, SUBSCRIPTION_TABLES)?;
    let cdr_files: BTreeSet<String> =
        parquet_keys(lake, &format!("{}/{partition}", datasets::CDRS))
            .await?
            .into_iter()
            .collect();
    let conflict_files: BTreeSet<String> = parquet_keys(lake, datasets::CDR_CONFLICTS)
        .await?
        .into_iter()
        .collect();
    let because = match (&manifest, full) {
        (_, true) => Some("asked"),
        (None, _) => Some("no earlier run of this version"),
        (Some(m), _) if m.prices != prices => Some("the price tables changed"),
        (Some(m), _) if !m.cdr_files.is_subset(&cdr_files) => {
            Some("CDR files rated before are gone")
        }
        _ => None,
    };
    if let Some(because) = because {
        let previous_seq = manifest.as_ref().map(|m| m.seq);
        let mut seq = previous_seq.unwrap_or(0);
        for key in parquet_keys(lake, &rated_dir).await? {
            seq = seq.max(seq_of(&key).unwrap_or(0));
        }
        let run = FullRun {
            seq: seq + 1,
            previous_seq,
            prices,
            subscriptions,
            because,
        };
        return rate_full(stage, month, &run).await;
    }
    let manifest = manifest.expect("checked above");
    let seq = manifest.seq + 1;
    // What a run that crashed before its manifest left: written again below.
    for dir in [&rated_dir, &exceptions_dir] {
        for key in parquet_keys(lake, dir).await? {
            if seq_of(&key).is_none_or(|s| s >= seq) {
                lake.delete(&key).await?;
            }
        }
    }
    let new_files: Vec<String> = cdr_files.difference(&manifest.cdr_files).cloned().collect();
    let new_conflicts: Vec<String> = conflict_files
        .difference(&manifest.conflict_files)
        .cloned()
        .collect();
    let mut report = RateReport {
        month: month.to_string(),
        mode: "incremental".into(),
        deliveries: new_files.len() as u64,
        ..Default::default()
    };
    let lines_same = manifest.subscriptions == subscriptions;
    if new_files.is_empty() && new_conflicts.is_empty() && lines_same {
        // Nothing landed and no subscription changed since the last run.
        report.mode = "up to date".into();
        report.cdrs = manifest.totals.events();
        manifest.totals.fill(&mut report);
        return Ok(report);
    }

    let ctx = crate::stages::session(settings, month, None).await?;
    laps.lap("session");
    report.cdrs = super::register_month_events(&ctx, lake, month)
        .await?
        .events();
    laps.lap("listing and month's copies");
    engine::run_layer(&ctx, sqlfiles::REFERENCE).await?;

    // 1. The lines rated again whole.
    laps.lap("reference");
    engine::register_files(
        &ctx,
        lake,
        "previous_lines",
        &[state_key(month, "lines", manifest.seq)],
        Some(text_schema(&["msisdn", "signature"])),
    )
    .await?;
    if lines_same {
        keep(&ctx, "line_signatures", "SELECT * FROM previous_lines").await?;
    } else {
        engine::run_layer(&ctx, std::slice::from_ref(&sqlfiles::LINE_SIGNATURES)).await?;
    }
    if new_conflicts.is_empty() {
        engine::register_batch(
            &ctx,
            "conflict_lines",
            engine::empty(text_schema(&["msisdn"])),
        )?;
    } else {
        engine::register_files(
            &ctx,
            lake,
            "new_conflict_copies",
            &new_conflicts,
            Some(upstream::cdr_schema(true)),
        )
        .await?;
        keep(
            &ctx,
            "new_conflict_ids",
            "SELECT DISTINCT cdr_id FROM new_conflict_copies",
        )
        .await?;
        engine::run_layer(&ctx, std::slice::from_ref(&sqlfiles::CONFLICT_LINES)).await?;
    }
    report.changed_lines = run_counted(&ctx, &sqlfiles::CHANGED_LINES).await?;
    laps.lap("changed lines");
    if new_files.is_empty() && report.changed_lines == 0 {
        report.mode = "up to date".into();
        manifest.totals.fill(&mut report);
        super::check_accounted(&report)?;
        if !new_conflicts.is_empty() || !lines_same {
            // Copies, or subscriptions, that concern no line of this
            // month: seen.
            let manifest = Manifest {
                conflict_files,
                subscriptions,
                ..manifest
            };
            lake.put(
                &manifest_key(month),
                serde_json::to_vec_pretty(&manifest).expect("json"),
            )
            .await?;
        }
        return Ok(report);
    }

    // 2. The new events, each pool continuing from what it used.
    engine::register_files(
        &ctx,
        lake,
        "previous_usage",
        &[state_key(month, "pools", manifest.seq)],
        Some(usage_schema()),
    )
    .await?;
    engine::register_batch(&ctx, "late_pools", engine::empty(pool_key_schema()))?;
    engine::run_layer(&ctx, &[sqlfiles::CONTINUED_USAGE, sqlfiles::CARRIED_POOLS]).await?;
    laps.lap("carried pools");
    engine::register_files(
        &ctx,
        lake,
        "new_cdrs",
        &new_files,
        Some(upstream::cdr_schema(false)),
    )
    .await?;
    report.new_events = engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM new_cdrs").await?;
    set_cdrs(
        &ctx,
        "SELECT * FROM new_cdrs WHERE msisdn NOT IN (SELECT msisdn FROM changed_lines)",
    )
    .await?;
    engine::run_layer(&ctx, sqlfiles::RATING).await?;
    keep(&ctx, "first_pass", sqlfiles::RATED_EVENTS.sql).await?;
    laps.lap("first pass");
    ctx.deregister_table("run_rated")?;
    ctx.register_table(
        "run_rated",
        ctx.sql("SELECT * FROM first_pass WHERE exception IS NULL")
            .await?
            .into_view(),
    )?;

    // 3. The pools a late event reached, and the lines of 1, rated again.
    report.late_pools = run_counted(&ctx, &sqlfiles::LATE_POOLS).await?;
    laps.lap("late pools");
    let again = report.late_pools > 0 || report.changed_lines > 0;
    // The lines rated again, as a list the Parquet reader filters the
    // month's files with before it decodes their other columns.
    let mut touched = String::new();
    if again {
        keep(
            &ctx,
            "kept_first",
            "SELECT r.* FROM first_pass r WHERE NOT EXISTS (
                 SELECT 1 FROM late_pools l
                 WHERE l.msisdn = r.msisdn AND l.pool_start = r.pool_start
                   AND l.allowance_group = r.allowance_group)",
        )
        .await?;
        touched = engine::rows_strings(
            &ctx,
            "SELECT msisdn FROM changed_lines UNION SELECT msisdn FROM late_pools",
        )
        .await?
        .iter()
        .map(|row| format!("'{}'", row[0].replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
        ctx.sql("SET datafusion.execution.parquet.pushdown_filters = true")
            .await?
            .collect()
            .await?;
        set_cdrs(
            &ctx,
            &format!("SELECT * FROM month_events WHERE msisdn IN ({touched})"),
        )
        .await?;
        super::register_no_carried_pools(&ctx)?;
        engine::run_layer(&ctx, sqlfiles::RATING).await?;
        let rerated = ctx.sql(sqlfiles::RERATED_EVENTS.sql).await?;
        ctx.deregister_table("priced_events")?;
        ctx.register_table("priced_events", rerated.into_view())?;
        keep(&ctx, "second_pass", sqlfiles::RATED_EVENTS.sql).await?;
        laps.lap("second pass");
        keep(
            &ctx,
            "run_results",
            "SELECT * FROM kept_first UNION ALL SELECT * FROM second_pass",
        )
        .await?;
    } else {
        keep(&ctx, "run_results", "SELECT * FROM first_pass").await?;
    }
    let columns: Vec<String> = ctx
        .table("run_results")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|name| name != "exception")
        .collect();
    let rated_columns = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for (name, sql) in [
        (
            "run_rated",
            format!("SELECT {rated_columns} FROM run_results WHERE exception IS NULL"),
        ),
        (
            "excepted_events",
            "SELECT * FROM run_results WHERE exception IS NOT NULL".to_string(),
        ),
    ] {
        ctx.deregister_table(name)?;
        ctx.register_table(name, ctx.sql(&sql).await?.into_view())?;
    }
    // The conflicting duplicates are those of the lines rated again whole.
    keep(&ctx, "all_run_exceptions", sqlfiles::RATING_EXCEPTIONS.sql).await?;
    keep(
        &ctx,
        "run_exceptions",
        "SELECT * FROM all_run_exceptions
         WHERE reason <> 'CONFLICTING_DUPLICATE' OR msisdn IN (SELECT msisdn FROM changed_lines)",
    )
    .await?;

    // The rows to write, and the rows of earlier files they replace.
    laps.lap("run results and exceptions");
    let old_rated: Vec<String> = parquet_keys(lake, &rated_dir).await?;
    let old_exceptions: Vec<String> = parquet_keys(lake, &exceptions_dir).await?;
    if again {
        for (table, keys, like) in [
            ("previous_rated", &old_rated, "run_rated"),
            ("previous_exceptions", &old_exceptions, "run_exceptions"),
        ] {
            if keys.is_empty() {
                keep(&ctx, table, &format!("SELECT * FROM {like} WHERE false")).await?;
            } else {
                engine::register_files(&ctx, lake, table, keys, None).await?;
            }
        }
        // An id is rated in one line's events: the earlier rows of the
        // run's ids are those of the lines rated again.
        keep(
            &ctx,
            "previous_rated_scope",
            &format!(
                "SELECT * FROM previous_rated
                 WHERE msisdn IN ({touched})
                   AND (cdr_id IN (SELECT cdr_id FROM run_results)
                        OR msisdn IN (SELECT msisdn FROM changed_lines))"
            ),
        )
        .await?;
        ctx.sql(
            "CREATE VIEW previous_exceptions_scope AS SELECT * FROM previous_exceptions
             WHERE msisdn IN (SELECT msisdn FROM changed_lines)
                OR (reason <> 'CONFLICTING_DUPLICATE' AND cdr_id IN (SELECT cdr_id FROM run_results))",
        )
        .await?;
        keep(
            &ctx,
            "removed_rated",
            "SELECT * FROM previous_rated_scope EXCEPT ALL SELECT * FROM run_rated",
        )
        .await?;
        keep(
            &ctx,
            "added_rated",
            "SELECT * FROM run_rated EXCEPT ALL SELECT * FROM previous_rated_scope",
        )
        .await?;
        keep(
            &ctx,
            "removed_exceptions",
            "SELECT * FROM previous_exceptions_scope EXCEPT ALL SELECT * FROM run_exceptions",
        )
        .await?;
        keep(
            &ctx,
            "added_exceptions",
            "SELECT * FROM run_exceptions EXCEPT ALL SELECT * FROM previous_exceptions_scope",
        )
        .await?;
    } else {
        keep(&ctx, "added_rated", "SELECT * FROM run_rated").await?;
        keep(&ctx, "added_exceptions", "SELECT * FROM run_exceptions").await?;
        for (name, like) in [
            ("removed_rated", "added_rated"),
            ("removed_exceptions", "added_exceptions"),
        ] {
            keep(&ctx, name, &format!("SELECT * FROM {like} WHERE false")).await?;
        }
    }

    let mut totals = manifest.totals.clone();
    totals.add_rated(&ctx, "added_rated", 1).await?;
    totals.add_rated(&ctx, "removed_rated", -1).await?;
    totals.add_exceptions(&ctx, "added_exceptions", 1).await?;
    totals
        .add_exceptions(&ctx, "removed_exceptions", -1)
        .await?;
    totals.fill(&mut report);
    super::check_accounted(&report)?;

    laps.lap("replaced rows and totals");
    // Earlier files without the rows replaced, then this run's files.
    let removed = engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM removed_rated").await?
        + engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM removed_exceptions").await?;
    report.replaced_rows = removed;
    if removed > 0 {
        for (keys, removed_table, without) in [
            (
                &old_rated,
                "removed_rated",
                "SELECT * FROM earlier_file WHERE cdr_id NOT IN (SELECT cdr_id FROM removed_rated)",
            ),
            (
                &old_exceptions,
                "removed_exceptions",
                "SELECT * FROM earlier_file EXCEPT ALL SELECT * FROM removed_exceptions",
            ),
        ] {
            if engine::scalar_u64(&ctx, &format!("SELECT COUNT(*) FROM {removed_table}")).await?
                == 0
            {
                continue;
            }
            report.rewritten_files +=
                rewrite_earlier(&ctx, lake, keys, removed_table, without).await?;
        }
    }
    let file = part_name(seq);
    laps.lap("earlier files rewritten");
    for (table, dir, always) in [
        ("added_rated", &rated_dir, true),
        ("added_exceptions", &exceptions_dir, false),
    ] {
        let (schema, batches) = collect(ctx.table(table).await?).await?;
        if always || batches.iter().any(|b| b.num_rows() > 0) {
            lake.write_parquet(&format!("{dir}/{file}"), schema, &batches)
                .await?;
        }
        laps.lap(table);
    }

    // What the next run continues from.
    engine::run_layer(&ctx, sqlfiles::USAGE).await?;
    laps.lap("pool usage");
    // The newest file rated, by name (which carries the delivery's time).
    let last_delivery = new_files
        .iter()
        .filter_map(|key| delivered_name(key))
        .chain(manifest.last_delivery.clone())
        .max();
    report.alerts = save(
        stage,
        &ctx,
        month,
        Some(manifest.seq),
        Manifest {
            seq,
            prices,
            subscriptions,
            cdr_files,
            conflict_files,
            totals,
            last_delivery,
        },
    )
    .await?;
    laps.lap("state, consumption and alerts saved");
    Ok(report)
}

/// Rewrites each earlier file (`keys`) holding a row of `removed_table`
/// without it (`without`, a query of `earlier_file`), as many at a time as
/// there are cores (a file is read and written by one); a file holding none
/// is only read for its ids. Returns how many files it rewrote.
async fn rewrite_earlier(
    ctx: &SessionContext,
    lake: &Lake,
    keys: &[String],
    removed_table: &str,
    without: &str,
) -> Result<u64, RateError> {
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    let joined = |done: Result<Result<u64, RateError>, tokio::task::JoinError>| {
        done.map_err(|e| RateError::State(format!("rewriting a file: {e}")))?
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut rewritten = 0;
    for (n, key) in keys.iter().enumerate() {
        if tasks.len() >= parallel {
            if let Some(done) = tasks.join_next().await {
                rewritten += joined(done)?;
            }
        }
        let (ctx, lake, key) = (ctx.clone(), lake.clone(), key.clone());
        let table = format!("earlier_file_{n}");
        let holds = format!(
            "SELECT COUNT(*) FROM {table} WHERE cdr_id IN (SELECT cdr_id FROM {removed_table})"
        );
        let without = without.replace("earlier_file", &table);
        tasks.spawn(async move {
            engine::register_files(&ctx, &lake, &table, std::slice::from_ref(&key), None).await?;
            let rewritten = async {
                if engine::scalar_u64(&ctx, &holds).await? == 0 {
                    return Ok(0);
                }
                let before =
                    engine::scalar_u64(&ctx, &format!("SELECT COUNT(*) FROM {table}")).await?;
                let stream = ctx.sql(&without).await?.execute_stream().await?;
                let after = lake.write_stream(&key, stream).await?;
                Ok::<u64, RateError>(u64::from(after != before))
            }
            .await;
            ctx.deregister_table(table.as_str())?;
            rewritten
        });
    }
    while let Some(done) = tasks.join_next().await {
        rewritten += joined(done)?;
    }
    Ok(rewritten)
}

/// The name of the file delivered that a `cdrs` file holds the month's rows
/// of (`cdrs/month=M/RatedCDRs_x.parquet`: `RatedCDRs_x.csv`).
fn delivered_name(key: &str) -> Option<String> {
    let stem = key.rsplit('/').next()?.strip_suffix(".parquet")?;
    Some(format!("{stem}.csv"))
}

/// Registers `cdrs`, what the rating layer reads, as a query.
async fn set_cdrs(ctx: &SessionContext, sql: &str) -> Result<(), RateError> {
    let view = ctx
        .sql(sql)
        .await
        .map_err(|e| e.context("selecting the events to rate"))?
        .into_view();
    ctx.deregister_table("cdrs")?;
    ctx.register_table("cdrs", view)?;
    Ok(())
}

/// After a whole rate (`ctx` has the reference layer and the pools): what
/// each pool used, from the month's rated files.
pub(crate) async fn save_after_full(
    stage: &Context,
    ctx: &SessionContext,
    month: Month,
    run: &FullRun,
    totals: Totals,
) -> Result<Option<crate::stages::alerts::AlertsReport>, RateError> {
    let lake = &stage.lake;
    let partition = format!("month={month}");
    let cdr_files: BTreeSet<String> =
        parquet_keys(lake, &format!("{}/{partition}", datasets::CDRS))
            .await?
            .into_iter()
            .collect();
    let conflict_files: BTreeSet<String> = parquet_keys(lake, datasets::CDR_CONFLICTS)
        .await?
        .into_iter()
        .collect();
    engine::register_batch(ctx, "previous_usage", engine::empty(usage_schema()))?;
    engine::register_batch(ctx, "late_pools", engine::empty(pool_key_schema()))?;
    engine::register_batch(
        ctx,
        "changed_lines",
        engine::empty(text_schema(&["msisdn"])),
    )?;
    let rated = parquet_keys(lake, &format!("{}/{partition}", datasets::RATED_CDRS)).await?;
    engine::register_files(ctx, lake, "run_rated", &rated, None).await?;
    engine::run_layer(ctx, sqlfiles::USAGE).await?;
    engine::run_layer(ctx, std::slice::from_ref(&sqlfiles::LINE_SIGNATURES)).await?;
    let last_delivery = cdr_files.iter().filter_map(|key| delivered_name(key)).max();
    save(
        stage,
        ctx,
        month,
        run.previous_seq,
        Manifest {
            seq: run.seq,
            prices: run.prices.clone(),
            subscriptions: run.subscriptions.clone(),
            cdr_files,
            conflict_files,
            totals,
            last_delivery,
        },
    )
    .await
}

/// Saves the state (`pool_usage` and `line_signatures` of `ctx`), then the
/// manifest, then the `consumption` dataset; removes the state before.
/// Then mails the alerts of the pools that crossed a threshold, if on.
async fn save(
    stage: &Context,
    ctx: &SessionContext,
    month: Month,
    previous_seq: Option<u64>,
    manifest: Manifest,
) -> Result<Option<crate::stages::alerts::AlertsReport>, RateError> {
    let lake = &stage.lake;
    let seq = manifest.seq;
    let mut laps = Laps::new(format!("rate {month}"));
    for (table, what) in [("pool_usage", "pools"), ("line_signatures", "lines")] {
        let (schema, batches) = collect(ctx.table(table).await?).await?;
        lake.write_parquet(&state_key(month, what, seq), schema, &batches)
            .await?;
        laps.lap(what);
    }
    lake.put(
        &manifest_key(month),
        serde_json::to_vec_pretty(&manifest).expect("a manifest is JSON"),
    )
    .await?;
    if let Some(previous) = previous_seq.filter(|p| *p != seq) {
        for what in ["pools", "lines"] {
            lake.delete(&state_key(month, what, previous)).await?;
        }
    }
    // What the pools used before this run, for the alerts only.
    let consumption = format!("{}/month={month}/part-0.parquet", datasets::CONSUMPTION);
    let alerts_on = !stage.settings.alert_thresholds.is_empty();
    let before = if alerts_on && lake.exists(&consumption).await? {
        engine::register_files(ctx, lake, "consumption_before", &[consumption], None).await?;
        ctx.table("consumption_before").await?.collect().await?
    } else {
        Vec::new()
    };
    laps.lap("manifest");
    let after = write_consumption(ctx, lake, month, manifest.last_delivery.as_deref()).await?;
    laps.lap("consumption");
    // The month is rated: an alert that cannot go now stays pending, and
    // goes with the next rate (alerts.rs).
    match crate::stages::alerts::notify(stage, month, &before, &after).await {
        Ok(report) => Ok(report),
        Err(e) => {
            tracing::warn!("rate {month}: alerts not sent yet: {e}");
            Ok(Some(crate::stages::alerts::AlertsReport::failed(month, &e)))
        }
    }
}

/// Writes `consumption/month=M/part-0.parquet` from `pool_usage` and the
/// month's pools.
async fn write_consumption(
    ctx: &SessionContext,
    lake: &Lake,
    month: Month,
    last_delivery: Option<&str>,
) -> Result<Vec<RecordBatch>, RateError> {
    let run_schema = Arc::new(Schema::new(vec![
        Field::new(
            "as_of",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("last_delivery", DataType::Utf8, true),
    ]));
    let now = chrono::Utc::now().timestamp_micros();
    let run = RecordBatch::try_new(
        run_schema,
        vec![
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![last_delivery])),
        ],
    )?;
    engine::register_batch(ctx, "rating_run", run)?;
    engine::run_layer(ctx, std::slice::from_ref(&sqlfiles::CONSUMPTION)).await?;
    let (schema, batches) = collect(ctx.table(sqlfiles::CONSUMPTION.name).await?).await?;
    lake.write_parquet(
        &format!("{}/month={month}/part-0.parquet", datasets::CONSUMPTION),
        schema,
        &batches,
    )
    .await?;
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_numbers_of_files() {
        assert_eq!(part_name(12), "part-000012.parquet");
        assert_eq!(
            seq_of("rated_cdrs/month=2026-10/part-000012.parquet"),
            Some(12)
        );
        assert_eq!(seq_of("rated_cdrs/month=2026-10/part-0.parquet"), Some(0));
        assert_eq!(seq_of("rated_cdrs/month=2026-10/other.parquet"), None);
    }
}
