//! The gateway's configuration: one TOML file, checked whole before anything is bound.
//!
//! `Config::from_toml_str` is pure (no files, no environment) and reports every problem it
//! finds with the key path where it is. `Config::load` reads the file and then also checks
//! what the configuration points at on this machine: certificate and key files, secret
//! files and environment variables. `io-gateway check-config` and `io-gateway run` both go
//! through `Config::load`.

mod raw;
mod secret;
mod typed;

pub use secret::{Secret, SecretError, SecretSource};
pub use typed::{
    ClientName, Config, Institution, IoEndpoint, KeyDigest, LocalApi, LocalClient, Service, ServiceName, Storage,
    TlsFiles,
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
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            problems: vec![Problem { location: syntax_location(text, &e), message: e.message().to_string() }],
        })?;
        typed::build(raw).map_err(|problems| ConfigError::Invalid { problems })
    }

    /// Reads `path`, validates it and checks the files and variables it refers to.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let config = Config::from_toml_str(&text)?;
        let problems = config.check_environment();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// Checks what the configuration points at: readable certificate, key and secret
    /// files, set environment variables, an existing storage directory.
    pub fn check_environment(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, institution) in self.institutions.iter().enumerate() {
            for (j, service) in institution.services.iter().enumerate() {
                let at = format!("institutions[{i}].services[{j}]");
                let keys =
                    [("primary_key", Some(&service.primary_key)), ("secondary_key", service.secondary_key.as_ref())];
                for (name, source) in keys {
                    if let Some(Err(e)) = source.map(SecretSource::read) {
                        problems.push(Problem { location: format!("{at}.{name}"), message: e.to_string() });
                    }
                }
            }
        }
        let io = &self.io;
        for (name, path) in [
            ("io.client_certificate", io.client_certificate.as_deref()),
            ("io.client_key", io.client_key.as_deref()),
            ("io.ca_bundle", io.ca_bundle.as_deref()),
        ] {
            if let Some(path) = path {
                check_readable(&mut problems, name, path);
            }
        }
        if let Some(tls) = &self.local_api.tls {
            check_readable(&mut problems, "local_api.tls.certificate", &tls.certificate);
            check_readable(&mut problems, "local_api.tls.private_key", &tls.private_key);
        }
        let dir = self.storage.directory();
        if !dir.is_dir() {
            problems.push(Problem {
                location: "storage.path".into(),
                message: format!("directory {} does not exist", dir.display()),
            });
        }
        problems
    }
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
