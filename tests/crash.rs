//! Crash consistency: `mvnobill run` killed with SIGKILL at 20 moments
//! inside land, rate, bill, render and publish (four each, every one
//! checked in the ledger to have come while its stage was running), then
//! run again to its end, gives the month an uninterrupted run gives: the
//! same CDRs and rated CDRs row by row, the same invoices and lines, the
//! same pages byte for byte, the same PDFs' text, the same files published;
//! numbers continuous; every CDR landed once; and `doctor` finds nothing
//! wrong. No process of a killed run is left: neither mvnobill nor any
//! Chromium it started. `doctor` also finds what a broken lake hides. A
//! disk that fills up during sync and land fails them cleanly, and once
//! space is freed the same commands complete the month as if nothing
//! happened. The memory limit either refuses the month in one line or
//! rates it to the same figures, spilling, each where it always does.

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
        // Every row and column; sorted below, for the engine's order may vary.
        ("cdrs", "SELECT * FROM cdrs"),
        ("rated_cdrs", "SELECT * FROM rated_cdrs"),
        ("rating_exceptions", "SELECT * FROM rating_exceptions"),
        ("quarantine", "SELECT source_file, line, reason FROM quarantine ORDER BY source_file, line"),
        ("sales_journal", "SELECT * FROM sales_journal ORDER BY 1, 2, 3, 4, 5"),
    ] {
        let result = ws.run(&["query", "--format", "csv", sql]).ok().stdout;
        let mut lines: Vec<&str> = result.lines().collect();
        if let Some((_header, rows)) = lines.split_first_mut() {
            rows.sort_unstable();
        }
        out.insert(format!("query {name}"), lines.join("\n"));
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

/// The variable that tags the processes of the killed runs: each process
/// started from a killed `mvnobill` (its Chromium and Chromium's helpers)
/// inherits it, wherever it moves to (another process group, another
/// parent).
const RUN_TAG: &str = "MVNOBILL_CRASH_TEST_RUN";

/// A live process: its pid, executable and command line.
struct Process {
    pid: u32,
    exe: PathBuf,
    cmdline: String,
}

/// The live processes whose environment holds `RUN_TAG=tag`, read from
/// /proc (a zombie has an empty environment: it is no longer running).
fn tagged_processes(tag: &str) -> Vec<Process> {
    let marker = format!("{RUN_TAG}={tag}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(Process {
                pid,
                exe: std::fs::read_link(entry.path().join("exe")).unwrap_or_default(),
                cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            });
        }
    }
    found
}

fn shown(processes: &[Process]) -> String {
    processes
        .iter()
        .map(|p| format!("\n  {} {} {}", p.pid, p.exe.display(), p.cmdline))
        .collect()
}

fn is_chromium(process: &Process) -> bool {
    let name = process
        .exe
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    name.starts_with("chrom") || name.starts_with("headless_shell")
}

/// What a kill hit.
enum Kill {
    /// The run ended before the kill.
    NotRunning,
    /// Inside the targeted stage: the ledger's last stage run is it, still
    /// `running`; with whether Chromium was up at the kill.
    Inside { chromium: bool },
    /// Elsewhere: the ledger's last stage run and its status.
    Outside { stage: String, status: String },
}

/// Starts `mvnobill run` in its own process group, tagged with `tag`,
/// waits until `stage` starts (from the JSON logs), waits `delay`, and
/// kills the group with SIGKILL (mvnobill and its Chromium, as a
/// scheduler's timeout does). Then every process tagged must be gone, and
/// the ledger tells whether the kill came inside `stage`.
fn kill_during(ws: &Workspace, tag: &str, stage: &str, delay: Duration) -> Kill {
    let mut child = Command::new(binary())
        .args(["--log-format", "json", "run", "--month", "2026-10"])
        .current_dir(ws.dir.path())
        .env_remove("RUST_LOG")
        .env(RUN_TAG, tag)
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
    // What runs at the kill: the check below must see the run itself (so
    // it would see it left), and whatever Chromium it started.
    let running = tagged_processes(tag);
    if child.try_wait().unwrap().is_some() {
        child.wait().unwrap();
        return Kill::NotRunning;
    }
    let binary = std::fs::canonicalize(binary()).unwrap();
    assert!(
        running
            .iter()
            .any(|p| p.pid == child.id() && p.exe == binary),
        "the run {} is not among the tagged processes:{}",
        child.id(),
        shown(&running)
    );
    let group = format!("-{}", child.id());
    let status = Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    // Nothing of the run left: mvnobill, Chromium or a helper (each gets
    // the signal at once, but may take a moment to exit).
    let mut left = tagged_processes(tag);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = tagged_processes(tag);
    }
    assert!(
        left.is_empty(),
        "killed in {stage}: processes left 10 s after the kill:{}",
        shown(&left)
    );
    let (last, status): (String, String) = ledger(ws)
        .query_row(
            "SELECT stage, status FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    if last == stage && status == "running" {
        Kill::Inside {
            chromium: running.iter().any(is_chromium),
        }
    } else {
        Kill::Outside {
            stage: last,
            status,
        }
    }
}

/// The first line where two outputs differ, for a failure's message.
fn first_difference(wanted: &str, got: &str) -> String {
    let mut lines = wanted.lines().zip(got.lines()).enumerate();
    match lines.find(|(_, (w, g))| w != g) {
        Some((i, (w, g))) => format!("line {}:\n  wanted {w}\n  got    {g}", i + 1),
        None => format!(
            "{} lines wanted, {} got",
            wanted.lines().count(),
            got.lines().count()
        ),
    }
}

#[test]
fn killed_runs_end_as_an_uninterrupted_run() {
    let reference = Workspace::samples();
    let clean = reference
        .run(&["--json", "run", "--month", "2026-10"])
        .ok()
        .json();
    let wanted = outputs(&reference);
    assert!(wanted.keys().any(|k| k.ends_with(".pdf")), "no PDF printed");
    assert!(
        wanted["query rated_cdrs"].lines().count() > 3000,
        "{}",
        wanted["query rated_cdrs"]
    );

    // A small generator for the delays: the same kill points every run,
    // spread over the first 3/8 of the stage as long as it took in the
    // clean run (a run may go faster, and once a kill comes after bill,
    // the month is issued and rate has nothing left to do); a run after a
    // kill may also have less left to do (land skips the files landed),
    // so each kill that comes after the stage halves the bound.
    let mut seed: u64 = 20261128;
    let mut next_delay = move |bound_ms: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(bound_ms * ((seed >> 33) % 7) / 8)
    };
    for stage in ["land", "rate", "bill", "render", "publish"] {
        let stage_ms = clean[stage]["elapsed_ms"].as_u64().unwrap();
        let ws = Workspace::samples();
        let tag = ws.dir.path().display().to_string();
        // Four kills inside this stage, each checked in the ledger (a kill
        // that came after it does not count), then a run to the end.
        let (mut here, mut attempts, mut chromium) = (0, 0, false);
        let mut bound_ms = stage_ms / 2;
        let mut missed = Vec::new();
        while here < 4 && attempts < 12 {
            attempts += 1;
            let delay = next_delay(bound_ms);
            match kill_during(&ws, &tag, stage, delay) {
                Kill::Inside { chromium: up } => {
                    here += 1;
                    chromium |= up;
                    // Landing resumes where it was killed: what is left of
                    // it shrinks with each kill, and so must the delays, or
                    // a later run lands the rest before the next kill.
                    if stage == "land" {
                        bound_ms /= 2;
                    }
                }
                Kill::NotRunning => {
                    missed.push(format!("{delay:?}: after the run"));
                    bound_ms /= 2;
                }
                Kill::Outside {
                    stage: last,
                    status,
                } => {
                    missed.push(format!("{delay:?}: in {last}, {status}"));
                    bound_ms /= 2;
                }
            }
        }
        assert_eq!(
            here, 4,
            "{stage} ({stage_ms} ms in the clean run): only {here} kills inside it in {attempts} attempts; the others: {missed:?}"
        );
        if stage == "render" {
            assert!(chromium, "no kill in render came while Chromium ran");
        }
        ws.run(&["run", "--month", "2026-10"]).ok();
        let got = outputs(&ws);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            wanted.keys().collect::<Vec<_>>(),
            "killed in {stage}: not the same files"
        );
        let differ: Vec<String> = wanted
            .iter()
            .filter(|(name, content)| &got[*name] != *content)
            .map(|(name, content)| format!("{name}: {}", first_difference(content, &got[name])))
            .collect();
        assert!(
            differ.is_empty(),
            "killed in {stage}: not as an uninterrupted run:\n{}",
            differ.join("\n")
        );
        let doctor = ws.run(&["--json", "doctor"]).ok().json();
        assert_eq!(doctor["errors"], 0, "killed in {stage}: {doctor}");
        assert_eq!(doctor["warnings"], 0, "killed in {stage}: {doctor}");
    }
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

/// The spills of the rating sort, from the plan's metrics that
/// `MVNOBILL_PLAN_METRICS` makes the binary write: (spill_count, spilled
/// rows as the plan shows them, e.g. "299.7 K").
fn sort_spills(metrics: &str) -> (u64, String) {
    let sort = metrics
        .lines()
        .find(|l| l.trim_start().starts_with("SortExec:"))
        .unwrap_or_else(|| panic!("no SortExec in:\n{metrics}"));
    let metric = |name: &str| {
        let start = sort.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = &sort[start..];
        rest[..rest.find([',', ']']).unwrap()].to_string()
    };
    (
        metric("spill_count").parse().unwrap(),
        metric("spilled_rows"),
    )
}

#[test]
fn the_memory_limit_of_the_configuration_holds() {
    // 300,000 CDRs (docs/PERFORMANCE.md). Each outcome below is the same
    // every run: with two cores, 64 to 96 MB rate or refuse depending on
    // which of the sort's two partitions asks first for its merge buffers,
    // so the least pool is tried on one core (one partition), where the
    // sort has the pool to itself.
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
    let base = std::fs::read_to_string(&config).unwrap();
    let metrics = dir.path().join("metrics.txt");
    // `rate` of `month` within `pool_mb`, on the first core only or on all:
    // its output, and the plan's metrics when it rated.
    let rate = |pool_mb: u32, one_core: bool, month: &str| {
        std::fs::write(
            &config,
            format!("{base}\n[engine]\nmemory_pool_mb = {pool_mb}\n"),
        )
        .unwrap();
        let _ = std::fs::remove_file(&metrics);
        let mut command = if one_core {
            let mut taskset = Command::new("taskset");
            taskset.args(["--cpu-list", "0"]).arg(binary());
            taskset
        } else {
            Command::new(binary())
        };
        let out = command
            .args(["--config", config.to_str().unwrap()])
            // The whole month each time: what the pool must hold.
            .args(["--json", "rate", "--month", month, "--full"])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("MVNOBILL_PLAN_METRICS", &metrics)
            .output()
            .unwrap();
        let plan = std::fs::read_to_string(&metrics).unwrap_or_default();
        (crate::common::Output::from(out), plan)
    };
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        crate::common::mvnobill(&all, dir.path())
    };
    run(&["sync"]).ok();
    run(&["land"]).ok();

    // The least pool the configuration takes, one partition: the month
    // rated to its figures, the sort spilling three times, every row.
    for (pool_mb, one_core, spills) in [(64, true, Some(3)), (256, false, None)] {
        let (outcome, plan) = rate(pool_mb, one_core, "2026-10");
        let rated = outcome.ok().json();
        assert_eq!(rated["cdrs"], 299744, "{pool_mb} MB: {rated}");
        assert_eq!(rated["rated"], 299530, "{pool_mb} MB: {rated}");
        assert_eq!(rated["amount"], "85185.843276", "{pool_mb} MB: {rated}");
        let (spill_count, spilled_rows) = sort_spills(&plan);
        match spills {
            Some(count) => assert_eq!(spill_count, count, "{pool_mb} MB:\n{plan}"),
            // Two partitions: how often each spills depends on which fills
            // its share of the pool first; they spill all the same.
            None => assert!(spill_count >= 1, "{pool_mb} MB, no spill:\n{plan}"),
        }
        assert_eq!(spilled_rows, "299.7 K", "{pool_mb} MB:\n{plan}");
    }

    // A month whose rows the sort cannot hold one batch of in 64 MB, on any
    // number of cores: 17,000 CDRs of November with 3,000-byte ids (a batch
    // of them asks for about 150 MB). Refused in one line naming the
    // setting, never an abort.
    let rated_dir = out.join("ftp/RatedCDRs");
    let mut wide = Vec::new();
    for entry in std::fs::read_dir(&rated_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            let mut fields: Vec<String> = line.split(';').map(str::to_string).collect();
            if !fields[4].contains("/10/2026") || fields[4].starts_with("31/") {
                continue;
            }
            fields[0] = format!("W{}{}", "0".repeat(3000), fields[0]);
            fields[4] = fields[4].replace("/10/2026", "/11/2026");
            wide.push(fields.join(";"));
        }
        if wide.len() >= 17_000 {
            break;
        }
    }
    let header = "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur";
    std::fs::write(
        rated_dir.join("RatedCDRs_20261130_235900.csv"),
        format!("{header}\n{}\n", wide[..17_000].join("\n")),
    )
    .unwrap();
    run(&["sync"]).ok();
    run(&["land"]).ok();
    for one_core in [true, false] {
        let (outcome, _) = rate(64, one_core, "2026-11");
        assert_eq!(outcome.status, 1, "{}", outcome.stdout);
        let lines: Vec<&str> = outcome.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", outcome.stderr);
        assert!(
            lines[0].starts_with(
                "error: not enough memory in [engine] memory_pool_mb for this work: raise it (docs/PERFORMANCE.md): rating failed: "
            ),
            "{}",
            lines[0]
        );
    }
}
