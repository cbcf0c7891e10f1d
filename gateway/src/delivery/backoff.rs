//! Retry timing: exponential backoff with full jitter, and a circuit breaker that stops
//! hammering IO while it fails and probes it back to health one call at a time.

use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

const BASE: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(600);

/// Wait before attempt `attempts + 1`: uniform in [0, min(cap, base * 2^attempts)].
pub fn retry_delay(attempts: u32) -> Duration {
    let ceiling = BASE.saturating_mul(1u32 << attempts.min(20)).min(CAP);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// When to look again at a sent message's status: half the time it has been waiting,
/// at least `first`, at most an hour.
pub fn poll_delay(waiting: Duration, first: Duration) -> Duration {
    (waiting / 2).clamp(first, Duration::from_secs(3600).max(first))
}

const TRIP_AFTER: u32 = 5;
const FIRST_COOLDOWN: Duration = Duration::from_secs(5);
const MAX_COOLDOWN: Duration = Duration::from_secs(300);

/// Closed (normal), open (waiting out a cooldown) or half-open (one probe at a time).
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    open_until: Option<Instant>,
    half_open: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { failures: 0, cooldown: FIRST_COOLDOWN, open_until: None, half_open: false }
    }
}

impl Breaker {
    /// How long to wait before calling IO at all, if the breaker is open.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        match self.open_until {
            Some(until) if now < until => Some(until - now),
            Some(_) => {
                self.open_until = None;
                self.half_open = true;
                None
            }
            None => None,
        }
    }

    /// Open or probing: IO has been failing.
    pub fn is_tripped(&self) -> bool {
        self.open_until.is_some() || self.half_open
    }

    /// Calls allowed in flight: one while probing.
    pub fn capacity(&self, normal: usize) -> usize {
        if self.half_open {
            1
        } else {
            normal
        }
    }

    pub fn success(&mut self) {
        if self.half_open || self.failures > 0 {
            log::info!("IO answers again; delivery resumes at full rate");
        }
        *self = Breaker::default();
    }

    /// Records a failure of IO (no answer, or a 5xx); returns true when it trips.
    pub fn failure(&mut self, now: Instant) -> bool {
        self.failures += 1;
        if self.half_open || self.failures >= TRIP_AFTER {
            if self.half_open {
                self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN);
            }
            self.half_open = false;
            self.failures = 0;
            self.open_until = Some(now + self.cooldown);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..100 {
            assert!(retry_delay(0) <= Duration::from_secs(1));
            assert!(retry_delay(3) <= Duration::from_secs(8));
            assert!(retry_delay(40) <= CAP);
        }
        assert_eq!(poll_delay(Duration::from_secs(10), Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(poll_delay(Duration::from_secs(600), Duration::from_secs(30)), Duration::from_secs(300));
        assert_eq!(poll_delay(Duration::from_secs(86_400), Duration::from_secs(30)), Duration::from_secs(3600));
    }

    #[test]
    fn breaker_trips_probes_and_recovers() {
        let now = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..4 {
            assert!(!b.failure(now));
        }
        assert!(b.failure(now));
        assert_eq!(b.wait(now), Some(FIRST_COOLDOWN));
        assert_eq!(b.wait(now + FIRST_COOLDOWN), None, "half-open after the cooldown");
        assert_eq!(b.capacity(64), 1);
        assert!(b.failure(now + FIRST_COOLDOWN), "a failed probe opens it again, longer");
        assert_eq!(b.wait(now + FIRST_COOLDOWN), Some(FIRST_COOLDOWN * 2));
        b.wait(now + FIRST_COOLDOWN * 3);
        b.success();
        assert_eq!((b.capacity(64), b.wait(now)), (64, None));
    }
}
