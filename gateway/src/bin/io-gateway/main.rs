//! The `io-gateway` command: parses the command line and calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::api::Stopped;
use gateway::config::Config;
use gateway::queue::CommitWait;
use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::{auth, logging, operator, server, shutdown};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

mod audit;
mod operate;
mod privacy;
use audit::AuditCommand;
use operate::{import_file, outcomes, queue, ImportArgs, QueueCommand};
use privacy::{CitizenCommand, DataKeysCommand};

/// Exit status for an invalid configuration (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "io-gateway", version, about = "Durable gateway from local systems to the IO Services API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: the local API and the queue.
    Run {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Log at DEBUG level.
        #[arg(long, short)]
        verbose: bool,
        /// Threads serving HTTP. The queue writer and the WAL checkpointer have their own
        /// threads, so on a 2-core appliance one HTTP thread measured best.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        worker_threads: u16,
    },
    /// Run the gateway on an embedded default configuration in a temporary directory,
    /// post a realistic sample and show what happened. Needs nothing configured.
    Demo {
        /// Keep the temporary directory (configuration and database) afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Check a configuration file and report every problem in it.
    CheckConfig {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Make a new local client key and the key_sha256 line for the configuration.
    ClientKey,
    /// The appliance's Ed25519 signing key: requests to IO (RFC 9421), receipts (JWS)
    /// and audit checkpoints. Public keys print as a JWK Set for verifiers.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import a local registry file: every record becomes one message through a template,
    /// validated and queued (the daemon may be running). Running it again never queues a
    /// record twice. Exit status: 0 all queued; 2 some rows rejected (see the report);
    /// 1 the file is incomplete or the queue refused messages; 78 bad configuration.
    Import(ImportArgs),
    /// One screen: is the daemon answering, what waits and why, outcomes, disk.
    Status {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check everything that keeps messages from leaving: configuration, file
    /// permissions, certificates, disk, and IO itself (TLS handshake, each service's keys
    /// with one profile call for IO's test fiscal code, clock skew against IO's Date).
    /// Exit status 1 when any check fails.
    Doctor {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Skip the calls to IO (no network, no budget spent).
        #[arg(long)]
        offline: bool,
    },
    /// List, inspect and move queued messages (safe while the daemon runs).
    Queue {
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Messages in final states as CSV (stdout), with who needs paper or PEC.
    Outcomes {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Only these outcomes (e.g. not_on_io,sender_not_allowed); default: all final.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        /// Only messages that reached their outcome on or after this day.
        #[arg(long, value_name = "YYYY-MM-DD")]
        since: Option<jiff::civil::Date>,
    },
    /// The data keys that encrypt citizens' data in the queue (AES-256-GCM): make,
    /// rotate, list.
    DataKeys {
        #[command(subcommand)]
        command: DataKeysCommand,
    },
    /// A citizen's rights: export everything held about a fiscal code, or erase it.
    Citizen {
        #[command(subcommand)]
        command: CitizenCommand,
    },
    /// The tamper-evident audit trail: check it, or export it for an auditor.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the IO sandbox: a simulator of IO's Services API for tests and demos.
    Sandbox {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the first key in DIR (the private key 0600, public-keys.json beside it).
    Generate {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the public keys (JWK Set, retired keys included) and the current key id.
    Show {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Make a new current key; the old public key stays listed so old signatures verify.
    /// The daemon signs with it after `systemctl reload io-gateway`.
    Rotate {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

fn keys(command: KeysCommand) -> ExitCode {
    use gateway::signing::KeyRing;
    let (ring, note) = match command {
        KeysCommand::Generate { dir } => match KeyRing::generate(&dir) {
            Ok(ring) => {
                let note = format!(
                    "new key {} in {}\nadd to the configuration:\n[signing]\nkey_directory = \"{}\"",
                    ring.current().kid().as_str(),
                    dir.display(),
                    dir.display()
                );
                (Ok(ring), note)
            }
            Err(e) => (Err(e), String::new()),
        },
        KeysCommand::Show { dir } => (KeyRing::load(&dir), String::new()),
        KeysCommand::Rotate { dir } => match KeyRing::rotate(&dir) {
            Ok((ring, retired)) => {
                let note = format!(
                    "new key {} (retired {}, still listed); `systemctl reload io-gateway` to sign with it",
                    ring.current().kid().as_str(),
                    retired.as_str()
                );
                (Ok(ring), note)
            }
            Err(e) => (Err(e), String::new()),
        },
    };
    match ring {
        Ok(ring) => {
            println!("{:#}", ring.public_jwks().to_json());
            eprintln!("current key: {}", ring.current().kid().as_str());
            if !note.is_empty() {
                eprintln!("{note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::ClientKey => client_key(),
        Command::Keys { command } => keys(command),
        Command::Import(args) => import_file(args),
        Command::Doctor { config, offline } => doctor(&config, offline),
        Command::Status { config } => with_config(&config, |config| print_result(operator::status(config))),
        Command::Outcomes { config, state, since } => with_config(&config, |config| outcomes(config, &state, since)),
        Command::Queue { config, command } => match config {
            Some(config) => with_config(&config, |config| queue(config, command)),
            None => {
                eprintln!("queue: --config FILE is required");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Audit { command } => audit::audit(command),
        Command::DataKeys { command } => privacy::data_keys(command),
        Command::Citizen { command } => privacy::citizen(command),
        Command::Sandbox { config } => sandbox(&config),
        Command::Demo { keep } => demo(keep),
        Command::Run { config, verbose, worker_threads } => {
            logging::init(if verbose { log::LevelFilter::Debug } else { log::LevelFilter::Info });
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    log::error!("refusing to start: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match run(config, usize::from(worker_threads)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            let services: usize = config.institutions.iter().map(|i| i.services.len()).sum();
            println!(
                "{}: OK ({} institution(s), {} service(s), {} local client(s))",
                path.display(),
                config.institutions.len(),
                services,
                config.clients.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Loads the configuration (exit 78 if it is bad) and runs `f` with it.
fn with_config(path: &std::path::Path, f: impl FnOnce(&Config) -> ExitCode) -> ExitCode {
    match Config::load(path) {
        Ok(config) => f(&config),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn print_result(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(keep: bool) -> ExitCode {
    logging::init(log::LevelFilter::Warn);
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(gateway::demo::run(keep)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sandbox(path: &std::path::Path) -> ExitCode {
    logging::init(log::LevelFilter::Info);
    let config =
        match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| SandboxConfig::from_toml_str(&t)) {
            Ok(config) => config,
            Err(e) => {
                log::error!("refusing to start the sandbox: {}: {e}", path.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        };
    let result = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime").and_then(
        |runtime| {
            runtime.block_on(async {
                let signals = shutdown::signals().context("installing signal handlers")?;
                let sandbox = Sandbox::start(config).await?;
                log::info!(address:display = sandbox.addr(), base_url = sandbox.base_url().as_str(); "IO sandbox listening");
                let signal = signals.await;
                log::info!(signal = signal; "stopping the sandbox");
                let stats = sandbox.stats();
                sandbox.stop().await;
                log::info!(calls = stats.calls, messages = stats.messages, throttled = stats.throttled; "sandbox stopped");
                anyhow::Ok(())
            })
        },
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn client_key() -> ExitCode {
    match auth::new_client_key() {
        Ok((key, digest)) => {
            println!("key (give this to the local system, store it nowhere else): {key}");
            println!("configuration line for its [[clients]] entry:\nkey_sha256 = \"{}\"", digest.to_hex());
            ExitCode::SUCCESS
        }
        Err(_) => {
            eprintln!("the system random number generator failed");
            ExitCode::FAILURE
        }
    }
}

fn doctor(config: &Path, offline: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("doctor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let findings = runtime.block_on(gateway::doctor::run(config, !offline));
    print!("{}", findings.render());
    if findings.worst() == gateway::doctor::Verdict::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run(config: Config, worker_threads: usize) -> anyhow::Result<()> {
    // A worker about to park polls while a lone request awaits its commit (see
    // `CommitWait`); the queue it watches opens inside the runtime.
    let commit_wait = Arc::new(OnceLock::<CommitWait>::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .on_thread_park({
            let commit_wait = Arc::clone(&commit_wait);
            move || {
                if let Some(wait) = commit_wait.get() {
                    wait.poll_while_awaited();
                }
            }
        })
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let signals = shutdown::signals().context("installing signal handlers")?;
        let prepared = server::Prepared::new(config).await?;
        let _ = commit_wait.set(prepared.commit_wait());
        let address = prepared.local_addr().context("reading the bound address")?;
        log::info!(address:display = address; "listening");
        if let Some(address) = prepared.metrics_addr() {
            log::info!(url = format!("http://{address}/metrics").as_str(); "metrics listener ready");
        }
        let reloads = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let stopped = prepared
            .run(
                async {
                    let signal = signals.await;
                    log::info!(signal = signal; "stopping: no new connections, finishing in-flight requests");
                },
                Some(reloads),
            )
            .await;
        match stopped {
            Stopped::Clean => log::info!("stopped cleanly: every accepted message is committed"),
            Stopped::GraceExpired { connections } => log::warn!(
                connections = connections;
                "stopped after the grace period with connections still open: their requests got no answer; \
                 any already handed to the queue were committed, so a client retry without Idempotency-Key may duplicate one"
            ),
        }
        Ok(())
    })
}
