//! One writer at a time: every command that writes the lake or the ledger
//! holds an exclusive lock on `<state>/mvnobill.lock` for as long as it
//! runs. A second writer fails at once, in one line naming the lock file
//! and what holds it (pid, command, since when, as the holder wrote them in
//! the file), or waits for it with `--wait`.
//!
//! The lock is the operating system's (`flock` on Unix): it goes with the
//! process, so a writer killed with `kill -9` leaves no stale lock behind,
//! only its text, which the next holder overwrites. It is local to the
//! machine of the state folder: two machines sharing one S3 lake must not
//! run writers at once (docs/RELIABILITY.md).
//!
//! Commands that only read (`query`, `rio`, `duration`, `gen`) do not take
//! it, and neither does `sim puk`: the support desk must get a card's codes
//! while a long run holds the lock, and its one row in the ledger waits on
//! SQLite's own lock, not on this one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "mvnobill.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is held by {holder}: another mvnobill command is writing this lake; wait for it to end or pass --wait")]
    Busy { path: String, holder: String },
    #[error("lock file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock of the state folder `state_dir` (created if needed,
    /// owner-only) for `what` (the command, for the message a second writer
    /// prints). Without `wait`, fails at once when another process holds it.
    pub fn take(state_dir: &Path, what: &str, wait: bool) -> Result<StateLock, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        crate::core::ledger::create_private_dir(state_dir).map_err(|e| match e {
            crate::core::ledger::LedgerError::Folder { source, .. } => io(source),
            other => io(std::io::Error::other(other.to_string())),
        })?;
        // Not truncated on open: the text is the holder's until we hold it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait => {
                tracing::warn!(
                    "waiting for {} held by {}",
                    path.display(),
                    holder(&mut file)
                );
                file.lock().map_err(io)?;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Busy {
                    path: path.display().to_string(),
                    holder: holder(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let text = format!(
            "pid {} ({}) since {}\n",
            std::process::id(),
            what,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        // One write at the start, then cut what an older, longer text left:
        // a second writer reading meanwhile sees the whole new line first.
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.set_len(text.len() as u64).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // The text goes with the lock; the file stays (removing it would let
        // a third process lock a new file while a second waits on this one).
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// What the holder wrote in the lock file, on one line. A holder writes its
/// text just after it takes the lock: a second writer that comes in between
/// finds the file empty, so it reads again for up to a second.
fn holder(file: &mut File) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let mut text = String::new();
        let _ = file.seek(SeekFrom::Start(0));
        let _ = (&mut *file).take(512).read_to_string(&mut text);
        let line = text.lines().next().unwrap_or("").trim();
        if line.starts_with("pid ") && text.ends_with('\n') {
            return crate::core::text::one_line(line);
        }
        if std::time::Instant::now() >= deadline {
            return match line {
                "" => "another process".to_string(),
                line => crate::core::text::one_line(line),
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The command line of this process, for the lock file (no secret is ever
/// given on the command line: passwords come from the environment).
pub fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    // The program's name, not its whole path.
    if let Some(name) = args
        .first()
        .and_then(|program| Path::new(program).file_name())
    {
        args[0] = name.to_string_lossy().into_owned();
    }
    let line = args.join(" ");
    crate::core::text::one_line(&line)
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_text_then_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::take(dir.path(), "mvnobill run --month 2026-10", false).unwrap();
        let error = StateLock::take(dir.path(), "mvnobill bill --month 2026-10", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&format!("{}", dir.path().join(LOCK_FILE).display())));
        assert!(
            error.contains(&format!(
                "pid {} (mvnobill run --month 2026-10)",
                std::process::id()
            )),
            "{error}"
        );
        // The refused one did not wipe the holder's text.
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert!(text.contains("mvnobill run --month 2026-10"), "{text}");
        drop(first);
        let second = StateLock::take(dir.path(), "mvnobill bill --month 2026-10", false).unwrap();
        let text = std::fs::read_to_string(second.path()).unwrap();
        assert!(text.contains("mvnobill bill --month 2026-10"), "{text}");
    }

    #[test]
    fn a_second_writer_coming_before_the_holder_wrote_its_text_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let mut raw = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        raw.try_lock().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150));
            raw.write_all(b"pid 4242 (mvnobill run) since 2026-11-28T20:00:00Z\n")
                .unwrap();
            raw
        });
        let error = StateLock::take(dir.path(), "mvnobill bill", false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is held by pid 4242 (mvnobill run) since 2026-11-28T20:00:00Z:"),
            "{error}"
        );
        drop(writer.join().unwrap());
    }
}
