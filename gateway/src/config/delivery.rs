//! The `[delivery]` section: how messages are taken to IO.

use super::raw::{RawDelivery, RawProfileCheck};
use super::typed::Checker;
use crate::io_client::Timeouts;
use std::time::Duration;

/// How messages are taken to IO.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub profile_check: ProfileCheck,
    pub ambiguous: AmbiguousPolicy,
    /// A message not sent within this time after acceptance becomes `expired`.
    pub max_age: Duration,
    /// Calls to IO in flight at once, per institution.
    pub max_in_flight: usize,
    /// First look at a sent message's IO status after this long (then backing off).
    pub first_poll_after: Duration,
    pub timeouts: Timeouts,
    /// Added to the budget's window on our side; none is needed when IO's window is the
    /// configured one, as each call counts until a window after IO's answer
    /// (`rate_limit`).
    pub budget_margin: Duration,
}

/// When to ask IO for the citizen's profile before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileCheck {
    Always,
    Never,
    /// Reuse an answer for this long (per service and citizen).
    Cached(Duration),
}

/// What to do with a send whose outcome is unknown (IO may have the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmbiguousPolicy {
    /// Send again (at-least-once: the citizen may see it twice). The default.
    Retry,
    /// Hold it for an operator to decide.
    Hold,
}

pub(super) fn delivery(c: &mut Checker, raw: RawDelivery) -> Option<Delivery> {
    let profile_check = match raw.profile_check {
        None => Some(ProfileCheck::Cached(Duration::from_secs(24 * 3600))),
        Some(RawProfileCheck::Word(w)) if w == "always" => Some(ProfileCheck::Always),
        Some(RawProfileCheck::Word(w)) if w == "never" => Some(ProfileCheck::Never),
        Some(RawProfileCheck::Cached { cache_hours }) => {
            Some(ProfileCheck::Cached(Duration::from_secs(cache_hours * 3600)))
        }
        Some(RawProfileCheck::Word(w)) => {
            c.problem("delivery.profile_check", format!("{w:?}: use \"always\", \"never\" or {{ cache_hours = N }}"));
            None
        }
    };
    let ambiguous = match raw.ambiguous.as_deref() {
        None | Some("retry") => Some(AmbiguousPolicy::Retry),
        Some("hold") => Some(AmbiguousPolicy::Hold),
        Some(other) => {
            c.problem("delivery.ambiguous", format!("{other:?}: use \"retry\" (at-least-once) or \"hold\""));
            None
        }
    };
    let max_in_flight = raw.max_in_flight.unwrap_or(256);
    if !(1..=4096).contains(&max_in_flight) {
        c.problem("delivery.max_in_flight", "must be between 1 and 4096");
    }
    let seconds = |value: Option<u64>, default: u64| Duration::from_secs(value.unwrap_or(default).max(1));
    Some(Delivery {
        profile_check: profile_check?,
        ambiguous: ambiguous?,
        max_age: seconds(raw.max_age_hours.map(|h| h.saturating_mul(3600)), 72 * 3600),
        max_in_flight,
        first_poll_after: seconds(raw.first_poll_after_seconds, 30),
        timeouts: Timeouts {
            connect: seconds(raw.connect_timeout_seconds, 5),
            request: seconds(raw.request_timeout_seconds, 30),
        },
        budget_margin: Duration::from_millis(raw.budget_margin_ms.unwrap_or(0).min(5_000)),
    })
}
