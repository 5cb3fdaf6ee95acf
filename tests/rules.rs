//! The rule corpus: `tests/fixtures/rules/<case>/` holds a few CDRs (and
//! reference tables overriding `_base/reference/`) and `expected.toml`, whose
//! figures were computed by hand from rating.md, with the arithmetic beside
//! each; a case with `ftp_first/` lands those files in an earlier run. Every case runs through the real binary (`run --month`) as its
//! own test (`cargo test --test suite rules::case_17_duplicates`); the
//! sections present in `expected.toml` are compared as multisets: a row
//! found twice where it is expected once is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{copy_dir, fixtures, text, Workspace};

fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows as a multiset: each tuple with the number of times it occurs.
type Rows = BTreeMap<Vec<String>, usize>;

fn multiset(rows: impl IntoIterator<Item = Vec<String>>) -> Rows {
    let mut out = Rows::new();
    for row in rows {
        *out.entry(row).or_default() += 1;
    }
    out
}

/// Rows of an `expected.toml` array as tuples of the given keys.
fn expected_rows(expected: &toml::Table, section: &str, keys: &[&str]) -> Option<Rows> {
    let rows = expected.get(section)?.as_array()?;
    Some(multiset(rows.iter().map(|row| {
        keys.iter()
            .map(|k| row.get(*k).map(toml_text).unwrap_or_default())
            .collect()
    })))
}

/// The same tuples from a query of the lake.
fn actual_rows(ws: &Workspace, sql: &str, keys: &[&str]) -> Rows {
    multiset(
        ws.query(sql)
            .iter()
            .map(|row| keys.iter().map(|k| text(row, k)).collect()),
    )
}

/// What `b` lacks of `a`, counted: each tuple with how many more times it
/// is in `a` than in `b`.
fn shortfall(a: &Rows, b: &Rows) -> Vec<(Vec<String>, usize)> {
    a.iter()
        .filter_map(|(row, &n)| {
            let m = b.get(row).copied().unwrap_or(0);
            (n > m).then(|| (row.clone(), n - m))
        })
        .collect()
}

/// The failure of one section, if its rows differ as multisets.
fn difference(case: &str, what: &str, expected: &Rows, actual: &Rows) -> Option<String> {
    if expected == actual {
        return None;
    }
    let missing = shortfall(expected, actual);
    let extra = shortfall(actual, expected);
    Some(format!(
        "{case} {what}:\n    expected, not found (row, times): {missing:?}\n    found, not expected (row, times): {extra:?}"
    ))
}

fn compare(
    case: &str,
    what: &str,
    expected: Option<Rows>,
    actual: impl FnOnce() -> Rows,
    failures: &mut Vec<String>,
) {
    let Some(expected) = expected else { return };
    failures.extend(difference(case, what, &expected, &actual()));
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
    // A case of several steps (account.md: months in sequence) delivers
    // its folders one after the other into one FTP tree, overlays the
    // reference tables of each step, and runs each step's command; the
    // sections are then checked on the lake at the end. A case with
    // `ftp_first/` has two deliveries: those files are fetched and landed by
    // a first `sync` and `land`, then `ftp/`'s join them before the `run`
    // (files landing out of their name order).
    let steps = expected
        .get("step")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    let first = case_dir.join("ftp_first");
    let source = if steps.is_empty() && !first.is_dir() {
        case_dir.join("ftp")
    } else {
        scratch.path().join("ftp")
    };
    std::fs::create_dir_all(&source).unwrap();
    let ws = Workspace::new(&source, &reference, &base.join("integrator.toml"));
    if first.is_dir() {
        copy_dir(&first, &source);
        for stage in ["sync", "land"] {
            let out = ws.run(&["--json", stage]);
            if out.status != 0 {
                failures.push(format!(
                    "{case}: first {stage} failed: {}",
                    out.stderr.trim()
                ));
                return;
            }
        }
        copy_dir(&case_dir.join("ftp"), &source);
    }
    if steps.is_empty() {
        let out = ws.run(&["--json", "run", "--month", &month, "--html-only"]);
        if out.status != 0 {
            failures.push(format!("{case}: run failed: {}", out.stderr.trim()));
            return;
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(ftp) = step.get("ftp").and_then(|v| v.as_str()) {
            copy_dir(&case_dir.join(ftp), &source);
        }
        if let Some(overlay) = step.get("reference").and_then(|v| v.as_str()) {
            copy_dir(&case_dir.join(overlay), &reference);
        }
        let args: Vec<String> = step["args"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: step {} has no args", i + 1))
            .iter()
            .map(toml_text)
            .collect();
        let mut all = vec!["--json"];
        all.extend(args.iter().map(String::as_str));
        let out = ws.run(&all);
        if out.status != 0 {
            failures.push(format!(
                "{case}: step {} ({}) failed: {}",
                i + 1,
                args.join(" "),
                out.stderr.trim()
            ));
            return;
        }
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
        Some(toml::Value::Array(a)) if a.is_empty() => Some(Rows::new()),
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
                Rows::new()
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
    let regularisation_keys = ["customer_id", "msisdn", "period", "quantity", "amount_ht"];
    compare(
        &case,
        "regularisation lines",
        expected_rows(&expected, "regularisation", &regularisation_keys),
        || {
            actual_rows(
                &ws,
                &format!("SELECT * FROM invoice_lines WHERE {filter} AND kind = 'REGULARISATION'"),
                &regularisation_keys,
            )
        },
        failures,
    );
    let note_keys = [
        "customer_id",
        "invoice_month",
        "total_ht",
        "vat",
        "total_ttc",
    ];
    compare(
        &case,
        "credit notes",
        expected_rows(&expected, "credit_note", &note_keys),
        || {
            if ws.lake().join("credit_notes").exists() {
                actual_rows(&ws, "SELECT * FROM credit_notes", &note_keys)
            } else {
                Rows::new()
            }
        },
        failures,
    );
    let note_line_keys = [
        "customer_id",
        "kind",
        "msisdn",
        "period",
        "quantity",
        "amount_ht",
    ];
    compare(
        &case,
        "credit note lines",
        expected_rows(&expected, "credit_note_line", &note_line_keys),
        || {
            if ws.lake().join("credit_note_lines").exists() {
                actual_rows(&ws, "SELECT * FROM credit_note_lines", &note_line_keys)
            } else {
                Rows::new()
            }
        },
        failures,
    );
    // rating.md §6: each invoice's base and VAT per category and rate, from
    // its lines, with the exemption text they carry (empty for S).
    let vat_keys = [
        "customer_id",
        "vat_category",
        "vat_rate",
        "vat_exemption",
        "base_ht",
        "vat",
    ];
    compare(
        &case,
        "VAT per category and rate",
        expected_rows(&expected, "vat", &vat_keys),
        || {
            actual_rows(
                &ws,
                &format!(
                    "SELECT customer_id, vat_category, vat_rate,
                            COALESCE(MAX(vat_exemption), '') AS vat_exemption,
                            CAST(SUM(amount_ht) AS DECIMAL(18, 2)) AS base_ht,
                            CAST(SUM(amount_ht) * vat_rate * 0.01 AS DECIMAL(18, 2)) AS vat
                     FROM invoice_lines WHERE {filter}
                     GROUP BY customer_id, vat_category, vat_rate"
                ),
                &vat_keys,
            )
        },
        failures,
    );
    // A credit note's VAT per category and rate (credit_note_vat).
    let note_vat_keys = ["customer_id", "vat_category", "vat_rate", "base_ht", "vat"];
    compare(
        &case,
        "credit note VAT",
        expected_rows(&expected, "note_vat", &note_vat_keys),
        || {
            if ws.lake().join("credit_note_vat").exists() {
                actual_rows(
                    &ws,
                    "SELECT n.customer_id, v.vat_category, v.vat_rate, v.base_ht, v.vat
                     FROM credit_note_vat v
                     JOIN credit_notes n ON n.credit_note_number = v.credit_note_number",
                    &note_vat_keys,
                )
            } else {
                Rows::new()
            }
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

/// One case, by its folder's name: every difference, or a pass.
fn check_case(name: &str) {
    let case_dir = fixtures().join("rules").join(name);
    assert!(
        case_dir.join("expected.toml").is_file(),
        "{} has no expected.toml",
        case_dir.display()
    );
    let mut failures = Vec::new();
    run_case(&case_dir, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One test per case folder, `case_<folder>`, and `CASES`, the folders
/// named.
macro_rules! rule_cases {
    ($($test:ident),+ $(,)?) => {
        const CASES: &[&str] = &[$(case_folder(stringify!($test))),+];
        $(
            #[test]
            fn $test() {
                check_case(case_folder(stringify!($test)));
            }
        )+
    };
}

/// `case_01_voice_60_60` is the folder `01_voice_60_60`.
const fn case_folder(test: &'static str) -> &'static str {
    match test.as_bytes() {
        [b'c', b'a', b's', b'e', b'_', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(folder) => folder,
            Err(_) => panic!("not UTF-8"),
        },
        _ => panic!("a rule case's test is named case_<folder>"),
    }
}

rule_cases! {
    case_01_voice_60_60,
    case_02_voice_60_1,
    case_03_voice_1_1,
    case_04_voice_30_30,
    case_05_data_1_1,
    case_06_data_10_10,
    case_07_data_1024_1024,
    case_08_messages_units,
    case_09_connect_fee,
    case_10_longest_prefix,
    case_11_short_number,
    case_12_no_destination,
    case_13_roaming_eu_vs_z1,
    case_14_unlisted_mcc,
    case_15_no_price,
    case_16_no_subscription,
    case_17_duplicates,
    case_18_allowance_exhaustion,
    case_19_chronological_order,
    case_20_unlimited_option,
    case_21_option_adds_to_group,
    case_22_grid_price_change,
    case_23_plan_fee_change,
    case_24_plan_change_mid_month,
    case_25_line_start_mid_month,
    case_26_termination_mid_month,
    case_27_terminated_previous_month,
    case_28_handset_sales,
    case_29_dst_end,
    case_30_dst_start,
    case_31_month_boundaries,
    case_32_quarantine,
    case_33_rounding,
    case_34_termination_snapshot_at_midnight,
    case_35_conflicting_copy_sorts_first,
    case_36_option_added_mid_month_same_pool,
    case_37_charges,
    case_38_termination_fees,
    case_40_late_usage_regularised,
    case_41_regularisation_only_invoice,
    case_42_backdated_termination_fee,
    case_43_vat_exempt_option,
    case_44_vat_reunion_handset_export,
    case_45_vat_guyane_all_outside,
    case_46_vat_saint_martin_outside,
    case_47_vat_belgian_business,
    case_48_vat_belgian_consumer,
    case_49_vat_partial_credit_mixed,
}

/// Every folder of `tests/fixtures/rules/` (but `_base` and other `_`
/// folders, which are shared) is a case with its test above, and every
/// case named there has its folder: a case added without its line in
/// `rule_cases!` would never run.
#[test]
fn every_rule_case_folder_has_its_test() {
    let root = fixtures().join("rules");
    let folders: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('_'))
        .collect();
    let listed: BTreeSet<String> = CASES.iter().map(|c| c.to_string()).collect();
    assert_eq!(listed.len(), CASES.len(), "a case is listed twice");
    let unlisted: Vec<_> = folders.difference(&listed).collect();
    let absent: Vec<_> = listed.difference(&folders).collect();
    assert!(
        unlisted.is_empty() && absent.is_empty(),
        "folders of {} without a test in rule_cases!: {unlisted:?}; tests without a folder: {absent:?}",
        root.display()
    );
    assert!(CASES.len() >= 30, "the rule corpus is missing");
    assert!(root.join("_base/reference").is_dir());
}

/// The comparison counts rows: a row found twice where `expected.toml` has
/// it once (or the other way round) fails, and says how many times.
#[test]
fn rule_rows_are_compared_as_multisets() {
    let row = |id: &str| vec![id.to_string(), "0.100000".to_string()];
    let once = multiset([row("V01"), row("V02")]);
    let twice = multiset([row("V01"), row("V02"), row("V02")]);
    assert_eq!(difference("c", "rated", &once, &once), None);
    let extra = difference("c", "rated", &once, &twice).expect("a duplicate found");
    assert!(
        extra.contains(r#"found, not expected (row, times): [(["V02", "0.100000"], 1)]"#),
        "{extra}"
    );
    let missing = difference("c", "rated", &twice, &once).expect("a duplicate expected");
    assert!(
        missing.contains(r#"expected, not found (row, times): [(["V02", "0.100000"], 1)]"#),
        "{missing}"
    );
}
