//! `Template::measure` and `check_payment` against what they stand in for: rendering the
//! texts and building the message. An import trusts them for every record, so each case
//! here must decide exactly as the real thing.

use super::tests::{notice, parse, ID_CARD, TARI};
use super::*;
use crate::domain::{FiscalCode, TestRecipient};
use crate::message::utf16_length;
use crate::payment::PaymentNotice;
use jiff::civil::date;

/// Notices whose texts differ in every way a length can: characters outside the BMP
/// (two UTF-16 units), accented ones (several UTF-8 bytes, one unit), the euro sign, empty
/// values, large and small amounts.
fn notices() -> Vec<PaymentNotice> {
    let long = "Saldo TARI con conguaglio e maggiorazione per il servizio di raccolta porta a porta ".repeat(2);
    vec![
        notice(),
        PaymentNotice { description: "Tassa rifiuti 🗑️ anno 2025 — più è meglio".to_owned(), ..notice() },
        PaymentNotice { debtor_name: None, year: None, installment: None, ..notice() },
        PaymentNotice { amount: EuroCents::from_cents(1).expect("valid"), ..notice() },
        PaymentNotice { amount: EuroCents::from_cents(9_999_999_999).expect("valid"), ..notice() },
        PaymentNotice { installment: Some((12, 12)), year: Some(-44), ..notice() },
        PaymentNotice { description: long, ..notice() },
        PaymentNotice { due_date: None, ..notice() },
        PaymentNotice { debtor_fiscal_code: "BNCLRA85C52F205X".to_owned(), ..notice() },
        PaymentNotice { debtor_fiscal_code: "02438750586".to_owned(), ..notice() },
        PaymentNotice { debtor_fiscal_code: FiscalCode::TEST_RECIPIENT.to_owned(), ..notice() },
        PaymentNotice { due_date: Some(date(9999, 12, 31)), ..notice() },
    ]
}

/// Templates: the shipped one, one whose subject overflows once a long description is in,
/// one too short without its values, and one of the other kind.
fn templates() -> Vec<Template> {
    let markdown = "Il testo del messaggio: abbastanza lungo da superare gli ottanta caratteri che IO chiede.";
    let table =
        |language: &str, subject: &str| format!("[{language}]\nsubject = {subject:?}\nmarkdown = {markdown:?}\n");
    let overflow = format!(
        "kind = \"payment\"\n{}{}",
        table("it", "Avviso {{description}}"),
        table("en", &format!("{}{{{{description}}}}", "x".repeat(100)))
    );
    let short = "kind = \"payment\"\n[it]\nsubject = \"{{year}}\"\nmarkdown = \"{{name}} {{amount}}\"\n";
    vec![parse(TARI), parse(&overflow), parse(short), parse(ID_CARD)]
}

#[test]
fn measuring_gives_the_rendered_lengths_and_the_same_errors() {
    for template in templates().iter().filter(|t| t.kind() == Kind::Payment) {
        for notice in notices() {
            let fields = payment_fields(&notice);
            for language in Language::ALL {
                let rendered = template.render(language, &fields);
                let measured = template.measure(language, &fields);
                match (rendered, measured) {
                    (Ok(rendered), Ok(measured)) => assert_eq!(
                        measured,
                        Measured {
                            language: rendered.language,
                            subject: rendered.subject.encode_utf16().count(),
                            markdown: rendered.markdown.encode_utf16().count(),
                        },
                        "{language} {notice:?}"
                    ),
                    (Err(rendered), Err(measured)) => assert_eq!(measured, rendered),
                    (rendered, measured) => panic!("{language} {notice:?}: {rendered:?} but {measured:?}"),
                }
            }
        }
    }
    let id_card = parse(ID_CARD);
    let mut fields = Fields::new();
    fields.set("name", Value::Text("Zoë 🌍".to_owned())).set("surname", Value::Text("Verdi".to_owned()));
    fields.set("valid_until", Value::Date(date(2026, 3, 9))).set("card_number", Value::Text("CA1".to_owned()));
    fields.set("issued", Value::Date(date(2016, 3, 10)));
    let rendered = id_card.render(Language::De, &fields).expect("renders");
    let measured = id_card.measure(Language::De, &fields).expect("measures");
    assert_eq!(measured.markdown, utf16_length(&rendered.markdown));
    assert_eq!(measured.markdown, rendered.markdown.encode_utf16().count());
}

#[test]
fn checking_a_payment_decides_as_building_its_message() {
    let mut decided = (0, 0);
    for template in templates() {
        for notice in notices() {
            let fields = payment_fields(&notice);
            for language in Language::ALL {
                for test in [TestRecipient::Allowed, TestRecipient::Rejected] {
                    let built = payment_message(&template, &notice, language, test);
                    let checked = check_payment(&template, &notice, &fields, language, test);
                    match (built, checked) {
                        (Ok(message), Ok(recipient)) => {
                            assert_eq!(message.fiscal_code(), &recipient);
                            decided.0 += 1;
                        }
                        (Err(built), Err(checked)) => {
                            assert_eq!(checked, built, "{language} {notice:?}");
                            decided.1 += 1;
                        }
                        (built, checked) => panic!("{language} {notice:?}: {built:?} but {checked:?}"),
                    }
                }
            }
        }
    }
    // Both outcomes are exercised, many times.
    assert!(decided.0 > 50 && decided.1 > 50, "{decided:?}");
}

#[test]
fn a_value_measures_as_long_as_it_is_written() {
    let mut values: Vec<Value> = [1, 99, 100, 99_999, 100_000, 102_099, 99_999_999, 100_000_000, 9_999_999_999]
        .into_iter()
        .map(|cents| Value::Amount(EuroCents::from_cents(cents).expect("valid")))
        .collect();
    for (year, month, day) in [(2025, 7, 31), (1, 1, 1), (999, 12, 9), (-44, 3, 15), (-9999, 1, 1), (9999, 12, 31)] {
        values.push(Value::Date(date(year, month, day)));
    }
    values.extend([None, Some((1, 2)), Some((12, 12)), Some((u32::MAX, u32::MAX))].map(Value::Installment));
    values.extend([0, 7, -7, 2025, i64::MIN, i64::MAX].map(Value::Number));
    values.extend(["", "Niccolò", "🗑️ e 🌍", "€"].map(|text| Value::Text(text.to_owned())));
    for value in &values {
        for language in Language::ALL {
            let mut written = String::new();
            format::write_value(&mut written, value, language);
            let units = format::value_units(value, language);
            assert_eq!(units, written.encode_utf16().count(), "{value:?} in {language}: {written:?}");
        }
    }
}
