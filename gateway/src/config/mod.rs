//! The gateway's configuration: one TOML file, checked whole before anything is bound.
//!
//! `Config::from_toml_str` is pure (no files, no environment) and reports every problem it
//! finds with the key path where it is. `Config::load` reads the file and then also checks
//! what the configuration points at on this machine: certificate and key files, secret
//! files and environment variables. `io-gateway check-config` and `io-gateway run` both go
//! through `Config::load`.

mod delivery;
mod import;
mod raw;
mod secret;
mod typed;

pub use delivery::{AmbiguousPolicy, Delivery, ProfileCheck};
pub use import::{Import, WatchFolder};
pub use secret::{Secret, SecretError, SecretSource};
pub use typed::{
    ClientName, Config, Institution, IoEndpoint, KeyDigest, LocalApi, LocalClient, MetricsListener, Service,
    ServiceName, Storage, TlsFiles,
};

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a configuration, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `institutions[0].services[1].primary_key`, or `file` for the whole file.
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} problem(s) in the configuration:\n{}", .problems.len(), list(.problems))]
    Invalid { problems: Vec<Problem> },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

impl Config {
    /// Parses and validates a configuration without touching the file system.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        typed::build(parse_raw(text)?).map_err(|problems| ConfigError::Invalid { problems })
    }

    /// Reads `path`, validates it and checks the files and variables it refers to:
    /// readable certificate, key and secret files, set environment variables, an existing
    /// storage directory. Problems of both kinds are reported together.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let raw = parse_raw(&text)?;
        let environment = check_environment(&raw);
        match typed::build(raw) {
            Ok(config) => {
                let mut problems = environment;
                problems.extend(import::check_files(&config.import));
                let data_keys = &config.storage.data_key_directory;
                if !crate::seal::key_dir::is_empty(data_keys).unwrap_or(false) {
                    if let Err(e) = crate::seal::key_dir::load(data_keys) {
                        problems
                            .push(Problem { location: "storage.data_key_directory".into(), message: e.to_string() });
                    }
                }
                if let Some(signing) = &config.signing {
                    if let Err(e) = crate::signing::KeyRing::load(&signing.key_directory) {
                        problems.push(Problem { location: "signing.key_directory".into(), message: e.to_string() });
                    }
                }
                if problems.is_empty() {
                    Ok(config)
                } else {
                    Err(ConfigError::Invalid { problems })
                }
            }
            Err(mut problems) => {
                problems.extend(environment);
                Err(ConfigError::Invalid { problems })
            }
        }
    }
}

fn parse_raw(text: &str) -> Result<raw::RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid {
        problems: vec![Problem { location: syntax_location(text, &e), message: e.message().to_string() }],
    })
}

/// Checks the files and variables the configuration names, as written.
fn check_environment(raw: &raw::RawConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, institution) in raw.institutions.iter().enumerate() {
        for (j, service) in institution.services.iter().enumerate() {
            let keys = [("primary_key", Some(&service.primary_key)), ("secondary_key", service.secondary_key.as_ref())];
            for (name, secret) in keys {
                let source = match secret {
                    Some(raw::RawSecret { file: Some(path), env: None }) => SecretSource::File(path.clone()),
                    Some(raw::RawSecret { file: None, env: Some(name) }) => SecretSource::Env(name.clone()),
                    _ => continue, // absent, or malformed and already reported
                };
                if let Err(e) = source.read() {
                    let location = format!("institutions[{i}].services[{j}].{name}");
                    problems.push(Problem { location, message: e.to_string() });
                }
            }
        }
    }
    if let Some(io) = &raw.io {
        for (name, path) in [
            ("io.client_certificate", &io.client_certificate),
            ("io.client_key", &io.client_key),
            ("io.ca_bundle", &io.ca_bundle),
        ] {
            if let Some(path) = path {
                check_readable(&mut problems, name, path);
            }
        }
    }
    if let Some(tls) = raw.local_api.as_ref().and_then(|api| api.tls.as_ref()) {
        check_readable(&mut problems, "local_api.tls.certificate", &tls.certificate);
        check_readable(&mut problems, "local_api.tls.private_key", &tls.private_key);
    }
    if let Some(storage) = &raw.storage {
        let dir = match storage.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            problems.push(Problem {
                location: "storage.path".into(),
                message: format!("directory {} does not exist", dir.display()),
            });
        }
    }
    problems
}

fn check_readable(problems: &mut Vec<Problem>, location: &str, path: &Path) {
    if let Err(e) = std::fs::File::open(path) {
        problems.push(Problem { location: location.into(), message: format!("cannot read {}: {e}", path.display()) });
    }
}

/// "line L, column C" for a TOML syntax or type error.
fn syntax_location(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else {
        return "file".into();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests;
