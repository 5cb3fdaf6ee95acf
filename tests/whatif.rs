//! `whatif` (docs/WHATIF.md): the samples month re-rated under its actual
//! tariffs gives back its invoices' services HT to the cent, per customer
//! kind; a small fixture (`tests/fixtures/whatif/`) re-rated under grid 1,
//! grid 2 and a competitor offer against figures worked out by hand; the
//! chart parsed as XML; the ledger and the invoices untouched.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;

use crate::common::{copy_dir, fixtures, text, Workspace};

const MONTH: &str = "2026-10";

fn decimal(value: &serde_json::Value) -> Decimal {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a decimal string"));
    text.parse()
        .unwrap_or_else(|e| panic!("'{text}' is not a decimal: {e}"))
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The report's total of each alternative: name → (revenue, difference, margin, unpriced).
fn totals(report: &serde_json::Value) -> BTreeMap<String, (Decimal, Decimal, Decimal, u64)> {
    report["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alternative"].as_str().unwrap().to_string(),
                (
                    decimal(&a["revenue_ht"]),
                    decimal(&a["difference_ht"]),
                    decimal(&a["margin"]),
                    a["unpriced_cdrs"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// A segment list of the report: (segment, alternative) → revenue.
fn segments(report: &serde_json::Value, list: &str) -> BTreeMap<(String, String), Decimal> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                (
                    s["segment"].as_str().unwrap().to_string(),
                    s["alternative"].as_str().unwrap().to_string(),
                ),
                decimal(&s["revenue_ht"]),
            )
        })
        .collect()
}

/// The chart's bars: the `data-alternative` of each `<rect class="bar…">`,
/// in order; panics if the file is not well-formed XML.
fn chart_bars(path: &Path) -> Vec<String> {
    use quick_xml::events::Event;
    let svg = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut bars = Vec::new();
    let mut root = None;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                root.get_or_insert(name.clone());
                let attribute = |key: &str| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.as_ref() == key.as_bytes())
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                if name == "rect"
                    && attribute("class").is_some_and(|c| c.split(' ').any(|w| w == "bar"))
                {
                    bars.push(attribute("data-alternative").unwrap());
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{}: not well-formed XML: {e}", path.display()),
        }
    }
    assert_eq!(root.as_deref(), Some("svg"));
    bars
}

#[test]
fn samples_actual_alternative_reproduces_the_invoices() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    let invoices_file = ws
        .lake()
        .join(format!("invoices/month={MONTH}/part-0.parquet"));
    let invoices_before = std::fs::read(&invoices_file).unwrap();
    let numbers_before = ws.query("SELECT invoice_number FROM invoices ORDER BY invoice_number");

    let report = ws.run(&["--json", "whatif", "--month", MONTH]).ok().json();
    let totals = totals(&report);
    // The samples' lines use grids 1 to 5; no benchmark.csv: no offer.
    assert_eq!(
        totals.keys().cloned().collect::<Vec<_>>(),
        ["ACTUAL", "GRID_1", "GRID_2", "GRID_3", "GRID_4", "GRID_5"]
    );

    // Services HT of the issued invoices, per customer kind, from the lake.
    let invoiced: BTreeMap<String, Decimal> = ws
        .query(
            "SELECT c.kind, SUM(i.subscription_ht + i.options_ht + i.usage_ht) AS services,
                    SUM(i.usage_ht) AS usage
             FROM invoices i JOIN customers c ON c.customer_id = i.customer_id
             WHERE i.month = '2026-10' GROUP BY c.kind",
        )
        .iter()
        .map(|row| (text(row, "kind"), d(&text(row, "services"))))
        .collect();
    let all: Decimal = invoiced.values().sum();
    assert_eq!(totals["ACTUAL"].0, all, "ACTUAL against the invoices");
    assert_eq!(totals["ACTUAL"].1, Decimal::ZERO);
    assert_eq!(decimal(&report["invoiced_services_ht"]), all);
    let kinds = segments(&report, "by_customer_kind");
    for (kind, services) in &invoiced {
        assert_eq!(
            kinds[&(kind.clone(), "ACTUAL".to_string())],
            *services,
            "{kind}"
        );
    }

    // The dataset: usage of ACTUAL equals the invoices' usage to the cent,
    // and each alternative's difference is its revenue minus ACTUAL's.
    let usage = ws.query(
        "SELECT (SELECT SUM(usage_ht) FROM whatif WHERE month = '2026-10' AND alternative = 'ACTUAL') AS whatif,
                (SELECT SUM(usage_ht) FROM invoices WHERE month = '2026-10') AS invoiced",
    );
    assert_eq!(
        d(&text(&usage[0], "whatif")),
        d(&text(&usage[0], "invoiced"))
    );
    for (name, (revenue, difference, _, _)) in &totals {
        assert_eq!(*difference, *revenue - totals["ACTUAL"].0, "{name}");
    }
    // The margin against the finance stage's (services only: no equipment).
    let margin = ws.query(
        "SELECT SUM(retail_ht - equipment_ht) - SUM(wholesale) AS services_margin
         FROM margin WHERE month = '2026-10' AND customer_id IS NOT NULL",
    );
    assert_eq!(totals["ACTUAL"].2, d(&text(&margin[0], "services_margin")));

    // One bar per alternative, in order.
    let chart = ws
        .lake()
        .join(format!("documents/{MONTH}/whatif-{MONTH}.svg"));
    assert_eq!(
        chart_bars(&chart),
        totals.keys().cloned().collect::<Vec<_>>()
    );

    // Read-only: the invoices file and numbers are unchanged.
    assert_eq!(std::fs::read(&invoices_file).unwrap(), invoices_before);
    assert_eq!(
        ws.query("SELECT invoice_number FROM invoices ORDER BY invoice_number"),
        numbers_before
    );
}

/// The fixture of tests/fixtures/whatif: the rules' base reference and a
/// benchmark.csv, nine CDRs.
fn fixture() -> (tempfile::TempDir, Workspace) {
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    copy_dir(&fixtures().join("rules/_base/reference"), &reference);
    copy_dir(&fixtures().join("whatif/reference"), &reference);
    let ws = Workspace::new(
        &fixtures().join("whatif/ftp"),
        &reference,
        &fixtures().join("rules/_base/integrator.toml"),
    );
    (scratch, ws)
}

// Figures by hand, from rating.md and the fixture's files. Every line is a
// full October (31 days, no option): the fee is the monthly fee.
//
// ACTUAL (L1 33600000001 C1 B2C ZERO grid 1 10.00; L2 …02 C1 ZERO grid 2
// 10.00; L3 …03 C2 B2B S10 grid 1 15.00; L4 …04 C3 B2C ILL grid 2 20.00):
//   L1 W01 voice 90 s, grid 1 60/60 -> 120 s, pool 0: 0.10 x 120/60 = 0.20
//      W02 SMS 2, pool 0: 0.05 x 2 = 0.10
//      W03 data 2048 KB, 1/1, pool 0: 1.024 x 2048/1024 = 2.048 -> line 2.05
//      W04 voice roaming ROAM_Z1 30 s -> 60 s: 0.10 + 0.90 x 60/60 = 1.00
//      = 10.00 + 3.35 = 13.35
//   L2 W05 voice 90 s, grid 2 60/1 -> 90 s: 0.06 x 90/60 = 0.09 -> 10.09
//   L3 W06 voice 700 s -> 60 + 11 x 60 = 720, pool 600: 0.10 x 120/60 = 0.20
//      W07 data 1500 KB, pool 1024: 1.024 x 476/1024 = 0.476 -> 0.48
//      = 15.68
//   L4 ILL: voice unlimited, W09 1024 KB in 100 MB -> 20.00
//   total 59.12; B2C 43.44, B2B 15.68; ZERO 23.44, S10 15.68, ILL 20.00
// GRID_1: L2 on grid 1: 90 s -> 120 s: 0.20 -> 10.20; others as ACTUAL
//   (L4's data 1024 KB on 1/1 is covered): total 59.23; ZERO 23.55
// GRID_2: L1 on grid 2: W01 90 s -> 90: 0.06 x 90/60 = 0.09; W02 0.04 x 2
//      = 0.08; W03 2048 KB, 1024/1024 -> 2048: 0.50 x 2 = 1.00; W04
//      ROAM_Z1 grid 2 60/1 -> 60: 0.10 + 0.90 = 1.00 -> 12.17
//   L3 on grid 2: W06 700 s -> 700, pool 600: 0.06 x 100/60 = 0.10; W07
//      1500 KB -> 2048, pool 1024: 0.50 x 1024/1024 = 0.50 -> 15.60
//   total 12.17 + 10.09 + 15.60 + 20.00 = 57.86; B2C 42.26; ZERO 22.26
// OFFER_RIVAL: 8.99 a line; 10 min, 0 SMS, 0 MMS, 1 MB; voice 0.12/min +
//   0.05 connect, 1/1; SMS 0.02; data 0.10/MB, 1/1; roaming stays grid 1:
//   L1 W01 90 s in 600: 0; W02 0.02 x 2 = 0.04; W03 2048 - 1024 = 1024 KB:
//      0.10; W04 grid 1 ROAM_Z1: 1.00 -> 8.99 + 1.14 = 10.13
//   L2 90 s in 600 -> 8.99
//   L3 700 s, 100 over: 0.05 + 0.12 x 100/60 = 0.25; 1500 KB, 476 over:
//      0.10 x 476/1024 = 0.046484 -> 0.05 -> 8.99 + 0.30 = 9.29
//   L4 3000 s, 2400 over: 0.05 + 0.12 x 2400/60 = 4.85 -> 13.84
//   total 42.25; B2C 32.96, B2B 9.29; ZERO 19.12, S10 9.29, ILL 13.84
// Wholesale of the nine CDRs: 0.617; OFFER_RIVAL margin 42.25 - 0.617.
#[test]
fn hand_computed_grids_and_offer() {
    let (_scratch, ws) = fixture();
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    let out = ws.run(&["--json", "whatif", "--month", MONTH]).ok();
    let report = out.json();
    let outputs = [
        ws.lake()
            .join(format!("whatif/month={MONTH}/part-0.parquet")),
        ws.lake()
            .join(format!("documents/{MONTH}/whatif-{MONTH}.svg")),
    ];
    let first: Vec<Vec<u8>> = outputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let totals = totals(&report);
    let want = |revenue: &str, unpriced: u64| (d(revenue), d(revenue) - d("59.12"), unpriced);
    let got: BTreeMap<_, _> = totals
        .iter()
        .map(|(name, (revenue, difference, _, unpriced))| {
            (name.as_str(), (*revenue, *difference, *unpriced))
        })
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("ACTUAL", want("59.12", 0)),
            ("GRID_1", want("59.23", 0)),
            ("GRID_2", want("57.86", 0)),
            ("OFFER_RIVAL", want("42.25", 0)),
        ])
    );
    assert_eq!(totals["OFFER_RIVAL"].2, d("42.25") - d("0.617"));
    assert_eq!(report["invoiced_services_ht"], serde_json::Value::Null);
    assert_eq!(report["customers"], 3);
    assert_eq!(report["lines"], 4);

    let kinds = segments(&report, "by_customer_kind");
    for (kind, alternative, revenue) in [
        ("B2C", "ACTUAL", "43.44"),
        ("B2B", "ACTUAL", "15.68"),
        ("B2C", "GRID_1", "43.55"),
        ("B2C", "GRID_2", "42.26"),
        ("B2B", "GRID_2", "15.60"),
        ("B2C", "OFFER_RIVAL", "32.96"),
        ("B2B", "OFFER_RIVAL", "9.29"),
    ] {
        assert_eq!(
            kinds[&(kind.to_string(), alternative.to_string())],
            d(revenue),
            "{kind} {alternative}"
        );
    }
    let plans = segments(&report, "by_plan");
    for (plan, alternative, revenue) in [
        ("ZERO", "ACTUAL", "23.44"),
        ("S10", "ACTUAL", "15.68"),
        ("ILL", "ACTUAL", "20.00"),
        ("ZERO", "GRID_1", "23.55"),
        ("ZERO", "GRID_2", "22.26"),
        ("ZERO", "OFFER_RIVAL", "19.12"),
        ("S10", "OFFER_RIVAL", "9.29"),
        ("ILL", "OFFER_RIVAL", "13.84"),
    ] {
        assert_eq!(
            plans[&(plan.to_string(), alternative.to_string())],
            d(revenue),
            "{plan} {alternative}"
        );
    }

    // The dataset row of the offer for B2C on ZERO (L1 and L2).
    let rows = ws.query(
        "SELECT * FROM whatif WHERE month = '2026-10' AND alternative = 'OFFER_RIVAL'
         AND customer_kind = 'B2C' AND plan_code = 'ZERO'",
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for (column, value) in [
        ("alternative_kind", "OFFER"),
        ("offer", "RIVAL"),
        ("label", "Rival 10 min & 1 Mo <web>"),
        ("customers", "1"),
        ("lines", "2"),
        ("subscription_ht", "17.98"),
        ("options_ht", "0.00"),
        ("usage_ht", "1.14"),
        ("revenue_ht", "19.12"),
        ("actual_revenue_ht", "23.44"),
        ("difference_ht", "-4.32"),
        ("wholesale", "0.342000"),
        ("margin", "18.778000"),
        ("unpriced_cdrs", "0"),
    ] {
        assert_eq!(text(row, column), value, "{column}");
    }

    // The text report (a second run) names every alternative; the chart
    // has their bars and the offer's label escaped.
    let text_report = ws.run(&["whatif", "--month", MONTH]).ok().stdout;
    for name in [
        "ACTUAL",
        "GRID_1",
        "GRID_2",
        "OFFER_RIVAL",
        "B2B",
        "B2C",
        "ILL",
    ] {
        assert!(text_report.contains(name), "{name} in:\n{text_report}");
    }
    let chart = &outputs[1];
    assert_eq!(
        chart_bars(chart),
        ["ACTUAL", "GRID_1", "GRID_2", "OFFER_RIVAL"]
    );
    // That second run wrote the same bytes.
    for (path, bytes) in outputs.iter().zip(&first) {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{}", path.display());
    }
    let svg = std::fs::read_to_string(chart).unwrap();
    assert!(svg.contains("Rival 10 min &amp; 1 Mo &lt;web&gt;"), "{svg}");
}

#[test]
fn mistakes_are_one_line() {
    let (scratch, ws) = fixture();
    // Nothing landed yet.
    let out = ws.run(&["whatif", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: whatif 2026-10: no CDR landed for the month: run `mvnobill land` first"
    );
    // A decimal comma in benchmark.csv.
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    let benchmark = scratch.path().join("reference/benchmark.csv");
    let text = std::fs::read_to_string(&benchmark)
        .unwrap()
        .replace("8.99", "8,99");
    std::fs::write(&benchmark, text).unwrap();
    let out = ws.run(&["whatif", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "error: {} line 2, column monthly_fee: '8,99' is not a decimal number (the decimal separator here is '.')",
            benchmark.display()
        )
    );
}
