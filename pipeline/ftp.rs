//! FTP (being written).
