//! Queue tests on real SQLite files in a temp dir.

use super::*;
use crate::seal::DataKeys;
use connectors::domain::OrgFiscalCode;

/// The same keys for every open of a test's database.
pub(super) fn keys() -> Keys {
    let data = std::collections::BTreeMap::from([(1, [7u8; 32])]);
    Keys::data_only(Arc::new(DataKeys::from_bytes(&data, &[8; 32]).unwrap()))
}

fn recipient() -> FiscalCode {
    "BNCLRA85C52F205V".parse().unwrap()
}

fn limits() -> Limits {
    Limits { max_queued_messages: 1000, min_free_disk_bytes: 0 }
}

fn record(client: &str, idempotency: Option<(&str, u8)>) -> NewRecord {
    NewRecord {
        institution: "80000000010".parse().unwrap(),
        service: "tari".parse().unwrap(),
        client: client.parse().unwrap(),
        fiscal_code: "BNCLRA85C52F205V".parse().unwrap(),
        priority: Priority::Normal,
        body: br#"{"content":{}}"#.to_vec(),
        idempotency: idempotency.map(|(key, d)| Idempotency { key: key.into(), request_digest: [d; 32] }),
    }
}

fn count(path: &Path, sql: &str) -> i64 {
    Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn stored_message_reads_back_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    let id = queue.enqueue(record("a", None)).await.unwrap().id();
    let stored = queue.message(id, &recipient()).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.priority), (State::Queued, Priority::Normal));
    assert_eq!(stored.body, br#"{"content":{}}"#);
    queue.close();
    drop(queue);

    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    assert_eq!(queue.message(id, &recipient()).await.unwrap().unwrap().fiscal_code.as_str(), "BNCLRA85C52F205V");
    assert!(queue.message(MessageId::new(), &recipient()).await.unwrap().is_none());
    assert_eq!(count(&path, "SELECT COUNT(*) FROM messages WHERE accepted_at = state_changed_at"), 1);
}

#[tokio::test]
async fn idempotency_key_replays_same_request_and_refuses_a_different_one() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(&dir.path().join("q.db"), limits(), Retention::DEFAULT, keys()).unwrap();
    let first = queue.enqueue(record("a", Some(("k1", 1)))).await.unwrap();
    assert!(matches!(first, Accepted::New(_)));
    let again = queue.enqueue(record("a", Some(("k1", 1)))).await.unwrap();
    assert_eq!(again, Accepted::Replayed(first.id()));
    let conflict = queue.enqueue(record("a", Some(("k1", 2)))).await.unwrap_err();
    assert!(matches!(conflict, QueueError::IdempotencyConflict { existing } if existing == first.id()));
    // Keys are per client: another client's same key is another message.
    let other = queue.enqueue(record("b", Some(("k1", 1)))).await.unwrap();
    assert!(matches!(other, Accepted::New(id) if id != first.id()));
}

#[tokio::test]
async fn concurrent_same_key_posts_make_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Queue::open(&dir.path().join("q.db"), limits(), Retention::DEFAULT, keys()).unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.enqueue(record("a", Some(("same", 7)))).await.unwrap().id() })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_handed_to_the_writer_is_counted_until_answered() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_queued_messages: 10, min_free_disk_bytes: 0 };
    let queue = Arc::new(Queue::open(&dir.path().join("q.db"), limits, Retention::DEFAULT, keys()).unwrap());
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.enqueue(record("a", None)).await.is_ok() })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap());
    }
    assert_eq!(accepted, 10, "the rest were refused: the queue is full");
    assert_eq!(queue.commit_wait().awaiting(), 0, "accepted and refused requests were all answered");
    queue.close();
    assert!(matches!(queue.enqueue(record("a", None)).await, Err(QueueError::Closed)));
    assert_eq!(queue.commit_wait().awaiting(), 0, "a request the writer never got is not awaited");
}

#[tokio::test]
async fn full_queue_refuses_new_messages_but_keeps_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(
        &dir.path().join("q.db"),
        Limits { max_queued_messages: 2, min_free_disk_bytes: 0 },
        Retention::DEFAULT,
        keys(),
    )
    .unwrap();
    let a = queue.enqueue(record("a", Some(("a", 1)))).await.unwrap().id();
    queue.enqueue(record("a", None)).await.unwrap();
    let refused = queue.enqueue(record("a", None)).await.unwrap_err();
    assert!(matches!(refused, QueueError::Full { pending: 2, limit: 2 }), "{refused:?}");
    assert!(refused.is_backpressure());
    // A replay of an already accepted message is still answered.
    assert_eq!(queue.enqueue(record("a", Some(("a", 1)))).await.unwrap(), Accepted::Replayed(a));
}

#[tokio::test]
async fn low_disk_refuses_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(
        &dir.path().join("q.db"),
        Limits { max_queued_messages: 10, min_free_disk_bytes: u64::MAX },
        Retention::DEFAULT,
        keys(),
    )
    .unwrap();
    assert!(matches!(queue.enqueue(record("a", None)).await, Err(QueueError::DiskLow { .. })));
}

#[tokio::test]
async fn closed_queue_refuses_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    queue.enqueue(record("a", None)).await.unwrap();
    queue.close();
    assert!(matches!(queue.enqueue(record("a", None)).await, Err(QueueError::Closed)));
    assert_eq!(count(&path, "SELECT COUNT(*) FROM messages"), 1);
}

#[tokio::test]
async fn messages_caught_mid_send_become_ambiguous_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    let id = queue.enqueue(record("a", None)).await.unwrap().id();
    queue.close();
    drop(queue);
    Connection::open(&path).unwrap().execute("UPDATE messages SET state = 'sending'", []).unwrap();

    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    assert_eq!(queue.message(id, &recipient()).await.unwrap().unwrap().state, State::Ambiguous);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM transitions WHERE from_state = 'sending' AND to_state = 'ambiguous'"),
        1
    );
    let entry = "SELECT COUNT(*) FROM audit WHERE kind = 'ambiguous' AND detail = 'from sending' AND message_id = ";
    assert_eq!(count(&path, &format!("{entry}'{id}'")), 1, "the recovery is in the audit trail");
}

#[test]
fn connections_run_in_wal_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_connection(&dir.path().join("q.db")).unwrap();
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!((journal.as_str(), synchronous), ("wal", 2));
}

#[tokio::test]
async fn a_failed_batch_answers_every_caller_with_an_error_and_stores_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Arc::new(Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap());
    // Fault injection through the storage: any batch holding client "boom" fails.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.client = 'boom'
             BEGIN SELECT RAISE(ABORT, 'injected storage fault'); END;",
        )
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let queue = Arc::clone(&queue);
            let client = if i == 20 { "boom" } else { "a" };
            tokio::spawn(async move { (client, queue.enqueue(record(client, Some((&format!("k{i}"), 1)))).await) })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        match task.await.unwrap() {
            ("boom", result) => assert!(matches!(result, Err(QueueError::BatchFailed { .. })), "{result:?}"),
            (_, Ok(Accepted::New(id))) => assert!(queue.message(id, &recipient()).await.unwrap().is_some()),
            (_, Err(QueueError::BatchFailed { .. })) => failed += 1,
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    let stored = count(&path, "SELECT COUNT(*) FROM messages");
    assert_eq!(stored, 39 - failed, "exactly the messages answered Ok are stored");
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit WHERE kind = 'accepted'"), stored, "and only they are audited");
    // The writer keeps working after a failed batch.
    assert!(queue.enqueue(record("a", None)).await.is_ok());
}

#[tokio::test]
async fn due_lists_by_priority_then_arrival_and_apply_moves_states_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    let institution: OrgFiscalCode = "80000000010".parse().unwrap();
    let mut bulk = record("a", None);
    bulk.priority = Priority::Bulk;
    let first_bulk = queue.enqueue(bulk.clone()).await.unwrap().id();
    let normal = queue.enqueue(record("a", None)).await.unwrap().id();
    let mut urgent = record("a", None);
    urgent.priority = Priority::Urgent;
    let urgent = queue.enqueue(urgent).await.unwrap().id();
    queue.enqueue(bulk).await.unwrap();

    let due = queue.due(&institution, &[State::Queued], now_millis(), 3).await.unwrap();
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [urgent, normal, first_bulk]);
    let other: OrgFiscalCode = "02438750586".parse().unwrap();
    assert!(queue.due(&other, &[State::Queued], now_millis(), 10).await.unwrap().is_empty());

    // A change applies only from the expected state, and only once.
    let mut to_sending = Change::new(urgent, State::Queued, State::Sending, "sending");
    to_sending.attempted = true;
    assert_eq!(queue.apply(vec![to_sending.clone(), to_sending]).await.unwrap(), [true, false]);
    let mut sent = Change::new(urgent, State::Sending, State::Sent, "IO answered 201");
    sent.io_message_id = Some("01IOID".into());
    sent.next_attempt_at = Some(now_millis() + 60_000);
    assert_eq!(queue.apply(vec![sent]).await.unwrap(), [true]);
    let stored = queue.message(urgent, &recipient()).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.attempts, stored.io_message_id.as_deref()), (State::Sent, 1, Some("01IOID")));
    // Not due yet: its next poll is in a minute.
    assert!(queue.due(&institution, &[State::Sent], now_millis(), 10).await.unwrap().is_empty());
    // Rescheduling a poll is not a transition.
    let mut later = Change::new(urgent, State::Sent, State::Sent, "still ACCEPTED");
    later.next_attempt_at = Some(0);
    queue.apply(vec![later]).await.unwrap();
    assert_eq!(queue.due(&institution, &[State::Sent], now_millis(), 10).await.unwrap().len(), 1);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM transitions"), 2);
    let mut failed = Change::new(normal, State::Queued, State::RejectedByIo, "IO answered 400");
    failed.error = Some("400 Invalid NewMessage".into());
    queue.apply(vec![failed]).await.unwrap();
    assert_eq!(
        queue.message(normal, &recipient()).await.unwrap().unwrap().last_error.as_deref(),
        Some("400 Invalid NewMessage")
    );
}

#[tokio::test]
async fn finishing_messages_makes_room_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(
        &dir.path().join("q.db"),
        Limits { max_queued_messages: 1, min_free_disk_bytes: 0 },
        Retention::DEFAULT,
        keys(),
    )
    .unwrap();
    let id = queue.enqueue(record("a", None)).await.unwrap().id();
    assert!(matches!(queue.enqueue(record("a", None)).await, Err(QueueError::Full { .. })));
    queue.apply(vec![Change::new(id, State::Queued, State::NotOnIo, "profile 404")]).await.unwrap();
    assert!(queue.enqueue(record("a", None)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_audits_each_change_and_signs_every_thousand_entries_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let key = Arc::new(crate::signing::SigningKey::generate_ephemeral().unwrap());
    let limits = Limits { max_queued_messages: 10_000, min_free_disk_bytes: 0 };
    let queue = Arc::new(
        Queue::open(
            &path,
            limits,
            Retention::DEFAULT,
            Keys { audit: Arc::new(CurrentKey::new(Some(Arc::clone(&key)))), ..keys() },
        )
        .unwrap(),
    );
    let tasks: Vec<_> = (0..1_100)
        .map(|_| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.enqueue(record("a", None)).await.unwrap().id() })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    let signed = count(&path, "SELECT COUNT(*) FROM audit_checkpoints");
    assert_eq!(signed, 1, "one checkpoint once 1,000 entries were past none");
    assert!(count(&path, "SELECT MIN(seq) FROM audit_checkpoints") >= 1_000);
    let sending = Change::new(ids[0], State::Queued, State::Sending, "sending to IO");
    let sent =
        Change { io_message_id: Some("01IOID".into()), ..Change::new(ids[0], State::Sending, State::Sent, "201") };
    assert_eq!(queue.apply(vec![sending, sent]).await.unwrap(), [true, true]);
    queue.close();
    assert_eq!(count(&path, "SELECT MAX(seq) FROM audit_checkpoints"), 1_102, "the close signs the head");
    assert_eq!(count(&path, "SELECT COUNT(*) FROM audit WHERE kind = 'sent' AND detail = '01IOID'"), 1);
    let mut keys = crate::signing::Jwks::new();
    keys.insert(key.public_jwk().clone()).unwrap();
    let verification = audit::verify_database(&path, &keys).unwrap();
    assert!(verification.is_intact(), "{verification}");
    assert_eq!((verification.report.last_seq, verification.report.last_checkpoint), (1_102, Some(1_102)));
}

#[test]
fn a_bare_database_name_lives_in_the_current_directory() {
    assert_eq!(database_directory(Path::new("queue.db")), Path::new("."));
    assert_eq!(database_directory(Path::new("/var/lib/io-gateway/queue.db")), Path::new("/var/lib/io-gateway"));
    assert!(free_disk_bytes(database_directory(Path::new("queue.db"))).unwrap() > 0);
}

/// A new queue file in `dir` and an importer on it, with the test data keys.
fn importer_in(dir: &Path) -> (std::path::PathBuf, Arc<DataKeys>, Importer) {
    let path = dir.join("q.db");
    let data = std::collections::BTreeMap::from([(1, [7u8; 32])]);
    let keys = Arc::new(DataKeys::from_bytes(&data, &[8; 32]).unwrap());
    let importer = Importer::open(&path, limits(), Arc::clone(&keys)).unwrap();
    (path, keys, importer)
}

/// An imported message for notice number `n` of creditor 80000000010.
fn imported(keys: &DataKeys, n: u32) -> ImportedMessage {
    ImportedMessage {
        sealed: Sealed::recipe(keys, &recipient(), b"{}").unwrap(),
        dedup_key: format!("payment:80000000010:3010000000000000{n:02}"),
    }
}

/// Import batches commit without flushing the WAL (see `import`'s module docs); `sync`
/// flushes it, and the daemon's connections keep flushing at every commit.
#[test]
fn an_import_commits_without_a_flush_and_syncs_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (path, keys, mut importer) = importer_in(dir.path());
    assert_eq!(importer.synchronous(), 1, "NORMAL");
    assert_eq!(open_connection(&path).unwrap().query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
    let message = |n: u32| imported(&keys, n);
    let batch = ImportBatch {
        institution: "80000000010".parse().unwrap(),
        service: "tari".parse().unwrap(),
        priority: Priority::Bulk,
        template: [0; 32],
        source: "gpd:test.json".into(),
        messages: (0..3).map(message).collect(),
    };
    assert_eq!(importer.insert(&batch).unwrap(), BatchOutcome { inserted: 3, duplicates: 0 });
    assert!(path.with_file_name("q.db-wal").exists());
    importer.sync().unwrap();
    assert_eq!(count(&path, "SELECT COUNT(*) FROM messages WHERE source = 'gpd:test.json'"), 3);
    // A journal that cannot be flushed is an error that names it.
    importer.wal = dir.path().join("no such directory").join("q.db-wal");
    assert!(importer.sync().is_ok(), "no WAL: nothing to flush");
    importer.wal = path.join("under a file");
    let error = importer.sync().map(|_| ()).unwrap_err();
    assert!(error.to_string().contains("cannot flush the queue's journal"), "{error}");
}

/// What a batch's messages share is bound once per batch: each batch's rows carry that
/// batch's values, not the previous one's; a duplicate gets no row and no audit entry.
#[test]
fn import_batches_store_their_own_shared_values_and_audit_each_new_message() {
    let dir = tempfile::tempdir().unwrap();
    let (path, keys, mut importer) = importer_in(dir.path());
    let message = |n: u32| imported(&keys, n);
    let batch = |institution: &str, service: &str, priority, template, source: &str, numbers: &[u32]| ImportBatch {
        institution: institution.parse().unwrap(),
        service: service.parse().unwrap(),
        priority,
        template,
        source: source.into(),
        messages: numbers.iter().copied().map(message).collect(),
    };
    let first = batch("80000000010", "tari", Priority::Bulk, [1; 32], "gpd:a.json", &[1, 2]);
    let second = batch("00000000000", "imu", Priority::Normal, [2; 32], "govpay:b.csv", &[2, 3, 4]);
    assert_eq!(importer.insert(&first).unwrap(), BatchOutcome { inserted: 2, duplicates: 0 });
    assert_eq!(importer.insert(&second).unwrap(), BatchOutcome { inserted: 2, duplicates: 1 });
    drop(importer);
    let conn = open_connection(&path).unwrap();
    let column = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let shared = column(
        "SELECT institution || ' ' || service || ' ' || client || ' ' || priority || ' ' || state || ' '
                || source || ' ' || hex(template) || ' ' || (accepted_at = state_changed_at AND accepted_at > 0)
         FROM messages ORDER BY seq",
    );
    let (bulk, normal) = (Priority::Bulk.as_sql(), Priority::Normal.as_sql());
    let (ones, twos) = ("01".repeat(32), "02".repeat(32));
    let first_shared = format!("80000000010 tari {IMPORT_CLIENT} {bulk} queued gpd:a.json {ones} 1");
    let second_shared = format!("00000000000 imu {IMPORT_CLIENT} {normal} queued govpay:b.csv {twos} 1");
    assert_eq!(shared, [first_shared.clone(), first_shared, second_shared.clone(), second_shared]);
    let ids = column("SELECT id FROM messages ORDER BY seq");
    let expected: Vec<String> =
        first.messages.iter().chain(&second.messages[1..]).map(|m| m.sealed.id.to_string()).collect();
    assert_eq!(ids, expected, "each row has its own message's id");
    let audited = column("SELECT message_id FROM audit WHERE kind = 'accepted' ORDER BY seq");
    assert_eq!(audited, ids, "one accepted entry per new message, in order");
}
