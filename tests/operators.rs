//! The people at the console and the schedulers: the interactive `query`
//! prompt and its history, `--out` files, stage durations in the reports,
//! JSON logs, and progress bars that only a terminal sees.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{binary, Workspace};

/// Runs `mvnobill ARGS` in the workspace with `input` on its stdin (a pipe).
fn with_stdin(ws: &Workspace, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a shell command line under a pseudo-terminal (util-linux `script`),
/// in the workspace, with `input` typed on it; returns what the terminal
/// showed.
fn in_terminal(ws: &Workspace, command: &str, input: &str) -> String {
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .current_dir(ws.dir.path())
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    for line in input.lines() {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\r").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn billed_samples() -> Workspace {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", "2026-10", "--html-only"]).ok();
    ws
}

#[test]
fn the_query_prompt_runs_statements_and_keeps_a_history() {
    let ws = billed_samples();
    // A statement over two lines, a table listing, a describe, a format
    // switch, a wrong statement that does not end the session.
    let input = "\\d\n\\d invoices\nSELECT count(*) AS invoices,\n  CAST(sum(total_ttc) AS VARCHAR) AS ttc FROM invoices;\n\\format csv\nSELECT customer_id FROM invoices ORDER BY customer_id LIMIT 2;\nSELECT nope FROM invoices;\n\\q\n";
    let (status, stdout, stderr) = with_stdin(&ws, &["query"], input);
    // The failed statement fails the session (for scripts that pipe SQL).
    assert_eq!(status, 1, "{stdout}{stderr}");
    for table in ["invoices", "rated_cdrs", "customers", "plans"] {
        assert!(
            stdout.lines().any(|l| l.trim() == table),
            "{table} not listed:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("total_ttc") && stdout.contains("Decimal128(18, 2)"),
        "{stdout}"
    );
    // expected.json: 25 invoices, 8 264,72 € TTC.
    assert!(stdout.contains("| 25       | 8264.72 |"), "{stdout}");
    assert!(
        stdout.contains("customer_id\nC00001\nC00002\n(2 rows)"),
        "{stdout}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: query:") && l.contains("nope")),
        "{stderr}"
    );
    assert!(
        stdout.contains("query: 3 statements (1 failed); history in"),
        "{stdout}"
    );

    // The history holds the statements, readable by its owner only, and the
    // next session reads it again.
    let history = ws.lake().join("_state/query_history");
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("SELECT customer_id FROM invoices ORDER BY customer_id LIMIT 2;"));
    assert!(text.contains("SELECT nope FROM invoices;"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&history).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (status, stdout, _) = with_stdin(&ws, &["query"], "SELECT 1 AS one;\n");
    assert_eq!(status, 0);
    assert!(stdout.contains("query: 1 statements (0 failed)"));
    let again = std::fs::read_to_string(&history).unwrap();
    assert!(again.contains("SELECT nope FROM invoices;") && again.contains("SELECT 1 AS one;"));
}

#[test]
fn the_query_prompt_works_in_a_terminal() {
    let ws = billed_samples();
    let bin = binary();
    let shown = in_terminal(
        &ws,
        &format!("{} query", bin.display()),
        "SELECT count(*) AS n FROM invoices WHERE customer_kind = 'B2B';\n\\q\n",
    );
    assert!(shown.contains("mvnobill> "), "{shown}");
    // customers.csv: 10 business customers, each invoiced.
    assert!(shown.contains("| 10 |"), "{shown}");
    let history = std::fs::read_to_string(ws.lake().join("_state/query_history")).unwrap();
    assert!(history.contains("customer_kind = 'B2B'"), "{history}");
}

#[test]
fn query_writes_csv_and_parquet_files() {
    let ws = billed_samples();
    let out = ws
        .run(&[
            "query",
            "--format",
            "csv",
            "--out",
            "ttc.csv",
            "SELECT invoice_number, total_ttc FROM invoices ORDER BY invoice_number",
        ])
        .ok();
    assert!(out.stdout.contains("query: 25 rows written to ttc.csv"));
    let csv = std::fs::read_to_string(ws.dir.path().join("ttc.csv")).unwrap();
    assert_eq!(csv.lines().count(), 26);
    assert!(csv.starts_with("invoice_number,total_ttc\n"));

    let refused = ws.run(&["query", "--format", "parquet", "SELECT 1"]);
    assert_eq!(refused.status, 1);
    assert_eq!(
        refused.stderr.trim(),
        "error: --format parquet writes a file: give it with --out FILE.parquet"
    );
    let out = ws
        .run(&[
            "query",
            "--json",
            "--format",
            "parquet",
            "--out",
            "ttc.parquet",
            "SELECT invoice_number, total_ttc FROM invoices",
        ])
        .ok();
    assert_eq!(out.json()["rows"], 25);
    // PyArrow reads it back: Decimal128 kept, the exact sum of expected.json.
    let parquet = ws.dir.path().join("ttc.parquet");
    let read = Command::new(crate::common::python())
        .args([
            "-c",
            "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]); \
             print(t.schema.field('total_ttc').type, sum(v.as_py() for v in t.column('total_ttc')), t.num_rows)",
        ])
        .arg(&parquet)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).trim(),
        "decimal128(18, 2) 8264.72 25"
    );
    assert!(!Path::new(&format!("{}.partial", parquet.display())).exists());
}

#[test]
fn reports_carry_durations_and_logs_can_be_json() {
    let ws = Workspace::samples();
    let out = ws
        .run(&[
            "--json",
            "--log-format",
            "json",
            "run",
            "--month",
            "2026-10",
            "--html-only",
        ])
        .ok();
    let report = out.json();
    for stage in ["land", "rate", "bill", "finance", "render", "assure"] {
        let elapsed = report[stage]["elapsed_ms"].as_u64();
        assert!(elapsed.is_some(), "{stage}: {}", report[stage]);
        let started = report[stage]["started_at"].as_str().unwrap();
        assert!(
            started.ends_with('Z') && started.starts_with("20"),
            "{started}"
        );
    }
    // The counts stay where they were, beside the duration.
    assert_eq!(report["bill"]["invoices"], 25);
    let total = report["elapsed_ms"].as_u64().unwrap();
    let stages: u64 = ["land", "rate", "bill", "finance", "render", "assure"]
        .iter()
        .map(|s| report[*s]["elapsed_ms"].as_u64().unwrap())
        .sum();
    assert!(total >= stages, "{total} < {stages}");

    // Every log line is a JSON object; each stage started and finished.
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for stage in ["land", "rate", "bill", "finance", "render", "assure"] {
        let finished = events
            .iter()
            .find(|e| e["stage"] == stage && e["message"] == "stage finished")
            .unwrap_or_else(|| panic!("no end of {stage}: {}", out.stderr));
        assert_eq!(finished["level"], "INFO");
        assert!(finished["elapsed_ms"].is_u64());
    }

    // A failure is one JSON line too.
    let failed = ws.run(&["--log-format", "json", "bill", "--month", "2026-11"]);
    assert_eq!(failed.status, 1);
    let lines: Vec<&str> = failed.stderr.lines().collect();
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["error"].as_str().unwrap().contains("2026-11"),
        "{last}"
    );

    // Text: each stage says how long it took.
    let text = ws.run(&["rate", "--month", "2026-10"]).ok();
    let last = text.stdout.trim_end().lines().last().unwrap().to_string();
    assert!(
        last.starts_with("rate took ") && last.ends_with(" s"),
        "{last}"
    );
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let ws = Workspace::samples();
    let bin = binary();
    ws.run(&["sync"]).ok();
    // In a terminal, land draws its bar on stderr.
    let shown = in_terminal(&ws, &format!("{} land", bin.display()), "");
    assert!(shown.contains("land ["), "{shown}");
    assert!(shown.contains(" files"), "{shown}");
    // In a pipe (a scheduler), none.
    let again = Workspace::samples();
    again.run(&["sync"]).ok();
    let out = again.run(&["land"]).ok();
    assert!(out.stdout.contains("land: 115 files"), "{}", out.stdout);
    assert!(!out.stderr.contains('['), "{}", out.stderr);
    assert!(!out.stderr.contains('\r'), "{}", out.stderr);
}
