//! Test support: run the real `io-gateway` binary in a temp dir on port 0 and talk to it
//! over a real socket with a deliberately small HTTP/1.1 client (so tests can also send
//! malformed requests).

#![allow(dead_code)]

pub mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TRIBUTI_KEY: &str = "tributi-key";
pub const ANAGRAFE_KEY: &str = "anagrafe-key";
pub const MARKDOWN: &str =
    "Gentile contribuente, e' disponibile l'avviso di pagamento della prima rata TARI 2025. Puoi pagarlo in app.";

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_io-gateway")
}

fn sha256_hex(text: &str) -> String {
    let out = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut child| {
        child.stdin.take().unwrap().write_all(text.as_bytes())?;
        child.wait_with_output()
    });
    String::from_utf8(out.unwrap().stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// A configuration for tests; `extra_storage` lines go into `[storage]`.
pub fn config_text(dir: &Path, extra_storage: &str, allow_test_recipient: bool) -> String {
    let key_file = dir.join("tari.key");
    std::fs::write(&key_file, "io-subscription-key-tari").unwrap();
    format!(
        r#"
[[institutions]]
name = "Comune di Esempio"
fiscal_code = "80000000010"
  [[institutions.services]]
  name = "tari"
  service_id = "01JTESTSERVICETARI"
  primary_key = {{ file = "{key}" }}
  [[institutions.services]]
  name = "anagrafe"
  service_id = "01JTESTSERVICEANAGRAFE"
  primary_key = {{ file = "{key}" }}

[[clients]]
name = "tributi"
key_sha256 = "{tributi}"
services = ["tari"]

[[clients]]
name = "anagrafe-legacy"
key_sha256 = "{anagrafe}"
services = ["anagrafe", "tari"]
default_service = "anagrafe"

[io]
base_url = "http://127.0.0.1:9/api/v1"
allow_test_recipient = {allow_test_recipient}

[local_api]
listen = "127.0.0.1:0"
max_body_bytes = 4096

[storage]
path = "{db}"
min_free_disk_mb = 0
{extra_storage}
"#,
        key = key_file.display(),
        tributi = sha256_hex(TRIBUTI_KEY),
        anagrafe = sha256_hex(ANAGRAFE_KEY),
        db = dir.join("queue.db").display(),
    )
}

/// A running gateway process.
pub struct Gateway {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway with the test configuration in a fresh temp dir.
    pub fn start(dir: &Path, extra_storage: &str) -> Gateway {
        let config = dir.join("gateway.toml");
        std::fs::write(&config, config_text(dir, extra_storage, false)).unwrap();
        Gateway::start_with(dir, &config)
    }

    /// Starts `io-gateway run` without waiting for `/health` (for a TLS listener).
    pub fn start_unprobed(dir: &Path, config: &Path) -> Gateway {
        Gateway::spawn(dir, config, &[])
    }

    /// Starts `io-gateway run --config config` and waits until it answers `/health`.
    pub fn start_with(dir: &Path, config: &Path) -> Gateway {
        let gateway = Gateway::spawn(dir, config, &[]);
        gateway.wait_healthy();
        gateway
    }

    /// Like `start`, with extra arguments to `run` (e.g. `--verbose`).
    pub fn start_args(dir: &Path, args: &[&str]) -> Gateway {
        let config = dir.join("gateway.toml");
        std::fs::write(&config, config_text(dir, "", false)).unwrap();
        let gateway = Gateway::spawn(dir, &config, args);
        gateway.wait_healthy();
        gateway
    }

    /// Starts the process and waits for the address it logs.
    fn spawn(dir: &Path, config: &Path, args: &[&str]) -> Gateway {
        let mut child = Command::new(binary())
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("address=").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start; log: {:#?}", log.lock().unwrap());
            }
        };
        Gateway { dir: dir.to_path_buf(), config: config.to_path_buf(), addr, child, log, reader: Some(reader) }
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.try_request("GET", "/health", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway never became healthy");
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.try_request(method, path, headers, body).unwrap()
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        request(self.addr, method, path, headers, body)
    }

    /// POSTs JSON with a client key.
    pub fn post(&self, path: &str, key: &str, body: &serde_json::Value, extra: &[(&str, &str)]) -> Response {
        let mut headers = vec![("Ocp-Apim-Subscription-Key", key), ("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        self.request("POST", path, &headers, body.to_string().as_bytes())
    }

    pub fn get(&self, path: &str, key: &str) -> Response {
        self.request("GET", path, &[("Ocp-Apim-Subscription-Key", key)], b"")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM.
    pub fn signal_term(&self) {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit and its log to be read whole.
    pub fn terminate(self) -> (ExitStatus, Vec<String>) {
        self.signal_term();
        self.wait_exit()
    }

    /// Waits for the process to exit (30 s at most) and for its whole log.
    pub fn wait_exit(mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                return (status, self.log.lock().unwrap().clone());
            }
            assert!(Instant::now() < deadline, "gateway did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a log line contains `text`.
    pub fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
            assert!(Instant::now() < deadline, "no log line with {text:?}: {:#?}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Response { status, headers, body: raw[split + 4..].to_vec() })
}

/// A valid message body with the fiscal code in the body.
pub fn message(fiscal_code: &str, marker: &str) -> serde_json::Value {
    serde_json::json!({
        "fiscal_code": fiscal_code,
        "content": {
            "subject": "TARI 2025: avviso di pagamento",
            "markdown": format!("{MARKDOWN} [{marker}]"),
            "due_date": "2025-07-31T21:59:59.000Z",
            "payment_data": {
                "amount": 15000,
                "notice_number": "301202500000000281",
                "payee": { "fiscal_code": "80000000010" }
            }
        }
    })
}
