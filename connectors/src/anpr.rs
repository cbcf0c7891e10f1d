//! Readers of ANPR resident lists: the "Elenchi" extraction (concatenated XML answers of
//! service 3002, see `shared/anpr/README.md`) and the flat CSV proposal with ANPR column
//! names. Both hand every subject to the caller's callback as an [`Entry`], in file order.
//!
//! What a subject becomes:
//! - a [`Resident`] with the fields messaging needs (fiscal code, names, birth date, current
//!   identity card, digital domicile);
//! - [`Entry::Skipped`] when the person must not be messaged or was already handed over:
//!   deceased (`datiDecesso`, or cancellation reason 1), cancelled for any other reason
//!   (moved abroad, to another comune...), or a duplicate. Duplicates are recognised by the
//!   ANPR record id (`idSchedaSoggettoANPR` in XML, `idANPR` in CSV), else by the fiscal
//!   code. Only a 64-bit hash of each key is kept (with its first location), so memory grows
//!   by a few bytes per subject; a hash collision, about 1 in 10^7 for a million subjects,
//!   would wrongly skip one person as a duplicate;
//! - [`Entry::Rejected`] when it cannot be read (no fiscal code, a date that is not a date,
//!   text that is not valid in its encoding...). Reading goes on.
//!
//! A file that is not an extract, XML that is malformed or truncated, or a source that fails
//! ends the read with an [`AnprFailure`]. Entries already handed over stay valid (an XML
//! answer is handed over only once it is complete), and the failure carries the summary of
//! everything read before the error.
//!
//! Both readers stream: a 200 MB extract is never held whole. See [`read_xml`] and
//! [`read_csv`] for each format's details.

mod flat_csv;
mod subject;
mod xml;

use std::fmt;
use std::io::{self, Read};

use crate::csv_text::CsvReadError;
use crate::payment::RecordError;

/// A person living in the comune, as the extract describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resident {
    /// 1-based: answer index in the file for XML (the n-th `Risposta3002_OK`), line number
    /// for CSV.
    pub location: u64,
    /// `generalita/idSchedaSoggettoANPR` (XML) or `idANPR` (CSV).
    pub anpr_record_id: Option<String>,
    /// Trimmed and uppercased, as written: validation is the caller's.
    pub fiscal_code: String,
    /// `None` when the person has no surname (`senzaCognome`) or none is written.
    pub surname: Option<String>,
    /// `None` when the person has no name (`senzaNome`) or none is written.
    pub name: Option<String>,
    pub birth_date: Option<jiff::civil::Date>,
    /// The current identity card, if ANPR knows one.
    pub id_card: Option<IdCard>,
    /// `domicilioDigitale/indirizzoDigitale`: the person's registered digital address.
    pub digital_domicile: Option<String>,
}

/// A person's current identity card (`cartaIdentita`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdCard {
    /// As written, trimmed.
    pub number: String,
    pub kind: CardKind,
    pub issued: Option<jiff::civil::Date>,
    /// `None` when missing or the "unlimited validity" sentinel (see `unlimited`).
    pub expiry: Option<jiff::civil::Date>,
    /// The expiry is the sentinel `9999-01-01` (any date in year 9999 is taken as one) that
    /// CIEonline writes for cards of unlimited validity.
    pub unlimited: bool,
    /// `dataAnnullamento`: the card is no longer valid.
    pub annulled: Option<jiff::civil::Date>,
}

/// Paper card or electronic (CIE).
///
/// From `cartaceaElettronica` (XML: 1 paper, 2 CIE, an assumption the README explains) or
/// `ciCartaceaElettronica` (CSV: `C`/`E`, or 1/2). When that is missing or unknown, from the
/// number's shape: CIE numbers look like `CA12345AB`, paper ones like `AX1234567`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardKind {
    Paper,
    Electronic,
    Unknown,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CardKind::Paper => "paper",
            CardKind::Electronic => "electronic",
            CardKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for CardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a reader made of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Resident(Resident),
    /// A subject not to message: deceased, cancelled, or already handed over.
    Skipped(SkippedSubject),
    /// A subject (or CSV row) that cannot be read; `location` as for [`Resident`].
    Rejected(RecordError),
}

/// A subject left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSubject {
    /// As for [`Resident::location`].
    pub location: u64,
    pub fiscal_code: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `datiDecesso`, or cancellation reason 1.
    Deceased,
    /// `datiCancellazione` with any other reason (`code`, empty if none was written).
    Cancelled { code: String },
    /// The same ANPR record (or, without a record id, the same fiscal code) was read first
    /// at `first_location`.
    Duplicate { first_location: u64 },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Deceased => f.write_str("deceased"),
            SkipReason::Cancelled { code } if code.is_empty() => {
                f.write_str("no longer resident (ANPR cancellation without a reason code)")
            }
            SkipReason::Cancelled { code } => match cancellation_meaning(code) {
                Some(meaning) => write!(f, "no longer resident (ANPR cancellation reason {code}: {meaning})"),
                None => write!(f, "no longer resident (ANPR cancellation reason {code})"),
            },
            SkipReason::Duplicate { first_location } => write!(f, "duplicate of record {first_location}"),
        }
    }
}

/// The cancellation reasons the ANPR documentation we have explains.
fn cancellation_meaning(code: &str) -> Option<&'static str> {
    match code {
        "1" => Some("death"),
        "3" => Some("moved to a comune not yet in ANPR"),
        "8" => Some("moved abroad"),
        _ => None,
    }
}

/// What a read produced, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnprSummary {
    /// Complete XML answers read; data rows read, for CSV.
    pub answers: u64,
    pub residents: u64,
    pub skipped: u64,
    pub rejected: u64,
}

/// A read that ended early, with the summary of everything handed over before the error.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} residents already handed over)", .summary.residents)]
pub struct AnprFailure {
    #[source]
    pub error: AnprError,
    pub summary: AnprSummary,
}

/// The namespace of `Risposta3002_OK`.
pub const CONSULTATION_NAMESPACE: &str = "http://sogei.it/ANPR/3000consultazione";

/// Why a file could not be read to its end. Byte offsets count from the start of the file,
/// after decompression for a gzipped one.
#[derive(Debug, thiserror::Error)]
pub enum AnprError {
    #[error("the file is empty, but an ANPR extract holds XML answers (Risposta3002_OK), plain or gzipped")]
    Empty,
    #[error(
        "not an ANPR extract: it starts with \"{start}\", but an ANPR extract holds XML answers (Risposta3002_OK), \
         plain or gzipped"
    )]
    NotAnpr { start: String },
    #[error(
        "answer {answer} (from byte {offset}) has root element {found}, but an ANPR extract holds only \
         Risposta3002_OK answers in namespace {CONSULTATION_NAMESPACE}"
    )]
    WrongRoot { answer: u64, offset: u64, found: String },
    #[error(
        "answer {answer} (from byte {answer_offset}) stops at byte {offset} before it is complete: the file is \
         truncated or damaged, download it again"
    )]
    Truncated { answer: u64, answer_offset: u64, offset: u64 },
    #[error("malformed XML in answer {answer} (from byte {answer_offset}) at byte {offset}: {source}")]
    Xml { answer: u64, answer_offset: u64, offset: u64, source: quick_xml::Error },
    #[error("answer {answer} (from byte {answer_offset}) has content outside its root element at byte {offset}")]
    Stray { answer: u64, answer_offset: u64, offset: u64 },
    #[error(
        "answer {answer} (from byte {offset}) declares encoding \"{encoding}\", but only UTF-8 and single-byte \
         encodings such as ISO-8859-1 can be read"
    )]
    Encoding { answer: u64, offset: u64, encoding: String },
    #[error(
        "answer {answer} (from byte {offset}) is longer than {limit} bytes without a new XML declaration: not an \
         ANPR extract as downloaded (one short answer per subject)"
    )]
    AnswerTooLarge { answer: u64, offset: u64, limit: usize },
    #[error("the gzip compression is damaged or truncated, after {answers_read} complete answers: {source}")]
    Gzip {
        answers_read: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the file at byte {offset}, after {answers_read} complete answers: {source}")]
    Read {
        answers_read: u64,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Csv(#[from] CsvReadError),
    #[error("required column(s) missing from the header: {}", names.join(", "))]
    MissingColumns { names: Vec<&'static str> },
    #[error("column {name} appears more than once in the header")]
    DuplicateColumn { name: &'static str },
}

/// Reads an ANPR extraction file: XML answers one after the other, plain or gzipped
/// (recognised by its first bytes, whatever the file's name), calling `each` with every
/// subject in file order.
///
/// The file is split on every XML declaration, so answers may follow each other on new
/// lines or directly; each answer is read in the encoding it declares (UTF-8 when it
/// declares none; ISO-8859-1 and other single-byte encodings are decoded) and handed over
/// once complete. Only one answer is held at a time, up to 16 MiB. The root of each answer
/// must be `Risposta3002_OK` in [`CONSULTATION_NAMESPACE`], under any prefix or as the
/// default namespace; elements below it are matched by local name. The header
/// (`testataRisposta`) is ignored; every `listaSoggetti/datiSoggetto` becomes an entry.
pub fn read_xml<R: Read>(source: R, each: impl FnMut(Entry)) -> Result<AnprSummary, AnprFailure> {
    xml::read(source, each)
}

/// Reads the flat CSV proposal (`shared/samples/anpr_estratto_proposto.csv`), calling `each`
/// with every row in file order.
///
/// Encoding and separator are whatever [`crate::csv_text::CsvInput`] detects. Columns are
/// found by header name, in any order and case: `codiceFiscale` is required; `idANPR`,
/// `cognome`, `nome`, `dataNascita`, `ciNumero`, `ciCartaceaElettronica`, `ciDataRilascio`,
/// `ciDataScadenza`, `ciDataAnnullamento`, `domicilioDigitale`, `dataDecesso`,
/// `motivoCancellazione` and `dataDecorrenzaCancellazione` are read when present. Dates are
/// `yyyy-mm-dd` or `dd/mm/yyyy`. A location is the row's line number.
pub fn read_csv<R: Read>(source: R, each: impl FnMut(Entry)) -> Result<AnprSummary, AnprFailure> {
    flat_csv::read(source, each)
}

#[cfg(test)]
mod tests;
