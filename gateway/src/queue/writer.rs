//! The single writer thread: group commit of incoming messages (sealed, see `sealing`),
//! backpressure, retention, and the audit trail's entries and signed checkpoints.

use super::audit::Trail;
use super::checkpoint::Tail;
use super::commit_wait::CommitWait;
use super::sealing;
use super::writes::{admit, apply_change};
use super::{now_millis, storage, Accepted, Change, Keys, Limits, NewRecord, QueueError, Retention, State};
use rusqlite::{Connection, TransactionBehavior};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Most requests waiting for the writer; past this, callers get `QueueError::Busy` (a 503)
/// instead of piling up in memory behind a slow disk.
pub const MAX_WAITING: usize = 8192;
/// How long the writer polls for the next request before it sleeps (see `next_command`).
/// Long enough to cover a client's next request after its answer on loopback or a LAN
/// (~100 µs measured at one client); it costs at most this much CPU per commit, and
/// nothing when no request comes (the writer then sleeps). Measured with one client:
/// 3,000–3,400 messages/s polling against 2,400–2,800 sleeping at once.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(200);
/// How often free disk space is re-read.
const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the pending count is re-read from the database. In between it is kept by
/// counting what this writer adds; states that other writers finalise are seen late,
/// which only delays lifting backpressure a little.
const RECOUNT_EVERY: Duration = Duration::from_secs(30);
/// The writer signs a checkpoint of the audit trail's head once this many entries are
/// past the last one, or this long after its last, whichever comes first (if the head
/// moved), and when it closes.
const AUDIT_CHECKPOINT_ENTRIES: u64 = 1_000;
const AUDIT_CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// How often the writer deletes content past its retention, and how much it reads at
/// most each time (in thousands of transitions per retention class).
const SWEEP_EVERY: Duration = Duration::from_secs(10);
const SWEEP_BATCHES: usize = 10;

type Reply = oneshot::Sender<Result<Accepted, QueueError>>;
type ApplyReply = oneshot::Sender<Result<Vec<bool>, QueueError>>;

enum Command {
    Enqueue(Box<NewRecord>, Reply),
    Apply(Vec<Change>, ApplyReply),
    Close,
}

/// One piece of a batch and where its answer goes.
enum Item {
    Enqueue(Box<NewRecord>, Reply),
    Apply(Vec<Change>, ApplyReply),
}

pub(super) struct Writer {
    commands: Mutex<Option<mpsc::SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Requests handed to the writer thread and not yet answered.
    wait: CommitWait,
}

impl Writer {
    pub(super) fn start(
        conn: Connection,
        limits: Limits,
        retention: Retention,
        directory: PathBuf,
        keys: Keys,
        tail: Tail,
    ) -> Result<Writer, QueueError> {
        let wait = CommitWait::default();
        let mut state = WriterState {
            wait: wait.clone(),
            conn,
            limits,
            retention,
            directory,
            pending: 0,
            free_bytes: u64::MAX,
            counted_at: Instant::now(),
            disk_checked_at: Instant::now(),
            tail,
            refusing: None,
            keys,
            noted_keys: None,
            signed_at: Instant::now(),
            swept_at: Instant::now() - SWEEP_EVERY,
        };
        state.recount()?;
        state.free_bytes = free_disk_bytes(&state.directory);
        let (tx, rx) = mpsc::sync_channel(MAX_WAITING);
        let thread = std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|source| QueueError::Thread { thread: "queue writer", source })?;
        Ok(Writer { commands: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)), wait })
    }

    pub(super) async fn enqueue(&self, record: NewRecord) -> Result<Accepted, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.wait.handed();
        if let Err(error) = self.send(Command::Enqueue(Box::new(record), reply)) {
            self.wait.answered();
            return Err(error);
        }
        answer.await.map_err(|_| QueueError::Closed)?
    }

    pub(super) async fn apply(&self, changes: Vec<Change>) -> Result<Vec<bool>, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Apply(changes, reply))?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    fn send(&self, command: Command) -> Result<(), QueueError> {
        let commands = self.commands.lock().map_err(|_| QueueError::Closed)?;
        let sender = commands.as_ref().ok_or(QueueError::Closed)?;
        sender.try_send(command).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => QueueError::Busy(MAX_WAITING),
            mpsc::TrySendError::Disconnected(_) => QueueError::Closed,
        })
    }

    /// Requests awaiting their commit, for a runtime that polls while one does.
    pub(super) fn commit_wait(&self) -> CommitWait {
        self.wait.clone()
    }

    /// Commits what was already submitted, then stops the thread and waits for it.
    pub(super) fn close(&self) {
        if let Ok(mut commands) = self.commands.lock() {
            if let Some(sender) = commands.take() {
                let _ = sender.send(Command::Close);
            }
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("the queue writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

struct WriterState {
    /// Told the size of each batch and of each answer to a posted message.
    wait: CommitWait,
    conn: Connection,
    limits: Limits,
    retention: Retention,
    directory: PathBuf,
    /// Messages awaiting delivery, as of the last recount plus what we added since.
    pending: u64,
    free_bytes: u64,
    counted_at: Instant,
    disk_checked_at: Instant,
    /// Finishes a WAL checkpoint after a commit when the checkpoint thread says so: the
    /// checkpoint thread copies most pages concurrently, but with a writer always busy
    /// it never empties the WAL, and SQLite restarts the WAL from its start only after a
    /// complete checkpoint (see `checkpoint`).
    tail: Tail,
    /// Why new messages are being refused, if they are: logged once when it starts.
    refusing: Option<&'static str>,
    /// The data keys that seal, and the key that signs the audit checkpoints (`None`
    /// inside: no `[signing]`, nothing signed).
    keys: Keys,
    /// The data key number and signing key id last recorded (`sealing::note_keys`).
    noted_keys: Option<(u32, Option<String>)>,
    /// When this writer last signed, or looked for a head to sign.
    signed_at: Instant,
    /// When this writer last swept content past its retention.
    swept_at: Instant,
}

impl WriterState {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
        let mut closing = false;
        while !closing {
            if self.swept_at.elapsed() >= SWEEP_EVERY {
                self.sweep();
            }
            let wait = AUDIT_CHECKPOINT_EVERY.saturating_sub(self.signed_at.elapsed());
            match next_command(&commands, wait.min(SWEEP_EVERY.saturating_sub(self.swept_at.elapsed()))) {
                Ok(Command::Enqueue(record, reply)) => batch.push(Item::Enqueue(record, reply)),
                Ok(Command::Apply(changes, reply)) => batch.push(Item::Apply(changes, reply)),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.signed_at.elapsed() >= AUDIT_CHECKPOINT_EVERY {
                        self.sign_checkpoint();
                    }
                    continue;
                }
                Ok(Command::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(Command::Enqueue(record, reply)) => batch.push(Item::Enqueue(record, reply)),
                    Ok(Command::Apply(changes, reply)) => batch.push(Item::Apply(changes, reply)),
                    Ok(Command::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.wait.batch(batch.iter().filter(|item| matches!(item, Item::Enqueue(..))).count());
            self.commit_batch(&mut batch);
        }
        self.sign_checkpoint();
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            log::warn!(error:display = e; "WAL checkpoint at shutdown failed; the next start will replay it");
        }
        log::info!("queue writer stopped, all accepted messages committed");
    }

    /// Commits one batch and answers every caller in it.
    fn commit_batch(&mut self, batch: &mut Vec<Item>) {
        if self.disk_checked_at.elapsed() >= DISK_CHECK_EVERY {
            self.free_bytes = free_disk_bytes(&self.directory);
            self.disk_checked_at = Instant::now();
        }
        if self.counted_at.elapsed() >= RECOUNT_EVERY {
            if let Err(e) = self.recount() {
                log::error!(error:display = e; "cannot count pending messages");
            }
        }
        let mut enqueued = Vec::with_capacity(batch.len());
        let mut applied = Vec::new();
        let (pending, free_bytes, limits, retention) = (self.pending, self.free_bytes, self.limits, self.retention);
        let signer = self.keys.audit.get();
        let data_keys = self.keys.data.get();
        let in_use = (data_keys.current(), signer.as_ref().map(|k| k.kid().to_string()));
        let note = (self.noted_keys.as_ref() != Some(&in_use)).then_some(&in_use);
        let sign_by_time = self.signed_at.elapsed() >= AUDIT_CHECKPOINT_EVERY;
        let began = Instant::now();
        // Immediate: the write lock is held before the audit head is read (an import or an
        // operator may have appended since our last commit).
        let begin = self.conn.transaction_with_behavior(TransactionBehavior::Immediate);
        let outcome = begin.map_err(storage("beginning a batch")).and_then(|tx| {
            let (mut added, mut finished) = (0u64, 0u64);
            let mut trail = Trail::new();
            if let Some((data, signing)) = note {
                sealing::note_keys(&tx, &mut trail, *data, signing.as_deref(), now_millis())?;
            }
            for item in batch.iter() {
                match item {
                    Item::Enqueue(record, _) => {
                        let room = (pending + added, free_bytes, limits);
                        let result = admit(&tx, &mut trail, &data_keys, record, room);
                        match result {
                            Ok(Accepted::New(_)) => added += 1,
                            // Not a refusal of this record: the batch cannot be committed.
                            Err(QueueError::Storage { .. } | QueueError::Audit(_) | QueueError::AuditHead { .. }) => {
                                return result.map(|_| (0, 0, false));
                            }
                            _ => {}
                        }
                        enqueued.push(result);
                    }
                    Item::Apply(changes, _) => {
                        let mut done = Vec::with_capacity(changes.len());
                        for change in changes {
                            let changed = apply_change(&tx, &mut trail, change, retention)?;
                            if changed && change.from.awaits_delivery() && !change.to.awaits_delivery() {
                                finished += 1;
                            }
                            done.push(changed);
                        }
                        applied.push(done);
                    }
                }
            }
            let mut signed = false;
            if let Some(key) = signer {
                if sign_by_time || trail.unsigned(&tx)? >= AUDIT_CHECKPOINT_ENTRIES {
                    trail.checkpoint(&tx, &key, now_millis())?;
                    signed = true;
                }
            }
            tx.commit().map_err(storage("committing a batch"))?;
            Ok((added, finished, signed))
        });
        self.wait.committed(began.elapsed());
        self.note_refusals(&enqueued);
        match outcome {
            Ok((added, finished, signed)) => {
                self.noted_keys = Some(in_use);
                if signed {
                    self.signed_at = Instant::now();
                }
                self.pending = (self.pending + added).saturating_sub(finished);
                let (mut enqueued, mut applied) = (enqueued.into_iter(), applied.into_iter());
                for item in batch.drain(..) {
                    match item {
                        Item::Enqueue(_, reply) => {
                            let _ = reply.send(enqueued.next().unwrap_or(Err(QueueError::Closed)));
                            self.wait.answered();
                        }
                        Item::Apply(_, reply) => {
                            let _ = reply.send(applied.next().ok_or(QueueError::Closed));
                        }
                    }
                }
                self.tail.after_commit(&self.conn);
            }
            Err(error) => {
                log::error!(error:display = error, batch = batch.len(); "a batch could not be committed; none of it took effect");
                self.free_bytes = free_disk_bytes(&self.directory);
                for item in batch.drain(..) {
                    match item {
                        Item::Enqueue(_, reply) => {
                            let _ = reply.send(Err(copy_error(&error)));
                            self.wait.answered();
                        }
                        Item::Apply(_, reply) => {
                            let _ = reply.send(Err(copy_error(&error)));
                        }
                    }
                }
            }
        }
    }

    /// Signs a checkpoint of the audit trail's head in a transaction of its own, if a key is
    /// set and the head moved past the last checkpoint (whoever wrote it).
    fn sign_checkpoint(&mut self) {
        self.signed_at = Instant::now();
        let Some(key) = self.keys.audit.get() else { return };
        let sign = |conn: &mut Connection| -> Result<Option<u64>, QueueError> {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(storage("beginning an audit checkpoint"))?;
            let signed = Trail::new().checkpoint(&tx, &key, now_millis())?;
            tx.commit().map_err(storage("committing an audit checkpoint"))?;
            Ok(signed)
        };
        match sign(&mut self.conn) {
            Ok(Some(seq)) => log::debug!(seq = seq; "audit checkpoint signed"),
            Ok(None) => {}
            Err(e) => {
                log::error!(error:display = e; "cannot sign an audit checkpoint; the trail's tail stays unsigned")
            }
        }
    }

    /// Deletes the content of messages final for longer than their retention, in a
    /// transaction of its own; comes back sooner when there is more to do.
    fn sweep(&mut self) {
        self.swept_at = Instant::now();
        let retention = self.retention;
        let sweep = |conn: &mut Connection| -> Result<(usize, bool), QueueError> {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage("beginning a sweep"))?;
            let mut trail = Trail::new();
            let swept = sealing::sweep(&tx, &mut trail, retention, now_millis(), SWEEP_BATCHES)?;
            tx.commit().map_err(storage("committing a sweep"))?;
            Ok(swept)
        };
        match sweep(&mut self.conn) {
            Ok((deleted, caught_up)) => {
                if deleted > 0 {
                    log::info!(count = deleted; "content deleted from messages past their retention");
                }
                if !caught_up {
                    self.swept_at -= SWEEP_EVERY;
                }
            }
            Err(e) => log::error!(error:display = e; "cannot delete content past its retention; will retry"),
        }
    }

    /// Logs once when the queue starts refusing new messages and once when it stops.
    fn note_refusals(&mut self, results: &[Result<Accepted, QueueError>]) {
        let refusal = results.iter().find_map(|r| match r {
            Err(QueueError::Full { .. }) => Some("the queue is full"),
            Err(QueueError::DiskLow { .. }) => Some("free disk is below the minimum"),
            _ => None,
        });
        let accepted = results.iter().any(|r| matches!(r, Ok(Accepted::New(_))));
        match (self.refusing, refusal) {
            (None, Some(reason)) => {
                log::warn!(pending = self.pending, free_bytes = self.free_bytes, reason = reason;
                           "refusing new messages (503) until there is room");
                self.refusing = Some(reason);
            }
            (Some(_), None) if accepted => {
                log::info!(pending = self.pending; "accepting new messages again");
                self.refusing = None;
            }
            _ => {}
        }
    }

    /// Re-reads the pending count: others (the delivery loop, the admin CLI) move
    /// messages to final states.
    fn recount(&mut self) -> Result<(), QueueError> {
        let sql = format!("SELECT COUNT(*) FROM messages WHERE state IN ({})", State::pending_sql_list());
        let pending: i64 = self.conn.query_row(&sql, [], |r| r.get(0)).map_err(storage("counting pending messages"))?;
        self.pending = u64::try_from(pending).unwrap_or(0);
        self.counted_at = Instant::now();
        Ok(())
    }
}

/// The next command, polling the channel for up to `POLL_BEFORE_SLEEP` before sleeping
/// on it for at most `wait`. A request that arrives while the writer polls is taken at
/// once; one that finds it asleep first waits for the thread — and, on an idle core, for
/// the core — to wake up: tens of µs on a virtual machine or a CPU in a deep idle state,
/// on every request when one client posts after another.
fn next_command(commands: &mpsc::Receiver<Command>, wait: Duration) -> Result<Command, mpsc::RecvTimeoutError> {
    let polling = Instant::now();
    while polling.elapsed() < POLL_BEFORE_SLEEP.min(wait) {
        match commands.try_recv() {
            Ok(command) => return Ok(command),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvTimeoutError::Disconnected),
            Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    commands.recv_timeout(wait.saturating_sub(polling.elapsed()))
}

/// The same error for every caller of a failed batch (rusqlite errors are not `Clone`).
fn copy_error(error: &QueueError) -> QueueError {
    QueueError::BatchFailed { reason: error.to_string() }
}

/// Bytes available to unprivileged users on the file system holding `directory`.
/// Unknown (an error) counts as plenty, so a `statvfs` failure never stops intake.
fn free_disk_bytes(directory: &std::path::Path) -> u64 {
    match super::free_disk_bytes(directory) {
        Ok(free) => free,
        Err(e) => {
            log::warn!(error:display = e; "cannot read free disk space");
            u64::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_command_is_taken_while_polling_or_after_sleeping() {
        let (tx, rx) = mpsc::sync_channel(4);
        tx.send(Command::Close).unwrap();
        assert!(matches!(next_command(&rx, Duration::from_secs(5)), Ok(Command::Close)), "already waiting");

        let late = std::thread::spawn({
            let tx = tx.clone();
            move || {
                std::thread::sleep(POLL_BEFORE_SLEEP * 10);
                tx.send(Command::Close).unwrap();
            }
        });
        assert!(matches!(next_command(&rx, Duration::from_secs(5)), Ok(Command::Close)), "arrived while asleep");
        late.join().unwrap();

        let wait = Duration::from_millis(20);
        let started = Instant::now();
        assert!(matches!(next_command(&rx, wait), Err(mpsc::RecvTimeoutError::Timeout)));
        assert!(started.elapsed() >= wait, "the wait covers the polling");

        drop(tx);
        assert!(matches!(next_command(&rx, Duration::from_secs(5)), Err(mpsc::RecvTimeoutError::Disconnected)));
    }
}
