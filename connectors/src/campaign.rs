//! Identity-card reminders: which residents read from an ANPR extract should be told that
//! their card is about to stop being valid (FACTS §6, `shared/anpr/README.md` "ID card rules").
//!
//! - A card expires on its printed date; renewal is possible from 180 days before, so a
//!   card is due for a reminder from `expiry − window` to `expiry` included.
//! - Paper cards (no machine-readable zone) stop being valid on 3 August 2026 whatever
//!   their printed date (EU Regulation 2019/1157). A paper card whose printed expiry is
//!   earlier simply expires; otherwise it is due from `cutoff − window` on, and stays due
//!   after the cutoff: its holder must be told the card is no longer valid.
//! - No reminder for an annulled card, a card of unlimited validity, or an electronic card
//!   without an expiry. Deceased and cancelled residents never get here: the readers skip them.

use std::fmt;

use jiff::civil::{date, Date};
use jiff::Span;

use crate::anpr::{CardKind, Resident};

/// The day from which paper identity cards are no longer valid (EU Regulation 2019/1157).
pub const PAPER_CARDS_INVALID_FROM: Date = date(2026, 8, 3);

/// The comune's choices for identity-card reminders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCardPolicy {
    /// How many days before a card stops being valid its holder is reminded (renewal is
    /// possible from 180 days before expiry).
    pub window_days: u32,
    /// The day paper cards stop being valid; [`PAPER_CARDS_INVALID_FROM`] unless the comune
    /// reads the law otherwise.
    pub paper_invalid_from: Date,
}

impl Default for IdCardPolicy {
    fn default() -> IdCardPolicy {
        IdCardPolicy { window_days: 180, paper_invalid_from: PAPER_CARDS_INVALID_FROM }
    }
}

/// Which message a reminder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Campaign {
    /// The card reaches its printed expiry soon.
    CardExpiring,
    /// A paper card that stops (or stopped) being valid at the paper cutoff.
    PaperCard,
}

impl Campaign {
    pub fn as_str(self) -> &'static str {
        match self {
            Campaign::CardExpiring => "id-card-expiring",
            Campaign::PaperCard => "paper-id-card",
        }
    }
}

impl fmt::Display for Campaign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reminder a resident is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCardReminder {
    pub campaign: Campaign,
    /// The day the card stops being valid: the printed expiry, or for a paper card the
    /// earlier of that and the paper cutoff.
    pub valid_until: Date,
    pub card_kind: CardKind,
}

impl IdCardReminder {
    /// Stable identity across re-imports: one reminder per campaign, person and end of
    /// validity (a renewed card has a new one), as `"{campaign}:{fiscal code}:{yyyy-mm-dd}"`.
    pub fn dedup_key(&self, fiscal_code: &str) -> String {
        format!("{}:{}:{}", self.campaign.as_str(), fiscal_code, self.valid_until)
    }
}

/// Why a resident gets no reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoReminder {
    #[error("no identity card on record")]
    NoCard,
    #[error("the identity card was annulled")]
    Annulled,
    #[error("the identity card has unlimited validity")]
    Unlimited,
    #[error("the identity card has no expiry date on record")]
    NoExpiry,
    #[error("the identity card has already expired")]
    AlreadyExpired,
    #[error("the identity card is not yet within the reminder window")]
    NotYetDue,
}

/// The reminder `resident` is due on `today` under `policy`, or why there is none.
pub fn id_card_reminder(resident: &Resident, today: Date, policy: &IdCardPolicy) -> Result<IdCardReminder, NoReminder> {
    let card = resident.id_card.as_ref().ok_or(NoReminder::NoCard)?;
    if card.annulled.is_some() {
        return Err(NoReminder::Annulled);
    }
    if card.unlimited {
        return Err(NoReminder::Unlimited);
    }
    let reminder = |campaign, valid_until| IdCardReminder { campaign, valid_until, card_kind: card.kind };
    let paper_until = policy.paper_invalid_from;
    match (card.kind, card.expiry) {
        (CardKind::Paper, Some(expiry)) if expiry < paper_until => {
            expiring(expiry, today, policy).map(|until| reminder(Campaign::CardExpiring, until))
        }
        (CardKind::Paper, _) if today >= days_before(paper_until, policy.window_days) => {
            Ok(reminder(Campaign::PaperCard, paper_until))
        }
        (CardKind::Paper, _) => Err(NoReminder::NotYetDue),
        (CardKind::Electronic | CardKind::Unknown, None) => Err(NoReminder::NoExpiry),
        (CardKind::Electronic | CardKind::Unknown, Some(expiry)) => {
            expiring(expiry, today, policy).map(|until| reminder(Campaign::CardExpiring, until))
        }
    }
}

/// `expiry` when it falls from `today` to `today + window` included.
fn expiring(expiry: Date, today: Date, policy: &IdCardPolicy) -> Result<Date, NoReminder> {
    if expiry < today {
        Err(NoReminder::AlreadyExpired)
    } else if days_before(expiry, policy.window_days) > today {
        Err(NoReminder::NotYetDue)
    } else {
        Ok(expiry)
    }
}

/// `day − days`, or the earliest date there is when that is out of range.
fn days_before(day: Date, days: u32) -> Date {
    Span::new().try_days(i64::from(days)).and_then(|span| day.checked_sub(span)).unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests;
