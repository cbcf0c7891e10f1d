//! Tests of the ANPR XML reader on whole files: the shared sample and one fixture per
//! generator option against their expected JSON, gzip sniffing, truncation, refusals,
//! triage of subjects (duplicates, deceased, cancelled, rejected) and field decoding.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use jiff::civil::{date, Date};
use serde_json::Value;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/anpr/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn expected_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn read_bytes(bytes: &[u8]) -> (Vec<Entry>, Result<AnprSummary, AnprFailure>) {
    let mut entries = Vec::new();
    let outcome = read_xml(bytes, |entry| entries.push(entry));
    (entries, outcome)
}

fn read_ok(bytes: &[u8]) -> (Vec<Entry>, AnprSummary) {
    let (entries, outcome) = read_bytes(bytes);
    let summary = outcome.unwrap();
    assert_eq!(summary, count(&entries, summary.answers), "the summary counts what was handed over");
    (entries, summary)
}

fn read_failing(bytes: &[u8]) -> (Vec<Entry>, AnprFailure) {
    let (entries, outcome) = read_bytes(bytes);
    let failure = outcome.unwrap_err();
    assert_eq!(failure.summary, count(&entries, failure.summary.answers), "the failure counts what was handed over");
    (entries, failure)
}

fn count(entries: &[Entry], answers: u64) -> AnprSummary {
    let mut summary = AnprSummary { answers, ..AnprSummary::default() };
    for entry in entries {
        match entry {
            Entry::Resident(_) => summary.residents += 1,
            Entry::Skipped(_) => summary.skipped += 1,
            Entry::Rejected(_) => summary.rejected += 1,
        }
    }
    summary
}

fn residents(entries: &[Entry]) -> BTreeMap<String, Resident> {
    let mut found = BTreeMap::new();
    for entry in entries {
        if let Entry::Resident(resident) = entry {
            assert!(found.insert(resident.fiscal_code.clone(), resident.clone()).is_none(), "{resident:?} twice");
        }
    }
    found
}

fn skipped(entries: &[Entry]) -> Vec<&SkippedSubject> {
    entries.iter().filter_map(|entry| if let Entry::Skipped(skipped) = entry { Some(skipped) } else { None }).collect()
}

fn skipped_for(entries: &[Entry], wanted: fn(&SkipReason) -> bool) -> BTreeSet<String> {
    skipped(entries).into_iter().filter(|s| wanted(&s.reason)).map(|s| s.fiscal_code.clone()).collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn json_date(value: &Value) -> Option<Date> {
    value.as_str().map(|text| text.parse().unwrap())
}

/// Checks a read of a generated file against the generator's expected JSON: every distinct
/// subject handed over once (as a resident or skipped as deceased/cancelled), duplicates
/// skipped, and every resident's fields.
fn check_against_expected(entries: &[Entry], summary: &AnprSummary, expected: &Value) {
    let name = expected["file"].as_str().unwrap();
    assert_eq!(summary.answers, expected["answers"].as_u64().unwrap(), "{name}: answers");
    assert_eq!(summary.rejected, 0, "{name}: {entries:?}");
    let deceased = skipped_for(entries, |reason| *reason == SkipReason::Deceased);
    assert_eq!(deceased, strings(&expected["deceased"]), "{name}: deceased");
    let cancelled = skipped_for(entries, |reason| matches!(reason, SkipReason::Cancelled { code } if code == "8"));
    assert_eq!(cancelled, strings(&expected["cancelled_other"]), "{name}: cancelled");
    let duplicates = skipped_for(entries, |reason| matches!(reason, SkipReason::Duplicate { .. }));
    assert!(strings(&expected["duplicated_codici_fiscali"]).is_subset(&duplicates), "{name}: duplicates");
    for skip in skipped(entries) {
        if let SkipReason::Duplicate { first_location } = skip.reason {
            assert!(first_location < skip.location, "{name}: {skip:?}");
        }
    }
    let subjects = expected["subjects"].as_array().unwrap();
    let distinct = subjects.len() as u64;
    let repeats = skipped(entries).iter().filter(|s| matches!(s.reason, SkipReason::Duplicate { .. })).count();
    assert_eq!(summary.residents + summary.skipped - repeats as u64, distinct, "{name}: distinct subjects");
    let residents = residents(entries);
    for subject in subjects {
        let fiscal_code = subject["codiceFiscale"].as_str().unwrap();
        if deceased.contains(fiscal_code) || cancelled.contains(fiscal_code) {
            assert!(!residents.contains_key(fiscal_code), "{name}: {fiscal_code} is not a resident");
            continue;
        }
        let resident = &residents[fiscal_code];
        check_resident(resident, subject, name);
    }
}

fn check_resident(resident: &Resident, subject: &Value, file: &str) {
    let context = format!("{file}: {}", resident.fiscal_code);
    assert_eq!(resident.surname.as_deref(), subject["cognome"].as_str(), "{context}");
    assert_eq!(resident.name.as_deref(), subject["nome"].as_str(), "{context}");
    assert_eq!(resident.birth_date, json_date(&subject["dataNascita"]), "{context}");
    assert_eq!(resident.digital_domicile.as_deref(), subject["domicilioDigitale"].as_str(), "{context}");
    assert!(resident.anpr_record_id.as_deref().is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit())));
    let card = &subject["cartaIdentita"];
    let Some(id_card) = &resident.id_card else {
        assert!(card.is_null(), "{context}: card missing");
        return;
    };
    assert_eq!(id_card.number, card["numero"].as_str().unwrap(), "{context}");
    let kind = match card["cartaceaElettronica"].as_str() {
        Some("1") => CardKind::Paper,
        Some("2") => CardKind::Electronic,
        other => panic!("{context}: kind {other:?}"),
    };
    assert_eq!(id_card.kind, kind, "{context}");
    assert_eq!(id_card.issued, json_date(&card["dataRilascio"]), "{context}");
    assert_eq!(id_card.annulled, json_date(&card["dataAnnullamento"]), "{context}");
    let printed = json_date(&card["dataScadenza"]);
    assert_eq!(id_card.unlimited, printed == Some(date(9999, 1, 1)), "{context}");
    assert_eq!(id_card.expiry, printed.filter(|_| !id_card.unlimited), "{context}");
    assert_eq!(id_card.unlimited, card["category"] == "unlimited", "{context}");
}

#[test]
fn the_shared_sample_reads_as_its_expected_json_says() {
    let (entries, summary) = read_ok(&fixture("001234_Elenchi_sample.xml"));
    let expected = expected_json("001234_Elenchi_sample.expected.json");
    check_against_expected(&entries, &summary, &expected);
    // 22 answers: 20 distinct subjects, 2 repeated; 1 deceased and 1 moved abroad.
    assert_eq!(summary, AnprSummary { answers: 22, residents: 18, skipped: 4, rejected: 0 });
    let duplicates = skipped_for(&entries, |reason| matches!(reason, SkipReason::Duplicate { .. }));
    assert_eq!(duplicates, strings(&expected["duplicated_codici_fiscali"]));
    let residents = residents(&entries);
    assert_eq!(residents.len(), 18);
    assert_eq!(residents["RCCDRA43S22A944N"].digital_domicile.as_deref(), Some("dario.ricci76@legalmail.it"));
    assert_eq!(residents["RCCDRA43S22A944N"].location, 1, "the first answer");
    assert_eq!(residents["RCCDRA43S22A944N"].anpr_record_id.as_deref(), Some("23823308"));
    assert_eq!(residents["STFSFN97D25Z129E"].surname.as_deref(), Some("ŞTEFĂNESCU"));
    assert_eq!(residents["DNGNCL98T16A479E"].name.as_deref(), Some("NICOLÒ"));
    assert_eq!(residents["DLLMGR91D50F952H"].surname.as_deref(), Some("Dell'Acqua"));
    let unlimited = residents["RCCDRA43S22A944N"].id_card.as_ref().unwrap();
    assert!(unlimited.unlimited && unlimited.expiry.is_none());
    let no_expiry = residents["VTLGRL65E24B639I"].id_card.as_ref().unwrap();
    assert!(!no_expiry.unlimited && no_expiry.expiry.is_none());
    assert!(residents["LNEGLI25S64D704G"].id_card.is_none());
}

#[test]
fn every_generator_option_reads_as_its_expected_json_says() {
    for name in ["ns_default", "ns_mixed", "latin1", "crlf", "no_separator", "real_gzip", "gzip_name", "multi2"] {
        let file = match name {
            "gzip_name" => "gzip_name.xml.gz".to_owned(),
            _ => format!("{name}.xml"),
        };
        let (entries, summary) = read_ok(&fixture(&file));
        check_against_expected(&entries, &summary, &expected_json(&format!("{name}.expected.json")));
    }
}

#[test]
fn fixtures_exercise_what_their_names_say() {
    let contains = |bytes: &[u8], part: &[u8]| bytes.windows(part.len()).any(|window| window == part);
    let default = fixture("ns_default.xml");
    assert!(contains(&default, b"<Risposta3002_OK xmlns=\"http://sogei.it/ANPR/3000consultazione\">"));
    assert!(contains(&default, b"<listaSoggetti xmlns=\"\">"));
    let mixed = fixture("ns_mixed.xml");
    for root in [&b"<Risposta3002_OK xmlns="[..], b"<a:Risposta3002_OK", b"<ns2:Risposta3002_OK"] {
        assert!(contains(&mixed, root));
    }
    let latin1 = fixture("latin1.xml");
    assert!(std::str::from_utf8(&latin1).is_err(), "really ISO-8859-1");
    assert!(contains(&latin1, b"Bertol\xE8") && contains(&latin1, b"&#350;TEF&#258;NESCU"));
    assert!(contains(&fixture("crlf.xml"), b"</ns2:Risposta3002_OK>\r\n<?xml"));
    assert!(contains(&fixture("no_separator.xml"), b"</ns2:Risposta3002_OK><?xml"));
    assert!(fixture("real_gzip.xml").starts_with(&[0x1F, 0x8B]), "gzipped despite its name");
    assert!(fixture("gzip_name.xml.gz").starts_with(b"<?xml "), "plain despite its name");
}

#[test]
fn gzip_is_recognised_by_its_bytes_not_its_name() {
    let (gzipped, _) = read_ok(&fixture("real_gzip.xml"));
    let (plain, _) = read_ok(&fixture("gzip_name.xml.gz"));
    assert_eq!(gzipped, plain);
    assert_eq!(residents(&plain).len(), 10);
}

#[test]
fn names_decode_from_iso_8859_1_and_character_references() {
    let (entries, _) = read_ok(&fixture("latin1.xml"));
    let latin1 = residents(&entries);
    assert_eq!(latin1["BRTRSO43S56H501I"].surname.as_deref(), Some("Bertolè"));
    assert_eq!(latin1["STFSFN01S20Z129X"].surname.as_deref(), Some("ŞTEFĂNESCU"));
    assert_eq!(latin1["STFSFN01S20Z129X"].name.as_deref(), Some("ŞTEFAN"));
    // The same people as the UTF-8 file of the same seed.
    let (utf8, _) = read_ok(&fixture("crlf.xml"));
    assert_eq!(latin1, residents(&utf8));
}

#[test]
fn answers_with_several_subjects_give_each_one_the_answer_location() {
    let (entries, summary) = read_ok(&fixture("multi2.xml"));
    assert_eq!(summary.answers, 16);
    let mut per_answer = BTreeMap::<u64, usize>::new();
    for entry in &entries {
        let location = match entry {
            Entry::Resident(resident) => resident.location,
            Entry::Skipped(skipped) => skipped.location,
            Entry::Rejected(error) => error.location,
        };
        *per_answer.entry(location).or_default() += 1;
    }
    assert_eq!(per_answer.len(), 16);
    // 12 single answers, 2 pairs, and one single answer repeated twice (the generator
    // repeats an answer it has just repeated).
    assert_eq!(per_answer.values().filter(|&&subjects| subjects == 2).count(), 2);
    assert_eq!(entries.len(), 18);
    let repeated = skipped_for(&entries, |reason| matches!(reason, SkipReason::Duplicate { .. }));
    assert_eq!(repeated, BTreeSet::from(["MZZNCL24T12E506A".to_owned()]));
}

#[test]
fn a_truncated_file_fails_after_handing_over_its_complete_answers() {
    let (entries, failure) = read_failing(&fixture("truncated.xml"));
    let AnprError::Truncated { answer, answer_offset, offset } = failure.error else {
        panic!("{:?}", failure.error);
    };
    assert_eq!((answer, answer_offset, offset), (6, 17489, 20431), "cut inside the card of answer 6");
    assert_eq!(failure.summary.answers, 5);
    // Exactly the entries of the first five answers of the whole file.
    let (whole, _) = read_ok(&fixture("gzip_name.xml.gz"));
    let location = |entry: &Entry| match entry {
        Entry::Resident(resident) => resident.location,
        Entry::Skipped(skipped) => skipped.location,
        Entry::Rejected(error) => error.location,
    };
    let first_five: Vec<Entry> = whole.into_iter().filter(|entry| location(entry) <= 5).collect();
    assert!(!first_five.is_empty());
    assert_eq!(entries, first_five);
    let message = failure.to_string();
    assert!(message.contains("answer 6") && message.contains("truncated"), "{message}");
}

#[test]
fn a_file_cut_anywhere_fails_cleanly_unless_cut_between_answers() {
    let sample = fixture("001234_Elenchi_sample.xml");
    let end_tag = b"</ns2:Risposta3002_OK>";
    let third_end = sample.windows(end_tag.len()).enumerate().filter(|(_, w)| *w == end_tag).nth(2).unwrap().0;
    let three = &sample[..third_end + end_tag.len() + 1];
    for cut in (0..=three.len()).step_by(7).chain([three.len() - 1, three.len()]) {
        let prefix = &three[..cut];
        let (entries, outcome) = read_bytes(prefix);
        let complete = prefix.trim_ascii_end().ends_with(end_tag);
        match outcome {
            Ok(summary) => assert!(complete, "cut at {cut} read as {summary:?}"),
            Err(failure) if cut == 0 => assert!(matches!(failure.error, AnprError::Empty)),
            Err(failure) => {
                assert!(!complete, "cut at {cut}: {failure}");
                assert!(matches!(failure.error, AnprError::Truncated { .. }), "cut at {cut}: {failure}");
                assert_eq!(entries.len() as u64, failure.summary.answers, "one subject per answer");
            }
        }
    }
}

#[test]
fn empty_files_are_refused() {
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzipped.write_all(b" \n").unwrap();
    let gzipped = gzipped.finish().unwrap();
    for bytes in [&b""[..], b" \r\n\t ", b"\xEF\xBB\xBF\n", &gzipped] {
        let (entries, failure) = read_failing(bytes);
        assert!(matches!(failure.error, AnprError::Empty), "{bytes:?}: {failure}");
        assert!(entries.is_empty());
    }
}

#[test]
fn files_that_are_not_extracts_are_refused_saying_how_they_start() {
    let check = |bytes: &[u8], start: &str| {
        let (_, failure) = read_failing(bytes);
        match &failure.error {
            AnprError::NotAnpr { start: found } => assert_eq!(found, start),
            other => panic!("{bytes:?}: {other:?}"),
        }
        assert!(failure.to_string().contains(start), "{failure}");
    };
    check(b"hello world", "hello world");
    check(b"\n  {\"paymentPositions\": []}", "{\\\"paymentPositions\\\": []}");
    check(b"idANPR;codiceFiscale;cognome\nAB1;X;Y\n", "idANPR;codiceFiscale;cognome\\nAB1;X;Y\\n");
    check(b"\x00\x01binary", "\\x00\\x01binary");
}

#[test]
fn answers_with_another_root_are_refused() {
    let check = |xml: &str, found: &str| {
        let (_, failure) = read_failing(xml.as_bytes());
        match &failure.error {
            AnprError::WrongRoot { answer: 1, offset: 0, found: actual } => assert_eq!(actual, found),
            other => panic!("{xml}: {other:?}"),
        }
    };
    check("<?xml version=\"1.0\"?>\n<html><body/></html>", "<html> (no namespace)");
    check("<Risposta3002_OK><listaSoggetti/></Risposta3002_OK>", "<Risposta3002_OK> (no namespace)");
    check("<a:Risposta3002_OK xmlns:a=\"urn:other\"/>", "<a:Risposta3002_OK> (namespace urn:other)");
    check(
        "<ns2:Risposta3001_OK xmlns:ns2=\"http://sogei.it/ANPR/3000consultazione\"/>",
        "<ns2:Risposta3001_OK> (namespace http://sogei.it/ANPR/3000consultazione)",
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let sample = fixture("001234_Elenchi_sample.xml");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let mut bytes = sample[..8000].to_vec();
        for _ in 0..(round % 20 + 1) {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = (next() % 256) as u8;
        }
        let (entries, outcome) = read_bytes(&bytes);
        let summary = match outcome {
            Ok(summary) => summary,
            Err(failure) => failure.summary,
        };
        assert_eq!(summary, count(&entries, summary.answers));
    }
}

/// A Risposta3002_OK with the given subjects, prefix `ns2`, as ANPR writes it.
fn answer(subjects: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <ns2:Risposta3002_OK xmlns:ns2=\"http://sogei.it/ANPR/3000consultazione\">\n\
         <testataRisposta><codMittente>001234</codMittente></testataRisposta>\n\
         <listaSoggetti>{}</listaSoggetti>\n</ns2:Risposta3002_OK>\n",
        subjects.concat()
    )
}

/// A `datiSoggetto`: `generalita` with the fiscal code (none if empty) and the record id
/// (none if empty), names, then `rest` (card, cancellation...).
fn subject(fiscal_code: &str, record_id: &str, rest: &str) -> String {
    let code = if fiscal_code.is_empty() {
        String::new()
    } else {
        format!("<codiceFiscale><codFiscale>{fiscal_code}</codFiscale><validitaCF>1</validitaCF></codiceFiscale>")
    };
    let id = if record_id.is_empty() {
        String::new()
    } else {
        format!("<idSchedaSoggettoANPR>{record_id}</idSchedaSoggettoANPR>")
    };
    format!(
        "<datiSoggetto><identificativi><idANPR>ZZ1</idANPR></identificativi><generalita>{code}\
         <cognome>ROSSI</cognome><nome>MARIO</nome><sesso>M</sesso><dataNascita>1980-01-02</dataNascita>{id}\
         </generalita>{rest}</datiSoggetto>"
    )
}

const MARIO: &str = "RSSMRA80A02H501U";
const ANNA: &str = "VRDNNA85C45F205X";

fn file(answers: &[String]) -> Vec<u8> {
    answers.concat().into_bytes()
}

fn only_resident(entries: &[Entry]) -> &Resident {
    match entries {
        [Entry::Resident(resident)] => resident,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_subject_without_fiscal_code_is_rejected_and_reading_goes_on() {
    let bytes =
        file(&[answer(&[subject(MARIO, "1", "")]), answer(&[subject("", "2", "")]), answer(&[subject(ANNA, "3", "")])]);
    let (entries, summary) = read_ok(&bytes);
    assert_eq!(summary, AnprSummary { answers: 3, residents: 2, skipped: 0, rejected: 1 });
    let Entry::Rejected(error) = &entries[1] else { panic!("{entries:?}") };
    assert_eq!((error.location, error.field.as_str()), (2, "generalita/codiceFiscale/codFiscale"));
    assert!(matches!(&entries[2], Entry::Resident(anna) if anna.fiscal_code == ANNA && anna.location == 3));
}

#[test]
fn fields_that_are_not_dates_reject_the_subject() {
    let cases = [
        (subject(MARIO, "1", "").replace("1980-01-02", "02/13/1980"), "generalita/dataNascita"),
        (subject(MARIO, "1", "").replace("1980-01-02", "1980-02-30"), "generalita/dataNascita"),
        (
            subject(
                MARIO,
                "1",
                "<cartaIdentita><numero>CA12345AB</numero><dataScadenza>2030</dataScadenza></cartaIdentita>",
            ),
            "cartaIdentita/dataScadenza",
        ),
        (
            subject(MARIO, "1", "<cartaIdentita><dataScadenza>2030-01-01</dataScadenza></cartaIdentita>"),
            "cartaIdentita/numero",
        ),
    ];
    for (xml, field) in cases {
        let (entries, _) = read_ok(&file(&[answer(&[xml])]));
        match entries.as_slice() {
            [Entry::Rejected(error)] => assert_eq!((error.location, error.field.as_str()), (1, field)),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn duplicates_are_recognised_by_record_id_else_by_fiscal_code() {
    let bytes = file(&[
        answer(&[subject(MARIO, "10", "")]),
        answer(&[subject(ANNA, "", "")]),
        answer(&[subject(MARIO, "10", "")]),
        // Same fiscal code, another record: not a duplicate by the record id.
        answer(&[subject(MARIO, "11", "")]),
        // No record id: the fiscal code decides, whatever its case and blanks.
        answer(&[subject(&format!(" {} ", ANNA.to_lowercase()), "", "")]),
        // Same names, another fiscal code: another person.
        answer(&[subject(ANNA.replace('X', "Y").as_str(), "", "")]),
    ]);
    let (entries, summary) = read_ok(&bytes);
    assert_eq!(summary, AnprSummary { answers: 6, residents: 4, skipped: 2, rejected: 0 });
    let duplicate = |location, fiscal_code: &str, first_location| {
        let reason = SkipReason::Duplicate { first_location };
        Entry::Skipped(SkippedSubject { location, fiscal_code: fiscal_code.to_owned(), reason })
    };
    assert_eq!(entries[2], duplicate(3, MARIO, 1));
    assert_eq!(entries[4], duplicate(5, ANNA, 2));
    assert_eq!(SkipReason::Duplicate { first_location: 3 }.to_string(), "duplicate of record 3");
}

#[test]
fn deceased_and_cancelled_subjects_are_skipped_with_their_reason() {
    let cancellation = |code: &str| {
        format!("<datiCancellazione><motivoCancellazione>{code}</motivoCancellazione><dataDecorrenzaCancellazione>2026-01-01</dataDecorrenzaCancellazione></datiCancellazione>")
    };
    let cases = [
        (cancellation("8"), SkipReason::Cancelled { code: "8".to_owned() }, "no longer resident (ANPR cancellation reason 8: moved abroad)"),
        (cancellation("3"), SkipReason::Cancelled { code: "3".to_owned() }, "no longer resident (ANPR cancellation reason 3: moved to a comune not yet in ANPR)"),
        (cancellation("12"), SkipReason::Cancelled { code: "12".to_owned() }, "no longer resident (ANPR cancellation reason 12)"),
        ("<datiCancellazione><dataDecorrenzaCancellazione>2026-01-01</dataDecorrenzaCancellazione></datiCancellazione>".to_owned(), SkipReason::Cancelled { code: String::new() }, "no longer resident (ANPR cancellation without a reason code)"),
        (cancellation("1"), SkipReason::Deceased, "deceased"),
        ("<datiDecesso><dataEvento>2026-01-01</dataEvento></datiDecesso>".to_owned(), SkipReason::Deceased, "deceased"),
    ];
    for (rest, reason, text) in cases {
        let (entries, summary) = read_ok(&file(&[answer(&[subject(MARIO, "1", &rest)])]));
        let expected = SkippedSubject { location: 1, fiscal_code: MARIO.to_owned(), reason: reason.clone() };
        assert_eq!(entries, [Entry::Skipped(expected)], "{rest}");
        assert_eq!(summary.skipped, 1);
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn one_answer_may_carry_several_subjects() {
    let bytes = file(&[answer(&[subject(MARIO, "1", ""), subject(ANNA, "2", ""), subject("", "3", "")])]);
    let (entries, summary) = read_ok(&bytes);
    assert_eq!(summary, AnprSummary { answers: 1, residents: 2, skipped: 0, rejected: 1 });
    assert!(matches!(&entries[..], [Entry::Resident(a), Entry::Resident(b), Entry::Rejected(c)]
        if a.location == 1 && b.location == 1 && c.location == 1 && b.fiscal_code == ANNA));
}

#[test]
fn card_fields_are_read_and_the_kind_inferred_when_missing() {
    let card = |fields: &str| {
        subject(
            MARIO,
            "1",
            &format!("<cartaIdentita>{fields}<interdizioneEspatrio>N</interdizioneEspatrio></cartaIdentita>"),
        )
    };
    let check = |fields: &str, expected: IdCard| {
        let (entries, _) = read_ok(&file(&[answer(&[card(fields)])]));
        assert_eq!(only_resident(&entries).id_card.as_ref(), Some(&expected), "{fields}");
    };
    let plain = |number: &str, kind| IdCard {
        number: number.to_owned(),
        kind,
        issued: None,
        expiry: None,
        unlimited: false,
        annulled: None,
    };
    check(
        "<numero>AX1234567</numero><dataRilascio>2016-05-10</dataRilascio><cartaceaElettronica>1</cartaceaElettronica><dataScadenza>2026-05-10</dataScadenza><dataAnnullamento>2020-01-01</dataAnnullamento>",
        IdCard { issued: Some(date(2016, 5, 10)), expiry: Some(date(2026, 5, 10)), annulled: Some(date(2020, 1, 1)), ..plain("AX1234567", CardKind::Paper) },
    );
    check(
        "<numero> CA12345AB </numero><cartaceaElettronica>2</cartaceaElettronica><dataScadenza>9999-01-01</dataScadenza>",
        IdCard { unlimited: true, ..plain("CA12345AB", CardKind::Electronic) },
    );
    check("<numero>CA12345AB</numero>", plain("CA12345AB", CardKind::Electronic));
    check(
        "<numero>ax1234567</numero><cartaceaElettronica>7</cartaceaElettronica>",
        plain("ax1234567", CardKind::Paper),
    );
    check("<numero>CA1234AB</numero>", plain("CA1234AB", CardKind::Unknown));
    check(
        "<numero>12345</numero><dataScadenza>2030-01-02+01:00</dataScadenza>",
        IdCard { expiry: Some(date(2030, 1, 2)), ..plain("12345", CardKind::Unknown) },
    );
}

#[test]
fn names_are_read_as_written_and_absent_when_the_person_has_none() {
    let xml = subject(MARIO, "1", "<domicilioDigitale><indirizzoDigitale> mario@pec.it </indirizzoDigitale><dataInizioValidita>2020-01-01</dataInizioValidita></domicilioDigitale>")
        .replace("<cognome>ROSSI</cognome>", "<senzaCognome>1</senzaCognome>")
        .replace("MARIO</nome>", "D&apos;Ang&#xE8;lo &amp; <![CDATA[Ş]]></nome>");
    let (entries, _) = read_ok(&file(&[answer(&[xml])]));
    let resident = only_resident(&entries);
    assert_eq!(resident.surname, None);
    assert_eq!(resident.name.as_deref(), Some("D'Angèlo & Ş"));
    assert_eq!(resident.birth_date, Some(date(1980, 1, 2)));
    assert_eq!(resident.digital_domicile.as_deref(), Some("mario@pec.it"));
    assert_eq!(resident.anpr_record_id.as_deref(), Some("1"));
}

#[test]
fn each_answer_is_decoded_as_its_declaration_says() {
    let latin1 = answer(&[subject(ANNA, "2", "")])
        .replace("UTF-8", "ISO-8859-1")
        .replace("ROSSI", "&#350;TEF\u{C8}")
        .replace("<nome>MARIO", "<nome>NICOL\u{D2}");
    let latin1: Vec<u8> = latin1.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    let mut bytes = file(&[answer(&[subject(MARIO, "1", "").replace("ROSSI", "BERTOLÈ")])]);
    bytes.extend(latin1);
    let (entries, _) = read_ok(&bytes);
    let residents = residents(&entries);
    assert_eq!(residents[MARIO].surname.as_deref(), Some("BERTOLÈ"));
    assert_eq!(residents[ANNA].surname.as_deref(), Some("ŞTEFÈ"));
    assert_eq!(residents[ANNA].name.as_deref(), Some("NICOLÒ"));
}

#[test]
fn text_that_is_not_utf8_rejects_its_subject() {
    let mut bytes = file(&[answer(&[subject(MARIO, "1", "")])]);
    let at = bytes.windows(5).position(|w| w == b"ROSSI").unwrap();
    bytes[at + 1] = 0xD2;
    bytes.extend(file(&[answer(&[subject(ANNA, "2", "")])]));
    let (entries, _) = read_ok(&bytes);
    let Entry::Rejected(error) = &entries[0] else { panic!("{entries:?}") };
    assert_eq!((error.location, error.field.as_str()), (1, "generalita/cognome"));
    assert!(matches!(&entries[1], Entry::Resident(anna) if anna.fiscal_code == ANNA));
}

#[test]
fn an_encoding_that_cannot_be_split_on_declarations_is_refused() {
    let bytes =
        file(&[answer(&[subject(MARIO, "1", "")]), answer(&[subject(ANNA, "2", "")]).replace("UTF-8", "UTF-16")]);
    let (entries, failure) = read_failing(&bytes);
    assert!(matches!(&failure.error, AnprError::Encoding { answer: 2, encoding, .. } if encoding == "UTF-16"));
    assert_eq!(entries.len(), 1);
}

#[test]
fn malformed_xml_stops_the_read_saying_where() {
    let first = answer(&[subject(MARIO, "1", "")]);
    let broken = answer(&[subject(ANNA, "2", "")]).replace("MARIO</nome>", "MARIO</cognome>");
    let (entries, failure) = read_failing(&file(&[first.clone(), broken.clone()]));
    assert_eq!(failure.summary.answers, 1);
    assert_eq!(entries.len(), 1);
    let AnprError::Xml { answer: number, answer_offset, offset, .. } = &failure.error else {
        panic!("{:?}", failure.error)
    };
    assert_eq!((*number, *answer_offset), (2, first.len() as u64));
    let expected = first.len() + broken.find("MARIO</cognome>").unwrap() + "MARIO".len();
    assert_eq!(*offset, expected as u64);

    let stray = answer(&[subject(ANNA, "2", "")]) + "garbage";
    let (_, failure) = read_failing(&file(&[first, stray]));
    assert!(matches!(failure.error, AnprError::Stray { answer: 2, .. }), "{:?}", failure.error);
}

#[test]
fn an_answer_without_declaration_or_after_a_bom_is_read() {
    let bare = answer(&[subject(MARIO, "1", "")]);
    let bare = &bare[bare.find("?>").unwrap() + 2..];
    let (entries, _) = read_ok(bare.as_bytes());
    assert_eq!(only_resident(&entries).fiscal_code, MARIO);
    let with_bom = [&b"\xEF\xBB\xBF"[..], answer(&[subject(MARIO, "1", "")]).as_bytes()].concat();
    let (entries, _) = read_ok(&with_bom);
    assert_eq!(only_resident(&entries).fiscal_code, MARIO);
}

/// Hands out `bytes`, then fails.
struct FailingAfter<'a> {
    bytes: &'a [u8],
}

impl Read for FailingAfter<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.bytes.is_empty() {
            return Err(io::Error::other("disk unplugged"));
        }
        let count = self.bytes.len().min(buffer.len());
        buffer[..count].copy_from_slice(&self.bytes[..count]);
        self.bytes = &self.bytes[count..];
        Ok(count)
    }
}

#[test]
fn a_failing_source_stops_the_read_keeping_what_was_read() {
    let sample = fixture("001234_Elenchi_sample.xml");
    let mut entries = Vec::new();
    let failure = read_xml(FailingAfter { bytes: &sample[..20_000] }, |entry| entries.push(entry)).unwrap_err();
    let AnprError::Read { answers_read, offset, .. } = &failure.error else { panic!("{:?}", failure.error) };
    assert_eq!((*answers_read, *offset), (failure.summary.answers, 20_000));
    assert!(failure.summary.answers >= 4 && entries.len() as u64 == failure.summary.answers);
    assert!(failure.to_string().contains("disk unplugged"), "{failure}");
}

#[test]
fn damaged_gzip_stops_the_read_as_a_gzip_fault() {
    let gzipped = fixture("real_gzip.xml");
    let (entries, failure) = read_failing(&gzipped[..gzipped.len() / 2]);
    assert!(matches!(failure.error, AnprError::Gzip { .. }), "{:?}", failure.error);
    assert!(failure.summary.answers < 14);
    assert_eq!(entries.len() as u64, failure.summary.residents + failure.summary.skipped);

    let mut corrupt = gzipped.clone();
    corrupt[20..60].fill(0xFF);
    let (_, failure) = read_failing(&corrupt);
    assert!(matches!(failure.error, AnprError::Gzip { answers_read: 0, .. }), "{:?}", failure.error);
}

#[test]
fn failure_messages_say_what_was_read_before() {
    let failure = AnprFailure {
        error: AnprError::Truncated { answer: 6, answer_offset: 100, offset: 180 },
        summary: AnprSummary { answers: 5, residents: 4, skipped: 1, rejected: 0 },
    };
    assert_eq!(
        failure.to_string(),
        "answer 6 (from byte 100) stops at byte 180 before it is complete: the file is truncated or damaged, \
         download it again (4 residents already handed over)"
    );
}
