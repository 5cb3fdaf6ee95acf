//! The rule corpus: `tests/fixtures/rules/<case>/` holds a few CDRs (and
//! reference tables overriding `_base/reference/`) and `expected.toml`, whose
//! figures were computed by hand from rating.md, with the arithmetic beside
//! each. Every case runs through the real binary (`run --month`); the
//! sections present in `expected.toml` are compared as whole sets.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{copy_dir, fixtures, text, Workspace};

fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows of an `expected.toml` array as tuples of the given keys.
fn expected_rows(
    expected: &toml::Table,
    section: &str,
    keys: &[&str],
) -> Option<BTreeSet<Vec<String>>> {
    let rows = expected.get(section)?.as_array()?;
    Some(
        rows.iter()
            .map(|row| {
                keys.iter()
                    .map(|k| row.get(*k).map(toml_text).unwrap_or_default())
                    .collect()
            })
            .collect(),
    )
}

/// The same tuples from a query of the lake.
fn actual_rows(ws: &Workspace, sql: &str, keys: &[&str]) -> BTreeSet<Vec<String>> {
    ws.query(sql)
        .iter()
        .map(|row| keys.iter().map(|k| text(row, k)).collect())
        .collect()
}

fn compare(
    case: &str,
    what: &str,
    expected: Option<BTreeSet<Vec<String>>>,
    actual: impl FnOnce() -> BTreeSet<Vec<String>>,
    failures: &mut Vec<String>,
) {
    let Some(expected) = expected else { return };
    let actual = actual();
    if expected != actual {
        let missing: Vec<_> = expected.difference(&actual).collect();
        let extra: Vec<_> = actual.difference(&expected).collect();
        failures.push(format!("{case} {what}:\n    expected, not found: {missing:?}\n    found, not expected: {extra:?}"));
    }
}

fn run_case(case_dir: &Path, failures: &mut Vec<String>) {
    let case = case_dir.file_name().unwrap().to_string_lossy().to_string();
    let base = fixtures().join("rules/_base");
    let expected: toml::Table =
        toml::from_str(&std::fs::read_to_string(case_dir.join("expected.toml")).unwrap())
            .unwrap_or_else(|e| panic!("{case}/expected.toml: {e}"));
    let month = expected["month"].as_str().unwrap().to_string();

    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    copy_dir(&base.join("reference"), &reference);
    if case_dir.join("reference").is_dir() {
        copy_dir(&case_dir.join("reference"), &reference);
    }
    let ws = Workspace::new(
        &case_dir.join("ftp"),
        &reference,
        &base.join("integrator.toml"),
    );
    let out = ws.run(&["--json", "run", "--month", &month, "--html-only"]);
    if out.status != 0 {
        failures.push(format!("{case}: run failed: {}", out.stderr.trim()));
        return;
    }
    let filter = format!("month = '{month}'");

    compare(
        &case,
        "landed",
        expected_rows(&expected, "landed", &["cdr_id", "start_time_utc"]),
        || {
            actual_rows(&ws, &format!("SELECT cdr_id, to_char(start_time, '%Y-%m-%dT%H:%M:%SZ') AS start_time_utc FROM cdrs WHERE {filter}"), &["cdr_id", "start_time_utc"])
        },
        failures,
    );
    compare(
        &case,
        "rated",
        expected_rows(
            &expected,
            "rated",
            &[
                "cdr_id",
                "zone",
                "allowance_group",
                "billed_qty",
                "covered_qty",
                "overage_qty",
                "amount",
            ],
        ),
        || {
            actual_rows(
                &ws,
                &format!("SELECT * FROM rated_cdrs WHERE {filter}"),
                &[
                    "cdr_id",
                    "zone",
                    "allowance_group",
                    "billed_qty",
                    "covered_qty",
                    "overage_qty",
                    "amount",
                ],
            )
        },
        failures,
    );
    let exceptions = match expected.get("exception") {
        Some(toml::Value::Array(a)) if a.is_empty() => Some(BTreeSet::new()),
        _ => expected_rows(&expected, "exception", &["cdr_id", "reason"]),
    };
    compare(
        &case,
        "exceptions",
        exceptions,
        || {
            if ws.lake().join("rating_exceptions").exists() {
                actual_rows(
                    &ws,
                    &format!("SELECT cdr_id, reason FROM rating_exceptions WHERE {filter}"),
                    &["cdr_id", "reason"],
                )
            } else {
                BTreeSet::new()
            }
        },
        failures,
    );
    let invoice_keys = [
        "customer_id",
        "subscription",
        "options",
        "usage",
        "equipment",
        "total_ht",
        "vat",
        "total_ttc",
    ];
    compare(
        &case,
        "invoices",
        expected_rows(&expected, "invoice", &invoice_keys),
        || {
            actual_rows(
                &ws,
                &format!(
                    "SELECT customer_id, subscription_ht AS subscription, options_ht AS options, usage_ht AS usage,
                            equipment_ht AS equipment, total_ht, vat, total_ttc FROM invoices WHERE {filter}"
                ),
                &invoice_keys,
            )
        },
        failures,
    );
    let line_keys = [
        "customer_id",
        "kind",
        "msisdn",
        "event_type",
        "zone",
        "quantity",
        "amount_ht",
    ];
    compare(
        &case,
        "invoice lines",
        expected_rows(&expected, "invoice_line", &line_keys),
        || {
            actual_rows(
                &ws,
                &format!("SELECT * FROM invoice_lines WHERE {filter}"),
                &line_keys,
            )
        },
        failures,
    );
    if let Some(quarantine) = expected.get("quarantine").and_then(|q| q.as_table()) {
        let rows = if ws.lake().join("quarantine").exists() {
            ws.query("SELECT reason FROM quarantine ORDER BY line, source_file")
        } else {
            Vec::new()
        };
        let codes: Vec<String> = rows
            .iter()
            .map(|r| {
                text(r, "reason")
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let want: Vec<String> = quarantine["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(toml_text)
            .collect();
        let count = quarantine["count"].as_integer().unwrap() as usize;
        if codes != want || codes.len() != count {
            failures.push(format!(
                "{case} quarantine: expected {count} {want:?}, found {codes:?}"
            ));
        }
    }
}

#[test]
fn every_rule_case_gives_its_hand_computed_figures() {
    let root = fixtures().join("rules");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "the rule corpus is missing");
    let mut failures = Vec::new();
    for case in &cases {
        run_case(case, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
