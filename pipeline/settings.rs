//! Resolved settings: the TOML configuration file merged with the
//! environment, with every relative path made absolute against the file's
//! folder (interface.md, "Configuration file").
//!
//! The CLI types live in `cli.rs`; this module only knows the file and the
//! environment. FTP credentials are never read from the file: they come from
//! `MVNOBILL_FTP_USER` / `MVNOBILL_FTP_PASSWORD` when the sync stage needs
//! them, so no secret ever sits in a `Settings` value that might be printed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::lake::{LakeUrl, S3Options};

/// A month above this many CDRs (`[engine] cdrs_per_pass`) is rated in
/// several passes, each over the lines whose number falls in one class
/// modulo the number of passes: a line's events are all in one pass, so its
/// allowances are consumed as in one (rating.md §4), and each pass sorts
/// what fits in memory without spilling (docs/PERFORMANCE.md).
pub const DEFAULT_CDRS_PER_PASS: u64 = 12_000_000;

/// Errors of the configuration layer: each names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Parse { path: String, message: String },
    #[error("configuration {path}: [{section}] {key}: {message}")]
    Key {
        path: String,
        section: &'static str,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    source: Option<SourceSection>,
    reference: ReferenceSection,
    lake: LakeSection,
    state: Option<StateSection>,
    engine: Option<EngineSection>,
    templates: Option<TemplatesSection>,
    render: Option<RenderSection>,
    mail: Option<crate::documents::mail::MailSection>,
    accounting: Option<AccountingSection>,
    billing: Option<BillingSection>,
    sepa: Option<SepaSection>,
    dunning: Option<DunningSection>,
    alerts: Option<AlertsSection>,
}

/// `[alerts]`: `thresholds` as written, checked in [`alert_thresholds`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsSection {
    thresholds: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DunningSection {
    levels: Option<Vec<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SepaSection {
    prenotification_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BillingSection {
    first_month: Option<String>,
    first_sequence: Option<i64>,
    draft_alert_percent: Option<rust_decimal::Decimal>,
    regularisation_months: Option<u32>,
    refund_threshold: Option<rust_decimal::Decimal>,
    return_fee: Option<rust_decimal::Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    url: String,
    /// FTP: a file holding the password, readable by its owner only.
    password_file: Option<String>,
    /// FTPS: PEM certificates to trust besides the public roots.
    ca_file: Option<String>,
    /// FTPS: accept any certificate (tests, self-signed servers of last resort).
    insecure_tls: Option<bool>,
    /// FTP: seconds to connect, and for each read or write (default 30).
    timeout_s: Option<u64>,
    /// FTP: retries of an operation after the first attempt (default 3).
    retries: Option<u32>,
    /// FTP: milliseconds before the first retry, doubled each time (default 1000).
    backoff_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceSection {
    dir: String,
    integrator: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LakeSection {
    url: String,
    /// S3: an S3-compatible endpoint (MinIO, Ceph, …); default AWS.
    endpoint: Option<String>,
    /// S3: the region (default `$AWS_DEFAULT_REGION`, else us-east-1).
    region: Option<String>,
    /// S3: `bucket.host` URLs instead of `host/bucket` (path style).
    virtual_hosted_style: Option<bool>,
    /// S3: allow an `http://` endpoint (a local test server).
    allow_http: Option<bool>,
    /// S3: the access key id; the secret comes from
    /// `AWS_SECRET_ACCESS_KEY`, never from this file.
    access_key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    memory_pool_mb: Option<usize>,
    cdrs_per_pass: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplatesSection {
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenderSection {
    chromium: Option<String>,
    tabs: Option<usize>,
    call_detail: Option<String>,
    call_detail_customers: Option<String>,
    single_process: Option<bool>,
    batch: Option<usize>,
}

/// Which invoices list each line's charged events in their annex
/// (`[render] call_detail`): rating.md §6 gives the detailed call list on
/// request, so by default only the customers of `call_detail_customers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallDetail {
    /// The customers listed (none when no list is given).
    OnRequest(std::collections::BTreeSet<String>),
    /// Every customer.
    All,
}

impl CallDetail {
    pub fn includes(&self, customer_id: &str) -> bool {
        match self {
            CallDetail::All => true,
            CallDetail::OnRequest(listed) => listed.contains(customer_id),
        }
    }
}

/// `call_detail_customers`: one customer id a line; blank lines and lines
/// starting with `#` are skipped, as is a `customer_id` header.
fn read_call_detail_customers(path: &Path) -> Result<std::collections::BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && *line != "customer_id")
        .map(str::to_string)
        .collect())
}

/// Where upstream files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local folder laid out like the MVNE's FTP tree.
    Folder(PathBuf),
    /// The MVNE's FTP server (`ftp://` or `ftps://`, explicit TLS).
    Ftp(crate::mvne::ftp::FtpSettings),
}

/// Everything a stage needs, resolved and absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub source: Option<Source>,
    pub reference_dir: PathBuf,
    pub integrator_path: PathBuf,
    /// The lake's URL, always with a trailing `/` (`file:///abs/lake/`).
    pub lake_url: LakeUrl,
    /// How to reach an `s3://` lake (`[lake]` keys beside `url`).
    pub lake_s3: S3Options,
    /// Local folder for the ledger and the secrets store (never in the lake
    /// datasets). Defaults to `<lake>/_state` for a local lake.
    pub state_dir: PathBuf,
    /// Memory the query engine's operators may hold before sorts and
    /// aggregations spill to disk (`[engine] memory_pool_mb`, default 1280).
    pub memory_pool_bytes: usize,
    /// Above this many CDRs, `rate` rates a month in several passes, each
    /// over a share of the lines (`[engine] cdrs_per_pass`, default 12
    /// million).
    pub cdrs_per_pass: u64,
    /// The integrator's own invoice templates (`[templates] dir`); any file
    /// not there comes from the defaults embedded in the binary.
    pub templates_dir: Option<PathBuf>,
    /// The Chromium binary for PDFs (`[render] chromium`), else
    /// `$MVNOBILL_CHROMIUM`, else `chromium` on the PATH.
    pub chromium: Option<PathBuf>,
    /// Chrome tabs printing at once (`[render] tabs`, default 4).
    pub render_tabs: usize,
    /// Whose annexes list the charged events (`[render] call_detail`).
    pub call_detail: CallDetail,
    /// Chromium in one process (`[render] single_process`, default false).
    pub render_single_process: bool,
    /// Invoices printed as one Chromium document, then split (`[render]
    /// batch`, default [`crate::documents::pdfbatch::DEFAULT_BATCH`]; 1: one at a time).
    pub render_batch: usize,
    /// The SMTP relay for "invoice available" mails (`[mail]`), when set.
    pub mail: Option<crate::documents::mail::MailSettings>,
    /// Journal, accounts and e-reporting period of the finance outputs
    /// (`[accounting]`, French PCG defaults; docs/ACCOUNTING.md).
    pub accounting: AccountingSettings,
    /// How months follow each other (`[billing]`, account.md §1–4).
    pub billing: BillingSettings,
    /// `[sepa] prenotification_days` (account.md §8, default 14): a direct
    /// debit is collected no earlier than this many days after the issue
    /// (the invoice is the debtor's pre-notification).
    pub sepa_prenotification_days: u32,
    /// `[dunning] levels`: the days overdue at which each reminder goes,
    /// ascending, the last one the formal notice (default [7, 15, 30]).
    pub dunning_levels: Vec<u32>,
    /// `[alerts] thresholds`: the percentages of an allowance pool at which
    /// the customer is mailed (`stages::alerts`), ascending; empty: alerts
    /// off (the default).
    pub alert_thresholds: Vec<u32>,
}

/// The `[billing]` section: where the sequence of months starts, when a
/// draft flags a customer, how far back a regularisation reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingSettings {
    /// The first month this installation bills; None: the first billed.
    pub first_month: Option<crate::core::month::Month>,
    /// The first invoice number of `first_month`'s issue year (continuing
    /// an earlier system's numbering); 1 by default.
    pub first_sequence: i64,
    /// A draft flags a customer whose total moved by more than this
    /// percentage from the month before.
    pub draft_alert_percent: rust_decimal::Decimal,
    /// How many issued months before the one billed are billed again.
    pub regularisation_months: u32,
    /// A credit above this amount (TTC) is refunded by transfer when the
    /// month's SEPA file is written (account.md §7); None: credits are
    /// carried to the next invoice.
    pub refund_threshold: Option<rust_decimal::Decimal>,
    /// The fee (HT) charged on the next invoice for each direct debit the
    /// bank returns (account.md §7); 0 by default: none.
    pub return_fee: rust_decimal::Decimal,
}

impl Default for BillingSettings {
    fn default() -> Self {
        BillingSettings {
            first_month: None,
            first_sequence: 1,
            draft_alert_percent: rust_decimal::Decimal::from(30),
            regularisation_months: 12,
            refund_threshold: None,
            return_fee: rust_decimal::Decimal::ZERO,
        }
    }
}

impl BillingSettings {
    fn from_section(section: BillingSection) -> Result<BillingSettings, (&'static str, String)> {
        let mut settings = BillingSettings::default();
        if let Some(month) = section.first_month {
            settings.first_month = Some(month.parse().map_err(|_| {
                (
                    "first_month",
                    format!("'{month}': give a month as \"YYYY-MM\""),
                )
            })?);
        }
        if let Some(first) = section.first_sequence {
            if !(1..=999_999).contains(&first) {
                return Err((
                    "first_sequence",
                    format!("{first}: give a number from 1 to 999999"),
                ));
            }
            settings.first_sequence = first;
        }
        if let Some(percent) = section.draft_alert_percent {
            if percent < rust_decimal::Decimal::ZERO {
                return Err((
                    "draft_alert_percent",
                    format!("{percent}: give a percentage of 0 or more"),
                ));
            }
            settings.draft_alert_percent = percent;
        }
        if let Some(months) = section.regularisation_months {
            if months > 120 {
                return Err((
                    "regularisation_months",
                    format!("{months}: give 0 to 120 months"),
                ));
            }
            settings.regularisation_months = months;
        }
        let money = |key: &'static str, amount: rust_decimal::Decimal| {
            if amount < rust_decimal::Decimal::ZERO || amount.round_dp(2) != amount {
                Err((
                    key,
                    format!(
                        "{amount}: give an amount of 0 or more, in euros with at most 2 decimals"
                    ),
                ))
            } else {
                Ok(amount)
            }
        };
        if let Some(threshold) = section.refund_threshold {
            settings.refund_threshold = Some(money("refund_threshold", threshold)?);
        }
        if let Some(fee) = section.return_fee {
            settings.return_fee = money("return_fee", fee)?;
        }
        Ok(settings)
    }
}

/// The `[accounting]` section of mvnobill.toml, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingSection {
    journal_code: Option<String>,
    journal_label: Option<String>,
    customer_account: Option<String>,
    services_account: Option<String>,
    equipment_account: Option<String>,
    vat_account: Option<String>,
    /// The VAT collected account of each rate that has its own, by rate in
    /// percent (`"8.5" = "445713"`).
    vat_accounts: Option<std::collections::BTreeMap<String, String>>,
    e_reporting_period: Option<String>,
}

/// The period B2C e-reporting totals are given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportingPeriod {
    /// Ten days: 1–10, 11–20, 21–end of month (VAT "réel normal mensuel").
    Decade,
    /// The calendar month.
    Month,
}

impl ReportingPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportingPeriod::Decade => "DECADE",
            ReportingPeriod::Month => "MONTH",
        }
    }
}

/// The journal and accounts of the sales journal, and the e-reporting
/// period. Defaults follow the French chart of accounts (PCG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingSettings {
    pub journal_code: String,
    pub journal_label: String,
    /// Debited with each invoice's TTC (411 Clients).
    pub customer_account: String,
    /// Credited with subscriptions, options and usage HT (706 Prestations de services).
    pub services_account: String,
    /// Credited with handsets HT (707 Ventes de marchandises).
    pub equipment_account: String,
    /// Credited with the VAT (44571 TVA collectée) of a rate that has no
    /// account of its own in `vat_accounts`: 20 % by default.
    pub vat_account: String,
    /// The VAT collected account of other rates (rating.md §6), by rate in
    /// percent with its 2 decimals: 8.5 % (Guadeloupe, Martinique, La
    /// Réunion) in 445713 by default, a sub-account of 44571.
    pub vat_accounts: std::collections::BTreeMap<rust_decimal::Decimal, String>,
    pub e_reporting_period: ReportingPeriod,
}

impl Default for AccountingSettings {
    fn default() -> Self {
        AccountingSettings {
            journal_code: "VE".into(),
            journal_label: "Ventes".into(),
            customer_account: "411000".into(),
            services_account: "706000".into(),
            equipment_account: "707000".into(),
            vat_account: "445710".into(),
            vat_accounts: [(rust_decimal::Decimal::new(850, 2), "445713".to_string())].into(),
            e_reporting_period: ReportingPeriod::Decade,
        }
    }
}

impl AccountingSettings {
    /// Resolves the section; an error names the key and says what is
    /// accepted.
    pub fn from_section(
        section: AccountingSection,
    ) -> Result<AccountingSettings, (&'static str, String)> {
        let mut settings = AccountingSettings::default();
        // Codes: letters and digits only, as accounting software imports them.
        let code = |key: &'static str, value: Option<String>, target: &mut String, max: usize| {
            if let Some(value) = value {
                if value.is_empty()
                    || value.chars().count() > max
                    || !value.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err((key, format!("'{value}': give 1 to {max} letters or digits")));
                }
                *target = value;
            }
            Ok(())
        };
        code(
            "journal_code",
            section.journal_code,
            &mut settings.journal_code,
            10,
        )?;
        code(
            "customer_account",
            section.customer_account,
            &mut settings.customer_account,
            20,
        )?;
        code(
            "services_account",
            section.services_account,
            &mut settings.services_account,
            20,
        )?;
        code(
            "equipment_account",
            section.equipment_account,
            &mut settings.equipment_account,
            20,
        )?;
        code(
            "vat_account",
            section.vat_account,
            &mut settings.vat_account,
            20,
        )?;
        for (rate, account) in section.vat_accounts.unwrap_or_default() {
            let mut percent = rate
                .trim()
                .parse::<rust_decimal::Decimal>()
                .ok()
                .filter(|r| {
                    !r.is_sign_negative()
                        && *r < rust_decimal::Decimal::ONE_HUNDRED
                        && r.scale() <= 2
                })
                .ok_or((
                    "vat_accounts",
                    format!("'{rate}': give each rate in percent, like \"8.5\" = \"445713\""),
                ))?;
            percent.rescale(2);
            let mut target = String::new();
            code("vat_accounts", Some(account), &mut target, 20)?;
            settings.vat_accounts.insert(percent, target);
        }
        if let Some(label) = section.journal_label {
            if label.trim().is_empty()
                || label.chars().count() > 100
                || label.contains(['\r', '\n'])
            {
                return Err((
                    "journal_label",
                    "give a label of 1 to 100 characters on one line".into(),
                ));
            }
            settings.journal_label = label;
        }
        if let Some(period) = section.e_reporting_period {
            settings.e_reporting_period = match period.as_str() {
                "decade" => ReportingPeriod::Decade,
                "month" => ReportingPeriod::Month,
                other => {
                    return Err((
                        "e_reporting_period",
                        format!("'{other}': give \"decade\" or \"month\""),
                    ))
                }
            };
        }
        Ok(settings)
    }
}

impl Settings {
    /// Reads the configuration file and resolves it.
    pub fn load(config_path: &Path) -> Result<Settings, SettingsError> {
        let path_text = config_path.display().to_string();
        let text = std::fs::read_to_string(config_path).map_err(|source| SettingsError::Read {
            path: path_text.clone(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path_text.clone(),
            message: e.message().to_string(),
        })?;
        let config_path =
            std::path::absolute(config_path).map_err(|source| SettingsError::Read {
                path: path_text.clone(),
                source,
            })?;
        let base = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let resolve = |p: &str| -> PathBuf {
            let p = p.strip_prefix("file://").unwrap_or(p);
            let path = Path::new(p);
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }
        };
        let source = match file.source {
            None => None,
            Some(s) => Some(source_settings(s, &path_text, &resolve)?),
        };
        let lake_url = if file.lake.url.starts_with("file://") || !file.lake.url.contains("://") {
            let dir = resolve(&file.lake.url);
            LakeUrl::new(&format!("file://{}", dir.display()))
        } else if let Some(rest) = file.lake.url.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or("");
            if bucket.is_empty() || rest.contains('@') {
                return Err(SettingsError::Key {
                    path: path_text,
                    section: "lake",
                    key: "url",
                    message: format!(
                        "'{}' is not an S3 URL: use s3://bucket/prefix (credentials never in the URL)",
                        redact_url(&file.lake.url)
                    ),
                });
            }
            LakeUrl::new(&file.lake.url)
        } else {
            return Err(SettingsError::Key {
                path: path_text,
                section: "lake",
                key: "url",
                message: format!(
                    "'{}' is not supported: use file:// (a local folder) or s3://bucket/prefix",
                    redact_url(&file.lake.url)
                ),
            });
        };
        let lake_s3 = S3Options {
            endpoint: file.lake.endpoint.clone(),
            region: file.lake.region.clone(),
            virtual_hosted_style: file.lake.virtual_hosted_style.unwrap_or(false),
            allow_http: file.lake.allow_http.unwrap_or(false),
            access_key_id: file.lake.access_key_id.clone(),
        };
        let state_dir = match file.state {
            Some(s) => resolve(&s.dir),
            None => lake_url
                .local_path()
                .map(|p| p.join("_state"))
                .unwrap_or_else(|| base.join(".mvnobill-state")),
        };
        let memory_pool_mb = file
            .engine
            .as_ref()
            .and_then(|e| e.memory_pool_mb)
            .unwrap_or(crate::engine::DEFAULT_MEMORY_POOL_MB);
        let cdrs_per_pass = file
            .engine
            .as_ref()
            .and_then(|e| e.cdrs_per_pass)
            .unwrap_or(DEFAULT_CDRS_PER_PASS);
        if cdrs_per_pass == 0 {
            return Err(SettingsError::Key {
                path: path_text,
                section: "engine",
                key: "cdrs_per_pass",
                message: "0 CDRs a pass: give at least 1".to_string(),
            });
        }
        if memory_pool_mb < 64 {
            return Err(SettingsError::Key {
                path: path_text,
                section: "engine",
                key: "memory_pool_mb",
                message: format!("{memory_pool_mb} MB is too little: give at least 64"),
            });
        }
        let render_key = |key: &'static str, message: String| SettingsError::Key {
            path: path_text.clone(),
            section: "render",
            key,
            message,
        };
        let render_tabs = file.render.as_ref().and_then(|r| r.tabs).unwrap_or(4);
        if !(1..=16).contains(&render_tabs) {
            return Err(render_key(
                "tabs",
                format!("{render_tabs} tabs: give 1 to 16"),
            ));
        }
        let call_detail = match file.render.as_ref().and_then(|r| r.call_detail.as_deref()) {
            None | Some("on_request") => CallDetail::OnRequest(
                match file
                    .render
                    .as_ref()
                    .and_then(|r| r.call_detail_customers.as_deref())
                {
                    Some(list) => read_call_detail_customers(&resolve(list))
                        .map_err(|message| render_key("call_detail_customers", message))?,
                    None => Default::default(),
                },
            ),
            Some("all") => CallDetail::All,
            Some(other) => {
                return Err(render_key(
                    "call_detail",
                    format!("'{other}': give on_request or all"),
                ))
            }
        };
        let render_single_process = file
            .render
            .as_ref()
            .and_then(|r| r.single_process)
            .unwrap_or(false);
        let render_batch = file
            .render
            .as_ref()
            .and_then(|r| r.batch)
            .unwrap_or(crate::documents::pdfbatch::DEFAULT_BATCH);
        if !(1..=crate::documents::pdfbatch::MAX_BATCH).contains(&render_batch) {
            return Err(render_key(
                "batch",
                format!(
                    "{render_batch} invoices a document: give 1 to {}",
                    crate::documents::pdfbatch::MAX_BATCH
                ),
            ));
        }
        let mail = match &file.mail {
            None => None,
            Some(section) => Some(
                crate::documents::mail::MailSettings::from_section(section, &base).map_err(
                    |e| SettingsError::Parse {
                        path: path_text.clone(),
                        message: e.to_string(),
                    },
                )?,
            ),
        };
        let accounting = AccountingSettings::from_section(file.accounting.unwrap_or_default())
            .map_err(|(key, message)| SettingsError::Key {
                path: path_text.clone(),
                section: "accounting",
                key,
                message,
            })?;
        let billing = BillingSettings::from_section(file.billing.unwrap_or_default()).map_err(
            |(key, message)| SettingsError::Key {
                path: path_text.clone(),
                section: "billing",
                key,
                message,
            },
        )?;
        let sepa_prenotification_days = match file.sepa.and_then(|s| s.prenotification_days) {
            None => 14,
            Some(days) if (1..=60).contains(&days) => days,
            Some(days) => {
                return Err(SettingsError::Key {
                    path: path_text.clone(),
                    section: "sepa",
                    key: "prenotification_days",
                    message: format!("{days}: give 1 to 60 days"),
                })
            }
        };
        let dunning_levels = file
            .dunning
            .and_then(|d| d.levels)
            .unwrap_or_else(|| vec![7, 15, 30]);
        if dunning_levels.is_empty()
            || dunning_levels.windows(2).any(|w| w[0] >= w[1])
            || dunning_levels[0] == 0
        {
            return Err(SettingsError::Key {
                path: path_text.clone(),
                section: "dunning",
                key: "levels",
                message: format!(
                    "{dunning_levels:?}: give days overdue from 1 upwards, ascending, as [7, 15, 30]"
                ),
            });
        }
        let alert_thresholds =
            alert_thresholds(file.alerts.and_then(|a| a.thresholds)).map_err(|message| {
                SettingsError::Key {
                    path: path_text.clone(),
                    section: "alerts",
                    key: "thresholds",
                    message,
                }
            })?;
        if !alert_thresholds.is_empty() && mail.is_none() {
            return Err(SettingsError::Key {
                path: path_text.clone(),
                section: "alerts",
                key: "thresholds",
                message:
                    "the alerts are mailed: add a [mail] section (docs/MAIL.md), or remove [alerts]"
                        .to_string(),
            });
        }
        Ok(Settings {
            alert_thresholds,
            accounting,
            billing,
            sepa_prenotification_days,
            dunning_levels,
            memory_pool_bytes: memory_pool_mb << 20,
            cdrs_per_pass,
            templates_dir: file.templates.and_then(|t| t.dir).map(|dir| resolve(&dir)),
            chromium: file
                .render
                .and_then(|r| r.chromium)
                .map(|path| resolve(&path)),
            render_tabs,
            render_single_process,
            render_batch,
            call_detail,
            mail,
            config_path: config_path.clone(),
            source,
            reference_dir: resolve(&file.reference.dir),
            integrator_path: resolve(&file.reference.integrator),
            lake_url,
            lake_s3,
            state_dir,
        })
    }
}

/// `[alerts] thresholds`: whole percentages from 1 to 100, ascending, each
/// once (`[80, 100]`); absent: none, alerts off.
fn alert_thresholds(value: Option<toml::Value>) -> Result<Vec<u32>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let wrong = || {
        format!(
            "{}: give percentages of a pool from 1 to 100, ascending, as [80, 100]",
            value.to_string().replace('\n', " ")
        )
    };
    let items = value.as_array().ok_or_else(wrong)?;
    let mut thresholds = Vec::with_capacity(items.len());
    for item in items {
        match item.as_integer() {
            Some(percent @ 1..=100) if thresholds.last().is_none_or(|&l| l < percent as u32) => {
                thresholds.push(percent as u32)
            }
            _ => return Err(wrong()),
        }
    }
    if thresholds.is_empty() {
        return Err(wrong());
    }
    Ok(thresholds)
}

/// The `[source]` section: a local folder or the MVNE's FTP server.
fn source_settings(
    s: SourceSection,
    path_text: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Source, SettingsError> {
    let error = |key: &'static str, message: String| SettingsError::Key {
        path: path_text.to_string(),
        section: "source",
        key,
        message,
    };
    if s.url.starts_with("file://") || !s.url.contains("://") {
        return Ok(Source::Folder(resolve(&s.url)));
    }
    if !(s.url.starts_with("ftp://") || s.url.starts_with("ftps://")) {
        return Err(error(
            "url",
            format!(
                "'{}' is not supported: use file:// (a local folder laid out like the FTP), ftp:// or ftps://",
                redact_url(&s.url)
            ),
        ));
    }
    let mut ftp = crate::mvne::ftp::FtpSettings::from_url(&s.url)
        .map_err(|message| error("url", format!("'{}': {message}", redact_url(&s.url))))?;
    ftp.password_file = s.password_file.as_deref().map(resolve);
    ftp.ca_file = s.ca_file.as_deref().map(resolve);
    ftp.insecure_tls = s.insecure_tls.unwrap_or(false);
    if let Some(timeout) = s.timeout_s {
        if !(1..=3600).contains(&timeout) {
            return Err(error("timeout_s", format!("{timeout} s: give 1 to 3600")));
        }
        ftp.timeout = std::time::Duration::from_secs(timeout);
    }
    if let Some(retries) = s.retries {
        if retries > 20 {
            return Err(error("retries", format!("{retries}: give 0 to 20")));
        }
        ftp.retries = retries;
    }
    if let Some(backoff) = s.backoff_ms {
        if backoff > 600_000 {
            return Err(error(
                "backoff_ms",
                format!("{backoff} ms: give at most 600000"),
            ));
        }
        ftp.backoff = std::time::Duration::from_millis(backoff);
    }
    Ok(Source::Ftp(ftp))
}

/// A URL with any `user:password@` part removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mvnobill.toml");
        std::fs::write(
            &cfg,
            "[source]\nurl = \"file://ftp\"\n[reference]\ndir = \"ref\"\nintegrator = \"ref/i.toml\"\n[lake]\nurl = \"file:///tmp/lake\"\n",
        )
        .unwrap();
        let s = Settings::load(&cfg).unwrap();
        assert_eq!(s.source, Some(Source::Folder(dir.path().join("ftp"))));
        assert_eq!(s.reference_dir, dir.path().join("ref"));
        assert_eq!(s.lake_url.as_str(), "file:///tmp/lake/");
        assert_eq!(s.state_dir, PathBuf::from("/tmp/lake/_state"));
    }

    #[test]
    fn the_call_list_is_on_request_unless_all() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mvnobill.toml");
        let base = "[reference]\ndir = \"ref\"\nintegrator = \"ref/i.toml\"\n[lake]\nurl = \"file:///tmp/lake\"\n";
        let load = |render: &str| {
            std::fs::write(&cfg, format!("{base}{render}")).unwrap();
            Settings::load(&cfg)
        };
        assert_eq!(
            load("").unwrap().call_detail,
            CallDetail::OnRequest(Default::default())
        );
        std::fs::write(
            dir.path().join("asked.txt"),
            "customer_id\n# asked in March\nC00007\n\n",
        )
        .unwrap();
        let listed = load("[render]\ncall_detail_customers = \"asked.txt\"\n").unwrap();
        assert!(listed.call_detail.includes("C00007"));
        assert!(!listed.call_detail.includes("C00008"));
        assert!(!listed.call_detail.includes("customer_id"));
        let all = load("[render]\ncall_detail = \"all\"\n").unwrap();
        assert!(all.call_detail.includes("C00008"));
        let wrong = load("[render]\ncall_detail = \"some\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("call_detail") && wrong.contains("on_request or all"),
            "{wrong}"
        );
        let missing = load("[render]\ncall_detail_customers = \"none.txt\"\n")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("none.txt"), "{missing}");
    }

    #[test]
    fn invoices_print_25_to_a_document_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mvnobill.toml");
        let base = "[reference]\ndir = \"ref\"\nintegrator = \"ref/i.toml\"\n[lake]\nurl = \"file:///tmp/lake\"\n";
        let load = |render: &str| {
            std::fs::write(&cfg, format!("{base}{render}")).unwrap();
            Settings::load(&cfg)
        };
        assert_eq!(load("").unwrap().render_batch, 25);
        assert_eq!(load("[render]\nbatch = 1\n").unwrap().render_batch, 1);
        let wrong = load("[render]\nbatch = 0\n").unwrap_err().to_string();
        assert!(
            wrong.contains("batch") && wrong.contains("give 1 to 50"),
            "{wrong}"
        );
        assert!(load("[render]\nbatch = 51\n").is_err());
    }

    #[test]
    fn alerts_are_off_unless_thresholds_are_given_and_need_mail() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mvnobill.toml");
        let base = "[reference]\ndir = \"ref\"\nintegrator = \"ref/i.toml\"\n[lake]\nurl = \"file:///tmp/lake\"\n";
        let mail = "[mail]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n";
        let load = |extra: &str| {
            std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
            Settings::load(&cfg)
        };
        assert!(load("").unwrap().alert_thresholds.is_empty());
        assert!(load("[alerts]\n").unwrap().alert_thresholds.is_empty());
        assert_eq!(
            load(&format!("{mail}[alerts]\nthresholds = [80, 100]\n"))
                .unwrap()
                .alert_thresholds,
            vec![80, 100]
        );
        assert_eq!(
            load(&format!("{mail}[alerts]\nthresholds = [1]\n"))
                .unwrap()
                .alert_thresholds,
            vec![1]
        );
        for wrong in [
            "[]",
            "[0, 80]",
            "[80, 101]",
            "[100, 80]",
            "[80, 80]",
            "[80.5]",
            "[\"80\"]",
            "80",
            "[-5]",
        ] {
            let error = load(&format!("{mail}[alerts]\nthresholds = {wrong}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("[alerts] thresholds")
                    && error.contains("from 1 to 100, ascending")
                    && !error.contains('\n'),
                "{wrong}: {error}"
            );
        }
        let error = load("[alerts]\nthresholds = [80, 100]\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[alerts] thresholds") && error.contains("add a [mail] section"),
            "{error}"
        );
        let error = load("[alerts]\nlevels = [80]\n").unwrap_err().to_string();
        assert!(error.contains("levels") && !error.contains('\n'), "{error}");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("ftp://bob:secret@host:21/"), "ftp://host:21/");
        assert_eq!(redact_url("file:///x"), "file:///x");
        // Also where no URL parser would follow: a '/' in the password.
        assert_eq!(redact_url("ftp://bob:s3cr/et@host/"), "ftp://host/");
        assert_eq!(redact_url("sftp://bob:x@host/in"), "sftp://host/in");
    }

    #[test]
    fn accounting_defaults_and_bad_keys() {
        let defaults = AccountingSettings::from_section(AccountingSection::default()).unwrap();
        assert_eq!(defaults, AccountingSettings::default());
        let section: AccountingSection =
            toml::from_str("customer_account = \"41100000\"\ne_reporting_period = \"month\"")
                .unwrap();
        let settings = AccountingSettings::from_section(section).unwrap();
        assert_eq!(settings.customer_account, "41100000");
        assert_eq!(settings.e_reporting_period, ReportingPeriod::Month);
        let bad: AccountingSection = toml::from_str("vat_account = \"=4457\"").unwrap();
        assert_eq!(
            AccountingSettings::from_section(bad).unwrap_err().0,
            "vat_account"
        );
        let bad: AccountingSection = toml::from_str("e_reporting_period = \"week\"").unwrap();
        assert_eq!(
            AccountingSettings::from_section(bad).unwrap_err().0,
            "e_reporting_period"
        );
    }
}
