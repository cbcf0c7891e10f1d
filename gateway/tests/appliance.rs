//! The daemon as systemd and Prometheus see it, run as the real binary: `/metrics` after
//! real deliveries to the sandbox, the notify protocol (READY, WATCHDOG, RELOADING,
//! STOPPING) and SIGHUP reloads that keep the old file when the new one is bad.

mod support;

use gateway::sandbox::{Sandbox, SandboxConfig};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{message, request, Response, TRIBUTI_KEY};

const NOT_ON_IO: &str = "VRDGPP50T01H501B";

/// A sandbox playing IO over plain loopback HTTP, with one citizen not on IO.
async fn sandbox() -> Sandbox {
    let config = format!(
        "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\n\
         [[services]]\nservice_id = \"01JTESTSERVICETARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n\
         [[services]]\nservice_id = \"01JTESTSERVICEANAGRAFE\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n\
         [[citizens]]\nfiscal_code = \"{NOT_ON_IO}\"\nprofile = \"not_on_io\"\n"
    );
    Sandbox::start(SandboxConfig::from_toml_str(&config).unwrap()).await.unwrap()
}

/// The tests' configuration pointed at `base_url`, with a metrics listener on port 0.
fn config_with(dir: &Path, base_url: &str, extra: &str) -> std::path::PathBuf {
    let text = support::config_text(dir, "", false)
        .replace("base_url = \"http://127.0.0.1:9/api/v1\"", &format!("base_url = \"{base_url}\""))
        + &format!("\n[delivery]\nfirst_poll_after_seconds = 1\n[metrics]\nlisten = \"127.0.0.1:{}\"\n", free_port())
        + extra;
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A port free a moment ago: `status` needs the metrics listener's real port in the
/// configuration (the daemon still binds before it says it is ready, so a clash fails
/// loudly rather than flakily).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A gateway process whose log is collected; the metrics URL is read from the log.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(config: &Path, notify: Option<&Path>) -> Daemon {
        // `exec` keeps the shell's pid, so WATCHDOG_PID can name the gateway itself.
        let script =
            format!("export WATCHDOG_PID=$$; exec '{}' run --config '{}'", support::binary(), config.display());
        let mut command = Command::new("sh");
        command.args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(socket) = notify {
            command.env("NOTIFY_SOCKET", socket).env("WATCHDOG_USEC", "200000");
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, log }
    }

    fn wait_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {text:?}; log: {:#?}", self.log.lock().unwrap());
    }

    fn field(&self, marker: &str, key: &str) -> String {
        let line = self.wait_log(marker);
        let value = line.split(&format!(" {key}=")).nth(1).unwrap().split_whitespace().next().unwrap();
        value.to_string()
    }

    fn api(&self) -> SocketAddr {
        self.field("listening", "address").parse().unwrap()
    }

    fn metrics(&self) -> String {
        let url = self.field("metrics listener ready", "url");
        let addr: SocketAddr = url.trim_start_matches("http://").trim_end_matches("/metrics").parse().unwrap();
        let response = request(addr, "GET", "/metrics", &[], b"").unwrap();
        assert_eq!(response.status, 200);
        assert!(response.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
        String::from_utf8(response.body).unwrap()
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        kill_process(pid, signal).unwrap();
    }

    fn wait_exit(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the gateway did not stop");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample `name{labels}` (labels as printed, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn post(addr: SocketAddr, fiscal_code: &str, marker: &str) -> Response {
    let body = message(fiscal_code, marker).to_string();
    let headers = [("Ocp-Apim-Subscription-Key", TRIBUTI_KEY), ("Content-Type", "application/json")];
    request(addr, "POST", "/api/v1/messages", &headers, body.as_bytes()).unwrap()
}

fn state_of(addr: SocketAddr, location: &str) -> String {
    let response = request(addr, "GET", location, &[("Ocp-Apim-Subscription-Key", TRIBUTI_KEY)], b"").unwrap();
    let view: Value = serde_json::from_slice(&response.body).unwrap();
    view["gateway"]["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_deliveries_refusals_and_queue_state() {
    let io = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), &io.base_url(), "");
    let daemon = tokio::task::spawn_blocking(move || {
        let daemon = Daemon::start(&config, None);
        let api = daemon.api();
        let mut locations = Vec::new();
        for (fc, marker) in [("BNCLRA85C52F205V", "m1"), ("BNCLRA85C52F205V", "m2"), (NOT_ON_IO, "m3")] {
            let response = post(api, fc, marker);
            assert_eq!(response.status, 201);
            locations.push(response.header("location").unwrap().to_string());
        }
        let invalid = post(api, "BNCLRA85C52F205X", "bad check letter");
        assert_eq!(invalid.status, 400);
        let deadline = Instant::now() + Duration::from_secs(30);
        let finals = ["processed", "not_on_io"];
        while !locations.iter().all(|l| finals.contains(&state_of(api, l).as_str())) {
            if Instant::now() > deadline {
                let states: Vec<String> = locations.iter().map(|l| state_of(api, l)).collect();
                panic!("messages did not reach their final states: {states:?}; log: {:#?}", daemon.log.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    })
    .await
    .unwrap();
    let status_config = dir.path().join("gateway.toml");
    let (text, status) = tokio::task::spawn_blocking(move || {
        let text = daemon.metrics();
        let out = Command::new(support::binary()).arg("status").arg("--config").arg(&status_config).output().unwrap();
        drop(daemon);
        (text, String::from_utf8_lossy(&out.stdout).to_string())
    })
    .await
    .unwrap();
    // `status` reads the live budget from the daemon's /metrics.
    assert!(status.contains("daemon:             answering (metrics on 127.0.0.1:"), "{status}");
    assert!(status.contains("rate budget:        Comune di Esempio: 150 calls per 5 s; now "), "{status}");

    let inst = r#"institution="Comune di Esempio""#;
    let checks = [
        (format!(r#"io_gateway_messages_accepted_total{{{inst},service="tari",source="api"}}"#), 3.0),
        (r#"io_gateway_messages_refused_total{reason="invalid"}"#.to_string(), 1.0),
        (format!(r#"io_gateway_messages_sent_total{{{inst},service="tari"}}"#), 2.0),
        (format!(r#"io_gateway_messages_final_total{{{inst},outcome="processed",service="tari"}}"#), 2.0),
        (format!(r#"io_gateway_messages_final_total{{{inst},outcome="not_on_io",service="tari"}}"#), 1.0),
        (format!(r#"io_gateway_io_responses_total{{code="201",{inst},operation="submit"}}"#), 2.0),
        (format!(r#"io_gateway_io_responses_total{{code="404",{inst},operation="profile"}}"#), 1.0),
        (r#"io_gateway_queue_messages{priority="normal",state="processed"}"#.to_string(), 2.0),
        (r#"io_gateway_queue_messages{priority="normal",state="not_on_io"}"#.to_string(), 1.0),
        (r#"io_gateway_queue_messages{priority="normal",state="queued"}"#.to_string(), 0.0),
        (format!(r#"io_gateway_rate_budget_calls{{{inst}}}"#), 150.0),
        (format!(r#"io_gateway_delivery_latency_seconds_count{{{inst}}}"#), 2.0),
        ("io_gateway_queue_oldest_message_age_seconds".to_string(), 0.0),
    ];
    for (series, expected) in checks {
        assert_eq!(sample(&text, &series), Some(expected), "{series} in:\n{text}");
    }
    // Two profile checks, two sends and at least two status polls spent budget.
    let used = sample(&text, &format!(r#"io_gateway_rate_budget_used_calls_total{{{inst}}}"#)).unwrap();
    assert!(used >= 6.0, "{used}");
    assert!(sample(&text, "io_gateway_database_size_bytes").unwrap() > 0.0);
    assert!(sample(&text, "io_gateway_disk_free_bytes").unwrap() > 0.0);
    assert!(sample(&text, "io_gateway_io_last_contact_timestamp_seconds").unwrap() > 1.7e9);
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    let build = format!(
        r#"io_gateway_build_info{{arch="{}",version="{}"}}"#,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), Some(1.0), "{text}");
}

/// Reads notify datagrams until one contains every line of `wanted`.
fn expect_notify(socket: &UnixDatagram, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 4096];
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buffer) {
            let datagram = String::from_utf8_lossy(&buffer[..n]).to_string();
            if wanted.iter().all(|w| datagram.lines().any(|l| l.starts_with(w))) {
                return datagram;
            }
            seen.push(datagram);
        }
    }
    panic!("no notification with {wanted:?}; got {seen:?}");
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let config = config_with(dir.path(), "http://127.0.0.1:9/api/v1", "");
    let daemon = Daemon::start(&config, Some(&socket_path));

    expect_notify(&socket, &["READY=1"]);
    // The daemon answers once READY is sent.
    let health = request(daemon.api(), "GET", "/health", &[], b"").unwrap();
    assert_eq!(health.status, 200);
    // WATCHDOG_USEC=200000: a ping every 100 ms while the queue's writer answers.
    expect_notify(&socket, &["WATCHDOG=1"]);
    expect_notify(&socket, &["WATCHDOG=1"]);

    daemon.signal(Signal::HUP);
    expect_notify(&socket, &["RELOADING=1", "MONOTONIC_USEC="]);
    expect_notify(&socket, &["READY=1"]);
    daemon.wait_log("reload complete");

    daemon.signal(Signal::TERM);
    expect_notify(&socket, &["STOPPING=1"]);
    assert_eq!(daemon.wait_exit(), 0);
}

/// The DER of the certificate the local API presents on a fresh connection.
fn served_certificate(addr: SocketAddr, cas: &[&Path]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(rustls::pki_types::CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(addr).unwrap());
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn der_of(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[test]
fn sighup_swaps_certificates_and_keys_and_keeps_the_old_ones_when_the_new_are_bad() {
    use gateway::test_pki::{generate, ServerKey};
    let dir = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    let old = generate(&old_dir, ServerKey::Ecdsa, "old").unwrap();
    let new = generate(&new_dir, ServerKey::Ecdsa, "new").unwrap();
    let (cert, key) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    std::fs::copy(&old.server_certificate, &cert).unwrap();
    std::fs::copy(&old.server_key, &key).unwrap();
    let tls = format!("\n[local_api.tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n", cert.display(), key.display());
    let text = support::config_text(dir.path(), "", false)
        .replace("max_body_bytes = 4096", &format!("max_body_bytes = 4096{tls}"));
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config, None);
    let api = daemon.api();
    let cas = [old.ca_certificate.as_path(), new.ca_certificate.as_path()];
    assert_eq!(served_certificate(api, &cas), der_of(&old.server_certificate));

    // New certificate and key, and a new IO key: all taken on SIGHUP.
    std::fs::copy(&new.server_certificate, &cert).unwrap();
    std::fs::copy(&new.server_key, &key).unwrap();
    std::fs::write(dir.path().join("tari.key"), "a-new-io-key").unwrap();
    daemon.signal(Signal::HUP);
    daemon.wait_log("reload complete");
    daemon.wait_log("new IO subscription keys in use");
    assert_eq!(served_certificate(api, &cas), der_of(&new.server_certificate));
    let status = Command::new(support::binary()).arg("status").arg("--config").arg(&config).output().unwrap();
    let status = format!("{}{}", String::from_utf8_lossy(&status.stdout), String::from_utf8_lossy(&status.stderr));
    assert!(status.contains("certificate:        local API: valid until"), "{status}");

    // A certificate that does not match its key, and a missing IO key: refused, the
    // ones in use stay, and the log says why.
    std::fs::copy(&old.server_certificate, &cert).unwrap();
    std::fs::remove_file(dir.path().join("tari.key")).unwrap();
    daemon.signal(Signal::HUP);
    daemon.wait_log("the local API keeps its old certificate");
    daemon.wait_log("keeping the old IO subscription key");
    daemon.wait_log("reload finished with files refused");
    assert_eq!(served_certificate(api, &cas), der_of(&new.server_certificate));

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(), 0);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_files_certificates_and_a_real_mtls_call_to_io() {
    use gateway::test_pki::{generate, ServerKey};
    let dir = tempfile::tempdir().unwrap();
    let pki = generate(dir.path(), ServerKey::Ecdsa, "Comune di Esempio").unwrap();
    let sandbox_config = format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nclient_ca = \"{}\"\n\
         [[services]]\nservice_id = \"01JTESTSERVICETARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n\
         [[services]]\nservice_id = \"01JTESTSERVICEANAGRAFE\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n",
        pki.server_certificate.display(),
        pki.server_key.display(),
        pki.ca_certificate.display()
    );
    let io = Sandbox::start(SandboxConfig::from_toml_str(&sandbox_config).unwrap()).await.unwrap();
    let io_section = format!(
        "base_url = \"{}\"\nclient_certificate = \"{}\"\nclient_key = \"{}\"\nca_bundle = \"{}\"",
        io.base_url(),
        pki.client_certificate.display(),
        pki.client_key.display(),
        pki.ca_certificate.display()
    );
    let text =
        support::config_text(dir.path(), "", false).replace("base_url = \"http://127.0.0.1:9/api/v1\"", &io_section);
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    for file in [&config, &pki.client_key, &dir.path().join("tari.key")] {
        chmod(file, 0o600);
    }
    let doctor = |config: &Path| {
        let out = Command::new(support::binary()).arg("doctor").arg("--config").arg(config).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };

    let config_path = config.clone();
    let (code, text) = tokio::task::spawn_blocking(move || doctor(&config_path)).await.unwrap();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ok    IO           tari primary key of Comune di Esempio: TLS handshake and key accepted"),
        "{text}"
    );
    assert!(text.contains("ok    clock"), "{text}");
    assert!(text.contains("IO client") && text.contains("the key matches the certificate"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    let line_of = |text: &str, what: &str| text.lines().find(|l| l.contains(what)).unwrap_or_default().to_string();
    assert!(line_of(&text, "data keys").contains("no data keys"), "{text}");

    // A data key others may read: the configuration check names it.
    let data_keys = dir.path().join("data-keys");
    gateway::seal::key_dir::generate(&data_keys).unwrap();
    chmod(&data_keys.join("data-1.key"), 0o644);
    let config_path = config.clone();
    let (code, text) = tokio::task::spawn_blocking(move || doctor(&config_path)).await.unwrap();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("storage.data_key_directory") && text.contains("data-1.key") && text.contains("0600"),
        "{text}"
    );
    chmod(&data_keys.join("data-1.key"), 0o600);

    // A world-readable client key and a subscription key IO refuses: both named, exit 1.
    chmod(&pki.client_key, 0o644);
    std::fs::write(dir.path().join("tari.key"), "not-the-key").unwrap();
    let config_path = config.clone();
    let (code, text) = tokio::task::spawn_blocking(move || doctor(&config_path)).await.unwrap();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  permissions  IO client key") && text.contains("readable by every user"), "{text}");
    assert!(text.contains("IO refuses this subscription key (401)"), "{text}");
    assert!(line_of(&text, "data keys").contains("beside the database"), "{text}");
    assert!(text.contains("fix the FAIL lines first"), "{text}");
}
