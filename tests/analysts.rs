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
