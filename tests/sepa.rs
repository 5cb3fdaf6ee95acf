//! The SEPA direct-debit file (pipeline/stages/sepa.rs): the samples month through
//! `run` (its `publish` writes the file) and `sepa`, validated against the
//! official pain.008.001.02 schema that the `sepaxml` package from PyPI
//! ships, its figures compared with `expected.json`'s invoice totals and
//! the customers' payment methods; mandates and creditor identifiers that
//! break the EPC's rules, each refused in one line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rust_decimal::Decimal;

use crate::common::{copy_dir, fixtures, python, Workspace};

const MONTH: &str = "2026-10";

/// The samples in a scratch copy (so a test can change a table).
fn samples_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("samples");
    copy_dir(&fixtures().join("samples"), &copy);
    (dir, copy)
}

fn workspace(samples: &Path) -> Workspace {
    Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    )
}

/// Validates a file against its XSD with `tests/python/check_sepa.py` and
/// returns what it says.
pub(crate) fn check(file: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_sepa.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// One customer of `customers.csv`, as the test reads it.
struct Customer {
    name: String,
    payment_method: String,
    iban: String,
    bic: String,
    rum: String,
    mandate_date: String,
}

fn customers(samples: &Path) -> BTreeMap<String, Customer> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(samples.join("reference/customers.csv"))
        .unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let get = |name: &str| record[column(name)].to_string();
        out.insert(
            get("customer_id"),
            Customer {
                name: get("name"),
                payment_method: get("payment_method"),
                iban: get("iban"),
                bic: get("bic"),
                rum: get("mandate_rum"),
                mandate_date: get("mandate_date"),
            },
        );
    }
    out
}

#[test]
fn the_samples_month_collects_every_direct_debit_invoice() {
    let samples = fixtures().join("samples");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(samples.join("expected.json")).unwrap())
            .unwrap();
    let customers = customers(&samples);
    // What the file must say, from expected.json and customers.csv: the
    // invoices are numbered from 1 in customer order (golden.rs checks it);
    // those paid by SEPA_DD with a positive total are collected.
    let mut wanted = Vec::new();
    let mut control_sum = Decimal::ZERO;
    let totals = expected["invoices"].as_object().unwrap();
    let sorted: BTreeMap<&String, &serde_json::Value> = totals.iter().collect();
    for (i, (customer_id, totals)) in sorted.into_iter().enumerate() {
        let customer = &customers[customer_id];
        let total: Decimal = totals["total_ttc"].as_str().unwrap().parse().unwrap();
        if customer.payment_method != "SEPA_DD" || total <= Decimal::ZERO {
            continue;
        }
        control_sum += total;
        wanted.push(serde_json::json!({
            "end_to_end_id": format!("EXM-2026-{:06}", i + 1),
            "amount": format!("{total:.2}"),
            "currency": "EUR",
            "mandate_id": customer.rum,
            "mandate_date": customer.mandate_date,
            "debtor_bic": customer.bic,
            "debtor_iban": customer.iban,
        }));
    }
    assert_eq!(wanted.len(), 20, "the samples changed");
    let control_sum = format!("{control_sum:.2}");

    let ws = Workspace::samples();
    let run = ws.run(&["--json", "run", "--month", MONTH]).ok();
    let report = &run.json()["publish"]["sepa"];
    assert_eq!(report["transactions"], 20);
    assert_eq!(report["control_sum"], control_sum.as_str());
    assert_eq!(report["first"], 20);
    assert_eq!(report["recurrent"], 0);
    assert_eq!(report["written"], true);
    assert_eq!(report["format"], "pain.008.001.02");
    let file = ws
        .lake()
        .join(format!("documents/{MONTH}/sepa-{MONTH}.xml"));
    assert_eq!(
        report["file"],
        format!("file://{}", file.display()).as_str()
    );

    let said = check(&file);
    assert_eq!(said["format"], "pain.008.001.02");
    assert_eq!(said["message_id"], "EXM-SDD-202610");
    // The invoices' issue date: a re-run says the same.
    assert_eq!(said["created"], "2026-11-01T00:00:00");
    assert_eq!(said["transactions"], "20");
    assert_eq!(said["control_sum"], control_sum.as_str());
    assert_eq!(said["initiating_party"], "Telco Exemple SAS");
    let payments = said["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "one date, one sequence type: {said}");
    let payment = &payments[0];
    for (field, value) in [
        ("id", "EXM-SDD-202610-FRST-20261116"),
        ("method", "DD"),
        ("transactions", "20"),
        ("control_sum", control_sum.as_str()),
        ("service_level", "SEPA"),
        ("local_instrument", "CORE"),
        // Each mandate's first collection.
        ("sequence_type", "FRST"),
        // Issue date 2026-11-01 + payment_terms_days 15 of integrator.toml.
        ("collection_date", "2026-11-16"),
        ("creditor", "Telco Exemple SAS"),
        ("creditor_iban", "FR7630006000011234567890189"),
        ("creditor_bic", "AGRIFRPPXXX"),
        ("charge_bearer", "SLEV"),
        ("creditor_id", "FR72ZZZ123456"),
        ("creditor_id_scheme", "SEPA"),
    ] {
        assert_eq!(payment[field], value, "{field}");
    }
    let debits = payment["debits"].as_array().unwrap();
    let mut names = BTreeMap::new();
    let got: Vec<serde_json::Value> = debits
        .iter()
        .map(|d| {
            names.insert(
                d["end_to_end_id"].as_str().unwrap().to_string(),
                d["debtor"].as_str().unwrap().to_string(),
            );
            assert_eq!(
                d["remittance"],
                format!(
                    "Facture {} du 01/11/2026",
                    d["end_to_end_id"].as_str().unwrap()
                )
                .as_str()
            );
            let mut d = d.clone();
            let object = d.as_object_mut().unwrap();
            object.remove("debtor");
            object.remove("remittance");
            d
        })
        .collect();
    assert_eq!(got, wanted);
    // Names in the SEPA Latin character set.
    assert_eq!(names["EXM-2026-000001"], "SARL Dupont + Fils");
    assert_eq!(names["EXM-2026-000003"], "Elodie Muller");
    assert_eq!(names["EXM-2026-000004"], "Zoe O'Brien");
    assert_eq!(names["EXM-2026-000009"], "EURL Cafe 'Le Port'");
    assert_eq!(names["EXM-2026-000012"], "SAS Batiments (Ouest)");
    assert!(customers["C00003"].name.starts_with('É'));

    // The file is the bank's, not the customers': it is not published.
    let published = ws.dir.path().join(format!("ftp/Factures/Clients/{MONTH}"));
    assert!(published.join("EXM-2026-000001.pdf").exists());
    assert!(std::fs::read_dir(&published).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".xml")));

    // `sepa` again: the same bytes, not written again, still FRST.
    let bytes = std::fs::read(&file).unwrap();
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let again = ws.run(&["--json", "sepa", "--month", MONTH]).ok();
    let report = again.json();
    assert_eq!(report["written"], false);
    assert_eq!(report["transactions"], 20);
    assert_eq!(report["first"], 20);
    assert_eq!(report["control_sum"], control_sum.as_str());
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        modified
    );
    let text = ws.run(&["sepa", "--month", MONTH]).ok();
    // The report, then how long it took.
    let (report_line, took) = text.stdout.trim_end().split_once('\n').unwrap();
    assert!(
        took.starts_with("sepa took ") && took.ends_with(" s"),
        "{took}"
    );
    assert_eq!(
        report_line,
        format!(
            "sepa {MONTH}: 20 direct debits (20 FRST, 0 RCUR), control sum {control_sum} EUR, collected on 2026-11-16, in file://{} (pain.008.001.02, unchanged)",
            file.display()
        )
    );

    // pain.008.001.08 on request, beside: the same content, valid against
    // its own schema.
    let eight = ws
        .run(&[
            "--json",
            "sepa",
            "--month",
            MONTH,
            "--format",
            "pain.008.001.08",
        ])
        .ok();
    let eight_file = ws.lake().join(format!(
        "documents/{MONTH}/sepa-{MONTH}.pain.008.001.08.xml"
    ));
    assert_eq!(eight.json()["format"], "pain.008.001.08");
    let said_eight = check(&eight_file);
    assert_eq!(said_eight["format"], "pain.008.001.08");
    let mut same = said.clone();
    same["format"] = "pain.008.001.08".into();
    assert_eq!(said_eight, same);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // The IBANs are in the file, never in a report or a log.
    for output in [&run, &again, &text, &eight] {
        for customer in customers.values().filter(|c| !c.iban.is_empty()) {
            assert!(!output.stdout.contains(&customer.iban));
            assert!(!output.stderr.contains(&customer.iban));
        }
    }
}

#[test]
fn sepa_is_in_help_and_needs_a_billed_month() {
    let help = crate::common::mvnobill(&["--help"], &fixtures()).ok();
    assert!(help.stdout.contains("  sepa "), "{}", help.stdout);
    let ws = Workspace::samples();
    let out = ws.run(&["sepa", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr.trim_end(),
        format!("error: month {MONTH} is not billed: run `mvnobill bill --month {MONTH}` (or `mvnobill run --month {MONTH}`) first")
    );
}

/// Runs `args` on a copy of the samples where `file` has `from` replaced by
/// `to`, and returns its one line of error.
fn one_line_error(file: &str, from: &str, to: &str, args: &[&str]) -> String {
    let (_keep, samples) = samples_copy();
    let path = samples.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let out = workspace(&samples).run(args);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let stderr = out.stderr.trim_end().to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn broken_mandates_and_creditor_identifiers_are_one_line_each() {
    // `rate` loads the reference tables, `bill` the integrator's file,
    // before anything else.
    let rate = ["rate", "--month", MONTH];
    let bill = ["bill", "--month", MONTH];
    let long_rum = format!("RUM-C00002-{}", "0".repeat(25));
    let cases: [(&str, &str, &str, &[&str], String); 6] = [
        (
            "reference/customers.csv",
            "FR3014170753645568151884472",
            "FR3014170753645568151884473",
            &rate,
            "customers.csv line 2, column iban: the IBAN's check digits are wrong".into(),
        ),
        (
            "reference/customers.csv",
            "FR4170107981933190845205997",
            "FR41701079819331908452059",
            &rate,
            "customers.csv line 3, column iban: an IBAN of FR has 27 characters, this one has 25"
                .into(),
        ),
        (
            "reference/customers.csv",
            "RUM-C00002-001",
            &long_rum,
            &rate,
            format!("customers.csv line 3, column mandate_rum: '{long_rum}' has 36 characters, a RUM has at most 35"),
        ),
        (
            "reference/customers.csv",
            "RUM-C00003-001",
            "RUM_C00003-001",
            &rate,
            "customers.csv line 4, column mandate_rum: 'RUM_C00003-001' has the character '_', a RUM has only A-Z a-z 0-9 / - ? : ( ) . , ' + and space".into(),
        ),
        (
            "reference/customers.csv",
            "RUM-C00004-001",
            "RUM-C00004-001/",
            &rate,
            "customers.csv line 5, column mandate_rum: 'RUM-C00004-001/': a RUM does not start or end with '/' nor contain '//'".into(),
        ),
        (
            "integrator.toml",
            "FR72ZZZ123456",
            "FR27ZZZ123456",
            &bill,
            "integrator.toml line 13, key sepa_ics: 'FR27ZZZ123456': the check digits are wrong (mod 97-10 of the identifier without its business code gives 72)".into(),
        ),
    ];
    for (file, from, to, args, message) in cases {
        let stderr = one_line_error(file, from, to, args);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.ends_with(&message), "{file} {to}:\n{stderr}");
        if message.contains("column iban") {
            // The IBAN at fault is not repeated.
            assert!(!stderr.contains(to), "{stderr}");
        }
    }
}

#[test]
fn a_mandate_signed_after_the_invoice_is_refused() {
    let (_keep, samples) = samples_copy();
    let ws = workspace(&samples);
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    let customers = samples.join("reference/customers.csv");
    let text = std::fs::read_to_string(&customers).unwrap();
    let changed = text.replacen("RUM-C00004-001;2025-06-01", "RUM-C00004-001;2026-11-20", 1);
    assert_ne!(changed, text, "the samples changed: C00004's mandate");
    std::fs::write(&customers, changed).unwrap();
    let out = ws.run(&["sepa", "--month", MONTH]);
    assert_eq!(out.status, 1);
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.ends_with("customers.csv line 5, column mandate_date: the mandate is signed on 2026-11-20, after 2026-11-01, the issue date of the invoice it would collect"),
        "{stderr}"
    );
    assert!(!ws
        .lake()
        .join(format!("documents/{MONTH}/sepa-{MONTH}.xml"))
        .exists());
}

/// account.md §8: a debit is collected no earlier than the pre-notification
/// days after the issue, on a TARGET business day; the invoice and the file
/// say the same day. Issued 2026-11-01, due 15 days later (16 November); with
/// `[sepa] prenotification_days = 30` the debit waits until 1 December (a
/// Tuesday, a business day). The calendar itself (Easter Monday 2027,
/// Christmas 2026, Sundays) is unit-tested in pipeline/core/calendar.rs.
#[test]
fn debits_wait_for_the_pre_notification_and_a_business_day() {
    let (_dir, samples) = samples_copy();
    let ws = workspace(&samples);
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[sepa]\nprenotification_days = 30\n");
    std::fs::write(&config, text).unwrap();
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    let report = ws.run(&["--json", "sepa", "--month", MONTH]).ok().json();
    assert_eq!(
        report["collection_dates"],
        serde_json::json!(["2026-12-01"])
    );
    let file = ws
        .lake()
        .join(format!("documents/{MONTH}/sepa-{MONTH}.xml"));
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(
        xml.contains("<ReqdColltnDt>2026-12-01</ReqdColltnDt>"),
        "{xml}"
    );
    assert!(!xml.contains("2026-11-16"), "{xml}");
    // The invoice of a direct-debit customer says so (C00001 pays by SEPA).
    let number = crate::common::text(
        &ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'C00001'")[0],
        "invoice_number",
    );
    let page = std::fs::read_to_string(ws.lake().join(format!("documents/{MONTH}/{number}.html")))
        .unwrap();
    assert!(page.contains("prélevé le 01/12/2026"), "{page}");
    let bad = std::fs::read_to_string(&config)
        .unwrap()
        .replace("prenotification_days = 30", "prenotification_days = 0");
    std::fs::write(&config, bad).unwrap();
    let out = ws.run(&["sepa", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert!(
        out.stderr
            .contains("[sepa] prenotification_days: 0: give 1 to 60 days"),
        "{}",
        out.stderr
    );
}
