//! The `io-gateway-hw-tests` command: parses the command line, runs the tests it names,
//! writes the report and exits 0 (every check passed), 1 (a check failed) or 2 (a test
//! could not run).

use clap::{Args, Parser, Subcommand};
use hw_tests::binary::{self, BinaryError};
use hw_tests::machine::Machine;
use hw_tests::power_cut::{self, ledger, SimulateOptions, WriteOptions};
use hw_tests::report::{Report, Section};
use hw_tests::suite::{self, defaults, SuiteOptions};
use hw_tests::{soak, storage, tls};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "io-gateway-hw-tests", version, about = "Hardware tests for an io-gateway appliance, with a report")]
struct Cli {
    /// Where to write the report (default: hw-report-<host>-<UTC time>.md in the current directory).
    #[arg(long, global = true, value_name = "FILE")]
    report: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Raw fsync rate and latency, and SQLite commits with the gateway's settings, in DIR.
    Storage {
        /// A scratch directory on the storage the queue will live on.
        #[arg(long)]
        dir: PathBuf,
        /// How long each of the two measurements runs.
        #[arg(long, default_value = "10", value_parser = seconds)]
        seconds: Duration,
        #[arg(long, default_value_t = defaults::MIN_FSYNCS_PER_SECOND)]
        min_fsyncs_per_second: f64,
        #[arg(long, default_value_t = defaults::MIN_COMMITS_PER_SECOND)]
        min_commits_per_second: f64,
        #[arg(long, default_value_t = defaults::MAX_COMMIT_P99_MS)]
        max_commit_p99_ms: u64,
    },
    /// The gateway delivering to the IO sandbox at RATE messages/s for MINUTES; memory sampled.
    Soak {
        #[command(flatten)]
        target: Target,
        /// How long to post (fractions allowed: 0.5 is 30 s); an hour says most about memory.
        #[arg(long, default_value = "10", value_parser = minutes)]
        minutes: Duration,
        /// Messages per second (IO's budget delivers about 15/s with a status read each).
        #[arg(long, default_value_t = 5.0, value_parser = positive)]
        rate: f64,
        /// Fail if the gateway's peak resident memory (VmHWM) exceeds this.
        #[arg(long, default_value_t = defaults::MAX_RSS_MIB)]
        max_rss_mib: u64,
        /// Keep the scratch directory (configurations, queue, certificates).
        #[arg(long)]
        keep: bool,
    },
    /// Full TLS handshakes per second against the gateway's local API served over TLS.
    Tls {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value = "10", value_parser = seconds)]
        seconds: Duration,
        /// Client threads (default: one per CPU).
        #[arg(long)]
        clients: Option<usize>,
        #[arg(long, default_value_t = defaults::MIN_HANDSHAKES_PER_SECOND)]
        min_handshakes_per_second: f64,
    },
    /// The power-cut procedure: prepare, write, (cut the power), verify; or simulate it.
    PowerCut {
        #[command(subcommand)]
        command: PowerCut,
    },
    /// Every test with short durations, into one report.
    All {
        #[command(flatten)]
        target: Target,
        /// Shorter still (seconds per test): proves the suite works, measures little.
        #[arg(long)]
        quick: bool,
        /// Keep the scratch directories.
        #[arg(long)]
        keep: bool,
        #[arg(long, default_value_t = defaults::MAX_RSS_MIB)]
        max_rss_mib: u64,
    },
}

#[derive(Args)]
struct Target {
    /// The io-gateway binary (default: $IO_GATEWAY_BIN, io-gateway next to this program or on PATH, /usr/bin/io-gateway).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// A scratch directory on the storage the queue will live on.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum PowerCut {
    /// Write a scratch gateway's configuration and client key into DIR, and print the steps.
    Prepare {
        #[arg(long)]
        dir: PathBuf,
        /// Where the scratch gateway listens (0.0.0.0:PORT when `write` runs on another host).
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: String,
    },
    /// Post COUNT messages to a running gateway, appending each acknowledged id to LEDGER (fsync'd).
    Write {
        /// The gateway's local API, http://HOST:PORT.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        url: Option<String>,
        /// The scratch gateway's configuration (its listen address gives the URL).
        #[arg(long)]
        config: Option<PathBuf>,
        /// File holding the local client key (`prepare` writes DIR/client.key).
        #[arg(long)]
        key_file: PathBuf,
        /// Messages to post at most (the power is meant to go before they are all posted).
        #[arg(long)]
        count: u64,
        /// The ledger: on another medium than the queue (a USB stick, or another host).
        #[arg(long)]
        ledger: PathBuf,
        /// Clients posting at once (they share commits, as in production).
        #[arg(long, default_value_t = defaults::POSTING_CLIENTS)]
        clients: usize,
    },
    /// After the power is back: every id in LEDGER must be in the queue (opened read-only).
    Verify {
        /// The queue database.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        database: Option<PathBuf>,
        /// The scratch gateway's configuration (its [storage] path gives the database).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        ledger: PathBuf,
    },
    /// The whole procedure here, with kill -9 for the power cut; files stay in DIR.
    Simulate {
        #[command(flatten)]
        target: Target,
        /// Messages to post at most; the kill comes after half of them are acknowledged.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Clients posting at once (they share commits, as in production).
        #[arg(long, default_value_t = defaults::POSTING_CLIENTS)]
        clients: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command_line: Vec<String> = std::env::args().collect();
    let (dir, explicit_binary, scratch) = cli.command.context();
    let located = binary::locate(explicit_binary.as_deref());
    if scratch {
        // A failure shows as the test's own error, with the path.
        let _ = std::fs::create_dir_all(&dir);
    }
    let machine = Machine::collect(&dir, located.as_ref().ok().map(PathBuf::as_path));
    let fs_type = machine.mount.as_ref().map(|m| m.fs_type.clone());
    let mut report = Report::new(machine, command_line.join(" "));
    report.sections = execute(cli.command, located, fs_type);
    let path = cli.report.unwrap_or_else(|| report.default_path());
    print_summary(&report.sections);
    let code = report.exit_code();
    match report.write(&path) {
        Ok(()) => println!("report: {} (exit status {code})", path.display()),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(hw_tests::report::EXIT_ERROR);
        }
    }
    ExitCode::from(code)
}

/// Why a command could not run to its end.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Soak(#[from] soak::SoakError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    PowerCut(#[from] power_cut::PowerCutError),
    #[error(transparent)]
    Config(#[from] gateway::config::ConfigError),
    #[error("cannot read the key file {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    /// A command line that clap accepted but that names no target.
    #[error("{0}")]
    Usage(&'static str),
}

impl Command {
    /// The directory the machine facts describe, `--binary`, and whether that directory
    /// is a scratch directory to create.
    fn context(&self) -> (PathBuf, Option<PathBuf>, bool) {
        let parent =
            |p: &Path| p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        match self {
            Command::Storage { dir, .. } => (dir.clone(), None, true),
            Command::Soak { target, .. } | Command::Tls { target, .. } | Command::All { target, .. } => {
                (target.dir.clone(), target.binary.clone(), true)
            }
            Command::PowerCut { command } => match command {
                PowerCut::Prepare { dir, .. } => (dir.clone(), None, true),
                PowerCut::Write { ledger, .. } => (parent(ledger), None, false),
                PowerCut::Verify { database: Some(db), .. } => (parent(db), None, false),
                PowerCut::Verify { config, .. } => (config.as_deref().map(parent).unwrap_or_default(), None, false),
                PowerCut::Simulate { target, .. } => (target.dir.clone(), target.binary.clone(), true),
            },
        }
    }
}

/// Runs the command; `located` is the io-gateway binary, needed by some commands only.
fn execute(command: Command, located: Result<PathBuf, BinaryError>, fs_type: Option<String>) -> Vec<Section> {
    let one = |title: &str, result: Result<Section, CommandError>| {
        vec![result.unwrap_or_else(|e| Section::could_not_run(title, &e))]
    };
    let needs_binary = matches!(
        command,
        Command::Soak { .. }
            | Command::Tls { .. }
            | Command::All { .. }
            | Command::PowerCut { command: PowerCut::Simulate { .. } }
    );
    let binary = match located {
        Ok(binary) => binary,
        Err(e) if needs_binary => return vec![Section::could_not_run("Finding io-gateway", &e)],
        // Not used by this command.
        Err(_) => PathBuf::new(),
    };
    match command {
        Command::Storage { dir, seconds, min_fsyncs_per_second, min_commits_per_second, max_commit_p99_ms } => {
            let options = storage::StorageOptions {
                dir,
                duration: seconds,
                min_fsyncs_per_second,
                min_commits_per_second,
                max_commit_p99: Duration::from_millis(max_commit_p99_ms),
                fs_type,
            };
            one("Storage", storage::run(&options).map_err(CommandError::from))
        }
        Command::Soak { target, minutes, rate, max_rss_mib, keep } => {
            let options = soak::SoakOptions { binary, dir: target.dir, duration: minutes, rate, max_rss_mib, keep };
            one("Soak", soak::run(&options).map_err(CommandError::from))
        }
        Command::Tls { target, seconds, clients, min_handshakes_per_second } => {
            let clients = clients.unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1));
            let options =
                tls::TlsOptions { binary, dir: target.dir, duration: seconds, clients, min_handshakes_per_second };
            one("TLS", tls::run(&options).map_err(CommandError::from))
        }
        Command::All { target, quick, keep, max_rss_mib } => {
            suite::run(&SuiteOptions { binary, dir: target.dir, quick, keep, max_rss_mib, fs_type })
        }
        Command::PowerCut { command: PowerCut::Prepare { dir, listen } } => {
            one("Power cut: prepare", prepare(&dir, &listen))
        }
        Command::PowerCut { command: PowerCut::Write { url, config, key_file, count, ledger, clients } } => {
            one("Power cut: write", write(url, config, &key_file, count, ledger, clients))
        }
        Command::PowerCut { command: PowerCut::Verify { database, config, ledger } } => {
            one("Power cut: verify", verify(database, config, &ledger))
        }
        Command::PowerCut { command: PowerCut::Simulate { target, count, clients } } => {
            let options = SimulateOptions { binary, dir: target.dir, count, clients };
            one("Power cut, simulated with kill -9", power_cut::simulate(&options).map_err(CommandError::from))
        }
    }
}

fn verify(database: Option<PathBuf>, config: Option<PathBuf>, ledger: &Path) -> Result<Section, CommandError> {
    let database = match (database, config) {
        (Some(database), _) => database,
        (None, Some(config)) => gateway::config::Config::load(&config)?.storage.path,
        (None, None) => return Err(CommandError::Usage("give --database or --config")),
    };
    Ok(power_cut::verify::run(&database, ledger)?)
}

fn prepare(dir: &Path, listen: &str) -> Result<Section, CommandError> {
    let prepared = power_cut::prepare(dir, listen)?;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "io-gateway-hw-tests".into());
    let steps = format!(
        "1. start the scratch gateway and leave it running:\n   io-gateway run --config {config}\n\
         2. from another shell (ledger on a USB stick or, better, run this on another host against http://APPLIANCE:PORT):\n   \
         {exe} power-cut write --config {config} --key-file {key} --count 100000 --ledger /media/usb/ledger.txt\n\
         3. while it runs, cut the power (pull the plug, not a shutdown)\n\
         4. after boot, before anything else touches {db}:\n   \
         {exe} power-cut verify --database {db} --ledger /media/usb/ledger.txt",
        config = prepared.config.display(),
        key = prepared.key_file.display(),
        db = prepared.database.display(),
    );
    println!("{steps}");
    let mut section = Section::new(
        "Power cut: prepare",
        format!(
            "A scratch gateway configuration in {}: its queue there, IO unreachable, listening on {listen}.",
            dir.display()
        ),
    );
    section.figure("configuration", prepared.config.display().to_string());
    section.figure("client key (0600)", prepared.key_file.display().to_string());
    section.figure("queue database", prepared.database.display().to_string());
    section.check("prepared", hw_tests::report::Verdict::Pass, "see the steps below");
    section.detail(format!("Next steps:\n\n```\n{steps}\n```"));
    Ok(section)
}

fn write(
    url: Option<String>,
    config: Option<PathBuf>,
    key_file: &Path,
    count: u64,
    ledger: PathBuf,
    clients: usize,
) -> Result<Section, CommandError> {
    let url = match (url, config) {
        (Some(url), _) => url,
        (None, Some(config)) => {
            let listen = gateway::config::Config::load(&config)?.local_api.listen;
            let host = if listen.ip().is_unspecified() { "127.0.0.1".to_string() } else { listen.ip().to_string() };
            format!("http://{host}:{}", listen.port())
        }
        (None, None) => return Err(CommandError::Usage("give --url or --config")),
    };
    let key = std::fs::read_to_string(key_file)
        .map_err(|source| CommandError::KeyFile { path: key_file.to_path_buf(), source })?;
    let options = WriteOptions { url, key: key.trim().to_string(), count, ledger, clients };
    let acked = AtomicU64::new(0);
    println!("posting {count} messages to {}; ledger {}", options.url, options.ledger.display());
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| ledger::write(&options, &acked));
        let mut shown = 0;
        while !writer.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            let now = acked.load(Ordering::Relaxed);
            // About once a second at the rates a device reaches: enough to know when to cut.
            if now / 100 != shown / 100 {
                println!("acknowledged {now} of {count}");
                shown = now;
            }
        }
        writer.join().unwrap_or(Err(power_cut::PowerCutError::Panicked))
    })?;
    Ok(power_cut::write_section(&options, &written))
}

/// Value parser: a positive, finite number.
fn positive(text: &str) -> Result<f64, &'static str> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err("expected a positive number"),
    }
}

/// Value parser: a positive number of seconds (fractions allowed).
fn seconds(text: &str) -> Result<Duration, &'static str> {
    Duration::try_from_secs_f64(positive(text)?).map_err(|_| "too long")
}

/// Value parser: a positive number of minutes (fractions allowed).
fn minutes(text: &str) -> Result<Duration, &'static str> {
    Duration::try_from_secs_f64(positive(text)? * 60.0).map_err(|_| "too long")
}

fn print_summary(sections: &[Section]) {
    for section in sections {
        println!("== {}", section.title);
        for (name, value) in &section.figures {
            println!("   {name}: {value}");
        }
        for check in &section.checks {
            println!("   {:<10} {} — {}", check.verdict.as_str(), check.name, check.detail);
        }
    }
}
