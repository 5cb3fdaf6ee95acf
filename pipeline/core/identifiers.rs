//! The identifiers a customer record and the integrator's identity carry,
//! each checked one way: IBAN (ISO 13616), BIC (ISO 9362), the SEPA
//! mandate reference (RUM) and creditor identifier (ICS), SIRET (Luhn),
//! French VAT number and e-mail address. One mod 97 and one Luhn serve
//! them all, and `gen` uses the same to make valid ones.
//!
//! A message never repeats an IBAN: it is a customer's bank data.

use std::str::FromStr;

/// ISO 13616 check: the first 4 characters moved to the end, the whole
/// mod 97 must be 1.
pub fn iban_is_valid(iban: &str) -> bool {
    let iban: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if iban.len() < 15 || iban.len() > 34 || !iban.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    mod97(&format!("{}{}", &iban[4..], &iban[..4])) == Some(1)
}

/// The sum of the Luhn check over ASCII digits: from the right, every
/// second digit doubled (its digits added).
fn luhn_sum(digits: &str) -> u32 {
    digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match i % 2 {
                1 if d > 4 => d * 2 - 9,
                1 => d * 2,
                _ => d,
            }
        })
        .sum()
}

/// Whether ASCII digits pass the Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    luhn_sum(digits).is_multiple_of(10)
}

/// The Luhn check digit to append to ASCII `digits`.
pub fn luhn_digit(digits: &str) -> u32 {
    (10 - luhn_sum(&format!("{digits}0")) % 10) % 10
}

/// IBAN lengths of the countries of the SEPA schemes (ISO 13616 registry).
/// An IBAN of another country is checked for its check digits only.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AL", 28),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("BL", 27),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GF", 27),
    ("GI", 23),
    ("GP", 27),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MF", 27),
    ("MK", 19),
    ("MQ", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PM", 27),
    ("PT", 25),
    ("RE", 27),
    ("RO", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("VA", 22),
    ("YT", 27),
];

/// An IBAN without its spaces, in capitals, as the file writes it.
pub fn compact_iban(iban: &str) -> String {
    iban.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What is wrong with an IBAN (ISO 13616), if anything. The message never
/// repeats the IBAN: it is a customer's bank data.
pub fn iban_problem(iban: &str) -> Option<String> {
    let iban = compact_iban(iban);
    if !iban.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Some("an IBAN has letters and digits only".into());
    }
    let bytes = iban.as_bytes();
    if bytes.len() < 5
        || !bytes[..2].iter().all(u8::is_ascii_uppercase)
        || !bytes[2..4].iter().all(u8::is_ascii_digit)
    {
        return Some("an IBAN starts with a country code and 2 check digits".into());
    }
    let country = &iban[..2];
    if let Some((_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        if iban.len() != *length {
            return Some(format!(
                "an IBAN of {country} has {length} characters, this one has {}",
                iban.len()
            ));
        }
    }
    if !iban_is_valid(&iban) {
        return Some("the IBAN's check digits are wrong".into());
    }
    None
}

/// What is wrong with a BIC (ISO 9362, as the pain.008 schema restricts
/// it: 4 letters of bank, 2 of country, 2 of location, 3 optional of
/// branch), if anything.
pub fn bic_problem(bic: &str) -> Option<String> {
    let b = bic.as_bytes();
    let location_ok = b.len() >= 8
        && (b[6].is_ascii_uppercase() || (b'2'..=b'9').contains(&b[6]))
        && ((b[7].is_ascii_uppercase() && b[7] != b'O') || b[7].is_ascii_digit());
    let ok = (b.len() == 8 || b.len() == 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && location_ok
        && b[8..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    (!ok).then(|| {
        format!(
            "'{bic}' is not a BIC (8 or 11 capitals and digits: bank, country, location, branch)"
        )
    })
}

/// The characters the EPC allows in a mandate reference (RUM) and in the
/// other identifiers of the file.
pub fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/-?:().,'+ ".contains(c)
}

/// What is wrong with a mandate reference (RUM, the EPC's AT-01 "unique
/// mandate reference"), if anything: at most 35 characters of `A-Z a-z 0-9
/// / - ? : ( ) . , ' +` and space, not starting nor ending with `/`, no
/// `//` (EPC implementation guidelines, identifiers).
pub fn rum_problem(rum: &str) -> Option<String> {
    let length = rum.chars().count();
    if length > 35 {
        return Some(format!(
            "'{rum}' has {length} characters, a RUM has at most 35"
        ));
    }
    if let Some(c) = rum.chars().find(|c| !is_identifier_char(*c)) {
        return Some(format!(
            "'{rum}' has the character '{c}', a RUM has only A-Z a-z 0-9 / - ? : ( ) . , ' + and space"
        ));
    }
    if rum.trim() != rum {
        return Some(format!("'{rum}' starts or ends with a space"));
    }
    if rum.starts_with('/') || rum.ends_with('/') || rum.contains("//") {
        return Some(format!(
            "'{rum}': a RUM does not start or end with '/' nor contain '//'"
        ));
    }
    None
}

/// ISO 7064 mod 97 of an identifier's characters, letters counting
/// A = 10 … Z = 35 (either case); None if one is not a letter or digit.
pub fn mod97(text: &str) -> Option<u32> {
    let mut remainder: u32 = 0;
    for c in text.chars() {
        let value = c.to_digit(36)?;
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    Some(remainder)
}

/// What is wrong with a SEPA creditor identifier (ICS), if anything. EPC
/// "Creditor Identifier Overview": 2 letters of country, 2 check digits, 3
/// characters of creditor business code (`ZZZ` when unused, not part of
/// the check), then the national identifier (28 at most); the check digits
/// are ISO 7064 mod 97-10 of the national identifier followed by the
/// country code and `00`. `FR72ZZZ123456` is valid.
pub fn ics_problem(ics: &str) -> Option<String> {
    let b = ics.as_bytes();
    let shape = b.len() >= 8
        && b.len() <= 35
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b.iter().all(u8::is_ascii_alphanumeric);
    if !shape {
        return Some(format!(
            "'{ics}' is not a SEPA creditor identifier (country, 2 check digits, 3-character business code, national identifier: FR72ZZZ123456)"
        ));
    }
    let national = &ics[7..];
    let country = &ics[..2];
    let expected = 98 - mod97(&format!("{national}{country}00"))?;
    let found: u32 = ics[2..4].parse().ok()?;
    (found != expected).then(|| {
        format!(
            "'{ics}': the check digits are wrong (mod 97-10 of the identifier without its business code gives {expected:02})"
        )
    })
}

/// What is wrong with a SIRET, if anything: 14 digits passing the Luhn
/// check (INSEE). La Poste's establishments (SIREN 356000000) use a digit
/// sum multiple of 5 instead.
pub fn siret_problem(siret: &str) -> Option<String> {
    let digits: String = siret.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("'{siret}' is not a SIRET (14 digits)"));
    }
    if digits.starts_with("356000000") {
        let sum: u32 = digits.bytes().map(|b| (b - b'0') as u32).sum();
        return (!sum.is_multiple_of(5))
            .then(|| format!("'{siret}': the SIRET's check digit is wrong"));
    }
    (!luhn_valid(&digits)).then(|| format!("'{siret}': the SIRET's check digit is wrong (Luhn)"))
}

/// The 2-digit key of a French VAT number: `(12 + 3 × (SIREN mod 97)) mod
/// 97`.
pub fn french_vat_key(siren: u64) -> u64 {
    (12 + 3 * (siren % 97)) % 97
}

/// What is wrong with an intra-community VAT number, if anything. A French
/// one is `FR`, a 2-digit key and the SIREN, the key being
/// `(12 + 3 × (SIREN mod 97)) mod 97`; another country's is only checked
/// for its shape (2 letters, then letters and digits).
pub fn vat_number_problem(vat: &str) -> Option<String> {
    let compact: String = vat.chars().filter(|c| !c.is_whitespace()).collect();
    let b = compact.as_bytes();
    if b.len() < 4
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..].iter().all(u8::is_ascii_alphanumeric)
    {
        return Some(format!(
            "'{vat}' is not a VAT number (country code, then the number)"
        ));
    }
    if &compact[..2] != "FR" {
        return None;
    }
    let (key, siren) = compact[2..].split_at(2);
    if siren.len() != 9 || !compact[2..].bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "'{vat}' is not a French VAT number (FR, 2 digits of key, the 9-digit SIREN)"
        ));
    }
    let expected = french_vat_key(siren.parse().ok()?);
    (key.parse::<u64>().ok() != Some(expected))
        .then(|| format!("'{vat}': the key is wrong (for SIREN {siren} it is {expected:02})"))
}

/// What is wrong with an e-mail address, if anything (the mailer's rules).
pub fn email_problem(address: &str) -> Option<String> {
    lettre::Address::from_str(address.trim())
        .err()
        .map(|e| format!("'{address}' is not an e-mail address ({e})"))
}

// ---- the SEPA Latin character set --------------------------------------------

/// Letters with their accent taken off (Latin-1 and Latin Extended-A).
const FOLDS: &[(&str, &str)] = &[
    ("àáâãäåāăą", "a"),
    ("ÀÁÂÃÄÅĀĂĄ", "A"),
    ("æ", "ae"),
    ("Æ", "AE"),
    ("çćĉċč", "c"),
    ("ÇĆĈĊČ", "C"),
    ("ďđð", "d"),
    ("ĎĐÐ", "D"),
    ("èéêëēĕėęě", "e"),
    ("ÈÉÊËĒĔĖĘĚ", "E"),
    ("ĝğġģ", "g"),
    ("ĜĞĠĢ", "G"),
    ("ĥħ", "h"),
    ("ĤĦ", "H"),
    ("ìíîïĩīĭįı", "i"),
    ("ÌÍÎÏĨĪĬĮİ", "I"),
    ("ĵ", "j"),
    ("Ĵ", "J"),
    ("ķ", "k"),
    ("Ķ", "K"),
    ("ĺļľŀł", "l"),
    ("ĹĻĽĿŁ", "L"),
    ("ñńņňŉ", "n"),
    ("ÑŃŅŇ", "N"),
    ("òóôõöøōŏő", "o"),
    ("ÒÓÔÕÖØŌŎŐ", "O"),
    ("œ", "oe"),
    ("Œ", "OE"),
    ("ŕŗř", "r"),
    ("ŔŖŘ", "R"),
    ("śŝşš", "s"),
    ("ŚŜŞŠ", "S"),
    ("ß", "ss"),
    ("ţťŧ", "t"),
    ("ŢŤŦ", "T"),
    ("þ", "th"),
    ("Þ", "TH"),
    ("ùúûüũūŭůűų", "u"),
    ("ÙÚÛÜŨŪŬŮŰŲ", "U"),
    ("ŵ", "w"),
    ("Ŵ", "W"),
    ("ýÿŷ", "y"),
    ("ÝŸŶ", "Y"),
    ("źżž", "z"),
    ("ŹŻŽ", "Z"),
    // Signs outside the set, replaced by the nearest one inside it.
    ("&", "+"),
    ("\"«»“”‘’`´", "'"),
    ("<[{", "("),
    (">]}", ")"),
    (";", ","),
    ("_–—", "-"),
    ("!", "."),
];

/// `text` in the SEPA Latin character set, spaces collapsed, cut to `max`
/// characters. A character with no counterpart becomes a space.
pub fn sepa_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_identifier_char(c) {
            out.push(c);
        } else if let Some((_, to)) = FOLDS.iter().find(|(from, _)| from.contains(c)) {
            out.push_str(to);
        } else {
            out.push(' ');
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_check_digits() {
        assert!(iban_is_valid("FR7630006000011234567890189"));
        assert!(!iban_is_valid("FR7630006000011234567890188"));
    }

    #[test]
    fn luhn_digit_and_check_agree() {
        // The INSEE's example SIREN 732 829 320 and a SIRET.
        assert_eq!(luhn_digit("73282932"), 0);
        assert!(luhn_valid("732829320"));
        assert!(!luhn_valid("732829321"));
        for payload in ["1234567820001", "35600000", "9"] {
            let whole = format!("{payload}{}", luhn_digit(payload));
            assert!(luhn_valid(&whole), "{whole}");
        }
    }

    #[test]
    fn identifiers_follow_the_epc_rules() {
        assert_eq!(ics_problem("FR72ZZZ123456"), None);
        assert_eq!(
            ics_problem("FR72ABC123456"),
            None,
            "the business code is not checked"
        );
        assert!(ics_problem("FR73ZZZ123456").unwrap().contains("gives 72"));
        assert!(ics_problem("FR72").is_some());
        assert!(ics_problem("fr72ZZZ123456").is_some());
        // The German example of the EPC's overview.
        assert_eq!(ics_problem("DE98ZZZ09999999999"), None);

        assert_eq!(rum_problem("RUM-C00001-001"), None);
        assert_eq!(rum_problem("a/b ?:().,'+-Z9"), None);
        assert!(rum_problem(&"R".repeat(36))
            .unwrap()
            .contains("36 characters"));
        assert_eq!(rum_problem(&"R".repeat(35)), None);
        assert!(rum_problem("RUM_1").unwrap().contains("the character '_'"));
        assert!(rum_problem("RUMé").unwrap().contains("'é'"));
        assert!(rum_problem("/RUM").is_some());
        assert!(rum_problem("RUM/").is_some());
        assert!(rum_problem("R//M").is_some());
        assert!(rum_problem(" RUM").is_some());

        assert_eq!(iban_problem("FR76 3000 6000 0112 3456 7890 189"), None);
        assert_eq!(
            iban_problem("FR7630006000011234567890188").as_deref(),
            Some("the IBAN's check digits are wrong")
        );
        assert_eq!(
            iban_problem("FR76300060000112345678901").as_deref(),
            Some("an IBAN of FR has 27 characters, this one has 25")
        );
        assert!(iban_problem("FR76-3000").is_some());

        assert_eq!(bic_problem("AGRIFRPPXXX"), None);
        assert_eq!(bic_problem("CMCIFR2A"), None);
        assert!(bic_problem("AGRIFRPP1").is_some());
        assert!(bic_problem("agrifrppxxx").is_some());
        assert!(
            bic_problem("AGRIFR1PXXX").is_some(),
            "location starts 2-9 or a letter"
        );
    }

    #[test]
    fn siret_vat_and_email() {
        assert_eq!(siret_problem("12345678200010"), None);
        assert_eq!(
            siret_problem("12345678200011").as_deref(),
            Some("'12345678200011': the SIRET's check digit is wrong (Luhn)")
        );
        assert!(siret_problem("1234").is_some());
        assert_eq!(vat_number_problem("FR11123456782"), None);
        assert_eq!(
            vat_number_problem("FR12123456782").as_deref(),
            Some("'FR12123456782': the key is wrong (for SIREN 123456782 it is 11)")
        );
        assert_eq!(vat_number_problem("DE123456789"), None);
        assert!(vat_number_problem("FR1112345678").is_some());
        assert_eq!(email_problem("facturation@exemple-mobile.fr"), None);
        assert!(email_problem("facturation.exemple-mobile.fr").is_some());
    }
}
