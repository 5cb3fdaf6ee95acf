//! The SQL files of `sql/`, embedded in the binary, in the order they run.
//! Each file's result is registered under its file name (see
//! `engine::run_layer`), so files refer to each other by table name.

use crate::engine::{Keep, SqlFile};

macro_rules! sql {
    ($dir:literal, $name:literal) => {
        sql!($dir, $name, Keep::Memory)
    };
    ($dir:literal, $name:literal, $keep:expr) => {
        SqlFile {
            name: $name,
            sql: include_str!(concat!("../../sql/", $dir, "/", $name, ".sql")),
            keep: $keep,
        }
    };
}

/// Derived reference tables: versions with their end date, the month's
/// subscription rows.
pub const REFERENCE: &[SqlFile] = &[
    sql!("reference", "grid_versions"),
    sql!("reference", "plan_fee_versions"),
    sql!("reference", "option_versions"),
    sql!("reference", "handset_versions"),
    sql!("reference", "month_subscriptions"),
];

/// rating.md §1: the copy billed of each cdr_id with conflicting copies
/// (from `all_cdr_conflicts`, every month of `cdr_conflicts`), the month's
/// copies it replaces or brings in (from `month_cdrs` and the month's
/// `cdr_conflicts`), and `month_events`, one billed copy per cdr_id, which
/// the rating reads (a pass of it registered as `cdrs`).
pub const COPIES: &[SqlFile] = &[
    sql!("rating", "billed_copies"),
    sql!("rating", "superseded_copies"),
    sql!("rating", "billed_conflicts"),
    sql!("rating", "month_events", Keep::View),
];

/// rating.md §1–5, up to the priced events. The month's events stream
/// through views; only the pools are held in memory.
pub const RATING: &[SqlFile] = &[
    sql!("rating", "events", Keep::View),
    sql!("rating", "priced_events", Keep::View),
    sql!("rating", "pools"),
];

/// Every event of the month, rated or with its exception: run as the
/// query itself, once per pass, its stream routed by `rate` to the
/// `rated_cdrs` file and the exceptions' work file.
pub const RATED_EVENTS: SqlFile = sql!("rating", "rated_events", Keep::View);

/// The incremental rule (docs/RULES.md): the lines rated again whole
/// (subscription rows or billed copies changed), the pools a late event
/// reached, what the pools continued from, and the events rated again.
pub const LINE_SIGNATURES: SqlFile = sql!("rating", "line_signatures");
pub const CONFLICT_LINES: SqlFile = sql!("rating", "conflict_lines");
pub const CHANGED_LINES: SqlFile = sql!("rating", "changed_lines");
pub const CONTINUED_USAGE: SqlFile = sql!("rating", "continued_usage", Keep::View);
pub const CARRIED_POOLS: SqlFile = sql!("rating", "carried_pools");
pub const LATE_POOLS: SqlFile = sql!("rating", "late_pools");
pub const RERATED_EVENTS: SqlFile = sql!("rating", "rerated_events", Keep::View);
/// What each pool used so far (the state a next run continues from), and
/// the `consumption` dataset.
pub const POOL_USAGE: SqlFile = sql!("rating", "pool_usage");
/// What a run reads again once it knows its late pools: the pools it
/// continued, then what each pool used.
pub const USAGE: &[SqlFile] = &[CONTINUED_USAGE, POOL_USAGE];
pub const CONSUMPTION: SqlFile = sql!("rating", "consumption", Keep::View);

/// The `rating_exceptions` dataset, from the events `rate` set aside
/// (`excepted_events`) and the conflicting duplicates (`COPIES`).
pub const RATING_EXCEPTIONS: SqlFile = sql!("rating", "rating_exceptions", Keep::View);

/// rating.md §6 and account.md §5-6: the lines a month brings to its
/// invoices (`month_lines`), before numbering, and the lines committed
/// during the month (`line_commitments`). `bill` registers
/// `billed_charges` first.
pub const BILLING_LINES: &[SqlFile] = &[
    sql!("reference", "terminations"),
    sql!("reference", "commitments"),
    sql!("billing", "billable_subscriptions"),
    sql!("billing", "subscription_lines"),
    sql!("billing", "option_lines"),
    sql!("billing", "usage_lines"),
    sql!("billing", "equipment_lines"),
    sql!("billing", "charge_lines"),
    sql!("billing", "termination_fee_lines"),
    sql!("billing", "line_commitments"),
    sql!("reference", "eu_member_states"),
    sql!("billing", "month_lines"),
];

/// account.md §4: the differences of the issued months billed again
/// (`bill` registers `recomputed_lines`, `regularised_months`,
/// `invoiced_lines` and `credited_lines`), the positive ones as lines.
pub const REGULARISATION: &[SqlFile] = &[
    sql!("billing", "regularisation_deltas"),
    sql!("billing", "regularisation_lines"),
    sql!("billing", "regularisation_credit_vat"),
];

/// After `REGULARISATION`: the credit notes of the negative differences,
/// one per customer and corrected month.
pub const REGULARISATION_CREDITS: SqlFile = sql!("billing", "regularisation_credits", Keep::View);

/// After `BILLING_LINES` and `REGULARISATION`: every line of the month's
/// invoices and their totals, before numbering.
pub const BILLING_DRAFT: &[SqlFile] = &[
    sql!("billing", "draft_lines"),
    sql!("billing", "draft_invoices"),
];

/// After `BILLING_DRAFT`: the first draft line without a price in force
/// (`bill` refuses the month when there is one).
pub const UNPRICED_LINES: SqlFile = sql!("billing", "unpriced_lines", Keep::View);

/// The numbered outputs: the `invoices` and `invoice_lines` datasets.
pub const BILLING_OUTPUT: &[SqlFile] = &[
    sql!("billing", "invoices"),
    sql!("billing", "invoice_lines"),
];

/// What the finance team takes from an issued month (`finance`): the
/// `margin`, `sales_journal` and `e_reporting` datasets.
pub const FINANCE: &[SqlFile] = &[
    sql!("finance", "margin"),
    sql!("finance", "sales_journal"),
    sql!("finance", "e_reporting"),
];

/// After `FINANCE`: the margin's totals against their sources' (`finance`
/// refuses a margin that loses or counts twice), and the journal's rows in
/// the CSV's order.
pub const MARGIN_CHECK: SqlFile = sql!("finance", "margin_check", Keep::View);
pub const JOURNAL_ENTRIES: SqlFile = sql!("finance", "journal_entries", Keep::View);

/// What the invoice documents show (`render`): the invoices with their
/// customers, their lines in print order, and the annex.
pub const DOCUMENT_INVOICES: SqlFile = sql!("documents", "invoices");
/// The commitments an invoice prints (account.md §6), from the
/// `commitments` table `render` registers.
pub const DOCUMENT_COMMITMENTS: SqlFile = sql!("documents", "commitments", Keep::View);

pub const DOCUMENT_LINES: SqlFile = sql!("documents", "lines");
/// The regularisation credit notes' lines, for their VAT breakdown.
pub const DOCUMENT_CREDIT_NOTE_LINES: SqlFile = sql!("documents", "credit_note_lines");
/// The customers an issue records, or a draft prints (`stages/frozen.rs`).
pub const DOCUMENT_PARTIES: SqlFile = sql!("documents", "parties");
pub const ANNEX_SUMMARY: SqlFile = sql!("documents", "annex_summary");
pub const ANNEX_CHARGED: SqlFile = sql!("documents", "annex_charged");

/// The SEPA direct-debit file (`sepa`): the month's invoices paid by
/// `SEPA_DD`, with their customers' mandates.
pub const SEPA_DEBITS: SqlFile = sql!("finance", "sepa_debits");
/// rating.md §8: revenue assurance (`assure`): the findings of each kind,
/// from the month's CDRs, the MVNE's BilledCDRs, the status snapshots, the
/// subscriptions and the rating outputs. Each file runs on its own and
/// keeps only its findings (few, normally), so that the month's big joins
/// never run at once.
pub const ASSURANCE: &[SqlFile] = &[
    sql!("reference", "terminations"),
    sql!("assurance", "cdr_comparison"),
    sql!("assurance", "billed_not_landed"),
    sql!("assurance", "landed_not_billed"),
    sql!("assurance", "amount_mismatch"),
    sql!("assurance", "billed_twice"),
    sql!("assurance", "unbilled_active_lines"),
    sql!("assurance", "terminated_line_subscriptions"),
    sql!("assurance", "exception_leakage"),
    sql!("assurance", "late_cdrs"),
];

/// The `assurance` dataset (every finding, in order) and its summary per
/// kind, read back from the written findings.
pub const ASSURANCE_FINDINGS: SqlFile = sql!("assurance", "findings", Keep::View);
pub const ASSURANCE_SUMMARY: SqlFile = sql!("assurance", "summary", Keep::View);

/// docs/WHATIF.md (`whatif`): the reference tables as one alternative sees
/// them (a grid for every line, or a competitor's offer), registered under
/// the names the rating and billing files read.
pub const WHATIF_REFERENCE: &[SqlFile] = &[
    sql!("whatif", "subscriptions"),
    sql!("whatif", "plans"),
    sql!("whatif", "plan_fees"),
    sql!("whatif", "subscription_options"),
    sql!("whatif", "rate_grids"),
];

/// One alternative, after `REFERENCE` and `RATING`: its rated events (held
/// in memory, read three times), the lines `bill` would draft from them
/// (no equipment, no number) and their margin as `finance` computes it.
pub const WHATIF_ALTERNATIVE: &[SqlFile] = &[
    sql!("rating", "rated_events"),
    sql!("whatif", "rated_cdrs", Keep::View),
    sql!("whatif", "rating_exceptions", Keep::View),
    sql!("reference", "terminations"),
    sql!("billing", "billable_subscriptions"),
    sql!("billing", "subscription_lines"),
    sql!("billing", "option_lines"),
    sql!("billing", "usage_lines"),
    sql!("whatif", "invoice_lines"),
    sql!("whatif", "invoices"),
    sql!("finance", "margin"),
];

/// One alternative's margin rows with its name and the customers' kinds.
pub const WHATIF_MARGIN: SqlFile = sql!("whatif", "alternative_margin", Keep::View);
/// The `whatif` dataset, from every alternative's margin rows.
pub const WHATIF: SqlFile = sql!("whatif", "whatif", Keep::View);

/// `mvnobill doctor` (docs/OPERATIONS.md): each invoice of every month with
/// what its lines add up to.
pub const INVOICE_TOTALS: SqlFile = sql!("doctor", "invoice_totals", Keep::View);
