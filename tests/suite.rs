//! The test suite: one binary, integration tests first. Each test runs the
//! real `mvnobill` binary on fixture folders (see `common`).

mod account;
mod airflow;
mod alerts;
mod analysts;
mod architecture;
mod assure;
mod charges;
mod check;
mod cli;
mod common;
mod concurrency;
mod crash;
mod credit;
mod documents;
mod dunning;
mod en16931;
mod finance;
mod frozen;
mod ftp;
mod fuzz;
mod golden;
mod hostile;
mod incremental;
mod injection;
mod land_files;
mod mail;
mod operators;
mod payments;
mod receivables;
mod rules;
mod s3;
mod secrets;
mod sepa;
mod tools;
mod whatif;
