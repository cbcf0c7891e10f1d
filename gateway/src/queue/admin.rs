//! The operator's view of the queue, for `io-gateway status`, `queue …` and `outcomes`.
//!
//! It uses a connection of its own and is safe while the daemon runs: every move is a
//! compare-and-set on the message's state, written with its transition row in one
//! transaction — the same rule the daemon follows — so an operator and delivery never
//! both move one message. A message delivery is sending right now stays `sending`, which
//! no operator action takes. Each move's audit entry (the operator as its actor) goes in
//! the same transaction, followed by a signed checkpoint when a key is given.

use super::audit::{self, Trail};
use super::{now_millis, open_connection, schema, storage, MessageId, Priority, QueueError, State};
use crate::seal::{DataKeys, Field};
use crate::signing::SigningKey;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;

/// Which messages a listing or an action covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these states (all states when empty).
    pub states: Vec<State>,
    pub service: Option<String>,
    /// Accepted at least this many milliseconds ago.
    pub older_than_ms: Option<i64>,
    /// Only this message.
    pub id: Option<MessageId>,
    pub limit: Option<usize>,
}

/// One line of `queue list`.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: MessageId,
    pub service: String,
    pub state: State,
    pub priority: Priority,
    pub accepted_at: i64,
    pub state_changed_at: i64,
    pub attempts: u32,
    pub source: Option<String>,
    pub last_error: Option<String>,
}

/// One line of `outcomes`: a message in a final state.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: MessageId,
    pub institution: String,
    pub service: String,
    /// `None` once the content was deleted (retention or erasure).
    pub fiscal_code: Option<String>,
    pub state: State,
    pub io_message_id: Option<String>,
    pub io_status: Option<String>,
    pub accepted_at: i64,
    pub state_changed_at: i64,
    pub source: Option<String>,
    pub last_error: Option<String>,
}

/// A state change in its history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transition {
    pub from: Option<String>,
    pub to: String,
    pub at: i64,
    pub reason: Option<String>,
}

/// What an operator can do to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send now: a held, ambiguous or waiting message is queued, due at once.
    Retry,
    /// Set aside until released.
    Hold,
    /// Give a held message back to delivery.
    Release,
    /// Never send it (final).
    Cancel,
}

impl Action {
    pub fn from_states(self) -> &'static [State] {
        match self {
            Action::Retry => &[State::Queued, State::Held, State::Ambiguous],
            Action::Hold => &[State::Queued, State::Ambiguous],
            Action::Release => &[State::Held],
            Action::Cancel => &[State::Queued, State::Held, State::Ambiguous],
        }
    }

    pub fn to(self) -> State {
        match self {
            Action::Retry | Action::Release => State::Queued,
            Action::Hold => State::Held,
            Action::Cancel => State::Cancelled,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Hold => "hold",
            Action::Release => "release",
            Action::Cancel => "cancel",
        }
    }
}

/// What an action did to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    Done {
        from: State,
    },
    /// Not in a state the action applies to (or moved by delivery meanwhile).
    Skipped {
        state: State,
    },
    NotFound,
}

pub struct Admin {
    pub(super) conn: Connection,
}

impl Admin {
    /// Opens an existing queue database (never creates one).
    pub fn open(path: &Path) -> Result<Admin, QueueError> {
        if !path.exists() {
            return Err(QueueError::OpenDatabase {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(path.to_path_buf()),
            });
        }
        let mut conn = open_connection(path)?;
        schema::migrate(&mut conn).map_err(|source| QueueError::Migrate { path: path.to_path_buf(), source })?;
        Ok(Admin { conn })
    }

    /// Messages per state and priority, with the acceptance time of the oldest.
    pub fn counts(&self) -> Result<Vec<(State, Priority, u64, i64)>, QueueError> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, priority, COUNT(*), MIN(accepted_at) FROM messages GROUP BY state, priority")
            .map_err(storage("counting messages"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get(3)?)))
            .map_err(storage("counting messages"))?;
        let mut out = Vec::new();
        for row in rows {
            let (state, priority, count, oldest) = row.map_err(storage("counting messages"))?;
            let state =
                State::from_sql(&state).ok_or_else(|| QueueError::Corrupt { what: format!("state {state:?}") })?;
            let priority = Priority::from_sql(priority)
                .ok_or_else(|| QueueError::Corrupt { what: format!("priority {priority}") })?;
            out.push((state, priority, u64::try_from(count).unwrap_or(0), oldest));
        }
        Ok(out)
    }

    /// When IO last accepted a message or gave a final status (milliseconds), if ever.
    pub fn last_io_contact(&self) -> Result<Option<i64>, QueueError> {
        self.conn
            .query_row(
                "SELECT MAX(at) FROM transitions WHERE to_state IN ('sent','processed','io_rejected','io_failed',
                 'rejected_by_io','not_on_io','sender_not_allowed')",
                [],
                |r| r.get(0),
            )
            .map_err(storage("reading the last IO contact"))
    }

    pub fn list(&self, filter: &Filter) -> Result<Vec<Row>, QueueError> {
        let (clause, params) = where_clause(filter);
        let sql = format!(
            "SELECT id, service, state, priority, accepted_at, state_changed_at, attempts, source, last_error
             FROM messages {clause} ORDER BY seq LIMIT {}",
            filter.limit.unwrap_or(usize::MAX >> 1).min(i64::MAX as usize)
        );
        let mut stmt = self.conn.prepare(&sql).map_err(storage("listing messages"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    (r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?),
                    (r.get::<_, Option<String>>(7)?, r.get::<_, Option<String>>(8)?),
                ))
            })
            .map_err(storage("listing messages"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, service, state, priority, times, texts) = row.map_err(storage("listing messages"))?;
            out.push(Row {
                id: parse_id(&id)?,
                service,
                state: parse_state(&state)?,
                priority: Priority::from_sql(priority)
                    .ok_or_else(|| QueueError::Corrupt { what: format!("priority {priority}") })?,
                accepted_at: times.0,
                state_changed_at: times.1,
                attempts: u32::try_from(times.2).unwrap_or(u32::MAX),
                source: texts.0,
                last_error: texts.1,
            });
        }
        Ok(out)
    }

    /// A message's row and its history.
    pub fn show(&self, id: MessageId) -> Result<Option<(Row, Vec<Transition>)>, QueueError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT seq FROM messages WHERE id = ?1", [id.to_string()], |r| r.get(0))
            .optional()
            .map_err(storage("finding a message"))?;
        let Some(seq) = seq else { return Ok(None) };
        let row = self
            .list(&Filter { id: Some(id), ..Filter::default() })?
            .into_iter()
            .next()
            .ok_or(QueueError::Corrupt { what: format!("message {id} vanished") })?;
        let mut stmt = self
            .conn
            .prepare("SELECT from_state, to_state, at, reason FROM transitions WHERE message_seq = ?1 ORDER BY seq")
            .map_err(storage("reading transitions"))?;
        let transitions = stmt
            .query_map([seq], |r| Ok(Transition { from: r.get(0)?, to: r.get(1)?, at: r.get(2)?, reason: r.get(3)? }))
            .map_err(storage("reading transitions"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(storage("reading transitions"))?;
        Ok(Some((row, transitions)))
    }

    /// Applies `action` to each message, all in one transaction; `by` names the operator
    /// in the transition's reason and as the audit entries' actor. With `audit_key`, a
    /// checkpoint of the trail is signed after the moves, in the same transaction.
    pub fn act(
        &mut self,
        action: Action,
        ids: &[MessageId],
        by: &str,
        audit_key: Option<&SigningKey>,
    ) -> Result<Vec<(MessageId, Moved)>, QueueError> {
        let begin = self.conn.transaction_with_behavior(TransactionBehavior::Immediate);
        let tx = begin.map_err(storage("beginning an operator action"))?;
        let mut trail = Trail::new();
        let now = now_millis();
        let reason = format!("operator {}: {}", action.name(), by);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let found: Option<(i64, String)> = tx
                .query_row("SELECT seq, state FROM messages WHERE id = ?1", [id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(storage("finding a message"))?;
            let Some((seq, state)) = found else {
                out.push((*id, Moved::NotFound));
                continue;
            };
            let state = parse_state(&state)?;
            if !action.from_states().contains(&state) {
                out.push((*id, Moved::Skipped { state }));
                continue;
            }
            let to = action.to();
            let changed = move_message(&tx, &mut trail, (seq, *id), state, to, &reason, by, now)?;
            out.push((*id, if changed { Moved::Done { from: state } } else { Moved::Skipped { state } }));
        }
        if let Some(key) = audit_key {
            trail.checkpoint(&tx, key, now_millis())?;
        }
        tx.commit().map_err(storage("committing an operator action"))?;
        Ok(out)
    }

    /// How many messages still hold content sealed with each data key (a key no message
    /// needs may be removed from the directory).
    pub fn content_by_data_key(&self) -> Result<Vec<(u32, u64)>, QueueError> {
        super::sealing::content_by_key(&self.conn)
    }

    /// Messages in final states, oldest first, optionally only those final since `since`
    /// (milliseconds) and in `states`.
    pub fn outcomes(&self, keys: &DataKeys, states: &[State], since: Option<i64>) -> Result<Vec<Outcome>, QueueError> {
        let finals: Vec<State> =
            if states.is_empty() { State::ALL.into_iter().filter(|s| s.is_final()).collect() } else { states.to_vec() };
        let list = finals.iter().map(|s| format!("'{}'", s.as_sql())).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT id, institution, service, fiscal_code, state, io_message_id, io_status, accepted_at,
                    state_changed_at, source, last_error, sealed
             FROM messages WHERE state IN ({list}) AND state_changed_at >= ?1 ORDER BY state_changed_at, seq"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(storage("listing outcomes"))?;
        let rows = stmt
            .query_map([since.unwrap_or(0)], |r| {
                let fiscal_code = r.get_ref(3)?.as_bytes_or_null()?.unwrap_or_default().to_vec();
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, fiscal_code),
                    (r.get::<_, String>(4)?, r.get::<_, i64>(11)? != 0),
                    (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
                ))
            })
            .map_err(storage("listing outcomes"))?;
        let mut out = Vec::new();
        for row in rows {
            let ((id, institution, service, fiscal_code), (state, sealed), rest) =
                row.map_err(storage("listing outcomes"))?;
            let fiscal_code = match (fiscal_code.is_empty(), sealed) {
                (true, _) => None,
                (false, true) => Some(keys.open(Field::Recipient, &id, &fiscal_code)?),
                (false, false) => Some(fiscal_code),
            };
            let fiscal_code = fiscal_code.map(|f| String::from_utf8_lossy(&f).into_owned());
            out.push(Outcome {
                id: parse_id(&id)?,
                institution,
                service,
                fiscal_code,
                state: parse_state(&state)?,
                io_message_id: rest.0,
                io_status: rest.1,
                accepted_at: rest.2,
                state_changed_at: rest.3,
                source: rest.4,
                last_error: rest.5,
            });
        }
        Ok(out)
    }
}

/// Moves message `seq` from `from` to `to` if it is still in `from`, with its transition
/// row and its audit entry (`by` as the actor); whether it moved.
#[allow(clippy::too_many_arguments)]
pub(super) fn move_message(
    tx: &rusqlite::Transaction<'_>,
    trail: &mut Trail,
    (seq, id): (i64, MessageId),
    from: State,
    to: State,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<bool, QueueError> {
    let changed = tx
        .execute(
            "UPDATE messages SET state = ?1, state_changed_at = ?2,
                 next_attempt_at = CASE WHEN ?1 = 'queued' THEN 0 ELSE next_attempt_at END
             WHERE seq = ?3 AND state = ?4",
            rusqlite::params![to.as_sql(), now, seq, from.as_sql()],
        )
        .map_err(storage("moving a message"))?;
    if changed == 1 && from != to {
        tx.execute(
            "INSERT INTO transitions (message_seq, from_state, to_state, at, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![seq, from.as_sql(), to.as_sql(), now, reason],
        )
        .map_err(storage("recording a transition"))?;
        trail.append(tx, audit::changed(id, from, to, None, Some(by)), now)?;
    }
    Ok(changed == 1)
}

fn where_clause(filter: &Filter) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if !filter.states.is_empty() {
        let list = filter.states.iter().map(|s| format!("'{}'", s.as_sql())).collect::<Vec<_>>().join(",");
        conditions.push(format!("state IN ({list})"));
    }
    if let Some(service) = &filter.service {
        params.push(service.clone());
        conditions.push(format!("service = ?{}", params.len()));
    }
    if let Some(id) = filter.id {
        params.push(id.to_string());
        conditions.push(format!("id = ?{}", params.len()));
    }
    if let Some(age) = filter.older_than_ms {
        conditions.push(format!("accepted_at <= {}", now_millis() - age));
    }
    let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    (clause, params)
}

fn parse_id(text: &str) -> Result<MessageId, QueueError> {
    text.parse().map_err(|_| QueueError::Corrupt { what: format!("message id {text:?}") })
}

fn parse_state(text: &str) -> Result<State, QueueError> {
    State::from_sql(text).ok_or_else(|| QueueError::Corrupt { what: format!("state {text:?}") })
}
