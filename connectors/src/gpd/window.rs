//! The upload's bytes as they stream in, kept from the last checkpoint on.
//!
//! The fast path parses payment positions straight out of the window. A checkpoint is a place
//! where it stood on solid ground: at the opening `{`, inside the array before its first
//! position, or just after a position. The bytes before the checkpoint are dropped as the window
//! slides on, but serde_json's line and column at the checkpoint are kept, so that the serde
//! path can take over from there exactly as if it had read the file from its start: see
//! [`Window::resume`].

use std::io::{self, Read};

use super::GpdError;

/// The window's first size; it grows to hold a position larger than about half of it.
const WINDOW_SIZE: usize = 128 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the serde path takes over: the last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// At the opening `{`: nothing was read yet.
    Start,
    /// Inside `{"paymentPositions": [`, before the first position.
    FirstPosition,
    /// Just after a position (an object) of the array.
    NextPosition,
}

pub(super) struct Window<S> {
    source: S,
    buffer: Vec<u8>,
    /// The checkpoint: the bytes before it are no longer needed.
    mark: usize,
    /// The next byte to look at.
    next: usize,
    /// `buffer[..end]` holds the bytes read.
    end: usize,
    /// Offset in the source of `buffer[0]`.
    base: u64,
    /// No more bytes will come: the source ended, or `failure` says why not.
    ended: bool,
    failure: Option<io::Error>,
    /// serde_json's line and column at `buffer[counted]`, once counting has started.
    lines: Lines,
    counted: Option<usize>,
}

/// What the serde path reads instead of the source, and how to turn its offsets into the source's.
pub(super) struct Replay<R> {
    /// A prefix bringing serde_json to the checkpoint's state, line and column, then the bytes
    /// kept from the checkpoint on, then the rest of the source (or the read error it gave).
    pub source: R,
    /// Bytes of the prefix, not in the source.
    pub prefix: u64,
    /// Offset of the checkpoint in the source.
    pub offset: u64,
}

impl<S: Read> Window<S> {
    pub fn new(source: S) -> Self {
        Window {
            source,
            buffer: vec![0; WINDOW_SIZE],
            mark: 0,
            next: 0,
            end: 0,
            base: 0,
            ended: false,
            failure: None,
            lines: Lines { line: 1, column: 0 },
            counted: None,
        }
    }

    /// Skips a UTF-8 byte order mark and whitespace; what follows must open a JSON object. The
    /// window is then at the `{`, which is the checkpoint and serde_json's line 1, column 0.
    pub fn open_object(&mut self) -> Result<(), GpdError> {
        if self.peek().is_some() && self.rest().starts_with(UTF8_BOM) {
            self.advance(UTF8_BOM.len());
        }
        loop {
            let rest = self.rest();
            let blanks = rest.iter().take_while(|byte| byte.is_ascii_whitespace()).count();
            match rest.get(blanks) {
                Some(b'{') => {
                    self.advance(blanks);
                    self.mark = self.next;
                    self.counted = Some(self.next);
                    return Ok(());
                }
                Some(_) => {
                    let start = &rest[blanks..rest.len().min(blanks + 16)];
                    return Err(GpdError::NotGpd { start: start.escape_ascii().to_string() });
                }
                None => {
                    self.advance(blanks);
                    self.checkpoint();
                }
            }
            if !self.fill() {
                return Err(match self.failure.take() {
                    Some(source) => GpdError::Read { positions_read: 0, offset: self.offset(), source },
                    None => GpdError::Empty,
                });
            }
        }
    }

    /// The bytes read but not yet looked at.
    pub fn rest(&self) -> &[u8] {
        &self.buffer[self.next..self.end]
    }

    pub fn advance(&mut self, bytes: usize) {
        self.next = (self.next + bytes).min(self.end);
    }

    /// The next byte, reading more if needed; `None` at the end of the input or on a read error.
    pub fn peek(&mut self) -> Option<u8> {
        if self.next == self.end && !self.fill() {
            return None;
        }
        self.buffer.get(self.next).copied()
    }

    /// Skips JSON whitespace, then [`Window::peek`]s.
    pub fn blank_then_peek(&mut self) -> Option<u8> {
        loop {
            match self.peek() {
                Some(b' ' | b'\n' | b'\r' | b'\t') => self.next += 1,
                other => return other,
            }
        }
    }

    /// Skips JSON whitespace, then `token` if it comes next. On a mismatch, part of `token` may
    /// have been skipped: the caller goes back to the checkpoint anyway.
    pub fn token(&mut self, token: &[u8]) -> bool {
        self.blank_then_peek();
        for expected in token {
            if self.peek() != Some(*expected) {
                return false;
            }
            self.next += 1;
        }
        true
    }

    /// Skips JSON whitespace, then tells whether the input ended cleanly there.
    pub fn at_end(&mut self) -> bool {
        self.blank_then_peek().is_none() && self.failure.is_none()
    }

    /// Makes the next byte the checkpoint.
    pub fn checkpoint(&mut self) {
        self.mark = self.next;
    }

    /// Reads more bytes after those in the window; false if none came (end of input or read
    /// error). Reads until the window is full, so that a position is parsed again only after
    /// a large read.
    pub fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        self.slide();
        let start = self.end;
        while self.end < self.buffer.len() {
            match self.source.read(&mut self.buffer[self.end..]) {
                Ok(0) => self.ended = true,
                Ok(read) => self.end = (self.end + read).min(self.buffer.len()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.failure = Some(error);
                    self.ended = true;
                }
            }
            if self.ended {
                break;
            }
        }
        self.end > start
    }

    /// The source for the serde path to go on from the checkpoint `from`.
    pub fn resume(mut self, from: Resume) -> Replay<impl Read> {
        self.count_lines();
        let head: &'static [u8] = match from {
            Resume::Start => b"",
            Resume::FirstPosition => br#"{"paymentPositions":["#,
            Resume::NextPosition => br#"{"paymentPositions":[{}"#,
        };
        // The real bytes before the checkpoint hold at least `head`'s tokens, so on line 1
        // the column is never less than `head`'s length.
        let (newlines, spaces) = match (from, self.lines.line) {
            (Resume::Start, _) => (0, 0),
            (_, 1) => (0, self.lines.column.saturating_sub(head.len() as u64)),
            (_, line) => (line - 1, self.lines.column),
        };
        let prefix = head.chain(io::repeat(b'\n').take(newlines)).chain(io::repeat(b' ').take(spaces));
        let offset = self.base + self.mark as u64;
        self.buffer.truncate(self.end);
        self.buffer.drain(..self.mark);
        let tail = match (self.ended, self.failure) {
            (false, _) => Tail::Source(self.source),
            (true, failure) => Tail::Ended(failure),
        };
        let source = prefix.chain(io::Cursor::new(self.buffer)).chain(tail);
        Replay { source, prefix: head.len() as u64 + newlines + spaces, offset }
    }

    /// Offset in the source of the next byte.
    fn offset(&self) -> u64 {
        self.base + self.next as u64
    }

    /// Drops the bytes before the checkpoint and makes room for a read of at least half the window.
    fn slide(&mut self) {
        if self.mark > 0 {
            self.count_lines();
            self.buffer.copy_within(self.mark..self.end, 0);
            self.base += self.mark as u64;
            self.next -= self.mark;
            self.end -= self.mark;
            self.counted = self.counted.map(|counted| counted.saturating_sub(self.mark));
            self.mark = 0;
        }
        if self.end > self.buffer.len() / 2 {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
    }

    /// Brings `lines` to the checkpoint.
    fn count_lines(&mut self) {
        if let Some(counted) = self.counted {
            self.lines.add(self.buffer.get(counted..self.mark).unwrap_or_default());
            self.counted = Some(self.mark.max(counted));
        }
    }
}

/// serde_json's position: its line counts `\n`s from 1, its column counts the bytes since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lines {
    line: u64,
    column: u64,
}

impl Lines {
    fn add(&mut self, bytes: &[u8]) {
        let newlines = newlines(bytes);
        let last = if newlines > 0 { bytes.iter().rposition(|&byte| byte == b'\n') } else { None };
        match last {
            Some(last) => {
                self.line += newlines as u64;
                self.column = (bytes.len() - last - 1) as u64;
            }
            None => self.column += bytes.len() as u64,
        }
    }
}

/// How many `\n` are in `bytes`; counted 64 bytes at a time, which the compiler vectorizes.
fn newlines(bytes: &[u8]) -> usize {
    let mut blocks = bytes.chunks_exact(64);
    let mut newlines = 0;
    for block in &mut blocks {
        newlines += usize::from(block.iter().map(|&byte| u8::from(byte == b'\n')).sum::<u8>());
    }
    newlines + blocks.remainder().iter().filter(|&&byte| byte == b'\n').count()
}

/// What follows the kept bytes: the rest of the source, or its end, or the read error it gave.
enum Tail<S> {
    Source(S),
    Ended(Option<io::Error>),
}

impl<S: Read> Read for Tail<S> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Tail::Source(source) => source.read(buffer),
            Tail::Ended(failure) => failure.take().map_or(Ok(0), Err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_as_serde_json_does() {
        let long = format!("[{}1]\n  ", "1,\n".repeat(50));
        for text in ["", "1", "\"a\"\n", "[\n1,\n2]  ", "\n\n\n\"xyz\"", "{\n  \"a\": [\n1]\n}  ", &long] {
            let mut whole = Lines { line: 1, column: 0 };
            whole.add(text.as_bytes());
            let mut split = Lines { line: 1, column: 0 };
            let (first, second) = text.split_at(text.len() / 2);
            split.add(first.as_bytes());
            split.add(second.as_bytes());
            let error = serde_json::from_str::<serde_json::Value>(&format!("{text}!")).unwrap_err();
            let serde = Lines { line: error.line() as u64, column: error.column() as u64 - 1 };
            assert_eq!((whole, split), (serde, serde), "{text:?}");
        }
    }
}
