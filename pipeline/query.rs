//! `query`: SQL over the lake's datasets and the reference tables, for
//! analysts. Every dataset of the lake is a table named like its folder
//! (`cdrs`, `rated_cdrs`, `invoices`, …, with its partition column such as
//! `month`), and every reference table is registered under its file name
//! (`plans`, `customers`, `subscriptions`, …).
//!
//! Output as an aligned table, CSV (`,`-separated, for tools) or JSON lines.
//! Decimal values keep their exact digits in every format (as strings in
//! JSON, so that no reader turns them into floats).

use std::io::Write;

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::engine;
use crate::lake::{datasets, Lake, LakeError};
use crate::reference::Reference;
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("cannot write the result: {0}")]
    Output(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Serialize)]
pub struct QueryReport {
    pub rows: u64,
    #[serde(skip)]
    pub output: String,
}

impl std::fmt::Display for QueryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.output.trim_end())
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

pub async fn query(
    settings: &Settings,
    lake: &Lake,
    sql: &str,
    format: QueryFormat,
) -> Result<QueryReport, QueryError> {
    let ctx = analyst_session(settings, lake).await?;
    let frame = ctx.sql(sql).await?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let output = match format {
        QueryFormat::Table => datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| QueryError::Output(e.to_string()))?
            .to_string(),
        QueryFormat::Csv => to_csv(&names, &batches)?,
        QueryFormat::Json => to_json_lines(&names, &batches)?,
    };
    Ok(QueryReport { rows, output })
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

fn to_json_lines(names: &[String], batches: &[RecordBatch]) -> Result<String, QueryError> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::new();
            for (name, column) in names.iter().zip(batch.columns()) {
                let value = if column.is_null(row) {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(engine::value_string(column, row)?)
                };
                object.insert(name.clone(), value);
            }
            serde_json::to_writer(&mut out, &object)
                .map_err(|e| QueryError::Output(e.to_string()))?;
            out.write_all(b"\n")
                .map_err(|e| QueryError::Output(e.to_string()))?;
        }
    }
    String::from_utf8(out).map_err(|e| QueryError::Output(e.to_string()))
}
