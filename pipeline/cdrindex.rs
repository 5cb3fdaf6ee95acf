//! The `cdr_id` index of `land` (rating.md §1: the first copy of a `cdr_id`
//! lands, a later one is a duplicate or a conflict), kept between runs in
//! the state folder so that landing one more delivery into a month of 10
//! million CDRs costs time in proportion to the delivery, not to the month.
//!
//! What it holds: for every `cdr_id` landed in `cdrs`, the xxh3-128 hash of
//! the id, the hash of the row's content (duplicate or conflict) and the
//! file of its first copy.
//!
//! Where: `<state>/cdr_index/`, two files of 32-byte entries sorted by id
//! hash, looked up in place (memory-mapped, a binary search per id):
//! - `base-<generation>.bin`, most of the entries;
//! - `delta.bin`, the entries added since the base was written, the names
//!   of the files the entries point to, and the set of landed RatedCDRs
//!   files the whole index covers (the base's generation included).
//!
//! Each run of `land` reads only the entries its ids look up; at its end it
//! rewrites `delta.bin` (its entries plus the run's new ones) and, when the
//! delta has grown past a quarter of the base, merges both into a new base:
//! each entry is rewritten a bounded number of times on average.
//!
//! Trust: the index is used only when the files it covers are exactly the
//! RatedCDRs files the ledger records as landed, minus none of those being
//! landed again now. Otherwise (first run, a crash between the ledger and
//! the index, a re-delivered file, a lost or damaged index file) it is
//! rebuilt from the `cdrs` dataset, as `land` always did, and written
//! anew. Every file is written to a temporary name and renamed.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::StreamExt;
use memmap2::Mmap;

use crate::lake::{datasets, Lake};

const MAGIC: &[u8; 8] = b"MVNOIDX1";
const HEADER: usize = 32;
const ENTRY: usize = 32;
const FOLDER: &str = "cdr_index";
const DELTA: &str = "delta.bin";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cdr_id index {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    #[error("reading landed CDRs: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
}

/// A hasher for keys that are already hashes (xxh3-128 of a `cdr_id`).
#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

/// One entry: the id's hash, the content hash and the first copy's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    id: u128,
    content: i64,
    file: u32,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.content.to_le_bytes());
        out.extend_from_slice(&self.file.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
    }
}

/// A file of sorted entries, mapped.
struct Run {
    map: Mmap,
    count: usize,
}

impl Run {
    fn open(path: &Path, generation: u64) -> Option<Run> {
        let file = File::open(path).ok()?;
        // SAFETY: the file is written once under a temporary name and
        // renamed into place; only `land`, holding the state lock, replaces
        // it, and never in place.
        let map = unsafe { Mmap::map(&file) }.ok()?;
        let (found, count) = header(&map)?;
        (found == generation && map.len() >= HEADER + count * ENTRY).then_some(Run { map, count })
    }

    fn id(&self, i: usize) -> u128 {
        let at = HEADER + i * ENTRY;
        u128::from_le_bytes(self.map[at..at + 16].try_into().expect("16 bytes"))
    }

    fn entry(&self, i: usize) -> Entry {
        let at = HEADER + i * ENTRY;
        Entry {
            id: self.id(i),
            content: i64::from_le_bytes(self.map[at + 16..at + 24].try_into().expect("8 bytes")),
            file: u32::from_le_bytes(self.map[at + 24..at + 28].try_into().expect("4 bytes")),
        }
    }

    fn get(&self, id: u128) -> Option<Entry> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.id(middle).cmp(&id) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(self.entry(middle)),
            }
        }
        None
    }

    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.count).map(|i| self.entry(i))
    }
}

/// The magic, the generation and the entry count of a run file.
fn header(bytes: &[u8]) -> Option<(u64, usize)> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let count = u64::from_le_bytes(bytes[16..24].try_into().ok()?) as usize;
    Some((generation, count))
}

/// How the index was obtained, for the land report and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexSource {
    /// No RatedCDRs landed before: empty.
    Empty,
    /// Kept from the last run: looked up in place.
    Kept,
    /// Rebuilt from the `cdrs` dataset.
    Rebuilt,
}

/// Every `cdr_id` landed so far.
pub struct CdrIndex {
    dir: PathBuf,
    base: Option<(u64, Run)>,
    delta: Option<Run>,
    /// Entries added by this run (or all of them, when rebuilt).
    added: HashMap<u128, (i64, u32), BuildHasherDefault<PrehashedHasher>>,
    files: Vec<String>,
    file_ids: HashMap<String, u32>,
    pub source: IndexSource,
}

impl CdrIndex {
    fn empty(state_dir: &Path) -> CdrIndex {
        CdrIndex {
            dir: state_dir.join(FOLDER),
            base: None,
            delta: None,
            added: HashMap::default(),
            files: Vec::new(),
            file_ids: HashMap::new(),
            source: IndexSource::Empty,
        }
    }

    /// An index for a run that lands no RatedCDRs file: neither read nor
    /// saved.
    pub fn unused(state_dir: &Path) -> CdrIndex {
        CdrIndex::empty(state_dir)
    }

    /// The index of every RatedCDRs row landed so far. `landed` are the
    /// stored names of the RatedCDRs files the ledger records as landed,
    /// `landing` those about to be landed (again, after a crash).
    pub async fn load(
        state_dir: &Path,
        lake: &Lake,
        landed: &BTreeSet<String>,
        landing: &BTreeSet<String>,
    ) -> Result<CdrIndex, IndexError> {
        let mut index = CdrIndex::empty(state_dir);
        if landed.is_empty() {
            return Ok(index);
        }
        if landing.is_disjoint(landed) && index.open_kept(landed) {
            index.source = IndexSource::Kept;
            return Ok(index);
        }
        index.rebuild(lake, landing).await?;
        Ok(index)
    }

    /// Opens the kept index if it covers exactly `landed`.
    fn open_kept(&mut self, landed: &BTreeSet<String>) -> bool {
        let Ok(bytes) = std::fs::read(self.dir.join(DELTA)) else {
            return false;
        };
        let Some(kept) = Delta::decode(&bytes) else {
            return false;
        };
        if kept.covered != *landed {
            return false;
        }
        let base = match kept.base_generation {
            0 => None,
            generation => match Run::open(&self.base_path(generation), generation) {
                Some(run) => Some((generation, run)),
                None => return false,
            },
        };
        let Some(delta) = Run::open(&self.dir.join(DELTA), 0) else {
            return false;
        };
        self.base = base;
        self.delta = Some(delta);
        for name in kept.files {
            self.file_id(&name);
        }
        true
    }

    /// Reads the index from the `cdrs` dataset, leaving out the files being
    /// landed now (a re-run after a crash rewrites them).
    async fn rebuild(&mut self, lake: &Lake, landing: &BTreeSet<String>) -> Result<(), IndexError> {
        self.source = IndexSource::Rebuilt;
        let ctx = crate::engine::session();
        if !crate::engine::register_dataset(&ctx, lake, datasets::CDRS, Some("month")).await? {
            return Ok(());
        }
        let mut stream = ctx
            .sql("SELECT cdr_id, content_hash, source_file FROM cdrs")
            .await?
            .execute_stream()
            .await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let ids = crate::engine::strings(batch.column(0));
            let hashes = batch.column(1).as_primitive::<Int64Type>();
            let files = crate::engine::strings(batch.column(2));
            for row in 0..batch.num_rows() {
                if landing.contains(&files[row]) {
                    continue;
                }
                let file = self.file_id(&files[row]);
                self.added.insert(
                    crate::upstream::id_hash(&ids[row]),
                    (hashes.value(row), file),
                );
            }
        }
        Ok(())
    }

    fn base_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("base-{generation}.bin"))
    }

    /// The number of a file's name in the index.
    pub fn file_id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.file_ids.get(name) {
            return *id;
        }
        let id = self.files.len() as u32;
        self.files.push(name.to_string());
        self.file_ids.insert(name.to_string(), id);
        id
    }

    pub fn file_name(&self, id: u32) -> &str {
        &self.files[id as usize]
    }

    /// The content hash and the file of the first copy of `id`, if landed.
    pub fn get(&self, id: u128) -> Option<(i64, u32)> {
        if let Some(found) = self.added.get(&id) {
            return Some(*found);
        }
        [self.delta.as_ref(), self.base.as_ref().map(|(_, run)| run)]
            .into_iter()
            .flatten()
            .find_map(|run| run.get(id))
            .map(|entry| (entry.content, entry.file))
    }

    pub fn insert(&mut self, id: u128, content: i64, file: u32) {
        self.added.insert(id, (content, file));
    }

    /// Writes the index for the next run: it covers `landed`, the RatedCDRs
    /// files the ledger records as landed once this run is over.
    pub fn save(self, landed: &BTreeSet<String>) -> Result<(), IndexError> {
        let io = |path: &Path, source| IndexError::Io {
            path: path.display().to_string(),
            source,
        };
        crate::ledger::create_private_dir(&self.dir).map_err(|e| IndexError::Io {
            path: self.dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut added: Vec<Entry> = self
            .added
            .iter()
            .map(|(id, (content, file))| Entry {
                id: *id,
                content: *content,
                file: *file,
            })
            .collect();
        added.sort_unstable_by_key(|e| e.id);
        let kept_delta: Vec<Entry> = self
            .delta
            .as_ref()
            .map(|d| d.entries().collect())
            .unwrap_or_default();
        let delta = merge(kept_delta, added);
        let base_count = self.base.as_ref().map(|(_, run)| run.count).unwrap_or(0);
        let (generation, delta) = if delta.len() > base_count / 4 {
            // Merged into a new base; the delta starts empty.
            let old = self.base.as_ref().map(|(g, _)| *g);
            let generation = old.unwrap_or(0) + 1;
            let base_entries: Vec<Entry> = self
                .base
                .as_ref()
                .map(|(_, run)| run.entries().collect())
                .unwrap_or_default();
            let all = merge(base_entries, delta);
            let path = self.base_path(generation);
            write_run(&path, generation, &all, &[]).map_err(|e| io(&path, e))?;
            (generation, Vec::new())
        } else {
            (self.base.as_ref().map(|(g, _)| *g).unwrap_or(0), delta)
        };
        let trailer = Delta {
            base_generation: generation,
            files: self.files.clone(),
            covered: landed.clone(),
        }
        .encode_trailer();
        let path = self.dir.join(DELTA);
        write_run(&path, 0, &delta, &trailer).map_err(|e| io(&path, e))?;
        // Bases of other generations are no longer read.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("base-") && name != format!("base-{generation}.bin") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }
}

/// Two sorted entry lists as one (ids are never in both).
fn merge(a: Vec<Entry>, b: Vec<Entry>) -> Vec<Entry> {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.id <= y.id => out.push(a.next().expect("peeked")),
            (Some(_), Some(_)) | (None, Some(_)) => out.push(b.next().expect("peeked")),
            (Some(_), None) => out.push(a.next().expect("peeked")),
            (None, None) => return out,
        }
    }
}

/// Writes a run file (header, entries, then `trailer`) under a temporary
/// name, then renames it into place.
fn write_run(
    path: &Path,
    generation: u64,
    entries: &[Entry],
    trailer: &[u8],
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(HEADER + entries.len() * ENTRY + trailer.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(trailer.len() as u64).to_le_bytes());
    for entry in entries {
        entry.encode(&mut bytes);
    }
    bytes.extend_from_slice(trailer);
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// What `delta.bin` says after its entries.
struct Delta {
    base_generation: u64,
    files: Vec<String>,
    covered: BTreeSet<String>,
}

impl Delta {
    /// JSON after the entries: small next to them, and readable by hand.
    fn encode_trailer(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "base_generation": self.base_generation,
            "files": self.files,
            "covered": self.covered,
        }))
        .expect("plain JSON")
    }

    fn decode(bytes: &[u8]) -> Option<Delta> {
        let (_, count) = header(bytes)?;
        let trailer_len = u64::from_le_bytes(bytes[24..32].try_into().ok()?) as usize;
        let start = HEADER.checked_add(count.checked_mul(ENTRY)?)?;
        let trailer = bytes.get(start..start.checked_add(trailer_len)?)?;
        let value: serde_json::Value = serde_json::from_slice(trailer).ok()?;
        let strings = |key: &str| -> Option<Vec<String>> {
            value[key]
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        Some(Delta {
            base_generation: value["base_generation"].as_u64()?,
            files: strings("files")?,
            covered: strings("covered")?.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kept_between_runs_merged_into_a_base_and_refused_when_it_does_not_cover_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = CdrIndex::empty(dir.path());
        let a = index.file_id("A.csv");
        for id in 0..1000u128 {
            index.insert(id * 7, id as i64, a);
        }
        index.save(&names(&["A.csv"])).unwrap();
        // A small delivery: kept as a delta beside the base.
        let mut index = CdrIndex::empty(dir.path());
        assert!(index.open_kept(&names(&["A.csv"])));
        assert_eq!(index.get(14), Some((2, a)));
        assert_eq!(index.get(15), None);
        let b = index.file_id("B.csv");
        index.insert(15, -1, b);
        index.save(&names(&["A.csv", "B.csv"])).unwrap();
        assert!(dir.path().join("cdr_index/base-1.bin").exists());
        let mut index = CdrIndex::empty(dir.path());
        assert!(index.open_kept(&names(&["A.csv", "B.csv"])));
        assert_eq!(index.delta.as_ref().unwrap().count, 1);
        assert_eq!(index.get(15), Some((-1, b)));
        assert_eq!(index.file_name(index.get(15).unwrap().1), "B.csv");
        assert_eq!(index.get(6993), Some((999, a)));
        // A large one: merged into a new base.
        let c = index.file_id("C.csv");
        for id in 0..400u128 {
            index.insert(id * 7 + 1, 5, c);
        }
        index.save(&names(&["A.csv", "B.csv", "C.csv"])).unwrap();
        assert!(dir.path().join("cdr_index/base-2.bin").exists());
        assert!(!dir.path().join("cdr_index/base-1.bin").exists());
        let mut index = CdrIndex::empty(dir.path());
        assert!(index.open_kept(&names(&["A.csv", "B.csv", "C.csv"])));
        assert_eq!(index.delta.as_ref().unwrap().count, 0);
        assert_eq!(index.base.as_ref().unwrap().1.count, 1401);
        assert_eq!(index.get(15), Some((-1, b)));
        assert_eq!(index.get(2793), Some((399, a)));
        assert_eq!(index.get(2794), Some((5, c)));
        // Not the ledger's set (a crash after the ledger, before the index):
        // not used.
        let mut index = CdrIndex::empty(dir.path());
        assert!(!index.open_kept(&names(&["A.csv", "B.csv", "C.csv", "D.csv"])));
        // A damaged file: not used.
        std::fs::write(dir.path().join("cdr_index/base-2.bin"), b"MVNOIDX1").unwrap();
        let mut index = CdrIndex::empty(dir.path());
        assert!(!index.open_kept(&names(&["A.csv", "B.csv", "C.csv"])));
    }
}
