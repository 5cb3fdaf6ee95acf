//! Finance outputs (docs/ACCOUNTING.md): the sales journal, the margin and
//! the B2C e-reporting totals of the samples month, checked against
//! `expected.json` and the fixture's own files (never against our output);
//! the CSV journal re-read by Python's `csv` module; formula injection
//! through a customer's name neutralised.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rust_decimal::Decimal;

use crate::common::{copy_dir, fixtures, python, text, Workspace};

const MONTH: &str = "2026-10";

type Row = serde_json::Map<String, serde_json::Value>;

fn decimal(text: &str) -> Decimal {
    text.parse()
        .unwrap_or_else(|e| panic!("'{text}' is not a decimal: {e}"))
}

/// An amount of the CSV journal: a decimal comma, nothing else.
fn french(text: &str) -> Decimal {
    assert!(
        !text.contains('.') && !text.starts_with('\''),
        "'{text}' is not a French amount"
    );
    decimal(&text.replace(',', "."))
}

fn expected() -> serde_json::Value {
    let path = fixtures().join("samples/expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// expected.json's figure of a customer.
fn want(expected: &serde_json::Value, customer: &str, field: &str) -> Decimal {
    decimal(expected["invoices"][customer][field].as_str().unwrap())
}

/// A `;` file of the fixtures as (header, rows).
fn read_semicolon(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(path)
        .unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// The CSV journal as Python's csv module reads it.
fn read_journal(ws: &Workspace) -> serde_json::Value {
    let csv = ws
        .lake()
        .join(format!("documents/{MONTH}/journal-{MONTH}.csv"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_journal.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn finance_files(ws: &Workspace) -> BTreeMap<PathBuf, Vec<u8>> {
    [
        format!("margin/month={MONTH}/part-0.parquet"),
        format!("sales_journal/month={MONTH}/part-0.parquet"),
        format!("e_reporting/month={MONTH}/part-0.parquet"),
        format!("documents/{MONTH}/journal-{MONTH}.csv"),
    ]
    .into_iter()
    .map(|key| {
        let path = ws.lake().join(key);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (path, bytes)
    })
    .collect()
}

/// The wholesale of a line's CDRs of the month, from the fixture's files:
/// the first copy of each cdr_id (files in name order), local date in the
/// month, per day of the month.
fn fixture_wholesale(msisdn: &str) -> BTreeMap<u32, Decimal> {
    let folder = fixtures().join("samples/ftp/RatedCDRs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut seen = std::collections::HashSet::new();
    let mut by_day: BTreeMap<u32, Decimal> = BTreeMap::new();
    for file in files {
        for row in read_semicolon(&file) {
            if !seen.insert(row["cdr_id"].clone()) || row["msisdn"] != msisdn {
                continue;
            }
            // start_time is Paris local time, DD/MM/YYYY HH:MM:SS.
            let start = &row["start_time"];
            if &start[2..10] != "/10/2026" {
                continue;
            }
            let day: u32 = start[..2].parse().unwrap();
            *by_day.entry(day).or_default() += french(&row["wholesale_eur"]);
        }
    }
    by_day
}

#[test]
fn samples_journal_margin_and_e_reporting_match_the_fixture() {
    let expected = expected();
    let ws = Workspace::samples();
    let report = ws
        .run(&["--json", "run", "--month", MONTH, "--html-only"])
        .ok()
        .json();
    let finance = &report["finance"];
    assert_eq!(finance["journal_rows"], 25);
    assert_eq!(finance["journal_total_ht"], expected["total_ht"]);
    assert_eq!(finance["journal_total_ttc"], expected["total_ttc"]);
    let invoices = expected["invoices"].as_object().unwrap();

    // The journal: one row per invoice (one VAT rate), to the cent.
    let journal = ws.query("SELECT * FROM sales_journal ORDER BY document_number");
    assert_eq!(journal.len(), invoices.len());
    let customers: BTreeMap<String, BTreeMap<String, String>> =
        read_semicolon(&fixtures().join("samples/reference/customers.csv"))
            .into_iter()
            .map(|c| (c["customer_id"].clone(), c))
            .collect();
    for row in &journal {
        let customer = text(row, "customer_id");
        for field in ["total_ht", "vat", "total_ttc"] {
            assert_eq!(
                decimal(&text(row, field)),
                want(&expected, &customer, field),
                "{customer} {field}"
            );
        }
        assert_eq!(
            decimal(&text(row, "equipment_ht")),
            want(&expected, &customer, "equipment"),
            "{customer} equipment"
        );
        assert_eq!(text(row, "document_type"), "INVOICE");
        assert_eq!(text(row, "document_number"), text(row, "invoice_number"));
        assert_eq!(text(row, "journal_code"), "VE");
        assert_eq!(text(row, "entry_date"), "2026-11-01");
        assert_eq!(text(row, "customer_name"), customers[&customer]["name"]);
        assert_eq!(text(row, "customer_kind"), customers[&customer]["kind"]);
        assert_eq!(
            [
                text(row, "customer_account"),
                text(row, "services_account"),
                text(row, "equipment_account"),
                text(row, "vat_account"),
                text(row, "vat_rate"),
            ],
            ["411000", "706000", "707000", "445710", "20.00"]
        );
    }

    // The CSV journal, read back by Python's csv module: balanced entries
    // per invoice, the customer debited with expected.json's TTC.
    let csv = read_journal(&ws);
    assert_eq!(csv["bom"], true);
    assert_eq!(csv["crlf"], true);
    assert_eq!(
        csv["header"].as_array().unwrap().len(),
        18,
        "{}",
        csv["header"]
    );
    let mut pieces: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for row in csv["rows"].as_array().unwrap() {
        pieces
            .entry(row["PieceRef"].as_str().unwrap().to_string())
            .or_default()
            .push(row);
    }
    assert_eq!(pieces.len(), invoices.len());
    let number_of: BTreeMap<String, String> = journal
        .iter()
        .map(|r| (text(r, "document_number"), text(r, "customer_id")))
        .collect();
    for (piece, entries) in &pieces {
        let customer = &number_of[piece];
        let amount = |account: &str, side: &str| -> Decimal {
            entries
                .iter()
                .filter(|e| e["CompteNum"] == account)
                .map(|e| french(e[side].as_str().unwrap()))
                .sum()
        };
        let debit: Decimal = entries
            .iter()
            .map(|e| french(e["Debit"].as_str().unwrap()))
            .sum();
        let credit: Decimal = entries
            .iter()
            .map(|e| french(e["Credit"].as_str().unwrap()))
            .sum();
        assert_eq!(debit, credit, "{piece} is not balanced");
        assert_eq!(
            amount("411000", "Debit"),
            want(&expected, customer, "total_ttc")
        );
        assert_eq!(
            amount("706000", "Credit") + amount("707000", "Credit"),
            want(&expected, customer, "total_ht"),
            "{piece}"
        );
        assert_eq!(
            amount("707000", "Credit"),
            want(&expected, customer, "equipment")
        );
        assert_eq!(amount("445710", "Credit"), want(&expected, customer, "vat"));
        let receivable = entries.iter().find(|e| e["CompteNum"] == "411000").unwrap();
        assert_eq!(receivable["CompAuxNum"], customer.as_str());
        assert_eq!(receivable["EcritureDate"], "01/11/2026");
        assert_eq!(receivable["JournalCode"], "VE");
    }

    // Margin: retail by kind adds up to expected.json per customer.
    let margin = ws.query(
        "SELECT customer_id, SUM(subscription_ht) AS subscription, SUM(options_ht) AS options,
                SUM(usage_ht) AS usage, SUM(equipment_ht) AS equipment, SUM(retail_ht) AS total_ht
         FROM margin WHERE customer_id IS NOT NULL GROUP BY customer_id ORDER BY customer_id",
    );
    assert_eq!(margin.len(), invoices.len());
    for row in &margin {
        let customer = text(row, "customer_id");
        for field in ["subscription", "options", "usage", "equipment", "total_ht"] {
            assert_eq!(
                decimal(&text(row, field)),
                want(&expected, &customer, field),
                "margin {customer} {field}"
            );
        }
    }
    // The wholesale cost of a line against the fixture's CDRs (rated and
    // excepted alike): 33632260054 changed plan on 7 October (ILL20 to
    // ILL100) and has one NO_DESTINATION event; 33632260222 kept its plan.
    let line = |msisdn: &str| -> BTreeMap<String, Row> {
        ws.query(&format!(
            "SELECT plan_code, retail_ht, wholesale, margin FROM margin WHERE msisdn = '{msisdn}'"
        ))
        .into_iter()
        .map(|r| (text(&r, "plan_code"), r))
        .collect()
    };
    let changed = line("33632260054");
    let days = fixture_wholesale("33632260054");
    let before: Decimal = days.range(..7).map(|(_, w)| w).sum();
    let after: Decimal = days.range(7..).map(|(_, w)| w).sum();
    assert_eq!(
        changed.keys().collect::<Vec<_>>(),
        ["ILL100", "ILL20"],
        "{changed:?}"
    );
    assert_eq!(decimal(&text(&changed["ILL20"], "wholesale")), before);
    assert_eq!(decimal(&text(&changed["ILL100"], "wholesale")), after);
    let kept = line("33632260222");
    assert_eq!(
        decimal(&text(&kept["S2H5G"], "wholesale")),
        fixture_wholesale("33632260222").values().sum::<Decimal>()
    );
    for row in changed.values().chain(kept.values()) {
        assert_eq!(
            decimal(&text(row, "margin")),
            decimal(&text(row, "retail_ht")) - decimal(&text(row, "wholesale"))
        );
    }

    // E-reporting: B2C invoices only, issued 1 November: the first décade.
    let b2c: Vec<&String> = invoices
        .keys()
        .filter(|c| customers[*c]["kind"] == "B2C")
        .collect();
    assert!(!b2c.is_empty() && b2c.len() < invoices.len());
    let sum = |field: &str| -> Decimal { b2c.iter().map(|c| want(&expected, c, field)).sum() };
    let reporting = ws.query("SELECT * FROM e_reporting");
    assert_eq!(reporting.len(), 1, "{reporting:?}");
    let row = &reporting[0];
    assert_eq!(text(row, "period_type"), "DECADE");
    assert_eq!(text(row, "period_start"), "2026-11-01");
    assert_eq!(text(row, "period_end"), "2026-11-10");
    assert_eq!(text(row, "vat_rate"), "20.00");
    assert_eq!(text(row, "documents"), b2c.len().to_string());
    assert_eq!(decimal(&text(row, "total_ht")), sum("total_ht"));
    assert_eq!(decimal(&text(row, "vat")), sum("vat"));
    assert_eq!(decimal(&text(row, "total_ttc")), sum("total_ttc"));

    // A closed month again: the same bytes.
    let before = finance_files(&ws);
    let again = ws.run(&["--json", "finance", "--month", MONTH]).ok().json();
    assert_eq!(again["journal_total_ttc"], expected["total_ttc"]);
    assert!(finance_files(&ws) == before, "finance rewrote other bytes");
}

#[test]
fn journal_csv_neutralises_formulas_in_names_and_periods_follow_the_config() {
    let samples = fixtures().join("samples");
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    copy_dir(&samples.join("reference"), &reference);
    let names = [
        ("C00002", "=HYPERLINK(\"http://x\")"),
        ("C00003", "+33 6 12 34 56 78"),
        ("C00004", "@SUM(1)"),
        ("C00005", "-1+2"),
    ];
    let customers = std::fs::read_to_string(reference.join("customers.csv")).unwrap();
    let customers: Vec<String> = customers
        .lines()
        .map(|line| {
            let mut fields: Vec<String> = line.split(';').map(str::to_string).collect();
            if let Some((_, name)) = names.iter().find(|(id, _)| fields[0] == *id) {
                fields[2] = format!("\"{}\"", name.replace('"', "\"\""));
            }
            fields.join(";")
        })
        .collect();
    std::fs::write(reference.join("customers.csv"), customers.join("\n") + "\n").unwrap();
    let ws = Workspace::new(
        &samples.join("ftp"),
        &reference,
        &samples.join("integrator.toml"),
    );
    let config = ws.dir.path().join("mvnobill.toml");
    let base = std::fs::read_to_string(&config).unwrap();

    // Not billed yet: one line saying what to do.
    for step in ["sync", "land"] {
        ws.run(&[step]).ok();
    }
    ws.run(&["rate", "--month", MONTH]).ok();
    let early = ws.run(&["finance", "--month", MONTH]);
    assert_eq!(early.status, 1);
    assert_eq!(
        early.stderr.trim(),
        "error: month 2026-10 is not billed yet: run `mvnobill bill --month 2026-10` first"
    );
    // A bad account code: one line naming the key.
    std::fs::write(
        &config,
        format!("{base}\n[accounting]\nvat_account = \"=4457\"\n"),
    )
    .unwrap();
    let bad = ws.run(&["bill", "--month", MONTH]);
    assert_eq!(bad.status, 1);
    assert!(
        bad.stderr
            .trim()
            .ends_with("[accounting] vat_account: '=4457': give 1 to 20 letters or digits")
            && bad.stderr.trim().lines().count() == 1,
        "{}",
        bad.stderr
    );

    std::fs::write(
        &config,
        format!(
            "{base}\n[accounting]\njournal_code = \"VT\"\ncustomer_account = \"41100000\"\ne_reporting_period = \"month\"\n"
        ),
    )
    .unwrap();
    ws.run(&["bill", "--month", MONTH]).ok();
    ws.run(&["finance", "--month", MONTH]).ok();

    let csv = read_journal(&ws);
    let rows = csv["rows"].as_array().unwrap();
    for (customer, name) in names {
        let receivable = rows
            .iter()
            .find(|r| r["CompAuxNum"] == customer)
            .unwrap_or_else(|| panic!("no entry for {customer}"));
        assert_eq!(receivable["CompAuxLib"], format!("'{name}"), "{customer}");
        assert_eq!(receivable["CompteNum"], "41100000");
        assert_eq!(receivable["JournalCode"], "VT");
        // The Parquet journal keeps the name as it is.
        let stored = ws.query(&format!(
            "SELECT customer_name FROM sales_journal WHERE customer_id = '{customer}'"
        ));
        assert_eq!(text(&stored[0], "customer_name"), name);
    }
    // No cell a spreadsheet would run, and every amount still a number.
    for row in rows {
        for (column, value) in row.as_object().unwrap() {
            let value = value.as_str().unwrap();
            assert!(
                !value.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{column} = {value}"
            );
        }
        french(row["Debit"].as_str().unwrap());
        french(row["Credit"].as_str().unwrap());
    }

    let reporting = ws.query("SELECT * FROM e_reporting");
    assert_eq!(reporting.len(), 1);
    assert_eq!(text(&reporting[0], "period_type"), "MONTH");
    assert_eq!(text(&reporting[0], "period_start"), "2026-11-01");
    assert_eq!(text(&reporting[0], "period_end"), "2026-11-30");
}

/// rating.md §6 and docs/ACCOUNTING.md: a month with a customer in La
/// Réunion (8.5 %, a handset exported), a Belgian business (reverse charge,
/// an intra-community handset) and a mainland customer with an exempt
/// option, and a partial credit note: every document of the CSV journal
/// balances, each rate's VAT goes to its own account (20 % to 445710, 8.5 %
/// to 445713), and the 0 % categories have no VAT entry.
#[test]
fn the_journal_balances_per_document_and_vat_account() {
    let rules = fixtures().join("rules");
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    copy_dir(&rules.join("_base/reference"), &reference);
    copy_dir(&rules.join("43_vat_exempt_option/reference"), &reference);
    let customer = "customer_id;kind;name;address1;address2;postcode;city;country;email;vat_number;siret;payment_method;iban;bic;mandate_rum;mandate_date";
    std::fs::write(
        reference.join("customers.csv"),
        format!(
            "{customer}\n\
             C1;B2C;Élodie Müller;1 rue des Tests;;97400;Saint-Denis;FR;c1@example.org;;;TRANSFER;;;;\n\
             C2;B2B;SPRL Règles;2 rue des Tests;;1000;Bruxelles;BE;c2@example.org;BE0123456749;;TRANSFER;;;;\n\
             C3;B2C;Jean Dupont;3 rue des Tests;;13001;Marseille;FR;c3@example.org;;;TRANSFER;;;;\n"
        ),
    )
    .unwrap();
    std::fs::write(
        reference.join("subscriptions.csv"),
        "msisdn;customer_id;plan_code;commitment_months;with_handset;rate_grid;options;start_date;end_date\n\
         33600000001;C1;ZERO;0;false;1;;2025-01-01;\n\
         33600000003;C2;S10;0;false;1;;2025-01-01;\n\
         33600000004;C3;ILL;0;false;2;SECU;2025-01-01;\n",
    )
    .unwrap();
    std::fs::write(
        reference.join("handset_sales.csv"),
        "sale_id;customer_id;msisdn;model;sale_date\n\
         H1;C1;33600000001;PHONE_A;2026-10-10\n\
         H2;C2;33600000003;PHONE_B;2026-10-05\n\
         H3;C3;33600000004;PHONE_B;2026-10-05\n",
    )
    .unwrap();
    let ws = Workspace::new(
        &rules.join("28_handset_sales/ftp"),
        &reference,
        &rules.join("_base/integrator.toml"),
    );
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    // C3: ILL 20.00 + handset 150.00 (S 20 %) + SECU 3.00 (E): 173.00.
    let c3 = text(
        &ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'C3'")[0],
        "invoice_number",
    );
    ws.run(&[
        "credit",
        "--invoice",
        &c3,
        "--reason",
        "Geste",
        "--amount-ht",
        "17.30",
        "--date",
        "2026-11-05",
        "--html-only",
    ])
    .ok();
    ws.run(&["finance", "--month", MONTH]).ok();

    let path = ws
        .lake()
        .join(format!("documents/{MONTH}/journal-{MONTH}.csv"));
    let rows = read_semicolon(&path);
    let mut per_document: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut per_account: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in &rows {
        let net = french(&row["Debit"]) - french(&row["Credit"]);
        *per_document.entry(row["PieceRef"].clone()).or_default() += net;
        *per_account.entry(row["CompteNum"].clone()).or_default() += net;
    }
    assert_eq!(per_document.len(), 4, "3 invoices and 1 credit note");
    for (document, net) in &per_document {
        assert!(net.is_zero(), "{document} does not balance: {net}");
    }
    // VAT: C1 round(10.00 x 8.5 %) = 0.85 to 445713; C3 round(170.00 x
    // 20 %) = 34.00 less the note's share of S: 17.30 x 170 / 173 =
    // 17.00, VAT 3.40 (E 0.30), so 30.60 to 445710. C2 (AE, K) none.
    assert_eq!(per_account["445713"], decimal("-0.85"));
    assert_eq!(per_account["445710"], decimal("-30.60"));
    let vat_lines: Vec<&String> = rows
        .iter()
        .filter(|r| r["CompteNum"].starts_with("4457"))
        .map(|r| &r["CompteLib"])
        .collect();
    assert_eq!(
        vat_lines.len(),
        3,
        "one VAT line per rate with VAT per document: {vat_lines:?}"
    );
    let journal = ws.query(&format!(
        "SELECT document_number, vat_rate, vat_account, total_ht, vat, total_ttc
         FROM sales_journal WHERE month = '{MONTH}' ORDER BY document_number, vat_rate"
    ));
    for row in &journal {
        let ht = decimal(&text(row, "total_ht"));
        let vat = decimal(&text(row, "vat"));
        assert_eq!(ht + vat, decimal(&text(row, "total_ttc")), "{row:?}");
    }
}
