//! kill -9 in the middle of delivery, with both real binaries (gateway and sandbox):
//! after a restart every message reaches its final state, and IO got a message twice
//! only where the gateway recorded an ambiguous send.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Gateway, TRIBUTI_KEY};

const MESSAGES: usize = 40;

struct SandboxProcess {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sandbox(dir: &std::path::Path) -> SandboxProcess {
    let config = dir.join("sandbox.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\nrate_limit = \"unlimited\"\n\
         [[services]]\nservice_id = \"01JTESTSERVICETARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n\
         [faults]\nlatency_ms = 200\n",
    )
    .unwrap();
    let mut child = Command::new(support::binary())
        .args(["sandbox", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let line = lines.by_ref().map_while(Result::ok).find(|l| l.contains("IO sandbox listening")).unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let addr = line.split("address=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    SandboxProcess { child, addr }
}

fn sandbox_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    support::request(addr, "GET", path, &[], b"").unwrap().json()
}

#[test]
fn kill_9_mid_delivery_loses_nothing_and_duplicates_only_what_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start_sandbox(dir.path());
    let config = dir.path().join("gateway.toml");
    let text = support::config_text(dir.path(), "", false)
        .replace("http://127.0.0.1:9/api/v1", &format!("http://{}/api/v1", sandbox.addr))
        + "[delivery]\nprofile_check = \"never\"\nmax_in_flight = 8\nfirst_poll_after_seconds = 1\n";
    std::fs::write(&config, text).unwrap();

    let gw = Gateway::start_with(dir.path(), &config);
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        let created =
            gw.post("/api/v1/messages", TRIBUTI_KEY, &support::message("BNCLRA85C52F205V", &format!("k{i}")), &[]);
        assert_eq!(created.status, 201);
        ids.push(created.json()["id"].as_str().unwrap().to_string());
    }
    // Kill while sends are in flight: some messages reached IO, some are being sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox_json(sandbox.addr, "/__sandbox/stats")["messages"].as_u64().unwrap() < 5 {
        assert!(Instant::now() < deadline, "delivery never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    gw.kill9();

    let gw = Gateway::start_with(dir.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<String> = ids
            .iter()
            .map(|id| {
                gw.get(&format!("/api/v1/messages/BNCLRA85C52F205V/{id}"), TRIBUTI_KEY).json()["gateway"]["state"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        if states.iter().all(|s| s == "processed") {
            break;
        }
        assert!(Instant::now() < deadline, "not all processed: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let received = sandbox_json(sandbox.addr, "/__sandbox/received");
    let mut copies: HashMap<String, usize> = HashMap::new();
    for message in received.as_array().unwrap() {
        let markdown = message["content"]["markdown"].as_str().unwrap();
        let marker = markdown.rsplit('[').next().unwrap().trim_end_matches(']').to_string();
        *copies.entry(marker).or_default() += 1;
    }
    assert_eq!(copies.len(), MESSAGES, "every message reached IO");
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    let conn = rusqlite::Connection::open(dir.path().join("queue.db")).unwrap();
    let ambiguous: i64 =
        conn.query_row("SELECT COUNT(*) FROM transitions WHERE to_state = 'ambiguous'", [], |r| r.get(0)).unwrap();
    assert!(duplicates as i64 <= ambiguous, "{duplicates} duplicates but only {ambiguous} ambiguous sends recorded");
    eprintln!("kill -9 mid-delivery: {ambiguous} ambiguous send(s) recorded, {duplicates} duplicate(s) at IO");
}
