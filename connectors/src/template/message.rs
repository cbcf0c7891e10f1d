//! Templates turned into IO messages: a payment notice's or an ID-card record's message in
//! one language, checked against IO's limits.

use super::{join, Fields, Kind, Language, Measured, RenderError, Rendered, Template, Value, PAYMENT_PLACEHOLDERS};
use crate::domain::{due_date_end_of_day, FiscalCode, TestRecipient};
use crate::message::{content_length_violations, Content, FeatureLevel, NewMessage, PaymentData, Violation};
use crate::payment::PaymentNotice;

/// Why a record could not become an IO message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The rendered message (or its recipient) breaks IO's rules; every violation is listed.
    #[error("the message in {language} breaks IO's rules: {}", join(violations))]
    Invalid { language: Language, violations: Vec<Violation> },
    /// The debtor cannot receive IO messages at all (e.g. a company).
    #[error("{0}")]
    Recipient(String),
    #[error("template {template:?} renders {found} records, not {expected}")]
    Kind { template: String, expected: Kind, found: Kind },
}

/// The values a payment template's placeholders take for `notice`. A notice without a
/// debtor name or year gives empty text for them, a single payment an empty installment;
/// a notice without due day gives no `due_date`, so a template using it fails to render.
pub fn payment_fields(notice: &PaymentNotice) -> Fields {
    let year = notice.year.map_or(Value::Text(String::new()), |year| Value::Number(i64::from(year)));
    let mut fields = Fields(Vec::with_capacity(PAYMENT_PLACEHOLDERS.len()));
    fields
        .set("name", Value::Text(notice.debtor_name.clone().unwrap_or_default()))
        .set("amount", Value::Amount(notice.amount))
        .set("description", Value::Text(notice.description.clone()))
        .set("notice_number", Value::Text(notice.notice_number.as_str().to_owned()))
        .set("creditor", Value::Text(notice.creditor.as_str().to_owned()))
        .set("year", year)
        .set("installment", Value::Installment(notice.installment));
    if let Some(day) = notice.due_date {
        fields.set("due_date", Value::Date(day));
    }
    fields
}

/// The IO message for one payable notice, in `language` (or Italian): payment data with the
/// creditor as payee, due date the end of the notice's due day in Rome, feature level
/// STANDARD. The debtor's fiscal code must be a person's (`test` decides on IO's sandbox
/// recipient).
pub fn payment_message(
    template: &Template,
    notice: &PaymentNotice,
    language: Language,
    test: TestRecipient,
) -> Result<NewMessage, MessageError> {
    expect_kind(template, Kind::Payment)?;
    let mut violations = Vec::new();
    let recipient = recipient(&notice.debtor_fiscal_code, test, &mut violations)?;
    let rendered = template.render(language, &payment_fields(notice))?;
    let payment_data = PaymentData {
        amount: notice.amount,
        notice_number: notice.notice_number.clone(),
        invalid_after_due_date: None,
        payee: Some(notice.creditor.clone()),
    };
    build(rendered, recipient, notice.due_date, Some(payment_data), violations)
}

/// What [`payment_message`] decides for the same arguments — the recipient when the
/// message is valid, the same error otherwise — without building the message: the texts
/// are measured, not rendered ([`Template::measure`]). `fields` are `payment_fields(notice)`,
/// which a caller checking several languages builds once.
pub fn check_payment(
    template: &Template,
    notice: &PaymentNotice,
    fields: &Fields,
    language: Language,
    test: TestRecipient,
) -> Result<FiscalCode, MessageError> {
    expect_kind(template, Kind::Payment)?;
    let mut violations = Vec::new();
    let recipient = recipient(&notice.debtor_fiscal_code, test, &mut violations)?;
    let measured = template.measure(language, fields)?;
    check(measured, recipient, notice.due_date, violations)
}

/// The IO message for an ID-card reminder, from already extracted `fields`; `due` (the
/// card's expiry, say) becomes the due date at the end of that day in Rome.
pub fn id_card_message(
    template: &Template,
    fiscal_code: FiscalCode,
    fields: &Fields,
    due: Option<jiff::civil::Date>,
    language: Language,
) -> Result<NewMessage, MessageError> {
    expect_kind(template, Kind::IdCard)?;
    let rendered = template.render(language, fields)?;
    build(rendered, Some(fiscal_code), due, None, Vec::new())
}

fn expect_kind(template: &Template, expected: Kind) -> Result<(), MessageError> {
    match template.kind {
        found if found == expected => Ok(()),
        found => Err(MessageError::Kind { template: template.name.clone(), expected, found }),
    }
}

/// The debtor as an IO recipient; an invalid code is a violation of `fiscal_code`.
fn recipient(
    text: &str,
    test: TestRecipient,
    violations: &mut Vec<Violation>,
) -> Result<Option<FiscalCode>, MessageError> {
    let code = text.trim();
    if code.len() == 11 && code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MessageError::Recipient(format!(
            "the debtor's fiscal code {code} has 11 digits, so it is a company's or a body's: IO delivers only to \
             people, by their 16-character codice fiscale"
        )));
    }
    match FiscalCode::parse(code, test) {
        Ok(code) => Ok(Some(code)),
        Err(error) => {
            violations.push(Violation { field: "fiscal_code".to_owned(), reason: error.to_string() });
            Ok(None)
        }
    }
}

/// [`build`]'s decision on measured texts.
fn check(
    measured: Measured,
    recipient: Option<FiscalCode>,
    due: Option<jiff::civil::Date>,
    mut violations: Vec<Violation>,
) -> Result<FiscalCode, MessageError> {
    if let Some(Err(error)) = due.map(due_date_end_of_day) {
        violations.push(Violation { field: "content.due_date".to_owned(), reason: error.to_string() });
    }
    violations.extend(content_length_violations(measured.subject, measured.markdown));
    match recipient {
        Some(recipient) if violations.is_empty() => Ok(recipient),
        _ => Err(MessageError::Invalid { language: measured.language, violations }),
    }
}

fn build(
    rendered: Rendered,
    recipient: Option<FiscalCode>,
    due: Option<jiff::civil::Date>,
    payment_data: Option<PaymentData>,
    mut violations: Vec<Violation>,
) -> Result<NewMessage, MessageError> {
    let language = rendered.language;
    let due_date = due.map(due_date_end_of_day).transpose().unwrap_or_else(|error| {
        violations.push(Violation { field: "content.due_date".to_owned(), reason: error.to_string() });
        None
    });
    let content = Content::new(rendered.subject, rendered.markdown, due_date, payment_data)
        .map_err(|content_violations| violations.extend(content_violations))
        .ok();
    match (recipient, content) {
        (Some(recipient), Some(content)) if violations.is_empty() => {
            Ok(NewMessage::new(recipient, content, FeatureLevel::Standard))
        }
        _ => Err(MessageError::Invalid { language, violations }),
    }
}
