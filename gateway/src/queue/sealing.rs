//! The queue's side of encryption at rest (`crate::seal`) and of retention.
//!
//! - Every message is written with its fiscal code and body (or recipe) sealed and its
//!   `recipient_index`; rows written by a build before schema 5 are sealed in place when
//!   the daemon opens the queue ([`prepare`]), with `secure_delete` on so the clear bytes
//!   do not linger in freed pages.
//! - [`prepare`] also refuses data keys that are not the ones the queue was indexed with,
//!   and a key directory missing a key that content still needs.
//! - [`note_keys`] writes a `key_rotated` audit entry when the data key or the signing key
//!   in use differs from the last one recorded.
//! - [`delete_content`] empties a message's fiscal code, body and recipe (state, ids, the
//!   recipient index and the audit trail stay); [`sweep`] does it for messages final for
//!   longer than their [`Retention`].

use super::audit::Trail;
use super::{storage, MessageId, QueueError, Retention, State};
use crate::audit::{Event, Kind};
use crate::seal::{DataKeys, Field};
use connectors::domain::FiscalCode;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::Arc;

const INDEX_CHECK: &str = "index_check";
const DATA_KEY: &str = "data_key";
const SIGNING_KEY: &str = "signing_key";
const SWEEP_BATCH: i64 = 1_000;

/// A message's personal data sealed for its row. An import seals while it builds its
/// batch, so its `Importer` thread (its bottleneck) spends its time on SQLite only; the
/// queue's writer seals posted messages itself (the request threads are the busier ones).
#[derive(Debug, Clone)]
pub struct Sealed {
    pub(super) id: MessageId,
    pub(super) recipient: Vec<u8>,
    pub(super) index: Vec<u8>,
    /// The sealed body (local API) or recipe (imports); empty stays empty.
    pub(super) content: Vec<u8>,
}

impl Sealed {
    /// Seals for a new message: its fiscal code, and `content` as `field`.
    pub fn new(keys: &DataKeys, fiscal_code: &str, field: Field, content: &[u8]) -> Result<Sealed, QueueError> {
        Sealed::with_id(keys, MessageId::new(), fiscal_code, field, content)
    }

    /// An imported message's fiscal code and recipe.
    pub fn recipe(keys: &DataKeys, fiscal_code: &FiscalCode, recipe: &[u8]) -> Result<Sealed, QueueError> {
        Sealed::new(keys, fiscal_code.as_str(), Field::Recipe, recipe)
    }

    fn with_id(
        keys: &DataKeys,
        id: MessageId,
        fiscal_code: &str,
        field: Field,
        content: &[u8],
    ) -> Result<Sealed, QueueError> {
        let text_id = id.to_string();
        Ok(Sealed {
            id,
            recipient: keys.seal(Field::Recipient, &text_id, fiscal_code.as_bytes())?,
            index: keys.recipient_index(fiscal_code).to_vec(),
            content: if content.is_empty() { Vec::new() } else { keys.seal(field, &text_id, content)? },
        })
    }
}

/// Checks the keys against the database and seals rows left clear by an older build.
pub(super) fn prepare(conn: &mut Connection, keys: &DataKeys) -> Result<(), QueueError> {
    check_index_key(conn, keys)?;
    check_key_numbers(conn, keys)?;
    seal_legacy_rows(conn, keys)
}

/// The index key must be the one the database was indexed with (recorded on first use).
pub(super) fn check_index_key(conn: &Connection, keys: &DataKeys) -> Result<(), QueueError> {
    let stored = setting(conn, INDEX_CHECK)?;
    match stored {
        Some(value) if value != keys.index_check() => Err(QueueError::WrongDataKeys),
        Some(_) => Ok(()),
        None => {
            conn.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
                (INDEX_CHECK, &keys.index_check()[..]),
            )
            .map_err(storage("recording the index key"))?;
            Ok(())
        }
    }
}

/// Every data key that sealed content still held must be present.
fn check_key_numbers(conn: &Connection, keys: &DataKeys) -> Result<(), QueueError> {
    let present = keys.numbers();
    for (number, messages) in content_by_key(conn)? {
        if !present.contains(&number) {
            return Err(QueueError::MissingDataKey { number, messages });
        }
    }
    Ok(())
}

/// How many messages hold content sealed with each data key, by key number.
pub(super) fn content_by_key(conn: &Connection) -> Result<Vec<(u32, u64)>, QueueError> {
    let mut stmt = conn
        .prepare(
            "SELECT substr(fiscal_code, 2, 4) AS k, COUNT(*) FROM messages
             WHERE sealed = 1 AND content_deleted_at IS NULL GROUP BY k ORDER BY k",
        )
        .map_err(storage("listing data keys in use"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
        .map_err(storage("listing data keys in use"))?;
    let mut out = Vec::new();
    for row in rows {
        let (number, count) = row.map_err(storage("listing data keys in use"))?;
        let number: [u8; 4] =
            number.try_into().map_err(|_| QueueError::Corrupt { what: "a sealed fiscal code".into() })?;
        out.push((u32::from_be_bytes(number), u64::try_from(count).unwrap_or(0)));
    }
    Ok(out)
}

/// A row as a build before schema 5 wrote it: seq, id, fiscal code, body, recipe, dedup key.
type ClearRow = (i64, String, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Seals, 1,000 rows per transaction, what a build before schema 5 stored in clear.
fn seal_legacy_rows(conn: &mut Connection, keys: &DataKeys) -> Result<(), QueueError> {
    let mut sealed = 0usize;
    conn.pragma_update(None, "secure_delete", "ON").map_err(storage("sealing stored messages"))?;
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage("sealing stored messages"))?;
        let rows: Vec<ClearRow> = tx
            .prepare("SELECT seq, id, fiscal_code, body, recipe, dedup_key FROM messages WHERE sealed = 0 ORDER BY seq LIMIT ?1")
            .and_then(|mut stmt| {
                stmt.query_map([SWEEP_BATCH], |r| {
                    let bytes = |i: usize| -> rusqlite::Result<Option<Vec<u8>>> {
                        Ok(r.get_ref(i)?.as_bytes_or_null()?.map(<[u8]>::to_vec))
                    };
                    Ok((r.get(0)?, r.get(1)?, bytes(2)?.unwrap_or_default(), bytes(3)?.unwrap_or_default(), bytes(4)?, bytes(5)?))
                })?
                .collect()
            })
            .map_err(storage("reading messages to seal"))?;
        if rows.is_empty() {
            break;
        }
        for (seq, id, fiscal_code, body, recipe, dedup_key) in &rows {
            let fiscal_code = String::from_utf8_lossy(fiscal_code);
            let message_id: MessageId =
                id.parse().map_err(|_| QueueError::Corrupt { what: format!("message id {id:?}") })?;
            let message = Sealed::with_id(keys, message_id, &fiscal_code, Field::Body, body)?;
            let recipe = recipe.as_deref().map(|r| keys.seal(Field::Recipe, id, r)).transpose()?;
            let dedup_key =
                dedup_key.as_deref().map(|d| super::DedupKey::from_clear(&String::from_utf8_lossy(d)).stored(keys));
            tx.execute(
                "UPDATE messages SET fiscal_code = ?2, recipient_index = ?3, body = ?4, recipe = ?5, dedup_key = ?6,
                        sealed = 1 WHERE seq = ?1",
                rusqlite::params![seq, message.recipient, message.index, message.content, recipe, dedup_key],
            )
            .map_err(storage("sealing a stored message"))?;
        }
        tx.commit().map_err(storage("sealing stored messages"))?;
        sealed += rows.len();
    }
    conn.pragma_update(None, "secure_delete", "OFF").map_err(storage("sealing stored messages"))?;
    if sealed > 0 {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;").map_err(storage("sealing stored messages"))?;
        log::info!(count = sealed; "messages stored in clear by an older version are now encrypted");
    }
    Ok(())
}

/// Records the data key and signing key in use; a change from the last recorded one
/// becomes a `key_rotated` audit entry in `tx`.
pub(super) fn note_keys(
    tx: &Transaction<'_>,
    trail: &mut Trail,
    data_key: u32,
    signing_key: Option<&str>,
    now: i64,
) -> Result<(), QueueError> {
    let data = data_key.to_string();
    let mut changes = vec![(DATA_KEY, "data key", data.as_str())];
    changes.extend(signing_key.map(|kid| (SIGNING_KEY, "signing key", kid)));
    for (name, what, current) in changes {
        let recorded = setting(tx, name)?;
        if recorded.as_deref() == Some(current.as_bytes()) {
            continue;
        }
        if let Some(previous) = recorded {
            let previous = String::from_utf8_lossy(&previous);
            let detail = format!("{what} {previous} -> {current}");
            trail.append(tx, Event { kind: Kind::KeyRotated, message_id: None, actor: None, detail }, now)?;
            log::info!(key = what, previous:display = previous, current = current; "key rotated: new messages use the new key");
        }
        tx.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?1, ?2)", (name, current.as_bytes()))
            .map_err(storage("recording the keys in use"))?;
    }
    Ok(())
}

/// Empties the fiscal code, body and recipe of message `seq` if it is in `state` and still
/// holds content; audits it as `erased` with `detail`. Whether it did.
pub(super) fn delete_content(
    tx: &Transaction<'_>,
    trail: &mut Trail,
    seq: i64,
    state: State,
    detail: &str,
    actor: Option<&str>,
    now: i64,
) -> Result<bool, QueueError> {
    let id: Option<String> = tx
        .prepare_cached(
            "UPDATE messages SET fiscal_code = X'', body = X'', recipe = NULL, content_deleted_at = ?3
             WHERE seq = ?1 AND state = ?2 AND content_deleted_at IS NULL RETURNING id",
        )
        .and_then(|mut stmt| stmt.query_row((seq, state.as_sql(), now), |r| r.get(0)).optional())
        .map_err(storage("deleting a message's content"))?;
    let Some(id) = id else { return Ok(false) };
    let event = Event {
        kind: Kind::Erased,
        message_id: Some(id),
        actor: actor.map(str::to_string),
        detail: detail.to_string(),
    };
    trail.append(tx, event, now)?;
    Ok(true)
}

/// Deletes the content of messages whose final state is older than its retention,
/// following `transitions` from a cursor per retention class, at most `batches` × 1,000
/// transitions per class. Returns how many messages it emptied and whether it caught up.
pub(super) fn sweep(
    tx: &Transaction<'_>,
    trail: &mut Trail,
    retention: Retention,
    now: i64,
    batches: usize,
) -> Result<(usize, bool), QueueError> {
    let (mut deleted, mut caught_up) = (0, true);
    for (cursor_name, delivered) in [("sweep_delivered", true), ("sweep_undelivered", false)] {
        let cutoff = now.saturating_sub(retention.for_class(delivered));
        let start = setting(tx, cursor_name)?.and_then(|v| Some(i64::from_be_bytes(v.try_into().ok()?))).unwrap_or(0);
        let mut cursor = start;
        let (mut waiting, mut behind) = (false, false);
        for _ in 0..batches {
            let rows: Vec<(i64, i64, i64, String)> = tx
                .prepare_cached(
                    "SELECT seq, at, message_seq, to_state FROM transitions WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_map((cursor, SWEEP_BATCH), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect()
                })
                .map_err(storage("reading transitions to sweep"))?;
            let full = rows.len() as i64 == SWEEP_BATCH;
            for (seq, at, message_seq, to_state) in rows {
                let state = State::from_sql(&to_state)
                    .ok_or_else(|| QueueError::Corrupt { what: format!("state {to_state:?}") })?;
                if state.is_final() && (state == State::Processed) == delivered {
                    if at > cutoff {
                        waiting = true;
                        break;
                    }
                    if delete_content(tx, trail, message_seq, state, "retention", None, now)? {
                        deleted += 1;
                    }
                }
                cursor = seq;
            }
            behind = full && !waiting;
            if !behind {
                break;
            }
        }
        caught_up &= !behind;
        // Unchanged, nothing is written: an idle sweep commits no page and costs no fsync.
        if cursor != start {
            tx.execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?1, ?2)",
                (cursor_name, &cursor.to_be_bytes()[..]),
            )
            .map_err(storage("recording the sweep's place"))?;
        }
    }
    Ok((deleted, caught_up))
}

fn setting(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>, QueueError> {
    conn.prepare_cached("SELECT value FROM settings WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |r| r.get(0)).optional())
        .map_err(storage("reading a setting"))
}

/// The queue's data keys from `dir`. When `dir` holds none and the database at `database`
/// has never sealed anything (a new appliance, or one upgrading from a build without
/// encryption), they are made first; when it has, that is an error, never new keys.
pub fn load_data_keys(dir: &Path, database: &Path) -> Result<Arc<DataKeys>, QueueError> {
    if crate::seal::key_dir::is_empty(dir)? {
        if has_sealed(database)? {
            return Err(QueueError::DataKeysLost { dir: dir.to_path_buf(), database: database.to_path_buf() });
        }
        crate::seal::key_dir::generate(dir)?;
        log::info!(directory:display = dir.display(); "data keys made for the queue's encryption at rest: back this directory up");
    }
    Ok(Arc::new(crate::seal::key_dir::load(dir)?))
}

/// Whether the database at `path` exists and records an index key (it sealed data).
fn has_sealed(path: &Path) -> Result<bool, QueueError> {
    if !path.exists() {
        return Ok(false);
    }
    let open_error = |source| QueueError::OpenDatabase { path: path.to_path_buf(), source };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(open_error)?;
    let found = conn.query_row("SELECT 1 FROM settings WHERE name = 'index_check'", [], |_| Ok(()));
    match found {
        Ok(()) => Ok(true),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(false),
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("no such table") => Ok(false),
        Err(source) => Err(open_error(source)),
    }
}
