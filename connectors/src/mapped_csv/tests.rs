//! Tests of `mapped_csv`: the municipal export fixture in its encodings and separators, bad
//! rows with their true lines, value formats and mapping problems.

use super::*;
use crate::domain::EuroCents;
use jiff::civil::date;

const WINDOWS_1252: &[u8] = include_bytes!("../../tests/fixtures/estrazione_dovuti_cp1252.csv");
const UTF8_BOM: &[u8] = include_bytes!("../../tests/fixtures/estrazione_dovuti_utf8_bom.csv");

/// The fixture's mapping; header names in other case and spacing than the file's.
const MAPPING: &str = r#"
creditor = "80000000010"

[columns]
fiscal_code = "codice fiscale"
name = "Anagrafica"
notice_number = "NUMERO AVVISO"
amount = "Importo Dovuto"
due_date = "Data Scadenza"
description = "Causale Versamento"
installment = "Numero Rata"
installments = "Totale Rate"
year = " Anno Tributo "
"#;

/// The fixture's mapping with `options` (top-level keys) added.
fn mapping(options: &str) -> Mapping {
    toml::from_str(&format!("{options}\n{MAPPING}")).unwrap_or_else(|error| panic!("{error}"))
}

/// Every item of a file, which must not fail as a whole, and the warnings.
fn read(bytes: &[u8], mapping: &Mapping) -> (Vec<Result<PaymentNotice, RecordError>>, Vec<RecordError>) {
    let mut rows = MappedRows::open(bytes, mapping).unwrap_or_else(|error| panic!("{error}"));
    let items = rows.by_ref().map(|item| item.unwrap_or_else(|error| panic!("{error}"))).collect();
    (items, rows.warnings().to_vec())
}

/// A TARI 2025 single payment due 31 July 2025, for the creditor of the mapping.
fn notice(fiscal_code: &str, name: Option<&str>, number: &str, cents: i64) -> PaymentNotice {
    PaymentNotice {
        debtor_fiscal_code: fiscal_code.to_owned(),
        debtor_name: name.map(str::to_owned),
        creditor: "80000000010".parse().expect("valid"),
        notice_number: number.parse().expect("valid"),
        amount: EuroCents::from_cents(cents).expect("valid"),
        due_date: Some(date(2025, 7, 31)),
        description: "TARI 2025".to_owned(),
        installment: None,
        year: Some(2025),
    }
}

fn bad(line: u64, field: &str, reason: &str) -> Result<PaymentNotice, RecordError> {
    Err(RecordError { location: line, field: field.to_owned(), reason: reason.to_owned() })
}

/// The fixture read with the default (strict) options, in file order. Line 3's address
/// spans two lines and line 7 is blank, so rows after them keep their true line numbers.
fn expected_strict() -> Vec<Result<PaymentNotice, RecordError>> {
    let verdi = |number, due, description: &str, installment| PaymentNotice {
        due_date: Some(due),
        description: description.to_owned(),
        installment: Some(installment),
        ..notice("VRDGPP50T01H501B", Some("Giuseppe Verdi"), number, 15_000)
    };
    vec![
        Ok(PaymentNotice {
            description: "TARI 2025 - unica soluzione".to_owned(),
            ..notice("BNCLRA85C52F205V", Some("Laura Bianchi"), "301202500000010187", 102_099)
        }),
        Ok(verdi("301202500000010288", date(2025, 7, 31), "TARI 2025; utenza domestica | acconto", (1, 2))),
        Ok(verdi("301202500000010389", date(2025, 12, 2), "TARI 2025 - saldo", (2, 2))),
        Ok(PaymentNotice {
            due_date: Some(date(2025, 9, 16)),
            description: "Conguaglio TARI 2024".to_owned(),
            year: Some(2024),
            ..notice("SPSNMR79L71F839Q", Some("Niccolò Ferrè"), "301202500000010490", 29)
        }),
        bad(8, "Importo Dovuto", "\"0,00\" is not an amount written like 1.020,99: amount is zero but pagoPA amounts are at least 0,01 €"),
        bad(9, "Numero Avviso", "\"301202500000010592\": check digits are 92 but the first 16 digits give 91"),
        bad(10, "Data Scadenza", "\"31/02/2025\" is not a date written as dd/mm/yyyy: no such day in the calendar"),
        bad(11, "Codice Fiscale", "is empty"),
        bad(12, "Numero Avviso", "has 17 digits: probably an IUV, accepted only when the mapping sets iuv_aux_digit"),
        Ok(PaymentNotice {
            due_date: None,
            description: "TARI 2025 - utenza non domestica, \"categoria 7\"".to_owned(),
            installment: Some((1, 3)),
            ..notice("02438750586", Some("Società Agricola Lucà S.r.l."), "301202500000010902", 123_456_700)
        }),
        bad(14, "Importo Dovuto", "\"12.50\" is not an amount written like 1.020,99: euros are digits, optionally in groups of three split by '.'"),
        bad(15, "Numero Rata", "installment 3 of 2 does not exist: installments run from 1 to 2"),
    ]
}

#[test]
fn the_windows_1252_export() {
    let mut rows = MappedRows::open(WINDOWS_1252, &mapping("")).expect("opens");
    assert_eq!(rows.separator(), b';');
    let items: Vec<_> = rows.by_ref().map(|item| item.expect("no source failure")).collect();
    assert_eq!(rows.encoding(), TextEncoding::Windows1252);
    assert_eq!(items, expected_strict());
    assert_eq!(rows.warnings(), []);
}

#[test]
fn the_utf8_export_with_bom_reads_the_same() {
    let mut rows = MappedRows::open(UTF8_BOM, &mapping("")).expect("opens");
    let items: Vec<_> = rows.by_ref().map(|item| item.expect("no source failure")).collect();
    assert_eq!(rows.encoding(), TextEncoding::Utf8WithBom);
    assert_eq!(items, expected_strict());
}

/// The fixture written again with another separator (quoting what needs it).
fn re_separated(separator: u8) -> Vec<u8> {
    let text = &UTF8_BOM[3..];
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').has_headers(false).from_reader(text);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.expect("fixture row");
        let mut writer = csv::WriterBuilder::new().delimiter(separator).from_writer(&mut out);
        writer.write_record(&record).expect("writes");
        writer.flush().expect("flushes");
        drop(writer);
        // The csv reader skips the fixture's blank line 7, after the 0,29 € row: keep it, so
        // the lines stay the same.
        if record.get(4) == Some("0,29") {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn tab_and_pipe_separators_with_quoted_fields() {
    for separator in [b'\t', b'|', b','] {
        let bytes = re_separated(separator);
        let text = String::from_utf8_lossy(&bytes);
        let mut rows = MappedRows::open(bytes.as_slice(), &mapping("")).expect("opens");
        assert_eq!(rows.separator(), separator, "{text}");
        let items: Vec<_> = rows.by_ref().map(|item| item.expect("no source failure")).collect();
        assert_eq!(items, expected_strict(), "{text}");
    }
    // A separator inside quotes, even the file's own, is text.
    let text = "cf|avviso|importo|causale\n\
                BNCLRA85C52F205V|301202500000010187|\"1.020,99\"|\"TARI | acconto\tcon \"\"tab\"\"\"\n";
    let mapping: Mapping = toml::from_str(
        "creditor = \"80000000010\"\n[columns]\nfiscal_code = \"cf\"\nnotice_number = \"avviso\"\namount = \"importo\"\n\
         description = \"causale\"",
    )
    .expect("mapping");
    let (items, _) = read(text.as_bytes(), &mapping);
    let description = items[0].as_ref().map(|notice| notice.description.as_str());
    assert_eq!(description, Ok("TARI | acconto\tcon \"tab\""));
}

#[test]
fn warn_only_and_iuv_aux_digit() {
    let (items, warnings) = read(WINDOWS_1252, &mapping("notice_check = \"warn\"\niuv_aux_digit = 3"));
    let mut expected = expected_strict();
    // Line 9: the wrong check digits are let through.
    let mut line_9 = notice("RSSMRC60D30Z112N", Some("Marco Rossi"), "301202500000010591", 8_000);
    line_9.notice_number = NoticeNumber::parse_ignoring_check("301202500000010592").expect("parses").0;
    expected[5] = Ok(line_9);
    // Line 12: the IUV becomes a notice number with aux digit 3; the file has no name.
    let line_12 = notice("BNCLRA85C52F205V", None, "301202500000010801", 1_200);
    expected[8] = Ok(PaymentNotice { description: "TARI 2025 - integrazione".to_owned(), ..line_12 });
    assert_eq!(items, expected);
    let reason = "check digits are 92 but the first 16 digits give 91; accepted: notice_check is warn";
    assert_eq!(warnings, [RecordError { location: 9, field: "Numero Avviso".to_owned(), reason: reason.to_owned() }]);
}

#[test]
fn amounts_are_read_exactly_as_the_mapping_says() {
    let check = |text: &str, decimal: Decimal, expected: Result<u64, &str>| {
        let found = parse_amount(text, decimal).map(EuroCents::cents);
        match (&found, expected) {
            (Ok(cents), Ok(wanted)) => assert_eq!(*cents, wanted, "{text} as {decimal:?}"),
            (Err(reason), Err(fragment)) => assert!(reason.contains(fragment), "{text} as {decimal:?}: {reason}"),
            _ => panic!("{text} as {decimal:?}: {found:?}, wanted {expected:?}"),
        }
    };
    use Decimal::{Cents, Comma, Point};
    check("0,29", Comma, Ok(29));
    check("1.020,99", Comma, Ok(102_099));
    check("1020,99", Comma, Ok(102_099));
    check("1.234.567,00", Comma, Ok(123_456_700));
    check("1.005", Comma, Ok(100_500));
    check("120", Comma, Ok(12_000));
    check("12,5", Comma, Ok(1_250));
    check(" € 45,50 ", Comma, Ok(4_550));
    check("45,50 €", Comma, Ok(4_550));
    check("12.50", Comma, Err("groups of three"));
    check("1,020.99", Comma, Err("1 or 2 decimal digits"));
    check("1,005", Comma, Err("1 or 2 decimal digits"));
    check("1.02.099", Comma, Err("groups of three"));
    check(",50", Comma, Err("groups of three"));
    check("0", Comma, Err("amount is zero"));
    check("0,00", Comma, Err("amount is zero"));
    check("-5,00", Comma, Err("negative"));
    check("", Comma, Err("groups of three"));
    check("12,3a", Comma, Err("decimals must be digits"));
    check("100.000.000,00", Comma, Err("exceeds pagoPA's maximum"));
    check("0.29", Point, Ok(29));
    check("1,020.99", Point, Ok(102_099));
    check("1,005", Point, Ok(100_500));
    check("1.020,99", Point, Err("1 or 2 decimal digits"));
    check("102099", Cents, Ok(102_099));
    check("29", Cents, Ok(29));
    check("0", Cents, Err("amount is zero"));
    check("1020,99", Cents, Err("only digits"));
    check("-5", Cents, Err("only digits"));
    check("", Cents, Err("only digits"));
    check("99999999999999999999", Cents, Err("too large"));
}

#[test]
fn dates_are_read_as_the_mapping_says() {
    let check = |text: &str, format: DateFormat, expected: Option<jiff::civil::Date>| {
        assert_eq!(parse_date(text, format).ok(), expected, "{text} as {}", format.as_str());
    };
    use DateFormat::{DayDashes, DayDots, DaySlashes, Iso};
    let july = Some(date(2025, 7, 31));
    check("31/07/2025", DaySlashes, july);
    check("31/7/2025", DaySlashes, july);
    check("2/12/2025", DaySlashes, Some(date(2025, 12, 2)));
    check("31/07/2025 00:00:00", DaySlashes, july);
    check("31/07/2025 00:00", DaySlashes, july);
    check("31/07/2025 10:30:00", DaySlashes, None);
    check("2025-07-31", DaySlashes, None);
    check("31/07/25", DaySlashes, None);
    check("29/02/2024", DaySlashes, Some(date(2024, 2, 29)));
    check("29/02/2025", DaySlashes, None);
    check("31/13/2025", DaySlashes, None);
    check("2025-07-31", Iso, july);
    check("31/07/2025", Iso, None);
    check("31-07-2025", DayDashes, july);
    check("2025-07-31", DayDashes, None);
    check("31.07.2025", DayDots, july);
    check("31.07.2025.", DayDots, None);
    check("", DaySlashes, None);
    let error = parse_date("31-07-2025", DaySlashes).expect_err("refused");
    assert_eq!(error, "\"31-07-2025\" is not a date written as dd/mm/yyyy");
}

/// One data row under a header with installment columns; the outcome's installment or error.
fn installment(number: &str, total: &str) -> Result<Option<(u32, u32)>, (String, String)> {
    let text = format!("cf;avviso;importo;rata;rate\nBNCLRA85C52F205V;301202500000010187;10,00;{number};{total}\n");
    let mapping: Mapping = toml::from_str(
        "creditor = \"80000000010\"\n[columns]\nfiscal_code = \"cf\"\nnotice_number = \"avviso\"\namount = \"importo\"\n\
         installment = \"rata\"\ninstallments = \"rate\"",
    )
    .expect("mapping");
    let (mut items, _) = read(text.as_bytes(), &mapping);
    assert_eq!(items.len(), 1);
    items.remove(0).map(|notice| notice.installment).map_err(|error| (error.field, error.reason))
}

#[test]
fn installments_in_one_column_or_two() {
    assert_eq!(installment("", ""), Ok(None));
    assert_eq!(installment("", "3"), Ok(None));
    assert_eq!(installment("2", "3"), Ok(Some((2, 3))));
    assert_eq!(installment("2/3", ""), Ok(Some((2, 3))));
    assert_eq!(installment(" 2 / 3 ", ""), Ok(Some((2, 3))));
    assert_eq!(installment("2 di 3", ""), Ok(Some((2, 3))));
    assert_eq!(installment("2 DI 3", ""), Ok(Some((2, 3))));
    assert_eq!(installment("2/3", "3"), Ok(Some((2, 3))));
    assert_eq!(installment("1", "1"), Ok(Some((1, 1))));
    let error = |field: &str, reason: &str| Err((field.to_owned(), reason.to_owned()));
    assert_eq!(installment("2/3", "4"), error("rate", "says 4 installments but \"rata\" says \"2/3\""));
    assert_eq!(
        installment("2", ""),
        error("rata", "installment 2 has no total: write 2/3 or map columns.installments")
    );
    assert_eq!(installment("2", "tre"), error("rate", "\"tre\" is not a number of installments"));
    assert_eq!(installment("0", "3"), error("rata", "installment 0 of 3 does not exist: installments run from 1 to 3"));
    assert_eq!(
        installment("4/3", ""),
        error("rata", "installment 4 of 3 does not exist: installments run from 1 to 3")
    );
    assert_eq!(installment("seconda", "3"), error("rata", "\"seconda\" is not an installment like 2, 2/3 or 2 di 3"));
    assert_eq!(installment("2 of 3", ""), error("rata", "\"2 of 3\" is not an installment like 2, 2/3 or 2 di 3"));
}

#[test]
fn the_mapping_lists_every_problem() {
    let bad_mapping: Mapping = toml::from_str(
        r#"
        iuv_aux_digit = 7
        [columns]
        fiscal_code = "CF"
        notice_number = "Avviso"
        amount = " "
        name = "cf"
        installments = "Rate"
        "#,
    )
    .expect("mapping");
    assert_eq!(
        bad_mapping.check(),
        [
            "no creditor: set creditor (the institution's fiscal code) or columns.creditor (a column holding it)",
            "iuv_aux_digit is 7 but a 17-digit IUV takes aux digit 1, 2 or 3",
            "columns.installments (the total) needs columns.installment (the number)",
            "columns.amount is empty",
            "columns.fiscal_code and columns.name both name column \"cf\"",
        ]
    );
    let error = MappedRows::open(WINDOWS_1252, &bad_mapping).expect_err("refused");
    assert!(matches!(&error, MappedError::Mapping(problems) if problems.len() == 5), "{error}");

    let both = mapping_with_creditor("creditor = \"80000000010\"", "creditor = \"Ente\"");
    assert_eq!(both.check(), ["both creditor and columns.creditor are set: keep one"]);
    let wrong = mapping_with_creditor("creditor = \"80000000011\"", "");
    assert_eq!(
        wrong.check(),
        [
            "creditor \"80000000011\" is not an institution's fiscal code: check digit is 1 but the first 10 digits give 0"
        ]
    );
    assert_eq!(mapping("").check(), Vec::<String>::new());
}

fn mapping_with_creditor(fixed: &str, column: &str) -> Mapping {
    let text =
        format!("{fixed}\n[columns]\nfiscal_code = \"cf\"\nnotice_number = \"avviso\"\namount = \"importo\"\n{column}");
    toml::from_str(&text).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn mapping_configuration_is_strict_with_documented_defaults() {
    let defaults = mapping("");
    assert_eq!(
        (defaults.date_format, defaults.decimal, defaults.notice_check, defaults.iuv_aux_digit),
        (DateFormat::DaySlashes, Decimal::Comma, NumberCheck::Enforce, None)
    );
    let custom = mapping("date_format = \"yyyy-mm-dd\"\ndecimal = \"cents\"\nnotice_check = \"warn\"");
    assert_eq!(
        (custom.date_format, custom.decimal, custom.notice_check),
        (DateFormat::Iso, Decimal::Cents, NumberCheck::WarnOnly)
    );
    for (format, expected) in [
        ("dd-mm-yyyy", DateFormat::DayDashes),
        ("dd.mm.yyyy", DateFormat::DayDots),
        ("dd/mm/yyyy", DateFormat::DaySlashes),
    ] {
        assert_eq!(mapping(&format!("date_format = {format:?}")).date_format, expected);
        assert_eq!(expected.as_str(), format);
    }
    assert_eq!(mapping("decimal = \"point\"").decimal, Decimal::Point);
    for refused in ["separator = \";\"", "decimal = \"dot\"", "date_format = \"mm/dd/yyyy\"", "notice_check = \"off\""]
    {
        assert!(toml::from_str::<Mapping>(&format!("{refused}\n{MAPPING}")).is_err(), "{refused}");
    }
    let unknown_column = format!("{MAPPING}\niban = \"IBAN\"");
    assert!(toml::from_str::<Mapping>(&unknown_column).is_err());
}

#[test]
fn missing_and_repeated_columns_stop_the_file() {
    let header = "Codice Fiscale;Numero Avviso;Importo;Anagrafica\r\n";
    let error = MappedRows::open(header.as_bytes(), &mapping("")).expect_err("refused");
    let MappedError::MissingColumns { names } = &error else { panic!("{error}") };
    assert_eq!(
        names,
        &["Importo Dovuto", "Data Scadenza", "Causale Versamento", "Numero Rata", "Totale Rate", "Anno Tributo"]
    );
    assert!(error.to_string().contains("missing from the header: Importo Dovuto, Data Scadenza"), "{error}");

    let repeated = "cf;avviso;importo;CF \r\n";
    let error = MappedRows::open(repeated.as_bytes(), &mapping_with_creditor("creditor = \"80000000010\"", ""));
    assert!(matches!(&error, Err(MappedError::DuplicateColumns { names }) if names == &["cf"]), "{error:?}");
}

#[test]
fn a_creditor_column_is_read_per_row() {
    let text = "cf,avviso,importo,ente\n\
                BNCLRA85C52F205V,301202500000010187,\"1.020,99\",02438750586\n\
                BNCLRA85C52F205V,301202500000010288,\"10,00\",02438750587\n\
                BNCLRA85C52F205V,301202500000010389,\"10,00\"\n";
    let (items, _) = read(text.as_bytes(), &mapping_with_creditor("", "creditor = \"ENTE\""));
    let creditor = items[0].as_ref().map(|notice| notice.creditor.as_str());
    assert_eq!(creditor, Ok("02438750586"));
    let reason = "\"02438750587\" is not an institution's fiscal code: check digit is 7 but the first 10 digits give 6";
    assert_eq!(items[1], bad(3, "ente", reason));
    // A short row reads as empty cells.
    let reason =
        "\"\" is not an institution's fiscal code: an institution fiscal code has 11 digits, this one has 0 characters";
    assert_eq!(items[2], bad(4, "ente", reason));
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
    let mut text = String::from("cf;avviso;importo\n");
    while text.len() < 100 * 1024 {
        text.push_str("BNCLRA85C52F205V;3012 0250 0000 0101 87;150,00\n");
    }
    let mapping = mapping_with_creditor("creditor = \"80000000010\"", "");
    let mut rows = MappedRows::open(Failing { good: text.as_bytes() }, &mapping).expect("opens");
    let read: Vec<_> = rows.by_ref().collect();
    let (last, before) = read.split_last().expect("items");
    assert!(before.len() > 1000, "{} rows before the failure", before.len());
    assert!(before.iter().all(|item| matches!(item, Ok(Ok(notice)) if notice.amount.cents() == 15_000)));
    assert!(matches!(last, Err(MappedError::Csv(CsvReadError::ReadAt { .. }))), "{last:?}");
    assert!(rows.next().is_none());
}
