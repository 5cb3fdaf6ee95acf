//! `sync`: fetch new upstream files from the source into the raw zone.
//!
//! The source is a folder laid out like the MVNE's FTP tree (formats.md):
//! `RatedCDRs/`, `BilledCDRs/`, `AccountStatus/` and `Cartes SIM/` are read;
//! other folders are not ours to land. A file is new when the ledger has not
//! seen its (folder, name, sha256); a re-delivered identical file is a no-op,
//! the same name with other bytes is kept as a new version and reported.
//!
//! CDR and status files go to `<lake>/raw/<folder>/<name>`. SIM orders carry
//! PUK codes: their raw copy goes to the private state folder, never to the
//! lake. Each copy is written atomically before the ledger records it, so a
//! crash leaves at worst an unrecorded copy that the next sync rewrites.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::lake::{Lake, LakeError};
use crate::ledger::{FetchedFile, Ledger, LedgerError};
use crate::settings::{Settings, Source};

/// The upstream folders that the pipeline lands.
pub const FOLDERS: &[&str] = &["RatedCDRs", "BilledCDRs", "AccountStatus", "Cartes SIM"];

/// The folder whose files carry secrets (PUK codes).
pub const SIM_FOLDER: &str = "Cartes SIM";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no [source] url in the configuration: nothing to sync from")]
    NoSource,
    #[error("source folder {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("source file {path}: the name is not valid UTF-8")]
    BadName { path: String },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    pub source: String,
    pub files_seen: u64,
    pub files_fetched: u64,
    pub bytes_fetched: u64,
    pub already_fetched: u64,
    /// Names re-delivered with other bytes, kept as new versions.
    pub new_versions: Vec<String>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sync: {} files seen, {} fetched ({} bytes), {} already fetched",
            self.files_seen, self.files_fetched, self.bytes_fetched, self.already_fetched
        )?;
        for name in &self.new_versions {
            write!(
                f,
                "\n  re-delivered with other content, kept as a new version: {name}"
            )?;
        }
        Ok(())
    }
}

pub async fn sync(
    settings: &Settings,
    lake: &Lake,
    ledger: &Ledger,
) -> Result<SyncReport, SyncError> {
    let Some(Source::Folder(root)) = &settings.source else {
        return Err(SyncError::NoSource);
    };
    let mut report = SyncReport {
        source: format!("file://{}", root.display()),
        ..Default::default()
    };
    for folder in FOLDERS {
        let dir = root.join(folder);
        if !dir.is_dir() {
            continue;
        }
        for name in list_files(&dir)? {
            report.files_seen += 1;
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).map_err(|source| SyncError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let sha256 = hex(&Sha256::digest(&bytes));
            if ledger.find_fetched(folder, &name, &sha256)?.is_some() {
                report.already_fetched += 1;
                continue;
            }
            let version = ledger.version_count(folder, &name)? + 1;
            let stored_name = versioned_name(&name, version);
            if version > 1 {
                report.new_versions.push(format!("{folder}/{name}"));
            }
            let raw_key = store_raw(settings, lake, folder, &stored_name, &bytes).await?;
            ledger.record_fetched(&FetchedFile {
                id: 0,
                folder: folder.to_string(),
                name: name.clone(),
                size: bytes.len() as u64,
                sha256,
                raw_key,
                version,
            })?;
            report.files_fetched += 1;
            report.bytes_fetched += bytes.len() as u64;
        }
    }
    Ok(report)
}

/// Regular files of a folder, sorted by name.
fn list_files(dir: &Path) -> Result<Vec<String>, SyncError> {
    let read_err = |source| SyncError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        if !entry.file_type().map_err(read_err)?.is_file() {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| SyncError::BadName {
                path: entry.path().display().to_string(),
            })?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// `RatedCDRs_x.csv` version 2 is stored as `RatedCDRs_x.v2.csv`, so that
/// versions sort after the original.
fn versioned_name(name: &str, version: i64) -> String {
    if version <= 1 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.v{version}.{ext}"),
        None => format!("{name}.v{version}"),
    }
}

/// Stores a raw copy; returns its key (`lake:` or `state:` prefixed).
async fn store_raw(
    settings: &Settings,
    lake: &Lake,
    folder: &str,
    name: &str,
    bytes: &[u8],
) -> Result<String, SyncError> {
    if folder == SIM_FOLDER {
        let dir = settings.state_dir.join("sim-orders");
        crate::ledger::create_private_dir(&dir)?;
        let path = dir.join(name);
        write_private_file(&path, bytes).map_err(|source| SyncError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(format!("state:sim-orders/{name}"))
    } else {
        let key = format!("raw/{folder}/{name}");
        lake.put(&key, bytes.to_vec()).await?;
        Ok(format!("lake:{key}"))
    }
}

/// Writes a file readable by its owner only, atomically (temp + rename).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("partial");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads the bytes of a fetched file back from the raw zone.
pub async fn read_raw(
    settings: &Settings,
    lake: &Lake,
    raw_key: &str,
) -> Result<Vec<u8>, SyncError> {
    if let Some(key) = raw_key.strip_prefix("lake:") {
        Ok(lake.get(key).await?)
    } else {
        let relative = raw_key.strip_prefix("state:").unwrap_or(raw_key);
        let path = settings.state_dir.join(relative);
        std::fs::read(&path).map_err(|source| SyncError::Read {
            path: path.display().to_string(),
            source,
        })
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
    fn versions_sort_after_the_original() {
        assert_eq!(versioned_name("RatedCDRs_1.csv", 1), "RatedCDRs_1.csv");
        assert_eq!(versioned_name("RatedCDRs_1.csv", 2), "RatedCDRs_1.v2.csv");
        assert!("RatedCDRs_1.v2.csv" > "RatedCDRs_1.csv");
    }
}
