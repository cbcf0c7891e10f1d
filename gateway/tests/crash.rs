//! kill -9 while 16 clients post: every message that got a 201 is present exactly once
//! after restart, and none that got an error is.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::{message, Gateway, TRIBUTI_KEY};

const CLIENTS: usize = 16;
const ROUNDS: usize = 3;

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Accepted(String),
    Refused(u16),
    /// No answer: the process died mid-request. Either outcome is allowed.
    Unknown,
}

#[test]
fn kill_9_loses_no_accepted_message_and_stores_no_refused_one() {
    let dir = tempfile::tempdir().unwrap();
    let outcomes: Arc<Mutex<HashMap<String, Outcome>>> = Arc::default();
    for round in 0..ROUNDS {
        let gw = Gateway::start(dir.path(), "");
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (addr, stop, outcomes) = (gw.addr, Arc::clone(&stop), Arc::clone(&outcomes));
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let marker = format!("r{round}-c{client}-n{n}");
                        // Every seventh request is invalid, so refusals happen too.
                        let fc = if n % 7 == 3 { "VRDGPP50T01H501A" } else { "BNCLRA85C52F205V" };
                        let body = message(fc, &marker).to_string();
                        let headers =
                            [("Ocp-Apim-Subscription-Key", TRIBUTI_KEY), ("Content-Type", "application/json")];
                        let outcome =
                            match support::request(addr, "POST", "/api/v1/messages", &headers, body.as_bytes()) {
                                Ok(r) if r.status == 201 => {
                                    Outcome::Accepted(r.json()["id"].as_str().unwrap().to_string())
                                }
                                Ok(r) => Outcome::Refused(r.status),
                                Err(_) => Outcome::Unknown,
                            };
                        let dead = outcome == Outcome::Unknown;
                        outcomes.lock().unwrap().insert(marker, outcome);
                        if dead {
                            break;
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + random_below(1200)));
        gw.kill9();
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.join().unwrap();
        }
    }

    // Restart: recovery must succeed and serve what was accepted.
    let gw = Gateway::start(dir.path(), "");
    let stored = stored_markers(dir.path());
    let outcomes = outcomes.lock().unwrap();
    let accepted: Vec<_> =
        outcomes.iter().filter_map(|(m, o)| if let Outcome::Accepted(id) = o { Some((m, id)) } else { None }).collect();
    assert!(accepted.len() > 100, "the test must accept a fair number of messages, got {}", accepted.len());
    for (marker, id) in &accepted {
        let copies = stored.get(*marker).map(Vec::len).unwrap_or(0);
        assert_eq!(copies, 1, "accepted message {marker} is stored {copies} times");
        assert_eq!(&stored[*marker][0], *id, "accepted message {marker} has another id");
    }
    for (marker, outcome) in outcomes.iter() {
        if let Outcome::Refused(status) = outcome {
            assert!(!stored.contains_key(marker), "refused ({status}) message {marker} was stored");
        }
    }
    let unknown = outcomes.values().filter(|o| **o == Outcome::Unknown).count();
    let total: usize = stored.values().map(Vec::len).sum();
    assert!(total <= accepted.len() + unknown, "{total} stored, {} accepted, {unknown} unanswered", accepted.len());
    assert!(outcomes.values().any(|o| matches!(o, Outcome::Refused(400))), "refusals were exercised");

    let (marker, id) = accepted[0];
    let shown = gw.get(&format!("/api/v1/messages/BNCLRA85C52F205V/{id}"), TRIBUTI_KEY);
    assert_eq!(shown.status, 200, "{marker}");
}

/// marker -> ids of the stored messages carrying it.
fn stored_markers(dir: &std::path::Path) -> HashMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(dir.join("queue.db")).unwrap();
    // Bodies are sealed (encryption at rest): open them with the gateway's data keys.
    let keys = gateway::seal::key_dir::load(&dir.join("data-keys")).unwrap();
    let mut stmt = conn.prepare("SELECT id, body FROM messages").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))).unwrap();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        let (id, body) = row.unwrap();
        let body = keys.open(gateway::seal::Field::Body, &id, &body).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let markdown = body["content"]["markdown"].as_str().unwrap();
        let marker = markdown.rsplit('[').next().unwrap().trim_end_matches(']').to_string();
        out.entry(marker).or_default().push(id);
    }
    out
}

fn random_below(n: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos % n
}
