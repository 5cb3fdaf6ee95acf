//! mvnobill: the billing pipeline of an MVNO on an MVNE's network.
//!
//! The modules are layers, each a folder that imports only from the folders
//! below it (docs/ARCHITECTURE.md):
//!
//! - `core`: text, months, the lake, the ledger, the lock, CSV reading,
//!   identifiers: what every layer above uses, and nothing of theirs;
//! - `engine`: the DataFusion session, the SQL of `sql/`, the zones;
//! - `mvne`: the MVNE's FTP, its file formats, the raw zone;
//! - `reference`: the integrator's tables and identity;
//! - `documents`: templates, PDF printing, Factur-X, mail;
//! - `settings`: the config file, which every stage takes;
//! - `account`: the customer account (account.md §7): balances, open
//!   amounts, the bank's files;
//! - `stages`: one verb each, `sync` → `land` → `rate` → `bill` →
//!   `render` → `publish` → `assure`, with `finance`, `sepa` and `credit`;
//! - `tools`: the commands beside the pipeline (`check`, `doctor`,
//!   `query`, `whatif`, …);
//! - `cli` (clap) and `app` (a command → its stages), used by `main.rs`.

pub mod account;
pub mod app;
pub mod cli;
pub mod core;
pub mod documents;
pub mod engine;
pub mod mvne;
pub mod reference;
pub mod settings;
pub mod stages;
pub mod tools;
