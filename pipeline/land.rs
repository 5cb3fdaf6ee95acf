//! `land`: turn the raw files fetched by `sync` into Parquet datasets, and
//! bad rows into quarantine.
//!
//! Files land in the ledger's order (folder, name, version), each once. For
//! every file, rows in = rows landed + rows quarantined. RatedCDRs are
//! de-duplicated by `cdr_id` against everything landed before (rating.md §1):
//! an identical copy counts once, a copy with other content goes to
//! `cdr_conflicts` (rated as a `CONFLICTING_DUPLICATE` exception), the first
//! copy stays. Each file's output is its own Parquet file per month
//! (`cdrs/month=2026-10/RatedCDRs_20261002_080700.parquet`), written
//! atomically before the ledger marks the file landed, so landing a new
//! delivery writes only that delivery's rows, and a crash mid-way is repaired
//! by the next run rewriting the same files.
//!
//! A file the pipeline cannot read as a table (empty, no header, a required
//! column missing) is refused whole: its rows go to quarantine with the
//! reason, and the report names it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    AsArray, Date32Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::csvfile::{self, CsvFile};
use crate::lake::{datasets, Lake, LakeError};
use crate::ledger::{FetchedFile, LandedCounts, Ledger, LedgerError};
use crate::settings::Settings;
use crate::sync::{self, SyncError};
use crate::upstream::{self, CdrBuilder, QuarantineBuilder};

#[derive(Debug, thiserror::Error)]
pub enum LandError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Raw(#[from] SyncError),
    #[error("reading landed CDRs: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("PUK store {path}: {source}")]
    Secrets {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub folder: String,
    pub file: String,
    #[serde(flatten)]
    pub counts: LandedCounts,
    /// Why the whole file was refused, if it was.
    pub refused: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct LandReport {
    pub files: Vec<FileReport>,
    pub totals: LandedCounts,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for LandReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.totals;
        write!(
            f,
            "land: {} files, {} rows in = {} landed ({} new, {} duplicates, {} conflicting copies) + {} quarantined",
            self.files.len(),
            t.rows_in,
            t.landed,
            t.new_rows,
            t.duplicates,
            t.conflicts,
            t.quarantined
        )?;
        for file in self.files.iter().filter(|f| f.refused.is_some()) {
            write!(
                f,
                "\n  refused: {}",
                file.refused.as_deref().unwrap_or_default()
            )?;
        }
        for warning in &self.warnings {
            write!(f, "\n  warning: {warning}")?;
        }
        Ok(())
    }
}

/// What is known of a landed `cdr_id`: its content hash and first file.
struct Seen {
    hash: i64,
    source: Arc<str>,
}

pub async fn land(
    settings: &Settings,
    lake: &Lake,
    ledger: &Ledger,
) -> Result<LandReport, LandError> {
    let files = ledger.unlanded_files()?;
    let mut report = LandReport::default();
    if files.is_empty() {
        return Ok(report);
    }
    let landing: HashSet<String> = files.iter().map(stored_name).collect();
    let mut index = if files.iter().any(|f| f.folder == "RatedCDRs") {
        load_cdr_index(lake, &landing).await?
    } else {
        HashMap::new()
    };
    for file in &files {
        let bytes = sync::read_raw(settings, lake, &file.raw_key).await?;
        let name = stored_name(file);
        let mut file_report = FileReport {
            folder: file.folder.clone(),
            file: name.clone(),
            counts: LandedCounts::default(),
            refused: None,
        };
        let mut quarantine = QuarantineBuilder::default();
        match CsvFile::parse(&name, &bytes) {
            Err(e) => {
                file_report.refused = Some(e.to_string());
                let line = match &e {
                    csvfile::CsvFileError::Syntax { line, .. } => *line,
                    _ => 1,
                };
                quarantine.push(&name, line, b"", &format!("REFUSED_FILE: {e}"));
                file_report.counts.quarantined = 1;
                file_report.counts.rows_in = 1;
            }
            Ok(csv) => {
                let wanted = match file.folder.as_str() {
                    "RatedCDRs" | "BilledCDRs" => upstream::CDR_COLUMNS,
                    "AccountStatus" => upstream::STATUS_COLUMNS,
                    _ => upstream::SIM_COLUMNS,
                };
                let unknown = csv.unknown_columns(wanted);
                if !unknown.is_empty() {
                    report.warnings.push(format!(
                        "{name}: unknown columns ignored: {}",
                        unknown.join(", ")
                    ));
                }
                match csv.columns(wanted) {
                    Err(e) => {
                        file_report.refused = Some(e.to_string());
                        for record in &csv.records {
                            quarantine.push(
                                &name,
                                record.line,
                                &mask(&file.folder, &csv, record),
                                &format!("MISSING_COLUMN: {e}"),
                            );
                        }
                        file_report.counts.rows_in = csv.records.len() as u64;
                        file_report.counts.quarantined = csv.records.len() as u64;
                    }
                    Ok(index_of) => {
                        file_report.counts = match file.folder.as_str() {
                            "RatedCDRs" => {
                                land_cdrs(
                                    lake,
                                    &name,
                                    &csv,
                                    &index_of,
                                    &mut quarantine,
                                    Some(&mut index),
                                )
                                .await?
                            }
                            "BilledCDRs" => {
                                land_cdrs(lake, &name, &csv, &index_of, &mut quarantine, None)
                                    .await?
                            }
                            "AccountStatus" => {
                                land_status(lake, &name, &csv, &index_of, &mut quarantine).await?
                            }
                            _ => {
                                land_sim(settings, lake, &name, &csv, &index_of, &mut quarantine)
                                    .await?
                            }
                        };
                    }
                }
            }
        }
        let source_key = quarantine_source(&file.folder);
        let quarantine_key = format!(
            "{}/source={source_key}/{}.parquet",
            datasets::QUARANTINE,
            stem(&name)
        );
        if quarantine.is_empty() {
            lake.delete(&quarantine_key).await?;
        } else {
            lake.write_parquet(
                &quarantine_key,
                upstream::quarantine_schema(),
                &[quarantine.finish()],
            )
            .await?;
        }
        if let Some(reason) = &file_report.refused {
            tracing::warn!("file refused, its rows are in quarantine: {reason}");
        }
        ledger.record_landed(file.id, &file_report.counts)?;
        add_counts(&mut report.totals, &file_report.counts);
        report.files.push(file_report);
    }
    Ok(report)
}

fn add_counts(total: &mut LandedCounts, c: &LandedCounts) {
    total.rows_in += c.rows_in;
    total.landed += c.landed;
    total.new_rows += c.new_rows;
    total.duplicates += c.duplicates;
    total.conflicts += c.conflicts;
    total.quarantined += c.quarantined;
}

/// The file name as stored in the raw zone (`RatedCDRs_x.v2.csv` for a
/// second version).
fn stored_name(file: &FetchedFile) -> String {
    file.raw_key
        .rsplit('/')
        .next()
        .unwrap_or(&file.name)
        .to_string()
}

fn stem(name: &str) -> &str {
    name.strip_suffix(".csv")
        .or_else(|| name.strip_suffix(".CSV"))
        .unwrap_or(name)
}

/// The `source=` partition of the quarantine for an upstream folder.
fn quarantine_source(folder: &str) -> &'static str {
    match folder {
        "RatedCDRs" => "RatedCDRs",
        "BilledCDRs" => "BilledCDRs",
        "AccountStatus" => "AccountStatus",
        _ => "SimOrders",
    }
}

/// The raw text of a record, with PUK codes masked for SIM orders.
fn mask(folder: &str, csv: &CsvFile<'_>, record: &csvfile::Record<'_>) -> Vec<u8> {
    if folder != sync::SIM_FOLDER {
        return record.raw.to_vec();
    }
    let fields: Vec<String> = record
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| match csv.header.get(i).map(String::as_str) {
            Some("puk1") | Some("puk2") => "********".to_string(),
            _ => String::from_utf8_lossy(f).into_owned(),
        })
        .collect();
    fields.join(";").into_bytes()
}

/// `cdr_id` → (content hash, first file) of every CDR landed so far, except
/// those of files being landed now (a re-run after a crash rewrites them).
async fn load_cdr_index(
    lake: &Lake,
    landing: &HashSet<String>,
) -> Result<HashMap<String, Seen>, LandError> {
    let mut index = HashMap::new();
    if lake.list(datasets::CDRS).await?.is_empty() {
        return Ok(index);
    }
    let ctx = crate::engine::session();
    crate::engine::register_dataset(&ctx, lake, datasets::CDRS, Some("month")).await?;
    let batches = ctx
        .sql("SELECT cdr_id, content_hash, source_file FROM cdrs")
        .await?
        .collect()
        .await?;
    let mut sources: HashMap<String, Arc<str>> = HashMap::new();
    for batch in batches {
        let ids = crate::engine::strings(batch.column(0));
        let hashes = batch.column(1).as_primitive::<Int64Type>();
        let files = crate::engine::strings(batch.column(2));
        for row in 0..batch.num_rows() {
            let file = files[row].clone();
            if landing.contains(&file) {
                continue;
            }
            let source = sources
                .entry(file.clone())
                .or_insert_with(|| Arc::from(file.as_str()))
                .clone();
            index.insert(
                ids[row].clone(),
                Seen {
                    hash: hashes.value(row),
                    source,
                },
            );
        }
    }
    Ok(index)
}

/// Lands a RatedCDRs (with an index: de-duplicated) or BilledCDRs file.
async fn land_cdrs(
    lake: &Lake,
    name: &str,
    csv: &CsvFile<'_>,
    index_of: &[Option<usize>],
    quarantine: &mut QuarantineBuilder,
    mut index: Option<&mut HashMap<String, Seen>>,
) -> Result<LandedCounts, LandError> {
    let mut counts = LandedCounts::default();
    let mut by_month: BTreeMap<String, CdrBuilder> = BTreeMap::new();
    let mut conflicts: BTreeMap<String, CdrBuilder> = BTreeMap::new();
    let this_file: Arc<str> = Arc::from(name);
    let header_len = csv.header.len();
    for record in &csv.records {
        counts.rows_in += 1;
        let cdr = match upstream::parse_cdr(&record.fields, index_of, header_len) {
            Ok(cdr) => cdr,
            Err(reason) => {
                counts.quarantined += 1;
                quarantine.push(name, record.line, record.raw, &reason);
                continue;
            }
        };
        counts.landed += 1;
        let hash = cdr.content_hash();
        if let Some(index) = index.as_deref_mut() {
            if let Some(seen) = index.get(&cdr.cdr_id) {
                if seen.hash == hash {
                    counts.duplicates += 1;
                } else {
                    counts.conflicts += 1;
                    conflicts
                        .entry(cdr.month())
                        .or_insert_with(|| CdrBuilder::new(true))
                        .push(&cdr, name, record.line, hash, Some(&seen.source));
                }
                continue;
            }
            index.insert(
                cdr.cdr_id.clone(),
                Seen {
                    hash,
                    source: this_file.clone(),
                },
            );
        }
        counts.new_rows += 1;
        by_month
            .entry(cdr.month())
            .or_insert_with(|| CdrBuilder::new(false))
            .push(&cdr, name, record.line, hash, None);
    }
    let dataset = if index.is_some() {
        datasets::CDRS
    } else {
        datasets::BILLED_CDRS
    };
    for (month, rows) in by_month {
        let key = format!("{dataset}/month={month}/{}.parquet", stem(name));
        lake.write_parquet(&key, upstream::cdr_schema(false), &[rows.finish()])
            .await?;
    }
    for (month, rows) in conflicts {
        let key = format!(
            "{}/month={month}/{}.parquet",
            datasets::CDR_CONFLICTS,
            stem(name)
        );
        lake.write_parquet(&key, upstream::cdr_schema(true), &[rows.finish()])
            .await?;
    }
    Ok(counts)
}

/// Snapshot time from `AccountStatus_<YYYYMMDD>_<HH>.csv` (Paris time).
fn snapshot_time(name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let core = stem(name).strip_prefix("AccountStatus_")?;
    let core = core.split('.').next()?;
    let (day, hour) = core.split_once('_')?;
    let date = chrono::NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    let hour: u32 = hour.parse().ok()?;
    Some(csvfile::paris_to_utc(date.and_hms_opt(hour, 0, 0)?))
}

async fn land_status(
    lake: &Lake,
    name: &str,
    csv: &CsvFile<'_>,
    index_of: &[Option<usize>],
    quarantine: &mut QuarantineBuilder,
) -> Result<LandedCounts, LandError> {
    let mut counts = LandedCounts::default();
    let Some(snapshot) = snapshot_time(name) else {
        for record in &csv.records {
            quarantine.push(
                name,
                record.line,
                record.raw,
                "BAD_FILE_NAME: expected AccountStatus_<YYYYMMDD>_<HH>.csv",
            );
        }
        counts.rows_in = csv.records.len() as u64;
        counts.quarantined = counts.rows_in;
        return Ok(counts);
    };
    let mut snapshot_col = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut msisdn = StringBuilder::new();
    let mut iccid = StringBuilder::new();
    let mut imsi = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut since = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut since_date = Date32Builder::new();
    let mut activation = Date32Builder::new();
    let mut source = StringBuilder::new();
    let header_len = csv.header.len();
    for record in &csv.records {
        counts.rows_in += 1;
        let parsed = (|| -> Result<_, String> {
            if record.fields.len() != header_len {
                return Err(format!(
                    "FIELD_COUNT: the row has {} fields, the header {header_len}",
                    record.fields.len()
                ));
            }
            let field = |i: usize| {
                csvfile::text_field(&record.fields, index_of[i]).map_err(|b| {
                    format!(
                        "{}: {}: {}",
                        b.code,
                        upstream::STATUS_COLUMNS[i].0,
                        b.detail
                    )
                })
            };
            let m = field(0)?.ok_or("MISSING_VALUE: msisdn: a value is required")?;
            csvfile::check_digits(m, 8, 15)
                .map_err(|b| format!("{}: msisdn: {}", b.code, b.detail))?;
            let card = field(1)?;
            if let Some(c) = card {
                csvfile::check_digits(c, 19, 20)
                    .map_err(|b| format!("{}: iccid: {}", b.code, b.detail))?;
            }
            let sim = field(2)?;
            let s = field(3)?.ok_or("MISSING_VALUE: status: a value is required")?;
            let s = upstream::STATUSES
                .iter()
                .find(|x| **x == s)
                .ok_or_else(|| {
                    format!(
                        "UNKNOWN_VALUE: status: '{s}' is not one of ACTIVE, SUSPENDED, TERMINATED"
                    )
                })?;
            let since = field(4)?
                .map(|t| {
                    csvfile::parse_paris_timestamp(t)
                        .map_err(|b| format!("{}: status_since: {}", b.code, b.detail))
                })
                .transpose()?;
            let activated = field(5)?
                .map(|t| {
                    csvfile::parse_upstream_date(t)
                        .map_err(|b| format!("{}: activation_date: {}", b.code, b.detail))
                })
                .transpose()?;
            Ok((m, card, sim, *s, since, activated))
        })();
        match parsed {
            Err(reason) => {
                counts.quarantined += 1;
                quarantine.push(name, record.line, record.raw, &reason);
            }
            Ok((m, card, sim, s, since_time, activated)) => {
                counts.landed += 1;
                counts.new_rows += 1;
                snapshot_col.append_value(snapshot.timestamp_micros());
                msisdn.append_value(m);
                iccid.append_option(card);
                imsi.append_option(sim);
                status.append_value(s);
                since.append_option(since_time.map(|t| t.timestamp_micros()));
                since_date.append_option(
                    since_time.map(|t| upstream::epoch_days(csvfile::paris_date(t))),
                );
                activation.append_option(activated.map(upstream::epoch_days));
                source.append_value(name);
            }
        }
    }
    if counts.landed > 0 {
        let batch = RecordBatch::try_new(
            upstream::status_schema(),
            vec![
                Arc::new(snapshot_col.finish()),
                Arc::new(msisdn.finish()),
                Arc::new(iccid.finish()),
                Arc::new(imsi.finish()),
                Arc::new(status.finish()),
                Arc::new(since.finish()),
                Arc::new(since_date.finish()),
                Arc::new(activation.finish()),
                Arc::new(source.finish()),
            ],
        )
        .expect("columns match the status schema");
        let month = csvfile::paris_date(snapshot).format("%Y-%m");
        let key = format!(
            "{}/month={month}/{}.parquet",
            datasets::ACCOUNT_STATUS,
            stem(name)
        );
        lake.write_parquet(&key, upstream::status_schema(), &[batch])
            .await?;
    }
    Ok(counts)
}

/// SIM orders: identities to the `sim_cards` dataset, PUK codes to the
/// private store `<state>/secrets/puk.sqlite` (owner-only).
async fn land_sim(
    settings: &Settings,
    lake: &Lake,
    name: &str,
    csv: &CsvFile<'_>,
    index_of: &[Option<usize>],
    quarantine: &mut QuarantineBuilder,
) -> Result<LandedCounts, LandError> {
    let mut counts = LandedCounts::default();
    let mut order = StringBuilder::new();
    let mut iccid = StringBuilder::new();
    let mut imsi = StringBuilder::new();
    let mut msisdn = StringBuilder::new();
    let mut delivered = Date32Builder::new();
    let mut source = StringBuilder::new();
    let mut puks = Vec::new();
    let header_len = csv.header.len();
    for record in &csv.records {
        counts.rows_in += 1;
        let parsed = (|| -> Result<_, String> {
            if record.fields.len() != header_len {
                return Err(format!(
                    "FIELD_COUNT: the row has {} fields, the header {header_len}",
                    record.fields.len()
                ));
            }
            let field = |i: usize| {
                csvfile::text_field(&record.fields, index_of[i]).map_err(|b| {
                    format!("{}: {}: {}", b.code, upstream::SIM_COLUMNS[i].0, b.detail)
                })
            };
            let order_id = field(0)?.ok_or("MISSING_VALUE: order_id: a value is required")?;
            let card = field(1)?.ok_or("MISSING_VALUE: iccid: a value is required")?;
            csvfile::check_digits(card, 19, 20)
                .map_err(|b| format!("{}: iccid: {}", b.code, b.detail))?;
            let sim = field(2)?;
            let line = field(3)?;
            let mut codes = [String::new(), String::new()];
            for (k, column) in [(4, "puk1"), (5, "puk2")] {
                let code = field(k)?
                    .ok_or_else(|| format!("MISSING_VALUE: {column}: a value is required"))?;
                // The value itself is never echoed: it is a secret.
                if !(code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit())) {
                    return Err(format!("BAD_NUMBER: {column}: not 8 digits"));
                }
                codes[k - 4] = code.to_string();
            }
            let date = field(6)?
                .map(|t| {
                    csvfile::parse_upstream_date(t)
                        .map_err(|b| format!("{}: delivered_on: {}", b.code, b.detail))
                })
                .transpose()?;
            Ok((order_id, card, sim, line, codes, date))
        })();
        match parsed {
            Err(reason) => {
                counts.quarantined += 1;
                quarantine.push(
                    name,
                    record.line,
                    &mask(sync::SIM_FOLDER, csv, record),
                    &reason,
                );
            }
            Ok((order_id, card, sim, line, codes, date)) => {
                counts.landed += 1;
                counts.new_rows += 1;
                order.append_value(order_id);
                iccid.append_value(card);
                imsi.append_option(sim);
                msisdn.append_option(line);
                delivered.append_option(date.map(upstream::epoch_days));
                source.append_value(name);
                puks.push((
                    card.to_string(),
                    line.map(str::to_string),
                    order_id.to_string(),
                    codes,
                ));
            }
        }
    }
    store_puks(settings, &puks)?;
    if counts.landed > 0 {
        let batch = RecordBatch::try_new(
            upstream::sim_schema(),
            vec![
                Arc::new(order.finish()),
                Arc::new(iccid.finish()),
                Arc::new(imsi.finish()),
                Arc::new(msisdn.finish()),
                Arc::new(delivered.finish()),
                Arc::new(source.finish()),
            ],
        )
        .expect("columns match the SIM schema");
        let key = format!("{}/{}.parquet", datasets::SIM_CARDS, stem(name));
        lake.write_parquet(&key, upstream::sim_schema(), &[batch])
            .await?;
    }
    Ok(counts)
}

type PukRow = (String, Option<String>, String, [String; 2]);

fn store_puks(settings: &Settings, rows: &[PukRow]) -> Result<(), LandError> {
    let dir = settings.state_dir.join("secrets");
    crate::ledger::create_private_dir(&dir)?;
    let path = dir.join("puk.sqlite");
    let err = |source| LandError::Secrets {
        path: path.display().to_string(),
        source,
    };
    let mut connection = rusqlite::Connection::open(&path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS puk (iccid TEXT PRIMARY KEY, msisdn TEXT, order_id TEXT NOT NULL, puk1 TEXT NOT NULL, puk2 TEXT NOT NULL)",
        )
        .map_err(err)?;
    let tx = connection.transaction().map_err(err)?;
    for (iccid, msisdn, order_id, [puk1, puk2]) in rows {
        tx.execute(
            "INSERT OR REPLACE INTO puk (iccid, msisdn, order_id, puk1, puk2) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![iccid, msisdn, order_id, puk1, puk2],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_time_from_name() {
        let t = snapshot_time("AccountStatus_20261003_10.csv").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-03T08:00:00+00:00");
        assert!(snapshot_time("status.csv").is_none());
    }
}
