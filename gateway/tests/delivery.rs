//! Delivery end to end: the gateway in-process on real sockets, the IO sandbox over real
//! loopback, a real SQLite file.

use bytes::Bytes;
use gateway::config::{Config, KeyDigest};
use gateway::http_server::Stopped;
use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::server::Prepared;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLIENT_KEY: &str = "client-key";
const FC: &str = "BNCLRA85C52F205V";
const NOT_ON_IO: &str = "VRDGPP50T01H501B";
const BLOCKS_US: &str = "SPSNMR79L71F839Q";

struct Harness {
    dir: tempfile::TempDir,
    sandbox: Sandbox,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Stopped>,
}

/// `sandbox_extra` goes at the top of the sandbox config, `service_extra` into its
/// service, `institution_extra` into the gateway's institution, `delivery` into
/// the gateway's [delivery].
async fn harness(sandbox_extra: &str, service_extra: &str, institution_extra: &str, delivery: &str) -> Harness {
    harness_with_keys(sandbox_extra, service_extra, institution_extra, delivery, "io-key", None).await
}

/// Like `harness`, with the gateway's own primary and secondary IO keys (the sandbox
/// accepts only "io-key").
async fn harness_with_keys(
    sandbox_extra: &str,
    service_extra: &str,
    institution_extra: &str,
    delivery: &str,
    primary: &str,
    secondary: Option<&str>,
) -> Harness {
    let sandbox_config = format!(
        "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\n{sandbox_extra}\n\
         [[services]]\nservice_id = \"SVC-TARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-key\"\n{service_extra}\n\
         [[citizens]]\nfiscal_code = \"{NOT_ON_IO}\"\nprofile = \"not_on_io\"\n\
         [[citizens]]\nfiscal_code = \"{BLOCKS_US}\"\nprofile = \"sender_not_allowed\"\n"
    );
    let sandbox = Sandbox::start(SandboxConfig::from_toml_str(&sandbox_config).unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("io.key"), primary).unwrap();
    let secondary_line = match secondary {
        Some(key) => {
            std::fs::write(dir.path().join("io2.key"), key).unwrap();
            format!("secondary_key = {{ file = \"{}/io2.key\" }}", dir.path().display())
        }
        None => String::new(),
    };
    let config = format!(
        r#"
[[institutions]]
name = "Comune di Esempio"
fiscal_code = "80000000010"
{institution_extra}
  [[institutions.services]]
  name = "tari"
  service_id = "SVC-TARI"
  primary_key = {{ file = "{dir}/io.key" }}
  {secondary_line}
[[clients]]
name = "tributi"
key_sha256 = "{digest}"
services = ["tari"]
[io]
base_url = "{base}"
[local_api]
listen = "127.0.0.1:0"
[storage]
path = "{dir}/queue.db"
min_free_disk_mb = 0
[delivery]
first_poll_after_seconds = 1
{delivery}
"#,
        dir = dir.path().display(),
        digest = KeyDigest::of_key(CLIENT_KEY.as_bytes()).to_hex(),
        base = sandbox.base_url(),
    );
    let prepared = Prepared::new(Config::from_toml_str(&config).unwrap()).await.unwrap();
    let addr = prepared.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(prepared.run(async {
        let _ = stopped.await;
    }));
    Harness { dir, sandbox, addr, stop: Some(stop), task }
}

impl Harness {
    async fn post(&self, fc: &str, marker: &str, priority: &str) -> String {
        let body = json!({
            "fiscal_code": fc,
            "content": {
                "subject": "TARI 2025: avviso di pagamento",
                "markdown": format!("Gentile contribuente, e' disponibile l'avviso di pagamento della TARI 2025: puoi pagarlo in app. [{marker}]"),
            }
        });
        let (status, headers, _) = self.call(http::Method::POST, "/api/v1/messages", Some(body), priority).await;
        assert_eq!(status, 201);
        headers.get("location").unwrap().to_str().unwrap().to_string()
    }

    async fn view(&self, location: &str) -> Value {
        self.call(http::Method::GET, location, None, "normal").await.2
    }

    /// Waits until the message reaches a final state (or `until`), and returns its view.
    async fn settle(&self, location: &str, until: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let view = self.view(location).await;
            let state = view["gateway"]["state"].as_str().unwrap_or("").to_string();
            if until.contains(&state.as_str()) {
                return view;
            }
            assert!(Instant::now() < deadline, "still {state} after 40 s: {view}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
        priority: &str,
    ) -> (u16, http::HeaderMap, Value) {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("ocp-apim-subscription-key", CLIENT_KEY)
            .header("x-io-gateway-priority", priority)
            .body(Full::new(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Markers of the messages the sandbox received, in order.
    fn received_markers(&self) -> Vec<String> {
        self.sandbox
            .received()
            .iter()
            .map(|r| {
                r.content["markdown"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('[')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(']')
                    .to_string()
            })
            .collect()
    }

    fn transitions_to(&self, state: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.dir.path().join("queue.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM transitions WHERE to_state = ?1", [state], |r| r.get(0)).unwrap()
    }

    async fn stop(mut self) -> Stopped {
        let _ = self.stop.take().map(|s| s.send(()));
        (&mut self.task).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_reaches_processed_once_each() {
    let h = harness("", "", "", "").await;
    let mut locations = Vec::new();
    for i in 0..5 {
        locations.push(h.post(FC, &format!("m{i}"), "normal").await);
    }
    for location in &locations {
        let view = h.settle(location, &["processed"]).await;
        assert_eq!(view["status"], "PROCESSED");
        assert!(view["gateway"]["io_message_id"].as_str().is_some_and(|id| id.len() == 26));
        assert_eq!(view["gateway"]["attempts"], 1);
    }
    let mut markers = h.received_markers();
    markers.sort();
    assert_eq!(markers, ["m0", "m1", "m2", "m3", "m4"], "each message reached IO exactly once");
    assert_eq!(h.sandbox.stats().profile_reads, 1, "one citizen, one profile check (cached)");
    assert_eq!(h.stop().await, Stopped::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_not_on_io_or_blocking_us_are_final_and_never_sent() {
    let h = harness("", "", "", "").await;
    let not_on_io = h.post(NOT_ON_IO, "a", "normal").await;
    let blocked = h.post(BLOCKS_US, "b", "normal").await;
    assert_eq!(h.settle(&not_on_io, &["not_on_io"]).await["gateway"]["state"], "not_on_io");
    assert_eq!(h.settle(&blocked, &["sender_not_allowed"]).await["gateway"]["state"], "sender_not_allowed");
    assert!(h.sandbox.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_io_is_final_and_keeps_ios_reason() {
    // A service still in trial may write only to its authorized recipients: IO says 403.
    let h = harness("", "authorized_recipients = [\"RSSMRC60D30Z112N\"]", "", "").await;
    let location = h.post(FC, "trial", "normal").await;
    let view = h.settle(&location, &["rejected_by_io"]).await;
    assert!(view["gateway"]["last_error"].as_str().unwrap().contains("Recipient forbidden"), "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_to_the_budget_causes_no_429() {
    let h = harness(
        "rate_limit = { calls = 6, per_seconds = 2 }",
        "",
        "rate_limit = { calls = 6, per_seconds = 2 }",
        // A loaded 2-core test machine delays calls by more than the default 50 ms.
        "profile_check = \"never\"\nbudget_margin_ms = 250",
    )
    .await;
    let mut locations = Vec::new();
    for i in 0..15 {
        locations.push(h.post(FC, &format!("b{i}"), "normal").await);
    }
    for location in &locations {
        h.settle(location, &["processed"]).await;
    }
    assert_eq!(h.sandbox.stats().throttled, 0, "the gateway never exceeded the budget");
    assert_eq!(h.sandbox.received().len(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_pauses_the_budget_and_loses_nothing() {
    // The gateway is told the budget is unlimited; IO's is 5 per 2 s: 429s follow.
    let h = harness(
        "rate_limit = { calls = 5, per_seconds = 2 }",
        "",
        "rate_limit = \"unlimited\"",
        "profile_check = \"never\"",
    )
    .await;
    let mut locations = Vec::new();
    for i in 0..12 {
        locations.push(h.post(FC, &format!("s{i}"), "normal").await);
    }
    for location in &locations {
        h.settle(location, &["processed"]).await;
    }
    let stats = h.sandbox.stats();
    assert!(stats.throttled > 0, "the storm happened");
    let mut markers = h.received_markers();
    markers.sort();
    markers.dedup();
    assert_eq!((markers.len(), h.sandbox.received().len()), (12, 12), "no loss, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_message_overtakes_a_bulk_backlog() {
    let h = harness(
        "rate_limit = { calls = 3, per_seconds = 1 }",
        "",
        "rate_limit = { calls = 3, per_seconds = 1 }",
        "profile_check = \"never\"\nmax_in_flight = 32",
    )
    .await;
    let mut bulk = Vec::new();
    for i in 0..18 {
        bulk.push(h.post(FC, &format!("bulk{i}"), "bulk").await);
    }
    let urgent = h.post(FC, "urgent", "urgent").await;
    h.settle(&urgent, &["processed"]).await;
    let order = h.received_markers();
    let position = order.iter().position(|m| m == "urgent").unwrap();
    // 18 bulk messages were queued first; the urgent one goes out within the next
    // budget windows, not after the backlog.
    assert!(position <= 10, "urgent went out at position {position} of {order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_send_is_retried_under_the_retry_policy_and_counted() {
    let h = harness("[faults]\nreset_after_accept_count = 1", "", "", "").await;
    let location = h.post(FC, "amb", "normal").await;
    let view = h.settle(&location, &["processed"]).await;
    assert_eq!(view["gateway"]["attempts"], 2);
    assert_eq!(h.transitions_to("ambiguous"), 1);
    assert_eq!(h.received_markers(), ["amb", "amb"], "the duplicate IO's lack of idempotency forces, recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_send_is_held_under_the_hold_policy() {
    let h = harness("[faults]\nreset_after_accept_count = 1", "", "", "ambiguous = \"hold\"").await;
    let location = h.post(FC, "hold", "normal").await;
    let view = h.settle(&location, &["held"]).await;
    assert!(view["gateway"]["last_error"].as_str().is_some());
    assert_eq!(h.received_markers(), ["hold"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_waited_out_and_the_backlog_drains() {
    let h = harness("[faults]\noutages = [{ start_s = 0, duration_s = 2 }]", "", "", "").await;
    let mut locations = Vec::new();
    for i in 0..3 {
        locations.push(h.post(FC, &format!("o{i}"), "normal").await);
    }
    for location in &locations {
        let view = h.settle(location, &["processed"]).await;
        assert!(view["gateway"]["attempts"].as_u64().unwrap() >= 1);
    }
    assert_eq!(h.sandbox.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_certificate_keeps_messages_queued_with_the_reason() {
    use gateway::test_pki::{self, ServerKey};
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::generate(dir.path(), ServerKey::Ecdsa, "comune").unwrap();
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = test_pki::generate(stranger_dir.path(), ServerKey::Ecdsa, "stranger").unwrap();
    let sandbox_config = format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nclient_ca = \"{}\"\n\
         [[services]]\nservice_id = \"SVC-TARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-key\"\n",
        pki.server_certificate.display(),
        pki.server_key.display(),
        pki.ca_certificate.display()
    );
    let sandbox = Sandbox::start(SandboxConfig::from_toml_str(&sandbox_config).unwrap()).await.unwrap();
    std::fs::write(dir.path().join("io.key"), "io-key").unwrap();
    let config = format!(
        "[[institutions]]\nname = \"X\"\nfiscal_code = \"80000000010\"\n  [[institutions.services]]\n  name = \"tari\"\n  service_id = \"SVC-TARI\"\n  primary_key = {{ file = \"{dir}/io.key\" }}\n\
         [[clients]]\nname = \"tributi\"\nkey_sha256 = \"{digest}\"\nservices = [\"tari\"]\n\
         [io]\nbase_url = \"{base}\"\nclient_certificate = \"{cert}\"\nclient_key = \"{key}\"\nca_bundle = \"{ca}\"\n\
         [local_api]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{dir}/queue.db\"\nmin_free_disk_mb = 0\n",
        dir = dir.path().display(),
        digest = KeyDigest::of_key(CLIENT_KEY.as_bytes()).to_hex(),
        base = sandbox.base_url(),
        cert = stranger.client_certificate.display(),
        key = stranger.client_key.display(),
        ca = pki.ca_certificate.display(),
    );
    let prepared = Prepared::new(Config::from_toml_str(&config).unwrap()).await.unwrap();
    let addr = prepared.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(prepared.run(async {
        let _ = stopped.await;
    }));
    let h = Harness { dir, sandbox, addr, stop: Some(stop), task };
    let location = h.post(FC, "cert", "normal").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let view = h.view(&location).await;
        if view["gateway"]["last_error"].as_str().is_some() {
            break view;
        }
        assert!(Instant::now() < deadline, "no error recorded: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(view["gateway"]["state"], "queued", "not the message's fault: it waits");
    assert!(view["gateway"]["last_error"].as_str().unwrap().contains("could not be reached"), "{view}");
    assert!(h.sandbox.received().is_empty());
    assert_eq!(h.stop().await, Stopped::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_primary_key_falls_back_to_the_secondary() {
    let h = harness_with_keys("", "", "", "", "revoked-key", Some("io-key")).await;
    let location = h.post(FC, "keys", "normal").await;
    h.settle(&location, &["processed"]).await;
    assert!(h.sandbox.stats().unauthorized >= 1, "the primary key was tried and refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_keys_hold_the_service_and_the_message_waits() {
    let h = harness_with_keys("", "", "", "", "revoked-key", Some("also-revoked")).await;
    let location = h.post(FC, "nokeys", "normal").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.sandbox.stats().unauthorized < 2 {
        assert!(Instant::now() < deadline, "both keys were not tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = h.view(&location).await;
    assert_eq!(view["gateway"]["state"], "queued", "a configuration fault, not the message's: {view}");
    assert_eq!(h.sandbox.stats().unauthorized, 2, "the service is held: no more calls with refused keys");
    assert!(h.sandbox.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_profile_lookups_give_ios_answer_and_spare_delivery_a_call() {
    let h = harness("", "", "", "").await;
    let (status, _, body) = h.call(http::Method::GET, &format!("/api/v1/profiles/{FC}"), None, "normal").await;
    assert_eq!((status, body["sender_allowed"].as_bool()), (200, Some(true)));
    let (status, _, body) =
        h.call(http::Method::POST, "/api/v1/profiles", Some(json!({ "fiscal_code": BLOCKS_US })), "normal").await;
    assert_eq!((status, body["sender_allowed"].as_bool()), (200, Some(false)));
    let (status, _, _) = h.call(http::Method::GET, &format!("/api/v1/profiles/{NOT_ON_IO}"), None, "normal").await;
    assert_eq!(status, 404);
    // Delivery reuses the answer: no second profile call for the same citizen.
    let location = h.post(FC, "after-lookup", "normal").await;
    h.settle(&location, &["processed"]).await;
    assert_eq!(h.sandbox.stats().profile_reads, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_ending_ambiguous_is_held_after_three_sends() {
    // IO takes the message and drops the answer five times in a row.
    let h = harness("[faults]\nreset_after_accept_count = 5", "", "", "").await;
    let location = h.post(FC, "again", "normal").await;
    let view = h.settle(&location, &["held"]).await;
    assert_eq!(view["gateway"]["attempts"], 3);
    assert_eq!(h.received_markers(), ["again", "again", "again"], "three copies at IO, then no more");
    assert_eq!(h.transitions_to("ambiguous"), 3);
}
