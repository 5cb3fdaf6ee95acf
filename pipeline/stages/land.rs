//! `land`: turn the raw files fetched by `sync` into Parquet datasets, and
//! bad rows into quarantine.
//!
//! Each file goes through two steps:
//! - **decode** (pure CPU, no I/O): the CSV rows become Arrow columns, bad
//!   rows quarantine entries. Files are decoded on every core at once.
//! - **commit**, one file after the other in the ledger's order (folder,
//!   name, version): RatedCDRs are de-duplicated by `cdr_id` against all
//!   that landed before (rating.md §1) — an identical copy counts once, a
//!   copy with other content goes to `cdr_conflicts` (rated as a
//!   `CONFLICTING_DUPLICATE`), the first copy stays — then the file's rows
//!   are written, one Parquet file per month
//!   (`cdrs/month=2026-10/RatedCDRs_20261002_080700.parquet`), and the
//!   ledger marks the file landed with its counts. De-duplication and the
//!   ledger go in order; the Parquet encoding of a few files runs at once
//!   on threads of their own, beside the decoding of the next ones, which
//!   runs ahead of the commit (a file a core at a time).
//!
//! For every file, rows in = rows landed + rows quarantined. A delivery
//! writes only its own rows; a crash before the ledger records a file is
//! repaired by the next run writing the same files again (the index leaves
//! out the rows of files not yet recorded).
//!
//! A file the pipeline cannot read as a table (empty, no header, a required
//! column missing) is refused whole: its rows go to quarantine with the
//! reason, and the report names it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Date32Builder, StringArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Date32Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::core::csvfile::{self, CsvFile, CsvReader};
use crate::core::lake::{datasets, AsyncArrowWriter, Lake, LakeError, StoreWriter};
use crate::core::ledger::{FetchedFile, LandedCounts, Ledger, LedgerError};
use crate::core::secrets::{PukCard, PukStore, SecretsError};
use crate::mvne::raw::{self, RawError};
use crate::mvne::upstream::{self, CdrBuilder, QuarantineBuilder};
use crate::settings::Settings;
use crate::stages::cdrindex::{CdrIndex, IndexSource};
use crate::stages::Context;

#[derive(Debug, thiserror::Error)]
pub enum LandError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Raw(#[from] RawError),
    #[error("reading landed CDRs: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("landing: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Index(#[from] crate::stages::cdrindex::IndexError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
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
    /// Whether the `cdr_id` index was kept from the last run or rebuilt
    /// from the `cdrs` dataset (cdrindex.rs); absent when no RatedCDRs
    /// file was landed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdr_index: Option<IndexSource>,
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

pub async fn land(stage: &Context) -> Result<LandReport, LandError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    // The MVNE's invoices are kept as fetched, not landed.
    let files: Vec<_> = ledger
        .unlanded_files()?
        .into_iter()
        .filter(|f| raw::LANDED_FOLDERS.contains(&f.folder.as_str()))
        .collect();
    let mut report = LandReport::default();
    if files.is_empty() {
        return Ok(report);
    }
    let landing: BTreeSet<String> = files.iter().map(stored_name).collect();
    let rated = files.iter().any(|f| f.folder == "RatedCDRs");
    let mut queue_budget = QUEUED_BYTES;
    let mut index = if rated {
        let landed = ledger.landed_names("RatedCDRs")?;
        let rated_bytes: usize = files
            .iter()
            .filter(|f| f.folder == "RatedCDRs")
            .map(|f| f.size as usize)
            .sum();
        if rated_bytes > LARGE_LANDING_BYTES {
            return_large_buffers();
            queue_budget = QUEUED_BYTES_LARGE_LANDING;
        }
        // About how many ids may come: a CDR row is 90 to 100 bytes, so
        // one per 80 leaves room (the table grows, a shard at a time, if
        // more come, which costs a copy of that shard).
        let new_ids = rated_bytes / 80;
        let index = CdrIndex::load(&settings.state_dir, lake, &landed, &landing, new_ids).await?;
        report.cdr_index = Some(index.source);
        index
    } else {
        CdrIndex::empty(&settings.state_dir)
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // A file a core at a time is decoded on the blocking thread pool, each
    // on its own (a small file does not wait for a large one), while the
    // files before are committed (written) in order: decoding and Parquet
    // encoding overlap, and memory holds a few files, not the month.
    let bar = crate::core::progress::bar("land", files.len() as u64, "files");
    let mut to_decode = files.into_iter();
    // Files queued for decoding, in order, with their sizes (those read
    // whole). A file a core is decoded at a time (`decoders`), but the
    // queue runs ahead of the in-order commit: when the file at its head is
    // large, the small ones behind it are decoded meanwhile instead of a
    // core waiting (docs/PERFORMANCE.md). Bounded by count and by bytes.
    let decoders = Arc::new(tokio::sync::Semaphore::new(threads));
    let mut decoding: VecDeque<(usize, DecodingFile)> = VecDeque::new();
    // Files de-duplicated (in order, on this task) whose rows are being
    // encoded and written on the runtime's other threads.
    let mut writing: VecDeque<(FetchedFile, Writing)> = VecDeque::new();
    // Large BilledCDRs files, landing on their own tasks meanwhile.
    let mut beside: Vec<(FetchedFile, Writing)> = Vec::new();
    loop {
        while decoding.len() < threads
            || (decoding.len() < threads * QUEUED_FILES_A_CORE
                && decoding.iter().map(|(size, _)| size).sum::<usize>() < queue_budget)
        {
            let Some(file) = to_decode.next() else { break };
            let raw = RawBytes::read(settings, lake, &file).await?;
            let size = match raw {
                RawBytes::Read(ref bytes) => bytes.len(),
                RawBytes::Mapped(_) => 0,
            };
            let decoders = decoders.clone();
            decoding.push_back((
                size,
                tokio::spawn(async move {
                    let _decoder = decoders.acquire_owned().await.expect("never closed");
                    tokio::task::spawn_blocking(move || {
                        let decoded = decode(&file, &raw);
                        // Only a large file is read again (as it lands): the
                        // others' bytes go now.
                        let raw = match decoded.rows {
                            Rows::Streamed => raw,
                            _ => RawBytes::Read(Vec::new()),
                        };
                        (file, raw, decoded)
                    })
                    .await
                    .expect("decoding does not panic")
                }),
            ));
        }
        let Some((_, next)) = decoding.pop_front() else {
            break;
        };
        let (file, bytes, decoded) = next.await.expect("decoding does not panic");
        if matches!(decoded.rows, Rows::Streamed) {
            if file.folder == "RatedCDRs" {
                // De-duplicated against all before it: in order.
                while let Some(done) = writing.pop_front() {
                    finish(ledger, &mut report, &bar, done).await?;
                }
                let landed =
                    commit_streamed(lake, Some(&mut index), file.folder.clone(), decoded, bytes)
                        .await?;
                finish(ledger, &mut report, &bar, (file, Writing::Done(landed))).await?;
            } else {
                // The month's BilledCDRs depends on no other file: it lands
                // beside the RatedCDRs.
                let lake = lake.clone();
                let folder = file.folder.clone();
                let task = on_own_thread(async move {
                    commit_streamed(&lake, None, folder, decoded, bytes).await
                });
                beside.push((file, Writing::Task(task)));
            }
            continue;
        }
        let output = prepare(settings, &mut index, &file, decoded, &mut report.warnings)?;
        let task = on_own_thread(write_output(lake.clone(), output));
        writing.push_back((file, Writing::Task(task)));
        // Bounded: a file's rows wait in memory until written.
        while writing.len() > threads {
            let done = writing.pop_front().expect("not empty");
            finish(ledger, &mut report, &bar, done).await?;
        }
    }
    // Every id is in: the index is sorted for saving while the last files
    // are written.
    let sorting = rated.then(|| tokio::task::spawn_blocking(move || index.sort(threads)));
    for done in writing.into_iter().chain(beside) {
        finish(ledger, &mut report, &bar, done).await?;
    }
    if let Some(sorting) = sorting {
        let index = sorting.await.expect("sorting does not panic");
        index.save(&ledger.landed_names("RatedCDRs")?)?;
    }
    bar.finish_and_clear();
    Ok(report)
}

/// A file being decoded: it gives the file, its bytes if it is read again
/// as it lands (a large file), and what decoding found.
type DecodingFile = tokio::task::JoinHandle<(FetchedFile, RawBytes, Decoded)>;

/// Runs a file's Parquet encoding and writing on a blocking thread of its
/// own rather than on one of the runtime's workers: encoding holds a
/// thread for long stretches without yielding, and on a worker it kept the
/// task that feeds the decoders waiting, so cores sat idle
/// (docs/PERFORMANCE.md).
fn on_own_thread<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work))
}

/// How many files may wait decoded, or to be decoded, a core (see
/// `land`), and how many bytes of them read whole at most beyond the first
/// file a core: about one more file in a large landing, whose `cdr_id`
/// table takes most of the 2 GiB (with 192 MB, a month of 30M CDRs peaked
/// at 2,070 MiB; with 48 MB at 1,914 to 2,007 MiB).
const QUEUED_FILES_A_CORE: usize = 3;
const QUEUED_BYTES: usize = 192 << 20;
const QUEUED_BYTES_LARGE_LANDING: usize = 16 << 20;

/// Above this many bytes of RatedCDRs in one run (about 11M CDRs), land
/// gives freed buffers back to the system at once (see
/// [`return_large_buffers`]).
const LARGE_LANDING_BYTES: usize = 1 << 30;

/// glibc keeps a freed buffer of up to 32 MB in its heap for reuse (its
/// mmap threshold grows with the buffers it sees). Landing a month of 30M
/// CDRs then peaked at 2.3 GB, of which the `cdr_id` table is 1 GB; with the
/// threshold fixed at 4 MB, each large buffer (a file's columns, a Parquet
/// page) is mapped on its own and returned when freed: 1.8 GB, for about
/// 10 % more time (docs/PERFORMANCE.md). Smaller runs keep glibc's default.
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; glibc
    // documents it as safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// A raw file's bytes: read whole, or, for a large file on this machine's
/// disk, mapped, so that the pages already decoded can be let go
/// ([`RawBytes::release`]) and memory does not grow with the file.
enum RawBytes {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl RawBytes {
    async fn read(
        settings: &Settings,
        lake: &Lake,
        file: &FetchedFile,
    ) -> Result<RawBytes, LandError> {
        if file.size as usize > STREAMED_FILE_BYTES {
            if let Some(path) = raw::raw_local_path(&settings.state_dir, lake, &file.raw_key) {
                if let Ok(opened) = std::fs::File::open(&path) {
                    // SAFETY: raw files are written once, under a temporary
                    // name, and never changed in place; this process holds
                    // the state lock, so no other mvnobill removes it.
                    if let Ok(map) = unsafe { memmap2::Mmap::map(&opened) } {
                        return Ok(RawBytes::Mapped(map));
                    }
                }
            }
        }
        Ok(RawBytes::Read(
            raw::read_raw(&settings.state_dir, lake, &file.raw_key).await?,
        ))
    }

    /// Lets go of the pages before `offset`, already decoded (a mapped file
    /// only; they are read again from the file if ever touched).
    fn release(&self, offset: usize) {
        if let RawBytes::Mapped(map) = self {
            let page = 4096;
            let end = offset.saturating_sub(page) / page * page;
            if end > 0 {
                // SAFETY: a private read-only mapping of a file that does not
                // change: the pages come back from the file if read again.
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end)
                };
            }
        }
    }
}

impl std::ops::Deref for RawBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            RawBytes::Read(bytes) => bytes,
            RawBytes::Mapped(map) => map,
        }
    }
}

/// A file whose rows are being written, or were, with its warnings.
enum Writing {
    Task(tokio::task::JoinHandle<Result<(FileReport, Vec<String>), LandError>>),
    Done((FileReport, Vec<String>)),
}

/// Waits for a file's writes, then records it landed in the ledger. Files
/// are finished in the ledger's order.
async fn finish(
    ledger: &Ledger,
    report: &mut LandReport,
    bar: &indicatif::ProgressBar,
    (file, writing): (FetchedFile, Writing),
) -> Result<(), LandError> {
    let (file_report, warnings) = match writing {
        Writing::Done(landed) => landed,
        Writing::Task(task) => task.await.expect("writing a file does not panic")?,
    };
    report.warnings.extend(warnings);
    if let Some(reason) = &file_report.refused {
        tracing::warn!("file refused, its rows are in quarantine: {reason}");
    }
    ledger.record_landed(file.id, &file_report.counts)?;
    add_counts(&mut report.totals, &file_report.counts);
    report.files.push(file_report);
    bar.inc(1);
    Ok(())
}

/// What landing a delivery gives, decoded without any I/O: the counts, each
/// quarantined row (line, reason) and why the file is refused, if it is.
/// The fuzz target (`fuzz/`) and the broken-file tests call it; `land` does
/// the same decoding before it writes.
#[derive(Debug)]
pub struct DeliveryCheck {
    pub counts: LandedCounts,
    pub quarantined: Vec<(u64, String)>,
    pub refused: Option<String>,
}

/// Decodes `bytes` as a delivery named `name` in the upstream `folder`
/// (`RatedCDRs`, `BilledCDRs`, `AccountStatus`, `Cartes SIM`).
pub fn check_delivery(folder: &str, name: &str, bytes: &[u8]) -> DeliveryCheck {
    let file = FetchedFile {
        id: 0,
        folder: folder.to_string(),
        name: name.to_string(),
        size: bytes.len() as u64,
        sha256: String::new(),
        raw_key: format!("raw/{folder}/{name}"),
        version: 1,
    };
    let mut decoded = decode(&file, bytes);
    if matches!(decoded.rows, Rows::Streamed) {
        // A large file: decoded chunk by chunk, as `commit` does.
        match CdrChunker::open(&mut decoded, bytes) {
            Ok(mut chunker) => loop {
                match chunker.next_chunk(&mut decoded, ROWS_PER_CHUNK) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(refusal) => {
                        refuse(&mut decoded, folder, refusal);
                        break;
                    }
                }
            },
            Err(refusal) => refuse(&mut decoded, folder, refusal),
        }
    }
    let batch = decoded.quarantine.finish();
    let lines = batch.column(1).as_primitive::<Int64Type>();
    let reasons = crate::engine::strings(batch.column(3));
    DeliveryCheck {
        counts: decoded.counts,
        quarantined: (0..batch.num_rows())
            .map(|row| (lines.value(row) as u64, reasons[row].clone()))
            .collect(),
        refused: decoded.refused,
    }
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

// ---------------------------------------------------------------------------
// Decode: bytes to columns, no I/O.

/// What decoding one file gives.
struct Decoded {
    name: String,
    counts: LandedCounts,
    quarantine: QuarantineBuilder,
    refused: Option<String>,
    unknown_columns: Vec<String>,
    rows: Rows,
}

enum Rows {
    None,
    /// CDR rows with, per row, the hash of its `cdr_id`.
    Cdrs {
        batch: RecordBatch,
        ids: Vec<u128>,
    },
    /// A large CDR file, decoded chunk by chunk while it is committed.
    Streamed,
    Status {
        month: String,
        batch: RecordBatch,
    },
    Sim {
        batch: RecordBatch,
        puks: Vec<PukCard>,
    },
}

fn decode(file: &FetchedFile, bytes: &[u8]) -> Decoded {
    let name = stored_name(file);
    let mut decoded = Decoded {
        name: name.clone(),
        counts: LandedCounts::default(),
        quarantine: QuarantineBuilder::default(),
        refused: None,
        unknown_columns: Vec::new(),
        rows: Rows::None,
    };
    let result = match file.folder.as_str() {
        "RatedCDRs" | "BilledCDRs" => decode_cdrs(&mut decoded, bytes),
        "AccountStatus" => {
            decode_table(&mut decoded, bytes, upstream::STATUS_COLUMNS, decode_status)
        }
        _ => decode_table(&mut decoded, bytes, upstream::SIM_COLUMNS, decode_sim),
    };
    if let Err(refusal) = result {
        refuse(&mut decoded, &file.folder, refusal);
    }
    decoded
}

/// Why a whole file is refused, with the rows to quarantine (if any could
/// be read).
struct Refusal {
    error: csvfile::CsvFileError,
    records: Vec<(u64, Vec<u8>)>,
}

fn refuse(decoded: &mut Decoded, folder: &str, refusal: Refusal) {
    let message = refusal.error.to_string();
    decoded.refused = Some(message.clone());
    decoded.rows = Rows::None;
    decoded.quarantine = QuarantineBuilder::default();
    if refusal.records.is_empty() {
        let line = match &refusal.error {
            csvfile::CsvFileError::Syntax { line, .. } => *line,
            _ => 1,
        };
        decoded.quarantine.push(
            &decoded.name,
            line,
            b"",
            &format!("REFUSED_FILE: {message}"),
        );
        decoded.counts = LandedCounts {
            rows_in: 1,
            quarantined: 1,
            ..Default::default()
        };
    } else {
        for (line, raw) in &refusal.records {
            let raw = if folder == raw::SIM_FOLDER {
                b"(masked: SIM order)".to_vec()
            } else {
                raw.clone()
            };
            decoded.quarantine.push(
                &decoded.name,
                *line,
                &raw,
                &format!("MISSING_COLUMN: {message}"),
            );
        }
        let n = refusal.records.len() as u64;
        decoded.counts = LandedCounts {
            rows_in: n,
            quarantined: n,
            ..Default::default()
        };
    }
}

/// Collects the records of a file being refused for a missing column.
fn all_records(reader: &mut CsvReader<'_>) -> Vec<(u64, Vec<u8>)> {
    let mut records = Vec::new();
    while let Some(Ok(record)) = reader.next_record() {
        records.push((record.line, record.raw.to_vec()));
    }
    records
}

/// Files above this size are landed in chunks of rows, so that memory does
/// not grow with the file (the monthly BilledCDRs file holds the month).
const STREAMED_FILE_BYTES: usize = 64 << 20;
const ROWS_PER_CHUNK: usize = 256 * 1024;

fn decode_cdrs(decoded: &mut Decoded, bytes: &[u8]) -> Result<(), Refusal> {
    if bytes.len() > STREAMED_FILE_BYTES {
        decoded.rows = Rows::Streamed;
        return Ok(());
    }
    let mut chunker = CdrChunker::open(decoded, bytes)?;
    let (batch, ids) = chunker
        .next_chunk(decoded, usize::MAX)?
        .unwrap_or_else(|| (CdrBuilder::default().finish(), Vec::new()));
    decoded.rows = Rows::Cdrs { batch, ids };
    Ok(())
}

/// Reads a CDR file a chunk of rows at a time.
struct CdrChunker<'a> {
    reader: CsvReader<'a>,
    index_of: Vec<Option<usize>>,
    clock: csvfile::ParisClock,
}

impl<'a> CdrChunker<'a> {
    fn open(decoded: &mut Decoded, bytes: &'a [u8]) -> Result<CdrChunker<'a>, Refusal> {
        let mut reader = CsvReader::open(&decoded.name, bytes).map_err(|error| Refusal {
            error,
            records: Vec::new(),
        })?;
        decoded.unknown_columns = reader.unknown_columns(upstream::CDR_COLUMNS);
        let index_of = match reader.columns(upstream::CDR_COLUMNS) {
            Ok(index_of) => index_of,
            Err(error) => {
                let records = all_records(&mut reader);
                return Err(Refusal { error, records });
            }
        };
        Ok(CdrChunker {
            reader,
            index_of,
            clock: csvfile::ParisClock::default(),
        })
    }

    /// The next rows (at most `max_rows` read), with the hash of each
    /// `cdr_id`; bad rows go to `decoded`'s quarantine. `None` at the end.
    fn next_chunk(
        &mut self,
        decoded: &mut Decoded,
        max_rows: usize,
    ) -> Result<Option<(RecordBatch, Vec<u128>)>, Refusal> {
        let header_len = self.reader.header.len();
        let mut rows = CdrBuilder::default();
        let mut ids = Vec::new();
        let mut read = 0;
        while read < max_rows {
            let Some(record) = self.reader.next_record() else {
                break;
            };
            let record = record.map_err(|error| Refusal {
                error,
                records: Vec::new(),
            })?;
            read += 1;
            decoded.counts.rows_in += 1;
            let parsed = one_line(record.line, record.raw).and_then(|()| {
                upstream::parse_cdr(&record.fields, &self.index_of, header_len, &mut self.clock)
            });
            match parsed {
                Ok(cdr) => {
                    decoded.counts.landed += 1;
                    ids.push(cdr.id_hash());
                    rows.push(&cdr, &decoded.name, record.line, cdr.content_hash());
                }
                Err(reason) => {
                    decoded.counts.quarantined += 1;
                    decoded
                        .quarantine
                        .push(&decoded.name, record.line, record.raw, &reason);
                }
            }
        }
        Ok((read > 0).then(|| (rows.finish(), ids)))
    }
}

/// A small table file (status snapshot, SIM order): read whole, then each
/// record decoded by `decode_rows`.
fn decode_table(
    decoded: &mut Decoded,
    bytes: &[u8],
    wanted: &[(&str, bool)],
    decode_rows: fn(&mut Decoded, &CsvFile<'_>, &[Option<usize>]),
) -> Result<(), Refusal> {
    let csv = CsvFile::parse(&decoded.name, bytes).map_err(|error| Refusal {
        error,
        records: Vec::new(),
    })?;
    decoded.unknown_columns = csv.unknown_columns(wanted);
    match csv.columns(wanted) {
        Ok(index_of) => {
            decode_rows(decoded, &csv, &index_of);
            Ok(())
        }
        Err(error) => Err(Refusal {
            error,
            records: csv
                .records
                .iter()
                .map(|r| (r.line, r.raw.to_vec()))
                .collect(),
        }),
    }
}

/// A row's field as text, with the reason prefixed by its column.
fn column_field<'r>(
    record: &'r csvfile::Record<'_>,
    index_of: &[Option<usize>],
    columns: &[(&str, bool)],
    i: usize,
) -> Result<Option<&'r str>, String> {
    csvfile::text_field(&record.fields, index_of[i])
        .map_err(|b| format!("{}: {}: {}", b.code, columns[i].0, b.detail))
}

/// No upstream value holds a line break (ids, numbers, codes, times): a row
/// over several lines is a quote opened and closed too late, which took the
/// rows between into one. Quarantined, so that none of them is lost in it.
fn one_line(line: u64, raw: &[u8]) -> Result<(), String> {
    match csvfile::line_breaks(raw) {
        0 => Ok(()),
        n => Err(format!(
            "LINE_BREAK: the row runs from line {line} to line {}: a quoted field holds a line break (a quote is not closed where it should be)",
            line + n
        )),
    }
}

fn field_count(record: &csvfile::Record<'_>, header_len: usize) -> Result<(), String> {
    if record.fields.len() == header_len {
        Ok(())
    } else {
        Err(format!(
            "FIELD_COUNT: the row has {} fields, the header {header_len}",
            record.fields.len()
        ))
    }
}

fn digits(value: &str, column: &str, min: usize, max: usize) -> Result<(), String> {
    csvfile::check_digits(value, min, max)
        .map_err(|b| format!("{}: {column}: {}", b.code, b.detail))
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

fn decode_status(decoded: &mut Decoded, csv: &CsvFile<'_>, index_of: &[Option<usize>]) {
    let name = decoded.name.clone();
    let Some(snapshot) = snapshot_time(&name) else {
        for record in &csv.records {
            decoded.quarantine.push(
                &name,
                record.line,
                record.raw,
                "BAD_FILE_NAME: expected AccountStatus_<YYYYMMDD>_<HH>.csv",
            );
        }
        decoded.counts.rows_in = csv.records.len() as u64;
        decoded.counts.quarantined = decoded.counts.rows_in;
        return;
    };
    let columns = upstream::STATUS_COLUMNS;
    let mut snapshot_col = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut snapshot_date = Date32Builder::new();
    let snapshot_day = upstream::epoch_days(csvfile::paris_date(snapshot));
    let mut msisdn = StringBuilder::new();
    let mut iccid = StringBuilder::new();
    let mut imsi = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut since = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut since_date = Date32Builder::new();
    let mut activation = Date32Builder::new();
    let mut source = StringBuilder::new();
    for record in &csv.records {
        decoded.counts.rows_in += 1;
        let parsed = (|| -> Result<_, String> {
            one_line(record.line, record.raw)?;
            field_count(record, csv.header.len())?;
            let field = |i| column_field(record, index_of, columns, i);
            let line = field(0)?.ok_or("MISSING_VALUE: msisdn: a value is required")?;
            digits(line, "msisdn", 8, 15)?;
            let card = field(1)?;
            if let Some(card) = card {
                digits(card, "iccid", 19, 20)?;
            }
            let sim = field(2)?;
            let state = field(3)?.ok_or("MISSING_VALUE: status: a value is required")?;
            let state = upstream::STATUSES.iter().find(|x| **x == state).ok_or_else(|| {
                format!("UNKNOWN_VALUE: status: '{state}' is not one of ACTIVE, SUSPENDED, TERMINATED")
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
            Ok((line, card, sim, *state, since, activated))
        })();
        match parsed {
            Err(reason) => {
                decoded.counts.quarantined += 1;
                decoded
                    .quarantine
                    .push(&name, record.line, record.raw, &reason);
            }
            Ok((line, card, sim, state, since_time, activated)) => {
                decoded.counts.landed += 1;
                decoded.counts.new_rows += 1;
                snapshot_col.append_value(snapshot.timestamp_micros());
                snapshot_date.append_value(snapshot_day);
                msisdn.append_value(line);
                iccid.append_option(card);
                imsi.append_option(sim);
                status.append_value(state);
                since.append_option(since_time.map(|t| t.timestamp_micros()));
                since_date.append_option(
                    since_time.map(|t| upstream::epoch_days(csvfile::paris_date(t))),
                );
                activation.append_option(activated.map(upstream::epoch_days));
                source.append_value(&name);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(snapshot_col.finish()),
        Arc::new(snapshot_date.finish()),
        Arc::new(msisdn.finish()),
        Arc::new(iccid.finish()),
        Arc::new(imsi.finish()),
        Arc::new(status.finish()),
        Arc::new(since.finish()),
        Arc::new(since_date.finish()),
        Arc::new(activation.finish()),
        Arc::new(source.finish()),
    ];
    decoded.rows = Rows::Status {
        month: csvfile::paris_date(snapshot).format("%Y-%m").to_string(),
        batch: RecordBatch::try_new(upstream::status_schema(), columns)
            .expect("columns match the status schema"),
    };
}

/// The raw text of a SIM order row with its PUK codes masked.
fn masked_sim_row(csv: &CsvFile<'_>, record: &csvfile::Record<'_>) -> Vec<u8> {
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

fn decode_sim(decoded: &mut Decoded, csv: &CsvFile<'_>, index_of: &[Option<usize>]) {
    let name = decoded.name.clone();
    let columns = upstream::SIM_COLUMNS;
    let mut order = StringBuilder::new();
    let mut iccid = StringBuilder::new();
    let mut imsi = StringBuilder::new();
    let mut msisdn = StringBuilder::new();
    let mut delivered = Date32Builder::new();
    let mut source = StringBuilder::new();
    let mut puks = Vec::new();
    for record in &csv.records {
        decoded.counts.rows_in += 1;
        let parsed = (|| -> Result<_, String> {
            one_line(record.line, record.raw)?;
            field_count(record, csv.header.len())?;
            let field = |i| column_field(record, index_of, columns, i);
            let order_id = field(0)?.ok_or("MISSING_VALUE: order_id: a value is required")?;
            let card = field(1)?.ok_or("MISSING_VALUE: iccid: a value is required")?;
            digits(card, "iccid", 19, 20)?;
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
                decoded.counts.quarantined += 1;
                decoded
                    .quarantine
                    .push(&name, record.line, &masked_sim_row(csv, record), &reason);
            }
            Ok((order_id, card, sim, line, codes, date)) => {
                decoded.counts.landed += 1;
                decoded.counts.new_rows += 1;
                order.append_value(order_id);
                iccid.append_value(card);
                imsi.append_option(sim);
                msisdn.append_option(line);
                delivered.append_option(date.map(upstream::epoch_days));
                source.append_value(&name);
                let [puk1, puk2] = codes;
                puks.push(PukCard {
                    iccid: card.to_string(),
                    msisdn: line.map(str::to_string),
                    order_id: order_id.to_string(),
                    puk1,
                    puk2,
                });
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(order.finish()),
        Arc::new(iccid.finish()),
        Arc::new(imsi.finish()),
        Arc::new(msisdn.finish()),
        Arc::new(delivered.finish()),
        Arc::new(source.finish()),
    ];
    decoded.rows = Rows::Sim {
        batch: RecordBatch::try_new(upstream::sim_schema(), columns)
            .expect("columns match the SIM schema"),
        puks,
    };
}

// ---------------------------------------------------------------------------
// Commit: de-duplicate, write, in order.

/// What is left to do for a decoded file once it is de-duplicated: its
/// writes, which run on a task of their own while the next files are
/// decoded and de-duplicated.
struct Output {
    folder: String,
    name: String,
    counts: LandedCounts,
    refused: Option<String>,
    quarantine: QuarantineBuilder,
    rows: OutputRows,
}

enum OutputRows {
    None,
    Cdrs {
        dataset: &'static str,
        rows: RecordBatch,
        conflicts: Option<RecordBatch>,
    },
    Status {
        month: String,
        batch: RecordBatch,
    },
    Sim {
        batch: RecordBatch,
    },
}

/// The in-order part of a file's commit: its CDRs de-duplicated against all
/// that landed before (rating.md §1), its PUK codes stored, its warnings.
fn prepare(
    settings: &Settings,
    index: &mut CdrIndex,
    file: &FetchedFile,
    mut decoded: Decoded,
    warnings: &mut Vec<String>,
) -> Result<Output, LandError> {
    let rows = match std::mem::replace(&mut decoded.rows, Rows::None) {
        Rows::None => OutputRows::None,
        Rows::Streamed => unreachable!("a streamed file is committed by commit_streamed"),
        Rows::Cdrs { batch, ids } => {
            let rated = file.folder == "RatedCDRs";
            let (rows, conflicts) = if rated {
                dedup(index, &decoded.name, &mut decoded.counts, batch, &ids)?
            } else {
                (batch, None)
            };
            decoded.counts.new_rows =
                decoded.counts.landed - decoded.counts.duplicates - decoded.counts.conflicts;
            OutputRows::Cdrs {
                dataset: if rated {
                    datasets::CDRS
                } else {
                    datasets::BILLED_CDRS
                },
                rows,
                conflicts,
            }
        }
        Rows::Status { month, batch } => OutputRows::Status { month, batch },
        Rows::Sim { batch, puks } => {
            PukStore::of_state(&settings.state_dir).store(&puks)?;
            OutputRows::Sim { batch }
        }
    };
    warn_unknown_columns(&decoded, warnings);
    Ok(Output {
        folder: file.folder.clone(),
        name: decoded.name,
        counts: decoded.counts,
        refused: decoded.refused,
        quarantine: decoded.quarantine,
        rows,
    })
}

/// Writes a prepared file: its rows (one Parquet file per month for CDRs)
/// and its quarantine.
async fn write_output(lake: Lake, output: Output) -> Result<(FileReport, Vec<String>), LandError> {
    match output.rows {
        OutputRows::None => {}
        OutputRows::Cdrs {
            dataset,
            rows,
            conflicts,
        } => {
            let mut rows_out = MonthWriters::new(&lake, dataset, &output.name);
            rows_out.write(&rows).await?;
            rows_out.close().await?;
            if let Some(conflicts) = conflicts {
                let mut conflicts_out =
                    MonthWriters::new(&lake, datasets::CDR_CONFLICTS, &output.name);
                conflicts_out.write(&conflicts).await?;
                conflicts_out.close().await?;
            }
        }
        OutputRows::Status { month, batch } => {
            let key = format!(
                "{}/month={month}/{}.parquet",
                datasets::ACCOUNT_STATUS,
                stem(&output.name)
            );
            lake.write_parquet(&key, batch.schema(), &[batch]).await?;
        }
        OutputRows::Sim { batch } => {
            if batch.num_rows() > 0 {
                let key = format!("{}/{}.parquet", datasets::SIM_CARDS, stem(&output.name));
                lake.write_parquet(&key, batch.schema(), &[batch]).await?;
            }
        }
    }
    write_quarantine(&lake, &output.folder, &output.name, output.quarantine).await?;
    let report = FileReport {
        folder: output.folder,
        file: output.name,
        counts: output.counts,
        refused: output.refused,
    };
    Ok((report, Vec::new()))
}

/// A large CDR file (the monthly BilledCDRs): decoded on a thread of its
/// own a chunk of rows at a time, each chunk de-duplicated (RatedCDRs) and
/// written as the next is decoded, so that memory does not grow with the
/// file. Its warnings come back with its report.
async fn commit_streamed(
    lake: &Lake,
    mut index: Option<&mut CdrIndex>,
    folder: String,
    decoded: Decoded,
    bytes: RawBytes,
) -> Result<(FileReport, Vec<String>), LandError> {
    let dataset = if folder == "RatedCDRs" {
        datasets::CDRS
    } else {
        datasets::BILLED_CDRS
    };
    let mut rows_out = MonthWriters::new(lake, dataset, &decoded.name);
    let mut conflicts_out = MonthWriters::new(lake, datasets::CDR_CONFLICTS, &decoded.name);
    let name = decoded.name.clone();
    let (chunks, mut received) = tokio::sync::mpsc::channel::<(RecordBatch, Vec<u128>)>(2);
    let decoding_folder = folder.clone();
    let decoding = tokio::task::spawn_blocking(move || {
        let mut decoded = decoded;
        let mut chunker = match CdrChunker::open(&mut decoded, &bytes) {
            Ok(chunker) => chunker,
            Err(refusal) => {
                refuse(&mut decoded, &decoding_folder, refusal);
                return decoded;
            }
        };
        loop {
            match chunker.next_chunk(&mut decoded, ROWS_PER_CHUNK) {
                Ok(Some(chunk)) => {
                    bytes.release(chunker.reader.consumed());
                    if chunks.blocking_send(chunk).is_err() {
                        // The writing side failed; its error is reported.
                        return decoded;
                    }
                }
                Ok(None) => return decoded,
                Err(refusal) => {
                    refuse(&mut decoded, &decoding_folder, refusal);
                    return decoded;
                }
            }
        }
    });
    let mut counts = LandedCounts::default();
    while let Some((batch, ids)) = received.recv().await {
        match index.as_deref_mut() {
            None => rows_out.write(&batch).await?,
            Some(index) => {
                let (rows, conflicts) = dedup(index, &name, &mut counts, batch, &ids)?;
                rows_out.write(&rows).await?;
                if let Some(conflicts) = conflicts {
                    conflicts_out.write(&conflicts).await?;
                }
            }
        }
    }
    let mut decoded = decoding.await.expect("decoding does not panic");
    if decoded.refused.is_none() {
        // A refused file writes nothing but its quarantine (the writers are
        // dropped unfinished).
        rows_out.close().await?;
        conflicts_out.close().await?;
        decoded.counts.duplicates = counts.duplicates;
        decoded.counts.conflicts = counts.conflicts;
    }
    decoded.counts.new_rows =
        decoded.counts.landed - decoded.counts.duplicates - decoded.counts.conflicts;
    let mut warnings = Vec::new();
    warn_unknown_columns(&decoded, &mut warnings);
    write_quarantine(lake, &folder, &decoded.name, decoded.quarantine).await?;
    Ok((
        FileReport {
            folder,
            file: decoded.name,
            counts: decoded.counts,
            refused: decoded.refused,
        },
        warnings,
    ))
}

fn warn_unknown_columns(decoded: &Decoded, warnings: &mut Vec<String>) {
    let unknown_columns = &decoded.unknown_columns;
    if !unknown_columns.is_empty() {
        // At most ten names: a broken header may have a million.
        let more = match unknown_columns.len() {
            n if n > 10 => format!(" and {} more", n - 10),
            _ => String::new(),
        };
        warnings.push(format!(
            "{}: unknown columns ignored: {}{more}",
            decoded.name,
            unknown_columns[..unknown_columns.len().min(10)].join(", ")
        ));
    }
}

/// A file's quarantined rows, or no quarantine file when there are none
/// (a re-run may leave fewer than a crashed run wrote).
async fn write_quarantine(
    lake: &Lake,
    folder: &str,
    name: &str,
    quarantine: QuarantineBuilder,
) -> Result<(), LandError> {
    let quarantine_key = format!(
        "{}/source={}/{}.parquet",
        datasets::QUARANTINE,
        quarantine_source(folder),
        stem(name)
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
    Ok(())
}

/// The rows of `batch` that land (first copies) and those that go to
/// `cdr_conflicts` (with the file of the first copy), if any; the index
/// learns the first copies and `decoded` counts the others.
fn dedup(
    index: &mut CdrIndex,
    name: &str,
    counts: &mut LandedCounts,
    batch: RecordBatch,
    ids: &[u128],
) -> Result<(RecordBatch, Option<RecordBatch>), LandError> {
    let this_file = index.file_id(name);
    let hashes = batch
        .column_by_name("content_hash")
        .expect("the CDR schema has content_hash")
        .as_primitive::<Int64Type>()
        .clone();
    let mut new = Vec::with_capacity(ids.len());
    let mut conflict = Vec::with_capacity(ids.len());
    let mut first_sources = Vec::new();
    // How many rows ahead the table's slot is fetched (see
    // `CdrIndex::prefetch`): enough to cover a memory access.
    const AHEAD: usize = 16;
    for (row, id) in ids.iter().enumerate() {
        if let Some(later) = ids.get(row + AHEAD) {
            index.prefetch(*later);
        }
        let hash = hashes.value(row);
        match index.get_or_insert(*id, hash, this_file) {
            None => {
                new.push(true);
                conflict.push(false);
            }
            Some((seen_hash, _)) if seen_hash == hash => {
                counts.duplicates += 1;
                new.push(false);
                conflict.push(false);
            }
            Some((_, first)) => {
                counts.conflicts += 1;
                first_sources.push(index.file_name(first).to_string());
                new.push(false);
                conflict.push(true);
            }
        }
    }
    let rows = if counts.duplicates == 0 && counts.conflicts == 0 {
        batch.clone()
    } else {
        filter_record_batch(&batch, &BooleanArray::from(new))?
    };
    if first_sources.is_empty() {
        return Ok((rows, None));
    }
    let copies = filter_record_batch(&batch, &BooleanArray::from(conflict))?;
    let mut columns = copies.columns().to_vec();
    columns.push(Arc::new(StringArray::from(first_sources)));
    let conflicts = RecordBatch::try_new(upstream::cdr_schema(true), columns)?;
    Ok((rows, Some(conflicts)))
}

/// One file's CDR rows, written as one Parquet file per month of their local
/// date: `<dataset>/month=YYYY-MM/<file stem>.parquet`. Each file appears
/// whole when closed.
struct MonthWriters<'l> {
    lake: &'l Lake,
    dataset: &'static str,
    stem: String,
    open: std::collections::BTreeMap<u32, (String, AsyncArrowWriter<StoreWriter>)>,
}

impl<'l> MonthWriters<'l> {
    fn new(lake: &'l Lake, dataset: &'static str, name: &str) -> Self {
        MonthWriters {
            lake,
            dataset,
            stem: stem(name).to_string(),
            open: Default::default(),
        }
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), LandError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let dates = batch
            .column_by_name("local_date")
            .expect("the CDR schema has local_date")
            .as_primitive::<Date32Type>()
            .clone();
        // Month of each row as a number (202610), computed once per distinct day.
        let mut last: Option<(i32, u32)> = None;
        let months: Vec<u32> = dates
            .values()
            .iter()
            .map(|days| match last {
                Some((d, m)) if d == *days => m,
                _ => {
                    let m = upstream::month_number(*days);
                    last = Some((*days, m));
                    m
                }
            })
            .collect();
        let distinct: BTreeSet<u32> = months.iter().copied().collect();
        for month in distinct {
            let rows = if distinct_is_one(&months, month) {
                batch.clone()
            } else {
                let in_month: BooleanArray = months.iter().map(|m| Some(*m == month)).collect();
                filter_record_batch(batch, &in_month)?
            };
            if !self.open.contains_key(&month) {
                let key = format!(
                    "{}/month={:04}-{:02}/{}.parquet",
                    self.dataset,
                    month / 100,
                    month % 100,
                    self.stem
                );
                let writer = self.lake.parquet_writer(&key, rows.schema())?;
                self.open.insert(month, (key, writer));
            }
            let (key, writer) = self.open.get_mut(&month).expect("just opened");
            self.lake.write_batch(key, writer, &rows).await?;
        }
        Ok(())
    }

    async fn close(self) -> Result<(), LandError> {
        for (_, (key, writer)) in self.open {
            self.lake.close_parquet(&key, writer).await?;
        }
        Ok(())
    }
}

fn distinct_is_one(months: &[u32], month: u32) -> bool {
    months.iter().all(|m| *m == month)
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
