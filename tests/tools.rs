//! The desk's tools on the real binary: `rio check` (one RIO, or a file of
//! porting orders), `duration` (with and without the samples' grids), and
//! `gen --months` (late files).
//!
//! The RIO keys below are worked by hand in `pipeline/tools/rio.rs`'s tests:
//! 02P123456 + 0612345678 → key 4NH; 01EAB12CD + 0798765432 → key WIV.

use crate::common::{mvnobill, Workspace};

#[test]
fn rio_check_one_rio_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| mvnobill(args, dir.path());

    let out = run(&["rio", "check", "02P1234564NH", "0612345678"]).ok();
    assert_eq!(out.stdout, "valid: RIO 02P1234564NH matches 0612345678\n");
    let out = run(&["rio", "check", "01EAB12CDWIV", "+33798765432"]).ok();
    assert_eq!(out.stdout, "valid: RIO 01EAB12CDWIV matches +33798765432\n");

    for (rio, msisdn, reason) in [
        (
            "02P1234564NI",
            "0612345678",
            "the key does not match the number",
        ),
        (
            "02P1234564NH",
            "0612345679",
            "the key does not match the number",
        ),
        (
            "02P1234564N",
            "0612345678",
            "the RIO has 11 characters, a RIO has 12",
        ),
        (
            "02p1234564NH",
            "0612345678",
            "character 3 'p' is lower case: a RIO is written in capitals",
        ),
        (
            "02X1234564NH",
            "0612345678",
            "the contract type 'X' is not P (particulier) or E (entreprise)",
        ),
        (
            "02P1234564NH",
            "0112345678",
            "'0112345678' is not a French mobile number (06 or 07 and 8 digits, or +33 6/7…)",
        ),
    ] {
        let out = run(&["rio", "check", rio, msisdn]);
        assert_eq!(out.status, 1, "{rio} {msisdn}: {}", out.stdout);
        assert_eq!(
            out.stdout,
            format!("invalid: RIO {rio} for {msisdn}: {reason}\n")
        );
        assert!(out.stderr.is_empty(), "{}", out.stderr);
    }

    let out = run(&["--json", "rio", "check", "02P1234564NI", "0612345678"]);
    assert_eq!(out.status, 1);
    let report = out.json();
    assert_eq!(report["valid"], false);
    assert_eq!(report["code"], "WRONG_KEY");
    assert_eq!(report["national"], "0612345678");

    // A RIO without its number is a command-line mistake.
    let out = run(&["rio", "check", "02P1234564NH"]);
    assert_eq!(out.status, 2);
}

#[test]
fn rio_check_a_file_gives_a_verdict_per_row() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "order_id;rio;msisdn\n\
         P1;02P1234564NH;0612345678\n\
         P2;02P1234564NI;0612345678\n\
         P3;01EAB12CDWIV;33798765432\n\
         P4;01eab12cdwiv;0798765432\n\
         P5;;0612345678\n\
         P6;01EAB12CDWIV;0612345678\n",
    )
    .unwrap();
    let out = mvnobill(&["rio", "check", "--file", "orders.csv"], dir.path());
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "line 2: valid: RIO 02P1234564NH matches 0612345678\n\
         line 3: invalid: RIO 02P1234564NI for 0612345678: the key does not match the number\n\
         line 4: valid: RIO 01EAB12CDWIV matches 33798765432\n\
         line 5: invalid: RIO 01eab12cdwiv for 0798765432: character 3 'e' is lower case: a RIO is written in capitals\n\
         line 6: invalid: RIO (empty) for 0612345678: no rio in this row\n\
         line 7: invalid: RIO 01EAB12CDWIV for 0612345678: the key does not match the number\n\
         rio check orders.csv: 6 rows, 2 valid, 4 invalid\n"
    );

    let out = mvnobill(
        &["--json", "rio", "check", "--file", "orders.csv"],
        dir.path(),
    );
    assert_eq!(out.status, 1);
    let report = out.json();
    assert_eq!(report["checked"], 6);
    assert_eq!(report["valid"], 2);
    assert_eq!(report["invalid"], 4);
    let codes: Vec<(u64, String)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (2, "".to_string()),
            (3, "WRONG_KEY".to_string()),
            (4, "".to_string()),
            (5, "LOWER_CASE".to_string()),
            (6, "MISSING".to_string()),
            (7, "WRONG_KEY".to_string()),
        ]
    );
}

#[test]
fn rio_check_a_comma_file_all_valid_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "msisdn,rio\r\n+33612345678,02P1234564NH\r\n0798765432,01EAB12CDWIV\r\n",
    )
    .unwrap();
    let out = mvnobill(&["rio", "check", "--file", "orders.csv"], dir.path()).ok();
    assert!(
        out.stdout
            .ends_with("rio check orders.csv: 2 rows, 2 valid, 0 invalid\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn rio_check_a_bad_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "rio;number\n02P1234564NH;0612345678\n",
    )
    .unwrap();
    let out = mvnobill(&["rio", "check", "--file", "orders.csv"], dir.path());
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr,
        "error: orders.csv line 1: required column 'msisdn' is missing from the header\n"
    );
    let out = mvnobill(&["rio", "check", "--file", "missing.csv"], dir.path());
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr,
        "error: missing.csv: cannot read: No such file or directory (os error 2)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn duration_without_a_configuration_converts_and_sums() {
    let dir = tempfile::tempdir().unwrap();
    let out = mvnobill(&["duration", "1h02m05s", "90", "00:01:30"], dir.path()).ok();
    assert_eq!(
        out.stdout,
        "1h02m05s  3725 s  1 h 2 min 5 s\n\
         90          90 s  1 min 30 s\n\
         00:01:30    90 s  1 min 30 s\n\
         total     3905 s  1 h 5 min 5 s\n\
         no configuration file mvnobill.toml: conversion and sum only (--config FILE for the billing per grid)\n"
    );
    let out = mvnobill(&["--json", "duration", "2m", "45s", "01:30"], dir.path()).ok();
    let report = out.json();
    assert_eq!(report["total_seconds"], 255);
    assert_eq!(report["total"], "4 min 15 s");
    assert_eq!(report["grids"].as_array().unwrap().len(), 0);
    assert!(report["config"].is_null());
}

#[test]
fn duration_bills_the_total_under_each_sample_grid() {
    let ws = Workspace::samples();
    // Voice increments read by hand from tests/fixtures/samples/reference/
    // rate_grids.csv (the same for every zone of a grid): grid 1 60/60,
    // grid 2 60/1, grid 3 1/1, grid 4 30/30, grid 5 60/30.
    // 3905 s: grid 1 → 60 + ceil(3845/60)=65 × 60 = 3960; grid 2 → 3905;
    // grid 3 → 3905; grid 4 → 30 + ceil(3875/30)=130 × 30 = 3930;
    // grid 5 → 60 + ceil(3845/30)=129 × 30 = 3930.
    let billed = |args: &[&str]| -> Vec<(u64, u64, u64, u64, bool)> {
        let mut all = vec!["--json", "duration", "--date", "2026-10-20"];
        all.extend_from_slice(args);
        let report = ws.run(&all).ok().json();
        assert_eq!(report["date"], "2026-10-20");
        report["grids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["grid"].as_u64().unwrap(),
                    g["first_increment"].as_u64().unwrap(),
                    g["next_increment"].as_u64().unwrap(),
                    g["billed_seconds"].as_u64().unwrap(),
                    g["every_zone"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        billed(&["1h02m05s", "90", "00:01:30"]),
        [
            (1, 60, 60, 3960, true),
            (2, 60, 1, 3905, true),
            (3, 1, 1, 3905, true),
            (4, 30, 30, 3930, true),
            (5, 60, 30, 3930, true),
        ]
    );
    // 61 s: one second past the first increment.
    let sixty_one: Vec<u64> = billed(&["61"]).iter().map(|g| g.3).collect();
    assert_eq!(sixty_one, [120, 61, 61, 90, 90]);
    // 20 s: within every first increment.
    let twenty: Vec<u64> = billed(&["20s"]).iter().map(|g| g.3).collect();
    assert_eq!(twenty, [60, 60, 20, 30, 60]);
    // 0 s bills nothing.
    let zero: Vec<u64> = billed(&["0"]).iter().map(|g| g.3).collect();
    assert_eq!(zero, [0, 0, 0, 0, 0]);

    let out = ws
        .run(&[
            "duration",
            "--date",
            "2026-10-20",
            "1h02m05s",
            "90",
            "00:01:30",
        ])
        .ok();
    let text = out.stdout;
    assert!(
        text.contains("one call of 3905 s, billed under the voice increments in force on 2026-10-20 (mvnobill.toml):\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  grid 1  60 s then 60 s        3960 s  1 h 6 min 0 s       every voice zone\n"
        ),
        "{text}"
    );

    // Before the grids' first version: nothing in force, and said so.
    let report = ws
        .run(&["--json", "duration", "--date", "2025-12-31", "61"])
        .ok()
        .json();
    assert_eq!(report["grids"].as_array().unwrap().len(), 0);
    assert!(report["note"]
        .as_str()
        .unwrap()
        .ends_with("rate_grids.csv is in force on 2025-12-31"));
}

#[test]
fn duration_a_bad_argument_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (arg, message) in [
        (
            "1h61",
            "error: duration '1h61' (argument 2): '1h61': the minutes (61) must be below 60",
        ),
        (
            "2x",
            "error: duration '2x' (argument 2): '2x' is not a duration (1h02m05s, 2m, 45s, 90, hh:mm:ss or mm:ss)",
        ),
        (
            "00:75",
            "error: duration '00:75' (argument 2): the seconds (75) must be below 60",
        ),
        (
            "1.5h",
            "error: duration '1.5h' (argument 2): '1.5h': whole seconds only, no decimals",
        ),
    ] {
        let out = mvnobill(&["duration", "90", arg], dir.path());
        assert_eq!(out.status, 1, "{arg}");
        assert_eq!(out.stderr, format!("{message}\n"), "{arg}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn sim_puk_prints_the_codes_to_the_desk_and_records_only_the_look_up() {
    // SIM_CMD2026.csv, read by hand: 89330000000632260020 is line
    // 33632260020 with PUK1 25497556 and PUK2 29263362;
    // 89330000000632260054 has PUK1 60587425 and PUK2 64620830.
    let ws = Workspace::samples();
    ws.run(&["sync"]).ok();
    ws.run(&["land"]).ok();
    let by_number = ws.run(&["sim", "puk", "06 32 26 00 20"]).ok();
    assert!(
        by_number.stdout.contains("89330000000632260020")
            && by_number.stdout.contains("PUK1 25497556")
            && by_number.stdout.contains("PUK2 29263362"),
        "{}",
        by_number.stdout
    );
    assert!(!by_number.stderr.contains("25497556"));
    let by_iccid = ws
        .run(&["--json", "sim", "puk", "89330000000632260054"])
        .ok()
        .json();
    assert_eq!(by_iccid["puk1"], "60587425");
    assert_eq!(by_iccid["puk2"], "64620830");
    assert_eq!(by_iccid["msisdn"], "33632260054");

    let unknown = ws.run(&["sim", "puk", "0699999999"]);
    assert_eq!(unknown.status, 1);
    assert_eq!(
        unknown.stderr.trim(),
        "error: no SIM card with 33699999999 in the PUK store"
    );
    let typo = ws.run(&["sim", "puk", "06 32 26"]);
    assert_eq!(typo.status, 1);
    assert!(
        typo.stderr.contains("neither a mobile number"),
        "{}",
        typo.stderr
    );

    // The ledger has the three look-ups that named a card, not the codes
    // (which only the private stores hold: the PUK store and the SIM order
    // files as delivered).
    let state = ws.lake().join("_state");
    let ledger: Vec<u8> = crate::common::walk(&state)
        .into_iter()
        .filter(|path| {
            !path.starts_with(state.join("secrets")) && !path.starts_with(state.join("sim-orders"))
        })
        .flat_map(|path| std::fs::read(path).unwrap())
        .collect();
    let ledger = String::from_utf8_lossy(&ledger);
    for code in ["25497556", "29263362", "60587425", "64620830"] {
        assert!(!ledger.contains(code), "{code} in the ledger");
    }
    assert!(ledger.contains("89330000000632260054") && ledger.contains("33699999999"));
}

/// `gen --months 2`: the months' CDRs with ids unique across them, and per
/// month a late file dated 4 to 6 days after it (after the 2nd of the next
/// month; a Sunday's the Monday after) holding only that month's roaming
/// events (visited network outside France and the EU); the same options
/// write the same bytes.
#[test]
fn gen_months_writes_late_files_of_roaming_events() {
    use chrono::{Datelike, NaiveDate};
    use std::collections::{BTreeMap, HashMap, HashSet};
    let dir = tempfile::tempdir().unwrap();
    let gen = |out: &str| {
        mvnobill(
            &[
                "--json",
                "gen",
                "--out",
                out,
                "--customers",
                "20",
                "--cdrs",
                "3000",
                "--months",
                "2",
                "--seed",
                "5",
            ],
            dir.path(),
        )
        .ok()
        .json()
    };
    let report = gen("a");
    assert_eq!(report["months"], 2);
    let a = dir.path().join("a");
    // MCC → roaming zone; an unlisted MCC is outside the EU.
    let zones: HashMap<String, String> =
        std::fs::read_to_string(a.join("reference/roaming_zones.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(';').collect();
                (f[0].to_string(), f[2].to_string())
            })
            .collect();
    let outside = |mccmnc: &str| {
        !matches!(
            zones.get(&mccmnc[..3]).map(String::as_str),
            Some("HOME" | "EU")
        )
    };
    let mut names: Vec<_> = std::fs::read_dir(a.join("ftp/RatedCDRs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (mut late_files, mut late_rows) = (BTreeMap::new(), 0u64);
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut prefixes = HashSet::new();
    for name in &names {
        let delivered = NaiveDate::parse_from_str(&name[10..18], "%Y%m%d").unwrap();
        let text = std::fs::read_to_string(a.join("ftp/RatedCDRs").join(name)).unwrap();
        let rows: Vec<Vec<String>> = text
            .lines()
            .skip(1)
            .map(|l| {
                l.trim_end_matches('\r')
                    .split(';')
                    .map(str::to_string)
                    .collect()
            })
            .collect();
        for r in &rows {
            // An id is one event: its copies (re-deliveries) are the same row.
            if let Some(before) = ids.insert(r[0].clone(), r.join(";")) {
                assert_eq!(before, r.join(";"), "{name}");
            }
            prefixes.insert(r[0][..7].to_string());
        }
        // Events of a month before the file's, delivered after the 2nd.
        let earlier = |r: &Vec<String>| {
            let d = NaiveDate::parse_from_str(&r[4][..10], "%d/%m/%Y");
            d.is_ok_and(|d| (d.year(), d.month()) < (delivered.year(), delivered.month()))
        };
        if delivered.day() > 2 && rows.iter().any(earlier) {
            assert!(rows.iter().all(earlier), "{name} mixes months");
            assert!(
                rows.iter().all(|r| outside(&r[9])),
                "{name} holds a non-roaming event"
            );
            let month_end = delivered.with_day(1).unwrap().pred_opt().unwrap();
            assert!(rows
                .iter()
                .all(|r| r[4][3..10] == month_end.format("%m/%Y").to_string()));
            let after = (delivered - month_end).num_days();
            assert!(
                (4..=7).contains(&after),
                "{name}: {after} days after the month"
            );
            assert_ne!(delivered.weekday(), chrono::Weekday::Sun, "{name}");
            late_rows += rows.len() as u64;
            late_files.insert(month_end.format("%Y-%m").to_string(), name.clone());
        }
    }
    assert_eq!(
        late_files.keys().collect::<Vec<_>>(),
        ["2026-10", "2026-11"],
        "{late_files:?}"
    );
    assert_eq!(report["late_cdrs"], late_rows);
    assert!(late_rows > 0);
    assert_eq!(
        prefixes,
        HashSet::from(["R202610".to_string(), "R202611".to_string()])
    );
    // Each month has its statement and its snapshots.
    for f in [
        "ftp/BilledCDRs/BilledCDRs_202610.csv",
        "ftp/BilledCDRs/BilledCDRs_202611.csv",
        "ftp/AccountStatus/AccountStatus_20261103_10.csv",
        "ftp/AccountStatus/AccountStatus_20261130_12.csv",
    ] {
        assert!(a.join(f).exists(), "{f}");
    }

    // The same options, the same bytes (but mvnobill.toml's absolute path).
    gen("b");
    let b = dir.path().join("b");
    let files = crate::common::walk(&a);
    assert_eq!(files.len(), crate::common::walk(&b).len());
    for f in files {
        let rel = f.strip_prefix(&a).unwrap();
        if rel == std::path::Path::new("mvnobill.toml") {
            continue;
        }
        assert!(
            std::fs::read(&f).unwrap() == std::fs::read(b.join(rel)).unwrap(),
            "{}",
            rel.display()
        );
    }
}
