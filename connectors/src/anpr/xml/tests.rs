//! Tests of cutting the stream into answers and of reading a large extract with bounded memory.

use std::io::{self, Read};

use super::answers::{Answers, CutError, MAX_ANSWER_BYTES};
use super::*;
use crate::anpr::read_xml;

/// The bytes of `answers` pieces, handed out `step` bytes at a time.
fn cut(bytes: &[u8], step: usize) -> Result<Vec<(u64, Vec<u8>)>, CutError> {
    let mut answers = Answers::new(Trickle { bytes, step });
    let mut found = Vec::new();
    while answers.advance()? {
        let answer = answers.current();
        found.push((answer.offset, answer.bytes.to_vec()));
    }
    Ok(found)
}

/// Hands out at most `step` bytes per read, to cut declarations across reads.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.bytes.len().min(buffer.len()).min(self.step);
        buffer[..count].copy_from_slice(&self.bytes[..count]);
        self.bytes = &self.bytes[count..];
        Ok(count)
    }
}

#[test]
fn answers_are_cut_on_declarations_wherever_they_are() {
    let text = b"\xEF\xBB\xBF \n<?xml version=\"1.0\"?><a/>\r\n<?xml version='1.0'?>\n<b/><?xml\tversion=\"1.0\"?><c><?xml-stylesheet x?></c>\n\n";
    for step in [1, 2, 5, 7, 1000] {
        let found = cut(text, step).unwrap();
        let expected: Vec<(u64, Vec<u8>)> = vec![
            (5, b"<?xml version=\"1.0\"?><a/>\r\n".to_vec()),
            (32, b"<?xml version='1.0'?>\n<b/>".to_vec()),
            (58, b"<?xml\tversion=\"1.0\"?><c><?xml-stylesheet x?></c>\n\n".to_vec()),
        ];
        assert_eq!(found, expected, "step {step}");
    }
}

#[test]
fn a_declaration_at_the_very_end_starts_an_answer() {
    let found = cut(b"<?xml version=\"1.0\"?><a/>\n<?xml", 3).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[1], (26, b"<?xml".to_vec()));
}

#[test]
fn what_is_not_markup_is_refused_before_any_answer() {
    assert!(matches!(cut(b"", 10), Err(CutError::Empty)));
    assert!(matches!(cut(b"\xEF\xBB\xBF \r\n", 1), Err(CutError::Empty)));
    assert!(matches!(cut(b"  PK\x03\x04", 10), Err(CutError::NotXml { start }) if start == "PK\\x03\\x04"));
}

#[test]
fn declared_encodings_are_found_in_either_quotes() {
    let check = |text: &[u8], expected: Option<&[u8]>| assert_eq!(declared_encoding(text), expected);
    check(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\" standalone=\"yes\"?><a/>", Some(b"ISO-8859-1"));
    check(b"<?xml version='1.0' encoding = 'utf-8'?>", Some(b"utf-8"));
    check(b"<?xml version=\"1.0\"?><a encoding=\"x\"/>", None);
    check(b"<?xml version=\"1.0\" encoding=\"UTF-8", None);
    check(b"<a/>", None);
}

/// An extract of `count` copies of one answer, each with its own `idSchedaSoggettoANPR`,
/// generated as it is read: the whole never exists in memory.
struct Generated {
    template_head: Vec<u8>,
    template_tail: Vec<u8>,
    count: u64,
    made: u64,
    current: Vec<u8>,
    position: usize,
}

impl Generated {
    fn new(count: u64) -> Generated {
        let sample =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/anpr/001234_Elenchi_sample.xml"))
                .unwrap();
        let end = b"</ns2:Risposta3002_OK>\n";
        let first = &sample[..sample.windows(end.len()).position(|w| w == end).unwrap() + end.len()];
        let id = b"<idSchedaSoggettoANPR>23823308</idSchedaSoggettoANPR>";
        let at = first.windows(id.len()).position(|w| w == id).unwrap();
        Generated {
            template_head: first[..at + "<idSchedaSoggettoANPR>".len()].to_vec(),
            template_tail: first[at + id.len() - "</idSchedaSoggettoANPR>".len()..].to_vec(),
            count,
            made: 0,
            current: Vec::new(),
            position: 0,
        }
    }

    fn answer_len(&self) -> usize {
        self.template_head.len() + self.template_tail.len() + 8
    }
}

impl Read for Generated {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.position == self.current.len() {
            if self.made == self.count {
                return Ok(0);
            }
            self.made += 1;
            self.current.clear();
            self.current.extend_from_slice(&self.template_head);
            self.current.extend_from_slice(format!("{:08}", self.made).as_bytes());
            self.current.extend_from_slice(&self.template_tail);
            self.position = 0;
        }
        let count = (self.current.len() - self.position).min(buffer.len());
        buffer[..count].copy_from_slice(&self.current[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

const FIFTY_MB: u64 = 50 * 1024 * 1024;

#[test]
fn cutting_fifty_megabytes_holds_one_chunk_and_one_answer() {
    let per_answer = Generated::new(0).answer_len() as u64;
    let count = FIFTY_MB / per_answer + 1;
    let mut answers = Answers::new(Generated::new(count));
    let (mut found, mut largest) = (0, 0);
    while answers.advance().unwrap() {
        let answer = answers.current();
        assert_eq!(answer.offset, found * per_answer);
        assert_eq!(answer.bytes.len() as u64, per_answer);
        found += 1;
        largest = largest.max(answers.buffer_capacity());
    }
    assert_eq!(found, count);
    assert!(largest <= 256 * 1024, "the buffer grew to {largest} bytes");
}

#[test]
fn reading_fifty_megabytes_hands_over_every_subject() {
    let per_answer = Generated::new(0).answer_len() as u64;
    let count = FIFTY_MB / per_answer + 1;
    let mut residents = 0u64;
    let summary = read_xml(Generated::new(count), |entry| match entry {
        Entry::Resident(resident) => {
            residents += 1;
            assert_eq!(resident.location, residents);
            assert_eq!(resident.anpr_record_id, Some(format!("{residents:08}")));
        }
        other => panic!("{other:?}"),
    })
    .unwrap();
    assert_eq!((summary.answers, summary.residents, residents), (count, count, count));
}

/// An answer that never ends: `<ns2:Risposta3002_OK ...>` and then `<x/>` forever.
struct Endless {
    head: &'static [u8],
}

impl Read for Endless {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let source: &[u8] = if self.head.is_empty() { b"<x/>" } else { self.head };
        let count = source.len().min(buffer.len());
        buffer[..count].copy_from_slice(&source[..count]);
        if !self.head.is_empty() {
            self.head = &self.head[count..];
        }
        Ok(count)
    }
}

#[test]
fn an_answer_that_never_ends_is_refused_at_the_limit() {
    let head = b"<?xml version=\"1.0\"?><ns2:Risposta3002_OK xmlns:ns2=\"http://sogei.it/ANPR/3000consultazione\">";
    let failure = read_xml(Endless { head }, |_| panic!("nothing to hand over")).unwrap_err();
    assert!(
        matches!(failure.error, AnprError::AnswerTooLarge { answer: 1, offset: 0, limit: MAX_ANSWER_BYTES }),
        "{:?}",
        failure.error
    );
}
