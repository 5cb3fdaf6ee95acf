//! `payments import` (account.md §7 "Payments" and "Returns"): the bank's
//! files, written as a bank writes them by `tests/python/bank_files.py`,
//! imported into a lake whose October (rule case 40's, see account.rs) is
//! issued: EXM-2026-000001 C1 24.00 (SEPA_DD), EXM-2026-000002 C2 18.36
//! (TRANSFER), EXM-2026-000003 C3 24.00 (SEPA_DD), TTC. Each file is
//! imported twice: the second changes nothing. The camt files are read
//! again by an independent reader, the PyPI package `camt053`, and what it
//! reads is compared with what mvnobill recorded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::account::Months;
use crate::common::{python, text, Output};

const C1_IBAN: &str = "FR7630004000010001111111177";
const C3_IBAN: &str = "FR7630004000010003333333356";
/// A valid IBAN no customer has.
const STRANGER_IBAN: &str = "FR7630001007941234567890185";

/// Rule case 40's months (tests/account.rs), with `[billing] return_fee = 5`.
struct Lake(Months);

impl std::ops::Deref for Lake {
    type Target = Months;
    fn deref(&self) -> &Months {
        &self.0
    }
}

impl Lake {
    /// October of rule case 40 issued.
    fn october() -> Lake {
        let months = Months::new("return_fee = 5");
        months
            .run(&["run", "--month", "2026-10", "--html-only"])
            .ok();
        Lake(months)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.ws.run(args)
    }

    /// Writes a bank file from its description.
    fn bank_file(&self, name: &str, description: serde_json::Value) -> PathBuf {
        let json = self.ws.dir.path().join(format!("{name}.json"));
        std::fs::write(&json, description.to_string()).unwrap();
        let xml = self.ws.dir.path().join(name);
        let out = Command::new(python())
            .arg(script())
            .arg(&json)
            .arg(&xml)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        xml
    }

    fn import(&self, file: &Path) -> serde_json::Value {
        let file = file.to_str().unwrap();
        let out = self.run(&["--json", "payments", "import", file]).ok();
        for iban in [C1_IBAN, C3_IBAN, STRANGER_IBAN] {
            assert!(!out.stdout.contains(iban), "an IBAN in the report");
            assert!(!out.stderr.contains(iban), "an IBAN in the logs");
        }
        out.json()
    }

    /// The `account_entries` dataset, as sorted rows of text.
    fn entries(&self) -> Vec<String> {
        self.ws
            .query(
                "SELECT customer_id, CAST(entry_date AS VARCHAR) AS d, kind, reference, \
                 CAST(amount AS VARCHAR) AS amount, COALESCE(document, '') AS document, \
                 COALESCE(reason, '') AS reason FROM account_entries \
                 ORDER BY kind, reference",
            )
            .iter()
            .map(|r| {
                [
                    "customer_id",
                    "d",
                    "kind",
                    "reference",
                    "amount",
                    "document",
                    "reason",
                ]
                .map(|c| text(r, c))
                .join(" ")
            })
            .collect()
    }

    /// Each customer's balance, from the `account_entries` dataset.
    fn balances(&self) -> Vec<(String, String)> {
        self.ws
            .query(
                "SELECT customer_id, CAST(SUM(amount) AS VARCHAR) AS balance \
                 FROM account_entries GROUP BY customer_id ORDER BY customer_id",
            )
            .iter()
            .map(|r| (text(r, "customer_id"), text(r, "balance")))
            .collect()
    }

    fn ledger(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.ws.lake().join("_state/ledger.sqlite")).unwrap()
    }

    /// October's SEPA file, and its debits on the customers' accounts:
    /// `sepa` records one DIRECT_DEBIT entry per debit it writes, its
    /// EndToEndId (the invoice number) as reference and document, −amount,
    /// dated the collection date.
    fn october_debits(&self) {
        self.run(&["sepa", "--month", "2026-10"]).ok();
        let file = self.ws.lake().join("documents/2026-10/sepa-2026-10.xml");
        let out = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_sepa.py"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        let sepa: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut written = BTreeSet::new();
        for block in sepa["payments"].as_array().unwrap() {
            let date = block["collection_date"].as_str().unwrap();
            for debit in block["debits"].as_array().unwrap() {
                written.insert((
                    debit["end_to_end_id"].as_str().unwrap().to_string(),
                    format!("-{}", debit["amount"].as_str().unwrap()),
                    date.to_string(),
                ));
            }
        }
        let recorded: BTreeSet<(String, String, String)> = self
            .ws
            .query(
                "SELECT reference, CAST(amount AS VARCHAR) AS amount,
                        CAST(entry_date AS VARCHAR) AS day
                 FROM account_entries WHERE kind = 'DIRECT_DEBIT' AND document = reference",
            )
            .iter()
            .map(|r| (text(r, "reference"), text(r, "amount"), text(r, "day")))
            .collect();
        assert_eq!(recorded, written);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/bank_files.py")
}

/// What `camt053` reads in a camt file: (reference, amount, booking date,
/// credit).
fn independent_reading(file: &Path) -> BTreeSet<(String, String, String, bool)> {
    let out = Command::new(python())
        .arg(script())
        .arg("read")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    read["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reference"].as_str().unwrap().to_string(),
                e["amount"].as_str().unwrap().to_string(),
                e["booking_date"].as_str().unwrap().to_string(),
                e["credit"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn tally(value: &serde_json::Value) -> (u64, String) {
    (
        value["count"].as_u64().unwrap(),
        value["amount"].as_str().unwrap().to_string(),
    )
}

/// A pain.002 rejects C1's debit for insufficient funds (AM04) and C3's for
/// a closed account (AC04): both amounts back on the accounts with a return
/// fee each on November's invoices; C3 billed by transfer from then on; C1
/// still by direct debit, its October amount carried by November's debit,
/// presented again once; the AC04 amount dunned, the AM04 one not.
#[test]
fn a_status_report_rejecting_two_debits_puts_them_back_with_their_consequences() {
    let lake = Lake::october();
    lake.october_debits();
    let file = lake.bank_file(
        "rejects.xml",
        serde_json::json!({
            "message": "pain.002.001.03", "msg_id": "STS-20261118",
            "created": "2026-11-18T09:30:00", "original_msg_id": "EXM-SEPA-2026-10",
            "transactions": [
                {"end_to_end_id": "EXM-2026-000001", "amount": "24.00", "reason": "AM04",
                 "collection_date": "2026-11-16", "debtor_name": "Elodie Muller", "debtor_iban": C1_IBAN},
                {"end_to_end_id": "EXM-2026-000003", "amount": "24.00", "reason": "AC04",
                 "collection_date": "2026-11-16", "debtor_name": "Jean Dupont", "debtor_iban": C3_IBAN},
                {"end_to_end_id": "EXM-2026-000002", "amount": "18.36", "status": "ACCP"}
            ]
        }),
    );
    let report = lake.import(&file);
    assert_eq!(report["message"], "pain.002.001.03");
    assert_eq!(report["transactions"], 2);
    assert_eq!(report["skipped"], 1, "the accepted one");
    assert_eq!(report["new"], 2);
    assert_eq!(report["already_imported"], 0);
    assert_eq!(report["total"], "48.00");
    assert_eq!(tally(&report["returns_total"]), (2, "48.00".into()));
    assert_eq!(
        report["returns"],
        serde_json::json!([
            {"reason": "AC04", "count": 1, "amount": "24.00"},
            {"reason": "AM04", "count": 1, "amount": "24.00"}
        ])
    );
    assert_eq!(tally(&report["transfers"]), (0, "0.00".into()));
    assert_eq!(tally(&report["unmatched"]), (0, "0.00".into()));
    assert_eq!(tally(&report["fees"]), (2, "10.00".into()));
    assert_eq!(report["moved_to_transfer"], serde_json::json!(["C3"]));
    let after = lake.entries();
    assert!(
        after.contains(
            &"C1 2026-11-18 RETURN EXM-SEPA-2026-10/EXM-2026-000001/STS-20261118-1 24.00 EXM-2026-000001 AM04"
                .to_string()
        ),
        "{after:#?}"
    );
    let balances = [("C1", "24.00"), ("C2", "18.36"), ("C3", "24.00")]
        .map(|(c, b)| (c.to_string(), b.to_string()));
    assert_eq!(lake.balances(), balances);

    // Again: nothing changes.
    let again = lake.import(&file);
    assert_eq!(again["new"], 0);
    assert_eq!(again["already_imported"], 2);
    assert_eq!(tally(&again["returns_total"]), (2, "48.00".into()));
    assert_eq!(tally(&again["fees"]), (0, "0.00".into()));
    assert_eq!(again["moved_to_transfer"], serde_json::json!([]));
    assert_eq!(lake.entries(), after);
    assert_eq!(lake.balances(), balances);

    // November: the fees on the invoices, C3 by transfer, C1's October
    // amount brought forward.
    lake.run(&["run", "--month", "2026-11", "--html-only"]).ok();
    let charges = lake.ws.query(
        "SELECT customer_id, label, CAST(amount_ht AS VARCHAR) AS amount_ht FROM invoice_lines \
         WHERE month = '2026-11' AND kind = 'CHARGE' ORDER BY customer_id",
    );
    let charges: Vec<String> = charges
        .iter()
        .map(|r| {
            ["customer_id", "label", "amount_ht"]
                .map(|c| text(r, c))
                .join(" ")
        })
        .collect();
    assert_eq!(
        charges,
        [
            "C1 Frais de rejet de prélèvement 5.00",
            "C3 Frais de rejet de prélèvement 5.00"
        ]
    );
    let invoices = lake.ws.query(
        "SELECT customer_id, payment_method, CAST(balance_brought_forward AS VARCHAR) AS b \
         FROM invoices WHERE month = '2026-11' ORDER BY customer_id",
    );
    let invoices: Vec<String> = invoices
        .iter()
        .map(|r| {
            ["customer_id", "payment_method", "b"]
                .map(|c| text(r, c))
                .join(" ")
        })
        .collect();
    assert_eq!(
        invoices,
        ["C1 SEPA_DD 24.00", "C2 TRANSFER 18.36", "C3 TRANSFER 24.00"]
    );

    // November's SEPA file: C1's debit presents its returned October
    // amount again, once, with November's invoice (20.00 + the 5.00 fee =
    // 25.00 HT, 30.00 TTC, + 24.00 brought forward); C3, on transfer now,
    // has no debit.
    lake.run(&["sepa", "--month", "2026-11"]).ok();
    let november_c1 = text(
        &lake.ws.query(
            "SELECT invoice_number FROM invoices WHERE month = '2026-11' AND customer_id = 'C1'",
        )[0],
        "invoice_number",
    );
    let sepa = crate::sepa::check(&lake.ws.lake().join("documents/2026-11/sepa-2026-11.xml"));
    let debits: Vec<(String, String)> = sepa["payments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|block| block["debits"].as_array().unwrap().clone())
        .map(|d| {
            (
                d["end_to_end_id"].as_str().unwrap().to_string(),
                d["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(debits, [(november_c1.clone(), "54.00".to_string())]);
    let presented: Vec<(String, String)> = lake
        .ledger()
        .prepare("SELECT return_reference, debit_reference FROM representations")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        presented,
        [(
            "EXM-SEPA-2026-10/EXM-2026-000001/STS-20261118-1".to_string(),
            november_c1
        )]
    );

    // A week after October's due date: the AC04 amount is dunned, as is
    // C2's unpaid October invoice; the AM04 one waits for December's debit.
    lake.run(&["dunning", "--date", "2026-11-23"]).ok();
    let notices: Vec<(String, String, i64)> = lake
        .ledger()
        .prepare("SELECT customer_id, reference, level FROM dunning_notices ORDER BY customer_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let c3_return = text(
        &lake.ws.query(
            "SELECT reference FROM account_entries WHERE customer_id = 'C3' AND kind = 'RETURN'",
        )[0],
        "reference",
    );
    assert_eq!(
        notices,
        [
            ("C2".to_string(), "EXM-2026-000002".to_string(), 1),
            ("C3".to_string(), c3_return, 1)
        ]
    );
}

/// A camt.054: a partial transfer naming C2's invoice, C3 paying its
/// invoice written with spaces, C1 paying from its IBAN with no
/// reference, and a transfer from a stranger naming nothing known (kept,
/// listed, still listed after a second import).
#[test]
fn a_notification_matches_transfers_and_keeps_the_unknown_one() {
    let lake = Lake::october();
    let file = lake.bank_file(
        "camt054.xml",
        serde_json::json!({
            "message": "camt.054.001.02", "msg_id": "NTF-20261120",
            "created": "2026-11-20T07:00:00", "account": "FR7630006000011234567890189",
            "entries": [
                {"reference": "BQ-0001", "amount": "10.00", "booking_date": "2026-11-19",
                 "remittance": "Facture EXM-2026-000002 acompte", "debtor_name": "SARL Regles",
                 "debtor_iban": STRANGER_IBAN},
                {"reference": "BQ-0002", "amount": "24.00", "booking_date": "2026-11-19",
                 "remittance": "exm 2026 000003", "debtor_name": "Jean Dupont"},
                {"reference": "BQ-0003", "amount": "12.00", "booking_date": "2026-11-20",
                 "remittance": "abonnement", "debtor_name": "E Muller", "debtor_iban": C1_IBAN},
                {"reference": "BQ-0004", "amount": "5.00", "booking_date": "2026-11-20",
                 "remittance": format!("cadeau de {STRANGER_IBAN}"), "debtor_name": "Inconnu",
                 "debtor_iban": STRANGER_IBAN},
                {"reference": "BQ-0005", "amount": "99.00", "booking_date": "2026-11-21",
                 "status": "PDNG", "remittance": "EXM-2026-000002"}
            ]
        }),
    );
    let report = lake.import(&file);
    assert_eq!(report["message"], "camt.054.001.02");
    assert_eq!(report["transactions"], 4);
    assert_eq!(report["skipped"], 1, "the pending entry");
    assert_eq!(report["new"], 4);
    assert_eq!(report["total"], "51.00");
    assert_eq!(tally(&report["transfers"]), (3, "46.00".into()));
    assert_eq!(tally(&report["unmatched"]), (1, "5.00".into()));
    assert_eq!(tally(&report["returns_total"]), (0, "0.00".into()));
    let unmatched = report["unmatched_entries"].as_array().unwrap();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0]["reference"], "BQ-0004");
    assert_eq!(unmatched[0]["amount"], "5.00");
    assert_eq!(unmatched[0]["booking_date"], "2026-11-20");
    let remittance = unmatched[0]["remittance"].as_str().unwrap();
    assert!(remittance.starts_with("cadeau de **** "), "{remittance}");
    assert!(remittance.ends_with(" 0185"), "{remittance}");
    // The partial payment leaves C2 8.36 to pay; C1 paid 12.00 of 24.00.
    let balances = [("C1", "12.00"), ("C2", "8.36"), ("C3", "0.00")]
        .map(|(c, b)| (c.to_string(), b.to_string()));
    assert_eq!(lake.balances(), balances);
    let entries = lake.entries();
    for line in [
        "C2 2026-11-19 TRANSFER BQ-0001 -10.00 EXM-2026-000002 ",
        "C3 2026-11-19 TRANSFER BQ-0002 -24.00 EXM-2026-000003 ",
        "C1 2026-11-20 TRANSFER BQ-0003 -12.00  ",
    ] {
        assert!(entries.contains(&line.to_string()), "{line}: {entries:#?}");
    }

    // The same file again: nothing new, the stranger's still listed.
    let again = lake.import(&file);
    assert_eq!(again["new"], 0);
    assert_eq!(again["already_imported"], 4);
    assert_eq!(tally(&again["transfers"]), (3, "46.00".into()));
    assert_eq!(tally(&again["unmatched"]), (1, "5.00".into()));
    assert_eq!(lake.entries(), entries);
    assert_eq!(lake.balances(), balances);
    let listed = lake.run(&["--json", "payments", "unmatched"]).ok().json();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["entries"][0]["reference"], "BQ-0004");
    let text_report = lake.run(&["payments", "unmatched"]).ok().stdout;
    assert!(text_report.contains("BQ-0004"), "{text_report}");
    assert!(!text_report.contains(STRANGER_IBAN), "{text_report}");

    // The independent reader finds the same transactions: the ones on the
    // accounts and the one unmatched (the pending one is not booked).
    let mut ours: BTreeSet<(String, String, String, bool)> = lake
        .ws
        .query(
            "SELECT reference, CAST(-amount AS VARCHAR) AS amount, \
             CAST(entry_date AS VARCHAR) AS d FROM account_entries WHERE source = 'camt054.xml'",
        )
        .iter()
        .map(|r| (text(r, "reference"), text(r, "amount"), text(r, "d"), true))
        .collect();
    for e in unmatched {
        ours.insert((
            e["reference"].as_str().unwrap().into(),
            e["amount"].as_str().unwrap().into(),
            e["booking_date"].as_str().unwrap().into(),
            true,
        ));
    }
    let mut theirs = independent_reading(&file);
    theirs.retain(|e| e.0 != "BQ-0005");
    assert_eq!(ours, theirs);

    // The same transactions in a camt.053 statement (the bank sends both):
    // taken once, by their reference.
    let statement = lake.bank_file(
        "camt053.xml",
        serde_json::json!({
            "message": "camt.053.001.02", "msg_id": "STMT-20261120",
            "created": "2026-11-20T23:00:00", "account": "FR7630006000011234567890189",
            "entries": [
                {"reference": "BQ-0001", "amount": "10.00", "booking_date": "2026-11-19",
                 "remittance": "Facture EXM-2026-000002 acompte"},
                {"reference": "BQ-0006", "amount": "8.36", "booking_date": "2026-11-20",
                 "remittance": "solde C2"}
            ]
        }),
    );
    assert_eq!(independent_reading(&statement).len(), 2);
    let report = lake.import(&statement);
    assert_eq!(report["message"], "camt.053.001.02");
    assert_eq!(report["new"], 1);
    assert_eq!(report["already_imported"], 1);
    assert_eq!(tally(&report["transfers"]), (2, "18.36".into()));
    let balances = [("C1", "12.00"), ("C2", "0.00"), ("C3", "0.00")]
        .map(|(c, b)| (c.to_string(), b.to_string()));
    assert_eq!(lake.balances(), balances);
}

/// A malformed file: one line naming the file and where, exit 1, nothing
/// recorded (not even its well-formed entries).
#[test]
fn a_malformed_file_is_refused_whole() {
    let lake = Lake::october();
    let before = lake.entries();
    let file = lake.bank_file(
        "bad.xml",
        serde_json::json!({
            "message": "camt.054.001.02", "msg_id": "NTF-BAD",
            "created": "2026-11-20T07:00:00", "account": "FR7630006000011234567890189",
            "entries": [
                {"reference": "BQ-0101", "amount": "24.00", "booking_date": "2026-11-19",
                 "remittance": "EXM-2026-000003"},
                {"reference": "BQ-0102", "amount": "7.00", "booking_date": "2026-11-19",
                 "remittance": "EXM-2026-000002"}
            ]
        }),
    );
    let xml = std::fs::read_to_string(&file).unwrap();
    let line = xml
        .lines()
        .position(|l| l.contains(">7.00<"))
        .map(|i| i + 1)
        .unwrap();
    std::fs::write(&file, xml.replacen(">7.00<", ">7,00<", 1)).unwrap();
    let out = lake.run(&["payments", "import", file.to_str().unwrap()]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    let stderr = out.stderr.trim();
    assert_eq!(
        stderr,
        format!(
            "error: bank file {}, line {line}: <Amt> '7,00' is not an amount in euros (digits, a point, at most 2 decimals)",
            file.display()
        )
    );
    assert_eq!(lake.entries(), before);
    let ledger = lake.ledger();
    let kept: i64 = ledger
        .query_row("SELECT COUNT(*) FROM bank_entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 0);

    // Cut short: not well-formed, refused the same way.
    std::fs::write(&file, &xml[..xml.len() / 2]).unwrap();
    let out = lake.run(&["payments", "import", file.to_str().unwrap()]);
    assert_eq!(out.status, 1);
    let stderr = out.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: bank file {}, line ", file.display())),
        "{stderr}"
    );
    assert_eq!(lake.entries(), before);
}
