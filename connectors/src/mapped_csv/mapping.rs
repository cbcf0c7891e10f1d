//! The column mapping of a source, as configuration gives it, and its own checks.

use crate::domain::OrgFiscalCode;
use crate::govpay::NumberCheck;

/// How a source's columns and values are read (see the `mapped_csv` module documentation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub columns: Columns,
    /// Fixed creditor (an institution's fiscal code) when the file has no creditor column.
    #[serde(default)]
    pub creditor: Option<String>,
    #[serde(default)]
    pub date_format: DateFormat,
    #[serde(default)]
    pub decimal: Decimal,
    #[serde(default)]
    pub notice_check: NumberCheck,
    /// The aux digit (1, 2 or 3) that turns a 17-digit IUV into a notice number; without
    /// it a 17-digit value is refused as a probable IUV.
    #[serde(default)]
    pub iuv_aux_digit: Option<u8>,
}

/// The header of each column, matched ignoring case and surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// The debtor's fiscal code.
    pub fiscal_code: String,
    pub notice_number: String,
    pub amount: String,
    /// The debtor's name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The creditor's fiscal code, when it varies by row (else [`Mapping::creditor`]).
    #[serde(default)]
    pub creditor: Option<String>,
    /// The installment number (`2`), or number and total (`2/3`, `2 di 3`).
    #[serde(default)]
    pub installment: Option<String>,
    /// The number of installments, for an installment column of plain numbers.
    #[serde(default)]
    pub installments: Option<String>,
    #[serde(default)]
    pub year: Option<String>,
}

/// How due dates are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum DateFormat {
    #[default]
    #[serde(rename = "dd/mm/yyyy")]
    DaySlashes,
    #[serde(rename = "yyyy-mm-dd")]
    Iso,
    #[serde(rename = "dd-mm-yyyy")]
    DayDashes,
    #[serde(rename = "dd.mm.yyyy")]
    DayDots,
}

impl DateFormat {
    /// The form as written in configuration, e.g. `dd/mm/yyyy`.
    pub fn as_str(self) -> &'static str {
        match self {
            DateFormat::DaySlashes => "dd/mm/yyyy",
            DateFormat::Iso => "yyyy-mm-dd",
            DateFormat::DayDashes => "dd-mm-yyyy",
            DateFormat::DayDots => "dd.mm.yyyy",
        }
    }
}

/// How amounts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decimal {
    /// Euros, Italian style: `1.020,99` (thousands separators optional).
    #[default]
    Comma,
    /// Euros, English style: `1,020.99`.
    Point,
    /// Integer cents: `102099`.
    Cents,
}

impl Mapping {
    /// Every problem of the mapping itself, before any file is read.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (&self.columns.creditor, &self.creditor) {
            (None, None) => problems.push(
                "no creditor: set creditor (the institution's fiscal code) or columns.creditor (a column holding it)"
                    .to_owned(),
            ),
            (Some(_), Some(_)) => problems.push("both creditor and columns.creditor are set: keep one".to_owned()),
            (None, Some(fixed)) => {
                if let Err(error) = fixed.parse::<OrgFiscalCode>() {
                    problems.push(format!("creditor {fixed:?} is not an institution's fiscal code: {error}"));
                }
            }
            (Some(_), None) => {}
        }
        if let Some(digit) = self.iuv_aux_digit.filter(|digit| !(1..=3).contains(digit)) {
            problems.push(format!("iuv_aux_digit is {digit} but a 17-digit IUV takes aux digit 1, 2 or 3"));
        }
        if self.columns.installments.is_some() && self.columns.installment.is_none() {
            problems.push("columns.installments (the total) needs columns.installment (the number)".to_owned());
        }
        let named = self.columns.named();
        for (index, (key, header)) in named.iter().enumerate() {
            if header.trim().is_empty() {
                problems.push(format!("columns.{key} is empty"));
            } else if let Some((other, _)) = named[..index].iter().find(|(_, h)| same_header(h, header)) {
                problems.push(format!("columns.{other} and columns.{key} both name column {:?}", header.trim()));
            }
        }
        problems
    }
}

impl Columns {
    /// (configuration key, header) of every column the mapping names.
    fn named(&self) -> Vec<(&'static str, &str)> {
        let optional = [
            ("name", &self.name),
            ("due_date", &self.due_date),
            ("description", &self.description),
            ("creditor", &self.creditor),
            ("installment", &self.installment),
            ("installments", &self.installments),
            ("year", &self.year),
        ];
        let required =
            [("fiscal_code", &self.fiscal_code), ("notice_number", &self.notice_number), ("amount", &self.amount)];
        let optional = optional.into_iter().filter_map(|(key, header)| Some((key, header.as_deref()?)));
        required.into_iter().map(|(key, header)| (key, header.as_str())).chain(optional).collect()
    }
}

/// Headers match ignoring case and surrounding spaces.
pub(super) fn same_header(header: &str, name: &str) -> bool {
    header.trim().eq_ignore_ascii_case(name.trim())
}
