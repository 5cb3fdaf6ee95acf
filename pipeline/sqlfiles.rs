//! The SQL files of `sql/`, embedded in the binary, in the order they run.
//! Each file's result is registered under its file name (see
//! `engine::run_layer`), so files refer to each other by table name.

use crate::engine::SqlFile;

macro_rules! sql {
    ($dir:literal, $name:literal) => {
        SqlFile {
            name: $name,
            sql: include_str!(concat!("../sql/", $dir, "/", $name, ".sql")),
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

/// rating.md §1–5; `rated_cdrs` and `rating_exceptions` are the outputs.
pub const RATING: &[SqlFile] = &[
    sql!("rating", "events"),
    sql!("rating", "called_zones"),
    sql!("rating", "priced_events"),
    sql!("rating", "pools"),
    sql!("rating", "rated_cdrs"),
    sql!("rating", "rating_exceptions"),
];

/// rating.md §6: invoice lines and totals before numbering.
pub const BILLING_DRAFT: &[SqlFile] = &[
    sql!("reference", "terminations"),
    sql!("billing", "billable_subscriptions"),
    sql!("billing", "subscription_lines"),
    sql!("billing", "option_lines"),
    sql!("billing", "usage_lines"),
    sql!("billing", "equipment_lines"),
    sql!("billing", "draft_lines"),
    sql!("billing", "draft_invoices"),
];

/// The numbered outputs: the `invoices` and `invoice_lines` datasets.
pub const BILLING_OUTPUT: &[SqlFile] = &[
    sql!("billing", "invoices"),
    sql!("billing", "invoice_lines"),
];
