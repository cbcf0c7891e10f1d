//! WAL checkpoints on their own thread, so that copying pages back into the database
//! never stalls a commit that callers are waiting on.
//!
//! A checkpoint from this thread copies the frames that were in the WAL when it started;
//! with the writer always busy, new frames arrive meanwhile, so it never empties the WAL
//! by itself, and SQLite restarts the WAL from its start only after a checkpoint that
//! left nothing behind. The writer finishes that job between two of its transactions
//! (the tail): cheapest right after a run of this thread that copied every frame it saw,
//! and worth it only once the WAL is large ([`Policy`]). This thread raises the flag
//! the writer looks at after each commit. Measured at 64 clients, the tail costs the
//! writer a 20–57 ms fsync of the database file, whenever it runs: done every 256
//! commits (twice a second) as before, those stalls alone made a p99 of 20–33 ms.
//!
//! An import writes a hundred times faster than intake; its policy ([`Policy::IMPORT`])
//! lets the WAL grow to 256 MiB before asking for a tail, so the import's thread finishes
//! a checkpoint every few seconds instead of after every run of this thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// When the checkpoint thread runs and when it asks the writer for a tail checkpoint.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// Pause between two runs.
    every: Duration,
    /// Fewest frames (pages) in the WAL worth restarting it for.
    min_wal_frames: i64,
    /// Commits after which the writer finishes a checkpoint even if this thread never
    /// asked (a bound on the WAL if a reader keeps every run from completing).
    tail_at_least_every: u32,
}

impl Policy {
    /// The daemon's writer: a run every 50 ms, a tail once the WAL holds 64 MiB — the size
    /// its file keeps after a restart (`journal_size_limit`), so commits overwrite blocks
    /// already allocated instead of growing the file. Measured at 64 clients, a tail
    /// costs the writer a 20–57 ms fsync of the database file: once per 64 MiB of WAL
    /// (every few seconds) keeps that out of the p99, and a WAL left to grow to hundreds
    /// of MiB cost 15% of intake at 16 clients.
    pub(super) const INTAKE: Policy =
        Policy { every: Duration::from_millis(50), min_wal_frames: 16384, tail_at_least_every: 4096 };
    /// An import: runs back to back, a tail once the WAL holds 256 MiB (and at least every
    /// 1,000 batches: about 1.6 GB of WAL).
    pub(super) const IMPORT: Policy =
        Policy { every: Duration::from_millis(5), min_wal_frames: 65536, tail_at_least_every: 1000 };

    /// After a run that copied every frame it saw (`copied` of the `frames` in the WAL
    /// when it started), only what the writer added since is left: a tail is cheap.
    fn wants_tail(&self, frames: i64, copied: i64) -> bool {
        frames >= self.min_wal_frames && copied == frames
    }
}

/// The writer's side: after each of its commits, finishes a checkpoint when the thread
/// asked for one, or after the policy's most commits whatever it costs.
pub(super) struct Tail {
    due: Arc<AtomicBool>,
    commits: u32,
    at_least_every: u32,
}

impl Tail {
    /// Call after each commit on the writer's connection, once its callers are answered.
    pub(super) fn after_commit(&mut self, conn: &rusqlite::Connection) {
        self.commits += 1;
        if self.due.swap(false, Ordering::Acquire) || self.commits >= self.at_least_every {
            self.commits = 0;
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                log::warn!(error:display = e; "WAL checkpoint failed; will retry");
            }
        }
    }
}

pub(super) struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn` (a connection of its own) as `policy` says;
    /// the writer calls the returned [`Tail`] after each of its commits.
    pub(super) fn start(conn: rusqlite::Connection, policy: Policy) -> std::io::Result<(Checkpointer, Tail)> {
        let tail_due = Arc::new(AtomicBool::new(false));
        let tail = Tail { due: Arc::clone(&tail_due), commits: 0, at_least_every: policy.tail_at_least_every };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("queue-checkpoint".into()).spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(policy.every) {
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                }) {
                    Ok((busy, frames, copied)) => {
                        if busy == 0 && policy.wants_tail(frames, copied) {
                            tail_due.store(true, Ordering::Release);
                        }
                    }
                    Err(e) => log::warn!(error:display = e; "WAL checkpoint failed; will retry"),
                }
            }
        })?;
        Ok((Checkpointer { stop: Mutex::new(Some(stop)), thread: Mutex::new(Some(thread)) }, tail))
    }

    pub(super) fn stop(&self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::Policy;

    #[test]
    fn a_tail_is_wanted_after_a_complete_run_over_a_wal_worth_restarting() {
        assert!(Policy::INTAKE.wants_tail(20_000, 20_000));
        assert!(!Policy::INTAKE.wants_tail(20_000, 19_000), "a reader held the run back: the tail would be long");
        assert!(!Policy::INTAKE.wants_tail(3000, 3000), "a small WAL is not worth a fsync on the writer's thread");
        assert!(!Policy::IMPORT.wants_tail(60_000, 60_000), "an import lets its WAL grow larger");
        assert!(Policy::IMPORT.wants_tail(70_000, 70_000));
    }
}
