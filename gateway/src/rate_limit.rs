//! A sliding-window call budget: at most `calls` in any window of `window`.
//!
//! IO enforces 150 calls per 5 s per institution this way; the sandbox uses it to play
//! IO ([`SlidingWindow::try_acquire`]: a call counts when it arrives), and delivery uses
//! it to stay inside IO's budget ([`SlidingWindow::hold`]: a call counts from before it is
//! sent until a window after its answer). Time comes from the caller (a
//! `tokio::time::Instant`), so tests drive it with a paused clock.
//!
//! Why delivery holds: IO counts a call at some moment between our sending it and our
//! reading its answer. Counted from the grant until a window after the answer, every
//! call IO counts in one of its windows is still counted on our side at that window's
//! end, all at once — so granting only while fewer than the budget are counted keeps IO's
//! count within the budget, whatever the latency. Counting from the grant alone would
//! let a slow call and the calls after it land in one of IO's windows.

use serde::Deserialize;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// A budget as configuration files write it: `{ calls = 150, per_seconds = 5 }` or
/// `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum BudgetSetting {
    Limited { calls: u32, per_seconds: u64 },
    Named(UnlimitedWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlimitedWord {
    Unlimited,
}

impl Default for BudgetSetting {
    fn default() -> Self {
        BudgetSetting::Limited { calls: 150, per_seconds: 5 }
    }
}

impl BudgetSetting {
    pub fn budget(self) -> Budget {
        match self {
            BudgetSetting::Limited { calls, per_seconds } => {
                Budget::Limited { calls: calls.max(1), window: Duration::from_secs(per_seconds.max(1)) }
            }
            BudgetSetting::Named(UnlimitedWord::Unlimited) => Budget::Unlimited,
        }
    }
}

/// A budget of calls over a sliding window; `Unlimited` never refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Limited { calls: u32, window: Duration },
    Unlimited,
}

impl Budget {
    /// IO's default: 150 calls per 5 seconds.
    pub const IO_DEFAULT: Budget = Budget::Limited { calls: 150, window: Duration::from_secs(5) };

    /// "150 calls per 5 s", for people.
    pub fn describe(self) -> String {
        match self {
            Budget::Limited { calls, window } => format!("{calls} calls per {} s", window.as_secs()),
            Budget::Unlimited => "unlimited".into(),
        }
    }
}

/// The calls that count now: those held, and those that ended within the last window.
#[derive(Debug)]
pub struct SlidingWindow {
    budget: Budget,
    /// When each counted call ended, oldest first; it counts for a window from then.
    ended: VecDeque<Instant>,
    /// Calls granted by `hold` and not yet released: they count until a window after.
    held: usize,
    paused_until: Option<Instant>,
}

impl SlidingWindow {
    pub fn new(budget: Budget) -> SlidingWindow {
        SlidingWindow { budget, ended: VecDeque::new(), held: 0, paused_until: None }
    }

    /// Takes one call, counted at `now`, if the budget allows it; otherwise says how long
    /// until one is free. How IO counts the calls it receives.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.hold(now)?;
        self.release(now);
        Ok(())
    }

    /// Takes one call that counts from `now` until a window after its [`release`]
    /// (see the module docs), if the budget allows it; otherwise says how long until one
    /// may be free (at most a window: a release may free one sooner).
    ///
    /// [`release`]: SlidingWindow::release
    pub fn hold(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        let Budget::Limited { calls, window } = self.budget else {
            return Ok(());
        };
        self.expire(now, window);
        if self.ended.len() + self.held < calls as usize {
            self.held += 1;
            Ok(())
        } else {
            let oldest = self.ended.front().map_or(Duration::ZERO, |t| now.duration_since(*t));
            Err(window.saturating_sub(oldest))
        }
    }

    /// A held call ended at `now` (its answer came, or it failed): it counts for one more
    /// window.
    pub fn release(&mut self, now: Instant) {
        if let Budget::Limited { .. } = self.budget {
            self.held = self.held.saturating_sub(1);
            // Kept in order even if a caller's clock reading is a little behind another's.
            let at = self.ended.back().map_or(now, |last| now.max(*last));
            self.ended.push_back(at);
        }
    }

    /// A held call was never made: its place is free at once.
    pub fn forgo(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    /// Calls still available at `now` without waiting (`u32::MAX` when unlimited).
    pub fn remaining(&mut self, now: Instant) -> u32 {
        match self.budget {
            Budget::Unlimited => u32::MAX,
            Budget::Limited { calls, window } => {
                self.expire(now, window);
                let counted = u32::try_from(self.ended.len() + self.held).unwrap_or(u32::MAX);
                calls.saturating_sub(counted)
            }
        }
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while self.ended.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.ended.pop_front();
        }
    }

    /// Refuses every call until `now + pause` (IO said 429: the whole budget waits).
    pub fn pause(&mut self, now: Instant, pause: Duration) {
        let until = now + pause;
        if self.paused_until.is_none_or(|t| t < until) {
            self.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(calls: u32, seconds: u64) -> SlidingWindow {
        SlidingWindow::new(Budget::Limited { calls, window: Duration::from_secs(seconds) })
    }

    #[test]
    fn allows_the_budget_then_says_how_long_to_wait() {
        let start = Instant::now();
        let mut w = window(3, 5);
        for ms in [0, 100, 200] {
            assert_eq!(w.try_acquire(start + Duration::from_millis(ms)), Ok(()));
        }
        assert_eq!(w.try_acquire(start + Duration::from_millis(300)), Err(Duration::from_millis(4700)));
        assert_eq!(w.remaining(start + Duration::from_millis(300)), 0);
        // The window slides: the first call leaves it at 5 s.
        assert_eq!(w.try_acquire(start + Duration::from_millis(5000)), Ok(()));
        assert_eq!(w.try_acquire(start + Duration::from_millis(5050)), Err(Duration::from_millis(50)));
        // At 5.2 s the calls of 0.1 s and 0.2 s have left the window too.
        assert_eq!(w.remaining(start + Duration::from_millis(5200)), 2);
    }

    #[test]
    fn never_more_than_the_budget_in_any_window() {
        let start = Instant::now();
        let mut w = window(150, 5);
        let mut granted = Vec::new();
        for step in 0..20_000u64 {
            let now = start + Duration::from_millis(step);
            if w.try_acquire(now).is_ok() {
                granted.push(step);
            }
        }
        for (i, t) in granted.iter().enumerate() {
            let in_window = granted[i..].iter().take_while(|u| **u < t + 5000).count();
            assert!(in_window <= 150, "{in_window} calls in the 5 s from {t} ms");
        }
        assert_eq!(granted.len(), 600, "four full windows in 20 s");
    }

    #[test]
    fn a_held_call_counts_until_a_window_after_it_ends() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut w = window(2, 1);
        assert_eq!(w.hold(at(0)), Ok(()));
        assert_eq!(w.hold(at(0)), Ok(()));
        // Both still held: nothing is free, however long they take.
        assert_eq!(w.hold(at(100)), Err(Duration::from_secs(1)));
        assert_eq!(w.remaining(at(3000)), 0);
        w.release(at(3000));
        assert_eq!(w.hold(at(3500)), Err(Duration::from_millis(500)));
        assert_eq!(w.hold(at(4000)), Ok(()));
        // A call never made gives its place back at once.
        w.forgo();
        assert_eq!(w.remaining(at(4000)), 1);
    }

    /// Delivery's workers against IO, which counts each call at some moment between its
    /// sending and its answer: in no window of IO's does it count more than the budget,
    /// whatever the latencies. Counting calls when granted instead (as IO does on its
    /// side) lets a slow call share one of IO's windows with the next window's calls.
    #[test]
    fn holding_until_the_answer_keeps_io_within_the_budget_whatever_the_latency() {
        let (budget, window_ms) = (5usize, 1000u64);
        let io_counts = |hold_until_answer: bool| -> Vec<u64> {
            let start = Instant::now();
            let mut w = window(budget as u32, 1);
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut random = |below: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % below
            };
            // (answered at, counted by IO at) of each call in flight, from 8 workers.
            let mut in_flight: Vec<(u64, u64)> = Vec::new();
            let mut counted = Vec::new();
            for ms in 0..60_000u64 {
                let now = start + Duration::from_millis(ms);
                in_flight.retain(|&(answered, _)| {
                    if answered == ms && hold_until_answer {
                        w.release(now);
                    }
                    answered > ms
                });
                while in_flight.len() < 8 {
                    let granted = if hold_until_answer { w.hold(now) } else { w.try_acquire(now) };
                    if granted.is_err() {
                        break;
                    }
                    let slowest = if random(10) == 0 { 1500 } else { 80 };
                    let latency = 1 + random(slowest);
                    let arrives = ms + random(latency);
                    in_flight.push((ms + latency, arrives));
                    counted.push(arrives);
                }
            }
            counted.sort_unstable();
            counted
        };
        let most_in_a_window = |counted: &[u64]| {
            (0..counted.len()).map(|i| counted[i..].iter().take_while(|t| **t < counted[i] + window_ms).count()).max()
        };
        let held = io_counts(true);
        assert!(held.len() > 200, "the budget is used: {} calls", held.len());
        assert_eq!(most_in_a_window(&held), Some(budget));
        assert!(most_in_a_window(&io_counts(false)).unwrap_or(0) > budget, "the test can tell the difference");
    }

    #[test]
    fn a_pause_holds_the_whole_budget() {
        let start = Instant::now();
        let mut w = window(150, 5);
        w.pause(start, Duration::from_secs(3));
        assert_eq!(w.try_acquire(start + Duration::from_secs(1)), Err(Duration::from_secs(2)));
        assert_eq!(w.try_acquire(start + Duration::from_secs(3)), Ok(()));
        let mut unlimited = SlidingWindow::new(Budget::Unlimited);
        assert!((0..10_000).all(|_| unlimited.try_acquire(start).is_ok()));
    }
}
