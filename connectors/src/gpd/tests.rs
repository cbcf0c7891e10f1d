//! Tests of the GPD reader: the shared samples, refusals, truncation, per-option errors, streaming.

use std::cell::Cell;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use serde_json::{json, Value};

use super::window::{Resume, Window};
use super::*;
use crate::domain::{EuroCents, NoticeNumber, OrgFiscalCode};

const SAMPLE_JSON: &[u8] = include_bytes!("../../tests/fixtures/gpd_tari_2025.json");
const SAMPLE_ZIP: &[u8] = include_bytes!("../../tests/fixtures/gpd_tari_2025.zip");

/// Reads `bytes` and returns the notices with the outcome.
fn read_bytes(bytes: &[u8], check: NoticeCheck) -> (Vec<PaymentNotice>, Result<GpdSummary, GpdFailure>) {
    let mut notices = Vec::new();
    let outcome = read(Cursor::new(bytes), check, |notice| notices.push(notice));
    (notices, outcome)
}

fn read_ok(bytes: &[u8], check: NoticeCheck) -> (Vec<PaymentNotice>, GpdSummary) {
    let (notices, outcome) = read_bytes(bytes, check);
    (notices, outcome.unwrap())
}

fn read_failing(bytes: &[u8]) -> (Vec<PaymentNotice>, GpdFailure) {
    let (notices, outcome) = read_bytes(bytes, NoticeCheck::Enforce);
    (notices, outcome.unwrap_err())
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A valid option: 300,00 € for creditor 80000000010 with a TEFA transfer, due 31 July 2025.
fn option(nav: &str) -> Value {
    json!({
        "nav": nav,
        "iuv": &nav[1..],
        "amount": 30000,
        "description": "TARI 2025",
        "isPartialPayment": false,
        "dueDate": "2025-07-31T23:59:59",
        "transfer": [
            {"idTransfer": "1", "amount": 28572, "organizationFiscalCode": "80000000010"},
            {"idTransfer": "2", "amount": 1428, "organizationFiscalCode": "80000000580"}
        ],
        "paymentOptionMetadata": [{"key": "annoRiferimento", "value": "2025"}]
    })
}

fn position(options: Vec<Value>) -> Value {
    json!({"iupd": "X-1", "type": "F", "fiscalCode": "BNCLRA85C52F205V", "fullName": "Laura Bianchi", "paymentOption": options})
}

fn upload(positions: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "paymentPositions": positions })).unwrap()
}

const VALID: &str = "301202500000000180";
const OTHER_VALID: &str = "301202500000000281";

struct Expected {
    debtor: &'static str,
    name: &'static str,
    notice: &'static str,
    cents: i64,
    due: (i16, i8, i8),
    description: &'static str,
    installment: Option<(u32, u32)>,
}

fn expected(debtor: &'static str, name: &'static str, notice: &'static str, rata: Option<(u32, u32)>) -> Expected {
    let (cents, due, description) = match rata {
        None => (30000, (2025, 7, 31), "TARI 2025 - unica soluzione"),
        Some((1, _)) => (15000, (2025, 7, 31), "TARI 2025 - rata 1 di 2"),
        Some(_) => (15000, (2025, 12, 2), "TARI 2025 - rata 2 di 2"),
    };
    Expected { debtor, name, notice, cents, due, description, installment: rata }
}

fn check_sample(notices: &[PaymentNotice], summary: &GpdSummary) {
    const LAURA: (&str, &str) = ("BNCLRA85C52F205V", "Laura Bianchi");
    const GIUSEPPE: (&str, &str) = ("VRDGPP50T01H501B", "Giuseppe Verdi");
    const ANNA: (&str, &str) = ("SPSNMR79L71F839Q", "Anna Maria Esposito");
    let table = [
        expected(LAURA.0, LAURA.1, "301202500000000180", None),
        expected(LAURA.0, LAURA.1, "301202500000000281", Some((1, 2))),
        expected(LAURA.0, LAURA.1, "301202500000000382", Some((2, 2))),
        expected(GIUSEPPE.0, GIUSEPPE.1, "301202500000000483", None),
        expected(GIUSEPPE.0, GIUSEPPE.1, "301202500000000584", Some((1, 2))),
        expected(GIUSEPPE.0, GIUSEPPE.1, "301202500000000685", Some((2, 2))),
        expected(ANNA.0, ANNA.1, "301202500000000786", None),
    ];
    assert_eq!(notices.len(), table.len());
    let creditor: OrgFiscalCode = "80000000010".parse().unwrap();
    for (notice, want) in notices.iter().zip(&table) {
        let (year, month, day) = want.due;
        let wanted = PaymentNotice {
            debtor_fiscal_code: want.debtor.to_owned(),
            debtor_name: Some(want.name.to_owned()),
            creditor: creditor.clone(),
            notice_number: want.notice.parse::<NoticeNumber>().unwrap(),
            amount: EuroCents::from_cents(want.cents).unwrap(),
            due_date: Some(jiff::civil::date(year, month, day)),
            description: want.description.to_owned(),
            installment: want.installment,
            year: Some(2025),
        };
        assert_eq!(notice, &wanted);
    }
    let summary_wanted = GpdSummary { positions: 3, records: 7, errors: vec![], warnings: vec![] };
    assert_eq!(summary, &summary_wanted);
}

#[test]
fn shared_sample_json_gives_its_seven_notices() {
    let (notices, summary) = read_ok(SAMPLE_JSON, NoticeCheck::Enforce);
    check_sample(&notices, &summary);
}

#[test]
fn shared_sample_zip_gives_the_same_notices() {
    assert!(SAMPLE_ZIP.starts_with(b"PK\x03\x04"));
    let (notices, summary) = read_ok(SAMPLE_ZIP, NoticeCheck::Enforce);
    check_sample(&notices, &summary);
}

#[test]
fn input_is_read_from_where_it_stands() {
    let mut input = Cursor::new([b"junk".as_slice(), SAMPLE_ZIP].concat());
    input.seek(SeekFrom::Start(4)).unwrap();
    let mut count = 0;
    let summary = read(input, NoticeCheck::Enforce, |_| count += 1).unwrap();
    assert_eq!((count, summary.records), (7, 7));
}

#[test]
fn zip_must_hold_exactly_one_entry() {
    let two = zip_of(&[("a.json", SAMPLE_JSON), ("b.json", SAMPLE_JSON)]);
    let none = zip_of(&[]);
    for (bytes, entries) in [(two, 2), (none, 0)] {
        let (notices, failure) = read_failing(&bytes);
        assert!(notices.is_empty());
        assert!(matches!(failure.source, GpdError::ZipEntries { found } if found == entries), "{failure}");
    }
    let one = zip_of(&[("whatever.txt", SAMPLE_JSON)]);
    assert_eq!(read_ok(&one, NoticeCheck::Enforce).1.records, 7);
}

#[test]
fn damaged_zip_is_refused() {
    let (_, failure) = read_failing(&SAMPLE_ZIP[..SAMPLE_ZIP.len() / 2]);
    assert!(matches!(failure.source, GpdError::Zip { .. }), "{failure}");
    assert!(failure.to_string().starts_with("cannot read the zip archive"), "{failure}");
}

#[test]
fn files_that_are_not_gpd_are_refused_clearly() {
    let csv = b"idPendenza,idDominio,numeroAvviso\n1,80000000010,301000000000012373\n";
    for (bytes, start) in [
        (csv.as_slice(), "idPendenza,idDom"),
        (b"%PDF-1.7\n%\xe2\xe3", "%PDF-1.7\\n%\\xe2\\xe3"),
        (b"  \n[{\"iupd\": 1}]", "[{\\\"iupd\\\": 1}]"),
        (b"\xEF\xBB\xBF<xml/>", "<xml/>"),
        (b"PK\x01\x02 not a local header", "PK\\x01\\x02 not a local"),
    ] {
        let (_, failure) = read_failing(bytes);
        match &failure.source {
            GpdError::NotGpd { start: found } => assert_eq!(found, start),
            other => panic!("{bytes:?}: {other}"),
        }
    }
    let (_, failure) = read_failing(b"");
    assert!(matches!(failure.source, GpdError::Empty));
    let (_, failure) = read_failing(b" \r\n\t ");
    assert!(matches!(failure.source, GpdError::Empty));
    let (_, failure) = read_failing(b"{\"debtPositions\": [], \"x\": {\"paymentPositions\": []}}");
    assert!(matches!(failure.source, GpdError::NoPaymentPositions));
    let (_, failure) = read_failing(csv);
    assert_eq!(
        failure.source.to_string(),
        "not a GPD upload: it starts with \"idPendenza,idDom\", but a GPD upload is a JSON object \
         {\"paymentPositions\": [...]}, plain or zipped"
    );
}

#[test]
fn other_keys_a_bom_and_blank_lines_are_accepted() {
    let body =
        format!("\u{FEFF}\n\n  {{\"version\": {{\"a\": [1, 2]}}, \"paymentPositions\": {}, \"end\": null}}\n", {
            let positions = vec![position(vec![option(VALID)])];
            serde_json::to_string(&positions).unwrap()
        });
    let (notices, summary) = read_ok(body.as_bytes(), NoticeCheck::Enforce);
    assert_eq!((notices.len(), summary.positions), (1, 1));
}

/// Cuts the sample inside its third position (plain and zipped): the first two positions'
/// six notices are kept, and the error says two positions were complete and where it broke.
#[test]
fn truncated_json_keeps_earlier_notices_and_says_where() {
    let cut = find(SAMPLE_JSON, b"SPSNMR79L71F839Q");
    let truncated = &SAMPLE_JSON[..cut];
    let zipped = zip_of(&[("gpd.json", truncated)]);
    for bytes in [truncated, zipped.as_slice()] {
        let (notices, failure) = read_failing(bytes);
        assert_eq!(notices.len(), 6);
        assert_eq!(failure.summary.records, 6);
        assert_eq!(failure.summary.positions, 2);
        match &failure.source {
            GpdError::Json { positions_read: 2, offset, source } => {
                assert!(source.is_eof(), "{source}");
                assert_eq!(*offset, cut as u64);
            }
            other => panic!("{other}"),
        }
        let message = failure.to_string();
        assert!(message.contains(&format!("at byte {cut}, after 2 complete payment positions")), "{message}");
        assert!(message.ends_with("(6 notices already read)"), "{message}");
    }
}

#[test]
fn malformed_json_ends_the_read_where_it_breaks() {
    let good = serde_json::to_string(&position(vec![option(VALID)])).unwrap();
    for (text, positions_read) in [
        (format!("{{\"paymentPositions\": [{good}, {good} {good}]}}"), 2),
        (format!("{{\"paymentPositions\": [{good}, {{\"iupd\": 'x'}}]}}"), 1),
        (format!("{{\"paymentPositions\": [{good}]}} trailing"), 1),
        (format!("{{\"paymentPositions\": [{good}], \"paymentPositions\": []}}"), 1),
        ("{\"paymentPositions\": {}}".to_owned(), 0),
        ("{paymentPositions: []}".to_owned(), 0),
    ] {
        let (notices, failure) = read_failing(text.as_bytes());
        assert_eq!(notices.len() as u64, positions_read, "{text}");
        match failure.source {
            GpdError::Json { positions_read: read, offset, .. } => {
                assert_eq!(read, positions_read, "{text}");
                assert!(offset > 0 && offset <= text.len() as u64, "{text}");
            }
            other => panic!("{text}: {other}"),
        }
    }
}

/// Input whose reads fail once `limit` bytes have been read, like a disk or share going away.
struct FailingAfter {
    inner: Cursor<Vec<u8>>,
    limit: u64,
}

impl Read for FailingAfter {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let left = self.limit.saturating_sub(self.inner.position());
        if left == 0 {
            return Err(std::io::Error::other("share unmounted"));
        }
        let end = buffer.len().min(usize::try_from(left).unwrap());
        self.inner.read(&mut buffer[..end])
    }
}

impl Seek for FailingAfter {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }
}

#[test]
fn read_errors_keep_earlier_notices_and_say_where() {
    let limit = find(SAMPLE_JSON, b"SPSNMR79L71F839Q") as u64;
    let input = FailingAfter { inner: Cursor::new(SAMPLE_JSON.to_vec()), limit };
    let mut count = 0;
    let failure = read(input, NoticeCheck::Enforce, |_| count += 1).unwrap_err();
    assert_eq!((count, failure.summary.records), (6, 6));
    match &failure.source {
        GpdError::Read { positions_read: 2, offset, source } => {
            assert_eq!(*offset, limit);
            assert_eq!(source.to_string(), "share unmounted");
        }
        other => panic!("{other}"),
    }
    let input = FailingAfter { inner: Cursor::new(SAMPLE_JSON.to_vec()), limit: 0 };
    let failure = read(input, NoticeCheck::Enforce, |_| count += 1).unwrap_err();
    assert!(matches!(failure.source, GpdError::Read { positions_read: 0, offset: 0, .. }), "{failure}");
}

#[test]
fn notice_number_from_nav_or_iuv() {
    let mut from_iuv = option(VALID);
    from_iuv["nav"] = Value::Null;
    let mut iuv_only = option(VALID);
    iuv_only.as_object_mut().unwrap().remove("nav");
    let mut spaced = option(VALID);
    spaced["nav"] = json!("3012 0250 0000 0001 80");
    for option in [from_iuv, iuv_only, spaced] {
        let (notices, summary) = read_ok(&upload(vec![position(vec![option])]), NoticeCheck::Enforce);
        assert_eq!(summary.errors, vec![]);
        assert_eq!(notices[0].notice_number.as_str(), VALID);
    }
}

/// A bad notice number costs only its option; in `WarnOnly`, wrong check digits alone become
/// a warning and the notice is produced, while any other fault stays an error.
#[test]
fn bad_notice_numbers_are_errors_or_warnings_by_mode() {
    let check_digits = "nav \"301202500000000181\" is not a valid notice number: \
                        check digits are 81 but the first 16 digits give 80";
    let mut short_iuv = option(VALID);
    short_iuv["nav"] = Value::Null;
    short_iuv["iuv"] = json!("0120250000000018");
    let length = "\"3\" + iuv \"30120250000000018\" is not a valid notice number: \
                  a notice number has 18 digits, this one has 17 characters (spaces not counted)";
    let error =
        |field: &str, reason: &str| RecordError { location: 1, field: field.to_owned(), reason: reason.to_owned() };
    let nav_field = "paymentOption[1].nav";
    let rows = [
        (NoticeCheck::Enforce, option("301202500000000181"), None, Some(error(nav_field, check_digits)), None),
        (
            NoticeCheck::WarnOnly,
            option("301202500000000181"),
            Some("301202500000000181"),
            None,
            Some(error(nav_field, check_digits)),
        ),
        (NoticeCheck::Enforce, short_iuv.clone(), None, Some(error("paymentOption[1].iuv", length)), None),
        (NoticeCheck::WarnOnly, short_iuv, None, Some(error("paymentOption[1].iuv", length)), None),
    ];
    for (check, bad, produced, wanted_error, wanted_warning) in rows {
        let bytes = upload(vec![position(vec![option(VALID), bad, option(OTHER_VALID)])]);
        let (notices, summary) = read_ok(&bytes, check);
        let numbers: Vec<&str> = notices.iter().map(|n| n.notice_number.as_str()).collect();
        let wanted: Vec<&str> = [Some(VALID), produced, Some(OTHER_VALID)].into_iter().flatten().collect();
        assert_eq!(numbers, wanted, "{check:?}");
        assert_eq!(summary.errors, wanted_error.into_iter().collect::<Vec<_>>(), "{check:?}");
        assert_eq!(summary.warnings, wanted_warning.into_iter().collect::<Vec<_>>(), "{check:?}");
        assert_eq!(summary.records, numbers.len() as u64);
    }
}

#[test]
fn amount_not_the_sum_of_transfers_costs_only_that_option() {
    let mut bad = option(OTHER_VALID);
    bad["transfer"][1]["amount"] = json!(1427);
    let bytes = upload(vec![position(vec![bad, option(VALID)]), position(vec![option(VALID)])]);
    let (notices, summary) = read_ok(&bytes, NoticeCheck::Enforce);
    assert_eq!(notices.len(), 2);
    assert_eq!((summary.positions, summary.records), (2, 2));
    let error = RecordError {
        location: 1,
        field: "paymentOption[0].amount".to_owned(),
        reason: "amount is 30000 cents but its transfers add up to 29999 cents".to_owned(),
    };
    assert_eq!(summary.errors, vec![error]);
}

/// Each row breaks one thing in the second option of the first position (or the position
/// itself); the other option and the second position still give their notices.
#[test]
fn each_bad_field_is_a_record_error_for_its_option() {
    type Breaker = fn(&mut Value);
    let rows: [(Breaker, &str, &str); 12] = [
        (|o| o["amount"] = json!(0), "paymentOption[1].amount", "amount is zero but pagoPA amounts are at least 0,01 €"),
        (|o| o["amount"] = json!(300.0), "paymentOption[1].amount", "invalid type: floating point `300.0`, expected i64"),
        (|o| o["amount"] = json!("30000"), "paymentOption[1].amount", "invalid type: string \"30000\", expected i64"),
        (
            |o| o["transfer"][0]["organizationFiscalCode"] = json!("80000000011"),
            "paymentOption[1].transfer[0].organizationFiscalCode",
            "\"80000000011\": check digit is 1 but the first 10 digits give 0",
        ),
        (|o| o["transfer"] = json!([]), "paymentOption[1].transfer", "the option has no transfers, so no creditor"),
        (|o| o["transfer"][1] = json!(5), "paymentOption[1].transfer[1]", "expected a JSON object, found a number"),
        (
            |o| o["dueDate"] = json!("31/07/2025"),
            "paymentOption[1].dueDate",
            "\"31/07/2025\" is not a date or a date-time: failed to parse four digit integer as year: invalid digit, expected 0-9 but got /",
        ),
        (|o| o["description"] = json!("  "), "paymentOption[1].description", "the description is empty"),
        (|o| o["isPartialPayment"] = json!("yes"), "paymentOption[1].isPartialPayment", "invalid type: string \"yes\", expected a boolean"),
        (|o| *o = json!([]), "paymentOption[1]", "expected a JSON object, found an array"),
        (|o| o["nav"] = json!(301202500000000281_u64), "paymentOption[1].nav", "expected a string, found a number"),
        (|o| o["transfer"] = json!({}), "paymentOption[1].transfer", "expected an array, found an object"),
    ];
    for (breaker, field, reason) in rows {
        let mut bad = option(OTHER_VALID);
        breaker(&mut bad);
        let bytes = upload(vec![position(vec![option(VALID), bad]), position(vec![option(VALID)])]);
        let (notices, summary) = read_ok(&bytes, NoticeCheck::Enforce);
        assert_eq!(notices.len(), 2, "{field}");
        let error = RecordError { location: 1, field: field.to_owned(), reason: reason.to_owned() };
        assert_eq!(summary.errors, vec![error]);
    }
}

#[test]
fn a_position_without_debtor_or_options_is_one_record_error() {
    let mut no_debtor = position(vec![option(VALID), option(OTHER_VALID)]);
    no_debtor.as_object_mut().unwrap().remove("fiscalCode");
    let rows = [
        (no_debtor, "fiscalCode", "missing"),
        (position(vec![]), "paymentOption", "the position has no payment options"),
        (json!("X-1"), "position", "a payment position is a JSON object, this is a string"),
    ];
    for (bad, field, reason) in rows {
        let (notices, summary) = read_ok(&upload(vec![position(vec![option(VALID)]), bad]), NoticeCheck::Enforce);
        assert_eq!(notices.len(), 1);
        let error = RecordError { location: 2, field: field.to_owned(), reason: reason.to_owned() };
        assert_eq!(summary.errors, vec![error]);
    }
}

#[test]
fn installments_are_numbered_among_partial_options_in_file_order() {
    let partial = |nav: &str, partial: bool| {
        let mut option = option(nav);
        option["isPartialPayment"] = json!(partial);
        option
    };
    let mut broken = partial("301202500000000382", true);
    broken["amount"] = json!(1);
    let options =
        vec![partial("301202500000000281", true), partial(VALID, false), broken, partial("301202500000000483", true)];
    let (notices, summary) = read_ok(&upload(vec![position(options)]), NoticeCheck::Enforce);
    let installments: Vec<_> = notices.iter().map(|n| n.installment).collect();
    assert_eq!(installments, [Some((1, 3)), None, Some((3, 3))]);
    assert_eq!(summary.errors.len(), 1);
}

#[test]
fn due_date_is_the_local_day() {
    for (due, day) in [
        (json!("2025-07-31T23:59:59"), Some((2025, 7, 31))),
        (json!("2025-07-31T23:59:59.999"), Some((2025, 7, 31))),
        (json!("2025-07-31"), Some((2025, 7, 31))),
        (json!("2025-07-31T21:59:59Z"), Some((2025, 7, 31))),
        (json!("2025-07-31T22:00:00Z"), Some((2025, 8, 1))),
        (json!("2025-12-02T22:59:59.000Z"), Some((2025, 12, 2))),
        (json!("2025-12-02T23:00:00Z"), Some((2025, 12, 3))),
        (json!("2025-12-02T23:59:59+01:00"), Some((2025, 12, 2))),
        (Value::Null, None),
    ] {
        let mut option = option(VALID);
        option["dueDate"] = due.clone();
        let (notices, _) = read_ok(&upload(vec![position(vec![option])]), NoticeCheck::Enforce);
        let wanted = day.map(|(y, m, d)| jiff::civil::date(y, m, d));
        assert_eq!(notices[0].due_date, wanted, "{due}");
    }
}

#[test]
fn year_comes_from_metadata_and_a_bad_one_is_a_warning() {
    let rows = [
        (json!([{"key": "annoRiferimento", "value": "2024"}]), Some(2024), None),
        (json!([{"key": "tipo", "value": "TARI"}, {"key": "annoRiferimento", "value": " 2023 "}]), Some(2023), None),
        (json!([]), None, None),
        (Value::Null, None, None),
        (
            json!([{"key": "annoRiferimento", "value": "2025/26"}]),
            None,
            Some("annoRiferimento is \"2025/26\", not a 4-digit year"),
        ),
        (
            json!([{"key": "annoRiferimento", "value": "+202"}]),
            None,
            Some("annoRiferimento is \"+202\", not a 4-digit year"),
        ),
    ];
    for (metadata, year, warning) in rows {
        let mut option = option(VALID);
        option["paymentOptionMetadata"] = metadata.clone();
        let (notices, summary) = read_ok(&upload(vec![position(vec![option])]), NoticeCheck::Enforce);
        assert_eq!(notices[0].year, year, "{metadata}");
        let warnings: Vec<&str> = summary.warnings.iter().map(|w| w.reason.as_str()).collect();
        assert_eq!(warnings, warning.into_iter().collect::<Vec<_>>(), "{metadata}");
        assert!(summary.warnings.iter().all(|w| w.field == "paymentOption[0].paymentOptionMetadata[0].value"
            || w.field == "paymentOption[0].paymentOptionMetadata[1].value"));
    }
}

/// Input that tells the test how far it has been read.
struct Progress {
    inner: Cursor<Vec<u8>>,
    read: Rc<Cell<u64>>,
}

impl Read for Progress {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.read.set(self.inner.position());
        Ok(read)
    }
}

impl Seek for Progress {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }
}

/// 50,000 positions (about 20 MB): every notice reaches the callback, and the first one
/// arrives when under 1% of the input has been read, so positions are not collected first.
#[test]
fn large_input_is_streamed_position_by_position() {
    const POSITIONS: u64 = 50_000;
    let template = serde_json::to_vec(&position(vec![option(VALID)])).unwrap();
    let mut bytes = b"{\"paymentPositions\": [".to_vec();
    for index in 0..POSITIONS {
        if index > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(&template);
    }
    bytes.extend_from_slice(b"]}");
    let total = bytes.len() as u64;
    let read_so_far = Rc::new(Cell::new(0));
    let input = Progress { inner: Cursor::new(bytes), read: Rc::clone(&read_so_far) };
    let mut count = 0u64;
    let mut read_at_first_notice = 0;
    let summary = read(input, NoticeCheck::Enforce, |notice| {
        if count == 0 {
            read_at_first_notice = read_so_far.get();
        }
        count += 1;
        assert_eq!(notice.notice_number.as_str(), VALID);
    })
    .unwrap();
    assert_eq!(count, POSITIONS);
    assert_eq!((summary.positions, summary.records), (POSITIONS, POSITIONS));
    assert!(read_at_first_notice < total / 100, "{read_at_first_notice} of {total} bytes read before the first notice");
}

/// The serde path alone, from the start: the reference the fast path must agree with.
fn read_serde_only<R: Read>(input: R) -> (Vec<PaymentNotice>, Result<GpdSummary, GpdFailure>) {
    let mut notices = Vec::new();
    let mut reader =
        Reader { check: NoticeCheck::Enforce, each: |notice| notices.push(notice), summary: GpdSummary::default() };
    let mut window = Window::new(input);
    let outcome = window.open_object().and_then(|()| reader.replay(window.resume(Resume::Start), Resume::Start));
    let summary = reader.summary;
    (notices, outcome.map(|()| summary.clone()).map_err(|source| GpdFailure { source, summary }))
}

/// Reading `bytes` gives the same notices, summary and failure (same message: offset, line and
/// column included) as the serde path alone.
fn check_agrees_with_serde(bytes: &[u8]) {
    let (notices, outcome) = read_bytes(bytes, NoticeCheck::Enforce);
    let (serde_notices, serde_outcome) = read_serde_only(bytes);
    let text = String::from_utf8_lossy(bytes);
    assert_eq!(notices, serde_notices, "{text}");
    match (outcome, serde_outcome) {
        (Ok(summary), Ok(serde_summary)) => assert_eq!(summary, serde_summary, "{text}"),
        (Err(failure), Err(serde_failure)) => {
            assert_eq!(failure.to_string(), serde_failure.to_string(), "{text}");
            assert_eq!(failure.summary, serde_failure.summary, "{text}");
        }
        (outcome, serde_outcome) => panic!("{text}: {outcome:?} but the serde path gives {serde_outcome:?}"),
    }
}

/// Three positions, one with a record error: on one line (compact) and pretty-printed with
/// LF and CRLF line ends.
fn small_uploads() -> [Vec<u8>; 3] {
    let mut bad = option(OTHER_VALID);
    bad["amount"] = json!(1);
    let positions = json!({"paymentPositions": [position(vec![option(VALID)]), position(vec![bad]), position(vec![option(VALID)])]});
    let pretty = serde_json::to_string_pretty(&positions).unwrap();
    [serde_json::to_vec(&positions).unwrap(), pretty.clone().into_bytes(), pretty.replace('\n', "\r\n").into_bytes()]
}

#[test]
fn truncated_anywhere_reads_as_the_serde_path_does() {
    for (bytes, step) in small_uploads().into_iter().zip([1, 3, 3]) {
        for cut in (0..=bytes.len()).step_by(step) {
            check_agrees_with_serde(&bytes[..cut]);
        }
    }
}

#[test]
fn any_byte_broken_reads_as_the_serde_path_does() {
    for bytes in small_uploads() {
        for at in (0..bytes.len()).step_by(7) {
            for replacement in [b'}', b',', b'"', 0xFF] {
                let mut broken = bytes.clone();
                broken[at] = replacement;
                check_agrees_with_serde(&broken);
            }
        }
    }
}

#[test]
fn read_errors_anywhere_read_as_the_serde_path_does() {
    let [_, pretty, _] = small_uploads();
    // From 4 bytes on: a zip is told by its first 4 bytes, before the JSON is read.
    for limit in 4..=pretty.len() as u64 {
        let failing = || FailingAfter { inner: Cursor::new(pretty.clone()), limit };
        let mut notices = Vec::new();
        let outcome = read(failing(), NoticeCheck::Enforce, |notice| notices.push(notice));
        let (serde_notices, serde_outcome) = read_serde_only(failing());
        assert_eq!(notices, serde_notices, "{limit}");
        let message = |outcome: Result<GpdSummary, GpdFailure>| outcome.map_err(|failure| failure.to_string());
        assert_eq!(message(outcome), message(serde_outcome), "{limit}");
    }
}

/// Errors after the window has slid many times, and after a position larger than the window,
/// say the same line, column and offset as the serde path.
#[test]
fn errors_far_into_the_input_read_as_the_serde_path_does() {
    let good = serde_json::to_string_pretty(&position(vec![option(VALID)])).unwrap();
    let mut large = position(vec![option(VALID)]);
    large["fullName"] = json!("Laura\n".repeat(50_000));
    let large = serde_json::to_string_pretty(&large).unwrap();
    let many = vec![good.as_str(); 1_000].join(",\n");
    for tail in ["]}", "]} x", ", x]}", "\n,\n"] {
        check_agrees_with_serde(format!("{{\"paymentPositions\": [\n{many}{tail}").as_bytes());
        check_agrees_with_serde(format!("{{\"paymentPositions\": [{good},\n{large}\n{tail}").as_bytes());
    }
}

/// Shapes the fast path leaves to the serde path, from the start or after some positions.
#[test]
fn other_shapes_read_as_the_serde_path_does() {
    let good = serde_json::to_string(&position(vec![option(VALID)])).unwrap();
    let nested = |depth: usize| format!("{{\"x\": {}{}, \"fiscalCode\": \"A\"}}", "[".repeat(depth), "]".repeat(depth));
    let texts = [
        "{\"paymentPositions\": []}".to_owned(),
        " { \"paymentPositions\" : [ ] } \n".to_owned(),
        format!("{{\"version\": 1, \"paymentPositions\": [{good}, {good}]}}"),
        format!("{{\"paymentPositions\": [{good}, {good}], \"version\": 1}}"),
        format!("{{\"paymentPositions\": [{good}, \"X-1\", {good}, [], 7, null, {good}]}}"),
        format!("{{\"paymentPositions\": [{good}], \"paymentPositions\": [{good}]}}"),
        format!("{{\"paymentPositions\": [{good},\n{good}\n,\n\n{good}]}}"),
        format!("{{\"paymentPositions\": [{good},]}}"),
        format!("{{\"paymentPositions\": [{good}{good}]}}"),
        format!("{{\"paymentPositions\": [{good}]}}{{}}"),
        format!("{{\"payment\\u0050ositions\": [{good}]}}"),
        format!("{{\"paymentPositions\": [{good}, {}, {good}]}}", nested(99)),
        format!("{{\"paymentPositions\": [{good}, {}, {good}]}}", nested(100)),
        format!("{{\"paymentPositions\": [{good},\n{}, {good}]}}", nested(124)),
        format!("{{\"paymentPositions\": [{good}, {}, {good}]}}", nested(125)),
        format!("{{\"paymentPositions\": [{good},\n{}, {good}]}}", nested(126)),
        format!("{{\"paymentPositions\": [{good}, {{\"a\": \"\\ud800\"}}, {good}]}}"),
        format!("{{\"paymentPositions\": [{good}, {{\"a\": 1e400}}, {good}]}}"),
    ];
    for text in texts {
        check_agrees_with_serde(text.as_bytes());
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|window| window == needle).unwrap()
}
