//! What a request thread may do while one client's message waits for its commit: poll
//! instead of sleeping, so that it is awake when the writer answers.
//!
//! When one client posts after another, each request is alone in its commit, and its
//! HTTP thread has nothing else to do until the writer answers (a fsync, 150–250 µs
//! here). Asleep, it is woken by the writer's answer; on a virtual machine, or a CPU in a
//! deep idle state, the core itself must wake first: tens of µs on every request. The
//! runtime asks [`CommitWait::poll_while_awaited`] before it parks a worker; it polls for
//! at most [`POLL_FOR_COMMIT`], only while a single request awaits its commit and the
//! writer's last batch held a single message, and only while commits usually end within
//! that bound: on slower storage (an SD card's fsync takes milliseconds) polling would
//! only burn CPU. With more clients the thread sleeps at once: polling then would leave
//! other clients' requests unread until the commit ended, and the writer's next batch
//! would be smaller (measured: polling whenever a request awaited cost 16 clients 30–40%
//! of their throughput; with the batch condition alone, 64 clients lost 3–18%, as the
//! writer, polling too, often starts a batch with the first request that comes).
//! Measured with one client, in three interleaved pairs of 4 s runs against the build
//! before any polling: 4,380–4,450 messages/s against 3,000–3,090; 2, 16 and 64 clients
//! within the noise.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a worker polls before it parks, and the longest the writer's commits may
/// usually take for polling to be worth it: several times a fsync'd commit on an SSD or
/// a virtual disk (150–300 µs measured), so that polling normally ends with the answer.
pub const POLL_FOR_COMMIT: Duration = Duration::from_millis(1);

/// Requests awaiting their commit, the size of the writer's last batch and how long its
/// commits take. Cheap to clone: every clone watches the same writer.
#[derive(Debug, Clone, Default)]
pub struct CommitWait {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    awaiting: AtomicUsize,
    last_batch: AtomicUsize,
    /// A moving average (weight 1/8) of the writer's commit times, in µs; 0 before the first.
    commit_micros: AtomicU64,
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

    /// One request, and only one, awaits its commit; the writer's batches hold one
    /// message at a time; and its commits usually end within the polling bound.
    fn worth_polling(&self) -> bool {
        self.inner.awaiting.load(Ordering::Relaxed) == 1
            && self.inner.last_batch.load(Ordering::Relaxed) <= 1
            && self.inner.commit_micros.load(Ordering::Relaxed) < POLL_FOR_COMMIT.as_micros() as u64
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

    /// The writer's last commit took `took` (called by the writer thread only).
    pub(super) fn committed(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let average = match self.inner.commit_micros.load(Ordering::Relaxed) {
            0 => took,
            average => average - average / 8 + took / 8,
        };
        self.inner.commit_micros.store(average, Ordering::Relaxed);
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
        assert!(!wait.worth_polling(), "two requests await: another client's may come meanwhile");
        wait.answered();
        wait.batch(2);
        assert!(!wait.worth_polling(), "several clients: sleep, and read their requests when they come");
        wait.answered();
        wait.batch(1);
        assert!(!wait.worth_polling(), "every request answered");
        wait.poll_while_awaited(); // returns at once: nothing awaited
    }

    #[test]
    fn does_not_poll_when_commits_outlast_the_bound() {
        let wait = CommitWait::default();
        wait.handed();
        wait.committed(Duration::from_micros(250));
        assert!(wait.worth_polling(), "a fast disk: the answer comes while it polls");
        for _ in 0..20 {
            wait.committed(Duration::from_millis(8));
        }
        assert!(!wait.worth_polling(), "slow storage: polling would end before the answer");
        wait.committed(Duration::from_micros(250));
        assert!(!wait.worth_polling(), "one fast commit does not turn it back on");
        for _ in 0..40 {
            wait.committed(Duration::from_micros(250));
        }
        assert!(wait.worth_polling(), "commits fast again");
    }

    #[test]
    fn polling_stops_at_its_bound_and_a_clone_sees_the_answer() {
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
