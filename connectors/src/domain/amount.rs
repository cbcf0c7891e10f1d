//! Amounts of money in integer euro cents, within pagoPA's range 1..=9_999_999_999.
//!
//! Decimal text is parsed exactly, digit by digit, never through floating point
//! (`0.29` as a float times 100 truncates to 28).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pagoPA amount: at least 1 cent, at most 9_999_999_999 cents (99.999.999,99 €).
///
/// Serializes as the integer number of cents, as IO's `payment_data.amount` expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EuroCents(u64);

/// Why a number or text is not a valid pagoPA amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount has no digits")]
    NoDigits,
    #[error("character {position} is {found:?} but an amount may hold only digits, '.' and ',' after an optional '-'")]
    InvalidCharacter { position: usize, found: char },
    #[error("decimal separator {separator:?} must have digits on both sides")]
    MissingDigits { separator: char },
    #[error("a single {separator:?} followed by exactly three digits could be a thousands separator or three decimals; write two decimals, e.g. 1.005,00")]
    AmbiguousSeparator { separator: char },
    #[error("amount has {found} decimal digits but at most 2 are allowed")]
    TooManyDecimals { found: usize },
    #[error("decimal separator {separator:?} (the last separator) appears more than once")]
    RepeatedDecimalSeparator { separator: char },
    #[error(
        "thousands separator {separator:?} must split the integer part into groups of three digits, e.g. 1.234.567"
    )]
    Grouping { separator: char },
    #[error("amount is zero but pagoPA amounts are at least 0,01 €")]
    Zero,
    #[error("amount is negative but pagoPA amounts are at least 0,01 €")]
    Negative,
    #[error("amount exceeds pagoPA's maximum of 99.999.999,99 € (9999999999 cents)")]
    TooLarge,
}

impl EuroCents {
    /// The largest amount pagoPA accepts, in cents.
    pub const MAX_CENTS: u64 = 9_999_999_999;

    /// An amount from a number of cents, which must be in 1..=[`EuroCents::MAX_CENTS`].
    pub fn from_cents(cents: i64) -> Result<EuroCents, AmountError> {
        let cents = u64::try_from(cents).map_err(|_| AmountError::Negative)?;
        Self::in_range(cents)
    }

    /// Parses decimal euro text exactly, e.g. `1.020,99` or `1,020.99` to 102099 cents.
    ///
    /// Surrounding whitespace is trimmed; otherwise only digits, `.` and `,` are allowed,
    /// after an optional `-` (which is then rejected as [`AmountError::Negative`]). Rules:
    /// - no separator: whole euros (`120` is 12000 cents);
    /// - both `.` and `,`: the last one is the decimal separator and must appear once; the
    ///   other separates thousands (`1.020,99`, `1,020.99`);
    /// - one kind, more than once: thousands separator, no decimals (`1.000.000`);
    /// - one kind, once: a decimal separator followed by 1 or 2 digits (`12,5`,
    ///   `300.00`); followed by exactly 3 digits it is rejected as ambiguous (`1.005`
    ///   could be 1005 € or 1,005 €), by more as too many decimals.
    ///
    /// Thousands groups are 1–3 digits first, then exactly 3. A decimal separator needs
    /// digits on both sides.
    pub fn parse_decimal(text: &str) -> Result<EuroCents, AmountError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        check_characters(magnitude, usize::from(negative))?;
        let parts = split_parts(magnitude)?;
        check_grouping(&parts)?;
        match (parts.cents()?, negative) {
            (0, _) => Err(AmountError::Zero),
            (_, true) => Err(AmountError::Negative),
            (cents, false) => Self::in_range(cents),
        }
    }

    /// The amount in cents.
    pub fn cents(self) -> u64 {
        self.0
    }

    fn in_range(cents: u64) -> Result<EuroCents, AmountError> {
        match cents {
            0 => Err(AmountError::Zero),
            1..=Self::MAX_CENTS => Ok(EuroCents(cents)),
            _ => Err(AmountError::TooLarge),
        }
    }
}

/// Italian style: `1.020,99 €`.
impl fmt::Display for EuroCents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let euros = (self.0 / 100).to_string();
        let mut grouped = String::with_capacity(euros.len() + euros.len() / 3);
        for (index, digit) in euros.chars().enumerate() {
            if index > 0 && (euros.len() - index).is_multiple_of(3) {
                grouped.push('.');
            }
            grouped.push(digit);
        }
        write!(f, "{grouped},{:02} €", self.0 % 100)
    }
}

impl Serialize for EuroCents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for EuroCents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cents = i64::deserialize(deserializer)?;
        EuroCents::from_cents(cents).map_err(serde::de::Error::custom)
    }
}

/// An amount split at its decimal separator; `whole` may hold thousands separators.
struct Parts<'a> {
    whole: &'a str,
    thousands: Option<char>,
    fraction: &'a str,
}

impl Parts<'_> {
    /// The value in cents; the fraction has at most 2 digits, padded with zeros.
    fn cents(&self) -> Result<u64, AmountError> {
        let euros = self
            .whole
            .bytes()
            .filter(u8::is_ascii_digit)
            .try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(digit(b)));
        let fraction =
            self.fraction.bytes().chain(std::iter::repeat(b'0')).take(2).fold(0, |acc, b| acc * 10 + digit(b));
        euros.and_then(|euros| euros.checked_mul(100)?.checked_add(fraction)).ok_or(AmountError::TooLarge)
    }
}

fn digit(b: u8) -> u64 {
    u64::from(b - b'0')
}

/// Only digits, `.` and `,`, with at least one digit. `offset` counts a stripped sign.
fn check_characters(text: &str, offset: usize) -> Result<(), AmountError> {
    let invalid = text.chars().enumerate().find(|&(_, c)| !(c.is_ascii_digit() || c == '.' || c == ','));
    if let Some((index, found)) = invalid {
        let position = index + offset + 1;
        return Err(AmountError::InvalidCharacter { position, found });
    }
    if !text.chars().any(|c| c.is_ascii_digit()) {
        return Err(AmountError::NoDigits);
    }
    Ok(())
}

fn split_parts(text: &str) -> Result<Parts<'_>, AmountError> {
    let dots = text.matches('.').count();
    let commas = text.matches(',').count();
    match (dots, commas) {
        (0, 0) => Ok(Parts { whole: text, thousands: None, fraction: "" }),
        (_, 0) => split_single(text, '.', dots),
        (0, _) => split_single(text, ',', commas),
        _ => split_mixed(text),
    }
}

/// Only one kind of separator: thousands if repeated, else decimal (see `parse_decimal`).
fn split_single(text: &str, separator: char, count: usize) -> Result<Parts<'_>, AmountError> {
    match text.split_once(separator) {
        Some((whole, fraction)) if count == 1 => {
            if fraction.len() == 3 {
                return Err(AmountError::AmbiguousSeparator { separator });
            }
            decimal_parts(whole, None, fraction, separator)
        }
        _ => Ok(Parts { whole: text, thousands: Some(separator), fraction: "" }),
    }
}

/// Both `.` and `,`: the last separator is the decimal one.
fn split_mixed(text: &str) -> Result<Parts<'_>, AmountError> {
    let Some(at) = text.rfind(['.', ',']) else {
        return Ok(Parts { whole: text, thousands: None, fraction: "" });
    };
    let (separator, thousands) = if text[at..].starts_with('.') { ('.', ',') } else { (',', '.') };
    let (whole, fraction) = (&text[..at], &text[at + 1..]);
    if whole.contains(separator) {
        return Err(AmountError::RepeatedDecimalSeparator { separator });
    }
    decimal_parts(whole, Some(thousands), fraction, separator)
}

fn decimal_parts<'a>(
    whole: &'a str,
    thousands: Option<char>,
    fraction: &'a str,
    separator: char,
) -> Result<Parts<'a>, AmountError> {
    if whole.is_empty() || fraction.is_empty() {
        return Err(AmountError::MissingDigits { separator });
    }
    if fraction.len() > 2 {
        return Err(AmountError::TooManyDecimals { found: fraction.len() });
    }
    Ok(Parts { whole, thousands, fraction })
}

/// With a thousands separator: a first group of 1–3 digits, then groups of exactly 3.
fn check_grouping(parts: &Parts<'_>) -> Result<(), AmountError> {
    let Some(separator) = parts.thousands else {
        return Ok(());
    };
    let mut groups = parts.whole.split(separator);
    let first_ok = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
    if first_ok && groups.all(|g| g.len() == 3) {
        Ok(())
    } else {
        Err(AmountError::Grouping { separator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AmountError as E;

    fn check(input: &str, expected: Result<u64, AmountError>) {
        let parsed = EuroCents::parse_decimal(input).map(EuroCents::cents);
        assert_eq!(parsed, expected, "input {input:?}");
    }

    fn check_cents(cents: i64, expected: Result<u64, AmountError>) {
        let built = EuroCents::from_cents(cents).map(EuroCents::cents);
        assert_eq!(built, expected, "cents {cents}");
    }

    fn invalid(position: usize, found: char) -> AmountError {
        E::InvalidCharacter { position, found }
    }

    fn repeated(separator: char) -> AmountError {
        E::RepeatedDecimalSeparator { separator }
    }

    #[test]
    fn decimal_vectors_from_facts_and_brief() {
        check("0.29", Ok(29));
        check("1.020,99", Ok(102_099));
        check("1,020.99", Ok(102_099));
        check("120", Ok(12_000));
        check("12,5", Ok(1_250));
        check("300.00", Ok(30_000));
        check("0", Err(E::Zero));
        check("-5", Err(E::Negative));
        check("1.005", Err(E::AmbiguousSeparator { separator: '.' }));
        check("", Err(E::Empty));
        check("abc", Err(invalid(1, 'a')));
    }

    #[test]
    fn decimal_edge_cases() {
        check(" 12,50\t", Ok(1_250));
        check("0,01", Ok(1));
        check("0.5", Ok(50));
        check("007", Ok(700));
        check("1.000.000", Ok(100_000_000));
        check("1,000,000", Ok(100_000_000));
        check("1.000.000,00", Ok(100_000_000));
        check("99.999.999,99", Ok(EuroCents::MAX_CENTS));
        check("9999999999", Err(E::TooLarge));
        check("100.000.000,00", Err(E::TooLarge));
        check("99999999999999999999999", Err(E::TooLarge));
        check("   ", Err(E::Empty));
        check("-", Err(E::NoDigits));
        check(".,", Err(E::NoDigits));
        check("-0", Err(E::Zero));
        check("0,00", Err(E::Zero));
        check("-1.020,99", Err(E::Negative));
        check("12€", Err(invalid(3, '€')));
        check("1 000", Err(invalid(2, ' ')));
        check("--5", Err(invalid(2, '-')));
        check("+5", Err(invalid(1, '+')));
        check("1e3", Err(invalid(2, 'e')));
        check("1,005", Err(E::AmbiguousSeparator { separator: ',' }));
        check("1.0000", Err(E::TooManyDecimals { found: 4 }));
        check("1,000.005", Err(E::TooManyDecimals { found: 3 }));
        check("1,", Err(E::MissingDigits { separator: ',' }));
        check(".5", Err(E::MissingDigits { separator: '.' }));
        check(".000,5", Err(E::Grouping { separator: '.' }));
        check("1.000,000,00", Err(repeated(',')));
        check("1,000.000.00", Err(repeated('.')));
        check("1.00.000", Err(E::Grouping { separator: '.' }));
        check("1..000", Err(E::Grouping { separator: '.' }));
        check("1234.567,00", Err(E::Grouping { separator: '.' }));
        check("1,2345.00", Err(E::Grouping { separator: ',' }));
    }

    #[test]
    fn from_cents_range() {
        check_cents(1, Ok(1));
        check_cents(29, Ok(29));
        check_cents(9_999_999_999, Ok(9_999_999_999));
        check_cents(10_000_000_000, Err(E::TooLarge));
        check_cents(i64::MAX, Err(E::TooLarge));
        check_cents(0, Err(E::Zero));
        check_cents(-1, Err(E::Negative));
        check_cents(i64::MIN, Err(E::Negative));
    }

    #[test]
    fn display_is_italian() {
        for (cents, expected) in [
            (1, "0,01 €"),
            (1_250, "12,50 €"),
            (12_000, "120,00 €"),
            (100_000, "1.000,00 €"),
            (102_099, "1.020,99 €"),
            (100_000_000, "1.000.000,00 €"),
            (9_999_999_999, "99.999.999,99 €"),
        ] {
            let amount = EuroCents::from_cents(cents).expect("in range");
            assert_eq!(amount.to_string(), expected);
        }
    }

    #[test]
    fn serde_as_integer_cents() {
        let amount = EuroCents::from_cents(102_099).expect("in range");
        assert_eq!(serde_json::to_string(&amount).expect("serializes"), "102099");
        let back: EuroCents = serde_json::from_str("102099").expect("valid");
        assert_eq!(back, amount);
        for bad in ["0", "-5", "10000000000", "\"1,00\"", "1.5"] {
            assert!(serde_json::from_str::<EuroCents>(bad).is_err(), "{bad}");
        }
    }
}
