//! Encryption at rest and retention on real SQLite files.

use super::tests::keys;
use super::*;
use crate::seal::DataKeys;
use std::collections::BTreeMap;

fn limits() -> Limits {
    Limits { max_queued_messages: 1000, min_free_disk_bytes: 0 }
}

fn record(fiscal_code: &str) -> NewRecord {
    NewRecord {
        institution: "80000000010".parse().unwrap(),
        service: "tari".parse().unwrap(),
        client: "tributi".parse().unwrap(),
        fiscal_code: fiscal_code.parse().unwrap(),
        priority: Priority::Normal,
        body: br#"{"content":{"subject":"Segreto del comune"}}"#.to_vec(),
        idempotency: None,
    }
}

fn data_keys(numbers: &[u32]) -> Arc<DataKeys> {
    let data: BTreeMap<u32, [u8; 32]> = numbers.iter().map(|n| (*n, [6 + *n as u8; 32])).collect();
    Arc::new(DataKeys::from_bytes(&data, &[8; 32]).unwrap())
}

fn scalar<T: rusqlite::types::FromSql>(path: &Path, sql: &str) -> T {
    Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

const LAURA: &str = "BNCLRA85C52F205V";

#[tokio::test]
async fn rows_an_older_build_left_clear_are_sealed_at_open_and_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    let id = queue.enqueue(record(LAURA)).await.unwrap().id();
    queue.close();
    drop(queue);
    // What a schema 4 build wrote: clear text, no index, not sealed.
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE messages SET fiscal_code = ?1, body = ?2, recipient_index = NULL, sealed = 0, dedup_key = 'id-card:X'",
            (LAURA, &br#"{"content":{"subject":"Segreto del comune"}}"#[..]),
        )
        .unwrap();
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, keys()).unwrap();
    let stored = queue.message(id, &LAURA.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.body, br#"{"content":{"subject":"Segreto del comune"}}"#);
    assert_eq!(stored.fiscal_code.as_str(), LAURA);
    queue.close();
    assert_eq!(scalar::<i64>(&path, "SELECT COUNT(*) FROM messages WHERE sealed = 0"), 0);
    assert_eq!(
        scalar::<String>(&path, "SELECT dedup_key FROM messages"),
        keys().data.get().dedup_index("id-card:X"),
        "a clear dedup key becomes its keyed hash"
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(LAURA.len()).any(|w| w == LAURA.as_bytes()), "no clear copy left in the file");
    assert!(!bytes.windows(7).any(|w| w == b"Segreto"), "no clear copy left in the file");
}

#[tokio::test]
async fn the_wrong_keys_or_a_missing_key_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, Keys::data_only(data_keys(&[1]))).unwrap();
    queue.enqueue(record(LAURA)).await.unwrap();
    queue.close();
    drop(queue);
    let other_index = DataKeys::from_bytes(&BTreeMap::from([(1, [7; 32])]), &[9; 32]).unwrap();
    let wrong = Queue::open(&path, limits(), Retention::DEFAULT, Keys::data_only(Arc::new(other_index)));
    assert!(matches!(wrong, Err(QueueError::WrongDataKeys)));
    let missing = Queue::open(&path, limits(), Retention::DEFAULT, Keys::data_only(data_keys(&[2])));
    match missing {
        Err(e @ QueueError::MissingDataKey { number: 1, messages: 1 }) => assert!(e.to_string().contains("data-1.key")),
        other => panic!("{:?}", other.err()),
    }
    assert!(Queue::open(&path, limits(), Retention::DEFAULT, Keys::data_only(data_keys(&[1, 2]))).is_ok());
}

#[tokio::test]
async fn a_data_key_rotation_is_audited_once_and_old_content_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = Queue::open(&path, limits(), Retention::DEFAULT, Keys::data_only(data_keys(&[1]))).unwrap();
    let old = queue.enqueue(record(LAURA)).await.unwrap().id();
    queue.close();
    drop(queue);
    for _ in 0..2 {
        let queue = Queue::open(&path, limits(), Retention::DEFAULT, Keys::data_only(data_keys(&[1, 2]))).unwrap();
        queue.enqueue(record(LAURA)).await.unwrap();
        assert_eq!(queue.message(old, &LAURA.parse().unwrap()).await.unwrap().unwrap().fiscal_code.as_str(), LAURA);
        queue.close();
    }
    let rotations: i64 =
        scalar(&path, "SELECT COUNT(*) FROM audit WHERE kind = 'key_rotated' AND detail = 'data key 1 -> 2'");
    assert_eq!(rotations, 1);
    let sealed_with: Vec<i64> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT unicode(substr(fiscal_code, 5, 1)) FROM messages ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sealed_with, [1, 2, 2], "each message names the key that sealed it");
}

#[tokio::test]
async fn content_goes_at_the_final_state_or_after_its_retention_and_the_trail_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let retention = Retention { delivered: Duration::ZERO, undelivered: Duration::from_secs(3600) };
    let queue = Queue::open(&path, limits(), retention, keys()).unwrap();
    let delivered = queue.enqueue(record(LAURA)).await.unwrap().id();
    let undelivered = queue.enqueue(record(LAURA)).await.unwrap().id();
    let changes = vec![
        Change::new(delivered, State::Queued, State::Processed, "test"),
        Change::new(undelivered, State::Queued, State::NotOnIo, "profile 404"),
    ];
    queue.apply(changes).await.unwrap();
    let laura: FiscalCode = LAURA.parse().unwrap();
    let gone = queue.message(delivered, &laura).await.unwrap().unwrap();
    assert!(gone.content_deleted && gone.body.is_empty(), "retention 0: deleted with the final state");
    assert_eq!(gone.state, State::Processed);
    let kept = queue.message(undelivered, &laura).await.unwrap().unwrap();
    assert!(!kept.content_deleted, "kept an hour for the paper fallback");
    queue.close();
    drop(queue);

    // An hour and a minute later, the sweep takes it; it resumes where it stopped.
    let mut conn = Connection::open(&path).unwrap();
    let later = now_millis() + 3_660_000;
    for expected in [1, 0] {
        let tx = conn.transaction().unwrap();
        let (deleted, caught_up) = sealing::sweep(&tx, &mut audit::Trail::new(), retention, later, 10).unwrap();
        tx.commit().unwrap();
        assert_eq!((deleted, caught_up), (expected, true));
    }
    let erased: Vec<(String, String)> = conn
        .prepare("SELECT message_id, detail FROM audit WHERE kind = 'erased' ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let retention_entry = |id: MessageId| (id.to_string(), "retention".to_string());
    assert_eq!(erased, [retention_entry(delivered), retention_entry(undelivered)]);
    let kept_bytes: i64 =
        conn.query_row("SELECT SUM(length(body) + length(fiscal_code)) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(kept_bytes, 0);
    let indexed: i64 = conn.query_row("SELECT COUNT(recipient_index) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(indexed, 2, "the keyed index stays: the citizen can still ask what was sent");
}
