//! Reading a template file: the TOML tables, then each text split at its placeholders,
//! with every problem collected rather than the first returned.

use super::{placeholders, Kind, Language, Pattern, Segment, Template, TemplateError, TemplateProblem, Text};
use crate::message::{MARKDOWN_LENGTH, SUBJECT_LENGTH};

/// A template file's TOML text as a [`Template`], or every problem found in it.
pub(super) fn template(name: &str, text: &str) -> Result<Template, TemplateError> {
    let refuse = |problems| TemplateError { template: name.to_owned(), problems };
    let table = text.parse::<toml::Table>().map_err(|error| refuse(vec![toml_problem(text, &error)]))?;
    let mut problems = Vec::new();
    let kind = parse_kind(table.get("kind"), &mut problems);
    for key in table.keys().filter(|key| !matches!(key.as_str(), "kind" | "it" | "en" | "de")) {
        problems.push(unknown_top_level(key));
    }
    let mut texts = Vec::new();
    for language in Language::ALL {
        let at = format!("[{language}]");
        match table.get(language.as_str()) {
            None if language == Language::It => problems.push(problem(
                &at,
                "is missing: every template needs Italian, which is also sent when the citizen's language is missing",
            )),
            None => {}
            Some(toml::Value::Table(table)) => texts.extend(parse_text(language, table, kind, &mut problems)),
            Some(_) => problems.push(problem(&at, "must be a table with subject and markdown")),
        }
    }
    let mut texts = texts.into_iter();
    match (kind, texts.next()) {
        (Some(kind), Some(italian)) if problems.is_empty() && italian.language == Language::It => {
            Ok(Template { name: name.to_owned(), kind, italian, others: texts.collect() })
        }
        _ => Err(refuse(problems)),
    }
}

fn parse_kind(value: Option<&toml::Value>, problems: &mut Vec<TemplateProblem>) -> Option<Kind> {
    let reason = match value {
        Some(toml::Value::String(name)) => match Kind::ALL.into_iter().find(|kind| kind.as_str() == name) {
            Some(kind) => return Some(kind),
            None => format!("{name:?} is not a kind of template: write \"payment\" or \"id_card\""),
        },
        Some(_) => "must be a string: \"payment\" or \"id_card\"".to_owned(),
        None => "is missing: write kind = \"payment\" or kind = \"id_card\"".to_owned(),
    };
    problems.push(problem("kind", &reason));
    None
}

fn unknown_top_level(key: &str) -> TemplateProblem {
    let reason = if key.len() == 2 && key.bytes().all(|b| b.is_ascii_alphabetic()) {
        "is not a supported language: templates may have [it], [en] and [de]"
    } else {
        "is not part of a template, which has kind and one table per language ([it], [en], [de])"
    };
    problem(key, reason)
}

/// One language's table; `kind` is `None` when unknown, so names cannot be checked yet.
fn parse_text(
    language: Language,
    table: &toml::Table,
    kind: Option<Kind>,
    problems: &mut Vec<TemplateProblem>,
) -> Option<Text> {
    for key in table.keys().filter(|key| !matches!(key.as_str(), "subject" | "markdown")) {
        problems.push(problem(&format!("[{language}].{key}"), "is not a key of a language: only subject and markdown"));
    }
    let mut field = |key: &str, max_length: usize| {
        let at = format!("[{language}].{key}");
        match table.get(key) {
            Some(toml::Value::String(text)) => Pattern::parse(text, kind, max_length, &at, problems),
            Some(_) => {
                problems.push(problem(&at, "must be a string"));
                None
            }
            None => {
                problems.push(problem(&at, "is missing"));
                None
            }
        }
    };
    let subject = field("subject", SUBJECT_LENGTH.1);
    let markdown = field("markdown", MARKDOWN_LENGTH.1);
    Some(Text { language, subject: subject?, markdown: markdown? })
}

impl Pattern {
    /// Splits `text` at its placeholders, reporting every unclosed `{{` and unknown name.
    fn parse(
        text: &str,
        kind: Option<Kind>,
        max_length: usize,
        at: &str,
        problems: &mut Vec<TemplateProblem>,
    ) -> Option<Pattern> {
        let before = problems.len();
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = 0;
        while let Some(open) = text[rest..].find("{{").map(|found| rest + found) {
            literal.push_str(&text[rest..open]);
            let inside = &text[open + 2..];
            let close = inside.find("}}").filter(|&close| inside.find("{{").is_none_or(|next| next > close));
            let Some(close) = close else {
                let reason = format!("`{{{{` at {} is not closed by `}}}}`", position(text, open));
                problems.push(problem(at, &reason));
                literal.push_str("{{");
                rest = open + 2;
                continue;
            };
            rest = open + 2 + close + 2;
            match placeholder(inside[..close].trim(), kind, || position(text, open)) {
                Ok(Some(name)) => {
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Placeholder(name));
                }
                Ok(None) => {}
                Err(reason) => problems.push(problem(at, &reason)),
            }
        }
        literal.push_str(&text[rest..]);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let pattern = Pattern::from_segments(segments);
        let length = pattern.literal_units;
        if length > max_length {
            let reason = format!("is {length} characters long before placeholders are filled; IO allows {max_length}");
            problems.push(problem(at, &reason));
        }
        (problems.len() == before).then_some(pattern)
    }

    fn from_segments(segments: Vec<Segment>) -> Pattern {
        let mut pattern = Pattern { segments, literal_bytes: 0, literal_units: 0 };
        pattern.literal_bytes = pattern.literals().map(str::len).sum();
        pattern.literal_units = pattern.literals().map(crate::message::utf16_length).sum();
        pattern
    }

    fn literals(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Literal(text) => Some(text.as_str()),
            Segment::Placeholder(_) => None,
        })
    }
}

/// The placeholder `name` as one of the kind's; `Ok(None)` when the kind is unknown.
/// `position` says where it is, for the error.
fn placeholder(name: &str, kind: Option<Kind>, position: impl Fn() -> String) -> Result<Option<&'static str>, String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{{{{{name}}}}} at {} is not a placeholder: names are letters, digits and _", position()));
    }
    let Some(kind) = kind else {
        return Ok(None);
    };
    match placeholders(kind).iter().find(|known| **known == name) {
        Some(known) => Ok(Some(known)),
        None => Err(format!(
            "unknown placeholder {{{{{name}}}}} at {}: templates of kind {kind} may use {}",
            position(),
            placeholders(kind).join(", ")
        )),
    }
}

/// `line L, column C` (1-based, in characters) of byte `at` in a field's text.
fn position(text: &str, at: usize) -> String {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    format!("line {line}, column {column}")
}

fn toml_problem(text: &str, error: &toml::de::Error) -> TemplateProblem {
    let reason = match error.span() {
        Some(span) => {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            format!("{} (line {line})", error.message().trim())
        }
        None => error.message().trim().to_owned(),
    };
    problem("(TOML)", &reason)
}

fn problem(at: &str, reason: &str) -> TemplateProblem {
    TemplateProblem { at: at.to_owned(), reason: reason.to_owned() }
}
