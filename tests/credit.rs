//! Credit notes (avoirs) on the samples' closed month: figures checked
//! against the contract's `expected.json`, the notes' PDFs read back with
//! poppler and the `factur-x` package, the `credit_notes` dataset read back
//! through `query`, and the invoices' own files untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{fixtures, mvnobill, python, text, walk, Output, Workspace};
use crate::documents::{french_eur, plain, poppler, shows_amount};

const MONTH: &str = "2026-10";

/// One customer's invoice totals in `expected.json`.
fn expected(customer: &str, field: &str) -> String {
    let path = fixtures().join("samples/expected.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["invoices"][customer][field]
        .as_str()
        .unwrap_or_else(|| panic!("expected.json has no {customer}.{field}"))
        .to_string()
}

/// A total of the month in `expected.json`.
fn expected_total(field: &str) -> rust_decimal::Decimal {
    let path = fixtures().join("samples/expected.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json[field].as_str().unwrap().parse().unwrap()
}

/// The number of a customer's invoice of the month.
fn invoice_of(ws: &Workspace, customer: &str) -> String {
    let rows = ws.query(&format!(
        "SELECT invoice_number FROM invoices WHERE customer_id = '{customer}'"
    ));
    assert_eq!(rows.len(), 1, "{customer} has one invoice");
    text(&rows[0], "invoice_number")
}

/// Every file below the folders, with its bytes.
/// The files below the folders, the sales journal aside (a credit note adds
/// its entries to it).
fn snapshot(ws: &Workspace, folders: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    folders
        .iter()
        .flat_map(|folder| walk(&ws.lake().join(folder)))
        .filter(|path| !path.to_string_lossy().contains("journal-"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn credit(ws: &Workspace, args: &[&str]) -> Output {
    let mut all = vec!["--json", "credit"];
    all.extend_from_slice(args);
    ws.run(&all)
}

/// A refusal: exit 1 and one line on stderr, returned.
fn refused(out: Output) -> String {
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let stderr = out.stderr.trim_end().to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: credit: "), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    stderr
}

/// The `factur-x.xml` a PDF carries.
fn facturx_xml(pdf: &Path) -> String {
    let out = Command::new(python())
        .args([
            "-c",
            "import sys; from facturx import get_facturx_xml_from_pdf; \
             name, xml = get_facturx_xml_from_pdf(open(sys.argv[1], 'rb').read(), check_xsd=False); \
             sys.stdout.write(xml.decode())",
        ])
        .arg(pdf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn credit_notes_on_a_closed_month_have_their_own_numbers_and_documents() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", MONTH]).ok();
    let invoice_files = &["invoices", "invoice_lines", "documents/2026-10"];
    let before = snapshot(&ws, invoice_files);

    // A business's invoice credited whole: its total HT, its VAT, its TTC.
    let business = invoice_of(&ws, "C00015");
    let whole = [
        "--invoice",
        &business,
        "--reason",
        "Geste commercial : panne réseau",
        "--date",
        "2026-11-20",
    ];
    let report = credit(&ws, &whole).ok().json();
    assert_eq!(report["credit_note_number"], "EXM-AV-2026-000001");
    assert_eq!(report["invoice_number"], business.as_str());
    assert_eq!(report["customer_id"], "C00015");
    assert_eq!(report["issue_date"], "2026-11-20");
    assert_eq!(report["total_ht"], expected("C00015", "total_ht"));
    assert_eq!(report["vat"], expected("C00015", "vat"));
    assert_eq!(report["total_ttc"], expected("C00015", "total_ttc"));
    assert_eq!(report["remaining_ht"], "0.00");
    assert_eq!(report["already_issued"], false);
    assert_eq!(report["facturx"], true);

    // Its PDF, as the customer reads it.
    let notes = ws.lake().join("documents/2026-11");
    let pdf = notes.join("EXM-AV-2026-000001.pdf");
    let page = plain(&poppler("pdftotext", &["-layout"], &pdf));
    for wanted in [
        "AVOIR".to_string(),
        "EXM-AV-2026-000001".to_string(),
        format!("Avoir sur la facture N° {business} du 01/11/2026"),
        "20/11/2026".to_string(),
        "Geste commercial : panne réseau".to_string(),
    ] {
        assert!(page.contains(&wanted), "{wanted} missing:\n{page}");
    }
    for field in ["total_ht", "vat", "total_ttc"] {
        let amount = french_eur(&expected("C00015", field));
        assert!(
            shows_amount(&page, &amount),
            "{field} {amount} missing:\n{page}"
        );
    }
    assert!(
        shows_amount(&page, "1 937,78 €") && shows_amount(&page, "2 325,34 €"),
        "{page}"
    );
    // Its Factur-X: a valid EN 16931 credit note on the invoice.
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_facturx.py");
    let out = Command::new(python())
        .arg(&check)
        .arg(&pdf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let xml = facturx_xml(&pdf);
    assert!(xml.contains("<ram:TypeCode>381</ram:TypeCode>"), "{xml}");
    assert!(
        xml.contains(&format!(
            "<ram:IssuerAssignedID>{business}</ram:IssuerAssignedID>"
        )),
        "{xml}"
    );

    // The same command again issues nothing new.
    let again = credit(&ws, &whole).ok().json();
    assert_eq!(again["credit_note_number"], "EXM-AV-2026-000001");
    assert_eq!(again["already_issued"], true);
    assert_eq!(again["documents_unchanged"], true);

    // A consumer's invoice credited in part: the next number, VAT on the
    // note's own HT, a plain PDF.
    let consumer = invoice_of(&ws, "C00002");
    let report = credit(
        &ws,
        &[
            "--invoice",
            &consumer,
            "--reason",
            "Option facturée à tort",
            "--amount-ht",
            "5.00",
            "--date",
            "2026-11-21",
        ],
    )
    .ok()
    .json();
    assert_eq!(report["credit_note_number"], "EXM-AV-2026-000002");
    assert_eq!(report["total_ht"], "5.00");
    assert_eq!(report["vat"], "1.00");
    assert_eq!(report["total_ttc"], "6.00");
    assert_eq!(report["facturx"], false);
    // 69.88 - 5.00, from the contract's figure.
    assert_eq!(expected("C00002", "total_ht"), "69.88");
    assert_eq!(report["remaining_ht"], "64.88");
    let page = plain(&poppler(
        "pdftotext",
        &["-layout"],
        &notes.join("EXM-AV-2026-000002.pdf"),
    ));
    assert!(page.contains("EXM-AV-2026-000002") && page.contains(&consumer));
    assert!(
        shows_amount(&page, "5,00 €") && shows_amount(&page, "6,00 €"),
        "{page}"
    );
    assert!(page.contains("compte prélevé"), "{page}");

    // The invoices' data and documents are byte for byte what they were.
    assert!(before == snapshot(&ws, invoice_files));

    // The dataset, through query.
    let rows = ws.query(
        "SELECT credit_note_number, invoice_number, invoice_month, customer_id, \
         CAST(issue_date AS VARCHAR) AS issue_date, reason, total_ht, vat, total_ttc, month \
         FROM credit_notes ORDER BY credit_note_number",
    );
    let fields = |row: &serde_json::Map<String, serde_json::Value>| {
        [
            "credit_note_number",
            "invoice_number",
            "invoice_month",
            "customer_id",
            "issue_date",
            "total_ht",
            "vat",
            "total_ttc",
            "month",
        ]
        .map(|c| text(row, c))
    };
    assert_eq!(rows.len(), 2);
    assert_eq!(
        fields(&rows[0]),
        [
            "EXM-AV-2026-000001",
            &business,
            "2026-10",
            "C00015",
            "2026-11-20",
            &expected("C00015", "total_ht"),
            &expected("C00015", "vat"),
            &expected("C00015", "total_ttc"),
            "2026-11",
        ]
    );
    assert_eq!(text(&rows[1], "reason"), "Option facturée à tort");
    assert_eq!(text(&rows[1], "total_ttc"), "6.00");

    // Both notes, dated in November when October's invoices were issued,
    // are in October's sales journal: negative, so that its sum is the net
    // sales; in the CSV the customer account is credited.
    let journal = ws.query(
        "SELECT document_type, document_number, invoice_number, services_ht, equipment_ht,          total_ht, vat, total_ttc FROM sales_journal          WHERE document_type = 'CREDIT_NOTE' ORDER BY document_number",
    );
    assert_eq!(journal.len(), 2);
    let negative = |amount: String| format!("-{amount}");
    assert_eq!(text(&journal[0], "document_number"), "EXM-AV-2026-000001");
    assert_eq!(text(&journal[0], "invoice_number"), business);
    assert_eq!(
        text(&journal[0], "total_ttc"),
        negative(expected("C00015", "total_ttc"))
    );
    assert_eq!(
        text(&journal[0], "vat"),
        negative(expected("C00015", "vat"))
    );
    assert_eq!(text(&journal[1], "services_ht"), "-5.00");
    assert_eq!(text(&journal[1], "equipment_ht"), "0.00");
    assert_eq!(text(&journal[1], "total_ttc"), "-6.00");
    let net = ws.query("SELECT CAST(SUM(total_ttc) AS VARCHAR) AS ttc FROM sales_journal");
    let invoiced: rust_decimal::Decimal = expected_total("total_ttc");
    let credited: rust_decimal::Decimal = expected("C00015", "total_ttc")
        .parse::<rust_decimal::Decimal>()
        .unwrap()
        + rust_decimal::Decimal::new(600, 2);
    assert_eq!(text(&net[0], "ttc"), (invoiced - credited).to_string());
    let csv = String::from_utf8(
        std::fs::read(ws.lake().join("documents/2026-10/journal-2026-10.csv")).unwrap(),
    )
    .unwrap();
    let entry = csv
        .lines()
        .find(|line| line.contains("EXM-AV-2026-000002") && line.contains(";411"))
        .expect("the customer account's entry of the partial note");
    // Debit empty (or zero), credit 6,00 €: the customer is owed.
    assert!(entry.contains(";6,00;"), "{entry}");
    // The consumer's note lowers the B2C e-reporting totals of the period.
    let b2c = |sql: &str| text(&ws.query(sql)[0], "ht");
    assert_eq!(
        b2c(
            "SELECT CAST(SUM(total_ht) - 5.00 AS DECIMAL(18, 2)) AS ht FROM invoices \
             WHERE customer_kind = 'B2C'"
        ),
        b2c("SELECT CAST(SUM(total_ht) AS DECIMAL(18, 2)) AS ht FROM e_reporting")
    );
}

#[test]
fn credit_notes_refuse_what_they_cannot_credit() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    let invoice = invoice_of(&ws, "C00001");
    let total = expected("C00001", "total_ht");
    assert_eq!(total, "646.91");

    let partial = |amount: &str, reason: &str, date: &str| {
        credit(
            &ws,
            &[
                "--invoice",
                &invoice,
                "--reason",
                reason,
                "--amount-ht",
                amount,
                "--date",
                date,
                "--html-only",
            ],
        )
    };
    let first = partial("100", "Remise", "2026-11-05").ok().json();
    assert_eq!(first["credit_note_number"], "EXM-AV-2026-000001");
    assert_eq!(first["total_ht"], "100.00");
    assert_eq!(first["remaining_ht"], "546.91");
    assert!(first["pdf"].is_null());

    // More than remains: refused, nothing issued.
    let error = refused(partial("546.92", "Remise", "2026-11-06"));
    assert!(
        error.contains("546.92 € HT is more than the 546.91 € HT that remain creditable"),
        "{error}"
    );
    // What remains, by default: the VAT rounds half up on the note's HT
    // (546.91 × 20 % = 109.382).
    let rest = credit(
        &ws,
        &[
            "--invoice",
            &invoice,
            "--reason",
            "Résiliation",
            "--date",
            "2026-11-06",
            "--html-only",
        ],
    )
    .ok()
    .json();
    assert_eq!(rest["credit_note_number"], "EXM-AV-2026-000002");
    assert_eq!(rest["total_ht"], "546.91");
    assert_eq!(rest["vat"], "109.38");
    assert_eq!(rest["total_ttc"], "656.29");
    assert_eq!(rest["remaining_ht"], "0.00");
    let error = refused(partial("0.01", "Encore", "2026-11-06"));
    assert!(
        error.ends_with("is credited in full already (EXM-AV-2026-000001, EXM-AV-2026-000002)"),
        "{error}"
    );

    // Unknown invoice, no reason, dates before the invoice or the last note.
    let error = refused(credit(
        &ws,
        &["--invoice", "EXM-2026-999999", "--reason", "Erreur"],
    ));
    assert_eq!(
        error,
        "error: credit: invoice 'EXM-2026-999999' was never issued (no such number in the ledger)"
    );
    let other = invoice_of(&ws, "C00002");
    let on_other = |reason: &str, date: &str| {
        credit(
            &ws,
            &[
                "--invoice",
                &other,
                "--reason",
                reason,
                "--amount-ht",
                "1.00",
                "--date",
                date,
                "--html-only",
            ],
        )
    };
    assert!(refused(on_other(" ", "2026-11-06")).contains("--reason is empty"));
    assert!(refused(on_other("Erreur", "2026-10-31"))
        .ends_with("date 2026-10-31 is before EXM-2026-000002's issue date 2026-11-01"));
    assert!(refused(on_other("Erreur", "2026-11-05"))
        .contains("before credit note EXM-AV-2026-000002 of 2026-11-06: numbers follow dates"));
    // An amount that is not euros and cents is a command-line mistake.
    for amount in ["1,50", "0", "-2", "1.005"] {
        let out = credit(
            &ws,
            &["--invoice", &other, "--reason", "x", "--amount-ht", amount],
        );
        assert_eq!(out.status, 2, "{amount}: {}", out.stderr);
        if amount == "1,50" {
            assert!(out.stderr.contains("write it like 12.50"), "{}", out.stderr);
        }
    }

    // A new year starts a new series; --again issues an identical note.
    let january = on_other("Erreur de forfait", "2027-01-04").ok().json();
    assert_eq!(january["credit_note_number"], "EXM-AV-2027-000001");
    let same = on_other("Erreur de forfait", "2027-01-04").ok().json();
    assert_eq!(same["credit_note_number"], "EXM-AV-2027-000001");
    assert_eq!(same["already_issued"], true);
    let args = [
        "--invoice",
        &other,
        "--reason",
        "Erreur de forfait",
        "--amount-ht",
        "1.00",
        "--date",
        "2027-01-04",
        "--html-only",
        "--again",
    ];
    let second = credit(&ws, &args).ok().json();
    assert_eq!(second["credit_note_number"], "EXM-AV-2027-000002");
    assert_eq!(second["remaining_ht"], "67.88");

    let partitions: Vec<String> = ws
        .query("SELECT month, COUNT(*) AS notes FROM credit_notes GROUP BY month ORDER BY month")
        .iter()
        .map(|r| format!("{}:{}", text(r, "month"), text(r, "notes")))
        .collect();
    assert_eq!(partitions, ["2026-11:2", "2027-01:2"]);
    let documents = ws.lake().join("documents/2027-01");
    assert!(documents.join("EXM-AV-2027-000002.html").exists());
    assert!(!documents.join("EXM-AV-2027-000002.pdf").exists());
}

#[test]
fn help_lists_credit() {
    let dir = tempfile::tempdir().unwrap();
    let out = mvnobill(&["--help"], dir.path()).ok();
    assert!(out.stdout.contains("  credit "), "{}", out.stdout);
}
