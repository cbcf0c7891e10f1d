//! `soak`: the real gateway delivering to the real IO sandbox over mutual TLS on loopback,
//! fed R messages per second for M minutes. Every message answered 201 must reach the
//! sandbox (`sent`, then IO's `processed`); the gateway's resident memory is sampled all
//! along and must stay under a ceiling and, in long enough runs, flat.

use crate::daemon::{Daemon, DaemonError};
use crate::http_client::{self, Request};
use crate::latency::{self, Latencies};
use crate::memory::{self, Sampler};
use crate::queue_file::{QueueFile, QueueFileError};
use crate::report::{Section, Verdict};
use crate::setup::{self, GatewaySetup, Io, SetupError};
use gateway::queue::State;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Threads posting at once (so one slow commit does not hold the schedule back).
const POSTERS: usize = 4;
/// How long delivery may take to catch up once posting stops: 60 s, plus the time IO's
/// budget (150 calls per 5 s; a send and a status read per message) needs for a backlog.
const DRAIN_BASE: Duration = Duration::from_secs(60);
const IO_MESSAGES_PER_SECOND: f64 = 15.0;
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub binary: PathBuf,
    /// Scratch files go into a temporary directory inside it.
    pub dir: PathBuf,
    pub duration: Duration,
    /// Messages per second.
    pub rate: f64,
    pub max_rss_mib: u64,
    /// Leave the scratch directory (configurations, queue) in place.
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("cannot make a scratch directory in {dir}: {source}")]
    Scratch { dir: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Process(#[from] DaemonError),
    #[error(transparent)]
    Queue(#[from] QueueFileError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("the rate must be a positive number of messages per second, not {0}")]
    Rate(f64),
}

/// What the posting threads saw.
#[derive(Default)]
struct Posted {
    accepted: Vec<String>,
    latencies: Latencies,
    refused: Vec<u16>,
    failures: Vec<String>,
    late: usize,
}

pub fn run(options: &SoakOptions) -> Result<Section, SoakError> {
    if !(options.rate > 0.0 && options.rate.is_finite()) {
        return Err(SoakError::Rate(options.rate));
    }
    let scratch = tempfile::Builder::new()
        .prefix("hw-soak-")
        .tempdir_in(&options.dir)
        .map_err(|source| SoakError::Scratch { dir: options.dir.clone(), source })?;
    let dir = scratch.path();
    let pki = setup::certificates(dir)?;
    let client = setup::client_key()?;
    let sandbox = Daemon::sandbox(&options.binary, &setup::sandbox_config(dir, &pki)?)?;
    let io = Io::Sandbox { port: sandbox.addr().port(), pki: &pki };
    let config =
        setup::gateway_config(&GatewaySetup { dir, listen: "127.0.0.1:0", io, api_tls: None, client: &client })?;
    let mut gateway = Daemon::gateway(&options.binary, &config)?;
    gateway.wait_ready(healthy)?;

    let every = (options.duration / 120).clamp(Duration::from_millis(500), Duration::from_secs(10));
    let sampler = Sampler::start(gateway.pid(), every).map_err(SoakError::Thread)?;
    let started = Instant::now();
    let posted = post_for(gateway.addr(), &client.key, options)?;
    let posting = started.elapsed();
    let drain_limit = DRAIN_BASE + Duration::from_secs_f64(posted.accepted.len() as f64 / IO_MESSAGES_PER_SECOND);
    let queue = QueueFile::open(&dir.join("queue.db"))?;
    let (delivered, processed, drain) = wait_delivered(&queue, &posted.accepted, drain_limit)?;
    let samples = sampler.finish();
    drop(queue);
    let stopped = gateway.terminate(STOP_GRACE);
    let sandbox_log = sandbox.terminate(STOP_GRACE).map(|s| s.log).unwrap_or_default();
    if options.keep {
        let _ = scratch.keep();
    }

    let mut section = Section::new(
        "Soak: sustained delivery and memory",
        format!(
            "io-gateway run delivering over mutual TLS to io-gateway sandbox (IO's budget of 150 calls per 5 s, \
             a send and a status read per message), both real processes on loopback; {:.1} messages/s posted \
             for {:.1} minutes by {POSTERS} clients, the gateway's VmRSS/VmHWM read from /proc every {:.1} s.",
            options.rate,
            options.duration.as_secs_f64() / 60.0,
            every.as_secs_f64()
        ),
    );
    let accepted = posted.accepted.len();
    section.figure("messages posted", (accepted + posted.refused.len() + posted.failures.len()).to_string());
    section.figure("answered 201", accepted.to_string());
    section.figure("accepted per second", format!("{:.2}", latency::rate(accepted, posting)));
    if let Some(s) = posted.latencies.summary() {
        section.figure("post latency (201)", s.describe());
    }
    section.figure("posts started over 1 s late", posted.late.to_string());
    section.figure("delivered (sent or processed)", delivered.to_string());
    section.figure("processed (IO's final status)", processed.to_string());
    section.figure("time to deliver after posting stopped", format!("{:.1} s", drain.as_secs_f64()));
    if let Some(line) = sandbox_log.iter().rev().find(|l| l.contains("sandbox stopped")) {
        section.figure("the sandbox's own count", line.split("sandbox stopped").nth(1).unwrap_or("").trim());
    }
    let every_answered = posted.refused.is_empty() && posted.failures.is_empty();
    section.check("every post answered 201", Verdict::from_ok(every_answered), refusals(&posted));
    section.check(
        "every 201 reached the sandbox",
        Verdict::from_ok(accepted > 0 && delivered == accepted),
        format!(
            "{delivered} of {accepted} delivered ({processed} processed) within {:.0} s",
            drain_limit.as_secs_f64()
        ),
    );
    memory_figures(&mut section, &samples, options.max_rss_mib);
    match stopped {
        Ok(s) => {
            let clean = s.status.success() && s.log.iter().any(|l| l.contains("stopped cleanly"));
            section.check("gateway stopped cleanly on SIGTERM", Verdict::from_ok(clean), format!("{}", s.status));
        }
        Err(e) => section.check("gateway stopped cleanly on SIGTERM", Verdict::Fail, e.to_string()),
    }
    Ok(section)
}

/// `GET /health` answers 200.
pub fn healthy(addr: std::net::SocketAddr) -> bool {
    let request = Request { method: "GET", path: "/health", headers: &[], body: b"" };
    http_client::send(addr, &request).is_ok_and(|r| r.status == 200)
}

/// Posts `rate` messages per second for `duration`, from `POSTERS` threads.
fn post_for(addr: std::net::SocketAddr, key: &str, options: &SoakOptions) -> Result<Posted, SoakError> {
    let total = (options.duration.as_secs_f64() * options.rate).ceil().max(1.0) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..POSTERS {
        let (next, key, rate) = (Arc::clone(&next), key.to_string(), options.rate);
        let thread = std::thread::Builder::new().name("poster".into()).spawn(move || {
            let mut posted = Posted::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return posted;
                }
                let due = started + Duration::from_secs_f64(n as f64 / rate);
                match due.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None if due.elapsed() > Duration::from_secs(1) => posted.late += 1,
                    None => {}
                }
                post_one(addr, &key, n, &mut posted);
            }
        });
        threads.push(thread.map_err(SoakError::Thread)?);
    }
    let mut all = Posted::default();
    for thread in threads {
        if let Ok(p) = thread.join() {
            all.accepted.extend(p.accepted);
            all.latencies.extend(p.latencies);
            all.refused.extend(p.refused);
            all.failures.extend(p.failures);
            all.late += p.late;
        }
    }
    Ok(all)
}

fn post_one(addr: std::net::SocketAddr, key: &str, n: u64, posted: &mut Posted) {
    let body = setup::message(setup::FISCAL_CODES[n as usize % setup::FISCAL_CODES.len()], &format!("soak-{n}"));
    let headers = [("Ocp-Apim-Subscription-Key", key), ("Content-Type", "application/json")];
    let request = Request { method: "POST", path: "/api/v1/messages", headers: &headers, body: &body };
    let t = Instant::now();
    match http_client::send(addr, &request) {
        Ok(r) if r.status == 201 => match r.json().and_then(|j| j["id"].as_str().map(str::to_string)) {
            Some(id) => {
                posted.latencies.push(t.elapsed());
                posted.accepted.push(id);
            }
            None => posted.failures.push("a 201 without an id".into()),
        },
        Ok(r) => posted.refused.push(r.status),
        Err(e) => posted.failures.push(e.to_string()),
    }
}

/// Polls the queue until every accepted message is processed or the limit passes;
/// returns (delivered, processed, time taken).
fn wait_delivered(
    queue: &QueueFile,
    accepted: &[String],
    limit: Duration,
) -> Result<(usize, usize, Duration), SoakError> {
    let started = Instant::now();
    let wanted: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    loop {
        let states = queue.states()?;
        let of_ours = || states.iter().filter(|(id, _)| wanted.contains(id.as_str())).map(|(_, s)| *s);
        let delivered = of_ours().filter(|s| matches!(s, State::Sent | State::Processed)).count();
        let processed = of_ours().filter(|s| *s == State::Processed).count();
        if processed == wanted.len() || started.elapsed() >= limit {
            return Ok((delivered, processed, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn refusals(posted: &Posted) -> String {
    if posted.refused.is_empty() && posted.failures.is_empty() {
        return "none refused, no transport error".into();
    }
    let mut statuses = posted.refused.clone();
    statuses.sort_unstable();
    statuses.dedup();
    let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
    let first_failure = posted.failures.first().map(String::as_str).unwrap_or("-");
    format!(
        "{} refused (status {}), {} failed (first: {first_failure})",
        posted.refused.len(),
        statuses.join(", "),
        posted.failures.len()
    )
}

fn memory_figures(section: &mut Section, samples: &[memory::Sample], max_rss_mib: u64) {
    let Some(trend) = memory::trend(samples) else {
        section.check("memory sampled", Verdict::Fail, "no /proc sample of the gateway could be read");
        return;
    };
    section.figure("RSS at start", memory::mib(trend.start_kib));
    section.figure("RSS peak (VmHWM)", memory::mib(trend.peak_kib));
    section.figure("RSS at end", memory::mib(trend.end_kib));
    section.figure("RSS growth after warm-up", format!("{:+.1} MiB", trend.growth_kib as f64 / 1024.0));
    if trend.flat.is_some() {
        section.figure("RSS slope after warm-up", format!("{:+.1} MiB/hour", trend.slope_mib_per_hour));
    }
    section.check(
        format!("memory ceiling: peak ≤ {max_rss_mib} MiB"),
        Verdict::from_ok(trend.peak_kib <= max_rss_mib * 1024),
        format!("peak {}", memory::mib(trend.peak_kib)),
    );
    let (verdict, detail) = match trend.flat {
        Some(flat) => (Verdict::from_ok(flat), format!("{:+.1} MiB after warm-up", trend.growth_kib as f64 / 1024.0)),
        None => {
            (Verdict::NotJudged, format!("runs under {} minutes are not judged", memory::MIN_JUDGED_RUN.as_secs() / 60))
        }
    };
    section.check("RSS stayed flat", verdict, detail);
    let step = (samples.len() / 12).max(1);
    let mut table = String::new();
    let rows = samples.iter().step_by(step).chain(samples.last().filter(|_| !(samples.len() - 1).is_multiple_of(step)));
    crate::report::table(
        &mut table,
        ["time", "VmRSS", "VmHWM"],
        rows.map(|s| [format!("{:.0} s", s.at.as_secs_f64()), memory::mib(s.rss_kib), memory::mib(s.hwm_kib)]),
    );
    section
        .detail(format!("The gateway's memory (one in {step} of {} samples, and the last):\n\n{table}", samples.len()));
}
