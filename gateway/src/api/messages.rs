//! `POST /messages[/{fiscal_code}]` and `GET /messages/{fiscal_code}/{id}`.

use super::{authorize, json_response, read_json, ApiState, Body, Problem};
use crate::queue::{Accepted, Idempotency, MessageId, NewRecord, Priority, QueueError, StoredMessage};
use crate::signing::jws::Receipt;
use connectors::domain::{FiscalCode, TestRecipient};
use connectors::message::NewMessage;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const PRIORITY_HEADER: &str = "x-io-gateway-priority";
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Validates a message, stores it durably and answers 201 with its id.
/// The header carrying a 201's signed receipt (a compact JWS, see `signing::jws`), sent
/// when the client asks with `Prefer: receipt` (RFC 7240): signing costs ~30 µs of the
/// HTTP thread per message, not worth spending on receipts nobody keeps.
pub const RECEIPT_HEADER: &str = "io-gateway-receipt";
const RECEIPT_ISSUER: &str = "io-gateway";

pub async fn submit(
    state: &ApiState,
    request: Request<Incoming>,
    path_fiscal_code: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let (client, service_name) = authorize(state, &request)?;
    let idempotency_key = header_text(&request, IDEMPOTENCY_HEADER)?.map(str::to_string);
    if let Some(key) = &idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )));
        }
    }
    let priority = match header_text(&request, PRIORITY_HEADER)? {
        Some(text) => text.parse::<Priority>().map_err(bad_request)?,
        None => client.priority,
    };
    let wants_receipt = header_text(&request, "prefer")?.is_some_and(prefers_receipt);
    let (raw_body, body) = read_json(request, state.config.local_api.max_body_bytes).await?;
    let message = NewMessage::from_json(&body, path_fiscal_code, test_recipient(state)).map_err(Problem::invalid)?;
    let (institution, _) = state.config.service(service_name).ok_or_else(|| {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Configuration", format!("service {service_name} vanished"))
    })?;
    let idempotency = idempotency_key.map(|key| Idempotency {
        request_digest: request_digest(service_name.as_str(), message.fiscal_code().as_str(), priority, &raw_body),
        key,
    });
    let record = NewRecord {
        institution: institution.fiscal_code.clone(),
        service: service_name.clone(),
        client: client.name.clone(),
        fiscal_code: message.fiscal_code().clone(),
        priority,
        body: message.to_io_body(),
        idempotency,
    };
    let accepted = state.queue.enqueue(record).await.map_err(queue_problem)?;
    if let Accepted::New(_) = accepted {
        let labels = [institution.name.as_str(), service_name.as_str(), "api"];
        state.metrics.accepted.with_label_values(&labels).inc();
    }
    log::debug!(message_id:display = accepted.id(), client = client.name.as_str(), service = service_name.as_str(),
                replayed = matches!(accepted, Accepted::Replayed(_)); "message accepted");
    let location = format!("/api/v1/messages/{}/{}", message.fiscal_code().as_str(), accepted.id());
    let mut response = json_response(StatusCode::CREATED, &json!({ "id": accepted.id().to_string() }));
    let location = header::HeaderValue::from_str(&location)
        .map_err(|_| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "cannot build Location"))?;
    response.headers_mut().insert(header::LOCATION, location);
    if let Some(key) = state.receipts.get().filter(|_| wants_receipt) {
        let receipt = Receipt::new(&accepted.id(), &raw_body, &client.name, jiff::Timestamp::now(), RECEIPT_ISSUER);
        match receipt.sign(&key).map(|token| header::HeaderValue::from_str(&token)) {
            Ok(Ok(value)) => {
                response.headers_mut().insert(RECEIPT_HEADER, value);
                response.headers_mut().insert("preference-applied", header::HeaderValue::from_static("receipt"));
            }
            // The message is committed: a 201 without a receipt beats a lost answer.
            Ok(Err(_)) | Err(_) => log::error!(message_id:display = accepted.id(); "cannot sign a receipt"),
        }
    }
    Ok(response)
}

/// Shows a message the caller posted: its content as IO would return it, IO's status
/// when known, and the gateway's own state. Another client's message is a 404, even on a
/// shared service: clients see only their own messages.
pub async fn show<B>(
    state: &ApiState,
    request: &Request<B>,
    fiscal_code: &str,
    id: &str,
) -> Result<Response<Body>, Problem> {
    let (client, _) = authorize(state, request)?;
    let fiscal_code = FiscalCode::parse(fiscal_code, test_recipient(state)).map_err(|e| {
        Problem::invalid(vec![connectors::message::Violation {
            field: "fiscal_code (path)".into(),
            reason: e.to_string(),
        }])
    })?;
    let not_found = || Problem::new(StatusCode::NOT_FOUND, "Not found", "no message with this id for this fiscal code");
    let id: MessageId = id.parse().map_err(|_| not_found())?;
    let stored = state.queue.message(id, &fiscal_code).await.map_err(queue_problem)?.ok_or_else(not_found)?;
    let visible = stored.client == client.name;
    if !visible {
        return Err(not_found());
    }
    Ok(json_response(StatusCode::OK, &message_view(state, &stored)))
}

fn message_view(state: &ApiState, stored: &StoredMessage) -> Value {
    let body: Value = serde_json::from_slice(&stored.body).unwrap_or(Value::Null);
    let service_id = state.config.service(&stored.service).map(|(_, s)| s.service_id.clone());
    let mut message = json!({
        "id": stored.id.to_string(),
        "fiscal_code": stored.fiscal_code.as_str(),
        "created_at": timestamp(stored.accepted_at),
        "content": body.get("content"),
        "sender_service_id": service_id,
        "feature_level_type": body.get("feature_level_type"),
    });
    if let Some(ttl) = body.get("time_to_live") {
        message["time_to_live"] = ttl.clone();
    }
    let mut view = json!({
        "message": message,
        "gateway": {
            "state": stored.state.as_sql(),
            "service": stored.service.as_str(),
            "priority": stored.priority.as_str(),
            "accepted_at": timestamp(stored.accepted_at),
            "state_changed_at": timestamp(stored.state_changed_at),
            "attempts": stored.attempts,
            "io_message_id": stored.io_message_id,
            "last_error": stored.last_error,
            "content_deleted": stored.content_deleted,
        }
    });
    if let Some(status) = &stored.io_status {
        view["status"] = json!(status);
    }
    view
}

fn timestamp(millis: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(millis).ok().map(connectors::message::format_timestamp)
}

fn test_recipient(state: &ApiState) -> TestRecipient {
    if state.config.io.allow_test_recipient {
        TestRecipient::Allowed
    } else {
        TestRecipient::Rejected
    }
}

/// What makes two requests "the same" for an idempotency key: service, recipient,
/// priority and body bytes.
fn request_digest(service: &str, fiscal_code: &str, priority: Priority, body: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [service.as_bytes(), fiscal_code.as_bytes(), priority.as_str().as_bytes()] {
        ctx.update(part);
        ctx.update(&[0]);
    }
    ctx.update(body);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ctx.finish().as_ref());
    digest
}

/// Whether a `Prefer` header value asks for a receipt (`receipt` among its preferences).
fn prefers_receipt(prefer: &str) -> bool {
    prefer.split(',').any(|p| p.split(';').next().is_some_and(|name| name.trim().eq_ignore_ascii_case("receipt")))
}

fn header_text<'a, B>(request: &'a Request<B>, name: &str) -> Result<Option<&'a str>, Problem> {
    match request.headers().get(name) {
        None => Ok(None),
        Some(value) => {
            value.to_str().map(|s| Some(s.trim())).map_err(|_| bad_request(format!("header {name} must be ASCII")))
        }
    }
}

fn bad_request(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "Bad request", detail)
}

fn queue_problem(error: QueueError) -> Problem {
    match error {
        QueueError::IdempotencyConflict { existing } => Problem::new(
            StatusCode::CONFLICT,
            "Idempotency key reused",
            format!("this Idempotency-Key was used for a different request (message {existing})"),
        ),
        // The writer logs once when refusals start and stop; one line per refused request
        // would flood the journal exactly when the disk is short.
        QueueError::Full { .. } | QueueError::DiskLow { .. } => {
            Problem::unavailable(format!("the gateway is not accepting new messages now: {error}"), 30)
        }
        QueueError::Busy(_) => Problem::unavailable(format!("the gateway is busy: {error}"), 1),
        QueueError::Closed => Problem::unavailable("the gateway is shutting down", 5),
        // The writer already logged the failed batch once.
        _ => Problem::unavailable("the message could not be stored; it was not accepted", 5),
    }
}

#[cfg(test)]
mod tests {
    use super::prefers_receipt;

    #[test]
    fn a_receipt_is_asked_for_with_prefer() {
        for (value, expected) in [
            ("receipt", true),
            ("Receipt", true),
            ("return=minimal, receipt", true),
            ("respond-async; wait=10, receipt;x=1", true),
            ("return=minimal", false),
            ("receipts", false),
            ("", false),
        ] {
            assert_eq!(prefers_receipt(value), expected, "{value:?}");
        }
    }
}
