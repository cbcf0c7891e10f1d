//! What the queue keeps of an imported message: the record's values, as compact JSON, to
//! be rendered through the stored template when the message is sent — in the citizen's
//! preferred language, known only then from IO's profile answer.
//!
//! Every language is rendered and validated once at import, through the very functions
//! used at send time, so a recipe that was queued always renders.

use connectors::anpr::Resident;
use connectors::campaign::IdCardReminder;
use connectors::domain::{EuroCents, FiscalCode, NoticeNumber, TestRecipient};
use connectors::message::{content_length_violations, NewMessage};
use connectors::payment::PaymentNotice;
use connectors::template::{self, Fields, Language, MessageError, Template, Value};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// A record's values, tagged by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipe {
    Payment(Payment),
    IdCard(IdCard),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    fiscal_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    creditor: String,
    notice_number: String,
    cents: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due: Option<Date>,
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    installment: Option<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    year: Option<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCard {
    fiscal_code: String,
    name: String,
    surname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    card_number: Option<String>,
    valid_until: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued: Option<Date>,
    /// The message's due day: the card's end of validity, unless already past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due: Option<Date>,
}

impl Recipe {
    pub fn payment(notice: &PaymentNotice) -> Recipe {
        Recipe::Payment(Payment {
            fiscal_code: notice.debtor_fiscal_code.clone(),
            name: notice.debtor_name.clone(),
            creditor: notice.creditor.as_str().to_string(),
            notice_number: notice.notice_number.as_str().to_string(),
            cents: notice.amount.cents(),
            due: notice.due_date,
            description: notice.description.clone(),
            installment: notice.installment,
            year: notice.year,
        })
    }

    /// The reminder for `resident` (whose fiscal code was checked), due at `today`.
    pub fn id_card(resident: &Resident, fiscal_code: &FiscalCode, reminder: &IdCardReminder, today: Date) -> Recipe {
        let card = resident.id_card.as_ref();
        Recipe::IdCard(IdCard {
            fiscal_code: fiscal_code.as_str().to_string(),
            name: resident.name.clone().unwrap_or_default(),
            surname: resident.surname.clone().unwrap_or_default(),
            card_number: card.map(|c| c.number.clone()),
            valid_until: reminder.valid_until,
            issued: card.and_then(|c| c.issued),
            due: (reminder.valid_until >= today).then_some(reminder.valid_until),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A derived Serialize of strings and numbers into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Recipe, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the stored record cannot be read: {e}"))
    }

    /// The IO message in `language` (Italian when the template lacks it).
    pub fn render(&self, template: &Template, language: Language, test: TestRecipient) -> Result<NewMessage, String> {
        match self {
            Recipe::Payment(p) => {
                let notice = p.notice()?;
                template::payment_message(template, &notice, language, test).map_err(|e| e.to_string())
            }
            Recipe::IdCard(card) => card.render(template, language, test).map_err(|e| e.to_string()),
        }
    }

    /// Checks the message in every language of `template` against IO's rules, as sending
    /// it would render it: the recipient when all are valid, or the first problem.
    /// Languages differ only in subject and markdown, so the others are only measured.
    pub fn validate(&self, template: &Template, test: TestRecipient) -> Result<FiscalCode, MessageError> {
        match self {
            Recipe::Payment(p) => validate_notice(&p.notice().map_err(MessageError::Recipient)?, template, test),
            Recipe::IdCard(card) => {
                let italian = card.render(template, Language::It, test)?;
                check_other_languages(template, &card.fields())?;
                Ok(italian.fiscal_code().clone())
            }
        }
    }
}

/// [`Recipe::validate`] for the recipe of `notice`, without reading the notice back. No
/// text is built: an import checks a million records this way, and measuring the three
/// languages' texts instead of rendering them (`check_payment`, `Template::measure`) is
/// what makes that cheap.
pub fn validate_notice(
    notice: &PaymentNotice,
    template: &Template,
    test: TestRecipient,
) -> Result<FiscalCode, MessageError> {
    let fields = template::payment_fields(notice);
    let recipient = template::check_payment(template, notice, &fields, Language::It, test)?;
    check_other_languages(template, &fields)?;
    Ok(recipient)
}

fn check_other_languages(template: &Template, fields: &Fields) -> Result<(), MessageError> {
    for language in template.languages().into_iter().filter(|l| *l != Language::It) {
        let measured = template.measure(language, fields)?;
        let violations = content_length_violations(measured.subject, measured.markdown);
        if !violations.is_empty() {
            return Err(MessageError::Invalid { language: measured.language, violations });
        }
    }
    Ok(())
}

impl Payment {
    fn notice(&self) -> Result<PaymentNotice, String> {
        let bad = |what: &str, e: &dyn std::fmt::Display| format!("the stored {what} is not valid: {e}");
        Ok(PaymentNotice {
            debtor_fiscal_code: self.fiscal_code.clone(),
            debtor_name: self.name.clone(),
            creditor: self.creditor.parse().map_err(|e| bad("creditor", &e))?,
            // Check digits were judged at import (a warn-only source may have queued a
            // notice whose check digits are wrong); everything else is checked again.
            notice_number: NoticeNumber::parse_ignoring_check(&self.notice_number)
                .map(|(number, _)| number)
                .map_err(|e| bad("notice number", &e))?,
            amount: EuroCents::from_cents(i64::try_from(self.cents).unwrap_or(-1)).map_err(|e| bad("amount", &e))?,
            due_date: self.due,
            description: self.description.clone(),
            installment: self.installment,
            year: self.year,
        })
    }
}

impl IdCard {
    fn render(&self, template: &Template, language: Language, test: TestRecipient) -> Result<NewMessage, MessageError> {
        let fiscal_code =
            FiscalCode::parse(&self.fiscal_code, test).map_err(|e| MessageError::Recipient(e.to_string()))?;
        template::id_card_message(template, fiscal_code, &self.fields(), self.due, language)
    }

    fn fields(&self) -> Fields {
        let mut fields = Fields::new();
        fields
            .set("name", Value::Text(self.name.clone()))
            .set("surname", Value::Text(self.surname.clone()))
            .set("valid_until", Value::Date(self.valid_until));
        if let Some(number) = &self.card_number {
            fields.set("card_number", Value::Text(number.clone()));
        }
        if let Some(issued) = self.issued {
            fields.set("issued", Value::Date(issued));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
kind = "payment"
[it]
subject = "Avviso di pagamento {{description}}"
markdown = "Importo {{amount}}, scadenza {{due_date}} {{installment}}. Paga in app con il pulsante Paga, oppure presso gli sportelli aderenti a pagoPA."
[en]
subject = "Payment notice {{description}}"
markdown = "Amount {{amount}}, due {{due_date}} {{installment}}. Pay in the app with the Pay button, or at any counter that takes pagoPA notices."
"#;

    fn notice() -> PaymentNotice {
        PaymentNotice {
            debtor_fiscal_code: "BNCLRA85C52F205V".into(),
            debtor_name: Some("Laura Bianchi".into()),
            creditor: "80000000010".parse().unwrap(),
            notice_number: "301202500000000281".parse().unwrap(),
            amount: EuroCents::from_cents(102_099).unwrap(),
            due_date: Some(jiff::civil::date(2025, 7, 31)),
            description: "TARI 2025".into(),
            installment: Some((1, 2)),
            year: Some(2025),
        }
    }

    #[test]
    fn a_payment_recipe_survives_storage_and_renders_like_the_notice() {
        let template = Template::parse("t", TEMPLATE).unwrap();
        let recipe = Recipe::payment(&notice());
        let stored = Recipe::from_bytes(&recipe.to_bytes()).unwrap();
        assert_eq!(stored, recipe);
        for language in [Language::It, Language::En, Language::De] {
            let from_recipe = stored.render(&template, language, TestRecipient::Rejected).unwrap();
            let direct = template::payment_message(&template, &notice(), language, TestRecipient::Rejected).unwrap();
            assert_eq!(from_recipe.to_io_body(), direct.to_io_body(), "{language:?}");
        }
        let english = stored.render(&template, Language::En, TestRecipient::Rejected).unwrap();
        assert!(english.content().markdown().starts_with("Amount €1,020.99, due 31/07/2025 instalment 1 of 2"));
    }

    #[test]
    fn validation_covers_every_language_of_the_template() {
        // The English subject is too long once filled; Italian alone would pass.
        let long = TEMPLATE.replace(
            "subject = \"Payment notice {{description}}\"",
            &format!("subject = \"{}{{{{description}}}}\"", "x".repeat(115)),
        );
        let template = Template::parse("t", &long).unwrap();
        let error = Recipe::payment(&notice()).validate(&template, TestRecipient::Rejected).unwrap_err();
        assert!(matches!(error, MessageError::Invalid { language: Language::En, .. }), "{error}");
    }

    #[test]
    fn a_damaged_recipe_is_an_error_not_a_panic() {
        assert!(Recipe::from_bytes(b"{\"kind\":\"payment\"").is_err());
        let mut bad = notice();
        bad.debtor_fiscal_code = "BNCLRA85C52F205X".into();
        let template = Template::parse("t", TEMPLATE).unwrap();
        let error = Recipe::payment(&bad).render(&template, Language::It, TestRecipient::Rejected).unwrap_err();
        assert!(error.contains("fiscal_code"), "{error}");
    }
}
