//! Tests of the audit trail's storage on real SQLite files: appends inside write
//! transactions from several connections, checkpoints, streaming reads, and what a
//! tampered row or a queue newer than its trail looks like.

use super::*;
use crate::audit::export;
use crate::queue::{open_connection, schema};
use rusqlite::TransactionBehavior;

fn database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    schema::migrate(&mut open_connection(&path).unwrap()).unwrap();
    (dir, path)
}

fn event(i: u64) -> Event {
    changed(MessageId::new(), State::Queued, State::Held, None, Some(&format!("operator{i}")))
}

/// Appends `events` in one immediate transaction on `conn`; returns their seqs.
fn append(conn: &mut Connection, events: impl IntoIterator<Item = Event>) -> Vec<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    let mut trail = Trail::new();
    let seqs = events.into_iter().map(|e| trail.append(&tx, e, 1_750_000_000_000).unwrap()).collect();
    tx.commit().unwrap();
    seqs
}

fn key() -> SigningKey {
    SigningKey::from_seed(&[9; 32], None)
}

fn keys() -> Jwks {
    let mut keys = Jwks::new();
    keys.insert(key().public_jwk().clone()).unwrap();
    keys
}

#[test]
fn writers_on_two_connections_extend_one_chain() {
    let (_dir, path) = database();
    let (mut a, mut b) = (open_connection(&path).unwrap(), open_connection(&path).unwrap());
    let mut seqs = Vec::new();
    for round in 0..5 {
        seqs.extend(append(&mut a, (0..3).map(|i| event(round * 10 + i))));
        seqs.extend(append(&mut b, [event(round * 10 + 5)]));
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "each transaction appends after the stored head");
    let verification = verify_database(&path, &Jwks::new()).unwrap();
    assert!(verification.is_intact(), "{verification}");
    assert_eq!((verification.report.entries, verification.report.last_seq), (20, 20));
}

#[test]
fn a_rolled_back_append_leaves_nothing_and_the_next_one_takes_its_seq() {
    let (_dir, path) = database();
    let mut conn = open_connection(&path).unwrap();
    append(&mut conn, [event(1)]);
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        assert_eq!(Trail::new().append(&tx, event(2), 1).unwrap(), 2);
    }
    assert_eq!(append(&mut conn, [event(3)]), [2]);
    assert!(verify_database(&path, &Jwks::new()).unwrap().is_intact());
}

#[test]
fn a_checkpoint_is_signed_once_per_head_and_read_back() {
    let (_dir, path) = database();
    let mut conn = open_connection(&path).unwrap();
    let sign = |conn: &mut Connection| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        let signed = Trail::new().checkpoint(&tx, &key(), 1_750_000_000_001).unwrap();
        tx.commit().unwrap();
        signed
    };
    assert_eq!(sign(&mut conn), None, "an empty trail has nothing to sign");
    append(&mut conn, (0..4).map(event));
    assert_eq!(sign(&mut conn), Some(4));
    assert_eq!(sign(&mut conn), None, "the head did not move");
    append(&mut conn, [event(5)]);
    let report = verify_database(&path, &keys()).unwrap().report;
    assert_eq!((report.last_checkpoint, report.last_seq), (Some(4), 5));
    assert_eq!(sign(&mut conn), Some(5));
    assert_eq!(read_checkpoints(&conn, 1).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(read_checkpoints(&conn, 5).unwrap().len(), 1);
    let verification = verify_database(&path, &keys()).unwrap();
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.report.last_checkpoint, Some(5));
}

#[test]
fn entries_stream_back_as_stored_and_rows_that_are_not_entries_are_named() {
    let (_dir, path) = database();
    let mut conn = open_connection(&path).unwrap();
    let events: Vec<Event> = (0..3).map(event).collect();
    append(&mut conn, events.clone());
    let mut stmt = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq")).unwrap();
    let mut entries = Entries::new(stmt.query([]).unwrap());
    let read: Vec<Entry> = entries.by_ref().collect();
    assert!(entries.finish().unwrap().is_empty());
    assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(read[1].kind, Kind::Held);
    assert_eq!(read[1].actor, events[1].actor);
    assert_eq!(read[1].detail, "from queued");
    assert_eq!(read[1].prev_hash, read[0].hash);
    drop(stmt);

    conn.execute("UPDATE audit SET kind = 'bogus' WHERE seq = 2", []).unwrap();
    conn.execute("UPDATE audit SET hash = X'00' WHERE seq = 3", []).unwrap();
    let verification = verify_database(&path, &Jwks::new()).unwrap();
    assert!(!verification.is_intact());
    let unreadable: Vec<(i64, &str)> = verification.unreadable.iter().map(|u| (u.seq, u.reason.as_str())).collect();
    assert_eq!(unreadable, [(2, "kind: unknown audit entry kind \"bogus\""), (3, "hash: 1 bytes instead of 32")]);
    // Nothing readable follows them, so only the unreadable rows tell: the chain alone ends at 1.
    assert_eq!(verification.report.last_seq, 1);
    assert!(verification.to_string().contains("entry 2 cannot be read: kind"), "{verification}");
}

#[test]
fn an_edited_head_refuses_appends_until_someone_looks() {
    let (_dir, path) = database();
    let mut conn = open_connection(&path).unwrap();
    append(&mut conn, [event(1), event(2)]);
    conn.execute("UPDATE audit SET detail = 'from held' WHERE seq = 2", []).unwrap();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    let refused = Trail::new().append(&tx, event(3), 1).unwrap_err();
    assert!(matches!(refused, QueueError::Audit(crate::audit::ChainError::EditedHead { seq: 2 })), "{refused}");
}

#[test]
fn states_map_to_kinds_with_names_and_ids_only() {
    let id = MessageId::new();
    let check = |from: State, to: State, io: Option<&str>, kind: Kind, detail: &str| {
        let event = changed(id, from, to, io, None);
        assert_eq!((event.kind, event.detail.as_str()), (kind, detail), "{from} -> {to}");
        assert_eq!(event.message_id, Some(id.to_string()));
    };
    check(State::Queued, State::Sending, None, Kind::Sending, "from queued");
    check(State::Sending, State::Sent, Some("01IOID"), Kind::Sent, "01IOID");
    check(State::Sending, State::Ambiguous, None, Kind::Ambiguous, "from sending");
    check(State::Sending, State::Queued, None, Kind::Requeued, "from sending");
    check(State::Held, State::Queued, None, Kind::Released, "from held");
    check(State::Ambiguous, State::Held, None, Kind::Held, "from ambiguous");
    check(State::Queued, State::Cancelled, None, Kind::Cancelled, "from queued");
    check(State::Sent, State::Processed, None, Kind::FinalStatus, "processed");
    check(State::Sent, State::IoRejected, None, Kind::FinalStatus, "io_rejected");
    check(State::Sent, State::Unconfirmed, None, Kind::FinalStatus, "unconfirmed");
    check(State::Queued, State::NotOnIo, None, Kind::Rejected, "not_on_io");
    check(State::Sending, State::RejectedByIo, None, Kind::Rejected, "rejected_by_io");
    check(State::Queued, State::Expired, None, Kind::Expired, "expired");
    let accepted = accepted(id, "tributi");
    assert_eq!(
        (accepted.kind, accepted.actor.as_deref(), accepted.detail.as_str()),
        (Kind::Accepted, Some("tributi"), "queued")
    );
}

#[test]
fn a_queue_newer_than_its_trail_is_noticed() {
    let (_dir, path) = database();
    let mut conn = open_connection(&path).unwrap();
    let id = MessageId::new();
    let at = 1_750_000_000_000;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    tx.execute(
        "INSERT INTO messages (id, institution, service, client, fiscal_code, priority, state, body, accepted_at,
                               state_changed_at)
         VALUES (?1, '80000000010', 'tari', 'tributi', 'BNCLRA85C52F205V', 1, 'queued', X'', ?2, ?2)",
        rusqlite::params![id.to_string(), at],
    )
    .unwrap();
    let mut trail = Trail::new();
    trail.append(&tx, accepted(id, "tributi"), at).unwrap();
    tx.execute(
        "INSERT INTO transitions (message_seq, from_state, to_state, at) VALUES (1, 'queued', 'held', ?1)",
        [at + 5],
    )
    .unwrap();
    trail.append(&tx, changed(id, State::Queued, State::Held, None, Some("rossi")), at + 5).unwrap();
    tx.commit().unwrap();
    assert!(verify_database(&path, &Jwks::new()).unwrap().is_intact());

    // The tail cut off, and no checkpoint covered it: the queue still tells.
    conn.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    let verification = verify_database(&path, &Jwks::new()).unwrap();
    assert!(verification.report.is_intact() && !verification.is_intact());
    let unrecorded = verification.unrecorded.clone().unwrap();
    assert_eq!((unrecorded.message_id, unrecorded.change.as_str()), (id.to_string(), "queued -> held"));
    assert!(verification.to_string().contains("entries after seq 1 were removed"), "{verification}");
    conn.execute("DELETE FROM audit", []).unwrap();
    assert_eq!(verify_database(&path, &Jwks::new()).unwrap().unrecorded, None, "no trail: nothing to compare");
}

#[test]
fn an_export_of_the_database_verifies_from_the_file_alone() {
    let (_dir, path) = database();
    let mut conn = open_connection(&path).unwrap();
    append(&mut conn, (0..6).map(event));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    Trail::new().checkpoint(&tx, &key(), 1).unwrap();
    tx.commit().unwrap();
    for since in [1, 4] {
        let mut out = Vec::new();
        let exported = export_database(&path, since, &keys(), &mut out).unwrap();
        assert_eq!((exported.entries, exported.checkpoints), (7 - since, 1));
        let checked = export::verify(&out[..], None).unwrap();
        assert!(checked.report.is_intact(), "{}", checked.report);
        assert_eq!((checked.report.first_seq, checked.report.last_checkpoint), (since, Some(6)));
    }
    let missing = tempfile::tempdir().unwrap();
    let empty = missing.path().join("old.db");
    Connection::open(&empty).unwrap().execute_batch("CREATE TABLE messages (seq INTEGER)").unwrap();
    assert!(matches!(verify_database(&empty, &keys()), Err(AuditError::NoTrail { .. })));
}
