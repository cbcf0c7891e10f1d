//! `tls`: how many full TLS handshakes per second the gateway's local API completes. The
//! real gateway serves its API over TLS with a throw-away ECDSA P-256 certificate; clients
//! (rustls with ring, session resumption off) open a fresh connection each time, complete
//! the handshake, fetch `/health` and close.

use crate::daemon::{Daemon, DaemonError};
use crate::http_client::{self, Request};
use crate::latency::{self, Latencies};
use crate::report::{Section, Verdict};
use crate::setup::{self, GatewaySetup, Io, SetupError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub duration: Duration,
    /// Client threads handshaking at once.
    pub clients: usize,
    pub min_handshakes_per_second: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a scratch directory in {dir}: {source}")]
    Scratch { dir: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Process(#[from] DaemonError),
    #[error("cannot read the test CA {path}: {source}")]
    Ca { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("cannot build the TLS client: {0}")]
    Client(#[from] rustls::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// One connection's result.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("handshake: {0}")]
    Handshake(std::io::Error),
    #[error("request: {0}")]
    Request(std::io::Error),
    #[error("/health answered {0:?}")]
    Answer(Option<u16>),
}

/// What one handshake negotiated.
struct Negotiated {
    version: String,
    suite: String,
}

#[derive(Default)]
struct Tally {
    handshakes: Latencies,
    errors: Vec<String>,
    negotiated: Option<Negotiated>,
}

pub fn run(options: &TlsOptions) -> Result<Section, TlsError> {
    let scratch = tempfile::Builder::new()
        .prefix("hw-tls-")
        .tempdir_in(&options.dir)
        .map_err(|source| TlsError::Scratch { dir: options.dir.clone(), source })?;
    let dir = scratch.path();
    let pki = setup::certificates(dir)?;
    let client = setup::client_key()?;
    let setup = GatewaySetup { dir, listen: "127.0.0.1:0", io: Io::Unreachable, api_tls: Some(&pki), client: &client };
    let config = Arc::new(client_config(&pki.ca_certificate)?);
    let mut gateway = Daemon::gateway(&options.binary, &setup::gateway_config(&setup)?)?;
    let probe = Arc::clone(&config);
    gateway.wait_ready(|addr| handshake(addr, &probe).is_ok())?;

    let clients = options.clients.max(1);
    let started = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..clients {
        let (config, addr, duration) = (Arc::clone(&config), gateway.addr(), options.duration);
        let thread = std::thread::Builder::new().name("handshaker".into()).spawn(move || {
            let mut tally = Tally::default();
            while started.elapsed() < duration || (tally.handshakes.is_empty() && tally.errors.len() < 10) {
                match handshake(addr, &config) {
                    Ok((took, negotiated)) => {
                        tally.handshakes.push(took);
                        tally.negotiated.get_or_insert(negotiated);
                    }
                    Err(e) => tally.errors.push(e.to_string()),
                }
            }
            tally
        });
        threads.push(thread.map_err(TlsError::Thread)?);
    }
    let mut all = Tally::default();
    for thread in threads {
        if let Ok(t) = thread.join() {
            all.handshakes.extend(t.handshakes);
            all.errors.extend(t.errors);
            all.negotiated = all.negotiated.or(t.negotiated);
        }
    }
    let elapsed = started.elapsed();
    let stopped = gateway.terminate(STOP_GRACE);

    let mut section = Section::new(
        "TLS: handshakes on the local API",
        format!(
            "io-gateway run serving its local API over TLS (throw-away ECDSA P-256 certificate); {clients} client \
             thread(s) on this machine, each opening a fresh TCP connection, completing a full handshake (rustls \
             with ring, no session resumption), fetching /health and closing, for {:.1} s. Client and server \
             share the CPUs, so the figure is a floor for the server alone.",
            options.duration.as_secs_f64()
        ),
    );
    let rate = latency::rate(all.handshakes.len(), elapsed);
    section.figure("full handshakes (each with a /health request)", all.handshakes.len().to_string());
    section.figure("handshakes per second", format!("{rate:.0}"));
    if let Some(s) = all.handshakes.summary() {
        section.figure("handshake latency (connect to handshake done)", s.describe());
    }
    if let Some(n) = &all.negotiated {
        section.figure("negotiated", format!("{}, {}", n.version, n.suite));
    }
    section.figure("failed connections", all.errors.len().to_string());
    section.check(
        "every handshake succeeded",
        Verdict::from_ok(all.errors.is_empty() && !all.handshakes.is_empty()),
        all.errors.first().cloned().unwrap_or_else(|| "no error".into()),
    );
    section.check(
        format!("handshakes per second ≥ {}", options.min_handshakes_per_second),
        Verdict::from_ok(rate >= options.min_handshakes_per_second),
        format!("{rate:.0}/s"),
    );
    if let Err(e) = stopped {
        section.check("gateway stopped on SIGTERM", Verdict::Fail, e.to_string());
    }
    Ok(section)
}

/// A client that trusts only the test CA, never resumes a session, ring only.
fn client_config(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let ca_error = |source| TlsError::Ca { path: ca.to_path_buf(), source };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(ca_error)? {
        roots.add(cert.map_err(ca_error)?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// One fresh connection: handshake (timed), `GET /health`, close.
fn handshake(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Result<(Duration, Negotiated), HandshakeError> {
    let started = Instant::now();
    let tcp = TcpStream::connect_timeout(&addr, http_client::TIMEOUT).map_err(HandshakeError::Connect)?;
    tcp.set_read_timeout(Some(http_client::TIMEOUT)).map_err(HandshakeError::Connect)?;
    let name = ServerName::try_from("localhost").map_err(|e| HandshakeError::Connect(std::io::Error::other(e)))?;
    let connection = rustls::ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| HandshakeError::Handshake(std::io::Error::other(e)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(HandshakeError::Handshake)?;
    }
    let took = started.elapsed();
    let negotiated = Negotiated {
        version: tls.conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
        suite: tls.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default(),
    };
    let request = Request { method: "GET", path: "/health", headers: &[], body: b"" };
    let raw = http_client::exchange_on(&mut tls, "localhost", &request).map_err(HandshakeError::Request)?;
    match http_client::parse(&raw).map(|r| r.status) {
        Ok(200) => Ok((took, negotiated)),
        other => Err(HandshakeError::Answer(other.ok())),
    }
}
