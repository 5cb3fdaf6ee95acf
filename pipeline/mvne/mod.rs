//! The MVNE's side: its FTP, the formats of its files, and the raw zone
//! where its files are kept as delivered.

pub mod ftp;
pub mod raw;
pub mod upstream;
