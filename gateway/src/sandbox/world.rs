//! The sandbox's simulated IO: who may call, what each citizen's profile is, the
//! messages received and their status, each institution's rate budget, and faults.

use super::config::{Profile, SandboxConfig};
use super::rules::Submission;
use crate::rate_limit::SlidingWindow;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A service a subscription key opens.
#[derive(Debug, Clone)]
pub struct Caller {
    pub service_id: String,
    pub institution: String,
    /// `Some` for a service in trial: the only recipients it may write to.
    pub authorized_recipients: Option<Vec<String>>,
}

/// A message IO received (kept so tests can check for loss and duplicates).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Received {
    pub id: String,
    pub service_id: String,
    pub fiscal_code: String,
    pub content: Value,
}

/// Counters of what the sandbox saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub calls: u64,
    pub unauthorized: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub messages: u64,
    pub profile_reads: u64,
    pub status_reads: u64,
}

/// What to do to a call, drawn at random from the configured rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    ServerError,
    Reset,
}

#[derive(Debug)]
pub enum Lookup {
    Found(Value),
    NotFound,
    OtherService,
}

struct Stored {
    received: Received,
    feature_level_type: String,
    time_to_live: Option<u64>,
    created_at: jiff::Timestamp,
    accepted: Instant,
}

struct Inner {
    windows: HashMap<String, SlidingWindow>,
    messages: HashMap<String, Stored>,
    order: Vec<String>,
    stats: Stats,
    rng: rand::rngs::StdRng,
}

pub struct World {
    config: SandboxConfig,
    started: Instant,
    keys: HashMap<String, Caller>,
    citizens: HashMap<String, (Profile, Vec<String>)>,
    inner: Mutex<Inner>,
}

impl World {
    pub fn new(config: SandboxConfig) -> World {
        let mut keys = HashMap::new();
        for s in &config.services {
            let caller = Caller {
                service_id: s.service_id.clone(),
                institution: s.institution.clone(),
                authorized_recipients: s.authorized_recipients.clone(),
            };
            keys.insert(s.primary_key.clone(), caller.clone());
            if let Some(secondary) = &s.secondary_key {
                keys.insert(secondary.clone(), caller);
            }
        }
        let citizens = config
            .citizens
            .iter()
            .map(|c| (c.fiscal_code.clone(), (c.profile, c.preferred_languages.clone())))
            .collect();
        let inner = Inner {
            windows: HashMap::new(),
            messages: HashMap::new(),
            order: Vec::new(),
            stats: Stats::default(),
            rng: rand::rngs::StdRng::from_os_rng(),
        };
        World { config, started: Instant::now(), keys, citizens, inner: Mutex::new(inner) }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave these counters inconsistent in a
        // way that matters to a simulator: keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.config.faults.latency_ms)
    }

    /// True while an outage window is open.
    pub fn in_outage(&self) -> bool {
        let elapsed = self.started.elapsed().as_secs();
        self.config.faults.outages.iter().any(|o| (o.start_s..o.start_s + o.duration_s).contains(&elapsed))
    }

    /// Counts a call and draws its fault.
    pub fn call(&self) -> Fault {
        let faults = &self.config.faults;
        let mut inner = self.inner();
        inner.stats.calls += 1;
        let draw: f64 = inner.rng.random();
        if draw < faults.reset_rate {
            inner.stats.resets += 1;
            Fault::Reset
        } else if draw < faults.reset_rate + faults.error_rate {
            inner.stats.server_errors += 1;
            Fault::ServerError
        } else {
            Fault::None
        }
    }

    /// True when this submission should be stored and then dropped unanswered.
    pub fn reset_after_accept(&self) -> bool {
        let faults = &self.config.faults;
        let mut inner = self.inner();
        if inner.stats.messages <= faults.reset_after_accept_count {
            return true;
        }
        faults.reset_after_accept_rate > 0.0 && inner.rng.random::<f64>() < faults.reset_after_accept_rate
    }

    pub fn authenticate(&self, key: Option<&str>) -> Option<Caller> {
        let caller = key.and_then(|k| self.keys.get(k)).cloned();
        if caller.is_none() {
            self.inner().stats.unauthorized += 1;
        }
        caller
    }

    /// Takes one call from the institution's budget; `Err` is the wait before the next.
    pub fn take_budget(&self, institution: &str) -> Result<u32, Duration> {
        let now = Instant::now();
        let budget = self.config.rate_limit.budget();
        let mut inner = self.inner();
        let window = inner.windows.entry(institution.to_string()).or_insert_with(|| SlidingWindow::new(budget));
        match window.try_acquire(now) {
            Ok(()) => Ok(window.remaining(now)),
            Err(wait) => {
                inner.stats.throttled += 1;
                Err(wait)
            }
        }
    }

    /// The profile of a citizen as the calling service sees it.
    pub fn profile(&self, fiscal_code: &str) -> (Profile, Vec<String>) {
        self.inner().stats.profile_reads += 1;
        self.citizens.get(fiscal_code).cloned().unwrap_or((self.config.unknown_citizens, Vec::new()))
    }

    /// Stores a submission and returns IO's new id for it.
    pub fn accept(&self, caller: &Caller, submission: Submission) -> String {
        let id = ulid::Ulid::new().to_string();
        let received = Received {
            id: id.clone(),
            service_id: caller.service_id.clone(),
            fiscal_code: submission.fiscal_code,
            content: submission.content,
        };
        let stored = Stored {
            received,
            feature_level_type: submission.feature_level_type,
            time_to_live: submission.time_to_live,
            created_at: jiff::Timestamp::now(),
            accepted: Instant::now(),
        };
        let mut inner = self.inner();
        inner.stats.messages += 1;
        inner.order.push(id.clone());
        inner.messages.insert(id.clone(), stored);
        id
    }

    /// `getMessage`: the message and its status, for the service that sent it.
    pub fn message(&self, caller: &Caller, fiscal_code: &str, id: &str) -> Lookup {
        let mut inner = self.inner();
        inner.stats.status_reads += 1;
        let Some(stored) = inner.messages.get(id).filter(|m| m.received.fiscal_code == fiscal_code) else {
            return Lookup::NotFound;
        };
        if stored.received.service_id != caller.service_id {
            return Lookup::OtherService;
        }
        let status = self.status(stored);
        let mut message = json!({
            "id": stored.received.id,
            "fiscal_code": stored.received.fiscal_code,
            "created_at": connectors::message::format_timestamp(stored.created_at),
            "content": stored.received.content,
            "sender_service_id": stored.received.service_id,
            "feature_level_type": stored.feature_level_type,
        });
        if let Some(ttl) = stored.time_to_live {
            message["time_to_live"] = json!(ttl);
        }
        Lookup::Found(json!({ "message": message, "status": status }))
    }

    /// ACCEPTED until processed; then PROCESSED, or REJECTED when the citizen is not on
    /// IO or blocks the sender (IO checks consent only now, not at submission).
    fn status(&self, stored: &Stored) -> &'static str {
        if stored.accepted.elapsed() < Duration::from_millis(self.config.processing_delay_ms) {
            return "ACCEPTED";
        }
        let profile = self.citizens.get(&stored.received.fiscal_code).map_or(self.config.unknown_citizens, |c| c.0);
        match profile {
            Profile::OnIo => "PROCESSED",
            Profile::NotOnIo | Profile::SenderNotAllowed => "REJECTED",
        }
    }

    pub fn received(&self) -> Vec<Received> {
        let inner = self.inner();
        inner.order.iter().filter_map(|id| inner.messages.get(id)).map(|m| m.received.clone()).collect()
    }

    pub fn stats(&self) -> Stats {
        self.inner().stats.clone()
    }
}
