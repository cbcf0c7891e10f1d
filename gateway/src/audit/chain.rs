//! The audit trail's hash chain: entries and their canonical hash, the [`Chain`] that
//! appends them, [`Checkpoint`]s signed with the appliance key, and [`verify`], which finds
//! and locates any edited, removed, reordered or truncated entry and any forged checkpoint.

use crate::signing::jwk::SIGNATURE_LEN;
use crate::signing::{Jwks, Kid, SigningKey};
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

/// The `prev_hash` of the first entry, and the hash of the empty chain.
pub const GENESIS: [u8; 32] = [0; 32];
const ENTRY_DOMAIN: &[u8] = b"io-gateway audit entry v1";
const CHECKPOINT_DOMAIN: &[u8] = b"io-gateway audit checkpoint v1";

/// What happened. The spellings ([`Kind::as_str`]) are part of every entry's hash: never
/// change one; add new kinds instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A message was committed to the queue (local API or import).
    Accepted,
    /// IO answered 201; the detail holds IO's id for the message.
    Sent,
    /// IO's final status for the message (processed, rejected, failed, …).
    FinalStatus,
    /// The message was refused for good (by IO, or as not deliverable).
    Rejected,
    /// Not delivered within the message's maximum age.
    Expired,
    /// Set aside by an operator (the actor) or a policy.
    Held,
    /// Released by an operator (the actor).
    Released,
    /// Cancelled by an operator (the actor) before it was sent.
    Cancelled,
    /// Content and personal data removed (retention, or a citizen's request).
    Erased,
    /// The appliance key was rotated; the detail holds the retired and new key ids.
    KeyRotated,
    /// A checkpoint was signed; the detail holds its seq.
    Checkpoint,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Accepted,
        Kind::Sent,
        Kind::FinalStatus,
        Kind::Rejected,
        Kind::Expired,
        Kind::Held,
        Kind::Released,
        Kind::Cancelled,
        Kind::Erased,
        Kind::KeyRotated,
        Kind::Checkpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Accepted => "accepted",
            Kind::Sent => "sent",
            Kind::FinalStatus => "final_status",
            Kind::Rejected => "rejected",
            Kind::Expired => "expired",
            Kind::Held => "held",
            Kind::Released => "released",
            Kind::Cancelled => "cancelled",
            Kind::Erased => "erased",
            Kind::KeyRotated => "key_rotated",
            Kind::Checkpoint => "checkpoint",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown audit entry kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownKind(s.to_string()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What to record: an entry before it has a place in the chain. `detail` and `actor` must
/// hold no personal data (no fiscal code, name or message content): entries are never
/// erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub message_id: Option<String>,
    /// Who did it: an operator, a local client, or none for the gateway itself.
    pub actor: Option<String>,
    pub detail: String,
}

/// One link of the chain, as stored. Fields are public so that storage can rebuild it
/// from a row, whatever the row now holds; [`verify`] decides whether to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 1 for the first entry, then one more for each.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub kind: Kind,
    pub message_id: Option<String>,
    pub actor: Option<String>,
    pub detail: String,
    #[serde(with = "hex_array")]
    pub prev_hash: [u8; 32],
    #[serde(with = "hex_array")]
    pub hash: [u8; 32],
}

impl Entry {
    /// SHA-256 over, in order: the domain tag `io-gateway audit entry v1`, `seq` and `at_ms`
    /// (8 bytes big-endian each, `at_ms` signed), `kind` (its spelling), `message_id`,
    /// `actor`, `detail` and the 32 bytes of `prev_hash`. Strings (the tag included) are
    /// UTF-8 preceded by their length as 8 bytes big-endian; an absent option is one 0 byte,
    /// a present one a 1 byte and the string. Equal to `hash` unless the entry was edited.
    pub fn computed_hash(&self) -> [u8; 32] {
        let mut hash = Context::new(&SHA256);
        put_bytes(&mut hash, ENTRY_DOMAIN);
        hash.update(&self.seq.to_be_bytes());
        hash.update(&self.at_ms.to_be_bytes());
        put_bytes(&mut hash, self.kind.as_str().as_bytes());
        put_optional(&mut hash, self.message_id.as_deref());
        put_optional(&mut hash, self.actor.as_deref());
        put_bytes(&mut hash, self.detail.as_bytes());
        hash.update(&self.prev_hash);
        to_array(hash.finish().as_ref())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("audit entry {seq} does not hash to its stored hash; run `io-gateway audit verify`")]
    EditedHead { seq: u64 },
    #[error("the audit chain cannot grow past seq {seq}")]
    Full { seq: u64 },
}

/// The head of the chain: what the next entry links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    seq: u64,
    hash: [u8; 32],
}

impl Chain {
    /// The empty chain: the first entry will be seq 1, linked to [`GENESIS`].
    pub fn new() -> Chain {
        Chain { seq: 0, hash: GENESIS }
    }

    /// The chain after `last`, the newest stored entry; refused if `last` was edited.
    pub fn resume(last: &Entry) -> Result<Chain, ChainError> {
        if last.computed_hash() != last.hash {
            return Err(ChainError::EditedHead { seq: last.seq });
        }
        Ok(Chain { seq: last.seq, hash: last.hash })
    }

    /// The next entry, linked to the head, which it becomes. If storing it fails, resume
    /// from the newest stored entry rather than appending again.
    pub fn append(&mut self, event: Event, at_ms: i64) -> Result<Entry, ChainError> {
        let seq = self.seq.checked_add(1).ok_or(ChainError::Full { seq: self.seq })?;
        let Event { kind, message_id, actor, detail } = event;
        let mut entry = Entry { seq, at_ms, kind, message_id, actor, detail, prev_hash: self.hash, hash: GENESIS };
        entry.hash = entry.computed_hash();
        self.seq = seq;
        self.hash = entry.hash;
        Ok(entry)
    }

    /// The newest entry's seq and hash; 0 and [`GENESIS`] for the empty chain.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.seq, self.hash)
    }

    /// A checkpoint of the head, signed with `key`.
    pub fn checkpoint(&self, key: &SigningKey, at_ms: i64) -> Checkpoint {
        Checkpoint::sign(self.seq, self.hash, at_ms, key)
    }
}

impl Default for Chain {
    fn default() -> Chain {
        Chain::new()
    }
}

/// The appliance's signed statement that the chain's entry `seq` has hash `hash`, which
/// commits to every entry up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    #[serde(with = "hex_array")]
    pub hash: [u8; 32],
    pub at_ms: i64,
    pub kid: Kid,
    #[serde(with = "hex_array")]
    pub signature: [u8; SIGNATURE_LEN],
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("no public key {kid}")]
    UnknownKey { kid: Kid },
    #[error("its signature does not verify")]
    BadSignature,
}

impl Checkpoint {
    pub fn sign(seq: u64, hash: [u8; 32], at_ms: i64, key: &SigningKey) -> Checkpoint {
        let signature = key.sign(&checkpoint_message(seq, &hash, at_ms, key.kid()));
        Checkpoint { seq, hash, at_ms, kid: key.kid().clone(), signature }
    }

    /// Checks the signature with the key its `kid` names in `keys`.
    pub fn verify_signature(&self, keys: &Jwks) -> Result<(), CheckpointError> {
        let key = keys.find(self.kid.as_str()).ok_or_else(|| CheckpointError::UnknownKey { kid: self.kid.clone() })?;
        let message = checkpoint_message(self.seq, &self.hash, self.at_ms, &self.kid);
        if key.verifies(&message, &self.signature) {
            Ok(())
        } else {
            Err(CheckpointError::BadSignature)
        }
    }
}

/// The signed bytes: the length-prefixed domain tag `io-gateway audit checkpoint v1`, `seq`
/// (8 bytes big-endian), `hash`, `at_ms` (8 bytes big-endian, signed) and the signer's
/// length-prefixed `kid`, encoded as for entries.
fn checkpoint_message(seq: u64, hash: &[u8; 32], at_ms: i64, kid: &Kid) -> Vec<u8> {
    let mut message = Vec::with_capacity(128);
    message.extend_from_slice(&(CHECKPOINT_DOMAIN.len() as u64).to_be_bytes());
    message.extend_from_slice(CHECKPOINT_DOMAIN);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    message.extend_from_slice(&at_ms.to_be_bytes());
    message.extend_from_slice(&(kid.as_str().len() as u64).to_be_bytes());
    message.extend_from_slice(kid.as_str().as_bytes());
    message
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries read.
    pub entries: u64,
    /// The highest seq in order (0 when there is none).
    pub last_seq: u64,
    /// Entries 1 to this seq are all there, in order, linked and unedited (0: none).
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
    let mut report = Report { entries: 0, last_seq: 0, intact_through: 0, last_checkpoint: None, problems: Vec::new() };
    let mut pending: BTreeMap<u64, Vec<&Checkpoint>> = BTreeMap::new();
    for checkpoint in checkpoints {
        match checkpoint.verify_signature(keys) {
            Ok(()) => pending.entry(checkpoint.seq).or_default().push(checkpoint),
            Err(reason) => report.problems.push(Problem::ForgedCheckpoint {
                seq: checkpoint.seq,
                kid: checkpoint.kid.clone(),
                reason,
            }),
        }
    }
    for checkpoint in pending.remove(&0).unwrap_or_default() {
        report.match_checkpoint(checkpoint, &GENESIS);
    }
    let (mut head_seq, mut head_hash) = (0u64, GENESIS);
    let mut intact = true;
    let mut found_late = Vec::new();
    for entry in entries {
        report.entries += 1;
        let known = report.problems.len();
        if entry.seq <= head_seq {
            report.problems.push(Problem::OutOfOrder { seq: entry.seq, after: head_seq });
            found_late.push(entry.seq);
        } else {
            if entry.seq > head_seq.saturating_add(1) {
                report.problems.push(Problem::Missing { first: head_seq + 1, last: entry.seq - 1 });
            } else if entry.prev_hash != head_hash {
                report.problems.push(Problem::BrokenLink { seq: entry.seq });
            }
            (head_seq, head_hash) = (entry.seq, entry.hash);
        }
        if entry.computed_hash() != entry.hash {
            report.problems.push(Problem::Edited { seq: entry.seq });
        }
        for checkpoint in pending.remove(&entry.seq).unwrap_or_default() {
            report.match_checkpoint(checkpoint, &entry.hash);
        }
        intact = intact && report.problems.len() == known;
        if intact {
            report.intact_through = entry.seq;
        }
    }
    report.last_seq = head_seq;
    report.problems = not_missing(std::mem::take(&mut report.problems), &found_late);
    // Checkpoints left within the chain name an entry already reported missing.
    if let Some((&checkpoint_seq, _)) = pending.range((Bound::Excluded(head_seq), Bound::Unbounded)).next_back() {
        report.problems.push(Problem::Truncated { checkpoint_seq, last_seq: head_seq });
    }
    report
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
        write!(f, "verified {} entries up to seq {}, {checkpoint}", self.entries, self.last_seq)?;
        let uncovered = self.last_seq.saturating_sub(self.last_checkpoint.unwrap_or(0));
        if uncovered > 0 {
            write!(f, "; the last {uncovered} entries are not yet covered by a checkpoint")?;
        }
        Ok(())
    }
}

fn put_bytes(hash: &mut Context, bytes: &[u8]) {
    hash.update(&(bytes.len() as u64).to_be_bytes());
    hash.update(bytes);
}

fn put_optional(hash: &mut Context, value: Option<&str>) {
    match value {
        None => hash.update(&[0]),
        Some(value) => {
            hash.update(&[1]);
            put_bytes(hash, value.as_bytes());
        }
    }
}

fn to_array(digest: &[u8]) -> [u8; 32] {
    let mut array = [0u8; 32];
    array.copy_from_slice(digest);
    array
}

/// Fixed-size byte arrays as lowercase hex in JSON exports.
mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(deserializer: D) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; N];
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(bytes)
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
