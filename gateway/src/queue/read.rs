//! Reading messages back: rows into [`StoredMessage`]s, their sealed values opened.

use super::{storage, MessageId, Priority, QueueError, Recipe, State, StoredMessage};
use crate::seal::{DataKeys, Field};
use connectors::domain::{FiscalCode, TestRecipient};
use rusqlite::{Connection, OptionalExtension};

const MESSAGE_COLUMNS: &str = "id, institution, service, client, fiscal_code, priority, state, body, accepted_at,
    state_changed_at, attempts, io_message_id, io_status, last_error, template, recipe, source, sealed,
    content_deleted_at";

pub(super) fn read_message(
    conn: &Connection,
    keys: &DataKeys,
    id: MessageId,
    recipient: &FiscalCode,
) -> Result<Option<StoredMessage>, QueueError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 AND recipient_index = ?2"))
        .map_err(storage("reading a message"))?;
    let index = keys.recipient_index(recipient.as_str());
    let row = stmt.query_row((id.to_string(), &index[..]), raw_row).optional().map_err(storage("reading a message"))?;
    row.map(|row| stored_message(row, keys, Some(recipient))).transpose()
}

pub(super) fn read_due(
    conn: &Connection,
    keys: &DataKeys,
    institution: &str,
    states: &[&str],
    now: i64,
    limit: usize,
) -> Result<Vec<StoredMessage>, QueueError> {
    let storage = storage("listing due messages");
    let placeholders = (0..states.len()).map(|i| format!("?{}", i + 4)).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE institution = ?1 AND state IN ({placeholders}) AND next_attempt_at <= ?2
         ORDER BY priority, seq LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(&storage)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&institution, &now, &limit];
    params.extend(states.iter().map(|s| s as &dyn rusqlite::ToSql));
    let rows = stmt.query_map(params.as_slice(), raw_row).map_err(&storage)?;
    rows.map(|row| row.map_err(&storage).and_then(|row| stored_message(row, keys, None))).collect()
}

struct RawRow {
    id: String,
    names: (String, String, String),
    fiscal_code: Vec<u8>,
    priority: i64,
    state: String,
    body: Vec<u8>,
    times: (i64, i64, i64),
    io: (Option<String>, Option<String>, Option<String>),
    import: (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>),
    sealed: bool,
    content_deleted: bool,
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    let bytes =
        |i: usize| -> rusqlite::Result<Vec<u8>> { Ok(r.get_ref(i)?.as_bytes_or_null()?.unwrap_or_default().to_vec()) };
    Ok(RawRow {
        id: r.get(0)?,
        names: (r.get(1)?, r.get(2)?, r.get(3)?),
        fiscal_code: bytes(4)?,
        priority: r.get(5)?,
        state: r.get(6)?,
        body: bytes(7)?,
        times: (r.get(8)?, r.get(9)?, r.get(10)?),
        io: (r.get(11)?, r.get(12)?, r.get(13)?),
        import: (r.get(14)?, r.get(15)?, r.get(16)?),
        sealed: r.get::<_, i64>(17)? != 0,
        content_deleted: r.get::<_, Option<i64>>(18)?.is_some(),
    })
}

/// A row as a message, its sealed values opened. `recipient`: the fiscal code the caller
/// matched through the index, which stands in for a deleted one.
fn stored_message(row: RawRow, keys: &DataKeys, recipient: Option<&FiscalCode>) -> Result<StoredMessage, QueueError> {
    let RawRow { id, names: (institution, service, client), priority, state, times, io, import, .. } = row;
    let corrupt = |what: String| QueueError::Corrupt { what };
    let text_id = id;
    let id: MessageId = text_id.parse().map_err(|_| corrupt(format!("message id {text_id:?}")))?;
    let priority = Priority::from_sql(priority).ok_or_else(|| corrupt(format!("priority {priority}")))?;
    let state = State::from_sql(&state).ok_or_else(|| corrupt(format!("state {state:?}")))?;
    let open = |field: Field, bytes: Vec<u8>| -> Result<Vec<u8>, QueueError> {
        match row.sealed && !bytes.is_empty() {
            true => Ok(keys.open(field, &text_id, &bytes)?),
            false => Ok(bytes),
        }
    };
    let fiscal_code = match (row.content_deleted, recipient) {
        (true, Some(known)) => known.clone(),
        (true, None) => return Err(corrupt(format!("content of message {id} (deleted)"))),
        (false, _) => {
            let clear = open(Field::Recipient, row.fiscal_code)?;
            // Validated at intake; the test recipient is stored only where it was allowed.
            std::str::from_utf8(&clear)
                .ok()
                .and_then(|text| FiscalCode::parse(text, TestRecipient::Allowed).ok())
                .ok_or_else(|| corrupt(format!("fiscal code of message {id}")))?
        }
    };
    let recipe = match (import.0, import.1) {
        (Some(template), Some(data)) => Some(Recipe {
            template: template.try_into().map_err(|_| corrupt(format!("template digest of message {id}")))?,
            data: if row.sealed { keys.open(Field::Recipe, &text_id, &data)? } else { data },
        }),
        _ => None,
    };
    Ok(StoredMessage {
        id,
        institution: institution.parse().map_err(|_| corrupt(format!("institution {institution:?}")))?,
        service: service.parse().map_err(|_| corrupt(format!("service {service:?}")))?,
        client: client.parse().map_err(|_| corrupt(format!("client {client:?}")))?,
        fiscal_code,
        priority,
        state,
        body: open(Field::Body, row.body)?,
        accepted_at: times.0,
        state_changed_at: times.1,
        attempts: u32::try_from(times.2).unwrap_or(u32::MAX),
        io_message_id: io.0,
        io_status: io.1,
        last_error: io.2,
        recipe,
        source: import.2,
        content_deleted: row.content_deleted,
    })
}
