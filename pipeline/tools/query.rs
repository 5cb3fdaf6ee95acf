//! `query`: SQL over the lake's datasets and the reference tables, for
//! analysts. Every dataset of the lake is a table named like its folder
//! (`cdrs`, `rated_cdrs`, `invoices`, …, with its partition column such as
//! `month`), and every reference table is registered under its file name
//! (`plans`, `customers`, `subscriptions`, …).
//!
//! Output as an aligned table, CSV (`,`-separated, for tools), JSON lines or
//! a Parquet file; with `--json`, the rows as one JSON array, as `duckdb
//! -json` prints them. In JSON, integers and booleans are JSON numbers and
//! booleans, decimals are strings with their exact digits (so that no reader
//! turns an amount into a float), dates and times ISO 8601 strings. Parquet
//! keeps the lake's types (Decimal128 money). Without a statement, `query`
//! opens a prompt ([`interactive`]).
//!
//! `query` is read-only: only queries run. DDL (`CREATE EXTERNAL TABLE`,
//! `CREATE TABLE AS`, `DROP`), DML (`INSERT`, `COPY … TO`) and other
//! statements (`SET`) are refused before anything runs, at the prompt too,
//! so an analyst can neither change the lake nor read a file outside it. A
//! result is written with `--out FILE`, outside the lake.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::engine;
use crate::reference::Reference;
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(
        "query is read-only: {0} is refused (only queries run; write a result with --out FILE)"
    )]
    ReadOnly(String),
    #[error("cannot write the result: {0}")]
    Output(String),
    #[error("cannot write {path}: {reason}")]
    OutFile { path: String, reason: String },
    #[error("--format parquet writes a file: give it with --out FILE.parquet")]
    ParquetNeedsFile,
    #[error("the query prompt: {0}")]
    Prompt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFormat {
    Table,
    Csv,
    /// One JSON object a line.
    Json,
    /// The rows as one JSON array (`--json`).
    JsonArray,
    /// A Parquet file (zstd), with `--out`.
    Parquet,
}

impl std::str::FromStr for QueryFormat {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "table" => Ok(QueryFormat::Table),
            "csv" => Ok(QueryFormat::Csv),
            "json" => Ok(QueryFormat::Json),
            "parquet" => Ok(QueryFormat::Parquet),
            other => Err(format!("'{other}': give table, csv, json or parquet")),
        }
    }
}

/// What an analyst's statement may do: query, nothing else.
fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

#[derive(Debug, Serialize)]
pub struct QueryReport {
    pub rows: u64,
    /// The file written with `--out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<String>,
    #[serde(skip)]
    pub output: String,
    /// `output` is the rows as one JSON array (`--json`).
    #[serde(skip)]
    pub json_array: bool,
}

impl std::fmt::Display for QueryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.out {
            Some(path) => write!(f, "query: {} rows written to {path}", self.rows),
            None => write!(f, "{}", self.output.trim_end()),
        }
    }
}

/// A session with every dataset and reference table registered.
pub async fn analyst_session(
    settings: &Settings,
    lake: &Lake,
) -> Result<datafusion::prelude::SessionContext, QueryError> {
    let ctx = engine::session_with_pool(settings.memory_pool_bytes);
    for (name, partition) in datasets::ALL {
        engine::register_dataset(&ctx, lake, name, *partition).await?;
    }
    match Reference::load(&settings.reference_dir) {
        Ok(reference) => reference.register(&ctx)?,
        Err(e) => tracing::warn!("reference tables not registered: {e}"),
    }
    Ok(ctx)
}

/// Runs one statement; with `out`, writes the result to that file instead of
/// the report.
pub async fn query(
    settings: &Settings,
    lake: &Lake,
    sql: &str,
    format: QueryFormat,
    out: Option<&Path>,
) -> Result<QueryReport, QueryError> {
    if format == QueryFormat::Parquet && out.is_none() {
        return Err(QueryError::ParquetNeedsFile);
    }
    let ctx = analyst_session(settings, lake).await?;
    run_statement(&ctx, sql, format, out).await
}

async fn run_statement(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    format: QueryFormat,
    out: Option<&Path>,
) -> Result<QueryReport, QueryError> {
    let plan = ctx.state().create_logical_plan(sql).await?;
    if let Err(refused) = read_only().verify_plan(&plan) {
        return Err(QueryError::ReadOnly(refused_statement(&refused)));
    }
    let frame = ctx.execute_logical_plan(plan).await?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let output = match format {
        QueryFormat::Table => datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| QueryError::Output(e.to_string()))?
            .to_string(),
        QueryFormat::Csv => to_csv(&names, &batches)?,
        QueryFormat::Json => to_json_lines(&names, &batches)?,
        QueryFormat::JsonArray => to_json_array(&names, &batches)?,
        QueryFormat::Parquet => String::new(),
    };
    let Some(path) = out else {
        return Ok(QueryReport {
            rows,
            out: None,
            output,
            json_array: format == QueryFormat::JsonArray,
        });
    };
    let written = match format {
        QueryFormat::Parquet => write_parquet(path, schema, &batches),
        _ => write_whole(path, output.as_bytes()),
    };
    written.map_err(|reason| QueryError::OutFile {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(QueryReport {
        rows,
        out: Some(path.display().to_string()),
        output: String::new(),
        json_array: false,
    })
}

/// Writes a file whole: beside it first, then renamed over it, so a reader
/// never sees half a result.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let partial = partial_path(path);
    std::fs::write(&partial, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, path).map_err(|e| e.to_string())
}

fn partial_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// The result as one Parquet file, zstd, with the lake's types (Decimal128
/// money, microsecond timestamps).
fn write_parquet(
    path: &Path,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), String> {
    use parquet::basic::{Compression, ZstdLevel};
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| e.to_string())?,
        ))
        .build();
    let partial = partial_path(path);
    let file = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(properties))
        .map_err(|e| e.to_string())?;
    for batch in batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| e.to_string())?;
    std::fs::rename(&partial, path).map_err(|e| e.to_string())
}

/// What an interactive session did.
#[derive(Debug, Serialize)]
pub struct SessionReport {
    pub statements: u64,
    pub failed: u64,
    pub history: String,
}

impl std::fmt::Display for SessionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query: {} statements ({} failed); history in {}",
            self.statements, self.failed, self.history
        )
    }
}

const PROMPT_HELP: &str = "\
Statements end with `;` and may span lines. Commands:
  \\d            the tables
  \\d NAME       a table's columns and types
  \\format F     table, csv or json (now: {format})
  \\q            quit (or Ctrl-D)";

/// The interactive prompt: statements end with `;` and may span lines;
/// `\d` lists the tables, `\d NAME` shows one, `\format` switches the
/// output, `\q` or Ctrl-D quits. Every statement goes to the history file
/// (owner-only), read again at the next session. An error is printed on one
/// line and the prompt goes on. Without a terminal (a pipe), the lines are
/// read as they come, without editing.
pub async fn interactive(
    settings: &Settings,
    lake: &Lake,
    mut format: QueryFormat,
    history: &Path,
) -> Result<SessionReport, QueryError> {
    use rustyline::error::ReadlineError;
    let ctx = analyst_session(settings, lake).await?;
    let prompt_err = |e: ReadlineError| QueryError::Prompt(e.to_string());
    let mut editor = rustyline::DefaultEditor::new().map_err(prompt_err)?;
    if history.exists() {
        if let Err(e) = editor.load_history(history) {
            tracing::warn!("history {} not read: {e}", history.display());
        }
    }
    let mut report = SessionReport {
        statements: 0,
        failed: 0,
        history: history.display().to_string(),
    };
    let mut pending = String::new();
    let mut stdout = std::io::stdout();
    loop {
        let prompt = if pending.is_empty() {
            "mvnobill> "
        } else {
            "      ..> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            // Ctrl-C drops the statement being typed, as in psql.
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(prompt_err(e)),
        };
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            let text = match (words.next(), words.next()) {
                (Some("\\q"), _) => break,
                (Some("\\d"), None) => tables(&ctx),
                (Some("\\d"), Some(name)) => describe(&ctx, name).await,
                (Some("\\format"), Some(name)) => match name.parse::<QueryFormat>() {
                    Ok(QueryFormat::Parquet | QueryFormat::JsonArray) | Err(_) => {
                        Err("\\format takes table, csv or json".to_string())
                    }
                    Ok(chosen) => {
                        format = chosen;
                        Ok(format!("output: {name}"))
                    }
                },
                _ => Ok(PROMPT_HELP.replace("{format}", format_name(format))),
            };
            match text {
                Ok(text) => print_out(&mut stdout, &text),
                Err(e) => eprintln!("error: {e}"),
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(&line);
        if !trimmed.ends_with(';') {
            continue;
        }
        let statement = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(statement.as_str());
        report.statements += 1;
        match run_statement(&ctx, &statement, format, None).await {
            Ok(result) => print_out(
                &mut stdout,
                &format!("{}\n({} rows)", result.output.trim_end(), result.rows),
            ),
            Err(e) => {
                report.failed += 1;
                eprintln!("error: {}", crate::core::text::one_line(&e.to_string()));
            }
        }
    }
    save_history(&mut editor, history);
    Ok(report)
}

fn format_name(format: QueryFormat) -> &'static str {
    match format {
        QueryFormat::Table => "table",
        QueryFormat::Csv => "csv",
        QueryFormat::Json | QueryFormat::JsonArray => "json",
        QueryFormat::Parquet => "parquet",
    }
}

fn print_out(out: &mut std::io::Stdout, text: &str) {
    // A closed pipe ends nothing here: the session reads on until its end.
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// The history file holds what analysts typed (customer names in a WHERE):
/// readable by its owner only.
fn save_history(editor: &mut rustyline::DefaultEditor, history: &Path) {
    if let Some(folder) = history.parent() {
        let _ = std::fs::create_dir_all(folder);
    }
    if let Err(e) = editor.save_history(history) {
        tracing::warn!("history {} not saved: {e}", history.display());
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(history, std::fs::Permissions::from_mode(0o600));
    }
}

/// The registered tables, one a line.
fn tables(ctx: &datafusion::prelude::SessionContext) -> Result<String, String> {
    let mut names: Vec<String> = ctx
        .catalog("datafusion")
        .and_then(|catalog| catalog.schema("public"))
        .map(|schema| schema.table_names())
        .unwrap_or_default();
    names.sort();
    Ok(names.join("\n"))
}

/// A table's columns and their types.
async fn describe(ctx: &datafusion::prelude::SessionContext, name: &str) -> Result<String, String> {
    let table = ctx
        .table(name)
        .await
        .map_err(|_| format!("no table {name}: \\d lists them"))?;
    let schema = table.schema().as_arrow().clone();
    let width = schema
        .fields()
        .iter()
        .map(|f| f.name().len())
        .max()
        .unwrap_or(0);
    Ok(schema
        .fields()
        .iter()
        .map(|f| format!("{:width$}  {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn to_csv(names: &[String], batches: &[RecordBatch]) -> Result<String, QueryError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| QueryError::Output(e.to_string());
    writer.write_record(names).map_err(err)?;
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|c| engine::value_string(c, row))
                .collect::<Result<Vec<_>, _>>()?;
            writer.write_record(&values).map_err(err)?;
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| QueryError::Output(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| QueryError::Output(e.to_string()))
}

/// What DataFusion refused, in the analyst's words: `Error during
/// planning: DML not supported: Insert Into` → `INSERT`.
fn refused_statement(error: &datafusion::error::DataFusionError) -> String {
    let text = error.to_string();
    let what = text.rsplit(": ").next().unwrap_or(&text).trim();
    let upper = what.to_ascii_uppercase();
    let named = [
        ("INSERT", "INSERT"),
        ("COPY", "COPY"),
        ("CREATEEXTERNALTABLE", "CREATE EXTERNAL TABLE"),
        ("CREATEMEMORYTABLE", "CREATE TABLE"),
        ("CREATEVIEW", "CREATE VIEW"),
        ("DROP", "DROP"),
        ("SET", "SET"),
        ("UPDATE", "UPDATE"),
        ("DELETE", "DELETE"),
    ];
    let compact: String = upper.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    named
        .iter()
        .find(|(key, _)| compact.starts_with(key))
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| crate::core::text::one_line(what))
}

/// A value as JSON: integers and booleans as themselves, decimals and
/// everything else as their exact text.
fn json_value(
    column: &datafusion::arrow::array::ArrayRef,
    row: usize,
) -> Result<serde_json::Value, QueryError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{self as types, DataType};
    if column.is_null(row) {
        return Ok(serde_json::Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Boolean => serde_json::Value::Bool(column.as_boolean().value(row)),
        DataType::Int8 => column.as_primitive::<types::Int8Type>().value(row).into(),
        DataType::Int16 => column.as_primitive::<types::Int16Type>().value(row).into(),
        DataType::Int32 => column.as_primitive::<types::Int32Type>().value(row).into(),
        DataType::Int64 => column.as_primitive::<types::Int64Type>().value(row).into(),
        DataType::UInt8 => column.as_primitive::<types::UInt8Type>().value(row).into(),
        DataType::UInt16 => column.as_primitive::<types::UInt16Type>().value(row).into(),
        DataType::UInt32 => column.as_primitive::<types::UInt32Type>().value(row).into(),
        DataType::UInt64 => column.as_primitive::<types::UInt64Type>().value(row).into(),
        _ => serde_json::Value::String(engine::value_string(column, row)?),
    })
}

fn json_object(
    names: &[String],
    batch: &RecordBatch,
    row: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, QueryError> {
    let mut object = serde_json::Map::new();
    for (name, column) in names.iter().zip(batch.columns()) {
        object.insert(name.clone(), json_value(column, row)?);
    }
    Ok(object)
}

/// The rows as one JSON array, an object a line (`--json`).
fn to_json_array(names: &[String], batches: &[RecordBatch]) -> Result<String, QueryError> {
    let mut lines = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let object = json_object(names, batch, row)?;
            lines.push(
                serde_json::to_string(&object).map_err(|e| QueryError::Output(e.to_string()))?,
            );
        }
    }
    Ok(format!("[{}]", lines.join(",\n")))
}

fn to_json_lines(names: &[String], batches: &[RecordBatch]) -> Result<String, QueryError> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let object = json_object(names, batch, row)?;
            serde_json::to_writer(&mut out, &object)
                .map_err(|e| QueryError::Output(e.to_string()))?;
            out.write_all(b"\n")
                .map_err(|e| QueryError::Output(e.to_string()))?;
        }
    }
    String::from_utf8(out).map_err(|e| QueryError::Output(e.to_string()))
}
