//! What a lane does with outcomes: stores state changes (with retries), handles IO's
//! refusals, and tells the metrics and the journal about calls to IO (code, duration,
//! 429s) and the changes an operator cares about (sent, ambiguous, final).

use super::{lock, millis, Health, Lane, SERVICE_HOLD};
use crate::config::Secret;
use crate::delivery::answers::problem_text;
use crate::delivery::backoff::retry_delay;
use crate::io_client::{Answer, CallFailure};
use crate::queue::{now_millis, Change, QueueError, State, StoredMessage};
use std::time::Duration;

impl Lane {
    /// Counts and logs a stored change that matters to an operator: a send, an
    /// ambiguous send, a final state.
    pub(super) fn record(&self, m: &StoredMessage, to: State) {
        let institution = self.institution.name.as_str();
        let service = m.service.as_str();
        let metrics = &self.metrics;
        match to {
            State::Sent => {
                metrics.sent.with_label_values(&[institution, service]).inc();
                let waited = now_millis().saturating_sub(m.accepted_at) as f64 / 1000.0;
                metrics.delivery_latency.with_label_values(&[institution]).observe(waited.max(0.0));
            }
            State::Ambiguous => metrics.ambiguous.with_label_values(&[institution, service]).inc(),
            to if to.is_final() => metrics.final_.with_label_values(&[institution, service, to.as_sql()]).inc(),
            _ => return,
        }
        log::info!(message_id:display = m.id, institution = institution, service = service, state = to.as_sql(); "message {to}");
    }

    /// Makes one call to IO and counts its answer, code and duration.
    pub(super) async fn call(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<Answer, CallFailure>>,
    ) -> Result<Answer, CallFailure> {
        let started = tokio::time::Instant::now();
        let result = call.await;
        let metrics = &self.metrics;
        metrics.io_duration.with_label_values(&[operation]).observe(started.elapsed().as_secs_f64());
        let institution = self.institution.name.as_str();
        let code = match &result {
            Ok(answer) => {
                metrics.io_last_contact.set(crate::certificates::unix_now());
                if answer.status.as_u16() == 429 {
                    metrics.io_rate_limited.with_label_values(&[institution]).inc();
                }
                answer.status.as_str().to_string()
            }
            Err(_) => "none".to_string(),
        };
        metrics.io_responses.with_label_values(&[institution, operation, &code]).inc();
        result
    }

    pub(in crate::delivery) fn reload_keys(&self) -> usize {
        self.keys.reload(&self.institution.services)
    }

    /// The budget and breaker as the metrics show them.
    pub(in crate::delivery) fn is_tripped(&self) -> bool {
        lock(&self.breaker).is_tripped()
    }

    /// 401/403 (our credentials), 429, 5xx and other refusals: the message waits (a
    /// send goes back to `queued`), counted as an attempt only when IO failed.
    pub(super) async fn refused(
        &self,
        m: &StoredMessage,
        from: State,
        key: &Secret,
        answer: &Answer,
        reason: &str,
    ) -> Health {
        let back_to = if from == State::Sent { State::Sent } else { State::Queued };
        let error = Some(problem_text(answer));
        match answer.status.as_u16() {
            429 => {
                let pause = answer.retry_after.unwrap_or(Duration::from_secs(5));
                self.gate.pause(pause);
                log::warn!(institution = self.institution.name.as_str(), seconds = pause.as_secs(); "IO answered 429: the whole budget pauses");
                self.later(m, from, back_to, pause, reason, None).await;
                Health::Neutral
            }
            401 | 403 => {
                self.keys.refused(&m.service, key, answer);
                self.later(m, from, back_to, Duration::ZERO, reason, error).await;
                Health::Neutral
            }
            s if s >= 500 => {
                let delay = if from == State::Sent { Duration::from_secs(60) } else { retry_delay(m.attempts) };
                self.later(m, from, back_to, delay, reason, error).await;
                Health::Bad
            }
            status => {
                log::error!(message_id:display = m.id, status = status; "IO refused a call; check the service configuration");
                self.later(m, from, back_to, SERVICE_HOLD, reason, error).await;
                Health::Neutral
            }
        }
    }

    /// Back to `to` after `delay`; `error` (IO's words, kept out of the transition
    /// record) becomes `last_error` and counts as a failed attempt.
    pub(super) async fn later(
        &self,
        m: &StoredMessage,
        from: State,
        to: State,
        delay: Duration,
        reason: &str,
        error: Option<String>,
    ) {
        let mut change = Change::new(m.id, from, to, reason);
        change.next_attempt_at = Some(now_millis() + millis(delay));
        change.attempted = error.is_some() && from != State::Sending && from != State::Sent;
        change.error = error;
        self.change(m, change).await;
    }

    /// Stores a change. Outcomes of calls to IO must not be lost: a full or failing
    /// queue is retried for a while before giving up (the message then shows its old
    /// state, which a restart or the ambiguous policy resolves).
    pub(super) async fn change(&self, m: &StoredMessage, change: Change) -> bool {
        let mut wait = Duration::from_millis(20);
        for _ in 0..12 {
            match self.queue.apply(vec![change.clone()]).await {
                Ok(applied) => {
                    let applied = applied.first().copied().unwrap_or(false);
                    if applied {
                        self.record(m, change.to);
                    }
                    return applied;
                }
                Err(QueueError::Closed) => break,
                Err(e) => {
                    log::warn!(error:display = e, message_id:display = change.id; "cannot store a delivery outcome yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        log::error!(message_id:display = change.id, to = change.to.as_sql(); "a delivery outcome could not be stored");
        false
    }
}
