//! The local HTTP API: IO's paths and JSON, served to the municipality's own systems.
//!
//! Routes (all under IO's base path `/api/v1`):
//! `POST /messages`, `POST /messages/{fiscal_code}`, `GET /messages/{fiscal_code}/{id}`,
//! `POST /profiles`, `GET /profiles/{fiscal_code}`; plus `GET /health` for probes.

mod messages;
mod problem;
mod profiles;

pub use problem::Problem;

use crate::auth::{self, AuthError, Clients};
use crate::config::{Config, LocalClient, ServiceName};
use crate::http_server;
use crate::queue::Queue;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use crate::http_server::{Body, Stopped};

/// What request handlers share.
pub struct ApiState {
    pub config: Arc<Config>,
    pub clients: Clients,
    pub queue: Arc<Queue>,
    /// Delivery, for profile lookups through IO's budget (`None`: no IO connection).
    pub delivery: Option<Arc<crate::delivery::Delivery>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Signs a receipt for every accepted message when it holds a key.
    pub receipts: Arc<crate::signing::CurrentKey>,
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting and
/// lets in-flight requests finish (see `http_server::serve`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<ApiState>,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let handler = move |request| {
        let state = Arc::clone(&state);
        async move { Ok(handle(&state, request).await) }
    };
    http_server::serve(listener, tls, shutdown, || true, handler).await
}

/// Routes one request.
async fn handle(state: &ApiState, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = request.method().clone();
    let routed = match (segments.as_slice(), &method) {
        (["health"], &Method::GET) => return health(),
        (["api", "v1", "messages"], &Method::POST) => {
            count_refusal(state, messages::submit(state, request, None).await)
        }
        (["api", "v1", "messages", fc], &Method::POST) => {
            count_refusal(state, messages::submit(state, request, Some(fc)).await)
        }
        (["api", "v1", "messages", fc, id], &Method::GET) => messages::show(state, &request, fc, id).await,
        (["api", "v1", "profiles"], &Method::POST) => profiles::by_body(state, request).await,
        (["api", "v1", "profiles", fc], &Method::GET) => profiles::by_path(state, &request, fc).await,
        (["api", "v1", "messages"] | ["api", "v1", "messages", _] | ["api", "v1", "profiles"], _) => {
            Err(Problem::method_not_allowed("POST"))
        }
        (["api", "v1", "messages", _, _] | ["api", "v1", "profiles", _], _) => Err(Problem::method_not_allowed("GET")),
        (["health"], _) => Err(Problem::method_not_allowed("GET")),
        _ => Err(Problem::new(StatusCode::NOT_FOUND, "Not found", format!("no such resource: {path}"))),
    };
    routed.unwrap_or_else(Problem::into_response)
}

/// Counts a refused post by why it was refused.
fn count_refusal(state: &ApiState, result: Result<Response<Body>, Problem>) -> Result<Response<Body>, Problem> {
    if let Err(problem) = &result {
        let reason = match problem.status().as_u16() {
            401 => "unauthorized",
            403 => "forbidden",
            409 => "conflict",
            503 => "backpressure",
            500..=599 => "error",
            _ => "invalid",
        };
        state.metrics.refused.with_label_values(&[reason]).inc();
    }
    result
}

fn health() -> Response<Body> {
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// Authenticates the caller and picks the service it sends on.
fn authorize<'a, B>(state: &'a ApiState, request: &Request<B>) -> Result<(&'a LocalClient, &'a ServiceName), Problem> {
    let key = request.headers().get("ocp-apim-subscription-key").map(|v| v.as_bytes());
    let client = state.clients.authenticate(key).map_err(auth_problem)?;
    let requested = match request.headers().get(auth::SERVICE_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            Problem::new(StatusCode::BAD_REQUEST, "Bad header", format!("{} must be ASCII", auth::SERVICE_HEADER))
        })?),
        None => None,
    };
    let service = auth::choose_service(client, requested).map_err(auth_problem)?;
    Ok((client, service))
}

fn auth_problem(error: AuthError) -> Problem {
    match error {
        AuthError::MissingKey | AuthError::UnknownKey => Problem::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!("{error}: send your local client key in Ocp-Apim-Subscription-Key"),
        ),
        AuthError::ServiceNotAllowed { .. } => Problem::new(StatusCode::FORBIDDEN, "Forbidden", error.to_string()),
    }
}

/// Reads a JSON request body: right content type, within the size limit, UTF-8, JSON.
async fn read_json(request: Request<Incoming>, max_bytes: usize) -> Result<(Bytes, serde_json::Value), Problem> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            format!("send Content-Type: application/json (got {content_type:?})"),
        ));
    }
    let bytes = match Limited::new(request.into_body(), max_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                format!("the body is larger than {max_bytes} bytes"),
            ))
        }
        Err(e) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "Bad request", format!("cannot read the body: {e}")))
        }
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Malformed body",
            format!("the body is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    let value = serde_json::from_str(text).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "Malformed JSON", format!("the body is not valid JSON: {e}"))
    })?;
    Ok((bytes, value))
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}
