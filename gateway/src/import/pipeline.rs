//! The import's two threads: batches go from the reading thread to a writer thread that
//! owns the `Importer`; the first refusal stops the reading side early.
//!
//! The writer hands each spent batch back, and the reading thread drops its messages and
//! fills the same vector again: what one thread allocated is freed by that thread. Freed
//! on the writer — the import's bottleneck — they showed as ~5% of its time in the
//! allocator's cross-thread bookkeeping (`perf`, a million-record import); the gain from
//! moving them was within the machine's noise.

use crate::queue::{BatchOutcome, ImportBatch, ImportedMessage, Importer, QueueError};
use crate::seal::DataKeys;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

/// Where built batches go: a writer thread, or nowhere (dry run).
pub(super) enum Stage {
    Queue {
        batches: Option<mpsc::SyncSender<ImportBatch>>,
        /// Batches the writer is done with, to be emptied and filled again.
        spent: mpsc::Receiver<Vec<ImportedMessage>>,
        stopped: Arc<AtomicBool>,
        /// The digest the job's template is stored under.
        template: [u8; 32],
        /// The queue's data keys: each message is sealed as its batch is built.
        keys: Arc<DataKeys>,
    },
    DryRun(Option<Box<Importer>>),
}

pub(super) struct WriterThread {
    thread: std::thread::JoinHandle<WriterResult>,
}

#[derive(Default)]
pub(super) struct WriterResult {
    pub(super) done: BatchOutcome,
    pub(super) error: Option<String>,
}

impl WriterThread {
    pub(super) fn join(self) -> WriterResult {
        self.thread.join().unwrap_or_else(|_| WriterResult {
            error: Some("the import's queue writer stopped unexpectedly".into()),
            ..WriterResult::default()
        })
    }
}

impl Stage {
    pub(super) fn queueing(mut importer: Importer, template: [u8; 32]) -> (Stage, WriterThread) {
        let keys = importer.keys();
        let (batches, received) = mpsc::sync_channel::<ImportBatch>(4);
        let (give_back, spent) = mpsc::sync_channel::<Vec<ImportedMessage>>(8);
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopped);
        let thread = std::thread::spawn(move || {
            let mut result = WriterResult::default();
            for batch in received {
                if result.error.is_some() {
                    continue;
                }
                let inserted = importer.insert(&batch);
                // Full (the reader is behind) or gone: then it is dropped here.
                let _ = give_back.try_send(batch.messages);
                match inserted {
                    Ok(done) => {
                        result.done.inserted += done.inserted;
                        result.done.duplicates += done.duplicates;
                    }
                    Err(error) => {
                        result.error = Some(queue_refusal(&error));
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            // Whatever was committed, the trail's new head is signed, and all of it is
            // flushed to disk before the import reports it queued.
            if let Err(error) = importer.sign_checkpoint() {
                log::warn!(error:display = error; "import: cannot sign the audit checkpoint; the trail's tail stays unsigned");
            }
            if let Err(error) = importer.sync() {
                log::error!(error:display = error; "import: the queued messages may not survive a power cut");
                result.error.get_or_insert_with(|| {
                    format!("{error}: a power cut may lose the last batches; run the import again (what is queued is skipped)")
                });
            }
            result
        });
        (Stage::Queue { batches: Some(batches), spent, stopped, template, keys }, WriterThread { thread })
    }

    pub(super) fn dry_run(importer: Option<Importer>) -> Stage {
        Stage::DryRun(importer.map(Box::new))
    }

    pub(super) fn stopped(&self) -> bool {
        match self {
            Stage::Queue { stopped, .. } => stopped.load(Ordering::Relaxed),
            Stage::DryRun(_) => false,
        }
    }

    /// An empty vector for the next batch: a spent one when the writer gave one back.
    pub(super) fn empty_batch(&self) -> Vec<ImportedMessage> {
        match self {
            Stage::Queue { spent, .. } => spent.try_recv().map(|mut batch| {
                batch.clear();
                batch
            }),
            Stage::DryRun(_) => Ok(Vec::new()),
        }
        .unwrap_or_default()
    }

    pub(super) fn send(&mut self, batch: ImportBatch) {
        if let Stage::Queue { batches: Some(sender), .. } = self {
            // The writer only goes away after the channel closes, so this cannot fail
            // while we hold the sender; if it ever did, the join reports the loss.
            let _ = sender.send(batch);
        }
    }
}

fn queue_refusal(error: &QueueError) -> String {
    match error {
        QueueError::Full { pending, limit } => {
            format!("the queue is full ({pending} messages awaiting delivery, limit {limit})")
        }
        QueueError::DiskLow { free_bytes, min_bytes } => {
            format!("free disk {free_bytes} bytes is below the minimum {min_bytes}")
        }
        other => other.to_string(),
    }
}

/// A reader that counts the bytes read through it, for the progress display.
pub(super) struct Counted<R> {
    pub(super) inner: R,
    pub(super) read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.inner.seek(pos)?;
        self.read.store(at, Ordering::Relaxed);
        Ok(at)
    }
}
