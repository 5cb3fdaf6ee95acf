//! The raw zone: each upstream file kept as delivered, under
//! `<lake>/raw/<folder>/<name>`, or, for SIM orders (they carry PUK codes),
//! in the private state folder. `sync` writes it, `land`, `check`,
//! `doctor` and `publish` read it; names and versions are decided here.

use std::path::Path;

use crate::core::lake::{Lake, LakeError};
use crate::core::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("raw zone {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The upstream folders that the pipeline lands.
pub const FOLDERS: &[&str] = &[
    "RatedCDRs",
    "BilledCDRs",
    "AccountStatus",
    "Cartes SIM",
    INTEGRATOR_INVOICES,
    PLATFORM_FOLDER,
];

/// The MVNE's own invoices to the integrator (PDF): fetched and kept in the
/// raw zone for finance (`raw/Factures/Intégrateur/`), not landed.
pub const INTEGRATOR_INVOICES: &str = "Factures/Intégrateur";

/// The folders whose files `land` turns into datasets.
pub const LANDED_FOLDERS: &[&str] = &["RatedCDRs", "BilledCDRs", "AccountStatus", "Cartes SIM"];

/// The folder whose files carry secrets (PUK codes).
/// The folder of the MVNE's rated CDRs.
pub const CDR_FOLDER: &str = "RatedCDRs";

pub const SIM_FOLDER: &str = "Cartes SIM";

/// The tariff tables the MVNE configured, fetched for `check`.
pub const PLATFORM_FOLDER: &str = "Tables tarifaires";

/// Why a remote name is not fetched, if it is not: a name is one path
/// component of printable characters.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("an empty name")
    } else if name.contains(['/', '\\']) {
        Err("a path separator in the name")
    } else if name.contains("..") {
        Err("'..' in the name")
    } else if name.chars().any(char::is_control) {
        Err("a control character in the name")
    } else if name == "." {
        Err("'.' is not a file name")
    } else if name.len() > 255 {
        Err("a name longer than 255 bytes")
    } else {
        Ok(())
    }
}

/// `RatedCDRs_x.csv` version 2 is stored as `RatedCDRs_x.v2.csv`, so that
/// versions sort after the original.
pub fn versioned_name(name: &str, version: i64) -> String {
    if version <= 1 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.v{version}.{ext}"),
        None => format!("{name}.v{version}"),
    }
}

/// The delivered name and version of a stored name (`versioned_name`
/// undone): `x.v2.csv` is version 2 of `x.csv`.
pub fn original_name(stored: &str) -> (String, i64) {
    let (stem, ext) = match stored.rsplit_once('.') {
        Some((stem, ext)) if !ext.starts_with('v') => (stem, Some(ext)),
        _ => (stored, None),
    };
    if let Some((base, version)) = stem.rsplit_once(".v") {
        if let Ok(version) = version.parse::<i64>() {
            if version > 1 {
                let name = match ext {
                    Some(ext) => format!("{base}.{ext}"),
                    None => base.to_string(),
                };
                return (name, version);
            }
        }
    }
    (stored.to_string(), 1)
}

/// A file copied into the raw zone's staging place (`stage_raw`), its
/// SHA-256 known: `commit_raw` gives it its name, `discard_raw` drops it.
#[derive(Debug)]
pub struct Staged {
    pub size: u64,
    pub sha256: String,
    place: StagedPlace,
}

#[derive(Debug)]
enum StagedPlace {
    Lake(String),
    Private(std::path::PathBuf),
}

/// The buffer files are read with: memory stays this size whatever the
/// file's.
const BUFFER_BYTES: usize = 1 << 20;

/// The size and SHA-256 of a local file, read once with a fixed buffer.
pub fn hash_file(path: &Path) -> Result<(u64, String), RawError> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let read_err = |source| RawError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        }
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Copies the local file `path` of `folder` to the raw zone's staging place
/// and hashes it, in one pass with a fixed buffer: `<lake>/_staging/sync/`
/// for the lake's folders, the private state folder for SIM orders (their
/// PUK codes never reach the lake). `id` names the staging copy (the same
/// upstream file gets the same one, so a copy a crash left behind is
/// overwritten by the next sync).
pub async fn stage_raw(
    state_dir: &Path,
    lake: &Lake,
    folder: &str,
    id: &str,
    path: &Path,
) -> Result<Staged, RawError> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    if folder == SIM_FOLDER {
        let dir = state_dir.join("sim-orders");
        crate::core::ledger::create_private_dir(&dir)?;
        let staging = dir.join(format!(".staging-{id}"));
        let size = copy_private(path, &staging, |chunk| hasher.update(chunk))?;
        return Ok(Staged {
            size,
            sha256: hex(&hasher.finalize()),
            place: StagedPlace::Private(staging),
        });
    }
    let key = format!("_staging/sync/{id}");
    let size = lake
        .put_file(&key, path, |chunk| hasher.update(chunk))
        .await?;
    Ok(Staged {
        size,
        sha256: hex(&hasher.finalize()),
        place: StagedPlace::Lake(key),
    })
}

/// Gives a staged copy its name in the raw zone (an atomic rename); returns
/// its key (`lake:` or `state:` prefixed), as the ledger records it.
pub async fn commit_raw(
    state_dir: &Path,
    lake: &Lake,
    folder: &str,
    name: &str,
    staged: Staged,
) -> Result<String, RawError> {
    match staged.place {
        StagedPlace::Private(staging) => {
            let path = state_dir.join("sim-orders").join(name);
            std::fs::rename(&staging, &path).map_err(|source| RawError::Read {
                path: path.display().to_string(),
                source,
            })?;
            Ok(format!("state:sim-orders/{name}"))
        }
        StagedPlace::Lake(staging) => {
            let key = format!("raw/{folder}/{name}");
            lake.rename(&staging, &key).await?;
            Ok(format!("lake:{key}"))
        }
    }
}

/// Drops a staged copy (the file was there already).
pub async fn discard_raw(lake: &Lake, staged: Staged) -> Result<(), RawError> {
    match staged.place {
        StagedPlace::Private(staging) => {
            let _ = std::fs::remove_file(staging);
            Ok(())
        }
        StagedPlace::Lake(key) => Ok(lake.delete(&key).await?),
    }
}

/// Copies `from` to `to` (created readable by its owner only), handing each
/// chunk to `seen`, with a fixed buffer; returns the bytes copied.
fn copy_private(from: &Path, to: &Path, mut seen: impl FnMut(&[u8])) -> Result<u64, RawError> {
    use std::io::{Read as _, Write as _};
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| RawError::Read { path, source }
    };
    let mut input = std::fs::File::open(from).map_err(err(from))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut output = options.open(to).map_err(err(to))?;
    let mut buffer = vec![0u8; BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(from)(e)),
        };
        seen(&buffer[..n]);
        output.write_all(&buffer[..n]).map_err(err(to))?;
        size += n as u64;
    }
    output.sync_all().map_err(err(to))?;
    Ok(size)
}

/// Reads the bytes of a fetched file back from the raw zone.
pub async fn read_raw(state_dir: &Path, lake: &Lake, raw_key: &str) -> Result<Vec<u8>, RawError> {
    if let Some(key) = raw_key.strip_prefix("lake:") {
        Ok(lake.get(key).await?)
    } else {
        let relative = raw_key.strip_prefix("state:").unwrap_or(raw_key);
        let path = state_dir.join(relative);
        std::fs::read(&path).map_err(|source| RawError::Read {
            path: path.display().to_string(),
            source,
        })
    }
}

/// The local path of a raw file, when it is on this machine's disk (a
/// local lake or the state folder); None on S3.
pub fn raw_local_path(state_dir: &Path, lake: &Lake, raw_key: &str) -> Option<std::path::PathBuf> {
    if let Some(key) = raw_key.strip_prefix("lake:") {
        lake.url().local_path().map(|dir| dir.join(key))
    } else {
        let relative = raw_key.strip_prefix("state:").unwrap_or(raw_key);
        Some(state_dir.join(relative))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_are_checked() {
        assert!(check_name("RatedCDRs_20261001_100000.csv").is_ok());
        assert!(check_name("SIM_CMD 2026 é.csv").is_ok());
        assert_eq!(check_name(".."), Err("'..' in the name"));
        assert_eq!(
            check_name("../../etc/passwd"),
            Err("a path separator in the name")
        );
        assert_eq!(check_name("a..b"), Err("'..' in the name"));
        assert_eq!(check_name("a\\b"), Err("a path separator in the name"));
        assert_eq!(
            check_name("bell\u{7}.csv"),
            Err("a control character in the name")
        );
        assert_eq!(
            check_name("nl\n.csv"),
            Err("a control character in the name")
        );
        assert_eq!(
            check_name("c1\u{85}.csv"),
            Err("a control character in the name")
        );
        assert_eq!(check_name("."), Err("'.' is not a file name"));
        assert_eq!(check_name(""), Err("an empty name"));
    }

    #[test]
    fn stored_names_give_back_their_version() {
        for (name, version) in [
            ("options.csv", 1),
            ("options.csv", 2),
            ("plans", 3),
            ("a.v.csv", 12),
        ] {
            assert_eq!(
                original_name(&versioned_name(name, version)),
                (name.to_string(), version)
            );
        }
    }

    #[test]
    fn versions_sort_after_the_original() {
        assert_eq!(versioned_name("RatedCDRs_1.csv", 1), "RatedCDRs_1.csv");
        assert_eq!(versioned_name("RatedCDRs_1.csv", 2), "RatedCDRs_1.v2.csv");
        assert!("RatedCDRs_1.v2.csv" > "RatedCDRs_1.csv");
    }
}
