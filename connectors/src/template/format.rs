//! Values as each language writes them: amounts, dates, installments, numbers.

use super::{Language, Value};
use crate::domain::EuroCents;

/// Appends `value` as `language` writes it. Digits are pushed by hand rather than through
/// `format!`: this runs for every placeholder of every message.
pub(super) fn write_value(out: &mut String, value: &Value, language: Language) {
    match value {
        Value::Text(text) => out.push_str(text),
        Value::Amount(amount) => write_amount(out, *amount, language),
        Value::Date(day) => {
            let separator = if language == Language::De { '.' } else { '/' };
            push_digits(out, day.day().unsigned_abs().into(), 2);
            out.push(separator);
            push_digits(out, day.month().unsigned_abs().into(), 2);
            out.push(separator);
            if day.year() < 0 {
                out.push('-');
            }
            push_digits(out, day.year().unsigned_abs().into(), 4);
        }
        Value::Installment(None) => {}
        Value::Installment(Some((n, of))) => {
            let (word, between) = match language {
                Language::It => ("rata ", " di "),
                Language::En => ("instalment ", " of "),
                Language::De => ("Rate ", " von "),
            };
            out.push_str(word);
            push_digits(out, (*n).into(), 1);
            out.push_str(between);
            push_digits(out, (*of).into(), 1);
        }
        Value::Number(number) => {
            if *number < 0 {
                out.push('-');
            }
            push_digits(out, number.unsigned_abs(), 1);
        }
    }
}

/// The length of [`write_value`]'s text as IO counts it (UTF-16 code units), computed
/// rather than written: an import measures every placeholder of every language.
pub(super) fn value_units(value: &Value, language: Language) -> usize {
    let digits = |value: u64| Digits::of(value).len();
    match value {
        Value::Text(text) => crate::message::utf16_length(text),
        Value::Amount(amount) => {
            let whole = digits(amount.cents() / 100);
            // Thousands separators, the decimal separator and 2 decimals; the euro sign
            // (one unit) before in English, after a space otherwise.
            let euro = if language == Language::En { 1 } else { 2 };
            whole + (whole - 1) / 3 + 3 + euro
        }
        Value::Date(day) => 6 + digits(day.year().unsigned_abs().into()).max(4) + usize::from(day.year() < 0),
        Value::Installment(None) => 0,
        Value::Installment(Some((n, of))) => {
            let words = match language {
                Language::It => "rata ".len() + " di ".len(),
                Language::En => "instalment ".len() + " of ".len(),
                Language::De => "Rate ".len() + " von ".len(),
            };
            words + digits((*n).into()) + digits((*of).into())
        }
        Value::Number(number) => usize::from(*number < 0) + digits(number.unsigned_abs()),
    }
}

/// `1.020,99 €` (it, de) or `€1,020.99` (en).
fn write_amount(out: &mut String, amount: EuroCents, language: Language) {
    let (thousands, decimal) = if language == Language::En { (',', '.') } else { ('.', ',') };
    if language == Language::En {
        out.push('€');
    }
    let digits = Digits::of(amount.cents() / 100);
    let mut left = digits.len();
    for digit in digits {
        out.push(digit);
        left -= 1;
        if left > 0 && left.is_multiple_of(3) {
            out.push(thousands);
        }
    }
    out.push(decimal);
    push_digits(out, amount.cents() % 100, 2);
    if language != Language::En {
        out.push_str(" €");
    }
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut String, value: u64, width: usize) {
    let digits = Digits::of(value);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.extend(digits);
}

/// The decimal digits of a number, most significant first.
struct Digits {
    bytes: [u8; 20],
    next: usize,
}

impl Digits {
    fn of(mut value: u64) -> Digits {
        let mut digits = Digits { bytes: [0; 20], next: 20 };
        loop {
            digits.next -= 1;
            digits.bytes[digits.next] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                return digits;
            }
        }
    }

    fn len(&self) -> usize {
        self.bytes.len() - self.next
    }
}

impl Iterator for Digits {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let digit = self.bytes.get(self.next).copied().map(char::from)?;
        self.next += 1;
        Some(digit)
    }
}
