//! One subject as either reader found it (text fields by ANPR name), and the triage shared
//! by both readers: rejected, skipped as deceased, cancelled or duplicate, or a [`Resident`].

use std::collections::hash_map::{Entry as Slot, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;

use jiff::civil::Date;

use super::{AnprSummary, CardKind, Entry, IdCard, Resident, SkipReason, SkippedSubject};
use crate::payment::RecordError;

/// A subject's fields as text, trimmed, `None` when absent or empty.
#[derive(Debug, Default)]
pub(super) struct RawSubject {
    pub location: u64,
    pub record_id: Option<String>,
    pub fiscal_code: Option<String>,
    pub surname: Option<String>,
    pub no_surname: bool,
    pub name: Option<String>,
    pub no_name: bool,
    pub birth_date: Option<String>,
    pub card: RawCard,
    pub digital_domicile: Option<String>,
    pub deceased: bool,
    /// The cancellation reason code; `Some("")` for a cancellation without one.
    pub cancellation: Option<String>,
    /// The first field whose text is not valid in the declared encoding.
    pub unreadable: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct RawCard {
    pub number: Option<String>,
    pub kind: Option<String>,
    pub issued: Option<String>,
    pub expiry: Option<String>,
    pub annulled: Option<String>,
}

/// How each format names the fields a record error can point at.
pub(super) struct FieldNames {
    pub fiscal_code: &'static str,
    pub birth_date: &'static str,
    pub card_number: &'static str,
    pub issued: &'static str,
    pub expiry: &'static str,
    pub annulled: &'static str,
}

/// Sorts subjects into entries, remembers who was handed over, and counts.
#[derive(Debug, Default)]
pub(super) struct Triage {
    /// Hash of each dedup key → location of its first subject.
    seen: HashMap<u64, u64>,
    hasher: RandomState,
    pub summary: AnprSummary,
}

impl Triage {
    pub fn hand_over(&mut self, subject: RawSubject, names: &FieldNames, each: &mut impl FnMut(Entry)) {
        let entry = self.entry(subject, names);
        match &entry {
            Entry::Resident(_) => self.summary.residents += 1,
            Entry::Skipped(_) => self.summary.skipped += 1,
            Entry::Rejected(_) => self.summary.rejected += 1,
        }
        each(entry);
    }

    /// Hands over a record that could not even be read into fields.
    pub fn reject(&mut self, error: RecordError, each: &mut impl FnMut(Entry)) {
        self.summary.rejected += 1;
        each(Entry::Rejected(error));
    }

    fn entry(&mut self, subject: RawSubject, names: &FieldNames) -> Entry {
        let location = subject.location;
        let Some(fiscal_code) = subject.fiscal_code.as_deref().map(str::to_uppercase) else {
            let reason = "is missing: a subject without a fiscal code cannot be messaged".to_owned();
            return Entry::Rejected(RecordError { location, field: names.fiscal_code.to_owned(), reason });
        };
        let skip = |reason| Entry::Skipped(SkippedSubject { location, fiscal_code: fiscal_code.clone(), reason });
        let key = match &subject.record_id {
            Some(id) => self.hasher.hash_one(("record", id)),
            None => self.hasher.hash_one(("fiscal code", &fiscal_code)),
        };
        match self.seen.entry(key) {
            Slot::Occupied(first) => return skip(SkipReason::Duplicate { first_location: *first.get() }),
            Slot::Vacant(slot) => {
                slot.insert(location);
            }
        }
        match subject.cancellation.as_deref() {
            _ if subject.deceased => return skip(SkipReason::Deceased),
            Some("1") => return skip(SkipReason::Deceased),
            Some(code) => return skip(SkipReason::Cancelled { code: code.to_owned() }),
            None => {}
        }
        match subject.resident(fiscal_code, names) {
            Ok(resident) => Entry::Resident(resident),
            Err(error) => Entry::Rejected(error),
        }
    }
}

impl RawSubject {
    fn resident(self, fiscal_code: String, names: &FieldNames) -> Result<Resident, RecordError> {
        let location = self.location;
        let bad = |field: &str, reason: String| RecordError { location, field: field.to_owned(), reason };
        if let Some(field) = &self.unreadable {
            return Err(bad(field, "is not valid text in the encoding the answer declares".to_owned()));
        }
        let date = |text: Option<&str>, field: &str| text.map(parse_date).transpose().map_err(|e| bad(field, e));
        let birth_date = date(self.birth_date.as_deref(), names.birth_date)?;
        let card = self.card;
        let id_card = match card.number {
            Some(number) => {
                let kind = card_kind(card.kind.as_deref(), &number);
                let issued = date(card.issued.as_deref(), names.issued)?;
                let printed = date(card.expiry.as_deref(), names.expiry)?;
                let annulled = date(card.annulled.as_deref(), names.annulled)?;
                let unlimited = printed.is_some_and(|expiry| expiry.year() == UNLIMITED_YEAR);
                let expiry = printed.filter(|_| !unlimited);
                Some(IdCard { number, kind, issued, expiry, unlimited, annulled })
            }
            None if card.issued.is_some() || card.expiry.is_some() || card.annulled.is_some() => {
                let reason = "is missing, but the subject has other identity card fields".to_owned();
                return Err(bad(names.card_number, reason));
            }
            None => None,
        };
        Ok(Resident {
            location,
            anpr_record_id: self.record_id,
            fiscal_code,
            surname: self.surname.filter(|_| !self.no_surname),
            name: self.name.filter(|_| !self.no_name),
            birth_date,
            id_card,
            digital_domicile: self.digital_domicile,
        })
    }
}

/// The year of the "unlimited validity" expiry sentinel, `9999-01-01`.
const UNLIMITED_YEAR: i16 = 9999;

/// Trimmed text, `None` when empty.
pub(super) fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// An `xs:date` (`yyyy-mm-dd`, with or without a zone such as `Z` or `+01:00`) or a
/// municipal `dd/mm/yyyy`.
pub(super) fn parse_date(text: &str) -> Result<Date, String> {
    let ymd = match text.as_bytes() {
        [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, zone @ ..] if is_zone(zone) => {
            (digits(&[*y1, *y2, *y3, *y4]), digits(&[*m1, *m2]), digits(&[*d1, *d2]))
        }
        [d1, d2, b'/', m1, m2, b'/', y1, y2, y3, y4] => {
            (digits(&[*y1, *y2, *y3, *y4]), digits(&[*m1, *m2]), digits(&[*d1, *d2]))
        }
        _ => (None, None, None),
    };
    let (Some(year), Some(month), Some(day)) = ymd else {
        return Err(format!("{text:?} is not a date as yyyy-mm-dd or dd/mm/yyyy"));
    };
    let (Ok(month), Ok(day)) = (i8::try_from(month), i8::try_from(day)) else {
        return Err(format!("{text:?} is not a calendar date"));
    };
    Date::new(year, month, day).map_err(|_| format!("{text:?} is not a calendar date"))
}

/// The zone an `xs:date` may carry: none, `Z`, or `±hh:mm`.
fn is_zone(zone: &[u8]) -> bool {
    match zone {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

fn digits(text: &[u8]) -> Option<i16> {
    text.iter().try_fold(0i16, |value, &byte| byte.is_ascii_digit().then(|| value * 10 + i16::from(byte - b'0')))
}

/// The kind a card's code says (XML 1/2, CSV C/E), else the one its number's shape says.
pub(super) fn card_kind(code: Option<&str>, number: &str) -> CardKind {
    match code.map(str::to_ascii_uppercase).as_deref() {
        Some("1" | "C" | "CARTACEA") => CardKind::Paper,
        Some("2" | "E" | "ELETTRONICA" | "CIE") => CardKind::Electronic,
        _ => kind_from_number(number),
    }
}

/// CIE numbers look like `CA12345AB`, paper ones like `AX1234567` (spaces ignored).
fn kind_from_number(number: &str) -> CardKind {
    let shape: String = number
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| match c {
            c if c.is_ascii_alphabetic() => 'A',
            c if c.is_ascii_digit() => '9',
            _ => '?',
        })
        .collect();
    match shape.as_str() {
        "AA99999AA" => CardKind::Electronic,
        "AA9999999" => CardKind::Paper,
        _ => CardKind::Unknown,
    }
}
