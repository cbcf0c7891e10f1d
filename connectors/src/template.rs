//! Message templates: the subject and markdown of one kind of IO message, per language,
//! with placeholders filled from a payment notice or an ID-card record.
//!
//! # File format
//!
//! A template is a small TOML file (examples in `config/templates/`):
//!
//! ```toml
//! kind = "payment"          # or "id_card": which records it renders, hence its placeholders
//!
//! [it]                      # required: Italian, also the fallback for missing languages
//! subject = "TARI {{year}}: avviso di pagamento"
//! markdown = """
//! Gentile {{name}}, è disponibile l'avviso di {{amount}} in scadenza il {{due_date}}.
//! """
//!
//! [en]                      # optional, like [de]
//! subject = "..."
//! markdown = """..."""
//! ```
//!
//! Nothing else may appear: an unknown table or key is an error, not silently ignored.
//!
//! Placeholders are `{{name}}`, spaces inside the braces allowed (`{{ amount }}`). The
//! names a template may use depend on its kind (see [`placeholders`]). There is no escaping:
//! a `{` or `}` that does not open or close a placeholder is literal text.
//!
//! Values are formatted for the language rendered: amounts `1.020,99 €` (it, de) or
//! `€1,020.99` (en); dates `31/07/2025` (it, en) or `31.07.2025` (de); installments
//! `rata 2 di 3`, `instalment 2 of 3`, `Rate 2 von 3`. A single payment's installment is
//! the empty string, as is the year or debtor name of a notice without one: place those
//! placeholders where an empty string still reads well (e.g. `TARI {{installment}}` at the
//! end of a line rather than between commas). Text values are inserted as they are, not
//! escaped for markdown.
//!
//! Templates are parsed once into literal and placeholder segments; rendering only
//! concatenates, so it costs little more than copying the text.

mod format;
mod message;
mod parse;

use std::borrow::Cow;
use std::fmt;

use crate::domain::EuroCents;

pub use message::{check_payment, id_card_message, payment_fields, payment_message, MessageError};

/// A language a template can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    It,
    En,
    De,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::It, Language::En, Language::De];

    /// The ISO 639-1 code: `it`, `en`, `de` (also the template file's table names).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::It => "it",
            Language::En => "en",
            Language::De => "de",
        }
    }

    /// The language of one of IO's `preferred_languages` values (`it_IT`, `en_GB`, `de_DE`;
    /// any region, and a bare `it`, `en`, `de`, are accepted); `None` for other languages.
    pub fn from_io(code: &str) -> Option<Language> {
        let language = code.trim().split(['_', '-']).next().unwrap_or_default();
        Language::ALL.into_iter().find(|known| language.eq_ignore_ascii_case(known.as_str()))
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What records a template renders, which decides the placeholders it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A payable notice ([`crate::payment::PaymentNotice`]): the message carries `payment_data`.
    Payment,
    /// An ID-card reminder.
    IdCard,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Payment, Kind::IdCard];

    /// The name in template files: `payment`, `id_card`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Payment => "payment",
            Kind::IdCard => "id_card",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const PAYMENT_PLACEHOLDERS: &[&str] =
    &["name", "amount", "due_date", "description", "notice_number", "creditor", "year", "installment"];
const ID_CARD_PLACEHOLDERS: &[&str] = &["name", "surname", "card_number", "valid_until", "issued"];

/// The placeholders a template of `kind` may use:
/// - payment: `name` (the debtor's, empty when the file has none), `amount`, `due_date`,
///   `description`, `notice_number`, `creditor` (its fiscal code), `year` (empty when
///   unknown), `installment` (empty for a single payment);
/// - ID card: `name`, `surname`, `card_number`, `valid_until`, `issued` (dates).
pub fn placeholders(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Payment => PAYMENT_PLACEHOLDERS,
        Kind::IdCard => ID_CARD_PLACEHOLDERS,
    }
}

/// A value to put in place of a placeholder, formatted by the language rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Amount(EuroCents),
    Date(jiff::civil::Date),
    /// `Some((n, of))`: installment n of `of`; `None`: a single payment, rendered empty.
    Installment(Option<(u32, u32)>),
    Number(i64),
}

/// The values of one record, by placeholder name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(Cow<'static, str>, Value)>);

impl Fields {
    pub fn new() -> Self {
        Fields::default()
    }

    /// Sets (or replaces) the value of `name`.
    pub fn set(&mut self, name: &str, value: Value) -> &mut Self {
        match self.0.iter_mut().find(|(known, _)| known == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((known_name(name), value)),
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(known, _)| known == name).map(|(_, value)| value)
    }
}

/// `name` without an allocation when it is a placeholder name, as it nearly always is.
fn known_name(name: &str) -> Cow<'static, str> {
    let known = PAYMENT_PLACEHOLDERS.iter().chain(ID_CARD_PLACEHOLDERS).find(|known| **known == name);
    known.map_or_else(|| Cow::Owned(name.to_owned()), |known| Cow::Borrowed(*known))
}

/// A parsed template: a subject and markdown per language, Italian always among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    name: String,
    kind: Kind,
    italian: Text,
    /// The other languages, in [`Language`] order.
    others: Vec<Text>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Text {
    language: Language,
    subject: Pattern,
    markdown: Pattern,
}

/// A text split into literal and placeholder segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<Segment>,
    /// Bytes of literal text: the least a rendering needs.
    literal_bytes: usize,
    /// Length of the literal text as IO counts it (UTF-16 code units).
    literal_units: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// One of [`placeholders`] of the template's kind.
    Placeholder(&'static str),
}

/// Why a template file was refused: every problem found, each with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?} has {} problem(s): {}", problems.len(), join(problems))]
pub struct TemplateError {
    pub template: String,
    pub problems: Vec<TemplateProblem>,
}

/// One problem in a template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Where: `kind`, `[it]`, `[en].subject`, `[de].markdown`, `(TOML)`...
    pub at: String,
    pub reason: String,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// A placeholder had no value: the record lacks what the template needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?} ({language}): the record has no value for {}", missing.join(", "))]
pub struct RenderError {
    pub template: String,
    /// The language rendered (Italian when the template lacks the one asked for).
    pub language: Language,
    /// Placeholder names without a value, in order of first use.
    pub missing: Vec<&'static str>,
}

/// The lengths a template's rendering would have, as IO counts them (UTF-16 code units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// The language measured: the one asked for, or Italian when the template lacks it.
    pub language: Language,
    pub subject: usize,
    pub markdown: usize,
}

/// A template rendered in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The language rendered: the one asked for, or Italian when the template lacks it.
    pub language: Language,
    pub subject: String,
    pub markdown: String,
}

impl Template {
    /// Parses a template file's TOML text (see the module documentation). `name` names it
    /// in errors. Every problem is reported at once.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        parse::template(name, text)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The languages the template is written in, Italian first.
    pub fn languages(&self) -> Vec<Language> {
        std::iter::once(&self.italian).chain(&self.others).map(|text| text.language).collect()
    }

    /// Renders `language`, or Italian when the template lacks it. Every placeholder needs a
    /// value in `fields`; the error names those without one.
    pub fn render(&self, language: Language, fields: &Fields) -> Result<Rendered, RenderError> {
        let text = self.text(language);
        let mut missing = Vec::new();
        let subject = text.subject.render(text.language, fields, &mut missing);
        let markdown = text.markdown.render(text.language, fields, &mut missing);
        if !missing.is_empty() {
            return Err(RenderError { template: self.name.clone(), language: text.language, missing });
        }
        Ok(Rendered { language: text.language, subject, markdown })
    }

    /// The lengths [`Template::render`] would give, with the same error, without building
    /// the texts: what an import checks for every language of every record, where the
    /// texts themselves are only built when the message is sent.
    pub fn measure(&self, language: Language, fields: &Fields) -> Result<Measured, RenderError> {
        let text = self.text(language);
        let mut missing = Vec::new();
        let subject = text.subject.measure(text.language, fields, &mut missing);
        let markdown = text.markdown.measure(text.language, fields, &mut missing);
        if !missing.is_empty() {
            return Err(RenderError { template: self.name.clone(), language: text.language, missing });
        }
        Ok(Measured { language: text.language, subject, markdown })
    }

    fn text(&self, language: Language) -> &Text {
        self.others.iter().find(|text| text.language == language).unwrap_or(&self.italian)
    }
}

impl Pattern {
    fn render(&self, language: Language, fields: &Fields, missing: &mut Vec<&'static str>) -> String {
        let mut out = String::with_capacity(self.literal_bytes + 64);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder(name) => match fields.get(name) {
                    Some(value) => format::write_value(&mut out, value, language),
                    None if missing.contains(name) => {}
                    None => missing.push(name),
                },
            }
        }
        out
    }

    /// The UTF-16 length of [`Pattern::render`]'s text.
    fn measure(&self, language: Language, fields: &Fields, missing: &mut Vec<&'static str>) -> usize {
        let mut units = self.literal_units;
        for segment in &self.segments {
            let Segment::Placeholder(name) = segment else { continue };
            match fields.get(name) {
                Some(value) => units += format::value_units(value, language),
                None if missing.contains(name) => {}
                None => missing.push(name),
            }
        }
        units
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod measure_tests;
