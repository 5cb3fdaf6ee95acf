//! `mvnobill sim puk MSISDN|ICCID`: the support desk's look-up of a SIM
//! card's PUK codes (issue 7, docs/OPERATIONS.md "SIM cards and PUK codes").
//!
//! The codes never enter the lake: `land` keeps them in a store of their
//! own, `<state>/secrets/puk.sqlite`, readable by its owner only. This
//! command reads that store, prints the codes to the person who asked, and
//! records the look-up (when, which card, who, found or not) in the ledger
//! without the codes. It is not a run: its report, which carries the codes,
//! is not kept in the ledger's `runs` table.

use serde::Serialize;

use crate::core::ledger::Ledger;
use crate::core::secrets::{PukStore, SecretsError};
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("'{0}' is neither a mobile number (0612345678, +33612345678) nor an ICCID (19 or 20 digits)")]
    BadKey(String),
    #[error(transparent)]
    Store(#[from] SecretsError),
    #[error("no SIM card with {0} in the PUK store")]
    NotFound(String),
    #[error(transparent)]
    Ledger(#[from] crate::core::ledger::LedgerError),
}

/// What `sim puk` found: the card and its codes.
#[derive(Debug, Serialize)]
pub struct PukReport {
    pub iccid: String,
    pub msisdn: Option<String>,
    pub order_id: String,
    pub puk1: String,
    pub puk2: String,
}

impl std::fmt::Display for PukReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIM {} (order {}", self.iccid, self.order_id)?;
        if let Some(msisdn) = &self.msisdn {
            write!(
                f,
                ", line {}",
                crate::documents::templates::msisdn_fr(msisdn)
            )?;
        }
        write!(f, "): PUK1 {}, PUK2 {}", self.puk1, self.puk2)
    }
}

/// The store's key for what the desk typed: an ICCID as it is, a mobile
/// number in the MVNE's international form (`33612345678`).
pub fn store_key(text: &str) -> Result<String, SimError> {
    let digits: String = text
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .collect();
    let bad = || SimError::BadKey(text.to_string());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.len() {
        19 | 20 if digits.starts_with("89") => Ok(digits),
        10 if digits.starts_with('0') => Ok(format!("33{}", &digits[1..])),
        11 if digits.starts_with("33") => Ok(digits),
        13 if digits.starts_with("0033") => Ok(digits[2..].to_string()),
        _ => Err(bad()),
    }
}

/// Looks a card up by number or ICCID and records the look-up.
pub fn puk(settings: &Settings, ledger: &Ledger, key: &str) -> Result<PukReport, SimError> {
    let wanted = store_key(key)?;
    let found = PukStore::of_state(&settings.state_dir).find(&wanted);
    let user = std::env::var("USER").unwrap_or_default();
    ledger.record_puk_lookup(&wanted, &user, matches!(found, Ok(Some(_))))?;
    tracing::info!(card = %wanted, found = matches!(found, Ok(Some(_))), "PUK look-up");
    let card = found?.ok_or(SimError::NotFound(wanted))?;
    Ok(PukReport {
        iccid: card.iccid,
        msisdn: card.msisdn,
        order_id: card.order_id,
        puk1: card.puk1,
        puk2: card.puk2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_iccids_as_the_desk_types_them() {
        for typed in [
            "06 32 26 00 20",
            "+33632260020",
            "33632260020",
            "0033632260020",
            "06.32.26.00.20",
        ] {
            assert_eq!(store_key(typed).unwrap(), "33632260020", "{typed}");
        }
        assert_eq!(
            store_key("89330000000632260020").unwrap(),
            "89330000000632260020"
        );
        for wrong in [
            "",
            "063226002",
            "0632260020x",
            "12345678901234567890",
            "+44 7700 900123",
        ] {
            assert!(
                matches!(store_key(wrong), Err(SimError::BadKey(_))),
                "{wrong}"
            );
        }
    }
}
