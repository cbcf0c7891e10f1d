//! `power-cut`: does a 201 survive pulling the plug? `prepare` writes a scratch gateway's
//! configuration (its queue on the storage under test, IO unreachable so nothing leaves
//! the machine); `write` posts to it while it runs, keeping a ledger of every id it
//! acknowledged; the operator cuts the power; `verify` counts after boot. `simulate`
//! does all of it here with SIGKILL instead of a power cut: a real process, a real
//! database, so CI proves the procedure itself works.

pub mod ledger;
pub mod verify;

use crate::daemon::{Daemon, DaemonError};
use crate::latency;
use crate::queue_file::QueueFileError;
use crate::report::{Section, Verdict};
use crate::setup::{self, GatewaySetup, Io, SetupError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use ledger::{WriteOptions, Written};

#[derive(Debug, thiserror::Error)]
pub enum PowerCutError {
    #[error("{url}: {reason}")]
    Url { url: String, reason: String },
    #[error("the ledger {path}: {source}")]
    Ledger { path: PathBuf, source: std::io::Error },
    #[error("no gateway answers at {url}: {reason}")]
    NoGateway { url: String, reason: String },
    #[error("{url} answered {status} (a retry will not change that): {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("{path} already holds a queue: use a fresh directory for each procedure")]
    QueueExists { path: PathBuf },
    #[error("cannot use the directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("a posting thread panicked")]
    Panicked,
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Process(#[from] DaemonError),
    #[error(transparent)]
    Queue(#[from] QueueFileError),
}

/// The files `prepare` wrote.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub config: PathBuf,
    /// The client key, 0600.
    pub key_file: PathBuf,
    pub database: PathBuf,
}

/// Writes a scratch gateway's configuration into `dir` (created if needed), listening
/// on `listen`, and its client key.
pub fn prepare(dir: &Path, listen: &str) -> Result<Prepared, PowerCutError> {
    let io = |source| PowerCutError::Directory { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let database = dir.join("queue.db");
    if database.exists() {
        return Err(PowerCutError::QueueExists { path: database });
    }
    let client = setup::client_key()?;
    let config =
        setup::gateway_config(&GatewaySetup { dir, listen, io: Io::Unreachable, api_tls: None, client: &client })?;
    let key_file = setup::write_private(&dir.join("client.key"), &client.key)?;
    Ok(Prepared { config, key_file, database })
}

/// `power-cut write` as a report section (written if the power outlives it).
pub fn write_section(options: &WriteOptions, written: &Written) -> Section {
    let mut section = Section::new(
        "Power cut: write",
        format!(
            "{} messages posted to {} by {} client(s); each id answered 201 appended to {} and fsync'd before \
             that client's next post.",
            options.count,
            options.url,
            options.clients,
            options.ledger.display()
        ),
    );
    section.figure("acknowledged (in the ledger)", written.acknowledged.to_string());
    section.figure(
        "acknowledged per second",
        format!("{:.0}", latency::rate(written.acknowledged as usize, written.elapsed)),
    );
    if let Some(s) = written.latencies.summary() {
        section.figure("post latency (201)", s.describe());
    }
    section.figure("503 answers (retried)", written.backpressure.to_string());
    let detail = match &written.stopped_by {
        Some(reason) => format!("stopped early, the gateway went away (expected if the power was cut): {reason}"),
        None => format!("all {} acknowledged", written.acknowledged),
    };
    section.check("write ran", Verdict::Pass, detail);
    section
}

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub binary: PathBuf,
    /// Holds the configuration, queue and ledger afterwards (must hold no queue yet).
    pub dir: PathBuf,
    pub count: u64,
    pub clients: usize,
}

/// The procedure with SIGKILL for the power cut: prepare, start the gateway, write,
/// kill it half-way, verify, and check the gateway starts again on that database.
pub fn simulate(options: &SimulateOptions) -> Result<Section, PowerCutError> {
    let prepared = prepare(&options.dir, "127.0.0.1:0")?;
    let mut gateway = Daemon::gateway(&options.binary, &prepared.config)?;
    gateway.wait_ready(crate::soak::healthy)?;
    let key = std::fs::read_to_string(&prepared.key_file)
        .map_err(|source| PowerCutError::Directory { path: options.dir.clone(), source })?;
    let write = WriteOptions {
        url: format!("http://{}", gateway.addr()),
        key,
        count: options.count,
        ledger: options.dir.join("ledger.txt"),
        clients: options.clients,
    };
    let acked = AtomicU64::new(0);
    let kill_after = (options.count / 2).max(1);
    let (written, at_kill, killed) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| ledger::write(&write, &acked));
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::Relaxed) < kill_after && !writer.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let at_kill = acked.load(Ordering::Relaxed);
        let killed = gateway.kill();
        (writer.join().unwrap_or(Err(PowerCutError::Panicked)), at_kill, killed)
    });
    killed?;
    let written = written?;
    let verification = verify::verify(&prepared.database, &write.ledger)?;
    let mut restarted = Daemon::gateway(&options.binary, &prepared.config)?;
    let restart = restarted.wait_ready(crate::soak::healthy).map(|()| restarted.terminate(Duration::from_secs(30)));

    let mut section = Section::new(
        "Power cut, simulated with kill -9",
        format!(
            "io-gateway run on a queue in {}; {} client(s) posting up to {} messages, each 201 appended to the \
             ledger and fsync'd; SIGKILL once {} were acknowledged; then `power-cut verify` on the database and \
             a restart of the gateway on it. (SIGKILL loses no page cache: only a real power cut tests the disk.)",
            options.dir.display(),
            options.clients,
            options.count,
            kill_after
        ),
    );
    section.figure("acknowledged when killed", at_kill.to_string());
    section.figure("acknowledged in all (in flight at the kill, answered)", written.acknowledged.to_string());
    section.check(
        "killed while messages were being posted",
        Verdict::from_ok(written.stopped_by.is_some() && written.acknowledged < options.count),
        match &written.stopped_by {
            Some(reason) => format!("posting stopped: {reason}"),
            None => "every message was acknowledged before the kill: raise --count".into(),
        },
    );
    verification.describe(&mut section);
    let restart_detail = match restart {
        Ok(Ok(stopped)) if stopped.status.success() => Ok("recovered, served /health, stopped cleanly".to_string()),
        Ok(Ok(stopped)) => Err(format!("exited with {} after SIGTERM", stopped.status)),
        Ok(Err(e)) | Err(e) => Err(e.to_string()),
    };
    let ok = restart_detail.is_ok();
    section.check(
        "gateway restarts on the killed database",
        Verdict::from_ok(ok),
        restart_detail.unwrap_or_else(|e| e),
    );
    Ok(section)
}
