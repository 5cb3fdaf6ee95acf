//! `mail`: "your invoice is available", one message per issued invoice,
//! sent to the customer from the integrator's billing address through an
//! SMTP relay (lettre), in French, with the amount, the due date and how it
//! is paid, and the PDF attached or linked as `[mail]` says (docs/MAIL.md).
//! The words are templates (`templates/mail_subject.txt`, `mail.txt`,
//! `mail.html`, see [`MailTemplates`]): the integrator's own where its
//! `[templates] dir` has them.
//!
//! - One SMTP session serves the whole month: connect, TLS, login once, then
//!   `MAIL FROM` / `RCPT TO` / `DATA` per message. A recipient the relay
//!   refuses (`RCPT` answered 4xx/5xx), a message it refuses (`DATA`), or an
//!   address in `customers.csv` that is not an address is reported in
//!   [`MailReport::refused`] and the others still go; the session carries on
//!   after `RSET`.
//! - What cannot be one customer's problem is an error, in one line, with no
//!   password in it: the relay unreachable, TLS, the login, the sender
//!   refused, the connection lost.
//! - The ledger's `mails_sent` table records each message the relay accepted
//!   (month, invoice number, recipient, time, Message-ID): a re-run sends
//!   only what was not sent, and retries what was refused.
//!
//! [`Outbox`] sends, under the same rules, letters its caller worded and
//! records itself: the dunning reminders (`stages::dunning`).
//!
//! The SMTP password comes from `MVNOBILL_SMTP_PASSWORD`, never from the
//! configuration file, and no `Debug` or error text shows it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::{Address, Message};
use rusqlite::{params, OptionalExtension};
use rust_decimal::Decimal;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::core::ledger::Ledger;
use crate::core::month::Month;
use crate::documents::templates::{MailTemplates, TemplateError};
use crate::reference::integrator::Integrator;

/// The environment variable the SMTP password is read from.
pub const PASSWORD_ENV: &str = "MVNOBILL_SMTP_PASSWORD";

const DEFAULT_TIMEOUT_S: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("[mail] {key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error("mail: {0}")]
    Sender(String),
    #[error(transparent)]
    Month(#[from] crate::core::month::BadMonth),
    #[error("mail {month}: invoice {invoice} has no PDF to attach (render the month with its PDFs, or set [mail] link_base_url; the notices sent before it are recorded)")]
    NoPdf { month: String, invoice: String },
    #[error("mail: cannot connect to the SMTP relay {relay}: {reason}")]
    Connect { relay: String, reason: String },
    #[error("mail: the SMTP relay {relay} refused the login of '{user}': {reason}")]
    Login {
        relay: String,
        user: String,
        reason: String,
    },
    #[error("mail: the SMTP relay {relay} did not take mail from {from}: {reason}")]
    SenderRefused {
        relay: String,
        from: String,
        reason: String,
    },
    #[error("mail: the connection to the SMTP relay {relay} failed after {sent} messages sent this run (those are recorded; a re-run sends the rest): {reason}")]
    Connection {
        relay: String,
        sent: u64,
        reason: String,
    },
    #[error("mail: invoice {invoice}: cannot build the message: {reason}")]
    Message { invoice: String, reason: String },
    #[error("mail: ledger table mails_sent: {0}")]
    Ledger(String),
    /// A mail template that does not load or does not render, on one line
    /// naming the template and the line.
    #[error("mail: {0}")]
    Template(#[from] TemplateError),
}

// ---- settings ----------------------------------------------------------

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with `STARTTLS`, which the relay must offer
    /// (submission, port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (submissions, port 465).
    Tls,
    /// No TLS: only for a relay on this machine.
    None,
}

/// The `[mail]` section of the configuration file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    /// The relay's host name (or IP address).
    pub host: String,
    /// Default 587, or 465 with `tls = "tls"`.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none` (localhost only).
    #[serde(default)]
    pub tls: TlsMode,
    /// The login; the password comes from `MVNOBILL_SMTP_PASSWORD`.
    pub user: Option<String>,
    /// Never accepted: present so that a password written in the file is
    /// refused with a clear message rather than "unknown field".
    #[serde(default)]
    pub password: Option<IgnoredAny>,
    /// Attach the invoice PDF (default true).
    pub attach_pdf: Option<bool>,
    /// Where the PDFs are published: the link is `<base><invoice_number>.pdf`;
    /// `{month}` in it is replaced with the month (`2026-10`).
    pub link_base_url: Option<String>,
    /// Seconds to wait on the relay for each step (default 30).
    pub timeout_s: Option<u64>,
    /// A PEM file of certificates to trust besides the public roots (a relay
    /// with a private CA or a self-signed certificate); relative to the
    /// configuration file.
    pub ca_file: Option<PathBuf>,
}

/// The `[mail]` section checked, with the password from the environment.
#[derive(Clone)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    password: Option<String>,
    pub attach_pdf: bool,
    pub link_base_url: Option<String>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("attach_pdf", &self.attach_pdf)
            .field("link_base_url", &self.link_base_url)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn setting(key: &'static str, message: impl Into<String>) -> MailError {
    MailError::Setting {
        key,
        message: message.into(),
    }
}

fn is_local_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl MailSettings {
    /// Checks the section; the password is `$MVNOBILL_SMTP_PASSWORD`.
    /// `config_dir` is the configuration file's folder (for `ca_file`).
    pub fn from_section(
        section: &MailSection,
        config_dir: &Path,
    ) -> Result<MailSettings, MailError> {
        let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        MailSettings::from_section_with_password(section, config_dir, password)
    }

    /// As [`MailSettings::from_section`], with the password given.
    pub fn from_section_with_password(
        section: &MailSection,
        config_dir: &Path,
        password: Option<String>,
    ) -> Result<MailSettings, MailError> {
        if section.password.is_some() {
            return Err(setting(
                "password",
                format!("the SMTP password never goes in the configuration file: remove it and set {PASSWORD_ENV} in the environment"),
            ));
        }
        let host = section.host.trim().to_string();
        if host.is_empty() {
            return Err(setting(
                "host",
                "is empty: give the SMTP relay's name, e.g. smtp.example.com",
            ));
        }
        if host.contains("://") || host.contains('/') || host.chars().any(char::is_whitespace) {
            return Err(setting(
                "host",
                format!("'{host}' is not a host name: give the name only, e.g. smtp.example.com (the port goes in [mail] port)"),
            ));
        }
        if section.tls == TlsMode::None && !is_local_host(&host) {
            return Err(setting(
                "tls",
                format!("\"none\" sends mail and password in clear and is only allowed for a relay on this machine (localhost, 127.0.0.1, ::1), not '{host}': use \"starttls\" or \"tls\""),
            ));
        }
        let port = match section.port {
            Some(0) => return Err(setting("port", "0 is not a port")),
            Some(port) => port,
            None if section.tls == TlsMode::Tls => 465,
            None => 587,
        };
        let user = match section.user.as_deref().map(str::trim) {
            Some("") => return Err(setting("user", "is empty: remove it to send without login")),
            Some(user) => Some(user.to_string()),
            None => None,
        };
        if user.is_some() && password.is_none() {
            return Err(setting(
                "user",
                format!(
                    "is set but {PASSWORD_ENV} is not: set the SMTP password in the environment"
                ),
            ));
        }
        let attach_pdf = section.attach_pdf.unwrap_or(true);
        let link_base_url = match section.link_base_url.as_deref().map(str::trim) {
            None => None,
            Some(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(setting(
                        "link_base_url",
                        format!("'{url}' must start with https:// (the link is <link_base_url><invoice_number>.pdf)"),
                    ));
                }
                if !url.ends_with('/') {
                    return Err(setting(
                        "link_base_url",
                        format!("'{url}' must end with '/' (the link is <link_base_url><invoice_number>.pdf)"),
                    ));
                }
                Some(url.to_string())
            }
        };
        if !attach_pdf && link_base_url.is_none() {
            return Err(setting(
                "attach_pdf",
                "is false and there is no link_base_url: the mail would carry neither the PDF nor a link",
            ));
        }
        let timeout_s = section.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
        if !(1..=600).contains(&timeout_s) {
            return Err(setting(
                "timeout_s",
                format!("{timeout_s} is not between 1 and 600 seconds"),
            ));
        }
        let (ca_file, ca_pem) = match &section.ca_file {
            None => (None, None),
            Some(_) if section.tls == TlsMode::None => {
                return Err(setting("ca_file", "is for a TLS relay: tls is \"none\""));
            }
            Some(file) => {
                let path = config_dir.join(file);
                let pem = std::fs::read(&path).map_err(|e| {
                    setting("ca_file", format!("cannot read {}: {e}", path.display()))
                })?;
                let has_cert =
                    String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
                if !has_cert || Certificate::from_pem(&pem).is_err() {
                    return Err(setting(
                        "ca_file",
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                (Some(path), Some(pem))
            }
        };
        Ok(MailSettings {
            host,
            port,
            tls: section.tls,
            user,
            password,
            attach_pdf,
            link_base_url,
            timeout: Duration::from_secs(timeout_s),
            ca_file,
            ca_pem,
        })
    }

    /// `host:port`, as reports and errors name the relay.
    pub fn relay(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The link to an invoice's PDF, when `link_base_url` is set.
    pub fn link(&self, month: &str, invoice_number: &str) -> Option<String> {
        self.link_base_url
            .as_ref()
            .map(|base| format!("{}{invoice_number}.pdf", base.replace("{month}", month)))
    }

    /// Removes the password from a text that could quote it.
    fn redact(&self, text: &str) -> String {
        let text = crate::core::text::one_line(text);
        match &self.password {
            Some(password) if !password.is_empty() => text.replace(password.as_str(), "<redacted>"),
            _ => text,
        }
    }
}

// ---- notices and the report -------------------------------------------

/// One invoice to announce.
#[derive(Clone)]
pub struct Notice {
    pub invoice_number: String,
    pub customer_id: String,
    pub customer_name: String,
    /// The customer's e-mail address (`customers.csv`).
    pub to: String,
    pub amount_ttc: Decimal,
    /// What the invoice asks: its TTC plus the customer's balance brought
    /// forward (account.md §7).
    pub amount_due: Decimal,
    pub due_date: NaiveDate,
    /// `SEPA_DD` or `TRANSFER`.
    pub payment_method: String,
    /// The invoice PDF, when there is one.
    pub pdf: Option<Vec<u8>>,
    /// For a credit note's notice (`invoice_number` is then the note's
    /// number, `amount_ttc` what it credits, `due_date` its issue date):
    /// the invoice it credits. Worded by the `credit_note_mail*` templates.
    pub credited_invoice: Option<String>,
}

impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notice")
            .field("invoice_number", &self.invoice_number)
            .field("customer_id", &self.customer_id)
            .field("to", &self.to)
            .field("amount_ttc", &self.amount_ttc)
            .field("due_date", &self.due_date)
            .field("payment_method", &self.payment_method)
            .field("pdf_bytes", &self.pdf.as_ref().map(Vec::len))
            .finish()
    }
}

/// A notice that did not go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub invoice_number: String,
    pub recipient: String,
    /// The relay's answer (`550 5.1.1 …`) or what is wrong with the address.
    pub reason: String,
}

/// What `mail` did.
#[derive(Debug, Default, Serialize)]
pub struct MailReport {
    pub month: String,
    /// `host:port` of the relay.
    pub relay: String,
    /// Notices given.
    pub notices: u64,
    /// Messages the relay accepted this run.
    pub sent: u64,
    /// Notices the ledger already records as sent: not sent again.
    pub already_sent: u64,
    /// Of the messages sent, those with the PDF attached / with a link.
    pub attached: u64,
    pub linked: u64,
    /// Recipients or messages refused; a re-run tries them again.
    pub refused: Vec<Refused>,
    /// SMTP sessions opened (1 unless the relay closed one).
    pub connections: u64,
}

impl fmt::Display for MailReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mail {}: {} notices, {} sent, {} already sent, {} refused",
            self.month,
            self.notices,
            self.sent,
            self.already_sent,
            self.refused.len()
        )?;
        for (i, refused) in self.refused.iter().take(3).enumerate() {
            let lead = if i == 0 { " (" } else { "; " };
            write!(
                f,
                "{lead}{} <{}>: {}",
                refused.invoice_number, refused.recipient, refused.reason
            )?;
        }
        if self.refused.len() > 3 {
            write!(f, "; and {} more", self.refused.len() - 3)?;
        }
        if !self.refused.is_empty() {
            write!(f, ")")?;
        }
        write!(f, " via {}", self.relay)
    }
}

// ---- the ledger ---------------------------------------------------------

/// A notice the ledger records as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentMail {
    pub invoice_number: String,
    pub recipient: String,
    pub sent_at: String,
    pub message_id: String,
}

fn ledger_error(e: rusqlite::Error) -> MailError {
    MailError::Ledger(e.to_string())
}

/// The notices of a month the ledger records as sent, by invoice number.
pub fn sent_mails(ledger: &Ledger, month: &str) -> Result<Vec<SentMail>, MailError> {
    let mut statement = ledger
        .connection()
        .prepare(
            "SELECT invoice_number, recipient, sent_at, message_id FROM mails_sent
             WHERE month = ?1 ORDER BY invoice_number",
        )
        .map_err(ledger_error)?;
    let rows = statement
        .query_map(params![month], |r| {
            Ok(SentMail {
                invoice_number: r.get(0)?,
                recipient: r.get(1)?,
                sent_at: r.get(2)?,
                message_id: r.get(3)?,
            })
        })
        .map_err(ledger_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(ledger_error)
}

fn is_sent(ledger: &Ledger, month: &str, invoice_number: &str) -> Result<bool, MailError> {
    ledger
        .connection()
        .query_row(
            "SELECT 1 FROM mails_sent WHERE month = ?1 AND invoice_number = ?2",
            params![month, invoice_number],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
        .map_err(ledger_error)
}

fn record_sent(
    ledger: &Ledger,
    month: &str,
    invoice_number: &str,
    recipient: &str,
    message_id: &str,
) -> Result<(), MailError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    ledger
        .connection()
        .execute(
            "INSERT OR REPLACE INTO mails_sent (month, invoice_number, recipient, sent_at, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![month, invoice_number, recipient, now, message_id],
        )
        .map_err(ledger_error)?;
    Ok(())
}

// ---- the message ----------------------------------------------------------

/// The integrator's `brand`, else its `name`: the sender's display name.
pub fn brand(integrator: &Integrator) -> &str {
    integrator
        .brand
        .as_deref()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or(&integrator.name)
}

/// The integrator's billing address, with its brand as the display name.
pub fn sender(integrator: &Integrator) -> Result<Mailbox, MailError> {
    let email = integrator
        .billing_email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            MailError::Sender(
                "integrator.toml has no billing_email: the notices are sent from it".to_string(),
            )
        })?;
    let address = Address::from_str(email).map_err(|e| {
        MailError::Sender(format!(
            "integrator.toml billing_email '{email}' is not an address: {e}"
        ))
    })?;
    Ok(Mailbox::new(Some(brand(integrator).to_string()), address))
}

/// What the message says, before it is encoded.
struct Content {
    subject: String,
    text: String,
    html: String,
    attach: bool,
}

/// What the mail templates receive (docs/MAIL.md).
#[derive(Serialize)]
struct MailContext<'a> {
    invoice: MailInvoice<'a>,
    customer: MailCustomer<'a>,
    /// `integrator.toml`, as the invoice templates have it.
    integrator: &'a Integrator,
    /// The integrator's `brand`, else its `name`.
    brand: &'a str,
    /// The PDF's file name when it is attached.
    attachment: Option<String>,
    /// The PDF's address when `[mail] link_base_url` is set.
    link: Option<String>,
    /// A credit note's notice: the note (`invoice` then describes it too).
    credit_note: Option<MailCreditNote<'a>>,
}

#[derive(Serialize)]
struct MailCreditNote<'a> {
    credit_note_number: &'a str,
    /// What the note credits, TTC.
    total_ttc: Decimal,
    #[serde(serialize_with = "crate::documents::document::iso_date")]
    issue_date: NaiveDate,
    /// The invoice it credits.
    invoice_number: &'a str,
    /// How the credited invoice was paid: `SEPA_DD` or `TRANSFER`.
    payment_method: &'a str,
}

#[derive(Serialize)]
struct MailInvoice<'a> {
    invoice_number: &'a str,
    /// `2026-10`.
    month: String,
    total_ttc: Decimal,
    #[serde(serialize_with = "crate::documents::document::iso_date")]
    due_date: NaiveDate,
    /// `SEPA_DD` or `TRANSFER`.
    payment_method: &'a str,
    /// What the invoice asks: its total plus the balance brought forward.
    amount_due: Decimal,
    /// The amount to pay differs from the total (a balance was brought
    /// forward).
    with_balance: bool,
    /// The amount to pay is zero or less.
    nothing_to_pay: bool,
}

#[derive(Serialize)]
struct MailCustomer<'a> {
    customer_id: &'a str,
    /// On one line.
    name: String,
}

fn content(
    templates: &MailTemplates,
    settings: &MailSettings,
    integrator: &Integrator,
    month: Month,
    notice: &Notice,
) -> Result<Content, TemplateError> {
    let number = &notice.invoice_number;
    let attach = settings.attach_pdf && notice.pdf.is_some();
    let context = MailContext {
        invoice: MailInvoice {
            invoice_number: number,
            month: month.to_string(),
            total_ttc: notice.amount_ttc,
            due_date: notice.due_date,
            payment_method: &notice.payment_method,
            amount_due: notice.amount_due,
            with_balance: notice.amount_due != notice.amount_ttc,
            nothing_to_pay: notice.amount_due <= Decimal::ZERO,
        },
        customer: MailCustomer {
            customer_id: &notice.customer_id,
            name: one_line_name(&notice.customer_name),
        },
        integrator,
        brand: brand(integrator),
        attachment: attach.then(|| format!("{number}.pdf")),
        link: settings.link(&month.to_string(), number),
        credit_note: notice
            .credited_invoice
            .as_deref()
            .map(|invoice_number| MailCreditNote {
                credit_note_number: number,
                total_ttc: notice.amount_ttc,
                issue_date: notice.due_date,
                invoice_number,
                payment_method: &notice.payment_method,
            }),
    };
    let [subject, text, html] = if notice.credited_invoice.is_some() {
        [
            MailTemplates::CREDIT_NOTE_SUBJECT,
            MailTemplates::CREDIT_NOTE_TEXT,
            MailTemplates::CREDIT_NOTE_HTML,
        ]
    } else {
        [
            MailTemplates::SUBJECT,
            MailTemplates::TEXT,
            MailTemplates::HTML,
        ]
    };
    let (text_template, html_template) = (text, html);
    let subject = templates.render(subject, &context)?;
    Ok(Content {
        subject: subject
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        text: templates.render(text_template, &context)?,
        html: templates.render(html_template, &context)?,
        attach,
    })
}

static MESSAGE_SEQ: AtomicU64 = AtomicU64::new(0);

fn message_id(invoice_number: &str, from: &Mailbox) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S%3f");
    let seq = MESSAGE_SEQ.fetch_add(1, Ordering::Relaxed);
    let safe: String = invoice_number
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "<{safe}.{stamp}.{}.{seq}@{}>",
        std::process::id(),
        from.email.domain()
    )
}

/// A notice's message: From the integrator's billing address, To the
/// customer, the text in French (plain and HTML), the PDF attached as
/// `<invoice_number>.pdf` and/or linked, as the settings say, worded by the
/// mail templates.
pub fn compose(
    settings: &MailSettings,
    templates: &MailTemplates,
    integrator: &Integrator,
    month: &str,
    notice: &Notice,
) -> Result<Message, MailError> {
    let month: Month = month.parse()?;
    let from = sender(integrator)?;
    let to = recipient(notice).map_err(|reason| MailError::Message {
        invoice: notice.invoice_number.clone(),
        reason,
    })?;
    build(settings, templates, integrator, month, notice, &from, to).map(|(message, _, _)| message)
}

/// The customer's mailbox, or why it is not one.
fn recipient(notice: &Notice) -> Result<Mailbox, String> {
    mailbox(&notice.customer_name, &notice.to)
}

/// A customer's mailbox from `customers.csv`'s name and address, or why it
/// is not one.
fn mailbox(name: &str, email: &str) -> Result<Mailbox, String> {
    let email = email.trim();
    if email.is_empty() {
        return Err("no e-mail address in customers.csv".to_string());
    }
    let address = Address::from_str(email)
        .map_err(|e| format!("'{email}' in customers.csv is not an e-mail address: {e}"))?;
    // A display name is one line of text: a line break (or another control
    // character) from the customer file would make the To header invalid,
    // which the mail library refuses with a panic, or add a header.
    let name = one_line_name(name);
    Ok(Mailbox::new((!name.is_empty()).then_some(name), address))
}

/// A customer's name on one line: control characters (a line break) as
/// spaces, spaces collapsed.
fn one_line_name(name: &str) -> String {
    name.replace(char::is_control, " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message, its Message-ID, and whether the PDF is attached.
fn build(
    settings: &MailSettings,
    templates: &MailTemplates,
    integrator: &Integrator,
    month: Month,
    notice: &Notice,
    from: &Mailbox,
    to: Mailbox,
) -> Result<(Message, String, bool), MailError> {
    let content = content(templates, settings, integrator, month, notice)?;
    let id = message_id(&notice.invoice_number, from);
    let builder = headers(integrator, from, to, content.subject, &id);
    let body = alternative(content.text, content.html);
    let attached = content.attach;
    let result = match (&notice.pdf, attached) {
        (Some(pdf), true) => {
            let pdf_type = ContentType::parse("application/pdf").expect("a MIME type");
            builder.multipart(
                MultiPart::mixed().multipart(body).singlepart(
                    Attachment::new(format!("{}.pdf", notice.invoice_number))
                        .body(pdf.clone(), pdf_type),
                ),
            )
        }
        _ => builder.multipart(body),
    };
    let message = result.map_err(|e| MailError::Message {
        invoice: notice.invoice_number.clone(),
        reason: e.to_string(),
    })?;
    Ok((message, id, attached))
}

/// The headers every message of the billing service has: From the billing
/// address, To the customer, its subject and Message-ID, Reply-To the
/// customer service when the integrator has one.
fn headers(
    integrator: &Integrator,
    from: &Mailbox,
    to: Mailbox,
    subject: String,
    id: &str,
) -> lettre::message::MessageBuilder {
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(id.to_string()))
        .user_agent(format!("mvnobill {}", env!("CARGO_PKG_VERSION")));
    if let Some(reply_to) = integrator
        .customer_service_email
        .as_deref()
        .and_then(|e| Address::from_str(e.trim()).ok())
    {
        builder = builder.reply_to(Mailbox::new(
            Some(format!("Service client {}", brand(integrator))),
            reply_to,
        ));
    }
    builder
}

/// The plain text with its HTML alternative.
fn alternative(text: String, html: String) -> MultiPart {
    MultiPart::alternative()
        .singlepart(SinglePart::plain(text))
        .singlepart(SinglePart::html(html))
}

// ---- the SMTP session -----------------------------------------------------

/// Why a message did not go, as far as one SMTP exchange tells.
enum Failure {
    /// The relay answered no to this recipient or this message.
    Refused(String),
    /// The relay answered no to the sender (`MAIL FROM`): no message can go.
    Sender(String),
    /// The session ended before the message was handed over (network, TLS,
    /// `421`): another session may take it.
    Session(String),
    /// The session ended after the message was handed over, before the
    /// relay said whether it took it.
    Uncertain(String),
}

/// A reason from a lettre error: `550 5.1.1 <x@y>: Recipient address rejected`.
fn reason_of(error: &lettre::transport::smtp::Error) -> String {
    let detail = std::error::Error::source(error)
        .map(|s| s.to_string())
        .unwrap_or_default();
    match error.status() {
        Some(code) if detail.is_empty() => code.to_string(),
        Some(code) => format!("{code} {detail}"),
        None if detail.is_empty() => error.to_string(),
        None => detail_of(error),
    }
}

/// A non-SMTP error with its whole chain of causes.
fn detail_of(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    let mut depth = 0;
    while let Some(cause) = source {
        // lettre's own text already ends with its direct cause.
        if depth > 0 {
            text.push_str(&format!(": {cause}"));
        }
        source = cause.source();
        depth += 1;
    }
    text
}

fn address_text(address: &Address) -> &str {
    address.as_ref()
}

/// Whether the reply ends the session rather than refusing one message.
fn session_ended(error: &lettre::transport::smtp::Error) -> bool {
    match error.status() {
        Some(code) => code.to_string() == "421",
        None => true,
    }
}

struct Session<'a> {
    settings: &'a MailSettings,
    hello: ClientId,
    connection: Option<SmtpConnection>,
    /// Sessions opened.
    opened: u64,
}

impl Session<'_> {
    fn tls_parameters(&self) -> Result<TlsParameters, String> {
        let mut builder = TlsParameters::builder(self.settings.host.clone());
        if let Some(pem) = &self.settings.ca_pem {
            let certificate = Certificate::from_pem(pem).map_err(|e| e.to_string())?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build().map_err(|e| e.to_string())
    }

    /// Connects, secures and logs in.
    fn open(&mut self) -> Result<(), MailError> {
        let settings = self.settings;
        let relay = settings.relay();
        let connect_error = |reason: String| {
            let hint = if reason.contains("certificate") && settings.ca_file.is_none() {
                " (a relay with a private CA or a self-signed certificate: its CA goes in [mail] ca_file)"
            } else {
                ""
            };
            MailError::Connect {
                relay: relay.clone(),
                reason: format!("{}{hint}", settings.redact(&reason)),
            }
        };
        let tls = match settings.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => Some(self.tls_parameters().map_err(connect_error)?),
        };
        let wrapper = if settings.tls == TlsMode::Tls {
            tls.as_ref()
        } else {
            None
        };
        let mut connection = SmtpConnection::connect(
            (
                settings.host.trim_start_matches('[').trim_end_matches(']'),
                settings.port,
            ),
            Some(settings.timeout),
            &self.hello,
            wrapper,
            None,
        )
        .map_err(|e| connect_error(detail_of(&e)))?;
        if settings.tls == TlsMode::Starttls {
            let tls = tls.as_ref().expect("TLS parameters for STARTTLS");
            if !connection.can_starttls() {
                connection.abort();
                return Err(connect_error(
                    "the relay does not offer STARTTLS (set [mail] tls = \"tls\" for a TLS port such as 465)".to_string(),
                ));
            }
            connection
                .starttls(tls, &self.hello)
                .map_err(|e| connect_error(format!("STARTTLS: {}", detail_of(&e))))?;
        }
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            let credentials = Credentials::new(user.clone(), password.clone());
            if let Err(e) = connection.auth(&[Mechanism::Plain, Mechanism::Login], &credentials) {
                connection.abort();
                return Err(MailError::Login {
                    relay: relay.clone(),
                    user: user.clone(),
                    reason: settings.redact(&reason_of(&e)),
                });
            }
        }
        self.connection = Some(connection);
        self.opened += 1;
        Ok(())
    }

    fn close(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            if !connection.has_broken() {
                let _ = connection.quit();
            }
        }
    }

    /// One message through the session, opened (again) when needed: a
    /// session the relay ended (421, network) is reopened once for the same
    /// message, nothing of it having been accepted yet. What cannot open a
    /// session is the error.
    fn deliver(
        &mut self,
        from: &Address,
        to: &Address,
        bytes: &[u8],
    ) -> Result<Result<(), Failure>, MailError> {
        let mut attempts = 0;
        loop {
            if self.connection.as_ref().is_none_or(|c| c.has_broken()) {
                self.close();
                self.open()?;
            }
            attempts += 1;
            match self.transmit(from, to, bytes) {
                Err(Failure::Session(reason)) if attempts < 2 => {
                    tracing::info!("mail: the relay ended the session ({reason}); reconnecting");
                    if let Some(connection) = self.connection.as_mut() {
                        connection.abort();
                    }
                    self.close();
                }
                other => return Ok(other),
            }
        }
    }

    /// What a delivery means for the run: `None` accepted, `Some(reason)`
    /// refused (the others still go); what stops every message is the
    /// error (`sent`: the messages accepted this run, for its text).
    fn settle(
        &self,
        sender: &Mailbox,
        sent: u64,
        outcome: Result<(), Failure>,
    ) -> Result<Option<String>, MailError> {
        let settings = self.settings;
        match outcome {
            Ok(()) => Ok(None),
            Err(Failure::Refused(reason)) => Ok(Some(settings.redact(&reason))),
            Err(Failure::Sender(reason)) => Err(MailError::SenderRefused {
                relay: settings.relay(),
                from: sender.email.to_string(),
                reason: settings.redact(&reason),
            }),
            Err(Failure::Session(reason) | Failure::Uncertain(reason)) => {
                Err(MailError::Connection {
                    relay: settings.relay(),
                    sent,
                    reason: settings.redact(&reason),
                })
            }
        }
    }

    /// One message through the session: `Ok` once the relay accepted it.
    fn transmit(&mut self, from: &Address, to: &Address, bytes: &[u8]) -> Result<(), Failure> {
        let connection = self.connection.as_mut().expect("an open session");
        let mut parameters = Vec::new();
        if !address_text(from).is_ascii() || !address_text(to).is_ascii() {
            if !connection
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(Failure::Refused(
                    "the address is not ASCII and the relay does not take SMTPUTF8".to_string(),
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if let Err(e) = connection.command(Mail::new(Some(from.clone()), parameters)) {
            return Err(if session_ended(&e) {
                Failure::Session(format!("MAIL FROM: {}", reason_of(&e)))
            } else {
                Failure::Sender(reason_of(&e))
            });
        }
        if let Err(e) = connection.command(Rcpt::new(to.clone(), Vec::new())) {
            if session_ended(&e) {
                return Err(Failure::Session(format!("RCPT TO: {}", reason_of(&e))));
            }
            let _ = connection.command(Rset);
            return Err(Failure::Refused(reason_of(&e)));
        }
        if let Err(e) = connection.command(Data) {
            if session_ended(&e) {
                return Err(Failure::Session(format!("DATA: {}", reason_of(&e))));
            }
            let _ = connection.command(Rset);
            return Err(Failure::Refused(format!(
                "message refused: {}",
                reason_of(&e)
            )));
        }
        match connection.message(bytes) {
            Ok(_) => Ok(()),
            Err(e) if !session_ended(&e) => Err(Failure::Refused(format!(
                "message refused: {}",
                reason_of(&e)
            ))),
            Err(e) => Err(Failure::Uncertain(format!(
                "after the message was sent, before the relay took it (it may have gone): {}",
                reason_of(&e)
            ))),
        }
    }
}

/// Sends each notice not sent yet, over one SMTP session, and records what
/// the relay accepted in the ledger. A refused recipient is reported and the
/// others still go; what stops every notice is an error. The messages are
/// worded by `templates` (the integrator's `[templates] dir`, or the
/// defaults).
pub fn send_notices(
    settings: &MailSettings,
    templates: &MailTemplates,
    from: &Integrator,
    ledger: &Ledger,
    month: &str,
    notices: impl IntoIterator<Item = Notice>,
) -> Result<MailReport, MailError> {
    let parsed_month: Month = month.parse()?;
    let month = parsed_month.to_string();
    let sender = sender(from)?;
    let mut report = MailReport {
        month: month.clone(),
        relay: settings.relay(),
        ..MailReport::default()
    };

    let mut session = Session {
        settings,
        hello: ClientId::default(),
        connection: None,
        opened: 0,
    };
    // One notice at a time (their PDFs are not all held at once); the
    // session opens with the first notice to send.
    let mut seen = HashSet::new();
    let result = (|| {
        for notice in notices {
            report.notices += 1;
            if !seen.insert(notice.invoice_number.clone())
                || is_sent(ledger, &month, &notice.invoice_number)?
            {
                report.already_sent += 1;
                continue;
            }
            if settings.attach_pdf && settings.link_base_url.is_none() && notice.pdf.is_none() {
                return Err(MailError::NoPdf {
                    month: month.clone(),
                    invoice: notice.invoice_number.clone(),
                });
            }
            let to = match recipient(&notice) {
                Ok(to) => to,
                Err(reason) => {
                    report.refused.push(Refused {
                        invoice_number: notice.invoice_number.clone(),
                        recipient: notice.to.trim().to_string(),
                        reason,
                    });
                    continue;
                }
            };
            let (message, id, attached) = build(
                settings,
                templates,
                from,
                parsed_month,
                &notice,
                &sender,
                to.clone(),
            )?;
            let bytes = message.formatted();
            let outcome = session.deliver(&sender.email, &to.email, &bytes)?;
            match session.settle(&sender, report.sent, outcome)? {
                None => {
                    record_sent(
                        ledger,
                        &month,
                        &notice.invoice_number,
                        address_text(&to.email),
                        &id,
                    )?;
                    report.sent += 1;
                    if attached {
                        report.attached += 1;
                    }
                    if settings.link_base_url.is_some() {
                        report.linked += 1;
                    }
                    tracing::debug!("mail: {} sent to {}", notice.invoice_number, to.email);
                }
                Some(reason) => {
                    tracing::warn!(
                        "mail: {} to {} refused: {reason}",
                        notice.invoice_number,
                        to.email
                    );
                    report.refused.push(Refused {
                        invoice_number: notice.invoice_number.clone(),
                        recipient: to.email.to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    })();
    session.close();
    report.connections = session.opened;
    result.map(|()| report)
}

// ---- letters worded elsewhere ------------------------------------------

/// A message its caller worded (a dunning reminder, `stages::dunning`):
/// sent from the billing address with the notices' headers, through one
/// SMTP session as they are, by an [`Outbox`].
#[derive(Debug, Clone)]
pub struct Letter {
    /// What names it in its Message-ID and in errors (`C1-2026-11-21`).
    pub key: String,
    /// The customer's name and address (`customers.csv`).
    pub customer_name: String,
    pub to: String,
    /// One line: its line breaks become spaces.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What became of a letter that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// The relay accepted it.
    Sent {
        recipient: String,
        message_id: String,
    },
    /// The relay refused the recipient or the message, or the address is
    /// not one: the caller reports it and may try again another day.
    Refused { recipient: String, reason: String },
}

/// One SMTP session for letters, opened with the first one: what
/// [`send_notices`] does for the invoice notices, for a caller that keeps
/// its own record of what was sent.
pub struct Outbox<'a> {
    session: Session<'a>,
    integrator: &'a Integrator,
    sender: Mailbox,
    /// Letters the relay accepted.
    pub sent: u64,
}

impl<'a> Outbox<'a> {
    /// Checks the sender (the integrator's `billing_email`); connects to
    /// nothing yet.
    pub fn new(settings: &'a MailSettings, integrator: &'a Integrator) -> Result<Self, MailError> {
        Ok(Outbox {
            session: Session {
                settings,
                hello: ClientId::default(),
                connection: None,
                opened: 0,
            },
            integrator,
            sender: sender(integrator)?,
            sent: 0,
        })
    }

    /// Sends one letter; what stops every letter (the relay unreachable,
    /// the sender refused, the session lost) is the error.
    pub fn post(&mut self, letter: &Letter) -> Result<Posted, MailError> {
        let to = match mailbox(&letter.customer_name, &letter.to) {
            Ok(to) => to,
            Err(reason) => {
                return Ok(Posted::Refused {
                    recipient: letter.to.trim().to_string(),
                    reason,
                })
            }
        };
        let subject = letter
            .subject
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let id = message_id(&letter.key, &self.sender);
        let message = headers(self.integrator, &self.sender, to.clone(), subject, &id)
            .multipart(alternative(letter.text.clone(), letter.html.clone()))
            .map_err(|e| MailError::Message {
                invoice: letter.key.clone(),
                reason: e.to_string(),
            })?;
        let outcome = self
            .session
            .deliver(&self.sender.email, &to.email, &message.formatted())?;
        let recipient = address_text(&to.email).to_string();
        match self.session.settle(&self.sender, self.sent, outcome)? {
            None => {
                self.sent += 1;
                Ok(Posted::Sent {
                    recipient,
                    message_id: id,
                })
            }
            Some(reason) => Ok(Posted::Refused { recipient, reason }),
        }
    }

    /// Ends the session: the sessions opened.
    pub fn close(mut self) -> u64 {
        self.session.close();
        self.session.opened
    }
}

/// A customer as a mail template names it (`customer.name`).
#[derive(Serialize)]
pub struct CustomerInfo<'a> {
    pub customer_id: &'a str,
    pub name: &'a str,
}

/// A customer's name and address in customers.csv.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
}

/// Each customer's name and address as customers.csv holds them now (a
/// blank address is none): what the reminders and the alerts go to.
pub fn contacts(reference: &crate::reference::Reference) -> HashMap<String, Contact> {
    let mut out = HashMap::new();
    if let Some(table) = reference.get("customers") {
        for row in 0..table.len() {
            let Some(id) = table.text(row, "customer_id") else {
                continue;
            };
            out.insert(
                id.to_string(),
                Contact {
                    name: table.text(row, "name").unwrap_or_default().to_string(),
                    email: table
                        .text(row, "email")
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_string),
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integrator() -> Integrator {
        toml::from_str(include_str!("../../tests/fixtures/samples/integrator.toml"))
            .expect("the samples' integrator.toml")
    }

    fn templates() -> MailTemplates {
        MailTemplates::load(None).expect("the default mail templates")
    }

    fn section(text: &str) -> MailSection {
        toml::from_str(text).expect("a [mail] section")
    }

    fn settings(text: &str) -> MailSettings {
        MailSettings::from_section_with_password(&section(text), Path::new("."), None)
            .expect("valid settings")
    }

    fn error(text: &str, password: Option<&str>) -> String {
        MailSettings::from_section_with_password(
            &section(text),
            Path::new("."),
            password.map(str::to_string),
        )
        .expect_err("refused settings")
        .to_string()
    }

    fn notice(method: &str, pdf: Option<Vec<u8>>) -> Notice {
        Notice {
            invoice_number: "EXM-2026-000001".to_string(),
            customer_id: "C00001".to_string(),
            customer_name: "Élodie Müller".to_string(),
            to: "client3@example.org".to_string(),
            amount_ttc: Decimal::new(8386, 2),
            amount_due: Decimal::new(8386, 2),
            due_date: NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
            payment_method: method.to_string(),
            pdf,
            credited_invoice: None,
        }
    }

    fn formatted(settings: &MailSettings, notice: &Notice) -> String {
        let message =
            compose(settings, &templates(), &integrator(), "2026-10", notice).expect("a message");
        String::from_utf8(message.formatted()).expect("an ASCII message")
    }

    #[test]
    fn defaults_are_submission_with_starttls_and_the_pdf_attached() {
        let s = settings("host = \"smtp.example.com\"");
        assert_eq!(s.port, 587);
        assert_eq!(s.tls, TlsMode::Starttls);
        assert!(s.attach_pdf);
        assert_eq!(s.link_base_url, None);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.relay(), "smtp.example.com:587");
        assert_eq!(
            settings("host = \"smtp.example.com\"\ntls = \"tls\"").port,
            465
        );
        assert_eq!(
            settings("host = \"smtp.example.com\"\nport = 2525\ntls = \"tls\"").port,
            2525
        );
    }

    #[test]
    fn tls_none_only_for_a_relay_on_this_machine() {
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            let s = settings(&format!("host = \"{host}\"\ntls = \"none\""));
            assert_eq!(s.tls, TlsMode::None);
        }
        let text = error("host = \"smtp.example.com\"\ntls = \"none\"", None);
        assert!(text.starts_with("[mail] tls: "), "{text}");
        assert!(text.contains("smtp.example.com"), "{text}");
        assert!(!text.contains('\n'));
        assert!(toml::from_str::<MailSection>("host = \"x\"\ntls = \"ssl\"").is_err());
    }

    #[test]
    fn the_password_comes_from_the_environment_only() {
        let text = error("host = \"smtp.example.com\"\npassword = \"hunter2\"", None);
        assert!(text.starts_with("[mail] password: "), "{text}");
        assert!(text.contains(PASSWORD_ENV), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let text = error("host = \"smtp.example.com\"\nuser = \"billing\"", None);
        assert!(text.starts_with("[mail] user: "), "{text}");
        assert!(text.contains(PASSWORD_ENV), "{text}");

        let s = MailSettings::from_section_with_password(
            &section("host = \"smtp.example.com\"\nuser = \"billing\""),
            Path::new("."),
            Some("s3cr3t-pass".to_string()),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t-pass"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(
            s.redact("535 auth failed for s3cr3t-pass\n now"),
            "535 auth failed for <redacted> now"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<MailSection>("host = \"x\"\nsmtp_port = 25").is_err());
        let cases = [
            ("host = \"\"", "[mail] host: "),
            ("host = \"smtp://smtp.example.com\"", "[mail] host: "),
            ("host = \"smtp.example.com\"\nport = 0", "[mail] port: "),
            ("host = \"smtp.example.com\"\ntimeout_s = 0", "[mail] timeout_s: "),
            ("host = \"smtp.example.com\"\nattach_pdf = false", "[mail] attach_pdf: "),
            (
                "host = \"smtp.example.com\"\nlink_base_url = \"factures.exemple-mobile.fr/\"",
                "[mail] link_base_url: ",
            ),
            (
                "host = \"smtp.example.com\"\nlink_base_url = \"https://factures.exemple-mobile.fr\"",
                "[mail] link_base_url: ",
            ),
            (
                "host = \"smtp.example.com\"\nca_file = \"no-such-ca.pem\"",
                "[mail] ca_file: ",
            ),
            (
                "host = \"localhost\"\ntls = \"none\"\nca_file = \"ca.pem\"",
                "[mail] ca_file: ",
            ),
        ];
        for (text, start) in cases {
            let message = error(text, None);
            assert!(message.starts_with(start), "{text}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn ca_file_is_read_against_the_configuration_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-a-cert.pem"), "hello").unwrap();
        let text = MailSettings::from_section_with_password(
            &section("host = \"smtp.example.com\"\nca_file = \"not-a-cert.pem\""),
            dir.path(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(text.starts_with("[mail] ca_file: "), "{text}");
        assert!(text.contains("not-a-cert.pem"), "{text}");
    }

    #[test]
    fn subject_sender_and_recipient() {
        let s = settings("host = \"smtp.example.com\"");
        let mail = formatted(&s, &notice("SEPA_DD", Some(b"%PDF-1.7".to_vec())));
        assert!(
            mail.contains(
                "Subject: Votre facture ExempleMobile EXM-2026-000001 est disponible\r\n"
            ),
            "{mail}"
        );
        assert!(
            mail.contains("From: ExempleMobile <facturation@exemple-mobile.fr>\r\n"),
            "{mail}"
        );
        assert!(mail.contains("client3@example.org>\r\n"), "{mail}");
        assert!(mail.contains("Reply-To: "), "{mail}");
        assert!(mail.contains("Message-ID: <EXM-2026-000001."), "{mail}");
        assert!(mail.contains("@exemple-mobile.fr>\r\n"), "{mail}");
        assert!(mail.is_ascii());
    }

    #[test]
    fn french_amount_and_direct_debit_date() {
        let s = settings("host = \"smtp.example.com\"");
        let content = content(
            &templates(),
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &notice("SEPA_DD", Some(vec![1])),
        )
        .expect("the mail's content");
        assert!(
            content.text.starts_with("Bonjour Élodie Müller,\n"),
            "{}",
            content.text
        );
        assert!(
            content.text.contains("de octobre 2026 est disponible"),
            "{}",
            content.text
        );
        assert!(
            content.text.contains("Montant TTC : 83,86\u{a0}€\n"),
            "{}",
            content.text
        );
        assert!(
            content.text.contains("prélevé le 16/11/2026"),
            "{}",
            content.text
        );
        assert!(content.text.contains("09 70 00 00 00 (appel non surtaxé)"));
        assert!(content.text.contains("support@exemple-mobile.fr"));
        assert!(!content.text.contains("virement"));
        assert!(content.html.contains("83,86\u{a0}€"));

        let big = Notice {
            amount_ttc: Decimal::new(123456789, 2),
            amount_due: Decimal::new(123456789, 2),
            ..notice("SEPA_DD", None)
        };
        let content = super::content(
            &templates(),
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &big,
        )
        .expect("the mail's content");
        assert!(
            content.text.contains("1\u{202f}234\u{202f}567,89\u{a0}€"),
            "{}",
            content.text
        );
    }

    #[test]
    fn transfer_says_before_when_and_where_to() {
        let s = settings("host = \"smtp.example.com\"");
        let content = content(
            &templates(),
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &notice("TRANSFER", Some(vec![1])),
        )
        .expect("the mail's content");
        assert!(
            content
                .text
                .contains("À régler par virement avant le 16/11/2026"),
            "{}",
            content.text
        );
        assert!(
            content
                .text
                .contains("IBAN : FR76 3000 6000 0112 3456 7890 189"),
            "{}",
            content.text
        );
        assert!(content.text.contains("BIC : AGRIFRPPXXX"));
        assert!(content
            .text
            .contains("Référence à indiquer : EXM-2026-000001"));
        assert!(!content.text.contains("prélevé"));
    }

    #[test]
    fn the_pdf_is_attached_when_the_settings_say_so() {
        let pdf: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let s = settings("host = \"smtp.example.com\"");
        let mail = formatted(&s, &notice("SEPA_DD", Some(pdf)));
        assert!(mail.contains("multipart/mixed"), "{mail}");
        assert!(mail.contains("Content-Type: application/pdf"), "{mail}");
        assert!(
            mail.contains("Content-Disposition: attachment; filename=\"EXM-2026-000001.pdf\""),
            "{mail}"
        );
        assert!(mail.contains("Content-Transfer-Encoding: base64"), "{mail}");
        assert!(mail.contains("multipart/alternative"));
        assert!(mail.contains("text/html"));

        let linked = settings(
            "host = \"smtp.example.com\"\nattach_pdf = false\nlink_base_url = \"https://factures.exemple-mobile.fr/{month}/\"",
        );
        let mail = formatted(&linked, &notice("SEPA_DD", Some(b"%PDF".to_vec())));
        assert!(!mail.contains("application/pdf"), "{mail}");
        assert!(!mail.contains("multipart/mixed"), "{mail}");
        let content = content(
            &templates(),
            &linked,
            &integrator(),
            "2026-10".parse().unwrap(),
            &notice("SEPA_DD", None),
        )
        .expect("the mail's content");
        assert!(
            content
                .text
                .contains("\nhttps://factures.exemple-mobile.fr/2026-10/EXM-2026-000001.pdf\n"),
            "{}",
            content.text
        );
        assert!(!content.text.contains("jointe"));
        assert!(content.html.contains(
            "<a href=\"https://factures.exemple-mobile.fr/2026-10/EXM-2026-000001.pdf\">"
        ));
    }

    #[test]
    fn attached_and_linked() {
        let both = settings(
            "host = \"smtp.example.com\"\nlink_base_url = \"https://factures.exemple-mobile.fr/2026-10/\"",
        );
        let c = content(
            &templates(),
            &both,
            &integrator(),
            "2026-10".parse().unwrap(),
            &notice("SEPA_DD", Some(vec![1])),
        )
        .expect("the mail's content");
        assert!(c.attach);
        assert!(c.text.contains("jointe à ce message (EXM-2026-000001.pdf)"));
        assert!(c
            .text
            .contains("https://factures.exemple-mobile.fr/2026-10/EXM-2026-000001.pdf"));
    }

    #[test]
    fn html_escapes_what_the_customer_file_says() {
        let s = settings("host = \"smtp.example.com\"");
        let n = Notice {
            customer_name: "<script>alert(1)</script> & Cie".to_string(),
            ..notice("SEPA_DD", Some(vec![1]))
        };
        let c = content(
            &templates(),
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &n,
        )
        .expect("the mail's content");
        assert!(
            c.html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cie"),
            "{}",
            c.html
        );
        assert!(!c.html.contains("<script>"));
    }

    #[test]
    fn a_line_break_in_a_name_adds_no_header() {
        let n = Notice {
            customer_name: "Jean\r\nBcc: evil@example.org\u{7}".to_string(),
            ..notice("SEPA_DD", Some(vec![1]))
        };
        let to = recipient(&n).unwrap();
        assert_eq!(to.name.as_deref(), Some("Jean Bcc: evil@example.org"));
        let message = Message::builder()
            .from("facturation@example.org".parse().unwrap())
            .to(to)
            .subject("x")
            .body(String::new())
            .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(!raw.to_lowercase().contains("\nbcc:"), "{raw}");
    }

    #[test]
    fn a_bad_address_or_sender_is_said() {
        let s = settings("host = \"smtp.example.com\"");
        let n = Notice {
            to: "pas-une-adresse".to_string(),
            ..notice("SEPA_DD", Some(vec![1]))
        };
        let text = compose(&s, &templates(), &integrator(), "2026-10", &n)
            .unwrap_err()
            .to_string();
        assert!(text.contains("pas-une-adresse"), "{text}");
        let mut no_billing = integrator();
        no_billing.billing_email = None;
        let text = compose(
            &s,
            &templates(),
            &no_billing,
            "2026-10",
            &notice("SEPA_DD", Some(vec![1])),
        )
        .unwrap_err()
        .to_string();
        assert!(text.contains("billing_email"), "{text}");
        assert!(compose(
            &s,
            &templates(),
            &integrator(),
            "2026-13",
            &notice("SEPA_DD", None)
        )
        .is_err());
    }

    #[test]
    fn report_is_one_line() {
        let report = MailReport {
            month: "2026-10".to_string(),
            relay: "smtp.example.com:587".to_string(),
            notices: 3,
            sent: 2,
            already_sent: 0,
            attached: 2,
            linked: 0,
            refused: vec![Refused {
                invoice_number: "EXM-2026-000002".to_string(),
                recipient: "x@example.org".to_string(),
                reason: "550 5.1.1 unknown user".to_string(),
            }],
            connections: 1,
        };
        assert_eq!(
            report.to_string(),
            "mail 2026-10: 3 notices, 2 sent, 0 already sent, 1 refused (EXM-2026-000002 <x@example.org>: 550 5.1.1 unknown user) via smtp.example.com:587"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["refused"][0]["recipient"], "x@example.org");
        assert_eq!(json["already_sent"], 0);
    }

    #[test]
    fn the_ledger_remembers_what_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert!(sent_mails(&ledger, "2026-10").unwrap().is_empty());
        record_sent(
            &ledger,
            "2026-10",
            "EXM-2026-000001",
            "a@example.org",
            "<id@x>",
        )
        .unwrap();
        assert!(is_sent(&ledger, "2026-10", "EXM-2026-000001").unwrap());
        assert!(!is_sent(&ledger, "2026-11", "EXM-2026-000001").unwrap());
        let sent = sent_mails(&ledger, "2026-10").unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].message_id, "<id@x>");
    }

    #[test]
    fn a_missing_pdf_stops_before_the_relay_is_contacted() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        // Port 9 on localhost: nothing is contacted before the check.
        let s = settings("host = \"127.0.0.1\"\nport = 9\ntls = \"none\"");
        let error = send_notices(
            &s,
            &templates(),
            &integrator(),
            &ledger,
            "2026-10",
            [notice("SEPA_DD", None)],
        )
        .unwrap_err();
        assert!(matches!(error, MailError::NoPdf { .. }), "{error}");
    }

    /// The default templates, word for word: what mails said when they
    /// were written in Rust.
    #[test]
    fn the_default_mail_word_for_word() {
        let s = settings(
            "host = \"smtp.example.com\"\nlink_base_url = \"https://factures.exemple-mobile.fr/{month}/\"",
        );
        let n = Notice {
            invoice_number: "EXM-2026-000042".to_string(),
            customer_name: "Zoë O'Brien".to_string(),
            due_date: NaiveDate::from_ymd_opt(2026, 11, 6).unwrap(),
            ..notice("TRANSFER", Some(vec![1]))
        };
        let c = content(
            &templates(),
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &n,
        )
        .expect("the mail's content");
        assert_eq!(
            c.subject,
            "Votre facture ExempleMobile EXM-2026-000042 est disponible"
        );
        assert_eq!(
            c.text,
            concat!(
            "Bonjour Zoë O'Brien,\n",
            "\n",
            "Votre facture ExempleMobile n° EXM-2026-000042 de octobre 2026 est disponible.\n",
            "\n",
            "Montant TTC : 83,86\u{a0}€\n",
            "À régler par virement avant le 06/11/2026 :\n",
            "IBAN : FR76 3000 6000 0112 3456 7890 189\n",
            "BIC : AGRIFRPPXXX\n",
            "Référence à indiquer : EXM-2026-000042\n",
            "\n",
            "Votre facture est jointe à ce message (EXM-2026-000042.pdf).\n",
            "Vous pouvez aussi la consulter et la télécharger à cette adresse :\n",
            "https://factures.exemple-mobile.fr/2026-10/EXM-2026-000042.pdf\n",
            "\n",
            "Une question ? Notre service client vous répond par téléphone au 09 70 00 00 00 (appel non surtaxé) ou par e-mail à support@exemple-mobile.fr.\n",
            "\n",
            "Cordialement,\n",
            "Le service facturation ExempleMobile\n",
            "\n",
            "-- \n",
            "Telco Exemple SAS – SAS au capital de 10 000 € – 12 avenue des Lilas, 69003 Lyon – SIRET 12345678200010\n",
            )
        );
        assert_eq!(
            c.html,
            concat!(
            "<!DOCTYPE html>\n",
            "<html lang=\"fr\"><head><meta charset=\"utf-8\"></head>\n",
            "<body style=\"font-family: sans-serif; font-size: 14px; color: #222;\">\n",
            "<p>Bonjour Zoë O&#39;Brien,</p>\n",
            "<p>Votre facture ExempleMobile n° EXM-2026-000042 de octobre 2026 est disponible.</p>\n",
            "<p>Montant TTC : 83,86\u{a0}€<br>\n",
            "À régler par virement avant le 06/11/2026 :<br>\n",
            "IBAN : FR76 3000 6000 0112 3456 7890 189<br>\n",
            "BIC : AGRIFRPPXXX<br>\n",
            "Référence à indiquer : EXM-2026-000042</p>\n",
            "<p>Votre facture est jointe à ce message (EXM-2026-000042.pdf).<br>\n",
            "Vous pouvez aussi la consulter et la télécharger à cette adresse :<br>\n",
            "<a href=\"https://factures.exemple-mobile.fr/2026-10/EXM-2026-000042.pdf\">https://factures.exemple-mobile.fr/2026-10/EXM-2026-000042.pdf</a></p>\n",
            "<p>Une question ? Notre service client vous répond par téléphone au 09 70 00 00 00 (appel non surtaxé) ou par e-mail à support@exemple-mobile.fr.</p>\n",
            "<p>Cordialement,<br>\n",
            "Le service facturation ExempleMobile</p>\n",
            "<p style=\"color: #777; font-size: 12px;\">Telco Exemple SAS – SAS au capital de 10 000 € – 12 avenue des Lilas, 69003 Lyon – SIRET 12345678200010</p>\n",
            "</body></html>\n",
            )
        );
    }

    #[test]
    fn an_integrators_mail_template_is_used_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mail_subject.txt"),
            "Facture {{ invoice.invoice_number }}\n  de {{ brand }}\n",
        )
        .unwrap();
        let own = MailTemplates::load(Some(dir.path())).expect("the integrator's subject");
        let s = settings("host = \"smtp.example.com\"");
        let c = content(
            &own,
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &notice("SEPA_DD", Some(vec![1])),
        )
        .expect("the mail's content");
        assert_eq!(c.subject, "Facture EXM-2026-000001 de ExempleMobile");
        assert!(c.text.starts_with("Bonjour Élodie Müller,\n"), "{}", c.text);

        std::fs::write(
            dir.path().join("mail.txt"),
            "Bonjour,\n\n{% if attachment %}\nJointe.\n{% endfi %}\n",
        )
        .unwrap();
        let Err(error) = MailTemplates::load(Some(dir.path())) else {
            panic!("a broken mail template loads");
        };
        let text = MailError::from(error).to_string();
        assert!(
            text.starts_with("mail: template mail.txt line 5: syntax error"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");

        // A name the context lacks is said when the mail is written.
        std::fs::write(dir.path().join("mail.txt"), "Bonjour {{ client }}\n").unwrap();
        let own = MailTemplates::load(Some(dir.path())).expect("it parses");
        let Err(error) = content(
            &own,
            &s,
            &integrator(),
            "2026-10".parse().unwrap(),
            &notice("SEPA_DD", Some(vec![1])),
        ) else {
            panic!("an undefined name renders");
        };
        let text = error.to_string();
        assert!(
            text.starts_with("template mail.txt line 1: undefined value"),
            "{text}"
        );
    }
}
