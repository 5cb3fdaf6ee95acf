//! The lake as analysts read it: PyArrow, Polars and DuckDB (from PyPI) read
//! the datasets directly, see Decimal money and microsecond UTC time, and
//! find the same totals as `mvnobill` (Python from `common::python`).

use std::path::Path;
use std::process::Command;

use crate::common::{fixtures, python, Workspace};

#[test]
fn duckdb_polars_and_pyarrow_read_the_lake() {
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    ws.run(&["run", "--month", "2026-10", "--html-only"]).ok();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_lake.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(ws.lake())
        .arg("2026-10")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let amount =
        ws.query("SELECT CAST(SUM(amount) AS VARCHAR) AS a FROM rated_cdrs")[0]["a"].clone();
    assert_eq!(got["pyarrow_total_ttc"], "8264.72");
    assert_eq!(got["pyarrow_total_ttc_type"], "decimal128(18, 2)");
    assert_eq!(got["pyarrow_start_time_type"], "timestamp[us, tz=UTC]");
    assert_eq!(got["pyarrow_wholesale_type"], "decimal128(18, 6)");
    assert_eq!(got["polars_amount_type"], "Decimal(precision=18, scale=6)");
    assert_eq!(got["polars_amount"], amount);
    assert_eq!(got["duckdb_total_ht"], "6887.26");
    assert_eq!(got["duckdb_invoices"], 25);
}

/// Every file of a folder with its size, to see that nothing changed.
fn files_of(dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                found.push((relative, entry.metadata().unwrap().len()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn query_is_read_only_on_the_command_line_and_at_the_prompt() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", "2026-10", "--html-only"]).ok();
    let invoices = ws.lake().join("invoices/month=2026-10");
    let lake_files = |ws: &Workspace| {
        files_of(&ws.lake())
            .into_iter()
            .filter(|(name, _)| !name.starts_with("_state/"))
            .collect::<Vec<_>>()
    };
    let before = lake_files(&ws);
    let refused = [
        (
            format!(
                "COPY (SELECT * FROM invoices) TO '{}/x.parquet' STORED AS PARQUET",
                invoices.display()
            ),
            "COPY",
        ),
        (
            "INSERT INTO rating_exceptions SELECT * FROM rating_exceptions".to_string(),
            "INSERT",
        ),
        (
            "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'"
                .to_string(),
            "CREATE EXTERNAL TABLE",
        ),
        (
            "CREATE TABLE copy_of AS SELECT * FROM invoices".to_string(),
            "CREATE TABLE",
        ),
        ("DROP TABLE invoices".to_string(), "DROP"),
        ("SET datafusion.execution.batch_size = 1".to_string(), "SET"),
    ];
    for (sql, what) in &refused {
        let out = ws.run(&["query", sql]);
        assert_eq!(out.status, 1, "{sql}: {}{}", out.stdout, out.stderr);
        assert_eq!(
            out.stderr.trim_end(),
            format!(
                "error: query is read-only: {what} is refused (only queries run; write a result with --out FILE)"
            ),
            "{sql}"
        );
        assert!(out.stdout.is_empty(), "{sql}: {}", out.stdout);
    }
    // The same at the prompt: each refused on its line, the session goes on.
    let mut prompt = std::process::Command::new(crate::common::binary())
        .arg("query")
        .current_dir(ws.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = prompt.stdin.take().unwrap();
        for (sql, _) in &refused {
            writeln!(stdin, "{sql};").unwrap();
        }
        writeln!(stdin, "SELECT COUNT(*) AS n FROM invoices;").unwrap();
    }
    let out = crate::common::Output::from(prompt.wait_with_output().unwrap());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), refused.len(), "{}", out.stderr);
    for ((_, what), line) in refused.iter().zip(&errors) {
        assert!(line.contains(&format!("{what} is refused")), "{line}");
    }
    assert!(out.stdout.contains("25"), "{}", out.stdout);
    assert_eq!(out.status, 1, "a failed statement fails the session");
    assert_eq!(lake_files(&ws), before, "the lake changed");
}

#[test]
fn query_json_gives_the_rows_with_numbers_as_numbers() {
    let ws = Workspace::samples();
    ws.run(&["run", "--month", "2026-10", "--html-only"]).ok();
    let sql = "SELECT COUNT(*) AS n, SUM(total_ttc) AS ttc, MIN(invoice_number) AS first, \
               COUNT(*) > 0 AS some FROM invoices";
    // `--json`: the rows as one array, as `duckdb -json` prints them.
    let rows = ws.run(&["--json", "query", sql]).ok().json();
    assert_eq!(
        rows,
        serde_json::json!([{"n": 25, "ttc": "8264.72", "first": "EXM-2026-000001", "some": true}])
    );
    // `--format json`: one object a line, the same values.
    let out = ws.run(&["query", "--format", "json", sql]).ok();
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line, rows[0]);
    // An empty result is an empty array.
    let none = ws
        .run(&[
            "--json",
            "query",
            "SELECT invoice_number FROM invoices WHERE false",
        ])
        .ok()
        .json();
    assert_eq!(none, serde_json::json!([]));
}
