//! `io-gateway demo`: the gateway on an embedded default configuration in a temporary
//! directory, fed a realistic sample over real HTTP, with a summary of what happened.

use crate::auth;
use crate::config::Config;
use crate::server::Prepared;
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

/// The demo configuration for `dir`, with a fresh client key.
pub fn config(dir: &Path) -> anyhow::Result<(Config, String)> {
    let (key, digest) = auth::new_client_key().map_err(|_| anyhow::anyhow!("the random number generator failed"))?;
    for service in ["tari", "anagrafe"] {
        std::fs::write(dir.join(format!("io-{service}.key")), "demo-io-subscription-key\n")?;
    }
    let text =
        CONFIG_TEMPLATE.replace("{dir}", &dir.display().to_string()).replace("{client_key_sha256}", &digest.to_hex());
    Ok((Config::from_toml_str(&text)?, key))
}

/// Runs the demo and prints its story to stdout.
pub async fn run(keep: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("io-gateway-demo-").tempdir().context("creating a temp dir")?;
    let (config, key) = config(dir.path())?;
    let database = config.storage.path.clone();
    let prepared = Prepared::new(config).await?;
    let addr = prepared.local_addr()?;
    println!("io-gateway demo — gateway listening on http://{addr}, queue in {}", database.display());
    println!("(delivery to IO is not built yet: accepted messages stay queued)\n");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(prepared.run(async {
        let _ = stopped.await;
    }));

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

    println!("\nWhat the gateway holds (GET each Location):");
    println!("  {:<28} {:<10} {:<8} {:<8}", "id", "service", "priority", "state");
    for location in &accepted {
        let view = get(addr, &key, location).await?;
        let gw = &view["gateway"];
        println!(
            "  {:<28} {:<10} {:<8} {:<8}",
            view["message"]["id"].as_str().unwrap_or("?"),
            gw["service"].as_str().unwrap_or("?"),
            gw["priority"].as_str().unwrap_or("?"),
            gw["state"].as_str().unwrap_or("?"),
        );
    }
    let _ = stop.send(());
    let stopped = server.await.context("the gateway task failed")?;
    println!(
        "\nSummary: {posted} posts: {} message(s) accepted and durable, {replays} retry answered with the same id, {refused} refused with every violation named.",
        accepted.len()
    );
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
            body: json!({ "fiscal_code": "VRDGPP50T01H501B", "content": { "subject": "La sua carta d'identita' sta per scadere", "markdown": MARKDOWN_CIE, "due_date": "2026-12-01T22:59:59.000Z" } }),
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
