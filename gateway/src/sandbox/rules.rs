//! IO's own checks on a submitted message, as its schema states them: laxer than the
//! gateway's (no check letter, no notice check digits; unknown fields are dropped
//! silently), because the sandbox must answer what IO would.

use connectors::message::{MARKDOWN_LENGTH, SUBJECT_LENGTH, TIME_TO_LIVE_SECONDS};
use serde_json::{Map, Value};

/// A submission IO would accept, with unknown fields already dropped.
#[derive(Debug, Clone)]
pub struct Submission {
    pub fiscal_code: String,
    pub content: Value,
    pub feature_level_type: String,
    pub time_to_live: Option<u64>,
}

const CONTENT_FIELDS: &[&str] = &[
    "subject",
    "markdown",
    "payment_data",
    "due_date",
    "prescription_data",
    "eu_covid_cert",
    "third_party_data",
    "legal_data",
    "require_secure_channels",
];

/// Checks a `NewMessage` body; `Err` holds IO-style reasons for a 400.
pub fn check_submission(body: &[u8], path_fiscal_code: Option<&str>) -> Result<Submission, Vec<String>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| vec![format!("invalid JSON: {e}")])?;
    let Some(object) = value.as_object() else {
        return Err(vec!["value is not a valid [NewMessage]".into()]);
    };
    let mut reasons = Vec::new();
    let fiscal_code = match (path_fiscal_code, object.get("fiscal_code")) {
        (Some(_), Some(_)) | (None, None) => {
            reasons.push("exactly one of the path parameter or the body must carry fiscal_code".into());
            None
        }
        (Some(path), None) => Some(path.to_string()),
        (None, Some(Value::String(body))) => Some(body.clone()),
        (None, Some(_)) => {
            reasons.push("value at [root.fiscal_code] is not a valid [FiscalCode]".into());
            None
        }
    };
    if let Some(code) = &fiscal_code {
        if !fiscal_code_pattern(code) {
            reasons.push(format!("value [{code:?}] at [root.fiscal_code] is not a valid [FiscalCode]"));
        }
    }
    let content = match object.get("content") {
        Some(Value::Object(content)) => Some(check_content(content, &mut reasons)),
        _ => {
            reasons.push("value at [root.content] is not a valid [MessageContent]".into());
            None
        }
    };
    let time_to_live = match object.get("time_to_live") {
        None => None,
        Some(v) => match v.as_u64().filter(|t| (TIME_TO_LIVE_SECONDS.0..=TIME_TO_LIVE_SECONDS.1).contains(t)) {
            Some(ttl) => Some(ttl),
            None => {
                reasons.push("value at [root.time_to_live] is not a valid [TimeToLiveSeconds]".into());
                None
            }
        },
    };
    let feature_level_type = match object.get("feature_level_type") {
        None => "STANDARD".to_string(),
        Some(Value::String(s)) if s == "STANDARD" || s == "ADVANCED" => s.clone(),
        Some(_) => {
            reasons.push("value at [root.feature_level_type] is not a valid [FeatureLevelType]".into());
            String::new()
        }
    };
    match (fiscal_code, content) {
        (Some(fiscal_code), Some(content)) if reasons.is_empty() => {
            Ok(Submission { fiscal_code, content, feature_level_type, time_to_live })
        }
        _ => Err(reasons),
    }
}

/// The path parameter's pattern from IO's spec (shape only, no check letter).
pub fn fiscal_code_pattern(code: &str) -> bool {
    let b = code.as_bytes();
    let omocode = |c: u8| c.is_ascii_digit() || b"LMNPQRSTUV".contains(&c);
    b.len() == 16
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..8].iter().all(|c| omocode(*c))
        && b"ABCDEHLMPRST".contains(&b[8])
        && b[9..11].iter().all(|c| omocode(*c))
        && b[11].is_ascii_uppercase()
        && b[12..15].iter().all(|c| omocode(*c))
        && b[15].is_ascii_uppercase()
}

fn check_content(content: &Map<String, Value>, reasons: &mut Vec<String>) -> Value {
    for (field, (min, max)) in [("subject", SUBJECT_LENGTH), ("markdown", MARKDOWN_LENGTH)] {
        let ok = content
            .get(field)
            .and_then(Value::as_str)
            .map(|s| s.encode_utf16().count())
            .is_some_and(|n| (min..=max).contains(&n));
        if !ok {
            reasons.push(format!(
                "value at [root.content.{field}] is not a valid [string of length >= {min} and <= {max}]"
            ));
        }
    }
    if let Some(due) = content.get("due_date") {
        if due.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()).is_none() {
            reasons.push("value at [root.content.due_date] is not a valid [Timestamp]".into());
        }
    }
    if let Some(payment) = content.get("payment_data") {
        check_payment(payment, reasons);
    }
    // IO keeps only the fields of its schema: anything else is dropped without a word.
    let kept: Map<String, Value> = content
        .iter()
        .filter(|(k, _)| CONTENT_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

fn check_payment(payment: &Value, reasons: &mut Vec<String>) {
    let amount_ok = payment.get("amount").and_then(Value::as_u64).is_some_and(|a| (1..=9_999_999_999).contains(&a));
    if !amount_ok {
        reasons.push("value at [root.content.payment_data.amount] is not a valid [PaymentAmount]".into());
    }
    let notice = payment.get("notice_number").and_then(Value::as_str).unwrap_or("");
    let notice_ok =
        notice.len() == 18 && b"0123".contains(&notice.as_bytes()[0]) && notice.bytes().all(|b| b.is_ascii_digit());
    if !notice_ok {
        reasons.push("value at [root.content.payment_data.notice_number] is not a valid [PaymentNoticeNumber]".into());
    }
    if let Some(payee) = payment.get("payee") {
        let code = payee.get("fiscal_code").and_then(Value::as_str).unwrap_or("");
        if code.len() != 11 || !code.bytes().all(|b| b.is_ascii_digit()) {
            reasons.push(
                "value at [root.content.payment_data.payee.fiscal_code] is not a valid [OrganizationFiscalCode]".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value, path: Option<&str>) -> Result<Submission, Vec<String>> {
        check_submission(body.to_string().as_bytes(), path)
    }

    fn valid() -> Value {
        serde_json::from_str(include_str!("../../../connectors/tests/fixtures/io_message_tari.json")).unwrap()
    }

    #[test]
    fn accepts_the_sample_and_drops_unknown_fields_silently() {
        let mut body = valid();
        body["content"]["colour"] = json!("red");
        let submission = check(body, None).unwrap();
        assert_eq!(submission.fiscal_code, "BNCLRA85C52F205V");
        assert!(submission.content.get("colour").is_none());
        assert_eq!(submission.content["payment_data"]["amount"], 15000);
    }

    #[test]
    fn refuses_what_the_schema_refuses() {
        let cases = [
            ("/content/subject", json!("short")),
            ("/content/markdown", json!("short")),
            ("/content/due_date", json!("tomorrow")),
            ("/content/payment_data/amount", json!(0)),
            ("/content/payment_data/notice_number", json!("401000000000012373")),
            ("/content/payment_data/payee/fiscal_code", json!("8000000001")),
            ("/fiscal_code", json!("not-a-code")),
            ("/feature_level_type", json!("GOLD")),
        ];
        for (pointer, value) in cases {
            let mut body = valid();
            *body.pointer_mut(pointer).unwrap() = value;
            assert!(check(body, None).is_err(), "{pointer}");
        }
    }

    #[test]
    fn is_laxer_than_the_gateway_where_io_is() {
        // Wrong check letter, wrong notice check digits: IO's schema does not look.
        let mut body = valid();
        body["fiscal_code"] = json!("BNCLRA85C52F205A");
        body["content"]["payment_data"]["notice_number"] = json!("301202500000000282");
        assert!(check(body, None).is_ok());
    }

    #[test]
    fn fiscal_code_in_exactly_one_place() {
        assert!(check(valid(), Some("BNCLRA85C52F205V")).is_err());
        let mut body = valid();
        body.as_object_mut().unwrap().remove("fiscal_code");
        assert!(check(body.clone(), None).is_err());
        assert_eq!(check(body, Some("BNCLRA85C52F205V")).unwrap().fiscal_code, "BNCLRA85C52F205V");
    }
}
