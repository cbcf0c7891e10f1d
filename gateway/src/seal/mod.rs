//! Encryption at rest: what the queue holds about a citizen — the recipient's fiscal code,
//! the message body (subject, markdown, payment data) and an import's recipe — is sealed
//! with AES-256-GCM (ring) before it reaches SQLite, and lookups by fiscal code go through
//! a keyed hash, never the clear code.
//!
//! # Keys ([`key_dir`])
//! A directory (0700) holds `data-N.key` files (N = 1, 2, …; 32 random bytes, base64,
//! mode 0600) and one `index.key`. The highest N seals; every `data-N.key` still present
//! opens what it sealed, so a rotation (`io-gateway data-keys rotate`, then SIGHUP) needs
//! no downtime and no rewrite. `index.key` keys the HMAC-SHA-256 of fiscal codes and
//! import dedup keys; it never rotates, because every stored index would change with it.
//!
//! # Sealed bytes
//! `0x01 | key number (u32, big-endian) | nonce (12 random bytes) | ciphertext | tag (16)`.
//! The associated data binds each value to its field and its message id, so a sealed
//! value copied into another row or column does not open.

pub mod key_dir;

pub use key_dir::{DataKeyError, INDEX_KEY_FILE};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes kept of an HMAC-SHA-256 used as an index: 128 bits, as unique as a random id.
pub const INDEX_LEN: usize = 16;

/// Which value a sealed blob holds: part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The recipient's fiscal code.
    Recipient,
    /// The JSON body sent to IO (fiscal code, subject, markdown, payment data, …).
    Body,
    /// An imported message's record values.
    Recipe,
}

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Recipient => "recipient",
            Field::Body => "body",
            Field::Recipe => "recipe",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed with data key {0}, which is not in the data key directory: restore data-{0}.key from a backup")]
    UnknownKey(u32),
    #[error("the sealed {0} is damaged or belongs to another message or field")]
    Damaged(&'static str),
    #[error("the system's random source failed")]
    Random,
}

/// The data keys in use: the one that seals, every one that opens, and the index key.
pub struct DataKeys {
    keys: BTreeMap<u32, LessSafeKey>,
    current: u32,
    index: hmac::Key,
    nonces: Nonces,
}

/// Random nonces, drawn from the system's random source 4 KiB at a time (one system call
/// per 341 nonces instead of one each); every byte is used once.
struct Nonces {
    rng: SystemRandom,
    buffer: Mutex<(Box<[u8; NONCE_BUFFER]>, usize)>,
}

const NONCE_BUFFER: usize = 4092;

impl Nonces {
    fn new() -> Nonces {
        Nonces { rng: SystemRandom::new(), buffer: Mutex::new((Box::new([0; NONCE_BUFFER]), NONCE_BUFFER)) }
    }

    fn next(&self) -> Result<[u8; NONCE_LEN], SealError> {
        let mut guard = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let (buffer, used) = &mut *guard;
        if *used + NONCE_LEN > NONCE_BUFFER {
            self.rng.fill(&mut buffer[..]).map_err(|_| SealError::Random)?;
            *used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buffer[*used..*used + NONCE_LEN]);
        *used += NONCE_LEN;
        Ok(nonce)
    }
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let numbers: Vec<u32> = self.keys.keys().copied().collect();
        f.debug_struct("DataKeys").field("current", &self.current).field("keys", &numbers).finish_non_exhaustive()
    }
}

impl DataKeys {
    /// Keys from raw bytes: `data` by number (the highest seals), and the index key.
    pub fn from_bytes(data: &BTreeMap<u32, [u8; 32]>, index: &[u8; 32]) -> Option<DataKeys> {
        let current = *data.keys().next_back()?;
        let keys = data
            .iter()
            .map(|(n, bytes)| UnboundKey::new(&AES_256_GCM, bytes).ok().map(|k| (*n, LessSafeKey::new(k))))
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some(DataKeys { keys, current, index: hmac::Key::new(hmac::HMAC_SHA256, index), nonces: Nonces::new() })
    }

    /// The number of the key that seals.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Every key number that opens.
    pub fn numbers(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Seals `plain` as `field` of message `id` with the current key.
    pub fn seal(&self, field: Field, id: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.keys.get(&self.current).ok_or(SealError::UnknownKey(self.current))?;
        let nonce = self.nonces.next()?;
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.push(FORMAT);
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let nonce = Nonce::assume_unique_for_key(nonce);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad(field, id)), &mut out[HEADER_LEN..])
            .map_err(|_| SealError::Damaged(field.label()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`DataKeys::seal`] sealed as `field` of message `id`, with whichever key
    /// sealed it.
    pub fn open(&self, field: Field, id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let damaged = SealError::Damaged(field.label());
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != FORMAT {
            return Err(damaged);
        }
        let number = key_number(sealed).ok_or(damaged.clone())?;
        let key = self.keys.get(&number).ok_or(SealError::UnknownKey(number))?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed[5..HEADER_LEN]).map_err(|_| damaged.clone())?;
        let mut body = sealed[HEADER_LEN..].to_vec();
        let plain_len = key.open_in_place(nonce, Aad::from(aad(field, id)), &mut body).map_err(|_| damaged)?.len();
        body.truncate(plain_len);
        Ok(body)
    }

    /// The keyed hash that finds a citizen's messages by fiscal code.
    pub fn recipient_index(&self, fiscal_code: &str) -> [u8; INDEX_LEN] {
        self.index_of(b"fiscal-code", fiscal_code.as_bytes())
    }

    /// The keyed hash stored instead of an import's dedup key (which may hold a fiscal
    /// code), in hex.
    pub fn dedup_index(&self, dedup_key: &str) -> String {
        hex::encode(self.index_of(b"dedup-key", dedup_key.as_bytes()))
    }

    /// A value that tells whether a database was indexed with this index key, without
    /// revealing the key.
    pub fn index_check(&self) -> [u8; INDEX_LEN] {
        self.index_of(b"check", b"io-gateway index key")
    }

    fn index_of(&self, domain: &[u8], value: &[u8]) -> [u8; INDEX_LEN] {
        let mut context = hmac::Context::with_key(&self.index);
        context.update(domain);
        context.update(&[0]);
        context.update(value);
        let tag = context.sign();
        let mut out = [0u8; INDEX_LEN];
        out.copy_from_slice(&tag.as_ref()[..INDEX_LEN]);
        out
    }
}

/// The key number a sealed value names, if it is one.
pub fn key_number(sealed: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = sealed.get(1..5)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn aad(field: Field, id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + id.len());
    aad.extend_from_slice(b"io-gateway/");
    aad.extend_from_slice(field.label().as_bytes());
    aad.push(b'/');
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// The data keys in use, shared by the queue's writer, its readers and the importers, and
/// replaced by a reload after `io-gateway data-keys rotate`.
pub struct CurrentDataKeys(RwLock<Arc<DataKeys>>);

impl CurrentDataKeys {
    pub fn new(keys: Arc<DataKeys>) -> CurrentDataKeys {
        CurrentDataKeys(RwLock::new(keys))
    }

    pub fn get(&self) -> Arc<DataKeys> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn set(&self, keys: Arc<DataKeys>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(numbers: &[u32]) -> DataKeys {
        let data = numbers.iter().map(|n| (*n, [*n as u8; 32])).collect();
        DataKeys::from_bytes(&data, &[9; 32]).unwrap()
    }

    #[test]
    fn seals_and_opens_with_the_key_that_sealed() {
        let one = keys(&[1]);
        let sealed = one.seal(Field::Body, "01J", b"hello citizen").unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + 13 + TAG_LEN);
        assert_eq!(key_number(&sealed), Some(1));
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        let rotated = keys(&[1, 2]);
        assert_eq!(rotated.open(Field::Body, "01J", &sealed).unwrap(), b"hello citizen");
        let newer = rotated.seal(Field::Body, "01J", b"x").unwrap();
        assert_eq!(key_number(&newer), Some(2));
        assert_eq!(keys(&[2]).open(Field::Body, "01J", &sealed), Err(SealError::UnknownKey(1)));
    }

    #[test]
    fn a_value_moved_to_another_message_or_field_or_altered_does_not_open() {
        let k = keys(&[1]);
        let sealed = k.seal(Field::Recipient, "A", b"RSSMRA80A01H501U").unwrap();
        assert_eq!(k.open(Field::Recipient, "B", &sealed), Err(SealError::Damaged("recipient")));
        assert_eq!(k.open(Field::Body, "A", &sealed), Err(SealError::Damaged("body")));
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN] ^= 1;
        assert!(k.open(Field::Recipient, "A", &flipped).is_err());
        assert!(k.open(Field::Recipient, "A", &sealed[..10]).is_err());
        assert!(k.open(Field::Recipient, "A", b"RSSMRA80A01H501U").is_err());
    }

    #[test]
    fn nonces_differ_and_indexes_are_keyed_and_stable() {
        let k = keys(&[1]);
        assert_ne!(k.seal(Field::Body, "A", b"same").unwrap(), k.seal(Field::Body, "A", b"same").unwrap());
        // Across refills of the nonce buffer too.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * NONCE_BUFFER / NONCE_LEN {
            assert!(seen.insert(k.nonces.next().unwrap()));
        }
        assert_eq!(k.recipient_index("RSSMRA80A01H501U"), keys(&[1, 2]).recipient_index("RSSMRA80A01H501U"));
        let other_index = DataKeys::from_bytes(&BTreeMap::from([(1, [1; 32])]), &[8; 32]).unwrap();
        assert_ne!(k.recipient_index("RSSMRA80A01H501U"), other_index.recipient_index("RSSMRA80A01H501U"));
        assert_ne!(k.recipient_index("X"), k.index_check());
        assert_eq!(k.dedup_index("payment:1").len(), 2 * INDEX_LEN);
    }
}
