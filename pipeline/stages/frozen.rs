//! account.md §3: an issued invoice is frozen. The issue (`bill`) records
//! with the invoices everything their documents print, and `render`,
//! `credit` and `publish` read that record for an issued month, never the
//! current `customers.csv` or `integrator.toml`:
//!
//! - **The customers**: dataset `invoice_parties/month=M/part-0.parquet`,
//!   one row per customer with an invoice of M or a regularisation credit
//!   note issued with M: name, billing address, e-mail, business
//!   identifiers (VAT number, SIRET), payment method, the IBAN **masked**
//!   (`**** … 4472`: never a full IBAN in an analyst dataset), the RUM and
//!   the mandate's date. Analysts read it as any dataset.
//! - **The integrator**: `documents/M/.issue/integrator.json`, the whole of
//!   `integrator.toml` as it was (identity, legal mentions, customer
//!   service, bank details, ICS, numbering prefix) with the logo and the
//!   footer banner as `data:` URIs, i.e. their bytes.
//!
//! Both are written by [`record_issue`], which `bill` calls after writing
//! the month's datasets and before the ledger closes the month: a crash
//! before the commit leaves an open month whose next `bill` writes them
//! again; after it, they are never written again. A month issued before
//! this record existed gets it from the current files the first time a
//! stage reads it (a warning says so), and keeps it from then on.
//!
//! A draft (account.md §2) is not frozen: its documents are made from the
//! current files ([`Seller::current`], [`register_draft_parties`]).
//!
//! Payment data is not frozen for collection: the SEPA file uses the
//! mandate and IBAN in force on the day it is written (`sepa.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Date32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::month::Month;
use crate::documents::document::{mask_iban, Customer};
use crate::documents::images::ImageError;
use crate::documents::templates::branding;
use crate::engine::{self, sqlfiles, Rows};
use crate::reference::integrator::{Integrator, IntegratorError};
use crate::settings::Settings;
use crate::stages::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Integrator(#[from] IntegratorError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("the record of {month}'s issue: {message}")]
    Data { month: String, message: String },
    #[error("the record of the issue: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("the record of the issue: {0}")]
    Arrow(#[from] ArrowError),
}

/// The seller as the documents print it: `integrator.toml` and its images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seller {
    pub integrator: Integrator,
    /// The logo and the footer banner as `data:` URIs (their bytes).
    pub logo: Option<String>,
    pub banner: Option<String>,
}

impl Seller {
    /// As the configuration has it now (a draft; the issue records it).
    pub fn current(settings: &Settings) -> Result<Seller, RecordError> {
        let integrator = Integrator::load(&settings.integrator_path)?;
        let (logo, banner) = branding(&settings.integrator_path, &integrator)?;
        Ok(Seller {
            integrator,
            logo,
            banner,
        })
    }
}

/// `documents/2026-10/.issue/integrator.json`.
pub fn seller_key(month: Month) -> String {
    format!("documents/{month}/.issue/integrator.json")
}

/// `invoice_parties/month=2026-10/part-0.parquet`.
fn parties_key(month: Month) -> String {
    format!("{}/month={month}/part-0.parquet", datasets::INVOICE_PARTIES)
}

/// The columns of `invoice_parties`. Text columns are null when
/// `customers.csv` had no value.
pub fn parties_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("customer_id", false),
        // Empty for a customer with only a regularisation credit note.
        text("invoice_number", false),
        text("kind", true),
        text("name", true),
        text("address1", true),
        text("address2", true),
        text("postcode", true),
        text("city", true),
        text("country", true),
        text("email", true),
        text("vat_number", true),
        text("siret", true),
        text("payment_method", true),
        text("iban_masked", true),
        text("mandate_rum", true),
        Field::new("mandate_date", DataType::Date32, true),
    ]))
}

/// account.md §3, at the issue of `month` (`bill`, after the month's
/// `invoices` and `credit_note_lines` partitions are written, before the
/// ledger closes the month): records the customers of its invoices and
/// regularisation credit notes and the integrator, as the current files
/// have them.
pub async fn record_issue(
    settings: &Settings,
    lake: &Lake,
    month: Month,
) -> Result<(), RecordError> {
    let seller = Seller::current(settings)?;
    record_parties(settings, lake, month).await?;
    write_seller(lake, month, &seller).await
}

async fn write_seller(lake: &Lake, month: Month, seller: &Seller) -> Result<(), RecordError> {
    let json = serde_json::to_vec_pretty(seller).map_err(|e| RecordError::Data {
        month: month.to_string(),
        message: e.to_string(),
    })?;
    lake.put(&seller_key(month), json).await?;
    Ok(())
}

/// The customers of an issued month's documents, from the current
/// `customers.csv`, written as the month's `invoice_parties` partition.
async fn record_parties(settings: &Settings, lake: &Lake, month: Month) -> Result<(), RecordError> {
    let ctx = crate::stages::session(settings, month, None).await?;
    let partition = format!("month={month}");
    engine::register_path_or_empty(
        &ctx,
        lake,
        "invoices",
        &format!("{}/{partition}", datasets::INVOICES),
        Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("invoice_number", DataType::Utf8, false),
            Field::new("payment_method", DataType::Utf8, true),
        ])),
    )
    .await?;
    engine::register_path_or_empty(
        &ctx,
        lake,
        "credit_note_lines",
        &format!("{}/{partition}", datasets::CREDIT_NOTE_LINES),
        Arc::new(Schema::new(vec![Field::new(
            "customer_id",
            DataType::Utf8,
            false,
        )])),
    )
    .await?;
    ctx.sql(
        "CREATE VIEW parties_of AS
         SELECT customer_id, invoice_number, payment_method FROM invoices
         UNION ALL
         SELECT DISTINCT customer_id, '' AS invoice_number, CAST(NULL AS VARCHAR) AS payment_method
         FROM credit_note_lines
         WHERE customer_id NOT IN (SELECT customer_id FROM invoices)",
    )
    .await?;
    let batch = parties_batch(&ctx, month).await?;
    lake.write_parquet(&parties_key(month), parties_schema(), &[batch])
        .await?;
    Ok(())
}

/// Runs `sql/documents/parties.sql` on `parties_of` and `customers`, the
/// IBAN masked.
async fn parties_batch(ctx: &SessionContext, month: Month) -> Result<RecordBatch, RecordError> {
    let rows = Rows::query(ctx, &sqlfiles::DOCUMENT_PARTIES).await?;
    let text = |column: &str, mask: bool| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.rows.iter().map(|row| {
            let value = rows.get(row, column);
            match (value.is_empty(), mask) {
                (true, _) => None,
                (false, true) => Some(mask_iban(value)),
                (false, false) => Some(value.to_string()),
            }
        })))
    };
    let required = |column: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.rows
                .iter()
                .map(|row| rows.get(row, column).to_string()),
        ))
    };
    let mut dates = Vec::with_capacity(rows.rows.len());
    for row in &rows.rows {
        let value = rows.get(row, "mandate_date");
        dates.push(if value.is_empty() {
            None
        } else {
            let day =
                NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| RecordError::Data {
                    month: month.to_string(),
                    message: format!(
                        "customer {}: mandate_date '{value}' is not a date",
                        rows.get(row, "customer_id")
                    ),
                })?;
            Some(crate::core::month::epoch_days(day))
        });
    }
    let mut columns = vec![required("customer_id"), required("invoice_number")];
    for column in [
        "kind",
        "name",
        "address1",
        "address2",
        "postcode",
        "city",
        "country",
        "email",
        "vat_number",
        "siret",
        "payment_method",
    ] {
        columns.push(text(column, false));
    }
    columns.push(text("iban", true));
    columns.push(text("mandate_rum", false));
    columns.push(Arc::new(Date32Array::from(dates)));
    Ok(RecordBatch::try_new(parties_schema(), columns)?)
}

/// The integrator as `month`'s issue recorded it. A month issued before
/// the record existed gets it now, from the current files.
pub async fn seller(settings: &Settings, lake: &Lake, month: Month) -> Result<Seller, RecordError> {
    if let Some(bytes) = lake.get_if_exists(&seller_key(month)).await? {
        return serde_json::from_slice(&bytes).map_err(|e| RecordError::Data {
            month: month.to_string(),
            message: format!("{}: {e}", seller_key(month)),
        });
    }
    tracing::warn!(
        "{month} was issued without a record of its integrator: recorded now from {}",
        settings.integrator_path.display()
    );
    let seller = Seller::current(settings)?;
    write_seller(lake, month, &seller).await?;
    Ok(seller)
}

/// Registers `month`'s recorded customers as `invoice_parties`. A month
/// issued before the record existed gets it now, from the current
/// `customers.csv`.
pub async fn register_parties(
    ctx: &SessionContext,
    settings: &Settings,
    lake: &Lake,
    month: Month,
) -> Result<(), RecordError> {
    let path = format!("{}/month={month}", datasets::INVOICE_PARTIES);
    if engine::register_path(ctx, lake, "invoice_parties", &path, None).await? {
        return Ok(());
    }
    tracing::warn!(
        "{month} was issued without a record of its customers: recorded now from customers.csv"
    );
    record_parties(settings, lake, month).await?;
    if engine::register_path(ctx, lake, "invoice_parties", &path, None).await? {
        Ok(())
    } else {
        Err(RecordError::Data {
            month: month.to_string(),
            message: format!("{path} was written but cannot be read"),
        })
    }
}

/// A draft's customers as `customers.csv` has them now, registered as
/// `invoice_parties` for the draft's `invoices` (registered already).
pub async fn register_draft_parties(ctx: &SessionContext, month: Month) -> Result<(), RecordError> {
    ctx.sql(
        "CREATE VIEW parties_of AS
         SELECT customer_id, '' AS invoice_number, payment_method FROM invoices",
    )
    .await?;
    let batch = parties_batch(ctx, month).await?;
    engine::register_batch(ctx, "invoice_parties", batch)?;
    Ok(())
}

/// A customer as a month's record has it.
#[derive(Debug, Clone)]
pub struct Party {
    pub customer: Customer,
    pub payment_method: String,
    pub iban_masked: String,
    pub mandate_rum: String,
    pub mandate_date: Option<NaiveDate>,
}

/// The customers of `month`'s record, by customer (the customers of the
/// regularisation credit notes issued with it, too).
pub async fn parties(
    settings: &Settings,
    lake: &Lake,
    month: Month,
) -> Result<BTreeMap<String, Party>, RecordError> {
    const COLUMNS: [&str; 16] = [
        "customer_id",
        "invoice_number",
        "kind",
        "name",
        "address1",
        "address2",
        "postcode",
        "city",
        "country",
        "email",
        "vat_number",
        "siret",
        "payment_method",
        "iban_masked",
        "mandate_rum",
        "mandate_date",
    ];
    let ctx = engine::session();
    register_parties(&ctx, settings, lake, month).await?;
    let rows = engine::rows_strings(
        &ctx,
        &format!("SELECT {} FROM invoice_parties", COLUMNS.join(", ")),
    )
    .await?;
    let mut parties = BTreeMap::new();
    for row in rows {
        let get = |column: &str| -> &str {
            COLUMNS
                .iter()
                .position(|c| *c == column)
                .map_or("", |i| row[i].as_str())
        };
        let mandate_date = match get("mandate_date") {
            "" => None,
            text => Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                RecordError::Data {
                    month: month.to_string(),
                    message: format!("mandate_date '{text}' is not a date"),
                }
            })?),
        };
        let party = Party {
            customer: Customer::from_columns(get),
            payment_method: get("payment_method").to_string(),
            iban_masked: get("iban_masked").to_string(),
            mandate_rum: get("mandate_rum").to_string(),
            mandate_date,
        };
        parties.insert(get("customer_id").to_string(), party);
    }
    Ok(parties)
}
