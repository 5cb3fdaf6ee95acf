//! The test suite: one binary, integration tests first. Each test runs the
//! real `mvnobill` binary on fixture folders (see `common`).

mod analysts;
mod cli;
mod common;
mod credit;
mod documents;
mod ftp;
mod golden;
mod land_files;
mod mail;
mod rules;
mod s3;
