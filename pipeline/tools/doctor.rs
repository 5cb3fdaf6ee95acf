//! `doctor`: checks the invariants that billing must never break, on any
//! lake and its ledger, and says what is wrong. Read-only: it changes
//! nothing, so it can run at any time, after a crash or before a month is
//! handed to finance.
//!
//! The invariants (docs/RELIABILITY.md):
//! - numbering: each year's invoice numbers run 1, 2, 3, … with no gap and
//!   none twice;
//! - invoices: each issued month has in the lake exactly the invoices the
//!   ledger numbered, with the count and the TTC total the ledger recorded;
//! - invoice lines: each invoice's lines add up to its HT total, and HT +
//!   VAT = TTC;
//! - CDRs once: no `cdr_id` twice in `cdrs`;
//! - landed files: for each file the ledger records as landed, the lake
//!   holds exactly the rows it counted (new rows in its dataset, conflicting
//!   copies, quarantined rows), and rows in = landed + quarantined;
//! - not landed (a warning): files fetched and not landed yet;
//! - unfinished runs (a warning): a stage that started and never ended
//!   (killed), with no later run of it that finished; the next run redoes
//!   its work.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::lake::{datasets, Lake, LakeError};
use crate::core::ledger::{Ledger, LedgerError};
use crate::engine;
use crate::engine::sqlfiles;

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("doctor: reading the ledger {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("doctor: reading the lake: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

/// One invariant and what was found.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub summary: String,
    /// What is wrong, one line each (at most [`SHOWN`] in the text).
    pub details: Vec<String>,
}

const SHOWN: usize = 10;

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub lake: String,
    pub ledger: String,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    pub fn passed(&self) -> bool {
        self.errors == 0
    }
}

impl std::fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "doctor: lake {}, ledger {}", self.lake, self.ledger)?;
        for finding in &self.findings {
            let status = match finding.status {
                Status::Ok => "ok",
                Status::Warning => "warning",
                Status::Error => "ERROR",
            };
            writeln!(f, "  {status:<8} {:<16} {}", finding.check, finding.summary)?;
            for detail in finding.details.iter().take(SHOWN) {
                writeln!(f, "{:>28}{detail}", "")?;
            }
            if finding.details.len() > SHOWN {
                writeln!(
                    f,
                    "{:>28}… and {} more (--json lists them all)",
                    "",
                    finding.details.len() - SHOWN
                )?;
            }
        }
        write!(
            f,
            "doctor: {} errors, {} warnings",
            self.errors, self.warnings
        )
    }
}

impl Finding {
    /// Ok with `ok` when there is no problem, else an error with `wrong`.
    fn new(check: &'static str, problems: Vec<String>, ok: String, wrong: String) -> Finding {
        Finding::graded(check, Status::Error, problems, ok, wrong)
    }

    /// Ok when there is no problem, else a warning.
    fn warning(check: &'static str, problems: Vec<String>, ok: String, wrong: String) -> Finding {
        Finding::graded(check, Status::Warning, problems, ok, wrong)
    }

    fn graded(
        check: &'static str,
        status: Status,
        details: Vec<String>,
        ok: String,
        wrong: String,
    ) -> Finding {
        let (status, summary) = if details.is_empty() {
            (Status::Ok, ok)
        } else {
            (status, wrong)
        };
        Finding {
            check,
            status,
            summary,
            details,
        }
    }
}

pub async fn doctor(lake: &Lake, ledger: &Ledger) -> Result<DoctorReport, DoctorError> {
    let ctx = engine::session();
    let mut present = BTreeSet::new();
    for (name, partition) in datasets::ALL {
        if engine::register_dataset(&ctx, lake, name, *partition).await? {
            present.insert(*name);
        }
    }
    let ctx = Tables { ctx, present };
    let sqlite = sqlite_error(ledger);
    let findings = vec![
        numbering(ledger).map_err(sqlite)?,
        invoices(&ctx, ledger).await?,
        invoice_lines(&ctx).await?,
        cdrs_once(&ctx).await?,
        landed_files(&ctx, ledger).await?,
        not_landed(ledger)?,
        unfinished_runs(ledger).map_err(sqlite)?,
    ];
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    Ok(DoctorReport {
        lake: lake.url().as_str().to_string(),
        ledger: ledger_path(ledger),
        errors: count(Status::Error),
        warnings: count(Status::Warning),
        findings,
    })
}

/// The lake's datasets, those that have files.
struct Tables {
    ctx: datafusion::prelude::SessionContext,
    present: BTreeSet<&'static str>,
}

impl Tables {
    /// The rows of a query over `tables`, as text; none when one of the
    /// tables has no file yet.
    async fn rows(&self, tables: &[&str], sql: &str) -> Result<Vec<Vec<String>>, DoctorError> {
        if tables.iter().any(|t| !self.present.contains(t)) {
            return Ok(Vec::new());
        }
        Ok(engine::rows_strings(&self.ctx, sql).await?)
    }

    /// The rows of a SQL file of `sql/` over `tables`, with their column
    /// names; none when one of the tables has no file yet.
    async fn query(
        &self,
        tables: &[&str],
        file: &engine::SqlFile,
    ) -> Result<engine::Rows, DoctorError> {
        if tables.iter().any(|t| !self.present.contains(t)) {
            return Ok(engine::Rows::default());
        }
        Ok(engine::Rows::query(&self.ctx, file).await?)
    }
}

/// A ledger read's error, naming the ledger.
fn sqlite_error(ledger: &Ledger) -> impl Fn(rusqlite::Error) -> DoctorError + Copy + '_ {
    |source| DoctorError::Sqlite {
        path: ledger_path(ledger),
        source,
    }
}

fn ledger_path(ledger: &Ledger) -> String {
    ledger.connection().path().unwrap_or("").to_string()
}

/// Each year's sequence: 1 to its highest number, each once.
fn numbering(ledger: &Ledger) -> Result<Finding, rusqlite::Error> {
    let mut statement = ledger
        .connection()
        .prepare("SELECT year, seq, invoice_number FROM invoice_numbers ORDER BY year, seq")?;
    let numbers = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_year: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for (year, seq, number) in &numbers {
        by_year.entry(*year).or_default().push(*seq);
        if !names.insert(number.clone()) {
            problems.push(format!("{number} issued twice"));
        }
    }
    for (year, seqs) in &by_year {
        let mut expected = 1;
        for &seq in seqs {
            if seq < expected {
                problems.push(format!("{year}: sequence {seq} issued twice"));
                continue;
            }
            if seq > expected {
                problems.push(format!(
                    "{year}: sequence {expected}{} missing",
                    if seq - 1 > expected {
                        format!(" to {}", seq - 1)
                    } else {
                        String::new()
                    }
                ));
            }
            expected = seq + 1;
        }
    }
    let years: Vec<String> = by_year
        .iter()
        .map(|(year, seqs)| format!("{year}: 1 to {}", seqs.len()))
        .collect();
    Ok(Finding::new(
        "numbering",
        problems,
        if numbers.is_empty() {
            "no invoice issued yet".to_string()
        } else {
            format!(
                "{} numbers ({}), none missing, none twice",
                numbers.len(),
                years.join(", ")
            )
        },
        "invoice numbers are not continuous".to_string(),
    ))
}

/// The ledger's issued months and numbers against the lake's invoices.
async fn invoices(ctx: &Tables, ledger: &Ledger) -> Result<Finding, DoctorError> {
    let sqlite = sqlite_error(ledger);
    let connection = ledger.connection();
    let mut statement = connection
        .prepare("SELECT month, invoice_count, total_ttc FROM issued_months ORDER BY month")
        .map_err(sqlite)?;
    let months = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    let mut statement = connection
        .prepare("SELECT month, invoice_number FROM invoice_numbers")
        .map_err(sqlite)?;
    let mut numbered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(sqlite)?
    {
        let (month, number) = row.map_err(sqlite)?;
        numbered.entry(month).or_default().insert(number);
    }
    let rows = ctx
        .rows(
            &[datasets::INVOICES],
            "SELECT month, invoice_number, CAST(total_ttc AS VARCHAR) FROM invoices",
        )
        .await?;
    let mut in_lake: BTreeMap<String, Vec<(String, Decimal)>> = BTreeMap::new();
    for row in rows {
        let ttc = row[2].parse::<Decimal>().unwrap_or_default();
        in_lake
            .entry(row[0].clone())
            .or_default()
            .push((row[1].clone(), ttc));
    }
    let mut problems = Vec::new();
    let mut total = 0;
    for (month, count, total_ttc) in &months {
        let lake = in_lake.remove(month).unwrap_or_default();
        let ledger_numbers = numbered.remove(month).unwrap_or_default();
        let mut lake_numbers = BTreeSet::new();
        for (number, _) in &lake {
            if !lake_numbers.insert(number.clone()) {
                problems.push(format!("{month}: {number} twice in the lake"));
            }
        }
        for number in ledger_numbers.difference(&lake_numbers) {
            problems.push(format!("{month}: {number} numbered, not in the lake"));
        }
        for number in lake_numbers.difference(&ledger_numbers) {
            problems.push(format!("{month}: {number} in the lake, never numbered"));
        }
        if lake.len() as i64 != *count {
            problems.push(format!(
                "{month}: {} invoices in the lake, {count} recorded when issued",
                lake.len()
            ));
        }
        let sum: Decimal = lake.iter().map(|(_, ttc)| ttc).sum();
        if total_ttc.parse::<Decimal>().ok() != Some(sum) {
            problems.push(format!(
                "{month}: {sum} € TTC in the lake, {total_ttc} € recorded when issued"
            ));
        }
        total += lake.len();
    }
    for (month, lake) in &in_lake {
        problems.push(format!(
            "{month}: {} invoices in the lake, the month was never issued",
            lake.len()
        ));
    }
    Ok(Finding::new(
        "invoices",
        problems,
        format!(
            "{} issued months, {total} invoices: the lake holds what the ledger numbered",
            months.len()
        ),
        "the lake's invoices and the ledger disagree".to_string(),
    ))
}

/// Each invoice's lines against its totals.
async fn invoice_lines(ctx: &Tables) -> Result<Finding, DoctorError> {
    let table = ctx
        .query(
            &[datasets::INVOICES, datasets::INVOICE_LINES],
            &sqlfiles::INVOICE_TOTALS,
        )
        .await?;
    let rows = &table.rows;
    let mut problems = Vec::new();
    for row in rows {
        let get = |column| table.get(row, column);
        let number = get("invoice_number");
        let value = |column| get(column).parse::<Decimal>().ok();
        let (ht, vat, ttc, lines_ht) = (
            value("total_ht"),
            value("vat"),
            value("total_ttc"),
            value("lines_ht"),
        );
        if get("lines") == "0" {
            problems.push(format!("{number}: no invoice line"));
            continue;
        }
        if lines_ht != ht {
            problems.push(format!(
                "{number}: lines add up to {} € HT, the invoice says {} €",
                get("lines_ht"),
                get("total_ht")
            ));
        }
        if let (Some(ht), Some(vat), Some(ttc)) = (ht, vat, ttc) {
            if ht + vat != ttc {
                problems.push(format!("{number}: {ht} + {vat} VAT is not {ttc} € TTC"));
            }
        }
    }
    Ok(Finding::new(
        "invoice lines",
        problems,
        format!(
            "{} invoices: lines add up to HT, HT + VAT = TTC",
            rows.len()
        ),
        "invoices whose lines do not add up".to_string(),
    ))
}

async fn cdrs_once(ctx: &Tables) -> Result<Finding, DoctorError> {
    let twice = ctx
        .rows(
            &[datasets::CDRS],
            "SELECT cdr_id, COUNT(*) FROM cdrs GROUP BY cdr_id HAVING COUNT(*) > 1 ORDER BY cdr_id",
        )
        .await?;
    let total = ctx
        .rows(&[datasets::CDRS], "SELECT COUNT(*) FROM cdrs")
        .await?
        .first()
        .map(|r| r[0].clone())
        .unwrap_or_else(|| "0".to_string());
    Ok(Finding::new(
        "cdrs once",
        twice
            .iter()
            .map(|r| format!("cdr_id {} landed {} times", r[0], r[1]))
            .collect(),
        format!("{total} CDRs, each cdr_id once"),
        format!("{} CDRs landed more than once", twice.len()),
    ))
}

/// Where each upstream folder's rows land.
fn dataset_of(folder: &str) -> Option<&'static str> {
    match folder {
        "RatedCDRs" => Some(datasets::CDRS),
        "BilledCDRs" => Some(datasets::BILLED_CDRS),
        "AccountStatus" => Some(datasets::ACCOUNT_STATUS),
        "Cartes SIM" => Some(datasets::SIM_CARDS),
        _ => None,
    }
}

/// Rows per source file in a dataset.
async fn counts_by_file(
    ctx: &Tables,
    table: &'static str,
) -> Result<BTreeMap<String, u64>, DoctorError> {
    let rows = ctx
        .rows(
            &[table],
            &format!("SELECT source_file, COUNT(*) FROM {table} GROUP BY source_file"),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap_or(0)))
        .collect())
}

/// The ledger's counts of each landed file against the lake's rows.
async fn landed_files(ctx: &Tables, ledger: &Ledger) -> Result<Finding, DoctorError> {
    let sqlite = sqlite_error(ledger);
    let mut statement = ledger
        .connection()
        .prepare(
            "SELECT f.folder, f.raw_key, l.rows_in, l.landed, l.new_rows, l.duplicates, l.conflicts, l.quarantined
             FROM landed_files l JOIN fetched_files f ON f.id = l.fetched_id ORDER BY f.id",
        )
        .map_err(sqlite)?;
    let files = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                [
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, i64>(5)? as u64,
                    r.get::<_, i64>(6)? as u64,
                    r.get::<_, i64>(7)? as u64,
                ],
            ))
        })
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    let mut lake_rows: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for table in [
        datasets::CDRS,
        datasets::BILLED_CDRS,
        datasets::ACCOUNT_STATUS,
        datasets::SIM_CARDS,
        datasets::CDR_CONFLICTS,
        datasets::QUARANTINE,
    ] {
        lake_rows.insert(table, counts_by_file(ctx, table).await?);
    }
    let count = |table: &str, file: &str| {
        lake_rows
            .get(table)
            .and_then(|m| m.get(file))
            .copied()
            .unwrap_or(0)
    };
    let mut problems = Vec::new();
    let mut rows_in = 0;
    for (folder, raw_key, [input, landed, new_rows, duplicates, conflicts, quarantined]) in &files {
        let name = raw_key.rsplit('/').next().unwrap_or(raw_key);
        let shown = format!("{folder}/{name}");
        rows_in += input;
        if input != &(landed + quarantined) {
            problems.push(format!(
                "{shown}: {input} rows in, {landed} landed + {quarantined} quarantined"
            ));
        }
        if landed != &(new_rows + duplicates + conflicts) {
            problems.push(format!(
                "{shown}: {landed} landed, {new_rows} new + {duplicates} duplicates + {conflicts} conflicting"
            ));
        }
        if let Some(table) = dataset_of(folder) {
            let found = count(table, name);
            if found != *new_rows {
                problems.push(format!(
                    "{shown}: {found} rows in {table}, the ledger counted {new_rows} new"
                ));
            }
        }
        let found = count(datasets::CDR_CONFLICTS, name);
        if found != *conflicts {
            problems.push(format!(
                "{shown}: {found} rows in cdr_conflicts, the ledger counted {conflicts}"
            ));
        }
        let found = count(datasets::QUARANTINE, name);
        if found != *quarantined {
            problems.push(format!(
                "{shown}: {found} rows in quarantine, the ledger counted {quarantined}"
            ));
        }
    }
    Ok(Finding::new(
        "landed files",
        problems,
        format!(
            "{} files, {rows_in} rows in: the lake holds what the ledger counted of each",
            files.len()
        ),
        "the lake's rows and the ledger's counts disagree".to_string(),
    ))
}

fn not_landed(ledger: &Ledger) -> Result<Finding, DoctorError> {
    let files = ledger.unlanded_files()?;
    let landed_folders = crate::mvne::raw::LANDED_FOLDERS;
    let waiting: Vec<String> = files
        .iter()
        .filter(|f| landed_folders.contains(&f.folder.as_str()))
        .map(|f| format!("{}/{}", f.folder, f.name))
        .collect();
    let wrong = format!(
        "{} files fetched, not landed yet: run `mvnobill land`",
        waiting.len()
    );
    Ok(Finding::warning(
        "not landed",
        waiting,
        "every fetched file is landed".to_string(),
        wrong,
    ))
}

/// Stage runs that never ended, unless the same stage (and month) finished
/// later.
fn unfinished_runs(ledger: &Ledger) -> Result<Finding, rusqlite::Error> {
    let mut statement = ledger.connection().prepare(
        "SELECT r.stage, COALESCE(r.month, ''), r.started_at FROM runs r
         WHERE r.ended_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM runs later
                           WHERE later.stage = r.stage
                             AND COALESCE(later.month, '') = COALESCE(r.month, '')
                             AND later.id > r.id AND later.status = 'ok')
         ORDER BY r.id",
    )?;
    let open = statement
        .query_map([], |r| {
            Ok(format!(
                "{} {}started {}",
                r.get::<_, String>(0)?,
                match r.get::<_, String>(1)? {
                    month if month.is_empty() => String::new(),
                    month => format!("{month} "),
                },
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let wrong = format!(
        "{} stage runs never ended (killed, or running now): the next run of each redoes its work",
        open.len()
    );
    Ok(Finding::warning(
        "unfinished runs",
        open,
        "every stage that started has ended, or ran again to its end".to_string(),
        wrong,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An invoice without lines, one whose lines do not add up, one whose
    /// HT + VAT is not its TTC, and one that is right.
    #[tokio::test]
    async fn invoice_lines_against_their_totals() {
        let ctx = engine::session();
        for sql in [
            "CREATE VIEW invoices AS
             SELECT column1 AS month, column2 AS invoice_number,
                    CAST(column3 AS DECIMAL(12, 2)) AS total_ht,
                    CAST(column4 AS DECIMAL(12, 2)) AS vat,
                    CAST(column5 AS DECIMAL(12, 2)) AS total_ttc
             FROM (VALUES ('2026-10', 'EXM-2026-000001', '10.00', '2.00', '12.00'),
                          ('2026-10', 'EXM-2026-000002', '10.00', '2.00', '12.00'),
                          ('2026-10', 'EXM-2026-000003', '10.00', '2.00', '12.01'),
                          ('2026-10', 'EXM-2026-000004', '5.00', '1.00', '6.00'))",
            "CREATE VIEW invoice_lines AS
             SELECT column1 AS month, column2 AS invoice_number,
                    CAST(column3 AS DECIMAL(12, 2)) AS amount_ht
             FROM (VALUES ('2026-10', 'EXM-2026-000001', '4.00'),
                          ('2026-10', 'EXM-2026-000001', '6.00'),
                          ('2026-10', 'EXM-2026-000002', '9.99'),
                          ('2026-10', 'EXM-2026-000003', '10.00'))",
        ] {
            ctx.sql(sql).await.unwrap();
        }
        let tables = Tables {
            ctx,
            present: [datasets::INVOICES, datasets::INVOICE_LINES].into(),
        };
        let finding = invoice_lines(&tables).await.unwrap();
        assert_eq!(
            finding.details,
            [
                "EXM-2026-000002: lines add up to 9.99 € HT, the invoice says 10.00 €",
                "EXM-2026-000003: 10.00 + 2.00 VAT is not 12.01 € TTC",
                "EXM-2026-000004: no invoice line",
            ]
        );
        assert_eq!(finding.summary, "invoices whose lines do not add up");
    }
}
