//! Reading the `;`-separated CSV files of formats.md: a leading BOM is
//! skipped, `\n` and `\r\n` both end a line, `"` quotes fields (`""` inside),
//! columns are matched by header name, blank lines are skipped.
//!
//! Each record keeps its 1-based line number and its raw text so that a bad
//! row can be quarantined exactly as it was delivered. Values are parsed by
//! the functions at the bottom (decimal comma or point, Paris local time with
//! the DST rules, dates); they return a short reason on failure.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use rust_decimal::Decimal;

/// A file-level problem: the whole file is refused.
#[derive(Debug, thiserror::Error)]
pub enum CsvFileError {
    #[error("{file}: the file is empty (no header line)")]
    Empty { file: String },
    #[error("{file} line 1: the header is not valid UTF-8")]
    HeaderEncoding { file: String },
    #[error("{file} line 1: required column '{column}' is missing from the header")]
    MissingColumn { file: String, column: String },
    #[error("{file} line 1: column '{column}' appears twice in the header")]
    DuplicateColumn { file: String, column: String },
    #[error("{file} line {line}: {message}")]
    Syntax {
        file: String,
        line: u64,
        message: String,
    },
}

/// One data record of a file.
pub struct Record<'a> {
    /// 1-based line number where the record starts.
    pub line: u64,
    /// The record's bytes as delivered, without its line ending.
    pub raw: &'a [u8],
    pub fields: csv::ByteRecord,
}

/// A record as the streaming reader lends it (valid until the next call).
pub struct RecordRef<'r, 'a> {
    pub line: u64,
    pub raw: &'a [u8],
    pub fields: FieldsRef<'r>,
}

/// The fields of a record, by position.
pub trait Fields {
    fn field(&self, i: usize) -> Option<&[u8]>;
    fn count(&self) -> usize;
    /// True when every field is known to be ASCII (so valid UTF-8).
    fn is_ascii(&self) -> bool {
        false
    }
}

impl Fields for csv::ByteRecord {
    fn field(&self, i: usize) -> Option<&[u8]> {
        self.get(i)
    }

    fn count(&self) -> usize {
        self.len()
    }
}

/// The fields of a record the streaming reader lends: where each lies in
/// the line itself (no copy), or in the unquoted text of a quoted record.
#[derive(Clone, Copy)]
pub struct FieldsRef<'r> {
    bytes: &'r [u8],
    bounds: &'r [(usize, usize)],
    /// The fields lie in a line checked to be all ASCII.
    ascii: bool,
}

impl<'r> FieldsRef<'r> {
    pub fn iter(&self) -> impl Iterator<Item = &'r [u8]> + '_ {
        self.bounds
            .iter()
            .map(|&(start, end)| &self.bytes[start..end])
    }

    pub fn to_byte_record(&self) -> csv::ByteRecord {
        self.iter().collect()
    }
}

impl Fields for FieldsRef<'_> {
    fn field(&self, i: usize) -> Option<&[u8]> {
        self.bounds
            .get(i)
            .map(|&(start, end)| &self.bytes[start..end])
    }

    fn count(&self) -> usize {
        self.bounds.len()
    }

    fn is_ascii(&self) -> bool {
        self.ascii
    }
}

/// Reads a file record by record, reusing one buffer: the way to read a
/// large delivery without an allocation per row.
///
/// A line without a `"` (nearly every line of a delivery) is split at its
/// separators directly; a line with one goes through `csv_core`, which
/// reads quoted fields (and line breaks inside them) as the `csv` crate
/// does. Both give the same fields: the unit tests compare them.
pub struct CsvReader<'a> {
    pub file: String,
    pub header: Vec<String>,
    body: &'a [u8],
    /// Where the next record starts (or the blank lines before it).
    pos: usize,
    quoted: csv_core::Reader,
    /// `csv_core`'s output: the fields' bytes and where each ends.
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Where each field of the current record starts and ends.
    bounds: Vec<(usize, usize)>,
    lines: LineCounter,
    delimiter: u8,
    /// The body before this offset is all ASCII, and from there to
    /// `mixed_to` it is not: checked a block at a time, which is cheaper
    /// than validating each field as UTF-8 (see [`CsvReader::ascii_line`]).
    ascii_to: usize,
    mixed_to: usize,
}

/// How much of a file is checked for ASCII at once.
const ASCII_BLOCK: usize = 256 << 10;

impl<'a> CsvReader<'a> {
    /// Reads the header line. `file` is the name used in messages.
    pub fn open(file: &str, bytes: &'a [u8]) -> Result<CsvReader<'a>, CsvFileError> {
        CsvReader::open_with(file, bytes, b';')
    }

    /// As [`CsvReader::open`], with another field separator (files that are
    /// not the MVNE's, e.g. porting orders exported with `,`).
    pub fn open_with(
        file: &str,
        bytes: &'a [u8],
        delimiter: u8,
    ) -> Result<CsvReader<'a>, CsvFileError> {
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut this = CsvReader {
            file: file.to_string(),
            header: Vec::new(),
            body,
            pos: 0,
            quoted: quoted_reader(delimiter),
            out: vec![0; 1024],
            ends: vec![0; 64],
            bounds: Vec::new(),
            lines: LineCounter::default(),
            delimiter,
            ascii_to: 0,
            mixed_to: 0,
        };
        let names: Vec<String> = match this.next_record() {
            None => {
                return Err(CsvFileError::Empty {
                    file: file.to_string(),
                })
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(header)) => header
                .fields
                .iter()
                .map(|f| std::str::from_utf8(f).map(|s| s.trim().to_string()))
                .collect::<Result<_, _>>()
                .map_err(|_| CsvFileError::HeaderEncoding {
                    file: file.to_string(),
                })?,
        };
        // A set, not a scan of the names before: a header of a million
        // columns is checked in a moment.
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(CsvFileError::DuplicateColumn {
                    file: file.to_string(),
                    column: name.clone(),
                });
            }
        }
        this.header = names;
        Ok(this)
    }

    /// How far into the file the reader is, in bytes (after a BOM).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<Result<RecordRef<'_, 'a>, CsvFileError>> {
        let body = self.body;
        // Blank lines are skipped; `\n`, `\r\n` and a lone `\r` end a line.
        while matches!(body.get(self.pos), Some(b'\r') | Some(b'\n')) {
            self.pos += 1;
        }
        let record_start = self.pos;
        if record_start >= body.len() {
            return None;
        }
        let line = self.lines.line_at(body, record_start);
        let rest = &body[record_start..];
        let eol = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
        let text = &rest[..eol];
        if memchr::memchr(b'"', text).is_none() {
            self.bounds.clear();
            let mut start = 0;
            for at in memchr::memchr_iter(self.delimiter, text) {
                self.bounds.push((start, at));
                start = at + 1;
            }
            self.bounds.push((start, text.len()));
            self.pos = record_start + eol;
            // No line break within the record: the counter skips it.
            self.lines.skip_to(self.pos);
            let ascii = self.ascii_line(record_start, self.pos);
            return Some(Ok(RecordRef {
                line,
                raw: text,
                fields: FieldsRef {
                    bytes: text,
                    bounds: &self.bounds,
                    ascii,
                },
            }));
        }
        let end = record_start + self.read_quoted(rest);
        self.pos = end;
        let raw = trim_line_end(&body[record_start..end]);
        // A quote never closed takes every line to the end of the file into
        // one field: the file is cut or broken there, and refused.
        if end >= body.len() && ends_in_quotes(&body[record_start..end], self.delimiter) {
            return Some(Err(CsvFileError::Syntax {
                file: self.file.clone(),
                line,
                message:
                    "a quoted field opened on this line is never closed (the file is cut or broken)"
                        .into(),
            }));
        }
        Some(Ok(RecordRef {
            line,
            raw,
            fields: FieldsRef {
                bytes: &self.out,
                bounds: &self.bounds,
                ascii: false,
            },
        }))
    }

    /// Whether the body's bytes `start..end` (a line, after the lines
    /// before it) are all ASCII. A delivery nearly always is: a block of
    /// the file is checked at once, and only a block with another byte is
    /// checked line by line.
    fn ascii_line(&mut self, start: usize, end: usize) -> bool {
        if end <= self.ascii_to {
            return true;
        }
        let line = &self.body[start..end];
        if end <= self.mixed_to {
            return line.is_ascii();
        }
        let block_end = (start + ASCII_BLOCK).max(end).min(self.body.len());
        if self.body[start..block_end].is_ascii() {
            self.ascii_to = block_end;
            true
        } else {
            self.mixed_to = block_end;
            line.is_ascii()
        }
    }

    /// Reads one record with quotes from the start of `input` into
    /// `self.out` and `self.bounds`; returns how many bytes it took (its line ending
    /// included, or not).
    fn read_quoted(&mut self, input: &[u8]) -> usize {
        use csv_core::ReadRecordResult;
        let (mut taken, mut out_len, mut ends_len) = (0, 0, 0);
        loop {
            // All of the rest is given at once: an empty rest is the end
            // of the file, which ends the record.
            let (result, nin, nout, nend) = self.quoted.read_record(
                &input[taken..],
                &mut self.out[out_len..],
                &mut self.ends[ends_len..],
            );
            taken += nin;
            out_len += nout;
            ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        self.bounds.clear();
        let mut start = 0;
        for &end in &self.ends[..ends_len] {
            self.bounds.push((start, end));
            start = end;
        }
        taken
    }

    /// Index of each wanted column in the header; `None` for an optional
    /// column that is absent. A required one that is absent refuses the file.
    pub fn columns(&self, wanted: &[(&str, bool)]) -> Result<Vec<Option<usize>>, CsvFileError> {
        columns(&self.file, &self.header, wanted)
    }

    /// Header columns that no wanted column matches (ignored with a warning).
    pub fn unknown_columns(&self, wanted: &[(&str, bool)]) -> Vec<String> {
        unknown_columns(&self.header, wanted)
    }
}

/// A parsed file held whole: the header and every record (small files:
/// reference tables, status snapshots, SIM orders).
pub struct CsvFile<'a> {
    pub file: String,
    pub header: Vec<String>,
    pub records: Vec<Record<'a>>,
}

impl<'a> CsvFile<'a> {
    /// Splits `bytes` into records. `file` is the name used in messages.
    pub fn parse(file: &str, bytes: &'a [u8]) -> Result<CsvFile<'a>, CsvFileError> {
        CsvFile::parse_with(file, bytes, b';')
    }

    /// As [`CsvFile::parse`], with another field separator.
    pub fn parse_with(
        file: &str,
        bytes: &'a [u8],
        delimiter: u8,
    ) -> Result<CsvFile<'a>, CsvFileError> {
        let mut reader = CsvReader::open_with(file, bytes, delimiter)?;
        let mut records = Vec::new();
        while let Some(record) = reader.next_record() {
            let record = record?;
            records.push(Record {
                line: record.line,
                raw: record.raw,
                fields: record.fields.to_byte_record(),
            });
        }
        Ok(CsvFile {
            file: reader.file,
            header: reader.header,
            records,
        })
    }

    /// As [`CsvReader::columns`].
    pub fn columns(&self, wanted: &[(&str, bool)]) -> Result<Vec<Option<usize>>, CsvFileError> {
        columns(&self.file, &self.header, wanted)
    }

    /// As [`CsvReader::unknown_columns`].
    pub fn unknown_columns(&self, wanted: &[(&str, bool)]) -> Vec<String> {
        unknown_columns(&self.header, wanted)
    }
}

fn columns(
    file: &str,
    header: &[String],
    wanted: &[(&str, bool)],
) -> Result<Vec<Option<usize>>, CsvFileError> {
    wanted
        .iter()
        .map(|(name, required)| {
            let found = header.iter().position(|h| h == name);
            if found.is_none() && *required {
                Err(CsvFileError::MissingColumn {
                    file: file.to_string(),
                    column: name.to_string(),
                })
            } else {
                Ok(found)
            }
        })
        .collect()
}

fn unknown_columns(header: &[String], wanted: &[(&str, bool)]) -> Vec<String> {
    header
        .iter()
        .filter(|h| !wanted.iter().any(|(w, _)| w == h))
        .cloned()
        .collect()
}

/// The `csv_core` reader of records with quotes. It is given one record
/// first, so that it does not take a line starting with a BOM for the start
/// of a file (the file's BOM is skipped before).
fn quoted_reader(delimiter: u8) -> csv_core::Reader {
    let mut reader = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let _ = reader.read_record(b"-\n", &mut [0; 4], &mut [0; 4]);
    reader
}

/// Turns byte offsets into 1-based line numbers. A line ends at `\n`,
/// `\r\n` or a lone `\r` (old Mac files), as for the CSV reader, so that
/// a file with mixed line endings is numbered as an editor shows it.
#[derive(Default)]
struct LineCounter {
    cursor: usize,
    newlines: u64,
}

impl LineCounter {
    /// Moves to `offset` without counting: the caller knows that no line
    /// break lies before it.
    fn skip_to(&mut self, offset: usize) {
        self.cursor = self.cursor.max(offset);
    }

    /// The line of `offset`; offsets must not decrease between calls.
    fn line_at(&mut self, body: &[u8], offset: usize) -> u64 {
        let offset = offset.min(body.len());
        if offset > self.cursor {
            // A `\r` counts unless a `\n` follows it (then the `\n` counts).
            self.newlines += (self.cursor..offset)
                .filter(|&i| match body[i] {
                    b'\n' => true,
                    b'\r' => body.get(i + 1) != Some(&b'\n'),
                    _ => false,
                })
                .count() as u64;
            self.cursor = offset;
        }
        self.newlines + 1
    }
}

/// How many line breaks a record's raw text holds (`\n`, `\r\n` or a lone
/// `\r`): 0 for a record on one line.
pub fn line_breaks(raw: &[u8]) -> u64 {
    (0..raw.len())
        .filter(|&i| match raw[i] {
            b'\n' => true,
            b'\r' => raw.get(i + 1) != Some(&b'\n'),
            _ => false,
        })
        .count() as u64
}

/// Whether a record's bytes end inside a quoted field, read as the `csv`
/// crate reads them: a `"` opens quotes at the start of a field only, `""`
/// inside is one quote, and a `"` within an unquoted field is text.
fn ends_in_quotes(raw: &[u8], delimiter: u8) -> bool {
    let mut in_quotes = false;
    let mut field_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if in_quotes {
            if b == b'"' {
                if raw.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else if b == delimiter || b == b'\n' || b == b'\r' {
            field_start = true;
            i += 1;
            continue;
        } else if b == b'"' && field_start {
            in_quotes = true;
        }
        field_start = false;
        i += 1;
    }
    in_quotes
}

fn trim_line_end(mut raw: &[u8]) -> &[u8] {
    while let Some((last, rest)) = raw.split_last() {
        if *last == b'\n' || *last == b'\r' {
            raw = rest;
        } else {
            break;
        }
    }
    raw
}

/// A value that could not be parsed: a reason code (formats.md quarantine
/// reasons) and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    pub code: &'static str,
    pub detail: String,
}

impl BadValue {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        BadValue {
            code,
            detail: detail.into(),
        }
    }
}

/// Field `index` of a record as UTF-8 text, `None` when empty.
pub fn text_field<F: Fields + ?Sized>(
    record: &F,
    index: Option<usize>,
) -> Result<Option<&str>, BadValue> {
    let Some(index) = index else { return Ok(None) };
    let Some(bytes) = record.field(index) else {
        return Ok(None);
    };
    let text = if record.is_ascii() {
        // SAFETY: the reader checked that the field's line is all ASCII,
        // which is valid UTF-8; validating each field again cost 6 % of
        // land's time (docs/PERFORMANCE.md).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        std::str::from_utf8(bytes)
            .map_err(|_| BadValue::new("BAD_ENCODING", "the field is not valid UTF-8"))?
    };
    // Most fields have no space around them: trim only those that do.
    let padded = |b: Option<&u8>| b.is_some_and(|b| *b <= b' ' || *b >= 0x80);
    let text = if padded(bytes.first()) || padded(bytes.last()) {
        text.trim()
    } else {
        text
    };
    Ok(if text.is_empty() { None } else { Some(text) })
}

/// Which decimal separator a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMark {
    /// Upstream files: `0,0125`.
    Comma,
    /// The integrator's tables: `0.0125`.
    Point,
}

/// Parses an exact decimal with at most 6 decimals.
pub fn parse_decimal(text: &str, mark: DecimalMark) -> Result<Decimal, BadValue> {
    let (sep, other) = match mark {
        DecimalMark::Comma => (',', '.'),
        DecimalMark::Point => ('.', ','),
    };
    let bad = || {
        let hint = if text.contains(other) {
            format!(" (the decimal separator here is '{sep}')")
        } else {
            String::new()
        };
        BadValue::new(
            "BAD_NUMBER",
            format!("'{text}' is not a decimal number{hint}"),
        )
    };
    let (int_part, frac_part) = match text.split_once(sep) {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_digits = int_part.strip_prefix('-').unwrap_or(int_part);
    if !digits_only(int_digits) || (text.contains(sep) && !digits_only(frac_part)) {
        return Err(bad());
    }
    if frac_part.len() > 6 {
        return Err(BadValue::new(
            "BAD_NUMBER",
            format!("'{text}' has more than 6 decimals"),
        ));
    }
    let normalised = format!(
        "{int_part}.{}",
        if frac_part.is_empty() { "0" } else { frac_part }
    );
    normalised.parse::<Decimal>().map_err(|_| bad())
}

/// Parses a non-negative integer.
pub fn parse_count(text: &str) -> Result<i64, BadValue> {
    if let Some(rest) = text.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadValue::new(
                "OUT_OF_RANGE",
                format!("'{text}' is negative"),
            ));
        }
    }
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadValue::new(
            "BAD_NUMBER",
            format!("'{text}' is not a whole number"),
        ));
    }
    text.parse::<i64>()
        .map_err(|_| BadValue::new("BAD_NUMBER", format!("'{text}' is not a whole number")))
}

/// Digits only (MSISDN, IMSI, ICCID, called numbers, MCC-MNC).
pub fn check_digits(text: &str, min: usize, max: usize) -> Result<(), BadValue> {
    if text.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&text.len()) {
        Ok(())
    } else if min == max {
        Err(BadValue::new(
            "BAD_NUMBER",
            format!("'{text}' is not {min} digits"),
        ))
    } else {
        Err(BadValue::new(
            "BAD_NUMBER",
            format!("'{text}' is not {min} to {max} digits"),
        ))
    }
}

/// Parses `DD/MM/YYYY` (upstream) dates.
pub fn parse_upstream_date(text: &str) -> Result<NaiveDate, BadValue> {
    NaiveDate::parse_from_str(text, "%d/%m/%Y")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| BadValue::new("BAD_DATE", format!("'{text}' is not a date DD/MM/YYYY")))
}

/// Parses `YYYY-MM-DD` (the integrator's tables) dates.
pub fn parse_iso_date(text: &str) -> Result<NaiveDate, BadValue> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| BadValue::new("BAD_DATE", format!("'{text}' is not a date YYYY-MM-DD")))
}

/// Parses an upstream `DD/MM/YYYY HH:MM:SS` Europe/Paris local time into an
/// instant. The repeated hour when DST ends is the earlier instant; a time in
/// the skipped hour when DST starts is moved forward by one hour.
pub fn parse_paris_timestamp(text: &str) -> Result<DateTime<Utc>, BadValue> {
    let naive = NaiveDateTime::parse_from_str(text, "%d/%m/%Y %H:%M:%S")
        .ok()
        .filter(|_| text.len() == 19)
        .ok_or_else(|| {
            BadValue::new(
                "BAD_TIMESTAMP",
                format!("'{text}' is not a time DD/MM/YYYY HH:MM:SS"),
            )
        })?;
    Ok(paris_to_utc(naive))
}

/// Parses an exact decimal with at most 6 decimals straight into millionths
/// (the lake's scale), without going through a string or a float.
pub fn parse_micros(text: &str, mark: DecimalMark) -> Result<i128, BadValue> {
    let sep = match mark {
        DecimalMark::Comma => b',',
        DecimalMark::Point => b'.',
    };
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let (int_part, frac_part) = match digits.iter().position(|b| *b == sep) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !all_digits(int_part) || int_part.len() > 20 || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(parse_decimal(text, mark).err().unwrap_or_else(|| {
            BadValue::new("BAD_NUMBER", format!("'{text}' is not a decimal number"))
        }));
    }
    let frac = frac_part.unwrap_or_default();
    if frac.len() > 6 {
        return Err(BadValue::new(
            "BAD_NUMBER",
            format!("'{text}' has more than 6 decimals"),
        ));
    }
    let mut value: i128 = 0;
    for b in int_part.iter().chain(frac) {
        value = value * 10 + (b - b'0') as i128;
    }
    value *= 10i128.pow(6 - frac.len() as u32);
    Ok(if negative { -value } else { value })
}

/// Turns upstream `DD/MM/YYYY HH:MM:SS` Paris times into instants, fast:
/// the DST rules apply per local hour (a whole hour is repeated or skipped),
/// so the UTC start of each local hour is computed once and cached.
#[derive(Default)]
pub struct ParisClock {
    last_hour: Option<(NaiveDate, u32)>,
    last_hour_utc_micros: i64,
}

impl ParisClock {
    /// The instant (microseconds since the epoch, UTC) and the local date.
    pub fn parse(&mut self, text: &str) -> Result<(i64, NaiveDate), BadValue> {
        let bad = || {
            BadValue::new(
                "BAD_TIMESTAMP",
                format!("'{text}' is not a time DD/MM/YYYY HH:MM:SS"),
            )
        };
        let b = text.as_bytes();
        if b.len() != 19
            || b[2] != b'/'
            || b[5] != b'/'
            || b[10] != b' '
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let number = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |n, d| {
                d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u32)
            })
        };
        let (Some(day), Some(month), Some(year), Some(hour), Some(minute), Some(second)) = (
            number(0, 2),
            number(3, 5),
            number(6, 10),
            number(11, 13),
            number(14, 16),
            number(17, 19),
        ) else {
            return Err(bad());
        };
        let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(bad)?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad());
        }
        if self.last_hour != Some((date, hour)) {
            let start = date.and_hms_opt(hour, 0, 0).ok_or_else(bad)?;
            self.last_hour_utc_micros = paris_to_utc(start).timestamp_micros();
            self.last_hour = Some((date, hour));
        }
        let micros = self.last_hour_utc_micros + (minute as i64 * 60 + second as i64) * 1_000_000;
        Ok((micros, date))
    }
}

/// The instant of a Paris local time, with the DST rules of formats.md.
pub fn paris_to_utc(naive: NaiveDateTime) -> DateTime<Utc> {
    match Paris.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => match Paris.from_local_datetime(&(naive + Duration::hours(1))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            // No real zone skips two hours; fall back to reading it as UTC+1.
            LocalResult::None => Utc.from_utc_datetime(&(naive - Duration::hours(1))),
        },
    }
}

/// The Paris local date of an instant (billing month, subscription days).
pub fn paris_date(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&Paris).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_crlf_quotes_and_blank_lines() {
        let bytes = b"\xEF\xBB\xBFa;b\r\n1;\"x;\"\"y\"\"\"\r\n\r\n2;z\r\n";
        let f = CsvFile::parse("t.csv", bytes).unwrap();
        assert_eq!(f.header, vec!["a", "b"]);
        assert_eq!(f.records.len(), 2);
        assert_eq!(f.records[0].line, 2);
        assert_eq!(&f.records[0].fields[1], b"x;\"y\"");
        assert_eq!(f.records[0].raw, b"1;\"x;\"\"y\"\"\"");
        assert_eq!(f.records[1].line, 4);
        assert_eq!(f.records[1].raw, b"2;z");
    }

    #[test]
    fn mixed_line_endings_are_numbered_as_an_editor_shows_them() {
        // LF, CRLF, then a lone CR (old Mac), then LF.
        let bytes = b"a;b\n1;x\r\n2;y\r3;z\n4;w";
        let f = CsvFile::parse("t.csv", bytes).unwrap();
        let lines: Vec<(u64, &[u8])> = f.records.iter().map(|r| (r.line, r.raw)).collect();
        assert_eq!(
            lines,
            vec![
                (2, &b"1;x"[..]),
                (3, &b"2;y"[..]),
                (4, &b"3;z"[..]),
                (5, &b"4;w"[..])
            ]
        );
    }

    #[test]
    fn a_quote_never_closed_refuses_the_file_at_its_line() {
        let bytes = b"a;b\n1;x\n2;\"y\n3;z\n4;w\n";
        let error = CsvFile::parse("t.csv", bytes).err().unwrap();
        assert_eq!(
            error.to_string(),
            "t.csv line 3: a quoted field opened on this line is never closed (the file is cut or broken)"
        );
        // On the last line too; a quote inside an unquoted field is text.
        let error = CsvFile::parse("t.csv", b"a;b\n1;x\n2;\"y\n").err().unwrap();
        assert!(error
            .to_string()
            .starts_with("t.csv line 3: a quoted field"));
        let f = CsvFile::parse("t.csv", b"a;b\n1;x\"y\n2;\"z\"\"\"").unwrap();
        assert_eq!(&f.records[0].fields[1], b"x\"y");
        assert_eq!(&f.records[1].fields[1], b"z\"");
        // Closed on a later line: one field holding a line break, as the
        // format allows.
        let f = CsvFile::parse("t.csv", b"a;b\n1;\"x\ny\"\n2;z\n").unwrap();
        assert_eq!(&f.records[0].fields[1], b"x\ny");
        assert_eq!(f.records[1].line, 4);
    }

    #[test]
    fn ascii_blocks_and_lines_with_other_bytes() {
        // Over two ASCII blocks of plain lines, then a Latin-1 byte, a
        // UTF-8 `é` and plain lines in the same block, then plain lines.
        let mut bytes = b"a;b\n".to_vec();
        let plain = (ASCII_BLOCK + 1000) / 8;
        for n in 0..plain {
            bytes.extend_from_slice(format!("{:03};x\n", n % 1000).as_bytes());
        }
        bytes.extend_from_slice(b"1;caf\xe9\n2;caf\xc3\xa9\n3;y\n");
        for _ in 0..plain {
            bytes.extend_from_slice(b"123;z\n");
        }
        let mut reader = CsvReader::open("t.csv", &bytes).unwrap();
        let mut seen = Vec::new();
        while let Some(record) = reader.next_record() {
            let record = record.unwrap();
            let text = text_field(&record.fields, Some(1)).map(|t| t.map(str::to_string));
            seen.push((record.line, record.fields.is_ascii(), text));
        }
        assert_eq!(seen.len(), 2 * plain + 3);
        let (line, ascii, text) = &seen[plain];
        assert_eq!((*line, *ascii), (plain as u64 + 2, false));
        assert_eq!(text.as_ref().unwrap_err().code, "BAD_ENCODING");
        let after: Vec<_> = seen[plain + 1..plain + 3]
            .iter()
            .map(|s| (s.1, s.2.clone().unwrap()))
            .collect();
        assert_eq!(
            after,
            [
                (false, Some("café".to_string())),
                (true, Some("y".to_string()))
            ]
        );
        assert!(seen[..plain]
            .iter()
            .chain(&seen[plain + 3..])
            .all(|(_, ascii, text)| *ascii && text.is_ok()));
        assert_eq!(seen.last().unwrap().0, 2 * plain as u64 + 4);
    }

    /// The split of lines without quotes and `csv_core` for the others
    /// give the fields the `csv` crate gives, on lines mixing quotes, line
    /// endings, blank lines and empty fields.
    #[test]
    fn fields_are_those_of_the_csv_crate() {
        let pieces: [&[u8]; 12] = [
            b"a",
            b"12,5",
            b"",
            b";",
            b"\"q;x\"",
            b"\"\"",
            b"x\"y",
            b"\"a\"\"b\"",
            b" ",
            b"\"l\nm\"",
            b"\xc3\xa9",
            b"\"r\r\ns\"",
        ];
        let endings: [&[u8]; 4] = [b"\n", b"\r\n", b"\r", b"\n\n"];
        let mut state = 7u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        let mut bytes = b"h1;h2;h3\n".to_vec();
        for _ in 0..2000 {
            for f in 0..1 + next(4) {
                if f > 0 {
                    bytes.push(b';');
                }
                bytes.extend_from_slice(pieces[next(pieces.len())]);
            }
            bytes.extend_from_slice(endings[next(endings.len())]);
        }
        bytes.extend_from_slice(b"last;\"x\"");
        let expected: Vec<csv::ByteRecord> = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .flexible(true)
            .from_reader(&bytes[..])
            .byte_records()
            .map(Result::unwrap)
            .skip(1)
            .collect();
        let mut reader = CsvReader::open("t.csv", &bytes).unwrap();
        let mut read = Vec::new();
        while let Some(record) = reader.next_record() {
            let record = record.unwrap();
            // Each record starts on the line its raw text is found on.
            let before = &bytes[..record.raw.as_ptr() as usize - bytes.as_ptr() as usize];
            assert_eq!(record.line, line_breaks(before) + 1);
            read.push(record.fields.to_byte_record());
        }
        assert!(expected.len() > 1500);
        assert_eq!(read, expected);
        assert_eq!(reader.consumed(), bytes.len());
    }

    #[test]
    fn a_header_of_a_million_columns_is_read_at_once() {
        let mut header: Vec<u8> = (0..1_000_000)
            .flat_map(|i| format!("c{i};").into_bytes())
            .collect();
        header.extend_from_slice(b"c7\n1\n");
        let started = std::time::Instant::now();
        let error = CsvFile::parse("t.csv", &header).err().unwrap();
        assert_eq!(
            error.to_string(),
            "t.csv line 1: column 'c7' appears twice in the header"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn decimals_comma_and_point() {
        assert_eq!(
            parse_decimal("0,0125", DecimalMark::Comma)
                .unwrap()
                .to_string(),
            "0.0125"
        );
        assert_eq!(
            parse_decimal("12", DecimalMark::Comma).unwrap().to_string(),
            "12.0"
        );
        assert_eq!(
            parse_decimal("0.0125", DecimalMark::Comma)
                .unwrap_err()
                .code,
            "BAD_NUMBER"
        );
        assert_eq!(
            parse_decimal("1,2345678", DecimalMark::Comma)
                .unwrap_err()
                .code,
            "BAD_NUMBER"
        );
        assert_eq!(
            parse_decimal("abc", DecimalMark::Point).unwrap_err().code,
            "BAD_NUMBER"
        );
        assert_eq!(
            parse_decimal("4.99", DecimalMark::Point)
                .unwrap()
                .to_string(),
            "4.99"
        );
    }

    #[test]
    fn dst_rules() {
        // Ambiguous: 25/10/2026 02:30 is the earlier instant (CEST, UTC+2).
        let t = parse_paris_timestamp("25/10/2026 02:30:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-25T00:30:00+00:00");
        // Skipped: 29/03/2026 02:30 moves to 03:30 CEST.
        let t = parse_paris_timestamp("29/03/2026 02:30:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-29T01:30:00+00:00");
        // Winter time.
        let t = parse_paris_timestamp("01/11/2026 00:30:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-31T23:30:00+00:00");
        assert_eq!(paris_date(t).to_string(), "2026-11-01");
        assert_eq!(
            parse_paris_timestamp("31/02/2026 10:00:00")
                .unwrap_err()
                .code,
            "BAD_TIMESTAMP"
        );
    }

    #[test]
    fn micros_and_the_clock_agree_with_the_slow_paths() {
        for text in ["0,0125", "12", "1,5", "0,000001", "123456,123456"] {
            let slow = to_micros_for_test(parse_decimal(text, DecimalMark::Comma).unwrap());
            assert_eq!(
                parse_micros(text, DecimalMark::Comma).unwrap(),
                slow,
                "{text}"
            );
        }
        for bad in ["0.5", "1,2345678", "", ",5", "1,", "x"] {
            assert!(parse_micros(bad, DecimalMark::Comma).is_err(), "{bad}");
        }
        let mut clock = ParisClock::default();
        for text in [
            "25/10/2026 02:30:00",
            "25/10/2026 02:59:59",
            "25/10/2026 03:00:00",
            "29/03/2026 02:30:00",
            "29/03/2026 01:59:59",
            "01/11/2026 00:30:00",
            "31/12/2026 23:59:59",
        ] {
            let slow = parse_paris_timestamp(text).unwrap();
            let (micros, date) = clock.parse(text).unwrap();
            assert_eq!(micros, slow.timestamp_micros(), "{text}");
            assert_eq!(date, paris_date(slow), "{text}");
        }
        for bad in [
            "31/02/2026 10:00:00",
            "2026-10-05 10:30:00",
            "01/10/2026 24:00:00",
            "1/10/2026 10:00:00",
        ] {
            assert_eq!(clock.parse(bad).unwrap_err().code, "BAD_TIMESTAMP", "{bad}");
        }
    }

    fn to_micros_for_test(value: Decimal) -> i128 {
        let mut v = value;
        v.rescale(6);
        v.mantissa()
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("-5").unwrap_err().code, "OUT_OF_RANGE");
        assert_eq!(parse_count("1.5").unwrap_err().code, "BAD_NUMBER");
        assert_eq!(parse_count("42").unwrap(), 42);
    }
}
