//! `GET /profiles/{fiscal_code}` and `POST /profiles`: IO's answer, asked through the
//! institution's budget with the service's key (the lookup spends IO's budget like any
//! other call, and its answer also spares delivery a check).

use super::{authorize, read_json, ApiState, Body, Problem};
use crate::io_client::CallFailure;
use connectors::domain::{FiscalCode, TestRecipient};
use connectors::message::Violation;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

/// `GET /profiles/{fiscal_code}`.
pub async fn by_path<B>(state: &ApiState, request: &Request<B>, fiscal_code: &str) -> Result<Response<Body>, Problem> {
    let (_, service) = authorize(state, request)?;
    let service = service.clone();
    lookup(state, &service, fiscal_code).await
}

/// `POST /profiles` with `{"fiscal_code": ...}`.
pub async fn by_body(state: &ApiState, request: Request<Incoming>) -> Result<Response<Body>, Problem> {
    let (_, service) = authorize(state, &request)?;
    let service = service.clone();
    let (_, body) = read_json(request, state.config.local_api.max_body_bytes).await?;
    let Some(fiscal_code) = body.get("fiscal_code").and_then(|v| v.as_str()) else {
        return Err(Problem::invalid(vec![Violation { field: "fiscal_code".into(), reason: "is required".into() }]));
    };
    lookup(state, &service, fiscal_code).await
}

async fn lookup(
    state: &ApiState,
    service: &crate::config::ServiceName,
    fiscal_code: &str,
) -> Result<Response<Body>, Problem> {
    let test = if state.config.io.allow_test_recipient { TestRecipient::Allowed } else { TestRecipient::Rejected };
    let fiscal_code = FiscalCode::parse(fiscal_code, test)
        .map_err(|e| Problem::invalid(vec![Violation { field: "fiscal_code".into(), reason: e.to_string() }]))?;
    let Some(delivery) = &state.delivery else {
        return Err(Problem::unavailable("profile lookups need the connection to IO, which is not running", 60));
    };
    match delivery.profile(service, &fiscal_code).await {
        None => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Configuration",
            format!("service {service} has no institution"),
        )),
        Some(Ok(answer)) => match answer.status.as_u16() {
            // IO's own answer about the citizen, as IO gave it.
            200 | 404 => {
                let mut response = Response::new(Body::from(answer.body));
                *response.status_mut() =
                    StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let content_type =
                    if answer.status.is_success() { "application/json" } else { "application/problem+json" };
                response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
                Ok(response)
            }
            // IO's budget is spent: the caller waits, like any other call.
            429 => {
                let seconds = answer.retry_after.map_or(5, |d| u32::try_from(d.as_secs()).unwrap_or(300));
                Err(Problem::unavailable("IO's call budget for this institution is spent; try again later", seconds))
            }
            // IO refused the gateway (its key, certificate or group) or failed: not the
            // caller's credentials, so never a 401/403 here.
            status => Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "IO refused the lookup",
                format!("IO answered {status} to the gateway; see the gateway's log"),
            )),
        },
        Some(Err(CallFailure::NotSent(e) | CallFailure::Unknown(e))) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "IO unreachable",
            format!("the profile could not be read from IO: {e}"),
        )),
    }
}
