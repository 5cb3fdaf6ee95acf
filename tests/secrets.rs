//! Secrets stay secret: a month run command by command against a real FTP
//! server (pyftpdlib, with a password) and a real SMTP relay (aiosmtpd, with
//! a login), with the SIM orders' PUK codes, at `RUST_LOG=trace`. Then every
//! stdout and stderr, every file of the workspace (lake, raw zone, ledger,
//! documents, the text of each PDF), every dataset read back through
//! `mvnobill query`, every file uploaded to the FTP server and every mail
//! received is searched for the FTP password, the SMTP password and each
//! PUK code, as they are and encoded: base64 (standard and URL-safe
//! alphabets, with and without padding, and the part of the encoding that
//! is the secret's own wherever it starts in a longer base64 text) and
//! percent-encoded. The codes may be in one place only: the owner-only private
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

/// A secret and the forms it could take in an output, each with its name.
#[derive(Clone)]
struct Secret {
    name: String,
    forms: Vec<(String, memchr::memmem::Finder<'static>)>,
}

impl Secret {
    fn new(name: &str, value: &str) -> Secret {
        let mut forms = vec![("as is".to_string(), value.as_bytes().to_vec())];
        forms.extend(base64_forms(value.as_bytes()));
        forms.extend(percent_forms(value.as_bytes()));
        let mut seen = std::collections::BTreeSet::new();
        forms.retain(|(_, bytes)| seen.insert(bytes.clone()));
        assert!(forms.iter().all(|(_, bytes)| bytes.len() >= 8));
        Secret {
            name: name.to_string(),
            forms: forms
                .into_iter()
                .map(|(how, bytes)| (how, memchr::memmem::Finder::new(&bytes).into_owned()))
                .collect(),
        }
    }
}

/// The secret in base64: whole, with and without padding, in the standard
/// and the URL-safe alphabets; and, for each of the three places it can
/// start at in a 3-byte group (0, 1 or 2 bytes after a group's start), the
/// characters of the encoding that come from the secret's bits alone, which
/// are in any longer base64 text that holds it there, whatever precedes or
/// follows it.
fn base64_forms(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let mut forms = Vec::new();
    for (alphabet, padded, bare) in [
        ("base64", &STANDARD, &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE, &URL_SAFE_NO_PAD),
    ] {
        forms.push((
            format!("{alphabet}, padded"),
            padded.encode(secret).into_bytes(),
        ));
        forms.push((
            format!("{alphabet}, unpadded"),
            bare.encode(secret).into_bytes(),
        ));
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(secret);
            let encoded = bare.encode(&shifted).into_bytes();
            // A character is the secret's own when its 6 bits are all the
            // secret's: from the first after the offset's bits, to the last
            // whole one before the end of the secret's bits.
            let first = (offset * 8).div_ceil(6);
            let last = shifted.len() * 8 / 6;
            forms.push((
                format!("{alphabet} at offset {offset}, inside a longer text"),
                encoded[first..last].to_vec(),
            ));
        }
    }
    forms
}

/// The secret percent-encoded (RFC 3986): the reserved bytes only, or every
/// byte, in upper and lower case hexadecimal; and as a form value (a space
/// as `+`).
fn percent_forms(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let encode = |every: bool, lower: bool, plus: bool| -> Vec<u8> {
        let mut out = String::new();
        for &b in secret {
            if plus && b == b' ' {
                out.push('+');
            } else if !every && unreserved(b) {
                out.push(b as char);
            } else if lower {
                out.push_str(&format!("%{b:02x}"));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out.into_bytes()
    };
    vec![
        ("percent-encoded".to_string(), encode(false, false, false)),
        (
            "percent-encoded, lower case".to_string(),
            encode(false, true, false),
        ),
        (
            "percent-encoded, every byte".to_string(),
            encode(true, false, false),
        ),
        (
            "percent-encoded, every byte, lower case".to_string(),
            encode(true, true, false),
        ),
        ("form-encoded".to_string(), encode(false, false, true)),
    ]
}

/// Where a secret was found, if anywhere: its name and in what form.
fn find(haystack: &[u8], secrets: &[Secret]) -> Option<String> {
    secrets.iter().find_map(|secret| {
        secret
            .forms
            .iter()
            .find(|(_, form)| form.find(haystack).is_some())
            .map(|(how, _)| format!("{} ({how})", secret.name))
    })
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
    let passwords = vec![
        Secret::new("the FTP password", FTP_PASSWORD),
        Secret::new("the SMTP password", SMTP_PASSWORD),
    ];
    let puks = puks();
    let puk_secrets: Vec<Secret> = puks
        .iter()
        .map(|code| Secret::new(&format!("the PUK code {code}"), code))
        .collect();
    let all: Vec<Secret> = passwords.iter().chain(&puk_secrets).cloned().collect();

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
        // Reminders through the relay that wants the password; the aged
        // balance that `query` reads below.
        &["dunning", "--date", "2026-12-31"],
        &["receivables", "--date", "2026-12-31"],
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
    assert_eq!(
        find(&store, &puk_secrets[..1]),
        Some(format!("the PUK code {} (as is)", puks[0]))
    );
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

/// The search finds each secret in each form inside a longer text: base64
/// of the secret preceded by 0 to 5 bytes and followed by more, in both
/// alphabets, padded or not; and percent-encoded inside a URL.
#[test]
fn secrets_are_found_encoded_inside_longer_outputs() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let value = "Pw-7f3c?9a1e/Zq~ é";
    let secrets = [Secret::new("the secret", value)];
    for before in 0..6 {
        for after in 0..4 {
            let mut bytes = vec![0xfbu8; before];
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend(std::iter::repeat_n(0xffu8, after));
            for (alphabet, encoded) in [
                ("base64", STANDARD.encode(&bytes)),
                ("base64url", URL_SAFE_NO_PAD.encode(&bytes)),
            ] {
                let text = format!("Authorization: Basic {encoded}\n");
                let found = find(text.as_bytes(), &secrets)
                    .unwrap_or_else(|| panic!("{alphabet}, {before} bytes before: {text}"));
                assert!(found.starts_with("the secret (base64"), "{found}");
            }
        }
    }
    let url = "ftp://mvno:Pw-7f3c%3F9a1e%2FZq~%20%C3%A9@127.0.0.1/";
    assert_eq!(
        find(url.as_bytes(), &secrets),
        Some("the secret (percent-encoded)".to_string())
    );
    let lower = url
        .replace("%3F", "%3f")
        .replace("%2F", "%2f")
        .replace("%C3%A9", "%c3%a9");
    assert!(find(lower.as_bytes(), &secrets).is_some(), "{lower}");
    // A PUK code, all digits: every byte encoded.
    let puk = [Secret::new("a PUK code", "12345678")];
    let every = "?puk=%31%32%33%34%35%36%37%38&x=1";
    assert_eq!(
        find(every.as_bytes(), &puk),
        Some("a PUK code (percent-encoded, every byte)".to_string())
    );
    // Nothing found where there is nothing.
    assert_eq!(
        find(b"ftp://mvno:Pw-7f3c@127.0.0.1/ MTIzNDU2Nw==", &puk),
        None
    );
}
