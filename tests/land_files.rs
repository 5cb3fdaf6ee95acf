//! Landing broken files: each bad row quarantined with its reason, a file
//! without a required column refused whole, nothing lost (rows in = landed
//! + quarantined), and re-delivery rules.

use crate::common::{fixtures, text, walk, Workspace};

const HEADER: &str = "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur";

fn workspace_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Workspace) {
    let ftp = tempfile::tempdir().unwrap();
    let rated = ftp.path().join("RatedCDRs");
    std::fs::create_dir_all(&rated).unwrap();
    for (name, bytes) in files {
        std::fs::write(rated.join(name), bytes).unwrap();
    }
    let samples = fixtures().join("samples");
    let ws = Workspace::new(
        ftp.path(),
        &samples.join("reference"),
        &samples.join("integrator.toml"),
    );
    (ftp, ws)
}

fn land(ws: &Workspace) -> serde_json::Value {
    ws.run(&["--json", "sync"]).ok();
    ws.run(&["--json", "land"]).ok().json()
}

#[test]
fn broken_files_are_quarantined_or_refused_and_counts_reconcile() {
    let good = "R1;33632260020;;VOICE;01/10/2026 10:00:00;33612345678;60;;;20801;0,01";
    // A Latin-1 'é' (byte 0xE9) in the second row's cdr_id: not UTF-8.
    let mut latin1 =
        format!("{HEADER}\nR2;33632260020;;SMS;01/10/2026 10:00:00;33612345678;;;1;20801;0,01\n")
            .into_bytes();
    latin1.extend_from_slice(
        b"R\xE9;33632260020;;SMS;01/10/2026 10:00:00;33612345678;;;1;20801;0,01\n",
    );
    let missing_column = "cdr_id;msisdn;event_type\nR3;33632260020;VOICE\n".to_string();
    let header_only = format!("{HEADER}\r\n");
    let crlf_bom = format!("\u{feff}{HEADER}\r\n{}\r\n", good.replace("R1", "R4"));
    let (_ftp, ws) = workspace_with(&[
        ("RatedCDRs_20261001_100000.csv", latin1.as_slice()),
        ("RatedCDRs_20261001_110000.csv", missing_column.as_bytes()),
        ("RatedCDRs_20261001_120000.csv", b""),
        ("RatedCDRs_20261001_130000.csv", header_only.as_bytes()),
        ("RatedCDRs_20261001_140000.csv", crlf_bom.as_bytes()),
    ]);
    let report = land(&ws);
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    for file in files {
        assert_eq!(
            file["rows_in"].as_u64().unwrap(),
            file["landed"].as_u64().unwrap() + file["quarantined"].as_u64().unwrap(),
            "{file}"
        );
    }
    // Latin-1: the good row lands, the bad one is quarantined as BAD_ENCODING.
    assert_eq!(files[0]["landed"], 1);
    assert_eq!(files[0]["quarantined"], 1);
    // Missing columns: refused whole, with the file and the column named.
    assert_eq!(files[1]["quarantined"], 1);
    let refused = files[1]["refused"].as_str().unwrap();
    assert!(
        refused.contains("RatedCDRs_20261001_110000.csv") && refused.contains("'imsi'")
            || refused.contains("'start_time'"),
        "{refused}"
    );
    // An empty file is refused (no header); a header alone is 0 rows.
    assert!(files[2]["refused"].as_str().unwrap().contains("empty"));
    assert_eq!(files[3]["rows_in"], 0);
    assert_eq!(files[3]["refused"], serde_json::Value::Null);
    assert_eq!(files[4]["new_rows"], 1);

    let reasons =
        ws.query("SELECT source_file, line, reason FROM quarantine ORDER BY source_file, line");
    let text: Vec<String> = reasons
        .iter()
        .map(|r| format!("{} {} {}", r["source_file"], r["line"], r["reason"]))
        .collect();
    assert!(
        text[0].contains("RatedCDRs_20261001_100000.csv")
            && text[0].contains("\"3\"")
            && text[0].contains("BAD_ENCODING"),
        "{text:?}"
    );
    assert!(text[1].contains("MISSING_COLUMN"), "{text:?}");
}

#[test]
fn redelivery_same_bytes_is_a_no_op_and_other_bytes_a_new_version() {
    let rows = "R1;33632260020;;SMS;01/10/2026 10:00:00;33612345678;;;1;20801;0,01\n";
    let file = format!("{HEADER}\n{rows}");
    let (ftp, ws) = workspace_with(&[("RatedCDRs_20261001_100000.csv", file.as_bytes())]);
    let first = land(&ws);
    assert_eq!(first["totals"]["new_rows"], 1);
    // Same name, same bytes: nothing fetched, nothing landed.
    let again = ws.run(&["--json", "sync"]).ok().json();
    assert_eq!(again["files_fetched"], 0);
    assert_eq!(again["already_fetched"], 1);
    // Same name, other bytes: a new version; only its new row lands, the
    // repeated R1 counts as a duplicate.
    let corrected = format!(
        "{HEADER}\n{rows}R2;33632260020;;SMS;01/10/2026 11:00:00;33612345678;;;1;20801;0,01\n"
    );
    std::fs::write(
        ftp.path().join("RatedCDRs/RatedCDRs_20261001_100000.csv"),
        corrected,
    )
    .unwrap();
    let sync = ws.run(&["--json", "sync"]).ok().json();
    assert_eq!(
        sync["new_versions"][0],
        "RatedCDRs/RatedCDRs_20261001_100000.csv"
    );
    let second = ws.run(&["--json", "land"]).ok().json();
    assert_eq!(second["totals"]["new_rows"], 1);
    assert_eq!(second["totals"]["duplicates"], 1);
    let count = ws.query("SELECT COUNT(*) AS n FROM cdrs");
    assert_eq!(count[0]["n"], "2");
}

/// From a folder, a file fetched before is known by its name, size and
/// modification time, without being read again; rewritten in place with
/// other bytes of the same size, it has another time and is a new version.
#[test]
fn a_file_rewritten_with_the_same_size_is_a_new_version() {
    let row = |units: u32| {
        format!("R1;33632260020;;SMS;01/10/2026 10:00:00;33612345678;;;{units};20801;0,01\n")
    };
    let file = format!("{HEADER}\n{}", row(1));
    let (ftp, ws) = workspace_with(&[("RatedCDRs_20261001_100000.csv", file.as_bytes())]);
    land(&ws);
    let again = ws.run(&["--json", "sync"]).ok().json();
    assert_eq!(again["already_fetched"], 1);
    // Past the file system's clock step: the rewrite gets another time.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let path = ftp.path().join("RatedCDRs/RatedCDRs_20261001_100000.csv");
    std::fs::write(&path, format!("{HEADER}\n{}", row(2))).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), file.len() as u64);
    let sync = ws.run(&["--json", "sync"]).ok().json();
    assert_eq!(sync["files_fetched"], 1, "{sync}");
    assert_eq!(
        sync["new_versions"][0],
        "RatedCDRs/RatedCDRs_20261001_100000.csv"
    );
}

/// rating.md §1 across deliveries landed on different runs: the `cdr_id`
/// index is kept between runs (pipeline/stages/cdrindex.rs), and rebuilt from the
/// `cdrs` dataset when it is missing, with the same verdicts.
#[test]
fn duplicates_and_conflicts_across_runs_with_the_index_kept_or_rebuilt() {
    let row = |id: &str, hour: u32, units: u32| {
        format!(
            "{id};33632260020;;SMS;01/10/2026 {hour:02}:00:00;33612345678;;;{units};20801;0,01\n"
        )
    };
    let (ftp, ws) = workspace_with(&[(
        "RatedCDRs_20261001_100000.csv",
        format!("{HEADER}\n{}{}", row("R1", 10, 1), row("R2", 11, 1)).as_bytes(),
    )]);
    let first = land(&ws);
    assert_eq!(first["cdr_index"], "empty");
    assert_eq!(first["totals"]["new_rows"], 2);
    let deliver = |name: &str, body: String| {
        std::fs::write(
            ftp.path().join("RatedCDRs").join(name),
            format!("{HEADER}\n{body}"),
        )
        .unwrap();
        land(&ws)
    };
    // R2 again as it was (a duplicate), R1 with other content (a conflict).
    let second = deliver(
        "RatedCDRs_20261001_120000.csv",
        format!(
            "{}{}{}",
            row("R2", 11, 1),
            row("R1", 10, 2),
            row("R3", 12, 1)
        ),
    );
    assert_eq!(second["cdr_index"], "kept");
    assert_eq!(second["totals"]["new_rows"], 1);
    assert_eq!(second["totals"]["duplicates"], 1);
    assert_eq!(second["totals"]["conflicts"], 1);
    let conflict = ws.query("SELECT cdr_id, first_source_file FROM cdr_conflicts");
    assert_eq!(conflict.len(), 1);
    assert_eq!(conflict[0]["cdr_id"], "R1");
    assert!(
        conflict[0]["first_source_file"]
            .as_str()
            .unwrap()
            .starts_with("RatedCDRs_20261001_100000"),
        "{conflict:?}"
    );
    // The index lost: rebuilt from the lake, same verdicts.
    let index = ws.lake().join("_state/cdr_index");
    assert!(index.join("delta.bin").exists());
    std::fs::remove_dir_all(&index).unwrap();
    let third = deliver(
        "RatedCDRs_20261001_140000.csv",
        format!("{}{}", row("R3", 12, 1), row("R4", 14, 1)),
    );
    assert_eq!(third["cdr_index"], "rebuilt");
    assert_eq!(third["totals"]["new_rows"], 1);
    assert_eq!(third["totals"]["duplicates"], 1);
    // Kept again on the next delivery.
    let fourth = deliver(
        "RatedCDRs_20261001_160000.csv",
        format!("{}{}", row("R4", 14, 1), row("R1", 10, 3)),
    );
    assert_eq!(fourth["cdr_index"], "kept");
    assert_eq!(fourth["totals"]["duplicates"], 1);
    assert_eq!(fourth["totals"]["conflicts"], 1);
    let count = ws.query("SELECT COUNT(*) AS n, COUNT(DISTINCT cdr_id) AS ids FROM cdrs");
    assert_eq!(count[0]["n"], "4");
    assert_eq!(count[0]["ids"], "4");
}

/// rating.md §1: of two copies with other content, the one from the file
/// whose name sorts first is billed, though it lands in a later run, and
/// even in another month (a copy with another date): the first landed copy
/// becomes the CONFLICTING_DUPLICATE of its own month.
#[test]
fn the_copy_from_the_file_sorting_first_is_billed_whatever_the_landing_order() {
    let row = |date: &str, duration: u32| {
        format!("X1;33632260020;;VOICE;{date};33612345678;{duration};;;20801;0,01\n")
    };
    // The later-sorting file lands first: X1 on 31 October, 23:30 (Paris).
    let (ftp, ws) = workspace_with(&[(
        "RatedCDRs_20261102_120000.csv",
        format!("{HEADER}\n{}", row("31/10/2026 23:30:00", 60)).as_bytes(),
    )]);
    assert_eq!(land(&ws)["totals"]["new_rows"], 1);
    // Then the earlier-sorting one, with X1 an hour later: 1 November.
    std::fs::write(
        ftp.path().join("RatedCDRs/RatedCDRs_20261101_120000.csv"),
        format!("{HEADER}\n{}", row("01/11/2026 00:30:00", 125)),
    )
    .unwrap();
    assert_eq!(land(&ws)["totals"]["conflicts"], 1);
    let rate = |month: &str| ws.run(&["--json", "rate", "--month", month]).ok().json();
    // October: the copy landed there is not billed.
    let october = rate("2026-10");
    assert_eq!(october["cdrs"], 0, "{october}");
    assert_eq!(october["rated"], 0, "{october}");
    assert_eq!(
        october["exceptions"]["CONFLICTING_DUPLICATE"], 1,
        "{october}"
    );
    let excepted =
        ws.query("SELECT cdr_id, source_file FROM rating_exceptions WHERE month = '2026-10'");
    assert_eq!(excepted.len(), 1, "{excepted:?}");
    assert_eq!(excepted[0]["source_file"], "RatedCDRs_20261102_120000.csv");
    // November: the copy of the file sorting first is, once.
    let november = rate("2026-11");
    assert_eq!(november["cdrs"], 1, "{november}");
    assert_eq!(november["rated"], 1, "{november}");
    assert_eq!(november["exceptions"], serde_json::json!({}), "{november}");
    let rated =
        ws.query("SELECT cdr_id, local_date, source_file FROM rated_cdrs WHERE month = '2026-11'");
    assert_eq!(rated.len(), 1, "{rated:?}");
    assert_eq!(rated[0]["local_date"], "2026-11-01");
    assert_eq!(rated[0]["source_file"], "RatedCDRs_20261101_120000.csv");
    let october_rated = ws.query("SELECT cdr_id FROM rated_cdrs WHERE month = '2026-10'");
    assert!(october_rated.is_empty(), "{october_rated:?}");
}

#[test]
fn puk_codes_stay_out_of_the_lake_and_the_reports() {
    let samples = fixtures().join("samples");
    let ws = Workspace::samples();
    let out = ws.run(&["--json", "run", "--month", "2026-10"]).ok();
    let sim = std::fs::read_to_string(samples.join("ftp/Cartes SIM/SIM_CMD2026.csv")).unwrap();
    let puks: Vec<String> = sim
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split(';')
                .skip(4)
                .take(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(puks.len() > 10);
    let sims = ws.query("SELECT * FROM sim_cards");
    assert_eq!(sims.len(), sim.lines().count() - 1);
    assert!(!sims[0].contains_key("puk1"));
    // No PUK in any lake file, nor in the output.
    let mut lake_bytes = Vec::new();
    for entry in walk(&ws.lake()) {
        if !entry.starts_with(ws.lake().join("_state")) {
            lake_bytes.extend(std::fs::read(&entry).unwrap());
        }
    }
    let lake_text = String::from_utf8_lossy(&lake_bytes);
    for puk in &puks {
        assert!(!out.stdout.contains(puk.as_str()) && !out.stderr.contains(puk.as_str()));
        assert!(
            !lake_text.contains(puk.as_str()),
            "a PUK code is in the lake"
        );
    }
    // The private store has them, readable by its owner only.
    let store = ws.lake().join("_state/secrets/puk.sqlite");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o077,
        0
    );
}

/// A delivery above land's 64 MB threshold is decoded a chunk of 256K rows
/// at a time (land.rs `STREAMED_FILE_BYTES`, `ROWS_PER_CHUNK`): made here,
/// 720,000 rows over three chunks and two months, with bad rows in the
/// first, second and last chunk, repeats in later chunks of rows of earlier
/// ones (identical: duplicates; other content: a conflict). The counts
/// reconcile and every CDR lands once.
#[test]
fn a_delivery_above_the_chunk_size_lands_in_chunks() {
    const STREAMED_FILE_BYTES: usize = 64 << 20;
    const ROWS_PER_CHUNK: usize = 256 * 1024;
    const ROWS: usize = 720_000;
    let row = |i: usize, duration: u32| {
        // The first of each thousand on the 30th of September (Paris).
        let (day, month) = if i.is_multiple_of(1000) {
            (30, 9)
        } else {
            (1 + i % 28, 10)
        };
        format!(
            "B{i:09};336322{:05};2080106322{:05};VOICE;{day:02}/{month:02}/2026 {:02}:{:02}:{:02};33612345678;{duration};;;20801;0,{:04}\n",
            i % 3000,
            i % 3000,
            i / 3600 % 24,
            i / 60 % 60,
            i % 60,
            i % 10000
        )
        .into_bytes()
    };
    // Bad rows (by their index among the data rows) and their reason code.
    let bad: [(usize, &[u8], &str); 4] = [
        (
            1_000,
            b"X1;33632200001;;VOICE;31/02/2026 10:00:00;33612345678;60;;;20801;0,01\n",
            "BAD_TIMESTAMP",
        ),
        (
            ROWS_PER_CHUNK,
            b"X2;33632200001;;VOICE;01/10/2026 10:00:00;33612345678;60;;;20801;abc\n",
            "BAD_NUMBER",
        ),
        (
            400_000,
            b"X\xE93;33632200001;;VOICE;01/10/2026 10:00:00;33612345678;60;;;20801;0,01\n",
            "BAD_ENCODING",
        ),
        (ROWS - 10, b"X4;33632200001;;VOICE\n", "FIELD_COUNT"),
    ];
    let mut lines: Vec<Vec<u8>> = (0..ROWS).map(|i| row(i, 60)).collect();
    // In the second chunk, row 10 with another duration: a conflict. At the
    // end (third chunk), rows of the first and second chunks again as they
    // were: duplicates.
    lines.insert(300_000, row(10, 61));
    let repeated = [5, 6, 7, 300_500];
    // In order, each lands at its index.
    for (at, line, _) in &bad {
        lines.insert(*at, line.to_vec());
    }
    lines.extend(repeated.iter().map(|&i| row(i, 60)));
    let rows_in = lines.len();
    assert!(rows_in > 2 * ROWS_PER_CHUNK, "three chunks");
    let mut file = HEADER.as_bytes().to_vec();
    file.push(b'\n');
    file.extend(lines.concat());
    assert!(
        file.len() > STREAMED_FILE_BYTES,
        "{} bytes: not above the threshold",
        file.len()
    );

    let name = "RatedCDRs_20261031_235900.csv";
    let (_ftp, ws) = workspace_with(&[(name, file.as_slice())]);
    drop(file);
    let report = land(&ws);
    let counts = &report["files"][0];
    assert_eq!(counts["file"], name, "{report}");
    assert_eq!(counts["refused"], serde_json::Value::Null, "{report}");
    assert_eq!(counts["rows_in"], rows_in, "{report}");
    assert_eq!(counts["quarantined"], bad.len(), "{report}");
    assert_eq!(counts["landed"], rows_in - bad.len(), "{report}");
    assert_eq!(counts["duplicates"], repeated.len(), "{report}");
    assert_eq!(counts["conflicts"], 1, "{report}");
    assert_eq!(counts["new_rows"], ROWS, "{report}");

    // Each bad row quarantined at its line (the header is line 1).
    let quarantined = ws.query("SELECT line, reason FROM quarantine ORDER BY line");
    let got: Vec<(String, String)> = quarantined
        .iter()
        .map(|r| (text(r, "line"), text(r, "reason")))
        .collect();
    assert_eq!(got.len(), bad.len(), "{got:?}");
    for ((at, _, code), (line, reason)) in bad.iter().zip(&got) {
        assert_eq!(*line, (at + 2).to_string(), "{got:?}");
        assert!(reason.starts_with(code), "{code}: {reason}");
    }
    let landed = ws.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT cdr_id) AS ids, \
         SUM(CASE WHEN local_date < '2026-10-01' THEN 1 ELSE 0 END) AS september \
         FROM cdrs",
    );
    assert_eq!(landed[0]["n"], ROWS.to_string());
    assert_eq!(landed[0]["ids"], ROWS.to_string());
    assert_eq!(landed[0]["september"], (ROWS / 1000).to_string());
    // The first copy stays; the other is in cdr_conflicts.
    let conflict = ws.query("SELECT cdr_id, duration_s FROM cdr_conflicts");
    assert_eq!(conflict.len(), 1, "{conflict:?}");
    assert_eq!(conflict[0]["cdr_id"], "B000000010");
    assert_eq!(text(&conflict[0], "duration_s"), "61");
    let first = ws.query("SELECT duration_s FROM cdrs WHERE cdr_id = 'B000000010'");
    assert_eq!(text(&first[0], "duration_s"), "60");
    for month in ["2026-09", "2026-10"] {
        assert!(
            ws.lake()
                .join(format!(
                    "cdrs/month={month}/RatedCDRs_20261031_235900.parquet"
                ))
                .exists(),
            "no {month} file"
        );
    }
}
