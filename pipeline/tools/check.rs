//! `check`: the integrator's set-up dossier (the MVNE's onboarding "step
//! 3"), checked item by item before the platform is configured and before
//! any month is billed: the sales tables of the reference folder, the logo
//! and footer banner, the identity and complementary details of
//! `integrator.toml`, and the tables the MVNE says it has configured
//! (`Tables tarifaires/`, once synced) against ours. docs/DOSSIER.md.
//!
//! Each item is `ok`, `warning` (worth a look, invoices still right) or
//! `blocking` (an invoice would be wrong or the pipeline would refuse to run);
//! each finding names the file, line and column at fault. The tables are read
//! by `reference.rs` and `integrator.toml` by `integrator.rs`, the same rules
//! as the stages, but every problem is reported instead of the first: a
//! dossier that passes here loads in `rate` and `bill`. The rules only `check`
//! has (completeness of the sales tables, the grids' holes, the identity the
//! banner carries, SIRET, VAT number and e-mail addresses) live here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::core::csvfile::CsvFileError;
use crate::core::identifiers::{email_problem, siret_problem, vat_number_problem};
use crate::core::lake::{Lake, LakeError};
use crate::core::ledger::{BilledCharge, Ledger, LedgerError};
use crate::documents::images;
use crate::reference::integrator::{self, Integrator, IntegratorError};
use crate::reference::{Reference, ReferenceError, Table};
use crate::settings::Settings;

use crate::mvne::raw::PLATFORM_FOLDER;

/// The tariff tables the MVNE configures, with the columns that identify a
/// row (a version of it where the table has `valid_from`).
const TARIFF_TABLES: &[(&str, &[&str])] = &[
    ("plans", &["plan_code"]),
    (
        "plan_fees",
        &[
            "plan_code",
            "commitment_months",
            "with_handset",
            "valid_from",
        ],
    ),
    ("options", &["option_code", "valid_from"]),
    ("rate_grids", &["grid", "zone", "event_type", "valid_from"]),
    ("destinations", &["prefix"]),
    ("roaming_zones", &["mcc"]),
    (
        "handsets",
        &["model", "plan_code", "commitment_months", "valid_from"],
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// How an item, or one finding of it, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong; a finding at this level is a note.
    Ok,
    /// Worth a look; the invoices are still right.
    Warning,
    /// An invoice would be wrong, or a stage would refuse to run.
    Blocking,
}

/// One thing found, and where.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub status: Status,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl Finding {
    /// `file line L, column C: message`, the file shown relative to one of
    /// `folders` when it is inside (the report's header names them); a
    /// TOML file's column is a key.
    fn show(&self, folders: &[&str]) -> String {
        let mut text = String::new();
        if let Some(file) = &self.file {
            let shown = folders
                .iter()
                .find_map(|folder| file.strip_prefix(&format!("{folder}/")))
                .unwrap_or(file);
            text.push_str(shown);
            if let Some(line) = self.line {
                text.push_str(&format!(" line {line}"));
            }
            if let Some(column) = &self.column {
                let word = if file.ends_with(".toml") {
                    "key"
                } else {
                    "column"
                };
                text.push_str(&format!(", {word} {column}"));
            }
            text.push_str(": ");
        }
        text.push_str(&self.message);
        text
    }
}

/// One item of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub reference_dir: String,
    pub integrator: String,
    pub items: Vec<Item>,
    pub ok: usize,
    pub warnings: usize,
    pub blocking: usize,
}

impl CheckReport {
    /// False when an item blocks invoicing: the binary exits 1.
    pub fn passed(&self) -> bool {
        self.blocking == 0
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let integrator_folder = Path::new(&self.integrator)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let folders = [self.reference_dir.as_str(), integrator_folder.as_str()];
        writeln!(
            f,
            "check: reference tables in {}, {}",
            self.reference_dir, self.integrator
        )?;
        for item in &self.items {
            let mark = match item.status {
                Status::Ok => "[ok]      ",
                Status::Warning => "[warning] ",
                Status::Blocking => "[BLOCKING]",
            };
            writeln!(f, "{mark} {}: {}", item.id, item.title)?;
            for finding in &item.findings {
                let mark = match finding.status {
                    Status::Ok => "·",
                    Status::Warning => "!",
                    Status::Blocking => "✗",
                };
                writeln!(f, "    {mark} {}", finding.show(&folders))?;
            }
        }
        write!(
            f,
            "check: {} items, {} ok, {} with warnings, {} blocking",
            self.items.len(),
            self.ok,
            self.warnings,
            self.blocking
        )
    }
}

/// Findings of one item as they are gathered.
struct Builder {
    id: &'static str,
    title: &'static str,
    findings: Vec<Finding>,
}

impl Builder {
    fn new(id: &'static str, title: &'static str) -> Builder {
        Builder {
            id,
            title,
            findings: Vec::new(),
        }
    }
    fn push(&mut self, status: Status, at: At, message: impl Into<String>) {
        self.findings.push(Finding {
            status,
            file: at.file,
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }
    fn blocking(&mut self, at: At, message: impl Into<String>) {
        self.push(Status::Blocking, at, message)
    }
    fn warning(&mut self, at: At, message: impl Into<String>) {
        self.push(Status::Warning, at, message)
    }
    fn note(&mut self, at: At, message: impl Into<String>) {
        self.push(Status::Ok, at, message)
    }
    fn reference_problem(&mut self, problem: &ReferenceError) {
        let (at, message) = locate(problem);
        self.blocking(at, message);
    }
    fn build(self) -> Item {
        Item {
            id: self.id,
            title: self.title,
            status: self
                .findings
                .iter()
                .map(|f| f.status)
                .max()
                .unwrap_or(Status::Ok),
            findings: self.findings,
        }
    }
}

/// Where a finding is: file, line, column (each when known).
#[derive(Default)]
struct At {
    file: Option<String>,
    line: Option<u64>,
    column: Option<String>,
}

impl At {
    fn file(file: &str) -> At {
        At {
            file: Some(file.to_string()),
            ..At::default()
        }
    }
    fn row(table: &Table, row: usize, column: &str) -> At {
        At {
            file: Some(table.file().to_string()),
            line: Some(table.line(row)),
            column: Some(column.to_string()),
        }
    }
    /// A key of a TOML file, at its line when it is set.
    fn key(path: &Path, text: &str, key: &str) -> At {
        At {
            file: Some(path.display().to_string()),
            line: integrator::key_line(text, key),
            column: Some(key.to_string()),
        }
    }
}

/// A reference problem split into where and what.
fn locate(problem: &ReferenceError) -> (At, String) {
    let at = |file: &str, line: Option<u64>, column: Option<&str>| At {
        file: Some(file.to_string()),
        line,
        column: column.map(str::to_string),
    };
    match problem {
        ReferenceError::Value {
            file,
            line,
            column,
            message,
        } => (at(file, Some(*line), Some(column)), message.clone()),
        ReferenceError::Read { path, source } => {
            (at(path, None, None), format!("cannot read: {source}"))
        }
        ReferenceError::File(CsvFileError::MissingColumn { file, column }) => (
            at(file, Some(1), Some(column)),
            "required column missing from the header".into(),
        ),
        ReferenceError::File(CsvFileError::DuplicateColumn { file, column }) => (
            at(file, Some(1), Some(column)),
            "the column appears twice in the header".into(),
        ),
        ReferenceError::File(CsvFileError::Syntax {
            file,
            line,
            message,
        }) => (at(file, Some(*line), None), message.clone()),
        ReferenceError::File(CsvFileError::Empty { file }) => (
            at(file, None, None),
            "the file is empty (no header line)".into(),
        ),
        ReferenceError::File(CsvFileError::HeaderEncoding { file }) => (
            at(file, Some(1), None),
            "the header is not valid UTF-8".into(),
        ),
    }
}

/// The reference file a problem is about (`plan_fees.csv`), to route it to
/// its item.
fn problem_file(problem: &ReferenceError) -> String {
    let (at, _) = locate(problem);
    let file = at.file.unwrap_or_default();
    Path::new(&file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(file)
}

/// Runs every item. `lake` is where `sync` put the MVNE's copy of the
/// tables.
pub async fn check(settings: &Settings, lake: &Lake) -> Result<CheckReport, CheckError> {
    let (reference, problems) = Reference::read(&settings.reference_dir);
    let routed = |files: &[&str]| -> Vec<&ReferenceError> {
        problems
            .iter()
            .filter(|p| files.contains(&problem_file(p).as_str()))
            .collect()
    };
    // A file that does not read at all: its item says so, and the rules
    // that need its rows wait for it (they would only add noise).
    let unreadable = problems
        .iter()
        .filter(|p| matches!(p, ReferenceError::Read { .. } | ReferenceError::File(_)))
        .map(problem_file)
        .collect();
    let tables = Tables {
        reference: &reference,
        unreadable,
    };
    let mut items = vec![
        plans_item(&tables, &routed(&["plans.csv", "plan_fees.csv"])),
        options_item(&tables, &routed(&["options.csv"])),
        grids_item(&tables, &routed(&["rate_grids.csv"])),
        destinations_item(&tables, &routed(&["destinations.csv", "roaming_zones.csv"])),
        handsets_item(&tables, &routed(&["handsets.csv", "handset_sales.csv"])),
        subscriptions_item(&tables, &routed(&["subscriptions.csv"])),
        customers_item(&tables, &routed(&["customers.csv"])),
        mandates_item(
            &tables,
            Ledger::mandate_collections_in(&settings.state_dir),
            chrono::Local::now().date_naive(),
        ),
        charges_item(
            &tables,
            &routed(&["charges.csv"]),
            &settings.reference_dir,
            Ledger::billed_charges_in(&settings.state_dir),
        ),
    ];
    items.extend(integrator_items(&settings.integrator_path));
    items.push(drift_item(&tables, lake).await?);

    let count = |status| items.iter().filter(|i| i.status == status).count();
    Ok(CheckReport {
        reference_dir: settings.reference_dir.display().to_string(),
        integrator: settings.integrator_path.display().to_string(),
        ok: count(Status::Ok),
        warnings: count(Status::Warning),
        blocking: count(Status::Blocking),
        items,
    })
}

/// The reference tables by name (all of formats.md's are there, empty when
/// their file does not read).
struct Tables<'a> {
    reference: &'a Reference,
    /// File names (`plans.csv`) that did not read.
    unreadable: BTreeSet<String>,
}

impl<'a> Tables<'a> {
    fn get(&self, name: &str) -> &'a Table {
        self.reference.get(name).expect("a table of formats.md")
    }
    /// Whether one of these tables did not read.
    fn unreadable(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|name| self.unreadable.contains(&format!("{name}.csv")))
    }
}

fn with_problems(id: &'static str, title: &'static str, problems: &[&ReferenceError]) -> Builder {
    let mut item = Builder::new(id, title);
    for problem in problems {
        item.reference_problem(problem);
    }
    item
}

fn handset_words(with_handset: bool) -> &'static str {
    if with_handset {
        "with a handset"
    } else {
        "without a handset"
    }
}

/// Every plan has a fee for each commitment and handset flag, or a row
/// saying the combination is not sold.
fn plans_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "plans",
        "every plan has a monthly fee for 0, 12 and 24 months, with and without a handset, or says it is not sold",
        problems,
    );
    if tables.unreadable(&["plans", "plan_fees"]) {
        return item.build();
    }
    let plans = tables.get("plans");
    let fees = tables.get("plan_fees");
    for p in 0..plans.len() {
        let Some(plan) = plans.text(p, "plan_code") else {
            continue;
        };
        for months in [0, 12, 24] {
            for handset in [false, true] {
                let rows: Vec<usize> = (0..fees.len())
                    .filter(|&f| {
                        fees.text(f, "plan_code") == Some(plan)
                            && fees.int(f, "commitment_months") == Some(months)
                            && fees.bool(f, "with_handset") == Some(handset)
                    })
                    .collect();
                let combination = format!("{months} months {}", handset_words(handset));
                let Some(&latest) = rows.iter().max_by_key(|&&f| fees.date(f, "valid_from")) else {
                    item.blocking(
                        At::row(plans, p, "plan_code"),
                        format!(
                            "{plan}: no fee for {combination} in {}, and no row saying it is not sold (an empty monthly_fee)",
                            fees.file()
                        ),
                    );
                    continue;
                };
                if fees.decimal(latest, "monthly_fee").is_none() {
                    let since = fees.cell(latest, "valid_from");
                    item.note(
                        At::row(fees, latest, "monthly_fee"),
                        format!("{plan}: not sold with {combination} from {since}"),
                    );
                }
                for &f in &rows {
                    if fees
                        .decimal(f, "monthly_fee")
                        .is_some_and(|fee| fee.is_zero())
                    {
                        item.warning(
                            At::row(fees, f, "monthly_fee"),
                            format!("{plan}: a fee of 0 for {combination} (free, or a forgotten price? leave it empty for not sold)"),
                        );
                    }
                }
            }
        }
    }
    item.build()
}

/// Every option has its price; the price with a handset defaults to it.
fn options_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "options",
        "every option has its monthly fee; the fee with a handset defaults to it",
        problems,
    );
    if tables.unreadable(&["options"]) {
        return item.build();
    }
    let options = tables.get("options");
    for o in 0..options.len() {
        let code = options.cell(o, "option_code");
        if options
            .decimal(o, "monthly_fee")
            .is_some_and(|fee| fee.is_zero())
        {
            item.warning(
                At::row(options, o, "monthly_fee"),
                format!("{code}: a monthly fee of 0 (free, or a forgotten price?)"),
            );
        }
        if options.decimal(o, "monthly_fee_with_handset").is_none() {
            item.note(
                At::row(options, o, "monthly_fee_with_handset"),
                format!(
                    "{code}: {} with a handset too (empty: the same as monthly_fee)",
                    options.cell(o, "monthly_fee")
                ),
            );
        }
        if options.text(o, "allowance_group").is_none() && options.int(o, "allowance_qty").is_some()
        {
            item.warning(
                At::row(options, o, "allowance_qty"),
                format!(
                    "{code}: an allowance of {} but no allowance_group: it adds nothing",
                    options.cell(o, "allowance_qty")
                ),
            );
        }
    }
    item.build()
}

/// The (zone, event type) pairs rating asks a grid for (rating.md §2):
/// destination zones and `FR_SHORT` for outgoing calls and messages at home
/// or in the EU, `HOME` for data there, every roaming zone outside the EU for
/// every event type (the listed ones, and `ROAM_Z3` for an unlisted MCC).
fn rated_pairs(tables: &Tables) -> BTreeSet<(String, String)> {
    let destinations = tables.get("destinations");
    let roaming = tables.get("roaming_zones");
    let mut zones: BTreeSet<String> = (0..destinations.len())
        .filter_map(|r| destinations.text(r, "zone").map(str::to_string))
        .collect();
    zones.insert("FR_SHORT".into());
    let mut pairs = BTreeSet::new();
    for zone in &zones {
        for event in ["VOICE", "SMS", "MMS"] {
            pairs.insert((zone.clone(), event.to_string()));
        }
    }
    pairs.insert(("HOME".into(), "DATA".into()));
    let mut roaming_zones: BTreeSet<String> = (0..roaming.len())
        .filter_map(|r| roaming.text(r, "roaming_zone"))
        .filter(|z| z.starts_with("ROAM_"))
        .map(str::to_string)
        .collect();
    roaming_zones.insert("ROAM_Z3".into());
    for zone in roaming_zones {
        for event in crate::mvne::upstream::EVENT_TYPES {
            pairs.insert((zone.clone(), event.to_string()));
        }
    }
    pairs
}

/// Each of the 5 grids prices what rating asks for, or its holes are listed.
fn grids_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "rate_grids",
        "each of the 5 grids prices every zone of destinations.csv and every roaming zone for each event type",
        problems,
    );
    if tables.unreadable(&[
        "rate_grids",
        "destinations",
        "roaming_zones",
        "subscriptions",
    ]) {
        return item.build();
    }
    let grids = tables.get("rate_grids");
    let pairs = rated_pairs(tables);
    let mut priced: HashMap<i64, BTreeSet<(String, String)>> = HashMap::new();
    for r in 0..grids.len() {
        let (Some(grid), Some(zone), Some(event)) = (
            grids.int(r, "grid"),
            grids.text(r, "zone"),
            grids.text(r, "event_type"),
        ) else {
            continue;
        };
        let pair = (zone.to_string(), event.to_string());
        priced.entry(grid).or_default().insert(pair.clone());
        if !pairs.contains(&pair) {
            item.warning(
                At::row(grids, r, "zone"),
                format!("grid {grid}: {zone} {event} is never rated (rating.md §2: not a destination or roaming zone, or not priced for this event type)"),
            );
        }
    }
    let subscriptions = tables.get("subscriptions");
    let mut used: BTreeMap<i64, usize> = BTreeMap::new();
    for s in 0..subscriptions.len() {
        if let Some(grid) = subscriptions.int(s, "rate_grid") {
            used.entry(grid).or_insert(s);
        }
    }
    for grid in 1..=5 {
        let Some(rows) = priced.get(&grid) else {
            match used.get(&grid) {
                Some(&s) => item.blocking(
                    At::row(subscriptions, s, "rate_grid"),
                    format!("grid {grid} has no price in {}: every event of its lines would be a NO_PRICE exception", grids.file()),
                ),
                None => item.warning(
                    At::file(grids.file()),
                    format!("grid {grid} has no price (no line uses it yet)"),
                ),
            }
            continue;
        };
        let holes: Vec<String> = pairs
            .iter()
            .filter(|pair| !rows.contains(*pair))
            .map(|(zone, event)| format!("{zone} {event}"))
            .collect();
        if !holes.is_empty() {
            item.warning(
                At::file(grids.file()),
                format!(
                    "grid {grid} has no price for {} (NO_PRICE exceptions at rating): {}",
                    if holes.len() == 1 {
                        "1 combination".to_string()
                    } else {
                        format!("{} combinations", holes.len())
                    },
                    holes.join(", ")
                ),
            );
        }
    }
    item.build()
}

/// No duplicate prefix; which prefixes shadow a shorter one.
fn destinations_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "destinations",
        "destinations have one row per prefix (the longest prefix wins); roaming zones one per MCC",
        problems,
    );
    if tables.unreadable(&["destinations"]) {
        return item.build();
    }
    let destinations = tables.get("destinations");
    let prefixes: HashMap<&str, usize> = (0..destinations.len())
        .filter_map(|r| destinations.text(r, "prefix").map(|p| (p, r)))
        .collect();
    for r in 0..destinations.len() {
        let Some(prefix) = destinations.text(r, "prefix") else {
            continue;
        };
        // The longest shorter prefix this one takes numbers from.
        let shadowed = (1..prefix.len())
            .rev()
            .find_map(|n| prefixes.get(&prefix[..n]).map(|&s| (&prefix[..n], s)));
        if let Some((shorter, s)) = shadowed {
            item.note(
                At::row(destinations, r, "prefix"),
                format!(
                    "{prefix} ({}) shadows {shorter} ({}, line {}) for the numbers starting {prefix}",
                    destinations.cell(r, "zone"),
                    destinations.cell(s, "zone"),
                    destinations.line(s)
                ),
            );
        }
    }
    item.build()
}

/// Every handset has a bare price and the offers it is sold with.
fn handsets_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "handsets",
        "every handset has a bare price (tarif NU) and the offers it is sold with",
        problems,
    );
    if tables.unreadable(&["handsets", "handset_sales"]) {
        return item.build();
    }
    let handsets = tables.get("handsets");
    let mut models: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in 0..handsets.len() {
        if let Some(model) = handsets.text(r, "model") {
            models.entry(model.to_string()).or_default().push(r);
        }
    }
    for (model, rows) in &models {
        let (bare, offers): (Vec<usize>, Vec<usize>) = rows
            .iter()
            .partition(|&&r| handsets.text(r, "plan_code").is_none());
        if bare.is_empty() {
            item.blocking(
                At::row(handsets, rows[0], "plan_code"),
                format!("{model} has no bare price (a row with empty plan_code and commitment_months): a sale on another offer has no price"),
            );
        }
        for &r in rows {
            if handsets.decimal(r, "price").is_some_and(|p| p.is_zero()) {
                item.warning(
                    At::row(handsets, r, "price"),
                    format!("{model}: a price of 0"),
                );
            }
        }
        let mut offers: Vec<String> = offers
            .iter()
            .map(|&r| {
                format!(
                    "{} {} months {}",
                    handsets.cell(r, "plan_code"),
                    handsets.cell(r, "commitment_months"),
                    handsets.cell(r, "price")
                )
            })
            .collect();
        offers.dedup();
        match (bare.last(), offers.is_empty()) {
            (Some(&b), true) => item.warning(
                At::row(handsets, b, "model"),
                format!(
                    "{model}: sold with no offer, only at its bare price {}",
                    handsets.cell(b, "price")
                ),
            ),
            (Some(&b), false) => item.note(
                At::row(handsets, b, "model"),
                format!(
                    "{model}: bare price {}; with {}",
                    handsets.cell(b, "price"),
                    offers.join(", ")
                ),
            ),
            _ => {}
        }
    }
    // A sale needs a price in force on its date.
    let sales = tables.get("handset_sales");
    for s in 0..sales.len() {
        let (Some(model), Some(date)) = (sales.text(s, "model"), sales.date(s, "sale_date")) else {
            continue;
        };
        let in_force = models.get(model).is_some_and(|rows| {
            rows.iter()
                .any(|&r| handsets.date(r, "valid_from").is_some_and(|d| d <= date))
        });
        if models.contains_key(model) && !in_force {
            item.blocking(
                At::row(sales, s, "sale_date"),
                format!(
                    "{model} has no price in force on {date} in {}",
                    handsets.file()
                ),
            );
        }
    }
    item.build()
}

/// Subscriptions name plans, options, grids and customers that exist, on a
/// combination that has a fee.
fn subscriptions_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "subscriptions",
        "subscriptions name customers, plans, options and grids that exist, on a combination with a fee; a line's rows do not overlap",
        problems,
    );
    if tables.unreadable(&["subscriptions", "plan_fees"]) {
        return item.build();
    }
    let subscriptions = tables.get("subscriptions");
    let fees = tables.get("plan_fees");
    let priced: BTreeSet<(String, i64, bool)> = (0..fees.len())
        .filter(|&f| fees.decimal(f, "monthly_fee").is_some())
        .filter_map(|f| {
            Some((
                fees.text(f, "plan_code")?.to_string(),
                fees.int(f, "commitment_months")?,
                fees.bool(f, "with_handset")?,
            ))
        })
        .collect();
    for s in 0..subscriptions.len() {
        let (Some(plan), Some(months), Some(handset)) = (
            subscriptions.text(s, "plan_code"),
            subscriptions.int(s, "commitment_months"),
            subscriptions.bool(s, "with_handset"),
        ) else {
            continue;
        };
        if !priced.contains(&(plan.to_string(), months, handset)) {
            item.blocking(
                At::row(subscriptions, s, "plan_code"),
                format!(
                    "{plan} has no fee for {months} months {} in {}: the line cannot be billed",
                    handset_words(handset),
                    fees.file()
                ),
            );
        }
    }
    item.build()
}

/// account.md §5: the one-off charges (reference.rs has the rules: unique
/// charge_id, a known customer, a line of that customer, an amount in
/// cents), and each charge already billed against the row it was billed
/// from (the ledger keeps its hash): a billed charge whose row changed, or
/// that is gone, is never billed again, so it is reported.
fn charges_item(
    tables: &Tables,
    problems: &[&ReferenceError],
    reference_dir: &Path,
    billed: Result<Vec<BilledCharge>, LedgerError>,
) -> Item {
    let mut item = with_problems(
        "charges",
        "one-off charges name a known customer (and one of its lines), once each, in cents; a charge billed is not changed afterwards",
        problems,
    );
    let file = reference_dir.join("charges.csv");
    if !file.is_file() {
        item.note(
            At::file(&file.display().to_string()),
            "absent: no one-off charge to bill (the file is optional)",
        );
    }
    if tables.unreadable(&["charges"]) {
        return item.build();
    }
    let charges = tables.get("charges");
    for c in 0..charges.len() {
        if charges.decimal(c, "amount_ht").is_some_and(|a| a.is_zero()) {
            item.warning(
                At::row(charges, c, "amount_ht"),
                format!(
                    "{}: an amount of 0 (a forgotten amount?)",
                    charges.cell(c, "charge_id")
                ),
            );
        }
    }
    let billed = match billed {
        Ok(billed) => billed,
        Err(error) => {
            item.warning(
                At::default(),
                format!("the charges already billed cannot be read from the ledger: {error}"),
            );
            return item.build();
        }
    };
    let hashes = tables.reference.charge_hashes();
    let rows: HashMap<String, usize> = (0..charges.len())
        .filter_map(|c| Some((charges.text(c, "charge_id")?.to_string(), c)))
        .collect();
    for charge in &billed {
        match (hashes.get(&charge.charge_id), rows.get(&charge.charge_id)) {
            (Some(hash), Some(&row)) if *hash != charge.content_hash => item.warning(
                At::row(charges, row, "charge_id"),
                format!(
                    "{}: billed on the invoices of {}, and the row changed since: it is not billed again (a correction is a new charge, with its own charge_id)",
                    charge.charge_id, charge.month
                ),
            ),
            (None, _) => item.warning(
                At::file(charges.file()),
                format!(
                    "{}: billed on the invoices of {}, and no longer in the file",
                    charge.charge_id, charge.month
                ),
            ),
            _ => {}
        }
    }
    item.build()
}

/// Direct-debit customers' IBAN, BIC and mandate (reference.rs has the
/// rules); customers' e-mail addresses, SIRET and VAT numbers.
fn customers_item(tables: &Tables, problems: &[&ReferenceError]) -> Item {
    let mut item = with_problems(
        "customers",
        "direct-debit customers have a valid IBAN and mandate (RUM, date); e-mail, SIRET and VAT numbers are well-formed",
        problems,
    );
    if tables.unreadable(&["customers"]) {
        return item.build();
    }
    let customers = tables.get("customers");
    for c in 0..customers.len() {
        let id = customers.cell(c, "customer_id");
        if let Some(problem) = customers.text(c, "email").and_then(email_problem) {
            item.warning(At::row(customers, c, "email"), format!("{id}: {problem}"));
        }
        if let Some(problem) = customers.text(c, "siret").and_then(siret_problem) {
            item.warning(At::row(customers, c, "siret"), format!("{id}: {problem}"));
        }
        if let Some(problem) = customers.text(c, "vat_number").and_then(vat_number_problem) {
            item.warning(
                At::row(customers, c, "vat_number"),
                format!("{id}: {problem}"),
            );
        }
    }
    item.build()
}

/// account.md §8: a mandate unused for 36 months has lapsed; no debit is
/// issued on it until a new mandate is recorded. Its last use is its last
/// collection as the ledger records it, or its signature when never
/// collected.
fn mandates_item(
    tables: &Tables,
    collections: Result<
        std::collections::HashMap<String, String>,
        crate::core::ledger::LedgerError,
    >,
    today: chrono::NaiveDate,
) -> Item {
    let mut item = Builder::new(
        "mandates",
        "no direct-debit mandate has lapsed (unused for 36 months)",
    );
    let collections = match collections {
        Ok(collections) => collections,
        Err(e) => {
            item.blocking(At::file("ledger.sqlite"), e.to_string());
            return item.build();
        }
    };
    if tables.unreadable(&["customers"]) {
        return item.build();
    }
    let customers = tables.get("customers");
    for c in 0..customers.len() {
        if customers.text(c, "payment_method") != Some("SEPA_DD") {
            continue;
        }
        let (Some(rum), Some(signed)) = (
            customers.text(c, "mandate_rum"),
            customers.date(c, "mandate_date"),
        ) else {
            continue;
        };
        let collected = collections
            .get(rum)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let last_use = collected.map_or(signed, |d| d.max(signed));
        if crate::stages::sepa::lapsed(last_use, today) {
            let id = customers.cell(c, "customer_id");
            let since = match collected {
                Some(d) if d >= signed => format!("last collected on {d}"),
                _ => format!("signed on {signed} and never collected"),
            };
            item.blocking(
                At::row(customers, c, "mandate_rum"),
                format!(
                    "{id}: mandate {rum} {since}, unused for 36 months: it has lapsed and no debit is issued on it; record a new mandate (mandate_rum, mandate_date)"
                ),
            );
        }
    }
    item.build()
}

/// The items of `integrator.toml`: logo and banner, the identity the
/// banner carries, the complementary details.
fn integrator_items(path: &Path) -> Vec<Item> {
    let mut images = Builder::new(
        "images",
        "logo 95×95 px and footer banner 760×95 px, PNG or JPEG, 300 dpi",
    );
    let mut identity = Builder::new(
        "identity",
        "the banner's identity: company name, address, SIRET, VAT number, customer service number, its cost and e-mail",
    );
    let mut details = Builder::new(
        "details",
        "complementary details: brand, billing and technical e-mails, technical contact, SEPA creditor identifier (ICS)",
    );
    let (integrator, text, problems) = match Integrator::read(path) {
        Ok(read) => read,
        Err(e) => {
            let message = e.to_string();
            for item in [&mut images, &mut identity, &mut details] {
                item.blocking(
                    At::file(&path.display().to_string()),
                    format!("not checked: {message}"),
                );
            }
            return vec![images.build(), identity.build(), details.build()];
        }
    };
    for problem in problems {
        match problem {
            IntegratorError::Value { key, message, .. } => {
                details.blocking(At::key(path, &text, key), message)
            }
            other => details.blocking(At::file(&path.display().to_string()), other.to_string()),
        }
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    for (key, file, slot) in [
        ("logo", &integrator.logo, images::LOGO),
        ("footer_banner", &integrator.footer_banner, images::BANNER),
    ] {
        let at = || At::key(path, &text, key);
        let Some(file) = file else {
            images.blocking(
                at(),
                format!(
                    "no {} (jpg or png, {}×{} px)",
                    slot.role, slot.width, slot.height
                ),
            );
            continue;
        };
        let file = folder.join(file);
        let shown = file.display().to_string();
        let checked = std::fs::read(&file)
            .map_err(|source| images::ImageError::Read {
                role: slot.role,
                path: shown.clone(),
                source,
            })
            .and_then(|bytes| images::check(&bytes, &shown, slot).map(|_| bytes));
        match checked {
            Err(e) => images.blocking(at(), e.to_string()),
            Ok(bytes) => {
                match images::density(&bytes) {
                    Some((300, 300)) => images.note(at(), format!("{shown}: {}×{} px at 300 dpi", slot.width, slot.height)),
                    Some((x, y)) if x == y => images.warning(at(), format!("{shown} says {x} dpi, 300 dpi is asked (the invoice places it by its size in mm all the same)")),
                    Some((x, y)) => images.warning(at(), format!("{shown} says {x}×{y} dpi, 300 dpi is asked")),
                    None => images.warning(at(), format!("{shown} declares no resolution (PNG pHYs or JPEG JFIF): 300 dpi is asked")),
                }
            }
        }
    }

    // Each key: the item it belongs to, its value, what it is, its rule.
    type Rule = fn(&str) -> Option<String>;
    type Mention<'a> = (
        bool,
        &'static str,
        Option<&'a str>,
        &'static str,
        Option<Rule>,
    );
    let address = integrator.address.join(" ");
    let keys: [Mention; 12] = [
        (true, "name", Some(&integrator.name), "company name", None),
        (true, "address", Some(&address), "address", None),
        (
            true,
            "siret",
            integrator.siret.as_deref(),
            "SIRET",
            Some(siret_problem),
        ),
        (
            true,
            "vat_number",
            integrator.vat_number.as_deref(),
            "intra-community VAT number",
            Some(vat_number_problem),
        ),
        (
            true,
            "customer_service_phone",
            integrator.customer_service_phone.as_deref(),
            "customer service number",
            None,
        ),
        (
            true,
            "customer_service_cost",
            integrator.customer_service_cost.as_deref(),
            "cost per minute of the customer service number (\"appel non surtaxé\", or the price)",
            None,
        ),
        (
            true,
            "customer_service_email",
            integrator.customer_service_email.as_deref(),
            "customer service e-mail",
            Some(email_problem),
        ),
        (
            false,
            "brand",
            integrator.brand.as_deref(),
            "operator brand name",
            None,
        ),
        (
            false,
            "billing_email",
            integrator.billing_email.as_deref(),
            "billing e-mail (the sender of \"your invoice is available\" mails)",
            Some(email_problem),
        ),
        (
            false,
            "technical_email",
            integrator.technical_email.as_deref(),
            "technical e-mail",
            Some(email_problem),
        ),
        (
            false,
            "technical_contact",
            integrator.technical_contact.as_deref(),
            "technical contact",
            None,
        ),
        (
            false,
            "sepa_ics",
            integrator.sepa_ics.as_deref(),
            "SEPA creditor identifier (ICS), needed to collect by direct debit",
            // Checked on load (integrator.rs), reported above.
            None,
        ),
    ];
    for (banner, key, value, what, rule) in keys {
        let item = if banner { &mut identity } else { &mut details };
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => item.blocking(At::key(path, &text, key), format!("no {what}")),
            Some(value) => {
                if let Some(problem) = rule.and_then(|rule| rule(value)) {
                    item.blocking(At::key(path, &text, key), problem);
                }
            }
        }
    }
    // A French VAT number ends with the company's SIREN.
    if let (Some(siret), Some(vat)) = (&integrator.siret, &integrator.vat_number) {
        let siren = siret.get(..9).unwrap_or(siret);
        if vat.starts_with("FR") && vat.len() == 13 && !vat.ends_with(siren) {
            identity.blocking(
                At::key(path, &text, "vat_number"),
                format!(
                    "'{vat}' is not the VAT number of SIREN {siren} (the SIRET's first 9 digits)"
                ),
            );
        }
    }
    vec![images.build(), identity.build(), details.build()]
}

/// The MVNE's copy of the tariff tables (the latest version `sync` fetched
/// of each file of `Tables tarifaires/`) against ours, row by row.
async fn drift_item(tables: &Tables<'_>, lake: &Lake) -> Result<Item, CheckError> {
    let mut item = Builder::new(
        "platform",
        "the tables the MVNE configured (Tables tarifaires/) are ours",
    );
    let prefix = format!("raw/{PLATFORM_FOLDER}/");
    // Each name's latest version (sync stores version 2 of x.csv as x.v2.csv).
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for key in lake.list(&prefix).await? {
        let stored = key.strip_prefix(&prefix).unwrap_or(&key);
        let (name, version) = crate::mvne::raw::original_name(stored);
        if latest.get(&name).is_none_or(|(v, _)| version > *v) {
            latest.insert(name, (version, key.clone()));
        }
    }
    if latest.is_empty() {
        item.warning(
            At::file(&lake.url().join(&prefix)),
            "not compared: no table of the MVNE synced yet (run mvnobill sync once the MVNE has published them)",
        );
        return Ok(item.build());
    }
    for (name, key_columns) in TARIFF_TABLES {
        let ours = tables.get(name);
        let file_name = format!("{name}.csv");
        if tables.unreadable(&[name]) {
            item.warning(
                At::file(ours.file()),
                "not compared: ours does not read (see above)",
            );
            continue;
        }
        let Some((_, key)) = latest.get(&file_name) else {
            item.warning(
                At::file(&lake.url().join(&prefix)),
                format!("not compared: the MVNE has not published {file_name}"),
            );
            continue;
        };
        let bytes = lake.get(key).await?;
        let mut problems = Vec::new();
        let theirs = match Reference::read_one(name, key, &bytes, &mut problems) {
            Some(Ok(table)) => table,
            Some(Err(problem)) => {
                let (at, message) = locate(&problem);
                item.warning(at, format!("not compared: {message}"));
                continue;
            }
            None => continue,
        };
        for problem in &problems {
            let (at, message) = locate(problem);
            item.warning(at, format!("the MVNE's copy: {message}"));
        }
        compare(&mut item, name, key_columns, ours, &theirs);
    }
    Ok(item.build())
}

/// Every row of one table only on one side, and every value that differs.
fn compare(item: &mut Builder, name: &str, key_columns: &[&str], ours: &Table, theirs: &Table) {
    let keyed = |table: &Table| -> BTreeMap<Vec<String>, usize> {
        (0..table.len())
            .map(|r| (key_columns.iter().map(|c| table.cell(r, c)).collect(), r))
            .collect()
    };
    let (our_rows, their_rows) = (keyed(ours), keyed(theirs));
    let label = |key: &[String]| {
        let shown: Vec<&str> = key
            .iter()
            .map(String::as_str)
            .filter(|k| !k.is_empty())
            .collect();
        format!("{name} {}", shown.join(" "))
    };
    for (key, &r) in &our_rows {
        let Some(&t) = their_rows.get(key) else {
            item.warning(
                At::row(ours, r, key_columns[0]),
                format!("{} is not on the platform ({})", label(key), theirs.file()),
            );
            continue;
        };
        for column in ours.columns().filter(|c| !key_columns.contains(c)) {
            let (mine, platform) = (ours.cell(r, column), theirs.cell(t, column));
            if mine != platform {
                let shown = |v: &str| {
                    if v.is_empty() {
                        "empty".to_string()
                    } else {
                        v.to_string()
                    }
                };
                item.warning(
                    At::row(ours, r, column),
                    format!(
                        "{}: {column} {} here, {} on the platform ({} line {})",
                        label(key),
                        shown(&mine),
                        shown(&platform),
                        theirs.file(),
                        theirs.line(t)
                    ),
                );
            }
        }
    }
    for (key, &t) in &their_rows {
        if !our_rows.contains_key(key) {
            item.warning(
                At::row(theirs, t, key_columns[0]),
                format!(
                    "{} is on the platform only, not in {}",
                    label(key),
                    ours.file()
                ),
            );
        }
    }
}
