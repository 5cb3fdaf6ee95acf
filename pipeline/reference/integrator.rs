//! The integrator's identity, `integrator.toml` (formats.md): company, legal
//! mentions, customer service, SEPA creditor identifier, invoice numbering
//! prefix and payment terms. Only what the stages use is required here; the
//! invoice documents use the rest. The SEPA creditor identifier and the bank
//! account, when given, are checked on load (sepa.rs has the rules).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IntegratorError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value of a key, named with its line.
    #[error("{location}, key {key}: {message}")]
    Value {
        location: String,
        key: &'static str,
        message: String,
    },
}

/// The 1-based line that sets `key` at the top of a TOML file, if any.
pub fn key_line(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().position(|line| {
        line.trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    line.map(|i| i as u64 + 1)
}

/// `path line N` for the line that sets `key` at the top of a TOML file,
/// else `path`.
fn key_location(path: &Path, text: &str, key: &str) -> String {
    match key_line(text, key) {
        Some(line) => format!("{} line {line}", path.display()),
        None => path.display().to_string(),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Integrator {
    pub name: String,
    pub brand: Option<String>,
    pub legal_form: Option<String>,
    #[serde(default)]
    pub address: Vec<String>,
    pub siret: Option<String>,
    pub vat_number: Option<String>,
    pub customer_service_phone: Option<String>,
    pub customer_service_cost: Option<String>,
    pub customer_service_email: Option<String>,
    pub billing_email: Option<String>,
    pub technical_email: Option<String>,
    pub technical_contact: Option<String>,
    pub sepa_ics: Option<String>,
    pub payment_terms_days: u32,
    pub invoice_prefix: String,
    pub bank_iban: Option<String>,
    pub bank_bic: Option<String>,
    pub logo: Option<PathBuf>,
    pub footer_banner: Option<PathBuf>,
}

impl Integrator {
    pub fn load(path: &Path) -> Result<Integrator, IntegratorError> {
        let (integrator, _, problems) = Integrator::read(path)?;
        match problems.into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(integrator),
        }
    }

    /// The file, its text and every problem with a value (`check` reports
    /// them all); a file that does not read or parse is the error.
    pub fn read(
        path: &Path,
    ) -> Result<(Integrator, String, Vec<IntegratorError>), IntegratorError> {
        let text = std::fs::read_to_string(path).map_err(|source| IntegratorError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let integrator: Integrator = toml::from_str(&text).map_err(|e| IntegratorError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        let mut problems = Vec::new();
        let prefix_ok = !integrator.invoice_prefix.is_empty()
            && integrator.invoice_prefix.len() <= 10
            && integrator
                .invoice_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric());
        if !prefix_ok {
            problems.push(IntegratorError::Parse {
                path: path.display().to_string(),
                message: format!(
                    "invoice_prefix '{}' must be 1 to 10 letters or digits",
                    integrator.invoice_prefix
                ),
            });
        }
        // The bank details the SEPA file names (sepa.rs has the rules).
        type Check = fn(&str) -> Option<String>;
        let checks: [(&'static str, Option<&String>, Check); 3] = [
            (
                "sepa_ics",
                integrator.sepa_ics.as_ref(),
                crate::core::identifiers::ics_problem,
            ),
            (
                "bank_iban",
                integrator.bank_iban.as_ref(),
                crate::core::identifiers::iban_problem,
            ),
            (
                "bank_bic",
                integrator.bank_bic.as_ref(),
                crate::core::identifiers::bic_problem,
            ),
        ];
        for (key, value, problem) in checks {
            if let Some(message) = value.and_then(|v| problem(v)) {
                problems.push(IntegratorError::Value {
                    location: key_location(path, &text, key),
                    key,
                    message,
                });
            }
        }
        Ok((integrator, text, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_creditor_identifier_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples");
        let text = std::fs::read_to_string(samples.join("integrator.toml")).unwrap();
        let path = dir.path().join("integrator.toml");
        std::fs::write(&path, &text).unwrap();
        assert!(Integrator::load(&path).is_ok());
        std::fs::write(&path, text.replace("FR72ZZZ123456", "FR27ZZZ123456")).unwrap();
        let message = Integrator::load(&path).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{} line 13, key sepa_ics: 'FR27ZZZ123456': the check digits are wrong (mod 97-10 of the identifier without its business code gives 72)",
                path.display()
            )
        );
    }
}
