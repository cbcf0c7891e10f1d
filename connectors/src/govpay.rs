//! GovPay "pendenze" CSV exports: one [`PaymentNotice`] per row, columns found by name.
//!
//! Layouts vary by installation, so columns are looked up by header name (case and
//! surrounding spaces ignored) in any order; unknown columns are ignored. Required:
//! `numeroAvviso`, `idDominio`, `importo`, `identificativoPagatore`. Optional:
//! `anagraficaPagatore`, `causale`, `dataScadenza`, `annoRiferimento`, `numeroRata`,
//! `idDocumento`. Encoding and separator are whatever [`CsvInput`] detects, so a
//! municipality's `;`-separated Windows-1252 re-export reads the same; amounts may be
//! `150.00` or `150,00`, due dates `2025-07-31` or `31/07/2025`.
//!
//! Installments: a row with `numeroRata` n is installment `(n, of)`, where `of` is the
//! highest `numeroRata` among the rows with the same `idDocumento`. GovPay writes the
//! rows of one document next to each other, so rows are held only until `idDocumento`
//! changes, and a file is read as a stream. A document whose rows are *not* adjacent
//! cannot be totalled that way: its later rows get no installment and, if they carry a
//! `numeroRata`, a warning (see [`Pendenze::warnings`]); rows already given out keep
//! what their own group said. A
//! row without `numeroRata`, or without an `idDocumento` to total it by, is a single
//! payment (`None`).
//!
//! A bad row becomes a [`RecordError`] (1-based line, column, reason) and reading goes
//! on; only a missing column, bad options or a failing source stop the file.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::io::Read;

use csv::StringRecord;

use crate::csv_text::{CsvInput, CsvReadError, NextRow, TextEncoding};
use crate::domain::{EuroCents, NoticeNumber, OrgFiscalCode};
use crate::payment::{PaymentNotice, RecordError};

/// How a source's notice numbers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GovPayOptions {
    /// The aux digit (1, 2 or 3) that turns a 17-digit IUV in `numeroAvviso` into a
    /// notice number. `None`: a 17-digit value is rejected as a probable IUV.
    pub iuv_aux_digit: Option<u8>,
    pub notice_check: NumberCheck,
}

/// What a notice number with wrong check digits does to its row. In configuration:
/// `"enforce"` or `"warn"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum NumberCheck {
    /// The row is rejected.
    #[default]
    #[serde(rename = "enforce")]
    Enforce,
    /// The row is accepted, with a warning (FACTS §4: for sources known to print wrong
    /// check digits). Every other notice-number rule still rejects the row.
    #[serde(rename = "warn")]
    WarnOnly,
}

/// Why a GovPay file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum GovPayError {
    #[error(transparent)]
    Csv(#[from] CsvReadError),
    #[error("required column(s) missing from the header: {}", names.join(", "))]
    MissingColumns { names: Vec<&'static str> },
    #[error("column {name} appears more than once in the header")]
    DuplicateColumn { name: &'static str },
    #[error("iuv_aux_digit is {found} but a 17-digit IUV takes aux digit 1, 2 or 3")]
    IuvAuxDigit { found: u8 },
}

/// A whole file read into memory: accepted notices and rejected rows, in file order.
#[derive(Debug)]
pub struct Import {
    pub notices: Vec<PaymentNotice>,
    pub errors: Vec<RecordError>,
    /// Rows accepted with a caveat: wrong check digits under [`NumberCheck::WarnOnly`],
    /// installments that could not be totalled.
    pub warnings: Vec<RecordError>,
    pub encoding: TextEncoding,
    pub separator: u8,
}

/// Reads a whole file. A source that fails midway fails the whole import; use
/// [`Pendenze`] to keep what was read before.
pub fn read_all<R: Read>(source: R, options: GovPayOptions) -> Result<Import, GovPayError> {
    let mut pendenze = Pendenze::open(source, options)?;
    let (mut notices, mut errors) = (Vec::new(), Vec::new());
    for row in pendenze.by_ref() {
        match row? {
            Ok(notice) => notices.push(notice),
            Err(error) => errors.push(error),
        }
    }
    let (encoding, separator) = (pendenze.encoding(), pendenze.separator());
    Ok(Import { notices, errors, warnings: pendenze.warnings, encoding, separator })
}

/// A GovPay export read row by row. Each item is a notice or a rejected row (`Ok`), or
/// the source failing (`Err`, after which there are no more items).
#[derive(Debug)]
pub struct Pendenze<R> {
    input: CsvInput<R>,
    columns: Columns,
    options: GovPayOptions,
    /// Rows of the current `idDocumento`, held until it changes.
    group: Group,
    ready: VecDeque<Result<PaymentNotice, RecordError>>,
    /// Hashes of the documents already given out, to notice non-adjacent rows: 8 bytes
    /// per document rather than its id. A collision (about 1 in 10^7 for a million
    /// documents) costs one needless warning and unset installments.
    finished_documents: HashSet<u64>,
    hasher: RandomState,
    warnings: Vec<RecordError>,
    failure: Option<GovPayError>,
    done: bool,
}

impl<R: Read> Pendenze<R> {
    /// Opens the file and finds the columns; fails on a missing or repeated column.
    pub fn open(source: R, options: GovPayOptions) -> Result<Pendenze<R>, GovPayError> {
        if let Some(found) = options.iuv_aux_digit.filter(|digit| !(1..=3).contains(digit)) {
            return Err(GovPayError::IuvAuxDigit { found });
        }
        let input = CsvInput::open(source)?;
        let columns = Columns::find(input.header())?;
        Ok(Pendenze {
            input,
            columns,
            options,
            group: Group::default(),
            ready: VecDeque::new(),
            finished_documents: HashSet::new(),
            hasher: RandomState::new(),
            warnings: Vec::new(),
            failure: None,
            done: false,
        })
    }

    /// The encoding decided so far (final once the iterator is exhausted).
    pub fn encoding(&self) -> TextEncoding {
        self.input.encoding()
    }

    pub fn separator(&self) -> u8 {
        self.input.separator()
    }

    /// Rows accepted with a caveat so far: wrong check digits under
    /// [`NumberCheck::WarnOnly`], or later rows of a document whose rows are not adjacent,
    /// given no installment.
    pub fn warnings(&self) -> &[RecordError] {
        &self.warnings
    }

    fn read_next(&mut self) {
        match self.input.read_row() {
            Ok(NextRow::Record { line, record }) => self.accept(line, &record),
            Ok(NextRow::Rejected(error)) => self.push(Pending { outcome: Err(error), rata: None }),
            Ok(NextRow::End) => {
                self.flush();
                self.done = true;
            }
            Err(error) => {
                self.flush();
                self.failure = Some(error.into());
                self.done = true;
            }
        }
    }

    fn accept(&mut self, line: u64, record: &StringRecord) {
        if record.iter().all(|cell| cell.trim().is_empty()) {
            return;
        }
        let document = self.columns.document.map(|at| cell(record, at)).filter(|id| !id.is_empty());
        if document != self.group.document.as_deref() {
            self.flush();
            self.start_group(line, document);
        }
        let (outcome, rata) = match self.columns.rata(record, line) {
            Ok(rata) => (self.columns.notice(record, line, self.options, &mut self.warnings), rata),
            Err(error) => (Err(error), None),
        };
        self.push(Pending { outcome, rata });
    }

    /// Holds a row with its document's group; a row with no document goes out at once.
    fn push(&mut self, row: Pending) {
        self.group.rows.push(row);
        if self.group.document.is_none() {
            self.flush();
        }
    }

    fn start_group(&mut self, line: u64, document: Option<&str>) {
        let Some(document) = document else {
            return;
        };
        let scattered = !self.finished_documents.insert(self.hasher.hash_one(document));
        self.group = Group { document: Some(document.to_owned()), first_line: line, scattered, rows: Vec::new() };
    }

    /// Gives out the current group's rows with their installments.
    fn flush(&mut self) {
        let group = std::mem::take(&mut self.group);
        let total = group.rows.iter().filter_map(|row| row.rata).max();
        if let (true, Some(document), Some(_)) = (group.scattered, &group.document, total) {
            let reason = format!(
                "rows of document {document:?} are not adjacent (it also appears earlier), so its installments \
                 cannot be totalled: installments from this line on left unset"
            );
            self.warnings.push(RecordError { location: group.first_line, field: DOCUMENT.to_owned(), reason });
        }
        let countable = group.document.is_some() && !group.scattered;
        for Pending { outcome, rata } in group.rows {
            self.ready.push_back(outcome.map(|mut notice| {
                notice.installment = rata.zip(total).filter(|_| countable);
                notice
            }));
        }
    }
}

impl<R: Read> Iterator for Pendenze<R> {
    type Item = Result<Result<PaymentNotice, RecordError>, GovPayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Some(Ok(row));
            }
            if self.done {
                return self.failure.take().map(Err);
            }
            self.read_next();
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    document: Option<String>,
    first_line: u64,
    /// The document appeared before, not adjacent to these rows.
    scattered: bool,
    rows: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    outcome: Result<PaymentNotice, RecordError>,
    rata: Option<u32>,
}

/// Where each known column is in this file's header.
#[derive(Debug)]
struct Columns {
    notice: usize,
    creditor: usize,
    amount: usize,
    debtor: usize,
    debtor_name: Option<usize>,
    description: Option<usize>,
    due_date: Option<usize>,
    year: Option<usize>,
    rata: Option<usize>,
    document: Option<usize>,
}

const NOTICE: &str = "numeroAvviso";
const CREDITOR: &str = "idDominio";
const AMOUNT: &str = "importo";
const DEBTOR: &str = "identificativoPagatore";
const DEBTOR_NAME: &str = "anagraficaPagatore";
const DESCRIPTION: &str = "causale";
const DUE_DATE: &str = "dataScadenza";
const YEAR: &str = "annoRiferimento";
const RATA: &str = "numeroRata";
const DOCUMENT: &str = "idDocumento";

impl Columns {
    fn find(header: &StringRecord) -> Result<Columns, GovPayError> {
        let position = |name: &'static str| -> Result<Option<usize>, GovPayError> {
            let mut found = header.iter().enumerate().filter(|(_, h)| h.trim().eq_ignore_ascii_case(name));
            match (found.next(), found.next()) {
                (Some(_), Some(_)) => Err(GovPayError::DuplicateColumn { name }),
                (first, _) => Ok(first.map(|(at, _)| at)),
            }
        };
        let mut missing = Vec::new();
        let mut required = |name: &'static str| -> Result<usize, GovPayError> {
            let at = position(name)?;
            if at.is_none() {
                missing.push(name);
            }
            Ok(at.unwrap_or_default())
        };
        let (notice, creditor, amount, debtor) =
            (required(NOTICE)?, required(CREDITOR)?, required(AMOUNT)?, required(DEBTOR)?);
        if !missing.is_empty() {
            return Err(GovPayError::MissingColumns { names: missing });
        }
        Ok(Columns {
            notice,
            creditor,
            amount,
            debtor,
            debtor_name: position(DEBTOR_NAME)?,
            description: position(DESCRIPTION)?,
            due_date: position(DUE_DATE)?,
            year: position(YEAR)?,
            rata: position(RATA)?,
            document: position(DOCUMENT)?,
        })
    }

    /// The row as a notice, installment not yet set; the first bad field rejects it. A
    /// check-digit warning is added to `warnings` only if the row is accepted.
    fn notice(
        &self,
        row: &StringRecord,
        line: u64,
        options: GovPayOptions,
        warnings: &mut Vec<RecordError>,
    ) -> Result<PaymentNotice, RecordError> {
        let bad = |field: &str, reason: String| RecordError { location: line, field: field.to_owned(), reason };
        let (notice_number, warning) =
            parse_notice_number(cell(row, self.notice), options).map_err(|e| bad(NOTICE, e))?;
        let creditor = cell(row, self.creditor).parse::<OrgFiscalCode>().map_err(|e| bad(CREDITOR, e.to_string()))?;
        let amount = EuroCents::parse_decimal(cell(row, self.amount)).map_err(|e| bad(AMOUNT, e.to_string()))?;
        let debtor_fiscal_code = match cell(row, self.debtor) {
            "" => return Err(bad(DEBTOR, "is empty".to_owned())),
            code => code.to_owned(),
        };
        let due_date = optional(row, self.due_date).map(parse_date).transpose().map_err(|e| bad(DUE_DATE, e))?;
        let year = optional(row, self.year).map(parse_year).transpose().map_err(|e| bad(YEAR, e))?;
        warnings.extend(warning.map(|reason| bad(NOTICE, reason)));
        Ok(PaymentNotice {
            debtor_fiscal_code,
            debtor_name: optional(row, self.debtor_name).map(str::to_owned),
            creditor,
            notice_number,
            amount,
            due_date,
            description: optional(row, self.description).unwrap_or_default().to_owned(),
            installment: None,
            year,
        })
    }

    /// `numeroRata`: empty for a single payment, else a whole number from 1.
    fn rata(&self, row: &StringRecord, line: u64) -> Result<Option<u32>, RecordError> {
        let Some(text) = optional(row, self.rata) else {
            return Ok(None);
        };
        match text.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(RecordError {
                location: line,
                field: RATA.to_owned(),
                reason: format!("{text:?} is not an installment number (1, 2, ...)"),
            }),
        }
    }
}

/// The trimmed cell at `at`; a short row reads as empty cells.
fn cell(row: &StringRecord, at: usize) -> &str {
    row.get(at).unwrap_or_default().trim()
}

/// The trimmed cell of an optional column, `None` when the column or the value is absent.
fn optional(row: &StringRecord, at: Option<usize>) -> Option<&str> {
    at.map(|at| cell(row, at)).filter(|text| !text.is_empty())
}

/// An 18-digit notice number, or a 17-digit IUV completed with the configured aux digit;
/// with [`NumberCheck::WarnOnly`], wrong check digits give the number and a warning.
fn parse_notice_number(text: &str, options: GovPayOptions) -> Result<(NoticeNumber, Option<String>), String> {
    let digits: String = text.chars().filter(|&c| c != ' ').collect();
    let is_iuv = digits.len() == 17 && digits.bytes().all(|b| b.is_ascii_digit());
    let (number, context) = match (is_iuv, options.iuv_aux_digit) {
        (true, Some(aux)) => (format!("{aux}{digits}"), format!("IUV with aux digit {aux}: ")),
        (true, None) => {
            return Err("has 17 digits: probably an IUV, accepted only when the source has an IUV aux digit \
                        configured"
                .to_owned())
        }
        (false, _) => (digits, String::new()),
    };
    let parsed = match options.notice_check {
        NumberCheck::Enforce => number.parse().map(|number| (number, None)),
        NumberCheck::WarnOnly => NoticeNumber::parse_ignoring_check(&number),
    };
    match parsed {
        Ok((number, None)) => Ok((number, None)),
        Ok((number, Some(error))) => Ok((number, Some(format!("{context}{error}; accepted: the source is warn-only")))),
        Err(error) => Err(format!("{context}{error}")),
    }
}

/// `yyyy-mm-dd` as GovPay writes it, or `dd/mm/yyyy` as municipal re-exports do.
fn parse_date(text: &str) -> Result<jiff::civil::Date, String> {
    let numbers = |parts: [&str; 3], widths: [usize; 3]| -> Option<[i16; 3]> {
        let mut values = [0i16; 3];
        for ((part, width), value) in parts.iter().zip(widths).zip(&mut values) {
            if part.len() != width || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *value = part.parse().ok()?;
        }
        Some(values)
    };
    let split = |separator| -> Option<[&str; 3]> {
        let mut parts = text.split(separator);
        let found = [parts.next()?, parts.next()?, parts.next()?];
        parts.next().is_none().then_some(found)
    };
    let ymd = match (split('-'), split('/')) {
        (Some(parts), _) => numbers(parts, [4, 2, 2]),
        (_, Some([day, month, year])) => numbers([year, month, day], [4, 2, 2]),
        _ => None,
    };
    let Some([year, month, day]) = ymd else {
        return Err(format!("{text:?} is not a date as yyyy-mm-dd or dd/mm/yyyy"));
    };
    let month_day = (i8::try_from(month), i8::try_from(day));
    let (Ok(month), Ok(day)) = month_day else {
        return Err(format!("{text:?} is not a calendar date"));
    };
    jiff::civil::Date::new(year, month, day).map_err(|_| format!("{text:?} is not a calendar date"))
}

fn parse_year(text: &str) -> Result<i16, String> {
    match text.parse::<i16>() {
        Ok(year) if text.len() == 4 && year >= 1000 => Ok(year),
        _ => Err(format!("{text:?} is not a 4-digit year")),
    }
}

#[cfg(test)]
mod tests;
