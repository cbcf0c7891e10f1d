//! A sliding-window call budget: at most `calls` in any window of `window`.
//!
//! IO enforces 150 calls per 5 s per institution this way; the sandbox uses it to play
//! IO, and delivery uses it to stay inside IO's budget. Time comes from the caller (a
//! `tokio::time::Instant`), so tests drive it with a paused clock.

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

/// The calls made in the current window.
#[derive(Debug)]
pub struct SlidingWindow {
    budget: Budget,
    calls: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl SlidingWindow {
    pub fn new(budget: Budget) -> SlidingWindow {
        SlidingWindow { budget, calls: VecDeque::new(), paused_until: None }
    }

    /// Takes one call if the budget allows it at `now`; otherwise says how long until
    /// one is free.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        let Budget::Limited { calls, window } = self.budget else {
            return Ok(());
        };
        while self.calls.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.calls.pop_front();
        }
        if self.calls.len() < calls as usize {
            self.calls.push_back(now);
            Ok(())
        } else {
            let oldest = self.calls.front().copied().unwrap_or(now);
            Err(window.saturating_sub(now.duration_since(oldest)))
        }
    }

    /// Calls still available at `now` without waiting (`u32::MAX` when unlimited).
    pub fn remaining(&mut self, now: Instant) -> u32 {
        match self.budget {
            Budget::Unlimited => u32::MAX,
            Budget::Limited { calls, window } => {
                while self.calls.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    self.calls.pop_front();
                }
                calls.saturating_sub(u32::try_from(self.calls.len()).unwrap_or(u32::MAX))
            }
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
