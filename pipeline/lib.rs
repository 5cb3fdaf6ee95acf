//! mvnobill: the billing pipeline of an MVNO on an MVNE's network.
//!
//! Stages (one module each, one entry point returning a typed report):
//! `sync` → `land` → `rate` → `bill` → `render` → `publish` → `assure`.
//! Data lives in a Parquet lake behind `object_store`; the SQL of `sql/`
//! runs in DataFusion; an SQLite ledger records what was done so that every
//! stage can be re-run safely.

pub mod app;
pub mod assure;
pub mod bill;
pub mod cdrindex;
pub mod check;
pub mod chrome;
pub mod cli;
pub mod credit;
pub mod csvfile;
pub mod doctor;
pub mod document;
pub mod duration;
pub mod engine;
pub mod facturx;
pub mod finance;
pub mod ftp;
pub mod gen;
pub mod images;
pub mod integrator;
pub mod lake;
pub mod land;
pub mod ledger;
pub mod lock;
pub mod mail;
pub mod month;
pub mod pdfbatch;
pub mod progress;
pub mod publish;
pub mod query;
pub mod rate;
pub mod reference;
pub mod render;
pub mod rio;
pub mod running_sum;
pub mod sepa;
pub mod settings;
pub mod sim;
pub mod sqlfiles;
pub mod sync;
pub mod upstream;
pub mod whatif;
pub mod zones;
