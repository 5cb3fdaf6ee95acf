//! The EN 16931 business rules over the Factur-X XML mvnobill writes: the
//! official compiled Schematron (tests/fixtures/validators/en16931/) run by
//! `tests/python/check_en16931.py` with SaxonC-HE, as a receiving platform
//! runs it first. No `failed-assert` of flag `fatal` is allowed.
//!
//! Here the documents of every VAT category of rating.md §6, built through
//! the library (`mvnobill::documents::facturx`) from documents this test
//! lays out, hand-computed; the samples month's files are checked in
//! `documents.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use chrono::NaiveDate;
use mvnobill::documents::document::{
    vat_breakdown, Customer, InvoiceDocument, InvoiceLine, Payment, VatAmount,
};
use mvnobill::documents::facturx::{self, CreditedInvoice};
use mvnobill::reference::integrator::Integrator;
use rust_decimal::Decimal;

use crate::common::{fixtures, python};

/// The failed asserts of the Schematron on each file, as
/// `check_en16931.py` prints them (file → list of {id, flag, text}).
pub(crate) fn schematron(files: &[PathBuf]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_en16931.py");
    let out = Command::new(python())
        .arg(script)
        .args(files)
        .output()
        .expect("python runs");
    assert!(
        out.status.code().is_some_and(|code| code <= 1),
        "check_en16931.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check_en16931.py prints JSON")
}

/// The fatal failures of the Schematron, one line each: `file: [id] text`.
pub(crate) fn fatal(results: &serde_json::Value) -> Vec<String> {
    let mut failures = Vec::new();
    for (file, asserts) in results.as_object().expect("an object") {
        for assert in asserts.as_array().expect("a list") {
            if assert["flag"] == "fatal" {
                failures.push(format!("{file}: [{}] {}", assert["id"], assert["text"]));
            }
        }
    }
    failures
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn integrator() -> Integrator {
    toml::from_str(&std::fs::read_to_string(fixtures().join("samples/integrator.toml")).unwrap())
        .unwrap()
}

fn customer(id: &str, country: &str, postcode: &str, vat_number: &str) -> Customer {
    Customer {
        customer_id: id.to_string(),
        kind: "B2B".to_string(),
        name: format!("Entreprise {id}"),
        address1: "1 rue de l'Église".to_string(),
        address2: String::new(),
        postcode: postcode.to_string(),
        city: "Ville".to_string(),
        country: country.to_string(),
        email: "compta@example.com".to_string(),
        vat_number: vat_number.to_string(),
        siret: if country == "FR" {
            "12345678900017".to_string()
        } else {
            String::new()
        },
    }
}

/// A line of kind `kind` (`EQUIPMENT` for a handset) at `amount` HT in
/// category `category` at `rate` %, with the exemption text of rating.md §6.
fn line(kind: &str, label: &str, amount: &str, category: &str, rate: &str) -> InvoiceLine {
    let exemption = match category {
        "E" => "Exonération de TVA, article 261 C du CGI",
        "G" => "Exonération de TVA, article 262 I du CGI",
        "K" => "Exonération de TVA, article 262 ter I du CGI",
        "AE" => "Autoliquidation",
        "O" => "Hors champ d'application de la TVA (article 294 du CGI)",
        _ => "",
    };
    InvoiceLine {
        kind: kind.to_string(),
        msisdn: "33612345678".to_string(),
        label: label.to_string(),
        code: "CODE".to_string(),
        event_type: String::new(),
        zone: String::new(),
        quantity: Decimal::ONE,
        unit_price: Some(dec(amount)),
        amount_ht: dec(amount),
        period_start: Some(day(2026, 10, 1)),
        period_end: Some(day(2026, 10, 31)),
        period: String::new(),
        vat_category: category.to_string(),
        vat_rate: dec(rate),
        vat_exemption: exemption.to_string(),
    }
}

/// An invoice of `lines` for `customer`; `total_vat` hand-computed, checked
/// against the library's breakdown.
fn invoice(
    number: &str,
    customer: Customer,
    lines: Vec<InvoiceLine>,
    total_vat: &str,
) -> InvoiceDocument {
    let total_ht: Decimal = lines.iter().map(|line| line.amount_ht).sum();
    let total_vat = dec(total_vat);
    let vat = vat_breakdown(&lines, total_vat).unwrap_or_else(|e| panic!("{number}: {e}"));
    let sum = |kind: &str| -> Decimal {
        lines
            .iter()
            .filter(|line| line.kind == kind)
            .map(|line| line.amount_ht)
            .sum()
    };
    InvoiceDocument {
        invoice_number: number.to_string(),
        month: "2026-10".to_string(),
        issue_date: day(2026, 11, 2),
        due_date: day(2026, 11, 17),
        period_start: day(2026, 10, 1),
        period_end: day(2026, 10, 31),
        integrator: integrator(),
        customer,
        subscription_ht: sum("SUBSCRIPTION"),
        options_ht: sum("OPTION"),
        usage_ht: Decimal::ZERO,
        equipment_ht: sum("EQUIPMENT"),
        charges_ht: Decimal::ZERO,
        regularisation_ht: Decimal::ZERO,
        lines,
        total_ht,
        vat,
        total_vat,
        total_ttc: total_ht + total_vat,
        balance_brought_forward: Decimal::ZERO,
        amount_due: total_ht + total_vat,
        payment: Payment {
            method: "TRANSFER".to_string(),
            creditor_id: String::new(),
            mandate_rum: String::new(),
            mandate_date: None,
            iban_masked: String::new(),
            debit_date: day(2026, 11, 17),
            bank_iban: "FR7630006000011234567890189".to_string(),
            bank_bic: "AGRIFRPPXXX".to_string(),
        },
        annex: Vec::new(),
        commitments: Default::default(),
    }
}

fn plan(category: &str, rate: &str) -> InvoiceLine {
    line("SUBSCRIPTION", "Forfait Pro 20 Go", "29.99", category, rate)
}

fn insurance(category: &str) -> InvoiceLine {
    line("OPTION", "Assurance mobile", "7.50", category, "0")
}

fn handset(category: &str, rate: &str) -> InvoiceLine {
    line("EQUIPMENT", "Smartphone X", "199.17", category, rate)
}

/// The invoices of every category of rating.md §6, VAT hand-computed.
fn every_category() -> Vec<InvoiceDocument> {
    let paris = || customer("C1", "FR", "75002", "FR40123456789");
    vec![
        // Mainland France: 29.99 + 199.17 = 229.16 × 20 % = 45.832 → 45.83.
        invoice(
            "EXM-2026-S20",
            paris(),
            vec![plan("S", "20.00"), handset("S", "20.00")],
            "45.83",
        ),
        // An exempt option beside a standard plan: 29.99 × 20 % = 6.00,
        // 7.50 exempt.
        invoice(
            "EXM-2026-SE",
            paris(),
            vec![plan("S", "20.00"), insurance("E")],
            "6.00",
        ),
        // La Réunion (974): 8.5 % on the plan, 2.549 → 2.55; the option
        // exempt; the handset an export (G).
        invoice(
            "EXM-2026-974",
            customer("C2", "FR", "97400", "FR40123456789"),
            vec![plan("S", "8.50"), insurance("E"), handset("G", "0")],
            "2.55",
        ),
        // Guyane (973): every line outside the scope of VAT, the exempt
        // option too.
        invoice(
            "EXM-2026-973",
            customer("C3", "FR", "97300", "FR40123456789"),
            vec![
                plan("O", "0"),
                line("OPTION", "Assurance mobile", "7.50", "O", "0"),
            ],
            "0.00",
        ),
        // A Belgian business with a VAT number: services reverse-charged,
        // the handset an intra-community supply, the option exempt.
        invoice(
            "EXM-2026-BE",
            customer("C4", "BE", "1000", "BE0123456749"),
            vec![plan("AE", "0"), insurance("E"), handset("K", "0")],
            "0.00",
        ),
    ]
}

#[test]
fn every_vat_category_passes_the_en16931_schematron() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let invoices = every_category();
    for doc in &invoices {
        let path = dir.path().join(format!("{}.xml", doc.invoice_number));
        std::fs::write(&path, facturx::cii_xml(doc)).unwrap();
        files.push(path);
    }
    // A partial credit note of 20.00 HT on the mixed S + E invoice (29.99 +
    // 7.50 = 37.49), split in proportion to the bases: 20 × 29.99 / 37.49 =
    // 15.9989… → 16.00 at 20 % (3.20), 20 × 7.50 / 37.49 = 4.0010… → 4.00
    // exempt.
    let mixed = &invoices[1];
    // (The split itself is `credit`'s, tested in pipeline/stages/credit.rs
    // and rule case 49; here its parts, as worked out above.)
    let parts = [
        VatAmount::standard(dec("20"), dec("16.00"), dec("3.20")),
        VatAmount {
            category: "E".to_string(),
            rate: dec("0"),
            base_ht: dec("4.00"),
            amount: dec("0"),
            exemption: mixed.vat[1].exemption.clone(),
        },
    ];
    assert_eq!(mixed.vat[1].category, "E");
    let mut note = invoice(
        "EXM-AV-2026-000001",
        mixed.customer.clone(),
        parts
            .iter()
            .map(|part| {
                let mut credit = line("CREDIT", "Avoir", "0", &part.category, "0");
                credit.amount_ht = part.base_ht;
                credit.vat_rate = part.rate;
                credit.vat_exemption = part.exemption.clone();
                credit
            })
            .collect(),
        "3.20",
    );
    note.issue_date = day(2026, 11, 20);
    let path = dir.path().join("EXM-AV-2026-000001.xml");
    std::fs::write(
        &path,
        facturx::credit_note_xml(
            &note,
            CreditedInvoice {
                number: &mixed.invoice_number,
                issue_date: mixed.issue_date,
            },
        ),
    )
    .unwrap();
    files.push(path);

    let results = schematron(&files);
    let failures = fatal(&results);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(results.as_object().unwrap().len(), files.len());
}

#[test]
fn each_category_writes_what_its_rules_ask() {
    let invoices = every_category();
    let xml = |number: &str| {
        facturx::cii_xml(
            invoices
                .iter()
                .find(|doc| doc.invoice_number == number)
                .unwrap(),
        )
    };
    let seller_vat = "<ram:ID schemeID=\"VA\">FR11123456782</ram:ID>";

    let standard = xml("EXM-2026-S20");
    assert!(standard.contains(seller_vat));
    assert!(!standard.contains("ExemptionReason"));
    assert!(!standard.contains("ShipToTradeParty"));

    let exempt = xml("EXM-2026-SE");
    assert!(exempt.contains(
        "<ram:ExemptionReason>Exonération de TVA, article 261 C du CGI</ram:ExemptionReason>"
    ));
    assert!(
        !exempt.contains("ExemptionReasonCode"),
        "no VATEX code for E"
    );

    let reunion = xml("EXM-2026-974");
    assert!(reunion.contains("<ram:RateApplicablePercent>8.5</ram:RateApplicablePercent>"));
    assert!(reunion.contains("<ram:ExemptionReasonCode>VATEX-EU-G</ram:ExemptionReasonCode>"));

    // Outside the scope: no VAT identifier, no rate, VATEX-EU-O.
    let guyane = xml("EXM-2026-973");
    assert!(!guyane.contains("schemeID=\"VA\""), "BR-O-02");
    assert!(
        !guyane.contains("RateApplicablePercent"),
        "BR-O-05, BR-O-09"
    );
    assert!(guyane.contains("<ram:ExemptionReasonCode>VATEX-EU-O</ram:ExemptionReasonCode>"));

    // Reverse charge and intra-community supply: both VAT numbers, the
    // deliver-to country.
    let belgian = xml("EXM-2026-BE");
    assert!(belgian.contains(seller_vat));
    assert!(belgian.contains("<ram:ID schemeID=\"VA\">BE0123456749</ram:ID>"));
    assert!(belgian.contains("<ram:ExemptionReasonCode>VATEX-EU-AE</ram:ExemptionReasonCode>"));
    assert!(belgian.contains("<ram:ExemptionReasonCode>VATEX-EU-IC</ram:ExemptionReasonCode>"));
    let ship_to = belgian
        .split("<ram:ShipToTradeParty>")
        .nth(1)
        .and_then(|rest| rest.split("</ram:ShipToTradeParty>").next())
        .expect("a deliver-to party (BR-IC-12)");
    assert!(ship_to.contains("<ram:CountryID>BE</ram:CountryID>"));
    assert_eq!(
        belgian.matches("<ram:ApplicableTradeTax>").count(),
        6,
        "3 lines and 3 categories"
    );
}

/// Every Factur-X PDF below `folder` (those embedding `factur-x.xml`).
fn facturx_pdfs(folder: &Path) -> Vec<PathBuf> {
    let mut pdfs: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "pdf"))
        .filter(|path| {
            std::fs::read(path)
                .unwrap()
                .windows(12)
                .any(|w| w == b"factur-x.xml")
        })
        .collect();
    pdfs.sort();
    pdfs
}

#[test]
fn the_samples_months_facturx_files_pass_the_en16931_schematron() {
    let ws = crate::common::Workspace::samples();
    ws.run(&["run", "--month", "2026-10"]).ok();
    // A partial credit note on a business's invoice (C00015's).
    let rows = ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'C00015'");
    let invoice = crate::common::text(&rows[0], "invoice_number");
    ws.run(&[
        "credit",
        "--invoice",
        &invoice,
        "--amount-ht",
        "10.00",
        "--reason",
        "Geste commercial",
        "--date",
        "2026-11-20",
    ])
    .ok();
    let mut files = facturx_pdfs(&ws.lake().join("documents/2026-10"));
    let invoices = files.len();
    assert!(invoices > 0, "no Factur-X invoice in the samples month");
    files.extend(facturx_pdfs(&ws.lake().join("documents/2026-11")));
    assert_eq!(files.len(), invoices + 1, "the credit note's Factur-X");

    let results = schematron(&files);
    let failures = fatal(&results);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(results.as_object().unwrap().len(), files.len());
}

/// A month with every category (tests/fixtures/vat_month/README.md), billed
/// and printed by the real binary: every Factur-X file it writes, and a
/// partial credit note's over S and E, passes the EN 16931 Schematron.
#[test]
fn a_month_with_every_category_passes_the_en16931_schematron() {
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    let source = scratch.path().join("ftp");
    let base = fixtures().join("rules/_base");
    crate::common::copy_dir(&base.join("reference"), &reference);
    crate::common::copy_dir(&fixtures().join("vat_month/reference"), &reference);
    std::fs::create_dir_all(source.join("RatedCDRs")).unwrap();
    let ws = crate::common::Workspace::new(&source, &reference, &base.join("integrator.toml"));
    ws.run(&["run", "--month", "2026-10"]).ok();

    // By hand (rating.md §6): B1 ZERO 10.00 at 20 % + SECU 3.00 exempt;
    // B2 (974) ZERO 10.00 at 8.5 % = 0.85 + PHONE_A 300.00 exported (G);
    // B3 (973) 10.00 + 3.00 outside VAT (O); B4 (BE) S10 15.00 reverse
    // charged (AE) + PHONE_B 150.00 intra-community (K).
    let rows = ws.query(
        "SELECT customer_id, CAST(total_ht AS VARCHAR) AS ht, CAST(vat AS VARCHAR) AS vat
         FROM invoices ORDER BY customer_id",
    );
    let totals: Vec<String> = rows
        .iter()
        .map(|r| {
            ["customer_id", "ht", "vat"]
                .map(|c| crate::common::text(r, c))
                .join(" ")
        })
        .collect();
    assert_eq!(
        totals,
        [
            "B1 13.00 2.00",
            "B2 310.00 0.85",
            "B3 13.00 0.00",
            "B4 165.00 0.00"
        ]
    );
    let categories = ws.query(
        "SELECT DISTINCT vat_category, CAST(vat_rate AS VARCHAR) AS rate FROM invoice_lines
         ORDER BY vat_category, rate",
    );
    let categories: Vec<String> = categories
        .iter()
        .map(|r| {
            ["vat_category", "rate"]
                .map(|c| crate::common::text(r, c))
                .join(" ")
        })
        .collect();
    assert_eq!(
        categories,
        ["AE 0.00", "E 0.00", "G 0.00", "K 0.00", "O 0.00", "S 20.00", "S 8.50"]
    );

    // A partial credit of 6.50 HT on B1's mixed invoice: 6.50 × 10 / 13 =
    // 5.00 at 20 % (VAT 1.00), 1.50 exempt.
    let rows = ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'B1'");
    let invoice = crate::common::text(&rows[0], "invoice_number");
    ws.run(&[
        "credit",
        "--invoice",
        &invoice,
        "--amount-ht",
        "6.50",
        "--reason",
        "Geste commercial",
        "--date",
        "2026-11-20",
    ])
    .ok();
    let note = ws.query(
        "SELECT CAST(total_ht AS VARCHAR) AS ht, CAST(vat AS VARCHAR) AS vat FROM credit_notes",
    );
    assert_eq!(crate::common::text(&note[0], "ht"), "6.50");
    assert_eq!(crate::common::text(&note[0], "vat"), "1.00");

    let mut files = facturx_pdfs(&ws.lake().join("documents/2026-10"));
    assert_eq!(files.len(), 4, "one Factur-X per business invoice");
    files.extend(facturx_pdfs(&ws.lake().join("documents/2026-11")));
    assert_eq!(files.len(), 5, "and the credit note's");
    let results = schematron(&files);
    let failures = fatal(&results);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
