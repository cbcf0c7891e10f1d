//! The `io-gateway` command: parses the command line and calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::api::Stopped;
use gateway::config::Config;
use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::{auth, logging, server, shutdown};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Run the IO sandbox: a simulator of IO's Services API for tests and demos.
    Sandbox {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::ClientKey => client_key(),
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

fn run(config: Config, worker_threads: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let signals = shutdown::signals().context("installing signal handlers")?;
        let prepared = server::Prepared::new(config).await?;
        let address = prepared.local_addr().context("reading the bound address")?;
        log::info!(address:display = address; "listening");
        let stopped = prepared
            .run(async {
                let signal = signals.await;
                log::info!(signal = signal; "stopping: no new connections, finishing in-flight requests");
            })
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
