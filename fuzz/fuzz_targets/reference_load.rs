//! The reference-table loader: the samples' ten tables, with one of them
//! (the first byte chooses) replaced by the fuzzer's bytes. Loading and
//! validating must end in Ok or an error naming the file, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

/// (file name, bytes) of each sample table.
static SAMPLES: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(|| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/samples/reference");
    mvnobill::reference::table_files()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).expect("the sample tables");
            (name, bytes)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((choice, bytes)) = data.split_first() else {
        return;
    };
    let replaced = &SAMPLES[*choice as usize % SAMPLES.len()].0;
    let result = mvnobill::reference::Reference::from_files(|name| {
        let bytes = if name == replaced {
            bytes.to_vec()
        } else {
            SAMPLES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .expect("a table of the samples")
        };
        Ok((name.to_string(), bytes))
    });
    match result {
        Ok(reference) => {
            // What the rating stage takes from it.
            let _ = reference.prefix_zones();
            let _ = reference.increments();
        }
        Err(error) => {
            let line = error.to_string();
            assert!(line.contains(".csv"), "names the file: {line}");
        }
    }
});
