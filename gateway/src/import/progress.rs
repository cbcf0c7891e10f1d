//! How an import shows it is alive: a progress bar on a terminal, a plain line every few
//! seconds otherwise (cron, systemd, a pipe), nothing for the watch folders (they log).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Plain progress lines are this far apart.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    /// Bytes of the file read so far (updated by the reader).
    pub(super) bytes: Arc<AtomicU64>,
    mode: Mode,
    total: u64,
    records: u64,
    last_line: Instant,
}

enum Mode {
    Bar(ProgressBar),
    Lines,
    Silent,
}

impl Progress {
    /// A bar when stderr is a terminal, periodic lines on stderr otherwise.
    pub fn on_stderr() -> Progress {
        let mode = if std::io::stderr().is_terminal() { Mode::Bar(ProgressBar::hidden()) } else { Mode::Lines };
        Progress::with(mode)
    }

    pub fn silent() -> Progress {
        Progress::with(Mode::Silent)
    }

    fn with(mode: Mode) -> Progress {
        Progress { bytes: Arc::new(AtomicU64::new(0)), mode, total: 0, records: 0, last_line: Instant::now() }
    }

    pub(super) fn start(&mut self, total: u64) {
        self.total = total;
        if let Mode::Bar(bar) = &self.mode {
            bar.set_length(total);
            bar.set_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:40} {percent:>3}% {bytes}/{total_bytes} {msg} ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
        }
    }

    pub(super) fn record(&mut self) {
        self.records += 1;
        if self.records.is_multiple_of(4096) {
            self.tick();
        }
    }

    fn tick(&mut self) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!("{} records", self.records));
            }
            Mode::Lines if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                eprintln!("import: {} records read, {}% of the file", self.records, percent(bytes, self.total));
            }
            Mode::Lines | Mode::Silent => {}
        }
    }

    pub(super) fn finish(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

fn percent(done: u64, total: u64) -> u64 {
    (done.min(total) * 100).checked_div(total).unwrap_or(100)
}
