//! The `cdr_id` index of `land` (rating.md §1: the first copy of a `cdr_id`
//! lands, a later one is a duplicate or a conflict), kept between runs in
//! the state folder so that landing one more delivery into a month of 10
//! million CDRs costs time in proportion to the delivery, not to the month.
//!
//! What it holds: for every `cdr_id` landed in `cdrs`, 96 bits of the
//! xxh3-128 hash of the id (two of 100 million ids colliding: a chance
//! below 10^-12), the hash of the row's content (duplicate or conflict)
//! and the file of its first copy.
//!
//! In memory, the ids a run adds are kept in an open-addressing table of
//! 24-byte slots in 64 shards, sized from the bytes about to be landed: 10
//! million new ids take about 280 MB (a general hash map took twice that,
//! and three times while it grew).
//!
//! Where: `<state>/cdr_index/`, two files of 24-byte entries sorted by id
//! hash (its first 96 bits), looked up in place (memory-mapped, a binary
//! search per id):
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
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::StreamExt;
use memmap2::Mmap;

use crate::core::lake::{datasets, Lake};

const MAGIC: &[u8; 8] = b"MVNOIDX2";
const HEADER: usize = 32;
const ENTRY: usize = 24;
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
    Lake(#[from] crate::core::lake::LakeError),
    #[error("reading landed CDRs: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
}

/// One entry: 96 bits of the id's hash, the content hash and the first
/// copy's file. `file` is stored plus one, so that an all-zero slot of the
/// table is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    key_high: u32,
    file_plus_one: u32,
    key_low: u64,
    content: i64,
}

/// The 96 bits of an id's xxh3-128 hash the index keeps, as (high, low).
fn key_of(id: u128) -> (u32, u64) {
    ((id >> 96) as u32, (id >> 32) as u64)
}

impl Entry {
    fn new(id: u128, content: i64, file: u32) -> Entry {
        let (key_high, key_low) = key_of(id);
        Entry {
            key_high,
            file_plus_one: file + 1,
            key_low,
            content,
        }
    }

    fn key(&self) -> (u32, u64) {
        (self.key_high, self.key_low)
    }

    fn is_empty(&self) -> bool {
        self.file_plus_one == 0
    }

    fn file(&self) -> u32 {
        self.file_plus_one - 1
    }

    fn encode(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&self.key_high.to_le_bytes())?;
        out.write_all(&self.file_plus_one.to_le_bytes())?;
        out.write_all(&self.key_low.to_le_bytes())?;
        out.write_all(&self.content.to_le_bytes())
    }
}

/// The ids a run adds: 64 shards by the top bits of the key, each an
/// open-addressing table (linear probing, at most 7/8 full) that grows by
/// half on its own, so that growing never holds two copies of the whole.
struct Table {
    shards: Vec<Shard>,
}

struct Shard {
    slots: Vec<Entry>,
    len: usize,
}

const SHARDS: usize = 64;

impl Table {
    fn with_capacity(ids: usize) -> Table {
        let per_shard = ids / SHARDS;
        Table {
            shards: (0..SHARDS)
                .map(|_| Shard::with_capacity(per_shard))
                .collect(),
        }
    }

    fn shard(key_high: u32) -> usize {
        (key_high >> 26) as usize
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len).sum()
    }

    #[cfg(test)]
    fn get(&self, key: (u32, u64)) -> Option<&Entry> {
        self.shards[Table::shard(key.0)].get(key)
    }

    fn insert(&mut self, entry: Entry) {
        self.shards[Table::shard(entry.key_high)].insert(entry);
    }

    /// The entry already under `entry`'s key, or `None` after inserting
    /// it: one probe instead of a `get` and an `insert`.
    fn get_or_insert(&mut self, entry: Entry) -> Option<Entry> {
        self.shards[Table::shard(entry.key_high)].get_or_insert(entry)
    }

    /// Asks the CPU to fetch the slot where `key`'s probe starts, so that
    /// a lookup a few rows later finds it in cache: the table is far larger
    /// than the caches and each lookup would otherwise wait on memory.
    fn prefetch(&self, key: (u32, u64)) {
        let shard = &self.shards[Table::shard(key.0)];
        let slot: *const Entry = &shard.slots[shard.home(key.1)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
        unsafe {
            std::arch::x86_64::_mm_prefetch(slot.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// The entries in key order: each shard sorted in its own memory (the
    /// shard is the key's top bits, so the shards in turn are in order),
    /// `threads` shards at a time.
    fn into_sorted(self, threads: usize) -> Vec<Vec<Entry>> {
        let mut shards: Vec<Option<Shard>> = self.shards.into_iter().map(Some).collect();
        let mut sorted: Vec<Vec<Entry>> = vec![Vec::new(); shards.len()];
        let per_thread = shards.len().div_ceil(threads.max(1));
        std::thread::scope(|scope| {
            for (shards, sorted) in shards
                .chunks_mut(per_thread)
                .zip(sorted.chunks_mut(per_thread))
            {
                scope.spawn(move || {
                    for (shard, out) in shards.iter_mut().zip(sorted.iter_mut()) {
                        *out = shard.take().expect("each shard once").into_sorted();
                    }
                });
            }
        });
        sorted
    }
}

impl Shard {
    fn with_capacity(ids: usize) -> Shard {
        Shard {
            slots: vec![Entry::default(); (ids / 7 * 8).max(16)],
            len: 0,
        }
    }

    fn home(&self, key_low: u64) -> usize {
        ((key_low as u128 * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn probe(&self, key: (u32, u64)) -> usize {
        let mut at = self.home(key.1);
        loop {
            let slot = &self.slots[at];
            if slot.is_empty() || slot.key() == key {
                return at;
            }
            at = if at + 1 == self.slots.len() {
                0
            } else {
                at + 1
            };
        }
    }

    #[cfg(test)]
    fn get(&self, key: (u32, u64)) -> Option<&Entry> {
        let slot = &self.slots[self.probe(key)];
        (!slot.is_empty()).then_some(slot)
    }

    /// The entry under `entry`'s key if there is one; otherwise `entry` is
    /// stored.
    fn get_or_insert(&mut self, entry: Entry) -> Option<Entry> {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        let at = self.probe(entry.key());
        let slot = &mut self.slots[at];
        if !slot.is_empty() {
            return Some(*slot);
        }
        *slot = entry;
        self.len += 1;
        None
    }

    /// Stores `entry`, replacing the entry under its key if any.
    fn insert(&mut self, entry: Entry) {
        if let Some(kept) = self.get_or_insert(entry) {
            debug_assert_eq!(kept.key(), entry.key());
            let at = self.probe(entry.key());
            self.slots[at] = entry;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        *self = Shard {
            slots: vec![Entry::default(); old.len() / 2 * 3],
            len: 0,
        };
        for entry in old.into_iter().filter(|e| !e.is_empty()) {
            self.insert(entry);
        }
    }

    fn into_sorted(self) -> Vec<Entry> {
        let mut slots = self.slots;
        slots.retain(|e| !e.is_empty());
        slots.sort_unstable_by_key(Entry::key);
        slots
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

    fn entry(&self, i: usize) -> Entry {
        let at = HEADER + i * ENTRY;
        let bytes = &self.map[at..at + ENTRY];
        Entry {
            key_high: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
            file_plus_one: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
            key_low: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            content: i64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
        }
    }

    fn key(&self, i: usize) -> (u32, u64) {
        let at = HEADER + i * ENTRY;
        (
            u32::from_le_bytes(self.map[at..at + 4].try_into().expect("4 bytes")),
            u64::from_le_bytes(self.map[at + 8..at + 16].try_into().expect("8 bytes")),
        )
    }

    fn get(&self, key: (u32, u64)) -> Option<Entry> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.key(middle).cmp(&key) {
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
    added: Table,
    files: Vec<String>,
    file_ids: HashMap<String, u32>,
    pub source: IndexSource,
}

impl CdrIndex {
    /// An empty index of the state folder `state_dir`; `land` uses it as is
    /// when it lands no RatedCDRs file (then it is neither read nor saved).
    pub fn empty(state_dir: &Path) -> CdrIndex {
        CdrIndex {
            dir: state_dir.join(FOLDER),
            base: None,
            delta: None,
            added: Table::with_capacity(0),
            files: Vec::new(),
            file_ids: HashMap::new(),
            source: IndexSource::Empty,
        }
    }

    /// The index of every RatedCDRs row landed so far. `landed` are the
    /// stored names of the RatedCDRs files the ledger records as landed,
    /// `landing` those about to be landed (again, after a crash).
    /// `new_ids` is about how many ids this run may add (the table grows
    /// if it is passed).
    pub async fn load(
        state_dir: &Path,
        lake: &Lake,
        landed: &BTreeSet<String>,
        landing: &BTreeSet<String>,
        new_ids: usize,
    ) -> Result<CdrIndex, IndexError> {
        let mut index = CdrIndex::empty(state_dir);
        index.added = Table::with_capacity(new_ids);
        if landed.is_empty() {
            return Ok(index);
        }
        if landing.is_disjoint(landed) && index.open_kept(landed) {
            index.source = IndexSource::Kept;
            return Ok(index);
        }
        index.rebuild(lake, landing, new_ids).await?;
        Ok(index)
    }

    /// Opens the kept index if it covers exactly `landed`.
    fn open_kept(&mut self, landed: &BTreeSet<String>) -> bool {
        // Mapped once: its entries are looked up in place, its trailer read.
        let Some(delta) = Run::open(&self.dir.join(DELTA), 0) else {
            return false;
        };
        let Some(kept) = Delta::decode(&delta.map) else {
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
        self.base = base;
        self.delta = Some(delta);
        for name in kept.files {
            self.file_id(&name);
        }
        true
    }

    /// Reads the index from the `cdrs` dataset, leaving out the files being
    /// landed now (a re-run after a crash rewrites them).
    async fn rebuild(
        &mut self,
        lake: &Lake,
        landing: &BTreeSet<String>,
        new_ids: usize,
    ) -> Result<(), IndexError> {
        self.source = IndexSource::Rebuilt;
        let ctx = crate::engine::session();
        if !crate::engine::register_dataset(&ctx, lake, datasets::CDRS, Some("month")).await? {
            return Ok(());
        }
        // Sized once for what is there and what comes (the count is read
        // from the files' footers).
        let landed = crate::engine::scalar_u64(&ctx, "SELECT COUNT(*) FROM cdrs").await?;
        self.added = Table::with_capacity(landed as usize + new_ids);
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
                self.added.insert(Entry::new(
                    crate::mvne::upstream::id_hash(&ids[row]),
                    hashes.value(row),
                    file,
                ));
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

    /// The entry of `key` in the index kept from earlier runs, if any.
    fn kept(&self, key: (u32, u64)) -> Option<Entry> {
        [self.delta.as_ref(), self.base.as_ref().map(|(_, run)| run)]
            .into_iter()
            .flatten()
            .find_map(|run| run.get(key))
    }

    /// The content hash and the file of the first copy of `id`, if landed.
    #[cfg(test)]
    fn get(&self, id: u128) -> Option<(i64, u32)> {
        let key = key_of(id);
        self.added
            .get(key)
            .copied()
            .or_else(|| self.kept(key))
            .map(|entry| (entry.content, entry.file()))
    }

    #[cfg(test)]
    fn insert(&mut self, id: u128, content: i64, file: u32) {
        self.added.insert(Entry::new(id, content, file));
    }

    /// The content hash and the file of the first copy of `id` if it was
    /// landed, or `None` after recording this copy (`content`, `file`) as
    /// the first.
    pub fn get_or_insert(&mut self, id: u128, content: i64, file: u32) -> Option<(i64, u32)> {
        let entry = Entry::new(id, content, file);
        self.kept(entry.key())
            .or_else(|| self.added.get_or_insert(entry))
            .map(|found| (found.content, found.file()))
    }

    /// A hint that `id` is looked up soon (see [`Table::prefetch`]).
    pub fn prefetch(&self, id: u128) {
        self.added.prefetch(key_of(id));
    }

    fn trailer(&self, base_generation: u64, landed: &BTreeSet<String>) -> Vec<u8> {
        Delta {
            base_generation,
            files: self.files.clone(),
            covered: landed.clone(),
        }
        .encode_trailer()
    }

    /// Sorts this run's entries for [`SortedIndex::save`], on `threads`
    /// threads: the larger part of saving a month's index, which `land`
    /// runs while its last files are still being written.
    pub fn sort(mut self, threads: usize) -> SortedIndex {
        let added = std::mem::replace(&mut self.added, Table::with_capacity(0));
        SortedIndex {
            added: added.into_sorted(threads),
            index: self,
        }
    }

    #[cfg(test)]
    pub fn save(self, landed: &BTreeSet<String>) -> Result<(), IndexError> {
        self.sort(2).save(landed)
    }

    /// [`SortedIndex::save`], given this run's sorted entries.
    fn save_sorted(
        &self,
        added: Vec<Vec<Entry>>,
        landed: &BTreeSet<String>,
    ) -> Result<(), IndexError> {
        let io = |path: &Path, source| IndexError::Io {
            path: path.display().to_string(),
            source,
        };
        crate::core::ledger::create_private_dir(&self.dir).map_err(|e| IndexError::Io {
            path: self.dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let kept_delta: Vec<Entry> = self
            .delta
            .as_ref()
            .map(|d| d.entries().collect())
            .unwrap_or_default();
        // No id is in both: the delta's size is the sum.
        let delta_count = kept_delta.len() + added.iter().map(Vec::len).sum::<usize>();
        let delta = merge(kept_delta.into_iter(), added.into_iter().flatten());
        let base_count = self.base.as_ref().map(|(_, run)| run.count).unwrap_or(0);
        let path = self.dir.join(DELTA);
        let generation = if delta_count > base_count / 4 {
            // Merged into a new base, streamed; the delta starts empty.
            let generation = self.base.as_ref().map(|(g, _)| *g).unwrap_or(0) + 1;
            let base_path = self.base_path(generation);
            let base = self.base.as_ref().map(|(_, run)| run.entries());
            let all = merge(base.into_iter().flatten(), delta);
            write_run(&base_path, generation, base_count + delta_count, all, &[])
                .map_err(|e| io(&base_path, e))?;
            let trailer = self.trailer(generation, landed);
            write_run(&path, 0, 0, std::iter::empty(), &trailer).map_err(|e| io(&path, e))?;
            generation
        } else {
            let generation = self.base.as_ref().map(|(g, _)| *g).unwrap_or(0);
            let trailer = self.trailer(generation, landed);
            write_run(&path, 0, delta_count, delta, &trailer).map_err(|e| io(&path, e))?;
            generation
        };
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

/// A [`CdrIndex`] whose entries of this run are sorted, to be saved.
pub struct SortedIndex {
    index: CdrIndex,
    added: Vec<Vec<Entry>>,
}

impl SortedIndex {
    /// Writes the index for the next run: it covers `landed`, the RatedCDRs
    /// files the ledger records as landed once this run is over.
    pub fn save(self, landed: &BTreeSet<String>) -> Result<(), IndexError> {
        self.index.save_sorted(self.added, landed)
    }
}

/// Two sorted entry lists as one (ids are never in both).
fn merge(
    a: impl Iterator<Item = Entry>,
    b: impl Iterator<Item = Entry>,
) -> Merge<impl Iterator<Item = Entry>, impl Iterator<Item = Entry>> {
    Merge {
        a: a.peekable(),
        b: b.peekable(),
    }
}

struct Merge<A: Iterator<Item = Entry>, B: Iterator<Item = Entry>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = Entry>, B: Iterator<Item = Entry>> Iterator for Merge<A, B> {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x.key() <= y.key() => self.a.next(),
            (_, Some(_)) => self.b.next(),
            _ => self.a.next(),
        }
    }
}

/// Writes a run file (header, `count` entries, then `trailer`) under a
/// temporary name, then renames it into place.
fn write_run(
    path: &Path,
    generation: u64,
    count: usize,
    entries: impl Iterator<Item = Entry>,
    trailer: &[u8],
) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
    out.write_all(MAGIC)?;
    out.write_all(&generation.to_le_bytes())?;
    out.write_all(&(count as u64).to_le_bytes())?;
    out.write_all(&(trailer.len() as u64).to_le_bytes())?;
    let mut written = 0;
    for entry in entries {
        entry.encode(&mut out)?;
        written += 1;
    }
    if written != count {
        return Err(std::io::Error::other(format!(
            "{written} entries written, {count} counted"
        )));
    }
    out.write_all(trailer)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
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

    /// The hash of the id `n`, as `land` computes it.
    fn id(n: u128) -> u128 {
        crate::mvne::upstream::id_hash(&format!("R{n}"))
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kept_between_runs_merged_into_a_base_and_refused_when_it_does_not_cover_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = CdrIndex::empty(dir.path());
        let a = index.file_id("A.csv");
        for n in 0..1000u128 {
            index.insert(id(n * 7), n as i64, a);
        }
        index.save(&names(&["A.csv"])).unwrap();
        // A small delivery: kept as a delta beside the base.
        let mut index = CdrIndex::empty(dir.path());
        assert!(index.open_kept(&names(&["A.csv"])));
        assert_eq!(index.get(id(14)), Some((2, a)));
        assert_eq!(index.get(id(15)), None);
        let b = index.file_id("B.csv");
        index.insert(id(15), -1, b);
        index.save(&names(&["A.csv", "B.csv"])).unwrap();
        assert!(dir.path().join("cdr_index/base-1.bin").exists());
        let mut index = CdrIndex::empty(dir.path());
        assert!(index.open_kept(&names(&["A.csv", "B.csv"])));
        assert_eq!(index.delta.as_ref().unwrap().count, 1);
        assert_eq!(index.get(id(15)), Some((-1, b)));
        assert_eq!(index.file_name(index.get(id(15)).unwrap().1), "B.csv");
        assert_eq!(index.get(id(6993)), Some((999, a)));
        // A large one: merged into a new base.
        let c = index.file_id("C.csv");
        for n in 0..400u128 {
            index.insert(id(n * 7 + 1), 5, c);
        }
        index.save(&names(&["A.csv", "B.csv", "C.csv"])).unwrap();
        assert!(dir.path().join("cdr_index/base-2.bin").exists());
        assert!(!dir.path().join("cdr_index/base-1.bin").exists());
        let mut index = CdrIndex::empty(dir.path());
        assert!(index.open_kept(&names(&["A.csv", "B.csv", "C.csv"])));
        assert_eq!(index.delta.as_ref().unwrap().count, 0);
        assert_eq!(index.base.as_ref().unwrap().1.count, 1401);
        assert_eq!(index.get(id(15)), Some((-1, b)));
        assert_eq!(index.get(id(2793)), Some((399, a)));
        assert_eq!(index.get(id(2794)), Some((5, c)));
        // Not the ledger's set (a crash after the ledger, before the index):
        // not used.
        let mut index = CdrIndex::empty(dir.path());
        assert!(!index.open_kept(&names(&["A.csv", "B.csv", "C.csv", "D.csv"])));
        // A damaged file: not used.
        std::fs::write(dir.path().join("cdr_index/base-2.bin"), b"MVNOIDX1").unwrap();
        let mut index = CdrIndex::empty(dir.path());
        assert!(!index.open_kept(&names(&["A.csv", "B.csv", "C.csv"])));
    }

    #[test]
    fn the_table_grows_past_its_estimate_and_keeps_every_id() {
        let mut table = Table::with_capacity(10);
        for n in 0..50_000u128 {
            table.insert(Entry::new(id(n), n as i64, (n % 3) as u32));
        }
        assert_eq!(table.len(), 50_000);
        assert!(table.shards.iter().all(|s| s.slots.len() * 7 >= s.len * 8));
        for n in (0..50_000u128).step_by(7) {
            let found = table.get(key_of(id(n))).unwrap();
            assert_eq!((found.content, found.file()), (n as i64, (n % 3) as u32));
        }
        assert!(table.get(key_of(id(50_000))).is_none());
        let sorted: Vec<Entry> = table.into_sorted(3).into_iter().flatten().collect();
        assert_eq!(sorted.len(), 50_000);
        assert!(sorted.windows(2).all(|w| w[0].key() < w[1].key()));
    }
}
