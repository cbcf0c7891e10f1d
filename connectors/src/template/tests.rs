//! Tests of `template`: the file format and its errors, value formatting per language,
//! the shipped templates in `config/templates/`, and messages built from them.

use super::*;
use crate::domain::{FiscalCode, OrgFiscalCode, TestRecipient};
use crate::payment::PaymentNotice;
use jiff::civil::date;
use serde_json::json;

pub(super) const TARI: &str = include_str!("../../../config/templates/tari.toml");
pub(super) const ID_CARD: &str = include_str!("../../../config/templates/carta-identita.toml");
const PAPER_ID_CARD: &str = include_str!("../../../config/templates/carta-identita-cartacea.toml");

/// Installment 1 of 2 of the TARI 2025 sample: 150,00 € due 31 July 2025.
pub(super) fn notice() -> PaymentNotice {
    PaymentNotice {
        debtor_fiscal_code: "BNCLRA85C52F205V".to_owned(),
        debtor_name: Some("Laura Bianchi".to_owned()),
        creditor: "80000000010".parse().expect("valid"),
        notice_number: "301202500000000281".parse().expect("valid"),
        amount: EuroCents::from_cents(15_000).expect("valid"),
        due_date: Some(date(2025, 7, 31)),
        description: "TARI 2025 - rata 1 di 2".to_owned(),
        installment: Some((1, 2)),
        year: Some(2025),
    }
}

fn id_card_fields() -> Fields {
    let mut fields = Fields::new();
    fields
        .set("name", Value::Text("Giuseppe".to_owned()))
        .set("surname", Value::Text("Verdi".to_owned()))
        .set("card_number", Value::Text("CA12345AB".to_owned()))
        .set("valid_until", Value::Date(date(2026, 3, 9)))
        .set("issued", Value::Date(date(2016, 3, 10)));
    fields
}

pub(super) fn parse(text: &str) -> Template {
    Template::parse("test", text).unwrap_or_else(|error| panic!("{error}"))
}

/// A payment template whose subject is `subject` in every language.
fn payment_template(subject: &str) -> Template {
    let markdown = "Il testo del messaggio: abbastanza lungo da superare gli ottanta caratteri che IO chiede.";
    let table = |language| format!("[{language}]\nsubject = {subject:?}\nmarkdown = {markdown:?}\n");
    parse(&format!("kind = \"payment\"\n{}{}{}", table("it"), table("en"), table("de")))
}

/// The problems of a refused template as `at: reason` lines.
fn problems(text: &str) -> Vec<String> {
    match Template::parse("test", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error.problems.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts each problem starts with the `at` and contains the fragment given, in order.
fn check_problems(text: &str, expected: &[(&str, &str)]) {
    let found = problems(text);
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (problem, (at, fragment)) in found.iter().zip(expected) {
        assert!(
            problem.starts_with(&format!("{at}: ")) && problem.contains(fragment),
            "{problem:?} vs {at} {fragment}"
        );
    }
}

#[test]
fn languages_from_io_profiles() {
    let check = |code: &str, expected: Option<Language>| assert_eq!(Language::from_io(code), expected, "{code}");
    check("it_IT", Some(Language::It));
    check("en_GB", Some(Language::En));
    check("de_DE", Some(Language::De));
    check("it", Some(Language::It));
    check("en", Some(Language::En));
    check("de", Some(Language::De));
    check("en_US", Some(Language::En));
    check("fr_FR", None);
    check("es_ES", None);
    check("", None);
    assert!(Language::It < Language::En && Language::En < Language::De);
    assert_eq!(Language::ALL.map(Language::as_str), ["it", "en", "de"]);
}

#[test]
fn kinds_have_their_placeholders() {
    assert_eq!(
        placeholders(Kind::Payment),
        ["name", "amount", "due_date", "description", "notice_number", "creditor", "year", "installment"]
    );
    assert_eq!(placeholders(Kind::IdCard), ["name", "surname", "card_number", "valid_until", "issued"]);
    let kinds: Vec<Kind> = serde_json::from_value(json!(["payment", "id_card"])).expect("kinds");
    assert_eq!(kinds, Kind::ALL);
}

/// Renders `{{placeholder}}` holding `value` in `language`, inside fixed literal text.
fn format(value: Value, language: Language) -> String {
    let template = payment_template("[{{ amount }}]");
    let mut fields = Fields::new();
    fields.set("amount", value);
    let rendered = template.render(language, &fields).expect("renders");
    rendered.subject.trim_start_matches('[').trim_end_matches(']').to_owned()
}

#[test]
fn amounts_per_language() {
    let check = |cents, it: &str, en: &str| {
        let amount = EuroCents::from_cents(cents).expect("valid");
        assert_eq!(format(Value::Amount(amount), Language::It), it);
        assert_eq!(format(Value::Amount(amount), Language::De), it);
        assert_eq!(format(Value::Amount(amount), Language::En), en);
        assert_eq!(amount.to_string(), it, "same as EuroCents' own Display");
    };
    check(29, "0,29 €", "€0.29");
    check(100, "1,00 €", "€1.00");
    check(99_999, "999,99 €", "€999.99");
    check(100_000, "1.000,00 €", "€1,000.00");
    check(102_099, "1.020,99 €", "€1,020.99");
    check(123_456_700, "1.234.567,00 €", "€1,234,567.00");
    check(EuroCents::MAX_CENTS as i64, "99.999.999,99 €", "€99,999,999.99");
}

#[test]
fn dates_installments_numbers_and_text_per_language() {
    let check = |value: Value, it: &str, en: &str, de: &str| {
        for (language, expected) in [(Language::It, it), (Language::En, en), (Language::De, de)] {
            assert_eq!(format(value.clone(), language), expected, "{value:?} in {language}");
        }
    };
    check(Value::Date(date(2025, 7, 31)), "31/07/2025", "31/07/2025", "31.07.2025");
    check(Value::Date(date(2026, 1, 2)), "02/01/2026", "02/01/2026", "02.01.2026");
    check(Value::Installment(Some((2, 3))), "rata 2 di 3", "instalment 2 of 3", "Rate 2 von 3");
    check(Value::Installment(None), "", "", "");
    check(Value::Number(2025), "2025", "2025", "2025");
    check(Value::Number(-7), "-7", "-7", "-7");
    check(Value::Text("Niccolò {x}".to_owned()), "Niccolò {x}", "Niccolò {x}", "Niccolò {x}");
}

#[test]
fn placeholders_allow_spaces_and_lone_braces_are_text() {
    let template = parse(
        r#"
        kind = "payment"
        [it]
        subject = "{ {{amount}} } {{  year}}{{year  }} {a} }}{"
        markdown = """
        Testo con { e } isolate, {{ description }} e ancora }} e { per arrivare a ottanta caratteri.
        """
        "#,
    );
    let mut fields = Fields::new();
    fields
        .set("amount", Value::Amount(EuroCents::from_cents(150).expect("valid")))
        .set("year", Value::Number(2025))
        .set("description", Value::Text("TARI".to_owned()));
    let rendered = template.render(Language::It, &fields).expect("renders");
    assert_eq!(rendered.subject, "{ 1,50 € } 20252025 {a} }}{");
    assert_eq!(
        rendered.markdown,
        "        Testo con { e } isolate, TARI e ancora }} e { per arrivare a ottanta caratteri.\n        "
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    check_problems(
        r#"
        kind = "payment"
        title = "TARI"
        [fr]
        subject = "Avis de paiement"
        [en]
        subject = "Payment {{importo}} due {{due_date}} {{ }}"
        markdown = "Line one\nLine {{two"
        body = "x"
        [de]
        markdown = "Zahlung {{amount}"
        "#,
        &[
            ("fr", "is not a supported language"),
            ("title", "is not part of a template"),
            ("[it]", "is missing"),
            ("[en].body", "only subject and markdown"),
            (
                "[en].subject",
                "unknown placeholder {{importo}} at line 1, column 9: templates of kind payment may use name, amount",
            ),
            ("[en].subject", "{{}} at line 1, column 38 is not a placeholder"),
            ("[en].markdown", "`{{` at line 2, column 6 is not closed"),
            ("[de].subject", "is missing"),
            ("[de].markdown", "`{{` at line 1, column 9 is not closed"),
        ],
    );
}

#[test]
fn kind_problems_are_listed_with_the_others() {
    let languages = "[it]\nsubject = \"Avviso {{amount\"\nmarkdown = 3\n";
    check_problems(
        &format!("kind = \"tari\"\n{languages}"),
        &[
            ("kind", "\"tari\" is not a kind of template: write \"payment\" or \"id_card\""),
            ("[it].subject", "is not closed"),
            ("[it].markdown", "must be a string"),
        ],
    );
    check_problems(
        languages,
        &[("kind", "is missing"), ("[it].subject", "is not closed"), ("[it].markdown", "must be a string")],
    );
    check_problems("kind = 1\nit = \"Avviso\"", &[("kind", "must be a string"), ("[it]", "must be a table")]);
    // Placeholders of the other kind are unknown.
    check_problems(
        "kind = \"id_card\"\n[it]\nsubject = \"{{amount}}\"\nmarkdown = \"{{surname}}\"",
        &[("[it].subject", "templates of kind id_card may use name, surname, card_number, valid_until, issued")],
    );
}

#[test]
fn texts_too_long_before_placeholders_are_refused() {
    let subject = "x".repeat(121);
    check_problems(
        &format!(
            "kind = \"payment\"\n[it]\nsubject = \"{subject}{{{{amount}}}}\"\nmarkdown = \"{}\"",
            "y".repeat(10_001)
        ),
        &[
            ("[it].subject", "is 121 characters long before placeholders are filled; IO allows 120"),
            ("[it].markdown", "is 10001 characters long"),
        ],
    );
    // Lengths are UTF-16 units, as IO counts them: 60 emoji are 120 units.
    parse(&format!("kind = \"payment\"\n[it]\nsubject = \"{}\"\nmarkdown = \"m\"", "😀".repeat(60)));
    check_problems(
        &format!("kind = \"payment\"\n[it]\nsubject = \"{}\"\nmarkdown = \"m\"", "😀".repeat(61)),
        &[("[it].subject", "is 122 characters long")],
    );
}

#[test]
fn toml_syntax_errors_say_where() {
    let found = problems("kind = \"payment\"\n[it]\nsubject = \"unterminated\nmarkdown = \"x\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("(TOML): ") && found[0].contains("(line 3)"), "{found:?}");
    let error = Template::parse("tari", "kind = ").expect_err("refused");
    assert!(error.to_string().starts_with("template \"tari\" has 1 problem(s): (TOML): "), "{error}");
}

#[test]
fn a_placeholder_without_value_is_an_error_naming_it() {
    let template = parse(TARI);
    let fields = payment_fields(&notice());
    let without =
        Fields(fields.0.into_iter().filter(|(name, _)| !matches!(name.as_ref(), "year" | "amount")).collect());
    let error = template.render(Language::De, &without).expect_err("refused");
    assert_eq!(
        error,
        RenderError { template: "test".to_owned(), language: Language::De, missing: vec!["year", "amount"] }
    );
    assert_eq!(error.to_string(), "template \"test\" (de): the record has no value for year, amount");

    // A notice without a due day cannot be rendered by a template that shows it.
    let undated = PaymentNotice { due_date: None, ..notice() };
    let error = payment_message(&template, &undated, Language::It, TestRecipient::Rejected).expect_err("refused");
    assert_eq!(
        error,
        MessageError::Render(RenderError {
            template: "test".to_owned(),
            language: Language::It,
            missing: vec!["due_date"]
        })
    );
}

#[test]
fn fields_can_be_replaced_and_be_any_name() {
    let mut fields = Fields::new();
    fields
        .set("name", Value::Text("a".to_owned()))
        .set("name", Value::Text("b".to_owned()))
        .set("other", Value::Number(1));
    assert_eq!(fields.get("name"), Some(&Value::Text("b".to_owned())));
    assert_eq!(fields.get("other"), Some(&Value::Number(1)));
    assert_eq!(fields.get("surname"), None);
}

#[test]
fn missing_languages_fall_back_to_italian() {
    let template = parse(
        "kind = \"payment\"\n[it]\nsubject = \"Avviso {{amount}}\"\nmarkdown = \"{{description}}\"\n[de]\nsubject = \"Zahlung {{amount}}\"\nmarkdown = \"{{description}}\"",
    );
    assert_eq!(template.languages(), [Language::It, Language::De]);
    let fields = payment_fields(&notice());
    let english = template.render(Language::En, &fields).expect("renders");
    assert_eq!((english.language, english.subject.as_str()), (Language::It, "Avviso 150,00 €"));
    let german = template.render(Language::De, &fields).expect("renders");
    assert_eq!((german.language, german.subject.as_str()), (Language::De, "Zahlung 150,00 €"));
}

#[test]
fn payment_fields_of_a_notice() {
    let fields = payment_fields(&notice());
    let text = |s: &str| Some(Value::Text(s.to_owned()));
    assert_eq!(fields.get("name").cloned(), text("Laura Bianchi"));
    assert_eq!(fields.get("amount"), Some(&Value::Amount(EuroCents::from_cents(15_000).expect("valid"))));
    assert_eq!(fields.get("due_date"), Some(&Value::Date(date(2025, 7, 31))));
    assert_eq!(fields.get("description").cloned(), text("TARI 2025 - rata 1 di 2"));
    assert_eq!(fields.get("notice_number").cloned(), text("301202500000000281"));
    assert_eq!(fields.get("creditor").cloned(), text("80000000010"));
    assert_eq!(fields.get("year"), Some(&Value::Number(2025)));
    assert_eq!(fields.get("installment"), Some(&Value::Installment(Some((1, 2)))));

    let bare =
        payment_fields(&PaymentNotice { debtor_name: None, year: None, due_date: None, installment: None, ..notice() });
    assert_eq!(bare.get("name").cloned(), text(""));
    assert_eq!(bare.get("year").cloned(), text(""));
    assert_eq!(bare.get("due_date"), None);
    assert_eq!(bare.get("installment"), Some(&Value::Installment(None)));
}

#[test]
fn the_shipped_tari_template_makes_the_io_message() {
    let template = Template::parse("tari", TARI).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((template.name(), template.kind()), ("tari", Kind::Payment));
    assert_eq!(template.languages(), Language::ALL);
    let message = payment_message(&template, &notice(), Language::It, TestRecipient::Rejected).expect("valid");
    let body = message.to_io_json();
    assert_eq!(body["fiscal_code"], "BNCLRA85C52F205V");
    assert_eq!(body["feature_level_type"], "STANDARD");
    assert_eq!(body["content"]["subject"], "Avviso di pagamento TARI 2025 rata 1 di 2");
    assert_eq!(body["content"]["due_date"], "2025-07-31T21:59:59.000Z");
    assert_eq!(
        body["content"]["payment_data"],
        json!({"amount": 15000, "notice_number": "301202500000000281", "payee": {"fiscal_code": "80000000010"}})
    );
    let markdown = message.content().markdown();
    for expected in ["**Importo:** 150,00 €", "**Scadenza:** 31/07/2025", "**Codice avviso:** 301202500000000281"] {
        assert!(markdown.contains(expected), "{expected} in {markdown}");
    }

    let english = payment_message(&template, &notice(), Language::En, TestRecipient::Rejected).expect("valid");
    assert_eq!(english.content().subject(), "Waste tax (TARI) 2025 payment notice instalment 1 of 2");
    assert!(english.content().markdown().contains("**Amount:** €150.00"));
    let german = payment_message(&template, &notice(), Language::De, TestRecipient::Rejected).expect("valid");
    assert_eq!(german.content().subject(), "Zahlungsaufforderung Müllgebühr (TARI) 2025 Rate 1 von 2");
    assert!(german.content().markdown().contains("**Fälligkeit:** 31.07.2025"));
    assert_eq!(german.content().due_date(), english.content().due_date());
}

/// Every shipped template renders, in every language, within IO's limits: for plain records
/// and for records with the longest values a source is likely to give.
#[test]
fn the_shipped_templates_render_within_io_limits_in_every_language() {
    let long_notice = PaymentNotice {
        debtor_name: Some("Maria Giovanna Carolina Bartolomea De Santis Lo Presti D'Alessandro".to_owned()),
        amount: EuroCents::from_cents(EuroCents::MAX_CENTS as i64).expect("valid"),
        due_date: Some(date(2025, 12, 2)),
        description: "x".repeat(140),
        installment: Some((12, 12)),
        ..notice()
    };
    let single = PaymentNotice { installment: None, year: None, debtor_name: None, ..notice() };
    let tari = Template::parse("tari", TARI).unwrap_or_else(|error| panic!("{error}"));
    for language in Language::ALL {
        for notice in [notice(), long_notice.clone(), single.clone()] {
            let message = payment_message(&tari, &notice, language, TestRecipient::Rejected)
                .unwrap_or_else(|error| panic!("tari in {language}: {error}"));
            assert!(!message.content().markdown().contains("{{"), "{}", message.content().markdown());
        }
    }
    let mut long_fields = id_card_fields();
    long_fields
        .set("name", Value::Text("Maria Giovanna Carolina Bartolomea".to_owned()))
        .set("surname", Value::Text("De Santis Lo Presti D'Alessandro".to_owned()));
    for (name, text) in [("carta-identita", ID_CARD), ("carta-identita-cartacea", PAPER_ID_CARD)] {
        let template = Template::parse(name, text).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(template.kind(), Kind::IdCard, "{name}");
        assert_eq!(template.languages(), Language::ALL, "{name}");
        for language in Language::ALL {
            for fields in [id_card_fields(), long_fields.clone()] {
                let code: FiscalCode = "VRDGPP50T01H501B".parse().expect("valid");
                let message = id_card_message(&template, code, &fields, Some(date(2026, 3, 9)), language)
                    .unwrap_or_else(|error| panic!("{name} in {language}: {error}"));
                let content = message.content();
                assert!(!content.markdown().contains("{{") && !content.subject().contains("{{"), "{name}");
                assert!(content.markdown().contains("CA12345AB"), "{name} in {language}");
                assert_eq!(content.payment_data(), None);
            }
        }
    }
}

#[test]
fn id_card_messages_are_due_at_the_end_of_the_expiry_day() {
    let template = Template::parse("carta-identita", ID_CARD).unwrap_or_else(|error| panic!("{error}"));
    let code: FiscalCode = "VRDGPP50T01H501B".parse().expect("valid");
    let message = id_card_message(&template, code.clone(), &id_card_fields(), Some(date(2026, 3, 9)), Language::It)
        .expect("valid");
    assert_eq!(message.content().subject(), "La tua carta d'identità scade il 09/03/2026");
    assert_eq!(message.to_io_json()["content"]["due_date"], "2026-03-09T22:59:59.000Z");
    assert_eq!(message.fiscal_code(), &code);
    let undated = id_card_message(&template, code, &id_card_fields(), None, Language::De).expect("valid");
    assert_eq!(undated.content().subject(), "Ihr Personalausweis läuft am 09.03.2026 ab");
    assert_eq!(undated.content().due_date(), None);
}

#[test]
fn an_over_long_rendered_subject_names_the_language() {
    let template = payment_template("TARI: {{description}}");
    let long = PaymentNotice { description: "x".repeat(115), ..notice() };
    let error = payment_message(&template, &long, Language::En, TestRecipient::Rejected).expect_err("refused");
    let MessageError::Invalid { language, violations } = &error else { panic!("{error}") };
    assert_eq!(*language, Language::En);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "content.subject");
    assert!(violations[0].reason.contains("is 121"), "{violations:?}");
    assert!(error.to_string().starts_with("the message in en breaks IO's rules: content.subject: "), "{error}");
}

#[test]
fn every_violation_is_listed_with_a_bad_fiscal_code() {
    let template = payment_template("{{year}}");
    let bad = PaymentNotice { debtor_fiscal_code: "VRDGPP50T01H501A".to_owned(), ..notice() };
    let error = payment_message(&template, &bad, Language::De, TestRecipient::Rejected).expect_err("refused");
    let MessageError::Invalid { language: Language::De, violations } = &error else { panic!("{error}") };
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["fiscal_code", "content.subject"]);
    assert!(violations[0].reason.contains("check letter"), "{violations:?}");
    assert_eq!(error.to_string().matches(": ").count(), 3, "{error}");
}

#[test]
fn companies_are_not_io_recipients() {
    let template = parse(TARI);
    let company = PaymentNotice { debtor_fiscal_code: " 02438750586 ".to_owned(), ..notice() };
    let error = payment_message(&template, &company, Language::It, TestRecipient::Rejected).expect_err("refused");
    let MessageError::Recipient(reason) = &error else { panic!("{error}") };
    assert!(reason.contains("02438750586 has 11 digits") && reason.contains("only to people"), "{reason}");
}

#[test]
fn the_sandbox_recipient_only_when_allowed() {
    let template = parse(TARI);
    let sandbox = PaymentNotice { debtor_fiscal_code: FiscalCode::TEST_RECIPIENT.to_owned(), ..notice() };
    let message = payment_message(&template, &sandbox, Language::It, TestRecipient::Allowed).expect("allowed");
    assert!(message.fiscal_code().is_test_recipient());
    let error = payment_message(&template, &sandbox, Language::It, TestRecipient::Rejected).expect_err("refused");
    assert!(
        matches!(&error, MessageError::Invalid { violations, .. } if violations[0].field == "fiscal_code"),
        "{error}"
    );
}

#[test]
fn a_template_renders_only_its_kind() {
    let id_card = parse(ID_CARD);
    let error = payment_message(&id_card, &notice(), Language::It, TestRecipient::Rejected).expect_err("refused");
    assert_eq!(error.to_string(), "template \"test\" renders id_card records, not payment");
    let tari = parse(TARI);
    let code: FiscalCode = "VRDGPP50T01H501B".parse().expect("valid");
    let error = id_card_message(&tari, code, &id_card_fields(), None, Language::It).expect_err("refused");
    assert!(matches!(error, MessageError::Kind { expected: Kind::IdCard, found: Kind::Payment, .. }), "{error}");
}

#[test]
fn payee_is_the_creditor() {
    let template = parse(TARI);
    let roma = PaymentNotice { creditor: "02438750586".parse::<OrgFiscalCode>().expect("valid"), ..notice() };
    let message = payment_message(&template, &roma, Language::It, TestRecipient::Rejected).expect("valid");
    let payment = message.content().payment_data().expect("payment data");
    assert_eq!(payment.payee.as_ref().map(OrgFiscalCode::as_str), Some("02438750586"));
    assert_eq!(payment.invalid_after_due_date, None);
}
