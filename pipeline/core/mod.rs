//! The foundations: what every layer uses and that imports nothing of the
//! crate above it.

pub mod calendar;
pub mod csvfile;
pub mod identifiers;
pub mod lake;
pub mod ledger;
pub mod lock;
pub mod month;
pub mod progress;
pub mod secrets;
pub mod text;
