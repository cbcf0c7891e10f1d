//! Streaming reader of the pagoPA GPD bulk upload: `{"paymentPositions": [...]}`, plain JSON or
//! the single JSON entry of a zip archive, turned into one `PaymentNotice` per payment option.
//!
//! A file of 100k positions (~200 MB) is never loaded whole: the `paymentPositions` array is
//! streamed one position at a time, and each notice goes to the caller's callback as soon as
//! its position is read. A zip is recognised by its first bytes, not by its name; its entry is
//! decompressed as a stream.
//!
//! Errors come at two levels:
//! - a payment option that cannot become a notice (bad notice number, amount that is not the
//!   sum of its transfers, bad creditor...) is a [`RecordError`] in [`GpdSummary::errors`], and
//!   reading goes on; so is a position without debtor or options;
//! - a file that is not a GPD upload, a damaged zip, or JSON that is malformed or truncated
//!   ends the read with a [`GpdFailure`]. The notices already handed to the callback stay
//!   valid (each came from a complete position), and the failure carries the summary of
//!   everything read before the error, so no record error or warning is lost either. The
//!   error says where: how many positions were complete and the byte offset in the JSON
//!   (in the zip's entry, uncompressed, for a zip), plus serde_json's line and column.
//!
//! Mapping of a payment option: notice number = `nav`, else `"3"` + `iuv`; creditor = the
//! `organizationFiscalCode` of the first transfer (TEFA and other beneficiaries follow it);
//! amount = `amount` in cents, which must equal the sum of the transfers; due date = the local
//! day of `dueDate`; installment `n` of `total` among the position's options with
//! `isPartialPayment: true`, in file order; year from the `annoRiferimento` metadata.

mod position;

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::payment::{PaymentNotice, RecordError};

/// How notice numbers are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoticeCheck {
    /// An option whose notice number is not valid (check digits included) is a record error.
    #[default]
    Enforce,
    /// For sources whose notice numbers are known to carry wrong check digits: an option whose
    /// notice number fails only its check digits still gives its notice, and the problem goes
    /// to [`GpdSummary::warnings`]. Any other fault (length, non-digits, aux digit) is an error.
    WarnOnly,
}

/// What a read produced besides the notices handed to the callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpdSummary {
    /// Complete payment positions read.
    pub positions: u64,
    /// Notices handed to the callback.
    pub records: u64,
    /// Options (or whole positions) that gave no notice. `location` is the 1-based position.
    pub errors: Vec<RecordError>,
    /// Problems with options that still gave their notice.
    pub warnings: Vec<RecordError>,
}

/// Why a file could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum GpdError {
    #[error("the file is empty, but a GPD upload is a JSON object {{\"paymentPositions\": [...]}}, plain or zipped")]
    Empty,
    #[error(
        "not a GPD upload: it starts with \"{start}\", but a GPD upload is a JSON object {{\"paymentPositions\": [...]}}, plain or zipped"
    )]
    NotGpd { start: String },
    #[error("the JSON object has no \"paymentPositions\" array, so it is not a GPD upload")]
    NoPaymentPositions,
    #[error("cannot read the zip archive (truncated or damaged?): {source}")]
    Zip { source: zip::result::ZipError },
    #[error("the zip archive holds {found} entries, but a GPD upload zip holds exactly one JSON file")]
    ZipEntries { found: usize },
    #[error("cannot open the JSON file inside the zip archive: {source}")]
    ZipEntry { source: zip::result::ZipError },
    #[error(
        "malformed or truncated JSON at byte {offset}, after {positions_read} complete payment positions: {source}"
    )]
    Json { positions_read: u64, offset: u64, source: serde_json::Error },
    #[error("cannot read the file at byte {offset}, after {positions_read} complete payment positions: {source}")]
    Read { positions_read: u64, offset: u64, source: io::Error },
}

/// A read that ended early, with everything read before the error.
#[derive(Debug, thiserror::Error)]
#[error("{source} ({} notices already read)", .summary.records)]
pub struct GpdFailure {
    pub source: GpdError,
    /// Positions, notices, record errors and warnings read before `source` ended the read.
    pub summary: GpdSummary,
}

/// Reads a GPD bulk upload, plain JSON or zipped, calling `each` with every notice in file order.
///
/// `input` must be seekable because a zip's directory is at its end; plain JSON is read
/// straight through. See the module documentation for what is an error and what is kept.
pub fn read<R: Read + Seek>(
    mut input: R,
    check: NoticeCheck,
    each: impl FnMut(PaymentNotice),
) -> Result<GpdSummary, GpdFailure> {
    let mut reader = Reader { check, each, summary: GpdSummary::default() };
    let outcome = match is_zip(&mut input) {
        Ok(true) => reader.zip(input),
        Ok(false) => reader.stream(input),
        Err(source) => Err(GpdError::Read { positions_read: 0, offset: 0, source }),
    };
    match outcome {
        Ok(()) => Ok(reader.summary),
        Err(source) => Err(GpdFailure { source, summary: reader.summary }),
    }
}

/// A zip's local file header; an archive without entries starts with its end record.
const ZIP_MAGIC: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether `input` starts with a zip signature; leaves `input` where it was.
fn is_zip<R: Read + Seek>(input: &mut R) -> io::Result<bool> {
    let start = input.stream_position()?;
    let mut magic = Vec::with_capacity(4);
    input.by_ref().take(4).read_to_end(&mut magic)?;
    input.seek(SeekFrom::Start(start))?;
    Ok(ZIP_MAGIC.contains(&magic.as_slice()))
}

struct Reader<F> {
    check: NoticeCheck,
    each: F,
    summary: GpdSummary,
}

impl<F: FnMut(PaymentNotice)> Reader<F> {
    fn zip<R: Read + Seek>(&mut self, input: R) -> Result<(), GpdError> {
        let mut archive = zip::ZipArchive::new(input).map_err(|source| GpdError::Zip { source })?;
        if archive.len() != 1 {
            return Err(GpdError::ZipEntries { found: archive.len() });
        }
        let entry = archive.by_index(0).map_err(|source| GpdError::ZipEntry { source })?;
        self.stream(entry)
    }

    /// Streams the JSON in `source` to the end, handing each position to `self.position`.
    fn stream<S: Read>(&mut self, source: S) -> Result<(), GpdError> {
        let mut input = BufReader::new(Counted { inner: source, bytes: 0 });
        open_object(&mut input)?;
        let mut json = serde_json::Deserializer::from_reader(&mut input);
        let found = Upload { reader: &mut *self }.deserialize(&mut json).and_then(|found| {
            json.end()?;
            Ok(found)
        });
        drop(json);
        match found {
            Ok(true) => Ok(()),
            Ok(false) => Err(GpdError::NoPaymentPositions),
            Err(source) => Err(self.json_error(source, consumed(&input))),
        }
    }

    fn position(&mut self, position: &Value) {
        self.summary.positions += 1;
        for outcome in position::notices(self.summary.positions, position, self.check) {
            match outcome {
                Ok(accepted) => {
                    self.summary.records += 1;
                    self.summary.warnings.extend(accepted.warnings);
                    (self.each)(accepted.notice);
                }
                Err(error) => self.summary.errors.push(error),
            }
        }
    }

    fn json_error(&self, source: serde_json::Error, offset: u64) -> GpdError {
        let positions_read = self.summary.positions;
        if source.is_io() {
            GpdError::Read { positions_read, offset, source: source.into() }
        } else {
            GpdError::Json { positions_read, offset, source }
        }
    }
}

/// Skips a UTF-8 byte order mark and whitespace; what follows must open a JSON object.
fn open_object<S: Read>(input: &mut BufReader<Counted<S>>) -> Result<(), GpdError> {
    let read_error =
        |source, input: &BufReader<Counted<S>>| GpdError::Read { positions_read: 0, offset: consumed(input), source };
    match input.fill_buf() {
        Ok(buffer) if buffer.starts_with(UTF8_BOM) => input.consume(UTF8_BOM.len()),
        Ok(_) => {}
        Err(source) => return Err(read_error(source, input)),
    }
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(source) => return Err(read_error(source, input)),
        };
        let blanks = buffer.iter().take_while(|byte| byte.is_ascii_whitespace()).count();
        match buffer.get(blanks) {
            Some(b'{') => {
                input.consume(blanks);
                return Ok(());
            }
            Some(_) => {
                let start = &buffer[blanks..buffer.len().min(blanks + 16)];
                return Err(GpdError::NotGpd { start: start.escape_ascii().to_string() });
            }
            None if buffer.is_empty() => return Err(GpdError::Empty),
            None => input.consume(blanks),
        }
    }
}

/// Bytes of the JSON consumed so far: read from the source minus what waits in the buffer.
/// serde_json peeks one byte ahead, so an error's offset may be one past the culprit.
fn consumed<S>(input: &BufReader<Counted<S>>) -> u64 {
    input.get_ref().bytes.saturating_sub(input.buffer().len() as u64)
}

/// Counts the bytes read through it, for error offsets.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes += read as u64;
        Ok(read)
    }
}

/// The top-level object: finds `paymentPositions` and skips every other key.
/// Its value says whether `paymentPositions` was there.
struct Upload<'r, F> {
    reader: &'r mut Reader<F>,
}

impl<'de, F: FnMut(PaymentNotice)> DeserializeSeed<'de> for Upload<'_, F> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(PaymentNotice)> Visitor<'de> for Upload<'_, F> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a GPD upload object {\"paymentPositions\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "paymentPositions" {
                map.next_value::<IgnoredAny>()?;
            } else if found {
                return Err(de::Error::duplicate_field("paymentPositions"));
            } else {
                map.next_value_seed(Positions { reader: &mut *self.reader })?;
                found = true;
            }
        }
        Ok(found)
    }
}

/// The `paymentPositions` array: each element is parsed alone and handed on, never collected.
struct Positions<'r, F> {
    reader: &'r mut Reader<F>,
}

impl<'de, F: FnMut(PaymentNotice)> DeserializeSeed<'de> for Positions<'_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(PaymentNotice)> Visitor<'de> for Positions<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of payment positions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut positions: A) -> Result<(), A::Error> {
        while let Some(position) = positions.next_element::<Value>()? {
            self.reader.position(&position);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
