//! The account over the months (account.md §1–4): months issued in order,
//! numbering continued from an earlier system, drafts before the issue.
//! The months are those of rule case 40 (tests/fixtures/rules/
//! 40_late_usage_regularised/, whose expected.toml has the arithmetic):
//! October delivered and issued, then a late delivery and changed tables
//! before November.

use std::path::Path;

use crate::common::{copy_dir, fixtures, text, Output, Workspace};

struct Months {
    ws: Workspace,
    case: std::path::PathBuf,
    source: std::path::PathBuf,
    reference: std::path::PathBuf,
    _scratch: tempfile::TempDir,
}

impl Months {
    /// The base tables and October's delivery, with `billing` appended to
    /// the configuration as its `[billing]` section.
    fn new(billing: &str) -> Months {
        let base = fixtures().join("rules/_base");
        let case = fixtures().join("rules/40_late_usage_regularised");
        let scratch = tempfile::tempdir().unwrap();
        let reference = scratch.path().join("reference");
        let source = scratch.path().join("ftp");
        copy_dir(&base.join("reference"), &reference);
        copy_dir(&case.join("ftp1"), &source);
        let ws = Workspace::new(&source, &reference, &base.join("integrator.toml"));
        if !billing.is_empty() {
            let config = ws.dir.path().join("mvnobill.toml");
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(&format!("\n[billing]\n{billing}\n"));
            std::fs::write(&config, text).unwrap();
        }
        Months {
            ws,
            case,
            source,
            reference,
            _scratch: scratch,
        }
    }

    /// The late delivery and the tables changed after October's issue.
    fn november_inputs(&self) {
        copy_dir(&self.case.join("ftp2"), &self.source);
        copy_dir(&self.case.join("reference2"), &self.reference);
    }

    fn run(&self, args: &[&str]) -> Output {
        self.ws.run(args)
    }
}

fn refused(out: Output) -> String {
    assert_eq!(out.status, 1, "expected a refusal: {}", out.stdout);
    let stderr = out.stderr.trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn months_are_issued_in_order() {
    let months = Months::new("");
    months
        .run(&["run", "--month", "2026-10", "--html-only"])
        .ok();
    months.run(&["rate", "--month", "2026-12"]).ok();
    assert_eq!(
        refused(months.run(&["bill", "--month", "2026-12"])),
        "error: cannot bill 2026-12: bill 2026-11 first (months are issued in order)"
    );
    assert_eq!(
        refused(months.run(&["bill", "--month", "2026-12", "--draft"])),
        "error: cannot bill 2026-12: bill 2026-11 first (months are issued in order)"
    );
    months.run(&["rate", "--month", "2026-09"]);
    assert_eq!(
        refused(months.run(&["bill", "--month", "2026-09"])),
        "error: cannot bill 2026-09: 2026-10 is issued already, and months are issued in order"
    );
    // Issued: the same again changes nothing; a draft of it is refused.
    let again = months
        .run(&["--json", "bill", "--month", "2026-10"])
        .ok()
        .json();
    assert_eq!(again["closed"], true);
    assert_eq!(
        refused(months.run(&["bill", "--month", "2026-10", "--draft"])),
        "error: month 2026-10 is issued: a draft is for a month not issued yet"
    );
}

#[test]
fn the_first_month_and_sequence_continue_an_earlier_system() {
    let months = Months::new("first_month = \"2026-10\"\nfirst_sequence = 42");
    months.run(&["sync"]).ok();
    months.run(&["land"]).ok();
    months.run(&["rate", "--month", "2026-09"]).ok();
    assert_eq!(
        refused(months.run(&["bill", "--month", "2026-09"])),
        "error: cannot bill 2026-09: [billing] first_month is 2026-10"
    );
    months.run(&["rate", "--month", "2026-10"]).ok();
    let bill = months
        .run(&["--json", "bill", "--month", "2026-10"])
        .ok()
        .json();
    // Three customers, numbered from 42 in customer order (rating.md §7).
    assert_eq!(bill["first_number"], "EXM-2026-000042");
    assert_eq!(bill["last_number"], "EXM-2026-000044");
    let bad = Months::new("first_sequence = 0");
    let out = bad.run(&["bill", "--month", "2026-10"]);
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("[billing] first_sequence: 0: give a number from 1 to 999999"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_draft_shows_the_issue_to_come_and_changes_nothing() {
    let months = Months::new("");
    months
        .run(&["run", "--month", "2026-10", "--html-only"])
        .ok();
    months.november_inputs();
    months.run(&["sync"]).ok();
    months.run(&["land"]).ok();
    months.run(&["rate", "--month", "2026-11"]).ok();
    let draft = months
        .run(&["--json", "bill", "--month", "2026-11", "--draft"])
        .ok()
        .json();
    // Twice: a draft replaces the one before and allocates nothing.
    let draft_again = months
        .run(&["--json", "bill", "--month", "2026-11", "--draft"])
        .ok()
        .json();
    assert_eq!(draft["total_ttc"], draft_again["total_ttc"]);
    assert_eq!(draft["first_number"], serde_json::Value::Null);
    assert_eq!(draft["regularised_months"], serde_json::json!(["2026-10"]));
    assert_eq!(draft["regularisation_ht"], "0.90");
    let lake = months.ws.lake();
    for table in ["draft_invoices", "draft_invoice_lines"] {
        assert!(
            lake.join(format!("drafts/month=2026-11/{table}/part-0.parquet"))
                .is_file(),
            "{table}"
        );
    }
    assert!(!lake.join("invoices/month=2026-11").exists());

    // The comparison with October, per customer (TTC): C1 loses a line
    // (24.00 -> 12.00, -50 %: flagged over 30 %), C2 and C3 move a little.
    let comparison = &draft["draft"];
    assert_eq!(comparison["previous_month"], "2026-10");
    assert_eq!(comparison["previous_total_ttc"], "66.36");
    let customers: Vec<(String, String, String, String, String)> = comparison["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap().to_string();
            (
                field("customer_id"),
                field("previous_ttc"),
                field("draft_ttc"),
                field("percent"),
                field("status"),
            )
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        (a.into(), b.into(), c.into(), d.into(), e.into())
    };
    assert_eq!(
        customers,
        vec![
            row("C1", "24.00", "12.00", "-50.0", "ALERT"),
            row("C2", "18.36", "18.48", "0.7", ""),
            row("C3", "24.00", "24.60", "2.5", ""),
        ]
    );
    let text_report = months
        .run(&["bill", "--month", "2026-11", "--draft"])
        .ok()
        .stdout;
    assert!(
        text_report.contains("against 2026-10 (total TTC 66.36 €): 3 customers, 0 new, 0 gone, 1 moved by more than 30 %"),
        "{text_report}"
    );
    assert!(text_report.contains("C1"), "{text_report}");
    assert!(
        !text_report.contains("C2 "),
        "only the outliers are listed: {text_report}"
    );

    // The issue gives the draft's amounts to the cent, numbered after
    // October's three invoices.
    let issue = months
        .run(&["--json", "bill", "--month", "2026-11"])
        .ok()
        .json();
    assert_eq!(issue["total_ttc"], draft["total_ttc"]);
    assert_eq!(issue["first_number"], "EXM-2026-000004");
    let issued = months.ws.query(
        "SELECT customer_id, CAST(total_ttc AS VARCHAR) AS total_ttc FROM invoices WHERE month = '2026-11' ORDER BY customer_id",
    );
    let issued: Vec<(String, String)> = issued
        .iter()
        .map(|r| (text(r, "customer_id"), text(r, "total_ttc")))
        .collect();
    let drafted: Vec<(String, String)> = customers
        .iter()
        .map(|c| (c.0.clone(), c.2.clone()))
        .collect();
    assert_eq!(issued, drafted);
    assert!(Path::new(&lake.join("credit_note_lines/month=2026-11/part-0.parquet")).is_file());
}
