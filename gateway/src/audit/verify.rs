//! Checking a stored trail: [`verify`] walks the entries in seq order against every
//! checkpoint and the JWK Set, and its [`Report`] locates each edited, removed, reordered
//! or truncated entry and each forged checkpoint.

use super::chain::{Checkpoint, CheckpointError, Entry, GENESIS};
use crate::signing::{Jwks, Kid};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The first seq checked: 1, or the one after [`verify_after`]'s `after`.
    pub first_seq: u64,
    /// Entries read.
    pub entries: u64,
    /// The highest seq in order (0 when there is none).
    pub last_seq: u64,
    /// Entries `first_seq` to this seq are all there, in order, linked and unedited
    /// (`first_seq - 1`: none).
    pub intact_through: u64,
    /// The highest checkpoint whose signature holds and whose hash the chain matches.
    pub last_checkpoint: Option<u64>,
    /// Every problem found, in the order found.
    pub problems: Vec<Problem>,
}

/// One thing wrong with the trail, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entry's fields do not give its stored hash.
    Edited { seq: u64 },
    /// No entries `first..=last`, though later ones exist.
    Missing { first: u64, last: u64 },
    /// The entry comes after `after`, a higher or equal seq.
    OutOfOrder { seq: u64, after: u64 },
    /// The entry's `prev_hash` is not the stored hash of the entry before it.
    BrokenLink { seq: u64 },
    /// A valid checkpoint signed another hash for this seq.
    CheckpointMismatch { seq: u64 },
    /// A valid checkpoint signed `checkpoint_seq`, past the chain's end at `last_seq`.
    Truncated { checkpoint_seq: u64, last_seq: u64 },
    /// A checkpoint whose signature does not hold.
    ForgedCheckpoint { seq: u64, kid: Kid, reason: CheckpointError },
}

/// Checks the trail: `entries` in the order stored (ascending seq) and every checkpoint.
/// Streams the entries; memory grows only with the checkpoints and the problems found.
pub fn verify(entries: impl IntoIterator<Item = Entry>, checkpoints: &[Checkpoint], keys: &Jwks) -> Report {
    let mut verifier = Verifier::new(checkpoints, keys);
    entries.into_iter().for_each(|entry| verifier.push(entry));
    verifier.finish()
}

/// Checks a trail that starts after entry `after` (an export `--since after + 1`): the
/// first entry's link to the entry before it is taken as given, and checkpoints at or
/// before `after` are not looked at. Everything from `after + 1` on is checked as
/// [`verify`] does; nothing before it is.
pub fn verify_after(
    after: u64,
    entries: impl IntoIterator<Item = Entry>,
    checkpoints: &[Checkpoint],
    keys: &Jwks,
) -> Report {
    let mut verifier = Verifier::after(after, checkpoints, keys);
    entries.into_iter().for_each(|entry| verifier.push(entry));
    verifier.finish()
}

/// [`verify`] one entry at a time, for a reader that pushes entries as it parses them.
pub struct Verifier<'a> {
    report: Report,
    /// Checkpoints whose signature holds, by seq, not yet matched to an entry.
    pending: BTreeMap<u64, Vec<&'a Checkpoint>>,
    head_seq: u64,
    /// The hash the next entry must link to (`None`: the first entry after `after`).
    head_hash: Option<[u8; 32]>,
    intact: bool,
    found_late: Vec<u64>,
}

impl<'a> Verifier<'a> {
    /// For a whole trail, from seq 1.
    pub fn new(checkpoints: &'a [Checkpoint], keys: &Jwks) -> Verifier<'a> {
        Verifier::start(0, Some(GENESIS), checkpoints, keys)
    }

    /// For a trail that starts after `after`, as [`verify_after`].
    pub fn after(after: u64, checkpoints: &'a [Checkpoint], keys: &Jwks) -> Verifier<'a> {
        match after {
            0 => Verifier::new(checkpoints, keys),
            _ => Verifier::start(after, None, checkpoints, keys),
        }
    }

    fn start(seq: u64, hash: Option<[u8; 32]>, checkpoints: &'a [Checkpoint], keys: &Jwks) -> Verifier<'a> {
        let mut report = Report {
            first_seq: seq + 1,
            entries: 0,
            last_seq: seq,
            intact_through: seq,
            last_checkpoint: None,
            problems: Vec::new(),
        };
        let mut pending: BTreeMap<u64, Vec<&Checkpoint>> = BTreeMap::new();
        for checkpoint in checkpoints.iter().filter(|c| c.seq >= seq) {
            match checkpoint.verify_signature(keys) {
                Ok(()) => pending.entry(checkpoint.seq).or_default().push(checkpoint),
                Err(reason) => report.problems.push(Problem::ForgedCheckpoint {
                    seq: checkpoint.seq,
                    kid: checkpoint.kid.clone(),
                    reason,
                }),
            }
        }
        let at_start = pending.remove(&seq).unwrap_or_default();
        if let Some(hash) = hash {
            for checkpoint in at_start {
                report.match_checkpoint(checkpoint, &hash);
            }
        }
        Verifier { report, pending, head_seq: seq, head_hash: hash, intact: true, found_late: Vec::new() }
    }

    /// The next entry in the order stored.
    pub fn push(&mut self, entry: Entry) {
        let report = &mut self.report;
        report.entries += 1;
        let known = report.problems.len();
        if entry.seq <= self.head_seq {
            report.problems.push(Problem::OutOfOrder { seq: entry.seq, after: self.head_seq });
            self.found_late.push(entry.seq);
        } else {
            if entry.seq > self.head_seq.saturating_add(1) {
                report.problems.push(Problem::Missing { first: self.head_seq + 1, last: entry.seq - 1 });
            } else if self.head_hash.is_some_and(|hash| entry.prev_hash != hash) {
                report.problems.push(Problem::BrokenLink { seq: entry.seq });
            }
            (self.head_seq, self.head_hash) = (entry.seq, Some(entry.hash));
        }
        if entry.computed_hash() != entry.hash {
            report.problems.push(Problem::Edited { seq: entry.seq });
        }
        for checkpoint in self.pending.remove(&entry.seq).unwrap_or_default() {
            report.match_checkpoint(checkpoint, &entry.hash);
        }
        self.intact = self.intact && report.problems.len() == known;
        if self.intact {
            report.intact_through = entry.seq;
        }
    }

    /// The report, once every entry was pushed.
    pub fn finish(self) -> Report {
        let Verifier { mut report, pending, head_seq, found_late, .. } = self;
        report.last_seq = head_seq;
        report.problems = not_missing(std::mem::take(&mut report.problems), &found_late);
        // Checkpoints left within the chain name an entry already reported missing.
        if let Some((&checkpoint_seq, _)) = pending.range((Bound::Excluded(head_seq), Bound::Unbounded)).next_back() {
            report.problems.push(Problem::Truncated { checkpoint_seq, last_seq: head_seq });
        }
        report
    }
}

impl Report {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    fn match_checkpoint(&mut self, checkpoint: &Checkpoint, hash: &[u8; 32]) {
        if checkpoint.hash == *hash {
            self.last_checkpoint = self.last_checkpoint.max(Some(checkpoint.seq));
        } else {
            self.problems.push(Problem::CheckpointMismatch { seq: checkpoint.seq });
        }
    }
}

/// `problems` with the entries that turned up out of order taken out of `Missing` ranges.
fn not_missing(problems: Vec<Problem>, found_late: &[u64]) -> Vec<Problem> {
    let mut kept = Vec::with_capacity(problems.len());
    for problem in problems {
        let Problem::Missing { first, last } = problem else {
            kept.push(problem);
            continue;
        };
        let mut inside: Vec<u64> = found_late.iter().copied().filter(|seq| (first..=last).contains(seq)).collect();
        inside.sort_unstable();
        inside.dedup();
        let mut start = first;
        for seq in inside {
            if seq > start {
                kept.push(Problem::Missing { first: start, last: seq - 1 });
            }
            start = seq + 1;
        }
        if start <= last {
            kept.push(Problem::Missing { first: start, last });
        }
    }
    kept
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited { seq } => write!(f, "entry {seq} was edited: its fields do not give its stored hash"),
            Problem::Missing { first, last } if first == last => write!(f, "entry {first} is missing"),
            Problem::Missing { first, last } => write!(f, "entries {first} to {last} are missing"),
            Problem::OutOfOrder { seq, after } => write!(f, "entry {seq} comes after entry {after}: reordered"),
            Problem::BrokenLink { seq } => {
                write!(f, "entry {seq} does not link to the entry before it: that entry was replaced or renumbered")
            }
            Problem::CheckpointMismatch { seq } => {
                write!(f, "the checkpoint at seq {seq} signed another hash: entries up to {seq} were rewritten")
            }
            Problem::Truncated { checkpoint_seq, last_seq } => write!(
                f,
                "the chain ends at seq {last_seq} but a checkpoint signed seq {checkpoint_seq}: entries were cut off"
            ),
            Problem::ForgedCheckpoint { seq, kid, reason } => {
                write!(f, "the checkpoint at seq {seq} (key {kid}) is forged: {reason}")
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checkpoint = match self.last_checkpoint {
            Some(seq) => format!("last signed checkpoint at seq {seq}"),
            None => "no signed checkpoint".to_string(),
        };
        if !self.is_intact() {
            write!(
                f,
                "NOT intact: {} problem(s); intact up to seq {}, {checkpoint}",
                self.problems.len(),
                self.intact_through
            )?;
            return self.problems.iter().try_for_each(|problem| write!(f, "\n- {problem}"));
        }
        write!(f, "verified {} entries up to seq {}", self.entries, self.last_seq)?;
        if self.first_seq > 1 {
            write!(f, " (from seq {}; earlier entries not checked)", self.first_seq)?;
        }
        write!(f, ", {checkpoint}")?;
        let covered = self.last_checkpoint.unwrap_or(self.first_seq.saturating_sub(1));
        let uncovered = self.last_seq.saturating_sub(covered);
        if uncovered > 0 {
            write!(f, "; the last {uncovered} entries are not yet covered by a checkpoint")?;
        }
        Ok(())
    }
}

/// A stored trail checked whole: the chain's [`Report`], plus what storage adds — rows
/// that are not entries at all, and changes the queue holds that no entry records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub report: Report,
    /// Rows that could not be read as entries (their seq also shows as missing).
    pub unreadable: Vec<Unreadable>,
    /// The queue's newest change, when no entry records it.
    pub unrecorded: Option<Unrecorded>,
}

/// A stored row that is not an entry: a field of the wrong type, an unknown kind, a hash
/// of the wrong length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub seq: i64,
    pub reason: String,
}

/// A change the queue recorded (a message accepted, a state changed) that no entry
/// records, though it is newer than the trail's start: entries after the trail's last
/// were removed (or the change was written without the trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecorded {
    pub message_id: String,
    /// `accepted`, or the states, as `sent -> processed`.
    pub change: String,
    pub at_ms: i64,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.report.is_intact() && self.unreadable.is_empty() && self.unrecorded.is_none()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.report.is_intact() && !self.is_intact() {
            write!(f, "NOT intact: the chain holds up to seq {}, but", self.report.last_seq)?;
            writeln!(f, " the trail does not match the queue")?;
            write!(f, "  ({})", self.report)?;
        } else {
            write!(f, "{}", self.report)?;
        }
        for row in &self.unreadable {
            write!(f, "\n- entry {} cannot be read: {}", row.seq, row.reason)?;
        }
        if let Some(change) = &self.unrecorded {
            let at = jiff::Timestamp::from_millisecond(change.at_ms).map(|t| t.to_string()).unwrap_or_default();
            write!(
                f,
                "\n- the queue records {} of message {} at {at}, but no audit entry does: \
                 entries after seq {} were removed",
                change.change, change.message_id, self.report.last_seq
            )?;
        }
        Ok(())
    }
}
