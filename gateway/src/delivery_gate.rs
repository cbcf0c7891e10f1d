//! The door to one institution's IO budget: callers wait in priority order, so an urgent
//! message is never stuck behind a bulk campaign, and status polls take what is left.
//! A 429 from IO pauses the whole budget.
//!
//! A grant is a [`Permit`], held while the call is made: the call counts against the
//! budget from its grant until a window after the permit is dropped (after IO's answer),
//! which keeps IO's own count within the budget whatever the latency (see `rate_limit`).

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

impl Inner {
    /// A granted call that was never made: its place is free at once, and it is not
    /// counted as used.
    fn forgo(&mut self) {
        self.window.forgo();
        self.used = self.used.saturating_sub(1);
    }
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

    /// Waits for one call's worth of budget; hold the permit until IO has answered.
    /// Cancelling the wait (dropping the future) gives back whatever it was granted.
    pub async fn acquire(&self, class: CallClass) -> Permit {
        let (receiver, mut waiting) = {
            let mut inner = self.lock();
            if inner.waiting.is_empty() && inner.window.hold(Instant::now()).is_ok() {
                inner.used += 1;
                return Permit { gate: Some(self.clone()) };
            }
            let ticket = inner.next_ticket;
            inner.next_ticket += 1;
            let (sender, receiver) = oneshot::channel();
            inner.waiting.push(Reverse((class, ticket)));
            inner.wakers.insert(ticket, sender);
            (receiver, Waiting { gate: self, ticket, granted: false })
        };
        self.changed.notify_one();
        // The dispatcher holds the call for us, then wakes us.
        let _ = receiver.await;
        waiting.granted = true;
        Permit { gate: Some(self.clone()) }
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

/// A caller waiting in line. Dropped before its grant was taken up (the wait was
/// cancelled), it leaves the line, or gives back the call the dispatcher held for it.
struct Waiting<'g> {
    gate: &'g Gate,
    ticket: u64,
    granted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut inner = self.gate.lock();
        if inner.wakers.remove(&self.ticket).is_none() {
            // Granted while we were being dropped: the dispatcher held a call for us.
            inner.forgo();
        }
        drop(inner);
        self.gate.changed.notify_one();
    }
}

/// One call's place in the budget, from its grant until a window after it is dropped.
#[must_use = "the call counts until a window after the permit is dropped: hold it until IO answers"]
pub struct Permit {
    gate: Option<Gate>,
}

impl Permit {
    /// The call was not made after all: its place is free at once.
    pub fn forgo(mut self) {
        if let Some(gate) = self.gate.take() {
            gate.lock().forgo();
            gate.changed.notify_one();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.lock().window.release(Instant::now());
            gate.changed.notify_one();
        }
    }
}

/// Grants the budget to the best waiters; returns how long until the next grant, or
/// `None` when nobody waits.
fn dispatch(inner: &Mutex<Inner>) -> Option<Duration> {
    let mut inner = inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while let Some(Reverse((_, ticket))) = inner.waiting.peek().copied() {
        if !inner.wakers.contains_key(&ticket) {
            // Its caller stopped waiting.
            inner.waiting.pop();
            continue;
        }
        match inner.window.hold(Instant::now()) {
            Ok(()) => {
                inner.waiting.pop();
                inner.used += 1;
                if let Some(waker) = inner.wakers.remove(&ticket) {
                    // Not received only if the caller is being dropped: its `Waiting`
                    // then finds no waker and gives the call back.
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
        drop(gate.acquire(CallClass::Bulk).await);
        drop(gate.acquire(CallClass::Bulk).await);
        // The budget is spent: everyone waits; they get through best first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, class) in
            [CallClass::StatusPoll, CallClass::Bulk, CallClass::Normal, CallClass::Urgent].into_iter().enumerate()
        {
            let (gate, order) = (gate.clone(), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i as u64)).await;
                drop(gate.acquire(class).await);
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
        drop(gate.acquire(CallClass::Urgent).await);
        assert!(started.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_counts_until_a_window_after_its_permit_is_dropped() {
        let gate = Gate::start(Budget::Limited { calls: 1, window: Duration::from_secs(1) });
        let started = Instant::now();
        let slow_call = gate.acquire(CallClass::Normal).await;
        let next = tokio::spawn({
            let gate = gate.clone();
            async move { drop(gate.acquire(CallClass::Urgent).await) }
        });
        // IO takes 3 s to answer: nobody else calls meanwhile, nor for a window after.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!next.is_finished());
        assert_eq!(gate.remaining(), 0);
        drop(slow_call);
        next.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        // A call not made gives its place back at once.
        tokio::time::sleep(Duration::from_secs(2)).await;
        gate.acquire(CallClass::Normal).await.forgo();
        assert_eq!(gate.remaining(), 1);
        assert_eq!(gate.used(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_gives_back_its_place() {
        let gate = Gate::start(Budget::Limited { calls: 1, window: Duration::from_secs(1) });
        drop(gate.acquire(CallClass::Normal).await);
        // Gives up before its turn (at 1 s): nothing is held for it afterwards.
        let impatient = tokio::time::timeout(Duration::from_millis(500), gate.acquire(CallClass::Urgent)).await;
        assert!(impatient.is_err());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(gate.remaining(), 1);
        let started = Instant::now();
        drop(gate.acquire(CallClass::Bulk).await);
        assert_eq!(started.elapsed(), Duration::ZERO, "the budget was free");
        assert_eq!(gate.used(), 2);
    }
}
