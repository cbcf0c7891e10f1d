//! The sandbox answers as IO does: checked over real loopback sockets.

use super::*;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

const KEY: &str = "key-tari";
const OTHER_KEY: &str = "key-anagrafe";

fn config(extra: &str) -> SandboxConfig {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
processing_delay_ms = 0
{extra}
[[services]]
service_id = "TARI"
institution = "80000000010"
primary_key = "{KEY}"
secondary_key = "key-tari-2"
[[services]]
service_id = "ANAGRAFE"
institution = "80000000010"
primary_key = "{OTHER_KEY}"
[[citizens]]
fiscal_code = "VRDGPP50T01H501B"
profile = "not_on_io"
[[citizens]]
fiscal_code = "SPSNMR79L71F839Q"
profile = "sender_not_allowed"
[[citizens]]
fiscal_code = "BNCLRA85C52F205V"
profile = "on_io"
preferred_languages = ["it_IT"]
"#
    );
    SandboxConfig::from_toml_str(&text).unwrap()
}

fn message(fc: &str) -> Value {
    let mut body: Value =
        serde_json::from_str(include_str!("../../../connectors/tests/fixtures/io_message_tari.json")).unwrap();
    body["fiscal_code"] = json!(fc);
    body
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path).header("host", "localhost");
    if let Some(key) = key {
        request = request.header("ocp-apim-subscription-key", key);
    }
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let request =
        request.header("content-type", "application/json").body(Full::new(bytes)).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer { status, headers, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

#[tokio::test]
async fn submit_then_read_status_like_io() {
    let sandbox = Sandbox::start(config("")).await.unwrap();
    let addr = sandbox.addr();
    let created =
        call(addr, Method::POST, "/api/v1/messages", Some(KEY), Some(&message("BNCLRA85C52F205V"))).await.unwrap();
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_string();
    let location = created.headers["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/messages/BNCLRA85C52F205V/{id}"));
    assert!(created.headers.contains_key("x-rate-limit-remaining"));

    let read = call(addr, Method::GET, &location, Some(KEY), None).await.unwrap();
    assert_eq!(read.status, 200);
    assert_eq!(read.body["status"], "PROCESSED");
    assert_eq!(read.body["message"]["sender_service_id"], "TARI");
    assert_eq!(read.body["message"]["content"]["payment_data"]["notice_number"], "301202500000000281");
    // Another service of the same institution may not read it.
    assert_eq!(call(addr, Method::GET, &location, Some(OTHER_KEY), None).await.unwrap().status, 403);
    assert_eq!(
        call(addr, Method::GET, "/api/v1/messages/BNCLRA85C52F205V/01ARZ3NDEKTSV4RRFFQ69G5FAV", Some(KEY), None)
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(sandbox.received().len(), 1);
}

#[tokio::test]
async fn consent_is_checked_when_processing_not_at_submission() {
    let sandbox = Sandbox::start(config("")).await.unwrap();
    for fc in ["VRDGPP50T01H501B", "SPSNMR79L71F839Q"] {
        let created =
            call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&message(fc))).await.unwrap();
        assert_eq!(created.status, 201);
        let location = created.headers["location"].to_str().unwrap().to_string();
        let read = call(sandbox.addr(), Method::GET, &location, Some(KEY), None).await.unwrap();
        assert_eq!(read.body["status"], "REJECTED", "{fc}");
    }
}

#[tokio::test]
async fn messages_stay_accepted_until_processed() {
    let sandbox = Sandbox::start(config("").tap(|c| c.processing_delay_ms = 60_000)).await.unwrap();
    let created = call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&message("BNCLRA85C52F205V")))
        .await
        .unwrap();
    let location = created.headers["location"].to_str().unwrap().to_string();
    assert_eq!(call(sandbox.addr(), Method::GET, &location, Some(KEY), None).await.unwrap().body["status"], "ACCEPTED");
}

#[tokio::test]
async fn profiles_by_path_and_by_post() {
    let sandbox = Sandbox::start(config("")).await.unwrap();
    let addr = sandbox.addr();
    let on = call(addr, Method::GET, "/api/v1/profiles/BNCLRA85C52F205V", Some(KEY), None).await.unwrap();
    assert_eq!((on.status, on.body["sender_allowed"].as_bool()), (200, Some(true)));
    assert_eq!(on.body["preferred_languages"], json!(["it_IT"]));
    let blocked =
        call(addr, Method::POST, "/api/v1/profiles", Some(KEY), Some(&json!({ "fiscal_code": "SPSNMR79L71F839Q" })))
            .await
            .unwrap();
    assert_eq!((blocked.status, blocked.body["sender_allowed"].as_bool()), (200, Some(false)));
    assert_eq!(
        call(addr, Method::GET, "/api/v1/profiles/VRDGPP50T01H501B", Some(KEY), None).await.unwrap().status,
        404
    );
    // Unlisted fiscal codes get the configured default (on IO).
    assert_eq!(
        call(addr, Method::GET, "/api/v1/profiles/RSSMRC60D30Z112N", Some(KEY), None).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn keys_are_checked_like_the_api_manager_does() {
    let sandbox = Sandbox::start(config("")).await.unwrap();
    let body = message("BNCLRA85C52F205V");
    let missing = call(sandbox.addr(), Method::POST, "/api/v1/messages", None, Some(&body)).await.unwrap();
    assert_eq!((missing.status, missing.body["statusCode"].as_u64()), (401, Some(401)));
    assert!(missing.body["message"].as_str().unwrap().contains("missing subscription key"));
    let wrong = call(sandbox.addr(), Method::POST, "/api/v1/messages", Some("nope"), Some(&body)).await.unwrap();
    assert!(wrong.body["message"].as_str().unwrap().contains("invalid subscription key"));
    // The secondary key works too.
    assert_eq!(
        call(sandbox.addr(), Method::POST, "/api/v1/messages", Some("key-tari-2"), Some(&body)).await.unwrap().status,
        201
    );
    assert_eq!(sandbox.stats().unauthorized, 2);
}

#[tokio::test]
async fn invalid_messages_get_a_problem() {
    let sandbox = Sandbox::start(config("")).await.unwrap();
    let mut body = message("BNCLRA85C52F205V");
    body["content"]["subject"] = json!("short");
    let answer = call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["title"], "Invalid NewMessage");
    assert!(answer.body["detail"].as_str().unwrap().contains("root.content.subject"));
    assert!(sandbox.received().is_empty());
}

#[tokio::test]
async fn the_budget_is_per_institution_shared_by_every_call_and_answers_429() {
    let sandbox = Sandbox::start(config("rate_limit = { calls = 4, per_seconds = 60 }")).await.unwrap();
    let addr = sandbox.addr();
    let body = message("BNCLRA85C52F205V");
    assert_eq!(call(addr, Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.unwrap().status, 201);
    assert_eq!(
        call(addr, Method::GET, "/api/v1/profiles/BNCLRA85C52F205V", Some(KEY), None).await.unwrap().status,
        200
    );
    assert_eq!(call(addr, Method::POST, "/api/v1/messages", Some(OTHER_KEY), Some(&body)).await.unwrap().status, 201);
    let last = call(addr, Method::GET, "/api/v1/profiles/BNCLRA85C52F205V", Some(OTHER_KEY), None).await.unwrap();
    assert_eq!(last.headers["x-rate-limit-remaining"], "0");
    let refused = call(addr, Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.unwrap();
    assert_eq!(refused.status, 429);
    let wait: u64 = refused.headers["x-rate-limit-retry-after"].to_str().unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "{wait}");
    assert_eq!(refused.body["message"], format!("Rate limit is exceeded. Try again in {wait} seconds."));
    assert_eq!((sandbox.received().len(), sandbox.stats().throttled), (2, 1));
}

#[tokio::test]
async fn injected_errors_and_resets() {
    let errors = Sandbox::start(config("[faults]\nerror_rate = 1.0")).await.unwrap();
    let body = message("BNCLRA85C52F205V");
    assert_eq!(
        call(errors.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.unwrap().status,
        500
    );
    assert!(errors.received().is_empty());

    let resets = Sandbox::start(config("[faults]\nreset_rate = 1.0")).await.unwrap();
    assert!(call(resets.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.is_err());
    assert!(resets.received().is_empty(), "reset before acceptance stores nothing");

    let ambiguous = Sandbox::start(config("[faults]\nreset_after_accept_rate = 1.0")).await.unwrap();
    assert!(call(ambiguous.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.is_err());
    assert_eq!(ambiguous.received().len(), 1, "IO has the message though the sender got no answer");
}

#[tokio::test]
async fn a_service_in_trial_writes_only_to_its_authorized_recipients() {
    let mut config = config("");
    config.services[0].authorized_recipients = Some(vec!["VRDGPP50T01H501B".into()]);
    let sandbox = Sandbox::start(config).await.unwrap();
    let refused = call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&message("BNCLRA85C52F205V")))
        .await
        .unwrap();
    assert_eq!((refused.status, refused.body["title"].as_str()), (403, Some("Recipient forbidden")));
    for fc in ["VRDGPP50T01H501B", "AAAAAA00A00A000A"] {
        assert_eq!(
            call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&message(fc))).await.unwrap().status,
            201
        );
    }
}

#[tokio::test]
async fn the_first_submissions_can_be_made_ambiguous_deterministically() {
    let sandbox = Sandbox::start(config("[faults]\nreset_after_accept_count = 2")).await.unwrap();
    let body = message("BNCLRA85C52F205V");
    for _ in 0..2 {
        assert!(call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.is_err());
    }
    assert_eq!(
        call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.unwrap().status,
        201
    );
    assert_eq!(sandbox.received().len(), 3);
}

#[tokio::test]
async fn outages_drop_every_connection() {
    let sandbox = Sandbox::start(config("[faults]\noutages = [{ start_s = 0, duration_s = 3600 }]")).await.unwrap();
    let body = message("BNCLRA85C52F205V");
    assert!(call(sandbox.addr(), Method::POST, "/api/v1/messages", Some(KEY), Some(&body)).await.is_err());
    // The outage drops connections as they arrive, before any route (in-process tests
    // read `received()` and `stats()` directly).
    let stats = call(sandbox.addr(), Method::GET, "/__sandbox/stats", None, None).await;
    assert!(stats.is_err());
    assert_eq!(sandbox.stats().calls, 0, "dropped connections never reach a handler");
    assert_eq!(sandbox.stop().await, Stopped::Clean);
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for SandboxConfig {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
