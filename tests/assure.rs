//! Revenue assurance (rating.md §8, `mvnobill assure`) on the samples: the
//! counts of `expected.json`'s `revenue_assurance`, and the euro totals and
//! the CDRs and lines involved, worked out from the fixture files by hand
//! (never from mvnobill's output); a month without its BilledCDRs file; CDRs
//! landed after the issue; the datasets read back with `query`.
//!
//! How the expected values were found, in `tests/fixtures/samples/`:
//!
//! - CDR comparisons: `ftp/BilledCDRs/BilledCDRs_202610.csv` against the
//!   first copy of each `cdr_id` in `ftp/RatedCDRs/*.csv` (files in name
//!   order), both for October by the Paris date of `start_time` (grep, then
//!   Python's `csv` module to compare the two sets of ids):
//!   - `RMISSING1` (line 33632261530, VOICE_IN of 01/10/2026 12:26:59) is
//!     only in BilledCDRs, billed `0,2665`;
//!   - `R20260000478` (line 33632260380, in RatedCDRs_20261002_080700.csv
//!     at `0,2201`) is not in BilledCDRs (the five other ids missing from
//!     it, BAD1 to BAD5, are the malformed rows that land in quarantine);
//!   - `R20260000703` (line 33632260475) is `0,1361` in
//!     RatedCDRs_20261002_080700.csv and `1,2345` in BilledCDRs: billed −
//!     landed = `1,0984`. (Its later copy at `9,9999` in
//!     RatedCDRs_20261102_143600.csv is the CONFLICTING_DUPLICATE.)
//! - Unbilled active lines: the msisdns ACTIVE in the three
//!   `ftp/AccountStatus/*.csv` snapshots of October that have no row in
//!   `reference/subscriptions.csv` overlapping October: 33702026000,
//!   33702026001, 33702026002 (other lines ACTIVE before their
//!   subscription starts, such as 33632260779 from 2026-10-18, do have a
//!   row in the month). Only 33702026000 has traffic: 35 October CDRs whose
//!   `wholesale_eur` add up to `6,0137`.
//! - Subscriptions on terminated lines: the lines some snapshot reports
//!   TERMINATED, with the Paris date of `status_since`, against their
//!   subscription rows and `reference/plan_fees.csv` (fee in force on the
//!   row's first day of October), fee × days after the termination / 31,
//!   rounded to the cent:
//!   - 33632260020 (C00001), terminated 02/10/2026, BLOC1H 12 months with
//!     handset at 13.99: 3–31 October, 29 days, 13.99 × 29 / 31 = 13.0868 →
//!     13.09;
//!   - 33632260918 (C00015), terminated 05/10/2026 (the 16/10 snapshot),
//!     ILL20 0 months at 15.99 from 2026-10-01: 26 days → 13.41;
//!   - 33632261189 (C00019), terminated 10/09/2026, ILL20 at 15.99: the
//!     whole month, 31 days → 15.99;
//!   - 33632261315 (C00022), terminated 10/09/2026, two rows: ILL20 until
//!     2026-10-04, 4 days → 15.99 × 4 / 31 = 2.0632 → 2.06; ILL100 at
//!     19.99 from 2026-10-05, 27 days → 17.4113 → 17.41.
//!
//!   5 rows, 117 days, 61.96 €.
//! - Rating exceptions: the counts per reason are `expected.json`'s; the
//!   NO_SUBSCRIPTION ones are the October CDRs of a line without a
//!   subscription row on their Paris date: 41 CDRs, `wholesale_eur`
//!   totalling `6,4974`; the conflicting copy of R20260000703 costs
//!   `9,9999`.

use std::collections::BTreeMap;

use crate::common::{fixtures, text, Workspace};

const MONTH: &str = "2026-10";

fn expected() -> serde_json::Value {
    let path = fixtures().join("samples/expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The summary rows as (kind, reason) → (findings, amount).
fn summary(ws: &Workspace) -> BTreeMap<(String, String), (String, String)> {
    ws.query(&format!(
        "SELECT kind, reason, findings, amount FROM assurance_summary WHERE month = '{MONTH}'"
    ))
    .iter()
    .map(|r| {
        (
            (text(r, "kind"), text(r, "reason")),
            (text(r, "findings"), text(r, "amount")),
        )
    })
    .collect()
}

fn findings(ws: &Workspace, kind: &str, columns: &str) -> Vec<Vec<String>> {
    let names: Vec<&str> = columns.split(", ").collect();
    ws.query(&format!(
        "SELECT {columns} FROM assurance WHERE month = '{MONTH}' AND kind = '{kind}' \
         ORDER BY msisdn, cdr_id, period_start"
    ))
    .iter()
    .map(|r| names.iter().map(|c| text(r, c)).collect())
    .collect()
}

fn row(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn samples_findings_match_expected_json_and_the_files_read_by_hand() {
    let expected = expected();
    let ws = Workspace::samples();
    // `run` ends with assure, with --html-only too.
    let report = ws
        .run(&["--json", "run", "--month", MONTH, "--html-only"])
        .ok()
        .json();
    let assure = &report["assure"];
    let counts = &expected["revenue_assurance"];
    for kind in [
        "billed_not_landed",
        "landed_not_billed",
        "amount_mismatch",
        "unbilled_active_lines",
    ] {
        assert_eq!(assure[kind], counts[kind], "{kind}");
    }
    assert_eq!(assure["issued"], true);
    assert_eq!(
        assure["billed_statement"],
        serde_json::json!(["BilledCDRs_202610.csv"])
    );
    assert_eq!(assure["landed_cdrs"], expected["month_cdrs"]);
    assert_eq!(assure["billed_cdrs"], 3951);
    assert_eq!(assure["billed_twice"], 0);
    assert_eq!(assure["terminated_line_subscriptions"], 5);
    assert_eq!(assure["late_cdrs"], 0);
    let exceptions: u64 = expected["exceptions"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(assure["rating_exceptions"], exceptions);
    // Leakage is every exception but the conflicting copy: the rate
    // stage's exception total less that copy's 9.9999.
    let rate_total: rust_decimal::Decimal = report["rate"]["exceptions_wholesale"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let leakage: rust_decimal::Decimal = assure["leakage_wholesale"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(leakage, rate_total - rust_decimal::Decimal::new(99999, 4));

    // The summary dataset: every kind, the exceptions per reason, exact sums.
    let all = summary(&ws);
    let s = |kind: &str, reason: &str| all[&(kind.to_string(), reason.to_string())].clone();
    let pair = |n: &str, amount: &str| (n.to_string(), amount.to_string());
    assert_eq!(all.len(), 11, "{all:?}");
    assert_eq!(s("BILLED_NOT_LANDED", ""), pair("1", "0.266500"));
    assert_eq!(s("LANDED_NOT_BILLED", ""), pair("1", "0.220100"));
    assert_eq!(s("AMOUNT_MISMATCH", ""), pair("1", "1.098400"));
    assert_eq!(s("BILLED_TWICE", ""), pair("0", "0.000000"));
    assert_eq!(s("UNBILLED_ACTIVE_LINE", ""), pair("3", "6.013700"));
    assert_eq!(
        s("TERMINATED_LINE_SUBSCRIPTION", ""),
        pair("5", "61.960000")
    );
    assert_eq!(
        s("RATING_EXCEPTION", "NO_SUBSCRIPTION"),
        pair("41", "6.497400")
    );
    assert_eq!(
        s("RATING_EXCEPTION", "CONFLICTING_DUPLICATE"),
        pair("1", "9.999900")
    );
    for (reason, count) in expected["exceptions"].as_object().unwrap() {
        assert_eq!(
            s("RATING_EXCEPTION", reason).0,
            count.as_u64().unwrap().to_string(),
            "{reason}"
        );
    }
    assert_eq!(s("LATE_CDR", ""), pair("0", "0.000000"));

    // The findings, one per CDR or line, with both wholesale sides.
    let cdr_columns = "cdr_id, msisdn, landed_wholesale, billed_wholesale, amount";
    assert_eq!(
        findings(&ws, "BILLED_NOT_LANDED", cdr_columns),
        vec![row(&[
            "RMISSING1",
            "33632261530",
            "",
            "0.266500",
            "0.266500"
        ])]
    );
    assert_eq!(
        findings(&ws, "LANDED_NOT_BILLED", cdr_columns),
        vec![row(&[
            "R20260000478",
            "33632260380",
            "0.220100",
            "",
            "0.220100"
        ])]
    );
    assert_eq!(
        findings(&ws, "AMOUNT_MISMATCH", cdr_columns),
        vec![row(&[
            "R20260000703",
            "33632260475",
            "0.136100",
            "1.234500",
            "1.098400"
        ])]
    );
    assert_eq!(
        findings(&ws, "UNBILLED_ACTIVE_LINE", "msisdn, cdrs, amount"),
        vec![
            row(&["33702026000", "35", "6.013700"]),
            row(&["33702026001", "0", "0.000000"]),
            row(&["33702026002", "0", "0.000000"]),
        ]
    );
    assert_eq!(
        findings(
            &ws,
            "TERMINATED_LINE_SUBSCRIPTION",
            "msisdn, customer_id, terminated_on, period_start, period_end, days, amount"
        ),
        vec![
            row(&[
                "33632260020",
                "C00001",
                "2026-10-02",
                "2026-10-03",
                "2026-10-31",
                "29",
                "13.090000"
            ]),
            row(&[
                "33632260918",
                "C00015",
                "2026-10-05",
                "2026-10-06",
                "2026-10-31",
                "26",
                "13.410000"
            ]),
            row(&[
                "33632261189",
                "C00019",
                "2026-09-10",
                "2026-10-01",
                "2026-10-31",
                "31",
                "15.990000"
            ]),
            row(&[
                "33632261315",
                "C00022",
                "2026-09-10",
                "2026-10-01",
                "2026-10-04",
                "4",
                "2.060000"
            ]),
            row(&[
                "33632261315",
                "C00022",
                "2026-09-10",
                "2026-10-05",
                "2026-10-31",
                "27",
                "17.410000"
            ]),
        ]
    );

    // Money is Decimal128 with 6 decimals in both datasets.
    for (table, column) in [
        ("assurance", "amount"),
        ("assurance", "billed_wholesale"),
        ("assurance_summary", "amount"),
    ] {
        let types = ws.query(&format!(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = '{table}' AND column_name = '{column}'"
        ));
        assert_eq!(
            text(&types[0], "data_type"),
            "Decimal128(18, 6)",
            "{table}.{column}"
        );
    }

    // The report for the finance reader: counts and euros, French notation.
    let out = ws.run(&["assure", "--month", MONTH]).ok();
    let report = out.stdout;
    for line in [
        "assure 2026-10 (month issued): 3951 landed CDRs, 3951 billed by the MVNE (BilledCDRs_202610.csv)",
        "billed by the MVNE, never landed         1 CDR      0,2665\u{a0}€ billed wholesale",
        "landed, not billed by the MVNE           1 CDR      0,2201\u{a0}€ landed wholesale",
        "billed at another wholesale amount       1 CDR      1,0984\u{a0}€ billed minus landed (billed 1,2345\u{a0}€, landed 0,1361\u{a0}€)",
        "lines active without a subscription      3 lines    6,0137\u{a0}€ wholesale of their 35 CDRs",
        "subscriptions on terminated lines        5 rows     61,96\u{a0}€ HT of plan fee for 117 days after termination",
        "NO_SUBSCRIPTION                        41         6,4974\u{a0}€ wholesale",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
}

#[test]
fn a_month_without_billed_cdrs_says_so_then_checks_it_once_it_lands() {
    let ws = Workspace::samples();
    let ftp = ws.dir.path().join("ftp");
    std::fs::remove_dir_all(ftp.join("BilledCDRs")).unwrap();
    let report = ws
        .run(&["--json", "run", "--month", MONTH, "--html-only"])
        .ok()
        .json();
    let assure = &report["assure"];
    assert_eq!(assure["billed_statement"], serde_json::json!([]));
    for kind in [
        "billed_not_landed",
        "landed_not_billed",
        "amount_mismatch",
        "billed_cdrs",
    ] {
        assert!(assure[kind].is_null(), "{kind} is not checked: {assure}");
    }
    // The other findings are reported all the same.
    assert_eq!(assure["unbilled_active_lines"], 3);
    assert_eq!(assure["terminated_line_subscriptions"], 5);
    assert_eq!(assure["rating_exceptions"], 49);
    let kinds: Vec<String> = summary(&ws).keys().map(|(kind, _)| kind.clone()).collect();
    assert!(!kinds.iter().any(|k| k == "BILLED_NOT_LANDED"), "{kinds:?}");
    let text_report = ws.run(&["assure", "--month", MONTH]).ok().stdout;
    assert!(
        text_report.contains(
            "no BilledCDRs file for 2026-10 in the lake: the MVNE's billing is not checked yet"
        ),
        "{text_report}"
    );
    assert!(text_report.contains("lines active without a subscription      3 lines"));

    // The statement arrives, this time with one event billed twice (its
    // row repeated at the end): the next assure compares it.
    let statement = fixtures().join("samples/ftp/BilledCDRs/BilledCDRs_202610.csv");
    let mut bytes = std::fs::read_to_string(statement).unwrap();
    let repeated = "R20260001205;33632260634;208010632260634;SMS;01/10/2026 08:04:18;33650787289;;;1;20820;0,2627\n";
    assert!(bytes.contains(repeated));
    bytes.push_str(repeated);
    std::fs::create_dir(ftp.join("BilledCDRs")).unwrap();
    std::fs::write(ftp.join("BilledCDRs/BilledCDRs_202610.csv"), bytes).unwrap();
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    let assure = ws.run(&["--json", "assure", "--month", MONTH]).ok().json();
    assert_eq!(assure["billed_cdrs"], 3952);
    assert_eq!(assure["billed_not_landed"], 1);
    assert_eq!(assure["landed_not_billed"], 1);
    assert_eq!(assure["amount_mismatch"], 1);
    assert_eq!(assure["billed_twice"], 1);
    assert_eq!(
        findings(
            &ws,
            "BILLED_TWICE",
            "cdr_id, msisdn, billed_wholesale, amount"
        ),
        vec![row(&[
            "R20260001205",
            "33632260634",
            "0.262700",
            "0.262700"
        ])]
    );
}

#[test]
fn cdrs_landed_after_the_issue_are_regularised_by_the_next_issue() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    // A delivery after the issue: one new October event (a call from
    // Switzerland), and an exact copy
    // of one already billed (counted once, not late).
    std::fs::write(
        ws.dir.path().join("ftp/RatedCDRs/RatedCDRs_20261105_090000.csv"),
        "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur\n\
         LATE1;33632260054;208010632260054;VOICE;31/10/2026 18:00:00;33612345678;120;;;22801;0,0500\n\
         R20260000478;33632260380;208010632260380;MMS;01/10/2026 10:54:56;33667424912;;;1;20810;0,2201\n",
    )
    .unwrap();
    let report = ws
        .run(&["--json", "run", "--month", MONTH, "--html-only"])
        .ok()
        .json();
    assert_eq!(report["rate"]["closed"], true);
    let assure = &report["assure"];
    assert_eq!(assure["late_cdrs"], 1);
    // The MVNE's statement does not hold it either.
    assert_eq!(assure["landed_not_billed"], 2);
    assert_eq!(
        findings(
            &ws,
            "LATE_CDR",
            "cdr_id, msisdn, landed_wholesale, amount, source_file"
        ),
        vec![row(&[
            "LATE1",
            "33632260054",
            "0.050000",
            "0.050000",
            "RatedCDRs_20261105_090000.csv"
        ])]
    );
    assert_eq!(assure["late_to_regularise"], 1);
    assert_eq!(assure["late_regularised"], 0);
    let text_report = ws.run(&["assure", "--month", MONTH]).ok().stdout;
    assert!(
        text_report.contains(
            "late CDRs, landed after the issue        1 CDR      0,05\u{a0}€ wholesale, to be regularised by the next issue"
        ),
        "{text_report}"
    );
    // November's issue bills October again: the late event is on it, as a
    // regularisation, and no longer waiting (account.md §4).
    ws.run(&["rate", "--month", "2026-11"]).ok();
    let bill = ws
        .run(&["--json", "bill", "--month", "2026-11"])
        .ok()
        .json();
    assert_eq!(bill["regularised_months"], serde_json::json!([MONTH]));
    let regularised = ws.query(
        "SELECT msisdn, event_type, zone, quantity, amount_ht, period FROM invoice_lines
         WHERE month = '2026-11' AND kind = 'REGULARISATION'",
    );
    assert_eq!(regularised.len(), 1, "{regularised:?}");
    assert_eq!(text(&regularised[0], "msisdn"), "33632260054");
    assert_eq!(text(&regularised[0], "period"), MONTH);
    // Roaming in Switzerland (ROAM_Z1, grid 4: 1.08 €/min, 0.10 to connect,
    // 30/30): 120 s -> 0.10 + 1.08 x 120 / 60 = 2.26.
    assert_eq!(text(&regularised[0], "zone"), "ROAM_Z1");
    assert_eq!(text(&regularised[0], "quantity"), "120");
    assert_eq!(text(&regularised[0], "amount_ht"), "2.26");
    let assure = ws.run(&["--json", "assure", "--month", MONTH]).ok().json();
    assert_eq!(assure["late_regularised"], 1);
    assert_eq!(assure["late_to_regularise"], 0);
    assert_eq!(assure["late_lost"], 0);
    let text_report = ws.run(&["assure", "--month", MONTH]).ok().stdout;
    assert!(
        text_report.contains("late CDRs, regularised"),
        "{text_report}"
    );
}

#[test]
fn assure_before_rate_says_what_to_do() {
    let ws = Workspace::samples();
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    let out = ws.run(&["assure", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: month 2026-10 is not rated yet: run `mvnobill rate --month 2026-10` first"
    );
}
