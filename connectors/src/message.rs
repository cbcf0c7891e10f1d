//! An IO message to one citizen, validated against IO's limits before it is queued.
//!
//! `NewMessage::from_json` checks a request body the way IO's `NewMessage` schema does and
//! more strictly where IO is silent: it returns *every* violation, names removed and
//! unknown fields (IO drops those silently), and checks the codice fiscale, notice-number
//! check digits and payee check digit that IO's schema leaves unchecked. Lengths are
//! counted as IO counts them: in UTF-16 code units (JavaScript's `length`).

use crate::domain::{EuroCents, FiscalCode, NoticeNumber, OrgFiscalCode, TestRecipient};
use serde_json::{Map, Value};
use std::fmt;

pub const SUBJECT_LENGTH: (usize, usize) = (10, 120);
pub const MARKDOWN_LENGTH: (usize, usize) = (80, 10_000);
pub const TIME_TO_LIVE_SECONDS: (u64, u64) = (3_600, 604_800);

/// One thing wrong with a message, and which field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Dotted path of the field, e.g. `content.payment_data.notice_number`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureLevel {
    Standard,
    Advanced,
}

impl FeatureLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureLevel::Standard => "STANDARD",
            FeatureLevel::Advanced => "ADVANCED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentData {
    pub amount: EuroCents,
    pub notice_number: NoticeNumber,
    pub invalid_after_due_date: Option<bool>,
    pub payee: Option<OrgFiscalCode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    subject: String,
    markdown: String,
    due_date: Option<jiff::Timestamp>,
    payment_data: Option<PaymentData>,
    require_secure_channels: Option<bool>,
}

/// A message that passed every check and can be sent to IO as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    fiscal_code: FiscalCode,
    content: Content,
    time_to_live: Option<u64>,
    feature_level_type: FeatureLevel,
}

impl Content {
    /// Builds content from parts (as templates do), checking IO's limits.
    pub fn new(
        subject: String,
        markdown: String,
        due_date: Option<jiff::Timestamp>,
        payment_data: Option<PaymentData>,
    ) -> Result<Content, Vec<Violation>> {
        let mut v = Vec::new();
        check_length(&mut v, "content.subject", &subject, SUBJECT_LENGTH);
        check_length(&mut v, "content.markdown", &markdown, MARKDOWN_LENGTH);
        if v.is_empty() {
            Ok(Content { subject, markdown, due_date, payment_data, require_secure_channels: None })
        } else {
            Err(v)
        }
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn markdown(&self) -> &str {
        &self.markdown
    }

    pub fn due_date(&self) -> Option<jiff::Timestamp> {
        self.due_date
    }

    pub fn payment_data(&self) -> Option<&PaymentData> {
        self.payment_data.as_ref()
    }
}

impl NewMessage {
    pub fn new(fiscal_code: FiscalCode, content: Content, feature_level_type: FeatureLevel) -> NewMessage {
        NewMessage { fiscal_code, content, time_to_live: None, feature_level_type }
    }

    /// Validates an IO `NewMessage` request body. `path_fiscal_code` is the one given in
    /// the URL path (`POST /messages/{fiscal_code}`), if any.
    pub fn from_json(
        body: &Value,
        path_fiscal_code: Option<&str>,
        test: TestRecipient,
    ) -> Result<NewMessage, Vec<Violation>> {
        let mut v = Vec::new();
        let Some(body) = body.as_object() else {
            return Err(vec![violation("(body)", "must be a JSON object")]);
        };
        check_fields(&mut v, "", body, &["fiscal_code", "content", "time_to_live", "feature_level_type"]);
        let fiscal_code = fiscal_code(&mut v, body.get("fiscal_code"), path_fiscal_code, test);
        let content = match body.get("content") {
            Some(Value::Object(content)) => content_from_json(&mut v, content),
            Some(_) => push(&mut v, "content", "must be an object"),
            None => push(&mut v, "content", "is required"),
        };
        let time_to_live = body.get("time_to_live").and_then(|ttl| time_to_live(&mut v, ttl));
        let feature_level_type = match body.get("feature_level_type") {
            None => Some(FeatureLevel::Standard),
            Some(Value::String(s)) if s == "STANDARD" => Some(FeatureLevel::Standard),
            Some(Value::String(s)) if s == "ADVANCED" => Some(FeatureLevel::Advanced),
            Some(_) => push(&mut v, "feature_level_type", "must be \"STANDARD\" or \"ADVANCED\""),
        };
        match (fiscal_code, content, feature_level_type) {
            (Some(fiscal_code), Some(content), Some(feature_level_type)) if v.is_empty() => {
                Ok(NewMessage { fiscal_code, content, time_to_live, feature_level_type })
            }
            _ => Err(v),
        }
    }

    pub fn fiscal_code(&self) -> &FiscalCode {
        &self.fiscal_code
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    pub fn feature_level_type(&self) -> FeatureLevel {
        self.feature_level_type
    }

    /// The body to POST to IO's `/messages`, with the fiscal code in the body, as bytes.
    /// (Serialized straight from the fields: this is on the intake hot path.)
    pub fn to_io_body(&self) -> Vec<u8> {
        let c = &self.content;
        let wire = WireMessage {
            fiscal_code: self.fiscal_code.as_str(),
            feature_level_type: self.feature_level_type.as_str(),
            time_to_live: self.time_to_live,
            content: WireContent {
                subject: &c.subject,
                markdown: &c.markdown,
                due_date: c.due_date.map(format_timestamp),
                payment_data: c.payment_data.as_ref().map(|p| WirePayment {
                    amount: p.amount.cents(),
                    notice_number: p.notice_number.as_str(),
                    invalid_after_due_date: p.invalid_after_due_date,
                    payee: p.payee.as_ref().map(|payee| WirePayee { fiscal_code: payee.as_str() }),
                }),
                require_secure_channels: c.require_secure_channels,
            },
        };
        // Serializing plain strings, integers and booleans into a Vec cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The same body as a JSON value.
    pub fn to_io_json(&self) -> Value {
        serde_json::from_slice(&self.to_io_body()).unwrap_or(Value::Null)
    }
}

#[derive(serde::Serialize)]
struct WireMessage<'a> {
    fiscal_code: &'a str,
    feature_level_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_live: Option<u64>,
    content: WireContent<'a>,
}

#[derive(serde::Serialize)]
struct WireContent<'a> {
    subject: &'a str,
    markdown: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_data: Option<WirePayment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_secure_channels: Option<bool>,
}

#[derive(serde::Serialize)]
struct WirePayment<'a> {
    amount: u64,
    notice_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid_after_due_date: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payee: Option<WirePayee<'a>>,
}

#[derive(serde::Serialize)]
struct WirePayee<'a> {
    fiscal_code: &'a str,
}

/// IO's timestamp form: UTC with milliseconds, e.g. `2025-07-31T21:59:59.000Z`.
pub fn format_timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn content_from_json(v: &mut Vec<Violation>, c: &Map<String, Value>) -> Option<Content> {
    check_fields(v, "content.", c, &["subject", "markdown", "due_date", "payment_data", "require_secure_channels"]);
    let subject = required_string(v, "content.subject", c.get("subject"));
    if let Some(s) = subject {
        check_length(v, "content.subject", s, SUBJECT_LENGTH);
    }
    let markdown = required_string(v, "content.markdown", c.get("markdown"));
    if let Some(m) = markdown {
        check_length(v, "content.markdown", m, MARKDOWN_LENGTH);
    }
    let due_date = c.get("due_date").and_then(|d| due_date(v, d));
    let payment_data = match c.get("payment_data") {
        None => None,
        Some(Value::Object(p)) => payment_data(v, p),
        Some(_) => push(v, "content.payment_data", "must be an object"),
    };
    let require_secure_channels = optional_bool(v, "content.require_secure_channels", c.get("require_secure_channels"));
    Some(Content {
        subject: subject?.to_string(),
        markdown: markdown?.to_string(),
        due_date,
        payment_data,
        require_secure_channels,
    })
}

fn payment_data(v: &mut Vec<Violation>, p: &Map<String, Value>) -> Option<PaymentData> {
    const AT: &str = "content.payment_data";
    check_fields(v, "content.payment_data.", p, &["amount", "notice_number", "invalid_after_due_date", "payee"]);
    let amount = match p.get("amount") {
        None => push(v, &format!("{AT}.amount"), "is required (integer euro cents)"),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(cents) => EuroCents::from_cents(cents)
                .map_err(|e| v.push(violation(&format!("{AT}.amount"), &e.to_string())))
                .ok(),
            None => push(v, &format!("{AT}.amount"), "must be an integer number of euro cents"),
        },
        Some(_) => push(v, &format!("{AT}.amount"), "must be an integer number of euro cents"),
    };
    let notice_number = required_string(v, &format!("{AT}.notice_number"), p.get("notice_number")).and_then(|s| {
        if s.len() != 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return push(v, &format!("{AT}.notice_number"), "must be exactly 18 digits (no spaces)");
        }
        s.parse::<NoticeNumber>().map_err(|e| v.push(violation(&format!("{AT}.notice_number"), &e.to_string()))).ok()
    });
    let invalid_after_due_date =
        optional_bool(v, &format!("{AT}.invalid_after_due_date"), p.get("invalid_after_due_date"));
    let payee = match p.get("payee") {
        None => None,
        Some(Value::Object(payee)) => {
            check_fields(v, "content.payment_data.payee.", payee, &["fiscal_code"]);
            required_string(v, &format!("{AT}.payee.fiscal_code"), payee.get("fiscal_code")).and_then(|s| {
                s.parse::<OrgFiscalCode>()
                    .map_err(|e| v.push(violation(&format!("{AT}.payee.fiscal_code"), &e.to_string())))
                    .ok()
            })
        }
        Some(_) => push(v, &format!("{AT}.payee"), "must be an object with a fiscal_code"),
    };
    Some(PaymentData { amount: amount?, notice_number: notice_number?, invalid_after_due_date, payee })
}

fn fiscal_code(
    v: &mut Vec<Violation>,
    body: Option<&Value>,
    path: Option<&str>,
    test: TestRecipient,
) -> Option<FiscalCode> {
    let (field, text) = match (body, path) {
        (Some(_), Some(_)) => {
            return push(v, "fiscal_code", "given both in the path and in the body: give exactly one")
        }
        (None, None) => return push(v, "fiscal_code", "is required, in the body or in the path"),
        (None, Some(path)) => ("fiscal_code (path)", path),
        (Some(Value::String(s)), None) => ("fiscal_code", s.as_str()),
        (Some(_), None) => return push(v, "fiscal_code", "must be a string"),
    };
    FiscalCode::parse(text, test).map_err(|e| v.push(violation(field, &e.to_string()))).ok()
}

fn time_to_live(v: &mut Vec<Violation>, value: &Value) -> Option<u64> {
    let (min, max) = TIME_TO_LIVE_SECONDS;
    match value.as_u64() {
        Some(ttl) if (min..=max).contains(&ttl) => Some(ttl),
        _ => push(
            v,
            "time_to_live",
            &format!("must be an integer from {min} to {max} seconds (deprecated by IO: better omitted)"),
        ),
    }
}

fn due_date(v: &mut Vec<Violation>, value: &Value) -> Option<jiff::Timestamp> {
    const HINT: &str = "must be an ISO-8601 date and time with `Z` or an offset, e.g. 2025-07-31T21:59:59.000Z";
    match value {
        Value::String(s) => s.parse::<jiff::Timestamp>().map_err(|_| v.push(violation("content.due_date", HINT))).ok(),
        _ => push(v, "content.due_date", HINT),
    }
}

/// Reports fields not in `allowed`, naming the ones IO removed or that we do not carry.
fn check_fields(v: &mut Vec<Violation>, prefix: &str, object: &Map<String, Value>, allowed: &[&str]) {
    for name in object.keys().filter(|k| !allowed.contains(&k.as_str())) {
        let reason = match name.as_str() {
            "legal_data" | "prescription_data" | "default_addresses" => "has been removed from IO: remove it",
            "eu_covid_cert" => "is obsolete and not accepted by io-gateway",
            "third_party_data" => "(remote content and attachments) is not supported by io-gateway",
            _ => "is not a field of IO messages (IO would drop it silently)",
        };
        v.push(violation(&format!("{prefix}{name}"), reason));
    }
}

fn required_string<'a>(v: &mut Vec<Violation>, field: &str, value: Option<&'a Value>) -> Option<&'a str> {
    match value {
        Some(Value::String(s)) => Some(s),
        Some(_) => push(v, field, "must be a string"),
        None => push(v, field, "is required"),
    }
}

fn optional_bool(v: &mut Vec<Violation>, field: &str, value: Option<&Value>) -> Option<bool> {
    match value {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => push(v, field, "must be true or false"),
    }
}

fn check_length(v: &mut Vec<Violation>, field: &str, text: &str, bounds: (usize, usize)) {
    check_units(v, field, utf16_length(text), bounds);
}

/// The violations [`Content::new`] would report for a subject and markdown of these
/// lengths (UTF-16 code units, see [`crate::template::Template::measure`]).
pub fn content_length_violations(subject: usize, markdown: usize) -> Vec<Violation> {
    let mut v = Vec::new();
    check_units(&mut v, "content.subject", subject, SUBJECT_LENGTH);
    check_units(&mut v, "content.markdown", markdown, MARKDOWN_LENGTH);
    v
}

fn check_units(v: &mut Vec<Violation>, field: &str, length: usize, (min, max): (usize, usize)) {
    if !(min..=max).contains(&length) {
        v.push(violation(field, &format!("must be {min} to {max} characters long, is {length}")));
    }
}

/// The length of `text` as IO (JavaScript) counts it: in UTF-16 code units, so one per
/// character and two for a character outside the BMP (an emoji). Counted on the UTF-8 bytes:
/// one unit per byte that starts a character (any but a continuation byte `10xxxxxx`), plus
/// one per byte that starts a 4-byte character (`11110xxx`), the only ones outside the BMP.
/// 64 bytes at a time, which the compiler vectorizes: several times faster than
/// `encode_utf16().count()` on a long markdown.
pub(crate) fn utf16_length(text: &str) -> usize {
    // At most 2 units per byte: a block's count fits in a u8.
    let units = |bytes: &[u8]| -> u8 {
        bytes.iter().map(|&byte| u8::from((byte & 0xC0) != 0x80) + u8::from(byte >= 0xF0)).sum()
    };
    let mut blocks = text.as_bytes().chunks_exact(64);
    let mut length = 0;
    for block in &mut blocks {
        length += usize::from(units(block));
    }
    length + usize::from(units(blocks.remainder()))
}

fn violation(field: &str, reason: &str) -> Violation {
    Violation { field: field.to_string(), reason: reason.to_string() }
}

/// Records a violation; returns `None` so callers can use it as the field's value.
fn push<T>(v: &mut Vec<Violation>, field: &str, reason: &str) -> Option<T> {
    v.push(violation(field, reason));
    None
}

#[cfg(test)]
mod tests;
