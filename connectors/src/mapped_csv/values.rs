//! Cell values as a mapping says they are written: amounts, dates, years, installments.

use super::{DateFormat, Decimal};
use crate::domain::EuroCents;

/// `2/3` or `2 di 3` (any case) as `("2", Some("3"))`; `2` as `("2", None)`.
pub(super) fn split_installment(text: &str) -> (&str, Option<&str>) {
    // ASCII lower-casing keeps byte offsets, so they apply to `text`.
    let lower = text.to_ascii_lowercase();
    let found = lower.find('/').map(|at| (at, 1)).or_else(|| lower.find(" di ").map(|at| (at, 4)));
    match found {
        Some((at, width)) => (&text[..at], Some(&text[at + width..])),
        None => (text, None),
    }
}

/// An amount written as `decimal` says, exactly (never through floating point).
pub(super) fn parse_amount(text: &str, decimal: Decimal) -> Result<EuroCents, String> {
    let (thousands, separator, example) = match decimal {
        Decimal::Comma => ('.', ',', "1.020,99"),
        Decimal::Point => (',', '.', "1,020.99"),
        Decimal::Cents => return parse_cents(text),
    };
    let refuse = |reason: &str| format!("{text:?} is not an amount written like {example}: {reason}");
    let amount = text.trim_matches(|c: char| c == '€' || c.is_whitespace());
    let (negative, amount) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let (whole, fraction) = amount.split_once(separator).unwrap_or((amount, ""));
    if amount.contains(separator) && !(1..=2).contains(&fraction.len()) {
        return Err(refuse(&format!("{separator:?} must be followed by 1 or 2 decimal digits")));
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("the decimals must be digits"));
    }
    let groups: Vec<&str> = whole.split(thousands).collect();
    let grouped = groups.len() > 1;
    let well_grouped = groups.iter().enumerate().all(|(index, group)| {
        let width_ok = match (index, grouped) {
            (0, _) => !group.is_empty() && (!grouped || group.len() <= 3),
            _ => group.len() == 3,
        };
        width_ok && group.bytes().all(|b| b.is_ascii_digit())
    });
    if !well_grouped {
        return Err(refuse(&format!("euros are digits, optionally in groups of three split by {thousands:?}")));
    }
    let sign = if negative { "-" } else { "" };
    let canonical = format!("{sign}{}.{fraction:0<2}", groups.concat());
    EuroCents::parse_decimal(&canonical).map_err(|error| refuse(&error.to_string()))
}

fn parse_cents(text: &str) -> Result<EuroCents, String> {
    let refuse = |reason: String| format!("{text:?} is not an amount in cents: {reason}");
    if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
        return Err(refuse("only digits are allowed, e.g. 102099 for 1.020,99 €".to_owned()));
    }
    let cents = text.parse::<i64>().map_err(|_| refuse("too large".to_owned()))?;
    EuroCents::from_cents(cents).map_err(|error| refuse(error.to_string()))
}

/// A date as `format` says; day and month may have one digit, and a midnight time
/// (`00:00` or `00:00:00`) may follow.
pub(super) fn parse_date(text: &str, format: DateFormat) -> Result<jiff::civil::Date, String> {
    let refuse = |reason: &str| format!("{text:?} is not a date written as {}{reason}", format.as_str());
    let date = text.strip_suffix(" 00:00:00").or_else(|| text.strip_suffix(" 00:00")).unwrap_or(text).trim();
    let separator = match format {
        DateFormat::DaySlashes => '/',
        DateFormat::Iso | DateFormat::DayDashes => '-',
        DateFormat::DayDots => '.',
    };
    let parts: Vec<&str> = date.split(separator).collect();
    let [first, month, last] = parts[..] else {
        return Err(refuse(""));
    };
    let (year, day) = if format == DateFormat::Iso { (first, last) } else { (last, first) };
    let digits = |part: &str, widths: std::ops::RangeInclusive<usize>| -> Option<i16> {
        if widths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (Some(year), Some(month), Some(day)) = (digits(year, 4..=4), digits(month, 1..=2), digits(day, 1..=2)) else {
        return Err(refuse(""));
    };
    let (Ok(month), Ok(day)) = (i8::try_from(month), i8::try_from(day)) else {
        return Err(refuse(""));
    };
    jiff::civil::Date::new(year, month, day).map_err(|_| refuse(": no such day in the calendar"))
}

pub(super) fn parse_year(text: &str) -> Result<i16, String> {
    match text.parse::<i16>() {
        Ok(year) if text.len() == 4 && year >= 1000 => Ok(year),
        _ => Err(format!("{text:?} is not a 4-digit year")),
    }
}
