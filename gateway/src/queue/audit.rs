//! The audit trail's storage: entries appended inside the caller's write transaction,
//! signed checkpoints, and the trail read back in seq order as a stream (to verify it or
//! export it).
//!
//! Three writers append — the daemon's writer thread, an import's `Importer`, the
//! operator's `Admin` — each on its own connection, serialised by SQLite's write lock. So a
//! [`Trail`] lives for one transaction only, and that transaction must hold the write lock
//! (`BEGIN IMMEDIATE`) before the trail reads its head: the newest stored entry, read
//! inside the transaction, is the only head anyone may append to. An entry's time is the
//! time of the change it records, to the millisecond (the `transitions` row's `at`, the
//! message's `accepted_at`), which lets `verify` notice a queue newer than its trail.

use super::{storage, MessageId, QueueError, State};
use crate::audit::{self, Chain, Checkpoint, Entry, Event, Kind, Unreadable, Unrecorded, Verification, Verifier};
use crate::signing::{Jwks, SigningKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use std::io::Write;
use std::path::{Path, PathBuf};

macro_rules! entry_columns {
    () => {
        "seq, at_ms, kind, message_id, actor, detail, prev_hash, hash"
    };
}
const ENTRY_COLUMNS: &str = entry_columns!();
/// A constant, not formatted per call: an import appends a million entries.
const INSERT_ENTRY: &str =
    concat!("INSERT INTO audit (", entry_columns!(), ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");

/// The trail as one write transaction sees it. Its head is read from the database on
/// first use, never carried over from another transaction.
#[derive(Default)]
pub(super) struct Trail {
    chain: Option<Chain>,
}

impl Trail {
    pub(super) fn new() -> Trail {
        Trail::default()
    }

    /// Appends `event` at `at_ms` through `tx`, a transaction that holds the write lock.
    pub(super) fn append(&mut self, tx: &Connection, event: Event, at_ms: i64) -> Result<u64, QueueError> {
        self.appender(tx)?.append(event, at_ms)
    }

    /// Appends many entries through one prepared statement: for a writer recording a
    /// whole batch (an import appends a million entries).
    pub(super) fn appender<'t>(&'t mut self, tx: &'t Connection) -> Result<Appender<'t>, QueueError> {
        let chain = self.chain(tx)?;
        let insert = tx.prepare_cached(INSERT_ENTRY).map_err(storage("preparing an audit entry"))?;
        Ok(Appender { chain, insert })
    }

    /// Entries past the newest checkpoint.
    pub(super) fn unsigned(&mut self, tx: &Connection) -> Result<u64, QueueError> {
        let (head, _) = self.chain(tx)?.head();
        Ok(head.saturating_sub(last_checkpoint(tx)?))
    }

    /// Signs and stores a checkpoint of the head, unless one already covers it; returns
    /// the seq signed.
    pub(super) fn checkpoint(
        &mut self,
        tx: &Connection,
        key: &SigningKey,
        at_ms: i64,
    ) -> Result<Option<u64>, QueueError> {
        if self.unsigned(tx)? == 0 {
            return Ok(None);
        }
        let checkpoint = self.chain(tx)?.checkpoint(key, at_ms);
        tx.execute(
            "INSERT INTO audit_checkpoints (seq, hash, at_ms, kid, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                sql_seq(checkpoint.seq)?,
                &checkpoint.hash[..],
                checkpoint.at_ms,
                checkpoint.kid.as_str(),
                &checkpoint.signature[..],
            ],
        )
        .map_err(storage("storing an audit checkpoint"))?;
        Ok(Some(checkpoint.seq))
    }

    fn chain(&mut self, tx: &Connection) -> Result<&mut Chain, QueueError> {
        debug_assert!(!tx.is_autocommit(), "the audit head is read inside the write transaction");
        let chain = match self.chain.take() {
            Some(chain) => chain,
            None => read_head(tx)?,
        };
        Ok(self.chain.insert(chain))
    }
}

/// A [`Trail`] borrowed to append several entries in its transaction.
pub(super) struct Appender<'t> {
    chain: &'t mut Chain,
    insert: rusqlite::CachedStatement<'t>,
}

impl Appender<'_> {
    /// Appends `event` at `at_ms`; returns its seq.
    pub(super) fn append(&mut self, event: Event, at_ms: i64) -> Result<u64, QueueError> {
        let entry = self.chain.append(event, at_ms)?;
        self.insert
            .execute(rusqlite::params![
                sql_seq(entry.seq)?,
                entry.at_ms,
                entry.kind.as_str(),
                entry.message_id,
                entry.actor,
                entry.detail,
                &entry.prev_hash[..],
                &entry.hash[..],
            ])
            .map_err(storage("appending an audit entry"))?;
        Ok(entry.seq)
    }
}

/// Read at the start of every write transaction (each of the daemon's commits): prepared
/// once per connection, not parsed and planned again each time.
const READ_HEAD: &str = concat!("SELECT ", entry_columns!(), " FROM audit ORDER BY seq DESC LIMIT 1");

/// The newest entry as a chain to append to; an empty trail starts a new chain.
fn read_head(tx: &Connection) -> Result<Chain, QueueError> {
    let row = tx
        .prepare_cached(READ_HEAD)
        .and_then(|mut stmt| stmt.query_row([], |row| Ok(entry_of(row))).optional())
        .map_err(storage("reading the audit head"))?;
    match row {
        None => Ok(Chain::new()),
        Some(Ok(last)) => Ok(Chain::resume(&last)?),
        Some(Err(row)) => Err(QueueError::AuditHead { seq: row.seq, reason: row.reason }),
    }
}

fn last_checkpoint(tx: &Connection) -> Result<u64, QueueError> {
    let seq: Option<i64> = tx
        .prepare_cached("SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
        .map_err(storage("reading the last audit checkpoint"))?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// A message committed to the queue, by `client` (a local client, or the import).
pub(super) fn accepted(id: MessageId, client: &str) -> Event {
    accepted_as_text(id.to_string(), client)
}

/// [`accepted`], for a caller that already holds the id as text.
pub(super) fn accepted_as_text(id: String, client: &str) -> Event {
    Event {
        kind: Kind::Accepted,
        message_id: Some(id),
        actor: Some(client.to_string()),
        detail: State::Queued.as_sql().to_string(),
    }
}

/// A state change, by `actor` (an operator) or the gateway itself. The detail is IO's id
/// for `sent`, the final state for final ones, and the state left for the rest: state
/// names and ids only, never content.
pub(super) fn changed(
    id: MessageId,
    from: State,
    to: State,
    io_message_id: Option<&str>,
    actor: Option<&str>,
) -> Event {
    let kind = match to {
        State::Sent => Kind::Sent,
        State::Processed | State::IoRejected | State::IoFailed | State::Unconfirmed => Kind::FinalStatus,
        State::RejectedByIo | State::NotOnIo | State::SenderNotAllowed => Kind::Rejected,
        State::Expired => Kind::Expired,
        State::Held => Kind::Held,
        State::Cancelled => Kind::Cancelled,
        State::Sending => Kind::Sending,
        State::Ambiguous => Kind::Ambiguous,
        State::Queued if from == State::Held => Kind::Released,
        State::Queued => Kind::Requeued,
    };
    let detail = match kind {
        Kind::Sent => io_message_id.unwrap_or_default().to_string(),
        Kind::FinalStatus | Kind::Rejected | Kind::Expired => to.as_sql().to_string(),
        _ => format!("from {}", from.as_sql()),
    };
    Event { kind, message_id: Some(id.to_string()), actor: actor.map(str::to_string), detail }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("{} holds no audit trail yet (schema version {version}); the next start of io-gateway adds it", path.display())]
    NoTrail { path: PathBuf, version: i64 },
    #[error(transparent)]
    Export(#[from] audit::export::ExportError),
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub entries: u64,
    pub checkpoints: usize,
    /// Rows left out because they are not entries (the export shows them as missing).
    pub unreadable: Vec<Unreadable>,
}

/// Checks the trail stored in the queue database at `path` with `keys`, streaming the
/// entries; also checks that the queue's newest changes have their entries.
pub fn verify_database(path: &Path, keys: &Jwks) -> Result<Verification, AuditError> {
    let mut conn = open_existing(path)?;
    let snapshot = conn.transaction().map_err(storage("beginning a read of the audit trail"))?;
    let checkpoints = read_checkpoints(&snapshot, 1)?;
    let mut verifier = Verifier::new(&checkpoints, keys);
    let mut stmt = snapshot
        .prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"))
        .map_err(storage("reading the audit trail"))?;
    let mut entries = Entries::new(stmt.query([]).map_err(storage("reading the audit trail"))?);
    for entry in entries.by_ref() {
        verifier.push(entry);
    }
    let unreadable = entries.finish()?;
    let report = verifier.finish();
    let unrecorded = unrecorded(&snapshot)?;
    Ok(Verification { report, unreadable, unrecorded })
}

/// Writes the export document (see `audit::export`) of the entries from `since` on, every
/// checkpoint from `since` on, and `keys`, from one consistent read.
pub fn export_database(path: &Path, since: u64, keys: &Jwks, out: &mut dyn Write) -> Result<Exported, AuditError> {
    let mut conn = open_existing(path)?;
    let snapshot = conn.transaction().map_err(storage("beginning a read of the audit trail"))?;
    let checkpoints = read_checkpoints(&snapshot, since)?;
    let mut stmt = snapshot
        .prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit WHERE seq >= ?1 ORDER BY seq"))
        .map_err(storage("reading the audit trail"))?;
    let rows = stmt.query([i64::try_from(since).unwrap_or(i64::MAX)]).map_err(storage("reading the audit trail"))?;
    let mut entries = Entries::new(rows);
    let written = audit::export::write(out, since, keys, &checkpoints, entries.by_ref())?;
    let unreadable = entries.finish()?;
    Ok(Exported { entries: written, checkpoints: checkpoints.len(), unreadable })
}

/// An existing queue database, opened without creating or migrating anything.
fn open_existing(path: &Path) -> Result<Connection, AuditError> {
    let open_error = |source| QueueError::OpenDatabase { path: path.to_path_buf(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_error)?;
    let has_trail: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit')", [], |r| {
            r.get(0)
        })
        .map_err(open_error)?;
    if !has_trail {
        let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(open_error)?;
        return Err(AuditError::NoTrail { path: path.to_path_buf(), version });
    }
    Ok(conn)
}

fn read_checkpoints(conn: &Connection, since: u64) -> Result<Vec<Checkpoint>, QueueError> {
    let mut stmt = conn
        .prepare("SELECT seq, hash, at_ms, kid, signature FROM audit_checkpoints WHERE seq >= ?1 ORDER BY seq")
        .map_err(storage("reading audit checkpoints"))?;
    let rows = stmt
        .query_map([i64::try_from(since).unwrap_or(i64::MAX)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?, r.get(4)?))
        })
        .map_err(storage("reading audit checkpoints"))?;
    let mut checkpoints = Vec::new();
    for row in rows {
        let (seq, hash, at_ms, kid, signature): (i64, Vec<u8>, i64, String, Vec<u8>) =
            row.map_err(storage("reading audit checkpoints"))?;
        let corrupt = |what: &str| QueueError::Corrupt { what: format!("audit checkpoint {seq}: {what}") };
        checkpoints.push(Checkpoint {
            seq: u64::try_from(seq).map_err(|_| corrupt("negative seq"))?,
            hash: hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?,
            at_ms,
            kid: kid.parse().map_err(|_| corrupt("bad key id"))?,
            signature: signature.try_into().map_err(|_| corrupt("signature is not 64 bytes"))?,
        });
    }
    Ok(checkpoints)
}

/// Stored entries in seq order. A row that is not an entry is set aside (see [`finish`]);
/// a read failure ends the stream and is returned by [`finish`].
///
/// [`finish`]: Entries::finish
pub struct Entries<'s> {
    rows: rusqlite::Rows<'s>,
    unreadable: Vec<Unreadable>,
    failure: Option<rusqlite::Error>,
}

impl<'s> Entries<'s> {
    fn new(rows: rusqlite::Rows<'s>) -> Entries<'s> {
        Entries { rows, unreadable: Vec::new(), failure: None }
    }

    /// The rows that were not entries, or the failure that ended the stream.
    pub fn finish(self) -> Result<Vec<Unreadable>, QueueError> {
        match self.failure {
            Some(source) => Err(QueueError::Storage { operation: "reading the audit trail", source }),
            None => Ok(self.unreadable),
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        while self.failure.is_none() {
            match self.rows.next() {
                Ok(Some(row)) => match entry_of(row) {
                    Ok(entry) => return Some(entry),
                    Err(unreadable) => self.unreadable.push(unreadable),
                },
                Ok(None) => return None,
                Err(error) => self.failure = Some(error),
            }
        }
        None
    }
}

/// Rebuilds an entry from its row, whatever the row now holds; a row that cannot be one
/// (a field of the wrong type, an unknown kind, a hash of the wrong length) is named.
fn entry_of(row: &Row<'_>) -> Result<Entry, Unreadable> {
    let seq: i64 = row.get(0).unwrap_or(-1);
    let bad = |field: &str, reason: String| Unreadable { seq, reason: format!("{field}: {reason}") };
    let hash = |index: usize, field: &str| -> Result<[u8; 32], Unreadable> {
        let bytes: Vec<u8> = row.get(index).map_err(|e| bad(field, e.to_string()))?;
        let length = bytes.len();
        bytes.try_into().map_err(|_| bad(field, format!("{length} bytes instead of 32")))
    };
    let kind: String = row.get(2).map_err(|e| bad("kind", e.to_string()))?;
    Ok(Entry {
        seq: u64::try_from(seq).map_err(|_| bad("seq", "negative".into()))?,
        at_ms: row.get(1).map_err(|e| bad("at_ms", e.to_string()))?,
        kind: kind.parse().map_err(|e: audit::UnknownKind| bad("kind", e.to_string()))?,
        message_id: row.get(3).map_err(|e| bad("message_id", e.to_string()))?,
        actor: row.get(4).map_err(|e| bad("actor", e.to_string()))?,
        detail: row.get(5).map_err(|e| bad("detail", e.to_string()))?,
        prev_hash: hash(6, "prev_hash")?,
        hash: hash(7, "hash")?,
    })
}

/// The queue's newest message and newest transition, each when no entry records it
/// though it is no older than the trail's first entry. Both lookups walk the trail back
/// from its end and normally stop within the last few entries.
fn unrecorded(conn: &Connection) -> Result<Option<Unrecorded>, QueueError> {
    let read = storage("comparing the audit trail with the queue");
    let start: Option<i64> =
        conn.query_row("SELECT at_ms FROM audit ORDER BY seq LIMIT 1", [], |r| r.get(0)).optional().map_err(&read)?;
    let Some(start) = start else { return Ok(None) };
    let newest_message: Option<(String, i64)> = conn
        .query_row("SELECT id, accepted_at FROM messages ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(&read)?;
    if let Some((id, at_ms)) = newest_message.filter(|(_, at)| *at >= start) {
        if !recorded(conn, &id, at_ms, Some(Kind::Accepted))? {
            return Ok(Some(Unrecorded { message_id: id, change: Kind::Accepted.to_string(), at_ms }));
        }
    }
    let newest_change: Option<(String, Option<String>, String, i64)> = conn
        .query_row(
            "SELECT m.id, t.from_state, t.to_state, t.at FROM transitions t JOIN messages m ON m.seq = t.message_seq
             ORDER BY t.seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(&read)?;
    if let Some((id, from, to, at_ms)) = newest_change.filter(|change| change.3 >= start) {
        if !recorded(conn, &id, at_ms, None)? {
            let change = format!("{} -> {to}", from.as_deref().unwrap_or("-"));
            return Ok(Some(Unrecorded { message_id: id, change, at_ms }));
        }
    }
    Ok(None)
}

/// Whether an entry for message `id` at exactly `at_ms` (of `kind`, if given) exists,
/// looking from the trail's end back.
fn recorded(conn: &Connection, id: &str, at_ms: i64, kind: Option<Kind>) -> Result<bool, QueueError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT seq FROM audit WHERE message_id = ?1 AND at_ms = ?2 AND (?3 IS NULL OR kind = ?3)
             ORDER BY seq DESC LIMIT 1",
            rusqlite::params![id, at_ms, kind.map(Kind::as_str)],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage("comparing the audit trail with the queue"))?;
    Ok(found.is_some())
}

fn sql_seq(seq: u64) -> Result<i64, QueueError> {
    i64::try_from(seq).map_err(|_| QueueError::Corrupt { what: format!("audit seq {seq} does not fit SQLite") })
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
