//! A citizen's rights over what the queue holds about them: [`Admin::citizen`] finds
//! every message to one fiscal code through the keyed index and opens its content, for
//! `io-gateway citizen export`; [`Admin::erase`] removes their content and personal data,
//! for `io-gateway citizen erase`.
//!
//! Erasure keeps what the town needs to prove it acted — message ids, states, IO's ids,
//! the transition history and the audit trail, none of which holds personal data — and
//! removes the fiscal code, the body, the recipe, the recipient index, the dedup key and
//! the idempotency key. Each erased message gets an `erased` audit entry (the operator as
//! actor) in the same transaction, so the chain stays whole and records the erasure. A
//! message still waiting is cancelled first; one IO has but has not finished is no longer
//! followed (`unconfirmed`); one being sent at this very moment is left alone and
//! reported, to be erased by running the command again.

use super::admin::{move_message, Admin, Transition};
use super::audit::Trail;
use super::{now_millis, storage, MessageId, Priority, QueueError, State};
use crate::audit::{Event, Kind};
use crate::seal::{DataKeys, Field};
use crate::signing::SigningKey;
use connectors::domain::FiscalCode;
use rusqlite::TransactionBehavior;
use serde::Serialize;
use std::collections::HashMap;

/// One message to the citizen, as `citizen export` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CitizenMessage {
    pub id: String,
    pub institution: String,
    pub service: String,
    pub client: String,
    pub state: State,
    pub priority: Priority,
    pub accepted_at_ms: i64,
    pub state_changed_at_ms: i64,
    pub io_message_id: Option<String>,
    pub io_status: Option<String>,
    /// The file an imported message came from.
    pub source: Option<String>,
    /// The message as posted (local API), or `None` once deleted or for an import.
    pub body: Option<serde_json::Value>,
    /// An imported message's record values and its template's name.
    pub record: Option<serde_json::Value>,
    pub template: Option<String>,
    pub content_deleted_at_ms: Option<i64>,
    pub transitions: Vec<Transition>,
    /// The audit entries about this message (seq, time, kind, actor, detail).
    pub audit: Vec<AuditReference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReference {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub actor: Option<String>,
    pub detail: String,
}

/// What `erase` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub erased: Vec<MessageId>,
    /// Of those, the ones that were still waiting and are now cancelled.
    pub cancelled: usize,
    /// Of those, the ones IO has and whose status is no longer followed.
    pub unfollowed: usize,
    /// Being sent right now: not erased; run the command again.
    pub in_flight: Vec<MessageId>,
}

const ERASE_REASON: &str = "erased at the citizen's request";

impl Admin {
    /// Every message to `fiscal_code` the queue still links to it, oldest first.
    pub fn citizen(&self, keys: &DataKeys, fiscal_code: &FiscalCode) -> Result<Vec<CitizenMessage>, QueueError> {
        let index = keys.recipient_index(fiscal_code.as_str());
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.seq, m.id, m.institution, m.service, m.client, m.state, m.priority, m.accepted_at,
                        m.state_changed_at, m.io_message_id, m.io_status, m.source, m.body, m.recipe, m.sealed,
                        m.content_deleted_at, t.name
                 FROM messages m LEFT JOIN templates t ON t.digest = m.template
                 WHERE m.recipient_index = ?1 ORDER BY m.seq",
            )
            .map_err(storage("finding a citizen's messages"))?;
        type Row = (i64, (String, String, String, String), (String, i64, i64, i64), Vec<Option<String>>);
        type Content = (Vec<u8>, Option<Vec<u8>>, bool, Option<i64>, Option<String>);
        let rows: Vec<(Row, Content)> = stmt
            .query_map([&index[..]], |r| {
                let body = r.get_ref(12)?.as_bytes_or_null()?.unwrap_or_default().to_vec();
                Ok((
                    (
                        r.get(0)?,
                        (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                        (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
                        vec![r.get(9)?, r.get(10)?, r.get(11)?],
                    ),
                    (body, r.get(13)?, r.get::<_, i64>(14)? != 0, r.get(15)?, r.get(16)?),
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(storage("finding a citizen's messages"))?;
        let ids: Vec<&str> = rows.iter().map(|((_, (id, ..), ..), _)| id.as_str()).collect();
        let mut audit = self.audit_of(&ids)?;
        let mut out = Vec::with_capacity(rows.len());
        for ((seq, (id, institution, service, client), (state, priority, accepted, changed), io), content) in rows {
            let (body, recipe, sealed, deleted_at, template) = content;
            let open = |field, bytes: Vec<u8>| -> Result<Option<serde_json::Value>, QueueError> {
                if bytes.is_empty() {
                    return Ok(None);
                }
                let clear = if sealed { keys.open(field, &id, &bytes)? } else { bytes };
                Ok(Some(serde_json::from_slice(&clear).unwrap_or_else(|_| String::from_utf8_lossy(&clear).into())))
            };
            let corrupt = |what: String| QueueError::Corrupt { what };
            out.push(CitizenMessage {
                state: State::from_sql(&state).ok_or_else(|| corrupt(format!("state {state:?}")))?,
                priority: Priority::from_sql(priority).ok_or_else(|| corrupt(format!("priority {priority}")))?,
                institution,
                service,
                client,
                accepted_at_ms: accepted,
                state_changed_at_ms: changed,
                io_message_id: io[0].clone(),
                io_status: io[1].clone(),
                source: io[2].clone(),
                body: open(Field::Body, body)?,
                record: open(Field::Recipe, recipe.unwrap_or_default())?,
                template,
                content_deleted_at_ms: deleted_at,
                transitions: self.transitions(seq)?,
                audit: audit.remove(&id).unwrap_or_default(),
                id,
            });
        }
        Ok(out)
    }

    /// Erases what the queue holds about `fiscal_code` (see the module docs), all in one
    /// transaction, with a signed checkpoint after it when `audit_key` is given.
    pub fn erase(
        &mut self,
        keys: &DataKeys,
        fiscal_code: &FiscalCode,
        by: &str,
        audit_key: Option<&SigningKey>,
    ) -> Result<Erasure, QueueError> {
        let index = keys.recipient_index(fiscal_code.as_str());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage("beginning an erasure"))?;
        let rows: Vec<(i64, String, String)> = tx
            .prepare("SELECT seq, id, state FROM messages WHERE recipient_index = ?1 ORDER BY seq")
            .and_then(|mut stmt| stmt.query_map([&index[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
            .map_err(storage("finding a citizen's messages"))?;
        let mut trail = Trail::new();
        let mut erasure = Erasure::default();
        let now = now_millis();
        for (seq, id, state) in rows {
            let corrupt = |what: String| QueueError::Corrupt { what };
            let message_id: MessageId = id.parse().map_err(|_| corrupt(format!("message id {id:?}")))?;
            let state = State::from_sql(&state).ok_or_else(|| corrupt(format!("state {state:?}")))?;
            let stop = match state {
                State::Sending => {
                    erasure.in_flight.push(message_id);
                    continue;
                }
                State::Sent => Some(State::Unconfirmed),
                s if s.awaits_delivery() => Some(State::Cancelled),
                _ => None,
            };
            if let Some(to) = stop {
                if !move_message(&tx, &mut trail, (seq, message_id), state, to, ERASE_REASON, by, now)? {
                    erasure.in_flight.push(message_id);
                    continue;
                }
                if to == State::Cancelled {
                    erasure.cancelled += 1;
                } else {
                    erasure.unfollowed += 1;
                }
            }
            tx.execute(
                "UPDATE messages SET fiscal_code = X'', body = X'', recipe = NULL, recipient_index = NULL,
                        dedup_key = NULL, idempotency_key = NULL, request_digest = NULL,
                        content_deleted_at = COALESCE(content_deleted_at, ?2), erased_at = ?2
                 WHERE seq = ?1",
                (seq, now),
            )
            .map_err(storage("erasing a message"))?;
            let event = Event {
                kind: Kind::Erased,
                message_id: Some(id),
                actor: Some(by.to_string()),
                detail: "citizen request".into(),
            };
            trail.append(&tx, event, now)?;
            erasure.erased.push(message_id);
        }
        if let Some(key) = audit_key {
            trail.checkpoint(&tx, key, now_millis())?;
        }
        tx.commit().map_err(storage("committing an erasure"))?;
        Ok(erasure)
    }

    fn transitions(&self, seq: i64) -> Result<Vec<Transition>, QueueError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT from_state, to_state, at, reason FROM transitions WHERE message_seq = ?1 ORDER BY seq",
            )
            .map_err(storage("reading transitions"))?;
        let rows = stmt
            .query_map([seq], |r| Ok(Transition { from: r.get(0)?, to: r.get(1)?, at: r.get(2)?, reason: r.get(3)? }))
            .and_then(|rows| rows.collect())
            .map_err(storage("reading transitions"))?;
        Ok(rows)
    }

    /// The audit entries about `ids`, by message id, in one pass over the trail (it has no
    /// index by message: appending stays cheap, and this runs once per request).
    fn audit_of(&self, ids: &[&str]) -> Result<HashMap<String, Vec<AuditReference>>, QueueError> {
        let mut out: HashMap<String, Vec<AuditReference>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let placeholders = (1..=ids.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT message_id, seq, at_ms, kind, actor, detail FROM audit WHERE message_id IN ({placeholders}) ORDER BY seq"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(storage("reading audit entries"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(ids), |r| {
                let reference = AuditReference {
                    seq: r.get(1)?,
                    at_ms: r.get(2)?,
                    kind: r.get(3)?,
                    actor: r.get(4)?,
                    detail: r.get(5)?,
                };
                Ok((r.get::<_, String>(0)?, reference))
            })
            .map_err(storage("reading audit entries"))?;
        for row in rows {
            let (id, reference) = row.map_err(storage("reading audit entries"))?;
            out.entry(id).or_default().push(reference);
        }
        Ok(out)
    }
}
