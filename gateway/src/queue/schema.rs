//! The database schema as an ordered list of migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a shipped
/// entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: messages and their state transitions. `accepted_at` is the time of the first
    // state (queued); `transitions` records every change after it.
    "CREATE TABLE messages (
        seq               INTEGER PRIMARY KEY,
        id                TEXT    NOT NULL UNIQUE,
        institution       TEXT    NOT NULL,
        service           TEXT    NOT NULL,
        client            TEXT    NOT NULL,
        fiscal_code       TEXT    NOT NULL,
        priority          INTEGER NOT NULL,
        state             TEXT    NOT NULL,
        body              BLOB    NOT NULL,
        accepted_at       INTEGER NOT NULL,
        state_changed_at  INTEGER NOT NULL,
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   INTEGER NOT NULL DEFAULT 0,
        io_message_id     TEXT,
        io_status         TEXT,
        last_error        TEXT,
        idempotency_key   TEXT,
        request_digest    BLOB
    );
    CREATE UNIQUE INDEX messages_idempotency ON messages (client, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX messages_by_state ON messages (state, priority, seq);
    CREATE TABLE transitions (
        seq          INTEGER PRIMARY KEY,
        message_seq  INTEGER NOT NULL REFERENCES messages (seq),
        from_state   TEXT,
        to_state     TEXT    NOT NULL,
        at           INTEGER NOT NULL,
        reason       TEXT
    );
    CREATE INDEX transitions_by_message ON transitions (message_seq);",
    // 2: what delivery asks for: an institution's messages in a state, by priority.
    "CREATE INDEX messages_due ON messages (institution, state, priority, seq);",
    // 3: imported messages. `dedup_key` makes a re-import of the same record a no-op;
    // `source` says which file (format and name) it came from. An imported message is
    // stored as a recipe — the record's values (`recipe`, JSON) and the template they
    // fill (`template`, the SHA-256 of its text in `templates`) — and rendered when it
    // is sent, in the citizen's preferred language; its `body` stays empty. Templates
    // are kept as they were at import, so editing a file never changes queued messages.
    "ALTER TABLE messages ADD COLUMN dedup_key TEXT;
    ALTER TABLE messages ADD COLUMN source TEXT;
    ALTER TABLE messages ADD COLUMN template BLOB;
    ALTER TABLE messages ADD COLUMN recipe BLOB;
    CREATE UNIQUE INDEX messages_dedup ON messages (dedup_key) WHERE dedup_key IS NOT NULL;
    CREATE TABLE templates (
        digest     BLOB    PRIMARY KEY,
        name       TEXT    NOT NULL,
        text       TEXT    NOT NULL,
        stored_at  INTEGER NOT NULL
    );",
    // 4: the tamper-evident audit trail (see `audit` and `queue::audit`). Entries are
    // appended in the transaction of the change they record, never updated or deleted;
    // `seq` is the chain's own numbering, not a rowid left to SQLite. A checkpoint is the
    // appliance key's signature over the hash of the entry at its `seq`.
    "CREATE TABLE audit (
        seq         INTEGER PRIMARY KEY,
        at_ms       INTEGER NOT NULL,
        kind        TEXT    NOT NULL,
        message_id  TEXT,
        actor       TEXT,
        detail      TEXT    NOT NULL,
        prev_hash   BLOB    NOT NULL,
        hash        BLOB    NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        seq        INTEGER PRIMARY KEY,
        hash       BLOB    NOT NULL,
        at_ms      INTEGER NOT NULL,
        kid        TEXT    NOT NULL,
        signature  BLOB    NOT NULL
    );",
    // 5: encryption at rest and retention (see `queue::sealing`). From here on
    // `fiscal_code`, `body` and `recipe` hold values sealed with a data key (`sealed` = 1;
    // rows written before are sealed in place when the daemon next starts), an empty
    // `fiscal_code` and `body` once the content is deleted, and `dedup_key` holds a keyed
    // hash when it holds personal data. `recipient_index` is the keyed hash of the fiscal
    // code (NULL once erased); it has no SQL index: random keys would scatter every
    // commit's writes across the index (see `DedupKey`), and a citizen's lookup is rare,
    // so it scans. `settings` holds the sweep's cursors and which keys were last in use.
    "ALTER TABLE messages ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN recipient_index BLOB;
    ALTER TABLE messages ADD COLUMN content_deleted_at INTEGER;
    ALTER TABLE messages ADD COLUMN erased_at INTEGER;
    CREATE INDEX messages_unsealed ON messages (seq) WHERE sealed = 0;
    CREATE TABLE settings (
        name   TEXT PRIMARY KEY,
        value  BLOB NOT NULL
    );",
];

/// The schema version this build writes.
pub const CURRENT_VERSION: usize = MIGRATIONS.len();

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the database has schema version {found}, newer than this build's {supported}: upgrade io-gateway")]
    TooNew { found: usize, supported: usize },
    #[error("migration to schema version {version} failed: {source}")]
    Apply { version: usize, source: rusqlite::Error },
    #[error("cannot read the schema version: {0}")]
    Version(rusqlite::Error),
}

/// Brings the schema up to `CURRENT_VERSION`, each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(MigrationError::Version)?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > CURRENT_VERSION {
        return Err(MigrationError::TooNew { found, supported: CURRENT_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        let version = index + 1;
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version as i64)?;
            tx.commit()
        };
        apply(conn).map_err(|source| MigrationError::Apply { version, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_new_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version as usize, CURRENT_VERSION);
    }

    #[test]
    fn refuses_a_database_from_a_newer_build() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(matches!(migrate(&mut conn), Err(MigrationError::TooNew { found: 999, .. })));
    }
}
