//! Tests of the flat CSV reader: the shared proposal, optional columns, triage and refusals.

use jiff::civil::date;

use crate::anpr::*;
use crate::csv_text::CsvReadError;
use crate::payment::RecordError;

const PROPOSAL: &[u8] = include_bytes!("../../../tests/fixtures/anpr/anpr_estratto_proposto.csv");

fn read_bytes(bytes: &[u8]) -> (Vec<Entry>, Result<AnprSummary, AnprFailure>) {
    let mut entries = Vec::new();
    let outcome = read_csv(bytes, |entry| entries.push(entry));
    (entries, outcome)
}

fn read_ok(bytes: &[u8]) -> (Vec<Entry>, AnprSummary) {
    let (entries, outcome) = read_bytes(bytes);
    (entries, outcome.unwrap())
}

#[test]
fn the_shared_proposal_reads_every_row() {
    let (entries, summary) = read_ok(PROPOSAL);
    assert_eq!(summary, AnprSummary { answers: 4, residents: 4, skipped: 0, rejected: 0 });
    let Entry::Resident(first) = &entries[0] else { panic!("{entries:?}") };
    let expected = Resident {
        location: 2,
        anpr_record_id: Some("AB0000000".to_owned()),
        fiscal_code: "BNCLRA85C52F205V".to_owned(),
        surname: Some("BIANCHI".to_owned()),
        name: Some("LAURA".to_owned()),
        birth_date: Some(date(1985, 3, 12)),
        id_card: Some(IdCard {
            number: "CA00000AA".to_owned(),
            kind: CardKind::Electronic,
            issued: Some(date(2016, 5, 10)),
            expiry: Some(date(2026, 3, 12)),
            unlimited: false,
            annulled: None,
        }),
        digital_domicile: None,
    };
    assert_eq!(first, &expected);
    let locations: Vec<u64> = entries
        .iter()
        .map(|entry| match entry {
            Entry::Resident(resident) => resident.location,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(locations, [2, 3, 4, 5]);
}

/// A comma-separated Windows-1252 re-export with CRLF, lower-case headers in another order,
/// and the optional death and cancellation columns.
fn re_export() -> Vec<u8> {
    let rows = [
        "CODICEFISCALE,idanpr,Cognome,Nome,dataNascita,ciNumero,ciCartaceaElettronica,ciDataScadenza,ciDataAnnullamento,domicilioDigitale,dataDecesso,motivoCancellazione,dataDecorrenzaCancellazione",
        "rssmra80a02h501u ,A1,D'ANGELO,NICOL\u{D2},02/01/1980,AX1234567,C,31/12/2030,,mario@pec.it,,,",
        "VRDNNA85C45F205X,A2,VERDI,ANNA,1985-03-05,,,,,,2025-01-01,,",
        "VRDNNA85C45F205Y,A3,VERDI,ANNA,1985-03-05,,,,,,,8,2025-01-01",
        "VRDNNA85C45F205Z,A4,VERDI,ANNA,1985-03-05,,,,,,,,2025-01-01",
        "BNCLRA85C52F205V,A1,BIANCHI,LAURA,1985-03-12,,,,,,,,",
        "BNCLRA85C52F205V,,BIANCHI,LAURA,1985-03-12,CA00000AA,,,,,,,",
        "BNCLRA85C52F205V,,BIANCHI,LAURA,1985-03-12,,,,,,,,",
        ",A9,NERI,LUCA,1990-01-01,,,,,,,,",
        "",
        "NRELCU90A01H501W,A10,NERI,LUCA,1990-31-01,,,,,,,,",
        "NRELCU90A01H501X,A11,NERI,LUCA,1990-01-01,CA1234AB,E,2030-01-01,2024-02-02,,,,",
        "NRELCU90A01H501Y,A12,NERI,LUCA,1990-01-01,,,2030-01-01,,,,,",
    ];
    let text = rows.join("\r\n") + "\r\n";
    text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect()
}

#[test]
fn rows_are_triaged_like_xml_subjects() {
    let (entries, summary) = read_ok(&re_export());
    assert_eq!(summary, AnprSummary { answers: 11, residents: 3, skipped: 5, rejected: 3 });
    let Entry::Resident(mario) = &entries[0] else { panic!("{entries:?}") };
    assert_eq!(mario.fiscal_code, "RSSMRA80A02H501U");
    assert_eq!((mario.surname.as_deref(), mario.name.as_deref()), (Some("D'ANGELO"), Some("NICOLÒ")));
    assert_eq!(mario.birth_date, Some(date(1980, 1, 2)));
    assert_eq!(mario.digital_domicile.as_deref(), Some("mario@pec.it"));
    let card = mario.id_card.as_ref().unwrap();
    assert_eq!((card.kind, card.expiry), (CardKind::Paper, Some(date(2030, 12, 31))));
    let skip = |location, fiscal_code: &str, reason| {
        Entry::Skipped(SkippedSubject { location, fiscal_code: fiscal_code.to_owned(), reason })
    };
    assert_eq!(entries[1], skip(3, "VRDNNA85C45F205X", SkipReason::Deceased));
    assert_eq!(entries[2], skip(4, "VRDNNA85C45F205Y", SkipReason::Cancelled { code: "8".to_owned() }));
    assert_eq!(entries[3], skip(5, "VRDNNA85C45F205Z", SkipReason::Cancelled { code: String::new() }));
    // Same idANPR as line 2: a duplicate even with another fiscal code.
    assert_eq!(entries[4], skip(6, "BNCLRA85C52F205V", SkipReason::Duplicate { first_location: 2 }));
    let Entry::Resident(laura) = &entries[5] else { panic!("{entries:?}") };
    assert_eq!(laura.id_card.as_ref().map(|card| card.kind), Some(CardKind::Electronic), "from the number");
    // Without idANPR, the fiscal code decides.
    assert_eq!(entries[6], skip(8, "BNCLRA85C52F205V", SkipReason::Duplicate { first_location: 7 }));
    let rejected = |location, field: &str| {
        entries.iter().any(|entry| {
            matches!(entry, Entry::Rejected(RecordError { location: l, field: f, .. }) if *l == location && f == field)
        })
    };
    assert!(rejected(9, "codiceFiscale"), "{entries:?}");
    assert!(rejected(11, "dataNascita"), "line 10 is blank: {entries:?}");
    assert!(rejected(13, "ciNumero"), "{entries:?}");
    let Entry::Resident(annulled) = &entries[9] else { panic!("{entries:?}") };
    let card = annulled.id_card.as_ref().unwrap();
    assert_eq!((card.kind, card.annulled), (CardKind::Electronic, Some(date(2024, 2, 2))));
}

#[test]
fn a_header_without_fiscal_code_or_with_repeated_columns_is_refused() {
    let (_, outcome) = read_bytes(b"idANPR;cognome;nome\nA1;ROSSI;MARIO\n");
    let failure = outcome.unwrap_err();
    assert!(matches!(&failure.error, AnprError::MissingColumns { names } if names == &["codiceFiscale"]));
    assert_eq!(failure.summary, AnprSummary::default());
    let (_, outcome) = read_bytes(b"codiceFiscale;nome;NOME\nX;Y;Z\n");
    assert!(matches!(outcome.unwrap_err().error, AnprError::DuplicateColumn { name: "nome" }));
    let (_, outcome) = read_bytes(b"");
    assert!(matches!(outcome.unwrap_err().error, AnprError::Csv(CsvReadError::NoHeader)));
}
