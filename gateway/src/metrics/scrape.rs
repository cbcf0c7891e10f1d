//! The metrics listener: `GET /metrics` refreshes the gauges that describe state (queue,
//! disk, budgets, certificates) and answers in Prometheus' text format.

use super::Metrics;
use crate::certificates::CertificateInfo;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::http_server::{self, Body, Stopped};
use crate::queue::admin::Admin;
use crate::queue::{database_directory, free_disk_bytes, now_millis, Priority, QueueError, State};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What a scrape reads besides the counters.
pub struct Sources {
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub delivery: Arc<Delivery>,
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, sources: Arc<Sources>, shutdown: impl Future<Output = ()>) -> Stopped {
    let handler = move |request: Request<hyper::body::Incoming>| {
        let sources = Arc::clone(&sources);
        async move { Ok(answer(&sources, request.method(), request.uri().path()).await) }
    };
    http_server::serve(listener, None, shutdown, || true, handler).await
}

async fn answer(sources: &Sources, method: &Method, path: &str) -> Response<Body> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/metrics") => {
            refresh(sources).await;
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", sources.metrics.render())
        }
        (&Method::GET, "/") => (StatusCode::OK, "text/plain; charset=utf-8", b"io-gateway: see /metrics\n".to_vec()),
        (_, "/metrics" | "/") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", b"GET only\n".to_vec()),
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", b"not found: try /metrics\n".to_vec()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Reads the state gauges afresh. A failure leaves the old values and is logged.
async fn refresh(sources: &Sources) {
    let metrics = &sources.metrics;
    for budget in sources.delivery.budgets() {
        let institution = [budget.institution.as_str()];
        if let Some(calls) = budget.per_window {
            metrics.budget_calls.with_label_values(&institution).set(i64::from(calls));
        }
        metrics.budget_remaining.with_label_values(&institution).set(i64::from(budget.remaining));
        let used = metrics.budget_used.with_label_values(&institution);
        used.inc_by(budget.used.saturating_sub(used.get()));
        metrics.io_circuit_open.with_label_values(&institution).set(i64::from(budget.circuit_open));
    }
    let config = &sources.config;
    let mut certificates = Vec::new();
    if let Some(path) = &config.io.client_certificate {
        certificates.push(("io_client", path.clone()));
    }
    if let Some(tls) = &config.local_api.tls {
        certificates.push(("local_api", tls.certificate.clone()));
    }
    for (name, path) in certificates {
        match CertificateInfo::read(&path) {
            Ok(info) => metrics.certificate_expiry.with_label_values(&[name]).set(info.not_after as f64),
            Err(e) => log::warn!(error:display = e; "cannot read a certificate for the metrics"),
        }
    }
    metrics.disk_free_minimum.set(gauge_value(config.storage.min_free_disk_bytes));
    let path = config.storage.path.clone();
    let read = tokio::task::spawn_blocking(move || QueueReading::read(&path)).await;
    match read {
        Ok(Ok(reading)) => reading.apply(metrics),
        Ok(Err(e)) => log::warn!(error:display = e; "cannot read the queue for the metrics"),
        Err(e) => log::warn!(error:display = e; "the metrics' queue reading did not finish"),
    }
}

/// The queue as a scrape sees it.
struct QueueReading {
    counts: Vec<(State, Priority, u64, i64)>,
    database_bytes: u64,
    free_bytes: Option<u64>,
}

impl QueueReading {
    fn read(path: &Path) -> Result<QueueReading, QueueError> {
        let counts = Admin::open(path)?.counts()?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let free_bytes = free_disk_bytes(database_directory(path)).ok();
        Ok(QueueReading { counts, database_bytes: size(path) + size(Path::new(&wal)), free_bytes })
    }

    fn apply(self, metrics: &Metrics) {
        for state in State::ALL {
            for priority in Priority::ALL {
                let count = self.counts.iter().find(|c| c.0 == state && c.1 == priority).map_or(0, |c| c.2);
                metrics.queue_messages.with_label_values(&[state.as_sql(), priority.as_str()]).set(gauge_value(count));
            }
        }
        let oldest = self.counts.iter().filter(|c| c.0.awaits_delivery()).map(|c| c.3).min();
        let age = oldest.map_or(0.0, |at| (now_millis().saturating_sub(at)).max(0) as f64 / 1000.0);
        metrics.queue_oldest_age.set(age);
        metrics.database_size.set(gauge_value(self.database_bytes));
        if let Some(free) = self.free_bytes {
            metrics.disk_free.set(gauge_value(free));
        }
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
