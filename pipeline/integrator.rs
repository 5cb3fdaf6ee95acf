//! The integrator's identity, `integrator.toml` (formats.md): company, legal
//! mentions, customer service, SEPA creditor identifier, invoice numbering
//! prefix and payment terms. Only what the stages use is required here; the
//! invoice documents use the rest.

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
        let text = std::fs::read_to_string(path).map_err(|source| IntegratorError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let integrator: Integrator = toml::from_str(&text).map_err(|e| IntegratorError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        let prefix_ok = !integrator.invoice_prefix.is_empty()
            && integrator.invoice_prefix.len() <= 10
            && integrator
                .invoice_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric());
        if !prefix_ok {
            return Err(IntegratorError::Parse {
                path: path.display().to_string(),
                message: format!(
                    "invoice_prefix '{}' must be 1 to 10 letters or digits",
                    integrator.invoice_prefix
                ),
            });
        }
        Ok(integrator)
    }
}
