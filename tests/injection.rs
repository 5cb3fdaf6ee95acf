//! Injection: customer names and addresses written as markup, template
//! syntax, SQL and spreadsheet formulas, and a name that tries to add a mail
//! header, go through a whole month (PDFs, publishing, mails) and come out
//! as inert text everywhere: escaped in the HTML, printed as they are in
//! the PDF, neutralised in the accountant's CSV, plain in the mails, and
//! matched as text by `mvnobill query`. `tests/documents.rs` has the
//! `<script>` name in the invoice itself.

use crate::common::{copy_dir, fixtures, text, Workspace};
use crate::documents::{plain, poppler};
use crate::mail::Sink;

const MONTH: &str = "2026-10";
const TEMPLATE_NAME: &str = "{{ 7*7 }} {% raw %} <b>Dupont</b> & \"Fils\"";
const SQL_ADDRESS: &str = "'; DROP TABLE invoices; --";
const INCLUDE_ADDRESS: &str = "{% include \"secret.txt\" %}";
const FORMULA_CITY: &str = "=HYPERLINK(\"http://x\",\"y\")";
/// (customer, name): formulas a spreadsheet would run.
const FORMULA_NAMES: &[(&str, &str)] = &[
    ("C00002", "=HYPERLINK(\"http://x\",\"y\")"),
    ("C00003", "+cmd|' /C calc'!A0"),
    ("C00004", "@SUM(1)"),
    ("C00005", "-2+3"),
];
const HEADER_NAME: &str = "Jean\r\nBcc: evil@example.org";

/// A field as the integrator's CSV writes it.
fn field(value: &str) -> String {
    if value.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// HTML escaping as the templates' (minijinja) does it.
fn escaped(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The samples' customers with hostile names and addresses.
fn hostile_customers(table: &str) -> String {
    let mut out = Vec::new();
    for (i, line) in table.lines().enumerate() {
        let mut fields: Vec<String> = line.split(';').map(str::to_string).collect();
        if i > 0 {
            // customer_id;kind;name;address1;address2;postcode;city;…
            match fields[0].as_str() {
                "C00001" => {
                    fields[2] = field(TEMPLATE_NAME);
                    fields[3] = field(SQL_ADDRESS);
                    fields[4] = field(INCLUDE_ADDRESS);
                    fields[6] = field(FORMULA_CITY);
                }
                "C00006" => fields[2] = field(HEADER_NAME),
                id => {
                    if let Some((_, name)) = FORMULA_NAMES.iter().find(|(c, _)| *c == id) {
                        fields[2] = field(name);
                    }
                }
            }
        }
        out.push(fields.join(";"));
    }
    out.join("\n") + "\n"
}

#[test]
fn hostile_names_and_addresses_come_out_as_inert_text() {
    let scratch = tempfile::tempdir().unwrap();
    let samples = scratch.path().join("samples");
    copy_dir(&fixtures().join("samples"), &samples);
    let customers = samples.join("reference/customers.csv");
    let table = std::fs::read_to_string(&customers).unwrap();
    std::fs::write(&customers, hostile_customers(&table)).unwrap();
    // What a template include would read, were the address a template.
    std::fs::write(scratch.path().join("secret.txt"), "INCLUDED-SECRET").unwrap();

    let sink = Sink::start(&[]);
    let ws = Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config.push_str(&format!(
        "\n[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    ));
    std::fs::write(&config, text_config).unwrap();
    let report = ws.run(&["--json", "run", "--month", MONTH]).ok().json();
    let invoices = report["bill"]["invoices"].as_u64().unwrap();
    assert_eq!(report["publish"]["mail"]["sent"], invoices, "{report}");

    let number_of = |customer: &str| {
        let rows = ws.query(&format!(
            "SELECT invoice_number FROM invoices WHERE customer_id = '{customer}'"
        ));
        text(&rows[0], "invoice_number")
    };
    let documents = ws.lake().join(format!("documents/{MONTH}"));
    let first = number_of("C00001");

    // HTML: escaped, never run as markup nor as a template.
    let html = std::fs::read_to_string(documents.join(format!("{first}.html"))).unwrap();
    for value in [TEMPLATE_NAME, SQL_ADDRESS, INCLUDE_ADDRESS, FORMULA_CITY] {
        assert!(html.contains(&escaped(value)), "{value} in\n{html}");
    }
    assert!(!html.contains("<b>Dupont"));
    assert!(!html.contains("INCLUDED-SECRET"));
    // PDF: the text as it was typed.
    // (In the content's order, line breaks as spaces: the name wraps in its
    // box; -raw keeps a line's trailing "--", which the default drops as a
    // hyphenation.)
    let page = plain(&poppler(
        "pdftotext",
        &["-raw"],
        &documents.join(format!("{first}.pdf")),
    ))
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    for value in [TEMPLATE_NAME, SQL_ADDRESS, INCLUDE_ADDRESS, FORMULA_CITY] {
        assert!(page.contains(value), "{value} in\n{page}");
    }
    assert!(!page.contains("INCLUDED-SECRET"));

    // The accountant's CSV: no cell starts a formula; the names are there,
    // each behind a quote mark.
    let journal = std::fs::read(documents.join(format!("journal-{MONTH}.csv"))).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(journal.strip_prefix("\u{feff}".as_bytes()).unwrap());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(rows.len() as u64 > invoices);
    for row in &rows {
        for (column, cell) in header.iter().zip(row.iter()) {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']),
                "{column}: {cell}"
            );
        }
    }
    for (_, name) in FORMULA_NAMES {
        let neutral = format!("'{name}");
        assert!(
            rows.iter().any(|r| r.iter().any(|cell| cell == neutral)),
            "{neutral} in the journal"
        );
    }

    // Mails: the text part says the name as it is, the HTML part escapes it,
    // and a line break in a name adds no header and no recipient.
    let messages = sink.messages();
    assert_eq!(messages.len() as u64, invoices);
    let to = |address: &str| {
        messages
            .iter()
            .find(|m| m["rcpt_tos"][0] == address)
            .unwrap_or_else(|| panic!("a mail to {address}"))
    };
    let mail = to("client1@example.org");
    assert_eq!(mail["rcpt_tos"].as_array().unwrap().len(), 1);
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Bonjour {TEMPLATE_NAME},")),
        "{mail}"
    );
    let mail_html = mail["html"].as_str().unwrap();
    assert!(!mail_html.contains("<b>Dupont"), "{mail_html}");
    assert!(mail_html.contains("&lt;b&gt;Dupont&lt;"), "{mail_html}");
    assert!(!mail["subject"].as_str().unwrap().contains("Dupont"));
    for message in &messages {
        assert_eq!(
            message["rcpt_tos"].as_array().unwrap().len(),
            1,
            "{message}"
        );
    }
    for eml in sink.files("eml") {
        let raw = String::from_utf8_lossy(&std::fs::read(&eml).unwrap()).into_owned();
        let (headers, _) = raw.split_once("\r\n\r\n").unwrap();
        assert!(!headers.to_lowercase().contains("\nbcc:"), "{headers}");
    }
    let text6 = to("client6@example.org")["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text6.contains("Bonjour Jean Bcc: evil@example.org,"),
        "{text6}"
    );

    // SQL: the values are data, matched as text; nothing was dropped.
    let found = ws.query(&format!(
        "SELECT customer_id, name FROM customers WHERE address1 = '{}'",
        SQL_ADDRESS.replace('\'', "''")
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(text(&found[0], "customer_id"), "C00001");
    assert_eq!(text(&found[0], "name"), TEMPLATE_NAME);
    let count = ws.query("SELECT COUNT(*) AS n FROM invoices");
    assert_eq!(text(&count[0], "n"), invoices.to_string());
    // `query --format csv` is the data as it is, for programs
    // (docs/RELIABILITY.md): the formula is not rewritten there.
    let out = ws
        .run(&[
            "query",
            "--format",
            "csv",
            "SELECT name FROM customers WHERE customer_id = 'C00004'",
        ])
        .ok();
    assert_eq!(out.stdout.lines().nth(1), Some("@SUM(1)"), "{}", out.stdout);

    // SEPA: the SEPA character set only, no markup.
    let sepa = std::fs::read_to_string(documents.join(format!("sepa-{MONTH}.xml"))).unwrap();
    assert!(!sepa.contains("<b>") && !sepa.contains("{{"), "{sepa}");
}
