//! The Airflow 3 DAGs (`airflow/dags/mvnobill.py`) as Airflow itself loads,
//! schedules and runs them: apache-airflow from PyPI in its own virtual
//! environment (`tests/python/airflow-requirements.txt`, about 300 MB, made
//! once under the target folder), `tests/python/check_dag.py` to drive it.
//! Airflow runs the samples month through the real binary, and a month
//! whose `bill` fails through a fake one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{binary, text, venv, Workspace};

/// Records its arguments beside itself; fails on `bill` like mvnobill does.
const FAKE: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
case " $* " in *" bill "*) echo "error: month refused by the fake" >&2; exit 1;; esac
echo '{}'
"#;

#[test]
fn airflow_loads_schedules_and_runs_the_dags() {
    let ws = Workspace::samples();
    let root = ws.dir.path();
    let fake = root.join("fake/mvnobill");
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    std::fs::write(&fake, FAKE).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = root.join("mvnobill.toml");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));

    let python = venv("airflow-venv", "tests/python/airflow-requirements.txt");
    let out = Command::new(python)
        .arg(manifest.join("tests/python/check_dag.py"))
        .arg(manifest.join("airflow/dags"))
        .arg(binary())
        .arg(&fake)
        .arg(root.join("seen.json"))
        .env("AIRFLOW_HOME", root.join("airflow"))
        .env("AIRFLOW__CORE__DAGS_FOLDER", manifest.join("airflow/dags"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("AIRFLOW_VAR_MVNOBILL_CONFIG", &config)
        .env_remove("RUST_LOG")
        .current_dir(root)
        .output()
        .unwrap();
    // Airflow's log, with the tasks' logs in it.
    let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check_dag.py failed:\n{log}");
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("seen.json")).unwrap()).unwrap();

    // Loaded and serialized as the DAG processor does, without an error.
    assert_eq!(seen["import_errors"], json!({}));
    let dags = &seen["dags"];
    let ids: Vec<&String> = dags.as_object().unwrap().keys().collect();
    assert_eq!(
        ids,
        [
            "mvnobill_assure",
            "mvnobill_deliveries",
            "mvnobill_dunning",
            "mvnobill_month"
        ]
    );
    for id in &ids {
        assert_eq!(dags[id]["timezone"], "Europe/Paris", "{id}");
        assert_eq!(dags[id]["catchup"], false, "{id}");
        assert_eq!(dags[id]["max_active_runs"], 1, "{id}");
    }

    // The schedules, as Airflow's timetables compute the next runs (Paris
    // time): after Saturday's last sync, Monday 08:00; the month on the 2nd,
    // at 21:00 (after the last day's delivery, even when the month ends on a
    // Saturday) in winter and summer alike; the evening check skips the 1st.
    let next = |id: &str, after: &str| dags[id]["next_runs"][after].clone();
    assert_eq!(dags["mvnobill_deliveries"]["schedule"], "*/15 8-20 * * 1-6");
    assert_eq!(
        next("mvnobill_deliveries", "2026-11-28T20:50:00+01:00"),
        json!([
            "2026-11-30T08:00:00+01:00",
            "2026-11-30T08:15:00+01:00",
            "2026-11-30T08:30:00+01:00",
            "2026-11-30T08:45:00+01:00",
            "2026-11-30T09:00:00+01:00"
        ])
    );
    assert_eq!(
        next("mvnobill_deliveries", "2026-11-30T20:40:00+01:00"),
        json!([
            "2026-11-30T20:45:00+01:00",
            "2026-12-01T08:00:00+01:00",
            "2026-12-01T08:15:00+01:00",
            "2026-12-01T08:30:00+01:00",
            "2026-12-01T08:45:00+01:00"
        ])
    );
    assert_eq!(dags["mvnobill_month"]["schedule"], "0 21 2 * *");
    assert_eq!(
        next("mvnobill_month", "2026-11-28T20:50:00+01:00"),
        json!([
            "2026-12-02T21:00:00+01:00",
            "2027-01-02T21:00:00+01:00",
            "2027-02-02T21:00:00+01:00",
            "2027-03-02T21:00:00+01:00",
            "2027-04-02T21:00:00+02:00"
        ])
    );
    assert_eq!(dags["mvnobill_assure"]["schedule"], "30 21 2-31 * *");
    assert_eq!(
        next("mvnobill_assure", "2026-11-30T20:40:00+01:00"),
        json!([
            "2026-11-30T21:30:00+01:00",
            "2026-12-02T21:30:00+01:00",
            "2026-12-03T21:30:00+01:00",
            "2026-12-04T21:30:00+01:00",
            "2026-12-05T21:30:00+01:00"
        ])
    );

    assert_eq!(dags["mvnobill_dunning"]["schedule"], "30 7 * * *");
    assert_eq!(
        next("mvnobill_dunning", "2026-11-28T20:50:00+01:00"),
        json!([
            "2026-11-29T07:30:00+01:00",
            "2026-11-30T07:30:00+01:00",
            "2026-12-01T07:30:00+01:00",
            "2026-12-02T07:30:00+01:00",
            "2026-12-03T07:30:00+01:00"
        ])
    );

    // The tasks, each after the one before, with their retries; any
    // non-zero exit fails a task (BashOperator would skip on 99).
    let chain = |id: &str, order: &[&str], retries: u64, delay_s: f64| {
        let tasks = &dags[id]["tasks"];
        assert_eq!(tasks.as_object().unwrap().len(), order.len(), "{id}");
        for (i, task) in order.iter().enumerate() {
            let upstream = if i == 0 { vec![] } else { vec![order[i - 1]] };
            let t = &tasks[task];
            assert_eq!(t["upstream"], json!(upstream), "{id}.{task}");
            assert_eq!(t["retries"], retries, "{id}.{task}");
            assert_eq!(t["retry_delay_s"], delay_s, "{id}.{task}");
            assert_eq!(t["trigger_rule"], "all_success", "{id}.{task}");
            assert_eq!(t["skip_on_exit_code"], json!([]), "{id}.{task}");
        }
    };
    // The deliveries are rated as they land (`rate` alone: every open month,
    // on its new CDRs); the month's `rate --month M` only takes up what they
    // left, then `bill` bills what is rated.
    let deliveries = ["sync", "land", "rate"];
    chain("mvnobill_deliveries", &deliveries, 1, 300.0);
    let month = ["rate", "bill", "finance", "render", "publish", "assure"];
    chain("mvnobill_month", &month, 2, 900.0);
    chain("mvnobill_assure", &["assure"], 1, 900.0);
    chain("mvnobill_dunning", &["dunning"], 1, 900.0);

    // Airflow ran sync, land and rate on the samples' FTP folder, then the
    // month run of 2 November 2026 billed October, rendered, published and
    // checked it: the samples' invoices, to the cent.
    let runs = &seen["runs"];
    for (run, tasks) in [("deliveries", &deliveries[..]), ("month", &month[..])] {
        assert_eq!(runs[run]["state"], "success", "{run}: {log}");
        for task in tasks {
            let t = &runs[run]["tasks"][task];
            assert_eq!(t["state"], "success", "{run}.{task}");
            let month_arg = if run == "month" {
                " --month 2026-10"
            } else {
                ""
            };
            assert_eq!(
                t["bash_command"],
                format!(r#""$MVNOBILL_BIN" --config "$MVNOBILL_CONFIG" --json {task}{month_arg}"#),
            );
            assert_eq!(
                t["env"],
                json!({"MVNOBILL_BIN": binary(), "MVNOBILL_CONFIG": config})
            );
        }
    }
    // The deliveries' run rated October before the month's run: its rated
    // CDRs and each line's consumption were in the lake already.
    let after = &seen["after_deliveries"];
    for dataset in ["rated_cdrs", "consumption"] {
        let months = after[dataset].as_array().unwrap();
        assert!(months.contains(&json!("2026-10")), "{dataset}: {after}");
    }
    let invoices = ws.query(
        "SELECT COUNT(*) AS n, CAST(SUM(total_ttc) AS VARCHAR) AS ttc FROM invoices WHERE month = '2026-10'",
    );
    assert_eq!(text(&invoices[0], "n"), "25");
    assert_eq!(text(&invoices[0], "ttc"), "8264.72");
    let published = std::fs::read_dir(root.join("ftp/Factures/Clients/2026-10")).unwrap();
    assert_eq!(published.count(), 25);
    let assured = ws.query(
        "SELECT COUNT(*) AS n FROM assurance WHERE month = '2026-10' AND kind = 'BILLED_NOT_LANDED'",
    );
    assert_eq!(text(&assured[0], "n"), "1");
    // The task log holds each command's JSON report.
    assert!(log.contains(r#""files_fetched": 115,"#), "{log}");

    // January's run bills December of the year before. Its bill fails: tried
    // three times (two retries), then nothing after it runs.
    let failed = &runs["failed"];
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["tasks"]["rate"]["state"], "success");
    assert_eq!(failed["tasks"]["bill"]["state"], "failed");
    assert_eq!(failed["tasks"]["bill"]["try_number"], 3);
    for task in &month[2..] {
        assert_eq!(failed["tasks"][task]["state"], "upstream_failed", "{task}");
    }
    assert!(log.contains("error: month refused by the fake"), "{log}");

    // Another month by the param; a month that is none refused; a run
    // triggered without a logical date takes the month before its run_after;
    // the month is that of the logical date in Paris.
    let command = |run: &str| runs[run]["tasks"]["assure"]["bash_command"].clone();
    assert!(command("assure_param")
        .as_str()
        .unwrap()
        .ends_with("assure --month 2026-10"));
    assert!(runs["assure_bad_param"]["refused"]
        .as_str()
        .unwrap()
        .starts_with("ParamValidationError: Invalid input for param month: '2026-13'"));
    assert!(command("assure_no_logical_date")
        .as_str()
        .unwrap()
        .ends_with("assure --month 2027-04"));
    // The dunning of the run's day in Paris.
    assert_eq!(runs["dunning"]["state"], "success");
    assert!(runs["dunning"]["tasks"]["dunning"]["bash_command"]
        .as_str()
        .unwrap()
        .ends_with("--json dunning --date 2026-12-01"));
    assert!(command("assure_paris")
        .as_str()
        .unwrap()
        .ends_with("assure --month 2026-11"));
    // Without the Variables: `mvnobill` from the PATH, the default configuration.
    assert_eq!(
        runs["assure_paris"]["tasks"]["assure"]["env"],
        json!({"MVNOBILL_BIN": "mvnobill", "MVNOBILL_CONFIG": "/srv/mvnobill/mvnobill.toml"})
    );

    // What the fake was asked, in order.
    let calls = std::fs::read_to_string(root.join("fake/calls")).unwrap();
    let args = format!("--config {} --json", config.display());
    let expected = [
        "rate --month 2026-12",
        "bill --month 2026-12",
        "bill --month 2026-12",
        "bill --month 2026-12",
        "assure --month 2026-10",
        "assure --month 2027-04",
        "dunning --date 2026-12-01",
    ]
    .map(|c| format!("{args} {c}\n"))
    .concat();
    let default = "--config /srv/mvnobill/mvnobill.toml --json assure --month 2026-11\n";
    assert_eq!(calls, expected + default);
}
