//! The delivery tests' harness: the gateway in-process on real sockets, the IO sandbox
//! over real loopback, a real SQLite file.

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

pub const CLIENT_KEY: &str = "client-key";
pub const FC: &str = "BNCLRA85C52F205V";
pub const NOT_ON_IO: &str = "VRDGPP50T01H501B";
pub const BLOCKS_US: &str = "SPSNMR79L71F839Q";

pub struct Harness {
    pub dir: tempfile::TempDir,
    /// The gateway's configuration, as text.
    pub config: String,
    pub sandbox: Sandbox,
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Stopped>,
}

/// `sandbox_extra` goes at the top of the sandbox config, `service_extra` into its
/// service, `institution_extra` into the gateway's institution, `delivery` into
/// the gateway's [delivery].
pub async fn harness(sandbox_extra: &str, service_extra: &str, institution_extra: &str, delivery: &str) -> Harness {
    harness_with_keys(sandbox_extra, service_extra, institution_extra, delivery, "io-key", None).await
}

/// Like `harness`, with the gateway's own primary and secondary IO keys (the sandbox
/// accepts only "io-key").
pub async fn harness_with_keys(
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
    let task = tokio::spawn(prepared.run(
        async {
            let _ = stopped.await;
        },
        None,
    ));
    Harness { dir, config, sandbox, addr, stop: Some(stop), task }
}

impl Harness {
    pub async fn post(&self, fc: &str, marker: &str, priority: &str) -> String {
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

    /// Posts `count` messages to `FC` marked `{prefix}{i}`; returns their locations.
    pub async fn post_many(&self, prefix: &str, count: usize, priority: &str) -> Vec<String> {
        let mut locations = Vec::with_capacity(count);
        for i in 0..count {
            locations.push(self.post(FC, &format!("{prefix}{i}"), priority).await);
        }
        locations
    }

    /// Waits until every message is in one of `until`; returns their views.
    pub async fn settle_all(&self, locations: &[String], until: &[&str]) -> Vec<Value> {
        let mut views = Vec::with_capacity(locations.len());
        for location in locations {
            views.push(self.settle(location, until).await);
        }
        views
    }

    pub async fn view(&self, location: &str) -> Value {
        self.call(http::Method::GET, location, None, "normal").await.2
    }

    /// Waits until the message reaches a final state (or `until`), and returns its view.
    pub async fn settle(&self, location: &str, until: &[&str]) -> Value {
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

    pub async fn call(
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
    pub fn received_markers(&self) -> Vec<String> {
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

    pub fn transitions_to(&self, state: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.dir.path().join("queue.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM transitions WHERE to_state = ?1", [state], |r| r.get(0)).unwrap()
    }

    pub async fn stop(mut self) -> Stopped {
        let _ = self.stop.take().map(|s| s.send(()));
        (&mut self.task).await.unwrap()
    }
}
