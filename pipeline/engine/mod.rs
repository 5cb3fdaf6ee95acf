//! The query engine: one DataFusion session per stage, with the lake's
//! datasets and the reference tables registered as tables, and the SQL files
//! of `sql/` run layer by layer, each result registered under its file name.
//!
//! SQL literals such as `0.20` are parsed as exact decimals, never floats
//! (`parse_float_as_decimal`), so no binary float comes near an amount.

pub mod running_sum;
pub mod sqlfiles;
pub mod zones;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;

use crate::core::lake::{Lake, LakeError};
use crate::engine::running_sum::RunningSums;

/// Memory DataFusion's operators may hold before sorts, windows and
/// aggregations spill to disk, when the configuration does not say
/// (`[engine] memory_pool_mb`). The process's peak is this plus Parquet
/// buffers and the runtime: 1280 MB keeps a month of 30 million CDRs
/// within 2 GiB (docs/PERFORMANCE.md).
pub const DEFAULT_MEMORY_POOL_MB: usize = 1280;
pub const DEFAULT_MEMORY_POOL_BYTES: usize = DEFAULT_MEMORY_POOL_MB << 20;

/// A session configured for exact money, with the default memory pool.
pub fn session() -> SessionContext {
    session_with_pool(DEFAULT_MEMORY_POOL_BYTES)
}

/// Rows per batch in the engine's operators: twice DataFusion's default,
/// which on rate's month costs fewer calls per row; the memory that takes
/// comes back from compressing what sorts spill (docs/PERFORMANCE.md).
const BATCH_ROWS: usize = 16_384;

/// A session configured for exact money and bounded memory.
pub fn session_with_pool(pool_bytes: usize) -> SessionContext {
    use datafusion::common::config::SpillCompression;
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(BATCH_ROWS);
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // Sorted runs spilled to disk are LZ4 frames: less to write and read
    // back, and, measured, a lower peak for rate (docs/PERFORMANCE.md).
    config.options_mut().execution.spill_compression = SpillCompression::Lz4Frame;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(pool_bytes)))
        .build_arc()
        .expect("a runtime with the default disk manager");
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(RunningSums))
        .build();
    SessionContext::new_with_state(state)
}

/// Registers a lake dataset (all partitions) as a table named like it.
/// Returns false, registering nothing, when the dataset has no file yet.
pub async fn register_dataset(
    ctx: &SessionContext,
    lake: &Lake,
    name: &str,
    partition: Option<&str>,
) -> Result<bool, LakeError> {
    register_path(ctx, lake, name, name, partition).await
}

/// Registers the Parquet files below `path` (relative to the lake) as `table`.
pub async fn register_path(
    ctx: &SessionContext,
    lake: &Lake,
    table: &str,
    path: &str,
    partition: Option<&str>,
) -> Result<bool, LakeError> {
    let files = lake.list(path).await?;
    if !files.iter().any(|f| f.ends_with(".parquet")) {
        return Ok(false);
    }
    lake.register_with(ctx);
    let url = lake.url().join(&format!("{path}/"));
    let partitions: Vec<(String, DataType)> = partition
        .map(|p| vec![(p.to_string(), DataType::Utf8)])
        .unwrap_or_default();
    let options = ParquetReadOptions::default().table_partition_cols(partitions);
    ctx.register_parquet(table, &url, options)
        .await
        .map_err(|source| LakeError::Query {
            url: url.clone(),
            source,
        })?;
    Ok(true)
}

/// Gives the registered `table` a column `column` of NULL text when it has
/// none (a dataset written before the column existed), so that the SQL
/// reading it stays one statement for old and new lakes.
pub async fn with_text_column(
    ctx: &SessionContext,
    table: &str,
    column: &str,
) -> Result<(), DataFusionError> {
    let frame = ctx.table(table).await?;
    if frame.schema().has_column_with_unqualified_name(column) {
        return Ok(());
    }
    let frame = frame.with_column(
        column,
        datafusion::prelude::lit(datafusion::scalar::ScalarValue::Utf8(None)),
    )?;
    ctx.deregister_table(table)?;
    ctx.register_table(table, frame.into_view())?;
    Ok(())
}

/// Registers the Parquet files below `path` as `table`, or an empty table of
/// `schema` when there is none yet.
pub async fn register_path_or_empty(
    ctx: &SessionContext,
    lake: &Lake,
    table: &str,
    path: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<(), LakeError> {
    if !register_path(ctx, lake, table, path, None).await? {
        register_batch(ctx, table, empty(schema)).map_err(|source| LakeError::Query {
            url: lake.url().join(path),
            source,
        })?;
    }
    Ok(())
}

/// Registers record batches as an in-memory table.
pub fn register_batch(
    ctx: &SessionContext,
    name: &str,
    batch: RecordBatch,
) -> Result<(), DataFusionError> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Registers record batches of one schema as an in-memory table (none: an
/// empty table of the schema).
pub fn register_batches(
    ctx: &SessionContext,
    name: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(), DataFusionError> {
    let table = MemTable::try_new(schema, vec![batches])?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Registers some Parquet files of the lake (keys relative to it) as one
/// table, of `schema` when given (else the files'); no key: an empty table
/// of `schema` (an empty schema without).
pub async fn register_files(
    ctx: &SessionContext,
    lake: &Lake,
    table: &str,
    keys: &[String],
    schema: Option<datafusion::arrow::datatypes::SchemaRef>,
) -> Result<(), LakeError> {
    let failed = |key: &str, source: DataFusionError| LakeError::Query {
        url: lake.url().join(key),
        source,
    };
    if keys.is_empty() {
        let schema =
            schema.unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        return register_batch(ctx, table, empty(schema)).map_err(|e| failed(table, e));
    }
    lake.register_with(ctx);
    let urls: Vec<String> = keys.iter().map(|key| lake.url().join(key)).collect();
    let mut options = ParquetReadOptions::default();
    if let Some(schema) = schema.as_deref() {
        options = options.schema(schema);
    }
    let frame = ctx
        .read_parquet(urls, options)
        .await
        .map_err(|e| failed(&keys[0], e))?;
    ctx.deregister_table(table)
        .and_then(|_| ctx.register_table(table, frame.into_view()))
        .map_err(|e| failed(&keys[0], e))?;
    Ok(())
}

/// How a SQL file's result is kept for the files after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Computed once and held in memory: small results read several times
    /// (reference versions, allowance pools, the zones of called numbers).
    Memory,
    /// A view: its plan is inlined where it is used, so that a month of
    /// CDRs streams through the whole rating plan instead of sitting in
    /// memory between steps.
    View,
}

/// One SQL file of `sql/`, embedded in the binary.
pub struct SqlFile {
    /// The table name its result is registered under.
    pub name: &'static str,
    pub sql: &'static str,
    pub keep: Keep,
}

/// Runs SQL files in order, registering each result under the file's name
/// for the files after it.
pub async fn run_layer(ctx: &SessionContext, files: &[SqlFile]) -> Result<(), DataFusionError> {
    for file in files {
        let frame = ctx
            .sql(file.sql)
            .await
            .map_err(|e| e.context(format!("in sql file {}", file.name)))?;
        if file.keep == Keep::View {
            ctx.deregister_table(file.name)?;
            ctx.register_table(file.name, frame.into_view())?;
            continue;
        }
        let stream = frame
            .execute_stream()
            .await
            .map_err(|e| e.context(format!("in sql file {}", file.name)))?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| e.context(format!("in sql file {}", file.name)))?;
        let table = MemTable::try_new(schema, vec![batches])?;
        ctx.deregister_table(file.name)?;
        ctx.register_table(file.name, Arc::new(table))?;
    }
    Ok(())
}

/// Runs one SQL file as the query itself, its ORDER BY included, and
/// streams its result.
pub async fn stream_file(
    ctx: &SessionContext,
    file: &SqlFile,
) -> Result<datafusion::execution::SendableRecordBatchStream, DataFusionError> {
    Ok(stream_file_with_plan(ctx, file).await?.1)
}

/// [`stream_file`], keeping the physical plan, whose metrics (rows, time
/// and memory of each operator) are complete once the stream is.
pub async fn stream_file_with_plan(
    ctx: &SessionContext,
    file: &SqlFile,
) -> Result<
    (
        Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        datafusion::execution::SendableRecordBatchStream,
    ),
    DataFusionError,
> {
    let in_file = |e: DataFusionError| e.context(format!("in sql file {}", file.name));
    let plan = ctx
        .sql(file.sql)
        .await
        .map_err(in_file)?
        .create_physical_plan()
        .await
        .map_err(in_file)?;
    let stream =
        datafusion::physical_plan::execute_stream(plan.clone(), ctx.task_ctx()).map_err(in_file)?;
    Ok((plan, stream))
}

/// For profiling (docs/PERFORMANCE.md): when the environment variable
/// `MVNOBILL_PLAN_METRICS` names a file, appends to it a run plan with each
/// operator's metrics, as `EXPLAIN ANALYZE` prints them.
pub fn save_plan_metrics(title: &str, plan: &dyn datafusion::physical_plan::ExecutionPlan) {
    use std::io::Write;
    let Some(path) = std::env::var_os("MVNOBILL_PLAN_METRICS") else {
        return;
    };
    let shown = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan)
        .indent(true)
        .to_string();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "-- {title}\n{shown}"));
    if let Err(e) = written {
        tracing::warn!(
            "could not write the plan's metrics to {}: {e}",
            path.to_string_lossy()
        );
    }
}

/// The values of a text column (Utf8, LargeUtf8 or Utf8View) as strings;
/// null as "".
pub fn strings(array: &ArrayRef) -> Vec<String> {
    let get = |i: usize| -> String {
        if array.is_null(i) {
            return String::new();
        }
        match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
            DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
            DataType::Utf8View => array.as_string_view().value(i).to_string(),
            other => format!("<{other}>"),
        }
    };
    (0..array.len()).map(get).collect()
}

/// An empty batch of a schema (a dataset with no file yet).
pub fn empty(schema: datafusion::arrow::datatypes::SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(schema)
}

/// The one-row `params` table the SQL reads the month from: `month`,
/// `month_start`, `month_end`, `days_in_month`, and for billing the
/// `period_start`, `period_end`, `issue_date` and `due_date`.
pub fn params_batch(
    month: crate::core::month::Month,
    dates: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
) -> RecordBatch {
    use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    let day = |d: chrono::NaiveDate| Date32Array::from(vec![crate::core::month::epoch_days(d)]);
    let (issue, due) = dates.unwrap_or((month.next_first_day(), month.next_first_day()));
    let schema = Schema::new(vec![
        Field::new("month", DataType::Utf8, false),
        Field::new("month_start", DataType::Date32, false),
        Field::new("month_end", DataType::Date32, false),
        Field::new("days_in_month", DataType::Int64, false),
        Field::new("period_start", DataType::Date32, false),
        Field::new("period_end", DataType::Date32, false),
        Field::new("issue_date", DataType::Date32, false),
        Field::new("due_date", DataType::Date32, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec![month.to_string()])),
            Arc::new(day(month.first_day())),
            Arc::new(day(month.last_day())),
            Arc::new(Int64Array::from(vec![month.days()])),
            Arc::new(day(month.first_day())),
            Arc::new(day(month.last_day())),
            Arc::new(day(issue)),
            Arc::new(day(due)),
        ],
    )
    .expect("params columns")
}

/// Every row of a query, each value formatted as text (decimals exactly,
/// null as "").
pub async fn rows_strings(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Vec<Vec<String>>, DataFusionError> {
    text_rows(&ctx.sql(sql).await?.collect().await?)
}

/// The rows of record batches, each value as text ([`value_string`]).
fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DataFusionError> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| value_string(c, row))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    Ok(rows)
}

/// The first row of a query as text.
pub async fn row_strings(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, DataFusionError> {
    rows_strings(ctx, sql)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DataFusionError::Execution(format!("no row from: {sql}")))
}

/// A query's single count.
pub async fn scalar_u64(ctx: &SessionContext, sql: &str) -> Result<u64, DataFusionError> {
    Ok(row_strings(ctx, sql).await?[0].parse().unwrap_or_default())
}

/// One value as text: decimals with their exact digits, null as "".
pub fn value_string(array: &ArrayRef, row: usize) -> Result<String, DataFusionError> {
    if array.is_null(row) {
        return Ok(String::new());
    }
    Ok(datafusion::arrow::util::display::array_value_to_string(
        array, row,
    )?)
}

/// Rows of a query as text, with their column names (none by default).
#[derive(Default)]
pub struct Rows {
    columns: std::collections::BTreeMap<String, usize>,
    pub rows: Vec<Vec<String>>,
}

impl Rows {
    /// Runs one SQL file and keeps every value as text
    /// ([`value_string`]).
    pub async fn query(
        ctx: &datafusion::prelude::SessionContext,
        file: &SqlFile,
    ) -> Result<Rows, DataFusionError> {
        let frame = ctx
            .sql(file.sql)
            .await
            .map_err(|e| e.context(format!("in sql file {}", file.name)))?;
        Rows::of_frame(frame).await
    }

    /// Runs one statement of the code (a select from registered tables)
    /// and keeps every value as text.
    pub async fn query_sql(
        ctx: &datafusion::prelude::SessionContext,
        sql: &str,
    ) -> Result<Rows, DataFusionError> {
        Rows::of_frame(ctx.sql(sql).await?).await
    }

    async fn of_frame(frame: datafusion::dataframe::DataFrame) -> Result<Rows, DataFusionError> {
        let columns = frame
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), i))
            .collect();
        let rows = text_rows(&frame.collect().await?)?;
        Ok(Rows { columns, rows })
    }

    /// Each column's position in a row.
    pub fn columns(&self) -> &std::collections::BTreeMap<String, usize> {
        &self.columns
    }

    /// A row's value in a column; empty for a column the query lacks.
    pub fn get<'r>(&self, row: &'r [String], column: &str) -> &'r str {
        self.columns
            .get(column)
            .map(|&i| row[i].as_str())
            .unwrap_or("")
    }
}
