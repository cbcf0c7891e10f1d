//! Table tests for IO message validation.

use super::*;
use serde_json::json;

const MARKDOWN: &str = "Gentile contribuente, e' disponibile l'avviso di pagamento della prima rata TARI 2025.";

fn valid() -> Value {
    json!({
        "fiscal_code": "BNCLRA85C52F205V",
        "feature_level_type": "STANDARD",
        "content": {
            "subject": "TARI 2025: avviso di pagamento rata 1",
            "markdown": MARKDOWN,
            "due_date": "2025-07-31T21:59:59.000Z",
            "payment_data": {
                "amount": 15000,
                "notice_number": "301202500000000281",
                "invalid_after_due_date": false,
                "payee": { "fiscal_code": "80000000010" }
            }
        }
    })
}

fn fields(body: &Value, path: Option<&str>) -> Vec<String> {
    match NewMessage::from_json(body, path, TestRecipient::Rejected) {
        Ok(_) => Vec::new(),
        Err(v) => v.into_iter().map(|v| v.field).collect(),
    }
}

fn with(pointer: &str, value: Value) -> Value {
    let mut body = valid();
    *body.pointer_mut(pointer).unwrap() = value;
    body
}

#[test]
fn the_io_sample_message_is_valid_and_round_trips() {
    let sample: Value = serde_json::from_str(include_str!("../../tests/fixtures/io_message_tari.json")).unwrap();
    let message = NewMessage::from_json(&sample, None, TestRecipient::Rejected).unwrap();
    assert_eq!(message.to_io_json(), sample);
}

#[test]
fn each_bad_field_is_named() {
    let long = "x".repeat(121);
    let cases: Vec<(Value, &str)> = vec![
        (with("/content/subject", json!("too short")), "content.subject"),
        (with("/content/subject", json!(long)), "content.subject"),
        (with("/content/markdown", json!("short")), "content.markdown"),
        (with("/content/markdown", json!("x".repeat(10_001))), "content.markdown"),
        (with("/content/due_date", json!("31/07/2025")), "content.due_date"),
        (with("/content/due_date", json!("2025-07-31")), "content.due_date"),
        (with("/content/payment_data/amount", json!(0)), "content.payment_data.amount"),
        (with("/content/payment_data/amount", json!(10_000_000_000u64)), "content.payment_data.amount"),
        (with("/content/payment_data/amount", json!(1.5)), "content.payment_data.amount"),
        (with("/content/payment_data/amount", json!("150")), "content.payment_data.amount"),
        (
            with("/content/payment_data/notice_number", json!("301202500000000282")),
            "content.payment_data.notice_number",
        ),
        (
            with("/content/payment_data/notice_number", json!("3012 0250 0000 0002 81")),
            "content.payment_data.notice_number",
        ),
        (
            with("/content/payment_data/notice_number", json!("401000000000012373")),
            "content.payment_data.notice_number",
        ),
        (
            with("/content/payment_data/payee/fiscal_code", json!("80000000011")),
            "content.payment_data.payee.fiscal_code",
        ),
        (
            with("/content/payment_data/invalid_after_due_date", json!("no")),
            "content.payment_data.invalid_after_due_date",
        ),
        (with("/fiscal_code", json!("VRDGPP50T01H501A")), "fiscal_code"),
        (with("/fiscal_code", json!(42)), "fiscal_code"),
        (with("/feature_level_type", json!("PREMIUM")), "feature_level_type"),
        (with("/content", json!("text")), "content"),
    ];
    for (body, field) in cases {
        assert_eq!(fields(&body, None), [field], "body: {body}");
    }
}

#[test]
fn every_violation_is_reported_at_once() {
    let body = json!({
        "fiscal_code": "VRDGPP50T01H501A",
        "content": { "subject": "short", "markdown": "short", "legal_data": {}, "colour": "red" },
        "default_addresses": { "email": "a@b.it" },
        "time_to_live": 60
    });
    let mut got = fields(&body, None);
    got.sort();
    assert_eq!(
        got,
        [
            "content.colour",
            "content.legal_data",
            "content.markdown",
            "content.subject",
            "default_addresses",
            "fiscal_code",
            "time_to_live",
        ]
    );
}

#[test]
fn removed_and_unknown_fields_are_refused_by_name_with_a_reason() {
    let mut body = valid();
    body["content"]["prescription_data"] = json!({ "nre": "123456789012345" });
    body["content"]["payment_data"]["iban"] = json!("IT60X0542811101000000123456");
    let errors = NewMessage::from_json(&body, None, TestRecipient::Rejected).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().any(|e| e.field == "content.prescription_data" && e.reason.contains("removed")));
    assert!(errors.iter().any(|e| e.field == "content.payment_data.iban" && e.reason.contains("drop it silently")));
}

#[test]
fn fiscal_code_goes_in_exactly_one_place() {
    assert_eq!(fields(&valid(), Some("BNCLRA85C52F205V")), ["fiscal_code"]);
    let mut body = valid();
    body.as_object_mut().unwrap().remove("fiscal_code");
    assert_eq!(fields(&body, None), ["fiscal_code"]);
    assert!(fields(&body, Some("BNCLRA85C52F205V")).is_empty());
    assert_eq!(fields(&body, Some("BNCLRA85C52F205X")), ["fiscal_code (path)"]);
}

#[test]
fn test_recipient_only_where_allowed() {
    let body = with("/fiscal_code", json!("AAAAAA00A00A000A"));
    assert_eq!(fields(&body, None), ["fiscal_code"]);
    assert!(NewMessage::from_json(&body, None, TestRecipient::Allowed).is_ok());
}

#[test]
fn lengths_count_utf16_units_like_io() {
    // A character outside the BMP counts twice in JavaScript, so here too.
    assert_eq!(fields(&with("/content/subject", json!("Avviso 📄 ok")), None), Vec::<String>::new());
    assert_eq!(fields(&with("/content/subject", json!("12345678📄")), None), Vec::<String>::new());
    // Nine characters, ten UTF-16 units: valid for IO. Eight characters, nine units: too short.
    assert_eq!(fields(&with("/content/subject", json!("1234567📄")), None), ["content.subject"]);
}

#[test]
fn utf16_length_matches_encode_utf16() {
    let samples = [
        "",
        "TARI 2025",
        "è già così: più perché",
        "Avviso 📄 ok 👩‍👩‍👧",
        "東京都の税金のお知らせ",
        "ﬀ\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}",
    ];
    for sample in samples {
        // Lengths around the 64-byte blocks, each character split across a block boundary.
        for repeat in [1, 2, 3, 7, 13, 64, 65, 200] {
            for prefix in ["", "a", "ab", "abc"] {
                let text = format!("{prefix}{}", sample.repeat(repeat));
                assert_eq!(utf16_length(&text), text.encode_utf16().count(), "{text:?}");
            }
        }
    }
}

#[test]
fn due_date_offsets_are_normalised_to_utc() {
    let message = NewMessage::from_json(
        &with("/content/due_date", json!("2025-07-31T23:59:59+02:00")),
        None,
        TestRecipient::Rejected,
    )
    .unwrap();
    assert_eq!(message.to_io_json()["content"]["due_date"], "2025-07-31T21:59:59.000Z");
}

#[test]
fn optional_fields_stay_absent_and_ttl_is_kept() {
    let body = json!({
        "fiscal_code": "bnclra85c52f205v",
        "time_to_live": 3600,
        "content": { "subject": "Avviso importante", "markdown": MARKDOWN }
    });
    let out = NewMessage::from_json(&body, None, TestRecipient::Rejected).unwrap().to_io_json();
    assert_eq!(
        out,
        json!({
            "fiscal_code": "BNCLRA85C52F205V",
            "feature_level_type": "STANDARD",
            "time_to_live": 3600,
            "content": { "subject": "Avviso importante", "markdown": MARKDOWN }
        })
    );
}

#[test]
fn a_body_that_is_not_an_object_is_one_violation() {
    for body in [json!([]), json!("x"), json!(null), json!(3)] {
        assert_eq!(fields(&body, None), ["(body)"]);
    }
}
