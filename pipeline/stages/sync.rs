//! `sync`: fetch new upstream files from the source into the raw zone.
//!
//! The source is the MVNE's FTP server (`ftp://`, or `ftps://` with explicit
//! TLS; `ftp.rs`) or a local folder laid out like it (`file://`), formats.md:
//! `RatedCDRs/`, `BilledCDRs/`, `AccountStatus/` and `Cartes SIM/` are read
//! and landed; `Factures/Intégrateur/` (the MVNE's invoices, PDF) is fetched
//! and kept in the raw zone for finance, `Tables tarifaires/` (the tariff
//! tables the MVNE configured) for `check`; other folders are not ours. Both kinds only list a folder (name,
//! size) and fetch a file's bytes; everything after the fetch is one code
//! path. A file is new when the ledger has not seen its (folder, name,
//! sha256); a re-delivered identical file is a no-op, the same name with
//! other bytes is kept as a new version and reported. A name with `..`, a
//! slash or backslash, or a control character is never fetched: it is refused and
//! reported with its reason.
//!
//! From an FTP server, a file is downloaded into `<state>/incoming/` (owner
//! only), resumed there with `REST` after a dropped connection, and checked
//! against the listed size before anything is recorded; the ledger also keeps
//! each listed (name, size, modification time) fetched, so that the next
//! sync downloads nothing it already has. From a folder likewise (the time
//! to the nanosecond): a file fetched before is not read again.
//!
//! A file is never held in memory: it is read with a fixed buffer, copied
//! to a staging place and hashed in the same pass, then renamed to its name
//! in the raw zone (a name seen before is hashed first, so a re-delivered
//! identical file is only read). Memory stays a few megabytes whatever the
//! files' sizes.
//!
//! CDR and status files go to `<lake>/raw/<folder>/<name>`. SIM orders carry
//! PUK codes: their raw copy goes to the private state folder, never to the
//! lake. Each copy is written atomically before the ledger records it, so a
//! crash leaves at worst an unrecorded copy that the next sync rewrites.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::lake::{Lake, LakeError};
use crate::core::ledger::{FetchedFile, Ledger, LedgerError, RemoteFile};
use crate::mvne::ftp::{AsyncFtp, Credentials, FtpClient, FtpError};
use crate::mvne::raw::{
    check_name, commit_raw, discard_raw, hash_file, hex, stage_raw, versioned_name, RawError,
    FOLDERS,
};
use crate::settings::{Settings, Source};
use crate::stages::Context;

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
    #[error(transparent)]
    Ftp(#[from] FtpError),
    #[error(
        "sync stopped after {fetched} file(s) fetched: {source} (the next sync goes on from there)"
    )]
    Stopped {
        fetched: u64,
        #[source]
        source: FtpError,
    },
    #[error("sync of {url}: {count} file(s) refused by the server, not fetched (first: {first}); {fetched} other(s) fetched")]
    NotFetched {
        url: String,
        count: usize,
        first: String,
        fetched: u64,
    },
    #[error(transparent)]
    Raw(#[from] RawError),
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
    /// Remote names refused (never fetched), `folder/name: reason`, the name
    /// escaped.
    pub files_refused: u64,
    pub refused: Vec<String>,
    /// Downloads that went on from a partial file (`REST`).
    pub resumed: Vec<String>,
    /// FTP operations tried again after a dropped connection or a 4xx answer.
    pub retries: u64,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sync: {} files seen, {} fetched ({} bytes), {} already fetched",
            self.files_seen, self.files_fetched, self.bytes_fetched, self.already_fetched
        )?;
        if self.files_refused > 0 {
            write!(f, ", {} refused", self.files_refused)?;
        }
        if self.retries > 0 {
            write!(f, ", {} retries", self.retries)?;
        }
        for name in &self.new_versions {
            write!(
                f,
                "\n  re-delivered with other content, kept as a new version: {name}"
            )?;
        }
        for refused in &self.refused {
            write!(f, "\n  refused, not fetched: {refused}")?;
        }
        for name in &self.resumed {
            write!(f, "\n  resumed after an interrupted download: {name}")?;
        }
        Ok(())
    }
}

/// One file listed in a source folder.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    size: Option<u64>,
    modified: Option<String>,
    /// The local name was not UTF-8 (`name` is a lossy copy).
    bad_encoding: bool,
}

/// A source opened for one sync: what lists folders and fetches bytes.
enum Upstream {
    Folder(PathBuf),
    Ftp {
        ftp: AsyncFtp,
        /// Partial downloads, `<state>/incoming/<folder>/`.
        incoming: PathBuf,
    },
}

impl Upstream {
    fn open(settings: &Settings) -> Result<(Upstream, String), SyncError> {
        match &settings.source {
            None => Err(SyncError::NoSource),
            Some(Source::Folder(root)) => Ok((
                Upstream::Folder(root.clone()),
                format!("file://{}", root.display()),
            )),
            Some(Source::Ftp(ftp)) => Ok((
                Upstream::Ftp {
                    ftp: AsyncFtp::new(FtpClient::new(ftp, Credentials::resolve(ftp)?)?),
                    incoming: settings.state_dir.join("incoming"),
                },
                ftp.url(),
            )),
        }
    }

    /// The files of a folder, sorted by name; `None` when there is no such
    /// folder.
    async fn list(&mut self, folder: &'static str) -> Result<Option<Vec<Listed>>, SyncError> {
        match self {
            Upstream::Folder(root) => {
                let dir = root.join(folder);
                if !dir.is_dir() {
                    return Ok(None);
                }
                list_files(&dir).map(Some)
            }
            Upstream::Ftp { ftp, incoming } => {
                let Some(entries) = ftp.run(move |c| c.list(folder)).await? else {
                    return Ok(None);
                };
                let mut files: Vec<Listed> = entries
                    .into_iter()
                    .filter(|e| e.is_file)
                    .map(|e| Listed {
                        name: e.name,
                        size: e.size,
                        modified: e.modified,
                        bad_encoding: false,
                    })
                    .collect();
                files.sort_by(|a, b| a.name.cmp(&b.name));
                forget_stale_partials(&incoming.join(folder), &files);
                Ok(Some(files))
            }
        }
    }

    /// Where a listed file can be read locally: the source folder's own
    /// file, or the FTP download in `<state>/incoming/` (resumed when a
    /// partial one is there, which the bool says). Nothing is read into
    /// memory here.
    async fn fetch(&mut self, folder: &str, file: &Listed) -> Result<(PathBuf, bool), SyncError> {
        match self {
            Upstream::Folder(root) => Ok((root.join(folder).join(&file.name), false)),
            Upstream::Ftp { ftp, incoming } => {
                let dir = incoming.join(folder);
                crate::core::ledger::create_private_dir(&dir)?;
                let partial = dir.join(partial_name(file));
                let relative = format!("{folder}/{}", file.name);
                let expected = file.size;
                let target = partial.clone();
                let resumed = ftp
                    .run(move |c| c.download(&relative, expected, &target).map(|_| c.resumed))
                    .await?;
                Ok((partial, resumed > 0))
            }
        }
    }

    /// Operations retried so far.
    async fn retries(&mut self) -> u64 {
        match self {
            Upstream::Folder(_) => 0,
            Upstream::Ftp { ftp, .. } => ftp.run(|c| c.retried).await,
        }
    }

    /// The file is recorded: its partial download is no longer needed.
    fn committed(&self, folder: &str, file: &Listed) {
        if let Upstream::Ftp { incoming, .. } = self {
            let _ = std::fs::remove_file(incoming.join(folder).join(partial_name(file)));
        }
    }

    async fn close(self) {
        if let Upstream::Ftp { ftp, .. } = self {
            ftp.quit().await;
        }
    }
}

/// The local name of a partial download: the same listed name, size and
/// modification time resume the same file.
fn partial_name(file: &Listed) -> String {
    let identity = format!(
        "{}\n{}\n{}",
        file.name,
        file.size.map(|s| s.to_string()).unwrap_or_default(),
        file.modified.as_deref().unwrap_or_default()
    );
    format!("{}.part", &hex(&Sha256::digest(identity.as_bytes()))[..32])
}

/// Removes partial downloads of files no longer listed as they were.
fn forget_stale_partials(dir: &Path, files: &[Listed]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let wanted: std::collections::HashSet<String> = files.iter().map(partial_name).collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".part") && !wanted.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub async fn sync(stage: &Context) -> Result<SyncReport, SyncError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let (mut upstream, url) = Upstream::open(settings)?;
    let result = sync_from(&mut upstream, &url, settings, lake, ledger).await;
    upstream.close().await;
    result
}

async fn sync_from(
    upstream: &mut Upstream,
    url: &str,
    settings: &Settings,
    lake: &Lake,
    ledger: &Ledger,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport {
        source: url.to_string(),
        ..Default::default()
    };
    let mut not_fetched = Vec::new();
    for folder in FOLDERS {
        let Some(files) = upstream.list(folder).await? else {
            continue;
        };
        let bar = crate::core::progress::bar("sync", files.len() as u64, format!("{folder} files"));
        for file in files {
            bar.inc(1);
            report.files_seen += 1;
            let name = file.name.clone();
            let check = if file.bad_encoding {
                Err("the name is not valid UTF-8")
            } else {
                check_name(&name)
            };
            if let Err(reason) = check {
                let shown = name.escape_debug().to_string();
                tracing::info!("{url}: {folder}/{shown} refused: {reason}");
                report.files_refused += 1;
                report.refused.push(format!("{folder}/{shown}: {reason}"));
                continue;
            }
            let remote = match (file.size, &file.modified) {
                (Some(size), Some(modified)) => Some(RemoteFile {
                    source: url.to_string(),
                    folder: folder.to_string(),
                    name: name.clone(),
                    size,
                    modified: modified.clone(),
                }),
                _ => None,
            };
            if let Some(remote) = &remote {
                if ledger.remote_file_sha256(remote)?.is_some() {
                    report.already_fetched += 1;
                    continue;
                }
            }
            let (path, resumed) = match upstream.fetch(folder, &file).await {
                Ok(fetched) => fetched,
                Err(SyncError::Ftp(FtpError::Refused { message, .. })) => {
                    tracing::info!("{url}: {folder}/{name} not fetched: {message}");
                    not_fetched.push(format!("{folder}/{name}: {message}"));
                    continue;
                }
                Err(SyncError::Ftp(e)) => {
                    return Err(SyncError::Stopped {
                        fetched: report.files_fetched,
                        source: e,
                    })
                }
                Err(e) => return Err(e),
            };
            if resumed {
                report.resumed.push(format!("{folder}/{name}"));
            }
            // Streamed, never held whole: a name seen before is hashed first
            // (a re-delivered identical file is then only read); a new one is
            // copied to the staging place and hashed in the same pass.
            let staged = if ledger.version_count(folder, &name)? > 0 {
                let (_, sha256) = hash_file(&path)?;
                if ledger.find_fetched(folder, &name, &sha256)?.is_some() {
                    Err(sha256)
                } else {
                    Ok(stage_raw(
                        &settings.state_dir,
                        lake,
                        folder,
                        &partial_name(&file),
                        &path,
                    )
                    .await?)
                }
            } else {
                Ok(stage_raw(
                    &settings.state_dir,
                    lake,
                    folder,
                    &partial_name(&file),
                    &path,
                )
                .await?)
            };
            let sha256 = match staged {
                Err(sha256) => {
                    report.already_fetched += 1;
                    sha256
                }
                Ok(staged)
                    if ledger
                        .find_fetched(folder, &name, &staged.sha256)?
                        .is_some() =>
                {
                    report.already_fetched += 1;
                    let sha256 = staged.sha256.clone();
                    discard_raw(lake, staged).await?;
                    sha256
                }
                Ok(staged) => {
                    let version = ledger.version_count(folder, &name)? + 1;
                    let stored_name = versioned_name(&name, version);
                    if version > 1 {
                        report.new_versions.push(format!("{folder}/{name}"));
                    }
                    let (size, sha256) = (staged.size, staged.sha256.clone());
                    let raw_key =
                        commit_raw(&settings.state_dir, lake, folder, &stored_name, staged).await?;
                    ledger.record_fetched(&FetchedFile {
                        id: 0,
                        folder: folder.to_string(),
                        name: name.clone(),
                        size,
                        sha256: sha256.clone(),
                        raw_key,
                        version,
                    })?;
                    report.files_fetched += 1;
                    report.bytes_fetched += size;
                    sha256
                }
            };
            if let Some(remote) = &remote {
                ledger.record_remote_file(remote, &sha256)?;
            }
            upstream.committed(folder, &file);
        }
        bar.finish_and_clear();
    }
    report.retries = upstream.retries().await;
    if let Some(first) = not_fetched.first() {
        return Err(SyncError::NotFetched {
            url: url.to_string(),
            count: not_fetched.len(),
            first: first.clone(),
            fetched: report.files_fetched,
        });
    }
    Ok(report)
}

/// Regular files of a folder, sorted by name.
fn list_files(dir: &Path) -> Result<Vec<Listed>, SyncError> {
    let read_err = |source| SyncError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let metadata = entry.metadata().map_err(read_err)?;
        if !metadata.is_file() {
            continue;
        }
        let (name, bad_encoding) = match entry.file_name().into_string() {
            Ok(name) => (name, false),
            Err(raw) => (raw.to_string_lossy().into_owned(), true),
        };
        // The modification time to the nanosecond: with the name and size,
        // what tells a file fetched before without reading it again.
        let modified = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()));
        files.push(Listed {
            name,
            size: Some(metadata.len()),
            modified,
            bad_encoding,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}
