//! RIO check (relevé d'identité opérateur): is a RIO consistent with the
//! mobile number it is given for, before a porting order is sent?
//!
//! A mobile RIO has 12 characters, `OO Q RRRRRR CCC` (ARCEP decision
//! 2009-0239, article 10): `OO` the donor operator (two digits), `Q` the
//! contract type (`P` particulier, `E` entreprise), `RRRRRR` the customer
//! reference (six of `A–Z`, `0–9`) and `CCC` a key computed from the first
//! nine characters followed by the number in its national form (10 digits,
//! `0612345678`). The key is the published one: over the alphabet
//! `ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+` (A = 0 … Z = 25, 0 = 26 … 9 =
//! 35, `+` = 36), three running sums mod 37 with weights 1, 2 and 4, each
//! encoded as one character of that alphabet (docs/TOOLS.md).
//!
//! A verdict names the first problem found, in this order: length,
//! characters (lower case is refused: RIOs are written in capitals), operator
//! code, contract type, number, key. A wrong key never reveals the expected
//! one: a mismatch may come from the reference as well as from the key, and
//! a desk that copied the expected key would turn a typo into a valid-looking
//! RIO for the wrong line.
//!
//! [`check_file`] checks a batch of porting orders: a CSV file with a header
//! naming the columns `rio` and `msisdn`, separated by `;` (as the MVNE's
//! files) or `,`. A bad row is a verdict, not an error; a file that cannot
//! be read, or lacks a column, is an error naming the file, line and column.

use std::path::Path;

use serde::Serialize;

use crate::core::csvfile::{self, CsvFile, CsvFileError};

/// The key's alphabet, in the published order.
pub const ALPHABET: &[u8; 37] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+";

/// The length of a RIO.
pub const RIO_LENGTH: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum RioError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] CsvFileError),
}

/// Why a RIO is refused for a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not 12 characters.
    Length { found: usize },
    /// A lower-case letter at a (1-based) position.
    LowerCase { position: usize, character: char },
    /// A character outside `A–Z`, `0–9` (and `+` in the key).
    Character { position: usize, character: char },
    /// The operator code is not two digits.
    Operator { found: String },
    /// The contract type is not `P` or `E`.
    ContractType { found: char },
    /// The number is not a French mobile number.
    Number { found: String },
    /// The key does not match the rest of the RIO and the number.
    Key,
    /// A field of a batch row is empty.
    Missing { column: &'static str },
    /// A field of a batch row is not UTF-8 text.
    Encoding { column: &'static str },
}

impl Problem {
    /// A stable code for scripts (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Length { .. } => "BAD_LENGTH",
            Problem::LowerCase { .. } => "LOWER_CASE",
            Problem::Character { .. } => "BAD_CHARACTER",
            Problem::Operator { .. } => "BAD_OPERATOR",
            Problem::ContractType { .. } => "BAD_CONTRACT_TYPE",
            Problem::Number { .. } => "BAD_NUMBER",
            Problem::Key => "WRONG_KEY",
            Problem::Missing { .. } => "MISSING",
            Problem::Encoding { .. } => "BAD_ENCODING",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Length { found } => {
                write!(f, "the RIO has {found} characters, a RIO has {RIO_LENGTH}")
            }
            Problem::LowerCase {
                position,
                character,
            } => write!(
                f,
                "character {position} '{character}' is lower case: a RIO is written in capitals"
            ),
            Problem::Character {
                position,
                character,
            } => write!(
                f,
                "character {position} '{}' is not allowed (A-Z, 0-9, and + in the key)",
                character.escape_default()
            ),
            Problem::Operator { found } => {
                write!(f, "the operator code '{found}' is not two digits")
            }
            Problem::ContractType { found } => write!(
                f,
                "the contract type '{found}' is not P (particulier) or E (entreprise)"
            ),
            Problem::Number { found } => write!(
                f,
                "'{found}' is not a French mobile number (06 or 07 and 8 digits, or +33 6/7…)"
            ),
            Problem::Key => write!(f, "the key does not match the number"),
            Problem::Missing { column } => write!(f, "no {column} in this row"),
            Problem::Encoding { column } => write!(f, "the {column} is not valid UTF-8 text"),
        }
    }
}

/// The national form (`0612345678`) of a French mobile number written
/// `0612345678`, `+33612345678`, `33612345678` or `0033612345678`, spaces,
/// dots and dashes between digits ignored.
pub fn national_number(msisdn: &str) -> Result<String, Problem> {
    let bad = || Problem::Number {
        found: msisdn.to_string(),
    };
    let compact: String = msisdn
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .collect();
    let digits = if let Some(rest) = compact.strip_prefix('+') {
        rest.strip_prefix("33").ok_or_else(bad)?.to_string()
    } else if let Some(rest) = compact.strip_prefix("0033") {
        rest.to_string()
    } else if compact.len() == 11 && compact.starts_with("33") {
        compact[2..].to_string()
    } else if compact.len() == 10 && compact.starts_with('0') {
        compact[1..].to_string()
    } else {
        return Err(bad());
    };
    // `digits` is the number without its trunk 0: 9 digits, mobile 6 or 7.
    if digits.len() != 9
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(digits.as_bytes()[0], b'6' | b'7')
    {
        return Err(bad());
    }
    Ok(format!("0{digits}"))
}

/// The key of the first nine characters of a RIO and a national number:
/// `None` if a character is outside the alphabet.
pub fn key(first_nine: &str, national: &str) -> Option<String> {
    let (mut a, mut b, mut c) = (0u32, 0u32, 0u32);
    for byte in first_nine.bytes().chain(national.bytes()) {
        let value = ALPHABET.iter().position(|x| *x == byte)? as u32;
        a = (a + value) % 37;
        b = (2 * b + value) % 37;
        c = (4 * c + value) % 37;
    }
    let letter = |i: u32| ALPHABET[i as usize] as char;
    Some([letter(a), letter(b), letter(c)].iter().collect())
}

/// Checks a RIO against a number: the national form of the number, or the
/// first problem found.
pub fn check(rio: &str, msisdn: &str) -> Result<String, Problem> {
    let rio = rio.trim();
    let chars: Vec<char> = rio.chars().collect();
    if chars.len() != RIO_LENGTH {
        return Err(Problem::Length { found: chars.len() });
    }
    for (i, &character) in chars.iter().enumerate() {
        let position = i + 1;
        if character.is_ascii_lowercase() {
            return Err(Problem::LowerCase {
                position,
                character,
            });
        }
        let allowed = character.is_ascii_uppercase()
            || character.is_ascii_digit()
            || (character == '+' && position > 9);
        if !allowed {
            return Err(Problem::Character {
                position,
                character,
            });
        }
    }
    // Every character is ASCII from here on: byte slices are safe.
    let operator = &rio[0..2];
    if !operator.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::Operator {
            found: operator.to_string(),
        });
    }
    if !matches!(chars[2], 'P' | 'E') {
        return Err(Problem::ContractType { found: chars[2] });
    }
    let national = national_number(msisdn)?;
    match key(&rio[0..9], &national) {
        Some(expected) if expected == rio[9..] => Ok(national),
        _ => Err(Problem::Key),
    }
}

/// The verdict on one RIO and number.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rio: String,
    pub msisdn: String,
    pub valid: bool,
    /// The number in its national form, when it is a French mobile number.
    pub national: Option<String>,
    /// `BAD_LENGTH`, `LOWER_CASE`, `BAD_CHARACTER`, `BAD_OPERATOR`,
    /// `BAD_CONTRACT_TYPE`, `BAD_NUMBER`, `WRONG_KEY`, `MISSING`.
    pub code: Option<&'static str>,
    pub reason: Option<String>,
}

impl Verdict {
    pub fn of(rio: &str, msisdn: &str) -> Verdict {
        let result = check(rio, msisdn);
        let national = match &result {
            Ok(national) => Some(national.clone()),
            Err(_) => national_number(msisdn).ok(),
        };
        Verdict::new(rio, msisdn, national, result.err())
    }

    fn new(rio: &str, msisdn: &str, national: Option<String>, problem: Option<Problem>) -> Self {
        Verdict {
            rio: rio.trim().to_string(),
            msisdn: msisdn.trim().to_string(),
            valid: problem.is_none(),
            national,
            code: problem.as_ref().map(Problem::code),
            reason: problem.map(|p| p.to_string()),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &str| {
            if s.is_empty() {
                "(empty)".to_string()
            } else {
                s.to_string()
            }
        };
        let (rio, msisdn) = (shown(&self.rio), shown(&self.msisdn));
        match &self.reason {
            None => write!(f, "valid: RIO {rio} matches {msisdn}"),
            Some(reason) => write!(f, "invalid: RIO {rio} for {msisdn}: {reason}"),
        }
    }
}

/// `mvnobill rio check RIO MSISDN`.
#[derive(Debug, Serialize)]
pub struct RioCheckReport {
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl RioCheckReport {
    pub fn passed(&self) -> bool {
        self.verdict.valid
    }
}

impl std::fmt::Display for RioCheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.verdict.fmt(f)
    }
}

/// One row of a batch file and its verdict.
#[derive(Debug, Serialize)]
pub struct RowVerdict {
    pub line: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// `mvnobill rio check --file F`.
#[derive(Debug, Serialize)]
pub struct RioBatchReport {
    pub file: String,
    pub checked: usize,
    pub valid: usize,
    pub invalid: usize,
    pub rows: Vec<RowVerdict>,
}

impl RioBatchReport {
    pub fn passed(&self) -> bool {
        self.invalid == 0
    }
}

impl std::fmt::Display for RioBatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for row in &self.rows {
            writeln!(f, "line {}: {}", row.line, row.verdict)?;
        }
        write!(
            f,
            "rio check {}: {} rows, {} valid, {} invalid",
            self.file, self.checked, self.valid, self.invalid
        )
    }
}

/// The separator of a batch file: `;` unless the header has none and has a `,`.
fn separator(bytes: &[u8]) -> u8 {
    let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    if !header.contains(&b';') && header.contains(&b',') {
        b','
    } else {
        b';'
    }
}

/// Checks every row of a batch file (columns `rio` and `msisdn`).
pub fn check_file(path: &Path) -> Result<RioBatchReport, RioError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| RioError::Read {
        path: file.clone(),
        source,
    })?;
    check_bytes(&file, &bytes)
}

/// As [`check_file`], on the bytes of a file named `file` in messages.
pub fn check_bytes(file: &str, bytes: &[u8]) -> Result<RioBatchReport, RioError> {
    let csv = CsvFile::parse_with(file, bytes, separator(bytes))?;
    let index = csv.columns(&[("rio", true), ("msisdn", true)])?;
    let mut rows = Vec::with_capacity(csv.records.len());
    for record in &csv.records {
        let mut problem = None;
        let mut field =
            |i: usize, column: &'static str| match csvfile::text_field(&record.fields, index[i]) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    problem.get_or_insert(Problem::Missing { column });
                    ""
                }
                Err(_) => {
                    problem.get_or_insert(Problem::Encoding { column });
                    ""
                }
            };
        let (rio, msisdn) = (field(0, "rio"), field(1, "msisdn"));
        let verdict = match problem {
            Some(problem) => Verdict::new(rio, msisdn, None, Some(problem)),
            None => Verdict::of(rio, msisdn),
        };
        rows.push(RowVerdict {
            line: record.line,
            verdict,
        });
    }
    let valid = rows.iter().filter(|r| r.verdict.valid).count();
    Ok(RioBatchReport {
        file: file.to_string(),
        checked: rows.len(),
        valid,
        invalid: rows.len() - valid,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Worked by hand (alphabet A=0 … Z=25, '0'=26 … '9'=35, '+'=36), RIO
    // 02P123456 and number 0612345678. Values of the 19 characters:
    //   0  2  P  1  2  3  4  5  6 | 0  6  1  2  3  4  5  6  7  8
    //  26 28 15 27 28 29 30 31 32 |26 32 27 28 29 30 31 32 33 34
    // a = (a + v) mod 37 — the plain sum, 548 = 14×37 + 30 → a = 30 = '4'.
    // b = (2b + v) mod 37, after each character:
    //  26 6 27 7 5 2 34 25 8 | 5 5 0 28 11 15 24 6 8 13 → b = 13 = 'N'.
    //  (e.g. 2×26+28 = 80 = 2×37+6; 2×6+15 = 27; 2×27+27 = 81 = 2×37+7.)
    // c = (4c + v) mod 37, after each character:
    //  26 21 25 16 18 27 27 28 33 | 10 35 19 30 1 34 19 34 21 7 → c = 7 = 'H'.
    //  (e.g. 4×26+28 = 132 = 3×37+21; 4×21+15 = 99 = 2×37+25.)
    // Key "4NH": RIO 02P1234564NH for 0612345678.
    const RIO: &str = "02P1234564NH";
    const NUMBER: &str = "0612345678";

    // Second example, with letters in the reference: RIO 01EAB12CD and
    // number 0798765432. Values of the 19 characters:
    //   0  1  E  A  B  1  2  C  D | 0  7  9  8  7  6  5  4  3  2
    //  26 27  4  0  1 27 28  2  3 |26 33 35 34 33 32 31 30 29 28
    // a: 118 (RIO part) + 311 (number) = 429 = 11×37 + 22 → a = 22 = 'W'.
    // b after each: 26 5 14 28 20 30 14 30 26 | 4 4 6 9 14 23 3 36 27 8 → 'I' (8).
    // c after each: 26 20 10 3 13 5 11 9 2 | 34 21 8 29 1 36 27 27 26 21 → 'V' (21).
    // Key "WIV".
    const RIO_2: &str = "01EAB12CDWIV";
    const NUMBER_2: &str = "0798765432";

    #[test]
    fn the_hand_computed_keys() {
        assert_eq!(key("02P123456", NUMBER).as_deref(), Some("4NH"));
        assert_eq!(key("01EAB12CD", NUMBER_2).as_deref(), Some("WIV"));
        assert_eq!(check(RIO, NUMBER), Ok(NUMBER.to_string()));
        assert_eq!(check(RIO_2, NUMBER_2), Ok(NUMBER_2.to_string()));
    }

    #[test]
    fn the_number_in_every_written_form() {
        for form in [
            "0612345678",
            "+33612345678",
            "33612345678",
            "0033612345678",
            "06 12 34 56 78",
            "06.12.34.56.78",
        ] {
            assert_eq!(check(RIO, form), Ok(NUMBER.to_string()), "{form}");
        }
    }

    #[test]
    fn a_wrong_key_is_refused() {
        assert_eq!(check("02P1234564NI", NUMBER), Err(Problem::Key));
        // Two keys swapped between the examples.
        assert_eq!(check("02P123456WIV", NUMBER), Err(Problem::Key));
        // A changed reference with the key of the original.
        assert_eq!(check("02P1234574NH", NUMBER), Err(Problem::Key));
    }

    #[test]
    fn the_wrong_number_is_refused() {
        // Another mobile number: the key no longer matches.
        assert_eq!(check(RIO, "0612345679"), Err(Problem::Key));
        assert_eq!(check(RIO_2, NUMBER), Err(Problem::Key));
        // Not a mobile number, or not a number at all.
        for bad in [
            "0112345678",
            "061234567",
            "06123456789",
            "+44612345678",
            "3361234567",
            "06123x5678",
            "",
        ] {
            assert!(
                matches!(check(RIO, bad), Err(Problem::Number { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_wrong_length_is_refused() {
        assert_eq!(
            check("02P1234564N", NUMBER),
            Err(Problem::Length { found: 11 })
        );
        assert_eq!(
            check("02P1234564NHX", NUMBER),
            Err(Problem::Length { found: 13 })
        );
        assert_eq!(check("", NUMBER), Err(Problem::Length { found: 0 }));
        // Multi-byte characters count as one each.
        assert_eq!(
            check("02P12345é4NH", NUMBER),
            Err(Problem::Character {
                position: 9,
                character: 'é'
            })
        );
    }

    #[test]
    fn lower_case_and_other_characters_are_refused() {
        assert_eq!(
            check("02p1234564NH", NUMBER),
            Err(Problem::LowerCase {
                position: 3,
                character: 'p'
            })
        );
        assert_eq!(
            check("02P1234564nh", NUMBER),
            Err(Problem::LowerCase {
                position: 11,
                character: 'n'
            })
        );
        assert_eq!(
            check("02P12-4564NH", NUMBER),
            Err(Problem::Character {
                position: 6,
                character: '-'
            })
        );
        // '+' belongs to the key's alphabet only.
        assert_eq!(
            check("02P12+4564NH", NUMBER),
            Err(Problem::Character {
                position: 6,
                character: '+'
            })
        );
    }

    #[test]
    fn operator_and_contract_type() {
        assert_eq!(
            check("A2P1234564NH", NUMBER),
            Err(Problem::Operator { found: "A2".into() })
        );
        assert_eq!(
            check("02X1234564NH", NUMBER),
            Err(Problem::ContractType { found: 'X' })
        );
    }

    #[test]
    fn messages_do_not_reveal_the_key() {
        let verdict = Verdict::of("02P1234564NI", NUMBER);
        assert!(!verdict.valid);
        assert_eq!(verdict.code, Some("WRONG_KEY"));
        assert_eq!(
            verdict.to_string(),
            "invalid: RIO 02P1234564NI for 0612345678: the key does not match the number"
        );
        assert_eq!(
            Verdict::of(RIO, "+33612345678").to_string(),
            "valid: RIO 02P1234564NH matches +33612345678"
        );
    }

    #[test]
    fn a_batch_with_either_separator() {
        let text = b"rio;msisdn\n02P1234564NH;0612345678\n02P1234564NI;0612345678\n;0612345678\n02P1234564NH;06\xff\n";
        let report = check_bytes("orders.csv", text).unwrap();
        assert_eq!((report.checked, report.valid, report.invalid), (4, 1, 3));
        assert_eq!(report.rows[3].verdict.code, Some("BAD_ENCODING"));
        assert_eq!(report.rows[1].line, 3);
        assert_eq!(report.rows[1].verdict.code, Some("WRONG_KEY"));
        assert_eq!(report.rows[2].verdict.code, Some("MISSING"));
        let text = "order,msisdn,rio\nA1,+33798765432,01EAB12CDWIV\n";
        let report = check_bytes("orders.csv", text.as_bytes()).unwrap();
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn a_batch_without_its_columns_is_refused() {
        let err = check_bytes("orders.csv", b"rio;number\n02P1234564NH;0612345678\n")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "orders.csv line 1: required column 'msisdn' is missing from the header"
        );
        let err = check_bytes("orders.csv", b"").err().unwrap();
        assert_eq!(
            err.to_string(),
            "orders.csv: the file is empty (no header line)"
        );
    }
}
