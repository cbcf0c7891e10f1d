//! Prometheus metrics: one registry, built by `server` and handed to the API, delivery and
//! the watch folders, exposed on its own listener (`[metrics] listen`).
//!
//! Events (accepted, sent, final, IO answers, import rows) are counted where they happen;
//! what is a state rather than an event (queue depth, oldest age, database size, free
//! disk, rate budget, certificate expiry) is read when Prometheus scrapes (`scrape`).
//! Labels are bounded: institution and service names come from the configuration, states
//! and outcomes from `queue::State`, codes from IO's HTTP statuses.

pub mod names;
mod scrape;

pub use scrape::{serve, Sources};

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub accepted: IntCounterVec,
    pub refused: IntCounterVec,
    pub sent: IntCounterVec,
    pub final_: IntCounterVec,
    pub ambiguous: IntCounterVec,
    pub queue_messages: IntGaugeVec,
    pub queue_oldest_age: Gauge,
    pub io_responses: IntCounterVec,
    pub io_rate_limited: IntCounterVec,
    pub io_duration: HistogramVec,
    pub io_last_contact: IntGauge,
    pub io_circuit_open: IntGaugeVec,
    pub budget_calls: IntGaugeVec,
    pub budget_remaining: IntGaugeVec,
    pub budget_used: IntCounterVec,
    pub delivery_latency: HistogramVec,
    pub import_rows: IntCounterVec,
    pub import_files: IntCounterVec,
    pub certificate_expiry: GaugeVec,
    pub database_size: IntGauge,
    pub disk_free: IntGauge,
    pub disk_free_minimum: IntGauge,
}

/// IO calls take milliseconds to seconds (timeouts are at most a minute).
const CALL_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// From acceptance to IO's 201: under a second when idle, hours behind a big import.
const LATENCY_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0, 24.0 * 3600.0];

impl Metrics {
    /// A fresh registry with every metric registered (and the process metrics on Linux).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = Register(&registry);
        let metrics = Metrics {
            accepted: r.counter(
                names::MESSAGES_ACCEPTED,
                "Messages accepted into the queue.",
                &["institution", "service", "source"],
            ),
            refused: r.counter(names::MESSAGES_REFUSED, "Posts the local API refused.", &["reason"]),
            sent: r.counter(names::MESSAGES_SENT, "Messages IO accepted (201).", &["institution", "service"]),
            final_: r.counter(
                names::MESSAGES_FINAL,
                "Messages that reached a final state.",
                &["institution", "service", "outcome"],
            ),
            ambiguous: r.counter(
                names::AMBIGUOUS_SENDS,
                "Sends with no answer after the request was written.",
                &["institution", "service"],
            ),
            queue_messages: r.int_gauge_vec(names::QUEUE_MESSAGES, "Messages in the queue.", &["state", "priority"]),
            queue_oldest_age: r.gauge(names::QUEUE_OLDEST_AGE, "Age of the oldest message waiting to be sent."),
            io_responses: r.counter(names::IO_RESPONSES, "Answers from IO.", &["institution", "operation", "code"]),
            io_rate_limited: r.counter(names::IO_RATE_LIMITED, "429 answers from IO.", &["institution"]),
            io_duration: r.histogram(
                names::IO_REQUEST_DURATION,
                "Duration of calls to IO.",
                &["operation"],
                CALL_BUCKETS,
            ),
            io_last_contact: r.int_gauge(names::IO_LAST_CONTACT, "Unix time of the last answer from IO."),
            io_circuit_open: r.int_gauge_vec(
                names::IO_CIRCUIT_OPEN,
                "1 while IO keeps failing and calls pause.",
                &["institution"],
            ),
            budget_calls: r.int_gauge_vec(names::RATE_BUDGET_CALLS, "Calls allowed per window.", &["institution"]),
            budget_remaining: r.int_gauge_vec(
                names::RATE_BUDGET_REMAINING,
                "Calls still free in the window.",
                &["institution"],
            ),
            budget_used: r.counter(names::RATE_BUDGET_USED, "Calls made to IO.", &["institution"]),
            delivery_latency: r.histogram(
                names::DELIVERY_LATENCY,
                "From acceptance to IO's 201.",
                &["institution"],
                LATENCY_BUCKETS,
            ),
            import_rows: r.counter(names::IMPORT_ROWS, "Rows read by watch-folder imports.", &["format", "result"]),
            import_files: r.counter(names::IMPORT_FILES, "Files a watch folder finished.", &["format", "result"]),
            certificate_expiry: r.gauge_vec(
                names::CERTIFICATE_EXPIRY,
                "notAfter of a certificate, Unix time.",
                &["certificate"],
            ),
            database_size: r.int_gauge(names::DATABASE_SIZE, "Size of the queue's database and WAL."),
            disk_free: r.int_gauge(names::DISK_FREE, "Free space on the database's file system."),
            disk_free_minimum: r.int_gauge(names::DISK_FREE_MINIMUM, "Free disk below which messages are refused."),
            registry: registry.clone(),
        };
        let build =
            r.int_gauge_vec(names::BUILD_INFO, "Version and CPU architecture of this binary.", &["version", "arch"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), std::env::consts::ARCH]).set(1);
        #[cfg(target_os = "linux")]
        let _ = metrics.registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        metrics
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec fails only on metrics that break the format, which the
        // registry refuses when they are registered.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Registration of the fixed set above: names and labels are constants, so a failure is a
/// programming error caught by the unit test; it degrades to an unregistered metric.
struct Register<'a>(&'a Registry);

impl Register<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, collector: C) -> C {
        if let Err(e) = self.0.register(Box::new(collector.clone())) {
            log::error!(error:display = e; "a metric could not be registered");
        }
        collector
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e)))
    }

    fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e)))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e)))
    }

    fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e)))
    }

    fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e)))
    }

    fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable_metric(name, e)))
    }
}

/// Metric options are compile-time constants checked by `every_metric_is_exported`.
#[allow(clippy::panic)]
fn unreachable_metric<T>(name: &str, error: prometheus::Error) -> T {
    panic!("metric {name} is malformed: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported() {
        let metrics = Metrics::new();
        // Vectors appear once they have a child.
        metrics.accepted.with_label_values(&["Comune", "tari", "api"]).inc();
        metrics.io_duration.with_label_values(&["submit"]).observe(0.2);
        let text = String::from_utf8(metrics.render()).unwrap();
        for name in [
            names::BUILD_INFO,
            names::MESSAGES_ACCEPTED,
            names::QUEUE_OLDEST_AGE,
            names::IO_LAST_CONTACT,
            names::DATABASE_SIZE,
            names::DISK_FREE,
            names::DISK_FREE_MINIMUM,
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing from:\n{text}");
        }
        assert!(
            text.contains(r#"io_gateway_messages_accepted_total{institution="Comune",service="tari",source="api"} 1"#)
        );
        assert!(text.contains(r#"io_gateway_io_request_duration_seconds_bucket{operation="submit",le="0.25"} 1"#));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
