//! `io-gateway sandbox`: a simulator of IO's Services API, built from IO's spec and its
//! known behaviour, for tests, benchmarks and the demo.
//!
//! Same paths and payloads as IO; subscription keys per service (401 with APIM's JSON
//! body otherwise); a sliding-window budget per institution with 429 and
//! `x-rate-limit-retry-after`; profiles from a citizen list; messages ACCEPTED, then
//! PROCESSED or REJECTED; optional TLS and mutual TLS, optionally restricted to IO's
//! TLS 1.2 ECDHE-RSA-AES-GCM; injected latency, 500s, resets and outages. It keeps every
//! message it received (`/__sandbox/received`) so tests can prove no loss and no
//! duplicates.

pub mod config;
mod rules;
mod tls;
mod world;

pub use config::SandboxConfig;
pub use world::{Received, Stats};

use crate::http_server::{self, Body, DropConnection, Stopped};
use crate::signing::{http_signature, Jwks};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use world::{Caller, Fault, Lookup, World};

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A signature older than this is refused (a replayed request).
const SIGNATURE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot read the sandbox's signature keys {path}: {reason}")]
    SignatureKeys { path: std::path::PathBuf, reason: String },
}

/// How the sandbox checks signatures: the key file (read at each call, so a rotated key
/// is known at once), and the scheme it is reached with.
struct Signatures {
    public_keys: std::path::PathBuf,
    scheme: &'static str,
}

fn read_keys(path: &std::path::Path) -> Result<Jwks, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Jwks::from_json(&text).map_err(|e| e.to_string())
}

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    tls: bool,
    world: Arc<World>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Stopped>,
}

impl Sandbox {
    /// Binds and starts serving in the background.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let address = config.listen;
        let listener =
            tokio::net::TcpListener::bind(address).await.map_err(|source| SandboxError::Bind { address, source })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind { address, source })?;
        let signatures = match &config.signatures {
            Some(s) => {
                read_keys(&s.public_keys)
                    .map_err(|reason| SandboxError::SignatureKeys { path: s.public_keys.clone(), reason })?;
                let scheme = if acceptor.is_some() { "https" } else { "http" };
                Some(Arc::new(Signatures { public_keys: s.public_keys.clone(), scheme }))
            }
            None => None,
        };
        let world = Arc::new(World::new(config));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let tls = acceptor.is_some();
        let task = {
            let world = Arc::clone(&world);
            let admit_world = Arc::clone(&world);
            tokio::spawn(async move {
                let handler = move |request| {
                    let world = Arc::clone(&world);
                    let signatures = signatures.clone();
                    async move { handle(&world, signatures.as_deref(), request).await }
                };
                let shutdown = async {
                    let _ = stopped.await;
                };
                http_server::serve(listener, acceptor, shutdown, move || !admit_world.in_outage(), handler).await
            })
        };
        Ok(Sandbox { addr, tls, world, stop: Some(stop), task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client uses, IO's base path included (`localhost` under TLS, so
    /// that a certificate for `localhost` verifies).
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/api/v1", self.addr.port())
        } else {
            format!("http://{}/api/v1", self.addr)
        }
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.world.received()
    }

    pub fn stats(&self) -> Stats {
        self.world.stats()
    }

    /// Stops accepting and waits for in-flight calls.
    pub async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or(Stopped::GraceExpired { connections: 0 })
    }
}

async fn handle(
    world: &World,
    signatures: Option<&Signatures>,
    request: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["__sandbox", "received"] => return Ok(json_response(StatusCode::OK, &json!(world.received()))),
        ["__sandbox", "stats"] => return Ok(json_response(StatusCode::OK, &json!(world.stats()))),
        _ => {}
    }
    if world.in_outage() {
        return Err(DropConnection);
    }
    let fault = world.call();
    if fault == Fault::Reset {
        return Err(DropConnection);
    }
    tokio::time::sleep(world.latency()).await;
    let key = request.headers().get("ocp-apim-subscription-key").and_then(|v| v.to_str().ok());
    let Some(caller) = world.authenticate(key) else {
        let message = match key {
            None => "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
            Some(_) => "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
        };
        return Ok(json_response(StatusCode::UNAUTHORIZED, &json!({ "statusCode": 401, "message": message })));
    };
    let (parts, body) = request.into_parts();
    let body = read_body(body).await?;
    if let Some(signatures) = signatures {
        if let Err(reason) = check_signature(signatures, &parts, &body) {
            return Ok(problem(StatusCode::UNAUTHORIZED, "Invalid signature", &reason));
        }
    }
    let remaining = match world.take_budget(&caller.institution) {
        Ok(remaining) => remaining,
        Err(wait) => return Ok(throttled(wait)),
    };
    if fault == Fault::ServerError {
        return Ok(problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error", "injected fault"));
    }
    let method = parts.method.clone();
    let mut response = match (segments.as_slice(), &method) {
        (["api", "v1", "messages"], &Method::POST) => submit(world, &caller, body, None)?,
        (["api", "v1", "messages", fc], &Method::POST) => {
            let fc = fc.to_string();
            submit(world, &caller, body, Some(&fc))?
        }
        (["api", "v1", "messages", fc, id], &Method::GET) => match world.message(&caller, fc, id) {
            Lookup::Found(view) => json_response(StatusCode::OK, &view),
            Lookup::NotFound => problem(StatusCode::NOT_FOUND, "Message not found", "no message with this id"),
            Lookup::OtherService => {
                problem(StatusCode::FORBIDDEN, "Forbidden", "the message was sent by another service")
            }
        },
        (["api", "v1", "profiles", fc], &Method::GET) => profile(world, fc),
        (["api", "v1", "profiles"], &Method::POST) => {
            match serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["fiscal_code"].as_str().map(str::to_string))
            {
                Some(fc) => profile(world, &fc),
                None => problem(StatusCode::BAD_REQUEST, "Invalid FiscalCodePayload", "fiscal_code is required"),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "Not found", "no such operation"),
    };
    if let Ok(value) = header::HeaderValue::from_str(&remaining.to_string()) {
        response.headers_mut().insert("x-rate-limit-remaining", value);
    }
    Ok(response)
}

fn submit(
    world: &World,
    caller: &Caller,
    body: Bytes,
    path_fiscal_code: Option<&str>,
) -> Result<Response<Body>, DropConnection> {
    let submission = match rules::check_submission(&body, path_fiscal_code) {
        Ok(submission) => submission,
        Err(reasons) => return Ok(problem(StatusCode::BAD_REQUEST, "Invalid NewMessage", &reasons.join("; "))),
    };
    let fiscal_code = submission.fiscal_code.clone();
    if let Some(allowed) = &caller.authorized_recipients {
        if fiscal_code != "AAAAAA00A00A000A" && !allowed.contains(&fiscal_code) {
            return Ok(problem(
                StatusCode::FORBIDDEN,
                "Recipient forbidden",
                "this service is in trial and may not write to this recipient",
            ));
        }
    }
    let id = world.accept(caller, submission);
    if world.reset_after_accept() {
        return Err(DropConnection);
    }
    let mut response = json_response(StatusCode::CREATED, &json!({ "id": id }));
    if let Ok(location) = header::HeaderValue::from_str(&format!("/api/v1/messages/{fiscal_code}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn profile(world: &World, fiscal_code: &str) -> Response<Body> {
    if !rules::fiscal_code_pattern(fiscal_code) {
        return problem(StatusCode::BAD_REQUEST, "Invalid FiscalCode", "the fiscal code does not match IO's pattern");
    }
    let (profile, languages) = world.profile(fiscal_code);
    match profile {
        config::Profile::NotOnIo => {
            problem(StatusCode::NOT_FOUND, "Profile not found", "no user found for the provided fiscal code")
        }
        config::Profile::OnIo => {
            json_response(StatusCode::OK, &json!({ "sender_allowed": true, "preferred_languages": languages }))
        }
        config::Profile::SenderNotAllowed => {
            json_response(StatusCode::OK, &json!({ "sender_allowed": false, "preferred_languages": languages }))
        }
    }
}

/// Verifies the request's RFC 9421 signature against the configured keys: the target
/// URI is rebuilt from the scheme the sandbox serves and the `Host` header, as IO would.
fn check_signature(signatures: &Signatures, parts: &http::request::Parts, body: &[u8]) -> Result<(), String> {
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).ok_or("no Host header")?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let target: http::Uri =
        format!("{}://{host}{path}", signatures.scheme).parse().map_err(|_| "cannot rebuild the target URI")?;
    let request = http_signature::Request { method: &parts.method, target_uri: &target, headers: &parts.headers, body };
    let options = http_signature::VerifyOptions { now: jiff::Timestamp::now(), max_age: Some(SIGNATURE_MAX_AGE) };
    let keys = read_keys(&signatures.public_keys)?;
    http_signature::verify(&request, &keys, &options).map(|_| ()).map_err(|e| e.to_string())
}

async fn read_body(body: Incoming) -> Result<Bytes, DropConnection> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(DropConnection),
    }
}

/// IO's 429: the wait in `x-rate-limit-retry-after`, in whole seconds.
fn throttled(wait: std::time::Duration) -> Response<Body> {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let body =
        json!({ "statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {seconds} seconds.") });
    let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    response.headers_mut().insert("x-rate-limit-retry-after", header::HeaderValue::from(seconds));
    response
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let body = json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail });
    let mut response = json_response(status, &body);
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests;
