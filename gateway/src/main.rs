//! The `io-gateway` command: parses the command line and calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::api::Stopped;
use gateway::config::Config;
use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::{auth, import, logging, operator, server, shutdown};
use std::path::{Path, PathBuf};
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
    /// Run the IO sandbox: a simulator of IO's Services API for tests and demos.
    Sandbox {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Messages with their state, age, attempts and why they wait.
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One message and its whole history.
    Show { id: String },
    /// Send now: held, ambiguous or waiting messages become due at once.
    Retry(Targets),
    /// Set messages aside until released.
    Hold(Targets),
    /// Give held messages back to delivery.
    Release(Targets),
    /// Never send these messages (final).
    Cancel(Targets),
}

#[derive(clap::Args)]
struct FilterArgs {
    /// Only these states (comma-separated, e.g. held,ambiguous).
    #[arg(long, value_delimiter = ',')]
    state: Vec<String>,
    #[arg(long)]
    service: Option<String>,
    /// Only messages accepted at least this long ago: 30m, 2h, 3d.
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(clap::Args)]
struct Targets {
    /// Message ids.
    ids: Vec<String>,
    /// Every message matching the filter instead of ids.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// gpd (pagoPA GPD JSON or zip), govpay (pendenze CSV), csv (with --mapping),
    /// anpr-xml (ANPR extract, maybe gzipped), anpr-csv (ANPR flat CSV).
    format: import::Format,
    file: PathBuf,
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Template name (in [import] templates) or path. ANPR default: carta-identita, or
    /// carta-identita-cartacea for the paper-card campaign.
    #[arg(long, short)]
    template: Option<String>,
    /// Service to send on (default: the only one configured).
    #[arg(long, short)]
    service: Option<String>,
    /// Column mapping from [import.mappings] (format csv).
    #[arg(long)]
    mapping: Option<String>,
    /// ANPR: id-card-expiring (default) or paper-id-card.
    #[arg(long)]
    campaign: Option<String>,
    /// Validate and render without queueing; show one rendered message.
    #[arg(long)]
    dry_run: bool,
    /// Accept notice numbers whose only fault is their check digits (with a warning).
    #[arg(long)]
    warn_only_check_digits: bool,
    /// GovPay: the aux digit (1-3) that turns a 17-digit IUV into a notice number.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    iuv_aux_digit: Option<u8>,
    /// Reference day for ID-card campaigns (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    today: Option<jiff::civil::Date>,
    /// Where to write the report of rejected rows (default: FILE's name + .report.csv in
    /// the current directory). Written only when there is something to report.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::ClientKey => client_key(),
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

fn queue(config: &Config, command: QueueCommand) -> ExitCode {
    use gateway::queue::admin::Action;
    let (action, targets) = match command {
        QueueCommand::List { filter } => {
            return match filter_of(&filter) {
                Ok(filter) => print_result(operator::list(config, &filter)),
                Err(e) => usage(&e),
            }
        }
        QueueCommand::Show { id } => {
            return match id.parse() {
                Ok(id) => print_result(operator::show(config, id)),
                Err(_) => usage(&format!("{id:?} is not a message id")),
            }
        }
        QueueCommand::Retry(t) => (Action::Retry, t),
        QueueCommand::Hold(t) => (Action::Hold, t),
        QueueCommand::Release(t) => (Action::Release, t),
        QueueCommand::Cancel(t) => (Action::Cancel, t),
    };
    let ids: Result<Vec<gateway::queue::MessageId>, String> = if targets.all {
        let filter = match filter_of(&targets.filter) {
            Ok(filter) => filter,
            Err(e) => return usage(&e),
        };
        gateway::queue::admin::Admin::open(&config.storage.path)
            .and_then(|admin| admin.list(&filter))
            .map(|rows| rows.into_iter().map(|r| r.id).collect())
            .map_err(|e| e.to_string())
    } else if targets.ids.is_empty() {
        return usage("name message ids, or --all with filters");
    } else {
        targets.ids.iter().map(|id| id.parse().map_err(|_| format!("{id:?} is not a message id"))).collect()
    };
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => return usage(&e),
    };
    match operator::act(config, action, &ids) {
        Ok((text, all)) => {
            print!("{text}");
            if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn filter_of(args: &FilterArgs) -> Result<gateway::queue::admin::Filter, String> {
    operator::filter(&args.state, args.service.clone(), args.older_than.as_deref(), args.limit)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn outcomes(config: &Config, states: &[String], since: Option<jiff::civil::Date>) -> ExitCode {
    let states = match states
        .iter()
        .map(|s| gateway::queue::State::from_sql(s).filter(|s| s.is_final()).ok_or(s))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(states) => states,
        Err(s) => return usage(&format!("{s:?} is not a final state")),
    };
    let since =
        since.and_then(|day| day.to_zoned(jiff::tz::TimeZone::system()).ok()).map(|z| z.timestamp().as_millisecond());
    let mut stdout = std::io::stdout().lock();
    match operator::outcomes(config, &states, since, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn import_file(args: ImportArgs) -> ExitCode {
    logging::init(log::LevelFilter::Warn);
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let request = import::Request {
        template: args.template,
        service: args.service,
        mapping: args.mapping,
        campaign: args.campaign,
        warn_only_check_digits: args.warn_only_check_digits,
        iuv_aux_digit: args.iuv_aux_digit,
        today: args.today,
    };
    let job = match import::Job::resolve(&config, args.format, &request) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("cannot import: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "import".into());
    let report_path = args.report.unwrap_or_else(|| PathBuf::from(format!("{name}.report.csv")));
    let mut report = import::Report::to_file(&report_path);
    let database = config.storage.path.as_path();
    let sink = if args.dry_run {
        import::Sink::DryRun { database: Some(database) }
    } else {
        import::Sink::Queue { database, limits: server::limits(&config) }
    };
    let outcome = import::run(&job, &args.file, sink, &mut report, &mut import::Progress::on_stderr());
    let report = report.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("cannot import {}: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run {
        match &outcome.sample {
            Some(sample) => println!("dry run: nothing was queued. A rendered message:\n{sample}"),
            None => println!("dry run: nothing was queued, and no record gave a message."),
        }
    }
    print!("{outcome}");
    match report {
        Ok(Some(path)) => println!("report:            {}", path.display()),
        Ok(None) => {}
        Err(e) => eprintln!("{e}"),
    }
    if !outcome.complete() {
        ExitCode::FAILURE
    } else if outcome.rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
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
