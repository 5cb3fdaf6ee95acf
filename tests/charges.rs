//! One-off charges over two issued months (account.md §5): a charge is
//! billed once, ever; one dated in an issued month is billed on the next
//! month issued, its date printed; one whose row changed after it was
//! billed is not billed again, and `check` and `assure` report it.

use crate::common::{copy_dir, fixtures, text, Workspace};

#[test]
fn a_charge_is_billed_once_late_ones_print_their_date_and_check_reports_changes() {
    let rules = fixtures().join("rules");
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    copy_dir(&rules.join("_base/reference"), &reference);
    copy_dir(&rules.join("37_charges/reference"), &reference);
    let ftp = scratch.path().join("ftp");
    copy_dir(&rules.join("37_charges/ftp"), &ftp);
    std::fs::write(
        ftp.join("RatedCDRs/RatedCDRs_20261106_120000.csv"),
        "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur\n\
         F02;33600000001;208010600000001;SMS_IN;05/11/2026 10:00:00;33650000001;;;1;20801;0,0000\n",
    )
    .unwrap();
    let ws = Workspace::new(&ftp, &reference, &rules.join("_base/integrator.toml"));
    ws.run(&["run", "--month", "2026-10", "--html-only"]).ok();

    // After October's issue: CH3 changed, CH6 entered for October.
    let charges = reference.join("charges.csv");
    let mut text_file = std::fs::read_to_string(&charges)
        .unwrap()
        .replace(";Frais de dossier;29.90", ";Frais de dossier;39.90");
    text_file.push_str("CH6;C3;33600000004;2026-10-20;Frais de remplacement SIM;12.00\n");
    std::fs::write(&charges, text_file).unwrap();
    ws.run(&["run", "--month", "2026-11", "--html-only"]).ok();

    let rows = ws.query(
        "SELECT month, code, label, amount_ht FROM invoice_lines WHERE kind = 'CHARGE' ORDER BY month, code",
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                text(r, "month"),
                text(r, "code"),
                text(r, "label"),
                text(r, "amount_ht")
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "2026-10 CH1 Frais de remplacement SIM 10.00",
            "2026-10 CH2 Geste commercial -5.00",
            "2026-10 CH3 Frais de dossier 29.90",
            "2026-10 CH5 Duplicata de facture (15/09/2026) 2.50",
            "2026-11 CH4 Frais de portabilité 15.00",
            "2026-11 CH6 Frais de remplacement SIM (20/10/2026) 12.00",
        ]
    );

    let out = ws.run(&["check"]);
    assert!(
        out.stdout.contains("CH3: billed on the invoices of 2026-10, and the row changed since: it is not billed again"),
        "{}",
        out.stdout
    );
    // `assure` of the month that billed it says so too; November's does not.
    let october = ws
        .run(&["--json", "assure", "--month", "2026-10"])
        .ok()
        .json();
    assert_eq!(
        october["changed_charges"],
        serde_json::json!([{"charge_id": "CH3", "change": "CHANGED"}])
    );
    let november = ws
        .run(&["--json", "assure", "--month", "2026-11"])
        .ok()
        .json();
    assert_eq!(november["changed_charges"], serde_json::json!([]));
    let text_report = ws.run(&["assure", "--month", "2026-10"]).ok().stdout;
    assert!(
        text_report.contains("charges changed after billing"),
        "{text_report}"
    );
    assert!(
        text_report.contains("not billed again: CH3 (changed)"),
        "{text_report}"
    );
}
