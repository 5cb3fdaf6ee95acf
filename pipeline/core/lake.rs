//! The lake: Parquet datasets in Hive-style partitions behind `object_store`:
//! a local folder (`file://`) or an S3 bucket and prefix (`s3://`), the same
//! calls for both. DataFusion reads an S3 lake through the same store
//! (`Lake::register_with`).
//!
//! Every file is written whole or not at all: object stores make a `put` and
//! a completed multipart upload atomic, and the local store writes to a
//! staging file then renames it. A partition that a stage owns whole
//! (`invoices/month=2026-10/`) is a single `part-0.parquet` replaced on
//! re-run, so a reader never sees half of it and a re-run never appends;
//! `rated_cdrs` and `rating_exceptions` get one file per `rate` run, and
//! a run rewrites the earlier files whose rows it replaced (rate.rs).
//! Parquet is zstd-compressed (level 1); money is `Decimal128`, time is microsecond
//! UTC (interface.md).

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::buffered::BufWriter;
pub use object_store::buffered::BufWriter as StoreWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
pub use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

/// The `[lake]` keys of an `s3://` lake. Credentials not given here come
/// from the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION`,
/// `AWS_ENDPOINT`).
#[derive(Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub virtual_hosted_style: bool,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "…"))
            .finish()
    }
}

/// The lake URL as given, normalised to end with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeUrl(String);

impl LakeUrl {
    pub fn new(url: &str) -> Self {
        let mut url = url.to_string();
        if !url.ends_with('/') {
            url.push('/');
        }
        LakeUrl(url)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The local folder of a `file://` lake.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.0.strip_prefix("file://").map(PathBuf::from)
    }
    /// URL of a dataset folder or file below the lake.
    pub fn join(&self, relative: &str) -> String {
        format!("{}{}", self.0, relative)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("lake {url}: cannot write Parquet: {source}")]
    Parquet {
        url: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("lake {url}: {message}")]
    Other { url: String, message: String },
    #[error("while reading for {url}: {source}")]
    Query {
        url: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

/// The part size of a streamed upload (`Lake::put_file`): above S3's 5 MiB
/// minimum, small enough that two in flight stay far below the memory
/// budget.
pub const PART_BYTES: usize = 8 << 20;
/// The buffer a streamed upload reads its file with.
const READ_BYTES: usize = 1 << 20;

/// Handle on the lake's object store.
#[derive(Clone)]
pub struct Lake {
    /// Rooted at the lake: keys are relative to its URL.
    store: Arc<dyn ObjectStore>,
    url: LakeUrl,
    /// For DataFusion: an S3 bucket's store (rooted at the bucket) and its
    /// `s3://bucket` URL. None for a local lake (DataFusion reads `file://`
    /// URLs by itself).
    bucket: Option<(url::Url, Arc<dyn ObjectStore>)>,
}

impl Lake {
    pub fn open(url: &LakeUrl, s3: &S3Options) -> Result<Lake, LakeError> {
        if url.as_str().starts_with("s3://") {
            return Lake::open_s3(url, s3);
        }
        let Some(dir) = url.local_path() else {
            return Err(LakeError::Other {
                url: url.as_str().to_string(),
                message: "not a file:// or s3:// lake".into(),
            });
        };
        std::fs::create_dir_all(&dir).map_err(|e| LakeError::Other {
            url: url.as_str().to_string(),
            message: format!("cannot create the folder: {e}"),
        })?;
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|source| {
                LakeError::Store {
                    url: url.as_str().to_string(),
                    source,
                }
            })?;
        Ok(Lake {
            store: Arc::new(store),
            url: url.clone(),
            bucket: None,
        })
    }

    /// An S3 lake: `s3://bucket/prefix/`, with the `[lake]` options and the
    /// standard AWS environment variables for what they do not give.
    fn open_s3(url: &LakeUrl, s3: &S3Options) -> Result<Lake, LakeError> {
        let other = |message: String| LakeError::Other {
            url: url.as_str().to_string(),
            message,
        };
        let rest = url.as_str().trim_start_matches("s3://");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(s3.virtual_hosted_style)
            .with_allow_http(s3.allow_http);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &s3.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        let bucket_store: Arc<dyn ObjectStore> = Arc::new(
            builder
                .build()
                .map_err(|e| other(crate::core::text::one_line(&e.to_string())))?,
        );
        let prefix = prefix.trim_end_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            bucket_store.clone()
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                bucket_store.clone(),
                prefix,
            ))
        };
        let bucket_url = url::Url::parse(&format!("s3://{bucket}"))
            .map_err(|e| other(format!("bad bucket name: {e}")))?;
        Ok(Lake {
            store,
            url: url.clone(),
            bucket: Some((bucket_url, bucket_store)),
        })
    }

    /// Lets a DataFusion session read this lake (needed for S3).
    pub fn register_with(&self, ctx: &datafusion::prelude::SessionContext) {
        if let Some((url, store)) = &self.bucket {
            ctx.register_object_store(url, store.clone());
        }
    }

    pub fn url(&self) -> &LakeUrl {
        &self.url
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    fn store_err(&self, key: &str, source: object_store::Error) -> LakeError {
        LakeError::Store {
            url: self.url.join(key),
            source,
        }
    }

    /// Writes bytes at `key`, atomically.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.store
            .put(&StorePath::from(key), PutPayload::from(bytes))
            .await
            .map_err(|e| self.store_err(key, e))?;
        Ok(())
    }

    /// Streams the local file `path` to `key` in parts of [`PART_BYTES`],
    /// handing each chunk read to `seen` (a hash, for `sync`): the memory
    /// held is a few parts whatever the file's size. The object appears
    /// whole or not at all: the local store renames its staging file when
    /// the upload completes, an object store completes its multipart upload.
    /// Returns the bytes copied.
    pub async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        mut seen: impl FnMut(&[u8]),
    ) -> Result<u64, LakeError> {
        use std::io::Read as _;
        let read_err = |e: std::io::Error| LakeError::Other {
            url: self.url.join(key),
            message: format!("reading {}: {e}", path.display()),
        };
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let upload = self
            .store
            .put_multipart(&StorePath::from(key))
            .await
            .map_err(|e| self.store_err(key, e))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; READ_BYTES];
        let mut copied = 0u64;
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(read_err(e));
                }
            };
            seen(&buffer[..n]);
            // At most two parts in flight: the memory stays bounded.
            if let Err(e) = writer.wait_for_capacity(2).await {
                return Err(self.store_err(key, e));
            }
            writer.write(&buffer[..n]);
            copied += n as u64;
        }
        writer.finish().await.map_err(|e| self.store_err(key, e))?;
        Ok(copied)
    }

    /// Moves the object at `from` to `to` (a rename in a local lake, a
    /// server-side copy then a delete in an object store).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), LakeError> {
        self.store
            .rename(&StorePath::from(from), &StorePath::from(to))
            .await
            .map_err(|e| self.store_err(to, e))
    }

    /// Removes what a write killed half-way left below `prefix` in a local
    /// lake: the local store writes `<name>#<n>` and renames it when whole,
    /// so a process killed in between leaves the staging file (an object
    /// store leaves nothing). `render` calls this on the month's documents
    /// before writing them; one writer at a time holds the lock, so no write
    /// is under way.
    pub fn remove_staging_leftovers(&self, prefix: &str) -> Result<(), LakeError> {
        let Some(root) = self.url.local_path() else {
            return Ok(());
        };
        let mut folders = vec![root.join(prefix)];
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                let staging = name
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if staging {
                    std::fs::remove_file(&path).map_err(|e| LakeError::Other {
                        url: path.display().to_string(),
                        message: format!("cannot remove a half-written file: {e}"),
                    })?;
                }
            }
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>, LakeError> {
        let result = self
            .store
            .get(&StorePath::from(key))
            .await
            .map_err(|e| self.store_err(key, e))?;
        let bytes = result.bytes().await.map_err(|e| self.store_err(key, e))?;
        Ok(bytes.to_vec())
    }

    /// The bytes at `key`, or None when there is no such object.
    pub async fn get_if_exists(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        match self.store.get(&StorePath::from(key)).await {
            Ok(result) => {
                let bytes = result.bytes().await.map_err(|e| self.store_err(key, e))?;
                Ok(Some(bytes.to_vec()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_err(key, e)),
        }
    }

    /// Whether an object exists at `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, LakeError> {
        match self.store.head(&StorePath::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.store_err(key, e)),
        }
    }

    /// Keys below a prefix (recursively), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        let prefix_path = StorePath::from(prefix);
        let mut stream = self.store.list(Some(&prefix_path));
        let mut keys = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(meta) => keys.push(meta.location.to_string()),
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.store_err(prefix, e)),
            }
        }
        keys.sort();
        Ok(keys)
    }

    pub async fn delete(&self, key: &str) -> Result<(), LakeError> {
        match self.store.delete(&StorePath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err(key, e)),
        }
    }

    /// Writes record batches as one zstd Parquet file at `key`, atomically.
    /// Returns the number of rows.
    pub async fn write_parquet(
        &self,
        key: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64, LakeError> {
        let mut writer = self.parquet_writer(key, schema)?;
        let mut rows = 0;
        for batch in batches {
            rows += batch.num_rows() as u64;
            writer
                .write(&plain_batch(batch).map_err(|e| self.arrow_err(key, e))?)
                .await
                .map_err(|e| self.parquet_err(key, e))?;
        }
        writer.close().await.map_err(|e| self.parquet_err(key, e))?;
        Ok(rows)
    }

    /// Streams a query's result into one Parquet file at `key`, atomically.
    pub async fn write_stream(
        &self,
        key: &str,
        mut stream: SendableRecordBatchStream,
    ) -> Result<u64, LakeError> {
        let mut writer = self.parquet_writer(key, stream.schema())?;
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|source| LakeError::Query {
                url: self.url.join(key),
                source,
            })?;
            rows += batch.num_rows() as u64;
            writer
                .write(&plain_batch(&batch).map_err(|e| self.arrow_err(key, e))?)
                .await
                .map_err(|e| self.parquet_err(key, e))?;
        }
        writer.close().await.map_err(|e| self.parquet_err(key, e))?;
        Ok(rows)
    }

    /// A Parquet writer for one file; the file appears, whole, when the
    /// writer is closed (see [`Lake::close_parquet`]).
    pub fn parquet_writer(
        &self,
        key: &str,
        schema: SchemaRef,
    ) -> Result<AsyncArrowWriter<BufWriter>, LakeError> {
        // zstd's level 1: about as small as 3 on these columns, for less
        // CPU (docs/PERFORMANCE.md).
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).expect("valid zstd level"),
            ))
            .set_max_row_group_row_count(Some(1 << 20));
        // Columns with a value per row gain nothing from a dictionary: the
        // writer would build one, find it too big and fall back, for each
        // column chunk (docs/PERFORMANCE.md).
        for field in schema.fields() {
            if UNIQUE_COLUMNS.contains(&field.name().as_str()) {
                properties = properties
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        let properties = properties.build();
        let object = BufWriter::new(self.store.clone(), StorePath::from(key));
        AsyncArrowWriter::try_new(object, plain_schema(&schema), Some(properties))
            .map_err(|e| self.parquet_err(key, e))
    }

    /// Writes a batch to an open writer.
    pub async fn write_batch(
        &self,
        key: &str,
        writer: &mut AsyncArrowWriter<BufWriter>,
        batch: &RecordBatch,
    ) -> Result<(), LakeError> {
        writer
            .write(&plain_batch(batch).map_err(|e| self.arrow_err(key, e))?)
            .await
            .map_err(|e| self.parquet_err(key, e))
    }

    /// Completes a file started with [`Lake::parquet_writer`].
    pub async fn close_parquet(
        &self,
        key: &str,
        writer: AsyncArrowWriter<BufWriter>,
    ) -> Result<(), LakeError> {
        writer.close().await.map_err(|e| self.parquet_err(key, e))?;
        Ok(())
    }

    fn arrow_err(&self, key: &str, source: datafusion::arrow::error::ArrowError) -> LakeError {
        self.parquet_err(key, parquet::errors::ParquetError::from(source))
    }

    fn parquet_err(&self, key: &str, source: parquet::errors::ParquetError) -> LakeError {
        LakeError::Parquet {
            url: self.url.join(key),
            source,
        }
    }
}

/// The schema a dataset is written with: text and binary columns as
/// `Utf8` and `Binary`, never their view forms. DataFusion reads Parquet
/// text back as `Utf8View` and computes some columns so; written as it
/// comes, one month's partition would say `Utf8View` where another says
/// `Utf8`, and a query over both months would fail to merge them.
fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let plain = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(plain)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A batch in its [`plain_schema`].
fn plain_batch(batch: &RecordBatch) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let plain = plain_schema(&batch.schema());
    if Arc::ptr_eq(&plain, &batch.schema()) {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(plain.fields())
        .map(|(column, field)| datafusion::arrow::compute::cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(plain, columns)
}

/// Columns whose values are (nearly) all different: written without a
/// dictionary.
const UNIQUE_COLUMNS: &[&str] = &[
    "cdr_id",
    "start_time",
    "source_line",
    "content_hash",
    "called_number",
];

/// The dataset names of interface.md, and the others this project adds.
pub mod datasets {
    pub const CDRS: &str = "cdrs";
    pub const CDR_CONFLICTS: &str = "cdr_conflicts";
    pub const QUARANTINE: &str = "quarantine";
    pub const BILLED_CDRS: &str = "billed_cdrs";
    pub const ACCOUNT_STATUS: &str = "account_status";
    pub const SIM_CARDS: &str = "sim_cards";
    pub const RATED_CDRS: &str = "rated_cdrs";
    pub const RATING_EXCEPTIONS: &str = "rating_exceptions";
    /// Each allowance pool of the month with what it used so far, as of
    /// the last `rate` (rating.md §4): rewritten whole after each.
    pub const CONSUMPTION: &str = "consumption";
    pub const INVOICE_LINES: &str = "invoice_lines";
    pub const INVOICES: &str = "invoices";
    pub const ASSURANCE: &str = "assurance";
    pub const ASSURANCE_SUMMARY: &str = "assurance_summary";
    pub const MARGIN: &str = "margin";
    pub const SALES_JOURNAL: &str = "sales_journal";
    pub const E_REPORTING: &str = "e_reporting";
    pub const CREDIT_NOTES: &str = "credit_notes";
    /// The lines of the credit notes a regularisation issued (account.md
    /// §4), by the month billed when they were issued.
    pub const CREDIT_NOTE_LINES: &str = "credit_note_lines";
    /// Each credit note's VAT per category and rate (rating.md §6), by the
    /// month of the note's issue date, like `credit_notes`.
    pub const CREDIT_NOTE_VAT: &str = "credit_note_vat";
    /// The commitments each issued invoice prints (account.md §6): one row
    /// per line and commitment running during the month.
    pub const INVOICE_COMMITMENTS: &str = "invoice_commitments";
    pub const WHATIF: &str = "whatif";
    /// The customers of an issued month's documents as the issue recorded
    /// them (account.md §3, `stages/frozen.rs`), IBAN masked.
    pub const INVOICE_PARTIES: &str = "invoice_parties";
    /// `drafts/month=M/draft_invoices/` and `drafts/month=M/draft_invoice_lines/`
    /// (account.md §2), replaced at each draft.
    pub const DRAFTS: &str = "drafts";
    /// The customer account (account.md §7), rewritten whole from the
    /// ledger after each change: one file, no partition.
    pub const ACCOUNT_ENTRIES: &str = "account_entries";
    /// Each customer's unpaid balance by days past due, per date it was
    /// computed (`as_of=YYYY-MM-DD`).
    pub const AGED_BALANCE: &str = "aged_balance";

    /// Every dataset `query` registers, with its partition column.
    pub const ALL: &[(&str, Option<&str>)] = &[
        (CDRS, Some("month")),
        (CDR_CONFLICTS, Some("month")),
        (QUARANTINE, Some("source")),
        (BILLED_CDRS, Some("month")),
        (ACCOUNT_STATUS, Some("month")),
        (SIM_CARDS, None),
        (RATED_CDRS, Some("month")),
        (RATING_EXCEPTIONS, Some("month")),
        (CONSUMPTION, Some("month")),
        (INVOICE_LINES, Some("month")),
        (INVOICES, Some("month")),
        (ASSURANCE, Some("month")),
        (ASSURANCE_SUMMARY, Some("month")),
        (MARGIN, Some("month")),
        (SALES_JOURNAL, Some("month")),
        (E_REPORTING, Some("month")),
        (CREDIT_NOTES, Some("month")),
        (CREDIT_NOTE_LINES, Some("month")),
        (CREDIT_NOTE_VAT, Some("month")),
        (INVOICE_COMMITMENTS, Some("month")),
        (WHATIF, Some("month")),
        (INVOICE_PARTIES, Some("month")),
        (ACCOUNT_ENTRIES, None),
        (AGED_BALANCE, Some("as_of")),
    ];
}
