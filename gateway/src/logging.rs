//! Logging: to the journal with structured fields when started by systemd, otherwise to
//! stderr as one line per event with the same fields.
//!
//! Callers never pass message bodies, keys or fiscal codes in clear (use
//! `FiscalCode::redacted`).

use log::kv::{Key, Value, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

/// Installs the logger once, at start-up. `verbose` lowers the threshold to DEBUG.
pub fn init(level: LevelFilter) {
    let installed = if systemd_journal_logger::connected_to_journal() {
        systemd_journal_logger::JournalLog::new()
            .map(|journal| journal.with_syslog_identifier("io-gateway".into()))
            .and_then(|journal| journal.install().map_err(std::io::Error::other))
            .is_ok()
    } else {
        false
    };
    if !installed {
        let _ = log::set_boxed_logger(Box::new(StderrLog));
    }
    log::set_max_level(level);
}

/// `LEVEL target: message key=value key=value`, one line per event.
struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let mut line = format!("{:<5} {}: {}", record.level(), record.target(), record.args());
        let _ = record.key_values().visit(&mut Fields(&mut line));
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

struct Fields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let text = value.to_string();
        if text.contains(char::is_whitespace) || text.is_empty() {
            self.0.push_str(&format!(" {key}={text:?}"));
        } else {
            self.0.push_str(&format!(" {key}={text}"));
        }
        Ok(())
    }
}
