//! Delivery: drains the queue into IO without wasting IO's budget, losing a message or
//! sending one twice without saying so, and follows each message to its final status.
//!
//! # Policy
//!
//! * One lane per institution, each behind its own budget gate (`delivery_gate`): every
//!   call — profile check, send, status poll — waits there, urgent before normal before
//!   bulk, status polls last. A 429 pauses the institution's whole budget for IO's
//!   `x-rate-limit-retry-after`.
//! * A message is first checked against the citizen's profile (per `profile_check`):
//!   404 → `not_on_io`, `sender_allowed: false` → `sender_not_allowed`, both final and
//!   listed for paper or PEC.
//! * Before its POST a message is durably `sending`; after it: 201 → `sent` (IO's id
//!   kept); 400/403 → `rejected_by_io` (IO's problem kept); 401 → the secondary key, then
//!   the service is held for five minutes with an error in the log; 429 → back to
//!   `queued`; other 5xx or no connection → back to `queued` with exponential backoff
//!   and full jitter. No answer after the request was written (timeout, reset) or a
//!   504 → `ambiguous`: the `ambiguous` policy then sends it again (`retry`,
//!   at-least-once) or holds it for an operator (`hold`). A message still unsent after
//!   `max_age` → `expired`.
//! * `sent` messages are polled, first after `first_poll_after`, then backing off up to
//!   an hour, until IO says PROCESSED, REJECTED or FAILED.
//! * Five failures of IO in a row open a circuit breaker: no calls for a cooldown (5 s,
//!   doubling to 5 min), then one probe at a time until IO answers again.
//! * A crash loses nothing: what was `sending` comes back `ambiguous` (see `queue`).

mod backoff;
mod lane;
mod profiles;

use crate::config::Config;
use crate::io_client::IoClient;
use crate::queue::Queue;
use std::sync::Arc;
use tokio::sync::watch;

/// The running lanes.
pub struct Delivery {
    stop: watch::Sender<bool>,
    lanes: Vec<tokio::task::JoinHandle<()>>,
    gates: Vec<(String, crate::delivery_gate::Gate)>,
}

impl Delivery {
    /// Starts one lane per institution.
    pub fn start(config: Arc<Config>, queue: Arc<Queue>, client: Arc<IoClient>) -> Delivery {
        let (stop, stopped) = watch::channel(false);
        let mut lanes = Vec::new();
        let mut gates = Vec::new();
        for institution in &config.institutions {
            let lane = Arc::new(lane::Lane::new(
                institution.clone(),
                Arc::clone(&config),
                Arc::clone(&queue),
                Arc::clone(&client),
            ));
            gates.push((institution.name.clone(), lane.gate.clone()));
            lanes.push(tokio::spawn(lane.run(stopped.clone())));
        }
        Delivery { stop, lanes, gates }
    }

    /// IO calls made so far, per institution.
    pub fn calls(&self) -> Vec<(String, u64)> {
        self.gates.iter().map(|(name, gate)| (name.clone(), gate.used())).collect()
    }

    /// Stops taking new work and waits for the calls in flight to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for lane in self.lanes {
            let _ = lane.await;
        }
    }
}
