//! The command line's contract (interface.md): one-line errors and exit
//! codes, `--json` reports, the commands listed in `--help`.

use crate::common::{fixtures, mvnobill, Workspace};

#[test]
fn a_wrong_reference_table_is_one_line_naming_file_line_and_column() {
    let samples = fixtures().join("samples");
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    crate::common::copy_dir(&samples.join("reference"), &reference);
    let plans = std::fs::read_to_string(reference.join("subscriptions.csv")).unwrap();
    std::fs::write(
        reference.join("subscriptions.csv"),
        plans.replacen("BLOC1H;12;true;4", "BLOC1H;13;true;4", 1),
    )
    .unwrap();
    let ws = Workspace::new(
        &samples.join("ftp"),
        &reference,
        &samples.join("integrator.toml"),
    );
    let out = ws.run(&["run", "--month", "2026-10"]);
    assert_eq!(out.status, 1);
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr
            .ends_with("subscriptions.csv line 2, column commitment_months: 13 is not 0, 12 or 24"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_and_missing_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = mvnobill(&["rate", "--month", "2026-13"], dir.path());
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("'2026-13' is not a month"),
        "{}",
        out.stderr
    );
    let out = mvnobill(&["land"], dir.path());
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: cannot read configuration mvnobill.toml: No such file or directory (os error 2)"
    );
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn help_lists_only_working_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = mvnobill(&["--help"], dir.path()).ok();
    // Exactly these: each one works end to end and has its tests.
    let listed: Vec<&str> = out
        .stdout
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert_eq!(
        listed,
        [
            "sync",
            "land",
            "rate",
            "bill",
            "finance",
            "render",
            "publish",
            "sepa",
            "assure",
            "whatif",
            "run",
            "credit",
            "payments",
            "dunning",
            "receivables",
            "usage",
            "query",
            "sim",
            "check",
            "doctor",
            "rio",
            "duration",
            "gen",
            "demo",
        ],
        "{}",
        out.stdout
    );
}

#[test]
fn bill_before_rate_says_what_to_do() {
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    let out = ws.run(&["bill", "--month", "2026-10"]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: month 2026-10 is not rated yet: run `mvnobill rate --month 2026-10` first"
    );
}

#[test]
fn demo_runs_the_whole_pipeline_and_counts_reconcile() {
    use rust_decimal::Decimal;
    use std::str::FromStr;
    const DEMO: [&str; 8] = [
        "--json",
        "demo",
        "--out",
        "d",
        "--customers",
        "20",
        "--cdrs",
        "3000",
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = mvnobill(&DEMO, dir.path()).ok();
    let report = out.json();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["month"].as_str(), runs[1]["month"].as_str()),
        (Some("2026-10"), Some("2026-11"))
    );
    assert!(report["generated"]["cdrs"].as_u64().unwrap() >= 6000);
    assert!(report["generated"]["late_cdrs"].as_u64().unwrap() > 0);
    for run in runs {
        for file in run["land"]["files"].as_array().unwrap() {
            let c = |k: &str| file[k].as_u64().unwrap();
            assert_eq!(c("rows_in"), c("landed") + c("quarantined"), "{file}");
            assert_eq!(
                c("landed"),
                c("new_rows") + c("duplicates") + c("conflicts"),
                "{file}"
            );
        }
        // Each month's five malformed rows are quarantined, its three exact
        // re-deliveries counted once.
        assert_eq!(run["land"]["totals"]["quarantined"], 5, "{}", run["month"]);
        assert_eq!(run["land"]["totals"]["duplicates"], 3, "{}", run["month"]);
        assert!(run["bill"]["invoices"].as_u64().unwrap() >= 15);
    }
    let (october, november) = (&runs[0], &runs[1]);
    // October was issued without its late roaming CDRs; November's issue
    // bills October again and carries the difference.
    assert!(october["bill"]["regularised_months"].is_null());
    assert_eq!(
        november["bill"]["regularised_months"],
        serde_json::json!(["2026-10"])
    );
    assert!(november["bill"]["credit_notes"].is_null());
    let decimal = |v: &serde_json::Value| Decimal::from_str(v.as_str().unwrap()).unwrap();
    let regularisation = decimal(&november["bill"]["regularisation_ht"]);
    assert!(regularisation > Decimal::ZERO, "{regularisation}");
    // The REGULARISATION lines: on November's invoices, for October.
    let config = dir.path().join("d/mvnobill.toml");
    let config = config.to_str().unwrap();
    let lines = mvnobill(
        &[
            "--config",
            config,
            "--json",
            "query",
            "SELECT month, period, CAST(SUM(amount_ht) AS VARCHAR) AS ht FROM invoice_lines WHERE kind = 'REGULARISATION' GROUP BY month, period",
        ],
        dir.path(),
    )
    .ok()
    .json();
    assert_eq!(
        lines,
        serde_json::json!([{"month": "2026-11", "period": "2026-10", "ht": regularisation.to_string()}])
    );
    // Every late CDR of October was regularised, none lost; the report's
    // own check after November says the same.
    let assure = mvnobill(
        &["--config", config, "--json", "assure", "--month", "2026-10"],
        dir.path(),
    )
    .ok()
    .json();
    let late = assure["late_cdrs"].as_u64().unwrap();
    assert!(late > 0);
    assert_eq!(assure["late_regularised"], late);
    assert_eq!(assure["late_to_regularise"], 0);
    assert_eq!(assure["late_lost"], 0);
    assert_eq!(report["late"]["late_regularised"], late);
    // The amount is what the late CDRs make: October billed with every file
    // from the start (the same generated months) is October as issued plus
    // the regularisation.
    mvnobill(
        &[
            "gen",
            "--out",
            "all",
            "--customers",
            "20",
            "--cdrs",
            "3000",
            "--months",
            "2",
        ],
        dir.path(),
    )
    .ok();
    let at_once = mvnobill(
        &[
            "--config",
            "all/mvnobill.toml",
            "--json",
            "run",
            "--month",
            "2026-10",
            "--html-only",
        ],
        dir.path(),
    )
    .ok()
    .json();
    assert_eq!(
        decimal(&at_once["bill"]["total_ht"]),
        decimal(&october["bill"]["total_ht"]) + regularisation
    );
    // Demo again: the previous demo folder is replaced, the figures are the same.
    let again = mvnobill(&DEMO, dir.path()).ok();
    for (a, b) in again.json()["runs"].as_array().unwrap().iter().zip(runs) {
        assert_eq!(a["bill"]["total_ttc"], b["bill"]["total_ttc"]);
    }
    // A folder that is not a demo is never deleted.
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    let refused = mvnobill(&["demo", "--out", "mine"], dir.path());
    assert_eq!(refused.status, 1);
    assert!(refused.stderr.contains("is not a previous demo"));
}

#[test]
fn a_reader_that_stops_early_gets_no_panic() {
    // `mvnobill query … | head -1`: the pipe is closed before the report is
    // written.
    let ws = Workspace::samples();
    let mut child = std::process::Command::new(crate::common::binary())
        .args(["query", "SELECT value FROM generate_series(1, 200000)"])
        .current_dir(ws.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}
