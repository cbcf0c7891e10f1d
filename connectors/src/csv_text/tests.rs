//! Tests of `csv_text`: encoding and separator detection, streaming decoding, line numbers.

use super::*;

/// A row as read: its line and fields, or why it was rejected.
#[derive(Debug, PartialEq)]
enum Got {
    Row(u64, Vec<String>),
    Rejected(RecordError),
}

/// Every row of `bytes`, and the input for its encoding and separator.
fn read(bytes: &[u8]) -> (CsvInput<&[u8]>, Vec<Got>) {
    let mut input = CsvInput::open(bytes).expect("opens");
    let mut rows = Vec::new();
    loop {
        match input.read_row().expect("reads") {
            NextRow::Record { line, record } => rows.push(Got::Row(line, record.iter().map(str::to_owned).collect())),
            NextRow::Rejected(error) => rows.push(Got::Rejected(error)),
            NextRow::End => return (input, rows),
        }
    }
}

fn row(line: u64, fields: &[&str]) -> Got {
    Got::Row(line, fields.iter().map(|f| (*f).to_owned()).collect())
}

fn check_encoding(bytes: &[u8], encoding: TextEncoding, header: &[&str], rows: &[&[&str]]) {
    let (input, read) = read(bytes);
    assert_eq!(input.encoding(), encoding, "{bytes:?}");
    assert_eq!(input.header().iter().collect::<Vec<_>>(), header, "{bytes:?}");
    let expected: Vec<_> = rows.iter().zip(2..).map(|(fields, line)| row(line, fields)).collect();
    assert_eq!(read, expected, "{bytes:?}");
}

#[test]
fn encodings() {
    check_encoding(b"nome;citta\nLaura;Roma\n", TextEncoding::Ascii, &["nome", "citta"], &[&["Laura", "Roma"]]);
    check_encoding(
        b"nome;citta\nMos\xC3\xA8;Forl\xC3\xAC\n",
        TextEncoding::Utf8,
        &["nome", "citta"],
        &[&["Mosè", "Forlì"]],
    );
    check_encoding(
        b"\xEF\xBB\xBFnome;citta\nLaura;Roma\n",
        TextEncoding::Utf8WithBom,
        &["nome", "citta"],
        &[&["Laura", "Roma"]],
    );
    check_encoding(
        b"\xEF\xBB\xBFnome;citt\xC3\xA0\nCarit\xC3\xA0;Roma\n",
        TextEncoding::Utf8WithBom,
        &["nome", "città"],
        &[&["Carità", "Roma"]],
    );
    check_encoding(
        b"nome;citta\nMos\xE8;Carit\xE0\n",
        TextEncoding::Windows1252,
        &["nome", "citta"],
        &[&["Mosè", "Carità"]],
    );
    check_encoding(
        b"nome;citt\xE0\r\nN\x80;Roma\r\n",
        TextEncoding::Windows1252,
        &["nome", "città"],
        &[&["N€", "Roma"]],
    );
}

/// Rows of ASCII long enough to push the first accented letter past the first window.
fn padded(accented_row: &[u8]) -> (Vec<u8>, usize) {
    let mut bytes = b"nome;n\n".to_vec();
    let rows = 2 * WINDOW_BYTES / 12;
    for n in 0..rows {
        bytes.extend_from_slice(format!("Laura;{n:05}\n").as_bytes());
    }
    bytes.extend_from_slice(accented_row);
    (bytes, rows)
}

#[test]
fn a_late_accent_still_decides_the_encoding() {
    for (accented, encoding) in
        [(&b"Mos\xE8;x\n"[..], TextEncoding::Windows1252), (b"Mos\xC3\xA8;x\n", TextEncoding::Utf8)]
    {
        let (bytes, rows) = padded(accented);
        let (input, read) = read(&bytes);
        assert_eq!(input.encoding(), encoding);
        assert_eq!(read.len(), rows + 1);
        assert_eq!(read[rows], row(rows as u64 + 2, &["Mosè", "x"]), "{encoding}");
    }
}

#[test]
fn a_utf8_sequence_cut_by_the_window_end_is_still_utf8() {
    let mut bytes = b"nome\n\xC3\xA8".to_vec();
    bytes.resize(5 + WINDOW_BYTES - 1, b'a');
    bytes.extend_from_slice("è\n".as_bytes());
    let (input, read) = read(&bytes);
    assert_eq!(input.encoding(), TextEncoding::Utf8);
    let text = format!("è{}è", "a".repeat(WINDOW_BYTES - 3));
    assert_eq!(read, vec![row(2, &[&text])]);
}

#[test]
fn invalid_utf8_after_the_decision_rejects_only_its_line() {
    let mut bytes = b"nome;citta\nMos\xC3\xA8;Roma\n".to_vec();
    let padding = 2 * WINDOW_BYTES / 11;
    for n in 0..padding {
        bytes.extend_from_slice(format!("Laura;{n:04}\n").as_bytes());
    }
    bytes.extend_from_slice(b"Bad;Forl\xEC\nLaura;Roma\n");
    let (input, read) = read(&bytes);
    assert_eq!(input.encoding(), TextEncoding::Utf8);
    let line = padding as u64 + 3;
    let rejected = RecordError { location: line, field: "citta".to_owned(), reason: "not valid UTF-8 text".to_owned() };
    assert_eq!(read[padding + 1..], [Got::Rejected(rejected), row(line + 1, &["Laura", "Roma"])]);
}

#[test]
fn decoding_works_through_one_byte_reads() {
    let source = b"\xEF\xBB\xBFa;b\nMos\xC3\xA8;1\n".repeat(3);
    for (bytes, expected) in
        [(&source[..], "a;b\nMosè;1\n\u{feff}a;b\nMosè;1\n\u{feff}a;b\nMosè;1\n"), (b"Mos\xE8 \x80", "Mosè €")]
    {
        let mut text = DecodedText::open(bytes).expect("opens");
        let (mut decoded, mut byte) = (Vec::new(), [0u8; 1]);
        while text.read(&mut byte).expect("reads") == 1 {
            decoded.push(byte[0]);
        }
        assert_eq!(String::from_utf8(decoded).expect("UTF-8"), expected, "{bytes:?}");
    }
}

#[test]
fn separators() {
    for (header, expected) in [
        (&b"a;b;c"[..], b';'),
        (b"a,b,c", b','),
        (b"a\tb\tc", b'\t'),
        (b"a|b|c", b'|'),
        (b"a;b,c", b';'),
        (b"a,b;c,d", b','),
        (b"\"x;y;z\",b,c", b','),
        (b"\"multi\nline;;;\",b\nc;d;e;f", b','),
        (b"a;b\r\nc,d,e,f", b';'),
        (b"solo", b','),
        (b"\r\n\na;b", b';'),
        (b"", b','),
    ] {
        assert_eq!(sniff_separator(header), expected, "{:?}", String::from_utf8_lossy(header));
    }
}

#[test]
fn line_numbers_follow_crlf_quotes_and_blank_lines() {
    let bytes = b"a;b\r\n1;\"x;y\"\r\n\r\n2;\"two\r\nlines\"\r\n3;\"say \"\"hi\"\"\"\r\n4\r\n";
    let (input, read) = read(bytes);
    assert_eq!(input.separator(), b';');
    assert_eq!(
        read,
        vec![row(2, &["1", "x;y"]), row(4, &["2", "two\r\nlines"]), row(6, &["3", "say \"hi\""]), row(7, &["4"]),]
    );
    let (_, lf) = self::read(b"\n\na;b\n1;2\n\n\n3;\"x\ny\"\n  4;5\n");
    assert_eq!(lf, vec![row(4, &["1", "2"]), row(7, &["3", "x\ny"]), row(9, &["  4", "5"])]);
}

#[test]
fn file_level_errors() {
    let utf16 = CsvInput::open(&b"\xFF\xFEa\x00;\x00b\x00"[..]).map(|_| ());
    assert!(matches!(utf16, Err(CsvReadError::Utf16)), "{utf16:?}");
    for empty in [&b""[..], b"\n\n", b"\xEF\xBB\xBF", b";;\n"] {
        let opened = CsvInput::open(empty).map(|_| ());
        assert!(matches!(opened, Err(CsvReadError::NoHeader)), "{empty:?}: {opened:?}");
    }
    let bad_header = CsvInput::open(&b"\xEF\xBB\xBFnome;citt\xE0\n"[..]).map(|_| ());
    assert!(matches!(bad_header, Err(CsvReadError::HeaderText { encoding: TextEncoding::Utf8WithBom })));
}

/// A source that fails after handing out `good` bytes.
struct Failing<'a> {
    good: &'a [u8],
}

impl Read for Failing<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.good.is_empty() {
            return Err(io::Error::other("disk gone"));
        }
        self.good.read(out)
    }
}

#[test]
fn a_failing_source_stops_reading_after_the_good_rows() {
    let (good, rows) = padded(b"");
    let mut input = CsvInput::open(Failing { good: &good }).expect("opens");
    let mut lines = Vec::new();
    let failure = loop {
        match input.read_row() {
            Ok(NextRow::Record { line, .. }) => lines.push(line),
            other => break other,
        }
    };
    assert!(matches!(failure, Err(CsvReadError::ReadAt { .. })), "{failure:?}");
    assert!(lines.len() > rows / 3 && lines.len() < rows, "{} of {rows} rows", lines.len());
    assert!(lines.iter().copied().eq(2..lines.len() as u64 + 2));
}
