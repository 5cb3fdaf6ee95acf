//! Synthetic integrator and one month (or more) of MVNE deliveries, for
//! `mvnobill demo`, tests and benchmarks.
//!
//! [`generate`] writes, under one folder, everything the pipeline reads for a
//! month, in the layout and formats of `formats.md`: the integrator's ten
//! reference tables (`reference/`), the MVNE's FTP tree (`ftp/RatedCDRs`,
//! `ftp/BilledCDRs`, `ftp/AccountStatus`, `ftp/Cartes SIM`), `integrator.toml`
//! with its logo and banner, and a `mvnobill.toml` pointing at all of it. It
//! exists so that the whole pipeline can be exercised at any size (a few
//! thousand CDRs for a demo, tens of millions for a benchmark) without real
//! customer data.
//!
//! The data is clean on purpose: the rate grids price every zone × event type
//! an event can hit, so a generated month rates almost without exceptions.
//! The only mess is the realistic kind: about 0.01 % malformed CDR rows (at
//! least one of each of five kinds), a few exact re-deliveries of CDRs in the
//! next file, about 0.1 % called numbers with no known prefix (`NO_DESTINATION`),
//! a handful of lines without subscription (`NO_SUBSCRIPTION`, and active lines
//! without subscription for revenue assurance), a few events of the adjacent
//! months in the boundary files, and a BilledCDRs file with exactly one event
//! missing, one extra and one at another amount.
//!
//! With `months` N above 1 (`gen --months N`), N consecutive months from
//! `month`, with the same customers, lines and reference tables (one set,
//! valid for every month: the versioned rows are those of the first month,
//! the future fee change falls in the second), one SIM order, and per month
//! its three AccountStatus snapshots, its RatedCDRs deliveries and its
//! BilledCDRs statement. The months follow each other without overlap: the
//! first starts at 23:00 the day before it, each ends at 01:00 on the next
//! month's first day, where the next starts; a month's events of that hour
//! are in the next month's statement. And the partners' lateness: half of
//! each month's events on a network outside France and the EU (the last
//! month's too) are not in its deliveries but in one late file,
//! `RatedCDRs_YYYYMMDD_HHMMSS.csv` like any other, dated 4 to 6 days after
//! the month (a Sunday's the Monday after) between 08:00 and 20:00: after
//! the 2nd, when the month is billed, so the next month's issue regularises
//! them (RULES.md §7a). The statement lists them (the MVNE billed them).
//! `months` 1 writes exactly what a single month always was: no late file.
//!
//! Caveats: the output is byte-identical for the same options (ChaCha8 streams
//! seeded from `seed`, integers only: every amount, quantity and time comes
//! from integer arithmetic, never from a float), except `mvnobill.toml`, which
//! holds the absolute output path. The folder is not emptied first: files of
//! an earlier run with other options would stay, so generate into a new or
//! empty folder. CDRs are streamed hour by hour and file by file, so memory
//! stays bounded by the customer base plus one hour of event times (and,
//! between two months, the rows of the boundary hour).
//! `cdr_id`s are `R<YYYYMM><9 digits>`, unique across generated months. The
//! month's reference rows are valid from 1 January of the previous year, with
//! two deliberate versioned rows (a grid-1 price change on the 15th, a fee
//! change from the 1st) and one future fee change (the 10th of next month).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::core::identifiers::{french_vat_key, iban_is_valid, luhn_digit, mod97};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// First day of the month to generate, e.g. 2026-10-01 (any other day stands for its
    /// month's first).
    pub month: chrono::NaiveDate,
    /// Number of customer accounts (B2C ones have 1..=6 lines, B2B ones 2..=12).
    pub customers: u32,
    /// Approximate total CDRs of the month (the exact count written is reported).
    pub cdrs: u64,
    /// Seed of the random stream: same options, same bytes.
    pub seed: u64,
    /// Consecutive months to generate from `month` (1, the default: a single
    /// month, no late file).
    pub months: u32,
}

/// What was generated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenReport {
    /// Absolute output folder.
    pub out_dir: String,
    /// Months generated.
    pub months: u32,
    /// Customer accounts written to `customers.csv`.
    pub customers: u32,
    /// Lines (MSISDNs) known to the MVNE, lines without subscription included.
    pub lines: u32,
    /// Data rows written across all RatedCDRs files (malformed rows and re-deliveries included).
    pub cdrs: u64,
    /// Number of RatedCDRs files (late files included).
    pub rated_files: u32,
    /// Of `cdrs`, the roaming events delivered in the late files.
    pub late_cdrs: u64,
    /// Total bytes written.
    pub bytes: u64,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes a synthetic integrator and one month of MVNE deliveries under `out_dir`.
pub fn generate(options: &GenOptions, out_dir: &Path) -> Result<GenReport, GenError> {
    let out_dir = std::path::absolute(out_dir).map_err(io_err(out_dir))?;
    let cal = Cal::new(options.month);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let world = build_world(&mut rng, options.customers, &cal);

    for sub in [
        "reference",
        "ftp/RatedCDRs",
        "ftp/BilledCDRs",
        "ftp/AccountStatus",
        "ftp/Cartes SIM",
    ] {
        let dir = out_dir.join(sub);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let mut bytes = 0u64;
    bytes += write_reference(&out_dir.join("reference"), &world, &cal)?;
    bytes += write_file(&out_dir.join("integrator.toml"), INTEGRATOR_TOML.as_bytes())?;
    bytes += write_file(&out_dir.join("logo.png"), LOGO_PNG)?;
    bytes += write_file(&out_dir.join("banner.png"), BANNER_PNG)?;
    bytes += write_file(
        &out_dir.join("mvnobill.toml"),
        mvnobill_toml(&out_dir).as_bytes(),
    )?;
    bytes += write_account_status(&out_dir.join("ftp/AccountStatus"), &world, &cal, &mut rng)?;
    bytes += write_sim_order(&out_dir.join("ftp/Cartes SIM"), &world, &cal, &mut rng)?;

    let months = options.months.max(1);
    let mut across = Across::default();
    let (mut rows, mut files, mut late) = (0u64, 0u32, 0u64);
    let mut this = Cal::new(options.month);
    for index in 0..months {
        // The first month's streams are those of a single month; each later
        // month has its own.
        let mut ev_rng = match index {
            0 => ChaCha8Rng::seed_from_u64(options.seed ^ 0x5EED_CDB5_0000_0001),
            k => ChaCha8Rng::seed_from_u64(splitmix64(
                options.seed ^ 0x5EED_CDB5_0000_0002 ^ u64::from(k),
            )),
        };
        if index > 0 {
            bytes += write_account_status(
                &out_dir.join("ftp/AccountStatus"),
                &world,
                &this,
                &mut ev_rng,
            )?;
        }
        let plan = MonthPlan {
            cal: &this,
            index,
            offset: (this.base - cal.base).num_seconds(),
            late: months > 1,
            next: index + 1 < months,
        };
        let cdr = write_cdrs(
            &out_dir.join("ftp"),
            &world,
            &plan,
            options.cdrs,
            options.seed,
            &mut ev_rng,
            &mut across,
        )?;
        bytes += cdr.bytes;
        rows += cdr.rows;
        files += cdr.files;
        late += cdr.late;
        // The next month starts where this one's window ends (01:00 on its first day).
        this = Cal::new(this.date(this.days + 1));
        this.start_hour = 25;
    }

    Ok(GenReport {
        out_dir: out_dir.display().to_string(),
        months,
        customers: world.customers.len() as u32,
        lines: world.lines.len() as u32,
        cdrs: rows,
        rated_files: files,
        late_cdrs: late,
        bytes,
    })
}

// ---------------------------------------------------------------------------
// Output helpers

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A buffered output file that counts its bytes and names itself in errors
/// (its `Write` counts too, for the CSV writer).
struct Out {
    w: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
}

impl Out {
    fn create(path: PathBuf) -> Result<Out, GenError> {
        let f = File::create(&path).map_err(io_err(&path))?;
        Ok(Out {
            w: BufWriter::with_capacity(1 << 20, f),
            path,
            bytes: 0,
        })
    }
    fn put(&mut self, b: &[u8]) -> Result<(), GenError> {
        self.bytes += b.len() as u64;
        self.w.write_all(b).map_err(io_err(&self.path))
    }
    fn finish(mut self) -> Result<u64, GenError> {
        self.w.flush().map_err(io_err(&self.path))?;
        Ok(self.bytes)
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

fn write_file(path: &Path, content: &[u8]) -> Result<u64, GenError> {
    let mut out = Out::create(path.to_path_buf())?;
    out.put(content)?;
    out.finish()
}

/// A CSV file as formats.md has them, written by the csv crate: `;`
/// between fields, `"` around a field that holds `;`, `"` or a line break
/// (`""` inside), records ended by `\n` unless said otherwise, the same
/// number of fields in every record.
struct Csv {
    w: csv::Writer<Out>,
    path: PathBuf,
}

impl Csv {
    fn create(path: PathBuf) -> Result<Csv, GenError> {
        Csv::with(path, &mut csv::WriterBuilder::new(), false)
    }

    /// An MVNE delivery: with a UTF-8 BOM or not, records ended by `\r\n`
    /// or `\n` (formats.md allows both, the generator draws them).
    fn delivery(path: PathBuf, bom: bool, crlf: bool) -> Result<Csv, GenError> {
        let mut builder = csv::WriterBuilder::new();
        if crlf {
            builder.terminator(csv::Terminator::CRLF);
        }
        Csv::with(path, &mut builder, bom)
    }

    fn with(path: PathBuf, builder: &mut csv::WriterBuilder, bom: bool) -> Result<Csv, GenError> {
        let mut out = Out::create(path.clone())?;
        if bom {
            out.put("\u{feff}".as_bytes())?;
        }
        let w = builder.delimiter(b';').from_writer(out);
        Ok(Csv { w, path })
    }

    fn csv_err(&self) -> impl FnOnce(csv::Error) -> GenError + '_ {
        move |e| io_err(&self.path)(e.into())
    }

    /// The header line: the column names of a `;`-joined list.
    fn header(&mut self, columns: &str) -> Result<(), GenError> {
        let result = self.w.write_record(columns.split(';'));
        result.map_err(self.csv_err())
    }

    fn row(&mut self, fields: &[&str]) -> Result<(), GenError> {
        let result = self.w.write_record(fields);
        result.map_err(self.csv_err())
    }

    fn record(&mut self, record: &csv::ByteRecord) -> Result<(), GenError> {
        let result = self.w.write_byte_record(record);
        result.map_err(self.csv_err())
    }

    /// Flushes the file; its size in bytes.
    fn finish(self) -> Result<u64, GenError> {
        let path = self.path;
        let out = self
            .w
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        out.finish()
    }
}

/// `v` in units of 10^-scale, with `sep` as decimal separator.
fn decimal(v: u64, scale: u32, sep: char) -> String {
    let p = 10u64.pow(scale);
    format!("{}{}{:0w$}", v / p, sep, v % p, w = scale as usize)
}

fn push_u64(buf: &mut Vec<u8>, v: u64) {
    push_padded(buf, v, 1);
}

fn push_padded(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while tmp.len() - i < width && i > 0 {
        i -= 1;
        tmp[i] = b'0';
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn dmy(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

fn dmy_hms(dt: NaiveDateTime) -> String {
    dt.format("%d/%m/%Y %H:%M:%S").to_string()
}

fn mvnobill_toml(out_dir: &Path) -> String {
    let p = out_dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "# Written by `mvnobill` generator: a synthetic integrator and one month of deliveries.\n\
         [source]\nurl = \"file://{p}/ftp\"\n\n\
         [reference]\ndir = \"reference\"\nintegrator = \"integrator.toml\"\n\n\
         [lake]\nurl = \"file://{p}/lake\"\n"
    )
}

// ---------------------------------------------------------------------------
// Calendar

/// The generated month and the time frame of its events.
///
/// Event times are seconds since `base`, the midnight before the month's
/// first day; events cover `[start_hour, end_hour)` in hours since `base`,
/// i.e. from 23:00 on the previous month's last day to 01:00 on the next
/// month's first day (a few boundary events on either side).
struct Cal {
    month: NaiveDate,
    days: u32,
    base: NaiveDateTime,
    yyyymm: String,
    base_from: NaiveDate,
    start_hour: u32,
    end_hour: u32,
}

impl Cal {
    fn new(month: NaiveDate) -> Cal {
        let month =
            NaiveDate::from_ymd_opt(month.year(), month.month(), 1).expect("first of month");
        let next = if month.month() == 12 {
            NaiveDate::from_ymd_opt(month.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(month.year(), month.month() + 1, 1)
        }
        .expect("next month");
        let days = (next - month).num_days() as u32;
        Cal {
            month,
            days,
            base: (month - Days::new(1)).and_time(NaiveTime::MIN),
            yyyymm: month.format("%Y%m").to_string(),
            base_from: NaiveDate::from_ymd_opt(month.year() - 1, 1, 1).expect("base date"),
            start_hour: 23,
            end_hour: (days + 1) * 24 + 1,
        }
    }
    /// Date of day index `d` (0 = the day before the month, 1 = its first day).
    fn date(&self, d: u32) -> NaiveDate {
        self.base.date() + Days::new(u64::from(d))
    }
    fn at(&self, d: u32, h: u32, m: u32) -> NaiveDateTime {
        self.date(d).and_hms_opt(h, m, 0).expect("valid time")
    }
    fn secs(&self, dt: NaiveDateTime) -> i64 {
        (dt - self.base).num_seconds()
    }
    fn last(&self) -> NaiveDate {
        self.date(self.days)
    }
}

// ---------------------------------------------------------------------------
// Fixed tables

/// A plan of `plans.csv`: allowances as written (empty = unlimited) and its monthly fee in cents
/// without commitment or handset (12 months: 1 € less, 24 months: 2 € less, handset: 10 €
/// more).
struct Plan {
    code: &'static str,
    label: &'static str,
    allowances: [&'static str; 4],
    fee: u64,
}
const PLANS: [Plan; 4] = [
    Plan {
        code: "BLOC1H",
        label: "Bloqué 1h 1Go",
        allowances: ["60", "100", "0", "1024"],
        fee: 499,
    },
    Plan {
        code: "S2H5G",
        label: "Série 2h 5Go",
        allowances: ["120", "", "100", "5120"],
        fee: 899,
    },
    Plan {
        code: "ILL20",
        label: "Illimité 20Go",
        allowances: ["", "", "", "20480"],
        fee: 1499,
    },
    Plan {
        code: "ILL100",
        label: "Illimité 100Go",
        allowances: ["", "", "", "102400"],
        fee: 1999,
    },
];
/// Plan mix per 100 lines.
const PLAN_WEIGHTS: [u32; 4] = [15, 25, 35, 25];

/// An option of `options.csv` (fees in cents) and how often a subscription row takes it (per 1000).
struct OptionDef {
    code: &'static str,
    label: &'static str,
    fee: u64,
    fee_with_handset: Option<u64>,
    group: &'static str,
    qty: &'static str,
    per_mille: u32,
}
const fn option(
    code: &'static str,
    label: &'static str,
    fee: u64,
    fee_with_handset: Option<u64>,
    group: &'static str,
    qty: &'static str,
    per_mille: u32,
) -> OptionDef {
    OptionDef {
        code,
        label,
        fee,
        fee_with_handset,
        group,
        qty,
        per_mille,
    }
}
const OPTIONS: [OptionDef; 5] = [
    option("EU2H", "Europe 2h", 499, None, "VOICE_EU", "120", 150),
    option("DOM1H", "DOM 1h", 299, None, "VOICE_DOM", "60", 50),
    option(
        "DATA10",
        "Boost 10Go",
        500,
        Some(400),
        "DATA_FR",
        "10240",
        100,
    ),
    option("SMSEU", "SMS Europe illimités", 199, None, "SMS_EU", "", 80),
    option("SECU", "Assurance mobile", 799, Some(699), "", "", 80),
];

/// model, plan, commitment, price (cents).
const HANDSETS: [(&str, &str, &str, u64); 7] = [
    ("PHONE_A", "", "", 29900),
    ("PHONE_A", "ILL20", "24", 9900),
    ("PHONE_A", "ILL100", "24", 100),
    ("PHONE_A", "ILL100", "12", 4900),
    ("PHONE_B", "", "", 89900),
    ("PHONE_B", "ILL100", "24", 39900),
    ("PHONE_C", "", "", 12900),
];

const DESTINATIONS: [(&str, &str, &str); 35] = [
    ("336", "FR_MOBILE", "Mobiles France"),
    ("337", "FR_MOBILE", "Mobiles France"),
    ("331", "FR_FIXED", "Fixes IDF"),
    ("332", "FR_FIXED", "Fixes NO"),
    ("333", "FR_FIXED", "Fixes NE"),
    ("334", "FR_FIXED", "Fixes SE"),
    ("335", "FR_FIXED", "Fixes SO"),
    ("339", "FR_FIXED", "Fixes box"),
    ("338", "FR_SPECIAL", "Numéros spéciaux"),
    ("3389", "FR_SPECIAL", "Numéros 089"),
    ("262", "DOM", "Réunion/Mayotte"),
    ("590", "DOM", "Guadeloupe"),
    ("594", "DOM", "Guyane"),
    ("596", "DOM", "Martinique"),
    ("32", "EU", "Belgique"),
    ("34", "EU", "Espagne"),
    ("39", "EU", "Italie"),
    ("49", "EU", "Allemagne"),
    ("351", "EU", "Portugal"),
    ("352", "EU", "Luxembourg"),
    ("31", "EU", "Pays-Bas"),
    ("353", "EU", "Irlande"),
    ("41", "EUROPE_OTHER", "Suisse"),
    ("44", "EUROPE_OTHER", "Royaume-Uni"),
    ("377", "EUROPE_OTHER", "Monaco"),
    ("1", "NORTH_AMERICA", "USA/Canada"),
    ("212", "MAGHREB", "Maroc"),
    ("213", "MAGHREB", "Algérie"),
    ("216", "MAGHREB", "Tunisie"),
    ("86", "WORLD", "Chine"),
    ("81", "WORLD", "Japon"),
    ("55", "WORLD", "Brésil"),
    ("221", "WORLD", "Sénégal"),
    ("225", "WORLD", "Côte d'Ivoire"),
    ("237", "WORLD", "Cameroun"),
];

const ROAMING_ZONES: [(&str, &str, &str); 31] = [
    ("208", "France", "HOME"),
    ("206", "Belgique", "EU"),
    ("214", "Espagne", "EU"),
    ("222", "Italie", "EU"),
    ("262", "Allemagne", "EU"),
    ("268", "Portugal", "EU"),
    ("204", "Pays-Bas", "EU"),
    ("272", "Irlande", "EU"),
    ("270", "Luxembourg", "EU"),
    ("232", "Autriche", "EU"),
    ("202", "Grèce", "EU"),
    ("260", "Pologne", "EU"),
    ("240", "Suède", "EU"),
    ("238", "Danemark", "EU"),
    ("242", "Norvège", "EU"),
    ("340", "Antilles françaises", "EU"),
    ("647", "Réunion", "EU"),
    ("228", "Suisse", "ROAM_Z1"),
    ("234", "Royaume-Uni", "ROAM_Z1"),
    ("213", "Andorre", "ROAM_Z1"),
    ("310", "Etats-Unis", "ROAM_Z2"),
    ("311", "Etats-Unis", "ROAM_Z2"),
    ("302", "Canada", "ROAM_Z2"),
    ("604", "Maroc", "ROAM_Z2"),
    ("603", "Algérie", "ROAM_Z2"),
    ("605", "Tunisie", "ROAM_Z2"),
    ("460", "Chine", "ROAM_Z3"),
    ("440", "Japon", "ROAM_Z3"),
    ("724", "Brésil", "ROAM_Z3"),
    ("608", "Sénégal", "ROAM_Z3"),
    ("612", "Côte d'Ivoire", "ROAM_Z3"),
];

// Rating zones of the grids, with grid-1 prices in 1/10000 € (per minute,
// message or MB) and connect fees in cents.
const DOMESTIC_ZONES: [&str; 10] = [
    "FR_MOBILE",
    "FR_FIXED",
    "FR_SPECIAL",
    "FR_SHORT",
    "DOM",
    "EU",
    "EUROPE_OTHER",
    "NORTH_AMERICA",
    "MAGHREB",
    "WORLD",
];
const VOICE_BASE: [(u64, u64); 10] = [
    (1000, 0),
    (800, 0),
    (3500, 15),
    (5000, 0),
    (2500, 0),
    (2000, 0),
    (4500, 0),
    (3000, 0),
    (6000, 0),
    (12000, 15),
];
const SMS_BASE: [u64; 10] = [500, 500, 3500, 3500, 1000, 600, 2000, 2000, 2500, 3000];
const MMS_BASE: [u64; 10] = [1500, 1500, 10500, 10500, 3000, 1800, 6000, 6000, 7500, 9000];
const ROAM_ZONES: [&str; 3] = ["ROAM_Z1", "ROAM_Z2", "ROAM_Z3"];
/// Per roaming zone: VOICE (price, connect cents), VOICE_IN, SMS, SMS_IN, MMS, DATA.
const ROAM_BASE: [[u64; 7]; 3] = [
    [9000, 10, 4500, 3000, 0, 9000, 15000],
    [15000, 10, 7500, 4000, 0, 12000, 30000],
    [29000, 10, 14500, 5000, 0, 15000, 80000],
];
const HOME_DATA_BASE: u64 = 500;
/// First and next increment of a price row.
type Increments = (u32, u32);
/// Grid g (1..=5): price multiplier in %, voice increments, data increments.
const GRIDS: [(u64, Increments, Increments); 5] = [
    (100, (60, 60), (1, 1)),
    (90, (60, 1), (1, 1)),
    (80, (1, 1), (10, 10)),
    (120, (30, 30), (100, 100)),
    (150, (60, 30), (1024, 1024)),
];

/// The demo integrator's identity (`data/integrator.toml`).
const INTEGRATOR_TOML: &str = include_str!("../../data/integrator.toml");
const LOGO_PNG: &[u8] = include_bytes!("../../data/logo.png");
const BANNER_PNG: &[u8] = include_bytes!("../../data/banner.png");

const FIRST_NAMES: [&str; 20] = [
    "Élodie",
    "Zoë",
    "Marc-André",
    "Jean",
    "Hélène",
    "François",
    "Anaïs",
    "Loïc",
    "Gaëlle",
    "Noël",
    "Céline",
    "Jérôme",
    "Maëlys",
    "Sébastien",
    "Inès",
    "Benoît",
    "Chloé",
    "Thomas",
    "Léa",
    "Raphaël",
];
const LAST_NAMES: [&str; 20] = [
    "Lefèvre",
    "Müller",
    "O'Brien",
    "Dupont",
    "Martin",
    "Garçon",
    "Fournier",
    "Lemaître",
    "Da Silva",
    "N'Diaye",
    "Girard",
    "Rousseau",
    "Châtelain",
    "Nguyen",
    "Faure",
    "Mercier",
    "D'Almeida",
    "Ferrand",
    "Besson",
    "Évrard",
];
const STREETS: [&str; 10] = [
    "rue de la Paix",
    "avenue Jean-Jaurès",
    "boulevard Haussmann",
    "rue du Général-de-Gaulle",
    "place de l'Église",
    "chemin des Écoliers",
    "impasse des Lilas",
    "quai Saint-Étienne",
    "allée des Châtaigniers",
    "rue Victor-Hugo",
];
const CITIES: [(&str, &str); 12] = [
    ("75002", "Paris"),
    ("75011", "Paris"),
    ("69003", "Lyon"),
    ("13001", "Marseille"),
    ("33000", "Bordeaux"),
    ("59000", "Lille"),
    ("44000", "Nantes"),
    ("67000", "Strasbourg"),
    ("31000", "Toulouse"),
    ("06000", "Nice"),
    ("35000", "Rennes"),
    ("42000", "Saint-Étienne"),
];
const BANKS: [(&str, &str); 8] = [
    ("30004", "BNPAFRPPXXX"),
    ("30003", "SOGEFRPPXXX"),
    ("30002", "CRLYFRPPXXX"),
    ("20041", "PSSTFRPPXXX"),
    ("10278", "CMCIFR2AXXX"),
    ("30006", "AGRIFRPPXXX"),
    ("17515", "CEPAFRPP751"),
    ("30066", "CMCIFRPPXXX"),
];

// ---------------------------------------------------------------------------
// Customers, lines and subscriptions

struct Customer {
    id: String,
    b2b: bool,
    name: String,
    address1: String,
    address2: String,
    city: (&'static str, &'static str),
    email: String,
    vat: String,
    siret: String,
    sepa: Option<Sepa>,
}

struct Sepa {
    iban: String,
    bic: &'static str,
    rum: String,
    mandate: NaiveDate,
}

#[derive(Clone)]
struct SubRow {
    plan: usize,
    commitment: u32,
    handset: bool,
    grid: u32,
    options: u8,
    start: NaiveDate,
    end: Option<NaiveDate>,
}

struct Line {
    msisdn: u64,
    /// Index in `World::customers`; `None` for a line without subscription.
    customer: Option<usize>,
    subs: Vec<SubRow>,
    activation: NaiveDateTime,
    terminated: Option<NaiveDateTime>,
    suspended: Option<NaiveDateTime>,
    /// Relative traffic of the line while it is active (its weight in a month's
    /// window: `World::weights`).
    traffic: u64,
    /// Events happen in `[active_from, active_until)`, seconds since the first
    /// month's `Cal::base`.
    active_from: i64,
    active_until: i64,
}

struct Sale {
    customer: usize,
    msisdn: u64,
    model: &'static str,
    date: NaiveDate,
}

struct World {
    customers: Vec<Customer>,
    lines: Vec<Line>,
    sales: Vec<Sale>,
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut r = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len() as u32) as usize]
}

/// A French IBAN with a valid RIB key and valid IBAN check digits.
fn french_iban(rng: &mut ChaCha8Rng, bank: &str) -> String {
    let branch = rng.random_range(0..100_000u64);
    let account = rng.random_range(0..100_000_000_000u64);
    let bank_n: u64 = bank.parse().expect("numeric bank code");
    let key = 97 - (89 * bank_n + 15 * branch + 3 * account) % 97;
    let bban = format!("{bank}{branch:05}{account:011}{key:02}");
    let check = 98 - mod97(&format!("{bban}FR00")).expect("digits and letters");
    let iban = format!("FR{check:02}{bban}");
    debug_assert!(iban_is_valid(&iban));
    iban
}

fn customer_name(rng: &mut ChaCha8Rng, b2b: bool) -> String {
    let first = *pick(rng, &FIRST_NAMES);
    let last = *pick(rng, &LAST_NAMES);
    if !b2b {
        return format!("{first} {last}");
    }
    let form = *pick(rng, &["SARL", "SAS", "EURL", "SA", "SASU"]);
    let city = pick(rng, &CITIES).1;
    match rng.random_range(0..7u32) {
        0 => format!("{form} {last} & Fils"),
        1 => format!(
            "{form} Café \"Le {}\"",
            pick(rng, &["Port", "Marché", "Centre", "Château"])
        ),
        2 => format!("Boulangerie {last}; {city}"),
        3 => format!(
            "{form} Bâtiments <{}>",
            pick(rng, &["Ouest", "Est", "Nord", "Sud"])
        ),
        4 => format!("{form} Transports {last}"),
        5 => format!("Cabinet {last} et Associés"),
        _ => format!("{form} Élec'{city}"),
    }
}

fn build_world(rng: &mut ChaCha8Rng, customers: u32, cal: &Cal) -> World {
    // Line counts first, to spread the MSISDNs over the 336 range.
    let kinds: Vec<(bool, u32)> = (0..customers)
        .map(|_| {
            let b2b = rng.random_range(0..100u32) < 25;
            let n = if b2b {
                rng.random_range(2..=12u32)
            } else {
                1 + pick_weighted(rng, &[45, 25, 14, 8, 5, 3]) as u32
            };
            (b2b, n)
        })
        .collect();
    let customer_lines: u64 = kinds.iter().map(|k| u64::from(k.1)).sum();
    let orphans = 2 + customer_lines / 2000;
    let step_max = (60_000_000 / (customer_lines + orphans)).clamp(1, 40);
    let mut msisdn = 33_632_260_000u64;
    let width = customers.to_string().len().max(5);

    let mut out = Vec::with_capacity(kinds.len());
    let mut lines = Vec::with_capacity((customer_lines + orphans) as usize);
    for (c, &(b2b, n)) in kinds.iter().enumerate() {
        let num = c + 1;
        let id = format!("C{num:0width$}");
        let since = cal.month - Days::new(rng.random_range(30..=1095u64));
        let city = *pick(rng, &CITIES);
        let address2 = match rng.random_range(0..10u32) {
            0 => "Bâtiment B".to_string(),
            1 => format!("Appt {}", rng.random_range(1..=80u32)),
            2 => "Escalier C; 3e étage".to_string(),
            _ => String::new(),
        };
        let (vat, siret) = if b2b {
            let payload = format!("{}", rng.random_range(10_000_000..100_000_000u64));
            let siren = format!("{payload}{}", luhn_digit(&payload));
            let nic = format!("{siren}{:04}", rng.random_range(1..100u32));
            let siret = format!("{nic}{}", luhn_digit(&nic));
            let siren_n: u64 = siren.parse().expect("digits");
            (format!("FR{:02}{siren}", french_vat_key(siren_n)), siret)
        } else {
            (String::new(), String::new())
        };
        let sepa_pct = if b2b { 65 } else { 85 };
        let sepa = if rng.random_range(0..100u32) < sepa_pct {
            let (bank, bic) = *pick(rng, &BANKS);
            Some(Sepa {
                iban: french_iban(rng, bank),
                bic,
                rum: format!("RUM-{id}-001"),
                mandate: since,
            })
        } else {
            None
        };
        out.push(Customer {
            name: customer_name(rng, b2b),
            address1: format!("{} {}", rng.random_range(1..=200u32), pick(rng, &STREETS)),
            address2,
            city,
            email: format!("client{num}@example.org"),
            id,
            b2b,
            vat,
            siret,
            sepa,
        });
        for _ in 0..n {
            msisdn += rng.random_range(1..=step_max);
            // Even a small base has one line of each special case.
            let forced = FORCED_KINDS
                .iter()
                .find(|f| f.0 == lines.len())
                .map(|f| f.1);
            lines.push(make_line(rng, cal, msisdn, Some(c), since, forced));
        }
    }
    for _ in 0..orphans {
        msisdn += rng.random_range(1..=step_max);
        let since = cal.month - Days::new(rng.random_range(30..=700u64));
        lines.push(make_line(rng, cal, msisdn, None, since, None));
    }

    // A few handset sales in the month, on lines subscribed on the sale date.
    let mut sales = Vec::new();
    let wanted = (lines.len() / 150).max(2);
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].customer.is_some())
        .collect();
    if !candidates.is_empty() {
        for _ in 0..wanted * 10 {
            if sales.len() >= wanted {
                break;
            }
            let l = &lines[*pick(rng, &candidates)];
            let date = cal.date(rng.random_range(1..=cal.days));
            let covered = l
                .subs
                .iter()
                .any(|s| s.start <= date && s.end.is_none_or(|e| date <= e));
            let model =
                ["PHONE_A", "PHONE_A", "PHONE_B", "PHONE_C"][rng.random_range(0..4u32) as usize];
            if covered && l.terminated.is_none_or(|t| date <= t.date()) {
                sales.push(Sale {
                    customer: l.customer.expect("candidate"),
                    msisdn: l.msisdn,
                    model,
                    date,
                });
            }
        }
    }
    sales.sort_by_key(|s| (s.date, s.msisdn));
    World {
        customers: out,
        lines,
        sales,
    }
}

fn random_sub(rng: &mut ChaCha8Rng, start: NaiveDate) -> SubRow {
    let plan = pick_weighted(rng, &PLAN_WEIGHTS);
    let commitment = [0, 0, 12, 24][rng.random_range(0..4u32) as usize];
    let handset = commitment > 0 && rng.random_range(0..100u32) < 35;
    let mut options = 0u8;
    for (i, o) in OPTIONS.iter().enumerate() {
        if rng.random_range(0..1000u32) < o.per_mille {
            options |= 1 << i;
        }
    }
    SubRow {
        plan,
        commitment,
        handset,
        grid: rng.random_range(1..=5u32),
        options,
        start,
        end: None,
    }
}

/// Line index → line kind (see `make_line`): a line starting mid-month, one terminated
/// mid-month, a plan change, a line terminated before the month, a suspended line.
const FORCED_KINDS: [(usize, u32); 5] = [(2, 0), (5, 40), (8, 70), (11, 110), (14, 120)];

/// One line of a customer (or, with `customer` `None`, a line the MVNE knows without
/// subscription); `forced` imposes its kind (a number of 0..1000 as drawn below).
fn make_line(
    rng: &mut ChaCha8Rng,
    cal: &Cal,
    msisdn: u64,
    customer: Option<usize>,
    since: NaiveDate,
    forced: Option<u32>,
) -> Line {
    let span = (cal.month - since).num_days().max(1) as u64;
    let mut start = since + Days::new(rng.random_range(0..span));
    let drawn = rng.random_range(0..1000u32);
    let kind = forced.unwrap_or(drawn);
    let mut terminated = None;
    let mut suspended = None;
    let mut subs = Vec::new();
    let hm = |rng: &mut ChaCha8Rng| (rng.random_range(9..=18u32), rng.random_range(0..60u32));
    if customer.is_some() {
        match kind {
            // Starts mid-month.
            0..=39 => {
                start = cal.date(rng.random_range(2..=cal.days));
                subs.push(random_sub(rng, start));
            }
            // Terminated mid-month: subscription ends the day the MVNE terminates the line.
            40..=69 => {
                let mut s = random_sub(rng, start);
                let d = rng.random_range(1..cal.days);
                let (h, m) = hm(rng);
                terminated = Some(cal.at(d, h, m));
                s.end = Some(cal.date(d));
                subs.push(s);
            }
            // Plan change mid-month: two adjacent rows.
            70..=109 => {
                let mut a = random_sub(rng, start);
                let d = rng.random_range(2..=cal.days);
                a.end = Some(cal.date(d - 1));
                let mut b = a.clone();
                b.plan = (a.plan + rng.random_range(1..4u32) as usize) % PLANS.len();
                b.start = cal.date(d);
                b.end = None;
                subs.push(a);
                subs.push(b);
            }
            // Terminated before the month.
            110..=119 => {
                let mut s = random_sub(rng, start);
                let left = (cal.month - start).num_days().max(1) as u64;
                let end = start + Days::new(rng.random_range(0..left));
                let end = end.min(cal.month - Days::new(1));
                let (h, m) = hm(rng);
                terminated = Some(end.and_hms_opt(h, m, 0).expect("valid time"));
                s.end = Some(end);
                subs.push(s);
            }
            // Suspended mid-month (the subscription runs on).
            120..=129 => {
                let (h, m) = hm(rng);
                suspended = Some(cal.at(rng.random_range(2..=cal.days), h, m));
                subs.push(random_sub(rng, start));
            }
            _ => subs.push(random_sub(rng, start)),
        }
    }
    let (h, m) = hm(rng);
    let activation = start.and_hms_opt(h, m, 0).expect("valid time");
    // A line terminated on its activation day goes an hour after it.
    let terminated = terminated.map(|t| t.max(activation + chrono::Duration::hours(1)));
    let active_from = cal.secs(activation);
    let active_until = terminated.or(suspended).map_or(i64::MAX, |t| cal.secs(t));
    // Traffic per line: light, average, heavy and very heavy users; a line without subscription
    // (a forgotten test or spare SIM) is a light one, so that unbillable traffic stays small.
    let traffic = if customer.is_none() {
        rng.random_range(50..300u64)
    } else {
        [
            rng.random_range(200..600u64),
            rng.random_range(600..1500),
            rng.random_range(1500..4000),
            rng.random_range(4000..12000),
        ][pick_weighted(rng, &[30, 40, 20, 10])]
    };
    Line {
        msisdn,
        customer,
        subs,
        activation,
        terminated,
        suspended,
        traffic,
        active_from,
        active_until,
    }
}

// ---------------------------------------------------------------------------
// Reference tables

const H_PLANS: &str = "plan_code;label;voice_fr_min;sms_fr;mms_fr;data_fr_mb";
const H_PLAN_FEES: &str = "plan_code;commitment_months;with_handset;monthly_fee;valid_from";
const H_OPTIONS: &str = "option_code;label;monthly_fee;monthly_fee_with_handset;allowance_group;allowance_qty;valid_from";
const H_RATE_GRIDS: &str =
    "grid;zone;event_type;price;connect_fee;first_increment;next_increment;valid_from";
const H_DESTINATIONS: &str = "prefix;zone;label";
const H_ROAMING: &str = "mcc;country;roaming_zone";
const H_HANDSETS: &str = "model;plan_code;commitment_months;price;valid_from";
const H_CUSTOMERS: &str = "customer_id;kind;name;address1;address2;postcode;city;country;email;vat_number;siret;payment_method;iban;bic;mandate_rum;mandate_date";
const H_SUBSCRIPTIONS: &str = "msisdn;customer_id;plan_code;commitment_months;with_handset;rate_grid;options;start_date;end_date";
const H_SALES: &str = "sale_id;customer_id;msisdn;model;sale_date";

/// A reference table: `header`, then what `rows` writes.
fn write_table(
    path: PathBuf,
    header: &str,
    rows: impl FnOnce(&mut Csv) -> Result<(), GenError>,
) -> Result<u64, GenError> {
    let mut t = Csv::create(path)?;
    t.header(header)?;
    rows(&mut t)?;
    t.finish()
}

fn write_reference(dir: &Path, world: &World, cal: &Cal) -> Result<u64, GenError> {
    let from = ymd(cal.base_from);
    let mut bytes = 0;

    bytes += write_table(dir.join("plans.csv"), H_PLANS, |t| {
        for p in &PLANS {
            let a = p.allowances;
            t.row(&[p.code, p.label, a[0], a[1], a[2], a[3]])?;
        }
        Ok(())
    })?;

    bytes += write_table(dir.join("plan_fees.csv"), H_PLAN_FEES, |t| {
        for p in &PLANS {
            for c in [0u64, 12, 24] {
                for h in [false, true] {
                    let fee = p.fee - c / 12 * 100 + if h { 1000 } else { 0 };
                    t.row(&[
                        p.code,
                        &c.to_string(),
                        &h.to_string(),
                        &decimal(fee, 2, '.'),
                        &from,
                    ])?;
                }
            }
        }
        // Versioned rows: a fee change from the month's first day, and one after it.
        t.row(&["ILL20", "0", "false", "15.99", &ymd(cal.month)])?;
        t.row(&[
            "ILL100",
            "0",
            "false",
            "29.99",
            &ymd(cal.last() + Days::new(10)),
        ])
    })?;

    bytes += write_table(dir.join("options.csv"), H_OPTIONS, |t| {
        for o in &OPTIONS {
            let with = o
                .fee_with_handset
                .map(|v| decimal(v, 2, '.'))
                .unwrap_or_default();
            t.row(&[
                o.code,
                o.label,
                &decimal(o.fee, 2, '.'),
                &with,
                o.group,
                o.qty,
                &from,
            ])?;
        }
        Ok(())
    })?;

    bytes += write_table(dir.join("rate_grids.csv"), H_RATE_GRIDS, |t| {
        rate_grids(cal, t)
    })?;

    bytes += write_table(dir.join("destinations.csv"), H_DESTINATIONS, |t| {
        for d in &DESTINATIONS {
            t.row(&[d.0, d.1, d.2])?;
        }
        Ok(())
    })?;

    bytes += write_table(dir.join("roaming_zones.csv"), H_ROAMING, |t| {
        for r in &ROAMING_ZONES {
            t.row(&[r.0, r.1, r.2])?;
        }
        Ok(())
    })?;

    bytes += write_table(dir.join("handsets.csv"), H_HANDSETS, |t| {
        for h in &HANDSETS {
            t.row(&[h.0, h.1, h.2, &decimal(h.3, 2, '.'), &from])?;
        }
        Ok(())
    })?;

    bytes += write_table(dir.join("customers.csv"), H_CUSTOMERS, |t| {
        for c in &world.customers {
            let (pm, iban, bic, rum, date) = match &c.sepa {
                Some(s) => (
                    "SEPA_DD",
                    s.iban.as_str(),
                    s.bic,
                    s.rum.as_str(),
                    ymd(s.mandate),
                ),
                None => ("TRANSFER", "", "", "", String::new()),
            };
            let kind = if c.b2b { "B2B" } else { "B2C" };
            t.row(&[
                &c.id,
                kind,
                &c.name,
                &c.address1,
                &c.address2,
                c.city.0,
                c.city.1,
                "FR",
                &c.email,
                &c.vat,
                &c.siret,
                pm,
                iban,
                bic,
                rum,
                &date,
            ])?;
        }
        Ok(())
    })?;

    // The options field lists codes separated by `,`, in quotes
    // (formats.md: "quoted field"). csv quotes a field holding the
    // comment character: with `,` that is the options of several codes,
    // no other field of the table holds one.
    let mut t = Csv::with(
        dir.join("subscriptions.csv"),
        csv::WriterBuilder::new().comment(Some(b',')),
        false,
    )?;
    t.header(H_SUBSCRIPTIONS)?;
    for l in &world.lines {
        let Some(c) = l.customer else { continue };
        let msisdn = l.msisdn.to_string();
        for s in &l.subs {
            let opts: Vec<&str> = OPTIONS
                .iter()
                .enumerate()
                .filter(|(i, _)| s.options & (1 << i) != 0)
                .map(|(_, o)| o.code)
                .collect();
            t.row(&[
                &msisdn,
                &world.customers[c].id,
                PLANS[s.plan].code,
                &s.commitment.to_string(),
                &s.handset.to_string(),
                &s.grid.to_string(),
                &opts.join(","),
                &ymd(s.start),
                &s.end.map(ymd).unwrap_or_default(),
            ])?;
        }
    }
    bytes += t.finish()?;

    bytes += write_table(dir.join("handset_sales.csv"), H_SALES, |t| {
        for (i, s) in world.sales.iter().enumerate() {
            t.row(&[
                &format!("S{}{:04}", cal.yyyymm, i + 1),
                &world.customers[s.customer].id,
                &s.msisdn.to_string(),
                s.model,
                &ymd(s.date),
            ])?;
        }
        Ok(())
    })?;
    Ok(bytes)
}

/// The rows of `rate_grids.csv`.
fn rate_grids(cal: &Cal, t: &mut Csv) -> Result<(), GenError> {
    let from = ymd(cal.base_from);
    let price = |base: u64, pct: u64| decimal(base * pct / 100, 4, '.');
    let cents = |c: u64| {
        if c == 0 {
            String::new()
        } else {
            decimal(c, 2, '.')
        }
    };
    for (g, &(pct, (vf, vn), (df, dn))) in GRIDS.iter().enumerate() {
        let g = (g + 1).to_string();
        let (vf, vn, df, dn) = (
            vf.to_string(),
            vn.to_string(),
            df.to_string(),
            dn.to_string(),
        );
        for (z, zone) in DOMESTIC_ZONES.iter().enumerate() {
            let (p, cf) = VOICE_BASE[z];
            t.row(&[
                &g,
                zone,
                "VOICE",
                &price(p, pct),
                &cents(cf),
                &vf,
                &vn,
                &from,
            ])?;
        }
        for (z, zone) in DOMESTIC_ZONES.iter().enumerate() {
            t.row(&[&g, zone, "SMS", &price(SMS_BASE[z], pct), "", "", "", &from])?;
            t.row(&[&g, zone, "MMS", &price(MMS_BASE[z], pct), "", "", "", &from])?;
        }
        t.row(&[
            &g,
            "HOME",
            "DATA",
            &price(HOME_DATA_BASE, pct),
            "",
            &df,
            &dn,
            &from,
        ])?;
        for (z, zone) in ROAM_ZONES.iter().enumerate() {
            let b = ROAM_BASE[z];
            t.row(&[
                &g,
                zone,
                "VOICE",
                &price(b[0], pct),
                &cents(b[1]),
                &vf,
                &vn,
                &from,
            ])?;
            t.row(&[&g, zone, "VOICE_IN", &price(b[2], pct), "", &vf, &vn, &from])?;
            t.row(&[&g, zone, "SMS", &price(b[3], pct), "", "", "", &from])?;
            t.row(&[&g, zone, "SMS_IN", &price(b[4], pct), "", "", "", &from])?;
            t.row(&[&g, zone, "MMS", &price(b[5], pct), "", "", "", &from])?;
            t.row(&[&g, zone, "DATA", &price(b[6], pct), "", &df, &dn, &from])?;
        }
    }
    // A mid-month price change on grid 1.
    t.row(&[
        "1",
        "FR_MOBILE",
        "VOICE",
        "0.0900",
        "",
        "60",
        "60",
        &ymd(cal.date(15)),
    ])
}

// ---------------------------------------------------------------------------
// AccountStatus and SIM order

fn business_day(cal: &Cal, from: u32, step_back: bool) -> u32 {
    let mut d = from;
    while cal.date(d).weekday() == Weekday::Sun {
        if step_back {
            d -= 1;
        } else {
            d += 1;
        }
    }
    d
}

fn write_account_status(
    dir: &Path,
    world: &World,
    cal: &Cal,
    rng: &mut ChaCha8Rng,
) -> Result<u64, GenError> {
    let snapshots = [
        (business_day(cal, 3, false), 10),
        (business_day(cal, 16, false), 11),
        (business_day(cal, cal.days, true), 12),
    ];
    let mut bytes = 0;
    for (d, h) in snapshots {
        let at = cal.at(d, h, 0);
        let bom = rng.random_range(0..2u32) == 1;
        let crlf = rng.random_range(0..2u32) == 1;
        let mut out = Csv::delivery(
            dir.join(format!(
                "AccountStatus_{}_{h:02}.csv",
                cal.date(d).format("%Y%m%d")
            )),
            bom,
            crlf,
        )?;
        out.header("msisdn;iccid;imsi;status;status_since;activation_date")?;
        for l in world.lines.iter().filter(|l| l.activation <= at) {
            let (status, since) = match (l.terminated, l.suspended) {
                (Some(x), _) if x <= at => ("TERMINATED", x),
                (_, Some(x)) if x <= at => ("SUSPENDED", x),
                _ => ("ACTIVE", l.activation),
            };
            let tail = l.msisdn % 1_000_000_000;
            out.row(&[
                &l.msisdn.to_string(),
                &format!("89330000000{tail:09}"),
                &format!("208010{tail:09}"),
                status,
                &dmy_hms(since),
                &dmy(l.activation.date()),
            ])?;
        }
        bytes += out.finish()?;
    }
    Ok(bytes)
}

fn write_sim_order(
    dir: &Path,
    world: &World,
    cal: &Cal,
    rng: &mut ChaCha8Rng,
) -> Result<u64, GenError> {
    let order = format!("CMD{}", cal.yyyymm);
    let mut out = Csv::create(dir.join(format!("SIM_{order}.csv")))?;
    out.header("order_id;iccid;imsi;msisdn;puk1;puk2;delivered_on")?;
    for l in &world.lines {
        let tail = l.msisdn % 1_000_000_000;
        let delivered = l.activation.date() - Days::new(rng.random_range(0..=7u64));
        let (p1, p2) = (
            rng.random_range(0..100_000_000u32),
            rng.random_range(0..100_000_000u32),
        );
        out.row(&[
            &order,
            &format!("89330000000{tail:09}"),
            &format!("208010{tail:09}"),
            &l.msisdn.to_string(),
            &format!("{p1:08}"),
            &format!("{p2:08}"),
            &dmy(delivered),
        ])?;
    }
    // Three generic SIMs, not yet assigned to a number.
    for i in 1..=3u32 {
        let (p1, p2) = (
            rng.random_range(0..100_000_000u32),
            rng.random_range(0..100_000_000u32),
        );
        out.row(&[
            &order,
            &format!("8933000000199{i:07}"),
            &format!("20801999{i:07}"),
            "",
            &format!("{p1:08}"),
            &format!("{p2:08}"),
            &dmy(cal.date(1)),
        ])?;
    }
    out.finish()
}

// ---------------------------------------------------------------------------
// CDRs

const VOICE: u8 = 0;
const VOICE_IN: u8 = 1;
const SMS: u8 = 2;
const SMS_IN: u8 = 3;
const MMS: u8 = 4;
const DATA: u8 = 5;
const EVENT_NAMES: [&str; 6] = ["VOICE", "VOICE_IN", "SMS", "SMS_IN", "MMS", "DATA"];
/// Event mix in %: 35 VOICE, 15 VOICE_IN, 20 SMS, 8 SMS_IN, 2 MMS, 20 DATA.
const EVENT_WEIGHTS: [u32; 6] = [35, 15, 20, 8, 2, 20];

// Network contexts.
const HOME: usize = 0;
const EU: usize = 1;
const HOME_NETS: [&str; 4] = ["20801", "20810", "20815", "20820"];
const EU_NETS: [&str; 20] = [
    "20601", "20610", "21401", "21407", "22201", "22210", "26201", "26202", "26801", "20404",
    "27201", "27001", "23201", "20201", "26001", "24001", "23801", "24201", "34001", "64710",
];
/// Outside the EU: network and context (2, 3, 4 = ROAM_Z1..Z3). MCC 525 is deliberately not in
/// roaming_zones.csv (an unlisted MCC is ROAM_Z3, which every grid prices).
const WORLD_NETS: [(&str, usize); 16] = [
    ("22801", 2),
    ("23410", 2),
    ("23415", 2),
    ("21303", 2),
    ("310260", 3),
    ("311480", 3),
    ("302720", 3),
    ("60400", 3),
    ("60301", 3),
    ("60502", 3),
    ("46000", 4),
    ("44010", 4),
    ("72405", 4),
    ("60801", 4),
    ("61203", 4),
    ("52501", 4),
];

// Called-number classes (indices into DOMESTIC_ZONES, plus two).
const Z_FR_MOBILE: usize = 0;
const Z_FR_FIXED: usize = 1;
const Z_FR_SPECIAL: usize = 2;
const Z_FR_SHORT: usize = 3;
const Z_DOM: usize = 4;
const Z_EU: usize = 5;
const Z_EUROPE_OTHER: usize = 6;
const Z_NORTH_AMERICA: usize = 7;
const Z_MAGHREB: usize = 8;
const Z_WORLD: usize = 9;
/// Longer than 6 digits, no prefix of destinations.csv.
const Z_UNKNOWN: usize = 10;
/// No number (hidden caller).
const Z_NONE: usize = 11;

/// Prefixes and total length of the numbers of each class.
const NUMBER_PLANS: [&[(&str, u32)]; 11] = [
    &[("336", 11), ("337", 11)],
    &[
        ("331", 11),
        ("332", 11),
        ("333", 11),
        ("334", 11),
        ("335", 11),
        ("339", 11),
    ],
    &[("338", 11)],
    &[],
    &[("262", 12), ("590", 12), ("594", 12), ("596", 12)],
    &[
        ("32", 11),
        ("34", 11),
        ("39", 12),
        ("49", 12),
        ("351", 12),
        ("352", 11),
        ("31", 11),
        ("353", 12),
    ],
    &[("41", 11), ("44", 12), ("377", 11)],
    &[("1", 11)],
    &[("212", 12), ("213", 12), ("216", 11)],
    &[
        ("86", 13),
        ("81", 12),
        ("55", 13),
        ("221", 12),
        ("225", 13),
        ("237", 12),
    ],
    &[("7", 11), ("90", 12), ("972", 12), ("61", 11), ("91", 12)],
];
const SHORT_VOICE: [&str; 8] = [
    "3179", "118712", "3639", "3900", "3949", "118218", "3646", "3904",
];
const SHORT_SMS: [&str; 6] = ["36180", "38100", "3179", "36665", "71010", "38200"];

/// Called-number mix per 10 000 events: (weight, class).
const VOICE_DEST: [(u32, usize); 11] = [
    (10, Z_UNKNOWN),
    (5800, Z_FR_MOBILE),
    (2500, Z_FR_FIXED),
    (200, Z_FR_SPECIAL),
    (300, Z_FR_SHORT),
    (150, Z_DOM),
    (500, Z_EU),
    (150, Z_EUROPE_OTHER),
    (130, Z_NORTH_AMERICA),
    (160, Z_MAGHREB),
    (100, Z_WORLD),
];
const SMS_DEST: [(u32, usize); 9] = [
    (10, Z_UNKNOWN),
    (9300, Z_FR_MOBILE),
    (300, Z_FR_SHORT),
    (80, Z_DOM),
    (200, Z_EU),
    (40, Z_EUROPE_OTHER),
    (30, Z_NORTH_AMERICA),
    (30, Z_MAGHREB),
    (10, Z_WORLD),
];
const MMS_DEST: [(u32, usize); 6] = [
    (10, Z_UNKNOWN),
    (9600, Z_FR_MOBILE),
    (100, Z_FR_SHORT),
    (50, Z_DOM),
    (200, Z_EU),
    (40, Z_EUROPE_OTHER),
];
const VOICE_IN_FROM: [(u32, usize); 9] = [
    (300, Z_NONE),
    (6400, Z_FR_MOBILE),
    (2500, Z_FR_FIXED),
    (100, Z_FR_SPECIAL),
    (350, Z_EU),
    (100, Z_EUROPE_OTHER),
    (50, Z_NORTH_AMERICA),
    (150, Z_MAGHREB),
    (50, Z_WORLD),
];
const SMS_IN_FROM: [(u32, usize); 5] = [
    (8500, Z_FR_MOBILE),
    (1200, Z_FR_SHORT),
    (200, Z_EU),
    (50, Z_MAGHREB),
    (50, Z_WORLD),
];

/// Wholesale of an outgoing call at home, per minute, by called-number class (1/10000 €).
const WS_VOICE_DEST: [u64; 11] = [60, 40, 300, 150, 120, 150, 800, 400, 1800, 3000, 2000];
/// Per context (HOME, EU, Z1, Z2, Z3), 1/10000 €: roaming surcharge (EU) or price (outside the
/// EU) of an outgoing call per minute, incoming call per minute, SMS and MMS per message, data
/// per MB.
const WS_VOICE_ROAM: [u64; 5] = [0, 190, 2500, 6000, 12000];
const WS_VOICE_IN: [u64; 5] = [0, 20, 800, 2000, 5000];
const WS_SMS_ROAM: [u64; 5] = [0, 30, 500, 1500, 3000];
const WS_MMS_ROAM: [u64; 5] = [0, 0, 1500, 4000, 8000];
const WS_DATA_MB: [u64; 5] = [8, 18, 2000, 5000, 15000];

/// Duration (s) and volume (KB) buckets: (weight, low, high exclusive).
const CALL_SECONDS: [(u32, u64, u64); 9] = [
    (8, 0, 1),
    (9, 1, 10),
    (11, 10, 30),
    (14, 30, 60),
    (19, 60, 120),
    (18, 120, 300),
    (12, 300, 600),
    (7, 600, 1800),
    (2, 1800, 5400),
];
const DATA_KB: [(u32, u64, u64); 7] = [
    (2, 0, 1),
    (20, 1, 100),
    (25, 100, 1024),
    (25, 1024, 10240),
    (17, 10240, 51200),
    (8, 51200, 204800),
    (3, 204800, 819200),
];
const ROAM_DATA_KB: [(u32, u64, u64); 4] =
    [(2, 0, 1), (40, 1, 100), (40, 100, 1024), (18, 1024, 20480)];
/// Traffic by local hour of day (relative).
const DIURNAL: [u64; 24] = [
    4, 2, 1, 1, 1, 2, 4, 10, 18, 24, 27, 28, 28, 27, 26, 26, 27, 28, 28, 26, 22, 17, 12, 7,
];

/// Malformed row kinds: impossible date, unknown event type, negative duration, non-numeric
/// volume, SMS without units.
const MALFORMED_TYPES: [u8; 5] = [VOICE, VOICE, VOICE, DATA, SMS];

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick_class(rng: &mut ChaCha8Rng, table: &[(u32, usize)]) -> usize {
    let total: u32 = table.iter().map(|t| t.0).sum();
    let mut r = rng.random_range(0..total);
    for &(w, c) in table {
        if r < w {
            return c;
        }
        r -= w;
    }
    table[table.len() - 1].1
}

fn pick_bucket(rng: &mut ChaCha8Rng, table: &[(u32, u64, u64)]) -> u64 {
    let total: u32 = table.iter().map(|t| t.0).sum();
    let mut r = rng.random_range(0..total);
    for &(w, lo, hi) in table {
        if r < w {
            return rng.random_range(lo..hi);
        }
        r -= w;
    }
    0
}

/// One RatedCDRs delivery: file name and the hour (since `Cal::base`) up to which it holds events.
struct Delivery {
    name: String,
    cut_hour: u32,
}

/// The name of a RatedCDRs delivery on `date` at `sod` seconds of the day.
fn rated_name(date: NaiveDate, sod: u32) -> String {
    format!(
        "RatedCDRs_{}_{:02}{:02}{:02}.csv",
        date.format("%Y%m%d"),
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Claims a delivery name among those of the months generated so far: a name
/// already written (the previous month's catch-up file and this month's first
/// file can fall on the same second) goes one second later.
fn claim(names: &mut std::collections::HashSet<String>, name: String) -> String {
    let mut name = name;
    while names.contains(&name) {
        // RatedCDRs_YYYYMMDD_HHMMSS.csv
        let date = NaiveDate::parse_from_str(&name[10..18], "%Y%m%d").expect("our own name");
        let t: u32 = name[19..25].parse().expect("our own name");
        let sod = t / 10_000 * 3600 + t / 100 % 100 * 60 + t % 100 + 1;
        name = rated_name(date, sod);
    }
    names.insert(name.clone());
    name
}

/// Monday to Saturday, 2 to 6 files a day between 08:00 and 20:00, each with the events started
/// up to the hour before the previous full hour; one catch-up file on the first delivery day after
/// the month with the rest of the window.
fn deliveries(rng: &mut ChaCha8Rng, cal: &Cal) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut d = 1u32;
    loop {
        let date = cal.date(d);
        if date.weekday() != Weekday::Sun {
            let name = |h: u32, m: u32, s: u32| {
                format!("RatedCDRs_{}_{h:02}{m:02}{s:02}.csv", date.format("%Y%m%d"))
            };
            if d > cal.days {
                let (m, s) = (rng.random_range(0..60u32), rng.random_range(0..60u32));
                out.push(Delivery {
                    name: name(8, m, s),
                    cut_hour: cal.end_hour,
                });
                break;
            }
            let k = rng.random_range(2..=6u32) as usize;
            let mut hours: Vec<u32> = (8..20).collect();
            for i in 0..k {
                let j = rng.random_range(i as u32..hours.len() as u32) as usize;
                hours.swap(i, j);
            }
            let mut chosen = hours[..k].to_vec();
            chosen.sort_unstable();
            for h in chosen {
                let (m, s) = (rng.random_range(0..60u32), rng.random_range(0..60u32));
                out.push(Delivery {
                    name: name(h, m, s),
                    cut_hour: d * 24 + h - 1,
                });
            }
        }
        d += 1;
    }
    out
}

/// Cumulative event weight of the hours before each hour (index: hours since `Cal::base`).
fn hour_weights(cal: &Cal) -> Vec<u64> {
    let mut cum = Vec::with_capacity(cal.end_hour as usize + 1);
    let mut acc = 0u64;
    for h in 0..cal.end_hour {
        cum.push(acc);
        if h < cal.start_hour {
            continue;
        }
        let dt = cal.base + chrono::Duration::hours(i64::from(h));
        let day_factor = if dt.weekday() == Weekday::Sun { 8 } else { 10 };
        let dst = match chrono_tz::Europe::Paris.from_local_datetime(&dt) {
            LocalResult::None => 0,
            LocalResult::Single(_) => 1,
            LocalResult::Ambiguous(..) => 2,
        };
        acc += DIURNAL[(h % 24) as usize] * day_factor * dst;
    }
    cum.push(acc);
    cum
}

struct CdrTotals {
    rows: u64,
    files: u32,
    bytes: u64,
    /// Rows written to the late file.
    late: u64,
}

/// Streams the month's events into the RatedCDRs files and the BilledCDRs file.
struct CdrGen<'a> {
    cal: &'a Cal,
    lines: &'a [Line],
    /// Seconds from the first month's `Cal::base` to this month's (the lines'
    /// times count from the former).
    offset: i64,
    /// Each line's weight in this month's window (0: not active in it).
    weights: Vec<u64>,
    cum_weight: Vec<u64>,
    total_weight: u64,
    roam_seed: u64,
    /// `DD/MM/YYYY ` of each day index.
    day_str: Vec<[u8; 11]>,
    /// The row built last, one field after the other in `field`.
    record: csv::ByteRecord,
    field: Vec<u8>,
}

impl CdrGen<'_> {
    fn pick_line(&self, rng: &mut ChaCha8Rng, t: i64) -> usize {
        let t = t + self.offset;
        let mut idx = 0;
        for _ in 0..8 {
            let r = rng.random_range(0..self.total_weight);
            idx = self.cum_weight.partition_point(|&c| c <= r);
            let l = &self.lines[idx];
            if l.active_from <= t && t < l.active_until {
                return idx;
            }
        }
        // Rare: scan on for an active line (deterministic).
        for k in 1..self.lines.len() {
            let i = (idx + k) % self.lines.len();
            let l = &self.lines[i];
            if self.weights[i] > 0 && l.active_from <= t && t < l.active_until {
                return i;
            }
        }
        idx
    }

    /// Builds one row in `record` at `t` seconds since `Cal::base`; returns whether the
    /// event is in the month, its wholesale in 1/10000 € and whether it happened on a
    /// network outside France and the EU.
    fn build_row(
        &mut self,
        rng: &mut ChaCha8Rng,
        t: u32,
        id: u64,
        malformed: Option<usize>,
    ) -> (bool, u64, bool) {
        let li = self.pick_line(rng, i64::from(t));
        let msisdn = self.lines[li].msisdn;
        let day = t / 86_400;
        let sod = t % 86_400;
        let h = splitmix64(self.roam_seed ^ ((li as u64) << 20) ^ u64::from(day));
        let r = h % 10_000;
        let sel = (h >> 32) as usize;
        let (net, ctx) = if r < 9_700 {
            (HOME_NETS[sel % HOME_NETS.len()], HOME)
        } else if r < 9_900 {
            (EU_NETS[sel % EU_NETS.len()], EU)
        } else {
            WORLD_NETS[sel % WORLD_NETS.len()]
        };
        let ev = match malformed {
            Some(k) => MALFORMED_TYPES[k],
            None => pick_weighted(rng, &EVENT_WEIGHTS) as u8,
        };
        let roaming = ctx > EU;

        let (record, f) = (&mut self.record, &mut self.field);
        record.clear();
        // cdr_id
        f.clear();
        f.push(b'R');
        f.extend_from_slice(self.cal.yyyymm.as_bytes());
        push_padded(f, id, 9);
        record.push_field(f);
        // msisdn, imsi, event_type
        f.clear();
        push_u64(f, msisdn);
        record.push_field(f);
        f.clear();
        f.extend_from_slice(b"208010");
        push_padded(f, msisdn % 1_000_000_000, 9);
        record.push_field(f);
        record.push_field(if malformed == Some(1) {
            b"VOIX"
        } else {
            EVENT_NAMES[ev as usize].as_bytes()
        });
        // start_time
        f.clear();
        if malformed == Some(0) {
            f.extend_from_slice(b"30/02/");
            f.extend_from_slice(&self.day_str[day as usize][6..11]);
        } else {
            f.extend_from_slice(&self.day_str[day as usize]);
        }
        push_padded(f, u64::from(sod / 3600), 2);
        f.push(b':');
        push_padded(f, u64::from(sod / 60 % 60), 2);
        f.push(b':');
        push_padded(f, u64::from(sod % 60), 2);
        record.push_field(f);

        // called_number, duration_s, volume_kb, units
        let wholesale = match ev {
            VOICE | VOICE_IN => {
                let class = pick_class(
                    rng,
                    if ev == VOICE {
                        &VOICE_DEST
                    } else {
                        &VOICE_IN_FROM
                    },
                );
                f.clear();
                push_number(f, rng, class, ev);
                record.push_field(f);
                let mut d = pick_bucket(rng, &CALL_SECONDS);
                let per_min = if ev == VOICE_IN {
                    WS_VOICE_IN[ctx]
                } else if roaming {
                    WS_VOICE_ROAM[ctx]
                } else {
                    WS_VOICE_DEST[class] + WS_VOICE_ROAM[ctx]
                };
                f.clear();
                if malformed == Some(2) {
                    d = d.max(7);
                    f.push(b'-');
                }
                push_u64(f, d);
                record.push_field(f);
                record.push_field(b"");
                record.push_field(b"");
                (d * per_min).div_ceil(60)
            }
            SMS | SMS_IN | MMS => {
                let table: &[(u32, usize)] = match ev {
                    SMS => &SMS_DEST,
                    SMS_IN => &SMS_IN_FROM,
                    _ => &MMS_DEST,
                };
                let class = pick_class(rng, table);
                f.clear();
                push_number(f, rng, class, ev);
                record.push_field(f);
                let units = if ev == MMS {
                    1
                } else {
                    1 + pick_weighted(rng, &[85, 10, 4, 1]) as u64
                };
                let international = class >= Z_DOM;
                let per_unit = match ev {
                    SMS_IN => 0,
                    SMS if roaming => WS_SMS_ROAM[ctx],
                    SMS => {
                        WS_SMS_ROAM[ctx]
                            + if international || class == Z_FR_SHORT {
                                300
                            } else {
                                10
                            }
                    }
                    _ if roaming => WS_MMS_ROAM[ctx],
                    _ => {
                        if international {
                            500
                        } else {
                            50
                        }
                    }
                };
                record.push_field(b"");
                record.push_field(b"");
                f.clear();
                if malformed != Some(4) {
                    push_u64(f, units);
                }
                record.push_field(f);
                units * per_unit
            }
            _ => {
                let kb = pick_bucket(rng, if roaming { &ROAM_DATA_KB } else { &DATA_KB });
                record.push_field(b"");
                record.push_field(b"");
                f.clear();
                if malformed == Some(3) {
                    push_u64(f, kb / 100 + 1);
                    f.push(b'O');
                    push_u64(f, kb % 100);
                } else {
                    push_u64(f, kb);
                }
                record.push_field(f);
                record.push_field(b"");
                (kb * WS_DATA_MB[ctx]).div_ceil(1024)
            }
        };
        // visited_mccmnc, wholesale_eur
        record.push_field(net.as_bytes());
        f.clear();
        push_wholesale(f, wholesale);
        record.push_field(f);
        ((1..=self.cal.days).contains(&day), wholesale, roaming)
    }
}

/// A called number of `class` for an event `ev`, appended to `field`.
fn push_number(field: &mut Vec<u8>, rng: &mut ChaCha8Rng, class: usize, ev: u8) {
    match class {
        Z_NONE => {}
        Z_FR_SHORT => {
            let s = if ev == SMS || ev == SMS_IN || ev == MMS {
                *pick(rng, &SHORT_SMS)
            } else {
                *pick(rng, &SHORT_VOICE)
            };
            field.extend_from_slice(s.as_bytes());
        }
        _ => {
            let (prefix, len) = *pick(rng, NUMBER_PLANS[class]);
            field.extend_from_slice(prefix.as_bytes());
            let digits = len as usize - prefix.len();
            push_padded(field, rng.random_range(0..10u64.pow(digits as u32)), digits);
        }
    }
}

fn push_wholesale(field: &mut Vec<u8>, v: u64) {
    push_u64(field, v / 10_000);
    field.push(b',');
    push_padded(field, v % 10_000, 4);
}

const CDR_HEADER: &str = "cdr_id;msisdn;imsi;event_type;start_time;called_number;duration_s;volume_kb;units;visited_mccmnc;wholesale_eur";

/// What the months' CDR streams share: the RatedCDRs names written so far,
/// and the events a month wrote in the next month's first hour (they belong
/// in the next month's BilledCDRs).
#[derive(Default)]
struct Across {
    names: std::collections::HashSet<String>,
    carry: Vec<csv::ByteRecord>,
}

/// One month of CDRs to write.
struct MonthPlan<'a> {
    cal: &'a Cal,
    /// 0 for the first generated month.
    index: u32,
    /// Seconds from the first month's `Cal::base` to this month's.
    offset: i64,
    /// Whether a share of the month's roaming events goes to a late file
    /// (`--months` above 1).
    late: bool,
    /// Whether the next month is generated too.
    next: bool,
}

/// Per 100 in-month events on a network outside France and the EU, those
/// delivered late (in the month's late file).
const LATE_PERCENT: u64 = 50;

fn write_cdrs(
    ftp: &Path,
    world: &World,
    plan: &MonthPlan,
    n: u64,
    seed: u64,
    rng: &mut ChaCha8Rng,
    across: &mut Across,
) -> Result<CdrTotals, GenError> {
    let cal = plan.cal;
    let deliveries: Vec<Delivery> = deliveries(rng, cal)
        .into_iter()
        .map(|d| Delivery {
            name: claim(&mut across.names, d.name),
            cut_hour: d.cut_hour,
        })
        .collect();
    let hcum = hour_weights(cal);
    let w_total = hcum[cal.end_hour as usize].max(1);
    let count_before =
        |h: u32| (u128::from(n) * u128::from(hcum[h as usize]) / u128::from(w_total)) as u64;

    // A line weighs its traffic in the months it is active in.
    let window = (
        i64::from(cal.start_hour) * 3600 + plan.offset,
        i64::from(cal.end_hour) * 3600 + plan.offset,
    );
    let weights: Vec<u64> = world
        .lines
        .iter()
        .map(|l| {
            if l.active_until <= window.0 || l.active_from >= window.1 {
                0
            } else {
                l.traffic
            }
        })
        .collect();
    let mut cum_weight = Vec::with_capacity(world.lines.len());
    let mut acc = 0u64;
    for w in &weights {
        acc += w;
        cum_weight.push(acc);
    }
    let day_str = (0..=cal.days + 1)
        .map(|d| {
            let mut b = [0u8; 11];
            b.copy_from_slice(format!("{} ", dmy(cal.date(d))).as_bytes());
            b
        })
        .collect();
    let roam_seed = splitmix64(seed ^ 0x0A0A_0B0B_0C0C_0D0D);
    let mut g = CdrGen {
        cal,
        lines: &world.lines,
        offset: plan.offset,
        weights,
        cum_weight,
        total_weight: acc,
        roam_seed: match plan.index {
            0 => roam_seed,
            k => splitmix64(roam_seed ^ u64::from(k)),
        },
        day_str,
        record: csv::ByteRecord::with_capacity(256, 11),
        field: Vec::with_capacity(64),
    };
    let n = if acc == 0 { 0 } else { n };

    // The late file: 4 to 6 days after the month (a Sunday's waits for Monday),
    // between 08:00 and 20:00.
    let late_seed = splitmix64(seed ^ 0x1A7E_DE11_7E12_0000 ^ u64::from(plan.index));
    let late_name = plan.late.then(|| {
        let mut date = cal.last() + Days::new(4 + late_seed % 3);
        if date.weekday() == Weekday::Sun {
            date = date + Days::new(1);
        }
        let sod = (8 + (late_seed >> 8) % 12) * 3600 + (late_seed >> 16) % 3600;
        claim(&mut across.names, rated_name(date, sod as u32))
    });
    let mut late_out: Option<Csv> = None;

    // Mess: malformed rows (at least one of each kind), re-deliveries, billing deviations.
    let malformed_target = if n >= 1000 {
        (n / 10_000).max(5)
    } else {
        n / 200
    };
    let malformed_every = n.checked_div(malformed_target).unwrap_or(u64::MAX);
    let redeliver_target = if n >= 100 { (n / 100_000).max(3) } else { 0 };
    let redeliver_every = n.checked_div(redeliver_target).unwrap_or(u64::MAX);
    let (missing_at, amount_at) = if n >= 10 {
        (n / 2, n / 3)
    } else {
        (u64::MAX, u64::MAX)
    };

    let mut billed = Csv::create(ftp.join(format!("BilledCDRs/BilledCDRs_{}.csv", cal.yyyymm)))?;
    billed.header(CDR_HEADER)?;
    // The previous month's events of this month's first hour.
    for record in std::mem::take(&mut across.carry) {
        billed.record(&record)?;
    }

    let mut totals = CdrTotals {
        rows: 0,
        files: 0,
        bytes: 0,
        late: 0,
    };
    let mut next_id = 1u64;
    let mut good = 0u64;
    let mut month_events = 0u64;
    let mut malformed_done = 0u64;
    let mut pending: Vec<csv::ByteRecord> = Vec::new();
    let mut times: Vec<u32> = Vec::new();
    let mut hour = cal.start_hour;
    for dlv in &deliveries {
        let bom = rng.random_range(0..2u32) == 1;
        let crlf = rng.random_range(0..2u32) == 1;
        let mut out = Csv::delivery(ftp.join("RatedCDRs").join(&dlv.name), bom, crlf)?;
        out.header(CDR_HEADER)?;
        let redeliver_now = std::mem::take(&mut pending);
        while hour < dlv.cut_hour {
            let k = count_before(hour + 1) - count_before(hour);
            times.clear();
            times.extend((0..k).map(|_| rng.random_range(0..3600u32)));
            times.sort_unstable();
            for &s in &times {
                let t = hour * 3600 + s;
                if malformed_done < malformed_target
                    && good % malformed_every == malformed_every / 2
                {
                    let kind = (malformed_done % MALFORMED_TYPES.len() as u64) as usize;
                    g.build_row(rng, t, next_id, Some(kind));
                    next_id += 1;
                    malformed_done += 1;
                    out.record(&g.record)?;
                    totals.rows += 1;
                }
                let id = next_id;
                let (in_month, wholesale, roaming) = g.build_row(rng, t, id, None);
                next_id += 1;
                let late = in_month
                    && roaming
                    && splitmix64(late_seed ^ id) % 100 < LATE_PERCENT
                    && late_name.is_some();
                match (&late_name, late) {
                    (Some(name), true) => {
                        if late_out.is_none() {
                            let h = splitmix64(late_seed ^ 0xF11E);
                            let mut file = Csv::delivery(
                                ftp.join("RatedCDRs").join(name),
                                h & 1 == 1,
                                h & 2 == 2,
                            )?;
                            file.header(CDR_HEADER)?;
                            late_out = Some(file);
                        }
                        if let Some(file) = late_out.as_mut() {
                            file.record(&g.record)?;
                        }
                        totals.late += 1;
                    }
                    _ => out.record(&g.record)?,
                }
                totals.rows += 1;
                if in_month {
                    if month_events == amount_at {
                        // The same event at another amount.
                        let fields = g.record.len() - 1;
                        let mut other: csv::ByteRecord = g.record.iter().take(fields).collect();
                        let mut amount = Vec::with_capacity(16);
                        push_wholesale(&mut amount, wholesale + 125);
                        other.push_field(&amount);
                        billed.record(&other)?;
                    } else if month_events != missing_at {
                        billed.record(&g.record)?;
                    }
                    month_events += 1;
                } else if plan.next && t / 86_400 > cal.days {
                    across.carry.push(g.record.clone());
                }
                if !late && good % redeliver_every == redeliver_every / 3 {
                    pending.push(g.record.clone());
                }
                good += 1;
            }
            hour += 1;
        }
        for record in &redeliver_now {
            out.record(record)?;
            totals.rows += 1;
        }
        totals.bytes += out.finish()?;
        totals.files += 1;
    }
    if let Some(file) = late_out {
        totals.bytes += file.finish()?;
        totals.files += 1;
    }
    // One event billed by the MVNE that was never delivered.
    if n > 0 {
        g.build_row(rng, 15 * 86_400 + 12 * 3600, 999_999_999, None);
        billed.record(&g.record)?;
    }
    totals.bytes += billed.finish()?;
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn options(customers: u32, cdrs: u64) -> GenOptions {
        GenOptions {
            month: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            customers,
            cdrs,
            seed: 7,
            months: 1,
        }
    }

    fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.insert(
                        p.strip_prefix(root).unwrap().display().to_string(),
                        fs::read(&p).unwrap(),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    fn strip(line: &str) -> &str {
        line.trim_start_matches('\u{feff}').trim_end_matches('\r')
    }

    fn rated_rows(root: &Path) -> Vec<(String, String)> {
        let mut names: Vec<_> = fs::read_dir(root.join("ftp/RatedCDRs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut rows = Vec::new();
        for p in names {
            let text = fs::read_to_string(&p).unwrap();
            for line in text.split('\n').skip(1).filter(|l| !l.is_empty()) {
                rows.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    strip(line).to_string(),
                ));
            }
        }
        rows
    }

    #[test]
    fn same_options_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(&options(12, 3000), a.path()).unwrap();
        generate(&options(12, 3000), b.path()).unwrap();
        let (mut ta, mut tb) = (read_tree(a.path()), read_tree(b.path()));
        assert!(ta.remove("mvnobill.toml").is_some() && tb.remove("mvnobill.toml").is_some());
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
        for (k, v) in &ta {
            assert!(v == &tb[k], "{k} differs");
        }
        let c = tempfile::tempdir().unwrap();
        generate(
            &GenOptions {
                seed: 8,
                ..options(12, 3000)
            },
            c.path(),
        )
        .unwrap();
        assert_ne!(
            ta["reference/customers.csv"],
            read_tree(c.path())["reference/customers.csv"]
        );
    }

    #[test]
    fn a_second_month_moves_only_roaming_rows_of_the_first_to_its_late_file() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(&options(12, 3000), one.path()).unwrap();
        let report = generate(
            &GenOptions {
                months: 2,
                ..options(12, 3000)
            },
            two.path(),
        )
        .unwrap();
        assert_eq!(report.months, 2);
        // The tables, the SIM order, October's snapshots and statement: as
        // for October alone.
        let (t1, t2) = (read_tree(one.path()), read_tree(two.path()));
        for (name, bytes) in &t1 {
            if name != "mvnobill.toml" && !name.contains("RatedCDRs") {
                assert!(t2[name] == *bytes, "{name} differs");
            }
        }
        // October's deliveries: those of October alone, less the rows of its
        // late file (all roaming) and their re-deliveries.
        let files_one: std::collections::HashSet<String> =
            rated_rows(one.path()).into_iter().map(|r| r.0).collect();
        let rows_two = rated_rows(two.path());
        let late: Vec<&(String, String)> = rows_two
            .iter()
            .filter(|(f, row)| !files_one.contains(f) && row.starts_with("R202610"))
            .collect();
        assert!(!late.is_empty());
        let late_file = &late[0].0;
        assert!(late.iter().all(|(f, _)| f == late_file));
        let date = NaiveDate::parse_from_str(&late_file[10..18], "%Y%m%d").unwrap();
        assert!(
            date > NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(),
            "{late_file}"
        );
        let mccs: HashMap<&str, &str> = ROAMING_ZONES.iter().map(|r| (r.0, r.2)).collect();
        let ids: std::collections::HashSet<&str> = late
            .iter()
            .map(|(_, row)| {
                let f: Vec<&str> = row.split(';').collect();
                assert!(f[4][3..].starts_with("10/2026"), "{row}");
                assert!(
                    !matches!(mccs.get(&f[9][..3]), Some(&"HOME" | &"EU")),
                    "{row}"
                );
                f[0]
            })
            .collect();
        let expected: Vec<(String, String)> = rated_rows(one.path())
            .into_iter()
            .filter(|(_, row)| !ids.contains(row.split(';').next().unwrap()))
            .collect();
        let october: Vec<(String, String)> = rows_two
            .iter()
            .filter(|(f, _)| files_one.contains(f))
            .cloned()
            .collect();
        assert_eq!(october, expected);
    }

    #[test]
    fn report_counts_rows_written() {
        let dir = tempfile::tempdir().unwrap();
        let report = generate(&options(25, 5000), dir.path()).unwrap();
        let rows = rated_rows(dir.path());
        assert_eq!(report.cdrs, rows.len() as u64);
        assert_eq!(
            report.rated_files as usize,
            fs::read_dir(dir.path().join("ftp/RatedCDRs"))
                .unwrap()
                .count()
        );
        assert!(report.cdrs >= 5000 && report.cdrs < 5100, "{}", report.cdrs);
        assert_eq!(report.customers, 25);
        let bytes: u64 = read_tree(dir.path()).values().map(|v| v.len() as u64).sum();
        assert_eq!(report.bytes, bytes);
        assert_eq!(
            report.out_dir,
            std::path::absolute(dir.path())
                .unwrap()
                .display()
                .to_string()
        );
        let subs = fs::read_to_string(dir.path().join("reference/subscriptions.csv")).unwrap();
        let status = fs::read_dir(dir.path().join("ftp/AccountStatus"))
            .unwrap()
            .count();
        assert_eq!(status, 3);
        assert!(subs.lines().count() > 25);
    }

    #[test]
    fn ibans_pass_mod_97() {
        assert!(iban_is_valid("FR7630006000011234567890189"));
        assert!(!iban_is_valid("FR7630006000011234567890188"));
        let dir = tempfile::tempdir().unwrap();
        generate(&options(200, 0), dir.path()).unwrap();
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_path(dir.path().join("reference/customers.csv"))
            .unwrap();
        let headers = rdr.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let (pm, iban, rum) = (col("payment_method"), col("iban"), col("mandate_rum"));
        let mut sepa = 0;
        for rec in rdr.records() {
            let rec = rec.unwrap();
            if &rec[pm] == "SEPA_DD" {
                sepa += 1;
                assert_eq!(rec[iban].len(), 27, "{}", &rec[iban]);
                assert!(
                    rec[iban].starts_with("FR") && iban_is_valid(&rec[iban]),
                    "{}",
                    &rec[iban]
                );
                // RIB key of the BBAN.
                let b = &rec[iban][4..];
                let (bank, branch, acct, key): (u64, u64, u64, u64) = (
                    b[..5].parse().unwrap(),
                    b[5..10].parse().unwrap(),
                    b[10..21].parse().unwrap(),
                    b[21..].parse().unwrap(),
                );
                assert_eq!((89 * bank + 15 * branch + 3 * acct + key) % 97, 0);
                assert!(rec[rum].starts_with("RUM-C"));
            } else {
                assert_eq!(&rec[pm], "TRANSFER");
                assert!(rec[iban].is_empty());
            }
        }
        assert!(sepa > 100);
    }

    #[test]
    fn reference_headers_match_formats_md() {
        let dir = tempfile::tempdir().unwrap();
        generate(&options(5, 100), dir.path()).unwrap();
        let expected = [
            ("plans.csv", "plan_code;label;voice_fr_min;sms_fr;mms_fr;data_fr_mb"),
            ("plan_fees.csv", "plan_code;commitment_months;with_handset;monthly_fee;valid_from"),
            ("options.csv", "option_code;label;monthly_fee;monthly_fee_with_handset;allowance_group;allowance_qty;valid_from"),
            ("rate_grids.csv", "grid;zone;event_type;price;connect_fee;first_increment;next_increment;valid_from"),
            ("destinations.csv", "prefix;zone;label"),
            ("roaming_zones.csv", "mcc;country;roaming_zone"),
            ("handsets.csv", "model;plan_code;commitment_months;price;valid_from"),
            (
                "customers.csv",
                "customer_id;kind;name;address1;address2;postcode;city;country;email;vat_number;siret;payment_method;iban;bic;mandate_rum;mandate_date",
            ),
            ("subscriptions.csv", "msisdn;customer_id;plan_code;commitment_months;with_handset;rate_grid;options;start_date;end_date"),
            ("handset_sales.csv", "sale_id;customer_id;msisdn;model;sale_date"),
        ];
        assert_eq!(
            fs::read_dir(dir.path().join("reference")).unwrap().count(),
            expected.len()
        );
        for (file, header) in expected {
            let text = fs::read_to_string(dir.path().join("reference").join(file)).unwrap();
            assert_eq!(text.lines().next().unwrap(), header, "{file}");
            // Every row has the header's field count once parsed.
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(b';')
                .from_reader(text.as_bytes());
            for rec in rdr.records() {
                assert_eq!(rec.unwrap().len(), header.split(';').count(), "{file}");
            }
        }
    }

    #[test]
    fn grids_price_every_zone_and_event_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rate_grids.csv");
        let cal = Cal::new(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
        write_table(path.clone(), H_RATE_GRIDS, |t| rate_grids(&cal, t)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let have: std::collections::HashSet<(String, String, String)> = text
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(';').collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect();
        for g in 1..=5 {
            let g = g.to_string();
            for z in DOMESTIC_ZONES {
                for e in ["VOICE", "SMS", "MMS"] {
                    assert!(
                        have.contains(&(g.clone(), z.to_string(), e.to_string())),
                        "{g} {z} {e}"
                    );
                }
            }
            assert!(have.contains(&(g.clone(), "HOME".into(), "DATA".into())));
            for z in ROAM_ZONES {
                for e in EVENT_NAMES {
                    assert!(
                        have.contains(&(g.clone(), z.to_string(), e.to_string())),
                        "{g} {z} {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn billed_cdrs_have_three_deviations() {
        let dir = tempfile::tempdir().unwrap();
        generate(&options(25, 5000), dir.path()).unwrap();
        // Landed: well-formed rows of the month, first copy wins.
        let mut landed: HashMap<String, String> = HashMap::new();
        let mut malformed = 0;
        let mut copies = 0;
        for (_, row) in rated_rows(dir.path()) {
            let f: Vec<&str> = row.split(';').collect();
            assert_eq!(f.len(), 11, "{row}");
            let ok_type = EVENT_NAMES.contains(&f[3]);
            let ok_date = !f[4].starts_with("30/02");
            let ok_nums = [f[6], f[7], f[8]]
                .iter()
                .all(|v| v.bytes().all(|b| b.is_ascii_digit()));
            let ok_units = !(f[3] == "SMS" && f[8].is_empty());
            if !(ok_type && ok_date && ok_nums && ok_units) {
                malformed += 1;
                continue;
            }
            if !f[4][3..].starts_with("10/2026") {
                continue;
            }
            if let Some(prev) = landed.insert(f[0].to_string(), row.clone()) {
                assert_eq!(prev, row, "re-delivery differs");
                copies += 1;
            }
        }
        assert_eq!(malformed, 5);
        assert!(copies >= 2, "{copies}");
        let billed =
            fs::read_to_string(dir.path().join("ftp/BilledCDRs/BilledCDRs_202610.csv")).unwrap();
        let billed: HashMap<String, String> = billed
            .lines()
            .skip(1)
            .map(|l| (l.split(';').next().unwrap().to_string(), l.to_string()))
            .collect();
        let not_landed = billed.keys().filter(|k| !landed.contains_key(*k)).count();
        let not_billed = landed.keys().filter(|k| !billed.contains_key(*k)).count();
        let other = landed
            .iter()
            .filter(|(k, v)| billed.get(*k).is_some_and(|b| b != *v))
            .count();
        assert_eq!((not_landed, not_billed, other), (1, 1, 1));
    }

    #[test]
    fn numbers_and_networks_are_known() {
        let dir = tempfile::tempdir().unwrap();
        generate(&options(25, 20_000), dir.path()).unwrap();
        let mccs: Vec<&str> = ROAMING_ZONES.iter().map(|r| r.0).collect();
        let (mut unknown, mut called, mut unlisted, mut abroad) = (0, 0, 0, 0);
        for (_, row) in rated_rows(dir.path()) {
            let f: Vec<&str> = row.split(';').collect();
            if !mccs.contains(&&f[9][..3]) {
                unlisted += 1;
            }
            if !f[9].starts_with("208") {
                abroad += 1;
            }
            if matches!(f[3], "VOICE" | "SMS" | "MMS") {
                called += 1;
                assert!(!f[5].is_empty());
                if f[5].len() > 6 && !DESTINATIONS.iter().any(|d| f[5].starts_with(d.0)) {
                    unknown += 1;
                }
            }
        }
        assert!(unknown * 200 < called, "{unknown} of {called}");
        assert!(unlisted * 2 < abroad, "{unlisted} of {abroad}");
        assert!(abroad > 0);
    }
}
