//! What the writer's batch transaction does to one row: admit a posted message (sealed,
//! with its idempotency key and `accepted` audit entry), or apply a state change (with
//! its transition, its audit entry and, at a final state with no retention, the deletion
//! of its content).

use super::audit::{self, Trail};
use super::sealing;
use super::{
    now_millis, storage, Accepted, Change, Idempotency, Limits, MessageId, NewRecord, QueueError, Retention, Sealed,
    State,
};
use crate::seal::{DataKeys, Field};
use rusqlite::{OptionalExtension, Transaction};

/// Decides one record inside the batch transaction and writes it if admitted.
pub(super) fn admit(
    tx: &Transaction<'_>,
    trail: &mut Trail,
    keys: &DataKeys,
    record: &NewRecord,
    (pending, free_bytes, limits): (u64, u64, Limits),
) -> Result<Accepted, QueueError> {
    if let Some(idempotency) = &record.idempotency {
        if let Some(previous) = previous_for_key(tx, record.client.as_str(), idempotency)? {
            return previous;
        }
    }
    if pending >= limits.max_queued_messages {
        return Err(QueueError::Full { pending, limit: limits.max_queued_messages });
    }
    if free_bytes < limits.min_free_disk_bytes {
        return Err(QueueError::DiskLow { free_bytes, min_bytes: limits.min_free_disk_bytes });
    }
    let sealed = Sealed::new(keys, record.fiscal_code.as_str(), Field::Body, &record.body)?;
    let id = sealed.id;
    let text_id = id.to_string();
    let now = now_millis();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO messages (id, institution, service, client, fiscal_code, priority, state, body,
                                   accepted_at, state_changed_at, idempotency_key, request_digest,
                                   recipient_index, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, 1)",
        )
        .map_err(storage("preparing an insert"))?;
    insert
        .execute(rusqlite::params![
            text_id,
            record.institution.as_str(),
            record.service.as_str(),
            record.client.as_str(),
            sealed.recipient,
            record.priority.as_sql(),
            State::Queued.as_sql(),
            sealed.content,
            now,
            record.idempotency.as_ref().map(|i| i.key.as_str()),
            record.idempotency.as_ref().map(|i| &i.request_digest[..]),
            sealed.index,
        ])
        .map_err(storage("inserting a message"))?;
    trail.append(tx, audit::accepted(id, record.client.as_str()), now)?;
    Ok(Accepted::New(id))
}

/// Moves one message if it is still in `change.from`; records the transition when the
/// state really changes (a new poll time for a `sent` message is not a transition).
/// The change's audit entry goes with its transition row. A final state whose retention
/// is zero deletes the content at once.
pub(super) fn apply_change(
    tx: &Transaction<'_>,
    trail: &mut Trail,
    change: &Change,
    retention: Retention,
) -> Result<bool, QueueError> {
    let now = now_millis();
    let mut update = tx
        .prepare_cached(
            "UPDATE messages SET state = ?1, state_changed_at = CASE WHEN ?1 = ?2 THEN state_changed_at ELSE ?3 END,
                 next_attempt_at = COALESCE(?4, next_attempt_at), attempts = attempts + ?5,
                 io_message_id = COALESCE(?6, io_message_id), io_status = COALESCE(?7, io_status),
                 last_error = CASE WHEN ?8 IS NOT NULL THEN ?8 WHEN ?10 THEN NULL ELSE last_error END
             WHERE id = ?9 AND state = ?2",
        )
        .map_err(storage("preparing a state change"))?;
    let changed = update
        .execute(rusqlite::params![
            change.to.as_sql(),
            change.from.as_sql(),
            now,
            change.next_attempt_at,
            i64::from(change.attempted),
            change.io_message_id,
            change.io_status,
            change.error,
            change.id.to_string(),
            change.to.clears_error(),
        ])
        .map_err(storage("changing a state"))?;
    if changed == 1 && change.from != change.to {
        let mut transition = tx
            .prepare_cached(
                "INSERT INTO transitions (message_seq, from_state, to_state, at, reason)
                 SELECT seq, ?1, ?2, ?3, ?4 FROM messages WHERE id = ?5",
            )
            .map_err(storage("preparing a transition"))?;
        transition
            .execute((change.from.as_sql(), change.to.as_sql(), now, &change.reason, change.id.to_string()))
            .map_err(storage("recording a transition"))?;
        let event = audit::changed(change.id, change.from, change.to, change.io_message_id.as_deref(), None);
        trail.append(tx, event, now)?;
        if change.to.is_final() && retention.of(change.to) == 0 {
            let seq: i64 = tx
                .prepare_cached("SELECT seq FROM messages WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([change.id.to_string()], |r| r.get(0)))
                .map_err(storage("finding a message"))?;
            sealing::delete_content(tx, trail, seq, change.to, "retention", None, now)?;
        }
    }
    Ok(changed == 1)
}

/// The earlier message for this client's idempotency key, if any: the same one when the
/// request matches, a conflict when it does not.
fn previous_for_key(
    tx: &Transaction<'_>,
    client: &str,
    idempotency: &Idempotency,
) -> Result<Option<Result<Accepted, QueueError>>, QueueError> {
    let mut stmt = tx
        .prepare_cached("SELECT id, request_digest FROM messages WHERE client = ?1 AND idempotency_key = ?2")
        .map_err(storage("looking up an idempotency key"))?;
    let found = stmt
        .query_row((client, idempotency.key.as_str()), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
        })
        .optional()
        .map_err(storage("looking up an idempotency key"))?;
    let Some((id, digest)) = found else {
        return Ok(None);
    };
    let id: MessageId = id.parse().map_err(|_| QueueError::Corrupt { what: format!("message id {id:?}") })?;
    if digest.as_deref() == Some(&idempotency.request_digest[..]) {
        Ok(Some(Ok(Accepted::Replayed(id))))
    } else {
        Ok(Some(Err(QueueError::IdempotencyConflict { existing: id })))
    }
}
