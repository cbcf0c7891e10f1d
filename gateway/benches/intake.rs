//! Intake benchmark: 1 KiB messages posted by N concurrent keep-alive clients to the real
//! binary; reports durable messages/s and p50/p99 latency for N = 1, 16, 64.
//!
//! `cargo bench -p gateway --bench intake` (BENCH_SECONDS=10 by default, BENCH_CLIENTS to
//! choose the N values, e.g. `BENCH_CLIENTS=64`; BENCH_SIGNING=1 adds signed receipts;
//! BENCH_BINARY=PATH benchmarks another io-gateway build, for A/B comparisons;
//! BENCH_EXTRA_BYTES=N makes each message N bytes longer). Every 201
//! is checked against the database afterwards, so the figure counts only messages that
//! really are durable.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "bench-key";

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|_| vec![1, 16, 64]);
    println!("intake benchmark: 1 KiB messages, {seconds} s per run, real binary, SQLite WAL synchronous=FULL");
    floors();
    for n in clients {
        run(n, Duration::from_secs(seconds));
    }
}

/// What N=1 cannot beat on this machine: one fsync'd SQLite commit of a 1 KiB row.
fn floors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = rusqlite::Connection::open(dir.path().join("floor.db")).expect("open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (b BLOB);").expect("setup");
    let body = vec![b'x'; 1024];
    let started = Instant::now();
    let n = 2000;
    for _ in 0..n {
        conn.execute("INSERT INTO t (b) VALUES (?1)", [&body]).expect("insert");
    }
    let each = started.elapsed() / n;
    println!(
        "floor: one fsync'd SQLite commit of a 1 KiB row takes {:.0} µs here ({:.0} commits/s)",
        each.as_secs_f64() * 1e6,
        1.0 / each.as_secs_f64()
    );
}

/// With BENCH_SIGNING=1, an appliance key signs a receipt for every 201 (and the audit
/// checkpoints), to measure what signing costs intake.
fn signing_section(dir: &std::path::Path) -> String {
    if std::env::var("BENCH_SIGNING").as_deref() != Ok("1") {
        return String::new();
    }
    let keys = dir.join("keys");
    gateway::signing::KeyRing::generate(&keys).expect("signing key");
    format!("[signing]\nkey_directory = \"{}\"\n", keys.display())
}

fn run(clients: usize, duration: Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("gateway.toml");
    let key_file = dir.path().join("io.key");
    std::fs::write(&key_file, "unused").expect("key file");
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, KEY.as_bytes()));
    std::fs::write(
        &config,
        format!(
            r#"
[[institutions]]
name = "Comune di Bench"
fiscal_code = "80000000010"
  [[institutions.services]]
  name = "tari"
  service_id = "01JBENCH"
  primary_key = {{ file = "{key}" }}
[[clients]]
name = "bench"
key_sha256 = "{digest}"
services = ["tari"]
[io]
base_url = "http://127.0.0.1:9/api/v1"
[local_api]
listen = "127.0.0.1:0"
[storage]
path = "{db}"
max_queued_messages = 100000000
min_free_disk_mb = 64
{signing}"#,
            key = key_file.display(),
            db = dir.path().join("queue.db").display(),
            signing = signing_section(dir.path()),
        ),
    )
    .expect("config");
    let workers = std::env::var("BENCH_WORKERS").unwrap_or_else(|_| "1".into());
    // BENCH_BINARY runs another build (an A/B comparison against an older commit).
    let binary = std::env::var("BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_io-gateway").to_string());
    let mut child = Command::new(binary)
        .args(["run", "--worker-threads", &workers, "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start io-gateway");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr: std::net::SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("address=").nth(1).map(|a| a.trim().to_string()))
        .and_then(|a| a.parse().ok())
        .expect("gateway address");
    std::thread::spawn(move || lines.for_each(drop));

    // The load generator stays on one thread so that the gateway gets the machine.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        if clients == 1 {
            let health = health_round_trip(addr).await;
            println!("floor: HTTP round trip to GET /health (no storage) p50 {:.0} µs", health.as_secs_f64() * 1e6);
        } else {
            let per_second = health_throughput(addr, clients).await;
            println!("ceiling: GET /health (no storage, no body) with N={clients}: {per_second:.0} req/s through this harness");
        }
        let deadline = Instant::now() + duration;
        let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(client(addr, c, deadline))).collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        all
    });
    let _ = child.kill();
    let _ = child.wait();
    let stored: i64 = rusqlite::Connection::open(dir.path().join("queue.db"))
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)))
        .expect("count stored messages");
    latencies.sort();
    let accepted = latencies.len();
    let pct = |p: f64| {
        latencies.get(((accepted as f64 * p) as usize).min(accepted.saturating_sub(1))).copied().unwrap_or_default()
    };
    println!(
        "N={clients:>3}: {:>8.0} durable msg/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({accepted} accepted, {stored} in the database)",
        accepted as f64 / duration.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    assert!(stored as usize >= accepted, "an accepted message is missing from the database");
}

/// One keep-alive connection posting until the deadline; returns the latency of each 201.
async fn client(addr: std::net::SocketAddr, id: usize, deadline: Instant) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let mut latencies = Vec::new();
    // Built once: the load generator shares the machine with the gateway, so it does as
    // little as it can per request. Identical bodies are fine: without an
    // Idempotency-Key every post is a new message.
    let body = Bytes::from(message(id));
    let host = addr.to_string();
    // With BENCH_SIGNING=1 every client asks for a signed receipt: the worst case.
    let prefer = if std::env::var("BENCH_SIGNING").as_deref() == Ok("1") { "receipt" } else { "" };
    while Instant::now() < deadline {
        let request = http::Request::post("/api/v1/messages")
            .header("host", &host)
            .header("content-type", "application/json")
            .header("ocp-apim-subscription-key", KEY)
            .header("prefer", prefer)
            .body(Full::new(body.clone()))
            .expect("request");
        let started = Instant::now();
        let response = sender.send_request(request).await.expect("send");
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status == http::StatusCode::CREATED {
            latencies.push(started.elapsed());
        } else {
            panic!("unexpected status {status}");
        }
    }
    latencies
}

/// Median latency of 2000 `GET /health` on one keep-alive connection.
async fn health_round_trip(addr: std::net::SocketAddr) -> Duration {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let mut samples = Vec::new();
    for _ in 0..2000 {
        let request = http::Request::get("/health")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("request");
        let started = Instant::now();
        let response = sender.send_request(request).await.expect("send");
        let _ = response.into_body().collect().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// Requests per second of `GET /health` from `clients` keep-alive connections for 2 s:
/// what the HTTP layer and this load generator manage together on this machine.
async fn health_throughput(addr: std::net::SocketAddr, clients: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(2);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
                tokio::spawn(connection);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let request = http::Request::get("/health")
                        .header("host", addr.to_string())
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let _ = sender.send_request(request).await.expect("send").into_body().collect().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }
    total as f64 / 2.0
}

/// A realistic message of about 1 KiB (BENCH_EXTRA_BYTES adds that many to its markdown,
/// to see how row size moves the figures).
fn message(client: usize) -> String {
    let extra: usize = std::env::var("BENCH_EXTRA_BYTES").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let markdown = format!(
        "Gentile contribuente, e' disponibile l'avviso di pagamento della TARI 2025 (riferimento {client}). {}{}",
        "Puoi pagarlo direttamente in app con il pulsante Paga, oppure presso gli sportelli abilitati a pagoPA. "
            .repeat(8),
        ".".repeat(extra)
    );
    serde_json::json!({
        "fiscal_code": "BNCLRA85C52F205V",
        "content": {
            "subject": "TARI 2025: avviso di pagamento rata 1",
            "markdown": markdown,
            "due_date": "2025-07-31T21:59:59.000Z",
            "payment_data": { "amount": 15000, "notice_number": "301202500000000281", "payee": { "fiscal_code": "80000000010" } }
        }
    })
    .to_string()
}
