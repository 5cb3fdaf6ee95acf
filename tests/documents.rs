//! Invoice documents: the samples month rendered through Debian's Chromium,
//! read back with poppler (pdftotext, pdfimages) and the `factur-x` package
//! from PyPI, as a customer, an accountant and a tax platform would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{copy_dir, fixtures, python, text, Workspace};

const MONTH: &str = "2026-10";

/// The samples in a scratch copy (so a test can change a table).
fn samples_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("samples");
    copy_dir(&fixtures().join("samples"), &copy);
    (dir, copy)
}

/// The samples, with the detailed call list requested by C00001 and C00002
/// (rating.md §6: on request).
fn workspace(samples: &Path) -> Workspace {
    let ws = Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[render]\ncall_detail_customers = \"call_detail.txt\"\n");
    std::fs::write(&config, text).unwrap();
    std::fs::write(
        ws.dir.path().join("call_detail.txt"),
        "# customers who asked for their call list\nC00001\nC00002\n",
    )
    .unwrap();
    ws
}

/// The number of a customer's invoice of the month.
fn invoice_number_of(ws: &Workspace, customer: &str) -> String {
    let rows = ws.query(&format!(
        "SELECT invoice_number FROM invoices WHERE customer_id = '{customer}'"
    ));
    text(&rows[0], "invoice_number")
}

fn documents(ws: &Workspace) -> PathBuf {
    ws.lake().join("documents").join(MONTH)
}

/// A poppler tool's stdout on a file.
pub(crate) fn poppler(tool: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(file)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| panic!("{tool} (poppler-utils) cannot run: {e}"));
    assert!(out.status.success(), "{tool} failed on {}", file.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Text with French typographic spaces turned into plain spaces.
pub(crate) fn plain(text: &str) -> String {
    text.replace(['\u{202f}', '\u{a0}'], " ")
}

/// `1234.5` as French money, written independently of the renderer.
pub(crate) fn french_eur(amount: &str) -> String {
    let (int_part, frac) = amount.split_once('.').unwrap_or((amount, "00"));
    let (sign, digits) = match int_part.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", int_part),
    };
    let mut groups: Vec<String> = Vec::new();
    let mut rest = digits;
    while rest.len() > 3 {
        groups.insert(0, rest[rest.len() - 3..].to_string());
        rest = &rest[..rest.len() - 3];
    }
    groups.insert(0, rest.to_string());
    format!("{sign}{},{:0<2} €", groups.join(" "), frac)
}

/// Whether a PDF's text (through `plain`) shows `amount` (as `french_eur`
/// writes it) whole, not as the end of a longer amount: preceded by the
/// start of the text or a space, never by a digit, a comma or a sign, so
/// that "5,00 €" is not found in "15,00 €", "0,5,00 €" nor "-5,00 €"; and
/// a three-digit amount is not the last group of a larger one ("937,78 €"
/// after "1 ", in "1 937,78 €"). Followed by no digit when it ends with
/// one.
pub(crate) fn shows_amount(page: &str, amount: &str) -> bool {
    let digits = amount.strip_prefix('-').unwrap_or(amount).as_bytes();
    let a_group = digits.len() > 3
        && digits[..3].iter().all(u8::is_ascii_digit)
        && !digits[3].is_ascii_digit();
    page.match_indices(amount).any(|(at, _)| {
        let mut before = page[..at].chars().rev();
        let whole_start = match before.next() {
            None => true,
            Some(space) if space.is_whitespace() => {
                !(a_group && before.next().is_some_and(|c| c.is_ascii_digit()))
            }
            Some(_) => false,
        };
        let after = page[at + amount.len()..].chars().next();
        let whole_end = !(amount.ends_with(|c: char| c.is_ascii_digit())
            && after.is_some_and(|c| c.is_ascii_digit() || c == ','));
        whole_start && whole_end
    })
}

#[test]
fn amounts_are_found_whole_in_a_pdf_text() {
    let page = "Option   15,00 €\nRemise  -6,00 €\nTotal    1 937,78 €\n4,5,00 €";
    assert!(shows_amount(page, "15,00 €"));
    assert!(shows_amount(page, "1 937,78 €"));
    assert!(shows_amount(page, "-6,00 €"));
    assert!(
        !shows_amount(page, "5,00 €"),
        "the end of 15,00 € or 4,5,00 €"
    );
    assert!(!shows_amount(page, "6,00 €"), "the end of -6,00 €");
    assert!(!shows_amount(page, "937,78 €"), "the end of 1 937,78 €");
    assert!(!shows_amount(page, "37,78 €"));
    assert!(shows_amount("5,00 € au début", "5,00 €"));
    assert!(shows_amount("Frais 40 €.", "40 €"));
    assert!(!shows_amount("Frais 140 €.", "40 €"));
    assert!(!shows_amount("Quantité 12", "1"));
    assert_eq!(french_eur("1937.78"), "1 937,78 €");
    assert!(shows_amount(page, &french_eur("1937.78")));
}

#[test]
fn invoices_print_as_branded_pdfs_with_facturx_for_businesses() {
    let (_keep, samples) = samples_copy();
    // A customer whose name is markup: it must print as text.
    let customers = samples.join("reference/customers.csv");
    let table = std::fs::read_to_string(&customers).unwrap();
    let hostile = table.replacen(
        "SARL Dupont & Fils",
        "\"<script>alert(1)</script> & \"\"Fils\"\"\"",
        1,
    );
    assert_ne!(hostile, table, "the samples changed: C00001's name");
    std::fs::write(&customers, hostile).unwrap();

    let ws = workspace(&samples);
    let report = ws.run(&["--json", "run", "--month", MONTH]).ok().json();
    let render = &report["render"];
    let invoices = ws.query("SELECT * FROM invoices ORDER BY invoice_number");
    assert_eq!(render["invoices"], invoices.len() as u64);
    assert_eq!(render["pdf_written"], invoices.len() as u64);
    let businesses = invoices
        .iter()
        .filter(|r| text(r, "customer_kind") == "B2B")
        .count();
    assert!(businesses > 0);
    assert_eq!(render["facturx"], businesses as u64);

    // The first invoice: a business, by direct debit.
    let first = &invoices[0];
    let number = text(first, "invoice_number");
    assert_eq!(text(first, "customer_kind"), "B2B");
    let pdf = documents(&ws).join(format!("{number}.pdf"));
    let page = plain(&poppler("pdftotext", &["-layout"], &pdf));
    assert!(page.contains(&number), "{page}");
    assert!(
        page.contains("<script>alert(1)</script> & \"Fils\""),
        "{page}"
    );
    for line in ws.query(&format!(
        "SELECT amount_ht FROM invoice_lines WHERE invoice_number = '{number}'"
    )) {
        let amount = french_eur(&text(&line, "amount_ht"));
        assert!(
            shows_amount(&page, &amount),
            "line amount {amount} missing:\n{page}"
        );
    }
    let ttc = french_eur(&text(first, "total_ttc"));
    assert!(shows_amount(&page, &ttc), "TTC {ttc} missing:\n{page}");
    let due = text(first, "due_date");
    let due_fr = format!("{}/{}/{}", &due[8..10], &due[5..7], &due[..4]);
    assert!(page.contains(&due_fr), "due date {due_fr} missing");
    // Legal mentions for a business, the SEPA mandate, the IBAN masked.
    assert!(
        shows_amount(&page, "40 €") && page.contains("L441-10"),
        "{page}"
    );
    assert!(page.contains("RUM-C00001-001"));
    assert!(
        !page.contains("FR3014170753645568151884472"),
        "IBAN in clear"
    );
    assert!(page.contains("4472"), "IBAN's last 4 characters");
    // The annex masks called numbers on their last 4 digits.
    assert!(page.contains("Annexe"));
    assert!(page.contains("XXXX"), "no masked called number:\n{page}");
    // A customer who did not ask for the call list has the usage summary
    // alone.
    let other = plain(&poppler(
        "pdftotext",
        &["-layout"],
        &documents(&ws).join(invoice_number_of(&ws, "C00003") + ".pdf"),
    ));
    assert!(
        other.contains("Annexe") && other.contains("Dont forfait"),
        "{other}"
    );
    assert!(
        !other.contains("Date et heure") && !other.contains("XXXX"),
        "{other}"
    );

    // Logo (95×95) and footer banner (760×95), the banner on every page.
    let images = poppler("pdfimages", &["-list"], &pdf);
    let pages: usize = poppler("pdfinfo", &[], &pdf)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    let sized = |w: &str, h: &str| {
        images
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 4 && f[3] == w && f[4] == h
            })
            .count()
    };
    assert_eq!(sized("95", "95"), 1, "{images}");
    assert_eq!(sized("760", "95"), pages, "{images}");

    // Factur-X: the XML inside validates against the EN 16931 schema.
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_facturx.py");
    let out = Command::new(python())
        .arg(&check)
        .arg(&pdf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A consumer's invoice is a plain PDF, without Factur-X.
    let consumer = invoices
        .iter()
        .find(|r| text(r, "customer_kind") == "B2C")
        .unwrap();
    let consumer_pdf = documents(&ws).join(format!("{}.pdf", text(consumer, "invoice_number")));
    assert!(!std::fs::read(&consumer_pdf)
        .unwrap()
        .windows(12)
        .any(|w| w == b"factur-x.xml"));

    // The page is markup-safe: the hostile name is escaped in the HTML.
    let html = std::fs::read_to_string(documents(&ws).join(format!("{number}.html"))).unwrap();
    assert!(!html.contains("<script>"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &quot;Fils&quot;"),
        "{html}"
    );

    // Rendering the closed month again rewrites nothing.
    let before = std::fs::read(&pdf).unwrap();
    let again = ws.run(&["--json", "render", "--month", MONTH]).ok().json();
    assert_eq!(again["unchanged"], invoices.len() as u64);
    assert_eq!(again["pdf_written"], 0);
    assert_eq!(std::fs::read(&pdf).unwrap(), before);
}

#[test]
fn the_html_of_an_invoice_is_stable() {
    let samples = fixtures().join("samples");
    let ws = workspace(&samples);
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    // A consumer's invoice, by direct debit, with usage and an annex.
    let html = std::fs::read_to_string(documents(&ws).join("EXM-2026-000002.html")).unwrap();
    // The images are the integrator's bytes: checked by the PDF test.
    let mut stable = String::new();
    for line in html.lines() {
        match line.find("data:image") {
            Some(at) => {
                let end = line[at..].find('"').map(|e| at + e).unwrap_or(line.len());
                stable.push_str(&line[..at]);
                stable.push_str("data:image…");
                stable.push_str(&line[end..]);
            }
            None => stable.push_str(line),
        }
        stable.push('\n');
    }
    let snapshot = fixtures().join("documents/EXM-2026-000002.html");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        std::fs::write(&snapshot, &stable).unwrap();
    }
    let wanted = std::fs::read_to_string(&snapshot)
        .expect("snapshot missing: run with UPDATE_SNAPSHOTS=1 once and review it");
    assert!(
        stable == wanted,
        "the page differs from {} (UPDATE_SNAPSHOTS=1 rewrites it; review the diff)",
        snapshot.display()
    );
}

#[test]
fn template_and_image_mistakes_are_one_clear_line() {
    let (_keep, samples) = samples_copy();
    let ws = workspace(&samples);
    for step in [&["sync"][..], &["land"], &["rate", "--month", MONTH]] {
        ws.run(step).ok();
    }

    // A logo of the wrong size: the issue records the images its documents
    // print (account.md §3), so `bill` reports it, and issues nothing.
    let logo = std::fs::read(samples.join("logo.png")).unwrap();
    std::fs::copy(samples.join("banner.png"), samples.join("logo.png")).unwrap();
    let out = ws.run(&["bill", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("logo.png is 760×95 px; it must be 95×95 px"),
        "{}",
        out.stderr
    );
    std::fs::write(samples.join("logo.png"), logo).unwrap();
    ws.run(&["bill", "--month", MONTH]).ok();
    ws.run(&["render", "--month", MONTH, "--html-only"]).ok();

    // An integrator's template with a syntax error on its line 3.
    let templates = ws.dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("invoice.html"),
        "<html>\n<body>\n<p>{{ invoice.invoice_number }</p>\n</body>\n</html>\n",
    )
    .unwrap();
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[templates]\ndir = \"templates\"\n");
    std::fs::write(&config, &text).unwrap();
    let out = ws.run(&["render", "--month", MONTH]);
    assert_eq!(out.status, 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: template invoice.html line 3: syntax error"),
        "{}",
        out.stderr
    );
}

/// `[render] batch` (the workspace's configuration ends with `[render]`).
fn set_batch(ws: &Workspace, invoices: usize) {
    let config = ws.dir.path().join("mvnobill.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!("batch = {invoices}\n"));
    std::fs::write(&config, toml).unwrap();
}

/// The pages of a PDF (poppler's pdfinfo).
fn page_count(pdf: &Path) -> usize {
    poppler("pdfinfo", &[], pdf)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// The text of a PDF without its empty lines.
fn text_lines(pdf: &Path) -> Vec<String> {
    plain(&poppler("pdftotext", &["-layout"], pdf))
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn invoices_printed_in_batches_split_into_their_own_numbered_pdfs() {
    // `run` publishes the PDFs to the samples' FTP folder: a copy.
    let (_keep, samples) = samples_copy();
    // Printed one at a time, as with `batch = 1`.
    let alone = workspace(&samples);
    set_batch(&alone, 1);
    alone.run(&["run", "--month", MONTH]).ok();
    // Printed 4 to a Chromium document, then split.
    let batched = workspace(&samples);
    set_batch(&batched, 4);
    let report = batched
        .run(&["--json", "run", "--month", MONTH])
        .ok()
        .json();
    let render = &report["render"];
    let invoices = batched.query("SELECT * FROM invoices ORDER BY invoice_number");
    assert!(invoices.len() > 8, "the samples give several batches");
    assert_eq!(render["pdf_written"], invoices.len() as u64);
    assert_eq!(render["printed_alone"], 0, "every batch split");

    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_facturx.py");
    let mut several_pages = 0;
    for invoice in &invoices {
        let number = text(invoice, "invoice_number");
        let pdf = documents(&batched).join(format!("{number}.pdf"));
        let single = documents(&alone).join(format!("{number}.pdf"));
        // The same pages and text as the invoice printed alone.
        let pages = page_count(&pdf);
        assert_eq!(pages, page_count(&single), "{number}");
        assert_eq!(text_lines(&pdf), text_lines(&single), "{number}");
        if pages > 1 {
            several_pages += 1;
        }
        // Numbered within the invoice, page by page.
        for page in 1..=pages {
            let n = page.to_string();
            let on_page = poppler("pdftotext", &["-f", &n, "-l", &n], &pdf);
            assert!(
                on_page.contains(&format!("Page {page} / {pages}")),
                "{number} page {page}:\n{on_page}"
            );
        }
        // Its own invoice number, no other one.
        let all = poppler("pdftotext", &[], &pdf);
        let others: Vec<&str> = all
            .match_indices("EXM-2026-")
            .map(|(at, _)| &all[at..(at + 15).min(all.len())])
            .filter(|found| *found != number)
            .collect();
        assert!(others.is_empty(), "{number} shows {others:?}");
        let title = |pdf: &Path| {
            poppler("pdfinfo", &[], pdf)
                .lines()
                .find_map(|l| l.strip_prefix("Title:").map(|t| t.trim().to_string()))
        };
        assert_eq!(title(&pdf), title(&single), "{number}");
        // A business's PDF is still a valid Factur-X.
        if text(invoice, "customer_kind") == "B2B" {
            let out = Command::new(python())
                .arg(&check)
                .arg(&pdf)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{number}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(several_pages > 2, "the samples have multi-page invoices");

    // Rendering the closed month again rewrites nothing.
    let again = batched
        .run(&["--json", "render", "--month", MONTH])
        .ok()
        .json();
    assert_eq!(again["unchanged"], invoices.len() as u64);
    assert_eq!(again["pdf_written"], 0);
}
