//! WAL checkpoints on their own thread, so that copying pages back into the database
//! never stalls a commit that callers are waiting on.
//!
//! A checkpoint from this thread copies the frames that were in the WAL when it started;
//! with the writer always busy, new frames arrive meanwhile, so it never empties the WAL
//! by itself, and SQLite restarts the WAL from its start only after a checkpoint that
//! left nothing behind. The writer finishes that job between two of its transactions
//! (the tail): cheap only right after this thread's run, when little is left to copy and
//! little is dirty in the database file. So this thread says when: after a run that left
//! at most [`Policy::tail_frames`] behind it raises the flag the writer looks at after
//! each commit. Measured, a tail checkpoint every 256 commits regardless fsynced the
//! database file while this thread's copying was in flight: 26–57 ms stalls every half
//! second at 64 clients, which alone made the p99 latency.
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
    /// Most WAL frames (pages) a run may leave behind for the writer to finish.
    tail_frames: i64,
    /// Fewest frames in the WAL worth restarting it for.
    min_wal_frames: i64,
}

impl Policy {
    /// The daemon's writer: a run every 50 ms, a tail of at most 4 MiB.
    pub(super) const INTAKE: Policy = Policy { every: Duration::from_millis(50), tail_frames: 1024, min_wal_frames: 0 };
    /// An import: runs back to back, a tail of at most 32 MiB once the WAL holds 256 MiB.
    pub(super) const IMPORT: Policy =
        Policy { every: Duration::from_millis(5), tail_frames: 8192, min_wal_frames: 65536 };

    fn wants_tail(&self, frames: i64, copied: i64) -> bool {
        frames > copied && frames >= self.min_wal_frames && frames - copied <= self.tail_frames
    }
}

pub(super) struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn` (a connection of its own) as `policy` says;
    /// raises `tail_due` when the writer should finish a checkpoint.
    pub(super) fn start(
        conn: rusqlite::Connection,
        policy: Policy,
        tail_due: Arc<AtomicBool>,
    ) -> std::io::Result<Checkpointer> {
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
        Ok(Checkpointer { stop: Mutex::new(Some(stop)), thread: Mutex::new(Some(thread)) })
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
    fn a_tail_is_wanted_only_when_little_is_left_of_a_wal_worth_restarting() {
        assert!(Policy::INTAKE.wants_tail(5000, 4500));
        assert!(!Policy::INTAKE.wants_tail(5000, 5000), "nothing left: the WAL restarts by itself");
        assert!(!Policy::INTAKE.wants_tail(5000, 1000), "too much left to copy on the writer's thread");
        assert!(!Policy::IMPORT.wants_tail(60_000, 59_000), "a small WAL is left to grow during an import");
        assert!(Policy::IMPORT.wants_tail(70_000, 65_000));
        assert!(!Policy::IMPORT.wants_tail(70_000, 20_000));
    }
}
