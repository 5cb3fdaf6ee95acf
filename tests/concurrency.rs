//! Two writers on one lake: the state folder's lock (`pipeline/core/lock.rs`)
//! lets one run, refuses the other at once in one line naming the lock file
//! and its holder, or makes it wait with `--wait`. Readers never wait.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mvnobill::core::lock::StateLock;

use crate::common::{binary, text, Output, Workspace};

const MONTH: &str = "2026-10";

fn spawn(ws: &Workspace, args: &[&str]) -> std::process::Child {
    Command::new(binary())
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mvnobill")
}

fn output(child: std::process::Child) -> Output {
    let out = child.wait_with_output().expect("wait for mvnobill");
    Output::from(out)
}

/// The month's invoice numbers, in order; they must be EXM-2026-000001 to
/// EXM-2026-<n> with no gap and no repeat.
fn assert_numbering_continuous(ws: &Workspace, expected: usize) -> Vec<String> {
    let numbers: Vec<String> = ws
        .query("SELECT invoice_number FROM invoices ORDER BY invoice_number")
        .iter()
        .map(|r| text(r, "invoice_number"))
        .collect();
    let wanted: Vec<String> = (1..=expected).map(|i| format!("EXM-2026-{i:06}")).collect();
    assert_eq!(numbers, wanted);
    numbers
}

/// One line on stderr naming the lock file and its holder, exit 1.
fn assert_refused(out: &Output, lock: &str, holder: &str) {
    assert_eq!(out.status, 1, "{}\n{}", out.stdout, out.stderr);
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: {lock} is held by pid ")),
        "{stderr}"
    );
    assert!(stderr.contains(holder), "{stderr}");
    assert!(stderr.contains("--wait"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn two_runs_of_one_month_at_once_one_bills_the_other_is_refused() {
    let ws = Workspace::samples();
    let lock = ws.lake().join("_state/mvnobill.lock");
    let args = ["--json", "run", "--month", MONTH, "--html-only"];
    let first = spawn(&ws, &args);
    let second = spawn(&ws, &args);
    let outputs = [output(first), output(second)];
    let ok: Vec<&Output> = outputs.iter().filter(|o| o.status == 0).collect();
    let refused: Vec<&Output> = outputs.iter().filter(|o| o.status != 0).collect();
    assert_eq!(ok.len(), 1, "exactly one run succeeds");
    assert_refused(
        refused[0],
        &lock.display().to_string(),
        " --json run --month 2026-10 --html-only) since ",
    );
    let report = ok[0].json();
    let invoices = report["bill"]["invoices"].as_u64().unwrap() as usize;
    assert!(invoices > 20, "{report}");
    let numbers = assert_numbering_continuous(&ws, invoices);
    // One file per partition that a stage owns whole: nothing mixed; and
    // the one run that rated the month wrote one file of rated events.
    for (dataset, file) in [
        ("rated_cdrs", "part-000001.parquet"),
        ("invoice_lines", "part-0.parquet"),
        ("invoices", "part-0.parquet"),
    ] {
        let folder = ws.lake().join(format!("{dataset}/month={MONTH}"));
        let files: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [file], "{dataset}");
    }
    // The lock was let go: a run after it completes, and numbers nothing.
    let again = ws.run(&args).ok().json();
    assert_eq!(
        again["bill"]["invoices"].as_u64().unwrap() as usize,
        invoices
    );
    assert_eq!(assert_numbering_continuous(&ws, invoices), numbers);
    let count =
        ws.query("SELECT COUNT(DISTINCT invoice_number) AS n, COUNT(*) AS rows FROM invoices");
    assert_eq!(text(&count[0], "n"), invoices.to_string());
    assert_eq!(text(&count[0], "rows"), invoices.to_string());
}

#[test]
fn writers_are_refused_or_wait_while_readers_go_on() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", MONTH, "--html-only"]).ok();
    let state = ws.lake().join("_state");
    let lock_path = state.join("mvnobill.lock").display().to_string();
    let held = StateLock::take(&state, "the test's holder", false).unwrap();

    // Every command that writes is refused at once.
    for args in [
        vec!["sync"],
        vec!["land"],
        vec!["rate", "--month", MONTH],
        vec!["bill", "--month", MONTH],
        vec!["finance", "--month", MONTH],
        vec!["render", "--month", MONTH, "--html-only"],
        vec!["sepa", "--month", MONTH],
        vec!["assure", "--month", MONTH],
        vec!["run", "--month", MONTH, "--html-only"],
        vec![
            "credit",
            "--invoice",
            "EXM-2026-000001",
            "--reason",
            "test",
            "--html-only",
        ],
    ] {
        let started = Instant::now();
        let out = ws.run(&args);
        assert_refused(
            &out,
            &lock_path,
            &format!("pid {} (the test's holder)", std::process::id()),
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?}");
    }
    // Readers go on: a query and the support desk's PUK look-up.
    let invoices = ws.query("SELECT COUNT(*) AS n FROM invoices");
    assert_ne!(text(&invoices[0], "n"), "0");
    let puk = ws.run(&["sim", "puk", "0632260020"]).ok();
    assert!(puk.stdout.contains("PUK1 25497556"), "{}", puk.stdout);

    // --wait: the command waits for the holder, then runs.
    let mut waiting = spawn(&ws, &["--wait", "--json", "finance", "--month", MONTH]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "finance --wait waits for the lock"
    );
    drop(held);
    let out = output(waiting).ok();
    assert!(out.stderr.contains("waiting for"), "{}", out.stderr);
    assert_eq!(out.json()["month"], MONTH);
    // Let go on exit: the lock file holds no holder's text.
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), "");
}
