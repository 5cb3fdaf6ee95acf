//! The PUK store: the SIM cards' PUK codes, kept out of the lake in
//! `<state>/secrets/puk.sqlite`, readable by its owner only. `land` writes
//! it from the MVNE's SIM orders, `sim puk` reads it; nothing else opens
//! it. A card's codes never appear in a log, an error or a dataset: the
//! `Debug` of a [`PukCard`] masks them.

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;

use crate::core::ledger::{create_private_dir, LedgerError};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no PUK store at {0}: land the MVNE's SIM card orders (Cartes SIM/) first")]
    NoStore(String),
    #[error("PUK store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Folder(#[from] LedgerError),
}

/// One SIM card and its codes.
#[derive(Clone, PartialEq, Eq)]
pub struct PukCard {
    pub iccid: String,
    pub msisdn: Option<String>,
    pub order_id: String,
    pub puk1: String,
    pub puk2: String,
}

impl std::fmt::Debug for PukCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PukCard")
            .field("iccid", &self.iccid)
            .field("msisdn", &self.msisdn)
            .field("order_id", &self.order_id)
            .field("puk1", &"********")
            .field("puk2", &"********")
            .finish()
    }
}

/// The store of a state folder.
pub struct PukStore {
    path: PathBuf,
}

impl PukStore {
    pub fn of_state(state_dir: &Path) -> PukStore {
        PukStore {
            path: state_dir.join("secrets").join("puk.sqlite"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> SecretsError + '_ {
        |source| SecretsError::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Adds cards, or replaces those already there (a re-delivered order).
    pub fn store(&self, cards: &[PukCard]) -> Result<(), SecretsError> {
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        let err = self.error();
        let mut connection = rusqlite::Connection::open(&self.path).map_err(&err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600));
        }
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS puk (iccid TEXT PRIMARY KEY, msisdn TEXT, order_id TEXT NOT NULL, puk1 TEXT NOT NULL, puk2 TEXT NOT NULL)",
            )
            .map_err(&err)?;
        let tx = connection.transaction().map_err(&err)?;
        for card in cards {
            tx.execute(
                "INSERT OR REPLACE INTO puk (iccid, msisdn, order_id, puk1, puk2) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![card.iccid, card.msisdn, card.order_id, card.puk1, card.puk2],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// The card whose ICCID or line number is `key` (the line's first card
    /// by ICCID when it had several).
    pub fn find(&self, key: &str) -> Result<Option<PukCard>, SecretsError> {
        if !self.path.exists() {
            return Err(SecretsError::NoStore(self.path.display().to_string()));
        }
        let err = self.error();
        let connection = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(&err)?;
        connection
            .query_row(
                "SELECT iccid, msisdn, order_id, puk1, puk2 FROM puk \
                 WHERE iccid = ?1 OR msisdn = ?1 ORDER BY iccid LIMIT 1",
                [key],
                |row| {
                    Ok(PukCard {
                        iccid: row.get(0)?,
                        msisdn: row.get::<_, Option<String>>(1)?.filter(|m| !m.is_empty()),
                        order_id: row.get(2)?,
                        puk1: row.get(3)?,
                        puk2: row.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_stored_are_found_by_number_or_iccid_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let store = PukStore::of_state(dir.path());
        assert!(matches!(store.find("x"), Err(SecretsError::NoStore(_))));
        let card = PukCard {
            iccid: "89330000000632260020".into(),
            msisdn: Some("33632260020".into()),
            order_id: "CMD-1".into(),
            puk1: "12345678".into(),
            puk2: "87654321".into(),
        };
        store.store(std::slice::from_ref(&card)).unwrap();
        assert_eq!(store.find("33632260020").unwrap().as_ref(), Some(&card));
        assert_eq!(
            store.find("89330000000632260020").unwrap(),
            Some(card.clone())
        );
        assert_eq!(store.find("33600000000").unwrap(), None);
        let shown = format!("{card:?}");
        assert!(
            !shown.contains("12345678") && !shown.contains("87654321"),
            "{shown}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }
}
