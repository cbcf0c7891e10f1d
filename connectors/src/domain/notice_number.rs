//! pagoPA notice number (numero avviso): 18 digits, an aux digit and, for most, a check.
//!
//! Layouts by aux digit: `3` + segregation code (2) + base (13) + check (2); `0` +
//! application code (2) + base (13) + check (2); `2` + base (15) + check (2); `1` + 17
//! digits with no check. The check is the 16-digit prefix mod 93, written on 2 digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A valid 18-digit pagoPA notice number, stored without spaces.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoticeNumber(String);

/// Why a text is not a valid notice number; checks run in this order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeNumberError {
    #[error("a notice number has 18 digits, this one has {found} characters (spaces not counted)")]
    Length { found: usize },
    #[error("character {position} (spaces not counted) is {found:?} but a notice number has only digits")]
    NotDigits { position: usize, found: char },
    #[error("aux digit (the first) is {found} but must be 0, 1, 2 or 3")]
    AuxDigit { found: u8 },
    #[error("check digits are {found:02} but the first 16 digits give {expected:02}")]
    CheckDigits { expected: u8, found: u8 },
    #[error("check digits are {found} but a check is a remainder mod 93, so at most 92")]
    ImpossibleCheck { found: u8 },
}

impl NoticeNumber {
    /// The 18 digits, without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first digit: 0, 1, 2 or 3.
    pub fn aux_digit(&self) -> u8 {
        self.0.as_bytes()[0] - b'0'
    }

    /// Parses like `FromStr`, except that wrong check digits do not refuse the number: it is
    /// returned with the check error, for sources configured as warn-only (FACTS.md §4).
    /// Every other rule (length, digits, aux digit) still refuses. The number then matches
    /// IO's pattern `^[0123][0-9]{17}$`, but pagoPA may not find it.
    pub fn parse_ignoring_check(text: &str) -> Result<(NoticeNumber, Option<NoticeNumberError>), NoticeNumberError> {
        match text.parse() {
            Ok(number) => Ok((number, None)),
            Err(error @ (NoticeNumberError::CheckDigits { .. } | NoticeNumberError::ImpossibleCheck { .. })) => {
                let number = text.chars().filter(|&c| c != ' ').collect();
                Ok((NoticeNumber(number), Some(error)))
            }
            Err(error) => Err(error),
        }
    }

    /// The IUV: the notice number without the aux digit, and for aux 0 also without the
    /// 2-digit application code.
    pub fn iuv(&self) -> &str {
        match self.aux_digit() {
            0 => &self.0[3..],
            _ => &self.0[1..],
        }
    }
}

impl FromStr for NoticeNumber {
    type Err = NoticeNumberError;

    /// Parses `text` after removing the spaces printed notices put between groups of 4
    /// digits. No other character is removed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Sized once: an import parses a million of these.
        let mut number = String::with_capacity(text.len());
        number.extend(text.chars().filter(|&c| c != ' '));
        let found = number.chars().count();
        if found != 18 {
            return Err(NoticeNumberError::Length { found });
        }
        let non_digit = number.chars().enumerate().find(|(_, c)| !c.is_ascii_digit());
        if let Some((index, found)) = non_digit {
            let position = index + 1;
            return Err(NoticeNumberError::NotDigits { position, found });
        }
        let mut digits = [0u8; 18];
        for (digit, byte) in digits.iter_mut().zip(number.bytes()) {
            *digit = byte - b'0';
        }
        check_digits(&digits)?;
        Ok(NoticeNumber(number))
    }
}

/// Checks the aux digit and, except for aux 1, the two check digits.
fn check_digits(digits: &[u8]) -> Result<(), NoticeNumberError> {
    match digits[0] {
        1 => return Ok(()),
        0 | 2 | 3 => {}
        found => return Err(NoticeNumberError::AuxDigit { found }),
    }
    let found = digits[16] * 10 + digits[17];
    if found >= 93 {
        return Err(NoticeNumberError::ImpossibleCheck { found });
    }
    let expected = prefix_mod_93(&digits[..16]);
    if found != expected {
        return Err(NoticeNumberError::CheckDigits { expected, found });
    }
    Ok(())
}

fn prefix_mod_93(prefix: &[u8]) -> u8 {
    let remainder = prefix.iter().fold(0u32, |rest, &digit| (rest * 10 + u32::from(digit)) % 93);
    remainder as u8
}

impl fmt::Display for NoticeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NoticeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoticeNumber({})", self.0)
    }
}

impl Serialize for NoticeNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NoticeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NoticeNumberError as E;

    fn check(input: &str, expected: Result<&str, NoticeNumberError>) {
        let parsed = input.parse::<NoticeNumber>();
        let parsed = parsed.as_ref().map(NoticeNumber::as_str);
        assert_eq!(parsed, expected.as_ref().map(|s| *s), "input {input:?}");
    }

    fn not_digit(position: usize, found: char) -> NoticeNumberError {
        E::NotDigits { position, found }
    }

    fn check_parts(input: &str, aux_digit: u8, iuv: &str) {
        let number: NoticeNumber = input.parse().expect("valid notice number");
        assert_eq!(number.aux_digit(), aux_digit, "aux digit of {input}");
        assert_eq!(number.iuv(), iuv, "iuv of {input}");
    }

    #[test]
    fn vectors_from_facts() {
        check("301000000000012373", Ok("301000000000012373"));
        check("005202400000004276", Ok("005202400000004276"));
        check("220240000000001766", Ok("220240000000001766"));
        check("301000000000012374", Err(E::CheckDigits { expected: 73, found: 74 }));
        check("301000000000012393", Err(E::ImpossibleCheck { found: 93 }));
        check("401000000000012373", Err(E::AuxDigit { found: 4 }));
        check("30100000000001237", Err(E::Length { found: 17 }));
    }

    #[test]
    fn edge_cases() {
        check("3010 0000 0000 0123 73", Ok("301000000000012373"));
        check(" 301000000000012373 ", Ok("301000000000012373"));
        check("300000000000000003", Ok("300000000000000003"));
        check("312345678901234545", Ok("312345678901234545"));
        check("299999999999999902", Ok("299999999999999902"));
        check("199999999999999999", Ok("199999999999999999"));
        check("100000000000000000", Ok("100000000000000000"));
        check("301000000000012399", Err(E::ImpossibleCheck { found: 99 }));
        check("901000000000012373", Err(E::AuxDigit { found: 9 }));
        check("", Err(E::Length { found: 0 }));
        check("3010000000000123730", Err(E::Length { found: 19 }));
        check("301000000000012373\n", Err(E::Length { found: 19 }));
        check("3010-0000-0000-012", Err(not_digit(5, '-')));
        check("3010 0000 0000 01x3 73", Err(not_digit(15, 'x')));
        check("30100000000001237\t", Err(not_digit(18, '\t')));
    }

    #[test]
    fn aux_digit_and_iuv() {
        check_parts("301000000000012373", 3, "01000000000012373");
        check_parts("005202400000004276", 0, "202400000004276");
        check_parts("220240000000001766", 2, "20240000000001766");
        check_parts("199999999999999999", 1, "99999999999999999");
    }

    #[test]
    fn display_debug_and_serde() {
        let number: NoticeNumber = "3010 0000 0000 0123 73".parse().expect("valid");
        assert_eq!(number.to_string(), "301000000000012373");
        assert_eq!(format!("{number:?}"), "NoticeNumber(301000000000012373)");
        let json = serde_json::to_string(&number).expect("serializes");
        assert_eq!(json, "\"301000000000012373\"");
        let back: NoticeNumber = serde_json::from_str(&json).expect("valid");
        assert_eq!(back, number);
        assert!(serde_json::from_str::<NoticeNumber>("\"301000000000012374\"").is_err());
    }

    #[test]
    fn parse_ignoring_check_lets_only_check_digits_through() {
        let lenient = |text: &str| NoticeNumber::parse_ignoring_check(text).map(|(n, e)| (n.as_str().to_owned(), e));
        assert_eq!(lenient("3010 0000 0000 0123 73"), Ok(("301000000000012373".to_owned(), None)));
        let wrong = Some(E::CheckDigits { expected: 73, found: 74 });
        assert_eq!(lenient("301000000000012374"), Ok(("301000000000012374".to_owned(), wrong)));
        let impossible = Some(E::ImpossibleCheck { found: 93 });
        assert_eq!(lenient("301000000000012393"), Ok(("301000000000012393".to_owned(), impossible)));
        assert_eq!(lenient("401000000000012373"), Err(E::AuxDigit { found: 4 }));
        assert_eq!(lenient("30100000000001237"), Err(E::Length { found: 17 }));
    }

    #[test]
    fn messages_are_sentences() {
        let error = E::CheckDigits { expected: 3, found: 74 };
        assert_eq!(error.to_string(), "check digits are 74 but the first 16 digits give 03");
    }
}
