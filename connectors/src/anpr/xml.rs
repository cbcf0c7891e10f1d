//! The XML extract: answers cut from the stream (see [`answers`]), each decoded from its
//! declared encoding and parsed with a namespace-aware pull parser into raw subjects.

mod answers;

use std::borrow::Cow;
use std::io::Read;

use encoding_rs::{Encoding, UTF_8};
use quick_xml::errors::SyntaxError;
use quick_xml::events::{BytesRef, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use self::answers::{Answers, CutError, Input, MAX_ANSWER_BYTES};
use super::subject::{non_empty, FieldNames, RawSubject, Triage};
use super::{AnprError, AnprFailure, AnprSummary, Entry, CONSULTATION_NAMESPACE};

const ROOT: &[u8] = b"Risposta3002_OK";
/// The path of a subject below the root.
const SUBJECT: &str = "/listaSoggetti/datiSoggetto";

const NAMES: FieldNames = FieldNames {
    fiscal_code: "generalita/codiceFiscale/codFiscale",
    birth_date: "generalita/dataNascita",
    card_number: "cartaIdentita/numero",
    issued: "cartaIdentita/dataRilascio",
    expiry: "cartaIdentita/dataScadenza",
    annulled: "cartaIdentita/dataAnnullamento",
};

pub(super) fn read<R: Read>(source: R, mut each: impl FnMut(Entry)) -> Result<AnprSummary, AnprFailure> {
    let mut triage = Triage::default();
    match read_answers(source, &mut triage, &mut each) {
        Ok(()) => Ok(triage.summary),
        Err(error) => Err(AnprFailure { error, summary: triage.summary }),
    }
}

fn read_answers<R: Read>(source: R, triage: &mut Triage, each: &mut impl FnMut(Entry)) -> Result<(), AnprError> {
    let input = Input::open(source).map_err(|source| AnprError::Read { answers_read: 0, offset: 0, source })?;
    let mut answers = Answers::new(input);
    let mut number = 0;
    loop {
        let answers_read = triage.summary.answers;
        match answers.advance() {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(CutError::Read { source, .. }) if answers.input().is_gzip_fault() => {
                return Err(AnprError::Gzip { answers_read, source })
            }
            Err(error) => return Err(cut_error(error, answers_read, number + 1)),
        }
        let answer = answers.current();
        number += 1;
        let subjects = parse_answer(answer.bytes, number).map_err(|error| error.at(number, answer.offset))?;
        triage.summary.answers += 1;
        for subject in subjects {
            triage.hand_over(subject, &NAMES, each);
        }
    }
}

fn cut_error(error: CutError, answers_read: u64, answer: u64) -> AnprError {
    match error {
        CutError::Empty => AnprError::Empty,
        CutError::NotXml { start } => AnprError::NotAnpr { start },
        CutError::TooLarge { offset } => AnprError::AnswerTooLarge { answer, offset, limit: MAX_ANSWER_BYTES },
        CutError::Read { offset, source } => AnprError::Read { answers_read, offset, source },
    }
}

/// What is wrong with one answer; offsets are within it.
#[derive(Debug)]
enum AnswerError {
    WrongRoot { found: String },
    Truncated { offset: u64 },
    Xml { offset: u64, source: quick_xml::Error },
    Stray { offset: u64 },
    Encoding { label: String },
}

impl AnswerError {
    fn at(self, answer: u64, answer_offset: u64) -> AnprError {
        let file_offset = |offset: u64| answer_offset + offset;
        match self {
            AnswerError::WrongRoot { found } => AnprError::WrongRoot { answer, offset: answer_offset, found },
            AnswerError::Truncated { offset } => {
                AnprError::Truncated { answer, answer_offset, offset: file_offset(offset) }
            }
            AnswerError::Xml { offset, source } => {
                AnprError::Xml { answer, answer_offset, offset: file_offset(offset), source }
            }
            AnswerError::Stray { offset } => AnprError::Stray { answer, answer_offset, offset: file_offset(offset) },
            AnswerError::Encoding { label } => AnprError::Encoding { answer, offset: answer_offset, encoding: label },
        }
    }
}

/// The subjects of one complete answer, whose location is `number`.
fn parse_answer(bytes: &[u8], number: u64) -> Result<Vec<RawSubject>, AnswerError> {
    let text = Decoded::new(bytes)?;
    let mut reader = NsReader::from_reader(text.utf8());
    reader.config_mut().expand_empty_elements = true;
    let mut parser = AnswerParser { number, ..AnswerParser::default() };
    loop {
        let event = reader.read_resolved_event();
        let offset = |position| text.original_offset(position);
        match event {
            Ok((_, Event::Eof)) if parser.depth == 0 && parser.root_done => return Ok(parser.subjects),
            Ok((_, Event::Eof)) => return Err(AnswerError::Truncated { offset: offset(reader.buffer_position()) }),
            Ok((namespace, event)) => {
                if let Err(error) = parser.event(&namespace, event) {
                    return Err(error.unwrap_or(AnswerError::Stray { offset: offset(reader.buffer_position()) }));
                }
            }
            Err(source) => {
                let offset = offset(reader.error_position());
                return Err(match source {
                    // Every syntax error but this one is the end of input inside markup.
                    quick_xml::Error::Syntax(syntax) if !matches!(syntax, SyntaxError::InvalidBangMarkup) => {
                        AnswerError::Truncated { offset }
                    }
                    source => AnswerError::Xml { offset, source },
                });
            }
        }
    }
}

/// An answer's bytes as UTF-8 for the parser: borrowed when it is UTF-8, decoded when it
/// declares a single-byte encoding such as ISO-8859-1.
struct Decoded<'a> {
    text: Cow<'a, [u8]>,
    /// Decoded from a single-byte encoding: one character per original byte.
    single_byte: bool,
}

impl<'a> Decoded<'a> {
    fn new(bytes: &'a [u8]) -> Result<Decoded<'a>, AnswerError> {
        let Some(label) = declared_encoding(bytes) else {
            return Ok(Decoded { text: Cow::Borrowed(bytes), single_byte: false });
        };
        match Encoding::for_label(label) {
            Some(encoding) if encoding == UTF_8 => Ok(Decoded { text: Cow::Borrowed(bytes), single_byte: false }),
            Some(encoding) if encoding.is_single_byte() => {
                let (text, _) = encoding.decode_without_bom_handling(bytes);
                Ok(Decoded { text: Cow::Owned(text.into_owned().into_bytes()), single_byte: true })
            }
            _ => Err(AnswerError::Encoding { label: String::from_utf8_lossy(label).into_owned() }),
        }
    }

    fn utf8(&self) -> &[u8] {
        &self.text
    }

    /// The offset in the original bytes of `position` in the UTF-8 text.
    fn original_offset(&self, position: u64) -> u64 {
        if !self.single_byte {
            return position;
        }
        let end = usize::try_from(position).unwrap_or(usize::MAX).min(self.text.len());
        self.text[..end].iter().filter(|&&byte| (byte & 0xC0) != 0x80).count() as u64
    }
}

/// The `encoding` of a leading XML declaration, if there is one.
fn declared_encoding(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(b"<?xml")?;
    let declaration = &rest[..rest.windows(2).position(|pair| pair == b"?>")?];
    let after = &declaration[declaration.windows(8).position(|word| word == b"encoding")? + 8..];
    let after = after.trim_ascii_start().strip_prefix(b"=")?.trim_ascii_start();
    let (&quote, value) = after.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    Some(&value[..value.iter().position(|&byte| byte == quote)?])
}

/// Walks one answer's events, collecting its subjects.
#[derive(Default)]
struct AnswerParser {
    number: u64,
    /// Elements open, the root included.
    depth: usize,
    root_done: bool,
    /// Local names below the root, as `/listaSoggetti/datiSoggetto/...`.
    path: String,
    /// Text of the innermost element so far.
    text: String,
    /// The text could not be decoded.
    text_unreadable: bool,
    subject: Option<RawSubject>,
    subjects: Vec<RawSubject>,
}

impl AnswerParser {
    /// `Err(None)` for content outside the root (the caller knows where).
    fn event(&mut self, namespace: &ResolveResult<'_>, event: Event<'_>) -> Result<(), Option<AnswerError>> {
        match event {
            Event::Start(start) if self.depth == 0 => {
                if self.root_done {
                    return Err(None);
                }
                self.open_root(namespace, start.local_name().as_ref(), start.name().as_ref())?;
            }
            Event::Start(start) => {
                self.path.push('/');
                self.path.push_str(&String::from_utf8_lossy(start.local_name().as_ref()));
                self.depth += 1;
                self.text.clear();
                self.text_unreadable = false;
                if self.path == SUBJECT {
                    self.subject = Some(RawSubject { location: self.number, ..RawSubject::default() });
                }
            }
            Event::End(_) => self.close(),
            Event::Text(text) if self.depth == 0 => {
                if !text.iter().all(|byte| byte.is_ascii_whitespace()) && !is_bom(&text) {
                    return Err(None);
                }
            }
            Event::Text(text) => match text.decode() {
                Ok(text) => self.text.push_str(&text),
                Err(_) => self.text_unreadable = true,
            },
            Event::CData(data) if self.depth > 0 => match data.decode() {
                Ok(text) => self.text.push_str(&text),
                Err(_) => self.text_unreadable = true,
            },
            Event::CData(_) => return Err(None),
            Event::GeneralRef(reference) if self.depth > 0 => self.reference(&reference),
            Event::GeneralRef(_) => return Err(None),
            Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Eof => {}
        }
        Ok(())
    }

    fn open_root(
        &mut self,
        namespace: &ResolveResult<'_>,
        local: &[u8],
        name: &[u8],
    ) -> Result<(), Option<AnswerError>> {
        let expected =
            matches!(namespace, ResolveResult::Bound(ns) if ns.as_ref() == CONSULTATION_NAMESPACE.as_bytes());
        if !expected || local != ROOT {
            let namespace = match namespace {
                ResolveResult::Bound(ns) => format!("namespace {}", String::from_utf8_lossy(ns.as_ref())),
                ResolveResult::Unbound => "no namespace".to_owned(),
                ResolveResult::Unknown(prefix) => format!("undeclared prefix {}", String::from_utf8_lossy(prefix)),
            };
            let found = format!("<{}> ({namespace})", String::from_utf8_lossy(name));
            return Err(Some(AnswerError::WrongRoot { found }));
        }
        self.depth = 1;
        Ok(())
    }

    /// A character or predefined entity reference inside text.
    fn reference(&mut self, reference: &BytesRef<'_>) {
        let resolved = match reference.resolve_char_ref() {
            Ok(Some(character)) => Some(Cow::Owned(character.to_string())),
            Ok(None) => reference
                .decode()
                .ok()
                .and_then(|name| quick_xml::escape::resolve_predefined_entity(&name))
                .map(Cow::Borrowed),
            Err(_) => None,
        };
        match resolved {
            Some(text) => self.text.push_str(&text),
            None => self.text_unreadable = true,
        }
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.root_done = true;
            return;
        }
        if self.path == SUBJECT {
            self.subjects.extend(self.subject.take());
        } else if let (Some(subject), Some(field)) = (&mut self.subject, self.path.strip_prefix(SUBJECT)) {
            let field = field.trim_start_matches('/');
            if self.text_unreadable {
                subject.unreadable.get_or_insert_with(|| field.to_owned());
            } else {
                set_field(subject, field, &self.text);
            }
        }
        self.text.clear();
        self.text_unreadable = false;
        let parent = self.path.rfind('/').unwrap_or(0);
        self.path.truncate(parent);
    }
}

/// Stores the text of the element at `field` (a path below `datiSoggetto`).
fn set_field(subject: &mut RawSubject, field: &str, text: &str) {
    let value = || non_empty(text);
    match field {
        "generalita/codiceFiscale/codFiscale" => subject.fiscal_code = value(),
        "generalita/idSchedaSoggettoANPR" => subject.record_id = value(),
        "generalita/cognome" => subject.surname = value(),
        "generalita/nome" => subject.name = value(),
        "generalita/senzaCognome" => subject.no_surname = text.trim() == "1",
        "generalita/senzaNome" => subject.no_name = text.trim() == "1",
        "generalita/dataNascita" => subject.birth_date = value(),
        "cartaIdentita/numero" => subject.card.number = value(),
        "cartaIdentita/cartaceaElettronica" => subject.card.kind = value(),
        "cartaIdentita/dataRilascio" => subject.card.issued = value(),
        "cartaIdentita/dataScadenza" => subject.card.expiry = value(),
        "cartaIdentita/dataAnnullamento" => subject.card.annulled = value(),
        "domicilioDigitale/indirizzoDigitale" => subject.digital_domicile = value(),
        "datiCancellazione/motivoCancellazione" => subject.cancellation = value(),
        "datiCancellazione" => {
            subject.cancellation.get_or_insert_with(String::new);
        }
        "datiDecesso" => subject.deceased = true,
        _ => {}
    }
}

fn is_bom(text: &[u8]) -> bool {
    text.iter().all(|byte| byte.is_ascii_whitespace() || b"\xEF\xBB\xBF".contains(byte))
}

#[cfg(test)]
mod tests;
