//! `rate`: price the month's CDRs against the reference data in force
//! (rating.md §1–5), with the SQL of `sql/reference` and `sql/rating`, as
//! the deliveries arrive (docs/RULES.md, "Rating as the deliveries arrive").
//!
//! Each run rates what landed since the last one (`incremental.rs`): the
//! new events continue each allowance pool from what it used; a pool a
//! late event reaches, and every pool of a line whose subscription rows or
//! billed copies changed, is rated again from the month's start. A change
//! of the other price tables, or `--full`, rates the whole month again
//! ([`rate_full`]). Either way the month equals one whole rating of it,
//! event for event.
//!
//! Output: `rated_cdrs/month=YYYY-MM/` and `rating_exceptions/month=YYYY-MM/`,
//! one `part-NNNNNN.parquet` per run (a run that replaces rows of earlier
//! files rewrites those files without them), and `consumption/month=YYYY-MM/`,
//! each pool's use so far. What the next run continues from is kept under
//! `_rating/month=YYYY-MM/` (state.rs). A month whose invoices were issued is
//! closed: rating it again changes nothing (corrections are credit notes).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::ledger::LedgerError;
use crate::core::month::Month;
use crate::engine;
use crate::engine::sqlfiles;
use crate::mvne::upstream;
use crate::stages::Context;
use crate::stages::SessionError;

mod incremental;

#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("rating failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("rating failed: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("rating state: {0}")]
    State(String),
    #[error("rating {month} accounted for {accounted} events of {cdrs}: a rule matched an event twice or not at all (overlapping reference rows?)")]
    Lost {
        month: String,
        cdrs: u64,
        accounted: u64,
    },
}

#[derive(Debug, Default, Serialize)]
pub struct RateReport {
    pub month: String,
    /// True when the month is closed and nothing was rated again.
    pub closed: bool,
    /// How this run rated: `full` (the whole month), `incremental` (what
    /// landed since the last run), `up to date` (nothing new).
    pub mode: String,
    /// Why the whole month was rated, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_because: Option<String>,
    /// The month's events: one copy per cdr_id, the billed one (rating.md
    /// §1), so the CDRs landed in the month unless a copy from a file whose
    /// name sorts first came with another date.
    pub cdrs: u64,
    pub rated: u64,
    pub exceptions: BTreeMap<String, u64>,
    /// Sum of event amounts HT, wholesale and margin, in euros.
    pub amount: String,
    pub wholesale: String,
    pub margin: String,
    /// Wholesale cost of the exceptions (revenue leakage until re-rated).
    pub exceptions_wholesale: String,
    /// Passes over the month's lines (`[engine] cdrs_per_pass`), when the
    /// whole month was rated.
    pub passes: u64,
    /// This run: the CDR files it rated, their events, the lines rated
    /// again whole, the pools a late event reached, the rows it replaced
    /// in earlier runs' files, and those files.
    pub deliveries: u64,
    pub new_events: u64,
    pub changed_lines: u64,
    pub late_pools: u64,
    pub replaced_rows: u64,
    pub rewritten_files: u64,
    /// The consumption alerts this run mailed (`[alerts]`), when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::stages::alerts::AlertsReport>,
}

impl std::fmt::Display for RateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.closed {
            return write!(
                f,
                "rate {}: month closed (invoices issued), nothing rated again",
                self.month
            );
        }
        let exceptions: u64 = self.exceptions.values().sum();
        write!(
            f,
            "rate {}: {} CDRs, {} rated ({} € HT, wholesale {} €, margin {} €), {} exceptions",
            self.month, self.cdrs, self.rated, self.amount, self.wholesale, self.margin, exceptions
        )?;
        for (reason, count) in &self.exceptions {
            write!(f, "\n  {reason}: {count}")?;
        }
        match self.mode.as_str() {
            "full" => write!(
                f,
                "\n  rated whole ({})",
                self.full_because.as_deref().unwrap_or("asked")
            )?,
            "incremental" => write!(
                f,
                "\n  this run: {} CDR files, {} new events; {} lines and {} late pools rated again, {} rows replaced in {} files",
                self.deliveries,
                self.new_events,
                self.changed_lines,
                self.late_pools,
                self.replaced_rows,
                self.rewritten_files
            )?,
            _ => write!(f, "\n  up to date: nothing landed since the last run")?,
        }
        if let Some(alerts) = &self.alerts {
            write!(f, "\n  {alerts}")?;
        }
        Ok(())
    }
}

/// `rate` without a month: each open month's report.
#[derive(Debug, Default, Serialize)]
pub struct OpenMonthsReport {
    pub months: Vec<RateReport>,
}

impl std::fmt::Display for OpenMonthsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.months.is_empty() {
            return write!(f, "rate: no open month has CDRs");
        }
        for (i, month) in self.months.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{month}")?;
        }
        Ok(())
    }
}

/// Where `rate` sets a month's excepted events aside, below the lake.
const WORK_DIR: &str = "_work/rate";

/// `cdrs` as the rating layer reads it: the month's events (`events`:
/// `month_events`, one billed copy per cdr_id, or `month_cdrs` when that is
/// the same), or those of the lines of one pass.
async fn select_pass(
    ctx: &SessionContext,
    events: &str,
    passes: u64,
    pass: u64,
) -> Result<(), RateError> {
    use datafusion::common::ScalarValue;
    let frame = if passes == 1 {
        ctx.sql(&format!("SELECT * FROM {events}")).await?
    } else {
        ctx.sql(&format!(
            "SELECT * FROM {events} WHERE CAST(msisdn AS BIGINT) % $1 = $2"
        ))
        .await?
        .with_param_values(vec![
            ScalarValue::Int64(Some(passes as i64)),
            ScalarValue::Int64(Some(pass as i64)),
        ])?
    };
    let view = frame.into_view();
    ctx.deregister_table("cdrs")?;
    ctx.register_table("cdrs", view)?;
    engine::run_layer(ctx, sqlfiles::RATING).await?;
    Ok(())
}

/// Runs rated_events.sql (once per pass) and routes each event by its
/// `exception` column: NULL to the `rated_cdrs` file (without that
/// column), otherwise to the work file `excepted_key` (every column).
/// Routing only: every rule is in the SQL. The Parquet encoding runs on a
/// task of its own, beside the end of the plan (the window and the
/// amounts), which is one stream.
async fn split_outcomes(
    ctx: &SessionContext,
    lake: &Lake,
    rated_key: &str,
    excepted_key: &str,
    events: &str,
    passes: u64,
) -> Result<(), RateError> {
    use datafusion::arrow::compute::{filter_record_batch, is_null, not};
    type Routed = (bool, datafusion::arrow::record_batch::RecordBatch);
    // Where the batches go, and the task writing them.
    type Writer = (
        tokio::sync::mpsc::Sender<Routed>,
        tokio::task::JoinHandle<Result<(), RateError>>,
    );
    let mut writer: Option<Writer> = None;
    let mut routed = Ok(());
    'passes: for pass in 0..passes {
        select_pass(ctx, events, passes, pass).await?;
        let (plan, mut stream) =
            engine::stream_file_with_plan(ctx, &sqlfiles::RATED_EVENTS).await?;
        let schema = stream.schema();
        let exception = schema.index_of("exception")?;
        let rated_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| i != exception)
            .collect();
        if writer.is_none() {
            let rated =
                lake.parquet_writer(rated_key, Arc::new(schema.project(&rated_columns)?))?;
            let excepted = lake.parquet_writer(excepted_key, schema.clone())?;
            // (true, batch) to rated_cdrs, (false, batch) to the exceptions.
            let (outcomes, mut received) = tokio::sync::mpsc::channel::<Routed>(4);
            let lake = lake.clone();
            let (rated_key, excepted_key) = (rated_key.to_string(), excepted_key.to_string());
            let task = tokio::spawn(async move {
                let (mut rated, mut excepted) = (rated, excepted);
                while let Some((is_rated, batch)) = received.recv().await {
                    if is_rated {
                        lake.write_batch(&rated_key, &mut rated, &batch).await?;
                    } else {
                        lake.write_batch(&excepted_key, &mut excepted, &batch)
                            .await?;
                    }
                }
                lake.close_parquet(&rated_key, rated).await?;
                lake.close_parquet(&excepted_key, excepted).await?;
                Ok::<(), RateError>(())
            });
            writer = Some((outcomes, task));
        }
        let outcomes = &writer.as_ref().expect("just started").0;
        while let Some(batch) = stream.next().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    routed = Err(e.into());
                    break 'passes;
                }
            };
            let is_rated = is_null(batch.column(exception))?;
            let mut sends = Vec::with_capacity(2);
            if is_rated.true_count() == batch.num_rows() {
                sends.push((true, batch.project(&rated_columns)?));
            } else {
                sends.push((
                    true,
                    filter_record_batch(&batch, &is_rated)?.project(&rated_columns)?,
                ));
                sends.push((false, filter_record_batch(&batch, &not(&is_rated)?)?));
            }
            for send in sends {
                if outcomes.send(send).await.is_err() {
                    // The writer stopped: its error is the one to report.
                    break 'passes;
                }
            }
        }
        engine::save_plan_metrics(
            &format!("rated_events.sql, pass {} of {passes}", pass + 1),
            plan.as_ref(),
        );
    }
    let Some((outcomes, task)) = writer else {
        return routed;
    };
    drop(outcomes);
    let written = task.await.expect("the writer does not panic");
    routed.and(written)
}

/// Rates a month: what landed since its last run, or the whole month when
/// `full` is asked or the price tables changed (incremental.rs).
pub async fn rate(stage: &Context, month: Month, full: bool) -> Result<RateReport, RateError> {
    if stage.ledger.is_issued(&month.to_string())? {
        return Ok(RateReport {
            month: month.to_string(),
            closed: true,
            ..Default::default()
        });
    }
    incremental::rate(stage, month, full).await
}

/// `rate` without a month: every open month (not issued) with CDRs or
/// conflicting copies landed, in order, each from its last run.
pub async fn rate_open_months(stage: &Context) -> Result<OpenMonthsReport, RateError> {
    let mut months = std::collections::BTreeSet::new();
    for dataset in [datasets::CDRS, datasets::CDR_CONFLICTS] {
        for key in stage.lake.list(dataset).await? {
            let Some(partition) = key.split('/').nth(1) else {
                continue;
            };
            if let Some(Ok(month)) = partition.strip_prefix("month=").map(str::parse::<Month>) {
                months.insert(month);
            }
        }
    }
    let mut report = OpenMonthsReport::default();
    for month in months {
        if stage.ledger.is_issued(&month.to_string())? {
            continue;
        }
        report.months.push(rate(stage, month, false).await?);
    }
    Ok(report)
}

/// Rates the whole month from scratch into `part-<seq>` of `rated_cdrs`
/// and `rating_exceptions`, then removes the partitions' other files, and
/// leaves what the next run continues from (incremental.rs).
pub(crate) async fn rate_full(
    stage: &Context,
    month: Month,
    run: &incremental::FullRun,
) -> Result<RateReport, RateError> {
    let Context { settings, lake, .. } = stage;
    let mut report = RateReport {
        month: month.to_string(),
        mode: "full".into(),
        full_because: Some(run.because.to_string()),
        ..Default::default()
    };
    // From here until the new state is saved, the month's files are not
    // what a next run could continue from: without a manifest, it rates
    // the whole month again.
    incremental::forget(lake, month).await?;
    let ctx = crate::stages::session(settings, month, None).await?;
    let partition = format!("month={month}");
    let copies = register_month_events(&ctx, lake, month).await?;
    let passes = copies.month_cdrs.div_ceil(settings.cdrs_per_pass).max(1);
    report.cdrs = copies.events();
    // When no copy of another file replaces one in `cdrs` (files landed in
    // name order, the normal case) the month's events are `month_cdrs`
    // itself: read directly, the plan stays that of one Parquet scan (the
    // union and anti-join of month_events made the sort of 300,000 events
    // in 64 MB spill twice as often, tests/crash.rs).
    let events = if copies.replaced == 0 && copies.brought == 0 {
        "month_cdrs"
    } else {
        "month_events"
    };
    engine::run_layer(&ctx, sqlfiles::REFERENCE).await?;
    register_no_carried_pools(&ctx)?;

    // One pass over the month: the rated events go to `rated_cdrs`, the
    // others to a work file that rating_exceptions.sql orders with the
    // conflicting duplicates.
    let work = format!("{WORK_DIR}/{partition}");
    let excepted_key = format!("{work}/excepted.parquet");
    let file = incremental::part_name(run.seq);
    let rated_key = format!("{}/{partition}/{file}", datasets::RATED_CDRS);
    let exceptions_key = format!("{}/{partition}/{file}", datasets::RATING_EXCEPTIONS);
    split_outcomes(&ctx, lake, &rated_key, &excepted_key, events, passes).await?;
    report.passes = passes;
    engine::register_path(&ctx, lake, "excepted_events", &work, None).await?;
    let stream = engine::stream_file(&ctx, &sqlfiles::RATING_EXCEPTIONS).await?;
    lake.write_stream(&exceptions_key, stream).await?;
    lake.delete(&excepted_key).await?;
    for (dataset, keep) in [
        (datasets::RATED_CDRS, &rated_key),
        (datasets::RATING_EXCEPTIONS, &exceptions_key),
    ] {
        for key in lake.list(&format!("{dataset}/{partition}")).await? {
            if &key != keep {
                lake.delete(&key).await?;
            }
        }
    }

    // The figures of the report come from the files just written: reading
    // them back is cheaper than running the plan again.
    let totals = incremental::Totals::read(lake, month).await?;
    totals.fill(&mut report);
    check_accounted(&report)?;
    report.alerts = incremental::save_after_full(stage, &ctx, month, run, totals).await?;
    Ok(report)
}

/// Every event of the month (one billed copy per cdr_id) is either rated
/// or an exception, once.
fn check_accounted(report: &RateReport) -> Result<(), RateError> {
    let accounted = accounted(report.rated, &report.exceptions);
    if report.cdrs != accounted {
        return Err(RateError::Lost {
            month: report.month.clone(),
            cdrs: report.cdrs,
            accounted,
        });
    }
    Ok(())
}

/// The events a month's figures account for: each rated, or an exception
/// but a conflicting duplicate (a copy not billed, not an event), once.
fn accounted(rated: u64, exceptions: &BTreeMap<String, u64>) -> u64 {
    rated
        + exceptions
            .iter()
            .filter(|(reason, _)| reason.as_str() != "CONFLICTING_DUPLICATE")
            .map(|(_, count)| count)
            .sum::<u64>()
}

/// Registers an empty `carried_pools`: the month is rated whole, every pool
/// from nothing (rated_events.sql). What `bill`'s rating in memory and
/// `whatif` rate.
pub fn register_no_carried_pools(ctx: &SessionContext) -> Result<(), RateError> {
    engine::register_batch(
        ctx,
        "carried_pools",
        engine::empty(incremental::carried_schema()),
    )?;
    Ok(())
}

/// The month's copies: those landed in `cdrs` (`month_cdrs`), those a copy
/// from an earlier-sorting file replaces, and those such copies bring
/// (rating.md §1).
pub(crate) struct MonthCopies {
    pub(crate) month_cdrs: u64,
    pub(crate) replaced: u64,
    pub(crate) brought: u64,
}

impl MonthCopies {
    /// The month's events: one billed copy per cdr_id.
    pub(crate) fn events(&self) -> u64 {
        self.month_cdrs - self.replaced + self.brought
    }
}

/// Registers `month_cdrs` (the month's `cdrs`, or an empty table: a month
/// without any CDR yet rates to empty outputs) and the `COPIES` layer over
/// it, and counts them (from the files' footers and the few conflicts).
pub(crate) async fn register_month_events(
    ctx: &SessionContext,
    lake: &Lake,
    month: Month,
) -> Result<MonthCopies, RateError> {
    engine::register_path_or_empty(
        ctx,
        lake,
        "month_cdrs",
        &format!("{}/month={month}", datasets::CDRS),
        upstream::cdr_schema(false),
    )
    .await?;
    register_copies(ctx, lake, month).await?;
    Ok(MonthCopies {
        month_cdrs: engine::scalar_u64(ctx, "SELECT COUNT(*) FROM month_cdrs").await?,
        replaced: engine::scalar_u64(ctx, "SELECT COUNT(*) FROM superseded_copies").await?,
        brought: engine::scalar_u64(ctx, "SELECT COUNT(*) FROM billed_conflicts").await?,
    })
}

/// Registers the month's conflicting copies (`cdr_conflicts`), those of
/// every month (`all_cdr_conflicts`: the billed copy of an id is that of the
/// file whose name sorts first, and a copy may carry another date), and the
/// `COPIES` layer over `month_cdrs`: `month_events`, one billed copy per
/// cdr_id (rating.md §1). What `rate`, `bill`'s rating in memory and
/// `whatif` rate.
pub async fn register_copies(
    ctx: &SessionContext,
    lake: &Lake,
    month: crate::core::month::Month,
) -> Result<(), RateError> {
    engine::register_path_or_empty(
        ctx,
        lake,
        "cdr_conflicts",
        &format!("{}/month={month}", datasets::CDR_CONFLICTS),
        upstream::cdr_schema(true),
    )
    .await?;
    engine::register_path_or_empty(
        ctx,
        lake,
        "all_cdr_conflicts",
        datasets::CDR_CONFLICTS,
        upstream::cdr_schema(true),
    )
    .await?;
    engine::run_layer(ctx, sqlfiles::COPIES).await?;
    Ok(())
}

/// Rates a month in memory, for `bill` billing an issued month again
/// (account.md §4): registers in `ctx` (which has the reference layer)
/// `rated_cdrs` as a view of the month's events without exception, from
/// every CDR landed so far and the reference tables in force now. Nothing
/// is written.
pub async fn rate_in_memory(
    ctx: &SessionContext,
    lake: &Lake,
    month: crate::core::month::Month,
) -> Result<(), RateError> {
    // One billed copy per cdr_id (rating.md §1), as `rate` rates them.
    register_month_events(ctx, lake, month).await?;
    ctx.sql("CREATE VIEW cdrs AS SELECT * FROM month_events")
        .await?;
    register_no_carried_pools(ctx)?;
    engine::run_layer(ctx, sqlfiles::RATING).await?;
    engine::run_layer(ctx, std::slice::from_ref(&sqlfiles::RATED_EVENTS)).await?;
    ctx.sql("CREATE VIEW rated_cdrs AS SELECT * FROM rated_events WHERE exception IS NULL")
        .await?;
    Ok(())
}
