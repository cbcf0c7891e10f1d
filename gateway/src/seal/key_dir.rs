//! The data key directory: `data-N.key` (the highest N seals, all open) and `index.key`,
//! each 32 random bytes in base64, mode 0600, in a 0700 directory. Files are written
//! under a temporary name with their final mode and linked into place, never over an
//! existing key: a rotation adds a file, it never replaces one.

use super::DataKeys;
use crate::secret_file::{self, SecretFileError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The key of the keyed hashes (fiscal code index, dedup keys); never rotated.
pub const INDEX_KEY_FILE: &str = "index.key";

#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error("reading the data key directory {}: {source}", path.display())]
    List { path: PathBuf, source: std::io::Error },
    #[error("no data keys in {}: run `io-gateway data-keys generate --dir {}`", path.display(), path.display())]
    Empty { path: PathBuf },
    #[error("{} already holds data keys; use `io-gateway data-keys rotate`", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{} is not a data key (one line: 32 bytes in base64)", path.display())]
    NotAKey { path: PathBuf },
    #[error("the system's random source failed")]
    Random,
}

/// The file of data key `number`.
pub fn data_key_file(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("data-{number}.key"))
}

/// Creates the directory (0700) with `index.key` and `data-1.key`. Refuses if it already
/// holds either.
pub fn generate(dir: &Path) -> Result<DataKeys, DataKeyError> {
    secret_file::create_dir(dir)?;
    if !numbers(dir)?.is_empty() || dir.join(INDEX_KEY_FILE).exists() {
        return Err(DataKeyError::AlreadyExists { path: dir.to_path_buf() });
    }
    if !secret_file::create_private(&dir.join(INDEX_KEY_FILE), &encode(&random()?))? {
        return Err(DataKeyError::AlreadyExists { path: dir.to_path_buf() });
    }
    if !secret_file::create_private(&data_key_file(dir, 1), &encode(&random()?))? {
        return Err(DataKeyError::AlreadyExists { path: dir.to_path_buf() });
    }
    load(dir)
}

/// Adds `data-(N+1).key`, which seals from the next load on; returns the new number.
pub fn rotate(dir: &Path) -> Result<u32, DataKeyError> {
    let current = load(dir)?.current();
    let next = current + 1;
    if !secret_file::create_private(&data_key_file(dir, next), &encode(&random()?))? {
        return Err(DataKeyError::AlreadyExists { path: data_key_file(dir, next) });
    }
    Ok(next)
}

/// Reads every key in the directory; each must be 0600 and well formed.
pub fn load(dir: &Path) -> Result<DataKeys, DataKeyError> {
    let numbers = numbers(dir)?;
    let index_path = dir.join(INDEX_KEY_FILE);
    if numbers.is_empty() && !index_path.exists() {
        return Err(DataKeyError::Empty { path: dir.to_path_buf() });
    }
    let index = read_key(&index_path)?;
    let mut data = BTreeMap::new();
    for number in numbers {
        data.insert(number, read_key(&data_key_file(dir, number))?);
    }
    DataKeys::from_bytes(&data, &index).ok_or_else(|| DataKeyError::Empty { path: dir.to_path_buf() })
}

/// Whether the directory holds no key at all (missing, or empty of keys).
pub fn is_empty(dir: &Path) -> Result<bool, DataKeyError> {
    Ok(numbers(dir)?.is_empty() && !dir.join(INDEX_KEY_FILE).exists())
}

/// The numbers of the `data-N.key` files present.
fn numbers(dir: &Path) -> Result<Vec<u32>, DataKeyError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(DataKeyError::List { path: dir.to_path_buf(), source }),
    };
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataKeyError::List { path: dir.to_path_buf(), source })?;
        let name = entry.file_name();
        let number = name.to_str().and_then(|n| n.strip_prefix("data-")?.strip_suffix(".key")?.parse::<u32>().ok());
        numbers.extend(number.filter(|n| *n > 0));
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn read_key(path: &Path) -> Result<[u8; 32], DataKeyError> {
    let text = secret_file::read_private(path)?;
    let bytes = STANDARD.decode(text.trim()).map_err(|_| DataKeyError::NotAKey { path: path.to_path_buf() })?;
    bytes.try_into().map_err(|_| DataKeyError::NotAKey { path: path.to_path_buf() })
}

fn random() -> Result<[u8; 32], DataKeyError> {
    let mut key = [0u8; 32];
    SystemRandom::new().fill(&mut key).map_err(|_| DataKeyError::Random)?;
    Ok(key)
}

fn encode(key: &[u8; 32]) -> Vec<u8> {
    format!("{}\n", STANDARD.encode(key)).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::Field;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_rotate_load() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("data-keys");
        assert!(matches!(load(&keys_dir), Err(DataKeyError::Empty { .. })));
        let first = generate(&keys_dir).unwrap();
        assert_eq!(fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(data_key_file(&keys_dir, 1)).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(generate(&keys_dir), Err(DataKeyError::AlreadyExists { .. })));
        let sealed = first.seal(Field::Body, "id", b"text").unwrap();
        assert_eq!(rotate(&keys_dir).unwrap(), 2);
        let second = load(&keys_dir).unwrap();
        assert_eq!((second.current(), second.numbers()), (2, vec![1, 2]));
        assert_eq!(second.open(Field::Body, "id", &sealed).unwrap(), b"text");
        assert_eq!(second.recipient_index("X"), first.recipient_index("X"));
    }

    #[test]
    fn load_names_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let key = data_key_file(dir.path(), 1);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("data-1.key") && error.contains("0600"), "{error}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&key, "short\n").unwrap();
        assert!(matches!(load(dir.path()), Err(DataKeyError::NotAKey { .. })));
        fs::remove_file(dir.path().join(INDEX_KEY_FILE)).unwrap();
        assert!(matches!(load(dir.path()), Err(DataKeyError::File(SecretFileError::Missing { .. }))));
    }
}
