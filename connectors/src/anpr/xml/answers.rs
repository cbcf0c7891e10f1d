//! The byte stream of an extract, un-gzipped when it really is gzip, cut into answers: each
//! answer runs from one XML declaration to the next (or to the end of the file).
//!
//! Only the current answer and one read-ahead chunk are held, so memory stays flat
//! whatever the file's size; an answer longer than [`MAX_ANSWER_BYTES`] is refused.

use std::io::{self, Cursor, Read};

use flate2::read::MultiGzDecoder;

/// Size of each read from the source.
const CHUNK_BYTES: u64 = 64 * 1024;
/// The longest answer accepted. Real answers carry one subject (a few KiB); the XSD allows
/// more, so this is generous, yet bounds memory on a file with no declarations.
pub(super) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const DECLARATION: &[u8] = b"<?xml";

/// The file's bytes: passed through, or decompressed when they start with the gzip magic.
pub(super) struct Input<R> {
    kind: InputKind<R>,
}

enum InputKind<R> {
    Plain(Source<R>),
    /// Boxed: the decoder's state is ten times the size of the plain reader.
    Gzip(Box<MultiGzDecoder<Source<R>>>),
}

impl<R: Read> Input<R> {
    /// Peeks at the first two bytes to tell gzip from plain.
    pub fn open(mut inner: R) -> io::Result<Input<R>> {
        let mut magic = Vec::with_capacity(GZIP_MAGIC.len());
        inner.by_ref().take(GZIP_MAGIC.len() as u64).read_to_end(&mut magic)?;
        let is_gzip = magic == GZIP_MAGIC;
        let source = Source { peeked: Cursor::new(magic), inner, failed: false };
        let kind =
            if is_gzip { InputKind::Gzip(Box::new(MultiGzDecoder::new(source))) } else { InputKind::Plain(source) };
        Ok(Input { kind })
    }

    /// Whether a read error came from decompression rather than from the source.
    pub fn is_gzip_fault(&self) -> bool {
        match &self.kind {
            InputKind::Plain(_) => false,
            InputKind::Gzip(decoder) => !decoder.get_ref().failed,
        }
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            InputKind::Plain(source) => source.read(buffer),
            InputKind::Gzip(decoder) => decoder.read(buffer),
        }
    }
}

/// The source with the bytes peeked at put back in front; remembers whether the source
/// itself failed, to tell its errors from gzip's.
struct Source<R> {
    peeked: Cursor<Vec<u8>>,
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let peeked = self.peeked.read(buffer)?;
        if peeked > 0 {
            return Ok(peeked);
        }
        let read = self.inner.read(buffer);
        if read.as_ref().is_err_and(|error| error.kind() != io::ErrorKind::Interrupted) {
            self.failed = true;
        }
        read
    }
}

/// One answer's bytes and where it starts in the (decompressed) file.
pub(super) struct RawAnswer<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// Why the stream could not be cut into answers.
#[derive(Debug)]
pub(super) enum CutError {
    Empty,
    /// The first bytes that are not blank, escaped.
    NotXml {
        start: String,
    },
    TooLarge {
        offset: u64,
    },
    Read {
        offset: u64,
        source: io::Error,
    },
}

/// Cuts a byte stream into answers.
pub(super) struct Answers<R> {
    input: R,
    /// From `start`: the current answer, then bytes read ahead. Bytes before `start` are
    /// dropped at the next fill, so that each fill moves memory once.
    buffer: Vec<u8>,
    start: usize,
    /// Length of the current answer, from `start`.
    current_len: usize,
    /// File offset of `buffer[start]`.
    offset: u64,
    at_end: bool,
    started: bool,
    /// A read error held back until the bytes read before it are handed out.
    failure: Option<CutError>,
}

impl<R: Read> Answers<R> {
    pub fn new(input: R) -> Answers<R> {
        Answers {
            input,
            buffer: Vec::new(),
            start: 0,
            current_len: 0,
            offset: 0,
            at_end: false,
            started: false,
            failure: None,
        }
    }

    pub fn input(&self) -> &R {
        &self.input
    }

    /// Bytes the buffer can hold without growing: what reading costs in memory.
    #[cfg(test)]
    pub fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Moves to the next answer; `false` at the end of the file.
    pub fn advance(&mut self) -> Result<bool, CutError> {
        self.skip(self.current_len);
        self.current_len = 0;
        if !self.started {
            self.skip_preamble()?;
            self.started = true;
        }
        // An answer's own declaration is at 0, so the next one is searched for from 1.
        let mut scan_from = 1;
        let end = loop {
            let pending = &self.buffer[self.start..];
            if let Some(at) = find_declaration(pending, scan_from, self.at_end) {
                break at;
            }
            if self.at_end {
                break pending.len();
            }
            if pending.len() > MAX_ANSWER_BYTES {
                return Err(CutError::TooLarge { offset: self.offset });
            }
            // A declaration cut by the end of the buffer is found again after the fill.
            scan_from = pending.len().saturating_sub(DECLARATION.len()).max(1);
            self.fill()?;
        };
        if self.buffer[self.start..self.start + end].iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        self.current_len = end;
        Ok(true)
    }

    /// The answer [`Answers::advance`] moved to.
    pub fn current(&self) -> RawAnswer<'_> {
        RawAnswer { offset: self.offset, bytes: &self.buffer[self.start..self.start + self.current_len] }
    }

    /// Skips a UTF-8 byte-order mark and leading blanks; what follows must be markup.
    fn skip_preamble(&mut self) -> Result<(), CutError> {
        loop {
            let pending = &self.buffer[self.start..];
            let blanks = pending.iter().take_while(|byte| byte.is_ascii_whitespace()).count();
            if blanks > 0 {
                self.skip(blanks);
                continue;
            }
            if pending.len() < UTF8_BOM.len() && !self.at_end {
                self.fill()?;
                continue;
            }
            if pending.starts_with(UTF8_BOM) {
                self.skip(UTF8_BOM.len());
                continue;
            }
            match pending.first() {
                Some(b'<') => return Ok(()),
                Some(_) => {
                    let start = &pending[..pending.len().min(40)];
                    return Err(CutError::NotXml { start: start.escape_ascii().to_string() });
                }
                None if self.at_end => return Err(CutError::Empty),
                None => self.fill()?,
            }
        }
    }

    fn skip(&mut self, count: usize) {
        self.start += count;
        self.offset += count as u64;
    }

    /// Drops the bytes already handed out and reads one more chunk; sets `at_end` when the
    /// source is exhausted. A read that fails after some bytes came in is reported at the
    /// next fill, so that the answers completed by those bytes are handed out first.
    fn fill(&mut self) -> Result<(), CutError> {
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        self.buffer.drain(..self.start);
        self.start = 0;
        let before = self.buffer.len();
        match self.input.by_ref().take(CHUNK_BYTES).read_to_end(&mut self.buffer) {
            Ok(read) => {
                self.at_end = (read as u64) < CHUNK_BYTES;
                Ok(())
            }
            Err(source) => {
                let error = CutError::Read { offset: self.offset + self.buffer.len() as u64, source };
                if self.buffer.len() == before {
                    return Err(error);
                }
                self.failure = Some(error);
                Ok(())
            }
        }
    }
}

/// The start of the first `<?xml` declaration at or after `from`. One at the very end of
/// the file counts even with nothing after it; elsewhere a blank must follow, so that
/// `<?xml-stylesheet` is not taken for one, and a declaration cut by the end of the buffer
/// is not found until the next fill completes it.
fn find_declaration(buffer: &[u8], from: usize, at_end: bool) -> Option<usize> {
    let mut at = from;
    while let Some(found) = buffer.get(at..)?.iter().position(|&byte| byte == b'<') {
        let start = at + found;
        let rest = &buffer[start..];
        if rest.starts_with(DECLARATION) {
            match rest.get(DECLARATION.len()) {
                Some(byte) if byte.is_ascii_whitespace() => return Some(start),
                None if at_end => return Some(start),
                _ => {}
            }
        }
        at = start + 1;
    }
    None
}
