//! The documents: invoice and credit-note data, templates, images, PDF
//! printing through Chromium, Factur-X, and the mail that carries them.

pub mod chrome;
pub mod document;
pub mod facturx;
pub mod images;
pub mod mail;
pub mod pdfbatch;
pub mod templates;
