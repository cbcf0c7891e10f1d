//! Reading IO's answers: the profile's consent flag, whether a 403 is about the
//! recipient, and IO's problem in a few words for `last_error`.

use crate::io_client::Answer;
use connectors::template::Language;

pub fn sender_allowed(answer: &Answer) -> Option<bool> {
    serde_json::from_slice::<serde_json::Value>(&answer.body).ok().and_then(|v| v["sender_allowed"].as_bool())
}

/// The first of the citizen's `preferred_languages` that templates can be written in.
pub fn preferred_language(answer: &Answer) -> Option<Language> {
    let value = serde_json::from_slice::<serde_json::Value>(&answer.body).ok()?;
    value["preferred_languages"].as_array()?.iter().filter_map(|code| code.as_str()).find_map(Language::from_io)
}

/// A 403 about this recipient (a service in trial writing to someone not authorised)
/// is final for the message; other 403s (group, certificate, source address, unknown
/// service) are the service's configuration, not the message's.
pub fn recipient_refused(answer: &Answer) -> bool {
    let text = String::from_utf8_lossy(&answer.body).to_ascii_lowercase();
    text.contains("recipient")
}

/// IO's problem title and detail, short, for `last_error` (never the message itself).
pub fn problem_text(answer: &Answer) -> String {
    let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let part = |k: &str| value[k].as_str().map(str::to_string);
    let text = match (part("title"), part("detail")) {
        (Some(t), Some(d)) => format!("{} {t}: {d}", answer.status.as_u16()),
        (Some(t), None) => format!("{} {t}", answer.status.as_u16()),
        _ => format!("{} {}", answer.status.as_u16(), part("message").unwrap_or_default()),
    };
    text.chars().take(500).collect()
}
