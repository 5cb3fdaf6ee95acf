//! The command edge: runs what the command line asks, records each stage run
//! in the ledger, and returns a report the binary prints as text or JSON.

use std::path::Path;

use serde::Serialize;

use crate::cli::{Cli, Command, PaymentsCommand, QueryFormat, RioCommand, SepaFormat, SimCommand};
use crate::core::lake::{Lake, LakeError};
use crate::core::ledger::{Ledger, LedgerError};
use crate::core::lock::{LockError, StateLock};
use crate::core::month::Month;
use crate::core::text::one_line;
use crate::settings::{Settings, SettingsError};
use crate::stages::assure::{self, AssureError, AssureReport};
use crate::stages::bill::{self, BillError, BillReport};
use crate::stages::credit::{self, CreditError, CreditReport, CreditRequest};
use crate::stages::dunning::{self, DunningError, DunningReport};
use crate::stages::finance::{self, FinanceError, FinanceReport};
use crate::stages::land::{self, LandError, LandReport};
use crate::stages::payments::{self, ImportReport, PaymentsError, UnmatchedReport};
use crate::stages::publish::{self, PublishError, PublishRunReport};
use crate::stages::rate::{self, OpenMonthsReport, RateError, RateReport};
use crate::stages::render::{self, RenderError, RenderOptions, RenderReport};
use crate::stages::sepa::{self, SepaError, SepaReport};
use crate::stages::sync::{self, SyncError, SyncReport};
use crate::stages::{Context, ContextError};
use crate::tools::check::{self, CheckError, CheckReport};
use crate::tools::duration::{self, DurationError, DurationReport};
use crate::tools::gen::{self, GenError, GenOptions, GenReport};
use crate::tools::query::{self, QueryError, QueryReport};
use crate::tools::receivables::{self, ReceivablesReport};
use crate::tools::rio::{self, RioBatchReport, RioCheckReport, RioError};
use crate::tools::usage::{self, UsageError, UsageReport};
use crate::tools::whatif::{self, WhatifError, WhatifReport};

/// Every error a command can end with; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Land(#[from] LandError),
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Bill(#[from] BillError),
    #[error(transparent)]
    Finance(#[from] FinanceError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Sepa(#[from] SepaError),
    #[error(transparent)]
    Assure(#[from] AssureError),
    #[error(transparent)]
    Whatif(#[from] WhatifError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Credit(#[from] CreditError),
    #[error(transparent)]
    Payments(#[from] PaymentsError),
    #[error(transparent)]
    Dunning(#[from] DunningError),
    #[error(transparent)]
    Account(#[from] crate::account::AccountError),
    #[error(transparent)]
    Rio(#[from] RioError),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Sim(#[from] crate::tools::sim::SimError),
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error(transparent)]
    Gen(#[from] GenError),
    #[error(transparent)]
    Doctor(#[from] crate::tools::doctor::DoctorError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("demo folder {0} exists and is not a previous demo: choose another --out")]
    DemoFolder(String),
    #[error("demo folder {path}: {source}")]
    DemoIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a command reports.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Report {
    Sync(Timed<SyncReport>),
    Land(Timed<LandReport>),
    Rate(Timed<RateReport>),
    Rates(Timed<OpenMonthsReport>),
    Bill(Timed<BillReport>),
    Finance(Timed<FinanceReport>),
    Render(Timed<RenderReport>),
    Publish(Timed<PublishRunReport>),
    Sepa(Timed<SepaReport>),
    Assure(Timed<AssureReport>),
    Whatif(Timed<WhatifReport>),
    Run(Box<Timed<RunReport>>),
    Query(QueryReport),
    QuerySession(query::SessionReport),
    Credit(Timed<CreditReport>),
    Payments(Timed<ImportReport>),
    Unmatched(UnmatchedReport),
    Dunning(Timed<DunningReport>),
    Receivables(Timed<ReceivablesReport>),
    Usage(UsageReport),
    RioCheck(RioCheckReport),
    Puk(crate::tools::sim::PukReport),
    RioBatch(RioBatchReport),
    Duration(DurationReport),
    Doctor(crate::tools::doctor::DoctorReport),
    Check(CheckReport),
    Gen(GenReport),
    Demo(DemoReport),
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Sync(r) => r.fmt(f),
            Report::Land(r) => r.fmt(f),
            Report::Rate(r) => r.fmt(f),
            Report::Rates(r) => r.fmt(f),
            Report::Bill(r) => r.fmt(f),
            Report::Finance(r) => r.fmt(f),
            Report::Render(r) => r.fmt(f),
            Report::Publish(r) => r.fmt(f),
            Report::Sepa(r) => r.fmt(f),
            Report::Assure(r) => r.fmt(f),
            Report::Whatif(r) => r.fmt(f),
            Report::Run(r) => r.fmt(f),
            Report::Query(r) => r.fmt(f),
            Report::QuerySession(r) => r.fmt(f),
            Report::Credit(r) => r.fmt(f),
            Report::Payments(r) => r.fmt(f),
            Report::Unmatched(r) => r.fmt(f),
            Report::Dunning(r) => r.fmt(f),
            Report::Receivables(r) => r.fmt(f),
            Report::Usage(r) => r.fmt(f),
            Report::RioCheck(r) => r.fmt(f),
            Report::Puk(r) => r.fmt(f),
            Report::RioBatch(r) => r.fmt(f),
            Report::Duration(r) => r.fmt(f),
            Report::Doctor(r) => r.fmt(f),
            Report::Check(r) => r.fmt(f),
            Report::Gen(r) if r.months > 1 => write!(
                f,
                "gen: {} months, {} customers, {} lines, {} CDRs ({} late roaming) in {} files ({} bytes) in {}",
                r.months, r.customers, r.lines, r.cdrs, r.late_cdrs, r.rated_files, r.bytes, r.out_dir
            ),
            Report::Gen(r) => write!(
                f,
                "gen: {} customers, {} lines, {} CDRs in {} files ({} bytes) in {}",
                r.customers, r.lines, r.cdrs, r.rated_files, r.bytes, r.out_dir
            ),
            Report::Demo(r) => r.fmt(f),
        }
    }
}

impl Report {
    /// False when the report is a verdict against its input (a RIO that
    /// does not match): printed in full, then exit 1.
    pub fn passed(&self) -> bool {
        match self {
            Report::RioCheck(r) => r.passed(),
            Report::RioBatch(r) => r.passed(),
            // Statements piped into the prompt: a failed one fails the run.
            Report::QuerySession(r) => r.failed == 0,
            Report::Doctor(r) => r.passed(),
            Report::Check(r) => r.passed(),
            _ => true,
        }
    }

    /// What `--json` prints instead of the report: a query's rows, as one
    /// JSON array.
    pub fn json_rows(&self) -> Option<&str> {
        match self {
            Report::Query(r) if r.out.is_none() && r.json_array => Some(&r.output),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub month: String,
    pub sync: Option<Timed<SyncReport>>,
    pub land: Timed<LandReport>,
    pub rate: Timed<RateReport>,
    pub bill: Timed<BillReport>,
    pub finance: Timed<FinanceReport>,
    pub render: Timed<RenderReport>,
    /// None with `--html-only` (no PDF to publish).
    pub publish: Option<Timed<PublishRunReport>>,
    pub assure: Timed<AssureReport>,
}

/// A stage's report with when the stage started and how long it took: the
/// report's own fields, plus `started_at` (UTC, RFC 3339) and `elapsed_ms`
/// in the JSON; the ledger's `runs` table keeps the same JSON.
#[derive(Debug, Serialize)]
pub struct Timed<R> {
    #[serde(flatten)]
    pub report: R,
    /// `land`, …, or `run` for the whole run.
    #[serde(skip)]
    pub stage: &'static str,
    pub started_at: String,
    pub elapsed_ms: u64,
}

impl<R> std::ops::Deref for Timed<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.report
    }
}

impl<R> std::ops::DerefMut for Timed<R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.report
    }
}

/// The report, then how long its stage took (for `run`: the whole run).
impl<R: std::fmt::Display> std::fmt::Display for Timed<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (stage, took) = (self.stage, seconds(self.elapsed_ms));
        write!(f, "{}\n{stage} took {took}", self.report)
    }
}

/// `1.234 s`, from milliseconds.
fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// A stage that has started: its ledger run and its clock.
struct Started {
    id: i64,
    stage: &'static str,
    at: chrono::DateTime<chrono::Utc>,
    clock: std::time::Instant,
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(sync) = &self.sync {
            writeln!(f, "{sync}")?;
        }
        write!(
            f,
            "{}\n{}\n{}\n{}\n{}",
            self.land, self.rate, self.bill, self.finance, self.render
        )?;
        if let Some(publish) = &self.publish {
            write!(f, "\n{publish}")?;
        }
        write!(f, "\n{}", self.assure)
    }
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub generated: GenReport,
    pub config: String,
    /// Each month's run, in order, each on the 2nd of the next month with
    /// what the MVNE had delivered by 20:00.
    pub runs: Vec<Timed<RunReport>>,
    /// The first month's revenue assurance after the second's issue: its
    /// late CDRs, regularised on the second month's invoices.
    pub late: Timed<AssureReport>,
    /// Per month: the invoices and invoice lines datasets, in `runs` order.
    pub invoices: Vec<String>,
    pub invoice_lines: Vec<String>,
    /// Why the PDFs were not printed, when Chromium is missing.
    pub pdf_missing: Option<String>,
}

/// The query a demo prints to show the invoice lines that regularise an
/// earlier month.
pub const REGULARISATION_QUERY: &str = "SELECT invoice_number, msisdn, label, period, amount_ht FROM invoice_lines WHERE kind = 'REGULARISATION' ORDER BY invoice_number, msisdn, label";

impl std::fmt::Display for DemoReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let months: Vec<&str> = self.runs.iter().map(|r| r.month.as_str()).collect();
        writeln!(
            f,
            "demo: generated {} customers, {} lines, {} CDRs over {} ({} roaming CDRs delivered late)",
            self.generated.customers,
            self.generated.lines,
            self.generated.cdrs,
            months.join(" and "),
            self.generated.late_cdrs
        )?;
        for run in &self.runs {
            let billed_on = run
                .month
                .parse::<Month>()
                .map(|m| (m.next_first_day() + chrono::Days::new(1)).to_string())
                .unwrap_or_default();
            writeln!(
                f,
                "\n== {}, billed on {billed_on} at 21:00 with the files the MVNE delivered by 20:00 ==",
                run.month
            )?;
            writeln!(f, "{run}")?;
        }
        writeln!(
            f,
            "\n== {}, after {}'s issue ==",
            self.late.month,
            months.last().unwrap_or(&"")
        )?;
        writeln!(f, "{}\n", self.late)?;
        for (i, run) in self.runs.iter().enumerate() {
            let month = &run.month;
            writeln!(f, "{month} invoices:      {}", self.invoices[i])?;
            writeln!(f, "{month} invoice lines: {}", self.invoice_lines[i])?;
            writeln!(
                f,
                "{month} documents:     {} (open any .pdf or .html)",
                run.render.folder
            )?;
            writeln!(f, "{month} journal:       {}", run.finance.journal_csv)?;
        }
        if let Some(last) = self.runs.last() {
            if !last.bill.regularised_months.is_empty() {
                writeln!(
                    f,
                    "regularisation: {}'s invoices carry {} € HT for {} ({} late CDRs regularised)",
                    last.month,
                    last.bill.regularisation_ht,
                    last.bill.regularised_months.join(", "),
                    self.late.late_regularised
                )?;
            }
        }
        if let Some(why) = &self.pdf_missing {
            writeln!(f, "PDFs not printed: {why}")?;
        }
        writeln!(
            f,
            "query them:    mvnobill --config {} query \"SELECT invoice_number, customer_id, total_ht, vat, total_ttc FROM invoices ORDER BY invoice_number\"",
            self.config
        )?;
        write!(
            f,
            "regularisations: mvnobill --config {} query \"{REGULARISATION_QUERY}\"",
            self.config
        )
    }
}

/// The stages of one command, on one context, each run recorded in the
/// ledger.
struct Stages {
    context: Context,
}

impl Stages {
    fn open(config: &Path) -> Result<Stages, AppError> {
        Ok(Stages {
            context: Context::open(config)?,
        })
    }

    /// Opens a stage run in the ledger and starts its clock.
    fn start(&self, stage: &'static str, month: Option<Month>) -> Result<Started, AppError> {
        let month = month.map(|m| m.to_string());
        let id = self.context.ledger.start_run(stage, month.as_deref())?;
        tracing::info!(stage, month, "stage started");
        Ok(Started {
            id,
            stage,
            at: chrono::Utc::now(),
            clock: std::time::Instant::now(),
        })
    }

    /// Closes a stage run in the ledger with its report (and duration), or
    /// its error.
    fn record<R: Serialize, E: Into<AppError>>(
        &self,
        started: Started,
        result: Result<R, E>,
    ) -> Result<Timed<R>, AppError> {
        let elapsed_ms = started.clock.elapsed().as_millis() as u64;
        let stage = started.stage;
        match result {
            Ok(report) => {
                let timed = Timed {
                    report,
                    stage,
                    started_at: started
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    elapsed_ms,
                };
                let json = serde_json::to_string(&timed).unwrap_or_default();
                self.context.ledger.end_run(started.id, "ok", &json)?;
                tracing::info!(stage, elapsed_ms, status = "ok", "stage finished");
                Ok(timed)
            }
            Err(e) => {
                let e = e.into();
                let reason = one_line(&e.to_string());
                self.context.ledger.end_run(started.id, "failed", &reason)?;
                // At info level: the error itself is the command's last
                // line (or, with JSON logs, its last event, at error level).
                tracing::info!(
                    stage,
                    elapsed_ms,
                    status = "failed",
                    reason,
                    "stage finished"
                );
                Err(e)
            }
        }
    }

    async fn sync(&self) -> Result<Timed<SyncReport>, AppError> {
        let id = self.start("sync", None)?;
        let result = sync::sync(&self.context).await;
        self.record(id, result)
    }

    async fn land(&self) -> Result<Timed<LandReport>, AppError> {
        let id = self.start("land", None)?;
        let result = land::land(&self.context).await;
        self.record(id, result)
    }

    async fn rate(&self, month: Month, full: bool) -> Result<Timed<RateReport>, AppError> {
        let id = self.start(if full { "rate --full" } else { "rate" }, Some(month))?;
        let result = rate::rate(&self.context, month, full).await;
        self.record(id, result)
    }

    async fn rate_open_months(&self) -> Result<Timed<OpenMonthsReport>, AppError> {
        let id = self.start("rate", None)?;
        let result = rate::rate_open_months(&self.context).await;
        self.record(id, result)
    }

    async fn bill(&mut self, month: Month, draft: bool) -> Result<Timed<BillReport>, AppError> {
        let id = self.start(if draft { "bill --draft" } else { "bill" }, Some(month))?;
        let result = bill::bill(&mut self.context, month, draft).await;
        self.record(id, result)
    }

    async fn finance(&self, month: Month) -> Result<Timed<FinanceReport>, AppError> {
        let id = self.start("finance", Some(month))?;
        let result = finance::finance(&self.context, month).await;
        self.record(id, result)
    }

    async fn render(
        &self,
        month: Month,
        options: RenderOptions,
        draft: bool,
    ) -> Result<Timed<RenderReport>, AppError> {
        let id = self.start("render", Some(month))?;
        let result = if draft {
            render::render_draft(&self.context, month, options).await
        } else {
            render::render(&self.context, month, options).await
        };
        self.record(id, result)
    }

    async fn publish(&self, month: Month) -> Result<Timed<PublishRunReport>, AppError> {
        let id = self.start("publish", Some(month))?;
        let result = publish::publish(&self.context, month).await;
        self.record(id, result)
    }

    async fn sepa(
        &self,
        month: Month,
        format: sepa::Format,
    ) -> Result<Timed<SepaReport>, AppError> {
        let id = self.start("sepa", Some(month))?;
        let result = sepa::sepa(&self.context, month, format).await;
        self.record(id, result)
    }

    /// Records the run in the ledger; numbers and issues nothing.
    async fn whatif(&self, month: Month) -> Result<Timed<WhatifReport>, AppError> {
        let id = self.start("whatif", Some(month))?;
        let result = whatif::whatif(&self.context.settings, &self.context.lake, month).await;
        self.record(id, result)
    }

    async fn assure(&self, month: Month) -> Result<Timed<AssureReport>, AppError> {
        let id = self.start("assure", Some(month))?;
        let result = assure::assure(&self.context, month).await;
        self.record(id, result)
    }

    async fn credit(
        &self,
        request: &CreditRequest,
        options: RenderOptions,
    ) -> Result<Timed<CreditReport>, AppError> {
        let id = self.start("credit", None)?;
        let result = credit::credit(&self.context, request, options).await;
        let mut report = self.record(id, result)?;
        // The note's row goes into the journal of the billing month whose
        // invoices were issued in the note's month, once that month is billed.
        let billing = chrono::NaiveDate::parse_from_str(&report.issue_date, "%Y-%m-%d")
            .ok()
            .and_then(|day| Month::of(day).previous());
        if let Some(billing) = billing {
            if self.context.ledger.is_issued(&billing.to_string())? {
                report.journal = Some(self.finance(billing).await?.report.journal_csv);
            }
        }
        Ok(report)
    }

    async fn payments_import(&self, file: &Path) -> Result<Timed<ImportReport>, AppError> {
        let id = self.start("payments import", None)?;
        let result = payments::import(&self.context, file).await;
        self.record(id, result)
    }

    async fn dunning(&self, date: chrono::NaiveDate) -> Result<Timed<DunningReport>, AppError> {
        let id = self.start("dunning", None)?;
        let result = dunning::dunning(&self.context, date).await;
        self.record(id, result)
    }

    async fn receivables(
        &self,
        date: chrono::NaiveDate,
    ) -> Result<Timed<ReceivablesReport>, AppError> {
        let id = self.start("receivables", None)?;
        let result = receivables::receivables(&self.context.lake, &self.context.ledger, date).await;
        self.record(id, result)
    }

    async fn run(
        &mut self,
        month: Month,
        options: RenderOptions,
    ) -> Result<Timed<RunReport>, AppError> {
        let at = chrono::Utc::now();
        let clock = std::time::Instant::now();
        let sync = match self.context.settings.source {
            Some(_) => Some(self.sync().await?),
            None => None,
        };
        let report = RunReport {
            month: month.to_string(),
            sync,
            land: self.land().await?,
            rate: self.rate(month, false).await?,
            bill: self.bill(month, false).await?,
            finance: self.finance(month).await?,
            render: self.render(month, options, false).await?,
            publish: match (options.pdf, &self.context.settings.source) {
                (true, Some(_)) => Some(self.publish(month).await?),
                _ => None,
            },
            assure: self.assure(month).await?,
        };
        Ok(Timed {
            report,
            stage: "run",
            started_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_ms: clock.elapsed().as_millis() as u64,
        })
    }
}

/// The line a user sees for an error. A memory pool too small for the
/// month (DataFusion's "Resources exhausted", from any stage) says first
/// which setting to raise.
pub fn error_line(error: &AppError) -> String {
    let line = one_line(&error.to_string());
    if line.contains("Resources exhausted") {
        format!("not enough memory in [engine] memory_pool_mb for this work: raise it (docs/PERFORMANCE.md): {line}")
    } else {
        line
    }
}

/// The clap choices of the command line, as the stages name them.
fn sepa_format(format: SepaFormat) -> sepa::Format {
    match format {
        SepaFormat::Pain00800102 => sepa::Format::Pain00800102,
        SepaFormat::Pain00800108 => sepa::Format::Pain00800108,
    }
}

fn query_format(format: QueryFormat) -> query::QueryFormat {
    match format {
        QueryFormat::Table => query::QueryFormat::Table,
        QueryFormat::Csv => query::QueryFormat::Csv,
        QueryFormat::Json => query::QueryFormat::Json,
        QueryFormat::Parquet => query::QueryFormat::Parquet,
    }
}

/// Whether a command writes the lake or the ledger, and so takes the lock.
/// Every command is listed: a new one must say which it is.
pub fn writes(command: &Command) -> bool {
    match command {
        Command::Sync
        | Command::Land
        | Command::Rate { .. }
        | Command::Bill { .. }
        | Command::Finance { .. }
        | Command::Render { .. }
        | Command::Publish { .. }
        | Command::Sepa { .. }
        | Command::Assure { .. }
        | Command::Run { .. }
        | Command::Whatif { .. }
        | Command::Credit { .. }
        | Command::Payments {
            command: PaymentsCommand::Import { .. },
        }
        | Command::Dunning { .. }
        | Command::Receivables { .. } => true,
        // Read-only, but its verdict is about a lake at rest: not while a
        // command writes it (it waits with --wait).
        Command::Doctor => true,
        // `demo` takes the lock of its own folder's state (below).
        Command::Query { .. }
        | Command::Usage { .. }
        | Command::Payments {
            command: PaymentsCommand::Unmatched,
        }
        | Command::Sim { .. }
        | Command::Rio { .. }
        | Command::Duration { .. }
        | Command::Gen { .. }
        | Command::Check
        | Command::Demo { .. } => false,
    }
}

pub async fn execute(cli: Cli) -> Result<Report, AppError> {
    // One writer at a time on a lake and its ledger (lock.rs).
    let _lock = match writes(&cli.command) {
        true => Some(StateLock::take(
            &Settings::load(&cli.config)?.state_dir,
            &crate::core::lock::command_line(),
            cli.wait,
        )?),
        false => None,
    };
    match cli.command {
        Command::Sync => Ok(Report::Sync(Stages::open(&cli.config)?.sync().await?)),
        Command::Land => Ok(Report::Land(Stages::open(&cli.config)?.land().await?)),
        Command::Rate {
            month: Some(month),
            full,
        } => Ok(Report::Rate(
            Stages::open(&cli.config)?.rate(month, full).await?,
        )),
        Command::Rate { month: None, .. } => Ok(Report::Rates(
            Stages::open(&cli.config)?.rate_open_months().await?,
        )),
        Command::Bill { month, draft } => Ok(Report::Bill(
            Stages::open(&cli.config)?.bill(month, draft).await?,
        )),
        Command::Finance { month } => Ok(Report::Finance(
            Stages::open(&cli.config)?.finance(month).await?,
        )),
        Command::Render {
            month,
            html_only,
            draft,
        } => Ok(Report::Render(
            Stages::open(&cli.config)?
                .render(month, RenderOptions { pdf: !html_only }, draft)
                .await?,
        )),
        Command::Publish { month } => Ok(Report::Publish(
            Stages::open(&cli.config)?.publish(month).await?,
        )),
        Command::Sepa { month, format } => Ok(Report::Sepa(
            Stages::open(&cli.config)?
                .sepa(month, sepa_format(format))
                .await?,
        )),
        Command::Assure { month } => Ok(Report::Assure(
            Stages::open(&cli.config)?.assure(month).await?,
        )),
        Command::Whatif { month } => Ok(Report::Whatif(
            Stages::open(&cli.config)?.whatif(month).await?,
        )),
        Command::Run { month, html_only } => Ok(Report::Run(Box::new(
            Stages::open(&cli.config)?
                .run(month, RenderOptions { pdf: !html_only })
                .await?,
        ))),
        Command::Credit {
            invoice,
            reason,
            amount_ht,
            date,
            again,
            html_only,
        } => {
            let request = CreditRequest {
                invoice_number: invoice,
                reason,
                amount_ht,
                date,
                again,
            };
            Ok(Report::Credit(
                Stages::open(&cli.config)?
                    .credit(&request, RenderOptions { pdf: !html_only })
                    .await?,
            ))
        }
        Command::Payments {
            command: PaymentsCommand::Import { file },
        } => Ok(Report::Payments(
            Stages::open(&cli.config)?.payments_import(&file).await?,
        )),
        Command::Payments {
            command: PaymentsCommand::Unmatched,
        } => {
            // Read-only: no stage run is recorded.
            let settings = Settings::load(&cli.config)?;
            let ledger = Ledger::open(&settings.state_dir)?;
            Ok(Report::Unmatched(payments::unmatched(ledger.connection())?))
        }
        Command::Dunning { date } => Ok(Report::Dunning(
            Stages::open(&cli.config)?
                .dunning(date.unwrap_or_else(today))
                .await?,
        )),
        Command::Receivables { date } => Ok(Report::Receivables(
            Stages::open(&cli.config)?
                .receivables(date.unwrap_or_else(today))
                .await?,
        )),
        Command::Usage { msisdn, month } => {
            // Read-only: no stage run is recorded.
            let settings = Settings::load(&cli.config)?;
            let lake = Lake::open(&settings.lake_url, &settings.lake_s3)?;
            Ok(Report::Usage(usage::usage(&lake, &msisdn, month).await?))
        }
        Command::Query { sql, format, out } => {
            let settings = Settings::load(&cli.config)?;
            let lake = Lake::open(&settings.lake_url, &settings.lake_s3)?;
            // `--json` asks for the rows as JSON, as `duckdb -json` gives
            // them (the report is then the rows: main.rs).
            let format = match (cli.json, format) {
                (true, QueryFormat::Table | QueryFormat::Json) => query::QueryFormat::JsonArray,
                (_, format) => query_format(format),
            };
            match sql {
                Some(sql) => Ok(Report::Query(
                    query::query(&settings, &lake, &sql, format, out.as_deref()).await?,
                )),
                None => {
                    let history = settings.state_dir.join("query_history");
                    Ok(Report::QuerySession(
                        query::interactive(&settings, &lake, format, &history).await?,
                    ))
                }
            }
        }
        Command::Sim {
            command: SimCommand::Puk { card },
        } => {
            // Not a run: the report carries the codes, the ledger keeps the
            // look-up only.
            let stages = Stages::open(&cli.config)?;
            Ok(Report::Puk(crate::tools::sim::puk(
                &stages.context.settings,
                &stages.context.ledger,
                &card,
            )?))
        }
        Command::Rio {
            command: RioCommand::Check { rio, msisdn, file },
        } => match (file, rio, msisdn) {
            (Some(file), _, _) => Ok(Report::RioBatch(rio::check_file(&file)?)),
            // clap requires both without --file.
            (None, rio, msisdn) => Ok(Report::RioCheck(RioCheckReport {
                verdict: rio::Verdict::of(
                    rio.as_deref().unwrap_or_default(),
                    msisdn.as_deref().unwrap_or_default(),
                ),
            })),
        },
        Command::Doctor => {
            // Read-only: no stage run is recorded.
            let settings = Settings::load(&cli.config)?;
            let lake = Lake::open(&settings.lake_url, &settings.lake_s3)?;
            let ledger = Ledger::open(&settings.state_dir)?;
            Ok(Report::Doctor(
                crate::tools::doctor::doctor(&lake, &ledger).await?,
            ))
        }
        Command::Check => {
            // Not a stage run: nothing is written, the ledger is only read
            // (the charges already billed).
            let settings = Settings::load(&cli.config)?;
            let lake = Lake::open(&settings.lake_url, &settings.lake_s3)?;
            Ok(Report::Check(check::check(&settings, &lake).await?))
        }
        Command::Duration { durations, date } => {
            let day = date.unwrap_or_else(today);
            Ok(Report::Duration(duration::duration(
                &cli.config,
                &durations,
                day,
            )?))
        }
        Command::Gen {
            out,
            month,
            months,
            customers,
            cdrs,
            seed,
        } => {
            let options = GenOptions {
                month: month.first_day(),
                customers,
                cdrs,
                seed,
                months,
            };
            Ok(Report::Gen(gen::generate(&options, &out)?))
        }
        Command::Demo {
            out,
            customers,
            cdrs,
        } => Ok(Report::Demo(demo(&out, customers, cdrs, cli.wait).await?)),
    }
}

/// Today in Europe/Paris: what `--date` defaults to.
fn today() -> chrono::NaiveDate {
    crate::core::csvfile::paris_date(chrono::Utc::now())
}

/// Marker file that tells a demo folder from anything else.
const DEMO_MARKER: &str = ".mvnobill-demo";

async fn demo(out: &Path, customers: u32, cdrs: u64, wait: bool) -> Result<DemoReport, AppError> {
    let io = |source| AppError::DemoIo {
        path: out.display().to_string(),
        source,
    };
    if out.exists() {
        if !out.join(DEMO_MARKER).exists() {
            return Err(AppError::DemoFolder(out.display().to_string()));
        }
        std::fs::remove_dir_all(out).map_err(io)?;
    }
    std::fs::create_dir_all(out).map_err(io)?;
    std::fs::write(out.join(DEMO_MARKER), "made by mvnobill demo\n").map_err(io)?;
    let months: [Month; 2] = [
        "2026-10".parse().expect("a valid month"),
        "2026-11".parse().expect("a valid month"),
    ];
    let generated = gen::generate(
        &GenOptions {
            month: months[0].first_day(),
            customers,
            cdrs,
            seed: 1,
            months: months.len() as u32,
        },
        out,
    )?;
    // Everything the MVNE will deliver waits in `staging/`; each month is
    // billed on the 2nd of the next at 21:00, with what reached the FTP
    // folder by 20:00.
    let ftp = out.join("ftp");
    let staging = out.join("staging");
    std::fs::rename(&ftp, &staging).map_err(io)?;
    std::fs::create_dir_all(&ftp).map_err(io)?;
    let config = std::path::absolute(out.join("mvnobill.toml")).map_err(io)?;
    let mut stages = Stages::open(&config)?;
    let _lock = StateLock::take(
        &stages.context.settings.state_dir,
        &crate::core::lock::command_line(),
        wait,
    )?;
    // Without Chromium the demo still shows the invoices, as HTML pages.
    let pdf_missing = render::chromium_available(&stages.context.settings)
        .err()
        .map(|e| e.to_string());
    let options = RenderOptions {
        pdf: pdf_missing.is_none(),
    };
    let lake = stages.context.settings.lake_url.clone();
    let (mut runs, mut invoices, mut invoice_lines) = (Vec::new(), Vec::new(), Vec::new());
    for month in months {
        let billing_day = month.next_first_day() + chrono::Days::new(1);
        deliver(
            &staging,
            &ftp,
            billing_day.and_hms_opt(20, 0, 0).expect("20:00"),
        )
        .map_err(io)?;
        runs.push(stages.run(month, options).await?);
        invoices.push(lake.join(&format!("invoices/month={month}/")));
        invoice_lines.push(lake.join(&format!("invoice_lines/month={month}/")));
    }
    // The first month again, now that its late CDRs are on the second's invoices.
    let late = stages.assure(months[0]).await?;
    Ok(DemoReport {
        generated,
        config: config.display().to_string(),
        runs,
        late,
        invoices,
        invoice_lines,
        pdf_missing,
    })
}

/// When the MVNE delivers a file, from its name (formats.md):
/// `RatedCDRs_YYYYMMDD_HHMMSS` at that second, `AccountStatus_YYYYMMDD_HH` at
/// that hour, `BilledCDRs_YYYYMM` (the month's statement, once its late CDRs
/// are in) on the 10th of the next month at 08:00; any other file (a SIM
/// order) from the start.
fn delivered_at(name: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::{NaiveDate, NaiveDateTime};
    let stem = name.strip_suffix(".csv")?;
    if let Some(at) = stem.strip_prefix("RatedCDRs_") {
        return NaiveDateTime::parse_from_str(at, "%Y%m%d_%H%M%S").ok();
    }
    if let Some(at) = stem.strip_prefix("AccountStatus_") {
        return NaiveDateTime::parse_from_str(&format!("{at}0000"), "%Y%m%d_%H%M%S").ok();
    }
    let month = stem.strip_prefix("BilledCDRs_")?;
    let first = NaiveDate::parse_from_str(&format!("{month}01"), "%Y%m%d").ok()?;
    let next = Month::of(first).next_first_day();
    (next + chrono::Days::new(9)).and_hms_opt(8, 0, 0)
}

/// Moves from `staging` into `ftp` (same sub-folders) every file delivered
/// by `until`.
fn deliver(staging: &Path, ftp: &Path, until: chrono::NaiveDateTime) -> std::io::Result<()> {
    for folder in std::fs::read_dir(staging)? {
        let folder = folder?;
        if !folder.file_type()?.is_dir() {
            continue;
        }
        let target = ftp.join(folder.file_name());
        std::fs::create_dir_all(&target)?;
        for file in std::fs::read_dir(folder.path())? {
            let file = file?;
            let name = file.file_name();
            let due = delivered_at(&name.to_string_lossy()).is_none_or(|at| at <= until);
            if due {
                std::fs::rename(file.path(), target.join(&name))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_too_small_names_the_setting_to_raise() {
        // What DataFusion returns when a merge cannot get its buffers: the
        // suite cannot make a run hit it every time (crash.rs).
        let exhausted = datafusion::error::DataFusionError::ResourcesExhausted(
            "Failed to allocate additional 10.0 MB for ExternalSorterMerge[0]".to_string(),
        );
        let line = error_line(&AppError::Rate(RateError::Query(exhausted)));
        assert_eq!(
            line,
            "not enough memory in [engine] memory_pool_mb for this work: raise it \
             (docs/PERFORMANCE.md): rating failed: Resources exhausted: Failed to \
             allocate additional 10.0 MB for ExternalSorterMerge[0]"
        );
        let other = AppError::Rate(RateError::Query(datafusion::error::DataFusionError::Plan(
            "no such table: cdrs".to_string(),
        )));
        assert_eq!(
            error_line(&other),
            "rating failed: Error during planning: no such table: cdrs"
        );
    }
}
