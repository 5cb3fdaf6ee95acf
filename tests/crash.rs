//! Crash consistency: `mvnobill run` killed with SIGKILL at 20 moments
//! spread over land, rate, bill, render and publish, then run again to its
//! end, gives the month an uninterrupted run gives: the same invoices and
//! lines, the same pages byte for byte, the same PDFs' text, the same files
//! published; numbers continuous; every CDR landed once; and `doctor` finds
//! nothing wrong. `doctor` also finds what a broken lake hides. A disk that
//! fills up during sync and land fails them cleanly, and once space is
//! freed the same commands complete the month as if nothing happened.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{binary, walk, Workspace};
use crate::documents::poppler;

/// What a month's run leaves that must not depend on how often it was
/// interrupted: file name → comparable content.
fn outputs(ws: &Workspace) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, sql) in [
        ("invoices", "SELECT * FROM invoices ORDER BY invoice_number"),
        (
            "invoice_lines",
            "SELECT * FROM invoice_lines ORDER BY invoice_number, kind, msisdn, code, zone, event_type, label",
        ),
        (
            "cdrs",
            "SELECT COUNT(*), COUNT(DISTINCT cdr_id), CAST(SUM(wholesale_eur) AS VARCHAR) FROM cdrs",
        ),
        (
            "rated_cdrs",
            "SELECT COUNT(*), CAST(SUM(amount) AS VARCHAR) FROM rated_cdrs",
        ),
        ("quarantine", "SELECT source_file, line, reason FROM quarantine ORDER BY source_file, line"),
        ("sales_journal", "SELECT * FROM sales_journal ORDER BY 1, 2, 3, 4, 5"),
    ] {
        let result = ws.run(&["query", "--format", "csv", sql]).ok();
        out.insert(format!("query {name}"), result.stdout);
    }
    let documents = ws.lake().join("documents/2026-10");
    for file in walk(&documents) {
        let name = file
            .strip_prefix(ws.dir.path())
            .unwrap()
            .display()
            .to_string();
        let content = match file.extension().and_then(|e| e.to_str()) {
            // Chromium stamps each PDF with its time: compare the text.
            Some("pdf") => poppler("pdftotext", &["-layout"], &file),
            // The SEPA file says when it was made.
            Some("xml") => mask(&std::fs::read_to_string(&file).unwrap(), "CreDtTm"),
            _ => String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned(),
        };
        out.insert(name, content);
    }
    let published = ws.dir.path().join("ftp/Factures/Clients/2026-10");
    for file in walk(&published) {
        let name = file
            .strip_prefix(ws.dir.path())
            .unwrap()
            .display()
            .to_string();
        out.insert(name, "published".to_string());
    }
    out
}

fn mask(xml: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut result = String::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        result.push_str(&rest[..start + open.len()]);
        rest = &rest[start..];
        let end = rest.find(&close).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    result.push_str(rest);
    result
}

/// Starts `mvnobill run` in its own process group, waits until `stage`
/// starts (from the JSON logs), waits `delay`, and kills the group with
/// SIGKILL (mvnobill and its Chromium, as a scheduler's timeout does).
/// Returns whether the kill happened before the run ended.
fn kill_during(ws: &Workspace, stage: &str, delay: Duration) -> bool {
    let mut child = Command::new(binary())
        .args(["--log-format", "json", "run", "--month", "2026-10"])
        .current_dir(ws.dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let wanted = stage.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let started = serde_json::from_str::<serde_json::Value>(&line)
                .map(|e| e["message"] == "stage started" && e["stage"] == wanted.as_str())
                .unwrap_or(false);
            if started {
                let _ = tx.send(());
            }
        }
    });
    let reached = rx.recv_timeout(Duration::from_secs(120)).is_ok();
    if reached {
        std::thread::sleep(delay);
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        let group = format!("-{}", child.id());
        let status = Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .unwrap();
        assert!(status.success());
    }
    child.wait().unwrap();
    killed
}

#[test]
fn killed_runs_end_as_an_uninterrupted_run() {
    let reference = Workspace::samples();
    reference.run(&["run", "--month", "2026-10"]).ok();
    let wanted = outputs(&reference);
    assert!(wanted.keys().any(|k| k.ends_with(".pdf")), "no PDF printed");

    // A small generator for the delays: the same kill points every run.
    let mut seed: u64 = 20261128;
    let mut next_delay = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis([0, 2, 10, 40, 120, 300, 700][(seed >> 33) as usize % 7])
    };
    let mut kills = 0;
    for stage in ["land", "rate", "bill", "render", "publish"] {
        let ws = Workspace::samples();
        // Four kills in this stage (or as near as the run gets to it once
        // earlier attempts have done its work; a run that ends before the
        // kill does not count), then a run to the end.
        let (mut here, mut attempts) = (0, 0);
        while here < 4 && attempts < 12 {
            attempts += 1;
            if kill_during(&ws, stage, next_delay()) {
                here += 1;
            }
        }
        kills += here;
        ws.run(&["run", "--month", "2026-10"]).ok();
        let got = outputs(&ws);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            wanted.keys().collect::<Vec<_>>(),
            "killed in {stage}: not the same files"
        );
        for (name, content) in &wanted {
            assert!(
                &got[name] == content,
                "killed in {stage}: {name} differs from an uninterrupted run"
            );
        }
        let doctor = ws.run(&["--json", "doctor"]).ok().json();
        assert_eq!(doctor["errors"], 0, "killed in {stage}: {doctor}");
        assert_eq!(doctor["warnings"], 0, "killed in {stage}: {doctor}");
        // No Chromium left behind by the killed runs.
        let left = Command::new("pgrep")
            .args(["-f", &ws.dir.path().display().to_string()])
            .output()
            .unwrap();
        assert!(left.stdout.is_empty(), "processes left: {:?}", left);
    }
    assert!(
        kills >= 20,
        "only {kills} runs were killed before their end"
    );
}

fn ledger(ws: &Workspace) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.lake().join("_state/ledger.sqlite")).unwrap()
}

fn first_parquet(dir: &Path) -> PathBuf {
    walk(dir)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap()
}

#[test]
fn doctor_finds_what_a_broken_lake_hides() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", "2026-10", "--html-only"]).ok();
    let clean = ws.run(&["doctor"]).ok();
    assert!(
        clean.stdout.contains("doctor: 0 errors, 0 warnings"),
        "{}",
        clean.stdout
    );
    assert!(clean
        .stdout
        .contains("25 numbers (2026: 1 to 25), none missing, none twice"));
    assert!(clean.stdout.contains("3953 CDRs, each cdr_id once"));

    // A CDR file copied under a second name: its CDRs twice, and rows the
    // ledger never counted.
    let cdrs = first_parquet(&ws.lake().join("cdrs/month=2026-10"));
    std::fs::copy(&cdrs, cdrs.with_file_name("copy.parquet")).unwrap();
    // An invoice number that vanished from the ledger: a gap, and an
    // invoice in the lake that was never numbered.
    ledger(&ws)
        .execute(
            "DELETE FROM invoice_numbers WHERE invoice_number = 'EXM-2026-000007'",
            [],
        )
        .unwrap();
    // A stage that never ended.
    ledger(&ws)
        .execute(
            "INSERT INTO runs (stage, month, started_at, status) VALUES ('render', '2026-11', '2026-12-02T06:00:00Z', 'running')",
            [],
        )
        .unwrap();
    let out = ws.run(&["doctor"]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    let text = out.stdout;
    for wanted in [
        "ERROR    numbering        invoice numbers are not continuous",
        "2026: sequence 7 missing",
        "ERROR    invoices         the lake's invoices and the ledger disagree",
        "2026-10: EXM-2026-000007 in the lake, never numbered",
        "ERROR    cdrs once",
        "ERROR    landed files",
        "warning  unfinished runs  1 stage runs never ended",
        "render 2026-11 started 2026-12-02T06:00:00Z",
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
    }
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("doctor: 4 errors, 1 warnings"),
        "{text}"
    );
}

/// A tmpfs of `size` mounted on `dir` (this machine's CI runs as root),
/// unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs (needs root)");
        SmallDisk(dir.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_a_rerun_completes() {
    let ws = Workspace::samples();
    // The lake on a disk that holds the raw files but not their Parquet:
    // sync needs about 1.1 MB here, land as much again.
    let disk = SmallDisk::mount(&ws.lake(), "1600k");
    let mut failures = Vec::new();
    for stage in ["sync", "land"] {
        let out = ws.run(&[stage]);
        if out.status != 0 {
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{}", out.stderr);
            assert!(lines[0].starts_with("error: "), "{}", out.stderr);
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
            failures.push(lines[0].to_string());
        }
    }
    assert!(!failures.is_empty(), "the disk did not fill up");
    assert!(
        failures
            .iter()
            .any(|f| f.contains("disk is full") || f.contains("No space left")),
        "{failures:?}"
    );

    // Space freed: the same commands finish the work, and the month is what
    // expected.json says.
    disk.grow("64m");
    ws.run(&["sync"]).ok();
    let land = ws.run(&["--json", "land"]).ok().json();
    let doctor = ws.run(&["--json", "doctor"]).ok().json();
    assert_eq!(doctor["errors"], 0, "{doctor}");
    let totals = ws.query(
        "SELECT (SELECT COUNT(*) FROM cdrs) AS cdrs, (SELECT COUNT(*) FROM quarantine) AS quarantined",
    );
    assert_eq!(totals[0]["cdrs"], "3953", "{land}");
    assert_eq!(totals[0]["quarantined"], "5");
    let run = ws
        .run(&["--json", "run", "--month", "2026-10", "--html-only"])
        .ok()
        .json();
    assert_eq!(run["bill"]["invoices"], 25);
    let ttc = ws.query("SELECT CAST(SUM(total_ttc) AS VARCHAR) AS ttc FROM invoices");
    assert_eq!(ttc[0]["ttc"], "8264.72");
    let doctor = ws.run(&["--json", "doctor"]).ok().json();
    assert_eq!(
        (doctor["errors"].clone(), doctor["warnings"].clone()),
        (0.into(), 0.into()),
        "{doctor}"
    );
    drop(disk);
}

#[test]
fn the_memory_limit_of_the_configuration_holds() {
    // 300,000 CDRs: rated within a 256 MB pool (its sort spills). Under
    // 64 MB, the least the configuration takes, the sort spills more and
    // its merge may or may not get the buffers it needs, depending on
    // which partition asks first: the month is then rated to the same
    // figures, or refused in one line naming the setting to raise, never
    // an abort (docs/PERFORMANCE.md).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g");
    crate::common::mvnobill(
        &[
            "gen",
            "--out",
            out.to_str().unwrap(),
            "--customers",
            "300",
            "--cdrs",
            "300000",
            "--seed",
            "3",
        ],
        dir.path(),
    )
    .ok();
    let config = out.join("mvnobill.toml");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        crate::common::mvnobill(&all, dir.path())
    };
    run(&["sync"]).ok();
    run(&["land"]).ok();
    let base = std::fs::read_to_string(&config).unwrap();
    for pool_mb in [64, 256] {
        std::fs::write(
            &config,
            format!("{base}\n[engine]\nmemory_pool_mb = {pool_mb}\n"),
        )
        .unwrap();
        let outcome = run(&["--json", "rate", "--month", "2026-10"]);
        if pool_mb == 64 && outcome.status == 1 {
            let lines: Vec<&str> = outcome.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{}", outcome.stderr);
            assert!(
                lines[0].starts_with(
                    "error: not enough memory in [engine] memory_pool_mb for this work: raise it"
                ),
                "{}",
                lines[0]
            );
            continue;
        }
        let rated = outcome.ok().json();
        assert_eq!(rated["cdrs"], 299744, "{pool_mb} MB: {rated}");
        assert_eq!(rated["rated"], 299530, "{pool_mb} MB: {rated}");
        assert_eq!(rated["amount"], "85185.843276", "{pool_mb} MB: {rated}");
    }
}
