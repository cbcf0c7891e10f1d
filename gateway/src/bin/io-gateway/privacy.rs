//! `io-gateway data-keys generate|rotate|show` (encryption at rest) and
//! `io-gateway citizen export|erase` (a citizen's rights over what the queue holds).

use super::{with_config, EXIT_CONFIG};
use clap::Subcommand;
use gateway::config::Config;
use gateway::queue::admin::Admin;
use gateway::seal::key_dir;
use gateway::server;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DataKeysCommand {
    /// Create DIR (0700) with index.key and data-1.key (0600). The daemon also makes them
    /// on its first start when the configured directory is empty.
    Generate {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Add data-(N+1).key: new content is sealed with it after `systemctl reload
    /// io-gateway`; older keys stay to open what they sealed.
    Rotate {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// List the keys; with --config, how many messages still need each one (a key no
    /// message needs may be moved out of the directory, to an offline backup).
    Show {
        #[arg(long, value_name = "DIR", required_unless_present = "config")]
        dir: Option<PathBuf>,
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum CitizenCommand {
    /// Everything the queue holds about FISCAL_CODE — each message with its content
    /// (while kept), states, transitions and audit entries — as JSON on stdout.
    Export {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        fiscal_code: String,
    },
    /// Remove the content and personal data of every message to FISCAL_CODE: waiting
    /// messages are cancelled, sent ones no longer followed. Ids, states and the audit
    /// trail stay; each erasure is audited with the operator's name.
    Erase {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        fiscal_code: String,
    },
}

pub fn data_keys(command: DataKeysCommand) -> ExitCode {
    let result = match command {
        DataKeysCommand::Generate { dir } => key_dir::generate(&dir).map(|keys| {
            format!(
                "data keys made in {}: current key {}; back the directory up, apart from the database",
                dir.display(),
                keys.current()
            )
        }),
        DataKeysCommand::Rotate { dir } => key_dir::rotate(&dir).map(|number| {
            format!("new data key {number} in {}; `systemctl reload io-gateway` to seal with it", dir.display())
        }),
        DataKeysCommand::Show { dir, config } => return show(dir, config),
    };
    match result {
        Ok(note) => {
            println!("{note}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("data-keys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(dir: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let config = match config.map(|path| Config::load(&path)) {
        Some(Ok(config)) => Some(config),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        None => None,
    };
    let Some(dir) = dir.or_else(|| config.as_ref().map(|c| c.storage.data_key_directory.clone())) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let keys = match key_dir::load(&dir) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("data-keys: {e}");
            return ExitCode::FAILURE;
        }
    };
    let counts = match config.as_ref().filter(|c| c.storage.path.exists()) {
        Some(config) => match Admin::open(&config.storage.path).and_then(|admin| admin.content_by_data_key()) {
            Ok(counts) => Some(counts),
            Err(e) => {
                eprintln!("data-keys: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    println!("{}: index.key and {} data key(s)", dir.display(), keys.numbers().len());
    for number in keys.numbers() {
        let current = if number == keys.current() { " (current: seals new content)" } else { "" };
        let used = counts
            .as_ref()
            .map(|c| {
                let n = c.iter().find(|(k, _)| *k == number).map_or(0, |(_, n)| *n);
                format!(", {n} message(s) need it")
            })
            .unwrap_or_default();
        println!("  data-{number}.key{current}{used}");
    }
    let missing: Vec<String> = counts
        .iter()
        .flatten()
        .filter(|(number, _)| !keys.numbers().contains(number))
        .map(|(number, n)| format!("data-{number}.key ({n} messages)"))
        .collect();
    if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("MISSING: {} — restore from the backup", missing.join(", "));
        ExitCode::FAILURE
    }
}

pub fn citizen(command: CitizenCommand) -> ExitCode {
    let (config, fiscal_code, erase) = match command {
        CitizenCommand::Export { config, fiscal_code } => (config, fiscal_code, false),
        CitizenCommand::Erase { config, fiscal_code } => (config, fiscal_code, true),
    };
    with_config(&config, |config| {
        let test = if config.io.allow_test_recipient {
            connectors::domain::TestRecipient::Allowed
        } else {
            connectors::domain::TestRecipient::Rejected
        };
        let fiscal_code = match connectors::domain::FiscalCode::parse(fiscal_code.trim(), test) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("citizen: {e}");
                return ExitCode::from(2);
            }
        };
        let result = if erase { erase_citizen(config, &fiscal_code) } else { export_citizen(config, &fiscal_code) };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("citizen: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn export_citizen(config: &Config, fiscal_code: &connectors::domain::FiscalCode) -> Result<ExitCode, String> {
    let keys = key_dir::load(&config.storage.data_key_directory).map_err(|e| e.to_string())?;
    let admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let messages = admin.citizen(&keys, fiscal_code).map_err(|e| e.to_string())?;
    let document = serde_json::json!({
        "fiscal_code": fiscal_code.as_str(),
        "exported_at": jiff::Timestamp::now().to_string(),
        "controller": config.institutions.iter().map(|i| serde_json::json!({
            "name": i.name, "fiscal_code": i.fiscal_code.as_str()
        })).collect::<Vec<_>>(),
        "messages": messages,
    });
    let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    println!("{text}");
    eprintln!("{} message(s) held for this fiscal code", messages.len());
    Ok(ExitCode::SUCCESS)
}

fn erase_citizen(config: &Config, fiscal_code: &connectors::domain::FiscalCode) -> Result<ExitCode, String> {
    let keys = server::Keys::load(config).map_err(|e| format!("cannot load the keys: {e}"))?;
    let mut admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let signer = keys.audit.get();
    let erasure = admin.erase(&keys.data.get(), fiscal_code, &by, signer.as_deref()).map_err(|e| e.to_string())?;
    for id in &erasure.erased {
        println!("{id}: erased");
    }
    for id in &erasure.in_flight {
        println!("{id}: being sent right now, not erased: run the command again in a minute");
    }
    eprintln!(
        "{} message(s) erased ({} waiting ones cancelled, {} no longer followed at IO); audited as `erased` by {by}",
        erasure.erased.len(),
        erasure.cancelled,
        erasure.unfollowed
    );
    Ok(if erasure.in_flight.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
