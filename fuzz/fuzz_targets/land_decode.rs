//! The upstream CSV decoder, as `land` runs it: any bytes, as a delivery of
//! any of the four landed folders (the first byte chooses). It must never
//! panic, and every row read is landed or quarantined: rows in = landed +
//! quarantined, one quarantine entry per quarantined row. The checks are
//! those of the suite's bounded run (`tests/fuzz/checks.rs`); its seed
//! corpus is `tests/fixtures/fuzz/land_decode/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::land_decode(data);
});
