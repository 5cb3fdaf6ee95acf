//! What the fuzz targets check, in one place for both runners: the
//! cargo-fuzz targets (`fuzz/fuzz_targets/*.rs` include this file by its
//! path) and the bounded runs of the suite (`tests/fuzz.rs`). An input is
//! the fuzzer's bytes: its first byte chooses the folder (land) or the
//! table (reference), the rest is the file.

use std::path::Path;

use mvnobill::stages::land::DeliveryCheck;

/// The four landed folders, each with a file name of its pattern.
pub const DELIVERIES: &[(&str, &str)] = &[
    ("RatedCDRs", "RatedCDRs_20261002_080700.csv"),
    ("BilledCDRs", "BilledCDRs_202610.csv"),
    ("AccountStatus", "AccountStatus_20261003_10.csv"),
    ("Cartes SIM", "SIM_CMD2026.csv"),
];

/// The upstream CSV decoder, as `land` runs it, on any bytes: it must not
/// panic, and every row read is landed or quarantined (rows in = landed +
/// quarantined, one quarantine entry per quarantined row, each with a line
/// ≥ 1 and a reason `CODE: detail`); a refusal names the file. `None` for
/// an input without even the choosing byte.
pub fn land_decode(data: &[u8]) -> Option<DeliveryCheck> {
    let (choice, bytes) = data.split_first()?;
    let (folder, name) = DELIVERIES[*choice as usize % DELIVERIES.len()];
    let check = mvnobill::stages::land::check_delivery(folder, name, bytes);
    let counts = &check.counts;
    assert_eq!(
        counts.rows_in,
        counts.landed + counts.quarantined,
        "rows in = landed + quarantined: {check:?}"
    );
    assert_eq!(
        check.quarantined.len() as u64,
        counts.quarantined,
        "one quarantine entry per quarantined row: {check:?}"
    );
    for (line, reason) in &check.quarantined {
        assert!(*line >= 1, "a quarantined row has a line: {check:?}");
        assert!(reason.contains(": "), "a reason is CODE: detail: {reason}");
    }
    if let Some(refused) = &check.refused {
        assert!(
            refused.contains(name),
            "a refusal names the file: {refused}"
        );
    }
    Some(check)
}

/// The samples' reference tables, (file name, bytes), in loading order.
pub fn sample_tables(dir: &Path) -> Vec<(String, Vec<u8>)> {
    mvnobill::reference::table_files()
        .map(|name| {
            // An optional table the samples do not have: its header alone.
            let bytes = match std::fs::read(dir.join(&name)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    mvnobill::reference::table_header(&name)
                        .map(|h| format!("{h}\n").into_bytes())
                        .unwrap_or_else(|| panic!("{}: {e}", dir.join(&name).display()))
                }
                read => read.unwrap_or_else(|e| panic!("{}: {e}", dir.join(&name).display())),
            };
            (name, bytes)
        })
        .collect()
}

/// The reference loader with one of the sample tables (the first byte
/// chooses) replaced by the rest of the input: loading and every validation
/// rule end in Ok or in an error naming the file, never a panic. What the
/// rating stage takes from a loaded reference is computed too. `None` for
/// an empty input, else whether the tables loaded (Err with its message).
pub fn reference_load(samples: &[(String, Vec<u8>)], data: &[u8]) -> Option<Result<(), String>> {
    let (choice, bytes) = data.split_first()?;
    let replaced = &samples[*choice as usize % samples.len()].0;
    let result = mvnobill::reference::Reference::from_files(|name| {
        let bytes = if name == replaced {
            bytes.to_vec()
        } else {
            samples
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .expect("a table of the samples")
        };
        Ok((name.to_string(), bytes))
    });
    Some(match result {
        Ok(reference) => {
            let _ = reference.prefix_zones();
            let _ = reference.increments();
            Ok(())
        }
        Err(error) => {
            let line = error.to_string();
            assert!(line.contains(".csv"), "an error names the file: {line}");
            Err(line)
        }
    })
}
