//! The durable message queue: one SQLite file, and the only module that speaks SQL.
//!
//! # Guarantees
//!
//! * **Durable at 201.** `Queue::enqueue` returns only after the transaction holding the
//!   message has committed with `synchronous=FULL` in WAL mode, i.e. after the WAL has been
//!   fsynced. The API answers 201 only after that. A message we answered 201 for therefore
//!   survives `kill -9` of the process *and* loss of power.
//! * **Nothing half-written.** A message (with its idempotency key and its acceptance
//!   time, which is the time of its first state) is written in one transaction; a crash
//!   before the commit leaves no trace of it, and its sender got no 201 (no answer at all,
//!   or an error), so it knows to retry. Later state changes are written together with
//!   their row in `transitions`.
//! * **Group commit.** Concurrent `enqueue` calls are collected by one writer thread and
//!   committed together: many requests share one fsync, yet each is answered only after
//!   the commit that holds it.
//!   When one client posts after another, each commit holds one message, and the
//!   writer and the request's thread poll (for at most 200 µs and 1 ms) instead of
//!   sleeping, so neither waits to be woken ([`CommitWait`]).
//! * **Idempotency.** With an idempotency key, the key, the client and a digest of the
//!   request are stored with the message in the same transaction: a retry with the same
//!   key and the same request gets the same message, never a second one.
//! * **Backpressure, not corruption.** Past `max_queued_messages` messages awaiting
//!   delivery (queued, sending, ambiguous or held; `sent` ones are IO's) or below
//!   `min_free_disk_bytes` of free disk, new messages are refused (`QueueError::Full`,
//!   `QueueError::DiskLow`); so are they when more than `MAX_WAITING` requests already
//!   wait for the writer (`QueueError::Busy`). What is already stored is untouched. A write that fails
//!   (disk full, I/O error) rolls back its whole batch and every caller in it gets an
//!   error: none of them was accepted.
//! * **Order.** Messages leave by priority (urgent, normal, bulk), then in the order they
//!   were accepted (`seq`). Retries wait for their `next_attempt_at`.
//! * **Audited.** Every message accepted and every state change is written with its entry
//!   in the audit trail (`audit`) in the same transaction, so the trail and the queue never
//!   disagree; the writer signs a checkpoint of the trail every 1,000 entries or 60 s and
//!   when it closes (with `[signing]`).
//! * **Ambiguous sends.** IO has no idempotency. A message found in state `sending` at
//!   start-up was being sent when the process died: IO may or may not have it. It becomes
//!   `ambiguous`, never silently `queued` again; the delivery policy decides what next.

pub mod admin;
pub mod audit;
mod checkpoint;
pub mod citizen;
mod commit_wait;
mod import;
mod read;
mod schema;
mod sealing;
mod state;
mod writer;
mod writes;

pub use commit_wait::CommitWait;
pub use import::{template_digest, BatchOutcome, DedupKey, ImportBatch, ImportedMessage, Importer, IMPORT_CLIENT};
pub use schema::{MigrationError, CURRENT_VERSION};
pub use sealing::{load_data_keys, Sealed};
pub use state::{Priority, State};
pub use writer::MAX_WAITING;

use crate::config::{ClientName, ServiceName};
use crate::seal::{CurrentDataKeys, SealError};
use crate::signing::CurrentKey;
use connectors::domain::{FiscalCode, OrgFiscalCode};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The gateway's own id for a message: a ULID, stable for the message's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId(ulid::Ulid);

impl MessageId {
    pub fn new() -> MessageId {
        MessageId(ulid::Ulid::new())
    }
}

impl Default for MessageId {
    fn default() -> Self {
        MessageId::new()
    }
}

impl std::str::FromStr for MessageId {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s).map(MessageId)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A validated message ready to be stored.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub institution: OrgFiscalCode,
    pub service: ServiceName,
    pub client: ClientName,
    pub fiscal_code: FiscalCode,
    pub priority: Priority,
    /// The JSON body exactly as it will be sent to IO.
    pub body: Vec<u8>,
    pub idempotency: Option<Idempotency>,
}

/// A client's idempotency key and the digest of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_digest: [u8; 32],
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A new message was stored.
    New(MessageId),
    /// The same idempotency key and request were seen before: this is that message.
    Replayed(MessageId),
}

impl Accepted {
    pub fn id(self) -> MessageId {
        match self {
            Accepted::New(id) | Accepted::Replayed(id) => id,
        }
    }
}

/// A stored message as the local API shows it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: MessageId,
    pub institution: OrgFiscalCode,
    pub service: ServiceName,
    pub client: ClientName,
    pub fiscal_code: FiscalCode,
    pub priority: Priority,
    pub state: State,
    pub body: Vec<u8>,
    /// Milliseconds since the Unix epoch.
    pub accepted_at: i64,
    pub state_changed_at: i64,
    pub attempts: u32,
    pub io_message_id: Option<String>,
    pub io_status: Option<String>,
    pub last_error: Option<String>,
    /// Imported messages: what to render at send time (their `body` is empty).
    pub recipe: Option<Recipe>,
    /// Imported messages: the file they came from (`format:name`).
    pub source: Option<String>,
    /// The content was deleted (retention or erasure): `body` is empty, `recipe` `None`.
    pub content_deleted: bool,
}

/// An imported message before rendering: the record's values and the template they fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// SHA-256 of the template's text, its key in the `templates` table.
    pub template: [u8; 32],
    /// The record's values (JSON, see `import::recipe`).
    pub data: Vec<u8>,
}

/// A state change asked of the queue. It happens only if the message is still in
/// `from` (so two actors never both move a message); otherwise it is skipped.
#[derive(Debug, Clone)]
pub struct Change {
    pub id: MessageId,
    pub from: State,
    pub to: State,
    /// Why, for the transition record and `last_error` (no personal data).
    pub reason: String,
    /// When the message is next due (milliseconds since the epoch), if that changes.
    pub next_attempt_at: Option<i64>,
    /// One more delivery attempt was made.
    pub attempted: bool,
    pub io_message_id: Option<String>,
    pub io_status: Option<String>,
    /// What went wrong, shown as `last_error`. `None` keeps the last one, except that
    /// reaching `sent` or `processed` clears it.
    pub error: Option<String>,
}

impl Change {
    /// A change with no IO ids, no error and the due time left as it is.
    pub fn new(id: MessageId, from: State, to: State, reason: impl Into<String>) -> Change {
        Change {
            id,
            from,
            to,
            reason: reason.into(),
            next_attempt_at: None,
            attempted: false,
            io_message_id: None,
            io_status: None,
            error: None,
        }
    }
}

/// How long a message's content (fiscal code, body, recipe) is kept once its state is
/// final. State, ids, the recipient index and the audit trail are kept regardless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// After IO's final status `processed`: the citizen has the message in IO.
    pub delivered: Duration,
    /// After any other final state (not on IO, refused, expired, cancelled…): kept so the
    /// town can reach the citizen on paper or by PEC (`io-gateway outcomes`).
    pub undelivered: Duration,
}

impl Retention {
    pub const DEFAULT: Retention =
        Retention { delivered: Duration::ZERO, undelivered: Duration::from_secs(30 * 86_400) };

    /// The retention of a final `state`, in milliseconds.
    pub fn of(self, state: State) -> i64 {
        self.for_class(state == State::Processed)
    }

    fn for_class(self, delivered: bool) -> i64 {
        let keep = if delivered { self.delivered } else { self.undelivered };
        i64::try_from(keep.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention::DEFAULT
    }
}

/// The keys the queue uses: the data keys that seal personal data, and the signing key of
/// the audit trail's checkpoints (none without `[signing]`).
#[derive(Clone)]
pub struct Keys {
    pub data: Arc<CurrentDataKeys>,
    pub audit: Arc<CurrentKey>,
}

#[cfg(test)]
impl Keys {
    /// Data keys only, no signing.
    pub(crate) fn data_only(data: Arc<crate::seal::DataKeys>) -> Keys {
        Keys { data: Arc::new(CurrentDataKeys::new(data)), audit: Arc::default() }
    }
}

/// Limits that make the queue refuse new work instead of filling the disk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_queued_messages: u64,
    pub min_free_disk_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot open the queue database {path}: {source}")]
    OpenDatabase { path: PathBuf, source: rusqlite::Error },
    #[error("cannot prepare the queue database {path}: {source}")]
    Migrate { path: PathBuf, source: MigrationError },
    #[error("the queue holds {pending} pending messages, its limit is {limit}")]
    Full { pending: u64, limit: u64 },
    #[error("only {free_bytes} bytes of disk are free, the minimum is {min_bytes}")]
    DiskLow { free_bytes: u64, min_bytes: u64 },
    #[error("idempotency key already used for a different request (message {existing})")]
    IdempotencyConflict { existing: MessageId },
    #[error("the queue database failed during {operation}: {source}")]
    Storage { operation: &'static str, source: rusqlite::Error },
    #[error("the batch holding this message could not be committed: {reason}")]
    BatchFailed { reason: String },
    #[error("the database holds a value this build cannot read: {what}")]
    Corrupt { what: String },
    #[error("{0} requests are already waiting for the disk")]
    Busy(usize),
    #[error(
        "the queue database {path} is not in {expected} mode (found {found:?}): refusing to run without durability"
    )]
    Durability { path: PathBuf, expected: &'static str, found: String },
    #[error("cannot flush the queue's journal {path} to disk: {source}")]
    Sync { path: PathBuf, source: std::io::Error },
    #[error("cannot start the {thread} thread: {source}")]
    Thread { thread: &'static str, source: std::io::Error },
    #[error("the queue is shutting down")]
    Closed,
    #[error(transparent)]
    Audit(#[from] crate::audit::ChainError),
    #[error("the newest audit entry ({seq}) cannot be read: {reason}; run `io-gateway audit verify`")]
    AuditHead { seq: i64, reason: String },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    DataKeys(#[from] crate::seal::DataKeyError),
    #[error("{} has no data keys, but the queue {} holds data sealed with keys: restore the directory from a backup, or point [storage] data_key_directory at it", dir.display(), database.display())]
    DataKeysLost { dir: PathBuf, database: PathBuf },
    #[error("the data key directory's index.key is not the one this queue was written with: configure the right [storage] data_key_directory or restore its keys")]
    WrongDataKeys,
    #[error("{messages} messages still hold content sealed with data key {number}, which is not in the data key directory: restore data-{number}.key from a backup")]
    MissingDataKey { number: u32, messages: u64 },
}

impl QueueError {
    /// True when the caller should retry later (the queue refused new work for now).
    pub fn is_backpressure(&self) -> bool {
        matches!(self, QueueError::Full { .. } | QueueError::DiskLow { .. } | QueueError::Busy(_) | QueueError::Closed)
    }
}

/// Handle to the queue. Cheap to share behind an `Arc`.
pub struct Queue {
    checkpointer: checkpoint::Checkpointer,
    writer: writer::Writer,
    reader: Arc<Mutex<Connection>>,
    data_keys: Arc<CurrentDataKeys>,
}

impl Queue {
    /// Opens (creating if needed) the database at `path`, migrates it, checks the data keys
    /// and seals what an older build left clear (`sealing::prepare`), and starts the
    /// writer, which seals with `keys.data`, deletes content past its `retention` and signs
    /// the audit trail's checkpoints with `keys.audit` when it holds a key.
    pub fn open(path: &Path, limits: Limits, retention: Retention, keys: Keys) -> Result<Queue, QueueError> {
        let mut conn = open_connection(path)?;
        schema::migrate(&mut conn).map_err(|source| QueueError::Migrate { path: path.to_path_buf(), source })?;
        sealing::prepare(&mut conn, &keys.data.get())?;
        let recovered = recover_interrupted_sends(&mut conn)?;
        if recovered > 0 {
            log::warn!(count = recovered; "messages were being sent when the gateway stopped; marked ambiguous");
        }
        let reader = open_connection(path)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|source| QueueError::OpenDatabase { path: path.to_path_buf(), source })?;
        let (checkpointer, tail) = checkpoint::Checkpointer::start(open_connection(path)?, checkpoint::Policy::INTAKE)
            .map_err(|source| QueueError::Thread { thread: "checkpoint", source })?;
        let directory = database_directory(path).to_path_buf();
        let data_keys = Arc::clone(&keys.data);
        let writer = writer::Writer::start(conn, limits, retention, directory, keys, tail)?;
        Ok(Queue { checkpointer, writer, reader: Arc::new(Mutex::new(reader)), data_keys })
    }

    /// Stores a message durably. Returns only after the commit that holds it. The writer
    /// seals its fiscal code and body: measured, sealing on the request's thread instead
    /// cost 5–7% of intake at 64 clients, since that thread, not the writer, is the busy one.
    pub async fn enqueue(&self, record: NewRecord) -> Result<Accepted, QueueError> {
        self.writer.enqueue(record).await
    }

    /// Looks a message up by id and recipient: `None` when there is no such message or it
    /// is not `recipient`'s (compared through the keyed index, so it works after the
    /// content was deleted; an erased message is no one's).
    pub async fn message(&self, id: MessageId, recipient: &FiscalCode) -> Result<Option<StoredMessage>, QueueError> {
        let reader = Arc::clone(&self.reader);
        let keys = self.data_keys.get();
        let recipient = recipient.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| QueueError::Closed)?;
            read::read_message(&conn, &keys, id, &recipient)
        })
        .await
        .map_err(|_| QueueError::Closed)?
    }

    /// Applies state changes in one commit; for each, whether it applied (`false`: the
    /// message was no longer in `from`).
    pub async fn apply(&self, changes: Vec<Change>) -> Result<Vec<bool>, QueueError> {
        self.writer.apply(changes).await
    }

    /// Up to `limit` messages of `institution` in one of `states` and due at `now`
    /// (milliseconds), urgent first, then in the order they were accepted.
    pub async fn due(
        &self,
        institution: &OrgFiscalCode,
        states: &[State],
        now: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, QueueError> {
        let reader = Arc::clone(&self.reader);
        let institution = institution.as_str().to_string();
        let states: Vec<&'static str> = states.iter().map(|s| s.as_sql()).collect();
        let keys = self.data_keys.get();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| QueueError::Closed)?;
            read::read_due(&conn, &keys, &institution, &states, now, limit)
        })
        .await
        .map_err(|_| QueueError::Closed)?
    }

    /// A stored template's name and text by the SHA-256 of its text.
    pub async fn template(&self, digest: [u8; 32]) -> Result<Option<(String, String)>, QueueError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().map_err(|_| QueueError::Closed)?;
            let mut stmt = conn
                .prepare_cached("SELECT name, text FROM templates WHERE digest = ?1")
                .map_err(|source| QueueError::Storage { operation: "reading a template", source })?;
            stmt.query_row([&digest[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(|source| QueueError::Storage { operation: "reading a template", source })
        })
        .await
        .map_err(|_| QueueError::Closed)?
    }

    /// Requests awaiting their commit: a runtime polls instead of parking while a lone
    /// one does (see [`CommitWait`]).
    pub fn commit_wait(&self) -> CommitWait {
        self.writer.commit_wait()
    }

    /// Stops the writer after everything already submitted is committed.
    pub fn close(&self) {
        self.checkpointer.stop();
        self.writer.close();
    }
}

fn open_connection(path: &Path) -> Result<Connection, QueueError> {
    let open_error = |source| QueueError::OpenDatabase { path: path.to_path_buf(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_error)?;
    let journal: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(open_error)?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(QueueError::Durability { path: path.to_path_buf(), expected: "WAL journal", found: journal });
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).map_err(open_error)?;
    if synchronous != 2 {
        let found = synchronous.to_string();
        return Err(QueueError::Durability { path: path.to_path_buf(), expected: "synchronous=FULL (2)", found });
    }
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_error)?;
    // After a burst, give the WAL file back down to this size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(open_error)?;
    Ok(conn)
}

/// Messages left in `sending` by a crash become `ambiguous` (see the module docs), each
/// with its transition row and audit entry, in one transaction.
fn recover_interrupted_sends(conn: &mut Connection) -> Result<usize, QueueError> {
    let storage = |source| QueueError::Storage { operation: "recovering interrupted sends", source };
    let now = now_millis();
    let states = (State::Sending.as_sql(), State::Ambiguous.as_sql(), now);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM messages WHERE state = ?1 ORDER BY seq")
        .and_then(|mut stmt| stmt.query_map([states.0], |r| r.get(0))?.collect())
        .map_err(storage)?;
    let sql = "INSERT INTO transitions (message_seq, from_state, to_state, at, reason)
               SELECT seq, ?1, ?2, ?3, 'process stopped during send' FROM messages WHERE state = ?1";
    tx.execute(sql, states).map_err(storage)?;
    let changed = tx
        .execute("UPDATE messages SET state = ?2, state_changed_at = ?3 WHERE state = ?1", states)
        .map_err(storage)?;
    let mut trail = audit::Trail::new();
    for id in ids {
        let id = id.parse().map_err(|_| QueueError::Corrupt { what: format!("message id {id:?}") })?;
        trail.append(&tx, audit::changed(id, State::Sending, State::Ambiguous, None, None), now)?;
    }
    tx.commit().map_err(storage)?;
    Ok(changed)
}

fn storage(operation: &'static str) -> impl Fn(rusqlite::Error) -> QueueError {
    move |source| QueueError::Storage { operation, source }
}

/// The directory holding a database file (`.` for a bare file name, whose `parent()` is
/// empty and names no file system).
pub fn database_directory(database: &Path) -> &Path {
    database.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Bytes free for unprivileged users on the file system holding `directory`.
pub fn free_disk_bytes(directory: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(directory)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Milliseconds since the Unix epoch: the queue's clock.
pub fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sealing_tests;
