//! The account over the months (account.md §1–4): months issued in order,
//! numbering continued from an earlier system, drafts before the issue.
//! The months are those of rule case 40 (tests/fixtures/rules/
//! 40_late_usage_regularised/, whose expected.toml has the arithmetic):
//! October delivered and issued, then a late delivery and changed tables
//! before November.

use std::path::Path;

use crate::common::{copy_dir, fixtures, text, Output, Workspace};

/// Rule case 40's months in a workspace of their own (also the months of
/// receivables.rs and payments.rs).
pub(crate) struct Months {
    pub(crate) ws: Workspace,
    case: std::path::PathBuf,
    source: std::path::PathBuf,
    pub(crate) reference: std::path::PathBuf,
    _scratch: tempfile::TempDir,
}

impl Months {
    /// The base tables and October's delivery, with `billing` appended to
    /// the configuration as its `[billing]` section.
    pub(crate) fn new(billing: &str) -> Months {
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
    pub(crate) fn november_inputs(&self) {
        copy_dir(&self.case.join("ftp2"), &self.source);
        copy_dir(&self.case.join("reference2"), &self.reference);
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
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

/// One CDR of the three months' traffic, with the day it is delivered.
struct Event {
    delivered: chrono::NaiveDate,
    row: String,
}

/// Three months of traffic on the base tables' four lines, delivered as the
/// MVNE does: day D on D+1, Monday to Saturday (a Sunday's delivery waits
/// for Monday); roaming events five days later still (partners are late).
/// Deterministic: a small linear congruential generator.
fn three_months_of_traffic() -> Vec<Event> {
    use chrono::{Datelike, Duration, NaiveDate, Weekday};
    let mut state: u64 = 20261001;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let lines = ["33600000001", "33600000002", "33600000003", "33600000004"];
    let mut events = Vec::new();
    let mut day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let mut id = 0;
    while day < NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() {
        for _ in 0..6 {
            id += 1;
            let line = lines[next(4) as usize];
            let imsi = format!("2080106{}", &line[3..]);
            let time = format!(
                "{} {:02}:{:02}:{:02}",
                day.format("%d/%m/%Y"),
                9 + next(9),
                next(60),
                next(60)
            );
            let roaming = id % 5 == 0;
            let visited = if roaming { "22801" } else { "20801" };
            let row = match next(3) {
                0 => format!(
                    "T{id:05};{line};{imsi};VOICE;{time};3365000{:04};{};;;{visited};0,0100",
                    next(10000),
                    1 + next(400)
                ),
                1 => format!(
                    "T{id:05};{line};{imsi};SMS;{time};3367000{:04};;;1;{visited};0,0010",
                    next(10000)
                ),
                _ => format!(
                    "T{id:05};{line};{imsi};DATA;{time};;;{};;{visited};0,0200",
                    1 + next(300)
                ),
            };
            let mut delivered = day + Duration::days(if roaming { 6 } else { 1 });
            if delivered.weekday() == Weekday::Sun {
                delivered += Duration::days(1);
            }
            events.push(Event { delivered, row });
        }
        day = day.succ_opt().unwrap();
    }
    events
}

/// Writes the events delivered on a day as that day's file.
fn deliver(source: &Path, events: &[Event], on: chrono::NaiveDate) {
    let rows: Vec<&str> = events
        .iter()
        .filter(|e| e.delivered == on)
        .map(|e| e.row.as_str())
        .collect();
    if rows.is_empty() {
        return;
    }
    let folder = source.join("RatedCDRs");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join(format!("RatedCDRs_{}_100000.csv", on.format("%Y%m%d"))),
        format!(
            "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur\n{}\n",
            rows.join("\n")
        ),
    )
    .unwrap();
}

/// What a lake invoiced, per customer, month billed and line key: the
/// invoice lines (a regularisation counts for the month it corrects) less
/// the regularisation credit notes' lines.
fn invoiced(
    ws: &Workspace,
) -> std::collections::BTreeMap<(String, String, String), rust_decimal::Decimal> {
    use std::str::FromStr;
    let mut out = std::collections::BTreeMap::new();
    let mut add = |rows: Vec<serde_json::Map<String, serde_json::Value>>, sign: i64| {
        for r in rows {
            let key = (
                text(&r, "customer_id"),
                text(&r, "period"),
                text(&r, "line_key"),
            );
            let amount = rust_decimal::Decimal::from_str(&text(&r, "amount_ht")).unwrap();
            *out.entry(key).or_insert(rust_decimal::Decimal::ZERO) +=
                amount * rust_decimal::Decimal::from(sign);
        }
    };
    add(
        ws.query("SELECT customer_id, period, line_key, CAST(amount_ht AS VARCHAR) AS amount_ht FROM invoice_lines"),
        1,
    );
    if ws.lake().join("credit_note_lines").exists() {
        add(
            ws.query("SELECT customer_id, period, line_key, CAST(amount_ht AS VARCHAR) AS amount_ht FROM credit_note_lines"),
            -1,
        );
    }
    out.retain(|_, amount| !amount.is_zero());
    out
}

/// account.md §4: three months delivered day by day, late files included,
/// each billed on the 2nd of the next month, with a termination entered
/// back-dated: every CDR and every change reaches an invoice exactly once.
/// What the day-by-day lake invoiced over the months (and January's issue,
/// which regularises December) equals, per customer, month and line, to the
/// cent, what a lake that received everything at once invoices.
#[test]
fn three_months_delivered_day_by_day_invoice_everything_once() {
    use chrono::{Duration, NaiveDate};
    let events = three_months_of_traffic();
    let months = Months::new("");
    // The first lake: day by day, billing each month on the 2nd.
    std::fs::remove_dir_all(&months.source).unwrap();
    std::fs::create_dir_all(&months.source).unwrap();
    let mut day = NaiveDate::from_ymd_opt(2026, 10, 2).unwrap();
    let bills = [
        ("2026-10", NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()),
        ("2026-11", NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()),
        ("2026-12", NaiveDate::from_ymd_opt(2027, 1, 2).unwrap()),
        ("2027-01", NaiveDate::from_ymd_opt(2027, 2, 2).unwrap()),
    ];
    let terminated = std::fs::read_to_string(months.case.join("reference2/subscriptions.csv"))
        .unwrap()
        .replace("2026-10-15", "2026-11-20");
    for (month, on) in bills {
        while day <= on {
            deliver(&months.source, &events, day);
            day += Duration::days(1);
        }
        if month == "2026-12" {
            // Entered on 2 January: line 2 ended on 20 November.
            std::fs::write(months.reference.join("subscriptions.csv"), &terminated).unwrap();
        }
        let report = months
            .run(&["--json", "run", "--month", month, "--html-only"])
            .ok()
            .json();
        assert_eq!(report["land"]["totals"]["quarantined"], 0, "{month}");
    }
    let late = events
        .iter()
        .filter(|e| {
            e.delivered > NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
                && e.row.contains("/10/2026")
        })
        .count();
    let roaming = events.iter().filter(|e| e.row.contains(";22801;")).count();
    assert!(
        late > 0,
        "some October CDRs arrive after October's issue ({roaming} roaming of {})",
        events.len()
    );
    let november = months
        .run(&["--json", "bill", "--month", "2026-11"])
        .ok()
        .json();
    assert_eq!(november["closed"], true);
    // Every late CDR of the three months was carried by a regularisation.
    for month in ["2026-10", "2026-11", "2026-12"] {
        let assure = months
            .run(&["--json", "assure", "--month", month])
            .ok()
            .json();
        assert_eq!(assure["late_to_regularise"], 0, "{month}");
        assert_eq!(assure["late_lost"], 0, "{month}");
        assert_eq!(assure["late_cdrs"], assure["late_regularised"], "{month}");
    }
    let day_by_day = invoiced(&months.ws);

    // The second lake: every file and the final tables from the start.
    let all = Months::new("");
    std::fs::remove_dir_all(&all.source).unwrap();
    std::fs::create_dir_all(&all.source).unwrap();
    let mut day = NaiveDate::from_ymd_opt(2026, 10, 2).unwrap();
    while day <= NaiveDate::from_ymd_opt(2027, 2, 2).unwrap() {
        deliver(&all.source, &events, day);
        day += Duration::days(1);
    }
    std::fs::write(all.reference.join("subscriptions.csv"), &terminated).unwrap();
    for (month, _) in bills {
        all.run(&["run", "--month", month, "--html-only"]).ok();
    }
    let at_once = invoiced(&all.ws);
    assert_eq!(day_by_day, at_once);
    // Not trivially: the day-by-day lake regularised, and credited line 2.
    let regularisations = months
        .ws
        .query("SELECT COUNT(*) AS n FROM invoice_lines WHERE kind = 'REGULARISATION'");
    assert_ne!(text(&regularisations[0], "n"), "0");
    let notes = months
        .ws
        .query("SELECT customer_id, invoice_month FROM credit_notes");
    assert!(
        notes
            .iter()
            .any(|n| text(n, "customer_id") == "C1" && text(n, "invoice_month") == "2026-11"),
        "{notes:?}"
    );
    let total = |ws: &Workspace| {
        ws.query("SELECT CAST(SUM(amount) AS VARCHAR) AS s FROM rated_cdrs")
            .first()
            .map(|r| text(r, "s"))
    };
    assert!(total(&all.ws).is_some());
}

/// account.md §6: every invoice prints, for each line committed during the
/// period, the end of its commitment; a draft too. Rule case 42's tables:
/// line 33600000004 of C3 committed 12 months from 2026-06-01, so until
/// 2027-05-31 (the day before the same day 12 months later).
#[test]
fn invoices_print_the_end_of_each_commitment() {
    let base = fixtures().join("rules/_base");
    let case = fixtures().join("rules/42_backdated_termination_fee");
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    copy_dir(&base.join("reference"), &reference);
    copy_dir(&case.join("reference"), &reference);
    let ws = Workspace::new(
        &case.join("ftp1"),
        &reference,
        &base.join("integrator.toml"),
    );
    for step in [&["sync"][..], &["land"], &["rate", "--month", "2026-10"]] {
        ws.run(step).ok();
    }
    ws.run(&["bill", "--month", "2026-10", "--draft"]).ok();
    ws.run(&["render", "--month", "2026-10", "--draft", "--html-only"])
        .ok();
    let draft =
        std::fs::read_to_string(ws.lake().join("documents/2026-10/drafts/DRAFT-C3.html")).unwrap();
    assert!(draft.contains("Engagement jusqu'au 31/05/2027"), "{draft}");
    ws.run(&["bill", "--month", "2026-10"]).ok();
    ws.run(&["render", "--month", "2026-10", "--html-only"])
        .ok();
    let number = text(
        &ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'C3'")[0],
        "invoice_number",
    );
    let page = std::fs::read_to_string(ws.lake().join(format!("documents/2026-10/{number}.html")))
        .unwrap();
    assert!(page.contains("Engagement jusqu'au 31/05/2027"), "{page}");
    // Only the committed line: C1's lines have no commitment.
    let c1 = text(
        &ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'C1'")[0],
        "invoice_number",
    );
    let page =
        std::fs::read_to_string(ws.lake().join(format!("documents/2026-10/{c1}.html"))).unwrap();
    assert!(!page.contains("Engagement"), "{page}");
    let recorded = ws.query(
        "SELECT msisdn, CAST(commitment_end AS VARCHAR) AS commitment_end FROM invoice_commitments",
    );
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(text(&recorded[0], "commitment_end"), "2027-05-31");
}
