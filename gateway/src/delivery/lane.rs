//! One institution's delivery: take due messages, check profiles, send, follow statuses,
//! all through the institution's budget gate.

use super::answers::{preferred_language, problem_text, recipient_refused, sender_allowed};
use super::backoff::{poll_delay, retry_delay, Breaker};
use super::keys::ServiceKeys;
use super::profiles::{Lookup, Profile, ProfileCache};
use super::render::Templates;
use crate::config::{AmbiguousPolicy, Config, Institution, Secret, ServiceName};
use crate::delivery_gate::{CallClass, Gate};
use crate::io_client::{Answer, CallFailure, IoClient};
use crate::metrics::Metrics;
use crate::queue::{now_millis, Change, MessageId, Priority, Queue, QueueError, State, StoredMessage};
use crate::rate_limit::Budget;
use bytes::Bytes;
use connectors::domain::{FiscalCode, TestRecipient};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

mod outcomes;

/// How long a service whose keys or certificate IO refuses is left alone.
pub(super) const SERVICE_HOLD: Duration = Duration::from_secs(300);
/// How often an idle lane looks for new work.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// After this many sends of one message ended ambiguous, it is held whatever the policy:
/// IO may be creating a copy each time.
const MAX_AMBIGUOUS_SENDS: u32 = 3;

pub struct Lane {
    pub(super) institution: Institution,
    config: Arc<Config>,
    queue: Arc<Queue>,
    client: Arc<IoClient>,
    pub(super) gate: Gate,
    in_flight: Arc<Semaphore>,
    claimed: Arc<Mutex<HashSet<MessageId>>>,
    keys: ServiceKeys,
    breaker: Mutex<Breaker>,
    profiles: ProfileCache,
    /// Templates of imported messages, parsed once, by digest.
    templates: Templates,
    metrics: Arc<Metrics>,
}

/// What became of one attempt, for the breaker.
enum Health {
    Good,
    Bad,
    Neutral,
}

/// Releases a claimed message however its task ends (even by a panic).
struct Claim {
    id: MessageId,
    claimed: Arc<Mutex<HashSet<MessageId>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.claimed).remove(&self.id);
    }
}

impl Lane {
    pub fn new(
        institution: Institution,
        config: Arc<Config>,
        queue: Arc<Queue>,
        client: Arc<IoClient>,
        metrics: Arc<Metrics>,
    ) -> Lane {
        let keys = ServiceKeys::read(&institution.services);
        Lane {
            gate: Gate::start(with_margin(institution.budget, config.delivery.budget_margin)),
            in_flight: Arc::new(Semaphore::new(config.delivery.max_in_flight)),
            profiles: ProfileCache::new(config.delivery.profile_check),
            templates: Templates::default(),
            institution,
            config,
            queue,
            client,
            claimed: Arc::new(Mutex::new(HashSet::new())),
            keys,
            breaker: Mutex::new(Breaker::default()),
            metrics,
        }
    }

    /// Runs until `stop` turns true, then waits for the calls in flight.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let max = self.config.delivery.max_in_flight;
        while !*stop.borrow() {
            let wait = lock(&self.breaker).wait(tokio::time::Instant::now());
            if let Some(wait) = wait {
                log::warn!(institution = self.institution.name.as_str(), seconds = wait.as_secs(); "IO keeps failing: pausing delivery");
                pause(&mut stop, wait).await;
                continue;
            }
            // While probing, one call at a time counts the calls already in flight.
            let available = self.in_flight.available_permits();
            let capacity = lock(&self.breaker).capacity(max).saturating_sub(max - available).min(available);
            if capacity == 0 {
                pause(&mut stop, Duration::from_millis(20)).await;
                continue;
            }
            let work = match self.next_work(capacity).await {
                Ok(work) => work,
                Err(e) => {
                    log::error!(error:display = e; "cannot read the queue; delivery waits");
                    pause(&mut stop, Duration::from_secs(1)).await;
                    continue;
                }
            };
            if work.is_empty() {
                pause(&mut stop, IDLE_POLL).await;
                continue;
            }
            for message in work {
                let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else { break };
                lock(&self.claimed).insert(message.id);
                let claim = Claim { id: message.id, claimed: Arc::clone(&self.claimed) };
                let lane = Arc::clone(&self);
                tokio::spawn(async move {
                    lane.process(message).await;
                    drop((claim, permit));
                });
            }
        }
        let _ = self.in_flight.acquire_many(u32::try_from(max).unwrap_or(u32::MAX)).await;
    }

    /// A local client's profile lookup: through the gate and the service's key; a
    /// definite answer is remembered for delivery.
    pub async fn profile_for_client(
        &self,
        service: &ServiceName,
        fiscal_code: &FiscalCode,
    ) -> Result<Answer, CallFailure> {
        let Some(key) = self.keys.active(service) else {
            return Err(CallFailure::NotSent("IO refuses this service's keys for now".into()));
        };
        let permit = self.gate.acquire(CallClass::Normal).await;
        let answer = self.call("profile", self.client.get_profile(&key, fiscal_code)).await;
        drop(permit);
        let answer = answer?;
        let profile = match answer.status.as_u16() {
            200 => sender_allowed(&answer).map(|allowed| {
                if allowed {
                    Profile::Allowed(preferred_language(&answer))
                } else {
                    Profile::SenderNotAllowed
                }
            }),
            404 => Some(Profile::NotOnIo),
            429 => {
                self.gate.pause(answer.retry_after.unwrap_or(Duration::from_secs(5)));
                None
            }
            401 | 403 => {
                self.keys.refused(service, &key, &answer);
                None
            }
            _ => None,
        };
        if let Some(profile) = profile {
            self.profiles.remember(service, fiscal_code, profile);
        }
        Ok(answer)
    }

    /// Ambiguous sends get their policy; then queued messages by priority; polls fill
    /// what room is left.
    async fn next_work(&self, capacity: usize) -> Result<Vec<StoredMessage>, QueueError> {
        let now = now_millis();
        let inst = &self.institution.fiscal_code;
        for message in self.queue.due(inst, &[State::Ambiguous], now, 256).await? {
            let (to, reason) = match self.config.delivery.ambiguous {
                _ if message.attempts >= MAX_AMBIGUOUS_SENDS => {
                    (State::Held, "ambiguous sends keep happening: held for an operator")
                }
                AmbiguousPolicy::Retry => (State::Queued, "ambiguous send: sending again (policy retry)"),
                AmbiguousPolicy::Hold => (State::Held, "ambiguous send: held for an operator (policy hold)"),
            };
            let mut change = Change::new(message.id, State::Ambiguous, to, reason);
            change.next_attempt_at = Some(now + millis(retry_delay(message.attempts)));
            self.queue.apply(vec![change]).await?;
        }
        let claimed = lock(&self.claimed).clone();
        let limit = capacity + claimed.len();
        let fresh = |m: &StoredMessage| !claimed.contains(&m.id);
        let mut work: Vec<StoredMessage> = self
            .queue
            .due(inst, &[State::Queued], now, limit)
            .await?
            .into_iter()
            .filter(fresh)
            .take(capacity)
            .collect();
        if work.len() < capacity {
            let room = capacity - work.len();
            let polls = self.queue.due(inst, &[State::Sent], now, limit).await?;
            work.extend(polls.into_iter().filter(fresh).take(room));
        }
        Ok(work)
    }

    async fn process(&self, message: StoredMessage) {
        let health = match message.state {
            State::Queued => self.deliver(&message).await,
            State::Sent => self.poll(&message).await,
            _ => Health::Neutral,
        };
        let mut breaker = lock(&self.breaker);
        match health {
            Health::Good => breaker.success(),
            Health::Bad => {
                if breaker.failure(tokio::time::Instant::now()) {
                    log::error!(institution = self.institution.name.as_str(); "IO is failing: delivery paused, will probe");
                }
            }
            Health::Neutral => {}
        }
    }

    async fn deliver(&self, m: &StoredMessage) -> Health {
        let now = now_millis();
        if now.saturating_sub(m.accepted_at) > millis(self.config.delivery.max_age) {
            self.change(m, Change::new(m.id, State::Queued, State::Expired, "not sent within the maximum age")).await;
            return Health::Neutral;
        }
        let Some(key) = self.keys.active(&m.service) else {
            self.later(
                m,
                State::Queued,
                State::Queued,
                SERVICE_HOLD,
                "IO refuses this service's credentials; held",
                None,
            )
            .await;
            return Health::Neutral;
        };
        let class = class_of(m.priority);
        let language = match self.profiles.lookup(&m.service, &m.fiscal_code).await {
            Lookup::Known(Profile::Allowed(language)) => language,
            Lookup::Known(profile) => {
                self.finish_for_profile(m, profile).await;
                return Health::Neutral;
            }
            Lookup::Ask(_ticket) => {
                let permit = self.gate.acquire(class).await;
                let answer = self.call("profile", self.client.get_profile(&key, &m.fiscal_code)).await;
                drop(permit);
                match self.profile_answer(m, &key, answer).await {
                    Ok(Profile::Allowed(language)) => language,
                    Ok(_) => return Health::Good,
                    Err(health) => return health,
                }
            }
        };
        let body = match &m.recipe {
            None => m.body.clone(),
            Some(recipe) => match self.templates.render(&self.queue, recipe, language, self.test_recipient()).await {
                Ok(body) => body,
                Err(reason) => {
                    log::error!(message_id:display = m.id, reason = reason.as_str(); "an imported message cannot be rendered; held");
                    let mut change =
                        Change::new(m.id, State::Queued, State::Held, "cannot render the imported message");
                    change.error = Some(reason);
                    self.change(m, change).await;
                    return Health::Neutral;
                }
            },
        };
        // The budget first, then the durable mark, then the POST at once: a crash in
        // between leaves as few messages ambiguous as possible.
        let permit = self.gate.acquire(class).await;
        let mut sending = Change::new(m.id, State::Queued, State::Sending, "sending to IO");
        sending.attempted = true;
        if !self.change(m, sending).await {
            permit.forgo();
            return Health::Neutral;
        }
        let answer = self.call("submit", self.client.submit_message(&key, Bytes::from(body))).await;
        drop(permit);
        self.send_answer(m, &key, answer).await
    }

    fn test_recipient(&self) -> TestRecipient {
        if self.config.io.allow_test_recipient {
            TestRecipient::Allowed
        } else {
            TestRecipient::Rejected
        }
    }

    /// Applies a profile answer; `Ok(Allowed)` means go on and send.
    async fn profile_answer(
        &self,
        m: &StoredMessage,
        key: &Secret,
        answer: Result<Answer, CallFailure>,
    ) -> Result<Profile, Health> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                let delay = retry_delay(m.attempts);
                self.later(m, State::Queued, State::Queued, delay, "profile check failed", Some(failure.to_string()))
                    .await;
                return Err(Health::Bad);
            }
        };
        let profile = match answer.status.as_u16() {
            200 => match sender_allowed(&answer) {
                Some(true) => Profile::Allowed(preferred_language(&answer)),
                Some(false) => Profile::SenderNotAllowed,
                None => {
                    let error = Some("IO's profile answer has no sender_allowed".to_string());
                    self.later(m, State::Queued, State::Queued, retry_delay(m.attempts), "profile check failed", error)
                        .await;
                    return Err(Health::Neutral);
                }
            },
            404 => Profile::NotOnIo,
            _ => return Err(self.refused(m, State::Queued, key, &answer, "profile check refused").await),
        };
        self.profiles.remember(&m.service, &m.fiscal_code, profile);
        if !matches!(profile, Profile::Allowed(_)) {
            self.finish_for_profile(m, profile).await;
        }
        Ok(profile)
    }

    async fn finish_for_profile(&self, m: &StoredMessage, profile: Profile) {
        let (to, reason) = match profile {
            Profile::NotOnIo => (State::NotOnIo, "the citizen is not on IO: paper or PEC needed"),
            _ => (State::SenderNotAllowed, "the citizen blocks this service: paper or PEC needed"),
        };
        self.change(m, Change::new(m.id, State::Queued, to, reason)).await;
    }

    async fn send_answer(&self, m: &StoredMessage, key: &Secret, answer: Result<Answer, CallFailure>) -> Health {
        let answer = match answer {
            Ok(answer) => answer,
            Err(CallFailure::NotSent(e)) => {
                self.later(m, State::Sending, State::Queued, retry_delay(m.attempts), "not sent", Some(e)).await;
                return Health::Bad;
            }
            Err(CallFailure::Unknown(e)) => {
                log::warn!(message_id:display = m.id; "ambiguous send: IO may or may not have the message");
                let mut change =
                    Change::new(m.id, State::Sending, State::Ambiguous, "no answer after the request was sent");
                change.error = Some(e);
                self.change(m, change).await;
                return Health::Bad;
            }
        };
        match answer.status.as_u16() {
            201 => {
                let io_id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string))
                    .or_else(|| answer.location.as_deref().and_then(|l| l.rsplit('/').next()).map(str::to_string));
                let mut change = Change::new(m.id, State::Sending, State::Sent, "IO accepted the message (201)");
                change.next_attempt_at = Some(now_millis() + millis(self.config.delivery.first_poll_after));
                change.io_message_id = io_id.clone();
                if !self.change(m, change).await {
                    log::error!(message_id:display = m.id, io_message_id = io_id.as_deref().unwrap_or("?");
                                "IO accepted a message but its new state could not be stored");
                }
                Health::Good
            }
            400 => self.rejected(m, &answer).await,
            403 if recipient_refused(&answer) => self.rejected(m, &answer).await,
            // A gateway timeout may hide a message IO created: treat it as ambiguous.
            504 => {
                let mut change =
                    Change::new(m.id, State::Sending, State::Ambiguous, "IO answered 504 after the request was sent");
                change.error = Some(problem_text(&answer));
                self.change(m, change).await;
                Health::Bad
            }
            _ => self.refused(m, State::Sending, key, &answer, "send refused").await,
        }
    }

    /// IO refused this message itself (400, or a 403 about the recipient): final.
    async fn rejected(&self, m: &StoredMessage, answer: &Answer) -> Health {
        let reason = format!("IO refused the message ({})", answer.status.as_u16());
        let mut change = Change::new(m.id, State::Sending, State::RejectedByIo, reason);
        change.error = Some(problem_text(answer));
        self.change(m, change).await;
        Health::Good
    }

    async fn poll(&self, m: &StoredMessage) -> Health {
        let waiting =
            Duration::from_millis(u64::try_from(now_millis().saturating_sub(m.state_changed_at)).unwrap_or(0));
        if waiting > self.config.delivery.max_age {
            let reason = "no final status from IO within the maximum age";
            self.change(m, Change::new(m.id, State::Sent, State::Unconfirmed, reason)).await;
            return Health::Neutral;
        }
        let next = poll_delay(waiting, self.config.delivery.first_poll_after);
        let (Some(io_id), Some(key)) = (m.io_message_id.as_deref(), self.keys.active(&m.service)) else {
            let error = Some("no IO id or no usable key to follow the message".to_string());
            self.later(m, State::Sent, State::Sent, Duration::from_secs(3600), "cannot follow yet", error).await;
            return Health::Neutral;
        };
        let permit = self.gate.acquire(CallClass::StatusPoll).await;
        let answer = self.call("status", self.client.get_message(&key, &m.fiscal_code, io_id)).await;
        drop(permit);
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                self.later(m, State::Sent, State::Sent, next, "status read failed", Some(failure.to_string())).await;
                return Health::Bad;
            }
        };
        if answer.status.as_u16() != 200 {
            return self.refused(m, State::Sent, &key, &answer, "status read refused").await;
        }
        let status = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_string))
            .unwrap_or_default();
        let to = match status.as_str() {
            "PROCESSED" => State::Processed,
            "REJECTED" => State::IoRejected,
            "FAILED" => State::IoFailed,
            _ => State::Sent,
        };
        let mut change = Change::new(m.id, State::Sent, to, format!("IO status {status}"));
        change.io_status = Some(status);
        if to == State::Sent {
            change.next_attempt_at = Some(now_millis() + millis(next));
        }
        self.change(m, change).await;
        Health::Good
    }
}

/// Each call holds its place from its grant until a window after IO's answer, which keeps
/// IO's count within the budget whatever the latency (see `rate_limit`). A longer window
/// on our side (`budget_margin`, none by default) only matters if IO's window were longer
/// than the one configured, or its clock ran slow.
fn with_margin(budget: Budget, margin: Duration) -> Budget {
    match budget {
        Budget::Limited { calls, window } => Budget::Limited { calls, window: window + margin },
        Budget::Unlimited => Budget::Unlimited,
    }
}

fn class_of(priority: Priority) -> CallClass {
    match priority {
        Priority::Urgent => CallClass::Urgent,
        Priority::Normal => CallClass::Normal,
        Priority::Bulk => CallClass::Bulk,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = stop.changed() => {}
    }
}
