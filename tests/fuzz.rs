//! The two fuzz targets of `fuzz/` (cargo-fuzz, which needs a nightly
//! compiler and is never run by CI) as bounded runs in the suite, on
//! stable: the same checks (`fuzz/checks.rs`, which the cargo-fuzz targets
//! include too) on the committed seed corpus (`tests/fixtures/fuzz/<target>/`,
//! also a corpus for cargo-fuzz), then on inputs made from it by a seeded
//! mutator that knows the format's bytes (separators, quotes, line ends, a
//! BOM, Latin-1, times in the DST changes, huge numbers, column names).
//!
//! The runs are the same every time (a fixed seed). To fuzz more:
//! `MVNOBILL_FUZZ_CASES=100000 MVNOBILL_FUZZ_SEED=7 cargo test --test suite
//! fuzz::`. An input that fails is saved under cargo's target folder
//! (`tmp/fuzz-failures/`), named in the failure: add it to the corpus once
//! fixed.

mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::fixtures;

/// The longest input made, as the cargo-fuzz runs of docs/RELIABILITY.md
/// (`-max_len=16384`).
const MAX_LEN: usize = 16 * 1024;

/// Bytes the decoders treat specially, and values at their edges.
const TOKENS: &[&[u8]] = &[
    b";",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r",
    b"\r\n",
    b"\xEF\xBB\xBF",
    b"\0",
    b"\xE9",
    b"\xC3",
    b"\xFF\xFE",
    b",",
    b".",
    b"-",
    b" ",
    b"0",
    b"1",
    b"99999999999999999999999999999",
    b"-0,0001",
    b"1e308",
    b"NaN",
    b"29/03/2026 02:30:00",
    b"25/10/2026 02:30:00",
    b"31/12/9999 23:59:59",
    b"00/00/0000 00:00:00",
    b"29/02/2026",
    b"2026-02-30",
    b"VOICE",
    b"SMS",
    b"SMS_IN",
    b"DATA",
    b"MMS",
    b"cdr_id",
    b"msisdn",
    b"start_time",
    b"wholesale_eur",
    b"true",
    b"false",
    b"HOME",
    b"FR_MOBILE",
];

/// Cases made by the mutator per target, unless `MVNOBILL_FUZZ_CASES` says.
fn cases(default: usize) -> usize {
    std::env::var("MVNOBILL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("MVNOBILL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261207)
}

/// The committed seed corpus of a target, (file name, bytes), by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fixtures().join("fuzz").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the seed corpus of {target} is missing");
    files
}

/// Makes inputs from a corpus: a few mutations of one of its files (bytes
/// and tokens put in, cut out or repeated; lines repeated, dropped or
/// swapped; a field replaced; a splice with another file; the choosing
/// byte changed), or now and then bytes at random.
struct Mutator {
    rng: ChaCha8Rng,
}

impl Mutator {
    fn input(&mut self, corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
        let rng = &mut self.rng;
        if rng.random_ratio(1, 50) {
            let len = rng.random_range(0..512);
            return (0..len).map(|_| rng.random()).collect();
        }
        let mut data = corpus[rng.random_range(0..corpus.len())].1.clone();
        for _ in 0..rng.random_range(1..=8) {
            mutate(rng, &mut data, corpus);
        }
        data.truncate(MAX_LEN);
        data
    }
}

fn mutate(rng: &mut ChaCha8Rng, data: &mut Vec<u8>, corpus: &[(String, Vec<u8>)]) {
    if data.is_empty() {
        data.push(rng.random());
        return;
    }
    let len = data.len();
    let at = rng.random_range(0..=len);
    match rng.random_range(0..11) {
        // The choosing byte.
        0 => data[0] = rng.random(),
        1 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        2 => {
            let i = rng.random_range(0..len);
            data[i] = rng.random();
        }
        3 | 4 => {
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            data.splice(at..at, token.iter().copied());
        }
        5 => {
            let end = (at + rng.random_range(0..64)).min(len);
            data.drain(at..end);
        }
        6 => {
            let end = (at + rng.random_range(0..256)).min(len);
            let copy = data[at..end].to_vec();
            data.splice(at..at, copy);
        }
        7 => data.truncate(at.max(1)),
        8 => {
            // A field (between separators) replaced by a token.
            let start = data[..at]
                .iter()
                .rposition(|b| *b == b';')
                .map_or(at, |i| i + 1);
            let end = data[at..]
                .iter()
                .position(|b| matches!(b, b';' | b'\n'))
                .map_or(len, |i| at + i);
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            data.splice(start..end, token.iter().copied());
        }
        9 => {
            // Whole lines: one repeated, dropped, or two swapped.
            let mut lines: Vec<Vec<u8>> = data[1..]
                .split_inclusive(|b| *b == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            if lines.is_empty() {
                return;
            }
            let i = rng.random_range(0..lines.len());
            let j = rng.random_range(0..lines.len());
            match rng.random_range(0..3) {
                0 => {
                    let line = lines[i].clone();
                    lines.insert(j, line);
                }
                1 => {
                    lines.remove(i);
                }
                _ => lines.swap(i, j),
            }
            data.truncate(1);
            data.extend(lines.concat());
        }
        _ => {
            // A splice: the start of this input, the end of another.
            let other = &corpus[rng.random_range(0..corpus.len())].1;
            let from = rng.random_range(0..=other.len());
            data.truncate(at.max(1));
            data.extend_from_slice(&other[from..]);
        }
    }
}

/// Runs `check` on each seed, then on `made` mutated inputs; an input that
/// fails is saved and named in the failure. Returns what `check` returned
/// for each input.
fn fuzz<T>(target: &str, made: usize, mut check: impl FnMut(&[u8]) -> T) -> Vec<T> {
    let seeds = corpus(target);
    let seed = seed();
    let mut mutator = Mutator {
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    let inputs = seeds
        .iter()
        .map(|(name, bytes)| (format!("seed corpus file {name}"), bytes.clone()))
        .chain(
            (0..made).map(|case| (format!("case {case} of seed {seed}"), mutator.input(&seeds))),
        );
    let mut outcomes = Vec::new();
    for (label, input) in inputs {
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => {
                let saved = save_failure(target, &label, &input);
                panic!(
                    "{target}: {label} failed (the panic above); the input is in {}",
                    saved.display()
                );
            }
        }
    }
    outcomes
}

fn save_failure(target: &str, label: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(label.replace(' ', "-"));
    std::fs::write(&path, input).unwrap();
    path
}

#[test]
fn land_decode_never_panics_and_loses_no_row() {
    let outcomes = fuzz("land_decode", cases(3000), checks::land_decode);
    // The inputs reached every outcome: rows landed, rows quarantined in a
    // file read, whole files refused.
    let checks: Vec<_> = outcomes.into_iter().flatten().collect();
    let landed = checks.iter().filter(|c| c.counts.landed > 0).count();
    let quarantined = checks
        .iter()
        .filter(|c| c.refused.is_none() && c.counts.quarantined > 0)
        .count();
    let refused = checks.iter().filter(|c| c.refused.is_some()).count();
    assert!(
        landed > 100 && quarantined > 100 && refused > 100,
        "the inputs miss outcomes: {landed} landed rows, {quarantined} quarantined rows, {refused} were refused"
    );
}

#[test]
fn reference_load_never_panics_and_names_the_file() {
    let samples = checks::sample_tables(&fixtures().join("samples/reference"));
    let outcomes = fuzz("reference_load", cases(600), |input| {
        checks::reference_load(&samples, input)
    });
    let loaded = outcomes.iter().flatten().filter(|r| r.is_ok()).count();
    let refused = outcomes.iter().flatten().filter(|r| r.is_err()).count();
    assert!(
        loaded > 20 && refused > 20,
        "the inputs miss outcomes: {loaded} loaded, {refused} refused"
    );
}
