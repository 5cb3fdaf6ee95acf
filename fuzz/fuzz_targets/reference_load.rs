//! The reference-table loader: the samples' ten tables, with one of them
//! (the first byte chooses) replaced by the fuzzer's bytes. Loading and
//! validating must end in Ok or an error naming the file, never a panic.
//! The checks are those of the suite's bounded run
//! (`tests/fuzz/checks.rs`); its seed corpus is
//! `tests/fixtures/fuzz/reference_load/`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz/checks.rs"]
mod checks;

/// (file name, bytes) of each sample table.
static SAMPLES: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(|| {
    checks::sample_tables(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/samples/reference"),
    )
});

fuzz_target!(|data: &[u8]| {
    checks::reference_load(&SAMPLES, data);
});
