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
//! * A send takes its budget first, then the message is durably `sending`, then the POST
//!   goes at once: 201 → `sent` (IO's id kept); 400, or a 403 about the recipient →
//!   `rejected_by_io` (IO's problem kept); 401 → the secondary key; 401 on both, or a
//!   403 about the gateway (certificate, group, address) → the service is held for five
//!   minutes with an error in the log and its messages wait; 429 → back to `queued`;
//!   other 5xx or no connection → back to `queued` with exponential backoff and full
//!   jitter. No answer after the request was written (timeout, reset) or a 504 →
//!   `ambiguous`: the `ambiguous` policy then sends it again after a backoff (`retry`,
//!   at-least-once) or holds it for an operator (`hold`); after three ambiguous sends a
//!   message is held whatever the policy. Still unsent after `max_age` → `expired`.
//! * `sent` messages are polled, first after `first_poll_after`, then backing off up to
//!   an hour, until IO says PROCESSED, REJECTED or FAILED — or `unconfirmed` when IO
//!   says nothing final within `max_age`.
//! * Outcomes of calls are stored with retries: a busy queue delays them, never drops them.
//! * Five failures of IO in a row open a circuit breaker: no calls for a cooldown (5 s,
//!   doubling to 5 min), then one probe at a time until IO answers again.
//! * A crash loses nothing: what was `sending` comes back `ambiguous` (see `queue`).

mod answers;
mod backoff;
mod keys;
mod lane;
mod profiles;
mod render;

use crate::config::{Config, ServiceName};
use crate::io_client::{Answer, CallFailure, IoClient};
use crate::metrics::Metrics;
use crate::queue::Queue;
use connectors::domain::FiscalCode;
use std::sync::Arc;
use tokio::sync::watch;

/// One institution's budget as the metrics show it.
#[derive(Debug, Clone)]
pub struct BudgetView {
    pub institution: String,
    /// Calls per window (`None`: unlimited, as in some sandboxes).
    pub per_window: Option<u32>,
    pub remaining: u32,
    /// Calls made since start.
    pub used: u64,
    pub circuit_open: bool,
}

/// The running lanes.
pub struct Delivery {
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    lanes: Vec<Arc<lane::Lane>>,
}

impl Delivery {
    /// Starts one lane per institution.
    pub fn start(config: Arc<Config>, queue: Arc<Queue>, client: Arc<IoClient>, metrics: Arc<Metrics>) -> Delivery {
        let (stop, stopped) = watch::channel(false);
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for institution in &config.institutions {
            let lane = Arc::new(lane::Lane::new(
                institution.clone(),
                Arc::clone(&config),
                Arc::clone(&queue),
                Arc::clone(&client),
                Arc::clone(&metrics),
            ));
            tasks.push(tokio::spawn(Arc::clone(&lane).run(stopped.clone())));
            lanes.push(lane);
        }
        Delivery { stop, tasks: std::sync::Mutex::new(tasks), lanes }
    }

    /// IO calls made so far, per institution.
    pub fn calls(&self) -> Vec<(String, u64)> {
        self.lanes.iter().map(|lane| (lane.institution.name.clone(), lane.gate.used())).collect()
    }

    /// Reads the IO subscription keys again; returns how many could not be read (those
    /// keep their old value).
    pub fn reload_keys(&self) -> usize {
        self.lanes.iter().map(|lane| lane.reload_keys()).sum()
    }

    /// Each institution's budget and breaker, for the metrics.
    pub fn budgets(&self) -> Vec<BudgetView> {
        self.lanes
            .iter()
            .map(|lane| BudgetView {
                institution: lane.institution.name.clone(),
                per_window: match lane.institution.budget {
                    crate::rate_limit::Budget::Limited { calls, .. } => Some(calls),
                    crate::rate_limit::Budget::Unlimited => None,
                },
                remaining: lane.gate.remaining(),
                used: lane.gate.used(),
                circuit_open: lane.is_tripped(),
            })
            .collect()
    }

    /// A profile lookup for a local client, on the service's institution budget (as a
    /// normal-priority call) and key; its answer also feeds the profile cache. `None`
    /// when the service is not configured.
    pub async fn profile(
        &self,
        service: &ServiceName,
        fiscal_code: &FiscalCode,
    ) -> Option<Result<Answer, CallFailure>> {
        let lane = self.lanes.iter().find(|l| l.institution.services.iter().any(|s| &s.name == service))?;
        Some(lane.profile_for_client(service, fiscal_code).await)
    }

    /// Stops taking new work and waits for the calls in flight to finish.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}
