//! account.md §2 and §3: an issued month's documents are made from what the
//! issue recorded (the customers and the integrator as they were), never
//! rewritten, and made again the same when one is missing; a draft's
//! documents are marked BROUILLON on every page and carry the amounts the
//! issue then gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{copy_dir, fixtures, text, walk, Workspace};
use crate::documents::{plain, poppler};

const MONTH: &str = "2026-10";

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

/// Every document of a folder (pages, PDFs, the issue's record), by path
/// relative to it; not the finance files `credit` and `finance` rewrite.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walk(dir)
        .into_iter()
        .filter(|path| {
            let name = path.display().to_string();
            [".html", ".pdf", ".json"].iter().any(|e| name.ends_with(e))
        })
        .map(|path| {
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

/// Drops every line of a reference table that names `customer`.
fn drop_customer(table: &Path, customer: &str) {
    let text = std::fs::read_to_string(table).unwrap();
    let kept: String = text
        .lines()
        .filter(|line| !line.split(';').any(|field| field == customer))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(kept, text, "{} has no {customer}", table.display());
    std::fs::write(table, kept).unwrap();
}

/// A 95×95 PNG of one colour: another logo.
fn write_logo(path: &Path) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, 95, 95);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[200u8; 95 * 95 * 3]).unwrap();
}

/// The same documents, byte for byte; the names of those that differ.
fn same(now: &BTreeMap<String, Vec<u8>>, before: &BTreeMap<String, Vec<u8>>) {
    let differ: Vec<&String> = before
        .keys()
        .chain(now.keys())
        .filter(|name| now.get(*name) != before.get(*name))
        .collect();
    assert!(differ.is_empty(), "changed: {differ:?}");
}

#[test]
fn issued_documents_keep_the_customers_and_integrator_of_their_issue() {
    let (_keep, samples) = samples_copy();
    let ws = workspace(&samples);
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    let folder = ws.lake().join("documents").join(MONTH);
    let before = files(&folder);
    let number_of = |customer: &str| {
        let rows = ws.query(&format!(
            "SELECT invoice_number FROM invoices WHERE customer_id = '{customer}'"
        ));
        text(&rows[0], "invoice_number")
    };
    let (business, deleted) = (number_of("C00001"), number_of("C00003"));
    let page = |number: &str| format!("{number}.html");
    assert!(before.contains_key(&page(&deleted)));

    // The record: one row per invoice, the IBAN masked.
    let parties = ws.query("SELECT * FROM invoice_parties ORDER BY customer_id");
    let invoices = ws.query("SELECT invoice_number FROM invoices");
    assert_eq!(parties.len(), invoices.len());
    assert_eq!(text(&parties[0], "customer_id"), "C00001");
    assert_eq!(text(&parties[0], "name"), "SARL Dupont & Fils");
    assert_eq!(text(&parties[0], "mandate_rum"), "RUM-C00001-001");
    assert!(text(&parties[0], "iban_masked").ends_with(" 4472"));
    let record = std::fs::read_to_string(folder.join(".issue/integrator.json")).unwrap();
    assert!(record.contains("Telco Exemple SAS") && record.contains("data:image/png;base64,"));
    let customers = std::fs::read_to_string(samples.join("reference/customers.csv")).unwrap();
    let all = serde_json::to_string(&parties).unwrap();
    let ibans = customers
        .split(';')
        .filter(|field| field.starts_with("FR") && field.len() == 27);
    for iban in ibans {
        assert!(!all.contains(iban), "a full IBAN in invoice_parties");
    }

    // After the issue: a customer renamed and moved, the integrator
    // renamed, moved, with another phone number and logo.
    std::fs::write(
        samples.join("reference/customers.csv"),
        customers.replace(
            "C00001;B2B;SARL Dupont & Fils;21 rue de la Paix",
            "C00001;B2B;Dupont Holding SA;1 place Neuve",
        ),
    )
    .unwrap();
    let integrator = std::fs::read_to_string(samples.join("integrator.toml")).unwrap();
    std::fs::write(
        samples.join("integrator.toml"),
        integrator
            .replace("Telco Exemple SAS", "Autre Opérateur SAS")
            .replace("12 avenue des Lilas", "5 boulevard du Port")
            .replace("09 70 00 00 00", "01 23 45 67 89"),
    )
    .unwrap();
    write_logo(&samples.join("logo.png"));

    // Rendering again changes no byte.
    let report = ws
        .run(&["--json", "render", "--month", MONTH, "--html-only"])
        .ok()
        .json();
    assert_eq!(report["html_written"], 0, "{report}");
    assert_eq!(report["unchanged"], invoices.len() as u64);
    same(&files(&folder), &before);

    // A credit note on the renamed customer's invoice prints the customer
    // and the integrator as the invoice did.
    let note = ws
        .run(&[
            "--json",
            "credit",
            "--invoice",
            &business,
            "--reason",
            "Geste commercial",
            "--amount-ht",
            "5",
            "--date",
            "2026-11-20",
            "--html-only",
        ])
        .ok()
        .json();
    let number = note["credit_note_number"].as_str().unwrap();
    let html = std::fs::read_to_string(
        ws.lake()
            .join("documents/2026-11")
            .join(format!("{number}.html")),
    )
    .unwrap();
    assert!(html.contains("SARL Dupont &amp; Fils"), "{html}");
    assert!(html.contains("21 rue de la Paix"));
    assert!(html.contains("Telco Exemple SAS"));
    for changed in ["Dupont Holding", "Autre Opérateur", "5 boulevard du Port"] {
        assert!(!html.contains(changed), "{changed} in the credit note");
    }

    // A customer deleted (`finance` and `assure` would see it; the
    // documents do not). A missing document is made again from the
    // record, the same: the deleted customer's and the renamed one's.
    for table in ["customers.csv", "subscriptions.csv"] {
        drop_customer(&samples.join("reference").join(table), "C00003");
    }
    for number in [&deleted, &business] {
        std::fs::remove_file(folder.join(page(number))).unwrap();
    }
    let report = ws
        .run(&["--json", "render", "--month", MONTH, "--html-only"])
        .ok()
        .json();
    assert_eq!(report["html_written"], 2, "{report}");
    same(&files(&folder), &before);
}

/// The amounts a page prints (`1 234,56 €`), in order.
fn amounts(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in html.match_indices("\u{a0}€") {
        let start = html[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit() || matches!(c, ',' | '-' | '\u{202f}'))
            .last()
            .map_or(at, |(i, _)| i);
        if start < at {
            found.push(html[start..at].to_string());
        }
    }
    found
}

#[test]
fn a_draft_prints_brouillon_on_every_page_and_the_amounts_of_the_issue() {
    let (_keep, samples) = samples_copy();
    let ws = workspace(&samples);
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    ws.run(&["rate", "--month", MONTH]).ok();
    let refused = ws.run(&["render", "--month", MONTH, "--draft"]);
    assert_eq!(refused.status, 1);
    assert!(refused.stderr.contains("bill --month 2026-10 --draft"));
    ws.run(&["bill", "--month", MONTH, "--draft"]).ok();
    let report = ws
        .run(&["--json", "render", "--month", MONTH, "--draft"])
        .ok()
        .json();
    assert_eq!(report["draft"], true);
    assert_eq!(report["facturx"], 0, "a draft is not an invoice");
    let drafts = ws.lake().join("documents").join(MONTH).join("drafts");
    let customers: Vec<(String, String)> = std::fs::read_dir(&drafts)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".pdf").map(|n| n.to_string())
        })
        .map(|n| (n.trim_start_matches("DRAFT-").to_string(), n))
        .collect();
    assert_eq!(report["pdf_written"], customers.len() as u64);
    assert!(customers.len() > 20, "{customers:?}");

    let mut several_pages = 0;
    for (customer, name) in &customers {
        let pdf = drafts.join(format!("{name}.pdf"));
        let pages: usize = poppler("pdfinfo", &[], &pdf)
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap();
        if pages > 1 {
            several_pages += 1;
        }
        for page in 1..=pages {
            let n = page.to_string();
            let on_page = poppler("pdftotext", &["-f", &n, "-l", &n], &pdf);
            assert!(
                on_page.contains("BROUILLON"),
                "{name} page {page}:\n{on_page}"
            );
        }
        let first = plain(&poppler("pdftotext", &["-f", "1", "-l", "1"], &pdf));
        assert!(first.contains(&format!("DRAFT-{customer}")), "{first}");
        assert!(!first.contains("EXM-2026-"), "{first}");
        assert!(
            !std::fs::read(&pdf)
                .unwrap()
                .windows(12)
                .any(|w| w == b"factur-x.xml"),
            "{name} carries Factur-X"
        );
    }
    assert!(several_pages > 0, "the samples have multi-page invoices");

    // The issue then gives the draft's amounts, to the cent.
    ws.run(&["bill", "--month", MONTH]).ok();
    ws.run(&["render", "--month", MONTH, "--html-only"]).ok();
    let issued = ws.query("SELECT customer_id, invoice_number FROM invoices");
    assert_eq!(issued.len(), customers.len());
    for row in &issued {
        let customer = text(row, "customer_id");
        let draft = std::fs::read_to_string(drafts.join(format!("DRAFT-{customer}.html"))).unwrap();
        let invoice = std::fs::read_to_string(
            ws.lake()
                .join("documents")
                .join(MONTH)
                .join(format!("{}.html", text(row, "invoice_number"))),
        )
        .unwrap();
        assert!(!amounts(&invoice).is_empty());
        assert_eq!(amounts(&draft), amounts(&invoice), "{customer}");
        assert!(!invoice.contains("BROUILLON"));
    }
    // A draft is for a month not issued yet.
    let refused = ws.run(&["render", "--month", MONTH, "--draft"]);
    assert_eq!(refused.status, 1);
    assert!(refused.stderr.contains("is issued"), "{}", refused.stderr);
}
