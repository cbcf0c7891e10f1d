//! Delivery end to end: the gateway in-process on real sockets, the IO sandbox over real
//! loopback, a real SQLite file.

mod support;

use gateway::config::{Config, KeyDigest};
use gateway::http_server::Stopped;
use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::server::Prepared;
use serde_json::json;
use std::time::{Duration, Instant};
use support::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_reaches_processed_once_each() {
    let h = harness("", "", "", "").await;
    let locations = h.post_many("m", 5, "normal").await;
    for view in h.settle_all(&locations, &["processed"]).await {
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
async fn a_429_storm_pauses_the_budget_and_loses_nothing() {
    // The gateway is told the budget is unlimited; IO's is 5 per 2 s: 429s follow.
    let h = harness(
        "rate_limit = { calls = 5, per_seconds = 2 }",
        "",
        "rate_limit = \"unlimited\"",
        "profile_check = \"never\"",
    )
    .await;
    let locations = h.post_many("s", 12, "normal").await;
    h.settle_all(&locations, &["processed"]).await;
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
    h.post_many("bulk", 18, "bulk").await;
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
    let locations = h.post_many("o", 3, "normal").await;
    for view in h.settle_all(&locations, &["processed"]).await {
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
    let task = tokio::spawn(prepared.run(
        async {
            let _ = stopped.await;
        },
        None,
    ));
    let h = Harness { dir, config, sandbox, addr, stop: Some(stop), task };
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

/// Polls the queue until `count` messages are in `state`.
async fn wait_for_state(h: &Harness, state: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conn = rusqlite::Connection::open(h.dir.path().join("queue.db")).unwrap();
        let found: i64 =
            conn.query_row("SELECT COUNT(*) FROM messages WHERE state = ?1", [state], |r| r.get(0)).unwrap();
        if found == count {
            return;
        }
        assert!(Instant::now() < deadline, "{found} messages in {state}, expected {count}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_messages_go_out_in_the_citizens_language() {
    use gateway::import::{self, Format, Job, Progress, Report, Request, Sink};
    let german = format!(
        "[[citizens]]\nfiscal_code = \"{FC}\"\nprofile = \"on_io\"\npreferred_languages = [\"fr_FR\", \"de_DE\"]\n"
    );
    let h = harness(&german, "", "", "").await;
    let config = Config::from_toml_str(&h.config).unwrap();
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/templates/tari.toml");
    let request = Request { template: Some(template.into()), ..Request::default() };
    let job = Job::resolve(&config, Format::Gpd, &request).unwrap();
    let file = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../connectors/tests/fixtures/gpd_tari_2025.json"
    ));
    let database = h.dir.path().join("queue.db");
    let limits = gateway::server::limits(&config);
    let outcome = tokio::task::spawn_blocking(move || {
        let data_keys = std::sync::Arc::new(gateway::seal::key_dir::load(&config.storage.data_key_directory).unwrap());
        let sink = Sink::Queue { database: &database, limits, audit_key: None, data_keys };
        import::run(&job, &file, sink, &mut Report::discard(), &mut Progress::silent()).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(outcome.queued, 7);

    // Laura prefers French (no template), then German; Giuseppe is not on IO; Anna blocks us.
    wait_for_state(&h, "processed", 3).await;
    wait_for_state(&h, "not_on_io", 3).await;
    wait_for_state(&h, "sender_not_allowed", 1).await;
    let received = h.sandbox.received();
    assert_eq!(received.len(), 3);
    for message in &received {
        assert_eq!(message.fiscal_code, FC);
        let subject = message.content["subject"].as_str().unwrap();
        assert!(subject.starts_with("Zahlungsaufforderung Müllgebühr (TARI) 2025"), "{subject}");
        assert!(
            message.content["markdown"].as_str().unwrap().contains("Fälligkeit:** 31.07.2025")
                || message.content["markdown"].as_str().unwrap().contains("Fälligkeit:** 02.12.2025")
        );
        assert_eq!(message.content["payment_data"]["payee"]["fiscal_code"], "80000000010");
    }
    let amounts: Vec<i64> = received.iter().map(|m| m.content["payment_data"]["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts.iter().sum::<i64>(), 60000, "one single payment and two installments");
    h.stop().await;
}
