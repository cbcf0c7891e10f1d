//! Tests of `govpay`: the shared sample in every encoding and layout a municipality
//! produces, bad rows, bad headers, IUVs and installments.

use super::*;
use crate::domain::{AmountError, NoticeNumberError};
use encoding_rs::WINDOWS_1252;
use jiff::civil::date;

const SAMPLE: &str = include_str!("../../tests/fixtures/govpay_pendenze_tari.csv");

/// The sample's notices, with the debtor called `name`.
fn sample_notices(name: &str) -> Vec<PaymentNotice> {
    let notice = |number: &str, cents, due_date, description: &str, installment| PaymentNotice {
        debtor_fiscal_code: "BNCLRA85C52F205V".to_owned(),
        debtor_name: Some(name.to_owned()),
        creditor: "80000000010".parse().expect("valid"),
        notice_number: number.parse().expect("valid"),
        amount: EuroCents::from_cents(cents).expect("valid"),
        due_date: Some(due_date),
        description: description.to_owned(),
        installment,
        year: Some(2025),
    };
    vec![
        notice("301202500000000180", 30_000, date(2025, 7, 31), "TARI 2025 - unica soluzione", None),
        notice("301202500000000281", 15_000, date(2025, 7, 31), "TARI 2025 - rata 1 di 2", Some((1, 2))),
        notice("301202500000000382", 15_000, date(2025, 12, 2), "TARI 2025 - rata 2 di 2", Some((2, 2))),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Utf8,
    Utf8Bom,
    Windows1252,
}

/// How to re-export the sample, as municipalities do.
#[derive(Clone, Copy, Debug)]
struct Layout {
    encoding: Encoding,
    separator: u8,
    crlf: bool,
    /// Amounts as `150,00` and dates as `31/07/2025`.
    italian_values: bool,
    columns_reversed: bool,
    debtor_name: &'static str,
}

const PLAIN: Layout = Layout {
    encoding: Encoding::Utf8,
    separator: b',',
    crlf: false,
    italian_values: false,
    columns_reversed: false,
    debtor_name: "Laura Bianchi",
};

fn render(layout: Layout) -> Vec<u8> {
    let mut reader = csv::Reader::from_reader(SAMPLE.as_bytes());
    let header = reader.headers().expect("sample header").clone();
    let terminator = if layout.crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
    let mut writer = csv::WriterBuilder::new().delimiter(layout.separator).terminator(terminator).from_writer(vec![]);
    let mut write = |mut cells: Vec<String>| {
        if layout.columns_reversed {
            cells.reverse();
        }
        writer.write_record(&cells).expect("writes");
    };
    write(header.iter().map(str::to_owned).collect());
    for row in reader.records() {
        let row = row.expect("sample row");
        write(header.iter().zip(&row).map(|(name, cell)| re_export(layout, name, cell)).collect());
    }
    let text = String::from_utf8(writer.into_inner().expect("flushes")).expect("UTF-8");
    match layout.encoding {
        Encoding::Utf8 => text.into_bytes(),
        Encoding::Utf8Bom => [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat(),
        Encoding::Windows1252 => WINDOWS_1252.encode(&text).0.into_owned(),
    }
}

fn re_export(layout: Layout, column: &str, cell: &str) -> String {
    match column {
        "anagraficaPagatore" => layout.debtor_name.to_owned(),
        "importo" if layout.italian_values => cell.replace('.', ","),
        "dataScadenza" if layout.italian_values => {
            let parts: Vec<&str> = cell.split('-').collect();
            format!("{}/{}/{}", parts[2], parts[1], parts[0])
        }
        _ => cell.to_owned(),
    }
}

fn import(bytes: &[u8], options: GovPayOptions) -> Import {
    read_all(bytes, options).expect("file opens")
}

#[test]
fn the_shared_sample_as_is() {
    let import = import(SAMPLE.as_bytes(), GovPayOptions::default());
    assert_eq!(import.notices, sample_notices("Laura Bianchi"));
    assert_eq!((import.errors, import.warnings), (vec![], vec![]));
    assert_eq!((import.encoding, import.separator), (TextEncoding::Ascii, b','));
}

#[test]
fn the_sample_re_exported_every_way() {
    use Encoding::*;
    let accented = "Mosè Carità";
    let municipal = Layout { separator: b';', crlf: true, italian_values: true, debtor_name: accented, ..PLAIN };
    for (layout, encoding) in [
        (PLAIN, TextEncoding::Ascii),
        (Layout { encoding: Utf8Bom, ..PLAIN }, TextEncoding::Utf8WithBom),
        (Layout { debtor_name: accented, ..PLAIN }, TextEncoding::Utf8),
        (Layout { encoding: Utf8Bom, debtor_name: accented, ..PLAIN }, TextEncoding::Utf8WithBom),
        (Layout { encoding: Windows1252, debtor_name: accented, ..PLAIN }, TextEncoding::Windows1252),
        (Layout { encoding: Windows1252, ..municipal }, TextEncoding::Windows1252),
        (Layout { encoding: Utf8Bom, ..municipal }, TextEncoding::Utf8WithBom),
        (Layout { encoding: Utf8, ..municipal }, TextEncoding::Utf8),
        (Layout { separator: b'\t', ..municipal }, TextEncoding::Utf8),
        (Layout { separator: b'|', encoding: Windows1252, ..municipal }, TextEncoding::Windows1252),
        (Layout { columns_reversed: true, ..PLAIN }, TextEncoding::Ascii),
        (Layout { columns_reversed: true, encoding: Windows1252, ..municipal }, TextEncoding::Windows1252),
    ] {
        let import = import(&render(layout), GovPayOptions::default());
        assert_eq!(import.notices, sample_notices(layout.debtor_name), "{layout:?}");
        assert_eq!((import.errors, import.warnings), (vec![], vec![]), "{layout:?}");
        assert_eq!((import.encoding, import.separator), (encoding, layout.separator), "{layout:?}");
    }
}

const HEADER: &str =
    "numeroAvviso;idDominio;importo;identificativoPagatore;causale;dataScadenza;numeroRata;idDocumento";
const GOOD_1: &str = "301202500000000281;80000000010;150,00;BNCLRA85C52F205V;rata 1;31/07/2025;1;D1";
const GOOD_2: &str = "301202500000000382;80000000010;150,00;BNCLRA85C52F205V;rata 2;02/12/2025;2;D1";

/// Reads `HEADER`, `GOOD_1`, `row`, `GOOD_2` and checks the middle row's outcome: the
/// notice number it yields, or its error at line 3. The good rows must come through, and
/// a rejected row of their document must not break their installments.
fn check_row(row: &str, options: GovPayOptions, expected: Result<&str, (&str, String)>) {
    let text = [HEADER, GOOD_1, row, GOOD_2].join("\r\n");
    let import = import(text.as_bytes(), options);
    let numbers: Vec<&str> = import.notices.iter().map(|n| n.notice_number.as_str()).collect();
    match expected {
        Ok(number) => {
            assert_eq!(numbers, ["301202500000000281", number, "301202500000000382"], "{row}");
            assert_eq!(import.errors, [], "{row}");
        }
        Err((field, reason)) => {
            assert_eq!(numbers, ["301202500000000281", "301202500000000382"], "{row}");
            let error = RecordError { location: 3, field: field.to_owned(), reason };
            assert_eq!(import.errors, [error], "{row}");
            if row.ends_with(";D1") {
                let installments: Vec<_> = import.notices.iter().map(|n| n.installment).collect();
                assert_eq!(installments, [Some((1, 2)), Some((2, 2))], "a bad row keeps its document: {row}");
            }
        }
    }
}

fn bad(field: &str, reason: impl ToString) -> Result<&'static str, (&str, String)> {
    Err((field, reason.to_string()))
}

#[test]
fn one_bad_row_is_reported_and_the_rest_read() {
    let enforce = GovPayOptions::default();
    let check_digits = NoticeNumberError::CheckDigits { expected: 73, found: 74 };
    for (row, expected) in [
        ("301000000000012373;80000000010;1.020,99;RSSMRA80A01H501U;x;;;D1", Ok("301000000000012373")),
        ("3010 0000 0000 0123 73;80000000010;0.29;RSSMRA80A01H501U;x;;;D1", Ok("301000000000012373")),
        (
            "301000000000012373;80000000010;1.005;RSSMRA80A01H501U;x;;;D1",
            bad(AMOUNT, AmountError::AmbiguousSeparator { separator: '.' }),
        ),
        ("301000000000012373;80000000010;0;RSSMRA80A01H501U;x;;;D1", bad(AMOUNT, AmountError::Zero)),
        ("301000000000012373;80000000010;;RSSMRA80A01H501U;x;;;D1", bad(AMOUNT, AmountError::Empty)),
        ("301000000000012374;80000000010;10;RSSMRA80A01H501U;x;;;D1", bad(NOTICE, &check_digits)),
        (
            "401000000000012373;80000000010;10;RSSMRA80A01H501U;x;;;D1",
            bad(NOTICE, NoticeNumberError::AuxDigit { found: 4 }),
        ),
        (
            "3010000000000123;80000000010;10;RSSMRA80A01H501U;x;;;D1",
            bad(NOTICE, NoticeNumberError::Length { found: 16 }),
        ),
        (";80000000010;10;RSSMRA80A01H501U;x;;;D1", bad(NOTICE, NoticeNumberError::Length { found: 0 })),
        (
            "301000000000012373;80000000011;10;RSSMRA80A01H501U;x;;;D1",
            bad(CREDITOR, "check digit is 1 but the first 10 digits give 0"),
        ),
        ("301000000000012373;80000000010;10; ;x;;;D1", bad(DEBTOR, "is empty")),
        (
            "301000000000012373;80000000010;10;RSSMRA80A01H501U;x;31/02/2025;;D1",
            bad(DUE_DATE, "\"31/02/2025\" is not a calendar date"),
        ),
        (
            "301000000000012373;80000000010;10;RSSMRA80A01H501U;x;2025/07/31;;D1",
            bad(DUE_DATE, "\"2025/07/31\" is not a date as yyyy-mm-dd or dd/mm/yyyy"),
        ),
        (
            "301000000000012373;80000000010;10;RSSMRA80A01H501U;x;;prima;D1",
            bad(RATA, "\"prima\" is not an installment number (1, 2, ...)"),
        ),
        (
            "301000000000012373;80000000010;10;RSSMRA80A01H501U;x;;0;D1",
            bad(RATA, "\"0\" is not an installment number (1, 2, ...)"),
        ),
        ("301000000000012373;80000000010", bad(AMOUNT, AmountError::Empty)),
    ] {
        check_row(row, enforce, expected);
    }
}

#[test]
fn seventeen_digits_are_an_iuv_only_with_an_aux_digit() {
    let with = |aux| GovPayOptions { iuv_aux_digit: Some(aux), ..GovPayOptions::default() };
    let iuv_row = "01000000000012373;80000000010;10;RSSMRA80A01H501U;x;;;D1";
    let probable_iuv = "has 17 digits: probably an IUV, accepted only when the source has an IUV aux digit configured";
    let aux_2 = format!("IUV with aux digit 2: {}", NoticeNumberError::CheckDigits { expected: 72, found: 73 });
    for (options, expected) in [
        (GovPayOptions::default(), bad(NOTICE, probable_iuv)),
        (with(3), Ok("301000000000012373")),
        (with(1), Ok("101000000000012373")),
        (with(2), bad(NOTICE, aux_2)),
    ] {
        check_row(iuv_row, options, expected);
    }
    check_row("301000000000012373;80000000010;10;RSSMRA80A01H501U;x;;;D1", with(2), Ok("301000000000012373"));
    for aux in [0, 4, 9] {
        let opened = read_all(SAMPLE.as_bytes(), with(aux)).map(|_| ());
        assert!(matches!(opened, Err(GovPayError::IuvAuxDigit { found }) if found == aux), "{opened:?}");
    }
}

#[test]
fn warn_only_accepts_wrong_check_digits_with_a_warning() {
    let warn_only = GovPayOptions { notice_check: NumberCheck::WarnOnly, ..GovPayOptions::default() };
    let iuv_warn_only = GovPayOptions { iuv_aux_digit: Some(2), ..warn_only };
    let wrong = |expected, found| NoticeNumberError::CheckDigits { expected, found };
    let (row, iuv_row) =
        ("301000000000012374;80000000010;10;RSSMRA80A01H501U;x;;;D1", "01000000000012373;80000000010;10;X;x;;;D1");
    check_row(row, GovPayOptions::default(), bad(NOTICE, wrong(73, 74)));
    check_row(
        "401000000000012373;80000000010;10;X;x;;;D1",
        warn_only,
        bad(NOTICE, NoticeNumberError::AuxDigit { found: 4 }),
    );
    for (row, options, number, reason) in [
        (row, warn_only, "301000000000012374", format!("{}; accepted: the source is warn-only", wrong(73, 74))),
        (
            iuv_row,
            iuv_warn_only,
            "201000000000012373",
            format!("IUV with aux digit 2: {}; accepted: the source is warn-only", wrong(72, 73)),
        ),
    ] {
        check_row(row, options, Ok(number));
        let text = [HEADER, row].join("\n");
        let warning = RecordError { location: 2, field: NOTICE.to_owned(), reason };
        assert_eq!(import(text.as_bytes(), options).warnings, [warning]);
    }
    let rejected_anyway = [HEADER, "301000000000012374;80000000010;1.005;X;x;;;D1"].join("\n");
    let import = import(rejected_anyway.as_bytes(), warn_only);
    assert_eq!((import.notices.len(), import.errors.len(), import.warnings), (0, 1, vec![]));
}

#[test]
fn quoted_fields_keep_their_separators_and_newlines() {
    let text = "numeroAvviso;idDominio;importo;identificativoPagatore;causale;anagraficaPagatore\r\n\
                301000000000012373;80000000010;\"1.020,99\";RSSMRA80A01H501U;\"TARI; acconto, \"\"rata\"\" 1\";\"Rossi; Mario\"\r\n\
                301202500000000180;80000000010;10;RSSMRA80A01H501U;\"due\r\nrighe\";\r\n\
                301202500000000281;80000000010;1.005;RSSMRA80A01H501U;;\r\n";
    let import = import(text.as_bytes(), GovPayOptions::default());
    let read: Vec<_> =
        import.notices.iter().map(|n| (n.amount.cents(), n.description.as_str(), n.debtor_name.as_deref())).collect();
    assert_eq!(read, [(102_099, "TARI; acconto, \"rata\" 1", Some("Rossi; Mario")), (1_000, "due\r\nrighe", None)]);
    let error = RecordError {
        location: 5,
        field: AMOUNT.to_owned(),
        reason: AmountError::AmbiguousSeparator { separator: '.' }.to_string(),
    };
    assert_eq!(import.errors, [error]);
}

#[test]
fn missing_and_repeated_columns_stop_the_file() {
    for (header, expected) in [
        ("numeroAvviso,idDominio,identificativoPagatore,causale", vec!["importo"]),
        ("idDominio,causale,importo", vec!["numeroAvviso", "identificativoPagatore"]),
        ("causale", vec!["numeroAvviso", "idDominio", "importo", "identificativoPagatore"]),
    ] {
        let text = format!("{header}\n301000000000012373,80000000010,RSSMRA80A01H501U,x\n");
        match read_all(text.as_bytes(), GovPayOptions::default()) {
            Err(GovPayError::MissingColumns { names }) => assert_eq!(names, expected, "{header}"),
            other => panic!("{header}: {other:?}"),
        }
    }
    let error = read_all(
        &b"numeroavviso,NumeroAvviso ,idDominio,importo,identificativoPagatore\n"[..],
        GovPayOptions::default(),
    );
    assert!(matches!(error, Err(GovPayError::DuplicateColumn { name: "numeroAvviso" })), "{error:?}");
    let message = GovPayError::MissingColumns { names: vec!["importo", "idDominio"] }.to_string();
    assert_eq!(message, "required column(s) missing from the header: importo, idDominio");
}

#[test]
fn installments_are_totalled_per_adjacent_document() {
    let text = "numeroAvviso,idDominio,importo,identificativoPagatore,numeroRata,idDocumento\n\
                301202500000000180,80000000010,300,AAA,,D1\n\
                301202500000000281,80000000010,100,AAA,1,D1\n\
                301202500000000382,80000000010,100,AAA,2,D1\n\
                301000000000012373,80000000010,100,AAA,3,D1\n\
                005202400000004276,80000000010,50,BBB,1,D2\n\
                220240000000001766,80000000010,50,CCC,2,\n\
                199999999999999999,80000000010,50,AAA,4,D1\n\
                301202500000000180,80000000010,50,DDD,,D3\n\
                301202500000000281,80000000010,50,EEE,,D4\n\
                301202500000000382,80000000010,50,DDD,,D3\n";
    let import = import(text.as_bytes(), GovPayOptions::default());
    let installments: Vec<_> = import.notices.iter().map(|n| n.installment).collect();
    assert_eq!(
        installments,
        [None, Some((1, 3)), Some((2, 3)), Some((3, 3)), Some((1, 1)), None, None, None, None, None]
    );
    let reason = "rows of document \"D1\" are not adjacent (it also appears earlier), so its installments cannot be \
                  totalled: installments from this line on left unset";
    // D3 is scattered too, but has no installments to total: no warning.
    let warning = RecordError { location: 8, field: DOCUMENT.to_owned(), reason: reason.to_owned() };
    assert_eq!(import.warnings, [warning]);
}

/// A source that fails after handing out `good` bytes.
struct Failing<'a> {
    good: &'a [u8],
}

impl std::io::Read for Failing<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.good.is_empty() {
            return Err(std::io::Error::other("disk gone"));
        }
        self.good.read(out)
    }
}

#[test]
fn a_failing_source_ends_the_stream_after_what_was_read() {
    let single = "301202500000000281;80000000010;150,00;BNCLRA85C52F205V;rata 1;31/07/2025;;";
    let mut text = format!("{HEADER}\n");
    while text.len() < 100 * 1024 {
        text.push_str(single);
        text.push('\n');
    }
    let mut pendenze = Pendenze::open(Failing { good: text.as_bytes() }, GovPayOptions::default()).expect("opens");
    let read: Vec<_> = pendenze.by_ref().collect();
    let (last, before) = read.split_last().expect("items");
    assert!(before.len() > 500, "{} rows before the failure", before.len());
    assert!(before.iter().all(|item| matches!(item, Ok(Ok(notice)) if notice.amount.cents() == 15_000)));
    assert!(matches!(last, Err(GovPayError::Csv(CsvReadError::ReadAt { .. }))), "{last:?}");
    assert!(pendenze.next().is_none());
    assert!(read_all(Failing { good: text.as_bytes() }, GovPayOptions::default()).is_err());
}

/// Queues deduplicate re-imports on this exact text: it must never change.
#[test]
fn a_notice_dedup_key_is_creditor_colon_number_after_the_prefix() {
    let notice = &sample_notices("Laura Bianchi")[1];
    assert_eq!(notice.dedup_key(""), "80000000010:301202500000000281");
    assert_eq!(notice.dedup_key("payment:"), "payment:80000000010:301202500000000281");
}
