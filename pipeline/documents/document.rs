//! What an invoice document shows, gathered from the lake and the reference
//! tables before any template sees it: the integrator, the customer, the
//! numbered invoice with its lines and totals, and the annex (each line's
//! usage summary and its charged events, called numbers masked).
//!
//! Amounts stay `Decimal` here (serialised as their exact text); templates
//! format them with the `eur` filter (`1 234,56 €`) and dates with
//! `date_fr` (`31/10/2026`), see `render.rs`.

use chrono::NaiveDate;
use quick_xml::events::{BytesStart, BytesText};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::month::Month;
use crate::reference::integrator::Integrator;

/// What to produce of a document (`render`, `credit`).
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// Print PDFs (needs Chromium); false writes the HTML pages only.
    pub pdf: bool,
}

/// One invoice, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceDocument {
    pub invoice_number: String,
    pub month: String,
    #[serde(serialize_with = "iso_date")]
    pub issue_date: NaiveDate,
    #[serde(serialize_with = "iso_date")]
    pub due_date: NaiveDate,
    #[serde(serialize_with = "iso_date")]
    pub period_start: NaiveDate,
    #[serde(serialize_with = "iso_date")]
    pub period_end: NaiveDate,
    pub integrator: Integrator,
    pub customer: Customer,
    /// Lines in invoice order: subscriptions, options, usage, equipment,
    /// charges, termination fees, regularisations.
    pub lines: Vec<InvoiceLine>,
    pub subscription_ht: Decimal,
    pub options_ht: Decimal,
    pub usage_ht: Decimal,
    pub equipment_ht: Decimal,
    /// One-off charges and termination fees (account.md §5, §6).
    pub charges_ht: Decimal,
    /// The regularisations of earlier months (account.md §4).
    pub regularisation_ht: Decimal,
    pub total_ht: Decimal,
    /// One entry per VAT category and rate ([`vat_breakdown`], rating.md
    /// §6), adding up to `total_vat`.
    pub vat: Vec<VatAmount>,
    pub total_vat: Decimal,
    pub total_ttc: Decimal,
    /// The customer's account at the issue date, before this invoice
    /// (account.md §7, "Solde antérieur"): positive when owed, negative for
    /// a credit.
    pub balance_brought_forward: Decimal,
    /// `total_ttc` + `balance_brought_forward`: what the customer is asked
    /// to pay (nothing when zero or less: the credit is carried).
    pub amount_due: Decimal,
    pub payment: Payment,
    /// The annex: one entry per line (msisdn) of the invoice with usage.
    pub annex: Vec<LineUsage>,
    /// The end of each commitment running on a line during the period, by
    /// line (account.md §6: "Engagement jusqu'au …" on every invoice).
    pub commitments: std::collections::BTreeMap<String, Vec<NaiveDate>>,
}

/// The customer as `customers.csv` has it (bank details masked).
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub customer_id: String,
    /// `B2C` or `B2B`.
    pub kind: String,
    pub name: String,
    pub address1: String,
    pub address2: String,
    pub postcode: String,
    pub city: String,
    /// ISO 3166 alpha-2, e.g. `FR`.
    pub country: String,
    pub email: String,
    pub vat_number: String,
    /// SIRET (14 digits) for a business; its first 9 digits are the SIREN.
    pub siret: String,
}

impl Customer {
    /// From a query row whose columns carry `customers.csv`'s names (`get`
    /// gives a column's text).
    pub fn from_columns<'r>(get: impl Fn(&str) -> &'r str) -> Customer {
        Customer {
            customer_id: get("customer_id").to_string(),
            kind: get("kind").to_string(),
            name: get("name").to_string(),
            address1: get("address1").to_string(),
            address2: get("address2").to_string(),
            postcode: get("postcode").to_string(),
            city: get("city").to_string(),
            country: get("country").to_string(),
            email: get("email").to_string(),
            vat_number: get("vat_number").to_string(),
            siret: get("siret").to_string(),
        }
    }
}

impl Customer {
    pub fn is_business(&self) -> bool {
        self.kind == "B2B"
    }

    /// The SIREN: the first 9 digits of the SIRET, when there is one.
    pub fn siren(&self) -> Option<&str> {
        (self.siret.len() >= 9).then(|| &self.siret[..9])
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceLine {
    /// `SUBSCRIPTION`, `OPTION`, `USAGE`, `EQUIPMENT`, `CHARGE`,
    /// `TERMINATION_FEE` or `REGULARISATION`.
    pub kind: String,
    pub msisdn: String,
    pub label: String,
    pub code: String,
    pub event_type: String,
    pub zone: String,
    /// Days for a subscription or option, billed units for usage (seconds,
    /// KB, messages), 1 for equipment.
    pub quantity: Decimal,
    pub unit_price: Option<Decimal>,
    pub amount_ht: Decimal,
    #[serde(serialize_with = "iso_date_opt")]
    pub period_start: Option<NaiveDate>,
    #[serde(serialize_with = "iso_date_opt")]
    pub period_end: Option<NaiveDate>,
    /// The month a `REGULARISATION` corrects (`2026-09`); empty otherwise.
    pub period: String,
    /// The VAT category of the line (rating.md §6, EN 16931 BT-151): `S`
    /// standard, `E` exempt, `AE` reverse charge, `K` intra-community
    /// supply, `G` export, `O` outside the scope of VAT.
    pub vat_category: String,
    /// The VAT rate in percent (BT-152): 20 or 8.5 for `S`, 0 otherwise.
    pub vat_rate: Decimal,
    /// Why the line bears no VAT (BT-120), as the invoice prints it; empty
    /// for `S`.
    pub vat_exemption: String,
}

impl InvoiceLine {
    /// A line known only by its label, amount and VAT (a credit note's
    /// line: its breakdown and its Factur-X need no more).
    pub fn of_vat(
        label: &str,
        amount_ht: Decimal,
        vat_category: &str,
        vat_rate: Decimal,
        vat_exemption: &str,
    ) -> InvoiceLine {
        InvoiceLine {
            kind: "CREDIT".to_string(),
            msisdn: String::new(),
            label: label.to_string(),
            code: String::new(),
            event_type: String::new(),
            zone: String::new(),
            quantity: Decimal::ONE,
            unit_price: Some(amount_ht),
            amount_ht,
            period_start: None,
            period_end: None,
            period: String::new(),
            vat_category: vat_category.to_string(),
            vat_rate,
            vat_exemption: vat_exemption.to_string(),
        }
    }

    /// What the line is, as printed where a line has one name (Factur-X):
    /// a regularisation says which month it corrects.
    pub fn printed_label(&self) -> String {
        let label = self.label.trim();
        match self.kind.as_str() {
            "REGULARISATION" => match month_numeric(&self.period) {
                Some(month) => format!("Régularisation {month} — {label}"),
                None => format!("Régularisation — {label}"),
            },
            "TERMINATION_FEE" if !label.is_empty() => {
                format!("Frais de résiliation anticipée — {label}")
            }
            "TERMINATION_FEE" => "Frais de résiliation anticipée".to_string(),
            _ => label.to_string(),
        }
    }
}

/// `2026-09` → `09/2026`; None when it is not a month.
pub fn month_numeric(month: &str) -> Option<String> {
    let parsed: Month = month.parse().ok()?;
    Some(parsed.first_day().format("%m/%Y").to_string())
}

/// One entry of the VAT breakdown (EN 16931 BG-23): the lines of one
/// category and rate, their base and their VAT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VatAmount {
    /// `S`, `E`, `AE`, `K`, `G` or `O` (see [`InvoiceLine::vat_category`]).
    pub category: String,
    /// Percent, e.g. `20` or `8.5` (normalised: no trailing zeros).
    pub rate: Decimal,
    pub base_ht: Decimal,
    /// `round(base_ht × rate / 100, 2)`, half away from zero.
    pub amount: Decimal,
    /// The exemption reason of the category (BT-120), empty for `S`.
    pub exemption: String,
}

impl VatAmount {
    /// The single standard entry of a document whose lines carry no VAT of
    /// their own (a credit note of the ledger before categories existed).
    pub fn standard(rate: Decimal, base_ht: Decimal, amount: Decimal) -> VatAmount {
        VatAmount {
            category: "S".to_string(),
            rate: rate.normalize(),
            base_ht,
            amount,
            exemption: String::new(),
        }
    }
}

/// The VAT categories of rating.md §6, in the order a breakdown lists them.
pub const VAT_CATEGORIES: [&str; 6] = ["S", "E", "AE", "K", "G", "O"];

/// The exemption text a line prints when the lake gives none (a month
/// billed before `vat_exemption` existed): rating.md §6's text of its
/// category; an exempt (`E`) product without its own text says only
/// "Exonération de TVA". Empty for `S`.
pub fn default_exemption(category: &str) -> &'static str {
    match category {
        "E" => "Exonération de TVA",
        "G" => "Exonération de TVA, article 262 I du CGI",
        "K" => "Exonération de TVA, article 262 ter I du CGI",
        "AE" => "Autoliquidation",
        "O" => "Hors champ d'application de la TVA",
        _ => "",
    }
}

/// VAT of a base at a rate in percent: `round(base × rate / 100, 2)`, half
/// away from zero (how DataFusion's `CAST(… AS DECIMAL(18, 2))` rounds in
/// `bill`).
pub fn vat_of(base_ht: Decimal, rate: Decimal) -> Decimal {
    (base_ht * rate / Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// The VAT breakdown of `lines` (rating.md §6): one entry per category and
/// rate, its base the sum of its lines, its VAT rounded on that base, in
/// the order of [`VAT_CATEGORIES`] then by rate, highest first. The
/// exemption texts of a category's lines are joined when they differ.
/// Checked: every line has a known category, a positive rate for `S` and
/// 0 otherwise, and the VAT adds up to `total_vat`; the error says what
/// does not hold, in one line.
pub fn vat_breakdown(lines: &[InvoiceLine], total_vat: Decimal) -> Result<Vec<VatAmount>, String> {
    let entries = breakdown_of(lines)?;
    let sum: Decimal = entries.iter().map(|entry| entry.amount).sum();
    if sum != total_vat {
        return Err(format!(
            "its lines' VAT per category and rate adds up to {sum}, its vat is {total_vat}"
        ));
    }
    Ok(entries)
}

/// [`vat_breakdown`] without the check against a VAT total.
pub fn breakdown_of(lines: &[InvoiceLine]) -> Result<Vec<VatAmount>, String> {
    let mut entries: Vec<VatAmount> = Vec::new();
    for line in lines {
        let category = line.vat_category.trim();
        let rank = VAT_CATEGORIES
            .iter()
            .position(|known| *known == category)
            .ok_or_else(|| {
                format!(
                    "line '{}' has VAT category '{category}' (not one of S, E, AE, K, G, O)",
                    line.label
                )
            })?;
        let rate = line.vat_rate.normalize();
        let standard = category == "S";
        if standard != (rate > Decimal::ZERO) || rate < Decimal::ZERO {
            return Err(format!(
                "line '{}' is in VAT category {category} at {rate} % (S has a positive rate, the others 0)",
                line.label
            ));
        }
        let exemption = if standard {
            String::new()
        } else if line.vat_exemption.trim().is_empty() {
            default_exemption(category).to_string()
        } else {
            line.vat_exemption.trim().to_string()
        };
        match entries
            .iter_mut()
            .find(|entry| entry.category == category && entry.rate == rate)
        {
            Some(entry) => {
                entry.base_ht += line.amount_ht;
                if !exemption.is_empty()
                    && !entry.exemption.split(" ; ").any(|text| text == exemption)
                {
                    entry.exemption = format!("{} ; {exemption}", entry.exemption);
                }
            }
            None => entries.push(VatAmount {
                category: VAT_CATEGORIES[rank].to_string(),
                rate,
                base_ht: line.amount_ht,
                amount: Decimal::ZERO,
                exemption,
            }),
        }
    }
    let rank = |category: &str| VAT_CATEGORIES.iter().position(|known| *known == category);
    entries.sort_by(|a, b| {
        rank(&a.category)
            .cmp(&rank(&b.category))
            .then(b.rate.cmp(&a.rate))
    });
    for entry in &mut entries {
        entry.amount = vat_of(entry.base_ht, entry.rate);
    }
    Ok(entries)
}

/// How the invoice is paid.
#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    /// `SEPA_DD` or `TRANSFER`.
    pub method: String,
    /// SEPA direct debit: the creditor identifier (ICS) of the integrator.
    pub creditor_id: String,
    /// SEPA direct debit: the mandate reference (RUM) and its signature date.
    pub mandate_rum: String,
    #[serde(serialize_with = "iso_date_opt")]
    pub mandate_date: Option<NaiveDate>,
    /// The debtor's IBAN with all but its last 4 characters masked.
    pub iban_masked: String,
    /// The day the amount is debited (the due date).
    #[serde(serialize_with = "iso_date")]
    pub debit_date: NaiveDate,
    /// Transfer: the integrator's account.
    pub bank_iban: String,
    pub bank_bic: String,
}

/// The annex for one line: its usage per event type and zone, and the
/// events that were charged (outside the allowances).
#[derive(Debug, Clone, Serialize)]
pub struct LineUsage {
    pub msisdn: String,
    pub summary: Vec<UsageSummary>,
    pub charged: Vec<ChargedEvent>,
    /// Charged events beyond those listed (the list is capped).
    pub charged_not_listed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageSummary {
    pub event_type: String,
    pub zone: String,
    pub events: u64,
    /// Billed units: seconds, KB or messages.
    pub billed_qty: i64,
    pub covered_qty: i64,
    pub amount: Decimal,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChargedEvent {
    /// Local (Europe/Paris) date and time, `31/10/2026 23:59`.
    pub local_time: String,
    pub event_type: String,
    pub zone: String,
    /// The called number with its last 4 digits masked (`336123XXXX`).
    pub called_number: String,
    pub billed_qty: i64,
    pub amount: Decimal,
}

/// Dates as `2026-10-31` for the templates (chrono's own serde support
/// would change the feature set every Arrow crate is built with).
pub(crate) fn iso_date<S: serde::Serializer>(date: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&date.format("%Y-%m-%d"))
}

fn iso_date_opt<S: serde::Serializer>(date: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(date) => iso_date(date, s),
        None => s.serialize_none(),
    }
}

/// Escapes text for XML and HTML, content and attribute values alike, and
/// drops the characters XML 1.0 does not allow (the Factur-X XML and the
/// mails' HTML part use it; the invoice page is escaped by its templates).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A start tag for quick-xml's writer whose attribute values are escaped
/// by [`escape_markup`] (quick-xml's own escaping writes `&apos;` and keeps
/// the characters XML 1.0 forbids).
pub fn markup_start<'a>(name: &'a str, attributes: &[(&str, &str)]) -> BytesStart<'a> {
    let mut start = BytesStart::new(name);
    for (key, value) in attributes {
        let value = escape_markup(value);
        // Raw bytes: quick-xml takes them as they are, already escaped.
        start.push_attribute((key.as_bytes(), value.as_bytes()));
    }
    start
}

/// Text for quick-xml's writer, escaped by [`escape_markup`].
pub fn markup_text(text: &str) -> BytesText<'static> {
    BytesText::from_escaped(escape_markup(text))
}

/// Masks the last 4 characters of a called number, as French rules require
/// by default on itemised bills.
pub fn mask_called_number(number: &str) -> String {
    let keep = number.chars().count().saturating_sub(4);
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep { c } else { 'X' })
        .collect()
}

/// Masks an IBAN but its last 4 characters, which are printed apart so
/// that the customer recognises the account: `**** … *** 4472`.
pub fn mask_iban(iban: &str) -> String {
    let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let keep_from = compact.len().saturating_sub(4);
    let stars = vec!['*'; keep_from];
    let mut groups: Vec<String> = stars.chunks(4).map(|c| c.iter().collect()).collect();
    groups.push(compact[keep_from..].iter().collect());
    groups.join(" ")
}

/// A credit note as its page shows it (`templates/credit_note.html`).
#[derive(Debug, Clone, Serialize)]
pub struct CreditNoteDocument {
    pub credit_note_number: String,
    #[serde(serialize_with = "iso_date")]
    pub issue_date: NaiveDate,
    pub reason: String,
    /// The note credits the whole invoice (its total HT).
    pub whole: bool,
    pub invoice: CreditedInvoiceSummary,
    pub integrator: Integrator,
    pub customer: Customer,
    /// How the invoice was paid: the note is refunded accordingly.
    pub payment: Payment,
    pub total_ht: Decimal,
    pub vat: Vec<VatAmount>,
    pub total_vat: Decimal,
    pub total_ttc: Decimal,
}

/// The invoice a note credits, as the note shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CreditedInvoiceSummary {
    pub invoice_number: String,
    pub month: String,
    #[serde(serialize_with = "iso_date")]
    pub issue_date: NaiveDate,
    #[serde(serialize_with = "iso_date")]
    pub period_start: NaiveDate,
    #[serde(serialize_with = "iso_date")]
    pub period_end: NaiveDate,
    pub total_ht: Decimal,
    pub total_vat: Decimal,
    pub total_ttc: Decimal,
}

/// The VAT rate of rating.md §6, in percent.
pub const VAT_RATE_PERCENT: u32 = 20;

/// `documents/2026-10/EXM-2026-000001.pdf`.
pub fn document_key(month: Month, invoice_number: &str, extension: &str) -> String {
    format!("documents/{month}/{invoice_number}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vat_line(amount: &str, category: &str, rate: &str, exemption: &str) -> InvoiceLine {
        InvoiceLine::of_vat(
            "line",
            amount.parse().unwrap(),
            category,
            rate.parse().unwrap(),
            exemption,
        )
    }

    #[test]
    fn the_vat_breakdown_is_per_category_and_rate_rounded_on_each_base() {
        let dec = |s: &str| s.parse::<Decimal>().unwrap();
        let lines = [
            vat_line("7.50", "E", "0.00", ""),
            vat_line("10.03", "S", "20.00", ""),
            vat_line("10.03", "S", "20.00", ""),
            vat_line("29.99", "S", "8.50", ""),
            vat_line("-1.00", "S", "20.00", ""),
        ];
        // 19.06 × 20 % = 3.812 → 3.81; 29.99 × 8.5 % = 2.54915 → 2.55.
        let vat = vat_breakdown(&lines, dec("6.36")).unwrap();
        let summary: Vec<_> = vat
            .iter()
            .map(|v| (v.category.as_str(), v.rate.to_string(), v.base_ht, v.amount))
            .collect();
        assert_eq!(
            summary,
            [
                ("S", "20".to_string(), dec("19.06"), dec("3.81")),
                ("S", "8.5".to_string(), dec("29.99"), dec("2.55")),
                ("E", "0".to_string(), dec("7.50"), dec("0")),
            ]
        );
        assert_eq!(vat[2].exemption, "Exonération de TVA");
        let err = vat_breakdown(&lines, dec("6.37")).unwrap_err();
        assert!(err.contains("adds up to 6.36"), "{err}");
        let err = vat_breakdown(&[vat_line("1", "E", "20", "")], Decimal::ZERO).unwrap_err();
        assert!(err.contains("category E at 20 %"), "{err}");
        let err = vat_breakdown(&[vat_line("1", "Z", "0", "")], Decimal::ZERO).unwrap_err();
        assert!(err.contains("'Z'"), "{err}");
    }

    #[test]
    fn masks_the_last_four_digits_of_a_called_number() {
        assert_eq!(mask_called_number("33612345678"), "3361234XXXX");
        assert_eq!(mask_called_number("3060"), "XXXX");
        assert_eq!(mask_called_number("12"), "XX");
    }

    #[test]
    fn masks_an_iban_but_its_last_four_characters() {
        assert_eq!(
            mask_iban("FR76 3000 6000 0112 3456 7890 189"),
            "**** **** **** **** **** *** 0189"
        );
        assert!(!mask_iban("FR7630006000011234567890189").contains("FR76"));
    }
}
