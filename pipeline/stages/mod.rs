//! The pipeline's stages, one verb each: `sync` → `land` → `rate` → `bill`
//! → `render` → `publish` → `assure`, with `finance`, `sepa`, `credit` and
//! `payments`; `dunning` daily.
//!
//! Each stage is handed one [`Context`]: the settings, the lake and the
//! ledger, opened once by the command (`app.rs`). A stage that runs SQL
//! starts from [`session`]: the reference tables and the month's
//! parameters registered in a DataFusion session.

use std::path::Path;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use crate::core::lake::{Lake, LakeError};
use crate::core::ledger::{Ledger, LedgerError};
use crate::core::month::Month;
use crate::engine;
use crate::reference::{Reference, ReferenceError};
use crate::settings::{Settings, SettingsError};

pub mod alerts;
pub mod assure;
pub mod bill;
pub mod cdrindex;
pub mod credit;
pub mod dunning;
pub mod finance;
pub mod frozen;
pub mod land;
pub mod payments;
pub mod pools;
pub mod publish;
pub mod rate;
pub mod refunds;
pub mod render;
pub mod sepa;
pub mod sync;

/// What every stage works with.
pub struct Context {
    pub settings: Settings,
    pub lake: Lake,
    pub ledger: Ledger,
}

/// Why a context could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Why a stage's session could not be prepared: the reference tables do
/// not load, or do not register.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("preparing the session failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
}

impl Context {
    /// The settings of a configuration file, its lake and its ledger.
    pub fn open(config: &Path) -> Result<Context, ContextError> {
        let settings = Settings::load(config)?;
        let lake = Lake::open(&settings.lake_url, &settings.lake_s3)?;
        let ledger = Ledger::open(&settings.state_dir)?;
        Ok(Context {
            settings,
            lake,
            ledger,
        })
    }
}

/// Registers every AccountStatus snapshot (`account_status`, by month), or
/// an empty table when none has landed: `bill`'s terminations, `assure`'s
/// dead and active lines, `whatif`.
pub async fn register_account_status(ctx: &SessionContext, lake: &Lake) -> Result<(), LakeError> {
    use crate::core::lake::datasets;
    if !engine::register_dataset(ctx, lake, datasets::ACCOUNT_STATUS, Some("month")).await? {
        engine::register_batch(
            ctx,
            "account_status",
            engine::empty(crate::mvne::upstream::status_schema()),
        )
        .map_err(|source| LakeError::Query {
            url: lake.url().join(datasets::ACCOUNT_STATUS),
            source,
        })?;
    }
    Ok(())
}

/// A DataFusion session with the reference tables and `params` (the
/// month, and the issue and due dates when billing) registered: what
/// `rate`, `bill` and the stages after them (and `whatif`) start from.
pub async fn session(
    settings: &Settings,
    month: Month,
    dates: Option<(NaiveDate, NaiveDate)>,
) -> Result<SessionContext, SessionError> {
    let reference = Reference::load(&settings.reference_dir)?;
    let ctx = engine::session_with_pool(settings.memory_pool_bytes);
    reference.register(&ctx)?;
    engine::register_batch(&ctx, "params", engine::params_batch(month, dates))?;
    Ok(ctx)
}
