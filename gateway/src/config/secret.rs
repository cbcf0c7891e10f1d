//! Secrets named by the configuration (IO subscription keys): where they live and a value
//! type that never prints itself.

use std::fmt;
use std::path::PathBuf;

/// Where to read a secret from. The configuration never holds a secret inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file whose whole content, trimmed, is the secret.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("secret file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error("environment variable {name} is not set or not valid UTF-8")]
    MissingEnv { name: String },
    #[error("environment variable {name} is empty")]
    EmptyEnv { name: String },
}

impl SecretSource {
    pub fn read(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| SecretError::ReadFile { path: path.clone(), source })?;
                let value = text.trim();
                if value.is_empty() {
                    return Err(SecretError::EmptyFile { path: path.clone() });
                }
                Ok(Secret(value.to_string()))
            }
            SecretSource::Env(name) => {
                let value = std::env::var(name).map_err(|_| SecretError::MissingEnv { name: name.clone() })?;
                let value = value.trim();
                if value.is_empty() {
                    return Err(SecretError::EmptyEnv { name: name.clone() });
                }
                Ok(Secret(value.to_string()))
            }
        }
    }
}

impl Secret {
    /// The clear value, for the one place that must send it (the IO request header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret("super-secret-key".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn file_secrets_are_trimmed_and_empty_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "abc123\n").unwrap();
        assert_eq!(SecretSource::File(path.clone()).read().unwrap().expose(), "abc123");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(SecretSource::File(path).read(), Err(SecretError::EmptyFile { .. })));
        let missing = SecretSource::File(dir.path().join("nope"));
        assert!(matches!(missing.read(), Err(SecretError::ReadFile { .. })));
    }

    #[test]
    fn unset_environment_variable_is_reported_by_name() {
        let source = SecretSource::Env("IO_GATEWAY_TEST_SURELY_UNSET_42".into());
        let message = source.read().unwrap_err().to_string();
        assert!(message.contains("IO_GATEWAY_TEST_SURELY_UNSET_42"), "{message}");
    }
}
