//! The document templates (`templates/`): the integrator's own files where
//! its `[templates] dir` has them, the embedded defaults otherwise, with the
//! filters that format French amounts, dates, numbers and quantities, and
//! the integrator's logo and banner. Invoices and credit notes are laid out
//! with them (`render`, `credit`), and the mail that announces an invoice is
//! worded with them (`mail`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use minijinja::{Environment, Value};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::core::month::Month;
use crate::documents::document::{escape_markup, CreditNoteDocument, InvoiceDocument, InvoiceLine};
use crate::documents::images::{self, ImageError};
use crate::reference::integrator::Integrator;

/// A template that does not load or does not render, on one line naming
/// the template and the line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The templates every invoice is laid out with, and their file names.
const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    ("invoice.html", include_str!("../../templates/invoice.html")),
    ("invoice.css", include_str!("../../templates/invoice.css")),
    ("parties.html", include_str!("../../templates/parties.html")),
    ("vat.html", include_str!("../../templates/vat.html")),
    (
        "credit_note.html",
        include_str!("../../templates/credit_note.html"),
    ),
];

/// The mail that announces an invoice (`mail.rs`, docs/MAIL.md): its
/// subject, its plain text and its HTML alternative.
const MAIL_TEMPLATES: &[(&str, &str)] = &[
    (
        MailTemplates::SUBJECT,
        include_str!("../../templates/mail_subject.txt"),
    ),
    (
        MailTemplates::TEXT,
        include_str!("../../templates/mail.txt"),
    ),
    (
        MailTemplates::HTML,
        include_str!("../../templates/mail.html"),
    ),
    (
        MailTemplates::CREDIT_NOTE_SUBJECT,
        include_str!("../../templates/credit_note_mail_subject.txt"),
    ),
    (
        MailTemplates::CREDIT_NOTE_TEXT,
        include_str!("../../templates/credit_note_mail.txt"),
    ),
    (
        MailTemplates::CREDIT_NOTE_HTML,
        include_str!("../../templates/credit_note_mail.html"),
    ),
    (
        MailTemplates::SIGNATURE_TEXT,
        include_str!("../../templates/mail_signature.txt"),
    ),
    (
        MailTemplates::SIGNATURE_HTML,
        include_str!("../../templates/mail_signature.html"),
    ),
];

/// The reminders of an overdue amount (`stages::dunning`, docs/RECEIVABLES.md
/// "Dunning"): their subject, plain text and HTML alternative.
const DUNNING_TEMPLATES: &[(&str, &str)] = &[
    (
        MailTemplates::DUNNING_SUBJECT,
        include_str!("../../templates/dunning_subject.txt"),
    ),
    (
        MailTemplates::DUNNING_TEXT,
        include_str!("../../templates/dunning.txt"),
    ),
    (
        MailTemplates::DUNNING_HTML,
        include_str!("../../templates/dunning.html"),
    ),
    (
        MailTemplates::SIGNATURE_TEXT,
        include_str!("../../templates/mail_signature.txt"),
    ),
    (
        MailTemplates::SIGNATURE_HTML,
        include_str!("../../templates/mail_signature.html"),
    ),
];

/// The consumption alerts of `[alerts]` (`stages::alerts`).
const ALERT_TEMPLATES: &[(&str, &str)] = &[
    (
        MailTemplates::ALERT_SUBJECT,
        include_str!("../../templates/alert_subject.txt"),
    ),
    (
        MailTemplates::ALERT_TEXT,
        include_str!("../../templates/alert.txt"),
    ),
    (
        MailTemplates::ALERT_HTML,
        include_str!("../../templates/alert.html"),
    ),
    (
        MailTemplates::SIGNATURE_TEXT,
        include_str!("../../templates/mail_signature.txt"),
    ),
    (
        MailTemplates::SIGNATURE_HTML,
        include_str!("../../templates/mail_signature.html"),
    ),
];

/// Each of `templates` into `env`: the integrator's own file where its
/// `[templates] dir` has one, the embedded default otherwise; then the
/// French filters, and names the context lacks as errors.
fn load_into(
    mut env: Environment<'static>,
    dir: Option<&Path>,
    templates: &[(&str, &str)],
) -> Result<Environment<'static>, TemplateError> {
    for (name, default) in templates {
        let source = match dir.map(|d| d.join(name)) {
            Some(path) if path.exists() => std::fs::read_to_string(&path).map_err(|e| {
                TemplateError(format!("template {}: cannot read: {e}", path.display()))
            })?,
            _ => default.to_string(),
        };
        env.add_template_owned(name.to_string(), source)
            .map_err(template_error)?;
    }
    env.add_filter("eur", eur);
    env.add_filter("eur_unit", eur_unit);
    env.add_filter("date_fr", date_fr);
    env.add_filter("month_fr", month_fr_filter);
    env.add_filter("nonzero", |v: Value| decimal_of(&v).map(|d| !d.is_zero()));
    env.add_filter("positive", |v: Value| {
        decimal_of(&v).map(|d| d > rust_decimal::Decimal::ZERO)
    });
    env.add_filter("abs_eur", |v: Value| {
        decimal_of(&v).map(|d| Value::from_safe_string(format_eur(d.abs(), 2)))
    });
    env.add_filter("month_num", |v: String| {
        crate::documents::document::month_numeric(&v).unwrap_or(v)
    });
    env.add_filter("msisdn_fr", |v: String| msisdn_fr(&v));
    env.add_filter("percent_fr", |v: Value| {
        decimal_of(&v).map(|d| d.normalize().to_string().replace('.', ","))
    });
    env.add_filter("exemption_ground", |v: String| exemption_ground(&v));
    env.add_filter("iban", |v: String| iban_groups(&v));
    env.add_filter("qty", quantity);
    env.add_filter("event_label", |v: String| event_label(&v).to_string());
    env.add_filter("zone_label", |v: String| zone_label(&v));
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    Ok(env)
}

/// The invoice templates: the integrator's own files where its `[templates]
/// dir` has them, the embedded defaults otherwise, with the filters that
/// format French amounts, dates, numbers and quantities.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let env = load_into(Environment::new(), dir, DEFAULT_TEMPLATES)?;
        Ok(Templates { env })
    }

    /// The HTML page of one invoice; `draft` marks it `BROUILLON` on every
    /// page (account.md §2), its number `DRAFT-<customer_id>`.
    pub fn invoice_html(
        &self,
        invoice: &InvoiceDocument,
        logo: Option<&str>,
        banner: Option<&str>,
        draft: bool,
    ) -> Result<String, TemplateError> {
        self.render(
            "invoice.html",
            minijinja::context! {
                invoice => Value::from_serialize(invoice),
                sections => Value::from_serialize(sections(invoice)),
                vat_codes => several_categories(&invoice.vat),
                logo => logo,
                banner => banner,
                draft => draft,
            },
        )
    }

    /// The HTML page of one credit note (`credit.rs`).
    pub fn credit_note_html(
        &self,
        note: &CreditNoteDocument,
        logo: Option<&str>,
        banner: Option<&str>,
    ) -> Result<String, TemplateError> {
        self.render(
            "credit_note.html",
            minijinja::context! {
                note => Value::from_serialize(note),
                vat_codes => several_categories(&note.vat),
                logo => logo,
                banner => banner,
            },
        )
    }

    fn render(&self, name: &str, context: Value) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(template_error)
    }
}

/// The mail templates, loaded as the invoice templates are (the
/// integrator's files first, the same filters), and written line by line:
/// a line holding only a `{% tag %}` leaves nothing in the mail
/// (`trim_blocks`, `lstrip_blocks`), and the file's last line break is
/// kept. The HTML escapes text values with [`escape_markup`] (`'` as
/// `&#39;`, `/` left as it is), as the mail did before it was a template.
pub struct MailTemplates {
    env: Environment<'static>,
}

impl MailTemplates {
    /// The subject (one line: its line breaks become spaces).
    pub const SUBJECT: &'static str = "mail_subject.txt";
    /// The plain text.
    pub const TEXT: &'static str = "mail.txt";
    /// The HTML alternative.
    pub const HTML: &'static str = "mail.html";

    /// The mail that announces a credit note: subject, text and HTML.
    pub const CREDIT_NOTE_SUBJECT: &'static str = "credit_note_mail_subject.txt";
    pub const CREDIT_NOTE_TEXT: &'static str = "credit_note_mail.txt";
    pub const CREDIT_NOTE_HTML: &'static str = "credit_note_mail.html";

    /// The end every mail includes: customer service, signature, identity.
    pub const SIGNATURE_TEXT: &'static str = "mail_signature.txt";
    pub const SIGNATURE_HTML: &'static str = "mail_signature.html";

    /// The reminder's subject, text and HTML (`dunning`).
    pub const DUNNING_SUBJECT: &'static str = "dunning_subject.txt";
    pub const DUNNING_TEXT: &'static str = "dunning.txt";
    pub const DUNNING_HTML: &'static str = "dunning.html";

    /// A consumption alert's subject, text and HTML (`alerts`).
    pub const ALERT_SUBJECT: &'static str = "alert_subject.txt";
    pub const ALERT_TEXT: &'static str = "alert.txt";
    pub const ALERT_HTML: &'static str = "alert.html";

    /// The mail that announces an invoice.
    pub fn load(dir: Option<&Path>) -> Result<MailTemplates, TemplateError> {
        MailTemplates::load_set(dir, MAIL_TEMPLATES)
    }

    /// The reminders of `dunning`, loaded and written as the invoice mail.
    pub fn dunning(dir: Option<&Path>) -> Result<MailTemplates, TemplateError> {
        MailTemplates::load_set(dir, DUNNING_TEMPLATES)
    }

    /// The consumption alerts of `[alerts]`, loaded and written as the
    /// invoice mail.
    pub fn alerts(dir: Option<&Path>) -> Result<MailTemplates, TemplateError> {
        MailTemplates::load_set(dir, ALERT_TEMPLATES)
    }

    fn load_set(
        dir: Option<&Path>,
        templates: &[(&str, &str)],
    ) -> Result<MailTemplates, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(text)
                if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() =>
            {
                out.write_str(&escape_markup(text))
                    .map_err(minijinja::Error::from)
            }
            _ => minijinja::escape_formatter(out, state, value),
        });
        let env = load_into(env, dir, templates)?;
        Ok(MailTemplates { env })
    }

    /// One of the mail's templates ([`MailTemplates::SUBJECT`], `TEXT`,
    /// `HTML`) with its context.
    pub fn render<S: Serialize>(&self, name: &str, context: &S) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(Value::from_serialize(context)))
            .map_err(template_error)
    }
}

/// A template error on one line, naming the template and the line.
fn template_error(error: minijinja::Error) -> TemplateError {
    let mut text = String::from("template");
    if let Some(name) = error.name() {
        text.push_str(&format!(" {name}"));
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" line {line}"));
    }
    text.push_str(&format!(": {}", error.kind()));
    if let Some(detail) = error.detail() {
        text.push_str(&format!(": {detail}"));
    }
    TemplateError(crate::core::text::one_line(&text))
}

/// The lines of an invoice grouped by mobile line, in invoice order.
#[derive(Debug, Serialize)]
struct Section<'a> {
    title: String,
    short: String,
    /// "Engagement jusqu'au …": the end of each commitment of the line
    /// running during the period (account.md §6), as ISO dates.
    commitment_ends: Vec<String>,
    lines: Vec<&'a InvoiceLine>,
    subtotal: Decimal,
}

fn sections(invoice: &InvoiceDocument) -> Vec<Section<'_>> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_line: BTreeMap<&str, Vec<&InvoiceLine>> = BTreeMap::new();
    for line in &invoice.lines {
        if !by_line.contains_key(line.msisdn.as_str()) {
            order.push(&line.msisdn);
        }
        by_line.entry(&line.msisdn).or_default().push(line);
    }
    order
        .into_iter()
        .map(|msisdn| {
            let lines = by_line.remove(msisdn).unwrap_or_default();
            let subtotal = lines.iter().map(|l| l.amount_ht).sum();
            let (title, short) = if msisdn.is_empty() {
                ("Autres prestations".to_string(), "autres".to_string())
            } else {
                let number = msisdn_fr(msisdn);
                (format!("Ligne {number}"), format!("ligne {number}"))
            };
            let commitment_ends = invoice
                .commitments
                .get(msisdn)
                .map(|ends| {
                    ends.iter()
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .collect()
                })
                .unwrap_or_default();
            Section {
                title,
                short,
                commitment_ends,
                lines,
                subtotal,
            }
        })
        .collect()
}

// ---- French formatting (filters) -------------------------------------

/// The exact decimal a template value holds (decimals are serialised as
/// their text, integers as numbers).
fn decimal_of(value: &Value) -> Result<Decimal, minijinja::Error> {
    let text = value.to_string();
    Decimal::from_str(&text).map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("'{text}' is not an amount"),
        )
    })
}

/// `1234.5` → `1 234,50 €` (narrow no-break space between thousands,
/// no-break space before the sign, as French typography has them).
/// Whether a VAT breakdown has more than one category: the page then
/// prints each line's VAT code (rating.md §6).
fn several_categories(vat: &[crate::documents::document::VatAmount]) -> bool {
    vat.iter().any(|entry| entry.category != vat[0].category)
}

/// What an exemption text says after "Exonéré": its ground, without the
/// "Exonération de TVA" it starts with (`Exonération de TVA, article 261 C
/// du CGI` → `article 261 C du CGI`); empty when it says no more.
fn exemption_ground(text: &str) -> String {
    let text = text.trim();
    let ground = text
        .strip_prefix("Exonération de TVA")
        .map(|rest| rest.trim_start_matches([',', ' ', '—', '-', ':']))
        .unwrap_or(text);
    ground.to_string()
}

fn eur(value: Value) -> Result<Value, minijinja::Error> {
    Ok(Value::from_safe_string(format_eur(decimal_of(&value)?, 2)))
}

/// A unit price: at least 2 decimals, up to the 6 the tariff tables allow.
fn eur_unit(value: Value) -> Result<Value, minijinja::Error> {
    let price = decimal_of(&value)?.normalize();
    Ok(Value::from_safe_string(format_eur(
        price,
        price.scale().max(2),
    )))
}

pub fn format_eur(amount: Decimal, decimals: u32) -> String {
    format!("{}\u{a0}€", format_decimal_fr(amount, decimals))
}

/// A decimal in French notation with `decimals` digits (rounded half away
/// from zero when it has more).
pub fn format_decimal_fr(value: Decimal, decimals: u32) -> String {
    let rounded = value.round_dp_with_strategy(
        decimals,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    );
    let text = format!("{:.*}", decimals as usize, rounded.abs());
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    let mut grouped = String::new();
    for (i, digit) in int_part.chars().enumerate() {
        if i > 0 && (int_part.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(digit);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
        "-"
    } else {
        ""
    };
    match frac_part {
        Some(frac) => format!("{sign}{grouped},{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `2026-10-31` → `31/10/2026`. The filters that format numbers and dates
/// return markup-safe text: it is made of digits and punctuation only.
fn date_fr(value: Value) -> Result<Value, minijinja::Error> {
    let text = value.to_string();
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(|d| Value::from_safe_string(d.format("%d/%m/%Y").to_string()))
        .map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("'{text}' is not a date"),
            )
        })
}

const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// `2026-10` → `octobre 2026`.
pub fn month_fr(month: Month) -> String {
    let first = month.first_day();
    format!(
        "{} {}",
        MONTHS_FR[chrono::Datelike::month0(&first) as usize],
        chrono::Datelike::year(&first)
    )
}

fn month_fr_filter(value: Value) -> Result<Value, minijinja::Error> {
    let text = value.to_string();
    text.parse::<Month>()
        .map(|m| Value::from(month_fr(m)))
        .map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("'{text}' is not a month"),
            )
        })
}

/// `FR7630006000011234567890189` → `FR76 3000 6000 0112 3456 7890 189`.
pub fn iban_groups(iban: &str) -> String {
    let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
    compact
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `33612345678` → `06 12 34 56 78`; other numbers as they are.
pub fn msisdn_fr(msisdn: &str) -> String {
    match msisdn.strip_prefix("33") {
        Some(national) if national.len() == 9 && national.bytes().all(|b| b.is_ascii_digit()) => {
            let digits = format!("0{national}");
            digits
                .as_bytes()
                .chunks(2)
                .map(|pair| String::from_utf8_lossy(pair).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => msisdn.to_string(),
    }
}

/// A billed quantity in its unit: seconds as `1 h 02 min 05 s`, KB as
/// megabytes (`12,50 Mo`), messages as a count.
fn quantity(value: Value, event_type: String) -> Result<Value, minijinja::Error> {
    let amount = decimal_of(&value)?;
    Ok(Value::from_safe_string(format_quantity(
        amount,
        &event_type,
    )))
}

pub fn format_quantity(amount: Decimal, event_type: &str) -> String {
    match event_type {
        "VOICE" | "VOICE_IN" => {
            let seconds = amount.trunc().to_string().parse::<i64>().unwrap_or(0);
            let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
            match (h, m) {
                (0, 0) => format!("{s} s"),
                (0, _) => format!("{m} min {s:02} s"),
                _ => format!("{h} h {m:02} min {s:02} s"),
            }
        }
        "DATA" => format!("{} Mo", format_decimal_fr(amount / Decimal::from(1024), 2)),
        "SMS" | "SMS_IN" => format!("{} SMS", format_decimal_fr(amount, 0)),
        "MMS" => format!("{} MMS", format_decimal_fr(amount, 0)),
        _ => format_decimal_fr(amount, 0),
    }
}

pub fn event_label(event_type: &str) -> &str {
    match event_type {
        "VOICE" => "Appels",
        "VOICE_IN" => "Appels reçus",
        "SMS" => "SMS",
        "SMS_IN" => "SMS reçus",
        "MMS" => "MMS",
        "DATA" => "Internet mobile",
        other => other,
    }
}

pub fn zone_label(zone: &str) -> String {
    match zone {
        "HOME" => "France".into(),
        "FR_MOBILE" => "Mobiles France".into(),
        "FR_FIXED" => "Fixes France".into(),
        "FR_SPECIAL" => "Numéros spéciaux".into(),
        "FR_SHORT" => "Numéros courts".into(),
        "DOM" => "Outre-mer".into(),
        "EU" => "Union européenne".into(),
        "EUROPE_OTHER" => "Europe hors UE".into(),
        "WORLD" => "International".into(),
        "MAGHREB" => "Maghreb".into(),
        "NORTH_AMERICA" => "Amérique du Nord".into(),
        "ROAM_Z1" => "Itinérance zone 1".into(),
        "ROAM_Z2" => "Itinérance zone 2".into(),
        "ROAM_Z3" => "Itinérance zone 3".into(),
        other => other.to_string(),
    }
}

/// The integrator's logo and banner as `data:` URIs, checked.
pub fn branding(
    integrator_path: &Path,
    integrator: &Integrator,
) -> Result<(Option<String>, Option<String>), ImageError> {
    let base = integrator_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let load = |path: &Option<PathBuf>, slot| -> Result<Option<String>, ImageError> {
        match path {
            None => Ok(None),
            Some(p) => Ok(Some(images::load(&base.join(p), slot)?.data_uri)),
        }
    };
    Ok((
        load(&integrator.logo, images::LOGO)?,
        load(&integrator.footer_banner, images::BANNER)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vat_breakdown_prints_each_category_and_rate() {
        use crate::documents::document::VatAmount;
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let entry = |category: &str, rate: &str, base: &str, amount: &str, text: &str| VatAmount {
            category: category.to_string(),
            rate: d(rate),
            base_ht: d(base),
            amount: d(amount),
            exemption: text.to_string(),
        };
        let vat = vec![
            entry("S", "20", "10.00", "2.00", ""),
            entry("S", "8.5", "10.00", "0.85", ""),
            entry(
                "E",
                "0",
                "7.50",
                "0",
                "Exonération de TVA, article 261 C du CGI",
            ),
            entry("E", "0", "1.00", "0", "Exonération de TVA"),
            entry("AE", "0", "29.99", "0", "Autoliquidation"),
            entry(
                "K",
                "0",
                "199.17",
                "0",
                "Exonération de TVA, article 262 ter I du CGI",
            ),
            entry("O", "0", "5.00", "0", "Hors champ d'application de la TVA"),
        ];
        let templates = Templates::load(None).unwrap();
        let render = |vat: &[VatAmount]| {
            templates
                .env
                .get_template("vat.html")
                .unwrap()
                .render(minijinja::context! {
                    vat => Value::from_serialize(vat),
                    customer => minijinja::context! { vat_number => "BE0123456749" },
                    vat_codes => several_categories(vat),
                })
                .unwrap()
                .replace(['\u{202f}', '\u{a0}'], " ")
        };
        let html = render(&vat);
        for expected in [
            "<span class=\"vat-code\">S</span> TVA 20 % sur 10,00 €",
            "TVA 8,5 % sur 10,00 €</td><td class=\"right\">0,85 €",
            "<span class=\"vat-code\">E</span> Exonéré — article 261 C du CGI sur 7,50 €",
            "Exonéré sur 1,00 €",
            "Autoliquidation — TVA due par le preneur, n° TVA BE0123456749 sur 29,99 €",
            "Exonéré — article 262 ter I du CGI sur 199,17 €",
            "Hors champ de la TVA sur 5,00 €",
        ] {
            assert!(html.contains(expected), "missing {expected}:\n{html}");
        }
        // One category: no codes, the page as it always was.
        let html = render(&vat[..1]);
        assert_eq!(
            html,
            "\n    <tr><td>TVA 20 % sur 10,00 €</td><td class=\"right\">2,00 €</td></tr>"
        );
    }

    #[test]
    fn formats_amounts_the_french_way() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(format_eur(d("1234.56"), 2), "1\u{202f}234,56\u{a0}€");
        assert_eq!(format_eur(d("0.5"), 2), "0,50\u{a0}€");
        assert_eq!(
            format_eur(d("1234567.005"), 2),
            "1\u{202f}234\u{202f}567,01\u{a0}€"
        );
        assert_eq!(format_eur(d("-40"), 2), "-40,00\u{a0}€");
        assert_eq!(format_decimal_fr(d("999"), 0), "999");
    }

    #[test]
    fn formats_quantities_numbers_and_dates() {
        assert_eq!(format_quantity(Decimal::from(195), "VOICE"), "3 min 15 s");
        assert_eq!(
            format_quantity(Decimal::from(3725), "VOICE"),
            "1 h 02 min 05 s"
        );
        assert_eq!(format_quantity(Decimal::from(45), "VOICE"), "45 s");
        assert_eq!(format_quantity(Decimal::from(1536), "DATA"), "1,50 Mo");
        assert_eq!(format_quantity(Decimal::from(2), "SMS"), "2 SMS");
        assert_eq!(msisdn_fr("33612345678"), "06 12 34 56 78");
        assert_eq!(msisdn_fr("447700900123"), "447700900123");
        assert_eq!(
            date_fr(Value::from("2026-10-31")).unwrap().to_string(),
            "31/10/2026"
        );
        assert_eq!(month_fr("2026-08".parse().unwrap()), "août 2026");
        assert_eq!(
            month_fr_filter(Value::from("2027-01")).unwrap().to_string(),
            "janvier 2027"
        );
        assert!(month_fr_filter(Value::from("2027-13")).is_err());
        assert_eq!(
            iban_groups("FR7630006000011234567890189"),
            "FR76 3000 6000 0112 3456 7890 189"
        );
    }

    #[test]
    fn a_template_error_names_the_template_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("invoice.html"),
            "<p>ok</p>\n<p>{{ invoice.number | eur }</p>\n",
        )
        .unwrap();
        let Err(err) = Templates::load(Some(dir.path())) else {
            panic!("a broken template loads");
        };
        let text = err.to_string();
        assert!(
            text.starts_with("template invoice.html line 2: syntax error"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
