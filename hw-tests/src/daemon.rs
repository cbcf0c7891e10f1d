//! The processes under test: `io-gateway run` and `io-gateway sandbox` as real child
//! processes. Each logs `address=…` once it listens (port 0 here, so the OS picks); this
//! reads that line, keeps the log's tail for the report, and stops the process with
//! SIGTERM (and a deadline) or SIGKILL.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many of a process's last log lines are kept.
const LOG_TAIL: usize = 200;
/// How long a process may take to listen, or to become ready after that.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot start {binary} ({name}): {source}")]
    Spawn { name: &'static str, binary: PathBuf, source: std::io::Error },
    #[error("{name} did not say where it listens within {seconds} s; its log ends with: {log}")]
    NoAddress { name: &'static str, seconds: u64, log: String },
    #[error("{name} did not become ready within {seconds} s; its log ends with: {log}")]
    NotReady { name: &'static str, seconds: u64, log: String },
    #[error("{name} did not stop within {seconds} s of SIGTERM (killed)")]
    NoStop { name: &'static str, seconds: u64 },
    #[error("cannot signal or wait for {name}: {source}")]
    Signal { name: &'static str, source: std::io::Error },
}

/// A running child process that listens on an address.
pub struct Daemon {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
    reader: Option<JoinHandle<()>>,
}

/// How a process ended after SIGTERM.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub log: Vec<String>,
}

impl Daemon {
    /// `io-gateway run --config CONFIG`.
    pub fn gateway(binary: &Path, config: &Path) -> Result<Daemon, DaemonError> {
        Daemon::start(binary, "io-gateway run", &[OsStr::new("run"), OsStr::new("--config"), config.as_os_str()])
    }

    /// `io-gateway sandbox --config CONFIG`.
    pub fn sandbox(binary: &Path, config: &Path) -> Result<Daemon, DaemonError> {
        Daemon::start(
            binary,
            "io-gateway sandbox",
            &[OsStr::new("sandbox"), OsStr::new("--config"), config.as_os_str()],
        )
    }

    /// Starts `binary args…` and waits for the line with its address.
    pub fn start(binary: &Path, name: &'static str, args: &[&OsStr]) -> Result<Daemon, DaemonError> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DaemonError::Spawn { name, binary: binary.to_path_buf(), source })?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_TAIL)));
        let (found, address) = std::sync::mpsc::channel();
        let reader = child.stderr.take().map(|stderr| {
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line.split("address=").nth(1).and_then(|a| a.split_whitespace().next()) {
                        let _ = found.send(addr.to_string());
                    }
                    if let Ok(mut log) = sink.lock() {
                        if log.len() == LOG_TAIL {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                }
            })
        });
        let mut daemon = Daemon { name, child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), log, reader };
        match address.recv_timeout(START_TIMEOUT).ok().and_then(|a| a.parse().ok()) {
            Some(addr) => {
                daemon.addr = addr;
                Ok(daemon)
            }
            None => Err(DaemonError::NoAddress { name, seconds: START_TIMEOUT.as_secs(), log: daemon.log_tail(5) }),
        }
    }

    /// Polls `ready` every 20 ms until it says yes, the process exits, or the deadline.
    pub fn wait_ready(&mut self, mut ready: impl FnMut(SocketAddr) -> bool) -> Result<(), DaemonError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if ready(self.addr) {
                return Ok(());
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(DaemonError::NotReady { name: self.name, seconds: START_TIMEOUT.as_secs(), log: self.log_tail(5) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` log lines, joined with " / ".
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().map(|l| l.iter().cloned().collect::<Vec<_>>()).unwrap_or_default();
        log[log.len().saturating_sub(n)..].join(" / ")
    }

    /// SIGKILL, as a crash: nothing of the process's own runs.
    pub fn kill(mut self) -> Result<(), DaemonError> {
        let name = self.name;
        self.child
            .kill()
            .and_then(|()| self.child.wait())
            .map(drop)
            .map_err(|source| DaemonError::Signal { name, source })
    }

    /// SIGTERM, then waits up to `grace` for the process to exit (SIGKILL after that),
    /// and for its whole log.
    pub fn terminate(mut self, grace: Duration) -> Result<Stopped, DaemonError> {
        let name = self.name;
        let signal = |source| DaemonError::Signal { name, source };
        let pid = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw);
        let pid = pid.ok_or_else(|| signal(std::io::Error::other("no such process id")))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .map_err(|e| signal(std::io::Error::from(e)))?;
        let deadline = Instant::now() + grace;
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(signal)? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(DaemonError::NoStop { name, seconds: grace.as_secs() });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let log = self.log.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default();
        Ok(Stopped { status, log })
    }
}

impl Drop for Daemon {
    /// Never leaves a process behind, whatever went wrong.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
