//! The commands beside the pipeline: the checks, the analysts' query, the
//! what-if pricing, and the small tools of operations.

pub mod check;
pub mod doctor;
pub mod duration;
pub mod gen;
pub mod query;
pub mod receivables;
pub mod rio;
pub mod sim;
pub mod usage;
pub mod whatif;
