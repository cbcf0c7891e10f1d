//! The gateway's queue database read from outside, read-only, as the crash tests read it:
//! which message ids are stored and in what state, and SQLite's integrity check. Nothing
//! here writes to the database or its WAL.
//!
//! A read-only connection can read a WAL database after a crash as long as SQLite may
//! rebuild its shared-memory index. Where it cannot (`SQLITE_READONLY_RECOVERY`: e.g. the
//! directory is read-only), the database and its WAL are copied to a temporary directory
//! and the copy is opened instead: SQLite recovers the copy exactly as the gateway would
//! recover the original at its next start, and the original stays untouched.

use gateway::queue::State;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QueueFileError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot open {path} read-only: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot copy {path} for recovery: {source}")]
    Copy { path: PathBuf, source: std::io::Error },
    #[error("reading {path}: {operation}: {source}")]
    Read { path: PathBuf, operation: &'static str, source: rusqlite::Error },
    #[error("{path} holds a message state this build does not know: {state:?}")]
    UnknownState { path: PathBuf, state: String },
}

/// An open queue database.
pub struct QueueFile {
    path: PathBuf,
    conn: Connection,
    /// Set when the copy was opened (see the module docs); removed on drop.
    copy: Option<tempfile::TempDir>,
}

impl QueueFile {
    /// Opens `path` read-only (or a copy, see the module docs).
    pub fn open(path: &Path) -> Result<QueueFile, QueueFileError> {
        if !path.is_file() {
            return Err(QueueFileError::Missing { path: path.to_path_buf() });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open_error = |source| QueueFileError::Open { path: path.to_path_buf(), source };
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_error)?;
        // Opening is lazy: the first read is where a WAL in need of recovery shows.
        match conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)) {
            Ok(_) => Ok(QueueFile { path: path.to_path_buf(), conn, copy: None }),
            Err(e) if needs_recovery(&e) => QueueFile::open_copy(path),
            Err(e) => Err(open_error(e)),
        }
    }

    /// Copies the database and its WAL (not the shared-memory index, which SQLite
    /// rebuilds) and opens the copy, where SQLite may run its recovery.
    fn open_copy(path: &Path) -> Result<QueueFile, QueueFileError> {
        let copy_error = |source| QueueFileError::Copy { path: path.to_path_buf(), source };
        let dir = tempfile::Builder::new().prefix("hw-tests-verify-").tempdir().map_err(copy_error)?;
        let copy = dir.path().join("queue.db");
        std::fs::copy(path, &copy).map_err(copy_error)?;
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        if wal.is_file() {
            std::fs::copy(&wal, dir.path().join("queue.db-wal")).map_err(copy_error)?;
        }
        let open_error = |source| QueueFileError::Open { path: path.to_path_buf(), source };
        let conn = Connection::open(&copy).map_err(open_error)?;
        conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)).map_err(open_error)?;
        Ok(QueueFile { path: path.to_path_buf(), conn, copy: Some(dir) })
    }

    /// Whether the copy was read instead of the file itself.
    pub fn read_a_copy(&self) -> bool {
        self.copy.is_some()
    }

    /// The state of message `id`, if it is stored.
    pub fn state_of(&self, id: &str) -> Result<Option<State>, QueueFileError> {
        let state: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM messages WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
            .map_err(|source| self.read_error("looking a message up", source))?;
        state.map(|s| self.state(s)).transpose()
    }

    /// Every stored message's id and state.
    pub fn states(&self) -> Result<HashMap<String, State>, QueueFileError> {
        let read = |source| self.read_error("listing messages", source);
        let mut stmt = self.conn.prepare("SELECT id, state FROM messages").map_err(read)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(read)?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, state) = row.map_err(read)?;
            out.insert(id, self.state(state)?);
        }
        Ok(out)
    }

    /// How many messages are stored.
    pub fn count(&self) -> Result<u64, QueueFileError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .map_err(|source| self.read_error("counting messages", source))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// SQLite's `PRAGMA integrity_check`: `["ok"]` for a sound database.
    pub fn integrity_check(&self) -> Result<Vec<String>, QueueFileError> {
        let read = |source| self.read_error("checking integrity", source);
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(read)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(read)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read)
    }

    fn state(&self, text: String) -> Result<State, QueueFileError> {
        State::from_sql(&text).ok_or(QueueFileError::UnknownState { path: self.path.clone(), state: text })
    }

    fn read_error(&self, operation: &'static str, source: rusqlite::Error) -> QueueFileError {
        QueueFileError::Read { path: self.path.clone(), operation, source }
    }
}

/// SQLite says a read-only connection cannot rebuild the WAL index.
fn needs_recovery(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ReadOnly || f.code == rusqlite::ErrorCode::CannotOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(dir: &Path) -> PathBuf {
        let path = dir.join("queue.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE messages (seq INTEGER PRIMARY KEY, id TEXT, state TEXT);
             INSERT INTO messages (id, state) VALUES ('A', 'queued'), ('B', 'processed');",
        )
        .unwrap();
        // Left open on purpose (leaked): the WAL stays as a crash leaves it.
        std::mem::forget(conn);
        path
    }

    #[test]
    fn reads_ids_and_states_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = queue(dir.path());
        let file = QueueFile::open(&path).unwrap();
        assert_eq!(file.state_of("A").unwrap(), Some(State::Queued));
        assert_eq!(file.state_of("Z").unwrap(), None);
        assert_eq!(file.count().unwrap(), 2);
        assert_eq!(file.states().unwrap()[&"B".to_string()], State::Processed);
        assert_eq!(file.integrity_check().unwrap(), vec!["ok".to_string()]);
        assert!(file.conn.execute("DELETE FROM messages", []).is_err(), "the connection is read-only");
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(QueueFile::open(&dir.path().join("nope.db")), Err(QueueFileError::Missing { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
