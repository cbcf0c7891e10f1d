//! `power-cut verify`: after the power comes back, every id in the ledger must be in the
//! queue database, which is opened read-only (see `queue_file`) and integrity-checked.

use super::ledger::{self, Ledger};
use super::PowerCutError;
use crate::queue_file::QueueFile;
use crate::report::{Section, Verdict};
use gateway::queue::MessageId;
use std::path::Path;

/// Missing ids listed in the report at most (all are counted).
const LISTED: usize = 1000;

/// What the database holds of the ledger.
#[derive(Debug)]
pub struct Verification {
    pub ledger: Ledger,
    pub missing: Vec<MessageId>,
    /// Messages in the database in all (including ones whose 201 never reached the
    /// ledger: committed just before the cut, which is allowed).
    pub stored: u64,
    pub integrity: Vec<String>,
    pub read_a_copy: bool,
}

pub fn verify(database: &Path, ledger_path: &Path) -> Result<Verification, PowerCutError> {
    let ledger = ledger::read_ledger(ledger_path)?;
    let queue = QueueFile::open(database)?;
    let mut missing = Vec::new();
    for id in &ledger.ids {
        if queue.state_of(&id.to_string())?.is_none() {
            missing.push(*id);
        }
    }
    Ok(Verification {
        stored: queue.count()?,
        integrity: queue.integrity_check()?,
        read_a_copy: queue.read_a_copy(),
        ledger,
        missing,
    })
}

impl Verification {
    /// Adds the figures, checks and the list of missing ids to `section`.
    pub fn describe(&self, section: &mut Section) {
        let acknowledged = self.ledger.ids.len();
        let present = acknowledged - self.missing.len();
        section.figure("acknowledged ids in the ledger", acknowledged.to_string());
        section.figure("of them in the queue", present.to_string());
        section.figure("missing from the queue", self.missing.len().to_string());
        section.figure("messages in the queue in all", self.stored.to_string());
        let how = if self.read_a_copy { "a copy, recovered by SQLite (the WAL needed it)" } else { "read-only" };
        section.figure("database opened", how);
        section.check(
            "the ledger holds acknowledged ids",
            Verdict::from_ok(acknowledged > 0),
            if acknowledged > 0 { format!("{acknowledged} ids") } else { "nothing to verify".into() },
        );
        section.check(
            "every acknowledged message survived",
            Verdict::from_ok(acknowledged > 0 && self.missing.is_empty()),
            format!("{} missing of {acknowledged}", self.missing.len()),
        );
        let sound = self.integrity == ["ok"];
        section.check("database integrity_check", Verdict::from_ok(sound), self.integrity.join("; "));
        if let Some(line) = &self.ledger.torn_last_line {
            section.check(
                "ledger's last line",
                Verdict::Warn,
                format!("{line:?} is not a whole id: cut short while it was written (ignored)"),
            );
        }
        if !self.ledger.bad_lines.is_empty() {
            let lines: Vec<String> = self.ledger.bad_lines.iter().take(5).map(|(n, l)| format!("{n}: {l:?}")).collect();
            section.check(
                "ledger readable",
                Verdict::Warn,
                format!(
                    "{} line(s) are not ids (the ledger's medium lost data?): {}",
                    self.ledger.bad_lines.len(),
                    lines.join(", ")
                ),
            );
        }
        if !self.missing.is_empty() {
            let mut list: Vec<String> = self.missing.iter().take(LISTED).map(|id| format!("- `{id}`")).collect();
            if self.missing.len() > LISTED {
                list.push(format!("- … and {} more", self.missing.len() - LISTED));
            }
            section.detail(format!(
                "Acknowledged with 201 but not in the queue: **{} message(s) lost**.\n\n{}",
                self.missing.len(),
                list.join("\n")
            ));
        }
    }
}

/// `power-cut verify` as a report section.
pub fn run(database: &Path, ledger_path: &Path) -> Result<Section, PowerCutError> {
    let verification = verify(database, ledger_path)?;
    let mut section = Section::new(
        "Power cut: verify",
        format!(
            "Every id in the ledger {} (acknowledged with 201 before the cut) looked up in the queue {} \
             opened read-only, then SQLite's integrity_check.",
            ledger_path.display(),
            database.display()
        ),
    );
    verification.describe(&mut section);
    Ok(section)
}
