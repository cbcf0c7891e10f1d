//! Watch folders: a legacy system drops a file into `<directory>/inbox/`; the daemon
//! imports it and moves it to `done/` or `rejected/`, with its report beside it.
//!
//! * A file is picked up only when its size and modification time have not changed for
//!   the folder's `settle_seconds`, and never while its name marks it as being written
//!   (a leading `.`, or `.part`, `.tmp`, `.filepart`, `.crdownload` at the end): a file
//!   still being copied is left alone.
//! * Moves are renames inside the folder (one file system), so they are atomic: a file is
//!   in exactly one of `inbox/`, `done/`, `rejected/`. A name already taken in the
//!   destination gets a time suffix; nothing is overwritten.
//! * `done/NAME`: read to its end. `NAME.summary.txt` says what was queued;
//!   `NAME.report.csv` lists rejected rows, if any.
//! * `rejected/NAME`: the file could not be used (unreadable, wrong format, truncated or
//!   corrupt, or the folder's template is broken): `NAME.error.txt` says why. Records
//!   read before a truncation *are* queued, and the error file says so.
//! * A full queue or low disk leaves the file in `inbox/` and it is tried again a minute
//!   later: records already queued are skipped as duplicates. A crash mid-import does
//!   the same at the next start.

use super::templates::TemplateCache;
use super::{run, Format, Job, Outcome, Progress, Report, Request, Sink};
use crate::config::{Config, WatchFolder};
use crate::metrics::Metrics;
use crate::queue::Limits;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// How often inboxes are listed.
const SCAN_EVERY: Duration = Duration::from_secs(2);
/// How long a file refused by a full queue waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);
const IN_PROGRESS_SUFFIXES: &[&str] = &[".part", ".tmp", ".filepart", ".crdownload"];

/// The running watcher.
pub struct Watcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    templates: Arc<TemplateCache>,
}

/// What every import of the watcher shares.
struct Shared {
    config: Arc<Config>,
    database: PathBuf,
    limits: Limits,
    templates: Arc<TemplateCache>,
    metrics: Arc<Metrics>,
    /// The appliance key for the audit checkpoint each import signs (empty: none), and
    /// the data keys that seal what it queues.
    keys: crate::queue::Keys,
}

impl Watcher {
    /// Creates the folders' `inbox/`, `done/`, `rejected/` and starts watching. `None`
    /// when no folder is configured.
    pub fn start(
        config: Arc<Config>,
        database: PathBuf,
        limits: Limits,
        metrics: Arc<Metrics>,
        keys: crate::queue::Keys,
    ) -> Option<Watcher> {
        if config.import.watch.is_empty() {
            return None;
        }
        for folder in &config.import.watch {
            for sub in ["inbox", "done", "rejected"] {
                let dir = folder.directory.join(sub);
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    log::error!(directory:display = dir.display(), error:display = e; "cannot create a watch folder directory");
                }
            }
            log::info!(directory:display = folder.directory.display(), format = folder.format.as_str(); "watching for files");
        }
        let (stop, stopped) = watch::channel(false);
        let templates = Arc::new(TemplateCache::load(&config));
        let templates_shared = Arc::clone(&templates);
        let shared = Arc::new(Shared { config, database, limits, templates: templates_shared, metrics, keys });
        let task = tokio::spawn(watch_loop(shared, stopped));
        Some(Watcher { stop, task, templates })
    }

    /// The folders' templates, for a SIGHUP reload.
    pub fn templates(&self) -> Arc<TemplateCache> {
        Arc::clone(&self.templates)
    }

    /// Stops after the file being imported, if any, is finished.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What we know of a file in an inbox.
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
    not_before: Option<Instant>,
}

async fn watch_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
    while !*stop.borrow() {
        for folder in &shared.config.import.watch {
            for path in ready_files(folder, &mut seen) {
                let (shared, folder) = (Arc::clone(&shared), folder.clone());
                let file = path.clone();
                let done = tokio::task::spawn_blocking(move || import_one(&shared, &folder, &file));
                match done.await {
                    Ok(Disposition::Retry) => {
                        if let Some(entry) = seen.get_mut(&path) {
                            entry.not_before = Some(Instant::now() + RETRY_AFTER);
                        }
                    }
                    Ok(Disposition::Moved) => {
                        seen.remove(&path);
                    }
                    Err(e) => log::error!(error:display = e; "a watch-folder import stopped unexpectedly"),
                }
                if *stop.borrow() {
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SCAN_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Files of `folder`'s inbox that have not changed for its settle time.
fn ready_files(folder: &WatchFolder, seen: &mut HashMap<PathBuf, Seen>) -> Vec<PathBuf> {
    let inbox = folder.directory.join("inbox");
    let entries = match std::fs::read_dir(&inbox) {
        Ok(entries) => entries,
        Err(e) => {
            log::warn!(directory:display = inbox.display(), error:display = e; "cannot list a watch folder");
            return Vec::new();
        }
    };
    let now = Instant::now();
    let mut present = Vec::new();
    let mut ready = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || IN_PROGRESS_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        present.push(path.clone());
        let (size, modified) = (meta.len(), meta.modified().ok());
        let entry = seen.entry(path.clone()).or_insert(Seen { size, modified, since: now, not_before: None });
        if entry.size != size || entry.modified != modified {
            *entry = Seen { size, modified, since: now, not_before: entry.not_before };
            continue;
        }
        let waiting = entry.not_before.is_some_and(|t| now < t);
        if now.duration_since(entry.since) >= folder.settle && !waiting {
            ready.push(path);
        }
    }
    seen.retain(|path, _| !path.starts_with(&inbox) || present.contains(path));
    ready.sort();
    ready
}

enum Disposition {
    Moved,
    Retry,
}

/// Imports one settled file and moves it.
fn import_one(shared: &Shared, folder: &WatchFolder, file: &Path) -> Disposition {
    let (config, database, limits) = (shared.config.as_ref(), shared.database.as_path(), shared.limits);
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let done_dir = folder.directory.join("done");
    let rejected_dir = folder.directory.join("rejected");
    let report_path = done_dir.join(format!("{name}.report.csv"));
    let load = |name: &str| shared.templates.get(config, name);
    let job = folder
        .format
        .parse::<Format>()
        .and_then(|format| Job::resolve_with(config, format, &request_for(folder), load));
    let files = shared.metrics.import_files.clone();
    let count_file = |result: &str| files.with_label_values(&[folder.format.as_str(), result]).inc();
    let job = match job {
        Ok(job) => job,
        Err(reason) => {
            log::error!(file = name.as_str(), reason = reason.as_str(); "watch folder: cannot import; file rejected");
            move_with_note(file, &rejected_dir, &name, "error.txt", &format!("not imported: {reason}\n"));
            count_file("rejected");
            return Disposition::Moved;
        }
    };
    let mut report = Report::to_file(&report_path);
    let started = Instant::now();
    let sink = Sink::Queue { database, limits, audit_key: shared.keys.audit.get(), data_keys: shared.keys.data.get() };
    let outcome = run(&job, file, sink, &mut report, &mut Progress::silent());
    let report_written = report.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(reason) => {
            log::error!(file = name.as_str(), reason = reason.as_str(); "watch folder: cannot import; file rejected");
            move_with_note(file, &rejected_dir, &name, "error.txt", &format!("not imported: {reason}\n"));
            count_file("rejected");
            return Disposition::Moved;
        }
    };
    count_rows(shared, folder, &job, &outcome);
    log_outcome(&name, &outcome, started.elapsed());
    if let Err(e) = &report_written {
        log::error!(file = name.as_str(), error = e.as_str(); "watch folder: the report could not be written");
    }
    if let Some((count, reason)) = &outcome.not_queued {
        log::warn!(file = name.as_str(), not_queued = *count, reason = reason.as_str();
                   "watch folder: the queue refused messages; the file stays in the inbox and is retried");
        return Disposition::Retry;
    }
    if outcome.failure.is_some() {
        let moved_report = matches!(report_written, Ok(Some(_)))
            .then(|| std::fs::rename(&report_path, rejected_dir.join(format!("{name}.report.csv"))));
        if let Some(Err(e)) = moved_report {
            log::warn!(file = name.as_str(), error:display = e; "watch folder: the report stays in done/");
        }
        move_with_note(file, &rejected_dir, &name, "error.txt", &outcome.to_string());
        count_file("rejected");
    } else {
        move_with_note(file, &done_dir, &name, "summary.txt", &outcome.to_string());
        count_file("done");
    }
    Disposition::Moved
}

/// Rows by result, and the messages queued as accepted (source `import`).
fn count_rows(shared: &Shared, folder: &WatchFolder, job: &Job, outcome: &Outcome) {
    let metrics = &shared.metrics;
    let format = folder.format.as_str();
    for (result, count) in [
        ("queued", outcome.queued),
        ("duplicate", outcome.duplicates),
        ("rejected", outcome.rejected),
        ("skipped", outcome.skipped),
    ] {
        metrics.import_rows.with_label_values(&[format, result]).inc_by(count);
    }
    let institution =
        shared.config.institutions.iter().find(|i| i.fiscal_code == job.institution).map_or("?", |i| i.name.as_str());
    metrics.accepted.with_label_values(&[institution, job.service.as_str(), "import"]).inc_by(outcome.queued);
}

fn request_for(folder: &WatchFolder) -> Request {
    Request {
        template: folder.template.clone(),
        service: folder.service.as_ref().map(|s| s.as_str().to_string()),
        mapping: folder.mapping.clone(),
        campaign: folder.campaign.clone(),
        warn_only_check_digits: folder.warn_only_check_digits,
        iuv_aux_digit: None,
        today: None,
    }
}

/// Renames `file` into `dir` (a free name) and writes a note beside it.
fn move_with_note(file: &Path, dir: &Path, name: &str, note_suffix: &str, note: &str) {
    let mut target = dir.join(name);
    if target.exists() {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
        target = dir.join(format!("{name}.{stamp}"));
    }
    if let Err(e) = std::fs::rename(file, &target) {
        log::error!(file = name, error:display = e; "watch folder: cannot move the file out of the inbox");
        return;
    }
    let note_path = target.with_file_name(format!(
        "{}.{note_suffix}",
        target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    if let Err(e) = std::fs::write(&note_path, note) {
        log::warn!(file = name, error:display = e; "watch folder: cannot write the note beside the file");
    }
}

fn log_outcome(name: &str, outcome: &Outcome, took: Duration) {
    log::info!(
        file = name,
        records = outcome.records,
        queued = outcome.queued,
        duplicates = outcome.duplicates,
        rejected = outcome.rejected,
        skipped = outcome.skipped,
        seconds = took.as_secs_f64();
        "watch folder: file imported"
    );
    if let Some(failure) = &outcome.failure {
        log::error!(file = name, reason = failure.as_str(); "watch folder: the file is incomplete or damaged");
    }
}
