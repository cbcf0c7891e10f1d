//! Codice fiscale of a person: the 16-character code IO uses to address a citizen.
//!
//! Parsing is lenient about case and surrounding whitespace and strict about everything
//! else: shape, birth month and day (with omocodia undone) and the check letter. Fiscal
//! codes are personal data, so `Debug` and [`FiscalCode::redacted`] mask them; only
//! `Display` and [`FiscalCode::as_str`] give the code in clear, for the IO API.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A valid codice fiscale of a person, upper-case, 16 ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiscalCode(String);

/// Whether IO's sandbox recipient [`FiscalCode::TEST_RECIPIENT`] is accepted.
///
/// That code fails the day rule, so only a source configured for testing should allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestRecipient {
    Allowed,
    Rejected,
}

/// Why a text is not a valid codice fiscale; checks run in the order of the variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiscalCodeError {
    #[error("a fiscal code has 16 characters, this one has {found}")]
    Length { found: usize },
    #[error("character {position} is {found:?} but must be {expected}")]
    Shape { position: usize, found: char, expected: &'static str },
    #[error("month letter {letter:?} is not one of ABCDEHLMPRST (January to December)")]
    Month { letter: char },
    #[error("day {day:02} (characters 10-11) is neither 01-31 (men) nor 41-71 (women, day + 40)")]
    Day { day: u32 },
    #[error("day {day} does not exist in {} of a year ending in {year:02}", month_name(*.month))]
    DayNotInMonth { day: u32, month: u32, year: u32 },
    #[error("check letter is {found:?} but the first 15 characters give {expected:?}")]
    CheckLetter { expected: char, found: char },
}

impl FiscalCode {
    /// The code IO always accepts as a recipient of a service in the sandbox.
    pub const TEST_RECIPIENT: &'static str = "AAAAAA00A00A000A";

    /// Parses `text` after trimming it and upper-casing ASCII letters.
    ///
    /// The shape check accepts any letter as character 9 so that a wrong month gets its
    /// own [`FiscalCodeError::Month`]; together the checks equal the shape regex of
    /// `FACTS.md` §2.
    pub fn parse(text: &str, test: TestRecipient) -> Result<FiscalCode, FiscalCodeError> {
        let code = text.trim().to_ascii_uppercase();
        if test == TestRecipient::Allowed && code == Self::TEST_RECIPIENT {
            return Ok(FiscalCode(code));
        }
        check_length(&code)?;
        check_shape(&code)?;
        // The shape check guarantees 16 ASCII bytes from here on.
        let bytes = code.as_bytes();
        check_birth_date(bytes)?;
        check_letter(bytes)?;
        Ok(FiscalCode(code))
    }

    /// The code in clear, for the IO API. Never log it: use [`FiscalCode::redacted`].
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code masked for logs: first three and last character, e.g. `BNC************V`.
    pub fn redacted(&self) -> String {
        let head = self.0.get(..3).unwrap_or_default();
        let tail = self.0.get(15..).unwrap_or_default();
        format!("{head}{}{tail}", "*".repeat(12))
    }

    /// Whether this is IO's sandbox recipient [`FiscalCode::TEST_RECIPIENT`].
    pub fn is_test_recipient(&self) -> bool {
        self.0 == Self::TEST_RECIPIENT
    }
}

impl FromStr for FiscalCode {
    type Err = FiscalCodeError;

    /// Parses with [`TestRecipient::Rejected`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        FiscalCode::parse(text, TestRecipient::Rejected)
    }
}

impl fmt::Display for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FiscalCode({})", self.redacted())
    }
}

impl Serialize for FiscalCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserializes with [`TestRecipient::Rejected`], like `FromStr`.
impl<'de> Deserialize<'de> for FiscalCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What each of the 16 positions may hold.
#[derive(Clone, Copy)]
enum Slot {
    Letter,
    Digit,
}

const LAYOUT: [Slot; 16] = {
    use Slot::{Digit as D, Letter as L};
    [L, L, L, L, L, L, D, D, L, D, D, L, D, D, D, L]
};

/// Letters that replace the digits 0..9 in omocodic codes.
const OMOCODIA: &[u8; 10] = b"LMNPQRSTUV";

/// Month letters, January to December.
const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";

/// Values of the characters at odd (1-based) positions, indexed by digit or letter - 'A'.
const ODD: [u32; 26] = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];

fn check_length(code: &str) -> Result<(), FiscalCodeError> {
    match code.chars().count() {
        16 => Ok(()),
        found => Err(FiscalCodeError::Length { found }),
    }
}

fn check_shape(code: &str) -> Result<(), FiscalCodeError> {
    for (index, (found, slot)) in code.chars().zip(LAYOUT).enumerate() {
        let (fits, expected) = match slot {
            Slot::Letter => (found.is_ascii_uppercase(), "a letter A-Z"),
            Slot::Digit => (
                found.is_ascii_digit() || is_omocodia_letter(found),
                "a digit or one of the omocodia letters LMNPQRSTUV",
            ),
        };
        if !fits {
            let position = index + 1;
            return Err(FiscalCodeError::Shape { position, found, expected });
        }
    }
    Ok(())
}

fn is_omocodia_letter(c: char) -> bool {
    u8::try_from(c).is_ok_and(|b| OMOCODIA.contains(&b))
}

/// Checks month and day; omocodia letters are read back as digits.
fn check_birth_date(code: &[u8]) -> Result<(), FiscalCodeError> {
    let year = slot_number(code[6], code[7]);
    let letter = code[8];
    let month = MONTHS
        .iter()
        .position(|&m| m == letter)
        .map(|index| index as u32 + 1)
        .ok_or(FiscalCodeError::Month { letter: char::from(letter) })?;
    let raw_day = slot_number(code[9], code[10]);
    let day = match raw_day {
        1..=31 => raw_day,
        41..=71 => raw_day - 40,
        _ => return Err(FiscalCodeError::Day { day: raw_day }),
    };
    if day > days_in_month(month, year) {
        return Err(FiscalCodeError::DayNotInMonth { day, month, year });
    }
    Ok(())
}

/// The two-digit number in two digit slots.
fn slot_number(tens: u8, units: u8) -> u32 {
    slot_digit(tens) * 10 + slot_digit(units)
}

fn slot_digit(b: u8) -> u32 {
    match OMOCODIA.iter().position(|&letter| letter == b) {
        Some(digit) => digit as u32,
        None => u32::from(b.wrapping_sub(b'0')),
    }
}

/// Days in `month` of a year ending in `year`: the code cannot tell 1900 from 2000, so
/// every year divisible by 4 counts as leap.
fn days_in_month(month: u32, year: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let index = month.saturating_sub(1) as usize;
    NAMES.get(index).copied().unwrap_or("an unknown month")
}

fn check_letter(code: &[u8]) -> Result<(), FiscalCodeError> {
    let expected = expected_check_letter(&code[..15]);
    let found = char::from(code[15]);
    if found == expected {
        Ok(())
    } else {
        Err(FiscalCodeError::CheckLetter { expected, found })
    }
}

/// Odd positions (1-based) use the ODD table, even ones the character's own value.
fn expected_check_letter(first_15: &[u8]) -> char {
    let sum: u32 = first_15
        .iter()
        .enumerate()
        .map(|(index, &b)| {
            let value = table_index(b);
            if index % 2 == 0 {
                ODD[value]
            } else {
                value as u32
            }
        })
        .sum();
    char::from(b'A' + (sum % 26) as u8)
}

/// Digits count as themselves, letters as their distance from 'A'.
fn table_index(b: u8) -> usize {
    let value = match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'A',
    };
    usize::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FiscalCodeError as E;

    fn check(input: &str, expected: Result<&str, FiscalCodeError>) {
        let parsed = input.parse::<FiscalCode>();
        let parsed = parsed.as_ref().map(FiscalCode::as_str);
        assert_eq!(parsed, expected.as_ref().map(|s| *s), "input {input:?}");
    }

    fn shape(position: usize, found: char, expected: &'static str) -> FiscalCodeError {
        E::Shape { position, found, expected }
    }

    const LETTER: &str = "a letter A-Z";
    const DIGIT: &str = "a digit or one of the omocodia letters LMNPQRSTUV";

    #[test]
    fn valid_codes_from_facts() {
        for code in [
            "BNCLRA85C52F205V",
            "VRDGPP50T01H501B",
            "SPSNMR79L71F839Q",
            "FOXLIX68R09D612Z",
            "RSSMRC60D30Z112N",
            "GLLPLA00B29A662V",
            "BNCLRA85C52F20RQ",
            "VRDGPPRLTLMHRLMI",
        ] {
            check(code, Ok(code));
        }
    }

    #[test]
    fn invalid_codes_from_facts() {
        check("VRDGPP50T01H501A", Err(E::CheckLetter { expected: 'B', found: 'A' }));
        check("VRDGPP50T01H501", Err(E::Length { found: 15 }));
        check("VRDGPP50F01H501A", Err(E::Month { letter: 'F' }));
        check("VRDGPP50T32H501J", Err(E::Day { day: 32 }));
        let feb_30 = E::DayNotInMonth { day: 30, month: 2, year: 90 };
        check("NREGUO90B30H501X", Err(feb_30));
        check("BNCLRA85C52F20WQ", Err(shape(15, 'W', DIGIT)));
    }

    #[test]
    fn lenient_about_case_and_whitespace() {
        check("bnclra85c52f205v", Ok("BNCLRA85C52F205V"));
        check("  VrdGpp50t01H501b\t\n", Ok("VRDGPP50T01H501B"));
    }

    #[test]
    fn length_counts_characters() {
        check("", Err(E::Length { found: 0 }));
        check("   ", Err(E::Length { found: 0 }));
        check("VRDGPP50T01H501BX", Err(E::Length { found: 17 }));
        check("VRDGPP50T01H501 B", Err(E::Length { found: 17 }));
        check("VRDGPP50T01H501É", Err(shape(16, 'É', LETTER)));
    }

    #[test]
    fn shape_reports_first_bad_position() {
        check("1RDGPP50T01H501B", Err(shape(1, '1', LETTER)));
        check("VRDGP550T01H501B", Err(shape(6, '5', LETTER)));
        check("VRDGPPA0T01H501B", Err(shape(7, 'A', DIGIT)));
        check("VRDGPP5009AH501B", Err(shape(9, '0', LETTER)));
        check("VRDGPP50T0KH501B", Err(shape(11, 'K', DIGIT)));
        check("VRDGPP50T017501B", Err(shape(12, '7', LETTER)));
        check("VRDGPP50T01H5-1B", Err(shape(14, '-', DIGIT)));
        check("VRDGPP50T01H5011", Err(shape(16, '1', LETTER)));
    }

    #[test]
    fn day_rules() {
        check("VRDGPP50T00H501C", Err(E::Day { day: 0 }));
        check("VRDGPP50T40H501G", Err(E::Day { day: 40 }));
        check("VRDGPP50T41H501F", Ok("VRDGPP50T41H501F"));
        check("VRDGPP50T72H501N", Err(E::Day { day: 72 }));
        check("VRDGPP50TPNH501K", Err(E::Day { day: 32 }));
        check("VRDGPP50A31H501R", Ok("VRDGPP50A31H501R"));
        check("VRDGPP50T31H501E", Ok("VRDGPP50T31H501E"));
        check("VRDGPP50T71H501I", Ok("VRDGPP50T71H501I"));
        let november_31 = E::DayNotInMonth { day: 31, month: 11, year: 50 };
        check("VRDGPP50S31H501C", Err(november_31));
        let april_31 = E::DayNotInMonth { day: 31, month: 4, year: 60 };
        check("RSSMRC60D31Z112M", Err(april_31.clone()));
        check("RSSMRC60D71Z112Q", Err(april_31));
        check("RSSMRC60D70Z112R", Ok("RSSMRC60D70Z112R"));
    }

    #[test]
    fn february_29_only_when_year_divisible_by_4() {
        check("GLLPLA04B29A662Z", Ok("GLLPLA04B29A662Z"));
        check("GLLPLA00B69A662Z", Ok("GLLPLA00B69A662Z"));
        let not_leap = E::DayNotInMonth { day: 29, month: 2, year: 1 };
        check("GLLPLA01B29A662W", Err(not_leap.clone()));
        check("GLLPLA01B69A662A", Err(not_leap.clone()));
        // Omocodic year "0M" reads as 01, "0L" as 00.
        check("GLLPLA0MB29A662H", Err(not_leap));
        check("GLLPLA0LB29A662G", Ok("GLLPLA0LB29A662G"));
    }

    #[test]
    fn test_recipient_only_when_allowed() {
        let code = FiscalCode::TEST_RECIPIENT;
        check(code, Err(E::Day { day: 0 }));
        let parsed = FiscalCode::parse(" aaaaaa00a00a000a ", TestRecipient::Allowed);
        assert_eq!(parsed.as_ref().map(FiscalCode::as_str), Ok(code));
        assert!(parsed.is_ok_and(|fc| fc.is_test_recipient()));
        let other = FiscalCode::parse("BNCLRA85C52F205V", TestRecipient::Allowed);
        assert!(other.is_ok_and(|fc| !fc.is_test_recipient()));
    }

    #[test]
    fn debug_and_redacted_mask_the_code() {
        let code: FiscalCode = "BNCLRA85C52F205V".parse().expect("valid code");
        assert_eq!(code.redacted(), "BNC************V");
        assert_eq!(format!("{code:?}"), "FiscalCode(BNC************V)");
        assert_eq!(code.to_string(), "BNCLRA85C52F205V");
    }

    #[test]
    fn serde_round_trip_validates() {
        let code: FiscalCode = "BNCLRA85C52F205V".parse().expect("valid code");
        let json = serde_json::to_string(&code).expect("serializes");
        assert_eq!(json, "\"BNCLRA85C52F205V\"");
        let back: FiscalCode = serde_json::from_str("\"bnclra85c52f205v\"").expect("valid");
        assert_eq!(back, code);
        let bad = serde_json::from_str::<FiscalCode>("\"VRDGPP50T01H501A\"");
        assert!(bad.is_err());
    }

    #[test]
    fn messages_are_sentences() {
        let check_letter = E::CheckLetter { expected: 'B', found: 'A' };
        assert_eq!(check_letter.to_string(), "check letter is 'A' but the first 15 characters give 'B'");
        let feb = E::DayNotInMonth { day: 29, month: 2, year: 1 };
        assert_eq!(feb.to_string(), "day 29 does not exist in February of a year ending in 01");
        assert_eq!(
            shape(15, 'W', DIGIT).to_string(),
            "character 15 is 'W' but must be a digit or one of the omocodia letters LMNPQRSTUV"
        );
    }
}
