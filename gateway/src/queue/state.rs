//! Message states and priorities, and their one mapping to SQL.

use std::fmt;

/// Where a message is in its life. Stored as text in `messages.state`; this file is the
/// only place that knows the spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Accepted and waiting for delivery (profile check, then send).
    Queued,
    /// A send to IO is in flight. Found at start-up, it means the process died mid-send.
    Sending,
    /// A send whose outcome is unknown (timeout or reset after the request was written).
    Ambiguous,
    /// Set aside by an operator (or by the `hold` policy for ambiguous sends).
    Held,
    /// IO answered 201; waiting for IO's final status.
    Sent,
    /// Final: IO status PROCESSED (in the citizen's inbox).
    Processed,
    /// Final: IO status REJECTED after acceptance.
    IoRejected,
    /// Final: IO status FAILED.
    IoFailed,
    /// Final: IO refused the submission (400/403).
    RejectedByIo,
    /// Final: the citizen has no IO profile; paper or PEC is needed.
    NotOnIo,
    /// Final: the citizen has blocked this service; paper or PEC is needed.
    SenderNotAllowed,
    /// Final: not delivered within the message's maximum age.
    Expired,
    /// Final: IO accepted it (201) but gave no final status within the maximum age.
    Unconfirmed,
    /// Final: cancelled by an operator before it was sent.
    Cancelled,
}

impl State {
    pub const ALL: [State; 14] = [
        State::Queued,
        State::Sending,
        State::Ambiguous,
        State::Held,
        State::Sent,
        State::Processed,
        State::IoRejected,
        State::IoFailed,
        State::RejectedByIo,
        State::NotOnIo,
        State::SenderNotAllowed,
        State::Expired,
        State::Unconfirmed,
        State::Cancelled,
    ];

    pub fn as_sql(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Ambiguous => "ambiguous",
            State::Held => "held",
            State::Sent => "sent",
            State::Processed => "processed",
            State::IoRejected => "io_rejected",
            State::IoFailed => "io_failed",
            State::RejectedByIo => "rejected_by_io",
            State::NotOnIo => "not_on_io",
            State::SenderNotAllowed => "sender_not_allowed",
            State::Expired => "expired",
            State::Unconfirmed => "unconfirmed",
            State::Cancelled => "cancelled",
        }
    }

    pub fn from_sql(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_sql() == text)
    }

    /// A final state never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, State::Queued | State::Sending | State::Ambiguous | State::Held | State::Sent)
    }

    /// Reaching this state means the last error no longer applies.
    pub fn clears_error(self) -> bool {
        matches!(self, State::Sent | State::Processed)
    }

    /// Not yet handed to IO: what the intake limit counts (a `sent` message is IO's now,
    /// only its status is still followed).
    pub fn awaits_delivery(self) -> bool {
        matches!(self, State::Queued | State::Sending | State::Ambiguous | State::Held)
    }

    /// SQL list of the states awaiting delivery, for `state IN (...)`.
    pub(super) fn pending_sql_list() -> String {
        let pending = State::ALL.iter().filter(|s| s.awaits_delivery());
        pending.map(|s| format!("'{}'", s.as_sql())).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// Delivery priority: lower goes first. Stored as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    Urgent,
    Normal,
    Bulk,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Urgent, Priority::Normal, Priority::Bulk];

    pub fn as_sql(self) -> i64 {
        match self {
            Priority::Urgent => 0,
            Priority::Normal => 1,
            Priority::Bulk => 2,
        }
    }

    pub fn from_sql(value: i64) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_sql() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "urgent" => Ok(Priority::Urgent),
            "normal" => Ok(Priority::Normal),
            "bulk" => Ok(Priority::Bulk),
            other => Err(format!("unknown priority {other:?}: use urgent, normal or bulk")),
        }
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_sql())
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_sql() {
        for state in State::ALL {
            assert_eq!(State::from_sql(state.as_sql()), Some(state));
        }
        assert_eq!(State::from_sql("nonsense"), None);
    }

    #[test]
    fn final_states_are_the_ones_that_need_no_more_work() {
        let pending: Vec<_> = State::ALL.into_iter().filter(|s| !s.is_final()).collect();
        assert_eq!(pending, [State::Queued, State::Sending, State::Ambiguous, State::Held, State::Sent]);
        assert!(!State::Sent.awaits_delivery() && State::Held.awaits_delivery());
        assert_eq!(State::pending_sql_list(), "'queued','sending','ambiguous','held'");
    }

    #[test]
    fn priorities_round_trip_and_order() {
        for p in [Priority::Urgent, Priority::Normal, Priority::Bulk] {
            assert_eq!(Priority::from_sql(p.as_sql()), Some(p));
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        }
        assert!(Priority::Urgent < Priority::Bulk);
        assert!("later".parse::<Priority>().is_err());
    }
}
