//! What a request thread may do while one client's message waits for its commit: poll
//! instead of sleeping, so that it is awake when the writer answers.
//!
//! When one client posts after another, each request is alone in its commit, and its
//! HTTP thread has nothing else to do until the writer answers (a fsync, 150–250 µs
//! here). Asleep, it is woken by the writer's answer; on a virtual machine, or a CPU in a
//! deep idle state, the core itself must wake first: tens of µs on every request. The
//! runtime asks [`CommitWait::poll_while_awaited`] before it parks a worker; it polls for
//! at most [`POLL_FOR_COMMIT`], only while a request awaits its commit and the writer's
//! last batch held a single message. With more clients, batches hold several messages
//! and the thread sleeps at once: a thread polling then would leave other clients'
//! requests unread until the commit ended, and the writer's next batch would be smaller
//! (measured: 16 clients lost 30–40% of their throughput that way). Measured with one
//! client, in five interleaved pairs of 4 s runs: 3,190–3,650 messages/s polling against
//! 2,390–2,900 sleeping; 2, 16 and 64 clients unchanged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a worker polls before it parks: above a fsync'd commit on this kind of
/// machine, so that it normally ends with the answer.
pub const POLL_FOR_COMMIT: Duration = Duration::from_micros(400);

/// Requests awaiting their commit, and the size of the writer's last batch. Cheap to
/// clone: every clone watches the same writer.
#[derive(Debug, Clone, Default)]
pub struct CommitWait {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    awaiting: AtomicUsize,
    last_batch: AtomicUsize,
}

impl CommitWait {
    /// Polls (spins) until no request awaits its commit, for at most [`POLL_FOR_COMMIT`],
    /// when that is worth it (see the module docs); returns at once otherwise.
    pub fn poll_while_awaited(&self) {
        let started = Instant::now();
        while self.worth_polling() && started.elapsed() < POLL_FOR_COMMIT {
            std::hint::spin_loop();
        }
    }

    /// A request awaits its commit, and the writer's batches hold one message at a time.
    fn worth_polling(&self) -> bool {
        self.inner.awaiting.load(Ordering::Relaxed) > 0 && self.inner.last_batch.load(Ordering::Relaxed) <= 1
    }

    /// Requests handed to the writer and not yet answered.
    #[cfg(test)]
    pub(super) fn awaiting(&self) -> usize {
        self.inner.awaiting.load(Ordering::Relaxed)
    }

    /// A request was handed to the writer.
    pub(super) fn handed(&self) {
        self.inner.awaiting.fetch_add(1, Ordering::Relaxed);
    }

    /// A request handed to the writer was answered (or never reached it).
    pub(super) fn answered(&self) {
        self.inner.awaiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// The writer is committing a batch of `items`.
    pub(super) fn batch(&self, items: usize) {
        self.inner.last_batch.store(items, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_only_while_a_lone_request_awaits_its_commit() {
        let wait = CommitWait::default();
        assert!(!wait.worth_polling(), "nothing awaited");
        wait.handed();
        assert!(wait.worth_polling(), "one request, no batch yet");
        wait.batch(1);
        assert!(wait.worth_polling(), "one request in a batch of one");
        wait.handed();
        wait.batch(2);
        assert!(!wait.worth_polling(), "several clients: sleep, and read their requests when they come");
        wait.answered();
        wait.answered();
        wait.batch(1);
        assert!(!wait.worth_polling(), "every request answered");
        wait.poll_while_awaited(); // returns at once: nothing awaited
    }

    #[test]
    fn polling_ends_with_the_answer_or_at_its_bound() {
        let wait = CommitWait::default();
        wait.handed();
        let started = Instant::now();
        wait.poll_while_awaited();
        assert!(started.elapsed() >= POLL_FOR_COMMIT, "no answer came: it polled to its bound and stopped");

        let writer = wait.clone();
        let answer = std::thread::spawn(move || writer.answered());
        answer.join().unwrap();
        assert!(!wait.worth_polling(), "a clone sees the writer's answer");
    }
}
