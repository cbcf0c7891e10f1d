//! Files that hold secrets (the signing key, the data keys): read only when nobody but
//! their owner may read them, written so that no byte ever exists with a wider mode.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("creating key directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("no key at {}; generate one first", path.display())]
    Missing { path: PathBuf },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} may be read by group or others (mode {mode:03o}); it must be 0600: chmod 600 {}", path.display(), path.display())]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
}

/// Creates `dir` (and its parents) with mode 0700 if it is missing.
pub fn create_dir(dir: &Path) -> Result<(), SecretFileError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SecretFileError::CreateDir { path: dir.to_path_buf(), source })
}

/// Reads a secret file, refusing one that is not a regular file or that group or others
/// may read (checked on the open file, so what is checked is what is read).
pub fn read_private(path: &Path) -> Result<String, SecretFileError> {
    let mut file = File::open(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => SecretFileError::Missing { path: path.to_path_buf() },
        _ => SecretFileError::Read { path: path.to_path_buf(), source },
    })?;
    let metadata = file.metadata().map_err(|source| SecretFileError::Read { path: path.to_path_buf(), source })?;
    if !metadata.is_file() {
        return Err(SecretFileError::NotAFile { path: path.to_path_buf() });
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::ReadableByOthers { path: path.to_path_buf(), mode });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|source| SecretFileError::Read { path: path.to_path_buf(), source })?;
    Ok(text)
}

/// Writes `bytes` to a new temporary file beside `path`, created with `O_EXCL` and `mode`
/// (so it never exists with a wider mode), and synced. A temporary file left by a crash is
/// removed first.
pub fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, SecretFileError> {
    let tmp = path.with_extension("tmp");
    match fs::remove_file(&tmp) {
        Err(source) if source.kind() != ErrorKind::NotFound => {
            return Err(SecretFileError::Write { path: tmp, source })
        }
        _ => {}
    }
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|source| SecretFileError::Write { path: tmp.clone(), source })?;
    Ok(tmp)
}

/// Writes a new 0600 file at `path`, never over an existing one (a temporary file, then a
/// hard link), and syncs the directory. `Ok(false)`: `path` already exists.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<bool, SecretFileError> {
    let tmp = write_temp(path, bytes, 0o600)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(source) if source.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(source) => return Err(SecretFileError::Write { path: path.to_path_buf(), source }),
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(true)
}

pub fn sync_dir(dir: &Path) -> Result<(), SecretFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SecretFileError::Write { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_private_never_replaces_and_read_private_checks_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(create_private(&path, b"one").unwrap());
        assert!(!create_private(&path, b"two").unwrap());
        assert_eq!(read_private(&path).unwrap(), "one");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read_private(&path), Err(SecretFileError::ReadableByOthers { mode: 0o640, .. })));
        assert!(matches!(read_private(&dir.path().join("none")), Err(SecretFileError::Missing { .. })));
        assert!(matches!(read_private(dir.path()), Err(SecretFileError::NotAFile { .. })));
    }
}
