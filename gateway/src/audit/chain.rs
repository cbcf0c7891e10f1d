//! The audit trail's hash chain: entries and their canonical hash, the [`Chain`] that
//! appends them, and [`Checkpoint`]s signed with the appliance key (checked by
//! [`verify`](super::verify())).

use crate::signing::jwk::SIGNATURE_LEN;
use crate::signing::{Jwks, Kid, SigningKey};
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
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
    /// A send to IO began (the message is durably `sending` before the request leaves).
    Sending,
    /// A send's outcome is unknown: IO may or may not have the message.
    Ambiguous,
    /// Back in the queue for another attempt (a retry after a passing failure, or an
    /// operator's retry).
    Requeued,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
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
        Kind::Sending,
        Kind::Ambiguous,
        Kind::Requeued,
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
            Kind::Sending => "sending",
            Kind::Ambiguous => "ambiguous",
            Kind::Requeued => "requeued",
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
/// from a row, whatever the row now holds; [`verify`](super::verify()) decides whether to trust it.
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
