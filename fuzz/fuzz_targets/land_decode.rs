//! The upstream CSV decoder, as `land` runs it: any bytes, as a delivery of
//! any of the four landed folders (the first byte chooses). It must never
//! panic, and every row read is landed or quarantined: rows in = landed +
//! quarantined, one quarantine entry per quarantined row.
#![no_main]

use libfuzzer_sys::fuzz_target;

const DELIVERIES: &[(&str, &str)] = &[
    ("RatedCDRs", "RatedCDRs_20261002_080700.csv"),
    ("BilledCDRs", "BilledCDRs_202610.csv"),
    ("AccountStatus", "AccountStatus_20261003_10.csv"),
    ("Cartes SIM", "SIM_CMD2026.csv"),
];

fuzz_target!(|data: &[u8]| {
    let Some((choice, bytes)) = data.split_first() else {
        return;
    };
    let (folder, name) = DELIVERIES[*choice as usize % DELIVERIES.len()];
    let check = mvnobill::stages::land::check_delivery(folder, name, bytes);
    let counts = &check.counts;
    assert_eq!(
        counts.rows_in,
        counts.landed + counts.quarantined,
        "{check:?}"
    );
    assert_eq!(
        check.quarantined.len() as u64,
        counts.quarantined,
        "{check:?}"
    );
    for (line, reason) in &check.quarantined {
        assert!(*line >= 1, "{check:?}");
        assert!(reason.contains(": "), "a reason is CODE: detail: {reason}");
    }
    if let Some(refused) = &check.refused {
        assert!(
            refused.contains(name),
            "a refusal names the file: {refused}"
        );
    }
});
