//! Municipal CSV exports of payable notices, read through a column mapping from
//! configuration: one [`PaymentNotice`] per row.
//!
//! Every tributi system exports its own layout (`Codice Fiscale;Anagrafica;Numero
//! Avviso;Importo Dovuto;Data Scadenza;...`), so a [`Mapping`] names the header of each
//! column the gateway needs and says how dates and amounts are written:
//!
//! ```toml
//! creditor = "80000000010"        # or columns.creditor, when the file has one
//! date_format = "dd/mm/yyyy"      # or "yyyy-mm-dd", "dd-mm-yyyy", "dd.mm.yyyy"
//! decimal = "comma"               # 1.020,99; or "point" (1,020.99) or "cents" (102099)
//! notice_check = "enforce"        # or "warn": wrong check digits give a warning, not an error
//! # iuv_aux_digit = 3             # a 17-digit IUV in the notice column becomes "3" + IUV
//!
//! [columns]                       # header names, matched ignoring case and surrounding spaces
//! fiscal_code = "Codice Fiscale"
//! notice_number = "Numero Avviso"
//! amount = "Importo Dovuto"
//! name = "Anagrafica"             # optional, like all that follow
//! due_date = "Data Scadenza"
//! description = "Causale Versamento"
//! installment = "Numero Rata"     # "2", or "2/3" or "2 di 3" on its own
//! installments = "Totale Rate"    # the total, for an installment column of plain numbers
//! year = "Anno Tributo"
//! ```
//!
//! Encoding and separator are whatever [`CsvInput`] detects (BOM, UTF-8 or Windows-1252;
//! `;`, `,`, tab or `|`). Values are read exactly as the mapping says, with no guessing: with
//! `decimal = "comma"`, `12.50` is refused (a thousands separator before two digits) rather
//! than read as twelve and a half euros. Notice numbers may keep the spaces of printed
//! notices. A due date may carry a midnight time (`31/07/2025 00:00:00`, as spreadsheets
//! write it). An empty installment cell is a single payment.
//!
//! A bad row becomes a [`RecordError`] (the 1-based line it starts on, the column's header,
//! the reason) and reading goes on; only a bad mapping, a missing column or a failing
//! source stops the file.

mod mapping;
mod values;

use std::io::Read;

use csv::StringRecord;

use crate::csv_text::{CsvInput, CsvReadError, NextRow, TextEncoding};
use crate::domain::{NoticeNumber, OrgFiscalCode};
use crate::govpay::NumberCheck;
use crate::payment::{PaymentNotice, RecordError};

use mapping::same_header;
pub use mapping::{Columns, DateFormat, Decimal, Mapping};
use values::{parse_amount, parse_date, parse_year, split_installment};

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum MappedError {
    #[error(transparent)]
    Csv(#[from] CsvReadError),
    #[error("column(s) named in the mapping missing from the header: {}", names.join(", "))]
    MissingColumns { names: Vec<String> },
    #[error("column(s) named in the mapping appear more than once in the header: {}", names.join(", "))]
    DuplicateColumns { names: Vec<String> },
    #[error("the column mapping has problems: {}", .0.join("; "))]
    Mapping(Vec<String>),
}

/// A mapped export read row by row. Each item is a notice or a rejected row (`Ok`), or the
/// source failing (`Err`, after which there are no more items).
#[derive(Debug)]
pub struct MappedRows<R> {
    input: CsvInput<R>,
    layout: Layout,
    warnings: Vec<RecordError>,
    done: bool,
}

impl<R: Read> MappedRows<R> {
    /// Checks the mapping, opens the file and finds every mapped column.
    pub fn open(source: R, mapping: &Mapping) -> Result<MappedRows<R>, MappedError> {
        let problems = mapping.check();
        if !problems.is_empty() {
            return Err(MappedError::Mapping(problems));
        }
        let input = CsvInput::open(source)?;
        let layout = Layout::find(input.header(), mapping)?;
        Ok(MappedRows { input, layout, warnings: Vec::new(), done: false })
    }

    /// Rows accepted with a caveat so far: wrong check digits under `notice_check = "warn"`.
    pub fn warnings(&self) -> &[RecordError] {
        &self.warnings
    }

    /// The encoding decided so far (final once the iterator is exhausted).
    pub fn encoding(&self) -> TextEncoding {
        self.input.encoding()
    }

    pub fn separator(&self) -> u8 {
        self.input.separator()
    }
}

impl<R: Read> Iterator for MappedRows<R> {
    type Item = Result<Result<PaymentNotice, RecordError>, MappedError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.input.read_row() {
                Ok(NextRow::Record { record, .. }) if record.iter().all(|cell| cell.trim().is_empty()) => {}
                Ok(NextRow::Record { line, record }) => {
                    return Some(Ok(self.layout.notice(&record, line, &mut self.warnings)));
                }
                Ok(NextRow::Rejected(error)) => return Some(Ok(Err(error))),
                Ok(NextRow::End) => self.done = true,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error.into()));
                }
            }
        }
        None
    }
}

/// A mapped column found in this file's header.
#[derive(Debug)]
struct Column {
    at: usize,
    /// The header as the file writes it (trimmed): the field of row errors.
    header: String,
}

#[derive(Debug)]
enum Creditor {
    Column(Column),
    Fixed(OrgFiscalCode),
}

/// Where each mapped column is, and how its values are written.
#[derive(Debug)]
struct Layout {
    fiscal_code: Column,
    notice_number: Column,
    amount: Column,
    creditor: Creditor,
    name: Option<Column>,
    due_date: Option<Column>,
    description: Option<Column>,
    installment: Option<Column>,
    installments: Option<Column>,
    year: Option<Column>,
    date_format: DateFormat,
    decimal: Decimal,
    notice_check: NumberCheck,
    iuv_aux_digit: Option<u8>,
}

impl Layout {
    /// Finds every mapped column; `mapping` has passed [`Mapping::check`].
    fn find(header: &StringRecord, mapping: &Mapping) -> Result<Layout, MappedError> {
        let (mut missing, mut repeated) = (Vec::new(), Vec::new());
        let mut find = |name: &str| {
            let mut found = header.iter().enumerate().filter(|(_, h)| same_header(h, name));
            let first = found.next().map(|(at, h)| Column { at, header: h.trim().to_owned() });
            match (&first, found.next()) {
                (None, _) => missing.push(name.trim().to_owned()),
                (Some(_), Some(_)) => repeated.push(name.trim().to_owned()),
                (Some(_), None) => {}
            }
            first
        };
        let c = &mapping.columns;
        let required = (find(&c.fiscal_code), find(&c.notice_number), find(&c.amount));
        let mut optional = |name: &Option<String>| name.as_deref().and_then(&mut find);
        let creditor = optional(&c.creditor);
        let (name, due_date, description) = (optional(&c.name), optional(&c.due_date), optional(&c.description));
        let (installment, installments, year) =
            (optional(&c.installment), optional(&c.installments), optional(&c.year));
        let (Some(fiscal_code), Some(notice_number), Some(amount)) = required else {
            return Err(MappedError::MissingColumns { names: missing });
        };
        if !missing.is_empty() {
            return Err(MappedError::MissingColumns { names: missing });
        }
        if !repeated.is_empty() {
            return Err(MappedError::DuplicateColumns { names: repeated });
        }
        // `check` made sure of exactly one creditor, and of a valid fixed one.
        let fixed = mapping.creditor.as_deref().map(str::parse::<OrgFiscalCode>);
        let creditor = match (creditor, fixed) {
            (Some(column), _) => Creditor::Column(column),
            (None, Some(Ok(fixed))) => Creditor::Fixed(fixed),
            (None, Some(Err(error))) => return Err(MappedError::Mapping(vec![format!("creditor: {error}")])),
            (None, None) => return Err(MappedError::Mapping(vec!["no creditor".to_owned()])),
        };
        Ok(Layout {
            fiscal_code,
            notice_number,
            amount,
            creditor,
            name,
            due_date,
            description,
            installment,
            installments,
            year,
            date_format: mapping.date_format,
            decimal: mapping.decimal,
            notice_check: mapping.notice_check,
            iuv_aux_digit: mapping.iuv_aux_digit,
        })
    }

    /// The row as a notice; the first bad field rejects it. A check-digit warning is added
    /// to `warnings` only if the row is accepted.
    fn notice(
        &self,
        row: &StringRecord,
        line: u64,
        warnings: &mut Vec<RecordError>,
    ) -> Result<PaymentNotice, RecordError> {
        let bad =
            |column: &Column, reason: String| RecordError { location: line, field: column.header.clone(), reason };
        let debtor_fiscal_code = match cell(row, &self.fiscal_code) {
            "" => return Err(bad(&self.fiscal_code, "is empty".to_owned())),
            code => code.to_owned(),
        };
        let (notice_number, warning) =
            self.parse_notice_number(cell(row, &self.notice_number)).map_err(|e| bad(&self.notice_number, e))?;
        let amount = parse_amount(cell(row, &self.amount), self.decimal).map_err(|e| bad(&self.amount, e))?;
        let creditor = match &self.creditor {
            Creditor::Fixed(fixed) => fixed.clone(),
            Creditor::Column(column) => {
                let text = cell(row, column);
                text.parse().map_err(|e| bad(column, format!("{text:?} is not an institution's fiscal code: {e}")))?
            }
        };
        let due_date = match optional(row, &self.due_date) {
            Some((column, text)) => Some(parse_date(text, self.date_format).map_err(|e| bad(column, e))?),
            None => None,
        };
        let installment = self.parse_installment(row).map_err(|(column, e)| bad(column, e))?;
        let year = match optional(row, &self.year) {
            Some((column, text)) => Some(parse_year(text).map_err(|e| bad(column, e))?),
            None => None,
        };
        warnings.extend(warning.map(|reason| bad(&self.notice_number, reason)));
        Ok(PaymentNotice {
            debtor_fiscal_code,
            debtor_name: optional(row, &self.name).map(|(_, name)| name.to_owned()),
            creditor,
            notice_number,
            amount,
            due_date,
            description: optional(row, &self.description).map(|(_, text)| text.to_owned()).unwrap_or_default(),
            installment,
            year,
        })
    }

    /// An 18-digit notice number (spaces removed), or a 17-digit IUV completed with the
    /// configured aux digit; under warn-only, wrong check digits give the number and a warning.
    fn parse_notice_number(&self, text: &str) -> Result<(NoticeNumber, Option<String>), String> {
        let digits: String = text.chars().filter(|&c| c != ' ').collect();
        let is_iuv = digits.len() == 17 && digits.bytes().all(|b| b.is_ascii_digit());
        let (number, context) = match (is_iuv, self.iuv_aux_digit) {
            (true, Some(aux)) => (format!("{aux}{digits}"), format!("IUV with aux digit {aux}: ")),
            (true, None) => {
                return Err("has 17 digits: probably an IUV, accepted only when the mapping sets iuv_aux_digit".into());
            }
            (false, _) => (digits, String::new()),
        };
        let parsed = match self.notice_check {
            NumberCheck::Enforce => number.parse().map(|number| (number, None)),
            NumberCheck::WarnOnly => NoticeNumber::parse_ignoring_check(&number),
        };
        match parsed {
            Ok((number, None)) => Ok((number, None)),
            Ok((number, Some(error))) => {
                Ok((number, Some(format!("{context}{error}; accepted: notice_check is warn"))))
            }
            Err(error) => Err(format!("{text:?}: {context}{error}")),
        }
    }

    /// `(n, of)` from the installment column (`2`, `2/3`, `2 di 3`) and, for a plain number,
    /// the total column; empty: a single payment.
    fn parse_installment(&self, row: &StringRecord) -> Result<Option<(u32, u32)>, (&Column, String)> {
        let Some((column, text)) = optional(row, &self.installment) else {
            return Ok(None);
        };
        let shape = || (column, format!("{text:?} is not an installment like 2, 2/3 or 2 di 3"));
        let (n, of) = split_installment(text);
        let n = n.trim().parse::<u32>().map_err(|_| shape())?;
        let total = optional(row, &self.installments);
        let of = match (of, total) {
            (Some(of), _) => of.trim().parse::<u32>().map_err(|_| shape())?,
            (None, Some((total_column, total))) => total
                .parse::<u32>()
                .map_err(|_| (total_column, format!("{total:?} is not a number of installments")))?,
            (None, None) => {
                return Err((column, format!("installment {n} has no total: write {n}/3 or map columns.installments")));
            }
        };
        if let Some((total_column, total)) = total.filter(|(_, total)| total.parse::<u32>() != Ok(of)) {
            let reason = format!("says {total} installments but {:?} says {text:?}", column.header);
            return Err((total_column, reason));
        }
        if n == 0 || n > of {
            return Err((column, format!("installment {n} of {of} does not exist: installments run from 1 to {of}")));
        }
        Ok(Some((n, of)))
    }
}

/// The trimmed cell of `column`; a short row reads as empty cells.
fn cell<'r>(row: &'r StringRecord, column: &Column) -> &'r str {
    row.get(column.at).unwrap_or_default().trim()
}

/// The column and its trimmed cell, when the column is mapped and the cell not empty.
fn optional<'r, 'c>(row: &'r StringRecord, column: &'c Option<Column>) -> Option<(&'c Column, &'r str)> {
    let column = column.as_ref()?;
    Some((column, cell(row, column))).filter(|(_, text)| !text.is_empty())
}

#[cfg(test)]
mod tests;
