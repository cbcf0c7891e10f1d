//! The client for IO's Services API: kept-alive HTTPS connections over rustls (ring),
//! with the institution's client certificate for the mTLS host, and timeouts.
//!
//! It only makes calls and reports what came back. It tells apart two ways a call can
//! fail without an answer, because IO has no idempotency: `CallFailure::NotSent` (no
//! connection was made, IO cannot have seen the request: safe to retry) and
//! `CallFailure::Unknown` (the request may have reached IO: a send is ambiguous).

mod tls;

pub use tls::TlsError;

use crate::config::{IoEndpoint, Secret};
use crate::signing::{http_signature, CurrentKey};
use bytes::Bytes;
use connectors::domain::FiscalCode;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open a TCP connection (a TLS handshake counts as part of the request).
    pub connect: Duration,
    /// For a whole call, from sending to the last byte of the answer.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(5), request: Duration::from_secs(30) }
    }
}

/// What IO answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// `x-rate-limit-retry-after` (IO's header) or `Retry-After`, in seconds.
    pub retry_after: Option<Duration>,
    /// `x-rate-limit-remaining`.
    pub remaining: Option<u32>,
    /// The `Location` of a created message.
    pub location: Option<String>,
    /// IO's `Date`, for clock-skew checks.
    pub date: Option<String>,
}

/// A call that got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("IO could not be reached: {0}")]
    NotSent(String),
    #[error("no answer from IO, which may have received the request: {0}")]
    Unknown(String),
}

type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct IoClient {
    /// Replaced whole by `reload`; calls in flight finish on the one they took.
    http: std::sync::RwLock<Http>,
    base: String,
    timeouts: Timeouts,
    /// Signs every request (RFC 9421) when it holds a key.
    signer: Arc<CurrentKey>,
}

impl IoClient {
    /// Loads the certificate, key and CA bundle the endpoint names.
    pub fn new(endpoint: &IoEndpoint, timeouts: Timeouts) -> Result<IoClient, TlsError> {
        let http = http_client(endpoint, timeouts)?;
        let base = endpoint.base_url.to_string().trim_end_matches('/').to_string();
        Ok(IoClient { http: std::sync::RwLock::new(http), base, timeouts, signer: Arc::new(CurrentKey::default()) })
    }

    /// Signs every request with the key `signer` holds at the time.
    pub fn with_signer(mut self, signer: Arc<CurrentKey>) -> IoClient {
        self.signer = signer;
        self
    }

    /// Reads the certificate, key and CA bundle again for new connections; on any problem
    /// the old ones stay in use.
    pub fn reload(&self, endpoint: &IoEndpoint) -> Result<(), TlsError> {
        let http = http_client(endpoint, self.timeouts)?;
        *self.http.write().unwrap_or_else(|p| p.into_inner()) = http;
        Ok(())
    }

    /// `GET /profiles/{fiscal_code}`.
    pub async fn get_profile(&self, key: &Secret, fiscal_code: &FiscalCode) -> Result<Answer, CallFailure> {
        self.call(Method::GET, &format!("/profiles/{}", fiscal_code.as_str()), key, None).await
    }

    /// `POST /messages` with the fiscal code in the body.
    pub async fn submit_message(&self, key: &Secret, body: Bytes) -> Result<Answer, CallFailure> {
        self.call(Method::POST, "/messages", key, Some(body)).await
    }

    /// `GET /messages/{fiscal_code}/{id}`.
    pub async fn get_message(
        &self,
        key: &Secret,
        fiscal_code: &FiscalCode,
        io_id: &str,
    ) -> Result<Answer, CallFailure> {
        self.call(Method::GET, &format!("/messages/{}/{io_id}", fiscal_code.as_str()), key, None).await
    }

    async fn call(&self, method: Method, path: &str, key: &Secret, body: Option<Bytes>) -> Result<Answer, CallFailure> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("ocp-apim-subscription-key", key.expose())
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.unwrap_or_default();
        let mut request = request
            .body(Full::new(body.clone()))
            .map_err(|e| CallFailure::NotSent(format!("cannot build the request: {e}")))?;
        if let Some(key) = self.signer.get() {
            let (method, uri) = (request.method().clone(), request.uri().clone());
            http_signature::sign(&method, &uri, request.headers_mut(), &body, &key, jiff::Timestamp::now())
                .map_err(|e| CallFailure::NotSent(format!("cannot sign the request: {e}")))?;
        }
        let exchange = async {
            let http = self.http.read().unwrap_or_else(|p| p.into_inner()).clone();
            let response = http.request(request).await.map_err(|e| {
                if e.is_connect() || tls_refused(&e) {
                    CallFailure::NotSent(error_chain(&e))
                } else {
                    CallFailure::Unknown(error_chain(&e))
                }
            })?;
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(body) => Ok(answer(parts, body.to_bytes())),
                // IO said 201 and where the message is: it has it, even if the rest of
                // the answer was lost. Anything else cut short is unknown.
                Err(_) if parts.status == StatusCode::CREATED && parts.headers.contains_key(header::LOCATION) => {
                    Ok(answer(parts, Bytes::new()))
                }
                Err(e) => Err(CallFailure::Unknown(format!("answer cut short: {e}"))),
            }
        };
        match tokio::time::timeout(self.timeouts.request, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallFailure::Unknown(format!("no answer within {:?}", self.timeouts.request))),
        }
    }
}

fn answer(parts: http::response::Parts, body: Bytes) -> Answer {
    let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    // IO's wait, kept within 1 s..5 min: 0 would hammer, a huge value would overflow.
    let seconds = |name: &str| {
        text(name).and_then(|v| v.trim().parse::<u64>().ok()).map(|s| Duration::from_secs(s.clamp(1, 300)))
    };
    Answer {
        status: parts.status,
        retry_after: seconds("x-rate-limit-retry-after").or_else(|| seconds("retry-after")),
        remaining: text("x-rate-limit-remaining").and_then(|v| v.trim().parse().ok()),
        location: text("location"),
        date: text("date"),
        body,
    }
}

/// True when the server refused the TLS session (a fatal alert, or a certificate it or
/// we would not accept). With TLS 1.3 a refused client certificate surfaces only after
/// the request was queued for writing, but the server's HTTP layer never saw it: it is
/// not an ambiguous send.
fn tls_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(
                tls,
                rustls::Error::AlertReceived(_)
                    | rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::PeerIncompatible(_)
            );
        }
        current = e.source();
    }
    false
}

/// The error and its causes on one line (hyper's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;

fn http_client(endpoint: &IoEndpoint, timeouts: Timeouts) -> Result<Http, TlsError> {
    let tls = tls::client_config(endpoint)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeouts.connect));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(512)
        .build(connector))
}
