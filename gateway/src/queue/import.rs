//! Bulk insertion of imported messages, for `io-gateway import` and the watch folders.
//!
//! An import opens its own connection to the queue database, so it works whether the
//! daemon runs or not: SQLite serialises the two writers (the daemon's group commit waits
//! at most one import batch, a few milliseconds) and delivery finds the new messages on
//! its next look at the queue. It never touches messages already there: in particular it
//! does not run the start-up recovery of interrupted sends, which belongs to the daemon.
//!
//! Each batch is one transaction, committed with `synchronous=NORMAL`: it survives a crash
//! of the process at once, and a power cut once the journal (the WAL) is next flushed —
//! by [`Importer::sync`], which an import calls before it reports what it queued, by the
//! checkpoint thread before it copies the batch into the database (every few
//! milliseconds), or by the daemon's next commit (every commit of the daemon's is
//! `synchronous=FULL`, and flushing the WAL flushes all of it). So a message is durable
//! before the daemon can mark it `sending`, and everything an import reports as queued is
//! durable; a power cut during an import loses at most its last few batches, and running
//! it again queues them (below). Measured on a million-record import, flushing the WAL at
//! every batch kept the importing thread — the import's bottleneck — waiting 4 of its 18
//! s, each flush competing for the disk with the checkpoint thread's writes.
//!
//! A record whose `dedup_key` is already in the queue — from an earlier import of the same
//! or an overlapping file, even one interrupted by a crash — is skipped and counted as a
//! duplicate, so running an import again is always safe.
//!
//! WAL checkpoints run on a thread of their own (`checkpoint`, [`Policy::IMPORT`]): the
//! importing thread only finishes one now and then, when little is left. Measured on a
//! million-record import, checkpointing inside the batch commits took half of that
//! thread's time (6.5 of 14 s), and that thread is the import's bottleneck.
//!
//! Each new message gets its `accepted` audit entry in its batch's transaction (a
//! duplicate gets none); [`Importer::sign_checkpoint`] signs the trail's head at the end.
//!
//! The fiscal code and the recipe are sealed with the current data key, and a dedup key
//! that holds personal data is stored as its keyed hash (see [`DedupKey`] and `sealing`).

use super::audit::{self, Trail};
use super::checkpoint::{Checkpointer, Policy, Tail};
use super::{now_millis, open_connection, schema, sealing, storage, Priority, QueueError, Sealed, State};
use crate::config::{ClientName, ServiceName};
use crate::seal::DataKeys;
use crate::signing::SigningKey;
use connectors::domain::OrgFiscalCode;
use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Page cache of an import's connection, in KiB.
const IMPORT_CACHE_KIB: i64 = 32 * 1024;
/// How long a count of pending messages is trusted.
const RECOUNT_EVERY: Duration = Duration::from_secs(30);

/// One imported message; `?2`–`?4`, `?6`–`?8`, `?10` and `?11` are the same for a whole batch.
const INSERT_IMPORTED: &str =
    "INSERT INTO messages (id, institution, service, client, fiscal_code, priority, state, body,
                           accepted_at, state_changed_at, dedup_key, source, template, recipe,
                           recipient_index, sealed)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, X'', ?8, ?8, ?9, ?10, ?11, ?12, ?13, 1)
     ON CONFLICT DO NOTHING";

/// The client name imported messages are stored under (never a configured client's name).
pub const IMPORT_CLIENT: &str = "import";

/// Messages made from records of one imported file: what they share, and each one's own.
#[derive(Debug, Clone)]
pub struct ImportBatch {
    pub institution: OrgFiscalCode,
    pub service: ServiceName,
    pub priority: Priority,
    /// The template (see [`Importer::store_template`]) the records' values fill.
    pub template: [u8; 32],
    /// Which file they came from, e.g. `gpd:tari_2025.zip`.
    pub source: String,
    pub messages: Vec<ImportedMessage>,
}

/// One message made from one record of an imported file.
#[derive(Debug, Clone)]
pub struct ImportedMessage {
    /// The record's values, sealed with the fiscal code ([`Sealed::recipe`]): the message
    /// is rendered from them and the batch's template when it is sent.
    pub sealed: Sealed,
    /// The record's stable identity as stored ([`DedupKey::stored`]): the same record
    /// imported again has the same key.
    pub dedup_key: String,
}

/// A record's stable identity, as its import made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupKey {
    /// Holds no personal data — a payment's creditor and notice number — and is stored as
    /// it is. A keyed hash would scatter a file's consecutive notice numbers across the
    /// unique index: measured, that cut a million-record import from 100,000 to 18,000
    /// records/s (every batch rewrote most of the index's pages into the WAL).
    Public(String),
    /// Holds personal data — an ID-card reminder's fiscal code — and is stored as its
    /// keyed hash.
    Personal(String),
}

impl DedupKey {
    /// What the `dedup_key` column holds for this key.
    pub fn stored(&self, keys: &DataKeys) -> String {
        match self {
            DedupKey::Public(key) => key.clone(),
            DedupKey::Personal(key) => keys.dedup_index(key),
        }
    }

    /// A key an older build stored in clear: payment keys are public, the rest personal.
    pub(super) fn from_clear(key: &str) -> DedupKey {
        if key.starts_with("payment:") {
            DedupKey::Public(key.to_string())
        } else {
            DedupKey::Personal(key.to_string())
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub inserted: u64,
    /// Records whose dedup key was already queued: nothing written for them.
    pub duplicates: u64,
}

/// A connection that inserts imported messages in batches.
pub struct Importer {
    conn: Connection,
    client: ClientName,
    max_queued: u64,
    min_free_disk: u64,
    directory: PathBuf,
    /// The database's WAL, which `sync` flushes.
    pub(super) wal: PathBuf,
    /// Messages awaiting delivery as last counted plus what we added since, and when.
    pending: Option<(u64, Instant)>,
    /// Signs the audit checkpoint at the end (`None`: no `[signing]`).
    audit_key: Option<Arc<SigningKey>>,
    keys: Arc<DataKeys>,
    /// Whether the keys in use were recorded (`sealing::note_keys`) by this importer.
    keys_noted: bool,
    /// Copies the WAL back into the database meanwhile (stopped when dropped); `tail`
    /// finishes a checkpoint on this connection when it says so.
    _checkpointer: Checkpointer,
    tail: Tail,
}

impl Importer {
    /// Opens (creating and migrating if needed) the queue database at `path`; `keys`
    /// seal what it inserts and must be the queue's.
    pub fn open(path: &Path, limits: super::Limits, keys: Arc<DataKeys>) -> Result<Importer, QueueError> {
        let mut conn = open_connection(path)?;
        schema::migrate(&mut conn).map_err(|source| QueueError::Migrate { path: path.to_path_buf(), source })?;
        sealing::check_index_key(&conn, &keys)?;
        // A million-row import touches the indexes' right edges and little else: a larger
        // page cache keeps them in memory (RSS stays well under 100 MiB). Checkpoints are
        // the checkpoint thread's; flushing the WAL is `sync`'s (see the module docs).
        let tune = |conn: &Connection| -> rusqlite::Result<()> {
            conn.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
        };
        tune(&conn).map_err(|source| QueueError::OpenDatabase { path: path.to_path_buf(), source })?;
        let (checkpointer, tail) = Checkpointer::start(open_connection(path)?, Policy::IMPORT)
            .map_err(|source| QueueError::Thread { thread: "import checkpoint", source })?;
        let client = IMPORT_CLIENT.parse().map_err(|reason| QueueError::Corrupt { what: reason })?;
        let directory = super::database_directory(path).to_path_buf();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Importer {
            conn,
            wal: PathBuf::from(wal),
            client,
            max_queued: limits.max_queued_messages,
            min_free_disk: limits.min_free_disk_bytes,
            directory,
            pending: None,
            audit_key: None,
            keys,
            keys_noted: false,
            _checkpointer: checkpointer,
            tail,
        })
    }

    /// The data keys it was opened with: what an import's messages must be sealed with.
    pub fn keys(&self) -> Arc<DataKeys> {
        Arc::clone(&self.keys)
    }

    /// Signs the audit checkpoint at the end of the import with `key` (`None`: unsigned).
    pub fn with_audit_key(mut self, key: Option<Arc<SigningKey>>) -> Importer {
        self.audit_key = key;
        self
    }

    /// Signs a checkpoint of the audit trail's head, unless none is due (no key, or the
    /// head is already covered); returns the seq signed.
    pub fn sign_checkpoint(&mut self) -> Result<Option<u64>, QueueError> {
        let Some(key) = self.audit_key.clone() else { return Ok(None) };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage("beginning an audit checkpoint"))?;
        let signed = Trail::new().checkpoint(&tx, &key, now_millis())?;
        tx.commit().map_err(storage("committing an audit checkpoint"))?;
        Ok(signed)
    }

    /// Makes every batch inserted so far durable, power cuts included: flushes the WAL.
    /// Frames already copied out of it were flushed into the database by the checkpoint
    /// before it let them go, so the WAL is all there is to flush.
    pub fn sync(&mut self) -> Result<(), QueueError> {
        let sync = |wal: &Path| std::fs::File::open(wal)?.sync_data();
        match sync(&self.wal) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            result => result.map_err(|source| QueueError::Sync { path: self.wal.clone(), source }),
        }
    }

    /// The connection's `PRAGMA synchronous` (1 = NORMAL, 2 = FULL).
    #[cfg(test)]
    pub(super) fn synchronous(&self) -> i64 {
        self.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap_or(-1)
    }

    /// Inserts a batch in one transaction. Refuses the whole batch, writing nothing, when
    /// the queue would pass its size limit or the disk is below its free-space floor: the
    /// caller stops and the sysadmin re-runs the import later (duplicates are skipped).
    pub fn insert(&mut self, batch: &ImportBatch) -> Result<BatchOutcome, QueueError> {
        let free_bytes = free_disk_bytes(&self.directory);
        if free_bytes < self.min_free_disk {
            return Err(QueueError::DiskLow { free_bytes, min_bytes: self.min_free_disk });
        }
        // Immediate: the write lock is held before the audit head is read.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(storage("beginning an import batch"))?;
        // Counting a million pending rows takes a while: count once, then add what we
        // insert; recount now and then, as delivery finishes messages meanwhile.
        let pending = match self.pending {
            Some((pending, counted)) if counted.elapsed() < RECOUNT_EVERY => pending,
            _ => {
                let sql = format!("SELECT COUNT(*) FROM messages WHERE state IN ({})", State::pending_sql_list());
                let pending: i64 =
                    tx.query_row(&sql, [], |r| r.get(0)).map_err(storage("counting pending messages"))?;
                u64::try_from(pending).unwrap_or(0)
            }
        };
        let mut outcome = BatchOutcome::default();
        let mut trail = Trail::new();
        if !self.keys_noted {
            let signing = self.audit_key.as_ref().map(|k| k.kid().to_string());
            sealing::note_keys(&tx, &mut trail, self.keys.current(), signing.as_deref(), now_millis())?;
        }
        {
            let mut insert = tx.prepare_cached(INSERT_IMPORTED).map_err(storage("preparing an import insert"))?;
            let now = now_millis();
            // What the batch's messages share is bound once; each message binds its own.
            let bind = storage("binding an imported message");
            insert.raw_bind_parameter(2, batch.institution.as_str()).map_err(&bind)?;
            insert.raw_bind_parameter(3, batch.service.as_str()).map_err(&bind)?;
            insert.raw_bind_parameter(4, self.client.as_str()).map_err(&bind)?;
            insert.raw_bind_parameter(6, batch.priority.as_sql()).map_err(&bind)?;
            insert.raw_bind_parameter(7, State::Queued.as_sql()).map_err(&bind)?;
            insert.raw_bind_parameter(8, now).map_err(&bind)?;
            insert.raw_bind_parameter(10, &batch.source).map_err(&bind)?;
            insert.raw_bind_parameter(11, &batch.template[..]).map_err(&bind)?;
            let mut audit = trail.appender(&tx)?;
            for message in &batch.messages {
                let Sealed { id, recipient, index, content: recipe } = &message.sealed;
                let id = id.to_string();
                insert.raw_bind_parameter(1, &id).map_err(&bind)?;
                insert.raw_bind_parameter(5, recipient).map_err(&bind)?;
                insert.raw_bind_parameter(9, &message.dedup_key).map_err(&bind)?;
                insert.raw_bind_parameter(12, recipe).map_err(&bind)?;
                insert.raw_bind_parameter(13, index).map_err(&bind)?;
                let written = insert.raw_execute().map_err(storage("inserting an imported message"))?;
                if written == 1 {
                    audit.append(audit::accepted_as_text(id, self.client.as_str()), now)?;
                    outcome.inserted += 1;
                } else {
                    outcome.duplicates += 1;
                }
            }
        }
        // Duplicates take no room: only what this batch really adds counts against the limit.
        if pending + outcome.inserted > self.max_queued {
            return Err(QueueError::Full { pending, limit: self.max_queued });
        }
        tx.commit().map_err(storage("committing an import batch"))?;
        self.keys_noted = true;
        self.tail.after_commit(&self.conn);
        let counted = self.pending.map_or_else(Instant::now, |(_, at)| at);
        self.pending = Some((pending + outcome.inserted, counted));
        Ok(outcome)
    }

    /// Keeps a template's text (once per distinct text) and returns its digest, the key
    /// imported messages refer to it by.
    pub fn store_template(&mut self, name: &str, text: &str) -> Result<[u8; 32], QueueError> {
        let digest = template_digest(text);
        self.conn
            .execute(
                "INSERT INTO templates (digest, name, text, stored_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                rusqlite::params![&digest[..], name, text, now_millis()],
            )
            .map_err(|source| QueueError::Storage { operation: "storing a template", source })?;
        Ok(digest)
    }

    /// Whether a record with this dedup key is already queued (for `--dry-run`).
    pub fn contains(&self, dedup_key: &DedupKey) -> Result<bool, QueueError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM messages WHERE dedup_key = ?1")
            .map_err(storage("looking up a dedup key"))?;
        stmt.exists([dedup_key.stored(&self.keys)]).map_err(storage("looking up a dedup key"))
    }
}

/// The SHA-256 of a template's text.
pub fn template_digest(text: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Unknown (an error) counts as plenty, as in the daemon's writer.
fn free_disk_bytes(directory: &Path) -> u64 {
    super::free_disk_bytes(directory).unwrap_or(u64::MAX)
}
