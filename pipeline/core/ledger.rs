//! The ledger: an embedded SQLite database in the state folder that records
//! what the pipeline has done, so that every stage can be re-run safely.
//!
//! - `fetched_files`: each upstream file fetched (folder, name, size, sha256,
//!   where its bytes sit in the raw zone). A re-delivered identical file is a
//!   no-op; the same name with other bytes is kept as a new version.
//! - `landed_files`: each raw file landed, with its row counts.
//! - `runs`: each stage run (stage, month, start, end, status, JSON report).
//! - `invoice_numbers` and `issued_months`: the invoice numbering and which
//!   months are closed.
//! - `remote_files`: each (folder, name, size, modification time) listed by
//!   an FTP source and fetched, so that a later sync skips it without
//!   downloading it again.
//! - `published_files`: each invoice document published, with its size and
//!   sha256, so that a re-run of `publish` uploads nothing twice.
//! - `billed_charges`: each one-off charge billed, with its month and the
//!   hash of its row, so that a charge is billed once, ever.
//!
//! Writes that must agree go in one transaction. The database is the only
//! local state: the lake itself can live on an object store.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the state folder {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Ledger {
    connection: Connection,
    path: PathBuf,
}

/// A file fetched from the source and kept in the raw zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    pub id: i64,
    pub folder: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Key of the copy in the raw zone, relative to the lake or state folder.
    pub raw_key: String,
    pub version: i64,
}

/// Counts of one landed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LandedCounts {
    pub rows_in: u64,
    pub landed: u64,
    pub new_rows: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub quarantined: u64,
}

/// One issued invoice number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNumber {
    pub customer_id: String,
    pub invoice_number: String,
}

/// The whole ledger: every table any stage keeps, created on open.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fetched_files (
    id INTEGER PRIMARY KEY,
    folder TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    raw_key TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    fetched_at TEXT NOT NULL,
    UNIQUE (folder, name, sha256)
);
CREATE TABLE IF NOT EXISTS landed_files (
    fetched_id INTEGER PRIMARY KEY REFERENCES fetched_files(id),
    landed_at TEXT NOT NULL,
    rows_in INTEGER NOT NULL,
    landed INTEGER NOT NULL,
    new_rows INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    conflicts INTEGER NOT NULL,
    quarantined INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,
    month TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,
    report TEXT
);
CREATE TABLE IF NOT EXISTS issued_months (
    month TEXT PRIMARY KEY,
    issued_at TEXT NOT NULL,
    invoice_count INTEGER NOT NULL,
    total_ttc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS remote_files (
    source TEXT NOT NULL,
    folder TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (source, folder, name, size, modified)
);
CREATE TABLE IF NOT EXISTS published_files (
    target TEXT NOT NULL,
    month TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    remote_path TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (target, month, name)
);
CREATE TABLE IF NOT EXISTS puk_lookups (
    at TEXT NOT NULL,
    card TEXT NOT NULL,
    user TEXT NOT NULL,
    found INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS invoice_numbers (
    invoice_number TEXT PRIMARY KEY,
    year INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    month TEXT NOT NULL REFERENCES issued_months(month),
    customer_id TEXT NOT NULL,
    UNIQUE (year, seq),
    UNIQUE (month, customer_id)
);
-- The SEPA mandates each creditor identifier collected, and the first
-- month it did: FRST then RCUR (sepa).
CREATE TABLE IF NOT EXISTS sepa_mandates (
    ics TEXT NOT NULL,
    rum TEXT NOT NULL,
    first_month TEXT NOT NULL,
    first_invoice TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (ics, rum)
);
-- The notices mailed (mail).
CREATE TABLE IF NOT EXISTS mails_sent (
    month TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (month, invoice_number)
);
-- The credit notes (credit): one row per note, amounts as exact decimal text.
-- `requested_ht` is `--amount-ht` as asked, NULL for 'what remains': with
-- the invoice and the reason, it is what makes a re-run the same request.
CREATE TABLE IF NOT EXISTS credit_notes (
    credit_note_number TEXT PRIMARY KEY,
    year INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    invoice_number TEXT NOT NULL REFERENCES invoice_numbers(invoice_number),
    invoice_month TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    customer_kind TEXT NOT NULL,
    issue_date TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_ht TEXT,
    vat_rate TEXT NOT NULL,
    total_ht TEXT NOT NULL,
    vat TEXT NOT NULL,
    total_ttc TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    UNIQUE (year, seq)
);
CREATE INDEX IF NOT EXISTS credit_notes_invoice ON credit_notes (invoice_number);
-- Each credit note's VAT per category and rate (rating.md §6): the base
-- credited (HT, positive), its VAT, the part of the base that credits
-- handsets, and the exemption text of the category (NULL for S). A note
-- recorded before this table has no row: its `vat_rate` and `vat` are its
-- one rate's.
CREATE TABLE IF NOT EXISTS credit_note_vat (
    credit_note_number TEXT NOT NULL REFERENCES credit_notes(credit_note_number),
    vat_category TEXT NOT NULL,
    vat_rate TEXT NOT NULL,
    vat_exemption TEXT,
    base_ht TEXT NOT NULL,
    vat TEXT NOT NULL,
    equipment_ht TEXT NOT NULL,
    PRIMARY KEY (credit_note_number, vat_category, vat_rate)
);
-- The inputs each issued month was last billed from (account.md §4): a
-- digest of its CDR files, the status snapshots and the reference tables.
-- NULL: not known (the month just issued), so the next issue bills it again.
CREATE TABLE IF NOT EXISTS month_inputs (
    month TEXT PRIMARY KEY REFERENCES issued_months(month),
    fingerprint TEXT,
    billed_at TEXT NOT NULL
);
-- The credit notes a regularisation issued (account.md §4): with the
-- invoices of `issue_month`, for the negative differences of `period`.
-- The one-off charges billed (account.md §5): each charge_id once, ever,
-- with the month whose invoice carries it and the SHA-256 of its row as
-- billed (reference::charge_hash), so that a row changed later is seen.
CREATE TABLE IF NOT EXISTS billed_charges (
    charge_id TEXT PRIMARY KEY,
    month TEXT NOT NULL REFERENCES issued_months(month),
    content_hash TEXT NOT NULL
);
-- The customer account (account.md §7): append-only, each entry once by
-- (kind, reference). `amount` is signed exact decimal text: what the
-- customer owes grows with a positive amount. Kinds: INVOICE (+TTC, dated
-- its issue date, due on `due_date`), CREDIT_NOTE (-TTC), DIRECT_DEBIT
-- (-amount, dated its collection date, `document` the invoice it collects,
-- reference its EndToEndId), TRANSFER (-amount received, reference the
-- bank's), RETURN (+amount, dated the day the bank reported it, `document`
-- the EndToEndId of the debit returned, `reason` its ISO code), REFUND
-- (+amount paid back by transfer, dated its execution date).
CREATE TABLE IF NOT EXISTS account_entries (
    id INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL,
    entry_date TEXT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    amount TEXT NOT NULL,
    due_date TEXT,
    document TEXT,
    reason TEXT,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (kind, reference)
);
CREATE INDEX IF NOT EXISTS account_entries_customer ON account_entries (customer_id, entry_date);
-- Every entry of every bank file imported (payments import), matched or
-- not, once by the bank's reference: an unmatched one stays here, listed.
CREATE TABLE IF NOT EXISTS bank_entries (
    reference TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    message TEXT NOT NULL,
    kind TEXT NOT NULL,
    booking_date TEXT NOT NULL,
    amount TEXT NOT NULL,
    reason TEXT,
    remittance TEXT,
    debtor_name TEXT,
    customer_id TEXT,
    document TEXT,
    status TEXT NOT NULL,
    imported_at TEXT NOT NULL
);
-- Customers moved to transfer by a returned debit whose account or mandate
-- is gone (account.md §7), until customers.csv records another mandate
-- than `mandate_rum` (or the same one signed after `since`).
CREATE TABLE IF NOT EXISTS transfer_customers (
    customer_id TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    reason TEXT NOT NULL,
    mandate_rum TEXT NOT NULL,
    reference TEXT NOT NULL
);
-- Returned debits presented again (AM04, MS03) through a later debit:
-- each once.
CREATE TABLE IF NOT EXISTS representations (
    return_reference TEXT PRIMARY KEY,
    debit_reference TEXT NOT NULL,
    amount TEXT NOT NULL
);
-- One-off charges the pipeline itself raises (the return fee of
-- account.md §7), billed like charges.csv's rows (account.md §5).
CREATE TABLE IF NOT EXISTS account_charges (
    charge_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    charge_date TEXT NOT NULL,
    label TEXT NOT NULL,
    amount_ht TEXT NOT NULL,
    reference TEXT NOT NULL
);
-- The reminders sent (dunning): each level once per overdue amount
-- (`reference`: the account entry that asked for it).
CREATE TABLE IF NOT EXISTS dunning_notices (
    reference TEXT NOT NULL,
    level INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    days_overdue INTEGER NOT NULL,
    amount TEXT NOT NULL,
    notice_date TEXT NOT NULL,
    recipient TEXT,
    message_id TEXT,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (reference, level)
);
-- The consumption alerts (alerts): each threshold of `[alerts] thresholds`
-- once per allowance pool of a month (the line, the start of its plan's
-- pool, the group: consumption's key), ever. `status`: pending (to mail,
-- again at the next rate when the relay could not be reached), sent
-- (`recipient`, `message_id`), skipped (crossed with a higher threshold in
-- the same rate, never mailed), refused (`reason`: the relay's answer),
-- no_address (none in customers.csv). `allowance` and `consumed`: the
-- pool's, in billed units, when the threshold was crossed.
CREATE TABLE IF NOT EXISTS alert_notices (
    month TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    pool_start TEXT NOT NULL,
    allowance_group TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    plan_code TEXT NOT NULL,
    allowance INTEGER NOT NULL,
    consumed INTEGER NOT NULL,
    status TEXT NOT NULL,
    recipient TEXT,
    message_id TEXT,
    reason TEXT,
    recorded_at TEXT NOT NULL,
    sent_at TEXT,
    PRIMARY KEY (month, msisdn, pool_start, allowance_group, threshold)
);
-- The IBAN each mandate was last collected on, and when (account.md §8):
-- a change under the same RUM is sent once with its amendment; a mandate
-- unused for 36 months has lapsed. The ledger is private to the state
-- folder, like the SEPA files that carry the same IBANs.
CREATE TABLE IF NOT EXISTS mandate_accounts (
    ics TEXT NOT NULL,
    rum TEXT NOT NULL,
    iban TEXT NOT NULL,
    bic TEXT,
    last_collection TEXT NOT NULL,
    PRIMARY KEY (ics, rum)
);
-- Each payment a SEPA file orders (sepa, account.md §7-8): the direct
-- debits of a month's pain.008 and the refunds of its pain.001, as written
-- the first time, so that a re-run writes the same file. `amendment`: the
-- original IBAN, or SMNDA, when the mandate's account changed.
CREATE TABLE IF NOT EXISTS sepa_payments (
    end_to_end_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    month TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    invoice_number TEXT,
    issue_date TEXT,
    amount TEXT NOT NULL,
    payment_date TEXT NOT NULL,
    name TEXT NOT NULL,
    iban TEXT NOT NULL,
    bic TEXT,
    rum TEXT,
    mandate_date TEXT,
    amendment TEXT,
    recorded_at TEXT NOT NULL
);
-- The months whose SEPA payments were worked out (sepa), with or without
-- a payment: a later run reads sepa_payments, never works them out again.
CREATE TABLE IF NOT EXISTS sepa_months (
    month TEXT PRIMARY KEY,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS regularisation_notes (
    credit_note_number TEXT PRIMARY KEY REFERENCES credit_notes(credit_note_number),
    issue_month TEXT NOT NULL REFERENCES issued_months(month),
    period TEXT NOT NULL
);
";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Ledger {
    /// Opens (creating if needed) `<state_dir>/ledger.sqlite`.
    pub fn open(state_dir: &Path) -> Result<Ledger, LedgerError> {
        create_private_dir(state_dir)?;
        let path = state_dir.join("ledger.sqlite");
        let err = |source| LedgerError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let connection = Connection::open(&path).map_err(err)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        connection
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(err)?;
        connection.execute_batch(SCHEMA).map_err(err)?;
        Ok(Ledger { connection, path })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The fetched file with this folder, name and checksum, if any.
    /// The SQLite connection, for a stage that keeps its own table in the
    /// ledger (every table is created here, in `SCHEMA`).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn find_fetched(
        &self,
        folder: &str,
        name: &str,
        sha256: &str,
    ) -> Result<Option<FetchedFile>, LedgerError> {
        self.connection
            .query_row(
                "SELECT id, folder, name, size, sha256, raw_key, version FROM fetched_files
                 WHERE folder = ?1 AND name = ?2 AND sha256 = ?3",
                params![folder, name, sha256],
                row_to_fetched,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// How many versions of this name were fetched already.
    pub fn version_count(&self, folder: &str, name: &str) -> Result<i64, LedgerError> {
        self.connection
            .query_row(
                "SELECT COUNT(*) FROM fetched_files WHERE folder = ?1 AND name = ?2",
                params![folder, name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    pub fn record_fetched(&self, file: &FetchedFile) -> Result<i64, LedgerError> {
        self.connection
            .execute(
                "INSERT INTO fetched_files (folder, name, size, sha256, raw_key, version, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![file.folder, file.name, file.size as i64, file.sha256, file.raw_key, file.version, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Fetched files not landed yet, in landing order: by folder, then name,
    /// then version.
    pub fn unlanded_files(&self) -> Result<Vec<FetchedFile>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, folder, name, size, sha256, raw_key, version FROM fetched_files f
                 WHERE NOT EXISTS (SELECT 1 FROM landed_files l WHERE l.fetched_id = f.id)
                 ORDER BY folder, name, version",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([], row_to_fetched)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The stored names (the last part of the raw key) of the files of
    /// `folder` recorded as landed.
    pub fn landed_names(
        &self,
        folder: &str,
    ) -> Result<std::collections::BTreeSet<String>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT f.raw_key FROM fetched_files f JOIN landed_files l ON l.fetched_id = f.id
                 WHERE f.folder = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([folder], |row| row.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|key| {
            key.map(|key| key.rsplit('/').next().unwrap_or(&key).to_string())
                .map_err(|e| self.err(e))
        })
        .collect()
    }

    pub fn record_landed(&self, fetched_id: i64, counts: &LandedCounts) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO landed_files
                 (fetched_id, landed_at, rows_in, landed, new_rows, duplicates, conflicts, quarantined)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    fetched_id,
                    now(),
                    counts.rows_in as i64,
                    counts.landed as i64,
                    counts.new_rows as i64,
                    counts.duplicates as i64,
                    counts.conflicts as i64,
                    counts.quarantined as i64
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records the start of a stage run; returns its id.
    pub fn start_run(&self, stage: &str, month: Option<&str>) -> Result<i64, LedgerError> {
        self.connection
            .execute(
                "INSERT INTO runs (stage, month, started_at, status) VALUES (?1, ?2, ?3, 'running')",
                params![stage, month, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.connection.last_insert_rowid())
    }

    pub fn end_run(&self, run_id: i64, status: &str, report: &str) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "UPDATE runs SET ended_at = ?2, status = ?3, report = ?4 WHERE id = ?1",
                params![run_id, now(), status, report],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Whether invoices of this month were issued (the month is closed).
    /// A look-up of a SIM card's PUK codes (`sim puk`): when, which card
    /// (number or ICCID), who, and whether it was found; never the codes.
    pub fn record_puk_lookup(
        &self,
        card: &str,
        user: &str,
        found: bool,
    ) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "INSERT INTO puk_lookups (at, card, user, found) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![chrono::Utc::now().to_rfc3339(), card, user, found],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn is_issued(&self, month: &str) -> Result<bool, LedgerError> {
        self.connection
            .query_row(
                "SELECT COUNT(*) FROM issued_months WHERE month = ?1",
                params![month],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The highest sequence number issued in a year (0 if none).
    pub fn last_sequence(&self, year: i32) -> Result<i64, LedgerError> {
        self.connection
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM invoice_numbers WHERE year = ?1",
                params![year],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The issued months, oldest first.
    pub fn issued_months(&self) -> Result<Vec<String>, LedgerError> {
        let mut statement = self
            .connection
            .prepare("SELECT month FROM issued_months ORDER BY month")
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))
    }

    /// The digest of the inputs an issued month was last billed from.
    pub fn month_fingerprint(&self, month: &str) -> Result<Option<String>, LedgerError> {
        self.connection
            .query_row(
                "SELECT fingerprint FROM month_inputs WHERE month = ?1",
                params![month],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// When an issued month was last billed again for a regularisation
    /// (None: never since its issue).
    pub fn month_regularised_at(&self, month: &str) -> Result<Option<String>, LedgerError> {
        self.connection
            .query_row(
                "SELECT billed_at FROM month_inputs WHERE month = ?1 AND fingerprint IS NOT NULL",
                params![month],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// When each file of a folder last landed, by its name.
    pub fn landed_at(&self, folder: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT f.name, MAX(l.landed_at) FROM fetched_files f
                 JOIN landed_files l ON l.fetched_id = f.id
                 WHERE f.folder = ?1 GROUP BY f.name ORDER BY f.name",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![folder], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The highest credit note sequence number of a year (0 if none).
    pub fn last_credit_sequence(&self, year: i32) -> Result<i64, LedgerError> {
        self.connection
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM credit_notes WHERE year = ?1",
                params![year],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Closes a month: records its numbers, the credit notes of its
    /// regularisations and the inputs of the months billed again, in one
    /// transaction.
    pub fn issue_month(
        &mut self,
        month: &str,
        year: i32,
        numbers: &[(i64, IssuedNumber)],
        total_ttc: &str,
        issue: &MonthIssue,
    ) -> Result<(), LedgerError> {
        let path = self.path.display().to_string();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.connection.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO issued_months (month, issued_at, invoice_count, total_ttc) VALUES (?1, ?2, ?3, ?4)",
            params![month, now(), numbers.len() as i64, total_ttc],
        )
        .map_err(err)?;
        for (seq, number) in numbers {
            tx.execute(
                "INSERT INTO invoice_numbers (invoice_number, year, seq, month, customer_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![number.invoice_number, year, seq, month, number.customer_id],
            )
            .map_err(err)?;
        }
        for note in &issue.notes {
            tx.execute(
                "INSERT INTO credit_notes (credit_note_number, year, seq, invoice_number, invoice_month,
                     customer_id, customer_kind, issue_date, reason, requested_ht, vat_rate, total_ht,
                     vat, total_ttc, issued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    note.number,
                    note.year,
                    note.seq,
                    note.invoice_number,
                    note.invoice_month,
                    note.customer_id,
                    note.customer_kind,
                    note.issue_date,
                    note.reason,
                    note.total_ht,
                    note.vat_rate,
                    note.total_ht,
                    note.vat,
                    note.total_ttc,
                    now()
                ],
            )
            .map_err(err)?;
            for part in &note.vat_breakdown {
                insert_note_vat(&tx, &note.number, part).map_err(err)?;
            }
            tx.execute(
                "INSERT INTO regularisation_notes (credit_note_number, issue_month, period) VALUES (?1, ?2, ?3)",
                params![note.number, month, note.period],
            )
            .map_err(err)?;
        }
        tx.execute(
            "INSERT INTO month_inputs (month, fingerprint, billed_at) VALUES (?1, NULL, ?2)",
            params![month, now()],
        )
        .map_err(err)?;
        for entry in &issue.entries {
            insert_entry(&tx, entry).map_err(err)?;
        }
        for charge in &issue.charges {
            tx.execute(
                "INSERT INTO billed_charges (charge_id, month, content_hash) VALUES (?1, ?2, ?3)",
                params![charge.charge_id, month, charge.content_hash],
            )
            .map_err(err)?;
        }
        for (earlier, fingerprint) in &issue.fingerprints {
            tx.execute(
                "INSERT INTO month_inputs (month, fingerprint, billed_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (month) DO UPDATE
                 SET fingerprint = excluded.fingerprint, billed_at = excluded.billed_at",
                params![earlier, fingerprint, now()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Every charge billed so far (account.md §5), by charge_id.
    pub fn billed_charges(&self) -> Result<Vec<BilledCharge>, LedgerError> {
        let mut statement = self
            .connection
            .prepare("SELECT charge_id, month, content_hash FROM billed_charges ORDER BY charge_id")
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok(BilledCharge {
                    charge_id: r.get(0)?,
                    month: r.get(1)?,
                    content_hash: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The ledger of `state_dir` opened read-only (`check`, which does not
    /// open the ledger for writing), when it exists and has `table`.
    fn read_only_with(state_dir: &Path, table: &str) -> Result<Option<Ledger>, LedgerError> {
        let path = state_dir.join("ledger.sqlite");
        if !path.is_file() {
            return Ok(None);
        }
        let err = |source| LedgerError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let connection =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(err)?;
        let exists: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![table],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok((exists > 0).then_some(Ledger { connection, path }))
    }

    /// The charges billed so far from the ledger of `state_dir`, read
    /// without writing anything: none when there is no ledger yet.
    pub fn billed_charges_in(state_dir: &Path) -> Result<Vec<BilledCharge>, LedgerError> {
        match Ledger::read_only_with(state_dir, "billed_charges")? {
            Some(ledger) => ledger.billed_charges(),
            None => Ok(Vec::new()),
        }
    }

    /// The last collection of each mandate (RUM, any creditor identifier)
    /// from the ledger of `state_dir`, read without writing anything: none
    /// when there is no ledger yet.
    pub fn mandate_collections_in(
        state_dir: &Path,
    ) -> Result<std::collections::HashMap<String, String>, LedgerError> {
        let Some(ledger) = Ledger::read_only_with(state_dir, "mandate_accounts")? else {
            return Ok(std::collections::HashMap::new());
        };
        let mut statement = ledger
            .connection
            .prepare("SELECT rum, MAX(last_collection) FROM mandate_accounts GROUP BY rum")
            .map_err(|e| ledger.err(e))?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| ledger.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| ledger.err(e))
    }

    /// The numbers issued for a month, by customer.
    pub fn issued_numbers(&self, month: &str) -> Result<Vec<IssuedNumber>, LedgerError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT customer_id, invoice_number FROM invoice_numbers WHERE month = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params![month], |r| {
                Ok(IssuedNumber {
                    customer_id: r.get(0)?,
                    invoice_number: r.get(1)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

/// What an issue records besides its invoice numbers (account.md §4).
#[derive(Debug, Default)]
pub struct MonthIssue {
    /// The regularisations' credit notes, issued with the month.
    pub notes: Vec<RegularisationNote>,
    /// The earlier months billed again, with the digest of their inputs.
    pub fingerprints: Vec<(String, String)>,
    /// The one-off charges the month's invoices carry (account.md §5).
    pub charges: Vec<BilledCharge>,
    /// The customer account's entries of the issue (account.md §7): one
    /// INVOICE per invoice, one CREDIT_NOTE per regularisation note.
    pub entries: Vec<AccountEntry>,
}

/// One entry of the customer account (account.md §7; table
/// `account_entries`). `amount` is signed: what the customer owes grows
/// with a positive amount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountEntry {
    pub customer_id: String,
    pub entry_date: chrono::NaiveDate,
    /// INVOICE, CREDIT_NOTE, DIRECT_DEBIT, TRANSFER, RETURN, REFUND.
    pub kind: String,
    /// The invoice or credit note number, the EndToEndId of a direct debit,
    /// the bank's reference of a transfer or a return.
    pub reference: String,
    pub amount: rust_decimal::Decimal,
    /// An invoice's due date; a direct debit's collection date.
    pub due_date: Option<chrono::NaiveDate>,
    /// The document an entry concerns: the invoice a direct debit collects
    /// or a transfer names, the EndToEndId of the debit a return brings back.
    pub document: Option<String>,
    /// A return's ISO 20022 reason code (AM04, AC04, …).
    pub reason: Option<String>,
    /// Who recorded it: `bill`, `credit`, `sepa`, or the bank file's name.
    pub source: String,
}

/// Records an account entry unless one of its kind and reference is there
/// (entries are taken once): true when it was new.
pub fn insert_entry(connection: &Connection, entry: &AccountEntry) -> rusqlite::Result<bool> {
    let changed = connection.execute(
        "INSERT INTO account_entries (customer_id, entry_date, kind, reference, amount, due_date,
             document, reason, source, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (kind, reference) DO NOTHING",
        params![
            entry.customer_id,
            entry.entry_date.to_string(),
            entry.kind,
            entry.reference,
            format!("{:.2}", entry.amount),
            entry.due_date.map(|d| d.to_string()),
            entry.document,
            entry.reason,
            entry.source,
            now()
        ],
    )?;
    Ok(changed == 1)
}

/// Every account entry, in the order they count: by date, then as recorded.
pub fn account_entries(connection: &Connection) -> rusqlite::Result<Vec<AccountEntry>> {
    let mut statement = connection.prepare(
        "SELECT customer_id, entry_date, kind, reference, amount, due_date, document, reason, source
         FROM account_entries ORDER BY entry_date, id",
    )?;
    let date = |text: String| {
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let rows = statement.query_map([], |r| {
        let amount: String = r.get(4)?;
        Ok(AccountEntry {
            customer_id: r.get(0)?,
            entry_date: date(r.get(1)?)?,
            kind: r.get(2)?,
            reference: r.get(3)?,
            amount: amount.parse().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            due_date: r.get::<_, Option<String>>(5)?.map(date).transpose()?,
            document: r.get(6)?,
            reason: r.get(7)?,
            source: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// A one-off charge billed (account.md §5): the month whose invoice
/// carries it and the hash of its row as billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledCharge {
    pub charge_id: String,
    /// The month billed; ignored by `issue_month`, which records its own.
    pub month: String,
    pub content_hash: String,
}

/// A credit note for the negative differences of one customer and month.
#[derive(Debug, Clone)]
pub struct RegularisationNote {
    pub number: String,
    pub year: i32,
    pub seq: i64,
    /// The invoice it corrects, and that invoice's month.
    pub invoice_number: String,
    pub invoice_month: String,
    /// The month whose lines it corrects.
    pub period: String,
    pub customer_id: String,
    pub customer_kind: String,
    pub issue_date: String,
    pub reason: String,
    /// The rate of its largest base (its VAT per rate is `vat_breakdown`).
    pub vat_rate: String,
    pub total_ht: String,
    pub vat: String,
    pub total_ttc: String,
    pub vat_breakdown: Vec<NoteVat>,
}

/// A credit note's base and VAT for one VAT category and rate (table
/// `credit_note_vat`), amounts as exact decimal text with their cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVat {
    pub vat_category: String,
    pub vat_rate: String,
    pub vat_exemption: Option<String>,
    pub base_ht: String,
    pub vat: String,
    /// The part of `base_ht` that credits handsets.
    pub equipment_ht: String,
}

/// Records one part of a note's VAT (in the caller's transaction).
pub fn insert_note_vat(
    connection: &Connection,
    number: &str,
    part: &NoteVat,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO credit_note_vat (credit_note_number, vat_category, vat_rate, vat_exemption,
             base_ht, vat, equipment_ht)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            number,
            part.vat_category,
            part.vat_rate,
            part.vat_exemption,
            part.base_ht,
            part.vat,
            part.equipment_ht
        ],
    )?;
    Ok(())
}

/// A file listed by an FTP source: what identifies its bytes without
/// downloading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The source's URL, without credentials.
    pub source: String,
    pub folder: String,
    pub name: String,
    pub size: u64,
    /// The server's modification time (`MLSD` `modify` fact).
    pub modified: String,
}

/// A document published to the source's `Factures/Clients/` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    /// Where: the source's URL, without credentials.
    pub target: String,
    pub month: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// The path on the target (`Factures/Clients/2026-10/EXM-….pdf`).
    pub remote_path: String,
}

impl Ledger {
    /// The checksum of a listed remote file fetched before, if any.
    pub fn remote_file_sha256(&self, file: &RemoteFile) -> Result<Option<String>, LedgerError> {
        self.connection
            .query_row(
                "SELECT sha256 FROM remote_files
                 WHERE source = ?1 AND folder = ?2 AND name = ?3 AND size = ?4 AND modified = ?5",
                params![
                    file.source,
                    file.folder,
                    file.name,
                    file.size as i64,
                    file.modified
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Remembers a listed remote file whose bytes (`sha256`) are fetched.
    pub fn record_remote_file(&self, file: &RemoteFile, sha256: &str) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO remote_files (source, folder, name, size, modified, sha256, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![file.source, file.folder, file.name, file.size as i64, file.modified, sha256, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The last publication of a month's document to a target, if any.
    pub fn find_published(
        &self,
        target: &str,
        month: &str,
        name: &str,
    ) -> Result<Option<PublishedFile>, LedgerError> {
        self.connection
            .query_row(
                "SELECT target, month, name, size, sha256, remote_path FROM published_files
                 WHERE target = ?1 AND month = ?2 AND name = ?3",
                params![target, month, name],
                |r| {
                    Ok(PublishedFile {
                        target: r.get(0)?,
                        month: r.get(1)?,
                        name: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                        sha256: r.get(4)?,
                        remote_path: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records (or replaces) the publication of a document.
    pub fn record_published(&self, file: &PublishedFile) -> Result<(), LedgerError> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO published_files (target, month, name, size, sha256, remote_path, published_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![file.target, file.month, file.name, file.size as i64, file.sha256, file.remote_path, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn row_to_fetched(r: &rusqlite::Row<'_>) -> rusqlite::Result<FetchedFile> {
    Ok(FetchedFile {
        id: r.get(0)?,
        folder: r.get(1)?,
        name: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        sha256: r.get(4)?,
        raw_key: r.get(5)?,
        version: r.get(6)?,
    })
}

/// Creates a folder readable by its owner only (the state folder holds the
/// ledger and the PUK store).
pub fn create_private_dir(dir: &Path) -> Result<(), LedgerError> {
    let err = |source| LedgerError::Folder {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}
