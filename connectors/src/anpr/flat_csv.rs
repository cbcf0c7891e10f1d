//! The flat CSV proposal: one subject per row, columns named as the ANPR fields they carry.

use std::io::Read;

use csv::StringRecord;

use super::subject::{non_empty, FieldNames, RawCard, RawSubject, Triage};
use super::{AnprError, AnprFailure, AnprSummary, Entry};
use crate::csv_text::{CsvInput, NextRow};

const RECORD_ID: &str = "idANPR";
const FISCAL_CODE: &str = "codiceFiscale";
const SURNAME: &str = "cognome";
const NAME: &str = "nome";
const BIRTH_DATE: &str = "dataNascita";
const CARD_NUMBER: &str = "ciNumero";
const CARD_KIND: &str = "ciCartaceaElettronica";
const CARD_ISSUED: &str = "ciDataRilascio";
const CARD_EXPIRY: &str = "ciDataScadenza";
const CARD_ANNULLED: &str = "ciDataAnnullamento";
const DIGITAL_DOMICILE: &str = "domicilioDigitale";
const DEATH_DATE: &str = "dataDecesso";
const CANCELLATION: &str = "motivoCancellazione";
const CANCELLATION_DATE: &str = "dataDecorrenzaCancellazione";

const NAMES: FieldNames = FieldNames {
    fiscal_code: FISCAL_CODE,
    birth_date: BIRTH_DATE,
    card_number: CARD_NUMBER,
    issued: CARD_ISSUED,
    expiry: CARD_EXPIRY,
    annulled: CARD_ANNULLED,
};

pub(super) fn read<R: Read>(source: R, mut each: impl FnMut(Entry)) -> Result<AnprSummary, AnprFailure> {
    let mut triage = Triage::default();
    match read_rows(source, &mut triage, &mut each) {
        Ok(()) => Ok(triage.summary),
        Err(error) => Err(AnprFailure { error, summary: triage.summary }),
    }
}

fn read_rows<R: Read>(source: R, triage: &mut Triage, each: &mut impl FnMut(Entry)) -> Result<(), AnprError> {
    let mut input = CsvInput::open(source)?;
    let columns = Columns::find(input.header())?;
    loop {
        match input.read_row()? {
            NextRow::Record { record, .. } if record.iter().all(|cell| cell.trim().is_empty()) => {}
            NextRow::Record { line, record } => {
                triage.summary.answers += 1;
                triage.hand_over(columns.subject(line, &record), &NAMES, each);
            }
            NextRow::Rejected(error) => {
                triage.summary.answers += 1;
                triage.reject(error, each);
            }
            NextRow::End => return Ok(()),
        }
    }
}

/// Where each known column is in this file's header.
#[derive(Debug)]
struct Columns {
    fiscal_code: usize,
    record_id: Option<usize>,
    surname: Option<usize>,
    name: Option<usize>,
    birth_date: Option<usize>,
    card_number: Option<usize>,
    card_kind: Option<usize>,
    card_issued: Option<usize>,
    card_expiry: Option<usize>,
    card_annulled: Option<usize>,
    digital_domicile: Option<usize>,
    death_date: Option<usize>,
    cancellation: Option<usize>,
    cancellation_date: Option<usize>,
}

impl Columns {
    /// Finds columns by name, ignoring case and surrounding spaces.
    fn find(header: &StringRecord) -> Result<Columns, AnprError> {
        let position = |name: &'static str| -> Result<Option<usize>, AnprError> {
            let mut found = header.iter().enumerate().filter(|(_, h)| h.trim().eq_ignore_ascii_case(name));
            match (found.next(), found.next()) {
                (Some(_), Some(_)) => Err(AnprError::DuplicateColumn { name }),
                (first, _) => Ok(first.map(|(at, _)| at)),
            }
        };
        let Some(fiscal_code) = position(FISCAL_CODE)? else {
            return Err(AnprError::MissingColumns { names: vec![FISCAL_CODE] });
        };
        Ok(Columns {
            fiscal_code,
            record_id: position(RECORD_ID)?,
            surname: position(SURNAME)?,
            name: position(NAME)?,
            birth_date: position(BIRTH_DATE)?,
            card_number: position(CARD_NUMBER)?,
            card_kind: position(CARD_KIND)?,
            card_issued: position(CARD_ISSUED)?,
            card_expiry: position(CARD_EXPIRY)?,
            card_annulled: position(CARD_ANNULLED)?,
            digital_domicile: position(DIGITAL_DOMICILE)?,
            death_date: position(DEATH_DATE)?,
            cancellation: position(CANCELLATION)?,
            cancellation_date: position(CANCELLATION_DATE)?,
        })
    }

    fn subject(&self, line: u64, row: &StringRecord) -> RawSubject {
        let cell = |at: Option<usize>| at.and_then(|at| row.get(at)).and_then(non_empty);
        // A cancellation date without a reason is still a cancellation.
        let cancellation = cell(self.cancellation).or_else(|| cell(self.cancellation_date).map(|_| String::new()));
        RawSubject {
            location: line,
            record_id: cell(self.record_id),
            fiscal_code: cell(Some(self.fiscal_code)),
            surname: cell(self.surname),
            no_surname: false,
            name: cell(self.name),
            no_name: false,
            birth_date: cell(self.birth_date),
            card: RawCard {
                number: cell(self.card_number),
                kind: cell(self.card_kind),
                issued: cell(self.card_issued),
                expiry: cell(self.card_expiry),
                annulled: cell(self.card_annulled),
            },
            digital_domicile: cell(self.digital_domicile),
            deceased: cell(self.death_date).is_some(),
            cancellation,
            unreadable: None,
        }
    }
}

#[cfg(test)]
mod tests;
