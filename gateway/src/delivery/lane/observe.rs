//! What a lane tells the metrics and the journal: calls to IO (code, duration, 429s)
//! and the changes an operator cares about (sent, ambiguous, final).

use super::{lock, Lane};
use crate::io_client::{Answer, CallFailure};
use crate::queue::{now_millis, State, StoredMessage};

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
}
