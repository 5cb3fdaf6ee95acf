//! The golden dataset (`tests/fixtures/samples`, a copy of the spec's
//! samples): every figure of `expected.json` reproduced to the cent by the
//! real binary, and a second run that changes nothing. The spec's folder
//! (`../shared/spec/samples`) is the one source: the copy is checked to be
//! it byte for byte whenever it is there, and everything here reads the
//! copy (`expected()`, `Workspace::samples()`), so that a fresh clone
//! without `../shared` still runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{fixtures, text, walk, Workspace};

fn sum_rated_files(land: &serde_json::Value, field: &str) -> u64 {
    land["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["folder"] == "RatedCDRs")
        .map(|f| f[field].as_u64().expect("a count"))
        .sum()
}

/// The contract's figures for the samples month: the one place this file
/// reads `expected.json` from.
fn expected() -> serde_json::Value {
    let samples = fixtures().join("samples");
    serde_json::from_str(&std::fs::read_to_string(samples.join("expected.json")).unwrap()).unwrap()
}

/// The spec's samples, beside the clone: the source of the fixture copy.
fn spec_samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/samples")
}

/// Every file below `root`, by its path relative to `root`, with its bytes.
fn files_below(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walk(root)
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(root).unwrap().display().to_string();
            let bytes = std::fs::read(&file).unwrap();
            (relative, bytes)
        })
        .collect()
}

/// What differs between two trees of files, one line per file: only in
/// one, or in both with other bytes.
fn tree_differences(
    copy: &BTreeMap<String, Vec<u8>>,
    source: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, bytes) in copy {
        match source.get(path) {
            None => out.push(format!("{path}: in the fixtures only")),
            Some(theirs) if theirs != bytes => out.push(format!(
                "{path}: differs ({} bytes in the fixtures, {} in the spec)",
                bytes.len(),
                theirs.len()
            )),
            Some(_) => {}
        }
    }
    for path in source.keys().filter(|p| !copy.contains_key(*p)) {
        out.push(format!("{path}: in the spec only"));
    }
    out
}

/// `tests/fixtures/samples` is `../shared/spec/samples` byte for byte, every
/// file of each in the other. Skipped, with a note, where `../shared` is
/// not beside the clone.
#[test]
fn fixture_samples_are_the_spec_samples_byte_for_byte() {
    let spec = spec_samples();
    if !spec.is_dir() {
        // Straight to stderr, past the test harness's capture: the note
        // shows even though the test passes.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: {} is absent: the fixture copy of the samples is not compared with the spec's (skipped)",
            spec.display()
        );
        return;
    }
    let copy = files_below(&fixtures().join("samples"));
    let source = files_below(&spec);
    assert!(copy.contains_key("expected.json") && source.len() > 30);
    let differences = tree_differences(&copy, &source);
    assert!(
        differences.is_empty(),
        "tests/fixtures/samples is not a copy of {} (copy the spec's folder again):\n{}",
        spec.display(),
        differences.join("\n")
    );
}

#[test]
fn samples_reproduce_expected_json_to_the_cent() {
    let expected = expected();
    let month = expected["month"].as_str().unwrap();
    let ws = Workspace::samples();

    let report = ws.run(&["--json", "run", "--month", month]).ok().json();
    let land = &report["land"];
    assert_eq!(
        sum_rated_files(land, "rows_in"),
        expected["rows_in"].as_u64().unwrap(),
        "rows_in"
    );
    assert_eq!(
        sum_rated_files(land, "quarantined"),
        expected["quarantined"].as_u64().unwrap(),
        "quarantined"
    );
    assert_eq!(
        sum_rated_files(land, "new_rows"),
        expected["unique_cdrs"].as_u64().unwrap(),
        "unique_cdrs"
    );
    assert_eq!(
        report["rate"]["cdrs"].as_u64().unwrap(),
        expected["month_cdrs"].as_u64().unwrap(),
        "month_cdrs"
    );

    let exceptions: BTreeMap<String, u64> =
        serde_json::from_value(report["rate"]["exceptions"].clone()).unwrap();
    let expected_exceptions: BTreeMap<String, u64> =
        serde_json::from_value(expected["exceptions"].clone()).unwrap();
    assert_eq!(exceptions, expected_exceptions, "exceptions by reason");

    // Revenue assurance (`run` ends with assure; tests/assure.rs has the
    // amounts and the CDRs and lines behind these counts).
    let assurance = expected["revenue_assurance"].as_object().unwrap();
    for (kind, count) in assurance {
        assert_eq!(&report["assure"][kind], count, "revenue_assurance {kind}");
    }

    let bill = &report["bill"];
    assert_eq!(
        bill["invoices"].as_u64().unwrap(),
        expected["invoice_count"].as_u64().unwrap()
    );
    assert_eq!(bill["total_ht"], expected["total_ht"], "total_ht");
    assert_eq!(bill["total_ttc"], expected["total_ttc"], "total_ttc");

    // Each customer's subtotals, to the cent (expected.json writes 0 as "0").
    let rows = ws.query("SELECT * FROM invoices WHERE month = '2026-10' ORDER BY customer_id");
    let cents = |s: &str| -> String {
        let d: rust_decimal::Decimal = s.parse().unwrap();
        format!("{:.2}", d)
    };
    let mut mismatches = Vec::new();
    let expected_invoices = expected["invoices"].as_object().unwrap();
    assert_eq!(rows.len(), expected_invoices.len());
    for row in &rows {
        let customer = text(row, "customer_id");
        let want = &expected_invoices[&customer];
        for (field, column) in [
            ("subscription", "subscription_ht"),
            ("options", "options_ht"),
            ("usage", "usage_ht"),
            ("equipment", "equipment_ht"),
            ("total_ht", "total_ht"),
            ("vat", "vat"),
            ("total_ttc", "total_ttc"),
        ] {
            let got = text(row, column);
            let want = cents(want[field].as_str().unwrap());
            if got != want {
                mismatches.push(format!("{customer} {field}: got {got}, expected {want}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "invoice mismatches:\n{}",
        mismatches.join("\n")
    );

    // Numbers: continuous from 1, in customer_id order.
    let numbers: Vec<String> = rows.iter().map(|r| text(r, "invoice_number")).collect();
    let wanted: Vec<String> = (1..=rows.len())
        .map(|i| format!("EXM-2026-{i:06}"))
        .collect();
    assert_eq!(numbers, wanted);

    // A second run of the same month changes nothing.
    let snapshot = lake_files(&ws);
    let again = ws.run(&["--json", "run", "--month", month]).ok().json();
    assert_eq!(again["sync"]["files_fetched"], 0);
    assert_eq!(again["land"]["files"].as_array().unwrap().len(), 0);
    assert_eq!(again["rate"]["closed"], true);
    assert_eq!(again["bill"]["closed"], true);
    assert_eq!(again["bill"]["total_ttc"], expected["total_ttc"]);
    assert_eq!(
        lake_files(&ws),
        snapshot,
        "the lake changed on a second run"
    );
}

/// Every file of the lake's datasets with its bytes (the ledger aside).
fn lake_files(ws: &Workspace) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if relative.starts_with("_state") {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&ws.lake(), &ws.lake(), &mut out);
    out
}

/// A month rated in passes over shares of the lines (`[engine]
/// cdrs_per_pass`, pipeline/stages/rate.rs) gives every event the same figures as
/// one pass: a line's allowances are consumed within one pass.
#[test]
fn samples_rated_in_passes_give_the_same_events_and_invoices() {
    let expected = expected();
    let month = expected["month"].as_str().unwrap();
    let events = |ws: &Workspace| {
        ws.query(
            "SELECT cdr_id, msisdn, allowance_group, billed_qty, covered_qty, amount, margin \
             FROM rated_cdrs ORDER BY cdr_id",
        )
    };
    let whole = Workspace::samples();
    let one = whole
        .run(&["--json", "run", "--month", month, "--html-only"])
        .ok()
        .json();
    assert_eq!(one["rate"]["passes"], 1);

    let split = Workspace::samples();
    let config = split.dir.path().join("mvnobill.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[engine]\ncdrs_per_pass = 40\n");
    std::fs::write(&config, text).unwrap();
    let passes = split
        .run(&["--json", "run", "--month", month, "--html-only"])
        .ok()
        .json();
    let month_cdrs = expected["month_cdrs"].as_u64().unwrap();
    assert_eq!(passes["rate"]["passes"], month_cdrs.div_ceil(40));
    assert!(passes["rate"]["passes"].as_u64().unwrap() >= 3);
    assert_eq!(passes["rate"]["exceptions"], expected["exceptions"]);
    assert_eq!(passes["bill"]["total_ht"], expected["total_ht"]);
    assert_eq!(passes["bill"]["total_ttc"], expected["total_ttc"]);
    let (a, b) = (events(&whole), events(&split));
    assert_eq!(a.len() as u64, one["rate"]["rated"].as_u64().unwrap());
    assert_eq!(a, b);
}

#[test]
fn plan_metrics_account_for_every_event_of_each_pass() {
    // MVNOBILL_PLAN_METRICS (docs/PERFORMANCE.md): each pass of `rate`
    // appends its run plan with the operators' metrics; the rows out of
    // each pass's plan add up to the month's CDRs, and the running sum of
    // the allowances is the project's operator (pipeline/engine/running_sum.rs).
    let expected = expected();
    let month = expected["month"].as_str().unwrap();
    let ws = Workspace::samples();
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[engine]\ncdrs_per_pass = 400\n");
    std::fs::write(&config, text).unwrap();
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    let metrics = ws.dir.path().join("plan.txt");
    let out = std::process::Command::new(crate::common::binary())
        .args(["--json", "rate", "--month", month])
        .current_dir(ws.dir.path())
        .env("MVNOBILL_PLAN_METRICS", &metrics)
        .output()
        .unwrap();
    let rate = crate::common::Output::from(out).ok().json();
    let passes = rate["passes"].as_u64().unwrap();
    assert!(passes >= 3, "{rate}");
    let plans = std::fs::read_to_string(&metrics).unwrap();
    let mut rows = 0;
    for pass in 1..=passes {
        let title = format!("-- rated_events.sql, pass {pass} of {passes}\n");
        let plan = plans
            .split(&title)
            .nth(1)
            .unwrap_or_else(|| panic!("no {title}"));
        assert!(plan.contains("RunningSumExec"), "{plan}");
        assert!(!plan.contains("BoundedWindowAggExec"), "{plan}");
        // The plan's first line is its output; under 1,000 rows a pass's
        // count is printed whole.
        let first = plan.lines().next().unwrap();
        let count = first.split("output_rows=").nth(1).unwrap();
        let count: u64 = count[..count.find(',').unwrap()].parse().unwrap();
        assert!(count > 0 && count < 1000, "{first}");
        rows += count;
    }
    assert_eq!(rows, rate["cdrs"].as_u64().unwrap());
    assert_eq!(rows, expected["month_cdrs"].as_u64().unwrap());
}
