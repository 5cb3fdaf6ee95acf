//! Command-line types (clap). Kept apart from the resolved settings: `app`
//! turns these into calls of the stages.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::core::month::Month;

/// mvnobill: the billing pipeline of an MVNO. Files from the MVNE in,
/// invoices out, exact to the cent.
#[derive(Debug, Parser)]
#[command(name = "mvnobill", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "mvnobill.toml"
    )]
    pub config: PathBuf,
    /// Print the run report as JSON on stdout (logs stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Logs on stderr as text, or as one JSON object a line (for a
    /// scheduler's log collector; stage events at info level by default).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "MVNOBILL_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// If another mvnobill command is writing the same lake, wait for it to
    /// end instead of failing at once (docs/RELIABILITY.md).
    #[arg(long, global = true)]
    pub wait: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch new upstream files from the source into the lake's raw zone.
    Sync,
    /// Turn raw CSV files into Parquet datasets; quarantine bad rows.
    Land,
    /// Rate the CDRs landed since the last run against the reference data in
    /// force: every open month, or the one given.
    Rate {
        /// The billing month, YYYY-MM (default: every month not issued yet
        /// with CDRs landed).
        #[arg(long)]
        month: Option<Month>,
        /// Rate the whole month again from scratch (needs --month).
        #[arg(long, requires = "month")]
        full: bool,
    },
    /// Build, number and issue the month's invoices (closes the month), with
    /// the regularisations of earlier months whose inputs changed.
    Bill {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
        /// Compute the month as the issue would and issue nothing: write
        /// `drafts/month=M/` and compare each customer with the month before.
        #[arg(long)]
        draft: bool,
    },
    /// Write the month's margin, sales journal (Parquet and CSV) and B2C
    /// e-reporting totals, from its issued invoices.
    Finance {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
    },
    /// Write each issued invoice of the month as HTML and PDF (Chromium).
    Render {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
        /// Write the HTML pages only, no PDF (no Chromium needed).
        #[arg(long)]
        html_only: bool,
        /// The documents of the month's draft (`bill --draft`), marked
        /// BROUILLON, in documents/YYYY-MM/drafts/.
        #[arg(long)]
        draft: bool,
    },
    /// Write the month's SEPA direct-debit file in the lake, upload the PDFs
    /// to Factures/Clients/YYYY-MM/ on the source and mail each customer
    /// that its invoice is available ([mail]).
    Publish {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
    },
    /// Write the month's SEPA direct-debit file (pain.008.001.02) to
    /// <lake>/documents/YYYY-MM/sepa-YYYY-MM.xml (publish writes it too).
    Sepa {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
        /// The schema version: pain.008.001.08 is written beside, as
        /// sepa-YYYY-MM.pain.008.001.08.xml.
        #[arg(long, value_enum, default_value = "pain.008.001.02")]
        format: SepaFormat,
    },
    /// Revenue assurance: the MVNE's billing against our CDRs, lines active
    /// or terminated at the MVNE against the subscriptions, leakage.
    Assure {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
    },
    /// Re-rate the month's usage under each grid and each competitor offer
    /// of benchmark.csv, per customer kind and plan: the `whatif` dataset
    /// and a chart in documents/YYYY-MM/ (docs/WHATIF.md). Issues nothing.
    Whatif {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: Month,
    },
    /// sync, land, rate, bill, finance, render, publish and assure, in order.
    Run {
        /// The billing month, YYYY-MM.
        #[arg(long)]
        month: Month,
        /// Render the HTML pages only, no PDF (no Chromium needed), and so
        /// publish nothing (assure still runs).
        #[arg(long)]
        html_only: bool,
    },
    /// Issue a credit note (avoir) on an issued invoice, whole or partial:
    /// its own number, its HTML and PDF (docs/CREDIT_NOTES.md).
    Credit {
        /// The invoice to credit, e.g. EXM-2026-000015.
        #[arg(long, value_name = "NUMBER")]
        invoice: String,
        /// Why (printed on the note and kept in the ledger).
        #[arg(long)]
        reason: String,
        /// Credit this amount HT in euros (e.g. 12.50) instead of all that
        /// remains creditable on the invoice.
        #[arg(long, value_name = "EUR", value_parser = crate::stages::credit::parse_amount_ht)]
        amount_ht: Option<rust_decimal::Decimal>,
        /// Issue date, YYYY-MM-DD (default: today in Europe/Paris).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<chrono::NaiveDate>,
        /// Issue a note even if the same one (invoice, reason, amount) exists.
        #[arg(long)]
        again: bool,
        /// Write the HTML page only, no PDF (no Chromium needed).
        #[arg(long)]
        html_only: bool,
    },
    /// The bank's files: transfers received, direct debits returned
    /// (account.md §7; docs/RECEIVABLES.md).
    Payments {
        #[command(subcommand)]
        command: PaymentsCommand,
    },
    /// Remind the customers of their overdue amounts (daily): each level of
    /// [dunning] levels once per amount, by mail; at the last level, the
    /// lines to suspend in documents/suspensions-YYYY-MM-DD.csv; and the
    /// day's aged balance (docs/RECEIVABLES.md).
    Dunning {
        /// The day to run as, YYYY-MM-DD (default: today in Europe/Paris).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<chrono::NaiveDate>,
    },
    /// The aged balance: each customer's unpaid amounts by days past due,
    /// printed and written to aged_balance/as_of=YYYY-MM-DD/.
    Receivables {
        /// As of this day, YYYY-MM-DD (default: today in Europe/Paris).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<chrono::NaiveDate>,
    },
    /// A line's consumption to date for the support desk: each allowance
    /// pool's allowance, consumed, remaining, percentage used and overage
    /// so far, from the consumption dataset rate writes.
    Usage {
        /// The mobile number: 33612345678, 0612345678 or +33612345678.
        msisdn: String,
        /// The month, YYYY-MM (default: the latest month holding the line).
        #[arg(long)]
        month: Option<Month>,
    },
    /// SQL over the lake's datasets and the reference tables; without a
    /// statement, an interactive prompt with history.
    Query {
        /// The SQL statement, e.g. "SELECT * FROM invoices". None: the prompt.
        sql: Option<String>,
        /// Output format (parquet: a file, with --out).
        #[arg(long, value_enum, default_value = "table")]
        format: QueryFormat,
        /// Write the result to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// SIM cards: the support desk's look-up of a card's PUK codes.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Check the integrator's set-up dossier: sales tables, logo and banner,
    /// integrator.toml, and the MVNE's copy of the tables (exit 1 when an
    /// item blocks invoicing; docs/DOSSIER.md).
    Check,
    /// Check the invariants of the lake and the ledger (continuous invoice
    /// numbers, invoices as numbered, every CDR landed once, the ledger's
    /// counts) and say what is wrong; changes nothing. Exit 1 on an error.
    Doctor,
    /// RIO (relevé d'identité opérateur) checks before porting orders.
    Rio {
        #[command(subcommand)]
        command: RioCommand,
    },
    /// Add up durations; what a call that long is billed under each grid.
    ///
    /// Durations are written 1h02m05s, 2m, 45s, 90 (seconds), 01:02:05 or
    /// 01:30. With a configuration file, a call of the total's length is
    /// billed under the voice increments of each grid (rating.md §3).
    Duration {
        /// The durations: 1h02m05s, 2m, 45s, 90 (seconds), 01:02:05, 01:30.
        #[arg(required = true, value_name = "DURATION")]
        durations: Vec<String>,
        /// The day whose grid versions apply, YYYY-MM-DD (default: today in
        /// Europe/Paris).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<chrono::NaiveDate>,
    },
    /// Write a synthetic integrator and a month (or more) of MVNE files.
    Gen {
        /// Folder to write into (created).
        #[arg(long)]
        out: PathBuf,
        /// The (first) month to generate, YYYY-MM.
        #[arg(long, default_value = "2026-10")]
        month: Month,
        /// Consecutive months to generate from --month, with the same
        /// customers and tables; above 1, half of each month's roaming CDRs
        /// come in a late file 4 to 6 days after the month.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=120))]
        months: u32,
        /// Number of customer accounts.
        #[arg(long, default_value_t = 200)]
        customers: u32,
        /// Approximate number of CDRs in each month.
        #[arg(long, default_value_t = 50_000)]
        cdrs: u64,
        /// Random seed: the same seed gives the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Generate two synthetic months, deliver them as the MVNE would and bill
    /// both: the second carries the first's late roaming CDRs.
    Demo {
        /// Folder for the demo (replaced if it holds a previous demo).
        #[arg(long, default_value = "mvnobill-demo")]
        out: PathBuf,
        /// Number of customer accounts.
        #[arg(long, default_value_t = 200)]
        customers: u32,
        /// Approximate number of CDRs in each month.
        #[arg(long, default_value_t = 50_000)]
        cdrs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// Import a camt.054 / camt.053 / camt.052 notification or statement,
    /// or a pain.002 status report: each bank entry once, matched to an
    /// invoice or a customer, or kept as unmatched.
    Import {
        /// The bank's XML file.
        file: PathBuf,
    },
    /// List the bank entries that matched nothing, kept in the ledger.
    Unmatched,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Print a SIM card's PUK codes, found by its mobile number or ICCID in
    /// the private store `land` keeps (the look-up is recorded, the codes
    /// are not).
    Puk {
        /// 0612345678, +33612345678 or the ICCID (19 or 20 digits).
        card: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RioCommand {
    /// Check that a RIO matches a mobile number (exit 1 if not), or every
    /// row of a file of porting orders (--file, columns rio and msisdn).
    Check {
        /// The 12-character RIO, e.g. 02P1234564NH.
        #[arg(required_unless_present = "file", requires = "msisdn")]
        rio: Option<String>,
        /// The mobile number: 0612345678, +33612345678 or 33612345678.
        #[arg(required_unless_present = "file")]
        msisdn: Option<String>,
        /// A CSV file with a header naming the columns rio and msisdn,
        /// separated by ; or ,.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["rio", "msisdn"])]
        file: Option<PathBuf>,
    },
}

/// `query --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// An aligned table.
    Table,
    /// CSV, `,`-separated, with a header.
    Csv,
    /// One JSON object a line.
    Json,
    /// A Parquet file (zstd), with `--out`.
    Parquet,
}

/// `sepa --format`: the schema version of the direct-debit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SepaFormat {
    #[value(name = "pain.008.001.02")]
    Pain00800102,
    #[value(name = "pain.008.001.08")]
    Pain00800108,
}
