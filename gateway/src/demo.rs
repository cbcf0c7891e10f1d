//! `io-gateway demo`: the gateway on an embedded default configuration in a temporary
//! directory, delivering over mutual TLS to its own IO sandbox, fed a realistic sample
//! over real HTTP, with the progress and a summary of final states.

use crate::auth;
use crate::config::Config;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::server::Prepared;
use crate::test_pki::{self, ServerKey};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

const CONFIG_TEMPLATE: &str = include_str!("../../config/demo.toml");
const MARKDOWN_TARI: &str = "Gentile contribuente, e' disponibile l'avviso di pagamento della prima rata TARI 2025. \
Puoi pagarlo direttamente in app con il pulsante **Paga**, entro la scadenza indicata.";
const MARKDOWN_CIE: &str = "La sua carta d'identita' scade tra meno di sei mesi. Puo' prenotare il rinnovo della \
carta d'identita' elettronica presso l'Ufficio Anagrafe o sull'agenda online del Ministero dell'Interno.";

/// One sample request and what it is meant to show.
struct Sample {
    title: &'static str,
    service: &'static str,
    priority: &'static str,
    idempotency_key: Option<&'static str>,
    body: Value,
}

/// The sandbox standing in for IO: the demo's two services and three kinds of citizen.
const SANDBOX_TEMPLATE: &str = r#"
listen = "127.0.0.1:0"
processing_delay_ms = 800
[tls]
certificate = "{dir}/server.crt"
private_key = "{dir}/server.key"
client_ca = "{dir}/ca.crt"
[[services]]
service_id = "01JDEMOSERVICETARI00000000"
institution = "80000000010"
primary_key = "demo-io-key-tari"
[[services]]
service_id = "01JDEMOSERVICEANAGRAFE0000"
institution = "80000000010"
primary_key = "demo-io-key-anagrafe"
[[citizens]]
fiscal_code = "BNCLRA85C52F205V"
profile = "on_io"
[[citizens]]
fiscal_code = "VRDGPP50T01H501B"
profile = "not_on_io"
[[citizens]]
fiscal_code = "SPSNMR79L71F839Q"
profile = "sender_not_allowed"
"#;

/// Test certificates in `dir` and the sandbox's configuration (mutual TLS with them).
pub fn sandbox_config(dir: &Path) -> anyhow::Result<SandboxConfig> {
    test_pki::generate(dir, ServerKey::Ecdsa, "Comune di Esempio")?;
    let text = SANDBOX_TEMPLATE.replace("{dir}", &dir.display().to_string());
    SandboxConfig::from_toml_str(&text).map_err(|e| anyhow::anyhow!("demo sandbox configuration: {e}"))
}

/// The demo's gateway configuration for `dir`, delivering to `io_base_url`, with a fresh
/// client key.
pub fn config(dir: &Path, io_base_url: &str) -> anyhow::Result<(Config, String)> {
    let (key, digest) = auth::new_client_key().map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
    for service in ["tari", "anagrafe"] {
        std::fs::write(dir.join(format!("io-{service}.key")), format!("demo-io-key-{service}\n"))?;
    }
    let text = CONFIG_TEMPLATE
        .replace("{dir}", &dir.display().to_string())
        .replace("{client_key_sha256}", &digest.to_hex())
        .replace("{io_base_url}", io_base_url);
    Ok((Config::from_toml_str(&text)?, key))
}

/// Runs the demo and prints its story to stdout.
pub async fn run(keep: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("io-gateway-demo-").tempdir().context("creating a temp dir")?;
    let sandbox = Sandbox::start(sandbox_config(dir.path())?).await?;
    let (config, key) = config(dir.path(), &sandbox.base_url())?;
    let database = config.storage.path.clone();
    let prepared = Prepared::new(config).await?;
    let addr = prepared.local_addr()?;
    println!("io-gateway demo");
    println!("  IO sandbox     {} (mutual TLS, test certificates, 150 calls / 5 s)", sandbox.base_url());
    println!("  gateway        http://{addr}/api/v1, queue in {}\n", database.display());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(prepared.run(
        async {
            let _ = stopped.await;
        },
        None,
    ));

    let mut accepted = Vec::new();
    let (mut posted, mut refused) = (0, 0);
    for sample in samples() {
        posted += 1;
        println!("▶ {}", sample.title);
        let (status, headers, body) = post(addr, &key, &sample).await?;
        match status {
            201 => {
                let location = headers.unwrap_or_default();
                println!("  201 Created  id {}  Location {location}", body["id"].as_str().unwrap_or("?"));
                accepted.push(location);
            }
            _ => {
                refused += 1;
                println!("  {status} {}", body["title"].as_str().unwrap_or(""));
                for v in body["violations"].as_array().into_iter().flatten() {
                    println!("    - {}: {}", v["field"].as_str().unwrap_or("?"), v["reason"].as_str().unwrap_or("?"));
                }
            }
        }
    }
    let answered_twice = accepted.len();
    accepted.dedup();
    let replays = answered_twice - accepted.len();

    println!("\nDelivery (state changes as the gateway reports them):");
    let finals = follow(addr, &key, &accepted).await?;
    println!("\nFinal states:");
    println!("  {:<28} {:<10} {:<8} {:<20} IO status", "id", "service", "priority", "state");
    for view in &finals {
        let gw = &view["gateway"];
        println!(
            "  {:<28} {:<10} {:<8} {:<20} {}",
            view["message"]["id"].as_str().unwrap_or("?"),
            gw["service"].as_str().unwrap_or("?"),
            gw["priority"].as_str().unwrap_or("?"),
            gw["state"].as_str().unwrap_or("?"),
            view["status"].as_str().unwrap_or("-"),
        );
    }
    let paper = finals
        .iter()
        .filter(|v| matches!(v["gateway"]["state"].as_str(), Some("not_on_io" | "sender_not_allowed")))
        .count();
    let stats = sandbox.stats();
    let _ = stop.send(());
    let stopped = server.await.context("the gateway task failed")?;
    println!(
        "\nSummary: {posted} posts: {} message(s) accepted and durable, {replays} retry answered with the same id, {refused} refused with every violation named.",
        accepted.len()
    );
    println!(
        "IO saw {} calls ({} profile checks, {} messages, {} status reads, {} over budget); {paper} citizen(s) need paper or PEC.",
        stats.calls, stats.profile_reads, stats.messages, stats.status_reads, stats.throttled
    );
    sandbox.stop().await;
    println!("Gateway stopped: {stopped:?}.");
    if keep {
        let path = dir.keep();
        println!(
            "Kept {} (inspect with: sqlite3 {}/queue.db 'select id, state from messages')",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Polls every accepted message until each is final (or 60 s pass), printing changes.
async fn follow(addr: SocketAddr, key: &str, locations: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut last: Vec<String> = vec![String::new(); locations.len()];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut views = Vec::new();
        for (i, location) in locations.iter().enumerate() {
            let view = get(addr, key, location).await?;
            let state = view["gateway"]["state"].as_str().unwrap_or("?").to_string();
            if state != last[i] {
                println!("  {:<28} {state}", view["message"]["id"].as_str().unwrap_or("?"));
                last[i] = state;
            }
            views.push(view);
        }
        let done = last.iter().all(|s| FINAL_STATES.contains(&s.as_str()));
        if done || tokio::time::Instant::now() > deadline {
            return Ok(views);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

const FINAL_STATES: &[&str] = &[
    "processed",
    "io_rejected",
    "io_failed",
    "rejected_by_io",
    "not_on_io",
    "sender_not_allowed",
    "expired",
    "cancelled",
];

fn samples() -> Vec<Sample> {
    let tari = json!({
        "fiscal_code": "BNCLRA85C52F205V",
        "content": {
            "subject": "TARI 2025: avviso di pagamento rata 1",
            "markdown": MARKDOWN_TARI,
            "due_date": "2025-07-31T21:59:59.000Z",
            "payment_data": { "amount": 15000, "notice_number": "301202500000000281", "payee": { "fiscal_code": "80000000010" } }
        }
    });
    vec![
        Sample {
            title: "TARI payment notice (service tari, bulk, with an Idempotency-Key)",
            service: "tari",
            priority: "bulk",
            idempotency_key: Some("TARI2025-000001-1"),
            body: tari.clone(),
        },
        Sample {
            title: "the same notice again, same Idempotency-Key (a client retry)",
            service: "tari",
            priority: "bulk",
            idempotency_key: Some("TARI2025-000001-1"),
            body: tari,
        },
        Sample {
            title: "ID card expiry reminder (anagrafe, urgent)",
            service: "anagrafe",
            priority: "urgent",
            idempotency_key: None,
            body: json!({ "fiscal_code": "BNCLRA85C52F205V", "content": { "subject": "La sua carta d'identita' sta per scadere", "markdown": MARKDOWN_CIE, "due_date": "2026-12-01T22:59:59.000Z" } }),
        },
        Sample {
            title: "a reminder to a citizen who is not on IO (will need paper or PEC)",
            service: "anagrafe",
            priority: "normal",
            idempotency_key: None,
            body: json!({ "fiscal_code": "VRDGPP50T01H501B", "content": { "subject": "Promemoria dal Comune di Esempio", "markdown": MARKDOWN_CIE } }),
        },
        Sample {
            title: "a notice to a citizen who blocked the service on IO",
            service: "tari",
            priority: "normal",
            idempotency_key: None,
            body: json!({ "fiscal_code": "SPSNMR79L71F839Q", "content": { "subject": "TARI 2025: avviso di pagamento", "markdown": MARKDOWN_TARI } }),
        },
        Sample {
            title: "a message to IO's test recipient (allowed in this configuration)",
            service: "anagrafe",
            priority: "normal",
            idempotency_key: None,
            body: json!({ "fiscal_code": "AAAAAA00A00A000A", "content": { "subject": "Messaggio di prova del Comune", "markdown": MARKDOWN_CIE } }),
        },
        Sample {
            title: "an invalid message (wrong check letter, short subject, bad notice number, a removed field)",
            service: "tari",
            priority: "normal",
            idempotency_key: None,
            body: json!({ "fiscal_code": "VRDGPP50T01H501A", "content": { "subject": "TARI", "markdown": MARKDOWN_TARI,
                "payment_data": { "amount": 15000, "notice_number": "301202500000000282" }, "legal_data": {} } }),
        },
    ]
}

async fn post(addr: SocketAddr, key: &str, sample: &Sample) -> anyhow::Result<(u16, Option<String>, Value)> {
    let mut request = http::Request::post("/api/v1/messages")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("ocp-apim-subscription-key", key)
        .header(auth::SERVICE_HEADER, sample.service)
        .header("x-io-gateway-priority", sample.priority);
    if let Some(idempotency_key) = sample.idempotency_key {
        request = request.header("idempotency-key", idempotency_key);
    }
    send(addr, request.body(Full::new(Bytes::from(sample.body.to_string())))?).await
}

async fn get(addr: SocketAddr, key: &str, path: &str) -> anyhow::Result<Value> {
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .header("ocp-apim-subscription-key", key)
        .body(Full::new(Bytes::new()))?;
    Ok(send(addr, request).await?.2)
}

async fn send(addr: SocketAddr, request: http::Request<Full<Bytes>>) -> anyhow::Result<(u16, Option<String>, Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, location, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}
