//! Hostile files: binary garbage, a 10 MB line, a million columns, a quote
//! never closed, Latin-1 text, an empty file, a header alone, mixed line
//! endings. As MVNE deliveries, each row is landed or quarantined with its
//! reason, or the file is refused with one (file, line); as a reference
//! table, the stage stops with one line naming the file and the line. Never
//! a panic, never a row lost. `tests/land_files.rs` has the everyday cases.

use crate::common::{fixtures, text, Output, Workspace};

const HEADER: &str = "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur";

fn good(id: &str) -> String {
    format!("{id};33632260020;;SMS;01/10/2026 10:00:00;33612345678;;;1;20801;0,01")
}

/// Bytes that look random and are the same on every run (xorshift).
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn assert_no_panic(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
            "{text}"
        );
    }
}

/// The deliveries, by file name, with what must come of each.
fn deliveries() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = Vec::new();
    files.push(("RatedCDRs_20261001_080000.csv", garbage(64 * 1024)));
    // A line of 10 MB between two good rows.
    let mut long = format!("{HEADER}\n{}\n", good("L1")).into_bytes();
    long.extend(std::iter::repeat_n(b'A', 10 << 20));
    long.extend(format!("\n{}\n", good("L2")).into_bytes());
    files.push(("RatedCDRs_20261001_090000.csv", long));
    // A header of a million columns (the real ones, then unknown ones).
    let mut wide = HEADER.to_string();
    for i in 0..1_000_000 {
        wide.push_str(&format!(";x{i}"));
    }
    files.push((
        "RatedCDRs_20261001_100000.csv",
        format!("{wide}\n{}\n", good("W1")).into_bytes(),
    ));
    // A row of a million fields, then a good one.
    let row = format!("{}{}", good("W2"), ";".repeat(1_000_000));
    files.push((
        "RatedCDRs_20261001_110000.csv",
        format!("{HEADER}\n{row}\n{}\n", good("W3")).into_bytes(),
    ));
    // A quote opened on line 3 and never closed: the file is cut.
    files.push((
        "RatedCDRs_20261001_120000.csv",
        format!(
            "{HEADER}\n{}\nQ2;\"3363226\n{}\n{}\n",
            good("Q1"),
            good("Q3"),
            good("Q4")
        )
        .into_bytes(),
    ));
    // A quote opened on line 3 and closed on line 4: one row, quarantined
    // with both lines (and so T3 with T2), the others land.
    files.push((
        "RatedCDRs_20261001_130000.csv",
        format!(
            "{HEADER}\n{}\n{}\n{}\n{}\n",
            good("T1"),
            good("T2").replace(";33632260020;", ";\"33632260020;"),
            good("T3").replace(";33632260020;", ";33632260020\";"),
            good("T4")
        )
        .into_bytes(),
    ));
    // Latin-1: 'é' as the byte 0xE9, in a cdr_id and in the header.
    let mut latin1 = format!("{HEADER}\n").into_bytes();
    latin1.extend_from_slice(good("R\u{e9}1").replace('\u{e9}', "\0").as_bytes());
    let at = latin1.iter().position(|b| *b == 0).unwrap();
    latin1[at] = 0xE9;
    latin1.extend(format!("\n{}\n", good("E2")).into_bytes());
    files.push(("RatedCDRs_20261001_140000.csv", latin1));
    files.push((
        "RatedCDRs_20261001_150000.csv",
        format!("{HEADER};ann\u{e9}e\n")
            .replace('\u{e9}', "\0")
            .into_bytes(),
    ));
    let last = files.len() - 1;
    let at = files[last].1.iter().position(|b| *b == 0).unwrap();
    files[last].1[at] = 0xE9;
    files.push(("RatedCDRs_20261001_160000.csv", Vec::new()));
    files.push((
        "RatedCDRs_20261001_170000.csv",
        format!("{HEADER}\n").into_bytes(),
    ));
    // CRLF, LF, a lone CR, CRLF: the bad row (an unknown event type) is on
    // line 4 as an editor shows it.
    files.push((
        "RatedCDRs_20261001_180000.csv",
        format!(
            "{HEADER}\r\n{}\n{}\r{}\r\n{}",
            good("M1"),
            good("M2"),
            good("M3").replace(";SMS;", ";FAX;"),
            good("M4")
        )
        .into_bytes(),
    ));
    files
}

#[test]
fn hostile_deliveries_are_landed_quarantined_or_refused_and_nothing_is_lost() {
    let ftp = tempfile::tempdir().unwrap();
    let rated = ftp.path().join("RatedCDRs");
    std::fs::create_dir_all(&rated).unwrap();
    let files = deliveries();
    for (name, bytes) in &files {
        std::fs::write(rated.join(name), bytes).unwrap();
    }
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        ftp.path(),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    let sync = ws.run(&["--json", "sync"]).ok();
    assert_no_panic(&sync);
    let out = ws.run(&["--json", "land"]);
    assert_no_panic(&out);
    let report = out.ok().json();
    let landed = report["files"].as_array().unwrap();
    assert_eq!(landed.len(), files.len());
    let quarantine = ws.query(
        "SELECT source_file, line, reason, length(raw) AS raw_length FROM quarantine ORDER BY source_file, line",
    );
    let by_file = |name: &str| -> (&serde_json::Value, Vec<(String, String, String)>) {
        let file = landed.iter().find(|f| f["file"] == name).unwrap();
        let rows = quarantine
            .iter()
            .filter(|r| text(r, "source_file") == name)
            .map(|r| (text(r, "line"), text(r, "reason"), text(r, "raw_length")))
            .collect();
        (file, rows)
    };
    for (name, _) in &files {
        let (file, rows) = by_file(name);
        let n = |k: &str| file[k].as_u64().unwrap();
        assert_eq!(n("rows_in"), n("landed") + n("quarantined"), "{file}");
        assert_eq!(rows.len() as u64, n("quarantined"), "{name}: {rows:?}");
        for (_, reason, _) in &rows {
            assert!(
                reason.len() < 1200,
                "{name}: a reason of {} bytes",
                reason.len()
            );
        }
    }
    let refused = |name: &str| by_file(name).0["refused"].as_str().map(str::to_string);

    // Garbage: refused whole, named; its one quarantine row says why.
    let (file, rows) = by_file(files[0].0);
    assert_eq!(file["landed"], 0);
    assert!(refused(files[0].0).unwrap().contains(files[0].0));
    assert!(
        rows[0].1.starts_with("REFUSED_FILE: ") || rows[0].1.starts_with("MISSING_COLUMN: "),
        "{rows:?}"
    );

    // The 10 MB line: quarantined whole on line 3, the good rows land.
    let (file, rows) = by_file(files[1].0);
    assert_eq!(
        (file["landed"].as_u64(), file["quarantined"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(rows[0].0, "3");
    assert!(
        rows[0]
            .1
            .starts_with("FIELD_COUNT: the row has 1 fields, the header 11"),
        "{rows:?}"
    );
    assert_eq!(
        rows[0].2,
        (10 << 20).to_string(),
        "the raw line is kept whole"
    );

    // A million columns in the header: the row has 11, quarantined; the
    // warning names ten unknown columns, not a million.
    let (file, rows) = by_file(files[2].0);
    assert_eq!(file["quarantined"], 1);
    assert!(
        rows[0]
            .1
            .starts_with("FIELD_COUNT: the row has 11 fields, the header 1000011"),
        "{rows:?}"
    );
    let warning = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .find(|w| w.starts_with(files[2].0))
        .unwrap();
    assert!(
        warning.ends_with("x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 and 999990 more"),
        "{warning}"
    );

    // A row of a million fields: quarantined, the next one lands.
    let (file, rows) = by_file(files[3].0);
    assert_eq!(
        (file["landed"].as_u64(), file["quarantined"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        rows[0]
            .1
            .starts_with("FIELD_COUNT: the row has 1000011 fields"),
        "{rows:?}"
    );

    // A quote never closed: the file is refused at line 3, nothing of it lands.
    let (file, rows) = by_file(files[4].0);
    assert_eq!(file["landed"], 0);
    let why = refused(files[4].0).unwrap();
    assert_eq!(
        why,
        format!("{} line 3: a quoted field opened on this line is never closed (the file is cut or broken)", files[4].0)
    );
    assert_eq!(
        rows,
        vec![(
            "3".to_string(),
            format!("REFUSED_FILE: {why}"),
            "0".to_string()
        )]
    );

    // A quote closed a line late: lines 3 and 4 are one row, quarantined,
    // and the reason says it runs over both.
    let (file, rows) = by_file(files[5].0);
    assert_eq!(
        (file["landed"].as_u64(), file["quarantined"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(rows[0].0, "3");
    assert_eq!(rows[0].1, "LINE_BREAK: the row runs from line 3 to line 4: a quoted field holds a line break (a quote is not closed where it should be)");

    // Latin-1: the row is quarantined as BAD_ENCODING; a Latin-1 header
    // refuses the file.
    let (file, rows) = by_file(files[6].0);
    assert_eq!(
        (file["landed"].as_u64(), file["quarantined"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(rows[0].1.starts_with("BAD_ENCODING: "), "{rows:?}");
    assert_eq!(
        refused(files[7].0).unwrap(),
        format!("{} line 1: the header is not valid UTF-8", files[7].0)
    );

    // Empty: refused; a header alone: no row, nothing refused.
    assert!(refused(files[8].0)
        .unwrap()
        .ends_with("the file is empty (no header line)"));
    let (file, rows) = by_file(files[9].0);
    assert_eq!((file["rows_in"].as_u64(), rows.len()), (Some(0), 0));
    assert_eq!(refused(files[9].0), None);

    // Mixed line endings: 3 rows land, the bad one is line 4.
    let (file, rows) = by_file(files[10].0);
    assert_eq!(
        (file["landed"].as_u64(), file["quarantined"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(rows[0].0, "4");
    assert!(
        rows[0].1.starts_with("UNKNOWN_VALUE: event_type: 'FAX'"),
        "{rows:?}"
    );

    // Landed rows are queryable, the good ones only.
    let ids: Vec<String> = ws
        .query("SELECT cdr_id FROM cdrs ORDER BY cdr_id")
        .iter()
        .map(|r| text(r, "cdr_id"))
        .collect();
    assert_eq!(ids, ["E2", "L1", "L2", "M1", "M2", "M4", "T1", "T4", "W3"]);
}

/// A copy of the samples' reference tables with `customers.csv` replaced.
fn reference_with_customers(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let samples = fixtures().join("samples/reference");
    for entry in std::fs::read_dir(&samples).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("customers.csv"), bytes).unwrap();
    dir
}

#[test]
fn hostile_reference_tables_stop_the_stage_with_one_line() {
    let samples = fixtures().join("samples");
    let customers = std::fs::read_to_string(samples.join("reference/customers.csv")).unwrap();
    let (header, rows) = customers.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let with_line = |at: usize, line: &str| {
        let mut all: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        all.insert(at, line.to_string());
        format!("{header}\n{}\n", all.join("\n")).into_bytes()
    };
    let mut latin1 = with_line(
        2,
        &rows[0]
            .replace("C00001", "C09999")
            .replace("SARL Dupont", "SARL D\0pont"),
    );
    let at = latin1.iter().position(|b| *b == 0).unwrap();
    latin1[at] = 0xE9;
    let extra: String = (0..1_000_000).map(|i| format!(";x{i}")).collect();
    let wide_header = format!("{header}{extra}\n{}\n", rows.join("\n"));
    let mixed = format!(
        "{header}\r\n{}\n{}\r{}\r\n{}\n",
        rows[0],
        rows[1],
        rows[2].replace(";B2C;", ";B2X;").replace(";B2B;", ";B2X;"),
        rows[3..].join("\n")
    );
    // (what the table holds, what the one line must say after the path)
    let cases: Vec<(Vec<u8>, String)> = vec![
        // Binary garbage: its first line, read as the header, is not text.
        (garbage(64 * 1024), "customers.csv line 1: the header is not valid UTF-8".into()),
        (with_line(1, &"A".repeat(10 << 20)), "customers.csv line 3, column customer_id: the row has 1 fields, the header 16".into()),
        (wide_header.into_bytes(), "customers.csv line 2, column customer_id: the row has 16 fields, the header 1000016".into()),
        (with_line(rows.len(), "C09999;B2C;\"Jean"), format!("customers.csv line {}: a quoted field opened on this line is never closed (the file is cut or broken)", rows.len() + 2)),
        // Closed by the quotes of C00009's name: lines 3 to 11 would be one
        // customer, and eight customers lost in its name.
        (with_line(1, "C09999;B2C;\"Jean"), "customers.csv line 3, column name: a value holds a line break: the row runs from line 3 to line 11 (a quote is not closed where it should be)".into()),
        (latin1, "customers.csv line 4, column name: the field is not valid UTF-8".into()),
        (Vec::new(), "customers.csv: the file is empty (no header line)".into()),
        (format!("{header}\n").into_bytes(), "column customer_id: unknown customer '".into()),
        (mixed.into_bytes(), "customers.csv line 4, column kind: 'B2X' is not one of".into()),
    ];
    for (i, (bytes, expected)) in cases.iter().enumerate() {
        // An empty expectation is in every line: it would check nothing.
        assert!(
            expected.len() >= 20,
            "case {i}: {expected:?} says too little of what the line must hold"
        );
        let reference = reference_with_customers(bytes);
        let ws = Workspace::new(
            &samples.join("ftp"),
            reference.path(),
            &samples.join("integrator.toml"),
        );
        let out = ws.run(&["rate", "--month", "2026-10"]);
        assert_no_panic(&out);
        assert_eq!(out.status, 1, "case {i}: {}", out.stderr);
        let stderr = out.stderr.trim_end();
        assert_eq!(stderr.lines().count(), 1, "case {i}: {stderr}");
        assert!(stderr.starts_with("error: "), "case {i}: {stderr}");
        assert!(stderr.len() < 1200, "case {i}: {} bytes", stderr.len());
        assert!(stderr.contains(".csv"), "case {i}: {stderr}");
        assert!(stderr.contains(expected.as_str()), "case {i}: {stderr}");
    }
}
