//! Tests of the audit chain: encoding, appending, and every kind of tampering.

use super::*;
use crate::audit::verify::{verify, verify_after, Problem};
use crate::signing::PublicJwk;

fn key() -> SigningKey {
    SigningKey::from_seed(&[3; 32], None)
}

fn keys() -> Jwks {
    let mut keys = Jwks::new();
    keys.insert(key().public_jwk().clone()).unwrap();
    keys
}

fn event(i: u64) -> Event {
    let kind = Kind::ALL[(i as usize) % Kind::ALL.len()];
    Event {
        kind,
        message_id: (kind != Kind::KeyRotated).then(|| format!("01J00000000000000000000{i:03}")),
        actor: (kind == Kind::Held).then(|| "operator:rossi".to_string()),
        detail: format!("detail {i}"),
    }
}

/// A chain of `n` entries, checkpoints signed at the given seqs.
fn trail(n: u64, checkpoint_at: &[u64]) -> (Vec<Entry>, Vec<Checkpoint>) {
    let mut chain = Chain::new();
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 1..=n {
        entries.push(chain.append(event(i), 1_750_000_000_000 + i as i64).unwrap());
        if checkpoint_at.contains(&i) {
            checkpoints.push(chain.checkpoint(&key(), 1_750_000_000_500 + i as i64));
        }
    }
    (entries, checkpoints)
}

/// Rehashes `entries` from index `from` on, relinking each to the one before: what a
/// forger without the key can do.
fn rehash_from(entries: &mut [Entry], from: usize) {
    for i in from..entries.len() {
        entries[i].prev_hash = if i == 0 { GENESIS } else { entries[i - 1].hash };
        entries[i].hash = entries[i].computed_hash();
    }
}

fn problems(entries: Vec<Entry>, checkpoints: &[Checkpoint]) -> Vec<Problem> {
    verify(entries, checkpoints, &keys()).problems
}

#[test]
fn kind_spellings_are_stable() {
    let spellings = [
        "accepted",
        "sent",
        "final_status",
        "rejected",
        "expired",
        "held",
        "released",
        "cancelled",
        "erased",
        "key_rotated",
        "checkpoint",
        "sending",
        "ambiguous",
        "requeued",
    ];
    assert_eq!(Kind::ALL.len(), spellings.len());
    for (kind, spelling) in Kind::ALL.into_iter().zip(spellings) {
        assert_eq!(kind.as_str(), spelling);
        assert_eq!(spelling.parse::<Kind>(), Ok(kind));
    }
    assert_eq!("Accepted".parse::<Kind>(), Err(UnknownKind("Accepted".into())));
}

/// The value was also computed by a few lines of Python written from `computed_hash`'s doc
/// comment alone, so the documented encoding is the implemented one.
#[test]
fn the_entry_hash_is_pinned() {
    let mut chain = Chain::new();
    let entry = chain.append(event(1), 1_750_000_000_000).unwrap();
    assert_eq!(entry.prev_hash, GENESIS);
    assert_eq!(hex::encode(entry.hash), "43dc6bb6fe286109420dc0748a8f87767d41430916d809ac0f9bb3af77e52c4f");
}

#[test]
fn the_encoding_is_unambiguous() {
    let base = Entry {
        seq: 1,
        at_ms: 0,
        kind: Kind::Sent,
        message_id: Some("ab".into()),
        actor: None,
        detail: String::new(),
        prev_hash: GENESIS,
        hash: GENESIS,
    };
    let shifted = Entry { message_id: Some("a".into()), actor: Some("b".into()), ..base.clone() };
    let into_detail = Entry { message_id: Some("a".into()), detail: "b".into(), ..base.clone() };
    let empty_id = Entry { message_id: Some(String::new()), ..base.clone() };
    let no_id = Entry { message_id: None, ..base.clone() };
    let hashes = [&base, &shifted, &into_detail, &empty_id, &no_id].map(Entry::computed_hash);
    for (i, a) in hashes.iter().enumerate() {
        assert!(hashes[i + 1..].iter().all(|b| a != b), "entry {i} collides");
    }
}

#[test]
fn an_intact_trail_verifies() {
    let (entries, checkpoints) = trail(10, &[4, 10]);
    let report = verify(entries, &checkpoints, &keys());
    assert!(report.is_intact(), "{report}");
    assert_eq!(
        (report.entries, report.last_seq, report.intact_through, report.last_checkpoint),
        (10, 10, 10, Some(10))
    );
    assert_eq!(report.to_string(), "verified 10 entries up to seq 10, last signed checkpoint at seq 10");
}

#[test]
fn entries_after_the_last_checkpoint_are_reported_as_uncovered() {
    let (entries, checkpoints) = trail(10, &[6]);
    let report = verify(entries, &checkpoints, &keys());
    assert!(report.is_intact());
    assert_eq!(
        report.to_string(),
        "verified 10 entries up to seq 10, last signed checkpoint at seq 6; \
         the last 4 entries are not yet covered by a checkpoint"
    );
    let report = verify(trail(3, &[]).0, &[], &keys());
    assert_eq!(report.last_checkpoint, None);
    assert!(report.to_string().contains("no signed checkpoint"), "{report}");
}

#[test]
fn an_edited_entry_is_located() {
    let (mut entries, checkpoints) = trail(10, &[10]);
    entries[3].detail = "something else".into();
    let report = verify(entries, &checkpoints, &keys());
    assert_eq!(report.problems, [Problem::Edited { seq: 4 }]);
    assert_eq!(report.intact_through, 3);
    assert!(report.to_string().contains("entry 4 was edited"), "{report}");
}

#[test]
fn an_edited_and_rehashed_entry_breaks_the_next_link() {
    let (mut entries, checkpoints) = trail(10, &[10]);
    entries[3].actor = Some("operator:bianchi".into());
    entries[3].hash = entries[3].computed_hash();
    assert_eq!(problems(entries, &checkpoints), [Problem::BrokenLink { seq: 5 }]);
}

#[test]
fn a_rewritten_history_is_caught_by_the_checkpoints_after_it() {
    let (mut entries, checkpoints) = trail(10, &[2, 6, 10]);
    entries[3].detail = "rewritten".into();
    rehash_from(&mut entries, 3);
    let report = verify(entries, &checkpoints, &keys());
    assert_eq!(report.problems, [Problem::CheckpointMismatch { seq: 6 }, Problem::CheckpointMismatch { seq: 10 }]);
    assert_eq!(report.last_checkpoint, Some(2));
    assert_eq!(report.intact_through, 5);
}

#[test]
fn a_removed_entry_is_located() {
    let (mut entries, checkpoints) = trail(10, &[10]);
    entries.remove(3);
    assert_eq!(problems(entries, &checkpoints), [Problem::Missing { first: 4, last: 4 }]);

    let (mut entries, checkpoints) = trail(10, &[10]);
    entries.drain(0..2);
    assert_eq!(problems(entries, &checkpoints), [Problem::Missing { first: 1, last: 2 }]);
}

#[test]
fn a_removal_hidden_by_renumbering_is_caught() {
    let (mut entries, checkpoints) = trail(10, &[6, 10]);
    entries.remove(3);
    for entry in &mut entries[3..] {
        entry.seq -= 1;
    }
    let report = verify(entries.clone(), &checkpoints, &keys());
    assert_eq!(report.problems[0], Problem::BrokenLink { seq: 4 });
    assert!(report.problems.contains(&Problem::Edited { seq: 4 }));
    rehash_from(&mut entries, 3);
    let report = verify(entries, &checkpoints, &keys());
    assert_eq!(
        report.problems,
        [Problem::CheckpointMismatch { seq: 6 }, Problem::Truncated { checkpoint_seq: 10, last_seq: 9 }]
    );
}

#[test]
fn reordered_entries_are_located() {
    let (mut entries, checkpoints) = trail(10, &[10]);
    entries.swap(3, 4);
    let report = verify(entries, &checkpoints, &keys());
    assert_eq!(report.problems, [Problem::OutOfOrder { seq: 4, after: 5 }]);
    assert_eq!(report.intact_through, 3);

    // Two rows' contents swapped under their seqs: neither hashes any more.
    let (mut entries, checkpoints) = trail(10, &[10]);
    let (fourth, fifth) = (entries[3].clone(), entries[4].clone());
    entries[3] = Entry { seq: 4, ..fifth };
    entries[4] = Entry { seq: 5, ..fourth };
    let report = verify(entries, &checkpoints, &keys());
    assert!(
        report.problems.contains(&Problem::Edited { seq: 4 }) && report.problems.contains(&Problem::Edited { seq: 5 })
    );
    assert_eq!(report.intact_through, 3);

    let (mut entries, checkpoints) = trail(5, &[5]);
    entries.push(entries[2].clone());
    assert_eq!(problems(entries, &checkpoints), [Problem::OutOfOrder { seq: 3, after: 5 }]);
}

#[test]
fn truncation_before_a_checkpoint_is_caught() {
    let (mut entries, checkpoints) = trail(10, &[4, 10]);
    entries.truncate(8);
    let report = verify(entries, &checkpoints, &keys());
    assert_eq!(report.problems, [Problem::Truncated { checkpoint_seq: 10, last_seq: 8 }]);
    assert_eq!(report.intact_through, 8);
    assert!(report.to_string().contains("ends at seq 8 but a checkpoint signed seq 10"), "{report}");
    assert_eq!(problems(Vec::new(), &checkpoints), [Problem::Truncated { checkpoint_seq: 10, last_seq: 0 }]);
}

#[test]
fn a_head_that_differs_from_the_last_checkpoint_is_caught() {
    let (mut entries, checkpoints) = trail(10, &[10]);
    entries[9].kind = Kind::Cancelled;
    rehash_from(&mut entries, 9);
    assert_eq!(problems(entries, &checkpoints), [Problem::CheckpointMismatch { seq: 10 }]);
}

#[test]
fn forged_checkpoints_are_caught() {
    let (entries, mut checkpoints) = trail(10, &[5, 10]);
    checkpoints[1].signature[0] ^= 1;
    let report = verify(entries.clone(), &checkpoints, &keys());
    let forged = Problem::ForgedCheckpoint { seq: 10, kid: key().kid().clone(), reason: CheckpointError::BadSignature };
    assert_eq!(report.problems, [forged]);
    assert_eq!(report.last_checkpoint, Some(5));

    // Signed by a key that is not the appliance's, under the appliance's kid.
    let (_, mut checkpoints) = trail(10, &[10]);
    let other = SigningKey::from_seed(&[4; 32], None);
    checkpoints[0].signature = Checkpoint::sign(10, entries[9].hash, 0, &other).signature;
    assert!(matches!(problems(entries.clone(), &checkpoints)[..], [Problem::ForgedCheckpoint { seq: 10, .. }]));

    // Signed by a key nobody listed.
    let unknown = Checkpoint::sign(10, entries[9].hash, 0, &other);
    let reason = CheckpointError::UnknownKey { kid: other.kid().clone() };
    assert_eq!(
        problems(entries, &[unknown]),
        [Problem::ForgedCheckpoint { seq: 10, kid: other.kid().clone(), reason }]
    );
}

#[test]
fn checkpoints_by_a_retired_key_still_verify() {
    let (entries, checkpoints) = trail(4, &[4]);
    let new_key = SigningKey::from_seed(&[7; 32], None);
    let mut chain = Chain::resume(entries.last().unwrap()).unwrap();
    let mut all = entries.clone();
    all.push(chain.append(event(5), 0).unwrap());
    let mut all_checkpoints = checkpoints.clone();
    all_checkpoints.push(chain.checkpoint(&new_key, 0));
    let mut rotated = keys();
    rotated.insert(PublicJwk::new(*new_key.public_jwk().public_key())).unwrap();
    let report = verify(all, &all_checkpoints, &rotated);
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.last_checkpoint, Some(5));
}

#[test]
fn the_empty_chain_can_be_checkpointed() {
    let checkpoint = Chain::new().checkpoint(&key(), 0);
    assert_eq!((checkpoint.seq, checkpoint.hash), (0, GENESIS));
    let report = verify(Vec::new(), &[checkpoint], &keys());
    assert!(report.is_intact());
    assert_eq!(report.to_string(), "verified 0 entries up to seq 0, last signed checkpoint at seq 0");
}

#[test]
fn resume_continues_the_chain_and_refuses_an_edited_head() {
    let (entries, _) = trail(3, &[]);
    let mut chain = Chain::resume(&entries[2]).unwrap();
    assert_eq!(chain.head(), (3, entries[2].hash));
    let fourth = chain.append(event(4), 0).unwrap();
    assert_eq!((fourth.seq, fourth.prev_hash), (4, entries[2].hash));
    let mut all = entries.clone();
    all.push(fourth);
    assert!(verify(all, &[], &keys()).is_intact());

    let mut edited = entries[2].clone();
    edited.detail.push('!');
    assert_eq!(Chain::resume(&edited), Err(ChainError::EditedHead { seq: 3 }));
}

#[test]
fn entries_and_checkpoints_round_trip_through_json() {
    let (entries, checkpoints) = trail(2, &[2]);
    let json = serde_json::to_value(&entries[1]).unwrap();
    assert_eq!(json["kind"], "final_status");
    assert_eq!(json["hash"], hex::encode(entries[1].hash));
    assert_eq!(serde_json::from_value::<Entry>(json).unwrap(), entries[1]);
    let json = serde_json::to_string(&checkpoints[0]).unwrap();
    assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), checkpoints[0]);
    assert!(serde_json::from_str::<Entry>(r#"{"kind":"nope"}"#).is_err());
}

#[test]
fn a_trail_exported_from_a_seq_verifies_from_there() {
    let (entries, checkpoints) = trail(10, &[3, 8]);
    let tail: Vec<Entry> = entries[4..].to_vec();
    let later: Vec<Checkpoint> = checkpoints.iter().filter(|c| c.seq >= 5).cloned().collect();
    let report = verify_after(4, tail.clone(), &later, &keys());
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.first_seq, report.entries, report.last_seq, report.last_checkpoint), (5, 6, 10, Some(8)));
    assert_eq!(
        report.to_string(),
        "verified 6 entries up to seq 10 (from seq 5; earlier entries not checked), last signed checkpoint \
         at seq 8; the last 2 entries are not yet covered by a checkpoint"
    );
    // The first exported entry removed, then an edit inside the exported part.
    assert_eq!(verify_after(4, tail[1..].to_vec(), &later, &keys()).problems, [Problem::Missing { first: 5, last: 5 }]);
    let mut edited = tail.clone();
    edited[2].detail = "x".into();
    assert_eq!(verify_after(4, edited, &later, &keys()).problems, [Problem::Edited { seq: 7 }]);
    assert_eq!(verify_after(0, entries, &checkpoints, &keys()).first_seq, 1);
}
