//! Sync and publish over a real FTP/FTPS server (being written).
