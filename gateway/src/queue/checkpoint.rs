//! WAL checkpoints on their own thread, so that copying pages back into the database
//! never stalls a commit that callers are waiting on.
//!
//! A checkpoint from this thread copies the frames that were in the WAL when it started;
//! with the writer always busy, new frames arrive meanwhile, so it never empties the WAL
//! by itself, and SQLite restarts the WAL from its start only after a checkpoint that
//! left nothing behind. The writer finishes that job between two of its transactions
//! (`TAIL`): cheap only right after this thread's run, when little is left to copy and
//! little is dirty in the database file. So this thread says when: after a run that left
//! at most [`TAIL_FRAMES`] behind it raises the flag the writer looks at after each commit.
//! Measured, a tail checkpoint every 256 commits regardless fsynced the database file
//! while this thread's copying was in flight: 26–57 ms stalls every half second at 64
//! clients, which alone made the p99 latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(50);
/// Most WAL frames (pages) a run may leave behind for the writer to finish (4 MiB).
const TAIL_FRAMES: i64 = 1024;

pub(super) struct Checkpointer {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn` (a connection of its own) every 50 ms; raises
    /// `tail_due` when the writer should finish a checkpoint.
    pub(super) fn start(conn: rusqlite::Connection, tail_due: Arc<AtomicBool>) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("queue-checkpoint".into()).spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                }) {
                    Ok((busy, frames, copied)) => {
                        if busy == 0 && frames > copied && frames - copied <= TAIL_FRAMES {
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
