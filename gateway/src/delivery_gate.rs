//! The door to one institution's IO budget: callers wait in priority order, so an urgent
//! message is never stuck behind a bulk campaign, and status polls take what is left.
//! A 429 from IO pauses the whole budget.

use crate::rate_limit::{Budget, SlidingWindow};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// Who is waiting, best first. Polls come after every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallClass {
    Urgent,
    Normal,
    Bulk,
    StatusPoll,
}

struct Inner {
    window: SlidingWindow,
    /// (class, arrival ticket), smallest first; the sender wakes the waiter.
    waiting: BinaryHeap<Reverse<(CallClass, u64)>>,
    wakers: std::collections::HashMap<u64, oneshot::Sender<()>>,
    next_ticket: u64,
    used: u64,
}

/// A priority gate in front of a sliding-window budget.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Gate {
    /// Starts the gate and its dispatcher task (which ends when every `Gate` is dropped).
    pub fn start(budget: Budget) -> Gate {
        let inner = Inner {
            window: SlidingWindow::new(budget),
            waiting: BinaryHeap::new(),
            wakers: std::collections::HashMap::new(),
            next_ticket: 0,
            used: 0,
        };
        let gate = Gate { inner: Arc::new(Mutex::new(inner)), changed: Arc::new(Notify::new()) };
        let weak = Arc::downgrade(&gate.inner);
        let changed = Arc::clone(&gate.changed);
        tokio::spawn(async move {
            while let Some(inner) = weak.upgrade() {
                let wait = dispatch(&inner);
                drop(inner);
                match wait {
                    Some(wait) => {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = changed.notified() => {}
                        }
                    }
                    None => changed.notified().await,
                }
            }
        });
        gate
    }

    /// Waits for one call's worth of budget.
    pub async fn acquire(&self, class: CallClass) {
        let receiver = {
            let mut inner = self.lock();
            if inner.waiting.is_empty() && inner.window.try_acquire(Instant::now()).is_ok() {
                inner.used += 1;
                return;
            }
            let ticket = inner.next_ticket;
            inner.next_ticket += 1;
            let (sender, receiver) = oneshot::channel();
            inner.waiting.push(Reverse((class, ticket)));
            inner.wakers.insert(ticket, sender);
            receiver
        };
        self.changed.notify_one();
        let _ = receiver.await;
    }

    /// IO said 429: nobody calls for `pause`.
    pub fn pause(&self, pause: Duration) {
        self.lock().window.pause(Instant::now(), pause);
        self.changed.notify_one();
    }

    /// Calls still free in the window now (for sizing a batch).
    pub fn remaining(&self) -> u32 {
        self.lock().window.remaining(Instant::now())
    }

    /// Calls granted since start.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Grants the budget to the best waiters; returns how long until the next grant, or
/// `None` when nobody waits.
fn dispatch(inner: &Mutex<Inner>) -> Option<Duration> {
    let mut inner = inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while let Some(Reverse((_, ticket))) = inner.waiting.peek().copied() {
        match inner.window.try_acquire(Instant::now()) {
            Ok(()) => {
                inner.waiting.pop();
                inner.used += 1;
                if let Some(waker) = inner.wakers.remove(&ticket) {
                    let _ = waker.send(());
                }
            }
            Err(wait) => return Some(wait.max(Duration::from_millis(1))),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn urgent_goes_first_and_polls_last_within_the_budget() {
        let gate = Gate::start(Budget::Limited { calls: 2, window: Duration::from_secs(1) });
        gate.acquire(CallClass::Bulk).await;
        gate.acquire(CallClass::Bulk).await;
        // The budget is spent: everyone waits; they get through best first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, class) in
            [CallClass::StatusPoll, CallClass::Bulk, CallClass::Normal, CallClass::Urgent].into_iter().enumerate()
        {
            let (gate, order) = (gate.clone(), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i as u64)).await;
                gate.acquire(class).await;
                order.lock().unwrap().push(class);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, [CallClass::Urgent, CallClass::Normal, CallClass::Bulk, CallClass::StatusPoll]);
        assert_eq!(gate.used(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone() {
        let gate = Gate::start(Budget::Unlimited);
        gate.pause(Duration::from_secs(10));
        let started = Instant::now();
        gate.acquire(CallClass::Urgent).await;
        assert!(started.elapsed() >= Duration::from_secs(10));
    }
}
