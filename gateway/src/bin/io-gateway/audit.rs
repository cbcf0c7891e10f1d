//! `io-gateway audit verify|export`: the audit trail checked where it is stored, or handed
//! to an auditor as JSON and checked from that file alone.

use super::EXIT_CONFIG;
use clap::Subcommand;
use gateway::audit::export::{self, KeysUsed};
use gateway::config::Config;
use gateway::queue::audit::{export_database, verify_database};
use gateway::signing::key::PUBLIC_KEYS_FILE;
use gateway::signing::Jwks;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the trail: every entry present, in order, linked and unedited; every
    /// checkpoint signed by a listed key and matching; the queue's newest changes
    /// recorded. Prints where each problem is. Exit status 0 when intact, 1 otherwise.
    Verify {
        /// The gateway's configuration: check the trail in its queue database.
        #[arg(long, short, value_name = "FILE", required_unless_present = "file", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// An export made by `audit export`: check it without the database.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The JWK Set that checks the checkpoints. Default: public-keys.json in the
        /// configured key directory; with --file, the keys inside the export.
        #[arg(long, value_name = "FILE")]
        public_keys: Option<PathBuf>,
    },
    /// Write the trail as one JSON document on stdout: the entries, every checkpoint and
    /// the public keys (retired ones included), for an auditor to verify elsewhere.
    Export {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The first entry to export (default 1: all of them).
        #[arg(long, value_name = "SEQ", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        since: u64,
    },
}

pub fn audit(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { config: Some(config), public_keys, .. } => {
            with_keys(&config, public_keys.as_deref(), verify_stored)
        }
        AuditCommand::Verify { file: Some(file), public_keys, .. } => verify_file(&file, public_keys.as_deref()),
        AuditCommand::Verify { .. } => {
            eprintln!("audit verify: give --config FILE or --file EXPORT");
            ExitCode::from(2)
        }
        AuditCommand::Export { config, since } => with_keys(&config, None, |config, keys| {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let exported = export_database(&config.storage.path, since, keys, &mut stdout)
                .and_then(|exported| stdout.flush().map(|()| exported).map_err(export_write_error));
            match exported {
                Ok(exported) => {
                    eprintln!(
                        "exported {} entries from seq {since} and {} checkpoint(s)",
                        exported.entries, exported.checkpoints
                    );
                    for row in &exported.unreadable {
                        eprintln!("left out entry {}, which cannot be read: {}", row.seq, row.reason);
                    }
                    if exported.unreadable.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("audit export: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}

fn verify_stored(config: &Config, keys: &Jwks) -> ExitCode {
    match verify_database(&config.storage.path, keys) {
        Ok(verification) => {
            println!("{verification}");
            if verification.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("audit verify: {e}");
            ExitCode::FAILURE
        }
    }
}

fn verify_file(file: &Path, public_keys: Option<&Path>) -> ExitCode {
    let keys = match public_keys.map(read_jwks).transpose() {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("audit verify: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = std::fs::File::open(file)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))
        .and_then(|reader| export::verify(reader, keys.as_ref()).map_err(|e| format!("{}: {e}", file.display())));
    match checked {
        Ok(checked) => {
            println!("{}", checked.report);
            if let KeysUsed::FromExport(kids) = &checked.keys {
                let kids: Vec<&str> = kids.iter().map(|k| k.as_str()).collect();
                eprintln!(
                    "checked with the public keys inside the export ({}): compare them with the appliance's \
                     published keys, or give your own copy with --public-keys",
                    kids.join(", ")
                );
            }
            if checked.report.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("audit verify: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration (exit 78 if it is bad) and the JWK Set: `public_keys`, else
/// the configured key directory's, else none (no `[signing]`: nothing was signed).
fn with_keys(config: &Path, public_keys: Option<&Path>, f: impl FnOnce(&Config, &Jwks) -> ExitCode) -> ExitCode {
    let config = match Config::load(config) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let configured = config.signing.as_ref().map(|s| s.key_directory.join(PUBLIC_KEYS_FILE));
    let keys = match public_keys.map(Path::to_path_buf).or(configured) {
        Some(path) => read_jwks(&path),
        None => {
            eprintln!("no [signing] in the configuration and no --public-keys: checkpoints cannot be checked");
            Ok(Jwks::new())
        }
    };
    match keys {
        Ok(keys) => f(&config, &keys),
        Err(e) => {
            eprintln!("audit: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn read_jwks(path: &Path) -> Result<Jwks, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Jwks::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn export_write_error(e: std::io::Error) -> gateway::queue::audit::AuditError {
    export::ExportError::Write(e).into()
}
