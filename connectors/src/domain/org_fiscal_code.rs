//! Fiscal code of an institution: 11 digits, the last a Luhn-style check digit.
//!
//! IO uses it as the payee of a payment (`payee.fiscal_code`). It identifies a body, not a
//! person, so it is not personal data and `Debug` shows it in full.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A valid 11-digit fiscal code of an institution, e.g. `02438750586` (Roma Capitale).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgFiscalCode(String);

/// Why a text is not a valid institution fiscal code; checks run in this order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgFiscalCodeError {
    #[error("an institution fiscal code has 11 digits, this one has {found} characters")]
    Length { found: usize },
    #[error("character {position} is {found:?} but an institution fiscal code has only digits")]
    NotDigits { position: usize, found: char },
    #[error("check digit is {found} but the first 10 digits give {expected}")]
    CheckDigit { expected: u8, found: u8 },
}

impl OrgFiscalCode {
    /// The 11 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OrgFiscalCode {
    type Err = OrgFiscalCodeError;

    /// Parses `text` after trimming surrounding whitespace.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let code = text.trim();
        let found = code.chars().count();
        if found != 11 {
            return Err(OrgFiscalCodeError::Length { found });
        }
        let non_digit = code.chars().enumerate().find(|(_, c)| !c.is_ascii_digit());
        if let Some((index, found)) = non_digit {
            let position = index + 1;
            return Err(OrgFiscalCodeError::NotDigits { position, found });
        }
        let digits: Vec<u8> = code.bytes().map(|b| b - b'0').collect();
        let expected = expected_check_digit(&digits[..10]);
        let found = digits[10];
        if found != expected {
            return Err(OrgFiscalCodeError::CheckDigit { expected, found });
        }
        Ok(OrgFiscalCode(code.to_owned()))
    }
}

/// Digits at odd positions (1-based) count once; those at even positions count twice,
/// minus 9 when that exceeds 9. The check digit brings the sum to a multiple of 10.
fn expected_check_digit(first_10: &[u8]) -> u8 {
    let sum: u32 = first_10
        .iter()
        .enumerate()
        .map(|(index, &digit)| {
            let digit = u32::from(digit);
            match (index % 2, digit * 2) {
                (0, _) => digit,
                (_, doubled) if doubled > 9 => doubled - 9,
                (_, doubled) => doubled,
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Display for OrgFiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrgFiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgFiscalCode({})", self.0)
    }
}

impl Serialize for OrgFiscalCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgFiscalCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrgFiscalCodeError as E;

    fn check(input: &str, expected: Result<&str, OrgFiscalCodeError>) {
        let parsed = input.parse::<OrgFiscalCode>();
        let parsed = parsed.as_ref().map(OrgFiscalCode::as_str);
        assert_eq!(parsed, expected.as_ref().map(|s| *s), "input {input:?}");
    }

    fn not_digit(position: usize, found: char) -> OrgFiscalCodeError {
        E::NotDigits { position, found }
    }

    #[test]
    fn vectors_from_facts() {
        check("02438750586", Ok("02438750586"));
        check("80000000010", Ok("80000000010"));
        check("02438750587", Err(E::CheckDigit { expected: 6, found: 7 }));
        check("77777777777", Err(E::CheckDigit { expected: 0, found: 7 }));
    }

    #[test]
    fn edge_cases() {
        check(" 02438750586\n", Ok("02438750586"));
        check("00000000000", Ok("00000000000"));
        check("01234567897", Ok("01234567897"));
        check("", Err(E::Length { found: 0 }));
        check("0243875058", Err(E::Length { found: 10 }));
        check("024387505860", Err(E::Length { found: 12 }));
        check("02438 50586", Err(not_digit(6, ' ')));
        check("IT243875058", Err(not_digit(1, 'I')));
        check("0243875058٦", Err(not_digit(11, '٦')));
    }

    #[test]
    fn display_debug_and_serde() {
        let code: OrgFiscalCode = "02438750586".parse().expect("valid code");
        assert_eq!(code.to_string(), "02438750586");
        assert_eq!(format!("{code:?}"), "OrgFiscalCode(02438750586)");
        let json = serde_json::to_string(&code).expect("serializes");
        assert_eq!(json, "\"02438750586\"");
        let back: OrgFiscalCode = serde_json::from_str(&json).expect("valid");
        assert_eq!(back, code);
        assert!(serde_json::from_str::<OrgFiscalCode>("\"02438750587\"").is_err());
        assert!(serde_json::from_str::<OrgFiscalCode>("2438750586").is_err());
    }

    #[test]
    fn messages_are_sentences() {
        let error = E::CheckDigit { expected: 6, found: 7 };
        assert_eq!(error.to_string(), "check digit is 7 but the first 10 digits give 6");
    }
}
