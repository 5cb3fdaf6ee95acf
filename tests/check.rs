//! `mvnobill check` on the real binary: the samples' dossier passes (the
//! whole checklist compared), and one broken copy per item fails, or warns,
//! with the message naming the file, line and column. Each broken dossier
//! is the samples with one file edited in a temp folder.

use std::path::PathBuf;

use serde_json::Value;

use crate::common::{copy_dir, fixtures, Output, Workspace};

/// The samples' reference tables, integrator.toml, logo and banner, copied
/// into a workspace whose source is an empty FTP folder.
struct Dossier {
    workspace: Workspace,
}

impl Dossier {
    fn samples() -> Dossier {
        let samples = fixtures().join("samples");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&samples.join("reference"), &dir.path().join("reference"));
        for file in ["integrator.toml", "logo.png", "banner.png"] {
            std::fs::copy(samples.join(file), dir.path().join(file)).unwrap();
        }
        let ftp = dir.path().join("ftp");
        std::fs::create_dir_all(&ftp).unwrap();
        let (reference, integrator) = (
            dir.path().join("reference"),
            dir.path().join("integrator.toml"),
        );
        Dossier {
            workspace: Workspace::in_dir(dir, &ftp, &reference, &integrator),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.workspace.dir.path().join(relative)
    }

    /// Replaces `from` (which must be there) by `to` in one file.
    fn edit(&self, relative: &str, from: &str, to: &str) -> &Dossier {
        let path = self.path(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{relative} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }

    fn check(&self) -> (Output, Value) {
        let out = self.workspace.run(&["check", "--json"]);
        let json = out.json();
        (out, json)
    }
}

fn item<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {report:#}"))
}

/// The one finding of an item whose message is `message`, with its place.
fn finding<'a>(report: &'a Value, id: &str, message: &str) -> &'a Value {
    let item = item(report, id);
    item["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["message"] == message)
        .unwrap_or_else(|| panic!("no finding {message:?} in {item:#}"))
}

/// Asserts a finding's status, file (its last components), line and column.
fn assert_at(found: &Value, status: &str, file: &str, line: Option<u64>, column: Option<&str>) {
    assert_eq!(found["status"], status, "{found:#}");
    let path = found["file"].as_str().unwrap();
    assert!(path.ends_with(file), "{path} is not {file}");
    assert_eq!(found["line"].as_u64(), line, "{found:#}");
    assert_eq!(found["column"].as_str(), column, "{found:#}");
}

/// A dossier that blocks invoicing: exit 1, the item blocking.
fn assert_blocks(out: &Output, report: &Value, id: &str) {
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert_eq!(item(report, id)["status"], "blocking", "{report:#}");
    assert_eq!(report["blocking"].as_u64(), Some(blocking_count(report)));
}

fn blocking_count(report: &Value) -> u64 {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "blocking")
        .count() as u64
}

#[test]
fn check_the_samples_pass_with_their_checklist() {
    let dossier = Dossier::samples();
    let out = dossier.workspace.run(&["check"]).ok();
    let root = dossier.workspace.dir.path().display().to_string();
    let text = out.stdout.replace(&root, "<dir>");
    assert_eq!(
        text,
        "\
check: reference tables in <dir>/reference, <dir>/integrator.toml
[ok]       plans: every plan has a monthly fee for 0, 12 and 24 months, with and without a handset, or says it is not sold
[ok]       options: every option has its monthly fee; the fee with a handset defaults to it
    · options.csv line 2, column monthly_fee_with_handset: EU2H: 4.99 with a handset too (empty: the same as monthly_fee)
    · options.csv line 3, column monthly_fee_with_handset: DOM1H: 2.99 with a handset too (empty: the same as monthly_fee)
    · options.csv line 5, column monthly_fee_with_handset: SMSEU: 1.99 with a handset too (empty: the same as monthly_fee)
[warning]  rate_grids: each of the 5 grids prices every zone of destinations.csv and every roaming zone for each event type
    ! rate_grids.csv: grid 5 has no price for 1 combination (NO_PRICE exceptions at rating): ROAM_Z3 MMS
[ok]       destinations: destinations have one row per prefix (the longest prefix wins); roaming zones one per MCC
    · destinations.csv line 11, column prefix: 3389 (FR_SPECIAL) shadows 338 (FR_SPECIAL, line 10) for the numbers starting 3389
[warning]  handsets: every handset has a bare price (tarif NU) and the offers it is sold with
    · handsets.csv line 2, column model: PHONE_A: bare price 299.00; with ILL20 24 months 99.00, ILL100 24 months 1.00, ILL100 12 months 49.00
    · handsets.csv line 6, column model: PHONE_B: bare price 899.00; with ILL100 24 months 399.00
    ! handsets.csv line 8, column model: PHONE_C: sold with no offer, only at its bare price 129.00
[ok]       subscriptions: subscriptions name customers, plans, options and grids that exist, on a combination with a fee; a line's rows do not overlap
[ok]       customers: direct-debit customers have a valid IBAN and mandate (RUM, date); e-mail, SIRET and VAT numbers are well-formed
[ok]       mandates: no direct-debit mandate has lapsed (unused for 36 months)
[ok]       charges: one-off charges name a known customer (and one of its lines), once each, in cents; a charge billed is not changed afterwards
    · charges.csv: absent: no one-off charge to bill (the file is optional)
[ok]       images: logo 95×95 px and footer banner 760×95 px, PNG or JPEG, 300 dpi
    · integrator.toml line 18, key logo: <dir>/logo.png: 95×95 px at 300 dpi
    · integrator.toml line 19, key footer_banner: <dir>/banner.png: 760×95 px at 300 dpi
[ok]       identity: the banner's identity: company name, address, SIRET, VAT number, customer service number, its cost and e-mail
[ok]       details: complementary details: brand, billing and technical e-mails, technical contact, SEPA creditor identifier (ICS)
[warning]  platform: the tables the MVNE configured (Tables tarifaires/) are ours
    ! file://<dir>/lake/raw/Tables tarifaires/: not compared: no table of the MVNE synced yet (run mvnobill sync once the MVNE has published them)
check: 13 items, 10 ok, 3 with warnings, 0 blocking
"
    );
    let (out, report) = dossier.check();
    assert_eq!(out.status, 0);
    assert_eq!(
        (
            report["ok"].as_u64(),
            report["warnings"].as_u64(),
            report["blocking"].as_u64()
        ),
        (Some(10), Some(3), Some(0))
    );
}

#[test]
fn check_a_plan_without_a_fee_for_a_combination_blocks() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/plan_fees.csv",
        "ILL20;12;true;23.99;2026-01-01\n",
        "",
    );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "plans");
    let fees = dossier
        .path("reference/plan_fees.csv")
        .display()
        .to_string();
    assert_at(
        finding(
            &report,
            "plans",
            &format!("ILL20: no fee for 12 months with a handset in {fees}, and no row saying it is not sold (an empty monthly_fee)"),
        ),
        "blocking",
        "reference/plans.csv",
        Some(4),
        Some("plan_code"),
    );
    // The two lines on that combination cannot be billed.
    let message = format!(
        "ILL20 has no fee for 12 months with a handset in {fees}: the line cannot be billed"
    );
    assert_at(
        finding(&report, "subscriptions", &message),
        "blocking",
        "reference/subscriptions.csv",
        Some(33),
        Some("plan_code"),
    );
}

#[test]
fn check_a_combination_stated_not_sold_passes_and_takes_no_new_line() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/plan_fees.csv",
        "BLOC1H;0;true;14.99;",
        "BLOC1H;0;true;;",
    );
    let (out, report) = dossier.check();
    assert_eq!(out.status, 0, "{report:#}");
    assert_at(
        finding(
            &report,
            "plans",
            "BLOC1H: not sold with 0 months with a handset from 2026-01-01",
        ),
        "ok",
        "reference/plan_fees.csv",
        Some(3),
        Some("monthly_fee"),
    );
    // A line subscribed to it is refused, as rate and bill refuse it.
    let subscriptions = dossier.path("reference/subscriptions.csv");
    let mut text = std::fs::read_to_string(&subscriptions).unwrap();
    text.push_str("33699999999;C00001;BLOC1H;0;true;1;;2026-10-01;\n");
    std::fs::write(&subscriptions, text).unwrap();
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "subscriptions");
    let fees = dossier
        .path("reference/plan_fees.csv")
        .display()
        .to_string();
    assert_at(
        finding(
            &report,
            "subscriptions",
            &format!("BLOC1H is not sold with 0 months and a handset on 2026-10-01 ({fees} line 3 says so)"),
        ),
        "blocking",
        "reference/subscriptions.csv",
        Some(76),
        Some("plan_code"),
    );
    let rate = dossier.workspace.run(&["rate", "--month", "2026-10"]);
    assert_eq!(rate.status, 1);
    assert!(
        rate.stderr
            .contains("subscriptions.csv line 76, column plan_code: BLOC1H is not sold"),
        "{}",
        rate.stderr
    );
}

#[test]
fn check_a_negative_price_and_an_ambiguous_version_block() {
    let dossier = Dossier::samples();
    dossier
        .edit(
            "reference/plan_fees.csv",
            "S2H5G;0;false;8.99",
            "S2H5G;0;false;-8.99",
        )
        .edit(
            "reference/plan_fees.csv",
            "ILL100;0;false;29.99;2026-11-10",
            "ILL100;0;false;29.99;2026-01-01",
        );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "plans");
    assert_at(
        finding(&report, "plans", "'-8.99' is negative"),
        "blocking",
        "reference/plan_fees.csv",
        Some(8),
        Some("monthly_fee"),
    );
    assert_at(
        finding(
            &report,
            "plans",
            "duplicate row for (plan_code, commitment_months, with_handset, valid_from): line 20 has the same",
        ),
        "blocking",
        "reference/plan_fees.csv",
        Some(27),
        Some("plan_code"),
    );
}

#[test]
fn check_an_option_without_its_price_blocks() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/options.csv",
        "SECU;Assurance mobile;7.99;",
        "SECU;Assurance mobile;;",
    );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "options");
    assert_at(
        finding(&report, "options", "a value is required"),
        "blocking",
        "reference/options.csv",
        Some(6),
        Some("monthly_fee"),
    );
}

#[test]
fn check_a_grid_hole_is_listed_and_a_missing_grid_blocks() {
    let dossier = Dossier::samples();
    dossier
        .edit(
            "reference/rate_grids.csv",
            "2;HOME;DATA;0.0450;;1;1;2026-01-01\n",
            "",
        )
        .edit(
            "reference/rate_grids.csv",
            "2;EU;SMS;0.0540;;;;2026-01-01\n",
            "",
        );
    let (out, report) = dossier.check();
    assert_eq!(out.status, 0, "{report:#}");
    assert_at(
        finding(
            &report,
            "rate_grids",
            "grid 2 has no price for 2 combinations (NO_PRICE exceptions at rating): EU SMS, HOME DATA",
        ),
        "warning",
        "reference/rate_grids.csv",
        None,
        None,
    );

    let grids = dossier.path("reference/rate_grids.csv");
    let text = std::fs::read_to_string(&grids).unwrap();
    let without_3: String = text
        .lines()
        .filter(|l| !l.starts_with("3;"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&grids, without_3).unwrap();
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "rate_grids");
    assert_at(
        finding(
            &report,
            "rate_grids",
            &format!(
                "grid 3 has no price in {}: every event of its lines would be a NO_PRICE exception",
                grids.display()
            ),
        ),
        "blocking",
        "reference/subscriptions.csv",
        Some(7),
        Some("rate_grid"),
    );
}

#[test]
fn check_a_duplicate_prefix_blocks() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/destinations.csv",
        "86;WORLD;Chine\n",
        "86;WORLD;Chine\n337;FR_FIXED;Doublon\n",
    );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "destinations");
    assert_at(
        finding(
            &report,
            "destinations",
            "duplicate row for (prefix): line 3 has the same",
        ),
        "blocking",
        "reference/destinations.csv",
        Some(32),
        Some("prefix"),
    );
}

#[test]
fn check_a_handset_without_its_bare_price_blocks() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/handsets.csv",
        "PHONE_B;;;899.00;2026-01-01\n",
        "",
    );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "handsets");
    assert_at(
        finding(
            &report,
            "handsets",
            "PHONE_B has no bare price (a row with empty plan_code and commitment_months): a sale on another offer has no price",
        ),
        "blocking",
        "reference/handsets.csv",
        Some(6),
        Some("plan_code"),
    );
}

#[test]
fn check_an_unknown_option_of_a_subscription_blocks() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/subscriptions.csv",
        ";4;EU2H;2025-10-16;",
        ";4;EU3H;2025-10-16;",
    );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "subscriptions");
    assert_at(
        finding(&report, "subscriptions", "unknown option 'EU3H'"),
        "blocking",
        "reference/subscriptions.csv",
        Some(2),
        Some("options"),
    );
}

#[test]
fn check_a_wrong_iban_blocks_without_showing_it() {
    let dossier = Dossier::samples();
    dossier.edit(
        "reference/customers.csv",
        "FR3014170753645568151884472",
        "FR3014170753645568151884473",
    );
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "customers");
    assert_at(
        finding(&report, "customers", "the IBAN's check digits are wrong"),
        "blocking",
        "reference/customers.csv",
        Some(2),
        Some("iban"),
    );
    assert!(!out.stdout.contains("FR3014170753645568151884473"));
}

/// The samples' logo with its pHYs density set to `per_metre` pixels a metre.
fn logo_at(per_metre: u32) -> Vec<u8> {
    let mut bytes = std::fs::read(fixtures().join("samples/logo.png")).unwrap();
    let at = bytes.windows(4).position(|w| w == b"pHYs").unwrap() + 4;
    bytes[at..at + 4].copy_from_slice(&per_metre.to_be_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&per_metre.to_be_bytes());
    bytes
}

#[test]
fn check_a_logo_of_the_wrong_size_blocks_and_a_wrong_density_warns() {
    let dossier = Dossier::samples();
    let logo = dossier.path("logo.png");
    std::fs::write(&logo, logo_at(2835)).unwrap();
    let (out, report) = dossier.check();
    assert_eq!(out.status, 0, "{report:#}");
    assert_at(
        finding(
            &report,
            "images",
            &format!("{} says 72 dpi, 300 dpi is asked (the invoice places it by its size in mm all the same)", logo.display()),
        ),
        "warning",
        "integrator.toml",
        Some(18),
        Some("logo"),
    );

    std::fs::copy(dossier.path("banner.png"), &logo).unwrap();
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "images");
    assert_at(
        finding(
            &report,
            "images",
            &format!(
                "the logo {} is 760×95 px; it must be 95×95 px (8.0 × 8.0 mm at 300 dpi)",
                logo.display()
            ),
        ),
        "blocking",
        "integrator.toml",
        Some(18),
        Some("logo"),
    );
}

#[test]
fn check_a_missing_mention_and_a_wrong_siret_block() {
    let dossier = Dossier::samples();
    dossier
        .edit(
            "integrator.toml",
            "customer_service_cost = \"appel non surtaxé\"\n",
            "",
        )
        .edit("integrator.toml", "12345678200010", "12345678200011");
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "identity");
    assert_at(
        finding(
            &report,
            "identity",
            "no cost per minute of the customer service number (\"appel non surtaxé\", or the price)",
        ),
        "blocking",
        "integrator.toml",
        None,
        Some("customer_service_cost"),
    );
    assert_at(
        finding(
            &report,
            "identity",
            "'12345678200011': the SIRET's check digit is wrong (Luhn)",
        ),
        "blocking",
        "integrator.toml",
        Some(5),
        Some("siret"),
    );
    let text = out.stdout;
    assert!(text.is_empty() || text.starts_with('{'));
    let plain = dossier.workspace.run(&["check"]);
    assert_eq!(plain.status, 1);
    assert!(
        plain.stdout.contains("    ✗ integrator.toml line 5, key siret: '12345678200011': the SIRET's check digit is wrong (Luhn)\n"),
        "{}",
        plain.stdout
    );
}

#[test]
fn check_a_malformed_billing_email_and_a_wrong_ics_block() {
    let dossier = Dossier::samples();
    dossier
        .edit(
            "integrator.toml",
            "facturation@exemple-mobile.fr",
            "facturation.exemple-mobile.fr",
        )
        .edit("integrator.toml", "FR72ZZZ123456", "FR27ZZZ123456");
    let (out, report) = dossier.check();
    assert_blocks(&out, &report, "details");
    let email = finding(
        &report,
        "details",
        "'facturation.exemple-mobile.fr' is not an e-mail address (Missing domain or user)",
    );
    assert_at(
        email,
        "blocking",
        "integrator.toml",
        Some(10),
        Some("billing_email"),
    );
    assert_at(
        finding(
            &report,
            "details",
            "'FR27ZZZ123456': the check digits are wrong (mod 97-10 of the identifier without its business code gives 72)",
        ),
        "blocking",
        "integrator.toml",
        Some(13),
        Some("sepa_ics"),
    );
}

#[test]
fn check_reports_the_drift_of_the_platform_tables_after_sync() {
    let dossier = Dossier::samples();
    let platform = dossier.path("ftp/Tables tarifaires");
    std::fs::create_dir_all(&platform).unwrap();
    let reference = dossier.path("reference");
    for table in [
        "plans",
        "plan_fees",
        "options",
        "rate_grids",
        "destinations",
        "roaming_zones",
        "handsets",
    ] {
        std::fs::copy(
            reference.join(format!("{table}.csv")),
            platform.join(format!("{table}.csv")),
        )
        .unwrap();
    }
    let options = platform.join("options.csv");
    let text = std::fs::read_to_string(&options).unwrap();
    let text = text
        .replace("EU2H;Europe 2h;4.99;", "EU2H;Europe 2h;5.99;")
        .replace("SECU;Assurance mobile;7.99;6.99;;;2026-01-01\n", "");
    std::fs::write(&options, text).unwrap();
    let sync = dossier.workspace.run(&["sync", "--json"]).ok().json();
    assert_eq!(sync["files_fetched"], 7);

    let (out, report) = dossier.check();
    assert_eq!(out.status, 0, "{report:#}");
    let platform = item(&report, "platform");
    assert_eq!(platform["status"], "warning");
    assert_eq!(
        platform["findings"].as_array().unwrap().len(),
        2,
        "{platform:#}"
    );
    assert_at(
        finding(
            &report,
            "platform",
            "options EU2H 2026-01-01: monthly_fee 4.99 here, 5.99 on the platform (raw/Tables tarifaires/options.csv line 2)",
        ),
        "warning",
        "reference/options.csv",
        Some(2),
        Some("monthly_fee"),
    );
    assert_at(
        finding(
            &report,
            "platform",
            "options SECU 2026-01-01 is not on the platform (raw/Tables tarifaires/options.csv)",
        ),
        "warning",
        "reference/options.csv",
        Some(6),
        Some("option_code"),
    );

    // The MVNE corrects its copy: the new version is the one compared.
    std::fs::copy(reference.join("options.csv"), &options).unwrap();
    let sync = dossier.workspace.run(&["sync", "--json"]).ok().json();
    assert_eq!(
        sync["new_versions"],
        serde_json::json!(["Tables tarifaires/options.csv"])
    );
    let (out, report) = dossier.check();
    assert_eq!(out.status, 0);
    assert_eq!(item(&report, "platform")["status"], "ok", "{report:#}");
}
