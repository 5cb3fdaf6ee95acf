//! What customers owe and paid over the months (account.md §7-8): the
//! balance brought forward on each invoice, the SEPA debit of the amount to
//! pay, credits carried then refunded in a pain.001, lapsed mandates and
//! amended ones. The months are those of rule case 40 (tests/fixtures/
//! rules/40_late_usage_regularised/, whose expected.toml has October's and
//! November's arithmetic); the figures below are worked out by hand from it.

use std::path::{Path, PathBuf};

use crate::account::Months;
use crate::sepa::check;

impl Months {
    fn configure(&self, section: &str) {
        let config = self.ws.dir.path().join("mvnobill.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("\n{section}\n"));
        std::fs::write(&config, text).unwrap();
    }

    /// A month run as operations do: `run` (HTML only: no publication),
    /// then its SEPA files.
    fn month(&self, month: &str) {
        self.run(&["run", "--month", month, "--html-only"]).ok();
        self.run(&["sepa", "--month", month]).ok();
    }

    /// Each invoice of a month: customer → (number, total_ttc,
    /// balance_brought_forward, amount_due, payment_method).
    fn invoices(&self, month: &str) -> Vec<[String; 5]> {
        self.ws
            .query(&format!(
                "SELECT customer_id, invoice_number, CAST(total_ttc AS VARCHAR) AS t,
                        CAST(balance_brought_forward AS VARCHAR) AS b,
                        CAST(amount_due AS VARCHAR) AS d, payment_method
                 FROM invoices WHERE month = '{month}' ORDER BY customer_id"
            ))
            .into_iter()
            .map(|row| {
                let get = |k: &str| row[k].as_str().unwrap_or_default().to_string();
                [
                    get("customer_id"),
                    get("invoice_number"),
                    get("t"),
                    get("b"),
                    get("d"),
                ]
            })
            .collect()
    }

    fn number(&self, month: &str, customer: &str) -> String {
        self.invoices(month)
            .into_iter()
            .find(|i| i[0] == customer)
            .map(|i| i[1].clone())
            .unwrap()
    }

    fn balances(&self) -> Vec<(String, String)> {
        self.ws
            .query(
                "SELECT customer_id, CAST(SUM(amount) AS VARCHAR) AS balance
                 FROM account_entries GROUP BY customer_id ORDER BY customer_id",
            )
            .into_iter()
            .map(|row| {
                (
                    row["customer_id"].as_str().unwrap().to_string(),
                    row["balance"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn document(&self, month: &str, name: &str) -> PathBuf {
        self.ws.lake().join(format!("documents/{month}/{name}"))
    }
}

fn row(customer: &str, total: &str, brought: &str, due: &str) -> (String, String, String, String) {
    (
        customer.to_string(),
        total.to_string(),
        brought.to_string(),
        due.to_string(),
    )
}

fn amounts(invoices: &[[String; 5]]) -> Vec<(String, String, String, String)> {
    invoices
        .iter()
        .map(|i| row(&i[0], &i[2], &i[3], &i[4]))
        .collect()
}

/// The debits of a SEPA file: EndToEndId → amount.
fn debits(file: &Path) -> Vec<(String, String)> {
    let json = check(file);
    let mut found = Vec::new();
    for block in json["payments"].as_array().unwrap() {
        for debit in block["debits"].as_array().unwrap() {
            found.push((
                debit["end_to_end_id"].as_str().unwrap().to_string(),
                debit["amount"].as_str().unwrap().to_string(),
            ));
        }
    }
    found.sort();
    found
}

#[test]
fn credits_come_off_the_next_debit_and_a_credit_above_the_threshold_is_refunded() {
    let months = Months::new("");
    // October: C1 two ZERO lines 20.00 HT = 24.00 TTC (SEPA), C2 15.30 HT
    // = 18.36 TTC (transfer), C3 20.00 HT = 24.00 TTC (SEPA). Its SEPA
    // file (written by `run`'s publish) collects C1 and C3 on Monday
    // 16 November (issue 1 November + 15 days' terms).
    months.month("2026-10");
    assert_eq!(
        amounts(&months.invoices("2026-10")),
        vec![
            row("C1", "24.00", "0.00", "24.00"),
            row("C2", "18.36", "0.00", "18.36"),
            row("C3", "24.00", "0.00", "24.00"),
        ]
    );
    let october_c1 = months.number("2026-10", "C1");
    let october_c3 = months.number("2026-10", "C3");
    assert_eq!(
        debits(&months.document("2026-10", "sepa-2026-10.xml")),
        vec![
            (october_c1.clone(), "24.00".to_string()),
            (october_c3.clone(), "24.00".to_string()),
        ]
    );
    // Two credit notes on 20 November: all of C1's October (24.00 TTC),
    // 10.00 HT of C3's (12.00 TTC).
    months
        .run(&[
            "credit",
            "--invoice",
            &october_c1,
            "--reason",
            "Geste commercial",
            "--date",
            "2026-11-20",
            "--html-only",
        ])
        .ok();
    months
        .run(&[
            "credit",
            "--invoice",
            &october_c3,
            "--reason",
            "Panne réseau",
            "--amount-ht",
            "10.00",
            "--date",
            "2026-11-20",
            "--html-only",
        ])
        .ok();

    // November (rule case 40): C1 12.00 TTC with a regularisation credit
    // note of 6.19 issued with it; C2 18.48; C3 24.60.
    //   C1: 24.00 - 24.00 (debit) - 24.00 (note) - 6.19 (note) = -30.19
    //       brought forward; 12.00 - 30.19 = -18.19: nothing to pay, the
    //       credit is carried (no refund threshold yet).
    //   C2: October unpaid, 18.36 brought forward: 36.84 to pay.
    //   C3: 24.00 - 24.00 - 12.00 = -12.00; 24.60 - 12.00 = 12.60, debited.
    months.november_inputs();
    months.month("2026-11");
    assert_eq!(
        amounts(&months.invoices("2026-11")),
        vec![
            row("C1", "12.00", "-30.19", "-18.19"),
            row("C2", "18.48", "18.36", "36.84"),
            row("C3", "24.60", "-12.00", "12.60"),
        ]
    );
    let november_c3 = months.number("2026-11", "C3");
    assert_eq!(
        debits(&months.document("2026-11", "sepa-2026-11.xml")),
        vec![(november_c3, "12.60".to_string())]
    );
    assert!(!months.document("2026-11", "refunds-2026-11.xml").exists());
    // The invoice page says so.
    let page = std::fs::read_to_string(months.document(
        "2026-11",
        &format!("{}.html", months.number("2026-11", "C1")),
    ))
    .unwrap();
    assert!(page.contains("Solde antérieur"), "{page}");
    assert!(page.contains("-30,19"), "the balance brought forward");
    assert!(page.contains("Aucun prélèvement ce mois-ci"));

    // December, with refunds above 5.00: C1 12.00 (one ZERO line), 12.00 -
    // 18.19 = -6.19, refunded by transfer on the day December's debits are
    // collected (1 January + 15 = Saturday 16 January 2027 -> Monday 18).
    months.configure("[billing]\nrefund_threshold = \"5.00\"");
    months.month("2026-12");
    assert_eq!(
        amounts(&months.invoices("2026-12")),
        vec![
            row("C1", "12.00", "-18.19", "-6.19"),
            row("C2", "18.00", "36.84", "54.84"),
            row("C3", "24.00", "0.00", "24.00"),
        ]
    );
    let refunds = check(&months.document("2026-12", "refunds-2026-12.xml"));
    assert_eq!(refunds["format"], "pain.001.001.03");
    assert_eq!(refunds["control_sum"], "6.19");
    let block = &refunds["payments"][0];
    assert_eq!(block["execution_date"], "2027-01-18");
    assert_eq!(block["transfers"][0]["amount"], "6.19");
    assert_eq!(
        block["transfers"][0]["creditor_iban"],
        "FR7630004000010001111111177"
    );
    assert!(refunds["ibans_checked"].as_u64().unwrap() >= 2);
    // The account: C1 refunded to zero; C2 owes its three invoices; C3 has
    // December's debit on its way.
    assert_eq!(
        months.balances(),
        vec![
            ("C1".to_string(), "0.00".to_string()),
            ("C2".to_string(), "54.84".to_string()),
            ("C3".to_string(), "0.00".to_string()),
        ]
    );
    // A re-run writes the same files and records nothing twice.
    let before = std::fs::read(months.document("2026-12", "refunds-2026-12.xml")).unwrap();
    let entries = months.ws.query("SELECT COUNT(*) AS n FROM account_entries");
    months.run(&["sepa", "--month", "2026-12"]).ok();
    assert_eq!(
        std::fs::read(months.document("2026-12", "refunds-2026-12.xml")).unwrap(),
        before
    );
    assert_eq!(
        months.ws.query("SELECT COUNT(*) AS n FROM account_entries"),
        entries
    );
}

/// A French IBAN from its bank, branch and account codes, with its RIB key
/// and its check digits worked out.
fn french_iban(bank: &str, branch: &str, account: &str) -> String {
    let number = |text: &str| text.parse::<u128>().unwrap();
    let key = 97 - (89 * number(bank) + 15 * number(branch) + 3 * number(account)) % 97;
    let bban = format!("{bank}{branch}{account}{key:02}");
    let digits = format!("{bban}152700");
    let remainder = digits.chars().fold(0u128, |r, c| {
        (r * 10 + c.to_digit(10).unwrap() as u128) % 97
    });
    format!("FR{:02}{bban}", 98 - remainder)
}

#[test]
fn a_changed_account_is_sent_once_with_its_amendment_and_a_lapsed_mandate_is_not_debited() {
    let months = Months::new("");
    months.month("2026-10");
    // After October's collection: C1 moves to another account at the same
    // bank (same RUM), C3 to another bank; a fourth mandate, signed 37
    // months before November's collection and never used, has lapsed.
    let same_bank = french_iban("30004", "00001", "00022222222");
    let other_bank = french_iban("30006", "00002", "00033333333");
    let customers = months.reference.join("customers.csv");
    let text = std::fs::read_to_string(&customers).unwrap();
    let text = text
        .replace("FR7630004000010001111111177", &same_bank)
        .replace(
            "FR7630004000010003333333356;BNPAFRPPXXX",
            &format!("{other_bank};AGRIFRPPXXX"),
        )
        .replace(
            "C2;B2B;\"SARL Règles \"\"&\"\" Fils\";2 rue des Tests;Bâtiment B;69003;Lyon;FR;c2@example.org;FR41551631864;55163186480505;TRANSFER;;;;",
            &format!(
                "C2;B2B;\"SARL Règles \"\"&\"\" Fils\";2 rue des Tests;Bâtiment B;69003;Lyon;FR;c2@example.org;FR41551631864;55163186480505;SEPA_DD;{};BNPAFRPPXXX;RUM-C2-OLD;2023-10-01",
                french_iban("30004", "00003", "00044444444")
            ),
        );
    std::fs::write(&customers, text).unwrap();
    let check_out = months.run(&["check"]);
    assert!(
        check_out
            .stdout
            .contains("C2: mandate RUM-C2-OLD signed on 2023-10-01 and never collected"),
        "{}",
        check_out.stdout
    );
    assert_ne!(check_out.status, 0);

    months.month("2026-11");
    let json = check(&months.document("2026-11", "sepa-2026-11.xml"));
    let mut found = Vec::new();
    for block in json["payments"].as_array().unwrap() {
        for debit in block["debits"].as_array().unwrap() {
            found.push((
                debit["mandate_id"].as_str().unwrap().to_string(),
                debit["amendment"].as_str().map(str::to_string),
                debit["original_iban"].as_str().map(str::to_string),
                debit["original_agent"].as_str().map(str::to_string),
            ));
        }
    }
    found.sort();
    // C2's lapsed mandate is not debited (its 36.84 stays owed).
    assert_eq!(
        found,
        vec![
            (
                "RUM-C1-001".to_string(),
                Some("true".to_string()),
                Some("FR7630004000010001111111177".to_string()),
                None
            ),
            (
                "RUM-C3-001".to_string(),
                Some("true".to_string()),
                None,
                Some("SMNDA".to_string())
            ),
        ]
    );
    // December: the new accounts are the mandates' own now, no amendment.
    months.month("2026-12");
    let json = check(&months.document("2026-12", "sepa-2026-12.xml"));
    for block in json["payments"].as_array().unwrap() {
        for debit in block["debits"].as_array().unwrap() {
            assert!(debit["amendment"].is_null(), "{debit}");
        }
    }
}
