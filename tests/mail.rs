//! Mail through a real SMTP relay: `tests/python/smtp_sink.py` (aiosmtpd,
//! 127.0.0.1, a free port) writes each message it accepts as `.eml` and as
//! JSON read back by Python's own `email` package, refuses one recipient
//! with 550 and, when asked, requires STARTTLS and a login. The library is
//! called directly (`mvnobill::documents::mail::send_notices`) with a scratch ledger.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use chrono::NaiveDate;
use mvnobill::core::ledger::Ledger;
use mvnobill::documents::mail::{self, MailError, MailSection, MailSettings, Notice};
use mvnobill::documents::templates::MailTemplates;
use mvnobill::reference::integrator::Integrator;
use rust_decimal::Decimal;

use crate::common;

/// The SMTP sink, stopped when dropped.
pub(crate) struct Sink {
    child: Child,
    pub(crate) port: u16,
    out: tempfile::TempDir,
}

impl Sink {
    pub(crate) fn start(args: &[&str]) -> Sink {
        let out = tempfile::tempdir().expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
        let mut child = Command::new(common::python())
            .arg(script)
            .arg("--out")
            .arg(out.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/python/smtp_sink.py");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let port = match (read, line.trim().parse::<u16>()) {
            (Ok(_), Ok(port)) => port,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the SMTP sink did not start (it printed {line:?})");
            }
        };
        Sink { child, port, out }
    }

    /// Each message received, as the sink's JSON, in arrival order.
    pub(crate) fn messages(&self) -> Vec<serde_json::Value> {
        self.files("json")
            .iter()
            .map(|path| {
                serde_json::from_slice(&std::fs::read(path).expect("read JSON")).expect("JSON")
            })
            .collect()
    }

    pub(crate) fn files(&self, extension: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("read the sink's folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == extension))
            .collect();
        files.sort();
        files
    }

    /// SMTP sessions opened so far.
    fn connections(&self) -> usize {
        std::fs::read_to_string(self.out.path().join("connections"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn integrator() -> Integrator {
    Integrator::load(&common::fixtures().join("samples/integrator.toml")).expect("integrator.toml")
}

/// The default mail templates (`templates/mail*`).
fn templates() -> MailTemplates {
    MailTemplates::load(None).expect("the default mail templates")
}

fn settings(toml_text: &str, config_dir: &Path, password: Option<&str>) -> MailSettings {
    let section: MailSection = toml::from_str(toml_text).expect("a [mail] section");
    MailSettings::from_section_with_password(&section, config_dir, password.map(str::to_string))
        .expect("valid [mail] settings")
}

fn notice(seq: u32, name: &str, to: &str, method: &str, ttc: &str, pdf: Option<Vec<u8>>) -> Notice {
    Notice {
        invoice_number: format!("EXM-2026-{seq:06}"),
        customer_id: format!("C{seq:05}"),
        customer_name: name.to_string(),
        to: to.to_string(),
        amount_ttc: ttc.parse::<Decimal>().expect("an amount"),
        amount_due: ttc.parse::<Decimal>().expect("an amount"),
        due_date: NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
        payment_method: method.to_string(),
        pdf,
        credited_invoice: None,
    }
}

/// Bytes that look like a PDF and hold every byte value.
fn fake_pdf(seed: u8) -> Vec<u8> {
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    pdf.extend((0..=255u8).cycle().skip(seed as usize).take(5000));
    pdf.extend_from_slice(b"\n%%EOF\n");
    pdf
}

fn text(value: &serde_json::Value) -> &str {
    value.as_str().unwrap_or_default()
}

const REFUSED: &str = "inconnu@example.org";

#[test]
fn each_customer_is_mailed_once_and_a_refused_recipient_does_not_stop_the_others() {
    let sink = Sink::start(&["--refuse", REFUSED]);
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let integrator = integrator();
    let settings = settings(
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            sink.port
        ),
        state.path(),
        None,
    );
    let pdf1 = fake_pdf(0);
    let pdf3 = fake_pdf(7);
    let notices = || {
        let mut notices = vec![
            notice(
                1,
                "SARL Dupont & Fils",
                "client1@example.org",
                "SEPA_DD",
                "83.86",
                Some(pdf1.clone()),
            ),
            notice(
                2,
                "Marc-André Lefèvre",
                REFUSED,
                "SEPA_DD",
                "19.99",
                Some(fake_pdf(3)),
            ),
            notice(
                3,
                "Élodie Müller",
                "client3@example.org",
                "TRANSFER",
                "1234.5",
                Some(pdf3.clone()),
            ),
        ];
        // The third customer had 65.50 unpaid: its invoice asks 1300.00.
        notices[2].amount_due = "1300.00".parse().unwrap();
        notices
    };

    let report = mail::send_notices(
        &settings,
        &templates(),
        &integrator,
        &ledger,
        "2026-10",
        notices(),
    )
    .expect("the notices go");
    assert_eq!(
        (report.notices, report.sent, report.already_sent),
        (3, 2, 0),
        "{report}"
    );
    assert_eq!(report.attached, 2);
    assert_eq!(report.refused.len(), 1, "{report}");
    let refused = &report.refused[0];
    assert_eq!(refused.invoice_number, "EXM-2026-000002");
    assert_eq!(refused.recipient, REFUSED);
    assert!(refused.reason.starts_with("550 "), "{}", refused.reason);
    assert!(
        refused.reason.contains("Recipient address rejected"),
        "{}",
        refused.reason
    );
    // One session for the month, kept after the refusal (RSET).
    assert_eq!(report.connections, 1);
    assert_eq!(sink.connections(), 1);
    let line = report.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains("2 sent") && line.contains("1 refused"),
        "{line}"
    );
    assert!(line.contains(REFUSED), "{line}");

    assert_eq!(sink.files("eml").len(), 2);
    let messages = sink.messages();
    assert_eq!(messages.len(), 2);
    let (first, third) = (&messages[0], &messages[1]);
    for (message, rcpt) in [
        (first, "client1@example.org"),
        (third, "client3@example.org"),
    ] {
        assert_eq!(text(&message["mail_from"]), "facturation@exemple-mobile.fr");
        assert_eq!(message["rcpt_tos"], serde_json::json!([rcpt]));
        assert_eq!(
            text(&message["from"]),
            "ExempleMobile <facturation@exemple-mobile.fr>"
        );
        assert!(
            text(&message["to"]).ends_with(&format!("<{rcpt}>")),
            "{message}"
        );
        assert!(text(&message["reply_to"]).contains("support@exemple-mobile.fr"));
        assert_eq!(text(&message["content_type"]), "multipart/mixed");
    }
    assert_eq!(
        text(&first["to"]),
        "SARL Dupont & Fils <client1@example.org>"
    );
    assert_eq!(text(&third["to"]), "Élodie Müller <client3@example.org>");
    assert_eq!(
        text(&first["subject"]),
        "Votre facture ExempleMobile EXM-2026-000001 est disponible"
    );
    assert_eq!(
        text(&third["subject"]),
        "Votre facture ExempleMobile EXM-2026-000003 est disponible"
    );

    // The French text, as a mail reader decodes it.
    let body = text(&first["text"]);
    assert!(body.starts_with("Bonjour SARL Dupont & Fils,"), "{body}");
    assert!(body.contains("Montant TTC : 83,86\u{a0}€"), "{body}");
    assert!(body.contains("prélevé le 16/11/2026"), "{body}");
    assert!(body.contains("09 70 00 00 00"), "{body}");
    assert!(text(&first["html"]).contains("SARL Dupont &amp; Fils"));
    let body = text(&third["text"]);
    assert!(
        body.contains("Montant TTC : 1\u{202f}234,50\u{a0}€"),
        "{body}"
    );
    assert!(
        body.contains("Montant à payer, solde antérieur compris : 1\u{202f}300,00\u{a0}€"),
        "{body}"
    );
    assert!(!text(&first["text"]).contains("solde antérieur"));
    assert!(
        body.contains("À régler par virement avant le 16/11/2026"),
        "{body}"
    );
    assert!(
        body.contains("Référence à indiquer : EXM-2026-000003"),
        "{body}"
    );

    // The PDF, byte for byte.
    for (message, number, pdf) in [(first, 1, &pdf1), (third, 3, &pdf3)] {
        let attachments = message["attachments"].as_array().expect("attachments");
        assert_eq!(attachments.len(), 1, "{message}");
        assert_eq!(
            text(&attachments[0]["filename"]),
            format!("EXM-2026-{number:06}.pdf")
        );
        assert_eq!(text(&attachments[0]["content_type"]), "application/pdf");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text(&attachments[0]["data"]))
            .expect("base64");
        assert_eq!(&bytes, pdf);
    }

    // The ledger has what the relay accepted, with the Message-ID it got.
    let sent = mail::sent_mails(&ledger, "2026-10").unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].invoice_number, "EXM-2026-000001");
    assert_eq!(sent[0].recipient, "client1@example.org");
    assert_eq!(sent[0].message_id, text(&first["message_id"]));
    assert_eq!(sent[1].message_id, text(&third["message_id"]));

    // A re-run sends nothing twice, and tries the refused one again.
    let again = mail::send_notices(
        &settings,
        &templates(),
        &integrator,
        &ledger,
        "2026-10",
        notices(),
    )
    .expect("the re-run");
    assert_eq!((again.sent, again.already_sent), (0, 2), "{again}");
    assert_eq!(again.refused.len(), 1, "{again}");
    assert_eq!(again.refused[0].recipient, REFUSED);
    assert_eq!(sink.files("eml").len(), 2);
    assert_eq!(sink.connections(), 2);
    assert_eq!(mail::sent_mails(&ledger, "2026-10").unwrap(), sent);

    // Another month is other notices.
    let november = mail::send_notices(
        &settings,
        &templates(),
        &integrator,
        &ledger,
        "2026-11",
        [notice(
            1,
            "SARL Dupont & Fils",
            "client1@example.org",
            "SEPA_DD",
            "10",
            Some(pdf1.clone()),
        )],
    )
    .unwrap();
    assert_eq!(november.sent, 1, "{november}");
    assert_eq!(sink.files("eml").len(), 3);
}

#[test]
fn links_instead_of_attachments() {
    let sink = Sink::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let settings = settings(
        &format!(
            "host = \"localhost\"\nport = {}\ntls = \"none\"\nattach_pdf = false\nlink_base_url = \"https://factures.exemple-mobile.fr/{{month}}/\"\n",
            sink.port
        ),
        state.path(),
        None,
    );
    let report = mail::send_notices(
        &settings,
        &templates(),
        &integrator(),
        &ledger,
        "2026-10",
        // No PDF is needed for a link.
        [notice(
            1,
            "Zoë O'Brien",
            "client4@example.org",
            "SEPA_DD",
            "5",
            None,
        )],
    )
    .unwrap();
    assert_eq!(
        (report.sent, report.attached, report.linked),
        (1, 0, 1),
        "{report}"
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(text(&messages[0]["content_type"]), "multipart/alternative");
    assert!(messages[0]["attachments"].as_array().unwrap().is_empty());
    let link = "https://factures.exemple-mobile.fr/2026-10/EXM-2026-000001.pdf";
    assert!(text(&messages[0]["text"]).contains(link), "{}", messages[0]);
    assert!(text(&messages[0]["html"]).contains(&format!("<a href=\"{link}\">")));
}

#[test]
fn a_bad_address_is_reported_without_the_relay_and_an_unreachable_relay_is_an_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let settings = settings(
        &format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_s = 5\n"),
        state.path(),
        None,
    );
    let report = mail::send_notices(
        &settings,
        &templates(),
        &integrator(),
        &ledger,
        "2026-10",
        [
            notice(1, "A", "pas-une-adresse", "SEPA_DD", "1", Some(fake_pdf(1))),
            notice(2, "B", "", "SEPA_DD", "1", Some(fake_pdf(2))),
        ],
    )
    .expect("nothing to send is not an error");
    assert_eq!((report.sent, report.connections), (0, 0), "{report}");
    assert_eq!(report.refused.len(), 2);
    assert!(
        report.refused[0].reason.contains("pas-une-adresse"),
        "{report}"
    );
    assert!(
        report.refused[1].reason.contains("no e-mail address"),
        "{report}"
    );

    let error = mail::send_notices(
        &settings,
        &templates(),
        &integrator(),
        &ledger,
        "2026-10",
        [notice(
            3,
            "C",
            "client3@example.org",
            "SEPA_DD",
            "1",
            Some(fake_pdf(3)),
        )],
    )
    .expect_err("no relay");
    assert!(matches!(error, MailError::Connect { .. }), "{error:?}");
    let line = error.to_string();
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert!(mail::sent_mails(&ledger, "2026-10").unwrap().is_empty());
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (the test makes its relay's certificate with it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=mvnobill test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "relay.key", "-out", "relay.csr"]);
    run(&csr);
    std::fs::write(
        dir.join("relay.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "relay.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "relay.ext",
        "-out",
        "relay.pem",
    ]);
}

#[test]
fn starttls_and_login_keep_the_password_out_of_every_text() {
    const PASSWORD: &str = "Tr0ub4dour-s3cret-7731";
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let cert = certs.path().join("relay.pem");
    let key = certs.path().join("relay.key");
    let sink = Sink::start(&[
        "--user",
        "facturation",
        "--password",
        PASSWORD,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let integrator = integrator();
    let config = |password: &str, ca: bool| {
        let ca_file = if ca { "ca_file = \"ca.pem\"\n" } else { "" };
        settings(
            &format!("host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nuser = \"facturation\"\n{ca_file}", sink.port),
            certs.path(),
            Some(password),
        )
    };

    let good = config(PASSWORD, true);
    assert!(!format!("{good:?}").contains(PASSWORD));
    let report = mail::send_notices(
        &good,
        &templates(),
        &integrator,
        &ledger,
        "2026-10",
        [notice(
            1,
            "SARL Dupont & Fils",
            "client1@example.org",
            "SEPA_DD",
            "83.86",
            Some(fake_pdf(0)),
        )],
    )
    .expect("sent over STARTTLS with a login");
    assert_eq!(report.sent, 1, "{report}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tls"], true);
    assert_eq!(messages[0]["authenticated"], true);
    assert!(!report.to_string().contains(PASSWORD));
    assert!(!serde_json::to_string(&report).unwrap().contains(PASSWORD));

    // One notice to client 2, through a relay configured otherwise.
    let send_one = |settings: &mail::MailSettings| {
        mail::send_notices(
            settings,
            &templates(),
            &integrator,
            &ledger,
            "2026-10",
            [notice(
                2,
                "B",
                "client2@example.org",
                "SEPA_DD",
                "1",
                Some(fake_pdf(2)),
            )],
        )
    };

    // A wrong password: the login is refused, in one line, no password.
    let wrong = "not-the-password-0042";
    let error = send_one(&config(wrong, true)).expect_err("login refused");
    assert!(matches!(error, MailError::Login { .. }), "{error:?}");
    let line = error.to_string();
    assert!(line.contains("535"), "{line}");
    assert!(line.contains("facturation"), "{line}");
    assert!(!line.contains(wrong) && !line.contains(PASSWORD), "{line}");
    assert!(!format!("{error:?}").contains(wrong));
    assert!(!line.contains('\n'), "{line}");

    // Without the relay's CA, its certificate is not trusted.
    let error = send_one(&config(PASSWORD, false)).expect_err("an unknown certificate");
    assert!(matches!(error, MailError::Connect { .. }), "{error:?}");
    let line = error.to_string();
    assert!(
        line.contains("STARTTLS") && line.to_lowercase().contains("certificate"),
        "{line}"
    );
    assert!(!line.contains(PASSWORD), "{line}");
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn tls_from_the_first_byte_on_a_submissions_port() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let cert = certs.path().join("relay.pem");
    let key = certs.path().join("relay.key");
    let sink = Sink::start(&[
        "--implicit-tls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--user",
        "facturation",
        "--password",
        "another-s3cret",
    ]);
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let settings = settings(
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\nuser = \"facturation\"\nca_file = \"ca.pem\"\n",
            sink.port
        ),
        certs.path(),
        Some("another-s3cret"),
    );
    let report = mail::send_notices(
        &settings,
        &templates(),
        &integrator(),
        &ledger,
        "2026-10",
        [notice(
            1,
            "A",
            "client1@example.org",
            "TRANSFER",
            "12.5",
            Some(fake_pdf(1)),
        )],
    )
    .expect("sent over TLS");
    assert_eq!(report.sent, 1, "{report}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tls"], true);
    assert_eq!(messages[0]["authenticated"], true);
}

#[test]
fn a_relay_that_ends_sessions_gets_a_new_one() {
    // 421 to the third MAIL FROM of a session, and the session closed.
    let sink = Sink::start(&["--mail-per-session", "2"]);
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let settings = settings(
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            sink.port
        ),
        state.path(),
        None,
    );
    let notices: Vec<Notice> = (1..=5)
        .map(|i| {
            let to = format!("client{i}@example.org");
            notice(i, "X", &to, "SEPA_DD", "1", Some(fake_pdf(i as u8)))
        })
        .collect();
    let report = mail::send_notices(
        &settings,
        &templates(),
        &integrator(),
        &ledger,
        "2026-10",
        notices,
    )
    .expect("every notice goes");
    assert_eq!((report.sent, report.refused.len()), (5, 0), "{report}");
    assert_eq!(report.connections, 3, "{report}");
    assert_eq!(sink.connections(), 3);
    let recipients: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=5).map(|i| format!("client{i}@example.org")).collect();
    assert_eq!(recipients, expected);
}

/// The whole `publish` stage as `run` ends with it: the PDFs land in
/// `Factures/Clients/2026-10/` of the source tree, each customer gets one
/// mail with its PDF, and publishing again sends and uploads nothing.
#[test]
fn run_publishes_the_pdfs_and_mails_each_customer_once() {
    let sink = Sink::start(&[]);
    let ws = common::Workspace::samples();
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config.push_str(&format!(
        "\n[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    ));
    std::fs::write(&config, text_config).unwrap();

    let report = ws.run(&["--json", "run", "--month", "2026-10"]).ok().json();
    let invoices = report["bill"]["invoices"].as_u64().unwrap();
    let publish = &report["publish"];
    assert_eq!(publish["documents"]["uploaded"], invoices);
    assert_eq!(publish["mail"]["sent"], invoices, "{publish}");
    let folder = ws.dir.path().join("ftp/Factures/Clients/2026-10");
    for row in ws.query("SELECT i.invoice_number, c.email FROM invoices i JOIN customers c ON c.customer_id = i.customer_id") {
        let number = common::text(&row, "invoice_number");
        let published = std::fs::read(folder.join(format!("{number}.pdf"))).unwrap();
        let lake = std::fs::read(ws.lake().join(format!("documents/2026-10/{number}.pdf"))).unwrap();
        assert!(published == lake, "{number}: the published PDF differs");
        let email = common::text(&row, "email");
        let mails: Vec<_> = sink
            .messages()
            .into_iter()
            .filter(|m| {
                m["rcpt_tos"].to_string().contains(&email)
                    && m["subject"].as_str().unwrap_or("").contains(&number)
            })
            .collect();
        assert_eq!(mails.len(), 1, "{number} to {email}");
        let attachment = &mails[0]["attachments"][0];
        assert_eq!(attachment["filename"], format!("{number}.pdf"));
    }

    let again = ws
        .run(&["--json", "publish", "--month", "2026-10"])
        .ok()
        .json();
    assert_eq!(again["documents"]["uploaded"], 0);
    assert_eq!(again["documents"]["already_there"], invoices);
    assert_eq!(again["mail"]["sent"], 0);
    assert_eq!(again["mail"]["already_sent"], invoices);
    assert_eq!(sink.messages().len() as u64, invoices);
}

/// The integrator re-words the mail in its `[templates] dir`, without a
/// rebuild: its subject and text are sent, and the HTML it left out is the
/// default one, with the same filters.
#[test]
fn the_integrators_own_mail_templates_are_used() {
    let sink = Sink::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(state.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mail_subject.txt"),
        "{{ brand }} : votre facture de {{ invoice.month | month_fr }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mail.txt"),
        "Chère cliente, cher client,\n\n{% if invoice.nothing_to_pay %}\nRien à payer.\n{% else %}\n{{ invoice.total_ttc | eur }} au {{ invoice.due_date | date_fr }}.\n{% endif %}\nIBAN : {{ integrator.bank_iban | iban }}\n",
    )
    .unwrap();
    let templates = MailTemplates::load(Some(dir.path())).expect("the integrator's templates");
    let settings = settings(
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            sink.port
        ),
        state.path(),
        None,
    );
    let report = mail::send_notices(
        &settings,
        &templates,
        &integrator(),
        &ledger,
        "2026-10",
        [notice(
            1,
            "Élodie Müller",
            "client1@example.org",
            "SEPA_DD",
            "1234.5",
            Some(fake_pdf(1)),
        )],
    )
    .expect("sent");
    assert_eq!(report.sent, 1, "{report}");
    let messages = sink.messages();
    assert_eq!(
        text(&messages[0]["subject"]),
        "ExempleMobile : votre facture de octobre 2026"
    );
    // The text as sent, its line ends CRLF as mail has them.
    assert_eq!(
        text(&messages[0]["text"]).replace("\r\n", "\n"),
        "Chère cliente, cher client,\n\n1\u{202f}234,50\u{a0}€ au 16/11/2026.\nIBAN : FR76 3000 6000 0112 3456 7890 189\n"
    );
    let html = text(&messages[0]["html"]);
    assert!(html.contains("<p>Bonjour Élodie Müller,</p>"), "{html}");
    assert_eq!(messages[0]["attachments"].as_array().unwrap().len(), 1);
}

/// A mail template the integrator broke stops `publish` before anything
/// leaves (no SEPA file, no upload, no mail), in one line naming the
/// template and the line.
#[test]
fn a_broken_mail_template_stops_publish_in_one_line() {
    let ws = common::Workspace::samples();
    let templates = ws.dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("mail.html"),
        "<p>Bonjour,</p>\n<p>{{ customer.name }</p>\n",
    )
    .unwrap();
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    // Port 9: nothing listens there, and nothing is contacted.
    text_config.push_str(
        "\n[templates]\ndir = \"templates\"\n\n[mail]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\n",
    );
    std::fs::write(&config, text_config).unwrap();
    let out = ws.run(&["publish", "--month", "2026-10"]);
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: mail: template mail.html line 2: syntax error"),
        "{}",
        out.stderr
    );
    assert!(!ws.lake().join("documents").exists());
}

/// Credit notes are mailed like invoices (docs/MAIL.md): `publish --month
/// M` mails the notes whose documents are M's, the regularisation note
/// issued with M and a note of `credit` dated in M, each once, from the
/// billing address, with its PDF.
#[test]
fn credit_notes_are_mailed_once_with_their_pdf() {
    let sink = Sink::start(&[]);
    // Rule case 42: October issued, then November with a back-dated
    // termination, whose days no longer due are a regularisation credit
    // note on C3's October invoice.
    let base = common::fixtures().join("rules/_base");
    let case = common::fixtures().join("rules/42_backdated_termination_fee");
    let scratch = tempfile::tempdir().unwrap();
    let reference = scratch.path().join("reference");
    let source = scratch.path().join("ftp");
    common::copy_dir(&base.join("reference"), &reference);
    common::copy_dir(&case.join("reference"), &reference);
    common::copy_dir(&case.join("ftp1"), &source);
    let ws = common::Workspace::new(&source, &reference, &base.join("integrator.toml"));
    let config = ws.dir.path().join("mvnobill.toml");
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config.push_str(&format!(
        "\n[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    ));
    std::fs::write(&config, text_config).unwrap();

    ws.run(&["run", "--month", "2026-10"]).ok();
    let october = sink.messages().len();
    assert_eq!(october, 3, "October's invoices");
    // A gesture on C2's October invoice, dated in November.
    let rows = ws.query("SELECT invoice_number FROM invoices WHERE customer_id = 'C2'");
    let c2_invoice = common::text(&rows[0], "invoice_number");
    ws.run(&[
        "credit",
        "--invoice",
        &c2_invoice,
        "--amount-ht",
        "5.00",
        "--reason",
        "Geste commercial",
        "--date",
        "2026-11-20",
    ])
    .ok();
    common::copy_dir(&case.join("reference2"), &reference);
    let report = ws.run(&["--json", "run", "--month", "2026-11"]).ok().json();
    let november_invoices = report["bill"]["invoices"].as_u64().unwrap();
    assert_eq!(
        report["publish"]["mail"]["sent"],
        november_invoices + 2,
        "{}",
        report["publish"]
    );

    let notes: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| text(&m["subject"]).starts_with("Votre avoir"))
        .collect();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    let mut recipients = Vec::new();
    for mail in &notes {
        let subject = text(&mail["subject"]);
        let number = subject
            .split_whitespace()
            .find(|word| word.contains("-AV-"))
            .unwrap_or_else(|| panic!("no note number in {subject}"));
        assert!(
            text(&mail["from"]).contains("facturation@exemple-mobile.fr"),
            "{mail}"
        );
        let attachment = &mail["attachments"][0];
        assert_eq!(attachment["filename"], format!("{number}.pdf"));
        let body = mail["text"].to_string();
        assert!(body.contains("est disponible"), "{body}");
        recipients.push(mail["rcpt_tos"].to_string());
    }
    recipients.sort();
    assert!(recipients[0].contains("c2@example.org"), "{recipients:?}");
    assert!(recipients[1].contains("c3@example.org"), "{recipients:?}");

    // Again: none twice.
    let sent = sink.messages().len();
    let again = ws
        .run(&["--json", "publish", "--month", "2026-11"])
        .ok()
        .json();
    assert_eq!(again["mail"]["sent"], 0, "{again}");
    assert_eq!(again["mail"]["already_sent"], november_invoices + 2);
    assert_eq!(sink.messages().len(), sent);
}
