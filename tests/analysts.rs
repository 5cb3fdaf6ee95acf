//! The lake as analysts read it: PyArrow, Polars and DuckDB (from PyPI) read
//! the datasets directly, see Decimal money and microsecond UTC time, and
//! find the same totals as `mvnobill`. The test keeps its own Python virtual
//! environment under cargo's target folder (created on first run).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{fixtures, Workspace};

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analyst-venv");
    let python = venv.join("bin/python");
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/requirements.txt");
    let ready = venv.join(".ready");
    if !ready.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(
            status.success(),
            "cannot create a virtual environment with python3 -m venv"
        );
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&requirements)
            .status()
            .expect("pip install");
        assert!(
            status.success(),
            "pip install -r tests/python/requirements.txt failed"
        );
        std::fs::write(&ready, "").unwrap();
    }
    python
}

#[test]
fn duckdb_polars_and_pyarrow_read_the_lake() {
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        &samples.join("ftp"),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    ws.run(&["run", "--month", "2026-10"]).ok();
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
