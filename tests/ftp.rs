//! Sync and publish over a real FTP/FTPS server: pyftpdlib
//! (`tests/python/ftp_server.py`), started by each test on 127.0.0.1 and a
//! free port, stopped when the test ends. The served tree is a copy of the
//! samples' FTP folder (with `Cartes SIM/`) plus an MVNE invoice under
//! `Factures/Intégrateur/`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{copy_dir, fixtures, python, walk, Output, Workspace};

/// The test server's password: it must never show anywhere.
pub(crate) const PASSWORD: &str = "Pw-7f3c9a1e-Zq";
pub(crate) const USER: &str = "mvno";
const MONTH: &str = "2026-10";
const INTEGRATOR_INVOICE: &str = "Facture_Origyne_202610.pdf";

/// A running test server, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    log: PathBuf,
    tls: Option<PathBuf>,
    _scratch: tempfile::TempDir,
}

#[derive(Default)]
pub(crate) struct ServerOptions {
    tls: bool,
    /// (path relative to the root, bytes before the abort, times)
    abort: Option<(&'static str, u64, u32)>,
    bad_names: bool,
    no_mlsd: bool,
    /// A file whose RETR is answered 550.
    refuse: Option<&'static str>,
}

impl Server {
    pub(crate) fn start(root: &Path, options: ServerOptions) -> Server {
        let python = python();
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("commands.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/ftp_server.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg("--root")
            .arg(root)
            .arg("--user")
            .arg(USER)
            .arg("--log")
            .arg(&log)
            .env("FTP_TEST_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(scratch.path().join("server.err")).unwrap(),
            ));
        let tls = options.tls.then(|| scratch.path().join("tls"));
        if let Some(dir) = &tls {
            command.arg("--tls").arg(dir);
        }
        if let Some((path, after, times)) = options.abort {
            command
                .arg("--abort")
                .arg(path)
                .arg("--abort-after")
                .arg(after.to_string())
                .arg("--abort-times")
                .arg(times.to_string());
        }
        if options.bad_names {
            command.arg("--bad-names");
        }
        if options.no_mlsd {
            command.arg("--no-mlsd");
        }
        if let Some(path) = options.refuse {
            command.arg("--refuse").arg(path);
        }
        let mut child = command.spawn().expect("start the FTP test server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = match line.trim().strip_prefix("PORT ") {
            Some(port) => port.parse().unwrap(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the FTP test server did not start: {}",
                    std::fs::read_to_string(scratch.path().join("server.err")).unwrap_or_default()
                );
            }
        };
        Server {
            child,
            port,
            log,
            tls,
            _scratch: scratch,
        }
    }

    /// The commands the server received so far.
    fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn ca_file(&self) -> PathBuf {
        self.tls.as_ref().expect("a TLS server").join("ca.pem")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of the samples' FTP tree, with an MVNE invoice in
/// `Factures/Intégrateur/`.
pub(crate) fn served_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("samples/ftp"), dir.path());
    assert!(dir.path().join("Cartes SIM").is_dir());
    let invoices = dir.path().join("Factures/Intégrateur");
    std::fs::create_dir_all(&invoices).unwrap();
    std::fs::write(invoices.join(INTEGRATOR_INVOICE), b"%PDF-1.7 Origyne\n").unwrap();
    dir
}

/// Files that sync lands from a tree.
/// The files `sync` fetches from a tree: those it lands and the MVNE's own
/// invoices (`Factures/Intégrateur/`, kept in the raw zone).
fn fetched_files(tree: &Path) -> u64 {
    mvnobill::mvne::raw::FOLDERS
        .iter()
        .filter_map(|f| std::fs::read_dir(tree.join(f)).ok())
        .map(|entries| entries.count() as u64)
        .sum()
}

/// A workspace whose source is `url`, with extra `[source]` lines.
fn ftp_workspace(url: &str, source_extra: &str) -> Workspace {
    let samples = fixtures().join("samples");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[source]\nurl = \"{url}\"\n{source_extra}\n[reference]\ndir = \"{}\"\nintegrator = \"{}\"\n\n[lake]\nurl = \"file://{}/lake\"\n",
        samples.join("reference").display(),
        samples.join("integrator.toml").display(),
        dir.path().display()
    );
    std::fs::write(dir.path().join("mvnobill.toml"), config).unwrap();
    Workspace { dir }
}

/// Quick retries, so that the failure tests end within seconds.
const QUICK: &str = "retries = 1\nbackoff_ms = 100\ntimeout_s = 5\n";

/// Runs the binary with the FTP credentials of `env` (and no others).
fn run(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(crate::common::binary())
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("MVNOBILL_FTP_USER")
        .env_remove("MVNOBILL_FTP_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("run mvnobill");
    let output = Output::from(out);
    assert!(
        !output.stdout.contains(PASSWORD) && !output.stderr.contains(PASSWORD),
        "the password is in the output of {args:?}"
    );
    output
}

const CREDENTIALS: &[(&str, &str)] = &[
    ("MVNOBILL_FTP_USER", USER),
    ("MVNOBILL_FTP_PASSWORD", PASSWORD),
];

/// One line on stderr, exit 1.
fn one_line_error(out: &Output) -> String {
    assert_eq!(
        out.status, 1,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr.to_string()
}

/// No byte of the lake (datasets, raw zone, state folder with the ledger)
/// holds the password.
fn assert_no_secret_in(dir: &Path) {
    for file in walk(dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the password is in {}",
            file.display()
        );
    }
}

fn invoices(ws: &Workspace) -> Vec<serde_json::Map<String, serde_json::Value>> {
    ws.query("SELECT invoice_number, customer_id, total_ht, vat, total_ttc FROM invoices ORDER BY invoice_number")
}

/// Relative path → bytes of every file below a folder.
fn tree_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let key = p.strip_prefix(dir).unwrap().display().to_string();
            (key, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn a_month_from_the_ftp_server_bills_like_the_local_folder_and_resyncs_nothing() {
    let tree = served_tree();
    let server = Server::start(tree.path(), ServerOptions::default());
    let url = format!("ftp://127.0.0.1:{}/", server.port);
    let ftp = ftp_workspace(&url, QUICK);
    let report = run(
        &ftp,
        &["--json", "run", "--month", MONTH, "--html-only"],
        CREDENTIALS,
    )
    .ok()
    .json();
    let files = fetched_files(tree.path());
    assert_eq!(report["sync"]["files_fetched"], files, "{report}");
    assert_eq!(report["sync"]["source"], url.as_str());
    assert_eq!(report["sync"]["files_refused"], 0);

    let samples = fixtures().join("samples");
    let local = Workspace::new(
        tree.path(),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    local
        .run(&["--json", "run", "--month", MONTH, "--html-only"])
        .ok();
    let from_ftp = invoices(&ftp);
    assert!(!from_ftp.is_empty());
    assert_eq!(from_ftp, invoices(&local), "invoices to the cent");
    // The same raw zone, key for key and byte for byte.
    assert_eq!(
        tree_bytes(&ftp.lake().join("raw")),
        tree_bytes(&local.lake().join("raw"))
    );
    let sims = ftp.query("SELECT COUNT(*) AS n FROM sim_cards");
    assert_ne!(sims[0]["n"], "0", "Cartes SIM/ was fetched and landed");

    // A second sync downloads nothing.
    let retrieved_before = server
        .commands()
        .iter()
        .filter(|c| c.starts_with("RETR"))
        .count();
    let again = run(&ftp, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(again["files_fetched"], 0);
    assert_eq!(again["already_fetched"], files);
    let retrieved_after = server
        .commands()
        .iter()
        .filter(|c| c.starts_with("RETR"))
        .count();
    assert_eq!(
        retrieved_before, retrieved_after,
        "nothing downloaded again"
    );
    assert!(
        server.commands().iter().any(|c| c == "PASV"),
        "passive mode"
    );

    // Names with spaces and accents, as they are: the MVNE's own invoices.
    let settings =
        mvnobill::settings::Settings::load(&ftp.dir.path().join("mvnobill.toml")).unwrap();
    let Some(mvnobill::settings::Source::Ftp(ftp_settings)) = &settings.source else {
        panic!("an FTP source");
    };
    let mut client = mvnobill::mvne::ftp::FtpClient::new(
        ftp_settings,
        mvnobill::mvne::ftp::Credentials {
            user: USER.into(),
            password: mvnobill::mvne::ftp::Secret::new(PASSWORD.into()),
        },
    )
    .unwrap();
    let listed = client.list("Factures/Intégrateur").unwrap().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, INTEGRATOR_INVOICE);
    assert_eq!(
        client
            .retrieve(&format!("Factures/Intégrateur/{INTEGRATOR_INVOICE}"))
            .unwrap(),
        b"%PDF-1.7 Origyne\n"
    );
    assert!(client.list("Cartes SIM").unwrap().unwrap().len() == 1);
    assert_eq!(client.list("No such folder").unwrap(), None);
    assert!(!format!("{client:?}").contains(PASSWORD));
    client.quit();

    assert_no_secret_in(&ftp.lake());
}

#[test]
fn ftps_with_the_servers_ca_syncs_publishes_and_verifies_by_default() {
    let tree = served_tree();
    let server = Server::start(
        tree.path(),
        ServerOptions {
            tls: true,
            ..Default::default()
        },
    );
    let url = format!("ftps://{USER}@127.0.0.1:{}/", server.port);
    let (_secrets, password_file) = password_file();
    let ws = ftp_workspace(
        &url,
        &format!(
            "{QUICK}ca_file = \"{}\"\npassword_file = \"{}\"\n",
            server.ca_file().display(),
            password_file.display()
        ),
    );
    let first = run(
        &ws,
        &["--json", "run", "--month", MONTH, "--html-only"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(first["sync"]["files_fetched"], fetched_files(tree.path()));
    let again = run(&ws, &["--json", "sync"], &[]).ok().json();
    assert_eq!(again["files_fetched"], 0);
    let commands = server.commands();
    assert_eq!(
        commands[0], "AUTH TLS",
        "TLS before the login: {commands:?}"
    );
    assert!(commands.iter().any(|c| c == "PROT P"), "{commands:?}");
    // The raw copies are the served bytes.
    assert_eq!(
        std::fs::read(ws.lake().join("raw/BilledCDRs/BilledCDRs_202610.csv")).unwrap(),
        std::fs::read(tree.path().join("BilledCDRs/BilledCDRs_202610.csv")).unwrap()
    );
    // Uploads over TLS too.
    let pdfs = fake_pdfs(&ws);
    let report = publish(&ws, MONTH).unwrap();
    assert_eq!(report.uploaded, pdfs.len() as u64);
    for (name, bytes) in &pdfs {
        let published = tree.path().join("Factures/Clients/2026-10").join(name);
        assert_eq!(&std::fs::read(published).unwrap(), bytes);
    }
    assert_eq!(
        publish(&ws, MONTH).unwrap().already_there,
        pdfs.len() as u64
    );
    assert_no_secret_in(&ws.lake());

    // Without the CA, the self-made certificate is refused (the default is
    // to verify); insecure_tls accepts it.
    let url = format!("ftps://127.0.0.1:{}/", server.port);
    let unverified = ftp_workspace(&url, QUICK);
    let error = one_line_error(&run(&unverified, &["sync"], CREDENTIALS));
    assert!(
        error.contains("TLS") && error.contains("certificate") && error.contains("ca_file"),
        "{error}"
    );
    let insecure = ftp_workspace(&url, &format!("{QUICK}insecure_tls = true\n"));
    let report = run(&insecure, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(report["files_fetched"], fetched_files(tree.path()));
}

#[test]
fn a_server_without_mlsd_is_listed_with_nlst_and_size() {
    let tree = served_tree();
    let server = Server::start(
        tree.path(),
        ServerOptions {
            no_mlsd: true,
            ..Default::default()
        },
    );
    let ws = ftp_workspace(&format!("ftp://127.0.0.1:{}/", server.port), QUICK);
    let first = run(&ws, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(first["files_fetched"], fetched_files(tree.path()));
    // Without modification times, files are downloaded again, and known by
    // their checksum.
    let again = run(&ws, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(again["files_fetched"], 0);
    assert_eq!(again["already_fetched"], fetched_files(tree.path()));
    let commands = server.commands();
    assert!(
        commands.iter().any(|c| c.starts_with("NLST")),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c.starts_with("SIZE")),
        "{commands:?}"
    );
}

#[test]
fn a_download_cut_mid_file_is_never_landed_and_the_next_sync_resumes_it() {
    const CUT: &str = "RatedCDRs/RatedCDRs_20261003_104200.csv";
    let tree = served_tree();
    let original = std::fs::read(tree.path().join(CUT)).unwrap();
    assert!(original.len() > 1000);
    let server = Server::start(
        tree.path(),
        ServerOptions {
            abort: Some((CUT, 700, 1)),
            ..Default::default()
        },
    );
    let url = format!("ftp://127.0.0.1:{}/", server.port);
    // No retry: the cut fails this sync.
    let ws = ftp_workspace(&url, "retries = 0\ntimeout_s = 5\n");
    let error = one_line_error(&run(&ws, &["sync"], CREDENTIALS));
    assert!(
        error.contains("RatedCDRs_20261003_104200.csv") && error.contains("426"),
        "{error}"
    );
    // Nothing of it in the ledger nor the raw zone; the partial download
    // waits in the private state folder.
    let state = ws.lake().join("_state");
    let ledger = mvnobill::core::ledger::Ledger::open(&state).unwrap();
    let fetched = ledger.unlanded_files().unwrap();
    assert!(!fetched.is_empty(), "the files before it are fetched");
    assert!(fetched
        .iter()
        .all(|f| f.name != "RatedCDRs_20261003_104200.csv"));
    assert!(!ws.lake().join("raw").join(CUT).exists());
    let partials = walk(&state.join("incoming"));
    assert_eq!(partials.len(), 1, "{partials:?}");
    assert_eq!(std::fs::read(&partials[0]).unwrap(), original[..700]);

    // The next sync goes on from byte 700 and lands the whole file.
    let report = run(&ws, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(report["resumed"][0], CUT, "{report}");
    assert!(server.commands().iter().any(|c| c == "REST 700"));
    assert_eq!(
        std::fs::read(ws.lake().join("raw").join(CUT)).unwrap(),
        original
    );
    assert!(walk(&state.join("incoming")).is_empty());
    let fetched = ledger.unlanded_files().unwrap();
    assert_eq!(fetched.len() as u64, fetched_files(tree.path()));
    let cut = fetched
        .iter()
        .find(|f| f.name == "RatedCDRs_20261003_104200.csv")
        .unwrap();
    assert_eq!(cut.size, original.len() as u64);
    drop(server);

    // With retries, one sync gets through a cut on its own.
    let server = Server::start(
        tree.path(),
        ServerOptions {
            abort: Some((CUT, 500, 1)),
            ..Default::default()
        },
    );
    let ws = ftp_workspace(&format!("ftp://127.0.0.1:{}/", server.port), QUICK);
    let report = run(&ws, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(report["files_fetched"], fetched_files(tree.path()));
    assert_eq!(report["resumed"][0], CUT);
    assert_eq!(
        std::fs::read(ws.lake().join("raw").join(CUT)).unwrap(),
        original
    );
}

#[test]
fn credentials_mistakes_are_one_line_without_the_password() {
    let tree = served_tree();
    let server = Server::start(tree.path(), ServerOptions::default());
    let url = format!("ftp://127.0.0.1:{}/", server.port);
    let ws = ftp_workspace(&url, QUICK);
    let wrong = "Wrong-Pw-31415";
    let out = run(
        &ws,
        &["sync"],
        &[
            ("MVNOBILL_FTP_USER", USER),
            ("MVNOBILL_FTP_PASSWORD", wrong),
        ],
    );
    let error = one_line_error(&out);
    assert!(error.contains("login refused for user 'mvno'"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    assert!(!ws.lake().join("raw").exists());

    // No password at all.
    let error = one_line_error(&run(&ws, &["sync"], &[("MVNOBILL_FTP_USER", USER)]));
    assert!(error.contains("MVNOBILL_FTP_PASSWORD"), "{error}");

    // A password in the URL is refused, and not repeated.
    let bad = ftp_workspace(
        &format!("ftp://{USER}:{PASSWORD}@127.0.0.1:{}/", server.port),
        QUICK,
    );
    let error = one_line_error(&run(&bad, &["sync"], &[]));
    assert!(error.contains("password in the URL is refused"), "{error}");

    // A password file: refused while others may read it, used once it is
    // owner-only; the user comes from the URL.
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("ftp-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ws = ftp_workspace(
        &format!("ftp://{USER}@127.0.0.1:{}/", server.port),
        &format!("{QUICK}password_file = \"{}\"\n", file.display()),
    );
    let error = one_line_error(&run(&ws, &["sync"], &[]));
    assert!(
        error.contains("mode 0644") && error.contains("chmod 600"),
        "{error}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = run(&ws, &["--json", "sync"], &[]).ok().json();
    assert_eq!(report["files_fetched"], fetched_files(tree.path()));
    assert_no_secret_in(&ws.lake());
}

#[test]
fn a_file_redelivered_with_other_bytes_is_a_new_version() {
    const FILE: &str = "RatedCDRs/RatedCDRs_20261002_122100.csv";
    let tree = served_tree();
    let server = Server::start(tree.path(), ServerOptions::default());
    let ws = ftp_workspace(&format!("ftp://127.0.0.1:{}/", server.port), QUICK);
    run(&ws, &["--json", "sync"], CREDENTIALS).ok();
    // The MVNE corrects the file under the same name.
    let path = tree.path().join(FILE);
    let mut corrected = std::fs::read(&path).unwrap();
    corrected.extend_from_slice(
        b"R-CORRECTION;33632260020;;SMS;02/10/2026 12:00:00;33612345678;;;1;20801;0,01\n",
    );
    std::fs::write(&path, &corrected).unwrap();
    let report = run(&ws, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(report["files_fetched"], 1, "{report}");
    assert_eq!(report["new_versions"][0], FILE);
    assert_eq!(
        std::fs::read(
            ws.lake()
                .join("raw/RatedCDRs/RatedCDRs_20261002_122100.v2.csv")
        )
        .unwrap(),
        corrected
    );
    let text = run(&ws, &["sync"], CREDENTIALS).ok().stdout;
    assert!(text.contains("0 fetched"), "{text}");
}

#[test]
fn an_unreachable_server_is_one_line_after_the_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let ws = ftp_workspace(
        &format!("ftp://127.0.0.1:{port}/"),
        "retries = 2\nbackoff_ms = 100\ntimeout_s = 2\n",
    );
    let started = Instant::now();
    let error = one_line_error(&run(&ws, &["sync"], CREDENTIALS));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        error.contains(&format!(
            "ftp://127.0.0.1:{port}/: cannot connect after 3 attempt(s)"
        )),
        "{error}"
    );
}

#[test]
fn a_server_that_stalls_is_one_line_after_the_timeouts() {
    // Accepts the connection and never says a word: each attempt waits
    // `timeout_s`, then the sync gives up in one line.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let ws = ftp_workspace(
        &format!("ftp://127.0.0.1:{port}/"),
        "retries = 1\nbackoff_ms = 100\ntimeout_s = 1\n",
    );
    let started = Instant::now();
    let out = run(&ws, &["sync"], CREDENTIALS);
    let error = one_line_error(&out);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        error.starts_with(&format!("error: ftp://127.0.0.1:{port}/: ")),
        "{error}"
    );
    assert!(error.contains("2 attempt(s)"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
}

#[test]
fn a_file_the_server_refuses_fails_the_sync_after_fetching_the_others() {
    const REFUSED: &str = "AccountStatus/AccountStatus_20261016_11.csv";
    let tree = served_tree();
    let server = Server::start(
        tree.path(),
        ServerOptions {
            refuse: Some(REFUSED),
            ..Default::default()
        },
    );
    let ws = ftp_workspace(&format!("ftp://127.0.0.1:{}/", server.port), QUICK);
    let error = one_line_error(&run(&ws, &["sync"], CREDENTIALS));
    let others = fetched_files(tree.path()) - 1;
    assert!(
        error.contains(&format!(
            "1 file(s) refused by the server, not fetched (first: {REFUSED}: server answered 550 Permission denied.); {others} other(s) fetched"
        )),
        "{error}"
    );
    let ledger = mvnobill::core::ledger::Ledger::open(&ws.lake().join("_state")).unwrap();
    assert_eq!(ledger.unlanded_files().unwrap().len() as u64, others);
    // A 5xx is not retried.
    let retrieved = server
        .commands()
        .iter()
        .filter(|c| c.starts_with("RETR") && c.ends_with("AccountStatus_20261016_11.csv"))
        .count();
    assert_eq!(retrieved, 1);
}

#[test]
fn unsafe_remote_names_are_refused_and_reported() {
    let tree = served_tree();
    let server = Server::start(
        tree.path(),
        ServerOptions {
            bad_names: true,
            ..Default::default()
        },
    );
    let ws = ftp_workspace(&format!("ftp://127.0.0.1:{}/", server.port), QUICK);
    let report = run(&ws, &["--json", "sync"], CREDENTIALS).ok().json();
    assert_eq!(report["files_refused"], 4, "{report}");
    assert_eq!(report["files_fetched"], fetched_files(tree.path()));
    let refused: Vec<&str> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(refused.contains(&"RatedCDRs/../../etc/passwd: a path separator in the name"));
    assert!(refused.contains(&"RatedCDRs/a/b.csv: a path separator in the name"));
    assert!(refused.contains(&"RatedCDRs/bell\\u{7}.csv: a control character in the name"));
    assert!(refused.contains(&"RatedCDRs/..: '..' in the name"));
    let commands = server.commands();
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("RETR") && (c.contains("..") || c.contains("bell"))),
        "{commands:?}"
    );
}

/// Writes a fake PDF per invoice of the month into the lake, as `render`
/// would.
fn fake_pdfs(ws: &Workspace) -> Vec<(String, Vec<u8>)> {
    let dir = ws.lake().join(format!("documents/{MONTH}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut pdfs = Vec::new();
    for row in invoices(ws).iter().take(5) {
        let number = row["invoice_number"].as_str().unwrap().to_string();
        let bytes = format!("%PDF-1.7 fake invoice {number}\n")
            .repeat(50)
            .into_bytes();
        std::fs::write(dir.join(format!("{number}.pdf")), &bytes).unwrap();
        pdfs.push((format!("{number}.pdf"), bytes));
    }
    pdfs
}

/// An owner-only file holding the password (the library, called directly
/// by the publish tests, reads no environment).
fn password_file() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ftp-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, file)
}

fn publish(
    ws: &Workspace,
    month: &str,
) -> Result<mvnobill::stages::publish::PublishReport, String> {
    let stage = mvnobill::stages::Context::open(&ws.dir.path().join("mvnobill.toml")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(mvnobill::stages::publish::publish_documents(
            &stage,
            month.parse().unwrap(),
        ))
        .map_err(|e| e.to_string())
}

#[test]
fn publish_uploads_each_pdf_atomically_and_once() {
    let tree = served_tree();
    let server = Server::start(tree.path(), ServerOptions::default());
    let url = format!("ftp://{USER}@127.0.0.1:{}/", server.port);
    let (_secrets, file) = password_file();
    let ws = ftp_workspace(
        &url,
        &format!("{QUICK}password_file = \"{}\"\n", file.display()),
    );
    run(
        &ws,
        &["--json", "run", "--month", MONTH, "--html-only"],
        &[],
    )
    .ok();

    // Not billed, or no PDF yet: one line saying what to run.
    let error = publish(&ws, "2026-11").unwrap_err();
    assert!(
        error.contains("run `mvnobill bill --month 2026-11`"),
        "{error}"
    );
    let error = publish(&ws, MONTH).unwrap_err();
    assert!(
        error.contains("run `mvnobill render --month 2026-10`"),
        "{error}"
    );

    let pdfs = fake_pdfs(&ws);
    let report = publish(&ws, MONTH).unwrap();
    assert_eq!(report.documents, pdfs.len() as u64);
    assert_eq!(report.uploaded, pdfs.len() as u64);
    assert_eq!(
        report.folder,
        format!("ftp://127.0.0.1:{}/Factures/Clients/2026-10/", server.port)
    );
    let published = tree.path().join("Factures/Clients/2026-10");
    let on_server = |name: &str| std::fs::read(published.join(name)).unwrap();
    for (name, bytes) in &pdfs {
        assert_eq!(&on_server(name), bytes, "{name}");
    }
    let names: Vec<String> = std::fs::read_dir(&published)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), pdfs.len(), "no .part left: {names:?}");
    assert!(server
        .commands()
        .iter()
        .any(|c| c.starts_with("RNTO") && c.ends_with(&pdfs[0].0)));

    // Again: nothing uploaded.
    let stored = server
        .commands()
        .iter()
        .filter(|c| c.starts_with("STOR"))
        .count();
    let again = publish(&ws, MONTH).unwrap();
    assert_eq!(
        (again.uploaded, again.already_there),
        (0, pdfs.len() as u64)
    );
    assert_eq!(
        server
            .commands()
            .iter()
            .filter(|c| c.starts_with("STOR"))
            .count(),
        stored
    );

    // A remote copy lost, another altered: both put back from the lake.
    std::fs::remove_file(published.join(&pdfs[0].0)).unwrap();
    std::fs::write(published.join(&pdfs[1].0), b"tampered").unwrap();
    let repaired = publish(&ws, MONTH).unwrap();
    assert_eq!((repaired.uploaded, repaired.replaced), (1, 1));
    assert_eq!(on_server(&pdfs[0].0), pdfs[0].1);
    assert_eq!(on_server(&pdfs[1].0), pdfs[1].1);
    assert_no_secret_in(&ws.lake());

    // A local source: the same folder of the local tree.
    let samples = fixtures().join("samples");
    let local_tree = served_tree();
    let local = Workspace::new(
        local_tree.path(),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    local
        .run(&["--json", "run", "--month", MONTH, "--html-only"])
        .ok();
    let pdfs = fake_pdfs(&local);
    let report = publish(&local, MONTH).unwrap();
    assert_eq!(report.uploaded, pdfs.len() as u64);
    let folder = local_tree.path().join("Factures/Clients/2026-10");
    assert_eq!(report.folder, format!("file://{}/", folder.display()));
    for (name, bytes) in &pdfs {
        assert_eq!(&std::fs::read(folder.join(name)).unwrap(), bytes);
    }
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), pdfs.len());
    let again = publish(&local, MONTH).unwrap();
    assert_eq!(again.already_there, pdfs.len() as u64);
}
