//! Secrets stay secret: a month run command by command against a real FTP
//! server (pyftpdlib, with a password) and a real SMTP relay (aiosmtpd, with
//! a login), with the SIM orders' PUK codes, at `RUST_LOG=trace`. Then every
//! stdout and stderr, every file of the workspace (lake, raw zone, ledger,
//! documents, the text of each PDF), every dataset read back through
//! `mvnobill query`, every file uploaded to the FTP server and every mail
//! received is searched for the FTP password, the SMTP password and each
//! PUK code. The codes may be in one place only: the owner-only private
//! stores of the state folder (`secrets/`, `sim-orders/`), and the desk's
//! `sim puk` answer on stdout, which is the feature.

use std::process::Command;

use crate::common::{fixtures, text, walk, Output, Workspace};
use crate::documents::poppler;
use crate::ftp::{served_tree, Server, ServerOptions};
use crate::mail::Sink;

/// The FTP test server's login (tests/ftp.rs).
use crate::ftp::{PASSWORD as FTP_PASSWORD, USER as FTP_USER};
const SMTP_PASSWORD: &str = "Smtp-5b8a03f6-Secret";
const MONTH: &str = "2026-10";

/// The PUK codes of the samples' SIM order.
fn puks() -> Vec<String> {
    let sim =
        std::fs::read_to_string(fixtures().join("samples/ftp/Cartes SIM/SIM_CMD2026.csv")).unwrap();
    let codes: Vec<String> = sim
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split(';')
                .skip(4)
                .take(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(codes.len() > 10 && codes.iter().all(|c| c.len() == 8));
    codes
}

/// Where a secret was found, if anywhere.
fn find<'a>(haystack: &[u8], secrets: &'a [String]) -> Option<&'a str> {
    secrets
        .iter()
        .find(|s| haystack.windows(s.len()).any(|w| w == s.as_bytes()))
        .map(String::as_str)
}

fn run(ws: &Workspace, args: &[&str]) -> Output {
    let out = Command::new(crate::common::binary())
        .args(args)
        .current_dir(ws.dir.path())
        .env("RUST_LOG", "trace")
        .env("MVNOBILL_FTP_USER", FTP_USER)
        .env("MVNOBILL_FTP_PASSWORD", FTP_PASSWORD)
        .env("MVNOBILL_SMTP_PASSWORD", SMTP_PASSWORD)
        .output()
        .expect("run mvnobill");
    Output::from(out)
}

#[test]
fn no_password_and_no_puk_code_anywhere_but_the_private_stores() {
    let tree = served_tree();
    let server = Server::start(tree.path(), ServerOptions::default());
    let sink = Sink::start(&["--user", "facturation", "--password", SMTP_PASSWORD]);
    let samples = fixtures().join("samples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mvnobill.toml"),
        format!(
            "[source]\nurl = \"ftp://127.0.0.1:{}/\"\nretries = 1\nbackoff_ms = 100\ntimeout_s = 10\n\n[reference]\ndir = \"{}\"\nintegrator = \"{}\"\n\n[lake]\nurl = \"file://{}/lake\"\n\n[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"facturation\"\n",
            server.port,
            samples.join("reference").display(),
            samples.join("integrator.toml").display(),
            dir.path().display(),
            sink.port,
        ),
    )
    .unwrap();
    let ws = Workspace { dir };
    let passwords = vec![FTP_PASSWORD.to_string(), SMTP_PASSWORD.to_string()];
    let puks = puks();
    let all: Vec<String> = passwords.iter().chain(&puks).cloned().collect();

    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut step = |args: &[&str]| {
        let out = run(&ws, args);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
        let out = out.ok();
        outputs.push((args.join(" "), out));
    };
    for args in [
        &["sync"][..],
        &["land"],
        &["rate", "--month", MONTH],
        &["bill", "--month", MONTH],
        &["finance", "--month", MONTH],
        &["render", "--month", MONTH],
        &["sepa", "--month", MONTH],
        &["publish", "--month", MONTH],
        &["assure", "--month", MONTH],
        &["--json", "run", "--month", MONTH],
        &[
            "credit",
            "--invoice",
            "EXM-2026-000001",
            "--reason",
            "geste commercial",
            "--amount-ht",
            "5",
            "--html-only",
        ],
        &["whatif", "--month", MONTH],
        &["check"],
        &["doctor"],
        &["duration", "1h02m05s"],
    ] {
        step(args);
    }
    for (dataset, _) in mvnobill::core::lake::datasets::ALL {
        step(&["--json", "query", &format!("SELECT * FROM {dataset}")][..]);
    }
    for table in ["customers", "subscriptions", "plans"] {
        step(
            &[
                "query",
                "--format",
                "csv",
                &format!("SELECT * FROM {table}"),
            ][..],
        );
    }
    // The desk's look-up shows the codes on stdout (the feature), never in
    // its log nor in the ledger.
    let puk = run(&ws, &["sim", "puk", "0632260020"]).ok();
    assert!(puk.stdout.contains(&puks[0]), "{}", puk.stdout);
    assert_eq!(find(puk.stderr.as_bytes(), &all), None, "sim puk's log");

    // The FTP and the SMTP logins did happen, with these passwords.
    assert!(!sink.messages().is_empty());
    assert!(sink.messages().iter().all(|m| m["authenticated"] == true));
    let published = tree.path().join(format!("Factures/Clients/{MONTH}"));
    assert!(std::fs::read_dir(&published).unwrap().count() > 20);

    // Every output, at trace level.
    for (command, out) in &outputs {
        for (what, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert_eq!(
                find(stream.as_bytes(), &all),
                None,
                "a secret in the {what} of `mvnobill {command}`"
            );
        }
    }
    let logged: usize = outputs.iter().map(|(_, o)| o.stderr.lines().count()).sum();
    eprintln!(
        "{logged} lines logged at trace level by {} commands",
        outputs.len()
    );
    assert!(logged > 0, "the trace logs said nothing");

    // Every file of the workspace: lake, raw zone, documents, ledger. The
    // PUK codes are allowed in the private stores only, which no one but
    // the owner can read.
    let state = ws.lake().join("_state");
    let private = [state.join("secrets"), state.join("sim-orders")];
    let mut files = 0;
    for file in walk(ws.dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        let in_private = private.iter().any(|p| file.starts_with(p));
        let secrets = if in_private { &passwords } else { &all };
        assert_eq!(
            find(&bytes, secrets),
            None,
            "a secret in {}",
            file.display()
        );
        if file.starts_with(ws.lake().join("documents"))
            && file.extension().is_some_and(|e| e == "pdf")
        {
            let page = poppler("pdftotext", &[], &file);
            assert_eq!(find(page.as_bytes(), &all), None, "{}", file.display());
        }
        files += 1;
    }
    assert!(files > 100, "{files} files searched");
    // The search finds what is there: the private store has the codes.
    let store = std::fs::read(state.join("secrets/puk.sqlite")).unwrap();
    assert_eq!(find(&store, &puks[..1]), Some(puks[0].as_str()));
    use std::os::unix::fs::PermissionsExt;
    for folder in &private {
        assert!(folder.is_dir(), "{}", folder.display());
        assert_eq!(
            std::fs::metadata(folder).unwrap().permissions().mode() & 0o077,
            0
        );
    }
    // What left the machine: the files uploaded to the FTP server and the
    // mails, with their attachments decoded.
    for file in walk(&published) {
        assert_eq!(
            find(&std::fs::read(&file).unwrap(), &all),
            None,
            "{}",
            file.display()
        );
    }
    for file in sink.files("eml").into_iter().chain(sink.files("json")) {
        assert_eq!(
            find(&std::fs::read(&file).unwrap(), &all),
            None,
            "{}",
            file.display()
        );
    }
    for message in sink.messages() {
        for attachment in message["attachments"].as_array().unwrap() {
            use base64::Engine;
            let pdf = base64::engine::general_purpose::STANDARD
                .decode(text(attachment.as_object().unwrap(), "data"))
                .unwrap();
            assert_eq!(find(&pdf, &all), None);
        }
    }
}
