//! `storage`: how fast the disk under the queue makes data durable. A raw loop of 4 KiB
//! writes each followed by fdatasync, then SQLite commits with the gateway's settings
//! (WAL, synchronous=FULL, no automatic checkpoint but a checkpoint every 50 ms on a
//! connection of its own, one ~1 KiB row per commit). Its files are removed afterwards.

use crate::latency::{self, Latencies};
use crate::report::{Section, Verdict};
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The fsync test overwrites the blocks of a file of this size in turn, as a WAL is
/// reused after checkpoints (so the loop measures data flushes, not file growth).
const FILE_BYTES: u64 = 16 * 1024 * 1024;
const BLOCK: usize = 4096;
/// A flush faster than this at the median is most likely acknowledged from a volatile
/// cache (or a hypervisor that ignores flushes): only a power cut can tell for sure.
const SUSPICIOUSLY_FAST: Duration = Duration::from_micros(50);

#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub dir: PathBuf,
    /// How long each of the two loops runs.
    pub duration: Duration,
    pub min_fsyncs_per_second: f64,
    pub min_commits_per_second: f64,
    pub max_commit_p99: Duration,
    /// The file system type of `dir` (from /proc/mounts), if known.
    pub fs_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("fsync test on {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("SQLite test on {path}: {operation}: {source}")]
    Sqlite { path: PathBuf, operation: &'static str, source: rusqlite::Error },
    #[error("SQLite test on {path}: the database runs with journal_mode={found}, not WAL")]
    NotWal { path: PathBuf, found: String },
    #[error("cannot start the checkpoint thread: {0}")]
    Thread(std::io::Error),
}

/// Runs both loops and judges them.
pub fn run(options: &StorageOptions) -> Result<Section, StorageError> {
    let (fsyncs, fsync_time) = fsync_loop(&options.dir, options.duration)?;
    let (commits, commit_time) = commit_loop(&options.dir, options.duration)?;
    let mut section = Section::new(
        "Storage: fsync and SQLite commits",
        format!(
            "In {}: 4 KiB writes each followed by fdatasync, for {:.1} s; then one ~1 KiB row per SQLite \
             transaction with the gateway's settings (WAL, synchronous=FULL, checkpoints off the commit \
             path), for {:.1} s. A commit is what each 201 waits for when clients post one at a time.",
            options.dir.display(),
            options.duration.as_secs_f64(),
            options.duration.as_secs_f64()
        ),
    );
    let fsync_rate = latency::rate(fsyncs.len(), fsync_time);
    let commit_rate = latency::rate(commits.len(), commit_time);
    section.figure("fsyncs (4 KiB write + fdatasync)", fsyncs.len().to_string());
    section.figure("fsyncs per second", format!("{fsync_rate:.0}"));
    let commit_summary = commits.summary();
    if let Some(s) = fsyncs.summary() {
        section.figure("fsync latency", s.describe());
        let fast = s.p50 < SUSPICIOUSLY_FAST;
        section.check(
            "flushes look real",
            if fast { Verdict::Warn } else { Verdict::Pass },
            if fast {
                format!(
                    "median flush {}: that fast, the device or the hypervisor probably acknowledges flushes \
                     from a volatile cache; run the power-cut procedure before trusting it",
                    latency::millis(s.p50)
                )
            } else {
                format!("median flush {}", latency::millis(s.p50))
            },
        );
    }
    section.figure("SQLite commits (one ~1 KiB row each)", commits.len().to_string());
    section.figure("SQLite commits per second", format!("{commit_rate:.0}"));
    if let Some(s) = commit_summary {
        section.figure("SQLite commit latency", s.describe());
    }
    section.check(
        format!("fsyncs per second ≥ {}", options.min_fsyncs_per_second),
        Verdict::from_ok(fsync_rate >= options.min_fsyncs_per_second),
        format!("{fsync_rate:.0}/s"),
    );
    section.check(
        format!("SQLite commits per second ≥ {}", options.min_commits_per_second),
        Verdict::from_ok(commit_rate >= options.min_commits_per_second),
        format!("{commit_rate:.0}/s (IO takes at most 30 calls/s per institution)"),
    );
    let p99 = commit_summary.map(|s| s.p99).unwrap_or(Duration::MAX);
    section.check(
        format!("SQLite commit p99 ≤ {} ms", options.max_commit_p99.as_millis()),
        Verdict::from_ok(p99 <= options.max_commit_p99),
        commit_summary.map(|s| latency::millis(s.p99)).unwrap_or_else(|| "no commit completed".into()),
    );
    if let Some(fs_type) = &options.fs_type {
        let volatile = matches!(fs_type.as_str(), "tmpfs" | "ramfs");
        section.check(
            "file system survives power loss",
            if volatile { Verdict::Fail } else { Verdict::Pass },
            if volatile { format!("{fs_type} lives in memory: the queue must not") } else { fs_type.clone() },
        );
    }
    Ok(section)
}

/// 4 KiB writes at successive offsets of a preallocated file, each followed by
/// fdatasync, for `duration` (at least 10 of them).
pub fn fsync_loop(dir: &Path, duration: Duration) -> Result<(Latencies, Duration), StorageError> {
    let path = dir.join(format!(".hw-tests-fsync-{}.bin", std::process::id()));
    let _remove = Remove(vec![path.clone()]);
    let io = |source| StorageError::File { path: path.clone(), source };
    let file = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(&path).map_err(io)?;
    let zeros = vec![0u8; 1024 * 1024];
    for chunk in 0..FILE_BYTES / zeros.len() as u64 {
        file.write_all_at(&zeros, chunk * zeros.len() as u64).map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    let blocks = FILE_BYTES / BLOCK as u64;
    let mut block = [0u8; BLOCK];
    let mut latencies = Latencies::new();
    let started = Instant::now();
    let mut i: u64 = 0;
    while started.elapsed() < duration || latencies.len() < 10 {
        block.iter_mut().enumerate().for_each(|(j, b)| *b = (i as usize).wrapping_add(j) as u8);
        let t = Instant::now();
        file.write_all_at(&block, (i % blocks) * BLOCK as u64).map_err(io)?;
        file.sync_data().map_err(io)?;
        latencies.push(t.elapsed());
        i += 1;
    }
    Ok((latencies, started.elapsed()))
}

/// One ~1 KiB row per transaction into a fresh database, for `duration` (at least 10).
pub fn commit_loop(dir: &Path, duration: Duration) -> Result<(Latencies, Duration), StorageError> {
    let path = dir.join(format!(".hw-tests-commit-{}.db", std::process::id()));
    let _remove =
        Remove(["", "-wal", "-shm"].iter().map(|s| PathBuf::from(format!("{}{s}", path.display()))).collect());
    let sql = |operation| {
        let path = path.clone();
        move |source| StorageError::Sqlite { path, operation, source }
    };
    let conn = open(&path)?;
    conn.execute_batch(
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, body BLOB NOT NULL);
         PRAGMA wal_autocheckpoint = 0;",
    )
    .map_err(sql("creating the table"))?;
    let checkpoints = open(&path)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let checkpointer = std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_millis(50))
            {
                // A failed checkpoint is retried 50 ms later, as the gateway does.
                let _ = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .map_err(StorageError::Thread)?;
    let body: Vec<u8> = (0..1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut insert =
        conn.prepare("INSERT INTO messages (id, body) VALUES (?1, ?2)").map_err(sql("preparing the insert"))?;
    let mut latencies = Latencies::new();
    let started = Instant::now();
    let result = loop {
        if started.elapsed() >= duration && latencies.len() >= 10 {
            break Ok(());
        }
        let t = Instant::now();
        if let Err(e) = insert.execute((gateway::queue::MessageId::new().to_string(), &body)) {
            break Err(sql("committing a row")(e));
        }
        latencies.push(t.elapsed());
    };
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let _ = checkpointer.join();
    result.map(|()| (latencies, elapsed))
}

fn open(path: &Path) -> Result<Connection, StorageError> {
    let sql = |operation| move |source| StorageError::Sqlite { path: path.to_path_buf(), operation, source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql("opening"))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sql("setting the busy timeout"))?;
    let journal: String =
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(sql("setting journal_mode=WAL"))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StorageError::NotWal { path: path.to_path_buf(), found: journal });
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864;")
        .map_err(sql("setting synchronous=FULL"))?;
    Ok(conn)
}

/// Removes its files when dropped (the test's scratch files, whatever happened).
struct Remove(Vec<PathBuf>);

impl Drop for Remove {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_loops_measure_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let (fsyncs, _) = fsync_loop(dir.path(), Duration::from_millis(50)).unwrap();
        let (commits, _) = commit_loop(dir.path(), Duration::from_millis(50)).unwrap();
        assert!(fsyncs.len() >= 10 && commits.len() >= 10);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "scratch files removed");
    }
}
