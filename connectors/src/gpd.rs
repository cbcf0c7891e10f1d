//! Streaming reader of the pagoPA GPD bulk upload: `{"paymentPositions": [...]}`, plain JSON or
//! the single JSON entry of a zip archive, turned into one `PaymentNotice` per payment option.
//!
//! A file of 100k positions (~200 MB) is never loaded whole: the `paymentPositions` array is
//! streamed one position at a time, and each notice goes to the caller's callback as soon as
//! its position is read. A zip is recognised by its first bytes, not by its name; its entry is
//! decompressed as a stream.
//!
//! Positions are parsed straight from a sliding window over the input (serde_json on a slice,
//! strings borrowed), much faster than through serde_json's reader. Anything this fast path
//! does not expect (other keys, a position that is not an object, malformed or truncated JSON,
//! a read error) hands the rest of the input to serde_json's streaming deserializer, from just
//! after the last complete position and at the same line and column: the outcome, errors
//! included, is the one serde_json alone would give.
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

mod json;
mod position;
mod replay;
mod window;

use std::io::{self, Read, Seek, SeekFrom};

use json::{Json, Shallow};
use window::{Resume, Window};

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
/// How deep a position may nest arrays and objects on the fast path (itself included): well
/// within what the serde path accepts inside the array (serde_json's limit is 128 levels from
/// the top, so 126 for a position), so the fast path never accepts what the serde path refuses.
const FAST_DEPTH: usize = 100;

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

    /// Streams the JSON in `source` to the end: the fast path as long as the upload looks as
    /// GPD writes it, then the serde path from the last checkpoint if anything else comes.
    fn stream<S: Read>(&mut self, source: S) -> Result<(), GpdError> {
        let mut window = Window::new(source);
        window.open_object()?;
        match self.fast(&mut window) {
            None => Ok(()),
            Some(from) => self.replay(window.resume(from), from),
        }
    }

    /// Reads `{"paymentPositions": [{...}, ...]}`, each position parsed straight from the
    /// window. Returns the checkpoint from which the serde path must go on if anything else
    /// comes: other keys, a position that is not an object or not valid JSON, a truncated
    /// file, a read error...
    fn fast<S: Read>(&mut self, window: &mut Window<S>) -> Option<Resume> {
        let opened =
            window.token(b"{") && window.token(br#""paymentPositions""#) && window.token(b":") && window.token(b"[");
        if !opened {
            return Some(Resume::Start);
        }
        window.checkpoint();
        let mut from = Resume::FirstPosition;
        if !window.token(b"]") {
            loop {
                if window.blank_then_peek() != Some(b'{') || !self.fast_position(window) {
                    return Some(from);
                }
                window.checkpoint();
                from = Resume::NextPosition;
                if window.token(b"]") {
                    break;
                }
                if !window.token(b",") {
                    return Some(from);
                }
            }
        }
        let closed = window.token(b"}") && window.at_end();
        (!closed).then_some(from)
    }

    /// Parses the position that starts at the window's next byte and hands it on; false, with
    /// nothing handed on, if it is not valid JSON, is truncated, or nests deeper than
    /// [`FAST_DEPTH`].
    fn fast_position<S: Read>(&mut self, window: &mut Window<S>) -> bool {
        loop {
            let parsed = {
                let mut values = serde_json::Deserializer::from_slice(window.rest()).into_iter();
                match values.next() {
                    Some(Ok(Shallow::<FAST_DEPTH>(position))) => {
                        self.position(&position);
                        Some(values.byte_offset())
                    }
                    Some(Err(error)) if error.is_eof() => None,
                    _ => return false,
                }
            };
            match parsed {
                Some(length) => {
                    window.advance(length);
                    return true;
                }
                None if window.fill() => {}
                None => return false,
            }
        }
    }

    fn position(&mut self, position: &Json<'_>) {
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
}

#[cfg(test)]
mod tests;
