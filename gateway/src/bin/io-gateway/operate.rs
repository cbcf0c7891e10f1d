//! The operator's commands that take more than one line to wire: `queue …`, `outcomes`
//! and `import`, with their arguments.

use super::{print_result, EXIT_CONFIG};
use clap::Subcommand;
use gateway::config::Config;
use gateway::{import, logging, operator, server};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum QueueCommand {
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
pub struct FilterArgs {
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
pub struct Targets {
    /// Message ids.
    ids: Vec<String>,
    /// Every message matching the filter instead of ids.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(clap::Args)]
pub struct ImportArgs {
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

pub fn queue(config: &Config, command: QueueCommand) -> ExitCode {
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

pub fn outcomes(config: &Config, states: &[String], since: Option<jiff::civil::Date>) -> ExitCode {
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

pub fn import_file(args: ImportArgs) -> ExitCode {
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
        let data_keys = gateway::seal::key_dir::load(&config.storage.data_key_directory).ok().map(Arc::new);
        import::Sink::DryRun { database: data_keys.map(|keys| (database, keys)) }
    } else {
        let keys = match server::Keys::load(&config) {
            Ok(keys) => keys,
            Err(e) => {
                eprintln!("cannot load the keys: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let (audit_key, data_keys) = (keys.audit.get(), keys.data.get());
        import::Sink::Queue { database, limits: server::limits(&config), audit_key, data_keys }
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
