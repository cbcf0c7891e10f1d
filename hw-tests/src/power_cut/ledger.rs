//! The ledger of the power-cut procedure: every id a running gateway acknowledged with
//! 201, one per line, each line fsync'd before the next message is posted. Written by
//! `power-cut write`, read back by `power-cut verify`. It belongs on another medium than
//! the queue (a USB stick, or better another host): a disk that drops its last writes
//! on power loss must not be able to drop the ledger's last lines with them.

use super::PowerCutError;
use crate::http_client::{self, HttpError, Request};
use crate::latency::Latencies;
use crate::setup;
use gateway::queue::MessageId;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a 503's Retry-After is honoured before posting again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// `http://HOST:PORT` of the running gateway's local API.
    pub url: String,
    /// The local client key (Ocp-Apim-Subscription-Key).
    pub key: String,
    pub count: u64,
    pub ledger: PathBuf,
    /// Clients posting at once: several share one commit (the gateway's group commit).
    pub clients: usize,
}

/// How a write run ended.
#[derive(Debug, Default)]
pub struct Written {
    pub acknowledged: u64,
    pub latencies: Latencies,
    /// 503s (queue full, disk low, busy): retried, never counted.
    pub backpressure: u64,
    /// The transport error that ended the run early (the gateway went away).
    pub stopped_by: Option<String>,
    pub elapsed: Duration,
}

/// Posts `count` messages, appending each acknowledged id to the ledger (fsync'd) before
/// the next post of that client; `acked` counts them as they land. Stops early when the
/// gateway stops answering — which is the point of the exercise.
pub fn write(options: &WriteOptions, acked: &AtomicU64) -> Result<Written, PowerCutError> {
    let addr = parse_url(&options.url)?;
    let ledger = Mutex::new(open_ledger(&options.ledger, &options.url, options.count)?);
    let (next, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let started = Instant::now();
    let results: Vec<Result<Written, PowerCutError>> = std::thread::scope(|scope| {
        let client = || {
            let mut written = Written::default();
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= options.count {
                    break;
                }
                match post_until_answered(&options.url, addr, &options.key, n, &mut written) {
                    Ok(id) => {
                        append(&ledger, &options.ledger, &id)?;
                        acked.fetch_add(1, Ordering::Relaxed);
                        written.acknowledged += 1;
                    }
                    Err(PostError::Transport(e)) => {
                        stop.store(true, Ordering::Relaxed);
                        written.stopped_by = Some(e.to_string());
                    }
                    Err(PostError::Fatal(e)) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(written)
        };
        let handles: Vec<_> = (0..options.clients.max(1)).map(|_| scope.spawn(client)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(PowerCutError::Panicked))).collect()
    });
    let mut total = Written { elapsed: started.elapsed(), ..Written::default() };
    for result in results {
        let written = result?;
        total.acknowledged += written.acknowledged;
        total.backpressure += written.backpressure;
        total.latencies.extend(written.latencies);
        total.stopped_by = total.stopped_by.or(written.stopped_by);
    }
    if total.acknowledged == 0 {
        if let Some(reason) = total.stopped_by {
            return Err(PowerCutError::NoGateway { url: options.url.clone(), reason });
        }
    }
    Ok(total)
}

enum PostError {
    /// The gateway could not be reached or went away mid-request.
    Transport(HttpError),
    /// It answered something that no retry will change.
    Fatal(PowerCutError),
}

/// Posts message `n` until the gateway answers 201 (retrying 503s); returns its id.
fn post_until_answered(
    url: &str,
    addr: SocketAddr,
    key: &str,
    n: u64,
    written: &mut Written,
) -> Result<String, PostError> {
    let body = setup::message(setup::FISCAL_CODES[n as usize % setup::FISCAL_CODES.len()], &format!("power-cut-{n}"));
    let headers = [("Ocp-Apim-Subscription-Key", key), ("Content-Type", "application/json")];
    let request = Request { method: "POST", path: "/api/v1/messages", headers: &headers, body: &body };
    let refused = |status, body| PostError::Fatal(PowerCutError::Refused { url: url.to_string(), status, body });
    loop {
        let t = Instant::now();
        let response = match http_client::send(addr, &request) {
            Ok(response) => response,
            Err(e) if e.is_transport() => return Err(PostError::Transport(e)),
            Err(e) => return Err(refused(0, e.to_string())),
        };
        let id = response.json().and_then(|j| j["id"].as_str().map(str::to_string));
        match (response.status, id) {
            (201, Some(id)) => {
                written.latencies.push(t.elapsed());
                return Ok(id);
            }
            (503, _) => {
                written.backpressure += 1;
                let after = response.header("retry-after").and_then(|s| s.parse().ok()).map(Duration::from_secs);
                std::thread::sleep(after.unwrap_or(Duration::from_secs(1)).min(MAX_BACKOFF));
            }
            (status, _) => return Err(refused(status, String::from_utf8_lossy(&response.body).into_owned())),
        }
    }
}

/// `http://HOST:PORT[/]` → a socket address. Plain HTTP only: the procedure runs against
/// a scratch gateway on the appliance's own network.
pub fn parse_url(url: &str) -> Result<SocketAddr, PowerCutError> {
    let bad = |reason: &str| PowerCutError::Url { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http://HOST:PORT is supported"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(bad("give the gateway's address only, e.g. http://127.0.0.1:18080"));
    }
    host.to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve it: {e}")))?
        .next()
        .ok_or_else(|| bad("it resolves to no address"))
}

/// Opens (or creates) the ledger for appending; a new one gets a header and its
/// directory entry is made durable too.
fn open_ledger(path: &Path, url: &str, count: u64) -> Result<std::fs::File, PowerCutError> {
    let io = |source| PowerCutError::Ledger { path: path.to_path_buf(), source };
    let existed = path.exists();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    let now = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC");
    writeln!(file, "# io-gateway hw-tests power-cut ledger: ids {url} answered 201 for; run of {count} started {now}")
        .map_err(io)?;
    file.sync_data().map_err(io)?;
    if !existed {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(file)
}

fn append(ledger: &Mutex<std::fs::File>, path: &Path, id: &str) -> Result<(), PowerCutError> {
    let io = |source| PowerCutError::Ledger { path: path.to_path_buf(), source };
    let mut file = ledger.lock().map_err(|_| PowerCutError::Panicked)?;
    file.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

/// A ledger read back.
#[derive(Debug, Default, PartialEq)]
pub struct Ledger {
    /// Every id, in order, without repeats.
    pub ids: Vec<MessageId>,
    /// A last line that is not an id: cut short by the power cut itself.
    pub torn_last_line: Option<String>,
    /// Other lines that are neither ids nor comments: (line number, text).
    pub bad_lines: Vec<(usize, String)>,
}

pub fn read_ledger(path: &Path) -> Result<Ledger, PowerCutError> {
    let bytes = std::fs::read(path).map_err(|source| PowerCutError::Ledger { path: path.to_path_buf(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut ledger = Ledger::default();
    let mut seen = std::collections::HashSet::new();
    for (index, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<MessageId>() {
            Ok(id) if seen.insert(id) => ledger.ids.push(id),
            Ok(_) => {}
            Err(_) if index + 1 == lines.len() => ledger.torn_last_line = Some(line.to_string()),
            Err(_) => ledger.bad_lines.push((index + 1, line.to_string())),
        }
    }
    Ok(ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_skipping_comments_and_repeats_and_notes_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.txt");
        let (a, b) = (MessageId::new(), MessageId::new());
        std::fs::write(&path, format!("# header\n{a}\n\n{b}\n{a}\nnot-an-id\n# another run\n{b}\n01JABC")).unwrap();
        let ledger = read_ledger(&path).unwrap();
        assert_eq!(ledger.ids, vec![a, b]);
        assert_eq!(ledger.torn_last_line.as_deref(), Some("01JABC"));
        assert_eq!(ledger.bad_lines, vec![(6, "not-an-id".to_string())]);
    }

    #[test]
    fn urls_are_plain_http_addresses() {
        assert_eq!(parse_url("http://127.0.0.1:18080/").unwrap(), SocketAddr::from(([127, 0, 0, 1], 18080)));
        for bad in ["https://127.0.0.1:1", "127.0.0.1:1", "http://127.0.0.1:1/api/v1", "http://"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
