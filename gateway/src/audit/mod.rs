//! The tamper-evident audit trail: what the gateway did with each message, in entries that
//! each carry the hash of the one before, with checkpoints signed by the appliance key.
//!
//! Entries hold no message content and no personal data: a kind ([`Kind`]: accepted, sent,
//! final status, rejected, expired, held, released, cancelled, erased, key rotated,
//! checkpoint), the message id, who acted, and a short detail (IO's message id, a state, a
//! key id). They are never erased, so erasing a citizen's data leaves the chain valid, and
//! the erasure itself is an entry.
//!
//! This module is the pure logic (`chain`: entries, the chain, checkpoints; `verify`;
//! `export`: the JSON an auditor receives); storage (rows keyed by `seq`, checkpoints in a
//! table of their own) is `queue::audit`. The writer keeps a [`Chain`] (from [`Chain::new`], or
//! [`Chain::resume`] from the newest stored entry), appends an [`Event`] to get the
//! [`Entry`] to store in the same transaction as the change it records, and at intervals
//! and on shutdown stores [`Chain::checkpoint`]. [`verify`] takes the entries in seq order,
//! every checkpoint and the appliance's JWK Set (retired keys included), and returns a
//! [`Report`]: "verified N entries up to seq S, last signed checkpoint at seq C", or each
//! problem and where it is.
//!
//! What that proves, in plain words:
//! - Up to the last signed checkpoint, the entries are exactly those the gateway wrote:
//!   any edit, removal, reordering or truncation is found and located, even one whose
//!   author recomputed every hash after it, since the checkpoint's signature needs the key.
//! - After the last checkpoint, entries are linked but unsigned: an edit that was not
//!   rehashed is still found, but someone able to write the database can cut off or rewrite
//!   that tail unseen. Checkpoint often, and keep exported checkpoints off the appliance.
//! - Whoever holds a listed private key can sign any history. Rotation does not revoke the
//!   retired key (its public half stays listed so that old checkpoints verify): a key known
//!   to be stolen must be taken out of the JWK Set, and its checkpoints then show as forged.

pub mod chain;
pub mod export;
pub mod verify;

pub use chain::{Chain, ChainError, Checkpoint, CheckpointError, Entry, Event, Kind, UnknownKind, GENESIS};
pub use verify::{verify, verify_after, Problem, Report, Unreadable, Unrecorded, Verification, Verifier};
