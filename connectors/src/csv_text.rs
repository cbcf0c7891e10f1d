//! Opening a CSV export whatever its encoding and separator: the shared front end of
//! every CSV reader in this crate.
//!
//! Municipal exports come as UTF-8 with or without a BOM, or Windows-1252; separated by
//! `;`, `,`, tab or `|`; with CRLF or LF line ends and `"` quoting. [`CsvInput::open`]
//! decides the encoding as FACTS §5 says (BOM → strict UTF-8 → Windows-1252) and the
//! separator from the header line, then reads records as a stream: a 200 MB file is never
//! held whole. The encoding is decided on at most 64 KiB starting at the first non-ASCII
//! byte, so a file whose first accented letter comes late is still judged on evidence.
//!
//! A line that is not valid text in the decided encoding (possible only for UTF-8) is a
//! per-line [`RecordError`]; only a failure to read the source stops the file.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};

use csv::{ByteRecord, StringRecord};
use encoding_rs::{Decoder, WINDOWS_1252};

use crate::payment::RecordError;

/// How many bytes the encoding is decided on, and the size of each raw read.
const WINDOW_BYTES: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Candidate separators, in the order that breaks ties.
const SEPARATORS: [u8; 4] = [b';', b',', b'\t', b'|'];

/// The text encoding of a file, as decided so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// Only ASCII bytes seen so far: valid in every candidate encoding. Becomes one of
    /// the others at the first non-ASCII byte.
    Ascii,
    Utf8,
    /// UTF-8 after a byte-order mark, which is stripped.
    Utf8WithBom,
    Windows1252,
}

impl TextEncoding {
    /// A name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Ascii => "ASCII",
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf8WithBom => "UTF-8 with BOM",
            TextEncoding::Windows1252 => "Windows-1252",
        }
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a CSV file could not be opened or read on. Bad lines are not errors of this kind.
#[derive(Debug, thiserror::Error)]
pub enum CsvReadError {
    #[error("reading the file failed: {source}")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("reading the file failed near line {line}: {source}")]
    ReadAt {
        line: u64,
        #[source]
        source: io::Error,
    },
    #[error("the file starts with a UTF-16 byte-order mark; export it as UTF-8 or Windows-1252 CSV")]
    Utf16,
    #[error("the file has no header line")]
    NoHeader,
    #[error("the header line is not valid {encoding} text")]
    HeaderText { encoding: TextEncoding },
}

/// A CSV export opened for reading: encoding and separator decided, header read.
#[derive(Debug)]
pub struct CsvInput<R> {
    reader: csv::Reader<DecodedText<R>>,
    header: StringRecord,
    separator: u8,
}

/// What [`CsvInput::read_row`] found next.
#[derive(Debug, Clone, PartialEq)]
pub enum NextRow {
    /// A record that starts on 1-based `line` (a quoted field may span more lines).
    Record {
        line: u64,
        record: StringRecord,
    },
    /// A line that is not valid text in the file's encoding; reading goes on after it.
    Rejected(RecordError),
    End,
}

impl<R: Read> CsvInput<R> {
    /// Decides encoding and separator and reads the header line. Records are read
    /// leniently: a row may have fewer or more fields than the header.
    pub fn open(source: R) -> Result<CsvInput<R>, CsvReadError> {
        let text = DecodedText::open(source)?;
        let separator = sniff_separator(text.head());
        let mut reader = csv::ReaderBuilder::new().delimiter(separator).flexible(true).from_reader(text);
        let header = match reader.headers() {
            Ok(header) => header.clone(),
            Err(error) => return Err(header_error(error, reader.get_ref().encoding())),
        };
        if header.iter().all(|name| name.trim().is_empty()) {
            return Err(CsvReadError::NoHeader);
        }
        Ok(CsvInput { reader, header, separator })
    }

    /// The encoding decided so far (see [`TextEncoding::Ascii`]).
    pub fn encoding(&self) -> TextEncoding {
        self.reader.get_ref().encoding()
    }

    /// The field separator: one of `;`, `,`, tab, `|`.
    pub fn separator(&self) -> u8 {
        self.separator
    }

    /// The header record, as written (not trimmed).
    pub fn header(&self) -> &StringRecord {
        &self.header
    }

    /// Reads the next record. Blank lines are skipped; an `Err` means the source failed
    /// and nothing more can be read.
    pub fn read_row(&mut self) -> Result<NextRow, CsvReadError> {
        let mut bytes = ByteRecord::new();
        match self.reader.read_byte_record(&mut bytes) {
            Ok(true) => {}
            Ok(false) => return Ok(NextRow::End),
            Err(error) => {
                let line = self.reader.get_ref().lines.line;
                return Err(read_error(error, line));
            }
        }
        let start = bytes.position().map_or(0, csv::Position::byte);
        let line = self.reader.get_mut().lines.line_from(start);
        match StringRecord::from_byte_record(bytes) {
            Ok(record) => Ok(NextRow::Record { line, record }),
            Err(error) => {
                let index = error.utf8_error().field();
                let field = self.header.get(index).map_or_else(|| format!("column {}", index + 1), str::to_owned);
                let reason = "not valid UTF-8 text".to_owned();
                Ok(NextRow::Rejected(RecordError { location: line, field, reason }))
            }
        }
    }
}

fn header_error(error: csv::Error, encoding: TextEncoding) -> CsvReadError {
    match error.into_kind() {
        csv::ErrorKind::Io(source) => CsvReadError::Read { source },
        _ => CsvReadError::HeaderText { encoding },
    }
}

/// A byte record fails only on I/O (`flexible` allows any field count, no UTF-8 check).
fn read_error(error: csv::Error, line: u64) -> CsvReadError {
    let source = match error.into_kind() {
        csv::ErrorKind::Io(source) => source,
        other => io::Error::other(format!("{other:?}")),
    };
    CsvReadError::ReadAt { line, source }
}

/// The separator among [`SEPARATORS`] most frequent outside quotes in the first non-blank
/// line of `head`; `,` when none occurs.
fn sniff_separator(head: &[u8]) -> u8 {
    let mut counts = [0usize; SEPARATORS.len()];
    let mut quoted = false;
    let first_line = head.iter().position(|b| !matches!(b, b'\r' | b'\n')).map_or(&[][..], |at| &head[at..]);
    for &byte in first_line {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(slot) = SEPARATORS.iter().position(|&s| s == byte) {
                    counts[slot] += 1;
                }
            }
            _ => {}
        }
    }
    let best = (0..SEPARATORS.len()).rev().max_by_key(|&slot| counts[slot]).unwrap_or(1);
    if counts[best] == 0 {
        b','
    } else {
        SEPARATORS[best]
    }
}

/// A byte stream read as UTF-8 text: passed through when the source is UTF-8 (BOM
/// stripped), decoded when it is Windows-1252.
struct DecodedText<R> {
    source: R,
    /// Raw bytes read and not yet handed on, from `start`.
    raw: Vec<u8>,
    start: usize,
    source_done: bool,
    encoding: TextEncoding,
    /// Present once the encoding is Windows-1252.
    decoder: Option<Decoder>,
    /// Decoded text not yet handed on, from `decoded_start`.
    decoded: Vec<u8>,
    decoded_start: usize,
    lines: LineTracker,
}

impl<R: Read> DecodedText<R> {
    /// Reads the first 64 KiB (the separator is sniffed there) and strips a UTF-8 BOM.
    /// Without one, the encoding is decided at the first non-ASCII byte.
    fn open(source: R) -> Result<DecodedText<R>, CsvReadError> {
        let mut text = DecodedText {
            source,
            raw: Vec::with_capacity(WINDOW_BYTES),
            start: 0,
            source_done: false,
            encoding: TextEncoding::Ascii,
            decoder: None,
            decoded: Vec::new(),
            decoded_start: 0,
            lines: LineTracker::new(),
        };
        text.fill().map_err(|source| CsvReadError::Read { source })?;
        if text.raw.starts_with(b"\xFF\xFE") || text.raw.starts_with(b"\xFE\xFF") {
            return Err(CsvReadError::Utf16);
        }
        if text.raw.starts_with(UTF8_BOM) {
            text.start = UTF8_BOM.len();
            text.encoding = TextEncoding::Utf8WithBom;
        }
        Ok(text)
    }

    fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// The raw bytes read ahead and not yet handed on; right after `open`, the start of
    /// the file without its BOM.
    fn head(&self) -> &[u8] {
        &self.raw[self.start..]
    }

    /// Tops `raw` up to [`WINDOW_BYTES`] or the end of the source.
    fn fill(&mut self) -> io::Result<()> {
        self.raw.drain(..self.start);
        self.start = 0;
        let wanted = WINDOW_BYTES.saturating_sub(self.raw.len());
        let got = self.source.by_ref().take(wanted as u64).read_to_end(&mut self.raw)?;
        if got < wanted {
            self.source_done = true;
        }
        Ok(())
    }

    /// Called with `raw` topped up from the first non-ASCII byte: strict UTF-8 if the
    /// window is valid UTF-8 (a sequence cut by its end allowed), else Windows-1252.
    fn decide(&mut self) {
        let utf8 = match std::str::from_utf8(&self.raw[self.start..]) {
            Ok(_) => true,
            Err(error) => error.error_len().is_none() && !self.source_done,
        };
        if utf8 {
            self.encoding = TextEncoding::Utf8;
        } else {
            self.encoding = TextEncoding::Windows1252;
            self.decoder = Some(WINDOWS_1252.new_decoder_without_bom_handling());
        }
    }

    /// Decodes all pending raw bytes into `decoded`.
    fn decode_pending(&mut self, decoder: &mut Decoder) {
        let input = &self.raw[self.start..];
        let room = decoder.max_utf8_buffer_length(input.len()).unwrap_or(input.len().saturating_mul(3));
        self.decoded.clear();
        self.decoded.resize(room, 0);
        self.decoded_start = 0;
        let last = self.source_done;
        let (_, read, written, _) = decoder.decode_to_utf8(input, &mut self.decoded, last);
        self.decoded.truncate(written);
        self.start += read;
    }

    /// Hands on text: passed through, or decoded first once the encoding is Windows-1252.
    fn read_text(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.decoded_start < self.decoded.len() {
                return Ok(hand_on(&self.decoded, &mut self.decoded_start, out));
            }
            if self.start == self.raw.len() {
                if self.source_done {
                    return Ok(0);
                }
                self.fill()?;
                continue;
            }
            if let Some(mut decoder) = self.decoder.take() {
                self.decode_pending(&mut decoder);
                self.decoder = Some(decoder);
                continue;
            }
            if self.encoding != TextEncoding::Ascii {
                return Ok(hand_on(&self.raw, &mut self.start, out));
            }
            let pending = &self.raw[self.start..];
            match pending.iter().position(|b| !b.is_ascii()) {
                Some(0) => {
                    self.fill()?;
                    self.decide();
                }
                ascii => {
                    let end = self.start + ascii.unwrap_or(pending.len());
                    return Ok(hand_on(&self.raw[..end], &mut self.start, out));
                }
            }
        }
    }
}

impl<R: Read> Read for DecodedText<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let count = self.read_text(out)?;
        self.lines.track(&out[..count]);
        Ok(count)
    }
}

/// Line numbers of the text handed on, for the CSV reader's byte offsets.
///
/// The `csv` crate's own record positions are those of the end of the previous record,
/// before any blank lines and, with CRLF, before the `\n`, so its line numbers run short.
/// A record starts at the first byte that is not `\r` or `\n` after that offset, so this
/// keeps the offset and line of each such byte until the reader has moved past it.
#[derive(Debug)]
struct LineTracker {
    /// Bytes handed on so far.
    offset: u64,
    /// The 1-based line of the next byte.
    line: u64,
    /// The previous byte ended a line (or there was none).
    at_line_start: bool,
    /// (offset, line) of the first byte of each line with content, not yet asked for.
    content_starts: VecDeque<(u64, u64)>,
}

impl LineTracker {
    fn new() -> LineTracker {
        LineTracker { offset: 0, line: 1, at_line_start: true, content_starts: VecDeque::new() }
    }

    fn track(&mut self, text: &[u8]) {
        for &byte in text {
            match byte {
                b'\n' => {
                    self.line += 1;
                    self.at_line_start = true;
                }
                b'\r' => self.at_line_start = true,
                _ if self.at_line_start => {
                    self.content_starts.push_back((self.offset, self.line));
                    self.at_line_start = false;
                }
                _ => {}
            }
            self.offset += 1;
        }
    }

    /// The line of the first content byte at or after `offset`; earlier ones are
    /// forgotten, so offsets must be asked for in increasing order.
    fn line_from(&mut self, offset: u64) -> u64 {
        while self.content_starts.front().is_some_and(|&(at, _)| at < offset) {
            self.content_starts.pop_front();
        }
        self.content_starts.front().map_or(self.line, |&(_, line)| line)
    }
}

/// Copies from `from[*start..]` into `out`, advancing `start`.
fn hand_on(from: &[u8], start: &mut usize, out: &mut [u8]) -> usize {
    let count = (from.len() - *start).min(out.len());
    out[..count].copy_from_slice(&from[*start..*start + count]);
    *start += count;
    count
}

impl<R> fmt::Debug for DecodedText<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedText").field("encoding", &self.encoding).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
