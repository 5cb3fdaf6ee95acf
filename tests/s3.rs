//! An S3 lake: the samples month run against moto's S3 API server (from
//! PyPI) gives the invoices of `expected.json` to the cent, with every
//! dataset and document in the bucket and DataFusion reading them there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{fixtures, python, text};

/// moto's server on a free 127.0.0.1 port, stopped on drop.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) endpoint: String,
}

impl S3Server {
    pub(crate) fn start(bucket: &str) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/s3_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(bucket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "moto did not start");
        S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn mvnobill(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(crate::common::binary())
        .args(args)
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

#[test]
fn a_month_on_an_s3_lake_gives_the_same_invoices() {
    let server = S3Server::start("lake");
    let samples = fixtures().join("samples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mvnobill.toml"),
        format!(
            "[source]\nurl = \"file://{ftp}\"\n\n[reference]\ndir = \"{reference}\"\nintegrator = \"{integrator}\"\n\n\
             [lake]\nurl = \"s3://lake/mvnobill\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nallow_http = true\n\n\
             [state]\ndir = \"state\"\n",
            ftp = samples.join("ftp").display(),
            reference = samples.join("reference").display(),
            integrator = samples.join("integrator.toml").display(),
            endpoint = server.endpoint,
        ),
    )
    .unwrap();
    let out = mvnobill(
        dir.path(),
        &["--json", "run", "--month", "2026-10", "--html-only"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(samples.join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(report["bill"]["invoices"], expected["invoice_count"]);
    assert_eq!(report["bill"]["total_ttc"], expected["total_ttc"]);

    // DataFusion reads the datasets from the bucket.
    let out = mvnobill(
        dir.path(),
        &[
            "query",
            "--format",
            "json",
            "SELECT customer_id, CAST(total_ttc AS VARCHAR) AS ttc FROM invoices ORDER BY customer_id",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let wanted = expected["invoices"].as_object().unwrap();
    assert_eq!(rows.len(), wanted.len());
    for row in &rows {
        let customer = text(row, "customer_id");
        assert_eq!(
            text(row, "ttc"),
            wanted[&customer]["total_ttc"].as_str().unwrap(),
            "{customer}"
        );
    }

    // The SEPA file goes to the bucket as well.
    let sepa = mvnobill(dir.path(), &["sepa", "--month", "2026-10"]);
    assert!(
        sepa.status.success(),
        "{}",
        String::from_utf8_lossy(&sepa.stderr)
    );

    // Everything is in the bucket, nothing in a local lake folder.
    let list = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/s3_list.py"))
        .args([&server.endpoint, "lake", "mvnobill/"])
        .output()
        .unwrap();
    let keys = String::from_utf8(list.stdout).unwrap();
    for key in [
        "mvnobill/raw/RatedCDRs/",
        "mvnobill/cdrs/month=2026-10/",
        "mvnobill/rated_cdrs/month=2026-10/part-0.parquet",
        "mvnobill/invoices/month=2026-10/part-0.parquet",
        "mvnobill/documents/2026-10/EXM-2026-000001.html",
        "mvnobill/documents/2026-10/sepa-2026-10.xml",
        "mvnobill/margin/month=2026-10/part-0.parquet",
        "mvnobill/sales_journal/month=2026-10/part-0.parquet",
        "mvnobill/e_reporting/month=2026-10/part-0.parquet",
        "mvnobill/documents/2026-10/journal-2026-10.csv",
    ] {
        assert!(keys.contains(key), "{key} not in the bucket:\n{keys}");
    }
    assert!(!keys.contains("_work/"), "a work file was left:\n{keys}");

    // A second run changes nothing.
    let again = mvnobill(
        dir.path(),
        &["--json", "run", "--month", "2026-10", "--html-only"],
    );
    assert!(again.status.success());
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["sync"]["files_fetched"], 0);
    assert_eq!(again["bill"]["closed"], true);
    assert_eq!(again["render"]["unchanged"], expected["invoice_count"]);
}
