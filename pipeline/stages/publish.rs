//! `publish`, the upload part: each PDF invoice of an issued month
//! (`<lake>/documents/YYYY-MM/*.pdf`, written by `render`) goes to
//! `Factures/Clients/YYYY-MM/` on the source: the MVNE's FTP server, or the
//! same folder of a local `file://` tree.
//!
//! - Atomic: a document is written as `.NAME.pdf.part`, checked for its
//!   size, then renamed to `NAME.pdf`, so a customer never sees half a PDF.
//! - Idempotent: the ledger records each upload (`published_files`: size and
//!   sha256). A re-run uploads nothing whose remote copy has the same size and
//!   checksum; a remote copy that differs from the lake's document (or that
//!   the ledger does not know and whose bytes differ) is replaced, and counted
//!   as such.
//!
//! Then, when the configuration has a `[mail]` relay, each customer is
//! mailed that its invoice is available, and that each credit note whose
//! documents are the month's is (`mail.rs`; the ledger keeps a re-run from
//! mailing twice).
//!
//! Before both, the month's SEPA direct-debit file is written in the lake
//! (`sepa.rs`, `documents/YYYY-MM/sepa-YYYY-MM.xml`): it is for the
//! integrator's bank, never uploaded to the customers' folder, and a mistake
//! in a mandate stops `publish` before anything leaves.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::lake::{Lake, LakeError};
use crate::core::ledger::{Ledger, LedgerError, PublishedFile};
use crate::core::month::Month;
use crate::documents::templates::MailTemplates;
use crate::mvne::ftp::{AsyncFtp, Credentials, FtpClient, FtpError};
use crate::mvne::raw::hex;
use crate::settings::Source;
use crate::stages::Context;

/// Where the integrator's customer invoices are published, by month.
pub const CLIENTS_FOLDER: &str = "Factures/Clients";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no [source] url in the configuration: nowhere to publish the invoices to")]
    NoSource,
    #[error("month {month} is not billed: run `mvnobill bill --month {month}` (or `mvnobill run --month {month}`) first")]
    NotIssued { month: String },
    #[error("no PDF invoice for {month} in {folder}: run `mvnobill render --month {month}` (without --html-only) first")]
    NoDocuments { month: String, folder: String },
    #[error("{path}: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ftp(#[from] FtpError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Mail(#[from] crate::documents::mail::MailError),
    #[error(transparent)]
    Invoices(#[from] crate::stages::render::RenderError),
    #[error(transparent)]
    Sepa(#[from] crate::stages::sepa::SepaError),
    #[error("publish: the credit notes' mails: {0}")]
    CreditNotes(Box<crate::stages::credit::CreditError>),
}

/// What `publish` did: the documents uploaded, and the mails when a relay
/// is configured.
#[derive(Debug, Serialize)]
pub struct PublishRunReport {
    pub sepa: crate::stages::sepa::SepaReport,
    pub documents: PublishReport,
    pub mail: Option<crate::documents::mail::MailReport>,
}

impl std::fmt::Display for PublishRunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.sepa, self.documents)?;
        match &self.mail {
            Some(mail) => write!(f, "\n{mail}"),
            None => write!(f, "\nmail: no [mail] relay configured, no mail sent"),
        }
    }
}

/// `publish`: the SEPA file, the documents, then the mails.
pub async fn publish(stage: &Context, month: Month) -> Result<PublishRunReport, PublishError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    // The mail templates are read first: one the integrator broke stops
    // `publish` before anything leaves.
    let templates = settings
        .mail
        .as_ref()
        .map(|_| MailTemplates::load(settings.templates_dir.as_deref()))
        .transpose()
        .map_err(crate::documents::mail::MailError::from)?;
    let sepa =
        crate::stages::sepa::sepa(stage, month, crate::stages::sepa::Format::default()).await?;
    let documents = publish_documents(stage, month).await?;
    let (Some(mail), Some(templates)) = (&settings.mail, &templates) else {
        return Ok(PublishRunReport {
            sepa,
            documents,
            mail: None,
        });
    };
    // The integrator as the month's issue recorded it (account.md §3).
    let integrator = crate::stages::frozen::seller(settings, lake, month)
        .await
        .map_err(crate::stages::render::RenderError::from)?
        .integrator;
    // The invoices' notices, then the credit notes' whose documents are
    // the month's (docs/MAIL.md), in one session; the ledger keeps each
    // from going twice.
    let mut notices = crate::stages::render::notices(settings, lake, month).await?;
    notices.extend(
        crate::stages::credit::notices(settings, lake, ledger, month)
            .await
            .map_err(|e| PublishError::CreditNotes(Box::new(e)))?,
    );
    let runtime = tokio::runtime::Handle::current();
    let attach = mail.attach_pdf;
    // The PDFs are read one at a time, as each mail is sent.
    let with_pdfs = notices.into_iter().map(|mut notice| {
        if attach {
            let key =
                crate::documents::document::document_key(month, &notice.invoice_number, "pdf");
            notice.pdf = runtime.block_on(lake.get_if_exists(&key)).ok().flatten();
        }
        notice
    });
    let report = tokio::task::block_in_place(|| {
        crate::documents::mail::send_notices(
            mail,
            templates,
            &integrator,
            ledger,
            &month.to_string(),
            with_pdfs,
        )
    })?;
    Ok(PublishRunReport {
        sepa,
        documents,
        mail: Some(report),
    })
}

#[derive(Debug, Default, Serialize)]
pub struct PublishReport {
    pub month: String,
    /// Where the documents are, without credentials
    /// (`ftps://host:21/Factures/Clients/2026-10/`).
    pub folder: String,
    /// PDF documents of the month in the lake.
    pub documents: u64,
    /// Uploaded where there was none.
    pub uploaded: u64,
    /// Uploaded over a remote copy with other bytes.
    pub replaced: u64,
    /// Already there with the same size and checksum: not uploaded.
    pub already_there: u64,
    pub bytes_uploaded: u64,
    /// FTP operations tried again after a dropped connection or a 4xx answer.
    pub retries: u64,
}

impl std::fmt::Display for PublishReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "publish: {} invoices in {}: {} uploaded ({} bytes), {} already there",
            self.documents, self.folder, self.uploaded, self.bytes_uploaded, self.already_there
        )?;
        if self.replaced > 0 {
            write!(
                f,
                ", {} replaced (the remote copy differed from the lake's)",
                self.replaced
            )?;
        }
        Ok(())
    }
}

/// What happened to one document.
enum Outcome {
    Uploaded,
    Replaced,
    AlreadyThere,
}

/// Where documents go.
enum Target {
    Folder(PathBuf),
    Ftp(AsyncFtp),
}

/// Uploads the month's PDF invoices to `Factures/Clients/YYYY-MM/` of the
/// source. Refuses a month that is not issued, or without PDF documents.
pub async fn publish_documents(
    stage: &Context,
    month: Month,
) -> Result<PublishReport, PublishError> {
    let Context {
        settings,
        lake,
        ledger,
    } = stage;
    let month_text = month.to_string();
    let (mut target, url) = match &settings.source {
        None => return Err(PublishError::NoSource),
        Some(Source::Folder(root)) => (
            Target::Folder(root.clone()),
            format!("file://{}/", root.display()),
        ),
        Some(Source::Ftp(ftp)) => {
            let credentials = Credentials::resolve(ftp)?;
            (
                Target::Ftp(AsyncFtp::new(FtpClient::new(ftp, credentials)?)),
                ftp.url(),
            )
        }
    };
    if !ledger.is_issued(&month_text)? {
        return Err(PublishError::NotIssued { month: month_text });
    }
    let prefix = format!("documents/{month_text}/");
    let documents: Vec<(String, String)> = lake
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|key| {
            let name = key.strip_prefix(&prefix)?.to_string();
            (name.ends_with(".pdf") && crate::mvne::raw::check_name(&name).is_ok())
                .then_some((key, name))
        })
        .collect();
    if documents.is_empty() {
        return Err(PublishError::NoDocuments {
            month: month_text,
            folder: lake.url().join(&prefix),
        });
    }
    let relative_folder = format!("{CLIENTS_FOLDER}/{month_text}");
    let mut report = PublishReport {
        month: month_text.clone(),
        folder: format!("{url}{relative_folder}/"),
        documents: documents.len() as u64,
        ..Default::default()
    };
    let result = publish_all(
        &mut target,
        &url,
        &relative_folder,
        &documents,
        lake,
        ledger,
        &month_text,
        &mut report,
    )
    .await;
    if let Target::Ftp(mut ftp) = target {
        report.retries = ftp.run(|c| c.retried).await;
        ftp.quit().await;
    }
    result.map(|()| report)
}

#[allow(clippy::too_many_arguments)]
async fn publish_all(
    target: &mut Target,
    url: &str,
    relative_folder: &str,
    documents: &[(String, String)],
    lake: &Lake,
    ledger: &Ledger,
    month: &str,
    report: &mut PublishReport,
) -> Result<(), PublishError> {
    match target {
        Target::Folder(root) => {
            let dir = root.join(relative_folder);
            std::fs::create_dir_all(&dir).map_err(|source| PublishError::Local {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Target::Ftp(ftp) => {
            let folder = relative_folder.to_string();
            ftp.run(move |c| c.make_dirs(&folder)).await?;
        }
    }
    let bar = crate::core::progress::bar("publish", documents.len() as u64, "files");
    for (key, name) in documents {
        bar.inc(1);
        let bytes = lake.get(key).await?;
        let size = bytes.len() as u64;
        let sha256 = hex(&Sha256::digest(&bytes));
        let remote_path = format!("{relative_folder}/{name}");
        let previous = ledger.find_published(url, month, name)?;
        let recorded = previous
            .as_ref()
            .is_some_and(|p| p.size == size && p.sha256 == sha256);
        let outcome = match target {
            Target::Folder(root) => publish_local(&root.join(relative_folder), name, &bytes)?,
            Target::Ftp(ftp) => {
                let path = remote_path.clone();
                let remote_size = ftp.run(move |c| c.size(&path)).await?;
                let same = match remote_size {
                    Some(n) if n == size && recorded => true,
                    // The ledger does not vouch for it: compare the bytes.
                    Some(n) if n == size => {
                        let path = remote_path.clone();
                        let remote = ftp.run(move |c| c.retrieve(&path)).await?;
                        hex(&Sha256::digest(&remote)) == sha256
                    }
                    _ => false,
                };
                if same {
                    Outcome::AlreadyThere
                } else {
                    let (folder, file, body) =
                        (relative_folder.to_string(), name.clone(), bytes.clone());
                    ftp.run(move |c| c.upload_atomic(&folder, &file, &body))
                        .await?;
                    if remote_size.is_some() {
                        Outcome::Replaced
                    } else {
                        Outcome::Uploaded
                    }
                }
            }
        };
        match outcome {
            Outcome::AlreadyThere => report.already_there += 1,
            Outcome::Uploaded => report.uploaded += 1,
            Outcome::Replaced => report.replaced += 1,
        }
        if !matches!(outcome, Outcome::AlreadyThere) {
            report.bytes_uploaded += size;
        }
        if !matches!(outcome, Outcome::AlreadyThere) || !recorded {
            ledger.record_published(&PublishedFile {
                target: url.to_string(),
                month: month.to_string(),
                name: name.clone(),
                size,
                sha256: sha256.clone(),
                remote_path,
            })?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Copies a document into a local folder, atomically (temp file, then
/// rename), unless the same bytes are there already.
fn publish_local(dir: &Path, name: &str, bytes: &[u8]) -> Result<Outcome, PublishError> {
    let path = dir.join(name);
    let local = |path: &Path, source| PublishError::Local {
        path: path.display().to_string(),
        source,
    };
    let existing = match std::fs::read(&path) {
        Ok(existing) => Some(existing),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(local(&path, e)),
    };
    if existing.as_deref() == Some(bytes) {
        return Ok(Outcome::AlreadyThere);
    }
    let temp = dir.join(format!(".{name}.part"));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temp);
        return Err(local(&path, e));
    }
    Ok(if existing.is_some() {
        Outcome::Replaced
    } else {
        Outcome::Uploaded
    })
}
